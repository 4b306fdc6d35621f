//! `POST /containers/{id}/attach`: the connection is hijacked (HTTP/1.1
//! Upgrade to `tcp`, answered 101) and joined to the container's monitor
//! through the engine's `Attachment`: its output frames go to the client
//! raw with a TTY, else multiplexed in Docker's 8-byte-header frames
//! (stdcopy); the client's bytes go to the container's stdin, and its
//! half-close closes that stdin.
//!
//! The docker CLI's `run` attaches before it starts the container: such an
//! attach waits in [`Pending`] until `/start` takes it and starts the
//! container with the attachment made first (the monitor holds the process
//! until then, as for the CLI's own `run`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_engine::{AttachStreams, Attachment, ContainerView, Output};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

/// An attach waiting for its container to start.
pub struct PendingAttach {
    streams: AttachStreams,
    tty: bool,
    io: oneshot::Receiver<Upgraded>,
}

/// Attaches waiting for `/start`, by container ID.
#[derive(Default)]
pub struct Pending(Mutex<HashMap<String, PendingAttach>>);

impl Pending {
    pub fn take(&self, id: &str) -> Option<PendingAttach> {
        self.0.lock().ok()?.remove(id)
    }

    fn put(&self, id: String, p: PendingAttach) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id, p);
        }
    }
}

pub async fn attach(
    state: &Arc<State>,
    r: &Req,
    id: String,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !upgrade {
        return Err(ApiError::bad_request(
            "attach needs an HTTP upgrade (Connection: Upgrade, Upgrade: tcp)",
        ));
    }
    if !r.flag("stream") && !r.flag("logs") {
        return Err(ApiError::bad_request("either logs or stream must be set"));
    }
    let streams = AttachStreams {
        stdin: r.flag("stdin"),
        stdout: r.flag("stdout"),
        stderr: r.flag("stderr"),
    };
    let v = state.blocking(move |e| Ok(e.container(&id)?)).await?;
    let tty = v.config.tty;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok(up) = on_upgrade.await {
            let _ = tx.send(up);
        }
    });
    if v.running() {
        let state = state.clone();
        let id = v.id.to_string();
        tokio::spawn(async move {
            let Ok(a) = state.blocking(move |e| Ok(e.attach(&id, streams)?)).await else {
                return;
            };
            if let Ok(up) = rx.await {
                proxy(up, a, tty, streams.stdin).await;
            }
        });
    } else {
        state.pending.put(
            v.id.to_string(),
            PendingAttach {
                streams,
                tty,
                io: rx,
            },
        );
    }
    Ok(http::base(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(http::empty())
        .unwrap_or_else(|_| Response::new(http::empty())))
}

/// Starts `v` with the waiting attach joined to it first.
pub async fn start_attached(
    state: &Arc<State>,
    v: ContainerView,
    p: PendingAttach,
) -> Result<(), ApiError> {
    let id = v.id.to_string();
    let streams = p.streams;
    let (_, a) = state
        .blocking(move |e| Ok(e.start_attached(&id, streams)?))
        .await?;
    tokio::spawn(async move {
        if let Ok(up) = p.io.await {
            proxy(up, a, p.tty, streams.stdin).await;
        }
    });
    Ok(())
}

/// Docker's stdcopy header: stream, three zero bytes, the length.
pub fn frame(stream: u8, data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(8 + data.len());
    b.push(stream);
    b.extend_from_slice(&[0, 0, 0]);
    b.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    b.extend_from_slice(data);
    b.into()
}

/// Joins the hijacked connection and the attachment until the container's
/// output ends (its exit, or the monitor going away), then closes the
/// connection.
async fn proxy(up: Upgraded, a: Attachment, tty: bool, stdin: bool) {
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(up));
    let (input, closer) = match (a.try_clone(), a.try_clone()) {
        (Ok(i), Ok(c)) => (i, c),
        _ => return,
    };
    // The monitor's frames, read in a blocking thread.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let mut a = a;
    let reader = tokio::task::spawn_blocking(move || loop {
        let chunk = match a.next_output() {
            Ok(Some(Output::Stdout(d))) if tty => Bytes::from(d),
            Ok(Some(Output::Stdout(d))) => frame(1, &d),
            Ok(Some(Output::Stderr(d))) if tty => Bytes::from(d),
            Ok(Some(Output::Stderr(d))) => frame(2, &d),
            _ => return,
        };
        if out_tx.blocking_send(chunk).is_err() {
            a.shutdown();
            return;
        }
    });
    // The client's bytes, to the container's stdin (written by a blocking
    // thread: the attachment is a blocking socket).
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
    let writer = tokio::task::spawn_blocking(move || {
        let mut input = input;
        while let Ok(msg) = in_rx.recv() {
            match msg {
                Some(d) => {
                    if input.send_stdin(&d).is_err() {
                        return;
                    }
                }
                None => {
                    let _ = input.close_stdin();
                    return;
                }
            }
        }
    });
    let pump_in = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if stdin {
                        let _ = in_tx.send(None);
                    }
                    return;
                }
                Ok(n) if stdin => {
                    if in_tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
            }
        }
    });
    while let Some(chunk) = out_rx.recv().await {
        if wr.write_all(&chunk).await.is_err() {
            break;
        }
        let _ = wr.flush().await;
    }
    let _ = wr.shutdown().await;
    pump_in.abort();
    // A client gone while the container runs on: the reader is woken.
    closer.shutdown();
    let _ = reader.await;
    drop(writer);
}
