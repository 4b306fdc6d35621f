//! The routes whose engine work forks — a container's files (`export`,
//! `archive`) and `build` — run in a child `berth serve-helper OP`
//! (single-threaded) on the same store: the request in its environment, a
//! tar on its stdin, its stdout relayed as the answer's body. A failure
//! before it wrote anything is a JSON line on its stderr, answered with its
//! status.

use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout};

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

/// Starts `berth serve-helper OP` with `request`; stdin piped when a body
/// is to be fed to it.
fn spawn(state: &State, op: &str, request: &Value, stdin: bool) -> Result<Child, ApiError> {
    let o = &state.engine;
    let mut cmd = tokio::process::Command::new(&o.berth);
    cmd.arg("--root")
        .arg(&o.root)
        .arg("--run-root")
        .arg(&o.run_root)
        .arg("--cgroup-parent")
        .arg(&o.cgroup_parent)
        .arg("serve-helper")
        .arg(op)
        .env("BERTH_SERVE_REQUEST", request.to_string())
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A client gone mid-copy: the child goes too (its worker sees the
        // pipe close). A build is let finish.
        .kill_on_drop(op != "build");
    cmd.spawn().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start {}: {e}", o.berth.display()),
        )
    })
}

/// The child's failure: its JSON line on stderr, else its exit status.
async fn failure(child: &mut Child) -> ApiError {
    match outcome(child).await {
        Ok(()) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "berth serve-helper said nothing",
        ),
        Err(e) => e,
    }
}

/// Waits for the child: Ok when it succeeded, else its failure (its JSON
/// line on stderr, or its exit status and what it printed).
async fn outcome(child: &mut Child) -> Result<(), ApiError> {
    let mut err = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut err).await;
    }
    let status = child.wait().await;
    if status.as_ref().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&err);
    if let Some(v) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let code = v["status"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let m = v["message"].as_str().unwrap_or("the helper failed");
        return Err(ApiError::new(code, m));
    }
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "berth serve-helper failed ({}): {}",
            status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            text.trim()
        ),
    ))
}

/// Relays the request's body to the child's stdin, then closes it.
fn feed(child: &mut Child, req: Request<Incoming>) {
    let Some(mut stdin) = child.stdin.take() else {
        return;
    };
    let mut body = req.into_body();
    tokio::spawn(async move {
        use http_body_util::BodyExt;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                // A body cut short: the child sees its stdin end early and
                // fails on the short archive, rolling back.
                return;
            };
            if let Ok(d) = frame.into_data() {
                if stdin.write_all(&d).await.is_err() {
                    return;
                }
            }
        }
        let _ = stdin.shutdown().await;
    });
}

/// Streams the child's stdout (after `first`) as the body; the child is
/// reaped when it ends.
fn relay(
    mut child: Child,
    mut out: BufReader<ChildStdout>,
    first: Bytes,
    status: StatusCode,
    content_type: &'static str,
    extra: Option<(&'static str, String)>,
) -> Result<Response<Body>, ApiError> {
    let (tx, body) = http::stream();
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(first).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        // The client left: `child` drops (killed unless a
                        // build).
                        return;
                    }
                }
            }
        }
        let _ = child.wait().await;
    });
    let mut b = http::base(status).header(header::CONTENT_TYPE, content_type);
    if let Some((k, v)) = extra {
        b = b.header(k, v);
    }
    b.body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Reads the first bytes of the child's answer: none means it failed (or
/// had nothing to say: `Ok(None)` when it exited well).
async fn first_bytes(
    child: &mut Child,
    out: &mut BufReader<ChildStdout>,
) -> Result<Option<Bytes>, ApiError> {
    let mut buf = vec![0u8; 64 << 10];
    let n = out.read(&mut buf).await.unwrap_or(0);
    if n > 0 {
        buf.truncate(n);
        return Ok(Some(Bytes::from(buf)));
    }
    match child.wait().await {
        Ok(s) if s.success() => Ok(None),
        _ => Err(failure(child).await),
    }
}

fn stdout_of(child: &mut Child) -> Result<BufReader<ChildStdout>, ApiError> {
    child
        .stdout
        .take()
        .map(|o| BufReader::with_capacity(64 << 10, o))
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no helper stdout"))
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar.
pub async fn export(state: &Arc<State>, id: String) -> Result<Response<Body>, ApiError> {
    let mut child = spawn(state, "export", &json!({"container": id}), false)?;
    let mut out = stdout_of(&mut child)?;
    let first = first_bytes(&mut child, &mut out).await?.unwrap_or_default();
    relay(child, out, first, StatusCode::OK, "application/x-tar", None)
}

fn path_arg(r: &Req) -> Result<String, ApiError> {
    match r.q("path") {
        Some(p) if !p.is_empty() => {
            if p.len() > 4096 || p.contains('\0') {
                return Err(ApiError::bad_request(
                    "path is too long or holds a NUL byte",
                ));
            }
            Ok(p.to_string())
        }
        _ => Err(ApiError::bad_request("path is required")),
    }
}

fn stat_header(stat: &str) -> (&'static str, String) {
    use base64::Engine as _;
    (
        "X-Docker-Container-Path-Stat",
        base64::engine::general_purpose::STANDARD.encode(stat.trim_end()),
    )
}

/// Runs `op` on the archive request's path and reads the stat line it
/// starts its answer with; the child's failure if it wrote none.
async fn stat_first(
    state: &Arc<State>,
    r: &Req,
    id: String,
    op: &str,
) -> Result<(Child, BufReader<ChildStdout>, String), ApiError> {
    let path = path_arg(r)?;
    let mut child = spawn(state, op, &json!({"container": id, "path": path}), false)?;
    let mut out = stdout_of(&mut child)?;
    let mut line = String::new();
    let n = out.read_line(&mut line).await.unwrap_or(0);
    if n == 0 || !line.ends_with('\n') {
        return Err(failure(&mut child).await);
    }
    Ok((child, out, line))
}

/// `HEAD /containers/{id}/archive?path=`: the path's stat in a header.
pub async fn archive_head(
    state: &Arc<State>,
    r: &Req,
    id: String,
) -> Result<Response<Body>, ApiError> {
    let (mut child, _, line) = stat_first(state, r, id, "stat").await?;
    outcome(&mut child).await?;
    let (k, v) = stat_header(&line);
    http::base(StatusCode::OK)
        .header(k, v)
        .body(http::empty())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /containers/{id}/archive?path=`: a tar of the path (named by its
/// last component), its stat in a header.
pub async fn archive_get(
    state: &Arc<State>,
    r: &Req,
    id: String,
) -> Result<Response<Body>, ApiError> {
    let (child, out, line) = stat_first(state, r, id, "archive-get").await?;
    relay(
        child,
        out,
        Bytes::new(),
        StatusCode::OK,
        "application/x-tar",
        Some(stat_header(&line)),
    )
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`:
/// the body, a tar, extracted into the directory `path`.
pub async fn archive_put(
    state: &Arc<State>,
    r: &Req,
    id: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = path_arg(r)?;
    let request = json!({
        "container": id,
        "path": path,
        "copy_uid_gid": r.flag("copyUIDGID"),
        "no_overwrite_dir_non_dir": r.flag("noOverwriteDirNonDir"),
    });
    let mut child = spawn(state, "archive-put", &request, true)?;
    feed(&mut child, req);
    outcome(&mut child).await?;
    Ok(http::no_content(StatusCode::OK))
}

/// A query value that is JSON (`buildargs`, `labels`); absent or empty is
/// the default.
fn json_arg<T: serde::de::DeserializeOwned + Default>(r: &Req, k: &str) -> Result<T, ApiError> {
    match r.q(k).filter(|s| !s.is_empty()) {
        None => Ok(T::default()),
        Some(s) => {
            serde_json::from_str(s).map_err(|e| ApiError::bad_request(format!("invalid {k}: {e}")))
        }
    }
}

/// `POST /build`: the classic builder's API — a tar context in the body,
/// JSON messages back (`stream`, `aux` with the image ID, `errorDetail`).
pub async fn build(
    state: &Arc<State>,
    r: &Req,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if r.q("version") == Some("2") {
        return Err(ApiError::bad_request(
            "BuildKit (version=2) is not served by berth: use the classic builder (DOCKER_BUILDKIT=0)",
        ));
    }
    if let Some(remote) = r.q("remote").filter(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "remote build contexts ({remote}) are not supported by berth: send the context in the body"
        )));
    }
    if let Some(p) = r.q("platform").filter(|s| !s.is_empty()) {
        let want = berth_types::Platform::parse(p).map_err(ApiError::bad_request)?;
        let host = berth_types::Platform::host();
        if want.os != host.os || want.architecture != host.architecture {
            return Err(ApiError::bad_request(format!(
                "berth builds for the host's platform only ({host}), not {p}"
            )));
        }
    }
    let tags: Vec<String> = r
        .query
        .iter()
        .filter(|(k, v)| k == "t" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    for t in &tags {
        berth_types::Reference::parse(t)
            .map_err(|_| ApiError::bad_request(format!("invalid reference format: {t}")))?;
    }
    let build_args: std::collections::BTreeMap<String, Option<String>> = json_arg(r, "buildargs")?;
    let labels: std::collections::BTreeMap<String, String> = json_arg(r, "labels")?;
    let request = json!({"build": {
        "dockerfile": r.q("dockerfile").unwrap_or(""),
        "tags": tags,
        "build_args": build_args,
        "labels": labels,
        "no_cache": r.flag("nocache"),
        "pull": r.flag("pull"),
        "quiet": r.flag("q"),
        "target": r.q("target").unwrap_or(""),
        "network": r.q("networkmode").unwrap_or(""),
    }});
    let mut child = spawn(state, "build", &request, true)?;
    feed(&mut child, req);
    let mut out = stdout_of(&mut child)?;
    let first = first_bytes(&mut child, &mut out).await?.unwrap_or_default();
    relay(child, out, first, StatusCode::OK, "application/json", None)
}
