//! A container's changes and the image graph: `diff`, `commit`, `history`, and the
//! parent → child tree behind `images --tree` / `--format dot`.
//!
//! Both `diff` and `commit` read the container's upper directory only (overlayfs'
//! writable layer: whiteouts are 0:0 character devices, a replaced directory carries
//! `trusted.overlay.opaque=y`), so their cost grows with what the container changed,
//! not with the size of its image. The lower layers are only looked up, entry by entry,
//! for the paths the upper directory holds.
//!
//! What the runtime itself puts in the upper directory (the mount points of `/proc`,
//! `/sys`, `/dev`, `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`) is not a change:
//! Docker keeps those in a separate "init" layer; berth leaves them out of `diff` and
//! out of a committed layer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_layers::tarwriter::{self, TarOptions};
use berth_layers::{ApplyOptions, WhiteoutMode};
use berth_runtime::cgroups::{self, Cgroup};
use berth_runtime::trace::trace;
use berth_store::{ImageRow, LayerRow};
use berth_types::{Healthcheck, History, Reference, RunConfig};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use serde::Serialize;
use serde_json::Value;

use crate::{now_rfc3339, ContainerView, Digest, Engine, EngineError, Result};

/// Paths (relative to the root) the runtime creates as mount points when the image
/// lacks them. They are never a container's own change.
const RUNTIME_MOUNT_POINTS: &[&[u8]] = &[
    b"dev",
    b"proc",
    b"sys",
    b"etc/hostname",
    b"etc/hosts",
    b"etc/resolv.conf",
];

const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Directories the runtime may have to create (or copy up) for those mount points.
const RUNTIME_MOUNT_POINT_PARENTS: &[&[u8]] = &[b"etc"];

fn is_runtime_mount_point(path: &[u8]) -> bool {
    RUNTIME_MOUNT_POINTS.contains(&path)
}

/// Whether the directory `rel` of the upper directory is there only for the runtime's
/// mount points: it holds nothing else, and the image either lacks it or has it with
/// the same owner and mode (only its mtime changed).
fn holds_only_runtime_mount_points(upper: &Path, lower: &[PathBuf], rel: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;

    let rel = Path::new(std::ffi::OsStr::from_bytes(rel));
    let dir = upper.join(rel);
    let Ok(st) = std::fs::symlink_metadata(&dir) else {
        return false;
    };
    if !st.is_dir() {
        return false;
    }
    match open_dir(&dir) {
        Ok(fd) if !is_opaque(fd.as_fd()) => {}
        _ => return false,
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return false;
    };
    let mut any = false;
    for e in entries {
        let Ok(e) = e else {
            return false;
        };
        let mut path = rel.as_os_str().as_bytes().to_vec();
        path.push(b'/');
        path.extend_from_slice(e.file_name().as_bytes());
        if !is_runtime_mount_point(&path) {
            return false;
        }
        any = true;
    }
    if !any {
        return false;
    }
    for layer in lower {
        match std::fs::symlink_metadata(layer.join(rel)) {
            Ok(below) => {
                return below.is_dir()
                    && below.mode() == st.mode()
                    && below.uid() == st.uid()
                    && below.gid() == st.gid()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return false,
        }
    }
    true
}

/// What happened to a path, as `docker diff` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    /// `C`: the path existed in the image and was modified (or, for a directory,
    /// something inside it changed).
    Changed,
    /// `A`: the path is new.
    Added,
    /// `D`: the path existed in the image and was deleted.
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn symbol(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }

    /// The number Docker's API uses (`Kind` in `GET /containers/{id}/changes`).
    pub fn api_kind(self) -> u8 {
        match self {
            ChangeKind::Changed => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

/// One line of `diff`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute path inside the container (`/etc/passwd`).
    pub path: String,
}

/// What `commit` takes, in Docker's flag vocabulary.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-a`: the image's author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the new image's config (CMD,
    /// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    pub changes: Vec<String>,
    /// `-p`: freeze a running container while its changes are read.
    pub pause: bool,
    /// `REPOSITORY[:TAG]` for the new image.
    pub reference: Option<String>,
}

/// One row of `history`, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The image this step produced when it is known (the image itself and, along
    /// the recorded parent chain, its parents); `None` prints as `<missing>`.
    pub id: Option<Digest>,
    /// Tags of that image (familiar form).
    pub tags: Vec<String>,
    /// RFC 3339, as the config records it.
    pub created: Option<String>,
    pub created_by: String,
    /// Bytes of the layer this step added (0 for a config-only step).
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

/// An image in the parent → child graph (`images --tree`, `--format dot`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageNode {
    pub id: Digest,
    /// Familiar references (`bb:latest`), sorted.
    pub tags: Vec<String>,
    /// Bytes of all its layers.
    pub size: u64,
    pub created: String,
    pub parent: Option<Digest>,
    /// Images committed (or built) from this one, oldest first.
    pub children: Vec<ImageNode>,
}

fn sys_err(context: impl Into<String>) -> impl FnOnce(Errno) -> EngineError {
    let context = context.into();
    move |e| EngineError::Io {
        context,
        source: e.into(),
    }
}

impl Engine {
    /// `diff`: what the container changed, from its upper directory only, in the order
    /// `docker diff` prints: a directory before what is inside it, and in a directory
    /// first what is there (names sorted, each followed by its contents), then what
    /// was deleted from it (Docker's daemon walks the new tree, then lists what is
    /// missing from the old one; its order among siblings is a Go map's, so berth's
    /// sorted order is one of Docker's).
    ///
    /// A whiteout is `D`; a path in the upper directory is `C` if the image has it, else
    /// `A`. A directory that exists below is listed (`C`) when its own metadata changed
    /// or, as Docker does, when anything changed inside it, however deep. A directory
    /// the container replaced (opaque) is `C` if the image had it, and each entry of the
    /// image's that it lacks is `D`, as Docker's daemon lists them.
    pub fn diff(&self, container: &str) -> Result<Vec<Change>> {
        let v = self.container(container)?;
        let upper = v.dir.join("upper");
        let upper_fd = open_dir(&upper).map_err(sys_err(format!(
            "cannot open the upper directory of container {}",
            v.id.short()
        )))?;
        let mut lower = Vec::new();
        for chain in self.container_layers(&v) {
            let dir = self.layer_dir(&chain);
            lower.push(
                open_dir(&dir).map_err(sys_err(format!("cannot open layer {}", dir.display())))?,
            );
        }
        let mut walk = DiffWalk::default();
        walk.walk(upper_fd, "", &lower, false)?;
        Ok(walk.changes)
    }

    /// `commit`: a new image whose top layer is the container's changes (deletions as
    /// whiteouts) over the layers of the container's image, which are shared, not
    /// copied. The config is the container's (its command, environment, working
    /// directory, user, labels) with the `-c` instructions applied; a history entry
    /// records the container's command, `-m` and `-a`. Returns the new image's ID.
    ///
    /// Data first, row last: the layer tar goes to the blob store, is unpacked into
    /// `layers/<chain id>`, and only then are the layer and image rows written, in one
    /// transaction. A bad `-c` or reference fails before anything is written.
    pub fn commit(&mut self, container: &str, o: &CommitOptions) -> Result<Digest> {
        trace("engine: commit");
        let reference = o
            .reference
            .as_deref()
            .map(Reference::parse)
            .transpose()
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        if let Some(r) = reference.as_ref().filter(|r| r.digest().is_some()) {
            return Err(EngineError::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {}",
                r.familiar()
            )));
        }
        let row = self.find_container(container)?;
        // Holding the lock keeps `rm`, `start` and `stop` out while the upper
        // directory is read.
        let _lock = self.lock_container(&row.id)?;
        let v = self.container(row.id.as_str())?;
        if v.removing {
            return Err(EngineError::Conflict(format!(
                "container {} is marked for removal and cannot be committed",
                v.id.short()
            )));
        }
        let parent = self
            .store
            .read()
            .image(&v.image_id)?
            .ok_or_else(|| EngineError::NoSuchImage(v.image_id.to_string()))?;
        let mut config = Self::image_config(&parent)?;
        config.config = container_run_config(&config.config, &v);
        // As Docker's commit: the container's ID and its config as it ran
        // (`Container`, `ContainerConfig`), and the container's own fields
        // in the image's config (`Hostname`, `Attach*`, `Image`, ...).
        let ran = crate::inspect::container_config(&v);
        for k in CONTAINER_ONLY_FIELDS {
            match ran.get(*k) {
                Some(Value::Bool(false)) | Some(Value::Null) | None => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(val) => {
                    config.config.extra.insert((*k).to_string(), val.clone());
                }
            }
        }
        config
            .extra
            .insert("container".into(), Value::String(v.id.to_string()));
        config.extra.insert("container_config".into(), ran);
        apply_changes(&mut config.config, &o.changes)?;

        // An idle container is woken first: its monitor, not the commit,
        // decides when it sleeps again.
        if o.pause {
            self.wake(&v);
        }
        let frozen = if o.pause && v.running() {
            Some(Frozen::freeze(&self.cgroup_rel(&v.id, &v.host_config))?)
        } else {
            None
        };
        let lower: Vec<PathBuf> = self
            .container_layers(&v)
            .iter()
            .map(|l| self.layer_dir(l))
            .collect();
        let NewLayer {
            blob,
            had_blob,
            tmp,
            stats,
        } = self.write_layer(&v.dir.join("upper"), &lower, frozen)?;
        let drop_blob = |engine: &Engine| {
            if !had_blob {
                let _ = engine.blobs.remove(&blob);
            }
        };
        // The blob is the uncompressed tar: its digest is the layer's diff_id.
        let diff_id = stats.diff_id.clone();
        let chain_id = match parent.layers.last() {
            Some(below) => Digest::of_bytes(format!("{below} {diff_id}").as_bytes()),
            None => diff_id.clone(),
        };
        let layer_dir = self.layer_dir(&chain_id);
        // A new layer's inventory is made while the image is written.
        let mut scan = None;
        if layer_dir.exists() {
            // The same changes were committed before: the layer is shared,
            // and the copy just unpacked goes in the background (a thousand
            // unlinks are not the caller's to wait for).
            remove_in_background(&tmp);
        } else {
            scan = Self::start_layer_scan(&tmp);
            if let Err(e) = berth_layers::commit_temp(&tmp, &layer_dir) {
                let _ = berth_layers::remove_layer_dir(&tmp);
                drop_blob(self);
                return Err(e.into());
            }
        }

        let created = now_rfc3339();
        config.created = Some(created.clone());
        if let Some(a) = &o.author {
            config.author = Some(a.clone());
        }
        config.rootfs.diff_ids.push(diff_id.clone());
        config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(v.command_line().join(" ")),
            author: o.author.clone(),
            comment: o.message.clone().filter(|m| !m.is_empty()),
            empty_layer: false,
        });
        let bytes = serde_json::to_vec(&config).map_err(|e| {
            EngineError::InvalidArgument(format!("cannot encode the image config: {e}"))
        })?;
        let id = Digest::of_bytes(&bytes);
        let mut layers = parent.layers.clone();
        layers.push(chain_id.clone());
        let image = ImageRow {
            id: id.clone(),
            config: bytes,
            layers,
            size: parent.size + stats.size,
            parent: Some(parent.id.clone()),
            created,
            added: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        };
        let layer = LayerRow {
            chain_id: chain_id.clone(),
            diff_id,
            parent: parent.layers.last().cloned(),
            size: stats.size,
            blob: Some(blob.clone()),
        };
        let written = self.store.transaction(|t| -> Result<()> {
            t.insert_layer(&layer)?;
            t.insert_image(&image)?;
            if let Some(r) = &reference {
                t.set_tag(&r.to_string(), &id)?;
            }
            Ok(())
        });
        if let Err(e) = written {
            if !matches!(self.store.read().layer(&chain_id), Ok(Some(_))) {
                let _ = berth_layers::remove_layer_dir(&layer_dir);
                drop_blob(self);
            }
            return Err(e);
        }
        trace("engine: commit: image written");
        if let Some(scan) = scan {
            self.finish_layer_scan(&chain_id, scan);
        }
        self.inventory_new_image(&id);
        trace("engine: commit: inventory written");
        if let Some(r) = &reference {
            self.emit_image("tag", id.as_str(), &r.familiar());
        }
        let image_ref = reference.as_ref().map(|r| r.familiar()).unwrap_or_default();
        self.emit_container(
            &v,
            "commit",
            &[
                ("comment", o.message.clone().unwrap_or_default()),
                ("imageID", id.to_string()),
                ("imageRef", image_ref),
            ],
        );
        Ok(id)
    }

    /// Streams the upper directory as a layer tar (overlay whiteouts converted, the
    /// runtime's mount points left out) into the blob store and, at the same time,
    /// unpacks it into a temp directory under the layers root: three threads joined by
    /// pipes (the tar writer, the blob store, the unpacker), so reading the container's
    /// files, hashing and syncing the blob and creating the layer's files overlap.
    /// `frozen` is released as soon as the upper directory has been read.
    pub(crate) fn write_layer(
        &self,
        upper: &Path,
        lower: &[PathBuf],
        frozen: Option<Frozen>,
    ) -> Result<NewLayer> {
        let tar_opts = TarOptions {
            overlay_whiteouts: true,
        };
        // Decided when the walk gets there, so it sees what the walk then sees.
        let skip = |path: &[u8]| {
            is_runtime_mount_point(path)
                || (RUNTIME_MOUNT_POINT_PARENTS.contains(&path)
                    && holds_only_runtime_mount_points(upper, lower, path))
        };
        self.ingest_layer(move |tar_wr| {
            let r = tarwriter::write_dir_filtered(upper, tar_wr, &tar_opts, &skip);
            drop(frozen);
            trace("engine: commit: upper directory read");
            r.map(|_| ())
        })
    }

    /// Stores the layer tar that `produce` writes (to the pipe it is given):
    /// the blob store and an unpacker read it at the same time, in three
    /// threads, so producing, hashing and syncing the blob and creating the
    /// layer's files overlap. The unpacked directory is a temp directory the
    /// caller renames ([`Engine::keep_layer`]) or removes.
    pub(crate) fn ingest_layer<F>(&self, produce: F) -> Result<NewLayer>
    where
        F: FnOnce(File) -> std::result::Result<(), berth_layers::LayerError> + Send,
    {
        // Close-on-exec: a build starts monitors from other threads while a
        // layer is written, and they must not inherit these pipes.
        let pipe = || -> Result<(File, File)> {
            let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(sys_err("cannot create a pipe"))?;
            // Fewer round trips between the threads; the default size works too.
            let _ = rustix::pipe::fcntl_setpipe_size(&wr, 1 << 20);
            Ok((File::from(rd), File::from(wr)))
        };
        let (tar_rd, tar_wr) = pipe()?;
        let (copy_rd, copy_wr) = pipe()?;
        let apply_opts = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            allow_devices: true,
            no_overwrite_dir_non_dir: false,
        };
        let layers_root = self.layers_dir();
        let (written, ingested, unpacked) = std::thread::scope(|s| {
            let writer = s.spawn(move || produce(tar_wr));
            let unpacker = s.spawn(move || {
                let r = berth_layers::unpack_to_temp(copy_rd, &layers_root, &apply_opts);
                trace("engine: commit: layer unpacked");
                r
            });
            let tee = Tee {
                inner: tar_rd,
                copy: copy_wr,
            };
            // The tee (and with it the unpacker's input) closes when ingest returns.
            let ingested = self.blobs.ingest(tee, None);
            trace("engine: commit: layer blob stored");
            (writer.join(), ingested, unpacker.join())
        });
        let panicked = || EngineError::Runtime {
            code: 125,
            message: "a layer writer thread panicked".into(),
        };
        let (written, unpacked) = match (written, unpacked) {
            (Ok(w), Ok(u)) => (w, u),
            (Ok(_), Err(_)) | (Err(_), _) => {
                // A temp directory left behind is collected with the crash leftovers.
                return Err(panicked());
            }
        };
        let blob_err = |blob: &Digest| {
            // A cut-off stream must not stay in the store.
            if !matches!(self.store.read().layer_with_blob(blob), Ok(true)) {
                let _ = self.blobs.remove(blob);
            }
        };
        match (written, ingested, unpacked) {
            (Ok(_), Ok((blob, _)), Ok((tmp, stats))) => {
                if stats.diff_id != blob {
                    let _ = berth_layers::remove_layer_dir(&tmp);
                    blob_err(&blob);
                    return Err(EngineError::Layer(
                        berth_layers::LayerError::DigestMismatch {
                            expected: blob,
                            actual: stats.diff_id,
                        },
                    ));
                }
                let had_blob = self.store.read().layer_with_blob(&blob)?;
                Ok(NewLayer {
                    blob,
                    had_blob,
                    tmp,
                    stats,
                })
            }
            (written, ingested, unpacked) => {
                if let Ok((blob, _)) = &ingested {
                    blob_err(blob);
                }
                if let Ok((tmp, _)) = &unpacked {
                    let _ = berth_layers::remove_layer_dir(tmp);
                }
                // The first cause: reading the container's files, then storing the
                // blob, then unpacking (a broken pipe follows from another's error).
                Err(match (written, ingested, unpacked) {
                    (Err(e), _, _) if !is_broken_pipe(&e) => e.into(),
                    (_, Err(e), _) => e.into(),
                    (_, _, Err(e)) => e.into(),
                    (Err(e), _, _) => e.into(),
                    _ => panicked(),
                })
            }
        }
    }

    /// `history`: one row per history entry of the image's config, newest first.
    pub fn history(&self, image: &str) -> Result<Vec<HistoryEntry>> {
        let row = self.resolve_image(image)?;
        let config = Self::image_config(&row)?;
        let t = self.store.read();
        let mut rows = Vec::with_capacity(config.history.len());
        let mut layer = 0usize;
        for h in &config.history {
            let mut size = 0;
            if !h.empty_layer {
                if let Some(chain) = row.layers.get(layer) {
                    size = t.layer(chain)?.map_or(0, |l| l.size);
                }
                layer += 1;
            }
            rows.push(HistoryEntry {
                id: None,
                tags: Vec::new(),
                created: h.created.clone(),
                created_by: h.created_by.clone().unwrap_or_default(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
                empty_layer: h.empty_layer,
            });
        }
        rows.reverse();
        // The newest row is the image itself; along the parent chain each image
        // owns the row of its own newest history entry (Docker's daemon gives
        // each parent the next row, which is the same when every step made an
        // image, as its classic builder does; a build stores fewer images).
        let total = rows.len();
        let mut current = Some(row);
        let mut first = true;
        while let Some(img) = current.take() {
            let n = if first {
                total
            } else {
                Self::image_config(&img).map_or(0, |c| c.history.len())
            };
            first = false;
            let Some(r) = total.checked_sub(n).and_then(|i| rows.get_mut(i)) else {
                break;
            };
            if r.id.is_some() {
                break;
            }
            r.tags = familiar_tags(&t.tags_of(&img.id)?);
            r.id = Some(img.id.clone());
            current = match &img.parent {
                Some(p) => t.image(p)?,
                None => None,
            };
        }
        Ok(rows)
    }

    /// The image graph: images without a (known) parent are the roots, each with the
    /// images committed from it below, oldest first.
    pub fn image_tree(&self) -> Result<Vec<ImageNode>> {
        let mut images = self.images()?;
        // Oldest first (the store lists newest first).
        images.reverse();
        let known: HashSet<Digest> = images.iter().map(|i| i.id.clone()).collect();
        let mut by_parent: HashMap<Option<Digest>, Vec<ImageNode>> = HashMap::new();
        for img in images {
            let parent = img.parent.filter(|p| known.contains(p));
            let mut tags: Vec<String> = img.tags.iter().map(|r| r.familiar()).collect();
            tags.sort();
            by_parent
                .entry(parent.clone())
                .or_default()
                .push(ImageNode {
                    id: img.id,
                    tags,
                    size: img.size,
                    created: img.created,
                    parent,
                    children: Vec::new(),
                });
        }
        fn attach(
            nodes: Vec<ImageNode>,
            by_parent: &mut HashMap<Option<Digest>, Vec<ImageNode>>,
        ) -> Vec<ImageNode> {
            nodes
                .into_iter()
                .map(|mut n| {
                    let children = by_parent.remove(&Some(n.id.clone())).unwrap_or_default();
                    n.children = attach(children, by_parent);
                    n
                })
                .collect()
        }
        let roots = by_parent.remove(&None).unwrap_or_default();
        Ok(attach(roots, &mut by_parent))
    }
}

fn familiar_tags(refs: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = refs
        .iter()
        .filter_map(|r| Reference::parse(r).ok())
        .map(|r| r.familiar())
        .collect();
    tags.sort();
    tags
}

/// The config a committed image runs with: the container's own (as Docker commits
/// `container.Config`), over what the image had for what a container does not record.
/// What a container's config has that an image's run config does not:
/// Docker's commit keeps them in the image's `Config` all the same.
const CONTAINER_ONLY_FIELDS: &[&str] = &[
    "Hostname",
    "Domainname",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Image",
];

fn container_run_config(image: &RunConfig, v: &ContainerView) -> RunConfig {
    let c = &v.config;
    let mut out = image.clone();
    out.user = c.user.clone();
    // HOSTNAME is the container's own; every new container sets its own.
    let env: Vec<String> = c
        .env
        .iter()
        .filter(|e| !e.starts_with("HOSTNAME="))
        .cloned()
        .collect();
    out.env = (!env.is_empty()).then_some(env).or(out.env);
    out.cmd = (!c.cmd.is_empty()).then(|| c.cmd.clone());
    out.entrypoint = c.entrypoint.clone().filter(|e| !e.is_empty());
    out.working_dir = c.working_dir.clone();
    // The container's labels (the image's and its own), `{}` if none, as
    // Docker's commit records them.
    out.labels = Some(c.labels.clone());
    if let Some(s) = &c.stop_signal {
        out.stop_signal = s.clone();
    }
    // The container's (merged) healthcheck becomes the image's, as Docker's.
    if c.healthcheck.is_some() {
        out.healthcheck = c.healthcheck.clone();
    }
    out
}

/// A layer just written: its blob, and its unpacked temp directory.
pub(crate) struct NewLayer {
    pub(crate) blob: Digest,
    /// Whether a layer row already stored this blob (then it stays on failure).
    pub(crate) had_blob: bool,
    pub(crate) tmp: PathBuf,
    pub(crate) stats: berth_layers::LayerStats,
}

/// Reads `inner` and writes what it read to `copy` as well.
struct Tee<R> {
    inner: R,
    copy: File,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn is_broken_pipe(e: &berth_layers::LayerError) -> bool {
    match e {
        berth_layers::LayerError::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::BrokenPipe
        }
        _ => false,
    }
}

/// Keeps a container's cgroup frozen while alive; thaws it when dropped.
pub(crate) struct Frozen(Cgroup);

impl Frozen {
    fn freeze(rel: &str) -> Result<Frozen> {
        let err = |e: cgroups::CgroupError| EngineError::Runtime {
            code: 125,
            message: format!("cannot pause container {rel}: {e}"),
        };
        let layout = cgroups::detect().map_err(err)?;
        let cg = Cgroup::new(&layout, rel);
        cg.freeze(true).map_err(err)?;
        Ok(Frozen(cg))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // Best effort: a failing thaw leaves the container paused, which `unpause`
        // (or a restart) undoes.
        let _ = self.0.freeze(false);
    }
}

// ---- diff ----

/// Whether a directory's upper contents were only the runtime's mount points.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contents {
    Empty,
    OnlyMountPoints,
    Changes,
}

#[derive(Default)]
struct DiffWalk {
    changes: Vec<Change>,
}

impl DiffWalk {
    fn record(&mut self, path: String, kind: ChangeKind) {
        self.changes.push(Change { kind, path });
    }

    /// Walks one directory of the upper layer (`prefix` is its path, "" for the root)
    /// with `lower`: the same directory in each lower layer where it is visible,
    /// topmost first.
    ///
    /// `replaced`: the directory replaced the image's (it or a parent is opaque), so
    /// what the image had there and the upper directory lacks is deleted (Docker's
    /// daemon compares the two trees and lists each such entry).
    fn walk(
        &mut self,
        upper: OwnedFd,
        prefix: &str,
        lower: &[OwnedFd],
        replaced: bool,
    ) -> Result<Contents> {
        let shown = if prefix.is_empty() { "/" } else { prefix };
        let read_err = || sys_err(format!("cannot read {shown} in the upper directory"));
        let mut dir = rfs::Dir::new(upper).map_err(read_err())?;
        let mut names: Vec<CString> = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(read_err())?;
            let n = entry.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push(n.to_owned());
            }
        }
        names.sort_unstable();
        let names_seen = names.clone();
        let upper = dir.fd().map_err(read_err())?;
        let mut saw_mount_point = false;
        let mut saw_other = false;
        // Docker lists a directory's deletions after everything else in it.
        let mut deleted = Vec::new();
        for name in names {
            let path = format!("{prefix}/{}", String::from_utf8_lossy(name.to_bytes()));
            if is_runtime_mount_point(&path.as_bytes()[1..]) {
                saw_mount_point = true;
                continue;
            }
            let st = match rfs::statat(upper, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while we read (a running container).
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(sys_err(format!("cannot stat {path}"))(e)),
            };
            saw_other = true;
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind == FileType::CharacterDevice && st.st_rdev == 0 {
                deleted.push(path);
                continue;
            }
            let below = lookup(lower, &name).map_err(sys_err(format!("cannot look up {path}")))?;
            if kind != FileType::Directory {
                let change = match below {
                    Some(_) => ChangeKind::Changed,
                    None => ChangeKind::Added,
                };
                self.record(path, change);
                continue;
            }

            let fd = match open_dir_at(upper, &name) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR) => continue,
                Err(e) => return Err(sys_err(format!("cannot open {path}"))(e)),
            };
            let opaque = replaced || is_opaque(fd.as_fd());
            let below_dir =
                below.filter(|b| FileType::from_raw_mode(b.st_mode) == FileType::Directory);
            let change = match (&below, &below_dir) {
                (None, _) => Some(ChangeKind::Added),
                (Some(_), _) if opaque => Some(ChangeKind::Changed),
                (Some(_), Some(b)) if same_dir(&st, b) => None,
                (Some(_), _) => Some(ChangeKind::Changed),
            };
            let mark = self.changes.len();
            if let Some(c) = change {
                self.record(path.clone(), c);
            }
            let child_lower = match &below_dir {
                Some(_) => {
                    descend(lower, &name).map_err(sys_err(format!("cannot look up {path}")))?
                }
                None => Vec::new(),
            };
            let contents = self.walk(fd, &path, &child_lower, opaque)?;
            // A directory that holds nothing but the runtime's mount points (which
            // changed its mtime) is not a change of the container's.
            let only_runtime = contents == Contents::OnlyMountPoints
                && match (&below, &below_dir) {
                    (None, _) => true,
                    (Some(_), Some(b)) => !opaque && same_owner_and_mode(&st, b),
                    (Some(_), None) => false,
                };
            if change.is_some() && only_runtime {
                self.changes.truncate(mark);
            } else if change.is_none() && self.changes.len() > mark {
                // As Docker's: a directory with any change inside it is
                // listed (`C`), right before what changed in it.
                self.changes.insert(
                    mark,
                    Change {
                        kind: ChangeKind::Changed,
                        path: path.clone(),
                    },
                );
            }
        }
        if replaced {
            for name in visible_names(lower).map_err(sys_err(format!("cannot read {shown}")))? {
                if names_seen.binary_search(&name).is_err() {
                    let path = format!("{prefix}/{}", String::from_utf8_lossy(name.to_bytes()));
                    if !is_runtime_mount_point(&path.as_bytes()[1..]) {
                        deleted.push(path);
                    }
                }
            }
            deleted.sort_unstable();
        }
        saw_other |= !deleted.is_empty();
        for path in deleted {
            self.record(path, ChangeKind::Deleted);
        }
        Ok(match (saw_other, saw_mount_point) {
            (true, _) => Contents::Changes,
            (false, true) => Contents::OnlyMountPoints,
            (false, false) => Contents::Empty,
        })
    }
}

/// Docker's test for a directory the container did not change itself: same size,
/// mode and mtime (equal, or equal seconds where one side has no nanoseconds).
fn same_dir(a: &Stat, b: &Stat) -> bool {
    let same_time = (a.st_mtime, a.st_mtime_nsec) == (b.st_mtime, b.st_mtime_nsec)
        || (a.st_mtime == b.st_mtime && (a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0));
    a.st_size == b.st_size && a.st_mode == b.st_mode && same_time
}

fn same_owner_and_mode(a: &Stat, b: &Stat) -> bool {
    a.st_mode == b.st_mode && a.st_uid == b.st_uid && a.st_gid == b.st_gid
}

/// The entry `name` as the image shows it: the topmost lower layer that has it
/// decides; a whiteout there means the image does not have it.
fn lookup(lower: &[OwnedFd], name: &CString) -> rustix::io::Result<Option<Stat>> {
    for dir in lower {
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let whiteout = FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                    && st.st_rdev == 0;
                return Ok((!whiteout).then_some(st));
            }
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The names a directory shows through its lower layers `lower` (topmost first,
/// as [`descend`] gives them): a whiteout hides the name in the layers below it.
fn visible_names(lower: &[OwnedFd]) -> rustix::io::Result<Vec<CString>> {
    let mut decided: std::collections::BTreeMap<CString, bool> = Default::default();
    for dir in lower {
        let fd = rfs::openat(
            dir,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut entries = rfs::Dir::new(fd)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let n = entry.file_name();
            if n.to_bytes() == b"." || n.to_bytes() == b".." || decided.contains_key(n) {
                continue;
            }
            let whiteout = match rfs::statat(dir, n, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                        && st.st_rdev == 0
                }
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            };
            decided.insert(n.to_owned(), !whiteout);
        }
    }
    Ok(decided
        .into_iter()
        .filter_map(|(n, visible)| visible.then_some(n))
        .collect())
}

/// The directory `name` in each lower layer where it is visible: down from the top
/// until a layer has it as an opaque directory, a whiteout or a non-directory.
fn descend(lower: &[OwnedFd], name: &CString) -> rustix::io::Result<Vec<OwnedFd>> {
    let mut out = Vec::new();
    for dir in lower {
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            break;
        }
        let fd = open_dir_at(dir.as_fd(), name)?;
        let opaque = is_opaque(fd.as_fd());
        out.push(fd);
        if opaque {
            break;
        }
    }
    Ok(out)
}

fn open_dir(path: &Path) -> rustix::io::Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &CString) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    let mut v = [0u8; 2];
    matches!(rfs::fgetxattr(fd, OVERLAY_OPAQUE_XATTR, &mut v[..]), Ok(1) if v[0] == b'y')
}

// ---- commit -c ----

/// Applies `commit -c` instructions to `config`, in order, as a Dockerfile would.
pub(crate) fn apply_changes(config: &mut RunConfig, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for change in changes {
        // Docker's words alone, without the change they are about.
        apply_change(config, change, &mut cmd_set).map_err(EngineError::InvalidArgument)?;
    }
    Ok(())
}

fn apply_change(
    config: &mut RunConfig,
    change: &str,
    cmd_set: &mut bool,
) -> std::result::Result<(), String> {
    let change = change.trim();
    let (keyword, args) = match change.split_once(char::is_whitespace) {
        Some((k, a)) => (k, a.trim()),
        None => (change, ""),
    };
    let keyword = keyword.to_ascii_uppercase();
    let need_args = || {
        if args.is_empty() {
            Err(format!("{keyword} requires at least one argument"))
        } else {
            Ok(())
        }
    };
    let env = config.env.clone().unwrap_or_default();
    match keyword.as_str() {
        "CMD" => {
            need_args()?;
            config.cmd = Some(command_form(args));
            *cmd_set = true;
        }
        "ENTRYPOINT" => {
            need_args()?;
            let ep = command_form(args);
            config.entrypoint = (!ep.is_empty()).then_some(ep);
            // A new entrypoint drops the inherited command (Dockerfile semantics).
            if !*cmd_set {
                config.cmd = None;
            }
        }
        "ENV" => {
            need_args()?;
            let mut env = env;
            for (k, v) in name_values(&keyword, args, &env)? {
                let prefix = format!("{k}=");
                let entry = format!("{k}={v}");
                match env.iter_mut().find(|e| e.starts_with(&prefix)) {
                    Some(e) => *e = entry,
                    None => env.push(entry),
                }
            }
            config.env = Some(env);
        }
        "LABEL" => {
            need_args()?;
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in name_values(&keyword, args, &env)? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            need_args()?;
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for word in words(args, &env)? {
                for p in expand_port(&word)? {
                    ports.insert(p, serde_json::json!({}));
                }
            }
        }
        "VOLUME" => {
            need_args()?;
            let paths = match json_array(args) {
                Some(a) => a,
                None => words(args, &env)?,
            };
            let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
            for p in paths {
                if p.trim().is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.insert(p, serde_json::json!({}));
            }
        }
        "WORKDIR" => {
            need_args()?;
            let w = one_word(&keyword, args, &env)?;
            config.working_dir = if w.starts_with('/') {
                w
            } else {
                clean_path(&format!("/{}/{w}", config.working_dir))
            };
        }
        "USER" => {
            need_args()?;
            config.user = one_word(&keyword, args, &env)?;
        }
        "STOPSIGNAL" => {
            need_args()?;
            let s = one_word(&keyword, args, &env)?;
            if crate::parse_signal(&s).is_none() {
                return Err(format!("invalid signal: {s}"));
            }
            config.stop_signal = s;
        }
        "ONBUILD" => {
            need_args()?;
            let trigger = args
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
            }
            let list = config
                .extra
                .entry("OnBuild".to_string())
                .or_insert_with(|| serde_json::json!([]));
            match list.as_array_mut() {
                Some(a) => a.push(serde_json::Value::String(args.to_string())),
                None => *list = serde_json::json!([args]),
            }
        }
        "HEALTHCHECK" => {
            need_args()?;
            config.healthcheck = Some(parse_healthcheck(args)?);
        }
        "" => return Err("no instruction".into()),
        // Docker names it in lower case.
        other => {
            return Err(format!(
                "{} is not a valid change command",
                other.to_ascii_lowercase()
            ))
        }
    }
    Ok(())
}

/// The arguments of a Dockerfile `HEALTHCHECK`: `NONE`, or
/// `[--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D]
/// [--retries=N] CMD command` (shell form: `CMD-SHELL`; a JSON array: `CMD`).
pub(crate) fn parse_healthcheck(args: &str) -> std::result::Result<Healthcheck, String> {
    let mut rest = args.trim_start();
    let mut h = Healthcheck::default();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (name, value) = match flag[..end].split_once('=') {
            Some((n, v)) => (n, v),
            None => (&flag[..end], ""),
        };
        rest = flag[end..].trim_start();
        let duration = |field: &str| -> std::result::Result<i64, String> {
            if value.is_empty() {
                return Ok(0);
            }
            let d = crate::timeparse::go_duration(value)
                .ok_or_else(|| format!("time: invalid duration \"{value}\""))?;
            if d < 1_000_000 {
                return Err(format!("{field} \"{name}\" cannot be less than 1ms"));
            }
            Ok(d)
        };
        match name {
            "interval" => h.interval = duration("Interval")?,
            "timeout" => h.timeout = duration("Timeout")?,
            "start-period" => h.start_period = duration("StartPeriod")?,
            "start-interval" => h.start_interval = duration("StartInterval")?,
            "retries" => {
                let n: i64 = if value.is_empty() {
                    0
                } else {
                    value.parse().map_err(|_| {
                        format!("strconv.ParseInt: parsing \"{value}\": invalid syntax")
                    })?
                };
                if n < 1 && !value.is_empty() {
                    return Err(format!("--retries must be at least 1 (not {n})"));
                }
                h.retries = n;
            }
            other => return Err(format!("Unknown flag: {other}")),
        }
    }
    let (kind, cmd) = match rest.split_once(char::is_whitespace) {
        Some((k, c)) => (k, c.trim()),
        None => (rest, ""),
    };
    let kind = kind.to_ascii_uppercase();
    match kind.as_str() {
        "" => Err("HEALTHCHECK requires at least one argument".into()),
        "NONE" => {
            if !cmd.is_empty() || h != Healthcheck::default() {
                return Err("HEALTHCHECK NONE takes no arguments".into());
            }
            h.test = vec!["NONE".into()];
            Ok(h)
        }
        "CMD" => {
            if cmd.is_empty() {
                return Err("Missing command after HEALTHCHECK CMD".into());
            }
            h.test = match json_array(cmd) {
                Some(argv) => std::iter::once("CMD".to_string()).chain(argv).collect(),
                None => vec!["CMD-SHELL".into(), cmd.into()],
            };
            Ok(h)
        }
        other => Err(format!("Unknown type \"{other}\" in HEALTHCHECK (try CMD)")),
    }
}

/// `["a","b"]` (exec form) or anything else (shell form: `/bin/sh -c ARGS`).
fn command_form(args: &str) -> Vec<String> {
    match json_array(args) {
        Some(a) => a,
        None => vec!["/bin/sh".into(), "-c".into(), args.into()],
    }
}

fn json_array(args: &str) -> Option<Vec<String>> {
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str(args).ok()
}

fn one_word(keyword: &str, args: &str, env: &[String]) -> std::result::Result<String, String> {
    let mut w = words(args, env)?;
    match (w.pop(), w.is_empty()) {
        (Some(one), true) => Ok(one),
        _ => Err(format!("{keyword} requires exactly one argument")),
    }
}

/// `KEY=VALUE...` pairs, or the old `KEY VALUE` form (the value is the rest).
fn name_values(
    keyword: &str,
    args: &str,
    env: &[String],
) -> std::result::Result<Vec<(String, String)>, String> {
    let first = args.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let rest = args[first.len()..].trim();
        if rest.is_empty() {
            return Err(format!("{keyword} names can not be blank"));
        }
        return Ok(vec![(first.to_string(), rest.to_string())]);
    }
    words(args, env)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "{keyword} arguments must be of the form KEY=VALUE, not {w:?}"
            )),
        })
        .collect()
}

/// Splits like a Dockerfile does: whitespace between words, quotes grouping (single
/// quotes literal), backslash escaping, `$VAR`/`${VAR}` (and `${VAR:-x}`,
/// `${VAR:+x}`) from `env`.
fn words(s: &str, env: &[String]) -> std::result::Result<Vec<String>, String> {
    let lookup = |name: &str| -> Option<String> {
        env.iter()
            .find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, '$') => {
                in_word = true;
                let braced = chars.peek() == Some(&'{');
                if braced {
                    chars.next();
                }
                let mut name = String::new();
                let mut modifier = None;
                while let Some(&n) = chars.peek() {
                    if braced {
                        chars.next();
                        if n == '}' {
                            break;
                        }
                        if n == ':' && modifier.is_none() {
                            let op = chars.next().ok_or("bad substitution")?;
                            modifier = Some((op, String::new()));
                            continue;
                        }
                        match &mut modifier {
                            Some((_, word)) => word.push(n),
                            None => name.push(n),
                        }
                    } else if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if name.is_empty() && !braced {
                    cur.push('$');
                    continue;
                }
                let value = lookup(&name).filter(|v| !v.is_empty());
                match modifier {
                    None => cur.push_str(&lookup(&name).unwrap_or_default()),
                    Some(('-', word)) => cur.push_str(&value.unwrap_or(word)),
                    Some(('+', word)) => {
                        if value.is_some() {
                            cur.push_str(&word);
                        }
                    }
                    Some((op, _)) => {
                        return Err(format!("unsupported modifier ({op}) in substitution"))
                    }
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        let which = if q == '"' { "double" } else { "single" };
        return Err(format!(
            "failed to process {:?}: unexpected end of statement while looking for matching {which}-quote",
            unterminated_word(s)
        ));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The word of `s` (as typed) whose quote is never closed, from after its
/// `NAME=` if it has one: what Docker's error quotes.
fn unterminated_word(s: &str) -> &str {
    let mut open: Option<(usize, char)> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (open, c) {
            (Some((_, q)), c) if c == q => open = None,
            // Nothing escapes inside single quotes.
            (Some((_, '\'')), _) => {}
            (_, '\\') => escaped = true,
            (None, '\'' | '"') => open = Some((i, c)),
            _ => {}
        }
    }
    let Some((at, _)) = open else {
        return s;
    };
    let start = s[..at].rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &s[start..];
    match word.find('=') {
        Some(eq) if eq < at - start => &word[eq + 1..],
        _ => word,
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` as Docker's `nat.ParsePortSpecs` keys.
pub(crate) fn expand_port(spec: &str) -> std::result::Result<Vec<String>, String> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("Invalid containerPort: {spec}"))
    };
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(range)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!("invalid range specified for port: {spec}"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Go's `path.Clean` for an absolute path.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Removes a temporary layer directory from a detached `rm -rf` (which
/// never follows symlinks). If that fails, the directory keeps its
/// `tmp-<pid>-` name and garbage collection takes it once we are gone.
fn remove_in_background(dir: &Path) {
    let spawned = std::process::Command::new("rm")
        .arg("-rf")
        .arg("--one-file-system")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        let _ = berth_layers::remove_layer_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> std::result::Result<RunConfig, String> {
        let mut c = RunConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: "/srv".into(),
            ..Default::default()
        };
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &changes).map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = apply(&[r#"CMD ["echo","hi"]"#]).unwrap();
        assert_eq!(c.cmd, Some(vec!["echo".into(), "hi".into()]));
        let c = apply(&["cmd echo $HOME hi"]).unwrap();
        assert_eq!(
            c.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo $HOME hi".into()])
        );
        let c = apply(&[r#"ENTRYPOINT ["/bin/echo"]"#]).unwrap();
        assert_eq!(c.entrypoint, Some(vec!["/bin/echo".into()]));
        assert_eq!(c.cmd, None, "a new entrypoint drops the inherited command");
        let c = apply(&[r#"CMD ["x"]"#, r#"ENTRYPOINT ["/bin/echo"]"#]).unwrap();
        assert_eq!(c.cmd, Some(vec!["x".into()]));
    }

    #[test]
    fn env_label_forms_and_substitution() {
        let c = apply(&[
            r#"ENV A=2 B="two words" C=$PATH:/x D=${NOPE:-dflt}"#,
            "ENV E rest of line",
        ])
        .unwrap();
        assert_eq!(
            c.env.unwrap(),
            [
                "PATH=/bin",
                "A=2",
                "B=two words",
                "C=/bin:/x",
                "D=dflt",
                "E=rest of line"
            ]
        );
        let c = apply(&[r#"LABEL a=b "c d"='e f'"#]).unwrap();
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c d"], "e f");
    }

    #[test]
    fn workdir_user_expose_volume_stopsignal() {
        let c = apply(&[
            "WORKDIR app/../w",
            "USER 1000:1000",
            "EXPOSE 80 53/udp 8000-8001",
            r#"VOLUME ["/data"]"#,
            "VOLUME /a /b",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(c.working_dir, "/srv/w");
        assert_eq!(c.user, "1000:1000");
        let ports: Vec<&String> = c.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        let vols: Vec<&String> = c.volumes.as_ref().unwrap().keys().collect();
        assert_eq!(vols, ["/a", "/b", "/data"]);
        assert_eq!(c.stop_signal, "SIGINT");
        assert_eq!(apply(&["WORKDIR /abs"]).unwrap().working_dir, "/abs");
    }

    #[test]
    fn bad_changes_are_refused_with_a_reason() {
        for (change, reason) in [
            ("FROM busybox", "from is not a valid change command"),
            ("RUN echo", "run is not a valid change command"),
            ("", "no instruction"),
            ("CMD", "CMD requires at least one argument"),
            ("EXPOSE http", "Invalid containerPort: http"),
            ("STOPSIGNAL SIGNOPE", "invalid signal: SIGNOPE"),
            (
                "ENV A=\"open",
                "failed to process \"\\\"open\": unexpected end of statement while looking for matching double-quote",
            ),
            (
                "LABEL a=b c='x y",
                "failed to process \"'x y\": unexpected end of statement while looking for matching single-quote",
            ),
            ("WORKDIR a b", "exactly one argument"),
        ] {
            let err = apply(&[change]).unwrap_err();
            assert!(err.contains(reason), "{change:?}: {err}");
        }
    }
}

#[cfg(test)]
mod healthcheck_tests {
    use super::parse_healthcheck;

    #[test]
    fn healthcheck_forms() {
        let h =
            parse_healthcheck("--interval=2s --retries=4 CMD curl -f http://x/ || exit 1").unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "curl -f http://x/ || exit 1"]);
        assert_eq!((h.interval, h.retries, h.timeout), (2_000_000_000, 4, 0));
        let h = parse_healthcheck(r#"cmd ["true","x"]"#).unwrap();
        assert_eq!(h.test, ["CMD", "true", "x"]);
        assert_eq!(parse_healthcheck("NONE").unwrap().test, ["NONE"]);
        let h =
            parse_healthcheck("--start-period=1m30s --start-interval=1s --timeout=500ms CMD true")
                .unwrap();
        assert_eq!(
            (h.start_period, h.start_interval, h.timeout),
            (90_000_000_000, 1_000_000_000, 500_000_000)
        );
    }

    #[test]
    fn healthcheck_errors_in_dockers_words() {
        let err = |a: &str| parse_healthcheck(a).unwrap_err();
        assert_eq!(err("NONE x"), "HEALTHCHECK NONE takes no arguments");
        assert_eq!(err("CMD"), "Missing command after HEALTHCHECK CMD");
        assert_eq!(
            err("BOGUS true"),
            "Unknown type \"BOGUS\" in HEALTHCHECK (try CMD)"
        );
        assert_eq!(err("--bogus=1 CMD true"), "Unknown flag: bogus");
        assert_eq!(
            err("--retries=-1 CMD true"),
            "--retries must be at least 1 (not -1)"
        );
        assert_eq!(
            err("--interval=100us CMD true"),
            "Interval \"interval\" cannot be less than 1ms"
        );
        assert_eq!(err(""), "HEALTHCHECK requires at least one argument");
    }
}
