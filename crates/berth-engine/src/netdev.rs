//! The kernel side of the engine's network work: bridges (netlink,
//! sysctls) and host ports (trial binds).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;

use berth_net::netlink::Netlink;
use berth_net::plan::PublishedPort;
use berth_types::PortBinding;

use crate::container::ContainerView;
use crate::{Engine, EngineError, Result};

fn runtime(message: String) -> EngineError {
    EngineError::Runtime { code: 125, message }
}

/// Makes the bridge `name` with `gateway/prefix` when it is missing (a new
/// network, or a host that rebooted); true when it made it. Forwarding is
/// turned on (as Docker does) and loopback sources may leave through the
/// bridge (published ports answer on 127.0.0.1).
pub(crate) fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<bool> {
    if !berth_net::nft::valid_ifname(name) {
        return Err(runtime(format!("invalid bridge name {name:?}")));
    }
    let mut nl = Netlink::open().map_err(|e| runtime(format!("netlink: {e}")))?;
    if nl
        .link_index(name)
        .map_err(|e| runtime(format!("netlink: {e}")))?
        .is_some()
    {
        return Ok(false);
    }
    let index = nl
        .create_bridge(name)
        .map_err(|e| runtime(format!("creating bridge {name}: {e}")))?;
    // A MAC of its own: a bridge without one takes its ports' lowest, and
    // changes it as containers come and go (their ARP caches then point
    // at a gateway that is gone).
    let r = crate::random_bytes();
    let mac = [0x02, r[0], r[1], r[2], r[3], r[4]];
    let configured = nl
        .set_mac(index, mac)
        .and_then(|()| nl.add_address(index, IpAddr::V4(gateway), prefix))
        .and_then(|()| nl.set_up(index));
    if let Err(e) = configured {
        let _ = nl.delete_link(index);
        return Err(runtime(format!("setting up bridge {name}: {e}")));
    }
    for (path, value) in [
        ("/proc/sys/net/ipv4/ip_forward".to_string(), "1"),
        (
            format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"),
            "1",
        ),
    ] {
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
            continue;
        }
        std::fs::write(&path, value).map_err(|e| runtime(format!("writing {path}: {e}")))?;
    }
    Ok(true)
}

/// Deletes a link (a network's bridge at `network rm`, a container's
/// veth at `network disconnect`); absent is fine.
pub(crate) fn delete_link(name: &str) -> Result<()> {
    let mut nl = Netlink::open().map_err(|e| runtime(format!("netlink: {e}")))?;
    nl.delete_link_by_name(name)
        .map_err(|e| runtime(format!("deleting {name}: {e}")))?;
    Ok(())
}

/// Chooses the host side of each published port: the given port (free,
/// or Docker's errors), or a free one from the ephemeral range (or from a
/// given host range). The trial sockets are closed when this returns; the
/// container's monitor binds the ports for good.
pub(crate) fn choose_host_ports(
    engine: &Engine,
    v: &ContainerView,
    container_ip: Ipv4Addr,
    wanted: &BTreeMap<String, Vec<PortBinding>>,
) -> Result<Vec<PublishedPort>> {
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut out = Vec::new();
    for (key, bindings) in wanted {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let container_port: u16 = port
            .parse()
            .map_err(|_| EngineError::InvalidArgument(format!("invalid containerPort: {port}")))?;
        for b in bindings {
            let host_ip: Ipv4Addr = if b.host_ip.is_empty() {
                Ipv4Addr::UNSPECIFIED
            } else {
                match b.host_ip.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => a,
                    // IPv6 host addresses are not published (yet).
                    Ok(IpAddr::V6(_)) => continue,
                    Err(_) => {
                        return Err(EngineError::InvalidArgument(format!(
                            "invalid IP address: {}",
                            b.host_ip
                        )))
                    }
                }
            };
            let range = match b.host_port.split_once('-') {
                _ if b.host_port.is_empty() => None,
                Some((lo, hi)) => Some((parse_port(lo)?, parse_port(hi)?)),
                None => {
                    let p = parse_port(&b.host_port)?;
                    Some((p, p))
                }
            };
            let (host_port, fd) = match range {
                Some((lo, hi)) if lo == hi => {
                    let fd = berth_net::ports::reserve(proto, IpAddr::V4(host_ip), lo)
                        .map_err(|e| port_error(engine, v, proto, host_ip, lo, &e))?;
                    (lo, fd)
                }
                r => {
                    let r = r.unwrap_or_else(berth_net::ports::ephemeral_range);
                    berth_net::ports::reserve_any(proto, IpAddr::V4(host_ip), r, |_| false)
                        .map_err(|e| {
                            runtime(format!(
                                "Bind for {host_ip}:{}-{} failed: {}",
                                r.0,
                                r.1,
                                berth_net::setup::bind_error_words(&e)
                            ))
                        })?
                }
            };
            held.push(fd);
            out.push(PublishedPort {
                proto: proto.to_string(),
                host_ip,
                host_port,
                container_ip,
                container_port,
            });
        }
    }
    drop(held);
    Ok(out)
}

fn parse_port(s: &str) -> Result<u16> {
    s.parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| EngineError::InvalidArgument(format!("invalid hostPort: {s}")))
}

/// Docker's words for a host port that is taken: by another container
/// ("port is already allocated"), or by another program.
fn port_error(
    engine: &Engine,
    v: &ContainerView,
    proto: &str,
    ip: Ipv4Addr,
    port: u16,
    e: &std::io::Error,
) -> EngineError {
    let by_container = e.raw_os_error() == Some(libc::EADDRINUSE)
        && engine.containers().is_ok_and(|all| {
            all.iter().filter(|c| c.id != v.id && c.running()).any(|c| {
                Engine::network_plan_of(&c.dir).is_some_and(|p| {
                    p.ports.iter().any(|q| {
                        q.proto == proto
                            && q.host_port == port
                            && (q.host_ip == ip
                                || q.host_ip.is_unspecified()
                                || ip.is_unspecified())
                    })
                })
            })
        });
    if by_container {
        runtime(format!(
            "Bind for {ip}:{port} failed: port is already allocated"
        ))
    } else {
        runtime(format!(
            "Error starting userland proxy: listen {proto}4 {ip}:{port}: bind: {}",
            berth_net::setup::bind_error_words(e)
        ))
    }
}
