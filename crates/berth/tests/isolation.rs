mod common;

// Isolation, proven from inside a default container as Docker's would be: capabilities,
// seccomp (user namespaces refused), read-only and masked kernel paths, no mount, no
// block devices, own PID/UTS/network/cgroup namespaces, users, a read-only root, /dev.
// Reference values: /work/shared/reference/runtime-findings.md (Docker 20.10 here).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use common::*;

/// Docker's default capability set (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
/// SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP).
const DOCKER_CAPS: &str = "00000000a80425fb";

/// The value of `Field:` in a /proc/PID/status text.
fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
}

/// The interface names listed in a /proc/net/dev text.
fn interfaces(net_dev: &str) -> BTreeSet<String> {
    net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

/// The mount options (field 6) of the mount at `point` in a mountinfo text (the last one).
fn mount_options(mountinfo: &str, point: &str) -> Option<String> {
    mountinfo
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(point))
        .and_then(|l| l.split(' ').nth(5))
        .map(str::to_owned)
}

/// A static probe that prints the errno of `clone(CLONE_NEWUSER)`, `unshare(CLONE_NEWUSER)`
/// and `clone3({CLONE_NEWUSER})` (0 when the call succeeded). Built once with `cc -static`
/// into a directory under CARGO_TARGET_TMPDIR, keyed by its source, behind a lock.
fn userns_probe_dir() -> PathBuf {
    const SOURCE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

struct clone_args_v0 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* errno of a clone-like call: 0 if a child was made (it exits at once). */
static int reap(long r) {
    if (r == 0)
        _exit(0);
    if (r < 0)
        return errno;
    waitpid((pid_t)r, NULL, 0);
    return 0;
}

int main(void) {
    int e_clone = reap(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    struct clone_args_v0 args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    int e_clone3 = reap(syscall(SYS_clone3, &args, sizeof args));
    int e_unshare = unshare(CLONE_NEWUSER) < 0 ? errno : 0;
    printf("clone=%d unshare=%d clone3=%d\n", e_clone, e_unshare, e_clone3);
    return 0;
}
"#;
    static_probe("userns-probe", SOURCE)
}

// ---------------------------------------------------------------------------
// Capabilities and seccomp

#[test]
fn default_capabilities_are_dockers() {
    let env = TestEnv::with_busybox();
    let status = sh(&env, &[], "cat /proc/self/status");
    assert_eq!(status_field(&status, "CapEff"), DOCKER_CAPS, "{status}");
    assert_eq!(status_field(&status, "CapPrm"), DOCKER_CAPS, "{status}");
    assert_eq!(status_field(&status, "CapBnd"), DOCKER_CAPS, "{status}");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    // The grep the issue names, verbatim.
    assert_eq!(
        sh(&env, &[], "grep CapEff /proc/self/status"),
        format!("CapEff:\t{DOCKER_CAPS}\n")
    );
}

#[test]
fn seccomp_filter_is_on_without_no_new_privs() {
    let env = TestEnv::with_busybox();
    let status = sh(&env, &[], "cat /proc/self/status");
    assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
    // As Docker: the filter is loaded with CAP_SYS_ADMIN, not through no_new_privs.
    assert_eq!(status_field(&status, "NoNewPrivs"), "0", "{status}");
}

#[test]
fn user_namespaces_are_refused() {
    let env = TestEnv::with_busybox();
    let out = run_sh(&env, &[], "unshare -U true");
    assert!(
        !out.status.success(),
        "unshare -U succeeded in a default container"
    );
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );

    let dir = userns_probe_dir();
    let volume = format!(
        "{}:/t:ro",
        dir.to_str()
            .unwrap_or_else(|| panic!("non-UTF-8 {}", dir.display()))
    );
    // EPERM (1) for both, as Docker's profile answers; clone3 is ENOSYS (38) so libc
    // falls back to clone, whose flags the filter can see.
    for opts in [
        vec!["-v", volume.as_str()],
        vec!["-v", volume.as_str(), "-u", "1000"],
    ] {
        let out = sh(&env, &opts, "/t/probe");
        assert_eq!(out, "clone=1 unshare=1 clone3=38\n", "options {opts:?}");
    }
}

// ---------------------------------------------------------------------------
// Kernel interfaces: /sys, /proc, mount, devices

#[test]
fn sys_is_read_only() {
    let env = TestEnv::with_busybox();
    let out = run_sh(&env, &[], "touch /sys/x");
    assert!(!out.status.success(), "touch /sys/x succeeded");
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    let mi = sh(&env, &[], "cat /proc/self/mountinfo");
    let opts = mount_options(&mi, "/sys").unwrap_or_else(|| panic!("no /sys mount:\n{mi}"));
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "/sys mounted {opts}\n{mi}"
    );
}

/// Docker's (runc's) /dev: its nodes and links, and `/dev/core` only where
/// the kernel has a /proc/kcore, never a dangling link.
#[test]
fn dev_has_dockers_entries() {
    let env = TestEnv::with_busybox();
    let listing = sh(&env, &[], "ls -A /dev");
    let mut want = vec![
        "console", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
        "stdin", "stdout", "tty", "urandom", "zero",
    ];
    if Path::new("/proc/kcore").exists() {
        want.push("core");
    }
    want.sort_unstable();
    let mut got: Vec<&str> = listing
        .split_whitespace()
        .filter(|e| *e != "console")
        .collect();
    got.sort_unstable();
    want.retain(|e| *e != "console");
    assert_eq!(got, want, "ls -A /dev:\n{listing}");
    let dangling = sh(
        &env,
        &[],
        "for l in /dev/*; do [ -L \"$l\" ] && [ ! -e \"$l\" ] && echo \"$l\"; done; true",
    );
    assert_eq!(dangling.trim(), "", "dangling links in /dev");
}

#[test]
fn proc_kcore_and_timer_list_are_masked() {
    let env = TestEnv::with_busybox();
    // /proc/timer_list has content on the host (it is readable by root here).
    let host = fs::read_to_string("/proc/timer_list").unwrap_or_default();
    assert!(
        !host.is_empty(),
        "host /proc/timer_list is empty: cannot test"
    );
    assert_eq!(sh(&env, &[], "wc -c < /proc/timer_list").trim(), "0");

    // /proc/kcore exists only with CONFIG_PROC_KCORE; when it does, it reads as /dev/null.
    let kcore = sh(
        &env,
        &[],
        "if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo absent; fi",
    );
    if Path::new("/proc/kcore").exists() {
        assert_eq!(kcore.trim(), "0");
    } else {
        assert!(["0", "absent"].contains(&kcore.trim()), "{kcore}");
    }

    // Every one of Docker's masked paths that this kernel has: an empty file or directory.
    for p in [
        "/proc/asound",
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
    ] {
        let Ok(meta) = fs::metadata(p) else { continue };
        let script = if meta.is_dir() {
            format!("ls -A {p} | wc -l")
        } else {
            format!("cat {p} | wc -c")
        };
        assert_eq!(sh(&env, &[], &script).trim(), "0", "{p} is not masked");
    }
}

#[test]
fn proc_sys_is_read_only() {
    let env = TestEnv::with_busybox();
    let out = run_sh(&env, &[], "echo berth > /proc/sys/kernel/domainname");
    assert!(!out.status.success(), "writing /proc/sys succeeded");
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    let mi = sh(&env, &[], "cat /proc/self/mountinfo");
    for p in ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"] {
        if !Path::new(p).exists() {
            continue;
        }
        let opts = mount_options(&mi, p).unwrap_or_else(|| panic!("no {p} mount:\n{mi}"));
        assert!(opts.split(',').any(|o| o == "ro"), "{p} mounted {opts}");
    }
}

#[test]
fn mount_is_denied() {
    let env = TestEnv::with_busybox();
    let out = run_sh(&env, &[], "mount -t tmpfs none /mnt");
    assert!(!out.status.success(), "mount -t tmpfs succeeded");
    let mi = sh(
        &env,
        &[],
        "mount -t tmpfs none /mnt; cat /proc/self/mountinfo",
    );
    assert!(
        mount_options(&mi, "/mnt").is_none(),
        "/mnt got mounted:\n{mi}"
    );
}

/// A block device this (root, host) process can open and read, as `(major, minor)`.
fn readable_host_block_device() -> Option<(u32, u32)> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let dev = fs::read_to_string(format!("/sys/class/block/{name}/dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        let node = Path::new("/dev").join(&name);
        use std::io::Read;
        let mut buf = [0u8; 1];
        // An empty device (an unbound loop device) reads 0 bytes: still readable.
        match File::open(&node).ok()?.read(&mut buf) {
            Ok(_bytes) => Some((major.parse().ok()?, minor.parse().ok()?)),
            Err(_) => None,
        }
    })
}

#[test]
fn block_device_reads_fail() {
    let env = TestEnv::with_busybox();
    let out = run_sh(&env, &[], "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda");
    assert!(!out.status.success(), "reading block device 8:0 succeeded");

    // 8:0 may simply not exist on this host; a device the host can read must be
    // refused too (the devices cgroup answers EPERM, as under Docker).
    if let Some((major, minor)) = readable_host_block_device() {
        let script = format!("mknod /tmp/blk b {major} {minor} && head -c1 /tmp/blk");
        let out = run_sh(&env, &[], &script);
        assert!(
            !out.status.success(),
            "reading the host's block device {major}:{minor} succeeded in a container \
             (no devices cgroup rules?)"
        );
        assert!(
            text(&out.stderr).contains("Operation not permitted"),
            "{}",
            text(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------
// Namespaces

#[test]
fn own_pid_namespace() {
    let env = TestEnv::with_busybox();
    assert_eq!(sh(&env, &[], "echo $$"), "1\n");
    let pids = sh(&env, &[], "ls -d /proc/[0-9]* | wc -l");
    let n: u32 = pids
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{pids:?}: {e}"));
    assert!(n <= 4, "{n} processes visible in the container");
    let ps = sh(&env, &[], "ps -o pid,comm");
    assert!(ps.lines().count() <= 5, "{ps}");
    // Host processes (this test, berth-monitor) are not visible.
    assert!(
        !ps.contains("berth-monitor") && !ps.contains("isolation"),
        "{ps}"
    );
}

#[test]
fn hostname_is_the_short_id_or_the_given_one() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&["create", BB, "sh", "-c", "hostname; cat /etc/hostname"]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id:?}");
    assert_eq!(
        env.ok(&["start", "-a", id]),
        format!("{}\n{}\n", &id[..12], &id[..12])
    );
    assert_eq!(
        sh(&env, &["-h", "myhost"], "hostname; cat /etc/hostname"),
        "myhost\nmyhost\n"
    );
}

#[test]
fn network_none_has_only_lo_and_it_is_up() {
    let env = TestEnv::with_busybox();
    {
        let opts = &["--network", "none"][..];
        let dev = sh(&env, opts, "cat /proc/net/dev");
        assert_eq!(
            interfaces(&dev),
            BTreeSet::from(["lo".to_string()]),
            "options {opts:?}: {dev}"
        );
        let flags = sh(&env, opts, "cat /sys/class/net/lo/flags");
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("lo flags {flags:?}: {e}"));
        assert_eq!(flags & 1, 1, "lo is not up (flags {flags:#x})");
        // Loopback works.
        sh(&env, opts, "ping -c1 -W2 127.0.0.1 >/dev/null");
    }
}

#[test]
fn network_host_sees_the_hosts_interfaces() {
    let env = TestEnv::with_busybox();
    let host = interfaces(
        &fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_else(|e| panic!("net/dev: {e}")),
    );
    let inside = interfaces(&sh(&env, &["--network", "host"], "cat /proc/net/dev"));
    assert_eq!(inside, host);
}

#[test]
fn container_has_its_own_cgroup() {
    let env = TestEnv::with_busybox();
    // Inside its cgroup namespace, every hierarchy's path is `/`.
    let inside = sh(&env, &[], "cat /proc/self/cgroup");
    for line in inside.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        assert_eq!(path, "/", "{line}\n{inside}");
    }

    // Seen from the host, it is in `<cgroup-parent>/<id>`.
    let id = env.ok(&["run", "-d", BB, "sleep", "1000"]);
    let id = id.trim();
    let pid = env.container_pid(id);
    let host = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"));
    let mine = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let suffix = format!("{}/{id}", env.cgroup_parent);
    assert!(
        host.lines().any(|l| l.ends_with(&suffix)),
        "container not in .../{suffix}:\n{host}"
    );
    for line in host.lines().filter(|l| l.ends_with(&suffix)) {
        assert!(
            !mine.lines().any(|m| m == line),
            "{line} is the test's own cgroup"
        );
    }
    env.ok(&["rm", "-f", id]);
}

// ---------------------------------------------------------------------------
// Users, read-only root, /dev

#[test]
fn numeric_user_has_no_capabilities() {
    let env = TestEnv::with_busybox();
    let out = sh(&env, &["-u", "1000"], "id -u; id -g; cat /proc/self/status");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1000"));
    assert_eq!(lines.next(), Some("1000"), "primary group from /etc/passwd");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&out, "CapPrm"), "0000000000000000");
    // The bounding set stays Docker's: nothing was granted, only not raised.
    assert_eq!(status_field(&out, "CapBnd"), DOCKER_CAPS);
}

#[test]
fn named_user_and_group() {
    let env = TestEnv::with_busybox();
    let out = sh(
        &env,
        &["-u", "app:app"],
        "id; echo $HOME; touch /home/app/ok && echo wrote",
    );
    assert_eq!(
        out,
        "uid=1000(app) gid=1000(app) groups=1000(app)\n/home/app\nwrote\n"
    );
    // And a user cannot write root's files.
    let out = run_sh(&env, &["-u", "app"], "echo x >> /etc/passwd");
    assert!(!out.status.success(), "user app wrote /etc/passwd");
}

#[test]
fn read_only_root_with_a_writable_tmpfs() {
    let env = TestEnv::with_busybox();
    // Control: the root is writable by default.
    sh(&env, &[], "touch /x");

    let opts = ["--read-only", "--tmpfs", "/tmp"];
    let out = run_sh(&env, &opts, "touch /x");
    assert!(
        !out.status.success(),
        "touch /x succeeded on a --read-only root"
    );
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        sh(&env, &opts, "echo data > /tmp/y && cat /tmp/y"),
        "data\n"
    );
    let mi = sh(&env, &opts, "cat /proc/self/mountinfo");
    let root = mount_options(&mi, "/").unwrap_or_else(|| panic!("no / mount:\n{mi}"));
    assert!(root.split(',').any(|o| o == "ro"), "/ mounted {root}");
    let tmp = mount_options(&mi, "/tmp").unwrap_or_else(|| panic!("no /tmp mount:\n{mi}"));
    assert!(tmp.split(',').any(|o| o == "rw"), "/tmp mounted {tmp}");
}

#[test]
fn dev_has_dockers_entries_and_no_host_devices() {
    let env = TestEnv::with_busybox();
    let listing = sh(&env, &[], "ls -A /dev");
    let entries: BTreeSet<&str> = listing.split_whitespace().collect();
    for want in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
    ] {
        assert!(entries.contains(want), "/dev/{want} missing: {entries:?}");
    }
    // Nothing else from the host's /dev (vda, loop0, kmsg, mem ...).
    let allowed: BTreeSet<&str> = [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
        "console", "core", "fd", "stdin", "stdout", "stderr",
    ]
    .into_iter()
    .collect();
    let extra: Vec<&&str> = entries.difference(&allowed).collect();
    assert!(extra.is_empty(), "unexpected /dev entries: {extra:?}");

    // The character devices are the right ones and work.
    let out = sh(
        &env,
        &[],
        "for d in null zero full random urandom tty; do [ -c /dev/$d ] || echo not-char $d; done; \
         [ -d /dev/pts ] && [ -e /dev/pts/ptmx ] || echo no-pts; \
         head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c; \
         echo x > /dev/null && echo null-ok; echo x > /dev/full || echo full-ok",
    );
    assert_eq!(out, "4\n4\nnull-ok\nfull-ok\n");
}

/// Imports the busybox rootfs with `path` (and anything under it) replaced
/// by a symlink to `target`, as image `name`.
fn import_with_symlink(env: &TestEnv, name: &str, path: &str, target: &str) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let tar = dir.path().join("symlinked.tar");
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys,tarfile\n\
             src=tarfile.open(sys.argv[1]); dst=tarfile.open(sys.argv[2],'w'); p=sys.argv[3]\n\
             for m in src.getmembers():\n\
             \x20   n=m.name.lstrip('./').rstrip('/')\n\
             \x20   if n==p or n.startswith(p+'/'): continue\n\
             \x20   dst.addfile(m, src.extractfile(m) if m.isfile() else None)\n\
             l=tarfile.TarInfo(p); l.type=tarfile.SYMTYPE; l.linkname=sys.argv[4]\n\
             dst.addfile(l); dst.close()",
        )
        .arg(busybox_tar())
        .arg(&tar)
        .arg(path)
        .arg(target)
        .status()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(made.success());
    env.ok(&["import", &tar.display().to_string(), name]);
}

/// An image cannot redirect where /proc is mounted (runc refuses the same).
#[test]
fn proc_as_a_symlink_in_the_image_is_refused() {
    let env = TestEnv::new();
    import_with_symlink(&env, "procsym", "proc", "/tmp");
    let (_, err) = env.fails(&["run", "--rm", "procsym", "true"], 125);
    assert!(err.contains("/proc cannot be a symlink"), "{err}");
}

/// The image's symlinks cannot lead berth's own bind mounts (here
/// /etc/hosts) onto the kernel's file systems.
#[test]
fn etc_hosts_as_a_symlink_into_proc_is_refused() {
    let env = TestEnv::new();
    import_with_symlink(&env, "hostsym", "etc/hosts", "/proc/sys/kernel/hostname");
    let (_, err) = env.fails(&["run", "--rm", "hostsym", "true"], 125);
    assert!(
        err.contains("cannot be mounted because it is inside /proc"),
        "{err}"
    );
}
