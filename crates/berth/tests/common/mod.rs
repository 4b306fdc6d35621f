//! The integration-test harness shared by every test file in `crates/berth/tests/`.
//!
//! Each test drives the real `berth` binary (black box, as ripgrep's tests drive `rg`)
//! through a [`TestEnv`]: its own `--root`, `--run-root` and cgroup parent, so tests run
//! in parallel without seeing each other (DESIGN.md invariant 5). Helpers assert exit
//! codes and hand back output; [`poll`] waits for a condition with a deadline instead
//! of sleeping. Dropping a `TestEnv` removes its containers, mounts and cgroups.
//!
//! Use from a test file with `mod common; use common::*;`. Every test binary uses a
//! subset of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

pub mod registry;
pub mod serve;

/// The image name [`TestEnv::with_busybox`] imports the busybox rootfs as.
pub const BB: &str = "bb";

/// A proxy nothing listens on: where the tests' non-loopback requests go.
pub const CLOSED_PROXY: &str = "http://127.0.0.1:9";

/// How long one `berth` command may take before the harness kills it and fails the test.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a command's stdout/stderr may stay open after `berth` itself has exited.
/// A process that outlives the command (a container monitor) must not keep the
/// caller's pipes, or `$(berth run -d ...)` in a shell would hang.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// The berth binary under test.
pub fn berth_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// The repository's root directory (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The busybox rootfs tarball made by `scripts/mkbusybox.sh`.
///
/// Built once per test process and cached under `CARGO_TARGET_TMPDIR`, keyed by the
/// script's text and the busybox binary, behind a file lock so that test binaries
/// running at the same time do not race.
pub fn busybox_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(build_busybox_tar).clone()
}

fn build_busybox_tar() -> PathBuf {
    let script = repo_root().join("scripts").join("mkbusybox.sh");
    let script_text =
        fs::read(&script).unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
    let busybox =
        std::env::var_os("BUSYBOX").map_or_else(|| PathBuf::from("/bin/busybox"), PathBuf::from);
    let meta = fs::metadata(&busybox).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (apt-get install busybox-static)",
            busybox.display()
        )
    });

    let mut hasher = DefaultHasher::new();
    script_text.hash(&mut hasher);
    busybox.hash(&mut hasher);
    meta.len().hash(&mut hasher);
    meta.modified().ok().hash(&mut hasher);
    let key = hasher.finish();

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("busybox");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let tar = dir.join(format!("busybox-{key:016x}.tar"));

    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    // The script writes a temporary file and renames it, so an existing tar is complete.
    if !tar.is_file() {
        let out = Command::new("bash")
            .arg(&script)
            .arg(&tar)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    drop(lock);
    tar
}

/// Calls `f` every 10 ms until it returns `Some`, and returns that value.
/// Panics naming `what` when `deadline` passes first.
pub fn poll<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A name no other test, test process or earlier run uses.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{n}-{nanos:08x}", std::process::id())
}

/// One test's berth installation: its own state root, runtime root and cgroup parent.
pub struct TestEnv {
    pub root: TempDir,
    pub run_root: TempDir,
    /// `berth-test-<unique>`: a cgroup parent no other test shares.
    pub cgroup_parent: String,
}

thread_local! {
    static IN_OWN_NETNS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Moves this test's thread (and so every process it starts from now on)
/// into a network namespace of its own, with loopback up, once per thread:
/// bridges, veths, NAT and all traffic of the test stay there, never in
/// the host's namespace.
pub fn enter_own_netns() {
    if IN_OWN_NETNS.with(|c| c.get()) {
        return;
    }
    // SAFETY: unshare(2) with CLONE_NEWNET changes only the calling thread's
    // network namespace (each libtest test runs on its own thread); no
    // memory is involved.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap_or_else(|e| panic!("ip: {e}"));
    assert!(st.success(), "ip link set lo up failed");
    IN_OWN_NETNS.with(|c| c.set(true));
}

/// An address of this test's network namespace that is not loopback (a
/// veth pair's end, `10.213.0.1/24`), as a host's own address is.
pub fn netns_address() -> &'static str {
    enter_own_netns();
    let exists = Command::new("ip")
        .args(["addr", "show", "dev", "bthost0"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        for args in [
            // (a veth pair: the kernel here has no dummy interfaces)
            &[
                "link", "add", "bthost0", "type", "veth", "peer", "name", "bthost1",
            ][..],
            &["link", "set", "bthost1", "up"],
            &["addr", "add", "10.213.0.1/24", "dev", "bthost0"],
            &["link", "set", "bthost0", "up"],
        ] {
            let st = Command::new("ip")
                .args(args)
                .status()
                .unwrap_or_else(|e| panic!("ip: {e}"));
            assert!(st.success(), "ip {args:?} failed");
        }
    }
    "10.213.0.1"
}

impl TestEnv {
    /// An empty berth installation (no images), in the test's own network
    /// namespace (see [`enter_own_netns`]).
    pub fn new() -> TestEnv {
        enter_own_netns();
        let root = tempfile::Builder::new()
            .prefix("berth-test-root.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot make a temp root: {e}"));
        let run_root = tempfile::Builder::new()
            .prefix("berth-test-run.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot make a temp run root: {e}"));
        TestEnv {
            root,
            run_root,
            cgroup_parent: format!("berth-test-{}", unique_suffix()),
        }
    }

    /// A berth installation with the busybox rootfs imported as `bb` ([`BB`]).
    pub fn with_busybox() -> TestEnv {
        let env = TestEnv::new();
        let tar = busybox_tar();
        let tar = tar
            .to_str()
            .unwrap_or_else(|| panic!("non-UTF-8 path {}", tar.display()));
        env.ok(&["import", tar, BB]);
        env
    }

    /// `berth --root R --run-root RR --cgroup-parent P ARGS...`, stdin from /dev/null.
    /// Change stdin/stdout/stderr on the returned command as the test needs.
    pub fn berth(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("--root")
            .arg(self.root.path())
            .arg("--run-root")
            .arg(self.run_root.path())
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .args(args)
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUN_ROOT")
            .env_remove("BERTH_CGROUP_PARENT")
            // Tests speak only to 127.0.0.1: a pull from any other registry
            // (Docker Hub, for an image a test does not have) goes to a
            // closed proxy on loopback and fails there.
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("https_proxy")
            .env_remove("http_proxy")
            .env_remove("no_proxy")
            .env("HTTPS_PROXY", CLOSED_PROXY)
            .env("HTTP_PROXY", CLOSED_PROXY)
            .env("NO_PROXY", "127.0.0.1,localhost")
            // Never the host's /etc/berth: no settings, no certificates
            // unless a test gives its own.
            .env("BERTH_CONFIG", "/dev/null")
            .env("BERTH_CERTS_D", self.root.path().join("no-certs.d"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `berth ARGS...` to completion (at most [`COMMAND_TIMEOUT`]) and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        output_with_timeout(self.berth(args), COMMAND_TIMEOUT)
    }

    /// Runs `berth ARGS...`, asserts exit code 0, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            panic!("{}", describe("berth exited unsuccessfully", args, &out));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `berth ARGS...`, asserts exit code `code`, returns (stdout, stderr).
    pub fn fails(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run(args);
        if out.status.code() != Some(code) {
            panic!(
                "{}",
                describe(&format!("expected exit code {code}"), args, &out)
            );
        }
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `berth inspect NAME`'s object (the first element of its JSON array).
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        self.inspect_args(&["inspect", name], name)
    }

    /// `berth image inspect NAME`: an image even when a container's ID
    /// happens to start with NAME (`inspect bb` would return that
    /// container, as Docker's does).
    pub fn inspect_image(&self, name: &str) -> serde_json::Value {
        self.inspect_args(&["image", "inspect", name], name)
    }

    fn inspect_args(&self, args: &[&str], name: &str) -> serde_json::Value {
        let stdout = self.ok(args);
        let v: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("berth inspect {name}: not JSON ({e}):\n{stdout}"));
        match v {
            serde_json::Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            other => panic!("berth inspect {name}: expected a non-empty array, got {other}"),
        }
    }

    /// The host PID of a running container's main process (`State.Pid`).
    pub fn container_pid(&self, name: &str) -> u32 {
        let v = self.inspect(name);
        v["State"]["Pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 0)
            .unwrap_or_else(|| panic!("{name}: no State.Pid in {v}"))
    }

    /// The paths of this environment's roots, as they appear in mountinfo and cmdlines.
    fn roots(&self) -> [&Path; 2] {
        [self.root.path(), self.run_root.path()]
    }

    /// Best-effort `berth rm -f` of every container `berth ps -aq` lists.
    fn remove_containers(&self) {
        let Ok(out) = try_output_with_timeout(self.berth(&["ps", "-aq"]), Duration::from_secs(30))
        else {
            return;
        };
        if !out.status.success() {
            return;
        }
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        for id in ids {
            let _ = quiet_status(self.berth(&["rm", "-f", &id]), Duration::from_secs(30));
        }
    }

    /// SIGKILLs processes that mention one of this environment's roots in their command
    /// line or environment (monitors left behind by a failed test).
    fn kill_leftover_processes(&self) {
        let needles: Vec<Vec<u8>> = self
            .roots()
            .iter()
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
            .collect();
        let me = std::process::id();
        let Ok(entries) = fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let mentions = ["cmdline", "environ"].iter().any(|f| {
                fs::read(entry.path().join(f))
                    .map(|data| needles.iter().any(|n| contains(&data, n)))
                    .unwrap_or(false)
            });
            if mentions {
                kill9(pid);
            }
        }
    }

    /// Lazily unmounts everything still mounted under the roots, deepest first.
    fn unmount_all(&self) {
        let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let roots = self.roots();
        let mut points: Vec<PathBuf> = info
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(|p| PathBuf::from(unescape_mountinfo(p)))
            .filter(|p| roots.iter().any(|r| p.starts_with(r)))
            .collect();
        // Deepest first; a path mounted over twice appears twice and is unmounted twice.
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in points {
            let mut umount = Command::new("umount");
            umount.arg("-l").arg(&p);
            let _ = quiet_status(umount, Duration::from_secs(10));
        }
    }

    /// Removes the cgroup parent (and any child cgroups) in every hierarchy, whether the
    /// engine put it at a hierarchy's root or under this process's own cgroup.
    fn remove_cgroups(&self) {
        let mut own_paths: BTreeSet<String> = BTreeSet::new();
        own_paths.insert("/".to_owned());
        if let Ok(text) = fs::read_to_string("/proc/self/cgroup") {
            for line in text.lines() {
                if let Some(p) = line.splitn(3, ':').nth(2) {
                    own_paths.insert(p.to_owned());
                }
            }
        }
        let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let mut dirs = Vec::new();
        // /sys/fs/cgroup itself is the unified mount on a pure v2 host.
        dirs.push(PathBuf::from("/sys/fs/cgroup"));
        dirs.extend(
            hierarchies
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path()),
        );
        for h in dirs {
            for own in &own_paths {
                let dir = h
                    .join(own.trim_start_matches('/'))
                    .join(&self.cgroup_parent);
                if dir.is_dir() {
                    remove_cgroup_tree(&dir);
                }
            }
        }
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl Drop for TestEnv {
    /// Best effort, never panics: containers, leftover processes, mounts, cgroups; then
    /// the temp dirs themselves are removed by their own `Drop`.
    fn drop(&mut self) {
        self.remove_containers();
        self.kill_leftover_processes();
        self.unmount_all();
        self.remove_cgroups();
    }
}

/// Post-order removal of a cgroup directory: kill what is inside, rmdir children first.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let procs = dir.join("cgroup.procs");
    let pids = |procs: &Path| -> Vec<u32> {
        fs::read_to_string(procs)
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let leftovers = pids(&procs);
    if !leftovers.is_empty() {
        for pid in leftovers {
            kill9(pid);
        }
        let start = Instant::now();
        while !pids(&procs).is_empty() && start.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Runs a command with no stdio, killing it after `timeout`; `None` if it could not
/// run or timed out. For cleanup, where output does not matter and nothing may hang.
fn quiet_status(mut cmd: Command, timeout: Duration) -> Option<ExitStatus> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().ok()?;
    let status = wait_deadline(&mut child, Instant::now() + timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

fn kill9(pid: u32) {
    let _ = Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A panic message with the command, its status and everything it printed.
fn describe(what: &str, args: &[&str], out: &Output) -> String {
    format!(
        "{what}: berth {}\n--- status: {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs a command (e.g. one from [`TestEnv::berth`] that a test has customised) to
/// completion like `Command::output`, but panics when it runs longer than `timeout`
/// (after killing it) or leaves its stdout/stderr held open by a process it left behind.
pub fn output_with_timeout(cmd: Command, timeout: Duration) -> Output {
    let shown = show_command(&cmd);
    match try_output_with_timeout(cmd, timeout) {
        Ok(out) => out,
        Err(e) => panic!("{shown}: {e}"),
    }
}

fn show_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Like `Command::output`, but kills the child after `timeout`, and fails when the
/// child's stdout/stderr stay open (held by a descendant) after it has exited.
/// Stdout and stderr are always captured; stdin is left as the command set it.
fn try_output_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    spawn_reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        true,
        tx.clone(),
    );
    spawn_reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        false,
        tx,
    );

    let start = Instant::now();
    let status = wait_deadline(&mut child, start + timeout);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("timed out after {timeout:?}"));
    };

    let (mut stdout, mut stderr) = (None, None);
    let grace_end = Instant::now() + PIPE_GRACE;
    while stdout.is_none() || stderr.is_none() {
        let left = grace_end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, data)) => stdout = Some(data),
            Ok((false, data)) => stderr = Some(data),
            Err(_) => {
                return Err(format!(
                    "exited ({status}) but its stdout/stderr were still open {PIPE_GRACE:?} later: \
                     a process it left behind kept the caller's pipes"
                ))
            }
        }
    }
    Ok(Output {
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    })
}

fn spawn_reader(
    src: Option<Box<dyn Read + Send>>,
    is_stdout: bool,
    tx: mpsc::Sender<(bool, Vec<u8>)>,
) {
    thread::spawn(move || {
        let mut data = Vec::new();
        if let Some(mut src) = src {
            let _ = src.read_to_end(&mut data);
        }
        let _ = tx.send((is_stdout, data));
    });
}

fn wait_deadline(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut nap = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return child.wait().ok(),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(5));
    }
}

/// A full container or image ID: 64 lower-case hex digits.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `berth inspect -f TEMPLATE NAME`, trimmed.
pub fn inspect_f(env: &TestEnv, template: &str, name: &str) -> String {
    env.ok(&["inspect", "-f", template, name])
        .trim()
        .to_string()
}

/// The container's `State.Status`.
pub fn status(env: &TestEnv, name: &str) -> String {
    inspect_f(env, "{{.State.Status}}", name)
}

/// Polls `berth logs NAME` until its stdout contains `needle`.
pub fn wait_for_log(env: &TestEnv, name: &str, needle: &str) {
    poll(
        &format!("{needle:?} in the logs of {name}"),
        Duration::from_secs(20),
        || env.ok(&["logs", name]).contains(needle).then_some(()),
    );
}

/// A static C program (`cc -static`) built once per source under
/// CARGO_TARGET_TMPDIR behind a lock; returns the directory that holds it as
/// `probe` (bind-mount it read-only into a container and run `/t/probe`).
/// Probes are what an attacker would run inside a container: they make the
/// raw system calls that busybox cannot.
pub fn static_probe(name: &str, source: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{:016x}", h.finish()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    let prog = dir.join("probe");
    if !prog.is_file() {
        let src = dir.join("probe.c");
        fs::write(&src, source).unwrap_or_else(|e| panic!("write {}: {e}", src.display()));
        let tmp = dir.join("probe.tmp");
        let out = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cc: {e}"));
        assert!(
            out.status.success(),
            "cc -static {name}.c failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::rename(&tmp, &prog).unwrap_or_else(|e| panic!("rename probe: {e}"));
    }
    drop(lock);
    dir
}

/// `-v DIR:/t:ro` for a probe directory from [`static_probe`].
pub fn probe_volume(dir: &Path) -> String {
    format!(
        "{}:/t:ro",
        dir.to_str()
            .unwrap_or_else(|| panic!("non-UTF-8 {}", dir.display()))
    )
}

/// (state, parent PID, session ID) from /proc/PID/stat.
pub fn proc_stat_of(pid: u32) -> Option<(char, u32, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((f[0].chars().next()?, f[1].parse().ok()?, f[3].parse().ok()?))
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `berth run --rm OPTS bb sh -c SCRIPT`, whatever its exit code.
pub fn run_sh(env: &TestEnv, opts: &[&str], script: &str) -> Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[BB, "sh", "-c", script]);
    env.run(&args)
}

/// `berth run --rm OPTS bb sh -c SCRIPT`; asserts exit code 0, returns stdout.
pub fn sh(env: &TestEnv, opts: &[&str], script: &str) -> String {
    let out = run_sh(env, opts, script);
    assert!(
        out.status.success(),
        "sh -c {script:?} (options {opts:?}) failed: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Creates the empty file `path` in the running container `name` from the
/// host (`berth cp`), to release a process that waits for it. Not `exec
/// touch`: the released container may exit, and end the exec'd `touch`
/// (137), before that has exited itself.
pub fn release(env: &TestEnv, name: &str, path: &str) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("release");
    fs::write(&file, "").unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let src = file
        .to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 {}", file.display()));
    env.ok(&["cp", src, &format!("{name}:{path}")]);
}
