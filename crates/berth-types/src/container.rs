//! What `create` records about a container, in Docker's vocabulary and with
//! Docker's JSON field names so `inspect` can show it as Docker does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Config` in `docker inspect`: how the process is run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub image: String,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// The image's `VOLUME`s (as Docker merges them into the container's
    /// config); the anonymous `-v` destinations are added at inspect.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped` or `on-failure`.
    pub name: String,
    pub maximum_retry_count: u32,
}

impl RestartPolicy {
    /// Parses `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let maximum_retry_count = match count {
            None => 0,
            Some(c) if name == "on-failure" => c
                .parse::<u32>()
                .map_err(|_| format!("invalid restart policy count {c:?}"))?,
            Some(_) => {
                return Err(format!(
                    "maximum retry count cannot be used with restart policy '{name}'"
                ))
            }
        };
        match name {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(RestartPolicy {
                name: if name.is_empty() {
                    "no".into()
                } else {
                    name.into()
                },
                maximum_retry_count,
            }),
            _ => Err(format!("invalid restart policy '{name}'")),
        }
    }
    pub fn is_none(&self) -> bool {
        self.name.is_empty() || self.name == "no"
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: BTreeMap<String, String>,
}

/// One `-v` / `--tmpfs` mount as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume name for `volume` mounts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Host path (bind, or the volume's `_data` directory).
    pub source: String,
    pub destination: String,
    #[serde(default)]
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

/// `HostConfig` in `docker inspect`: how the host runs the container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    pub binds: Vec<String>,
    pub network_mode: String,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub readonly_rootfs: bool,
    pub init: bool,
    pub tmpfs: BTreeMap<String, String>,
    pub log_config: LogConfig,
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// `--cap-add`, normalised (`CAP_NET_ADMIN`, `ALL`); null when none.
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    /// `--cap-drop`, normalised; null when none.
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    #[serde(default)]
    pub privileged: bool,
    /// `--security-opt` as Docker records them (`seccomp=` carries the
    /// profile's compact JSON; `systempaths=` is recorded as the two lists
    /// below instead); null when none.
    #[serde(default)]
    pub security_opt: Option<Vec<String>>,
    /// Paths masked in the container; empty with `systempaths=unconfined`
    /// or `--privileged`.
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only in the container; likewise.
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(RestartPolicy::parse("no").unwrap().name, "no");
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 3));
        assert!(RestartPolicy::parse("always:3").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }
}
