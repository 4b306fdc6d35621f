#![recursion_limit = "256"]
//! berth's engine: every verb, the one façade the CLI and the API service share.
//!
//! Owns: state transitions of images, containers and volumes; the on-disk
//! layout under the store root; per-container locks; spawning a
//! container's monitor; reconciling what the database says with what the
//! monitors wrote (`state.json`).
//!
//! Never: formats output for humans (that is the CLI's job), or keeps state
//! in memory between calls: any number of engines (CLI processes, the API
//! service) may work on one store at once.
//!
//! Invariants: data first, database row last (a row always points at
//! complete files; files without a row are garbage a later call collects);
//! removal goes the other way (mark, delete files, delete row); every
//! container operation that changes its state holds the container's lock.
//! A container being created holds its image through a claim row written
//! (under the container's lock) before its files; whether an image or a
//! layer is unused is decided in the transaction that deletes it.

mod archive;
mod build;
mod buildadd;
mod buildcache;
mod buildfs;
mod buildmount;
mod commit;
mod container;
pub mod events;
pub mod filters;
mod fsops;
mod image;
mod inspect;
pub mod inventory;
pub mod limits;
mod logdriver;
pub mod mountopt;
pub mod names;
mod netdev;
mod netstart;
mod network;
mod pull;
mod push;
mod security;
mod stats;
pub use stats::StatsSample;
mod system;
pub use system::API_VERSION;
pub mod buildcontext;
pub mod dockerfile;
pub mod dockerignore;
mod initlayer;
pub mod timeparse;
mod volume;

use std::fs::File;
use std::path::{Path, PathBuf};

use berth_store::{ContainerRow, Store, StoreError};
use berth_types::{ContainerId, Digest};

pub use archive::*;
pub use berth_runtime::monitor::{State, Status};
pub use berth_runtime::process::ExecSpec;
pub use build::*;
pub use buildcache::{ram_in_bytes, BuildCachePruneOptions, BuildCachePruneReport, CacheRecord};
pub use commit::*;
pub use container::*;
pub use fsops::*;
pub use image::*;
pub use network::*;
pub use pull::*;
pub use push::*;
pub use volume::*;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("Unable to find image '{0}' locally")]
    ImageNotFoundLocally(String),
    /// `push` of a tag this store does not have (Docker's words).
    #[error("An image does not exist locally with the tag: {0}")]
    NoLocalTag(String),
    /// Docker's daemon treats it as a missing image (its CLI then pulls).
    #[error("image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// Docker's words for a network no name, ID or prefix finds.
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// Something else that does not exist (a plugin, a driver).
    #[error("{0}")]
    NotFound(String),
    /// Refused for what the object is (a predefined network, one in use).
    #[error("{0}")]
    Forbidden(String),
    /// What berth cannot do (yet).
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Conflict(String),
    /// `attach` to a container that is not running: the docker CLI's own
    /// check (its words alone, exit 1).
    #[error("You cannot attach to a stopped container, start it first")]
    NotRunningToAttach,
    /// Something else the docker CLI checks itself (`cp`'s kinds of source
    /// and destination): its words alone, exit 1.
    #[error("{0}")]
    ClientCheck(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A build that failed: its Dockerfile, a step, the context (exit 1).
    #[error("{0}")]
    Build(String),
    /// A build whose RUN step `command` (as run: `/bin/sh -c …`) exited
    /// with `code`; `message` says so as BuildKit does, with its last
    /// output (the classic builder's words come from the other fields).
    #[error("{message}")]
    BuildRun {
        command: String,
        code: i32,
        message: String,
    },
    #[error("{message}")]
    Runtime { code: i32, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] berth_layers::LayerError),
    /// A pull (or push) the registry refused or that went wrong on the way.
    #[error(transparent)]
    Registry(#[from] berth_registry::RegistryError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    /// Docker's exit code for this error: 125 unless the command could not
    /// be executed (126) or found (127).
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Runtime { code, .. } => *code,
            EngineError::Build(_) | EngineError::BuildRun { .. } => 1,
            _ => 125,
        }
    }
    /// The HTTP status the Engine API answers with (for `berth serve`).
    pub fn http_status(&self) -> u16 {
        match self {
            EngineError::NoSuchImage(_)
            | EngineError::ImageNotFoundLocally(_)
            | EngineError::NoLocalTag(_)
            | EngineError::Registry(berth_registry::RegistryError::NotFound(_))
            | EngineError::PlatformMismatch { .. }
            | EngineError::NoSuchContainer(_)
            | EngineError::NoSuchVolume(_)
            | EngineError::NoSuchNetwork(_)
            | EngineError::NotFound(_) => 404,
            EngineError::Forbidden(_) => 403,
            EngineError::Unsupported(_) => 501,
            EngineError::Conflict(_) | EngineError::NotRunningToAttach => 409,
            EngineError::InvalidArgument(_) | EngineError::ClientCheck(_) => 400,
            _ => 500,
        }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

pub(crate) fn io_ctx(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let context = context.into();
    move |source| EngineError::Io { context, source }
}

/// Where the engine keeps its state and finds its helpers.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--root`, default /var/lib/berth.
    pub root: PathBuf,
    /// `--run-root`, default /run/berth.
    pub run_root: PathBuf,
    /// The cgroup under which every container gets its own (`berth`).
    pub cgroup_parent: String,
    /// The `berth-monitor` binary.
    pub monitor: PathBuf,
    /// The `berth` binary (what `--rm` runs to remove a container).
    pub berth: PathBuf,
    /// The config file's network keys (`bridge`, `bip`, …): defaults
    /// unless the caller read the file.
    pub network: NetworkConfig,
    /// The config file's idle-mode keys (`idle-timeout`, `idle-reclaim`).
    pub idle: IdleSettings,
}

/// The idle mode's defaults (berth's config file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdleSettings {
    /// `idle-timeout`, ns, for containers made without `--idle-timeout`
    /// (0: none idle).
    pub timeout_ns: i64,
    /// `idle-reclaim = true`: an idle container's reclaimable memory is
    /// pushed out.
    pub reclaim: bool,
}

impl Options {
    /// The store's database file: every change of a container's row (its
    /// name, config, removal), of images and networks writes it or its
    /// `-wal` beside it.
    pub fn store_file(&self) -> PathBuf {
        self.root.join("berth.db")
    }

    /// Defaults for everything but the paths the caller passes; the helper
    /// binaries are looked up next to the running executable.
    pub fn new(root: PathBuf, run_root: PathBuf, cgroup_parent: String) -> Options {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth"));
        let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        Options {
            root,
            run_root,
            cgroup_parent,
            monitor: dir.join("berth-monitor"),
            berth: exe,
            network: NetworkConfig::default(),
            idle: IdleSettings::default(),
        }
    }
}

pub struct Engine {
    opts: Options,
    store: Store,
    /// Layer tarballs as they came (import, commit, load) and configs.
    pub(crate) blobs: berth_layers::BlobStore,
    /// The host's cgroup layout, found once (None: no cgroups found).
    cgroups: std::sync::OnceLock<Option<berth_runtime::cgroups::Layout>>,
}

impl Engine {
    pub fn open(opts: Options) -> Result<Engine> {
        for d in [
            opts.root.clone(),
            opts.root.join("containers"),
            opts.root.join("layers"),
            opts.root.join("volumes"),
            opts.root.join("tmp"),
            opts.root.join("cache"),
            opts.run_root.clone(),
        ] {
            std::fs::create_dir_all(&d).map_err(io_ctx(format!("creating {}", d.display())))?;
        }
        // Only root goes in: the store holds what containers made (device
        // nodes, setuid files in layers, upper dirs and cache mounts), which
        // no other user of the host may reach (0710, as Docker's root).
        for d in [&opts.root, &opts.run_root] {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(d) {
                if m.permissions().mode() & 0o007 != 0 {
                    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o710))
                        .map_err(io_ctx(format!("restricting {}", d.display())))?;
                }
            }
        }
        let store = Store::open(&opts.root)?;
        let blobs = berth_layers::BlobStore::open(&opts.root)?;
        Ok(Engine {
            opts,
            store,
            blobs,
            cgroups: std::sync::OnceLock::new(),
        })
    }

    /// The host's cgroup layout (detected on first use).
    pub(crate) fn cgroup_layout(&self) -> Option<&berth_runtime::cgroups::Layout> {
        self.cgroups
            .get_or_init(|| berth_runtime::cgroups::detect().ok())
            .as_ref()
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.opts.root.join("layers")
    }
    pub(crate) fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
    }
    pub(crate) fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.opts.root.join("containers").join(id.as_str())
    }
    pub(crate) fn attach_socket(&self, id: &ContainerId) -> PathBuf {
        // Short enough for sun_path (108 bytes) under any sensible run root.
        self.opts
            .run_root
            .join(format!("{}.sock", &id.as_str()[..24]))
    }

    /// Finds a container by full ID, name or unique ID prefix.
    pub fn find_container(&self, what: &str) -> Result<ContainerRow> {
        let t = self.store.read();
        let name = what.strip_prefix('/').unwrap_or(what);
        if let Ok(id) = ContainerId::parse(what) {
            if let Some(r) = t.container(&id)? {
                return Ok(r);
            }
        }
        if let Some(r) = t.container_by_name(name)? {
            return Ok(r);
        }
        if !what.is_empty() && what.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut m = t.containers_with_prefix(&what.to_ascii_lowercase())?;
            if m.len() == 1 {
                return Ok(m.remove(0));
            }
            if m.len() > 1 {
                return Err(EngineError::InvalidArgument(format!(
                    "multiple IDs found with provided prefix: {what}"
                )));
            }
        }
        Err(EngineError::NoSuchContainer(what.to_string()))
    }

    /// Takes the container's lock (released when the guard drops).
    pub(crate) fn lock_container(&self, id: &ContainerId) -> Result<ContainerLock> {
        let path = self.container_dir(id).join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|_| EngineError::NoSuchContainer(id.to_string()))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_ctx(format!("locking container {}", id.short()))(e.into()))?;
        // Removed while we waited for the lock: its lock file is gone too.
        if rustix::fs::fstat(&f).is_ok_and(|st| st.st_nlink == 0) {
            return Err(EngineError::NoSuchContainer(id.to_string()));
        }
        Ok(ContainerLock { _file: f })
    }

    /// Collects what interrupted operations left behind: temp files and
    /// layer directories without a database row, container directories
    /// whose creation never finished and the image claims of creates that died.
    pub fn collect_garbage(&mut self) -> Result<()> {
        berth_layers::collect_garbage(&self.layers_dir(), &self.opts.root.join("tmp"));
        // Parts of downloads a killed pull left for the next one: kept a
        // day, then collected unless a pull holds one.
        if let Ok(rd) = std::fs::read_dir(self.opts.root.join("tmp")) {
            for e in rd.flatten() {
                if !e.file_name().to_string_lossy().starts_with("partial-") {
                    continue;
                }
                let old = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|t| {
                        t.elapsed()
                            .is_ok_and(|d| d > std::time::Duration::from_secs(24 * 3600))
                    });
                let free = File::open(e.path()).is_ok_and(|f| {
                    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                        .is_ok()
                });
                if old && free {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // Secrets of builds that were killed (their copies live on the run root).
        let secrets = self.opts.run_root.join("build-secrets");
        berth_layers::collect_garbage(&secrets, &secrets);
        self.collect_stale_claims()?;
        // A load holds this lock shared while its layer directories wait for
        // their rows: while one runs, rowless files are left alone.
        let lock = archive::BlobLock::open(&self.opts.root)?;
        if !lock.try_exclusive() {
            return Ok(());
        }
        let known: std::collections::HashSet<String> = self
            .store
            .read()
            .layers()?
            .iter()
            .map(|d| d.hex().to_string())
            .collect();
        if let Ok(rd) = std::fs::read_dir(self.layers_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // A layer directory is renamed into place just before its row
                // is written: only one that has been rowless for a while is
                // garbage. The inode change time moves on that rename (a
                // tarball can set a directory's mtime, never its ctime).
                let settled = e.metadata().ok().is_some_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    let now = chrono::Utc::now().timestamp();
                    now - m.ctime() > GARBAGE_AGE.as_secs() as i64
                });
                if name.len() == 64 && !known.contains(&name) && settled {
                    let _ = berth_layers::remove_layer_dir(&e.path());
                }
            }
        }
        self.collect_unreferenced_blobs(GARBAGE_AGE)?;
        container::collect_orphans(self)?;
        self.collect_dead_exec_sockets();
        Ok(())
    }

    /// Exec monitors remove their socket when they end; one killed (-9)
    /// leaves it behind. A socket nobody listens on any more is removed.
    fn collect_dead_exec_sockets(&self) {
        let Ok(rd) = std::fs::read_dir(&self.opts.run_root) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("exec-") && name.ends_with(".sock")) {
                continue;
            }
            let refused = matches!(
                std::os::unix::net::UnixStream::connect(e.path()),
                Err(ref err) if err.kind() == std::io::ErrorKind::ConnectionRefused
            );
            if refused {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// How long a file without a database row must have existed before garbage
/// collection takes it (an operation in flight writes its row well within).
const GARBAGE_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// An exclusive lock on one container.
pub struct ContainerLock {
    _file: File,
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

pub(crate) fn random_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    if getrandom::getrandom(&mut b).is_err() {
        // getrandom(2) failing is not something to recover from quietly:
        // fall back to time and pid, still unique enough for names.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!("{t}-{}", std::process::id());
        b.copy_from_slice(&sha2::Sha256::digest_bytes(seed.as_bytes()));
    }
    b
}

trait DigestBytes {
    fn digest_bytes(data: &[u8]) -> [u8; 32];
}
impl DigestBytes for sha2::Sha256 {
    fn digest_bytes(data: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(data).into()
    }
}
