//! `stats`: what a running container uses, sampled from its cgroup and its
//! network namespace, in the quantities Docker computes its columns from.

use crate::container::ContainerView;
use crate::Engine;

/// One reading of a container (all zero for one that is not running).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSample {
    /// The container's CPU time, ns.
    pub cpu_ns: u64,
    /// The host's CPU time (all CPUs, from /proc/stat), ns.
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Bytes, without the inactive file cache (as Docker's CLI shows it).
    pub mem_usage: u64,
    /// The limit, or the host's memory when there is none.
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

impl StatsSample {
    /// Docker's CPU %: the container's share of the host's CPU time since
    /// `before`, times the online CPUs.
    pub fn cpu_percent(&self, before: &StatsSample) -> f64 {
        let cpu = self.cpu_ns.saturating_sub(before.cpu_ns) as f64;
        let system = self.system_ns.saturating_sub(before.system_ns) as f64;
        if cpu > 0.0 && system > 0.0 {
            cpu / system * f64::from(self.online_cpus.max(1)) * 100.0
        } else {
            0.0
        }
    }

    pub fn mem_percent(&self) -> f64 {
        if self.mem_limit == 0 {
            0.0
        } else {
            self.mem_usage as f64 / self.mem_limit as f64 * 100.0
        }
    }
}

/// The host's CPU time from the first line of /proc/stat, ns (USER_HZ 100).
fn system_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks * 10_000_000
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes received and sent on a namespace's interfaces but loopback, from
/// /proc/PID/net/dev (the namespace of PID).
fn net_bytes(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .fold((0, 0), |(rx, tx), (_, rest)| {
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (
                rx + f.first().copied().unwrap_or(0),
                tx + f.get(8).copied().unwrap_or(0),
            )
        })
}

impl Engine {
    /// One reading of `v` (zeros when it is not running).
    /// The container's `memory.stat` pairs and its peak memory usage
    /// (empty and 0 when it is not running).
    pub fn memory_stat(&self, v: &ContainerView) -> (Vec<(String, u64)>, u64) {
        if !v.running() {
            return (Vec::new(), 0);
        }
        let Some(layout) = self.cgroup_layout() else {
            return (Vec::new(), 0);
        };
        berth_runtime::cgroups::Cgroup::new(layout, &self.cgroup_rel(&v.id, &v.host_config))
            .memory_stat()
    }

    pub fn stats_sample(&self, v: &ContainerView) -> StatsSample {
        if !v.running() {
            return StatsSample::default();
        }
        let Some(layout) = self.cgroup_layout() else {
            return StatsSample::default();
        };
        let cg =
            berth_runtime::cgroups::Cgroup::new(layout, &self.cgroup_rel(&v.id, &v.host_config));
        let u = cg.usage();
        let host = host_memory();
        let (net_rx, net_tx) = if v.host_config.network_mode == "host" {
            (0, 0)
        } else {
            net_bytes(v.state.pid)
        };
        StatsSample {
            cpu_ns: u.cpu_ns,
            system_ns: system_ns(),
            online_cpus: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1)),
            mem_usage: u.memory,
            mem_limit: if u.memory_limit == 0 || u.memory_limit > host {
                host
            } else {
                u.memory_limit
            },
            net_rx,
            net_tx,
            blk_read: u.read_bytes,
            blk_write: u.write_bytes,
            pids: u.pids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        let a = StatsSample {
            cpu_ns: 1_000,
            system_ns: 10_000,
            online_cpus: 2,
            ..Default::default()
        };
        let b = StatsSample {
            cpu_ns: 6_000,
            system_ns: 20_000,
            online_cpus: 2,
            mem_usage: 25,
            mem_limit: 100,
            ..Default::default()
        };
        assert!((b.cpu_percent(&a) - 100.0).abs() < 1e-9);
        assert!((b.mem_percent() - 25.0).abs() < 1e-9);
        assert_eq!(a.cpu_percent(&a), 0.0);
        assert!(net_bytes(-1) == (0, 0));
    }
}
