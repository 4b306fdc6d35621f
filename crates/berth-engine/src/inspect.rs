//! `inspect` of containers and images, shaped as Docker's: the same key
//! tree, in the same order, with `null` where Docker has null and empty
//! values where Docker has them (the shapes were taken from Docker 20.10).
//!
//! What berth records (berth-types) stays as it is on disk; this module
//! turns it into Docker's view, filling what berth does not support with
//! Docker's defaults.

use serde_json::{json, Map, Value};

use crate::{ContainerView, Engine, Result};

/// Docker's zero time, for times that never happened.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A list, or `null` when it is empty (Go's nil slice).
fn list_or_null<T: serde::Serialize>(v: &[T]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

/// A string field of `raw`, or `""`.
fn string_field(raw: &Map<String, Value>, key: &str) -> Value {
    match raw.get(key) {
        Some(Value::String(s)) => Value::String(s.clone()),
        _ => Value::String(String::new()),
    }
}

/// A boolean field of `raw`, or `false`.
fn bool_field(raw: &Map<String, Value>, key: &str) -> Value {
    Value::Bool(raw.get(key).and_then(Value::as_bool).unwrap_or(false))
}

/// A list field of `raw`, with an empty list as `null`.
fn nullable_list(raw: &Map<String, Value>, key: &str) -> Value {
    match raw.get(key) {
        Some(Value::Array(a)) if !a.is_empty() => Value::Array(a.clone()),
        _ => Value::Null,
    }
}

/// A map field of `raw`, with an empty map as `null`.
fn nullable_map(raw: &Map<String, Value>, key: &str) -> Value {
    match raw.get(key) {
        Some(Value::Object(m)) if !m.is_empty() => Value::Object(m.clone()),
        _ => Value::Null,
    }
}

/// Docker's `container.Config` (the `Config` of an image or a container and
/// an image's `ContainerConfig`) from the fields of `raw`, in Docker's key
/// order. The 17 keys Docker always shows are always there; the ones Docker
/// omits when empty are there only when `raw` has them.
pub(crate) fn docker_config(raw: &Map<String, Value>, labels_empty_map: bool) -> Value {
    let mut m = Map::new();
    m.insert("Hostname".into(), string_field(raw, "Hostname"));
    m.insert("Domainname".into(), string_field(raw, "Domainname"));
    m.insert("User".into(), string_field(raw, "User"));
    m.insert("AttachStdin".into(), bool_field(raw, "AttachStdin"));
    m.insert("AttachStdout".into(), bool_field(raw, "AttachStdout"));
    m.insert("AttachStderr".into(), bool_field(raw, "AttachStderr"));
    if let v @ Value::Object(_) = nullable_map(raw, "ExposedPorts") {
        m.insert("ExposedPorts".into(), v);
    }
    m.insert("Tty".into(), bool_field(raw, "Tty"));
    m.insert("OpenStdin".into(), bool_field(raw, "OpenStdin"));
    m.insert("StdinOnce".into(), bool_field(raw, "StdinOnce"));
    m.insert("Env".into(), nullable_list(raw, "Env"));
    m.insert("Cmd".into(), nullable_list(raw, "Cmd"));
    for k in ["Healthcheck", "ArgsEscaped"] {
        match raw.get(k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
        }
    }
    m.insert("Image".into(), string_field(raw, "Image"));
    m.insert("Volumes".into(), nullable_map(raw, "Volumes"));
    m.insert("WorkingDir".into(), string_field(raw, "WorkingDir"));
    m.insert("Entrypoint".into(), nullable_list(raw, "Entrypoint"));
    m.insert("OnBuild".into(), nullable_list(raw, "OnBuild"));
    // Labels as stored, even empty (a committed image's are the
    // container's `{}`); none stored is `null`, or `{}` for a container.
    let labels = match raw.get("Labels") {
        Some(Value::Object(l)) => Value::Object(l.clone()),
        _ if labels_empty_map => json!({}),
        _ => Value::Null,
    };
    m.insert("Labels".into(), labels);
    for k in ["StopSignal", "StopTimeout", "Shell"] {
        match raw.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
        }
    }
    Value::Object(m)
}

/// The `Networks` entry of a container's network (`none` or `host`).
fn endpoint() -> Value {
    json!({
        "IPAMConfig": null,
        "Links": null,
        "Aliases": null,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": null
    })
}

/// Whether a `-v` spec names a source (a bind or a named volume): only
/// those are in `HostConfig.Binds`; `-v /dst` makes an anonymous volume,
/// which Docker records in `Config.Volumes` instead.
fn has_source(spec: &str) -> bool {
    spec.contains(':')
}

/// The destination of a `-v` spec.
fn spec_destination(spec: &str) -> &str {
    let mut parts = spec.split(':');
    match (parts.next(), parts.next()) {
        (Some(_), Some(dst)) => dst,
        (Some(dst), None) => dst,
        _ => spec,
    }
}

/// `s`, or `default` when it is empty (a container made before the field).
fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

fn host_config(v: &ContainerView) -> Value {
    let h = &v.host_config;
    let binds: Vec<String> = h.binds.iter().filter(|b| has_source(b)).cloned().collect();
    let mut m = Map::new();
    let mut put = |k: &str, val: Value| {
        m.insert(k.to_string(), val);
    };
    put("Binds", list_or_null(&binds));
    put("ContainerIDFile", json!(""));
    put("LogConfig", json!(h.log_config));
    put("NetworkMode", json!(h.network_mode));
    put("PortBindings", json!(h.port_bindings));
    put("RestartPolicy", json!(h.restart_policy));
    put("AutoRemove", json!(h.auto_remove));
    put("VolumeDriver", json!(""));
    put("VolumesFrom", json!(h.volumes_from));
    put("CapAdd", json!(h.cap_add));
    put("CapDrop", json!(h.cap_drop));
    // berth's default is a cgroup namespace of the container's own.
    put("CgroupnsMode", json!(or(&h.cgroupns_mode, "private")));
    put("Dns", json!(h.dns.clone().unwrap_or_default()));
    put(
        "DnsOptions",
        json!(h.dns_options.clone().unwrap_or_default()),
    );
    put("DnsSearch", json!(h.dns_search.clone().unwrap_or_default()));
    put("ExtraHosts", json!(h.extra_hosts));
    put("GroupAdd", json!(h.group_add));
    put("IpcMode", json!(or(&h.ipc_mode, "private")));
    put("Cgroup", json!(""));
    put("Links", Value::Null);
    put("OomScoreAdj", json!(h.oom_score_adj));
    put("PidMode", json!(h.pid_mode));
    put("Privileged", json!(h.privileged));
    put("PublishAllPorts", json!(h.publish_all_ports));
    put("ReadonlyRootfs", json!(h.readonly_rootfs));
    put("SecurityOpt", json!(h.security_opt));
    if !h.tmpfs.is_empty() {
        put("Tmpfs", json!(h.tmpfs));
    }
    if !h.sysctls.is_empty() {
        put("Sysctls", json!(h.sysctls));
    }
    put("UTSMode", json!(h.uts_mode));
    put("UsernsMode", json!(h.userns_mode));
    // The size of the container's /dev/shm (64 MiB unless given).
    put(
        "ShmSize",
        json!(if h.shm_size > 0 {
            h.shm_size
        } else {
            crate::limits::DEFAULT_SHM_SIZE
        }),
    );
    put(
        "Runtime",
        json!(if h.runtime.is_empty() {
            crate::logdriver::DEFAULT_RUNTIME
        } else {
            h.runtime.as_str()
        }),
    );
    put("ConsoleSize", json!([0, 0]));
    put("Isolation", json!(""));
    put("CpuShares", json!(h.cpu_shares));
    put("Memory", json!(h.memory));
    put("NanoCpus", json!(h.nano_cpus));
    put("CgroupParent", json!(h.cgroup_parent));
    put("BlkioWeight", json!(h.blkio_weight));
    put("BlkioWeightDevice", json!(h.blkio_weight_device));
    // null when none, as the docker 20.10 CLI sends them (28's sends []).
    put("BlkioDeviceReadBps", list_or_null(&h.blkio_device_read_bps));
    put(
        "BlkioDeviceWriteBps",
        list_or_null(&h.blkio_device_write_bps),
    );
    put(
        "BlkioDeviceReadIOps",
        list_or_null(&h.blkio_device_read_iops),
    );
    put(
        "BlkioDeviceWriteIOps",
        list_or_null(&h.blkio_device_write_iops),
    );
    put("CpuPeriod", json!(h.cpu_period));
    put("CpuQuota", json!(h.cpu_quota));
    put("CpuRealtimePeriod", json!(h.cpu_realtime_period));
    put("CpuRealtimeRuntime", json!(h.cpu_realtime_runtime));
    put("CpusetCpus", json!(h.cpuset_cpus));
    put("CpusetMems", json!(h.cpuset_mems));
    put("Devices", json!(h.devices));
    put("DeviceCgroupRules", json!(h.device_cgroup_rules));
    put("DeviceRequests", Value::Null);
    // No `KernelMemory`/`KernelMemoryTCP`: gone from Docker's API since
    // 25 (20.10 still sends zeros).
    put("MemoryReservation", json!(h.memory_reservation));
    put("MemorySwap", json!(h.memory_swap));
    put("MemorySwappiness", json!(h.memory_swappiness));
    put("OomKillDisable", json!(h.oom_kill_disable));
    put("PidsLimit", json!(h.pids_limit));
    put("Ulimits", list_or_null(&h.ulimits));
    for k in [
        "CpuCount",
        "CpuPercent",
        "IOMaximumIOps",
        "IOMaximumBandwidth",
    ] {
        put(k, json!(0));
    }
    // `HostConfig.Mounts` holds the `--mount`s only: absent without any,
    // as Docker's.
    if !h.mount_specs.is_empty() {
        put("Mounts", json!(h.mount_specs));
    }
    put("MaskedPaths", json!(h.masked_paths));
    put("ReadonlyPaths", json!(h.readonly_paths));
    if h.init {
        put("Init", json!(true));
    }
    // berth's idle mode (ns), only where set: not a Docker key.
    if h.idle_timeout > 0 {
        put("BerthIdleTimeout", json!(h.idle_timeout));
    }
    Value::Object(m)
}

/// `Mounts`: one entry per `-v` and `--mount`, with Docker's keys for its type.
fn mounts(v: &ContainerView) -> Value {
    let list: Vec<Value> = v
        .host_config
        .mounts
        .iter()
        .map(|mp| {
            let mut m = Map::new();
            m.insert("Type".into(), json!(mp.kind));
            let volume = mp.kind == "volume";
            if volume {
                m.insert("Name".into(), json!(mp.name));
            }
            m.insert("Source".into(), json!(mp.source));
            m.insert("Destination".into(), json!(mp.destination));
            if volume {
                m.insert("Driver".into(), json!("local"));
            }
            // Docker records a named volume given without a mode as `z`.
            let named = volume
                && v.host_config
                    .binds
                    .iter()
                    .any(|b| has_source(b) && spec_destination(b) == mp.destination);
            let mode = if named && mp.mode.is_empty() {
                "z"
            } else {
                mp.mode.as_str()
            };
            m.insert("Mode".into(), json!(mode));
            m.insert("RW".into(), json!(mp.rw));
            let propagation = if mp.kind == "bind" { "rprivate" } else { "" };
            m.insert("Propagation".into(), json!(propagation));
            Value::Object(m)
        })
        .collect();
    Value::Array(list)
}

/// `Config` of a container: as recorded, with `Volumes` (the anonymous
/// volumes' destinations, as Docker records them) and Docker's keys.
pub(crate) fn container_config(v: &ContainerView) -> Value {
    let mut raw = match serde_json::to_value(&v.config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let volumes: Map<String, Value> = v
        .config
        .volumes
        .keys()
        .map(String::as_str)
        .chain(
            v.host_config
                .binds
                .iter()
                .filter(|b| !has_source(b))
                .map(|b| spec_destination(b)),
        )
        .map(|d| (d.to_string(), json!({})))
        .collect();
    raw.insert("Volumes".into(), Value::Object(volumes));
    docker_config(&raw, true)
}

/// The `Networks` entry of a network a container is configured for (its
/// addresses come with the datapath, issue 10).
fn configured_endpoint(e: &berth_types::EndpointConfig) -> Value {
    let mut v = endpoint();
    if let Value::Object(m) = &mut v {
        if !e.ipv4_address.is_empty() {
            m.insert(
                "IPAMConfig".into(),
                json!({ "IPv4Address": e.ipv4_address }),
            );
        }
        if !e.aliases.is_empty() {
            m.insert("Aliases".into(), json!(e.aliases));
        }
        m.insert("NetworkID".into(), json!(e.network_id));
        m.insert("MacAddress".into(), json!(e.mac_address));
    }
    v
}

/// `NetworkSettings.Networks`: the configured networks; a container on
/// `host` or `none` shows that one; otherwise (`container:X`, a container
/// disconnected from all, `default` without a default bridge) none.
fn networks_of(h: &berth_types::HostConfig) -> Value {
    if !h.networks.is_empty() {
        return Value::Object(
            h.networks
                .iter()
                .map(|(name, e)| (name.clone(), configured_endpoint(e)))
                .collect(),
        );
    }
    match h.network_mode.as_str() {
        m @ ("host" | "none") => json!({ m: endpoint() }),
        _ => json!({}),
    }
}

impl Engine {
    /// A running container's addresses, MACs, endpoints and ports (from
    /// the plan its start made) over the configured `NetworkSettings`.
    fn live_network_settings(&self, v: &crate::ContainerView, mut ns: Value) -> Value {
        if !v.running() {
            return ns;
        }
        let Some(plan) = Self::network_plan_of(&v.dir) else {
            return ns;
        };
        let mut ports = Map::new();
        for p in self.container_ports(v) {
            let key = format!("{}/{}", p.container_port, p.proto);
            if !p.is_published() {
                ports.entry(key).or_insert(Value::Null);
                continue;
            }
            let binding = json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()});
            match ports.entry(key).or_insert(Value::Null) {
                Value::Array(a) => a.push(binding),
                slot => *slot = json!([binding]),
            }
        }
        let Value::Object(top) = &mut ns else {
            return ns;
        };
        top.insert("Ports".into(), Value::Object(ports));
        top.insert(
            "SandboxKey".into(),
            json!(format!("/proc/{}/ns/net", v.state.pid)),
        );
        for ep in &plan.endpoints {
            let fill = |m: &mut Map<String, Value>| {
                m.insert("EndpointID".into(), json!(ep.endpoint_id));
                m.insert("Gateway".into(), json!(ep.gateway.to_string()));
                m.insert("IPAddress".into(), json!(ep.ip.to_string()));
                m.insert("IPPrefixLen".into(), json!(ep.prefix));
                m.insert("MacAddress".into(), json!(ep.mac));
            };
            if let Some(Value::Object(m)) = top
                .get_mut("Networks")
                .and_then(|n| n.get_mut(&ep.network_name))
            {
                fill(m);
                if ep.network_name != crate::netstart::DEFAULT_BRIDGE {
                    let mut aliases = vec![json!(v.id.short())];
                    if let Some(Value::Array(a)) = m.get("Aliases") {
                        aliases.extend(a.iter().cloned());
                    }
                    m.insert("Aliases".into(), Value::Array(aliases));
                }
            }
            if ep.network_name == crate::netstart::DEFAULT_BRIDGE {
                fill(top);
            }
        }
        ns
    }
}

/// `NetworkSettings` of a container.
fn network_settings(networks: Value) -> Value {
    json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": {},
        "SandboxKey": "",
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": networks
    })
}

impl Engine {
    /// What a list row shows of a container beside its summary: its
    /// networks (as inspect's `NetworkSettings.Networks`) and its mounts
    /// (as inspect's `Mounts`), without the rest of inspect.
    pub fn container_networks_and_mounts(&self, v: &ContainerView) -> (Value, Value) {
        let ns = self.live_network_settings(v, network_settings(networks_of(&v.host_config)));
        (ns["Networks"].clone(), mounts(v))
    }

    /// `inspect`, shaped as Docker's.
    pub fn inspect_container(&self, what: &str) -> Result<Value> {
        self.inspect_container_sized(what, false)
    }

    /// `inspect --size`: with Docker's `SizeRw` and `SizeRootFs` (after
    /// `GraphDriver`, as Docker's), computed as `ps -s` computes them.
    pub fn inspect_container_sized(&self, what: &str, size: bool) -> Result<Value> {
        let v = self.container(what)?;
        let value = self.container_json(&v)?;
        if !size {
            return Ok(value);
        }
        let (rw, root) = self.container_size(&v)?;
        let Value::Object(map) = value else {
            return Ok(value);
        };
        let mut out = Map::new();
        for (k, val) in map {
            let after = k == "GraphDriver";
            out.insert(k, val);
            if after {
                out.insert("SizeRw".into(), json!(rw));
                out.insert("SizeRootFs".into(), json!(root));
            }
        }
        Ok(Value::Object(out))
    }

    /// `inspect` of a view already read (no `--size`).
    pub fn container_json(&self, v: &crate::ContainerView) -> Result<Value> {
        let s = &v.state;
        let status = v.status_word();
        let path = v.command_line().first().cloned().unwrap_or_default();
        let args: Vec<String> = v.command_line().into_iter().skip(1).collect();
        let image = self.store.read().image(&v.image_id)?;
        let lower: Vec<String> = image
            .map(|i| {
                self.lower_dirs(&i)
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let time = |t: &str| {
            if t.is_empty() {
                ZERO_TIME.to_string()
            } else {
                t.to_string()
            }
        };
        let networks = networks_of(&v.host_config);
        let mut state = json!({
            "Status": status,
            "Running": status == "running" || status == "paused",
            "Paused": v.paused,
            "Restarting": status == "restarting",
            "OOMKilled": s.oom_killed,
            "Dead": false,
            "Pid": if status == "running" || status == "paused" { s.pid } else { 0 },
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": time(&s.started_at),
            "FinishedAt": time(&s.finished_at),
        });
        if let (Some(h), Value::Object(m)) = (&v.health, &mut state) {
            m.insert("Health".into(), json!(h));
        }
        // berth's idle mode (not Docker's keys: only for containers that
        // have it).
        if let (true, Value::Object(m)) = (v.host_config.idle_timeout > 0, &mut state) {
            m.insert("Idle".into(), json!(v.idle_since.is_some()));
            m.insert(
                "IdleSince".into(),
                json!(v.idle_since.as_deref().unwrap_or(ZERO_TIME)),
            );
        }
        Ok(json!({
            "Id": v.id.as_str(),
            "Created": v.created,
            "Path": path,
            "Args": args,
            "State": state,
            "Image": v.image_id.as_str(),
            "ResolvConfPath": v.dir.join("resolv.conf"),
            "HostnamePath": v.dir.join("hostname"),
            "HostsPath": v.dir.join("hosts"),
            // Docker shows the file of the json-file driver only.
            "LogPath": if v.host_config.log_config.kind == "json-file" {
                v.dir.join(format!("{}-json.log", v.id))
            } else {
                std::path::PathBuf::new()
            },
            "Name": format!("/{}", v.name),
            "RestartCount": s.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": null,
            "HostConfig": host_config(v),
            "GraphDriver": {
                "Data": {
                    "LowerDir": lower.join(":"),
                    "MergedDir": v.dir.join("merged"),
                    "UpperDir": v.dir.join("upper"),
                    "WorkDir": v.dir.join("work"),
                },
                "Name": "overlay2"
            },
            "Mounts": mounts(v),
            "Config": container_config(v),
            "NetworkSettings": self.live_network_settings(v, network_settings(networks)),
        }))
    }

    /// `image inspect`, shaped as Docker's.
    pub fn inspect_image(&self, what: &str) -> Result<Value> {
        let s = self.image_summary(what)?;
        let row = self.resolve_image(what)?;
        let raw: Map<String, Value> = serde_json::from_slice(&row.config).unwrap_or_default();
        let section = |k: &str| match raw.get(k) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let layers: Vec<String> = s
            .config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| d.to_string())
            .collect();
        // The image's layers, topmost first: the top one is its upper
        // directory, the others its lower ones. berth mounts no image on its
        // own, so it has no merged or work directory.
        let dirs: Vec<String> = self
            .lower_dirs(&row)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut data = Map::new();
        if dirs.len() > 1 {
            data.insert("LowerDir".into(), json!(dirs[1..].join(":")));
        }
        data.insert("MergedDir".into(), json!(""));
        data.insert(
            "UpperDir".into(),
            json!(dirs.first().cloned().unwrap_or_default()),
        );
        data.insert("WorkDir".into(), json!(""));
        Ok(json!({
            "Id": s.id.as_str(),
            "RepoTags": s.tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
            "RepoDigests": s.repo_digests,
            "Parent": s.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            "Comment": s.config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
            "Created": s.created,
            "Container": string_field(&raw, "container"),
            "ContainerConfig": docker_config(&section("container_config"), false),
            "DockerVersion": string_field(&raw, "docker_version"),
            "Author": s.config.author.clone().unwrap_or_default(),
            "Config": docker_config(&section("config"), false),
            "Architecture": s.config.architecture,
            "Os": s.config.os,
            "Size": s.size,
            "VirtualSize": s.size,
            "GraphDriver": {
                "Data": data,
                "Name": "overlay2"
            },
            "RootFS": { "Type": "layers", "Layers": layers },
            "Metadata": { "LastTagTime": ZERO_TIME }
        }))
    }
}
