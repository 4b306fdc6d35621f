//! The docker CLI's own errors, word for word: a bad flag or a wrong number
//! of operands, answered with the command's usage line, and the errors it
//! finds itself before asking its daemon.
//!
//! docker (28) prints a bad flag as
//!
//! ```text
//! unknown flag: --bogus
//!
//! Usage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]
//!
//! Run 'docker run --help' for more information
//! ```
//!
//! and exits 125; a wrong number of operands as `docker: 'docker rm'
//! requires at least 1 argument` with the same block and exit 1.

use std::fmt;

/// How many operands a command takes (cobra's `Args` validators).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// `cli.NoArgs`: "accepts no arguments".
    None,
    /// `cli.RequiresMinArgs(n)`.
    Min(usize),
    /// `cli.ExactArgs(n)`.
    Exact(usize),
    /// `cli.RequiresMaxArgs(n)`.
    Max(usize),
    /// `cli.RequiresRangeArgs(min, max)`.
    Range(usize, usize),
}

/// Every command's usage after its name, and its operands, as docker's.
/// Keyed by the command's path; `container X` falls back to `X`.
const TABLE: &[(&str, &str, Arity)] = &[
    ("", "[OPTIONS] COMMAND [ARG...]", Arity::Min(0)),
    ("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]", Arity::Min(1)),
    (
        "create",
        "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        Arity::Min(1),
    ),
    ("start", "[OPTIONS] CONTAINER [CONTAINER...]", Arity::Min(1)),
    ("stop", "[OPTIONS] CONTAINER [CONTAINER...]", Arity::Min(1)),
    (
        "restart",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        Arity::Min(1),
    ),
    ("kill", "[OPTIONS] CONTAINER [CONTAINER...]", Arity::Min(1)),
    (
        "update",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        Arity::Min(1),
    ),
    ("rm", "[OPTIONS] CONTAINER [CONTAINER...]", Arity::Min(1)),
    ("ps", "[OPTIONS]", Arity::None),
    ("wait", "CONTAINER [CONTAINER...]", Arity::Min(1)),
    ("logs", "[OPTIONS] CONTAINER", Arity::Exact(1)),
    ("attach", "[OPTIONS] CONTAINER", Arity::Exact(1)),
    (
        "exec",
        "[OPTIONS] CONTAINER COMMAND [ARG...]",
        Arity::Min(2),
    ),
    ("inspect", "[OPTIONS] NAME|ID [NAME|ID...]", Arity::Min(1)),
    ("top", "CONTAINER [ps OPTIONS]", Arity::Min(1)),
    ("rename", "CONTAINER NEW_NAME", Arity::Exact(2)),
    (
        "import",
        "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
        Arity::Min(1),
    ),
    ("images", "[OPTIONS] [REPOSITORY[:TAG]]", Arity::Max(1)),
    (
        "tag",
        "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
        Arity::Exact(2),
    ),
    ("rmi", "[OPTIONS] IMAGE [IMAGE...]", Arity::Min(1)),
    ("diff", "CONTAINER", Arity::Exact(1)),
    (
        "commit",
        "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        Arity::Range(1, 2),
    ),
    ("history", "[OPTIONS] IMAGE", Arity::Exact(1)),
    ("login", "[OPTIONS] [SERVER]", Arity::Max(1)),
    ("logout", "[SERVER]", Arity::Max(1)),
    ("save", "[OPTIONS] IMAGE [IMAGE...]", Arity::Min(1)),
    ("load", "[OPTIONS]", Arity::None),
    ("pull", "[OPTIONS] NAME[:TAG|@DIGEST]", Arity::Exact(1)),
    ("push", "[OPTIONS] NAME[:TAG]", Arity::Exact(1)),
    ("export", "[OPTIONS] CONTAINER", Arity::Exact(1)),
    (
        "cp",
        "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-",
        Arity::Exact(2),
    ),
    ("version", "[OPTIONS]", Arity::None),
    ("info", "[OPTIONS]", Arity::None),
    ("container", "COMMAND", Arity::Min(0)),
    ("container prune", "[OPTIONS]", Arity::None),
    ("container ls", "[OPTIONS]", Arity::None),
    (
        "container inspect",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        Arity::Min(1),
    ),
    ("image", "COMMAND", Arity::Min(0)),
    ("image ls", "[OPTIONS] [REPOSITORY[:TAG]]", Arity::Max(1)),
    ("image inspect", "[OPTIONS] IMAGE [IMAGE...]", Arity::Min(1)),
    ("image rm", "[OPTIONS] IMAGE [IMAGE...]", Arity::Min(1)),
    ("image prune", "[OPTIONS]", Arity::None),
    ("volume", "COMMAND", Arity::Min(0)),
    ("volume create", "[OPTIONS] [VOLUME]", Arity::Max(1)),
    ("volume ls", "[OPTIONS]", Arity::None),
    (
        "volume inspect",
        "[OPTIONS] VOLUME [VOLUME...]",
        Arity::Min(1),
    ),
    ("volume rm", "[OPTIONS] VOLUME [VOLUME...]", Arity::Min(1)),
    ("volume prune", "[OPTIONS]", Arity::None),
    ("network", "COMMAND", Arity::Min(0)),
    ("network create", "[OPTIONS] NETWORK", Arity::Exact(1)),
    ("network ls", "[OPTIONS]", Arity::None),
    (
        "network inspect",
        "[OPTIONS] NETWORK [NETWORK...]",
        Arity::Min(1),
    ),
    ("network rm", "NETWORK [NETWORK...]", Arity::Min(1)),
    ("network prune", "[OPTIONS]", Arity::None),
    (
        "network connect",
        "[OPTIONS] NETWORK CONTAINER",
        Arity::Exact(2),
    ),
    (
        "network disconnect",
        "[OPTIONS] NETWORK CONTAINER",
        Arity::Exact(2),
    ),
    ("builder", "COMMAND", Arity::Min(0)),
    ("builder prune", "", Arity::None),
    ("buildx", "COMMAND", Arity::Min(0)),
    ("buildx prune", "", Arity::None),
    ("system", "COMMAND", Arity::Min(0)),
    ("system df", "[OPTIONS]", Arity::None),
    ("system prune", "[OPTIONS]", Arity::None),
    ("system info", "[OPTIONS]", Arity::None),
];

fn entry(path: &[String]) -> Option<(&'static str, Arity)> {
    let key = path.join(" ");
    let find = |k: &str| TABLE.iter().find(|(p, _, _)| *p == k).map(|e| (e.1, e.2));
    find(&key).or_else(|| match path {
        // `image tag` is `tag`, `container rm` is `rm`, ...
        [group, verb] if group == "container" || group == "image" => find(verb),
        _ => None,
    })
}

/// `berth run` (the command as typed, aliases resolved).
fn command_name(path: &[String]) -> String {
    if path.is_empty() {
        "berth".to_string()
    } else {
        format!("berth {}", path.join(" "))
    }
}

/// The usage block that follows the CLI's own errors, from the blank line
/// after the message on (`tail` is "Run" or, for too few operands, "See").
fn usage_block(path: &[String], tail: &str) -> String {
    let name = command_name(path);
    match entry(path) {
        Some((usage, _)) => {
            // A command without operands or options shows its name alone.
            let line = format!("{name} {usage}");
            let line = line.trim_end();
            format!("\n\nUsage:  {line}\n\n{tail} '{name} --help' for more information")
        }
        None => format!("\n\n{tail} '{name} --help' for more information"),
    }
}

/// A bad flag or flag value, as docker prints it (exit 125).
pub fn flag_error(path: &[String], msg: &str) -> String {
    format!("{msg}{}", usage_block(path, "Run"))
}

/// The wrong number of operands for the command at `path`, as docker
/// prints it (exit 1); `None` for a command that takes any number.
pub fn arity_error(path: &[String]) -> Option<String> {
    let name = command_name(path);
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let (_, arity) = entry(path)?;
    let (what, tail) = match arity {
        Arity::None => ("accepts no arguments".to_string(), "Run"),
        Arity::Min(0) => return None,
        Arity::Min(n) => (format!("requires at least {n} {}", plural(n)), "See"),
        Arity::Exact(n) => (format!("requires {n} {}", plural(n)), "Run"),
        Arity::Max(n) => (format!("requires at most {n} {}", plural(n)), "Run"),
        Arity::Range(a, b) => (
            format!("requires at least {a} and at most {b} {}", plural(b)),
            "Run",
        ),
    };
    Some(format!("berth: '{name}' {what}{}", usage_block(path, tail)))
}

/// The trailer docker's `run` puts under every error of its own:
/// `\n\nRun 'docker run --help' for more information`.
pub fn run_trailer(path: &[String]) -> String {
    format!(
        "\n\nRun '{} --help' for more information",
        command_name(path)
    )
}

/// An error the docker CLI reports itself, before the engine is asked.
#[derive(Debug)]
pub enum CliError {
    /// A flag's value is refused (`-e =x`): the message, then the usage
    /// block; exit 125.
    Flag(String),
    /// Printed as it is, without "Error:" or a trailer, ending with `code`
    /// (`the input device is not a TTY`, 1).
    Bare { message: String, code: i32 },
    /// Options the docker CLI refuses together or as values of its own
    /// (`--no-healthcheck conflicts with --health-* options`): `berth: `,
    /// the message, where the help is; exit 125.
    Opts(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Flag(m) => f.write_str(m),
            CliError::Bare { message, .. } => f.write_str(message),
            CliError::Opts(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flag_error_has_the_usage_block() {
        assert_eq!(
            flag_error(&p("run"), "unknown flag: --bogus"),
            "unknown flag: --bogus\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth run --help' for more information"
        );
        assert_eq!(
            flag_error(&p("container rm"), "x"),
            "x\n\nUsage:  berth container rm [OPTIONS] CONTAINER [CONTAINER...]\n\nRun 'berth container rm --help' for more information"
        );
        assert!(flag_error(&[], "x").contains("Usage:  berth [OPTIONS] COMMAND [ARG...]"));
    }

    #[test]
    fn arity_errors_as_docker_words_them() {
        assert_eq!(
            arity_error(&p("rm")).unwrap_or_default(),
            "berth: 'berth rm' requires at least 1 argument\n\nUsage:  berth rm [OPTIONS] CONTAINER [CONTAINER...]\n\nSee 'berth rm --help' for more information"
        );
        assert!(arity_error(&p("ps"))
            .unwrap_or_default()
            .starts_with("berth: 'berth ps' accepts no arguments\n"));
        assert!(arity_error(&p("commit"))
            .unwrap_or_default()
            .starts_with("berth: 'berth commit' requires at least 1 and at most 2 arguments\n"));
        assert!(arity_error(&p("rename"))
            .unwrap_or_default()
            .starts_with("berth: 'berth rename' requires 2 arguments\n"));
        assert!(arity_error(&p("images"))
            .unwrap_or_default()
            .starts_with("berth: 'berth images' requires at most 1 argument\n"));
        assert_eq!(arity_error(&p("container")), None);
    }
}
