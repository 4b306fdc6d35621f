//! A container's network at each start, and its release (issue 10).
//!
//! At a start, under the container's lock and then the root's network lock
//! (`<run-root>/network.lock`, which serialises address leases, bridge
//! creation, nftables changes and names files): stale endpoints of
//! containers that are gone are released, the container gets an address on
//! each of its networks (an `endpoints` row, unique by constraint), each
//! network's bridge is made if it is missing (netlink; NAT and isolation in
//! berth's nftables table), host ports are chosen for its published ports
//! and forwarded in one nftables transaction, its `/etc/hosts` and
//! `/etc/resolv.conf` are rewritten, the names files of its user-defined
//! networks are regenerated, and the whole plan is written to
//! `network.json` for the monitor, which makes the veths inside the new
//! network namespace and holds the host ports while the container runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use berth_net::plan::{DnsPlan, EndpointPlan, NetworkPlan, PublishedPort};
use berth_types::{ContainerId, NetworkSpec};

use crate::container::{load_state, ContainerView};
use crate::{io_ctx, Engine, EngineError, Result};

/// The default bridge network's name.
pub(crate) const DEFAULT_BRIDGE: &str = "bridge";

/// The network lock of a root, held while it is alive.
pub(crate) struct NetLock(#[allow(dead_code)] File);

impl Engine {
    pub(crate) fn network_lock(&self) -> Result<NetLock> {
        let path = self.opts.run_root.join("network.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_ctx(format!("opening {}", path.display())))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_ctx("locking the network state")(e.into()))?;
        Ok(NetLock(f))
    }

    /// `<run-root>/networks/<id>.names`: who answers to which name on a
    /// user-defined network (read by the monitors' DNS responders).
    pub(crate) fn names_file(&self, network_id: &str) -> PathBuf {
        self.opts
            .run_root
            .join("networks")
            .join(format!("{network_id}.names"))
    }

    /// The plan a container's network had at its last start (None: it has
    /// no network of its own, or never started).
    pub(crate) fn network_plan_of(dir: &Path) -> Option<NetworkPlan> {
        let data = std::fs::read(dir.join("network.json")).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Sets up what the container's network needs before its monitor
    /// starts; writes (or removes) `network.json`. On error nothing of it
    /// is left.
    pub(crate) fn prepare_network(&self, v: &ContainerView) -> Result<()> {
        let plan_path = v.dir.join("network.json");
        if v.host_config.networks.is_empty() {
            let _ = std::fs::remove_file(&plan_path);
            return Ok(());
        }
        let _lock = self.network_lock()?;
        // Starting again: its own marker of an earlier end is void.
        let ended = self.ended_dir();
        let _ = std::fs::create_dir_all(&ended);
        let _ = std::fs::remove_file(ended.join(v.id.as_str()));
        // What a start frees costs it O(1) in the number of containers:
        // the endpoints of containers that ended since (their monitors'
        // markers). A published port takes the full sweep (a monitor
        // killed with -9 leaves its port elements, which a new element for
        // the same host port must not meet), and so does a lease that finds
        // no address, before it is tried again.
        if Self::publishes_ports(v) {
            self.sweep_locked(Some(&v.id), None)?;
        } else {
            self.sweep_ended_locked(Some(&v.id));
        }
        let planned = match self.plan_locked(v) {
            Err(EngineError::Conflict(_)) => {
                self.release_locked(&v.id, None);
                self.sweep_locked(Some(&v.id), None)?;
                self.plan_locked(v)
            }
            r => r,
        };
        match planned {
            Ok(plan) => {
                let data = serde_json::to_vec(&plan).map_err(|e| EngineError::Runtime {
                    code: 125,
                    message: format!("serializing network.json: {e}"),
                })?;
                write_atomic(&plan_path, &data).map_err(io_ctx("writing network.json"))?;
                Ok(())
            }
            Err(e) => {
                self.release_locked(&v.id, None);
                Err(e)
            }
        }
    }

    fn plan_locked(&self, v: &ContainerView) -> Result<NetworkPlan> {
        let store = self.store.read();
        store.delete_endpoints_of(&v.id)?;
        // The network of `--network` first (eth0), then the others by name.
        let mut order: Vec<(&String, &berth_types::EndpointConfig)> =
            v.host_config.networks.iter().collect();
        order.sort_by_key(|(name, _)| **name != v.host_config.network_mode);
        let mut plan = NetworkPlan {
            lock: Some(self.opts.run_root.join("network.lock")),
            ..Default::default()
        };
        let mut specs = Vec::new();
        for (i, (name, ec)) in order.into_iter().enumerate() {
            let has_route = plan.endpoints.iter().any(|e| e.default_route);
            let (ep, row, spec, subnet) = self.lease_endpoint(v, i, name, ec, has_route)?;
            plan.endpoints.push(ep);
            specs.push((row, spec, subnet));
        }
        // Bridges (made when missing: a new network, or after a reboot).
        let mut script = String::new();
        for (row, spec, subnet) in &specs {
            let gateway = plan
                .endpoints
                .iter()
                .find(|e| e.network_id == row.id)
                .map(|e| (e.gateway, e.prefix));
            if let Some((gw, prefix)) = gateway {
                if crate::netdev::ensure_bridge(&spec.bridge, gw, prefix)? {
                    if script.is_empty() {
                        script += &berth_net::nft::base();
                    }
                    script += &berth_net::nft::add_network(&spec.bridge, subnet, spec.internal);
                }
            }
        }
        // Published ports, on the first network's address.
        if let Some(first) = plan.endpoints.first() {
            plan.ports = self.publish_ports(v, first.ip)?;
        }
        if !script.is_empty() || !plan.ports.is_empty() {
            let nft = berth_net::nft::find_nft().ok_or_else(|| EngineError::Runtime {
                code: 125,
                message: berth_net::nft::NftError::Missing.to_string(),
            })?;
            // A bridge made now: its elements (and the table) first.
            berth_net::nft::apply(&nft, &script).map_err(|e| EngineError::Runtime {
                code: 125,
                message: e.to_string(),
            })?;
            // The ports' elements are the monitor's to add, while the
            // kernel moves the container into its cgroup; this says how to
            // restate the table if someone flushed it (restating it at
            // every start would cost each one ~5 ms).
            if !plan.ports.is_empty() {
                let mut again = berth_net::nft::base();
                for (_, spec, subnet) in &specs {
                    again += &berth_net::nft::add_network(&spec.bridge, subnet, spec.internal);
                }
                plan.nft_restate = again;
            }
            plan.nft = Some(nft);
        }
        // The embedded DNS of user-defined networks.
        let user_nets: Vec<&EndpointPlan> = plan
            .endpoints
            .iter()
            .filter(|e| e.network_name != DEFAULT_BRIDGE)
            .collect();
        if !user_nets.is_empty() {
            plan.dns = Some(DnsPlan {
                networks: user_nets
                    .iter()
                    .map(|e| (e.network_name.clone(), self.names_file(&e.network_id)))
                    .collect(),
                ndots_set: v
                    .host_config
                    .dns_options
                    .iter()
                    .flatten()
                    .any(|o| o.starts_with("ndots:")),
                upstream: self.dns_upstream(v),
            });
        }
        let ids: Vec<String> = plan
            .endpoints
            .iter()
            .map(|e| e.network_id.clone())
            .collect();
        self.write_names(&ids, Some(&v.id))?;
        self.write_etc_files(v, &plan)?;
        Ok(plan)
    }

    /// Gives the container an address on one network (an `endpoints` row)
    /// and describes its interface there (`eth<index>`). Run under the
    /// network lock.
    fn lease_endpoint(
        &self,
        v: &ContainerView,
        index: usize,
        name: &str,
        ec: &berth_types::EndpointConfig,
        has_default_route: bool,
    ) -> Result<(EndpointPlan, berth_store::NetworkRow, NetworkSpec, String)> {
        let store = self.store.read();
        let row = match store.network(&ec.network_id)? {
            Some(r) => r,
            None => store
                .network_by_name(name)?
                .ok_or_else(|| EngineError::NoSuchNetwork(name.to_string()))?,
        };
        let spec: NetworkSpec = serde_json::from_str(&row.spec).map_err(|e| {
            EngineError::InvalidArgument(format!("network {}: corrupt spec: {e}", row.name))
        })?;
        let pool = spec
            .ipam
            .iter()
            .find(|p| berth_net::ipam::Subnet::parse(&p.subnet).is_ok())
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!("network {} has no subnet", row.name))
            })?;
        let sub = berth_net::ipam::Subnet::parse(&pool.subnet)
            .map_err(|e| EngineError::InvalidArgument(format!("network {}: {e}", row.name)))?
            .normalized();
        let (subnet, prefix) = (sub.network(), sub.prefix());
        let gateway: Ipv4Addr = pool
            .gateway
            .parse()
            .unwrap_or_else(|_| sub.default_gateway());
        let mut taken: BTreeSet<Ipv4Addr> = store
            .endpoints_on(&row.id)?
            .iter()
            .filter_map(|e| e.ip.parse().ok())
            .collect();
        taken.insert(gateway);
        let ip = if ec.ipv4_address.is_empty() {
            let range = berth_net::ipam::Subnet::parse(&pool.ip_range).ok();
            berth_net::ipam::allocate(&sub, range.as_ref(), &taken).ok_or_else(|| {
                EngineError::Conflict(format!(
                    "no available IPv4 addresses on this network's address pools: {} ({})",
                    row.name, row.id
                ))
            })?
        } else {
            ec.ipv4_address.parse().map_err(|_| {
                EngineError::InvalidArgument(format!("invalid IPv4 address: {}", ec.ipv4_address))
            })?
        };
        store
            .insert_endpoint(&berth_store::EndpointRow {
                network_id: row.id.clone(),
                container_id: v.id.clone(),
                ip: ip.to_string(),
            })
            .map_err(|e| match e {
                berth_store::StoreError::AddressInUse(_) => EngineError::Conflict(format!(
                    "Address already in use: {ip} on network {}",
                    row.name
                )),
                e => e.into(),
            })?;
        let mut aliases = Vec::new();
        if row.name != DEFAULT_BRIDGE {
            aliases.push(v.name.clone());
            aliases.extend(ec.aliases.iter().cloned());
            aliases.push(v.id.short().to_string());
        }
        let mac = if ec.mac_address.is_empty() {
            crate::network::mac_address_for(ip)
        } else {
            ec.mac_address.clone()
        };
        let ep = EndpointPlan {
            network_id: row.id.clone(),
            network_name: row.name.clone(),
            bridge: spec.bridge.clone(),
            host_veth: format!("vb{}{index}", &v.id.as_str()[..12]),
            ifname: format!("eth{index}"),
            ip,
            prefix,
            gateway,
            mac,
            default_route: !spec.internal && !has_default_route,
            aliases,
            endpoint_id: crate::network::endpoint_id(&row.id, v.id.as_str()),
        };
        Ok((ep, row, spec, format!("{subnet}/{prefix}")))
    }

    /// Makes a network's bridge when it is missing, with its NAT and
    /// isolation elements (and the table, the first time).
    fn bridge_up(&self, spec: &NetworkSpec, ep: &EndpointPlan, subnet: &str) -> Result<()> {
        if !crate::netdev::ensure_bridge(&spec.bridge, ep.gateway, ep.prefix)? {
            return Ok(());
        }
        let nft = berth_net::nft::find_nft().ok_or_else(|| EngineError::Runtime {
            code: 125,
            message: berth_net::nft::NftError::Missing.to_string(),
        })?;
        let script = berth_net::nft::base()
            + &berth_net::nft::add_network(&spec.bridge, subnet, spec.internal);
        berth_net::nft::apply(&nft, &script).map_err(|e| EngineError::Runtime {
            code: 125,
            message: e.to_string(),
        })
    }

    /// `network rm`: the network's bridge and its NAT and isolation
    /// elements go (a bridge never made is fine).
    pub(crate) fn datapath_remove_bridge(&self, spec: &NetworkSpec) -> Result<()> {
        if spec.bridge.is_empty() {
            return Ok(());
        }
        let _lock = self.network_lock()?;
        crate::netdev::delete_link(&spec.bridge)?;
        let pool = spec
            .ipam
            .iter()
            .find(|p| berth_net::ipam::Subnet::parse(&p.subnet).is_ok());
        if let (Some(pool), Some(nft)) = (pool, berth_net::nft::find_nft()) {
            if let Ok(sub) = berth_net::ipam::Subnet::parse(&pool.subnet) {
                let subnet = sub.normalized().to_string();
                // Only when the table is there: a network never used made none.
                if std::process::Command::new(&nft)
                    .args(["list", "table", "ip", "berth"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
                {
                    let script =
                        berth_net::nft::remove_network(&spec.bridge, &subnet, spec.internal);
                    berth_net::nft::apply(&nft, &script).map_err(|e| EngineError::Runtime {
                        code: 125,
                        message: e.to_string(),
                    })?;
                }
            }
        }
        Ok(())
    }

    /// `network connect` of a running container: an address on the
    /// network, a new interface in its namespace now, its names on the
    /// network, and its `network.json` saying so.
    pub(crate) fn datapath_connect(
        &self,
        v: &ContainerView,
        name: &str,
        ec: &berth_types::EndpointConfig,
    ) -> Result<()> {
        let _lock = self.network_lock()?;
        let mut plan = Self::network_plan_of(&v.dir).unwrap_or_default();
        let index = (0..10)
            .find(|i| !plan.endpoints.iter().any(|e| e.ifname == format!("eth{i}")))
            .ok_or_else(|| EngineError::Conflict("too many networks".into()))?;
        let has_route = plan.endpoints.iter().any(|e| e.default_route);
        let (ep, row, spec, subnet) = self.lease_endpoint(v, index, name, ec, has_route)?;
        let undo = |e: EngineError| {
            let _ = self.store.read().delete_endpoint(&row.id, &v.id);
            e
        };
        self.bridge_up(&spec, &ep, &subnet).map_err(undo)?;
        let netns = self.container_netns(v).map_err(undo)?;
        berth_net::setup::attach_endpoint(&netns, &ep).map_err(|e| {
            undo(EngineError::Runtime {
                code: 125,
                message: format!("network {}: {e}", row.name),
            })
        })?;
        if row.name != DEFAULT_BRIDGE {
            let dns = plan.dns.get_or_insert_with(|| DnsPlan {
                upstream: self.dns_upstream(v),
                ..Default::default()
            });
            dns.networks
                .push((row.name.clone(), self.names_file(&row.id)));
        }
        let had_dns = Self::network_plan_of(&v.dir).is_some_and(|p| p.dns.is_some());
        plan.endpoints.push(ep);
        if plan.lock.is_none() {
            plan.lock = Some(self.opts.run_root.join("network.lock"));
        }
        self.save_plan(v, &plan)?;
        self.write_names(std::slice::from_ref(&row.id), None)?;
        if plan.dns.is_some() {
            if !had_dns {
                // Its first user-defined network: names through the
                // embedded DNS from now on.
                self.write_resolv_conf(v, true)?;
            }
            self.tell_monitor(v, "network");
        }
        Ok(())
    }

    fn write_resolv_conf(&self, v: &ContainerView, embedded: bool) -> Result<()> {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let text = resolv_conf(
            &host,
            embedded,
            v.host_config.dns.as_deref().unwrap_or_default(),
            v.host_config.dns_search.as_deref().unwrap_or_default(),
            v.host_config.dns_options.as_deref().unwrap_or_default(),
        );
        std::fs::write(v.dir.join("resolv.conf"), text).map_err(io_ctx("writing resolv.conf"))
    }

    /// `network disconnect` of a running container: its interface on the
    /// network goes (with the veth), its address and names are freed.
    pub(crate) fn datapath_disconnect(&self, v: &ContainerView, network_id: &str) -> Result<()> {
        let _lock = self.network_lock()?;
        let mut plan = Self::network_plan_of(&v.dir).unwrap_or_default();
        if let Some(pos) = plan
            .endpoints
            .iter()
            .position(|e| e.network_id == network_id)
        {
            let ep = plan.endpoints.remove(pos);
            crate::netdev::delete_link(&ep.host_veth)?;
            if let Some(dns) = &mut plan.dns {
                dns.networks.retain(|(n, _)| *n != ep.network_name);
            }
        }
        self.store.read().delete_endpoint(network_id, &v.id)?;
        self.save_plan(v, &plan)?;
        self.write_names(&[network_id.to_string()], None)?;
        if plan.dns.is_some() {
            self.tell_monitor(v, "network");
        }
        Ok(())
    }

    fn save_plan(&self, v: &ContainerView, plan: &NetworkPlan) -> Result<()> {
        let data = serde_json::to_vec(plan).map_err(|e| EngineError::Runtime {
            code: 125,
            message: format!("serializing network.json: {e}"),
        })?;
        write_atomic(&v.dir.join("network.json"), &data).map_err(io_ctx("writing network.json"))
    }

    /// The network namespace of a running container's first process, once
    /// that process is proven to be the container's (its cgroup).
    fn container_netns(&self, v: &ContainerView) -> Result<File> {
        let cgroup = self.cgroup_rel(&v.id, &v.host_config);
        berth_runtime::process::pin_process(v.state.pid, &cgroup, &["ns/net"])
            .ok()
            .and_then(|mut f| f.pop())
            .ok_or_else(|| EngineError::Conflict(format!("container {} is not running", v.id)))
    }

    /// Where the embedded DNS sends names it does not know: `--dns`, else
    /// the host's resolvers (reached from the host's namespace, so a
    /// loopback resolver works).
    fn dns_upstream(&self, v: &ContainerView) -> Vec<SocketAddr> {
        let given = v.host_config.dns.clone().unwrap_or_default();
        let servers: Vec<String> = if given.is_empty() {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            nameservers(&text)
        } else {
            given
        };
        servers
            .iter()
            .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect()
    }

    /// `/etc/hosts` and `/etc/resolv.conf` as Docker writes them for a
    /// container on a bridge or user-defined network.
    fn write_etc_files(&self, v: &ContainerView, plan: &NetworkPlan) -> Result<()> {
        let mut hosts = crate::container::HOSTS_BASE.to_string();
        for h in v.host_config.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = h.split_once(':') {
                let ip = if ip == "host-gateway" {
                    plan.endpoints
                        .first()
                        .map(|e| e.gateway.to_string())
                        .unwrap_or_default()
                } else {
                    ip.to_string()
                };
                hosts += &format!("{ip}\t{name}\n");
            }
        }
        if let Some(e) = plan.endpoints.first() {
            let mut names = v.config.hostname.clone();
            if !v.config.domainname.is_empty() {
                names = format!("{names}.{} {names}", v.config.domainname);
            }
            hosts += &format!("{}\t{names}\n", e.ip);
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = resolv_conf(
            &host_resolv,
            plan.dns.is_some(),
            v.host_config.dns.as_deref().unwrap_or_default(),
            v.host_config.dns_search.as_deref().unwrap_or_default(),
            v.host_config.dns_options.as_deref().unwrap_or_default(),
        );
        for (name, content) in [("hosts", hosts), ("resolv.conf", resolv)] {
            // In place: a running container's bind mount holds the inode.
            std::fs::write(v.dir.join(name), content).map_err(io_ctx(format!("writing {name}")))?;
        }
        Ok(())
    }

    /// Rewrites the names files of these networks from their endpoints
    /// (run under the network lock).
    pub(crate) fn write_names(
        &self,
        networks: &[String],
        starting: Option<&ContainerId>,
    ) -> Result<()> {
        let dir = self.opts.run_root.join("networks");
        std::fs::create_dir_all(&dir).map_err(io_ctx(format!("creating {}", dir.display())))?;
        let store = self.store.read();
        for id in networks.iter().collect::<BTreeSet<_>>() {
            let Some(row) = store.network(id)? else {
                let _ = std::fs::remove_file(self.names_file(id));
                continue;
            };
            if row.name == DEFAULT_BRIDGE {
                continue;
            }
            let mut text = String::new();
            for e in store.endpoints_on(id)? {
                let dir = self.container_dir(&e.container_id);
                // A container that ended is no name (its monitor took its
                // lines out; its endpoint waits for a sweep).
                if Some(&e.container_id) != starting
                    && !matches!(
                        load_state(&dir).status,
                        crate::Status::Running | crate::Status::Restarting
                    )
                {
                    continue;
                }
                let Some(plan) = Self::network_plan_of(&dir) else {
                    continue;
                };
                if let Some(ep) = plan.endpoints.iter().find(|p| p.network_id == *id) {
                    if ep.ip.to_string() == e.ip {
                        text += &format!("{} {}\n", ep.ip, ep.aliases.join(" "));
                    }
                }
            }
            write_atomic(&self.names_file(id), text.as_bytes())
                .map_err(io_ctx("writing a names file"))?;
        }
        Ok(())
    }

    /// Releases what a container held on its networks: its endpoints, its
    /// names, its port rules. Safe to repeat.
    pub(crate) fn release_network(&self, id: &ContainerId) {
        if let Ok(_lock) = self.network_lock() {
            self.release_locked(id, None);
        }
    }

    fn release_locked(&self, id: &ContainerId, plan: Option<NetworkPlan>) {
        let _ = std::fs::remove_file(self.ended_dir().join(id.as_str()));
        let dir = self.container_dir(id);
        let plan = plan.or_else(|| Self::network_plan_of(&dir));
        let mut networks: Vec<String> = self
            .store
            .read()
            .endpoints_of(id)
            .map(|v| v.into_iter().map(|e| e.network_id).collect())
            .unwrap_or_default();
        let _ = self.store.read().delete_endpoints_of(id);
        if let Some(plan) = plan {
            networks.extend(plan.endpoints.iter().map(|e| e.network_id.clone()));
            if !plan.ports.is_empty() {
                if let Some(nft) = plan.nft.clone().or_else(berth_net::nft::find_nft) {
                    let _ = berth_net::nft::apply(&nft, &berth_net::nft::remove_ports(&plan.ports));
                }
            }
        }
        let _ = self.write_names(&networks, None);
    }

    /// `<run-root>/networks/ended`: the markers of containers whose
    /// monitors saw them end ([`berth_net::plan::ended_marker`]).
    fn ended_dir(&self) -> PathBuf {
        self.opts.run_root.join("networks").join("ended")
    }

    /// Whether a start of `v` publishes a port (`-p`, or `-P` with one
    /// exposed).
    fn publishes_ports(v: &ContainerView) -> bool {
        !v.host_config.port_bindings.is_empty()
            || (v.host_config.publish_all_ports && !v.config.exposed_ports.is_empty())
    }

    /// Releases one container's endpoints if it no longer runs (a monitor
    /// gone, a host rebooted) and nobody holds its lock (a start in
    /// progress does). Returns whether it no longer needs looking at
    /// (released, or running). Run under the network lock.
    fn sweep_one_locked(&self, id: &ContainerId) -> bool {
        let dir = self.container_dir(id);
        let state = load_state(&dir);
        if matches!(
            state.status,
            crate::Status::Running | crate::Status::Restarting
        ) {
            return true;
        }
        let Ok(lock) = File::open(dir.join("lock")) else {
            self.release_locked(id, None);
            return true;
        };
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
            self.release_locked(id, None);
            return true;
        }
        false
    }

    /// The sweep of a start: only the containers whose monitors marked
    /// their end. Run under the network lock.
    fn sweep_ended_locked(&self, except: Option<&ContainerId>) {
        let dir = self.ended_dir();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Ok(id) = ContainerId::parse(&name.to_string_lossy()) else {
                let _ = std::fs::remove_file(e.path());
                continue;
            };
            if Some(&id) == except {
                continue;
            }
            if self.sweep_one_locked(&id) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Releases the endpoints of containers that no longer run (a monitor
    /// killed, a host rebooted) and whose lock nobody holds (a start in
    /// progress holds it), but those of `except` and of `running` (seen
    /// running a moment ago by the caller: at worst one is freed by the
    /// next sweep). Run under the network lock.
    fn sweep_locked(
        &self,
        except: Option<&ContainerId>,
        running: Option<&BTreeSet<&ContainerId>>,
    ) -> Result<()> {
        let endpoints = self.store.read().all_endpoints()?;
        let mut seen = BTreeSet::new();
        for e in endpoints {
            if Some(&e.container_id) == except
                || running.is_some_and(|r| r.contains(&e.container_id))
                || !seen.insert(e.container_id.clone())
            {
                continue;
            }
            self.sweep_one_locked(&e.container_id);
        }
        Ok(())
    }

    /// `sweep_locked` for commands that find containers gone (`ps`, `rm`).
    pub fn sweep_networks(&self) {
        self.sweep_networks_but(&[]);
    }

    /// `sweep_networks`, knowing that the containers of `seen` that are
    /// running need no look (`ps` has just read their states): with every
    /// endpoint's container among them, neither the network lock nor a
    /// file is touched.
    pub fn sweep_networks_but(&self, seen: &[ContainerView]) {
        let Ok(endpoints) = self.store.read().all_endpoints() else {
            return;
        };
        let running: BTreeSet<&ContainerId> =
            seen.iter().filter(|v| v.running()).map(|v| &v.id).collect();
        if endpoints.iter().all(|e| running.contains(&e.container_id)) {
            return;
        }
        if let Ok(_lock) = self.network_lock() {
            let _ = self.sweep_locked(None, Some(&running));
        }
    }

    /// A running container's ports as `ps` and `port` show them: every
    /// published one with its host side, and each exposed one that is not
    /// published (without). None for a container that is not running.
    pub fn container_ports(&self, v: &ContainerView) -> Vec<berth_net::ports::ActualPort> {
        // Without a network there is no plan (the start removed it), and
        // without a port to show nothing needs reading: `ps` of many
        // containers reads no file here for most of them.
        let h = &v.host_config;
        if !v.running()
            || h.networks.is_empty()
            || (h.port_bindings.is_empty()
                && !h.publish_all_ports
                && v.config.exposed_ports.is_empty())
        {
            return Vec::new();
        }
        let plan = Self::network_plan_of(&v.dir).unwrap_or_default();
        let mut out: Vec<berth_net::ports::ActualPort> = plan
            .ports
            .iter()
            .map(|p| berth_net::ports::ActualPort {
                container_port: p.container_port,
                proto: p.proto.clone(),
                host_ip: p.host_ip.to_string(),
                host_port: p.host_port,
            })
            .collect();
        if plan.endpoints.is_empty() {
            return out;
        }
        for key in v.config.exposed_ports.keys() {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            if !out
                .iter()
                .any(|p| p.container_port == port && p.proto == proto)
            {
                out.push(berth_net::ports::ActualPort {
                    container_port: port,
                    proto: proto.to_string(),
                    host_ip: String::new(),
                    host_port: 0,
                });
            }
        }
        out
    }

    /// The host sides of a container's published ports, chosen now.
    fn publish_ports(&self, v: &ContainerView, ip: Ipv4Addr) -> Result<Vec<PublishedPort>> {
        let mut wanted: BTreeMap<String, Vec<berth_types::PortBinding>> =
            v.host_config.port_bindings.clone();
        if v.host_config.publish_all_ports {
            for p in v.config.exposed_ports.keys() {
                wanted.entry(p.clone()).or_insert_with(|| {
                    vec![berth_types::PortBinding {
                        host_ip: String::new(),
                        host_port: String::new(),
                    }]
                });
            }
        }
        crate::netdev::choose_host_ports(self, v, ip, &wanted)
    }
}

/// Writes `path` whole or not at all (a temp file beside it, renamed).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The nameservers of a resolv.conf text.
pub(crate) fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .map(str::to_string)
        .collect()
}

/// A container's resolv.conf, as Docker makes it: with the embedded DNS
/// (`127.0.0.11`, `ndots:0`) on user-defined networks, else the host's
/// resolvers without the loopback ones (Google's when none is left), each
/// overridden by `--dns`, `--dns-search`, `--dns-option`.
pub(crate) fn resolv_conf(
    host: &str,
    embedded: bool,
    dns: &[String],
    search: &[String],
    options: &[String],
) -> String {
    let host_search: Vec<String> = host
        .lines()
        .filter_map(|l| l.strip_prefix("search "))
        .flat_map(|s| s.split_whitespace().map(str::to_string))
        .collect();
    let host_options: Vec<String> = host
        .lines()
        .filter_map(|l| l.strip_prefix("options "))
        .flat_map(|s| s.split_whitespace().map(str::to_string))
        .collect();
    let mut out = String::new();
    let search = if search.is_empty() {
        &host_search
    } else {
        search
    };
    if !search.is_empty() && search != ["."] {
        out += &format!("search {}\n", search.join(" "));
    }
    if embedded {
        out += "nameserver 127.0.0.11\n";
        let mut opts: Vec<String> = if options.is_empty() {
            host_options
        } else {
            options.to_vec()
        };
        if !opts.iter().any(|o| o.starts_with("ndots:")) {
            opts.push("ndots:0".into());
        }
        out += &format!("options {}\n", opts.join(" "));
        return out;
    }
    let servers: Vec<String> = if dns.is_empty() {
        let own: Vec<String> = nameservers(host)
            .into_iter()
            .filter(|s| !(s.starts_with("127.") || s == "::1"))
            .collect();
        if own.is_empty() {
            vec!["8.8.8.8".into(), "8.8.4.4".into()]
        } else {
            own
        }
    } else {
        dns.to_vec()
    };
    for s in servers {
        out += &format!("nameserver {s}\n");
    }
    let opts = if options.is_empty() {
        host_options
    } else {
        options.to_vec()
    };
    if !opts.is_empty() {
        out += &format!("options {}\n", opts.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_confs() {
        let host = "search example.com\nnameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, false, &[], &[], &[]),
            "search example.com\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf(host, true, &[], &[], &[]),
            "search example.com\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
        );
        let host2 = "nameserver 10.0.0.2\nnameserver 127.0.0.1\n";
        assert_eq!(
            resolv_conf(host2, false, &[], &[], &[]),
            "nameserver 10.0.0.2\n"
        );
        assert_eq!(
            resolv_conf(
                host2,
                false,
                &["1.1.1.1".into()],
                &["a.b".into()],
                &["ndots:2".into()]
            ),
            "search a.b\nnameserver 1.1.1.1\noptions ndots:2\n"
        );
    }
}
