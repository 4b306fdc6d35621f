//! rpm's database as current RHEL, Fedora and SUSE keep it: `rpmdb.sqlite`, whose
//! `Packages` table holds one header blob per package.
//!
//! A header blob (rpm.org, "RPM file format", the header structure without its
//! 8-byte magic, as `headerExport` writes it): two big-endian 32-bit counts, `il`
//! index entries and `dl` bytes of data; then `il` entries of 16 bytes (tag, type,
//! offset into the data, count), then the data. Strings are NUL-terminated.
//!
//! The older databases, BerkeleyDB `Packages` and NDB `Packages.db`, are not read:
//! the scanner reports them as [`crate::Finding::Unsupported`].

use std::path::Path;

use crate::{purl, Ecosystem, Package, ParseError};

const TAG_NAME: i32 = 1000;
const TAG_VERSION: i32 = 1001;
const TAG_RELEASE: i32 = 1002;
const TAG_EPOCH: i32 = 1003;
const TAG_LICENSE: i32 = 1014;
const TAG_ARCH: i32 = 1022;
const TAG_SOURCERPM: i32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// rpm refuses headers with more entries (`HEADER_TAGS_MAX`).
const MAX_ENTRIES: usize = 0xffff;

/// The fields berth keeps from one package's header.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub epoch: Option<u32>,
    pub license: Option<String>,
    pub arch: Option<String>,
    pub source_rpm: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses a header blob.
pub(crate) fn parse_header(blob: &[u8]) -> Result<Header, ParseError> {
    let bad = |what: &str| ParseError::new(format!("rpm header: {what}"));
    let il = be32(blob, 0).ok_or_else(|| bad("truncated"))? as usize;
    let dl = be32(blob, 4).ok_or_else(|| bad("truncated"))? as usize;
    if il == 0 || il > MAX_ENTRIES {
        return Err(bad(&format!("{il} index entries")));
    }
    let data_start = 8 + il * 16;
    let data_end = data_start
        .checked_add(dl)
        .ok_or_else(|| bad("data length overflows"))?;
    if data_end > blob.len() {
        return Err(bad("truncated"));
    }
    let data = &blob[data_start..data_end];
    let mut h = Header::default();
    for i in 0..il {
        let e = 8 + i * 16;
        let (Some(tag), Some(ty), Some(off), Some(count)) = (
            be32(blob, e),
            be32(blob, e + 4),
            be32(blob, e + 8),
            be32(blob, e + 12),
        ) else {
            return Err(bad("truncated index"));
        };
        let tag = tag as i32;
        let off = off as usize;
        if !matches!(
            tag,
            TAG_NAME
                | TAG_VERSION
                | TAG_RELEASE
                | TAG_EPOCH
                | TAG_LICENSE
                | TAG_ARCH
                | TAG_SOURCERPM
        ) {
            continue;
        }
        if off >= data.len() {
            return Err(bad(&format!("tag {tag}: offset {off} past the data")));
        }
        if tag == TAG_EPOCH {
            if ty != TYPE_INT32 || count < 1 {
                return Err(bad("EPOCH is not an INT32"));
            }
            h.epoch = Some(be32(data, off).ok_or_else(|| bad("EPOCH past the data"))?);
            continue;
        }
        if !matches!(ty, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return Err(bad(&format!("tag {tag} has type {ty}, not a string")));
        }
        let rest = &data[off..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(&format!("tag {tag}: unterminated string")))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        let slot = match tag {
            TAG_NAME => &mut h.name,
            TAG_VERSION => &mut h.version,
            TAG_RELEASE => &mut h.release,
            TAG_LICENSE => &mut h.license,
            TAG_ARCH => &mut h.arch,
            _ => &mut h.source_rpm,
        };
        *slot = Some(s);
    }
    Ok(h)
}

/// The source package's name from a source rpm's file name:
/// `openssl-3.0.7-27.el9.src.rpm` → `openssl`.
fn source_name(srpm: &str) -> Option<String> {
    let base = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (nv, _release) = base.rsplit_once('-')?;
    let (n, _version) = nv.rsplit_once('-')?;
    Some(n.to_string())
}

/// The package a header describes; `None` for rpm's `gpg-pubkey` pseudo-packages.
pub(crate) fn package(
    h: Header,
    found_in: &str,
    namespace: &str,
) -> Result<Option<Package>, ParseError> {
    let name = h
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ParseError::new("rpm header without NAME"))?;
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let v = h
        .version
        .ok_or_else(|| ParseError::new(format!("rpm header of {name} without VERSION")))?;
    let vr = match &h.release {
        Some(r) => format!("{v}-{r}"),
        None => v,
    };
    let version = match h.epoch {
        Some(e) => format!("{e}:{vr}"),
        None => vr.clone(),
    };
    let epoch = h.epoch.map(|e| e.to_string()).unwrap_or_default();
    let arch = h.arch.unwrap_or_default();
    let src = h.source_rpm.as_deref().and_then(source_name);
    let srpm = h.source_rpm.clone().unwrap_or_default();
    let purl = purl::purl(
        "rpm",
        Some(namespace),
        &name,
        &vr,
        &[("arch", &arch), ("epoch", &epoch), ("upstream", &srpm)],
    );
    Ok(Some(Package {
        ecosystem: Ecosystem::Rpm,
        name,
        version,
        source: src,
        source_version: None,
        licenses: h.license.filter(|l| !l.is_empty()).into_iter().collect(),
        purl,
        layer: None,
        found_in: found_in.to_string(),
    }))
}

/// Reads every package of an `rpmdb.sqlite` at `db` (opened read-only and
/// immutable: no journal or lock file is looked for or made).
pub(crate) fn read_sqlite(
    db: &Path,
    found_in: &str,
    namespace: &str,
) -> Result<Vec<Package>, ParseError> {
    use rusqlite::{Connection, OpenFlags};
    let err = |e: rusqlite::Error| ParseError::new(format!("rpmdb.sqlite: {e}"));
    let uri = format!("file:{}?immutable=1", db.display());
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn.prepare("SELECT blob FROM Packages").map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        let blob: Vec<u8> = row.get(0).map_err(err)?;
        if let Some(p) = package(parse_header(&blob)?, found_in, namespace)? {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a header blob as `headerExport` does, from (tag, type, value) entries.
    pub(crate) fn header_blob(entries: &[(i32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        // rpm's first entry is a region tag (HEADERIMMUTABLE, 63) pointing at the
        // trailer; berth skips it.
        let all: Vec<(i32, u32, Vec<u8>)> = std::iter::once((63, 7u32, vec![0u8; 16]))
            .chain(entries.iter().map(|(t, ty, v)| (*t, *ty, v.to_vec())))
            .collect();
        for (tag, ty, v) in &all {
            if *ty == TYPE_INT32 {
                while data.len() & 3 != 0 {
                    data.push(0);
                }
            }
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&ty.to_be_bytes());
            index.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let count: u32 = if *ty == 7 { 16 } else { 1 };
            index.extend_from_slice(&count.to_be_bytes());
            data.extend_from_slice(v);
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(all.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        blob.extend_from_slice(&index);
        blob.extend_from_slice(&data);
        blob
    }

    pub(crate) fn openssl_libs() -> Vec<u8> {
        header_blob(&[
            (TAG_NAME, TYPE_STRING, b"openssl-libs\0"),
            (TAG_VERSION, TYPE_STRING, b"3.0.7\0"),
            (TAG_RELEASE, TYPE_STRING, b"27.el9\0"),
            (TAG_EPOCH, TYPE_INT32, &1u32.to_be_bytes()),
            (TAG_LICENSE, TYPE_STRING, b"ASL 2.0\0"),
            (TAG_ARCH, TYPE_STRING, b"x86_64\0"),
            (
                TAG_SOURCERPM,
                TYPE_STRING,
                b"openssl-3.0.7-27.el9.src.rpm\0",
            ),
        ])
    }

    #[test]
    fn header() {
        let h = parse_header(&openssl_libs()).unwrap();
        assert_eq!(h.name.as_deref(), Some("openssl-libs"));
        assert_eq!(h.epoch, Some(1));
        let p = package(h, "var/lib/rpm/rpmdb.sqlite", "redhat")
            .unwrap()
            .unwrap();
        assert_eq!(p.version, "1:3.0.7-27.el9");
        assert_eq!(p.source.as_deref(), Some("openssl"));
        assert_eq!(p.licenses, vec!["ASL 2.0"]);
        assert_eq!(
            p.purl,
            "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&upstream=openssl-3.0.7-27.el9.src.rpm"
        );
    }

    #[test]
    fn corrupt_headers() {
        let good = openssl_libs();
        for cut in [0, 3, 8, 20, good.len() - 1] {
            assert!(parse_header(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        assert!(parse_header(&huge).is_err());
        // A string without its NUL.
        let b = header_blob(&[(TAG_NAME, TYPE_STRING, b"abc")]);
        assert!(parse_header(&b).is_err());
        // Without a name it is no package.
        let b = header_blob(&[(TAG_VERSION, TYPE_STRING, b"1\0")]);
        assert!(package(parse_header(&b).unwrap(), "f", "x").is_err());
    }

    #[test]
    fn sqlite_db() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpmdb.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .unwrap();
        let key = header_blob(&[
            (TAG_NAME, TYPE_STRING, b"gpg-pubkey\0"),
            (TAG_VERSION, TYPE_STRING, b"fd431d51\0"),
        ]);
        for b in [openssl_libs(), key] {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
                .unwrap();
        }
        drop(conn);
        let p = read_sqlite(&path, "var/lib/rpm/rpmdb.sqlite", "redhat").unwrap();
        assert_eq!(p.len(), 1);
        // rpm keeps its sqlite database in WAL mode: read-only and immutable still reads it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let p = read_sqlite(&path, "var/lib/rpm/rpmdb.sqlite", "redhat").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "openssl-libs");
        std::fs::write(&path, b"SQLite format 3\0 but not really").unwrap();
        assert!(read_sqlite(&path, "f", "redhat").is_err());
    }
}
