//! `info` and `version`: what the engine is and holds, in the Docker Engine
//! API's JSON shape (`GET /info`, `GET /version`), which the CLI renders as
//! the docker CLI does and `berth serve` will answer with.

use serde_json::{json, Value};

use crate::{Engine, Result, Status};

/// The Engine API version berth speaks.
pub const API_VERSION: &str = "1.41";

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn os_release(key: &str) -> String {
    read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}

fn uname() -> (String, String, String) {
    let u = rustix::system::uname();
    (
        u.release().to_string_lossy().into_owned(),
        u.machine().to_string_lossy().into_owned(),
        u.nodename().to_string_lossy().into_owned(),
    )
}

/// Go's GOARCH for a kernel machine name.
fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i386" => "386",
        other => other,
    }
}

fn mem_total() -> u64 {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

impl Engine {
    /// `GET /info`: Docker's keys, with berth's values (no daemon, no swarm,
    /// the json-file log driver, berth's own runtime and init).
    pub fn info(&self) -> Result<Value> {
        let containers = self.containers()?;
        let paused = containers.iter().filter(|c| c.paused).count();
        let running = containers
            .iter()
            .filter(|c| matches!(c.state.status, Status::Running | Status::Restarting))
            .count()
            - paused;
        let images = self.images()?.len();
        let (kernel, machine, hostname) = uname();
        let cgroup_version = match berth_runtime::cgroups::detect() {
            Ok(berth_runtime::cgroups::Layout::Unified(_)) => "2",
            _ => "1",
        };
        let env = |k: &str| {
            std::env::var(k)
                .or_else(|_| std::env::var(k.to_lowercase()))
                .unwrap_or_default()
        };
        Ok(json!({
            "ID": self.engine_id(),
            "Containers": containers.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": containers.len() - running - paused,
            "Images": images,
            // Docker's name for layers on overlayfs (as `inspect`'s
            // `GraphDriver.Name`).
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "overlayfs layers"]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["host", "null"],
                "Authorization": null,
                "Log": ["json-file"],
            },
            "MemoryLimit": true,
            "SwapLimit": true,
            "KernelMemory": false,
            "KernelMemoryTCP": false,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": read("/proc/sys/net/ipv4/ip_forward").trim() == "1",
            "BridgeNfIptables": false,
            "BridgeNfIp6tables": false,
            "Debug": false,
            "NFd": std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
            "OomKillDisable": true,
            "NGoroutines": 0,
            "SystemTime": chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version,
            "NEventsListener": 0,
            "KernelVersion": kernel,
            "OperatingSystem": os_release("PRETTY_NAME"),
            "OSVersion": os_release("VERSION_ID"),
            "OSType": "linux",
            "Architecture": machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {},
                "Mirrors": [],
            },
            "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "MemTotal": mem_total(),
            "GenericResources": null,
            "DockerRootDir": self.opts.root,
            "HttpProxy": env("HTTP_PROXY"),
            "HttpsProxy": env("HTTPS_PROXY"),
            "NoProxy": env("NO_PROXY"),
            "Name": hostname,
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "Runtimes": {"berth": {"path": self.opts.monitor}},
            "DefaultRuntime": "berth",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": false,
                "Error": "",
                "RemoteManagers": null,
            },
            // Monitors keep containers running without any daemon.
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "berth-init",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"],
            "Warnings": null,
        }))
    }

    /// `GET /version` (the server part of `docker version`).
    pub fn version(&self) -> Value {
        let (kernel, machine, _) = uname();
        json!({
            "Platform": {"Name": "berth"},
            "Components": [{
                "Name": "Engine",
                "Version": env!("CARGO_PKG_VERSION"),
                "Details": {
                    "ApiVersion": API_VERSION,
                    "Arch": go_arch(&machine),
                    "Experimental": "false",
                    "KernelVersion": kernel,
                    "MinAPIVersion": "1.12",
                    "Os": "linux",
                },
            }],
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.12",
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": go_arch(&machine),
            "KernelVersion": kernel,
            "BuildTime": "",
        })
    }

    /// A stable ID for this store (Docker's `info` ID), made on first use.
    fn engine_id(&self) -> String {
        let path = self.opts.root.join("engine-id");
        if let Ok(id) = std::fs::read_to_string(&path) {
            return id.trim().to_string();
        }
        let id = uuid_like();
        let tmp = self
            .opts
            .root
            .join(format!("engine-id.tmp-{}", std::process::id()));
        if std::fs::write(&tmp, &id).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        // Another process may have won the race: its ID is the one.
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .unwrap_or(id)
    }
}

fn uuid_like() -> String {
    let b = crate::random_bytes();
    let h = hex::encode(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Docker's short `info` ID form is not needed: the API has the full one.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_are_gos() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_like();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
    }
}
