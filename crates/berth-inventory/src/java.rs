//! Java archives (`.jar`, `.war`, `.ear`): each `META-INF/maven/GROUP/ARTIFACT/
//! pom.properties` is a Maven artifact; an archive without one is named by its
//! `META-INF/MANIFEST.MF` (OSGi's `Bundle-SymbolicName`, else a one-word
//! `Implementation-Title`, else its file name before the version:
//! `commons-io-2.11.0.jar`; `Implementation-Version`, else `Bundle-Version`, else
//! the file name's), with no group unless `Implementation-Vendor-Id` gives one. Archives inside archives (a war's
//! `WEB-INF/lib/*.jar`, a Spring Boot jar's `BOOT-INF/lib/`) are read up to
//! [`MAX_DEPTH`] levels deep, each at most [`MAX_NESTED`] bytes, held in memory.
//! A member is named `outer.war!/WEB-INF/lib/inner.jar`.

use std::io::{Cursor, Read, Seek};

use crate::{purl, Ecosystem, Finding, Package, ParseError};

pub(crate) const MAX_DEPTH: usize = 3;
const MAX_NESTED: u64 = 64 << 20;
const MAX_TEXT: u64 = 1 << 20;
const MAX_ENTRIES: usize = 200_000;

pub(crate) fn is_archive_name(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    l.ends_with(".jar") || l.ends_with(".war") || l.ends_with(".ear")
}

#[derive(Default)]
pub(crate) struct Archive {
    pub packages: Vec<Package>,
    pub findings: Vec<Finding>,
}

fn manifest(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(cont) = line.strip_prefix(' ') {
            if let Some((_, v)) = out.last_mut() {
                v.push_str(cont);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once(['=', ':']))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn maven(
    group: Option<&str>,
    artifact: &str,
    version: &str,
    licenses: Vec<String>,
    found_in: &str,
) -> Package {
    Package {
        ecosystem: Ecosystem::Maven,
        name: match group {
            Some(g) => format!("{g}:{artifact}"),
            None => artifact.to_string(),
        },
        version: version.to_string(),
        source: None,
        source_version: None,
        licenses,
        purl: purl::purl("maven", group, artifact, version, &[]),
        layer: None,
        found_in: found_in.to_string(),
    }
}

fn read_capped<R: Read>(r: R, cap: u64, what: &str) -> Result<Vec<u8>, ParseError> {
    let mut buf = Vec::new();
    r.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ParseError::new(format!("{what}: {e}")))?;
    if buf.len() as u64 > cap {
        return Err(ParseError::new(format!("{what}: more than {cap} bytes")));
    }
    Ok(buf)
}

/// `commons-io-2.11.0.jar` → (`commons-io`, `2.11.0`): the name up to the first
/// `-` followed by a digit.
fn name_from_file(file: &str) -> (Option<&str>, Option<&str>) {
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let split = stem
        .char_indices()
        .find(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()));
    match split {
        Some((i, _)) if i > 0 => (Some(&stem[..i]), Some(&stem[i + 1..])),
        _ => (Some(stem).filter(|s| !s.is_empty()), None),
    }
}

/// Reads an archive found at `found_in`, `depth` levels inside others.
pub(crate) fn parse_archive<R: Read + Seek>(
    reader: R,
    found_in: &str,
    depth: usize,
    out: &mut Archive,
) -> Result<(), ParseError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| ParseError::new(format!("zip: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(ParseError::new(format!("zip: {} entries", zip.len())));
    }
    let mut mf: Option<Vec<(String, String)>> = None;
    let mut poms = Vec::new();
    let mut nested = Vec::new();
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| ParseError::new(format!("zip: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
            let b = read_capped(entry, MAX_TEXT, &name)?;
            mf = Some(manifest(&String::from_utf8_lossy(&b)));
        } else if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
            let b = read_capped(entry, MAX_TEXT, &name)?;
            poms.push(properties(&String::from_utf8_lossy(&b)));
        } else if is_archive_name(&name) {
            nested.push((i, name, entry.size()));
        }
    }
    // OSGi's `Bundle-License: NAME;link=URL, NAME2`: the names.
    let licenses: Vec<String> = mf
        .as_deref()
        .and_then(|m| get(m, "Bundle-License"))
        .map(|l| {
            l.split(',')
                .map(|e| e.split(';').next().unwrap_or(e).trim().to_string())
                .filter(|e| !e.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for p in &poms {
        if let (Some(a), Some(v)) = (get(p, "artifactId"), get(p, "version")) {
            out.packages
                .push(maven(get(p, "groupId"), a, v, licenses.clone(), found_in));
        }
    }
    if poms.is_empty() {
        // An identifier: OSGi's symbolic name, else a title that is one word (titles
        // are often prose), else the file's name before its version. Without a
        // manifest, only a file name with a version names the archive.
        let m = mf.as_deref().unwrap_or_default();
        let file = found_in.rsplit(['/', '!']).next().unwrap_or(found_in);
        let (file_name, file_version) = name_from_file(file);
        let name = get(m, "Bundle-SymbolicName")
            .map(|s| s.split(';').next().unwrap_or(s).trim())
            .or_else(|| get(m, "Implementation-Title").filter(|t| !t.contains(char::is_whitespace)))
            .or(file_name);
        let version = get(m, "Implementation-Version")
            .or_else(|| get(m, "Bundle-Version"))
            .or(file_version);
        if let (Some(n), Some(v)) = (name, version) {
            let group = get(m, "Implementation-Vendor-Id");
            out.packages
                .push(maven(group, n, v, licenses.clone(), found_in));
        }
    }
    for (i, name, size) in nested {
        let path = format!("{found_in}!/{name}");
        if depth + 1 > MAX_DEPTH {
            out.findings.push(Finding::Unreadable {
                path,
                reason: format!("archive nested more than {MAX_DEPTH} levels deep"),
            });
            continue;
        }
        if size > MAX_NESTED {
            out.findings.push(Finding::Unreadable {
                path,
                reason: format!("nested archive larger than {MAX_NESTED} bytes"),
            });
            continue;
        }
        let res = zip
            .by_index(i)
            .map_err(|e| ParseError::new(format!("zip: {e}")))
            .and_then(|e| read_capped(e, MAX_NESTED, &name))
            .and_then(|b| parse_archive(Cursor::new(b), &path, depth + 1, out));
        if let Err(e) = res {
            out.findings.push(Finding::Unreadable { path, reason: e.0 });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (n, b) in files {
            w.start_file(*n, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(b).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    pub(crate) fn war() -> Vec<u8> {
        let inner = zip_of(&[
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nBundle-License: https://www.apache.org/licenses/LICENSE-2.0.txt\r\n"),
            (
                "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
                b"#Created by Apache Maven 3.8.1\nversion=2.14.1\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\n",
            ),
        ]);
        let plain = zip_of(&[(
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\nImplementation-Title: commons-long-na\n me\nImplementation-Version: 1.2\nImplementation-Vendor-Id: org.example\n",
        )]);
        zip_of(&[
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
            ("WEB-INF/lib/log4j-core-2.14.1.jar", &inner),
            ("WEB-INF/lib/plain.jar", &plain),
            ("WEB-INF/lib/broken.jar", b"PK\x03\x04 truncated"),
        ])
    }

    #[test]
    fn nested_war() {
        let mut a = Archive::default();
        parse_archive(Cursor::new(war()), "app.war", 0, &mut a).unwrap();
        assert_eq!(a.packages.len(), 2);
        assert_eq!(a.packages[0].name, "org.apache.logging.log4j:log4j-core");
        assert_eq!(
            a.packages[0].purl,
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
        );
        assert_eq!(
            a.packages[0].found_in,
            "app.war!/WEB-INF/lib/log4j-core-2.14.1.jar"
        );
        assert_eq!(a.packages[0].licenses.len(), 1);
        assert_eq!(
            a.packages[1].purl,
            "pkg:maven/org.example/commons-long-name@1.2"
        );
        assert_eq!(a.findings.len(), 1);
        assert!(
            matches!(&a.findings[0], Finding::Unreadable { path, .. } if path == "app.war!/WEB-INF/lib/broken.jar")
        );
    }

    #[test]
    fn manifest_names() {
        let prose = zip_of(&[(
            "META-INF/MANIFEST.MF",
            b"Implementation-Title: ASM, a very small and fast Java bytecode manipulation framework\nImplementation-Version: 9.7.1\nBundle-License: BSD-3-Clause;link=https://asm.ow2.io/LICENSE.txt\n",
        )]);
        let mut a = Archive::default();
        parse_archive(Cursor::new(prose), "lib/asm-9.7.1.jar", 0, &mut a).unwrap();
        assert_eq!(a.packages[0].name, "asm");
        assert_eq!(a.packages[0].purl, "pkg:maven/asm@9.7.1");
        assert_eq!(a.packages[0].licenses, ["BSD-3-Clause"]);
        let bare = zip_of(&[("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n")]);
        let mut a = Archive::default();
        parse_archive(
            Cursor::new(bare),
            "x.war!/WEB-INF/lib/commons-io-2.11.0.jar",
            0,
            &mut a,
        )
        .unwrap();
        assert_eq!(a.packages[0].purl, "pkg:maven/commons-io@2.11.0");
        assert_eq!(name_from_file("plain.jar"), (Some("plain"), None));
    }

    #[test]
    fn depth_limited() {
        let mut z = zip_of(&[(
            "META-INF/maven/g/a/pom.properties",
            b"groupId=g\nartifactId=a\nversion=1\n",
        )]);
        for _ in 0..MAX_DEPTH + 1 {
            z = zip_of(&[("x.jar", &z)]);
        }
        let mut a = Archive::default();
        parse_archive(Cursor::new(z), "top.jar", 0, &mut a).unwrap();
        assert!(a.packages.is_empty());
        assert_eq!(a.findings.len(), 1);
    }

    #[test]
    fn corrupt_outer() {
        let w = war();
        let mut a = Archive::default();
        assert!(parse_archive(Cursor::new(&w[..w.len() - 10]), "f", 0, &mut a).is_err());
        assert!(parse_archive(Cursor::new(b"not a zip"), "f", 0, &mut a).is_err());
    }
}
