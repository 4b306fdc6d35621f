//! Path handling inside a layer root: lexical normalisation of tar member names and
//! resolution of a parent directory with `RESOLVE_IN_ROOT` semantics.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::{Errno, Result};

/// Symlinks followed while resolving one path, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: u32 = 40;

/// Mode of a parent directory that the layer does not list itself.
pub(crate) const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Normalises a tar member name like tar does: a leading `/` is stripped, `.` and empty
/// components are dropped and `..` removes the previous component. Returns the
/// components joined by `/` (empty for the root itself), or `None` if a `..` would climb
/// above the root.
pub(crate) fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join(&b'/'))
}

/// Splits a normalised, non-empty path into its parent (possibly empty) and its last component.
pub(crate) fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A directory inside a layer root: the root itself or a directory resolved in it.
pub(crate) enum DirFd<'a> {
    Root(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl AsFd for DirFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(fd) => *fd,
            DirFd::Owned(fd) => fd.as_fd(),
        }
    }
}

/// Resolves the directory `path` (normalised, relative) inside `root`, following
/// symlinks as if `root` were `/`, so the result is always inside `root`. With `create`,
/// missing directories are made one component at a time (mode 0755).
pub(crate) fn resolve_dir<'a>(
    root: BorrowedFd<'a>,
    path: &[u8],
    create: bool,
) -> Result<DirFd<'a>> {
    if path.is_empty() {
        return Ok(DirFd::Root(root));
    }
    // Fast path: one syscall when the directory exists. On any error (missing
    // component, no openat2 in this kernel or seccomp profile, EAGAIN after a
    // concurrent rename) the walk below gives the authoritative answer.
    let fast = rfs::openat2(
        root,
        path,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    );
    match fast {
        Ok(fd) => Ok(DirFd::Owned(fd)),
        Err(_) => walk_in_root(root, path, create),
    }
}

/// `RESOLVE_IN_ROOT` done in user space: each component is looked up without following
/// symlinks; a symlink's target is spliced into the remaining components (an absolute
/// target restarts at `root`), and `..` never climbs above `root`.
fn walk_in_root<'a>(root: BorrowedFd<'a>, path: &[u8], create: bool) -> Result<DirFd<'a>> {
    // Directories from `root` down to the current one; `..` pops.
    let mut stack: Vec<OwnedFd> = Vec::new();
    // Components still to resolve, next one last.
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
                stack.pop();
                continue;
            }
            _ => {}
        }
        let cur = stack.last().map_or(root, |fd| fd.as_fd());
        let kind = match rfs::statat(cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
            Err(Errno::NOENT) if create => None,
            Err(e) => return Err(e),
        };
        let fd = match kind {
            None => make_dir(cur, &c)?,
            Some(FileType::Symlink) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP);
                }
                let target = rfs::readlinkat(cur, c.as_slice(), Vec::new())?;
                let target = target.as_bytes();
                if target.starts_with(b"/") {
                    stack.clear();
                }
                pending.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
                continue;
            }
            Some(FileType::Directory) => rfs::openat(
                cur,
                c.as_slice(),
                OFlags::DIRECTORY | OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
            Some(_) => return Err(Errno::NOTDIR),
        };
        stack.push(fd);
    }
    Ok(stack.pop().map_or(DirFd::Root(root), DirFd::Owned))
}

/// Creates the directory `name` in `dir` with [`IMPLICIT_DIR_MODE`] whatever the umask,
/// and returns it opened without following a symlink.
fn make_dir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd> {
    match rfs::mkdirat(dir, name, Mode::from_raw_mode(IMPLICIT_DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rfs::fchmod(&fd, Mode::from_raw_mode(IMPLICIT_DIR_MODE))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_and_refuses_escapes() {
        assert_eq!(normalize(b"/abs/path").as_deref(), Some(&b"abs/path"[..]));
        assert_eq!(normalize(b"./a//b/./c/").as_deref(), Some(&b"a/b/c"[..]));
        assert_eq!(normalize(b"a/../b").as_deref(), Some(&b"b"[..]));
        assert_eq!(normalize(b"./").as_deref(), Some(&b""[..]));
        assert_eq!(normalize(b"../x"), None);
        assert_eq!(normalize(b"a/../../x"), None);
        assert_eq!(normalize(b"/../x"), None);
    }

    fn ino_of(fd: &DirFd<'_>) -> u64 {
        rfs::fstat(fd).unwrap().st_ino
    }

    fn ino_at(p: &std::path::Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
    }

    /// The user-space walk is the fallback where openat2 is missing: it must contain
    /// symlinks exactly as RESOLVE_IN_ROOT does.
    #[test]
    fn walk_in_root_contains_symlinks() {
        let outside = tempfile::TempDir::new().unwrap();
        let dir = tempfile::TempDir::new().unwrap();
        let root = rfs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let root = root.as_fd();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", dir.path().join("up")).unwrap();
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
        std::fs::write(dir.path().join("file"), b"").unwrap();

        let fd = walk_in_root(root, b"abs/sub", true).unwrap();
        let inside = dir
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("sub");
        assert_eq!(ino_of(&fd), ino_at(&inside));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        let fd = walk_in_root(root, b"up/x/../y", true).unwrap();
        assert_eq!(ino_of(&fd), ino_at(&dir.path().join("y")));
        assert!(dir.path().join("x").is_dir());
        let fd = walk_in_root(root, b"up", false).unwrap();
        assert_eq!(ino_of(&fd), ino_at(dir.path()));

        assert_eq!(walk_in_root(root, b"loop/x", true).err(), Some(Errno::LOOP));
        assert_eq!(
            walk_in_root(root, b"file/x", true).err(),
            Some(Errno::NOTDIR)
        );
        assert_eq!(
            walk_in_root(root, b"missing", false).err(),
            Some(Errno::NOENT)
        );
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn split_parent_of_top_level_is_empty() {
        assert_eq!(split_parent(b"a"), (&b""[..], &b"a"[..]));
        assert_eq!(split_parent(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
    }
}
