//! Image verbs: import, list, tag, remove, inspect, and resolving a name.

use std::io::Read;

use berth_layers::{ApplyOptions, WhiteoutMode};
use berth_store::{ImageRow, LayerRow};
use berth_types::{host_architecture, History, ImageConfig, Reference, RootFs, RunConfig};
use serde::Serialize;

use crate::{now_rfc3339, ContainerView, Digest, Engine, EngineError, Result, Status};

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
        if let Err(e) = berth_layers::commit_temp(&tmp, &final_dir) {
            let _ = berth_layers::remove_layer_dir(&tmp);
            return Err(e.into());
        }
        let created = now_rfc3339();
        let config = ImageConfig {
            architecture: host_architecture().to_string(),
            os: "linux".to_string(),
            created: Some(created.clone()),
            author: None,
            config: RunConfig::default(),
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
            extra: Default::default(),
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
        Ok(id)
    }

    /// Resolves what a user typed (a reference, a full or short image ID).
    pub fn resolve_image(&self, what: &str) -> Result<ImageRow> {
        let t = self.store.read();
        if let Ok(r) = Reference::parse(what) {
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
        })
    }

    /// `rmi [-f] IMAGE`, with Docker's rules: by reference it untags (and
    /// deletes the image with its last tag); a running container blocks a
    /// delete even when forced, a stopped one only when not forced. Layers
    /// a container still stands on stay until that container is removed.
    pub fn remove_image(&mut self, what: &str, force: bool) -> Result<Vec<RemovedImage>> {
        let row = self.resolve_image(what)?;
        let by_reference = Reference::parse(what).ok().filter(|r| {
            self.store
                .read()
                .tag(&r.to_string())
                .ok()
                .flatten()
                .as_ref()
                == Some(&row.id)
        });
        let users: Vec<ContainerView> = self
            .containers()?
            .into_iter()
            .filter(|c| c.image_id == row.id)
            .collect();
        let running = users
            .iter()
            .find(|c| matches!(c.state.status, Status::Running | Status::Restarting));
        let stopped = users
            .iter()
            .find(|c| !matches!(c.state.status, Status::Running | Status::Restarting));
        let tags = self.store.read().tags_of(&row.id)?;
        let untag = |engine: &mut Engine, r: &Reference| -> Result<Vec<RemovedImage>> {
            engine.store.transaction(|t| -> Result<()> {
                t.remove_tag(&r.to_string())?;
                Ok(())
            })?;
            Ok(vec![RemovedImage::Untagged(r.familiar())])
        };
        match &by_reference {
            Some(r) => {
                if tags.len() > 1 {
                    return untag(self, r);
                }
                if let Some(c) = running.or(stopped).filter(|_| !force || running.is_some()) {
                    if force {
                        // Forced while running: the tag goes, the image stays.
                        return untag(self, r);
                    }
                    return Err(EngineError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                        r.familiar(),
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
        if !self.store.read().children(&row.id)?.is_empty() {
            // Named by its last tag, Docker untags and keeps the image for
            // its children; named by ID, it refuses.
            if let Some(r) = &by_reference {
                return untag(self, r);
            }
            return Err(EngineError::Conflict(format!(
                "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                row.id.short()
            )));
        }
        self.store.transaction(|t| t.delete_image(&row.id))?;
        self.remove_unused_layers()?;
        let mut out: Vec<RemovedImage> = tags
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .map(|r| RemovedImage::Untagged(r.familiar()))
            .collect();
        out.push(RemovedImage::Deleted(row.id.clone()));
        Ok(out)
    }

    /// Deletes every layer that no image and no container stands on: the
    /// row first, then its directory (a crash in between leaves garbage
    /// that [`Engine::collect_garbage`] takes).
    pub(crate) fn remove_unused_layers(&mut self) -> Result<()> {
        let mut used: std::collections::HashSet<Digest> = std::collections::HashSet::new();
        for img in self.store.read().images()? {
            used.extend(img.layers);
        }
        for c in self.containers()? {
            used.extend(self.container_layers(&c));
        }
        let unused: Vec<Digest> = self
            .store
            .read()
            .layers()?
            .into_iter()
            .filter(|l| !used.contains(l))
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        let mut blobs = Vec::new();
        self.store.transaction(|t| -> Result<()> {
            for l in &unused {
                if let Some(b) = t.layer(l)?.and_then(|r| r.blob) {
                    blobs.push(b);
                }
                t.delete_layer(l)?;
            }
            Ok(())
        })?;
        for l in &unused {
            let _ = berth_layers::remove_layer_dir(&self.layer_dir(l));
        }
        for b in &blobs {
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

    /// `image inspect`, shaped as Docker's.
    pub fn inspect_image(&self, what: &str) -> Result<serde_json::Value> {
        let s = self.image_summary(what)?;
        let row = self.resolve_image(what)?;
        let raw: serde_json::Value = serde_json::from_slice(&row.config).unwrap_or_default();
        let layers: Vec<String> = s
            .config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| d.to_string())
            .collect();
        let lower: Vec<String> = self
            .lower_dirs(&row)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Ok(serde_json::json!({
            "Id": s.id.as_str(),
            "RepoTags": s.tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
            "RepoDigests": [],
            "Parent": s.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            "Comment": s.config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
            "Created": s.created,
            "Container": "",
            "DockerVersion": "",
            "Author": s.config.author.clone().unwrap_or_default(),
            "Config": raw.get("config").cloned().unwrap_or(serde_json::Value::Null),
            "Architecture": s.config.architecture,
            "Os": s.config.os,
            "Size": s.size,
            "VirtualSize": s.size,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": { "LowerDir": lower.join(":") }
            },
            "RootFS": { "Type": "layers", "Layers": layers },
            "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" }
        }))
    }
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
