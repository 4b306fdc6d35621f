//! The event log (`berth events`): every berth process that changes
//! something — the CLI's engine and each container's monitor alike —
//! appends one JSON line per event to `<root>/events/events.log`, in the
//! shape of Docker's event messages, so `--format '{{json .}}'` prints
//! what dockerd prints.
//!
//! Writers open the file with `O_APPEND` and write each line with one
//! `write`, so concurrent writers never interleave within a line. The log
//! is bounded: a writer that finds it past [`ROTATE_AT`] renames it to
//! `events.log.1` (under a lock, so two writers never rotate twice), and
//! readers read the old file before the live one. A failed append never
//! fails the operation that made the event: events are a record, not a
//! transaction.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The live log's name in the events directory.
pub const LOG: &str = "events.log";
/// The rotated log's name.
pub const OLD: &str = "events.log.1";
/// The file in a container's directory holding the attributes (image,
/// name, labels) its monitor puts on the events it records.
pub const ATTRIBUTES: &str = "attributes.json";

/// The size past which a writer rotates the log (Docker keeps 256 events
/// in memory; this keeps some thousands across restarts).
pub const ROTATE_AT: u64 = 2 * 1024 * 1024;

/// One event, as Docker's API sends it (`status`, `id` and `from` are the
/// legacy fields Docker still fills for container and image events).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// An event of `kind` (container, image, network, volume) happening
    /// now to `id`.
    pub fn new(kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) -> Event {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let (status, legacy_id, from) = match kind {
            "container" => (
                action.to_string(),
                id.to_string(),
                attributes.get("image").cloned().unwrap_or_default(),
            ),
            "image" => (action.to_string(), id.to_string(), String::new()),
            _ => Default::default(),
        };
        Event {
            status,
            id: legacy_id,
            from,
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        }
    }
}

/// Appends `event` to the log in `dir` (made when missing). Errors are
/// returned for the caller to ignore or report; nothing is left half
/// written.
pub fn append(dir: &Path, event: &Event) -> io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
    line.push(b'\n');
    let path = dir.join(LOG);
    let mut f = match open_append(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            open_append(&path)?
        }
        Err(e) => return Err(e),
    };
    f.write_all(&line)?;
    if f.metadata()?.len() > ROTATE_AT {
        rotate(dir)?;
    }
    Ok(())
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Renames the full log away, once: the lock makes a second writer that
/// saw the same full file find the fresh one and leave it.
fn rotate(dir: &Path) -> io::Result<()> {
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("rotate.lock"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    let live = dir.join(LOG);
    if std::fs::metadata(&live)?.len() > ROTATE_AT {
        std::fs::rename(&live, dir.join(OLD))?;
    }
    Ok(())
}

/// Every event on record, oldest first (unreadable lines are skipped:
/// a writer killed mid-line leaves at most one).
pub fn read_all(dir: &Path) -> Vec<Event> {
    let mut out = Vec::new();
    for name in [OLD, LOG] {
        if let Ok(f) = File::open(dir.join(name)) {
            for line in BufReader::new(f).split(b'\n').map_while(Result::ok) {
                if let Ok(e) = serde_json::from_slice::<Event>(&line) {
                    out.push(e);
                }
            }
        }
    }
    out
}

/// Records a container event from its monitor: the attributes from the
/// container's directory (read now: a `rename` changes them) plus
/// `extra`. Best effort.
pub fn container_event(
    events: &Path,
    dir: &Path,
    id: &str,
    action: &str,
    extra: &[(&str, String)],
) {
    if events.as_os_str().is_empty() {
        return;
    }
    let mut a: BTreeMap<String, String> = std::fs::read(dir.join(ATTRIBUTES))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for (k, v) in extra {
        a.insert((*k).to_string(), v.clone());
    }
    let _ = append(events, &Event::new("container", action, id, a));
}

/// One network a container is on, as its `network connect`/`disconnect`
/// events name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRef {
    pub id: String,
    pub name: String,
    /// The driver: `bridge`, `host` or `null`.
    pub driver: String,
}

/// Records a network event about a container (`connect` before its start,
/// `disconnect` after its end, as dockerd does for each of its networks).
/// Best effort.
pub fn network_event(events: &Path, action: &str, network: &NetworkRef, container: &str) {
    if events.as_os_str().is_empty() {
        return;
    }
    let mut a = BTreeMap::new();
    a.insert("container".to_string(), container.to_string());
    a.insert("name".to_string(), network.name.clone());
    a.insert("type".to_string(), network.driver.clone());
    let _ = append(events, &Event::new("network", action, &network.id, a));
}

/// Reads what writers append to the log from the moment it is made,
/// across rotations; waits with inotify (no polling).
pub struct Follower {
    dir: PathBuf,
    file: Option<File>,
    pending: Vec<u8>,
    inotify: rustix::fd::OwnedFd,
    /// Where following began in the live log.
    start: u64,
}

impl Follower {
    /// Starts at the log's current end: only events appended from now on
    /// are returned.
    pub fn new(dir: &Path) -> io::Result<Follower> {
        std::fs::create_dir_all(dir)?;
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC)?;
        // The directory, not the file: a rotation makes a new file.
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MODIFY
                | inotify::WatchFlags::CREATE
                | inotify::WatchFlags::MOVED_TO,
        )?;
        let mut f = Follower {
            dir: dir.to_path_buf(),
            file: None,
            pending: Vec::new(),
            inotify: fd,
            start: 0,
        };
        if let Ok(mut file) = File::open(dir.join(LOG)) {
            f.start = file.seek(SeekFrom::End(0))?;
            f.file = Some(file);
        }
        Ok(f)
    }

    /// The events on record before following began, oldest first: what
    /// [`Follower::next_batch`] returns comes after them, with none
    /// doubled or missed.
    pub fn history(&self) -> Vec<Event> {
        use std::os::unix::fs::FileExt;
        let mut data = std::fs::read(self.dir.join(OLD)).unwrap_or_default();
        if let Some(f) = &self.file {
            let at = data.len();
            data.resize(at + usize::try_from(self.start).unwrap_or(0), 0);
            if f.read_exact_at(&mut data[at..], 0).is_err() {
                data.truncate(at);
            }
        }
        data.split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Event>(l).ok())
            .collect()
    }

    /// The events appended since the last call, waiting for at least one
    /// for up to `timeout` (None: as long as it takes). An empty list: the
    /// time ran out.
    pub fn next_batch(&mut self, timeout: Option<std::time::Duration>) -> io::Result<Vec<Event>> {
        loop {
            let batch = self.drain()?;
            if !batch.is_empty() {
                return Ok(batch);
            }
            let ts = timeout.map(|t| rustix::event::Timespec {
                tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(t.subsec_nanos()),
            });
            let mut fds = [rustix::event::PollFd::new(
                &self.inotify,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(0) => return Ok(Vec::new()),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            // Empty the inotify queue; what changed is read from the files.
            let mut buf = [0u8; 4096];
            let _ = rustix::io::read(&self.inotify, &mut buf);
        }
    }

    /// Whatever is complete in the file being followed; after a rotation,
    /// the rest of the old file, then the new one from its start.
    fn drain(&mut self) -> io::Result<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            if let Some(f) = self.file.as_mut() {
                f.read_to_end(&mut self.pending)?;
                let complete = self
                    .pending
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                for line in self.pending[..complete].split(|&b| b == b'\n') {
                    if let Ok(e) = serde_json::from_slice::<Event>(line) {
                        out.push(e);
                    }
                }
                self.pending.drain(..complete);
            }
            // Still the live log? (Renamed away: the new one is read whole.)
            let live = std::fs::metadata(self.dir.join(LOG)).ok();
            let same = match (&self.file, &live) {
                (Some(f), Some(m)) => {
                    use std::os::unix::fs::MetadataExt;
                    f.metadata().is_ok_and(|fm| fm.ino() == m.ino())
                }
                (None, None) => true,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            if same {
                return Ok(out);
            }
            self.pending.clear();
            self.file = File::open(self.dir.join(LOG)).ok();
        }
    }
}

/// The event's one-line form in `berth events`: Docker's
/// `2006-01-02T15:04:05.999999999Z07:00 TYPE ACTION ID (k=v, ...)`.
pub fn human_line(e: &Event, time: &str) -> String {
    let mut s = format!("{time} {} {} {}", e.kind, e.action, e.actor.id);
    if !e.actor.attributes.is_empty() {
        let attrs: Vec<String> = e
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str) -> Event {
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), "web".to_string());
        a.insert("image".to_string(), "bb".to_string());
        Event::new("container", action, "abc", a)
    }

    #[test]
    fn docker_json_shape() {
        let e = ev("start");
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["status"], "start");
        assert_eq!(v["from"], "bb");
        assert_eq!(v["Actor"]["Attributes"]["name"], "web");
        assert_eq!(v["scope"], "local");
        assert_eq!(
            v["time"].as_i64().unwrap(),
            v["timeNano"].as_i64().unwrap() / 1_000_000_000
        );
        let n = Event::new("volume", "create", "v", BTreeMap::new());
        let v: serde_json::Value = serde_json::to_value(&n).unwrap();
        assert!(v.get("status").is_none() && v.get("id").is_none() && v.get("from").is_none());
        assert_eq!(
            human_line(&e, "T"),
            "T container start abc (image=bb, name=web)"
        );
    }

    #[test]
    fn append_read_follow_and_rotate() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("events");
        append(&dir, &ev("create")).unwrap();
        let mut f = Follower::new(&dir).unwrap();
        assert!(f
            .next_batch(Some(std::time::Duration::ZERO))
            .unwrap()
            .is_empty());
        append(&dir, &ev("later")).unwrap();
        let h = f.history();
        assert_eq!(h.len(), 1, "only what was there before following: {h:?}");
        assert_eq!(f.next_batch(None).unwrap()[0].action, "later");
        append(&dir, &ev("start")).unwrap();
        let b = f
            .next_batch(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].action, "start");
        // A torn line (a writer killed mid-write) is skipped by readers.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(LOG))
            .unwrap()
            .write_all(b"{\"Type\":\"cont\n")
            .unwrap();
        // Fill past the rotation size: the follower crosses into the new
        // file and misses nothing.
        let big = "x".repeat(4096);
        let mut n = 0;
        while dir.join(OLD).metadata().is_err() {
            let mut e = ev("tick");
            e.actor.attributes.insert("pad".into(), big.clone());
            append(&dir, &e).unwrap();
            n += 1;
        }
        append(&dir, &ev("die")).unwrap();
        let mut seen = Vec::new();
        while seen.last().map(|e: &Event| e.action.as_str()) != Some("die") {
            let b = f
                .next_batch(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            assert!(
                !b.is_empty(),
                "follower stalled after {} events",
                seen.len()
            );
            seen.extend(b);
        }
        assert_eq!(seen.len(), n + 1);
        let all = read_all(&dir);
        assert_eq!(all.first().unwrap().action, "create");
        assert_eq!(all.last().unwrap().action, "die");
        assert_eq!(all.len(), n + 4);
    }
}
