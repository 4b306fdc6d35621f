//! `/_ping`, `/version`, `/info`.

use std::sync::Arc;

use hyper::{header, Response, StatusCode};

use crate::http::{self, ApiError, Body};
use crate::routes::State;

/// `GET|HEAD /_ping`: `OK`, with the headers clients negotiate from.
pub fn ping() -> Response<Body> {
    http::base(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")
        .header(header::PRAGMA, "no-cache")
        .header("Builder-Version", "1")
        .body(http::full("OK"))
        .unwrap_or_else(|_| Response::new(http::empty()))
}

pub async fn version(state: &Arc<State>) -> Result<Response<Body>, ApiError> {
    let mut v = state.blocking(|e| Ok(e.version())).await?;
    // The oldest version this server takes, not dockerd's.
    let min = format!("{}.{}", crate::MIN_API_VERSION.0, crate::MIN_API_VERSION.1);
    v["MinAPIVersion"] = min.clone().into();
    if let Some(d) = v
        .get_mut("Components")
        .and_then(|c| c.get_mut(0))
        .and_then(|c| c.get_mut("Details"))
    {
        d["MinAPIVersion"] = min.into();
    }
    Ok(http::json(StatusCode::OK, &v))
}

pub async fn info(state: &Arc<State>) -> Result<Response<Body>, ApiError> {
    let v = state.blocking(|e| Ok(e.info()?)).await?;
    Ok(http::json(StatusCode::OK, &v))
}
