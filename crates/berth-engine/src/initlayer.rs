//! The init layer: what Docker puts between an image and a container's
//! writable layer (`/.dockerenv`, the mount points of `/etc/hostname`,
//! `/etc/hosts`, `/etc/resolv.conf` and `/dev/console`, `/dev/pts`,
//! `/dev/shm`, `/proc`, `/sys`, and `/etc/mtab` → `/proc/mounts`), so that
//! the container, `export` and `cp` see what they see under Docker and no
//! mount point is ever written into the container's own layer.
//!
//! Docker makes one per container; its content depends only on which of
//! those paths the image already has, so berth keeps one read-only
//! directory per variant (`<root>/init/<key>`) and shares it as the
//! topmost lower layer of every container whose image gives that variant:
//! no disk and no inodes per container.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{io_ctx, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Link(&'static str),
}

/// Docker's init layer (moby `daemon/initlayer`), parents before children.
const ENTRIES: &[(&str, Kind)] = &[
    (".dockerenv", Kind::File),
    ("dev", Kind::Dir),
    ("dev/console", Kind::File),
    ("dev/pts", Kind::Dir),
    ("dev/shm", Kind::Dir),
    ("etc", Kind::Dir),
    ("etc/hostname", Kind::File),
    ("etc/hosts", Kind::File),
    ("etc/mtab", Kind::Link("/proc/mounts")),
    ("etc/resolv.conf", Kind::File),
    ("proc", Kind::Dir),
    ("sys", Kind::Dir),
];

/// What the image has at a path, looking through its layer directories
/// (topmost first) without following any link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Nothing,
    Dir,
    Other,
}

fn found_in(layers: &[PathBuf], rel: &str) -> Found {
    let mut seen = Found::Nothing;
    for layer in layers {
        // Every proper parent must be a real directory in this layer (a
        // symlinked parent is the image's business: never looked through).
        let mut p = layer.clone();
        let mut blocked = false;
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            p.push(part);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Found::Other,
                Err(_) => {
                    blocked = true;
                    break;
                }
            }
        }
        if blocked {
            continue;
        }
        p.push(parts[parts.len() - 1]);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => seen = Found::Dir,
            Ok(_) => return Found::Other,
            Err(_) => {}
        }
    }
    seen
}

/// The entries this image needs: a directory where the image has none or
/// one (children go into it), a file or link only where the image has
/// nothing; nothing under a path the image has as something else (Docker
/// leaves an image's `/etc` symlink or `/dev/shm` link alone).
fn entries_for(layers: &[PathBuf]) -> Vec<(&'static str, Kind)> {
    let mut out: Vec<(&'static str, Kind)> = Vec::new();
    let mut skipped: Vec<&str> = Vec::new();
    for &(rel, kind) in ENTRIES {
        if skipped
            .iter()
            .any(|s| rel.starts_with(s) && rel.as_bytes().get(s.len()) == Some(&b'/'))
        {
            continue;
        }
        let keep = matches!(
            (found_in(layers, rel), kind),
            (Found::Nothing, _) | (Found::Dir, Kind::Dir)
        );
        if keep {
            out.push((rel, kind));
        } else {
            skipped.push(rel);
        }
    }
    out
}

/// The shared init layer for an image whose layer directories are
/// `layers` (topmost first), made once under `init_root`.
pub(crate) fn init_layer(init_root: &Path, layers: &[PathBuf]) -> Result<PathBuf> {
    let entries = entries_for(layers);
    let key: String = {
        let mut text = String::new();
        for (rel, kind) in &entries {
            text.push_str(&format!("{rel} {kind:?}\n"));
        }
        berth_types::Digest::of_bytes(text.as_bytes()).hex()[..16].to_string()
    };
    let dir = init_root.join(&key);
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(init_root).map_err(io_ctx("creating the init layers' directory"))?;
    let tmp = init_root.join(format!(
        "tmp-{}-{}",
        std::process::id(),
        hex::encode(&crate::random_bytes()[..8])
    ));
    let made = (|| -> std::io::Result<()> {
        std::fs::create_dir(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        for (rel, kind) in &entries {
            let p = tmp.join(rel);
            match kind {
                Kind::Dir => {
                    std::fs::create_dir(&p)?;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
                }
                // Docker's are empty files with mode 0755.
                Kind::File => {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o755)
                        .open(&p)?;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
                }
                Kind::Link(target) => std::os::unix::fs::symlink(target, &p)?,
            }
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io_ctx("making an init layer")(e));
    }
    // Another berth may have made the same one meanwhile: either is it.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(io_ctx("making an init layer")(std::io::Error::other(
                format!("cannot place {}", dir.display()),
            )));
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_any_gets_dockers_whole_init_layer() {
        let layer = tempfile::tempdir().unwrap();
        std::fs::create_dir(layer.path().join("bin")).unwrap();
        let got: Vec<&str> = entries_for(&[layer.path().to_path_buf()])
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(got, ENTRIES.iter().map(|e| e.0).collect::<Vec<_>>());
    }

    #[test]
    fn what_the_image_has_is_left_alone() {
        let top = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        // A symlinked /etc (in the lower layer), a file at /dev/shm, a real /proc.
        std::os::unix::fs::symlink("/usr/etc", base.path().join("etc")).unwrap();
        std::fs::create_dir(top.path().join("dev")).unwrap();
        std::fs::write(top.path().join("dev/shm"), "").unwrap();
        std::fs::create_dir(base.path().join("proc")).unwrap();
        std::fs::write(top.path().join(".dockerenv"), "").unwrap();
        let layers = [top.path().to_path_buf(), base.path().to_path_buf()];
        let got: Vec<&str> = entries_for(&layers).iter().map(|e| e.0).collect();
        assert_eq!(got, ["dev", "dev/console", "dev/pts", "proc", "sys"]);
    }

    #[test]
    fn one_shared_directory_per_variant() {
        let root = tempfile::tempdir().unwrap();
        let layer = tempfile::tempdir().unwrap();
        let layers = [layer.path().to_path_buf()];
        let a = init_layer(root.path(), &layers).unwrap();
        let b = init_layer(root.path(), &layers).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
        let m = std::fs::symlink_metadata(a.join(".dockerenv")).unwrap();
        assert!(m.is_file() && m.len() == 0 && m.permissions().mode() & 0o777 == 0o755);
        assert_eq!(
            std::fs::read_link(a.join("etc/mtab")).unwrap(),
            PathBuf::from("/proc/mounts")
        );
    }
}
