//! The monitor's half of a container's network: what it does with
//! `network.json` at each start of the container's process (veths into
//! the new network namespace, host ports held, the DNS responder's socket)
//! and at its end (port rules and names taken out).

use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::{AsFd, OwnedFd};

use crate::netlink::Netlink;
use crate::plan::{EndpointPlan, NetworkPlan};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("network {network}: {message}")]
    Endpoint { network: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// Makes the container's interfaces: for each endpoint a veth pair whose
/// host end joins the network's bridge and whose other end, made inside
/// the namespace of `pid`, gets the address, MAC and (for one network)
/// the default route.
pub fn attach(pid: i32, plan: &NetworkPlan) -> Result<(), SetupError> {
    if plan.endpoints.is_empty() {
        return Ok(());
    }
    let netns = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| {
        SetupError::Other(format!("opening the container's network namespace: {e}"))
    })?;
    let mut host = Netlink::open().map_err(|e| SetupError::Other(format!("netlink: {e}")))?;
    let mut inner = Netlink::open_in(netns.as_fd())
        .map_err(|e| SetupError::Other(format!("netlink in the container: {e}")))?;
    for ep in &plan.endpoints {
        attach_one(&mut host, &mut inner, &netns, ep).map_err(|message| SetupError::Endpoint {
            network: ep.network_name.clone(),
            message,
        })?;
    }
    Ok(())
}

/// One more interface for a running container (`network connect`), in
/// the namespace `netns`; on error none is left.
pub fn attach_endpoint(netns: &File, ep: &EndpointPlan) -> Result<(), String> {
    let mut host = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
    let mut inner = Netlink::open_in(netns.as_fd()).map_err(|e| format!("netlink: {e}"))?;
    attach_one(&mut host, &mut inner, netns, ep).inspect_err(|_| {
        let _ = host.delete_link_by_name(&ep.host_veth);
    })
}

fn attach_one(
    host: &mut Netlink,
    inner: &mut Netlink,
    netns: &File,
    ep: &EndpointPlan,
) -> Result<(), String> {
    let bridge = host
        .link_index(&ep.bridge)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("bridge {} is missing", ep.bridge))?;
    // A veth of an earlier run whose namespace is still being torn down.
    let _ = host.delete_link_by_name(&ep.host_veth);
    let veth = host
        .create_veth(&ep.host_veth, &ep.ifname, netns.as_fd())
        .map_err(|e| format!("creating {}: {e}", ep.host_veth))?;
    host.set_master_up(veth, bridge)
        .map_err(|e| e.to_string())?;
    let inside = inner
        .link_index(&ep.ifname)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} did not appear in the container", ep.ifname))?;
    inner
        .add_address(inside, ep.ip.into(), ep.prefix)
        .map_err(|e| e.to_string())?;
    match crate::plan::parse_mac(&ep.mac) {
        Some(mac) => inner.set_mac_up(inside, mac),
        None => inner.set_up(inside),
    }
    .map_err(|e| e.to_string())?;
    if ep.default_route {
        inner
            .add_default_route(ep.gateway)
            .map_err(|e| format!("default route: {e}"))?;
    }
    Ok(())
}

/// Holds the host ports of the plan (a bound socket each) for as long as
/// the descriptors live: no other program and no other container can take
/// them meanwhile.
pub fn hold_ports(plan: &NetworkPlan) -> Result<Vec<OwnedFd>, String> {
    plan.ports
        .iter()
        .map(|p| {
            crate::ports::reserve(&p.proto, p.host_ip.into(), p.host_port).map_err(|e| {
                format!(
                    "Error starting userland proxy: listen {}4 {}:{}: bind: {}",
                    p.proto,
                    p.host_ip,
                    p.host_port,
                    bind_error_words(&e)
                )
            })
        })
        .collect()
}

/// The published ports' nftables elements being added by an `nft` the
/// monitor started (it runs while the kernel places the container).
pub struct PendingRules(Option<std::process::Child>);

/// Starts adding the plan's port elements (nothing to do: no process).
pub fn start_port_rules(plan: &NetworkPlan) -> Result<PendingRules, String> {
    let (Some(nft), false) = (&plan.nft, plan.ports.is_empty()) else {
        return Ok(PendingRules(None));
    };
    let mut child = std::process::Command::new(nft)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("nftables: running {}: {e}", nft.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // Small (a few lines): the pipe takes it whole.
        let _ = stdin.write_all(crate::nft::add_ports(&plan.ports).as_bytes());
    }
    Ok(PendingRules(Some(child)))
}

impl PendingRules {
    /// Waits for the elements; when they could not be added, restates the
    /// table first (`plan.nft_restate`) and adds them again.
    pub fn finish(self, plan: &NetworkPlan) -> Result<(), String> {
        let Some(mut child) = self.0 else {
            return Ok(());
        };
        let ok = child.wait().is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        let Some(nft) = &plan.nft else {
            return Ok(());
        };
        crate::nft::apply(
            nft,
            &(plan.nft_restate.clone() + &crate::nft::add_ports(&plan.ports)),
        )
        .map_err(|e| e.to_string())
    }
}

/// Go's words for a bind error (`address already in use`), as Docker
/// prints them.
pub fn bind_error_words(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "address already in use".into(),
        Some(libc::EACCES) => "permission denied".into(),
        Some(libc::EADDRNOTAVAIL) => "cannot assign requested address".into(),
        _ => e.to_string(),
    }
}

/// The DNS responder's socket: UDP 127.0.0.11:53 inside the namespace of
/// `pid` (made there, used from here).
pub fn dns_socket(pid: i32) -> Result<UdpSocket, String> {
    let netns = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
    let own = File::open("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
    setns(&netns)?;
    let sock = UdpSocket::bind("127.0.0.11:53");
    setns(&own).map_err(|e| format!("going back to our network namespace: {e}"))?;
    let sock = sock.map_err(|e| format!("binding 127.0.0.11:53: {e}"))?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(sock)
}

fn setns(f: &File) -> Result<(), String> {
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| e.to_string())
}

/// The DNS responder of a container whose process is `pid`: its socket
/// in the container's namespace, names from the networks' files.
pub fn dns_responder(
    pid: i32,
    plan: &crate::plan::DnsPlan,
) -> Result<crate::dns::Responder, String> {
    let sock = dns_socket(pid)?;
    let mut table = crate::dns::NameTable::new();
    for (name, path) in &plan.networks {
        table.add_network(name, path);
    }
    let mut r = crate::dns::Responder::new(sock, plan.upstream.clone(), table)
        .map_err(|e| e.to_string())?;
    r.set_ndots_set(plan.ndots_set);
    Ok(r)
}

/// At the container's end (not a restart): its port rules go, its names
/// leave the networks' names files, and its `ended` marker tells the next
/// start that its addresses are free ([`crate::plan::ended_marker`]).
pub fn detach(plan: &NetworkPlan, container_id: &str) {
    if let Some(run_root) = plan.lock.as_deref().and_then(std::path::Path::parent) {
        let _ = File::create(crate::plan::ended_marker(run_root, container_id));
    }
    if !plan.ports.is_empty() {
        if let Some(nft) = &plan.nft {
            let _ = crate::nft::apply(nft, &crate::nft::remove_ports(&plan.ports));
        }
    }
    let Some(dns) = &plan.dns else {
        return;
    };
    let lock = plan.lock.as_ref().and_then(|p| {
        let f = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .ok()?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).ok()?;
        Some(f)
    });
    let ours: Vec<String> = plan.endpoints.iter().map(|e| e.ip.to_string()).collect();
    for (_, path) in &dns.networks {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let kept: String = text
            .lines()
            .filter(|l| {
                !l.split_whitespace()
                    .next()
                    .is_some_and(|ip| ours.iter().any(|o| o == ip))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if kept.len() != text.len() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, kept).is_ok() && std::fs::rename(&tmp, path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    drop(lock);
}
