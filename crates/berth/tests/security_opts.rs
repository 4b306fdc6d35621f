mod common;

// Docker's knobs over the hardening, checked from inside the container as an
// attacker would see it: --cap-add/--cap-drop, --privileged,
// --security-opt no-new-privileges / seccomp=unconfined|FILE /
// systempaths=unconfined / label / apparmor, and what `exec` and `inspect`
// make of them. Reference: Docker 20.10 on this machine (see README).

use std::fs;

use common::*;

/// The value of `Field:` in a /proc/PID/status text.
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
}

fn status(env: &TestEnv, opts: &[&str]) -> String {
    sh(env, opts, "cat /proc/self/status")
}

/// A static probe printing the errno (0: success) of `unshare(CLONE_NEWUSER)`,
/// of mounting a tmpfs on /tmp and of `ptrace(PTRACE_TRACEME)`. Each call is
/// harmless inside a container: a new user namespace or a mount live only in
/// the probe's own namespaces. Built once with `cc -static`.
/// A static probe that prints the errno of `unshare(CLONE_NEWUSER)`, a tmpfs
/// mount and `ptrace(PTRACE_TRACEME)` (0 when the call succeeded).
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <unistd.h>

int main(void) {
    int e_mount = mount("none", "/tmp", "tmpfs", 0, "") < 0 ? errno : 0;
    int e_ptrace = ptrace(PTRACE_TRACEME, 0, 0, 0) < 0 ? errno : 0;
    int e_unshare = unshare(CLONE_NEWUSER) < 0 ? errno : 0;
    printf("unshare=%d mount=%d ptrace=%d\n", e_unshare, e_mount, e_ptrace);
    return 0;
}
"#;

fn probe_volume() -> String {
    common::probe_volume(&static_probe("options-probe", PROBE))
}

/// The probe's output in a container run with `opts`.
fn probe(env: &TestEnv, opts: &[&str]) -> String {
    let volume = probe_volume();
    let mut all = vec!["-v", volume.as_str()];
    all.extend_from_slice(opts);
    sh(env, &all, "/t/probe")
}

/// This test process's permitted capabilities: what `--privileged` grants.
fn own_caps() -> String {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_else(|e| panic!("status: {e}"));
    status_field(&s, "CapPrm")
}

/// Nothing in `containers/` and no rows: nothing was created.
fn assert_nothing_created(env: &TestEnv) {
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    let dir = env.root.path().join("containers");
    let left: Vec<_> = fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
}

// ---------------------------------------------------------------------------
// Capabilities

#[test]
fn cap_drop_all_and_add_one_gives_exactly_that() {
    let env = TestEnv::with_busybox();
    for opts in [
        ["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"],
        ["--cap-drop", "all", "--cap-add", "cap_net_bind_service"],
    ] {
        let s = status(&env, &opts);
        for f in ["CapEff", "CapPrm", "CapBnd"] {
            assert_eq!(status_field(&s, f), "0000000000000400", "{f} with {opts:?}");
        }
        assert_eq!(status_field(&s, "CapInh"), "0000000000000000");
        assert_eq!(status_field(&s, "CapAmb"), "0000000000000000");
    }
}

#[test]
fn cap_add_and_drop_change_dockers_default_set() {
    let env = TestEnv::with_busybox();
    let s = status(
        &env,
        &["--cap-add", "sys_time", "--cap-drop", "CAP_NET_RAW"],
    );
    // a80425fb | SYS_TIME (25) & !NET_RAW (13)
    assert_eq!(status_field(&s, "CapEff"), "00000000aa0405fb");
    assert_eq!(status_field(&s, "CapBnd"), "00000000aa0405fb");
}

#[test]
fn a_user_without_setuid_capabilities_still_switches() {
    let env = TestEnv::with_busybox();
    // The user switch comes before the capability drop (as runc does it).
    assert_eq!(
        sh(
            &env,
            &["--cap-drop", "ALL", "-u", "1000:1000"],
            "id -u; id -g"
        ),
        "1000\n1000\n"
    );
    let s = status(&env, &["--cap-drop", "ALL"]);
    assert_eq!(status_field(&s, "CapEff"), "0000000000000000");
}

#[test]
fn cap_sys_admin_unlocks_its_syscalls_in_the_profile() {
    let env = TestEnv::with_busybox();
    // Without it the profile answers EPERM (ptrace is allowed: Linux >= 4.8).
    assert_eq!(probe(&env, &[]), "unshare=1 mount=1 ptrace=0\n");
    // CAP_SYS_ADMIN: the profile's CAP_SYS_ADMIN group (mount, unshare, ...).
    assert_eq!(
        probe(&env, &["--cap-add", "SYS_ADMIN"]),
        "unshare=0 mount=0 ptrace=0\n"
    );
}

#[test]
fn privileged_gets_every_capability_and_no_confinement() {
    let env = TestEnv::with_busybox();
    let s = status(&env, &["--privileged"]);
    assert_eq!(status_field(&s, "CapEff"), own_caps());
    assert_eq!(status_field(&s, "CapBnd"), own_caps());
    assert_eq!(status_field(&s, "Seccomp"), "0");
    assert_eq!(
        probe(&env, &["--privileged"]),
        "unshare=0 mount=0 ptrace=0\n"
    );
    // /sys read-write, /proc/sys not read-only, nothing masked.
    let mounts = sh(&env, &["--privileged"], "cat /proc/self/mountinfo");
    let sys = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/sys"))
        .unwrap_or_else(|| panic!("no /sys in\n{mounts}"));
    assert!(
        sys.split(' ').nth(5).is_some_and(|o| o.starts_with("rw")),
        "{sys}"
    );
    assert!(!mounts.contains(" /proc/sys "), "{mounts}");
    assert!(!mounts.contains(" /proc/keys "), "{mounts}");
}

// ---------------------------------------------------------------------------
// --security-opt

#[test]
fn no_new_privileges_in_each_of_its_forms() {
    let env = TestEnv::with_busybox();
    for opt in [
        "no-new-privileges",
        "no-new-privileges:true",
        "no-new-privileges=true",
    ] {
        let s = status(&env, &["--security-opt", opt]);
        assert_eq!(status_field(&s, "NoNewPrivs"), "1", "{opt}");
        assert_eq!(status_field(&s, "Seccomp"), "2", "{opt}");
        assert_eq!(status_field(&s, "CapEff"), "00000000a80425fb", "{opt}");
    }
    let s = status(&env, &["--security-opt", "no-new-privileges=false"]);
    assert_eq!(status_field(&s, "NoNewPrivs"), "0");
}

#[test]
fn seccomp_unconfined_loads_no_filter() {
    let env = TestEnv::with_busybox();
    let s = status(&env, &["--security-opt", "seccomp=unconfined"]);
    assert_eq!(status_field(&s, "Seccomp"), "0");
    // The capabilities still apply: mount needs CAP_SYS_ADMIN (EPERM from
    // the kernel now); a user namespace needs none.
    assert_eq!(
        probe(&env, &["--security-opt", "seccomp=unconfined"]),
        "unshare=0 mount=1 ptrace=0\n"
    );
}

#[test]
fn a_users_profile_is_applied() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let profile = dir.path().join("p.json");
    // EDQUOT (122): an errno nothing else would give here.
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}"#,
    )
    .unwrap_or_else(|e| panic!("write profile: {e}"));
    let opt = format!("seccomp={}", profile.display());
    let out = run_sh(&env, &["--security-opt", &opt], "mkdir /x");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Disk quota exceeded"),
        "{}",
        text(&out.stderr)
    );
    // Everything else is allowed by this profile, user namespaces included.
    assert_eq!(
        probe(&env, &["--security-opt", &opt]),
        "unshare=0 mount=1 ptrace=0\n"
    );
}

#[test]
fn a_bad_profile_is_one_line_and_creates_nothing() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for (json, want) in [
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_BAR"}]}"#,
            "syscalls[0].action: string SCMP_ACT_BAR is not a valid action for seccomp",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":"mkdir","action":"SCMP_ACT_ERRNO"}]}"#,
            "syscalls[0].names: expected an array of strings",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","#,
            "compacting json for seccomp profile",
        ),
    ] {
        let profile = dir.path().join("bad.json");
        fs::write(&profile, json).unwrap_or_else(|e| panic!("write: {e}"));
        let opt = format!("seccomp={}", profile.display());
        // `create` answers 1, `run` 125, as the docker CLI's.
        for (verb, code) in [("create", 1), ("run", 125)] {
            let (_, err) = env.fails(&[verb, "--security-opt", &opt, BB, "true"], code);
            assert!(err.contains(want), "{verb}: {err}");
            // One line (`run` adds docker's help hint under it).
            let err = err.trim_end_matches("\n\nRun 'berth run --help' for more information\n");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert_nothing_created(&env);
        }
    }
}

#[test]
fn bad_values_are_refused_as_docker_refuses_them() {
    let env = TestEnv::with_busybox();
    for (opts, want) in [
        (
            vec!["--cap-add", "FOO"],
            "invalid CapAdd: unknown capability: \"CAP_FOO\"",
        ),
        (
            vec!["--cap-drop", "foo"],
            "invalid CapDrop: unknown capability: \"CAP_FOO\"",
        ),
        (
            vec!["--security-opt", "bogus"],
            "Invalid --security-opt: \"bogus\"",
        ),
        (
            vec!["--security-opt", "foo=bar"],
            "invalid --security-opt 2: \"foo=bar\"",
        ),
        (
            vec!["--security-opt", "no-new-privileges=maybe"],
            "invalid --security-opt 2: \"no-new-privileges=maybe\"",
        ),
        (
            vec!["--security-opt", "seccomp=/nonexistent"],
            "opening seccomp profile (/nonexistent) failed: open /nonexistent: no such file or directory",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(&opts);
        args.extend_from_slice(&[BB, "true"]);
        let (_, err) = env.fails(&args, 125);
        assert!(err.contains(want), "{opts:?}: {err}");
    }
    assert_nothing_created(&env);
}

#[test]
fn label_and_apparmor_are_accepted() {
    let env = TestEnv::with_busybox();
    sh(
        &env,
        &[
            "--security-opt",
            "label=disable",
            "--security-opt",
            "apparmor=unconfined",
        ],
        "true",
    );
}

#[test]
fn systempaths_unconfined_masks_nothing() {
    let env = TestEnv::with_busybox();
    let masked = sh(&env, &[], "cat /proc/self/mountinfo");
    assert!(masked.contains(" /proc/sys "), "{masked}");
    let open = sh(
        &env,
        &["--security-opt", "systempaths=unconfined"],
        "cat /proc/self/mountinfo",
    );
    for p in [
        " /proc/sys ",
        " /proc/keys ",
        " /proc/acpi ",
        " /sys/firmware ",
    ] {
        assert!(!open.contains(p), "{p} in\n{open}");
    }
    // /sys stays read-only: only --privileged changes that.
    assert!(open.contains(" /sys ro,"), "{open}");
}

// ---------------------------------------------------------------------------
// exec and inspect

#[test]
fn exec_runs_with_the_containers_own_settings() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        "seccomp=unconfined",
        BB,
        "sleep",
        "300",
    ]);
    let s = env.ok(&["exec", "c1", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&s, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&s, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(&s, "NoNewPrivs"), "1");
    assert_eq!(status_field(&s, "Seccomp"), "0");
    env.ok(&["rm", "-f", "c1"]);

    env.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--cap-add",
        "SYS_ADMIN",
        BB,
        "sleep",
        "300",
    ]);
    let s = env.ok(&["exec", "d1", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&s, "CapEff"), "00000000a82425fb");
    assert_eq!(status_field(&s, "Seccomp"), "2");
    // The container's profile, evaluated for CAP_SYS_ADMIN: unshare allowed.
    env.ok(&["exec", "d1", "unshare", "-U", "true"]);
    env.ok(&["rm", "-f", "d1"]);
}

#[test]
fn inspect_shows_dockers_keys() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let profile = dir.path().join("p.json");
    fs::write(
        &profile,
        "{ \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [] }\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let opt = format!("seccomp={}", profile.display());
    env.ok(&[
        "create",
        "--name",
        "c1",
        "--cap-add",
        "net_admin",
        "--cap-drop",
        "CAP_chown",
        "--security-opt",
        &opt,
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        "label=disable",
        "--security-opt",
        "systempaths=unconfined",
        BB,
        "true",
    ]);
    let h = &env.inspect("c1")["HostConfig"];
    assert_eq!(h["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
    assert_eq!(h["CapDrop"], serde_json::json!(["CAP_CHOWN"]));
    assert_eq!(h["Privileged"], serde_json::json!(false));
    assert_eq!(
        h["SecurityOpt"],
        serde_json::json!([
            "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[]}",
            "no-new-privileges",
            "label=disable"
        ])
    );
    assert_eq!(h["MaskedPaths"], serde_json::json!([]));
    assert_eq!(h["ReadonlyPaths"], serde_json::json!([]));

    env.ok(&["create", "--name", "d1", BB, "true"]);
    let h = &env.inspect("d1")["HostConfig"];
    assert_eq!(h["CapAdd"], serde_json::Value::Null);
    assert_eq!(h["CapDrop"], serde_json::Value::Null);
    assert_eq!(h["SecurityOpt"], serde_json::Value::Null);
    assert!(h["MaskedPaths"]
        .as_array()
        .is_some_and(|a| a.contains(&serde_json::json!("/proc/keys"))));
    assert!(h["ReadonlyPaths"]
        .as_array()
        .is_some_and(|a| a.contains(&serde_json::json!("/proc/sys"))));

    env.ok(&["create", "--name", "p1", "--privileged", BB, "true"]);
    assert_eq!(
        env.inspect("p1")["HostConfig"]["Privileged"],
        serde_json::json!(true)
    );
}

#[test]
fn filters_are_compiled_once_per_profile_and_capability_set() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "a1", BB, "true"]);
    env.ok(&["create", "--name", "b1", BB, "true"]);
    env.ok(&[
        "create",
        "--name",
        "c1",
        "--cap-add",
        "SYS_ADMIN",
        BB,
        "true",
    ]);
    let cache = env.root.path().join("seccomp");
    let entries: Vec<_> = fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e.ends_with(".bpf")), "{entries:?}");
    // A container keeps its filter when the cache goes.
    fs::remove_dir_all(&cache).unwrap_or_else(|e| panic!("rm cache: {e}"));
    assert_eq!(env.ok(&["start", "-a", "a1"]), "");
}

#[test]
fn a_container_from_before_compiled_filters_still_starts_confined() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "old1", BB, "cat", "/proc/self/status"]);
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "old1"]);
    let dir = env.root.path().join("containers").join(id.trim());
    // What an older berth wrote: no filter file, no `security` in the spec.
    fs::remove_file(dir.join("seccomp.bpf")).unwrap_or_else(|e| panic!("rm: {e}"));
    let path = dir.join("monitor.json");
    let mut mon: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).unwrap_or_else(|e| panic!("read: {e}")))
            .unwrap_or_else(|e| panic!("parse: {e}"));
    let spec = mon["spec"]
        .as_object_mut()
        .unwrap_or_else(|| panic!("no spec in {path:?}"));
    spec.remove("security");
    spec.remove("unmask_system_paths");
    fs::write(&path, mon.to_string()).unwrap_or_else(|e| panic!("write: {e}"));
    let s = env.ok(&["start", "-a", "old1"]);
    assert_eq!(status_field(&s, "Seccomp"), "2");
    assert_eq!(status_field(&s, "CapEff"), "00000000a80425fb");
    assert!(dir.join("seccomp.bpf").is_file());
}
