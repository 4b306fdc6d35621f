//! Docker's credential store: `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`), so a user's existing `docker login` works
//! unchanged and a `berth login` works for docker.
//!
//! Credentials live in the file's `auths` (`auth` is base64 of
//! `user:password`, `identitytoken` an OAuth2 refresh token), or in a
//! `docker-credential-<name>` helper named by `credHelpers[registry]` or
//! `credsStore`, spoken to on stdin/stdout in its JSON protocol
//! (`get`/`store`/`erase`).
//!
//! Invariants: the file is rewritten atomically (a temporary file of mode
//! 0600 beside it, renamed over it), every key berth does not own kept as
//! it was; a secret is never part of an error, a log line or a `Debug`.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

/// Docker Hub's key in `auths` and for helpers, as Docker writes it.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The username a helper returns for an identity token (Docker's).
const TOKEN_USERNAME: &str = "<token>";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("credential helper docker-credential-{helper}: {reason}")]
    Helper { helper: String, reason: String },
    #[error("cannot find the docker config directory: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir,
}

/// A registry login. `Debug` never shows the secrets.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token the registry's token server gave for
    /// these credentials (Docker Hub's `identitytoken`).
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The key a registry has in `auths` and in helpers: Docker Hub's
/// `https://index.docker.io/v1/`, `host[:port]` for any other (a scheme
/// and a path are dropped, as Docker's `ConvertToHostname`).
pub fn registry_key(server: &str) -> String {
    let host = hostname(server);
    match host.as_str() {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        _ => host,
    }
}

/// `https://host:port/path` → `host:port`.
fn hostname(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or("").to_string()
}

/// Where Docker's config directory is: `$DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn config_dir() -> Result<PathBuf, CredentialsError> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".docker")),
        None => Err(CredentialsError::NoConfigDir),
    }
}

/// Docker's `config.json`, as read (every key kept for the rewrite).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfig {
    /// The user's config file (see [`config_dir`]); a missing file is an
    /// empty config.
    pub fn load_default() -> Result<DockerConfig, CredentialsError> {
        DockerConfig::load(&config_dir()?.join("config.json"))
    }

    /// The config file at `path`; a missing or empty file is an empty config.
    pub fn load(path: &Path) -> Result<DockerConfig, CredentialsError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CredentialsError::Io {
                    context: "cannot read",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let doc = if text.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(CredentialsError::Malformed {
                        path: path.to_path_buf(),
                        reason: "not a JSON object".into(),
                    })
                }
                Err(e) => {
                    return Err(CredentialsError::Malformed {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })
                }
            }
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for `server`: `credHelpers[key]`, else
    /// `credsStore`.
    pub fn helper_for(&self, server: &str) -> Option<&str> {
        let key = registry_key(server);
        self.doc
            .get("credHelpers")
            .and_then(|h| h.get(&key))
            .and_then(Value::as_str)
            .or_else(|| self.doc.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
    }

    /// The credentials stored for `server`, if any.
    pub fn get(&self, server: &str) -> Result<Option<Credentials>, CredentialsError> {
        let key = registry_key(server);
        if let Some(helper) = self.helper_for(server) {
            return helper_get(helper, &key);
        }
        let Some((_, entry)) = self.auth_entry(&key) else {
            return Ok(None);
        };
        let mut creds = Credentials::default();
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let bad = |reason: &str| CredentialsError::Malformed {
                path: self.path.clone(),
                reason: format!("auths[{key:?}].auth: {reason}"),
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("not base64"))?;
            let text = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
            let (user, pw) = text
                .split_once(':')
                .ok_or_else(|| bad("not user:password"))?;
            creds.username = user.to_string();
            creds.password = pw.trim_end_matches('\0').to_string();
        }
        creds.identity_token = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(String::from);
        if creds.username.is_empty() && creds.identity_token.is_none() {
            return Ok(None);
        }
        Ok(Some(creds))
    }

    /// The `auths` entry of `key`, also under a key Docker would match to
    /// it (`https://host`, `http://host/v2/`).
    fn auth_entry(&self, key: &str) -> Option<(&String, &Map<String, Value>)> {
        let auths = self.doc.get("auths")?.as_object()?;
        if let Some((k, Value::Object(e))) = auths.get_key_value(key) {
            return Some((k, e));
        }
        auths.iter().find_map(|(k, v)| match v {
            Value::Object(e) if registry_key(k) == key => Some((k, e)),
            _ => None,
        })
    }

    /// Stores `creds` for `server` (in its helper, or in `auths`) and
    /// writes the file.
    pub fn store(&mut self, server: &str, creds: &Credentials) -> Result<(), CredentialsError> {
        let key = registry_key(server);
        let mut entry = Map::new();
        if let Some(helper) = self.helper_for(server).map(String::from) {
            helper_store(&helper, &key, creds)?;
        } else {
            let pair = format!("{}:{}", creds.username, creds.password);
            entry.insert(
                "auth".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(pair)),
            );
            if let Some(t) = &creds.identity_token {
                entry.insert("identitytoken".into(), Value::String(t.clone()));
            }
        }
        if !self.doc.contains_key("auths") {
            // Docker writes `auths` first.
            let mut doc = Map::new();
            doc.insert("auths".into(), Value::Object(Map::new()));
            doc.append(&mut self.doc);
            self.doc = doc;
        }
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(a) = auths {
            a.insert(key, Value::Object(entry));
        }
        self.save()
    }

    /// Removes the credentials of `server` from its helper and from
    /// `auths` (every key Docker matches to it) and writes the file if
    /// that changed it.
    pub fn erase(&mut self, server: &str) -> Result<(), CredentialsError> {
        let key = registry_key(server);
        if let Some(helper) = self.helper_for(server).map(String::from) {
            helper_erase(&helper, &key)?;
        }
        let mut removed = false;
        if let Some(Value::Object(auths)) = self.doc.get_mut("auths") {
            let before = auths.len();
            auths.retain(|k, _| registry_key(k) != key);
            removed = auths.len() != before;
        }
        // Nothing was there: nothing is written (no file made), as Docker.
        if removed {
            self.save()?;
        }
        Ok(())
    }

    /// Writes the file atomically, mode 0600, indented with tabs as
    /// Docker writes it; a symlinked config.json is written through.
    pub fn save(&self) -> Result<(), CredentialsError> {
        let target = fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = target.parent().unwrap_or(Path::new("."));
        let io = |context, path: &Path| {
            let path = path.to_path_buf();
            move |source| CredentialsError::Io {
                context,
                path,
                source,
            }
        };
        fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let mut text = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(
            &mut text,
            serde_json::ser::PrettyFormatter::with_indent(b"\t"),
        );
        serde::Serialize::serialize(&self.doc, &mut ser).map_err(|e| {
            CredentialsError::Malformed {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        })?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.json".into());
        static SAVES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, &target)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io("cannot write", &target)(e));
        }
        Ok(())
    }
}

/// Runs `docker-credential-<helper> <verb>` with `input` on stdin: its
/// stdout, or None when it says the credentials are not there.
fn helper_call(
    helper: &str,
    verb: &str,
    input: &[u8],
) -> Result<Option<Vec<u8>>, CredentialsError> {
    let err = |reason: String| CredentialsError::Helper {
        helper: helper.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its status.
        let _ = stdin.write_all(input);
    }
    // Both pipes drained together: a chatty helper cannot stall it.
    let output = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let (out, errout, status) = (output.stdout, output.stderr, output.status);
    if status.success() {
        return Ok(Some(out));
    }
    let msg = String::from_utf8_lossy(&out).trim().to_string();
    if msg.contains("credentials not found") {
        return Ok(None);
    }
    let msg = if msg.is_empty() {
        String::from_utf8_lossy(&errout).trim().to_string()
    } else {
        msg
    };
    Err(err(if msg.is_empty() {
        format!("{verb} failed: {status}")
    } else {
        msg
    }))
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>, CredentialsError> {
    let Some(out) = helper_call(helper, "get", key.as_bytes())? else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let r: Reply = serde_json::from_slice(&out).map_err(|e| CredentialsError::Helper {
        helper: helper.to_string(),
        reason: format!("malformed reply to get: {e}"),
    })?;
    if r.username.is_empty() && r.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if r.username == TOKEN_USERNAME {
        Credentials {
            username: String::new(),
            password: String::new(),
            identity_token: Some(r.secret),
        }
    } else {
        Credentials {
            username: r.username,
            password: r.secret,
            identity_token: None,
        }
    }))
}

fn helper_store(helper: &str, key: &str, creds: &Credentials) -> Result<(), CredentialsError> {
    let (user, secret) = match &creds.identity_token {
        Some(t) => (TOKEN_USERNAME, t.as_str()),
        None => (creds.username.as_str(), creds.password.as_str()),
    };
    let input = serde_json::json!({"ServerURL": key, "Username": user, "Secret": secret});
    helper_call(helper, "store", input.to_string().as_bytes())?;
    Ok(())
}

fn helper_erase(helper: &str, key: &str) -> Result<(), CredentialsError> {
    helper_call(helper, "erase", key.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
            identity_token: None,
        }
    }

    #[test]
    fn keys_as_docker_writes_them() {
        for hub in [
            "",
            "docker.io",
            "index.docker.io",
            DOCKER_HUB_KEY,
            "registry-1.docker.io",
        ] {
            assert_eq!(registry_key(hub), DOCKER_HUB_KEY, "{hub}");
        }
        assert_eq!(registry_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_key("https://ghcr.io/v2/"), "ghcr.io");
        assert_eq!(registry_key("http://localhost:5000"), "localhost:5000");
    }

    #[test]
    fn store_keeps_other_keys_and_writes_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"psFormat":"table {{.ID}}","auths":{"other:1":{"auth":"eDp5"}},"proxies":{"default":{}}}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load(&path).unwrap();
        c.store("http://127.0.0.1:5000/", &creds("alice", "s3:cret"))
            .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["auths"]["other:1"]["auth"], "eDp5");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "YWxpY2U6czM6Y3JldA==");
        assert!(v["proxies"]["default"].is_object());
        assert!(text.starts_with("{\n\t\""), "{text}");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = DockerConfig::load(&path).unwrap();
        assert_eq!(
            again.get("127.0.0.1:5000").unwrap(),
            Some(creds("alice", "s3:cret"))
        );
        assert_eq!(again.get("other:1").unwrap(), Some(creds("x", "y")));
        assert_eq!(again.get("nothere:1").unwrap(), None);
        // Only the new file and the config: no temporary left.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn erase_removes_every_matching_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"https://reg:5000":{"auth":"eDp5"},"reg:5000":{"auth":"eDp5"},"keep:1":{}}}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load(&path).unwrap();
        assert_eq!(c.get("reg:5000").unwrap(), Some(creds("x", "y")));
        c.erase("reg:5000").unwrap();
        let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["auths"], serde_json::json!({"keep:1": {}}));
    }

    #[test]
    fn identity_token_and_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"r:1":{"auth":"","identitytoken":"s3cr3t-refresh"}}}"#,
        )
        .unwrap();
        let c = DockerConfig::load(&path).unwrap();
        let got = c.get("r:1").unwrap().unwrap();
        assert_eq!(got.identity_token.as_deref(), Some("s3cr3t-refresh"));
        assert!(!format!("{got:?}").contains("s3cr3t"));
        fs::write(&path, r#"{"auths":{"r:1":{"auth":"!!"}}}"#).unwrap();
        let e = DockerConfig::load(&path).unwrap().get("r:1").unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        fs::write(&path, "[1]").unwrap();
        assert!(DockerConfig::load(&path).is_err());
        let missing = DockerConfig::load(&dir.path().join("none.json")).unwrap();
        assert_eq!(missing.get("r:1").unwrap(), None);
    }

    #[test]
    fn debug_hides_the_password() {
        let s = format!("{:?}", creds("alice", "hunter2"));
        assert!(s.contains("alice") && !s.contains("hunter2"), "{s}");
    }

    /// A `docker-credential-<name>` that keeps one registry's credentials
    /// in a file beside it.
    fn fake_helper(dir: &Path, name: &str) -> PathBuf {
        let script = dir.join(format!("docker-credential-{name}"));
        let store = dir.join("store.json");
        fs::write(
            &script,
            format!(
                r#"#!/bin/sh
in=$(cat)
case "$1" in
  store) printf '%s' "$in" > {s} ;;
  get) if [ -f {s} ] && grep -q "\"ServerURL\":\"$in\"" {s}; then cat {s}; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) rm -f {s} ;;
  *) exit 2 ;;
esac
"#,
                s = store.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        store
    }

    #[test]
    fn helpers_get_store_erase() {
        let dir = tempfile::tempdir().unwrap();
        let store = fake_helper(dir.path(), "unit");
        // Each test process has its own environment; PATH gets the helper.
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::env::set_var("PATH", path);
        let cfg = dir.path().join("config.json");
        fs::write(&cfg, r#"{"credHelpers":{"reg:5000":"unit"}}"#).unwrap();
        let mut c = DockerConfig::load(&cfg).unwrap();
        assert_eq!(c.helper_for("reg:5000"), Some("unit"));
        assert_eq!(c.helper_for("other:1"), None);
        assert_eq!(c.get("reg:5000").unwrap(), None);
        c.store("reg:5000", &creds("bob", "pw")).unwrap();
        let text = fs::read_to_string(&cfg).unwrap();
        assert!(!text.contains("pw") && !text.contains("auth\""), "{text}");
        // `auths` comes first, as Docker writes it.
        assert!(text.starts_with("{\n\t\"auths\""), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["auths"]["reg:5000"], serde_json::json!({}));
        assert!(fs::read_to_string(&store)
            .unwrap()
            .contains("\"Secret\":\"pw\""));
        assert_eq!(c.get("reg:5000").unwrap(), Some(creds("bob", "pw")));
        c.erase("reg:5000").unwrap();
        assert!(!store.exists());
        assert_eq!(c.get("reg:5000").unwrap(), None);
        // A helper that is not there is an error naming it.
        fs::write(&cfg, r#"{"credsStore":"absent-xyz"}"#).unwrap();
        let e = DockerConfig::load(&cfg).unwrap().get("r:1").unwrap_err();
        assert!(
            e.to_string().contains("docker-credential-absent-xyz"),
            "{e}"
        );
    }
}
