//! Healthchecks (Docker's `HEALTHCHECK` / `--health-*`): what the engine
//! hands a container's monitor, the state file the engine reads back
//! (`health.json`, Docker's `State.Health`), and the probe.
//!
//! The monitor keeps only a deadline while idle: its poll loop sleeps until
//! the next probe is due, then forks a probe runner ([`spawn_probe`]) and
//! goes on relaying output. The runner (a copy of the monitor, so it costs
//! nothing to start) runs the command as `exec` does, collects its output,
//! applies Docker's rules to `health.json` and exits with the new status,
//! which tells the monitor when the next probe is due. Never more than one
//! probe per container runs at a time; the interval counts from the end of
//! one probe to the start of the next, as Docker's.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::process::{self, ChildStdio, ExecSpec};
use crate::sys::{self, Forked};

/// Docker's defaults (moby `daemon/health.go`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;
/// Output kept of one probe; more is cut and marked with "...".
pub const MAX_OUTPUT: usize = 4096;
/// Results kept in the log.
pub const MAX_LOG: usize = 5;

/// The container directory's files: the probe's configuration (written by
/// the engine at create, read by each probe runner) and the state.
pub const CONFIG_FILE: &str = "healthcheck.json";
pub const STATE_FILE: &str = "health.json";

/// When probes run: all that a container's monitor keeps of its
/// healthcheck (in `monitor.json`; no heap). Durations are defaulted.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct HealthSchedule {
    pub interval_ns: u64,
    pub start_period_ns: u64,
    pub start_interval_ns: u64,
}

impl HealthSchedule {
    fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }
    fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period_ns)
    }

    /// How long to wait before the next probe, `elapsed` after the
    /// container started (Docker ≥ 25): the interval, but while the start
    /// period lasts the start interval when the container is still
    /// starting, and never past the end of the start period.
    pub fn next_wait(&self, elapsed: Duration, starting: bool) -> Duration {
        let interval = self.interval();
        let period = self.start_period();
        if elapsed >= period {
            return interval;
        }
        let remaining = period - elapsed;
        if remaining < interval {
            return remaining;
        }
        if starting {
            Duration::from_nanos(self.start_interval_ns)
        } else {
            interval
        }
    }
}

/// What a probe runner needs (`healthcheck.json` in the container's
/// directory, written by the engine; the monitor itself never reads it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HealthConfig {
    /// The probe as `exec` runs it: the command (a `CMD-SHELL` test already
    /// behind the shell), the container's environment, user, working
    /// directory and confinement.
    pub exec: ExecSpec,
    pub schedule: HealthSchedule,
    pub timeout_ns: u64,
    pub retries: u32,
    /// The container's compiled seccomp filter (None: unconfined).
    pub seccomp_filter: Option<PathBuf>,
}

impl HealthConfig {
    pub fn load(dir: &Path) -> io::Result<HealthConfig> {
        let b = std::fs::read(dir.join(CONFIG_FILE))?;
        serde_json::from_slice(&b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Written once, at create (0600: the environment may hold secrets).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let data =
            serde_json::to_vec(self).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(CONFIG_FILE))?;
        f.write_all(&data)
    }
}

/// Docker's `State.Health`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

/// One probe, as Docker's `HealthcheckResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

impl Health {
    pub fn load(path: &Path) -> io::Result<Option<Health>> {
        crate::monitor::load_json(path)
    }

    /// Writes atomically (temp file, rename): readers see one state or the other.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        crate::monitor::save_json(self, path)
    }

    /// Docker's rules for one result: a success makes the container
    /// healthy; a failure counts towards `retries` — except while it is
    /// still starting and the probe began within the start period.
    pub fn record(
        &mut self,
        result: HealthResult,
        retries: u32,
        probe_began_after: Duration,
        start_period: Duration,
    ) {
        if self.log.len() >= MAX_LOG {
            self.log.drain(..self.log.len() + 1 - MAX_LOG);
        }
        let ok = result.exit_code == 0;
        self.log.push(result);
        if ok {
            self.failing_streak = 0;
            self.status = HEALTHY.into();
            return;
        }
        if self.status == STARTING && probe_began_after < start_period {
            return;
        }
        self.failing_streak += 1;
        if self.failing_streak >= retries.max(1) {
            self.status = UNHEALTHY.into();
        }
    }

    /// The monitor's exit code for a status (the runner tells it so).
    fn code(&self) -> i32 {
        match self.status.as_str() {
            HEALTHY => 1,
            UNHEALTHY => 2,
            _ => 0,
        }
    }
}

/// A (re)started container: `starting`, no failures, the log kept.
pub fn reset_for_start(dir: &Path) -> io::Result<()> {
    let path = &dir.join(STATE_FILE);
    let mut h = Health::load(path).ok().flatten().unwrap_or_default();
    h.status = STARTING.into();
    h.failing_streak = 0;
    h.save(path)
}

/// A container that stopped is `unhealthy` until it runs again, as Docker's.
pub fn mark_stopped(dir: &Path) -> io::Result<()> {
    let path = &dir.join(STATE_FILE);
    let Some(mut h) = Health::load(path).ok().flatten() else {
        return Ok(());
    };
    h.status = UNHEALTHY.into();
    h.save(path)
}

/// A probe runner in flight.
pub struct Probe {
    pid: i32,
    pidfd: OwnedFd,
}

impl Probe {
    /// Readable when the runner has exited.
    pub fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    /// Reaps the runner; whether the container is still `starting`.
    pub fn finish(self) -> bool {
        let status = sys::waitpid_blocking(self.pid).unwrap_or(0);
        sys::exit_code_of(status) == 0
    }

    /// Ends a runner whose container has stopped.
    pub fn kill(self) {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        let _ = sys::waitpid_blocking(self.pid);
    }
}

/// Records a container event (an action and attributes beside the
/// container's own).
pub type Emit<'a> = &'a dyn Fn(&str, &[(&str, String)]);

/// Forks a probe runner for the container in `dir` whose first process is
/// `pid`, in the cgroup `cgroup_path` (relative, as `exec_in` checks it);
/// `started` is when the container started. `place` puts a process into
/// the container's cgroup. The runner records the events dockerd records
/// for a probe with `emit`: `exec_create: CMD`, `exec_start: CMD` and
/// `exec_die` under a new exec ID, then `health_status: STATUS` when the
/// status changed. The caller must be single-threaded.
pub fn spawn_probe(
    dir: &Path,
    pid: i32,
    cgroup_path: &str,
    started: Instant,
    now: fn() -> String,
    place: &dyn Fn(i32) -> Result<(), String>,
    emit: Emit,
) -> io::Result<Probe> {
    let began_after = started.elapsed();
    match sys::fork()? {
        Forked::Child => {
            // Nothing of the monitor's (client sockets, the pty master, the
            // listener) stays open here, and the runner dies with it.
            sys::set_pdeathsig(libc::SIGKILL);
            sys::close_fds_from(3);
            let state_path = dir.join(STATE_FILE);
            let mut h = Health::load(&state_path)
                .ok()
                .flatten()
                .unwrap_or_else(|| Health {
                    status: STARTING.into(),
                    ..Health::default()
                });
            let before = h.status.clone();
            let (result, retries, period) = match HealthConfig::load(dir) {
                Ok(cfg) => {
                    let exec_id = exec_id();
                    let text = probe_text(&cfg.exec.args);
                    let id = [("execID", exec_id.clone())];
                    emit(&format!("exec_create: {text}"), &id);
                    emit(&format!("exec_start: {text}"), &id);
                    let r = run_probe(&cfg, pid, cgroup_path, now, place);
                    // A probe past its timeout was killed.
                    let code = if r.exit_code == -1 { 137 } else { r.exit_code };
                    emit(
                        "exec_die",
                        &[("execID", exec_id), ("exitCode", code.to_string())],
                    );
                    (r, cfg.retries, cfg.schedule.start_period())
                }
                Err(e) => {
                    let at = now();
                    let r = HealthResult {
                        start: at.clone(),
                        end: at,
                        exit_code: -1,
                        output: format!("reading {CONFIG_FILE}: {e}"),
                    };
                    (r, DEFAULT_RETRIES, Duration::ZERO)
                }
            };
            h.record(result, retries, began_after, period);
            let _ = h.save(&state_path);
            if h.status != before {
                emit(&format!("health_status: {}", h.status), &[]);
            }
            sys::exit_now(h.code())
        }
        Forked::Parent(child) => {
            let pidfd = rustix::process::Pid::from_raw(child)
                .ok_or_else(|| io::Error::other("fork returned a bad pid"))
                .and_then(|p| {
                    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                        .map_err(io::Error::from)
                });
            match pidfd {
                Ok(pidfd) => Ok(Probe { pid: child, pidfd }),
                Err(e) => {
                    let _ = sys::kill(child, libc::SIGKILL);
                    let _ = sys::waitpid_blocking(child);
                    Err(e)
                }
            }
        }
    }
}

/// A probe's command as dockerd's exec events show it: the program, a
/// space, the arguments joined by spaces (`true ` for a lone `true`).
fn probe_text(args: &[String]) -> String {
    match args.split_first() {
        Some((program, rest)) => format!("{program} {}", rest.join(" ")),
        None => " ".into(),
    }
}

/// A new exec ID: 32 random bytes in hex, as Docker's (the time and the
/// process ID if the kernel has no randomness to give).
fn exec_id() -> String {
    let mut b = [0u8; 32];
    if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).ok() != Some(32) {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs the probe once and reports it as Docker does: the exit code and
/// the first 4 KiB of stdout and stderr together; a probe that outlives
/// the timeout is killed and reported as -1.
fn run_probe(
    cfg: &HealthConfig,
    pid: i32,
    cgroup_path: &str,
    now: fn() -> String,
    place: &dyn Fn(i32) -> Result<(), String>,
) -> HealthResult {
    let start = now();
    let failed = |code: i32, output: String| HealthResult {
        start: start.clone(),
        end: now(),
        exit_code: code,
        output,
    };
    let filters = match &cfg.seccomp_filter {
        Some(path) => match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                crate::seccomp::CompiledFilters::from_bytes(&b).map_err(|e| e.to_string())
            }) {
            Ok(f) => Some(f),
            Err(e) => return failed(-1, format!("seccomp: {e}")),
        },
        None => None,
    };
    let pipes = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
    let null = File::open("/dev/null");
    let ((out_r, out_w), null) = match (pipes, null) {
        (Ok(p), Ok(n)) => (p, n),
        (Err(e), _) => return failed(-1, format!("pipe: {e}")),
        (_, Err(e)) => return failed(-1, format!("/dev/null: {e}")),
    };
    let err_w = match out_w.try_clone() {
        Ok(w) => w,
        Err(e) => return failed(-1, format!("pipe: {e}")),
    };
    let stdio = ChildStdio {
        stdin: null.into(),
        stdout: out_w,
        stderr: err_w,
        tty_path: None,
    };
    let waiter =
        match process::exec_in(pid, cgroup_path, &cfg.exec, stdio, filters.as_ref(), || {
            place(std::process::id() as i32)
        }) {
            Ok(w) => w,
            Err(e) => return failed(e.exit_code(), e.to_string()),
        };
    drop(filters);
    let mut out = Output::default();
    let deadline = Instant::now() + Duration::from_nanos(cfg.timeout_ns);
    let code = collect(waiter, File::from(out_r), &mut out, deadline);
    match code {
        Some(code) => HealthResult {
            start,
            end: now(),
            exit_code: code,
            output: out.text(),
        },
        None => {
            let text = out.text();
            let took = go_duration(cfg.timeout_ns);
            HealthResult {
                start,
                end: now(),
                exit_code: -1,
                output: if text.is_empty() {
                    format!("Health check exceeded timeout ({took})")
                } else {
                    format!("Health check exceeded timeout ({took}): {text}")
                },
            }
        }
    }
}

/// Reads the probe's output until its waiter exits (Some(exit code)) or
/// the deadline passes (None: the probe and its waiter are killed).
fn collect(waiter: i32, mut out_r: File, out: &mut Output, deadline: Instant) -> Option<i32> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let pidfd = rustix::process::Pid::from_raw(waiter)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let mut buf = [0u8; 1024];
    let mut open = true;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill_probe(waiter);
            return None;
        }
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = Vec::with_capacity(2);
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        if open {
            fds.push(PollFd::new(&out_r, PollFlags::IN));
        }
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                kill_probe(waiter);
                return None;
            }
        }
        let exited = pidfd.is_some() && !fds[0].revents().is_empty();
        let readable = open && !fds[fds.len() - 1].revents().is_empty();
        drop(fds);
        if readable {
            match out_r.read(&mut buf) {
                Ok(0) | Err(_) => open = false,
                Ok(n) => out.push(&buf[..n]),
            }
        }
        let done = if pidfd.is_none() {
            sys::waitpid_nohang(waiter)
        } else if exited {
            sys::waitpid_blocking(waiter).ok().map(|s| (waiter, s))
        } else {
            None
        };
        if let Some((_, status)) = done {
            // What the command wrote before it exited; a background child
            // that keeps the pipe open is not waited for.
            let _ = rustix::fs::fcntl_setfl(out_r.as_fd(), rustix::fs::OFlags::NONBLOCK);
            while open {
                match out_r.read(&mut buf) {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => out.push(&buf[..n]),
                }
            }
            return Some(sys::exit_code_of(status));
        }
        if !open && pidfd.is_none() {
            // No pidfd and no output left to wait on: poll the waiter.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Kills a timed-out probe: the command (the waiter's child, inside the
/// container) and then the waiter, which is reaped.
fn kill_probe(waiter: i32) {
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{waiter}/task/{waiter}/children"))
    {
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
        {
            let _ = sys::kill(c, libc::SIGKILL);
        }
    }
    let _ = sys::kill(waiter, libc::SIGKILL);
    let _ = sys::waitpid_blocking(waiter);
}

/// Docker's `limitedBuffer`: the first [`MAX_OUTPUT`] bytes, "..." when
/// more came.
#[derive(Default)]
struct Output {
    buf: Vec<u8>,
    truncated: bool,
}

impl Output {
    fn push(&mut self, data: &[u8]) {
        let keep = MAX_OUTPUT.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
        }
    }
    fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

/// Go's `time.Duration.String()` for a non-negative duration.
pub fn go_duration(ns: u64) -> String {
    fn frac(v: u64, unit: u64) -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.to_string().len() - 1;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reads_as_dockerd_names_its_exec() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            probe_text(&args(&["/bin/sh", "-c", "test -e /x"])),
            "/bin/sh -c test -e /x"
        );
        // dockerd's "exec_create: true " for `["CMD", "true"]`
        assert_eq!(probe_text(&args(&["true"])), "true ");
        assert_eq!(probe_text(&[]), " ");
    }

    #[test]
    fn exec_ids_are_new_and_docker_shaped() {
        let (a, b) = (exec_id(), exec_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 64);
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
    }

    fn result(code: i32) -> HealthResult {
        HealthResult {
            exit_code: code,
            ..HealthResult::default()
        }
    }

    fn starting() -> Health {
        Health {
            status: STARTING.into(),
            ..Health::default()
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500), "500ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(1_000_000_000), "1s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_661_000_000_001), "1h1m1.000000001s");
    }

    #[test]
    fn failures_count_after_the_start_period_only() {
        let mut h = starting();
        let period = Duration::from_secs(2);
        h.record(result(1), 2, Duration::from_secs(1), period);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        h.record(result(1), 2, Duration::from_secs(3), period);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 1));
        h.record(result(-1), 2, Duration::from_secs(4), period);
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 2));
        h.record(result(0), 2, Duration::from_secs(5), period);
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
        // Healthy: the start period no longer shields failures.
        h.record(
            result(1),
            2,
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 1));
    }

    #[test]
    fn the_log_keeps_the_last_five() {
        let mut h = starting();
        for code in 0..8 {
            h.record(result(code), 3, Duration::ZERO, Duration::ZERO);
        }
        let codes: Vec<i32> = h.log.iter().map(|r| r.exit_code).collect();
        assert_eq!(codes, vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn output_is_cut_at_4096_bytes() {
        let mut o = Output::default();
        o.push(&[b'y'; 4000]);
        o.push(&[b'y'; 200]);
        assert_eq!(o.text().len(), 4099);
        assert!(o.text().ends_with("y..."));
        let mut o = Output::default();
        o.push(b"ok\n");
        assert_eq!(o.text(), "ok\n");
    }

    #[test]
    fn waits_follow_the_start_period() {
        let cfg = HealthSchedule {
            interval_ns: 60_000_000_000,
            start_period_ns: 30_000_000_000,
            start_interval_ns: 5_000_000_000,
        };
        let s = Duration::from_secs;
        // The rest of the start period is shorter than the interval.
        assert_eq!(cfg.next_wait(s(0), true), s(30));
        assert_eq!(cfg.next_wait(s(28), true), s(2));
        assert_eq!(cfg.next_wait(s(31), true), s(60));
        let short = HealthSchedule {
            interval_ns: 1_000_000_000,
            start_period_ns: 60_000_000_000,
            start_interval_ns: 5_000_000_000,
        };
        // Within a long start period: the start interval while starting.
        assert_eq!(short.next_wait(s(1), true), s(5));
        assert_eq!(short.next_wait(s(1), false), s(1));
        assert_eq!(short.next_wait(s(58), true), s(5));
        assert_eq!(
            short.next_wait(Duration::from_millis(59_500), true),
            Duration::from_millis(500)
        );
        assert_eq!(short.next_wait(s(60), true), s(1));
    }
}
