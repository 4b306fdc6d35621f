//! `save` and `load`: image archives.
//!
//! `save` writes one tar that is at once a Docker archive (`manifest.json`,
//! `repositories`) and an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`), as `docker save` does since Docker 25: docker, skopeo
//! (`docker-archive:`, `oci-archive:`) and umoci all read it. Layer blobs are
//! written exactly as the store keeps them (plain, gzip or zstd; the OCI
//! manifest says which), streamed from disk; the output is deterministic.
//!
//! `load` reads Docker archives (any age: `<id>/layer.tar`, `<hex>.json`,
//! `blobs/sha256/…`) and OCI layouts (nested indexes: the host's platform),
//! the whole archive plain, gzip or zstd. The stream is read once: every
//! member is spooled into the blob store as it comes (verified when its name
//! is a digest); then every image is checked and its missing layers are
//! unpacked, each into its own directory, verified against the config's
//! diff_ids; the rows for all of them are written last, in one transaction.
//! On any error nothing is left: no row, no new layer directory, no new blob.
//! A crash leaves only temp files (collected by pid) and blobs without a row
//! (collected by age, see [`Engine::collect_unreferenced_blobs`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_layers::{ApplyOptions, Compression, LayerError, WhiteoutMode};
use berth_store::{ImageRow, LayerRow};
use berth_types::{chain_ids, host_architecture, ImageConfig, Reference};
use serde::Deserialize;
use serde_json::json;

use crate::{io_ctx, Digest, Engine, EngineError, Result};

/// What `load` did, one line each, as Docker prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// A tag now points at a loaded image (`bb:latest`, familiar form).
    Image(String),
    /// An image loaded without a tag.
    ImageId(Digest),
    /// A tag moved away from another image (printed before its `Image` line).
    Retagged { reference: String, old: Digest },
}

impl fmt::Display for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loaded::Image(r) => write!(f, "Loaded image: {r}"),
            Loaded::ImageId(id) => write!(f, "Loaded image ID: {id}"),
            Loaded::Retagged { reference, old } => write!(
                f,
                "The image {reference} already exists, renaming the old one with ID {old} to empty string"
            ),
        }
    }
}

/// Why an archive could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive is empty")]
    Empty,
    #[error("the archive is truncated")]
    Truncated,
    #[error("cannot read the archive: {0}")]
    Read(#[source] io::Error),
    #[error("invalid archive: {0}")]
    Invalid(String),
    #[error("the archive has neither manifest.json nor index.json")]
    NoManifest,
    #[error("{0} is missing from the archive")]
    Missing(String),
    #[error("{name} in the archive is too large ({size} bytes)")]
    TooLarge { name: String, size: u64 },
    #[error("archive member {name}: {source}")]
    Member {
        name: String,
        #[source]
        source: LayerError,
    },
    #[error("the config of {image} does not match its digest {digest}")]
    ConfigDigest { image: String, digest: String },
    #[error("{what} is invalid: {reason}")]
    InvalidJson { what: String, reason: String },
    #[error("{image} has {layers} layers but its config lists {diff_ids} diff_ids")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("layer {n} of {image} does not match its diff_id")]
    DiffId { n: usize, image: String },
    #[error("layer {n} of {image}: {source}")]
    Layer {
        n: usize,
        image: String,
        #[source]
        source: LayerError,
    },
    #[error("{what} has size {actual}, its descriptor says {expected}")]
    Size {
        what: String,
        actual: u64,
        expected: i64,
    },
    #[error("no manifest in {index} is for linux/{arch}")]
    NoPlatform { index: String, arch: &'static str },
    #[error("layer {0} has no stored tarball")]
    NoTarball(Digest),
    #[error("image {image} has no layer {layer}")]
    NoLayer { image: Digest, layer: Digest },
    #[error("cannot write the archive: {0}")]
    Write(#[source] io::Error),
    #[error("cannot open {path}: {source}", path = path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<ArchiveError> for EngineError {
    fn from(e: ArchiveError) -> EngineError {
        match e {
            ArchiveError::Write(source) => EngineError::Io {
                context: "cannot write the archive".into(),
                source,
            },
            other => EngineError::InvalidArgument(other.to_string()),
        }
    }
}

/// Largest JSON document (manifest.json, index.json, a config, a manifest) read into memory.
const MAX_JSON: u64 = 16 << 20;
/// A blob without a layer row younger than this may belong to an operation in progress.
const ORPHAN_BLOB_AGE: Duration = Duration::from_secs(60);
/// How deep OCI indexes may nest, and how many symlinks a member name may go through.
const MAX_DEPTH: usize = 8;
const BLOCK: u64 = 512;
const COPY_BUF: usize = 1 << 20;

const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const ANN_IMAGE_NAME: &str = "io.containerd.image.name";
const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

impl Engine {
    // ------------------------------------------------------------------ save

    /// `save IMAGE...`: writes one archive with every named image to `out`.
    /// A repository name without a tag saves every tag of that repository,
    /// as Docker does; an image named by ID is saved without a tag.
    pub fn save(&self, images: &[String], mut out: impl Write) -> Result<()> {
        let targets = self.save_targets(images)?;
        let mut blobs: BTreeMap<String, BlobSource> = BTreeMap::new();
        let mut docker_manifest = Vec::new();
        let mut index = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (row, tags) in &targets {
            let config_id = Digest::of_bytes(&row.config);
            blobs.insert(
                config_id.hex().to_string(),
                BlobSource::Bytes(row.config.clone()),
            );
            let mut layer_descs = Vec::new();
            let mut layer_paths = Vec::new();
            for chain in &row.layers {
                let (blob, path, size, media_type) = self.layer_blob(row, chain)?;
                layer_descs.push(json!({
                    "mediaType": media_type,
                    "digest": blob.as_str(),
                    "size": size,
                }));
                layer_paths.push(format!("blobs/sha256/{}", blob.hex()));
                blobs.insert(blob.hex().to_string(), BlobSource::File(path, size));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "config": {
                    "mediaType": MT_OCI_CONFIG,
                    "digest": config_id.as_str(),
                    "size": row.config.len(),
                },
                "layers": layer_descs,
            });
            let manifest = to_json(&manifest)?;
            let manifest_id = Digest::of_bytes(&manifest);
            let manifest_size = manifest.len();
            blobs.insert(manifest_id.hex().to_string(), BlobSource::Bytes(manifest));
            let descriptor = |annotations: Option<serde_json::Value>| {
                let mut d = json!({
                    "mediaType": MT_OCI_MANIFEST,
                    "digest": manifest_id.as_str(),
                    "size": manifest_size,
                });
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            if tags.is_empty() {
                index.push(descriptor(None));
            }
            for r in tags {
                let tag = r.tag().unwrap_or("latest");
                index.push(descriptor(Some(json!({
                    ANN_IMAGE_NAME: r.to_string(),
                    ANN_REF_NAME: tag,
                }))));
                if let Some(top) = row.layers.last() {
                    repositories
                        .entry(r.familiar_repository())
                        .or_default()
                        .insert(tag.to_string(), top.hex().to_string());
                }
            }
            let repo_tags: Option<Vec<String>> = if tags.is_empty() {
                None
            } else {
                Some(tags.iter().map(Reference::familiar).collect())
            };
            docker_manifest.push(json!({
                "Config": format!("blobs/sha256/{}", config_id.hex()),
                "RepoTags": repo_tags,
                "Layers": layer_paths,
            }));
        }
        let index = to_json(&json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_INDEX,
            "manifests": index,
        }))?;
        let docker_manifest = to_json(&docker_manifest)?;

        let mut tar = TarWriter { out: &mut out };
        tar.dir("blobs/")?;
        tar.dir("blobs/sha256/")?;
        for (hex, source) in &blobs {
            let name = format!("blobs/sha256/{hex}");
            match source {
                BlobSource::Bytes(b) => tar.file(&name, b)?,
                BlobSource::File(path, size) => tar.file_from_disk(&name, path, *size)?,
            }
        }
        tar.file("index.json", &index)?;
        tar.file("manifest.json", &docker_manifest)?;
        tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        if !repositories.is_empty() {
            tar.file("repositories", &to_json(&repositories)?)?;
        }
        tar.finish()?;
        out.flush().map_err(ArchiveError::Write)?;
        // dockerd's `save` event: once per image, named by its ID.
        for (row, _) in &targets {
            self.emit_image("save", row.id.as_str(), row.id.as_str());
        }
        Ok(())
    }

    /// The images `save` writes, in the order named, each with the tags to
    /// record for it.
    fn save_targets(&self, names: &[String]) -> Result<Vec<(ImageRow, Vec<Reference>)>> {
        let mut out: Vec<(ImageRow, Vec<Reference>)> = Vec::new();
        let mut add = |row: ImageRow, tag: Option<Reference>| {
            let i = match out.iter().position(|(r, _)| r.id == row.id) {
                Some(i) => i,
                None => {
                    out.push((row, Vec::new()));
                    out.len() - 1
                }
            };
            if let Some(t) = tag {
                if !out[i].1.contains(&t) {
                    out[i].1.push(t);
                }
            }
        };
        for name in names {
            let t = self.store.read();
            if let Ok(r) = Reference::parse(name) {
                if is_name_only(name) {
                    let repo = r.repository();
                    let mut found = false;
                    for (tag, id) in t.all_tags()? {
                        let Ok(tr) = Reference::parse(&tag) else {
                            continue;
                        };
                        if tr.repository() == repo && tr.tag().is_some() {
                            if let Some(row) = t.image(&id)? {
                                add(row, Some(tr));
                                found = true;
                            }
                        }
                    }
                    if found {
                        continue;
                    }
                }
                if let Some(id) = t.tag(&r.to_string())? {
                    if let Some(row) = t.image(&id)? {
                        add(row, r.tag().is_some().then_some(r));
                        continue;
                    }
                }
            }
            // Docker names a missing bare name as typed (`No such image:
            // nosuch`), a tagged one in full.
            let row = self.resolve_image(name).map_err(|e| match e {
                EngineError::NoSuchImage(_) if is_name_only(name) => {
                    EngineError::NoSuchImage(name.clone())
                }
                // Docker's reference store's words for a tag it lacks.
                EngineError::NoSuchImage(_)
                    if !name.starts_with("sha256:") && Reference::parse(name).is_ok() =>
                {
                    EngineError::InvalidArgument("reference does not exist".into())
                }
                other => other,
            })?;
            add(row, None);
        }
        Ok(out)
    }

    /// A layer's stored tarball: its digest, path, size and OCI media type.
    fn layer_blob(
        &self,
        image: &ImageRow,
        chain: &Digest,
    ) -> Result<(Digest, PathBuf, u64, &'static str)> {
        let row = self
            .store
            .read()
            .layer(chain)?
            .ok_or_else(|| ArchiveError::NoLayer {
                image: image.id.clone(),
                layer: chain.clone(),
            })?;
        let blob = match row.blob.clone().filter(|b| self.blobs.contains(b)) {
            Some(b) => b,
            None => self.regenerate_blob(&row)?,
        };
        let path = self.blobs.path(&blob);
        let mut file = File::open(&path).map_err(io_ctx(format!("cannot open blob {blob}")))?;
        let size = file
            .metadata()
            .map_err(io_ctx(format!("cannot stat blob {blob}")))?
            .len();
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_ctx(format!("cannot read blob {blob}"))(e)),
            }
        }
        let media_type = match sniff(&head[..n]) {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            // `sniff` tells only gzip and zstd apart from a plain tar.
            Compression::None | Compression::Bzip2 | Compression::Xz => MT_OCI_LAYER,
        };
        Ok((blob, path, size, media_type))
    }

    /// A layer stored without its tarball (before import kept them): its
    /// directory is written out again and kept as its blob, if that gives
    /// back exactly its diff_id (a config must match its layers).
    fn regenerate_blob(&self, row: &LayerRow) -> Result<Digest> {
        let dir = self.layer_dir(&row.chain_id);
        if !dir.is_dir() {
            return Err(ArchiveError::NoTarball(row.chain_id.clone()).into());
        }
        let tmp_dir = self.opts.root.join("tmp");
        // Named as berth_layers names its temp files, so a crash leftover is collected.
        let tmp = tmp_dir.join(format!(
            "tmp-{}-{}",
            std::process::id(),
            &hex::encode(crate::random_bytes())[..16]
        ));
        let res = (|| -> Result<Digest> {
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(io_ctx(format!("cannot create {}", tmp.display())))?;
            let mut w = io::BufWriter::with_capacity(COPY_BUF, file);
            let opts = berth_layers::tarwriter::TarOptions {
                overlay_whiteouts: true,
            };
            let (digest, _) = berth_layers::tarwriter::write_dir(&dir, &mut w, &opts)?;
            w.flush()
                .map_err(io_ctx(format!("cannot write {}", tmp.display())))?;
            drop(w);
            if digest != row.diff_id {
                return Err(ArchiveError::NoTarball(row.chain_id.clone()).into());
            }
            let file =
                File::open(&tmp).map_err(io_ctx(format!("cannot open {}", tmp.display())))?;
            let (blob, _) = self.blobs.ingest(BufReader::new(file), Some(&digest))?;
            self.store
                .read()
                .set_layer_blob_if_missing(&row.chain_id, &blob)?;
            Ok(blob)
        })();
        let _ = std::fs::remove_file(&tmp);
        res
    }

    // ------------------------------------------------------------------ load

    /// `load`: reads an image archive (Docker or OCI, plain, gzip or zstd) and
    /// stores every image in it. All or nothing: on error nothing is stored.
    pub fn load(&mut self, input: impl Read + 'static) -> Result<Vec<Loaded>> {
        let lock = BlobLock::open(&self.opts.root)?;
        // Leftovers of killed operations: temp files and directories of dead
        // processes; unreferenced blobs only while no other load is running.
        berth_layers::collect_garbage(&self.layers_dir(), &self.opts.root.join("tmp"));
        if lock.try_exclusive() {
            let _ = self.collect_unreferenced_blobs(ORPHAN_BLOB_AGE);
        }
        lock.shared()?;
        let mut spool = Spool::new(&self.blobs_dir());
        let mut created = Vec::new();
        let res = self
            .spool_archive(input, &mut spool)
            .and_then(|()| self.load_spooled(&spool, &mut created));
        if res.is_err() {
            for chain in &created {
                if !matches!(self.store.read().layer(chain), Ok(Some(_))) {
                    let _ = berth_layers::remove_layer_dir(&self.layer_dir(chain));
                }
            }
        }
        // Blobs this load brought that no layer row took (configs, manifests,
        // layers that were here already or were refused). Another load may
        // still need one it ingested too: then leave them to the collector.
        if lock.try_exclusive() {
            for d in &spool.ingested {
                if spool.before.contains(d.hex()) {
                    continue;
                }
                if matches!(self.store.read().layer_with_blob(d), Ok(false)) {
                    let _ = self.blobs.remove(d);
                }
            }
        }
        res
    }

    fn blobs_dir(&self) -> PathBuf {
        self.opts.root.join("blobs").join("sha256")
    }

    /// Removes blobs that no layer row references and that are older than
    /// `min_age` (a younger one may be an import, commit or load between
    /// storing its blob and writing its row).
    pub(crate) fn collect_unreferenced_blobs(&self, min_age: Duration) -> Result<()> {
        let dir = self.blobs_dir();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(d) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                continue;
            };
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if old && !self.store.read().layer_with_blob(&d)? {
                let _ = self.blobs.remove(&d);
            }
        }
        Ok(())
    }

    /// Reads the archive to its end, storing every member that may be a blob.
    fn spool_archive(&self, input: impl Read + 'static, spool: &mut Spool) -> Result<()> {
        let (_, stream) = berth_layers::decompress(input).map_err(|e| match e {
            LayerError::Io { source, .. } => ArchiveError::Read(source),
            other => ArchiveError::Invalid(other.to_string()),
        })?;
        let mut tar = TarReader::new(BufReader::with_capacity(COPY_BUF, stream));
        while let Some(m) = tar.next_member()? {
            let name = normalize(&m.name);
            match m.kind {
                MemberKind::File => {}
                MemberKind::Symlink(target) => {
                    let base = match name.rsplit_once('/') {
                        Some((dir, _)) if !target.starts_with('/') => format!("{dir}/{target}"),
                        _ => target,
                    };
                    spool.links.insert(name, normalize(&base));
                    continue;
                }
                MemberKind::Hardlink(target) => {
                    spool.links.insert(name, normalize(&target));
                    continue;
                }
                MemberKind::Other => continue,
            }
            if matches!(
                name.as_str(),
                "manifest.json" | "index.json" | "oci-layout" | "repositories"
            ) {
                if m.size > MAX_JSON {
                    return Err(ArchiveError::TooLarge { name, size: m.size }.into());
                }
                let mut data = Vec::new();
                tar.read_to_end(&mut data).map_err(|e| tar.error(e))?;
                spool.meta.insert(name, data);
                continue;
            }
            if is_legacy_metadata(&name) {
                continue;
            }
            let expected = name
                .strip_prefix("blobs/sha256/")
                .and_then(|h| Digest::from_hex(h).ok());
            // A blob the store has already: verified, not written again.
            if let Some(d) = expected.as_ref().filter(|d| self.blobs.contains(d)) {
                let actual = hash_through(&mut tar).map_err(|e| tar.error(e))?;
                if actual != *d {
                    return Err(ArchiveError::Member {
                        name,
                        source: LayerError::DigestMismatch {
                            expected: d.clone(),
                            actual,
                        },
                    }
                    .into());
                }
                spool.files.insert(name, d.clone());
                continue;
            }
            let (digest, _) = match self.blobs.ingest(&mut tar, expected.as_ref()) {
                Ok(x) => x,
                Err(e) => {
                    return Err(match tar.fault.take() {
                        Some(f) => f,
                        None => ArchiveError::Member { name, source: e },
                    }
                    .into())
                }
            };
            spool.ingested.insert(digest.clone());
            spool.files.insert(name, digest);
        }
        if tar.members == 0 {
            return Err(ArchiveError::Empty.into());
        }
        Ok(())
    }

    /// Checks every image in the spooled archive, unpacks its missing layers
    /// and writes the rows. `created` collects the layer directories made.
    fn load_spooled(&mut self, spool: &Spool, created: &mut Vec<Digest>) -> Result<Vec<Loaded>> {
        let plans = if let Some(m) = spool.meta.get("manifest.json") {
            self.docker_plans(spool, m)?
        } else if let Some(i) = spool.meta.get("index.json") {
            self.oci_plans(spool, i)?
        } else {
            return Err(ArchiveError::NoManifest.into());
        };
        let mut plans_by_id: Vec<Plan> = Vec::new();
        for p in plans {
            match plans_by_id.iter_mut().find(|q| q.id == p.id) {
                Some(q) => {
                    for t in p.tags {
                        if !q.tags.contains(&t) {
                            q.tags.push(t);
                        }
                    }
                }
                None => plans_by_id.push(p),
            }
        }

        let mut new_layers: Vec<LayerRow> = Vec::new();
        let mut blob_updates: Vec<(Digest, Digest)> = Vec::new();
        let mut images = Vec::new();
        for plan in &plans_by_id {
            let shown = plan.shown();
            let config =
                ImageConfig::from_json(&plan.config).map_err(|e| ArchiveError::InvalidJson {
                    what: format!("the config of {shown}"),
                    reason: e.to_string(),
                })?;
            let diff_ids = &config.rootfs.diff_ids;
            if diff_ids.len() != plan.layers.len() {
                return Err(ArchiveError::LayerCount {
                    image: shown,
                    layers: plan.layers.len(),
                    diff_ids: diff_ids.len(),
                }
                .into());
            }
            let chains = chain_ids(diff_ids);
            let mut size = 0u64;
            for (i, blob) in plan.layers.iter().enumerate() {
                let chain = &chains[i];
                if let Some(l) = new_layers.iter().find(|l| &l.chain_id == chain) {
                    size += l.size;
                    continue;
                }
                if let Some(row) = self.store.read().layer(chain)? {
                    size += row.size;
                    if row.blob.is_none() {
                        blob_updates.push((chain.clone(), blob.clone()));
                    }
                    continue;
                }
                let layer_size = self
                    .unpack_layer(blob, &diff_ids[i], chain, created)
                    .map_err(|e| match e {
                        UnpackError::DiffId => ArchiveError::DiffId {
                            n: i + 1,
                            image: shown.clone(),
                        }
                        .into(),
                        UnpackError::Layer(source) => EngineError::from(ArchiveError::Layer {
                            n: i + 1,
                            image: shown.clone(),
                            source,
                        }),
                    })?;
                size += layer_size;
                new_layers.push(LayerRow {
                    chain_id: chain.clone(),
                    diff_id: diff_ids[i].clone(),
                    parent: i.checked_sub(1).map(|p| chains[p].clone()),
                    size: layer_size,
                    blob: Some(blob.clone()),
                });
            }
            let created_at = config.created.clone().unwrap_or_else(crate::now_rfc3339);
            images.push(ImageRow {
                id: plan.id.clone(),
                config: plan.config.clone(),
                layers: chains,
                size,
                parent: None,
                created: created_at,
                added: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            });
        }

        let mut out = Vec::new();
        self.store.transaction(|t| -> Result<()> {
            for l in &new_layers {
                t.insert_layer(l)?;
            }
            for (chain, blob) in &blob_updates {
                t.set_layer_blob_if_missing(chain, blob)?;
            }
            for (row, plan) in images.iter().zip(&plans_by_id) {
                t.insert_image(row)?;
                for r in &plan.tags {
                    if let Some(old) = t.set_tag(&r.to_string(), &row.id)? {
                        out.push(Loaded::Retagged {
                            reference: r.familiar(),
                            old,
                        });
                    }
                    out.push(Loaded::Image(r.familiar()));
                }
                if plan.tags.is_empty() {
                    out.push(Loaded::ImageId(row.id.clone()));
                }
            }
            Ok(())
        })?;
        let mut recorded = std::collections::BTreeSet::new();
        for row in &images {
            self.inventory_new_image(&row.id);
            // dockerd's `load` event: once per image, named by its ID.
            if recorded.insert(row.id.clone()) {
                self.emit_image("load", row.id.as_str(), row.id.as_str());
            }
        }
        Ok(out)
    }

    /// Unpacks one layer blob into `layers/<chain hex>`, verifying its diff_id
    /// before the directory gets its name. Returns the layer's size.
    fn unpack_layer(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        chain: &Digest,
        created: &mut Vec<Digest>,
    ) -> std::result::Result<u64, UnpackError> {
        let path = self.blobs.path(blob);
        let file = File::open(&path).map_err(|e| {
            UnpackError::Layer(LayerError::Io {
                context: format!("cannot open blob {blob}"),
                source: e,
            })
        })?;
        let (_, tar) = berth_layers::decompress(BufReader::with_capacity(COPY_BUF, file))?;
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            allow_devices: true,
            no_overwrite_dir_non_dir: false,
        };
        let (tmp, stats) = berth_layers::unpack_to_temp(tar, &self.layers_dir(), &opts)?;
        if stats.diff_id != *diff_id {
            let _ = berth_layers::remove_layer_dir(&tmp);
            return Err(UnpackError::DiffId);
        }
        let dest = self.layer_dir(chain);
        let existed = std::fs::symlink_metadata(&dest).is_ok();
        if let Err(e) = berth_layers::commit_temp(&tmp, &dest) {
            let _ = berth_layers::remove_layer_dir(&tmp);
            return Err(e.into());
        }
        if !existed {
            created.push(chain.clone());
        }
        Ok(stats.size)
    }

    /// The images of a Docker archive (`manifest.json`).
    fn docker_plans(&self, spool: &Spool, manifest: &[u8]) -> Result<Vec<Plan>> {
        let items: Vec<DockerItem> =
            serde_json::from_slice(manifest).map_err(|e| ArchiveError::InvalidJson {
                what: "manifest.json".into(),
                reason: e.to_string(),
            })?;
        let mut plans = Vec::new();
        for item in items {
            let mut tags = Vec::new();
            for t in item.repo_tags.unwrap_or_default() {
                let r = Reference::parse(&t).map_err(|e| ArchiveError::InvalidJson {
                    what: "manifest.json".into(),
                    reason: e.to_string(),
                })?;
                tags.push(r);
            }
            let shown = tags
                .first()
                .map(Reference::familiar)
                .unwrap_or_else(|| item.config.clone());
            let config_name = normalize(&item.config);
            let config_blob = spool.resolve(&config_name)?;
            let config = self.read_json_blob(&config_blob, &format!("config {config_name}"))?;
            // A config named `<hex>.json` is named by its digest (the image ID).
            let id = Digest::of_bytes(&config);
            if let Some(hex) = config_name
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|h| Digest::from_hex(h).is_ok())
            {
                if hex != id.hex() {
                    return Err(ArchiveError::ConfigDigest {
                        image: shown,
                        digest: format!("sha256:{hex}"),
                    }
                    .into());
                }
            }
            let mut layers = Vec::new();
            for l in &item.layers {
                layers.push(spool.resolve(&normalize(l))?);
            }
            plans.push(Plan {
                id,
                config,
                layers,
                tags,
            });
        }
        Ok(plans)
    }

    /// The images of an OCI image layout (`index.json`).
    fn oci_plans(&self, spool: &Spool, index: &[u8]) -> Result<Vec<Plan>> {
        let index: Index =
            serde_json::from_slice(index).map_err(|e| ArchiveError::InvalidJson {
                what: "index.json".into(),
                reason: e.to_string(),
            })?;
        let mut plans = Vec::new();
        for desc in &index.manifests {
            self.oci_descend(spool, desc, names_of(desc), 0, &mut plans)?;
        }
        Ok(plans)
    }

    fn oci_descend(
        &self,
        spool: &Spool,
        desc: &Descriptor,
        tags: Vec<Reference>,
        depth: usize,
        plans: &mut Vec<Plan>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(ArchiveError::Invalid("image indexes nest too deep".into()).into());
        }
        let what = format!("manifest {}", desc.digest);
        let digest = desc_digest(desc, &what)?;
        let blob = spool.resolve(&format!("blobs/sha256/{}", digest.hex()))?;
        let bytes = self.read_json_blob(&blob, &what)?;
        check_size(&what, bytes.len() as u64, desc.size)?;
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ArchiveError::InvalidJson {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let is_index = desc.media_type.contains("index")
            || desc.media_type.contains("manifest.list")
            || doc.get("manifests").is_some();
        if is_index {
            let index: Index =
                serde_json::from_value(doc).map_err(|e| ArchiveError::InvalidJson {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            let arch = host_architecture();
            let child = index
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                .ok_or(ArchiveError::NoPlatform { index: what, arch })?;
            let mut tags = tags;
            for t in names_of(child) {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            return self.oci_descend(spool, child, tags, depth + 1, plans);
        }
        let manifest: Manifest =
            serde_json::from_value(doc).map_err(|e| ArchiveError::InvalidJson {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let config_what = format!("config {}", manifest.config.digest);
        let config_digest = desc_digest(&manifest.config, &config_what)?;
        let config_blob = spool.resolve(&format!("blobs/sha256/{}", config_digest.hex()))?;
        let config = self.read_json_blob(&config_blob, &config_what)?;
        check_size(&config_what, config.len() as u64, manifest.config.size)?;
        let mut layers = Vec::new();
        for (i, l) in manifest.layers.iter().enumerate() {
            let lwhat = format!("layer {} ({})", i + 1, l.digest);
            let d = desc_digest(l, &lwhat)?;
            let blob = spool.resolve(&format!("blobs/sha256/{}", d.hex()))?;
            let size = std::fs::metadata(self.blobs.path(&blob))
                .map_err(io_ctx(format!("cannot stat blob {blob}")))?
                .len();
            check_size(&lwhat, size, l.size)?;
            layers.push(blob);
        }
        plans.push(Plan {
            id: Digest::of_bytes(&config),
            config,
            layers,
            tags,
        });
        Ok(())
    }

    /// Reads a small spooled blob (a config, manifest or index) whole.
    fn read_json_blob(&self, blob: &Digest, what: &str) -> Result<Vec<u8>> {
        let size = std::fs::metadata(self.blobs.path(blob))
            .map_err(io_ctx(format!("cannot stat blob {blob}")))?
            .len();
        if size > MAX_JSON {
            return Err(ArchiveError::TooLarge {
                name: what.to_string(),
                size,
            }
            .into());
        }
        Ok(self.blobs.read(blob)?)
    }
}

/// One image found in an archive, before it is stored.
struct Plan {
    id: Digest,
    config: Vec<u8>,
    /// Blob digests, bottom layer first.
    layers: Vec<Digest>,
    tags: Vec<Reference>,
}

impl Plan {
    /// How errors name the image: its first tag, else its ID.
    fn shown(&self) -> String {
        self.tags
            .first()
            .map(Reference::familiar)
            .unwrap_or_else(|| self.id.to_string())
    }
}

enum UnpackError {
    DiffId,
    Layer(LayerError),
}

impl From<LayerError> for UnpackError {
    fn from(e: LayerError) -> Self {
        UnpackError::Layer(e)
    }
}

/// What the archive brought: member names → blobs, links, small metadata files.
struct Spool {
    files: HashMap<String, Digest>,
    links: HashMap<String, String>,
    meta: HashMap<String, Vec<u8>>,
    /// Every blob this load stored (some may have been there before).
    ingested: HashSet<Digest>,
    /// The blobs (hex) in the store before this load.
    before: HashSet<String>,
}

impl Spool {
    fn new(blobs_dir: &Path) -> Spool {
        let before = std::fs::read_dir(blobs_dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Spool {
            files: HashMap::new(),
            links: HashMap::new(),
            meta: HashMap::new(),
            ingested: HashSet::new(),
            before,
        }
    }

    /// The blob stored for member `name`, following links in the archive.
    fn resolve(&self, name: &str) -> std::result::Result<Digest, ArchiveError> {
        let mut n = name.to_string();
        for _ in 0..=MAX_DEPTH {
            if let Some(d) = self.files.get(&n) {
                return Ok(d.clone());
            }
            match self.links.get(&n) {
                Some(t) => n = t.clone(),
                None => break,
            }
        }
        Err(ArchiveError::Missing(name.to_string()))
    }
}

#[derive(Deserialize)]
struct DockerItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The tags an OCI descriptor's annotations give: containerd's full image
/// name, else a reference name that is a whole reference (`bb:latest`), not
/// just a tag (`latest`).
fn names_of(desc: &Descriptor) -> Vec<Reference> {
    let name = desc.annotations.get(ANN_IMAGE_NAME).or_else(|| {
        desc.annotations
            .get(ANN_REF_NAME)
            .filter(|n| n.contains(':') || n.contains('/'))
    });
    name.and_then(|n| Reference::parse(n).ok())
        .filter(|r| r.tag().is_some())
        .into_iter()
        .collect()
}

fn desc_digest(desc: &Descriptor, what: &str) -> std::result::Result<Digest, ArchiveError> {
    Digest::parse(&desc.digest).map_err(|e| ArchiveError::InvalidJson {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

fn check_size(
    what: &str,
    actual: u64,
    expected: Option<i64>,
) -> std::result::Result<(), ArchiveError> {
    match expected {
        Some(e) if i64::try_from(actual).ok() != Some(e) => Err(ArchiveError::Size {
            what: what.to_string(),
            actual,
            expected: e,
        }),
        _ => Ok(()),
    }
}

/// `bb`, `me/app`, `localhost:5000/app`: a repository without tag or digest.
fn is_name_only(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    !name.contains('@') && !last.contains(':')
}

/// The per-layer `json` and `VERSION` files of the legacy (v1) format.
fn is_legacy_metadata(name: &str) -> bool {
    matches!(name.split_once('/'), Some((_, "json" | "VERSION")))
}

/// A member name as a lookup key: no leading `./` or `/`, no `.` or `..`.
fn normalize(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The sha256 of what `r` yields to its end.
fn hash_through(r: &mut impl Read) -> io::Result<Digest> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(Digest::from_hasher(hasher)),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> std::result::Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(v).map_err(|e| ArchiveError::Invalid(e.to_string()))
}

enum BlobSource {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

/// A lock file that loads hold shared; collecting unreferenced blobs takes it
/// exclusive (without waiting), so it never runs while a load is in flight.
pub(crate) struct BlobLock {
    file: File,
}

impl BlobLock {
    pub(crate) fn open(root: &Path) -> Result<BlobLock> {
        let path = root.join("blobs").join("gc.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_ctx(format!("cannot open {}", path.display())))?;
        Ok(BlobLock { file })
    }

    pub(crate) fn try_exclusive(&self) -> bool {
        rustix::fs::flock(
            &self.file,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .is_ok()
    }

    pub(crate) fn shared(&self) -> Result<()> {
        rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockShared)
            .map_err(|e| io_ctx("cannot lock the blob store")(e.into()))
    }
}

// ------------------------------------------------------------------- tar

/// Writes a ustar archive: fixed owner (0:0) and mtime (0), so the same
/// images always give the same bytes.
struct TarWriter<'a, W: Write> {
    out: &'a mut W,
}

impl<W: Write> TarWriter<'_, W> {
    fn dir(&mut self, name: &str) -> std::result::Result<(), ArchiveError> {
        let h = header(name, 0, b'5', 0o755)?;
        self.out.write_all(&h).map_err(ArchiveError::Write)
    }

    fn file(&mut self, name: &str, data: &[u8]) -> std::result::Result<(), ArchiveError> {
        let h = header(name, data.len() as u64, b'0', 0o644)?;
        self.out.write_all(&h).map_err(ArchiveError::Write)?;
        self.out.write_all(data).map_err(ArchiveError::Write)?;
        self.pad(data.len() as u64)
    }

    /// Streams a file of `size` bytes (never read whole into memory).
    fn file_from_disk(
        &mut self,
        name: &str,
        path: &Path,
        size: u64,
    ) -> std::result::Result<(), ArchiveError> {
        let h = header(name, size, b'0', 0o644)?;
        let file = File::open(path).map_err(|source| ArchiveError::Source {
            path: path.to_path_buf(),
            source,
        })?;
        self.out.write_all(&h).map_err(ArchiveError::Write)?;
        let copied = io::copy(&mut file.take(size), self.out).map_err(ArchiveError::Write)?;
        if copied != size {
            return Err(ArchiveError::Write(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than {size} bytes", path.display()),
            )));
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> std::result::Result<(), ArchiveError> {
        let rem = (size % BLOCK) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; BLOCK as usize][..BLOCK as usize - rem])
                .map_err(ArchiveError::Write)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> std::result::Result<(), ArchiveError> {
        self.out
            .write_all(&[0u8; 2 * BLOCK as usize])
            .map_err(ArchiveError::Write)
    }
}

fn header(
    name: &str,
    size: u64,
    kind: u8,
    mode: u64,
) -> std::result::Result<[u8; 512], ArchiveError> {
    let mut h = [0u8; 512];
    let n = name.as_bytes();
    if n.len() > 100 {
        return Err(ArchiveError::Invalid(format!(
            "member name too long: {name}"
        )));
    }
    h[..n.len()].copy_from_slice(n);
    put_octal(&mut h[100..108], mode);
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    if size < 0o77777777777 {
        put_octal(&mut h[124..136], size);
    } else {
        // GNU base-256 for sizes of 8 GiB and more.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    put_octal(&mut h[136..148], 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put_octal(&mut h[329..337], 0);
    put_octal(&mut h[337..345], 0);
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

/// Zero-padded octal, NUL-terminated; `v` always fits the fields used here.
fn put_octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    let b = s.as_bytes();
    let b = &b[b.len().saturating_sub(width)..];
    field[width - b.len()..width].copy_from_slice(b);
    field[width] = 0;
}

enum MemberKind {
    File,
    Symlink(String),
    Hardlink(String),
    Other,
}

struct Member {
    name: String,
    size: u64,
    kind: MemberKind,
}

/// Reads a tar stream (ustar, GNU long names, PAX) once, front to back. The
/// current member's content is read through `Read`; what a caller leaves is
/// skipped by the next [`TarReader::next_member`].
struct TarReader<R: Read> {
    r: R,
    /// Content bytes of the current member not yet read, then its padding.
    remaining: u64,
    padding: u64,
    members: u64,
    offset: u64,
    /// Why reading content failed, kept for a better message than the consumer's.
    fault: Option<ArchiveError>,
}

impl<R: Read> TarReader<R> {
    fn new(r: R) -> Self {
        TarReader {
            r,
            remaining: 0,
            padding: 0,
            members: 0,
            offset: 0,
            fault: None,
        }
    }

    fn error(&mut self, e: io::Error) -> ArchiveError {
        self.fault.take().unwrap_or(ArchiveError::Read(e))
    }

    fn raw_read(&mut self, buf: &mut [u8]) -> std::result::Result<usize, ArchiveError> {
        loop {
            match self.r.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(ArchiveError::Truncated)
                }
                Err(e) => return Err(ArchiveError::Read(e)),
            }
        }
    }

    /// Fills `buf`; returns how much was read before end of stream.
    fn fill(&mut self, buf: &mut [u8]) -> std::result::Result<usize, ArchiveError> {
        let mut n = 0;
        while n < buf.len() {
            let k = self.raw_read(&mut buf[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        Ok(n)
    }

    fn skip(&mut self, mut n: u64) -> std::result::Result<(), ArchiveError> {
        let mut buf = vec![0u8; COPY_BUF.min(usize::try_from(n).unwrap_or(COPY_BUF)).max(1)];
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(buf.len()).min(buf.len());
            let k = self.raw_read(&mut buf[..want])?;
            if k == 0 {
                return Err(ArchiveError::Truncated);
            }
            n -= k as u64;
        }
        Ok(())
    }

    /// Content of an extension header (PAX, GNU long name), at most 1 MiB.
    fn small_content(&mut self, size: u64) -> std::result::Result<Vec<u8>, ArchiveError> {
        if size > 1 << 20 {
            return Err(ArchiveError::Invalid(format!(
                "extended header of {size} bytes at byte {}",
                self.offset
            )));
        }
        let mut data = vec![0u8; usize::try_from(size).unwrap_or(0)];
        if self.fill(&mut data)? != data.len() {
            return Err(ArchiveError::Truncated);
        }
        self.skip(pad_of(size))?;
        Ok(data)
    }

    fn next_member(&mut self) -> std::result::Result<Option<Member>, ArchiveError> {
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax: HashMap<String, String> = HashMap::new();
        loop {
            let at = self.offset;
            let mut h = [0u8; 512];
            match self.fill(&mut h)? {
                0 if long_name.is_none() && pax.is_empty() => return Ok(None),
                512 => {}
                _ if at == 0 => return Err(ArchiveError::Invalid("not a tar archive".into())),
                _ => return Err(ArchiveError::Truncated),
            }
            if h.iter().all(|&b| b == 0) {
                // End of archive: the rest (a second zero block, padding)
                // is read so a compressed stream is checked to its end.
                let mut sink = vec![0u8; 64 * 1024];
                while self.raw_read(&mut sink)? > 0 {}
                return Ok(None);
            }
            if !checksum_ok(&h) {
                return Err(if self.members == 0 && at == 0 {
                    ArchiveError::Invalid("not a tar archive".into())
                } else {
                    ArchiveError::Invalid(format!("corrupt tar header at byte {at}"))
                });
            }
            let mut size = parse_number(&h[124..136])
                .ok_or_else(|| ArchiveError::Invalid(format!("corrupt tar header at byte {at}")))?;
            let kind = h[156];
            match kind {
                b'x' => {
                    let data = self.small_content(size)?;
                    pax.extend(parse_pax(&data));
                    continue;
                }
                b'g' => {
                    self.small_content(size)?;
                    continue;
                }
                b'L' => {
                    long_name = Some(c_string(&self.small_content(size)?));
                    continue;
                }
                b'K' => {
                    long_link = Some(c_string(&self.small_content(size)?));
                    continue;
                }
                _ => {}
            }
            let mut name = c_string(&h[..100]);
            if &h[257..262] == b"ustar" && h[345] != 0 {
                name = format!("{}/{name}", c_string(&h[345..500]));
            }
            let name = pax.remove("path").or(long_name.take()).unwrap_or(name);
            let link = pax
                .remove("linkpath")
                .or(long_link.take())
                .unwrap_or_else(|| c_string(&h[157..257]));
            if let Some(s) = pax.get("size").and_then(|s| s.parse().ok()) {
                size = s;
            }
            self.members += 1;
            let kind = match kind {
                b'0' | 0 | b'7' => MemberKind::File,
                b'1' => {
                    size = 0;
                    MemberKind::Hardlink(link)
                }
                b'2' => {
                    size = 0;
                    MemberKind::Symlink(link)
                }
                // Directories, devices, FIFOs have no content here.
                b'3' | b'4' | b'5' | b'6' => {
                    size = 0;
                    MemberKind::Other
                }
                _ => MemberKind::Other,
            };
            let kind = match kind {
                MemberKind::File if name.ends_with('/') => MemberKind::Other,
                k => k,
            };
            self.remaining = size;
            self.padding = pad_of(size);
            return Ok(Some(Member { name, size, kind }));
        }
    }
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(buf.len())
            .min(buf.len());
        match self.raw_read(&mut buf[..want]) {
            Ok(0) => {
                self.fault = Some(ArchiveError::Truncated);
                Err(io::ErrorKind::UnexpectedEof.into())
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) => {
                let kind = match &e {
                    ArchiveError::Read(io) => io.kind(),
                    _ => io::ErrorKind::UnexpectedEof,
                };
                let msg = e.to_string();
                self.fault = Some(e);
                Err(io::Error::new(kind, msg))
            }
        }
    }
}

fn pad_of(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn checksum_ok(h: &[u8; 512]) -> bool {
    let Some(want) = parse_number(&h[148..156]) else {
        return false;
    };
    let unsigned: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    // Some old writers summed signed bytes.
    let signed: i64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    want == unsigned || i64::try_from(want).ok() == Some(signed)
}

/// An octal header field (spaces and NULs around it), or GNU base-256.
fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(&s).ok()?;
    u64::from_str_radix(s, 8).ok()
}

/// PAX records: `<len> <key>=<value>\n`.
fn parse_pax(data: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= sp || len > rest.len() {
            break;
        }
        let record = &rest[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.insert(
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
            );
        }
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_the_reader() {
        let mut buf = Vec::new();
        {
            let mut w = TarWriter { out: &mut buf };
            w.dir("blobs/").unwrap();
            w.file("a/b", b"hello").unwrap();
            w.file("c", &[7u8; 1000]).unwrap();
            w.finish().unwrap();
        }
        assert_eq!(buf.len() % 512, 0);
        let mut r = TarReader::new(&buf[..]);
        let m = r.next_member().unwrap().unwrap();
        assert_eq!(m.name, "blobs/");
        let m = r.next_member().unwrap().unwrap();
        assert_eq!((m.name.as_str(), m.size), ("a/b", 5));
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        let m = r.next_member().unwrap().unwrap();
        assert_eq!((m.name.as_str(), m.size), ("c", 1000));
        assert!(r.next_member().unwrap().is_none());
    }

    #[test]
    fn truncation_is_reported() {
        let mut buf = Vec::new();
        {
            let mut w = TarWriter { out: &mut buf };
            w.file("c", &[7u8; 1000]).unwrap();
            w.finish().unwrap();
        }
        let cut = &buf[..700];
        let mut r = TarReader::new(cut);
        r.next_member().unwrap().unwrap();
        let mut v = Vec::new();
        assert!(r.read_to_end(&mut v).is_err());
        assert!(matches!(r.fault, Some(ArchiveError::Truncated)));
        // Cut inside a header: truncated, unless it is the first one.
        let mut r = TarReader::new(&buf[..300]);
        assert!(matches!(r.next_member(), Err(ArchiveError::Invalid(_))));
        let mut two = Vec::new();
        {
            let mut w = TarWriter { out: &mut two };
            w.file("a", b"a").unwrap();
            w.file("b", b"b").unwrap();
        }
        let mut r = TarReader::new(&two[..1300]);
        r.next_member().unwrap().unwrap();
        assert!(matches!(r.next_member(), Err(ArchiveError::Truncated)));
    }

    /// A layer stored without its tarball is written out again on save, when
    /// that gives back its diff_id, and kept as its blob from then on.
    #[test]
    fn save_regenerates_a_missing_layer_tarball() {
        let root = tempfile::tempdir().unwrap();
        let mut e = Engine::open(crate::Options::new(
            root.path().join("root"),
            root.path().join("run"),
            "berth-unit".into(),
        ))
        .unwrap();
        let tree = root.path().join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/hello"), b"hello\n").unwrap();
        let mut tar = Vec::new();
        berth_layers::tarwriter::write_dir(&tree, &mut tar, &Default::default()).unwrap();
        let id = e.import(std::io::Cursor::new(tar), Some("t"), "").unwrap();
        let row = e.resolve_image("t").unwrap();
        let chain = row.layers[0].clone();
        let blob = e.store.read().layer(&chain).unwrap().unwrap().blob.unwrap();
        e.store
            .transaction(|t| -> Result<()> {
                t.delete_layer(&chain)?;
                t.insert_layer(&LayerRow {
                    chain_id: chain.clone(),
                    diff_id: chain.clone(),
                    parent: None,
                    size: 6,
                    blob: None,
                })?;
                Ok(())
            })
            .unwrap();
        e.blobs.remove(&blob).unwrap();

        let mut archive = Vec::new();
        e.save(&["t".to_string()], &mut archive).unwrap();
        let row = e.store.read().layer(&chain).unwrap().unwrap();
        assert_eq!(
            row.blob.as_ref(),
            Some(&chain),
            "the regenerated tar is the blob"
        );
        assert!(e.blobs.contains(&chain));

        let other = tempfile::tempdir().unwrap();
        let mut f = Engine::open(crate::Options::new(
            other.path().join("root"),
            other.path().join("run"),
            "berth-unit".into(),
        ))
        .unwrap();
        let loaded = f.load(std::io::Cursor::new(archive)).unwrap();
        assert_eq!(loaded, vec![Loaded::Image("t:latest".into())]);
        assert_eq!(f.resolve_image("t").unwrap().id, id);
    }

    #[test]
    fn names_and_pax() {
        assert_eq!(normalize("./blobs//sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize("../../x"), "x");
        assert!(is_name_only("localhost:5000/app"));
        assert!(!is_name_only("bb:latest"));
        assert!(!is_name_only("bb@sha256:00"));
        let p = parse_pax(b"13 path=a/bc\n12 size=123\n");
        assert_eq!(p["path"], "a/bc");
        assert_eq!(p["size"], "123");
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 5;
        assert_eq!(parse_number(&f), Some(5));
    }
}
