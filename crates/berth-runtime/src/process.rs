//! Starting a container's process, and entering a running one.
//!
//! [`create`] clones the container's first process into new namespaces; the
//! child sets up its root filesystem and everything else and then waits;
//! [`Created::start`] lets it exec the user's command. Failures in the child
//! travel back over a close-on-exec pipe together with Docker's exit code
//! (125 setup failed, 126 cannot execute, 127 not found), so the caller can
//! tell "exec succeeded" (the pipe closes empty) from every failure.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::seccomp::CompiledFilters;
use crate::spec::{BindRecursive, ContainerSpec, MountKind, NetworkMode, Security};
use crate::sys::{self, Forked};

/// Docker's exit code when the engine itself failed.
pub const EXIT_ENGINE: i32 = 125;
/// Docker's exit code when the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Docker's exit code when the command does not exist.
pub const EXIT_NOT_FOUND: i32 = 127;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{message}")]
    Container { code: i32, message: String },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl ProcessError {
    /// The exit code Docker uses for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProcessError::Container { code, .. } => *code,
            ProcessError::Io { .. } => EXIT_ENGINE,
        }
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> ProcessError {
    move |source| ProcessError::Io { what, source }
}

/// The descriptors that become the process's stdin, stdout and stderr.
pub struct ChildStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// When set, stdio is this terminal: the child makes it its controlling
    /// terminal and bind-mounts it at /dev/console.
    pub tty_path: Option<PathBuf>,
}

/// A container whose first process exists and waits to exec.
pub struct Created {
    pid: i32,
    go: File,
    report: File,
}

fn pipe() -> Result<(File, File), ProcessError> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io_err("pipe")(e.into()))?;
    Ok((File::from(r), File::from(w)))
}

/// Reads a child's report: empty = success, otherwise "E<code> <message>".
fn read_report(f: &mut File, what: &'static str) -> Result<Vec<u8>, ProcessError> {
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(io_err(what))?;
    Ok(buf)
}

fn parse_failure(buf: &[u8]) -> ProcessError {
    let text = String::from_utf8_lossy(buf);
    let text = text.strip_prefix('E').unwrap_or(&text);
    let (code, msg) = text.split_once(' ').unwrap_or(("125", text));
    ProcessError::Container {
        code: code.parse().unwrap_or(EXIT_ENGINE),
        message: msg.to_string(),
    }
}

/// Clones the container's first process. `place` runs in the parent once the
/// child exists, while the child sets up its root filesystem (put it into
/// its cgroup there); the child execs only after `place` succeeded.
///
/// The child reads the seccomp filter the engine compiled
/// (`spec.security.seccomp_filter`); it never compiles one.
pub fn create(
    spec: &ContainerSpec,
    stdio: ChildStdio,
    place: impl FnOnce(i32) -> Result<(), String>,
) -> Result<Created, ProcessError> {
    // Volumes with local-driver options: their file systems are made here,
    // in the host's namespaces (an nfs server is reached over the host's
    // network), and attached by the child like binds.
    let filesystems = open_filesystems(spec).map_err(|message| ProcessError::Container {
        code: EXIT_ENGINE,
        message,
    })?;
    let (go_r, go_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let host = spec.host_namespaces;
    let joined = Joined::open(&spec.join)?;
    let mut flags = libc::CLONE_NEWNS;
    for (shared, flag) in [
        (host.uts, libc::CLONE_NEWUTS),
        (host.ipc || joined.ipc.is_some(), libc::CLONE_NEWIPC),
        (host.pid || joined.pid.is_some(), libc::CLONE_NEWPID),
    ] {
        if !shared {
            flags |= flag;
        }
    }
    if spec.network == NetworkMode::None && joined.net.is_none() {
        flags |= libc::CLONE_NEWNET;
    }
    // `--network container:X`: the clone inherits the namespace of the
    // thread that makes it; the monitor goes back to its own right after.
    let own_net_ns = match &joined.net {
        Some(ns) => {
            let own = File::open("/proc/thread-self/ns/net")
                .map_err(io_err("opening our network namespace"))?;
            sys::setns(ns, libc::CLONE_NEWNET).map_err(|e| ProcessError::Container {
                code: EXIT_ENGINE,
                message: format!("joining the network namespace of the other container: {e}"),
            })?;
            Some(own)
        }
        None => None,
    };
    // A pid namespace is entered by the children of whoever joins it: the
    // monitor joins for the clone only, then goes back to its own (later
    // forks — a restart, `--rm` — must not land in the other container).
    let own_pid_ns = match &joined.pid {
        Some(ns) => {
            let own =
                File::open("/proc/self/ns/pid").map_err(io_err("opening our pid namespace"))?;
            if let Err(e) = sys::setns(ns, libc::CLONE_NEWPID) {
                if let Some(net) = &own_net_ns {
                    let _ = sys::setns(net, libc::CLONE_NEWNET);
                }
                return Err(ProcessError::Container {
                    code: EXIT_ENGINE,
                    message: format!("joining the PID namespace of the other container: {e}"),
                });
            }
            Some(own)
        }
        None => None,
    };
    let forked = sys::clone_process(flags);
    if let Some(own) = &own_net_ns {
        if !matches!(forked, Ok(Forked::Child)) {
            if let Err(e) = sys::setns(own, libc::CLONE_NEWNET) {
                if let Ok(Forked::Parent(pid)) = forked {
                    let _ = sys::kill(pid, libc::SIGKILL);
                    let _ = sys::waitpid_blocking(pid);
                }
                return Err(ProcessError::Container {
                    code: EXIT_ENGINE,
                    message: format!("going back to our network namespace: {e}"),
                });
            }
        }
    }
    drop(own_net_ns);
    if let Some(own) = &own_pid_ns {
        if !matches!(forked, Ok(Forked::Child)) {
            if let Err(e) = sys::setns(own, libc::CLONE_NEWPID) {
                if let Ok(Forked::Parent(pid)) = forked {
                    let _ = sys::kill(pid, libc::SIGKILL);
                    let _ = sys::waitpid_blocking(pid);
                }
                return Err(ProcessError::Container {
                    code: EXIT_ENGINE,
                    message: format!("going back to our pid namespace: {e}"),
                });
            }
        }
    }
    drop(own_pid_ns);
    match forked.map_err(io_err("clone"))? {
        Forked::Child => {
            drop(go_w);
            drop(rep_r);
            let code = child_main(spec, stdio, &filesystems, go_r, rep_w, joined);
            sys::exit_now(code)
        }
        Forked::Parent(pid) => {
            drop(joined);
            drop(go_r);
            drop(rep_w);
            drop(stdio);
            drop(filesystems);
            let mut created = Created {
                pid,
                go: go_w,
                report: rep_r,
            };
            if let Err(e) = place(pid) {
                created.abort();
                // The child may have failed its own setup meanwhile (then
                // placing it fails too, for it is gone): its words win.
                if let Ok(buf) = read_report(&mut created.report, "container setup") {
                    if !buf.is_empty() && buf[0] != b'R' {
                        return Err(parse_failure(&buf));
                    }
                }
                return Err(ProcessError::Container {
                    code: EXIT_ENGINE,
                    message: e,
                });
            }
            // First byte: placed in the cgroup, go on to the exec.
            if created.go.write_all(b"P").is_err() {
                let buf = read_report(&mut created.report, "container setup")?;
                created.reap();
                return Err(parse_failure(&buf));
            }
            let mut first = [0u8; 1];
            match created.report.read(&mut first) {
                Ok(1) if first[0] == b'R' => Ok(created),
                Ok(1) => {
                    let mut rest = read_report(&mut created.report, "container setup")?;
                    rest.insert(0, first[0]);
                    created.reap();
                    Err(parse_failure(&rest))
                }
                _ => {
                    created.reap();
                    Err(ProcessError::Container {
                        code: EXIT_ENGINE,
                        message: "container init exited during setup".into(),
                    })
                }
            }
        }
    }
}

impl Created {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the process exec the user's command; returns once exec succeeded.
    pub fn start(mut self) -> Result<i32, ProcessError> {
        if self.go.write_all(b"G").is_err() {
            // The child died while waiting.
        }
        drop(self.go);
        let buf = read_report(&mut self.report, "container start")?;
        if buf.is_empty() {
            Ok(self.pid)
        } else {
            let _ = sys::waitpid_blocking(self.pid);
            Err(parse_failure(&buf))
        }
    }

    /// Kills and reaps a created process that will not be started.
    pub fn abort(&mut self) {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        self.reap();
    }

    fn reap(&mut self) {
        let _ = sys::waitpid_blocking(self.pid);
    }
}

/// Closes every descriptor above stderr. The monitor calls it first thing:
/// what its starter had open must not reach a container.
pub fn close_inherited_fds() {
    sys::close_fds_from(3);
}

/// Reports a failure to the parent and returns the exit code to use.
fn fail(rep: &mut File, code: i32, message: &str) -> i32 {
    let _ = rep.write_all(format!("E{code} {message}").as_bytes());
    code
}

fn child_main(
    spec: &ContainerSpec,
    stdio: ChildStdio,
    filesystems: &[Option<File>],
    mut go: File,
    mut rep: File,
    joined: Joined,
) -> i32 {
    sys::set_pdeathsig(libc::SIGKILL);
    if joined.pid.is_some() {
        // Visible in the other container's pid namespace from now on: its
        // processes must not reach our descriptors (host paths, namespace
        // files) through /proc/PID before the exec makes us dumpable again.
        sys::set_not_dumpable();
    }
    if let Err(e) = set_oom_score_adj(spec.security.oom_score_adj) {
        return fail(&mut rep, EXIT_ENGINE, &e);
    }
    // Another container's IPC namespace and /dev/shm, before anything is
    // mounted (/dev/mqueue belongs to the IPC namespace of its mounter).
    let shm = match joined.enter_ipc() {
        Ok(s) => s,
        Err(e) => return fail(&mut rep, EXIT_ENGINE, &e),
    };
    let shm = match (&shm, spec.no_dev_shm) {
        (Some(tree), _) => Shm::Joined(tree),
        (None, true) => Shm::None,
        (None, false) => Shm::New,
    };
    // Read before pivot_root: the filter file is a host path.
    let filters = match load_filters(spec) {
        Ok(f) => f,
        Err(e) => return fail(&mut rep, EXIT_ENGINE, &format!("seccomp: {e}")),
    };
    // The root filesystem is set up while the parent moves us into our
    // cgroup (a cgroup v1 migration waits for an RCU grace period, ~10 ms
    // here): only the cgroup namespace and the exec must come after it.
    let prepared = match setup_container(spec, &stdio, filesystems, shm) {
        Ok(p) => p,
        Err(e) => return fail(&mut rep, EXIT_ENGINE, &e),
    };
    drop(stdio);
    let init = if spec.init {
        match crate::init::sealed_init() {
            Ok(fd) => Some(fd),
            Err(e) => return fail(&mut rep, EXIT_ENGINE, &format!("init: {e}")),
        }
    } else {
        None
    };
    let mut b = [0u8; 1];
    if go.read_exact(&mut b).is_err() {
        return EXIT_ENGINE;
    }
    if spec.host_namespaces.cgroup {
        // --cgroupns host: the host's cgroup namespace.
    } else if let Err(e) = sys::unshare(libc::CLONE_NEWCGROUP) {
        return fail(&mut rep, EXIT_ENGINE, &format!("cgroup namespace: {e}"));
    }
    let confine = Confinement {
        seccomp: filters.as_ref(),
        caps: if spec.privileged {
            None
        } else {
            spec.security.capabilities
        },
        no_new_privs: spec.security.no_new_privileges,
    };
    // Last before the capabilities go (raising a hard limit needs
    // CAP_SYS_RESOURCE), after the setup's descriptors are closed.
    if let Err(e) = set_rlimits(&spec.security.rlimits) {
        return fail(&mut rep, EXIT_ENGINE, &e);
    }
    finish_and_exec(init, prepared, &confine, &mut go, &mut rep)
}

/// The kernel's resource for a `--ulimit` name (Docker's list).
pub fn rlimit_resource(name: &str) -> Option<rustix::process::Resource> {
    use rustix::process::Resource as R;
    Some(match name {
        "core" => R::Core,
        "cpu" => R::Cpu,
        "data" => R::Data,
        "fsize" => R::Fsize,
        "locks" => R::Locks,
        "memlock" => R::Memlock,
        "msgqueue" => R::Msgqueue,
        "nice" => R::Nice,
        "nofile" => R::Nofile,
        "nproc" => R::Nproc,
        "rss" => R::Rss,
        "rtprio" => R::Rtprio,
        "rttime" => R::Rttime,
        "sigpending" => R::Sigpending,
        "stack" => R::Stack,
        _ => return None,
    })
}

/// `--oom-score-adj` for the calling process (lowering it needs
/// CAP_SYS_RESOURCE: EACCES fails the start, as with runc).
fn set_oom_score_adj(adj: Option<i32>) -> Result<(), String> {
    let Some(adj) = adj else {
        return Ok(());
    };
    std::fs::write("/proc/self/oom_score_adj", adj.to_string())
        .map_err(|e| format!("write /proc/self/oom_score_adj: {}", describe_errno(&e)))
}

/// `--ulimit`s, in runc's words when the kernel refuses one (raising a
/// hard limit without CAP_SYS_RESOURCE: EPERM, the container does not
/// start, as with runc).
fn set_rlimits(limits: &[crate::Rlimit]) -> Result<(), String> {
    for l in limits {
        let resource =
            rlimit_resource(&l.name).ok_or_else(|| format!("invalid ulimit type: {}", l.name))?;
        // u64::MAX is RLIM_INFINITY.
        let limit = rustix::process::Rlimit {
            current: Some(l.soft).filter(|v| *v != u64::MAX),
            maximum: Some(l.hard).filter(|v| *v != u64::MAX),
        };
        rustix::process::setrlimit(resource, limit).map_err(|e| {
            format!(
                "error during container init: error setting rlimits for ready process: error setting rlimit type {}: {}",
                resource as i32,
                describe_errno(&e.into())
            )
        })?;
    }
    Ok(())
}

/// `--device`s, made inside the new root (after /dev, before the user's
/// mounts, so no node lands in a host directory): the host node's type,
/// number, mode and owner. A path that is already there is left as it is,
/// as runc leaves it. What the container may do with a node is the device
/// cgroup's business, not the node's.
fn make_devices(devices: &[crate::Device]) -> Result<(), String> {
    for d in devices {
        let kind = match d.kind {
            'c' => libc::S_IFCHR,
            'b' => libc::S_IFBLK,
            k => return Err(format!("device {}: bad type {k}", d.path.display())),
        };
        if let Some(parent) = d.path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        sys::umask(0);
        let made = sys::mknod(&d.path, kind | (d.mode & 0o7777), d.major, d.minor);
        sys::umask(0o022);
        match made {
            Ok(()) => std::os::unix::fs::lchown(&d.path, Some(d.uid), Some(d.gid))
                .map_err(|e| format!("chown {}: {e}", d.path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("creating device {}: {e}", d.path.display())),
        }
    }
    Ok(())
}

/// The container's seccomp filters: none when unconfined; else the file
/// the engine compiled.
pub fn load_filters(spec: &ContainerSpec) -> Result<Option<CompiledFilters>, String> {
    if !spec.seccomp || spec.privileged {
        return Ok(None);
    }
    let filters = match &spec.security.seccomp_filter {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            CompiledFilters::from_bytes(&bytes)
        }
        // The engine compiles every confined container's filter (and
        // upgrades older specs) before the monitor starts: the compiler is
        // kept out of the monitor's binary.
        None => return Err("the container has no compiled seccomp filter".into()),
    };
    filters.map(Some).map_err(|e| e.to_string())
}

/// What the setup resolved: the process to exec and whom to exec it as.
struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    user: ResolvedUser,
    arg0: String,
    path_env: String,
}

fn setup_container(
    spec: &ContainerSpec,
    stdio: &ChildStdio,
    filesystems: &[Option<File>],
    shm: Shm,
) -> Result<Prepared, String> {
    own_session_and_stdio(stdio)?;
    // Every host-side descriptor this sets up (mount sources, the console)
    // is closed when it returns: none may be open when the working
    // directory is resolved below.
    setup_rootfs(spec, stdio, filesystems, shm)?;
    if !spec.hostname.is_empty() && !spec.host_namespaces.uts {
        sys::sethostname(&spec.hostname).map_err(|e| format!("sethostname: {e}"))?;
    }
    if !spec.domainname.is_empty() && !spec.host_namespaces.uts {
        sys::setdomainname(&spec.domainname).map_err(|e| format!("setdomainname: {e}"))?;
    }
    if spec.network == NetworkMode::None {
        sys::loopback_up().map_err(|e| format!("loopback: {e}"))?;
    }

    let mut prepared = prepare(&spec.args, &spec.env, &spec.user)?;
    for g in &spec.group_add {
        let gid = resolve_group(g)?;
        if !prepared.user.groups.contains(&gid) {
            prepared.user.groups.push(gid);
        }
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    // A missing working directory is made, owned by root (0755), as
    // Docker's daemon makes it whatever `-u` says.
    if std::fs::metadata(cwd).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cwd)
            .map_err(|e| format!("creating working directory {cwd}: {e}"))?;
    }
    enter_cwd(cwd)?;
    Ok(prepared)
}

/// chdir to the process's working directory, and make sure it is inside the
/// container's root: a path through a descriptor that leads outside it
/// (`/proc/self/fd/N`, the CVE-2024-21626 class) is refused.
fn enter_cwd(cwd: &str) -> Result<(), String> {
    std::env::set_current_dir(cwd).map_err(|e| {
        format!(
            "chdir to cwd (\"{cwd}\") set in config.json failed: {}",
            describe_errno(&e)
        )
    })?;
    // getcwd(3) fails (ENOENT, "(unreachable)") for a directory that is not
    // below the process's root.
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(format!(
            "current working directory is outside of container mount namespace root -- possible container breakout detected (cwd \"{cwd}\")"
        )),
    }
}

/// The overlay root, pivot_root, the kernel file systems, the user's mounts
/// and the masks.
fn setup_rootfs(
    spec: &ContainerSpec,
    stdio: &ChildStdio,
    filesystems: &[Option<File>],
    shm: Shm,
) -> Result<(), String> {
    sys::mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "")
        .map_err(|e| format!("making / private: {e}"))?;

    // Host-side sources must be opened before the host root goes away.
    let mut sources: Vec<Option<File>> = Vec::with_capacity(spec.mounts.len());
    for (i, m) in spec.mounts.iter().enumerate() {
        sources.push(match m.kind {
            MountKind::Filesystem { .. } => match filesystems.get(i) {
                Some(Some(f)) => Some(
                    f.try_clone()
                        .map_err(|e| format!("volume at {}: {e}", m.destination.display()))?,
                ),
                _ => None,
            },
            MountKind::Bind => Some(
                open_tree(&m.source, m.recursive != BindRecursive::Disabled).map_err(|e| {
                    format!(
                        "invalid mount config: bind source path does not exist: {}: {e}",
                        m.source.display()
                    )
                })?,
            ),
            MountKind::Tmpfs => None,
        });
    }
    let etc_files: Vec<(File, &str)> = [
        (&spec.etc_hostname, "/etc/hostname"),
        (&spec.etc_hosts, "/etc/hosts"),
        (&spec.etc_resolv_conf, "/etc/resolv.conf"),
    ]
    .into_iter()
    .filter_map(|(src, dst)| src.as_ref().map(|s| (s, dst)))
    .map(|(s, d)| {
        open_path(s)
            .map(|f| (f, d))
            .map_err(|e| format!("{}: {e}", s.display()))
    })
    .collect::<Result<_, _>>()?;
    let console = match &stdio.tty_path {
        Some(p) => Some(open_path(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };

    mount_rootfs(spec)?;
    let merged = &spec.rootfs.merged;
    std::env::set_current_dir(merged).map_err(|e| format!("chdir {}: {e}", merged.display()))?;
    sys::pivot_root_here().map_err(|e| format!("pivot_root: {e}"))?;
    sys::umount_detach(Path::new(".")).map_err(|e| format!("detaching the old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;

    mount_special(console.as_ref(), spec.privileged, shm, spec.shm_size)?;
    make_devices(&spec.devices)?;
    // Before /proc/sys is made read-only.
    set_sysctls(spec)?;
    for (m, src) in spec.mounts.iter().zip(&sources) {
        mount_user(m, src.as_ref())?;
    }
    for (f, dst) in &etc_files {
        bind_fd(f, Path::new(dst), false, BindRecursive::Enabled, false)?;
    }
    if !spec.privileged && !spec.unmask_system_paths {
        mask_paths()?;
    }
    if spec.rootfs.readonly {
        sys::mount(
            "",
            Path::new("/"),
            "",
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            "",
        )
        .map_err(|e| format!("read-only rootfs: {e}"))?;
    }
    Ok(())
}

/// Resolves whom to run as and what to exec, against the container's
/// /etc/passwd, /etc/group and PATH (shared by `create` and `exec`).
fn prepare(args: &[String], env: &[String], user: &str) -> Result<Prepared, String> {
    let user = resolve_user(user)?;
    let mut env: Vec<String> = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let path_env = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let arg0 = args.first().cloned().ok_or("no command specified")?;
    let to_c = |v: &[String], what: &str| {
        v.iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("{what} contains a NUL byte"))
    };
    Ok(Prepared {
        argv: to_c(args, "an argument")?,
        envp: to_c(&env, "an environment variable")?,
        user,
        arg0,
        path_env,
    })
}

/// How the last steps confine the process.
struct Confinement<'a> {
    seccomp: Option<&'a CompiledFilters>,
    /// The capability set to keep; `None` keeps them all (`--privileged`).
    caps: Option<u64>,
    no_new_privs: bool,
}

/// The last steps, shared by `create` and `exec`, in runc's order:
/// seccomp first while CAP_SYS_ADMIN is still held (unless no_new_privs
/// lets it come last), the bounding set, the user switch (keeping the
/// permitted set across it, so that a set without CAP_SETUID can still
/// switch), the process capabilities, no_new_privs and then seccomp when
/// asked, then exec — through the tiny init when asked.
fn finish_and_exec(
    init: Option<OwnedFd>,
    p: Prepared,
    confine: &Confinement<'_>,
    go: &mut File,
    rep: &mut File,
) -> i32 {
    let load = |rep: &mut File| match confine.seccomp.map(CompiledFilters::install) {
        Some(Err(e)) => Err(fail(rep, EXIT_ENGINE, &format!("seccomp: {e}"))),
        _ => Ok(()),
    };
    if !confine.no_new_privs {
        if let Err(code) = load(rep) {
            return code;
        }
    }
    if let Some(keep) = confine.caps {
        let dropped = crate::caps::drop_bounding(keep).and_then(|()| {
            rustix::thread::set_keep_capabilities(true)
                .map_err(|e| crate::caps::CapsError::Set(e.into()))
        });
        if let Err(e) = dropped {
            return fail(rep, EXIT_ENGINE, &format!("capabilities: {e}"));
        }
    }
    if let Err(e) = switch_user(&p.user) {
        return fail(rep, EXIT_ENGINE, &e);
    }
    if let Some(keep) = confine.caps {
        let set = rustix::thread::set_keep_capabilities(false)
            .map_err(|e| crate::caps::CapsError::Set(e.into()))
            .and_then(|()| crate::caps::set_process_caps(keep));
        if let Err(e) = set {
            return fail(rep, EXIT_ENGINE, &format!("capabilities: {e}"));
        }
    }
    let exe = match find_executable(&p.arg0, &p.path_env) {
        Ok(exe) => exe,
        Err((code, msg)) => return fail(rep, code, &msg),
    };
    if confine.no_new_privs {
        if let Err(e) = rustix::thread::set_no_new_privs(true) {
            return fail(rep, EXIT_ENGINE, &format!("no_new_privs: {e}"));
        }
        if let Err(code) = load(rep) {
            return code;
        }
    }
    // Ready: wait for the word to go.
    if rep.write_all(b"R").is_err() {
        return EXIT_ENGINE;
    }
    let mut b = [0u8; 1];
    if go.read_exact(&mut b).is_err() {
        return EXIT_ENGINE;
    }
    // Nothing the runtime holds may reach the container's process.
    if let Err(e) = sys::cloexec_fds_from(3) {
        return fail(rep, EXIT_ENGINE, &format!("closing descriptors: {e}"));
    }
    sys::reset_signals();
    if let Some(init) = init {
        // PID 1 is the init, which runs the command: berth-init EXE -- ARGV.
        let mut argv = Vec::with_capacity(p.argv.len() + 3);
        argv.push(CString::from(c"berth-init"));
        argv.push(exe);
        argv.push(CString::from(c"--"));
        argv.extend(p.argv.iter().cloned());
        let err = sys::execve_fd(&init, &argv, &p.envp);
        return fail(rep, EXIT_ENGINE, &format!("exec init: {err}"));
    }
    let err = sys::execve(&exe, &p.argv, &p.envp);
    exec_failure(rep, &p.arg0, err)
}

fn exec_failure(rep: &mut File, arg0: &str, err: io::Error) -> i32 {
    let code = match err.raw_os_error() {
        Some(libc::ENOENT) => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXECUTE,
    };
    fail(
        rep,
        code,
        &format!("exec: \"{arg0}\": {}", describe_errno(&err)),
    )
}

/// An errno as Go (and so runc and Docker) words it: lower case, no
/// "(os error N)".
fn describe_errno(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) => "permission denied".into(),
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::ENOEXEC) => "exec format error".into(),
        Some(libc::ENOTDIR) => "not a directory".into(),
        Some(libc::ELOOP) => "too many levels of symbolic links".into(),
        Some(n) => {
            let s = io::Error::from_raw_os_error(n).to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => s,
            }
        }
        None => e.to_string(),
    }
}

/// A detached copy of the mount tree at `p` (open_tree(OPEN_TREE_CLONE)):
/// it can be attached anywhere later, even after the host root is gone.
fn open_path(p: &Path) -> io::Result<File> {
    open_tree(p, true)
}

/// [`open_path`], with or without the mounts below `p` (`rbind`/`bind`).
fn open_tree(p: &Path, recursive: bool) -> io::Result<File> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(File::from(rustix::mount::open_tree(
        rustix::fs::CWD,
        p,
        flags,
    )?))
}

/// The file systems of volumes with local-driver options, one slot per
/// mount of `spec` (None for the others): `fsopen(type)`, `source` = the
/// device, each word of the `o` option (`ro`, `nosuid`, `nodev`, `noexec`,
/// `noatime`, `relatime`, `strictatime`, `nodiratime` become mount
/// attributes; `rw`, `suid`, `dev`, `exec`, `atime`, `defaults` are the
/// defaults; `key=value` and other flags go to the file system), then a
/// detached mount (`fsmount`). Errors name the volume's mount point and the
/// file system's own complaint.
fn open_filesystems(spec: &ContainerSpec) -> Result<Vec<Option<File>>, String> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, FsMountFlags,
        FsOpenFlags, MountAttrFlags,
    };
    let mut out = Vec::with_capacity(spec.mounts.len());
    for m in &spec.mounts {
        let MountKind::Filesystem { fstype } = &m.kind else {
            out.push(None);
            continue;
        };
        let fail = |what: &str, e: rustix::io::Errno| {
            format!(
                "error while mounting volume at {}: {fstype} {}: {what}: {}",
                m.destination.display(),
                m.source.display(),
                io::Error::from(e)
            )
        };
        let fs =
            fsopen(fstype.as_str(), FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| fail("type", e))?;
        let mut attrs = MountAttrFlags::empty();
        for word in m.options.split(',').filter(|w| !w.is_empty()) {
            let attr = match word {
                "ro" => Some(MountAttrFlags::MOUNT_ATTR_RDONLY),
                "nosuid" => Some(MountAttrFlags::MOUNT_ATTR_NOSUID),
                "nodev" => Some(MountAttrFlags::MOUNT_ATTR_NODEV),
                "noexec" => Some(MountAttrFlags::MOUNT_ATTR_NOEXEC),
                "noatime" => Some(MountAttrFlags::MOUNT_ATTR_NOATIME),
                "relatime" => Some(MountAttrFlags::MOUNT_ATTR_RELATIME),
                "strictatime" => Some(MountAttrFlags::MOUNT_ATTR_STRICTATIME),
                "nodiratime" => Some(MountAttrFlags::MOUNT_ATTR_NODIRATIME),
                "rw" | "suid" | "dev" | "exec" | "atime" | "defaults" => {
                    Some(MountAttrFlags::empty())
                }
                _ => None,
            };
            match (attr, word.split_once('=')) {
                (Some(a), _) => attrs |= a,
                (None, Some((k, v))) => {
                    fsconfig_set_string(&fs, k, v).map_err(|e| fail(word, e))?
                }
                (None, None) => fsconfig_set_flag(&fs, word).map_err(|e| fail(word, e))?,
            }
        }
        fsconfig_set_string(&fs, "source", m.source.as_os_str()).map_err(|e| fail("source", e))?;
        fsconfig_create(&fs).map_err(|e| fail("mount", e))?;
        let mnt =
            fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| fail("mount", e))?;
        out.push(Some(File::from(mnt)));
    }
    Ok(out)
}

/// Docker's tmpfs options: `nosuid,nodev,noexec` unless `suid`, `dev` or
/// `exec` say otherwise; `ro`/`rw`; the rest (`size=64m`, `mode=1777`,
/// `uid=`, `gid=`, `nr_inodes=`) goes to the file system.
fn tmpfs_options(options: &str, readonly: bool) -> (libc::c_ulong, String) {
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if readonly {
        flags |= libc::MS_RDONLY;
    }
    let mut data = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "exec" => flags &= !libc::MS_NOEXEC,
            "noexec" => flags |= libc::MS_NOEXEC,
            "suid" => flags &= !libc::MS_NOSUID,
            "nosuid" => flags |= libc::MS_NOSUID,
            "dev" => flags &= !libc::MS_NODEV,
            "nodev" => flags |= libc::MS_NODEV,
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "atime" | "relatime" | "noatime" | "strictatime" | "nodiratime" | "diratime" => {
                flags |= match o {
                    "noatime" => libc::MS_NOATIME,
                    "strictatime" => libc::MS_STRICTATIME,
                    "nodiratime" => libc::MS_NODIRATIME,
                    _ => 0,
                }
            }
            _ => data.push(o),
        }
    }
    (flags, data.join(","))
}

fn mount_rootfs(spec: &ContainerSpec) -> Result<(), String> {
    let r = &spec.rootfs;
    let lower = r
        .lower
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        r.upper.display(),
        r.work.display()
    );
    // mount(2)'s options are one page: about 40 layers. Deeper images (Docker
    // allows 125) give the overlay its layers one by one (`lowerdir+`, the
    // mount API, Linux ≥ 6.8).
    if data.len() >= OPTIONS_MAX {
        return mount_rootfs_layer_by_layer(r).map_err(|e| {
            format!(
                "mounting the rootfs overlay ({} layers): {e}",
                r.lower.len()
            )
        });
    }
    sys::mount("overlay", &r.merged, "overlay", 0, &data)
        .map_err(|e| format!("mounting the rootfs overlay: {e}"))
}

/// What mount(2) takes as options (a page, less the terminating NUL).
const OPTIONS_MAX: usize = 4095;

/// The overlay through the mount API: `fsopen("overlay")`, one `lowerdir+`
/// per layer (topmost first), then attached at `merged`.
fn mount_rootfs_layer_by_layer(r: &crate::spec::RootFs) -> io::Result<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags,
        FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in &r.lower {
        fsconfig_set_string(&fs, "lowerdir+", l.as_os_str())?;
    }
    fsconfig_set_string(&fs, "upperdir", r.upper.as_os_str())?;
    fsconfig_set_string(&fs, "workdir", r.work.as_os_str())?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        &r.merged,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

fn mkdir_p(p: &str) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
        .map_err(|e| format!("creating {p}: {e}"))
}

/// /proc, /sys, /dev and friends, inside the new root.
fn mount_special(
    console: Option<&File>,
    sys_rw: bool,
    shm: Shm,
    shm_size: u64,
) -> Result<(), String> {
    // The kernel's file systems go where the image cannot redirect them.
    for dir in ["/proc", "/sys", "/dev"] {
        if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{dir} cannot be a symlink in the image"));
        }
    }
    mkdir_p("/proc")?;
    sys::mount("proc", Path::new("/proc"), "proc", NOSUID_NODEV_NOEXEC, "")
        .map_err(|e| format!("mounting /proc: {e}"))?;
    mkdir_p("/sys")?;
    sys::mount(
        "sysfs",
        Path::new("/sys"),
        "sysfs",
        if sys_rw {
            NOSUID_NODEV_NOEXEC
        } else {
            NOSUID_NODEV_NOEXEC | libc::MS_RDONLY
        },
        "",
    )
    .map_err(|e| format!("mounting /sys: {e}"))?;
    mkdir_p("/dev")?;
    sys::mount(
        "tmpfs",
        Path::new("/dev"),
        "tmpfs",
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        "mode=755,size=65536k",
    )
    .map_err(|e| format!("mounting /dev: {e}"))?;
    sys::umask(0);
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = PathBuf::from("/dev").join(name);
        sys::mknod(&p, libc::S_IFCHR | 0o666, major, minor)
            .map_err(|e| format!("creating /dev/{name}: {e}"))?;
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/core", "/proc/kcore"),
    ] {
        // As runc: /dev/core only where the kernel has a /proc/kcore
        // (CONFIG_PROC_KCORE), never a dangling link.
        if link == "/dev/core" && !Path::new("/proc/kcore").exists() {
            continue;
        }
        std::os::unix::fs::symlink(target, link).map_err(|e| format!("creating {link}: {e}"))?;
    }
    sys::umask(0o022);
    for (dir, fstype, flags, data) in [
        (
            "/dev/pts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        (
            "/dev/shm",
            "tmpfs",
            NOSUID_NODEV_NOEXEC,
            // Docker's default: 64 MiB.
            &*format!(
                "mode=1777,size={}",
                if shm_size > 0 { shm_size } else { 67_108_864 }
            ),
        ),
        ("/dev/mqueue", "mqueue", NOSUID_NODEV_NOEXEC, ""),
    ] {
        if dir == "/dev/shm" {
            match shm {
                Shm::New => {}
                // `--ipc none`: no /dev/shm, as Docker's.
                Shm::None => continue,
                Shm::Joined(tree) => {
                    mkdir_p(dir)?;
                    bind_fd(tree, Path::new(dir), false, BindRecursive::Disabled, true)?;
                    continue;
                }
            }
        }
        mkdir_p(dir)?;
        sys::mount(fstype, Path::new(dir), fstype, flags, data)
            .map_err(|e| format!("mounting {dir}: {e}"))?;
    }
    if let Some(c) = console {
        File::create("/dev/console").map_err(|e| format!("creating /dev/console: {e}"))?;
        bind_fd(
            c,
            Path::new("/dev/console"),
            false,
            BindRecursive::Enabled,
            false,
        )?;
    }
    Ok(())
}

/// Attaches the detached mount `src` (from [`open_path`]) at `dst` inside
/// the container, creating the mount point like its source (file or dir).
/// With `readonly`, the whole tree is made read-only before it is attached
/// (recursively unless `recursive` says otherwise).
fn bind_fd(
    src: &File,
    dst: &Path,
    readonly: bool,
    recursive: BindRecursive,
    is_dir_hint: bool,
) -> Result<(), String> {
    use rustix::mount::{move_mount, MoveMountFlags};
    let is_dir = src.metadata().map(|m| m.is_dir()).unwrap_or(is_dir_hint);
    ensure_mountpoint(dst, is_dir)?;
    if readonly {
        make_readonly(src, dst, recursive)?;
    }
    let target = open_mount_target(dst)?;
    move_mount(
        src,
        "",
        &target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| format!("bind-mounting {}: {e}", dst.display()))
}

/// `MOUNT_ATTR_RDONLY` on a detached tree: the top mount only, or every
/// mount in it (Docker's `bind-recursive`; `enabled` falls back to the top
/// mount on kernels without mount_setattr, `readonly` then fails).
fn make_readonly(src: &File, dst: &Path, recursive: BindRecursive) -> Result<(), String> {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let all = matches!(recursive, BindRecursive::Enabled | BindRecursive::Readonly);
    match sys::mount_setattr(src, MOUNT_ATTR_RDONLY, all) {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::ENOSYS) && recursive != BindRecursive::Readonly =>
        {
            sys::mount_setattr(src, MOUNT_ATTR_RDONLY, false)
                .map_err(|e| format!("making {} read-only: {e}", dst.display()))
        }
        Err(e) => Err(format!("making {} read-only: {e}", dst.display())),
    }
}

/// Opens a mount destination (`O_PATH`) inside the container's root, and
/// checks where it really is through that descriptor: the mount then goes
/// exactly there, so nothing (a volume shared with another container) can
/// swap a path component between the check and the mount. Magic links
/// (`/proc/self/fd/N`) are not followed; the image's symlinks are, within
/// the root. Nothing may be mounted onto /proc or /sys or below them.
fn open_mount_target(dst: &Path) -> Result<OwnedFd, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    // The kernel answers EAGAIN when a rename raced the lookup: try again.
    let mut tries = 0;
    let fd = loop {
        match rustix::fs::openat2(
            rustix::fs::CWD,
            dst,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::AGAIN) if tries < 64 => tries += 1,
            r => break r.map_err(|e| format!("resolving {}: {e}", dst.display()))?,
        }
    };
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| format!("resolving {}: {e}", dst.display()))?;
    for kernel_fs in ["/proc", "/sys"] {
        if real.starts_with(kernel_fs) {
            return Err(format!(
                "error mounting to rootfs at \"{}\": \"{}\" cannot be mounted because it is inside {kernel_fs}",
                dst.display(),
                real.display()
            ));
        }
    }
    Ok(fd)
}

fn ensure_mountpoint(dst: &Path, is_dir: bool) -> Result<(), String> {
    if std::fs::metadata(dst).is_ok() {
        return Ok(());
    }
    if is_dir {
        mkdir_p(&dst.display().to_string())
    } else {
        if let Some(parent) = dst.parent() {
            mkdir_p(&parent.display().to_string())?;
        }
        File::create(dst)
            .map(|_| ())
            .map_err(|e| format!("creating {}: {e}", dst.display()))
    }
}

fn mount_user(m: &crate::spec::Mount, src: Option<&File>) -> Result<(), String> {
    match (&m.kind, src) {
        (MountKind::Bind, Some(f)) => bind_fd(f, &m.destination, m.readonly, m.recursive, true),
        (MountKind::Tmpfs, _) => {
            ensure_mountpoint(&m.destination, true)?;
            let (flags, data) = tmpfs_options(&m.options, m.readonly);
            // Mounted through the descriptor that was checked.
            let target = open_mount_target(&m.destination)?;
            let via = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
            sys::mount("tmpfs", &via, "tmpfs", flags, &data)
                .map_err(|e| format!("mounting tmpfs at {}: {e}", m.destination.display()))
        }
        (MountKind::Filesystem { .. }, Some(f)) => {
            bind_fd(f, &m.destination, m.readonly, BindRecursive::Disabled, true)
        }
        (MountKind::Bind | MountKind::Filesystem { .. }, None) => {
            Err(format!("mount {} has no source", m.destination.display()))
        }
    }
}

/// Writes `--sysctl` values into the container's own /proc/sys: only the
/// kernel's namespaced settings, and not those of a namespace shared with
/// the host (runc's rule, in its words).
fn set_sysctls(spec: &ContainerSpec) -> Result<(), String> {
    for name in spec.sysctls.keys() {
        if !sysctl_is_namespaced(name) {
            return Err(format!("sysctl {name:?} is not namespaced"));
        }
        if name.starts_with("net.") && spec.network == NetworkMode::Host {
            return Err(format!(
                "sysctl {name:?} not allowed in host network namespace"
            ));
        }
        if !name.starts_with("net.") && spec.host_namespaces.ipc {
            return Err(format!("sysctl {name:?} not allowed in host IPC namespace"));
        }
    }
    // Every name checked before anything is written.
    for (name, value) in &spec.sysctls {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| format!("writing sysctl {name:?}: {e}"))?;
    }
    Ok(())
}

/// The settings a container may change (Docker's list): the IPC ones,
/// `fs.mqueue.*` and `net.*`; each part a plain name (no `/`, no `..`).
pub fn sysctl_is_namespaced(name: &str) -> bool {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let plain = name.split('.').all(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    plain
        && (IPC.contains(&name)
            || (name.starts_with("fs.mqueue.") && name.len() > "fs.mqueue.".len())
            || (name.starts_with("net.") && name.len() > "net.".len()))
}

/// Docker's default masked and read-only paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mask_paths() -> Result<(), String> {
    for p in MASKED_PATHS {
        let path = Path::new(p);
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => sys::mount("tmpfs", path, "tmpfs", libc::MS_RDONLY, "size=0k"),
            Ok(_) => sys::mount("/dev/null", path, "", libc::MS_BIND, ""),
            Err(_) => continue,
        }
        .map_err(|e| format!("masking {p}: {e}"))?;
    }
    for p in READONLY_PATHS {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        sys::mount(p, path, "", libc::MS_BIND | libc::MS_REC, "")
            .map_err(|e| format!("read-only {p}: {e}"))?;
        sys::mount(
            "",
            path,
            "",
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
            "",
        )
        .map_err(|e| format!("read-only {p}: {e}"))?;
    }
    Ok(())
}

struct ResolvedUser {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    home: String,
}

/// Resolves `user[:group]` (names or numbers) against the container's
/// /etc/passwd and /etc/group, as Docker does.
fn resolve_user(spec: &str) -> Result<ResolvedUser, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let (uid, mut gid, home, name) = match (&entry, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse::<u32>()
                .map_err(|_| format!("invalid uid in /etc/passwd for {u}"))?,
            f[3].parse::<u32>().unwrap_or(0),
            f[5].to_string(),
            Some(f[0].to_string()),
        ),
        (None, Ok(n)) => (n, 0, "/".to_string(), None),
        (None, Err(_)) => {
            return Err(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        }
    };
    if let Some(g) = g {
        gid = match group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == g)
        {
            Some(f) => f[2]
                .parse()
                .map_err(|_| format!("invalid gid in /etc/group for {g}"))?,
            None => g.parse().map_err(|_| {
                format!("unable to find group {g}: no matching entries in group file")
            })?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        groups,
        home,
    })
}

/// A group name (looked up in the container's /etc/group) or number.
fn resolve_group(g: &str) -> Result<u32, String> {
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let found = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == g)
        .and_then(|f| f[2].parse().ok());
    found
        .or_else(|| g.parse().ok())
        .ok_or_else(|| format!("Unable to find group {g}: no matching entries in group file"))
}

fn switch_user(u: &ResolvedUser) -> Result<(), String> {
    sys::setgroups(&u.groups).map_err(|e| format!("setgroups: {e}"))?;
    sys::setresgid(u.gid).map_err(|e| format!("setgid {}: {e}", u.gid))?;
    sys::setresuid(u.uid).map_err(|e| format!("setuid {}: {e}", u.uid))?;
    Ok(())
}

/// Finds the command as exec(3p) would, against the container's PATH.
fn find_executable(arg0: &str, path_env: &str) -> Result<CString, (i32, String)> {
    let to_c = |s: &str| {
        CString::new(s).map_err(|_| (EXIT_ENGINE, "command contains a NUL byte".to_string()))
    };
    if arg0.contains('/') {
        return match std::fs::metadata(arg0) {
            Ok(m) if m.is_dir() => Err((
                EXIT_CANNOT_EXECUTE,
                format!("exec: \"{arg0}\": is a directory"),
            )),
            Ok(_) => to_c(arg0),
            Err(_) => Err((
                EXIT_NOT_FOUND,
                format!("exec: \"{arg0}\": stat {arg0}: no such file or directory"),
            )),
        };
    }
    let mut denied = None;
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = format!("{dir}/{arg0}");
        match std::fs::metadata(&cand) {
            Ok(m) if m.is_file() => {
                if rustix::fs::access(cand.as_str(), rustix::fs::Access::EXEC_OK).is_ok() {
                    return to_c(&cand);
                }
                denied.get_or_insert(cand);
            }
            _ => {}
        }
    }
    match denied {
        Some(_) => Err((
            EXIT_CANNOT_EXECUTE,
            format!("exec: \"{arg0}\": permission denied"),
        )),
        None => Err((
            EXIT_NOT_FOUND,
            format!("exec: \"{arg0}\": executable file not found in $PATH"),
        )),
    }
}

/// What `berth exec` runs inside a running container.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExecSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    /// `exec --privileged`: every capability berth holds.
    pub privileged: bool,
    /// The container's confinement (its capabilities and no_new_privs; the
    /// filter itself comes as `exec_in`'s `seccomp`).
    pub security: Security,
}

/// The container's /dev/shm.
#[derive(Clone, Copy)]
enum Shm<'a> {
    /// Its own tmpfs.
    New,
    /// None at all (`--ipc none`).
    None,
    /// The one of the container whose IPC namespace it joined (a detached
    /// copy of that mount).
    Joined(&'a File),
}

/// Another container's namespaces (`--pid container:X`, `--ipc
/// container:X`), opened and checked by the monitor before the clone.
struct Joined {
    pid: Option<File>,
    /// Its network namespace: entered by the monitor for the clone only.
    net: Option<File>,
    /// Its IPC namespace, mount namespace and root.
    ipc: Option<[File; 3]>,
}

impl Joined {
    fn open(j: &crate::JoinNamespaces) -> Result<Joined, ProcessError> {
        let fail = |what: &str, e: String| ProcessError::Container {
            code: EXIT_ENGINE,
            message: format!("cannot join {what} of the other container: {e}"),
        };
        let pid = match &j.pid {
            Some(t) => pin_process(t.pid, &t.cgroup, &["ns/pid"])
                .map_err(|e| fail("PID", e))?
                .pop(),
            None => None,
        };
        let ipc = match &j.ipc {
            Some(t) => {
                let files = pin_process(t.pid, &t.cgroup, &["ns/ipc", "ns/mnt", "root"])
                    .map_err(|e| fail("IPC", e))?;
                let [a, b, c]: [File; 3] = files
                    .try_into()
                    .map_err(|_| fail("IPC", "namespace files missing".into()))?;
                Some([a, b, c])
            }
            None => None,
        };
        let net = match &j.net {
            Some(t) => pin_process(t.pid, &t.cgroup, &["ns/net"])
                .map_err(|e| fail("the network", e))?
                .pop(),
            None => None,
        };
        Ok(Joined { pid, ipc, net })
    }

    /// In the container's child: enters the other container's IPC
    /// namespace and takes a detached copy of its /dev/shm (a tmpfs),
    /// going through its mount namespace and back to our own.
    fn enter_ipc(self) -> Result<Option<File>, String> {
        let Some([ipc, mnt, root]) = self.ipc else {
            return Ok(None);
        };
        drop(self.pid);
        sys::setns(&ipc, libc::CLONE_NEWIPC)
            .map_err(|e| format!("joining the IPC namespace of the other container: {e}"))?;
        let own =
            File::open("/proc/self/ns/mnt").map_err(|e| format!("our mount namespace: {e}"))?;
        sys::setns(&mnt, libc::CLONE_NEWNS)
            .map_err(|e| format!("entering the other container's mount namespace: {e}"))?;
        let tree = other_shm(&root);
        // Without the way back, nothing else may happen in this process.
        sys::setns(&own, libc::CLONE_NEWNS)
            .map_err(|e| format!("going back to our mount namespace: {e}"))?;
        tree.map(Some)
    }
}

/// The other container's /dev/shm, resolved inside its root (the
/// container controls every component), which must be a tmpfs: a detached
/// copy of that one mount, without what is mounted below it.
fn other_shm(root: &File) -> Result<File, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::mount::OpenTreeFlags;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let fd = rustix::fs::openat2(
        root,
        "dev/shm",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| format!("the other container's /dev/shm: {e}"))?;
    let fs =
        rustix::fs::fstatfs(&fd).map_err(|e| format!("the other container's /dev/shm: {e}"))?;
    // The root of a tmpfs mount: not a directory of its /dev (also a
    // tmpfs), whose mount allows device nodes.
    let mount_root = rustix::fs::statx(
        &fd,
        "",
        rustix::fs::AtFlags::EMPTY_PATH,
        rustix::fs::StatxFlags::BASIC_STATS,
    )
    .is_ok_and(|st| {
        let root = rustix::fs::StatxAttributes::MOUNT_ROOT;
        st.stx_attributes_mask.contains(root) && st.stx_attributes.contains(root)
    });
    if fs.f_type as i64 != TMPFS_MAGIC || !mount_root {
        return Err("the other container's /dev/shm is not a tmpfs mount".into());
    }
    rustix::mount::open_tree(
        &fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map(File::from)
    .map_err(|e| format!("copying the other container's /dev/shm mount: {e}"))
}

/// Opens `/proc/PID/<path>` for each of `paths` (namespace files, `root`)
/// of a container's first process, and proves they were that process's:
/// a pidfd pins it first, and once everything is open it must still be
/// alive and in the cgroup `expect_cgroup` (relative to each hierarchy's
/// root). A PID recycled by any other process fails the check, so nothing
/// of the host is ever taken for a container's.
pub fn pin_process(pid: i32, expect_cgroup: &str, paths: &[&str]) -> Result<Vec<File>, String> {
    let pidfd = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| format!("bad pid {pid}"))
        .and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                .map_err(|e| e.to_string())
        })?;
    let files = paths
        .iter()
        .map(|p| File::open(format!("/proc/{pid}/{p}")).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let want = format!("/{}", expect_cgroup.trim_matches('/'));
    let in_cgroup = cgroups
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|p| p == want);
    let alive = rustix::event::poll(
        &mut [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )],
        Some(&rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    )
    .is_ok_and(|n| n == 0);
    if !in_cgroup || !alive {
        return Err(format!("process {pid} is not the container's"));
    }
    Ok(files)
}

/// Runs `spec` inside the namespaces of the running container whose init is
/// `pid`, in a new session, with `stdio` as its descriptors 0-2 (with
/// `stdio.tty_path`, that terminal becomes its controlling terminal).
/// `place` runs in a child before it enters the namespaces (put it into the
/// container's cgroup there). Returns the PID of a host-side child of the
/// caller whose exit status is the command's.
///
/// The caller must be single-threaded (the exec monitor): it forks.
pub fn exec_in(
    pid: i32,
    expect_cgroup: &str,
    spec: &ExecSpec,
    stdio: ChildStdio,
    seccomp: Option<&CompiledFilters>,
    place: impl FnOnce() -> Result<(), String>,
) -> Result<i32, ProcessError> {
    let gone = |what: String| ProcessError::Container {
        code: EXIT_ENGINE,
        message: format!("container is not running: {what}"),
    };
    let files = pin_process(
        pid,
        expect_cgroup,
        &[
            "ns/ipc",
            "ns/uts",
            "ns/net",
            "ns/pid",
            "ns/cgroup",
            "ns/mnt",
        ],
    )
    .map_err(gone)?;
    let nsfds: Vec<(File, i32)> = files
        .into_iter()
        .zip([
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWNS,
        ])
        .collect();
    let (rep_r, rep_w) = pipe()?;
    match sys::fork().map_err(io_err("fork"))? {
        Forked::Child => {
            drop(rep_r);
            let mut rep = rep_w;
            // Not dumpable: once in the container's pid namespace, its root
            // must not reach our descriptors through /proc/PID/fd before
            // the exec (execve makes the new program dumpable again).
            sys::set_not_dumpable();
            if let Err(e) = place() {
                sys::exit_now(fail(&mut rep, EXIT_ENGINE, &e));
            }
            for (f, flag) in &nsfds {
                if let Err(e) = sys::setns(f, *flag) {
                    sys::exit_now(fail(
                        &mut rep,
                        EXIT_ENGINE,
                        &format!("entering the container: {e}"),
                    ));
                }
            }
            drop(nsfds);
            // Entering a pid namespace applies to children: fork once more.
            match sys::fork() {
                Ok(Forked::Child) => {
                    if let Err(e) = own_session_and_stdio(&stdio) {
                        sys::exit_now(fail(&mut rep, EXIT_ENGINE, &e));
                    }
                    drop(stdio);
                    let code = exec_child(spec, seccomp, &mut rep);
                    sys::exit_now(code)
                }
                Ok(Forked::Parent(inner)) => {
                    drop(rep);
                    // This waiter never execs: it must not keep the
                    // caller's descriptors (the command's stdin pipe would
                    // never see EOF, the caller's notify pipe never close).
                    sys::close_fds_from(0);
                    sys::block_all_signals().ok();
                    // Relay: forward nothing here; the caller signals the inner pid's parent group.
                    let status = sys::waitpid_blocking(inner).unwrap_or(255 << 8);
                    sys::exit_now(sys::exit_code_of(status))
                }
                Err(e) => sys::exit_now(fail(&mut rep, EXIT_ENGINE, &format!("fork: {e}"))),
            }
        }
        Forked::Parent(child) => {
            drop(rep_w);
            drop(stdio);
            let mut rep_r = rep_r;
            let buf = read_report(&mut rep_r, "exec")?;
            // "R" alone: ready and exec'd; anything after it is a failure.
            let buf = buf.strip_prefix(b"R").unwrap_or(&buf);
            if buf.is_empty() {
                Ok(child)
            } else {
                let _ = sys::waitpid_blocking(child);
                Err(parse_failure(buf))
            }
        }
    }
}

/// A new pseudo-terminal in the devpts of the running container whose first
/// process is `pid` (as runc allocates an exec's): inside the container it
/// is `/dev/pts/N` of its own devpts, never a host terminal. `ptmx` is
/// resolved inside the container's root (`RESOLVE_IN_ROOT`, no magic
/// links) and must be the devpts multiplexer; the user side is opened from
/// the master (`TIOCGPTPEER`), not by path. Returns (master, user side).
pub fn open_container_pty(pid: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::pty::OpenptFlags;
    let root = rustix::fs::open(
        format!("/proc/{pid}/root").as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let master = rustix::fs::openat2(
        &root,
        "dev/pts/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    let st = rustix::fs::fstat(&master)?;
    let fs = rustix::fs::fstatfs(&master)?;
    const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
    if (st.st_mode & libc::S_IFMT) != libc::S_IFCHR
        || rustix::fs::major(st.st_rdev) != 5
        || rustix::fs::minor(st.st_rdev) != 2
        || fs.f_type as i64 != DEVPTS_SUPER_MAGIC
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the container's /dev/pts/ptmx is not a devpts multiplexer",
        ));
    }
    rustix::pty::unlockpt(&master)?;
    let user = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    Ok((master, user))
}

/// A session of its own, `stdio` as descriptors 0-2, and with a terminal
/// that terminal as the controlling one: never the caller's (the first
/// process and every exec'd one).
fn own_session_and_stdio(stdio: &ChildStdio) -> Result<(), String> {
    sys::setsid().map_err(|e| format!("setsid: {e}"))?;
    sys::dup2(stdio.stdin.as_raw_fd(), 0).map_err(|e| format!("stdin: {e}"))?;
    sys::dup2(stdio.stdout.as_raw_fd(), 1).map_err(|e| format!("stdout: {e}"))?;
    sys::dup2(stdio.stderr.as_raw_fd(), 2).map_err(|e| format!("stderr: {e}"))?;
    if stdio.tty_path.is_some() {
        sys::set_controlling_tty(0).map_err(|e| format!("controlling terminal: {e}"))?;
    }
    Ok(())
}

fn exec_child(spec: &ExecSpec, seccomp: Option<&CompiledFilters>, rep: &mut File) -> i32 {
    let prepared = (|| -> Result<Prepared, String> {
        let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
        enter_cwd(cwd)?;
        prepare(&spec.args, &spec.env, &spec.user)
    })();
    let p = match prepared {
        Ok(p) => p,
        Err(e) => return fail(rep, EXIT_ENGINE, &e),
    };
    // The container's rlimits and OOM score, as runc gives an exec.
    let limited = set_oom_score_adj(spec.security.oom_score_adj)
        .and_then(|()| set_rlimits(&spec.security.rlimits));
    if let Err(e) = limited {
        return fail(rep, EXIT_ENGINE, &e);
    }
    // The exec path needs no "go": a pipe that is already written to stands in.
    let (mut go_r, mut go_w) = match pipe() {
        Ok(p) => p,
        Err(e) => return fail(rep, EXIT_ENGINE, &e.to_string()),
    };
    let _ = go_w.write_all(b"G");
    let confine = Confinement {
        seccomp,
        caps: if spec.privileged {
            None
        } else {
            spec.security.capabilities
        },
        no_new_privs: spec.security.no_new_privileges,
    };
    finish_and_exec(None, p, &confine, &mut go_r, rep)
}

/// Waits for `pid` (a child of the caller) and returns Docker's exit code.
pub fn wait_exit_code(pid: i32) -> io::Result<i32> {
    sys::waitpid_blocking(pid).map(sys::exit_code_of)
}

/// Reaps `pid` if it has exited; returns Docker's exit code then.
pub fn try_wait_exit_code(pid: i32) -> Option<i32> {
    sys::waitpid_nohang(pid).map(|(_, s)| sys::exit_code_of(s))
}

/// Sends `sig` to `pid`.
pub fn send_signal(pid: i32, sig: i32) -> io::Result<()> {
    sys::kill(pid, sig)
}
