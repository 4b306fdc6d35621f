//! The idle mode (`--idle-timeout`): a container that used no CPU and
//! received no packet for the timeout is frozen by its monitor, and thawed
//! by the next connection to one of its ports, which is answered — never
//! refused. While idle, its monitor does not wake at all.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// A web server answering `hello` on port 80.
const WEB: &str = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www";

fn idle(env: &TestEnv, name: &str) -> bool {
    inspect_f(env, "{{.State.Idle}}", name) == "true"
}

fn wait_idle(env: &TestEnv, name: &str) {
    poll(
        &format!("{name} to go idle"),
        Duration::from_secs(20),
        || idle(env, name).then_some(()),
    );
}

/// The monitor's context switches (voluntary, involuntary).
fn switches(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("monitor {pid}: {e}"));
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {s}"))
    };
    (
        get("voluntary_ctxt_switches:"),
        get("nonvoluntary_ctxt_switches:"),
    )
}

fn monitor_of(env: &TestEnv, name: &str) -> u32 {
    let pid = env.container_pid(name);
    proc_stat_of(pid)
        .map(|(_, ppid, _)| ppid)
        .unwrap_or_else(|| panic!("no process {pid}"))
}

fn get(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut out = String::new();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| s.write_all(b"GET / HTTP/1.0\r\n\r\n"))
        .and_then(|()| s.read_to_string(&mut out))
        .unwrap_or_else(|e| panic!("GET from {addr}: {e}"));
    out
}

fn freezer_state(env: &TestEnv, name: &str) -> String {
    let id = inspect_f(env, "{{.Id}}", name);
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer/{}/{id}/freezer.state",
        env.cgroup_parent
    ))
    .map(|s| s.trim().to_string())
    .unwrap_or_default()
}

#[test]
fn an_idle_container_is_frozen_and_the_first_connection_thaws_it() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:8080:80",
        "--idle-timeout",
        "500ms",
        BB,
        "sh",
        "-c",
        WEB,
    ]);
    wait_idle(&env, "web");
    assert_eq!(freezer_state(&env, "web"), "FROZEN");
    let ps = env.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.trim().ends_with("(Idle)"), "{ps}");
    assert_eq!(
        inspect_f(&env, "{{.State.Status}} {{.State.Paused}}", "web"),
        "running false"
    );
    assert!(!inspect_f(&env, "{{.State.IdleSince}}", "web").starts_with("0001"));
    // While idle nothing of berth wakes for it: an observation window (not
    // a wait for something) over ten of the awake checks' periods.
    let monitor = monitor_of(&env, "web");
    let before = switches(monitor);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(switches(monitor), before, "the idle monitor woke up");
    // The first connection is answered in full.
    let reply = get("127.0.0.1:8080");
    assert!(
        reply.starts_with("HTTP/1.") && reply.ends_with("hello\n"),
        "{reply}"
    );
    assert!(!idle(&env, "web"));
    assert_eq!(freezer_state(&env, "web"), "THAWED");
    // And it sleeps again once the traffic stops.
    wait_idle(&env, "web");
    let reply = get(&format!("{}:8080", "127.0.0.1"));
    assert!(reply.ends_with("hello\n"), "{reply}");
    let ev = env.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        &format!("{:.9}", now_secs()),
        "--filter",
        "event=idle",
        "--filter",
        "event=wake",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(ev, "idle\nwake\nidle\nwake\n");
}

#[test]
fn exec_stop_and_pause_work_on_an_idle_container() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "sl",
        "--network",
        "none",
        "--idle-timeout",
        "300ms",
        BB,
        "sh",
        "-c",
        "trap 'exit 3' TERM; sleep 1000 & wait",
    ]);
    wait_idle(&env, "sl");
    // exec wakes it first (its command would join a frozen cgroup).
    assert_eq!(env.ok(&["exec", "sl", "echo", "awake"]), "awake\n");
    wait_idle(&env, "sl");
    // pause turns idle into a user's pause: its monitor leaves it frozen.
    env.ok(&["pause", "sl"]);
    assert_eq!(
        inspect_f(&env, "{{.State.Status}} {{.State.Idle}}", "sl"),
        "paused false"
    );
    let (_, err) = env.fails(&["pause", "sl"], 1);
    assert!(err.contains("is already paused"), "{err}");
    env.ok(&["unpause", "sl"]);
    assert_eq!(inspect_f(&env, "{{.State.Status}}", "sl"), "running");
    wait_idle(&env, "sl");
    // unpause is for paused containers only, as Docker's.
    let (_, err) = env.fails(&["unpause", "sl"], 1);
    assert!(err.contains("is not paused"), "{err}");
    // stop: the signal reaches a thawed process, which handles it.
    env.ok(&["stop", "-t", "20", "sl"]);
    assert_eq!(
        inspect_f(&env, "{{.State.Status}} {{.State.ExitCode}}", "sl"),
        "exited 3"
    );
    assert!(!env
        .root
        .path()
        .join("containers")
        .join(inspect_f(&env, "{{.Id}}", "sl"))
        .join("idle")
        .exists());
}

#[test]
fn a_busy_container_stays_awake() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--network",
        "none",
        "--idle-timeout",
        "200ms",
        BB,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    // An observation window of several timeouts: it never sleeps.
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < deadline {
        assert!(!idle(&env, "busy"), "a busy container went idle");
    }
    env.ok(&["rm", "-f", "busy"]);
}

#[test]
fn the_config_files_default_and_bad_values() {
    let env = TestEnv::with_busybox();
    let (_, err) = env.fails(&["run", "-d", "--idle-timeout", "soon", BB, "true"], 125);
    assert!(
        err.contains("invalid argument \"soon\" for \"--idle-timeout\" flag"),
        "{err}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    // Without the flag: the config file's `idle-timeout`.
    let cfg = env.root.path().join("config.toml");
    std::fs::write(&cfg, "idle-timeout = \"250ms\"\n").unwrap();
    let out = env
        .berth(&[
            "run",
            "-d",
            "--name",
            "dflt",
            "--network",
            "none",
            BB,
            "sleep",
            "100",
        ])
        .env("BERTH_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.BerthIdleTimeout}}", "dflt"),
        "250000000"
    );
    wait_idle(&env, "dflt");
    // The flag wins; 0 turns it off, and Docker's keys stay as Docker's.
    let out = env
        .berth(&[
            "create",
            "--name",
            "never",
            "--idle-timeout",
            "0",
            BB,
            "true",
        ])
        .env("BERTH_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let hc = env.inspect("never")["HostConfig"].clone();
    assert!(hc.get("BerthIdleTimeout").is_none(), "{hc}");
    assert!(env.inspect("never")["State"].get("Idle").is_none());
    std::fs::write(&cfg, "idle-timeout = \"later\"\n").unwrap();
    let out = env
        .berth(&["create", BB, "true"])
        .env("BERTH_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("idle-timeout: invalid duration"),
        "{out:?}"
    );
    env.ok(&["rm", "-f", "dflt", "never"]);
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
