//! `push`: a local image to a registry, as a Docker schema 2 manifest.
//!
//! Each layer goes up as a compressed blob: the one the store kept when
//! it came compressed (pull, load: gzip or zstd as it came), else (commit,
//! build, plain import) its tar gzip-compressed once, on the first push,
//! kept in the blob store and recorded (`compressed_blobs`, by diff ID) so
//! no later push compresses it again. The registry is asked (HEAD) first;
//! a missing blob known to be in another repository of the same registry
//! (`blob_sources`, from pulls and pushes) is mounted from there, else
//! uploaded. Five layers at a time, as Docker's daemon. Then the config
//! and the manifest under the tag; the repository digest, the new
//! compressed blobs and where the blobs now are are recorded in one
//! transaction at the end: a failed push records nothing. An unchanged
//! re-push reads no layer data: the mapping gives each blob, HEAD says it
//! is there.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_layers::{BlobStore, Compression};
use berth_registry::manifest::{MT_DOCKER_CONFIG, MT_DOCKER_MANIFEST};
use berth_registry::{Auth, Client, Endpoint, Mount, RegistryError};
use berth_store::{CompressedBlob, LayerRow};
use berth_types::Reference;
use serde::Serialize;

use crate::archive::BlobLock;
use crate::{Digest, Engine, EngineError, Result};

/// Docker's default `max-concurrent-uploads`.
pub const DEFAULT_CONCURRENT_UPLOADS: usize = 5;

const MT_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MT_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Who answers a registry's 401; None: anonymous.
    pub auth: Option<Arc<dyn Auth>>,
    /// berth's registry settings (certs.d, insecure registries).
    pub settings: Arc<berth_registry::Settings>,
    /// Layers uploaded at once.
    pub concurrent_uploads: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            auth: None,
            settings: Arc::new(berth_registry::Settings::default()),
            concurrent_uploads: DEFAULT_CONCURRENT_UPLOADS,
        }
    }
}

/// One layer's state, in Docker's push vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushStatus {
    Preparing,
    Waiting,
    Pushing {
        current: u64,
        total: u64,
    },
    Pushed,
    AlreadyExists,
    /// Mounted from this repository of the registry.
    MountedFrom(String),
}

/// A layer's progress, by the first 12 hex digits of its diff ID (as
/// Docker names layers in a push).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    pub id: String,
    pub status: PushStatus,
}

/// What a push did.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub tag: String,
    /// The manifest's digest and size.
    pub digest: Digest,
    pub size: u64,
}

/// The blob a layer goes up as.
#[derive(Clone, Debug)]
struct Blob {
    digest: Digest,
    size: u64,
    media_type: String,
}

/// A layer to push and what is known of it before any work.
struct Job {
    row: LayerRow,
    /// Its compressed blob, if known (recorded, or the stored blob).
    known: Option<Blob>,
    /// Repositories of the target registry known to hold `known`.
    sources: Vec<String>,
}

/// A layer pushed: its blob, and whether it was made now (to record).
struct Done {
    index: usize,
    blob: Blob,
    made: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDescriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a str,
}

/// Docker schema 2, with its field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema2<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: ManifestDescriptor<'a>,
    layers: Vec<ManifestDescriptor<'a>>,
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

fn registry_err(e: RegistryError) -> EngineError {
    EngineError::Registry(e)
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> EngineError {
    move |source| EngineError::Io { context, source }
}

/// The manifest bytes as Docker's daemon writes them (3-space indents).
fn manifest_bytes(config: &Blob, layers: &[Blob]) -> Result<Vec<u8>> {
    let m = Schema2 {
        schema_version: 2,
        media_type: MT_DOCKER_MANIFEST,
        config: ManifestDescriptor {
            media_type: &config.media_type,
            size: config.size,
            digest: config.digest.as_str(),
        },
        layers: layers
            .iter()
            .map(|l| ManifestDescriptor {
                media_type: &l.media_type,
                size: l.size,
                digest: l.digest.as_str(),
            })
            .collect(),
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    m.serialize(&mut ser).map_err(|e| {
        EngineError::Registry(RegistryError::Protocol(format!(
            "cannot write the manifest: {e}"
        )))
    })?;
    Ok(out)
}

/// The compression of a stored blob, from its first bytes.
fn sniff(blobs: &BlobStore, d: &Digest) -> Result<Compression> {
    let mut head = [0u8; 6];
    let mut f = File::open(blobs.path(d)).map_err(io_err(format!("cannot open blob {d}")))?;
    let mut len = 0;
    while len < head.len() {
        match f.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(format!("cannot read blob {d}"))(e)),
        }
    }
    let (kind, _) = berth_layers::decompress(io::Cursor::new(head[..len].to_vec()))?;
    Ok(kind)
}

/// A stored blob as it can go up unchanged, if it is compressed as a
/// registry takes it.
fn as_stored(blobs: &BlobStore, d: &Digest) -> Result<Option<Blob>> {
    let media_type = match sniff(blobs, d)? {
        Compression::Gzip => MT_LAYER_GZIP,
        Compression::Zstd => MT_LAYER_ZSTD,
        _ => return Ok(None),
    };
    let size = std::fs::metadata(blobs.path(d))
        .map_err(io_err(format!("cannot stat blob {d}")))?
        .len();
    Ok(Some(Blob {
        digest: d.clone(),
        size,
        media_type: media_type.to_string(),
    }))
}

/// Gzips the layer tar in blob `d` (decompressing it first if it is
/// bzip2 or xz) into a new blob.
fn compress(blobs: &BlobStore, d: &Digest) -> Result<Blob> {
    let f = File::open(blobs.path(d)).map_err(io_err(format!("cannot open blob {d}")))?;
    let (_, tar) = berth_layers::decompress(io::BufReader::new(f))?;
    let gz = berth_layers::GzipEncoder::new(tar);
    let (digest, size) = blobs.ingest(gz, None)?;
    Ok(Blob {
        digest,
        size,
        media_type: MT_LAYER_GZIP.to_string(),
    })
}

/// Counts the bytes of an upload and reports them now and then.
struct Counted<'a, R> {
    inner: R,
    current: u64,
    reported: u64,
    step: u64,
    report: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.current += n as u64;
        if self.current - self.reported >= self.step {
            self.reported = self.current;
            (self.report)(self.current);
        }
        Ok(n)
    }
}

/// Pushes one layer: its blob (made now if need be), HEAD, a mount or an
/// upload. A blob compressed now is removed again if the push of it fails
/// (it is recorded only after a whole push).
fn push_layer(
    blobs: &BlobStore,
    client: &Client,
    ep: &Endpoint,
    job: &Job,
    progress: &(dyn Fn(PushEvent) + Sync),
) -> Result<(Blob, bool)> {
    let (blob, made) = layer_blob(blobs, job)?;
    match send_layer(blobs, client, ep, job, &blob, progress) {
        Ok(()) => Ok((blob, made)),
        Err(e) => {
            if made && job.row.blob.as_ref() != Some(&blob.digest) {
                let _ = blobs.remove(&blob.digest);
            }
            Err(e)
        }
    }
}

/// The blob layer `job` goes up as, and whether it was made (or first
/// found compressed) now, to be recorded.
fn layer_blob(blobs: &BlobStore, job: &Job) -> Result<(Blob, bool)> {
    Ok(match &job.known {
        Some(b) => (b.clone(), false),
        None => {
            let stored = job.row.blob.as_ref().ok_or_else(|| {
                EngineError::Layer(berth_layers::LayerError::Io {
                    context: format!("layer {} has no stored tarball", job.row.diff_id),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
            })?;
            match as_stored(blobs, stored)? {
                Some(b) => (b, true),
                None => (compress(blobs, stored)?, true),
            }
        }
    })
}

/// HEAD, then a mount or an upload of `blob`.
fn send_layer(
    blobs: &BlobStore,
    client: &Client,
    ep: &Endpoint,
    job: &Job,
    blob: &Blob,
    progress: &(dyn Fn(PushEvent) + Sync),
) -> Result<()> {
    let id = short(&job.row.diff_id);
    let say = |status| {
        progress(PushEvent {
            id: id.clone(),
            status,
        })
    };
    if client.blob_exists(ep, &blob.digest).map_err(registry_err)? {
        say(PushStatus::AlreadyExists);
        return Ok(());
    }
    let mut upload = None;
    for from in &job.sources {
        match client.mount_blob(ep, &blob.digest, from) {
            Ok(Mount::Mounted) => {
                say(PushStatus::MountedFrom(from.clone()));
                return Ok(());
            }
            Ok(Mount::Upload(url)) => {
                upload = Some(url);
                break;
            }
            // A mount is an optimisation: an upload still does.
            Err(_) => {}
        }
    }
    let upload = match upload {
        Some(u) => u,
        None => client.start_upload(ep).map_err(registry_err)?,
    };
    let total = blob.size;
    let path = blobs.path(&blob.digest);
    let report = |current| {
        say(PushStatus::Pushing { current, total });
    };
    let open = || -> io::Result<Box<dyn Read + '_>> {
        let f = File::open(&path)?;
        Ok(Box::new(Counted {
            inner: f,
            current: 0,
            reported: 0,
            step: (total / 50).max(512 << 10),
            report: &report,
        }))
    };
    client
        .finish_upload(ep, &upload, &blob.digest, total, &open)
        .map_err(registry_err)?;
    say(PushStatus::Pushed);
    Ok(())
}

impl Engine {
    /// The local tags of `repository` (`push -a`), sorted.
    pub fn local_tags(&self, repository: &Reference) -> Result<Vec<String>> {
        let prefix = format!("{}:", repository.repository());
        let mut tags: Vec<String> = self
            .store
            .read()
            .all_tags()?
            .into_iter()
            .filter_map(|(r, _)| r.strip_prefix(&prefix).map(str::to_string))
            .filter(|t| !t.contains('/'))
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// `push NAME[:TAG]`: the image the tag names to its registry.
    pub fn push(
        &mut self,
        reference: &Reference,
        opts: &PushOptions,
        progress: &(dyn Fn(PushEvent) + Sync),
    ) -> Result<Pushed> {
        let tag = reference.tag().unwrap_or("latest").to_string();
        let repository = reference.repository();
        let full = format!("{repository}:{tag}");
        let id = self
            .store
            .read()
            .tag(&full)?
            .ok_or_else(|| EngineError::NoLocalTag(reference.familiar_repository()))?;
        let image = self
            .store
            .read()
            .image(&id)?
            .ok_or_else(|| EngineError::NoSuchImage(id.to_string()))?;
        let ep = opts.settings.push_endpoint(reference);
        let auth = opts
            .auth
            .clone()
            .unwrap_or_else(|| Arc::new(berth_registry::auth::Anonymous));
        // The registry's certificates (certs.d) as a pull would use them.
        let client = opts
            .settings
            .client(&ep, auth, berth_registry::RetryPolicy::default())
            .map_err(registry_err)?;

        let lock = BlobLock::open(&self.opts.root)?;
        lock.shared()?;

        // What is known of each layer, read before any work.
        let mut jobs = Vec::new();
        {
            let t = self.store.read();
            for chain in &image.layers {
                let row = t.layer(chain)?.ok_or_else(|| {
                    EngineError::NoSuchImage(format!("layer {chain} of image {id}"))
                })?;
                let known = t
                    .compressed_blob(&row.diff_id)?
                    .filter(|c| self.blobs.contains(&c.blob))
                    .map(|c| Blob {
                        digest: c.blob,
                        size: c.size,
                        media_type: c.media_type,
                    });
                let candidate = known.as_ref().map(|b| &b.digest).or(row.blob.as_ref());
                let sources = match candidate {
                    Some(b) => t
                        .blob_sources(b, &ep.registry)?
                        .into_iter()
                        .filter(|r| *r != ep.repository)
                        .collect(),
                    None => Vec::new(),
                };
                jobs.push(Job {
                    row,
                    known,
                    sources,
                });
            }
        }

        // Docker lists a push's layers top first.
        let workers = opts.concurrent_uploads.max(1);
        for job in jobs.iter().rev() {
            progress(PushEvent {
                id: short(&job.row.diff_id),
                status: PushStatus::Preparing,
            });
        }
        for job in jobs.iter().rev().skip(workers) {
            progress(PushEvent {
                id: short(&job.row.diff_id),
                status: PushStatus::Waiting,
            });
        }
        let queue = Mutex::new((0..jobs.len()).rev().collect::<VecDeque<usize>>());
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Result<Done>>> = Mutex::new(Vec::new());
        let blobs = &self.blobs;
        std::thread::scope(|s| {
            for _ in 0..workers.min(jobs.len()) {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(i) = next else { return };
                    let r =
                        push_layer(blobs, &client, &ep, &jobs[i], progress).map(|(blob, made)| {
                            Done {
                                index: i,
                                blob,
                                made,
                            }
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
        let mut done = Vec::new();
        let mut first_err = None;
        for r in results.into_inner().unwrap_or_default() {
            match r {
                Ok(d) => done.push(d),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_none() && done.len() != jobs.len() {
            first_err = Some(EngineError::Registry(RegistryError::Protocol(
                "a layer upload stopped without a result".into(),
            )));
        }
        if let Some(e) = first_err {
            // Blobs compressed now stay only if recorded: drop them.
            for d in done.iter().filter(|d| d.made) {
                let stored = jobs[d.index].row.blob.as_ref();
                if stored != Some(&d.blob.digest)
                    && !self.store.read().layer_with_blob(&d.blob.digest)?
                {
                    let _ = self.blobs.remove(&d.blob.digest);
                }
            }
            return Err(e);
        }
        done.sort_by_key(|d| d.index);

        // The config, then the manifest under the tag.
        let config = Blob {
            digest: id.clone(),
            size: image.config.len() as u64,
            media_type: MT_DOCKER_CONFIG.to_string(),
        };
        if !client.blob_exists(&ep, &id).map_err(registry_err)? {
            let bytes = image.config.clone();
            let open = move || -> io::Result<Box<dyn Read>> {
                Ok(Box::new(io::Cursor::new(bytes.clone())))
            };
            client
                .upload_blob(&ep, &id, config.size, &open)
                .map_err(registry_err)?;
        }
        let layers: Vec<Blob> = done.iter().map(|d| d.blob.clone()).collect();
        let bytes = manifest_bytes(&config, &layers)?;
        let digest = client
            .put_manifest(&ep, &tag, MT_DOCKER_MANIFEST, &bytes)
            .map_err(registry_err)?;

        self.store.transaction(|t| -> Result<()> {
            for d in &done {
                if d.made {
                    t.set_compressed_blob(
                        &jobs[d.index].row.diff_id,
                        &CompressedBlob {
                            blob: d.blob.digest.clone(),
                            size: d.blob.size,
                            media_type: d.blob.media_type.clone(),
                        },
                    )?;
                }
                t.add_blob_source(&d.blob.digest, &ep.registry, &ep.repository)?;
            }
            t.add_blob_source(&id, &ep.registry, &ep.repository)?;
            if t.image(&id)?.is_some() {
                t.set_repo_digest(&repository, &digest, &id)?;
            }
            Ok(())
        })?;
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("name".to_string(), reference.familiar_repository());
        self.emit("image", "push", &reference.familiar(), attrs);
        Ok(Pushed {
            tag,
            digest,
            size: bytes.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_written_as_docker_writes_it() {
        let d = Digest::of_bytes(b"x");
        let config = Blob {
            digest: d.clone(),
            size: 7,
            media_type: MT_DOCKER_CONFIG.into(),
        };
        let layer = Blob {
            digest: d.clone(),
            size: 9,
            media_type: MT_LAYER_GZIP.into(),
        };
        let text = String::from_utf8(manifest_bytes(&config, &[layer]).unwrap()).unwrap();
        let want = format!(
            "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{MT_DOCKER_MANIFEST}\",\n   \"config\": {{\n      \"mediaType\": \"{MT_DOCKER_CONFIG}\",\n      \"size\": 7,\n      \"digest\": \"{d}\"\n   }},\n   \"layers\": [\n      {{\n         \"mediaType\": \"{MT_LAYER_GZIP}\",\n         \"size\": 9,\n         \"digest\": \"{d}\"\n      }}\n   ]\n}}"
        );
        assert_eq!(text, want);
    }
}
