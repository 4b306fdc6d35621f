//! Per-container cgroups on both layouts: cgroup v1 (including the
//! "hybrid" layout, where a controller-less cgroup2 sits at
//! /sys/fs/cgroup/unified beside the v1 hierarchies) and the unified v2
//! hierarchy.
//!
//! A [`Cgroup`] is a path relative to the root of every hierarchy (e.g.
//! `berth/<id>`): on v1 it exists once per mounted hierarchy, on v2 once.
//! The runtime creates it, moves the container's init into it, and uses it
//! to list, signal, freeze and finally remove everything the container ran.
//!
//! Never: touches a cgroup outside its own path (apart from enabling
//! controllers in the ancestors' `cgroup.subtree_control` on v2 and copying
//! `cpuset.cpus`/`cpuset.mems` down on v1), or sleeps for a fixed time:
//! waits poll with a growing interval up to a 1 s deadline.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors from cgroup operations; each names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading /proc/self/mountinfo failed: {0}")]
    Mountinfo(io::Error),
    #[error("no cgroup filesystem is mounted")]
    NotMounted,
    #[error("invalid cgroup path: {0:?}")]
    InvalidPath(String),
    #[error("creating cgroup {} failed: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("writing {} failed: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("removing cgroup {} failed: {source}", path.display())]
    Remove { path: PathBuf, source: io::Error },
    #[error("the {0} cgroup controller is not mounted")]
    NoController(&'static str),
    #[error("cgroup {} did not freeze within 1 s", path.display())]
    FreezeTimeout { path: PathBuf },
}

/// How the host mounts its cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1, hybrid included: one hierarchy per mount, named by its
    /// controller list as in the mount options ("cpu", "cpu,cpuacct",
    /// "name=systemd").
    V1 { mounts: Vec<(String, PathBuf)> },
    /// The unified cgroup v2 hierarchy, mounted at this path.
    Unified(PathBuf),
}

/// Reads the layout from `/proc/self/mountinfo`: any v1 (`cgroup`) mount
/// makes it [`Layout::V1`]; otherwise the `cgroup2` mount is the unified
/// root.
pub fn detect() -> Result<Layout, CgroupError> {
    let s = fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Mountinfo)?;
    parse_mountinfo(&s)
}

/// v1 mount options that are not controllers.
fn is_v1_option(o: &str) -> bool {
    matches!(
        o,
        "rw" | "ro" | "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode" | "favordynmods"
    ) || o.starts_with("release_agent=")
}

fn parse_mountinfo(s: &str) -> Result<Layout, CgroupError> {
    // (controllers, mountpoint, root is "/")
    let mut v1: Vec<(String, PathBuf, bool)> = Vec::new();
    let mut v2: Option<PathBuf> = None;
    for line in s.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (Some(fstype), Some(_source), Some(superopts)) =
            (right.next(), right.next(), right.next())
        else {
            continue;
        };
        if left.len() < 5 {
            continue;
        }
        let root_is_top = left[3] == "/";
        let mountpoint = PathBuf::from(unescape(left[4]));
        match fstype {
            "cgroup" => {
                let ctrls: Vec<&str> = superopts.split(',').filter(|o| !is_v1_option(o)).collect();
                if ctrls.is_empty() {
                    continue;
                }
                let ctrls = ctrls.join(",");
                match v1.iter_mut().find(|(c, _, _)| *c == ctrls) {
                    // A later mount of the same hierarchy only replaces a
                    // bind mount of a sub-directory.
                    Some(e) if !e.2 && root_is_top => *e = (ctrls, mountpoint, true),
                    Some(_) => {}
                    None => v1.push((ctrls, mountpoint, root_is_top)),
                }
            }
            "cgroup2" if v2.is_none() || mountpoint == Path::new("/sys/fs/cgroup") => {
                v2 = Some(mountpoint);
            }
            _ => {}
        }
    }
    if !v1.is_empty() {
        let mounts = v1.into_iter().map(|(c, m, _)| (c, m)).collect();
        return Ok(Layout::V1 { mounts });
    }
    v2.map(Layout::Unified).ok_or(CgroupError::NotMounted)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The controllers berth enables for its cgroups on v2.
const V2_CONTROLLERS: [&str; 5] = ["cpuset", "cpu", "io", "memory", "pids"];

/// How long [`Cgroup::remove`] and [`Cgroup::freeze`] wait.
const DEADLINE: Duration = Duration::from_secs(1);

/// One container's cgroup, at the same relative path in every hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    layout: Layout,
    rel: String,
}

impl Cgroup {
    /// A handle on `rel` (e.g. `berth/<id>`; surrounding slashes ignored).
    /// Nothing is created until [`create`](Self::create).
    pub fn new(layout: &Layout, rel: &str) -> Cgroup {
        Cgroup {
            layout: layout.clone(),
            rel: rel.trim_matches('/').to_string(),
        }
    }

    /// The path relative to each hierarchy's root.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// The layout the cgroup lives in.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The cgroup's directory in every hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 { mounts } => mounts.iter().map(|(_, m)| m.join(&self.rel)).collect(),
            Layout::Unified(root) => vec![root.join(&self.rel)],
        }
    }

    fn components(&self) -> Result<Vec<&str>, CgroupError> {
        let parts: Vec<&str> = self.rel.split('/').collect();
        let bad = |p: &&str| p.is_empty() || *p == "." || *p == ".." || p.contains('\0');
        if self.rel.is_empty() || parts.iter().any(bad) {
            return Err(CgroupError::InvalidPath(self.rel.clone()));
        }
        Ok(parts)
    }

    /// The directory in the first v1 hierarchy carrying `controller`.
    fn v1_dir(&self, controller: &str) -> Option<PathBuf> {
        let Layout::V1 { mounts } = &self.layout else {
            return None;
        };
        mounts
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == controller))
            .map(|(_, m)| m.join(&self.rel))
    }

    /// Creates the cgroup (and its missing ancestors) in every hierarchy.
    ///
    /// v1: in the cpuset hierarchy every new level gets its parent's
    /// `cpuset.cpus` and `cpuset.mems` (empty ones would keep tasks out).
    /// v2: before each level is made, the cpuset, cpu, io, memory and pids
    /// controllers its parent offers are enabled in the parent's
    /// `cgroup.subtree_control`; refusals (a busy or foreign parent) are
    /// ignored and leave that controller off.
    pub fn create(&self) -> Result<(), CgroupError> {
        let parts = self.components()?;
        match &self.layout {
            Layout::V1 { mounts } => {
                for (ctrls, mount) in mounts {
                    let cpuset = ctrls.split(',').any(|c| c == "cpuset");
                    let mut dir = mount.clone();
                    for part in &parts {
                        dir.push(part);
                        mkdir(&dir)?;
                        if cpuset {
                            inherit_cpuset(&dir)?;
                        }
                    }
                }
            }
            Layout::Unified(root) => {
                let mut dir = root.clone();
                for part in &parts {
                    enable_controllers(&dir);
                    dir.push(part);
                    mkdir(&dir)?;
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` (with all its threads) into the cgroup in every
    /// hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        self.components()?;
        let pid = pid.to_string();
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    /// Moves the calling process into the (existing) cgroup in every
    /// hierarchy, allocating as little as it can: the monitor does this, and
    /// every page it touches stays dirty for the container's life.
    pub fn add_self(&self) -> Result<(), CgroupError> {
        self.components()?;
        let mounts: Vec<&Path> = match &self.layout {
            Layout::V1 { mounts } => mounts.iter().map(|(_, m)| m.as_path()).collect(),
            Layout::Unified(root) => vec![root.as_path()],
        };
        let mut path = PathBuf::with_capacity(256);
        for m in mounts {
            path.clear();
            path.push(m);
            path.push(&self.rel);
            path.push("cgroup.procs");
            write(&path, "0")?;
        }
        Ok(())
    }

    /// The processes in the cgroup and its descendants: from the pids (else
    /// memory, else first) hierarchy on v1, from the cgroup on v2. Empty if
    /// the cgroup does not exist.
    pub fn pids(&self) -> Vec<i32> {
        let dir = match &self.layout {
            Layout::V1 { mounts } => self
                .v1_dir("pids")
                .or_else(|| self.v1_dir("memory"))
                .or_else(|| mounts.first().map(|(_, m)| m.join(&self.rel))),
            Layout::Unified(root) => Some(root.join(&self.rel)),
        };
        let mut pids = Vec::new();
        if let Some(dir) = dir {
            collect_pids(&dir, &mut pids);
        }
        pids
    }

    /// Sends `sig` to every process in the cgroup. For SIGKILL on v2 it
    /// writes `cgroup.kill` (Linux >= 5.14), which leaves no race with
    /// forks; otherwise it signals every listed pid and, for SIGKILL, lists
    /// again and signals the newcomers until no new pid shows up. Errors
    /// (a process already gone) are ignored.
    pub fn kill_all(&self, sig: i32) {
        if self.components().is_err() {
            return;
        }
        if let (libc::SIGKILL, Layout::Unified(root)) = (sig, &self.layout) {
            let kill = root.join(&self.rel).join("cgroup.kill");
            if kill.exists() && write(&kill, "1").is_ok() {
                return;
            }
        }
        let mut signalled = HashSet::new();
        // Bounded so that a fork bomb cannot keep us here forever; every
        // round kills the parents of the next one's newcomers.
        for _ in 0..64 {
            let fresh: Vec<i32> = self
                .pids()
                .into_iter()
                .filter(|p| signalled.insert(*p))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for pid in fresh {
                send_signal(pid, sig);
            }
            if sig != libc::SIGKILL {
                break;
            }
        }
    }

    /// Removes the cgroup (and any sub-cgroups the container made) from
    /// every hierarchy. A missing directory is fine. While the kernel says
    /// EBUSY (processes still exiting) it retries, polling with a growing
    /// interval, for up to 1 s. Every hierarchy is tried; the first error
    /// is returned.
    pub fn remove(&self) -> Result<(), CgroupError> {
        self.components()?;
        let deadline = Instant::now() + DEADLINE;
        let mut first_err = None;
        for dir in self.dirs() {
            if let Err(e) = rmdir_tree(&dir, deadline) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes the container's limits (what is set; called once the cgroup
    /// exists, before anything is placed in it).
    pub fn apply(&self, r: &crate::Resources) -> Result<(), CgroupError> {
        let mut writes: Vec<(PathBuf, String)> = Vec::new();
        match &self.layout {
            Layout::V1 { .. } => {
                let at = |c: &str, f: &str| self.v1_dir(c).map(|d| d.join(f));
                if r.memory > 0 {
                    writes.extend(
                        at("memory", "memory.limit_in_bytes").map(|p| (p, r.memory.to_string())),
                    );
                    // Memory+swap only where swap is accounted (after the
                    // memory limit: the kernel wants memsw ≥ memory).
                    if let Some(p) =
                        at("memory", "memory.memsw.limit_in_bytes").filter(|p| p.exists())
                    {
                        writes.push((p, r.memory_swap.to_string()));
                    }
                }
                if r.cpu_period > 0 {
                    writes.extend(
                        at("cpu", "cpu.cfs_period_us").map(|p| (p, r.cpu_period.to_string())),
                    );
                }
                if r.cpu_quota != 0 {
                    writes.extend(
                        at("cpu", "cpu.cfs_quota_us").map(|p| (p, r.cpu_quota.to_string())),
                    );
                }
                // The period first: the kernel checks the runtime against it.
                if r.cpu_rt_period > 0 {
                    writes.extend(
                        at("cpu", "cpu.rt_period_us").map(|p| (p, r.cpu_rt_period.to_string())),
                    );
                }
                if r.cpu_rt_runtime != 0 {
                    writes.extend(
                        at("cpu", "cpu.rt_runtime_us").map(|p| (p, r.cpu_rt_runtime.to_string())),
                    );
                }
                if let Some(s) = r.memory_swappiness {
                    writes.extend(at("memory", "memory.swappiness").map(|p| (p, s.to_string())));
                }
                if r.oom_kill_disable {
                    writes.extend(at("memory", "memory.oom_control").map(|p| (p, "1".to_string())));
                }
                if r.blkio_weight > 0 {
                    writes.extend(
                        at("blkio", "blkio.weight").map(|p| (p, r.blkio_weight.to_string())),
                    );
                }
                for (file, list) in [
                    ("blkio.weight_device", &r.blkio_weight_device),
                    ("blkio.throttle.read_bps_device", &r.blkio_read_bps),
                    ("blkio.throttle.write_bps_device", &r.blkio_write_bps),
                    ("blkio.throttle.read_iops_device", &r.blkio_read_iops),
                    ("blkio.throttle.write_iops_device", &r.blkio_write_iops),
                ] {
                    for d in list {
                        writes.extend(
                            at("blkio", file)
                                .map(|p| (p, format!("{}:{} {}", d.major, d.minor, d.value))),
                        );
                    }
                }
                if r.cpu_shares > 0 {
                    writes.extend(at("cpu", "cpu.shares").map(|p| (p, r.cpu_shares.to_string())));
                }
                if r.pids_limit > 0 {
                    writes.extend(at("pids", "pids.max").map(|p| (p, r.pids_limit.to_string())));
                }
                if r.memory_reservation > 0 {
                    writes.extend(
                        at("memory", "memory.soft_limit_in_bytes")
                            .map(|p| (p, r.memory_reservation.to_string())),
                    );
                }
                if !r.cpuset_cpus.is_empty() {
                    writes.extend(at("cpuset", "cpuset.cpus").map(|p| (p, r.cpuset_cpus.clone())));
                }
                if !r.cpuset_mems.is_empty() {
                    writes.extend(at("cpuset", "cpuset.mems").map(|p| (p, r.cpuset_mems.clone())));
                }
            }
            Layout::Unified(root) => {
                let d = root.join(&self.rel);
                if r.memory > 0 {
                    writes.push((d.join("memory.max"), r.memory.to_string()));
                    let swap = if r.memory_swap < 0 {
                        "max".to_string()
                    } else {
                        (r.memory_swap - r.memory).max(0).to_string()
                    };
                    if d.join("memory.swap.max").exists() {
                        writes.push((d.join("memory.swap.max"), swap));
                    }
                }
                if r.cpu_quota != 0 || r.cpu_period > 0 {
                    let quota = if r.cpu_quota > 0 {
                        r.cpu_quota.to_string()
                    } else {
                        "max".to_string()
                    };
                    let period = if r.cpu_period > 0 {
                        r.cpu_period
                    } else {
                        100_000
                    };
                    writes.push((d.join("cpu.max"), format!("{quota} {period}")));
                }
                // No swappiness, OOM-killer switch or real-time CPU time on
                // v2: the engine discards or refuses them, as Docker's.
                // Weights as runc writes them: BFQ's file in its own scale
                // where there is one, else io.weight in v2's.
                let bfq = d.join("io.bfq.weight").exists();
                let (weight_file, scale): (&str, fn(u64) -> u64) = if bfq {
                    ("io.bfq.weight", |w| w)
                } else {
                    ("io.weight", blkio_weight_to_io_weight)
                };
                if r.blkio_weight > 0 {
                    let w = scale(u64::from(r.blkio_weight));
                    let value = if bfq {
                        w.to_string()
                    } else {
                        format!("default {w}")
                    };
                    writes.push((d.join(weight_file), value));
                }
                for dv in &r.blkio_weight_device {
                    writes.push((
                        d.join(weight_file),
                        format!("{}:{} {}", dv.major, dv.minor, scale(dv.value)),
                    ));
                }
                for (key, list) in [
                    ("rbps", &r.blkio_read_bps),
                    ("wbps", &r.blkio_write_bps),
                    ("riops", &r.blkio_read_iops),
                    ("wiops", &r.blkio_write_iops),
                ] {
                    for dv in list {
                        writes.push((
                            d.join("io.max"),
                            format!("{}:{} {key}={}", dv.major, dv.minor, dv.value),
                        ));
                    }
                }
                if r.cpu_shares > 0 {
                    writes.push((
                        d.join("cpu.weight"),
                        shares_to_weight(r.cpu_shares).to_string(),
                    ));
                }
                if r.pids_limit > 0 {
                    writes.push((d.join("pids.max"), r.pids_limit.to_string()));
                }
                if r.memory_reservation > 0 {
                    writes.push((d.join("memory.low"), r.memory_reservation.to_string()));
                }
                if !r.cpuset_cpus.is_empty() {
                    writes.push((d.join("cpuset.cpus"), r.cpuset_cpus.clone()));
                }
                if !r.cpuset_mems.is_empty() {
                    writes.push((d.join("cpuset.mems"), r.cpuset_mems.clone()));
                }
            }
        }
        for (file, value) in writes {
            write(&file, &value)?;
        }
        Ok(())
    }

    /// What the cgroup has used, as `stats` shows it: CPU time (ns),
    /// memory without its inactive file cache and the limit (0: none),
    /// bytes read and written on block devices, processes.
    pub fn usage(&self) -> Usage {
        let read = |p: Option<PathBuf>| {
            p.and_then(|p| fs::read_to_string(p).ok())
                .unwrap_or_default()
        };
        let num = |s: &str| s.trim().parse::<u64>().unwrap_or(0);
        let stat = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
                .map(num)
                .unwrap_or(0)
        };
        let mut u = Usage::default();
        match &self.layout {
            Layout::V1 { .. } => {
                let at = |c: &str, f: &str| self.v1_dir(c).map(|d| d.join(f));
                u.cpu_ns = num(&read(at("cpuacct", "cpuacct.usage")));
                let mstat = read(at("memory", "memory.stat"));
                u.memory = num(&read(at("memory", "memory.usage_in_bytes")))
                    .saturating_sub(stat(&mstat, "total_inactive_file"));
                u.memory_limit = num(&read(at("memory", "memory.limit_in_bytes")));
                for l in read(at("blkio", "blkio.throttle.io_service_bytes_recursive")).lines() {
                    let mut w = l.split_whitespace();
                    match (w.next(), w.next(), w.next()) {
                        (Some(_), Some("Read"), Some(n)) => u.read_bytes += num(n),
                        (Some(_), Some("Write"), Some(n)) => u.write_bytes += num(n),
                        _ => {}
                    }
                }
                u.pids = num(&read(at("pids", "pids.current")));
            }
            Layout::Unified(root) => {
                let d = root.join(&self.rel);
                u.cpu_ns = stat(&read(Some(d.join("cpu.stat"))), "usage_usec") * 1000;
                let mstat = read(Some(d.join("memory.stat")));
                u.memory = num(&read(Some(d.join("memory.current"))))
                    .saturating_sub(stat(&mstat, "inactive_file"));
                u.memory_limit = num(&read(Some(d.join("memory.max"))));
                for l in read(Some(d.join("io.stat"))).lines() {
                    for kv in l.split_whitespace().skip(1) {
                        match kv.split_once('=') {
                            Some(("rbytes", n)) => u.read_bytes += num(n),
                            Some(("wbytes", n)) => u.write_bytes += num(n),
                            _ => {}
                        }
                    }
                }
                u.pids = num(&read(Some(d.join("pids.current"))));
            }
        }
        u
    }

    /// The memory controller's `memory.stat`, key by key (v1's 32 keys,
    /// `total_inactive_file` among them; v2's), and the peak usage where
    /// the kernel keeps one (v1 `max_usage_in_bytes`, v2 `memory.peak`).
    pub fn memory_stat(&self) -> (Vec<(String, u64)>, u64) {
        let (stat, peak) = match &self.layout {
            Layout::V1 { .. } => (
                self.v1_dir("memory").map(|d| d.join("memory.stat")),
                self.v1_dir("memory")
                    .map(|d| d.join("memory.max_usage_in_bytes")),
            ),
            Layout::Unified(root) => {
                let d = root.join(&self.rel);
                (Some(d.join("memory.stat")), Some(d.join("memory.peak")))
            }
        };
        let text = stat
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default();
        let pairs = text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect();
        let peak = peak
            .and_then(|p| fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        (pairs, peak)
    }

    /// Whether the cgroup is frozen (or freezing): v1 `freezer.state` not
    /// THAWED, v2 `cgroup.freeze` 1. A cgroup that is not there is not.
    /// The file [`Cgroup::frozen`] reads (v1 `freezer.state`, v2
    /// `cgroup.freeze`): every freeze and thaw writes it, so a watcher of
    /// this file sees them.
    pub fn freeze_file(&self) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { .. } => self.v1_dir("freezer").map(|d| d.join("freezer.state")),
            Layout::Unified(root) => Some(root.join(&self.rel).join("cgroup.freeze")),
        }
    }

    pub fn frozen(&self) -> bool {
        match &self.layout {
            Layout::V1 { .. } => self
                .v1_dir("freezer")
                .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
                .is_some_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING")),
            Layout::Unified(root) => fs::read_to_string(root.join(&self.rel).join("cgroup.freeze"))
                .is_ok_and(|s| s.trim() == "1"),
        }
    }

    /// Freezes (`on`) or thaws every process of the cgroup: v1
    /// `freezer.state` FROZEN/THAWED, v2 `cgroup.freeze` 1/0. Freezing
    /// waits, up to 1 s, until the kernel reports the cgroup frozen; on
    /// timeout the cgroup is thawed again and an error returned.
    pub fn freeze(&self, on: bool) -> Result<(), CgroupError> {
        self.components()?;
        let v1 = matches!(self.layout, Layout::V1 { .. });
        // (control file, where the state shows, freeze/thaw values)
        let (file, events, (frozen, thawed)) = match &self.layout {
            Layout::V1 { .. } => {
                let dir = self
                    .v1_dir("freezer")
                    .ok_or(CgroupError::NoController("freezer"))?;
                let file = dir.join("freezer.state");
                (file.clone(), file, ("FROZEN", "THAWED"))
            }
            Layout::Unified(root) => {
                let dir = root.join(&self.rel);
                (
                    dir.join("cgroup.freeze"),
                    dir.join("cgroup.events"),
                    ("1", "0"),
                )
            }
        };
        write(&file, if on { frozen } else { thawed })?;
        if !on {
            return Ok(());
        }
        let is_frozen = |s: &str| {
            if v1 {
                s.trim() == "FROZEN"
            } else {
                s.lines().any(|l| l.trim() == "frozen 1")
            }
        };
        let deadline = Instant::now() + DEADLINE;
        let mut wait = Duration::from_micros(200);
        loop {
            if fs::read_to_string(&events).is_ok_and(|s| is_frozen(&s)) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let _ = write(&file, thawed);
                return Err(CgroupError::FreezeTimeout {
                    path: file.parent().map(Path::to_path_buf).unwrap_or_default(),
                });
            }
            // v1 can stop in FREEZING when a task was busy: ask again.
            if v1 {
                let _ = write(&file, frozen);
            }
            std::thread::sleep(wait.min(deadline - now));
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }

    /// The CPU time the cgroup's processes used, in ns (0: unknown): one
    /// read, for the idle check that runs while the container is awake.
    pub fn cpu_ns(&self) -> u64 {
        let (file, usec) = match &self.layout {
            Layout::V1 { .. } => match self.v1_dir("cpuacct") {
                Some(d) => (d.join("cpuacct.usage"), false),
                None => return 0,
            },
            Layout::Unified(root) => (root.join(&self.rel).join("cpu.stat"), true),
        };
        let text = fs::read_to_string(file).unwrap_or_default();
        if usec {
            text.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(0, |v| v * 1000)
        } else {
            text.trim().parse().unwrap_or(0)
        }
    }

    /// Pushes out what the kernel can reclaim of the cgroup's memory (an
    /// idle container's, on request): v2 `memory.reclaim` of all it
    /// uses; v1 `memory.force_empty`, which drops its page cache. Best
    /// effort: what cannot be reclaimed stays.
    pub fn reclaim(&self) {
        match &self.layout {
            Layout::V1 { .. } => {
                if let Some(d) = self.v1_dir("memory") {
                    let _ = write(&d.join("memory.force_empty"), "0");
                }
            }
            Layout::Unified(root) => {
                let d = root.join(&self.rel);
                let current = fs::read_to_string(d.join("memory.current")).unwrap_or_default();
                if let Ok(n) = current.trim().parse::<u64>() {
                    let _ = write(&d.join("memory.reclaim"), &n.to_string());
                }
            }
        }
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup: v1
    /// `memory.oom_control` "oom_kill N", v2 `memory.events` "oom_kill N",
    /// with N > 0. False when unknown.
    pub fn memory_events_oom(&self) -> bool {
        let file = match &self.layout {
            Layout::V1 { .. } => self.v1_dir("memory").map(|d| d.join("memory.oom_control")),
            Layout::Unified(root) => Some(root.join(&self.rel).join("memory.events")),
        };
        let Some(text) = file.and_then(|f| fs::read_to_string(f).ok()) else {
            return false;
        };
        text.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    }
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// What a cgroup has used ([`Cgroup::usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory: u64,
    /// 0 or a value past the host's memory: no limit.
    pub memory_limit: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub pids: u64,
}

/// A v1 blkio weight (10–1,000) as v2 `io.weight` (1–10,000), as runc
/// maps it.
pub fn blkio_weight_to_io_weight(w: u64) -> u64 {
    1 + (w.clamp(10, 1000) - 10) * 9999 / 990
}

/// v1 `cpu.shares` (2–262,144) as v2 `cpu.weight` (1–10,000), as runc maps it.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(file, value).map_err(|source| CgroupError::Write {
        path: file.to_path_buf(),
        source,
    })
}

/// Gives an empty `cpuset.cpus`/`cpuset.mems` its parent's value.
fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(name);
        let current = fs::read_to_string(&own).unwrap_or_default();
        if !current.trim().is_empty() {
            continue;
        }
        let inherited = fs::read_to_string(parent.join(name)).unwrap_or_default();
        let inherited = inherited.trim();
        if !inherited.is_empty() {
            write(&own, inherited)?;
        }
    }
    Ok(())
}

/// Enables berth's controllers in `dir`'s subtree_control where offered.
fn enable_controllers(dir: &Path) {
    let offered = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let control = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).unwrap_or_default();
    for c in V2_CONTROLLERS {
        let has = |s: &str| s.split_whitespace().any(|x| x == c);
        if has(&offered) && !has(&enabled) {
            // EBUSY (the parent holds processes), ENOENT, EINVAL: leave it.
            let _ = fs::write(&control, format!("+{c}"));
        }
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// Removes `dir` after its sub-directories, retrying EBUSY until
/// `deadline`.
fn rmdir_tree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path(), deadline)?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Remove {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    let mut wait = Duration::from_micros(200);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
                wait = (wait * 2).min(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

fn send_signal(pid: i32, sig: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours;
    // pid > 0 so it never targets a process group or every process.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Starts an RCU grace period for cgroup migrations in the background.
///
/// On cgroup v1 the first write to a `cgroup.procs` in a while waits for an
/// RCU grace period (7–10 ms on this kernel); writes that follow within one
/// grace period are fast (0.1 ms). Moving our own process into the cgroup
/// it is already in changes nothing but starts that wait early, from a
/// thread, while the caller does its other work; the monitor's real
/// migration of the container then finds the grace period (nearly) over.
pub fn warm_up_migrations() {
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    // Any v1 hierarchy we are in will do; `pids` is present on every v1 host.
    let Some(path) = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        (ctrl == "pids").then(|| path.to_string())
    }) else {
        return;
    };
    let procs = PathBuf::from("/sys/fs/cgroup/pids")
        .join(path.trim_start_matches('/'))
        .join("cgroup.procs");
    let _ = std::thread::Builder::new()
        .name("cgroup-warm".into())
        .spawn(move || {
            let _ = std::fs::write(procs, "0");
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The idle mode's v2 reads and writes over a fake tree: CPU time from
    /// `cpu.stat` (µs → ns), the freeze flag, and `memory.reclaim` of all
    /// that `memory.current` says.
    #[test]
    fn unified_idle_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("berth/c2");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 1234\nuser_usec 1000\n").unwrap();
        fs::write(dir.join("memory.current"), "4096\n").unwrap();
        let cg = Cgroup::new(&Layout::Unified(root.path().to_path_buf()), "berth/c2");
        assert_eq!(cg.cpu_ns(), 1_234_000);
        cg.reclaim();
        assert_eq!(
            fs::read_to_string(dir.join("memory.reclaim")).unwrap(),
            "4096"
        );
        assert!(!cg.frozen());
        fs::write(dir.join("cgroup.freeze"), "1\n").unwrap();
        assert!(cg.frozen());
        // Nothing there: 0, no panic.
        let gone = Cgroup::new(&Layout::Unified(root.path().to_path_buf()), "berth/none");
        assert_eq!(gone.cpu_ns(), 0);
        gone.reclaim();
    }

    /// v2 limits over a fake cgroup tree (this machine is v1).
    #[test]
    fn unified_limits_are_written_as_v2_wants_them() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("berth/c1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("memory.swap.max"), "max").unwrap();
        let cg = Cgroup::new(&Layout::Unified(root.path().to_path_buf()), "berth/c1");
        let r = crate::Resources {
            memory: 64 << 20,
            memory_swap: 96 << 20,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            cpu_shares: 512,
            pids_limit: 50,
            memory_reservation: 32 << 20,
            cpuset_cpus: "0-1".into(),
            ..Default::default()
        };
        cg.apply(&r).unwrap();
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("cpu.weight"), "20");
        assert_eq!(read("pids.max"), "50");
        assert_eq!(read("memory.low"), (32u64 << 20).to_string());
        assert_eq!(read("cpuset.cpus"), "0-1");
        cg.apply(&crate::Resources {
            memory: 64 << 20,
            memory_swap: -1,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(read("memory.swap.max"), "max");
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    fn dv(major: u32, minor: u32, value: u64) -> crate::DeviceValue {
        crate::DeviceValue {
            major,
            minor,
            value,
        }
    }

    /// The limits of issue 11's second part: every file and its value.
    fn more_limits() -> crate::Resources {
        crate::Resources {
            cpu_period: 50_000,
            cpu_quota: 25_000,
            cpu_rt_period: 1_000_000,
            cpu_rt_runtime: 950_000,
            memory_swappiness: Some(0),
            oom_kill_disable: true,
            blkio_weight: 300,
            blkio_weight_device: vec![dv(8, 0, 200)],
            blkio_read_bps: vec![dv(8, 0, 1_048_576)],
            blkio_write_bps: vec![dv(8, 16, 2048)],
            blkio_read_iops: vec![dv(8, 0, 100)],
            blkio_write_iops: vec![dv(8, 0, 200)],
            ..Default::default()
        }
    }

    /// v1 over a fake tree: each value in its controller's file.
    #[test]
    fn v1_limits_are_written_to_their_controllers() {
        let root = tempfile::tempdir().unwrap();
        let mounts: Vec<(String, PathBuf)> = ["cpu,cpuacct", "memory", "blkio"]
            .iter()
            .map(|c| (c.to_string(), root.path().join(c)))
            .collect();
        for (_, m) in &mounts {
            fs::create_dir_all(m.join("berth/c1")).unwrap();
        }
        let cg = Cgroup::new(&Layout::V1 { mounts }, "berth/c1");
        cg.apply(&more_limits()).unwrap();
        let read = |c: &str, f: &str| {
            fs::read_to_string(root.path().join(c).join("berth/c1").join(f)).unwrap()
        };
        assert_eq!(read("cpu,cpuacct", "cpu.cfs_period_us"), "50000");
        assert_eq!(read("cpu,cpuacct", "cpu.cfs_quota_us"), "25000");
        assert_eq!(read("cpu,cpuacct", "cpu.rt_period_us"), "1000000");
        assert_eq!(read("cpu,cpuacct", "cpu.rt_runtime_us"), "950000");
        assert_eq!(read("memory", "memory.swappiness"), "0");
        assert_eq!(read("memory", "memory.oom_control"), "1");
        assert_eq!(read("blkio", "blkio.weight"), "300");
        assert_eq!(read("blkio", "blkio.weight_device"), "8:0 200");
        assert_eq!(
            read("blkio", "blkio.throttle.read_bps_device"),
            "8:0 1048576"
        );
        assert_eq!(
            read("blkio", "blkio.throttle.write_bps_device"),
            "8:16 2048"
        );
        assert_eq!(read("blkio", "blkio.throttle.read_iops_device"), "8:0 100");
        assert_eq!(read("blkio", "blkio.throttle.write_iops_device"), "8:0 200");
        // Nothing is written that was not asked for.
        let cg2 = root.path().join("memory/berth/c2");
        fs::create_dir_all(&cg2).unwrap();
        Cgroup::new(cg.layout(), "berth/c2")
            .apply(&Default::default())
            .unwrap();
        assert_eq!(fs::read_dir(&cg2).unwrap().count(), 0);
    }

    /// v2 over a fake tree: io.weight in v2's scale (or BFQ's file in
    /// its own), io.max lines, cpu.max with the default period; no v1-only
    /// file appears.
    #[test]
    fn unified_io_and_cpu_limits() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("berth/c1");
        fs::create_dir_all(&dir).unwrap();
        let cg = Cgroup::new(&Layout::Unified(root.path().to_path_buf()), "berth/c1");
        let mut r = more_limits();
        r.blkio_weight_device.clear();
        r.blkio_read_bps.clear();
        r.blkio_write_bps.clear();
        r.blkio_read_iops.clear();
        cg.apply(&r).unwrap();
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("cpu.max"), "25000 50000");
        assert_eq!(
            read("io.weight"),
            format!("default {}", blkio_weight_to_io_weight(300))
        );
        assert_eq!(read("io.max"), "8:0 wiops=200");
        for f in [
            "memory.swappiness",
            "memory.oom_control",
            "cpu.rt_runtime_us",
        ] {
            assert!(!dir.join(f).exists(), "{f}");
        }
        cg.apply(&crate::Resources {
            cpu_quota: 20_000,
            blkio_weight_device: vec![dv(8, 0, 1000)],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(read("cpu.max"), "20000 100000");
        assert_eq!(read("io.weight"), "8:0 10000");
        // With BFQ: its own file and scale.
        fs::write(dir.join("io.bfq.weight"), "100").unwrap();
        cg.apply(&crate::Resources {
            blkio_weight: 300,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(read("io.bfq.weight"), "300");
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:29 /sub /mnt/with\\040space rw,relatime - cgroup cgroup rw,cpu
";

    #[test]
    fn hybrid_is_v1() {
        let l = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(
            l,
            Layout::V1 {
                mounts: vec![
                    ("cpu".into(), "/sys/fs/cgroup/cpu".into()),
                    ("cpuset".into(), "/sys/fs/cgroup/cpuset".into()),
                    ("name=systemd".into(), "/sys/fs/cgroup/systemd".into()),
                ]
            }
        );
    }

    #[test]
    fn unified_and_none() {
        let s = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            parse_mountinfo(s).unwrap(),
            Layout::Unified("/sys/fs/cgroup".into())
        );
        let s = "30 23 0:26 / /proc rw - proc proc rw\n";
        assert!(matches!(parse_mountinfo(s), Err(CgroupError::NotMounted)));
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/a\\04"), "/a\\04");
    }

    #[test]
    fn bad_paths_are_refused() {
        let l = Layout::Unified("/nonexistent-cgroup-root".into());
        for rel in ["", "/", "a/../b", "a//b", "./a"] {
            assert!(matches!(
                Cgroup::new(&l, rel).create(),
                Err(CgroupError::InvalidPath(_))
            ));
        }
    }

    /// Kills the test child and removes the test cgroups whatever happens.
    struct Cleanup {
        pid: i32,
        groups: Vec<Cgroup>,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            if self.pid > 0 {
                send_signal(self.pid, libc::SIGKILL);
                // SAFETY: reaps our own child; a null status is allowed.
                unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
            }
            for g in &self.groups {
                g.kill_all(libc::SIGKILL);
                let _ = g.remove();
            }
        }
    }

    #[test]
    fn lifecycle_on_this_host() {
        let layout = detect().unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let top = format!("berth-test-{}-{nanos:x}", std::process::id());
        let cg = Cgroup::new(&layout, &format!("{top}/c1"));
        let parent = Cgroup::new(&layout, &top);
        let mut guard = Cleanup {
            pid: 0,
            groups: vec![cg.clone(), parent.clone()],
        };

        cg.create().unwrap();
        for d in cg.dirs() {
            assert!(d.is_dir(), "{} missing", d.display());
        }
        if let Some(cpuset) = cg.v1_dir("cpuset") {
            let cpus = fs::read_to_string(cpuset.join("cpuset.cpus")).unwrap();
            assert!(!cpus.trim().is_empty());
        }

        // SAFETY: the child only waits for a signal.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            loop {
                // SAFETY: pause(2) just waits; SIGKILL ends it.
                unsafe { libc::pause() };
            }
        }
        guard.pid = pid;
        cg.add_pid(pid).unwrap();
        assert_eq!(cg.pids(), vec![pid]);
        assert!(!cg.memory_events_oom());

        cg.freeze(true).unwrap();
        cg.freeze(false).unwrap();

        cg.kill_all(libc::SIGKILL);
        let mut status = 0;
        // SAFETY: reaps our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        guard.pid = 0;
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);

        cg.remove().unwrap();
        parent.remove().unwrap();
        for d in cg.dirs().into_iter().chain(parent.dirs()) {
            assert!(!d.exists(), "{} left behind", d.display());
        }
        // Removing again is fine.
        cg.remove().unwrap();
    }
}
