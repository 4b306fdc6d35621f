//! The layer scanner: walks a directory tree through directory fds, never
//! following a symlink (every `openat` has `O_NOFOLLOW`, `..` is never looked
//! up), finds the package databases and package metadata in it, the overlay
//! whiteouts and opaque directories, and hands each file's bytes to its parser.
//!
//! What it reads, by path relative to the root:
//! - `var/lib/dpkg/status`, `var/lib/dpkg/status.d/*` (not `*.md5sums`), and for
//!   each dpkg package `usr/share/doc/NAME/copyright` (its licences, from this
//!   tree only);
//! - `lib/apk/db/installed`;
//! - `{var/lib/rpm,usr/lib/sysimage/rpm}/rpmdb.sqlite` (and `Packages`,
//!   `Packages.db` as unsupported findings);
//! - `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, a `*.egg-info` file;
//! - `node_modules/NAME/package.json`, `node_modules/@SCOPE/NAME/package.json`;
//! - `*.jar`, `*.war`, `*.ear`;
//! - every regular file with an execute bit that starts with ELF's magic: its
//!   `.go.buildinfo` and `.dep-v0` sections;
//! - `etc/os-release`, else `usr/lib/os-release` (the distribution, for purls).

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::{apk, dpkg, elf, golang, java, npm, python, rpm, rustaudit};
use crate::{Ecosystem, Finding, LayerInventory, OsRelease, Package, ParseError};

/// Why a tree could not be scanned at all. Anything that goes wrong beneath the
/// root is a [`Finding`] in the inventory instead.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot open layer root {path}: {source}")]
    OpenRoot {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Size caps: a file larger than its cap is a [`Finding::Unreadable`], never read.
#[derive(Debug, Clone)]
pub struct Limits {
    /// dpkg status, apk installed (a full Debian system's status is ~2 MiB).
    pub max_database: u64,
    /// rpmdb.sqlite (read by SQLite in place, page by page).
    pub max_rpmdb: u64,
    /// METADATA, PKG-INFO, package.json, copyright, os-release.
    pub max_metadata: u64,
    /// `.go.buildinfo` and `.dep-v0` sections.
    pub max_elf_section: u64,
    /// A Java archive (its central directory is read whole; each member it reads
    /// has its own cap, see the `java` module).
    pub max_archive: u64,
    /// Directory depth below the root.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_database: 64 << 20,
            max_rpmdb: 1 << 30,
            max_metadata: 1 << 20,
            max_elf_section: 8 << 20,
            max_archive: 1 << 30,
            max_depth: 256,
        }
    }
}

/// Inventories the tree at `root` with the default [`Limits`].
pub fn scan_tree(root: &Path) -> Result<LayerInventory, ScanError> {
    scan_tree_with(root, &Limits::default())
}

/// Inventories the tree at `root`. `root` itself may be reached through a
/// symlink; nothing beneath it is.
pub fn scan_tree_with(root: &Path, limits: &Limits) -> Result<LayerInventory, ScanError> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ScanError::OpenRoot {
        path: root.to_path_buf(),
        source: e.into(),
    })?;
    Ok(scan_dir(&fd, limits))
}

/// Inventories the tree of the directory `fd` is open on: the tree it was
/// opened on even when that directory has been renamed since (a new layer
/// scanned while it is moved into the layer store).
pub fn scan_dir(fd: &OwnedFd, limits: &Limits) -> LayerInventory {
    let mut s = Scanner {
        limits,
        inv: LayerInventory::default(),
        dpkg: Vec::new(),
        root: fd,
    };
    s.inv.os_release = s.os_release();
    s.walk(fd, "", 0);
    s.add_dpkg_licences();
    let mut inv = s.inv;
    inv.scanner = crate::SCANNER_VERSION;
    for p in &inv.packages {
        inv.databases.push(p.found_in_file().to_string());
    }
    inv.databases.sort();
    inv.databases.dedup();
    inv.whiteouts.sort();
    inv.opaque_dirs.sort();
    inv
}

/// A digest of everything a scan of `root` would look at, made from
/// metadata only (no file is read): each entry's path, type, inode, size and
/// change time, walked like [`scan_tree`] (directory fds, no symlink
/// followed). Any write, rename, unlink or xattr change beneath `root`
/// changes a ctime, which no process without `CAP_SYS_TIME` sets: two equal
/// fingerprints mean a scan would find the same. For a container's writable
/// layer, re-scanned only when its fingerprint moved.
pub fn fingerprint_tree(root: &Path, limits: &Limits) -> Result<String, ScanError> {
    use sha2::Digest as _;
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ScanError::OpenRoot {
        path: root.to_path_buf(),
        source: e.into(),
    })?;
    let mut h = sha2::Sha256::new();
    h.update(crate::SCANNER_VERSION.to_le_bytes());
    fingerprint_dir(&fd, b"", 0, limits, &mut h);
    Ok(hex::encode(h.finalize()))
}

fn fingerprint_dir(dir: &OwnedFd, rel: &[u8], depth: usize, limits: &Limits, h: &mut sha2::Sha256) {
    use sha2::Digest as _;
    // What the scan would report as too deep or unreadable is fingerprinted
    // as such: the same tree gives the same findings.
    if depth > limits.max_depth {
        h.update(b"\0deep");
        return;
    }
    let Ok(st) = rustix::fs::fstat(dir) else {
        h.update(b"\0unstat");
        return;
    };
    h.update(st.st_ino.to_le_bytes());
    h.update(st.st_ctime.to_le_bytes());
    h.update(st.st_ctime_nsec.to_le_bytes());
    let mut names: Vec<Vec<u8>> = Vec::new();
    match rustix::fs::Dir::read_from(dir) {
        Ok(d) => {
            for e in d {
                match e {
                    Ok(e) => {
                        let n = e.file_name().to_bytes();
                        if n != b"." && n != b".." {
                            names.push(n.to_vec());
                        }
                    }
                    Err(_) => {
                        h.update(b"\0readdir");
                        break;
                    }
                }
            }
        }
        Err(_) => {
            h.update(b"\0opendir");
            return;
        }
    }
    names.sort();
    for name in names {
        let mut path = rel.to_vec();
        path.push(b'/');
        path.extend_from_slice(&name);
        h.update((path.len() as u64).to_le_bytes());
        h.update(&path);
        let name_os = OsStr::from_bytes(&name);
        let st = match rustix::fs::statat(dir, name_os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(_) => {
                h.update(b"\0stat");
                continue;
            }
        };
        h.update(st.st_mode.to_le_bytes());
        h.update(st.st_ino.to_le_bytes());
        h.update(st.st_size.to_le_bytes());
        h.update(st.st_rdev.to_le_bytes());
        h.update(st.st_ctime.to_le_bytes());
        h.update(st.st_ctime_nsec.to_le_bytes());
        h.update(st.st_mtime.to_le_bytes());
        h.update(st.st_mtime_nsec.to_le_bytes());
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            match rustix::fs::openat(
                dir,
                name_os,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(sub) => fingerprint_dir(&sub, &path, depth + 1, limits, h),
                Err(_) => h.update(b"\0opensub"),
            }
        }
    }
}

struct Scanner<'a> {
    limits: &'a Limits,
    inv: LayerInventory,
    /// Indices into `inv.packages` of dpkg packages, for their copyright files.
    dpkg: Vec<usize>,
    root: &'a OwnedFd,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn errno_text(e: Errno) -> String {
    std::io::Error::from(e).to_string()
}

/// Opens `name` in `dir` as a regular file, never through a symlink and never
/// blocking on a FIFO swapped in after the walk looked; returns it with its size.
fn open_file(dir: &OwnedFd, name: &OsStr) -> Result<(std::fs::File, u64), String> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(errno_text)?;
    let st = rustix::fs::fstat(&fd).map_err(errno_text)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err("not a regular file".to_string());
    }
    Ok((
        std::fs::File::from(fd),
        u64::try_from(st.st_size).unwrap_or(0),
    ))
}

fn read_capped(dir: &OwnedFd, name: &OsStr, cap: u64) -> Result<Vec<u8>, String> {
    let (f, size) = open_file(dir, name)?;
    if size > cap {
        return Err(format!(
            "{size} bytes, more than the {cap} read for such a file"
        ));
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > cap {
        return Err(format!("more than the {cap} bytes read for such a file"));
    }
    Ok(buf)
}

/// Opens the directory at `rel` (components separated by `/`) beneath `root`,
/// one component at a time, refusing symlinks and `..`.
fn open_dir_beneath(root: &OwnedFd, rel: &str) -> Result<OwnedFd, String> {
    let mut cur = rustix::io::dup(root).map_err(errno_text)?;
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err("`..` in a path".to_string());
        }
        cur = rustix::fs::openat(
            &cur,
            comp,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_text)?;
    }
    Ok(cur)
}

/// Reads the file at `rel` beneath `root` (see [`open_dir_beneath`]).
fn read_beneath(root: &OwnedFd, rel: &str, cap: u64) -> Result<Vec<u8>, String> {
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let d = open_dir_beneath(root, dir)?;
    read_capped(&d, OsStr::new(name), cap)
}

/// `node_modules/NAME/package.json` or `node_modules/@SCOPE/NAME/package.json`.
pub(crate) fn is_npm_manifest(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let n = parts.len();
    if n >= 3
        && parts[n - 3] == "node_modules"
        && !parts[n - 2].starts_with('@')
        && !parts[n - 2].starts_with('.')
    {
        return true;
    }
    n >= 4 && parts[n - 4] == "node_modules" && parts[n - 3].starts_with('@')
}

const RPM_DIRS: [&str; 2] = ["var/lib/rpm", "usr/lib/sysimage/rpm"];

impl Scanner<'_> {
    fn unreadable(&mut self, path: &str, reason: impl Into<String>) {
        self.inv.findings.push(Finding::Unreadable {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    fn unsupported(&mut self, path: &str, format: &str) {
        self.inv.findings.push(Finding::Unsupported {
            path: path.to_string(),
            format: format.to_string(),
        });
        self.inv.databases.push(path.to_string());
    }

    /// A database that could not be read still replaces the one below it: it
    /// is recorded, and the finding says it was not read.
    fn failed_db(&mut self, path: &str, reason: impl Into<String>) {
        self.unreadable(path, reason);
        self.inv.databases.push(path.to_string());
    }

    fn os_release(&mut self) -> Option<OsRelease> {
        for rel in ["etc/os-release", "usr/lib/os-release"] {
            let Ok(b) = read_beneath(self.root, rel, self.limits.max_metadata) else {
                continue;
            };
            let text = String::from_utf8_lossy(&b);
            let mut id = None;
            let mut version_id = None;
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
                match k.trim() {
                    "ID" => id = Some(v),
                    "VERSION_ID" => version_id = Some(v),
                    _ => {}
                }
            }
            if let Some(id) = id.filter(|i| !i.is_empty()) {
                return Some(OsRelease { id, version_id });
            }
        }
        None
    }

    fn namespace(&self, eco: Ecosystem) -> String {
        if let Some(os) = &self.inv.os_release {
            return os.id.clone();
        }
        default_namespace(eco).to_string()
    }

    fn walk(&mut self, dir: &OwnedFd, rel: &str, depth: usize) {
        if depth > self.limits.max_depth {
            self.unreadable(
                rel,
                format!("more than {} directories deep", self.limits.max_depth),
            );
            return;
        }
        if !rel.is_empty() && is_opaque_xattr(dir) {
            self.inv.opaque_dirs.push(rel.to_string());
        }
        let mut names: Vec<Vec<u8>> = Vec::new();
        match rustix::fs::Dir::read_from(dir) {
            Ok(d) => {
                for e in d {
                    match e {
                        Ok(e) => {
                            let n = e.file_name().to_bytes();
                            if n != b"." && n != b".." {
                                names.push(n.to_vec());
                            }
                        }
                        Err(e) => {
                            self.unreadable(
                                rel,
                                format!("reading the directory: {}", errno_text(e)),
                            );
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                self.unreadable(rel, format!("reading the directory: {}", errno_text(e)));
                return;
            }
        }
        names.sort();
        for raw in names {
            let name_os = OsStr::from_bytes(&raw);
            let name = String::from_utf8_lossy(&raw).into_owned();
            let path = join(rel, &name);
            let st = match rustix::fs::statat(dir, name_os, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(e) => {
                    self.unreadable(&path, errno_text(e));
                    continue;
                }
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    match rustix::fs::openat(
                        dir,
                        name_os,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        Ok(sub) => self.walk(&sub, &path, depth + 1),
                        Err(e) => self.unreadable(&path, errno_text(e)),
                    }
                }
                FileType::CharacterDevice if st.st_rdev == 0 => self.inv.whiteouts.push(path),
                FileType::RegularFile => {
                    if name == ".wh..wh..opq" {
                        if !rel.is_empty() {
                            self.inv.opaque_dirs.push(rel.to_string());
                        }
                    } else if let Some(target) = name.strip_prefix(".wh.") {
                        self.inv.whiteouts.push(join(rel, target));
                    } else {
                        let size = u64::try_from(st.st_size).unwrap_or(0);
                        let exec = st.st_mode & 0o111 != 0;
                        self.file(dir, name_os, rel, &name, &path, size, exec);
                    }
                }
                // Symlinks are never followed; sockets, FIFOs and devices hold no packages.
                _ => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn file(
        &mut self,
        dir: &OwnedFd,
        name_os: &OsStr,
        rel: &str,
        name: &str,
        path: &str,
        size: u64,
        exec: bool,
    ) {
        let parent = rel.rsplit('/').next().unwrap_or(rel);
        if path == "var/lib/dpkg/status"
            || (rel == "var/lib/dpkg/status.d" && !name.ends_with(".md5sums"))
        {
            let kind = if path == "var/lib/dpkg/status" {
                dpkg::StatusKind::Status
            } else {
                dpkg::StatusKind::Distroless
            };
            let ns = self.namespace(Ecosystem::Deb);
            self.database(dir, name_os, path, self.limits.max_database, |b, p| {
                dpkg::parse_status(b, p, kind, &ns)
            });
            return;
        }
        if path == "lib/apk/db/installed" {
            let ns = self.namespace(Ecosystem::Apk);
            self.database(dir, name_os, path, self.limits.max_database, |b, p| {
                apk::parse_installed(b, p, &ns)
            });
            return;
        }
        if RPM_DIRS.contains(&rel) {
            match name {
                "rpmdb.sqlite" => return self.rpmdb(dir, name_os, path, size),
                "Packages" => return self.unsupported(path, "rpm BerkeleyDB database"),
                "Packages.db" => return self.unsupported(path, "rpm NDB database"),
                _ => {}
            }
        }
        let python = (name == "METADATA" && parent.ends_with(".dist-info"))
            || (name == "PKG-INFO" && parent.ends_with(".egg-info"))
            || name.ends_with(".egg-info");
        if python {
            self.database(dir, name_os, path, self.limits.max_metadata, |b, p| {
                python::parse_metadata(b, p).map(|p| vec![p])
            });
            return;
        }
        if name == "package.json" && is_npm_manifest(path) {
            self.database(dir, name_os, path, self.limits.max_metadata, |b, p| {
                npm::parse_package_json(b, p).map(|p| vec![p])
            });
            return;
        }
        if java::is_archive_name(name) {
            return self.archive(dir, name_os, path);
        }
        if exec && size >= 64 {
            self.executable(dir, name_os, path);
        }
    }

    fn database(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        path: &str,
        cap: u64,
        parse: impl FnOnce(&[u8], &str) -> Result<Vec<Package>, ParseError>,
    ) {
        let bytes = match read_capped(dir, name, cap) {
            Ok(b) => b,
            Err(e) => return self.failed_db(path, e),
        };
        match parse(&bytes, path) {
            Ok(pkgs) => {
                self.inv.databases.push(path.to_string());
                for p in pkgs {
                    if p.ecosystem == Ecosystem::Deb {
                        self.dpkg.push(self.inv.packages.len());
                    }
                    self.inv.packages.push(p);
                }
            }
            Err(e) => self.failed_db(path, e.0),
        }
    }

    fn rpmdb(&mut self, dir: &OwnedFd, name: &OsStr, path: &str, size: u64) {
        if size > self.limits.max_rpmdb {
            return self.failed_db(
                path,
                format!("{size} bytes, more than {}", self.limits.max_rpmdb),
            );
        }
        let (f, _) = match open_file(dir, name) {
            Ok(f) => f,
            Err(e) => return self.failed_db(path, e),
        };
        // SQLite opens the file again by name: the name is our own descriptor's,
        // which is the file already opened without following a link.
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
        let ns = self.namespace(Ecosystem::Rpm);
        match rpm::read_sqlite(&proc_path, path, &ns) {
            Ok(pkgs) => {
                self.inv.databases.push(path.to_string());
                self.inv.packages.extend(pkgs);
            }
            Err(e) => self.failed_db(path, e.0),
        }
        drop(f);
    }

    fn archive(&mut self, dir: &OwnedFd, name: &OsStr, path: &str) {
        let f = match open_file(dir, name) {
            Ok((_, size)) if size > self.limits.max_archive => {
                return self.failed_db(
                    path,
                    format!("{size} bytes, more than {}", self.limits.max_archive),
                )
            }
            Ok((f, _)) => f,
            Err(e) => return self.failed_db(path, e),
        };
        let mut a = java::Archive::default();
        match java::parse_archive(std::io::BufReader::new(f), path, 0, &mut a) {
            Ok(()) => {
                self.inv.databases.push(path.to_string());
                self.inv.packages.extend(a.packages);
                self.inv.findings.extend(a.findings);
            }
            Err(e) => self.failed_db(path, e.0),
        }
    }

    fn executable(&mut self, dir: &OwnedFd, name: &OsStr, path: &str) {
        let Ok((mut f, size)) = open_file(dir, name) else {
            // Not readable as a file (permissions): an executable is not a package
            // database unless it is an ELF file with build info, unknown here.
            return;
        };
        let mut magic = [0u8; 4];
        if f.read_exact(&mut magic).is_err() || &magic != elf::MAGIC {
            return;
        }
        let secs = match elf::sections(&mut f, size) {
            Ok(s) => s,
            Err(e) => return self.unreadable(path, e.0),
        };
        let cap = self.limits.max_elf_section;
        match elf::section(&mut f, size, &secs, ".go.buildinfo", cap) {
            Ok(Some(sec)) => match golang::parse_buildinfo(&sec, path) {
                Ok(golang::BuildInfo::Packages(p)) => {
                    self.inv.databases.push(path.to_string());
                    self.inv.packages.extend(p);
                }
                Ok(golang::BuildInfo::PointerFormat) => {
                    self.unsupported(path, "Go build info before Go 1.18")
                }
                Err(e) => self.failed_db(path, e.0),
            },
            Ok(None) => {}
            Err(e) => self.failed_db(path, e.0),
        }
        match elf::section(&mut f, size, &secs, ".dep-v0", cap) {
            Ok(Some(sec)) => match rustaudit::parse_dep_v0(&sec, path) {
                Ok(p) => {
                    self.inv.databases.push(path.to_string());
                    self.inv.packages.extend(p);
                }
                Err(e) => self.failed_db(path, e.0),
            },
            Ok(None) => {}
            Err(e) => self.failed_db(path, e.0),
        }
    }

    fn add_dpkg_licences(&mut self) {
        let idx = std::mem::take(&mut self.dpkg);
        for i in idx {
            let name = self.inv.packages[i].name.clone();
            if name.contains('/') || name.starts_with('.') {
                continue;
            }
            let rel = format!("usr/share/doc/{name}/copyright");
            if let Ok(b) = read_beneath(self.root, &rel, self.limits.max_metadata) {
                self.inv.packages[i].licenses = dpkg::parse_copyright(&b);
            }
        }
    }
}

/// The purl namespace of an OS package when the layer says nothing of its
/// distribution.
pub(crate) fn default_namespace(eco: Ecosystem) -> &'static str {
    match eco {
        Ecosystem::Deb => "debian",
        Ecosystem::Apk => "alpine",
        Ecosystem::Rpm => "redhat",
        _ => "",
    }
}

fn is_opaque_xattr(dir: &OwnedFd) -> bool {
    for attr in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        let mut buf = [0u8; 4];
        if let Ok(n) = rustix::fs::fgetxattr(dir, attr, &mut buf[..]) {
            if buf.get(..n) == Some(&b"y"[..]) {
                return true;
            }
        }
    }
    false
}
