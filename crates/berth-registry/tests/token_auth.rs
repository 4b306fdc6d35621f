//! The Bearer-token flow against a small token server on 127.0.0.1
//! (tests/token_server.py): anonymous tokens, Basic credentials, identity
//! tokens through the OAuth2 form, the cache per scope, and login.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use berth_registry::auth::{verify_login, Anonymous, Credentialed};
use berth_registry::credentials::Credentials;
use berth_registry::{Auth, RegistryError};

struct Stub {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stub() -> Stub {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let log = dir.path().join("log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/token_server.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(&port_file)
        .arg(&log)
        .args(["alice", "pa:ss word"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(Instant::now() < deadline, "token server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    Stub {
        child,
        port,
        log,
        _dir: dir,
    }
}

impl Stub {
    fn challenge(&self, extra: &str) -> String {
        format!(
            r#"Bearer realm="http://127.0.0.1:{}/token",service="stub-registry",scope="repository:x/y:pull"{extra}"#,
            self.port
        )
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn alice(pw: &str) -> Credentials {
    Credentials {
        username: "alice".into(),
        password: pw.into(),
        identity_token: None,
    }
}

#[test]
fn anonymous_tokens_are_fetched_once_per_scope() {
    let s = stub();
    let reg = format!("127.0.0.1:{}", s.port);
    let h1 = Anonymous
        .authorize(&reg, &s.challenge(""), "")
        .unwrap()
        .unwrap();
    assert!(
        h1.starts_with("Bearer tok") && h1.ends_with("-anon"),
        "{h1}"
    );
    let h2 = Anonymous
        .authorize(&reg, &s.challenge(""), "")
        .unwrap()
        .unwrap();
    assert_eq!(h1, h2);
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0]["basic"], false);
    assert_eq!(reqs[0]["query"]["service"][0], "stub-registry");
    assert_eq!(reqs[0]["query"]["scope"][0], "repository:x/y:pull");
    // Another scope (the client's, beside the challenge's): another token.
    let h3 = Anonymous
        .authorize(&reg, &s.challenge(""), "repository:z:pull")
        .unwrap()
        .unwrap();
    assert_ne!(h1, h3);
    let reqs = s.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1]["query"]["scope"],
        serde_json::json!(["repository:z:pull", "repository:x/y:pull"])
    );
    // A realm with a query of its own keeps it.
    let with_query = s.challenge("").replace("/token\"", "/token?x=1\"");
    Anonymous
        .authorize(&reg, &with_query, "repository:q:pull")
        .unwrap()
        .unwrap();
    let last = s.requests().pop().unwrap();
    assert_eq!(last["query"]["x"][0], "1");
    assert_eq!(last["query"]["service"][0], "stub-registry");
    // A token the registry calls invalid is never offered again.
    let h4 = Anonymous
        .authorize(&reg, &s.challenge(r#",error="invalid_token""#), "")
        .unwrap()
        .unwrap();
    assert_ne!(h1, h4);
}

#[test]
fn basic_credentials_and_identity_tokens() {
    let s = stub();
    let reg = format!("127.0.0.1:{}", s.port);
    let a = Credentialed::with_credentials(Some(alice("pa:ss word")));
    let h = a.authorize(&reg, &s.challenge(""), "").unwrap().unwrap();
    assert!(h.starts_with("Bearer tok") && !h.ends_with("-anon"), "{h}");
    assert_eq!(a.refresh_token().as_deref(), Some("refresh-for-alice"));
    let first = &s.requests()[0];
    assert_eq!(first["basic"], true);
    // Docker's query: the account, and a refresh token asked for.
    assert_eq!(first["query"]["account"][0], "alice");
    assert_eq!(first["query"]["offline_token"][0], "true");

    let bad = Credentialed::with_credentials(Some(alice("nope")));
    match bad.authorize(&reg, &s.challenge(""), "") {
        Err(RegistryError::Unauthorized(m)) => {
            assert_eq!(m, "unauthorized: incorrect username or password");
        }
        other => panic!("{other:?}"),
    }

    let id = Credentialed::with_credentials(Some(Credentials {
        username: String::new(),
        password: String::new(),
        identity_token: Some("refresh-for-alice".into()),
    }));
    let h = id.authorize(&reg, &s.challenge(""), "").unwrap().unwrap();
    assert!(h.starts_with("Bearer tok"), "{h}");
    let last = s.requests().pop().unwrap();
    assert_eq!(last["method"], "POST");
    assert_eq!(last["refresh_ok"], true);
    assert_eq!(last["form"]["service"][0], "stub-registry");
    assert_eq!(last["form"]["scope"][0], "repository:x/y:pull");
    // No secret reached the server's log.
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(!log.contains("pa:ss") && !log.contains("nope"), "{log}");
}

#[test]
fn login_verifies_through_the_token_server() {
    let s = stub();
    let server = format!("http://127.0.0.1:{}", s.port);
    let got = verify_login(&server, &alice("pa:ss word")).unwrap();
    assert_eq!(got.as_deref(), Some("refresh-for-alice"));
    let e = verify_login(&server, &alice("wrong")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Get \"http://127.0.0.1:{}/v2/\": unauthorized: incorrect username or password",
            s.port
        )
    );
    // Without the scheme: https first, then plain http for loopback.
    let plain = format!("127.0.0.1:{}", s.port);
    assert!(verify_login(&plain, &alice("pa:ss word")).is_ok());
}
