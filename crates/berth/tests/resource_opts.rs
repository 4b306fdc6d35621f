//! The rest of issue 11's limits: swappiness, the OOM killer, CPU period
//! and quota, block I/O, ulimits, /dev/shm, devices — read back from the
//! cgroup and `inspect`, and proven by what the container sees.

mod common;

use common::*;
use std::path::PathBuf;

/// A control file of the container's cgroup in the v1 hierarchy carrying
/// `controller` (None on a host without it).
fn cgroup_file(env: &TestEnv, name: &str, controller: &str, file: &str) -> Option<String> {
    let id = inspect_f(env, "{{.Id}}", name);
    let p = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(format!("{}/{id}", env.cgroup_parent))
        .join(file);
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// "MAJOR:MINOR" of a host device.
fn dev_number(path: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .rdev();
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// A block device of the host that nothing uses (loop7 here), for block
/// I/O limits and device grants.
const BLOCK: &str = "/dev/loop7";

#[test]
fn more_limits_land_in_the_cgroup_and_in_inspect() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "64m",
        "--memory-swappiness",
        "30",
        "--oom-kill-disable",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--device-read-bps",
        &format!("{BLOCK}:1mb"),
        "--device-write-iops",
        &format!("{BLOCK}:200"),
        BB,
        "sleep",
        "300",
    ]);
    let num = dev_number(BLOCK);
    let at = |c: &str, f: &str| cgroup_file(&env, "lim", c, f);
    assert_eq!(at("memory", "memory.swappiness").as_deref(), Some("30"));
    assert!(
        at("memory", "memory.oom_control")
            .unwrap_or_default()
            .contains("oom_kill_disable 1"),
        "{:?}",
        at("memory", "memory.oom_control")
    );
    assert_eq!(at("cpu", "cpu.cfs_period_us").as_deref(), Some("50000"));
    assert_eq!(at("cpu", "cpu.cfs_quota_us").as_deref(), Some("25000"));
    assert_eq!(
        at("blkio", "blkio.throttle.read_bps_device").as_deref(),
        Some(format!("{num} 1048576").as_str())
    );
    assert_eq!(
        at("blkio", "blkio.throttle.write_iops_device").as_deref(),
        Some(format!("{num} 200").as_str())
    );
    assert_eq!(
        inspect_f(
            &env,
            "{{.HostConfig.MemorySwappiness}} {{.HostConfig.OomKillDisable}} {{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{json .HostConfig.BlkioDeviceReadBps}} {{json .HostConfig.BlkioDeviceWriteIOps}}",
            "lim"
        ),
        format!(
            "30 true 50000 25000 [{{\"Path\":\"{BLOCK}\",\"Rate\":1048576}}] [{{\"Path\":\"{BLOCK}\",\"Rate\":200}}]"
        )
    );
    // Without them: the kernel's defaults stay (nothing written).
    env.ok(&["run", "-d", "--name", "plain", BB, "sleep", "300"]);
    assert_eq!(
        cgroup_file(&env, "plain", "cpu", "cpu.cfs_quota_us").as_deref(),
        Some("-1")
    );
    assert_eq!(
        inspect_f(
            &env,
            "{{.HostConfig.MemorySwappiness}} {{.HostConfig.OomKillDisable}} {{.HostConfig.ShmSize}} {{json .HostConfig.Ulimits}} {{json .HostConfig.Devices}} {{json .HostConfig.DeviceCgroupRules}}",
            "plain"
        ),
        "<nil> false 67108864 null [] null"
    );
}

#[test]
fn ulimit_shm_size_and_oom_score_adj_hold_inside() {
    let env = TestEnv::with_busybox();
    let out = sh(
        &env,
        &[
            "--ulimit",
            "nofile=512:1024",
            "--ulimit",
            "nproc=100",
            "--shm-size",
            "16m",
            "--oom-score-adj",
            "200",
        ],
        "ulimit -n; ulimit -Hn; ulimit -u; cat /proc/1/oom_score_adj; df -k /dev/shm | tail -1 | awk '{print $2}'",
    );
    assert_eq!(out, "512\n1024\n100\n200\n16384\n", "{out}");
    // The defaults: 64 MiB of /dev/shm, the caller's oom_score_adj.
    let out = sh(
        &env,
        &[],
        "cat /proc/1/oom_score_adj; df -k /dev/shm | tail -1 | awk '{print $2}'",
    );
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap_or_else(|e| panic!("oom_score_adj: {e}"));
    assert_eq!(out, format!("{}\n65536\n", own.trim()));
    // An exec'd process gets the container's limits too, as with runc.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--ulimit",
        "nofile=512:1024",
        "--oom-score-adj",
        "300",
        BB,
        "sleep",
        "300",
    ]);
    assert_eq!(
        env.ok(&[
            "exec",
            "ex",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj"
        ]),
        "512\n1024\n300\n"
    );
    env.ok(&[
        "create",
        "--name",
        "rec",
        "--ulimit",
        "nofile=512:1024",
        "--shm-size",
        "16m",
        "--oom-score-adj",
        "200",
        BB,
        "true",
    ]);
    assert_eq!(
        inspect_f(
            &env,
            "{{json .HostConfig.Ulimits}} {{.HostConfig.ShmSize}} {{.HostConfig.OomScoreAdj}}",
            "rec"
        ),
        "[{\"Name\":\"nofile\",\"Hard\":1024,\"Soft\":512}] 16777216 200"
    );
}

#[test]
fn a_hard_limit_past_the_hosts_fails_the_start_as_with_runc() {
    let env = TestEnv::with_busybox();
    // No CAP_SYS_RESOURCE on the test machines: raising a hard limit is
    // refused by the kernel, and the container must not start without it.
    let hard: u64 = sh(&env, &[], "ulimit -Hn")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("ulimit -Hn: {e}"));
    let past = format!("nofile={0}:{0}", hard + 1000);
    let holds_sys_resource = {
        let status =
            std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| panic!("status: {e}"));
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        eff & (1 << 24) != 0 // CAP_SYS_RESOURCE
    };
    let out = env.run(&["run", "--rm", "--ulimit", &past, BB, "true"]);
    if holds_sys_resource {
        assert!(out.status.success(), "{out:?}");
    } else {
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(
            text(&out.stderr).contains("error setting rlimit type 7: operation not permitted"),
            "{out:?}"
        );
    }
}

#[test]
fn bad_limits_leave_no_container() {
    let env = TestEnv::with_busybox();
    for (args, code, words) in [
        (
            &["--memory-swappiness", "101"][..],
            125,
            "Valid memory swappiness range is 0-100",
        ),
        (
            &["--oom-score-adj", "1001"][..],
            1,
            "range for oom score adj is [-1000, 1000]",
        ),
        (
            &["--cpu-period", "500"][..],
            1,
            "CPU cfs period can not be less than 1ms",
        ),
        (
            &["--cpu-quota", "500"][..],
            1,
            "CPU cfs quota can not be less than 1ms",
        ),
        (
            &["--cpus", "1", "--cpu-quota", "50000"][..],
            1,
            "Nano CPUs and CPU Quota",
        ),
        (
            &["--cpu-rt-period", "1000", "--cpu-rt-runtime", "2000"][..],
            1,
            "cannot be higher",
        ),
        (
            &["--blkio-weight-device", "/dev/null:5"][..],
            125,
            "invalid weight for device",
        ),
        (
            &["--device-read-bps", "/dev/null:x"][..],
            125,
            "invalid rate for device",
        ),
        (
            &["--device-write-iops", "/dev/null:1.5"][..],
            125,
            "invalid rate for device",
        ),
        (&["--shm-size", "-1"][..], 125, "invalid size: '-1'"),
        (
            &["--ulimit", "nofile=20:10"][..],
            125,
            "soft limit must be less than or equal",
        ),
        (
            &["--ulimit", "bogus=1"][..],
            125,
            "invalid ulimit type: bogus",
        ),
        (
            &["--device", "/dev/null:relative"][..],
            125,
            "relative is not an absolute path",
        ),
        (
            &["--device", "/dev/null:/dev/x:rwz"][..],
            125,
            "bad mode specified: rwz",
        ),
        (
            &["--device", "/nonexistent"][..],
            1,
            "no such file or directory",
        ),
        (&["--device", "/etc/passwd"][..], 1, "not a device node"),
        (
            &["--device-cgroup-rule", "c 1:3 rwq"][..],
            125,
            "invalid device cgroup format",
        ),
        (
            &["--device-cgroup-rule", "c 1:3 r\na *:* rwm"][..],
            125,
            "invalid device cgroup format",
        ),
        (&["--gpus", "all"][..], 1, "could not select device driver"),
    ] {
        let mut argv = vec!["create"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&[BB, "true"]);
        let (_, err) = env.fails(&argv, code);
        assert!(err.contains(words), "{args:?}: {err}");
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn update_changes_cpu_period_quota_and_realtime_period() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "up", BB, "sleep", "300"]);
    env.ok(&[
        "update",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "20000",
        "--cpu-rt-period",
        "900000",
        "up",
    ]);
    let at = |f: &str| cgroup_file(&env, "up", "cpu", f);
    assert_eq!(at("cpu.cfs_period_us").as_deref(), Some("50000"));
    assert_eq!(at("cpu.cfs_quota_us").as_deref(), Some("20000"));
    assert_eq!(at("cpu.rt_period_us").as_deref(), Some("900000"));
    assert_eq!(
        inspect_f(
            &env,
            "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuRealtimePeriod}}",
            "up"
        ),
        "50000 20000 900000"
    );
    // Refused in Docker's words, nothing changed.
    let (_, err) = env.fails(&["update", "--cpu-quota", "500", "up"], 1);
    assert!(
        err.contains("CPU cfs quota can not be less than 1ms"),
        "{err}"
    );
    assert_eq!(at("cpu.cfs_quota_us").as_deref(), Some("20000"));
    // --blkio-weight: written where the kernel has a weight, else
    // discarded with Docker's warning (this kernel has none).
    let out = env.ok(&["update", "--blkio-weight", "400", "up"]);
    match cgroup_file(&env, "up", "blkio", "blkio.weight") {
        Some(w) => {
            assert_eq!(w, "400");
            assert_eq!(inspect_f(&env, "{{.HostConfig.BlkioWeight}}", "up"), "400");
        }
        None => {
            assert!(out.contains("Weight discarded"), "{out}");
            assert_eq!(inspect_f(&env, "{{.HostConfig.BlkioWeight}}", "up"), "0");
        }
    }
    // The values hold across a restart.
    env.ok(&["restart", "-t", "0", "up"]);
    assert_eq!(at("cpu.cfs_quota_us").as_deref(), Some("20000"));
}

/// Tries to reach devices from inside a container: each argument is
/// `open:PATH:r|w` or `mknod:PATH:c|b:MAJOR:MINOR`; prints one line each,
/// `ok` or the errno's name.
const DEVICE_PROBE: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
static const char *name(int e) {
    switch (e) { case EPERM: return "EPERM"; case EACCES: return "EACCES";
    case ENOENT: return "ENOENT"; case ENXIO: return "ENXIO"; case ENODEV: return "ENODEV";
    case EEXIST: return "EEXIST"; default: return strerror(e); }
}
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *a = strdup(argv[i]);
        char *op = strtok(a, ":"), *path = strtok(NULL, ":"), *x = strtok(NULL, ":");
        int r;
        if (strcmp(op, "open") == 0) {
            r = open(path, x[0] == 'w' ? O_WRONLY : O_RDONLY);
        } else {
            int maj = atoi(strtok(NULL, ":")), min = atoi(strtok(NULL, ":"));
            r = mknod(path, (x[0] == 'b' ? S_IFBLK : S_IFCHR) | 0666, makedev(maj, min));
        }
        printf("%s %s\n", argv[i], r >= 0 ? "ok" : name(errno));
    }
    return 0;
}
"#;

#[test]
fn a_device_grants_that_node_and_nothing_else() {
    let env = TestEnv::with_busybox();
    let probe = static_probe("device-probe", DEVICE_PROBE);
    let vol = probe_volume(&probe);
    let host_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let data = format!("{}:/data", host_dir.path().display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "-v",
        &data,
        "--device",
        &format!("{BLOCK}:/dev/blk:r"),
        "--device",
        "/dev/zero:/data/z",
        BB,
        "/t/probe",
        "open:/dev/blk:r",
        "open:/dev/blk:w",
        // Another block device (loop6, which the host lets us open), by
        // number: the node may be made (Docker's `b *:* m`), never opened.
        "mknod:/dev/other:b:7:6",
        "open:/dev/other:r",
        // /dev/mem likewise.
        "mknod:/dev/mem2:c:1:1",
        "open:/dev/mem2:r",
        // A granted node's number under another name: the same grant.
        "mknod:/dev/blk2:b:7:7",
        "open:/dev/blk2:r",
        "open:/dev/blk2:w",
    ]);
    let blk7 = dev_number(BLOCK);
    assert_eq!(blk7, "7:7", "the test assumes loop7 is 7:7");
    assert_eq!(
        out,
        format!(
            "open:/dev/blk:r ok\nopen:/dev/blk:w EPERM\nmknod:/dev/other:b:7:6 ok\nopen:/dev/other:r EPERM\nmknod:/dev/mem2:c:1:1 ok\nopen:/dev/mem2:r EPERM\nmknod:/dev/blk2:b:7:7 ok\nopen:/dev/blk2:r ok\nopen:/dev/blk2:w EPERM\n"
        )
    );
    // The node under /data was made in the container's root before the
    // bind mount covered it: nothing landed in the host's directory.
    assert_eq!(
        std::fs::read_dir(host_dir.path())
            .map(|d| d.count())
            .unwrap_or(usize::MAX),
        0
    );
    // Without the grant the loop device is as closed as loop6.
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &vol,
        BB,
        "/t/probe",
        "mknod:/dev/blk:b:7:7",
        "open:/dev/blk:r",
    ]);
    assert_eq!(out, "mknod:/dev/blk:b:7:7 ok\nopen:/dev/blk:r EPERM\n");
    // A --device-cgroup-rule opens it (no node is made for a rule).
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "--device-cgroup-rule",
        "b 7:7 r",
        BB,
        "/t/probe",
        "mknod:/dev/blk:b:7:7",
        "open:/dev/blk:r",
        "open:/dev/blk:w",
    ]);
    assert_eq!(
        out,
        "mknod:/dev/blk:b:7:7 ok\nopen:/dev/blk:r ok\nopen:/dev/blk:w EPERM\n"
    );
    // The devices' rules in the cgroup: Docker's defaults, then the grant.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "dev1",
        "--device",
        &format!("{BLOCK}:/dev/blk:rw"),
        BB,
        "sleep",
        "300",
    ]);
    let list = cgroup_file(&env, "dev1", "devices", "devices.list").unwrap_or_default();
    assert!(list.lines().any(|l| l == "b 7:7 rw"), "{list}");
    assert!(!list.lines().any(|l| l.starts_with("a ")), "{list}");
    assert_eq!(
        inspect_f(&env, "{{json .HostConfig.Devices}}", "dev1"),
        format!("[{{\"PathOnHost\":\"{BLOCK}\",\"PathInContainer\":\"/dev/blk\",\"CgroupPermissions\":\"rw\"}}]")
    );
    assert_eq!(
        sh(
            &env,
            &["--device", "/dev/zero:/dev/z"],
            "ls -l /dev/z | cut -c1-10"
        ),
        "crw-rw-rw-\n"
    );
}

#[test]
fn cgroup_parent_places_the_container_and_every_verb_finds_it() {
    let env = TestEnv::with_busybox();
    // Below the test's own parent, so that its cleanup takes it; once
    // absolute, once relative (both from the hierarchy's root, as Docker's
    // cgroupfs driver reads them).
    for (name, parent) in [
        ("abs", format!("/{}/custom", env.cgroup_parent)),
        ("rel", format!("{}/other/../custom2", env.cgroup_parent)),
    ] {
        env.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--cgroup-parent",
            &parent,
            "-m",
            "32m",
            BB,
            "sleep",
            "300",
        ]);
        let id = inspect_f(&env, "{{.Id}}", name);
        let want_parent = parent.trim_start_matches('/').replace("other/../", "");
        let dir = PathBuf::from("/sys/fs/cgroup/memory")
            .join(&want_parent)
            .join(&id);
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .unwrap_or_default()
                .trim(),
            (32u64 << 20).to_string(),
            "{}",
            dir.display()
        );
        let pid = env.container_pid(name);
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(
            own.lines()
                .any(|l| l.ends_with(&format!(":/{want_parent}/{id}"))),
            "{own}"
        );
        assert_eq!(
            inspect_f(&env, "{{.HostConfig.CgroupParent}}", name),
            parent
        );
        // exec, top, pause and stats find it there.
        assert_eq!(env.ok(&["exec", name, "echo", "in"]), "in\n");
        assert!(env.ok(&["top", name]).contains("sleep"));
        env.ok(&["pause", name]);
        assert_eq!(inspect_f(&env, "{{.State.Status}}", name), "paused");
        env.ok(&["unpause", name]);
        env.ok(&["update", "-m", "48m", name]);
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .unwrap_or_default()
                .trim(),
            (48u64 << 20).to_string()
        );
        env.ok(&["rm", "-f", name]);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    // The engine's own parent still comes before the command.
    env.ok(&["run", "-d", "--name", "plain", BB, "sleep", "300"]);
    let id = inspect_f(&env, "{{.Id}}", "plain");
    assert!(PathBuf::from("/sys/fs/cgroup/pids")
        .join(&env.cgroup_parent)
        .join(&id)
        .is_dir());
    assert_eq!(inspect_f(&env, "{{.HostConfig.CgroupParent}}", "plain"), "");
}
