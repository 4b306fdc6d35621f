//! A build context directory as `berth build` will send it to its steps:
//! every entry under the root that `.dockerignore` keeps, walked without
//! following a symlink (a link is an entry, never a way out of the
//! context), in a stable order, with what the cache will hash.

use std::path::{Path, PathBuf};

use crate::dockerignore::Ignore;

/// What kind of entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        size: u64,
    },
    Symlink {
        target: PathBuf,
    },
    /// A device, FIFO or socket: sent as what it is, never opened.
    Other,
}

/// One entry of the context, its path relative to the root (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The entries of `root` that `ignore` keeps, parents before children,
/// names sorted. A directory `ignore` excludes is entered only when a `!`
/// pattern could bring something under it back (its kept entries then come
/// with their parents, as Docker sends them).
pub fn collect(root: &Path, ignore: &Ignore) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk(root, "", ignore, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, rel: &str, ignore: &Ignore, out: &mut Vec<Entry>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let Some(n) = name.to_str() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: a name that is not UTF-8", dir.join(&name).display()),
            ));
        };
        let path = if rel.is_empty() {
            n.to_string()
        } else {
            format!("{rel}/{n}")
        };
        let full = dir.join(n);
        let m = std::fs::symlink_metadata(&full)?;
        let excluded = ignore.excludes(&path);
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File { size: m.len() }
        } else if ft.is_symlink() {
            Kind::Symlink {
                target: std::fs::read_link(&full)?,
            }
        } else {
            Kind::Other
        };
        let entry = Entry {
            path: path.clone(),
            kind: kind.clone(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
        };
        if kind == Kind::Dir {
            if excluded {
                if ignore.may_reinclude_under(&path) {
                    let before = out.len();
                    walk(&full, &path, ignore, out)?;
                    if out.len() > before {
                        out.insert(before, entry);
                    }
                }
                continue;
            }
            out.push(entry);
            walk(&full, &path, ignore, out)?;
        } else if !excluded {
            out.push(entry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_dockerignore_keeps_in_a_stable_order() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("src/deep")).unwrap();
        std::fs::create_dir_all(r.join("docs")).unwrap();
        std::fs::create_dir_all(r.join(".git/objects")).unwrap();
        std::fs::write(r.join("Dockerfile"), "FROM a\n").unwrap();
        std::fs::write(r.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(r.join("src/deep/x.o"), "obj").unwrap();
        std::fs::write(r.join("docs/a.md"), "a").unwrap();
        std::fs::write(r.join("docs/keep.md"), "k").unwrap();
        std::fs::write(r.join(".git/objects/o"), "o").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("link")).unwrap();
        let ig = Ignore::parse(".git\n**/*.o\ndocs\n!docs/keep.md\n");
        let got = collect(r, &ig).unwrap();
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Dockerfile",
                "docs",
                "docs/keep.md",
                "link",
                "src",
                "src/deep",
                "src/main.rs"
            ]
        );
        // The link is an entry, not followed.
        let link = got.iter().find(|e| e.path == "link").unwrap();
        assert_eq!(
            link.kind,
            Kind::Symlink {
                target: "/etc/passwd".into()
            }
        );
        let main = got.iter().find(|e| e.path == "src/main.rs").unwrap();
        assert_eq!(main.kind, Kind::File { size: 13 });
    }
}
