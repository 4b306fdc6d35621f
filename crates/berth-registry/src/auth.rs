//! The challenge flow: a 401's `WWW-Authenticate` answered with Basic
//! credentials or a Bearer token from the registry's token server
//! (anonymous, with Basic credentials, or with an identity token through
//! the OAuth2 form), tokens cached per (registry, scope) until they
//! expire; and [`verify_login`], what `berth login` asks of a registry.
//!
//! Never: a secret in an error, a log line or a `Debug`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::credentials::{Credentials, DockerConfig};
use crate::{Auth, RegistryError};

/// A token's life when the server does not say (Docker's minimum).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);
/// A token is not used in its last seconds (a request in flight outlives it).
const TOKEN_SLACK: Duration = Duration::from_secs(5);
/// The most of a token server's reply berth reads.
const MAX_TOKEN_REPLY: u64 = 1 << 20;
/// The client id berth gives token servers (Docker gives `docker`).
const CLIENT_ID: &str = "berth";

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower case (`basic`, `bearer`).
    pub scheme: String,
    /// Its parameters, names lower case, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value (RFC 7235): one or more challenges,
/// each a scheme and `name=value` parameters, values a token or a quoted
/// string (which may hold commas and `\"`). Malformed parts are skipped.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize, set: &[u8]| {
        while *i < s.len() && set.contains(&s[*i]) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && !b" \t,=\"".contains(&s[*i]) {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        skip(&mut i, b" \t,");
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            // A stray quote or '=': step over it.
            i += 1;
            continue;
        }
        let save = i;
        skip(&mut i, b" \t");
        if i < s.len() && s[i] == b'=' && !out.is_empty() {
            // name=value of the current challenge.
            i += 1;
            skip(&mut i, b" \t");
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut chars = header[i..].char_indices();
                let mut end = header.len() - i;
                while let Some((k, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            end = k + 1;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                i += end;
                v
            } else {
                token(&mut i)
            };
            if let Some(c) = out.last_mut() {
                c.params.push((word.to_ascii_lowercase(), value));
            }
        } else if i < s.len() && s[i] == b'=' {
            // A parameter before any scheme: not a challenge.
            i += 1;
            let _ = token(&mut i);
        } else {
            i = save;
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    out
}

/// Gives the agent a registry's token requests go through.
type AgentFor = dyn Fn(&str) -> Option<ureq::Agent> + Send + Sync;

/// A cached Bearer token.
#[derive(Clone)]
struct Token {
    header: String,
    until: Instant,
}

/// Answers challenges with the credentials of Docker's config file (or
/// given ones), anonymously where there are none.
pub struct Credentialed {
    source: Source,
    agent: ureq::Agent,
    /// The agent for a registry's token server (its certs.d CA, as Docker
    /// fetches tokens with the registry's own TLS settings); None: `agent`.
    agent_for: Option<Box<AgentFor>>,
    looked_up: Mutex<HashMap<String, Option<Credentials>>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
    refresh_token: Mutex<Option<String>>,
}

enum Source {
    Config(DockerConfig),
    Fixed(Option<Credentials>),
}

impl std::fmt::Debug for Credentialed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentialed { .. }")
    }
}

/// An agent that reports HTTP statuses as responses, with a deadline.
pub fn default_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Credentialed {
    /// The credentials of `config`, looked up per registry when first
    /// needed.
    pub fn from_config(config: DockerConfig) -> Credentialed {
        Credentialed::new(Source::Config(config))
    }

    /// The user's Docker config ([`DockerConfig::load_default`]); with
    /// neither `DOCKER_CONFIG` nor `HOME` set, no credentials (anonymous
    /// pulls still work). A config that cannot be read is an error.
    pub fn from_user_config() -> Result<Credentialed, RegistryError> {
        match DockerConfig::load_default() {
            Ok(c) => Ok(Credentialed::from_config(c)),
            Err(crate::credentials::CredentialsError::NoConfigDir) => {
                Ok(Credentialed::with_credentials(None))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// These credentials for every registry (`berth login` verifying
    /// them), or none at all (anonymous tokens only).
    pub fn with_credentials(creds: Option<Credentials>) -> Credentialed {
        Credentialed::new(Source::Fixed(creds))
    }

    fn new(source: Source) -> Credentialed {
        Credentialed {
            source,
            agent: default_agent(),
            agent_for: None,
            looked_up: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            refresh_token: Mutex::new(None),
        }
    }

    /// Token requests go through `agent` (the client's, with its CAs).
    pub fn with_agent(mut self, agent: ureq::Agent) -> Credentialed {
        self.agent = agent;
        self
    }

    /// Token requests for a registry go through the agent `f` gives for it
    /// (None: the default one): berth's settings give the registry's TLS
    /// configuration (its certs.d CA and client certificate).
    pub fn with_agent_for(
        mut self,
        f: impl Fn(&str) -> Option<ureq::Agent> + Send + Sync + 'static,
    ) -> Credentialed {
        self.agent_for = Some(Box::new(f));
        self
    }

    /// The refresh token a token server handed out for the credentials
    /// (asked for with `offline_token=true`): what `login` stores as the
    /// identity token.
    pub fn refresh_token(&self) -> Option<String> {
        self.refresh_token.lock().ok().and_then(|t| t.clone())
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        match &self.source {
            Source::Fixed(c) => Ok(c.clone()),
            Source::Config(config) => {
                if let Some(c) = self
                    .looked_up
                    .lock()
                    .ok()
                    .and_then(|m| m.get(registry).cloned())
                {
                    return Ok(c);
                }
                let c = config.get(registry)?;
                if let Ok(mut m) = self.looked_up.lock() {
                    m.insert(registry.to_string(), c.clone());
                }
                Ok(c)
            }
        }
    }

    fn bearer(
        &self,
        registry: &str,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let Some(realm) = challenge.param("realm").filter(|r| !r.is_empty()) else {
            return Err(RegistryError::Protocol(format!(
                "{registry}: Bearer challenge without a realm"
            )));
        };
        let mut scopes: Vec<&str> = scope.split_whitespace().collect();
        for s in challenge.param("scope").unwrap_or("").split_whitespace() {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let key = (registry.to_string(), scopes.join(" "));
        // A challenge that says the token was bad: never answer it again.
        let rejected = challenge.param("error").is_some();
        if let Ok(mut cache) = self.tokens.lock() {
            if rejected {
                cache.remove(&key);
            } else if let Some(t) = cache.get(&key) {
                if Instant::now() < t.until {
                    return Ok(Some(t.header.clone()));
                }
            }
        }
        let creds = self.credentials(registry)?;
        let service = challenge.param("service").unwrap_or("");
        let agent = self
            .agent_for
            .as_ref()
            .and_then(|f| f(registry))
            .unwrap_or_else(|| self.agent.clone());
        let reply = fetch_token(&agent, realm, service, &scopes, creds.as_ref())?;
        if let (Some(r), Ok(mut slot)) = (&reply.refresh_token, self.refresh_token.lock()) {
            *slot = Some(r.clone());
        }
        let header = format!("Bearer {}", reply.token);
        if let Ok(mut cache) = self.tokens.lock() {
            cache.insert(
                key,
                Token {
                    header: header.clone(),
                    until: Instant::now() + reply.life.saturating_sub(TOKEN_SLACK),
                },
            );
        }
        Ok(Some(header))
    }
}

impl Auth for Credentialed {
    fn authorize(
        &self,
        registry: &str,
        challenge: &str,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let challenges = parse_challenges(challenge);
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            return self.bearer(registry, c, scope);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return Ok(self
                .credentials(registry)?
                .filter(|c| !c.username.is_empty())
                .map(|c| basic_header(&c)));
        }
        Ok(None)
    }
}

/// No credentials: a Bearer challenge is answered with an anonymous token
/// (cached for the whole process), nothing else is.
#[derive(Debug, Default)]
pub struct Anonymous;

impl Auth for Anonymous {
    fn authorize(
        &self,
        registry: &str,
        challenge: &str,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        static ANONYMOUS: OnceLock<Credentialed> = OnceLock::new();
        ANONYMOUS
            .get_or_init(|| Credentialed::with_credentials(None))
            .authorize(registry, challenge, scope)
    }
}

fn basic_header(c: &Credentials) -> String {
    let pair = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

struct TokenReply {
    token: String,
    life: Duration,
    refresh_token: Option<String>,
}

/// Asks the token server at `realm` for a token: the OAuth2 form with an
/// identity token, else a GET with Basic credentials (or none).
fn fetch_token(
    agent: &ureq::Agent,
    realm: &str,
    service: &str,
    scopes: &[&str],
    creds: Option<&Credentials>,
) -> Result<TokenReply, RegistryError> {
    let transport = |e: ureq::Error| RegistryError::Protocol(format!("Get \"{realm}\": {e}"));
    let response = match creds.and_then(|c| c.identity_token.as_deref()) {
        Some(refresh) => {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", CLIENT_ID),
                ("service", service),
            ];
            let joined = scopes.join(" ");
            if !joined.is_empty() {
                form.push(("scope", &joined));
            }
            agent.post(realm).send_form(form).map_err(transport)?
        }
        None => {
            let mut req = agent.get(realm);
            if !service.is_empty() {
                req = req.query("service", service);
            }
            for s in scopes {
                req = req.query("scope", *s);
            }
            if let Some(c) = creds.filter(|c| !c.username.is_empty()) {
                req = req
                    .query("account", &c.username)
                    .query("offline_token", "true")
                    .query("client_id", CLIENT_ID)
                    .header("Authorization", basic_header(c));
            }
            req.call().map_err(transport)?
        }
    };
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .with_config()
        .limit(MAX_TOKEN_REPLY)
        .read_to_string()
        .map_err(transport)?;
    if status == 401 || status == 403 {
        return Err(RegistryError::Unauthorized(format!(
            "unauthorized: {}",
            error_message(&body).unwrap_or_else(|| "authentication required".into())
        )));
    }
    if !(200..300).contains(&status) {
        return Err(RegistryError::Protocol(format!(
            "token server {realm} answered {status}{}",
            error_message(&body)
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )));
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(default)]
        token: String,
        #[serde(default)]
        access_token: String,
        #[serde(default)]
        expires_in: u64,
        #[serde(default)]
        refresh_token: String,
    }
    let r: Reply = serde_json::from_str(&body).map_err(|e| {
        RegistryError::Protocol(format!("token server {realm}: malformed reply: {e}"))
    })?;
    let token = if r.token.is_empty() {
        r.access_token
    } else {
        r.token
    };
    if token.is_empty() {
        return Err(RegistryError::Protocol(format!(
            "token server {realm}: no token in its reply"
        )));
    }
    Ok(TokenReply {
        token,
        life: Duration::from_secs(r.expires_in).max(DEFAULT_TOKEN_LIFE),
        refresh_token: Some(r.refresh_token).filter(|t| !t.is_empty()),
    })
}

/// The message of a registry's or token server's error body:
/// `{"errors":[{"message":…}]}` or `{"details":…}`.
fn error_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let m = v
        .pointer("/errors/0/message")
        .or_else(|| v.get("details"))
        .or_else(|| v.get("error_description"))
        .or_else(|| v.get("error"))?;
    m.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// Where `berth login SERVER` checks credentials: Docker Hub's API host
/// for its key, `http://` when asked, else `https://` (with a plain-http
/// retry for a loopback registry, as Docker's insecure default).
pub fn login_endpoints(server: &str) -> Vec<String> {
    let key = crate::credentials::registry_key(server);
    if key == crate::credentials::DOCKER_HUB_KEY {
        return vec!["https://registry-1.docker.io".into()];
    }
    if server.trim().starts_with("http://") {
        return vec![format!("http://{key}")];
    }
    let host = key.rsplit_once(':').map_or(key.as_str(), |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            key.as_str()
        }
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let mut v = vec![format!("https://{key}")];
    if loopback {
        v.push(format!("http://{key}"));
    }
    v
}

/// What `berth login` asks of a registry: `GET /v2/`, its challenge
/// answered with `creds`, and 200 for the retry. Ok: the refresh token the
/// token server handed out, if any (stored as the identity token). Errors
/// read as Docker's (`login attempt to http://…/v2/ failed with status:
/// 401 Unauthorized`).
pub fn verify_login(server: &str, creds: &Credentials) -> Result<Option<String>, RegistryError> {
    verify_login_at(&default_agent(), &login_endpoints(server), server, creds)
}

/// [`verify_login`] through `agent` (the client's, with a registry's CA
/// and client certificate) at these base URLs, tried in turn while the
/// connection itself fails (`https://host:port`, then a plain-http one
/// for an insecure registry).
pub fn verify_login_at(
    agent: &ureq::Agent,
    endpoints: &[String],
    server: &str,
    creds: &Credentials,
) -> Result<Option<String>, RegistryError> {
    let mut last = None;
    for (n, base) in endpoints.iter().enumerate() {
        let url = format!("{base}/v2/");
        let first = match agent.get(&url).call() {
            Ok(r) => r,
            Err(e) => {
                // Transport errors only move on to plain http.
                last = Some(RegistryError::Protocol(format!(
                    "Get \"{url}\": {}",
                    crate::client::transport_text(&e)
                )));
                if n + 1 < endpoints.len() {
                    continue;
                }
                break;
            }
        };
        return login_at(agent, server, &url, first, creds);
    }
    Err(last.unwrap_or_else(|| RegistryError::Protocol(format!("no endpoint for {server}"))))
}

fn login_at(
    agent: &ureq::Agent,
    server: &str,
    url: &str,
    first: ureq::http::Response<ureq::Body>,
    creds: &Credentials,
) -> Result<Option<String>, RegistryError> {
    let failed = |status: u16| {
        let reason = ureq::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        RegistryError::Unauthorized(format!(
            "login attempt to {url} failed with status: {status} {reason}"
        ))
    };
    let status = first.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(None);
    }
    if status != 401 {
        return Err(failed(status));
    }
    let challenge = first
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let auth = Credentialed::with_credentials(Some(creds.clone())).with_agent(agent.clone());
    let header = match auth.authorize(server, &challenge, "") {
        Ok(Some(h)) => h,
        Ok(None) => return Err(failed(status)),
        Err(RegistryError::Unauthorized(m)) => {
            return Err(RegistryError::Unauthorized(format!("Get \"{url}\": {m}")))
        }
        Err(e) => return Err(e),
    };
    let again = agent
        .get(url)
        .header("Authorization", header)
        .call()
        .map_err(|e| RegistryError::Protocol(format!("Get \"{url}\": {e}")))?;
    let status = again.status().as_u16();
    if (200..300).contains(&status) {
        Ok(auth.refresh_token())
    } else {
        Err(failed(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push repository:c:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            p(&c[0]),
            vec![
                ("realm", "https://auth.docker.io/token"),
                ("service", "registry.docker.io"),
                ("scope", "repository:a/b:pull,push repository:c:pull"),
            ]
        );
    }

    #[test]
    fn parses_basic_tokens_escapes_and_several_challenges() {
        let c = parse_challenges(r#"Basic realm="my \"realm\"", charset=UTF-8"#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(
            p(&c[0]),
            vec![("realm", "my \"realm\""), ("charset", "UTF-8")]
        );
        let c = parse_challenges(
            r#"Basic realm="a, b" , BEARER Realm=http://t/token,error="invalid_token""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("http://t/token"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));
        assert_eq!(c[0].param("realm"), Some("a, b"));
    }

    #[test]
    fn malformed_headers_do_not_panic() {
        for h in [
            "",
            "=",
            "realm=x",
            "Bearer realm=\"unterminated",
            "Bearer ,,, =",
            "\"",
            "Basic realm",
        ] {
            let _ = parse_challenges(h);
        }
        assert_eq!(
            parse_challenges("Bearer realm=\"x")[0].param("realm"),
            Some("x")
        );
        assert!(parse_challenges("realm=x").is_empty());
        let c = parse_challenges("Bearer realm=\"h\u{e9}, \u{fc}\",service=\u{f1}x,scope=");
        assert_eq!(c[0].param("realm"), Some("h\u{e9}, \u{fc}"));
        assert_eq!(c[0].param("service"), Some("\u{f1}x"));
        assert_eq!(c[0].param("scope"), Some(""));
    }

    #[test]
    fn basic_answers_with_the_credentials_only() {
        let creds = Credentials {
            username: "alice".into(),
            password: "pw".into(),
            identity_token: None,
        };
        let a = Credentialed::with_credentials(Some(creds));
        assert_eq!(
            a.authorize("r:1", r#"Basic realm="x""#, "").unwrap(),
            Some("Basic YWxpY2U6cHc=".into())
        );
        let none = Credentialed::with_credentials(None);
        assert_eq!(
            none.authorize("r:1", r#"Basic realm="x""#, "").unwrap(),
            None
        );
        assert_eq!(Anonymous.authorize("r:1", "Negotiate", "").unwrap(), None);
    }

    /// A token is used until its time is up, then fetched again (the
    /// stub token server of tests/token_server.py; its time made up here
    /// rather than waited for).
    #[test]
    fn cached_tokens_expire() {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/token_server.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg(&port_file)
            .arg(dir.path().join("log"))
            .args(["u", "p"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "token server did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        let challenge = format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="s""#);
        let a = Credentialed::with_credentials(None);
        let first = a.authorize("r", &challenge, "repository:x:pull");
        let again = a.authorize("r", &challenge, "repository:x:pull");
        // The server's 300 s, less the slack.
        let life = a.tokens.lock().unwrap().values().next().unwrap().until - Instant::now();
        for t in a.tokens.lock().unwrap().values_mut() {
            t.until = Instant::now();
        }
        let after = a.authorize("r", &challenge, "repository:x:pull");
        let _ = child.kill();
        let _ = child.wait();
        let (first, again, after) = (first.unwrap(), again.unwrap(), after.unwrap());
        assert_eq!(first, again);
        assert_ne!(first, after);
        assert!(
            life > Duration::from_secs(290) && life <= Duration::from_secs(295),
            "{life:?}"
        );
    }

    #[test]
    fn login_endpoints_as_docker() {
        assert_eq!(login_endpoints(""), vec!["https://registry-1.docker.io"]);
        assert_eq!(
            login_endpoints("127.0.0.1:5000"),
            vec!["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert_eq!(login_endpoints("http://reg:5000/"), vec!["http://reg:5000"]);
        assert_eq!(login_endpoints("ghcr.io"), vec!["https://ghcr.io"]);
        assert_eq!(
            login_endpoints("localhost"),
            vec!["https://localhost", "http://localhost"]
        );
    }
}
