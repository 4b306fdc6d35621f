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

/// A volume row's labels or options: the map its creator sent, empty or
/// not, or `null` for none.
fn map_or_none(m: Option<&std::collections::BTreeMap<String, String>>) -> String {
    match m {
        Some(m) => serde_json::to_string(m).unwrap_or_else(|_| "{}".into()),
        None => "null".into(),
    }
}

/// An empty map as none at all: what the docker CLI (28) sends for
/// `volume create` without `--label` or `-o`, and what a container's
/// volume gets.
fn given(
    m: &std::collections::BTreeMap<String, String>,
) -> Option<&std::collections::BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

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
            // RFC 3339 to the second, as Docker shows it.
            created_at: chrono::DateTime::parse_from_rfc3339(&r.created)
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                })
                .unwrap_or(r.created),
            // `{}` or `null`, as its creator sent it (`create_volume_given`).
            labels: match serde_json::from_str(&r.labels) {
                Ok(serde_json::Value::Object(m)) => serde_json::Value::Object(m),
                _ => serde_json::Value::Null,
            },
            scope: "local".into(),
            options: match serde_json::from_str(&r.options) {
                Ok(serde_json::Value::Object(m)) => serde_json::Value::Object(m),
                _ => serde_json::Value::Null,
            },
        }
    }

    /// What a container mounts for the volume `name`: its directory, or
    /// what its local-driver options describe.
    pub(crate) fn volume_source(&self, name: &str) -> Result<VolumeSource> {
        let opts: std::collections::BTreeMap<String, String> =
            match self.store.read().volume(name)? {
                Some(r) => serde_json::from_str(&r.options).unwrap_or_default(),
                None => Default::default(),
            };
        Ok(VolumeSource::of(&opts).unwrap_or_else(|| VolumeSource::Dir(self.volume_data(name))))
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
        self.ensure_volume_full(name, anonymous, labels, "", &Default::default())
    }

    /// Likewise, with a driver (`local` or empty) and its options
    /// (`--mount …,volume-driver=,volume-opt=`), for a new volume.
    pub(crate) fn ensure_volume_full(
        &mut self,
        name: &str,
        anonymous: bool,
        labels: &std::collections::BTreeMap<String, String>,
        driver: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<PathBuf> {
        if self.store.read().volume(name)?.is_none() {
            let mut labels = labels.clone();
            if anonymous {
                labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
            }
            let driver = if driver.is_empty() { "local" } else { driver };
            match self.create_volume_opts(Some(name), driver, &labels, options) {
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
        self.create_volume_opts(name, driver, labels, &std::collections::BTreeMap::new())
    }

    /// `volume create [-d local] [--label K=V]... [-o KEY=VALUE]... [NAME]`:
    /// the local driver's options (`type`, `device`, `o`), checked as
    /// Docker's driver checks them; the file system is mounted for each
    /// container that uses the volume (see [`VolumeSource`]).
    pub fn create_volume_opts(
        &mut self,
        name: Option<&str>,
        driver: &str,
        labels: &std::collections::BTreeMap<String, String>,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<VolumeView> {
        self.create_volume_given(name, driver, given(labels), given(options))
    }

    /// A volume with the labels and options its creator sent: dockerd
    /// keeps them as they came, so its inspect shows `{}` for an empty map
    /// (the docker CLI 20.10 sends them) and `null` for none (the docker
    /// CLI 28, a raw request without them, a container's volume).
    pub fn create_volume_given(
        &mut self,
        name: Option<&str>,
        driver: &str,
        labels: Option<&std::collections::BTreeMap<String, String>>,
        options: Option<&std::collections::BTreeMap<String, String>>,
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
        check_local_options(options.unwrap_or(&Default::default()))
            .map_err(|e| EngineError::InvalidArgument(format!("create {name}: {e}")))?;
        let data = self.volume_data(&name);
        std::fs::create_dir_all(&data).map_err(io_ctx(format!("creating {}", data.display())))?;
        let row = VolumeRow {
            name: name.clone(),
            created: now_rfc3339(),
            labels: map_or_none(labels),
            options: map_or_none(options),
        };
        self.store.transaction(|t| t.insert_volume(&row))?;
        self.emit_volume("create", &name);
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
        self.emit_volume("destroy", name);
        Ok(())
    }
}

/// The local driver's options, as Docker's checks them at `volume create`:
/// only `type`, `device`, `o` (and `size`, which needs quota support berth
/// does not have); `type` and `device` together.
fn check_local_options(
    o: &std::collections::BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    for k in o.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
            return Err(format!("invalid option: {k:?}"));
        }
    }
    if o.contains_key("size") {
        return Err("quota size requested but no quota support".into());
    }
    if o.is_empty() {
        return Ok(());
    }
    if !o.contains_key("device") {
        return Err("missing required option: \"device\"".into());
    }
    if !o.contains_key("type") {
        return Err("missing required option: \"type\"".into());
    }
    Ok(())
}

/// What a container mounts for a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VolumeSource {
    /// `<root>/volumes/<name>/_data`.
    Dir(PathBuf),
    /// `-o type=none -o o=bind -o device=PATH`: a bind of PATH (`rbind`:
    /// with its submounts).
    Bind {
        path: PathBuf,
        recursive: bool,
        readonly: bool,
    },
    /// `-o type=T -o device=D [-o o=OPTS]`: a file system mounted for the
    /// container (made in the host's namespaces, so an `nfs` server is
    /// reached over the host's network).
    Fs {
        fstype: String,
        device: String,
        options: String,
    },
}

impl VolumeSource {
    fn of(o: &std::collections::BTreeMap<String, String>) -> Option<VolumeSource> {
        let fstype = o.get("type")?;
        let device = o.get("device")?;
        let opts = o.get("o").cloned().unwrap_or_default();
        let words: Vec<&str> = opts.split(',').filter(|w| !w.is_empty()).collect();
        let bind = words.iter().any(|w| *w == "bind" || *w == "rbind");
        if bind {
            return Some(VolumeSource::Bind {
                path: PathBuf::from(device),
                recursive: words.contains(&"rbind"),
                readonly: words.contains(&"ro"),
            });
        }
        Some(VolumeSource::Fs {
            fstype: fstype.clone(),
            device: device.clone(),
            options: opts,
        })
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn local_options_are_checked_as_dockers() {
        assert_eq!(
            check_local_options(&opts(&[("foo", "bar")])).unwrap_err(),
            "invalid option: \"foo\""
        );
        assert_eq!(
            check_local_options(&opts(&[("type", "tmpfs")])).unwrap_err(),
            "missing required option: \"device\""
        );
        assert_eq!(
            check_local_options(&opts(&[("o", "size=1m")])).unwrap_err(),
            "missing required option: \"device\""
        );
        assert_eq!(
            check_local_options(&opts(&[("device", "/tmp")])).unwrap_err(),
            "missing required option: \"type\""
        );
        assert_eq!(
            check_local_options(&opts(&[("size", "1m")])).unwrap_err(),
            "quota size requested but no quota support"
        );
        assert!(check_local_options(&opts(&[])).is_ok());
        assert!(check_local_options(&opts(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
    }

    #[test]
    fn sources() {
        assert_eq!(
            VolumeSource::of(&opts(&[
                ("type", "none"),
                ("device", "/srv"),
                ("o", "rbind,ro")
            ])),
            Some(VolumeSource::Bind {
                path: "/srv".into(),
                recursive: true,
                readonly: true
            })
        );
        assert_eq!(
            VolumeSource::of(&opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=1m")
            ])),
            Some(VolumeSource::Fs {
                fstype: "tmpfs".into(),
                device: "tmpfs".into(),
                options: "size=1m".into()
            })
        );
        assert_eq!(VolumeSource::of(&opts(&[])), None);
    }
}
