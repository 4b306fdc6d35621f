//! The CLI's own errors as the docker (28) CLI prints them: a bad flag or
//! value with the command's usage block (125), a wrong number of operands
//! (1), `run`'s trailer under its errors, and the errors it reports bare.
mod common;

use common::*;

/// The block docker prints under a flag error of `cmd`.
fn usage(cmd: &str, usage: &str) -> String {
    format!("\n\nUsage:  berth {cmd} {usage}\n\nRun 'berth {cmd} --help' for more information\n")
}

#[test]
fn flag_errors_print_the_usage_block() {
    let env = TestEnv::new();
    let ps = usage("ps", "[OPTIONS]");
    let (_, err) = env.fails(&["ps", "--bogus"], 125);
    assert_eq!(err, format!("unknown flag: --bogus{ps}"));
    let (_, err) = env.fails(&["ps", "-Z"], 125);
    assert_eq!(err, format!("unknown shorthand flag: 'Z' in -Z{ps}"));
    let (_, err) = env.fails(&["ps", "-n", "x"], 125);
    assert_eq!(
        err,
        format!(
            "invalid argument \"x\" for \"-n, --last\" flag: strconv.ParseInt: parsing \"x\": invalid syntax{ps}"
        )
    );
    let (_, err) = env.fails(&["ps", "-n"], 125);
    assert_eq!(err, format!("flag needs an argument: 'n' in -n{ps}"));
    let (_, err) = env.fails(&["logs", "--tail"], 125);
    assert_eq!(
        err,
        format!(
            "flag needs an argument: --tail{}",
            usage("logs", "[OPTIONS] CONTAINER")
        )
    );
    let (_, err) = env.fails(&["ps", "-f", "bogus"], 125);
    assert!(err.ends_with(&ps), "{err}");
    let (_, err) = env.fails(&["volume", "ls", "--bogus"], 125);
    assert_eq!(
        err,
        format!("unknown flag: --bogus{}", usage("volume ls", "[OPTIONS]"))
    );
    let (_, err) = env.fails(&["--bogus"], 125);
    assert_eq!(
        err,
        "unknown flag: --bogus\n\nUsage:  berth [OPTIONS] COMMAND [ARG...]\n\nRun 'berth --help' for more information\n"
    );
    // A value the CLI refuses after parsing: the same, for create too.
    let run = usage("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]");
    let (_, err) = env.fails(&["run", "--rm", "-e", "=x", BB, "true"], 125);
    assert_eq!(
        err,
        format!(
            "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x{run}"
        )
    );
    let (_, err) = env.fails(&["create", "-l", "=x", BB, "true"], 125);
    assert_eq!(
        err,
        format!(
            "invalid argument \"=x\" for \"-l, --label\" flag: invalid label '=x': empty name{}",
            usage("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]")
        )
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn wrong_operand_counts_are_dockers_words() {
    let env = TestEnv::new();
    let (_, err) = env.fails(&["rm"], 1);
    assert_eq!(
        err,
        "berth: 'berth rm' requires at least 1 argument\n\nUsage:  berth rm [OPTIONS] CONTAINER [CONTAINER...]\n\nSee 'berth rm --help' for more information\n"
    );
    let (_, err) = env.fails(&["ps", "a"], 1);
    assert_eq!(
        err,
        format!(
            "berth: 'berth ps' accepts no arguments{}",
            usage("ps", "[OPTIONS]")
        )
    );
    let (_, err) = env.fails(&["container", "list", "a"], 1);
    assert_eq!(
        err,
        format!(
            "berth: 'berth container ls' accepts no arguments{}",
            usage("container ls", "[OPTIONS]")
        )
    );
    let (_, err) = env.fails(&["tag", "a", "b", "c"], 1);
    assert_eq!(
        err,
        format!(
            "berth: 'berth tag' requires 2 arguments{}",
            usage("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
        )
    );
    let (_, err) = env.fails(&["commit"], 1);
    assert!(
        err.starts_with("berth: 'berth commit' requires at least 1 and at most 2 arguments\n"),
        "{err}"
    );
    let (_, err) = env.fails(&["images", "a", "b"], 1);
    assert!(
        err.starts_with("berth: 'berth images' requires at most 1 argument\n"),
        "{err}"
    );
}

/// docker's `run` ends its errors with where to read more; `-it` without a
/// terminal is reported bare.
#[test]
fn run_errors_end_with_the_help_hint() {
    let env = TestEnv::with_busybox();
    let (_, err) = env.fails(&["run", "--rm", BB, "nosuchcmd"], 127);
    assert_eq!(
        err,
        "berth: exec: \"nosuchcmd\": executable file not found in $PATH\n\nRun 'berth run --help' for more information\n"
    );
    let (_, err) = env.fails(&["run", "--rm", "-u", "nosuchuser", BB, "id"], 125);
    assert!(
        err.ends_with("\n\nRun 'berth run --help' for more information\n"),
        "{err}"
    );
    let (_, err) = env.fails(&["run", "--rm", "-it", BB, "true"], 1);
    assert_eq!(err, "the input device is not a TTY\n");
    // `create` prints the engine's errors without it.
    let (_, err) = env.fails(&["create", "-u", "nosuchuser", "nosuchimage"], 1);
    assert!(!err.contains("--help"), "{err}");
}
