//! `save` and `load`: Docker's archive format and the OCI image layout.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use anyhow::{bail, Context, Result};
use berth_engine::Engine;

use crate::cli::{LoadArgs, SaveArgs};
use crate::output::OutputFile;

/// Output buffer: headers and small blobs go out in large writes.
const BUF: usize = 1 << 20;

/// `save [-o FILE] IMAGE...`. A file is written under a temporary name and
/// renamed when complete ([`OutputFile`]), so an interrupted or failed save
/// never leaves a partial archive under the name asked for, nor removes
/// what was there.
pub fn save(e: &Engine, a: &SaveArgs) -> Result<i32> {
    // `-o ""` is standard output, as with Docker.
    let Some(path) = a.output.as_ref().filter(|p| !p.as_os_str().is_empty()) else {
        if rustix::termios::isatty(io::stdout()) {
            // The docker CLI's own check: its words alone, exit 1.
            bail!(crate::usage::CliError::Bare {
                message: "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                    .into(),
                code: 1
            });
        }
        let stdout = io::stdout();
        let mut out = BufWriter::with_capacity(BUF, stdout.lock());
        e.save(&a.images, &mut out)?;
        out.flush().context("cannot write the archive")?;
        return Ok(0);
    };
    let file = OutputFile::create(path, "failed to save image")?;
    let mut out = BufWriter::with_capacity(BUF, file.file());
    e.save(&a.images, &mut out)?;
    out.flush().context("cannot write the archive")?;
    drop(out);
    file.commit()?;
    Ok(0)
}

/// `load [-i FILE] [-q]`: Docker prints the loaded images with or without `-q`
/// (which only hides progress, and berth shows none).
pub fn load(e: &mut Engine, a: &LoadArgs) -> Result<i32> {
    let loaded = match &a.input {
        Some(path) => {
            let file = File::open(path).map_err(|err| crate::commands::open_error(path, &err))?;
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
