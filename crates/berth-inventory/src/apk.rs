//! apk's database, `lib/apk/db/installed`: one stanza per package, blank-line
//! separated, each line `X:value` with a one-letter key (`P` name, `V` version,
//! `A` architecture, `L` licence, `o` origin, i.e. the source package; `F`/`R`/`Z`
//! the files, which are skipped).

use crate::{purl, Ecosystem, Package, ParseError};

pub(crate) fn parse_installed(
    bytes: &[u8],
    found_in: &str,
    namespace: &str,
) -> Result<Vec<Package>, ParseError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| ParseError::new(format!("not UTF-8: {e}")))?;
    let mut out = Vec::new();
    let mut fields: Vec<(char, &str)> = Vec::new();
    let mut flush = |fields: &mut Vec<(char, &str)>| -> Result<(), ParseError> {
        if fields.is_empty() {
            return Ok(());
        }
        let get = |k: char| fields.iter().find(|(c, _)| *c == k).map(|(_, v)| *v);
        let name = get('P')
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ParseError::new("a stanza has no P: (name)"))?;
        let version = get('V')
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ParseError::new(format!("package {name} has no V: (version)")))?;
        let arch = get('A').unwrap_or_default();
        let origin = get('o').filter(|s| !s.is_empty());
        let mut quals = vec![("arch", arch)];
        if let Some(o) = origin.filter(|o| *o != name) {
            quals.push(("upstream", o));
        }
        out.push(Package {
            ecosystem: Ecosystem::Apk,
            name: name.to_string(),
            version: version.to_string(),
            source: origin.map(str::to_string),
            source_version: None,
            licenses: get('L')
                .filter(|s| !s.is_empty())
                .map(|l| vec![l.to_string()])
                .unwrap_or_default(),
            purl: purl::purl("apk", Some(namespace), name, version, &quals),
            layer: None,
            found_in: found_in.to_string(),
        });
        fields.clear();
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            flush(&mut fields)?;
            continue;
        }
        let mut chars = line.chars();
        match (chars.next(), chars.next()) {
            (Some(k), Some(':')) => fields.push((k, &line[k.len_utf8() + 1..])),
            _ => {
                return Err(ParseError::new(format!(
                    "line {}: not a `X:value` line",
                    n + 1
                )))
            }
        }
    }
    flush(&mut fields)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape apk writes (alpine 3.20's musl and libssl3), files trimmed.
    const INSTALLED: &str = "\
C:Q1ltIhMg8S0GYEk3iK9tZYk+nmF8o=
P:musl
V:1.2.5-r0
A:x86_64
S:411359
I:662528
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1712154044
c:6b2fd7a5c1cd8c4d0a8d05a7e0e8fb1c89b2b0a7
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1k4wK0q6WdvUAFW4D1gDrPSK5vXI=
R:libc.musl-x86_64.so.1

C:Q1bPIxFVcNA4Q6Ud2sJo0kiv0c0Yo=
P:libssl3
V:3.3.2-r0
A:x86_64
L:Apache-2.0
o:openssl
";

    #[test]
    fn installed() {
        let p = parse_installed(INSTALLED.as_bytes(), "lib/apk/db/installed", "alpine").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "musl");
        assert_eq!(p[0].licenses, vec!["MIT"]);
        assert_eq!(p[0].purl, "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64");
        assert_eq!(p[1].source.as_deref(), Some("openssl"));
        assert_eq!(
            p[1].purl,
            "pkg:apk/alpine/libssl3@3.3.2-r0?arch=x86_64&upstream=openssl"
        );
    }

    #[test]
    fn corrupt() {
        assert!(parse_installed(b"P:x\ngarbage\n", "f", "alpine").is_err());
        assert!(parse_installed(b"P:x\n", "f", "alpine").is_err());
        assert!(parse_installed(b"V:1\n\n", "f", "alpine").is_err());
        assert!(parse_installed(b"", "f", "alpine").unwrap().is_empty());
    }
}
