//! The limit flags beyond memory, CPUs and pids (issue 11's second part):
//! the docker CLI's parsers for their values (the CLI calls them and wraps
//! a refusal in its flag error), Docker's daemon checks and warnings
//! (`HostConfig` as Docker records it), and what the runtime gets from a
//! `HostConfig` (cgroup values by device number, rlimits, device nodes
//! and their cgroup rules).
//!
//! Never: lets a `--device` reach anything but the host node it names
//! (the node is made from the host's own type and number, and the cgroup
//! allows exactly that number with the given access); writes anything.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use berth_runtime::cgroups::Layout;
use berth_types::{DeviceMapping, HostConfig, ThrottleDevice, Ulimit, WeightDevice};

use crate::{EngineError, Result};

/// Docker's `--ulimit` names.
const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// A flag's value the docker CLI refuses, in its words (the CLI adds
/// `invalid argument "V" for "--FLAG" flag: `, or prints it alone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// `--ulimit NAME=SOFT[:HARD]`.
pub fn parse_ulimit(v: &str) -> std::result::Result<Ulimit, InvalidValue> {
    parse_ulimit_text(v).map_err(InvalidValue)
}

/// `--blkio-weight-device /dev/X:WEIGHT`.
pub fn parse_weight_device(v: &str) -> std::result::Result<WeightDevice, InvalidValue> {
    parse_weight_device_text(v).map_err(InvalidValue)
}

/// `--device-read-bps`/`--device-write-bps /dev/X:RATE[kb|mb|gb]`.
pub fn parse_throttle_bps(v: &str) -> std::result::Result<ThrottleDevice, InvalidValue> {
    parse_throttle_bps_text(v).map_err(InvalidValue)
}

/// `--device-read-iops`/`--device-write-iops /dev/X:N`.
pub fn parse_throttle_iops(v: &str) -> std::result::Result<ThrottleDevice, InvalidValue> {
    parse_throttle_iops_text(v).map_err(InvalidValue)
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`.
pub fn parse_device(v: &str) -> std::result::Result<DeviceMapping, InvalidValue> {
    parse_device_text(v).map_err(InvalidValue)
}

/// `--device-cgroup-rule TYPE MAJOR:MINOR ACCESS`.
pub fn check_device_cgroup_rule(v: &str) -> std::result::Result<String, InvalidValue> {
    check_device_cgroup_rule_text(v).map_err(InvalidValue)
}

/// Go's `strconv.ParseInt` words for a value that is not an int64.
fn parse_int(s: &str) -> std::result::Result<i64, String> {
    s.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing \"{s}\": {why}")
    })
}

/// `--ulimit NAME=SOFT[:HARD]` (go-units' `ParseUlimit`: the hard value
/// is read first; a soft over a hard of -1, unlimited, is fine).
fn parse_ulimit_text(v: &str) -> std::result::Result<Ulimit, String> {
    let Some((name, limits)) = v.split_once('=') else {
        return Err(format!("invalid ulimit argument: {v}"));
    };
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let s = parse_int(soft)?;
            (s, s)
        }
        [soft, hard] => {
            let h = parse_int(hard)?;
            (parse_int(soft)?, h)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 && soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        hard,
        soft,
    })
}

/// `PATH:VALUE` with a `/dev/` path, the docker CLI's first checks of the
/// block I/O flags.
fn device_and_value(v: &str) -> std::result::Result<(&str, &str), String> {
    let Some((path, value)) = v.split_once(':') else {
        return Err(format!("bad format: {v}"));
    };
    if !path.starts_with("/dev/") {
        return Err(format!("bad format for device path: {v}"));
    }
    Ok((path, value))
}

/// `--blkio-weight-device /dev/X:WEIGHT` (0, or 10–1000).
fn parse_weight_device_text(v: &str) -> std::result::Result<WeightDevice, String> {
    let (path, w) = device_and_value(v)?;
    let weight = w
        .parse::<u16>()
        .ok()
        .filter(|w| *w == 0 || (10..=1000).contains(w))
        .ok_or_else(|| format!("invalid weight for device: {v}"))?;
    Ok(WeightDevice {
        path: path.to_string(),
        weight,
    })
}

/// `--device-read-bps`/`--device-write-bps /dev/X:RATE[kb|mb|gb]`.
fn parse_throttle_bps_text(v: &str) -> std::result::Result<ThrottleDevice, String> {
    let (path, r) = device_and_value(v)?;
    let rate = crate::parse_size(r).filter(|_| !r.trim().is_empty()).ok_or_else(|| {
        format!("invalid rate for device: {v}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb")
    })?;
    Ok(ThrottleDevice {
        path: path.to_string(),
        rate,
    })
}

/// `--device-read-iops`/`--device-write-iops /dev/X:N`.
fn parse_throttle_iops_text(v: &str) -> std::result::Result<ThrottleDevice, String> {
    let (path, r) = device_and_value(v)?;
    let rate = r.parse::<u64>().map_err(|_| {
        format!("invalid rate for device: {v}. The correct format is <device-path>:<number>. Number must be a positive integer")
    })?;
    Ok(ThrottleDevice {
        path: path.to_string(),
        rate,
    })
}

/// r, w and m, each at most once, one to three of them.
fn valid_device_mode(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 3
        && m.bytes()
            .enumerate()
            .all(|(i, b)| matches!(b, b'r' | b'w' | b'm') && !m.as_bytes()[..i].contains(&b))
}

/// Go's `path.Clean` for an absolute path (`..` stops at `/`).
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if p.starts_with('/') {
        format!("/{}", out.join("/"))
    } else if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`, as the docker CLI checks and
/// records it (`validateLinuxPath`, then `parseDevice`).
fn parse_device_text(v: &str) -> std::result::Result<DeviceMapping, String> {
    if v.matches(':').count() > 2 || v.split(':').next().is_some_and(str::is_empty) {
        return Err(format!("bad format for path: {v}"));
    }
    let split: Vec<&str> = v.splitn(3, ':').collect();
    let (host, container, mode) = match split.as_slice() {
        [host] => (clean(host), String::new(), "rwm"),
        [host, m] if valid_device_mode(m) => (clean(host), String::new(), *m),
        [host, c] => (host.to_string(), clean(c), "rwm"),
        [host, c, m] => {
            if !valid_device_mode(m) {
                return Err(format!("bad mode specified: {m}"));
            }
            (host.to_string(), c.to_string(), *m)
        }
        _ => return Err(format!("bad format for path: {v}")),
    };
    let checked = if container.is_empty() {
        &host
    } else {
        &container
    };
    if !checked.starts_with('/') {
        return Err(format!("{checked} is not an absolute path"));
    }
    Ok(DeviceMapping {
        path_in_container: if container.is_empty() {
            host.clone()
        } else {
            container
        },
        path_on_host: host,
        cgroup_permissions: mode.to_string(),
    })
}

/// `--device-cgroup-rule` as the docker CLI checks it.
fn check_device_cgroup_rule_text(v: &str) -> std::result::Result<String, String> {
    match berth_runtime::devices::parse_rule(v) {
        Some(_) => Ok(v.to_string()),
        None => Err(format!("invalid device cgroup format '{v}'")),
    }
}

/// The options of this module as `create` gets them (parsed by the CLI
/// with the functions above); `update` gives the CPU and block I/O ones.
#[derive(Clone, Debug, Default)]
pub struct MoreLimits {
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: bool,
    pub oom_score_adj: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_rt_period: Option<i64>,
    pub cpu_rt_runtime: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub blkio_weight_device: Vec<WeightDevice>,
    pub device_read_bps: Vec<ThrottleDevice>,
    pub device_write_bps: Vec<ThrottleDevice>,
    pub device_read_iops: Vec<ThrottleDevice>,
    pub device_write_iops: Vec<ThrottleDevice>,
    pub ulimits: Vec<Ulimit>,
    /// Bytes (the CLI read the size).
    pub shm_size: Option<i64>,
    pub devices: Vec<DeviceMapping>,
    pub device_cgroup_rules: Vec<String>,
    /// `--cgroup-parent` as given.
    pub cgroup_parent: Option<String>,
    /// `--gpus`: refused (berth has no device drivers).
    pub gpus: Option<String>,
}

/// What the host's cgroups offer, as Docker's `sysinfo` finds it: a file
/// in the root of the controller's hierarchy (v1) or of the unified one.
fn host_has(layout: Option<&Layout>, controller: &str, file: &str) -> bool {
    match layout {
        Some(Layout::V1 { mounts }) => mounts
            .iter()
            .find(|(c, _)| c.split(',').any(|c| c == controller))
            .is_some_and(|(_, m)| m.join(file).exists()),
        Some(Layout::Unified(_)) => false,
        None => false,
    }
}

/// Docker's daemon checks of `m` over `h` (whose NanoCpus is already
/// decided): the values go into `h`, what the host cannot do is discarded
/// with Docker's warning (returned), what is wrong is refused in Docker's
/// words. `h` is only changed when everything passes.
pub(crate) fn check_into(
    m: &MoreLimits,
    h: &mut HostConfig,
    layout: Option<&Layout>,
) -> Result<Vec<String>> {
    let invalid = |s: String| Err(EngineError::InvalidArgument(s));
    let mut warnings = Vec::new();
    let mut n = h.clone();
    if m.gpus.is_some() {
        return invalid(
            "could not select device driver \"\" with capabilities: [[gpu]]".to_string(),
        );
    }
    if let Some(s) = m.memory_swappiness {
        if !(-1..=100).contains(&s) {
            return invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            ));
        }
        n.memory_swappiness = (s != -1).then_some(s);
    }
    if n.memory_swappiness.is_some() && !host_has(layout, "memory", "memory.swappiness") {
        warnings.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".to_string());
        n.memory_swappiness = None;
    }
    if m.oom_kill_disable {
        n.oom_kill_disable = true;
        if !host_has(layout, "memory", "memory.oom_control") {
            warnings.push(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded."
                    .to_string(),
            );
            n.oom_kill_disable = false;
        } else if n.memory == 0 {
            warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".to_string());
        }
    }
    if let Some(a) = m.oom_score_adj {
        if !(-1000..=1000).contains(&a) {
            return invalid(format!(
                "Invalid value {a}, range for oom score adj is [-1000, 1000]"
            ));
        }
        n.oom_score_adj = a;
    }
    if let Some(p) = m.cpu_period {
        n.cpu_period = p;
    }
    if let Some(q) = m.cpu_quota {
        n.cpu_quota = q;
    }
    if n.nano_cpus > 0 && n.cpu_period > 0 {
        return invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".to_string(),
        );
    }
    if n.nano_cpus > 0 && n.cpu_quota > 0 {
        return invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set".to_string(),
        );
    }
    if n.cpu_period != 0 && !(1000..=1_000_000).contains(&n.cpu_period) {
        return invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .to_string(),
        );
    }
    if n.cpu_quota > 0 && n.cpu_quota < 1000 {
        return invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)".to_string());
    }
    if let Some(p) = m.cpu_rt_period {
        n.cpu_realtime_period = p;
    }
    if let Some(r) = m.cpu_rt_runtime {
        n.cpu_realtime_runtime = r;
    }
    let rt = || host_has(layout, "cpu", "cpu.rt_period_us");
    if n.cpu_realtime_period > 0 && !rt() {
        return invalid("Your kernel does not support cgroup cpu real-time period".to_string());
    }
    if n.cpu_realtime_runtime > 0 && !rt() {
        return invalid("Your kernel does not support cgroup cpu real-time runtime".to_string());
    }
    if n.cpu_realtime_period != 0
        && n.cpu_realtime_runtime != 0
        && n.cpu_realtime_runtime > n.cpu_realtime_period
    {
        return invalid(
            "cpu real-time runtime cannot be higher than cpu real-time period".to_string(),
        );
    }
    if let Some(w) = m.blkio_weight {
        n.blkio_weight = w;
    }
    if n.blkio_weight > 0 && !host_has(layout, "blkio", "blkio.weight") {
        warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".to_string());
        n.blkio_weight = 0;
    }
    if n.blkio_weight > 0 && !(10..=1000).contains(&n.blkio_weight) {
        return invalid("Range of blkio weight is from 10 to 1000".to_string());
    }
    if !m.blkio_weight_device.is_empty() {
        n.blkio_weight_device = m.blkio_weight_device.clone();
        if !host_has(layout, "blkio", "blkio.weight_device") {
            warnings.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".to_string());
            n.blkio_weight_device.clear();
        }
    }
    for (given, field, file, what) in [
        (
            &m.device_read_bps,
            &mut n.blkio_device_read_bps,
            "blkio.throttle.read_bps_device",
            "BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit",
        ),
        (
            &m.device_write_bps,
            &mut n.blkio_device_write_bps,
            "blkio.throttle.write_bps_device",
            "BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit",
        ),
        (
            &m.device_read_iops,
            &mut n.blkio_device_read_iops,
            "blkio.throttle.read_iops_device",
            "IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit",
        ),
        (
            &m.device_write_iops,
            &mut n.blkio_device_write_iops,
            "blkio.throttle.write_iops_device",
            "IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit",
        ),
    ] {
        if given.is_empty() {
            continue;
        }
        if host_has(layout, "blkio", file) {
            *field = given.clone();
        } else {
            warnings.push(format!("Your kernel does not support {what} discarded."));
        }
    }
    if !m.ulimits.is_empty() {
        n.ulimits = m.ulimits.clone();
    }
    if let Some(s) = m.shm_size {
        if s < 0 {
            return invalid("SHM size can not be less than 0".to_string());
        }
        n.shm_size = s;
    }
    if n.shm_size == 0 {
        n.shm_size = DEFAULT_SHM_SIZE;
    }
    if !m.devices.is_empty() {
        n.devices = m.devices.clone();
    }
    if let Some(p) = &m.cgroup_parent {
        if p.contains('\0') || p.contains('\n') {
            return invalid(format!("invalid cgroup parent: {p:?}"));
        }
        n.cgroup_parent = p.clone();
    }
    if !m.device_cgroup_rules.is_empty() {
        for r in &m.device_cgroup_rules {
            if berth_runtime::devices::parse_rule(r).is_none() {
                return invalid(format!("invalid device cgroup format '{r}'"));
            }
        }
        n.device_cgroup_rules = Some(m.device_cgroup_rules.clone());
    }
    *h = n;
    Ok(warnings)
}

impl crate::Engine {
    /// Docker's warnings for `r` on this host (what `create` and `update`
    /// discard), for the CLI to print once they succeeded.
    pub fn limit_warnings(&self, r: &crate::ResourceOptions) -> Vec<String> {
        let memory = r
            .memory
            .as_deref()
            .and_then(crate::parse_size)
            .and_then(|m| i64::try_from(m).ok())
            .unwrap_or(0);
        let mut h = HostConfig {
            memory,
            ..Default::default()
        };
        check_into(&r.more, &mut h, self.cgroup_layout()).unwrap_or_default()
    }
}

/// `--cgroup-parent` as a path below each hierarchy's root (Docker's
/// cgroupfs driver joins it to `/`): lexically clean, no leading or
/// trailing `/`; empty for none (or `/`).
pub(crate) fn cgroup_parent(given: &str) -> String {
    if given.is_empty() {
        return String::new();
    }
    clean(&format!("/{given}")).trim_matches('/').to_string()
}

/// Docker's /dev/shm: 64 MiB.
pub(crate) const DEFAULT_SHM_SIZE: i64 = 67_108_864;

/// The device number of a block device path (Docker reads it at start).
fn block_device(path: &str) -> Result<(u32, u32)> {
    let md = std::fs::metadata(path)
        .map_err(|e| EngineError::InvalidArgument(format!("error getting device {path}: {e}")))?;
    if !md.file_type().is_block_device() && !md.file_type().is_char_device() {
        return Err(EngineError::InvalidArgument(format!(
            "{path} is not a device"
        )));
    }
    Ok((libc::major(md.rdev()), libc::minor(md.rdev())))
}

/// The block I/O values of `h` by device number, for the runtime.
pub(crate) fn blkio_of(h: &HostConfig, r: &mut berth_runtime::Resources) -> Result<()> {
    r.blkio_weight = h.blkio_weight;
    r.blkio_weight_device = h
        .blkio_weight_device
        .iter()
        .map(|w| {
            let (major, minor) = block_device(&w.path)?;
            Ok(berth_runtime::DeviceValue {
                major,
                minor,
                value: u64::from(w.weight),
            })
        })
        .collect::<Result<_>>()?;
    let throttle = |list: &[ThrottleDevice]| -> Result<Vec<berth_runtime::DeviceValue>> {
        list.iter()
            .map(|t| {
                let (major, minor) = block_device(&t.path)?;
                Ok(berth_runtime::DeviceValue {
                    major,
                    minor,
                    value: t.rate,
                })
            })
            .collect()
    };
    r.blkio_read_bps = throttle(&h.blkio_device_read_bps)?;
    r.blkio_write_bps = throttle(&h.blkio_device_write_bps)?;
    r.blkio_read_iops = throttle(&h.blkio_device_read_iops)?;
    r.blkio_write_iops = throttle(&h.blkio_device_write_iops)?;
    Ok(())
}

/// `--ulimit`s for the runtime (-1 is unlimited, as runc reads it).
pub(crate) fn rlimits_of(h: &HostConfig) -> Vec<berth_runtime::Rlimit> {
    h.ulimits
        .iter()
        .map(|u| berth_runtime::Rlimit {
            name: u.name.clone(),
            soft: u.soft as u64,
            hard: u.hard as u64,
        })
        .collect()
}

/// The device nodes `--device` makes and the cgroup rules that let the
/// container use exactly them with the access given, then the
/// `--device-cgroup-rule`s. A host path is followed (a symlink to a node
/// is fine) and must be a character or block device, or a directory, whose
/// device nodes all come along below the container path (Docker's
/// `devicesFromPath`).
pub(crate) fn devices_of(h: &HostConfig) -> Result<(Vec<berth_runtime::Device>, Vec<String>)> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for d in &h.devices {
        let gather = |e: String| {
            EngineError::InvalidArgument(format!(
                "error gathering device information while adding custom device \"{}\": {e}",
                d.path_on_host
            ))
        };
        let host = Path::new(&d.path_on_host);
        let md = std::fs::metadata(host).map_err(|e| gather(errno_words(&e)))?;
        let mut found: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
        if md.is_dir() {
            walk_devices(host, Path::new(""), &mut found, 0);
            if found.is_empty() {
                return Err(gather("no devices found".into()));
            }
        } else {
            found.push((PathBuf::new(), md));
        }
        for (rel, md) in found {
            let ft = md.file_type();
            let kind = if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else {
                return Err(gather("not a device node".into()));
            };
            let (major, minor) = (libc::major(md.rdev()), libc::minor(md.rdev()));
            let path = container_path(&d.path_in_container, &rel);
            nodes.push(berth_runtime::Device {
                path,
                kind,
                major,
                minor,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
            });
            rules.push(format!("{kind} {major}:{minor} {}", d.cgroup_permissions));
        }
    }
    rules.extend(h.device_cgroup_rules.iter().flatten().cloned());
    Ok((nodes, rules))
}

/// Device nodes below `dir` (symlinks not followed, at most 8 levels).
fn walk_devices(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(md) = e.metadata() else { continue };
        let r = rel.join(e.file_name());
        let ft = md.file_type();
        if ft.is_dir() {
            walk_devices(dir, &r, out, depth + 1);
        } else if ft.is_char_device() || ft.is_block_device() {
            out.push((r, md));
        }
    }
}

/// The node's path in the container: absolute, lexically clean (no `..`
/// can climb above the container's root; the runtime makes it after
/// pivot_root, so it is inside the container whatever it is).
fn container_path(base: &str, rel: &Path) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in Path::new(&clean(base)).join(rel).components() {
        match c {
            Component::Normal(n) => p.push(n),
            Component::ParentDir => {
                p.pop();
            }
            _ => {}
        }
    }
    p
}

/// An I/O error in Go's words (`no such file or directory`).
fn errno_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_as_docker_reads_them() {
        let u = parse_ulimit_text("nofile=512:1024").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 512, 1024));
        let u = parse_ulimit_text("nproc=100").unwrap();
        assert_eq!((u.soft, u.hard), (100, 100));
        assert_eq!(
            parse_ulimit_text("nofile").unwrap_err(),
            "invalid ulimit argument: nofile"
        );
        assert_eq!(
            parse_ulimit_text("bogus=1").unwrap_err(),
            "invalid ulimit type: bogus"
        );
        assert_eq!(
            parse_ulimit_text("nofile=20:10").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 20 > 10"
        );
        assert_eq!(
            parse_ulimit_text("nofile=x").unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert!(parse_ulimit_text("nofile=1:2:3")
            .unwrap_err()
            .starts_with("too many limit value arguments"));
        assert_eq!(
            parse_ulimit_text("nofile=x:y").unwrap_err(),
            "strconv.ParseInt: parsing \"y\": invalid syntax"
        );
        assert_eq!(parse_ulimit_text("core=100:-1").unwrap().hard, -1);
        assert_eq!(
            parse_ulimit_text("nofile=1=2").unwrap_err(),
            "strconv.ParseInt: parsing \"1=2\": invalid syntax"
        );
    }

    #[test]
    fn devices_as_docker_reads_them() {
        let d = parse_device_text("/dev/null:/dev/mynull:r").unwrap();
        assert_eq!(
            (
                d.path_on_host.as_str(),
                d.path_in_container.as_str(),
                d.cgroup_permissions.as_str()
            ),
            ("/dev/null", "/dev/mynull", "r")
        );
        let d = parse_device_text("/dev/zero").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/zero", "rwm")
        );
        let d = parse_device_text("/dev/zero:rw").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/zero", "rw")
        );
        let d = parse_device_text("/dev/zero:/dev/a/../b").unwrap();
        assert_eq!(d.path_in_container, "/dev/b");
        assert_eq!(
            parse_device_text("/dev/null:relative").unwrap_err(),
            "relative is not an absolute path"
        );
        assert_eq!(
            parse_device_text("/dev/null:/dev/x:rwz").unwrap_err(),
            "bad mode specified: rwz"
        );
        assert!(parse_device_text(":/dev/x").is_err());
        assert!(parse_device_text("/a:/b:r:x").is_err());
        assert_eq!(cgroup_parent("/a/b/"), "a/b");
        assert_eq!(cgroup_parent("../../x//y/./z"), "x/y/z");
        assert_eq!(cgroup_parent("/"), "");
        assert_eq!(
            container_path("/dev/../../etc/x", Path::new("")),
            PathBuf::from("/etc/x")
        );
        assert_eq!(
            container_path("/dev/snd", Path::new("by-id/x")),
            PathBuf::from("/dev/snd/by-id/x")
        );
    }

    #[test]
    fn block_io_values_as_docker_reads_them() {
        assert_eq!(
            parse_weight_device_text("/dev/sda:200").unwrap().weight,
            200
        );
        assert_eq!(
            parse_weight_device_text("/dev/null:5").unwrap_err(),
            "invalid weight for device: /dev/null:5"
        );
        assert_eq!(
            parse_weight_device_text("nocolon").unwrap_err(),
            "bad format: nocolon"
        );
        assert_eq!(
            parse_weight_device_text("/tmp/x:10").unwrap_err(),
            "bad format for device path: /tmp/x:10"
        );
        assert_eq!(
            parse_throttle_bps_text("/dev/sda:1mb").unwrap().rate,
            1 << 20
        );
        assert!(parse_throttle_bps_text("/dev/sda:x").is_err());
        assert_eq!(parse_throttle_iops_text("/dev/sda:100").unwrap().rate, 100);
        assert!(parse_throttle_iops_text("/dev/sda:1.5").is_err());
        assert_eq!(
            parse_weight_device_text("/dev/sda:1:2").unwrap_err(),
            "invalid weight for device: /dev/sda:1:2"
        );
    }

    #[test]
    fn checks_refuse_without_changing_anything() {
        let mut h = HostConfig::default();
        let before = serde_json::to_string(&h).unwrap();
        for m in [
            MoreLimits {
                oom_score_adj: Some(1001),
                ..Default::default()
            },
            MoreLimits {
                cpu_period: Some(500),
                ..Default::default()
            },
            MoreLimits {
                cpu_quota: Some(500),
                ulimits: vec![parse_ulimit_text("nofile=1").unwrap()],
                ..Default::default()
            },
            MoreLimits {
                gpus: Some("all".into()),
                ..Default::default()
            },
            MoreLimits {
                device_cgroup_rules: vec!["c 1:3 r\na *:* rwm".into()],
                ..Default::default()
            },
        ] {
            let layout = Layout::Unified("/nonexistent".into());
            assert!(check_into(&m, &mut h, Some(&layout)).is_err(), "{m:?}");
            assert_eq!(serde_json::to_string(&h).unwrap(), before);
        }
        let mut h = HostConfig {
            nano_cpus: 1_000_000_000,
            ..Default::default()
        };
        let m = MoreLimits {
            cpu_period: Some(50_000),
            ..Default::default()
        };
        assert!(check_into(&m, &mut h, None).is_err());
    }
}
