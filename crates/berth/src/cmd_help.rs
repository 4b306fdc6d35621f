//! `berth help [COMMAND...]` and `berth completion SHELL`: answered from
//! clap's command tree alone, before (and without) opening the store.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionCommand};

/// `berth help run` prints what `berth run --help` prints (as `docker help
/// run`); a topic that is not a command is Docker's `unknown help topic:
/// …`, exit 1.
pub fn help(topic: &[String]) -> ExitCode {
    let root = Cli::command();
    let mut cmd = &root;
    for (i, t) in topic.iter().enumerate() {
        match cmd.find_subcommand(t) {
            Some(c) => cmd = c,
            None => {
                eprintln!("unknown help topic: {}", topic[i..].join(" "));
                return ExitCode::from(1);
            }
        }
    }
    let args = std::iter::once("berth")
        .chain(topic.iter().map(String::as_str))
        .chain(std::iter::once("--help"));
    print_help_of(root, args)
}

/// Parses `args` (which end in `--help`) and prints the help clap answers.
pub fn print_help_of<'a>(root: clap::Command, args: impl Iterator<Item = &'a str>) -> ExitCode {
    match root.try_get_matches_from(args) {
        Err(e) => {
            let _ = e.print();
            ExitCode::from(u8::from(e.exit_code() != 0))
        }
        // Not reached: every command has --help.
        Ok(_) => ExitCode::SUCCESS,
    }
}

/// `berth completion bash|fish|powershell|zsh`: the completion script,
/// made from the same command tree the parser uses.
pub fn completion(shell: CompletionCommand) -> std::io::Result<()> {
    use clap_complete::Shell;
    let shell = match shell {
        CompletionCommand::Bash => Shell::Bash,
        CompletionCommand::Fish => Shell::Fish,
        CompletionCommand::Powershell => Shell::PowerShell,
        CompletionCommand::Zsh => Shell::Zsh,
    };
    // Made in memory, then written: a closed stdout is an error we report
    // (as every command does), never a panic inside the generator.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "berth", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()
}
