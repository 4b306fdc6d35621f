//! Density (issue 11): many idle containers on one root. 200 start on the
//! default bridge (two starters at once, so leases are taken concurrently),
//! `ps` lists every one as up, and removing them all leaves no monitor,
//! cgroup, mount, lease or marker behind. And the start that follows a
//! container's end frees that container's address at once (as Docker's
//! daemon does at the exit), without sweeping every endpoint.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const N: usize = 200;

/// The directory of a cgroup of this test in the pids hierarchy (v1) or
/// the unified one (v2).
fn cgroup_dir(env: &TestEnv, sub: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/pids");
    let base = if v1.is_dir() {
        v1.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    base.join(&env.cgroup_parent).join(sub)
}

fn procs(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn sql(env: &TestEnv, query: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(env.root.path().join("berth.db"))
        .arg(query)
        .output()
        .unwrap_or_else(|e| panic!("sqlite3: {e}"));
    assert!(
        out.status.success(),
        "sqlite3 {query}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

#[test]
fn two_hundred_idle_containers_start_list_and_leave_nothing() {
    let env = TestEnv::with_busybox();
    // Two starters at once (CI has 2 cores).
    let ids: Vec<String> = std::thread::scope(|s| {
        let halves: Vec<_> = (0..2)
            .map(|half| {
                let env = &env;
                s.spawn(move || {
                    (0..N / 2)
                        .map(|i| {
                            let name = format!("d{half}-{i}");
                            env.ok(&["run", "-d", "--name", &name, BB, "sleep", "1d"])
                                .trim()
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| panic!("a starter panicked")))
            .collect()
    });
    assert_eq!(ids.len(), N);

    // `ps` lists every one, up.
    let listed = env.ok(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Status}}"]);
    let mut seen = BTreeSet::new();
    for line in listed.lines() {
        let (id, status) = line.split_once(' ').unwrap_or((line, ""));
        assert!(status.starts_with("Up "), "{line}");
        seen.insert(id.to_string());
    }
    let wanted: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen, wanted);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), N);
    // One monitor each, in the monitors' cgroup; one address each.
    let monitors = cgroup_dir(&env, "monitors");
    assert_eq!(procs(&monitors).len(), N, "{}", monitors.display());
    assert_eq!(
        sql(&env, "SELECT COUNT(DISTINCT ip) FROM endpoints"),
        N.to_string()
    );

    // Removing them all leaves nothing behind.
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    env.ok(&args);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    poll("the monitors to exit", Duration::from_secs(30), || {
        procs(&monitors).is_empty().then_some(())
    });
    for id in &ids {
        assert!(!cgroup_dir(&env, id).exists(), "cgroup of {id} left");
    }
    let root = env.root.path().to_string_lossy().into_owned();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        !mounts.lines().any(|l| l.contains(&root)),
        "mounts left under {root}"
    );
    assert_eq!(sql(&env, "SELECT COUNT(*) FROM endpoints"), "0");
    let ended = env.run_root.path().join("networks/ended");
    let markers = fs::read_dir(&ended).map(|d| d.count()).unwrap_or(0);
    assert_eq!(markers, 0, "markers left in {}", ended.display());
    let containers = fs::read_dir(env.root.path().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(containers, 0);
}

/// A container that ended holds no address for the next start: its monitor
/// marked its end, and that start frees it (the lowest address again, as
/// Docker's daemon gives it); one killed with -9 is found by `ps`.
#[test]
fn the_next_start_frees_an_ended_containers_address() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "ea", BB, "true"]);
    let ip_of = |name: &str| inspect_f(&env, "{{.NetworkSettings.IPAddress}}", name);
    env.ok(&["run", "-d", "--name", "eb", BB, "sleep", "1d"]);
    let b = ip_of("eb");
    assert!(b.ends_with(".2"), "{b}");
    assert_eq!(sql(&env, "SELECT COUNT(*) FROM endpoints"), "1");
    // eb's monitor killed with -9: no marker; `ps` sweeps it.
    let pid = env.container_pid("eb");
    let ppid = proc_stat_of(pid).map(|(_, ppid, _)| ppid).unwrap_or(0);
    assert!(ppid > 1, "no monitor of {pid}");
    let st = Command::new("kill")
        .args(["-9", &ppid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(st.success());
    poll("eb to exit", Duration::from_secs(20), || {
        env.ok(&["ps", "-q"]).trim().is_empty().then_some(())
    });
    assert_eq!(sql(&env, "SELECT COUNT(*) FROM endpoints"), "0");
    env.ok(&["run", "-d", "--name", "ec", BB, "sleep", "1d"]);
    assert_eq!(ip_of("ec"), b);
    env.ok(&["rm", "-f", "ea", "eb", "ec"]);
    assert_eq!(sql(&env, "SELECT COUNT(*) FROM endpoints"), "0");
}
