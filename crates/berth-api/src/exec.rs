//! `/containers/{id}/exec`, `/exec/{id}/start|resize|json`.
//!
//! The engine's exec forks into the container's namespaces, which a
//! multi-threaded process must not do: each exec runs as a child `berth
//! exec` (single-threaded) on the same store. Without a TTY its stdin,
//! stdout and stderr are pipes, relayed in Docker's stdcopy frames; with
//! one it gets a pseudo-terminal of the server's making as its controlling
//! terminal, whose size `/exec/{id}/resize` sets (the child forwards it).
//! An exec instance lives in the server's memory, as in dockerd's.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecConfig {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    user: String,
    working_dir: String,
    privileged: bool,
    detach_keys: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartConfig {
    detach: bool,
}

/// An exec instance.
struct Exec {
    container: String,
    config: ExecConfig,
    running: bool,
    exit_code: Option<i32>,
    pid: u32,
    /// The pseudo-terminal's master, while a TTY exec runs.
    pty: Option<Arc<OwnedFd>>,
}

#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, Exec>>);

impl Execs {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Exec) -> T) -> Option<T> {
        self.0.lock().ok()?.get_mut(id).map(f)
    }
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `POST /containers/{id}/exec`: 201 `{"Id"}`; 409 when it is not running.
pub async fn create(
    state: &Arc<State>,
    id: String,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let config: ExecConfig =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let container = state
        .blocking(move |e| {
            let v = e.container(&id)?;
            if !v.running() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("Container {} is not running", v.id),
                ));
            }
            if v.paused {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "Container {} is paused, unpause the container before exec",
                        v.id
                    ),
                ));
            }
            Ok(v.id.to_string())
        })
        .await?;
    let id = random_id();
    if let Ok(mut m) = state.execs.0.lock() {
        m.insert(
            id.clone(),
            Exec {
                container,
                config,
                running: false,
                exit_code: None,
                pid: 0,
                pty: None,
            },
        );
    }
    Ok(http::json(StatusCode::CREATED, &json!({"Id": id})))
}

/// The `berth exec` command line of an exec instance.
fn command(state: &State, e: &Exec, detach: bool) -> tokio::process::Command {
    let o = &state.engine;
    let mut cmd = tokio::process::Command::new(&o.berth);
    cmd.arg("--root")
        .arg(&o.root)
        .arg("--run-root")
        .arg(&o.run_root)
        .arg("--cgroup-parent")
        .arg(&o.cgroup_parent)
        .arg("exec");
    let c = &e.config;
    if detach {
        cmd.arg("-d");
    }
    if c.attach_stdin && !detach {
        cmd.arg("-i");
    }
    if c.tty {
        cmd.arg("-t");
    }
    if c.privileged {
        cmd.arg("--privileged");
    }
    if !c.user.is_empty() {
        cmd.arg("-u").arg(&c.user);
    }
    if !c.working_dir.is_empty() {
        cmd.arg("-w").arg(&c.working_dir);
    }
    for v in c.env.iter().flatten() {
        cmd.arg("-e").arg(v);
    }
    cmd.arg("--").arg(&e.container);
    cmd.args(c.cmd.iter().flatten());
    cmd.kill_on_drop(false);
    cmd
}

/// `POST /exec/{id}/start`: detached, 200 once the process runs; else the
/// connection is hijacked and carries the process's streams.
pub async fn start(
    state: &Arc<State>,
    id: String,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = crate::routes::body(req).await?;
    let start: StartConfig = if body.iter().all(u8::is_ascii_whitespace) {
        StartConfig::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    // Taken: an exec starts once.
    let prepared = state.execs.with(&id, |e| {
        if e.running || e.exit_code.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Exec {id} has already started"),
            ));
        }
        e.running = true;
        Ok((
            command(state, e, start.detach),
            e.config.tty,
            e.config.attach_stdin,
        ))
    });
    let (mut cmd, tty, stdin) =
        prepared.ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))??;
    if start.detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = cmd.output().await.map_err(internal)?;
        state.execs.with(&id, |e| e.running = false);
        if !out.status.success() {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .trim_start_matches("Error response from daemon: ")
                    .to_string(),
            ));
        }
        return Ok(http::no_content(StatusCode::OK));
    }
    let state = state.clone();
    let spawned = if tty {
        spawn_tty(&mut cmd)
    } else {
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().map(|c| (c, None)).map_err(internal)
    };
    let (child, master) = match spawned {
        Ok(x) => x,
        Err(e) => {
            state.execs.with(&id, |x| x.running = false);
            return Err(e);
        }
    };
    let master = master.map(Arc::new);
    state.execs.with(&id, |e| {
        e.pid = child.id().unwrap_or(0);
        e.pty = master.clone();
    });
    tokio::spawn(async move {
        // Recorded before the connection closes: the client asks for the
        // exit code as soon as its stream ends.
        let done = |code: i32| {
            state.execs.with(&id, |e| {
                e.running = false;
                e.exit_code = Some(code);
                e.pty = None;
            });
        };
        match on_upgrade.await {
            Ok(up) => relay(up, child, master, stdin, done).await,
            Err(_) => {
                let mut child = child;
                let _ = child.start_kill();
                done(
                    child
                        .wait()
                        .await
                        .ok()
                        .and_then(|s| s.code())
                        .unwrap_or(137),
                );
            }
        }
    });
    Ok(http::base(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(http::empty())
        .unwrap_or_else(|_| Response::new(http::empty())))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A pseudo-terminal pair; the child gets the slave as its stdio and
/// controlling terminal, the server keeps the master.
fn spawn_tty(
    cmd: &mut tokio::process::Command,
) -> Result<(tokio::process::Child, Option<OwnedFd>), ApiError> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(internal)?;
    grantpt(&master).map_err(internal)?;
    unlockpt(&master).map_err(internal)?;
    let name = ptsname(&master, Vec::new()).map_err(internal)?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(std::ffi::OsStr::new(&*String::from_utf8_lossy(
            name.to_bytes(),
        )))
        .map_err(internal)?;
    let slave_fd: OwnedFd = slave.into();
    cmd.stdin(Stdio::from(slave_fd.try_clone().map_err(internal)?))
        .stdout(Stdio::from(slave_fd.try_clone().map_err(internal)?))
        .stderr(Stdio::from(slave_fd));
    // SAFETY: runs in the forked child before exec and calls only
    // async-signal-safe system calls (setsid, ioctl) on its own fd 0.
    unsafe {
        cmd.pre_exec(|| {
            setsid_and_ctty();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(internal)?;
    Ok((child, Some(master)))
}

/// In the child: a session of its own with stdin (the slave) as its
/// controlling terminal, so the terminal's size changes reach it.
fn setsid_and_ctty() {
    let _ = rustix::process::setsid();
    let _ = rustix::process::ioctl_tiocsctty(rustix::stdio::stdin());
}

/// Relays the hijacked connection and the child's streams until the child
/// exits; `done` gets its exit status before the connection closes.
async fn relay(
    up: hyper::upgrade::Upgraded,
    mut child: tokio::process::Child,
    master: Option<Arc<OwnedFd>>,
    stdin: bool,
    done: impl FnOnce(i32),
) {
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(up));
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let mut tasks = Vec::new();
    let mut to_child: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> = None;
    if let Some(m) = &master {
        // Both directions through the master, as a file of its own each.
        let (Ok(r), Ok(w)) = (m.try_clone(), m.try_clone()) else {
            let _ = child.start_kill();
            done(126);
            return;
        };
        let mut r = tokio::fs::File::from_std(std::fs::File::from(r));
        let tx = out_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            // EIO once the child's side is closed: the end.
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
        }));
        to_child = Some(Box::new(tokio::fs::File::from_std(std::fs::File::from(w))));
    } else {
        for (stream, pipe) in [
            (
                1u8,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ),
            (
                2u8,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ),
        ] {
            let Some(mut pipe) = pipe else { continue };
            let tx = out_tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0
                        || tx
                            .send(crate::attach::frame(stream, &buf[..n]))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            }));
        }
        if let Some(s) = child.stdin.take() {
            to_child = Some(Box::new(s));
        }
    }
    drop(out_tx);
    let pump_in = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    // The client's half-close: the process's stdin ends
                    // (a TTY has no such end; it stays open).
                    if let Some(mut w) = to_child.take() {
                        if master.is_none() {
                            let _ = w.shutdown().await;
                        }
                    }
                    return;
                }
                Ok(n) => {
                    if let (true, Some(w)) = (stdin, to_child.as_mut()) {
                        if w.write_all(&buf[..n]).await.is_err() {
                            to_child = None;
                        }
                    }
                }
            }
        }
    });
    let status = tokio::spawn(async move { child.wait().await });
    while let Some(chunk) = out_rx.recv().await {
        if wr.write_all(&chunk).await.is_err() {
            break;
        }
        let _ = wr.flush().await;
    }
    let code = match status.await {
        Ok(Ok(s)) => s.code().unwrap_or(137),
        _ => 137,
    };
    done(code);
    let _ = wr.shutdown().await;
    pump_in.abort();
    for t in tasks {
        t.abort();
    }
}

/// `POST /exec/{id}/resize?h&w`.
pub async fn resize(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let size = |k: &str| -> Result<u16, ApiError> {
        r.q(k)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid {k}: {:?}", r.q(k))))
    };
    let (h, w) = (size("h")?, size("w")?);
    let pty = state
        .execs
        .with(&id, |e| e.pty.clone())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    if let Some(m) = pty {
        let ws = rustix::termios::Winsize {
            ws_row: h,
            ws_col: w,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&*m, ws).map_err(internal)?;
    }
    Ok(http::json(StatusCode::OK, &json!({})))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(state: &Arc<State>, id: String) -> Result<Response<Body>, ApiError> {
    let v = state
        .execs
        .with(&id, |e| {
            let mut cmd = e.config.cmd.clone().unwrap_or_default().into_iter();
            let entrypoint = cmd.next().unwrap_or_default();
            json!({
                "ID": id,
                "Running": e.running,
                "ExitCode": e.exit_code,
                "ProcessConfig": {
                    "tty": e.config.tty,
                    "entrypoint": entrypoint,
                    "arguments": cmd.collect::<Vec<_>>(),
                    "privileged": e.config.privileged,
                    "user": e.config.user,
                },
                "OpenStdin": e.config.attach_stdin,
                "OpenStderr": e.config.attach_stderr,
                "OpenStdout": e.config.attach_stdout,
                "CanRemove": false,
                "ContainerID": e.container,
                "DetachKeys": e.config.detach_keys,
                "Pid": e.pid,
            })
        })
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    Ok(http::json(StatusCode::OK, &v))
}
