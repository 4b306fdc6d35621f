//! Docker's CLI (Go's pflag) lets every boolean flag take a value:
//! `--rm=false`, `-t=false`, `--init=true`, `--read-only=1`. clap's boolean
//! flags take none, so before parsing, `--flag=VALUE` and `-f=VALUE` of a
//! boolean flag become `--flag` (true) or nothing (false), for the flags of
//! the command being run only, and never past the first operand of the
//! commands whose operands end the options (`run IMAGE CMD...`,
//! `exec CTR CMD...`): the container's own arguments are left as typed.

use clap::{Arg, ArgAction, Command};

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn is_bool(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Whether the token after the flag is its value (`--name x`; not
/// `--sig-proxy`, whose value, if any, must follow an `=`).
fn takes_value(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Set | ArgAction::Append) && !a.is_require_equals_set()
}

/// Commands whose first operand ends the options (pflag's interspersed off).
fn operands_end_options(path: &[String]) -> bool {
    matches!(
        path.last().map(String::as_str),
        Some("run" | "create" | "exec")
    )
}

/// Rewrites `args` (argv[0] included) as described above; an invalid value
/// is Docker's error. Also returns the subcommand path (`["container",
/// "rm"]`) for error messages.
pub fn normalize(cmd: &Command, args: Vec<String>) -> (Result<Vec<String>, String>, Vec<String>) {
    let mut path: Vec<String> = Vec::new();
    let r = normalize_in(cmd, args, &mut path);
    (r, path)
}

fn normalize_in(
    cmd: &Command,
    args: Vec<String>,
    path: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    if let Some(argv0) = it.next() {
        out.push(argv0);
    }
    let mut cur = cmd;
    let mut done = false;
    while let Some(tok) = it.next() {
        if done || tok == "--" {
            done = true;
            out.push(tok);
            continue;
        }
        if let Some(long) = tok.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let arg = cur
                .get_arguments()
                .find(|a| a.get_long() == Some(name))
                .or_else(|| cmd.get_arguments().find(|a| a.get_long() == Some(name)));
            match (arg, value) {
                (Some(a), Some(v)) if is_bool(a) => {
                    match parse_bool(v) {
                        Some(true) => out.push(format!("--{name}")),
                        Some(false) => {}
                        None => return Err(bad_value(v, &format!("--{name}"))),
                    }
                    continue;
                }
                (Some(a), None) if takes_value(a) => {
                    out.push(tok);
                    if let Some(v) = it.next() {
                        out.push(v);
                    }
                    continue;
                }
                _ => {}
            }
            out.push(tok);
            continue;
        }
        if let Some(shorts) = tok.strip_prefix('-').filter(|s| !s.is_empty()) {
            // `-t=false`, `-it=false` (pflag: the value is the last flag's).
            if let Some((flag, v)) = shorts.split_once('=') {
                let last = flag.chars().last();
                let last_arg =
                    last.and_then(|c| cur.get_arguments().find(|a| a.get_short() == Some(c)));
                if let (Some(c), Some(a)) = (last, last_arg) {
                    if is_bool(a) {
                        let before: String = flag.chars().take(flag.chars().count() - 1).collect();
                        if !before.is_empty() {
                            out.push(format!("-{before}"));
                        }
                        match parse_bool(v) {
                            Some(true) => out.push(format!("-{c}")),
                            Some(false) => {}
                            None => return Err(bad_value(v, &format!("-{c}"))),
                        }
                        continue;
                    }
                }
                out.push(tok);
                continue;
            }
            // A cluster (`-it`, `-p 80`): the last flag may take the next token.
            let last = shorts.chars().last();
            let needs = last
                .and_then(|c| cur.get_arguments().find(|a| a.get_short() == Some(c)))
                .is_some_and(|a| takes_value(a) && shorts.len() == 1);
            out.push(tok);
            if needs {
                if let Some(v) = it.next() {
                    out.push(v);
                }
            }
            continue;
        }
        // An operand: a subcommand name, or the command's own operand.
        if let Some(sub) = cur
            .get_subcommands()
            .find(|s| s.get_name() == tok || s.get_all_aliases().any(|a| a == tok))
        {
            path.push(sub.get_name().to_string());
            cur = sub;
        } else if operands_end_options(path) {
            done = true;
        }
        out.push(tok);
    }
    Ok(out)
}

fn bad_value(v: &str, flag: &str) -> String {
    format!("invalid argument \"{v}\" for \"{flag}\" flag: strconv.ParseBool: parsing \"{v}\": invalid syntax")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(s: &str) -> Result<Vec<String>, String> {
        let args = std::iter::once("berth".to_string())
            .chain(s.split_whitespace().map(str::to_string))
            .collect();
        // Built in full, as main builds it for a `-x=VALUE` line.
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        normalize(&cmd, args).0.map(|v| v[1..].to_vec())
    }

    #[test]
    fn boolean_flags_take_gos_values() {
        assert_eq!(norm("run --rm=false bb").unwrap(), ["run", "bb"]);
        assert_eq!(
            norm("run --rm=true -t=0 bb").unwrap(),
            ["run", "--rm", "bb"]
        );
        assert_eq!(norm("run -t=T -i=1 bb").unwrap(), ["run", "-t", "-i", "bb"]);
        assert_eq!(
            norm("exec --tty=false c true").unwrap(),
            ["exec", "c", "true"]
        );
        assert_eq!(norm("ps -a=false").unwrap(), ["ps"]);
        assert_eq!(norm("run -it=false bb").unwrap(), ["run", "-i", "bb"]);
        assert_eq!(
            norm("container rm -f=true x").unwrap(),
            ["container", "rm", "-f", "x"]
        );
    }

    #[test]
    fn values_and_the_containers_arguments_are_left_alone() {
        // `--name` takes `--rm=false` as its value; after the image, nothing
        // is a flag of berth's.
        assert_eq!(
            norm("run --name x bb ls --all=false -t=false").unwrap(),
            ["run", "--name", "x", "bb", "ls", "--all=false", "-t=false"]
        );
        assert_eq!(
            norm("run -e A=1 -it bb").unwrap(),
            ["run", "-e", "A=1", "-it", "bb"]
        );
        assert_eq!(
            norm("run -- --rm=false").unwrap(),
            ["run", "--", "--rm=false"]
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks (unique short flags per command, ...), which it
        // otherwise makes only when a command is first parsed.
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn a_bad_value_is_dockers_error() {
        assert_eq!(
            norm("run --rm=maybe bb").unwrap_err(),
            "invalid argument \"maybe\" for \"--rm\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
    }
}
