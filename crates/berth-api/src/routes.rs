//! The routes: method and path segments to a handler. Handlers that reach
//! the store run in a blocking thread with an engine of their own.

use std::convert::Infallible;
use std::sync::Arc;

use berth_engine::{Engine, Options};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::http::{self, ApiError, Body, Req};

pub struct State {
    pub engine: Options,
    /// Attaches waiting for their container's start (the docker CLI's
    /// `run` attaches before it starts), by container ID.
    pub pending: crate::attach::Pending,
    /// Exec instances, by ID.
    pub execs: crate::exec::Execs,
    /// Engines opened before and free now: opening one (directories, the
    /// SQLite connection) costs more than most requests. An engine holds
    /// no state of the store's between calls — every call reads SQLite and
    /// the containers' files afresh — so reusing one sees what the CLI and
    /// the monitors wrote meanwhile.
    pub pool: std::sync::Mutex<Vec<Engine>>,
    /// Requests answered so far (the idle trimmer's clue).
    pub served: std::sync::atomic::AtomicU64,
    /// Inspects and lists kept while what they were read from is
    /// unchanged (none if inotify could not be had).
    pub cache: Option<crate::cache::Cache>,
}

/// Engines kept for reuse; more in use at once are opened and closed.
const POOL: usize = 16;

impl State {
    /// Runs `f` on an engine of its own, in a blocking thread.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Engine) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = state.pool.lock().ok().and_then(|mut p| p.pop());
            let mut e = match pooled {
                Some(e) => e,
                None => Engine::open(state.engine.clone())?,
            };
            let r = f(&mut e);
            if let Ok(mut p) = state.pool.lock() {
                if p.len() < POOL {
                    p.push(e);
                }
            }
            r
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }
}

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if let Some(resp) = kept_inspect(&state, &req) {
        state
            .served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(resp);
    }
    let r = match Req::parse(req.method().clone(), req.uri().path(), req.uri().query()) {
        Ok(r) => r,
        Err(e) => return Ok(http::error(&e)),
    };
    let head = r.method == Method::HEAD;
    state
        .served
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let res = route(&state, &r, req).await;
    let mut resp = match res {
        Ok(resp) => resp,
        Err(e) => http::error(&e),
    };
    if head {
        *resp.body_mut() = http::empty();
    }
    Ok(resp)
}

/// `GET [/vX.Y]/containers/ID/json`, the request clients poll, answered
/// from the cache before any routing (no allocation but the answer's);
/// anything unusual (a query, an escape, a version out of range, nothing
/// kept) goes the general way.
fn kept_inspect(state: &State, req: &Request<Incoming>) -> Option<Response<Body>> {
    if req.method() != Method::GET || req.uri().query().is_some() {
        return None;
    }
    let cache = state.cache.as_ref()?;
    let path = req.uri().path().strip_prefix('/')?;
    let (first, rest) = path.split_once('/')?;
    let (version, rest) = match http::parse_version(first) {
        Some(v) if (crate::MIN_API_VERSION..=crate::MAX_API_VERSION).contains(&v) => {
            (Some(v), rest)
        }
        Some(_) => return None,
        None => (None, path),
    };
    let id = rest.strip_prefix("containers/")?.strip_suffix("/json")?;
    if id.is_empty() || id.contains(['/', '%']) {
        return None;
    }
    let b = cache.inspect(id, http::at_most(version, (1, 41)))?;
    Some(http::json_bytes(StatusCode::OK, b))
}

/// The most a JSON request body may hold.
const MAX_BODY: usize = 4 << 20;

/// A request's body, whole, up to [`MAX_BODY`].
pub async fn body(req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY} bytes"),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

async fn route(
    state: &Arc<State>,
    r: &Req,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    use crate::containers as c;
    use crate::objects as o;
    let seg: Vec<&str> = r.segments.iter().map(String::as_str).collect();
    let m = &r.method;
    let get = *m == Method::GET || *m == Method::HEAD;
    let post = *m == Method::POST;
    match seg.as_slice() {
        ["_ping"] if get => Ok(crate::system::ping()),
        ["version"] if get => crate::system::version(state).await,
        ["info"] if get => crate::system::info(state).await,
        ["containers", "json"] if get => c::list(state, r).await,
        ["containers", "create"] if post => c::create(state, r, body(req).await?).await,
        ["containers", id, "json"] if get => c::inspect(state, r, id.to_string()).await,
        ["containers", id, "start"] if post => c::start(state, id.to_string()).await,
        ["containers", id, "stop"] if post => c::stop(state, r, id.to_string(), false).await,
        ["containers", id, "restart"] if post => c::stop(state, r, id.to_string(), true).await,
        ["containers", id, "kill"] if post => c::kill(state, r, id.to_string()).await,
        ["containers", id, "pause"] if post => c::pause(state, id.to_string(), true).await,
        ["containers", id, "unpause"] if post => c::pause(state, id.to_string(), false).await,
        ["containers", id, "rename"] if post => c::rename(state, r, id.to_string()).await,
        ["containers", id, "wait"] if post => c::wait(state, r, id.to_string()).await,
        ["containers", id, "logs"] if get => c::logs(state, r, id.to_string()).await,
        ["containers", id, "resize"] if post => c::resize(state, r, id.to_string()).await,
        ["containers", id, "top"] if get => c::top(state, r, id.to_string()).await,
        ["containers", id, "changes"] if get => c::changes(state, id.to_string()).await,
        ["containers", id, "export"] if get => crate::helper::export(state, id.to_string()).await,
        ["containers", id, "archive"] if *m == Method::HEAD => {
            crate::helper::archive_head(state, r, id.to_string()).await
        }
        ["containers", id, "archive"] if *m == Method::GET => {
            crate::helper::archive_get(state, r, id.to_string()).await
        }
        ["containers", id, "archive"] if *m == Method::PUT => {
            crate::helper::archive_put(state, r, id.to_string(), req).await
        }
        ["build"] if post => crate::helper::build(state, r, req).await,
        ["build", "prune"] if post => o::build_prune(state, r).await,
        ["containers", id, "stats"] if get => {
            crate::resources::stats(state, r, id.to_string()).await
        }
        ["containers", id, "update"] if post => {
            crate::resources::update(state, id.to_string(), body(req).await?).await
        }
        ["system", "df"] if get => crate::resources::system_df(state).await,
        ["containers", id, "attach"] if post => {
            crate::attach::attach(state, r, id.to_string(), req).await
        }
        ["containers", id, "exec"] if post => {
            crate::exec::create(state, id.to_string(), body(req).await?).await
        }
        ["exec", id, "start"] if post => crate::exec::start(state, id.to_string(), req).await,
        ["exec", id, "resize"] if post => crate::exec::resize(state, r, id.to_string()).await,
        ["exec", id, "json"] if get => crate::exec::inspect(state, id.to_string()).await,
        ["containers", id] if *m == Method::DELETE => c::remove(state, r, id.to_string()).await,
        ["containers", "prune"] if post => o::container_prune(state, r).await,
        ["images", "json"] if get => crate::images::list(state, r).await,
        ["images", "create"] if post => crate::transfer::create(state, r, req).await,
        ["images", "load"] if post => crate::transfer::load(state, r, req).await,
        ["images", "get"] if get => {
            let names = r.query.iter().filter(|(k, _)| k == "names");
            crate::transfer::save(state, names.map(|(_, v)| v.clone()).collect()).await
        }
        ["images", name @ .., "get"] if get && !name.is_empty() => {
            crate::transfer::save(state, vec![name.join("/")]).await
        }
        ["images", name @ .., "push"] if post && !name.is_empty() => {
            crate::transfer::push(state, r, name.join("/"), req).await
        }
        ["images", "prune"] if post => o::image_prune(state, r).await,
        ["images", name @ .., "tag"] if post && !name.is_empty() => {
            o::tag(state, r, name.join("/")).await
        }
        ["commit"] if post => o::commit(state, r).await,
        ["volumes"] if get => o::volumes(state, r).await,
        ["volumes", "create"] if post => o::volume_create(state, body(req).await?).await,
        ["volumes", "prune"] if post => o::volume_prune(state, r).await,
        ["volumes", name] if get => o::volume(state, name.to_string()).await,
        ["volumes", name] if *m == Method::DELETE => {
            o::volume_remove(state, r, name.to_string()).await
        }
        ["networks"] if get => o::networks(state, r).await,
        ["networks", "create"] if post => o::network_create(state, body(req).await?).await,
        ["networks", "prune"] if post => o::network_prune(state, r).await,
        ["networks", id] if get => o::network(state, id.to_string()).await,
        ["networks", id] if *m == Method::DELETE => o::network_remove(state, id.to_string()).await,
        ["networks", id, "connect"] if post => {
            o::network_connect(state, id.to_string(), body(req).await?, true).await
        }
        ["networks", id, "disconnect"] if post => {
            o::network_connect(state, id.to_string(), body(req).await?, false).await
        }
        ["auth"] if post => o::auth(state, body(req).await?).await,
        ["events"] if get => o::events(state, r).await,
        // An image name holds slashes: everything between `images/` and
        // the last segment.
        ["images", name @ .., "json"] if get && !name.is_empty() => {
            crate::images::inspect(state, name.join("/")).await
        }
        ["images", name @ .., "history"] if get && !name.is_empty() => {
            crate::images::history(state, name.join("/")).await
        }
        ["images", name @ ..] if *m == Method::DELETE && !name.is_empty() => {
            o::image_remove(state, r, name.join("/")).await
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}
