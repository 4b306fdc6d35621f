//! Networks (issue 10), the objects: `network create/ls/inspect/rm/prune/
//! connect/disconnect` and what `create --network` records. No kernel
//! object is made here: a network's Linux bridge is made by the start path
//! when a container first needs it, and removed through
//! [`Engine::remove_bridge`] (the datapath's hook).
//!
//! The predefined networks (`bridge`, `host`, `none`) are rows like any
//! other, made on first need in one transaction
//! ([`Engine::ensure_predefined_networks`]). A container's networks are
//! recorded in its `HostConfig.networks` (name → [`EndpointConfig`]); a
//! running container's address on a network is an `endpoints` row.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use berth_net::ipam::{self, Subnet};
use berth_store::NetworkRow;
use berth_types::{EndpointConfig, IpamConfig, NetworkSpec};
use serde_json::{json, Value};

use crate::filters::Filters;
use crate::{now_rfc3339, random_bytes, ContainerView, Engine, EngineError, Result};

/// berth's config-file network keys (`bridge`, `bip`,
/// `default-address-pools`, `dns`, …), as the CLI read them.
pub use berth_registry::NetworkSettings as NetworkConfig;

/// The names Docker reserves for its predefined networks.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];
/// The default bridge network's Linux bridge.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// `-o com.docker.network.bridge.name=`: a network's Linux bridge.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// A network: its identity and its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub spec: NetworkSpec,
}

impl Network {
    fn from_row(r: NetworkRow) -> Result<Network> {
        let spec: NetworkSpec = serde_json::from_str(&r.spec).map_err(|e| {
            EngineError::InvalidArgument(format!("network {}: corrupt spec: {e}", r.name))
        })?;
        Ok(Network {
            id: r.id,
            name: r.name,
            created: r.created,
            spec,
        })
    }

    /// `bridge`, `host` or `none`: made by berth, never removed.
    pub fn is_predefined(&self) -> bool {
        PREDEFINED.contains(&self.name.as_str())
    }

    /// The networks `--network-alias` and `--ip` work on (Docker's "user
    /// defined"): every one but the predefined.
    pub fn is_user_defined(&self) -> bool {
        !self.is_predefined()
    }

    /// The IPv4 pool: its subnet (normalised), if any.
    pub fn subnet_v4(&self) -> Option<Subnet> {
        self.ipam_v4().and_then(|c| Subnet::parse(&c.subnet).ok())
    }

    /// The IPv4 `IPAM.Config` entry.
    pub fn ipam_v4(&self) -> Option<&IpamConfig> {
        self.spec.ipam.iter().find(|c| !c.subnet.contains(':'))
    }

    /// The gateway: the configured one, else the subnet's first host (Docker
    /// records no gateway when `--subnet` came without `--gateway`, but
    /// uses that one).
    pub fn gateway_v4(&self) -> Option<Ipv4Addr> {
        let c = self.ipam_v4()?;
        match c.gateway.parse() {
            Ok(g) => Some(g),
            Err(_) => Subnet::parse(&c.subnet).ok().map(|s| s.default_gateway()),
        }
    }

    /// Where a container's dynamic address comes from: the subnet, the
    /// `--ip-range` (or `fixed-cidr`) within it, and the gateway (which the
    /// allocation must skip): what [`ipam::allocate`] takes.
    pub fn pool_v4(&self) -> Option<(Subnet, Option<Subnet>, Ipv4Addr)> {
        let c = self.ipam_v4()?;
        let subnet = Subnet::parse(&c.subnet).ok()?.normalized();
        let range = Subnet::parse(&c.ip_range).ok().map(|r| r.normalized());
        Some((subnet, range, self.gateway_v4()?))
    }

    /// Whether `--subnet` was given (as opposed to chosen from the pools):
    /// only then may a container ask for a fixed `--ip`.
    pub fn has_user_subnet(&self) -> bool {
        self.spec
            .options
            .get(AUTO_SUBNET_OPTION)
            .is_none_or(|v| v != "true")
            && self.ipam_v4().is_some()
    }
}

/// Kept in the spec (not shown): the IPv4 subnet came from the pools.
const AUTO_SUBNET_OPTION: &str = "berth.auto-subnet";

/// `network create`'s options, as Docker's flags.
#[derive(Clone, Debug, Default)]
pub struct NetworkCreateOptions {
    pub name: String,
    /// `-d`: `bridge` (empty: bridge).
    pub driver: String,
    pub subnets: Vec<String>,
    pub ip_ranges: Vec<String>,
    pub gateways: Vec<String>,
    pub internal: bool,
    pub attachable: bool,
    pub ipv6: bool,
    pub labels: BTreeMap<String, String>,
    /// `-o KEY=VALUE`
    pub options: BTreeMap<String, String>,
    /// `--ipam-driver`: `default` (empty: default).
    pub ipam_driver: String,
    pub ipam_options: BTreeMap<String, String>,
}

/// What `network connect` (and `create --network-alias/--ip/--mac-address`)
/// asks of a network.
#[derive(Clone, Debug, Default)]
pub struct EndpointOptions {
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub mac_address: Option<String>,
}

fn invalid(m: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(m.into())
}

fn not_found(what: &str) -> EngineError {
    EngineError::NoSuchNetwork(what.to_string())
}

/// Docker's `EndpointID` for a container's endpoint: stable for the pair.
pub fn endpoint_id(network_id: &str, container_id: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(
        format!("{network_id}/{container_id}").as_bytes(),
    ))
}

/// `02:42:ac:11:00:02`: the MAC address an endpoint with `ip` gets (the
/// datapath's choice, unless the container asked for one).
pub fn mac_address_for(ip: Ipv4Addr) -> String {
    ipam::format_mac(&ipam::mac_for(ip))
}

/// A MAC address as Go's `net.ParseMAC` takes a 6-byte one.
pub fn valid_mac_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn parse_v6_cidr(s: &str) -> bool {
    s.split_once('/').is_some_and(|(a, p)| {
        a.parse::<Ipv6Addr>().is_ok()
            && !p.is_empty()
            && p.len() <= 3
            && p.parse::<u8>().is_ok_and(|n| n <= 128)
    })
}

impl Engine {
    /// The config file's network keys this engine was opened with.
    pub fn network_config(&self) -> &NetworkConfig {
        &self.opts.network
    }

    /// Makes `bridge` (unless the config says `bridge = "none"`), `host`
    /// and `none` if they are missing, in one transaction. The default
    /// bridge gets `bip`'s subnet, else 172.17.0.0/16 unless that overlaps
    /// a host route or another network, else the first free pool.
    pub fn ensure_predefined_networks(&mut self) -> Result<()> {
        let want_bridge = !self.opts.network.bridge_disabled();
        let have: BTreeSet<String> = self
            .store
            .read()
            .networks()?
            .into_iter()
            .map(|n| n.name)
            .collect();
        let missing = |have: &BTreeSet<String>| {
            (want_bridge && !have.contains("bridge"))
                || !have.contains("host")
                || !have.contains("none")
        };
        if !missing(&have) {
            return Ok(());
        }
        let routes = ipam::host_routes_v4();
        let cfg = self.opts.network.clone();
        self.store.transaction(|t| -> Result<()> {
            let rows = t.networks()?;
            let have: BTreeSet<String> = rows.iter().map(|n| n.name.clone()).collect();
            let now = now_rfc3339();
            let add = |name: &str, driver: &str, spec: NetworkSpec| -> Result<()> {
                let spec = serde_json::to_string(&spec)
                    .map_err(|e| invalid(format!("network spec: {e}")))?;
                t.insert_network(&NetworkRow {
                    id: hex::encode(random_bytes()),
                    name: name.into(),
                    driver: driver.into(),
                    created: now.clone(),
                    spec,
                })?;
                Ok(())
            };
            if !have.contains("none") {
                add("none", "null", spec_of_driver("null"))?;
            }
            if !have.contains("host") {
                add("host", "host", spec_of_driver("host"))?;
            }
            if want_bridge && !have.contains("bridge") {
                let mut taken = routes.clone();
                for r in &rows {
                    if let Ok(n) = Network::from_row(r.clone()) {
                        taken.extend(n.subnet_v4());
                    }
                }
                let (gateway, subnet) = match cfg.bip {
                    Some((gw, sub)) => (gw, sub),
                    None => {
                        let first = Subnet::new(Ipv4Addr::new(172, 17, 0, 0), 16);
                        let sub = if taken.iter().any(|t| t.overlaps(&first)) {
                            let pools = pools_of(&cfg);
                            ipam::choose_subnet(&taken, &pools).ok_or_else(no_v4_pool)?
                        } else {
                            first
                        };
                        (sub.default_gateway(), sub)
                    }
                };
                let bridge = match cfg.bridge.as_deref() {
                    Some(b) if !b.is_empty() && b != "none" => b.to_string(),
                    _ => DEFAULT_BRIDGE.to_string(),
                };
                let mut options = BTreeMap::new();
                for (k, v) in [
                    ("com.docker.network.bridge.default_bridge", "true"),
                    ("com.docker.network.bridge.enable_icc", "true"),
                    ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                    ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
                    (BRIDGE_NAME_OPTION, bridge.as_str()),
                    ("com.docker.network.driver.mtu", "1500"),
                ] {
                    options.insert(k.to_string(), v.to_string());
                }
                let spec = NetworkSpec {
                    driver: "bridge".into(),
                    ipam: vec![IpamConfig {
                        subnet: subnet.to_string(),
                        ip_range: cfg.fixed_cidr.map(|c| c.to_string()).unwrap_or_default(),
                        gateway: gateway.to_string(),
                    }],
                    options,
                    bridge,
                    ..Default::default()
                };
                add("bridge", "bridge", spec)?;
            }
            Ok(())
        })
    }

    /// Every network, predefined ones made first if missing; oldest first.
    pub fn networks(&mut self) -> Result<Vec<Network>> {
        self.ensure_predefined_networks()?;
        self.store
            .read()
            .networks()?
            .into_iter()
            .map(Network::from_row)
            .collect()
    }

    /// A network by full ID, name or unique ID prefix (Docker's order).
    pub fn find_network(&mut self, what: &str) -> Result<Network> {
        self.ensure_predefined_networks()?;
        self.lookup_network(what)
    }

    fn lookup_network(&self, what: &str) -> Result<Network> {
        let t = self.store.read();
        if let Some(r) = t.network(what)? {
            return Network::from_row(r);
        }
        if let Some(r) = t.network_by_name(what)? {
            return Network::from_row(r);
        }
        if !what.is_empty() && what.bytes().all(|b| b.is_ascii_hexdigit()) {
            let lower = what.to_ascii_lowercase();
            let mut m: Vec<NetworkRow> = t
                .networks()?
                .into_iter()
                .filter(|n| n.id.starts_with(&lower))
                .collect();
            if m.len() == 1 {
                return Network::from_row(m.remove(0));
            }
            if m.len() > 1 {
                return Err(invalid(format!(
                    "network {what} is ambiguous ({} matches found based on ID prefix)",
                    m.len()
                )));
            }
        }
        Err(not_found(what))
    }

    /// `network create`: Docker's checks and errors; a subnet from the
    /// pools unless `--subnet`; the Linux bridge's name decided (made later,
    /// by the first start that needs it).
    pub fn network_create(&mut self, o: &NetworkCreateOptions) -> Result<Network> {
        // Docker's names, whether or not the default bridge exists.
        if PREDEFINED.contains(&o.name.as_str()) || o.name == "default" {
            return Err(EngineError::Forbidden(format!(
                "operation is not permitted on predefined {} network",
                o.name
            )));
        }
        self.ensure_predefined_networks()?;
        let driver = if o.driver.is_empty() {
            "bridge"
        } else {
            o.driver.as_str()
        };
        match driver {
            "bridge" => {}
            "host" | "null" => {
                return Err(EngineError::Forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )))
            }
            "overlay" => return Err(EngineError::Unsupported(
                "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into(),
            )),
            other => {
                return Err(EngineError::NotFound(format!(
                    "plugin \"{other}\" not found"
                )))
            }
        }
        let ipam_driver = if o.ipam_driver.is_empty() {
            "default"
        } else {
            o.ipam_driver.as_str()
        };
        if ipam_driver != "default" {
            return Err(EngineError::NotFound(format!(
                "plugin \"{ipam_driver}\" not found"
            )));
        }
        // The docker CLI's own checks of --subnet/--ip-range/--gateway.
        if o.subnets.len() < o.ip_ranges.len() || o.subnets.len() < o.gateways.len() {
            return Err(invalid(
                "every ip-range or gateway must have a corresponding subnet",
            ));
        }
        let mut v4: Vec<(String, Subnet)> = Vec::new();
        let mut v6: Vec<String> = Vec::new();
        for s in &o.subnets {
            if s.contains(':') {
                if !parse_v6_cidr(s) {
                    return Err(invalid(format!(
                        "Invalid subnet {s} : invalid CIDR address: {s}"
                    )));
                }
                v6.push(s.clone());
            } else {
                let sub =
                    Subnet::parse(s).map_err(|e| invalid(format!("Invalid subnet {s} : {e}")))?;
                v4.push((s.clone(), sub));
            }
        }
        let mut ranges: BTreeMap<usize, Subnet> = BTreeMap::new();
        for r in &o.ip_ranges {
            // The docker CLI's words.
            let rs = Subnet::parse(r).map_err(|e| invalid(e.to_string()))?;
            let Some(i) = v4.iter().position(|(_, s)| s.contains(rs.network())) else {
                return Err(invalid(format!("no matching subnet for range {r}")));
            };
            if let Some(prev) = ranges.get(&i) {
                return Err(invalid(format!(
                    "cannot configure multiple ranges ({prev}, {r}) on the same subnet ({})",
                    v4[i].0
                )));
            }
            ranges.insert(i, rs);
        }
        let mut gateways: BTreeMap<usize, Ipv4Addr> = BTreeMap::new();
        for g in &o.gateways {
            let ip = g.parse::<Ipv4Addr>().ok();
            let Some(i) = ip.and_then(|ip| v4.iter().position(|(_, s)| s.contains(ip))) else {
                return Err(invalid(format!("no matching subnet for gateway {g}")));
            };
            if let Some(prev) = gateways.get(&i) {
                return Err(invalid(format!(
                    "cannot configure multiple gateways ({prev}, {g}) for the same subnet ({})",
                    v4[i].0
                )));
            }
            if let Some(ip) = ip {
                gateways.insert(i, ip);
            }
        }
        if v4.len() > 1 || v6.len() > 1 {
            return Err(invalid("bridge driver doesn't support multiple subnets"));
        }
        if o.ipv6 && v6.is_empty() {
            return Err(invalid("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network"));
        }
        if let (Some((_, sub)), Some(gw)) = (v4.first(), gateways.get(&0)) {
            if *gw == sub.network() || *gw == sub.broadcast() {
                return Err(invalid(format!(
                    "failed to allocate gateway ({gw}): Address already in use"
                )));
            }
        }
        let id = hex::encode(random_bytes());
        let bridge = o
            .options
            .get(BRIDGE_NAME_OPTION)
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if !berth_net::nft::valid_ifname(&bridge) {
            return Err(invalid(format!(
                "invalid bridge name {bridge:?}: at most 15 of [A-Za-z0-9_.-]"
            )));
        }
        let routes = ipam::host_routes_v4();
        let pools = pools_of(&self.opts.network);
        let name = o.name.clone();
        let user_v4 = v4.first().cloned();
        let range = ranges.get(&0).copied();
        let gateway = gateways.get(&0).copied();
        let row = self.store.transaction(|t| -> Result<NetworkRow> {
            // Decided in the transaction that inserts: two creates never
            // both get the same pool.
            if t.network_by_name(&name)?.is_some() {
                return Err(berth_store::StoreError::NetworkExists(name.clone()).into());
            }
            let mut others = Vec::new();
            let mut bridges = BTreeSet::new();
            for r in t.networks()? {
                let n = Network::from_row(r)?;
                others.extend(n.subnet_v4());
                bridges.insert(n.spec.bridge.clone());
            }
            if bridges.contains(&bridge) {
                return Err(EngineError::Conflict(format!(
                    "bridge name {bridge} is already in use"
                )));
            }
            let mut options = o.options.clone();
            let mut ipam_cfg = Vec::new();
            match &user_v4 {
                Some((given, sub)) => {
                    if others.iter().any(|x| x.overlaps(sub)) {
                        return Err(EngineError::Forbidden(
                            "Pool overlaps with other one on this address space".into(),
                        ));
                    }
                    ipam_cfg.push(IpamConfig {
                        subnet: given.clone(),
                        ip_range: range.map(|r| r.as_given()).unwrap_or_default(),
                        gateway: gateway.map(|g| g.to_string()).unwrap_or_default(),
                    });
                }
                None => {
                    let mut taken = others.clone();
                    taken.extend(routes.iter().copied());
                    let sub = ipam::choose_subnet(&taken, &pools).ok_or_else(no_v4_pool)?;
                    options.insert(AUTO_SUBNET_OPTION.into(), "true".into());
                    ipam_cfg.push(IpamConfig {
                        subnet: sub.to_string(),
                        ip_range: String::new(),
                        gateway: sub.default_gateway().to_string(),
                    });
                }
            }
            for s in &v6 {
                ipam_cfg.push(IpamConfig {
                    subnet: s.clone(),
                    ..Default::default()
                });
            }
            let spec = NetworkSpec {
                driver: "bridge".into(),
                enable_ipv6: o.ipv6,
                ipam: ipam_cfg,
                internal: o.internal,
                attachable: o.attachable,
                options,
                labels: o.labels.clone(),
                bridge: bridge.clone(),
                ipam_options: o.ipam_options.clone(),
            };
            let row = NetworkRow {
                id: id.clone(),
                name: name.clone(),
                driver: "bridge".into(),
                created: now_rfc3339(),
                spec: serde_json::to_string(&spec)
                    .map_err(|e| invalid(format!("network spec: {e}")))?,
            };
            t.insert_network(&row)?;
            Ok(row)
        })?;
        let n = Network::from_row(row)?;
        self.emit_network("create", &n.id, &n.name, &n.spec.driver, None);
        Ok(n)
    }

    /// Running containers with an endpoint on `network_id` (an `endpoints`
    /// row whose container is still running: a row left by a monitor that
    /// died does not count).
    fn active_endpoints(&self, network_id: &str) -> Result<Vec<(ContainerView, String)>> {
        let mut out = Vec::new();
        for e in self.store.read().endpoints_on(network_id)? {
            let Some(row) = self.store.read().container(&e.container_id)? else {
                continue;
            };
            let v = self.view(row)?;
            if v.running() {
                out.push((v, e.ip));
            }
        }
        Ok(out)
    }

    /// The networks a container joins when it starts, each with what it
    /// asks of it, found by the recorded ID (or, failing that, the name);
    /// one removed since is Docker's start error, `network NAME not found`.
    pub fn container_networks(&self, v: &ContainerView) -> Result<Vec<(Network, EndpointConfig)>> {
        let mut out = Vec::new();
        for (name, ep) in &v.host_config.networks {
            let t = self.store.read();
            let row = match t.network(&ep.network_id)? {
                Some(r) => Some(r),
                None => t.network_by_name(name)?,
            };
            let row = row.ok_or_else(|| not_found(name))?;
            out.push((Network::from_row(row)?, ep.clone()));
        }
        Ok(out)
    }

    /// `network inspect`: Docker's JSON, key for key in its order.
    pub fn network_inspect(&mut self, what: &str) -> Result<Value> {
        let n = self.find_network(what)?;
        self.network_json(&n)
    }

    /// `inspect [--type network]`: as [`Engine::network_inspect`], on the
    /// networks that exist (the predefined ones once anything made them).
    pub fn inspect_network(&self, what: &str) -> Result<Value> {
        let n = self.lookup_network(what)?;
        self.network_json(&n)
    }

    fn network_json(&self, n: &Network) -> Result<Value> {
        let prefix = n.subnet_v4().map(|s| s.prefix()).unwrap_or(0);
        let mut containers = serde_json::Map::new();
        for (v, ip) in self.active_endpoints(&n.id)? {
            let mac = v
                .host_config
                .networks
                .get(&n.name)
                .map(|e| e.mac_address.clone())
                .filter(|m| !m.is_empty())
                .or_else(|| ip.parse().ok().map(mac_address_for))
                .unwrap_or_default();
            containers.insert(
                v.id.to_string(),
                json!({
                    "Name": v.name,
                    "EndpointID": endpoint_id(&n.id, v.id.as_str()),
                    "MacAddress": mac,
                    "IPv4Address": format!("{ip}/{prefix}"),
                    "IPv6Address": "",
                }),
            );
        }
        let mut options = n.spec.options.clone();
        options.remove(AUTO_SUBNET_OPTION);
        let predefined = n.is_predefined();
        Ok(json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.spec.driver,
            "EnableIPv6": n.spec.enable_ipv6,
            "IPAM": {
                "Driver": "default",
                "Options": if predefined { Value::Null } else { json!(n.spec.ipam_options) },
                "Config": n.spec.ipam,
            },
            "Internal": n.spec.internal,
            "Attachable": n.spec.attachable,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": n.spec.labels,
        }))
    }

    /// `network ls --filter`: `driver`, `id`, `label`, `name`, `scope`,
    /// `type` (custom|builtin), `dangling`, with Docker's errors.
    pub fn networks_filtered(&mut self, f: &Filters) -> Result<Vec<Network>> {
        f.check_keys(&["driver", "id", "label", "name", "scope", "type", "dangling"])?;
        for t in f.get("type") {
            if t != "custom" && t != "builtin" {
                return Err(invalid(format!("invalid filter: 'type'='{t}'")));
            }
        }
        let mut dangling = None;
        for d in f.get("dangling") {
            dangling = Some(match d.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(invalid(
                    "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")",
                )),
            });
        }
        let re = |key: &str| -> Option<Vec<regex::Regex>> {
            let vals = f.get(key);
            (!vals.is_empty()).then(|| {
                vals.iter()
                    .filter_map(|v| regex::Regex::new(v).ok())
                    .collect()
            })
        };
        let (names, ids) = (re("name"), re("id"));
        let mut out = Vec::new();
        for n in self.networks()? {
            let kind = if n.is_predefined() {
                "builtin"
            } else {
                "custom"
            };
            let keep = names
                .as_ref()
                .is_none_or(|r| r.iter().any(|r| r.is_match(&n.name)))
                && ids
                    .as_ref()
                    .is_none_or(|r| r.iter().any(|r| r.is_match(&n.id)))
                && (f.get("driver").is_empty() || f.get("driver").contains(&n.spec.driver))
                && (f.get("scope").is_empty() || f.get("scope").iter().any(|s| s == "local"))
                && (f.get("type").is_empty() || f.get("type").iter().any(|t| t == kind))
                && f.get("label").iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => n.spec.labels.get(k).is_some_and(|have| have == v),
                    None => n.spec.labels.contains_key(l.as_str()),
                });
            if !keep {
                continue;
            }
            if let Some(d) = dangling {
                // Docker: a dangling network is a custom one without active
                // endpoints; the predefined ones are never dangling.
                let is_dangling = !n.is_predefined() && self.active_endpoints(&n.id)?.is_empty();
                if is_dangling != d {
                    continue;
                }
            }
            out.push(n);
        }
        Ok(out)
    }

    /// `network rm`: the predefined networks and a network a running
    /// container is on are refused (Docker's words); stopped containers
    /// keep their configuration, as Docker's (their next start fails).
    /// Returns the removed network.
    pub fn network_remove(&mut self, what: &str) -> Result<Network> {
        let n = self.find_network(what)?;
        if n.is_predefined() {
            return Err(EngineError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        let root = self.opts.root.join("containers");
        let (id, name) = (n.id.clone(), n.name.clone());
        self.store.transaction(|t| -> Result<()> {
            // Decided with the rows the delete acts on: a start that
            // recorded its endpoint first is seen here.
            for e in t.endpoints_on(&id)? {
                let state = crate::container::load_state(&root.join(e.container_id.as_str()));
                if matches!(
                    state.status,
                    crate::Status::Running | crate::Status::Restarting
                ) {
                    return Err(EngineError::Forbidden(format!(
                        "error while removing network: network {name} id {id} has active endpoints"
                    )));
                }
            }
            t.delete_network(&id)?;
            Ok(())
        })?;
        self.remove_bridge(&n.spec)?;
        self.emit_network("destroy", &n.id, &n.name, &n.spec.driver, None);
        Ok(n)
    }

    /// The datapath's hook: deletes the network's Linux bridge, if made.
    fn remove_bridge(&self, spec: &NetworkSpec) -> Result<()> {
        self.datapath_remove_bridge(spec)
    }

    /// `network prune`: every custom network without active endpoints,
    /// narrowed by `until`/`label`/`label!`; the names of those removed.
    pub fn network_prune(&mut self, f: &Filters) -> Result<Vec<String>> {
        let until = f.prune_until(chrono::Utc::now())?;
        let mut removed = Vec::new();
        for n in self.networks()? {
            if n.is_predefined() || !f.prune_labels_match(&n.spec.labels) {
                continue;
            }
            if let Some(u) = until {
                let made = chrono::DateTime::parse_from_rfc3339(&n.created)
                    .map(|t| t.with_timezone(&chrono::Utc));
                if made.is_ok_and(|m| m >= u) {
                    continue;
                }
            }
            match self.network_remove(&n.id) {
                Ok(_) => removed.push(n.name),
                Err(EngineError::Forbidden(_)) | Err(EngineError::NoSuchNetwork(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Checks what a container asks of network `n` (Docker's errors) and
    /// makes its endpoint configuration.
    fn endpoint_for(&self, n: &Network, o: &EndpointOptions) -> Result<EndpointConfig> {
        let mut ep = EndpointConfig {
            network_id: n.id.clone(),
            aliases: o.aliases.clone(),
            ..Default::default()
        };
        if let Some(ip) = o.ipv4_address.as_deref().filter(|s| !s.is_empty()) {
            let addr: Ipv4Addr = ip
                .parse()
                .map_err(|_| invalid(format!("invalid IPv4 address: {ip}")))?;
            if !n.is_user_defined() {
                return Err(invalid(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
            if !n.has_user_subnet() {
                return Err(invalid("user specified IP address is supported only when connecting to networks with user configured subnets"));
            }
            if !n.subnet_v4().is_some_and(|s| s.contains(addr)) {
                return Err(invalid(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
            ep.ipv4_address = addr.to_string();
        }
        if !o.aliases.is_empty() && !n.is_user_defined() {
            return Err(invalid(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        if let Some(m) = o.mac_address.as_deref().filter(|s| !s.is_empty()) {
            if !valid_mac_address(m) {
                return Err(invalid(format!("{m} is not a valid mac address")));
            }
            ep.mac_address = m.to_ascii_lowercase().replace('-', ":");
        }
        Ok(ep)
    }

    /// `create --network`: what `HostConfig.NetworkMode` records (Docker's:
    /// `default` without the flag, otherwise as given; `container:<full
    /// ID>`) and the networks the container joins (name → endpoint).
    pub(crate) fn resolve_create_network(
        &mut self,
        given: Option<&str>,
        ep: &EndpointOptions,
        hostname_given: bool,
    ) -> Result<(String, BTreeMap<String, EndpointConfig>)> {
        let mode = given.unwrap_or("default").to_string();
        // What only a user-defined network takes.
        let only_user_defined = || -> Result<()> {
            if !ep.aliases.is_empty() {
                return Err(invalid(
                    "network-scoped aliases are only supported for user-defined networks",
                ));
            }
            if ep.ipv4_address.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(invalid(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
            Ok(())
        };
        match mode.as_str() {
            "none" | "host" => {
                only_user_defined()?;
                // Its monitor names the network in its connect/disconnect
                // events (see `plain_network`): made if this store has none.
                if self.store.read().network_by_name(&mode)?.is_none() {
                    self.ensure_predefined_networks()?;
                }
                return Ok((mode, BTreeMap::new()));
            }
            m if m.starts_with("container:") => {
                only_user_defined()?;
                if ep.mac_address.as_deref().is_some_and(|s| !s.is_empty()) {
                    return Err(invalid(
                        "conflicting options: mac-address and the network mode",
                    ));
                }
                if hostname_given {
                    return Err(invalid(
                        "conflicting options: hostname and the network mode",
                    ));
                }
                let target = &m["container:".len()..];
                if target.is_empty() {
                    return Err(invalid(
                        "Invalid network mode: invalid container format container:<name|id>",
                    ));
                }
                let id = self.find_container(target)?.id;
                return Ok((format!("container:{id}"), BTreeMap::new()));
            }
            "" => return Err(invalid("no name set for network")),
            _ => {}
        }
        let net_name = if mode == "default" {
            "bridge"
        } else {
            mode.as_str()
        };
        if mode == "default" && self.opts.network.bridge_disabled() {
            // dockerd --bridge=none: no default network, the container gets none.
            only_user_defined()?;
            return Ok((mode, BTreeMap::new()));
        }
        let n = self.find_network(net_name)?;
        // `host` or `none` named by ID: recorded by name.
        if n.spec.driver == "host" || n.spec.driver == "null" {
            only_user_defined()?;
            return Ok((n.name.clone(), BTreeMap::new()));
        }
        if !ep.aliases.is_empty() && !n.is_user_defined() {
            return Err(invalid(
                "network-scoped aliases are only supported for user-defined networks",
            ));
        }
        let e = self.endpoint_for(&n, ep)?;
        Ok((mode, BTreeMap::from([(n.name.clone(), e)])))
    }

    /// `network connect`: a container that is not running gets the network
    /// in its configuration (joined at its next start); a running one goes
    /// through the datapath ([`Engine::connect_running`]).
    pub fn network_connect(
        &mut self,
        network: &str,
        container: &str,
        o: &EndpointOptions,
    ) -> Result<()> {
        let (v, _lock) = self.locked_view(container)?;
        let n = self.find_network(network)?;
        let mode = v.host_config.network_mode.as_str();
        if n.spec.driver == "host" {
            return Err(EngineError::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if mode == "host" || mode.starts_with("container:") {
            return Err(EngineError::Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        if mode == "none" || n.spec.driver == "null" {
            return Err(EngineError::Forbidden(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
            ));
        }
        let ep = self.endpoint_for(&n, o)?;
        let on_it = v.host_config.networks.contains_key(&n.name)
            || v.host_config
                .networks
                .values()
                .any(|e| e.network_id == n.id);
        if v.running() {
            if on_it {
                return Err(EngineError::Forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    v.name, n.name
                )));
            }
            self.connect_running(&v, &n, &ep)?;
            let mut hc = v.host_config.clone();
            hc.networks.insert(n.name.clone(), ep);
            self.save_host_config(&v, &hc)?;
            self.emit_network(
                "connect",
                &n.id,
                &n.name,
                &n.spec.driver,
                Some(v.id.as_str()),
            );
            return Ok(());
        }
        // Docker: connecting a stopped container to a network it is
        // already on changes nothing.
        if v.host_config.networks.contains_key(&n.name)
            || v.host_config
                .networks
                .values()
                .any(|e| e.network_id == n.id)
        {
            return Ok(());
        }
        let mut hc = v.host_config.clone();
        hc.networks.insert(n.name.clone(), ep);
        self.save_host_config(&v, &hc)
    }

    /// `network disconnect`: the network leaves a stopped container's
    /// configuration; a running one goes through the datapath
    /// ([`Engine::disconnect_running`]).
    pub fn network_disconnect(
        &mut self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<()> {
        let (v, _lock) = self.locked_view(container)?;
        // A network removed meanwhile is still left by its recorded name.
        let key = match self.find_network(network) {
            Ok(n) => {
                let mode = v.host_config.network_mode.as_str();
                if (n.spec.driver == "host" || n.spec.driver == "null") && mode == n.name {
                    if v.running() {
                        return Err(EngineError::Forbidden(
                            "container cannot be disconnected from host network or connected to host network".into(),
                        ));
                    }
                    // Docker drops the entry of a stopped container and
                    // keeps its mode; berth records none for these.
                    return Ok(());
                }
                let key = v
                    .host_config
                    .networks
                    .iter()
                    .find(|(name, e)| **name == n.name || e.network_id == n.id)
                    .map(|(name, _)| name.clone());
                if v.running() {
                    let Some(key) = key else {
                        return Err(EngineError::Forbidden(format!(
                            "container {} is not connected to the network {network}",
                            v.id
                        )));
                    };
                    self.disconnect_running(&v, &n, force)?;
                    let mut hc = v.host_config.clone();
                    hc.networks.remove(&key);
                    self.save_host_config(&v, &hc)?;
                    self.emit_network(
                        "disconnect",
                        &n.id,
                        &n.name,
                        &n.spec.driver,
                        Some(v.id.as_str()),
                    );
                    return Ok(());
                }
                v.host_config
                    .networks
                    .iter()
                    .find(|(name, e)| **name == n.name || e.network_id == n.id)
                    .map(|(name, _)| name.clone())
            }
            Err(EngineError::NoSuchNetwork(_)) if !v.running() => v
                .host_config
                .networks
                .contains_key(network)
                .then(|| network.to_string()),
            Err(e) => return Err(e),
        };
        let Some(key) = key else {
            return Err(EngineError::Forbidden(format!(
                "container {} is not connected to the network {network}",
                v.id
            )));
        };
        let mut hc = v.host_config.clone();
        hc.networks.remove(&key);
        self.save_host_config(&v, &hc)
    }

    /// The container, read again once its lock is held (the lock comes
    /// with it): its configuration is changed under the lock.
    fn locked_view(&self, container: &str) -> Result<(ContainerView, crate::ContainerLock)> {
        let id = self.find_container(container)?.id;
        let lock = self.lock_container(&id)?;
        let row = self
            .store
            .read()
            .container(&id)?
            .ok_or_else(|| EngineError::NoSuchContainer(container.to_string()))?;
        Ok((self.view(row)?, lock))
    }

    fn save_host_config(&mut self, v: &ContainerView, hc: &berth_types::HostConfig) -> Result<()> {
        let text = serde_json::to_string(hc).map_err(|e| invalid(format!("host config: {e}")))?;
        let id = v.id.clone();
        self.store
            .transaction(|t| t.update_container_host_config(&id, &text))?;
        Ok(())
    }

    /// The datapath's hook: joins a running container to `network`.
    fn connect_running(
        &mut self,
        v: &ContainerView,
        network: &Network,
        ep: &EndpointConfig,
    ) -> Result<()> {
        let mut ep = ep.clone();
        ep.network_id = network.id.clone();
        self.datapath_connect(v, &network.name, &ep)
    }

    /// The datapath's hook: takes a running container off `network`.
    fn disconnect_running(
        &mut self,
        v: &ContainerView,
        network: &Network,
        _force: bool,
    ) -> Result<()> {
        self.datapath_disconnect(v, &network.id)
    }
}

fn spec_of_driver(driver: &str) -> NetworkSpec {
    NetworkSpec {
        driver: driver.into(),
        ..Default::default()
    }
}

fn pools_of(cfg: &NetworkConfig) -> Vec<ipam::AddressPool> {
    if cfg.default_address_pools.is_empty() {
        ipam::default_pools()
    } else {
        cfg.default_address_pools.clone()
    }
}

fn no_v4_pool() -> EngineError {
    invalid("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_endpoint_ids() {
        assert!(valid_mac_address("02:42:ac:11:00:99"));
        assert!(valid_mac_address("02-42-AC-11-00-99"));
        assert!(!valid_mac_address("02:42:ac:11:00"));
        assert!(!valid_mac_address("zz:42:ac:11:00:99"));
        assert_eq!(
            mac_address_for(Ipv4Addr::new(172, 17, 0, 2)),
            "02:42:ac:11:00:02"
        );
        let a = endpoint_id("n", "c");
        assert_eq!(a.len(), 64);
        assert_eq!(a, endpoint_id("n", "c"));
        assert_ne!(a, endpoint_id("n", "d"));
    }

    #[test]
    fn v6_cidrs() {
        assert!(parse_v6_cidr("fd00::/64"));
        assert!(!parse_v6_cidr("fd00::/129"));
        assert!(!parse_v6_cidr("fd00::"));
        assert!(!parse_v6_cidr("10.0.0.0/8"));
    }

    fn net(name: &str, subnet: &str, auto: bool) -> Network {
        let mut options = BTreeMap::new();
        if auto {
            options.insert(AUTO_SUBNET_OPTION.to_string(), "true".to_string());
        }
        Network {
            id: "0".repeat(64),
            name: name.into(),
            created: String::new(),
            spec: NetworkSpec {
                driver: "bridge".into(),
                ipam: vec![IpamConfig {
                    subnet: subnet.into(),
                    ..Default::default()
                }],
                options,
                ..Default::default()
            },
        }
    }

    #[test]
    fn gateways_and_user_subnets() {
        let n = net("n2", "10.1.2.3/16", false);
        assert_eq!(n.gateway_v4(), Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert!(n.has_user_subnet());
        assert!(!net("n1", "172.18.0.0/16", true).has_user_subnet());
        assert!(net("bridge", "172.17.0.0/16", false).is_predefined());
        let mut r = net("n3", "10.30.0.0/16", false);
        r.spec.ipam[0].ip_range = "10.30.1.0/24".into();
        r.spec.ipam[0].gateway = "10.30.0.254".into();
        let (sub, range, gw) = r.pool_v4().unwrap();
        assert_eq!(sub.to_string(), "10.30.0.0/16");
        assert_eq!(
            range.map(|r| r.to_string()).as_deref(),
            Some("10.30.1.0/24")
        );
        assert_eq!(gw, Ipv4Addr::new(10, 30, 0, 254));
        let taken = BTreeSet::from([gw]);
        assert_eq!(
            ipam::allocate(&sub, range.as_ref(), &taken),
            Some(Ipv4Addr::new(10, 30, 1, 0))
        );
    }
}
