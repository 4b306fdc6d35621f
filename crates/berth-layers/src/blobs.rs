//! The content-addressed blob store: `<root>/blobs/sha256/<hex>`, written through `<root>/tmp`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_types::Digest;
use sha2::{Digest as _, Sha256};

use crate::fsutil::{create_temp_file, TempFile};
use crate::{io_err, LayerError};

const CHUNK: usize = 256 * 1024;

/// Verified blobs by digest. Every blob is hashed on the way in; a file under
/// `blobs/sha256/` always holds the content its name says.
#[derive(Debug, Clone)]
pub struct BlobStore {
    /// `<root>/blobs/sha256`
    blobs: PathBuf,
    /// `<root>/tmp`, on the same filesystem so a finished blob is renamed into place.
    tmp: PathBuf,
}

impl BlobStore {
    /// Opens the store under `root`, creating `<root>/blobs/sha256` and `<root>/tmp` if missing.
    pub fn open(root: &Path) -> Result<Self, LayerError> {
        let blobs = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        for dir in [&blobs, &tmp] {
            fs::create_dir_all(dir)
                .map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
        }
        Ok(BlobStore { blobs, tmp })
    }

    /// Where the blob `d` is (or would be) stored.
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        fs::symlink_metadata(self.path(d)).is_ok_and(|m| m.is_file())
    }

    /// Streams `r` into a temp file under `<root>/tmp`, hashing as it goes, fsyncs it, and
    /// renames it into place. If `expected` is given and the content hashes otherwise, the
    /// temp file is removed and nothing is stored. Storing a blob that is already present
    /// succeeds (it is replaced atomically by identical content). Returns the digest and
    /// the size in bytes.
    pub fn ingest(
        &self,
        mut r: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), LayerError> {
        let (mut file, temp) = create_temp_file(&self.tmp)?;
        let write_err = |e: io::Error| io_err(format!("cannot write {}", temp.path().display()), e);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let what = match expected {
                        Some(d) => format!("cannot read blob {d}"),
                        None => "cannot read blob content".to_string(),
                    };
                    return Err(io_err(what, e));
                }
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(write_err)?;
            size += n as u64;
        }
        file.sync_all().map_err(write_err)?;
        drop(file);
        let digest = Digest::from_hasher(hasher);
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(LayerError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let dest = self.path(&digest);
        temp.persist(&dest)?;
        // Make the rename itself durable before a caller records the blob.
        File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(format!("cannot sync {}", self.blobs.display()), e))?;
        Ok((digest, size))
    }

    /// Like [`BlobStore::ingest`], and `consume` reads the content as it
    /// passes: it gets a reader of `r` that hashes and stores what it
    /// reads (a layer unpacked as it downloads). What `consume` leaves is
    /// read to the end before the digest is checked; if `consume` fails or
    /// the digest differs, nothing is stored. When `consume` fails on
    /// content that does not match `expected`, the mismatch is the error. Returns the digest, the size
    /// and what `consume` returned.
    pub fn ingest_with<T, E: From<LayerError>>(
        &self,
        r: impl Read,
        expected: Option<&Digest>,
        consume: impl FnOnce(&mut dyn Read) -> Result<T, E>,
    ) -> Result<(Digest, u64, T), E> {
        let (file, temp) = create_temp_file(&self.tmp)?;
        let mut tee = Tee {
            inner: r,
            file,
            hasher: Sha256::new(),
            size: 0,
        };
        let consumed = consume(&mut tee);
        let mut buf = vec![0u8; CHUNK];
        let out = match consumed {
            Ok(out) => out,
            Err(e) => {
                // Content that is not what its digest says is the cause to
                // report, whatever reading it did to `consume`.
                if let Some(expected) = expected {
                    if io::copy(&mut tee, &mut io::sink()).is_ok() {
                        let actual = Digest::from_hasher(tee.hasher);
                        if actual != *expected {
                            return Err(LayerError::DigestMismatch {
                                expected: expected.clone(),
                                actual,
                            }
                            .into());
                        }
                    }
                }
                return Err(e);
            }
        };
        loop {
            match tee.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let what = match expected {
                        Some(d) => format!("cannot read blob {d}"),
                        None => "cannot read blob content".to_string(),
                    };
                    return Err(io_err(what, e).into());
                }
            }
        }
        let Tee {
            file, hasher, size, ..
        } = tee;
        file.sync_all()
            .map_err(|e| io_err(format!("cannot write {}", temp.path().display()), e))?;
        drop(file);
        let digest = Digest::from_hasher(hasher);
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(LayerError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                }
                .into());
            }
        }
        temp.persist(&self.path(&digest))?;
        File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(format!("cannot sync {}", self.blobs.display()), e))?;
        Ok((digest, size, out))
    }

    /// Like [`BlobStore::ingest_with`] for a download that may resume one
    /// an earlier process began: the bytes so far are kept in
    /// `<root>/tmp/partial-<hex>` (locked while a process writes it), and
    /// `fetch(offset)` gives the rest from `offset`. `consume` still reads
    /// the whole content from its first byte (the kept part from the disk),
    /// and the whole is hashed. A download that fails keeps its part for
    /// the next try; content that does not match `expected` is removed.
    /// When another process holds the part, this one downloads on its own.
    pub fn ingest_resumable<R: Read, T, E: From<LayerError>>(
        &self,
        expected: &Digest,
        fetch: impl FnOnce(u64) -> Result<R, E>,
        consume: impl FnOnce(&mut dyn Read) -> Result<T, E>,
    ) -> Result<(Digest, u64, T), E> {
        use std::os::unix::fs::OpenOptionsExt;
        let part = self.tmp.join(format!("partial-{}", expected.hex()));
        let file = fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&part)
            .map_err(|e| io_err(format!("cannot open {}", part.display()), e))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            drop(file);
            let r = fetch(0)?;
            return self.ingest_with(r, Some(expected), consume);
        }
        let have = file
            .metadata()
            .map_err(|e| io_err(format!("cannot stat {}", part.display()), e))?
            .len();
        let kept = File::open(&part)
            .map_err(|e| io_err(format!("cannot open {}", part.display()), e))?
            .take(have);
        let remove_part = || {
            let _ = fs::remove_file(&part);
        };
        let remote = fetch(have)?;
        let mut tee = Resume {
            kept,
            remote,
            file: &file,
            hasher: Sha256::new(),
            size: 0,
        };
        let consumed = consume(&mut tee);
        let out = match consumed {
            Ok(out) => out,
            Err(e) => {
                // As ingest_with: a mismatch is the cause to report (and
                // the part is worthless); any other failure keeps the part.
                if io::copy(&mut tee, &mut io::sink()).is_ok() {
                    let actual = Digest::from_hasher(tee.hasher);
                    if actual != *expected {
                        remove_part();
                        return Err(LayerError::DigestMismatch {
                            expected: expected.clone(),
                            actual,
                        }
                        .into());
                    }
                }
                return Err(e);
            }
        };
        if let Err(e) = io::copy(&mut tee, &mut io::sink()) {
            return Err(io_err(format!("cannot read blob {expected}"), e).into());
        }
        let Resume { hasher, size, .. } = tee;
        let digest = Digest::from_hasher(hasher);
        if digest != *expected {
            remove_part();
            return Err(LayerError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            }
            .into());
        }
        file.sync_all()
            .map_err(|e| io_err(format!("cannot write {}", part.display()), e))?;
        fs::rename(&part, self.path(&digest))
            .map_err(|e| io_err(format!("cannot move {} to its place", part.display()), e))?;
        File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(format!("cannot sync {}", self.blobs.display()), e))?;
        Ok((digest, size, out))
    }

    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest, LayerError> {
        self.ingest(data, None).map(|(d, _)| d)
    }

    /// Reads a whole blob (for manifests and configs, not layers) and verifies its digest.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, LayerError> {
        let data = match fs::read(self.path(d)) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayerError::BlobNotFound(d.clone()))
            }
            Err(e) => return Err(io_err(format!("cannot read blob {d}"), e)),
        };
        let actual = Digest::of_bytes(&data);
        if actual != *d {
            return Err(LayerError::BlobCorrupt {
                digest: d.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Removes the blob `d`; removing an absent blob succeeds.
    pub fn remove(&self, d: &Digest) -> Result<(), LayerError> {
        match fs::remove_file(self.path(d)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("cannot remove blob {d}"), e)),
        }
    }
}

/// A reader that hashes and writes to a file whatever passes through it.
struct Tee<R> {
    inner: R,
    file: File,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.file.write_all(&buf[..n])?;
        self.size += n as u64;
        Ok(n)
    }
}

/// The kept part of a download read back, then the rest as it arrives
/// (appended to the part): all of it hashed.
struct Resume<'f, K, R> {
    kept: K,
    remote: R,
    file: &'f File,
    hasher: Sha256,
    size: u64,
}

impl<K: Read, R: Read> Read for Resume<'_, K, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.kept.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            self.size += n as u64;
            return Ok(n);
        }
        let n = self.remote.read(buf)?;
        self.hasher.update(&buf[..n]);
        let mut f = self.file;
        f.write_all(&buf[..n])?;
        self.size += n as u64;
        Ok(n)
    }
}

impl TempFile {
    /// Renames the temp file to `dest`; on failure it is removed.
    fn persist(self, dest: &Path) -> Result<(), LayerError> {
        fs::rename(self.path(), dest).map_err(|e| {
            io_err(
                format!(
                    "cannot move {} to {}",
                    self.path().display(),
                    dest.display()
                ),
                e,
            )
        })?;
        self.disarm();
        Ok(())
    }
}
