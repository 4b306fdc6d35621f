//! `berth events`: what the engine records of its own operations and
//! reads back, filtered as Docker filters its event stream.
//!
//! Owns: the attributes each kind of event carries (a container's image,
//! name and labels; an image's name; a network's name and type), emitting
//! them into the shared log ([`berth_runtime::events`], which container
//! monitors write too: start, die, oom, idle, wake, health_status), and
//! `events` itself — history from `--since`, then live with inotify until
//! `--until`.
//!
//! Never: fails an operation because its event could not be written (a
//! full disk loses the record, not the operation).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use berth_runtime::events::{self as log, Event, Follower};
use chrono::{DateTime, Utc};

use crate::filters::Filters;
use crate::{ContainerView, Engine, Result};

/// The filter keys `events` accepts (Docker's).
const KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// What `events` reads: `since`/`until` bound the events by time (None:
/// from now on, and for ever).
#[derive(Debug, Default, Clone)]
pub struct EventOptions {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub filters: Filters,
}

/// A container's attributes in its events: image (as the user named it),
/// name, and its labels (Docker's).
pub fn container_attributes(v: &ContainerView) -> BTreeMap<String, String> {
    attributes(&v.config.image, &v.name, &v.config.labels)
}

pub(crate) fn attributes(
    image: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut a = labels.clone();
    a.insert("image".into(), image.to_string());
    a.insert("name".into(), name.trim_start_matches('/').to_string());
    a
}

/// `<dir>/attributes.json`: the attributes the container's monitor puts on
/// the events it records (rewritten by `rename`). Best effort, replaced
/// whole.
pub(crate) fn save_attributes(dir: &std::path::Path, a: &BTreeMap<String, String>) {
    if let Ok(data) = serde_json::to_vec(a) {
        let tmp = dir.join("attributes.json.tmp");
        if std::fs::write(&tmp, data).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join(log::ATTRIBUTES));
        }
    }
}

impl Engine {
    /// `<root>/events`: the log every berth process of this root appends to.
    pub fn events_dir(&self) -> PathBuf {
        self.opts.root.join("events")
    }

    /// Records an event (best effort: see the module's doc).
    pub(crate) fn emit(&self, kind: &str, action: &str, id: &str, attrs: BTreeMap<String, String>) {
        let e = Event::new(kind, action, id, attrs);
        let _ = log::append(&self.events_dir(), &e);
    }

    /// Records a container event with the container's attributes and
    /// `extra` ones (exitCode, signal, oldName…).
    pub(crate) fn emit_container(&self, v: &ContainerView, action: &str, extra: &[(&str, String)]) {
        let mut a = container_attributes(v);
        for (k, val) in extra {
            a.insert((*k).to_string(), val.clone());
        }
        self.emit("container", action, v.id.as_str(), a);
    }

    /// Records an image event (`name`: the reference it concerns).
    pub(crate) fn emit_image(&self, action: &str, id: &str, name: &str) {
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), name.to_string());
        self.emit("image", action, id, a);
    }

    /// Records a volume event (the local driver's: berth has no other).
    pub(crate) fn emit_volume(&self, action: &str, name: &str) {
        let mut a = BTreeMap::new();
        a.insert("driver".to_string(), "local".to_string());
        self.emit("volume", action, name, a);
    }

    /// Records a network event: its name and type (the driver), and the
    /// container it concerns (connect, disconnect).
    pub(crate) fn emit_network(
        &self,
        action: &str,
        id: &str,
        name: &str,
        driver: &str,
        container: Option<&str>,
    ) {
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), name.to_string());
        a.insert("type".to_string(), driver.to_string());
        if let Some(c) = container {
            a.insert("container".to_string(), c.to_string());
        }
        self.emit("network", action, id, a);
    }

    /// `events`: calls `sink` with each matching event, history first
    /// (with `since`), then live ones until `until` (never without it) or
    /// until `sink` returns false.
    pub fn events(&self, o: &EventOptions, sink: impl FnMut(&Event) -> bool) -> Result<()> {
        self.events_while(o, None, || true, sink)
    }

    /// `events`, following ending as well once `go_on` says no, asked at
    /// least every `every` (a server's client that went away).
    pub fn events_while(
        &self,
        o: &EventOptions,
        every: Option<Duration>,
        mut go_on: impl FnMut() -> bool,
        mut sink: impl FnMut(&Event) -> bool,
    ) -> Result<()> {
        o.filters.check_keys(KEYS)?;
        let now = Utc::now();
        if let (Some(s), Some(u)) = (o.since, o.until) {
            if s > u {
                return Err(crate::EngineError::InvalidArgument(format!(
                    "`since` time ({}) cannot be after `until` time ({})",
                    docker_time(s),
                    docker_time(u)
                )));
            }
        }
        let in_range = |e: &Event| {
            o.since.is_none_or(|s| e.time_nano >= nanos(s))
                && o.until.is_none_or(|u| e.time_nano <= nanos(u))
        };
        // The follower first, so nothing written while the history is read
        // falls between the two.
        let live = o.until.is_none_or(|u| u > now);
        let mut follower = if live {
            Some(
                Follower::new(&self.events_dir()).map_err(|e| crate::EngineError::Io {
                    context: "following the event log".into(),
                    source: e,
                })?,
            )
        } else {
            None
        };
        if o.since.is_some() {
            let history = match &follower {
                Some(f) => f.history(),
                None => log::read_all(&self.events_dir()),
            };
            for e in history
                .iter()
                .filter(|e| in_range(e) && matches(&o.filters, e))
            {
                if !sink(e) {
                    return Ok(());
                }
            }
        }
        let Some(f) = follower.as_mut() else {
            return Ok(());
        };
        loop {
            let left = match o.until {
                Some(u) => match (u - Utc::now()).to_std() {
                    Ok(d) => Some(d),
                    Err(_) => return Ok(()),
                },
                None => None,
            };
            let timeout = match (left, every) {
                (Some(l), Some(e)) => Some(l.min(e)),
                (l, e) => l.or(e),
            };
            let batch = f.next_batch(timeout).map_err(|e| crate::EngineError::Io {
                context: "following the event log".into(),
                source: e,
            })?;
            if batch.is_empty() && left.is_some_and(|t| t <= Duration::from_millis(1)) {
                return Ok(());
            }
            if batch.is_empty() && !go_on() {
                return Ok(());
            }
            for e in batch
                .iter()
                .filter(|e| in_range(e) && matches(&o.filters, e))
            {
                if !sink(e) {
                    return Ok(());
                }
            }
        }
    }
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Docker's way of printing a bound in its error: seconds.nanoseconds.
fn docker_time(t: DateTime<Utc>) -> String {
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

/// Docker's event filter: each key that is given must match (its values
/// are alternatives), `label` values must all match.
pub fn matches(f: &Filters, e: &Event) -> bool {
    let exact = |key: &str, value: &str| {
        let vals = f.get(key);
        vals.is_empty() || vals.iter().any(|v| v == value)
    };
    let any_exact = |key: &str, values: &[&str]| {
        let vals = f.get(key);
        vals.is_empty() || values.iter().any(|x| vals.iter().any(|v| v == x))
    };
    // Docker's FuzzyMatch: equal, or the value is a prefix.
    let fuzzy_name = |key: &str| {
        let vals = f.get(key);
        let name = e
            .actor
            .attributes
            .get("name")
            .map(String::as_str)
            .unwrap_or("");
        vals.is_empty()
            || vals
                .iter()
                .any(|v| e.actor.id.starts_with(v.as_str()) || name.starts_with(v.as_str()))
    };
    // exec_create, exec_start and health_status carry their detail after a
    // colon: given bare, they match as prefixes (Docker #25798).
    let event_ok = {
        let vals = f.get("event");
        let fuzzy = vals
            .iter()
            .any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start"));
        vals.is_empty()
            || vals
                .iter()
                .any(|v| e.action == *v || (fuzzy && e.action.starts_with(v.as_str())))
    };
    let image_ok = {
        let name_attr = if e.kind == "image" { "name" } else { "image" };
        let name = e
            .actor
            .attributes
            .get(name_attr)
            .map(String::as_str)
            .unwrap_or("");
        any_exact(
            "image",
            &[&e.actor.id, name, strip_tag(&e.actor.id), strip_tag(name)],
        )
    };
    let labels_ok = f.get("label").iter().all(|l| match l.split_once('=') {
        Some((k, v)) => e.actor.attributes.get(k).is_some_and(|x| x == v),
        None => e.actor.attributes.contains_key(l.as_str()),
    });
    event_ok
        && exact("type", &e.kind)
        && exact("scope", &e.scope)
        && image_ok
        && labels_ok
        && [
            "container",
            "volume",
            "network",
            "daemon",
            "plugin",
            "service",
            "node",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| fuzzy_name(k))
}

/// `name:tag` → `name` (a registry port's colon is not a tag's).
fn strip_tag(s: &str) -> &str {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') && !s.starts_with("sha256:") => &s[..i],
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event::new(
            kind,
            action,
            id,
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn f(args: &[&str]) -> Filters {
        Filters::parse(args.iter().copied()).unwrap()
    }

    #[test]
    fn docker_filter_semantics() {
        let start = ev(
            "container",
            "start",
            "abc123",
            &[("name", "web"), ("image", "bb:1"), ("tier", "front")],
        );
        let exec = ev(
            "container",
            "exec_start: sh -c true",
            "abc123",
            &[("name", "web")],
        );
        let tag = ev("image", "tag", "sha256:ff", &[("name", "bb:1")]);
        assert!(matches(&f(&[]), &start));
        assert!(matches(&f(&["container=abc"]), &start));
        assert!(matches(&f(&["container=we"]), &start));
        assert!(!matches(&f(&["container=xyz"]), &start));
        assert!(matches(&f(&["event=start", "event=die"]), &start));
        assert!(!matches(&f(&["event=die"]), &start));
        assert!(!matches(&f(&["event=exec"]), &exec));
        assert!(matches(&f(&["event=exec_start"]), &exec));
        assert!(matches(&f(&["type=image"]), &tag));
        assert!(!matches(&f(&["type=image"]), &start));
        assert!(matches(&f(&["image=bb"]), &start));
        assert!(matches(&f(&["image=bb:1"]), &tag));
        assert!(matches(&f(&["image=bb"]), &tag));
        assert!(!matches(&f(&["image=other"]), &tag));
        assert!(matches(&f(&["label=tier"]), &start));
        assert!(matches(&f(&["label=tier=front"]), &start));
        assert!(!matches(&f(&["label=tier=back"]), &start));
        assert!(!matches(&f(&["label=tier", "label=x"]), &start));
        assert!(!matches(&f(&["type=container", "event=tag"]), &start));
        assert_eq!(strip_tag("localhost:5000/bb"), "localhost:5000/bb");
        assert_eq!(strip_tag("localhost:5000/bb:2"), "localhost:5000/bb");
    }
}
