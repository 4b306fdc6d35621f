//! `RUN --mount=…`: BuildKit's run mounts (cache, bind, tmpfs, secret) as
//! the engine's own container mounts, and the cleanup that keeps their mount
//! points out of the step's layer.
//!
//! A bind source is copied out of its tree (the context, a stage or an
//! image, resolved inside that tree, symlinks never followed out of it) into
//! a temp directory under the store's `tmp/`, so a read-only bind is a copy
//! of exactly what the cache key hashed and a `rw` bind's writes are thrown
//! away with the copy. A secret is copied into a private temp directory with
//! the mode and owner asked for and bound read-only; its bytes never reach a
//! layer or a cache key. A cache mount is a directory under
//! `<root>/build-cache-mounts/` that outlives builds; `sharing=locked` holds
//! an exclusive flock on it for the RUN, `private` uses a throwaway
//! directory when another build holds it.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_types::MountSpec;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use crate::build::BuildOptions;
use crate::buildfs::{self, CopyAttrs, FKind, Plan, Tree};
use crate::{Engine, EngineError, Result};

/// Where the runtime mounts something and the image may have nothing.
pub(crate) const CACHE_MOUNTS_DIR: &str = "build-cache-mounts";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountKind {
    Bind {
        /// Relative to the source tree's root, as written.
        source: String,
        from: Option<String>,
        rw: bool,
    },
    Cache {
        id: String,
        sharing: Sharing,
        mode: u32,
        uid: u32,
        gid: u32,
        ro: bool,
    },
    Tmpfs {
        size: Option<u64>,
    },
    Secret {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// One `--mount` of a RUN, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunMount {
    /// Absolute and clean (`/run/secrets/x`).
    pub target: String,
    pub kind: MountKind,
}

fn parse_bool(v: Option<&str>) -> Option<bool> {
    match v {
        None => Some(true),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Some(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Some(false),
        Some(_) => None,
    }
}

/// Reads one `--mount` value as BuildKit's Dockerfile frontend does. A
/// relative target is taken from `workdir`. Errors are BuildKit's words.
pub(crate) fn parse(csv: &str, workdir: &str) -> std::result::Result<RunMount, String> {
    let mut kind = "bind".to_string();
    let (mut target, mut source, mut from, mut id) = (None, None, None, None);
    let (mut ro, mut rw, mut required) = (None::<bool>, None::<bool>, false);
    let (mut sharing, mut mode, mut uid, mut gid, mut size) = (None, None, None, None, None);
    for field in csv.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let bad = || format!("invalid value for {key}: {}", value.unwrap_or(""));
        let num = |v: Option<&str>| -> std::result::Result<u32, String> {
            v.and_then(|v| v.parse().ok()).ok_or_else(bad)
        };
        match (key.as_str(), value) {
            ("readonly" | "ro", v) => ro = Some(parse_bool(v).ok_or_else(bad)?),
            ("readwrite" | "rw", v) => rw = Some(parse_bool(v).ok_or_else(bad)?),
            ("required", v) => required = parse_bool(v).ok_or_else(bad)?,
            (_, None) => return Err(format!("unexpected key '{key}' for mount flag")),
            ("type", Some(v)) => kind = v.to_ascii_lowercase(),
            ("target" | "dst" | "destination", Some(v)) => target = Some(v.to_string()),
            ("source" | "src", Some(v)) => source = Some(v.to_string()),
            ("from", Some(v)) => from = Some(v.to_string()),
            ("id", Some(v)) => id = Some(v.to_string()),
            ("sharing", Some(v)) => {
                sharing = Some(match v.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(format!("unsupported sharing value \"{v}\"")),
                })
            }
            ("mode", Some(v)) => {
                mode = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(bad)?,
                )
            }
            ("uid", v) => uid = Some(num(v)?),
            ("gid", v) => gid = Some(num(v)?),
            ("size", Some(v)) => size = Some(crate::container::parse_size(v).ok_or_else(bad)?),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    let abs = |t: &str| {
        if t.starts_with('/') {
            format!("/{}", buildfs::clean(t))
        } else {
            format!("/{}", buildfs::clean(&format!("{workdir}/{t}")))
        }
    };
    let only = |allowed: &[&str], what: &[(&str, bool)]| -> std::result::Result<(), String> {
        for (name, set) in what {
            if *set && !allowed.contains(name) {
                return Err(format!("unexpected key '{name}' for a {kind} mount"));
            }
        }
        Ok(())
    };
    let given = [
        ("source", source.is_some()),
        ("from", from.is_some()),
        ("id", id.is_some()),
        ("sharing", sharing.is_some()),
        ("mode", mode.is_some()),
        ("uid", uid.is_some()),
        ("gid", gid.is_some()),
        ("size", size.is_some()),
        ("rw", rw.is_some()),
        ("required", required),
    ];
    let mount = match kind.as_str() {
        "bind" => {
            only(&["source", "from", "rw"], &given)?;
            let t = target.ok_or("mount type=bind requires a target")?;
            RunMount {
                target: abs(&t),
                kind: MountKind::Bind {
                    source: source.unwrap_or_default(),
                    from,
                    rw: rw.unwrap_or(false) && ro != Some(true),
                },
            }
        }
        "cache" => {
            only(&["id", "sharing", "mode", "uid", "gid", "from"], &given)?;
            if from.is_some() {
                return Err(
                    "a cache mount from a stage or image (from=) is not supported yet".into(),
                );
            }
            let t = target.ok_or("mount type=cache requires a target")?;
            let target = abs(&t);
            RunMount {
                kind: MountKind::Cache {
                    id: id
                        .filter(|i| !i.is_empty())
                        .unwrap_or_else(|| target.clone()),
                    sharing: sharing.unwrap_or(Sharing::Shared),
                    mode: mode.unwrap_or(0o755),
                    uid: uid.unwrap_or(0),
                    gid: gid.unwrap_or(0),
                    ro: ro.unwrap_or(false) && rw != Some(true),
                },
                target,
            }
        }
        "tmpfs" => {
            only(&["size"], &given)?;
            let t = target.ok_or("mount type=tmpfs requires a target")?;
            RunMount {
                target: abs(&t),
                kind: MountKind::Tmpfs { size },
            }
        }
        "secret" => {
            only(&["id", "mode", "uid", "gid", "required"], &given)?;
            let id = match (id.filter(|i| !i.is_empty()), &target) {
                (Some(i), _) => i,
                (None, Some(t)) => t.rsplit('/').next().unwrap_or("").to_string(),
                (None, None) => String::new(),
            };
            if id.is_empty() {
                return Err("a secret mount requires an id or a target".into());
            }
            let target = match target {
                Some(t) => abs(&t),
                None => format!("/run/secrets/{id}"),
            };
            RunMount {
                target,
                kind: MountKind::Secret {
                    id,
                    required,
                    mode: mode.unwrap_or(0o400),
                    uid: uid.unwrap_or(0),
                    gid: gid.unwrap_or(0),
                },
            }
        }
        "ssh" => {
            return Err(
                "mount type=ssh is not supported (berth build has no ssh agent forwarding)".into(),
            )
        }
        other => return Err(format!("unsupported mount type \"{other}\"")),
    };
    if mount.target == "/" {
        return Err("a mount cannot be made at /".into());
    }
    Ok(mount)
}

type Sources<'a> = [Option<(Box<dyn Tree + 'a>, String)>];

fn build_err(line: usize, m: impl std::fmt::Display) -> EngineError {
    EngineError::Build(format!("Dockerfile:{line}: {m}"))
}

impl Engine {
    /// The container mounts for a RUN's `--mount`s (binds and tmpfs as
    /// `CreateOptions` takes them): bind copies and secrets made, cache
    /// directories made and locked, all kept alive by `held`.
    pub(crate) fn prepare_mounts(
        &self,
        o: &BuildOptions,
        mounts: &[RunMount],
        sources: &Sources<'_>,
        held: &mut Held,
        line: usize,
    ) -> Result<(Vec<MountSpec>, Vec<String>)> {
        let tmp = self.opts.root.join("tmp");
        let mut specs = Vec::new();
        let mut tmpfs = Vec::new();
        // Bind copies by target, for the mount points of mounts inside them.
        let mut copies: Vec<(String, PathBuf)> = Vec::new();
        let bind = |source: &Path, target: &str, ro: bool| MountSpec {
            kind: "bind".into(),
            source: source.display().to_string(),
            target: target.to_string(),
            read_only: ro,
            ..Default::default()
        };
        for (m, src) in mounts.iter().zip(sources) {
            match (&m.kind, src) {
                (MountKind::Bind { rw, .. }, Some((tree, real))) => {
                    let copy = copy_out(tree.as_ref(), real, &tmp, held)?;
                    specs.push(bind(&copy, &m.target, !rw));
                    copies.push((m.target.clone(), copy));
                }
                (MountKind::Bind { .. }, None) => {}
                // BuildKit's tmpfs: nosuid, the kernel's 1777, exec allowed.
                (MountKind::Tmpfs { size }, _) => tmpfs.push(match size {
                    Some(s) => format!("{}:nosuid,mode=1777,size={s}", m.target),
                    None => format!("{}:nosuid,mode=1777", m.target),
                }),
                (
                    MountKind::Cache {
                        id,
                        sharing,
                        mode,
                        uid,
                        gid,
                        ro,
                    },
                    _,
                ) => {
                    let dir = self.cache_mount(id, *sharing, (*mode, *uid, *gid), held)?;
                    specs.push(bind(&dir, &m.target, *ro));
                }
                (
                    MountKind::Secret {
                        id,
                        required,
                        mode,
                        uid,
                        gid,
                    },
                    _,
                ) => {
                    let Some(path) = o.secrets.get(id) else {
                        if *required {
                            return Err(build_err(line, format!("secret {id}: not found")));
                        }
                        continue;
                    };
                    let meta = std::fs::metadata(path)
                        .map_err(crate::io_ctx(format!("secret {id}: {}", path.display())))?;
                    if !meta.is_file() {
                        return Err(build_err(
                            line,
                            format!("secret {id}: {} is not a regular file", path.display()),
                        ));
                    }
                    // On the run root (a tmpfs as a rule), never the store's disk.
                    let dir = private_dir(&self.opts.run_root.join("build-secrets"), held)
                        .map_err(crate::io_ctx("making a directory for a secret"))?;
                    let file = dir.join("secret");
                    std::fs::copy(path, &file)
                        .map_err(crate::io_ctx(format!("secret {id}: {}", path.display())))?;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))
                        .map_err(crate::io_ctx("setting a secret's mode"))?;
                    std::os::unix::fs::chown(&file, Some(*uid), Some(*gid))
                        .map_err(crate::io_ctx("setting a secret's owner"))?;
                    specs.push(bind(&file, &m.target, true));
                }
            }
        }
        let under = |inner: &str, outer: &str| is_under(inner, outer);
        // A mount inside a (read-only) bind copy gets its mount point made
        // in the copy, which is thrown away; parents are mounted first.
        for s in &specs {
            if let Some((outer, copy)) = copies
                .iter()
                .filter(|(t, _)| under(&s.target, t))
                .max_by_key(|(t, _)| t.len())
            {
                let is_dir = Path::new(&s.source).is_dir();
                make_mount_point(copy, &s.target[outer.len() + 1..], is_dir);
            }
        }
        for t in &tmpfs {
            let target = t.split_once(':').map_or(t.as_str(), |(p, _)| p);
            if let Some((outer, copy)) = copies
                .iter()
                .filter(|(o, _)| under(target, o))
                .max_by_key(|(o, _)| o.len())
            {
                make_mount_point(copy, &target[outer.len() + 1..], true);
            }
        }
        specs.sort_by_key(|s| s.target.matches('/').count());
        Ok((specs, tmpfs))
    }

    /// The directory of cache mount `id`, made on first use with its mode
    /// and owner, and locked as `sharing` says.
    fn cache_mount(
        &self,
        id: &str,
        sharing: Sharing,
        (mode, uid, gid): (u32, u32, u32),
        held: &mut Held,
    ) -> Result<PathBuf> {
        let dir = cache_dir(&self.opts.root, id);
        let parent = self.opts.root.join(CACHE_MOUNTS_DIR);
        let make = |at: &Path| -> std::io::Result<()> {
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode))?;
            std::os::unix::fs::chown(at, Some(uid), Some(gid))
        };
        if !dir.is_dir() {
            std::fs::create_dir_all(&parent)
                .map_err(crate::io_ctx(format!("creating {}", parent.display())))?;
            let t = berth_layers::create_temp_dir(&parent)?;
            // Never over a directory another build made meanwhile.
            let made = make(&t).and_then(|()| {
                rfs::renameat_with(rfs::CWD, &t, rfs::CWD, &dir, rfs::RenameFlags::NOREPLACE)
                    .map_err(std::io::Error::from)
            });
            if made.is_err() {
                let _ = std::fs::remove_dir(&t);
                // Another build may have made it first.
                if !dir.is_dir() {
                    made.map_err(crate::io_ctx(format!("creating {}", dir.display())))?;
                }
            }
        }
        let lock_path = dir.with_extension("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(crate::io_ctx(format!("opening {}", lock_path.display())))?;
        let op = match sharing {
            Sharing::Shared => rfs::FlockOperation::LockShared,
            Sharing::Locked => rfs::FlockOperation::LockExclusive,
            Sharing::Private => rfs::FlockOperation::NonBlockingLockExclusive,
        };
        match rfs::flock(&lock, op) {
            Ok(()) => {
                held.lock(lock);
                Ok(dir)
            }
            Err(rustix::io::Errno::WOULDBLOCK) if sharing == Sharing::Private => {
                // In use: this RUN gets a cache of its own, thrown away after.
                let t = private_dir(&self.opts.root.join("tmp"), held)
                    .map_err(crate::io_ctx("making a private cache mount"))?;
                make(&t).map_err(crate::io_ctx("making a private cache mount"))?;
                Ok(t)
            }
            Err(e) => Err(crate::io_ctx(format!("locking {}", lock_path.display()))(
                e.into(),
            )),
        }
    }
}

fn is_under(inner: &str, outer: &str) -> bool {
    inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
}

/// What the mounts of one RUN cannot be together: two at one target, or
/// one under a tmpfs mount (binds are mounted before tmpfs mounts).
pub(crate) fn check(mounts: &[RunMount]) -> std::result::Result<(), String> {
    for (i, m) in mounts.iter().enumerate() {
        if mounts[..i].iter().any(|o| o.target == m.target) {
            return Err(format!("two mounts at {}", m.target));
        }
        if let Some(t) = mounts
            .iter()
            .find(|t| matches!(t.kind, MountKind::Tmpfs { .. }) && is_under(&m.target, &t.target))
        {
            return Err(format!(
                "a mount at {} under the tmpfs mount at {} is not supported yet",
                m.target, t.target
            ));
        }
    }
    Ok(())
}

/// Where a cache mount with this id lives.
pub(crate) fn cache_dir(root: &Path, id: &str) -> PathBuf {
    root.join(CACHE_MOUNTS_DIR)
        .join(hex::encode(Sha256::digest(id.as_bytes())))
}

/// What a prepared RUN's mounts hold on to until the container is gone:
/// temp copies (removed on drop) and cache-mount locks (released on drop).
#[derive(Default)]
pub(crate) struct Held {
    temps: Vec<PathBuf>,
    _locks: Vec<File>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for t in &self.temps {
            let _ = berth_layers::remove_layer_dir(t);
        }
    }
}

impl Held {
    pub(crate) fn temp(&mut self, p: PathBuf) {
        self.temps.push(p);
    }
    pub(crate) fn lock(&mut self, f: File) {
        self._locks.push(f);
    }
}

/// A temp directory under `tmp` (0700), kept by `held`.
pub(crate) fn private_dir(tmp: &Path, held: &mut Held) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(tmp)?;
    let dir = berth_layers::create_temp_dir(tmp).map_err(std::io::Error::other)?;
    held.temp(dir.clone());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Copies `src` (resolved, existing) of `tree` to `<dir>/m` through a tar
/// stream, as COPY would write it (owners and modes kept); returns that path.
pub(crate) fn copy_out(tree: &dyn Tree, src: &str, tmp: &Path, held: &mut Held) -> Result<PathBuf> {
    let mut plan = Plan::default();
    let attrs = CopyAttrs {
        chown: None,
        keep_owner: true,
        chmod: None,
    };
    let mut sink = Sha256::new();
    buildfs::plan_copy(
        &mut plan,
        tree,
        0,
        src,
        "m",
        &attrs,
        &mut sink,
        &buildfs::Unhashed,
    )
    .map_err(crate::io_ctx("reading a bind mount's source"))?;
    let (rd, wr) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| EngineError::Io {
            context: "cannot create a pipe".into(),
            source: e.into(),
        })?;
    let (rd, wr) = (File::from(rd), File::from(wr));
    let apply = berth_layers::ApplyOptions {
        whiteouts: berth_layers::WhiteoutMode::Skip,
        allow_devices: false,
        no_overwrite_dir_non_dir: false,
    };
    std::fs::create_dir_all(tmp).map_err(crate::io_ctx(format!("creating {}", tmp.display())))?;
    let trees: [&dyn Tree; 1] = [tree];
    let (written, unpacked) = std::thread::scope(|s| {
        let w = s.spawn(move || crate::build::write_plan(wr, &plan, &trees));
        let u = berth_layers::unpack_to_temp(rd, tmp, &apply);
        (w.join(), u)
    });
    let dir = match unpacked {
        Ok((dir, _)) => dir,
        Err(e) => return Err(e.into()),
    };
    held.temp(dir.clone());
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            return Err(EngineError::Build(
                "copying a bind mount's source failed".into(),
            ))
        }
    }
    Ok(dir.join("m"))
}

/// The paths a mount at `target` makes the runtime create in the
/// container's root: the missing components of `target` resolved in the
/// image (deepest first), then the existing ancestors that overlayfs copies
/// up to hold them (deepest first, up to the root).
pub(crate) fn stubs(image: &dyn Tree, target: &str) -> Vec<(String, bool)> {
    let Ok(real) = buildfs::resolve(image, target, true) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut p = real;
    while !p.is_empty() {
        let missing = image.lstat(&p).is_none();
        if !missing && out.is_empty() {
            // The mount point is in the image: nothing is created for it.
            return out;
        }
        out.push((p.clone(), missing));
        p = match p.rfind('/') {
            Some(i) => p[..i].to_string(),
            None => String::new(),
        };
    }
    out
}

fn open_in(upper: &OwnedFd, rel: &str) -> std::io::Result<OwnedFd> {
    let p = if rel.is_empty() { "." } else { rel };
    rfs::openat2(
        upper,
        p,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(std::io::Error::from)
}

/// Makes `rel` (missing directories, then a directory or an empty file) in
/// the bind copy `root`, beneath it and through no symlink: where the copy
/// has a link on the way, nothing is made (the runtime then decides).
fn make_mount_point(root: &Path, rel: &str, dir: bool) {
    let Ok(mut cur) = rfs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) else {
        return;
    };
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for (i, name) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last && !dir {
            let _ = rfs::openat(
                &cur,
                *name,
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            );
            return;
        }
        let _ = rfs::mkdirat(&cur, *name, Mode::from_raw_mode(0o755));
        match open_in(&cur, name) {
            Ok(next) => cur = next,
            Err(_) => return,
        }
    }
}

fn is_opaque(fd: &OwnedFd) -> bool {
    let mut v = [0u8; 2];
    matches!(rfs::fgetxattr(fd, "trusted.overlay.opaque", &mut v), Ok(1) if v[0] == b'y')
}

/// Removes from the container's upper directory what [`stubs`] says the
/// runtime made for its mounts, as BuildKit's mount-stub cleaner does: a
/// created mount point only while it is an empty directory or an empty
/// file, a copied-up ancestor only while it is empty and has the image's
/// owner and mode (only its times changed). Paths are opened beneath
/// `upper` without following a symlink, so a RUN that swapped a directory
/// for a link cannot point this at anything else.
pub(crate) fn remove_stubs(upper: &Path, image: &dyn Tree, stubs: &[(String, bool)]) {
    let Ok(root) = rfs::open(
        upper,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) else {
        return;
    };
    // Deepest first, so a directory is looked at after what it held.
    let mut all: Vec<&(String, bool)> = stubs.iter().collect();
    all.sort_by(|a, b| {
        let depth = |p: &str| p.matches('/').count();
        depth(&b.0).cmp(&depth(&a.0)).then(a.0.cmp(&b.0))
    });
    all.dedup_by(|a, b| a.0 == b.0);
    for (path, created) in all {
        let (parent, name) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        let Ok(dir) = open_in(&root, parent) else {
            continue;
        };
        let Ok(st) = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let ft = rfs::FileType::from_raw_mode(st.st_mode);
        let removable = match ft {
            rfs::FileType::RegularFile => *created && st.st_size == 0,
            rfs::FileType::Directory => {
                let Ok(fd) = open_in(&root, path) else {
                    continue;
                };
                let empty = rfs::Dir::read_from(&fd).is_ok_and(|d| {
                    d.filter_map(|e| e.ok())
                        .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
                });
                let same = *created
                    || image.lstat(path).is_some_and(|m| {
                        m.kind == FKind::Dir
                            && m.mode == st.st_mode & 0o7777
                            && m.uid == st.st_uid
                            && m.gid == st.st_gid
                    });
                empty && same && !is_opaque(&fd)
            }
            _ => false,
        };
        if !removable {
            // What is above holds this, so it stays too.
            continue;
        }
        let flags = if ft == rfs::FileType::Directory {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        let _ = rfs::unlinkat(dir.as_fd(), name, flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_read_as_buildkit_reads_them() {
        let m = parse("type=secret,id=tok", "/").unwrap();
        assert_eq!(m.target, "/run/secrets/tok");
        assert!(matches!(
            m.kind,
            MountKind::Secret {
                mode: 0o400,
                required: false,
                ..
            }
        ));
        let m = parse("type=secret,target=/a/b,required", "/").unwrap();
        assert!(matches!(&m.kind, MountKind::Secret { id, required: true, .. } if id == "b"));
        let m = parse("target=src", "/app").unwrap();
        assert_eq!(m.target, "/app/src");
        assert!(
            matches!(&m.kind, MountKind::Bind { source, rw: false, from: None } if source.is_empty())
        );
        let m = parse("type=cache,target=/c,sharing=locked,mode=0700,uid=5", "/").unwrap();
        assert!(
            matches!(&m.kind, MountKind::Cache { id, sharing: Sharing::Locked, mode: 0o700, uid: 5, .. } if id == "/c")
        );
        let m = parse("type=tmpfs,target=/t,size=1m", "/").unwrap();
        assert_eq!(
            m.kind,
            MountKind::Tmpfs {
                size: Some(1 << 20)
            }
        );
        for bad in [
            "type=bind",
            "type=secret",
            "type=ssh",
            "type=nfs,target=/x",
            "type=cache,target=/x,sharing=sometimes",
            "type=cache,target=/x,mode=999",
            "type=tmpfs,target=/x,id=a",
            "type=bind,target=/",
            "type=bind,target=/x,bogus=1",
            "type=cache,target=/x,from=a",
        ] {
            assert!(parse(bad, "/").is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_ids_map_to_one_directory_each() {
        let r = Path::new("/r");
        assert_eq!(cache_dir(r, "a"), cache_dir(r, "a"));
        assert_ne!(cache_dir(r, "a"), cache_dir(r, "b"));
        assert!(cache_dir(r, "../../etc").starts_with("/r/build-cache-mounts"));
    }
}
