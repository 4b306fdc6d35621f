//! What the engine and a container's monitor share: the monitor's
//! configuration, the container's runtime state file and the attach
//! protocol. The monitor itself is the `berth-monitor` binary.
//!
//! Attach protocol (a unix stream socket per container, `attach.sock`):
//! the client sends one text line `attach stdin=0|1 stdout=0|1 stderr=0|1\n`,
//! then frames `[kind u8][len u32 BE][payload]` (kind 0 stdin data,
//! 1 stdin closed, 2 resize: rows u16 BE + cols u16 BE). The monitor
//! answers with Docker's stdcopy frames `[stream u8][0 0 0][len u32 BE]`
//! (1 stdout, 2 stderr; with a TTY everything is stream 1) and ends with a
//! frame of stream [`FRAME_EXIT`] whose payload is the exit code in decimal.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::ContainerSpec;

pub const FRAME_STDOUT: u8 = 1;
pub const FRAME_STDERR: u8 = 2;
pub const FRAME_EXIT: u8 = 3;
pub const INPUT_DATA: u8 = 0;
pub const INPUT_CLOSE: u8 = 1;
pub const INPUT_RESIZE: u8 = 2;

/// Written by the engine as `monitor.json` in the container's directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub id: String,
    /// The event log's directory (empty: record none).
    #[serde(default)]
    pub events: PathBuf,
    pub spec: ContainerSpec,
    /// `<dir>/state.json`
    pub state_path: PathBuf,
    pub log_path: PathBuf,
    /// `--log-driver none`: nothing is logged (no file is made).
    #[serde(default)]
    pub log_disabled: bool,
    /// Rotate the log before a write once it holds this many bytes (0 =
    /// never), as Docker's json-file driver counts.
    pub log_max_size: u64,
    /// Keep at most this many log files, the live one included.
    pub log_max_files: u32,
    /// What each log entry carries as `attrs` (the json-file driver's
    /// `labels`, `env` and `tag` options, rendered at create).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub log_attrs: std::collections::BTreeMap<String, String>,
    /// The `none` or `host` network a container on one of them is on (it
    /// has no endpoints in `network.json`): what its `network connect` and
    /// `disconnect` events name. Fixed at create: such a container can be
    /// connected to no other network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_network: Option<crate::events::NetworkRef>,
    pub attach_socket: PathBuf,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub restart_policy: String,
    pub restart_max: u32,
    /// Present when the user stopped the container: no restart then.
    pub stop_marker: PathBuf,
    /// The command that removes the container when it exits (`--rm`).
    pub remove_command: Vec<String>,
    /// The cgroup mount roots' relative path for this container.
    pub cgroup_path: String,
    /// The cgroup the monitor moves itself to once the container is placed
    /// (`<parent>/monitors`): never the caller's, so a monitor started from
    /// a service or a session outlives it.
    #[serde(default)]
    pub monitor_cgroup: String,
    /// When the monitor runs the container's healthcheck (None: it has
    /// none); the probe itself is `healthcheck.json` in the container's
    /// directory, which only the probe runner reads.
    #[serde(default)]
    pub health: Option<crate::health::HealthSchedule>,
    /// The idle mode (`--idle-timeout`): None, never idle.
    #[serde(default)]
    pub idle: Option<IdleConfig>,
}

/// When a container's monitor freezes it for want of activity, and what
/// it does then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleConfig {
    /// No CPU used and no packet received for this long: idle.
    pub timeout_ms: u64,
    /// Push out its reclaimable memory once frozen.
    #[serde(default)]
    pub reclaim: bool,
}

/// The file in a container's directory that says it is idle (frozen by its
/// monitor, not paused by a user), holding the time it became so.
pub const IDLE_MARKER: &str = "idle";

/// What an exec monitor (`berth-monitor --exec FILE`) runs: written by the
/// engine, read (and removed) by the monitor.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExecConfig {
    pub container_id: String,
    pub exec_id: String,
    /// The container's first process, whose namespaces the command enters.
    pub pid: i32,
    /// The container's cgroup: the command runs there, and `pid` must be in it.
    pub cgroup_path: String,
    pub spec: crate::process::ExecSpec,
    pub tty: bool,
    pub open_stdin: bool,
    /// Where clients attach; None for a detached exec (output is dropped).
    pub attach_socket: Option<PathBuf>,
    /// The container's compiled seccomp filter (None: unconfined).
    pub seccomp_filter: Option<PathBuf>,
    /// The cgroup the monitor moves itself to (see [`MonitorConfig::monitor_cgroup`]).
    #[serde(default)]
    pub monitor_cgroup: String,
    /// The event log's directory (empty: record none) and the container's
    /// directory (its event attributes), for `exec_die`.
    #[serde(default)]
    pub events: PathBuf,
    #[serde(default)]
    pub container_dir: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Restarting,
    Exited,
}

/// The container's runtime state, written by its monitor as `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub monitor_pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub restart_count: u32,
}

impl State {
    pub fn load(path: &Path) -> io::Result<Option<State>> {
        load_json(path)
    }

    /// Writes atomically: temp file, rename. Not fsynced: after a power
    /// loss a missing or old state reads as exited, which it then is.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        save_json(self, path)
    }
}

/// A JSON state file (`state.json`, `health.json`); None when it is missing.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a JSON state file atomically: temp file beside it, rename.
pub fn save_json<T: Serialize>(value: &T, path: &Path) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let data =
        serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&data)?;
    std::fs::rename(&tmp, path)
}

/// Writes one output frame (stdcopy layout).
pub fn write_frame(w: &mut impl Write, stream: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut hdr = [0u8; 8];
    hdr[0] = stream;
    hdr[4..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&hdr)?;
    w.write_all(payload)
}

/// Reads one output frame; None at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut hdr = [0u8; 8];
    match r.read_exact(&mut hdr) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some((hdr[0], buf)))
}

/// Writes one input frame (client to monitor).
pub fn write_input(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut hdr = [0u8; 5];
    hdr[0] = kind;
    hdr[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&hdr)?;
    w.write_all(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, FRAME_STDERR, b"hi").unwrap();
        write_frame(&mut buf, FRAME_EXIT, b"3").unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((FRAME_STDERR, b"hi".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((FRAME_EXIT, b"3".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    #[test]
    fn state_saves_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        assert_eq!(State::load(&p).unwrap(), None);
        let s = State {
            status: Status::Running,
            pid: 42,
            ..Default::default()
        };
        s.save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), Some(s));
    }
}
