//! A container's life after `run`: create/start/stop/restart/kill/rm, `ps`,
//! `wait`, `logs`, `attach`, `exec`, `inspect`, `top`, `rename`, `container
//! prune`, and what survives a killed CLI. Black box: every check goes through
//! the `berth` binary, /proc, or what a container leaves on disk.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// Waits in the container until the file `/go` exists (made with `exec touch`).
const UNTIL_GO: &str = "while [ ! -e /go ]; do sleep 0.05; done";

fn is_short_id(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn id_of(env: &TestEnv, name: &str) -> String {
    inspect_f(env, "{{.Id}}", name)
}

/// Starts a detached container that prints `ready` once its traps are set.
fn run_ready(env: &TestEnv, name: &str, script: &str) -> String {
    let id = env.ok(&["run", "-d", "--name", name, BB, "sh", "-c", script]);
    wait_for_log(env, name, "ready");
    id.trim().to_string()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_owned).collect()
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time {s:?}: {e}"))
        .with_timezone(&Utc)
}

/// (state, parent PID, session ID) from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(char, u32, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((f[0].chars().next()?, f[1].parse().ok()?, f[3].parse().ok()?))
}

fn proc_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _, _)| state != 'Z')
}

fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Splits a table row at the header's column starts.
fn table_columns(header: &str, row: &str) -> Vec<(String, String)> {
    let titles = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    let starts: Vec<usize> = titles
        .iter()
        .map(|t| {
            header
                .find(t)
                .unwrap_or_else(|| panic!("no {t} in header {header:?}"))
        })
        .collect();
    let chars: Vec<char> = row.chars().collect();
    let header_chars: Vec<char> = header.chars().collect();
    // Positions are in characters (the COMMAND column may hold "…").
    let char_starts: Vec<usize> = starts
        .iter()
        .map(|&b| header[..b].chars().count())
        .collect();
    assert!(header_chars.len() >= char_starts[6]);
    (0..titles.len())
        .map(|i| {
            let from = char_starts[i].min(chars.len());
            let to = if i + 1 < titles.len() {
                char_starts[i + 1].min(chars.len())
            } else {
                chars.len()
            };
            (
                titles[i].to_string(),
                chars[from..to]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string(),
            )
        })
        .collect()
}

fn column<'a>(cols: &'a [(String, String)], title: &str) -> &'a str {
    cols.iter().find(|(t, _)| t == title).map_or_else(
        || panic!("no column {title} in {cols:?}"),
        |(_, v)| v.as_str(),
    )
}

/// "Less than a second", "1 second", "N seconds", "About a minute", "N minutes".
fn is_human_duration(s: &str) -> bool {
    if s == "Less than a second" || s == "1 second" || s == "About a minute" {
        return true;
    }
    match s.split_once(' ') {
        Some((n, unit)) => n.parse::<u32>().is_ok() && (unit == "seconds" || unit == "minutes"),
        None => false,
    }
}

fn is_up_status(s: &str) -> bool {
    s.strip_prefix("Up ").is_some_and(is_human_duration)
}

fn is_exited_status(s: &str, code: i32) -> bool {
    s.strip_prefix(&format!("Exited ({code}) "))
        .and_then(|r| r.strip_suffix(" ago"))
        .is_some_and(is_human_duration)
}

/// A `berth` command running in the background; its stdout read line by line.
struct Bg {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Bg {
    fn spawn(env: &TestEnv, args: &[&str]) -> Bg {
        let mut cmd = env.berth(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start berth {args:?}: {e}"));
        let (Some(stdout), Some(mut stderr_pipe)) = (child.stdout.take(), child.stderr.take())
        else {
            panic!("berth {args:?}: no pipes");
        };
        let stdout = BufReader::new(stdout);
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for l in stdout.lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr_pipe.read_to_end(&mut buf);
            let _ = etx.send(buf);
        });
        Bg {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stdout line satisfies `pred`.
    fn wait_for_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        poll(what, DEADLINE, || {
            self.seen.extend(self.lines.try_iter());
            self.seen.iter().any(|l| pred(l)).then_some(())
        });
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting for berth: {e}"))
    }

    fn still_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Waits for the exit; returns the status, all stdout lines and stderr.
    fn finish(&mut self, what: &str) -> (ExitStatus, Vec<String>, String) {
        let st = poll(what, DEADLINE, || self.try_wait());
        let end = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: stdout still open"),
            }
        }
        let stderr = self
            .stderr
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("{what}: stderr still open"));
        (
            st,
            self.seen.clone(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- create, start, stop

#[test]
fn create_then_start() {
    let env = TestEnv::with_busybox();
    let out = env.ok(&["create", "--name", "cr", BB, "sleep", "1000"]);
    let id = out.trim();
    assert!(is_full_id(id), "create printed {out:?}");
    assert_eq!(out, format!("{id}\n"));

    let ps = env.ok(&["ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert_eq!(ps, format!("{} cr Created\n", &id[..12]));
    assert_eq!(
        env.ok(&["ps", "-q"]),
        "",
        "a created container is not running"
    );
    let v = env.inspect("cr");
    assert_eq!(v["State"]["Status"], "created", "{v}");
    assert_eq!(v["State"]["Running"], false, "{v}");
    assert_eq!(v["State"]["Pid"], 0, "{v}");
    assert_eq!(v["State"]["StartedAt"], "0001-01-01T00:00:00Z", "{v}");

    assert_eq!(env.ok(&["start", "cr"]), "cr\n");
    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    let (name, st) = ps.trim().split_once(' ').unwrap();
    assert_eq!(name, "cr");
    assert!(is_up_status(st), "status {st:?}");
    assert_eq!(status(&env, "cr"), "running");
    // Starting a running container is a no-op, not an error.
    assert_eq!(env.ok(&["start", "cr"]), "cr\n");
    env.fails(&["start", "no-such-container"], 1);
}

#[test]
fn stop_of_a_process_that_handles_sigterm_is_quick() {
    let env = TestEnv::with_busybox();
    run_ready(
        &env,
        "polite",
        "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    let start = Instant::now();
    assert_eq!(env.ok(&["stop", "polite"]), "polite\n");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let v = env.inspect("polite");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 0, "{v}");
    assert!(env.ok(&["logs", "polite"]).contains("bye"));
    // Stopping a stopped container is fine.
    env.ok(&["stop", "polite"]);
    env.fails(&["stop", "no-such-container"], 1);
}

#[test]
fn stop_of_a_process_that_ignores_sigterm_kills_after_the_timeout() {
    let env = TestEnv::with_busybox();
    run_ready(
        &env,
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    );
    let start = Instant::now();
    env.ok(&["stop", "-t", "1", "stubborn"]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "stop did not wait: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    let v = env.inspect("stubborn");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
}

#[test]
fn restart_runs_the_process_again() {
    let env = TestEnv::with_busybox();
    run_ready(
        &env,
        "again",
        "trap 'exit $(cat /code 2>/dev/null || echo 0)' TERM; echo ready; while :; do sleep 0.05; done",
    );
    let v1 = env.inspect("again");
    assert_eq!(env.ok(&["restart", "-t", "5", "again"]), "again\n");
    let v2 = env.inspect("again");
    assert_eq!(v2["State"]["Status"], "running", "{v2}");
    assert_ne!(v1["State"]["Pid"], v2["State"]["Pid"]);
    assert!(
        parse_time(v2["State"]["StartedAt"].as_str().unwrap())
            > parse_time(v1["State"]["StartedAt"].as_str().unwrap())
    );
    assert_eq!(v1["Id"], v2["Id"]);
    poll("a second \"ready\"", DEADLINE, || {
        (env.ok(&["logs", "again"]).matches("ready").count() == 2).then_some(())
    });

    // The restarted container is still under berth's control through its
    // monitor's attach socket: `wait` follows it until `stop` ends it, and
    // reports the code it exits with. restart starts a stopped one too.
    for round in 2..6 {
        if round > 2 {
            env.ok(&["restart", "again"]);
            assert_eq!(status(&env, "again"), "running", "round {round}");
        }
        poll("\"ready\" from the restarted container", DEADLINE, || {
            (env.ok(&["logs", "again"]).matches("ready").count() == round).then_some(())
        });
        let mut waiter = Bg::spawn(&env, &["wait", "again"]);
        let code = 10 + round;
        env.ok(&["exec", "again", "sh", "-c", &format!("echo {code} > /code")]);
        assert!(
            waiter.still_running(),
            "round {round}: wait returned while the container runs: {:?}",
            waiter.finish("wait")
        );
        env.ok(&["stop", "again"]);
        assert_eq!(status(&env, "again"), "exited", "round {round}");
        assert_eq!(env.ok(&["ps", "-q"]), "", "round {round}");
        let (st, out, stderr) = waiter.finish("wait to return after stop");
        assert!(st.success(), "{st} {stderr}");
        assert_eq!(out, [code.to_string()], "round {round}");
    }
}

#[test]
fn kill_sends_sigkill_or_the_given_signal() {
    let env = TestEnv::with_busybox();
    run_ready(
        &env,
        "target",
        "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done",
    );
    assert_eq!(env.ok(&["kill", "-s", "USR1", "target"]), "target\n");
    wait_for_log(&env, "target", "got-usr1");
    assert_eq!(status(&env, "target"), "running");

    env.ok(&["kill", "target"]);
    assert_eq!(env.ok(&["wait", "target"]), "137\n");
    let v = env.inspect("target");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");

    let (_, stderr) = env.fails(&["kill", "target"], 1);
    assert!(stderr.contains("is not running"), "stderr: {stderr}");
    env.fails(&["kill", "no-such-container"], 1);
    env.ok(&["run", "-d", "--name", "other", BB, "sleep", "1000"]);
    env.fails(&["kill", "-s", "NOPE", "other"], 1);
    assert_eq!(status(&env, "other"), "running");
}

#[test]
fn rm_refuses_a_running_container_and_rm_f_removes_it() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&["run", "-d", "--name", "busy", BB, "sleep", "1000"]);
    let id = id.trim();
    let dir = env.root.path().join("containers").join(id);
    let (_, stderr) = env.fails(&["rm", "busy"], 1);
    assert!(
        stderr.contains("cannot remove a running container"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("force"), "stderr: {stderr}");
    assert_eq!(status(&env, "busy"), "running");

    let pid = env.container_pid("busy");
    assert_eq!(env.ok(&["rm", "-f", "busy"]), "busy\n");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert!(!dir.exists(), "{} is left", dir.display());
    poll("the container's process to be gone", DEADLINE, || {
        (!proc_alive(pid)).then_some(())
    });
    let (_, stderr) = env.fails(&["rm", "busy"], 1);
    assert!(stderr.contains("No such container"), "stderr: {stderr}");

    // rm of a stopped container needs no -f; several at once.
    env.ok(&["run", "--name", "done1", BB, "true"]);
    env.ok(&["create", "--name", "done2", BB, "true"]);
    assert_eq!(env.ok(&["rm", "done1", "done2"]), "done1\ndone2\n");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

// ---------------------------------------------------------------- ps

/// Three containers, oldest first: `ex3` (exited 3), `up1` (running), `cr1` (created).
fn three_containers(env: &TestEnv) -> [String; 3] {
    env.fails(&["run", "--name", "ex3", BB, "sh", "-c", "exit 3"], 3);
    let up = env.ok(&["run", "-d", "--name", "up1", BB, "sleep", "1000"]);
    let cr = env.ok(&["create", "--name", "cr1", BB, "echo", "hi"]);
    [
        id_of(env, "ex3"),
        up.trim().to_string(),
        cr.trim().to_string(),
    ]
}

#[test]
fn ps_table() {
    let env = TestEnv::with_busybox();
    let [ex, up, _cr] = three_containers(&env);

    let out = env.ok(&["ps"]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 2, "ps:\n{out}");
    let header = rows[0];
    let titles: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(
        titles,
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "ps:\n{out}"
    );
    let cols = table_columns(header, rows[1]);
    assert_eq!(column(&cols, "CONTAINER ID"), &up[..12], "ps:\n{out}");
    assert_eq!(column(&cols, "IMAGE"), "bb");
    assert_eq!(column(&cols, "COMMAND"), "\"sleep 1000\"");
    let created = column(&cols, "CREATED");
    assert!(
        created.strip_suffix(" ago").is_some_and(is_human_duration),
        "CREATED {created:?}"
    );
    assert!(is_up_status(column(&cols, "STATUS")), "ps:\n{out}");
    assert_eq!(column(&cols, "PORTS"), "");
    assert_eq!(column(&cols, "NAMES"), "up1");

    let out = env.ok(&["ps", "-a"]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 4, "ps -a:\n{out}");
    let by_name = |name: &str| {
        rows[1..]
            .iter()
            .map(|r| table_columns(rows[0], r))
            .find(|c| column(c, "NAMES") == name)
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
    };
    let ex_cols = by_name("ex3");
    assert_eq!(column(&ex_cols, "CONTAINER ID"), &ex[..12]);
    assert!(
        is_exited_status(column(&ex_cols, "STATUS"), 3),
        "ps -a:\n{out}"
    );
    assert_eq!(
        column(&by_name("cr1"), "STATUS"),
        "Created",
        "ps -a:\n{out}"
    );
    // Newest first.
    let names: Vec<String> = rows[1..]
        .iter()
        .map(|r| column(&table_columns(rows[0], r), "NAMES").to_string())
        .collect();
    assert_eq!(names, ["cr1", "up1", "ex3"]);
}

#[test]
fn ps_flags() {
    let env = TestEnv::with_busybox();
    let [ex, up, cr] = three_containers(&env);
    let short = |id: &String| id[..12].to_string();

    assert_eq!(lines(&env.ok(&["ps", "-q"])), [short(&up)]);
    assert_eq!(
        lines(&env.ok(&["ps", "-aq"])),
        [short(&cr), short(&up), short(&ex)]
    );
    for id in lines(&env.ok(&["ps", "-aq"])) {
        assert!(is_short_id(&id), "{id:?}");
    }
    assert_eq!(
        lines(&env.ok(&["ps", "-aq", "--no-trunc"])),
        [cr.clone(), up.clone(), ex.clone()]
    );
    // -l and -n include every state.
    assert_eq!(lines(&env.ok(&["ps", "-lq"])), [short(&cr)]);
    assert_eq!(
        lines(&env.ok(&["ps", "-n", "2", "-q"])),
        [short(&cr), short(&up)]
    );
    let latest = env.ok(&["ps", "-l"]);
    assert_eq!(latest.lines().count(), 2, "ps -l:\n{latest}");
    assert!(latest.contains("cr1"), "ps -l:\n{latest}");

    // --no-trunc: full IDs and the whole command.
    let long = "echo a-rather-long-command-line-that-does-not-fit; sleep 1000";
    env.ok(&["run", "-d", "--name", "long", BB, "sh", "-c", long]);
    let out = env.ok(&["ps", "--filter", "name=long"]);
    assert!(!out.contains("sleep 1000"), "truncated:\n{out}");
    assert!(out.contains('…'), "truncated:\n{out}");
    let out = env.ok(&["ps", "--no-trunc", "--filter", "name=long"]);
    assert!(out.contains(long), "--no-trunc:\n{out}");
    assert!(out.contains(&id_of(&env, "long")), "--no-trunc:\n{out}");
    env.ok(&["rm", "-f", "long"]);

    assert_eq!(
        env.ok(&[
            "ps",
            "--format",
            "{{.Names}} {{.Status}}",
            "--filter",
            "status=exited"
        ])
        .split_once(' ')
        .map(|(n, s)| (n.to_string(), is_exited_status(s.trim(), 3))),
        Some(("ex3".to_string(), true))
    );
    assert_eq!(
        lines(&env.ok(&["ps", "-q", "--filter", "status=created"])),
        [short(&cr)]
    );
    assert_eq!(
        lines(&env.ok(&["ps", "-q", "--filter", "status=running"])),
        [short(&up)]
    );
    assert_eq!(
        lines(&env.ok(&["ps", "-aq", "--filter", "name=up1"])),
        [short(&up)]
    );
    assert_eq!(
        lines(&env.ok(&["ps", "-aq", "--filter", "name=ex"])),
        [short(&ex)]
    );
    assert_eq!(env.ok(&["ps", "-aq", "--filter", "name=nobody"]), "");
    assert_eq!(
        lines(&env.ok(&["ps", "-aq", "--filter", &format!("id={}", &ex[..8])])),
        [short(&ex)]
    );
    assert_eq!(
        lines(&env.ok(&["ps", "-aq", "--filter", &format!("id={ex}")])),
        [short(&ex)]
    );
    // Two filters on different keys must both hold.
    assert_eq!(
        env.ok(&[
            "ps",
            "-aq",
            "--filter",
            "name=up1",
            "--filter",
            "status=exited"
        ]),
        ""
    );

    // ancestor= tells images apart: import a second, different image.
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    fs::create_dir(&content).unwrap();
    fs::write(content.join("file"), "not busybox\n").unwrap();
    let tar = dir.path().join("other.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&content)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&["import", tar.to_str().unwrap(), "other"]);
    let oth = env
        .ok(&["create", "--name", "oth", "other", "/file"])
        .trim()
        .to_string();
    let mut of_bb = lines(&env.ok(&["ps", "-aq", "--filter", "ancestor=bb"]));
    of_bb.sort();
    let mut want = vec![short(&ex), short(&up), short(&cr)];
    want.sort();
    assert_eq!(of_bb, want);
    assert_eq!(
        lines(&env.ok(&["ps", "-aq", "--filter", "ancestor=other"])),
        [short(&oth)]
    );

    let formatted = env.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    let rows = lines(&formatted);
    assert_eq!(rows.len(), 4, "{formatted}");
    assert_eq!(rows[0], "oth Created");
    assert_eq!(rows[1], "cr1 Created");
    assert!(
        rows[2].strip_prefix("up1 ").is_some_and(is_up_status),
        "{formatted}"
    );
    assert!(
        rows[3]
            .strip_prefix("ex3 ")
            .is_some_and(|s| is_exited_status(s, 3)),
        "{formatted}"
    );
    env.fails(&["ps", "--filter", "bogus=1"], 1);
}

// ---------------------------------------------------------------- wait, logs, attach

#[test]
fn wait_prints_the_exit_code() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "w3",
        BB,
        "sh",
        "-c",
        &format!("{UNTIL_GO}; exit 3"),
    ]);
    let mut waiter = Bg::spawn(&env, &["wait", "w3"]);
    assert_eq!(status(&env, "w3"), "running");
    env.ok(&["exec", "w3", "touch", "/go"]);
    let (st, out, stderr) = waiter.finish("berth wait");
    assert!(st.success(), "{st} {stderr}");
    assert_eq!(out, ["3"]);

    // An exited container answers at once; several at once, in order.
    env.ok(&["run", "--name", "w0", BB, "true"]);
    assert_eq!(env.ok(&["wait", "w0", "w3"]), "0\n3\n");
    let (stdout, stderr) = env.fails(&["wait", "w0", "no-such-container"], 1);
    assert_eq!(stdout, "0\n");
    assert!(stderr.contains("No such container"), "stderr: {stderr}");
}

#[test]
fn logs_keep_stdout_and_stderr_apart() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "lg",
        BB,
        "sh",
        "-c",
        "echo out1; echo err1 >&2; echo out2; echo err2 >&2; echo out3",
    ]);
    let out = env.run(&["logs", "lg"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out1\nout2\nout3\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err1\nerr2\n");

    // --tail counts the lines of both streams.
    let out = env.run(&["logs", "--tail", "3", "lg"]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout
            .iter()
            .chain(&out.stderr)
            .filter(|&&b| b == b'\n')
            .count(),
        3,
        "{out:?}"
    );
    assert_eq!(env.ok(&["logs", "--tail", "0", "lg"]), "");
    env.fails(&["logs", "--tail", "many", "lg"], 1);
    env.fails(&["logs", "no-such-container"], 1);
}

#[test]
fn logs_timestamps_tail_and_since() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ts",
        BB,
        "sh",
        "-c",
        &format!("echo early1; echo early2; {UNTIL_GO}; echo late"),
    ]);
    wait_for_log(&env, "ts", "early2");
    let between = Utc::now();
    release(&env, "ts", "/go");
    assert_eq!(env.ok(&["wait", "ts"]), "0\n");
    assert_eq!(env.ok(&["logs", "ts"]), "early1\nearly2\nlate\n");
    assert_eq!(env.ok(&["logs", "--tail", "2", "ts"]), "early2\nlate\n");

    let stamped = env.ok(&["logs", "-t", "ts"]);
    let mut last = None;
    for (line, want) in stamped.lines().zip(["early1", "early2", "late"]) {
        let (t, text) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert_eq!(text, want);
        let t = parse_time(t);
        assert!(
            (Utc::now() - t).num_seconds().abs() < 300,
            "time {t} is not now"
        );
        assert!(last.is_none_or(|l| l <= t), "out of order:\n{stamped}");
        last = Some(t);
    }
    assert_eq!(stamped.lines().count(), 3);

    let since = between.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    assert_eq!(env.ok(&["logs", "--since", &since, "ts"]), "late\n");
    assert_eq!(
        env.ok(&["logs", "--since", "1h", "ts"]),
        "early1\nearly2\nlate\n"
    );
    assert_eq!(
        env.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "ts"]),
        ""
    );
    env.fails(&["logs", "--since", "yesterday-ish", "ts"], 1);
}

#[test]
fn logs_follow_until_the_container_exits() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "fo",
        BB,
        "sh",
        "-c",
        &format!("echo first; {UNTIL_GO}; echo second; echo third"),
    ]);
    let mut follower = Bg::spawn(&env, &["logs", "-f", "fo"]);
    follower.wait_for_line("\"first\" from logs -f", |l| l == "first");
    // The container still runs: logs -f must still be following.
    assert_eq!(status(&env, "fo"), "running");
    assert!(
        follower.still_running(),
        "logs -f ended while the container runs"
    );
    release(&env, "fo", "/go");
    let (st, out, stderr) = follower.finish("logs -f to end with the container");
    assert!(st.success(), "{st} {stderr}");
    assert_eq!(out, ["first", "second", "third"]);
}

#[test]
fn attach_shows_new_output() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run", "-d", "--name", "att", BB, "sh", "-c",
        "echo before; i=0; while [ ! -e /stop ]; do echo tick$i; i=$((i+1)); sleep 0.05; done; echo after >&2; exit 4",
    ]);
    wait_for_log(&env, "att", "tick1");
    let mut att = Bg::spawn(&env, &["attach", "att"]);
    // Ticks printed after attaching arrive.
    att.wait_for_line("a tick through attach", |l| l.starts_with("tick"));
    release(&env, "att", "/stop");
    let (st, out, stderr) = att.finish("attach to end with the container");
    assert_eq!(st.code(), Some(4), "{st}: {out:?} {stderr}");
    // attach does not replay what was printed before it.
    assert!(!out.iter().any(|l| l == "before"), "{out:?}");
    assert!(stderr.contains("after"), "stderr: {stderr}");

    let (_, stderr) = env.fails(&["attach", "att"], 1);
    assert!(stderr.contains("start it first"), "stderr: {stderr}");
}

// ---------------------------------------------------------------- exec

#[test]
fn exec_runs_commands_in_the_container() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "-e",
        "FROM_RUN=1",
        "-w",
        "/tmp",
        BB,
        "sleep",
        "1000",
    ]);
    assert_eq!(env.ok(&["exec", "ex", "echo", "hello"]), "hello\n");
    // The container's environment and working directory are the defaults.
    assert_eq!(
        env.ok(&["exec", "ex", "sh", "-c", "echo $FROM_RUN; pwd; id -u"]),
        "1\n/tmp\n0\n"
    );
    let out = env.run(&["exec", "ex", "sh", "-c", "echo to-err >&2; exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
    assert_eq!(
        env.ok(&[
            "exec",
            "-e",
            "FROM_RUN=2",
            "-e",
            "NEW=x",
            "ex",
            "sh",
            "-c",
            "echo $FROM_RUN$NEW"
        ]),
        "2x\n"
    );
    assert_eq!(env.ok(&["exec", "-w", "/etc", "ex", "pwd"]), "/etc\n");
    assert_eq!(
        env.ok(&["exec", "-u", "1000", "ex", "sh", "-c", "id -u; id -g"]),
        "1000\n1000\n"
    );
    // A change made by exec is in the container's filesystem.
    env.ok(&["exec", "ex", "sh", "-c", "echo made > /made"]);
    let upper = PathBuf::from(inspect_f(&env, "{{.GraphDriver.Data.UpperDir}}", "ex"));
    assert_eq!(fs::read_to_string(upper.join("made")).unwrap(), "made\n");

    // Docker's exec answers 126 for whatever keeps the process from
    // starting (its `run` keeps 127 for a missing command), in runc's words,
    // on the exec's stdout with a terminal's line end (the daemon writes it
    // into the attached stream); stderr stays empty.
    let (stdout, stderr) = env.fails(&["exec", "ex", "no-such-command"], 126);
    assert_eq!(
        stdout,
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"no-such-command\": executable file not found in $PATH: unknown\r\n"
    );
    assert_eq!(stderr, "");
    env.fails(&["exec", "ex", "/etc/passwd"], 126);
    let (stdout, _) = env.fails(&["exec", "-w", "/nope", "ex", "true"], 126);
    assert!(
        stdout.contains("chdir to cwd (\"/nope\") set in config.json failed: no such file or directory: unknown"),
        "stdout: {stdout}"
    );
    let (stdout, _) = env.fails(&["exec", "-u", "nobody2", "ex", "true"], 126);
    assert_eq!(
        stdout,
        "unable to find user nobody2: no matching entries in passwd file\r\n"
    );
    // Detached, it is an ordinary error: stderr, exit 1.
    let (stdout, stderr) = env.fails(&["exec", "-d", "ex", "no-such-command"], 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("Error: OCI runtime exec failed: "),
        "stderr: {stderr}"
    );
    // A command that itself exits 127 is not a start failure.
    env.fails(&["exec", "ex", "sh", "-c", "exit 127"], 127);
    env.fails(&["exec", "no-such-container", "true"], 1);
    // -t without -i needs no terminal on stdin (a pty is made), and its
    // process gets TERM=xterm unless it has its own.
    assert_eq!(env.ok(&["exec", "-t", "ex", "tty"]).trim(), "/dev/pts/0");
    assert_eq!(
        env.ok(&["exec", "-t", "ex", "sh", "-c", "echo $TERM"])
            .trim(),
        "xterm"
    );
    assert_eq!(
        env.ok(&[
            "exec",
            "-t",
            "-e",
            "TERM=vt100",
            "ex",
            "sh",
            "-c",
            "echo $TERM"
        ])
        .trim(),
        "vt100"
    );
    assert_eq!(
        env.ok(&["exec", "ex", "sh", "-c", "echo ${TERM:-none}"]),
        "none\n"
    );
    let (_, stderr) = env.fails(&["exec", "-it", "ex", "true"], 1);
    assert_eq!(stderr, "the input device is not a TTY\n");
    // --env-file, then -e, with run's rules.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("env");
    fs::write(&f, "Q=1\nR=from-file\n").unwrap();
    let f = f.to_str().unwrap();
    assert_eq!(
        env.ok(&[
            "exec",
            "--env-file",
            f,
            "-e",
            "R=2",
            "ex",
            "sh",
            "-c",
            "echo $Q$R"
        ]),
        "12\n"
    );
}

#[test]
fn exec_detached_returns_at_once() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "exd", BB, "sleep", "1000"]);
    let out = env.ok(&[
        "exec",
        "-d",
        "exd",
        "sh",
        "-c",
        &format!("{UNTIL_GO}; touch /done"),
    ]);
    assert_eq!(out, "");
    // exec -d returned while its command still waits.
    env.fails(&["exec", "exd", "test", "-e", "/done"], 1);
    release(&env, "exd", "/go");
    poll("the detached exec to finish", DEADLINE, || {
        env.run(&["exec", "exd", "test", "-e", "/done"])
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "stopped", BB, "true"]);
    // Docker: an error from the daemon, exit status 1.
    let (_, stderr) = env.fails(&["exec", "stopped", "true"], 1);
    assert!(stderr.contains("is not running"), "stderr: {stderr}");
    env.ok(&["create", "--name", "fresh", BB, "true"]);
    let (_, stderr) = env.fails(&["exec", "fresh", "true"], 1);
    assert!(stderr.contains("is not running"), "stderr: {stderr}");
}

#[test]
fn exec_joins_the_containers_pid_namespace() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "pidns", BB, "sleep", "1000"]);
    let pid: u32 = env
        .ok(&["exec", "pidns", "sh", "-c", "echo $$"])
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 1 && pid < 100, "exec'd shell has PID {pid}");
    let ps = env.ok(&["exec", "pidns", "ps", "-o", "pid,comm"]);
    let rows: Vec<Vec<&str>> = ps
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec!["1", "sleep"]),
        "ps in the container:\n{ps}"
    );
    // Only the container's processes: its init and ps itself.
    assert_eq!(rows.len(), 2, "ps in the container:\n{ps}");
}

// ---------------------------------------------------------------- inspect, top, rename, prune

#[test]
fn inspect_a_running_and_an_exited_container() {
    let env = TestEnv::with_busybox();
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/data:ro", host.path().display());
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "insp",
        "-e",
        "A=1",
        "-v",
        &bind,
        "--restart",
        "on-failure:3",
        "--read-only",
        BB,
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    let v = env.inspect("insp");
    assert_eq!(v["Id"], id);
    assert_eq!(v["Name"], "/insp");
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"], serde_json::json!(["1000"]));
    let s = &v["State"];
    assert_eq!(s["Status"], "running", "{v}");
    assert_eq!(s["Running"], true, "{v}");
    assert_eq!(s["ExitCode"], 0, "{v}");
    assert_eq!(s["FinishedAt"], "0001-01-01T00:00:00Z", "{v}");
    let started = parse_time(s["StartedAt"].as_str().unwrap());
    assert!((Utc::now() - started).num_seconds().abs() < 300);
    let pid = u32::try_from(s["Pid"].as_u64().unwrap()).unwrap();
    assert_eq!(
        cmdline(pid),
        ["sleep", "1000"],
        "State.Pid {pid} is not the container's process"
    );

    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(v["Config"]["Image"], "bb");
    let env_list: Vec<&str> = v["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env_list.contains(&"A=1"), "{env_list:?}");
    // Only the user's and the image's variables, as Docker's: PATH and
    // HOSTNAME are the process's, not the container's configuration.
    assert!(
        !env_list
            .iter()
            .any(|e| e.starts_with("PATH=") || e.starts_with("HOSTNAME=")),
        "{env_list:?}"
    );

    let hc = &v["HostConfig"];
    assert_eq!(hc["Binds"], serde_json::json!([bind]), "{hc}");
    assert_eq!(hc["ReadonlyRootfs"], true, "{hc}");
    assert_eq!(hc["RestartPolicy"]["Name"], "on-failure", "{hc}");
    assert_eq!(hc["RestartPolicy"]["MaximumRetryCount"], 3, "{hc}");
    assert_eq!(hc["AutoRemove"], false, "{hc}");
    let m = &v["Mounts"][0];
    assert_eq!(m["Type"], "bind", "{v}");
    assert_eq!(m["Source"], host.path().display().to_string(), "{v}");
    assert_eq!(m["Destination"], "/data", "{v}");
    assert_eq!(m["RW"], false, "{v}");
    let upper = PathBuf::from(v["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap());
    assert!(upper.is_dir(), "UpperDir {}", upper.display());
    assert!(
        upper.starts_with(env.root.path()),
        "UpperDir {}",
        upper.display()
    );

    assert_eq!(inspect_f(&env, "{{.State.Status}}", "insp"), "running");
    let json_env: serde_json::Value =
        serde_json::from_str(&inspect_f(&env, "{{json .Config.Env}}", "insp")).unwrap();
    assert_eq!(json_env, v["Config"]["Env"]);
    // The short ID and a unique prefix name it too.
    assert_eq!(inspect_f(&env, "{{.Name}}", &id[..12]), "/insp");

    env.ok(&["rm", "-f", "insp"]);
    env.fails(&["run", "--name", "gone3", BB, "sh", "-c", "exit 3"], 3);
    let v = env.inspect("gone3");
    let s = &v["State"];
    assert_eq!(s["Status"], "exited", "{v}");
    assert_eq!(s["Running"], false, "{v}");
    assert_eq!(s["Pid"], 0, "{v}");
    assert_eq!(s["ExitCode"], 3, "{v}");
    let started = parse_time(s["StartedAt"].as_str().unwrap());
    let finished = parse_time(s["FinishedAt"].as_str().unwrap());
    assert!(finished >= started, "{v}");
}

#[test]
fn inspect_several_objects_and_unknown_ones() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "one", BB, "true"]);
    env.ok(&["create", "--name", "two", BB, "true"]);
    let out = env.ok(&["inspect", "two", "one"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/two", "/one"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}}", "one", "two"]),
        "/one\n/two\n"
    );

    let (stdout, stderr) = env.fails(&["inspect", "no-such-object"], 1);
    assert!(
        stderr.contains("No such object: no-such-object"),
        "stderr: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));
    // The found ones are still printed.
    let (stdout, _) = env.fails(&["inspect", "one", "no-such-object"], 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["Name"], "/one");
    // An image and a container in one call.
    let (stdout, _) = env.fails(&["inspect", "-f", "{{.Id}}", "one", BB, "nope"], 1);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn top_lists_the_containers_processes() {
    let env = TestEnv::with_busybox();
    // sh runs `sleep 1000` in the background and then execs `sleep 2000`.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "tp",
        BB,
        "sh",
        "-c",
        "sleep 1000 & sleep 2000",
    ]);
    let pid = env.container_pid("tp");
    let out = poll("both sleeps in top", DEADLINE, || {
        let out = env.ok(&["top", "tp"]);
        (out.contains("sleep 1000") && out.contains("sleep 2000")).then_some(out)
    });
    let mut rows = out.lines();
    let header: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
    let pid_col = header
        .iter()
        .position(|h| *h == "PID")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(header.last(), Some(&"CMD"), "{out}");
    // Docker's `top` columns are at least 20 wide.
    assert!(
        out.starts_with("UID                 PID                 PPID"),
        "{out}"
    );
    let pids: Vec<u32> = rows
        .map(|r| r.split_whitespace().nth(pid_col).unwrap().parse().unwrap())
        .collect();
    // Host PIDs: the container's main process is one of them; nothing else
    // (not the monitor, not other host processes).
    assert!(pids.contains(&pid), "State.Pid {pid} not in\n{out}");
    assert_eq!(pids.len(), 2, "{out}");
    env.ok(&["kill", "tp"]);
    env.ok(&["wait", "tp"]);
    env.fails(&["top", "tp"], 1);
}

#[test]
fn rename_a_container() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&["run", "-d", "--name", "old-name", BB, "sleep", "1000"]);
    env.ok(&["create", "--name", "taken", BB, "true"]);
    env.ok(&["rename", "old-name", "new-name"]);
    assert_eq!(inspect_f(&env, "{{.Name}}", "new-name"), "/new-name");
    assert_eq!(id_of(&env, "new-name"), id.trim());
    assert_eq!(status(&env, "new-name"), "running");
    env.fails(&["inspect", "old-name"], 1);
    assert_eq!(env.ok(&["ps", "--format", "{{.Names}}"]), "new-name\n");
    let (_, stderr) = env.fails(&["rename", "new-name", "taken"], 1);
    assert!(stderr.contains("already in use"), "stderr: {stderr}");
    env.fails(&["rename", "no-such-container", "x1"], 1);
    // The old name is free again.
    env.ok(&["create", "--name", "old-name", BB, "true"]);
}

#[test]
fn container_prune_removes_stopped_containers_only() {
    let env = TestEnv::with_busybox();
    let [ex, up, cr] = three_containers(&env);
    let out = env.ok(&["container", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(&format!("{ex}\n")), "{out}");
    assert!(out.contains(&format!("{cr}\n")), "{out}");
    assert!(!out.contains(&up), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(env.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up1\n");
    assert_eq!(status(&env, "up1"), "running");
    let out = env.ok(&["container", "prune", "-f"]);
    assert!(!out.contains("Deleted"), "{out}");
}

// ---------------------------------------------------------------- processes and crashes

#[test]
fn a_detached_container_outlives_the_cli() {
    let env = TestEnv::with_busybox();
    let mut cmd = env.berth(&["run", "-d", "--name", "bg", BB, "sleep", "1000"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    // The CLI has exited (and its pipes closed); the container runs on.
    assert_eq!(status(&env, "bg"), "running");
    let pid = env.container_pid("bg");
    assert!(proc_alive(pid));
    let (_, monitor, _) = proc_stat(pid).unwrap();
    assert!(
        cmdline(monitor)
            .first()
            .is_some_and(|a| a.ends_with("berth-monitor")),
        "the container's parent {monitor} is {:?}",
        cmdline(monitor)
    );
    let (_, monitor_parent, monitor_session) = proc_stat(monitor).unwrap();
    assert_ne!(
        monitor_parent,
        std::process::id(),
        "the monitor is the test's child"
    );
    // Its own session (not the caller's), which it does not lead: it can
    // never acquire a controlling terminal (the classic double fork).
    let (_, _, our_session) = proc_stat(std::process::id()).unwrap();
    assert_ne!(
        monitor_session, our_session,
        "the monitor is in our session"
    );
    assert_ne!(monitor_session, monitor, "the monitor leads a session");
    assert_eq!(status(&env, "bg"), "running");
}

#[test]
fn killing_the_foreground_cli_leaves_a_manageable_container() {
    let env = TestEnv::with_busybox();
    let mut cli = Bg::spawn(&env, &["run", "--name", "fg", BB, "sleep", "1000"]);
    poll("the foreground container to run", DEADLINE, || {
        (env.ok(&["ps", "-q", "--filter", "name=fg"]).trim().len() == 12).then_some(())
    });
    let pid = env.container_pid("fg");
    send_kill(cli.pid());
    let (st, _, _) = cli.finish("the killed CLI");
    assert_eq!(st.code(), None, "the CLI was not killed: {st}");

    // Like Docker, the container does not die with its client.
    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("fg Up"), "ps:\n{ps}");
    env.ok(&["rm", "-f", "fg"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    poll("the container's process to be gone", DEADLINE, || {
        (!proc_alive(pid)).then_some(())
    });
    assert_eq!(
        env.ok(&["run", "--rm", BB, "echo", "still works"]),
        "still works\n"
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

fn send_kill(pid: u32) {
    let pid = i32::try_from(pid).unwrap_or_else(|_| panic!("pid {pid} out of range"));
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

#[test]
fn a_killed_rm_can_be_finished_by_another_rm() {
    let env = TestEnv::with_busybox();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            env.ok(&[
                "run",
                "-d",
                "--name",
                &format!("victim{i}"),
                BB,
                "sleep",
                "1000",
            ])
            .trim()
            .to_string(),
        );
    }
    for id in &ids {
        let mut cmd = env.berth(&["rm", "-f", id]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
    for id in &ids {
        let listed = env.ok(&["ps", "-aq", "--no-trunc"]);
        if listed.lines().any(|l| l == id) {
            env.ok(&["rm", "-f", id]);
        }
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    for id in &ids {
        let dir = env.root.path().join("containers").join(id);
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    assert_eq!(env.ok(&["run", "--rm", BB, "echo", "ok"]), "ok\n");
}

#[test]
fn rm_finishes_a_removal_that_died_after_deleting_the_files() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "half", BB, "true"]);
    let id = id_of(&env, "half");
    // What `rm` leaves when it is killed between deleting the container's
    // directory (ARCHITECTURE.md: mark, delete files, delete the row) and
    // deleting its row.
    let dir: &Path = &env.root.path().join("containers").join(&id);
    fs::remove_dir_all(dir).unwrap();
    assert_eq!(env.ok(&["ps", "-a", "--format", "{{.Names}}"]), "half\n");
    env.ok(&["rm", "-f", "half"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    // The name is free again.
    env.ok(&["run", "--rm", "--name", "half", BB, "true"]);
}

/// Removes the attach sockets from the run root (what a cleaned `/run`, or a
/// monitor that unlinks another's socket, leaves).
fn remove_attach_sockets(env: &TestEnv) {
    let rd = fs::read_dir(env.run_root.path()).unwrap_or_else(|e| panic!("run root: {e}"));
    let mut removed = 0;
    for e in rd.flatten() {
        if e.path().extension().is_some_and(|x| x == "sock") {
            fs::remove_file(e.path()).unwrap_or_else(|err| panic!("{e:?}: {err}"));
            removed += 1;
        }
    }
    assert!(
        removed > 0,
        "no attach socket in {}",
        env.run_root.path().display()
    );
}

#[test]
fn stop_and_rm_f_work_without_the_attach_socket() {
    let env = TestEnv::with_busybox();
    run_ready(
        &env,
        "nosock",
        "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    let pid = env.container_pid("nosock");
    remove_attach_sockets(&env);
    env.ok(&["stop", "-t", "5", "nosock"]);
    assert_eq!(status(&env, "nosock"), "exited");
    assert_eq!(inspect_f(&env, "{{.State.ExitCode}}", "nosock"), "0");
    assert!(
        !proc_alive(pid),
        "stop left the container's process running"
    );

    // rm -f must not drop the row while the process lives on.
    env.ok(&["run", "-d", "--name", "nosock2", BB, "sleep", "1000"]);
    let pid = env.container_pid("nosock2");
    let (_, monitor, _) = proc_stat(pid).unwrap_or_else(|| panic!("no process {pid}"));
    remove_attach_sockets(&env);
    env.ok(&["rm", "-f", "nosock2"]);
    let first = id_of(&env, "nosock");
    assert_eq!(env.ok(&["ps", "-aq"]), format!("{}\n", &first[..12]));
    poll("the removed container's monitor to exit", DEADLINE, || {
        (!proc_alive(monitor)).then_some(())
    });
    assert!(
        !proc_alive(pid),
        "rm -f left the container's process running"
    );
}

#[test]
fn a_killed_monitor_leaves_an_exited_container() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "orphan", BB, "sleep", "1000"]);
    let pid = env.container_pid("orphan");
    let (_, monitor, _) = proc_stat(pid).unwrap();
    assert!(cmdline(monitor)
        .first()
        .is_some_and(|a| a.ends_with("berth-monitor")));
    send_kill(monitor);
    // The container's process dies with its monitor (parent-death signal).
    poll(
        "the container's process to die with its monitor",
        DEADLINE,
        || (!proc_alive(pid)).then_some(()),
    );
    poll("the container to read as exited", DEADLINE, || {
        (status(&env, "orphan") == "exited").then_some(())
    });
    assert_eq!(inspect_f(&env, "{{.State.ExitCode}}", "orphan"), "137");
    env.ok(&["rm", "orphan"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// A monitor told to wait for its starter's attach gives up, and takes the
/// created container process with it, when the starter goes away first
/// (a `berth run` killed between "ready" and attaching).
#[test]
fn monitor_gives_up_when_its_starter_vanishes_before_attaching() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&["create", "--name", "orphan", BB, "sleep", "1000"]);
    let id = id.trim();
    let monitor = berth_bin().with_file_name("berth-monitor");
    let dir = env.root.path().join("containers").join(id);
    let mut child = Command::new(&monitor)
        .arg(&dir)
        .arg("--attach-first")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // The starter vanishes: its end of the notify pipe closes.
    drop(out);
    let status = poll("the monitor to give up", Duration::from_secs(20), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(125));
    let v = env.inspect("orphan");
    // It never ran: `created`, with the error, as Docker's.
    assert_eq!(v["State"]["Status"], "created", "{v}");
    assert!(
        v["State"]["Error"]
            .as_str()
            .unwrap_or_default()
            .contains("attached"),
        "{v}"
    );
    // Nothing of it is left running, and it can be started and removed.
    let cg = Path::new("/sys/fs/cgroup/pids")
        .join(&env.cgroup_parent)
        .join(id);
    assert!(
        !cg.exists()
            || fs::read_to_string(cg.join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty()
    );
    env.ok(&["start", "orphan"]);
    env.ok(&["rm", "-f", "orphan"]);
}

/// Exit codes and words of the docker CLI (20.10 daemon, 28 client, checked
/// side by side): `rm -f`/`rmi -f` report a missing name but do not fail
/// for it; a failed `start -a` is 1; `start` sums up its failures; `kill`
/// words a missing container as Docker's; `run -it` without a terminal is
/// the CLI's own refusal, 1.
#[test]
fn exit_codes_and_words_are_the_docker_clis() {
    let env = TestEnv::with_busybox();
    let (_, err) = env.fails(&["rm", "-f", "nosuch"], 0);
    assert_eq!(err, "Error: No such container: nosuch\n");
    let (_, err) = env.fails(&["rmi", "-f", "nosuch"], 0);
    assert_eq!(err, "Error: No such image: nosuch:latest\n");
    env.fails(&["rm", "nosuch"], 1);
    env.fails(&["rmi", "nosuch"], 1);
    // A real failure still fails with -f.
    env.ok(&["run", "-d", "--name", "up", BB, "sleep", "1000"]);
    let image = env.inspect("up")["Image"]
        .as_str()
        .unwrap_or("")
        .to_string();
    env.fails(&["rmi", "-f", "nosuch", &image], 1);

    let (_, err) = env.fails(&["run", "-it", BB, "true"], 1);
    assert!(err.contains("the input device is not a TTY"), "{err}");

    env.ok(&["create", "--name", "bad", BB, "nosuchcmd"]);
    let (_, err) = env.fails(&["start", "-a", "bad"], 1);
    assert!(err.contains("executable file not found"), "{err}");
    let (_, err) = env.fails(&["start", "bad"], 1);
    assert!(
        err.ends_with("Error: failed to start containers: bad\n"),
        "{err}"
    );
    let (_, err) = env.fails(&["start", "nosuch"], 1);
    assert_eq!(
        err,
        "Error: No such container: nosuch\nError: failed to start containers: nosuch\n"
    );
    let (_, err) = env.fails(&["kill", "nosuch"], 1);
    assert_eq!(
        err,
        "Error: Cannot kill container: nosuch: No such container: nosuch\n"
    );
}

/// `info`, `system info`, `version` (with `--format` over the Engine API's
/// shapes), `-v`, the `container VERB` forms and Docker's top-level `-D`
/// and `-l LEVEL`.
#[test]
fn info_version_and_management_verbs() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "box",
        BB,
        "sleep",
        "1000",
    ]);
    env.ok(&["container", "create", "--name", "idle", BB, "true"]);
    assert_eq!(
        env.ok(&[
            "info",
            "--format",
            "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}} {{.OSType}}"
        ]),
        "2 1 1 1 linux\n"
    );
    assert_eq!(
        env.ok(&["system", "info", "--format", "{{.DockerRootDir}}"])
            .trim(),
        env.root.path().display().to_string()
    );
    let text = env.ok(&["info"]);
    for line in [
        " Containers: 2\n",
        "  Running: 1\n",
        " Images: 1\n",
        " Logging Driver: json-file\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert_eq!(
        env.ok(&[
            "version",
            "--format",
            "{{.Client.ApiVersion}} {{.Server.ApiVersion}}"
        ]),
        "1.41 1.41\n"
    );
    assert!(env.ok(&["-v"]).starts_with("berth version "));
    assert_eq!(env.ok(&["container", "exec", "box", "echo", "in"]), "in\n");
    assert_eq!(env.ok(&["container", "top", "box"]).lines().count(), 2);
    env.ok(&["container", "rename", "box", "box2"]);
    env.ok(&["container", "kill", "box2"]);
    assert_eq!(env.ok(&["container", "wait", "box2"]), "137\n");
    assert_eq!(
        env.ok(&["-D", "-l", "warn", "ps", "-aq"]).lines().count(),
        2
    );
}

/// A command that is over before `run --rm` looks at its container again
/// (its monitor has removed it already) still reports its output and code;
/// it once failed with "No such container" now and then.
#[test]
fn run_rm_of_a_quick_command_never_loses_its_container() {
    let env = TestEnv::with_busybox();
    for i in 0..60 {
        let out = env.run(&[
            "run",
            "--rm",
            "--ipc",
            "host",
            BB,
            "sh",
            "-c",
            "echo hi; exit 3",
        ]);
        assert_eq!(
            (
                out.status.code(),
                text(&out.stdout).as_str(),
                text(&out.stderr).as_str()
            ),
            (Some(3), "hi\n", ""),
            "run {i}"
        );
    }
}
