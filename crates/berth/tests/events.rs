//! `berth events`: what every berth process records (the CLI and the
//! containers' monitors), in Docker's words and order, from history and
//! live.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// `events --since T0 --until now --format '{{.Type}} {{.Action}} …'`.
fn history(env: &TestEnv, since: &str, extra: &[&str]) -> Vec<String> {
    let until = format!("{:.9}", now_secs());
    let mut args = vec![
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ];
    args.extend_from_slice(extra);
    env.ok(&args).lines().map(str::to_string).collect()
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[test]
fn a_containers_life_in_dockers_events_and_order() {
    let env = TestEnv::with_busybox();
    let t0 = format!("{:.9}", now_secs());
    env.ok(&["run", "--network", "none", "--name", "ev1", BB, "true"]);
    env.ok(&["tag", BB, "bb:two"]);
    env.ok(&["rmi", "bb:two"]);
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "ev2",
        BB,
        "sleep",
        "100",
    ]);
    env.ok(&["pause", "ev2"]);
    env.ok(&["unpause", "ev2"]);
    env.ok(&["rename", "ev2", "ev3"]);
    env.ok(&["exec", "ev3", "true"]);
    env.ok(&["stop", "-t", "1", "ev3"]);
    env.ok(&["rm", "ev1", "ev3"]);
    env.ok(&["volume", "create", "vv"]);
    env.ok(&["volume", "rm", "vv"]);
    let got = history(
        &env,
        &t0,
        &["--filter", "type=container", "--filter", "type=image"],
    );
    // dockerd 20.10's sequence for the same commands (its network
    // connect/disconnect of the `none` network aside).
    let want = [
        "container create ev1",
        "container attach ev1",
        "container start ev1",
        "container die ev1",
        "image tag bb:two",
        "image untag",
        "container create ev2",
        "container start ev2",
        "container pause ev2",
        "container unpause ev2",
        "container rename ev3",
        "container exec_create: true  ev3",
        "container exec_start: true  ev3",
        "container exec_die ev3",
        "container kill ev3",
        "container kill ev3",
        "container die ev3",
        "container stop ev3",
        "container destroy ev1",
        "container destroy ev3",
    ];
    let trimmed: Vec<String> = got
        .iter()
        .map(|l| {
            // image untag is named by the image's ID
            if l.starts_with("image untag ") {
                "image untag".to_string()
            } else {
                l.clone()
            }
        })
        .collect();
    assert_eq!(trimmed, want, "events:\n{}", got.join("\n"));

    // Attributes and Docker's JSON shape.
    let json = env.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &format!("{:.9}", now_secs()),
        "--filter",
        "event=die",
        "--filter",
        "container=ev3",
        "--format",
        "{{json .}}",
    ]);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 1, "{json}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["status"], "die");
    assert_eq!(v["from"], "bb");
    assert_eq!(v["Type"], "container");
    assert_eq!(v["Actor"]["Attributes"]["exitCode"], "137");
    assert_eq!(v["Actor"]["Attributes"]["name"], "ev3");
    assert!(is_full_id(v["id"].as_str().unwrap()));
    assert_eq!(v["scope"], "local");
    // The default line: time, type, action, ID, sorted attributes.
    let line = env.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &format!("{:.9}", now_secs()),
        "--filter",
        "type=volume",
    ]);
    let first = line.lines().next().unwrap();
    let (time, rest) = first.split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.len() == 30, "{first}");
    assert_eq!(rest, "volume create vv (driver=local)");
    // Filters of different keys all apply, values of one key are
    // alternatives.
    let f = history(
        &env,
        &t0,
        &[
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--filter",
            "event=destroy",
        ],
    );
    assert_eq!(
        f,
        [
            "container start ev1",
            "container start ev2",
            "container destroy ev1",
            "container destroy ev3"
        ]
    );
}

#[test]
fn live_events_from_several_processes_reach_a_follower() {
    let env = TestEnv::with_busybox();
    // A follower without --until: it prints as events happen.
    let mut follower = env
        .berth(&[
            "events",
            "--filter",
            "type=container",
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The follower is ready once it sees an event made after it started:
    // keep making one until it shows.
    poll(
        "the follower to see events",
        Duration::from_secs(20),
        || {
            env.ok(&["run", "--rm", "--network", "none", BB, "true"]);
            rx.recv_timeout(Duration::from_millis(200)).ok()
        },
    );
    while rx.try_recv().is_ok() {}
    // Eight containers die at once, each recorded by its own monitor, while
    // other berth processes record theirs.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let cmd = env.berth(&[
                "run",
                "--network",
                "none",
                "--name",
                &format!("par{i}"),
                BB,
                "sh",
                "-c",
                &format!("exit {i}"),
            ]);
            std::thread::spawn(move || output_with_timeout(cmd, COMMAND_TIMEOUT))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 8 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the follower saw only {seen:?}"));
        seen.insert(line);
    }
    let want: std::collections::BTreeSet<String> = (0..8).map(|i| format!("par{i} {i}")).collect();
    assert_eq!(seen, want);
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn bad_arguments_are_dockers_errors() {
    let env = TestEnv::new();
    let (_, err) = env.fails(&["events", "--since", "foo"], 1);
    assert_eq!(
        err.trim(),
        "failed to parse value as time or duration: \"foo\""
    );
    let (_, err) = env.fails(&["events", "--since", "1h", "--until", "2h"], 1);
    assert!(
        err.contains("`since` time (") && err.contains("cannot be after `until` time ("),
        "{err}"
    );
    let (_, err) = env.fails(&["events", "--filter", "bogus=1", "--until", "0s"], 1);
    assert!(err.contains("Invalid filter 'bogus'"), "{err}");
    let (_, err) = env.fails(&["events", "--filter", "nokey"], 125);
    assert!(err.contains("bad format of filter"), "{err}");
    // --until in the past with nothing recorded: nothing, at once.
    assert_eq!(env.ok(&["events", "--since", "1h", "--until", "1s"]), "");
}
