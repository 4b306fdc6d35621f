//! `--log-driver` and `--log-opt`, checked as Docker's daemon checks them,
//! and `--runtime`.
//!
//! berth has one log writer (the monitor's json-file log); the drivers
//! differ in what they accept and how they rotate: `json-file` (the
//! default) and `local` write it, `none` writes nothing and `logs` refuses.

use std::collections::BTreeMap;

use berth_types::LogConfig;

use crate::{EngineError, Result};

/// What `HostConfig.Runtime` shows when `--runtime` was not given.
pub(crate) const DEFAULT_RUNTIME: &str = "runc";

/// `local`'s defaults when its options do not say (Docker's).
const LOCAL_MAX_SIZE: u64 = 20 * 1024 * 1024;
const LOCAL_MAX_FILES: u32 = 5;

/// `--runtime NAME`: berth runs every container with its own runtime, so
/// it takes the names Docker's default runtime goes by (`runc`,
/// `io.containerd.runc.v2`) and `berth`; "" is the default. Docker's words
/// for anything else.
pub(crate) fn check_runtime(name: Option<&str>) -> Result<String> {
    match name.unwrap_or("") {
        "" => Ok(String::new()),
        n @ ("runc" | "io.containerd.runc.v2" | "berth") => Ok(n.to_string()),
        other => Err(EngineError::InvalidArgument(format!(
            "Unknown runtime specified {other}"
        ))),
    }
}

/// `--log-driver` and its `--log-opt`s: the `LogConfig` to record, or
/// Docker's error for the first thing wrong (unknown driver, unknown
/// option, then the values in the order the driver reads them).
pub(crate) fn check(driver: Option<&str>, opts: &BTreeMap<String, String>) -> Result<LogConfig> {
    let kind = match driver.unwrap_or("") {
        "" => "json-file",
        d => d,
    };
    let invalid = |m: String| EngineError::InvalidArgument(m);
    let init = |m: String| invalid(format!("failed to initialize logging driver: {m}"));
    match kind {
        "none" => {
            if !opts.is_empty() {
                return Err(invalid("invalid logging opts for driver none".into()));
            }
        }
        "json-file" => {
            const KEYS: &[&str] = &[
                "max-file",
                "max-size",
                "compress",
                "labels",
                "labels-regex",
                "env",
                "env-regex",
                "tag",
            ];
            if let Some(k) = opts.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(invalid(format!(
                    "unknown log opt '{k}' for json-file log driver"
                )));
            }
            let size = match opts.get("max-size") {
                Some(v) => {
                    let n = from_human_size(v).map_err(init)?;
                    if n <= 0 {
                        return Err(init("max-size must be a positive number".into()));
                    }
                    Some(n)
                }
                None => None,
            };
            let files = match opts.get("max-file") {
                Some(v) => {
                    let n = go_atoi(v).map_err(init)?;
                    if n < 1 {
                        return Err(init("max-file cannot be less than 1".into()));
                    }
                    n
                }
                None => 1,
            };
            if let Some(v) = opts.get("compress") {
                if go_parse_bool(v).map_err(init)? && (files == 1 || size.is_none()) {
                    return Err(init(
                        "compress cannot be true when max-file is less than 2 or max-size is not set"
                            .into(),
                    ));
                }
            }
            for key in ["labels-regex", "env-regex"] {
                if let Some(v) = opts.get(key) {
                    regex::Regex::new(v).map_err(|e| init(format!("error parsing regexp: {e}")))?;
                }
            }
            if let Some(t) = opts.get("tag") {
                render_tag(t, None).map_err(init)?;
            }
        }
        "local" => {
            const KEYS: &[&str] = &["max-file", "max-size", "compress"];
            if let Some(k) = opts.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(invalid(format!(
                    "unknown log opt '{k}' for log driver local"
                )));
            }
            if let Some(v) = opts.get("max-size") {
                from_human_size(v)
                    .map_err(|e| init(format!("invalid value for max-size: {v}: {e}")))?;
            }
            let files = match opts.get("max-file") {
                Some(v) => {
                    go_atoi(v).map_err(|e| init(format!("invalid value for max-file: {v}: {e}")))?
                }
                None => i64::from(LOCAL_MAX_FILES),
            };
            let compress = match opts.get("compress") {
                Some(v) => go_parse_bool(v)
                    .map_err(|e| init(format!("error reading compress log option: {e}")))?,
                None => true,
            };
            if files < 0 {
                return Err(init("max file count cannot be less than 0".into()));
            }
            if compress && files <= 1 {
                return Err(init(
                    "compression cannot be enabled when max file count is 1".into(),
                ));
            }
        }
        other => {
            return Err(invalid(format!(
                "error looking up logging plugin {other}: plugin \"{other}\" not found"
            )))
        }
    }
    Ok(LogConfig {
        kind: kind.to_string(),
        config: opts.clone(),
    })
}

/// The container as a log `tag` template sees it (Docker's `logger.Info`).
pub(crate) struct TagInfo<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// `sha256:…`
    pub image_id: &'a str,
    /// The image as the container was created from it (`bb`).
    pub image_name: &'a str,
}

/// The fields a `tag` template may name. berth's templates are text and
/// `{{.Field}}` actions, which is what tags use; Go's pipelines and
/// functions are refused.
const TAG_FIELDS: &[&str] = &[
    "ID",
    "FullID",
    "Name",
    "ImageID",
    "ImageFullID",
    "ImageName",
    "DaemonName",
];

/// A `tag` template rendered for `info`, or (without it) only checked; the
/// errors in Go's template words where Go has them.
fn render_tag(template: &str, info: Option<&TagInfo<'_>>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("template: log-tag:1: unclosed action".into());
        };
        let inner = &after[..close];
        let lead = inner.len() - inner.trim_start().len();
        let action = inner.trim();
        let column = offset + open + 2 + lead;
        let Some(field) = action
            .strip_prefix('.')
            .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        else {
            return Err(format!(
                "berth's log tags take {{{{.Field}}}} actions only: {{{{{action}}}}}"
            ));
        };
        if !TAG_FIELDS.contains(&field) {
            return Err(format!(
                "template: log-tag:1:{column}: executing \"log-tag\" at <{action}>: can't evaluate field {field} in type *logger.Info"
            ));
        }
        if let Some(i) = info {
            let short = |s: &str| {
                let s = s.strip_prefix("sha256:").unwrap_or(s);
                s.get(..12).unwrap_or(s).to_string()
            };
            out.push_str(&match field {
                "ID" => short(i.id),
                "FullID" => i.id.to_string(),
                "Name" => i.name.trim_start_matches('/').to_string(),
                "ImageID" => short(i.image_id),
                "ImageFullID" => i.image_id.to_string(),
                "ImageName" => i.image_name.to_string(),
                _ => "berth".to_string(),
            });
        }
        let used = open + 2 + close + 2;
        offset += used;
        rest = &rest[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What each json-file entry carries as `attrs` (Docker's log options
/// `labels`, `labels-regex`, `env`, `env-regex` and `tag`): the named
/// labels and environment variables the container has, and the rendered
/// tag. Empty when no option asks for anything.
pub(crate) fn attributes(
    c: &LogConfig,
    labels: &BTreeMap<String, String>,
    env: &[String],
    info: &TagInfo<'_>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if c.kind != "json-file" {
        return Ok(out);
    }
    let init = |m: String| {
        EngineError::InvalidArgument(format!("failed to initialize logging driver: {m}"))
    };
    let listed = |key: &str| -> Vec<String> {
        c.config
            .get(key)
            .map(|v| {
                v.split(',')
                    .map(|k| k.trim().to_string())
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let regex = |key: &str| -> Result<Option<regex::Regex>> {
        c.config
            .get(key)
            .map(|v| regex::Regex::new(v).map_err(|e| init(format!("error parsing regexp: {e}"))))
            .transpose()
    };
    let (wanted, pattern) = (listed("labels"), regex("labels-regex")?);
    for (k, v) in labels {
        if wanted.contains(k) || pattern.as_ref().is_some_and(|p| p.is_match(k)) {
            out.insert(k.clone(), v.clone());
        }
    }
    let (wanted, pattern) = (listed("env"), regex("env-regex")?);
    for e in env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        if wanted.iter().any(|w| w == k) || pattern.as_ref().is_some_and(|p| p.is_match(k)) {
            out.insert(k.to_string(), v.to_string());
        }
    }
    if let Some(t) = c.config.get("tag") {
        out.insert("tag".into(), render_tag(t, Some(info)).map_err(init)?);
    }
    Ok(out)
}

/// An entry's attributes as `logs --details` prints them before its line:
/// `key=value` pairs sorted by key, each side escaped as Go's
/// `url.QueryEscape` does, joined by commas.
pub(crate) fn details(attrs: &BTreeMap<String, String>) -> String {
    fn escape(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(b))
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    attrs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Bytes a log file may hold before the next write rotates it (0: never).
pub(crate) fn max_size(c: &LogConfig) -> u64 {
    let given = c
        .config
        .get("max-size")
        .and_then(|v| from_human_size(v).ok())
        .map(|n| u64::try_from(n).unwrap_or(0));
    match c.kind.as_str() {
        "local" => given.unwrap_or(LOCAL_MAX_SIZE),
        _ => given.unwrap_or(0),
    }
}

/// How many files a log keeps, the live one included.
pub(crate) fn max_files(c: &LogConfig) -> u32 {
    let given = c
        .config
        .get("max-file")
        .and_then(|v| go_atoi(v).ok())
        .map(|n| u32::try_from(n.max(1)).unwrap_or(u32::MAX));
    match c.kind.as_str() {
        "local" => given.unwrap_or(LOCAL_MAX_FILES),
        _ => given.unwrap_or(1),
    }
}

/// go-units' `FromHumanSize`, which Docker's json-file driver uses for
/// `max-size`: decimal units (`10k` is 10,000 bytes; `kib` too), a
/// fraction allowed, the result truncated.
pub(crate) fn from_human_size(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let digits = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (num, rest) = s.split_at(digits);
    // The number: digits, then groups of "." and digits (`1.2.3` passes
    // here and fails as a float, as in Go).
    let groups_ok = !num.is_empty()
        && num
            .split('.')
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
    if !groups_ok {
        return Err(bad());
    }
    let mut rest = rest.strip_prefix(' ').unwrap_or(rest).chars().peekable();
    let mut mul = 1f64;
    if let Some(c) = rest.peek().copied() {
        let m = match c.to_ascii_lowercase() {
            'k' => 1e3,
            'm' => 1e6,
            'g' => 1e9,
            't' => 1e12,
            'p' => 1e15,
            _ => 0.0,
        };
        if m > 0.0 {
            mul = m;
            rest.next();
        }
    }
    if rest.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        rest.next();
    }
    if rest.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        rest.next();
    }
    if rest.next().is_some() {
        return Err(bad());
    }
    let v: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing \"{num}\": invalid syntax"))?;
    // As Go's conversion of a float to int64 (saturating here).
    Ok((v * mul) as i64)
}

/// Go's `strconv.Atoi` on a 64-bit machine, with its errors.
fn go_atoi(s: &str) -> std::result::Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.trim_start_matches('+')
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

/// Go's `strconv.ParseBool`, with its error.
fn go_parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tags_and_attributes_as_dockers_json_file() {
        let info = TagInfo {
            id: "d458a5ccc83f0123456789abcdef0123456789abcdef0123456789abcdef0123",
            name: "/web",
            image_id: "sha256:56776d2f33a4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            image_name: "bb",
        };
        assert_eq!(
            render_tag(
                "{{.Name}}/{{.ID}} {{ .ImageID }}-{{.ImageName}}",
                Some(&info)
            ),
            Ok("web/d458a5ccc83f 56776d2f33a4-bb".to_string())
        );
        assert_eq!(render_tag("plain", None), Ok("plain".to_string()));
        assert_eq!(
            render_tag("x{{.Foo}}", None),
            Err("template: log-tag:1:3: executing \"log-tag\" at <.Foo>: can't evaluate field Foo in type *logger.Info".to_string())
        );
        assert!(render_tag("{{.Name | upper}}", None).is_err());
        assert!(render_tag("{{.Name", None).is_err());
        let c = LogConfig {
            kind: "json-file".into(),
            config: BTreeMap::from([
                ("labels".to_string(), "app, nope".to_string()),
                ("env-regex".to_string(), "^S".to_string()),
                ("tag".to_string(), "{{.Name}}".to_string()),
            ]),
        };
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("other".to_string(), "x".to_string()),
        ]);
        let env = [
            "SP=a b".to_string(),
            "FOO=bar".to_string(),
            "S2".to_string(),
        ];
        let a = attributes(&c, &labels, &env, &info).unwrap();
        assert_eq!(details(&a), "S2=,SP=a+b,app=web,tag=web", "{a:?}");
        assert_eq!(
            details(&BTreeMap::from([("k/1".to_string(), "ü&=,".to_string())])),
            "k%2F1=%C3%BC%26%3D%2C"
        );
        let plain = LogConfig {
            kind: "json-file".into(),
            config: BTreeMap::from([("max-size".to_string(), "1m".to_string())]),
        };
        assert!(attributes(&plain, &labels, &env, &info).unwrap().is_empty());
        assert!(check(
            Some("json-file"),
            &BTreeMap::from([("tag".to_string(), "{{.Bad}}".to_string())])
        )
        .is_err());
        assert!(check(
            Some("json-file"),
            &BTreeMap::from([("labels-regex".to_string(), "(".to_string())])
        )
        .is_err());
    }

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(driver: &str, kv: &[(&str, &str)]) -> String {
        match check(Some(driver), &opts(kv)) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn sizes_count_as_docker_json_file() {
        assert_eq!(from_human_size("10k"), Ok(10_000));
        assert_eq!(from_human_size("10kib"), Ok(10_000));
        assert_eq!(from_human_size("1.5k"), Ok(1_500));
        assert_eq!(from_human_size("1 KiB"), Ok(1_000));
        assert_eq!(from_human_size("2M"), Ok(2_000_000));
        assert_eq!(from_human_size("512"), Ok(512));
        assert_eq!(from_human_size("512b"), Ok(512));
        assert_eq!(from_human_size("abc"), Err("invalid size: 'abc'".into()));
        assert_eq!(from_human_size("-1"), Err("invalid size: '-1'".into()));
        assert_eq!(from_human_size("1e3"), Err("invalid size: '1e3'".into()));
        assert_eq!(from_human_size(""), Err("invalid size: ''".into()));
        assert_eq!(
            from_human_size("1.2.3"),
            Err("strconv.ParseFloat: parsing \"1.2.3\": invalid syntax".into())
        );
    }

    #[test]
    fn docker_errors() {
        let init = "failed to initialize logging driver: ";
        assert_eq!(
            err("json-file", &[("bogus", "1")]),
            "unknown log opt 'bogus' for json-file log driver"
        );
        assert_eq!(
            err("json-file", &[("max-size", "0")]),
            format!("{init}max-size must be a positive number")
        );
        assert_eq!(
            err("json-file", &[("max-file", "x")]),
            format!("{init}strconv.Atoi: parsing \"x\": invalid syntax")
        );
        assert_eq!(
            err("json-file", &[("max-file", "99999999999999999999")]),
            format!("{init}strconv.Atoi: parsing \"99999999999999999999\": value out of range")
        );
        assert_eq!(
            err("json-file", &[("max-file", "0")]),
            format!("{init}max-file cannot be less than 1")
        );
        assert_eq!(
            err("json-file", &[("compress", "true"), ("max-file", "2")]),
            format!(
                "{init}compress cannot be true when max-file is less than 2 or max-size is not set"
            )
        );
        assert_eq!(
            err("local", &[("tag", "x")]),
            "unknown log opt 'tag' for log driver local"
        );
        assert_eq!(
            err("local", &[("max-file", "1")]),
            format!("{init}compression cannot be enabled when max file count is 1")
        );
        assert_eq!(
            err("local", &[("compress", "x")]),
            format!("{init}error reading compress log option: strconv.ParseBool: parsing \"x\": invalid syntax")
        );
        assert_eq!(
            err("none", &[("tag", "x")]),
            "invalid logging opts for driver none"
        );
        assert_eq!(
            err("syslog", &[]),
            "error looking up logging plugin syslog: plugin \"syslog\" not found"
        );
        assert!(check(
            Some("local"),
            &opts(&[("max-file", "2"), ("compress", "false")])
        )
        .is_ok());
        assert!(check(None, &opts(&[("tag", "x"), ("max-size", "1k")])).is_ok());
    }

    #[test]
    fn rotation_limits() {
        let c = check(Some("local"), &BTreeMap::new()).unwrap();
        assert_eq!((max_size(&c), max_files(&c)), (20 * 1024 * 1024, 5));
        let c = check(None, &opts(&[("max-size", "10k"), ("max-file", "3")])).unwrap();
        assert_eq!((max_size(&c), max_files(&c)), (10_000, 3));
        let c = check(None, &BTreeMap::new()).unwrap();
        assert_eq!((max_size(&c), max_files(&c)), (0, 1));
        assert_eq!(c.kind, "json-file");
    }

    #[test]
    fn runtimes() {
        assert_eq!(check_runtime(None).unwrap(), "");
        assert_eq!(check_runtime(Some("runc")).unwrap(), "runc");
        assert_eq!(check_runtime(Some("berth")).unwrap(), "berth");
        assert_eq!(
            check_runtime(Some("RUNC")).unwrap_err().to_string(),
            "Unknown runtime specified RUNC"
        );
    }
}
