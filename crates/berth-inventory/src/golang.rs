//! Go binaries' build information (`runtime/debug.BuildInfo`), as the Go linker
//! embeds it in the `.go.buildinfo` section: a 32-byte header that starts with
//! `\xff Go buildinf:`, then (Go ≥ 1.18, flag bit 2) the Go version and the module
//! information as two varint-prefixed strings. The module information is lines of
//! tab-separated fields: `path`, `mod PATH VERSION SUM`, `dep PATH VERSION SUM`,
//! `=> PATH VERSION SUM` (a replacement of the line before), `build KEY=VALUE`.
//!
//! Before Go 1.18 the header held pointers into the data segment instead; such a
//! binary is reported as unsupported.

use crate::{purl, Ecosystem, Package, ParseError};

pub(crate) const MAGIC: &[u8] = b"\xff Go buildinf:";

/// What the build info gave.
pub(crate) enum BuildInfo {
    Packages(Vec<Package>),
    /// A build info in the pointer format of Go < 1.18.
    PointerFormat,
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

fn read_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, n) = uvarint(b)?;
    let len = usize::try_from(len).ok()?;
    let end = n.checked_add(len)?;
    Some((b.get(n..end)?, b.get(end..)?))
}

fn package(path: &str, version: &str, source: Option<&str>, found_in: &str) -> Package {
    let (ns, name) = match path.rsplit_once('/') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, path),
    };
    Package {
        ecosystem: Ecosystem::Golang,
        name: path.to_string(),
        version: version.to_string(),
        source: source.map(str::to_string),
        source_version: None,
        licenses: Vec::new(),
        purl: purl::purl("golang", ns, name, version, &[]),
        layer: None,
        found_in: found_in.to_string(),
    }
}

/// Parses the contents of a `.go.buildinfo` section.
pub(crate) fn parse_buildinfo(sec: &[u8], found_in: &str) -> Result<BuildInfo, ParseError> {
    let bad = |what: &str| ParseError::new(format!("Go build info: {what}"));
    // The header is 16-byte aligned within the section; it is normally at 0.
    let start = (0..sec.len().saturating_sub(MAGIC.len()))
        .step_by(16)
        .find(|&i| sec[i..].starts_with(MAGIC))
        .ok_or_else(|| bad("no buildinf header"))?;
    let hdr = sec
        .get(start..start + 32)
        .ok_or_else(|| bad("truncated header"))?;
    let flags = hdr[15];
    if flags & 2 == 0 {
        return Ok(BuildInfo::PointerFormat);
    }
    let rest = &sec[start + 32..];
    let (gover, rest) = read_string(rest).ok_or_else(|| bad("truncated Go version"))?;
    let (mut modinfo, _) = read_string(rest).ok_or_else(|| bad("truncated module information"))?;
    // The module information is framed by two 16-byte sentinels.
    if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo = &modinfo[16..modinfo.len() - 16];
    }
    let gover = String::from_utf8_lossy(gover);
    let modinfo = String::from_utf8_lossy(modinfo);
    let mut out: Vec<Package> = Vec::new();
    let mut main: Option<String> = None;
    for line in modinfo.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["mod", path, version, ..] => {
                main = Some(path.to_string());
                out.push(package(path, version, None, found_in));
            }
            ["dep", path, version, ..] => {
                out.push(package(path, version, main.as_deref(), found_in))
            }
            ["=>", path, version, ..] => {
                // Replaces the dependency just before; a local directory has no version.
                if let Some(last) = out.last_mut() {
                    let src = last.source.clone();
                    *last = package(path, version, src.as_deref(), found_in);
                }
            }
            _ => {}
        }
    }
    if let Some(v) = gover.strip_prefix("go") {
        // The standard library, as OSV's Go ecosystem names it.
        let v = v.split([' ', '-']).next().unwrap_or(v);
        let mut p = package("stdlib", v, main.as_deref(), found_in);
        p.purl = purl::purl("golang", None, "stdlib", v, &[]);
        out.push(p);
    }
    Ok(BuildInfo::Packages(out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn varstr(out: &mut Vec<u8>, s: &[u8]) {
        let mut n = s.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(s);
    }

    /// A `.go.buildinfo` section as Go ≥ 1.18 writes it.
    pub(crate) fn section(gover: &str, modinfo: &str) -> Vec<u8> {
        let mut s = MAGIC.to_vec();
        s.push(8); // pointer size
        s.push(2); // flags: little endian, inline strings
        s.resize(32, 0);
        varstr(&mut s, gover.as_bytes());
        let mut framed = b"0123456789abcdef".to_vec();
        framed.extend_from_slice(modinfo.as_bytes());
        framed.extend_from_slice(b"fedcba9876543210");
        varstr(&mut s, &framed);
        s
    }

    pub(crate) const MODINFO: &str = "path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\ndep\tgolang.org/x/text\tv0.14.0\th1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=\ndep\tgithub.com/old/lib\tv1.0.0\t\n=>\tgithub.com/new/lib\tv1.2.0\th1:abc=\nbuild\t-compiler=gc\nbuild\tGOOS=linux\n";

    #[test]
    fn buildinfo() {
        let s = section("go1.22.1", MODINFO);
        let BuildInfo::Packages(p) = parse_buildinfo(&s, "usr/bin/hello").unwrap() else {
            panic!("pointer format")
        };
        let names: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("example.com/hello", "(devel)"),
                ("golang.org/x/text", "v0.14.0"),
                ("github.com/new/lib", "v1.2.0"),
                ("stdlib", "1.22.1")
            ]
        );
        assert_eq!(p[1].purl, "pkg:golang/golang.org/x/text@v0.14.0");
        assert_eq!(p[1].source.as_deref(), Some("example.com/hello"));
    }

    #[test]
    fn old_and_corrupt() {
        let mut old = MAGIC.to_vec();
        old.extend_from_slice(&[8, 0]);
        old.resize(48, 0);
        assert!(matches!(
            parse_buildinfo(&old, "f"),
            Ok(BuildInfo::PointerFormat)
        ));
        let s = section("go1.22.1", MODINFO);
        for cut in [0, 10, 31, 33, 40, s.len() - 20] {
            assert!(parse_buildinfo(&s[..cut], "f").is_err(), "cut {cut}");
        }
    }
}
