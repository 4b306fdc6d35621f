mod common;

// Healthchecks: `--health-*`, `--no-healthcheck`, the image's HEALTHCHECK
// (`commit -c`), what `ps` and `inspect` show, Docker's rules for starting /
// healthy / unhealthy, the start period, timeouts, and what a probe sees of
// the container (as an attacker's command would). Reference: moby's
// daemon/health.go and Docker 20.10 on this machine (see README).

use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn health(env: &TestEnv, name: &str) -> Value {
    env.inspect(name)["State"]["Health"].clone()
}

fn wait_status(env: &TestEnv, name: &str, want: &str) -> Value {
    poll(&format!("{name} to be {want}"), WAIT, || {
        let h = health(env, name);
        (h["Status"] == want).then_some(h)
    })
}

fn ps_status(env: &TestEnv, name: &str) -> String {
    env.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^{name}$"),
        "--format",
        "{{.Status}}",
    ])
    .trim()
    .to_string()
}

#[test]
fn a_container_becomes_healthy_then_unhealthy_as_its_probe_says() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "echo probing; test -e /tmp/ok",
        "--health-interval",
        "50ms",
        "--health-retries",
        "2",
        BB,
        "sleep",
        "300",
    ]);
    // Before any success: starting (failures count, but it stays starting
    // until `retries` of them, then unhealthy).
    let h = wait_status(&env, "web", "unhealthy");
    assert!(h["FailingStreak"].as_u64().unwrap_or(0) >= 2, "{h}");
    assert!(ps_status(&env, "web").ends_with("(unhealthy)"));

    env.ok(&["exec", "web", "touch", "/tmp/ok"]);
    let h = wait_status(&env, "web", "healthy");
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().cloned().unwrap_or_default();
    let last = log.last().cloned().unwrap_or_default();
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "probing\n");
    assert!(
        last["Start"].as_str().is_some_and(|s| s.ends_with('Z'))
            && last["End"].as_str().is_some_and(|s| s.ends_with('Z'))
    );
    let status = ps_status(&env, "web");
    assert!(
        status.starts_with("Up ") && status.ends_with(" (healthy)"),
        "{status}"
    );
    assert_eq!(
        env.ok(&["ps", "-q", "--filter", "health=healthy"]).trim(),
        env.ok(&["ps", "-q", "--filter", "name=web"]).trim()
    );
    assert_eq!(env.ok(&["ps", "-q", "--filter", "health=none"]).trim(), "");

    // At most five results are kept.
    poll("five log entries", WAIT, || {
        (health(&env, "web")["Log"].as_array().map_or(0, Vec::len) == 5).then_some(())
    });
    env.ok(&["exec", "web", "rm", "/tmp/ok"]);
    let h = wait_status(&env, "web", "unhealthy");
    assert_eq!(h["Log"].as_array().map_or(0, Vec::len), 5);
    assert_eq!(h["Log"][4]["ExitCode"], 1);
}

#[test]
fn stop_makes_it_unhealthy_and_start_starts_over() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--health-cmd",
        "true",
        "--health-interval",
        "50ms",
        BB,
        "sleep",
        "300",
    ]);
    wait_status(&env, "cc", "healthy");
    env.ok(&["stop", "-t", "0", "cc"]);
    let h = health(&env, "cc");
    assert_eq!(h["Status"], "unhealthy");
    assert_eq!(h["FailingStreak"], 0);
    assert!(
        !h["Log"].as_array().is_none_or(Vec::is_empty),
        "the log is kept: {h}"
    );
    assert!(ps_status(&env, "cc").starts_with("Exited"));
    env.ok(&["start", "cc"]);
    let h = health(&env, "cc");
    // Right after start: starting, or already healthy again.
    assert!(h["Status"] == "starting" || h["Status"] == "healthy", "{h}");
    wait_status(&env, "cc", "healthy");
}

#[test]
fn the_probe_runs_as_exec_does_with_the_containers_env_user_and_workdir() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "-e",
        "FOO=bar",
        "-u",
        "1:1",
        "-w",
        "/tmp",
        "--health-cmd",
        "echo $FOO; id -u; pwd",
        "--health-interval",
        "50ms",
        BB,
        "sleep",
        "300",
    ]);
    let h = wait_status(&env, "cc", "healthy");
    assert_eq!(h["Log"][0]["Output"], "bar\n1\n/tmp\n");
}

/// What a probe sees is what `exec` sees: the container's capabilities,
/// seccomp, no_new_privs and cgroup, and no descriptor but its stdio
/// (/dev/null and the output pipe): nothing of the monitor's.
#[test]
fn a_probe_holds_nothing_of_the_host() {
    let env = TestEnv::with_busybox();
    let script = "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; \
                  cat /proc/self/cgroup; ls /proc/self/fd; readlink /proc/self/fd/0; \
                  exit 1";
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--cap-drop",
        "NET_RAW",
        "--security-opt",
        "no-new-privileges",
        "--health-cmd",
        script,
        "--health-interval",
        "50ms",
        BB,
        "sleep",
        "300",
    ]);
    let out = poll("a probe's output", WAIT, || {
        let h = health(&env, "cc");
        h["Log"][0]["Output"].as_str().map(str::to_string)
    });
    let exec = env.run(&["exec", "cc", "sh", "-c", script]);
    let exec = text(&exec.stdout);
    let lines = |s: &str, keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        s.lines().filter(|l| keep(l)).map(str::to_string).collect()
    };
    let not_fd = |l: &str| !l.chars().all(|c| c.is_ascii_digit()) && !l.starts_with('/');
    assert_eq!(
        lines(&out, &not_fd),
        lines(&exec, &not_fd),
        "probe:\n{out}\nexec:\n{exec}"
    );
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );
    let fds = lines(&out, &|l: &str| l.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "descriptors of the probe:\n{out}"
    );
    assert!(out.contains("/dev/null"), "{out}");
}

#[test]
fn a_probe_past_its_timeout_is_killed_and_fails_with_minus_one() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--health-cmd",
        "echo partial; exec sleep 1000",
        "--health-timeout",
        "200ms",
        "--health-interval",
        "50ms",
        "--health-retries",
        "1",
        BB,
        "sleep",
        "300",
    ]);
    let h = wait_status(&env, "cc", "unhealthy");
    let first = &h["Log"][0];
    assert_eq!(first["ExitCode"], -1, "{h}");
    assert_eq!(
        first["Output"],
        "Health check exceeded timeout (200ms): partial\n"
    );
    // The timed-out probe does not linger in the container.
    poll("no probe left running", WAIT, || {
        let top = env.ok(&["top", "cc"]);
        (!top.contains("sleep 1000")).then_some(())
    });
}

#[test]
fn the_start_period_forgives_failures() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--health-cmd",
        "false",
        "--health-interval",
        "50ms",
        "--health-start-period",
        "1h",
        "--health-start-interval",
        "50ms",
        "--health-retries",
        "1",
        BB,
        "sleep",
        "300",
    ]);
    let h = poll("three failed probes", WAIT, || {
        let h = health(&env, "cc");
        (h["Log"].as_array().map_or(0, Vec::len) >= 3).then_some(h)
    });
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0);
    assert!(ps_status(&env, "cc").ends_with("(health: starting)"));
}

#[test]
fn config_healthcheck_as_docker_records_it() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "create",
        "--name",
        "ca",
        "--health-cmd",
        "true",
        "--health-interval",
        "2s",
        "--health-retries",
        "5",
        BB,
        "true",
    ]);
    assert_eq!(
        inspect_f(&env, "{{json .Config.Healthcheck}}", "ca"),
        r#"{"Test":["CMD-SHELL","true"],"Interval":2000000000,"Retries":5}"#
    );
    // Never started: no State.Health yet.
    assert_eq!(inspect_f(&env, "{{json .State.Health}}", "ca"), "null");
    env.ok(&["create", "--name", "cb", "--no-healthcheck", BB, "true"]);
    assert_eq!(
        inspect_f(&env, "{{json .Config.Healthcheck}}", "cb"),
        r#"{"Test":["NONE"]}"#
    );
    env.ok(&["create", "--name", "cc", BB, "true"]);
    assert_eq!(env.inspect("cc")["Config"].get("Healthcheck"), None);
}

#[test]
fn the_images_healthcheck_is_inherited_and_merged() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "src", BB, "true"]);
    env.ok(&[
        "commit",
        "-c",
        "HEALTHCHECK --interval=50ms --retries=2 CMD [\"sh\", \"-c\", \"echo from-image\"]",
        "src",
        "hc",
    ]);
    assert_eq!(
        env.inspect_image("hc")["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD", "sh", "-c", "echo from-image"], "Interval": 50_000_000, "Retries": 2})
    );
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--health-retries",
        "7",
        "hc",
        "sleep",
        "300",
    ]);
    assert_eq!(
        inspect_f(&env, "{{json .Config.Healthcheck}}", "cc"),
        r#"{"Test":["CMD","sh","-c","echo from-image"],"Interval":50000000,"Retries":7}"#
    );
    let h = wait_status(&env, "cc", "healthy");
    assert_eq!(h["Log"][0]["Output"], "from-image\n");
    // --no-healthcheck turns the image's off.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "hc",
        "sleep",
        "300",
    ]);
    assert_eq!(inspect_f(&env, "{{json .State.Health}}", "off"), "null");
    assert!(!ps_status(&env, "off").contains('('));
    env.ok(&["commit", "-c", "HEALTHCHECK NONE", "src", "none"]);
    assert_eq!(
        env.inspect_image("none")["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["NONE"]})
    );
    // A container's healthcheck goes into the image it is committed to.
    env.ok(&["commit", "cc", "again"]);
    assert_eq!(
        env.inspect_image("again")["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD", "sh", "-c", "echo from-image"], "Interval": 50_000_000, "Retries": 7})
    );
    let (_, err) = env.fails(&["commit", "-c", "HEALTHCHECK BOGUS x", "src", "bad"], 1);
    assert!(
        err.contains("Unknown type \"BOGUS\" in HEALTHCHECK (try CMD)"),
        "{err}"
    );
}

#[test]
fn bad_health_options_are_refused_and_create_nothing() {
    let env = TestEnv::with_busybox();
    for (args, msg) in [
        (
            &["--no-healthcheck", "--health-cmd", "true"][..],
            "--no-healthcheck conflicts with --health-* options",
        ),
        (&["--health-retries", "-1"][..], "--health-retries cannot be negative"),
        (&["--health-timeout", "-1s"][..], "--health-timeout cannot be negative"),
        (
            &["--health-interval", "bogus"][..],
            "invalid argument \"bogus\" for \"--health-interval\" flag: time: invalid duration \"bogus\"",
        ),
        (
            &["--health-interval", "100us"][..],
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-start-period", "10us"][..],
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ),
    ] {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[BB, "true"]);
        let out = env.run(&a);
        // The CLI's own checks exit 125, the daemon's 1 (from `create`), as
        // with the docker CLI.
        let code = if msg.contains("Healthcheck") { 1 } else { 125 };
        assert_eq!(out.status.code(), Some(code), "{a:?}");
        assert!(text(&out.stderr).contains(msg), "{a:?}: {}", text(&out.stderr));
    }
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}
