//! Human renderings of sizes, durations, container states and IDs, matching
//! what the docker CLI prints (go-units' `HumanSize`/`HumanDuration`, moby's
//! `State.String()`, the CLI's `Ellipsis` and Go's `strconv.Quote`).
//!
//! Everything here is pure: the caller passes "now", so output is testable.

pub use berth_types::human::{ago, status_line};

/// go-units' decimal abbreviations.
const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// A size the way `docker images` and `docker ps -s` print it:
/// `units.HumanSizeWithPrecision(size, 3)`, decimal units.
///
/// Like Go's `%.3g`, a value that rounds up to 1000 of a unit prints in
/// exponent form: 999_950 bytes is `"1e+03kB"`, exactly as docker shows it.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes as f64, 3)
}

/// go-units' `HumanSizeWithPrecision`: `%.*g` of the size in the largest
/// decimal unit that keeps it below 1000, followed by the unit.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let mut size = size;
    let mut unit = 0;
    while size >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let abbr = DECIMAL_UNITS.get(unit).copied().unwrap_or("B");
    format!("{}{abbr}", format_float_g(size, Some(precision)))
}

/// go-units' `BytesSize`: `%.4g` of the size in the largest binary unit
/// that keeps it below 1024 (`412KiB`, `23.47GiB`).
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = size;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{}{}", format_float_g(size, Some(4)), UNITS[unit])
}

/// Docker's `stringid.TruncateID`: drop an algorithm prefix ("sha256:") and
/// keep the first 12 characters.
pub fn truncate_id(id: &str) -> &str {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    match id.char_indices().nth(12) {
        Some((end, _)) => id.get(..end).unwrap_or(id),
        None => id,
    }
}

/// The docker CLI's `formatter.Ellipsis`: fit `s` in `max_width` display
/// columns, replacing the tail with "…". East Asian wide characters count as
/// two columns, combining marks as none; with a width of 1 the first
/// character is returned whatever its width.
pub fn ellipsis(s: &str, max_width: usize) -> String {
    if max_width == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if max_width == 1 {
        return chars.first().map(|c| c.to_string()).unwrap_or_default();
    }
    let mut cumulative = Vec::with_capacity(chars.len());
    let mut total = 0;
    for &c in &chars {
        total += char_width(c);
        cumulative.push(total);
    }
    if total <= max_width {
        return s.to_string();
    }
    let budget = max_width - 1;
    for (i, pair) in cumulative.windows(2).enumerate() {
        if pair[0] <= budget && pair[1] > budget {
            let mut out: String = chars.iter().take(i + 1).collect();
            out.push('…');
            return out;
        }
    }
    // Only reached when the first character alone is wider than the budget;
    // docker returns the string unchanged then.
    s.to_string()
}

/// The `docker ps` COMMAND column: the command, cut to 20 columns unless
/// `--no-trunc`, quoted like Go's `strconv.Quote`:
/// `"sh -c 'echo hello w…"`.
pub fn command_column(command: &str, truncate: bool) -> String {
    if truncate {
        go_quote(&ellipsis(command, 20))
    } else {
        go_quote(command)
    }
}

/// Go's `strconv.Quote`: double quotes, `\"` and `\\` escaped, control and
/// other non-printable characters as `\n`, `\t`, `\x1b`, `\u00a0`...;
/// printable Unicode (including "…") is kept as is.
pub fn go_quote(s: &str) -> String {
    quote_with(s, '"')
}

/// Go's `strconv.QuoteRune` for an integer code point.
pub(crate) fn go_quote_rune(code: i64) -> String {
    let c = u32::try_from(code)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or(char::REPLACEMENT_CHARACTER);
    quote_with(&c.to_string(), '\'')
}

fn quote_with(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
            continue;
        }
        if is_go_printable(c) {
            out.push(c);
            continue;
        }
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// An approximation of Go's `strconv.IsPrint`: letters, marks, numbers,
/// punctuation, symbols and the ASCII space; not controls, other spaces,
/// format characters or private-use code points.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    !matches!(u,
        0xAD
        | 0x600..=0x605
        | 0x61C
        | 0x6DD
        | 0x70F
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x206F
        | 0xD800..=0xDFFF
        | 0xE000..=0xF8FF
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0xFFFE..=0xFFFF
        | 0xF0000..=0x10FFFF)
}

/// Display width of a character, in the spirit of go-runewidth.
fn char_width(c: char) -> usize {
    let u = c as u32;
    if c.is_control() || matches!(u, 0x300..=0x36F | 0x200B..=0x200F) {
        return 0;
    }
    let wide = matches!(u,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x2FFFD
        | 0x30000..=0x3FFFD);
    if wide {
        2
    } else {
        1
    }
}

/// Go's `%g` (`precision` = `Some(p)`, as in `%.3g`) and `%v` for a float64
/// (`precision` = `None`: shortest representation, exponent form from 1e+06
/// or below 1e-04), e.g. `1e+03`, `1.5`, `1.234567e+06`.
pub(crate) fn format_float_g(f: f64, precision: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let a = f.abs();
    let sci = match precision {
        None => format!("{a:e}"),
        // No f64 has more than 767 significant digits (the rest are zeros,
        // trimmed below), and Rust's precision stops at 65535.
        Some(p) => format!("{:.*e}", (p.max(1) - 1).min(800), a),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    // Go's decimal form: nd significant digits, decimal point after dp of them
    // (zero is nd = 0, dp = 0).
    let (nd, dp) = if digits.iter().all(|&d| d == b'0') {
        digits.clear();
        (0_i64, 0_i64)
    } else {
        (digits.len() as i64, exponent + 1)
    };
    let shortest = precision.is_none();
    let mut prec = match precision {
        None => nd,
        Some(p) => p.max(1) as i64,
    };
    let mut eprec = prec;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    let body = if exp < -4 || exp >= eprec {
        if prec > nd {
            prec = nd;
        }
        fmt_e(&digits, dp, prec - 1)
    } else {
        if prec > dp {
            prec = nd;
        }
        fmt_f(&digits, dp, (prec - dp).max(0))
    };
    format!("{sign}{body}")
}

fn digit_at(digits: &[u8], i: i64) -> char {
    usize::try_from(i)
        .ok()
        .and_then(|i| digits.get(i))
        .map_or('0', |&d| char::from(d))
}

/// Go's `fmtE`: d.ddde±XX with `prec` fraction digits.
fn fmt_e(digits: &[u8], dp: i64, prec: i64) -> String {
    let mut out = String::new();
    out.push(digit_at(digits, 0));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(digit_at(digits, i));
        }
    }
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.abs()));
    out
}

/// Go's `fmtF`: the integer part, then `prec` fraction digits.
fn fmt_f(digits: &[u8], dp: i64, prec: i64) -> String {
    let mut out = String::new();
    if dp > 0 {
        for i in 0..dp {
            out.push(digit_at(digits, i));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(digit_at(digits, dp + i - 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use berth_types::human::human_duration;
    use chrono::{DateTime, TimeZone, Utc};
    use std::time::Duration;

    const SEC: u64 = 1;
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    const WEEK: u64 = 7 * DAY;
    const MONTH: u64 = 30 * DAY;
    const YEAR: u64 = 365 * DAY;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn sizes_match_docker() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1kB"),
            (1024, "1.02kB"),
            (1125, "1.12kB"),
            (1234567, "1.23MB"),
            (4_400_000, "4.4MB"),
            (5_000_000, "5MB"),
            (7_800_000, "7.8MB"),
            (12_345_678, "12.3MB"),
            (123_456_789, "123MB"),
            (999_950, "1e+03kB"),
            (1_000_000_000, "1GB"),
            (1_500_000_000_000, "1.5TB"),
            (u64::MAX, "18.4EB"),
        ];
        for &(bytes, want) in cases {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
        assert_eq!(human_size_with_precision(2_746_000.0, 4), "2.746MB");
        assert_eq!(human_size_with_precision(796_000.0, 4), "796kB");
    }

    #[test]
    fn float_g_matches_go() {
        let shortest: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
        ];
        for &(f, want) in shortest {
            assert_eq!(format_float_g(f, None), want, "{f}");
        }
        assert_eq!(format_float_g(100.0, Some(3)), "100");
        assert_eq!(format_float_g(4.0, Some(3)), "4");
        assert_eq!(format_float_g(0.0, Some(3)), "0");
        assert_eq!(format_float_g(1234.5, Some(3)), "1.23e+03");
        assert_eq!(format_float_g(0.000012345, Some(3)), "1.23e-05");
    }

    #[test]
    fn durations_match_go_units() {
        let cases: &[(Duration, &str)] = &[
            (Duration::from_millis(450), "Less than a second"),
            (Duration::ZERO, "Less than a second"),
            (secs(SEC), "1 second"),
            (Duration::from_millis(1999), "1 second"),
            (secs(2), "2 seconds"),
            (secs(45), "45 seconds"),
            (secs(59), "59 seconds"),
            (secs(60), "About a minute"),
            (secs(119), "About a minute"),
            (secs(2 * MIN), "2 minutes"),
            (secs(35 * MIN + 40), "35 minutes"),
            (secs(59 * MIN + 59), "59 minutes"),
            (secs(HOUR), "About an hour"),
            (secs(HOUR + 29 * MIN), "About an hour"),
            (secs(HOUR + 30 * MIN), "2 hours"),
            (secs(HOUR + 31 * MIN), "2 hours"),
            (secs(3 * HOUR + 29 * MIN), "3 hours"),
            (secs(3 * HOUR + 31 * MIN), "4 hours"),
            (secs(24 * HOUR), "24 hours"),
            (secs(DAY + 12 * HOUR), "36 hours"),
            (secs(47 * HOUR + 29 * MIN), "47 hours"),
            (secs(47 * HOUR + 30 * MIN), "2 days"),
            (secs(2 * DAY), "2 days"),
            (secs(7 * DAY), "7 days"),
            (secs(13 * DAY + 5 * HOUR), "13 days"),
            (secs(2 * WEEK), "2 weeks"),
            (secs(2 * WEEK + 4 * DAY), "2 weeks"),
            (secs(4 * WEEK + 3 * DAY), "4 weeks"),
            (secs(MONTH), "4 weeks"),
            (secs(MONTH + 2 * WEEK), "6 weeks"),
            (secs(2 * MONTH), "2 months"),
            (secs(3 * MONTH + WEEK), "3 months"),
            (secs(13 * MONTH), "13 months"),
            (secs(24 * MONTH), "24 months"),
            (secs(24 * MONTH + 2 * WEEK), "2 years"),
            (secs(3 * YEAR + 2 * MONTH), "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn ago_reads_like_docker() {
        assert_eq!(ago(at(0), at(5)), "5 seconds ago");
        assert_eq!(ago(at(0), at(90)), "About a minute ago");
        assert_eq!(ago(at(0), at(3 * 3600)), "3 hours ago");
        assert_eq!(ago(at(10), at(0)), "Less than a second ago");
    }

    #[test]
    fn status_column() {
        let now = at(1000);
        let s = |state, code, start: Option<i64>, end: Option<i64>, paused, restarting| {
            status_line(
                state,
                code,
                start.map(at),
                end.map(at),
                now,
                paused,
                restarting,
            )
        };
        assert_eq!(s("created", 0, None, None, false, false), "Created");
        assert_eq!(
            s("running", 0, Some(995), None, false, false),
            "Up 5 seconds"
        );
        assert_eq!(
            s("running", 0, Some(1000), None, false, false),
            "Up Less than a second"
        );
        assert_eq!(
            s("paused", 0, Some(880), None, true, false),
            "Up 2 minutes (Paused)"
        );
        assert_eq!(
            s("running", 0, Some(880), None, true, false),
            "Up 2 minutes (Paused)"
        );
        assert_eq!(
            s("restarting", 1, Some(900), Some(997), false, true),
            "Restarting (1) 3 seconds ago"
        );
        assert_eq!(
            s("exited", 0, Some(10), Some(880), false, false),
            "Exited (0) 2 minutes ago"
        );
        assert_eq!(
            s("exited", 137, Some(10), Some(999), false, false),
            "Exited (137) 1 second ago"
        );
        assert_eq!(s("exited", 0, None, Some(999), false, false), "Created");
        assert_eq!(s("exited", 0, Some(10), None, false, false), "");
        assert_eq!(
            s("removing", 0, Some(10), Some(20), false, false),
            "Removal In Progress"
        );
        assert_eq!(s("dead", 0, Some(10), Some(20), false, false), "Dead");
        let zero = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            status_line("created", 0, Some(zero), Some(zero), now, false, false),
            "Created"
        );
    }

    #[test]
    fn ids_truncate_to_twelve() {
        let id = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4";
        assert_eq!(truncate_id(id), "3f2a9c1b7d4e");
        assert_eq!(truncate_id(&format!("sha256:{id}")), "3f2a9c1b7d4e");
        assert_eq!(truncate_id("abc"), "abc");
        assert_eq!(truncate_id(""), "");
    }

    #[test]
    fn ellipsis_like_the_cli() {
        assert_eq!(
            ellipsis("sh -c 'echo hello world'", 20),
            "sh -c 'echo hello w…"
        );
        assert_eq!(ellipsis("exactly twenty chars", 20), "exactly twenty chars");
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(
            ellipsis("ééééééééééééééééééééé", 20),
            "ééééééééééééééééééé…"
        );
        assert_eq!(ellipsis("你好世界你好", 7), "你好世…");
        assert_eq!(ellipsis("abc", 1), "a");
        assert_eq!(ellipsis("abc", 0), "");
        assert_eq!(ellipsis("你", 1), "你");
    }

    #[test]
    fn command_column_is_quoted() {
        assert_eq!(
            command_column("sh -c 'echo hello world'", true),
            "\"sh -c 'echo hello w…\""
        );
        assert_eq!(
            command_column("sh -c 'echo hello world'", false),
            "\"sh -c 'echo hello world'\""
        );
        assert_eq!(
            command_column("/docker-entrypoint.sh nginx -g 'daemon off;'", true),
            "\"/docker-entrypoint.…\""
        );
        assert_eq!(command_column("", true), "\"\"");
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("tab\there\nnl"), r#""tab\there\nnl""#);
        assert_eq!(go_quote("\u{1b}[0m\u{7f}"), r#""\x1b[0m\x7f""#);
        assert_eq!(go_quote("nbsp\u{a0}zw\u{200b}"), r#""nbsp\u00a0zw\u200b""#);
        assert_eq!(go_quote("héllo…日本"), "\"héllo…日本\"");
        assert_eq!(go_quote_rune(97), "'a'");
        assert_eq!(go_quote_rune(39), r"'\''");
    }
}
