//! Docker's human renderings of durations and container states (go-units'
//! `HumanDuration`, moby's `State.String()`): the API's `Status` of a
//! container and the CLI's columns say the same.
//!
//! Pure: the caller passes "now".

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

/// go-units' `HumanDuration`: "Less than a second", "1 second", "N seconds",
/// "About a minute", "N minutes", "About an hour", "N hours", "N days",
/// "N weeks", "N months", "N years".
///
/// Seconds and minutes truncate; hours round to the nearest hour (1h29m is
/// "About an hour", 1h31m is "2 hours"); days, weeks and months derive from
/// the rounded hours; years truncate.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".to_string();
    }
    if seconds == 1 {
        return "1 second".to_string();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go: d.Hours() is float64(d/Hour) + float64(d%Hour)/3.6e12, then
    // int(d.Hours() + 0.5).
    const NANOS_PER_HOUR: u128 = 3_600_000_000_000;
    let nanos = d.as_nanos();
    let whole = (nanos / NANOS_PER_HOUR) as f64;
    let frac = (nanos % NANOS_PER_HOUR) as f64 / NANOS_PER_HOUR as f64;
    let hours_f = whole + frac;
    let hours = (hours_f + 0.5) as u64;
    if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (hours_f as u64) / 24 / 365)
    }
}

/// "5 seconds ago", "About a minute ago": the docker CLI's CREATED column.
/// A time in the future (clock skew) reads "Less than a second ago".
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(since(t, now)))
}

/// Docker's STATUS column (moby's `State.String()`).
///
/// `state` is the API's `State.Status` ("created", "running", "paused",
/// "restarting", "removing", "exited", "dead"); `paused` and `restarting` are
/// the API's flags, honoured whichever status accompanies them. A missing
/// or zero (year 1) `started_at` means the container never started.
pub fn status_line(
    state: &str,
    exit_code: i64,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    paused: bool,
    restarting: bool,
) -> String {
    let started_at = started_at.filter(|t| !is_zero_time(t));
    let finished_at = finished_at.filter(|t| !is_zero_time(t));
    let running = paused || restarting || matches!(state, "running" | "paused" | "restarting");
    if running {
        let up = |start: Option<DateTime<Utc>>| human_duration(since(start.unwrap_or(now), now));
        if paused || state == "paused" {
            return format!("Up {} (Paused)", up(started_at));
        }
        if restarting || state == "restarting" {
            let since_exit = human_duration(since(finished_at.unwrap_or(now), now));
            return format!("Restarting ({exit_code}) {since_exit} ago");
        }
        return format!("Up {}", up(started_at));
    }
    match state {
        "removing" => return "Removal In Progress".to_string(),
        "dead" => return "Dead".to_string(),
        _ => {}
    }
    if started_at.is_none() {
        return "Created".to_string();
    }
    match finished_at {
        None => String::new(),
        Some(finished) => format!("Exited ({exit_code}) {}", ago(finished, now)),
    }
}

pub(crate) fn since(t: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    now.signed_duration_since(t)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// Go's `time.Time.IsZero` for times that went through JSON: 0001-01-01.
fn is_zero_time(t: &DateTime<Utc>) -> bool {
    t.year() <= 1
}
