//! The runtime spec: everything the runtime needs to start one container.
//!
//! berth's own, smaller cousin of the OCI runtime spec's `config.json`: the
//! engine writes it into the container's directory and the monitor reads it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A container's cgroup limits, as Docker's `HostConfig` gives them; zero
/// is "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Bytes (`--memory`).
    pub memory: i64,
    /// Memory plus swap, bytes (`--memory-swap`); -1 unlimited.
    pub memory_swap: i64,
    /// CPU time per period, µs (`--cpus`: `cpus × period`).
    pub cpu_quota: i64,
    /// The period, µs (100,000 with `--cpus`).
    pub cpu_period: u64,
    /// Relative weight (`--cpu-shares`, v1's 2–262,144).
    pub cpu_shares: u64,
    /// Most processes at once (`--pids-limit`).
    pub pids_limit: i64,
    /// A soft memory limit, bytes (`--memory-reservation`).
    #[serde(default)]
    pub memory_reservation: i64,
    /// CPUs and memory nodes (`--cpuset-cpus`, `--cpuset-mems`).
    #[serde(default)]
    pub cpuset_cpus: String,
    #[serde(default)]
    pub cpuset_mems: String,
    /// The kernel's swap tendency, 0–100 (`--memory-swappiness`; v1 only).
    #[serde(default)]
    pub memory_swappiness: Option<u64>,
    /// No OOM killer in the cgroup (`--oom-kill-disable`; v1 only).
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// Real-time CPU time per period, µs (`--cpu-rt-period`,
    /// `--cpu-rt-runtime`; v1 with CONFIG_RT_GROUP_SCHED only).
    #[serde(default)]
    pub cpu_rt_period: u64,
    #[serde(default)]
    pub cpu_rt_runtime: i64,
    /// Block I/O weight, 10–1000 (`--blkio-weight`).
    #[serde(default)]
    pub blkio_weight: u16,
    /// Per-device weights and throttles, by device number
    /// (`--blkio-weight-device`, `--device-read-bps`, ...).
    #[serde(default)]
    pub blkio_weight_device: Vec<DeviceValue>,
    #[serde(default)]
    pub blkio_read_bps: Vec<DeviceValue>,
    #[serde(default)]
    pub blkio_write_bps: Vec<DeviceValue>,
    #[serde(default)]
    pub blkio_read_iops: Vec<DeviceValue>,
    #[serde(default)]
    pub blkio_write_iops: Vec<DeviceValue>,
}

/// A value for one block device (a weight, bytes or operations a second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceValue {
    pub major: u32,
    pub minor: u32,
    pub value: u64,
}

/// A resource limit of the container's process (`--ulimit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// Docker's name: `nofile`, `nproc`, `core`, ...
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// A device node made in the container (`--device`): what the host's
/// node was when the container was created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Absolute, inside the container.
    pub path: PathBuf,
    /// `c` or `b`.
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    /// Permission bits of the host's node.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new network namespace with only loopback, up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// Bind-mount `source` (a host path) at `destination`.
    Bind,
    /// A tmpfs at `destination`, `options` as for mount(8) (`size=64m`, `mode=1777`).
    Tmpfs,
    /// A volume with local-driver options: a new `fstype` file system from
    /// `source` (the device) with `options` (the `o` option), made by the
    /// monitor in the host's namespaces before the container is cloned.
    Filesystem { fstype: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub kind: MountKind,
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub readonly: bool,
    #[serde(default)]
    pub options: String,
    /// A bind's submounts (Docker's `bind-recursive`).
    #[serde(default)]
    pub recursive: BindRecursive,
}

/// What happens to the mounts below a bind mount's source, as Docker's
/// `--mount type=bind,bind-recursive=…` defines it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindRecursive {
    /// Submounts come along; a read-only bind is read-only all the way down
    /// (on kernels without mount_setattr, only its top mount).
    #[default]
    Enabled,
    /// Only the source's own mount, none below it.
    Disabled,
    /// Submounts come along and stay writable under a read-only bind.
    Writable,
    /// Submounts come along, read-only all the way down, or it fails.
    Readonly,
}

/// The overlay root filesystem: read-only image layers under one writable
/// upper directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Lower directories, topmost first (overlayfs `lowerdir` order).
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the overlay is mounted (inside the container's mount namespace only).
    pub merged: PathBuf,
    pub readonly: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Its cgroup's limits (all zero: none).
    #[serde(default)]
    pub resources: Resources,
    /// The process: argv[0] is resolved in the container against PATH from `env`.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// The user as given (`1000`, `nobody:nogroup`); resolved inside the container
    /// against its /etc/passwd and /etc/group.
    pub user: String,
    pub hostname: String,
    pub rootfs: RootFs,
    pub mounts: Vec<Mount>,
    pub network: NetworkMode,
    pub tty: bool,
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals.
    pub init: bool,
    /// The NIS domain name (`--domainname`); empty leaves the kernel's.
    #[serde(default)]
    pub domainname: String,
    /// Supplementary groups added to the user's (`--group-add`), names
    /// resolved in the container's /etc/group.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// Namespaces shared with the host instead of new ones (`--pid host`,
    /// `--ipc host`, `--uts host`, `--cgroupns host`).
    #[serde(default)]
    pub host_namespaces: HostNamespaces,
    /// Namespaces of another running container to join (`--pid
    /// container:X`, `--ipc container:X`); filled in at each start.
    #[serde(default)]
    pub join: JoinNamespaces,
    /// `--ipc none`: no /dev/shm at all.
    #[serde(default)]
    pub no_dev_shm: bool,
    /// `--sysctl` (namespaced ones only; the engine checked the names).
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// The cgroup of this container, relative to each hierarchy's root
    /// (`berth/<id>`).
    pub cgroup_path: String,
    /// Files bind-mounted over /etc/hostname, /etc/hosts, /etc/resolv.conf.
    pub etc_hostname: Option<PathBuf>,
    pub etc_hosts: Option<PathBuf>,
    pub etc_resolv_conf: Option<PathBuf>,
    /// Confine the process with seccomp (false: `seccomp=unconfined`, or
    /// `--privileged`). With no `security.seccomp_filter` (a spec written
    /// before the engine compiled filters), the init compiles the built-in
    /// profile itself.
    pub seccomp: bool,
    /// `--privileged`: every capability berth holds, /sys read-write, no
    /// masked or read-only paths, every device allowed in the cgroup.
    pub privileged: bool,
    /// Capabilities, no_new_privs and the compiled seccomp filter.
    #[serde(default)]
    pub security: Security,
    /// `--security-opt systempaths=unconfined`: no masked or read-only
    /// paths in /proc and /sys.
    #[serde(default)]
    pub unmask_system_paths: bool,
    /// The size of /dev/shm, bytes (`--shm-size`; 0: Docker's 64 MiB).
    #[serde(default)]
    pub shm_size: u64,
    /// `--device`: nodes made in the container's /dev (or elsewhere).
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Device cgroup rules allowed beyond Docker's defaults (`--device`'s
    /// and `--device-cgroup-rule`'s, `type major:minor access`, checked by
    /// the engine).
    #[serde(default)]
    pub device_rules: Vec<String>,
}

/// How a container's processes are confined; the engine hands the same
/// settings to the container's first process and to every `exec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// The capability set (bounding = effective = permitted, inheritable
    /// and ambient empty), bit n = capability n. `None`: keep every
    /// capability berth holds (`--privileged`).
    pub capabilities: Option<u64>,
    /// `--security-opt no-new-privileges`: `PR_SET_NO_NEW_PRIVS` before
    /// the exec.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The compiled seccomp filter (`CompiledFilters::to_bytes`) to load,
    /// made by the engine at create time.
    #[serde(default)]
    pub seccomp_filter: Option<PathBuf>,
    /// `--ulimit`: set in each process before its exec.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// `--oom-score-adj`: written to each process's oom_score_adj before
    /// its exec (None: inherited).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
}

impl Default for Security {
    /// Docker's defaults: its default capabilities, no no_new_privs.
    fn default() -> Self {
        Security {
            capabilities: Some(crate::caps::DOCKER_DEFAULT),
            no_new_privileges: false,
            seccomp_filter: None,
            rlimits: Vec::new(),
            oom_score_adj: None,
        }
    }
}

/// Which of the host's namespaces a container shares (Docker's `--pid
/// host`, `--ipc host`, `--uts host`, `--cgroupns host`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNamespaces {
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
}

/// A running container whose namespace another one joins: its first
/// process and the cgroup that process must be in (checked through a pidfd,
/// so a recycled PID is never taken for it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTarget {
    pub pid: i32,
    /// Relative to each hierarchy's root, as [`ContainerSpec::cgroup_path`].
    pub cgroup: String,
}

/// Which namespaces come from another container (Docker's `--pid
/// container:X`, `--ipc container:X`; the IPC one brings its /dev/shm).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinNamespaces {
    pub pid: Option<JoinTarget>,
    pub ipc: Option<JoinTarget>,
    /// `--network container:X`: X's network namespace (no new one is made).
    #[serde(default)]
    pub net: Option<JoinTarget>,
}
