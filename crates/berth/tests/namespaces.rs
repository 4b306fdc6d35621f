//! `--pid container:X` and `--ipc container:X`: joining another running
//! container's namespaces, Docker's checks and words, and what the joiner
//! must never get instead (the host's namespaces, the monitor's).

mod common;
use common::*;

fn ns_of(pid: u32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{ns}: {e}"))
        .display()
        .to_string()
}

fn our_ns(ns: &str) -> String {
    ns_of(std::process::id(), ns)
}

/// A static probe that makes a SysV shared memory segment with key 4242
/// and leaves it there (what `ipcmk` would do).
const SHMGET: &str = r#"
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
int main(void) {
    int id = shmget(4242, 4096, IPC_CREAT | 0600);
    if (id < 0) { perror("shmget"); return 1; }
    printf("%d\n", id);
    return 0;
}
"#;

#[test]
fn pid_container_sees_the_other_containers_processes() {
    let env = TestEnv::with_busybox();
    let donor = env.ok(&["run", "-d", "--name", "donor", BB, "sleep", "1000"]);
    let donor = donor.trim();
    let ps = env.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:donor",
        BB,
        "ps",
        "-o",
        "pid,args",
    ]);
    assert!(
        ps.lines().any(|l| l.trim() == "1 sleep 1000"),
        "the donor's PID 1 is not seen:\n{ps}"
    );
    // Detached: its namespace is the donor's, never the host's, and its
    // monitor went back to its own pid namespace after the clone.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "jj",
        "--pid",
        "container:donor",
        BB,
        "sleep",
        "1000",
    ]);
    let jpid = env.container_pid("jj");
    let dpid = env.container_pid("donor");
    assert_eq!(ns_of(jpid, "pid"), ns_of(dpid, "pid"));
    assert_ne!(ns_of(jpid, "pid"), our_ns("pid"));
    let mon = inspect_f(&env, "{{.State.Pid}}", "jj");
    assert_eq!(mon, jpid.to_string());
    let monitor: u32 = proc_stat_of(jpid)
        .unwrap_or_else(|| panic!("no stat of {jpid}"))
        .1;
    assert_eq!(ns_of(monitor, "pid_for_children"), our_ns("pid"));
    assert_eq!(ns_of(monitor, "ipc"), our_ns("ipc"));
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.PidMode}}", "jj"),
        format!("container:{donor}")
    );
    // The rest stays the joiner's own.
    for ns in ["ipc", "mnt", "uts"] {
        assert_ne!(ns_of(jpid, ns), ns_of(dpid, ns), "{ns}");
    }
}

#[test]
fn ipc_container_shares_sysv_ipc_and_dev_shm() {
    let env = TestEnv::with_busybox();
    let probe = static_probe("shmget", SHMGET);
    let vol = probe_volume(&probe);
    let donor = env.ok(&[
        "run",
        "-d",
        "--name",
        "shr",
        "--ipc",
        "shareable",
        "-v",
        &vol,
        BB,
        "sleep",
        "1000",
    ]);
    env.ok(&["exec", "shr", "/t/probe"]);
    env.ok(&["exec", "shr", "sh", "-c", "echo from-donor > /dev/shm/d"]);
    let out = sh(
        &env,
        &["--ipc", "container:shr"],
        "cat /dev/shm/d; echo from-joiner > /dev/shm/j; awk 'NR>1 {print $1}' /proc/sysvipc/shm",
    );
    assert_eq!(out, "from-donor\n4242\n");
    assert_eq!(
        env.ok(&["exec", "shr", "cat", "/dev/shm/j"]),
        "from-joiner\n"
    );
    // Not the host's segments, nor the host's IPC namespace.
    let host = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    assert!(!host
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().next() == Some("4242")));
    env.ok(&[
        "run",
        "-d",
        "--name",
        "jj",
        "--ipc",
        "container:shr",
        BB,
        "sleep",
        "1000",
    ]);
    let jpid = env.container_pid("jj");
    assert_eq!(ns_of(jpid, "ipc"), ns_of(env.container_pid("shr"), "ipc"));
    assert_ne!(ns_of(jpid, "ipc"), our_ns("ipc"));
    assert_ne!(ns_of(jpid, "mnt"), ns_of(env.container_pid("shr"), "mnt"));
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.IpcMode}}", "jj"),
        format!("container:{}", donor.trim())
    );
    // Both at once.
    let both = sh(
        &env,
        &["--pid", "container:shr", "--ipc", "container:shr"],
        "cat /dev/shm/d; ps -o args | grep -c '^sleep 1000'",
    );
    assert_eq!(both, "from-donor\n1\n");
}

/// Docker's checks and words: the donor must exist at create, run at
/// start, and (for IPC) be shareable; `--ipc none` has no /dev/shm.
#[test]
fn joining_is_refused_as_docker_refuses_it() {
    let env = TestEnv::with_busybox();
    let (_, e) = env.fails(&["run", "--rm", "--pid", "container:nope", BB, "true"], 125);
    assert!(e.contains("No such container: nope"), "{e}");
    let (_, e) = env.fails(&["create", "--ipc", "container:nope", BB, "true"], 1);
    assert!(e.contains("No such container: nope"), "{e}");

    let private = env.ok(&["run", "-d", "--name", "priv", BB, "sleep", "1000"]);
    let private = private.trim();
    let (_, e) = env.fails(&["run", "--rm", "--ipc", "container:priv", BB, "true"], 125);
    assert!(
        e.contains(&format!(
            "can't join IPC of container {private}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
        )),
        "{e}"
    );
    let stopped = env.ok(&[
        "create",
        "--name",
        "stopped",
        "--ipc",
        "shareable",
        BB,
        "true",
    ]);
    let stopped = stopped.trim();
    let (_, e) = env.fails(
        &["run", "--rm", "--pid", "container:stopped", BB, "true"],
        125,
    );
    assert!(
        e.contains(&format!("container {stopped} is not running")),
        "{e}"
    );
    env.ok(&[
        "create",
        "--name",
        "jj",
        "--ipc",
        "container:stopped",
        BB,
        "true",
    ]);
    let (_, e) = env.fails(&["start", "jj"], 1);
    assert!(
        e.contains(&format!(
            "can't join IPC of container {stopped}: container {stopped} is not running"
        )),
        "{e}"
    );
    let (_, e) = env.fails(&["run", "--rm", "--ipc", "container:", BB, "true"], 125);
    assert!(
        e.contains("can't join IPC of container : invalid name or ID supplied: \"\""),
        "{e}"
    );
    let (_, e) = env.fails(&["run", "--rm", "--pid", "container:", BB, "true"], 125);
    assert!(e.contains("--pid: invalid PID mode"), "{e}");
    // `--rm`: a container whose start was refused is removed, as Docker's.
    let before = env.ok(&["ps", "-aq"]);
    env.fails(&["run", "--rm", "--ipc", "container:priv", BB, "true"], 125);
    env.fails(
        &["run", "-d", "--rm", "--ipc", "container:priv", BB, "true"],
        125,
    );
    assert_eq!(env.ok(&["ps", "-aq"]), before);

    let out = run_sh(&env, &["--ipc", "none"], "ls -d /dev/shm");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such file or directory"));
}

/// As an attacker would: the donor's recorded PID now belongs to a host
/// process (a recycled PID, the race between the engine's check and the
/// monitor's join) — the join must fail, never take the host's namespaces.
#[test]
fn a_recycled_donor_pid_never_joins_the_host() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "dd",
        "--ipc",
        "shareable",
        BB,
        "sleep",
        "1000",
    ]);
    let dir = env.root.path().join("containers").join(id.trim());
    let mut host = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap_or_else(|e| panic!("sleep: {e}"));
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&state).unwrap();
    v["Pid"] = serde_json::json!(host.id());
    std::fs::write(dir.join("state.json"), v.to_string()).unwrap();
    for flag in ["--pid", "--ipc"] {
        let out = env.run(&[
            "run",
            "--rm",
            flag,
            "container:dd",
            BB,
            "sh",
            "-c",
            "echo RAN",
        ]);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{flag}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stdout).contains("RAN"), "{flag}");
        assert!(
            text(&out.stderr).contains("is not the container's"),
            "{flag}: {}",
            text(&out.stderr)
        );
    }
    // Back to the truth, so that the teardown stops the real container.
    std::fs::write(dir.join("state.json"), state).unwrap();
    let _ = host.kill();
    let _ = host.wait();
}

/// As an attacker would: a donor that replaces its /dev/shm with a link to
/// its own /proc (magic links lead anywhere), or with a directory of its
/// /dev (a tmpfs that allows device nodes), hands the joiner nothing: only
/// the root of a tmpfs mount is shared.
#[test]
fn a_donor_cannot_hand_over_anything_but_its_shm() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "dd",
        "--ipc",
        "shareable",
        "--cap-add",
        "SYS_ADMIN",
        BB,
        "sleep",
        "1000",
    ]);
    env.ok(&[
        "exec",
        "dd",
        "sh",
        "-c",
        "umount /dev/shm && rmdir /dev/shm && ln -s /proc/1/root /dev/shm",
    ]);
    let (_, e) = env.fails(&["run", "--rm", "--ipc", "container:dd", BB, "true"], 125);
    assert!(e.contains("/dev/shm"), "{e}");
    env.ok(&["exec", "dd", "sh", "-c", "rm /dev/shm && mkdir /dev/shm"]);
    let (_, e) = env.fails(&["run", "--rm", "--ipc", "container:dd", BB, "true"], 125);
    assert!(
        e.contains("the other container's /dev/shm is not a tmpfs mount"),
        "{e}"
    );
}
