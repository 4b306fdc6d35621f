//! Reaching into a container's filesystem from the host — `export` and `cp` —
//! and the housekeeping verbs that measure and free disk space: `image prune`,
//! `system df`, `system prune`.
//!
//! A container's files are only ever touched by a forked worker process: a
//! running container's through its init's root (`/proc/<pid>/root`, with its
//! volumes; for `export` a clone of its root mount alone), a stopped one's
//! through an overlay of its layers that the worker mounts in a private mount
//! namespace of its own, read-only unless files are copied in, with its
//! volumes and binds on it (not for `export`). The mount dies
//! with the worker's namespace, even on `kill -9` of the worker or of `berth`
//! (the worker has a parent-death signal), so the host never sees it. A
//! stopped container stays locked (it cannot start) while a worker uses its
//! directories.
//!
//! Paths in a container are resolved with `openat2(RESOLVE_IN_ROOT)` against
//! its root: a symlink (`/evil -> /`, `-> ../../..`) never leads out of it.
//! Tar streams go into a container through [`berth_layers::apply_layer`],
//! which creates every entry relative to the destination directory only.
//!
//! Copy semantics are Docker's (`docker cp`): a file onto a file replaces it,
//! into a directory goes under its own name; a directory to a new name is
//! created under that name, into an existing directory goes under its own
//! name, or its contents only when the source ends in `/.`; `-` is a tar
//! stream. Ownership: with `-a` entries keep their uid/gid; without it what is
//! copied into a container is owned by root (0:0) and what is copied out to
//! the host by the caller's effective uid/gid (a `-` tar stream out keeps the
//! container's owners).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use berth_layers::tarwriter::{self, TarOptions};
use berth_layers::{ApplyOptions, LayerError, WhiteoutMode};
use berth_runtime::monitor::MonitorConfig;
use berth_runtime::spec::RootFs;
use berth_types::{Digest, Reference};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::image::RemoveMode;
use crate::{
    io_ctx, ContainerLock, ContainerView, Engine, EngineError, PruneReport, RemovedImage, Result,
    Status,
};

// ---------------------------------------------------------------------------
// Public types

/// How `cp` treats ownership and symlinks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// `-a`: entries keep the uid/gid they have at the source. Without it,
    /// what is copied into a container is owned by root (0:0) and what is
    /// copied out to a host path by the caller's effective uid/gid.
    pub archive: bool,
    /// `-L`: when the source path itself is a symlink, copy what it points to
    /// (resolved inside the container for a container path).
    pub follow_link: bool,
    /// Refuse to replace a directory with a non-directory or the reverse
    /// anywhere in a copy into a container (Docker's `noOverwriteDirNonDir`:
    /// `docker cp` always sets it, an API client may not); without it such
    /// an entry replaces what is there. Copies out to the host always
    /// refuse, as the docker CLI's do.
    pub no_overwrite_dir_non_dir: bool,
}

/// What a copy of a directory onto an existing non-directory fails with:
/// the docker CLI's own words (an [`EngineError::ClientCheck`]).
const CANNOT_COPY_DIR: &str = "cannot copy directory";

/// The host side of a copy.
#[derive(Clone, Copy, Debug)]
pub enum HostPath<'a> {
    /// A file or directory on the host (relative to the current directory
    /// unless absolute).
    Path(&'a Path),
    /// `-`: a tar stream on this descriptor (the caller's stdin or stdout).
    Tar(BorrowedFd<'a>),
}

/// What `image prune` did.
#[derive(Clone, Debug, Default)]
pub struct ImagePruneReport {
    /// Untagged references and deleted images, in the order it happened.
    pub removed: Vec<RemovedImage>,
    /// Bytes of the layers that were deleted with them.
    pub space_reclaimed: u64,
}

/// What `system prune` did.
#[derive(Clone, Debug)]
pub struct SystemPruneReport {
    pub containers: PruneReport,
    /// `None` unless volumes were pruned too (`--volumes`).
    pub volumes: Option<PruneReport>,
    pub images: ImagePruneReport,
    pub build_cache: crate::BuildCachePruneReport,
}

impl SystemPruneReport {
    pub fn space_reclaimed(&self) -> u64 {
        self.containers.space_reclaimed
            + self.volumes.as_ref().map_or(0, |v| v.space_reclaimed)
            + self.images.space_reclaimed
            + self.build_cache.space_reclaimed
    }
}

/// One image in `system df`.
#[derive(Clone, Debug)]
pub struct ImageUsage {
    pub id: Digest,
    pub tags: Vec<Reference>,
    pub created: String,
    /// All its layers.
    pub size: u64,
    /// Its layers that another image stands on too.
    pub shared_size: u64,
    /// Containers created from it.
    pub containers: usize,
}

impl ImageUsage {
    /// What deleting this image alone would free.
    pub fn unique_size(&self) -> u64 {
        self.size - self.shared_size
    }
}

/// One container in `system df`.
#[derive(Clone, Debug)]
pub struct ContainerUsage {
    pub container: ContainerView,
    /// Its writable layer.
    pub size: u64,
}

/// One volume in `system df`.
#[derive(Clone, Debug)]
pub struct VolumeUsage {
    pub name: String,
    /// Containers that mount it.
    pub links: usize,
    pub size: u64,
}

/// `system df`: what is stored, what is in use, what a prune could free.
#[derive(Clone, Debug, Default)]
pub struct DiskUsage {
    pub images: Vec<ImageUsage>,
    /// Every layer of every image, each counted once.
    pub images_size: u64,
    /// Layers no container stands on.
    pub images_reclaimable: u64,
    pub containers: Vec<ContainerUsage>,
    pub containers_size: u64,
    /// Writable layers of containers that are not running.
    pub containers_reclaimable: u64,
    pub volumes: Vec<VolumeUsage>,
    pub volumes_size: u64,
    /// Volumes no container mounts.
    pub volumes_reclaimable: u64,
    /// Every build cache record, oldest first.
    pub build_cache: Vec<crate::CacheRecord>,
}

impl DiskUsage {
    /// Images at least one container uses.
    pub fn active_images(&self) -> usize {
        self.images.iter().filter(|i| i.containers > 0).count()
    }
    pub fn running_containers(&self) -> usize {
        self.containers
            .iter()
            .filter(|c| c.container.running())
            .count()
    }
    /// Volumes at least one container mounts.
    pub fn active_volumes(&self) -> usize {
        self.volumes.iter().filter(|v| v.links > 0).count()
    }
    /// Cache records a container stands on.
    pub fn active_build_cache(&self) -> usize {
        self.build_cache.iter().filter(|r| r.in_use).count()
    }
    /// The build cache's own bytes: layers of records no other image needs.
    pub fn build_cache_size(&self) -> u64 {
        crate::buildcache::cache_size(&self.build_cache)
    }
    /// What `builder prune -a` would free of that.
    pub fn build_cache_reclaimable(&self) -> u64 {
        crate::buildcache::cache_size(self.build_cache.iter().filter(|r| !r.in_use))
    }
}

// ---------------------------------------------------------------------------
// The verbs

/// How `cp` extracts: whiteout names are ordinary names, and device nodes
/// are copied as they are (as `docker cp` does).
const COPY_APPLY: ApplyOptions = ApplyOptions {
    whiteouts: WhiteoutMode::Skip,
    allow_devices: true,
    no_overwrite_dir_non_dir: true,
};

impl Engine {
    /// `export`: writes the container's flattened filesystem — its image's
    /// layers with its own changes on top, deleted files gone, without its
    /// volumes and other mounts — to `out` as a tar stream. Works on running
    /// and stopped containers.
    pub fn export(&self, what: &str, out: BorrowedFd<'_>) -> Result<()> {
        let v = self.container(what)?;
        let (access, _lock) = self.access(&v)?;
        let worker = Worker::spawn(&[], |_| {
            let root = enter(&access, Purpose::Export)?;
            let file = dup_file(out)?;
            tarwriter::write_dir(&root.path, file, &TarOptions::default())?;
            Ok(())
        })?;
        worker.finish()
    }

    /// `cp CONTAINER:SRC DEST`: copies `src`, a path in the container, to
    /// the host. Returns the bytes of the tar stream that carried it.
    pub fn copy_from_container(
        &self,
        what: &str,
        src: &str,
        dest: HostPath<'_>,
        opts: CopyOptions,
    ) -> Result<u64> {
        // The destination first, as Docker checks it before the container.
        let host_dest = match dest {
            HostPath::Path(p) => Some(HostDest::stat(p)?),
            HostPath::Tar(_) => None,
        };
        let v = self.container(what)?;
        let name = v.name.clone();
        let src = PathSpec::parse(src);
        let follow = opts.follow_link || src.dir_syntax;
        let (access, _lock) = self.access(&v)?;
        let (pipe_r, pipe_w) = pipe()?;
        let tar_out = match dest {
            HostPath::Tar(fd) => fd,
            HostPath::Path(_) => pipe_w.as_fd(),
        };
        let mut worker = Worker::spawn(&[pipe_r.as_fd()], |rep| {
            let root = enter(&access, Purpose::Read)?;
            let kind = root
                .kind_of(&src.rel(), follow)
                .map_err(|e| missing_in_container(e, &src.shown, &name))?;
            if src.contents_only && kind != Kind::Dir {
                return Err(ChildError::invalid(format!(
                    "not a directory: {}",
                    src.shown
                )));
            }
            let source = src.source(kind);
            let tar_name = match &host_dest {
                Some(d) => plan(&source, &d.dest)
                    .map_err(|e| ChildError::of(e.error(&d.shown, "on the host")))?
                    .name
                    .clone(),
                None => source.top_name().to_string(),
            };
            rep.info(kind.code())?;
            let out = dup_file(tar_out)?;
            tarwriter::write_path(&root.path, Path::new(&src.rel()), &tar_name, follow, out)?;
            Ok(())
        })?;
        drop(pipe_w);
        let kind = Kind::decode(&worker.info()?)?;
        let Some(host_dest) = host_dest else {
            drop(pipe_r);
            worker.finish()?;
            return Ok(0);
        };
        let source = src.source(kind);
        let p =
            plan(&source, &host_dest.dest).map_err(|e| e.error(&host_dest.shown, "on the host"))?;
        let dir = match p.into {
            Lands::Dest => host_dest.path.clone(),
            Lands::Parent => host_dest.parent(),
        };
        let mut staging = None;
        let extracted = (|| -> Result<u64> {
            check_overwrite_on_host(&dir, &p.name, source.kind)?;
            // A file lands whole or not at all: it is extracted beside its
            // destination and renamed onto it once complete, so a copy that
            // fails never leaves the old file deleted or half-replaced. (A
            // directory is merged into what is there, as Docker does.)
            let into = if source.kind == Kind::NonDir && p.name != "." && !p.name.is_empty() {
                staging.insert(Staging::new(&dir)?).path.clone()
            } else {
                dir.clone()
            };
            let mut counted = Counting {
                inner: File::from(pipe_r),
                n: 0,
            };
            let applied = if opts.archive {
                berth_layers::apply_layer(&mut counted, &into, &COPY_APPLY)
            } else {
                let uid = rustix::process::geteuid().as_raw();
                let gid = rustix::process::getegid().as_raw();
                berth_layers::apply_layer(Chown::new(&mut counted, uid, gid), &into, &COPY_APPLY)
            };
            if let Err(e) = applied {
                return Err(match kind_conflict_words(&e, &dir.display().to_string()) {
                    // The docker CLI's words: it unpacks a copy out itself.
                    Some(words) => EngineError::ClientCheck(words),
                    None => e.into(),
                });
            }
            Ok(counted.n)
        })();
        let finished = worker.finish();
        let n = match extracted {
            Ok(n) => finished.map(|()| n),
            // A stream that broke off: the worker's failure explains it.
            Err(EngineError::Layer(LayerError::Archive(e))) => {
                finished?;
                Err(EngineError::Layer(LayerError::Archive(e)))
            }
            Err(e) => Err(e),
        }?;
        if let Some(staging) = staging {
            staging.put(&p.name, &dir)?;
        }
        Ok(n)
    }

    /// What a path in the container is (Docker's `PathStat`, the archive
    /// endpoints' `X-Docker-Container-Path-Stat`): a final symlink not
    /// followed, its target resolved inside the container's root.
    pub fn stat_in_container(&self, what: &str, path: &str) -> Result<PathStat> {
        let v = self.container(what)?;
        let name = v.name.clone();
        let spec = PathSpec::parse(path);
        let (access, _lock) = self.access(&v)?;
        let mut worker = Worker::spawn(&[], |rep| {
            let root = enter(&access, Purpose::Read)?;
            let rel = spec.rel();
            let fd = root
                .open(&rel, false, false)
                .map_err(|e| missing_in_container(e, &spec.shown, &name))?;
            let st = rfs::fstat(&fd)
                .map_err(|e| ChildError::sys(&format!("cannot stat {}", spec.shown), e))?;
            let mut target = String::new();
            if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                // Where it leads, as the container sees it: opened through
                // the root (symlinks stay inside), then named from there.
                if let Ok(t) = root.open(&rel, true, false) {
                    let named = |fd: &OwnedFd| {
                        rfs::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()), Vec::new())
                            .ok()
                            .map(|p| p.to_string_lossy().into_owned())
                    };
                    if let (Some(h), Some(b)) = (named(&t), named(&root.fd)) {
                        // A running container's root is its namespace's
                        // `/`; a stopped one's, the merged directory.
                        target = match h.strip_prefix(b.trim_end_matches('/')) {
                            Some("") => "/".to_string(),
                            Some(rest) if rest.starts_with('/') => rest.to_string(),
                            _ => String::new(),
                        };
                    }
                }
            }
            rep.info(&format!(
                "{} {} {} {} {}",
                st.st_mode, st.st_size, st.st_mtime, st.st_mtime_nsec, target
            ))?;
            Ok(())
        })?;
        let info = worker.info()?;
        worker.finish()?;
        let mut it = info.splitn(5, ' ');
        let mut num = || -> Result<i64> {
            it.next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| worker_protocol(&info))
        };
        let (mode, size, secs, nanos) = (num()?, num()?, num()?, num()?);
        let link_target = info.splitn(5, ' ').nth(4).unwrap_or("").to_string();
        let name = match spec.base() {
            "" => "/".to_string(),
            b => b.to_string(),
        };
        Ok(PathStat {
            name,
            size,
            mode: go_file_mode(mode as u32),
            mtime: chrono::DateTime::from_timestamp(secs, nanos as u32)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            link_target,
        })
    }

    /// `cp SRC CONTAINER:DEST`: copies `src` from the host into the
    /// container at `dest`. Returns the bytes of the tar stream that carried
    /// it (0 for a tar stream read by the container side directly).
    pub fn copy_to_container(
        &self,
        what: &str,
        src: HostPath<'_>,
        dest: &str,
        opts: CopyOptions,
    ) -> Result<u64> {
        let v = self.container(what)?;
        if v.host_config.readonly_rootfs {
            return Err(EngineError::Conflict(format!(
                "container {} rootfs is marked read-only",
                v.name
            )));
        }
        let name = v.name.clone();
        let dest = PathSpec::parse(dest);
        let host_src = match src {
            HostPath::Path(p) => Some(HostSource::stat(p, opts.follow_link)?),
            HostPath::Tar(_) => None,
        };
        let (access, _lock) = self.access(&v)?;
        let (pipe_r, pipe_w) = pipe()?;
        let tar_in = match src {
            HostPath::Tar(fd) => fd,
            HostPath::Path(_) => pipe_r.as_fd(),
        };
        let mut worker = Worker::spawn(&[pipe_w.as_fd()], |rep| {
            let root = enter(&access, Purpose::Write)?;
            let found = root.dest_info(&dest)?;
            // What the copy's top would replace is checked as every entry
            // is, by the apply (Docker's `noOverwriteDirNonDir`).
            let dir_rel = match &host_src {
                None => {
                    if found.kind != Kind::Dir {
                        return Err(ChildError::invalid(format!(
                            "destination \"{name}:{}\" must be a directory",
                            dest.shown
                        )));
                    }
                    dest.rel()
                }
                Some(s) => {
                    let p = plan(&s.source, &found)
                        .map_err(|e| ChildError::of(e.error(&dest.shown, &in_ctr(&name))))?;
                    match p.into {
                        Lands::Dest => dest.rel(),
                        Lands::Parent => dest.parent_rel(),
                    }
                }
            };
            let dir = root
                .open(&dir_rel, true, true)
                .map_err(|e| missing_in_container(e, &dest.shown, &name))?;
            rep.info(&found.encode())?;
            let input = BufReader::with_capacity(128 * 1024, dup_file(tar_in)?);
            let dir_path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            let apply = ApplyOptions {
                no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
                ..COPY_APPLY
            };
            let applied = if opts.archive {
                berth_layers::apply_layer(input, &dir_path, &apply)
            } else {
                berth_layers::apply_layer(Chown::new(input, 0, 0), &dir_path, &apply)
            };
            if let Err(e) = applied {
                let shown = format!("/{}", dir_rel.trim_matches('/'));
                return Err(match kind_conflict_words(&e, &shown) {
                    // dockerd's words, from its chrooted unpacker.
                    Some(words) => ChildError::other(format!(
                        "Error processing tar file(exit status 1): {words}"
                    )),
                    None => e.into(),
                });
            }
            Ok(())
        })?;
        drop(pipe_r);
        let found = Dest::decode(&worker.info()?, &dest)?;
        let Some(s) = host_src else {
            drop(pipe_w);
            worker.finish()?;
            return Ok(0);
        };
        let p = plan(&s.source, &found).map_err(|e| e.error(&dest.shown, &in_ctr(&name)))?;
        let written = tarwriter::write_path(
            Path::new("/"),
            &s.path,
            &p.name,
            s.follow,
            File::from(pipe_w),
        );
        let finished = worker.finish();
        match written {
            Ok(n) => finished.map(|()| n),
            // The worker stopped reading: its failure explains it.
            Err(LayerError::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
                finished?;
                Err(io_ctx("the container side of the copy stopped reading")(
                    source,
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Docker's volume copy-up: fills the volume directory `data` with what
    /// the container's image has at `path` (ownership, modes, symlinks,
    /// xattrs kept), and gives `data` the mode and owner of that directory.
    /// Nothing happens when `data` is not empty or the image has no
    /// directory there. `path` is resolved in the image's root (a symlink
    /// never leads out of it); the tar stream is applied inside `data` only.
    pub(crate) fn copy_up_volume(&self, rootfs: &RootFs, path: &str, data: &Path) -> Result<()> {
        let empty = std::fs::read_dir(data)
            .map_err(io_ctx(format!("reading {}", data.display())))?
            .next()
            .is_none();
        let rel = path.trim_start_matches('/');
        if !empty || rel.is_empty() {
            return Ok(());
        }
        // A detached, read-only overlay of the image's layers: no mount
        // namespace to make, and it goes away when its descriptor closes.
        let root = detached_overlay(rootfs)?;
        let Ok(found) = root.open(rel, true, false) else {
            return Ok(());
        };
        // Docker's words for an empty volume over a file of the image.
        if !rfs::fstat(&found).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR) {
            return Err(EngineError::InvalidArgument(format!(
                "source {} is not directory",
                shown_in_merged(rootfs, &found, path)
            )));
        }
        let dir = found;
        let st = rfs::fstat(&dir).map_err(|e| io_ctx(format!("cannot stat {path}"))(e.into()))?;
        let (pipe_r, pipe_w) = pipe()?;
        let (written, applied) = std::thread::scope(|s| {
            let writer = s.spawn(move || {
                tarwriter::write_path(&root.path, Path::new(rel), "", true, File::from(pipe_w))
            });
            let mut input = File::from(pipe_r);
            let applied = berth_layers::apply_layer(&mut input, data, &COPY_APPLY);
            // Whatever is left, so that the writer never blocks.
            let _ = io::copy(&mut input, &mut io::sink());
            drop(input);
            (writer.join(), applied)
        });
        match written {
            Ok(r) => r?,
            Err(_) => {
                return Err(io_ctx("copying the image's content")(io::Error::other(
                    "the tar writer panicked",
                )))
            }
        };
        applied?;
        std::os::unix::fs::chown(data, Some(st.st_uid), Some(st.st_gid))
            .map_err(io_ctx(format!("changing the owner of {}", data.display())))?;
        std::fs::set_permissions(
            data,
            std::os::unix::fs::PermissionsExt::from_mode(st.st_mode & 0o7777),
        )
        .map_err(io_ctx(format!("changing the mode of {}", data.display())))?;
        Ok(())
    }

    /// Docker's check of the "config volumes" (the image's `VOLUME`s and
    /// bare `-v /path`s) at `create`: none may sit on a file of the image
    /// (a symlink followed inside the image's root).
    pub(crate) fn refuse_volumes_over_files(
        &self,
        rootfs: &RootFs,
        paths: &[String],
    ) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let root = detached_overlay(rootfs)?;
        for path in paths {
            let rel = path.trim_start_matches('/');
            if rel.is_empty() {
                continue;
            }
            let Ok(found) = root.open(rel, true, false) else {
                continue;
            };
            if !rfs::fstat(&found).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR) {
                return Err(EngineError::InvalidArgument(format!(
                    "cannot mount volume over existing file, file exists {}",
                    shown_in_merged(rootfs, &found, path)
                )));
            }
        }
        Ok(())
    }

    /// How a worker reaches the container's files. A stopped container is
    /// locked (cannot start) until the returned guard drops.
    fn access(&self, v: &ContainerView) -> Result<(Access, Option<ContainerLock>)> {
        if v.removing {
            return Err(EngineError::Conflict(format!(
                "container {} is marked for removal",
                v.name
            )));
        }
        let lock = match v.state.status {
            Status::Running => return Ok((Access::Running { pid: v.state.pid }, None)),
            Status::Restarting => {
                return Err(EngineError::Conflict(format!(
                    "container {} is restarting, wait until the container is running",
                    v.name
                )))
            }
            Status::Created | Status::Exited => self.lock_container(&v.id)?,
        };
        // It may have started while we waited for the lock.
        let v = self.container(v.id.as_str())?;
        if v.running() {
            return Ok((Access::Running { pid: v.state.pid }, None));
        }
        let path = v.dir.join("monitor.json");
        let bytes = std::fs::read(&path).map_err(io_ctx(format!("reading {}", path.display())))?;
        let cfg: MonitorConfig = serde_json::from_slice(&bytes).map_err(|e| {
            EngineError::InvalidArgument(format!("container {}: corrupt monitor.json: {e}", v.name))
        })?;
        Ok((
            Access::Stopped {
                rootfs: cfg.spec.rootfs,
                mounts: cfg.spec.mounts,
            },
            Some(lock),
        ))
    }

    /// `image prune [-a]`: deletes dangling images (no tag, no child image),
    /// or with `all` every image no container uses, until none is left to
    /// delete (a parent whose last child went becomes a candidate).
    pub fn prune_images(&mut self, all: bool) -> Result<ImagePruneReport> {
        self.collect_stale_claims()?;
        let mut report = ImagePruneReport::default();
        loop {
            let before = self.layer_sizes()?;
            let mut progressed = false;
            for img in self.store.read().images()? {
                // Whether it is unused is decided again in the transaction
                // that deletes it: a create may claim it meanwhile.
                match self.remove_image_as(img.id.as_str(), RemoveMode::Prune { all }) {
                    Ok(Some(removed)) => {
                        report.removed.extend(removed);
                        progressed = true;
                    }
                    Ok(None) => {}
                    // Removed meanwhile by another berth.
                    Err(EngineError::Conflict(_) | EngineError::NoSuchImage(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let after = self.layer_sizes()?;
            report.space_reclaimed += before
                .iter()
                .filter(|(d, _)| !after.contains_key(*d))
                .map(|(_, size)| size)
                .sum::<u64>();
            if !progressed {
                return Ok(report);
            }
        }
    }

    /// `volume prune`: deletes the volumes no container mounts — only
    /// anonymous ones (named by 64 hex digits) unless `all`.
    pub fn prune_volumes(&mut self, all: bool) -> Result<PruneReport> {
        let used: HashSet<String> = self
            .containers()?
            .iter()
            .flat_map(|c| volume_names(c).map(str::to_string).collect::<Vec<_>>())
            .collect();
        let mut report = PruneReport {
            deleted: Vec::new(),
            space_reclaimed: 0,
        };
        for vol in self.volumes()? {
            if used.contains(&vol.name) || !(all || is_anonymous(&vol.name)) {
                continue;
            }
            let size = berth_layers::dir_size(&vol.mountpoint);
            match self.remove_volume(&vol.name, false) {
                Ok(()) => {
                    report.deleted.push(vol.name);
                    report.space_reclaimed += size;
                }
                Err(EngineError::Conflict(_) | EngineError::NoSuchVolume(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// `system prune [-a] [--volumes]`: stopped containers, then (with
    /// `volumes`) anonymous volumes no container mounts, the dangling build
    /// cache (all of it not in use with `all_images`), then dangling images
    /// (every unused image with `all_images`), as Docker's.
    pub fn prune_system(&mut self, all_images: bool, volumes: bool) -> Result<SystemPruneReport> {
        let containers = self.prune_containers(&crate::filters::Filters::default())?;
        let volumes = if volumes {
            Some(self.prune_volumes(false)?)
        } else {
            None
        };
        // The build cache first: a build's own images go as cache records
        // (Docker's report lists them there), the other images after.
        let build_cache = self.prune_build_cache(&crate::BuildCachePruneOptions {
            all: all_images,
            ..Default::default()
        })?;
        let images = self.prune_images(all_images)?;
        // What interrupted operations left behind goes too.
        self.collect_garbage()?;
        Ok(SystemPruneReport {
            containers,
            volumes,
            images,
            build_cache,
        })
    }

    /// `system df`: images (their layers, shared ones counted once; as
    /// `images` lists them, without intermediate images), containers (their
    /// writable layers), volumes and the build cache.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let sizes = self.layer_sizes()?;
        let containers = self.containers()?;
        let mut images = self.images()?;
        let parents: HashSet<Digest> = images.iter().filter_map(|i| i.parent.clone()).collect();
        images.retain(|i| !i.tags.is_empty() || !parents.contains(&i.id));

        // Layers under a container: its image's, or (image gone) its own record.
        let mut used_layers: HashSet<Digest> = HashSet::new();
        let mut users: HashMap<Digest, usize> = HashMap::new();
        for c in &containers {
            *users.entry(c.image_id.clone()).or_default() += 1;
            used_layers.extend(self.container_layers(c));
            if let Some(img) = images.iter().find(|i| i.id == c.image_id) {
                used_layers.extend(img.layers.iter().cloned());
            }
        }
        let mut layer_refs: HashMap<&Digest, usize> = HashMap::new();
        for img in &images {
            let unique: HashSet<&Digest> = img.layers.iter().collect();
            for l in unique {
                *layer_refs.entry(l).or_default() += 1;
            }
        }
        let size_of = |l: &Digest| sizes.get(l).copied().unwrap_or(0);
        let mut usage = DiskUsage {
            images_size: layer_refs.keys().map(|l| size_of(l)).sum(),
            images_reclaimable: layer_refs
                .keys()
                .filter(|l| !used_layers.contains(**l))
                .map(|l| size_of(l))
                .sum(),
            build_cache: self.build_cache()?,
            ..DiskUsage::default()
        };
        for img in &images {
            let unique: HashSet<&Digest> = img.layers.iter().collect();
            usage.images.push(ImageUsage {
                id: img.id.clone(),
                tags: img.tags.clone(),
                created: img.created.clone(),
                size: unique.iter().map(|l| size_of(l)).sum(),
                shared_size: unique
                    .iter()
                    .filter(|l| layer_refs.get(**l).copied().unwrap_or(0) > 1)
                    .map(|l| size_of(l))
                    .sum(),
                containers: users.get(&img.id).copied().unwrap_or(0),
            });
        }

        let mut links: HashMap<String, usize> = HashMap::new();
        for c in containers {
            for n in volume_names(&c) {
                *links.entry(n.to_string()).or_default() += 1;
            }
            let size = berth_layers::dir_size(&c.dir.join("upper"));
            usage.containers_size += size;
            if !c.running() {
                usage.containers_reclaimable += size;
            }
            usage.containers.push(ContainerUsage { container: c, size });
        }
        for vol in self.volumes()? {
            let size = berth_layers::dir_size(&vol.mountpoint);
            let n = links.get(&vol.name).copied().unwrap_or(0);
            usage.volumes_size += size;
            if n == 0 {
                usage.volumes_reclaimable += size;
            }
            usage.volumes.push(VolumeUsage {
                name: vol.name,
                links: n,
                size,
            });
        }
        Ok(usage)
    }

    /// The size of every layer in the store.
    pub(crate) fn layer_sizes(&self) -> Result<HashMap<Digest, u64>> {
        let t = self.store.read();
        let mut out = HashMap::new();
        for l in t.layers()? {
            let size = t.layer(&l)?.map_or(0, |r| r.size);
            out.insert(l, size);
        }
        Ok(out)
    }
}

/// The names of the volumes a container mounts.
fn volume_names(c: &ContainerView) -> impl Iterator<Item = &str> {
    c.host_config
        .mounts
        .iter()
        .filter(|m| m.kind == "volume")
        .map(|m| m.name.as_str())
}

/// Docker's `container.PathStat`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode`: permission bits and type bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// A `st_mode` as Go's `os.FileMode` (what the docker CLI decodes).
pub fn go_file_mode(mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = mode & 0o777;
    m |= match FileType::from_raw_mode(mode) {
        FileType::Directory => DIR,
        FileType::Symlink => SYMLINK,
        FileType::BlockDevice => DEVICE,
        FileType::CharacterDevice => DEVICE | CHAR,
        FileType::Fifo => PIPE,
        FileType::Socket => SOCKET,
        _ => 0,
    };
    if mode & 0o4000 != 0 {
        m |= SETUID;
    }
    if mode & 0o2000 != 0 {
        m |= SETGID;
    }
    if mode & 0o1000 != 0 {
        m |= STICKY;
    }
    m
}

/// An anonymous volume's name: 64 hex digits (`-v /path`).
fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn in_ctr(name: &str) -> String {
    format!("in container {name}")
}

fn missing_in_container(e: Errno, path: &str, container: &str) -> ChildError {
    match e {
        Errno::NOENT | Errno::NOTDIR => ChildError {
            kind: 'n',
            message: format!("Could not find the file {path} in container {container}"),
        },
        e => ChildError::other(format!(
            "cannot resolve {path} in container {container}: {}",
            io::Error::from(e)
        )),
    }
}

// ---------------------------------------------------------------------------
// Docker's copy rules

/// What a path is, as far as copying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    /// A file, a symlink (not followed), a device...
    NonDir,
    Missing,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::Dir => "d",
            Kind::NonDir => "f",
            Kind::Missing => "m",
        }
    }

    fn decode(s: &str) -> Result<Kind> {
        match s.get(..1) {
            Some("d") => Ok(Kind::Dir),
            Some("f") => Ok(Kind::NonDir),
            Some("m") => Ok(Kind::Missing),
            _ => Err(worker_protocol(s)),
        }
    }

    fn of_mode(mode: u32) -> Kind {
        if FileType::from_raw_mode(mode) == FileType::Directory {
            Kind::Dir
        } else {
            Kind::NonDir
        }
    }
}

fn worker_protocol(s: &str) -> EngineError {
    EngineError::Runtime {
        code: 125,
        message: format!("the copy worker sent an unexpected report: {s:?}"),
    }
}

/// A path as `cp` was given it, cleaned lexically as Docker does.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PathSpec {
    /// As typed.
    shown: String,
    /// Components without `.`, `..` applied lexically; empty for `/`.
    parts: Vec<String>,
    /// Ends in `/.`: a directory's contents, not the directory itself.
    contents_only: bool,
    /// Ends in `/` or `/.`: must be a directory (a final symlink is followed).
    dir_syntax: bool,
}

impl PathSpec {
    fn parse(s: &str) -> PathSpec {
        let contents_only = s == "." || s.ends_with("/.");
        let mut parts: Vec<String> = Vec::new();
        for c in s.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c.to_string()),
            }
        }
        PathSpec {
            shown: s.to_string(),
            parts,
            contents_only,
            dir_syntax: contents_only || s.ends_with('/'),
        }
    }

    /// Relative to a container's root.
    fn rel(&self) -> String {
        self.parts.join("/")
    }

    fn parent_rel(&self) -> String {
        self.parts[..self.parts.len().saturating_sub(1)].join("/")
    }

    /// The last component; empty for the root.
    fn base(&self) -> &str {
        self.parts.last().map_or("", String::as_str)
    }

    fn source(&self, kind: Kind) -> Source {
        Source {
            kind,
            base: self.base().to_string(),
            contents_only: self.contents_only,
        }
    }
}

/// The source of a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    /// `Dir` or `NonDir`.
    kind: Kind,
    /// Its name (empty for a root).
    base: String,
    contents_only: bool,
}

impl Source {
    /// The name its entries get in a tar stream of its own (`cp SRC -`).
    fn top_name(&self) -> &str {
        if self.contents_only || self.base.is_empty() {
            "."
        } else {
            &self.base
        }
    }
}

/// The destination of a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dest {
    kind: Kind,
    /// When missing: its parent exists and is a directory.
    parent_is_dir: bool,
    /// When missing: a directory on its path is not one (`ENOTDIR`).
    parent_not_dir: bool,
    dir_syntax: bool,
    /// Its name (empty for a root).
    base: String,
}

impl Dest {
    fn encode(&self) -> String {
        format!(
            "{}{}",
            self.kind.code(),
            match (self.parent_is_dir, self.parent_not_dir) {
                (true, _) => "p",
                (false, true) => "n",
                (false, false) => "-",
            }
        )
    }

    fn decode(s: &str, spec: &PathSpec) -> Result<Dest> {
        Ok(Dest {
            kind: Kind::decode(s)?,
            parent_is_dir: s.get(1..2) == Some("p"),
            parent_not_dir: s.get(1..2) == Some("n"),
            dir_syntax: spec.dir_syntax,
            base: spec.base().to_string(),
        })
    }
}

/// Where a copy lands: the tar stream's entries are named under `name`
/// (`.` for a directory's contents) and extracted into `into`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Plan {
    into: Lands,
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lands {
    /// The destination path itself (an existing directory).
    Dest,
    /// The destination's parent directory.
    Parent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PlanError {
    /// A directory onto an existing non-directory.
    DirOntoFile,
    /// `dest/` names an existing non-directory.
    NotADirectory,
    /// `dest/` does not exist and the source is a file.
    NoSuchDirectory,
    /// The destination and its parent do not exist.
    NoParent,
    /// A directory on the destination's path is not one.
    ParentNotDir,
}

impl PlanError {
    /// The error as the engine reports it: the docker CLI's own check for
    /// a directory onto a file, the daemon's refusal for the rest.
    fn error(self, dest: &str, location: &str) -> EngineError {
        match self {
            PlanError::DirOntoFile => EngineError::ClientCheck(CANNOT_COPY_DIR.into()),
            e => EngineError::InvalidArgument(e.message(dest, location)),
        }
    }

    fn message(self, dest: &str, location: &str) -> String {
        match self {
            // The docker CLI's words (it checks before it sends anything).
            PlanError::DirOntoFile => CANNOT_COPY_DIR.to_string(),
            PlanError::NotADirectory => format!("not a directory: {dest} {location}"),
            PlanError::NoSuchDirectory => {
                format!("destination directory {dest} {location} does not exist")
            }
            // Docker's daemon names the missing directory.
            PlanError::NoParent if location.starts_with("in container") => {
                let trimmed = dest.trim_end_matches('/');
                let parent = match trimmed.rsplit_once('/') {
                    Some(("", _)) | None => "/",
                    Some((p, _)) => p,
                };
                format!("Could not find the file {parent} {location}")
            }
            PlanError::ParentNotDir if location.starts_with("in container") => {
                "extraction point is not a directory".to_string()
            }
            PlanError::NoParent | PlanError::ParentNotDir => {
                format!("could not find the parent directory of {dest} {location}")
            }
        }
    }
}

/// Docker's rules for where a copy of `src` to `dest` lands.
fn plan(src: &Source, dest: &Dest) -> std::result::Result<Plan, PlanError> {
    match (src.kind, dest.kind) {
        (_, Kind::Dir) => Ok(Plan {
            into: Lands::Dest,
            name: src.top_name().to_string(),
        }),
        (Kind::Dir, Kind::NonDir) => Err(PlanError::DirOntoFile),
        (_, Kind::NonDir) if dest.dir_syntax => Err(PlanError::NotADirectory),
        (_, Kind::Missing) if dest.parent_not_dir => Err(PlanError::ParentNotDir),
        (_, Kind::Missing) if !dest.parent_is_dir => Err(PlanError::NoParent),
        (Kind::NonDir, Kind::Missing) if dest.dir_syntax => Err(PlanError::NoSuchDirectory),
        _ => Ok(Plan {
            into: Lands::Parent,
            name: dest.base.clone(),
        }),
    }
}

/// Docker's words for an entry of a copy that would change the kind of what
/// is at its path; `dir` is where the copy was extracted, as the user sees
/// it. None for any other error.
fn kind_conflict_words(e: &LayerError, dir: &str) -> Option<String> {
    let LayerError::KindConflict { path, existing_dir } = e else {
        return None;
    };
    let full = format!("{}/{path}", dir.trim_end_matches('/'));
    Some(if *existing_dir {
        format!("cannot overwrite directory {full:?} with non-directory {dir:?}")
    } else {
        format!("cannot overwrite non-directory {full:?} with directory {dir:?}")
    })
}

/// Refuses to replace a directory with a file or a file with a directory at
/// the top of a copy to the host, before anything is written, in Docker's
/// words (`shown`: the directory as the user named it).
fn check_overwrite(
    dir: BorrowedFd<'_>,
    shown: &str,
    name: &str,
    src: Kind,
) -> std::result::Result<(), String> {
    if name == "." || name.is_empty() {
        return Ok(());
    }
    let existing_dir = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Kind::of_mode(st.st_mode) == Kind::Dir,
        Err(_) => return Ok(()),
    };
    if existing_dir == (src == Kind::Dir) {
        return Ok(());
    }
    let conflict = LayerError::KindConflict {
        path: name.to_string(),
        existing_dir,
    };
    Err(kind_conflict_words(&conflict, shown).unwrap_or_else(|| conflict.to_string()))
}

/// Docker's refusal of a host destination that is neither a directory nor
/// a regular file. Docker refuses devices only and replaces a FIFO or a
/// socket; berth refuses all three.
fn not_regular_on_host(path: &Path, t: std::fs::FileType) -> EngineError {
    use std::os::unix::fs::FileTypeExt;
    let got = if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "an irregular file"
    };
    EngineError::InvalidArgument(format!(
        "invalid output path: \"{}\" must be a directory or a regular file: got {got}",
        path.display()
    ))
}

fn check_overwrite_on_host(dir: &Path, name: &str, src: Kind) -> Result<()> {
    if name != "." && !name.is_empty() {
        let target = dir.join(name);
        if let Ok(m) = std::fs::symlink_metadata(&target) {
            let t = m.file_type();
            if !(t.is_dir() || t.is_file() || t.is_symlink()) {
                return Err(not_regular_on_host(&target, t));
            }
        }
    }
    let fd = rfs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        EngineError::InvalidArgument(format!(
            "no such directory on the host: {} ({})",
            dir.display(),
            io::Error::from(e)
        ))
    })?;
    check_overwrite(fd.as_fd(), &dir.display().to_string(), name, src)
        .map_err(EngineError::ClientCheck)
}

/// A directory beside a copy's destination (`.berth-cp-PID-N`) that a
/// file is extracted into before it is renamed into place; removed with
/// whatever it still holds when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn new(dir: &Path) -> Result<Staging> {
        let pid = std::process::id();
        let mut n = 0u32;
        loop {
            let path = dir.join(format!(".berth-cp-{pid}-{n}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Staging { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(io_ctx(format!("cannot copy into {}", dir.display()))(e)),
            }
        }
    }

    /// Renames the extracted `name` onto `dir/name`, checking once more
    /// that what it replaces is no device, FIFO or socket.
    fn put(&self, name: &str, dir: &Path) -> Result<()> {
        let target = dir.join(name);
        if let Ok(m) = std::fs::symlink_metadata(&target) {
            let t = m.file_type();
            if !(t.is_file() || t.is_symlink()) {
                return Err(if t.is_dir() {
                    EngineError::InvalidArgument(format!(
                        "cannot overwrite directory {name} with a non-directory"
                    ))
                } else {
                    not_regular_on_host(&target, t)
                });
            }
        }
        std::fs::rename(self.path.join(name), &target)
            .map_err(io_ctx(format!("cannot copy to {}", target.display())))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A host path a copy goes to.
struct HostDest {
    shown: String,
    /// Absolute, cleaned.
    path: PathBuf,
    dest: Dest,
}

impl HostDest {
    /// Docker's view of a destination on the host: a symlink is followed
    /// (a copy onto a link to a file replaces the file it points to); a
    /// device, FIFO or socket is refused, never replaced.
    fn stat(p: &Path) -> Result<HostDest> {
        let shown = p.display().to_string();
        let spec = PathSpec::parse(&absolute(p)?);
        let mut path = PathBuf::from(format!("/{}", spec.rel()));
        let mut base = spec.base().to_string();
        let (kind, parent_is_dir) = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => (Kind::Dir, true),
            Ok(m) if m.is_file() => {
                if std::fs::symlink_metadata(&path).is_ok_and(|l| l.file_type().is_symlink()) {
                    path = std::fs::canonicalize(&path)
                        .map_err(io_ctx(format!("cannot copy to {shown}")))?;
                    base = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                }
                (Kind::NonDir, true)
            }
            Ok(m) => return Err(not_regular_on_host(&path, m.file_type())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = path.parent().unwrap_or(Path::new("/"));
                (
                    Kind::Missing,
                    std::fs::metadata(parent).is_ok_and(|m| m.is_dir()),
                )
            }
            Err(e) => return Err(io_ctx(format!("cannot copy to {shown}"))(e)),
        };
        Ok(HostDest {
            shown,
            dest: Dest {
                kind,
                parent_is_dir,
                parent_not_dir: false,
                dir_syntax: spec.dir_syntax,
                base,
            },
            path,
        })
    }

    fn parent(&self) -> PathBuf {
        self.path
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
    }
}

/// A host path a copy comes from.
struct HostSource {
    /// Absolute, cleaned: resolved by the tar writer with `/` as the root.
    path: PathBuf,
    follow: bool,
    source: Source,
}

impl HostSource {
    fn stat(p: &Path, follow_link: bool) -> Result<HostSource> {
        let shown = p.display().to_string();
        let spec = PathSpec::parse(&absolute(p)?);
        let follow = follow_link || spec.dir_syntax;
        let path = PathBuf::from(format!("/{}", spec.rel()));
        let meta = if follow {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        }
        .map_err(io_ctx(format!("cannot copy {shown}")))?;
        let kind = if meta.is_dir() {
            Kind::Dir
        } else {
            Kind::NonDir
        };
        if spec.contents_only && kind != Kind::Dir {
            return Err(EngineError::InvalidArgument(format!(
                "not a directory: {shown}"
            )));
        }
        Ok(HostSource {
            source: spec.source(kind),
            path,
            follow,
        })
    }
}

/// `p` made absolute against the current directory (not resolved).
fn absolute(p: &Path) -> Result<String> {
    let abs = std::path::absolute(p).map_err(io_ctx(format!("cannot resolve {}", p.display())))?;
    let mut s = abs
        .to_str()
        .ok_or_else(|| EngineError::InvalidArgument(format!("not a UTF-8 path: {}", p.display())))?
        .to_string();
    // `absolute` drops a trailing `/.` or `/`, which carry meaning for cp.
    let raw = p.to_string_lossy();
    if raw.ends_with("/.") || raw == "." {
        s.push_str("/.");
    } else if raw.ends_with('/') && !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

// ---------------------------------------------------------------------------
// The container's root, as the worker sees it

/// How a worker reaches a container's root filesystem.
enum Access {
    /// Through its init's root.
    Running { pid: i32 },
    /// Through an overlay of its layers, mounted by the worker.
    Stopped {
        rootfs: RootFs,
        /// Its volumes and binds, mounted on the overlay as when it runs.
        mounts: Vec<berth_runtime::Mount>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// The root filesystem alone (no volumes, /proc...), read-only.
    Export,
    /// Read, with the container's volumes.
    Read,
    /// Written into.
    Write,
}

/// The container's root in the worker: a path and a descriptor of it.
struct Root {
    path: PathBuf,
    fd: OwnedFd,
    /// A detached clone of a running container's root mount (export).
    _tree: Option<OwnedFd>,
}

/// Sets the container's root up in the worker. Only ever called in a worker:
/// it changes the process's mount namespace.
fn enter(access: &Access, purpose: Purpose) -> std::result::Result<Root, ChildError> {
    let (path, tree) = match access {
        Access::Running { pid } if purpose == Purpose::Export => {
            let tree = clone_root_mount(*pid)?;
            (
                PathBuf::from(format!("/proc/self/fd/{}", tree.as_raw_fd())),
                Some(tree),
            )
        }
        Access::Running { pid } => (PathBuf::from(format!("/proc/{pid}/root")), None),
        Access::Stopped { rootfs, mounts } => {
            let with_binds = purpose != Purpose::Export && !mounts.is_empty();
            // Writable to make missing mount points (as the runtime would
            // at start), then read-only again unless writing.
            mount_private_overlay(rootfs, purpose == Purpose::Write || with_binds)?;
            if with_binds {
                mount_binds(&rootfs.merged, mounts, purpose == Purpose::Write)?;
            }
            (rootfs.merged.clone(), None)
        }
    };
    let fd = rfs::open(
        &path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ChildError::sys("cannot open the container's root filesystem", e))?;
    Ok(Root {
        path,
        fd,
        _tree: tree,
    })
}

/// A read-only overlay of a container's layers (its upper directory as the
/// topmost lower one), mounted nowhere: reachable only through the returned
/// root's descriptor, unmounted when that closes.
fn detached_overlay(rootfs: &RootFs) -> Result<Root> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    let fail = |e: rustix::io::Errno| io_ctx("cannot mount the image's layers")(e.into());
    let mut lower = vec![rootfs.upper.display().to_string()];
    lower.extend(rootfs.lower.iter().map(|p| p.display().to_string()));
    // Layers one by one (`lowerdir+`, Linux 6.8); older kernels take the
    // colon-separated list.
    let configured = || -> rustix::io::Result<OwnedFd> {
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        for l in &lower {
            fsconfig_set_string(&fs, "lowerdir+", l.as_str())?;
        }
        fsconfig_create(&fs)?;
        Ok(fs)
    };
    let fs = match configured() {
        Ok(fs) => fs,
        Err(_) => {
            let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(fail)?;
            fsconfig_set_string(&fs, "lowerdir", lower.join(":")).map_err(fail)?;
            fsconfig_create(&fs).map_err(fail)?;
            fs
        }
    };
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(fail)?;
    let fd = mnt
        .try_clone()
        .map_err(io_ctx("cannot duplicate a descriptor"))?;
    Ok(Root {
        path: PathBuf::from(format!("/proc/self/fd/{}", mnt.as_raw_fd())),
        fd,
        _tree: Some(mnt),
    })
}

/// A detached, non-recursive clone of a running container's root mount:
/// its files without the volumes and special filesystems mounted on it.
fn clone_root_mount(pid: i32) -> std::result::Result<OwnedFd, ChildError> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

    let ns = |p: &str| {
        rfs::open(p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| ChildError::sys(&format!("cannot open {p}"), e))
    };
    let own = ns("/proc/self/ns/mnt")?;
    let theirs = ns(&format!("/proc/{pid}/ns/mnt"))?;
    move_into_link_name_space(theirs.as_fd(), Some(LinkNameSpaceType::Mount))
        .map_err(|e| ChildError::sys("cannot enter the container's mount namespace", e))?;
    // setns made the container's root our root and working directory.
    let tree = open_tree(
        rfs::CWD,
        "/",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    );
    move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::Mount))
        .map_err(|e| ChildError::sys("cannot return to the host's mount namespace", e))?;
    tree.map_err(|e| ChildError::sys("cannot clone the container's root mount", e))
}

/// Mounts the stopped container's overlay at its `merged` directory, in a
/// new private mount namespace of this (worker) process only. Read-only: the
/// upper directory is just the topmost lower layer (its whiteouts hide what
/// they hide), nothing can change. Writable: the container's own layout.
fn mount_private_overlay(rootfs: &RootFs, writable: bool) -> std::result::Result<(), ChildError> {
    use rustix::mount::{mount, mount_change, MountFlags, MountPropagationFlags};
    use rustix::thread::{unshare_unsafe, UnshareFlags};

    // SAFETY: the worker is single-threaded (forked from a single-threaded
    // process), so no other thread can observe the unshared namespace.
    unsafe { unshare_unsafe(UnshareFlags::NEWNS) }
        .map_err(|e| ChildError::sys("cannot make a private mount namespace", e))?;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| ChildError::sys("cannot make the mount namespace private", e))?;
    let lower: Vec<String> = rootfs
        .lower
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let (data, flags) = if writable {
        (
            format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                rootfs.upper.display(),
                rootfs.work.display()
            ),
            MountFlags::empty(),
        )
    } else {
        (
            format!("lowerdir={}:{}", rootfs.upper.display(), lower.join(":")),
            MountFlags::RDONLY,
        )
    };
    // mount(2)'s options are one page: a deeper image gives the overlay its
    // layers one by one (the mount API's `lowerdir+`).
    if data.len() >= 4095 {
        return mount_overlay_layer_by_layer(rootfs, writable)
            .map_err(|e| ChildError::sys("cannot mount the container's filesystem", e));
    }
    let data = std::ffi::CString::new(data)
        .map_err(|_| ChildError::other("overlay options contain a NUL byte".into()))?;
    mount(
        "overlay",
        &rootfs.merged,
        "overlay",
        flags | MountFlags::NOSUID | MountFlags::NODEV,
        data.as_c_str(),
    )
    .map_err(|e| ChildError::sys("cannot mount the container's filesystem", e))
}

/// [`mount_private_overlay`] for images whose layers do not fit mount(2)'s
/// options: `fsopen("overlay")`, one `lowerdir+` a layer, attached at `merged`.
fn mount_overlay_layer_by_layer(rootfs: &RootFs, writable: bool) -> rustix::io::Result<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags,
        FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    if !writable {
        fsconfig_set_string(&fs, "lowerdir+", rootfs.upper.as_os_str())?;
    }
    for l in &rootfs.lower {
        fsconfig_set_string(&fs, "lowerdir+", l.as_os_str())?;
    }
    if writable {
        fsconfig_set_string(&fs, "upperdir", rootfs.upper.as_os_str())?;
        fsconfig_set_string(&fs, "workdir", rootfs.work.as_os_str())?;
    }
    fsconfig_create(&fs)?;
    let mut attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
    if !writable {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        &rootfs.merged,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// Mounts a stopped container's volumes and binds on its overlay at
/// `merged` (in the worker's private mount namespace), each on its
/// destination resolved in the container's root (`RESOLVE_IN_ROOT`: a
/// symlinked destination never leads out of it). A destination the image
/// lacks is left out (the runtime makes it when the container starts).
/// Read-only unless `writable` and the mount is.
fn mount_binds(
    merged: &Path,
    mounts: &[berth_runtime::Mount],
    writable: bool,
) -> std::result::Result<(), ChildError> {
    use rustix::mount::{
        mount_remount, move_mount, open_tree, MountFlags, MoveMountFlags, OpenTreeFlags,
    };
    let root = rfs::open(
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ChildError::sys("cannot open the container's root filesystem", e))?;
    let at_dest = |rel: &str| {
        rfs::openat2(
            &root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    };
    let binds: Vec<&berth_runtime::Mount> = mounts
        .iter()
        .filter(|m| m.kind == berth_runtime::MountKind::Bind)
        .collect();
    for m in &binds {
        let rel = m.destination.to_string_lossy();
        if at_dest(rel.trim_start_matches('/')).is_err() {
            // Best effort: a path that cannot be made is left out below.
            let _ = make_mount_point(&root, &rel, m.source.is_dir());
        }
    }
    if !writable {
        mount_remount(merged, MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(|e| ChildError::sys("cannot make the container's filesystem read-only", e))?;
    }
    for m in binds {
        let rel = m.destination.to_string_lossy();
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            continue;
        }
        let Ok(dest) = at_dest(rel) else {
            continue;
        };
        let tree = open_tree(
            rfs::CWD,
            &m.source,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(|e| ChildError::sys(&format!("cannot open {}", m.source.display()), e))?;
        move_mount(
            &tree,
            "",
            &dest,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| ChildError::sys(&format!("cannot mount {}", m.destination.display()), e))?;
        if m.readonly || !writable {
            // The mount just made, reached again through the same path.
            let top = at_dest(rel).map_err(|e| {
                ChildError::sys(&format!("cannot open {}", m.destination.display()), e)
            })?;
            mount_remount(
                format!("/proc/self/fd/{}", top.as_raw_fd()).as_str(),
                MountFlags::BIND | MountFlags::RDONLY,
                "",
            )
            .map_err(|e| {
                ChildError::sys(
                    &format!("cannot make {} read-only", m.destination.display()),
                    e,
                )
            })?;
        }
    }
    Ok(())
}

/// Makes the mount point `path` in the container's root `root` (a
/// directory, or an empty file for a file bind), with its missing parents,
/// every component resolved in the root.
fn make_mount_point(root: &OwnedFd, path: &str, dir: bool) -> rustix::io::Result<()> {
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.contains(&"..") {
        return Err(Errno::INVAL);
    }
    let mut parent = String::from(".");
    for (i, c) in comps.iter().enumerate() {
        let pfd = rfs::openat2(
            root,
            parent.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?;
        let last = i + 1 == comps.len();
        let made = if last && !dir {
            rfs::openat(
                &pfd,
                *c,
                OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o755),
            )
            .map(drop)
        } else {
            rfs::mkdirat(&pfd, *c, Mode::from_raw_mode(0o755))
        };
        match made {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        parent.push('/');
        parent.push_str(c);
    }
    Ok(())
}

impl Root {
    /// Opens `rel` (relative to the root) with `RESOLVE_IN_ROOT`: symlinks on
    /// the way, absolute or with `..`, stay inside the container's root.
    fn open(&self, rel: &str, follow: bool, dir: bool) -> rustix::io::Result<OwnedFd> {
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        if dir {
            flags |= OFlags::DIRECTORY;
        }
        let rel = if rel.is_empty() { "." } else { rel };
        let mut tries = 0;
        loop {
            match rfs::openat2(
                &self.fd,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                // A concurrent rename in the container: the kernel asks to retry.
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                r => return r,
            }
        }
    }

    fn kind_of(&self, rel: &str, follow: bool) -> rustix::io::Result<Kind> {
        let fd = self.open(rel, follow, false)?;
        Ok(Kind::of_mode(rfs::fstat(&fd)?.st_mode))
    }

    /// What the destination of a copy is, a final symlink followed.
    fn dest_info(&self, spec: &PathSpec) -> std::result::Result<Dest, ChildError> {
        let (kind, parent_is_dir, parent_not_dir) = match self.kind_of(&spec.rel(), true) {
            Ok(k) => (k, true, false),
            Err(Errno::NOENT) => (
                Kind::Missing,
                self.open(&spec.parent_rel(), true, true).is_ok(),
                false,
            ),
            Err(Errno::NOTDIR) => (Kind::Missing, false, true),
            Err(e) => {
                return Err(ChildError::sys(
                    &format!("cannot resolve {}", spec.shown),
                    e,
                ))
            }
        };
        Ok(Dest {
            kind,
            parent_is_dir,
            parent_not_dir,
            dir_syntax: spec.dir_syntax,
            base: spec.base().to_string(),
        })
    }
}

// ---------------------------------------------------------------------------
// The worker process

/// A failure in the worker, sent to the caller as one line.
#[derive(Debug)]
struct ChildError {
    kind: char,
    message: String,
}

impl ChildError {
    fn invalid(message: String) -> ChildError {
        ChildError { kind: 'i', message }
    }
    /// An engine error the worker found, of the kind the caller gets.
    fn of(e: EngineError) -> ChildError {
        match e {
            EngineError::ClientCheck(m) => ChildError {
                kind: 'c',
                message: m,
            },
            e => ChildError::invalid(e.to_string()),
        }
    }
    fn other(message: String) -> ChildError {
        ChildError { kind: 'o', message }
    }
    fn sys(context: &str, e: Errno) -> ChildError {
        ChildError::other(format!("{context}: {}", io::Error::from(e)))
    }

    /// The worker's output descriptor (the caller's stdout, for `export`
    /// or `cp ... -`) has no reader any more.
    fn broken_pipe(message: String) -> ChildError {
        ChildError { kind: 'p', message }
    }

    fn into_engine(self) -> EngineError {
        match self.kind {
            'i' => EngineError::InvalidArgument(self.message),
            'c' => EngineError::ClientCheck(self.message),
            'n' => EngineError::NotFound(self.message),
            'p' => EngineError::Io {
                context: self.message,
                source: io::Error::from(io::ErrorKind::BrokenPipe),
            },
            _ => EngineError::Runtime {
                code: 125,
                message: self.message,
            },
        }
    }
}

impl From<LayerError> for ChildError {
    fn from(e: LayerError) -> ChildError {
        let epipe = match &e {
            LayerError::Io { source, .. }
            | LayerError::Archive(source)
            | LayerError::Entry { source, .. } => source.kind() == io::ErrorKind::BrokenPipe,
            _ => false,
        };
        if epipe {
            ChildError::broken_pipe(e.to_string())
        } else {
            ChildError::other(e.to_string())
        }
    }
}

impl From<io::Error> for ChildError {
    fn from(e: io::Error) -> ChildError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            ChildError::broken_pipe(e.to_string())
        } else {
            ChildError::other(e.to_string())
        }
    }
}

/// The worker's side of its status pipe: `info <text>` lines, then at most
/// one `error <kind> <message>` line.
struct Reporter {
    out: File,
}

impl Reporter {
    fn info(&mut self, text: &str) -> std::result::Result<(), ChildError> {
        writeln!(self.out, "info {}", one_line(text))
            .map_err(|e| ChildError::other(format!("cannot report to berth: {e}")))
    }

    fn error(&mut self, e: &ChildError) {
        // Nothing to do if berth is gone.
        let _ = writeln!(self.out, "error {} {}", e.kind, one_line(&e.message));
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// A forked worker and its status pipe.
struct Worker {
    pid: libc::pid_t,
    status: BufReader<File>,
    reaped: bool,
}

impl Worker {
    /// Forks a worker that runs `job` and exits. `close_in_child`: the
    /// caller's ends of pipes shared with the worker, which the worker must
    /// not hold (or the caller would never see end-of-file).
    fn spawn<F>(close_in_child: &[BorrowedFd<'_>], job: F) -> Result<Worker>
    where
        F: FnOnce(&mut Reporter) -> std::result::Result<(), ChildError>,
    {
        let threads = std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count);
        if threads != 1 {
            return Err(EngineError::Runtime {
                code: 125,
                message: format!(
                    "cannot start a worker for the container's files: this process has {threads} threads"
                ),
            });
        }
        let (status_r, status_w) = pipe()?;
        let parent = rustix::process::getpid();
        let raw_close: Vec<RawFd> = close_in_child.iter().map(AsRawFd::as_raw_fd).collect();
        // SAFETY: the process is single-threaded (checked above), so the
        // child starts with consistent memory and no lock held by a thread
        // that does not exist in it; it may allocate. It never returns into
        // the caller's frames: it ends in `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io_ctx("cannot fork a worker")(io::Error::last_os_error()));
        }
        if pid == 0 {
            drop(status_r);
            for fd in raw_close {
                // SAFETY: the parent's end of a pipe, duplicated into this
                // process by fork; nothing in the worker uses it, and its
                // owner (in the parent's frames) is never dropped here.
                unsafe { libc::close(fd) };
            }
            let code = worker_main(File::from(status_w), parent, job);
            // SAFETY: ends the worker without running the caller's exit
            // handlers or flushing buffers it copied from the caller.
            unsafe { libc::_exit(code) }
        }
        drop(status_w);
        Ok(Worker {
            pid,
            status: BufReader::new(File::from(status_r)),
            reaped: false,
        })
    }

    /// The worker's next `info` report; its error if it failed instead.
    fn info(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self.status.read_line(&mut line).unwrap_or(0);
        if n > 0 {
            if let Some(text) = line.trim_end_matches('\n').strip_prefix("info ") {
                return Ok(text.to_string());
            }
        }
        let pending = line;
        let e = self.conclude(pending);
        Err(e.err().unwrap_or_else(|| worker_protocol("no report")))
    }

    /// Waits for the worker; its error if it failed.
    fn finish(mut self) -> Result<()> {
        self.conclude(String::new())
    }

    fn conclude(&mut self, mut text: String) -> Result<()> {
        let _ = self.status.read_to_string(&mut text);
        let status = self.reap()?;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("error ") {
                let mut it = rest.splitn(2, ' ');
                let kind = it.next().and_then(|k| k.chars().next()).unwrap_or('o');
                let message = it.next().unwrap_or("").to_string();
                return Err(ChildError { kind, message }.into_engine());
            }
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            return Ok(());
        }
        Err(EngineError::Runtime {
            code: 125,
            message: if libc::WIFSIGNALED(status) {
                format!(
                    "the worker for the container's files was killed by signal {}",
                    libc::WTERMSIG(status)
                )
            } else {
                format!(
                    "the worker for the container's files failed (exit status {})",
                    libc::WEXITSTATUS(status)
                )
            },
        })
    }

    fn reap(&mut self) -> Result<libc::c_int> {
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: waits for our own child; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped = true;
                return Ok(status);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                self.reaped = true;
                return Err(io_ctx("waiting for the worker")(e));
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: signals and reaps our own, not yet reaped, child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// The worker's life: dies with `berth`, runs the job, reports its error.
fn worker_main<F>(status: File, parent: rustix::process::Pid, job: F) -> libc::c_int
where
    F: FnOnce(&mut Reporter) -> std::result::Result<(), ChildError>,
{
    let mut rep = Reporter { out: status };
    if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .is_err()
        || rustix::process::getppid() != Some(parent)
    {
        // berth is already gone (or we cannot follow it): do nothing.
        return 1;
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut rep))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            rep.error(&e);
            1
        }
        Err(_) => {
            rep.error(&ChildError::other("the worker panicked".into()));
            101
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io_ctx("cannot make a pipe")(e.into()))
}

/// A `File` of our own for a descriptor the caller lent.
fn dup_file(fd: BorrowedFd<'_>) -> std::result::Result<File, ChildError> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Rewriting owners in a tar stream

const BLOCK: usize = 512;
const UID_FIELD: std::ops::Range<usize> = 108..116;
const GID_FIELD: std::ops::Range<usize> = 116..124;
const SIZE_FIELD: std::ops::Range<usize> = 124..136;
const CHECKSUM_FIELD: std::ops::Range<usize> = 148..156;
const TYPE_OFFSET: usize = 156;
const MAGIC_FIELD: std::ops::Range<usize> = 257..262;
const UNAME_FIELD: std::ops::Range<usize> = 265..297;
const GNAME_FIELD: std::ops::Range<usize> = 297..329;

/// Sets the owner of every entry of a tar stream as it passes through: the
/// header's uid and gid, user and group names cleared, PAX `uid`, `gid`,
/// `uname` and `gname` records dropped. Everything else passes as it is; a
/// malformed stream is left for the tar reader downstream to refuse.
struct Chown<R> {
    inner: R,
    uid: u64,
    gid: u64,
    /// Rewritten bytes waiting to be read, from `pos`.
    pending: Vec<u8>,
    pos: usize,
    /// Entry content (with its padding) still to pass through untouched.
    content_left: u64,
    /// A PAX `size` for the next entry.
    next_size: Option<u64>,
}

impl<R: Read> Chown<R> {
    fn new(inner: R, uid: u32, gid: u32) -> Chown<R> {
        Chown {
            inner,
            uid: u64::from(uid),
            gid: u64::from(gid),
            pending: Vec::new(),
            pos: 0,
            content_left: 0,
            next_size: None,
        }
    }

    /// Reads the next header block (and a PAX header's records) into
    /// `pending`, rewritten. False at the end of the stream.
    fn next_header(&mut self) -> io::Result<bool> {
        self.pending.clear();
        self.pos = 0;
        let mut block = [0u8; BLOCK];
        let got = read_full(&mut self.inner, &mut block)?;
        if got < BLOCK {
            // The end, or a truncated stream that the tar reader will refuse.
            self.pending.extend_from_slice(&block[..got]);
            return Ok(got > 0);
        }
        if block.iter().all(|b| *b == 0) {
            self.pending.extend_from_slice(&block);
            return Ok(true);
        }
        let Some(size) = parse_number(&block[SIZE_FIELD]) else {
            self.pending.extend_from_slice(&block);
            return Ok(true);
        };
        match block[TYPE_OFFSET] {
            kind @ (b'x' | b'g') => {
                let len = usize::try_from(size).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "pax header too big")
                })?;
                let mut data = vec![0u8; padded(size) as usize];
                let got = read_full(&mut self.inner, &mut data)?;
                if got < data.len() {
                    self.pending.extend_from_slice(&block);
                    self.pending.extend_from_slice(&data[..got]);
                    return Ok(true);
                }
                data.truncate(len);
                let (kept, size_override) = filter_pax(&data);
                if kind == b'x' {
                    self.next_size = size_override;
                }
                set_number(&mut block[SIZE_FIELD], kept.len() as u64);
                set_checksum(&mut block);
                self.pending.extend_from_slice(&block);
                self.pending.extend_from_slice(&kept);
                self.pending
                    .resize(BLOCK + padded(kept.len() as u64) as usize, 0);
            }
            // GNU long names: data, not an entry of their own.
            b'L' | b'K' => {
                self.pending.extend_from_slice(&block);
                self.content_left = padded(size);
            }
            _ => {
                set_number(&mut block[UID_FIELD], self.uid);
                set_number(&mut block[GID_FIELD], self.gid);
                if &block[MAGIC_FIELD] == b"ustar" {
                    block[UNAME_FIELD].fill(0);
                    block[GNAME_FIELD].fill(0);
                }
                set_checksum(&mut block);
                self.pending.extend_from_slice(&block);
                self.content_left = padded(self.next_size.take().unwrap_or(size));
            }
        }
        Ok(true)
    }
}

impl<R: Read> Read for Chown<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.content_left > 0 {
                let want = usize::try_from(self.content_left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let n = self.inner.read(&mut buf[..want])?;
                self.content_left -= n as u64;
                return Ok(n);
            }
            if buf.is_empty() || !self.next_header()? {
                return Ok(0);
            }
        }
    }
}

/// Reads until `buf` is full or the end of the stream; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A numeric header field: octal, or base-256 when its first byte has the
/// high bit set.
fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()
}

/// Writes `v` into a numeric field: zero-padded octal and a NUL, or
/// base-256 when it does not fit.
fn set_number(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let octal = format!("{v:0width$o}");
    if octal.len() <= width {
        field[..width].copy_from_slice(octal.as_bytes());
        field[width] = 0;
    } else {
        let n = field.len();
        for (i, b) in field.iter_mut().enumerate() {
            let shift = 8 * (n - 1 - i);
            *b = if shift >= 64 { 0 } else { (v >> shift) as u8 };
        }
        field[0] |= 0x80;
    }
}

fn set_checksum(block: &mut [u8; BLOCK]) {
    block[CHECKSUM_FIELD].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[CHECKSUM_FIELD].copy_from_slice(&text.as_bytes()[..8]);
}

/// PAX records without the owner ones; and the `size` record's value.
fn filter_pax(data: &[u8]) -> (Vec<u8>, Option<u64>) {
    let mut kept = Vec::with_capacity(data.len());
    let mut size = None;
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|l| *l > space && *l <= rest.len())
        else {
            break;
        };
        let record = &rest[..len];
        let body = &record[space + 1..];
        let (key, value) = match body.iter().position(|b| *b == b'=') {
            Some(eq) => (&body[..eq], &body[eq + 1..]),
            None => (body, &b""[..]),
        };
        match key {
            b"uid" | b"gid" | b"uname" | b"gname" => {}
            _ => {
                if key == b"size" {
                    size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.trim_end_matches('\n').parse().ok());
                }
                kept.extend_from_slice(record);
            }
        }
        rest = &rest[len..];
    }
    // Whatever could not be parsed goes on as it was.
    kept.extend_from_slice(rest);
    (kept, size)
}

/// Where `found` (opened in the detached overlay of `rootfs`) is, as the
/// container's merged directory shows it on Docker's host: symlinks
/// resolved, as Docker's error messages name it. `path` when the kernel
/// cannot tell.
fn shown_in_merged(rootfs: &RootFs, found: &OwnedFd, path: &str) -> String {
    let inside = std::fs::read_link(format!("/proc/self/fd/{}", found.as_raw_fd()))
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .filter(|p| p.starts_with('/'))
        .unwrap_or_else(|| path.to_string());
    format!("{}{inside}", rootfs.merged.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(kind: Kind, base: &str, contents_only: bool) -> Source {
        Source {
            kind,
            base: base.into(),
            contents_only,
        }
    }

    fn dest(kind: Kind, parent_is_dir: bool, dir_syntax: bool, base: &str) -> Dest {
        Dest {
            kind,
            parent_is_dir,
            parent_not_dir: false,
            dir_syntax,
            base: base.into(),
        }
    }

    fn to(into: Lands, name: &str) -> std::result::Result<Plan, PlanError> {
        Ok(Plan {
            into,
            name: name.into(),
        })
    }

    #[test]
    fn docker_copy_rules() {
        use Kind::*;
        // A file into a directory, onto a file, to a new name.
        let f = src(NonDir, "f.txt", false);
        assert_eq!(
            plan(&f, &dest(Dir, true, false, "d")),
            to(Lands::Dest, "f.txt")
        );
        assert_eq!(
            plan(&f, &dest(NonDir, true, false, "g")),
            to(Lands::Parent, "g")
        );
        assert_eq!(
            plan(&f, &dest(Missing, true, false, "g")),
            to(Lands::Parent, "g")
        );
        assert_eq!(
            plan(&f, &dest(Missing, true, true, "g")),
            Err(PlanError::NoSuchDirectory)
        );
        assert_eq!(
            plan(&f, &dest(NonDir, true, true, "g")),
            Err(PlanError::NotADirectory)
        );
        assert_eq!(
            plan(&f, &dest(Missing, false, false, "g")),
            Err(PlanError::NoParent)
        );
        // A directory into a directory, its contents, to a new name, onto a file.
        let d = src(Dir, "dir", false);
        assert_eq!(
            plan(&d, &dest(Dir, true, false, "x")),
            to(Lands::Dest, "dir")
        );
        let c = src(Dir, "dir", true);
        assert_eq!(plan(&c, &dest(Dir, true, false, "x")), to(Lands::Dest, "."));
        assert_eq!(
            plan(&d, &dest(Missing, true, false, "new")),
            to(Lands::Parent, "new")
        );
        assert_eq!(
            plan(&c, &dest(Missing, true, true, "new")),
            to(Lands::Parent, "new")
        );
        assert_eq!(
            plan(&d, &dest(NonDir, true, false, "f")),
            Err(PlanError::DirOntoFile)
        );
        // The root of a container is its contents.
        assert_eq!(
            plan(&src(Dir, "", false), &dest(Dir, true, false, "x")),
            to(Lands::Dest, ".")
        );
    }

    #[test]
    fn path_specs_clean_like_docker() {
        let p = PathSpec::parse("/a/./b/../c/.");
        assert_eq!(p.parts, vec!["a", "c"]);
        assert!(p.contents_only && p.dir_syntax);
        assert_eq!(p.rel(), "a/c");
        assert_eq!(p.parent_rel(), "a");
        let p = PathSpec::parse("evil/../../../etc/");
        assert_eq!(p.rel(), "etc");
        assert!(p.dir_syntax && !p.contents_only);
        let p = PathSpec::parse("/");
        assert_eq!((p.rel().as_str(), p.base()), ("", ""));
    }

    #[test]
    fn numbers_round_trip() {
        for v in [0u64, 7, 0o7777777, 0o10000000, u64::from(u32::MAX), 1 << 40] {
            let mut f = [0u8; 8];
            set_number(&mut f, v);
            assert_eq!(parse_number(&f), Some(v), "{v}");
        }
        let mut f = [0u8; 12];
        set_number(&mut f, 12345);
        assert_eq!(parse_number(&f), Some(12345));
    }

    #[test]
    fn pax_owner_records_are_dropped() {
        let data = b"12 uid=1000\n12 gid=1000\n16 size=1048576\n20 path=some/name\n";
        let (kept, size) = filter_pax(data);
        assert_eq!(kept, b"16 size=1048576\n20 path=some/name\n");
        assert_eq!(size, Some(1_048_576));
    }

    /// A tree with owners other than root, long names (PAX headers), a
    /// symlink and an empty file, through `Chown` and back.
    #[test]
    fn chown_rewrites_every_entry() {
        use std::os::unix::fs::{chown, MetadataExt};
        let src = tempfile::TempDir::new().unwrap();
        let long = "n".repeat(150);
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d").join(&long), vec![7u8; 3000]).unwrap();
        std::fs::write(src.path().join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("d", src.path().join("link")).unwrap();
        for p in ["d", "empty"] {
            chown(src.path().join(p), Some(1234), Some(5678)).unwrap();
        }
        chown(src.path().join("d").join(&long), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.path().join("link"), Some(1234), Some(5678)).unwrap();
        let mut tar = Vec::new();
        tarwriter::write_dir(src.path(), &mut tar, &TarOptions::default()).unwrap();

        let mut out = Vec::new();
        Chown::new(&tar[..], 42, 43).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), tar.len());
        let dest = tempfile::TempDir::new().unwrap();
        berth_layers::apply_layer(&out[..], dest.path(), &COPY_APPLY).unwrap();
        for p in ["d", "empty", "link"] {
            let m = std::fs::symlink_metadata(dest.path().join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (42, 43), "{p}");
        }
        let file = dest.path().join("d").join(&long);
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!((m.uid(), m.gid()), (42, 43));
        assert_eq!(std::fs::read(&file).unwrap(), vec![7u8; 3000]);

        // Read one byte at a time: the same bytes.
        let mut slow = Vec::new();
        let mut c = Chown::new(&tar[..], 42, 43);
        let mut b = [0u8; 1];
        while c.read(&mut b).unwrap() == 1 {
            slow.push(b[0]);
        }
        assert_eq!(slow, out);
    }
}
