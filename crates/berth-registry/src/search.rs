//! `search`: Docker Hub's v1 search API (`GET /v1/search?q=TERM&n=LIMIT`),
//! which other registries may offer too. A term whose first component is a
//! registry (`127.0.0.1:5000/busybox`, `quay.io/x`) is searched there.

use std::io::Read;

use serde::Deserialize;

use crate::RegistryError;

/// Where Docker Hub answers searches.
pub const DOCKER_HUB_INDEX: &str = "index.docker.io";
/// The largest answer read (a search result is small).
const MAX_BODY: u64 = 4 << 20;

/// One result, as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Debug, Deserialize)]
struct SearchResponse {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// The registry a term names, and the term to send it: Docker's split (a
/// first component with a `.` or a `:`, or `localhost`, is a registry).
pub fn split_term(term: &str) -> (String, String) {
    if let Some((first, rest)) = term.split_once('/') {
        if first.contains(['.', ':']) || first == "localhost" {
            let host = if first == "docker.io" || first == "index.docker.io" {
                DOCKER_HUB_INDEX.to_string()
            } else {
                first.to_string()
            };
            return (host, rest.to_string());
        }
    }
    (DOCKER_HUB_INDEX.to_string(), term.to_string())
}

/// Whether a registry is spoken to over plain http: loopback only.
pub fn is_loopback(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h == "::1"
        || h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Runs a search. `limit` is 1 to 100, as Docker's daemon checks.
pub fn search(
    agent: &ureq::Agent,
    host: &str,
    term: &str,
    limit: u32,
) -> Result<Vec<SearchResult>, RegistryError> {
    if !(1..=100).contains(&limit) {
        return Err(RegistryError::Protocol(format!(
            "Limit {limit} is outside the range of [1, 100]"
        )));
    }
    let scheme = if is_loopback(host) { "http" } else { "https" };
    let url = format!("{scheme}://{host}/v1/search");
    let resp = agent
        .get(&url)
        .query("q", term)
        .query("n", limit.to_string())
        .call()
        .map_err(|e| RegistryError::Protocol(format!("Get \"{url}?q={term}&n={limit}\": {e}")))?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .map_err(|e| RegistryError::Io {
            context: format!("reading the search results of {host}"),
            source: e,
        })?;
    match status {
        200 => {}
        404 => {
            return Err(RegistryError::NotFound(format!(
                "Unexpected status code 404 from {url}: the registry does not offer search"
            )))
        }
        401 => {
            return Err(RegistryError::Unauthorized(format!(
                "unauthorized: authentication required for {host}"
            )))
        }
        s => {
            return Err(RegistryError::Protocol(format!(
                "Unexpected status code {s} from {url}"
            )))
        }
    }
    let r: SearchResponse = serde_json::from_slice(&body).map_err(|e| {
        RegistryError::Protocol(format!("invalid search response from {host}: {e}"))
    })?;
    Ok(r.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry_as_docker_splits_them() {
        assert_eq!(
            split_term("busybox"),
            ("index.docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_term("someone/tool"),
            ("index.docker.io".into(), "someone/tool".into())
        );
        assert_eq!(
            split_term("127.0.0.1:5000/busybox"),
            ("127.0.0.1:5000".into(), "busybox".into())
        );
        assert_eq!(split_term("quay.io/x/y"), ("quay.io".into(), "x/y".into()));
        assert_eq!(split_term("localhost/x"), ("localhost".into(), "x".into()));
        assert_eq!(
            split_term("docker.io/x"),
            ("index.docker.io".into(), "x".into())
        );
    }

    #[test]
    fn only_loopback_is_plain_http() {
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:80",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "index.docker.io",
            "10.0.0.1:5000",
            "example.com:443",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
