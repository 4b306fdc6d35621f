//! Files that `save -o` and `export -o` write.
//!
//! The user's files are the user's: the path is checked first, as Docker's
//! CLI checks it (a missing parent, a directory, a symlink, a FIFO, a socket
//! or a device is refused with Docker's words and nothing is touched); the
//! data goes to a temporary file beside it, and only a complete file is
//! renamed onto the path. A failing command removes its temporary file and
//! nothing else: what was at the path before is still there.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

/// An output file being written under a temporary name.
pub struct OutputFile {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
    /// Docker's prefix for this command's errors ("failed to save image").
    what: &'static str,
    committed: bool,
}

impl OutputFile {
    /// Checks `path` and creates the temporary file next to it (mode 0600,
    /// as Docker's). `what` prefixes every error.
    pub fn create(path: &Path, what: &'static str) -> Result<OutputFile> {
        check(path).map_err(|msg| anyhow!("{what}: {msg}"))?;
        let mut n = 0u32;
        loop {
            let tmp = temp_name(path, n);
            match File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(OutputFile {
                        path: path.to_path_buf(),
                        tmp,
                        file,
                        what,
                        committed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => {
                    return Err(e).with_context(|| format!("{what}: open {}", path.display()))
                }
            }
        }
    }

    /// The temporary file, to write the data to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Makes the data durable and puts it at the path: the rename replaces
    /// a regular file or creates a new one, never anything else (the path
    /// is checked again, in case it changed while the data was written).
    pub fn commit(mut self) -> Result<()> {
        let what = self.what;
        self.file
            .sync_all()
            .with_context(|| format!("{what}: write {}", self.path.display()))?;
        check(&self.path).map_err(|msg| anyhow!("{what}: {msg}"))?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("{what}: rename to {}", self.path.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `.NAME.berth-tmp-PID[-N]` next to `path` (same filesystem, so the rename
/// is atomic; a dot file, so it does not show in a plain `ls`).
fn temp_name(path: &Path, n: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let pid = std::process::id();
    let tmp = if n == 0 {
        format!(".{name}.berth-tmp-{pid}")
    } else {
        format!(".{name}.berth-tmp-{pid}-{n}")
    };
    path.with_file_name(tmp)
}

/// Docker's check of an output path (its CLI's `atomicwriter`), with its
/// words: the parent must be a directory; the path may be missing or a
/// regular file, and nothing else — not even a symlink, since the rename
/// would replace the link itself.
pub fn check(path: &Path) -> std::result::Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("file name is empty".into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "invalid output path: stat {}: not a directory",
                    dir.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "invalid output path: stat {}: {}",
                    dir.display(),
                    go_error_text(&e)
                ))
            }
        }
    }
    let t = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "failed to stat output path: lstat {}: {}",
                path.display(),
                go_error_text(&e)
            ))
        }
    };
    Err(if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "cannot write to a directory"
    } else if t.is_symlink() {
        "cannot write to a symbolic link directly"
    } else if t.is_fifo() {
        "cannot write to a named pipe (FIFO)"
    } else if t.is_socket() {
        "cannot write to a socket"
    } else if t.is_char_device() {
        "cannot write to a character device file"
    } else {
        "cannot write to a block device file"
    }
    .to_string())
}

/// An OS error as Go spells it: "no such file or directory".
fn go_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn docker_words_for_every_kind_of_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("reg"), "x").unwrap();
        std::fs::create_dir(p("dir")).unwrap();
        std::os::unix::fs::symlink("reg", p("link")).unwrap();
        let fifo = std::ffi::CString::new(p("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        assert_eq!(check(&p("new")), Ok(()));
        assert_eq!(check(&p("reg")), Ok(()));
        assert_eq!(check(&p("dir")).unwrap_err(), "cannot write to a directory");
        assert_eq!(
            check(&p("link")).unwrap_err(),
            "cannot write to a symbolic link directly"
        );
        assert_eq!(
            check(&p("fifo")).unwrap_err(),
            "cannot write to a named pipe (FIFO)"
        );
        assert_eq!(
            check(Path::new("/dev/null")).unwrap_err(),
            "cannot write to a character device file"
        );
        assert_eq!(
            check(&p("nodir/x")).unwrap_err(),
            format!(
                "invalid output path: stat {}: no such file or directory",
                p("nodir").display()
            )
        );
        assert_eq!(
            check(&p("reg/x")).unwrap_err(),
            format!(
                "invalid output path: stat {}: not a directory",
                p("reg").display()
            )
        );
        assert_eq!(check(Path::new("")).unwrap_err(), "file name is empty");
        assert_eq!(check(Path::new("relative-new-file")), Ok(()));
    }

    #[test]
    fn an_uncommitted_file_leaves_the_path_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, "old").unwrap();
        {
            let out = OutputFile::create(&path, "failed").unwrap();
            io::Write::write_all(&mut out.file(), b"partial").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let out = OutputFile::create(&path, "failed").unwrap();
        io::Write::write_all(&mut out.file(), b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
