//! dpkg's database: `var/lib/dpkg/status` and distroless `var/lib/dpkg/status.d/*`
//! (RFC 822 stanzas), and the DEP-5 `copyright` files that carry licences.
//!
//! Only stanzas whose `Status:` is `WANT ok installed` are packages: `install ok
//! installed`, and also `hold ok installed` (an `apt-mark hold`) and `deinstall ok
//! installed` (selected for removal, still on disk). A package removed but not
//! purged stays in the file as `deinstall ok config-files`, a failed or partial
//! install as `install reinstreq half-installed` or `... unpacked`: not packages. The
//! files of `status.d/` that distroless images write have no `Status:` field: there
//! each stanza is an installed package.

use crate::{purl, Ecosystem, Package, ParseError};

/// Which kind of dpkg file is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusKind {
    /// `var/lib/dpkg/status`: `Status:` decides.
    Status,
    /// `var/lib/dpkg/status.d/NAME`: a missing `Status:` means installed.
    Distroless,
}

/// One stanza's fields, in order; a continuation line is appended to its field.
fn stanzas(text: &str) -> Result<Vec<Vec<(String, String)>>, ParseError> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            match cur.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line.trim());
                }
                None => {
                    return Err(ParseError::new(format!(
                        "line {}: continuation line outside a field",
                        n + 1
                    )))
                }
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(' ') => {
                cur.push((k.to_string(), v.trim().to_string()))
            }
            _ => return Err(ParseError::new(format!("line {}: not a field", n + 1))),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn field<'a>(st: &'a [(String, String)], key: &str) -> Option<&'a str> {
    st.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Parses a dpkg status file. `namespace` is the purl namespace (`debian`,
/// `ubuntu`).
pub(crate) fn parse_status(
    bytes: &[u8],
    found_in: &str,
    kind: StatusKind,
    namespace: &str,
) -> Result<Vec<Package>, ParseError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| ParseError::new(format!("not UTF-8: {e}")))?;
    let mut out = Vec::new();
    for st in stanzas(text)? {
        let installed = match field(&st, "Status") {
            Some(s) => matches!(
                s.split_whitespace().collect::<Vec<_>>().as_slice(),
                [_, "ok", "installed"]
            ),
            None => kind == StatusKind::Distroless,
        };
        if !installed {
            continue;
        }
        let name = field(&st, "Package")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ParseError::new("an installed stanza has no Package field"))?;
        let version = field(&st, "Version")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ParseError::new(format!("package {name} has no Version field")))?;
        let arch = field(&st, "Architecture").unwrap_or_default();
        let (source, source_version) = match field(&st, "Source") {
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (
                    Some(n.trim().to_string()),
                    Some(v.trim_end().trim_end_matches(')').trim().to_string()),
                ),
                None => (Some(s.trim().to_string()), None),
            },
            None => (None, None),
        };
        let source = source.filter(|s| !s.is_empty());
        let mut quals: Vec<(&str, &str)> = vec![("arch", arch)];
        let upstream = match (&source, &source_version) {
            (Some(s), Some(v)) => format!("{s}@{v}"),
            (Some(s), None) => s.clone(),
            _ => String::new(),
        };
        if source.as_deref() != Some(name) || source_version.is_some() {
            quals.push(("upstream", &upstream));
        }
        let purl = purl::purl("deb", Some(namespace), name, version, &quals);
        out.push(Package {
            ecosystem: Ecosystem::Deb,
            name: name.to_string(),
            version: version.to_string(),
            source,
            source_version,
            licenses: Vec::new(),
            purl,
            layer: None,
            found_in: found_in.to_string(),
        });
    }
    Ok(out)
}

/// The licences a DEP-5 (machine-readable) copyright file names in the `License:`
/// fields of its header and `Files:` paragraphs (the short name on the field's
/// first line), in order, deduplicated. Stand-alone `License:` paragraphs only
/// give the text of a licence named elsewhere and are skipped. A copyright file in
/// free form gives nothing.
pub(crate) fn parse_copyright(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out: Vec<String> = Vec::new();
    for para in text.split("\n\n") {
        let counts = para
            .lines()
            .any(|l| l.starts_with("Files:") || l.starts_with("Format:"));
        if !counts {
            continue;
        }
        for line in para.lines() {
            let Some(rest) = line.strip_prefix("License:") else {
                continue;
            };
            let lic = rest.trim();
            if !lic.is_empty() && !out.iter().any(|l| l == lic) {
                out.push(lic.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libssl3
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 6172
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Multi-Arch: same
Source: openssl
Version: 3.0.15-1~deb12u1
Depends: libc6 (>= 2.34)
Description: Secure Sockets Layer toolkit - shared libraries
 This package is part of the OpenSSL project's implementation of the SSL and
 TLS cryptographic protocols for secure communication over the Internet.
 .
 It provides the libssl and libcrypto shared libraries.
Homepage: https://www.openssl.org/

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: held
Status: hold ok installed
Architecture: amd64
Version: 2.0

Package: broken
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14+deb12u1
";

    #[test]
    fn status_installed_only() {
        let p = parse_status(
            STATUS.as_bytes(),
            "var/lib/dpkg/status",
            StatusKind::Status,
            "debian",
        )
        .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].name, "held");
        let p = [p[0].clone(), p[2].clone()];
        assert_eq!(p[0].name, "libssl3");
        assert_eq!(p[0].version, "3.0.15-1~deb12u1");
        assert_eq!(p[0].source.as_deref(), Some("openssl"));
        assert_eq!(p[0].source_version, None);
        assert_eq!(
            p[0].purl,
            "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&upstream=openssl"
        );
        assert_eq!(p[1].source.as_deref(), Some("gcc-12"));
        assert_eq!(p[1].source_version.as_deref(), Some("12.2.0-14"));
        assert_eq!(
            p[1].purl,
            "pkg:deb/debian/libgcc-s1@12.2.0-14%2Bdeb12u1?arch=amd64&upstream=gcc-12%4012.2.0-14"
        );
    }

    #[test]
    fn distroless_without_status() {
        let s = "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";
        let p = parse_status(s.as_bytes(), "x", StatusKind::Distroless, "debian").unwrap();
        assert_eq!(p.len(), 1);
        let p = parse_status(s.as_bytes(), "x", StatusKind::Status, "debian").unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn corrupt_is_an_error() {
        assert!(parse_status(b"\xff\xfe", "x", StatusKind::Status, "debian").is_err());
        assert!(parse_status(
            b" leading continuation\n",
            "x",
            StatusKind::Status,
            "debian"
        )
        .is_err());
        assert!(parse_status(
            b"Package: a\nStatus: install ok installed\nVersi",
            "x",
            StatusKind::Status,
            "debian"
        )
        .is_err());
        let no_version = b"Package: a\nStatus: install ok installed\n";
        assert!(parse_status(no_version, "x", StatusKind::Status, "debian").is_err());
    }

    #[test]
    fn copyright_dep5() {
        let c = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: OpenSSL
Source: https://www.openssl.org/source/

Files: *
Copyright: 1998-2021 The OpenSSL Project
License: Apache-2.0

Files: debian/*
Copyright: 1998 Someone
License: Apache-2.0

Files: debian/x
Copyright: 1998 Someone
License: MIT

License: Artistic
 Licensed under the Apache License, Version 2.0 (the \"License\");
";
        assert_eq!(parse_copyright(c.as_bytes()), vec!["Apache-2.0", "MIT"]);
        assert!(parse_copyright(b"This is free text. Copyright 1990.").is_empty());
    }
}
