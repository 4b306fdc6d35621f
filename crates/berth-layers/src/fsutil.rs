//! Layer directories on the host: all-or-nothing imports through `tmp-*` directories,
//! removal and sizing that never follow a symlink, and collection of crash leftovers.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::{Errno, Result as SysResult};
use rustix::process::Pid;

use crate::apply::{apply_layer, ApplyOptions, LayerStats};
use crate::resolve::IMPLICIT_DIR_MODE;
use crate::{io_err, LayerError};

const TEMP_PREFIX: &str = "tmp-";
/// How many fresh names to try before giving up on creating a temp file or directory.
const TEMP_ATTEMPTS: usize = 16;
/// A leftover older than this is collected even if its pid is alive again (pid reuse).
const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// `tmp-<pid>-<16 hex digits>`: the pid lets [`collect_garbage`] leave a live process's
/// work alone.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        h.write_u128(now.as_nanos());
    }
    format!("{TEMP_PREFIX}{}-{:016x}", std::process::id(), h.finish())
}

/// The pid in a name made by [`temp_name`].
fn temp_name_pid(name: &str) -> Option<i32> {
    let (pid, random) = name.strip_prefix(TEMP_PREFIX)?.split_once('-')?;
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// A temp file that is removed when dropped, unless disarmed.
pub(crate) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover is collected by `collect_garbage`.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates a new, uniquely named temp file in `dir`.
pub(crate) fn create_temp_file(dir: &Path) -> Result<(File, TempFile), LayerError> {
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let path = dir.join(temp_name());
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(file) => return Ok((file, TempFile { path, armed: true })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(io_err(
                    format!("cannot create a temp file in {}", dir.display()),
                    e,
                ))
            }
        }
    }
    Err(io_err(
        format!("cannot create a temp file in {}", dir.display()),
        last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()),
    ))
}

/// Creates a new, uniquely named `tmp-<pid>-<random>` directory in `dir`
/// (collected by [`collect_garbage`] once its process is gone).
pub fn create_temp_dir(dir: &Path) -> Result<PathBuf, LayerError> {
    let err = |e| {
        io_err(
            format!("cannot create a temp directory in {}", dir.display()),
            e,
        )
    };
    for _ in 0..TEMP_ATTEMPTS {
        let path = dir.join(temp_name());
        match fs::create_dir(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(IMPLICIT_DIR_MODE))
                    .map_err(err)?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err(e)),
        }
    }
    Err(err(io::ErrorKind::AlreadyExists.into()))
}

/// Extracts a layer into a fresh directory `<layers_root>/tmp-<pid>-<random>` and returns
/// it with the layer's stats; the caller names the final directory from the diff_id and
/// calls [`commit_temp`]. On any error the temp directory is removed completely.
pub fn unpack_to_temp(
    tar: impl Read,
    layers_root: &Path,
    opts: &ApplyOptions,
) -> Result<(PathBuf, LayerStats), LayerError> {
    fs::create_dir_all(layers_root)
        .map_err(|e| io_err(format!("cannot create {}", layers_root.display()), e))?;
    let temp = create_temp_dir(layers_root)?;
    match apply_layer(tar, &temp, opts) {
        Ok(stats) => Ok((temp, stats)),
        Err(e) => {
            // Best effort: what cannot be removed now is collected later.
            let _ = remove_layer_dir(&temp);
            Err(e)
        }
    }
}

/// Renames a finished temp directory to `final_dir`. If `final_dir` already exists (the
/// same layer, imported concurrently or before), the temp directory is removed instead.
pub fn commit_temp(temp: &Path, final_dir: &Path) -> Result<(), LayerError> {
    let err = |e: io::Error| {
        io_err(
            format!("cannot move {} to {}", temp.display(), final_dir.display()),
            e,
        )
    };
    match rfs::renameat_with(rfs::CWD, temp, rfs::CWD, final_dir, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => remove_layer_dir(temp),
        // A filesystem without RENAME_NOREPLACE.
        Err(Errno::INVAL | Errno::NOSYS) => {
            if fs::symlink_metadata(final_dir).is_ok() {
                return remove_layer_dir(temp);
            }
            match fs::rename(temp, final_dir) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                    remove_layer_dir(temp)
                }
                Err(e) => Err(err(e)),
            }
        }
        Err(e) => Err(err(e.into())),
    }
}

/// Removes `dir` and everything in it (`rm -rf`), never following a symlink: a symlink
/// inside is removed, not its target. `dir` itself may also be a file or a symlink, which
/// is unlinked. Removing something absent succeeds.
pub fn remove_layer_dir(dir: &Path) -> Result<(), LayerError> {
    let err = |e: Errno| io_err(format!("cannot remove {}", dir.display()), e);
    let Some(name) = dir.file_name() else {
        return Err(err(Errno::INVAL));
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent_fd = match rfs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    match remove_tree_at(parent_fd.as_fd(), name) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Removes `name` in `dir` recursively without following symlinks.
pub(crate) fn remove_tree_at<P: rustix::path::Arg>(dir: BorrowedFd<'_>, name: P) -> SysResult<()> {
    name.into_with_c_str(|name| {
        match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::ISDIR) => {}
            Err(e) => return Err(e),
        }
        let fd = match rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Replaced by a non-directory meanwhile.
            Err(Errno::NOTDIR | Errno::LOOP) => return rfs::unlinkat(dir, name, AtFlags::empty()),
            Err(e) => return Err(e),
        };
        // Never empty another filesystem mounted here (a container's volume
        // seen through /proc/PID/root): refuse instead.
        if rfs::fstat(&fd)?.st_dev != rfs::fstat(dir)?.st_dev {
            return Err(Errno::XDEV);
        }
        let mut entries = rfs::Dir::new(fd)?;
        let mut names = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let n = entry.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push(n.to_owned());
            }
        }
        let inner = entries.fd()?;
        for n in names {
            match remove_tree_at(inner, n.as_c_str()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    })
}

/// Removes crash leftovers: `tmp-<pid>-*` directories in `layers_root` and `tmp-<pid>-*`
/// files in `tmp_root` (the blob store's `<root>/tmp`) whose process is gone or that are
/// older than a day. Work in progress of a live process is left alone. Errors are ignored:
/// whatever is left is tried again next time.
pub fn collect_garbage(layers_root: &Path, tmp_root: &Path) {
    for root in [layers_root, tmp_root] {
        let Ok(entries) = fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(temp_name_pid) else {
                continue;
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER);
            if old || !process_alive(pid) {
                let _ = remove_layer_dir(&entry.path());
            }
        }
    }
}

fn process_alive(pid: i32) -> bool {
    if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return true;
    }
    let Some(pid) = Pid::from_raw(pid) else {
        return false;
    };
    // EPERM still means the process exists.
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

/// Sum of the sizes (`st_size`) of what is under `dir` except directories,
/// each hard-linked inode once, without following symlinks: a symlink counts
/// the length of its target, as with Docker's. Unreadable parts count as
/// empty.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(fd) = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let mut seen = HashSet::new();
    tree_size(fd, &mut seen)
}

fn tree_size(fd: OwnedFd, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(mut entries) = rfs::Dir::new(fd) else {
        return 0;
    };
    let mut names = Vec::new();
    while let Some(Ok(entry)) = entries.read() {
        let n = entry.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    let Ok(dir) = entries.fd() else {
        return 0;
    };
    let mut total = 0u64;
    for n in names {
        let Ok(st) = rfs::statat(dir, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if let Ok(sub) = rfs::openat(
                    dir,
                    n.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    total += tree_size(sub, seen);
                }
            }
            _ => {
                if st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
                    continue;
                }
                total += u64::try_from(st.st_size).unwrap_or(0);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_carry_the_pid() {
        let name = temp_name();
        assert_eq!(temp_name_pid(&name), i32::try_from(std::process::id()).ok());
        assert_ne!(name, temp_name());
        assert_eq!(temp_name_pid("tmp-12-notrandom"), None);
        assert_eq!(temp_name_pid("sha256"), None);
    }
}
