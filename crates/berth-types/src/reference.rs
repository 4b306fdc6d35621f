//! Image references, normalised the way Docker does.

use std::fmt;

use crate::Digest;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Docker's words, without the reference (callers quote it where
    /// Docker does).
    #[error("invalid reference format")]
    Invalid(String),
    /// The repository's path as Docker names it (`library/Bad`, or `Foo`
    /// of `localhost:5000/Foo`).
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("repository name must not be more than {NAME_MAX} characters")]
    NameTooLong,
}

/// Docker's limit on a repository name, fully qualified
/// (`docker.io/library/busybox`).
pub const NAME_MAX: usize = 255;

/// A validated, fully qualified image reference:
/// `domain/path[:tag][@digest]`. When neither tag nor digest was given the
/// tag is `latest`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

fn valid_domain(d: &str) -> bool {
    let host = match d.rsplit_once(':') {
        Some((h, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            h
        }
        None => d,
    };
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl Reference {
    /// Parses a reference as a user types it (`busybox`, `bb:1`,
    /// `localhost:5000/a/b@sha256:…`).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let invalid = || ReferenceError::Invalid(s.to_string());
        if s.is_empty() {
            return Err(invalid());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|_| invalid())?)),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(invalid());
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid());
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if !valid_domain(&domain) {
            return Err(invalid());
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(path));
        }
        if !path.split('/').all(valid_component) {
            return Err(invalid());
        }
        // Counted on the fully qualified name, as Docker does: whatever
        // parses prints (`to_string`) as a reference that parses again.
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG.to_string())
        } else {
            tag
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// `docker.io/library/busybox`
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
    /// The short form Docker prints: `busybox`, `me/app`, `localhost:5000/app`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        }
    }
    /// The familiar form with its tag or digest: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker's 255 counts the fully qualified name (`docker.io/library/` too).
    /// Found by fuzzing: a 506-byte name parsed, but its full form (over the
    /// old 512-byte cap on the input) did not parse again.
    #[test]
    fn the_name_limit_is_dockers_and_what_parses_reparses() {
        assert!(Reference::parse(&"a".repeat(237)).is_ok());
        assert_eq!(
            Reference::parse(&"a".repeat(238)),
            Err(ReferenceError::NameTooLong)
        );
        assert!(Reference::parse(&format!("x/{}", "a".repeat(243))).is_ok());
        assert_eq!(
            Reference::parse(&format!("x/{}", "a".repeat(244))),
            Err(ReferenceError::NameTooLong)
        );
        let long = format!("e3/{}:latest", "x".repeat(243));
        assert_eq!(
            ReferenceError::NameTooLong.to_string(),
            "repository name must not be more than 255 characters"
        );
        assert_eq!(Reference::parse(&long), Err(ReferenceError::NameTooLong));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let longest = format!("{}:{}@{d}", "a".repeat(237), "t".repeat(128));
        let r = Reference::parse(&longest).unwrap();
        assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
        assert_eq!(Reference::parse(&r.familiar()), Ok(r));
    }

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse("me/app:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/me/app:1.0");
        assert_eq!(r.familiar_repository(), "me/app");
        let r = Reference::parse("localhost:5000/a/b").unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.familiar(), "localhost:5000/a/b:latest");
        let r = Reference::parse("docker.io/library/bb:x").unwrap();
        assert_eq!(r.familiar(), "bb:x");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("bb@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().as_str(), d);
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "a:",
            ":x",
            "a:b:c/d",
            "-a",
            "a@sha256:12",
            "a:-x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(matches!(
            Reference::parse("Busybox"),
            Err(ReferenceError::Uppercase(_))
        ));
    }

    #[test]
    fn errors_in_dockers_words() {
        let msg = |s: &str| Reference::parse(s).err().map(|e| e.to_string());
        assert_eq!(
            msg("Bad:Ref").as_deref(),
            Some("invalid reference format: repository name (library/Bad) must be lowercase")
        );
        assert_eq!(
            msg("x/Y").as_deref(),
            Some("invalid reference format: repository name (x/Y) must be lowercase")
        );
        assert_eq!(
            msg("localhost:5000/Foo").as_deref(),
            Some("invalid reference format: repository name (Foo) must be lowercase")
        );
        assert_eq!(msg("a:b:c").as_deref(), Some("invalid reference format"));
    }
}
