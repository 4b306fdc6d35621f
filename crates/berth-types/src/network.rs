//! Networks (issue 10): what `network create` records and what a container
//! asks of each network it joins, in Docker's JSON names.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One address pool of a network (`IPAM.Config[]` in `network inspect`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// `172.18.0.0/16`
    pub subnet: String,
    /// `--ip-range`: where dynamic addresses come from (within `subnet`).
    #[serde(default, rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    /// `172.18.0.1`
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

/// How a network is configured: everything `network inspect` shows but its
/// identity (name, ID, creation time, which are the store's columns) and its
/// containers (which are the endpoints').
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSpec {
    /// `bridge`, `host` or `null`.
    pub driver: String,
    #[serde(default, rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(default, rename = "IPAM")]
    pub ipam: Vec<IpamConfig>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    /// `-o KEY=VALUE` (`com.docker.network.bridge.name`, …) as given.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The Linux bridge's name (`berth0` for the default bridge,
    /// `br-<first 12 of the ID>` otherwise, or the `bridge.name` option).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bridge: String,
    /// `--ipam-opt KEY=VALUE` (`IPAM.Options`).
    #[serde(
        default,
        rename = "IPAMOptions",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub ipam_options: BTreeMap<String, String>,
}

/// What a container asks of one network it joins (`--network-alias`,
/// `--ip`, `--mac-address`, `network connect --alias/--ip`): Docker's
/// `EndpointSettings` as a create records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfig {
    /// The network's ID (the map's key is its name as the user gave it).
    #[serde(default, rename = "NetworkID")]
    pub network_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`: a fixed address (empty: one from the pool at each start).
    #[serde(
        default,
        rename = "IPv4Address",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

/// One host side of a published port (`HostConfig.PortBindings["80/tcp"][]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "HostIp")]
    pub host_ip: String,
    /// "" asks for a free port from the ephemeral range; `8000-8010` a range.
    #[serde(rename = "HostPort")]
    pub host_port: String,
}
