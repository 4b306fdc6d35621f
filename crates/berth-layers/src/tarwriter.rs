//! Writing a directory tree (or one path inside a root) as a tar stream: the other way
//! from [`crate::apply_layer`].
//!
//! The tree is walked with `*at` syscalls relative to directory fds and never follows a
//! symlink (a symlink is archived as a symlink); a path handed in by a user ([`write_path`])
//! is resolved inside its root with `RESOLVE_IN_ROOT` semantics. The output is
//! deterministic: entries in sorted order (each directory's names sorted bytewise, a
//! directory before its contents), no user or group names, no access or change times,
//! mtimes in whole seconds, extended attributes sorted by name. The same tree gives the
//! same bytes, so a layer committed twice has one diff_id.
//!
//! Format: POSIX ustar headers; names or link targets longer than 100 bytes and
//! extended attributes go into a PAX extended header (`path`, `linkpath`,
//! `SCHILY.xattr.*`); numbers too large for octal fields use the base-256 extension.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use berth_types::Digest;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use crate::resolve::{resolve_dir, split_parent, DirFd};
use crate::{io_err, LayerError};

/// Output buffer: large enough that small files and headers go out in big writes.
const BUF_SIZE: usize = 128 * 1024;
const BLOCK: usize = 512;
/// Longest name or link target that fits a ustar header field.
const NAME_FIELD: usize = 100;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// Symlinks followed while resolving one path, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: u32 = 40;

/// How [`write_dir`] turns a tree into a tar stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// The tree is an overlayfs upper directory: convert its whiteouts to Docker's form
    /// (a 0:0 character device `NAME` becomes an empty regular file `.wh.NAME`; a
    /// directory with `trusted.overlay.opaque=y` is followed by an empty `.wh..wh..opq`
    /// inside it).
    pub overlay_whiteouts: bool,
}

/// Writes the tree under `dir` as a tar stream to `out`: entries in sorted path order,
/// names relative without a leading `./` (directories end with `/`), the directory `dir`
/// itself not included. Mode, owner, mtime (seconds) and size are kept; symlinks as
/// symlinks (never followed), the second and later paths of a hard-linked inode as hard
/// links to the first, fifos, character and block devices, extended attributes as PAX
/// `SCHILY.xattr.*` (except `trusted.overlay.*`). Sockets are skipped, as Docker does.
/// Deterministic: the same tree gives the same bytes.
///
/// Returns the sha256 of the stream (the layer's diff_id) and the bytes written.
pub fn write_dir(
    dir: &Path,
    out: impl Write,
    opts: &TarOptions,
) -> Result<(Digest, u64), LayerError> {
    write_dir_inner(dir, out, opts, None)
}

/// [`write_dir`] without the entries for which `skip` answers true (a directory with
/// everything under it). `skip` gets the entry's archive name without a trailing `/`
/// (`etc/hosts`). For leaving out what the runtime put in a container's upper directory
/// (mount points), which is not part of the container's changes.
pub fn write_dir_filtered(
    dir: &Path,
    out: impl Write,
    opts: &TarOptions,
    skip: &dyn Fn(&[u8]) -> bool,
) -> Result<(Digest, u64), LayerError> {
    write_dir_inner(dir, out, opts, Some(skip))
}

fn write_dir_inner(
    dir: &Path,
    out: impl Write,
    opts: &TarOptions,
    skip: Option<SkipFn<'_>>,
) -> Result<(Digest, u64), LayerError> {
    let fd = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(format!("cannot open directory {}", dir.display()), e))?;
    let mut w = TarWriter::new(out, true, *opts);
    w.skip = skip;
    w.contents(fd, b"")?;
    let (digest, n) = w.finish()?;
    Ok((digest.unwrap_or_else(|| Digest::of_bytes(b"")), n))
}

/// Writes the one path `rel` inside `root` as a tar stream, archived under the name
/// `name` (a directory with everything under it). `rel` is resolved as if `root` were
/// `/`: symlinks on the way (and `..`) never lead out of `root`. The last component is
/// archived as it is unless `follow_final_symlink` is set and it is a symlink, which is
/// then dereferenced (still inside `root`). An empty `name` (or `.`) archives the
/// contents of a directory at the top level of the archive without an entry for the
/// directory itself. Returns the bytes written.
pub fn write_path(
    root: &Path,
    rel: &Path,
    name: &str,
    follow_final_symlink: bool,
    out: impl Write,
) -> Result<u64, LayerError> {
    use std::os::unix::ffi::OsStrExt;

    let root_fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(format!("cannot open directory {}", root.display()), e))?;
    let shown = rel.display().to_string();
    let not_found = |e: Errno| io_err(format!("cannot find {shown} in {}", root.display()), e);
    let real = canonical_in_root(
        root_fd.as_fd(),
        rel.as_os_str().as_bytes(),
        follow_final_symlink,
    )
    .map_err(not_found)?;
    let name = name.trim_matches('/');
    let name = if name == "." { "" } else { name };

    let mut w = TarWriter::new(out, false, TarOptions::default());
    if real.is_empty() {
        // The root itself.
        let st = rfs::fstat(&root_fd).map_err(not_found)?;
        if name.is_empty() {
            w.contents(root_fd, b"")?;
        } else {
            w.entry(root_fd.as_fd(), c".", &st, name.as_bytes())?;
        }
    } else {
        let (parent, last) = split_parent(&real);
        let dir = resolve_dir(root_fd.as_fd(), parent, false).map_err(not_found)?;
        // An O_PATH parent cannot be read from: reopen it.
        let dir = reopen_dir(&dir).map_err(not_found)?;
        let last = CString::new(last).map_err(|_| not_found(Errno::INVAL))?;
        let st = rfs::statat(&dir, &last, AtFlags::SYMLINK_NOFOLLOW).map_err(not_found)?;
        if name.is_empty() && FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let fd = open_dir_at(dir.as_fd(), &last).map_err(not_found)?;
            w.contents(fd, b"")?;
        } else {
            let name = if name.is_empty() {
                last.as_bytes()
            } else {
                name.as_bytes()
            };
            w.entry(dir.as_fd(), &last, &st, name)?;
        }
    }
    let (_, n) = w.finish()?;
    Ok(n)
}

/// The path of `path` inside `root` with every symlink resolved (the last one only with
/// `follow_final`) as if `root` were `/`: normalised components joined by `/`, empty for
/// the root itself. The result names an existing entry.
fn canonical_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    follow_final: bool,
) -> rustix::io::Result<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    // Directories from `root` down to the current one, as `names`.
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut pending: Vec<Vec<u8>> = path
        .split(|b| *b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                names.pop();
                fds.pop();
                continue;
            }
            _ => {}
        }
        let last = pending.iter().all(|p| p.is_empty() || p == b".");
        let cur = fds.last().map_or(root, |fd| fd.as_fd());
        let st = rfs::statat(cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink if !last || follow_final => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP);
                }
                let target = rfs::readlinkat(cur, c.as_slice(), Vec::new())?;
                let target = target.as_bytes();
                if target.starts_with(b"/") {
                    names.clear();
                    fds.clear();
                }
                pending.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
            }
            _ if last => names.push(c),
            FileType::Directory => {
                fds.push(rfs::openat(
                    cur,
                    c.as_slice(),
                    OFlags::DIRECTORY | OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?);
                names.push(c);
            }
            _ => return Err(Errno::NOTDIR),
        }
    }
    Ok(names.join(&b'/'))
}

fn reopen_dir(dir: &DirFd<'_>) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Answers whether an entry (by archive name) is left out.
type SkipFn<'a> = &'a dyn Fn(&[u8]) -> bool;

/// Counts (and optionally hashes) what goes through it.
struct Counting<W> {
    inner: W,
    hasher: Option<Sha256>,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct TarWriter<'s, W: Write> {
    out: BufWriter<Counting<W>>,
    opts: TarOptions,
    /// Entries (by archive name) left out.
    skip: Option<SkipFn<'s>>,
    /// The archive name of the first path seen of each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    xattr_names: Vec<u8>,
}

/// What the header of one entry says beyond its stat.
struct EntryHead<'a> {
    kind: EntryType,
    name: &'a [u8],
    link: Option<&'a [u8]>,
    size: u64,
    mode: u32,
}

impl<'s, W: Write> TarWriter<'s, W> {
    fn new(out: W, hash: bool, opts: TarOptions) -> Self {
        TarWriter {
            out: BufWriter::with_capacity(
                BUF_SIZE,
                Counting {
                    inner: out,
                    hasher: hash.then(Sha256::new),
                    written: 0,
                },
            ),
            opts,
            skip: None,
            links: HashMap::new(),
            xattr_names: vec![0; 4096],
        }
    }

    fn finish(mut self) -> Result<(Option<Digest>, u64), LayerError> {
        let err = |e: io::Error| io_err("cannot write the tar stream", e);
        self.out.write_all(&[0u8; 2 * BLOCK]).map_err(err)?;
        let counting = self.out.into_inner().map_err(|e| err(e.into_error()))?;
        let Counting {
            mut inner,
            hasher,
            written,
        } = counting;
        inner.flush().map_err(err)?;
        Ok((hasher.map(Digest::from_hasher), written))
    }

    fn write_out(&mut self, data: &[u8]) -> Result<(), LayerError> {
        self.out
            .write_all(data)
            .map_err(|e| io_err("cannot write the tar stream", e))
    }

    /// Archives the entries of the directory `dir` (not the directory itself), their
    /// names prefixed with `prefix` (empty or ending in `/`).
    fn contents(&mut self, dir: OwnedFd, prefix: &[u8]) -> Result<(), LayerError> {
        let shown = || String::from_utf8_lossy(prefix).into_owned();
        let read_err = |e: Errno| io_err(format!("cannot read directory {:?}", shown()), e);
        let mut entries = rfs::Dir::new(dir).map_err(read_err)?;
        let mut names: Vec<CString> = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(read_err)?;
            let n = entry.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push(n.to_owned());
            }
        }
        names.sort_unstable();
        let fd = entries.fd().map_err(read_err)?;
        let mut path = prefix.to_vec();
        for n in names {
            path.truncate(prefix.len());
            path.extend_from_slice(n.to_bytes());
            if self.skip.is_some_and(|skip| skip(&path)) {
                continue;
            }
            let st = match rfs::statat(fd, &n, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while we were reading (a running container).
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    return Err(io_err(
                        format!("cannot stat {:?}", String::from_utf8_lossy(&path)),
                        e,
                    ))
                }
            };
            self.entry(fd, &n, &st, &path)?;
        }
        Ok(())
    }

    /// Archives `name` in `dir` (already `lstat`ed as `st`) as `arc` (without a trailing
    /// slash), and everything under it if it is a directory.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        st: &Stat,
        arc: &[u8],
    ) -> Result<(), LayerError> {
        let shown = || String::from_utf8_lossy(arc).into_owned();
        let err =
            |op: &'static str| move |e: Errno| io_err(format!("cannot {op} {:?}", shown()), e);
        let file_type = FileType::from_raw_mode(st.st_mode);
        let mode = st.st_mode & 0o7777;

        if file_type == FileType::CharacterDevice && st.st_rdev == 0 && self.opts.overlay_whiteouts
        {
            let (parent, base) = split_parent(arc);
            let mut wh = Vec::with_capacity(arc.len() + WHITEOUT_PREFIX.len());
            if !parent.is_empty() {
                wh.extend_from_slice(parent);
                wh.push(b'/');
            }
            wh.extend_from_slice(WHITEOUT_PREFIX);
            wh.extend_from_slice(base);
            let head = EntryHead {
                kind: EntryType::Regular,
                name: &wh,
                link: None,
                size: 0,
                mode: 0o600,
            };
            return self.header(&head, st, &[]);
        }

        if file_type != FileType::Directory && wide(st.st_nlink) > 1 {
            let key = (wide(st.st_dev), wide(st.st_ino));
            if let Some(first) = self.links.get(&key).cloned() {
                let head = EntryHead {
                    kind: EntryType::Link,
                    name: arc,
                    link: Some(&first),
                    size: 0,
                    mode,
                };
                return self.header(&head, st, &[]);
            }
            self.links.insert(key, arc.to_vec());
        }

        match file_type {
            FileType::Directory => {
                let fd = match open_dir_at(dir, name) {
                    Ok(fd) => fd,
                    // Removed or replaced since it was listed (a running container).
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(()),
                    Err(e) => return Err(err("open")(e)),
                };
                let xattrs = self
                    .xattrs(XattrSource::Fd(fd.as_fd()))
                    .map_err(err("read the extended attributes of"))?;
                let opaque = self.opts.overlay_whiteouts && is_opaque(fd.as_fd());
                let mut dir_name = arc.to_vec();
                if !dir_name.is_empty() {
                    dir_name.push(b'/');
                }
                let head = EntryHead {
                    kind: EntryType::Directory,
                    name: &dir_name,
                    link: None,
                    size: 0,
                    mode,
                };
                self.header(&head, st, &xattrs)?;
                if opaque {
                    let mut opq = dir_name.clone();
                    opq.extend_from_slice(WHITEOUT_OPAQUE);
                    let head = EntryHead {
                        kind: EntryType::Regular,
                        name: &opq,
                        link: None,
                        size: 0,
                        mode: mode & 0o777,
                    };
                    self.header(&head, st, &[])?;
                }
                self.contents(fd, &dir_name)
            }
            FileType::RegularFile => {
                let size = u64::try_from(st.st_size).unwrap_or(0);
                if size == 0 {
                    let xattrs = self
                        .xattrs(XattrSource::At(dir, name))
                        .map_err(err("read the extended attributes of"))?;
                    let head = EntryHead {
                        kind: EntryType::Regular,
                        name: arc,
                        link: None,
                        size: 0,
                        mode,
                    };
                    return self.header(&head, st, &xattrs);
                }
                // O_NONBLOCK: a fifo swapped in since the stat must not block us.
                let fd = match rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Removed or replaced since it was listed (a running container).
                    Err(Errno::NOENT | Errno::LOOP | Errno::NXIO) => return Ok(()),
                    Err(e) => return Err(err("open")(e)),
                };
                // What was opened is what gets described.
                let st = rfs::fstat(&fd).map_err(err("stat"))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Ok(());
                }
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let xattrs = self
                    .xattrs(XattrSource::Fd(fd.as_fd()))
                    .map_err(err("read the extended attributes of"))?;
                let head = EntryHead {
                    kind: EntryType::Regular,
                    name: arc,
                    link: None,
                    size,
                    mode: st.st_mode & 0o7777,
                };
                self.header(&head, &st, &xattrs)?;
                self.content(File::from(fd), size, arc)
            }
            FileType::Symlink => {
                let target = match rfs::readlinkat(dir, name, Vec::new()) {
                    Ok(t) => t,
                    // Removed or replaced since it was listed.
                    Err(Errno::NOENT | Errno::INVAL) => return Ok(()),
                    Err(e) => return Err(err("read the symlink")(e)),
                };
                let xattrs = self
                    .xattrs(XattrSource::At(dir, name))
                    .map_err(err("read the extended attributes of"))?;
                let head = EntryHead {
                    kind: EntryType::Symlink,
                    name: arc,
                    link: Some(target.as_bytes()),
                    size: 0,
                    mode,
                };
                self.header(&head, st, &xattrs)
            }
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                let kind = match file_type {
                    FileType::Fifo => EntryType::Fifo,
                    FileType::CharacterDevice => EntryType::Char,
                    _ => EntryType::Block,
                };
                let xattrs = self
                    .xattrs(XattrSource::At(dir, name))
                    .map_err(err("read the extended attributes of"))?;
                let head = EntryHead {
                    kind,
                    name: arc,
                    link: None,
                    size: 0,
                    mode,
                };
                self.header(&head, st, &xattrs)
            }
            // Sockets (and anything else) have no tar form.
            _ => Ok(()),
        }
    }

    /// Copies exactly `size` bytes of `file`: a file that shrank meanwhile is padded with
    /// zeros, one that grew is cut, so the header stays true. Then pads to a block.
    fn content(&mut self, file: File, size: u64, arc: &[u8]) -> Result<(), LayerError> {
        let mut limited = file.take(size);
        let copied = io::copy(&mut limited, &mut self.out)
            .map_err(|e| io_err(format!("cannot read {:?}", String::from_utf8_lossy(arc)), e))?;
        let mut missing = size - copied;
        let zeros = [0u8; BLOCK];
        while missing > 0 {
            let n = usize::try_from(missing.min(BLOCK as u64)).unwrap_or(BLOCK);
            self.write_out(&zeros[..n])?;
            missing -= n as u64;
        }
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.write_out(&zeros[..pad])
    }

    /// The extended attributes of an entry, sorted by name, without overlayfs' own.
    fn xattrs(&mut self, src: XattrSource<'_>) -> rustix::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        // An entry that is not open is reached through its directory's fd in /proc, so
        // the name is looked up in that directory and a symlink is not followed.
        let path = match src {
            XattrSource::At(dir, name) => {
                let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
                p.extend_from_slice(name.to_bytes());
                Some(p)
            }
            XattrSource::Fd(_) => None,
        };
        let n = loop {
            let r = match (src, &path) {
                (XattrSource::Fd(fd), _) => rfs::flistxattr(fd, &mut self.xattr_names[..]),
                (_, Some(p)) => rfs::llistxattr(p.as_slice(), &mut self.xattr_names[..]),
                (_, None) => return Ok(Vec::new()),
            };
            match r {
                Ok(n) => break n,
                Err(Errno::RANGE) => {
                    let len = self.xattr_names.len() * 2;
                    self.xattr_names.resize(len, 0);
                }
                Err(Errno::OPNOTSUPP | Errno::NOENT) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        };
        let mut out = Vec::new();
        for xname in self.xattr_names[..n].split(|b| *b == 0) {
            if xname.is_empty() || xname.starts_with(OVERLAY_XATTR_PREFIX) {
                continue;
            }
            let mut value = vec![0u8; 256];
            let got = loop {
                let r = match (src, &path) {
                    (XattrSource::Fd(fd), _) => rfs::fgetxattr(fd, xname, &mut value[..]),
                    (_, Some(p)) => rfs::lgetxattr(p.as_slice(), xname, &mut value[..]),
                    (_, None) => Err(Errno::NODATA),
                };
                match r {
                    Ok(len) => break Some(len),
                    Err(Errno::RANGE) => {
                        let len = value.len() * 4;
                        value.resize(len, 0);
                    }
                    // Removed meanwhile.
                    Err(Errno::NODATA) => break None,
                    Err(e) => return Err(e),
                }
            };
            if let Some(len) = got {
                value.truncate(len);
                out.push((xname.to_vec(), value));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes the header of one entry (preceded by a PAX header when needed).
    fn header(
        &mut self,
        head: &EntryHead<'_>,
        st: &Stat,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), LayerError> {
        let owner = EntryMeta {
            mode: head.mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            rdev: wide(st.st_rdev),
        };
        self.header_meta(head, &owner, xattrs)
    }

    /// [`Self::header`] from metadata that did not come from a stat.
    fn header_meta(
        &mut self,
        head: &EntryHead<'_>,
        st: &EntryMeta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), LayerError> {
        let mut h = Header::new_ustar();
        h.set_entry_type(head.kind);
        h.set_mode(head.mode);
        h.set_uid(u64::from(st.uid));
        h.set_gid(u64::from(st.gid));
        h.set_mtime(u64::try_from(st.mtime).unwrap_or(0));
        h.set_size(head.size);
        if matches!(head.kind, EntryType::Char | EntryType::Block) {
            let rdev = st.rdev;
            // A ustar header has these fields: setting them cannot fail.
            let _ = h.set_device_major(rfs::major(rdev));
            let _ = h.set_device_minor(rfs::minor(rdev));
        }

        let mut pax = Vec::new();
        if head.name.len() > NAME_FIELD {
            pax_record(&mut pax, b"path", head.name);
        }
        if let Some(link) = head.link {
            if link.len() > NAME_FIELD {
                pax_record(&mut pax, b"linkpath", link);
            }
        }
        for (name, value) in xattrs {
            let mut key = PAX_XATTR_PREFIX.to_vec();
            key.extend_from_slice(name);
            pax_record(&mut pax, &key, value);
        }

        let truncated = &head.name[..head.name.len().min(NAME_FIELD)];
        if !pax.is_empty() {
            let mut x = Header::new_ustar();
            x.set_entry_type(EntryType::XHeader);
            x.set_mode(0o644);
            x.set_size(pax.len() as u64);
            let (_, base) = split_parent(head.name.strip_suffix(b"/").unwrap_or(head.name));
            let mut xname = b"PaxHeaders.0/".to_vec();
            xname.extend_from_slice(&base[..base.len().min(NAME_FIELD - xname.len())]);
            x.as_old_mut().name[..xname.len()].copy_from_slice(&xname);
            x.set_cksum();
            self.write_out(x.as_bytes())?;
            let pad = (BLOCK - pax.len() % BLOCK) % BLOCK;
            pax.resize(pax.len() + pad, 0);
            self.write_out(&pax)?;
        }
        h.as_old_mut().name[..truncated.len()].copy_from_slice(truncated);
        if let Some(link) = head.link {
            let link = &link[..link.len().min(NAME_FIELD)];
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.write_out(h.as_bytes())
    }
}

/// The metadata of an entry [`TarBuilder`] writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Device number of a character or block device.
    pub rdev: u64,
}

/// What kind of special file [`TarBuilder::special`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKind {
    Fifo,
    Char,
    Block,
}

/// A tar stream written entry by entry (a build step's files, which exist
/// nowhere as one tree), in the same format as [`write_dir`], hashed as it
/// goes. Names are relative, without a trailing `/`.
pub struct TarBuilder<W: Write> {
    w: TarWriter<'static, W>,
}

impl<W: Write> TarBuilder<W> {
    pub fn new(out: W) -> Self {
        TarBuilder {
            w: TarWriter::new(out, true, TarOptions::default()),
        }
    }

    pub fn dir(&mut self, name: &[u8], m: &EntryMeta) -> Result<(), LayerError> {
        let mut n = name.to_vec();
        n.push(b'/');
        let head = EntryHead {
            kind: EntryType::Directory,
            name: &n,
            link: None,
            size: 0,
            mode: m.mode & 0o7777,
        };
        self.w.header_meta(&head, m, &[])
    }

    /// A regular file of `size` bytes read from `content` (a file that
    /// turns out shorter is padded with zeros, a longer one cut).
    pub fn file(
        &mut self,
        name: &[u8],
        m: &EntryMeta,
        content: File,
        size: u64,
    ) -> Result<(), LayerError> {
        let head = EntryHead {
            kind: EntryType::Regular,
            name,
            link: None,
            size,
            mode: m.mode & 0o7777,
        };
        self.w.header_meta(&head, m, &[])?;
        self.w.content(content, size, name)
    }

    pub fn symlink(&mut self, name: &[u8], m: &EntryMeta, target: &[u8]) -> Result<(), LayerError> {
        let head = EntryHead {
            kind: EntryType::Symlink,
            name,
            link: Some(target),
            size: 0,
            mode: m.mode & 0o7777,
        };
        self.w.header_meta(&head, m, &[])
    }

    pub fn special(
        &mut self,
        name: &[u8],
        m: &EntryMeta,
        kind: SpecialKind,
    ) -> Result<(), LayerError> {
        let kind = match kind {
            SpecialKind::Fifo => EntryType::Fifo,
            SpecialKind::Char => EntryType::Char,
            SpecialKind::Block => EntryType::Block,
        };
        let head = EntryHead {
            kind,
            name,
            link: None,
            size: 0,
            mode: m.mode & 0o7777,
        };
        self.w.header_meta(&head, m, &[])
    }

    /// Ends the stream; returns its sha256 and length.
    pub fn finish(self) -> Result<(Digest, u64), LayerError> {
        let (d, n) = self.w.finish()?;
        Ok((d.unwrap_or_else(|| Digest::of_bytes(b"")), n))
    }
}

#[derive(Clone, Copy)]
enum XattrSource<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a std::ffi::CStr),
}

/// Whether the directory carries overlayfs' opaque marker (`trusted.overlay.opaque=y`).
fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    let mut v = [0u8; 2];
    matches!(rfs::fgetxattr(fd, OVERLAY_OPAQUE_XATTR, &mut v[..]), Ok(1) if v[0] == b'y')
}

/// A `stat` field as u64: its type differs between architectures.
fn wide(v: impl Into<u64>) -> u64 {
    v.into()
}

/// Appends one PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::io::Cursor;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::Path;

    use rustix::fs::{self as rfs, FileType, Mode, Timespec, Timestamps, XattrFlags};
    use tempfile::TempDir;

    use super::*;
    use crate::{apply_layer, ApplyOptions, WhiteoutMode};

    const ALL: ApplyOptions = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        allow_devices: true,
        no_overwrite_dir_non_dir: false,
    };
    const OVERLAY: TarOptions = TarOptions {
        overlay_whiteouts: true,
    };

    fn set_mtime(p: &Path, secs: i64) {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: 123,
        };
        let ts = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rfs::utimensat(rfs::CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }

    /// Everything a layer round trip must keep, by path; hard links by a shared number.
    fn snapshot(root: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut inodes: HashMap<u64, usize> = HashMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let kind = FileType::from_raw_mode(m.mode());
                let what = match kind {
                    FileType::Directory => {
                        stack.push(p.clone());
                        "dir".to_string()
                    }
                    FileType::RegularFile => {
                        format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
                    }
                    FileType::Symlink => format!("link {}", fs::read_link(&p).unwrap().display()),
                    other => format!("{other:?} {}", m.rdev()),
                };
                let link = if kind != FileType::Directory && m.nlink() > 1 {
                    let n = inodes.len();
                    format!(" inode#{}", inodes.entry(m.ino()).or_insert(n))
                } else {
                    String::new()
                };
                let mtime = if kind == FileType::Symlink {
                    0
                } else {
                    m.mtime()
                };
                let mut xattrs = Vec::new();
                for name in xattr_names(&p) {
                    let mut v = [0u8; 256];
                    let n = rfs::lgetxattr(&p, name.as_str(), &mut v[..]).unwrap();
                    xattrs.push(format!("{name}={:?}", String::from_utf8_lossy(&v[..n])));
                }
                xattrs.sort();
                out.insert(
                    rel,
                    format!(
                        "{what} {:o} {}:{} {mtime} [{}]{link}",
                        m.mode() & 0o7777,
                        m.uid(),
                        m.gid(),
                        xattrs.join(",")
                    ),
                );
            }
        }
        out
    }

    fn xattr_names(p: &Path) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let n = rfs::llistxattr(p, &mut buf[..]).unwrap_or(0);
        buf[..n]
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    /// A tree with one of everything.
    fn sample_tree(root: &Path) {
        fs::create_dir_all(root.join("etc/deep/er")).unwrap();
        fs::create_dir(root.join("empty")).unwrap();
        fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(root.join("etc/deep/er/big"), vec![7u8; 70_000]).unwrap();
        fs::write(root.join("zero"), b"").unwrap();
        fs::write(root.join("suid"), b"x").unwrap();
        fs::set_permissions(root.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
        rfs::chownat(
            rfs::CWD,
            root.join("etc/passwd"),
            Some(rfs::Uid::from_raw(1000)),
            Some(rfs::Gid::from_raw(42)),
            AtFlags::empty(),
        )
        .unwrap();
        fs::hard_link(root.join("etc/passwd"), root.join("passwd-link")).unwrap();
        fs::hard_link(root.join("etc/passwd"), root.join("etc/deep/passwd-2")).unwrap();
        symlink("/etc/passwd", root.join("abs-link")).unwrap();
        symlink("../..", root.join("etc/deep/up")).unwrap();
        let long_dir = root.join("l".repeat(90)).join("m".repeat(90));
        fs::create_dir_all(&long_dir).unwrap();
        fs::write(long_dir.join("file-with-a-long-name"), b"long").unwrap();
        symlink("t".repeat(150), root.join("long-target")).unwrap();
        rfs::mknodat(
            rfs::CWD,
            root.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o620),
            0,
        )
        .unwrap();
        rfs::mknodat(
            rfs::CWD,
            root.join("null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rfs::makedev(1, 3),
        )
        .unwrap();
        rfs::mknodat(
            rfs::CWD,
            root.join("loop9"),
            FileType::BlockDevice,
            Mode::from_raw_mode(0o660),
            rfs::makedev(7, 9),
        )
        .unwrap();
        rfs::lsetxattr(
            root.join("zero"),
            "user.origin",
            b"berth",
            XattrFlags::empty(),
        )
        .unwrap();
        rfs::lsetxattr(
            root.join("etc"),
            "trusted.berth",
            b"dir",
            XattrFlags::empty(),
        )
        .unwrap();
        rfs::lsetxattr(
            root.join("etc/deep/er/big"),
            "trusted.big",
            &[1u8, 0, 2],
            XattrFlags::empty(),
        )
        .unwrap();
        for (i, p) in [
            "etc/passwd",
            "etc/deep/er/big",
            "etc/deep/er",
            "etc/deep",
            "etc",
            "empty",
            "zero",
            "fifo",
            "null",
        ]
        .iter()
        .enumerate()
        {
            set_mtime(&root.join(p), 1_600_000_000 + i as i64);
        }
    }

    fn tar_of(dir: &Path, opts: &TarOptions) -> Vec<u8> {
        let mut out = Vec::new();
        let (digest, n) = write_dir(dir, &mut out, opts).unwrap();
        assert_eq!(digest, Digest::of_bytes(&out));
        assert_eq!(n, out.len() as u64);
        out
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(Cursor::new(tar));
        a.entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn round_trip_through_apply_keeps_the_tree_and_the_bytes() {
        let tmp = TempDir::new().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        sample_tree(&a);
        let tar = tar_of(&a, &TarOptions::default());
        assert_eq!(tar.len() % BLOCK, 0);

        let stats = apply_layer(Cursor::new(&tar), &b, &ALL).unwrap();
        assert_eq!(stats.diff_id, Digest::of_bytes(&tar));
        assert_eq!(snapshot(&a), snapshot(&b));
        // Written again from the copy: the very same stream.
        assert_eq!(tar_of(&b, &TarOptions::default()), tar);

        let names = names(&tar);
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(names
            .iter()
            .all(|n| !n.starts_with('/') && !n.starts_with("./")));
        assert!(names.contains(&"etc/".to_string()));
        assert!(pos("etc/") < pos("etc/deep/") && pos("etc/deep/") < pos("etc/deep/er/big"));
        // The first path of the inode carries the content, the others link to it.
        assert!(pos("etc/passwd") > pos("etc/deep/passwd-2"));
        let mut a2 = tar::Archive::new(Cursor::new(&tar));
        for e in a2.entries().unwrap() {
            let e = e.unwrap();
            if e.path_bytes().as_ref() == b"etc/passwd" {
                assert_eq!(e.header().entry_type(), EntryType::Link);
                assert_eq!(e.link_name_bytes().unwrap().as_ref(), b"etc/deep/passwd-2");
            }
        }
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let tmp = TempDir::new().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        sample_tree(&a);
        sample_tree(&b);
        let first = tar_of(&a, &OVERLAY);
        assert_eq!(first, tar_of(&a, &OVERLAY));
        assert_eq!(first, tar_of(&b, &OVERLAY));
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert_eq!(tar_of(&empty, &OVERLAY), vec![0u8; 1024]);
    }

    #[test]
    fn overlay_whiteouts_convert_both_ways() {
        let tmp = TempDir::new().unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).unwrap();
        // A layer in Docker's form, applied as overlayfs wants it...
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |kind: EntryType, path: &str, mode: u32| {
            let mut h = Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_mtime(1_600_000_000);
            h.set_size(0);
            h.set_uid(0);
            h.set_gid(0);
            b.append_data(&mut h, path, &[][..]).unwrap();
        };
        add(EntryType::Regular, ".wh.gone", 0o600);
        add(EntryType::Directory, "opaque/", 0o750);
        add(EntryType::Regular, "opaque/.wh..wh..opq", 0o750);
        add(EntryType::Regular, "opaque/new", 0o644);
        add(EntryType::Directory, "sub/", 0o755);
        add(EntryType::Regular, "sub/.wh.old", 0o600);
        let layer = b.into_inner().unwrap();
        apply_layer(Cursor::new(&layer), &upper, &ALL).unwrap();
        let st = rfs::lstat(upper.join("gone")).unwrap();
        assert_eq!(
            FileType::from_raw_mode(st.st_mode),
            FileType::CharacterDevice
        );
        assert_eq!(st.st_rdev, 0);
        assert!(is_opaque(
            rfs::open(upper.join("opaque"), OFlags::RDONLY, Mode::empty())
                .unwrap()
                .as_fd()
        ));

        // ...and written back in Docker's form.
        let tar = tar_of(&upper, &OVERLAY);
        assert_eq!(
            names(&tar),
            [
                ".wh.gone",
                "opaque/",
                "opaque/.wh..wh..opq",
                "opaque/new",
                "sub/",
                "sub/.wh.old"
            ]
        );
        let mut a = tar::Archive::new(Cursor::new(&tar));
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path_bytes().into_owned();
            if name.ends_with(b"/") {
                // overlayfs' own attributes never leak into the layer.
                assert!(e.pax_extensions().unwrap().is_none());
            } else {
                assert_eq!(e.header().entry_type(), EntryType::Regular);
            }
        }
        // Without the conversion the upper dir is archived as it is.
        let raw = tar_of(&upper, &TarOptions::default());
        assert!(names(&raw).contains(&"gone".to_string()));
        assert!(!names(&raw).iter().any(|n| n.contains(".wh.")));

        // Round trip: the converted stream applies back to the same upper dir.
        let again = tmp.path().join("again");
        fs::create_dir(&again).unwrap();
        apply_layer(Cursor::new(&tar), &again, &ALL).unwrap();
        assert_eq!(tar_of(&again, &OVERLAY), tar);
    }

    #[test]
    fn filtered_entries_are_left_out_with_what_is_under_them() {
        let tmp = TempDir::new().unwrap();
        let d = tmp.path();
        fs::create_dir_all(d.join("etc/sub")).unwrap();
        fs::write(d.join("etc/hosts"), b"").unwrap();
        fs::write(d.join("etc/passwd"), b"x").unwrap();
        fs::write(d.join("etc/sub/f"), b"y").unwrap();
        fs::write(d.join("top"), b"z").unwrap();
        let mut out = Vec::new();
        let skip = |p: &[u8]| p == b"etc/hosts" || p == b"etc/sub";
        let (digest, n) = write_dir_filtered(d, &mut out, &TarOptions::default(), &skip).unwrap();
        assert_eq!((digest, n), (Digest::of_bytes(&out), out.len() as u64));
        assert_eq!(names(&out), ["etc/", "etc/passwd", "top"]);
    }

    #[test]
    fn write_path_stays_inside_the_root() {
        let tmp = TempDir::new().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("data/sub")).unwrap();
        fs::write(root.join("etc/passwd"), b"inside").unwrap();
        fs::write(root.join("data/sub/f"), b"f").unwrap();
        symlink("/etc/passwd", root.join("abs")).unwrap();
        symlink("../../../../etc/passwd", root.join("data/up")).unwrap();
        symlink("/data", root.join("datalink")).unwrap();

        let read = |rel: &str, name: &str, follow: bool| -> Vec<(String, Vec<u8>)> {
            let mut out = Vec::new();
            let n = write_path(&root, Path::new(rel), name, follow, &mut out).unwrap();
            assert_eq!(n, out.len() as u64);
            let mut a = tar::Archive::new(Cursor::new(out));
            a.entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    (name, data)
                })
                .collect()
        };
        assert_eq!(
            read("/abs", "p", true),
            [("p".to_string(), b"inside".to_vec())]
        );
        assert_eq!(
            read("data/up", "p", true),
            [("p".to_string(), b"inside".to_vec())]
        );
        assert_eq!(read("../../abs", "p", false)[0].0, "p");
        assert_eq!(
            read("datalink/sub", "sub", false),
            [
                ("sub/".to_string(), vec![]),
                ("sub/f".to_string(), b"f".to_vec())
            ]
        );
        assert_eq!(
            read("/datalink/./sub/..", "", false),
            [
                ("sub/".to_string(), vec![]),
                ("sub/f".to_string(), b"f".to_vec()),
                ("up".to_string(), vec![])
            ]
        );
        assert_eq!(read("/", "", false).len(), 8);
        let mut sink = Vec::new();
        assert!(write_path(&root, Path::new("missing"), "x", false, &mut sink).is_err());
        assert!(write_path(&root, Path::new("etc/passwd/x"), "x", false, &mut sink).is_err());
    }
}
