//! Named volumes: directories under `<root>/volumes/<name>/_data`.

use std::path::PathBuf;

use berth_store::VolumeRow;
use serde::Serialize;

use crate::{io_ctx, now_rfc3339, Engine, EngineError, Result};

/// A volume as `volume inspect` shows it: Docker's keys, in Docker's order.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeView {
    pub created_at: String,
    pub driver: String,
    pub labels: serde_json::Value,
    pub mountpoint: PathBuf,
    pub name: String,
    pub options: serde_json::Value,
    pub scope: String,
}

impl Engine {
    /// Docker's `SizeRw` and `SizeRootFs` of a container: the bytes its
    /// writable layer holds, and those plus its image's.
    pub fn container_size(&self, v: &crate::ContainerView) -> Result<(u64, u64)> {
        let rw = berth_layers::dir_size(&v.dir.join("upper"));
        let image = self
            .store
            .read()
            .image(&v.image_id)?
            .map_or(0, |row| row.size);
        Ok((rw, rw + image))
    }
}

/// Docker's label on a volume made for a bare `-v /path`.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

pub(crate) fn valid_volume_name(n: &str) -> bool {
    n.len() >= 2
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl Engine {
    fn volume_data(&self, name: &str) -> PathBuf {
        self.opts.root.join("volumes").join(name).join("_data")
    }

    fn volume_view(&self, r: VolumeRow) -> VolumeView {
        VolumeView {
            mountpoint: self.volume_data(&r.name),
            name: r.name,
            driver: "local".into(),
            created_at: r.created,
            // Docker shows a volume without labels as `"Labels": null`.
            labels: match serde_json::from_str(&r.labels) {
                Ok(serde_json::Value::Object(m)) if !m.is_empty() => serde_json::Value::Object(m),
                _ => serde_json::Value::Null,
            },
            scope: "local".into(),
            options: serde_json::Value::Null,
        }
    }

    /// Creates the volume if it does not exist; returns its data directory.
    /// `anonymous` marks one made for a bare `-v /path` (Docker's label
    /// `com.docker.volume.anonymous`: what `volume prune` takes without -a).
    pub(crate) fn ensure_volume(&mut self, name: &str, anonymous: bool) -> Result<PathBuf> {
        self.ensure_volume_labeled(name, anonymous, &std::collections::BTreeMap::new())
    }

    /// Likewise, a new volume getting `labels` (`--mount …,volume-label=`;
    /// an existing one keeps its own, as Docker's).
    pub(crate) fn ensure_volume_labeled(
        &mut self,
        name: &str,
        anonymous: bool,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<PathBuf> {
        if self.store.read().volume(name)?.is_none() {
            let mut labels = labels.clone();
            if anonymous {
                labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
            }
            match self.create_volume_with(Some(name), "local", &labels) {
                Ok(_) | Err(EngineError::Store(berth_store::StoreError::VolumeExists(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.volume_data(name))
    }

    /// `volume create [NAME]`
    pub fn create_volume(&mut self, name: Option<&str>) -> Result<VolumeView> {
        self.create_volume_with(name, "local", &std::collections::BTreeMap::new())
    }

    /// `volume create [-d DRIVER] [--label K=V]... [NAME]`: the `local`
    /// driver only.
    pub fn create_volume_with(
        &mut self,
        name: Option<&str>,
        driver: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<VolumeView> {
        if driver != "local" {
            return Err(EngineError::InvalidArgument(format!(
                "create {}: error looking up volume plugin {driver}: plugin \"{driver}\" not found",
                name.unwrap_or("")
            )));
        }
        let name = match name {
            Some(n) => n.to_string(),
            None => hex::encode(crate::random_bytes()),
        };
        if !valid_volume_name(&name) {
            return Err(EngineError::InvalidArgument(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        if let Some(r) = self.store.read().volume(&name)? {
            return Ok(self.volume_view(r));
        }
        let data = self.volume_data(&name);
        std::fs::create_dir_all(&data).map_err(io_ctx(format!("creating {}", data.display())))?;
        let row = VolumeRow {
            name: name.clone(),
            created: now_rfc3339(),
            labels: serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()),
        };
        self.store.transaction(|t| t.insert_volume(&row))?;
        Ok(self.volume_view(row))
    }

    pub fn volumes(&self) -> Result<Vec<VolumeView>> {
        Ok(self
            .store
            .read()
            .volumes()?
            .into_iter()
            .map(|r| self.volume_view(r))
            .collect())
    }

    pub fn volume(&self, name: &str) -> Result<VolumeView> {
        self.store
            .read()
            .volume(name)?
            .map(|r| self.volume_view(r))
            .ok_or_else(|| EngineError::NoSuchVolume(name.to_string()))
    }

    /// The volumes any container (running or not) mounts.
    fn volumes_in_use(&self) -> Result<std::collections::BTreeSet<String>> {
        Ok(self
            .containers()?
            .into_iter()
            .flat_map(|c| {
                c.host_config
                    .mounts
                    .iter()
                    .filter(|m| m.kind == "volume")
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// `volume ls --filter`: `dangling=true|false`, `name=` (a substring, as
    /// Docker's), `label=K` / `label=K=V`, `driver=`. Docker's errors.
    pub fn volumes_filtered(&self, f: &crate::filters::Filters) -> Result<Vec<VolumeView>> {
        f.check_keys(&["dangling", "name", "label", "driver"])?;
        let dangling = match f.get("dangling") {
            [] => None,
            [v] => Some(match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(EngineError::InvalidArgument(format!(
                        "Invalid filter 'dangling={v}'"
                    )))
                }
            }),
            _ => None,
        };
        let used = self.volumes_in_use()?;
        Ok(self
            .volumes()?
            .into_iter()
            .filter(|v| dangling.is_none_or(|d| d != used.contains(&v.name)))
            .filter(|v| {
                let names = f.get("name");
                names.is_empty() || names.iter().any(|n| v.name.contains(n.as_str()))
            })
            .filter(|v| {
                let drivers = f.get("driver");
                drivers.is_empty() || drivers.contains(&v.driver)
            })
            .filter(|v| {
                f.get("label").iter().all(|l| {
                    let (k, want) = match l.split_once('=') {
                        Some((k, w)) => (k, Some(w)),
                        None => (l.as_str(), None),
                    };
                    match v.labels.get(k) {
                        Some(val) => want.is_none_or(|w| val.as_str() == Some(w)),
                        None => false,
                    }
                })
            })
            .collect())
    }

    /// `volume rm [-f]`: refuses while a container uses it.
    /// `volume rm [-f] NAME`: a volume a container uses is refused, `-f`
    /// or not (as Docker's); `-f` only makes a missing one no error.
    pub fn remove_volume(&mut self, name: &str, force: bool) -> Result<()> {
        match self.volume(name) {
            Err(EngineError::NoSuchVolume(_)) if force => return Ok(()),
            r => r?,
        };
        let users: Vec<String> = self
            .containers()?
            .into_iter()
            .filter(|c| {
                c.host_config
                    .mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|c| c.id.to_string())
            .collect();
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.store.transaction(|t| t.delete_volume(name))?;
        let _ = std::fs::remove_dir_all(self.opts.root.join("volumes").join(name));
        Ok(())
    }
}
