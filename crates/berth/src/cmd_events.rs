//! `events [--since] [--until] [--filter k=v] [--format]`: the event log,
//! one line per event as the docker CLI prints them, live until `--until`
//! (or the reader goes away).

use std::io::Write;

use anyhow::Result;
use berth_engine::events::EventOptions;
use berth_engine::Engine;
use chrono::{DateTime, Local, Utc};

use crate::cli::EventsArgs;
use crate::commands::parse_filters;
use crate::format::template::Format;

pub fn events(e: &Engine, a: &EventsArgs) -> Result<i32> {
    let Some(filters) = parse_filters(&a.filter, None)? else {
        return Ok(125);
    };
    let now = Utc::now();
    let mut times = [None, None];
    for (slot, (value, what)) in times
        .iter_mut()
        .zip([(&a.since, "since"), (&a.until, "until")])
    {
        if let Some(v) = value {
            // The docker CLI checks these itself: its words, exit 1.
            match berth_engine::timeparse::parse_time_arg(v, what, now) {
                Ok(t) => *slot = Some(t),
                Err(_) => {
                    errln!("failed to parse value as time or duration: \"{v}\"");
                    return Ok(1);
                }
            }
        }
    }
    let format = match a.format.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => {
            Some(Format::parse(f).map_err(|m| anyhow::anyhow!("template parsing error: {m}"))?)
        }
        None => None,
    };
    // Go's struct always has its legacy fields; only its JSON leaves them
    // out when empty.
    let fill = a.format.as_deref().is_some_and(|f| !f.contains("json"));
    let o = EventOptions {
        since: times[0],
        until: times[1],
        filters,
    };
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    e.events(&o, |ev| {
        let line = match &format {
            None => berth_runtime::events::human_line(ev, &local_time(ev.time_nano)),
            Some(f) => {
                let mut v = serde_json::to_value(ev).unwrap_or_default();
                if let (true, Some(m)) = (fill, v.as_object_mut()) {
                    for k in ["status", "id", "from"] {
                        m.entry(k)
                            .or_insert_with(|| serde_json::Value::String(String::new()));
                    }
                }
                match f.render(&v) {
                    Ok(s) => s,
                    Err(m) => {
                        failed = Some(anyhow::anyhow!("{m}"));
                        return false;
                    }
                }
            }
        };
        // A reader that went away (`| head`) ends the stream quietly.
        writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

/// Docker's `2006-01-02T15:04:05.000000000Z07:00`, in the local zone.
fn local_time(nanos: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_nanos(nanos).with_timezone(&Local);
    let s = t.format("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string();
    match s.strip_suffix("+00:00") {
        Some(base) => format!("{base}Z"),
        None => s,
    }
}
