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
mod cmd_build;
mod cmd_commit;
mod cmd_events;
mod cmd_fs;
mod cmd_help;
mod cmd_login;
mod cmd_manifest;
mod cmd_network;
mod cmd_packages;
mod cmd_pull;
mod cmd_push;
mod cmd_search;
mod cmd_serve;
mod cmd_serve_helper;
mod cmd_stats;
mod cmd_system;
mod commands;
mod format;
mod output;
mod usage;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The `--rm` hand-over from a monitor skips clap: building the command
    // tree is most of a command's start-up, and this one is on the path of
    // every `run --rm`.
    if let Some(cli) = monitor_rm(&args) {
        return match commands::dispatch(cli, &["rm".to_string()]) {
            Exit::Code(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(125)),
            Exit::BrokenPipe => die_of_sigpipe(),
        };
    }
    // Each command's flags are deferred (clap's `defer`): only the command
    // used is built, by the parse. The flag rewrite needs every flag, so a
    // command line that has a `-x=VALUE` gets a fully built tree of its
    // own for it; the others find their command's path in this one (names
    // and aliases are never deferred).
    let mut command = <cli::Cli as clap::CommandFactory>::command();
    let (args, path) = if args
        .iter()
        .skip(1)
        .any(|a| a.starts_with('-') && a.contains('='))
    {
        let mut full = <cli::Cli as clap::CommandFactory>::command();
        full.build();
        boolflags::normalize(&full, args)
    } else {
        boolflags::normalize(&command, args)
    };
    let args = match args {
        Ok(a) => a,
        Err(msg) => {
            errln!("{}", usage::flag_error(&path, &msg));
            return ExitCode::from(125);
        }
    };
    // Parsed in place (not a clone: the whole tree is most of the start-up
    // cost of a command), kept for the error report.
    let parsed = match command
        .try_get_matches_from_mut(&args)
        .and_then(|m| <cli::Cli as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => return clap_error(&command, &e, &path, &args),
    };
    let mut parsed = parsed;
    parsed.command = parsed.command.flatten();
    match commands::dispatch(parsed, &path) {
        Exit::Code(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(125)),
        Exit::BrokenPipe => die_of_sigpipe(),
    }
}

/// Reports clap's refusal of the command line as the docker CLI reports
/// its own: Docker's words, the usage block, its exit codes.
fn clap_error(
    command: &clap::Command,
    e: &clap::Error,
    path: &[String],
    args: &[String],
) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let ctx = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let flag_error = |msg: String| {
        errln!("{}", usage::flag_error(path, &msg));
        ExitCode::from(125)
    };
    let arity_error = || match usage::arity_error(path) {
        Some(msg) => {
            errln!("{msg}");
            ExitCode::from(1)
        }
        None => {
            let _ = e.print();
            ExitCode::from(125)
        }
    };
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Bare `berth` prints its help and succeeds, as `docker` does.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::InvalidSubcommand => {
            // Docker's words and code: `unknown command: docker x`, 1.
            let name = ctx(ContextKind::InvalidSubcommand).unwrap_or_default();
            let prefix = if path.is_empty() {
                "berth".to_string()
            } else {
                format!("berth {}", path.join(" "))
            };
            errln!(
                "berth: unknown command: {prefix} {name}\n\nRun '{prefix} --help' for more information"
            );
            ExitCode::from(1)
        }
        ErrorKind::UnknownArgument => match ctx(ContextKind::InvalidArg) {
            // Docker's words: `unknown flag: --bogus`.
            Some(flag) if flag.starts_with("--") => flag_error(format!("unknown flag: {flag}")),
            Some(flag) if flag.starts_with('-') && flag.len() > 1 => {
                let c = flag.trim_start_matches('-').chars().next().unwrap_or('?');
                flag_error(format!("unknown shorthand flag: '{c}' in {flag}"))
            }
            // An operand too many.
            Some(_) => arity_error(),
            None => {
                let _ = e.print();
                ExitCode::from(125)
            }
        },
        ErrorKind::MissingRequiredArgument | ErrorKind::TooManyValues => arity_error(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let Some(arg) = ctx(ContextKind::InvalidArg) else {
                let _ = e.print();
                return ExitCode::from(125);
            };
            let value = ctx(ContextKind::InvalidValue).unwrap_or_default();
            let (long, short) = flag_names(command, path, &arg);
            let typed_long = long.as_ref().is_some_and(|l| {
                args.iter()
                    .any(|a| a == &format!("--{l}") || a.starts_with(&format!("--{l}=")))
            });
            if value.is_empty() && e.kind() == ErrorKind::InvalidValue {
                // A flag at the end of the line, without its value.
                return match (short, typed_long) {
                    (Some(c), false) => {
                        flag_error(format!("flag needs an argument: '{c}' in -{c}"))
                    }
                    _ => flag_error(format!(
                        "flag needs an argument: --{}",
                        long.unwrap_or_default()
                    )),
                };
            }
            let name = match (short, long) {
                (Some(c), Some(l)) => format!("-{c}, --{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(c), None) => format!("-{c}"),
                (None, None) => arg,
            };
            // pflag's reasons for the value types berth has: integers.
            let reason = match std::error::Error::source(e).map(|s| s.to_string()) {
                Some(s) if s.contains("digit") || s.contains("integer") => {
                    format!("strconv.ParseInt: parsing \"{value}\": invalid syntax")
                }
                Some(s) => s,
                None => "invalid value".to_string(),
            };
            flag_error(format!(
                "invalid argument \"{value}\" for \"{name}\" flag: {reason}"
            ))
        }
        _ => {
            let _ = e.print();
            ExitCode::from(125)
        }
    }
}

/// The long name and the short letter of the flag clap names as `arg`
/// (`--tail <TAIL>`), looked up in the command at `path`.
fn flag_names(
    command: &clap::Command,
    path: &[String],
    arg: &str,
) -> (Option<String>, Option<char>) {
    let mut cur = command;
    for p in path {
        match cur.find_subcommand(p) {
            Some(c) => cur = c,
            None => break,
        }
    }
    let word = arg.split_whitespace().next().unwrap_or(arg);
    let found = cur.get_arguments().find(|a| {
        a.get_long().is_some_and(|l| word == format!("--{l}"))
            || a.get_short().is_some_and(|c| word == format!("-{c}"))
    });
    match found {
        Some(a) => (a.get_long().map(String::from), a.get_short()),
        None => (Some(word.trim_start_matches('-').to_string()), None),
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

/// `berth --root R --run-root RR --cgroup-parent P rm -f -v ID`, exactly as
/// the engine writes a container's `--rm` command (`MonitorConfig::
/// remove_command`): parsed without clap. Any other shape goes through clap.
fn monitor_rm(args: &[String]) -> Option<cli::Cli> {
    let [_, root_flag, root, run_flag, run_root, cg_flag, cgroup_parent, rm, f, v, id] = args
    else {
        return None;
    };
    let shape = [
        root_flag.as_str(),
        run_flag.as_str(),
        cg_flag.as_str(),
        rm.as_str(),
        f.as_str(),
        v.as_str(),
    ];
    if shape != ["--root", "--run-root", "--cgroup-parent", "rm", "-f", "-v"]
        || id.len() != 64
        || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    Some(cli::Cli {
        root: root.into(),
        run_root: run_root.into(),
        cgroup_parent: cgroup_parent.clone(),
        version: (),
        debug: false,
        log_level: "info".into(),
        command: cli::Command::Rm(cli::RmArgs {
            force: true,
            volumes: true,
            containers: vec![id.clone()],
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::monitor_rm;

    fn v(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn only_the_engines_rm_command_skips_clap() {
        let id = "a".repeat(64);
        let ok = v(&format!(
            "berth --root /r --run-root /rr --cgroup-parent p rm -f -v {id}"
        ));
        let cli = monitor_rm(&ok).map(|c| (c.root, c.run_root, c.cgroup_parent));
        assert_eq!(cli, Some(("/r".into(), "/rr".into(), "p".to_string())));
        for other in [
            format!("berth --root /r --run-root /rr --cgroup-parent p rm -f {id} x"),
            "berth --root /r --run-root /rr --cgroup-parent p rm -f -v web".to_string(),
            format!("berth --root /r --run-root /rr --cgroup-parent p stop -f -v {id}"),
            format!("berth --run-root /r --root /rr --cgroup-parent p rm -f -v {id}"),
        ] {
            assert!(monitor_rm(&v(&other)).is_none(), "{other}");
        }
    }
}
