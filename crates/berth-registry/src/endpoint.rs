//! Where a reference's registry is: the host to speak HTTP to, the
//! repository path on it, and the scheme.

use std::net::IpAddr;

use berth_types::Reference;

/// The registry of references without a domain.
pub const DOCKER_HUB: &str = "docker.io";

/// Docker Hub's API endpoint for references in `docker.io`.
pub const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// One repository on one registry, as the client addresses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The registry as a reference names it (`docker.io`,
    /// `127.0.0.1:5000`): what credentials are keyed by.
    pub registry: String,
    /// The host (and port) requests go to (`registry-1.docker.io`).
    pub host: String,
    /// The repository path on it (`library/busybox`).
    pub repository: String,
    pub scheme: Scheme,
}

impl Endpoint {
    /// The endpoint of `r`'s repository: Docker Hub's API host for
    /// `docker.io`, https unless the registry is on loopback.
    pub fn of(r: &Reference) -> Endpoint {
        let registry = r.domain().to_string();
        let host = if registry == crate::endpoint::DOCKER_HUB {
            DOCKER_HUB_ENDPOINT.to_string()
        } else {
            registry.clone()
        };
        let scheme = if is_loopback(&host) {
            Scheme::Http
        } else {
            Scheme::Https
        };
        Endpoint {
            registry,
            host,
            repository: r.path().to_string(),
            scheme,
        }
    }

    /// `https://host/v2/<repository>/<rest>`
    pub fn url(&self, rest: &str) -> String {
        format!(
            "{}://{}/v2/{}/{rest}",
            self.scheme.as_str(),
            self.host,
            self.repository
        )
    }

    /// The token scope a pull needs (`repository:library/busybox:pull`).
    pub fn pull_scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }
}

/// Whether `host` (`host`, `host:port`, `[::1]:port`) is a loopback
/// address or `localhost`: such registries are spoken to in plain http, as
/// Docker treats 127.0.0.0/8 and ::1 as insecure registries.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        Endpoint::of(&Reference::parse(s).unwrap())
    }

    #[test]
    fn docker_hub_defaults() {
        let e = ep("busybox");
        assert_eq!(e.registry, "docker.io");
        assert_eq!(e.host, "registry-1.docker.io");
        assert_eq!(e.repository, "library/busybox");
        assert_eq!(e.scheme, Scheme::Https);
        assert_eq!(
            e.url("manifests/latest"),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        assert_eq!(e.pull_scope(), "repository:library/busybox:pull");
        assert_eq!(ep("me/app").repository, "me/app");
    }

    #[test]
    fn loopback_is_plain_http() {
        assert_eq!(ep("127.0.0.1:5000/a/b").scheme, Scheme::Http);
        assert_eq!(ep("127.0.0.1:5000/a/b").host, "127.0.0.1:5000");
        assert_eq!(ep("127.1.2.3:5000/a").scheme, Scheme::Http);
        assert_eq!(ep("localhost:5000/a").scheme, Scheme::Http);
        assert_eq!(ep("localhost/a").scheme, Scheme::Http);
        assert_eq!(ep("ghcr.io/a/b").scheme, Scheme::Https);
        assert_eq!(ep("10.0.0.1:5000/a").scheme, Scheme::Https);
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("[::2]:5000"));
        assert!(!is_loopback("localhost.example.com"));
    }
}
