//! Listeners, connections and shutdown.
//!
//! A unix socket is made mode 0660, owned by root and the configured group
//! (made with `groupadd --system` when missing). A socket file nobody
//! answers on is a leftover and replaced; one that answers is another
//! server, and this one refuses to start. TCP is only on an address the
//! user names, with mutual TLS (a client without a certificate the CA
//! signed gets no answer at all) unless `--insecure-tcp`; `fd://` takes the
//! unix sockets systemd passed (socket activation). SIGTERM or SIGINT: the listeners
//! close, every connection is told to finish (streams end), and the server
//! waits for them a bounded time.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};

use crate::{Config, ServeError};

/// Where to listen (`-H`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    /// `tcp://ADDR:PORT`: mutual TLS unless insecure TCP was asked for.
    Tcp(String),
    /// `fd://`: the sockets a service manager passed (socket activation).
    Fd,
}

impl Host {
    /// `unix:///run/berth/berth.sock` (or a bare path), `tcp://ADDR:PORT`,
    /// `fd://`.
    pub fn parse(s: &str) -> Result<Host, String> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(format!("invalid host {s:?}: no socket path"));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            // An address the user names: never a default one.
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("invalid host {s:?}: want tcp://ADDR:PORT"));
            }
            return Ok(Host::Tcp(a.to_string()));
        }
        if s == "fd://" {
            return Ok(Host::Fd);
        }
        Err(format!(
            "invalid host {s:?}: want unix:///PATH, tcp://ADDR:PORT or fd://"
        ))
    }

    pub fn display(&self) -> String {
        match self {
            Host::Unix(p) => format!("unix://{}", p.display()),
            Host::Tcp(a) => format!("tcp://{a}"),
            Host::Fd => "fd://".into(),
        }
    }
}

/// TCP's security: mutual TLS (the CA that signs clients' certificates,
/// the server's certificate and key, PEM files), or none at all.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `--tlsverify`: clients must show a certificate the CA signed.
    pub verify: bool,
    /// `--insecure-tcp`: plain TCP, anyone who reaches the port is root.
    pub insecure: bool,
}

/// The TLS acceptor of `tls`: a server certificate, and every client's
/// certificate checked against the CA.
fn tls_acceptor(tls: &Tls) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let need = |p: &Option<PathBuf>, flag: &str| {
        p.clone()
            .ok_or_else(|| ServeError::Listen(format!("mutual TLS on TCP needs {flag} FILE (PEM)")))
    };
    let (ca, cert, key) = (
        need(&tls.ca, "--tlscacert")?,
        need(&tls.cert, "--tlscert")?,
        need(&tls.key, "--tlskey")?,
    );
    let pem_err = |p: &Path, e: rustls_pki_types::pem::Error| {
        ServeError::Listen(format!("reading {}: {e}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| pem_err(&cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| pem_err(&key, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).map_err(|e| pem_err(&ca, e))? {
        let c = c.map_err(|e| pem_err(&ca, e))?;
        roots
            .add(c)
            .map_err(|e| ServeError::Listen(format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ServeError::Listen(format!("{}: {e}", ca.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Listen(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Listen(format!("{}: {e}", cert.display())))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The sockets systemd passed (`LISTEN_PID`, `LISTEN_FDS`, from fd 3):
/// unix stream sockets only.
fn activated() -> Result<Vec<UnixListener>, ServeError> {
    let pid = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    let (Some(pid), Some(n)) = (pid, n) else {
        return Err(ServeError::Listen(
            "fd://: no sockets were passed (LISTEN_FDS is not set)".into(),
        ));
    };
    if pid != std::process::id() || n < 1 {
        return Err(ServeError::Listen(
            "fd://: the passed sockets are not this process's".into(),
        ));
    }
    let mut out = Vec::new();
    for fd in 3..3 + n {
        use std::os::fd::FromRawFd;
        // SAFETY: systemd's protocol hands this process descriptors 3 to
        // 3+LISTEN_FDS-1, open and owned by nobody else here; each is
        // taken once.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
        let std_l = std::os::unix::net::UnixListener::from(owned);
        std_l.set_nonblocking(true).map_err(|e| ServeError::Io {
            context: format!("fd://: descriptor {fd}"),
            source: e,
        })?;
        out.push(UnixListener::from_std(std_l).map_err(|e| ServeError::Io {
            context: format!("fd://: descriptor {fd} is not a unix socket"),
            source: e,
        })?);
    }
    Ok(out)
}

/// How long a stopping server waits for its connections.
const DRAIN: Duration = Duration::from_secs(10);

/// The group's ID, the group made when it does not exist.
fn group_id(name: &str) -> Result<u32, ServeError> {
    let find = || -> Option<u32> {
        let text = std::fs::read_to_string("/etc/group").ok()?;
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then_some(())?;
            f.nth(1)?.parse().ok()
        })
    };
    if let Some(gid) = find() {
        return Ok(gid);
    }
    let ok = std::process::Command::new("groupadd")
        .args(["--system", name])
        .status()
        .is_ok_and(|s| s.success());
    match find() {
        Some(gid) => Ok(gid),
        None => Err(ServeError::Listen(format!(
            "group {name:?} does not exist{}",
            if ok { "" } else { " and could not be made" }
        ))),
    }
}

fn bind_unix(path: &Path, gid: u32) -> Result<UnixListener, ServeError> {
    let io = |context: String| move |source| ServeError::Io { context, source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::Listen(format!(
                "{} is in use: another server answers on it",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(io(format!("removing {}", path.display())))?;
    }
    let l = UnixListener::bind(path).map_err(io(format!("listening on {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io(format!("chmod {}", path.display())))?;
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::ROOT),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| ServeError::Io {
        context: format!("chown {}", path.display()),
        source: e.into(),
    })?;
    Ok(l)
}

/// A listening socket of any kind.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

/// How long without a request before the server lets go of memory.
const IDLE_TRIM: Duration = Duration::from_secs(5);

/// How long a client has to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves one connection until it ends or the server stops.
async fn serve_conn<S>(
    stream: S,
    state: Arc<crate::routes::State>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| crate::routes::handle(state.clone(), req)),
        )
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

pub async fn run(config: Config, ready: impl FnOnce(&[String])) -> Result<(), ServeError> {
    let mut listeners = Vec::new();
    let mut gid = None;
    for h in &config.hosts {
        match h {
            Host::Unix(p) => {
                let g = match gid {
                    Some(g) => g,
                    None => *gid.insert(group_id(&config.group)?),
                };
                listeners.push(Listener::Unix(bind_unix(p, g)?));
            }
            Host::Tcp(a) => {
                let tls = &config.tls;
                let acceptor = if tls.insecure && !tls.verify {
                    None
                } else if tls.verify {
                    Some(tls_acceptor(tls)?)
                } else {
                    return Err(ServeError::Listen(format!(
                        "refusing to serve tcp://{a} without mutual TLS: pass --tlsverify --tlscacert --tlscert --tlskey (or --insecure-tcp, which gives root on this host to anyone who reaches the port)"
                    )));
                };
                let l = TcpListener::bind(a.as_str())
                    .await
                    .map_err(|e| ServeError::Io {
                        context: format!("listening on tcp://{a}"),
                        source: e,
                    })?;
                listeners.push(Listener::Tcp(l, acceptor));
            }
            Host::Fd => listeners.extend(activated()?.into_iter().map(Listener::Unix)),
        }
    }
    if let Some(p) = &config.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|e| ServeError::Io {
            context: format!("writing {}", p.display()),
            source: e,
        })?;
    }
    let state = Arc::new(crate::routes::State {
        engine: config.engine.clone(),
        pending: Default::default(),
        execs: Default::default(),
        pool: Default::default(),
        served: Default::default(),
        cache: crate::cache::Cache::new(&config.engine.store_file()).ok(),
    });
    // Once requests stop, the engines and answers kept for them go, the
    // allocator gives their memory back and the code they ran is unmapped
    // (trim.rs): an idle server is small again.
    {
        let state = state.clone();
        tokio::spawn(async move {
            let (mut seen, mut trimmed) = (0, 0);
            let mut tick = tokio::time::interval(IDLE_TRIM);
            loop {
                tick.tick().await;
                let now = state.served.load(std::sync::atomic::Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    continue;
                }
                // A whole tick without a request (the blocking threads of
                // the last ones have ended), and requests since the last
                // trim.
                if now == trimmed {
                    continue;
                }
                trimmed = now;
                if let Ok(mut p) = state.pool.lock() {
                    p.clear();
                }
                if let Some(c) = &state.cache {
                    c.clear();
                }
                let _ = tokio::task::spawn_blocking(crate::trim::idle).await;
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Each connection holds a sender: when the last is dropped, `recv`
    // says every connection has ended.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    let addrs: Vec<String> = config.hosts.iter().map(Host::display).collect();
    for l in listeners {
        let state = state.clone();
        let mut stop = stop_rx.clone();
        let alive = alive_tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.changed() => break,
                    a = async {
                        match &l {
                            Listener::Unix(u) => u.accept().await.map(|(s, _)| Conn::Unix(s)),
                            Listener::Tcp(t, tls) => t
                                .accept()
                                .await
                                .map(|(s, _)| Conn::Tcp(s, tls.clone())),
                        }
                    } => a,
                };
                let Ok(conn) = accepted else { continue };
                let state = state.clone();
                let stop = stop.clone();
                let alive = alive.clone();
                tokio::spawn(async move {
                    let _alive = alive;
                    match conn {
                        Conn::Unix(s) => serve_conn(s, state, stop).await,
                        Conn::Tcp(s, None) => serve_conn(s, state, stop).await,
                        Conn::Tcp(s, Some(tls)) => {
                            // No certificate the CA signed, no answer at
                            // all: the handshake fails and the connection
                            // closes.
                            if let Ok(Ok(s)) = tokio::time::timeout(HANDSHAKE, tls.accept(s)).await
                            {
                                serve_conn(s, state, stop).await;
                            }
                        }
                    }
                });
            }
        }));
    }
    drop(alive_tx);
    ready(&addrs);
    wait_for_signal().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = tokio::time::timeout(DRAIN, alive_rx.recv()).await;
    for h in &config.hosts {
        if let Host::Unix(p) = h {
            let _ = std::fs::remove_file(p);
        }
    }
    if let Some(p) = &config.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// An accepted connection.
enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, Option<tokio_rustls::TlsAcceptor>),
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        (Ok(mut t), Err(_)) => {
            t.recv().await;
        }
        (Err(_), Ok(mut i)) => {
            i.recv().await;
        }
        (Err(_), Err(_)) => std::future::pending::<()>().await,
    }
}
