//! `berth help [COMMAND...]` and `berth completion SHELL`: answered from
//! clap's command tree alone, before (and without) opening the store.

use clap::CommandFactory;
use std::io::Write;

use crate::cli::{Cli, CompletionArgs, CompletionCommand};

/// `berth help run` prints what `berth run --help` prints (as `docker help
/// run`); a topic that is not a command is Docker's `unknown help topic:
/// …`, exit 1.
pub fn help(topic: &[String]) -> i32 {
    let root = Cli::command();
    let mut cmd = &root;
    for (i, t) in topic.iter().enumerate() {
        match cmd.find_subcommand(t) {
            Some(c) => cmd = c,
            None => {
                errln!("unknown help topic: {}", topic[i..].join(" "));
                return 1;
            }
        }
    }
    print_help_of(topic.iter().map(String::as_str))
}

/// Prints what `berth PATH... --help` prints (on stdout).
fn print_help_of<'a>(path: impl Iterator<Item = &'a str>) -> i32 {
    let args = std::iter::once("berth")
        .chain(path)
        .chain(std::iter::once("--help"));
    match Cli::command().try_get_matches_from(args) {
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
        // Not reached: every command has --help.
        Ok(_) => 0,
    }
}

/// `berth completion bash|fish|powershell|zsh`: the completion script,
/// made from the same command tree the parser uses; without a shell, or
/// with one it has no script for, its help, as Docker's.
pub fn completion(a: &CompletionArgs) -> std::io::Result<()> {
    use clap_complete::Shell;
    let Some(shell) = a.shell else {
        print_help_of(std::iter::once("completion"));
        return Ok(());
    };
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
