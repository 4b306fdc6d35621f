//! What a container's network is, as the engine decided it at a start:
//! `network.json` in the container's directory, read by its monitor (which
//! sets it up in the container's new network namespace at each start of
//! its process, and takes it down at the end) and by `inspect`, `port`,
//! `ps` while the container runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole network of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// One per network the container is on, in the order its interfaces
    /// are made (`eth0`, `eth1`, …).
    pub endpoints: Vec<EndpointPlan>,
    /// Published ports with their host ports chosen.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// The embedded DNS responder (user-defined networks only).
    #[serde(default)]
    pub dns: Option<DnsPlan>,
    /// The `nft` program (an absolute path) the monitor removes the
    /// container's port rules with when it ends.
    #[serde(default)]
    pub nft: Option<PathBuf>,
    /// The lock every change of a network's names file takes.
    #[serde(default)]
    pub lock: Option<PathBuf>,
    /// The table and these networks' elements, as `nft` takes them: for
    /// the monitor to restate when the ports' elements cannot be added
    /// (someone flushed the ruleset).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nft_restate: String,
}

/// `<run-root>/networks/ended/<container id>`: made by a monitor when its
/// container ends (`setup::detach`), so that the next start frees that
/// container's addresses without looking at every other endpoint; the
/// engine removes it once the endpoints are released (or the container
/// starts again). A monitor killed before it could write it leaves its
/// endpoints to the full sweep (`ps`, `rm`, a lease that finds no address).
pub fn ended_marker(run_root: &std::path::Path, container_id: &str) -> PathBuf {
    run_root.join("networks").join("ended").join(container_id)
}

/// The container's side of one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPlan {
    pub network_id: String,
    pub network_name: String,
    /// The Linux bridge its veth joins.
    pub bridge: String,
    /// The host end of its veth pair.
    pub host_veth: String,
    /// Its name inside the container (`eth0`).
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// `02:42:ac:11:00:02`
    pub mac: String,
    /// The network routes the container's default traffic (the first
    /// network that is not `--internal`).
    pub default_route: bool,
    /// Names other containers resolve it by on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Docker's endpoint ID (64 hex digits), new at each start.
    #[serde(default)]
    pub endpoint_id: String,
}

/// One published port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The host address it answers on; `0.0.0.0` for every one.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// What the monitor's DNS responder answers from and forwards to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsPlan {
    /// One names file per user-defined network the container is on, with
    /// the network's name.
    pub networks: Vec<(String, PathBuf)>,
    /// The user gave an `ndots` option (Docker then answers single-label
    /// names it does not know itself instead of forwarding them).
    #[serde(default)]
    pub ndots_set: bool,
    /// Where other names are forwarded (the host's resolvers, or `--dns`).
    pub upstream: Vec<SocketAddr>,
}

/// `02:42:ac:11:00:02` from six bytes.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Six bytes from `02:42:ac:11:00:02`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip() {
        let m = [2, 0x42, 0xac, 0x11, 0, 2];
        assert_eq!(mac_string(m), "02:42:ac:11:00:02");
        assert_eq!(parse_mac("02:42:ac:11:00:02"), Some(m));
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:02:03"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:zz"), None);
        assert_eq!(parse_mac("2:42:ac:11:00:02"), None);
    }
}
