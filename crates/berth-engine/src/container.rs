//! Container verbs: create, start, attach, wait, stop, kill, rm, ps,
//! inspect, logs, exec, top, rename, prune.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::cgroups::{self, Cgroup};
use berth_runtime::monitor::{self as proto, MonitorConfig};
use berth_runtime::process::ExecSpec;
use berth_runtime::spec::BindRecursive;
use berth_runtime::{ContainerSpec, Mount, MountKind, NetworkMode, RootFs};
use berth_store::ContainerRow;
use berth_types::{ContainerConfig, ContainerId, HostConfig, MountPoint, RestartPolicy};
use serde::Serialize;

use crate::{io_ctx, now_rfc3339, random_bytes, Engine, EngineError, Result, State, Status};

const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// What `create`/`run` take, in Docker's flag vocabulary.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    /// Arguments after the image name.
    pub cmd: Vec<String>,
    /// `--entrypoint` (one argument) or the API's `Entrypoint` list;
    /// `Some` of an empty list clears the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` pairs, already expanded by the caller.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `--domainname`: the NIS domain name of the container's UTS namespace.
    pub domainname: Option<String>,
    /// `--group-add`: more supplementary groups (names or numbers).
    pub group_add: Vec<String>,
    /// `--pid`, `--ipc`, `--uts`, `--cgroupns`, `--userns` as given.
    pub namespaces: NamespaceOptions,
    /// `--sysctl NAME=VALUE` (checked by the caller: namespaced names).
    pub sysctls: BTreeMap<String, String>,
    pub tty: bool,
    pub open_stdin: bool,
    /// The streams the caller attaches (foreground `run`: stdout and
    /// stderr, or the `-a` ones; stdin too with `-i`); none for `run -d`.
    pub attach: AttachStreams,
    pub init: bool,
    pub read_only: bool,
    /// `--tmpfs PATH[:OPTIONS]`
    pub tmpfs: Vec<String>,
    /// `-v SRC:DST[:ro|rw]`, `-v NAME:DST`, `-v DST`
    pub volumes: Vec<String>,
    /// `--mount`s, as [`crate::mountopt::parse`] reads them.
    pub mounts: Vec<berth_types::MountSpec>,
    /// `--volumes-from CONTAINER[:ro|:rw]`
    pub volumes_from: Vec<String>,
    /// `--network`: `bridge`/`default` (the default), `host`, `none`,
    /// `container:NAME`, or a network's name, ID or ID prefix.
    pub network: Option<String>,
    /// `--network-alias` (user-defined networks only).
    pub network_aliases: Vec<String>,
    /// `--ip`: a fixed address on a user-defined network with a subnet.
    pub ip: Option<String>,
    /// `--mac-address`
    pub mac_address: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub restart: RestartPolicy,
    pub auto_remove: bool,
    /// `--log-driver`: `json-file` (the default), `local` or `none`.
    pub log_driver: Option<String>,
    pub log_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub privileged: bool,
    /// `--cap-add`, `--cap-drop`: capability names as the user wrote them.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt`, with a `seccomp=` profile's JSON inline (the CLI
    /// reads the file, as Docker's does).
    pub security_opt: Vec<String>,
    /// `--health-*` (`Test: ["NONE"]` for `--no-healthcheck`), merged over
    /// the image's `HEALTHCHECK`.
    pub healthcheck: Option<berth_types::Healthcheck>,
    /// `--platform`, parsed: the image must be of this platform.
    pub platform: Option<berth_types::Platform>,
    /// `--runtime`: only names of berth's own runtime are accepted.
    pub runtime: Option<String>,
    /// A `berth build` RUN step's container (labelled with its builder, see
    /// [`crate::BUILD_STEP_LABEL`]): `ps` never lists it, and it is removed
    /// once its builder is gone. Not a user's option.
    pub build_step: Option<String>,
    /// `-p`, `-P`, `--expose`, `--dns*`, `--add-host`.
    pub net: NetOptions,
    /// `--idle-timeout` in ns (None: the config file's `idle-timeout`).
    pub idle_timeout: Option<i64>,
    /// `--memory`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--pids-limit`.
    pub resources: ResourceOptions,
}

/// The resource limits of `create`/`run`, as given.
#[derive(Clone, Debug, Default)]
pub struct ResourceOptions {
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub cpus: Option<String>,
    pub cpu_shares: Option<i64>,
    pub pids_limit: Option<i64>,
    pub memory_reservation: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// The rest of issue 11's limits (`--ulimit`, `--device`, block I/O,
    /// ...): see [`crate::limits`].
    pub more: crate::limits::MoreLimits,
}

/// The runtime's limits for what a container's `HostConfig` records
/// (`--cpus` as a CFS quota over Docker's 100 ms period; block devices by
/// number, read now).
fn resources_of(h: &HostConfig) -> Result<berth_runtime::Resources> {
    let mut r = berth_runtime::Resources {
        memory: h.memory,
        memory_swap: h.memory_swap,
        cpu_quota: if h.nano_cpus > 0 {
            h.nano_cpus / 10_000
        } else {
            h.cpu_quota
        },
        cpu_period: if h.nano_cpus > 0 {
            100_000
        } else {
            u64::try_from(h.cpu_period).unwrap_or(0)
        },
        cpu_shares: u64::try_from(h.cpu_shares).unwrap_or(0),
        pids_limit: h.pids_limit.unwrap_or(0),
        memory_reservation: h.memory_reservation,
        cpuset_cpus: h.cpuset_cpus.clone(),
        cpuset_mems: h.cpuset_mems.clone(),
        memory_swappiness: h.memory_swappiness.and_then(|s| u64::try_from(s).ok()),
        oom_kill_disable: h.oom_kill_disable,
        cpu_rt_period: u64::try_from(h.cpu_realtime_period).unwrap_or(0),
        cpu_rt_runtime: h.cpu_realtime_runtime,
        ..Default::default()
    };
    crate::limits::blkio_of(h, &mut r)?;
    Ok(r)
}

/// A cpuset list (`0-1,3`) as a set, None when malformed.
fn parse_cpuset(s: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut out = std::collections::BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// Docker's daemon checks of `--memory-reservation` (against `memory`) and
/// `--cpuset-cpus`/`--cpuset-mems` (against what the host has online).
fn check_reservation_and_cpusets(
    r: &ResourceOptions,
    memory: i64,
) -> Result<(i64, String, String)> {
    let reservation = match r.memory_reservation.as_deref() {
        None => 0,
        Some(v) => parse_size(v)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| EngineError::InvalidArgument(format!("invalid size: '{v}'")))?,
    };
    if reservation != 0 && reservation < 6 * 1024 * 1024 {
        return Err(EngineError::InvalidArgument(
            "Minimum memory reservation allowed is 6MB".into(),
        ));
    }
    if memory > 0 && reservation > memory {
        return Err(EngineError::InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    let online = |path: &str, fallback: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| fallback.to_string())
    };
    let check = |given: Option<&str>, what: &str, words: &str, path: &str| -> Result<String> {
        let Some(v) = given.filter(|v| !v.is_empty()) else {
            return Ok(String::new());
        };
        let want = parse_cpuset(v).ok_or_else(|| {
            EngineError::InvalidArgument(format!(
                "Invalid value {v} for cpuset {what}: invalid format: {v}"
            ))
        })?;
        let avail_text = online(path, "0");
        let avail = parse_cpuset(&avail_text).unwrap_or_default();
        if !want.is_subset(&avail) {
            return Err(EngineError::InvalidArgument(format!(
                "Requested {words} are not available - requested {v}, available: {avail_text}"
            )));
        }
        Ok(v.to_string())
    };
    let cpus = check(
        r.cpuset_cpus.as_deref(),
        "cpus",
        "CPUs",
        "/sys/devices/system/cpu/online",
    )?;
    let mems = check(
        r.cpuset_mems.as_deref(),
        "mems",
        "memory nodes",
        "/sys/devices/system/node/online",
    )?;
    Ok((reservation, cpus, mems))
}

/// Docker's daemon checks of the limits: (memory, memory+swap, nano CPUs).
fn check_resources(r: &ResourceOptions) -> Result<(i64, i64, i64)> {
    let size = |flag: &str, v: &str| -> Result<i64> {
        if v == "-1" {
            return Ok(-1);
        }
        parse_size(v)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "invalid argument \"{v}\" for \"{flag}\" flag: invalid size: '{v}'"
                ))
            })
    };
    let memory = r
        .memory
        .as_deref()
        .map(|v| size("-m, --memory", v))
        .transpose()?
        .unwrap_or(0);
    let swap = r
        .memory_swap
        .as_deref()
        .map(|v| size("--memory-swap", v))
        .transpose()?
        .unwrap_or(0);
    if memory != 0 && memory < 6 * 1024 * 1024 {
        return Err(EngineError::InvalidArgument(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    if swap != 0 && memory == 0 {
        return Err(EngineError::InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        ));
    }
    if swap > 0 && swap < memory {
        return Err(EngineError::InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    // Docker: swap as much as the memory when not given.
    let swap = if memory > 0 && swap == 0 {
        memory * 2
    } else {
        swap
    };
    let nano = match r.cpus.as_deref() {
        None => 0,
        Some(v) => {
            let cpus: f64 = v.parse().map_err(|_| {
                EngineError::InvalidArgument(format!(
                    "invalid argument \"{v}\" for \"--cpus\" flag: failed to parse {v} as a rational number"
                ))
            })?;
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            let nano = (cpus * 1e9) as i64;
            if nano < 0 || (nano > 0 && nano < 10_000_000) || nano > (n as i64) * 1_000_000_000 {
                return Err(EngineError::InvalidArgument(format!(
                    "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
                )));
            }
            nano
        }
    };
    Ok((memory, swap, nano))
}

/// The network options of `create`/`run` beyond `--network`.
#[derive(Clone, Debug, Default)]
pub struct NetOptions {
    /// `-p` as given.
    pub publish: Vec<String>,
    /// `-P`
    pub publish_all: bool,
    /// `--expose` as given.
    pub expose: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--add-host HOST:IP` as given.
    pub add_host: Vec<String>,
}

/// A container as `ps` and `inspect` see it.
#[derive(Clone, Debug)]
pub struct ContainerView {
    pub id: ContainerId,
    pub name: String,
    pub image: String,
    pub image_id: berth_types::Digest,
    pub created: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    /// `State.Health`: present once a container with a healthcheck started.
    pub health: Option<berth_runtime::health::Health>,
    pub removing: bool,
    /// Running, with its processes frozen (`pause`).
    pub paused: bool,
    /// Running, frozen by its monitor for want of activity (the idle
    /// mode), since this time (RFC 3339); not paused.
    pub idle_since: Option<String>,
    pub dir: PathBuf,
}

/// See [`Engine::sources_of`].
#[derive(Clone, Debug)]
pub struct ViewSources {
    pub id: ContainerId,
    /// The container's directory (`state.json`, `health.json`,
    /// `network.json`, the idle marker, its log files).
    pub dir: PathBuf,
    /// Written by every pause, unpause and idle freeze.
    pub freeze_file: Option<PathBuf>,
}

impl ContainerView {
    /// The monitor whose death would change this view: the one of a
    /// running (or restarting) container (whose monitor was alive when the
    /// view was read: a dead one's state reads exited).
    pub fn live_monitor(&self) -> Option<i32> {
        matches!(self.state.status, Status::Running | Status::Restarting)
            .then_some(self.state.monitor_pid)
    }

    /// Docker's `Status` of a container (`Up 5 minutes (healthy)`,
    /// `Exited (0) 2 hours ago`): moby's `State.String()`, and berth's
    /// `(Idle)`.
    pub fn status_text(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let time = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        if self.removing {
            return "Removal In Progress".to_string();
        }
        let status = berth_types::human::status_line(
            self.status_word(),
            i64::from(self.state.exit_code),
            time(&self.state.started_at),
            time(&self.state.finished_at),
            now,
            self.paused,
            self.state.status == Status::Restarting,
        );
        // berth's idle mode: running, frozen by its monitor until traffic comes.
        let status = if self.idle_since.is_some() {
            format!("{status} (Idle)")
        } else {
            status
        };
        // moby's State.String(): a running container shows its health.
        match &self.health {
            Some(h) if self.state.status == Status::Running => {
                if h.status == "starting" {
                    format!("{status} (health: starting)")
                } else {
                    format!("{status} ({})", h.status)
                }
            }
            _ => status,
        }
    }

    /// The `Command` of a container as Docker's daemon lists it: its
    /// entrypoint and command joined, an argument with whitespace in single
    /// quotes.
    pub fn command_text(&self) -> String {
        self.command_line()
            .iter()
            .map(|a| {
                if a.contains(char::is_whitespace) {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn running(&self) -> bool {
        matches!(self.state.status, Status::Running)
    }
    /// `created`, `running`, `restarting`, `exited`, `removing` as Docker says.
    pub fn status_word(&self) -> &'static str {
        if self.removing {
            return "removing";
        }
        match self.state.status {
            Status::Created => "created",
            Status::Running if self.paused => "paused",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
        }
    }
    pub fn command_line(&self) -> Vec<String> {
        let mut v = self.config.entrypoint.clone().unwrap_or_default();
        v.extend(self.config.cmd.iter().cloned());
        v
    }
}

/// Which streams an attach wants.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttachStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A connection to a container's monitor.
pub struct Attachment {
    stream: UnixStream,
}

impl Attachment {
    fn connect(socket: &Path, s: AttachStreams) -> std::io::Result<Attachment> {
        let mut stream = UnixStream::connect(socket)?;
        let line = format!(
            "attach stdin={} stdout={} stderr={}\n",
            u8::from(s.stdin),
            u8::from(s.stdout),
            u8::from(s.stderr)
        );
        stream.write_all(line.as_bytes())?;
        Ok(Attachment { stream })
    }
    /// A second handle for writing while another thread reads.
    pub fn try_clone(&self) -> std::io::Result<Attachment> {
        Ok(Attachment {
            stream: self.stream.try_clone()?,
        })
    }
    pub fn send_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        proto::write_input(&mut self.stream, proto::INPUT_DATA, data)
    }
    pub fn close_stdin(&mut self) -> std::io::Result<()> {
        proto::write_input(&mut self.stream, proto::INPUT_CLOSE, &[])
    }
    pub fn resize(&mut self, rows: u16, cols: u16) -> std::io::Result<()> {
        let mut p = [0u8; 4];
        p[..2].copy_from_slice(&rows.to_be_bytes());
        p[2..].copy_from_slice(&cols.to_be_bytes());
        proto::write_input(&mut self.stream, proto::INPUT_RESIZE, &p)
    }
    pub fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.stream.set_read_timeout(d)
    }
    /// The next output event; `None` when the monitor hung up.
    pub fn next_output(&mut self) -> std::io::Result<Option<Output>> {
        Ok(
            proto::read_frame(&mut self.stream)?.map(|(kind, data)| match kind {
                proto::FRAME_EXIT => {
                    Output::Exit(String::from_utf8_lossy(&data).trim().parse().unwrap_or(255))
                }
                proto::FRAME_STDERR => Output::Stderr(data),
                _ => Output::Stdout(data),
            }),
        )
    }
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
}

/// One json-file log record.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
    /// The json-file driver's `attrs` (log options `labels`, `env`, `tag`).
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
}

impl LogEntry {
    /// What `logs --details` prints before the line: the attributes as
    /// `key=value,…` (Go's query escaping), then a space.
    pub fn details(&self) -> String {
        format!("{} ", crate::logdriver::details(&self.attrs))
    }
}

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail: Option<usize>,
    /// Only entries at or after this time (RFC 3339 strings compare in order).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries before this time.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// Signal names and numbers as `kill -s` and `--stop-signal` take them.
/// A `-v` mode as Docker reads it: comma-separated, at most one of each
/// kind — `rw`/`ro`; an SELinux label `z`/`Z` (a no-op: no SELinux here);
/// a propagation (berth binds are `rprivate`: the shared and slave kinds are
/// refused); a consistency `consistent`/`cached`/`delegated` (no-ops on
/// Linux, as Docker's); `nocopy`, for volumes only. Returns whether the
/// mount is writable.
fn volume_mode(spec: &str, mode: &str, bind: bool) -> Result<bool> {
    let invalid = || EngineError::InvalidArgument(format!("invalid mode: {mode}"));
    let mut seen = [false; 5];
    let mut rw = true;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        let kind = match m {
            "rw" | "ro" => {
                rw = m == "rw";
                0
            }
            "z" | "Z" => 1,
            "private" | "rprivate" => 2,
            "shared" | "rshared" | "slave" | "rslave" => {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid volume specification: '{spec}': berth bind mounts are rprivate; propagation {m} is not supported"
                )))
            }
            "consistent" | "cached" | "delegated" => 3,
            "nocopy" if bind => {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid volume specification: '{spec}': invalid mount config for type \"bind\": field VolumeOptions must not be specified"
                )))
            }
            "nocopy" => 4,
            _ => return Err(invalid()),
        };
        if std::mem::replace(&mut seen[kind], true) {
            return Err(invalid());
        }
    }
    Ok(rw)
}

/// Whether `m` is a `-v` mode as Docker's parser recognises one (known
/// words, at most one of each kind), whatever berth then supports.
fn is_mode(m: &str) -> bool {
    let mut seen = [false; 5];
    !m.is_empty()
        && m.split(',').all(|w| {
            let kind = match w {
                "rw" | "ro" => 0,
                "z" | "Z" => 1,
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => 2,
                "consistent" | "cached" | "delegated" => 3,
                "nocopy" => 4,
                _ => return false,
            };
            !std::mem::replace(&mut seen[kind], true)
        })
}

/// A container path as Docker compares mount points: `/a//b/` is `/a/b`.
fn clean_container_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if p.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else {
        parts.join("/")
    }
}

/// Refuses `--tmpfs` options that Docker refuses (it accepts the mount
/// flags and tmpfs's own `size`, `mode`, `uid`, `gid`, `nr_inodes`,
/// `nr_blocks`, `mpol`).
fn check_tmpfs_options(opts: &str) -> Result<()> {
    const FLAGS: &[&str] = &[
        "ro",
        "rw",
        "exec",
        "noexec",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "sync",
        "async",
        "dirsync",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "mand",
        "nomand",
        "tmpcopyup",
        "notmpcopyup",
    ];
    const KEYS: &[&str] = &[
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    let bad: Vec<String> = opts
        .split(',')
        .filter(|o| !o.is_empty())
        .filter(|o| match o.split_once('=') {
            Some((k, v)) => !KEYS.contains(&k) || v.is_empty(),
            None => !FLAGS.contains(o),
        })
        .map(|o| format!("\"{o}\""))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "invalid tmpfs option [{}]",
            bad.join(" ")
        )))
    }
}

/// An exec'd process with a terminal gets `TERM=xterm` unless it has a
/// TERM of its own, as Docker's.
fn with_term(mut env: Vec<String>, tty: bool) -> Vec<String> {
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env
}

/// Docker's `exec` fails with 126 for whatever stops the process from
/// starting, in runc's words (a user that does not exist is the daemon's
/// own check, worded without runc's prefix).
fn exec_start_failure(e: EngineError) -> EngineError {
    match e {
        EngineError::Runtime { message, .. } if message.starts_with("unable to find ") => {
            EngineError::Runtime { code: 126, message }
        }
        EngineError::Runtime { message, .. } => EngineError::Runtime {
            code: 126,
            message: format!(
                "OCI runtime exec failed: exec failed: unable to start container process: {message}: unknown"
            ),
        },
        other => other,
    }
}

/// Docker's namespace options, as given (`None`: the default).
#[derive(Clone, Debug, Default)]
pub struct NamespaceOptions {
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub uts: Option<String>,
    pub cgroupns: Option<String>,
    pub userns: Option<String>,
}

/// The modes as `inspect` shows them.
pub struct NamespaceModes {
    pub pid_mode: String,
    pub ipc_mode: String,
    pub uts_mode: String,
    pub cgroupns_mode: String,
    pub userns_mode: String,
}

impl NamespaceOptions {
    /// Docker's values and words. `container:NAME` must name an existing
    /// container (`resolve` gives its full ID, which is what is recorded,
    /// as Docker records it); whether it runs is checked at each start.
    fn check(&self, resolve: impl Fn(&str) -> Result<String>) -> Result<NamespaceModes> {
        let bad = |m: &str| Err(EngineError::InvalidArgument(m.to_string()));
        let mut pid = self.pid.clone().unwrap_or_default();
        match pid.as_str() {
            "" | "host" => {}
            v if v.starts_with("container:") && v.len() > "container:".len() => {
                pid = format!("container:{}", resolve(&v["container:".len()..])?);
            }
            _ => return bad("--pid: invalid PID mode"),
        }
        let mut ipc = self.ipc.clone().unwrap_or_else(|| "private".into());
        match ipc.as_str() {
            "private" | "shareable" | "host" | "none" => {}
            "" => {}
            // Docker's daemon takes an empty name here and fails at start.
            "container:" => {}
            v if v.starts_with("container:") => {
                ipc = format!("container:{}", resolve(&v["container:".len()..])?);
            }
            v => return bad(&format!("Invalid IPC mode: {v}")),
        }
        let uts = self.uts.clone().unwrap_or_default();
        if !matches!(uts.as_str(), "" | "host") {
            return bad("--uts: invalid UTS mode");
        }
        let cgroupns = self.cgroupns.clone().unwrap_or_else(|| "private".into());
        if !matches!(cgroupns.as_str(), "private" | "host") {
            return bad("--cgroupns: invalid CGROUP mode");
        }
        let userns = self.userns.clone().unwrap_or_default();
        if !matches!(userns.as_str(), "" | "host") {
            return bad("--userns: invalid USER mode");
        }
        Ok(NamespaceModes {
            pid_mode: pid,
            ipc_mode: if ipc.is_empty() {
                "private".into()
            } else {
                ipc
            },
            uts_mode: uts,
            cgroupns_mode: cgroupns,
            userns_mode: userns,
        })
    }
}

/// How `exec` connects the command's streams.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecOptions {
    /// A new pty (`-t`).
    pub tty: bool,
    /// The caller sends stdin (`-i`).
    pub stdin: bool,
    /// Nobody attaches (`-d`): output is dropped.
    pub detach: bool,
}

/// Why [`Engine::launch_monitor`] failed.
enum MonitorFailure {
    /// The monitor ended without a word (its own state may say why).
    Exited,
    Engine(EngineError),
}

pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            let rt = name.strip_prefix("RTMIN+")?.parse::<i32>().ok()?;
            return Some(libc::SIGRTMIN() + rt);
        }
    };
    Some(n)
}

/// Parses `10k`, `20m`, `1g`, `512` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1024u64),
        'm' => (&s[..s.len() - 1], 1024 * 1024),
        'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

/// The environment a process gets: a `KEY` without `=` (from `-e KEY` when
/// the caller has no KEY) unsets KEY, as with Docker, and is not passed on.
fn process_env(env: &[String]) -> Vec<String> {
    env.iter().filter(|e| e.contains('=')).cloned().collect()
}

/// The environment a container's processes start with, as Docker's daemon
/// makes it: PATH (unless the container sets one), HOSTNAME, TERM with a
/// terminal, then the container's `Config.Env` over them. (Containers made
/// before `Config.Env` left these out have them in it already: the same.)
fn daemon_env(config: &ContainerConfig) -> Vec<String> {
    let mut env = vec![
        DEFAULT_PATH_ENV.to_string(),
        format!("HOSTNAME={}", config.hostname),
    ];
    if config.tty {
        env.push("TERM=xterm".into());
    }
    for kv in &config.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = kv.clone(),
            None => env.push(kv.clone()),
        }
    }
    env
}

fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split_once('=').map_or(kv, |(k, _)| k);
    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
    env.push(kv.to_string());
}

fn host_resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    host.lines()
        .filter(|l| {
            let t = l.trim_start();
            // A loopback resolver of the host is unreachable from another netns.
            !(t.starts_with("nameserver") && (t.contains(" 127.") || t.contains(" ::1")))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

pub(crate) const HOSTS_BASE: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

impl Engine {
    /// `create`: records the container and lays out its files; starts nothing.
    pub fn create(&mut self, o: &CreateOptions) -> Result<ContainerId> {
        if o.labels.contains_key(crate::BUILD_STEP_LABEL) {
            return Err(EngineError::InvalidArgument(format!(
                "the label {} is berth's own",
                crate::BUILD_STEP_LABEL
            )));
        }
        // Docker's daemon checks the settings before it looks for the image.
        let runtime = crate::logdriver::check_runtime(o.runtime.as_deref())?;
        let (memory, memory_swap, nano_cpus) = check_resources(&o.resources)?;
        let (memory_reservation, cpuset_cpus, cpuset_mems) =
            check_reservation_and_cpusets(&o.resources, memory)?;
        // The rest of the limits, into what the host config starts from.
        let mut limits_host = HostConfig {
            memory,
            nano_cpus,
            privileged: o.privileged,
            ..Default::default()
        };
        crate::limits::check_into(&o.resources.more, &mut limits_host, self.cgroup_layout())?;
        let log_config = crate::logdriver::check(o.log_driver.as_deref(), &o.log_opts)?;
        if let Some(h) = &o.healthcheck {
            validate_healthcheck(h)?;
        }
        let image = self.resolve_image_for_run(&o.image)?;
        let full_config = Self::image_config(&image)?;
        if let Some(want) = &o.platform {
            let have = berth_types::Platform {
                os: full_config.os.clone(),
                architecture: full_config.architecture.clone(),
                variant: full_config
                    .extra
                    .get("variant")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
            };
            if !have.serves(want) {
                return Err(EngineError::PlatformMismatch {
                    reference: o.image.clone(),
                    wanted: want.to_string(),
                    actual: have.to_string(),
                });
            }
        }
        let icfg = full_config.config;
        if let Some(n) = &o.name {
            if !crate::names::valid_name(n) {
                return Err(EngineError::InvalidArgument(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        let (network_mode, networks) = self.resolve_create_network(
            o.network.as_deref(),
            &crate::EndpointOptions {
                aliases: o.network_aliases.clone(),
                ipv4_address: o.ip.clone(),
                mac_address: o.mac_address.clone(),
            },
            o.hostname.is_some(),
        )?;
        // The runtime's mode: until the datapath lands, a container on a
        // bridge network starts with loopback only, as with `none`.
        let network = if network_mode == "host" {
            "host"
        } else {
            "none"
        };
        if o.auto_remove && !o.restart.is_none() {
            return Err(EngineError::InvalidArgument(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        let id = ContainerId::from_random(random_bytes());
        let hostname = o.hostname.clone().unwrap_or_else(|| id.short().to_string());

        // The process: Docker's entrypoint/cmd rules.
        let (entrypoint, cmd) = match &o.entrypoint {
            Some(e) if e.is_empty() => (None, o.cmd.clone()),
            Some(e) => (Some(e.clone()), o.cmd.clone()),
            None => (
                icfg.entrypoint.clone(),
                if o.cmd.is_empty() {
                    icfg.cmd.clone().unwrap_or_default()
                } else {
                    o.cmd.clone()
                },
            ),
        };
        if entrypoint.as_ref().is_none_or(|e| e.is_empty()) && cmd.is_empty() {
            return Err(EngineError::InvalidArgument("no command specified".into()));
        }
        // What `Config.Env` records, as Docker's: the user's variables as
        // given, then the image's that the user did not set. PATH, HOSTNAME
        // and TERM are added when a process starts.
        let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
        let user_keys: std::collections::HashSet<String> = o.env.iter().map(|e| key(e)).collect();
        let mut env = o.env.clone();
        env.extend(
            icfg.env
                .iter()
                .flatten()
                .filter(|e| !user_keys.contains(&key(e)))
                .cloned(),
        );
        let working_dir = o
            .workdir
            .clone()
            .unwrap_or_else(|| icfg.working_dir.clone());
        if !working_dir.is_empty() && !working_dir.starts_with('/') {
            return Err(EngineError::InvalidArgument(format!(
                "the working directory '{working_dir}' is invalid, it needs to be an absolute path"
            )));
        }
        let user = o.user.clone().unwrap_or_else(|| icfg.user.clone());
        let stop_signal = o
            .stop_signal
            .clone()
            .or_else(|| Some(icfg.stop_signal.clone()).filter(|s| !s.is_empty()));
        if let Some(s) = &stop_signal {
            if parse_signal(s).is_none() {
                return Err(EngineError::InvalidArgument(format!("Invalid signal: {s}")));
            }
        }

        let security =
            crate::security::parse(&o.cap_add, &o.cap_drop, o.privileged, &o.security_opt)?;
        // Compiled before anything is written: a bad profile creates nothing.
        let seccomp_cached = match (&security.seccomp_profile, security.caps) {
            (Some(profile), Some(caps)) => Some(self.compiled_seccomp(profile, caps)?),
            _ => None,
        };
        let dir = self.container_dir(&id);
        let mount_specs = o.mounts.clone();
        for m in &mount_specs {
            crate::mountopt::validate(m)?;
        }
        let from = self.volumes_from(&o.volumes_from)?;
        let (mut mounts, config_volumes) =
            self.parse_mounts(o, &mount_specs, icfg.volumes.as_ref(), &from)?;
        // `-v` and `--mount` win over another container's at the same path.
        // Docker copies nothing into another container's volumes.
        let mut shared = Vec::new();
        for m in from {
            if !mounts.iter().any(|x| x.destination == m.destination) {
                shared.push(m.destination.clone());
                mounts.push(m);
            }
        }

        let config = ContainerConfig {
            hostname: hostname.clone(),
            domainname: o.domainname.clone().unwrap_or_default(),
            user: user.clone(),
            attach_stdin: o.attach.stdin,
            attach_stdout: o.attach.stdout,
            attach_stderr: o.attach.stderr,
            tty: o.tty,
            open_stdin: o.open_stdin,
            stdin_once: o.open_stdin && o.attach.stdin,
            env: env.clone(),
            cmd: cmd.clone(),
            image: o.image.clone(),
            working_dir: working_dir.clone(),
            entrypoint: entrypoint.clone(),
            labels: {
                let mut l = o.labels.clone();
                if let Some(b) = &o.build_step {
                    l.insert(crate::BUILD_STEP_LABEL.to_string(), b.clone());
                }
                l
            },
            stop_signal: stop_signal.clone(),
            stop_timeout: o.stop_timeout,
            volumes: icfg.volumes.clone().unwrap_or_default(),
            healthcheck: match (&o.healthcheck, &icfg.healthcheck) {
                (Some(mine), Some(theirs)) => Some(mine.merged_over(theirs)),
                (Some(mine), None) => Some(mine.clone()),
                (None, theirs) => theirs.clone(),
            },
            exposed_ports: icfg.exposed_ports.clone().unwrap_or_default(),
        };
        let mut config = config;
        let published = berth_net::ports::publish_maps(&o.net.publish, &o.net.expose)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        config.exposed_ports.extend(published.exposed_ports);
        let port_bindings = published.port_bindings;
        let config = config;
        for t in &o.tmpfs {
            check_tmpfs_options(t.split_once(':').map_or("", |(_, opts)| opts))?;
        }
        let ns = o
            .namespaces
            .check(|what| Ok(self.find_container(what)?.id.to_string()))?;
        let host_config = HostConfig {
            pid_mode: ns.pid_mode.clone(),
            ipc_mode: ns.ipc_mode.clone(),
            uts_mode: ns.uts_mode.clone(),
            cgroupns_mode: ns.cgroupns_mode.clone(),
            userns_mode: ns.userns_mode.clone(),
            group_add: (!o.group_add.is_empty()).then(|| o.group_add.clone()),
            sysctls: o.sysctls.clone(),
            binds: o.volumes.clone(),
            network_mode,
            networks,
            // A build's RUN steps never idle.
            idle_timeout: match &o.build_step {
                Some(_) => 0,
                None => o.idle_timeout.unwrap_or(self.opts.idle.timeout_ns),
            },
            restart_policy: o.restart.clone(),
            auto_remove: o.auto_remove,
            readonly_rootfs: o.read_only,
            init: o.init,
            tmpfs: o
                .tmpfs
                .iter()
                .map(|t| match t.split_once(':') {
                    Some((p, opt)) => (p.to_string(), opt.to_string()),
                    None => (t.clone(), String::new()),
                })
                .collect(),
            log_config,
            runtime,
            mounts: mounts.clone(),
            mount_specs,
            volumes_from: (!o.volumes_from.is_empty()).then(|| o.volumes_from.clone()),
            cap_add: security.cap_add.clone(),
            cap_drop: security.cap_drop.clone(),
            privileged: o.privileged,
            security_opt: security.security_opt.clone(),
            masked_paths: Some(if o.privileged || security.unmask_system_paths {
                Vec::new()
            } else {
                berth_runtime::process::MASKED_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect()
            }),
            readonly_paths: Some(if o.privileged || security.unmask_system_paths {
                Vec::new()
            } else {
                berth_runtime::process::READONLY_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect()
            }),
            port_bindings,
            publish_all_ports: o.net.publish_all,
            dns: (!o.net.dns.is_empty()).then(|| o.net.dns.clone()),
            dns_search: (!o.net.dns_search.is_empty()).then(|| o.net.dns_search.clone()),
            dns_options: (!o.net.dns_options.is_empty()).then(|| o.net.dns_options.clone()),
            extra_hosts: (!o.net.add_host.is_empty()).then(|| o.net.add_host.clone()),
            memory,
            memory_swap,
            nano_cpus,
            cpu_shares: o.resources.cpu_shares.unwrap_or(0),
            pids_limit: o.resources.pids_limit.filter(|p| *p > 0),
            memory_reservation,
            cpuset_cpus,
            cpuset_mems,
            ..limits_host
        };

        // The claim first: in the transaction that checks the image is still
        // there, record that this container uses it, so an `rmi` or a prune
        // from now on sees a user. The creator holds the container's lock
        // until the claim is gone, so a claim whose lock is free belongs to a
        // create that died ([`Engine::collect_stale_claims`]).
        std::fs::create_dir(&dir).map_err(io_ctx(format!("creating {}", dir.display())))?;
        let lock = match self.lock_container(&id) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let claim = berth_store::ClaimRow {
            container_id: id.clone(),
            image_id: image.id.clone(),
            layers: image.layers.clone(),
        };
        let claimed = self.store.transaction(|t| -> Result<()> {
            if t.image(&image.id)?.is_none() {
                return Err(EngineError::ImageNotFoundLocally(
                    berth_types::Reference::parse(&o.image)
                        .map(|r| r.familiar())
                        .unwrap_or_else(|_| o.image.clone()),
                ));
            }
            Ok(t.insert_claim(&claim)?)
        });
        if let Err(e) = claimed {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let made = self.lay_out_and_record(
            o,
            &id,
            &dir,
            &image,
            network,
            &config,
            &host_config,
            (&security, seccomp_cached.as_deref()),
            (&config_volumes, &shared),
        );
        if made.is_err() {
            // Files first, then the claim: a crash in between leaves a claim
            // without a lock holder, which the next collection takes.
            let _ = std::fs::remove_dir_all(&dir);
            let _ = self.store.transaction(|t| t.delete_claim(&id));
            // The anonymous volumes made for it (not another container's).
            for m in &host_config.mounts {
                if m.kind == "volume"
                    && config_volumes.contains(&clean_container_path(&m.destination))
                {
                    let _ = self.remove_volume(&m.name, false);
                }
            }
        }
        drop(lock);
        // The name the row got (a random one may have been chosen again).
        let name = made?;
        if let Err(e) = self.write_log_attributes(&id, &dir, &name, &image, &config, &host_config) {
            let _ = self.remove(id.as_str(), true, true);
            return Err(e);
        }
        let a = crate::events::attributes(&o.image, &name, &o.labels);
        crate::events::save_attributes(&self.container_dir(&id), &a);
        self.emit("container", "create", id.as_str(), a);
        Ok(id)
    }

    /// What the container's log entries carry as `attrs` (its labels and
    /// environment the log options name, the rendered `tag`), put into its
    /// `monitor.json` once its name is known; nothing is written for a
    /// container whose log options ask for none.
    fn write_log_attributes(
        &self,
        id: &ContainerId,
        dir: &Path,
        name: &str,
        image: &berth_store::ImageRow,
        config: &ContainerConfig,
        host: &HostConfig,
    ) -> Result<()> {
        let image_id = image.id.to_string();
        let attrs = crate::logdriver::attributes(
            &host.log_config,
            &config.labels,
            &daemon_env(config),
            &crate::logdriver::TagInfo {
                id: id.as_str(),
                name,
                image_id: &image_id,
                image_name: &config.image,
            },
        )?;
        if attrs.is_empty() {
            return Ok(());
        }
        let path = dir.join("monitor.json");
        let mut mon: MonitorConfig =
            serde_json::from_slice(&std::fs::read(&path).map_err(io_ctx("reading monitor.json"))?)
                .map_err(|e| EngineError::InvalidArgument(format!("monitor.json: {e}")))?;
        mon.log_attrs = attrs;
        let data = serde_json::to_vec_pretty(&mon)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        crate::netstart::write_atomic(&path, &data).map_err(io_ctx("writing monitor.json"))
    }

    /// The files of a claimed container, then its row (which replaces the claim).
    #[allow(clippy::too_many_arguments)]
    fn lay_out_and_record(
        &mut self,
        o: &CreateOptions,
        id: &ContainerId,
        dir: &Path,
        image: &berth_store::ImageRow,
        network: &str,
        config: &ContainerConfig,
        host_config: &HostConfig,
        security: (&crate::security::SecuritySetup, Option<&Path>),
        (config_volumes, shared): (&[String], &[String]),
    ) -> Result<String> {
        // Files first …
        self.lay_out_container(
            id,
            dir,
            &config.hostname,
            network,
            image,
            config,
            host_config,
            security,
        )?;
        // Docker's copy-up: new (empty) volumes get the image's content at
        // their mount point, unless mounted `nocopy`.
        let rootfs = RootFs {
            lower: self.lower_dirs(image),
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            readonly: true,
        };
        // Docker refuses a config volume (the image's `VOLUME`, a bare
        // `-v /path`) where the image has a file, before any copy-up.
        self.refuse_volumes_over_files(&rootfs, config_volumes)?;
        for m in &host_config.mounts {
            // `-v NAME:/path:nocopy`, `--mount type=volume,…,volume-nocopy`.
            let no_copy = m.mode.split(',').any(|x| x == "nocopy")
                || host_config.mount_specs.iter().any(|s| {
                    s.kind == "volume"
                        && s.target == m.destination
                        && s.volume_options.as_ref().is_some_and(|v| v.no_copy)
                });
            // A volume with local-driver options is the file system it names
            // (mounted for each container): nothing is copied into it.
            let own_fs = m.kind == "volume"
                && !m.name.is_empty()
                && !matches!(
                    self.volume_source(&m.name)?,
                    crate::volume::VolumeSource::Dir(_)
                );
            if m.kind == "volume" && !no_copy && !own_fs && !shared.contains(&m.destination) {
                self.copy_up_volume(&rootfs, &m.destination, Path::new(&m.source))?;
            }
        }
        // … the row last. A random name may collide: pick another.
        let config_json = serde_json::to_string(config)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let host_json = serde_json::to_string(host_config)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let mut attempt = 0u64;
        loop {
            let name = match &o.name {
                Some(n) => n.trim_start_matches('/').to_string(),
                None => {
                    let r = random_bytes();
                    crate::names::random_name(
                        u64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]])
                            + attempt,
                    )
                }
            };
            let row = ContainerRow {
                id: id.clone(),
                name: name.clone(),
                image_id: image.id.clone(),
                image: o.image.clone(),
                created: now_rfc3339(),
                config: config_json.clone(),
                host_config: host_json.clone(),
                removing: false,
            };
            let inserted = self.store.transaction(|t| {
                t.insert_container(&row)?;
                t.delete_claim(id)
            });
            match inserted {
                Ok(()) => return Ok(name),
                Err(berth_store::StoreError::NameInUse(_)) if o.name.is_none() && attempt < 10 => {
                    attempt += 1;
                }
                Err(berth_store::StoreError::NameInUse(n)) => {
                    let holder = self
                        .store
                        .read()
                        .container_by_name(&n)?
                        .map(|r| r.id.to_string())
                        .unwrap_or_default();
                    return Err(EngineError::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The binds and volumes of the `--volumes-from` containers, at the
    /// same destinations (read-only with `:ro`), as Docker copies them.
    fn volumes_from(&self, from: &[String]) -> Result<Vec<MountPoint>> {
        let mut out = Vec::new();
        for f in from {
            let (name, mode) = f.split_once(':').unwrap_or((f, ""));
            let mut ro = false;
            for m in mode.split(',').filter(|m| !m.is_empty()) {
                match m {
                    "ro" => ro = true,
                    "rw" | "z" | "Z" => {}
                    _ => {
                        return Err(EngineError::InvalidArgument(format!(
                            "invalid mode: {mode}"
                        )))
                    }
                }
            }
            let c = self.container(name)?;
            for m in c.host_config.mounts.iter().filter(|m| m.kind != "tmpfs") {
                out.push(MountPoint {
                    mode: String::new(),
                    rw: m.rw && !ro,
                    ..m.clone()
                });
            }
        }
        Ok(out)
    }

    fn parse_mounts(
        &mut self,
        o: &CreateOptions,
        specs: &[berth_types::MountSpec],
        image_volumes: Option<&std::collections::BTreeMap<String, serde_json::Value>>,
        from: &[MountPoint],
    ) -> Result<(Vec<MountPoint>, Vec<String>)> {
        // Docker's order: `--volumes-from` first, then `-v NAME|/SRC:…` and
        // `--mount` over them, then the "config volumes" (the image's
        // `VOLUME`s and bare `-v /path`) where nothing is mounted yet.
        let from_dsts: std::collections::HashSet<String> = from
            .iter()
            .map(|m| clean_container_path(&m.destination))
            .collect();
        let mut config_volumes = Vec::new();
        // One mount per destination (checked before any is made).
        let mut seen = std::collections::HashSet::new();
        let dsts = o.volumes.iter().map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            if parts.len() == 1 {
                parts[0]
            } else {
                parts[1]
            }
        });
        for d in dsts.chain(specs.iter().map(|m| m.target.as_str())) {
            if !seen.insert(d.trim_end_matches('/')) {
                return Err(EngineError::InvalidArgument(format!(
                    "Duplicate mount point: {d}"
                )));
            }
        }
        let mut out = Vec::new();
        for v in &o.volumes {
            let parts: Vec<&str> = v.split(':').collect();
            let (src, dst, mode) = match parts.as_slice() {
                [dst] => ("", *dst, ""),
                [src, dst] => (*src, *dst, ""),
                [src, dst, mode] => (*src, *dst, *mode),
                _ => {
                    return Err(EngineError::InvalidArgument(format!(
                        "invalid volume specification: '{v}'"
                    )))
                }
            };
            if !dst.starts_with('/') {
                // `/path:MODE`: Docker's parser reads a mode, not a
                // destination, and refuses the spec as a whole.
                if parts.len() == 2 && is_mode(dst) {
                    return Err(EngineError::InvalidArgument(format!(
                        "invalid volume specification: '{v}'"
                    )));
                }
                let kind = if src.starts_with('/') {
                    "bind"
                } else {
                    "volume"
                };
                return Err(EngineError::InvalidArgument(format!(
                    "invalid volume specification: '{v}': invalid mount config for type \"{kind}\": invalid mount path: '{dst}' mount path must be absolute"
                )));
            }
            let rw = volume_mode(v, mode, src.starts_with('/'))?;
            if src.starts_with('/') {
                // Docker creates a missing bind source directory.
                if std::fs::symlink_metadata(src).is_err() {
                    std::fs::create_dir_all(src)
                        .map_err(io_ctx(format!("creating bind source {src}")))?;
                }
                out.push(MountPoint {
                    kind: "bind".into(),
                    name: String::new(),
                    source: src.to_string(),
                    destination: dst.to_string(),
                    mode: mode.to_string(),
                    rw,
                });
            } else {
                if src.is_empty() && from_dsts.contains(&clean_container_path(dst)) {
                    continue;
                }
                let name = if src.is_empty() {
                    config_volumes.push(clean_container_path(dst));
                    hex::encode(random_bytes())
                } else {
                    src.to_string()
                };
                let data = self.ensure_volume(&name, src.is_empty())?;
                out.push(MountPoint {
                    kind: "volume".into(),
                    name,
                    source: data.display().to_string(),
                    destination: dst.to_string(),
                    mode: mode.to_string(),
                    rw,
                });
            }
        }
        for m in specs {
            let (name, source) = match m.kind.as_str() {
                "volume" => {
                    let name = if m.source.is_empty() {
                        hex::encode(random_bytes())
                    } else {
                        m.source.clone()
                    };
                    let labels = m
                        .volume_options
                        .as_ref()
                        .and_then(|v| v.labels.clone())
                        .unwrap_or_default();
                    let driver = m.volume_options.as_ref().map(|v| &v.driver_config);
                    let data = self.ensure_volume_full(
                        &name,
                        m.source.is_empty(),
                        &labels,
                        driver.map_or("", |d| d.name.as_str()),
                        &driver.map(|d| d.options.clone()).unwrap_or_default(),
                    )?;
                    (name, data.display().to_string())
                }
                _ => (String::new(), m.source.clone()),
            };
            out.push(MountPoint {
                // Docker records a volume's mode as `z`, the others' empty.
                mode: if m.kind == "volume" { "z" } else { "" }.into(),
                kind: m.kind.clone(),
                name,
                source,
                destination: m.target.clone(),
                rw: !m.read_only,
            });
        }
        // The image's `VOLUME`s: a new anonymous volume each, unless the user
        // mounts something (a volume, a bind, a tmpfs) at that path.
        for path in image_volumes.into_iter().flat_map(|v| v.keys()) {
            let dst = clean_container_path(path);
            let taken = out
                .iter()
                .map(|m| clean_container_path(&m.destination))
                .chain(o.tmpfs.iter().map(|t| {
                    clean_container_path(t.split_once(':').map_or(t.as_str(), |(p, _)| p))
                }))
                .chain(from_dsts.iter().cloned())
                .any(|d| d == dst);
            if taken || !dst.starts_with('/') {
                continue;
            }
            config_volumes.push(dst.clone());
            let name = hex::encode(random_bytes());
            let data = self.ensure_volume(&name, true)?;
            out.push(MountPoint {
                kind: "volume".into(),
                name,
                source: data.display().to_string(),
                destination: dst,
                mode: String::new(),
                rw: true,
            });
        }
        Ok((out, config_volumes))
    }

    #[allow(clippy::too_many_arguments)]
    fn lay_out_container(
        &self,
        id: &ContainerId,
        dir: &Path,
        hostname: &str,
        network: &str,
        image: &berth_store::ImageRow,
        config: &ContainerConfig,
        host: &HostConfig,
        (security, seccomp_cached): (&crate::security::SecuritySetup, Option<&Path>),
    ) -> Result<()> {
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(d))
                .map_err(io_ctx(format!("creating {}", dir.join(d).display())))?;
        }
        let seccomp_filter = match seccomp_cached {
            Some(cached) => {
                let own = dir.join("seccomp.bpf");
                crate::security::link_filter(cached, &own)?;
                Some(own)
            }
            None => None,
        };
        let hosts = if network == "host" {
            std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| HOSTS_BASE.to_string())
        } else {
            HOSTS_BASE.to_string()
        };
        let resolv = if network == "host" {
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        } else {
            host_resolv_conf()
        };
        for (name, content) in [
            ("hostname", format!("{hostname}\n")),
            ("hosts", hosts),
            ("resolv.conf", resolv),
        ] {
            std::fs::write(dir.join(name), content).map_err(io_ctx(format!("writing {name}")))?;
        }
        let mut mounts: Vec<Mount> = host
            .mounts
            .iter()
            .map(|m| {
                // A `--mount` has its options in `mount_specs`.
                let spec = host
                    .mount_specs
                    .iter()
                    .find(|s| s.target == m.destination && s.kind == m.kind);
                let bind = spec.and_then(|s| s.bind_options.as_ref());
                let recursive = match bind {
                    Some(b) if b.non_recursive => BindRecursive::Disabled,
                    Some(b) if b.read_only_non_recursive => BindRecursive::Writable,
                    Some(b) if b.read_only_force_recursive => BindRecursive::Readonly,
                    _ => BindRecursive::Enabled,
                };
                if m.kind == "tmpfs" {
                    Mount {
                        kind: MountKind::Tmpfs,
                        source: PathBuf::new(),
                        destination: PathBuf::from(&m.destination),
                        readonly: !m.rw,
                        options: spec.map(crate::mountopt::tmpfs_options).unwrap_or_default(),
                        recursive,
                    }
                } else {
                    Mount {
                        kind: MountKind::Bind,
                        source: PathBuf::from(&m.source),
                        destination: PathBuf::from(&m.destination),
                        readonly: !m.rw,
                        options: String::new(),
                        recursive,
                    }
                }
            })
            .collect();
        // Volumes with local-driver options (`volume create -o`): their own
        // file system, or a bind of their device.
        for (mount, m) in mounts.iter_mut().zip(&host.mounts) {
            if m.kind != "volume" || m.name.is_empty() {
                continue;
            }
            match self.volume_source(&m.name)? {
                crate::volume::VolumeSource::Dir(_) => {}
                crate::volume::VolumeSource::Bind {
                    path,
                    recursive,
                    readonly,
                } => {
                    mount.source = path;
                    mount.readonly |= readonly;
                    mount.recursive = if recursive {
                        BindRecursive::Enabled
                    } else {
                        BindRecursive::Disabled
                    };
                }
                crate::volume::VolumeSource::Fs {
                    fstype,
                    device,
                    options,
                } => {
                    mount.kind = MountKind::Filesystem { fstype };
                    mount.source = PathBuf::from(device);
                    mount.options = options;
                }
            }
        }
        for (path, opts) in &host.tmpfs {
            let options = if opts.is_empty() {
                "mode=1777".to_string()
            } else {
                opts.clone()
            };
            let readonly = options.split(',').any(|o| o == "ro");
            let options = options
                .split(',')
                .filter(|o| *o != "ro" && *o != "rw")
                .collect::<Vec<_>>()
                .join(",");
            mounts.push(Mount {
                kind: MountKind::Tmpfs,
                source: PathBuf::new(),
                destination: PathBuf::from(path),
                readonly,
                options,
                recursive: Default::default(),
            });
        }
        let mut args = config.entrypoint.clone().unwrap_or_default();
        args.extend(config.cmd.iter().cloned());
        let (devices, device_rules) = crate::limits::devices_of(host)?;
        let spec = ContainerSpec {
            resources: resources_of(host)?,
            args,
            env: process_env(&daemon_env(config)),
            cwd: config.working_dir.clone(),
            user: config.user.clone(),
            hostname: hostname.to_string(),
            domainname: config.domainname.clone(),
            group_add: host.group_add.clone().unwrap_or_default(),
            sysctls: host.sysctls.clone(),
            no_dev_shm: host.ipc_mode == "none",
            join: Default::default(),
            host_namespaces: berth_runtime::HostNamespaces {
                pid: host.pid_mode == "host",
                ipc: host.ipc_mode == "host",
                uts: host.uts_mode == "host",
                cgroup: host.cgroupns_mode == "host",
            },
            rootfs: RootFs {
                lower: {
                    // Docker's init layer, shared, above the image's.
                    let mut lower = self.lower_dirs(image);
                    let init = crate::initlayer::init_layer(&self.opts.root.join("init"), &lower)?;
                    lower.insert(0, init);
                    lower
                },
                upper: dir.join("upper"),
                work: dir.join("work"),
                merged: dir.join("merged"),
                readonly: host.readonly_rootfs,
            },
            mounts,
            network: if network == "host" {
                NetworkMode::Host
            } else {
                NetworkMode::None
            },
            tty: config.tty,
            init: host.init,
            cgroup_path: self.cgroup_rel(id, host),
            etc_hostname: Some(dir.join("hostname")),
            etc_hosts: Some(dir.join("hosts")),
            etc_resolv_conf: Some(dir.join("resolv.conf")),
            seccomp: seccomp_filter.is_some(),
            privileged: host.privileged,
            security: berth_runtime::Security {
                capabilities: security.caps,
                no_new_privileges: security.no_new_privileges,
                seccomp_filter,
                rlimits: crate::limits::rlimits_of(host),
                oom_score_adj: i32::try_from(host.oom_score_adj).ok().filter(|a| *a != 0),
            },
            unmask_system_paths: security.unmask_system_paths,
            shm_size: u64::try_from(host.shm_size).unwrap_or(0),
            devices,
            device_rules,
        };
        let health = match config.healthcheck.as_ref().filter(|h| h.is_active()) {
            Some(h) => {
                let hc = health_config(
                    h,
                    config,
                    &spec,
                    self.container_filter_path(&spec)?,
                    image_shell(image),
                );
                hc.save(dir)
                    .map_err(io_ctx("writing the healthcheck's configuration"))?;
                Some(hc.schedule)
            }
            None => None,
        };
        let mon = MonitorConfig {
            id: id.to_string(),
            events: self.events_dir(),
            idle: (host.idle_timeout > 0).then(|| berth_runtime::monitor::IdleConfig {
                timeout_ms: u64::try_from(host.idle_timeout / 1_000_000)
                    .unwrap_or(0)
                    .max(1),
                reclaim: self.opts.idle.reclaim,
            }),
            health,
            cgroup_path: spec.cgroup_path.clone(),
            monitor_cgroup: self.monitor_cgroup(),
            spec,
            state_path: dir.join("state.json"),
            log_path: dir.join(format!("{id}-json.log")),
            log_disabled: host.log_config.kind == "none",
            log_max_size: crate::logdriver::max_size(&host.log_config),
            log_max_files: crate::logdriver::max_files(&host.log_config),
            // Known once the row has its name (`write_log_attributes`).
            log_attrs: BTreeMap::new(),
            plain_network: self.plain_network(host),
            attach_socket: self.attach_socket(id),
            open_stdin: config.open_stdin,
            stdin_once: config.stdin_once,
            restart_policy: host.restart_policy.name.clone(),
            restart_max: host.restart_policy.maximum_retry_count,
            stop_marker: dir.join("stopped"),
            remove_command: if host.auto_remove {
                vec![
                    self.opts.berth.display().to_string(),
                    "--root".into(),
                    self.opts.root.display().to_string(),
                    "--run-root".into(),
                    self.opts.run_root.display().to_string(),
                    "--cgroup-parent".into(),
                    self.opts.cgroup_parent.clone(),
                    "rm".into(),
                    "-f".into(),
                    "-v".into(),
                    id.to_string(),
                ]
            } else {
                Vec::new()
            },
        };
        let data = serde_json::to_vec_pretty(&mon)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        std::fs::write(dir.join("monitor.json"), data).map_err(io_ctx("writing monitor.json"))?;
        Ok(())
    }

    /// A container's cgroup, relative to each hierarchy's root: under its
    /// `--cgroup-parent` (Docker's cgroupfs driver: relative to the root
    /// whether or not it starts with `/`, `..` going no higher), else
    /// under berth's parent.
    pub(crate) fn cgroup_rel(&self, id: &ContainerId, h: &HostConfig) -> String {
        let parent = crate::limits::cgroup_parent(&h.cgroup_parent);
        if parent.is_empty() {
            format!("{}/{id}", self.opts.cgroup_parent)
        } else {
            format!("{parent}/{id}")
        }
    }

    pub(crate) fn view(&self, row: ContainerRow) -> Result<ContainerView> {
        let dir = self.container_dir(&row.id);
        let config: ContainerConfig = serde_json::from_str(&row.config).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "container {}: corrupt config: {e}",
                row.id.short()
            ))
        })?;
        let host_config: HostConfig = serde_json::from_str(&row.host_config).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "container {}: corrupt host config: {e}",
                row.id.short()
            ))
        })?;
        let state = load_state(&dir);
        let health = load_health(&dir, &config, &state);
        let frozen = state.status == Status::Running
            && self
                .cgroup_layout()
                .is_some_and(|l| Cgroup::new(l, &self.cgroup_rel(&row.id, &host_config)).frozen());
        // Frozen by its monitor (the marker), or by a user.
        let idle_since = (frozen && host_config.idle_timeout > 0)
            .then(|| std::fs::read_to_string(dir.join(berth_runtime::monitor::IDLE_MARKER)).ok())
            .flatten()
            .map(|t| t.trim().to_string());
        Ok(ContainerView {
            paused: frozen && idle_since.is_none(),
            idle_since,
            id: row.id,
            name: row.name,
            image: row.image,
            image_id: row.image_id,
            created: row.created,
            config,
            host_config,
            state,
            health,
            removing: row.removing,
            dir,
        })
    }

    /// What the view of `row`'s container is read from besides the store's
    /// database ([`Options::store_file`]): the files of its directory and its
    /// cgroup's freeze file (and its monitor, see
    /// [`ContainerView::live_monitor`]). A server that watches these and
    /// sees none change may answer from a view it read before.
    fn view_sources(&self, row: &ContainerRow) -> Result<ViewSources> {
        let h: HostConfig = serde_json::from_str(&row.host_config).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "container {}: corrupt host config: {e}",
                row.id.short()
            ))
        })?;
        Ok(ViewSources {
            id: row.id.clone(),
            dir: self.container_dir(&row.id),
            freeze_file: self
                .cgroup_layout()
                .and_then(|l| Cgroup::new(l, &self.cgroup_rel(&row.id, &h)).freeze_file()),
        })
    }

    /// What the view of the container `what` names is read from (see
    /// [`ViewSources`]), from the database alone (nothing of its directory
    /// read).
    pub fn sources_of(&self, what: &str) -> Result<ViewSources> {
        self.view_sources(&self.find_container(what)?)
    }

    /// What every container's view is read from, from the database alone.
    pub fn all_sources(&self) -> Result<Vec<ViewSources>> {
        let rows = self.store.read().containers()?;
        rows.iter().map(|r| self.view_sources(r)).collect()
    }

    pub fn container(&self, what: &str) -> Result<ContainerView> {
        let row = self.find_container(what)?;
        self.view(row)
    }

    /// Every container, newest first.
    /// (Not the containers of `build` steps, which are the builder's.)
    pub fn containers(&self) -> Result<Vec<ContainerView>> {
        let rows = self.store.read().containers()?;
        rows.into_iter()
            .map(|r| self.view(r))
            .filter(|v| {
                !v.as_ref()
                    .is_ok_and(|v| v.config.labels.contains_key(crate::BUILD_STEP_LABEL))
            })
            .collect()
    }

    /// `<cgroup parent>/monitors`: where monitors live (see
    /// [`MonitorConfig::monitor_cgroup`]).
    fn monitor_cgroup(&self) -> String {
        format!("{}/monitors", self.opts.cgroup_parent)
    }

    fn spawn_monitor(
        &self,
        v: &ContainerView,
        attach: Option<AttachStreams>,
    ) -> Result<(Option<Attachment>, i32)> {
        let _ = std::fs::remove_file(v.dir.join("stopped"));
        // No filter file: unconfined, or created by a berth that did not
        // compile filters at create (then compile it now, once).
        if !v.dir.join("seccomp.bpf").exists() {
            self.upgrade_legacy_spec(&v.dir)?;
        }
        self.write_join(v)?;
        self.prepare_network(v)?;
        let mut args = vec![v.dir.clone().into_os_string()];
        if attach.is_some() {
            args.push("--attach-first".into());
        }
        let socket = self.attach_socket(&v.id);
        let launched = self.launch_monitor(&args, attach.map(|s| (socket.as_path(), s)));
        if launched.is_err() {
            self.release_network(&v.id);
        }
        match launched {
            Ok(r) => Ok(r),
            Err(MonitorFailure::Exited) => {
                let st = State::load(&v.dir.join("state.json"))
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let msg = if st.error.is_empty() {
                    "the container's monitor exited unexpectedly".to_string()
                } else {
                    st.error
                };
                Err(EngineError::Runtime {
                    code: 125,
                    message: msg,
                })
            }
            Err(MonitorFailure::Engine(e)) => Err(e),
        }
    }

    /// For a container on `none` or `host` (no endpoints, so nothing in its
    /// `network.json`): the network its monitor names in the `network
    /// connect`/`disconnect` events of each start and end. None for other
    /// modes (`container:X` has no network of its own; `default` without a
    /// default bridge, `dockerd --bridge=none`'s case, has none at all:
    /// dockerd records nothing for either), nor when the network cannot be
    /// read.
    fn plain_network(&self, host: &HostConfig) -> Option<berth_runtime::events::NetworkRef> {
        if !host.networks.is_empty() {
            return None;
        }
        let (name, driver) = match host.network_mode.as_str() {
            "none" => ("none", "null"),
            "host" => ("host", "host"),
            _ => return None,
        };
        let row = self.store.read().network_by_name(name).ok()??;
        Some(berth_runtime::events::NetworkRef {
            id: row.id,
            name: row.name,
            driver: driver.into(),
        })
    }

    /// `--ipc container:X`, `--pid container:X`: which running containers
    /// this start joins, checked as Docker's daemon checks them (IPC first,
    /// in its words), handed to the monitor in `join.json` (no file: none).
    fn write_join(&self, v: &ContainerView) -> Result<()> {
        let h = &v.host_config;
        let path = v.dir.join("join.json");
        let ipc = h.ipc_mode.strip_prefix("container:");
        let pid = h.pid_mode.strip_prefix("container:");
        let net = h.network_mode.strip_prefix("container:");
        if ipc.is_none() && pid.is_none() && net.is_none() {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        let mut join = berth_runtime::JoinNamespaces::default();
        if let Some(x) = ipc {
            let wrap = |m: String| {
                EngineError::InvalidArgument(format!("can't join IPC of container {x}: {m}"))
            };
            if x.is_empty() {
                return Err(wrap("invalid name or ID supplied: \"\"".into()));
            }
            let d = self.container(x).map_err(|e| wrap(e.to_string()))?;
            if !d.running() {
                return Err(EngineError::Conflict(format!(
                    "can't join IPC of container {x}: container {} is not running",
                    d.id
                )));
            }
            // Docker: the donor must have a /dev/shm to share.
            let ok = matches!(d.host_config.ipc_mode.as_str(), "shareable" | "host")
                || d.host_config.ipc_mode.starts_with("container:");
            if !ok {
                return Err(wrap(
                    "non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
                        .into(),
                ));
            }
            join.ipc = Some(Self::join_target(&d)?);
        }
        if let Some(x) = pid {
            let d = self.container(x).map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "cannot join PID of a non running container: {x}: {e}"
                ))
            })?;
            if !d.running() {
                return Err(EngineError::Conflict(format!(
                    "container {} is not running",
                    d.id
                )));
            }
            join.pid = Some(Self::join_target(&d)?);
        }
        if let Some(x) = net {
            let d = self.container(x).map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "cannot join network of a non running container: {x}: {e}"
                ))
            })?;
            if !d.running() {
                return Err(EngineError::Conflict(format!(
                    "cannot join network of a non running container: {}",
                    d.id
                )));
            }
            join.net = Some(Self::join_target(&d)?);
        }
        let data = serde_json::to_vec(&join).map_err(|e| EngineError::Runtime {
            code: 125,
            message: format!("serializing join.json: {e}"),
        })?;
        std::fs::write(&path, data).map_err(io_ctx("writing join.json"))
    }

    /// A running container's first process and its cgroup (from its
    /// `monitor.json`); the monitor proves the one is in the other.
    fn join_target(d: &ContainerView) -> Result<berth_runtime::JoinTarget> {
        let mon = read_monitor_config(&d.dir)?;
        Ok(berth_runtime::JoinTarget {
            pid: d.state.pid,
            cgroup: mon.cgroup_path,
        })
    }

    /// Starts `berth-monitor ARGS` as a daemon (its own session, not our
    /// child: the intermediate process exits at once and is reaped here)
    /// and follows its notify lines: `ready` (connect to `attach` then),
    /// `ok PID` or `err CODE MESSAGE`.
    fn launch_monitor(
        &self,
        args: &[std::ffi::OsString],
        attach: Option<(&Path, AttachStreams)>,
    ) -> std::result::Result<(Option<Attachment>, i32), MonitorFailure> {
        // The monitor moves itself there; making it is ours (the monitor
        // keeps every page it touches for the container's life). Best
        // effort: without it the monitor stays in our cgroup.
        // Made once: later starts only look (a stat instead of a mkdir in
        // every hierarchy on the start path).
        if let Ok(layout) = cgroups::detect() {
            let cg = Cgroup::new(&layout, &self.monitor_cgroup());
            if !cg.dirs().iter().all(|d| d.is_dir()) {
                let _ = cg.create();
            }
        }
        let mut cmd = std::process::Command::new(&self.opts.monitor);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        // SAFETY: the closure runs in the forked child before exec and calls
        // only async-signal-safe system calls (setsid, a raw clone that
        // behaves as fork, _exit); it touches no memory of the parent. The
        // intermediate exits at once, so the monitor is never our child
        // (no zombie in a long-lived caller) and not a session leader that
        // could acquire a terminal.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                let r = libc::syscall(
                    libc::SYS_clone,
                    libc::SIGCHLD as libc::c_ulong,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_int>(),
                    std::ptr::null_mut::<libc::c_int>(),
                    0 as libc::c_ulong,
                );
                match r {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => Ok(()),
                    _ => libc::_exit(0),
                }
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            MonitorFailure::Engine(io_ctx(format!(
                "starting the monitor {}",
                self.opts.monitor.display()
            ))(e))
        })?;
        let out = child.stdout.take();
        // The intermediate has exited (or is about to): reap it.
        let _ = child.wait();
        let out = out.ok_or_else(|| {
            MonitorFailure::Engine(EngineError::Runtime {
                code: 125,
                message: "monitor has no stdout".into(),
            })
        })?;
        let mut lines = BufReader::new(out).lines();
        let mut attachment = None;
        let mut attach = attach;
        loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => return Err(MonitorFailure::Exited),
            };
            if line == "ready" {
                if let Some((socket, s)) = attach.take() {
                    attachment = Some(
                        Attachment::connect(socket, s)
                            .map_err(io_ctx("attaching to the container"))
                            .map_err(MonitorFailure::Engine)?,
                    );
                }
                continue;
            }
            if let Some(pid) = line.strip_prefix("ok ") {
                let pid = pid.trim().parse().unwrap_or(0);
                return Ok((attachment, pid));
            }
            if let Some(rest) = line.strip_prefix("err ") {
                let (code, msg) = rest.split_once(' ').unwrap_or(("125", rest));
                return Err(MonitorFailure::Engine(EngineError::Runtime {
                    code: code.parse().unwrap_or(125),
                    message: msg.to_string(),
                }));
            }
        }
    }

    /// `start`: runs a created or stopped container in the background.
    /// Starting a running container does nothing.
    pub fn start(&mut self, what: &str) -> Result<ContainerView> {
        let row = self.find_container(what)?;
        let _lock = self.lock_container(&row.id)?;
        let v = self.view(row)?;
        if v.removing {
            return Err(EngineError::Conflict(format!(
                "container {} is marked for removal and cannot be started",
                v.id
            )));
        }
        if !matches!(v.state.status, Status::Running | Status::Restarting) {
            self.spawn_monitor(&v, None)?;
        }
        self.container(v.id.as_str())
    }

    /// Starts a container with the caller attached before its process runs.
    pub fn start_attached(
        &mut self,
        what: &str,
        streams: AttachStreams,
    ) -> Result<(ContainerView, Attachment)> {
        let row = self.find_container(what)?;
        let lock = self.lock_container(&row.id)?;
        let v = self.view(row)?;
        if matches!(v.state.status, Status::Running | Status::Restarting) {
            drop(lock);
            let a = self.attach(v.id.as_str(), streams)?;
            return Ok((v, a));
        }
        self.emit_container(&v, "attach", &[]);
        let (a, pid) = self.spawn_monitor(&v, Some(streams))?;
        drop(lock);
        let a = a.ok_or_else(|| EngineError::Runtime {
            code: 125,
            message: "the monitor did not offer an attach socket".into(),
        })?;
        let v = match self.container(v.id.as_str()) {
            Ok(v) => v,
            // A quick command under `--rm` may already have run and been
            // removed by its monitor: the attachment still holds its output
            // and exit code.
            Err(EngineError::NoSuchContainer(_)) => {
                let mut v = v;
                v.state.status = Status::Running;
                v.state.pid = pid;
                v
            }
            Err(e) => return Err(e),
        };
        Ok((v, a))
    }

    /// `attach`: connects to a running container's streams.
    pub fn attach(&self, what: &str, streams: AttachStreams) -> Result<Attachment> {
        let v = self.container(what)?;
        if !v.running() {
            return Err(EngineError::NotRunningToAttach);
        }
        let a = Attachment::connect(&self.attach_socket(&v.id), streams)
            .map_err(io_ctx("attaching to the container"))?;
        self.emit_container(&v, "attach", &[]);
        Ok(a)
    }

    /// `wait`: blocks until the container is not running; returns its exit code.
    pub fn wait(&self, what: &str) -> Result<i32> {
        let v = self.container(what)?;
        self.wait_view(&v, None)
            .map(|c| c.unwrap_or(v.state.exit_code))
    }

    /// `wait`, looking up every `every` whether to go on: None once
    /// `go_on` says no (a server's client went away) before the exit.
    pub fn wait_while(
        &self,
        what: &str,
        every: Duration,
        mut go_on: impl FnMut() -> bool,
    ) -> Result<Option<i32>> {
        let v = self.container(what)?;
        if !matches!(v.state.status, Status::Running) {
            return Ok(Some(v.state.exit_code));
        }
        let Ok(mut a) = Attachment::connect(&self.attach_socket(&v.id), AttachStreams::default())
        else {
            return Ok(Some(self.container(v.id.as_str())?.state.exit_code));
        };
        loop {
            if let Some(code) = self.wait_attachment(&mut a, &v, Some(every))? {
                return Ok(Some(code));
            }
            if !go_on() {
                return Ok(None);
            }
        }
    }

    /// Waits for the next exit of `v` (Some(code)), or until `timeout`
    /// (None). A container that is not running answers at once.
    fn wait_view(&self, v: &ContainerView, timeout: Option<Duration>) -> Result<Option<i32>> {
        if !matches!(v.state.status, Status::Running) {
            return Ok(Some(v.state.exit_code));
        }
        let Ok(mut a) = Attachment::connect(&self.attach_socket(&v.id), AttachStreams::default())
        else {
            return Ok(Some(self.container(v.id.as_str())?.state.exit_code));
        };
        self.wait_attachment(&mut a, v, timeout)
    }

    fn wait_attachment(
        &self,
        a: &mut Attachment,
        v: &ContainerView,
        timeout: Option<Duration>,
    ) -> Result<Option<i32>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                let _ = a.set_read_timeout(Some(left));
            }
            match a.next_output() {
                Ok(Some(Output::Exit(code))) => return Ok(Some(code)),
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(Some(self.container(v.id.as_str())?.state.exit_code)),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(_) => return Ok(Some(self.container(v.id.as_str())?.state.exit_code)),
            }
        }
    }

    /// `stop [-t N]`: the stop signal, then SIGKILL after the timeout.
    pub fn stop(&mut self, what: &str, timeout: Option<i64>) -> Result<ContainerView> {
        let row = self.find_container(what)?;
        let _lock = self.lock_container(&row.id)?;
        let v = self.view(row)?;
        self.stop_locked(&v, timeout)?;
        if !v.host_config.networks.is_empty() {
            self.release_network(&v.id);
        }
        if matches!(v.state.status, Status::Running | Status::Restarting) {
            self.emit_container(&v, "stop", &[]);
        }
        self.container(v.id.as_str())
    }

    fn stop_locked(&self, v: &ContainerView, timeout: Option<i64>) -> Result<()> {
        // No restart after a user's stop.
        std::fs::write(v.dir.join("stopped"), b"")
            .map_err(io_ctx("marking the container stopped"))?;
        // A monitor between two runs (restarting) sees the marker within one
        // back-off step and exits; one that has just started the process
        // again is stopped by the next pass. Return only once it is stopped.
        // A `commit` killed while it had the container frozen leaves it so;
        // a frozen process cannot act on a signal, so thaw it first.
        self.wake(v);
        if v.state.status == Status::Running {
            if let Ok(layout) = cgroups::detect() {
                let cg = Cgroup::new(&layout, &self.cgroup_rel(&v.id, &v.host_config));
                let _ = cg.freeze(false);
            }
        }
        let mut v = v.clone();
        for _ in 0..4 {
            match v.state.status {
                Status::Running => self.signal_and_wait(&v, timeout)?,
                Status::Restarting => Self::wait_not_restarting(&v),
                Status::Created | Status::Exited => return Ok(()),
            }
            v = self.container(v.id.as_str())?;
        }
        Ok(())
    }

    /// The state as the monitor last wrote it, reconciled with whether it lives.
    fn current_state(v: &ContainerView) -> State {
        reconcile(
            State::load(&v.dir.join("state.json"))
                .ok()
                .flatten()
                .unwrap_or_default(),
        )
    }

    /// Polls `state.json` until the monitor has left `restarting` (or died).
    fn wait_not_restarting(v: &ContainerView) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if Self::current_state(v).status != Status::Restarting {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls `state.json` until the process `v` saw running has exited;
    /// false when `timeout` passes first.
    fn poll_exit(v: &ContainerView, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let s = Self::current_state(v);
            if s.status != Status::Running || s.pid != v.state.pid {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stop signal, then SIGKILL after the timeout; waits for the exit.
    fn signal_and_wait(&self, v: &ContainerView, timeout: Option<i64>) -> Result<()> {
        let timeout = timeout
            .or(v.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let sig = v
            .config
            .stop_signal
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(libc::SIGTERM);
        // Without the attach socket (gone from the run root) the container
        // still runs: signal it all the same and watch `state.json`.
        let mut a = Attachment::connect(&self.attach_socket(&v.id), AttachStreams::default()).ok();
        let mut exited = |t: Option<Duration>| -> Result<bool> {
            match &mut a {
                Some(a) => Ok(self.wait_attachment(a, v, t)?.is_some()),
                None => Ok(Self::poll_exit(v, t)),
            }
        };
        let pid = v.state.pid;
        if timeout != 0 {
            self.emit_container(v, "kill", &[("signal", sig.to_string())]);
            let _ = berth_runtime::process::send_signal(pid, sig);
            let t = if timeout < 0 {
                None
            } else {
                Some(Duration::from_secs(timeout as u64))
            };
            if exited(t)? {
                return Ok(());
            }
        }
        self.emit_container(v, "kill", &[("signal", libc::SIGKILL.to_string())]);
        let _ = berth_runtime::process::send_signal(pid, libc::SIGKILL);
        exited(Some(Duration::from_secs(30)))?;
        Ok(())
    }

    /// `restart`: stop (if running), then start; recorded as `restart`
    /// after the start's own events, as dockerd does.
    pub fn restart(&mut self, what: &str, timeout: Option<i64>) -> Result<ContainerView> {
        let v = self.stop(what, timeout)?;
        let v = self.start(v.id.as_str())?;
        self.emit_container(&v, "restart", &[]);
        Ok(v)
    }

    /// `kill [-s SIG]`
    pub fn kill(&self, what: &str, signal: &str) -> Result<ContainerView> {
        let sig = parse_signal(signal)
            .ok_or_else(|| EngineError::InvalidArgument(format!("Invalid signal: {signal}")))?;
        let v = self.container(what)?;
        if !v.running() {
            return Err(EngineError::Conflict(format!(
                "Cannot kill container: {what}: Container {} is not running",
                v.id
            )));
        }
        self.wake(&v);
        if sig == libc::SIGKILL || sig == libc::SIGTERM || sig == libc::SIGINT {
            // Docker treats a kill as the user's stop for the restart policy.
            let _ = std::fs::write(v.dir.join("stopped"), b"");
        }
        // Recorded first: the monitor records the `die` it may cause.
        self.emit_container(&v, "kill", &[("signal", sig.to_string())]);
        berth_runtime::process::send_signal(v.state.pid, sig)
            .map_err(io_ctx(format!("Cannot kill container: {what}")))?;
        // A frozen process acts on a signal once thawed: Docker 20.10
        // thaws a paused container it signals.
        if v.paused {
            let _ = self.container_cgroup(&v).map(|cg| cg.freeze(false));
        }
        Ok(v)
    }

    /// Wakes an idle container (any other is left as it is) through its
    /// monitor, which thaws it and records the `wake`; without an answer,
    /// thaws it here.
    pub(crate) fn wake(&self, v: &ContainerView) {
        if v.idle_since.is_none() {
            return;
        }
        if !self.tell_monitor(v, "wake") {
            if let Ok(cg) = self.container_cgroup(v) {
                let _ = cg.freeze(false);
            }
            let _ = std::fs::remove_file(v.dir.join(berth_runtime::monitor::IDLE_MARKER));
        }
    }

    /// A control line to a running container's monitor on its attach
    /// socket (`network`: its networks changed; `wake`: it thaws the
    /// container if the idle marker is still there, and watches it awake
    /// again either way); true once it answered `ok`.
    pub(crate) fn tell_monitor(&self, v: &ContainerView, word: &str) -> bool {
        use std::io::{BufRead, Write};
        std::os::unix::net::UnixStream::connect(self.attach_socket(&v.id))
            .ok()
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                s.write_all(format!("{word}\n").as_bytes()).ok()?;
                let mut line = String::new();
                std::io::BufReader::new(&s).read_line(&mut line).ok()?;
                (line.trim() == "ok").then_some(())
            })
            .is_some()
    }

    fn container_cgroup(&self, v: &ContainerView) -> Result<Cgroup> {
        let layout = self.cgroup_layout().ok_or_else(|| EngineError::Runtime {
            code: 125,
            message: "no cgroup hierarchy found".into(),
        })?;
        Ok(Cgroup::new(layout, &self.cgroup_rel(&v.id, &v.host_config)))
    }

    /// `update`: new limits for a container (running: its cgroup at once),
    /// kept for its next starts.
    pub fn update(
        &self,
        what: &str,
        r: &ResourceOptions,
        restart: Option<&RestartPolicy>,
    ) -> Result<ContainerView> {
        let v = self.container(what)?;
        let _lock = self.lock_container(&v.id)?;
        let v = self.container(v.id.as_str())?;
        let mut h = v.host_config.clone();
        if let Some(p) = restart {
            if h.auto_remove && !p.is_none() {
                return Err(EngineError::InvalidArgument(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                        .into(),
                ));
            }
            h.restart_policy = p.clone();
        }
        // What is not given stays.
        let merged = ResourceOptions {
            memory: r
                .memory
                .clone()
                .or_else(|| (h.memory > 0).then(|| h.memory.to_string())),
            // Docker keeps the recorded swap when only the memory changes.
            memory_swap: r
                .memory_swap
                .clone()
                .or_else(|| (h.memory_swap != 0).then(|| h.memory_swap.to_string())),
            cpus: r
                .cpus
                .clone()
                .or_else(|| (h.nano_cpus > 0).then(|| format!("{}", h.nano_cpus as f64 / 1e9))),
            cpu_shares: r.cpu_shares,
            pids_limit: r.pids_limit,
            memory_reservation: r
                .memory_reservation
                .clone()
                .or_else(|| (h.memory_reservation > 0).then(|| h.memory_reservation.to_string())),
            cpuset_cpus: r
                .cpuset_cpus
                .clone()
                .or_else(|| Some(h.cpuset_cpus.clone())),
            cpuset_mems: r
                .cpuset_mems
                .clone()
                .or_else(|| Some(h.cpuset_mems.clone())),
            more: Default::default(),
        };
        let (memory, memory_swap, nano_cpus) = check_resources(&merged)?;
        let (memory_reservation, cpuset_cpus, cpuset_mems) =
            check_reservation_and_cpusets(&merged, memory)?;
        h.memory_reservation = memory_reservation;
        h.cpuset_cpus = cpuset_cpus;
        h.cpuset_mems = cpuset_mems;
        h.memory = memory;
        h.memory_swap = memory_swap;
        h.nano_cpus = nano_cpus;
        if let Some(c) = r.cpu_shares {
            h.cpu_shares = c;
        }
        if let Some(p) = r.pids_limit {
            h.pids_limit = (p > 0).then_some(p);
        }
        // Docker's update: the CPU period and quota, the real-time ones
        // and the block I/O weight; checked over what is recorded.
        let more = crate::limits::MoreLimits {
            cpu_period: r.more.cpu_period,
            cpu_quota: r.more.cpu_quota,
            cpu_rt_period: r.more.cpu_rt_period,
            cpu_rt_runtime: r.more.cpu_rt_runtime,
            blkio_weight: r.more.blkio_weight,
            ..Default::default()
        };
        crate::limits::check_into(&more, &mut h, self.cgroup_layout())?;
        let resources = resources_of(&h)?;
        if v.running() || v.paused {
            self.container_cgroup(&v)?
                .apply(&resources)
                .map_err(|e| EngineError::Runtime {
                    code: 125,
                    message: format!("Cannot update container {}: {e}", v.id),
                })?;
        }
        let mut mon = read_monitor_config(&v.dir)?;
        mon.spec.resources = resources;
        mon.restart_policy = h.restart_policy.name.clone();
        mon.restart_max = h.restart_policy.maximum_retry_count;
        let data = serde_json::to_vec(&mon).map_err(|e| EngineError::Runtime {
            code: 125,
            message: format!("serializing monitor.json: {e}"),
        })?;
        std::fs::write(v.dir.join("monitor.json"), data).map_err(io_ctx("writing monitor.json"))?;
        let json = serde_json::to_string(&h).map_err(|e| EngineError::Runtime {
            code: 125,
            message: format!("serializing the host config: {e}"),
        })?;
        self.store
            .read()
            .update_container_host_config(&v.id, &json)?;
        Ok(v)
    }

    /// `pause`: freezes every process of a running container (the cgroup
    /// freezer), as Docker's.
    pub fn pause(&self, what: &str) -> Result<ContainerView> {
        let v = self.container(what)?;
        let _lock = self.lock_container(&v.id)?;
        let v = self.container(v.id.as_str())?;
        match v.state.status {
            Status::Restarting => {
                return Err(EngineError::Conflict(format!(
                    "Container {} is restarting, wait until the container is running",
                    v.id
                )))
            }
            Status::Running => {}
            _ => {
                return Err(EngineError::Conflict(format!(
                    "Container {} is not running",
                    v.id
                )))
            }
        }
        if v.paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is already paused",
                v.id
            )));
        }
        // Idle (frozen by its monitor): it becomes the user's pause by
        // losing its marker — the monitor then leaves it frozen when woken.
        if v.idle_since.is_some()
            && std::fs::remove_file(v.dir.join(berth_runtime::monitor::IDLE_MARKER)).is_ok()
            && self.container_cgroup(&v)?.frozen()
        {
            // Its monitor stops waiting for traffic (and, finding no
            // marker, does not thaw it).
            self.tell_monitor(&v, "wake");
            self.emit_container(&v, "pause", &[]);
            return Ok(v);
        }
        self.container_cgroup(&v)?
            .freeze(true)
            .map_err(|e| EngineError::Runtime {
                code: 125,
                message: format!("Cannot pause container {}: {e}", v.id),
            })?;
        self.emit_container(&v, "pause", &[]);
        Ok(v)
    }

    /// `unpause`: thaws a paused container.
    pub fn unpause(&self, what: &str) -> Result<ContainerView> {
        let v = self.container(what)?;
        let _lock = self.lock_container(&v.id)?;
        let v = self.container(v.id.as_str())?;
        if !v.paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is not paused",
                v.id
            )));
        }
        self.container_cgroup(&v)?
            .freeze(false)
            .map_err(|e| EngineError::Runtime {
                code: 125,
                message: format!("Cannot unpause container {}: {e}", v.id),
            })?;
        self.emit_container(&v, "unpause", &[]);
        Ok(v)
    }

    /// `rm [-f] [-v]`
    pub fn remove(&mut self, what: &str, force: bool, volumes: bool) -> Result<ContainerId> {
        berth_runtime::trace::trace("engine: remove");
        let row = self.find_container(what)?;
        let dir = self.container_dir(&row.id);
        let _lock = match self.lock_container(&row.id) {
            Ok(l) => Some(l),
            // An interrupted removal deleted the directory (lock and all) but
            // not the row: nothing can run without the directory, finish it.
            Err(EngineError::NoSuchContainer(_)) if !dir.exists() => None,
            Err(e) => return Err(e),
        };
        let v = self.view(row)?;
        if matches!(v.state.status, Status::Running | Status::Restarting) {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "You cannot remove a {} container {}. Stop the container before attempting removal or force remove",
                    v.status_word(),
                    v.id
                )));
            }
            self.stop_locked(&v, Some(0))?;
        }
        self.store.read().set_removing(&v.id)?;
        if !v.host_config.networks.is_empty() {
            self.release_network(&v.id);
        }
        self.remove_files(&v);
        self.store.transaction(|t| t.delete_container(&v.id))?;
        self.emit_container(&v, "destroy", &[]);
        if self.store.read().image(&v.image_id)?.is_none() {
            // Its image was removed while it existed: free what it held.
            self.remove_unused_layers()?;
        }
        berth_runtime::trace::trace("engine: removed");
        if volumes {
            for m in &v.host_config.mounts {
                // Anonymous volumes only: their names are 64 hex digits.
                if m.kind == "volume"
                    && m.name.len() == 64
                    && m.name.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    // Not one another container still mounts (`--volumes-from`).
                    let _ = self.remove_volume(&m.name, false);
                }
            }
        }
        Ok(v.id)
    }

    /// The layers a container's root filesystem stands on (from its
    /// monitor configuration, so they are known even after its image is gone).
    pub(crate) fn container_layers(&self, v: &ContainerView) -> Vec<berth_types::Digest> {
        layers_in_dir(&v.dir)
    }

    fn remove_files(&self, v: &ContainerView) {
        if let Ok(layout) = cgroups::detect() {
            let cg = Cgroup::new(&layout, &self.cgroup_rel(&v.id, &v.host_config));
            // Whatever is still in the cgroup (a process that outlived its
            // stop, an init whose starter vanished before it ran) goes now:
            // thawed first, since a frozen process cannot die.
            if !cg.pids().is_empty() {
                let _ = cg.freeze(false);
                cg.kill_all(libc::SIGKILL);
            }
            let _ = cg.remove();
        }
        let _ = std::fs::remove_file(self.attach_socket(&v.id));
        // The lock file goes with the directory; holders keep their descriptor.
        let _ = std::fs::remove_dir_all(&v.dir);
    }

    /// `rename OLD NEW`
    pub fn rename(&mut self, what: &str, new_name: &str) -> Result<()> {
        let row = self.find_container(what)?;
        // Docker's words: "Error when allocating new name: ..." and the name
        // with its leading slash.
        if !crate::names::valid_name(new_name) {
            return Err(EngineError::InvalidArgument(format!(
                "Error when allocating new name: Invalid container name (/{}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                new_name.trim_start_matches('/')
            )));
        }
        let new_name = new_name.trim_start_matches('/');
        if row.name == new_name {
            return Err(EngineError::Conflict(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        match self.store.read().rename_container(&row.id, new_name) {
            Err(berth_store::StoreError::NameInUse(n)) => {
                let holder = self
                    .store
                    .read()
                    .container_by_name(&n)?
                    .map(|r| r.id.to_string())
                    .unwrap_or_default();
                return Err(EngineError::Conflict(format!(
                    "Error when allocating new name: Conflict. The container name \"/{n}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            other => other?,
        }
        // Its monitor names it by what monitor.json says in the events it
        // records (die, oom, idle…).
        if let Ok(v) = self.view(row.clone()) {
            let mut v = v;
            v.name = new_name.to_string();
            crate::events::save_attributes(&v.dir, &crate::events::container_attributes(&v));
            self.emit_container(&v, "rename", &[("oldName", format!("/{}", row.name))]);
        }
        Ok(())
    }

    /// `container prune`: removes every stopped container.
    /// `container prune [--filter until=|label=|label!=]`: removes every
    /// stopped container that `f` takes (all of them with no filter).
    pub fn prune_containers(&mut self, f: &crate::filters::Filters) -> Result<PruneReport> {
        let until = f.prune_until(chrono::Utc::now())?;
        let mut report = PruneReport {
            deleted: Vec::new(),
            space_reclaimed: 0,
        };
        for v in self.containers()? {
            if matches!(v.state.status, Status::Running | Status::Restarting) {
                continue;
            }
            let made = chrono::DateTime::parse_from_rfc3339(&v.created)
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok();
            let too_new = until.is_some_and(|u| made.is_none_or(|m| m >= u));
            if too_new || !f.prune_labels_match(&v.config.labels) {
                continue;
            }
            let size = berth_layers::dir_size(&v.dir.join("upper"));
            if self.remove(v.id.as_str(), false, false).is_ok() {
                report.deleted.push(v.id.to_string());
                report.space_reclaimed += size;
            }
        }
        Ok(report)
    }

    /// The container's log files, oldest first.
    fn log_files(v: &ContainerView) -> Vec<PathBuf> {
        let live = v.dir.join(format!("{}-json.log", v.id));
        let mut files: Vec<PathBuf> = (1..100)
            .map(|i| PathBuf::from(format!("{}.{i}", live.display())))
            .take_while(|p| p.exists())
            .collect();
        files.reverse();
        files.push(live);
        files
    }

    /// `logs`: calls `sink` for every entry; with `follow`, keeps going until
    /// the container stops (or `sink` returns false).
    pub fn logs(
        &self,
        what: &str,
        o: &LogOptions,
        sink: impl FnMut(&LogEntry) -> bool,
    ) -> Result<()> {
        self.logs_while(what, o, || true, sink)
    }

    /// `logs`, a follow ending as well once `go_on` says no (asked while
    /// nothing new comes: a server's client that went away).
    pub fn logs_while(
        &self,
        what: &str,
        o: &LogOptions,
        mut go_on: impl FnMut() -> bool,
        mut sink: impl FnMut(&LogEntry) -> bool,
    ) -> Result<()> {
        let v = self.container(what)?;
        if v.host_config.log_config.kind == "none" {
            return Err(EngineError::InvalidArgument(
                "configured logging driver does not support reading".into(),
            ));
        }
        let since = o
            .since
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
        let until = o
            .until
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
        let keep = |e: &LogEntry| {
            since.as_ref().is_none_or(|s| e.time.as_str() >= s.as_str())
                && until.as_ref().is_none_or(|u| e.time.as_str() < u.as_str())
        };
        let mut entries: Vec<LogEntry> = Vec::new();
        let files = Self::log_files(&v);
        let live = files.last().cloned().unwrap_or_default();
        for f in &files[..files.len().saturating_sub(1)] {
            if let Ok(data) = std::fs::read(f) {
                entries.extend(parse_log_lines(&data).into_iter().filter(|e| keep(e)));
            }
        }
        // The live file stays open while it is followed: a container
        // removed right after it exits (`run --rm`, docker-py's
        // `run(remove=True)`) takes its path away, not what it wrote.
        let mut cur = std::fs::File::open(&live).ok();
        let mut offset = 0u64;
        if let Some(f) = cur.as_mut() {
            let mut data = Vec::new();
            let _ = f.read_to_end(&mut data);
            let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            entries.extend(
                parse_log_lines(&data[..complete])
                    .into_iter()
                    .filter(|e| keep(e)),
            );
            offset = complete as u64;
        }
        if let Some(n) = o.tail {
            let skip = entries.len().saturating_sub(n);
            entries.drain(..skip);
        }
        for e in &entries {
            if !sink(e) {
                return Ok(());
            }
        }
        if !o.follow {
            return Ok(());
        }
        // Follow: read what the monitor appends until the container stops.
        let mut pending = Vec::new();
        loop {
            let running = self
                .container(v.id.as_str())
                .map(|c| c.running())
                .unwrap_or(false);
            if cur.is_none() {
                cur = std::fs::File::open(&live).ok();
                offset = 0;
            }
            let mut buf = Vec::new();
            if let Some(f) = cur.as_mut() {
                use std::io::Seek;
                if f.metadata().map(|m| m.len()).unwrap_or(0) < offset {
                    offset = 0; // truncated
                }
                let _ = f.seek(std::io::SeekFrom::Start(offset));
                let _ = f.read_to_end(&mut buf);
                offset += buf.len() as u64;
            }
            if !buf.is_empty() {
                pending.extend_from_slice(&buf);
                let complete = pending
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let lines: Vec<u8> = pending.drain(..complete).collect();
                for e in parse_log_lines(&lines).into_iter().filter(|e| keep(e)) {
                    if !sink(&e) {
                        return Ok(());
                    }
                }
                continue;
            }
            // Rotated: the path names a new file once the old one is read
            // to its end.
            if let Some(f) = cur.as_ref() {
                use std::os::unix::fs::MetadataExt;
                let same = match (f.metadata(), std::fs::metadata(&live)) {
                    (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                    (_, Err(_)) => true,
                    (Err(_), Ok(_)) => false,
                };
                if !same {
                    cur = None;
                    continue;
                }
            }
            if !running || !go_on() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `exec`: runs a command in a running container through an exec
    /// monitor (`berth-monitor --exec`), which holds the command's stdio:
    /// pipes, or a new pty with `tty`; the command never gets the caller's
    /// descriptors or terminal, and is not the caller's child. Returns the
    /// attachment to its streams (None with `detach`), whose last frame is
    /// the exit code.
    pub fn exec(
        &self,
        what: &str,
        mut spec: ExecSpec,
        o: ExecOptions,
    ) -> Result<Option<Attachment>> {
        let v = self.container(what)?;
        if !v.running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                v.id
            )));
        }
        // The command would join a frozen cgroup.
        self.wake(&v);
        let mut env = daemon_env(&v.config);
        for e in &spec.env {
            set_env(&mut env, e);
        }
        spec.env = with_term(process_env(&env), o.tty);
        if spec.user.is_empty() {
            spec.user = v.config.user.clone();
        }
        if spec.cwd.is_empty() {
            spec.cwd = if v.config.working_dir.is_empty() {
                "/".into()
            } else {
                v.config.working_dir.clone()
            };
        }
        // The container's own confinement, as its monitor runs it.
        let mon = read_monitor_config(&v.dir)?;
        spec.security = mon.spec.security.clone();
        if mon.spec.privileged {
            spec.security.capabilities = None;
        }
        let seccomp_filter = self.container_filter_path(&mon.spec)?;
        let exec_id = hex::encode(random_bytes());
        let socket = self
            .opts
            .run_root
            .join(format!("exec-{}.sock", &exec_id[..24]));
        let cfg = berth_runtime::monitor::ExecConfig {
            container_id: v.id.to_string(),
            exec_id: exec_id.clone(),
            pid: v.state.pid,
            cgroup_path: self.cgroup_rel(&v.id, &v.host_config),
            spec,
            tty: o.tty,
            open_stdin: o.stdin && !o.detach,
            attach_socket: (!o.detach).then(|| socket.clone()),
            seccomp_filter,
            monitor_cgroup: self.monitor_cgroup(),
            events: self.events_dir(),
            container_dir: v.dir.clone(),
        };
        // Docker's action words: the command after a colon, its arguments
        // joined by spaces after the first.
        let command = format!(
            "{} {}",
            cfg.spec.args.first().map(String::as_str).unwrap_or(""),
            cfg.spec.args.get(1..).unwrap_or(&[]).join(" ")
        );
        let exec_attr = [("execID", exec_id.clone())];
        self.emit_container(&v, &format!("exec_create: {command}"), &exec_attr);
        let exec_dir = v.dir.join("exec");
        std::fs::create_dir_all(&exec_dir).map_err(io_ctx("creating the exec directory"))?;
        let path = exec_dir.join(format!("{exec_id}.json"));
        let data =
            serde_json::to_vec(&cfg).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        // 0600: the command's environment may hold secrets; the exec
        // monitor removes the file as soon as it has read it.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_ctx("writing the exec config"))?;
            f.write_all(&data)
                .map_err(io_ctx("writing the exec config"))?;
        }
        let streams = AttachStreams {
            stdin: o.stdin,
            stdout: true,
            stderr: true,
        };
        let attach = (!o.detach).then_some((socket.as_path(), streams));
        let args = ["--exec".into(), path.clone().into_os_string()];
        self.emit_container(&v, &format!("exec_start: {command}"), &exec_attr);
        let res = self.launch_monitor(&args, attach);
        let _ = std::fs::remove_file(&path);
        match res {
            Ok((a, _pid)) => Ok(a),
            Err(MonitorFailure::Engine(e)) => Err(exec_start_failure(e)),
            Err(MonitorFailure::Exited) => Err(EngineError::Runtime {
                code: 125,
                message: "the exec monitor exited unexpectedly".into(),
            }),
        }
    }

    /// `top`: the container's processes, as `ps -ef` shows them.
    pub fn top(&self, what: &str, ps_args: &[String]) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let v = self.container(what)?;
        if !v.running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                v.id
            )));
        }
        let layout = cgroups::detect().map_err(|e| EngineError::Runtime {
            code: 125,
            message: e.to_string(),
        })?;
        let pids = Cgroup::new(&layout, &self.cgroup_rel(&v.id, &v.host_config)).pids();
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(io_ctx("running ps"))?;
        if !out.status.success() {
            return Err(EngineError::InvalidArgument(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header_line = lines.next().unwrap_or_default();
        let headers: Vec<String> = header_line.split_whitespace().map(str::to_string).collect();
        let pid_col = headers.iter().position(|h| h == "PID").ok_or_else(|| {
            EngineError::InvalidArgument("Couldn't find PID field in ps output".into())
        })?;
        let mut rows = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < headers.len() {
                continue;
            }
            let pid: i32 = fields[pid_col].parse().unwrap_or(-1);
            if pids.contains(&pid) {
                let mut row: Vec<String> = fields[..headers.len() - 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                row.push(fields[headers.len() - 1..].join(" "));
                rows.push(row);
            }
        }
        // dockerd records each `top` it answers.
        self.emit_container(&v, "top", &[]);
        Ok((headers, rows))
    }
}

/// The layers a container's root filesystem stands on, from the
/// monitor configuration in its directory `dir` (none if it is unreadable).
pub(crate) fn layers_in_dir(dir: &Path) -> Vec<berth_types::Digest> {
    let Ok(bytes) = std::fs::read(dir.join("monitor.json")) else {
        return Vec::new();
    };
    let Ok(cfg) = serde_json::from_slice::<MonitorConfig>(&bytes) else {
        return Vec::new();
    };
    cfg.spec
        .rootfs
        .lower
        .iter()
        .filter_map(|p| p.file_name())
        .filter_map(|n| berth_types::Digest::from_hex(&n.to_string_lossy()).ok())
        .collect()
}

/// The runtime state of the container whose directory is `dir`, reconciled.
pub(crate) fn load_state(dir: &Path) -> State {
    reconcile(
        State::load(&dir.join("state.json"))
            .ok()
            .flatten()
            .unwrap_or_default(),
    )
}

fn parse_log_lines(data: &[u8]) -> Vec<LogEntry> {
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// A state that says running but whose monitor is gone is an exited one:
/// the monitor's death took the container with it (parent-death signal).
fn reconcile(mut s: State) -> State {
    if matches!(s.status, Status::Running | Status::Restarting) && !monitor_alive(s.monitor_pid) {
        s.status = Status::Exited;
        s.pid = 0;
        if s.finished_at.is_empty() {
            s.finished_at = now_rfc3339();
        }
        if s.exit_code == 0 {
            s.exit_code = 137;
        }
    }
    s
}

/// Whether `pid` is a live berth monitor (its first argument says so).
pub fn monitor_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(c) => c
            .split(|&b| b == 0)
            .next()
            .map(|arg0| arg0.ends_with(b"berth-monitor"))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Whether another process holds the lock file at `path`.
enum LockProbe {
    /// No lock file: its directory is gone.
    Missing,
    /// Someone else holds it.
    Held,
    /// Nobody did: we hold it now, until the file drops.
    Taken(std::fs::File),
}

fn probe_lock(path: &Path) -> LockProbe {
    let Ok(f) = std::fs::File::open(path) else {
        return LockProbe::Missing;
    };
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => LockProbe::Taken(f),
        Err(_) => LockProbe::Held,
    }
}

impl Engine {
    /// Drops the image claims of creates that died before writing their
    /// row (the creator holds the container's lock while its claim exists,
    /// so a claim whose lock is free has no creator left), with their
    /// directories and the layers only they held.
    pub(crate) fn collect_stale_claims(&mut self) -> Result<()> {
        let claims = self.store.read().claims()?;
        let mut dropped = false;
        for claim in claims {
            let id = &claim.container_id;
            let dir = self.container_dir(id);
            let _lock = match probe_lock(&dir.join("lock")) {
                LockProbe::Held => continue,
                LockProbe::Taken(f) => Some(f),
                LockProbe::Missing => None,
            };
            // The create may have finished between the listing and the lock.
            if self.store.read().claim(id)?.is_none() {
                continue;
            }
            // Files first, the claim last.
            if self.store.read().container(id)?.is_none() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            self.store.transaction(|t| t.delete_claim(id))?;
            dropped = true;
        }
        if dropped {
            // A claim may have held the layers of an image forcibly removed.
            self.remove_unused_layers()?;
        }
        Ok(())
    }
}

/// Removes container directories whose creation never finished (no row, no
/// claim), skipping any that another process is creating right now.
pub(crate) fn collect_orphans(engine: &Engine) -> Result<()> {
    let dir = engine.opts.root.join("containers");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let claimed: std::collections::HashSet<ContainerId> = engine
        .store
        .read()
        .claims()?
        .into_iter()
        .map(|c| c.container_id)
        .collect();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(id) = ContainerId::parse(&name) else {
            continue;
        };
        if claimed.contains(&id) || engine.store.read().container(&id)?.is_some() {
            continue;
        }
        // A create holds the lock from just after making the directory:
        // only one older than a minute (the moment in between) whose lock is
        // free is an orphan.
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| {
                t.elapsed()
                    .map(|d| d > Duration::from_secs(60))
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        if old && !matches!(probe_lock(&e.path().join("lock")), LockProbe::Held) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

/// The container's `health.json` (written by its monitor and probes), for
/// a container whose healthcheck runs. One that is not running reads as
/// unhealthy, as Docker's — also when its monitor died without saying so.
fn load_health(
    dir: &Path,
    config: &ContainerConfig,
    state: &State,
) -> Option<berth_runtime::health::Health> {
    use berth_runtime::health;
    if !config.healthcheck.as_ref().is_some_and(|h| h.is_active()) {
        return None;
    }
    let mut h = health::Health::load(&dir.join("health.json"))
        .ok()
        .flatten()?;
    if state.status != Status::Running {
        h.status = health::UNHEALTHY.into();
    }
    Some(h)
}

/// A container's `monitor.json`.
fn read_monitor_config(dir: &Path) -> Result<MonitorConfig> {
    let b = std::fs::read(dir.join("monitor.json")).map_err(io_ctx("reading monitor.json"))?;
    serde_json::from_slice(&b).map_err(|e| EngineError::Runtime {
        code: 125,
        message: format!("parsing monitor.json: {e}"),
    })
}

/// Docker's check of a healthcheck's settings (the daemon's, at create).
pub fn validate_healthcheck(h: &berth_types::Healthcheck) -> Result<()> {
    const MIN: i64 = 1_000_000;
    for (name, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if v != 0 && v < MIN {
            return Err(EngineError::InvalidArgument(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(EngineError::InvalidArgument(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    Ok(())
}

/// The image's `SHELL` (Docker runs a `CMD-SHELL` healthcheck with it).
fn image_shell(image: &berth_store::ImageRow) -> Option<Vec<String>> {
    let cfg: berth_types::ImageConfig = serde_json::from_slice(&image.config).ok()?;
    let shell = cfg.config.extra.get("Shell")?;
    let shell: Vec<String> = serde_json::from_value(shell.clone()).ok()?;
    (!shell.is_empty()).then_some(shell)
}

/// What the monitor runs as the container's healthcheck: the test as
/// `exec` would run it (the container's environment, user, working
/// directory and confinement; never privileged), durations defaulted.
fn health_config(
    h: &berth_types::Healthcheck,
    config: &ContainerConfig,
    spec: &ContainerSpec,
    seccomp_filter: Option<PathBuf>,
    shell: Option<Vec<String>>,
) -> berth_runtime::health::HealthConfig {
    use berth_runtime::health as hc;
    let mut args: Vec<String> = Vec::new();
    if h.test.first().map(String::as_str) == Some("CMD-SHELL") {
        args.extend(shell.unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]));
    }
    args.extend(h.test.iter().skip(1).cloned());
    let ns = |v: i64, default: std::time::Duration| {
        if v > 0 {
            v as u64
        } else {
            default.as_nanos() as u64
        }
    };
    let mut security = spec.security.clone();
    if spec.privileged {
        security.capabilities = None;
    }
    hc::HealthConfig {
        exec: ExecSpec {
            args,
            env: spec.env.clone(),
            cwd: if config.working_dir.is_empty() {
                "/".into()
            } else {
                config.working_dir.clone()
            },
            user: config.user.clone(),
            privileged: false,
            security,
        },
        schedule: hc::HealthSchedule {
            interval_ns: ns(h.interval, hc::DEFAULT_INTERVAL),
            start_period_ns: h.start_period.max(0) as u64,
            start_interval_ns: ns(h.start_interval, hc::DEFAULT_START_INTERVAL),
        },
        timeout_ns: ns(h.timeout, hc::DEFAULT_TIMEOUT),
        retries: if h.retries > 0 {
            u32::try_from(h.retries).unwrap_or(u32::MAX)
        } else {
            hc::DEFAULT_RETRIES
        },
        seccomp_filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContainerLock, RemovedImage};

    /// An engine under `root` with a one-layer image tagged `t`.
    fn engine_with_image(root: &Path) -> Engine {
        let mut e = Engine::open(crate::Options::new(
            root.join("root"),
            root.join("run"),
            "berth-unit".into(),
        ))
        .unwrap();
        let tree = root.join("tree");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/true"), b"").unwrap();
        let mut tar = Vec::new();
        berth_layers::tarwriter::write_dir(&tree, &mut tar, &Default::default()).unwrap();
        e.import(std::io::Cursor::new(tar), Some("t"), "").unwrap();
        e
    }

    /// What a create leaves when killed after claiming `t`: the directory,
    /// its lock file, the claim; the lock stays held while the returned
    /// guard lives (a create still running).
    fn claim_t(e: &mut Engine, layout: bool) -> (ContainerId, ContainerLock) {
        let image = e.resolve_image("t").unwrap();
        let id = ContainerId::from_random(random_bytes());
        let dir = e.container_dir(&id);
        std::fs::create_dir(&dir).unwrap();
        let lock = e.lock_container(&id).unwrap();
        let claim = berth_store::ClaimRow {
            container_id: id.clone(),
            image_id: image.id.clone(),
            layers: image.layers.clone(),
        };
        e.store.transaction(|t| t.insert_claim(&claim)).unwrap();
        if layout {
            std::fs::create_dir(dir.join("upper")).unwrap();
        }
        (id, lock)
    }

    fn layer_count(e: &Engine) -> usize {
        std::fs::read_dir(e.layers_dir()).unwrap().count()
    }

    #[test]
    fn create_replaces_its_claim_with_the_row() {
        let root = tempfile::tempdir().unwrap();
        let mut e = engine_with_image(root.path());
        let o = CreateOptions {
            image: "t".into(),
            cmd: vec!["true".into()],
            ..Default::default()
        };
        let id = e.create(&o).unwrap();
        assert!(e.store.read().claims().unwrap().is_empty());
        assert!(e.store.read().container(&id).unwrap().is_some());
        assert!(e.container_dir(&id).join("monitor.json").exists());
    }

    #[test]
    fn a_create_in_flight_holds_its_image_and_layers() {
        let root = tempfile::tempdir().unwrap();
        let mut e = engine_with_image(root.path());
        let (id, lock) = claim_t(&mut e, true);
        let err = e.remove_image("t", false).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "container {} is using its referenced image",
                id.short()
            )),
            "{err}"
        );
        let pruned = e.prune_images(true).unwrap();
        assert!(pruned.removed.is_empty(), "{pruned:?}");
        e.collect_garbage().unwrap();
        assert!(e.container_dir(&id).exists(), "a live create's files went");
        // Forced, as for a stopped container: the image goes, its layers stay
        // for the container being created.
        let removed = e.remove_image("t", true).unwrap();
        assert!(matches!(removed.last(), Some(RemovedImage::Deleted(_))));
        assert_eq!(layer_count(&e), 1);
        // The create dies: its claim, files and the layers go at the next collection.
        drop(lock);
        e.collect_garbage().unwrap();
        assert!(e.store.read().claims().unwrap().is_empty());
        assert!(!e.container_dir(&id).exists());
        assert_eq!(layer_count(&e), 0);
        assert!(e.store.read().layers().unwrap().is_empty());
    }

    #[test]
    fn rmi_collects_the_claim_of_a_killed_create() {
        for (layout, dir_removed) in [(false, false), (true, false), (true, true)] {
            let root = tempfile::tempdir().unwrap();
            let mut e = engine_with_image(root.path());
            let (id, lock) = claim_t(&mut e, layout);
            drop(lock);
            if dir_removed {
                // Killed while cleaning up a failed create: files gone, claim left.
                std::fs::remove_dir_all(e.container_dir(&id)).unwrap();
            }
            let removed = e.remove_image("t", false).unwrap();
            assert!(matches!(removed.last(), Some(RemovedImage::Deleted(_))));
            assert!(e.store.read().claims().unwrap().is_empty());
            assert!(!e.container_dir(&id).exists());
            assert_eq!(layer_count(&e), 0);
        }
    }

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("kill"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10k"), Some(10 * 1024));
        assert_eq!(parse_size("1m"), Some(1024 * 1024));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn env_without_value_unsets() {
        let mut env = vec!["A=1".to_string(), "B=2".to_string()];
        set_env(&mut env, "A");
        assert_eq!(process_env(&env), vec!["B=2"]);
    }

    #[test]
    fn env_overrides_by_key() {
        let mut env = vec!["A=1".to_string(), "B=2".to_string()];
        set_env(&mut env, "A=3");
        assert_eq!(env, vec!["B=2", "A=3"]);
    }
}
