//! The file trees a build step reads (the context directory as `.dockerignore`
//! leaves it, an image's or stage's layers for `COPY --from`) behind one
//! interface, paths resolved inside the tree as if it were `/`, and what a
//! COPY/ADD writes: entries for a layer tar ([`Plan`]), and the hash of its
//! sources for the cache key.
//!
//! Nothing here follows a path out of its tree: the context is read through
//! descriptors opened beneath its root without following any symlink
//! (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`), a symlink in a source
//! path is resolved by the tree's own lookup (an absolute target is relative
//! to the tree's root), and layer directories are looked up component by
//! component, each one a directory of that layer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use crate::buildcontext::{self, Kind};
use crate::dockerignore::Ignore;

const MAX_SYMLINKS: usize = 40;

/// What a build needs to know of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub kind: FKind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub rdev: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FKind {
    Dir,
    File,
    Symlink,
    Fifo,
    Char,
    Block,
    /// Sockets and whatever else has no tar form.
    Other,
}

impl Meta {
    fn of(st: &rfs::Stat) -> Meta {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => FKind::Dir,
            FileType::RegularFile => FKind::File,
            FileType::Symlink => FKind::Symlink,
            FileType::Fifo => FKind::Fifo,
            FileType::CharacterDevice => FKind::Char,
            FileType::BlockDevice => FKind::Block,
            _ => FKind::Other,
        };
        Meta {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
            rdev: st.st_rdev,
        }
    }
}

/// A read-only file tree. Paths are relative, `/`-separated, normalized
/// (no `.`, `..` or empty components); `""` is the root. Lookups do not
/// follow symlinks: [`resolve`] does, inside the tree.
pub(crate) trait Tree: Sync {
    fn lstat(&self, path: &str) -> Option<Meta>;
    fn read_link(&self, path: &str) -> io::Result<String>;
    /// The names in a directory, sorted.
    fn list(&self, path: &str) -> io::Result<Vec<String>>;
    fn open(&self, path: &str) -> io::Result<File>;
    /// Where the file lives on the host, for [`DigestCache`]; None: its
    /// content need not be hashed (an image's layers: the image's ID says it).
    fn host_path(&self, _path: &str) -> Option<String> {
        None
    }
}

/// A borrowed tree is a tree (the context is walked once per build and
/// lent to each step that reads it).
impl<T: Tree + ?Sized> Tree for &T {
    fn lstat(&self, path: &str) -> Option<Meta> {
        (**self).lstat(path)
    }
    fn read_link(&self, path: &str) -> io::Result<String> {
        (**self).read_link(path)
    }
    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        (**self).list(path)
    }
    fn open(&self, path: &str) -> io::Result<File> {
        (**self).open(path)
    }
    fn host_path(&self, path: &str) -> Option<String> {
        (**self).host_path(path)
    }
}

/// Digests of context files already hashed, by host path and stat (device,
/// inode, size, modification and change times): a file whose stat is
/// unchanged is not read again.
pub(crate) trait DigestCache {
    fn get(&self, path: &str, stat: &str) -> Option<String>;
    fn put(&self, path: &str, stat: &str, digest: &str);
}

/// For a copy whose hash nobody reads: no file is read to hash it.
pub(crate) struct Unhashed;

impl DigestCache for Unhashed {
    fn get(&self, _: &str, _: &str) -> Option<String> {
        Some(String::new())
    }
    fn put(&self, _: &str, _: &str, _: &str) {}
}

/// A cache that remembers nothing: every file is read and hashed.
pub(crate) struct NoDigests;

impl DigestCache for NoDigests {
    fn get(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn put(&self, _: &str, _: &str, _: &str) {}
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// `p` with `.`, `..` (never above the root) and empty components removed.
pub(crate) fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// Resolves `path` in `tree`: symlinks on the way (and the last component
/// when `follow_last`) are followed, an absolute target from the tree's
/// root, `..` never above it. The result may not exist.
pub(crate) fn resolve(tree: &dyn Tree, path: &str, follow_last: bool) -> io::Result<String> {
    let mut todo: Vec<String> = clean(path)
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut done = String::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done = match done.rfind('/') {
                Some(i) => done[..i].to_string(),
                None => String::new(),
            };
            continue;
        }
        let next = join(&done, &c);
        let last = todo.is_empty();
        match tree.lstat(&next) {
            Some(m) if m.kind == FKind::Symlink && (!last || follow_last) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = tree.read_link(&next)?;
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target.split('/').rev() {
                    if !t.is_empty() && t != "." {
                        todo.push(t.to_string());
                    }
                }
            }
            _ => done = next,
        }
    }
    Ok(done)
}

/// Whether a path component has glob characters (COPY's wildcards).
fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The paths of `tree` a COPY source names: the source itself, or what its
/// wildcards match (in order). Empty when nothing matches.
pub(crate) fn expand_source(tree: &dyn Tree, src: &str) -> io::Result<Vec<String>> {
    let cleaned = clean(src);
    if !has_wildcard(&cleaned) {
        return Ok(vec![cleaned]);
    }
    let mut current = vec![String::new()];
    for comp in cleaned.split('/') {
        let mut next = Vec::new();
        for base in &current {
            if has_wildcard(comp) {
                let dir = resolve(tree, base, true)?;
                if tree.lstat(&dir).map(|m| m.kind) != Some(FKind::Dir) {
                    continue;
                }
                for name in tree.list(&dir)? {
                    if crate::dockerfile::glob(comp, &name) {
                        next.push(join(base, &name));
                    }
                }
            } else {
                next.push(join(base, comp));
            }
        }
        current = next;
    }
    current.retain(|p| {
        tree.lstat(p).is_some() || resolve(tree, p, true).is_ok_and(|r| tree.lstat(&r).is_some())
    });
    Ok(current)
}

/// Opens a regular file beneath `root` (never a device, FIFO or socket: a
/// hostile tree must not make the builder read a host device).
fn open_file_beneath(root: &OwnedFd, path: &str) -> io::Result<File> {
    let fd = open_beneath(root, path, OFlags::RDONLY | OFlags::NONBLOCK)?;
    let st = rfs::fstat(&fd).map_err(io::Error::from)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path}: not a regular file"),
        ));
    }
    Ok(File::from(fd))
}

fn open_beneath(root: &OwnedFd, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let p = if path.is_empty() { "." } else { path };
    rfs::openat2(
        root,
        p,
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
}

/// The context directory, as `.dockerignore` leaves it.
pub(crate) struct Context {
    root: OwnedFd,
    root_path: PathBuf,
    /// Every kept path (the root is `""`).
    kept: BTreeSet<String>,
    children: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub(crate) fn open(root: &Path, ignore: &Ignore) -> io::Result<Context> {
        let fd = rfs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let entries = buildcontext::collect(root, ignore)?;
        let mut kept = BTreeSet::new();
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        kept.insert(String::new());
        for e in entries {
            let (dir, name) = match e.path.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), e.path.clone()),
            };
            children.entry(dir).or_default().push(name);
            if matches!(e.kind, Kind::Dir) {
                children.entry(e.path.clone()).or_default();
            }
            kept.insert(e.path);
        }
        Ok(Context {
            root: fd,
            root_path: root.to_path_buf(),
            kept,
            children,
        })
    }
}

impl Tree for Context {
    fn lstat(&self, path: &str) -> Option<Meta> {
        if !self.kept.contains(path) {
            return None;
        }
        let fd = open_beneath(&self.root, path, OFlags::PATH).ok()?;
        rfs::fstat(&fd).ok().map(|st| Meta::of(&st))
    }
    fn read_link(&self, path: &str) -> io::Result<String> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path),
        };
        let d = open_beneath(&self.root, dir, OFlags::PATH | OFlags::DIRECTORY)?;
        let t = rfs::readlinkat(&d, name, Vec::new()).map_err(io::Error::from)?;
        Ok(t.to_string_lossy().into_owned())
    }
    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        Ok(self.children.get(path).cloned().unwrap_or_default())
    }
    fn open(&self, path: &str) -> io::Result<File> {
        if !self.kept.contains(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        open_file_beneath(&self.root, path)
    }
    fn host_path(&self, path: &str) -> Option<String> {
        Some(self.root_path.join(path).to_string_lossy().into_owned())
    }
}

/// An image's layers (overlay lower directories, topmost first) seen as
/// one tree, as overlayfs would merge them.
pub(crate) struct Layers {
    dirs: Vec<PathBuf>,
}

impl Layers {
    pub(crate) fn new(mut bottom_first: Vec<PathBuf>) -> Layers {
        bottom_first.reverse();
        Layers { dirs: bottom_first }
    }

    /// For `path`: the layers whose directory `path` is part of the merged
    /// directory (topmost first), or the one layer holding the entry that
    /// is not a directory. None when the path does not exist.
    fn locate(&self, path: &str) -> Option<(Vec<usize>, rfs::Stat)> {
        let mut dirs: Vec<usize> = (0..self.dirs.len()).collect();
        let mut top: Option<rfs::Stat> = None;
        if path.is_empty() {
            let st = self.dirs.first().and_then(|d| rfs::stat(d).ok())?;
            return Some((dirs, st));
        }
        let mut prefix = String::new();
        for comp in path.split('/') {
            prefix = join(&prefix, comp);
            let mut next = Vec::new();
            top = None;
            for &l in &dirs {
                let Ok(st) = rfs::statat(
                    rfs::CWD,
                    self.dirs[l].join(&prefix),
                    AtFlags::SYMLINK_NOFOLLOW,
                ) else {
                    continue;
                };
                let ft = FileType::from_raw_mode(st.st_mode);
                if ft == FileType::CharacterDevice && st.st_rdev == 0 {
                    // A whiteout: nothing of this name below.
                    break;
                }
                if ft != FileType::Directory {
                    if next.is_empty() {
                        top = Some(st);
                        next.push(l);
                    }
                    break;
                }
                if top.is_none() {
                    top = Some(st);
                }
                next.push(l);
                if is_opaque(&self.dirs[l].join(&prefix)) {
                    break;
                }
            }
            let st = top?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory && prefix != path {
                return None;
            }
            dirs = next;
        }
        top.map(|st| (dirs, st))
    }
}

fn is_opaque(dir: &Path) -> bool {
    let mut v = [0u8; 2];
    matches!(rfs::getxattr(dir, "trusted.overlay.opaque", &mut v[..]), Ok(1) if v[0] == b'y')
}

impl Tree for Layers {
    fn lstat(&self, path: &str) -> Option<Meta> {
        self.locate(path).map(|(_, st)| Meta::of(&st))
    }
    fn read_link(&self, path: &str) -> io::Result<String> {
        let (layers, _) = self.locate(path).ok_or(io::ErrorKind::NotFound)?;
        let l = *layers.first().ok_or(io::ErrorKind::NotFound)?;
        let t = std::fs::read_link(self.dirs[l].join(path))?;
        Ok(t.to_string_lossy().into_owned())
    }
    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let (layers, _) = self.locate(path).ok_or(io::ErrorKind::NotFound)?;
        let mut seen: BTreeMap<String, bool> = BTreeMap::new();
        for l in layers {
            for e in std::fs::read_dir(self.dirs[l].join(path))? {
                let e = e?;
                let Some(name) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if seen.contains_key(&name) {
                    continue;
                }
                let st = rfs::statat(rfs::CWD, e.path(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io::Error::from)?;
                let whiteout = FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                    && st.st_rdev == 0;
                seen.insert(name, !whiteout);
            }
        }
        Ok(seen
            .into_iter()
            .filter(|(_, v)| *v)
            .map(|(k, _)| k)
            .collect())
    }
    fn open(&self, path: &str) -> io::Result<File> {
        let (layers, _) = self.locate(path).ok_or(io::ErrorKind::NotFound)?;
        let l = *layers.first().ok_or(io::ErrorKind::NotFound)?;
        let root = rfs::open(
            &self.dirs[l],
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        open_file_beneath(&root, path)
    }
}

/// One entry a COPY writes into its layer.
#[derive(Debug, Clone)]
pub(crate) struct PlanEntry {
    /// Path in the image, relative (`app/bin/x`).
    pub dest: String,
    pub meta: Meta,
    /// Where the content (or the link target) comes from.
    pub source: Option<(usize, String)>,
}

/// Everything a COPY/ADD step writes, in tar order (parents first).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub entries: Vec<PlanEntry>,
    index: BTreeMap<String, usize>,
}

impl Plan {
    /// Adds (or replaces: a later source wins) an entry.
    pub(crate) fn put(&mut self, e: PlanEntry) {
        match self.index.get(&e.dest) {
            Some(&i) => self.entries[i] = e,
            None => {
                self.index.insert(e.dest.clone(), self.entries.len());
                self.entries.push(e);
            }
        }
    }
    pub(crate) fn has(&self, dest: &str) -> bool {
        self.index.contains_key(dest)
    }
}

/// What COPY does to ownership and modes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CopyAttrs {
    /// `--chown` (resolved), else the source's owner (`keep_owner`) or 0:0.
    pub chown: Option<(u32, u32)>,
    pub keep_owner: bool,
    /// `--chmod`.
    pub chmod: Option<u32>,
}

impl CopyAttrs {
    fn apply(&self, mut m: Meta) -> Meta {
        match self.chown {
            Some((u, g)) => {
                m.uid = u;
                m.gid = g;
            }
            None if !self.keep_owner => {
                m.uid = 0;
                m.gid = 0;
            }
            None => {}
        }
        if let Some(mode) = self.chmod {
            if m.kind != FKind::Symlink {
                m.mode = mode;
            }
        }
        m
    }
}

/// Adds the tree under `src` (already resolved, existing) of tree number
/// `tree_no` to `plan` at `dest`: a directory's contents (not the directory
/// itself, as Docker copies), or the one entry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_copy(
    plan: &mut Plan,
    tree: &dyn Tree,
    tree_no: usize,
    src: &str,
    dest: &str,
    attrs: &CopyAttrs,
    hasher: &mut Sha256,
    cache: &dyn DigestCache,
) -> io::Result<()> {
    let m = tree.lstat(src).ok_or(io::ErrorKind::NotFound)?;
    if m.kind == FKind::Dir && dest.is_empty() {
        // Into the image's root: its contents only, no entry for `/`.
        hash_entry(hasher, "", &m, tree, src, cache)?;
        for name in tree.list(src)? {
            let from = join(src, &name);
            walk(
                plan, tree, tree_no, &from, &name, attrs, hasher, &name, cache,
            )?;
        }
        return Ok(());
    }
    walk(plan, tree, tree_no, src, dest, attrs, hasher, "", cache)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    plan: &mut Plan,
    tree: &dyn Tree,
    tree_no: usize,
    src: &str,
    dest: &str,
    attrs: &CopyAttrs,
    hasher: &mut Sha256,
    rel: &str,
    cache: &dyn DigestCache,
) -> io::Result<()> {
    let Some(m) = tree.lstat(src) else {
        return Ok(());
    };
    hash_entry(hasher, rel, &m, tree, src, cache)?;
    if m.kind == FKind::Dir {
        put_dir(plan, dest, attrs.apply(m));
        for name in tree.list(src)? {
            walk(
                plan,
                tree,
                tree_no,
                &join(src, &name),
                &join(dest, &name),
                attrs,
                hasher,
                &join(rel, &name),
                cache,
            )?;
        }
        Ok(())
    } else {
        add_one(plan, tree, tree_no, src, dest, m, attrs)
    }
}

fn put_dir(plan: &mut Plan, dest: &str, m: Meta) {
    plan.put(PlanEntry {
        dest: dest.to_string(),
        meta: m,
        source: None,
    });
}

fn add_one(
    plan: &mut Plan,
    _tree: &dyn Tree,
    tree_no: usize,
    src: &str,
    dest: &str,
    m: Meta,
    attrs: &CopyAttrs,
) -> io::Result<()> {
    if m.kind == FKind::Other {
        return Ok(());
    }
    plan.put(PlanEntry {
        dest: dest.to_string(),
        meta: attrs.apply(m),
        source: Some((tree_no, src.to_string())),
    });
    Ok(())
}

/// What the cache key sees of an entry: its place, type, mode, owner and
/// content (never its times).
fn hash_entry(
    h: &mut Sha256,
    rel: &str,
    m: &Meta,
    tree: &dyn Tree,
    path: &str,
    cache: &dyn DigestCache,
) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    h.update(rel.as_bytes());
    h.update([0]);
    h.update(format!("{:?} {:o} {} {} {}", m.kind, m.mode, m.uid, m.gid, m.rdev).as_bytes());
    h.update([0]);
    match m.kind {
        FKind::File => {
            let Some(host) = tree.host_path(path) else {
                return Ok(());
            };
            let mut f = tree.open(path)?;
            let st = f.metadata()?;
            let sig = format!(
                "{}:{}:{}:{}.{}:{}.{}",
                st.dev(),
                st.ino(),
                st.size(),
                st.mtime(),
                st.mtime_nsec(),
                st.ctime(),
                st.ctime_nsec()
            );
            let digest = match cache.get(&host, &sig) {
                Some(d) => d,
                None => {
                    let mut fh = Sha256::new();
                    io::copy(&mut f, &mut HashWriter(&mut fh))?;
                    let d = hex::encode(fh.finalize());
                    cache.put(&host, &sig, &d);
                    d
                }
            };
            h.update(digest.as_bytes());
        }
        FKind::Symlink => h.update(tree.read_link(path)?.as_bytes()),
        _ => {}
    }
    h.update([0]);
    Ok(())
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> (tempfile::TempDir, Context) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("src/a.txt"), "a").unwrap();
        std::fs::write(r.join("src/b.md"), "b").unwrap();
        std::fs::write(r.join("src/sub/c.txt"), "c").unwrap();
        std::fs::write(r.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("out")).unwrap();
        std::os::unix::fs::symlink("../../src", r.join("src/sub/up")).unwrap();
        let c = Context::open(r, &Ignore::parse("secret\n")).unwrap();
        (d, c)
    }

    #[test]
    fn symlinks_resolve_inside_the_context() {
        let (_d, c) = ctx();
        // An absolute target is taken from the context's root: not there.
        let r = resolve(&c, "out", true).unwrap();
        assert_eq!(r, "etc/passwd");
        assert!(c.lstat(&r).is_none());
        // `..` stops at the root.
        assert_eq!(resolve(&c, "src/sub/up/a.txt", true).unwrap(), "src/a.txt");
        assert_eq!(resolve(&c, "../../src", true).unwrap(), "src");
        // Ignored files are not there.
        assert!(c.lstat("secret").is_none());
        assert!(c.open("secret").is_err());
    }

    #[test]
    fn wildcards_match_per_component() {
        let (_d, c) = ctx();
        assert_eq!(
            expand_source(&c, "src/*.txt").unwrap(),
            vec!["src/a.txt".to_string()]
        );
        assert_eq!(
            expand_source(&c, "s*/*").unwrap(),
            vec!["src/a.txt", "src/b.md", "src/sub"]
        );
        assert!(expand_source(&c, "nope*").unwrap().is_empty());
    }

    #[test]
    fn a_directory_copies_its_contents_and_hashes_content_not_times() {
        let (d, c) = ctx();
        let mut plan = Plan::default();
        let mut h1 = Sha256::new();
        plan_copy(
            &mut plan,
            &c,
            0,
            "src",
            "app",
            &CopyAttrs::default(),
            &mut h1,
            &NoDigests,
        )
        .unwrap();
        let dests: Vec<&str> = plan.entries.iter().map(|e| e.dest.as_str()).collect();
        assert_eq!(
            dests,
            [
                "app",
                "app/a.txt",
                "app/b.md",
                "app/sub",
                "app/sub/c.txt",
                "app/sub/up"
            ]
        );
        assert!(plan.entries.iter().all(|e| e.meta.uid == 0));
        // Touching a file keeps the hash; changing it does not.
        let f = File::options()
            .write(true)
            .open(d.path().join("src/a.txt"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        let mut h2 = Sha256::new();
        plan_copy(
            &mut Plan::default(),
            &c,
            0,
            "src",
            "app",
            &CopyAttrs::default(),
            &mut h2,
            &NoDigests,
        )
        .unwrap();
        std::fs::write(d.path().join("src/a.txt"), "A").unwrap();
        let mut h3 = Sha256::new();
        plan_copy(
            &mut Plan::default(),
            &c,
            0,
            "src",
            "app",
            &CopyAttrs::default(),
            &mut h3,
            &NoDigests,
        )
        .unwrap();
        let (h1, h2, h3) = (h1.finalize(), h2.finalize(), h3.finalize());
        assert_eq!(h1, h2);
        assert_ne!(h1, h3);
    }

    #[test]
    fn layers_merge_as_overlayfs_does() {
        let d = tempfile::tempdir().unwrap();
        let low = d.path().join("low");
        let up = d.path().join("up");
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::write(low.join("etc/a"), "a").unwrap();
        std::fs::write(low.join("etc/b"), "b").unwrap();
        std::fs::create_dir_all(up.join("etc")).unwrap();
        std::fs::write(up.join("etc/c"), "c").unwrap();
        std::fs::write(up.join("etc/a"), "A").unwrap();
        rfs::mknodat(
            rfs::CWD,
            up.join("etc/b"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        let l = Layers::new(vec![low, up]);
        assert_eq!(l.list("etc").unwrap(), vec!["a", "c"]);
        assert!(l.lstat("etc/b").is_none());
        let mut s = String::new();
        io::Read::read_to_string(&mut l.open("etc/a").unwrap(), &mut s).unwrap();
        assert_eq!(s, "A");
        assert_eq!(l.lstat("etc").unwrap().kind, FKind::Dir);
        assert!(l.lstat("etc/a/x").is_none());
    }
}
