//! The Engine API contract (issue 13): what dockerd 20.10 answered to a list
//! of requests in a little world (`tests/data/api-contract.json`, recorded by
//! `scripts/api-contract-capture.py`; see `tests/data/api-contract.md`),
//! replayed against `berth serve` in the same world built with the berth CLI.
//! Every entry is checked — status, `Content-Type`, `Api-Version`, the JSON
//! shape (key paths and types), the values the world fixes, error messages
//! word for word — and the test fails once, with every difference listed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use common::serve::ApiServer;
use common::*;
use serde_json::{json, Value};

/// Seconds since the epoch, with nanoseconds (`since`/`until`).
fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn jtype(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The path a key path sits in: `a.b` → `a`, `a[]` → `a`, `a[].b` → `a[]`,
/// `[]` and `Id` → `` (the body).
fn parent(p: &str) -> &str {
    if let Some(q) = p.strip_suffix("[]") {
        return q;
    }
    p.rfind('.').map_or("", |i| &p[..i])
}

/// Every path a shape lists something beneath: those are opened.
fn opened(shape: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for p in shape.keys().filter(|p| !p.is_empty()) {
        let mut q = parent(p);
        loop {
            set.insert(q.to_string());
            if q.is_empty() {
                break;
            }
            q = parent(q);
        }
    }
    set
}

/// A value's shape: its type at `path`, and beneath it when the path is
/// opened (an array by its first element).
fn flatten(v: &Value, path: &str, open: &BTreeSet<String>, out: &mut BTreeMap<String, String>) {
    out.insert(path.to_string(), jtype(v).to_string());
    if !open.contains(path) {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(x, &p, open, out);
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                flatten(first, &format!("{path}[]"), open, out);
            }
        }
        _ => {}
    }
}

/// The value at a key path (first elements for `[]`).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[]") {
            cur = cur.as_array()?.first()?;
            rest = r.strip_prefix('.').unwrap_or(r);
            continue;
        }
        let end = rest
            .find(['.', '['])
            .filter(|&i| rest[i..].starts_with('.') || rest[i..].starts_with("[]"))
            .unwrap_or(rest.len());
        cur = cur.get(&rest[..end])?;
        rest = &rest[end..];
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    Some(cur)
}

/// The world's names for the file's placeholders.
struct Placeholders(Vec<(String, String)>);

impl Placeholders {
    fn fill(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (k, v) in &self.0 {
            s = s.replace(k, v);
        }
        s
    }

    fn fill_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.fill(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.fill_value(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.fill_value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// One entry's expectations, dockerd's with its `berth` override applied.
struct Expect<'a> {
    entry: &'a Value,
    fields: serde_json::Map<String, Value>,
}

impl<'a> Expect<'a> {
    fn new(entry: &'a Value) -> Expect<'a> {
        let mut fields = entry.as_object().cloned().unwrap_or_default();
        if let Some(Value::Object(over)) = entry.get("berth") {
            for (k, v) in over {
                if k == "reason" {
                    continue;
                }
                if k == "optional" {
                    continue;
                }
                if v.is_null() && k != "content_type" && k != "api_version_header" {
                    fields.remove(k);
                } else {
                    fields.insert(k.clone(), v.clone());
                }
            }
        }
        Expect { entry, fields }
    }

    fn get(&self, k: &str) -> Option<&Value> {
        self.fields.get(k)
    }

    /// Keys either side may leave out (their type is checked when both have them):
    /// the file's `optional` for the shape, the entry's and its override's.
    fn optional(&self, doc: &Value, shape: &str) -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        let mut add = |v: Option<&Value>| {
            if let Some(Value::Object(m)) = v {
                set.extend(m.keys().cloned());
            }
        };
        add(doc.get("optional").and_then(|o| o.get(shape)));
        add(self.entry.get("optional"));
        add(self.entry.get("berth").and_then(|b| b.get("optional")));
        set
    }
}

fn shape_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, t)| (k.clone(), t.as_str().unwrap_or("?").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Differences between an expected shape and a value.
fn compare_shape(
    expected: &BTreeMap<String, String>,
    optional: &BTreeSet<String>,
    got: &Value,
    out: &mut Vec<String>,
) {
    compare_shape_except(expected, optional, &BTreeSet::new(), got, out);
}

/// Whether `p` is one of `prefixes` or lies beneath one.
fn beneath(p: &str, prefixes: &BTreeSet<String>) -> bool {
    prefixes.iter().any(|q| {
        p == q
            || p.strip_prefix(q.as_str())
                .is_some_and(|r| r.starts_with('.') || r.starts_with("[]"))
    })
}

/// [`compare_shape`], neither side's keys at or beneath `skipped` compared.
fn compare_shape_except(
    expected: &BTreeMap<String, String>,
    optional: &BTreeSet<String>,
    skipped: &BTreeSet<String>,
    got: &Value,
    out: &mut Vec<String>,
) {
    let expected: BTreeMap<String, String> = expected
        .iter()
        .filter(|(p, _)| !beneath(p, skipped))
        .map(|(p, t)| (p.clone(), t.clone()))
        .collect();
    let expected = &expected;
    let mut have = BTreeMap::new();
    flatten(got, "", &opened(expected), &mut have);
    have.retain(|p, _| !beneath(p, skipped));
    let mut missing = Vec::new();
    for (p, t) in expected {
        match have.get(p) {
            None if optional.contains(p) => {}
            None => missing.push(format!("{p} ({t})")),
            Some(h) if t.split('|').any(|alt| alt == h) => {}
            Some(h) => out.push(format!("{}: expected {t}, got {h}", show(p))),
        }
    }
    if !missing.is_empty() {
        out.push(format!("missing keys: {}", missing.join(", ")));
    }
    let extra: Vec<String> = have
        .iter()
        .filter(|(p, _)| !expected.contains_key(*p) && !optional.contains(*p))
        .map(|(p, t)| format!("{p} ({t})"))
        .collect();
    if !extra.is_empty() {
        out.push(format!("keys dockerd has not: {}", extra.join(", ")));
    }
}

fn show(p: &str) -> &str {
    if p.is_empty() {
        "the body"
    } else {
        p
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

fn check_values(
    shaped: &BTreeSet<String>,
    expected: Option<&Value>,
    lengths: Option<&Value>,
    got: &Value,
    ph: &Placeholders,
    out: &mut Vec<String>,
) {
    if let Some(Value::Object(values)) = expected {
        for (p, want) in values {
            let want = ph.fill_value(want);
            match at(got, p) {
                Some(v) if *v == want => {}
                // A type the shape already reports.
                Some(v) if jtype(v) != jtype(&want) && shaped.contains(p) => {}
                Some(v) => out.push(format!(
                    "{}: expected {}, got {}",
                    show(p),
                    short(&want),
                    short(v)
                )),
                None => out.push(format!(
                    "{}: expected {}, got nothing",
                    show(p),
                    short(&want)
                )),
            }
        }
    }
    if let Some(Value::Object(lengths)) = lengths {
        for (p, want) in lengths {
            let n = at(got, p).and_then(Value::as_array).map(Vec::len);
            if n.map(|n| json!(n)) != Some(want.clone()) {
                out.push(format!(
                    "length of {}: expected {want}, got {}",
                    show(p),
                    n.map_or("no array".to_string(), |n| n.to_string())
                ));
            }
        }
    }
}

/// Checks one entry against berth's answer; its differences.
fn check(doc: &Value, entry: &Value, server: &ApiServer, ph: &Placeholders) -> Vec<String> {
    let e = Expect::new(entry);
    let s = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
    let version = s("version");
    let path = ph.fill(s("path"));
    let full = if version.is_empty() {
        path
    } else {
        format!("/{version}{path}")
    };
    let body = entry.get("body").map(|b| b.to_string().into_bytes());
    let a = match server.request(s("method"), &full, body.as_deref()) {
        Ok(a) => a,
        Err(err) => return vec![format!("no answer: {err}")],
    };
    let mut out = Vec::new();
    if let Some(want) = e.get("status") {
        if *want != json!(a.status) {
            out.push(format!("status: expected {want}, got {}", a.status));
        }
    }
    for (key, header) in [
        ("content_type", "content-type"),
        ("api_version_header", "api-version"),
    ] {
        if let Some(want) = e.get(key) {
            let got = a.header(header).map_or(Value::Null, |h| json!(h));
            if *want != got {
                out.push(format!("{header}: expected {want}, got {got}"));
            }
        }
    }
    let body_text = text(&a.body);
    if let Some(want) = e.get("text").and_then(Value::as_str) {
        let want = ph.fill(want);
        if body_text != want {
            out.push(format!("body: expected {want:?}, got {body_text:?}"));
        }
    }
    if let Some(want) = e.get("message").and_then(Value::as_str) {
        let want = ph.fill(want);
        let got = serde_json::from_slice::<Value>(&a.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from));
        match got {
            Some(m) if m == want => {}
            Some(m) => out.push(format!("message: expected {want:?}, got {m:?}")),
            None => out.push(format!(
                "message: expected {want:?}, got the body {body_text:?}"
            )),
        }
    }
    if let Some(name) = e.get("shape").and_then(Value::as_str) {
        let want = shape_map(&doc["shapes"][name]);
        match serde_json::from_slice::<Value>(&a.body) {
            Ok(v) => {
                compare_shape_except(
                    &want,
                    &e.optional(doc, name),
                    &cgroup_v1_only(doc, name),
                    &v,
                    &mut out,
                );
                let shaped = want.keys().cloned().collect();
                check_values(&shaped, e.get("values"), e.get("lengths"), &v, ph, &mut out);
            }
            Err(err) => out.push(format!(
                "body: expected JSON ({err}): {:?}",
                body_text.chars().take(300).collect::<String>()
            )),
        }
    }
    if let Some(Value::Array(lines)) = e.get("lines") {
        check_lines(lines, &body_text, &e.optional(doc, "events"), &mut out);
    }
    out
}

/// On a cgroup v2 host, the key paths of a shape that are cgroup v1's
/// (the file's `cgroup_v1_only`: dockerd recorded them on v1, and its
/// answers differ there on v2); none on a v1 host.
fn cgroup_v1_only(doc: &Value, shape: &str) -> BTreeSet<String> {
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    match doc.get("cgroup_v1_only").and_then(|o| o.get(shape)) {
        Some(Value::Object(m)) if v2 => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// A stream of JSON objects (events): the same kinds in the same order, each
/// of dockerd's shape.
fn check_lines(lines: &[Value], body: &str, optional: &BTreeSet<String>, out: &mut Vec<String>) {
    let got: Vec<Value> = match body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
    {
        Ok(g) => g,
        Err(err) => {
            out.push(format!("body: expected JSON lines ({err})"));
            return;
        }
    };
    let kind = |v: &Value| {
        let f = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        format!("{}/{}", f("Type"), f("Action"))
    };
    let want_kinds: Vec<String> = lines.iter().map(|l| kind(&l["values"])).collect();
    let got_kinds: Vec<String> = got.iter().map(kind).collect();
    if want_kinds != got_kinds {
        out.push(format!(
            "events: expected [{}], got [{}]",
            want_kinds.join(", "),
            got_kinds.join(", ")
        ));
    }
    // Each kind's shape, compared with the first of that kind berth sent.
    let mut seen = BTreeSet::new();
    for (l, k) in lines.iter().zip(&want_kinds) {
        if !seen.insert(k.clone()) {
            continue;
        }
        let Some(g) = got.iter().find(|g| kind(g) == *k) else {
            continue;
        };
        let mut diffs = Vec::new();
        compare_shape(&shape_map(&l["shape"]), optional, g, &mut diffs);
        out.extend(diffs.into_iter().map(|d| format!("{k} event: {d}")));
    }
}

#[test]
fn berth_serve_answers_as_dockerd_does() {
    let file = repo_root().join("crates/berth/tests/data/api-contract.json");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));

    // The world of the file's `world`, with the berth CLI.
    let env = TestEnv::new();
    let since = now();
    let server = ApiServer::start(&env);
    let tar = busybox_tar();
    env.ok(&["import", &tar.to_string_lossy(), BB]);
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "c1",
        "--label",
        "tier=web",
        BB,
        "sh",
        "-c",
        "echo ready; exec sleep 1000",
    ]);
    env.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "c2",
        BB,
        "echo",
        "hi",
    ]);
    env.ok(&["start", "c2"]);
    env.ok(&["wait", "c2"]);
    // v1 as the docker CLI 20.10 that recorded the file made it: with the
    // empty label and option maps it sends (dockerd keeps what it is sent;
    // the berth CLI, like the docker CLI 28, sends none, and reads null).
    let made = server
        .request(
            "POST",
            "/v1.41/volumes/create",
            Some(br#"{"Name":"v1","Driver":"local","DriverOpts":{},"Labels":{}}"#),
        )
        .unwrap_or_else(|e| panic!("volume create v1: {e}"));
    assert_eq!(made.status, 201, "volume create v1");
    env.ok(&["network", "create", "--internal", "n1"]);
    env.ok(&["tag", BB, "bb:v1"]);
    wait_for_log(&env, "c1", "ready");
    let until = now();

    let bb_id = env.ok(&["image", "inspect", "-f", "{{.Id}}", BB]);
    let bb_id = bb_id.trim();
    let ph = Placeholders(vec![
        ("{since}".into(), since),
        ("{until}".into(), until),
        ("{c1.Id}".into(), inspect_f(&env, "{{.Id}}", "c1")),
        ("{c2.Id}".into(), inspect_f(&env, "{{.Id}}", "c2")),
        (
            "{n1.Id}".into(),
            env.ok(&["network", "inspect", "-f", "{{.Id}}", "n1"])
                .trim()
                .to_string(),
        ),
        (
            "{bb.Id}#hex".into(),
            bb_id.trim_start_matches("sha256:").to_string(),
        ),
        ("{bb.Id}".into(), bb_id.to_string()),
    ]);

    let entries = doc["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {}", file.display()));
    let mut report = Vec::new();
    let mut failed = Vec::new();
    for entry in entries {
        let id = entry["id"].as_str().unwrap_or("?");
        let diffs = check(&doc, entry, &server, &ph);
        if !diffs.is_empty() {
            failed.push(id.to_string());
            let req = format!(
                "{} {}{}",
                entry["method"].as_str().unwrap_or("?"),
                entry["version"]
                    .as_str()
                    .filter(|v| !v.is_empty())
                    .map_or(String::new(), |v| format!("/{v}")),
                entry["path"].as_str().unwrap_or("?")
            );
            report.push(format!("{id} ({req}):"));
            report.extend(diffs.into_iter().map(|d| format!("    {d}")));
        }
    }
    // The world is as it was: the failed conflicts changed nothing.
    assert_eq!(status(&env, "c1"), "running");
    assert_eq!(status(&env, "c2"), "exited");
    drop(server);
    assert!(
        report.is_empty(),
        "{} of {} entries differ from dockerd's answers ({}):\n{}\n\nfailing: {}",
        failed.len(),
        entries.len(),
        file.display(),
        report.join("\n"),
        failed.join(" ")
    );
}

/// The comparator itself, on made-up values: what it opens, what it reports.
#[test]
fn shapes_are_compared_key_by_key() {
    let shape: BTreeMap<String, String> = [
        ("", "object"),
        ("Id", "string"),
        ("State", "object"),
        ("State.Status", "string"),
        ("Mounts", "array"),
        ("Mounts[]", "object"),
        ("Mounts[].Type", "string"),
        ("Labels", "object|null"),
        ("Gone", "number"),
        ("Either", "boolean"),
    ]
    .iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    assert_eq!(
        opened(&shape),
        ["", "Mounts", "Mounts[]", "State"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let got = json!({
        "Id": 7,
        "State": {"Status": "running", "Pid": 1},
        "Mounts": [{"Type": "bind", "Source": "/x"}],
        "Labels": null,
        "Config": {"Image": "bb"},
    });
    let optional = ["Either".to_string()].into_iter().collect();
    let mut out = Vec::new();
    compare_shape(&shape, &optional, &got, &mut out);
    assert_eq!(
        out,
        [
            "Id: expected string, got number",
            "missing keys: Gone (number)",
            "keys dockerd has not: Config (object), Mounts[].Source (string), State.Pid (number)",
        ]
    );
    // Paths skipped (cgroup v2) are compared on neither side.
    let skipped = ["State".to_string(), "Mounts[]".to_string()]
        .into_iter()
        .collect();
    let mut out = Vec::new();
    compare_shape_except(&shape, &optional, &skipped, &got, &mut out);
    assert_eq!(
        out,
        [
            "Id: expected string, got number",
            "missing keys: Gone (number)",
            "keys dockerd has not: Config (object)",
        ]
    );
    assert_eq!(at(&got, "Mounts[].Type"), Some(&json!("bind")));
    assert_eq!(at(&got, "State.Status"), Some(&json!("running")));
    assert_eq!(at(&json!([{"a": {"b": 1}}]), "[].a.b"), Some(&json!(1)));
    assert_eq!(at(&got, "Nope.x"), None);
    assert_eq!(parent("[].Id"), "[]");
    assert_eq!(parent("[]"), "");
    assert_eq!(parent("a[].b"), "a[]");
}
