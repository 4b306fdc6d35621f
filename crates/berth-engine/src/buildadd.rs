//! What `ADD` does beyond `COPY`: a local archive (tar, plain or gzip,
//! bzip2, xz, zstd, told by its content as Docker tells it) is extracted
//! into the destination, and an http(s) URL is downloaded.
//!
//! An archive is unpacked by berth-layers' layer extraction into a fresh
//! directory under the store's `tmp/` (`..` and hard links out refused,
//! writes through symlinks kept inside, no device nodes), and that directory is then one more source tree of the step.
//! A download is streamed to a file in such a directory, hashed on the way
//! for `--checksum`; nothing of a failed download stays.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::buildfs::{Context, Tree};
use crate::dockerignore::Ignore;

/// A directory under the store's `tmp/` that a step reads from: removed
/// when dropped (collected after a crash).
pub(crate) struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = berth_layers::remove_layer_dir(&self.dir);
    }
}

/// Whether the file at `path` of `tree` is an archive ADD extracts: its
/// (decompressed) stream starts with a valid tar header, as Docker's
/// `isArchivePath` asks of Go's tar reader. An empty tar is not one.
pub(crate) fn is_archive(tree: &dyn Tree, path: &str) -> bool {
    let Ok(f) = tree.open(path) else {
        return false;
    };
    let Ok((_, r)) = berth_layers::decompress(f) else {
        return false;
    };
    let mut a = tar::Archive::new(r);
    let first = a.entries().ok().and_then(|mut e| e.next());
    matches!(first, Some(Ok(_)))
}

/// Extracts the archive at `path` of `tree` into a new directory under
/// `tmp`, as `berth import` extracts a layer, and opens it as a tree.
pub(crate) fn extract(
    tree: &dyn Tree,
    path: &str,
    tmp: &Path,
) -> Result<(Scratch, Context), String> {
    let f = tree.open(path).map_err(|e| e.to_string())?;
    let (_, r) = berth_layers::decompress(f).map_err(|e| e.to_string())?;
    let (dir, _) = berth_layers::unpack_to_temp(
        r,
        tmp,
        &berth_layers::ApplyOptions {
            // A `.wh.` name cannot be a file in a layer (every reader of
            // the layer takes it for a whiteout, which could hide what the
            // image has below): such entries are left out.
            whiteouts: berth_layers::WhiteoutMode::Skip,
            allow_devices: false,
            no_overwrite_dir_non_dir: false,
        },
    )
    .map_err(|e| e.to_string())?;
    let scratch = Scratch { dir };
    let ctx = Context::open(scratch.path(), &Ignore::default()).map_err(|e| e.to_string())?;
    Ok((scratch, ctx))
}

/// Whether an ADD source is a URL to download.
pub(crate) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// `--checksum=sha256:HEX`, checked before anything is downloaded.
pub(crate) fn parse_checksum(s: &str) -> Result<[u8; 32], String> {
    let Some((alg, hex_part)) = s.split_once(':') else {
        return Err(format!("invalid checksum digest format {s:?}"));
    };
    if alg != "sha256" {
        return Err(format!(
            "unsupported checksum algorithm {alg:?} (berth verifies sha256)"
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out)
        .map_err(|_| format!("invalid checksum digest {s:?}: want sha256: and 64 hex digits"))?;
    Ok(out)
}

/// The file name a download gets: the URL's last path component, as
/// BuildKit names it (`__unnamed__` when the path has none).
pub(crate) fn url_file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(b) if !b.is_empty() && b != "." && b != ".." => b.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

/// Downloads `url` into a new directory under `tmp` as `name`, mode 0600,
/// its mtime the response's Last-Modified (else now), and opens the
/// directory as a tree. With `checksum`, content that hashes otherwise is
/// an error and nothing is kept.
pub(crate) fn download(
    url: &str,
    name: &str,
    checksum: Option<&[u8; 32]>,
    tmp: &Path,
) -> Result<(Scratch, Context), String> {
    std::fs::create_dir_all(tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    let dir = berth_layers::create_temp_dir(tmp).map_err(|e| e.to_string())?;
    let scratch = Scratch { dir };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| {
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
        });
    let path = scratch.path().join(name);
    let mut file = File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut body = resp.into_body().into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the response: {e}")),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let got: [u8; 32] = hasher.finalize().into();
    if let Some(want) = checksum {
        if &got != want {
            return Err(format!(
                "digest mismatch sha256:{}: sha256:{}",
                hex::encode(got),
                hex::encode(want)
            ));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
    if let Some(t) = modified {
        file.set_modified(t)
            .map_err(|e| format!("setting the time of {}: {e}", path.display()))?;
    }
    drop(file);
    let ctx = Context::open(scratch.path(), &Ignore::default()).map_err(|e| e.to_string())?;
    Ok((scratch, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names_are_the_last_path_component() {
        assert_eq!(url_file_name("http://h:1/a/b.tar.gz"), "b.tar.gz");
        assert_eq!(url_file_name("https://h/a/b?x=1#f"), "b");
        assert_eq!(url_file_name("http://h"), "__unnamed__");
        assert_eq!(url_file_name("http://h/"), "__unnamed__");
        assert_eq!(url_file_name("http://h/dir/"), "dir");
    }

    #[test]
    fn archives_are_told_by_content() {
        use std::io::Write as _;
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let gz = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        };
        let long_text = "not a tar header\n".repeat(64);
        for (name, data, want) in [
            ("plain.txt", tar.clone(), true),
            ("gz.bin", gz(&tar), true),
            ("text.tar.gz", gz(long_text.as_bytes()), false),
            ("text.tar", long_text.into_bytes(), false),
            // An empty tar has no first entry: Docker copies it as a file.
            ("empty.tar", vec![0u8; 1024], false),
            ("short", b"BZh".to_vec(), false),
        ] {
            std::fs::write(d.path().join(name), data).unwrap();
            let c = Context::open(d.path(), &Ignore::default()).unwrap();
            assert_eq!(is_archive(&c, name), want, "{name}");
        }
    }

    #[test]
    fn checksums_are_sha256_with_64_hex_digits() {
        let hex64 = "ab".repeat(32);
        assert_eq!(
            parse_checksum(&format!("sha256:{hex64}")).unwrap(),
            [0xab; 32]
        );
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum(&format!("md5:{hex64}")).is_err());
        assert!(parse_checksum(&hex64).is_err());
    }
}
