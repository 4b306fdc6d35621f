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
    // Sizes are read from the disk at each request, never kept.
    let query = (!size).then(|| format!("{:?}", r.query));
    if let (Some(c), Some(q)) = (&state.cache, &query) {
        if let Some(l) = c.list(q) {
            // Writing a hundred rows is work for a blocking thread, not
            // for the connections' one.
            let body = tokio::task::spawn_blocking(move || l.render(chrono::Utc::now()))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            return Ok(http::json_bytes(StatusCode::OK, body));
        }
    }
    let st = state.clone();
    let rows = state
        .blocking(move |e| {
            let read = |views: Vec<ContainerView>| -> berth_engine::Result<Vec<(ContainerView, Map<String, Value>)>> {
                let mut list = e.filter_containers(views, &filters, all || limit.is_some())?;
                e.sweep_networks_but(&list);
                if let Some(n) = limit {
                    list.truncate(usize::try_from(n).unwrap_or(usize::MAX));
                }
                let now = chrono::Utc::now();
                let mut rows = Vec::with_capacity(list.len());
                for v in list {
                    let mut row = summary(e, &v, now);
                    if size {
                        let (rw, all) = e.container_size(&v)?;
                        row.insert("SizeRw".into(), rw.into());
                        row.insert("SizeRootFs".into(), all.into());
                    }
                    rows.push((v, row));
                }
                Ok(rows)
            };
            match (&st.cache, &query) {
                (Some(c), Some(q)) => Ok(c.fill_list(e, q, read)?.render(chrono::Utc::now())),
                _ => {
                    let rows: Vec<Value> = read(e.containers()?)?
                        .into_iter()
                        .map(|(_, row)| Value::Object(row))
                        .collect();
                    Ok(http::json_body(&rows))
                }
            }
        })
        .await?;
    Ok(http::json_bytes(StatusCode::OK, rows))
}

pub(crate) fn summary(
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
    let (networks, mounts) = e.container_networks_and_mounts(v);
    let mounts: Vec<Value> = mounts
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
    // API 1.41 still had the kernel memory limits (always 0 here: cgroup
    // v2 and recent kernels have none); 1.42 dropped them.
    let old = r.at_most((1, 41));
    let shape = move |v: &mut Value| {
        if old {
            if let Some(h) = v.get_mut("HostConfig").and_then(Value::as_object_mut) {
                h.insert("KernelMemory".into(), 0.into());
                h.insert("KernelMemoryTCP".into(), 0.into());
            }
        }
    };
    if !size {
        if let Some(c) = &state.cache {
            if let Some(b) = c.inspect(&id, old) {
                return Ok(http::json_bytes(StatusCode::OK, b));
            }
        }
        let st = state.clone();
        let b = state
            .blocking(move |e| match &st.cache {
                Some(c) => Ok(c.fill_inspect(e, &id, old, shape)?),
                None => {
                    let mut v = e.inspect_container(&id)?;
                    shape(&mut v);
                    Ok(bytes::Bytes::from(http::json_body(&v)))
                }
            })
            .await?;
        return Ok(http::json_bytes(StatusCode::OK, b));
    }
    let mut v = state
        .blocking(move |e| Ok(e.inspect_container_sized(&id, size)?))
        .await?;
    shape(&mut v);
    Ok(http::json(StatusCode::OK, &v))
}

/// `POST /containers/create?name=`: 201 `{"Id", "Warnings"}`.
pub async fn create(
    state: &Arc<State>,
    r: &Req,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let o = crate::create::options(&body, r.q("name").map(str::to_string))?;
    let image = o.image.clone();
    let (id, warnings) = state
        .blocking(move |e| {
            let warnings = e.limit_warnings(&o.resources);
            match e.create(&o) {
                Ok(id) => Ok((id, warnings)),
                // The docker CLI pulls on this 404 and tries again.
                Err(berth_engine::EngineError::ImageNotFoundLocally(_)) => Err(
                    ApiError::not_found(format!("No such image: {}", full_name(&image))),
                ),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
    Ok(http::json(
        StatusCode::CREATED,
        &json!({"Id": id.to_string(), "Warnings": warnings}),
    ))
}

/// `bb` → `bb:latest`, as the daemon names a missing image.
fn full_name(image: &str) -> String {
    match berth_types::Reference::parse(image) {
        Ok(r) if r.tag().is_none() && r.digest().is_none() => format!("{}:latest", r.familiar()),
        Ok(r) => r.familiar(),
        Err(_) => image.to_string(),
    }
}

/// `POST /containers/{id}/start`: 204, or 304 when it already runs. An
/// attach waiting for this container is connected as the process starts.
pub async fn start(state: &Arc<State>, id: String) -> Result<Response<Body>, ApiError> {
    let st = state.clone();
    let (v, pending) = state
        .blocking(move |e| {
            let v = e.container(&id)?;
            Ok((v.clone(), st.pending.take(v.id.as_str())))
        })
        .await?;
    if v.running() {
        return Ok(http::no_content(StatusCode::NOT_MODIFIED));
    }
    let auto_remove = v.host_config.auto_remove;
    let id = v.id.to_string();
    let r = match pending {
        Some(p) => crate::attach::start_attached(state, v, p).await,
        None => {
            let id = id.clone();
            state.blocking(move |e| Ok(e.start(&id)?)).await.map(|_| ())
        }
    };
    if let Err(err) = r {
        // moby: a `--rm` container that could not start is removed (the
        // CLI's `run` waits for that).
        if auto_remove {
            let _ = state
                .blocking(move |e| Ok(e.remove(&id, true, true)?))
                .await;
        }
        return Err(err);
    }
    Ok(http::no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/stop?t=` (and `restart`): 204, or 304 when a
/// stop finds it stopped.
pub async fn stop(
    state: &Arc<State>,
    r: &Req,
    id: String,
    restart: bool,
) -> Result<Response<Body>, ApiError> {
    let t = r.int("t")?;
    let done = state
        .blocking(move |e| {
            if restart {
                e.restart(&id, t)?;
                return Ok(true);
            }
            if !e.container(&id)?.running() {
                return Ok(false);
            }
            e.stop(&id, t)?;
            Ok(true)
        })
        .await?;
    Ok(http::no_content(if done {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let signal = r
        .q("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL")
        .to_string();
    state
        .blocking(move |e| match e.kill(&id, &signal) {
            Ok(_) => Ok(()),
            Err(berth_engine::EngineError::Runtime { message, .. })
                if message.contains("is not running") =>
            {
                Err(ApiError::new(StatusCode::CONFLICT, message))
            }
            Err(e) => Err(e.into()),
        })
        .await?;
    Ok(http::no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause` and `unpause`.
pub async fn pause(state: &Arc<State>, id: String, on: bool) -> Result<Response<Body>, ApiError> {
    state
        .blocking(move |e| {
            if on {
                e.pause(&id)?;
            } else {
                e.unpause(&id)?;
            }
            Ok(())
        })
        .await?;
    Ok(http::no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let name = r.q("name").unwrap_or_default().to_string();
    state.blocking(move |e| Ok(e.rename(&id, &name)?)).await?;
    Ok(http::no_content(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{id}?force&v`.
pub async fn remove(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let (force, volumes) = (r.flag("force"), r.flag("v"));
    state
        .blocking(move |e| Ok(e.remove(&id, force, volumes)?))
        .await?;
    Ok(http::no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`:
/// the head at once (the docker CLI starts the container only after it),
/// `{"StatusCode": N, "Error": null}` when the condition is met.
pub async fn wait(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let condition = match r.q("condition").unwrap_or("") {
        "" | "not-running" => Condition::NotRunning,
        "next-exit" => Condition::NextExit,
        "removed" => Condition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: \"{other}\""
            )))
        }
    };
    // The container must exist now (a 404 before the head) — or have
    // existed and died: a client's `run --rm` may ask only after a quick
    // container has come and gone; its `die` event has the exit code.
    let found = {
        let id = id.clone();
        state
            .blocking(move |e| match e.container(&id) {
                Ok(v) => Ok(Ok(v)),
                Err(berth_engine::EngineError::NoSuchContainer(n)) => {
                    match last_exit(e, &id, chrono::DateTime::UNIX_EPOCH) {
                        Some(code) => Ok(Err(code)),
                        None => Err(berth_engine::EngineError::NoSuchContainer(n).into()),
                    }
                }
                Err(e) => Err(e.into()),
            })
            .await?
    };
    let v = match found {
        Ok(v) => v,
        Err(code) => {
            return Ok(http::json(
                StatusCode::OK,
                &json!({"StatusCode": code, "Error": null}),
            ))
        }
    };
    let since = chrono::Utc::now();
    let (tx, body) = http::stream();
    let state = state.clone();
    tokio::spawn(async move {
        // The client's going away ends the wait (and frees its thread).
        let gone = tx.clone();
        let code = state
            .blocking(move |e| Ok(wait_for(e, &v, condition, since, &|| gone.is_closed())))
            .await
            .unwrap_or(Err("the engine failed".to_string()));
        let doc = match code {
            Ok(Some(code)) => json!({"StatusCode": code, "Error": null}),
            Ok(None) => return,
            Err(m) => json!({"StatusCode": -1, "Error": {"Message": m}}),
        };
        let mut bytes = serde_json::to_vec(&doc).unwrap_or_default();
        bytes.push(b'\n');
        let _ = tx.send(bytes.into()).await;
    });
    Ok(http::base(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(http::empty())))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    NotRunning,
    NextExit,
    Removed,
}

/// How often a wait looks at a container that has not started yet, or
/// is not yet removed: at first, and at most.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(5);
const WAIT_POLL_MAX: std::time::Duration = std::time::Duration::from_millis(250);
/// How often a wait on a running container asks whether its client is
/// still there.
const WAIT_CLIENT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Blocks until `condition` holds for `v`: its exit code; None when
/// `gone` says the client left first.
fn wait_for(
    e: &mut berth_engine::Engine,
    v: &ContainerView,
    condition: Condition,
    since: chrono::DateTime<chrono::Utc>,
    gone: &dyn Fn() -> bool,
) -> Result<Option<i32>, String> {
    let id = v.id.to_string();
    let started_since = |c: &ContainerView| {
        chrono::DateTime::parse_from_rfc3339(&c.state.started_at)
            .is_ok_and(|t| t.with_timezone(&chrono::Utc) >= since)
    };
    // Polls back off from 5 ms (a `run`'s start is a few ms away) to
    // 250 ms (a container created and left alone).
    let mut poll = WAIT_POLL;
    let mut pause = || {
        std::thread::sleep(poll);
        poll = (poll * 2).min(WAIT_POLL_MAX);
        !gone()
    };
    let mut code;
    loop {
        let c = match e.container(&id) {
            Ok(c) => c,
            // Gone: removed (by its monitor under --rm, or by a user)
            // after an exit this loop did not see; the event log has it.
            Err(_) => return Ok(Some(last_exit(e, &id, since).unwrap_or(v.state.exit_code))),
        };
        code = c.state.exit_code;
        if c.running() {
            code = match e.wait_while(&id, WAIT_CLIENT_CHECK, || !gone()) {
                Ok(Some(code)) => code,
                Ok(None) => return Ok(None),
                // Exited and removed between the two looks.
                Err(berth_engine::EngineError::NoSuchContainer(_)) => {
                    last_exit(e, &id, since).unwrap_or(code)
                }
                Err(err) => return Err(err.to_string()),
            };
            break;
        }
        // Not running: done, unless the exit to wait for is still to come
        // (a container about to be started).
        if condition == Condition::NotRunning || started_since(&c) {
            break;
        }
        if !pause() {
            return Ok(None);
        }
    }
    if condition == Condition::Removed {
        while e.container(&id).is_ok() {
            if !pause() {
                return Ok(None);
            }
        }
    }
    Ok(Some(code))
}

/// The exit code of the container's last `die` event since `since`.
fn last_exit(
    e: &berth_engine::Engine,
    id: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Option<i32> {
    let mut filters = berth_engine::filters::Filters::default();
    filters.add("container", id);
    filters.add("event", "die");
    let o = berth_engine::events::EventOptions {
        since: Some(since),
        until: Some(chrono::Utc::now()),
        filters,
    };
    let mut code = None;
    let _ = e.events(&o, |ev| {
        code = ev
            .actor
            .attributes
            .get("exitCode")
            .and_then(|c| c.parse().ok())
            .or(code);
        true
    });
    code
}

/// A `since`/`until` query value: Docker's unix time (`1700000000`,
/// `1700000000.5`) or what the CLI accepts.
fn time_arg(r: &Req, k: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match r.q(k).filter(|s| !s.is_empty() && *s != "0") {
        None => Ok(None),
        Some(s) => berth_engine::timeparse::parse_time_arg(s, k, chrono::Utc::now())
            .map(Some)
            .map_err(ApiError::bad_request),
    }
}

/// `GET /containers/{id}/logs?stdout&stderr&follow&tail&since&until&timestamps`:
/// the json-file log, framed like attach's output (raw with a TTY).
pub async fn logs(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let (stdout, stderr) = (r.flag("stdout"), r.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match r.q("tail").unwrap_or("all") {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => None,
        },
    };
    let o = berth_engine::LogOptions {
        follow: r.flag("follow"),
        tail,
        since: time_arg(r, "since")?,
        until: time_arg(r, "until")?,
    };
    let timestamps = r.flag("timestamps");
    let details = r.flag("details");
    // Errors (no such container, a driver without reading) before the head.
    let tty = {
        let id = id.clone();
        state
            .blocking(move |e| {
                let v = e.container(&id)?;
                if v.host_config.log_config.kind == "none" {
                    return Err(ApiError::bad_request(
                        "configured logging driver does not support reading",
                    ));
                }
                Ok(v.config.tty)
            })
            .await?
    };
    let (tx, body) = http::stream();
    // The head goes out once the log has been read up to now: a client
    // may remove the container before it reads the body (docker-py's
    // `run(remove=True)`), and what was there must still come.
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let state = state.clone();
    tokio::spawn(async move {
        let _ = state
            .blocking(move |e| {
                let gone = tx.clone();
                let read = std::cell::RefCell::new(Some(read_tx));
                let mark = || {
                    if let Some(t) = read.borrow_mut().take() {
                        let _ = t.send(Ok(()));
                    }
                };
                let r = e.logs_while(
                    &id,
                    &o,
                    || {
                        mark();
                        !gone.is_closed()
                    },
                    |entry| {
                        mark();
                        let stream = if entry.stream == "stderr" { 2 } else { 1 };
                        if (stream == 1 && !stdout) || (stream == 2 && !stderr) {
                            return true;
                        }
                        let mut line = Vec::new();
                        if timestamps {
                            line.extend_from_slice(entry.time.as_bytes());
                            line.push(b' ');
                        }
                        if details {
                            line.extend_from_slice(entry.details().as_bytes());
                        }
                        line.extend_from_slice(entry.log.as_bytes());
                        let chunk = if tty {
                            bytes::Bytes::from(line)
                        } else {
                            crate::attach::frame(stream, &line)
                        };
                        tx.blocking_send(chunk).is_ok()
                    },
                );
                if let Some(t) = read.borrow_mut().take() {
                    let _ = t.send(r.map_err(ApiError::from));
                }
                Ok(())
            })
            .await;
    });
    // An error before anything was read (the container went) is the answer.
    if let Ok(Err(e)) = read_rx.await {
        return Err(e);
    }
    Ok(http::base(StatusCode::OK)
        .header(
            hyper::header::CONTENT_TYPE,
            if tty {
                "application/vnd.docker.raw-stream"
            } else {
                "application/vnd.docker.multiplexed-stream"
            },
        )
        .body(body)
        .unwrap_or_else(|_| Response::new(http::empty())))
}

/// `POST /containers/{id}/resize?h&w`: the container's terminal size.
pub async fn resize(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let size = |k: &str| -> Result<u16, ApiError> {
        r.q(k)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid {k}: {:?}", r.q(k))))
    };
    let (h, w) = (size("h")?, size("w")?);
    state
        .blocking(move |e| {
            let mut a = e.attach(&id, berth_engine::AttachStreams::default())?;
            a.resize(h, w)
                .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))
        })
        .await?;
    Ok(http::json(StatusCode::OK, &json!({})))
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let args: Vec<String> = r
        .q("ps_args")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let (titles, processes) = state.blocking(move |e| Ok(e.top(&id, &args)?)).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"Titles": titles, "Processes": processes}),
    ))
}

/// `GET /containers/{id}/changes`.
pub async fn changes(state: &Arc<State>, id: String) -> Result<Response<Body>, ApiError> {
    let changes = state.blocking(move |e| Ok(e.diff(&id)?)).await?;
    let rows: Vec<Value> = changes
        .iter()
        .map(|c| json!({"Path": c.path, "Kind": c.kind.api_kind()}))
        .collect();
    Ok(http::json(
        StatusCode::OK,
        &if rows.is_empty() {
            Value::Null
        } else {
            Value::Array(rows)
        },
    ))
}
