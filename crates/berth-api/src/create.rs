//! `POST /containers/create`: Docker's `Config`, `HostConfig` and
//! `NetworkingConfig` turned into the engine's `CreateOptions` (the same
//! options the CLI's flags make). A field of the wrong JSON type is a 400,
//! as Go's decoder makes it; fields berth does not read are ignored.

use std::collections::BTreeMap;

use berth_engine::{AttachStreams, CreateOptions};
use berth_types::{Healthcheck, MountSpec, RestartPolicy, Ulimit};
use serde::Deserialize;
use serde_json::Value;

use crate::http::ApiError;

/// A list that Docker also accepts as one string (`strslice.StrSlice`).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum StrSlice {
    #[default]
    Null,
    One(String),
    Many(Vec<String>),
}

impl StrSlice {
    fn into_vec(self) -> Option<Vec<String>> {
        match self {
            StrSlice::Null => None,
            StrSlice::One(s) => Some(vec![s]),
            StrSlice::Many(v) => Some(v),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Body {
    #[serde(flatten)]
    config: Config,
    host_config: Option<HostConfig>,
    networking_config: Option<NetworkingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Config {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    exposed_ports: Option<BTreeMap<String, Value>>,
    tty: bool,
    open_stdin: bool,
    env: Option<Vec<String>>,
    cmd: StrSlice,
    healthcheck: Option<Healthcheck>,
    image: String,
    volumes: Option<BTreeMap<String, Value>>,
    working_dir: String,
    entrypoint: StrSlice,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: String,
    stop_timeout: Option<i64>,
    mac_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PortBinding {
    host_ip: String,
    host_port: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Restart {
    name: String,
    maximum_retry_count: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct LogConfig {
    #[serde(rename = "Type")]
    kind: String,
    config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfig {
    binds: Option<Vec<String>>,
    log_config: Option<LogConfig>,
    network_mode: String,
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    restart_policy: Option<Restart>,
    auto_remove: bool,
    volumes_from: Option<Vec<String>>,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    cgroupns_mode: String,
    dns: Option<Vec<String>>,
    dns_options: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    group_add: Option<Vec<String>>,
    ipc_mode: String,
    oom_score_adj: i64,
    pid_mode: String,
    privileged: bool,
    publish_all_ports: bool,
    readonly_rootfs: bool,
    security_opt: Option<Vec<String>>,
    tmpfs: Option<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode")]
    uts_mode: String,
    userns_mode: String,
    shm_size: i64,
    sysctls: Option<BTreeMap<String, String>>,
    runtime: String,
    cpu_shares: i64,
    memory: i64,
    nano_cpus: i64,
    cgroup_parent: String,
    cpu_period: i64,
    cpu_quota: i64,
    cpuset_cpus: String,
    cpuset_mems: String,
    memory_reservation: i64,
    memory_swap: i64,
    memory_swappiness: Option<i64>,
    oom_kill_disable: Option<bool>,
    pids_limit: Option<i64>,
    ulimits: Option<Vec<Ulimit>>,
    mounts: Option<Vec<MountSpec>>,
    init: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfig {
    endpoints_config: Option<BTreeMap<String, Option<Endpoint>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Endpoint {
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<Ipam>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The body of a create request, read; `name` from the query.
pub fn options(body: &[u8], name: Option<String>) -> Result<CreateOptions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // `null` is a field's zero value, as Go's decoder reads it.
    crate::objects::drop_nulls(&mut v);
    if v.as_object().is_some_and(serde_json::Map::is_empty) {
        return Err(ApiError::bad_request(
            "Config cannot be empty in order to create a container",
        ));
    }
    let b: Body = serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let c = b.config;
    let h = b.host_config.unwrap_or_default();
    let limits = resources(&h);
    if c.image.is_empty() {
        return Err(ApiError::bad_request("Config.Image: no image given"));
    }
    let mut o = CreateOptions {
        resources: limits,
        image: c.image,
        name: name.filter(|n| !n.is_empty()),
        cmd: c.cmd.into_vec().unwrap_or_default(),
        // `[""]` (the CLI's `--entrypoint ""`) clears the image's.
        entrypoint: c
            .entrypoint
            .into_vec()
            .map(|e| if e == [""] { Vec::new() } else { e }),
        env: c.env.unwrap_or_default(),
        workdir: some(c.working_dir),
        user: some(c.user),
        hostname: some(c.hostname),
        domainname: some(c.domainname),
        tty: c.tty,
        open_stdin: c.open_stdin,
        attach: AttachStreams {
            stdin: c.attach_stdin,
            stdout: c.attach_stdout,
            stderr: c.attach_stderr,
        },
        labels: c.labels.unwrap_or_default(),
        stop_signal: some(c.stop_signal),
        stop_timeout: c.stop_timeout,
        mac_address: some(c.mac_address),
        healthcheck: c.healthcheck,
        ..Default::default()
    };
    // Anonymous volumes (`Config.Volumes`) are `-v /path`, where no bind
    // or mount already lands (docker-py and Compose v1 send both for a
    // named volume; dockerd mounts first, then fills the gaps).
    let binds = h.binds.unwrap_or_default();
    let mounts = h.mounts.unwrap_or_default();
    let clean = |p: &str| -> String {
        let t = p.trim_end_matches('/');
        if t.is_empty() {
            "/".into()
        } else {
            t.to_string()
        }
    };
    let taken: std::collections::HashSet<String> = binds
        .iter()
        .filter_map(|b| b.split(':').nth(1))
        .chain(mounts.iter().map(|m| m.target.as_str()))
        .map(clean)
        .collect();
    o.volumes = c
        .volumes
        .unwrap_or_default()
        .into_keys()
        .filter(|v| !taken.contains(&clean(v)))
        .collect();
    o.volumes.extend(binds);
    o.mounts = mounts;
    o.volumes_from = h.volumes_from.unwrap_or_default();
    o.network = some(h.network_mode).filter(|m| m != "default");
    if let Some(eps) = b.networking_config.and_then(|n| n.endpoints_config) {
        // One network at create, as Docker's API takes it; its aliases and
        // address.
        if let Some((net, ep)) = eps.into_iter().next() {
            if o.network.is_none() {
                o.network = Some(net);
            }
            if let Some(ep) = ep {
                o.network_aliases = ep.aliases.unwrap_or_default();
                o.ip = ep.ipam_config.and_then(|i| some(i.ipv4_address));
            }
        }
    }
    for (port, bindings) in h.port_bindings.unwrap_or_default() {
        let bindings = bindings.unwrap_or_default();
        if bindings.is_empty() {
            o.net.publish.push(port.clone());
        }
        for pb in bindings {
            let ip = if pb.host_ip.contains(':') {
                format!("[{}]", pb.host_ip)
            } else {
                pb.host_ip
            };
            o.net
                .publish
                .push(match (ip.is_empty(), pb.host_port.is_empty()) {
                    (true, true) => port.clone(),
                    (true, false) => format!("{}:{port}", pb.host_port),
                    (false, _) => format!("{ip}:{}:{port}", pb.host_port),
                });
        }
    }
    o.net.publish_all = h.publish_all_ports;
    o.net.expose = c.exposed_ports.unwrap_or_default().into_keys().collect();
    o.net.dns = h.dns.unwrap_or_default();
    o.net.dns_options = h.dns_options.unwrap_or_default();
    o.net.dns_search = h.dns_search.unwrap_or_default();
    o.net.add_host = h.extra_hosts.unwrap_or_default();
    if let Some(r) = h.restart_policy.filter(|r| !r.name.is_empty()) {
        let text = if r.maximum_retry_count > 0 {
            format!("{}:{}", r.name, r.maximum_retry_count)
        } else {
            r.name
        };
        o.restart = RestartPolicy::parse(&text).map_err(ApiError::bad_request)?;
    }
    o.auto_remove = h.auto_remove;
    if let Some(l) = h.log_config {
        o.log_driver = some(l.kind);
        o.log_opts = l.config.unwrap_or_default();
    }
    o.cap_add = h.cap_add.unwrap_or_default();
    o.cap_drop = h.cap_drop.unwrap_or_default();
    o.security_opt = h.security_opt.unwrap_or_default();
    o.privileged = h.privileged;
    o.read_only = h.readonly_rootfs;
    o.init = h.init.unwrap_or(false);
    o.group_add = h.group_add.unwrap_or_default();
    o.sysctls = h.sysctls.unwrap_or_default();
    o.runtime = some(h.runtime);
    o.namespaces.pid = some(h.pid_mode);
    o.namespaces.ipc = some(h.ipc_mode);
    o.namespaces.uts = some(h.uts_mode);
    o.namespaces.cgroupns = some(h.cgroupns_mode);
    o.namespaces.userns = some(h.userns_mode);
    o.tmpfs = h
        .tmpfs
        .unwrap_or_default()
        .into_iter()
        .map(|(path, opts)| {
            if opts.is_empty() {
                path
            } else {
                format!("{path}:{opts}")
            }
        })
        .collect();
    Ok(o)
}

/// The limits of a `HostConfig` (or an update's body) in the CLI's terms
/// (bytes as numbers, CPUs as a decimal).
fn resources(h: &HostConfig) -> berth_engine::ResourceOptions {
    let mut o = berth_engine::ResourceOptions::default();
    let r = &mut o;
    r.memory = (h.memory > 0).then(|| h.memory.to_string());
    r.memory_swap = (h.memory_swap != 0).then(|| h.memory_swap.to_string());
    r.memory_reservation = (h.memory_reservation > 0).then(|| h.memory_reservation.to_string());
    r.cpus = (h.nano_cpus > 0).then(|| {
        let whole = h.nano_cpus / 1_000_000_000;
        let frac = h.nano_cpus % 1_000_000_000;
        if frac == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{}", format!("{frac:09}").trim_end_matches('0'))
        }
    });
    r.cpu_shares = (h.cpu_shares != 0).then_some(h.cpu_shares);
    r.pids_limit = h.pids_limit.filter(|p| *p != 0);
    r.cpuset_cpus = some(h.cpuset_cpus.clone());
    r.cpuset_mems = some(h.cpuset_mems.clone());
    r.more.memory_swappiness = h.memory_swappiness.filter(|s| *s >= 0);
    r.more.oom_kill_disable = h.oom_kill_disable.unwrap_or(false);
    r.more.oom_score_adj = (h.oom_score_adj != 0).then_some(h.oom_score_adj);
    r.more.cpu_period = (h.cpu_period != 0).then_some(h.cpu_period);
    r.more.cpu_quota = (h.cpu_quota != 0).then_some(h.cpu_quota);
    r.more.ulimits = h.ulimits.clone().unwrap_or_default();
    r.more.shm_size = (h.shm_size > 0).then_some(h.shm_size);
    r.more.cgroup_parent = some(h.cgroup_parent.clone());
    o
}

/// `POST /containers/{id}/update`'s body (Docker's `UpdateConfig`: the
/// resources of a `HostConfig` and a restart policy): the new limits, and
/// the policy if one is named.
pub fn update(
    body: &[u8],
) -> Result<(berth_engine::ResourceOptions, Option<RestartPolicy>), ApiError> {
    let mut h: HostConfig = if body.iter().all(u8::is_ascii_whitespace) {
        HostConfig::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    let restart = match h.restart_policy.take().filter(|r| !r.name.is_empty()) {
        Some(r) => {
            let text = if r.maximum_retry_count > 0 {
                format!("{}:{}", r.name, r.maximum_retry_count)
            } else {
                r.name
            };
            Some(RestartPolicy::parse(&text).map_err(ApiError::bad_request)?)
        }
        None => None,
    };
    Ok((resources(&h), restart))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_docker_clis_run_body() {
        // As the docker CLI 28 sends `run -it --rm -p 8080:80 -e A=1
        // --memory 64m --cpus 1.5 --restart no --entrypoint sh bb -c x`.
        let body = br#"{"Hostname":"","Domainname":"","User":"","AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"ExposedPorts":{"80/tcp":{}},"Tty":true,"OpenStdin":true,"StdinOnce":true,"Env":["A=1"],"Cmd":["-c","x"],"Image":"bb","Volumes":{"/data":{}},"WorkingDir":"","Entrypoint":["sh"],"OnBuild":null,"Labels":{"l":"v"},"HostConfig":{"Binds":["/tmp:/h:ro"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"Memory":67108864,"NanoCpus":1500000000,"PidsLimit":null,"Mounts":[{"Type":"tmpfs","Target":"/run"}]},"NetworkingConfig":{"EndpointsConfig":{}}}"#;
        let o = options(body, Some("c1".into())).unwrap();
        assert_eq!(o.image, "bb");
        assert_eq!(o.name.as_deref(), Some("c1"));
        assert_eq!(o.entrypoint, Some(vec!["sh".to_string()]));
        assert_eq!(o.cmd, ["-c", "x"]);
        assert!(o.tty && o.open_stdin && o.attach.stdin && o.attach.stdout);
        assert_eq!(o.volumes, ["/data", "/tmp:/h:ro"]);
        // A named volume as docker-py and Compose v1 send it: in both
        // `Volumes` and `Binds`, mounted once.
        let named = options(
            br#"{"Image":"bb","Volumes":{"/data/":{},"/other":{}},"HostConfig":{"Binds":["v1:/data:rw"],"Mounts":[{"Type":"volume","Source":"v2","Target":"/m"}]}}"#,
            None,
        )
        .unwrap();
        assert_eq!(named.volumes, ["/other", "v1:/data:rw"]);
        assert_eq!(o.net.publish, ["8080:80/tcp"]);
        assert_eq!(o.net.expose, ["80/tcp"]);
        assert_eq!(o.network, None);
        assert!(o.auto_remove);
        assert_eq!(o.resources.memory.as_deref(), Some("67108864"));
        assert_eq!(o.resources.cpus.as_deref(), Some("1.5"));
        assert_eq!(o.mounts[0].kind, "tmpfs");
        assert_eq!(o.labels["l"], "v");
    }

    #[test]
    fn strings_for_lists_and_bad_types() {
        let o = options(br#"{"Image":"bb","Cmd":"true","Entrypoint":""}"#, None).unwrap();
        assert_eq!(o.cmd, ["true"]);
        assert_eq!(o.entrypoint, Some(Vec::new()));
        let e = options(br#"{"Image":"bb","Tty":"yes"}"#, None)
            .err()
            .unwrap();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let e = options(b"{not json", None).err().unwrap();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let e = options(b"", None).err().unwrap();
        assert_eq!(
            e.message,
            "config cannot be empty in order to create a container"
        );
        let e = options(br#"{"Cmd":["true"]}"#, None).err().unwrap();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let o = options(
            br#"{"Image":"bb","HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"NanoCpus":250000000}}"#,
            None,
        )
        .unwrap();
        assert_eq!(o.resources.cpus.as_deref(), Some("0.25"));
        assert_eq!(o.restart, RestartPolicy::parse("on-failure:3").unwrap());
    }
}
