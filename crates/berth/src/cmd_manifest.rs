//! `manifest inspect [-v] [--insecure] NAME`: the remote manifest or index
//! as the docker CLI prints it. An image manifest: its bytes as served,
//! re-indented with tabs (key order and string escapes kept, as Go's
//! `json.Indent`). An index: the manifest list Docker rebuilds from the
//! image manifests it names (3-space indentation, Docker's key order).
//! `--verbose`: Docker's `ImageManifest` objects (Ref, Descriptor, Raw,
//! SchemaV2Manifest or OCIManifest), one, or an array for an index.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use base64::Engine as _;
use berth_engine::RemoteManifest;
use berth_registry::manifest::{Manifest, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_MANIFEST};
use berth_registry::settings::Insecure;
use berth_registry::{Fetched, RegistryError};
use berth_types::Reference;
use serde_json::{Map, Value};

use crate::cli::ManifestInspectArgs;

pub fn inspect(a: &ManifestInspectArgs) -> Result<i32> {
    let mut r = crate::commands::client_reference(&a.name)?;
    if r.tag().is_none() && r.digest().is_none() {
        // Docker's normalizeReference: a name alone means `latest`.
        r = Reference::parse(&format!("{}:latest", a.name)).map_err(|e| anyhow!("{e}"))?;
    }
    let mut opts = crate::cmd_pull::pull_options(None)?;
    if a.insecure {
        let mut s = (*opts.settings).clone();
        s.insecure.push(Insecure::Host(r.domain().to_string()));
        opts.settings = Arc::new(s);
    }
    let remote = match berth_engine::remote_manifest(&r, &opts) {
        Ok(m) => m,
        // The docker CLI's words for a manifest or repository the
        // registry does not have.
        Err(berth_engine::EngineError::Registry(RegistryError::NotFound(_))) => {
            return Err(no_such_manifest(&r))
        }
        Err(berth_engine::EngineError::Registry(RegistryError::Unauthorized(m)))
            if m.contains("name unknown") =>
        {
            return Err(no_such_manifest(&r))
        }
        Err(e) => return Err(e.into()),
    };
    let text = render(&r, &remote, a.verbose)?;
    outln!("{text}")?;
    Ok(0)
}

fn no_such_manifest(r: &Reference) -> anyhow::Error {
    anyhow!(crate::usage::CliError::Bare {
        message: format!("no such manifest: {r}"),
        code: 1,
    })
}

/// The text `docker manifest inspect` prints (without the final newline).
fn render(r: &Reference, remote: &RemoteManifest, verbose: bool) -> Result<String> {
    match &remote.top.manifest {
        Manifest::Image(_) => {
            if !verbose {
                return Ok(go_indent(&remote.top.bytes, "\t"));
            }
            let config: Value = remote
                .config
                .as_deref()
                .map(serde_json::from_slice)
                .transpose()
                .map_err(|e| anyhow!("invalid image config: {e}"))?
                .unwrap_or(Value::Null);
            let platform = oci_platform(&config);
            Ok(go_indent(
                verbose_entry(&r.to_string(), &remote.top, &platform).as_bytes(),
                "\t",
            ))
        }
        Manifest::Index(_) => {
            let index: Value = serde_json::from_slice(&remote.top.bytes)
                .map_err(|e| anyhow!("invalid index: {e}"))?;
            let entries = index["manifests"].as_array().cloned().unwrap_or_default();
            // Each image manifest with the index entry that named it.
            let pairs: Vec<(&Fetched, Value)> = remote
                .children
                .iter()
                .map(|c| {
                    let entry = entries
                        .iter()
                        .find(|e| e["digest"].as_str() == Some(c.digest.as_str()))
                        .cloned()
                        .unwrap_or(Value::Null);
                    (c, entry)
                })
                .collect();
            if verbose {
                let items: Vec<String> = pairs
                    .iter()
                    .map(|(c, entry)| {
                        // Go's reference.WithDigest: the name, its tag, this digest.
                        let tag = r.tag().map(|t| format!(":{t}")).unwrap_or_default();
                        let reference = format!("{}/{}{tag}@{}", r.domain(), r.path(), c.digest);
                        verbose_entry(&reference, c, &oci_platform(&entry["platform"]))
                    })
                    .collect();
                return Ok(go_indent(format!("[{}]", items.join(",")).as_bytes(), "\t"));
            }
            let manifests: Vec<Value> = pairs
                .iter()
                .map(|(c, entry)| {
                    let mut d = Map::new();
                    d.insert("mediaType".into(), Value::from(payload_type(c)));
                    d.insert("size".into(), Value::from(c.bytes.len()));
                    d.insert("digest".into(), Value::from(c.digest.as_str()));
                    d.insert("platform".into(), list_platform(&entry["platform"]));
                    Value::Object(d)
                })
                .collect();
            let mut list = Map::new();
            list.insert("schemaVersion".into(), Value::from(2));
            list.insert("mediaType".into(), Value::from(MT_DOCKER_LIST));
            list.insert("manifests".into(), Value::Array(manifests));
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(&Value::Object(list), &mut ser)?;
            Ok(String::from_utf8(out)?)
        }
    }
}

/// The media type Docker gives an image manifest (its payload's type).
fn payload_type(f: &Fetched) -> &'static str {
    let declared = match &f.manifest {
        Manifest::Image(m) if !m.media_type.is_empty() => m.media_type.as_str(),
        _ => f.media_type.split(';').next().unwrap_or("").trim(),
    };
    if declared == MT_DOCKER_MANIFEST {
        MT_DOCKER_MANIFEST
    } else {
        MT_OCI_MANIFEST
    }
}

/// Docker's `types.ImageManifest` of `f`, compact JSON.
fn verbose_entry(reference: &str, f: &Fetched, platform: &Value) -> String {
    let kind = if payload_type(f) == MT_DOCKER_MANIFEST {
        "SchemaV2Manifest"
    } else {
        "OCIManifest"
    };
    let mut d = Map::new();
    d.insert("mediaType".into(), Value::from(payload_type(f)));
    d.insert("digest".into(), Value::from(f.digest.as_str()));
    d.insert("size".into(), Value::from(f.bytes.len()));
    d.insert("platform".into(), platform.clone());
    format!(
        "{{\"Ref\":{},\"Descriptor\":{},\"Raw\":{},\"{kind}\":{}}}",
        go_string(reference),
        go_string_escapes(&Value::Object(d).to_string()),
        go_string(&base64::engine::general_purpose::STANDARD.encode(&f.bytes)),
        go_compact(&f.bytes)
    )
}

/// OCI's `Platform` (architecture, os, os.version, os.features, variant)
/// from an image config or an index entry's platform.
fn oci_platform(v: &Value) -> Value {
    platform(v, false)
}

/// The manifest list's `PlatformSpec`: OCI's and `features`.
fn list_platform(v: &Value) -> Value {
    platform(v, true)
}

fn platform(v: &Value, features: bool) -> Value {
    let mut p = Map::new();
    for key in ["architecture", "os"] {
        p.insert(key.into(), Value::from(v[key].as_str().unwrap_or("")));
    }
    if let Some(s) = v["os.version"].as_str().filter(|s| !s.is_empty()) {
        p.insert("os.version".into(), Value::from(s));
    }
    if let Some(a) = v["os.features"].as_array().filter(|a| !a.is_empty()) {
        p.insert("os.features".into(), Value::Array(a.clone()));
    }
    if let Some(s) = v["variant"].as_str().filter(|s| !s.is_empty()) {
        p.insert("variant".into(), Value::from(s));
    }
    if features {
        if let Some(a) = v["features"].as_array().filter(|a| !a.is_empty()) {
            p.insert("features".into(), Value::Array(a.clone()));
        }
    }
    Value::Object(p)
}

/// `s` as a JSON string the way Go's encoder writes it.
fn go_string(s: &str) -> String {
    go_string_escapes(&Value::from(s).to_string())
}

/// Go's encoder escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings.
fn go_string_escapes(json: &str) -> String {
    go_compact(json.as_bytes())
}

/// Go's `json.Compact` with HTML escaping (what `json.Marshal` does to a
/// raw message): whitespace outside strings dropped, strings kept as
/// written but for Go's escapes.
fn go_compact(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                _ => out.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            ' ' | '\t' | '\n' | '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

/// Go's `json.Indent(dst, src, "", indent)`: each element on its own line,
/// `": "` after keys, empty objects and arrays kept as `{}` and `[]`,
/// strings and numbers byte for byte.
fn go_indent(raw: &[u8], indent: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i;
                while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\n' | '\r') {
                    j += 1;
                }
                if chars.get(j) == Some(&close) {
                    out.push(close);
                    i = j + 1;
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_as_go_does() {
        let raw = br#"{"a":1,"b":[],"c":{},"d":[{"e":"x<y, \"z\""}],"f":-1.50e3}"#;
        assert_eq!(
            go_indent(raw, "\t"),
            "{\n\t\"a\": 1,\n\t\"b\": [],\n\t\"c\": {},\n\t\"d\": [\n\t\t{\n\t\t\t\"e\": \"x<y, \\\"z\\\"\"\n\t\t}\n\t],\n\t\"f\": -1.50e3\n}"
        );
        assert_eq!(
            go_compact(b"{ \"a\" : \"<&>\" ,\n \"b\": [ 1, 2 ] }"),
            r#"{"a":"\u003c\u0026\u003e","b":[1,2]}"#
        );
    }

    #[test]
    fn platforms_in_dockers_key_order() {
        let v: Value = serde_json::from_str(
            r#"{"variant":"v8","features":["f"],"os":"linux","architecture":"arm64","os.version":"1"}"#,
        )
        .unwrap();
        assert_eq!(
            list_platform(&v).to_string(),
            r#"{"architecture":"arm64","os":"linux","os.version":"1","variant":"v8","features":["f"]}"#
        );
        assert_eq!(
            oci_platform(&Value::Null).to_string(),
            r#"{"architecture":"","os":""}"#
        );
    }
}
