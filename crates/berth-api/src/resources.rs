//! `GET /containers/{id}/stats`, `POST /containers/{id}/update`,
//! `GET /system/df`.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::StatsSample;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::http::{self, ApiError, Body, Req};
use crate::routes::State;

/// How far apart a stream's samples are (dockerd's collector: 1 s).
const INTERVAL: Duration = Duration::from_secs(1);

fn cpu_stats(s: &StatsSample) -> Value {
    json!({
        "cpu_usage": {
            "total_usage": s.cpu_ns,
            "percpu_usage": [],
            "usage_in_kernelmode": 0,
            "usage_in_usermode": 0,
        },
        "system_cpu_usage": s.system_ns,
        "online_cpus": s.online_cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// The cgroup v1 `memory.stat` keys dockerd's stats carry.
const V1_MEMORY_KEYS: &[&str] = &[
    "active_anon",
    "active_file",
    "cache",
    "dirty",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "inactive_anon",
    "inactive_file",
    "mapped_file",
    "pgfault",
    "pgmajfault",
    "pgpgin",
    "pgpgout",
    "rss",
    "rss_huge",
    "total_active_anon",
    "total_active_file",
    "total_cache",
    "total_dirty",
    "total_inactive_anon",
    "total_inactive_file",
    "total_mapped_file",
    "total_pgfault",
    "total_pgmajfault",
    "total_pgpgin",
    "total_pgpgout",
    "total_rss",
    "total_rss_huge",
    "total_unevictable",
    "total_writeback",
    "unevictable",
    "writeback",
];

/// moby's `StatsJSON` of a sample and the one before it.
fn stats_json(
    c: &Sampled,
    now: &StatsSample,
    read: chrono::DateTime<chrono::Utc>,
    pre: Option<(&StatsSample, chrono::DateTime<chrono::Utc>)>,
) -> Value {
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let zero = StatsSample::default();
    let (pre_s, pre_t) = match pre {
        Some((s, t)) => (s, time(t)),
        None => (&zero, "0001-01-01T00:00:00Z".to_string()),
    };
    let blk = |op: &str, v: u64| json!({"major": 0, "minor": 0, "op": op, "value": v});
    // The CLI takes the inactive file cache off `usage` itself (v1
    // `total_inactive_file`, v2 `inactive_file`): it is given back here.
    let inactive = c
        .memory_stat
        .iter()
        .find(|(k, _)| k == "total_inactive_file")
        .or_else(|| c.memory_stat.iter().find(|(k, _)| k == "inactive_file"))
        .map_or(0, |(_, v)| *v);
    // On cgroup v1, the keys dockerd's collector reports (the kernel
    // may show more: swap, shmem, workingset_refault_*); v2's as they are.
    let v1 = c
        .memory_stat
        .iter()
        .any(|(k, _)| k == "total_inactive_file");
    let stats: serde_json::Map<String, Value> = c
        .memory_stat
        .iter()
        .filter(|(k, _)| !v1 || V1_MEMORY_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut memory = json!({
        "usage": now.mem_usage + inactive,
        "stats": stats,
        "limit": now.mem_limit,
    });
    if c.peak > 0 {
        memory["max_usage"] = json!(c.peak);
    }
    let mut v = json!({
        "read": time(read),
        "preread": pre_t,
        "pids_stats": {"current": now.pids},
        "blkio_stats": {
            "io_service_bytes_recursive": [blk("read", now.blk_read), blk("write", now.blk_write)],
            "io_serviced_recursive": [],
            "io_queue_recursive": [],
            "io_service_time_recursive": [],
            "io_wait_time_recursive": [],
            "io_merged_recursive": [],
            "io_time_recursive": [],
            "sectors_recursive": [],
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(now),
        "precpu_stats": cpu_stats(pre_s),
        "memory_stats": memory,
        "name": format!("/{}", c.name),
        "id": c.id,
    });
    // Interfaces only where the container has its own network.
    if c.networked {
        v["networks"] = json!({"eth0": {
            "rx_bytes": now.net_rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": now.net_tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }});
    }
    v
}

/// What a sample says of the container beside its numbers.
struct Sampled {
    id: String,
    name: String,
    running: bool,
    /// It has a network namespace with interfaces of its own.
    networked: bool,
    memory_stat: Vec<(String, u64)>,
    peak: u64,
}

/// One sample of the container.
async fn sample(
    state: &Arc<State>,
    id: String,
) -> Result<(Sampled, StatsSample, chrono::DateTime<chrono::Utc>), ApiError> {
    state
        .blocking(move |e| {
            let v = e.container(&id)?;
            let s = e.stats_sample(&v);
            let (memory_stat, peak) = e.memory_stat(&v);
            let mode = v.host_config.network_mode.as_str();
            let networked = !(mode == "none" || mode == "host" || mode.starts_with("container:"));
            Ok((
                Sampled {
                    id: v.id.to_string(),
                    name: v.name.clone(),
                    running: v.running(),
                    networked,
                    memory_stat,
                    peak,
                },
                s,
                chrono::Utc::now(),
            ))
        })
        .await
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: a sample a second
/// (streamed), or one — with the sample a second before it as `precpu`
/// unless `one-shot`.
pub async fn stats(state: &Arc<State>, r: &Req, id: String) -> Result<Response<Body>, ApiError> {
    let stream = r.q("stream").is_none() || r.flag("stream");
    let one_shot = r.flag("one-shot");
    let (c, first, t0) = sample(state, id).await?;
    if !stream {
        if one_shot || !c.running {
            let v = stats_json(&c, &first, t0, None);
            return Ok(http::json(StatusCode::OK, &v));
        }
        tokio::time::sleep(INTERVAL).await;
        let (c2, now, t1) = sample(state, c.id.clone()).await?;
        let v = stats_json(&c2, &now, t1, Some((&first, t0)));
        return Ok(http::json(StatusCode::OK, &v));
    }
    let (tx, body) = http::stream();
    let state = state.clone();
    tokio::spawn(async move {
        let line = |v: &Value| {
            let mut b = serde_json::to_vec(v).unwrap_or_default();
            b.push(b'\n');
            bytes::Bytes::from(b)
        };
        let mut pre = (first, t0);
        if tx
            .send(line(&stats_json(&c, &first, t0, None)))
            .await
            .is_err()
            || !c.running
        {
            return;
        }
        loop {
            tokio::time::sleep(INTERVAL).await;
            let Ok((c, now, t)) = sample(&state, c.id.clone()).await else {
                return;
            };
            let v = stats_json(&c, &now, t, Some((&pre.0, pre.1)));
            if tx.send(line(&v)).await.is_err() || !c.running {
                return;
            }
            pre = (now, t);
        }
    });
    Ok(http::base(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(http::empty())))
}

/// `POST /containers/{id}/update`: 200 `{"Warnings": []}`.
pub async fn update(
    state: &Arc<State>,
    id: String,
    body: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let (limits, restart) = crate::create::update(&body)?;
    state
        .blocking(move |e| Ok(e.update(&id, &limits, restart.as_ref())?))
        .await?;
    Ok(http::json(StatusCode::OK, &json!({"Warnings": []})))
}

fn unix(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// `GET /system/df`: images, containers, volumes and the build cache with
/// their sizes (the CLI sums what is reclaimable).
pub async fn system_df(state: &Arc<State>) -> Result<Response<Body>, ApiError> {
    let v = state
        .blocking(|e| {
            let du = e.disk_usage()?;
            let now = chrono::Utc::now();
            let images: Vec<Value> = du
                .images
                .iter()
                .map(|i| {
                    let tags: Vec<String> = i.tags.iter().map(|t| t.familiar()).collect();
                    json!({
                        "Id": i.id.to_string(),
                        "ParentId": "",
                        "RepoTags": if tags.is_empty() { json!(["<none>:<none>"]) } else { json!(tags) },
                        "RepoDigests": null,
                        "Created": unix(&i.created),
                        "Size": i.size,
                        "SharedSize": i.shared_size,
                        "VirtualSize": i.size,
                        "Labels": null,
                        "Containers": i.containers,
                    })
                })
                .collect();
            let containers: Vec<Value> = du
                .containers
                .iter()
                .map(|c| {
                    let mut row = crate::containers::summary(e, &c.container, now);
                    row.insert("SizeRw".into(), c.size.into());
                    row.insert("SizeRootFs".into(), c.size.into());
                    Value::Object(row)
                })
                .collect();
            // Each volume as `/volumes` shows it, with its usage.
            let all = e.volumes_filtered(&berth_engine::filters::Filters::default())?;
            let volumes: Vec<Value> = du
                .volumes
                .iter()
                .map(|u| {
                    let full = all
                        .iter()
                        .find(|v| v.name == u.name)
                        .and_then(|v| serde_json::to_value(v).ok())
                        .unwrap_or_else(|| json!({"Name": u.name, "Driver": "local", "Scope": "local"}));
                    let mut v = full;
                    v["UsageData"] = json!({"Size": u.size, "RefCount": u.links});
                    v
                })
                .collect();
            let cache: Vec<Value> = du
                .build_cache
                .iter()
                .map(|r| {
                    json!({
                        "ID": r.id,
                        "Parent": "",
                        "Type": "regular",
                        "Description": "",
                        "InUse": r.in_use,
                        "Shared": r.shared,
                        "Size": r.size,
                        "CreatedAt": r.created.to_rfc3339(),
                        "LastUsedAt": r.last_used.to_rfc3339(),
                        "UsageCount": r.usage,
                    })
                })
                .collect();
            Ok(json!({
                "LayersSize": du.images_size,
                "Images": images,
                "Containers": containers,
                "Volumes": volumes,
                "BuildCache": if cache.is_empty() { Value::Null } else { json!(cache) },
                "BuilderSize": du.build_cache_size(),
            }))
        })
        .await?;
    Ok(http::json(StatusCode::OK, &v))
}
