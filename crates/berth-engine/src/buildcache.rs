//! The build cache as a user sees it: `system df`'s "Build Cache" and
//! `builder prune`.
//!
//! Every step `berth build` stores is an image (untagged unless it is the
//! build's result) with a row in `build_cache` (see `build.rs`). A cache
//! record is such a row; what it holds on disk is the layers its image
//! added to its parent's, its own layers. Two properties decide what a prune
//! takes, as BuildKit's:
//!
//! - **shared**: the record's image is needed by an image that is not build
//!   cache (a tagged image, or one no cache row points at): it is one, or
//!   one of its ancestors, or one of its own layers is in such an image.
//!   Its size is then the image's, not the cache's.
//! - **in use**: a container (or one being created, such as a build's RUN
//!   step) stands on the record's image or on build cache built on it. A
//!   container of a tagged image holds that image, not the cache.
//!
//! `builder prune` takes the records that are neither ("dangling"), or with
//! `all` every record not in use. A record's image goes through
//! [`Engine::remove_image_as`] as `image prune` removes images (untagged,
//! no user, no child image, re-checked in the transaction that deletes it,
//! its layers released when nothing else stands on them); an image that
//! must stay (tagged, used, or the parent of one that stays) only loses its
//! cache row.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};

use crate::image::RemoveMode;
use crate::{Digest, Engine, EngineError, Result};

/// One cache record, as `system df -v` lists it.
#[derive(Clone, Debug)]
pub struct CacheRecord {
    /// The step's key (hex, without `sha256:`): the record's ID.
    pub id: String,
    /// The image the step produced.
    pub image: Digest,
    /// Bytes of the layers the step added (0 for a step without a layer).
    pub size: u64,
    /// Those layers: chain ID and size.
    pub layers: Vec<(Digest, u64)>,
    pub created: DateTime<Utc>,
    pub last_used: DateTime<Utc>,
    /// How often the step was made or reused.
    pub usage: u64,
    /// An image that is not build cache needs it (see the module doc).
    pub shared: bool,
    /// A container stands on its image (or on build cache built on it).
    pub in_use: bool,
}

/// What `builder prune` takes.
#[derive(Clone, Debug, Default)]
pub struct BuildCachePruneOptions {
    /// `-a`: every record not in use, shared ones included.
    pub all: bool,
    /// `--filter until=…`: only records not used since that time.
    pub filters: crate::filters::Filters,
    /// `--keep-storage`: stop once the cache's size is at most this many
    /// bytes, least recently used records first.
    pub keep_storage: Option<u64>,
}

/// What `builder prune` did.
#[derive(Clone, Debug, Default)]
pub struct BuildCachePruneReport {
    /// The IDs of the records deleted, in the order it happened.
    pub deleted: Vec<String>,
    /// Bytes of the layers deleted with their images.
    pub space_reclaimed: u64,
}

/// The keys `builder prune --filter` accepts.
const BUILD_PRUNE_KEYS: &[&str] = &["until"];

/// The daemon's words for a refused filter.
fn refused(msg: String) -> EngineError {
    EngineError::InvalidArgument(format!("failed to prune build cache: {msg}"))
}

/// `--filter until=DURATION` (BuildKit's keep duration, a Go duration
/// only): records used since `now - DURATION` stay.
fn cache_until(f: &crate::filters::Filters, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    f.check_keys(BUILD_PRUNE_KEYS).map_err(|e| match e {
        EngineError::InvalidArgument(m) => refused(m),
        e => e,
    })?;
    let mut until = None;
    for v in f.get("until") {
        let ns = crate::timeparse::go_duration(v).ok_or_else(|| {
            refused(format!(
                "\"until\" filter expects a duration (e.g., '24h'): time: invalid duration \"{v}\""
            ))
        })?;
        let t = now - chrono::Duration::nanoseconds(ns);
        until = Some(until.map_or(t, |u: DateTime<Utc>| u.min(t)));
    }
    Ok(until)
}

fn time_of(ns: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(ns)
}

/// The build cache's size as `system df` counts it: the own layers of the
/// records that are not shared, each layer once.
pub fn cache_size<'a>(records: impl IntoIterator<Item = &'a CacheRecord>) -> u64 {
    let mut seen: HashSet<&Digest> = HashSet::new();
    records
        .into_iter()
        .filter(|r| !r.shared)
        .flat_map(|r| r.layers.iter())
        .filter(|(l, _)| seen.insert(l))
        .map(|(_, size)| size)
        .sum()
}

impl Engine {
    /// Every build cache record, oldest first.
    pub fn build_cache(&self) -> Result<Vec<CacheRecord>> {
        let t = self.store.read();
        let rows = t.cache_rows()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let images = t.images()?;
        let by_id: HashMap<&Digest, &berth_store::ImageRow> =
            images.iter().map(|i| (&i.id, i)).collect();
        let cached: HashSet<&Digest> = rows.iter().map(|r| &r.image_id).collect();
        let tagged: HashSet<Digest> = t.all_tags()?.into_iter().map(|(_, id)| id).collect();
        let ancestors_of = |start: &Digest, out: &mut HashSet<Digest>| {
            let mut cur = Some(start.clone());
            while let Some(id) = cur {
                if !out.insert(id.clone()) {
                    break;
                }
                cur = by_id.get(&id).and_then(|i| i.parent.clone());
            }
        };
        // Images that are not build cache, with everything below them.
        let mut needed: HashSet<Digest> = HashSet::new();
        let mut needed_layers: HashSet<&Digest> = HashSet::new();
        for img in &images {
            if tagged.contains(&img.id) || !cached.contains(&img.id) {
                ancestors_of(&img.id, &mut needed);
                needed_layers.extend(img.layers.iter());
            }
        }
        // Build cache images containers stand on, with the build cache
        // below them (a container of a tagged image holds that image, not
        // the cache, as with BuildKit).
        let mut used: HashSet<Digest> = HashSet::new();
        let users = t
            .containers()?
            .into_iter()
            .map(|c| c.image_id)
            .chain(t.claims()?.into_iter().map(|c| c.image_id));
        for image in users {
            let mut cur = Some(image);
            while let Some(id) = cur.filter(|id| !needed.contains(id)) {
                if !used.insert(id.clone()) {
                    break;
                }
                cur = by_id.get(&id).and_then(|i| i.parent.clone());
            }
        }
        let sizes: HashMap<Digest, u64> = t
            .layers()?
            .into_iter()
            .map(|l| {
                let size = t.layer(&l).ok().flatten().map_or(0, |r| r.size);
                (l, size)
            })
            .collect();
        let mut out = Vec::new();
        for r in rows {
            let Some(img) = by_id.get(&r.image_id) else {
                continue;
            };
            let below: HashSet<&Digest> = img
                .parent
                .as_ref()
                .and_then(|p| by_id.get(p))
                .map(|p| p.layers.iter().collect())
                .unwrap_or_default();
            let own: Vec<(Digest, u64)> = img
                .layers
                .iter()
                .filter(|l| !below.contains(l))
                .map(|l| (l.clone(), sizes.get(l).copied().unwrap_or(0)))
                .collect();
            let shared =
                needed.contains(&img.id) || own.iter().any(|(l, _)| needed_layers.contains(l));
            out.push(CacheRecord {
                id: r.key.hex().to_string(),
                image: r.image_id.clone(),
                size: own.iter().map(|(_, size)| size).sum(),
                layers: own,
                created: time_of(r.created),
                last_used: time_of(r.last_used),
                usage: r.uses,
                shared,
                in_use: used.contains(&r.image_id),
            });
        }
        Ok(out)
    }

    /// `builder prune [-a] [--filter until=…] [--keep-storage N]`.
    pub fn prune_build_cache(
        &mut self,
        o: &BuildCachePruneOptions,
    ) -> Result<BuildCachePruneReport> {
        let until = cache_until(&o.filters, Utc::now())?;
        self.collect_stale_claims()?;
        let before = self.layer_sizes()?;
        let records = self.build_cache()?;
        let mut candidates: Vec<&CacheRecord> = records
            .iter()
            .filter(|r| !r.in_use && (o.all || !r.shared))
            .filter(|r| until.is_none_or(|u| r.last_used < u))
            .collect();
        if let Some(keep) = o.keep_storage {
            candidates.sort_by_key(|r| r.last_used);
            let mut total = cache_size(&records);
            let mut kept = Vec::new();
            for r in candidates {
                if total <= keep {
                    break;
                }
                if !r.shared {
                    total = total.saturating_sub(r.size);
                }
                kept.push(r);
            }
            candidates = kept;
        }
        let mut report = BuildCachePruneReport::default();
        // Images go first, children before parents (a parent becomes
        // removable when its last child went), until none goes.
        let mut images: Vec<&Digest> = Vec::new();
        for r in &candidates {
            if !images.contains(&&r.image) {
                images.push(&r.image);
            }
        }
        let keys_of = |img: &Digest| -> Vec<String> {
            records
                .iter()
                .filter(|r| &r.image == img)
                .map(|r| r.id.clone())
                .collect()
        };
        let mut gone: HashSet<&Digest> = HashSet::new();
        loop {
            let mut progressed = false;
            for img in &images {
                if gone.contains(img) {
                    continue;
                }
                // Re-checked in the transaction that deletes it.
                match self.remove_image_as(img.as_str(), RemoveMode::Prune { all: false }) {
                    Ok(Some(_)) => {
                        gone.insert(img);
                        report.deleted.extend(keys_of(img));
                        progressed = true;
                    }
                    Ok(None) => {}
                    Err(EngineError::NoSuchImage(_)) => {
                        gone.insert(img);
                    }
                    Err(EngineError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                break;
            }
        }
        // The images that stay lose the records chosen.
        for r in &candidates {
            if gone.contains(&r.image) {
                continue;
            }
            let Ok(key) = Digest::parse(&format!("sha256:{}", r.id)) else {
                continue;
            };
            self.store.transaction(|t| t.delete_cache_row(&key))?;
            report.deleted.push(r.id.clone());
        }
        let after = self.layer_sizes()?;
        report.space_reclaimed = before
            .iter()
            .filter(|(d, _)| !after.contains_key(*d))
            .map(|(_, size)| size)
            .sum();
        Ok(report)
    }
}

/// `--keep-storage`'s value as the docker CLI reads it (go-units'
/// `RAMInBytes`): binary units, `b`/`k`/`m`/`g`/`t`/`p` with an optional
/// `b` or `ib`, a fraction allowed.
pub fn ram_in_bytes(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("invalid size: '{s}'");
    let t = s.trim();
    let digits = t
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (num, unit) = t.split_at(digits);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let shift = match unit {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let v = n * (1u64 << shift) as f64;
    if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_a_duration() {
        let now = Utc::now();
        let f = crate::filters::Filters::parse(["until=1h"]).unwrap();
        assert_eq!(
            cache_until(&f, now).unwrap(),
            Some(now - chrono::Duration::hours(1))
        );
        let f = crate::filters::Filters::parse(["until=yesterday"]).unwrap();
        assert_eq!(
            cache_until(&f, now).unwrap_err().to_string(),
            "failed to prune build cache: \"until\" filter expects a duration (e.g., '24h'): time: invalid duration \"yesterday\""
        );
        let f = crate::filters::Filters::parse(["label=x"]).unwrap();
        assert_eq!(
            cache_until(&f, now).unwrap_err().to_string(),
            "failed to prune build cache: Invalid filter 'label'"
        );
    }

    #[test]
    fn keep_storage_sizes_are_binary() {
        assert_eq!(ram_in_bytes("512"), Ok(512));
        assert_eq!(ram_in_bytes("1k"), Ok(1024));
        assert_eq!(ram_in_bytes("1kb"), Ok(1024));
        assert_eq!(ram_in_bytes("1KiB"), Ok(1024));
        assert_eq!(ram_in_bytes("1.5m"), Ok(1536 * 1024));
        assert_eq!(ram_in_bytes("2g"), Ok(2 << 30));
        assert_eq!(ram_in_bytes("0"), Ok(0));
        assert!(ram_in_bytes("abc").is_err());
        assert!(ram_in_bytes("1x").is_err());
        assert!(ram_in_bytes("").is_err());
    }

    fn rec(layers: &[&str], size: u64, shared: bool) -> CacheRecord {
        CacheRecord {
            id: String::new(),
            image: Digest::of_bytes(layers.concat().as_bytes()),
            size,
            layers: layers
                .iter()
                .map(|l| (Digest::of_bytes(l.as_bytes()), size))
                .collect(),
            created: Utc::now(),
            last_used: Utc::now(),
            usage: 1,
            shared,
            in_use: false,
        }
    }

    #[test]
    fn cache_size_counts_unshared_layers_once() {
        let a = rec(&["a"], 10, false);
        let a_again = rec(&["a"], 10, false);
        let b = rec(&["b"], 5, true);
        let meta = rec(&[], 0, false);
        assert_eq!(cache_size([&a, &a_again, &b, &meta]), 10);
    }
}
