//! Package URLs (the package-url spec): `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`.
//!
//! Each namespace segment, the name, the version and each qualifier value are
//! percent-encoded: everything but ASCII letters, digits, `.-_~` and `:` (which
//! the spec says is never encoded) becomes `%XX`. Qualifiers are sorted by key and
//! empty values dropped.

use std::fmt::Write;

/// Percent-encodes one purl component.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Builds a purl. `namespace` may hold several `/`-separated segments (Go module
/// paths, Maven's group is one segment); empty segments are dropped.
pub(crate) fn purl(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut out = format!("pkg:{ty}/");
    if let Some(ns) = namespace {
        for seg in ns.split('/').filter(|s| !s.is_empty()) {
            out.push_str(&encode(seg));
            out.push('/');
        }
    }
    out.push_str(&encode(name));
    if !version.is_empty() {
        out.push('@');
        out.push_str(&encode(version));
    }
    let mut qs: Vec<&(&str, &str)> = qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    qs.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in qs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(
            purl(
                "deb",
                Some("debian"),
                "openssl",
                "3.0.15-1~deb12u1",
                &[("arch", "amd64")]
            ),
            "pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64"
        );
        assert_eq!(
            purl("npm", Some("@angular"), "animation", "12.3.1", &[]),
            "pkg:npm/%40angular/animation@12.3.1"
        );
        assert_eq!(
            purl(
                "golang",
                Some("google.golang.org"),
                "genproto",
                "v0.0.0-2020",
                &[]
            ),
            "pkg:golang/google.golang.org/genproto@v0.0.0-2020"
        );
        assert_eq!(
            purl(
                "rpm",
                Some("fedora"),
                "curl",
                "7.50.3-1.fc25",
                &[("epoch", "1"), ("arch", "i386")]
            ),
            "pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&epoch=1"
        );
        assert_eq!(
            purl("cargo", None, "rand", "0.7.2", &[]),
            "pkg:cargo/rand@0.7.2"
        );
        // '+' and ' ' are encoded, ':' (a Debian epoch) is not.
        assert_eq!(
            purl(
                "deb",
                Some("debian"),
                "libstdc++6",
                "1:12.2.0-14+deb12u1",
                &[("arch", "")]
            ),
            "pkg:deb/debian/libstdc%2B%2B6@1:12.2.0-14%2Bdeb12u1"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
