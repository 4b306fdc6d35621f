//! berth-monitor: one per running container (see ARCHITECTURE.md).
//!
//! The parent of the container's first process. It creates and starts the
//! container through `berth_runtime`, holds its stdio (pipes or a pty
//! master), writes the json-file log, serves the attach socket, records the
//! exit in `state.json`, applies the restart policy and, for `--rm`, hands
//! over to `berth rm` when the container is done.
//!
//! It is single-threaded (the runtime forks), holds no database connection,
//! and stays small while idle: one poll loop over a handful of descriptors.
//!
//! Usage: `berth-monitor CONTAINER_DIR [--attach-first]`. Its stdout is a
//! pipe to whoever started it: it writes `ready\n` once the container is
//! created and the attach socket listens (only with --attach-first), then
//! `ok PID\n` or `err CODE MESSAGE\n`, and closes it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_runtime::cgroups::{self, Cgroup};
use berth_runtime::health::{self, HealthSchedule, Probe};
use berth_runtime::monitor::{self as proto, ExecConfig, MonitorConfig, State, Status};
use berth_runtime::process::{self, ChildStdio};
use rustix::event::{poll, PollFd, PollFlags};

fn main() {
    let mut args = std::env::args().skip(1);
    let res = match args.next() {
        Some(a) if a == "--exec" => match args.next() {
            Some(path) => run_exec(PathBuf::from(path)),
            None => Err("usage: berth-monitor --exec EXEC_CONFIG".to_string()),
        },
        _ => run(),
    };
    let code = match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            125
        }
    };
    std::process::exit(code);
}

type Res<T> = Result<T, String>;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The notification pipe to the starter (our stdout until closed).
struct Notify(Option<File>);

impl Notify {
    fn say(&mut self, line: &str) {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(line.as_bytes());
            let _ = f.write_all(b"\n");
        }
    }
    fn close(&mut self) {
        if let Some(f) = self.0.take() {
            // Point fd 1 at /dev/null so the starter sees EOF.
            drop(f);
            if let Ok(null) = File::options().write(true).open("/dev/null") {
                let _ = rustix::stdio::dup2_stdout(null.as_fd());
            }
        }
    }
}

#[inline(never)]
fn run() -> Res<i32> {
    // Whatever the starter had open (a shell's `exec 7</`, a service
    // manager's sockets) must not live on here, where every container
    // process is forked from: only stdin, stdout (the notify pipe) and
    // stderr stay.
    berth_runtime::process::close_inherited_fds();
    berth_runtime::trace::trace("monitor: exec'd");
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: berth-monitor CONTAINER_DIR [--attach-first]")?,
    );
    let attach_first = args.any(|a| a == "--attach-first");
    let mut cfg: MonitorConfig = serde_json::from_slice(
        &std::fs::read(dir.join("monitor.json"))
            .map_err(|e| format!("reading monitor.json: {e}"))?,
    )
    .map_err(|e| format!("parsing monitor.json: {e}"))?;
    // Other containers' namespaces to join, as the engine found them at
    // this start (`--pid container:X`, `--ipc container:X`).
    if let Ok(j) = std::fs::read(dir.join("join.json")) {
        cfg.spec.join =
            serde_json::from_slice(&j).map_err(|e| format!("parsing join.json: {e}"))?;
    }

    // The container's network as the engine planned it at this start
    // (bridge or user-defined networks; no file: none of its own).
    let net_plan: Option<berth_net::plan::NetworkPlan> =
        match std::fs::read(dir.join("network.json")) {
            Ok(j) => {
                Some(serde_json::from_slice(&j).map_err(|e| format!("parsing network.json: {e}"))?)
            }
            Err(_) => None,
        };

    // fd 1 is the notify pipe: take it over as a File, keep fd 1 itself.
    let stdout_dup =
        rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3).map_err(|e| e.to_string())?;
    let mut notify = Notify(Some(File::from(stdout_dup)));
    // SAFETY-free signal setup: ignore SIGPIPE (clients may vanish) and SIGHUP.
    ignore_signal(libc::SIGPIPE);
    ignore_signal(libc::SIGHUP);

    let layout = cgroups::detect().map_err(|e| e.to_string())?;
    let cgroup = Cgroup::new(&layout, &cfg.cgroup_path);

    let _ = std::fs::remove_file(&cfg.attach_socket);
    let listener = UnixListener::bind(&cfg.attach_socket)
        .map_err(|e| format!("attach socket {}: {e}", cfg.attach_socket.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    // Which socket file is ours: a monitor started after our container
    // exited (restart) binds a new one at the same path.
    let socket_id = socket_identity(&cfg.attach_socket);

    let mut log = if cfg.log_disabled {
        Log::none()
    } else {
        Log::open(&cfg)?
    };
    let mut state = State::load(&cfg.state_path)
        .ok()
        .flatten()
        .unwrap_or_default();
    state.monitor_pid = std::process::id() as i32;
    let mut clients: Vec<Client> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    // The published host ports, held while this monitor lives (restarts
    // included): nobody else can bind them meanwhile.
    let _held_ports = match net_plan.as_ref().map(berth_net::setup::hold_ports) {
        Some(Err(e)) => return Ok(fail_start(&mut notify, &mut state, &cfg, 125, &e)),
        Some(Ok(fds)) => fds,
        None => Vec::new(),
    };

    loop {
        let io = match Stdio::new(cfg.spec.tty, cfg.open_stdin) {
            Ok(io) => io,
            Err(e) => return Ok(fail_start(&mut notify, &mut state, &cfg, 125, &e)),
        };
        let (child_stdio, mut io) = io.split();
        // A restart takes the limits `update` may have changed since.
        if !first {
            if let Some(m) = reread_config(&dir) {
                cfg.spec.resources = m.spec.resources;
            }
        }
        // The cgroup is made after the clone: on v1 its creation can wait for
        // an RCU grace period, and the child sets up its root meanwhile.
        let created = create_container(
            &cfg,
            &layout,
            &cgroup,
            child_stdio,
            first,
            net_plan.as_ref(),
        );
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                let _ = cgroup.remove();
                return Ok(fail_start(
                    &mut notify,
                    &mut state,
                    &cfg,
                    e.exit_code(),
                    &e.to_string(),
                ));
            }
        };
        if first && attach_first {
            notify.say("ready");
            // Wait for the first client to attach before the process runs;
            // give up when the starter is gone or never comes.
            if !wait_first_client(&listener, &notify, &mut clients) {
                let mut created = created;
                created.abort();
                let _ = cgroup.remove();
                let msg = "nobody attached to the container";
                return Ok(fail_start(&mut notify, &mut state, &cfg, 125, msg));
            }
        }
        berth_runtime::trace::trace("monitor: created");
        // Hold the container's mount namespace: tearing it down (unmounting
        // the overlay and the rest) waits for an RCU grace period, and that
        // wait belongs after the exit has been reported, not before.
        let mount_ns = File::open(format!("/proc/{}/ns/mnt", created.pid())).ok();
        // The embedded DNS of user-defined networks, at 127.0.0.11 in the
        // container's namespace, bound before its command runs. Without it
        // the container still runs.
        let mut dns = net_plan
            .as_ref()
            .and_then(|p| p.dns.as_ref())
            .and_then(
                |d| match berth_net::setup::dns_responder(created.pid(), d) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        eprintln!("berth-monitor: embedded DNS: {e}");
                        None
                    }
                },
            );
        let started = Instant::now();
        let pid = match created.start() {
            Ok(pid) => pid,
            Err(e) => {
                // The process never ran: drain what it may have printed.
                io.drain(&mut log, &mut clients);
                let _ = cgroup.remove();
                let code = fail_start(&mut notify, &mut state, &cfg, e.exit_code(), &e.to_string());
                finish_clients(&mut clients, code);
                return Ok(code);
            }
        };
        berth_runtime::trace::trace("monitor: exec'd the command");
        // The networks this start set up (`network.json` as read above).
        network_events(&cfg, "connect", net_plan.as_ref());
        event(&cfg, &dir, "start", &[]);
        state.status = Status::Running;
        state.pid = pid;
        state.error.clear();
        state.exit_code = 0;
        state.oom_killed = false;
        state.started_at = now();
        state.finished_at.clear();
        save_state(&state, &cfg);
        notify.say(&format!("ok {pid}"));
        notify.close();
        first = false;
        let mut prober = cfg
            .health
            .map(|h| Prober::start(h, &dir, &cfg, &cgroup, pid));
        let mut idler = cfg
            .idle
            .map(|c| Idler::new(c, &cgroup, &cfg, &dir, net_plan.as_ref()));

        release_free_memory();
        let code = serve(
            pid,
            Some(&listener),
            &mut io,
            &mut log,
            &mut clients,
            cfg.stdin_once,
            &mut Services {
                prober: prober.as_mut(),
                dns: &mut dns,
                dir: Some(&dir),
                idle: idler.as_mut(),
            },
        )?;
        drop(idler);
        drop(dns);
        if let Some(p) = prober {
            p.stop();
        }
        berth_runtime::trace::trace("monitor: reaped");
        let oom = cgroup.memory_events_oom();
        let _ = cgroup.remove();
        if oom {
            event(&cfg, &dir, "oom", &[]);
        }
        event(&cfg, &dir, "die", &[("exitCode", code.to_string())]);
        // As they are now: `network connect`/`disconnect` rewrite
        // `network.json` while the container runs.
        let plan_now = std::fs::read(dir.join("network.json"))
            .ok()
            .and_then(|j| serde_json::from_slice(&j).ok());
        network_events(&cfg, "disconnect", plan_now.as_ref());
        state.status = Status::Exited;
        state.pid = 0;
        state.exit_code = code;
        state.oom_killed = oom;
        state.finished_at = now();

        // `update --restart` may have changed the policy since the start.
        if let Some(m) = reread_config(&dir) {
            cfg.restart_policy = m.restart_policy;
            cfg.restart_max = m.restart_max;
        }
        if should_restart(&cfg, &state, code) {
            if started.elapsed() >= Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            state.status = Status::Restarting;
            state.restart_count += 1;
            save_state(&state, &cfg);
            finish_clients(&mut clients, code);
            drop(mount_ns);
            if !wait_backoff(backoff, &cfg) {
                state.status = Status::Exited;
                save_state(&state, &cfg);
                return Ok(code);
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
            continue;
        }
        save_state(&state, &cfg);
        if let Some(plan) = &net_plan {
            berth_net::setup::detach(plan, &cfg.id);
        }
        if !cfg.remove_command.is_empty() {
            // `--rm`: remove first, then report the exit, so that whoever
            // waits for it (a foreground `run --rm`) finds it gone.
            remove_container(&cfg);
        }
        finish_clients(&mut clients, code);
        berth_runtime::trace::trace("monitor: done");
        drop(mount_ns);
        drop(listener);
        if socket_identity(&cfg.attach_socket) == socket_id {
            let _ = std::fs::remove_file(&cfg.attach_socket);
        }
        return Ok(code);
    }
}

/// What the poll loop serves besides the container's streams: its
/// healthcheck, its embedded DNS responder (none: not on a user-defined
/// network), and its directory, where `network.json` says which networks
/// the responder answers for.
struct Services<'a, 'p> {
    prober: Option<&'a mut Prober<'p>>,
    dns: &'a mut Option<berth_net::dns::Responder>,
    dir: Option<&'a std::path::Path>,
    idle: Option<&'a mut Idler<'p>>,
}

/// The idle mode (`--idle-timeout`): while the container is awake, a check
/// every tenth of the timeout of its CPU time and of the packets sent to
/// it; when neither moved for the whole timeout, it is frozen and the
/// monitor waits, with no timer, on a packet socket per veth (see
/// `berth_net::wake`), its attach socket and its clients. The first of
/// those to stir thaws it.
struct Idler<'a> {
    timeout: Duration,
    reclaim: bool,
    cgroup: &'a Cgroup,
    cfg: &'a MonitorConfig,
    dir: &'a std::path::Path,
    /// (host veth, container address) of each endpoint.
    endpoints: Vec<(String, std::net::Ipv4Addr)>,
    /// Frozen: the wake sockets. Awake: empty.
    wake: Vec<OwnedFd>,
    asleep: bool,
    last_cpu: u64,
    last_packets: u64,
    last_active: Instant,
    next_check: Instant,
}

impl<'a> Idler<'a> {
    #[inline(never)]
    fn new(
        c: proto::IdleConfig,
        cgroup: &'a Cgroup,
        cfg: &'a MonitorConfig,
        dir: &'a std::path::Path,
        plan: Option<&berth_net::plan::NetworkPlan>,
    ) -> Idler<'a> {
        let now = Instant::now();
        let mut i = Idler {
            timeout: Duration::from_millis(c.timeout_ms.max(1)),
            reclaim: c.reclaim,
            cgroup,
            cfg,
            dir,
            endpoints: Vec::new(),
            wake: Vec::new(),
            asleep: false,
            last_cpu: 0,
            last_packets: 0,
            last_active: now,
            next_check: now,
        };
        i.set_endpoints(plan);
        i.next_check = now + i.step();
        i
    }

    #[inline(never)]
    fn set_endpoints(&mut self, plan: Option<&berth_net::plan::NetworkPlan>) {
        self.endpoints = plan
            .map(|p| {
                p.endpoints
                    .iter()
                    .map(|e| (e.host_veth.clone(), e.ip))
                    .collect()
            })
            .unwrap_or_default();
        self.last_packets = self.packets();
    }

    fn step(&self) -> Duration {
        (self.timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(10))
    }

    fn packets(&self) -> u64 {
        self.endpoints
            .iter()
            .map(|(veth, _)| berth_net::wake::packets_to_container(veth))
            .sum()
    }

    /// How long the poll may sleep: until the next check while awake,
    /// for ever while asleep.
    fn wait(&self) -> Option<rustix::event::Timespec> {
        if self.asleep {
            return None;
        }
        let left = self.next_check.saturating_duration_since(Instant::now());
        Some(rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        })
    }

    /// Something happened that needs the container (a client's input).
    fn touch(&mut self) {
        self.last_active = Instant::now();
    }

    /// Awake: is it time to check, and has it been idle long enough?
    #[inline(never)]
    fn tick(&mut self) {
        let now = Instant::now();
        if self.asleep || now < self.next_check {
            return;
        }
        self.next_check = now + self.step();
        let (cpu, packets) = (self.cgroup.cpu_ns(), self.packets());
        if cpu != self.last_cpu || packets != self.last_packets {
            (self.last_cpu, self.last_packets) = (cpu, packets);
            self.last_active = now;
            return;
        }
        // A container a user paused is left alone (and is no activity).
        if self.cgroup.frozen() {
            self.last_active = now;
            return;
        }
        if now.duration_since(self.last_active) >= self.timeout {
            self.sleep();
        }
    }

    /// Freezes the container: the wake sockets first (a packet that comes
    /// meanwhile makes them readable at once), then the marker, then the
    /// freezer.
    #[inline(never)]
    fn sleep(&mut self) {
        let mut wake = Vec::new();
        for (veth, ip) in &self.endpoints {
            match berth_net::wake::wake_socket(veth, *ip) {
                Ok(fd) => wake.push(fd),
                Err(e) => {
                    // Without a way to wake it, it must not sleep.
                    eprintln!("berth-monitor: idle: watching {veth}: {e}");
                    self.last_active = Instant::now();
                    return;
                }
            }
        }
        let marker = self.dir.join(proto::IDLE_MARKER);
        if std::fs::write(&marker, now()).is_err() {
            self.last_active = Instant::now();
            return;
        }
        if self.cgroup.freeze(true).is_err() {
            let _ = std::fs::remove_file(&marker);
            self.last_active = Instant::now();
            return;
        }
        self.wake = wake;
        self.asleep = true;
        event(self.cfg, self.dir, "idle", &[]);
        if self.reclaim {
            self.cgroup.reclaim();
        }
        release_free_memory();
    }

    /// Thaws the container if this monitor froze it (a user's `pause`
    /// since takes the marker away and keeps it frozen).
    #[inline(never)]
    fn wake_up(&mut self) {
        if !self.asleep {
            return;
        }
        self.asleep = false;
        // The thaw first: the client waits for it. (Closing a packet
        // socket waits for an RCU grace period: after.)
        let marker = self.dir.join(proto::IDLE_MARKER);
        let ours = marker.exists();
        if ours {
            let _ = self.cgroup.freeze(false);
        }
        self.wake.clear();
        if ours {
            let _ = std::fs::remove_file(&marker);
            event(self.cfg, self.dir, "wake", &[]);
        }
        let now = Instant::now();
        self.last_active = now;
        self.last_cpu = self.cgroup.cpu_ns();
        self.last_packets = self.packets();
        self.next_check = now + self.step();
    }

    /// The container exited: no marker may outlive it.
    fn done(&mut self) {
        self.wake.clear();
        if self.asleep {
            let _ = std::fs::remove_file(self.dir.join(proto::IDLE_MARKER));
        }
        self.asleep = false;
    }
}

/// Records a container event (see `berth_runtime::events`); out of line,
/// as everything the idle loop does not need.
#[inline(never)]
fn event(cfg: &MonitorConfig, dir: &std::path::Path, action: &str, extra: &[(&str, String)]) {
    berth_runtime::events::container_event(&cfg.events, dir, &cfg.id, action, extra);
}

/// Records `action` (connect, disconnect) on each network the container is
/// on: the endpoints of `plan`, or the `none` or `host` network of its
/// configuration.
#[inline(never)]
fn network_events(cfg: &MonitorConfig, action: &str, plan: Option<&berth_net::plan::NetworkPlan>) {
    use berth_runtime::events::{network_event, NetworkRef};
    if let Some(n) = &cfg.plain_network {
        network_event(&cfg.events, action, n, &cfg.id);
        return;
    }
    for ep in plan.map(|p| p.endpoints.as_slice()).unwrap_or_default() {
        let n = NetworkRef {
            id: ep.network_id.clone(),
            name: ep.network_name.clone(),
            driver: "bridge".into(),
        };
        network_event(&cfg.events, action, &n, &cfg.id);
    }
}

/// `monitor.json` as `update` may have rewritten it since this monitor
/// read it (None: unreadable; the monitor keeps what it has).
#[inline(never)]
fn reread_config(dir: &std::path::Path) -> Option<MonitorConfig> {
    let b = std::fs::read(dir.join("monitor.json")).ok()?;
    serde_json::from_slice(&b).ok()
}

/// `network.json` as it is now (after a `network connect`/`disconnect`).
#[inline(never)]
fn read_plan(dir: &std::path::Path) -> Option<berth_net::plan::NetworkPlan> {
    serde_json::from_slice(&std::fs::read(dir.join("network.json")).ok()?).ok()
}

/// The DNS responder for the networks `network.json` names now (after a
/// `network connect` or `disconnect` of the running container).
#[inline(never)]
fn reload_dns(dir: &std::path::Path, pid: i32) -> Option<berth_net::dns::Responder> {
    let data = std::fs::read(dir.join("network.json")).ok()?;
    let plan: berth_net::plan::NetworkPlan = serde_json::from_slice(&data).ok()?;
    let d = plan.dns.as_ref().filter(|d| !d.networks.is_empty())?;
    berth_net::setup::dns_responder(pid, d)
        .map_err(|e| eprintln!("berth-monitor: embedded DNS: {e}"))
        .ok()
}

/// Clones the container's first process and places it (and, the first
/// time, this monitor) in its cgroup. Out of line: inlined, the runtime's
/// whole start path would widen `run`'s frame, the stack every idle
/// monitor keeps.
#[inline(never)]
fn create_container(
    cfg: &MonitorConfig,
    layout: &cgroups::Layout,
    cgroup: &Cgroup,
    child_stdio: ChildStdio,
    first: bool,
    net: Option<&berth_net::plan::NetworkPlan>,
) -> Result<process::Created, process::ProcessError> {
    process::create(&cfg.spec, child_stdio, |pid| {
        berth_runtime::trace::trace("monitor: cloned");
        // The published ports' rules, added by `nft` while the kernel
        // places the container (the first start only: they stay through
        // restarts).
        let rules = match net {
            Some(plan) if first => Some(berth_net::setup::start_port_rules(plan)?),
            _ => None,
        };
        cgroup.create().map_err(|e| format!("cgroup: {e}"))?;
        cgroup
            .apply(&cfg.spec.resources)
            .map_err(|e| format!("cgroup limits: {e}"))?;
        if !cfg.spec.privileged {
            berth_runtime::devices::apply_rules(cgroup, &cfg.spec.device_rules)
                .map_err(|e| format!("cgroup device rules: {e}"))?;
        }
        let r = cgroup.add_pid(pid).map_err(|e| format!("cgroup: {e}"));
        berth_runtime::trace::trace("monitor: placed");
        // Its interfaces, while it sets up its root.
        if let (Ok(()), Some(plan)) = (&r, net) {
            berth_net::setup::attach(pid, plan).map_err(|e| e.to_string())?;
            if let Some(rules) = rules {
                rules.finish(plan)?;
            }
            berth_runtime::trace::trace("monitor: networked");
        }
        // Right after the container's migration: on cgroup v1 the grace
        // period it waited for has just passed, so ours is cheap.
        if first {
            move_to_monitor_cgroup(layout, &cfg.monitor_cgroup);
            berth_runtime::trace::trace("monitor: moved itself");
        }
        r
    })
}

/// Moves this monitor into its own cgroup (`<parent>/monitors`, made by the
/// engine), out of its starter's: a service manager that stops the starter's service must not
/// take the containers' monitors with it. Best effort: a failure leaves the
/// monitor where it is, which still works.
fn move_to_monitor_cgroup(layout: &cgroups::Layout, rel: &str) {
    if rel.is_empty() {
        return;
    }
    // The engine made the cgroup (Engine::launch_monitor).
    if let Err(e) = Cgroup::new(layout, rel).add_self() {
        eprintln!("berth-monitor: moving to cgroup {rel}: {e}");
    }
}

/// `berth-monitor --exec FILE`: one `berth exec`. Like a container's
/// monitor it holds the command's stdio (pipes, or a new pty with -t),
/// serves an attach socket and sends the exit code as the last frame; the
/// command runs in its own session and never sees its caller's descriptors
/// or terminal. No log is written (Docker keeps none for execs).
// Never inlined into `main`: its locals would widen the frame that every
// idle container monitor keeps on its stack.
#[inline(never)]
fn run_exec(path: PathBuf) -> Res<i32> {
    berth_runtime::process::close_inherited_fds();
    let cfg: ExecConfig = serde_json::from_slice(
        &std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    )
    .map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    let stdout_dup =
        rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3).map_err(|e| e.to_string())?;
    let mut notify = Notify(Some(File::from(stdout_dup)));
    ignore_signal(libc::SIGPIPE);
    ignore_signal(libc::SIGHUP);
    let layout = cgroups::detect().map_err(|e| e.to_string())?;
    move_to_monitor_cgroup(&layout, &cfg.monitor_cgroup);

    let listener = match &cfg.attach_socket {
        Some(p) => {
            let _ = std::fs::remove_file(p);
            let l =
                UnixListener::bind(p).map_err(|e| format!("attach socket {}: {e}", p.display()))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Some(l)
        }
        None => None,
    };
    let remove_socket = || {
        if let Some(p) = &cfg.attach_socket {
            let _ = std::fs::remove_file(p);
        }
    };
    let mut clients: Vec<Client> = Vec::new();
    if let Some(l) = &listener {
        notify.say("ready");
        if !wait_first_client(l, &notify, &mut clients) {
            remove_socket();
            notify.say("err 125 nobody attached to the exec");
            return Ok(125);
        }
    }
    let stdio = if cfg.tty {
        Stdio::container_tty(cfg.pid)
    } else {
        Stdio::new(false, cfg.open_stdin)
    };
    let stdio = match stdio {
        Ok(s) => s,
        Err(e) => {
            notify.say(&format!("err 125 {e}"));
            finish_clients(&mut clients, 125);
            remove_socket();
            return Ok(125);
        }
    };
    let (child_stdio, mut io) = stdio.split();
    let filters = match &cfg.seccomp_filter {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            Some(
                berth_runtime::seccomp::CompiledFilters::from_bytes(&bytes)
                    .map_err(|e| format!("seccomp: {e}"))?,
            )
        }
        None => None,
    };
    let cgroup = Cgroup::new(&layout, &cfg.cgroup_path);
    let started = process::exec_in(
        cfg.pid,
        &cfg.cgroup_path,
        &cfg.spec,
        child_stdio,
        filters.as_ref(),
        || {
            cgroup
                .add_pid(std::process::id() as i32)
                .map_err(|e| e.to_string())
        },
    );
    drop(filters);
    let pid = match started {
        Ok(pid) => pid,
        Err(e) => {
            let code = e.exit_code();
            let mut log = Log::none();
            io.drain(&mut log, &mut clients);
            notify.say(&format!("err {code} {e}"));
            notify.close();
            finish_clients(&mut clients, code);
            remove_socket();
            return Ok(code);
        }
    };
    notify.say(&format!("ok {pid}"));
    notify.close();
    release_free_memory();
    let mut log = Log::none();
    let code = serve(
        pid,
        listener.as_ref(),
        &mut io,
        &mut log,
        &mut clients,
        true,
        &mut Services {
            prober: None,
            dns: &mut None,
            dir: None,
            idle: None,
        },
    )?;
    berth_runtime::events::container_event(
        &cfg.events,
        &cfg.container_dir,
        &cfg.container_id,
        "exec_die",
        &[
            ("execID", cfg.exec_id.clone()),
            ("exitCode", code.to_string()),
        ],
    );
    finish_clients(&mut clients, code);
    remove_socket();
    Ok(code)
}

/// Gives the heap that start-up used and freed back to the kernel: an idle
/// monitor's private memory is what each container really costs.
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap and is safe to call
    // at any time from the (single) thread.
    unsafe {
        libc::malloc_trim(0);
    }
    release_unused_stack();
}

/// Start-up ran deep (JSON, the seccomp compiler); the idle loop runs
/// shallow. The stack pages below the current frame hold nothing live, so
/// they are handed back (they fault in as zero pages if ever needed again).
fn release_unused_stack() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let Some(line) = maps.lines().find(|l| l.ends_with("[stack]")) else {
        return;
    };
    let Some((range, _)) = line.split_once(' ') else {
        return;
    };
    let Some((lo, _)) = range.split_once('-') else {
        return;
    };
    let Ok(lo) = usize::from_str_radix(lo, 16) else {
        return;
    };
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    // Keep a generous margin below the current frame for the calls to come.
    let top = (sp.saturating_sub(4 * 1024)) & !4095;
    if top > lo {
        // SAFETY: [lo, top) lies inside this thread's stack mapping, below
        // the current stack pointer minus a margin, so no live frame is
        // there; MADV_DONTNEED on private anonymous memory just drops the
        // pages (later accesses see zero-filled pages).
        unsafe {
            libc::madvise(lo as *mut libc::c_void, top - lo, libc::MADV_DONTNEED);
        }
    }
}

/// Accepts the first attach client. False when the starter went away
/// (its end of the notify pipe closed) or nobody came within a minute.
fn wait_first_client(listener: &UnixListener, notify: &Notify, clients: &mut Vec<Client>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                if let Some(c) = Client::handshake(s, Duration::from_secs(5)) {
                    clients.push(c);
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                let timeout = rustix::event::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                let gone = match &notify.0 {
                    Some(f) => {
                        // No events asked for: ERR/HUP are always reported.
                        let mut fds = [
                            PollFd::new(listener, PollFlags::IN),
                            PollFd::new(f, PollFlags::empty()),
                        ];
                        let _ = poll(&mut fds, Some(&timeout));
                        !fds[1].revents().is_empty()
                    }
                    None => {
                        let mut fds = [PollFd::new(listener, PollFlags::IN)];
                        let _ = poll(&mut fds, Some(&timeout));
                        false
                    }
                };
                if gone {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

/// (device, inode) of the file at `path`, if any.
fn socket_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn ignore_signal(sig: i32) {
    // SAFETY: SIG_IGN is a valid disposition for these catchable signals.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

fn save_state(state: &State, cfg: &MonitorConfig) {
    if let Err(e) = state.save(&cfg.state_path) {
        eprintln!("berth-monitor: saving state: {e}");
    }
}

fn fail_start(
    notify: &mut Notify,
    state: &mut State,
    cfg: &MonitorConfig,
    code: i32,
    msg: &str,
) -> i32 {
    // A container that never ran stays `created`, with the error and the
    // code recorded, as Docker's does.
    state.status = if state.started_at.is_empty() {
        Status::Created
    } else {
        Status::Exited
    };
    state.pid = 0;
    state.exit_code = code;
    state.error = msg.to_string();
    if state.status == Status::Exited {
        state.finished_at = now();
    }
    save_state(state, cfg);
    notify.say(&format!("err {code} {msg}"));
    notify.close();
    if !cfg.remove_command.is_empty() {
        hand_over_to_rm(cfg);
    }
    code
}

fn should_restart(cfg: &MonitorConfig, state: &State, code: i32) -> bool {
    if cfg.stop_marker.exists() {
        return false;
    }
    match cfg.restart_policy.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            code != 0 && (cfg.restart_max == 0 || state.restart_count < cfg.restart_max)
        }
        _ => false,
    }
}

/// Sleeps the restart back-off, waking early when the user stops the
/// container. Returns false when the restart is cancelled.
fn wait_backoff(d: Duration, cfg: &MonitorConfig) -> bool {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if cfg.stop_marker.exists() {
            return false;
        }
        std::thread::sleep((deadline - Instant::now()).min(Duration::from_millis(50)));
    }
    !cfg.stop_marker.exists()
}

/// Runs the remove command (`berth rm -f -v ID`) and waits for it.
fn remove_container(cfg: &MonitorConfig) {
    let Some((prog, args)) = cfg.remove_command.split_first() else {
        return;
    };
    let status = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    if let Err(e) = status {
        eprintln!("berth-monitor: removing the container: {e}");
    }
}

fn hand_over_to_rm(cfg: &MonitorConfig) {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = cfg.remove_command.split_first() else {
        return;
    };
    let err = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .exec();
    eprintln!("berth-monitor: removing the container: {err}");
}

/// 24x80 until a client says otherwise.
fn set_default_winsize(master: &impl AsFd) {
    let _ = rustix::termios::tcsetwinsize(
        master,
        rustix::termios::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    );
}

/// The container's side of stdio as the monitor holds it.
enum Stdio {
    Tty {
        master: File,
        slave: OwnedFd,
        path: PathBuf,
    },
    Pipes {
        stdin_w: Option<File>,
        stdin_r: OwnedFd,
        out_r: File,
        out_w: OwnedFd,
        err_r: File,
        err_w: OwnedFd,
    },
}

struct Held {
    /// Output sources: (fd, stream).
    outputs: Vec<(File, u8)>,
    stdin: Option<File>,
    tty: Option<File>,
}

impl Stdio {
    /// An exec's terminal: a new pty in the container's own devpts.
    fn container_tty(pid: i32) -> Res<Stdio> {
        let (master, slave) =
            process::open_container_pty(pid).map_err(|e| format!("exec pty: {e}"))?;
        set_default_winsize(&master);
        Ok(Stdio::Tty {
            master: File::from(master),
            slave,
            path: PathBuf::from("/dev/pts"),
        })
    }

    fn new(tty: bool, open_stdin: bool) -> Res<Stdio> {
        if tty {
            use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
            let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .map_err(|e| format!("pty: {e}"))?;
            grantpt(&master).map_err(|e| format!("pty: {e}"))?;
            unlockpt(&master).map_err(|e| format!("pty: {e}"))?;
            let name = ptsname(&master, Vec::new()).map_err(|e| format!("pty: {e}"))?;
            let path = PathBuf::from(name.to_string_lossy().into_owned());
            // O_NOCTTY: the monitor leads a session, and must not take the
            // terminal that the container's process makes its own.
            let slave: OwnedFd = File::options()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&path)
                .map_err(|e| format!("pty {}: {e}", path.display()))?
                .into();
            set_default_winsize(&master);
            Ok(Stdio::Tty {
                master: File::from(master),
                slave,
                path,
            })
        } else {
            let p = || {
                rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                    .map_err(|e| format!("pipe: {e}"))
            };
            let (out_r, out_w) = p()?;
            let (err_r, err_w) = p()?;
            let (stdin_r, stdin_w) = if open_stdin {
                let (r, w) = p()?;
                (r, Some(File::from(w)))
            } else {
                (
                    File::open("/dev/null")
                        .map_err(|e| format!("/dev/null: {e}"))?
                        .into(),
                    None,
                )
            };
            Ok(Stdio::Pipes {
                stdin_w,
                stdin_r,
                out_r: File::from(out_r),
                out_w,
                err_r: File::from(err_r),
                err_w,
            })
        }
    }

    fn split(self) -> (ChildStdio, Held) {
        match self {
            Stdio::Tty {
                master,
                slave,
                path,
            } => {
                let s2 = slave.try_clone();
                let s3 = slave.try_clone();
                let (s2, s3) = match (s2, s3) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => (dev_null(), dev_null()),
                };
                let reader = master
                    .try_clone()
                    .unwrap_or_else(|_| File::from(dev_null()));
                (
                    ChildStdio {
                        stdin: slave,
                        stdout: s2,
                        stderr: s3,
                        tty_path: Some(path),
                    },
                    Held {
                        outputs: vec![(reader, proto::FRAME_STDOUT)],
                        stdin: None,
                        tty: Some(master),
                    },
                )
            }
            Stdio::Pipes {
                stdin_w,
                stdin_r,
                out_r,
                out_w,
                err_r,
                err_w,
            } => (
                ChildStdio {
                    stdin: stdin_r,
                    stdout: out_w,
                    stderr: err_w,
                    tty_path: None,
                },
                Held {
                    outputs: vec![(out_r, proto::FRAME_STDOUT), (err_r, proto::FRAME_STDERR)],
                    stdin: stdin_w,
                    tty: None,
                },
            ),
        }
    }
}

fn dev_null() -> OwnedFd {
    match File::options().read(true).write(true).open("/dev/null") {
        Ok(f) => f.into(),
        // /dev/null always exists on a working host; fall back to a closed pipe end.
        Err(_) => match rustix::pipe::pipe() {
            Ok((r, _w)) => r,
            Err(_) => std::process::exit(125),
        },
    }
}

impl Held {
    /// After exit: read whatever is left without blocking.
    #[inline(never)]
    fn drain(&mut self, log: &mut Log, clients: &mut Vec<Client>) {
        // On the heap: a big stack frame would be probed, and so dirtied,
        // in every idle monitor.
        let mut buf = vec![0u8; 16 * 1024];
        for (f, stream) in &mut self.outputs {
            let _ = rustix::io::ioctl_fionbio(&*f, true);
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => output(&buf[..n], *stream, log, clients),
                }
            }
        }
        log.flush_partial();
    }
}

/// Sends output to the log and every attached client that wants it.
#[inline(never)]
fn output(data: &[u8], stream: u8, log: &mut Log, clients: &mut Vec<Client>) {
    log.write(data, stream);
    clients.retain_mut(|c| {
        let wants = if stream == proto::FRAME_STDERR {
            c.stderr
        } else {
            c.stdout
        };
        !wants || proto::write_frame(&mut c.stream, stream, data).is_ok()
    });
}

fn finish_clients(clients: &mut Vec<Client>, code: i32) {
    for mut c in clients.drain(..) {
        let _ = proto::write_frame(
            &mut c.stream,
            proto::FRAME_EXIT,
            code.to_string().as_bytes(),
        );
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// The poll loop while the container runs; returns its exit code. What it
/// calls only on events is kept out of line (`#[inline(never)]`): every
/// byte of this frame is stack each idle monitor keeps.
fn serve(
    pid: i32,
    listener: Option<&UnixListener>,
    io: &mut Held,
    log: &mut Log,
    clients: &mut Vec<Client>,
    stdin_once: bool,
    net: &mut Services<'_, '_>,
) -> Res<i32> {
    let mut prober: Option<&mut Prober> = net.prober.as_deref_mut();
    let dns: &mut Option<berth_net::dns::Responder> = &mut *net.dns;
    let dir = net.dir;
    let mut idle: Option<&mut Idler> = net.idle.as_deref_mut();
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or("bad pid")?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| format!("pidfd_open: {e}"))?;
    // Made at the first read: a container that prints nothing once started
    // (a server, a sleeper) never has it.
    let mut buf: Vec<u8> = Vec::new();
    let mut stdin_claimed = false;
    let mut open_outputs: Vec<bool> = vec![true; io.outputs.len()];
    loop {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3 + io.outputs.len() + clients.len());
        fds.push(PollFd::new(&pidfd, PollFlags::IN));
        if let Some(l) = listener {
            fds.push(PollFd::new(l, PollFlags::IN));
        }
        let base = fds.len();
        // A closed output is left out: POLLHUP is reported whatever events
        // are asked for, and would wake the loop forever.
        let polled: Vec<usize> = (0..io.outputs.len()).filter(|&i| open_outputs[i]).collect();
        for &i in &polled {
            fds.push(PollFd::new(&io.outputs[i].0, PollFlags::IN));
        }
        for c in clients.iter() {
            fds.push(PollFd::new(&c.stream, PollFlags::IN));
        }
        // The healthcheck: its runner's exit, or the time the next is due.
        let probe_at = fds.len();
        let mut timeout = None;
        // Asleep (idle), nothing is due: no probe, no check.
        let asleep = idle.as_deref().is_some_and(|i| i.asleep);
        if let (Some(p), false) = (prober.as_deref(), asleep) {
            match &p.running {
                Some(r) => fds.push(PollFd::new(r.pidfd(), PollFlags::IN)),
                None => timeout = Some(p.wait()),
            }
        }
        if let Some(t) = idle.as_deref().and_then(Idler::wait) {
            timeout = Some(earlier(timeout, t));
        }
        // The DNS responder: its two sockets, and its oldest forwarded
        // query's deadline.
        let dns_at = fds.len();
        let dns_fds = dns.as_ref().map(|d| d.fds());
        let dns_borrowed: Vec<std::os::fd::BorrowedFd<'_>> = dns_fds
            .iter()
            .flatten()
            // SAFETY: the responder owns these descriptors and outlives this
            // iteration of the loop, which is as long as the borrow lives.
            .map(|&fd| unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
            .collect();
        for fd in &dns_borrowed {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if let Some(deadline) = dns.as_ref().and_then(|d| d.next_deadline()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let t = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            timeout = Some(earlier(timeout, t));
        }
        // An idle container's wake sockets.
        let idle_at = fds.len();
        if let Some(i) = idle.as_deref() {
            for fd in &i.wake {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        let exited = !fds[0].revents().is_empty();
        let accept = base > 1 && !fds[1].revents().is_empty();
        let mut out_ready = vec![false; io.outputs.len()];
        for (k, &i) in polled.iter().enumerate() {
            out_ready[i] = !fds[base + k].revents().is_empty();
        }
        let client_ready: Vec<bool> = (0..clients.len())
            .map(|i| !fds[base + polled.len() + i].revents().is_empty())
            .collect();
        let probe_done =
            fds.len() > probe_at && dns_at > probe_at && !fds[probe_at].revents().is_empty();
        let dns_ready: Vec<bool> = (dns_at..idle_at)
            .map(|i| !fds[i].revents().is_empty())
            .collect();
        let stirred = (idle_at..fds.len()).any(|i| !fds[i].revents().is_empty());
        drop(fds);
        drop(dns_borrowed);
        if let Some(i) = idle.as_deref_mut() {
            let input = client_ready.iter().any(|&r| r);
            if stirred || accept || input {
                i.wake_up();
            }
            if input {
                i.touch();
            }
        }
        if let Some(d) = dns.as_mut() {
            if dns_ready.first() == Some(&true) {
                let _ = d.on_query_readable();
            }
            if dns_ready.get(1) == Some(&true) {
                let _ = d.on_upstream_readable();
            }
            d.expire(Instant::now());
        }
        if let (Some(p), false) = (prober.as_deref_mut(), asleep) {
            p.tick(probe_done);
        }

        for (i, ready) in out_ready.iter().enumerate() {
            if !*ready {
                continue;
            }
            let (f, stream) = &mut io.outputs[i];
            let stream = *stream;
            if buf.is_empty() {
                buf = vec![0u8; 8 * 1024];
            }
            match f.read(&mut buf) {
                Ok(0) | Err(_) => open_outputs[i] = false,
                Ok(n) => output(&buf[..n], stream, log, clients),
            }
        }
        // Client input, newest clients last; iterate backwards to remove.
        for i in (0..client_ready.len()).rev() {
            if !client_ready[i] {
                continue;
            }
            if buf.is_empty() {
                buf = vec![0u8; 8 * 1024];
            }
            let keep = clients[i].pump(io, &mut stdin_claimed, &mut buf);
            if !keep {
                let c = clients.remove(i);
                if c.stdin && stdin_once && stdin_claimed {
                    io.stdin = None;
                }
            }
        }
        if let (true, Some(listener)) = (accept, listener) {
            while let Ok((s, _)) = listener.accept() {
                // Clients send their line as they connect: one that does
                // not within a second is turned away rather than let it
                // stall the output of a running container. (200 ms turned
                // away a reattaching `berth attach` on a loaded 2-core CI
                // machine now and then: it exited 0, seeing no EXIT frame.)
                match Client::handshake(s, Duration::from_secs(1)) {
                    // `wake`: the engine needs the container awake (exec,
                    // stop…); the connection itself woke it above.
                    Some(c) if c.control && c.wake => {
                        let _ = (&c.stream).write_all(b"ok\n");
                    }
                    Some(c) if c.control => {
                        // `network connect`/`disconnect` changed the
                        // container's networks: its DNS answers for the
                        // networks it is on now.
                        if let Some(dir) = dir {
                            *dns = None;
                            *dns = reload_dns(dir, pid);
                            if let Some(i) = idle.as_deref_mut() {
                                i.set_endpoints(read_plan(dir).as_ref());
                            }
                        }
                        let _ = (&c.stream).write_all(b"ok\n");
                    }
                    Some(c) => clients.push(c),
                    None => {}
                }
            }
        }
        if exited {
            if let Some(i) = idle.as_deref_mut() {
                i.done();
            }
            let code = process::wait_exit_code(pid).map_err(|e| format!("wait: {e}"))?;
            io.drain(log, clients);
            return Ok(code);
        }
        if let Some(i) = idle.as_deref_mut() {
            i.tick();
        }
    }
}

/// The earlier of a poll timeout and another.
fn earlier(
    a: Option<rustix::event::Timespec>,
    b: rustix::event::Timespec,
) -> rustix::event::Timespec {
    match a {
        Some(a) if (a.tv_sec, a.tv_nsec) < (b.tv_sec, b.tv_nsec) => a,
        _ => b,
    }
}

/// A container's healthcheck while it runs: when the next probe is due,
/// and the probe runner in flight (see `berth_runtime::health`). The idle
/// monitor only sleeps until `due`.
struct Prober<'a> {
    schedule: HealthSchedule,
    dir: &'a std::path::Path,
    /// The event log and the container's ID, for the probes' events.
    events: &'a std::path::Path,
    id: &'a str,
    cgroup: &'a Cgroup,
    cgroup_path: &'a str,
    pid: i32,
    started: Instant,
    starting: bool,
    due: Instant,
    running: Option<Probe>,
}

impl<'a> Prober<'a> {
    #[inline(never)]
    fn start(
        schedule: HealthSchedule,
        dir: &'a std::path::Path,
        cfg: &'a MonitorConfig,
        cgroup: &'a Cgroup,
        pid: i32,
    ) -> Self {
        let cgroup_path = cfg.cgroup_path.as_str();
        if let Err(e) = health::reset_for_start(dir) {
            eprintln!("berth-monitor: health state: {e}");
        }
        let started = Instant::now();
        Prober {
            schedule,
            dir,
            events: &cfg.events,
            id: &cfg.id,
            cgroup,
            cgroup_path,
            pid,
            started,
            starting: true,
            due: started + schedule.next_wait(Duration::ZERO, true),
            running: None,
        }
    }

    /// How long the poll may sleep.
    fn wait(&self) -> rustix::event::Timespec {
        let d = self.due.saturating_duration_since(Instant::now());
        rustix::event::Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }

    /// After each wake-up: reap a finished runner (the next probe is due an
    /// interval after it ended), start one that is due.
    #[inline(never)]
    fn tick(&mut self, runner_done: bool) {
        if runner_done {
            if let Some(r) = self.running.take() {
                self.starting = r.finish();
                let wait = self
                    .schedule
                    .next_wait(self.started.elapsed(), self.starting);
                self.due = Instant::now() + wait;
            }
        }
        if self.running.is_some() || Instant::now() < self.due {
            return;
        }
        let cgroup = self.cgroup;
        let place = move |pid: i32| cgroup.add_pid(pid).map_err(|e| format!("cgroup: {e}"));
        let (events, dir, id) = (self.events, self.dir, self.id);
        let emit = move |action: &str, extra: &[(&str, String)]| {
            berth_runtime::events::container_event(events, dir, id, action, extra)
        };
        match health::spawn_probe(
            self.dir,
            self.pid,
            self.cgroup_path,
            self.started,
            now,
            &place,
            &emit,
        ) {
            Ok(r) => self.running = Some(r),
            Err(e) => {
                eprintln!("berth-monitor: healthcheck: {e}");
                self.due = Instant::now()
                    + self
                        .schedule
                        .next_wait(self.started.elapsed(), self.starting);
            }
        }
    }

    /// The container stopped: no probe outlives it, and it reads as
    /// unhealthy until it runs again (as Docker's).
    #[inline(never)]
    fn stop(self) {
        if let Some(r) = self.running {
            r.kill();
        }
        if let Err(e) = health::mark_stopped(self.dir) {
            eprintln!("berth-monitor: health state: {e}");
        }
    }
}

/// One attached client.
struct Client {
    stream: UnixStream,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    /// Not a client: the engine saying the container's networks changed
    /// (`network …` instead of `attach …`), or asking for it awake (`wake`).
    control: bool,
    wake: bool,
    inbuf: Vec<u8>,
}

impl Client {
    /// Reads the `attach …` line (the client sends it right after connecting).
    /// `wait` bounds how long a silent client can hold the (single) loop.
    #[inline(never)]
    fn handshake(s: UnixStream, wait: Duration) -> Option<Client> {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(wait));
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        let mut r = &s;
        while line.len() < 256 {
            match r.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break,
                Ok(1) => line.push(byte[0]),
                _ => return None,
            }
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let mut words = line.split_whitespace();
        let (control, wake) = match words.next() {
            Some("attach") => (false, false),
            Some("network") => (true, false),
            Some("wake") => (true, true),
            _ => return None,
        };
        let mut c = Client {
            stream: s,
            stdin: false,
            stdout: false,
            stderr: false,
            control,
            wake,
            inbuf: Vec::new(),
        };
        for w in words {
            match w {
                "stdin=1" => c.stdin = true,
                "stdout=1" => c.stdout = true,
                "stderr=1" => c.stderr = true,
                _ => {}
            }
        }
        // Reads use MSG_DONTWAIT (see `pump`); writes block, but not forever.
        let _ = c.stream.set_read_timeout(None);
        let _ = c.stream.set_write_timeout(Some(Duration::from_secs(10)));
        Some(c)
    }

    /// Reads what the client sent; false when it is gone.
    #[inline(never)]
    fn pump(&mut self, io: &mut Held, stdin_claimed: &mut bool, buf: &mut [u8]) -> bool {
        let n = match rustix::net::recv(&self.stream, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => return false,
            Ok((n, _)) => n,
            Err(rustix::io::Errno::AGAIN) => return true,
            Err(_) => return false,
        };
        self.inbuf.extend_from_slice(&buf[..n]);
        while self.inbuf.len() >= 5 {
            let len =
                u32::from_be_bytes([self.inbuf[1], self.inbuf[2], self.inbuf[3], self.inbuf[4]])
                    as usize;
            if self.inbuf.len() < 5 + len {
                break;
            }
            let kind = self.inbuf[0];
            let payload: Vec<u8> = self.inbuf[5..5 + len].to_vec();
            self.inbuf.drain(..5 + len);
            match kind {
                proto::INPUT_DATA if self.stdin => {
                    *stdin_claimed = true;
                    if let Some(t) = &mut io.tty {
                        let _ = t.write_all(&payload);
                    } else if let Some(w) = &mut io.stdin {
                        if w.write_all(&payload).is_err() {
                            io.stdin = None;
                        }
                    }
                }
                proto::INPUT_CLOSE if self.stdin => {
                    *stdin_claimed = true;
                    io.stdin = None;
                }
                proto::INPUT_RESIZE if payload.len() == 4 => {
                    if let Some(t) = &io.tty {
                        let ws = rustix::termios::Winsize {
                            ws_row: u16::from_be_bytes([payload[0], payload[1]]),
                            ws_col: u16::from_be_bytes([payload[2], payload[3]]),
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        let _ = rustix::termios::tcsetwinsize(t, ws);
                    }
                }
                _ => {}
            }
        }
        true
    }
}

/// The json-file log with size-based rotation (or none: `--log-driver none`).
struct Log {
    path: PathBuf,
    /// None: output is not logged (an exec's).
    file: Option<File>,
    /// Each entry's `attrs` as JSON (None: it has none).
    attrs: Option<String>,
    size: u64,
    max_size: u64,
    max_files: u32,
    partial: [Vec<u8>; 2],
}

impl Log {
    fn open(cfg: &MonitorConfig) -> Res<Log> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(&cfg.log_path)
            .map_err(|e| format!("log {}: {e}", cfg.log_path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Log {
            path: cfg.log_path.clone(),
            file: Some(file),
            attrs: (!cfg.log_attrs.is_empty())
                .then(|| serde_json::to_string(&cfg.log_attrs).ok())
                .flatten(),
            size,
            max_size: cfg.log_max_size,
            max_files: cfg.log_max_files.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// A log that keeps nothing.
    fn none() -> Log {
        Log {
            path: PathBuf::new(),
            file: None,
            attrs: None,
            size: 0,
            max_size: 0,
            max_files: 1,
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn write(&mut self, data: &[u8], stream: u8) {
        if self.file.is_none() {
            return;
        }
        let idx = usize::from(stream == proto::FRAME_STDERR);
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[idx]);
            line.extend_from_slice(&rest[..=pos]);
            self.entry(&line, stream);
            rest = &rest[pos + 1..];
        }
        self.partial[idx].extend_from_slice(rest);
        if self.partial[idx].len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.partial[idx]);
            self.entry(&line, stream);
        }
    }

    fn flush_partial(&mut self) {
        for (idx, stream) in [(0, proto::FRAME_STDOUT), (1, proto::FRAME_STDERR)] {
            if !self.partial[idx].is_empty() {
                let line = std::mem::take(&mut self.partial[idx]);
                self.entry(&line, stream);
            }
        }
    }

    fn entry(&mut self, line: &[u8], stream: u8) {
        // Docker's json-file line, its keys in Docker's order.
        let log = serde_json::to_string(&String::from_utf8_lossy(line)).unwrap_or_default();
        let stream = if stream == proto::FRAME_STDERR {
            "stderr"
        } else {
            "stdout"
        };
        let attrs = match &self.attrs {
            Some(a) => format!(",\"attrs\":{a}"),
            None => String::new(),
        };
        let bytes = format!(
            "{{\"log\":{log},\"stream\":\"{stream}\"{attrs},\"time\":\"{}\"}}\n",
            now()
        )
        .into_bytes();
        // Docker's json-file driver: a file that has reached max-size is
        // rotated before the next entry (so a file ends just past it).
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate();
        }
        if let Some(f) = &mut self.file {
            if f.write_all(&bytes).is_ok() {
                self.size += bytes.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if self.max_files <= 1 {
            if let Some(f) = &self.file {
                let _ = f.set_len(0);
            }
            self.size = 0;
            return;
        }
        let _ = std::fs::remove_file(name(self.max_files - 1));
        for i in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        let _ = std::fs::rename(&self.path, name(1));
        if let Ok(f) = File::options().create(true).append(true).open(&self.path) {
            self.file = Some(f);
            self.size = 0;
        }
    }
}
