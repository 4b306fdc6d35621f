//! Applying one layer tar stream to a directory, contained in that directory.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use berth_types::Digest;
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::resolve::{normalize, resolve_dir, split_parent, DirFd};
use crate::{io_err, LayerError};

/// Read-ahead on the tar stream; also the chunk size for copying file content.
const BUF_SIZE: usize = 128 * 1024;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Overlayfs metadata a layer may not set itself: only our whiteout conversion writes it.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// What to do with Docker's `.wh.` whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Convert them to overlayfs' form: `.wh.NAME` becomes a 0:0 character device
    /// `NAME`, `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
    Overlay,
    /// Drop them (a single layer imported on its own has nothing below to hide).
    Skip,
}

/// How [`apply_layer`] treats the entries of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// Create character and block device entries; when false a layer that has one is
    /// refused. Overlay whiteouts made under [`WhiteoutMode::Overlay`] are always allowed.
    pub allow_devices: bool,
    /// Refuse an entry that would replace an existing directory with a
    /// non-directory, or an existing non-directory with a directory
    /// (Docker's `noOverwriteDirNonDir`, which `docker cp` always asks
    /// for): [`LayerError::KindConflict`]. When false such an entry
    /// replaces what is there, as a layer's does.
    pub no_overwrite_dir_non_dir: bool,
}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    /// sha256 of the whole uncompressed tar stream, as read to its end.
    pub diff_id: Digest,
    /// Bytes of regular file content plus the length of each symlink's
    /// target: what Docker counts as a layer's size (the `st_size` of every
    /// entry that is not a directory).
    pub size: u64,
    /// Tar members (extension headers not counted).
    pub entries: u64,
}

/// Extracts the uncompressed layer tar stream `tar` into the existing directory `dest`,
/// never creating or changing anything outside it, and computes the layer's diff_id
/// over every byte of the stream (including padding, the end-of-archive blocks and
/// whatever follows them up to EOF).
///
/// On error the layer is refused whole but `dest` may hold part of it: extract into a
/// fresh directory ([`crate::unpack_to_temp`]) to get all-or-nothing.
pub fn apply_layer(
    tar: impl Read,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<LayerStats, LayerError> {
    let root = rfs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(format!("cannot open layer directory {}", dest.display()), e))?;
    let mut reader = HashingReader {
        inner: BufReader::with_capacity(BUF_SIZE, tar),
        hasher: Sha256::new(),
    };
    let mut applier = Applier {
        root: root.as_fd(),
        opts: *opts,
        written: HashSet::new(),
        dirs: Vec::new(),
        dir_index: HashMap::new(),
        buf: vec![0; BUF_SIZE],
        size: 0,
        entries: 0,
    };
    {
        let mut archive = tar::Archive::new(&mut reader);
        for entry in archive.entries().map_err(LayerError::Archive)? {
            let mut entry = entry.map_err(LayerError::Archive)?;
            applier.apply_entry(&mut entry)?;
        }
    }
    // The digest covers the whole stream, not just the archive's members.
    io::copy(&mut reader, &mut io::sink()).map_err(LayerError::Archive)?;
    applier.finish_dirs()?;
    Ok(LayerStats {
        diff_id: Digest::from_hasher(reader.hasher),
        size: applier.size,
        entries: applier.entries,
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Ownership, permissions, times and extended attributes of one entry.
struct Meta {
    uid: Uid,
    gid: Gid,
    mode: Mode,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

/// A directory whose ownership, mode and mtime are set once the whole layer is written.
struct DeferredDir {
    path: Vec<u8>,
    uid: Uid,
    gid: Gid,
    mode: Mode,
    mtime: Timespec,
}

struct Applier<'a> {
    root: BorrowedFd<'a>,
    opts: ApplyOptions,
    /// Normalised paths of the non-directories this layer wrote: valid hard link targets.
    written: HashSet<Vec<u8>>,
    dirs: Vec<DeferredDir>,
    /// Index into `dirs` by path, so a directory listed twice keeps its last metadata.
    dir_index: HashMap<Vec<u8>, usize>,
    buf: Vec<u8>,
    size: u64,
    entries: u64,
}

/// The entry being applied: its normalised path and its name as the tar spells it.
struct Target<'p> {
    path: &'p [u8],
    shown: &'p str,
}

impl Target<'_> {
    fn err(&self, op: &'static str) -> impl FnOnce(Errno) -> LayerError + '_ {
        move |e| LayerError::Entry {
            path: self.shown.to_string(),
            op,
            source: e.into(),
        }
    }

    fn invalid(&self, reason: &'static str) -> LayerError {
        LayerError::InvalidEntry {
            path: self.shown.to_string(),
            reason,
        }
    }
}

impl<'a> Applier<'a> {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.entries += 1;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let Some(path) = normalize(&raw_path) else {
            return Err(LayerError::Escape { path: shown });
        };
        let t = Target {
            path: &path,
            shown: &shown,
        };
        let meta = read_meta(entry, &t)?;

        let (_, name) = split_parent(&path);
        if name.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(&t, name, &meta);
        }
        // Old (v7) archives mark directories by a trailing slash on a regular entry.
        let is_dir = kind.is_dir() || (kind.is_file() && raw_path.ends_with(b"/"));
        if path.is_empty() {
            if !is_dir {
                return Err(t.invalid("only a directory can stand for the layer root"));
            }
            return self.directory(&t, meta);
        }
        match kind {
            _ if is_dir => self.directory(&t, meta),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(&t, entry, &meta)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().map(|l| l.into_owned());
                self.hardlink(&t, target.as_deref())
            }
            EntryType::Symlink => {
                let Some(target) = entry.link_name_bytes().map(|l| l.into_owned()) else {
                    return Err(t.invalid("symlink without a target"));
                };
                self.symlink(&t, &target, &meta)
            }
            EntryType::Fifo => self.special(&t, FileType::Fifo, 0, &meta),
            EntryType::Char | EntryType::Block => {
                if !self.opts.allow_devices {
                    return Err(LayerError::DeviceNotAllowed { path: shown });
                }
                let header = entry.header();
                let major = header.device_major().map_err(LayerError::Archive)?;
                let minor = header.device_minor().map_err(LayerError::Archive)?;
                let dev = rfs::makedev(major.unwrap_or(0), minor.unwrap_or(0));
                let file_type = if kind == EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                self.special(&t, file_type, dev, &meta)
            }
            other => Err(LayerError::UnsupportedEntry {
                path: shown,
                kind: char::from(other.as_byte()),
            }),
        }
    }

    /// Makes room for the entry `t`, `name` in `parent` (see [`clear_slot`]),
    /// a directory if `dir`; refuses a change of kind under
    /// [`ApplyOptions::no_overwrite_dir_non_dir`]. Returns whether a
    /// directory was kept.
    fn make_room(
        &self,
        t: &Target<'_>,
        parent: BorrowedFd<'_>,
        name: &[u8],
        dir: bool,
    ) -> Result<bool, LayerError> {
        if self.opts.no_overwrite_dir_non_dir {
            match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                    if existing_dir != dir {
                        return Err(LayerError::KindConflict {
                            path: String::from_utf8_lossy(t.path).into_owned(),
                            existing_dir,
                        });
                    }
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(t.err("replace")(e)),
            }
        }
        clear_slot(parent, name, dir).map_err(t.err("replace"))
    }

    /// Resolves the parent of the entry inside the root, creating missing directories.
    fn parent(&self, t: &Target<'_>) -> Result<DirFd<'a>, LayerError> {
        let (parent, _) = split_parent(t.path);
        resolve_dir(self.root, parent, true).map_err(t.err("resolve the parent directory of"))
    }

    fn directory(&mut self, t: &Target<'_>, meta: Meta) -> Result<(), LayerError> {
        if !t.path.is_empty() {
            let (_, name) = split_parent(t.path);
            let parent = self.parent(t)?;
            if !self.make_room(t, parent.as_fd(), name, true)? {
                rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)).map_err(t.err("create"))?;
            }
            if !meta.xattrs.is_empty() {
                let fd = rfs::openat(
                    &parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(t.err("open"))?;
                set_xattrs(XattrTarget::Fd(fd.as_fd()), &meta.xattrs)
                    .map_err(t.err("set extended attributes of"))?;
            }
        } else if !meta.xattrs.is_empty() {
            set_xattrs(XattrTarget::Fd(self.root), &meta.xattrs)
                .map_err(t.err("set extended attributes of"))?;
        }
        let deferred = DeferredDir {
            path: t.path.to_vec(),
            uid: meta.uid,
            gid: meta.gid,
            mode: meta.mode,
            mtime: meta.mtime,
        };
        match self.dir_index.get(t.path) {
            Some(&i) => self.dirs[i] = deferred,
            None => {
                self.dir_index.insert(t.path.to_vec(), self.dirs.len());
                self.dirs.push(deferred);
            }
        }
        Ok(())
    }

    fn regular<R: Read>(
        &mut self,
        t: &Target<'_>,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        let (_, name) = split_parent(t.path);
        let parent = self.parent(t)?;
        self.make_room(t, parent.as_fd(), name, false)?;
        let fd = rfs::openat(
            &parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(t.err("create"))?;
        let mut file = File::from(fd);
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::Archive(e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| LayerError::Entry {
                    path: t.shown.to_string(),
                    op: "write",
                    source: e,
                })?;
            self.size += n as u64;
        }
        // chown clears set-id bits and file capabilities: owner first, then mode, then xattrs.
        rfs::fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(t.err("change the owner of"))?;
        rfs::fchmod(&file, meta.mode).map_err(t.err("change the mode of"))?;
        set_xattrs(XattrTarget::Fd(file.as_fd()), &meta.xattrs)
            .map_err(t.err("set extended attributes of"))?;
        rfs::futimens(&file, &meta.times()).map_err(t.err("set the times of"))?;
        self.written.insert(t.path.to_vec());
        Ok(())
    }

    fn hardlink(&mut self, t: &Target<'_>, target: Option<&[u8]>) -> Result<(), LayerError> {
        let Some(raw_target) = target else {
            return Err(t.invalid("hard link without a target"));
        };
        let shown_target = String::from_utf8_lossy(raw_target).into_owned();
        let Some(target) = normalize(raw_target) else {
            return Err(LayerError::LinkEscape {
                path: t.shown.to_string(),
                target: shown_target,
            });
        };
        if !self.written.contains(&target) {
            return Err(LayerError::LinkTargetMissing {
                path: t.shown.to_string(),
                target: shown_target,
            });
        }
        if target == t.path {
            return Ok(());
        }
        let (_, name) = split_parent(t.path);
        let parent = self.parent(t)?;
        self.make_room(t, parent.as_fd(), name, false)?;
        let (target_parent, target_name) = split_parent(&target);
        let target_dir =
            resolve_dir(self.root, target_parent, false).map_err(t.err("resolve the target of"))?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        rfs::linkat(&target_dir, target_name, &parent, name, AtFlags::empty())
            .map_err(t.err("create"))?;
        self.written.insert(t.path.to_vec());
        Ok(())
    }

    fn symlink(&mut self, t: &Target<'_>, target: &[u8], meta: &Meta) -> Result<(), LayerError> {
        let (_, name) = split_parent(t.path);
        let parent = self.parent(t)?;
        self.make_room(t, parent.as_fd(), name, false)?;
        // The target is stored as-is: it is only ever interpreted inside the container
        // (or by our own in-root resolution).
        rfs::symlinkat(target, &parent, name).map_err(t.err("create"))?;
        self.size += target.len() as u64;
        rfs::chownat(
            &parent,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(t.err("change the owner of"))?;
        set_xattrs(XattrTarget::At(parent.as_fd(), name), &meta.xattrs)
            .map_err(t.err("set extended attributes of"))?;
        rfs::utimensat(&parent, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(t.err("set the times of"))?;
        self.written.insert(t.path.to_vec());
        Ok(())
    }

    fn special(
        &mut self,
        t: &Target<'_>,
        file_type: FileType,
        dev: rfs::Dev,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        let (_, name) = split_parent(t.path);
        let parent = self.parent(t)?;
        self.make_room(t, parent.as_fd(), name, false)?;
        rfs::mknodat(&parent, name, file_type, meta.mode, dev).map_err(t.err("create"))?;
        rfs::chownat(
            &parent,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(t.err("change the owner of"))?;
        chmod_nofollow(parent.as_fd(), name, meta.mode).map_err(t.err("change the mode of"))?;
        set_xattrs(XattrTarget::At(parent.as_fd(), name), &meta.xattrs)
            .map_err(t.err("set extended attributes of"))?;
        rfs::utimensat(&parent, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(t.err("set the times of"))?;
        self.written.insert(t.path.to_vec());
        Ok(())
    }

    fn whiteout(&mut self, t: &Target<'_>, name: &[u8], meta: &Meta) -> Result<(), LayerError> {
        if self.opts.whiteouts == WhiteoutMode::Skip {
            return Ok(());
        }
        if name == WHITEOUT_OPAQUE {
            let parent = self.parent(t)?;
            let dir = rfs::openat(
                &parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(t.err("open the directory of"))?;
            rfs::fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(t.err("mark the directory opaque for"))?;
            return Ok(());
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            // Other `.wh..wh.` names are aufs bookkeeping (e.g. `.wh..wh.plnk`).
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(t.invalid("whiteout of an invalid name"));
        }
        let parent = self.parent(t)?;
        clear_slot(parent.as_fd(), hidden, false)
            .map_err(t.err("replace the whiteout target of"))?;
        rfs::mknodat(
            &parent,
            hidden,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(t.err("create the overlay whiteout for"))?;
        rfs::chownat(
            &parent,
            hidden,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(t.err("change the owner of"))?;
        Ok(())
    }

    /// Sets the ownership, mode and mtime of every directory the layer listed, deepest
    /// last-listed first, now that nothing more is created inside them.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        for d in self.dirs.iter().rev() {
            let shown = String::from_utf8_lossy(&d.path).into_owned();
            let t = Target {
                path: &d.path,
                shown: &shown,
            };
            let owned: OwnedFd;
            let fd = if d.path.is_empty() {
                self.root
            } else {
                let (parent, name) = split_parent(&d.path);
                let opened = resolve_dir(self.root, parent, false).and_then(|p| {
                    rfs::openat(
                        &p,
                        name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                });
                match opened {
                    Ok(fd) => {
                        owned = fd;
                        owned.as_fd()
                    }
                    // A later entry replaced the directory (or one above it).
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                    Err(e) => return Err(t.err("open")(e)),
                }
            };
            rfs::fchown(fd, Some(d.uid), Some(d.gid)).map_err(t.err("change the owner of"))?;
            rfs::fchmod(fd, d.mode).map_err(t.err("change the mode of"))?;
            let times = Timestamps {
                last_access: d.mtime,
                last_modification: d.mtime,
            };
            rfs::futimens(fd, &times).map_err(t.err("set the times of"))?;
        }
        Ok(())
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, t: &Target<'_>) -> Result<Meta, LayerError> {
    let header = entry.header();
    // uid and gid already include PAX overrides (the tar crate applies them).
    let uid = header.uid().map_err(LayerError::Archive)?;
    let gid = header.gid().map_err(LayerError::Archive)?;
    // (u32::MAX is -1, "leave unchanged", for chown.)
    let uid = u32::try_from(uid)
        .ok()
        .filter(|id| *id != u32::MAX)
        .ok_or_else(|| t.invalid("uid out of range"))?;
    let gid = u32::try_from(gid)
        .ok()
        .filter(|id| *id != u32::MAX)
        .ok_or_else(|| t.invalid("gid out of range"))?;
    let mode = header.mode().map_err(LayerError::Archive)? & 0o7777;
    let mtime = header.mtime().map_err(LayerError::Archive)?;
    let mut mtime = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(LayerError::Archive)? {
        for ext in exts {
            let ext = ext.map_err(LayerError::Archive)?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                if let Some(ts) = parse_pax_time(ext.value_bytes()) {
                    mtime = ts;
                }
            }
        }
    }
    Ok(Meta {
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        mode: Mode::from_raw_mode(mode),
        mtime,
        xattrs,
    })
}

/// Parses a PAX time (`[-]seconds[.fraction]`).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10_i64.pow(8 - i as u32);
    }
    if !neg {
        return Some(Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        });
    }
    if nanos == 0 {
        Some(Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        })
    } else {
        Some(Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nanos,
        })
    }
}

/// Makes room for a new entry `name` in `dir`: removes what is there unless it is a
/// directory and `keep_dir` is set. Returns whether a directory was kept.
fn clear_slot(dir: BorrowedFd<'_>, name: &[u8], keep_dir: bool) -> rustix::io::Result<bool> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        if keep_dir {
            return Ok(true);
        }
        crate::fsutil::remove_tree_at(dir, name)?;
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(false)
}

/// Sets the mode of a non-directory without following a symlink in its last component:
/// through `/proc/self/fd` of an `O_PATH` fd (which chmod cannot take directly).
fn chmod_nofollow(dir: BorrowedFd<'_>, name: &[u8], mode: Mode) -> rustix::io::Result<()> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) == FileType::Symlink {
        return Ok(());
    }
    match rfs::chmod(format!("/proc/self/fd/{}", fd.as_raw_fd()), mode) {
        // No /proc: the node was just created by us and checked above.
        Err(Errno::NOENT) => rfs::chmodat(dir, name, mode, AtFlags::empty()),
        r => r,
    }
}

enum XattrTarget<'a> {
    /// An fd opened for reading or writing (not `O_PATH`).
    Fd(BorrowedFd<'a>),
    /// `name` in the directory, not following a symlink.
    At(BorrowedFd<'a>, &'a [u8]),
}

/// Applies PAX `SCHILY.xattr.*` attributes. A filesystem without xattr support, or one
/// refusing a namespace (user.* on a symlink or fifo), is not an error, as in Docker.
/// `trusted.overlay.*` from a layer is never applied: it would steer overlayfs.
fn set_xattrs(target: XattrTarget<'_>, xattrs: &[(Vec<u8>, Vec<u8>)]) -> rustix::io::Result<()> {
    for (name, value) in xattrs {
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let r = match target {
            XattrTarget::Fd(fd) => rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()),
            XattrTarget::At(dir, entry) => {
                let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
                path.extend_from_slice(entry);
                rfs::lsetxattr(path.as_slice(), name.as_slice(), value, XattrFlags::empty())
            }
        };
        match r {
            Ok(()) | Err(Errno::OPNOTSUPP | Errno::PERM) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(parse_pax_time(b"x").is_none());
    }
}
