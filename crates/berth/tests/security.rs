//! The container boundary, tried as an attacker would: a static probe (or
//! busybox) inside the container goes after what the host might have left
//! within reach — the caller's descriptors, its terminal, writable host
//! mounts, the init's host identity, mount destinations that can be raced.
//! Every test here failed before the fix it guards (issue 6). New escape
//! classes from runc's and containerd's history get their test here.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "fds")) {
        /* Every open descriptor above stderr. */
        int any = 0;
        for (int fd = 3; fd < 4096; fd++) {
            if (fcntl(fd, F_GETFD) >= 0) {
                char link[64], target[512];
                snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
                ssize_t n = readlink(link, target, sizeof target - 1);
                target[n > 0 ? n : 0] = 0;
                printf("fd %d -> %s\n", fd, target);
                any = 1;
            }
        }
        if (!any) printf("none\n");
        return 0;
    }
    if (!strcmp(argv[1], "tty")) {
        /* Which terminal can this process reach, and push input into? */
        for (int fd = 0; fd < 3; fd++) {
            char c = '\n';
            int t = isatty(fd);
            int r = t ? ioctl(fd, TIOCSTI, &c) : -1;
            printf("fd%d tty=%d sti=%d ", fd, t, t ? (r == 0 ? 0 : errno) : -1);
        }
        int d = open("/dev/tty", O_RDWR | O_NOCTTY);
        printf("devtty=%d ", d >= 0 ? 0 : errno);
        const char *name = ttyname(0);
        printf("name=%s leader=%d\n", name ? name : "-", getsid(0) == getpid());
        return 0;
    }
    if (!strcmp(argv[1], "pid1")) {
        /* What PID 1 (the init) gives away. */
        int e_env = open("/proc/1/environ", O_RDONLY) >= 0 ? 0 : errno;
        int e_exe = open("/proc/1/exe", O_RDONLY) >= 0 ? 0 : errno;
        int e_exew = open("/proc/1/exe", O_WRONLY) >= 0 ? 0 : errno;
        long r = ptrace(PTRACE_ATTACH, 1, 0, 0);
        int e_ptrace = r == 0 ? 0 : errno;
        printf("environ=%d exe=%d exe_write=%d ptrace=%d\n", e_env, e_exe, e_exew, e_ptrace);
        return 0;
    }
    if (!strcmp(argv[1], "exe-hunt") && argc == 3) {
        /* CVE-2019-5736: look, until the file argv[2] exists, for any
           process whose executable is a berth binary of the host's. */
        while (access(argv[2], F_OK) != 0) {
            for (int pid = 2; pid < 512; pid++) {
                char link[64], target[512];
                snprintf(link, sizeof link, "/proc/%d/exe", pid);
                ssize_t n = readlink(link, target, sizeof target - 1);
                if (n <= 0) continue;
                target[n] = 0;
                if (strstr(target, "berth") && !strstr(target, "memfd:")) {
                    printf("pid %d exe %s\n", pid, target);
                    return 1;
                }
            }
        }
        printf("clean\n");
        return 0;
    }
    if (!strcmp(argv[1], "swap") && argc == 4) {
        /* Swap two names atomically, forever. */
        for (;;)
            syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[3], 2 /* RENAME_EXCHANGE */);
    }
    return 2;
}
"#;

fn probe() -> String {
    probe_volume(&static_probe("security-probe", PROBE))
}

/// `cmd` run from a shell that has opened the host's `/` as descriptor 7
/// (not close-on-exec), as `exec 7</` leaves it in an interactive shell.
fn with_fd7(cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("exec 7</ && exec \"$@\"")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    sh
}

fn run_fd7(env: &TestEnv, args: &[&str]) -> Output {
    output_with_timeout(with_fd7(&env.berth(args)), COMMAND_TIMEOUT)
}

fn ok_fd7(env: &TestEnv, args: &[&str]) -> String {
    let out = run_fd7(env, args);
    assert!(
        out.status.success(),
        "berth {args:?}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The descriptors a process holds, as "N -> target" lines.
fn host_fds(pid: u32) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            let t = fs::read_link(e.path()).unwrap_or_default();
            v.push(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                t.display()
            ));
        }
    }
    v
}

fn monitor_of(env: &TestEnv, name: &str) -> u32 {
    let pid = env.container_pid(name);
    proc_stat_of(pid)
        .map(|(_, ppid, _)| ppid)
        .unwrap_or_else(|| panic!("no /proc/{pid}/stat"))
}

// ---------------------------------------------------------------- 1. descriptors

#[test]
fn callers_descriptors_reach_neither_container_nor_monitor() {
    let env = TestEnv::with_busybox();
    let p = probe();
    // run: the container's first process.
    let out = ok_fd7(&env, &["run", "--rm", "-v", &p, BB, "/t/probe", "fds"]);
    assert_eq!(out, "none\n", "run leaked descriptors");
    let out = run_fd7(
        &env,
        &["run", "--rm", BB, "cat", "/proc/self/fd/7/etc/hostname"],
    );
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stdout),
        "",
        "the host's / was reachable through fd 7"
    );

    // run -d, create + start, restart: PID 1 and the monitor.
    ok_fd7(
        &env,
        &["run", "-d", "--name", "dd", "-v", &p, BB, "sleep", "1000"],
    );
    ok_fd7(
        &env,
        &["create", "--name", "box", "-v", &p, BB, "sleep", "1000"],
    );
    ok_fd7(&env, &["start", "box"]);
    ok_fd7(
        &env,
        &["run", "-d", "--name", "rr", "-v", &p, BB, "sleep", "1000"],
    );
    ok_fd7(&env, &["restart", "-t", "0", "rr"]);
    for name in ["dd", "box", "rr"] {
        let pid1 = env.ok(&["exec", name, "ls", "/proc/1/fd"]);
        assert_eq!(pid1, "0\n1\n2\n", "{name}: PID 1 holds more than stdio");
        // exec, itself started with fd 7 open.
        let out = ok_fd7(&env, &["exec", name, "/t/probe", "fds"]);
        assert_eq!(out, "none\n", "{name}: exec leaked descriptors");
        let mon = monitor_of(&env, name);
        let fds = host_fds(mon);
        assert!(
            !fds.iter().any(|f| f.ends_with(" -> /")),
            "{name}: the monitor {mon} keeps the caller's fd 7: {fds:?}"
        );
    }
}

#[test]
fn a_working_directory_through_a_descriptor_is_refused() {
    let env = TestEnv::with_busybox();
    let out = run_fd7(&env, &["run", "--rm", "-w", "/proc/self/fd/7", BB, "pwd"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    env.ok(&["run", "-d", "--name", "box", BB, "sleep", "1000"]);
    let out = run_fd7(&env, &["exec", "-w", "/proc/self/fd/7", "box", "pwd"]);
    assert!(!out.status.success());
    // Docker's daemon reports a failed start on the exec's stdout: the
    // only thing there is that error, not the command's output.
    let stdout = text(&out.stdout);
    assert!(
        stdout.is_empty() || stdout.starts_with("OCI runtime exec failed: "),
        "exec ran outside the container's root: {stdout}"
    );
}

// ---------------------------------------------------------------- 2. terminals

/// `berth ARGS` run by util-linux `script`: berth gets a terminal of its
/// own, as in an interactive shell. Returns what the terminal showed.
fn in_terminal(env: &TestEnv, args: &[&str]) -> String {
    let cmd = env.berth(args);
    let mut line = format!("'{}'", cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::null());
    let out = output_with_timeout(script, COMMAND_TIMEOUT);
    text(&out.stdout)
}

#[test]
fn exec_never_hands_the_container_the_callers_terminal() {
    let env = TestEnv::with_busybox();
    let p = probe();
    env.ok(&["run", "-d", "--name", "box", "-v", &p, BB, "sleep", "1000"]);
    // Without -t: pipes, no controlling terminal, a session of its own.
    let seen = in_terminal(&env, &["exec", "box", "/t/probe", "tty"]);
    assert!(
        seen.contains(
            "fd0 tty=0 sti=-1 fd1 tty=0 sti=-1 fd2 tty=0 sti=-1 devtty=6 name=- leader=1"
        ),
        "exec without -t reached a terminal: {seen:?}"
    );
    let seen = in_terminal(&env, &["exec", "-i", "box", "/t/probe", "tty"]);
    assert!(seen.contains("fd0 tty=0"), "exec -i: {seen:?}");
    // With -t: a new terminal of the container's own devpts.
    let seen = in_terminal(&env, &["exec", "-it", "box", "/t/probe", "tty"]);
    assert!(
        seen.contains("fd0 tty=1 sti=0 fd1 tty=1 sti=0 fd2 tty=1 sti=0 devtty=0 name=/dev/pts/"),
        "exec -t: {seen:?}"
    );
    assert!(seen.contains("leader=1"), "exec -t: {seen:?}");
}

#[test]
fn an_execd_process_is_not_the_callers_child() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "box", BB, "sleep", "1000"]);
    let mut cli = env
        .berth(&["exec", "box", "sleep", "777"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn berth exec: {e}"));
    poll("the exec'd sleep", Duration::from_secs(20), || {
        env.ok(&["top", "box"]).contains("sleep 777").then_some(())
    });
    let children =
        fs::read_to_string(format!("/proc/{0}/task/{0}/children", cli.id())).unwrap_or_default();
    let _ = cli.kill();
    let _ = cli.wait();
    assert_eq!(children.trim(), "", "berth exec has children: {children}");
    // The command outlives its caller, as with Docker.
    assert!(env.ok(&["top", "box"]).contains("sleep 777"));
}

// ---------------------------------------------------------------- 3. read-only binds

#[test]
fn read_only_binds_are_read_only_all_the_way_down() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap_or_else(|e| panic!("mkdir: {e}"));
    // A submount under the bind's source, in a mount namespace of this
    // test's own (it dies with the command).
    let cmd = env.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/h:ro", dir.path().display()),
        BB,
        "sh",
        "-c",
        "touch /h/sub/x 2>&1; touch /h/y 2>&1; grep -F \" /h/sub \" /proc/self/mountinfo | cut -d\" \" -f6",
    ]);
    let mut line = format!("mount -t tmpfs berth-test '{}' && exec", sub.display());
    line.push_str(&format!(" '{}'", cmd.get_program().to_string_lossy()));
    for a in cmd.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    let mut unshare = Command::new("unshare");
    unshare
        .args(["-m", "--propagation", "private", "sh", "-c", &line])
        .stdin(Stdio::null());
    let out = output_with_timeout(unshare, COMMAND_TIMEOUT);
    let seen = text(&out.stdout);
    assert!(out.status.success(), "{seen}{}", text(&out.stderr));
    assert!(
        seen.contains("touch: /h/sub/x: Read-only file system"),
        "the submount was writable: {seen}"
    );
    assert!(
        seen.contains("touch: /h/y: Read-only file system"),
        "{seen}"
    );
    assert!(
        seen.lines().last().is_some_and(|l| l.starts_with("ro,")),
        "{seen}"
    );
}

// ---------------------------------------------------------------- 4. --init

#[test]
fn the_init_shows_nothing_of_the_host() {
    let env = TestEnv::with_busybox();
    let p = probe();
    let root = env.root.path().display().to_string();
    let mut cmd = env.berth(&[
        "run",
        "--rm",
        "--init",
        "-e",
        "MINE=1",
        "-v",
        &p,
        BB,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; /t/probe pid1; readlink /proc/1/exe; echo",
    ]);
    cmd.env("BERTH_HOST_SECRET", "hunter2");
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    let seen = text(&out.stdout);
    assert!(out.status.success(), "{seen}{}", text(&out.stderr));
    assert!(!seen.contains(&root), "host paths in PID 1: {seen}");
    assert!(
        !seen.contains("berth-monitor"),
        "the monitor is PID 1: {seen}"
    );
    assert!(
        !seen.contains("hunter2"),
        "host environment in PID 1: {seen}"
    );
    // Not dumpable: its environment, executable and memory are out of
    // reach (13 EACCES / 1 EPERM).
    assert!(
        seen.contains("environ=13 exe=13 exe_write=13 ptrace=1"),
        "PID 1 is reachable: {seen}"
    );
    assert!(seen.starts_with("berth-init /bin/sh -- sh -c"), "{seen}");
}

// ---------------------------------------------------------------- 5. a busy monitor

#[test]
fn a_container_that_closes_its_output_costs_its_monitor_nothing() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        BB,
        "sh",
        "-c",
        "exec >&- 2>&-; exec sleep 1000",
    ]);
    let pid = env.container_pid("box");
    poll(
        "the container to close stdout",
        Duration::from_secs(20),
        || (!Path::new(&format!("/proc/{pid}/fd/1")).exists()).then_some(()),
    );
    let mon = monitor_of(&env, "box");
    let before = cpu_ticks(mon).unwrap_or_else(|| panic!("no monitor {mon}"));
    // A measuring window, not a wait: a spinning monitor burns ~100 ticks here.
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(mon).unwrap_or(before) - before;
    assert!(
        used <= 5,
        "the monitor used {used} ticks in {:?} while its container slept",
        start.elapsed()
    );
}

// ---------------------------------------------------------------- 6. raced mount targets

#[test]
fn a_shared_volume_cannot_redirect_a_bind_mount() {
    let env = TestEnv::with_busybox();
    let p = probe();
    let host = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    fs::write(host.path().join("marker"), "host dir\n").unwrap_or_else(|e| panic!("{e}"));
    // Another container swaps /v/a (a symlink to /proc/sys) and /v/b (a
    // directory) as fast as the kernel allows.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flipper",
        "-v",
        "shared:/v",
        "-v",
        &p,
        BB,
        "sh",
        "-c",
        "mkdir -p /v/b/kernel && ln -s /proc/sys /v/a && exec /t/probe swap /v/a /v/b",
    ]);
    let bind = format!("{}:/data/a/kernel", host.path().display());
    let mut refused = 0;
    for i in 0..25 {
        let out = env.run(&[
            "run",
            "--rm",
            "-v",
            "shared:/data",
            "-v",
            &bind,
            BB,
            "sh",
            "-c",
            "if [ -e /proc/sys/kernel/marker ]; then echo COVERED; else cat /proc/sys/kernel/ostype; fi",
        ]);
        let seen = text(&out.stdout);
        assert!(
            !seen.contains("COVERED"),
            "try {i}: the bind went over /proc/sys/kernel"
        );
        if out.status.success() {
            assert_eq!(seen, "Linux\n", "try {i}");
        } else {
            assert!(
                text(&out.stderr).contains("because it is inside /proc"),
                "try {i}: {}",
                text(&out.stderr)
            );
            refused += 1;
        }
    }
    // Both outcomes of the race happen: the check really ran against it.
    assert!(refused > 0, "never refused: the swap did not run");
}

// ---------------------------------------------------------------- 7. defence in depth

#[test]
fn monitors_live_in_their_own_cgroup_and_are_nobodys_child() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "box", BB, "sleep", "1000"]);
    let mon = monitor_of(&env, "box");
    let cg = fs::read_to_string(format!("/proc/{mon}/cgroup")).unwrap_or_default();
    let want = format!("/{}/monitors", env.cgroup_parent);
    assert!(
        cg.lines().any(|l| l.ends_with(&format!(":{want}"))),
        "the monitor is not in {want}:\n{cg}"
    );
    let ours = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for l in ours.lines().filter(|l| !l.ends_with(":/")) {
        assert!(!cg.contains(l), "the monitor shares our cgroup {l}:\n{cg}");
    }
    // Exec monitors too: the exec'd command's host-side parent chain.
    let mut cli = env
        .berth(&["exec", "box", "sleep", "555"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let exec_mon = poll("the exec monitor", Duration::from_secs(20), || {
        fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = text(&cmd);
            (cmd.contains("berth-monitor\0--exec\0")
                && cmd.contains(&env.root.path().display().to_string()))
            .then_some(pid)
        })
    });
    // It moves itself there first thing.
    let cg = poll("the exec monitor's cgroup", Duration::from_secs(20), || {
        let cg = fs::read_to_string(format!("/proc/{exec_mon}/cgroup")).ok()?;
        cg.lines()
            .any(|l| l.ends_with(&format!(":{want}")))
            .then_some(cg)
    });
    let _ = cli.kill();
    let _ = cli.wait();
    assert!(cg.contains(&want), "{cg}");
}

#[test]
fn tmpfs_has_dockers_defaults_and_kernel_file_systems_cannot_be_covered() {
    let env = TestEnv::with_busybox();
    let mi = env.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t",
        "--tmpfs",
        "/x:exec,size=1m",
        BB,
        "cat",
        "/proc/self/mountinfo",
    ]);
    let opts = |point: &str| {
        mi.lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .and_then(|l| l.split(' ').nth(5))
            .unwrap_or_else(|| panic!("no {point} in\n{mi}"))
            .to_string()
    };
    assert_eq!(opts("/t"), "rw,nosuid,nodev,noexec,relatime");
    assert_eq!(opts("/x"), "rw,nosuid,nodev,relatime");
    let (_, err) = env.fails(&["run", "--rm", "--tmpfs", "/t:bogus", BB, "true"], 125);
    assert!(err.contains("invalid tmpfs option [\"bogus\"]"), "{err}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "a refused run left a container");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let bind = format!("{}:/proc/sys", dir.path().display());
    for opts in [
        vec!["--tmpfs", "/proc"],
        vec!["--tmpfs", "/proc/sys"],
        vec!["-v", bind.as_str()],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(&opts);
        args.extend_from_slice(&[BB, "true"]);
        let (_, err) = env.fails(&args, 125);
        assert!(
            err.contains("because it is inside /proc"),
            "{opts:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------- CVE history

/// CVE-2019-5736: while `berth exec` enters the container, the entering
/// process is (briefly) a copy of a host berth binary in the container's
/// PID namespace; it must not be reachable (not dumpable) there.
#[test]
fn no_host_berth_binary_is_reachable_from_the_container() {
    let env = TestEnv::with_busybox();
    let p = probe();
    env.ok(&["run", "-d", "--name", "box", "-v", &p, BB, "sleep", "1000"]);
    let hunter = env
        .berth(&["exec", "box", "/t/probe", "exe-hunt", "/tmp/stop"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    for _ in 0..20 {
        env.ok(&["exec", "box", "true"]);
    }
    release(&env, "box", "/tmp/stop");
    let out = hunter
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"));
    assert_eq!(text(&out.stdout), "clean\n");
}

/// CVE-2022-29162: no inheritable capabilities, for the first process and
/// for exec'd ones.
#[test]
fn processes_get_no_inheritable_capabilities() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "box", BB, "sleep", "1000"]);
    for args in [
        vec!["exec", "box", "grep", "CapInh", "/proc/1/status"],
        vec!["exec", "box", "grep", "CapInh", "/proc/self/status"],
        vec![
            "exec",
            "-u",
            "1000",
            "box",
            "grep",
            "CapInh",
            "/proc/self/status",
        ],
    ] {
        assert_eq!(env.ok(&args), "CapInh:\t0000000000000000\n", "{args:?}");
    }
}

/// CVE-2020-15257: nothing of berth listens on an abstract unix socket,
/// which a `--network host` container could reach.
#[test]
fn no_abstract_sockets_reach_host_network_containers() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--network",
        "host",
        BB,
        "sleep",
        "1000",
    ]);
    let mon = monitor_of(&env, "box");
    let inodes: Vec<String> = host_fds(mon)
        .iter()
        .filter_map(|f| {
            f.split("socket:[")
                .nth(1)
                .map(|i| i.trim_end_matches(']').to_string())
        })
        .collect();
    let unix = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for line in unix.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 8 && inodes.iter().any(|i| i == f[6]) {
            assert!(!f[7].starts_with('@'), "the monitor listens on {}", f[7]);
        }
    }
    let seen = env.ok(&["exec", "box", "cat", "/proc/net/unix"]);
    assert!(!seen.contains("@berth"), "{seen}");
}

/// An exec monitor killed with SIGKILL leaves its socket; garbage
/// collection (`system prune`) removes a socket nobody listens on, and only
/// that one.
#[test]
fn a_killed_exec_monitors_socket_is_collected() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "box", BB, "sleep", "1000"]);
    let mut live = env
        .berth(&["exec", "box", "sleep", "600"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut doomed = env
        .berth(&["exec", "box", "sleep", "601"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let sockets = || -> Vec<String> {
        fs::read_dir(env.run_root.path())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("exec-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    poll("two exec sockets", Duration::from_secs(20), || {
        (sockets().len() == 2 && env.ok(&["top", "box"]).contains("sleep 601")).then_some(())
    });
    // The monitor of `sleep 601`: the parent of its host-side waiter.
    let exec_mon = poll(
        "the exec monitor of sleep 601",
        Duration::from_secs(20),
        || {
            fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmd = text(&fs::read(format!("/proc/{pid}/cmdline")).ok()?);
                if !cmd.starts_with("sleep\u{0}601") {
                    return None;
                }
                let (_, waiter, _) = proc_stat_of(pid)?;
                let (_, mon, _) = proc_stat_of(waiter)?;
                Some(mon)
            })
        },
    );
    let _ = Command::new("kill")
        .args(["-9", &exec_mon.to_string()])
        .status();
    let _ = doomed.wait();
    env.ok(&["system", "prune", "-f"]);
    let left = sockets();
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(left.len(), 1, "{left:?}");
}
