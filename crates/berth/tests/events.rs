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
    let mut args = vec![
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ];
    args.extend_from_slice(extra);
    recorded(env, since, &args)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `events --since T0 --until now EXTRA…`: what was recorded since `since`.
fn recorded(env: &TestEnv, since: &str, extra: &[&str]) -> String {
    let until = format!("{:.9}", now_secs());
    let mut args = vec!["events", "--since", since, "--until", &until];
    args.extend_from_slice(extra);
    env.ok(&args)
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
    env.ok(&["top", "ev3"]);
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
        "container top ev3",
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

/// How long a container may take to reach a health status.
const HEALTH_DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn networks_are_connected_before_each_start_and_disconnected_after_each_end() {
    let env = TestEnv::with_busybox();
    let t0 = format!("{:.9}", now_secs());
    env.ok(&["run", "--network", "none", "--name", "n1", BB, "true"]);
    env.ok(&["run", "--network", "host", "--name", "h1", BB, "true"]);
    env.ok(&["run", "--name", "b1", BB, "true"]);
    env.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "r1",
        BB,
        "sleep",
        "100",
    ]);
    env.ok(&["restart", "r1"]);
    env.ok(&["rm", "-f", "n1", "h1", "b1", "r1"]);
    let got = history(&env, &t0, &[]);
    // dockerd 20.10's sequence for the same commands.
    let want = [
        "container create n1",
        "container attach n1",
        "network connect none",
        "container start n1",
        "container die n1",
        "network disconnect none",
        "container create h1",
        "container attach h1",
        "network connect host",
        "container start h1",
        "container die h1",
        "network disconnect host",
        "container create b1",
        "container attach b1",
        "network connect bridge",
        "container start b1",
        "container die b1",
        "network disconnect bridge",
        "container create r1",
        "network connect none",
        "container start r1",
        "container restart r1",
        "container destroy n1",
        "container destroy h1",
        "container destroy b1",
        "container kill r1",
        "container die r1",
        "network disconnect none",
        "container destroy r1",
    ];
    assert_eq!(got, want, "events:\n{}", got.join("\n"));

    // Each names the network by its ID and driver, and the container.
    let detail = recorded(
        &env,
        &t0,
        &[
        "--filter",
        "type=network",
        "--filter",
        "event=connect",
        "--format",
        "{{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{.Actor.Attributes.container}}",
    ],
    );
    let ids: Vec<String> = ["none", "host", "bridge"]
        .iter()
        .map(|n| {
            env.ok(&["network", "inspect", "-f", "{{.Id}}", n])
                .trim()
                .to_string()
        })
        .collect();
    let lines: Vec<Vec<&str>> = detail.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 4, "{detail}");
    for (line, (id, (name, driver))) in
        lines
            .iter()
            .zip([&ids[0], &ids[1], &ids[2], &ids[0]].into_iter().zip([
                ("none", "null"),
                ("host", "host"),
                ("bridge", "bridge"),
                ("none", "null"),
            ]))
    {
        assert_eq!(line[..3], [id.as_str(), name, driver], "{detail}");
        assert!(is_full_id(line[3]), "{detail}");
    }
}

#[test]
fn healthchecks_record_each_probe_and_each_change_of_status() {
    let env = TestEnv::with_busybox();
    let t0 = format!("{:.9}", now_secs());
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "hc",
        "--health-cmd",
        "test ! -e /tmp/bad",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        BB,
        "sleep",
        "100",
    ]);
    let status = |want: &'static str| {
        poll(&format!("hc to be {want}"), HEALTH_DEADLINE, || {
            let s = env.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
            (s.trim() == want).then_some(())
        })
    };
    status("healthy");
    env.ok(&["exec", "hc", "touch", "/tmp/bad"]);
    status("unhealthy");
    env.ok(&["rm", "-f", "hc"]);

    // A status change is recorded once, after the probe that made it.
    let changes = history(&env, &t0, &["--filter", "event=health_status"]);
    assert_eq!(
        changes,
        [
            "container health_status: healthy hc",
            "container health_status: unhealthy hc"
        ]
    );
    // Each probe is an exec of its own, as dockerd shows it: the command
    // behind the shell, one new exec ID for create, start and die.
    let all = recorded(
        &env,
        &t0,
        &[
            "--filter",
            "container=hc",
            "--format",
            "{{.Action}}|{{.Actor.Attributes.execID}}|{{.Actor.Attributes.exitCode}}",
        ],
    );
    const PROBE: &str = "/bin/sh -c test ! -e /tmp/bad";
    let rows: Vec<Vec<&str>> = all.lines().map(|l| l.split('|').collect()).collect();
    let mut probes = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if r[0] != "exec_die" {
            continue;
        }
        let id = r[1];
        let of: Vec<usize> = (0..i).filter(|j| rows[*j][1] == id).collect();
        assert_eq!(of.len(), 2, "{all}");
        if rows[of[0]][0] == "exec_create: touch /tmp/bad" {
            continue;
        }
        assert_eq!(rows[of[0]][0], format!("exec_create: {PROBE}"), "{all}");
        assert_eq!(rows[of[1]][0], format!("exec_start: {PROBE}"), "{all}");
        assert!(is_full_id(id), "{all}");
        probes.push((id, r[2], i));
    }
    let mut ids: Vec<&str> = probes.iter().map(|p| p.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), probes.len(), "an exec ID used twice:\n{all}");
    assert_eq!(probes.first().map(|p| p.1), Some("0"), "{all}");
    assert!(probes.iter().any(|p| p.1 == "1"), "{all}");
    // healthy after the first probe's die, unhealthy after the first
    // failure's, each before the next probe (the `exec` of touch, another
    // process, may record between them).
    let next_after = |i: usize| {
        rows[i + 1..]
            .iter()
            .find(|r| r[0].contains(PROBE) || r[0].starts_with("health_status"))
            .map(|r| r[0])
    };
    assert_eq!(
        next_after(probes[0].2),
        Some("health_status: healthy"),
        "{all}"
    );
    let failed = probes.iter().find(|p| p.1 == "1").unwrap();
    assert_eq!(
        next_after(failed.2),
        Some("health_status: unhealthy"),
        "{all}"
    );
}

#[test]
fn saves_and_loads_are_recorded_once_per_image() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&["image", "inspect", "-f", "{{.Id}}", BB]);
    let id = id.trim();
    let t0 = format!("{:.9}", now_secs());
    let tar = env.root.path().join("saved.tar");
    let tar = tar.to_string_lossy();
    env.ok(&["tag", BB, "bb:x"]);
    // Two names of one image: one `save`.
    env.ok(&["save", "-o", &tar, BB, "bb:x"]);
    env.ok(&["rmi", "bb:x"]);
    env.ok(&["load", "-i", &tar]);
    let got = recorded(
        &env,
        &t0,
        &[
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
        ],
    );
    // dockerd 20.10's records for the same commands (a load that brings a
    // tag back records no `tag`).
    assert_eq!(
        got,
        format!("tag {id} bb:x\nsave {id} {id}\nuntag {id} {id}\nload {id} {id}\n")
    );
}
