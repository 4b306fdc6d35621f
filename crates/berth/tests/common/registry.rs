//! A real registry for the pull tests: Debian's `docker-registry` (the
//! distribution server) on 127.0.0.1 with a free port, its own YAML config
//! and a temp storage directory, stopped by its PID when dropped.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::poll;

pub struct Registry {
    child: Child,
    dir: TempDir,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Registry {
    /// Starts an open registry and waits until it answers `GET /v2/`.
    pub fn start() -> Registry {
        super::enter_own_netns();
        Registry::start_with("")
    }

    /// Starts an open registry serving TLS with `cert` and `key` (PEM
    /// files), and waits until it answers. With `client_ca`, only clients
    /// with a certificate that CA signed are served (mutual TLS).
    pub fn start_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Registry {
        super::enter_own_netns();
        let mut extra = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        if let Some(ca) = client_ca {
            extra.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
        }
        Registry::start_with(&extra)
    }

    /// Starts a registry with `http_extra` appended to its `http:` section.
    fn start_with(http_extra: &str) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-registry.")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot make a registry dir: {e}"));
        // A free port: bound by us, released, then taken by the registry.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).unwrap_or_else(|e| panic!("mkdir storage: {e}"));
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}",
                storage.display()
            ),
        )
        .unwrap_or_else(|e| panic!("write registry config: {e}"));
        let log = fs::File::create(dir.path().join("registry.log"))
            .unwrap_or_else(|e| panic!("registry log: {e}"));
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}"));
        let reg = Registry { child, dir, addr };
        // A TLS registry answers a plain request with a 400.
        let tls = !http_extra.is_empty();
        poll("the registry to answer", Duration::from_secs(30), || {
            reg.get("/v2/")
                .filter(|r| r.starts_with("HTTP/1.1 200") || (tls && r.starts_with("HTTP/")))
        });
        reg
    }

    /// A plain HTTP GET of `path` on the registry: the whole response, or
    /// None if it cannot be had (yet).
    pub fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// Where the registry keeps blob `hex` (to tamper with it).
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `docker://127.0.0.1:PORT/NAME` for skopeo.
    pub fn docker_ref(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.addr)
    }

    /// `skopeo copy` of `src` to `name` on this registry, with `extra` options.
    pub fn push(&self, src: &str, name: &str, extra: &[&str]) {
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .args(extra)
            .arg(src)
            .arg(self.docker_ref(name))
            .output()
            .unwrap_or_else(|e| panic!("cannot run skopeo: {e}"));
        if !out.status.success() {
            panic!(
                "skopeo copy {src} {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// `skopeo inspect --raw` of `name` (the manifest as served) and its digest.
    pub fn manifest(&self, name: &str) -> (serde_json::Value, String) {
        let raw = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "inspect",
                "--raw",
                "--tls-verify=false",
            ])
            .arg(self.docker_ref(name))
            .output()
            .unwrap_or_else(|e| panic!("cannot run skopeo: {e}"));
        assert!(raw.status.success(), "skopeo inspect --raw {name}");
        let v = serde_json::from_slice(&raw.stdout)
            .unwrap_or_else(|e| panic!("manifest of {name} is not JSON: {e}"));
        (v, sha256_digest(&raw.stdout))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex_of(&sha2::Sha256::digest(bytes)))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`FaultProxy`] does to one request (given its request head and how
/// many requests came before it).
pub enum Fault {
    /// Forward it as it is.
    Pass,
    /// Answer with this raw response instead.
    Answer(&'static str),
    /// Forward it, and close the connection after this many bytes of the
    /// response body.
    CutAfter(usize),
    /// Forward it, send this many bytes of the body, then hold the
    /// connection open and silent (for a minute).
    StallAfter(usize),
    /// Take the request, forward nothing and answer nothing (for a minute).
    Hold,
}

/// A small HTTP proxy in front of a registry that injects faults: one
/// request per connection (`Connection: close`), the rest forwarded. Its
/// thread ends with the test process.
pub struct FaultProxy {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The request lines seen, with their Range header if any.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub fn start(
        upstream: &str,
        fault: impl Fn(&str, usize) -> Fault + Send + Sync + 'static,
    ) -> FaultProxy {
        super::enter_own_netns();
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind the fault proxy: {e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("fault proxy address: {e}"));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let upstream = upstream.to_string();
        let fault = std::sync::Arc::new(fault);
        std::thread::spawn(move || {
            // A thread per connection: a held or stalled request does not
            // keep the others (berth fetches layers at the same time) waiting.
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut client) = conn else { continue };
                let (upstream, fault, log) = (upstream.clone(), fault.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = serve_one(&mut client, &upstream, n, &*fault, &log);
                });
            }
        });
        FaultProxy { addr, seen }
    }
}

fn serve_one(
    client: &mut TcpStream,
    upstream: &str,
    n: usize,
    fault: &dyn Fn(&str, usize) -> Fault,
    log: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    // The request head, then its body if it has a Content-Length (berth's
    // uploads and manifests always say it).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or("").to_string();
    let range = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("range:"))
        .map(|l| format!(" [{}]", l.trim()))
        .unwrap_or_default();
    if let Ok(mut l) = log.lock() {
        l.push(format!("{line}{range}"));
    }
    let length = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<u64>().ok())?
        })
        .unwrap_or(0);
    let mut body = Vec::new();
    (&mut *client).take(length).read_to_end(&mut body)?;
    let action = fault(&text, n);
    if let Fault::Answer(resp) = action {
        return client.write_all(resp.as_bytes());
    }
    if let Fault::Hold = action {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    let forwarded = text.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    up.write_all(forwarded.as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    match action {
        Fault::CutAfter(body_bytes) | Fault::StallAfter(body_bytes) => {
            let start = resp
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(resp.len(), |p| p + 4);
            let end = (start + body_bytes).min(resp.len());
            client.write_all(&resp[..end])?;
            if matches!(action, Fault::StallAfter(_)) {
                std::thread::sleep(Duration::from_secs(60));
            }
            client.shutdown(std::net::Shutdown::Both)
        }
        _ => client.write_all(&resp),
    }
}
