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
    /// `--health-*` merged over the image's `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// The image's `EXPOSE`s, `--expose`s and `-p`'s container ports
    /// (`80/tcp` → `{}`), as Docker merges them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
}

/// Docker's `HealthConfig` (the image's `HEALTHCHECK`, the container's
/// `--health-*`): durations in nanoseconds, zero meaning "the default" (or
/// "inherit" when merged over an image's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", args...]`,
    /// `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub retries: i64,
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

impl Healthcheck {
    /// Docker's merge of a container's healthcheck over its image's: an
    /// empty test and zero durations and retries are taken from the image.
    pub fn merged_over(&self, image: &Healthcheck) -> Healthcheck {
        let pick = |mine: i64, theirs: i64| if mine == 0 { theirs } else { mine };
        Healthcheck {
            test: if self.test.is_empty() {
                image.test.clone()
            } else {
                self.test.clone()
            },
            interval: pick(self.interval, image.interval),
            timeout: pick(self.timeout, image.timeout),
            start_period: pick(self.start_period, image.start_period),
            start_interval: pick(self.start_interval, image.start_interval),
            retries: pick(self.retries, image.retries),
        }
    }

    /// Whether a probe runs: a `CMD` or `CMD-SHELL` test (`NONE`, an empty
    /// test and unknown kinds run nothing, as Docker's).
    pub fn is_active(&self) -> bool {
        matches!(
            self.test.first().map(String::as_str),
            Some("CMD" | "CMD-SHELL")
        ) && self.test.len() > 1
    }
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

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A `--mount` as Docker's `HostConfig.Mounts` records it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// `BindOptions` of a `--mount type=bind`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    /// `bind-recursive=disabled`: no submounts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub non_recursive: bool,
    /// `bind-recursive=writable`: submounts stay writable.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only_non_recursive: bool,
    /// `bind-recursive=readonly`: read-only all the way down, or fail.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only_force_recursive: bool,
}

/// `VolumeOptions` of a `--mount type=volume`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_copy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The volume's driver and options (`{}`: the local driver, none).
    #[serde(default)]
    pub driver_config: DriverConfig,
}

/// A volume's driver configuration (`--mount …,volume-driver=,volume-opt=`):
/// `{}` when neither is given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DriverConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `TmpfsOptions` of a `--mount type=tmpfs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size_bytes: u64,
    /// The permission bits (`tmpfs-mode=1700` is 960).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mode: u64,
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
    /// The `--mount`s as given (Docker's `HostConfig.Mounts`); the mounts
    /// they make are in `mounts` with the `-v` ones.
    #[serde(default, rename = "MountSpecs", skip_serializing_if = "Vec::is_empty")]
    pub mount_specs: Vec<MountSpec>,
    /// `--volumes-from CONTAINER[:MODE]` as given; null when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<Vec<String>>,
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
    /// `--group-add`; null when none.
    #[serde(default)]
    pub group_add: Option<Vec<String>>,
    /// `--pid`: "" (its own) or "host".
    #[serde(default)]
    pub pid_mode: String,
    /// `--ipc`: "private" (Docker's default here), "shareable" or "host".
    #[serde(default)]
    pub ipc_mode: String,
    /// `--uts`: "" or "host".
    #[serde(default)]
    pub uts_mode: String,
    /// `--cgroupns`: "private" or "host".
    #[serde(default)]
    pub cgroupns_mode: String,
    /// `--userns`: "" or "host" (berth has no user namespaces yet).
    #[serde(default)]
    pub userns_mode: String,
    /// `--sysctl`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `--runtime` as given; empty is Docker's default (`runc`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// `-p`: container port (`80/tcp`) → its host sides.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, Vec<crate::PortBinding>>,
    /// `-P`: every exposed port on a free host port.
    #[serde(default)]
    pub publish_all_ports: bool,
    /// `--dns`, `--dns-search`, `--dns-option`; null when none.
    #[serde(default)]
    pub dns: Option<Vec<String>>,
    #[serde(default)]
    pub dns_search: Option<Vec<String>>,
    #[serde(default)]
    pub dns_options: Option<Vec<String>>,
    /// `--add-host HOST:IP`; null when none.
    #[serde(default)]
    pub extra_hosts: Option<Vec<String>>,
    /// The networks the container joins when it starts, by name (Docker's
    /// `NetworkSettings.Networks` as a create records it): one for
    /// `--network bridge` or a user-defined network, more after
    /// `network connect`; none for host, none, or container:X.
    #[serde(default, rename = "BerthNetworks")]
    pub networks: BTreeMap<String, crate::EndpointConfig>,
    /// `--idle-timeout` in ns (berth's idle mode; 0: never idle). Not a
    /// Docker key: left out when unset.
    #[serde(
        default,
        rename = "BerthIdleTimeout",
        skip_serializing_if = "is_zero_i64"
    )]
    pub idle_timeout: i64,
    /// `--memory`, bytes (0: none).
    #[serde(default)]
    pub memory: i64,
    /// `--memory-swap`, bytes: memory plus swap (-1 unlimited, 0 none).
    #[serde(default)]
    pub memory_swap: i64,
    /// `--cpus` × 10⁹.
    #[serde(default)]
    pub nano_cpus: i64,
    /// `--cpu-shares`.
    #[serde(default)]
    pub cpu_shares: i64,
    /// `--pids-limit`; null when not set.
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// `--memory-reservation`, bytes (a soft limit).
    #[serde(default)]
    pub memory_reservation: i64,
    /// `--cpuset-cpus` (`0-1,3`), `--cpuset-mems`.
    #[serde(default)]
    pub cpuset_cpus: String,
    #[serde(default)]
    pub cpuset_mems: String,
    /// `--memory-swappiness` (0–100); null when not set.
    #[serde(default)]
    pub memory_swappiness: Option<i64>,
    #[serde(default)]
    pub oom_kill_disable: bool,
    #[serde(default)]
    pub oom_score_adj: i64,
    /// `--cpu-period`, `--cpu-quota`, µs (0: not set).
    #[serde(default)]
    pub cpu_period: i64,
    #[serde(default)]
    pub cpu_quota: i64,
    /// `--cpu-rt-period`, `--cpu-rt-runtime`, µs.
    #[serde(default)]
    pub cpu_realtime_period: i64,
    #[serde(default)]
    pub cpu_realtime_runtime: i64,
    /// `--blkio-weight` (10–1000; 0: not set, or discarded where the
    /// kernel has no weight, as Docker's).
    #[serde(default)]
    pub blkio_weight: u16,
    #[serde(default)]
    pub blkio_weight_device: Vec<WeightDevice>,
    #[serde(default, rename = "BlkioDeviceReadBps")]
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    #[serde(default, rename = "BlkioDeviceWriteBps")]
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    #[serde(default, rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    #[serde(default, rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size`, bytes (0: a container made before the field, 64 MiB).
    #[serde(default)]
    pub shm_size: i64,
    /// `--cgroup-parent` as given (empty: berth's own parent).
    #[serde(default)]
    pub cgroup_parent: String,
    #[serde(default)]
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`; null when none.
    #[serde(default)]
    pub device_cgroup_rules: Option<Vec<String>>,
}

/// `--blkio-weight-device PATH:WEIGHT`, as Docker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

/// `--device-read-bps PATH:RATE` and its kin, as Docker records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// `--ulimit NAME=SOFT[:HARD]`, as Docker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub hard: i64,
    pub soft: i64,
}

/// `--device HOST[:CONTAINER[:PERMISSIONS]]`, as Docker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
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
