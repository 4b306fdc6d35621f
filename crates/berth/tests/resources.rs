//! Resource limits (issue 11's first pieces): what `run` asks for lands in
//! the container's cgroup and holds.

mod common;

use common::*;
use std::path::PathBuf;

/// A control file of the container's cgroup in the hierarchy carrying
/// `controller` (v1), or in the unified one (v2).
fn cgroup_file(env: &TestEnv, name: &str, controller: &str, file: &str) -> Option<String> {
    let id = inspect_f(env, "{{.Id}}", name);
    let rel = format!("{}/{id}", env.cgroup_parent);
    let v1 = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(&rel)
        .join(file);
    std::fs::read_to_string(&v1)
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn limits_land_in_the_cgroup() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        BB,
        "sleep",
        "300",
    ]);
    if let Some(mem) = cgroup_file(&env, "lim", "memory", "memory.limit_in_bytes") {
        assert_eq!(mem, (64u64 << 20).to_string());
        assert_eq!(
            cgroup_file(&env, "lim", "cpu", "cpu.cfs_quota_us").as_deref(),
            Some("50000")
        );
        assert_eq!(
            cgroup_file(&env, "lim", "cpu", "cpu.cfs_period_us").as_deref(),
            Some("100000")
        );
        assert_eq!(
            cgroup_file(&env, "lim", "cpu", "cpu.shares").as_deref(),
            Some("512")
        );
        assert_eq!(
            cgroup_file(&env, "lim", "pids", "pids.max").as_deref(),
            Some("50")
        );
    }
    assert_eq!(
        inspect_f(
            &env,
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
            "lim"
        ),
        format!("{} {} 500000000 50", 64u64 << 20, 128u64 << 20)
    );
}

#[test]
fn a_memory_hog_is_oom_killed_at_its_limit() {
    let env = TestEnv::with_busybox();
    // 64 MB held in a shell variable, under a 16 MiB limit without swap.
    let out = env.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        BB,
        "sh",
        "-c",
        "a=$(head -c 64000000 /dev/zero | tr '\\0' x); echo ${#a}",
    ]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    assert_eq!(
        inspect_f(&env, "{{.State.OOMKilled}} {{.State.ExitCode}}", "hog"),
        "true 137"
    ); // The oom event, then the die with its code (Docker's order).
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ev = env.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        &format!("{until:.9}"),
        "--filter",
        "container=hog",
        "--filter",
        "event=oom",
        "--filter",
        "event=die",
        "--format",
        "{{.Action}} {{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(ev, "oom <no value>\ndie 137\n");
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let env = TestEnv::with_busybox();
    let bomb = "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; echo all 60";
    let out = env.run(&["run", "--rm", "--pids-limit", "20", BB, "sh", "-c", bomb]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("all 60"),
        "{out:?}"
    );
    assert!(err.contains("fork"), "{err}");
    // Without the limit the same loop runs through.
    let out = env.run(&["run", "--rm", BB, "sh", "-c", bomb]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("all 60"),
        "{out:?}"
    );
}

#[test]
fn update_changes_a_running_container_and_its_next_starts() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "up", "-m", "64m", BB, "sleep", "300"]);
    assert_eq!(
        env.ok(&[
            "update",
            "-m",
            "128m",
            "--memory-swap",
            "256m",
            "--pids-limit",
            "40",
            "up"
        ]),
        "up\n"
    );
    let mem = cgroup_file(&env, "up", "memory", "memory.limit_in_bytes");
    if let Some(mem) = mem {
        assert_eq!(mem, (128u64 << 20).to_string());
        assert_eq!(
            cgroup_file(&env, "up", "pids", "pids.max").as_deref(),
            Some("40")
        );
    }
    env.ok(&["stop", "-t", "0", "up"]);
    env.ok(&["start", "up"]);
    if let Some(mem) = cgroup_file(&env, "up", "memory", "memory.limit_in_bytes") {
        assert_eq!(mem, (128u64 << 20).to_string());
    }
    assert_eq!(
        inspect_f(
            &env,
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}}",
            "up"
        ),
        format!("{} {} 40", 128u64 << 20, 256u64 << 20)
    );
    let (_, err) = env.fails(&["update", "-m", "4m", "up"], 1);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let (_, err) = env.fails(&["update", "-m", "8m", "nosuch"], 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
}

#[test]
fn a_restart_after_update_keeps_the_new_limits() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "rs",
        "--restart",
        "always",
        "-m",
        "64m",
        BB,
        "sleep",
        "300",
    ]);
    env.ok(&["update", "-m", "128m", "--memory-swap", "-1", "rs"]);
    // Its process dies; the monitor starts it again (restart policy).
    let pid = env.container_pid("rs");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    poll("the restart", std::time::Duration::from_secs(20), || {
        (inspect_f(&env, "{{.RestartCount}} {{.State.Status}}", "rs") == "1 running").then_some(())
    });
    if let Some(mem) = cgroup_file(&env, "rs", "memory", "memory.limit_in_bytes") {
        assert_eq!(mem, (128u64 << 20).to_string());
    }
    env.ok(&["rm", "-f", "rs"]);
}

#[test]
fn stats_shows_a_half_core_burner_at_about_half() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "burn",
        "--cpus",
        "0.5",
        "-m",
        "64m",
        BB,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let out = env.ok(&["stats", "--no-stream"]);
    let mut lines = out.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>().join(" ")),
        Some("CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O BLOCK I/O PIDS".into())
    );
    let line = lines.next().unwrap_or_default();
    assert!(
        line.contains(" burn ") && line.contains(" / 64MiB "),
        "{line}"
    );
    let out = env.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.PIDs}}",
        "burn",
    ]);
    let mut f = out.split_whitespace();
    assert_eq!(f.next(), Some("burn"));
    let cpu: f64 = f
        .next()
        .and_then(|c| c.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // The CFS quota holds it near half a core (a generous band).
    assert!((20.0..=75.0).contains(&cpu), "{out}");
    assert_eq!(f.next(), Some("1"));
    let (_, err) = env.fails(&["stats", "--no-stream", "nosuch"], 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
}

#[test]
fn update_restart_policy_and_cpusets() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ur",
        "--cpuset-cpus",
        "0",
        "--memory-reservation",
        "32m",
        BB,
        "sleep",
        "300",
    ]);
    if let Some(cpus) = cgroup_file(&env, "ur", "cpuset", "cpuset.cpus") {
        assert_eq!(cpus, "0");
        assert_eq!(
            cgroup_file(&env, "ur", "memory", "memory.soft_limit_in_bytes"),
            Some((32u64 << 20).to_string())
        );
    }
    env.ok(&["update", "--restart", "always", "ur"]);
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.RestartPolicy.Name}}", "ur"),
        "always"
    );
    // The running container's monitor follows the new policy.
    let pid = env.container_pid("ur");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    poll("the restart", std::time::Duration::from_secs(20), || {
        (inspect_f(&env, "{{.RestartCount}} {{.State.Status}}", "ur") == "1 running").then_some(())
    });
    let (_, err) = env.fails(&["run", "--cpuset-cpus", "0-99", BB, "true"], 125);
    assert!(err.contains("Requested CPUs are not available"), "{err}");
    env.ok(&["rm", "-f", "ur"]);
}
