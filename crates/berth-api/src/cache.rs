//! Answers read before, reused while nothing they were read from changed.
//!
//! The server holds no state of its own: the CLI, the monitors and other
//! servers write the store beside it, and every answer must show what they
//! wrote before the request came. So this is a memo, not a copy: each
//! container inspect and each container list is kept with the sources it
//! was read from under watch, and dropped the moment one of them changes.
//!
//! The sources (see [`berth_engine::Engine::sources_of`]): the store's
//! database file and its `-wal` (any change of a row: a name, a config, a
//! removal, an image), each container's directory (`state.json`,
//! `health.json`, `network.json`, the idle marker; not its log files), its
//! cgroup's freeze file (pause, unpause, idle freezes) and its live monitor
//! (a pidfd: a monitor killed outright writes nothing, yet turns a running
//! container into an exited one). inotify queues an event in the writer's
//! own system call, and a monitor's pidfd is readable once it has exited,
//! so a request that drains the queue and polls the pidfds before looking
//! here sees every change made before it was sent.
//!
//! An answer is kept only if nothing changed from before its sources were
//! put under watch until after it was read: a fill snapshots the counters
//! ([`Stamp`]) after adding its watches and compares them when done.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use berth_engine::{ContainerView, Engine, ViewSources};
use berth_types::ContainerId;
use bytes::Bytes;
use rustix::event::epoll;
use rustix::fs::inotify;

/// Lists kept at once (one per distinct query); more clears them.
const MAX_LISTS: usize = 64;
/// Names and prefixes remembered at once; more clears them.
const MAX_KEYS: usize = 4096;
/// The epoll token of the inotify descriptor; a pidfd's is its number + 1.
const INOTIFY: u64 = 0;

/// What the status text of a list row is written as until a request
/// renders it (serde_json escapes the control characters).
const STATUS_MARK: &str = "\u{1}berth-status\u{1}";
/// An epoll wait that does not wait.
const NOW: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

pub struct Cache {
    inner: RwLock<Inner>,
    /// The epoll instance of `Inner::epoll` (a duplicate): whether anything
    /// happened is asked without the lock.
    probe: OwnedFd,
}

/// Where the counters stood when a fill began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Changes of the database (every answer depends on it).
    epoch: u64,
    /// Changes of anything watched.
    global: u64,
    /// Changes of one container's sources.
    container: u64,
}

/// A container's inspect, as the two API generations shape it.
pub struct Entry {
    stamp: Stamp,
    /// Index 0: API ≥ 1.42; 1: ≤ 1.41 (with the kernel memory keys).
    inspect: [OnceLock<Bytes>; 2],
}

/// A list answer: each row's JSON around its status text, which is
/// written at each request (it tells how long ago things happened).
pub struct Listing {
    rows: Vec<(Arc<ContainerView>, Bytes, Bytes)>,
}

impl Listing {
    /// The rows as one JSON array, statuses as of `now`.
    pub fn render(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
        let size: usize = self
            .rows
            .iter()
            .map(|(_, a, b)| a.len() + b.len() + 40)
            .sum();
        let mut out = Vec::with_capacity(size + 3);
        out.push(b'[');
        for (i, (v, before, after)) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(before);
            // A string always serializes.
            let _ = serde_json::to_writer(&mut out, &v.status_text(now));
            out.extend_from_slice(after);
        }
        out.extend_from_slice(b"]\n");
        out
    }
}

struct Inner {
    inotify: OwnedFd,
    epoll: OwnedFd,
    /// The watch on the database's directory, and the database's name.
    store_wd: i32,
    store_name: Vec<u8>,
    /// A container's directory or freeze file, by watch.
    wds: HashMap<i32, ContainerId>,
    /// Live monitors: their pidfds by container, and their containers by
    /// the pidfd's number.
    monitors: HashMap<ContainerId, (i32, OwnedFd)>,
    by_pidfd: HashMap<i32, ContainerId>,
    epoch: u64,
    global: u64,
    gens: HashMap<ContainerId, u64>,
    /// What clients named (a name, an ID or a prefix), by what it named in
    /// this epoch.
    keys: HashMap<String, ContainerId>,
    entries: HashMap<ContainerId, Arc<Entry>>,
    lists: HashMap<String, Arc<Listing>>,
}

impl Cache {
    /// A cache watching the store whose database is `store_file`.
    pub fn new(store_file: &Path) -> std::io::Result<Cache> {
        let ino = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &ep,
            &ino,
            epoll::EventData::new_u64(INOTIFY),
            epoll::EventFlags::IN,
        )?;
        let dir = store_file.parent().unwrap_or(Path::new("/"));
        let store_wd = inotify::add_watch(&ino, dir, dir_mask())?;
        let store_name = store_file
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        Ok(Cache {
            probe: ep.try_clone()?,
            inner: RwLock::new(Inner {
                inotify: ino,
                epoll: ep,
                store_wd,
                store_name,
                wds: HashMap::new(),
                monitors: HashMap::new(),
                by_pidfd: HashMap::new(),
                epoch: 0,
                global: 0,
                gens: HashMap::new(),
                keys: HashMap::new(),
                entries: HashMap::new(),
                lists: HashMap::new(),
            }),
        })
    }

    /// The inner state, with every change so far taken in.
    ///
    /// Asking epoll takes no lock. When it says nothing is pending, any
    /// change made before this call was either never queued or already
    /// read by a thread that holds the write lock until it has dropped
    /// what the change made stale: the read lock waits for it.
    fn current(&self) -> Option<RwLockReadGuard<'_, Inner>> {
        if pending(&self.probe) {
            self.inner.write().ok()?.take_changes();
        }
        self.inner.read().ok()
    }

    /// The inspect of the container `key` names, if kept (`old`: API ≤ 1.41).
    pub fn inspect(&self, key: &str, old: bool) -> Option<Bytes> {
        let g = self.current()?;
        let id = g.keys.get(key)?;
        g.entries.get(id)?.inspect[usize::from(old)].get().cloned()
    }

    /// The list answered to `query`, if kept.
    pub fn list(&self, query: &str) -> Option<Arc<Listing>> {
        self.current()?.lists.get(query).cloned()
    }

    /// Everything kept goes (the watches stay): an idle server is small.
    pub fn clear(&self) {
        if let Ok(mut g) = self.inner.write() {
            g.store_changed();
        }
    }

    /// Watches a container's sources, then the counters.
    fn watch(&self, src: &ViewSources) -> Option<(Stamp, Watched)> {
        let mut g = self.inner.write().ok()?;
        let w = g.watch_container(src);
        g.take_changes();
        Some((g.stamp(&src.id), w))
    }

    /// Reads the inspect of the container `key` names and keeps it when
    /// nothing changed meanwhile. `shape` turns inspect's value into the
    /// API's (`old`: API ≤ 1.41).
    pub fn fill_inspect(
        &self,
        e: &Engine,
        key: &str,
        old: bool,
        shape: impl Fn(&mut serde_json::Value),
    ) -> berth_engine::Result<Bytes> {
        let before = self.current().map(|g| g.epoch);
        let src = e.sources_of(key)?;
        let stamp = self.watch(&src);
        // Read now that every source is watched.
        let v = e.container(src.id.as_str())?;
        let mut value = e.container_json(&v)?;
        shape(&mut value);
        let bytes = Bytes::from(crate::http::json_body(&value));
        let (Some(before), Some((stamp, w))) = (before, stamp) else {
            return Ok(bytes);
        };
        let Ok(mut g) = self.inner.write() else {
            return Ok(bytes);
        };
        let watched = w.covers(&v)
            && v.live_monitor()
                .is_none_or(|pid| g.watch_monitor(&v.id, pid));
        g.take_changes();
        if !watched || before != stamp.epoch || g.stamp(&v.id) != stamp {
            return Ok(bytes);
        }
        let entry = match g.entries.get(&v.id) {
            Some(e) if e.stamp == stamp => e.clone(),
            _ => {
                let e = Arc::new(Entry {
                    stamp,
                    inspect: Default::default(),
                });
                g.entries.insert(v.id.clone(), e.clone());
                e
            }
        };
        let _ = entry.inspect[usize::from(old)].set(bytes.clone());
        if g.keys.len() >= MAX_KEYS {
            g.keys.clear();
        }
        g.keys.insert(key.to_string(), v.id.clone());
        Ok(bytes)
    }

    /// Reads a list (`read` gets every container and returns the rows to
    /// show, as JSON objects, with their views) and keeps it under `query`
    /// when nothing changed meanwhile.
    pub fn fill_list(
        &self,
        e: &Engine,
        query: &str,
        read: impl FnOnce(
            Vec<ContainerView>,
        ) -> berth_engine::Result<
            Vec<(ContainerView, serde_json::Map<String, serde_json::Value>)>,
        >,
    ) -> berth_engine::Result<Arc<Listing>> {
        let before = self.current().map(|g| (g.epoch, g.global));
        // Every container's sources under watch, the ones not shown too: a
        // change of theirs may bring them into the list.
        let sources = e.all_sources()?;
        let mut stamp = None;
        let mut watches = HashMap::new();
        if let Ok(mut g) = self.inner.write() {
            for src in &sources {
                watches.insert(src.id.clone(), g.watch_container(src));
            }
            g.take_changes();
            stamp = Some((g.epoch, g.global));
        }
        let views = e.containers()?;
        // (A container the database did not list then is a change of it:
        // nothing is kept then anyway.)
        let mut watched = views
            .iter()
            .all(|v| watches.get(&v.id).is_some_and(|w| w.covers(v)));
        let monitors: Vec<(ContainerId, i32)> = views
            .iter()
            .filter_map(|v| v.live_monitor().map(|p| (v.id.clone(), p)))
            .collect();
        let rows = read(views)?;
        let mut listing = Listing {
            rows: Vec::with_capacity(rows.len()),
        };
        let mark = serde_json::to_vec(STATUS_MARK).unwrap_or_default();
        for (v, mut row) in rows {
            row.insert("Status".into(), STATUS_MARK.into());
            let text = serde_json::to_vec(&row).unwrap_or_default();
            let Some(at) = text.windows(mark.len()).position(|w| w == mark) else {
                continue;
            };
            listing.rows.push((
                Arc::new(v),
                Bytes::copy_from_slice(&text[..at]),
                Bytes::copy_from_slice(&text[at + mark.len()..]),
            ));
        }
        let listing = Arc::new(listing);
        let (Some(before), Some(stamp)) = (before, stamp) else {
            return Ok(listing);
        };
        let Ok(mut g) = self.inner.write() else {
            return Ok(listing);
        };
        for (id, pid) in &monitors {
            watched &= g.watch_monitor(id, *pid);
        }
        g.take_changes();
        if watched && before.0 == stamp.0 && (g.epoch, g.global) == stamp {
            if g.lists.len() >= MAX_LISTS {
                g.lists.clear();
            }
            g.lists.insert(query.to_string(), listing.clone());
        }
        Ok(listing)
    }
}

/// A container directory's (and the store directory's) changes: files
/// made, replaced, written, removed. (Not a close after writing: every
/// write is a MODIFY already, and a file merely opened for writing — the
/// database's WAL by each connection, a container's lock file — reports one
/// on close.)
fn dir_mask() -> inotify::WatchFlags {
    use inotify::WatchFlags as W;
    W::MODIFY | W::MOVED_TO | W::MOVED_FROM | W::CREATE | W::DELETE | W::DELETE_SELF | W::ATTRIB
}

/// Files of a container's directory whose changes show in no answer kept
/// here: its logs (written all along) and files half-written before a
/// rename (the rename is the change).
fn ignored(name: &[u8]) -> bool {
    name.ends_with(b".log") || name.ends_with(b".tmp")
}

/// Whether the epoll instance `ep` has an event ready.
fn pending(ep: &OwnedFd) -> bool {
    let mut events = [std::mem::MaybeUninit::<epoll::Event>::uninit(); 1];
    loop {
        match epoll::wait(ep, &mut events, Some(&NOW)) {
            Ok((ready, _)) => return !ready.is_empty(),
            Err(rustix::io::Errno::INTR) => continue,
            // Then look the slow way.
            Err(_) => return true,
        }
    }
}

/// Whether an event on `name` in the store's directory is a change of the
/// database whose file is `db`. Every commit writes `-wal` (or, without
/// WAL, the database and its `-journal`); `-shm` is the WAL's index, kept
/// through a shared mapping; an attribute change is SQLite giving a root
/// process's files the database's owner as it opens them (every engine
/// opened would otherwise look like a change).
fn store_change(db: &[u8], name: &[u8], flags: inotify::ReadFlags) -> bool {
    name.starts_with(db)
        && !name.ends_with(b"-shm")
        && !(flags & !inotify::ReadFlags::ISDIR).eq(&inotify::ReadFlags::ATTRIB)
}

/// Which of a container's sources a watch was put on.
#[derive(Clone, Copy, Debug, Default)]
struct Watched {
    dir: bool,
    freeze: bool,
}

impl Watched {
    /// Whether every source a view `v` was read from is watched: its
    /// directory, and the freeze file of a running container (a container
    /// not running has no cgroup; its start writes its directory).
    fn covers(&self, v: &ContainerView) -> bool {
        self.dir && (self.freeze || !v.running())
    }
}

impl Inner {
    fn stamp(&self, id: &ContainerId) -> Stamp {
        Stamp {
            epoch: self.epoch,
            global: self.global,
            container: self.gens.get(id).copied().unwrap_or(0),
        }
    }

    /// Everything kept is stale (and its memory let go).
    fn store_changed(&mut self) {
        self.epoch += 1;
        self.global += 1;
        self.entries = HashMap::new();
        self.lists = HashMap::new();
        self.keys = HashMap::new();
        self.gens = HashMap::new();
    }

    fn container_changed(&mut self, id: &ContainerId) {
        self.global += 1;
        *self.gens.entry(id.clone()).or_insert(0) += 1;
        self.entries.remove(id);
        self.lists.clear();
    }

    /// Takes in what happened since the last look: inotify's queue and the
    /// monitors that ended.
    fn take_changes(&mut self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(8);
        loop {
            events.clear();
            let n = match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&NOW),
            ) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                // The epoll descriptor is ours; should it fail, nothing
                // kept can be trusted.
                Err(_) => {
                    self.store_changed();
                    return;
                }
            };
            if n == 0 {
                return;
            }
            for ev in events.iter() {
                match ev.data.u64() {
                    INOTIFY => self.read_inotify(),
                    token => self.monitor_ended(i32::try_from(token - 1).unwrap_or(-1)),
                }
            }
        }
    }

    fn read_inotify(&mut self) {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut changed_store = false;
        let mut changed: Vec<ContainerId> = Vec::new();
        let mut gone: Vec<i32> = Vec::new();
        {
            let mut r = inotify::Reader::new(&self.inotify, &mut buf);
            loop {
                let ev = match r.next() {
                    Ok(ev) => ev,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(_) => {
                        changed_store = true;
                        break;
                    }
                };
                let flags = ev.events();
                if flags.contains(inotify::ReadFlags::QUEUE_OVERFLOW) {
                    changed_store = true;
                    continue;
                }
                let name = ev.file_name().map(|n| n.to_bytes()).unwrap_or_default();
                if ev.wd() == self.store_wd {
                    changed_store |= store_change(&self.store_name, name, flags);
                    continue;
                }
                if flags.contains(inotify::ReadFlags::IGNORED) {
                    gone.push(ev.wd());
                }
                if !name.is_empty() && ignored(name) {
                    continue;
                }
                if let Some(id) = self.wds.get(&ev.wd()) {
                    changed.push(id.clone());
                }
            }
        }
        for wd in gone {
            if let Some(id) = self.wds.remove(&wd) {
                changed.push(id);
            }
        }
        if changed_store {
            self.store_changed();
        }
        for id in changed {
            self.container_changed(&id);
        }
    }

    fn monitor_ended(&mut self, fd: i32) {
        let Some(id) = self.by_pidfd.remove(&fd) else {
            return;
        };
        if let Some((_, pidfd)) = self.monitors.remove(&id) {
            let _ = epoll::delete(&self.epoll, &pidfd);
        }
        self.container_changed(&id);
    }

    /// Puts a container's directory and freeze file under watch (never
    /// through a symlink: these are berth's own paths).
    fn watch_container(&mut self, src: &ViewSources) -> Watched {
        use inotify::WatchFlags as W;
        let mut w = Watched::default();
        // (Out of watches — fs.inotify.max_user_watches — means nothing
        // of this container is kept.)
        let dir = dir_mask() | W::ONLYDIR | W::DONT_FOLLOW;
        if let Ok(wd) = inotify::add_watch(&self.inotify, &src.dir, dir) {
            self.wds.insert(wd, src.id.clone());
            w.dir = true;
        }
        // No cgroups: nothing is ever frozen.
        w.freeze = src.freeze_file.is_none();
        if let Some(f) = &src.freeze_file {
            // Missing while the container is not running: its start writes
            // state.json, which is watched.
            if let Ok(wd) = inotify::add_watch(&self.inotify, f, W::MODIFY | W::DONT_FOLLOW) {
                self.wds.insert(wd, src.id.clone());
                w.freeze = true;
            }
        }
        w
    }

    /// Puts the monitor `pid` of `id` under watch; false if it is gone (or
    /// is not a monitor any more).
    fn watch_monitor(&mut self, id: &ContainerId, pid: i32) -> bool {
        if self.monitors.get(id).is_some_and(|(p, _)| *p == pid) {
            return true;
        }
        let Some(p) = rustix::process::Pid::from_raw(pid) else {
            return false;
        };
        let Ok(pidfd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
            return false;
        };
        // The pidfd names a process for good; check it is still the
        // monitor the state names (and not a process that took its number).
        if !berth_engine::monitor_alive(pid) {
            return false;
        }
        let fd = pidfd.as_raw_fd();
        let token = u64::try_from(fd).unwrap_or(0) + 1;
        if epoll::add(
            &self.epoll,
            pidfd.as_fd(),
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )
        .is_err()
        {
            return false;
        }
        if let Some((_, old)) = self.monitors.insert(id.clone(), (pid, pidfd)) {
            let _ = epoll::delete(&self.epoll, &old);
            self.by_pidfd.remove(&old.as_raw_fd());
        }
        self.by_pidfd.insert(fd, id.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inotify::ReadFlags as R;

    #[test]
    fn a_commit_is_a_change_an_open_is_not() {
        let db = b"berth.db";
        assert!(store_change(db, b"berth.db-wal", R::MODIFY));
        assert!(store_change(db, b"berth.db", R::MODIFY));
        assert!(store_change(db, b"berth.db-journal", R::CREATE));
        assert!(store_change(db, b"berth.db-wal", R::DELETE));
        // Opening a connection: the owner set, the index mapped.
        assert!(!store_change(db, b"berth.db-wal", R::ATTRIB));
        assert!(!store_change(db, b"berth.db-shm", R::MODIFY));
        assert!(!store_change(db, b"berth.db-shm", R::CREATE));
        // The rest of the store's directory.
        assert!(!store_change(db, b"containers", R::CREATE | R::ISDIR));
        assert!(!store_change(db, b"tmp", R::MODIFY));
    }

    #[test]
    fn logs_and_half_written_files_are_no_change() {
        assert!(ignored(b"0123abcd-json.log"));
        assert!(ignored(b"state.json.tmp"));
        assert!(!ignored(b"state.json"));
        assert!(!ignored(b"health.json"));
        assert!(!ignored(b"network.json"));
    }
}
