//! Rust binaries built with cargo-auditable: the `.dep-v0` section holds the
//! dependency tree as zlib-compressed JSON, `{"packages": [{"name", "version",
//! "source", "kind", "dependencies", "root"}]}`. Packages of kind `build` (build
//! scripts and proc macros, not linked into the binary) are left out.

use std::io::Read;

use serde::Deserialize;

use crate::{purl, Ecosystem, Package, ParseError};

/// The decompressed JSON is refused past this size.
const MAX_JSON: u64 = 8 << 20;

#[derive(Deserialize)]
struct Audit {
    packages: Vec<AuditPackage>,
}

#[derive(Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    #[serde(default)]
    kind: Option<String>,
}

pub(crate) fn parse_dep_v0(sec: &[u8], found_in: &str) -> Result<Vec<Package>, ParseError> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(sec)
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| ParseError::new(format!(".dep-v0: {e}")))?;
    if json.len() as u64 > MAX_JSON {
        return Err(ParseError::new(format!(
            ".dep-v0: more than {MAX_JSON} bytes of JSON"
        )));
    }
    let audit: Audit =
        serde_json::from_slice(&json).map_err(|e| ParseError::new(format!(".dep-v0: {e}")))?;
    Ok(audit
        .packages
        .into_iter()
        .filter(|p| p.kind.as_deref() != Some("build"))
        .map(|p| Package {
            ecosystem: Ecosystem::Cargo,
            purl: purl::purl("cargo", None, &p.name, &p.version, &[]),
            name: p.name,
            version: p.version,
            source: None,
            source_version: None,
            licenses: Vec::new(),
            layer: None,
            found_in: found_in.to_string(),
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn section(json: &str) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(json.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    pub(crate) const JSON: &str = r#"{"packages":[{"name":"hello","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},{"name":"serde","version":"1.0.200","source":"crates.io"},{"name":"cc","version":"1.0.90","source":"crates.io","kind":"build"}]}"#;

    #[test]
    fn dep_v0() {
        let p = parse_dep_v0(&section(JSON), "usr/bin/hello").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].purl, "pkg:cargo/serde@1.0.200");
    }

    #[test]
    fn corrupt() {
        let s = section(JSON);
        assert!(parse_dep_v0(&s[..s.len() / 2], "f").is_err());
        assert!(parse_dep_v0(b"not zlib", "f").is_err());
        assert!(parse_dep_v0(&section("{\"packages\": 3}"), "f").is_err());
    }
}
