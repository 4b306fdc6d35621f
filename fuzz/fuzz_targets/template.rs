//! The `--format` engine: any template (the input up to its first NUL) over
//! any JSON value (the rest, when it parses; a container-like object
//! otherwise) parses or is refused, and executes or fails, without panicking.
//! The same text as a `--format` string (table, json, escapes) too.
//!
//! The engine lives in the `berth` binary crate (crates/berth/src/format/);
//! it is compiled in here by path, so the target builds without the rest of
//! the CLI and the engine (SQLite, clap, the runtime) behind it.
#![no_main]

#[path = "../../crates/berth/src/format/mod.rs"]
mod format;

use format::template::{Format, Template};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let value: Value = serde_json::from_slice(rest).unwrap_or_else(|_| {
        json!({
            "Id": "3f2a9c", "Names": ["/web"], "Image": "bb:latest",
            "State": {"Status": "running", "Pid": 42, "Running": true},
            "Labels": {"a": "1", "b": ""}, "Mounts": [{"Source": "/x", "RW": true}],
            "Size": 1.5, "Ports": null, "Command": "sh -c 'echo hi'"
        })
    });
    if let Ok(t) = Template::parse(text) {
        let _ = t.execute(&value);
        let _ = t.header(&[("ID", "CONTAINER ID"), ("Names", "NAMES")]);
    }
    if let Ok(f) = Format::parse(text) {
        let _ = f.render(&value);
        let rows = [value.clone(), json!({})];
        let _ = f.render_table(&rows, &[("ID", "CONTAINER ID"), ("Image", "IMAGE")]);
    }
});
