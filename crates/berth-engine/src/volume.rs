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

fn valid_volume_name(n: &str) -> bool {
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
            labels: serde_json::from_str(&r.labels).unwrap_or(serde_json::Value::Null),
            scope: "local".into(),
            options: serde_json::Value::Null,
        }
    }

    /// Creates the volume if it does not exist; returns its data directory.
    pub(crate) fn ensure_volume(&mut self, name: &str) -> Result<PathBuf> {
        if self.store.read().volume(name)?.is_none() {
            match self.create_volume(Some(name)) {
                Ok(_) | Err(EngineError::Store(berth_store::StoreError::VolumeExists(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.volume_data(name))
    }

    /// `volume create [NAME]`
    pub fn create_volume(&mut self, name: Option<&str>) -> Result<VolumeView> {
        let name = match name {
            Some(n) => n.to_string(),
            None => hex::encode(crate::random_bytes()),
        };
        if !valid_volume_name(&name) {
            return Err(EngineError::InvalidArgument(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
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
            labels: "{}".into(),
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

    /// `volume rm [-f]`: refuses while a container uses it.
    pub fn remove_volume(&mut self, name: &str, force: bool) -> Result<()> {
        self.volume(name)?;
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
        if !users.is_empty() && !force {
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
