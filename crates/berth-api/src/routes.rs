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
}

impl State {
    /// Runs `f` on an engine opened for it, in a blocking thread.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let opts = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let mut e = Engine::open(opts)?;
            f(&mut e)
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }
}

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let r = match Req::parse(req.method().clone(), req.uri().path(), req.uri().query()) {
        Ok(r) => r,
        Err(e) => return Ok(http::error(&e)),
    };
    let head = r.method == Method::HEAD;
    let res = route(&state, &r).await;
    let mut resp = match res {
        Ok(resp) => resp,
        Err(e) => http::error(&e),
    };
    if head {
        *resp.body_mut() = http::empty();
    }
    Ok(resp)
}

async fn route(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let seg: Vec<&str> = r.segments.iter().map(String::as_str).collect();
    let get = r.method == Method::GET || r.method == Method::HEAD;
    match (seg.as_slice(), get) {
        (["_ping"], true) => Ok(crate::system::ping()),
        (["version"], true) => crate::system::version(state).await,
        (["info"], true) => crate::system::info(state).await,
        (["containers", "json"], true) => crate::containers::list(state, r).await,
        (["containers", id, "json"], true) => {
            crate::containers::inspect(state, r, id.to_string()).await
        }
        (["images", "json"], true) => crate::images::list(state, r).await,
        // An image name holds slashes: everything between `images/` and
        // the last segment.
        (["images", name @ .., "json"], true) if !name.is_empty() => {
            crate::images::inspect(state, name.join("/")).await
        }
        (["images", name @ .., "history"], true) if !name.is_empty() => {
            crate::images::history(state, name.join("/")).await
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}
