//! Volumes, networks, image verbs without streams (tag, delete, prune,
//! commit), container prune, `/system/df`, `/auth`, `/events`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

/// A JSON body; `null` anywhere is the field's zero value, as Go's
/// decoder reads it (docker-py sends `"IPRange": null`).
fn parse<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    drop_nulls(&mut v);
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Removes null-valued keys of every object in `v`.
pub(crate) fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

// ---- volumes ----

pub async fn volumes(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let f = r.filters()?;
    let list = state
        .blocking(move |e| {
            let list = e.volumes_filtered(&f)?;
            Ok(list
                .into_iter()
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"Volumes": list, "Warnings": null}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeCreate {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

pub async fn volume_create(
    state: &Arc<State>,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let c: VolumeCreate = parse(&body)?;
    let v = state
        .blocking(move |e| {
            let driver = if c.driver.is_empty() {
                "local"
            } else {
                c.driver.as_str()
            };
            let name = (!c.name.is_empty()).then_some(c.name.as_str());
            // Kept as the client sent them: dockerd shows `{}` for empty
            // maps and `null` for none.
            let created =
                e.create_volume_given(name, driver, c.labels.as_ref(), c.driver_opts.as_ref())?;
            Ok(serde_json::to_value(created).unwrap_or(Value::Null))
        })
        .await?;
    Ok(http::json(StatusCode::CREATED, &v))
}

pub async fn volume(state: &Arc<State>, name: String) -> Result<Response<Body>, ApiError> {
    let v = state
        .blocking(move |e| Ok(serde_json::to_value(e.volume(&name)?).unwrap_or(Value::Null)))
        .await?;
    Ok(http::json(StatusCode::OK, &v))
}

pub async fn volume_remove(
    state: &Arc<State>,
    r: &Req,
    name: String,
) -> Result<Response<Body>, ApiError> {
    let force = r.flag("force");
    state
        .blocking(move |e| Ok(e.remove_volume(&name, force)?))
        .await?;
    Ok(http::no_content(StatusCode::NO_CONTENT))
}

pub async fn volume_prune(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    // API 1.41 (what berth speaks) prunes every unused volume (1.42 made
    // anonymous ones the default); label filters are not read yet.
    let _ = r.filters()?;
    let report = state.blocking(move |e| Ok(e.prune_volumes(true)?)).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"VolumesDeleted": report.deleted, "SpaceReclaimed": report.space_reclaimed}),
    ))
}

// ---- networks ----

pub async fn networks(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let f = r.filters()?;
    let list = state
        .blocking(move |e| {
            let nets = e.networks_filtered(&f)?;
            let mut out = Vec::with_capacity(nets.len());
            for n in nets {
                out.push(e.inspect_network(&n.id)?);
            }
            Ok(out)
        })
        .await?;
    Ok(http::json(StatusCode::OK, &list))
}

pub async fn network(state: &Arc<State>, id: String) -> Result<Response<Body>, ApiError> {
    let v = state.blocking(move |e| Ok(e.network_inspect(&id)?)).await?;
    Ok(http::json(StatusCode::OK, &v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkCreate {
    name: String,
    driver: String,
    internal: bool,
    attachable: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamConfig>>,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
}

pub async fn network_create(
    state: &Arc<State>,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let c: NetworkCreate = parse(&body)?;
    if c.name.is_empty() {
        return Err(ApiError::bad_request("network name is empty"));
    }
    let ipam = c.ipam.unwrap_or_default();
    let configs = ipam.config.unwrap_or_default();
    let o = berth_engine::NetworkCreateOptions {
        name: c.name,
        driver: c.driver,
        subnets: configs
            .iter()
            .map(|c| c.subnet.clone())
            .filter(|s| !s.is_empty())
            .collect(),
        ip_ranges: configs
            .iter()
            .map(|c| c.ip_range.clone())
            .filter(|s| !s.is_empty())
            .collect(),
        gateways: configs
            .iter()
            .map(|c| c.gateway.clone())
            .filter(|s| !s.is_empty())
            .collect(),
        internal: c.internal,
        attachable: c.attachable,
        ipv6: c.enable_ipv6,
        labels: c.labels.unwrap_or_default(),
        options: c.options.unwrap_or_default(),
        ipam_driver: ipam.driver,
        ipam_options: ipam.options.unwrap_or_default(),
    };
    let n = state.blocking(move |e| Ok(e.network_create(&o)?)).await?;
    Ok(http::json(
        StatusCode::CREATED,
        &json!({"Id": n.id, "Warning": ""}),
    ))
}

pub async fn network_remove(state: &Arc<State>, id: String) -> Result<Response<Body>, ApiError> {
    state
        .blocking(move |e| Ok(e.network_remove(&id).map(|_| ())?))
        .await?;
    Ok(http::no_content(StatusCode::NO_CONTENT))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Connect {
    container: String,
    endpoint_config: Option<Endpoint>,
    force: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Endpoint {
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<EndpointIpam>,
    mac_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointIpam {
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
}

pub async fn network_connect(
    state: &Arc<State>,
    id: String,
    body: bytes::Bytes,
    connect: bool,
) -> Result<Response<Body>, ApiError> {
    let c: Connect = parse(&body)?;
    state
        .blocking(move |e| {
            if connect {
                let ep = c.endpoint_config.unwrap_or_default();
                let o = berth_engine::EndpointOptions {
                    aliases: ep.aliases.unwrap_or_default(),
                    ipv4_address: ep
                        .ipam_config
                        .map(|i| i.ipv4_address)
                        .filter(|s| !s.is_empty()),
                    mac_address: (!ep.mac_address.is_empty()).then_some(ep.mac_address),
                };
                e.network_connect(&id, &c.container, &o)?;
            } else {
                e.network_disconnect(&id, &c.container, c.force)?;
            }
            Ok(())
        })
        .await?;
    Ok(http::no_content(StatusCode::OK))
}

pub async fn network_prune(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let f = r.filters()?;
    let removed = state.blocking(move |e| Ok(e.network_prune(&f)?)).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"NetworksDeleted": removed}),
    ))
}

// ---- images without streams ----

/// `POST /images/{name}/tag?repo&tag`.
pub async fn tag(state: &Arc<State>, r: &Req, name: String) -> Result<Response<Body>, ApiError> {
    let repo = r.q("repo").unwrap_or_default().to_string();
    let tag = r.q("tag").unwrap_or_default().to_string();
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "repository name must have at least one component",
        ));
    }
    let target = if tag.is_empty() {
        repo
    } else {
        format!("{repo}:{tag}")
    };
    state.blocking(move |e| Ok(e.tag(&name, &target)?)).await?;
    Ok(http::no_content(StatusCode::CREATED))
}

fn removed_json(list: &[berth_engine::RemovedImage]) -> Value {
    Value::Array(
        list.iter()
            .map(|r| match r {
                berth_engine::RemovedImage::Untagged(s) => json!({"Untagged": s}),
                berth_engine::RemovedImage::Deleted(d) => json!({"Deleted": d.to_string()}),
            })
            .collect(),
    )
}

/// `DELETE /images/{name}?force&noprune`.
pub async fn image_remove(
    state: &Arc<State>,
    r: &Req,
    name: String,
) -> Result<Response<Body>, ApiError> {
    let o = berth_engine::RmiOptions {
        force: r.flag("force"),
        no_prune: r.flag("noprune"),
    };
    let list = state
        .blocking(move |e| Ok(e.remove_image_opts(&name, &o)?))
        .await?;
    Ok(http::json(StatusCode::OK, &removed_json(&list)))
}

/// `POST /images/prune?filters={"dangling":{"false":true}}`.
pub async fn image_prune(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let f = r.filters()?;
    let all = f.get("dangling").iter().any(|v| v == "false" || v == "0");
    let report = state.blocking(move |e| Ok(e.prune_images(all)?)).await?;
    let deleted = removed_json(&report.removed);
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "ImagesDeleted": if report.removed.is_empty() { Value::Null } else { deleted },
            "SpaceReclaimed": report.space_reclaimed,
        }),
    ))
}

/// `POST /build/prune?all&keep-storage&filters`: the build cache.
pub async fn build_prune(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let o = berth_engine::BuildCachePruneOptions {
        all: r.flag("all"),
        filters: r.filters()?,
        keep_storage: r
            .int("keep-storage")?
            .filter(|n| *n > 0)
            .and_then(|n| u64::try_from(n).ok()),
    };
    let report = state
        .blocking(move |e| Ok(e.prune_build_cache(&o)?))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "CachesDeleted": if report.deleted.is_empty() { Value::Null } else { json!(report.deleted) },
            "SpaceReclaimed": report.space_reclaimed,
        }),
    ))
}

/// `POST /containers/prune?filters`.
pub async fn container_prune(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let f = r.filters()?;
    let report = state.blocking(move |e| Ok(e.prune_containers(&f)?)).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "ContainersDeleted": if report.deleted.is_empty() { Value::Null } else { json!(report.deleted) },
            "SpaceReclaimed": report.space_reclaimed,
        }),
    ))
}

/// `POST /commit?container&repo&tag&comment&author&pause&changes`
/// (a `Config` body, as the docker CLI sends, is not read: `changes` are).
pub async fn commit(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let container = r.q("container").unwrap_or_default().to_string();
    let repo = r.q("repo").unwrap_or_default();
    let tag = r.q("tag").unwrap_or_default();
    let reference = match (repo.is_empty(), tag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(repo.to_string()),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let pause = r.q("pause").is_none_or(|_| r.flag("pause"));
    let o = berth_engine::CommitOptions {
        message: r.q("comment").filter(|s| !s.is_empty()).map(str::to_string),
        author: r.q("author").filter(|s| !s.is_empty()).map(str::to_string),
        changes: r
            .query
            .iter()
            .filter(|(k, v)| k == "changes" && !v.is_empty())
            .flat_map(|(_, v)| v.split('\n').map(str::to_string).collect::<Vec<_>>())
            .collect(),
        pause,
        reference,
    };
    let id = state
        .blocking(move |e| Ok(e.commit(&container, &o)?))
        .await?;
    Ok(http::json(
        StatusCode::CREATED,
        &json!({"Id": id.to_string()}),
    ))
}

// ---- system ----

/// `POST /auth`: berth's registries are reached by the CLI's `login`; the
/// server accepts the credentials without checking them (as Docker does
/// for a registry that answers without authentication).
/// `POST /auth`: the credentials checked against the registry, as
/// dockerd checks them (`docker login`); an identity token if the
/// registry's token server handed one out. Nothing is stored: the client
/// keeps its credentials and sends them with each pull and push.
pub async fn auth(state: &Arc<State>, body: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct AuthConfig {
        username: String,
        password: String,
        serveraddress: String,
        identitytoken: String,
    }
    let a: AuthConfig = parse(&body)?;
    let server = if a.serveraddress.is_empty() {
        "https://index.docker.io/v1/".to_string()
    } else {
        a.serveraddress
    };
    let creds = berth_registry::credentials::Credentials {
        username: a.username,
        password: a.password,
        identity_token: Some(a.identitytoken).filter(|t| !t.is_empty()),
    };
    let token = state
        .blocking(move |_| {
            let settings = berth_registry::Settings::load_default()
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            settings.verify_login(&server, &creds).map_err(|e| {
                // dockerd answers a refused login 401 with the registry's words.
                ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
            })
        })
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"Status": "Login Succeeded", "IdentityToken": token.unwrap_or_default()}),
    ))
}

/// `GET /events?since&until&filters`: Docker's JSON messages, one per
/// line, followed until `until` or the client goes.
pub async fn events(state: &Arc<State>, r: &Req) -> Result<Response<Body>, ApiError> {
    let now = chrono::Utc::now();
    let time = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match r.q(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => berth_engine::timeparse::parse_time_arg(s, k, now)
                .map(Some)
                .map_err(ApiError::bad_request),
        }
    };
    let o = berth_engine::events::EventOptions {
        since: time("since")?,
        until: time("until")?,
        filters: r.filters()?,
    };
    // A bad filter before the head.
    {
        let f = o.filters.clone();
        state
            .blocking(move |e| {
                let probe = berth_engine::events::EventOptions {
                    since: Some(chrono::Utc::now()),
                    until: Some(chrono::Utc::now()),
                    filters: f,
                };
                Ok(e.events(&probe, |_| true)?)
            })
            .await?;
    }
    let (tx, body) = http::stream();
    let state = state.clone();
    tokio::spawn(async move {
        let _ = state
            .blocking(move |e| {
                // A client gone quiet is noticed within a second.
                let gone = tx.clone();
                let every = Some(std::time::Duration::from_secs(1));
                e.events_while(
                    &o,
                    every,
                    || !gone.is_closed(),
                    |ev| {
                        let mut line = serde_json::to_vec(ev).unwrap_or_default();
                        line.push(b'\n');
                        tx.blocking_send(line.into()).is_ok()
                    },
                )?;
                Ok(())
            })
            .await;
    });
    Ok(http::base(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(http::empty())))
}
