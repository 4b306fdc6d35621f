//! npm packages: `node_modules/NAME/package.json` and
//! `node_modules/@SCOPE/NAME/package.json`, at any depth of nesting.
//!
//! A `package.json` anywhere else (an application's own, or a test fixture inside a
//! package) is a project, not an installed dependency, and is not reported: the
//! scanner only hands this module files whose parent is a package directory of a
//! `node_modules` (see `scan::is_npm_manifest`).

use serde_json::Value;

use crate::{purl, Ecosystem, Package, ParseError};

pub(crate) fn parse_package_json(bytes: &[u8], found_in: &str) -> Result<Package, ParseError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError::new(format!("package.json: {e}")))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError::new("package.json has no name"))?;
    let version = v
        .get("version")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError::new(format!("package.json of {name} has no version")))?;
    let mut licenses = Vec::new();
    let mut add = |l: &Value| {
        // A string (an SPDX expression), or the legacy `{"type": "MIT", "url": ...}`.
        let s = l.as_str().or_else(|| l.get("type").and_then(Value::as_str));
        if let Some(s) = s.filter(|s| !s.is_empty()) {
            if !licenses.iter().any(|x: &String| x == s) {
                licenses.push(s.to_string());
            }
        }
    };
    if let Some(l) = v.get("license") {
        add(l);
    }
    if let Some(Value::Array(ls)) = v.get("licenses") {
        ls.iter().for_each(&mut add);
    }
    let (ns, short) = match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
        Some((scope, short)) => (Some(format!("@{scope}")), short),
        None => (None, name),
    };
    Ok(Package {
        ecosystem: Ecosystem::Npm,
        name: name.to_string(),
        version: version.to_string(),
        source: None,
        source_version: None,
        licenses,
        purl: purl::purl("npm", ns.as_deref(), short, version, &[]),
        layer: None,
        found_in: found_in.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_json() {
        let p = parse_package_json(
            br#"{"name":"@babel/core","version":"7.24.0","license":"MIT"}"#,
            "f",
        )
        .unwrap();
        assert_eq!(p.purl, "pkg:npm/%40babel/core@7.24.0");
        assert_eq!(p.licenses, vec!["MIT"]);
        let p = parse_package_json(
            br#"{"name":"old","version":"0.1.0","licenses":[{"type":"MIT","url":"x"},{"type":"GPL-2.0"}]}"#,
            "f",
        )
        .unwrap();
        assert_eq!(p.licenses, vec!["MIT", "GPL-2.0"]);
        let p = parse_package_json(
            br#"{"name":"o","version":"1.0.0","license":{"type":"BSD"}}"#,
            "f",
        )
        .unwrap();
        assert_eq!(p.licenses, vec!["BSD"]);
    }

    #[test]
    fn corrupt() {
        assert!(parse_package_json(br#"{"name":"a","vers"#, "f").is_err());
        assert!(parse_package_json(br#"{"name":"a"}"#, "f").is_err());
        assert!(parse_package_json(br#"[1]"#, "f").is_err());
    }
}
