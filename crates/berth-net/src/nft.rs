//! Published ports and NAT as nftables rules, in one table berth owns
//! (`ip berth`); nothing else in the host's firewall is read or changed.
//!
//! The table's shape is fixed: maps from a host port (and address) to a
//! container's address and port, sets of berth's bridges and subnets, and
//! the chains that use them. A container's start adds its map elements and
//! its end deletes them, each in one `nft -f -` transaction; a network adds
//! its bridge and subnet to the sets when its bridge is made.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::plan::PublishedPort;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nftables: the nft program was not found (install the nftables package)")]
    Missing,
    #[error("nftables: running {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("nftables: {0}")]
    Failed(String),
}

const PROTOS: [&str; 3] = ["tcp", "udp", "sctp"];

/// The `nft` program: `/usr/sbin/nft` or `/sbin/nft`, else from `PATH`.
pub fn find_nft() -> Option<PathBuf> {
    let fixed = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"];
    if let Some(p) = fixed.iter().map(Path::new).find(|p| p.is_file()) {
        return Some(p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("nft"))
            .find(|p| p.is_file())
    })
}

/// The table, its maps, sets and chains, and the chains' rules. The
/// bridges route loopback sources (`route_localnet`, for ports published
/// on 127.0.0.1): the `guard` chain drops what a container sends to a
/// loopback address through one, which would otherwise reach the host's
/// 127.0.0.1 services (the route_localnet escape, CVE-2020-8558's kind).
/// Safe to
/// apply again: every object is `add`ed (kept when present) and the fixed
/// chains are flushed and refilled in the same transaction, so their rules
/// are never doubled; map and set elements are left as they are.
pub fn base() -> String {
    let mut s = String::from("add table ip berth\n");
    for p in PROTOS {
        s += &format!(
            "add map ip berth {p}_any {{ type inet_service : ipv4_addr . inet_service ; }}\n\
             add map ip berth {p}_addr {{ type ipv4_addr . inet_service : ipv4_addr . inet_service ; }}\n"
        );
    }
    s += "add set ip berth bridges { type ifname ; }\n\
          add set ip berth internal { type ifname ; }\n\
          add set ip berth same_bridge { type ifname . ifname ; }\n\
          add set ip berth nat_subnets { type ipv4_addr ; flags interval ; }\n\
          add chain ip berth publish\n\
          flush chain ip berth publish\n";
    for p in PROTOS {
        s += &format!(
            "add rule ip berth publish meta l4proto {p} dnat ip to ip daddr . {p} dport map @{p}_addr\n\
             add rule ip berth publish meta l4proto {p} dnat ip to {p} dport map @{p}_any\n"
        );
    }
    s += "\
add chain ip berth guard { type filter hook prerouting priority raw ; policy accept ; }
flush chain ip berth guard
add rule ip berth guard iifname @bridges ip daddr 127.0.0.0/8 drop
add chain ip berth prerouting { type nat hook prerouting priority dstnat ; policy accept ; }
flush chain ip berth prerouting
add rule ip berth prerouting fib daddr type local jump publish
add chain ip berth output { type nat hook output priority -100 ; policy accept ; }
flush chain ip berth output
add rule ip berth output fib daddr type local jump publish
add chain ip berth postrouting { type nat hook postrouting priority srcnat ; policy accept ; }
flush chain ip berth postrouting
add rule ip berth postrouting oifname @bridges ct status dnat ip saddr @nat_subnets masquerade
add rule ip berth postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
add rule ip berth postrouting ip saddr @nat_subnets oifname != @bridges masquerade
add chain ip berth forward { type filter hook forward priority filter ; policy accept ; }
flush chain ip berth forward
add rule ip berth forward iifname . oifname @same_bridge accept
add rule ip berth forward iifname @internal drop
add rule ip berth forward oifname @internal drop
add rule ip berth forward iifname @bridges oifname @bridges ct status & dnat == 0 drop
";
    s
}

/// Whether `name` can be a bridge berth makes and names in its rules: what
/// the kernel takes for an interface (1–15 bytes) in the characters that
/// need no quoting anywhere (`[A-Za-z0-9_.-]`), so no name can change the
/// meaning of an `nft` script.
pub fn valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A network's elements: its bridge, and its subnet for outbound NAT
/// (an `--internal` network has none, and no way out at all).
pub fn add_network(bridge: &str, subnet: &str, internal: bool) -> String {
    // Traffic between two containers of one bridge: with br_netfilter
    // loaded (Docker loads it) it is seen here too, and is let through.
    let mut s = format!(
        "add element ip berth bridges {{ \"{bridge}\" }}\n\
         add element ip berth same_bridge {{ \"{bridge}\" . \"{bridge}\" }}\n"
    );
    if internal {
        s += &format!("add element ip berth internal {{ \"{bridge}\" }}\n");
    } else {
        s += &format!("add element ip berth nat_subnets {{ {subnet} }}\n");
    }
    s
}

/// Takes a network's elements out, whether or not they are there (each is
/// added, which keeps one that is, then deleted).
pub fn remove_network(bridge: &str, subnet: &str, internal: bool) -> String {
    let mut s = add_network(bridge, subnet, internal);
    s += &format!(
        "delete element ip berth bridges {{ \"{bridge}\" }}\n\
         delete element ip berth same_bridge {{ \"{bridge}\" . \"{bridge}\" }}\n"
    );
    if internal {
        s += &format!("delete element ip berth internal {{ \"{bridge}\" }}\n");
    } else {
        s += &format!("delete element ip berth nat_subnets {{ {subnet} }}\n");
    }
    s
}

fn element(p: &PublishedPort) -> (String, String) {
    let proto = &p.proto;
    let value = format!("{} . {}", p.container_ip, p.container_port);
    if p.host_ip.is_unspecified() {
        (format!("{proto}_any"), format!("{} : {value}", p.host_port))
    } else {
        (
            format!("{proto}_addr"),
            format!("{} . {} : {value}", p.host_ip, p.host_port),
        )
    }
}

fn key_only(p: &PublishedPort) -> String {
    if p.host_ip.is_unspecified() {
        p.host_port.to_string()
    } else {
        format!("{} . {}", p.host_ip, p.host_port)
    }
}

/// A container's published ports. Fails (the whole transaction) when a
/// host port's element holds another container's address: the caller
/// removes stale elements first.
pub fn add_ports(ports: &[PublishedPort]) -> String {
    let mut s = String::new();
    for p in ports.iter().filter(|p| PROTOS.contains(&p.proto.as_str())) {
        let (map, el) = element(p);
        s += &format!("add element ip berth {map} {{ {el} }}\n");
    }
    s
}

/// Takes a container's published ports out, whether or not they are there.
pub fn remove_ports(ports: &[PublishedPort]) -> String {
    let mut s = add_ports(ports);
    for p in ports.iter().filter(|p| PROTOS.contains(&p.proto.as_str())) {
        let (map, _) = element(p);
        s += &format!("delete element ip berth {map} {{ {} }}\n", key_only(p));
    }
    s
}

/// Runs `nft -f -` with `script`: one transaction, all or nothing.
pub fn apply(nft: &Path, script: &str) -> Result<(), NftError> {
    if script.is_empty() {
        return Ok(());
    }
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NftError::Spawn(nft.display().to_string(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| NftError::Spawn(nft.display().to_string(), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NftError::Spawn(nft.display().to_string(), e))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    // nft's first line names the failure; the rest repeats the script.
    let first = err
        .lines()
        .find(|l| l.contains("Error"))
        .unwrap_or_else(|| err.lines().next().unwrap_or("failed"));
    Err(NftError::Failed(first.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn port(host_ip: [u8; 4], host_port: u16) -> PublishedPort {
        PublishedPort {
            proto: "tcp".into(),
            host_ip: Ipv4Addr::from(host_ip),
            host_port,
            container_ip: Ipv4Addr::new(172, 17, 0, 2),
            container_port: 80,
        }
    }

    #[test]
    fn interface_names() {
        assert!(valid_ifname("berth0"));
        assert!(valid_ifname("br-0123456789ab"));
        assert!(!valid_ifname("br-0123456789abc"));
        assert!(!valid_ifname("a\";flush ruleset"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname(".."));
    }

    #[test]
    fn port_elements() {
        let any = port([0, 0, 0, 0], 8080);
        let lo = port([127, 0, 0, 1], 8081);
        assert_eq!(
            add_ports(&[any.clone(), lo.clone()]),
            "add element ip berth tcp_any { 8080 : 172.17.0.2 . 80 }\n\
             add element ip berth tcp_addr { 127.0.0.1 . 8081 : 172.17.0.2 . 80 }\n"
        );
        let rm = remove_ports(&[any, lo]);
        assert!(rm.ends_with(
            "delete element ip berth tcp_any { 8080 }\n\
             delete element ip berth tcp_addr { 127.0.0.1 . 8081 }\n"
        ));
    }

    /// The real thing, in a network namespace of this test's own: the
    /// base applies twice without doubling rules, and removal is
    /// idempotent.
    #[test]
    fn applies_in_a_private_namespace() {
        let Some(nft) = find_nft() else {
            eprintln!("skipped: no nft");
            return;
        };
        // SAFETY: unshare(2) with a namespace flag only changes this
        // thread's network namespace (libtest runs each test on its own
        // thread); no memory is involved.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
        apply(&nft, &base()).unwrap();
        apply(&nft, &base()).unwrap();
        apply(&nft, &add_network("berth0", "172.17.0.0/16", false)).unwrap();
        let ports = [port([0, 0, 0, 0], 8080)];
        apply(&nft, &add_ports(&ports)).unwrap();
        apply(&nft, &remove_ports(&ports)).unwrap();
        apply(&nft, &remove_ports(&ports)).unwrap();
        apply(&nft, &remove_network("berth0", "172.17.0.0/16", false)).unwrap();
        let out = Command::new(&nft)
            .args(["list", "table", "ip", "berth"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("jump publish").count(), 2, "{text}");
        assert!(!text.contains("8080"), "{text}");
        let bad = apply(&nft, "add element ip berth nope { 1 }").unwrap_err();
        assert!(bad.to_string().contains("Error"), "{bad}");
    }
}
