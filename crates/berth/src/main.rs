//! The `berth` command: argv ↔ engine, and output for people and scripts.
//!
//! Owns: flags (Docker's names and meanings), tables, `--format`, `-q`,
//! `--no-trunc`, the terminal while attached, and exit codes (mapped in one
//! place, [`exit_code`]). Never: engine logic — every verb is one call into
//! `berth_engine::Engine`.

mod attach;
mod cli;
mod cmd_archive;
mod cmd_commit;
mod cmd_fs;
mod commands;
mod format;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match cli::Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    // Bare `berth` prints its help and succeeds, as `docker` does.
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    let _ = e.print();
                    ExitCode::from(125)
                }
            };
        }
    };
    let code = commands::dispatch(parsed);
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(125))
}

/// Docker's exit codes for an error: the engine's code for `run`-like
/// commands (125/126/127), 1 for the others.
pub(crate) fn exit_code(e: &anyhow::Error, run_like: bool) -> i32 {
    if let Some(ee) = e.downcast_ref::<berth_engine::EngineError>() {
        let c = ee.exit_code();
        if run_like || c != 125 {
            return c;
        }
        return 1;
    }
    if run_like {
        125
    } else {
        1
    }
}
