//! `network create|ls|inspect|rm|prune|connect|disconnect`, printed as the
//! docker CLI prints them.

use std::collections::BTreeMap;

use anyhow::Result;
use berth_engine::{EndpointOptions, Engine, Network, NetworkCreateOptions};

use crate::cli::*;
use crate::commands::{each, inspect_each, parse_filters, print_rows};

/// `KEY=VALUE` flags as a map (`KEY` alone: an empty value).
fn key_values(v: &[String]) -> BTreeMap<String, String> {
    v.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Go's `time.Time.String()` of an RFC 3339 time: `2006-01-02
/// 15:04:05.999999999 +0000 UTC` (trailing zeros of the fraction dropped).
fn go_time(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let t = t.with_timezone(&chrono::Utc);
    let nanos = t.timestamp_subsec_nanos();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
}

/// A row of `network ls`: the docker CLI's fields.
fn row(n: &Network, no_trunc: bool) -> serde_json::Value {
    let id = if no_trunc { &n.id[..] } else { &n.id[..12] };
    let labels = n
        .spec
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    serde_json::json!({
        "CreatedAt": go_time(&n.created),
        "Driver": n.spec.driver,
        "ID": id,
        "IPv4": (n.spec.driver == "bridge").to_string(),
        "IPv6": n.spec.enable_ipv6.to_string(),
        "Internal": n.spec.internal.to_string(),
        "Labels": labels,
        "Name": n.name,
        "Scope": "local",
    })
}

pub fn network(e: &mut Engine, c: &NetworkCommand) -> Result<i32> {
    match c {
        NetworkCommand::Create(a) => {
            let n = e.network_create(&NetworkCreateOptions {
                name: a.name.clone(),
                driver: a.driver.clone(),
                subnets: a.subnet.clone(),
                ip_ranges: a.ip_range.clone(),
                gateways: a.gateway.clone(),
                internal: a.internal,
                attachable: a.attachable,
                ipv6: a.ipv6,
                labels: key_values(&a.label),
                options: key_values(&a.opt),
                ipam_driver: a.ipam_driver.clone(),
                ipam_options: key_values(&a.ipam_opt),
            })?;
            outln!("{}", n.id)?;
            Ok(0)
        }
        NetworkCommand::Ls(a) => {
            let Some(f) = parse_filters(&a.filter, None)? else {
                return Ok(125);
            };
            let mut list = e.networks_filtered(&f)?;
            // The docker CLI sorts by name.
            list.sort_by(|x, y| x.name.cmp(&y.name));
            if a.quiet && a.format.is_none() {
                for n in &list {
                    outln!("{}", if a.no_trunc { &n.id[..] } else { &n.id[..12] })?;
                }
                return Ok(0);
            }
            let rows: Vec<serde_json::Value> = list.iter().map(|n| row(n, a.no_trunc)).collect();
            let fmt = a
                .format
                .as_deref()
                .unwrap_or("table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}");
            print_rows(
                fmt,
                &rows,
                &[
                    ("ID", "NETWORK ID"),
                    ("Name", "NAME"),
                    ("Driver", "DRIVER"),
                    ("Scope", "SCOPE"),
                    ("IPv4", "IPV4"),
                    ("IPv6", "IPV6"),
                    ("Internal", "INTERNAL"),
                    ("Labels", "LABELS"),
                    ("CreatedAt", "CREATED AT"),
                ],
            )?;
            Ok(0)
        }
        NetworkCommand::Inspect(a) => {
            let e = std::cell::RefCell::new(e);
            inspect_each(&a.networks, a.format.as_deref(), |n| {
                Ok(e.borrow_mut().network_inspect(n)?)
            })
        }
        NetworkCommand::Rm(a) => each(&a.networks, |n| {
            match e.network_remove(n) {
                Err(berth_engine::EngineError::NoSuchNetwork(_)) if a.force => return Ok(()),
                r => r?,
            };
            outln!("{n}")?;
            Ok(())
        }),
        NetworkCommand::Prune(a) => {
            let Some(f) = parse_filters(&a.filter, None)? else {
                return Ok(125);
            };
            if !a.force
                && !crate::cmd_fs::confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.",
                )?
            {
                return Ok(0);
            }
            let removed = e.network_prune(&f)?;
            if !removed.is_empty() {
                outln!("Deleted Networks:")?;
                for n in &removed {
                    outln!("{n}")?;
                }
                outln!()?;
            }
            Ok(0)
        }
        NetworkCommand::Connect(a) => {
            e.network_connect(
                &a.network,
                &a.container,
                &EndpointOptions {
                    aliases: a.alias.clone(),
                    ipv4_address: a.ip.clone(),
                    mac_address: None,
                },
            )?;
            Ok(0)
        }
        NetworkCommand::Disconnect(a) => {
            e.network_disconnect(&a.network, &a.container, a.force)?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_as_docker_prints_it() {
        assert_eq!(
            go_time("2026-11-30T22:31:16.595997731Z"),
            "2026-11-30 22:31:16.595997731 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-11-30T22:31:16.500Z"),
            "2026-11-30 22:31:16.5 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-11-30T22:31:16Z"),
            "2026-11-30 22:31:16 +0000 UTC"
        );
    }
}
