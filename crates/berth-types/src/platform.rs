//! `--platform OS[/ARCH[/VARIANT]]` as Docker reads it (containerd's
//! `platforms.Parse`): lower-cased, architectures normalised (`x86_64` is
//! `amd64`, `aarch64` is `arm64`), a lone OS or architecture completed with
//! the host's.

use crate::image::host_architecture;

/// An image's or a request's platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

/// Operating systems Go knows: a lone word that is one of these is an OS.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

/// Architectures Go knows: a lone word that is one of these is an
/// architecture of the host's OS.
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

impl Platform {
    /// The platform berth runs on (`linux/amd64` here).
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: host_architecture().into(),
            variant: String::new(),
        }
    }

    /// Parses a specifier as Docker does; the error is Docker's text
    /// (`"bogus": unknown operating system or architecture: invalid argument`).
    pub fn parse(spec: &str) -> Result<Platform, String> {
        if spec.contains('*') {
            return Err(format!(
                "{spec:?}: wildcards not yet supported: invalid argument"
            ));
        }
        let parts: Vec<&str> = spec.split('/').collect();
        for part in &parts {
            let ok = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(format!(
                    "{part:?} is an invalid component of {spec:?}: platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
                ));
            }
        }
        let os = |s: &str| {
            let s = s.to_ascii_lowercase();
            if s == "macos" {
                "darwin".to_string()
            } else {
                s
            }
        };
        let mut p = Platform::default();
        match parts.as_slice() {
            [one] => {
                let o = os(one);
                if KNOWN_OS.contains(&o.as_str()) {
                    p = Platform {
                        os: o,
                        ..Platform::host()
                    };
                    return Ok(p);
                }
                let (a, v) = normalize_arch(one, "");
                if KNOWN_ARCH.contains(&a.as_str()) {
                    p.os = "linux".into();
                    p.architecture = a;
                    p.variant = v;
                    return Ok(p);
                }
                Err(format!(
                    "{spec:?}: unknown operating system or architecture: invalid argument"
                ))
            }
            [o, a] => {
                p.os = os(o);
                (p.architecture, p.variant) = normalize_arch(a, "");
                Ok(p)
            }
            [o, a, v] => {
                p.os = os(o);
                (p.architecture, p.variant) = normalize_arch(a, v);
                if p.architecture == "arm64" && p.variant.is_empty() {
                    p.variant = "v8".into();
                }
                Ok(p)
            }
            _ => Err(format!(
                "{spec:?}: cannot parse platform specifier: invalid argument"
            )),
        }
    }

    /// Whether an image of platform `self` serves a request for `want`:
    /// the same OS and architecture; variants only when both name one.
    pub fn serves(&self, want: &Platform) -> bool {
        let (a, _) = normalize_arch(&self.architecture, "");
        self.os.eq_ignore_ascii_case(&want.os)
            && a == want.architecture
            && (self.variant.is_empty() || want.variant.is_empty() || self.variant == want.variant)
    }
}

impl std::fmt::Display for Platform {
    /// `os/arch[/variant]`, as Docker formats a platform in its messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// containerd's `normalizeArch`: the Go name of an architecture and its
/// variant.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64".into(),
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "aarch64" | "arm64" => (
            "arm64".into(),
            match variant.as_str() {
                "8" | "v8" => String::new(),
                _ => variant,
            },
        ),
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => (
            "arm".into(),
            match variant.as_str() {
                "" | "7" | "v7" => String::new(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        _ => (arch, variant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms_normalise() {
        let host = Platform::host();
        for s in ["linux", "Linux", "LINUX/AMD64", "linux/x86_64", "x86_64"] {
            if host.architecture == "amd64" {
                assert_eq!(Platform::parse(s).unwrap(), host, "{s}");
            }
        }
        let p = Platform::parse("linux/amd64/v2").unwrap();
        assert_eq!(
            (p.architecture.as_str(), p.variant.as_str()),
            ("amd64", "v2")
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(Platform::parse("i386").unwrap().to_string(), "linux/386");
    }

    #[test]
    fn docker_errors() {
        assert_eq!(
            Platform::parse("bogus").unwrap_err(),
            "\"bogus\": unknown operating system or architecture: invalid argument"
        );
        assert_eq!(
            Platform::parse("bogus/x/y/z").unwrap_err(),
            "\"bogus/x/y/z\": cannot parse platform specifier: invalid argument"
        );
        assert_eq!(
            Platform::parse("linux/").unwrap_err(),
            "\"\" is an invalid component of \"linux/\": platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
        );
        assert_eq!(
            Platform::parse("*").unwrap_err(),
            "\"*\": wildcards not yet supported: invalid argument"
        );
    }

    #[test]
    fn variants_only_count_when_both_have_one() {
        let img = Platform::parse("linux/amd64").unwrap();
        assert!(img.serves(&Platform::parse("linux/amd64/v9").unwrap()));
        assert!(!img.serves(&Platform::parse("linux/arm64").unwrap()));
        assert!(!img.serves(&Platform::parse("windows/amd64").unwrap()));
    }
}
