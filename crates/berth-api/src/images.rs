//! `/images/...`.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

/// `GET /images/json?all&filters&digests`: moby's image summaries.
pub async fn list(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let filters = r.filters()?;
    let all = r.flag("all");
    let rows = state
        .blocking(move |e| {
            let list = e.images_filtered(&filters, all)?;
            Ok(list
                .iter()
                .map(|img| {
                    let created = chrono::DateTime::parse_from_rfc3339(&img.created)
                        .map(|t| t.timestamp())
                        .unwrap_or(0);
                    let mut tags: Vec<String> = img.tags.iter().map(|t| t.familiar()).collect();
                    let mut digests = img.repo_digests.clone();
                    // moby 20.10: an untagged image lists placeholders.
                    if tags.is_empty() {
                        if digests.is_empty() {
                            digests.push("<none>@<none>".into());
                        }
                        tags.push("<none>:<none>".into());
                    }
                    let labels = &img.config.config.labels;
                    json!({
                        "Containers": -1,
                        "Created": created,
                        "Id": img.id.to_string(),
                        "Labels": labels.as_ref().filter(|l| !l.is_empty()).map_or(Value::Null, |l| json!(l)),
                        "ParentId": img.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                        // moby: null for a tagged image never pulled.
                        "RepoDigests": if digests.is_empty() { Value::Null } else { json!(digests) },
                        "RepoTags": tags,
                        "SharedSize": -1,
                        "Size": img.size,
                        "VirtualSize": img.size,
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(http::json(StatusCode::OK, &rows))
}

/// `GET /images/{name}/json`.
pub async fn inspect(state: &Arc<State>, name: String) -> Result<Response<Body>, ApiError> {
    let v = state.blocking(move |e| Ok(e.inspect_image(&name)?)).await?;
    Ok(http::json(StatusCode::OK, &v))
}

/// `GET /images/{name}/history`.
pub async fn history(state: &Arc<State>, name: String) -> Result<Response<Body>, ApiError> {
    let rows = state
        .blocking(move |e| {
            Ok(e.history(&name)?
                .into_iter()
                .map(|h| {
                    let created = h
                        .created
                        .as_deref()
                        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                        .map(|t| t.timestamp())
                        .unwrap_or(0);
                    json!({
                        "Comment": h.comment,
                        "Created": created,
                        "CreatedBy": h.created_by,
                        "Id": h.id.map(|d| d.to_string()).unwrap_or_else(|| "<missing>".into()),
                        "Size": h.size,
                        "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(http::json(StatusCode::OK, &rows))
}
