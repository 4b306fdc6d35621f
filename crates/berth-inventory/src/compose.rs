//! An image's inventory from its layers' (lowest first), as overlayfs composes
//! the layers themselves: a path whited out or beneath an opaque directory of an
//! upper layer is gone, and a package database an upper layer holds replaces the
//! same path's in the layers below (dpkg rewrites its whole status file at each
//! install, so the upper file is the whole truth).

use std::collections::HashMap;

use crate::{purl, scan, Ecosystem, LayerInventory, Package};

fn beneath(path: &str, dir: &str) -> bool {
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// Composes layer inventories, lowest layer first. Each package keeps the index of
/// the layer that brought it: when an upper layer's database replaces a lower one
/// and still lists the same package at the same version, the package keeps the
/// lower layer's index (it was not installed again, only its database rewritten).
///
/// A distribution's OS packages found in a layer without `os-release` get their
/// purl namespace from the uppermost layer that has one.
pub fn compose(layers: &[LayerInventory]) -> Vec<Package> {
    let mut cur: Vec<Package> = Vec::new();
    for (idx, layer) in layers.iter().enumerate() {
        cur.retain(|p| {
            let f = p.found_in_file();
            !layer
                .opaque_dirs
                .iter()
                .any(|d| f.starts_with(d.as_str()) && f.as_bytes().get(d.len()) == Some(&b'/'))
                && !layer.whiteouts.iter().any(|w| beneath(f, w))
        });
        let mut brought: HashMap<(Ecosystem, String, String, String), usize> = HashMap::new();
        cur.retain(|p| {
            if layer.databases.iter().any(|d| d == p.found_in_file()) {
                if let Some(l) = p.layer {
                    brought.insert(
                        (
                            p.ecosystem,
                            p.name.clone(),
                            p.version.clone(),
                            p.found_in.clone(),
                        ),
                        l,
                    );
                }
                false
            } else {
                true
            }
        });
        for p in &layer.packages {
            let mut p = p.clone();
            let key = (
                p.ecosystem,
                p.name.clone(),
                p.version.clone(),
                p.found_in.clone(),
            );
            p.layer = Some(brought.get(&key).copied().unwrap_or(idx));
            cur.push(p);
        }
    }
    if let Some(os) = layers.iter().rev().find_map(|l| l.os_release.as_ref()) {
        for p in &mut cur {
            let had_own = p
                .layer
                .and_then(|l| layers.get(l))
                .is_some_and(|l| l.os_release.is_some());
            let default = scan::default_namespace(p.ecosystem);
            if had_own || default.is_empty() {
                continue;
            }
            let old = format!("pkg:{}/{}/", p.ecosystem.as_str(), default);
            if let Some(rest) = p.purl.strip_prefix(&old) {
                p.purl = format!(
                    "pkg:{}/{}/{}",
                    p.ecosystem.as_str(),
                    purl::encode(&os.id),
                    rest
                );
            }
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsRelease;

    fn deb(name: &str, version: &str) -> Package {
        Package {
            ecosystem: Ecosystem::Deb,
            name: name.into(),
            version: version.into(),
            source: None,
            source_version: None,
            licenses: vec![],
            purl: format!("pkg:deb/debian/{name}@{version}"),
            layer: None,
            found_in: "var/lib/dpkg/status".into(),
        }
    }

    fn npm(name: &str) -> Package {
        Package {
            ecosystem: Ecosystem::Npm,
            name: name.into(),
            version: "1.0.0".into(),
            source: None,
            source_version: None,
            licenses: vec![],
            purl: format!("pkg:npm/{name}@1.0.0"),
            layer: None,
            found_in: format!("app/node_modules/{name}/package.json"),
        }
    }

    fn layer(packages: Vec<Package>) -> LayerInventory {
        let mut databases: Vec<String> = packages
            .iter()
            .map(|p| p.found_in_file().to_string())
            .collect();
        databases.sort();
        databases.dedup();
        LayerInventory {
            packages,
            databases,
            ..Default::default()
        }
    }

    #[test]
    fn upper_database_supersedes_and_keeps_attribution() {
        let l0 = layer(vec![
            deb("libssl3", "3.0.11-1~deb12u2"),
            deb("libc6", "2.36-9"),
        ]);
        let l1 = layer(vec![npm("left-pad")]);
        let l2 = layer(vec![
            deb("libssl3", "3.0.15-1~deb12u1"),
            deb("libc6", "2.36-9"),
            deb("curl", "7.88.1-10"),
        ]);
        let got = compose(&[l0, l1, l2]);
        let v: Vec<(&str, &str, Option<usize>)> = got
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.layer))
            .collect();
        assert_eq!(
            v,
            [
                ("left-pad", "1.0.0", Some(1)),
                ("libssl3", "3.0.15-1~deb12u1", Some(2)),
                ("libc6", "2.36-9", Some(0)),
                ("curl", "7.88.1-10", Some(2))
            ]
        );
    }

    #[test]
    fn whiteouts_and_opaque_dirs_remove() {
        let l0 = layer(vec![npm("a"), npm("b"), deb("x", "1")]);
        let l1 = LayerInventory {
            whiteouts: vec!["app/node_modules/a".into()],
            ..Default::default()
        };
        let got = compose(&[l0.clone(), l1]);
        assert_eq!(
            got.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["b", "x"]
        );
        let l1 = LayerInventory {
            opaque_dirs: vec!["app".into()],
            packages: vec![],
            ..Default::default()
        };
        let got = compose(&[l0.clone(), l1]);
        assert_eq!(
            got.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["x"]
        );
        // A whiteout of the status file itself removes every dpkg package.
        let l1 = LayerInventory {
            whiteouts: vec!["var/lib/dpkg/status".into()],
            ..Default::default()
        };
        assert_eq!(compose(&[l0.clone(), l1]).len(), 2);
        // A prefix that is not a path component does not remove.
        let l1 = LayerInventory {
            whiteouts: vec!["app/node_modules/b-other".into(), "ap".into()],
            ..Default::default()
        };
        assert_eq!(compose(&[l0, l1]).len(), 3);
    }

    #[test]
    fn os_release_of_a_lower_layer_names_upper_packages() {
        let mut l0 = layer(vec![]);
        l0.os_release = Some(OsRelease {
            id: "ubuntu".into(),
            version_id: Some("24.04".into()),
        });
        let l1 = layer(vec![deb("curl", "8.5.0-2ubuntu10")]);
        let got = compose(&[l0, l1]);
        assert_eq!(got[0].purl, "pkg:deb/ubuntu/curl@8.5.0-2ubuntu10");
    }
}
