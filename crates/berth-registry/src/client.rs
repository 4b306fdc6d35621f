//! A blocking client of the distribution API: manifests (verified, at most
//! 4 MiB), blobs streamed with resumption by HTTP range, and HEAD of a
//! blob. A 401 asks [`Auth`] once; 429, 5xx and dropped connections are
//! retried a bounded number of times with back-off.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_types::Digest;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use ureq::http::{Response, StatusCode};
use ureq::Body;

use crate::endpoint::Endpoint;
use crate::manifest::{Manifest, ACCEPT};
use crate::{Auth, RegistryError};

/// The largest manifest or index berth accepts (as containerd's limit).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// How often and how patiently a request is retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request (and per resumption of a blob), the first included.
    pub attempts: u32,
    /// The first back-off; doubled after each failure.
    pub backoff: Duration,
    /// The longest wait, also the cap on a 429's Retry-After.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(200),
            max_wait: Duration::from_secs(10),
        }
    }
}

/// A manifest as it came, with the digest it was verified against.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

pub struct Client {
    agent: ureq::Agent,
    auth: Arc<dyn Auth>,
    policy: RetryPolicy,
    /// Authorization header values by scope, got from `auth` after a 401.
    pub(crate) authorized: Mutex<HashMap<String, String>>,
}

/// The registry's error body: `{"errors":[{"code":…,"message":…}]}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}
#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Clone, Copy)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
}

/// Opens a request body afresh for each attempt.
pub type BodyOpener<'b> = &'b (dyn Fn() -> io::Result<Box<dyn Read + 'b>> + Sync);

impl Client {
    pub fn new(auth: Arc<dyn Auth>) -> Client {
        Client::with_policy(auth, RetryPolicy::default())
    }

    pub fn with_policy(auth: Arc<dyn Auth>, policy: RetryPolicy) -> Client {
        Client::with_agent(agent(None), auth, policy)
    }

    /// A client sending through `agent` (made by [`agent`], with the TLS
    /// configuration of [`crate::settings::Settings`]).
    pub fn with_agent(agent: ureq::Agent, auth: Arc<dyn Auth>, policy: RetryPolicy) -> Client {
        Client {
            agent,
            auth,
            policy,
            authorized: Mutex::new(HashMap::new()),
        }
    }

    /// GETs the manifest `reference` (a tag or `sha256:…`) of `ep`, checks
    /// its size and digest (the pinned one, and Docker-Content-Digest), and
    /// parses it.
    pub fn manifest(&self, ep: &Endpoint, reference: &str) -> Result<Fetched, RegistryError> {
        let url = ep.url(&format!("manifests/{reference}"));
        let resp = self.send(ep, Method::Get, &url, &[("Accept", ACCEPT)])?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(ep, Some(reference), resp));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let media_type = header("content-type").unwrap_or_default();
        let announced = header("docker-content-digest");
        if let Some(len) = header("content-length").and_then(|l| l.parse::<u64>().ok()) {
            if len > MAX_MANIFEST {
                return Err(too_large(reference));
            }
        }
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Io {
                context: format!("cannot read the manifest {reference} from {}", ep.host),
                source: e,
            })?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(too_large(reference));
        }
        let digest = Digest::of_bytes(&bytes);
        if let Ok(pinned) = Digest::parse(reference) {
            if pinned != digest {
                return Err(RegistryError::Protocol(format!(
                    "manifest verification failed for digest {pinned}"
                )));
            }
        }
        if let Some(a) = announced.filter(|a| a.starts_with("sha256:")) {
            if a != digest.as_str() {
                return Err(RegistryError::Protocol(format!(
                    "manifest verification failed for digest {a}"
                )));
            }
        }
        let manifest = Manifest::parse(&bytes, &media_type)?;
        Ok(Fetched {
            digest,
            media_type,
            bytes,
            manifest,
        })
    }

    /// The tags of `ep`'s repository (`tags/list`, first page).
    pub fn tags(&self, ep: &Endpoint) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let url = ep.url("tags/list");
        let resp = self.send(ep, Method::Get, &url, &[])?;
        if !resp.status().is_success() {
            return Err(self.status_error(ep, None, resp));
        }
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_MANIFEST)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Io {
                context: format!("cannot read the tags of {}", ep.repository),
                source: e,
            })?;
        let list: TagList = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Protocol(format!("invalid tag list: {e}")))?;
        let mut tags = list.tags.unwrap_or_default();
        tags.sort();
        Ok(tags)
    }

    /// The size of blob `digest` in `ep`, or None if the registry lacks it.
    pub fn head_blob(&self, ep: &Endpoint, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let url = ep.url(&format!("blobs/{digest}"));
        let resp = self.send(ep, Method::Head, &url, &[])?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(ep, None, resp)),
        }
    }

    /// A reader of blob `digest` of `ep` from its start. Unverified: the
    /// caller hashes what it reads. A dropped connection is resumed from
    /// where it broke (HTTP range), within the retry policy.
    pub fn blob<'c>(
        &'c self,
        ep: &Endpoint,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobReader<'c>, RegistryError> {
        self.blob_from(ep, digest, size, 0)
    }

    /// [`Client::blob`] from byte `offset` on (HTTP `Range`; a registry
    /// that ignores ranges has the first bytes skipped): the rest of a
    /// download an earlier process stopped.
    pub fn blob_from<'c>(
        &'c self,
        ep: &Endpoint,
        digest: &Digest,
        size: Option<u64>,
        offset: u64,
    ) -> Result<BlobReader<'c>, RegistryError> {
        let mut r = BlobReader {
            client: self,
            ep: ep.clone(),
            digest: digest.clone(),
            size,
            offset,
            body: None,
            failures: 0,
        };
        r.open()?;
        Ok(r)
    }

    /// Sends a request, answering one 401 through [`Auth`] and retrying
    /// 429, 5xx and transport failures with back-off.
    fn send(
        &self,
        ep: &Endpoint,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response<Body>, RegistryError> {
        self.send_with(ep, method, url, headers, &ep.pull_scope(), None)
    }

    /// [`Client::send`] with a scope and, for POST and PUT, a body.
    pub(crate) fn send_with(
        &self,
        ep: &Endpoint,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        scope: &str,
        body: Option<BodyOpener<'_>>,
    ) -> Result<Response<Body>, RegistryError> {
        let scope = scope.to_string();
        let mut asked_auth = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let authz = self
                .authorized
                .lock()
                .ok()
                .and_then(|m| m.get(&scope).cloned());
            let res = match method {
                Method::Get => {
                    let mut rb = self.agent.get(url);
                    for (k, v) in headers {
                        rb = rb.header(*k, *v);
                    }
                    if let Some(a) = &authz {
                        rb = rb.header("Authorization", a.as_str());
                    }
                    rb.call()
                }
                Method::Head => {
                    let mut rb = self.agent.head(url);
                    for (k, v) in headers {
                        rb = rb.header(*k, *v);
                    }
                    if let Some(a) = &authz {
                        rb = rb.header("Authorization", a.as_str());
                    }
                    rb.call()
                }
                Method::Post | Method::Put | Method::Patch => {
                    let mut rb = match method {
                        Method::Post => self.agent.post(url),
                        Method::Patch => self.agent.patch(url),
                        _ => self.agent.put(url),
                    };
                    for (k, v) in headers {
                        rb = rb.header(*k, *v);
                    }
                    if let Some(a) = &authz {
                        rb = rb.header("Authorization", a.as_str());
                    }
                    match body {
                        Some(open) => {
                            let mut r = open().map_err(|e| RegistryError::Io {
                                context: "cannot read what is to be uploaded".into(),
                                source: e,
                            })?;
                            rb.send(ureq::SendBody::from_reader(&mut r))
                        }
                        None => rb.send_empty(),
                    }
                }
            };
            let resp = match res {
                Ok(r) => r,
                Err(e) => {
                    if attempt >= self.policy.attempts || !transient(&e) {
                        return Err(transport_error(ep, e));
                    }
                    std::thread::sleep(self.backoff(attempt));
                    continue;
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !asked_auth {
                asked_auth = true;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if let Some(h) = self.auth.authorize(&ep.registry, &challenge, &scope)? {
                    if let Ok(mut m) = self.authorized.lock() {
                        m.insert(scope.clone(), h);
                    }
                    attempt -= 1;
                    continue;
                }
                return Ok(resp);
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && attempt < self.policy.attempts {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or_else(|| self.backoff(attempt))
                    .min(self.policy.max_wait);
                std::thread::sleep(wait);
                continue;
            }
            return Ok(resp);
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(10);
        self.policy
            .backoff
            .saturating_mul(factor)
            .min(self.policy.max_wait)
    }

    /// The error for an unsuccessful answer, in Docker's words.
    pub(crate) fn status_error(
        &self,
        ep: &Endpoint,
        manifest: Option<&str>,
        resp: Response<Body>,
    ) -> RegistryError {
        let status = resp.status();
        let mut body = Vec::new();
        let _ = resp
            .into_body()
            .into_reader()
            .take(64 << 10)
            .read_to_end(&mut body);
        let errors = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.errors)
            .unwrap_or_default();
        let first = errors.first();
        let code = first.map(|e| e.code.as_str()).unwrap_or("");
        // Go's errcode.Error: "<code's message>: <message>".
        let detail = match first {
            Some(e) => format!(
                "{}: {}",
                code.to_ascii_lowercase().replace('_', " "),
                e.message
            ),
            None => format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        };
        let repo = familiar_repository(ep);
        match (status, code) {
            (StatusCode::UNAUTHORIZED, _) | (_, "DENIED") | (_, "NAME_UNKNOWN") => {
                RegistryError::Unauthorized(format!(
                    "pull access denied for {repo}, repository does not exist or may require 'docker login': {detail}"
                ))
            }
            (StatusCode::NOT_FOUND, _) => match manifest {
                Some(m) => {
                    let sep = if m.starts_with("sha256:") { '@' } else { ':' };
                    RegistryError::NotFound(format!("manifest for {repo}{sep}{m} not found: {detail}"))
                }
                None => RegistryError::NotFound(detail),
            },
            _ => RegistryError::Protocol(format!(
                "received unexpected HTTP status: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string()),
        }
    }
}

/// The HTTP agent of a client: statuses as answers, berth's timeouts and
/// User-Agent, and `tls` (None: the default roots, verified).
pub fn agent(tls: Option<ureq::tls::TlsConfig>) -> ureq::Agent {
    let mut b = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = tls {
        b = b.tls_config(t);
    }
    b.build().into()
}

fn too_large(reference: &str) -> RegistryError {
    RegistryError::Protocol(format!(
        "manifest {reference} is larger than the {} MiB limit",
        MAX_MANIFEST >> 20
    ))
}

/// The repository as Docker names it in messages (`busybox`,
/// `127.0.0.1:5000/a`).
fn familiar_repository(ep: &Endpoint) -> String {
    if ep.registry == crate::endpoint::DOCKER_HUB {
        match ep.repository.strip_prefix("library/") {
            Some(r) if !r.contains('/') => r.to_string(),
            _ => ep.repository.clone(),
        }
    } else {
        format!("{}/{}", ep.registry, ep.repository)
    }
}

/// A failure worth another try: a dropped or timed-out connection, not a
/// refused one (nothing listens there) or a name that does not resolve.
fn transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => {
            io.kind() != io::ErrorKind::ConnectionRefused && !tls_verification(&io.to_string())
        }
        ureq::Error::Timeout(_) | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

fn transport_error(ep: &Endpoint, e: ureq::Error) -> RegistryError {
    let url = format!("{}://{}/v2/", ep.scheme.as_str(), ep.host);
    RegistryError::Protocol(format!("Get \"{url}\": {}", transport_text(&e)))
}

/// A transport failure in Go's words, as Docker prints them.
pub(crate) fn transport_text(e: &ureq::Error) -> String {
    let text = match e {
        ureq::Error::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
            io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
            _ => io.to_string(),
        },
        ureq::Error::HostNotFound => "no such host".to_string(),
        other => other.to_string(),
    };
    tls_words(&text).map_or(text, str::to_string)
}

/// Whether a transport error is a failed certificate check or a server
/// that does not speak TLS (neither is worth another try).
fn tls_verification(text: &str) -> bool {
    text.contains("invalid peer certificate")
        || text.contains("received corrupt message")
        || text.contains("received fatal alert")
}

/// Go's words for rustls' certificate failures, as Docker prints them.
fn tls_words(text: &str) -> Option<&'static str> {
    if text.starts_with("received corrupt message of type InvalidContentType") {
        return Some("http: server gave HTTP response to HTTPS client");
    }
    match text {
        "received fatal alert: BadCertificate" => {
            return Some("remote error: tls: bad certificate")
        }
        "received fatal alert: CertificateRequired" => {
            return Some("remote error: tls: certificate required")
        }
        _ => {}
    }
    let why = text.strip_prefix("invalid peer certificate: ")?;
    Some(match why {
        "UnknownIssuer" => {
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        }
        "Expired" | "NotValidYet" => {
            "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
        }
        _ if why.starts_with("certificate not valid for name") => {
            "tls: failed to verify certificate: x509: certificate is not valid for this host"
        }
        _ => return None,
    })
}

/// A blob's bytes as the registry sends them, resumed by range after a
/// dropped connection.
pub struct BlobReader<'c> {
    client: &'c Client,
    ep: Endpoint,
    digest: Digest,
    size: Option<u64>,
    offset: u64,
    body: Option<ureq::BodyReader<'static>>,
    /// Failures since the last byte read.
    failures: u32,
}

impl BlobReader<'_> {
    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn open(&mut self) -> Result<(), RegistryError> {
        let url = self.ep.url(&format!("blobs/{}", self.digest));
        let range = format!("bytes={}-", self.offset);
        let headers: &[(&str, &str)] = if self.offset > 0 {
            &[("Range", range.as_str())]
        } else {
            &[]
        };
        let resp = self.client.send(&self.ep, Method::Get, &url, headers)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(match self.client.status_error(&self.ep, None, resp) {
                RegistryError::NotFound(d) => {
                    RegistryError::NotFound(format!("blob {} not found: {d}", self.digest))
                }
                other => other,
            });
        }
        let mut body = resp.into_body().into_reader();
        if self.offset > 0 && status != StatusCode::PARTIAL_CONTENT {
            // The registry ignored the range: skip what we have.
            let skipped =
                io::copy(&mut (&mut body).take(self.offset), &mut io::sink()).map_err(|e| {
                    RegistryError::Io {
                        context: format!("cannot read blob {}", self.digest),
                        source: e,
                    }
                })?;
            if skipped != self.offset {
                return Err(RegistryError::Protocol(format!(
                    "blob {} is shorter than before",
                    self.digest
                )));
            }
        }
        self.body = Some(body);
        Ok(())
    }

    fn fail(&mut self, e: io::Error) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if self.failures >= self.client.policy.attempts {
            return Err(e);
        }
        std::thread::sleep(self.client.backoff(self.failures));
        self.open().map_err(io::Error::other)
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                self.open().map_err(io::Error::other)?;
                continue;
            };
            match body.read(buf) {
                Ok(0) => {
                    // The end, unless the descriptor promised more.
                    match self.size {
                        Some(s) if self.offset < s => {
                            self.fail(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!(
                                    "blob {} ended after {} of {s} bytes",
                                    self.digest, self.offset
                                ),
                            ))?;
                        }
                        _ => return Ok(0),
                    }
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.fail(e)?,
            }
        }
    }
}

/// sha256 of `bytes` (for callers that verify small documents).
pub fn sha256(bytes: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(bytes);
    Digest::from_hasher(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_types::Reference;

    fn ep(s: &str) -> Endpoint {
        Endpoint::of(&Reference::parse(s).unwrap())
    }

    #[test]
    fn repositories_are_named_as_docker_names_them() {
        assert_eq!(familiar_repository(&ep("busybox")), "busybox");
        assert_eq!(familiar_repository(&ep("me/app")), "me/app");
        assert_eq!(
            familiar_repository(&ep("127.0.0.1:5000/a/b")),
            "127.0.0.1:5000/a/b"
        );
    }

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let c = Client::with_policy(
            Arc::new(crate::auth::Anonymous),
            RetryPolicy {
                attempts: 5,
                backoff: Duration::from_millis(100),
                max_wait: Duration::from_millis(350),
            },
        );
        let waits: Vec<u128> = (1..=4).map(|a| c.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 350, 350]);
    }

    #[test]
    fn certificate_failures_in_gos_words_and_not_retried() {
        assert_eq!(
            tls_words("invalid peer certificate: UnknownIssuer"),
            Some(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )
        );
        assert_eq!(tls_words("connection reset"), None);
        assert_eq!(
            tls_words("received corrupt message of type InvalidContentType"),
            Some("http: server gave HTTP response to HTTPS client")
        );
        let bad = ureq::Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        ));
        assert!(!transient(&bad));
    }

    #[test]
    fn refused_connections_are_not_retried() {
        let refused = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        let reset = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(!transient(&refused));
        assert!(transient(&reset));
        assert!(!transient(&ureq::Error::HostNotFound));
        let e = transport_error(&ep("busybox"), refused);
        assert_eq!(
            e.to_string(),
            "Get \"https://registry-1.docker.io/v2/\": connect: connection refused"
        );
    }
}
