//! berth's networking (issue 10).
//!
//! Owns: the kernel side of a container's network — bridges, veth pairs,
//! addresses, routes (`netlink`); address management inside a subnet
//! (`ipam`); published ports and NAT as nftables rules in berth's own table
//! (`nft`); `-p` and `-P` as Docker parses them (`ports`); the embedded DNS
//! responder a monitor answers at 127.0.0.11 (`dns`).
//!
//! Never: touches the store, or any firewall table but berth's own.

pub mod dns;
pub mod ipam;
pub mod netlink;
pub mod nft;
pub mod plan;
pub mod ports;
pub mod setup;
pub mod wake;
