//! `/containers/...`.

use std::sync::Arc;

use berth_engine::ContainerView;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

/// `GET /containers/json?all&limit&size&filters`: moby's container
/// summaries, newest first.
pub async fn list(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let filters = r.filters()?;
    let all = r.flag("all");
    let size = r.flag("size");
    let limit = r.int("limit")?.filter(|n| *n > 0);
    let rows = state
        .blocking(move |e| {
            let mut list = e.containers_filtered(&filters, all || limit.is_some())?;
            e.sweep_networks_but(&list);
            if let Some(n) = limit {
                list.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            }
            let now = chrono::Utc::now();
            let mut rows = Vec::with_capacity(list.len());
            for v in &list {
                let mut row = summary(e, v, now);
                if size {
                    let (rw, all) = e.container_size(v)?;
                    row.insert("SizeRw".into(), rw.into());
                    row.insert("SizeRootFs".into(), all.into());
                }
                rows.push(Value::Object(row));
            }
            Ok(rows)
        })
        .await?;
    Ok(http::json(StatusCode::OK, &rows))
}

fn summary(
    e: &berth_engine::Engine,
    v: &ContainerView,
    now: chrono::DateTime<chrono::Utc>,
) -> Map<String, Value> {
    let created = chrono::DateTime::parse_from_rfc3339(&v.created)
        .map(|t| t.timestamp())
        .unwrap_or(0);
    let ports: Vec<Value> = e
        .container_ports(v)
        .iter()
        .map(|p| {
            let mut m = Map::new();
            if !p.host_ip.is_empty() {
                m.insert("IP".into(), p.host_ip.clone().into());
            }
            m.insert("PrivatePort".into(), p.container_port.into());
            if !p.host_ip.is_empty() {
                m.insert("PublicPort".into(), p.host_port.into());
            }
            m.insert("Type".into(), p.proto.clone().into());
            Value::Object(m)
        })
        .collect();
    // Networks and mounts as inspect shows them.
    let inspected = e.inspect_container(v.id.as_str()).unwrap_or(Value::Null);
    let networks = inspected["NetworkSettings"]["Networks"].clone();
    let mounts: Vec<Value> = inspected["Mounts"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let mut m = m.clone();
                    if let Some(o) = m.as_object_mut() {
                        o.remove("Target");
                    }
                    m
                })
                .collect()
        })
        .unwrap_or_default();
    let labels: Map<String, Value> = v
        .config
        .labels
        .iter()
        .map(|(k, val)| (k.clone(), Value::String(val.clone())))
        .collect();
    let mut m = Map::new();
    m.insert("Id".into(), v.id.to_string().into());
    m.insert("Names".into(), json!([format!("/{}", v.name)]));
    m.insert("Image".into(), v.image.clone().into());
    m.insert("ImageID".into(), v.image_id.to_string().into());
    m.insert("Command".into(), v.command_text().into());
    m.insert("Created".into(), created.into());
    m.insert("Ports".into(), Value::Array(ports));
    m.insert("Labels".into(), Value::Object(labels));
    m.insert("State".into(), v.status_word().into());
    m.insert("Status".into(), v.status_text(now).into());
    m.insert(
        "HostConfig".into(),
        json!({"NetworkMode": v.host_config.network_mode}),
    );
    m.insert(
        "NetworkSettings".into(),
        json!({"Networks": if networks.is_null() { json!({}) } else { networks }}),
    );
    m.insert("Mounts".into(), Value::Array(mounts));
    m
}

/// `GET /containers/{id}/json?size`.
pub async fn inspect(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let size = r.flag("size");
    let v = state
        .blocking(move |e| Ok(e.inspect_container_sized(&id, size)?))
        .await?;
    Ok(http::json(StatusCode::OK, &v))
}
