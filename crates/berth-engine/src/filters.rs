//! `--filter key=value` for `images` and `ps`, with Docker's semantics.
//!
//! Owns: parsing filter arguments into a [`Filters`] set (the same key
//! given twice: either value matches; different keys: all must match,
//! except `label`, whose values must all match, as Docker's), checking the
//! keys and values each listing accepts (Docker's error wording), and
//! Docker's glob matching of image references ([`glob_match`], Go's
//! `path.Match`).
//!
//! Never: formats output (the CLI does), or keeps anything between calls.

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_net::ports::ActualPort;
use berth_types::{Digest, Reference};
use regex::Regex;

use crate::{ContainerView, Engine, EngineError, ImageSummary, Result, Status};

/// A filter argument without `=`: the docker CLI refuses it while parsing
/// its flags (exit 125), before asking the daemon anything.
#[derive(Debug, thiserror::Error)]
#[error("bad format of filter (expected name=value)")]
pub struct BadFilterFormat(pub String);

/// Parsed `--filter` arguments: each key with its values in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    args: BTreeMap<String, Vec<String>>,
}

/// The keys `images` accepts.
const IMAGE_KEYS: &[&str] = &["before", "dangling", "label", "reference", "since"];
/// The keys `ps` accepts.
const PS_KEYS: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "expose",
    "health",
    "id",
    "is-task",
    "isolation",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];
const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];
const HEALTH: &[&str] = &["starting", "healthy", "unhealthy", "none"];

impl Filters {
    /// Parses `key=value` arguments (the value may be empty or hold `=`).
    pub fn parse<S: AsRef<str>>(
        args: impl IntoIterator<Item = S>,
    ) -> std::result::Result<Filters, BadFilterFormat> {
        let mut f = Filters::default();
        for a in args {
            let a = a.as_ref();
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| BadFilterFormat(a.to_string()))?;
            f.add(k.trim().to_ascii_lowercase(), v.trim());
        }
        Ok(f)
    }

    /// Adds one value for `key` (a value given twice counts once).
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let vals = self.args.entry(key.into()).or_default();
        let value = value.into();
        if !vals.contains(&value) {
            vals.push(value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.args.contains_key(key)
    }

    /// The values given for `key`, in order; empty when none.
    pub fn get(&self, key: &str) -> &[String] {
        self.args.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refuses keys outside `accepted`: `Invalid filter 'bogus'`.
    pub(crate) fn check_keys(&self, accepted: &[&str]) -> Result<()> {
        match self.args.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(invalid(format!("Invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// Docker's `key=[v1 v2]`, as its daemon prints a refused value list.
    fn listed(&self, key: &str) -> String {
        format!("{key}=[{}]", self.get(key).join(" "))
    }

    /// Whether `key` is absent or one of its values equals `value`.
    fn exact(&self, key: &str, value: &str) -> bool {
        self.args
            .get(key)
            .is_none_or(|vals| vals.iter().any(|v| v == value))
    }

    /// The values of `key` as regular expressions, compiled once (`None`
    /// without such a filter). An invalid expression matches nothing, as
    /// Docker's, so it is left out.
    fn regexes(&self, key: &str) -> Option<Vec<Regex>> {
        self.args
            .get(key)
            .map(|vals| vals.iter().filter_map(|v| Regex::new(v).ok()).collect())
    }

    /// Docker's label match: every `label` value (`key` or `key=value`)
    /// must be among `labels`.
    fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels_match_key("label", labels)
    }

    fn labels_match_key(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).iter().all(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(l.as_str()),
        })
    }

    /// Checks a prune's filters (`until`, `label`, `label!`) and returns the
    /// latest time an object may have been made to go: `until`'s (a time or
    /// a duration before `now`), or `None` for no limit.
    pub(crate) fn prune_until(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.check_keys(PRUNE_KEYS)?;
        let mut until = None;
        for u in self.get("until") {
            let t = crate::timeparse::parse_time_arg(u, "until", now).map_err(|_| {
                invalid(format!("failed to parse value as time or duration: {u:?}"))
            })?;
            until = Some(until.map_or(t, |prev: chrono::DateTime<chrono::Utc>| prev.min(t)));
        }
        Ok(until)
    }

    /// Whether a prune takes an object with `labels`: every `label` present
    /// and, when `label!` is given, not every `label!` present (Docker's).
    pub(crate) fn prune_labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels_match(labels)
            && (!self.contains("label!") || !self.labels_match_key("label!", labels))
    }
}

/// `ps --filter network=X`: X names (or is the ID of) one of the
/// container's networks; a container on `host` or `none` is on that one.
fn container_on_network(v: &ContainerView, what: &str) -> bool {
    let h = &v.host_config;
    if h.networks.is_empty() {
        return h.network_mode == what || (h.network_mode == "default" && what == "none");
    }
    h.networks
        .iter()
        .any(|(name, e)| name == what || (!e.network_id.is_empty() && e.network_id == what))
}

/// What `container prune --filter` accepts.
const PRUNE_KEYS: &[&str] = &["until", "label", "label!"];

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

/// Go's `path.Match`: `*` is any run of characters but `/`, `?` one
/// character but `/`, `[a-z]`/`[^...]` a class, `\` escapes. A malformed
/// pattern is an error: `syntax error in pattern`, as Docker's.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool> {
    let p: Vec<char> = pattern.chars().collect();
    check_glob(&p)?;
    let n: Vec<char> = name.chars().collect();
    Ok(glob_at(&p, &n))
}

fn bad_pattern() -> EngineError {
    invalid("syntax error in pattern".into())
}

/// Validates a whole pattern (Go checks the rest even after a mismatch).
fn check_glob(p: &[char]) -> Result<()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(bad_pattern());
                }
                i += 2;
            }
            '[' => i = class_end(p, i + 1).ok_or_else(bad_pattern)?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index after the class that starts at `i` (just after `[`), or
/// `None` when it is malformed.
fn class_end(p: &[char], mut i: usize) -> Option<usize> {
    if p.get(i) == Some(&'^') {
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            return Some(i + 1);
        }
        if c == '-' || c == ']' {
            return None;
        }
        first = false;
        i = class_char_end(p, i)?;
        if p.get(i) == Some(&'-') {
            i = class_char_end(p, i + 1)?;
        }
    }
}

/// One class character at `i` (maybe escaped): the index after it.
fn class_char_end(p: &[char], i: usize) -> Option<usize> {
    match *p.get(i)? {
        '\\' => p.get(i + 1).map(|_| i + 2),
        '-' | ']' => None,
        _ => Some(i + 1),
    }
}

fn class_char(p: &[char], i: usize) -> (char, usize) {
    if p[i] == '\\' {
        (p[i + 1], i + 2)
    } else {
        (p[i], i + 1)
    }
}

/// Matches a validated pattern against `n`.
fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => {
            // Any run of non-'/' characters, shortest first.
            let rest = &p[1..];
            let mut k = 0;
            loop {
                if glob_at(rest, &n[k..]) {
                    return true;
                }
                if k >= n.len() || n[k] == '/' {
                    return false;
                }
                k += 1;
            }
        }
        Some('?') => n.first().is_some_and(|c| *c != '/') && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(&c) = n.first() else { return false };
            if c == '/' {
                return false;
            }
            let mut i = 1;
            let negate = p.get(i) == Some(&'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != ']') {
                first = false;
                let (lo, next) = class_char(p, i);
                i = next;
                let mut hi = lo;
                if p.get(i) == Some(&'-') {
                    let (h, next) = class_char(p, i + 1);
                    hi = h;
                    i = next;
                }
                hit |= lo <= c && c <= hi;
            }
            // `i` is at the closing ']' (validated by check_glob).
            hit != negate && glob_at(&p[i + 1..], &n[1..])
        }
        Some('\\') => p.get(1).is_some_and(|e| n.first() == Some(e)) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

/// Docker's `reference` match: the pattern against the familiar
/// `name:tag`, then against the familiar name alone.
pub fn reference_match(pattern: &str, r: &Reference) -> Result<bool> {
    Ok(glob_match(pattern, &r.familiar())? || glob_match(pattern, &r.familiar_repository())?)
}

fn created_of(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

impl Engine {
    /// `images [-a] [REPO[:TAG]] --filter …`: the images that pass `f`,
    /// each with only its tags that match the `reference` filters. An
    /// untagged image is listed only without a `reference` filter, and when
    /// other images are built on it (an intermediate image) only with `all`
    /// and not for `dangling=true`, as Docker's.
    pub fn images_filtered(&self, f: &Filters, all: bool) -> Result<Vec<ImageSummary>> {
        f.check_keys(IMAGE_KEYS)?;
        let dangling_only = match f.get("dangling") {
            [] => None,
            _ if f.exact("dangling", "true") => Some(true),
            _ if f.exact("dangling", "false") => Some(false),
            _ => {
                return Err(invalid(format!(
                    "Invalid filter '{}'",
                    f.listed("dangling")
                )))
            }
        };
        // Docker keeps the last `before`/`since` it is given.
        let bound = |key: &str| -> Result<Option<String>> {
            f.get(key)
                .iter()
                .map(|v| self.resolve_image(v).map(|row| row.created))
                .last()
                .transpose()
        };
        let before = bound("before")?.as_deref().and_then(created_of);
        let since = bound("since")?.as_deref().and_then(created_of);
        for p in f.get("reference") {
            glob_match(p, "")?;
        }
        let images = self.images()?;
        let parents: HashSet<Digest> = images.iter().filter_map(|i| i.parent.clone()).collect();
        // A build's steps are its cache, not images a user made.
        let steps = if all {
            HashSet::new()
        } else {
            self.store.read().cache_only_images()?
        };
        let mut out = Vec::new();
        for mut img in images {
            let created = created_of(&img.created);
            if before.is_some_and(|b| created.is_none_or(|c| c >= b))
                || since.is_some_and(|s| created.is_none_or(|c| c <= s))
            {
                continue;
            }
            let labels = img.config.config.labels.clone().unwrap_or_default();
            if !f.labels_match(&labels) {
                continue;
            }
            if img.tags.is_empty() {
                let intermediate = parents.contains(&img.id) || steps.contains(&img.id);
                if dangling_only == Some(false)
                    || f.contains("reference")
                    || (intermediate && (!all || dangling_only == Some(true)))
                {
                    continue;
                }
            } else {
                if dangling_only == Some(true) {
                    continue;
                }
                if f.contains("reference") {
                    let mut kept = Vec::new();
                    for r in img.tags {
                        let mut hit = false;
                        for p in f.get("reference") {
                            hit = hit || reference_match(p, &r)?;
                        }
                        if hit {
                            kept.push(r);
                        }
                    }
                    if kept.is_empty() {
                        continue;
                    }
                    img.tags = kept;
                }
            }
            out.push(img);
        }
        Ok(out)
    }

    /// `ps --filter …`: the containers (newest first) that pass `f`;
    /// stopped ones too when `all` or a `status` filter is given.
    pub fn containers_filtered(&self, f: &Filters, all: bool) -> Result<Vec<ContainerView>> {
        self.filter_containers(self.containers()?, f, all)
    }

    /// [`Engine::containers_filtered`] of containers already read (`list`,
    /// newest first, as [`Engine::containers`] returns them).
    pub fn filter_containers(
        &self,
        list: Vec<ContainerView>,
        f: &Filters,
        all: bool,
    ) -> Result<Vec<ContainerView>> {
        f.check_keys(PS_KEYS)?;
        for s in f.get("status") {
            if !STATUSES.contains(&s.as_str()) {
                return Err(invalid(format!("Invalid filter 'status={s}'")));
            }
        }
        for h in f.get("health") {
            if !HEALTH.contains(&h.as_str()) {
                return Err(invalid(format!(
                    "Unrecognised filter value for health: {h}"
                )));
            }
        }
        let is_task = match f.get("is-task") {
            [] => None,
            _ if f.exact("is-task", "true") => Some(true),
            _ if f.exact("is-task", "false") => Some(false),
            _ => return Err(invalid(format!("Invalid filter '{}'", f.listed("is-task")))),
        };
        let mut exited = Vec::new();
        for v in f.get("exited") {
            let code: i32 = v
                .parse()
                .map_err(|_| invalid(format!("strconv.Atoi: parsing \"{v}\": invalid syntax")))?;
            exited.push(code);
        }
        // before/since: by position in the newest-first list, as Docker's.
        let position = |key: &str| -> Result<Option<usize>> {
            let Some(v) = f.get(key).last() else {
                return Ok(None);
            };
            let row = self
                .find_container(v)
                .map_err(|_| invalid(format!("no such container {v}")))?;
            Ok(list.iter().position(|c| c.id == row.id))
        };
        let before = position("before")?;
        let since = position("since")?;
        let publish = port_filter(f, "publish")?;
        let expose = port_filter(f, "expose")?;
        let ancestors = self.ancestor_set(f.get("ancestor"))?;
        let all = all || f.contains("status");
        let (ids, names, isolation) = (f.regexes("id"), f.regexes("name"), f.regexes("isolation"));
        let any = |res: &Option<Vec<Regex>>, sources: &[&str]| {
            res.as_ref()
                .is_none_or(|res| res.iter().any(|re| sources.iter().any(|s| re.is_match(s))))
        };
        let mut out = Vec::new();
        for (i, v) in list.into_iter().enumerate() {
            if !(all || v.running())
                || before.is_some_and(|b| i <= b)
                || since.is_some_and(|s| i >= s)
            {
                continue;
            }
            let slashed = format!("/{}", v.name);
            let keep = any(&ids, &[v.id.as_str()])
                && any(&names, &[&slashed, &v.name])
                && any(&isolation, &["default"])
                && f.labels_match(&v.config.labels)
                && f.exact("status", v.status_word())
                && (exited.is_empty()
                    || (v.state.status == Status::Exited && exited.contains(&v.state.exit_code)))
                && ancestors.as_ref().is_none_or(|a| a.contains(&v.image_id))
                && (!f.contains("volume")
                    || f.get("volume").iter().any(|m| {
                        v.host_config.mounts.iter().any(|mp| {
                            mp.destination == *m || (!mp.name.is_empty() && mp.name == *m)
                        })
                    }))
                && (!f.contains("network")
                    || f.get("network").iter().any(|n| container_on_network(&v, n)))
                && f.exact(
                    "health",
                    v.health.as_ref().map_or("none", |h| h.status.as_str()),
                )
                && is_task != Some(true);
            // The ports `ps` shows (a running container's): `publish`
            // matches their host side (0 for a port only exposed), `expose`
            // their container side, as dockerd's.
            let keep = keep
                && (publish.is_none() && expose.is_none() || {
                    let ports = self.container_ports(&v);
                    let hit = |ranges: &Option<Vec<PortRange>>, side: fn(&ActualPort) -> u16| {
                        ranges.as_ref().is_none_or(|rs| {
                            ports
                                .iter()
                                .any(|p| rs.iter().any(|r| r.contains(side(p), &p.proto)))
                        })
                    };
                    hit(&publish, |p| p.host_port) && hit(&expose, |p| p.container_port)
                });
            if keep {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The images given by `ancestor` values and every image built on them
    /// (`None` without such a filter); values naming no image match nothing.
    fn ancestor_set(&self, values: &[String]) -> Result<Option<HashSet<Digest>>> {
        if values.is_empty() {
            return Ok(None);
        }
        let roots: HashSet<Digest> = values
            .iter()
            .filter_map(|v| self.resolve_image(v).ok().map(|r| r.id))
            .collect();
        let parents: HashMap<Digest, Option<Digest>> = self
            .images()?
            .into_iter()
            .map(|i| (i.id, i.parent))
            .collect();
        let mut set = HashSet::new();
        for id in parents.keys() {
            let mut cur = Some(id.clone());
            let mut steps = 0;
            while let Some(c) = cur {
                if roots.contains(&c) {
                    set.insert(id.clone());
                    break;
                }
                steps += 1;
                if steps > parents.len() {
                    break;
                }
                cur = parents.get(&c).cloned().flatten();
            }
        }
        set.extend(roots);
        Ok(Some(set))
    }
}

/// A `publish=`/`expose=` filter value: ports `lo..=hi` of a protocol.
struct PortRange {
    lo: u16,
    hi: u16,
    proto: String,
}

impl PortRange {
    fn contains(&self, port: u16, proto: &str) -> bool {
        self.proto == proto && (self.lo..=self.hi).contains(&port)
    }
}

/// The values of a `publish` or `expose` filter (None: no such filter),
/// parsed as dockerd parses them — `PORT[-PORT][/PROTO]`, `tcp` when no
/// protocol is given — with its words for a bad one.
fn port_filter(f: &Filters, key: &str) -> Result<Option<Vec<PortRange>>> {
    let values = f.get(key);
    if values.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let (ports, proto) = v.split_once('/').unwrap_or((v.as_str(), "tcp"));
        let (lo, hi) = port_range(ports)
            .map_err(|e| invalid(format!("error while looking up for {key} {v}: {e}")))?;
        out.push(PortRange {
            lo,
            hi,
            proto: proto.to_string(),
        });
    }
    Ok(Some(out))
}

/// `N` or `N-M` (anything after a second `-` is ignored, as Go's
/// `nat.ParsePortRange` does), in its words.
fn port_range(s: &str) -> std::result::Result<(u16, u16), String> {
    if s.is_empty() {
        return Err("Empty string specified for ports.".into());
    }
    let mut parts = s.split('-');
    let lo = go_parse_u16(parts.next().unwrap_or_default())?;
    let hi = match parts.next() {
        Some(p) => go_parse_u16(p)?,
        None => lo,
    };
    if hi < lo {
        return Err(format!("Invalid range specified for the Port: {s}"));
    }
    Ok((lo, hi))
}

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error text.
fn go_parse_u16(s: &str) -> std::result::Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse::<u16>()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_filters_parse_as_dockerd_does() {
        assert_eq!(port_range("80"), Ok((80, 80)));
        assert_eq!(port_range("8000-8100"), Ok((8000, 8100)));
        // Go's nat.ParsePortRange reads two parts of a split on '-'.
        assert_eq!(port_range("1-2-3"), Ok((1, 2)));
        assert_eq!(port_range("080"), Ok((80, 80)));
        for (bad, words) in [
            ("", "Empty string specified for ports."),
            ("abc", "strconv.ParseUint: parsing \"abc\": invalid syntax"),
            (
                "70000",
                "strconv.ParseUint: parsing \"70000\": value out of range",
            ),
            ("+5", "strconv.ParseUint: parsing \"+5\": invalid syntax"),
            ("1-", "strconv.ParseUint: parsing \"\": invalid syntax"),
            ("-5", "strconv.ParseUint: parsing \"\": invalid syntax"),
            ("90-80", "Invalid range specified for the Port: 90-80"),
        ] {
            assert_eq!(port_range(bad), Err(words.to_string()), "{bad:?}");
        }
        let r = PortRange {
            lo: 9000,
            hi: 9001,
            proto: "udp".into(),
        };
        assert!(r.contains(9001, "udp"));
        assert!(!r.contains(9001, "tcp"));
        assert!(!r.contains(9002, "udp"));
    }

    fn m(p: &str, n: &str) -> bool {
        glob_match(p, n).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn glob_as_go_path_match() {
        assert!(m("myrepo/*", "myrepo/app"));
        assert!(m("*/app", "myrepo/app"));
        assert!(!m("*", "myrepo/app"));
        assert!(m("bb:v*", "bb:v2"));
        assert!(!m("bb:v*", "bb:latest"));
        assert!(m("b?", "bb"));
        assert!(!m("b?", "b/"));
        assert!(m("[a-c]b", "bb"));
        assert!(!m("[^a-c]b", "bb"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "axxbyyc"));
        for bad in ["[", "a[", "[a-", "x\\", "[]", "[]a]", "[-a]"] {
            assert!(glob_match(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn reference_matches_name_and_name_tag() {
        let r = Reference::parse("bb:v2").unwrap_or_else(|e| panic!("{e}"));
        assert!(reference_match("bb", &r).unwrap_or(false));
        assert!(reference_match("bb:*", &r).unwrap_or(false));
        assert!(!reference_match("library/bb", &r).unwrap_or(true));
    }

    #[test]
    fn parse_groups_values_by_key() {
        let f = Filters::parse(["name=a", "name=b", "label=x=y", "status="])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.get("name"), ["a", "b"]);
        assert_eq!(f.get("label"), ["x=y"]);
        assert_eq!(f.get("status"), [""]);
        assert!(f.get("id").is_empty());
        assert!(Filters::parse(["noequals"]).is_err());
        let e = f.check_keys(&["name", "label"]);
        assert!(
            matches!(e, Err(EngineError::InvalidArgument(m)) if m == "Invalid filter 'status'")
        );
    }

    #[test]
    fn labels_are_all_required() {
        let f = Filters::parse(["label=a", "label=b=2"]).unwrap_or_else(|e| panic!("{e}"));
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(!f.labels_match(&l));
        l.insert("b".to_string(), "2".to_string());
        assert!(f.labels_match(&l));
        l.insert("b".to_string(), "3".to_string());
        assert!(!f.labels_match(&l));
    }
}
