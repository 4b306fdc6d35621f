//! Python distributions: `NAME.dist-info/METADATA` (wheels, pip) and
//! `NAME.egg-info/PKG-INFO` (setuptools; an `.egg-info` may also be that file
//! itself). Both are the core metadata format: RFC 822 headers, then a body.
//!
//! Licence, in order of preference: `License-Expression` (metadata 2.4, SPDX),
//! `License` when it is one short line (many projects paste the whole licence text
//! there, which is kept out), then the `License ::` trove classifiers' last part.

use crate::{purl, Ecosystem, Package, ParseError};

/// The name as PEP 503 normalises it: lower case, runs of `-_.` become `-`.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

pub(crate) fn parse_metadata(bytes: &[u8], found_in: &str) -> Result<Package, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let mut headers: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break; // the body (long description) starts
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = headers.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => headers.push((k.trim(), v.trim().to_string())),
            None => {
                return Err(ParseError::new(format!(
                    "not a metadata header: {line:.60}"
                )))
            }
        }
    }
    let get = |key: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let name = get("Name").ok_or_else(|| ParseError::new("no Name header"))?;
    let version =
        get("Version").ok_or_else(|| ParseError::new(format!("{name}: no Version header")))?;
    let mut licenses = Vec::new();
    if let Some(e) = get("License-Expression") {
        licenses.push(e.to_string());
    } else if let Some(l) =
        get("License").filter(|l| !l.contains('\n') && l.len() <= 100 && *l != "UNKNOWN")
    {
        licenses.push(l.to_string());
    } else {
        for (k, v) in &headers {
            if !k.eq_ignore_ascii_case("Classifier") || !v.starts_with("License ::") {
                continue;
            }
            if let Some(last) = v.rsplit("::").next().map(str::trim) {
                if !last.is_empty() && last != "OSI Approved" && !licenses.iter().any(|l| l == last)
                {
                    licenses.push(last.to_string());
                }
            }
        }
    }
    Ok(Package {
        ecosystem: Ecosystem::Pypi,
        name: name.to_string(),
        version: version.to_string(),
        source: None,
        source_version: None,
        licenses,
        purl: purl::purl("pypi", None, &normalize(name), version, &[]),
        layer: None,
        found_in: found_in.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata() {
        let m = "Metadata-Version: 2.1\nName: Flask_SQLAlchemy\nVersion: 3.1.1\nSummary: x\nLicense: BSD-3-Clause\nClassifier: License :: OSI Approved :: BSD License\n\nlong description\nLicense: not a header\n";
        let p = parse_metadata(m.as_bytes(), "a/METADATA").unwrap();
        assert_eq!(p.name, "Flask_SQLAlchemy");
        assert_eq!(p.purl, "pkg:pypi/flask-sqlalchemy@3.1.1");
        assert_eq!(p.licenses, vec!["BSD-3-Clause"]);
    }

    #[test]
    fn licence_sources() {
        let m = "Name: a\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\nLicense: x\n";
        assert_eq!(
            parse_metadata(m.as_bytes(), "f").unwrap().licenses,
            vec!["MIT OR Apache-2.0"]
        );
        let m = "Name: a\nVersion: 1\nLicense: Copyright (c) 2020\n        Permission is hereby granted\nClassifier: License :: OSI Approved :: MIT License\n";
        assert_eq!(
            parse_metadata(m.as_bytes(), "f").unwrap().licenses,
            vec!["MIT License"]
        );
    }

    #[test]
    fn corrupt() {
        assert!(parse_metadata(b"Name: a\n", "f").is_err());
        assert!(parse_metadata(b"\x00\x01garbage", "f").is_err());
        assert!(parse_metadata(b"", "f").is_err());
    }

    #[test]
    fn normalise() {
        assert_eq!(normalize("Foo.Bar__baz-"), "foo-bar-baz");
        assert_eq!(normalize("zope.interface"), "zope-interface");
    }
}
