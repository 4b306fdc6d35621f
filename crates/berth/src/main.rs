//! The `berth` command: argv ↔ engine, and output for people and scripts.
//!
//! Owns: flags (Docker's names and meanings), tables, `--format`, `-q`,
//! `--no-trunc`, the terminal while attached, and exit codes (mapped in one
//! place, [`exit_code`]). Never: engine logic — every verb is one call into
//! `berth_engine::Engine`.

/// `println!` that hands back the write's error instead of panicking: a
/// closed stdout (`berth ps | head -1`) is an error like any other, which
/// [`commands::dispatch`] turns into a quiet exit ([`Exit::BrokenPipe`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that hands back the write's error (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `eprintln!` that never panics: a message that cannot be shown (stderr
/// closed) is dropped.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod attach;
mod boolflags;
mod cli;
mod cmd_archive;
mod cmd_commit;
mod cmd_fs;
mod cmd_help;
mod cmd_system;
mod commands;
mod format;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // One command tree for both the flag rewrite and the parse.
    let command = <cli::Cli as clap::CommandFactory>::command();
    let (args, path) = boolflags::normalize(&command, args);
    let see = format!("See 'berth {} --help'.", path.join(" "));
    let args = match args {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}\n{see}");
            return ExitCode::from(125);
        }
    };
    let parsed = match command
        .try_get_matches_from(&args)
        .and_then(|m| <cli::Cli as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    // Bare `berth` prints its help and succeeds, as `docker` does.
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::InvalidSubcommand => {
                    // Docker's words and code: `unknown command: docker x`, 1.
                    let name = match e.get(ContextKind::InvalidSubcommand) {
                        Some(ContextValue::String(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let prefix = if path.is_empty() {
                        "berth".to_string()
                    } else {
                        format!("berth {}", path.join(" "))
                    };
                    eprintln!(
                        "berth: unknown command: {prefix} {name}\n\nRun '{prefix} --help' for more information"
                    );
                    ExitCode::from(1)
                }
                ErrorKind::ValueValidation => {
                    // pflag's words for a value its flag refuses (`-a bogus`).
                    match (
                        e.get(ContextKind::InvalidArg),
                        e.get(ContextKind::InvalidValue),
                    ) {
                        (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) => {
                            let long = arg.split_whitespace().next().unwrap_or(arg);
                            let name = match long {
                                "--attach" => "-a, --attach",
                                other => other,
                            };
                            let reason = std::error::Error::source(&e)
                                .map_or_else(|| "invalid value".to_string(), |s| s.to_string());
                            eprintln!(
                                "invalid argument \"{value}\" for \"{name}\" flag: {reason}\n{see}"
                            );
                        }
                        _ => {
                            let _ = e.print();
                        }
                    }
                    ExitCode::from(125)
                }
                ErrorKind::UnknownArgument => {
                    // Docker's words: `unknown flag: --bogus`.
                    match e.get(ContextKind::InvalidArg) {
                        Some(ContextValue::String(flag)) if flag.starts_with("--") => {
                            eprintln!("unknown flag: {flag}\n{see}");
                        }
                        Some(ContextValue::String(flag)) => {
                            let c = flag.trim_start_matches('-').chars().next().unwrap_or('?');
                            eprintln!("unknown shorthand flag: '{c}' in {flag}\n{see}");
                        }
                        _ => {
                            let _ = e.print();
                        }
                    }
                    ExitCode::from(125)
                }
                _ => {
                    let _ = e.print();
                    ExitCode::from(125)
                }
            };
        }
    };
    let mut parsed = parsed;
    parsed.command = parsed.command.flatten();
    match commands::dispatch(parsed) {
        Exit::Code(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(125)),
        Exit::BrokenPipe => die_of_sigpipe(),
    }
}

/// How a command ends.
pub(crate) enum Exit {
    /// With this exit status.
    Code(i32),
    /// Its standard output was closed by the reader (`berth ps | head -1`):
    /// quietly, as the docker CLI does.
    BrokenPipe,
}

/// Ends the process as the docker CLI (a Go program) ends when its stdout
/// is closed: killed by SIGPIPE (a shell shows 141), with nothing on
/// stderr. berth ignores SIGPIPE while it works (Rust's default), so a
/// write to a closed pipe is an error it unwinds from — locks released,
/// temporary files removed, no half-done store transaction — and only then
/// is the signal delivered, here.
fn die_of_sigpipe() -> ExitCode {
    // SAFETY: restoring a signal's default action and raising it on the
    // calling thread; no memory is involved. The default action ends the
    // whole process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Only reached when SIGPIPE is blocked: the status a shell would show.
    ExitCode::from(141)
}

/// Whether `err` comes from writing to a standard output that nobody reads
/// any more: an `EPIPE` somewhere in its causes, and stdout a pipe or
/// socket whose reader is gone (so that an internal pipe's EPIPE is never
/// mistaken for it).
pub(crate) fn is_closed_stdout(err: &anyhow::Error) -> bool {
    let epipe = err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    epipe && stdout_reader_gone()
}

/// True when stdout is a pipe or socket with no reader left.
pub(crate) fn stdout_reader_gone() -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    match poll(&mut fds, Some(&rustix::event::Timespec::default())) {
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => false,
    }
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
