//! `pull`: an image from a registry into the store, through the same
//! ingest path as `load` (blobs verified into the blob store, layers
//! unpacked into `tmp-*` directories, rows in one transaction at the end).
//!
//! The manifest (or the index, then the host's or the asked-for platform's
//! manifest) is fetched and verified, then the config, then every layer
//! the store lacks (by chain ID), three at a time as Docker's daemon does.
//! Each layer is streamed once: the registry's bytes go through a hasher
//! into a temp blob file and, at the same time, through decompression into
//! a temp layer directory; the blob is renamed into the blob store only if
//! it matches the manifest's digest, the directory gets its name only if
//! its content matches the config's diff_id, and only when every layer is
//! ready. The image, its layers, the tag and the repository digest are
//! written in one transaction: a half-pulled image is never listed. A
//! killed pull leaves `tmp-<pid>-*` files and at most verified blobs
//! without rows, which the garbage collector takes.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_layers::{ApplyOptions, BlobStore, LayerError, WhiteoutMode};
use berth_registry::manifest::{choose, Descriptor, ImageManifest};
use berth_registry::{Auth, Client, Endpoint, Manifest, RegistryError, RetryPolicy, Settings};
use berth_store::{ImageRow, LayerRow};
use berth_types::{chain_ids, ImageConfig, Platform, Reference};

use crate::archive::BlobLock;
use crate::{Digest, Engine, EngineError, Result};

/// Docker's default `max-concurrent-downloads`.
pub const DEFAULT_CONCURRENT_DOWNLOADS: usize = 3;
/// The largest image config read into memory.
const MAX_CONFIG: u64 = 16 << 20;

/// How to pull.
#[derive(Clone)]
pub struct PullOptions {
    /// `--platform`; None: the host's.
    pub platform: Option<Platform>,
    /// Who answers a registry's 401; None: anonymous.
    pub auth: Option<Arc<dyn Auth>>,
    /// Layers downloaded at once.
    pub concurrent_downloads: usize,
    /// Mirrors, insecure registries, certificates (berth's config file).
    pub settings: Arc<Settings>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            auth: None,
            concurrent_downloads: DEFAULT_CONCURRENT_DOWNLOADS,
            settings: Arc::new(Settings::default()),
        }
    }
}

/// One layer's state, in Docker's progress vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerStatus {
    AlreadyExists,
    PullingFsLayer,
    Waiting,
    Downloading { current: u64, total: u64 },
    VerifyingChecksum,
    DownloadComplete,
    Extracting { current: u64, total: u64 },
    PullComplete,
}

/// What a pull reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest was found: `latest: Pulling from library/busybox`
    /// (`what` is the tag or the digest, `repository` the path on the
    /// registry).
    Pulling { what: String, repository: String },
    /// A layer, by the first 12 hex digits of its blob digest.
    Layer { id: String, status: LayerStatus },
}

/// What a pull did.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The image (its config's digest).
    pub id: Digest,
    /// The digest of the manifest (or index) the reference named.
    pub digest: Digest,
    /// The tag or digest reference now points somewhere it did not
    /// (Docker's `Downloaded newer image` rather than `Image is up to date`).
    pub updated: bool,
}

/// A layer downloaded and unpacked, waiting for its name and row.
struct Ready {
    index: usize,
    tmp: PathBuf,
    size: u64,
    /// Its inventory, being made while the other layers download.
    scan: Option<crate::inventory::PendingScan>,
}

/// A pulled image's row, its new layers' rows and their inventories' scans.
type Fetched = (
    ImageRow,
    Vec<LayerRow>,
    Vec<(Digest, crate::inventory::PendingScan)>,
);

fn registry_err(e: RegistryError) -> EngineError {
    EngineError::Registry(e)
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

fn client_of(opts: &PullOptions, ep: &Endpoint) -> Result<Client> {
    let auth = opts
        .auth
        .clone()
        .unwrap_or_else(|| Arc::new(berth_registry::auth::Anonymous));
    opts.settings
        .client(ep, auth, RetryPolicy::default())
        .map_err(registry_err)
}

/// Tries `f` with each endpoint the settings give for `reference` (mirrors
/// then the hub; https then http for an insecure registry), as Docker's
/// daemon falls back: the first success, else the last endpoint's error.
fn first_endpoint<T>(
    reference: &Reference,
    opts: &PullOptions,
    mut f: impl FnMut(&Client, &Endpoint) -> Result<T>,
) -> Result<(Client, Endpoint, T)> {
    let endpoints = opts.settings.pull_endpoints(reference);
    let mut last = None;
    for ep in endpoints {
        let attempt = client_of(opts, &ep).and_then(|c| f(&c, &ep).map(|v| (c, v)));
        match attempt {
            Ok((c, v)) => return Ok((c, ep, v)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        EngineError::Registry(RegistryError::Protocol(format!(
            "no registry endpoint for {reference}"
        )))
    }))
}

impl Engine {
    /// The tags of `reference`'s repository on its registry (`pull -a`).
    pub fn remote_tags(&self, reference: &Reference, opts: &PullOptions) -> Result<Vec<String>> {
        first_endpoint(reference, opts, |c, ep| c.tags(ep).map_err(registry_err)).map(|(_, _, t)| t)
    }

    /// `pull REFERENCE`: fetches the image `reference` names into the
    /// store and points the reference at it.
    pub fn pull(
        &mut self,
        reference: &Reference,
        opts: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Sync),
    ) -> Result<Pulled> {
        // The endpoint that has the manifest serves the rest of the pull.
        let (client, ep, top, tag_or_digest) = fetch_top(reference, opts)?;
        // Docker names a digest pull by its whole reference.
        let what = if reference.digest().is_some() {
            reference.familiar()
        } else {
            tag_or_digest
        };
        let want = opts.platform.clone().unwrap_or_else(Platform::host);
        let manifest = match &top.manifest {
            Manifest::Image(m) => m.clone(),
            Manifest::Index(i) => {
                let d = choose(i, &want).ok_or_else(|| {
                    EngineError::Registry(RegistryError::NotFound(format!(
                        "no matching manifest for {want} in the manifest list entries"
                    )))
                })?;
                let digest = d.digest().map_err(registry_err)?;
                match client
                    .manifest(&ep, digest.as_str())
                    .map_err(registry_err)?
                    .manifest
                {
                    Manifest::Image(m) => m,
                    Manifest::Index(_) => {
                        return Err(EngineError::Registry(RegistryError::Protocol(format!(
                            "manifest {digest} of the index is an index itself"
                        ))))
                    }
                }
            }
        };
        manifest.check().map_err(registry_err)?;
        progress(PullEvent::Pulling {
            what,
            repository: ep.repository.clone(),
        });

        let lock = BlobLock::open(&self.opts.root)?;
        berth_layers::collect_garbage(&self.layers_dir(), &self.opts.root.join("tmp"));
        lock.shared()?;

        let id = manifest.config.digest().map_err(registry_err)?;
        let existing = self.store.read().image(&id)?;
        let mut new_layers = Vec::new();
        let mut image = None;
        let mut scans = Vec::new();
        if existing.is_none() {
            let (row, layers, s) =
                self.fetch_image(&client, &ep, &manifest, &id, opts, progress)?;
            image = Some(row);
            new_layers = layers;
            scans = s;
        }

        let tag_ref = reference.tag().filter(|_| reference.digest().is_none());
        let repository = reference.repository();
        let updated = self.store.transaction(|t| -> Result<bool> {
            let mut updated = false;
            for l in &new_layers {
                if t.layer(&l.chain_id)?.is_none() {
                    t.insert_layer(l)?;
                }
            }
            if let Some(row) = &image {
                if t.image(&row.id)?.is_none() {
                    t.insert_image(row)?;
                    updated = true;
                }
            }
            if let Some(tag) = tag_ref {
                let full = format!("{repository}:{tag}");
                if t.tag(&full)? != Some(id.clone()) {
                    t.set_tag(&full, &id)?;
                    updated = true;
                }
            }
            // Where these blobs are, for a later push's cross-repository mounts.
            for l in &manifest.layers {
                if let Ok(b) = l.digest() {
                    t.add_blob_source(&b, &ep.registry, &ep.repository)?;
                }
            }
            if t.repo_digest(&repository, &top.digest)? != Some(id.clone()) {
                t.set_repo_digest(&repository, &top.digest, &id)?;
                updated = true;
            }
            Ok(updated)
        })?;
        // Docker's: the reference as the user gave it, named by its
        // repository.
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("name".to_string(), reference.familiar_repository());
        self.emit("image", "pull", &reference.familiar(), attrs);
        for (chain_id, scan) in scans {
            self.finish_layer_scan(&chain_id, scan);
        }
        self.inventory_new_image(&id);
        Ok(Pulled {
            id,
            digest: top.digest,
            updated,
        })
    }

    /// Fetches the config and every missing layer; returns the image row
    /// and the rows of the layers it made, their directories in place.
    fn fetch_image(
        &self,
        client: &Client,
        ep: &Endpoint,
        manifest: &ImageManifest,
        id: &Digest,
        opts: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Sync),
    ) -> Result<Fetched> {
        let config_size = manifest.config.size().map_err(registry_err)?;
        if config_size > MAX_CONFIG {
            return Err(EngineError::Registry(RegistryError::Protocol(format!(
                "image config {id} is too large ({config_size} bytes)"
            ))));
        }
        let mut config_bytes = Vec::new();
        client
            .blob(ep, id, Some(config_size))
            .map_err(registry_err)?
            .take(MAX_CONFIG + 1)
            .read_to_end(&mut config_bytes)
            .map_err(|e| EngineError::Io {
                context: format!("cannot read the image config {id}"),
                source: e,
            })?;
        if Digest::of_bytes(&config_bytes) != *id {
            return Err(EngineError::Registry(RegistryError::Protocol(format!(
                "image config verification failed for digest {id}"
            ))));
        }
        let config = ImageConfig::from_json(&config_bytes).map_err(|e| {
            EngineError::Registry(RegistryError::Protocol(format!(
                "image config {id} is invalid: {e}"
            )))
        })?;
        let diff_ids = config.rootfs.diff_ids.clone();
        if diff_ids.len() != manifest.layers.len() {
            return Err(EngineError::Registry(RegistryError::Protocol(
                "layers from manifest don't match image configuration".into(),
            )));
        }
        let chains = chain_ids(&diff_ids);
        let mut todo = Vec::new();
        let mut sizes = vec![0u64; chains.len()];
        {
            let t = self.store.read();
            for (i, chain) in chains.iter().enumerate() {
                match t.layer(chain)? {
                    Some(row) => sizes[i] = row.size,
                    None => todo.push(i),
                }
            }
        }
        let mut blobs = Vec::new();
        for l in &manifest.layers {
            blobs.push(l.digest().map_err(registry_err)?);
        }
        for (i, b) in blobs.iter().enumerate() {
            if !todo.contains(&i) {
                progress(PullEvent::Layer {
                    id: short(b),
                    status: LayerStatus::AlreadyExists,
                });
            }
        }
        for &i in &todo {
            progress(PullEvent::Layer {
                id: short(&blobs[i]),
                status: LayerStatus::PullingFsLayer,
            });
        }
        let workers = opts.concurrent_downloads.max(1);
        for &i in todo.iter().skip(workers) {
            progress(PullEvent::Layer {
                id: short(&blobs[i]),
                status: LayerStatus::Waiting,
            });
        }

        let queue = Mutex::new(todo.iter().copied().collect::<VecDeque<usize>>());
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Result<Ready>>> = Mutex::new(Vec::new());
        let blob_store = &self.blobs;
        let layers_dir = self.layers_dir();
        std::thread::scope(|s| {
            for _ in 0..workers.min(todo.len()) {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(i) = next else { return };
                    let r = fetch_layer(
                        blob_store,
                        &layers_dir,
                        client,
                        ep,
                        &manifest.layers[i],
                        &blobs[i],
                        &diff_ids[i],
                        progress,
                    );
                    let r = r.map(|(tmp, size)| Ready {
                        index: i,
                        scan: Engine::start_layer_scan(&tmp),
                        tmp,
                        size,
                    });
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut v) = results.lock() {
                        v.push(r);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_default();
        let mut ready = Vec::new();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(x) => ready.push(x),
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if first_err.is_none() && ready.len() != todo.len() {
            first_err = Some(EngineError::Registry(RegistryError::Protocol(
                "a layer download stopped without a result".into(),
            )));
        }
        if let Some(e) = first_err {
            for r in &ready {
                let _ = berth_layers::remove_layer_dir(&r.tmp);
            }
            return Err(e);
        }
        // Every layer is verified: the directories get their names.
        let mut rows = Vec::new();
        let mut scans = Vec::new();
        ready.sort_by_key(|r| r.index);
        for n in 0..ready.len() {
            let i = ready[n].index;
            if let Err(e) = berth_layers::commit_temp(&ready[n].tmp, &self.layer_dir(&chains[i])) {
                for later in &ready[n..] {
                    let _ = berth_layers::remove_layer_dir(&later.tmp);
                }
                return Err(e.into());
            }
            let r = &mut ready[n];
            if let Some(scan) = r.scan.take() {
                scans.push((chains[i].clone(), scan));
            }
            sizes[i] = r.size;
            rows.push(LayerRow {
                chain_id: chains[i].clone(),
                diff_id: diff_ids[i].clone(),
                parent: i.checked_sub(1).map(|p| chains[p].clone()),
                size: r.size,
                blob: Some(blobs[i].clone()),
            });
        }
        let created = config.created.clone().unwrap_or_else(crate::now_rfc3339);
        let row = ImageRow {
            id: id.clone(),
            config: config_bytes,
            layers: chains,
            size: sizes.iter().sum(),
            parent: None,
            created,
            added: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        };
        Ok((row, rows, scans))
    }
}

/// Downloads one layer into the blob store while unpacking it into a
/// temp layer directory; returns the directory and the layer's size.
#[allow(clippy::too_many_arguments)]
fn fetch_layer(
    blobs: &BlobStore,
    layers_dir: &Path,
    client: &Client,
    ep: &Endpoint,
    desc: &Descriptor,
    blob: &Digest,
    diff_id: &Digest,
    progress: &(dyn Fn(PullEvent) + Sync),
) -> Result<(PathBuf, u64)> {
    let id = short(blob);
    let total = desc.size().map_err(registry_err)?;
    let report = |current| {
        progress(PullEvent::Layer {
            id: id.clone(),
            status: LayerStatus::Downloading { current, total },
        })
    };
    let counted = |inner: Box<dyn Read + Send>, current: u64| Progress {
        inner,
        current,
        reported: current,
        step: (total / 50).max(64 << 10),
        total,
        report: &report,
    };
    let mut tmp_dir: Option<PathBuf> = None;
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        allow_devices: true,
        no_overwrite_dir_non_dir: false,
    };
    let consume = |r: &mut dyn Read| -> Result<u64> {
        let (_, tar) = berth_layers::decompress(r)?;
        let (tmp, stats) = berth_layers::unpack_to_temp(tar, layers_dir, &opts)?;
        tmp_dir = Some(tmp);
        if stats.diff_id != *diff_id {
            return Err(EngineError::Registry(RegistryError::Protocol(format!(
                "layer {blob} does not match its diff_id {diff_id}: its content hashes to {}",
                stats.diff_id
            ))));
        }
        Ok(stats.size)
    };
    // A blob a killed pull already stored whole (verified: the store names
    // blobs by their digest only after checking it) is read from the disk;
    // one it stopped in the middle of is fetched from the byte it reached
    // (HTTP Range), its kept part read back from the disk.
    let res = match std::fs::File::open(blobs.path(blob)) {
        Ok(f) if blobs.contains(blob) => {
            blobs.ingest_with(counted(Box::new(f), 0), Some(blob), consume)
        }
        _ => blobs.ingest_resumable(
            blob,
            |offset| -> Result<Progress<'_, Box<dyn Read + Send>>> {
                let rest: Box<dyn Read + Send> = if offset >= total {
                    Box::new(io::empty())
                } else {
                    Box::new(
                        client
                            .blob_from(ep, blob, Some(total), offset)
                            .map_err(registry_err)?,
                    )
                };
                Ok(counted(rest, offset))
            },
            consume,
        ),
    };
    let fail = |e: EngineError| {
        if let Some(t) = &tmp_dir {
            let _ = berth_layers::remove_layer_dir(t);
        }
        Err(e)
    };
    let (_, got, size) = match res {
        Ok(x) => x,
        Err(EngineError::Layer(LayerError::DigestMismatch { .. })) => {
            return fail(EngineError::Registry(RegistryError::Protocol(format!(
                "filesystem layer verification failed for digest {blob}"
            ))))
        }
        Err(e) => return fail(e),
    };
    if got != total {
        return fail(EngineError::Registry(RegistryError::Protocol(format!(
            "layer {blob} has {got} bytes, its descriptor says {total}"
        ))));
    }
    let Some(tmp) = tmp_dir.clone() else {
        return fail(EngineError::Registry(RegistryError::Protocol(format!(
            "layer {blob} was not unpacked"
        ))));
    };
    for status in [
        LayerStatus::VerifyingChecksum,
        LayerStatus::DownloadComplete,
        LayerStatus::Extracting {
            current: total,
            total,
        },
        LayerStatus::PullComplete,
    ] {
        progress(PullEvent::Layer {
            id: id.clone(),
            status,
        });
    }
    Ok((tmp, size))
}

/// Counts the bytes of a download and reports them now and then.
struct Progress<'a, R> {
    inner: R,
    current: u64,
    reported: u64,
    step: u64,
    total: u64,
    report: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.current += n as u64;
        if self.current - self.reported >= self.step || (n > 0 && self.current == self.total) {
            self.reported = self.current;
            (self.report)(self.current);
        }
        Ok(n)
    }
}

/// A remote manifest or index as `manifest inspect` shows it.
#[derive(Clone, Debug)]
pub struct RemoteManifest {
    /// What the reference names, verified.
    pub top: berth_registry::Fetched,
    /// For an image manifest: its config (where Docker reads the platform).
    pub config: Option<Vec<u8>>,
    /// For an index: each entry that is an image manifest, in the index's
    /// order, fetched and verified (Docker skips the other kinds).
    pub children: Vec<berth_registry::Fetched>,
}

/// The manifest or index `reference` names (by digest, tag, or `latest`)
/// from the first endpoint that has it, with that endpoint's client and
/// the tag or digest asked for.
fn fetch_top(
    reference: &Reference,
    opts: &PullOptions,
) -> Result<(Client, Endpoint, berth_registry::Fetched, String)> {
    let tag_or_digest = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let (client, ep, top) = first_endpoint(reference, opts, |c, ep| {
        c.manifest(ep, &tag_or_digest).map_err(registry_err)
    })?;
    Ok((client, ep, top, tag_or_digest))
}

/// Fetches what `reference` names on its registry (mirrors and settings as
/// a pull's), without touching the store: `manifest inspect`.
pub fn remote_manifest(reference: &Reference, opts: &PullOptions) -> Result<RemoteManifest> {
    let (client, ep, top, _) = fetch_top(reference, opts)?;
    let mut config = None;
    let mut children = Vec::new();
    match &top.manifest {
        Manifest::Image(m) => {
            let id = m.config.digest().map_err(registry_err)?;
            let size = m.config.size().map_err(registry_err)?;
            let mut bytes = Vec::new();
            client
                .blob(&ep, &id, Some(size))
                .map_err(registry_err)?
                .take(MAX_CONFIG + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| EngineError::Io {
                    context: format!("cannot read the image config {id}"),
                    source: e,
                })?;
            if bytes.len() as u64 > MAX_CONFIG || Digest::of_bytes(&bytes) != id {
                return Err(EngineError::Registry(RegistryError::Protocol(format!(
                    "image config verification failed for digest {id}"
                ))));
            }
            config = Some(bytes);
        }
        Manifest::Index(i) => {
            for d in &i.manifests {
                // As the docker CLI, only image manifests: not a nested
                // index, nor a type it does not know.
                let mt = d.media_type.as_str();
                if !mt.is_empty()
                    && mt != berth_registry::manifest::MT_DOCKER_MANIFEST
                    && mt != berth_registry::manifest::MT_OCI_MANIFEST
                {
                    continue;
                }
                let digest = d.digest().map_err(registry_err)?;
                let child = client
                    .manifest(&ep, digest.as_str())
                    .map_err(registry_err)?;
                if matches!(child.manifest, Manifest::Image(_)) {
                    children.push(child);
                }
            }
        }
    }
    Ok(RemoteManifest {
        top,
        config,
        children,
    })
}
