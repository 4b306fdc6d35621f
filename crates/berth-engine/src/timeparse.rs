//! Docker's `--since`/`--until` values (logs, events, filters): RFC 3339
//! times, partial dates and times (local time when no zone is given, as
//! Docker reads them), Unix timestamps with a fraction, and Go durations
//! (`10ms`, `1h30m`, `1.5s`, `300us`, `-2h`), which count back from now.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Parses `s`; the error is Docker's wording for `what` ("since", "until").
pub fn parse_time_arg(s: &str, what: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    parse(s, now).ok_or_else(|| {
        format!("invalid value for \"{what}\": failed to parse value as time or duration: \"{s}\"")
    })
}

fn parse(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Some(t) = parse_partial(s) {
        return Some(t);
    }
    if let Some(t) = parse_unix(s) {
        return Some(t);
    }
    // Docker turns a duration into a Unix time in whole seconds
    // (`reference.Add(-d).Unix()`): `--until 0s` excludes what was logged
    // within the current second.
    let d = go_duration(s)?;
    let t = now.checked_sub_signed(chrono::Duration::nanoseconds(d))?;
    DateTime::from_timestamp(t.timestamp(), 0)
}

/// `2006-01-02`, `2006-01-02T15:04`, `2006-01-02T15:04:05[.999]`, each
/// optionally with `Z` or `±07:00`.
fn parse_partial(s: &str) -> Option<DateTime<Utc>> {
    let (body, zone) = split_zone(s);
    let naive = if let Ok(d) = NaiveDate::parse_from_str(body, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)?
    } else {
        [
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(body, f).ok())?
    };
    match zone {
        Some(z) => {
            let offset = if z == "Z" {
                chrono::FixedOffset::east_opt(0)?
            } else {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let (h, m) = z[1..].split_once(':')?;
                chrono::FixedOffset::east_opt(
                    sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60),
                )?
            };
            offset
                .from_local_datetime(&naive)
                .single()
                .map(|t| t.with_timezone(&Utc))
        }
        None => Local
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc)),
    }
}

fn split_zone(s: &str) -> (&str, Option<&str>) {
    if let Some(b) = s.strip_suffix('Z') {
        return (b, Some("Z"));
    }
    // A zone is `±HH:MM` after the date (not the date's own `-`s).
    if s.len() > 16 {
        let (b, z) = s.split_at(s.len() - 6);
        if (z.starts_with('+') || z.starts_with('-')) && z.as_bytes().get(3) == Some(&b':') {
            return (b, Some(z));
        }
    }
    (s, None)
}

/// `1700000000` or `1700000000.5` (seconds and a fraction of up to nine
/// digits, as Docker reads them).
fn parse_unix(s: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    DateTime::from_timestamp(secs.parse().ok()?, nanos)
}

pub use berth_types::duration::go_duration;

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn dockers_forms() {
        let n = now();
        assert_eq!(
            parse("2026-11-30T10:00:00Z", n),
            Some(at("2026-11-30T10:00:00Z"))
        );
        assert_eq!(
            parse("2026-11-30T10:00:00+02:00", n),
            Some(at("2026-11-30T08:00:00Z"))
        );
        assert_eq!(
            parse("2026-11-30T10:00Z", n),
            Some(at("2026-11-30T10:00:00Z"))
        );
        assert_eq!(
            parse("1700000000.5", n),
            DateTime::from_timestamp(1_700_000_000, 500_000_000)
        );
        assert_eq!(
            parse("1700000000", n),
            DateTime::from_timestamp(1_700_000_000, 0)
        );
        // Durations count back from now, to the whole second (Docker's).
        assert_eq!(parse("10ms", n), Some(n - chrono::Duration::seconds(1)));
        assert_eq!(parse("1h30m", n), Some(n - chrono::Duration::minutes(90)));
        assert_eq!(parse("1.5s", n), Some(n - chrono::Duration::seconds(2)));
        assert_eq!(parse("300us", n), Some(n - chrono::Duration::seconds(1)));
        assert_eq!(parse("0s", n), Some(n));
        assert_eq!(parse("-1h", n), Some(n + chrono::Duration::hours(1)));
        // Without a zone: local time (this test's machines run in UTC or not;
        // compare through the same rule).
        let local = Local
            .from_local_datetime(
                &NaiveDate::from_ymd_opt(2026, 11, 30)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap(),
            )
            .single()
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse("2026-11-30", n), Some(local));
    }

    #[test]
    fn what_docker_refuses() {
        for bad in ["", "bogus", "10", "1x", "h", "1.2.3", "2026-13-01", "--1s"] {
            if bad == "10" {
                // A bare number is a Unix time, not a duration.
                assert!(parse(bad, now()).is_some());
                continue;
            }
            assert_eq!(parse(bad, now()), None, "{bad}");
        }
        assert_eq!(
            parse_time_arg("bogus", "since", now()).unwrap_err(),
            "invalid value for \"since\": failed to parse value as time or duration: \"bogus\""
        );
    }
}
