mod common;

// `berth search` against a stub of a registry's v1 search API on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;

struct Stub {
    child: Child,
    port: u16,
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stub() -> Stub {
    let script = repo_root().join("crates/berth/tests/data/search_stub.py");
    common::enter_own_netns();
    let mut child = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("stub port: {line:?}"));
    Stub { child, port }
}

#[test]
fn search_lists_filters_and_formats_as_docker() {
    let env = TestEnv::new();
    let s = stub();
    let term = format!("127.0.0.1:{}/busybox", s.port);
    let out = env.ok(&["search", &term]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    );
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[1].starts_with("busybox ") && lines[1].trim_end().ends_with("[OK]"),
        "{out}"
    );
    // Descriptions are cut at 45 columns with an ellipsis, unless --no-trunc.
    assert!(
        out.contains("A much longer description that goes well bey…"),
        "{out}"
    );
    let full = env.ok(&["search", "--no-trunc", &term]);
    assert!(
        full.contains("beyond forty-five characters for truncation"),
        "{full}"
    );
    // Filters and templates.
    let official = env.ok(&[
        "search",
        "--filter",
        "is-official=true",
        "--format",
        "{{.Name}}",
        &term,
    ]);
    assert_eq!(official, "busybox\n");
    let starred = env.ok(&[
        "search",
        "--filter",
        "stars=10",
        "--format",
        "{{.Name}}|{{.StarCount}}|{{.IsOfficial}}",
        &term,
    ]);
    assert_eq!(starred, "busybox|3200|[OK]\nsomeone/busybox-extra|12|\n");
    let json = env.ok(&[
        "search",
        "--format",
        "json",
        "--filter",
        "is-official=true",
        &term,
    ]);
    assert_eq!(
        json,
        "{\"Description\":\"Busybox base image.\",\"IsOfficial\":\"true\",\"Name\":\"busybox\",\"StarCount\":\"3200\"}\n"
    );
    // Docker's checks and words.
    let (_, err) = env.fails(&["search", "--limit", "200", &term], 1);
    assert_eq!(err, "Error: Limit 200 is outside the range of [1, 100]\n");
    let (_, err) = env.fails(&["search", "--filter", "bogus=1", &term], 1);
    assert_eq!(err, "Error: Invalid filter 'bogus'\n");
    // A registry that is not there: one line, exit 1.
    let (_, err) = env.fails(&["search", "127.0.0.1:9/x"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
}
