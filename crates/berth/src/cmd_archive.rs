//! `save` and `load`: Docker's archive format and the OCI image layout.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_engine::Engine;

use crate::cli::{LoadArgs, SaveArgs};

/// Output buffer: headers and small blobs go out in large writes.
const BUF: usize = 1 << 20;

/// `save [-o FILE] IMAGE...`. A file is written under a temporary name and
/// renamed when complete, so an interrupted save never leaves a partial
/// archive under the name asked for.
pub fn save(e: &Engine, a: &SaveArgs) -> Result<i32> {
    let Some(path) = &a.output else {
        if rustix::termios::isatty(io::stdout()) {
            bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        }
        let stdout = io::stdout();
        let mut out = BufWriter::with_capacity(BUF, stdout.lock());
        e.save(&a.images, &mut out)?;
        out.flush().context("cannot write the archive")?;
        return Ok(0);
    };
    let tmp = temp_name(path);
    let res = (|| -> Result<()> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .with_context(|| format!("failed to save image: open {}", path.display()))?;
        let mut out = BufWriter::with_capacity(BUF, file);
        e.save(&a.images, &mut out)?;
        let file = out
            .into_inner()
            .map_err(|err| err.into_error())
            .context("cannot write the archive")?;
        file.sync_all().context("cannot write the archive")?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("failed to save image: rename to {}", path.display()))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|()| 0)
}

/// `.NAME.berth-tmp-PID` next to `path` (same filesystem, so the rename is atomic).
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    path.with_file_name(format!(".{name}.berth-tmp-{}", std::process::id()))
}

/// `load [-i FILE] [-q]`: Docker prints the loaded images with or without `-q`
/// (which only hides progress, and berth shows none).
pub fn load(e: &mut Engine, a: &LoadArgs) -> Result<i32> {
    let loaded = match &a.input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
            e.load(file)?
        }
        None => {
            if rustix::termios::isatty(io::stdin()) {
                bail!("requested load from stdin, but stdin is empty");
            }
            e.load(io::stdin())?
        }
    };
    let mut out = io::stdout().lock();
    for l in loaded {
        writeln!(out, "{l}")?;
    }
    Ok(0)
}
