//! Image verbs: import, list, tag, remove, inspect, and resolving a name.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

use berth_layers::{ApplyOptions, WhiteoutMode};
use berth_store::{ImageRow, LayerRow, Tx};
use berth_types::{History, ImageConfig, Reference, RootFs, RunConfig};
use serde::Serialize;

use crate::{now_rfc3339, Digest, Engine, EngineError, Result, Status};

/// An image as listed: its row, its tags, its parsed config.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    pub id: Digest,
    /// Fully qualified references pointing at it.
    pub tags: Vec<Reference>,
    pub created: String,
    pub size: u64,
    pub config: ImageConfig,
    pub parent: Option<Digest>,
    pub layers: Vec<Digest>,
    /// The manifests it was pulled by, familiar (`busybox@sha256:…`), sorted.
    pub repo_digests: Vec<String>,
}

/// What `rmi` did, line by line, as Docker prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum RemovedImage {
    Untagged(String),
    Deleted(Digest),
}

impl Engine {
    /// Imports a root filesystem tarball (plain, gzip or zstd) as a
    /// one-layer image, optionally tagged. Nothing is left behind on error.
    pub fn import(
        &mut self,
        input: impl Read + Send,
        reference: Option<&str>,
        message: &str,
    ) -> Result<Digest> {
        self.import_with_changes(input, reference, message, &[], None)
    }

    /// `import -c INSTRUCTION... [--platform P]`: the image's config gets
    /// the Dockerfile instructions `commit -c` takes, checked before
    /// anything is stored, and the platform given (the host's without).
    pub fn import_with_changes(
        &mut self,
        input: impl Read + Send,
        reference: Option<&str>,
        message: &str,
        changes: &[String],
        platform: Option<&berth_types::Platform>,
    ) -> Result<Digest> {
        let platform = platform
            .cloned()
            .unwrap_or_else(berth_types::Platform::host);
        if platform.os != "linux" {
            // Docker's daemon on Linux: its words.
            return Err(EngineError::InvalidArgument(
                "operating system is not supported".into(),
            ));
        }
        let mut run_config = RunConfig::default();
        crate::commit::apply_changes(&mut run_config, changes)?;
        let reference = reference
            .map(Reference::parse)
            .transpose()
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        // The tarball is kept as it came (the layer's blob, for save and
        // push) and unpacked at the same time: one thread stores and hashes
        // the input and passes every byte on through a pipe, this one
        // decompresses and unpacks it.
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Skip,
            allow_devices: false,
            no_overwrite_dir_non_dir: false,
        };
        let (pipe_r, pipe_w) = std::io::pipe().map_err(crate::io_ctx("creating a pipe"))?;
        let blobs = self.blobs.clone();
        let layers_dir = self.layers_dir();
        let (ingested, unpacked) = std::thread::scope(|s| {
            let storing = s.spawn(move || {
                let tee = Tee {
                    inner: input,
                    out: pipe_w,
                };
                blobs.ingest(tee, None)
            });
            let unpacked = (|| -> Result<_> {
                let (_, tar) = berth_layers::decompress(pipe_r)?;
                Ok(berth_layers::unpack_to_temp(tar, &layers_dir, &opts)?)
            })();
            let ingested = storing.join().unwrap_or_else(|_| {
                Err(berth_layers::LayerError::Io {
                    context: "storing the tarball".into(),
                    source: std::io::Error::other("the storing thread panicked"),
                })
            });
            (ingested, unpacked)
        });
        let (tmp, stats, blob) = match (unpacked, ingested) {
            (Ok((tmp, stats)), Ok((blob, _))) => (tmp, stats, blob),
            (unpacked, ingested) => {
                if let Ok((tmp, _)) = &unpacked {
                    let _ = berth_layers::remove_layer_dir(tmp);
                }
                if let Ok((blob, _)) = &ingested {
                    if !self.store.read().layer_with_blob(blob)? {
                        let _ = self.blobs.remove(blob);
                    }
                }
                // The unpacking error says what is wrong with the tarball;
                // the storing side then only saw its reader go away.
                return Err(match (unpacked, ingested) {
                    (Err(e), _) => e,
                    (_, Err(e)) => e.into(),
                    _ => EngineError::InvalidArgument("import failed".into()),
                });
            }
        };
        let chain_id = stats.diff_id.clone();
        let final_dir = self.layer_dir(&chain_id);
        // The layer's inventory is made while the image is written.
        let scan = (!final_dir.exists())
            .then(|| Self::start_layer_scan(&tmp))
            .flatten();
        if let Err(e) = berth_layers::commit_temp(&tmp, &final_dir) {
            let _ = berth_layers::remove_layer_dir(&tmp);
            return Err(e.into());
        }
        let created = now_rfc3339();
        let mut extra = BTreeMap::new();
        if !platform.variant.is_empty() {
            extra.insert("variant".to_string(), platform.variant.clone().into());
        }
        let config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            created: Some(created.clone()),
            author: None,
            config: run_config,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![stats.diff_id.clone()],
            },
            history: vec![History {
                created: Some(created.clone()),
                created_by: None,
                comment: Some(if message.is_empty() {
                    "Imported from -".to_string()
                } else {
                    message.to_string()
                }),
                ..Default::default()
            }],
            extra,
        };
        let bytes =
            serde_json::to_vec(&config).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let id = Digest::of_bytes(&bytes);
        let row = ImageRow {
            id: id.clone(),
            config: bytes,
            layers: vec![chain_id.clone()],
            size: stats.size,
            parent: None,
            created,
            added: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        };
        self.store.transaction(|t| -> Result<()> {
            t.insert_layer(&LayerRow {
                chain_id: chain_id.clone(),
                diff_id: stats.diff_id.clone(),
                parent: None,
                size: stats.size,
                blob: Some(blob.clone()),
            })?;
            t.insert_image(&row)?;
            if let Some(r) = &reference {
                t.set_tag(&r.to_string(), &id)?;
            }
            Ok(())
        })?;
        if let Some(r) = &reference {
            self.emit_image("tag", id.as_str(), &r.familiar());
        }
        self.emit_image("import", id.as_str(), id.as_str());
        if let Some(scan) = scan {
            self.finish_layer_scan(&chain_id, scan);
        }
        self.inventory_new_image(&id);
        Ok(id)
    }

    /// Resolves what a user typed (a reference, a full or short image ID).
    pub fn resolve_image(&self, what: &str) -> Result<ImageRow> {
        resolve_image_in(&self.store.read(), what)
    }

    /// Like [`Engine::resolve_image`], with the error `run`/`create` print.
    pub fn resolve_image_for_run(&self, what: &str) -> Result<ImageRow> {
        self.resolve_image(what).map_err(|e| match e {
            EngineError::NoSuchImage(n) => EngineError::ImageNotFoundLocally(n),
            other => other,
        })
    }

    pub fn image_config(row: &ImageRow) -> Result<ImageConfig> {
        ImageConfig::from_json(&row.config).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "image {} has an invalid config: {e}",
                row.id.short()
            ))
        })
    }

    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        let t = self.store.read();
        let tags = t.all_tags()?;
        let mut out = Vec::new();
        for row in t.images()? {
            let config = Self::image_config(&row)?;
            let mut refs: Vec<Reference> = tags
                .iter()
                .filter(|(_, id)| *id == row.id)
                .filter_map(|(r, _)| Reference::parse(r).ok())
                .collect();
            refs.sort_by_key(|r| r.familiar());
            out.push(ImageSummary {
                id: row.id.clone(),
                tags: refs,
                created: row.created.clone(),
                size: row.size,
                config,
                parent: row.parent.clone(),
                layers: row.layers.clone(),
                repo_digests: repo_digests_of(&t, &row.id)?,
            });
        }
        Ok(out)
    }

    pub fn image_summary(&self, what: &str) -> Result<ImageSummary> {
        let row = self.resolve_image(what)?;
        let t = self.store.read();
        let refs = t
            .tags_of(&row.id)?
            .iter()
            .filter_map(|r| Reference::parse(r).ok())
            .collect();
        Ok(ImageSummary {
            id: row.id.clone(),
            tags: refs,
            created: row.created.clone(),
            size: row.size,
            config: Self::image_config(&row)?,
            parent: row.parent.clone(),
            layers: row.layers.clone(),
            repo_digests: repo_digests_of(&t, &row.id)?,
        })
    }

    /// `tag SOURCE TARGET`
    pub fn tag(&mut self, source: &str, target: &str) -> Result<()> {
        let row = self.resolve_image(source)?;
        let r =
            Reference::parse(target).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        if r.digest().is_some() {
            return Err(EngineError::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        self.store.transaction(|t| -> Result<()> {
            t.set_tag(&r.to_string(), &row.id)?;
            Ok(())
        })?;
        self.emit_image("tag", row.id.as_str(), &r.familiar());
        Ok(())
    }

    /// `rmi [-f] IMAGE`, with Docker's rules: by reference it untags (and
    /// deletes the image with its last tag); a running container blocks a
    /// delete even when forced, a stopped one only when not forced. Layers
    /// a container still stands on stay until that container is removed.
    ///
    /// A container being created counts as a stopped one (its claim, see
    /// [`Engine::create`]). The checks, the delete and the choice of unused
    /// layers are one transaction, so a concurrent `create` either sees the
    /// image gone or is seen by it.
    ///
    /// As Docker's daemon, the untagged parents the deleted image leaves
    /// without a child, a tag or a container go with it (`rmi --no-prune`:
    /// [`Engine::remove_image_opts`]).
    pub fn remove_image(&mut self, what: &str, force: bool) -> Result<Vec<RemovedImage>> {
        self.remove_image_opts(
            what,
            &RmiOptions {
                force,
                no_prune: false,
            },
        )
    }

    /// `rmi [-f] [--no-prune] IMAGE`.
    pub fn remove_image_opts(&mut self, what: &str, o: &RmiOptions) -> Result<Vec<RemovedImage>> {
        self.collect_stale_claims()?;
        Ok(self
            .remove_image_as(
                what,
                RemoveMode::Rmi {
                    force: o.force,
                    prune_parents: !o.no_prune,
                },
            )?
            .unwrap_or_default())
    }

    /// Removes an image as `mode` says; `None` when a prune leaves it.
    pub(crate) fn remove_image_as(
        &mut self,
        what: &str,
        mode: RemoveMode,
    ) -> Result<Option<Vec<RemovedImage>>> {
        let containers_dir = self.opts.root.join("containers");
        let target = self.resolve_image(what).ok().map(|r| r.id);
        let Some(removal) = self
            .store
            .transaction(|t| decide_removal(t, &containers_dir, what, mode))?
        else {
            return Ok(None);
        };
        self.remove_layer_files(&removal.layers)?;
        // Docker names the image by its ID in both events.
        for r in &removal.printed {
            match (r, &target) {
                (RemovedImage::Untagged(_), Some(id)) => {
                    self.emit_image("untag", id.as_str(), id.as_str())
                }
                (RemovedImage::Deleted(d), _) => self.emit_image("delete", d.as_str(), d.as_str()),
                _ => {}
            }
        }
        Ok(Some(removal.printed))
    }

    /// Deletes every layer that no image, no container and no container
    /// being created stands on: the rows in one transaction that also
    /// decides which are unused, then the directories (a crash in between
    /// leaves garbage that [`Engine::collect_garbage`] takes).
    pub(crate) fn remove_unused_layers(&mut self) -> Result<()> {
        let containers_dir = self.opts.root.join("containers");
        let unused = self
            .store
            .transaction(|t| unused_layers(t, &containers_dir))?;
        self.remove_layer_files(&unused)
    }

    /// The files of layers whose rows are gone: directories, then blobs no
    /// other layer row stores.
    fn remove_layer_files(&self, layers: &[UnusedLayer]) -> Result<()> {
        for l in layers {
            let _ = berth_layers::remove_layer_dir(&self.layer_dir(&l.chain_id));
        }
        let blobs = layers
            .iter()
            .flat_map(|l| l.blob.iter().chain(l.compressed.iter()));
        for b in blobs {
            if !self.store.read().layer_with_blob(b)? {
                let _ = self.blobs.remove(b);
            }
        }
        Ok(())
    }

    /// The directories of an image's layers, topmost first (overlay order).
    pub(crate) fn lower_dirs(&self, row: &ImageRow) -> Vec<std::path::PathBuf> {
        row.layers.iter().rev().map(|l| self.layer_dir(l)).collect()
    }
}

/// The familiar `repo@sha256:…` of every manifest `image` was pulled by.
fn repo_digests_of(t: &Tx<'_>, image: &Digest) -> Result<Vec<String>> {
    let mut out: Vec<String> = t
        .repo_digests_of(image)?
        .into_iter()
        .filter_map(|(repo, d)| Reference::parse(&format!("{repo}@{d}")).ok())
        .map(|r| r.familiar())
        .collect();
    out.sort();
    Ok(out)
}

/// Resolves what a user typed (a reference, a full or short image ID) with
/// the queries of `t` (inside a transaction when the caller is in one).
fn resolve_image_in(t: &Tx<'_>, what: &str) -> Result<ImageRow> {
    if let Ok(r) = Reference::parse(what) {
        let by_digest = match r.digest() {
            Some(d) => t.repo_digest(&r.repository(), d)?,
            None => None,
        };
        if let Some(id) = by_digest {
            if let Some(row) = t.image(&id)? {
                return Ok(row);
            }
        }
        if let Some(id) = t.tag(&r.to_string())? {
            if let Some(row) = t.image(&id)? {
                return Ok(row);
            }
        }
    }
    let hex = what.strip_prefix("sha256:").unwrap_or(what);
    if !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        let ids = t.image_ids_with_prefix(hex)?;
        if ids.len() == 1 {
            if let Some(row) = t.image(&ids[0])? {
                return Ok(row);
            }
        }
    }
    Err(EngineError::NoSuchImage(match Reference::parse(what) {
        Ok(r) => r.familiar(),
        Err(_) => what.to_string(),
    }))
}

/// How `rmi` removes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RmiOptions {
    /// `-f`.
    pub force: bool,
    /// `--no-prune`: untagged parents stay.
    pub no_prune: bool,
}

/// Why an image is being removed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RemoveMode {
    /// `rmi [-f] [--no-prune]`.
    Rmi { force: bool, prune_parents: bool },
    /// `image prune [-a]`: only an image that no container (nor one being
    /// created) uses, without child images, and untagged unless `all`.
    Prune { all: bool },
}

/// A layer whose row a removal deleted; its files go after the commit.
pub(crate) struct UnusedLayer {
    chain_id: Digest,
    blob: Option<Digest>,
    /// The compressed blob a push kept for it, no longer recorded.
    compressed: Option<Digest>,
}

/// What one removal transaction did.
struct Removal {
    printed: Vec<RemovedImage>,
    layers: Vec<UnusedLayer>,
}

/// A container that uses an image (or is being created from it).
struct ImageUser {
    id: berth_types::ContainerId,
    running: bool,
}

/// `rmi`'s decision and its row changes, all inside the transaction `t`.
fn decide_removal(
    t: &Tx<'_>,
    containers_dir: &Path,
    what: &str,
    mode: RemoveMode,
) -> Result<Option<Removal>> {
    let row = resolve_image_in(t, what)?;
    // A tag or a digest reference (`repo@sha256:…` of a pull) of the image.
    let by_reference = Reference::parse(what).ok().filter(|r| {
        let named = match r.digest() {
            Some(d) => t.repo_digest(&r.repository(), d),
            None => t.tag(&r.to_string()),
        };
        named.ok().flatten().as_ref() == Some(&row.id)
    });
    let digests = t.repo_digests_of(&row.id)?;
    let mut users = Vec::new();
    for id in t.containers_using_image(&row.id)? {
        let state = crate::container::load_state(&containers_dir.join(id.as_str()));
        let running = matches!(state.status, Status::Running | Status::Restarting);
        users.push(ImageUser { id, running });
    }
    for id in t.claims_on_image(&row.id)? {
        users.push(ImageUser { id, running: false });
    }
    let tags = t.tags_of(&row.id)?;
    let force = match mode {
        RemoveMode::Rmi { force, .. } => force,
        RemoveMode::Prune { all } => {
            if !users.is_empty() || (!all && !tags.is_empty()) || !t.children(&row.id)?.is_empty() {
                return Ok(None);
            }
            true
        }
    };
    let running = users.iter().find(|u| u.running);
    let stopped = users.iter().find(|u| !u.running);
    // What untagging `r` removes, as Docker's daemon decides it: the
    // reference, and when it is the repository's last tag, the digest
    // references of that repository too.
    let goes_with = |r: &Reference| -> Vec<Reference> {
        let mut refs = vec![r.clone()];
        let repo = r.repository();
        let other_tag = tags.iter().any(|x| {
            Reference::parse(x)
                .is_ok_and(|x| x.repository() == repo && x.to_string() != r.to_string())
        });
        if r.digest().is_none() && !other_tag {
            refs.extend(
                digests
                    .iter()
                    .filter(|(rp, _)| *rp == repo)
                    .filter_map(|(rp, d)| Reference::parse(&format!("{rp}@{d}")).ok()),
            );
        }
        refs
    };
    let untag = |r: &Reference| -> Result<Option<Removal>> {
        let mut printed = Vec::new();
        for x in goes_with(r) {
            match x.digest() {
                Some(d) => t.remove_repo_digest(&x.repository(), d)?,
                None => t.remove_tag(&x.to_string())?,
            };
            printed.push(RemovedImage::Untagged(x.familiar()));
        }
        Ok(Some(Removal {
            printed,
            layers: Vec::new(),
        }))
    };
    match &by_reference {
        Some(r) => {
            if tags.len() + digests.len() > goes_with(r).len() {
                return untag(r);
            }
            if let Some(c) = running.or(stopped).filter(|_| !force || running.is_some()) {
                if force {
                    // Forced while running: the tag goes, the image stays.
                    return untag(r);
                }
                // Docker names the reference as the user typed it.
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                    what,
                    c.id.short(),
                    row.id.short()
                )));
            }
        }
        None => {
            if let Some(c) = running {
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    row.id.short(),
                    c.id.short()
                )));
            }
            if let (Some(c), false) = (stopped, force) {
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                    row.id.short(),
                    c.id.short()
                )));
            }
            if tags.len() > 1 && !force {
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    row.id.short()
                )));
            }
        }
    }
    if !t.children(&row.id)?.is_empty() {
        // Named by its last tag, Docker untags and keeps the image for
        // its children; named by ID, it refuses.
        if let Some(r) = &by_reference {
            return untag(r);
        }
        return Err(EngineError::Conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
            row.id.short()
        )));
    }
    t.delete_image(&row.id)?;
    // Its tags, then its digest references, as Docker lists them.
    let mut printed: Vec<RemovedImage> = tags
        .iter()
        .filter_map(|tag| Reference::parse(tag).ok())
        .chain(
            digests
                .iter()
                .filter_map(|(repo, d)| Reference::parse(&format!("{repo}@{d}")).ok()),
        )
        .map(|r| RemovedImage::Untagged(r.familiar()))
        .collect();
    printed.push(RemovedImage::Deleted(row.id.clone()));
    if matches!(
        mode,
        RemoveMode::Rmi {
            prune_parents: true,
            ..
        }
    ) {
        printed.extend(prune_parents(t, row.parent.clone())?);
    }
    let layers = unused_layers(t, containers_dir)?;
    Ok(Some(Removal { printed, layers }))
}

/// Docker's parent pruning after an `rmi`: from `next` down, each untagged
/// image without children, containers (nor one being created) goes, until
/// one must stay.
fn prune_parents(t: &Tx<'_>, mut next: Option<Digest>) -> Result<Vec<RemovedImage>> {
    let mut out = Vec::new();
    while let Some(id) = next {
        let Some(row) = t.image(&id)? else {
            break;
        };
        if !t.tags_of(&id)?.is_empty()
            || !t.children(&id)?.is_empty()
            || !t.containers_using_image(&id)?.is_empty()
            || !t.claims_on_image(&id)?.is_empty()
        {
            break;
        }
        t.delete_image(&id)?;
        out.push(RemovedImage::Deleted(id));
        next = row.parent;
    }
    Ok(out)
}

/// Deletes the rows of the layers that no image, container or container
/// being created stands on, and returns them, inside the transaction `t`:
/// nothing can start using a layer between the choice and the delete.
fn unused_layers(t: &Tx<'_>, containers_dir: &Path) -> Result<Vec<UnusedLayer>> {
    let mut used: HashSet<Digest> = HashSet::new();
    for img in t.images()? {
        used.extend(img.layers);
    }
    for claim in t.claims()? {
        used.extend(claim.layers);
    }
    for c in t.containers()? {
        // A container's row is written after its monitor.json, which names
        // its layers even once its image is gone.
        used.extend(crate::container::layers_in_dir(
            &containers_dir.join(c.id.as_str()),
        ));
    }
    let mut out = Vec::new();
    for chain_id in t.layers()? {
        if used.contains(&chain_id) {
            continue;
        }
        let blob = t.layer(&chain_id)?.and_then(|r| r.blob);
        let compressed = t.delete_layer(&chain_id)?;
        out.push(UnusedLayer {
            chain_id,
            blob,
            compressed,
        });
    }
    Ok(out)
}

/// Passes everything read from `inner` on to `out` as well.
struct Tee<R> {
    inner: R,
    out: std::io::PipeWriter,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        std::io::Write::write_all(&mut self.out, &buf[..n])?;
        Ok(n)
    }
}
