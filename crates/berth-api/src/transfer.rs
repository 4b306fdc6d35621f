//! Images in and out: `POST /images/create` (pull with `fromImage`, import
//! with `fromSrc=-`), `POST /images/{name}/push`, `GET /images/get` and
//! `/images/{name}/get` (save), `POST /images/load`.
//!
//! None of these fork, so they run in blocking threads on an engine of
//! their own, as every other route does. Their output is Docker's: JSON
//! progress messages (one object per line), or a tar stream. An error before
//! anything was written is an HTTP error with Docker's status; after, it is
//! the stream's last message (`{"errorDetail": …, "error": …}`), as moby
//! does once it has flushed the head.

use std::io::{Read, Write};
use std::sync::Arc;

use berth_engine::{Engine, LayerStatus, PullEvent, PushEvent, PushStatus};
use berth_registry::credentials::Credentials;
use berth_types::Reference;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{header, HeaderMap, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

/// What the blocking half sends: bytes of the body, or its end.
enum Out {
    Data(Bytes),
    End(Result<(), ApiError>),
}

/// The blocking half's end of a streamed answer.
pub struct Sink(mpsc::Sender<Out>);

impl Sink {
    /// Sends bytes; false once the client is gone.
    fn send(&self, b: Bytes) -> bool {
        self.0.blocking_send(Out::Data(b)).is_ok()
    }

    /// One JSON progress message, newline-terminated.
    pub fn message(&self, v: &Value) -> bool {
        let mut b = serde_json::to_vec(v).unwrap_or_default();
        b.push(b'\n');
        self.send(Bytes::from(b))
    }
}

/// A `Write` over a sink: a tar stream sent in 64 KiB chunks.
struct SinkWriter<'a> {
    sink: &'a Sink,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 << 10;

impl Write for SinkWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        if self.sink.send(chunk) {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client went away",
            ))
        }
    }
}

/// How a stream's failure after its head is told: a JSON message, or
/// nothing (a tar stream just ends short).
#[derive(Clone, Copy)]
enum Tail {
    Json,
    Raw,
}

/// Runs `f` on an engine in a blocking thread, streaming what it sends
/// as the answer's body (`content_type`). An error before the first byte is
/// the answer; after it, the stream's end.
async fn streamed(
    state: &Arc<State>,
    content_type: &'static str,
    tail: Tail,
    f: impl FnOnce(&mut Engine, &Sink) -> Result<(), ApiError> + Send + 'static,
) -> Result<Response<Body>, ApiError> {
    let (tx, mut rx) = mpsc::channel::<Out>(16);
    let opts = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let sink = Sink(tx);
        let r = Engine::open(opts)
            .map_err(ApiError::from)
            .and_then(|mut e| f(&mut e, &sink));
        let _ = sink.0.blocking_send(Out::End(r));
    });
    let first = match rx.recv().await {
        Some(Out::Data(b)) => b,
        Some(Out::End(Err(e))) => return Err(e),
        Some(Out::End(Ok(()))) | None => Bytes::new(),
    };
    let (body_tx, body) = http::stream();
    tokio::spawn(async move {
        if !first.is_empty() && body_tx.send(first).await.is_err() {
            return;
        }
        while let Some(out) = rx.recv().await {
            match out {
                Out::Data(b) => {
                    if body_tx.send(b).await.is_err() {
                        // The client is gone: dropping `rx` tells the
                        // blocking half, whose next send fails.
                        return;
                    }
                }
                Out::End(Ok(())) => return,
                Out::End(Err(e)) => {
                    if let Tail::Json = tail {
                        let mut b =
                            serde_json::to_vec(&error_message(&e.message)).unwrap_or_default();
                        b.push(b'\n');
                        let _ = body_tx.send(Bytes::from(b)).await;
                    }
                    return;
                }
            }
        }
    });
    http::base(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// moby's in-stream error.
fn error_message(m: &str) -> Value {
    json!({"errorDetail": {"message": m}, "error": m})
}

/// A `Read` over a request's body, for the blocking half: the async half
/// feeds it frame by frame (a client that goes away mid-body is an error,
/// never a short archive taken as whole).
struct BodyReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// The request's body as a blocking reader, fed by a task.
fn body_reader(req: Request<Incoming>) -> BodyReader {
    use http_body_util::BodyExt;
    let (tx, rx) = mpsc::channel(8);
    let mut body = req.into_body();
    tokio::spawn(async move {
        loop {
            match body.frame().await {
                None => return,
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        if !d.is_empty() && tx.send(Ok(d)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = tx
                        .send(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("reading the request body: {e}"),
                        )))
                        .await;
                    return;
                }
            }
        }
    });
    BodyReader {
        rx,
        cur: Bytes::new(),
    }
}

/// The credentials of an `X-Registry-Auth` header (base64url JSON, as the
/// docker CLI and docker-py send it); none for an absent or empty one.
pub fn registry_auth(headers: &HeaderMap) -> Result<Option<Credentials>, ApiError> {
    use base64::Engine as _;
    let Some(raw) = headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let trimmed = raw.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header: not base64"))?;
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct AuthConfig {
        username: String,
        password: String,
        auth: String,
        identitytoken: String,
    }
    let mut c: AuthConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
    // `auth` is `user:password` in base64, as in a config file.
    if c.username.is_empty() && !c.auth.is_empty() {
        if let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(c.auth.trim()) {
            if let Some((u, p)) = String::from_utf8_lossy(&pair).split_once(':') {
                c.username = u.to_string();
                c.password = p.to_string();
            }
        }
    }
    if c.username.is_empty() && c.identitytoken.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: c.username,
        password: c.password,
        identity_token: Some(c.identitytoken).filter(|t| !t.is_empty()),
    }))
}

/// berth's registry settings and the client's credentials, as a pull or a
/// push uses them (a token server reached with its registry's TLS).
fn registry_auth_for(
    creds: Option<Credentials>,
) -> Result<(Arc<berth_registry::Settings>, Arc<dyn berth_registry::Auth>), ApiError> {
    let settings = Arc::new(
        berth_registry::Settings::load_default()
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    );
    let s = settings.clone();
    let auth = berth_registry::auth::Credentialed::with_credentials(creds)
        .with_agent_for(move |registry| s.token_agent(registry));
    Ok((settings, Arc::new(auth)))
}

/// Docker's progress bar text: `[=====>      ]  1.2MB/3.4MB`.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    // go-units' HumanSize (4 significant digits, decimal units); the
    // docker CLI draws its own bar from progressDetail anyway.
    let size = |n: u64| {
        let units = ["B", "kB", "MB", "GB", "TB"];
        let (mut v, mut u) = (n as f64, 0);
        while v >= 1000.0 && u < units.len() - 1 {
            v /= 1000.0;
            u += 1;
        }
        format!("{}{}", (v * 1000.0).round() / 1000.0, units[u])
    };
    if total == 0 {
        return size(current);
    }
    let filled = (current.min(total) * WIDTH / total) as usize;
    let mut b = "=".repeat(filled);
    if (filled as u64) < WIDTH {
        b.push('>');
        b.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    }
    format!("[{b}]  {}/{}", size(current), size(total))
}

fn layer_message(id: &str, status: &str) -> Value {
    json!({"status": status, "progressDetail": {}, "id": id})
}

fn progress_message(id: &str, status: &str, current: u64, total: u64) -> Value {
    json!({
        "status": status,
        "progressDetail": {"current": current, "total": total},
        "progress": bar(current, total),
        "id": id,
    })
}

fn pull_event(sink: &Sink, ev: PullEvent) {
    let v = match ev {
        PullEvent::Pulling { what, repository } => {
            json!({"status": format!("Pulling from {repository}"), "id": what})
        }
        PullEvent::Layer { id, status } => match status {
            LayerStatus::AlreadyExists => layer_message(&id, "Already exists"),
            LayerStatus::PullingFsLayer => layer_message(&id, "Pulling fs layer"),
            LayerStatus::Waiting => layer_message(&id, "Waiting"),
            LayerStatus::Downloading { current, total } => {
                progress_message(&id, "Downloading", current, total)
            }
            LayerStatus::VerifyingChecksum => layer_message(&id, "Verifying Checksum"),
            LayerStatus::DownloadComplete => layer_message(&id, "Download complete"),
            LayerStatus::Extracting { current, total } => {
                progress_message(&id, "Extracting", current, total)
            }
            LayerStatus::PullComplete => layer_message(&id, "Pull complete"),
        },
    };
    sink.message(&v);
}

fn status(sink: &Sink, s: impl Into<String>) {
    sink.message(&json!({"status": s.into()}));
}

fn parse_reference(s: &str) -> Result<Reference, ApiError> {
    Reference::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `fromImage` and `tag` as moby joins them: a tag that is a digest makes
/// `NAME@DIGEST`; no tag at all, every tag of the repository.
fn pull_reference(image: &str, tag: &str) -> Result<(Reference, bool), ApiError> {
    let named = parse_reference(image)?;
    if tag.is_empty() {
        let names_one = named.digest().is_some() || {
            let last = image.rsplit('/').next().unwrap_or(image);
            last.contains(':')
        };
        return Ok((named, !names_one));
    }
    let sep = if tag.contains(':') { '@' } else { ':' };
    let repo = named.familiar_repository();
    Ok((parse_reference(&format!("{repo}{sep}{tag}"))?, false))
}

/// `POST /images/create?fromImage=…&tag=…&platform=…` or
/// `?fromSrc=-&repo=…&tag=…&changes=…&message=…&platform=…`.
pub async fn create(
    state: &Arc<State>,
    r: &Req,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let platform = match r.q("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(berth_types::Platform::parse(p).map_err(ApiError::bad_request)?),
        None => None,
    };
    if let Some(src) = r.q("fromSrc") {
        return import(state, r, src.to_string(), platform, req).await;
    }
    let Some(image) = r.q("fromImage").filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request(
            "fromImage or fromSrc is required to create an image",
        ));
    };
    let (reference, all_tags) = pull_reference(image, r.q("tag").unwrap_or(""))?;
    let creds = registry_auth(req.headers())?;
    streamed(state, "application/json", Tail::Json, move |e, sink| {
        let (settings, auth) = registry_auth_for(creds)?;
        let opts = berth_engine::PullOptions {
            platform,
            auth: Some(auth),
            concurrent_downloads: settings.max_concurrent_downloads,
            settings,
        };
        let progress = |ev| pull_event(sink, ev);
        if all_tags {
            let repo = parse_reference(&reference.familiar_repository())?;
            let mut updated = false;
            for tag in e.remote_tags(&repo, &opts)? {
                let tagged = parse_reference(&format!("{}:{tag}", repo.familiar_repository()))?;
                let pulled = e.pull(&tagged, &opts, &progress)?;
                status(sink, format!("Digest: {}", pulled.digest));
                updated |= pulled.updated;
            }
            status(sink, status_line(updated, &repo.familiar_repository()));
        } else {
            let pulled = e.pull(&reference, &opts, &progress)?;
            status(sink, format!("Digest: {}", pulled.digest));
            status(sink, status_line(pulled.updated, &reference.familiar()));
        }
        Ok(())
    })
    .await
}

fn status_line(updated: bool, what: &str) -> String {
    if updated {
        format!("Status: Downloaded newer image for {what}")
    } else {
        format!("Status: Image is up to date for {what}")
    }
}

/// `fromSrc=-`: the body is a root filesystem tarball (plain or
/// compressed); the answer, the new image's ID as a status message.
async fn import(
    state: &Arc<State>,
    r: &Req,
    src: String,
    platform: Option<berth_types::Platform>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if src != "-" {
        // A URL: dockerd would fetch it. berth's server reaches no network
        // on a client's say-so.
        return Err(ApiError::bad_request(format!(
            "importing from {src:?} is not supported: send the archive in the request body (fromSrc=-)"
        )));
    }
    let repo = r.q("repo").unwrap_or("").to_string();
    let tag = r.q("tag").unwrap_or("").to_string();
    let reference = match (repo.is_empty(), tag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(repo),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    if let Some(rf) = &reference {
        parse_reference(rf)?;
    }
    let changes: Vec<String> = r
        .query
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.clone())
        .collect();
    let message = r.q("message").unwrap_or("").to_string();
    let input = body_reader(req);
    streamed(state, "application/json", Tail::Json, move |e, sink| {
        let id = e.import_with_changes(
            input,
            reference.as_deref(),
            &message,
            &changes,
            platform.as_ref(),
        )?;
        status(sink, id.to_string());
        Ok(())
    })
    .await
}

/// `POST /images/load?quiet=…`: the body is an image archive; each loaded
/// image a `{"stream": "Loaded image: …\n"}` message.
pub async fn load(
    state: &Arc<State>,
    _r: &Req,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let input = body_reader(req);
    streamed(state, "application/json", Tail::Json, move |e, sink| {
        for l in e.load(input)? {
            sink.message(&json!({"stream": format!("{l}\n")}));
        }
        Ok(())
    })
    .await
}

/// `GET /images/get?names=…` (several) or `/images/{name}/get`: a Docker
/// archive of the images, streamed.
pub async fn save(state: &Arc<State>, names: Vec<String>) -> Result<Response<Body>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    streamed(state, "application/x-tar", Tail::Raw, move |e, sink| {
        let mut w = SinkWriter {
            sink,
            buf: Vec::with_capacity(CHUNK),
        };
        e.save(&names, &mut w)?;
        w.flush()
            .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
        Ok(())
    })
    .await
}

fn push_event(sink: &Sink, ev: PushEvent) {
    let v = match ev.status {
        PushStatus::Preparing => layer_message(&ev.id, "Preparing"),
        PushStatus::Waiting => layer_message(&ev.id, "Waiting"),
        PushStatus::Pushing { current, total } => {
            progress_message(&ev.id, "Pushing", current, total)
        }
        PushStatus::Pushed => layer_message(&ev.id, "Pushed"),
        PushStatus::AlreadyExists => layer_message(&ev.id, "Layer already exists"),
        PushStatus::MountedFrom(from) => layer_message(&ev.id, &format!("Mounted from {from}")),
    };
    sink.message(&v);
}

/// `POST /images/{name}/push?tag=…`: no tag pushes every local tag of the
/// repository.
pub async fn push(
    state: &Arc<State>,
    r: &Req,
    name: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let named = parse_reference(&name)?;
    let tag = r.q("tag").unwrap_or("").to_string();
    let creds = registry_auth(req.headers())?;
    streamed(state, "application/json", Tail::Json, move |e, sink| {
        let (settings, auth) = registry_auth_for(creds)?;
        let opts = berth_engine::PushOptions {
            auth: Some(auth),
            concurrent_uploads: settings.max_concurrent_uploads,
            settings,
        };
        let repo = named.familiar_repository();
        let tags = if !tag.is_empty() {
            vec![tag]
        } else if let Some(t) = named.tag().filter(|_| name.rsplit('/').next().is_some_and(|l| l.contains(':'))) {
            vec![t.to_string()]
        } else {
            let tags = e.local_tags(&named)?;
            if tags.is_empty() {
                return Err(berth_engine::EngineError::NoLocalTag(repo).into());
            }
            tags
        };
        status(
            sink,
            format!("The push refers to repository [{}]", named.repository()),
        );
        for t in tags {
            let tagged = parse_reference(&format!("{repo}:{t}"))?;
            let pushed = e.push(&tagged, &opts, &|ev| push_event(sink, ev))?;
            status(
                sink,
                format!(
                    "{}: digest: {} size: {}",
                    pushed.tag, pushed.digest, pushed.size
                ),
            );
            sink.message(&json!({
                "progressDetail": {},
                "aux": {"Tag": pushed.tag, "Digest": pushed.digest.to_string(), "Size": pushed.size},
            }));
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pull_references_as_moby_joins_them() {
        let (r, all) = pull_reference("bb", "latest").unwrap();
        assert_eq!((r.familiar(), all), ("bb:latest".to_string(), false));
        let (r, all) = pull_reference("127.0.0.1:5001/h/built", "1").unwrap();
        assert_eq!(
            (r.familiar(), all),
            ("127.0.0.1:5001/h/built:1".to_string(), false)
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let (r, _) = pull_reference("bb", &d).unwrap();
        assert_eq!(r.familiar(), format!("bb@{d}"));
        // No tag: every tag, unless the name carries one.
        assert!(pull_reference("127.0.0.1:5001/h/built", "").unwrap().1);
        assert!(!pull_reference("bb:1", "").unwrap().1);
        assert!(pull_reference("bb", "x y").is_err());
    }

    #[test]
    fn registry_auth_headers() {
        use base64::Engine as _;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE.encode(s);
        let mut h = HeaderMap::new();
        assert!(registry_auth(&h).unwrap().is_none());
        h.insert("x-registry-auth", enc("{}").parse().unwrap());
        assert!(registry_auth(&h).unwrap().is_none());
        h.insert(
            "x-registry-auth",
            enc(r#"{"username":"u","password":"p?>","serveraddress":"r"}"#)
                .parse()
                .unwrap(),
        );
        let c = registry_auth(&h).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        let pair = base64::engine::general_purpose::STANDARD.encode("a:b:c");
        h.insert(
            "x-registry-auth",
            enc(&format!(r#"{{"auth":"{pair}"}}"#)).parse().unwrap(),
        );
        let c = registry_auth(&h).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a", "b:c"));
        h.insert("x-registry-auth", "!!!".parse().unwrap());
        assert!(registry_auth(&h).is_err());
    }
}
