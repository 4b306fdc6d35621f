//! `pause` / `unpause` (issue 11's first piece): the cgroup freezer, as
//! Docker's.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn pause_freezes_and_unpause_thaws() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "spin",
        BB,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let pid = env.container_pid("spin");
    assert_eq!(env.ok(&["pause", "spin"]), "spin\n");
    // Frozen: the busy loop is off the CPU, waiting in the freezer.
    let state = proc_stat_of(pid).map(|s| s.0);
    assert_eq!(state, Some('D'), "a frozen task sleeps uninterruptibly");
    assert_eq!(
        inspect_f(
            &env,
            "{{.State.Status}} {{.State.Running}} {{.State.Paused}}",
            "spin"
        ),
        "paused true true"
    );
    let ps = env.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.trim().ends_with("(Paused)"), "{ps}");
    assert_eq!(
        env.ok(&["ps", "--filter", "status=paused", "--format", "{{.Names}}"]),
        "spin\n"
    );
    let (_, err) = env.fails(&["pause", "spin"], 1);
    assert!(err.contains("is already paused"), "{err}");
    assert_eq!(env.ok(&["unpause", "spin"]), "spin\n");
    poll("the loop to run again", Duration::from_secs(5), || {
        (proc_stat_of(pid).map(|s| s.0) == Some('R')).then_some(())
    });
    assert_eq!(inspect_f(&env, "{{.State.Paused}}", "spin"), "false");
    let (_, err) = env.fails(&["unpause", "spin"], 1);
    assert!(err.contains("is not paused"), "{err}");
}

#[test]
fn a_paused_container_stops_and_only_a_running_one_pauses() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "idle", BB, "true"]);
    let (_, err) = env.fails(&["pause", "idle"], 1);
    assert!(err.contains("is not running"), "{err}");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        BB,
        "sh",
        "-c",
        "trap 'exit 7' TERM; while :; do sleep 1; done",
    ]);
    env.ok(&["pause", "trapper"]);
    // stop thaws it first: the TERM reaches its trap.
    env.ok(&["stop", "-t", "10", "trapper"]);
    assert_eq!(
        inspect_f(&env, "{{.State.Status}} {{.State.ExitCode}}", "trapper"),
        "exited 7"
    );
    env.ok(&["run", "-d", "--name", "kk", BB, "sleep", "300"]);
    env.ok(&["pause", "kk"]);
    env.ok(&["rm", "-f", "kk"]);
    assert!(env.run(&["inspect", "kk"]).status.code() == Some(1));
}
