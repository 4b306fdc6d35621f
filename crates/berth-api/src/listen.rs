//! Listeners, connections and shutdown.
//!
//! A unix socket is made mode 0660, owned by root and the configured group
//! (made with `groupadd --system` when missing). A socket file nobody
//! answers on is a leftover and replaced; one that answers is another
//! server, and this one refuses to start. SIGTERM or SIGINT: the listeners
//! close, every connection is told to finish (streams end), and the server
//! waits for them a bounded time.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::{Config, ServeError};

/// Where to listen (`-H`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
}

impl Host {
    /// `unix:///run/berth/berth.sock` (or a bare path).
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
        if s.starts_with("tcp://") {
            return Err(format!(
                "listening on {s}: TCP with mutual TLS is not served yet; use a unix socket"
            ));
        }
        Err(format!("invalid host {s:?}: want unix:///PATH"))
    }

    pub fn display(&self) -> String {
        match self {
            Host::Unix(p) => format!("unix://{}", p.display()),
        }
    }
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

pub async fn run(config: Config, ready: impl FnOnce(&[String])) -> Result<(), ServeError> {
    let gid = group_id(&config.group)?;
    let mut listeners = Vec::new();
    for h in &config.hosts {
        match h {
            Host::Unix(p) => listeners.push(bind_unix(p, gid)?),
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
    });
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
                tokio::select! {
                    _ = stop.changed() => break,
                    accepted = l.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let state = state.clone();
                        let mut stop = stop.clone();
                        let alive = alive.clone();
                        tokio::spawn(async move {
                            let _alive = alive;
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
                        });
                    }
                }
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
        match h {
            Host::Unix(p) => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    if let Some(p) = &config.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
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
