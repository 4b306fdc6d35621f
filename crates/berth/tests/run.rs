//! `berth run`: exit codes, the process it starts (command, environment, user,
//! directory, hostname), names, `--rm`, `-d`, `-i`, `--init`, the root
//! filesystem and mounts, volumes, signals, restart policies, log rotation, and
//! many runs at once. Black box: every check goes through the `berth` binary or
//! what a container leaves on disk.
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// Names of every container `ps -a` lists.
fn all_names(env: &TestEnv) -> Vec<String> {
    env.ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Container directories under ROOT/containers.
fn container_dirs(env: &TestEnv) -> Vec<PathBuf> {
    let dir = env.root.path().join("containers");
    match fs::read_dir(&dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Is a `berth-monitor` process for container directory `dir` alive?
fn monitor_running(dir: &Path) -> bool {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|e| {
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            return false;
        };
        let mut args = cmdline.split(|&b| b == 0);
        args.next().is_some_and(|a| a.ends_with(b"berth-monitor")) && args.next() == Some(needle)
    })
}

fn send_signal(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).unwrap_or_else(|_| panic!("pid {pid} out of range"));
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Waits (with a deadline) for a child to exit.
fn wait_child(child: &mut Child, what: &str) -> ExitStatus {
    poll(what, DEADLINE, || {
        child.try_wait().unwrap_or_else(|e| panic!("{what}: {e}"))
    })
}

/// Reads a pipe to its end in a thread; the receiver yields the bytes.
fn read_in_thread(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn recv_text(rx: &mpsc::Receiver<Vec<u8>>, what: &str) -> String {
    let data = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what}: pipe still open {DEADLINE:?} later"));
    String::from_utf8_lossy(&data).into_owned()
}

// ---------------------------------------------------------------- exit codes

#[test]
fn exit_status_is_the_process_own() {
    let env = TestEnv::with_busybox();
    env.fails(&["run", BB, "sh", "-c", "exit 3"], 3);
    env.fails(&["run", BB, "sh", "-c", "exit 255"], 255);
    env.ok(&["run", BB, "true"]);
    env.fails(&["run", BB, "false"], 1);
}

#[test]
fn missing_command_exits_127() {
    let env = TestEnv::with_busybox();
    let (_, stderr) = env.fails(&["run", BB, "no-such-command"], 127);
    assert!(
        stderr.contains("executable file not found"),
        "stderr: {stderr}"
    );
    let (_, stderr) = env.fails(&["run", BB, "/no/such/file"], 127);
    assert!(
        stderr.contains("no such file or directory"),
        "stderr: {stderr}"
    );
}

#[test]
fn non_executable_file_exits_126() {
    let env = TestEnv::with_busybox();
    let (_, stderr) = env.fails(&["run", BB, "/etc/passwd"], 126);
    assert!(stderr.contains("permission denied"), "stderr: {stderr}");
    // A directory cannot be executed either.
    env.fails(&["run", BB, "/etc"], 126);
}

#[test]
fn unknown_image_exits_125() {
    let env = TestEnv::with_busybox();
    let (_, stderr) = env.fails(&["run", "no-such-image", "true"], 125);
    assert!(stderr.contains("no-such-image"), "stderr: {stderr}");
    assert!(all_names(&env).is_empty(), "a container was created");
}

#[test]
fn unknown_flag_exits_125() {
    let env = TestEnv::with_busybox();
    let (_, stderr) = env.fails(&["run", "--bogus", BB], 125);
    assert!(stderr.contains("--bogus"), "stderr: {stderr}");
    assert!(all_names(&env).is_empty(), "a container was created");
}

#[test]
fn no_command_exits_125() {
    let env = TestEnv::with_busybox();
    // An imported image has no Cmd: there is nothing to run.
    env.fails(&["run", BB], 125);
    env.fails(&["run", "--entrypoint", "", BB], 125);
}

// ---------------------------------------------------------------- the process

#[test]
fn entrypoint_flag_sets_and_clears_the_entrypoint() {
    let env = TestEnv::with_busybox();
    assert_eq!(
        env.ok(&["run", "--entrypoint", "echo", BB, "hello", "world"]),
        "hello world\n"
    );
    assert_eq!(env.ok(&["run", "--entrypoint", "", BB, "echo", "x"]), "x\n");

    let id = env.ok(&["create", "--entrypoint", "echo", BB, "a", "b"]);
    let id = id.trim();
    let v = env.inspect(id);
    assert_eq!(
        v["Config"]["Entrypoint"],
        serde_json::json!(["echo"]),
        "{v}"
    );
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["a", "b"]), "{v}");
    assert_eq!(v["Path"], "echo", "{v}");
    assert_eq!(v["Args"], serde_json::json!(["a", "b"]), "{v}");
}

#[test]
fn env_flag_sets_variables() {
    let env = TestEnv::with_busybox();
    let out = env.ok(&[
        "run",
        "-e",
        "K=V",
        "-e",
        "EMPTY=",
        "-e",
        "EQ=a=b",
        BB,
        "sh",
        "-c",
        "echo \"$K|$EMPTY|$EQ\"; env | grep -c ^EMPTY=",
    ]);
    assert_eq!(out, "V||a=b\n1\n");
    // -e overrides a default.
    assert_eq!(
        env.ok(&["run", "-e", "PATH=/bin", BB, "sh", "-c", "echo $PATH"]),
        "/bin\n"
    );
}

#[test]
fn env_flag_without_value_takes_the_callers() {
    let env = TestEnv::with_busybox();
    let mut cmd = env.berth(&[
        "run",
        "-e",
        "BERTH_TEST_FROM_CALLER",
        "-e",
        "BERTH_TEST_UNSET",
        BB,
        "env",
    ]);
    cmd.env("BERTH_TEST_FROM_CALLER", "hello there")
        .env_remove("BERTH_TEST_UNSET");
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l == "BERTH_TEST_FROM_CALLER=hello there"),
        "env:\n{stdout}"
    );
    // A name the caller does not have is not set (Docker drops it), not set to "".
    assert!(
        !stdout.lines().any(|l| l.starts_with("BERTH_TEST_UNSET")),
        "env:\n{stdout}"
    );
}

#[test]
fn env_file_is_read() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.env");
    fs::write(
        &file,
        "# a comment\n\nA=1\nSPACED=two words\nWITH_EQ=x=y\nB=from-file\n",
    )
    .unwrap();
    let out = env.ok(&[
        "run",
        "--env-file",
        file.to_str().unwrap(),
        "-e",
        "B=from-flag",
        BB,
        "sh",
        "-c",
        "echo \"$A|$SPACED|$WITH_EQ|$B\"",
    ]);
    // -e wins over the file.
    assert_eq!(out, "1|two words|x=y|from-flag\n");

    let (_, stderr) = env.fails(&["run", "--env-file", "/no/such/env-file", BB, "true"], 125);
    assert!(stderr.contains("/no/such/env-file"), "stderr: {stderr}");
}

#[test]
fn workdir_is_created_and_used() {
    let env = TestEnv::with_busybox();
    assert_eq!(
        env.ok(&["run", "-w", "/some/new/dir", BB, "pwd"]),
        "/some/new/dir\n"
    );
    assert_eq!(env.ok(&["run", "-w", "/etc", BB, "pwd"]), "/etc\n");
    // Docker refuses a relative working directory.
    env.fails(&["run", "-w", "relative", BB, "pwd"], 125);
    // Made by root whatever -u says, as Docker's daemon makes it.
    assert_eq!(
        env.ok(&["run", "-u", "1000", "-w", "/newdir", BB, "stat", "-c", "%U %a", "/newdir"]),
        "root 755\n"
    );
}

#[test]
fn user_flag_sets_uid_and_gid() {
    let env = TestEnv::with_busybox();
    assert_eq!(
        env.ok(&["run", "-u", "1000:1000", BB, "sh", "-c", "id -u; id -g"]),
        "1000\n1000\n"
    );
    assert_eq!(
        env.ok(&["run", "-u", "1234", BB, "sh", "-c", "id -u"]),
        "1234\n"
    );
    assert_eq!(env.ok(&["run", BB, "id", "-u"]), "0\n");
}

#[test]
fn hostname_flag() {
    let env = TestEnv::with_busybox();
    assert_eq!(
        env.ok(&[
            "run",
            "-h",
            "myhost",
            BB,
            "sh",
            "-c",
            "hostname; cat /etc/hostname; echo $HOSTNAME"
        ]),
        "myhost\nmyhost\nmyhost\n"
    );
    // Without -h the hostname is the short ID.
    let id = env.ok(&["run", "-d", BB, "hostname"]);
    let id = id.trim();
    assert_eq!(env.ok(&["wait", id]), "0\n");
    assert_eq!(env.ok(&["logs", id]), format!("{}\n", &id[..12]));
}

// ---------------------------------------------------------------- names, --rm, -d, -i

#[test]
fn duplicate_name_is_refused() {
    let env = TestEnv::with_busybox();
    let first = env.ok(&["run", "-d", "--name", "dup", BB, "sleep", "1000"]);
    let (_, stderr) = env.fails(&["run", "--name", "dup", BB, "true"], 125);
    assert!(stderr.contains("already in use"), "stderr: {stderr}");
    assert_eq!(all_names(&env), vec!["dup".to_string()]);
    assert_eq!(
        container_dirs(&env).len(),
        1,
        "the refused container left files behind"
    );
    // The first container is untouched.
    assert_eq!(status(&env, "dup"), "running");
    assert_eq!(inspect_f(&env, "{{.Id}}", "dup"), first.trim());
    // create refuses it too.
    let (_, stderr) = env.fails(&["create", "--name", "dup", BB, "true"], 1);
    assert!(stderr.contains("already in use"), "stderr: {stderr}");
}

#[test]
fn rm_flag_removes_the_container_after_exit() {
    let env = TestEnv::with_busybox();
    assert_eq!(
        env.ok(&["run", "--rm", "--name", "gone", BB, "echo", "hi"]),
        "hi\n"
    );
    assert!(all_names(&env).is_empty(), "ps -a: {:?}", all_names(&env));

    env.fails(
        &["run", "--rm", "--name", "gone2", BB, "sh", "-c", "exit 4"],
        4,
    );
    assert!(all_names(&env).is_empty(), "ps -a: {:?}", all_names(&env));

    // Also when the command cannot be found.
    env.fails(
        &["run", "--rm", "--name", "gone3", BB, "no-such-command"],
        127,
    );
    assert!(all_names(&env).is_empty(), "ps -a: {:?}", all_names(&env));
    assert!(
        container_dirs(&env).is_empty(),
        "{:?}",
        container_dirs(&env)
    );

    // A detached --rm container goes once it exits.
    let id = env.ok(&[
        "run",
        "-d",
        "--rm",
        BB,
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 0.05; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(status(&env, &id), "running");
    env.ok(&["exec", &id, "touch", "/go"]);
    poll("the --rm container to be removed", DEADLINE, || {
        all_names(&env).is_empty().then_some(())
    });
}

#[test]
fn detach_prints_the_id_and_returns_while_running() {
    let env = TestEnv::with_busybox();
    let start = Instant::now();
    let out = env.ok(&[
        "run",
        "-d",
        BB,
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 0.05; done; exit 6",
    ]);
    assert!(start.elapsed() < Duration::from_secs(10));
    let id = out.trim();
    assert!(is_full_id(id), "not an ID: {out:?}");
    assert_eq!(out, format!("{id}\n"));
    assert_eq!(status(&env, id), "running");
    assert_eq!(env.ok(&["ps", "-q", "--no-trunc"]), format!("{id}\n"));
    env.ok(&["exec", id, "touch", "/go"]);
    assert_eq!(env.ok(&["wait", id]), "6\n");
}

#[test]
fn interactive_streams_stdin() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let mut text = String::from("hi\n");
    for i in 0..2000 {
        text.push_str(&format!("line {i}\n"));
    }
    fs::write(&input, &text).unwrap();

    let mut cmd = env.berth(&["run", "-i", BB, "cat"]);
    cmd.stdin(fs::File::open(&input).unwrap());
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    // Everything arrives, in order, and EOF on our stdin ends cat.
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);

    let mut cmd = env.berth(&["run", "-i", BB, "sh", "-c", "wc -l"]);
    cmd.stdin(fs::File::open(&input).unwrap());
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2001");

    // Without -i the container's stdin is empty.
    let mut cmd = env.berth(&["run", BB, "cat"]);
    cmd.stdin(fs::File::open(&input).unwrap());
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

// ---------------------------------------------------------------- --init

#[test]
fn init_runs_the_command_below_pid_1() {
    let env = TestEnv::with_busybox();
    let out = env.ok(&["run", "--init", BB, "ps", "-o", "pid,comm"]);
    let ps_pid: Vec<&str> = out
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("ps"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ps_pid.len(), 1, "ps output:\n{out}");
    assert_ne!(
        ps_pid[0], "1",
        "the command is PID 1 despite --init:\n{out}"
    );

    // Without --init the command is PID 1.
    let out = env.ok(&["run", BB, "sh", "-c", "echo $$"]);
    assert_eq!(out, "1\n");
    // The command's exit code comes through the init; a command killed by a
    // signal (possible now that it is not PID 1) exits 128 + the signal.
    env.fails(&["run", "--init", BB, "sh", "-c", "exit 9"], 9);
    env.fails(&["run", "--init", BB, "sh", "-c", "kill -9 $$"], 137);
}

/// `ps -o pid,stat,args` inside the container: (pid, stat, args) of every
/// process but the `ps` itself.
fn container_processes(env: &TestEnv, name: &str) -> Vec<(String, String, String)> {
    env.ok(&["exec", name, "ps", "-o", "pid,stat,args"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next()?.to_string();
            let stat = f.next()?.to_string();
            let args = f.collect::<Vec<_>>().join(" ");
            (!args.starts_with("ps ")).then_some((pid, stat, args))
        })
        .collect()
}

/// Starts a container whose shell orphans a child (re-parented to PID 1) and
/// then execs `sleep`, which reaps nothing; once the orphan is in place and the
/// shell has become `sleep 1000`, lets the orphan exit.
fn run_with_orphan(env: &TestEnv, name: &str, init: bool) {
    let script = "(sh -c 'while [ ! -e /reap ]; do sleep 0.05; done' &); exec sleep 1000";
    let mut args = vec!["run", "-d", "--name", name];
    if init {
        args.push("--init");
    }
    args.extend([BB, "sh", "-c", script]);
    env.ok(&args);
    poll(
        "the orphan and `sleep 1000` in the container",
        DEADLINE,
        || {
            let procs = container_processes(env, name);
            let orphan = procs.iter().any(|(_, _, a)| a.starts_with("sh -c while"));
            let sleeper = procs.iter().any(|(_, _, a)| a == "sleep 1000");
            (orphan && sleeper).then_some(())
        },
    );
    env.ok(&["exec", name, "touch", "/reap"]);
}

#[test]
fn init_reaps_orphaned_zombies() {
    let env = TestEnv::with_busybox();
    // Control: without --init PID 1 is `sleep`, which reaps nothing: the
    // orphan stays a zombie.
    run_with_orphan(&env, "plain", false);
    poll("a zombie in the container without --init", DEADLINE, || {
        container_processes(&env, "plain")
            .iter()
            .any(|(_, stat, _)| stat.starts_with('Z'))
            .then_some(())
    });

    // With --init the orphan is reaped: it disappears altogether, leaving the
    // init (PID 1) and the command.
    run_with_orphan(&env, "init", true);
    let procs = poll("the orphan to be reaped under --init", DEADLINE, || {
        let procs = container_processes(&env, "init");
        (procs.len() == 2).then_some(procs)
    });
    assert_eq!(procs[0].0, "1", "{procs:?}");
    assert_eq!(procs[1].2, "sleep 1000", "{procs:?}");
    assert!(
        procs.iter().all(|(_, stat, _)| !stat.starts_with('Z')),
        "{procs:?}"
    );
}

// ---------------------------------------------------------------- filesystems

#[test]
fn read_only_root_and_tmpfs() {
    let env = TestEnv::with_busybox();
    let (_, stderr) = env.fails(&["run", "--read-only", BB, "touch", "/x"], 1);
    assert!(stderr.contains("Read-only file system"), "stderr: {stderr}");
    // A writable root stays writable.
    env.ok(&["run", BB, "touch", "/x"]);

    let out = env.ok(&[
        "run",
        "--read-only",
        "--tmpfs",
        "/run",
        BB,
        "sh",
        "-c",
        "echo data > /run/f && cat /run/f && grep ' /run ' /proc/mounts",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("data"));
    let mount = lines.next().unwrap_or_default();
    assert!(mount.starts_with("tmpfs /run tmpfs rw"), "mount: {out}");
    // The tmpfs is empty in every container: nothing persists.
    let out = env.ok(&["run", "--tmpfs", "/run", BB, "ls", "-A", "/run"]);
    assert_eq!(out, "");
}

#[test]
fn bind_mount_read_write_and_read_only() {
    let env = TestEnv::with_busybox();
    let host = tempfile::tempdir().unwrap();
    let spec = format!("{}:/data", host.path().display());
    env.ok(&["run", "-v", &spec, BB, "sh", "-c", "echo inside > /data/f"]);
    assert_eq!(
        fs::read_to_string(host.path().join("f")).unwrap(),
        "inside\n"
    );

    fs::write(host.path().join("from-host"), "host\n").unwrap();
    let ro = format!("{}:/data:ro", host.path().display());
    assert_eq!(
        env.ok(&["run", "-v", &ro, BB, "cat", "/data/from-host"]),
        "host\n"
    );
    let (_, stderr) = env.fails(&["run", "-v", &ro, BB, "sh", "-c", "echo x > /data/g"], 1);
    assert!(stderr.contains("Read-only file system"), "stderr: {stderr}");
    assert!(!host.path().join("g").exists());

    // A missing host directory is created, as Docker does.
    let missing = host.path().join("made/by/berth");
    let spec = format!("{}:/m", missing.display());
    env.ok(&["run", "-v", &spec, BB, "touch", "/m/x"]);
    assert!(missing.join("x").is_file());

    let v = env.inspect(env.ok(&["create", "-v", &ro, BB, "true"]).trim());
    let m = &v["Mounts"][0];
    assert_eq!(m["Type"], "bind", "{v}");
    assert_eq!(m["Source"], host.path().display().to_string(), "{v}");
    assert_eq!(m["Destination"], "/data", "{v}");
    assert_eq!(m["RW"], false, "{v}");
}

#[test]
fn named_volume_is_created_on_first_use_and_persists() {
    let env = TestEnv::with_busybox();
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    env.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "vol1:/data",
        BB,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "vol1\n");
    // Another container sees what the first wrote, even after the first is gone.
    env.ok(&["rm", "writer"]);
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "vol1:/data", BB, "cat", "/data/f"]),
        "kept\n"
    );
    let v = env.inspect(env.ok(&["create", "-v", "vol1:/data", BB, "true"]).trim());
    assert_eq!(v["Mounts"][0]["Type"], "volume", "{v}");
    assert_eq!(v["Mounts"][0]["Name"], "vol1", "{v}");
    let mountpoint = inspect_f(&env, "{{.Mountpoint}}", "vol1");
    assert_eq!(
        fs::read_to_string(Path::new(&mountpoint).join("f")).unwrap(),
        "kept\n"
    );
}

#[test]
fn volume_commands() {
    let env = TestEnv::with_busybox();
    assert_eq!(env.ok(&["volume", "create", "v2"]), "v2\n");
    // Creating it again is fine (Docker returns the existing volume).
    assert_eq!(env.ok(&["volume", "create", "v2"]), "v2\n");
    let anon = env.ok(&["volume", "create"]);
    let anon = anon.trim();
    assert!(is_full_id(anon), "anonymous volume name {anon:?}");

    let ls = env.ok(&["volume", "ls"]);
    let mut lines = ls.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["DRIVER", "VOLUME", "NAME"], "{ls}");
    let names: BTreeSet<String> = env
        .ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, BTreeSet::from(["v2".to_string(), anon.to_string()]));

    let out = env.ok(&["volume", "inspect", "v2"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Name"], "v2", "{v}");
    assert_eq!(v[0]["Driver"], "local", "{v}");
    // No labels: null, as dockerd shows a volume the docker CLI 28 made.
    assert_eq!(v[0]["Labels"], serde_json::Value::Null, "{v}");
    let mountpoint = PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());
    assert!(mountpoint.starts_with(env.root.path()), "{v}");
    assert!(mountpoint.is_dir(), "{v}");
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{.Name}}", "v2"]),
        "v2\n"
    );
    env.fails(&["volume", "inspect", "no-such-volume"], 1);

    // rm refuses while a container (even a stopped one) uses the volume.
    env.ok(&["run", "--name", "user", "-v", "v2:/data", BB, "true"]);
    let (_, stderr) = env.fails(&["volume", "rm", "v2"], 1);
    assert!(stderr.contains("in use"), "stderr: {stderr}");
    assert!(mountpoint.is_dir());
    env.ok(&["rm", "user"]);
    assert_eq!(env.ok(&["volume", "rm", "v2"]), "v2\n");
    assert!(!mountpoint.exists());
    assert_eq!(env.ok(&["volume", "ls", "-q"]), format!("{anon}\n"));
    env.fails(&["volume", "rm", "v2"], 1);
    env.fails(&["volume", "create", "bad/name"], 1);
}

// ---------------------------------------------------------------- signals

#[test]
fn stop_signal_flag() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run", "-d", "--name", "sig", "--stop-signal", "USR1", BB, "sh", "-c",
        "trap 'echo got-usr1; exit 5' USR1; trap 'echo got-term; exit 6' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    wait_for_log(&env, "sig", "ready");
    assert_eq!(inspect_f(&env, "{{.Config.StopSignal}}", "sig"), "USR1");
    let start = Instant::now();
    env.ok(&["stop", "sig"]);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        start.elapsed()
    );
    assert_eq!(inspect_f(&env, "{{.State.ExitCode}}", "sig"), "5");
    let logs = env.ok(&["logs", "sig"]);
    assert!(
        logs.contains("got-usr1") && !logs.contains("got-term"),
        "logs: {logs}"
    );

    env.fails(&["run", "--stop-signal", "NOPE", BB, "true"], 125);
}

#[test]
fn signals_to_a_foreground_run_reach_the_container() {
    let env = TestEnv::with_busybox();
    let mut cmd = env.berth(&[
        "run",
        "--name",
        "fg",
        BB,
        "sh",
        "-c",
        "trap 'echo got; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = read_in_thread(child.stderr.take().unwrap());
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for l in stdout.lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // The trap is set once "ready" is printed; the container runs.
    poll("\"ready\" from the foreground run", DEADLINE, || {
        seen.extend(lines.try_iter());
        seen.iter().any(|l| l == "ready").then_some(())
    });
    poll("the container to be running in ps", DEADLINE, || {
        (!env
            .ok(&["ps", "--filter", "name=fg", "-q"])
            .trim()
            .is_empty())
        .then_some(())
    });

    send_signal(child.id(), libc::SIGTERM);
    let st = wait_child(&mut child, "the foreground run to exit");
    let stderr = recv_text(&stderr, "berth run's stderr");
    seen.extend(lines.recv_timeout(DEADLINE).ok());
    seen.extend(lines.try_iter());
    assert_eq!(
        st.code(),
        Some(7),
        "status {st}, stdout {seen:?}, stderr {stderr}"
    );
    assert!(
        seen.iter().any(|l| l == "got"),
        "stdout {seen:?}, stderr {stderr}"
    );
    assert_eq!(inspect_f(&env, "{{.State.ExitCode}}", "fg"), "7");
}

// ---------------------------------------------------------------- restart policies

#[test]
fn restart_on_failure_gives_up_after_the_maximum() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "of",
        "--restart",
        "on-failure:2",
        BB,
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    let dir = env
        .root
        .path()
        .join("containers")
        .join(inspect_f(&env, "{{.Id}}", "of"));
    poll("on-failure:2 to give up", DEADLINE, || {
        let v = env.inspect("of");
        (v["State"]["Status"] == "exited" && !monitor_running(&dir)).then_some(())
    });
    let v = env.inspect("of");
    assert_eq!(v["RestartCount"], 2, "{v}");
    assert_eq!(v["State"]["ExitCode"], 3, "{v}");
    assert_eq!(
        v["HostConfig"]["RestartPolicy"]["Name"], "on-failure",
        "{v}"
    );
    assert_eq!(
        v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2,
        "{v}"
    );
    assert_eq!(env.ok(&["logs", "of"]), "run\nrun\nrun\n");

    // A clean exit is not a failure: no restart.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--restart",
        "on-failure",
        BB,
        "true",
    ]);
    let dir = env
        .root
        .path()
        .join("containers")
        .join(inspect_f(&env, "{{.Id}}", "ok"));
    poll(
        "the on-failure container to exit for good",
        DEADLINE,
        || (status(&env, "ok") == "exited" && !monitor_running(&dir)).then_some(()),
    );
    assert_eq!(inspect_f(&env, "{{.RestartCount}}", "ok"), "0");

    env.fails(&["run", "--rm", "--restart", "always", BB, "true"], 125);
    env.fails(&["run", "--restart", "sometimes", BB, "true"], 125);
}

#[test]
fn restart_always_then_stop_stops_for_good() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        BB,
        "sh",
        "-c",
        "echo run; sleep 0.2",
    ]);
    let dir = env
        .root
        .path()
        .join("containers")
        .join(inspect_f(&env, "{{.Id}}", "al"));
    poll("two restarts", DEADLINE, || {
        (inspect_f(&env, "{{.RestartCount}}", "al")
            .parse::<u32>()
            .unwrap_or(0)
            >= 2)
            .then_some(())
    });
    // Stop it between two runs, while the monitor waits out its back-off.
    poll("the container to be restarting", DEADLINE, || {
        (status(&env, "al") == "restarting").then_some(())
    });
    env.ok(&["stop", "-t", "1", "al"]);
    // Once stop returns the container is stopped, not about to come back.
    let v = env.inspect("al");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["Running"], false, "{v}");
    poll("the monitor to exit after stop", DEADLINE, || {
        (!monitor_running(&dir)).then_some(())
    });
    let count = inspect_f(&env, "{{.RestartCount}}", "al");
    assert_eq!(status(&env, "al"), "exited");
    assert_eq!(inspect_f(&env, "{{.RestartCount}}", "al"), count);
    assert_eq!(env.ok(&["ps", "-q"]), "");

    // start brings it back, with the policy in force again.
    env.ok(&["start", "al"]);
    let before: u32 = count.parse().unwrap();
    poll("a restart after start", DEADLINE, || {
        (inspect_f(&env, "{{.RestartCount}}", "al")
            .parse::<u32>()
            .unwrap_or(0)
            > before)
            .then_some(())
    });
    env.ok(&["stop", "-t", "1", "al"]);
    assert_eq!(status(&env, "al"), "exited");
}

// ---------------------------------------------------------------- logs

#[test]
fn log_opts_put_labels_env_and_tag_on_each_entry() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "la",
        "-l",
        "app=web",
        "-l",
        "zz=1",
        "-l",
        "other=x",
        "-e",
        "FOO=bar",
        "-e",
        "SP=a b",
        "--log-opt",
        "labels=app,zz",
        "--log-opt",
        "env=FOO,SP",
        "--log-opt",
        "tag={{.Name}}/{{.ID}}",
        BB,
        "sh",
        "-c",
        "echo hello; echo err >&2",
    ]);
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "la"]);
    let short = &id.trim()[..12];
    // dockerd 20.10's json-file lines and `logs --details` for the same run.
    let log =
        std::fs::read_to_string(env.ok(&["inspect", "-f", "{{.LogPath}}", "la"]).trim()).unwrap();
    let attrs =
        format!(r#""attrs":{{"FOO":"bar","SP":"a b","app":"web","tag":"la/{short}","zz":"1"}}"#);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    for (line, (text, stream)) in lines.iter().zip([("hello", "stdout"), ("err", "stderr")]) {
        let want = format!(r#"{{"log":"{text}\n","stream":"{stream}",{attrs},"time":""#);
        assert!(line.starts_with(&want), "{line}\n{want}");
    }
    let details = format!("FOO=bar,SP=a+b,app=web,tag=la%2F{short},zz=1");
    let out = env.run(&["logs", "--details", "la"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{details} hello\n"));
    assert_eq!(text(&out.stderr), format!("{details} err\n"));
    // A tag template names fields Docker's logger has, in Go's words
    // (refused at create, as berth refuses every bad log option there).
    let (_, err) = env.fails(&["create", "--log-opt", "tag={{.Foo}}", BB, "true"], 1);
    assert!(
        err.contains("failed to initialize logging driver: template: log-tag:1:2: executing \"log-tag\" at <.Foo>: can't evaluate field Foo in type *logger.Info"),
        "{err}"
    );
}

#[test]
fn log_opts_rotate_the_json_log() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        BB,
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let id = id.trim();
    assert_eq!(env.ok(&["wait", id]), "0\n");
    let dir = env.root.path().join("containers").join(id);
    let live = dir.join(format!("{id}-json.log"));
    let rotated = dir.join(format!("{id}-json.log.1"));
    assert!(live.is_file(), "no {}", live.display());
    assert!(rotated.is_file(), "no {}", rotated.display());
    assert!(
        !dir.join(format!("{id}-json.log.2")).exists(),
        "max-file=2 kept a third file"
    );
    for f in [&live, &rotated] {
        // As Docker's json-file driver: 1k is 1,000 bytes, and a file is
        // rotated once it has reached that (so it ends within one entry past).
        let text = fs::read_to_string(f).unwrap();
        let longest = text.lines().map(|l| l.len() + 1).max().unwrap_or(0);
        let len = text.len();
        assert!(len < 1000 + longest, "{} is {len} bytes", f.display());
        if f == &rotated {
            assert!(len >= 1000, "{} was rotated at {len} bytes", f.display());
        }
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["stream"], "stdout", "{l}");
        }
    }
    // logs shows what is left, in order, ending with the last line.
    let logs = env.ok(&["logs", id]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.last(), Some(&"line-299"));
    let nums: Vec<u32> = lines
        .iter()
        .map(|l| l.trim_start_matches("line-").parse().unwrap())
        .collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{lines:?}");
    assert!(nums[0] > 0, "nothing was rotated away: {lines:?}");

    env.fails(&["run", "--log-opt", "max-size=lots", BB, "true"], 125);
    env.fails(&["run", "--log-opt", "nope=1", BB, "true"], 125);
}

// ---------------------------------------------------------------- concurrency

#[test]
fn twenty_parallel_detached_runs() {
    let env = TestEnv::with_busybox();
    let ids: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    env.ok(&["run", "-d", BB, "sleep", "1000"])
                        .trim()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        assert!(is_full_id(id), "not an ID: {id:?}");
    }
    let ids: BTreeSet<String> = ids.iter().map(|id| id[..12].to_string()).collect();
    assert_eq!(ids.len(), 20);

    let listed: BTreeSet<String> = env.ok(&["ps", "-q"]).lines().map(str::to_owned).collect();
    assert_eq!(listed, ids);
    let names: BTreeSet<String> = env
        .ok(&["ps", "--format", "{{.Names}} {{.State}}"])
        .lines()
        .map(|l| {
            let (name, state) = l.split_once(' ').unwrap();
            assert_eq!(state, "running", "{l}");
            name.to_string()
        })
        .collect();
    assert_eq!(names.len(), 20, "{names:?}");
}

/// Docker's flag syntax: every boolean flag takes `=true|false` (Go's
/// ParseBool values), a bad value and an unknown flag are Docker's words
/// with exit 125, and the container's own arguments are never rewritten.
#[test]
fn boolean_flags_take_values_and_unknown_flags_are_dockers_words() {
    let env = TestEnv::with_busybox();
    // --rm=false keeps the container; --rm=true removes it.
    env.ok(&["run", "--rm=false", "--name", "kept", BB, "true"]);
    assert_eq!(status(&env, "kept"), "exited");
    env.ok(&["run", "--rm=true", "--name", "gone", BB, "true"]);
    env.fails(&["inspect", "gone"], 1);
    // -t=false: no terminal; --init=1 / --read-only=T: on.
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-t=false",
            BB,
            "sh",
            "-c",
            "[ -t 1 ] || echo no-tty"
        ]),
        "no-tty\n"
    );
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--init=1",
            BB,
            "sh",
            "-c",
            "cat /proc/1/cmdline | head -c 10"
        ]),
        "berth-init"
    );
    let out = env.run(&["run", "--rm", "--read-only=T", BB, "touch", "/x"]);
    assert!(!out.status.success());
    // After the image, `--all=false` is the container's.
    assert_eq!(
        env.ok(&["run", "--rm", BB, "echo", "--all=false", "-t=false"]),
        "--all=false -t=false\n"
    );
    env.ok(&["run", "-d", "--name", "box", BB, "sleep", "1000"]);
    assert_eq!(
        env.ok(&[
            "exec",
            "--tty=false",
            "box",
            "sh",
            "-c",
            "[ -t 1 ] || echo no"
        ]),
        "no\n"
    );
    assert_eq!(env.ok(&["ps", "-q", "-a=false"]).lines().count(), 1);

    let (_, err) = env.fails(&["run", "--rm=maybe", BB, "true"], 125);
    assert_eq!(
        err,
        "invalid argument \"maybe\" for \"--rm\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth run --help' for more information\n"
    );
    let (_, err) = env.fails(&["run", "--bogus", BB, "true"], 125);
    assert_eq!(err, "unknown flag: --bogus\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth run --help' for more information\n");
    let (_, err) = env.fails(&["container", "ls", "--bogus"], 125);
    assert_eq!(
        err,
        "unknown flag: --bogus\n\nUsage:  berth container ls [OPTIONS]\n\nRun 'berth container ls --help' for more information\n"
    );
}

/// `logs --since/--until` take what Docker takes (RFC 3339, partial dates,
/// Unix times with a fraction, Go durations); `--tail -1` is everything;
/// `-e =x`, `-l =x` and env-file lines Docker rejects are errors in its words.
#[test]
fn logs_times_tail_and_environment_checks_are_dockers() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "talk",
        BB,
        "sh",
        "-c",
        "echo one; echo two",
    ]);
    let all = "one\ntwo\n";
    for args in [
        vec!["logs", "--tail", "-1", "talk"],
        vec!["logs", "--since", "1h", "talk"],
        vec!["logs", "--since", "2000-01-01", "talk"],
        vec!["logs", "--since", "2000-01-01T10:00", "talk"],
        vec!["logs", "--since", "946684800.5", "talk"],
        vec!["logs", "--until", "2100-01-01T00:00:00Z", "talk"],
        vec!["logs", "--until", "-1h", "talk"],
    ] {
        assert_eq!(env.ok(&args), all, "{args:?}");
    }
    for args in [
        vec!["logs", "--since", "2100-01-01", "talk"],
        vec!["logs", "--until", "2000-01-01", "talk"],
        vec!["logs", "--until", "1h", "talk"],
        vec!["logs", "--tail", "0", "talk"],
    ] {
        assert_eq!(env.ok(&args), "", "{args:?}");
    }
    // --details: (no attributes) a space before each line, as Docker's.
    assert_eq!(env.ok(&["logs", "--details", "talk"]), " one\n two\n");
    let (_, err) = env.fails(&["logs", "--since", "10parsecs", "talk"], 1);
    assert!(
        err.contains(
            "invalid value for \"since\": failed to parse value as time or duration: \"10parsecs\""
        ),
        "{err}"
    );

    let (_, err) = env.fails(&["run", "--rm", "-e", "=x", BB, "true"], 125);
    assert!(err.contains("invalid environment variable: =x"), "{err}");
    let (_, err) = env.fails(&["run", "--rm", "-l", "=x", BB, "true"], 125);
    assert!(err.contains("invalid label '=x': empty name"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("env");
    for (text, why) in [
        ("A B=1\n", "variable 'A B' contains whitespaces"),
        ("=1\n", "no variable name on line '=1'"),
    ] {
        std::fs::write(&f, text).unwrap();
        let (_, err) = env.fails(
            &["run", "--rm", "--env-file", f.to_str().unwrap(), BB, "true"],
            125,
        );
        assert!(
            err.contains(&format!("invalid env file ({}): {why}", f.display())),
            "{err}"
        );
    }
    assert_eq!(
        env.ok(&["ps", "-aq"]).lines().count(),
        1,
        "a refused run left a container"
    );
}

/// `-v` modes as Docker reads them: `z`/`Z`, `cached`/`delegated`,
/// `rprivate` accepted (no-ops here), `ro,z` read-only, `nocopy` for volumes
/// only, doubled or unknown kinds refused with `invalid mode: …`.
#[test]
fn volume_modes_are_dockers() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let opts = |mode: &str| {
        env.ok(&[
            "run",
            "--rm",
            "-v",
            &format!("{d}:/x:{mode}"),
            BB,
            "sh",
            "-c",
            "grep ' /x ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1",
        ])
    };
    assert_eq!(opts("ro,z"), "ro\n");
    for m in [
        "z",
        "Z",
        "cached",
        "delegated",
        "consistent",
        "rprivate",
        "rw,Z,cached",
    ] {
        assert_eq!(opts(m), "rw\n", "{m}");
    }
    env.ok(&["run", "--rm", "-v", "vol1:/x:nocopy", BB, "true"]);
    for (mode, err) in [
        ("bogus", "invalid mode: bogus"),
        ("ro,rw", "invalid mode: ro,rw"),
        ("z,Z", "invalid mode: z,Z"),
        ("nocopy", "field VolumeOptions must not be specified"),
    ] {
        let (_, e) = env.fails(
            &["run", "--rm", "-v", &format!("{d}:/x:{mode}"), BB, "true"],
            125,
        );
        assert!(e.contains(err), "{mode}: {e}");
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// `volume create -d/--label`, `volume ls -f dangling=|name=|label=|driver=`
/// and `volume prune [-a] [-f]` (Docker ≥ 23: anonymous ones unless -a), in
/// Docker's words.
#[test]
fn volume_labels_filters_and_prune() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "volume", "create", "--label", "tier=db", "--label", "x", "dbvol",
    ]);
    env.ok(&["volume", "create", "spare"]);
    env.ok(&[
        "run", "-d", "--name", "user", "-v", "dbvol:/d", "-v", "/anon", BB, "sleep", "1000",
    ]);
    env.ok(&["run", "--name", "gone", "-v", "/anon2", BB, "true"]);
    env.ok(&["rm", "gone"]);
    let ls = |f: &str| env.ok(&["volume", "ls", "-q", "-f", f]);
    assert_eq!(ls("label=tier=db"), "dbvol\n");
    assert_eq!(ls("label=x"), "dbvol\n");
    assert_eq!(ls("name=spa"), "spare\n");
    assert_eq!(ls("driver=local").lines().count(), 4);
    let dangling = ls("dangling=true");
    assert!(
        dangling.contains("spare\n") && !dangling.contains("dbvol"),
        "{dangling}"
    );
    assert_eq!(dangling.lines().count(), 2, "{dangling}");
    let (_, err) = env.fails(&["volume", "ls", "-f", "bogus=1"], 1);
    assert!(err.contains("Invalid filter 'bogus'"), "{err}");
    let (_, err) = env.fails(&["volume", "create", "-d", "nfsx", "v9"], 1);
    assert!(
        err.contains("create v9: error looking up volume plugin nfsx: plugin \"nfsx\" not found"),
        "{err}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["volume", "inspect", "dbvol"])).unwrap();
    assert_eq!(v[0]["Labels"], serde_json::json!({"tier": "db", "x": ""}));

    // No: nothing goes. Without -a: the unused anonymous one only.
    let mut no = env.berth(&["volume", "prune"]);
    no.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = no.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(
        "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
    ));
    assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 4);
    let out = env.ok(&["volume", "prune", "-f"]);
    assert!(out.starts_with("Deleted Volumes:\n"), "{out}");
    assert_eq!(out.lines().nth(1).map(str::len), Some(64), "{out}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 3);
    let out = env.ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("spare\n") && !out.contains("dbvol"), "{out}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 2);
}

/// `--cidfile` (refused when the file exists, the full ID written) and
/// `--label-file` (env-file lines; a bare name only with our variable).
#[test]
fn cidfile_and_label_file() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let cid = dir.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    let id = env.ok(&["create", "--cidfile", cid_s, BB, "true"]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let (_, err) = env.fails(&["create", "--cidfile", cid_s, BB, "true"], 1);
    assert!(
        err.contains(
            "container ID file found, make sure the other container isn't running or delete"
        ),
        "{err}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
    let lf = dir.path().join("labels");
    std::fs::write(&lf, "a=1\n# c\n\nb\nFROM_ENV\n").unwrap();
    let mut cmd = env.berth(&[
        "create",
        "--label-file",
        lf.to_str().unwrap(),
        "-l",
        "c=3",
        "--name",
        "lab",
        BB,
        "true",
    ]);
    cmd.env("FROM_ENV", "yes");
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success());
    assert_eq!(
        inspect_f(&env, "{{json .Config.Labels}}", "lab").trim(),
        r#"{"FROM_ENV":"yes","a":"1","c":"3"}"#
    );
}

/// `ps -s`: the SIZE column, `10B (virtual 1.99MB)` as Docker's (and
/// without -s when the format shows `.Size`).
#[test]
fn ps_size_shows_the_writable_layer_and_the_whole() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "sz",
        BB,
        "sh",
        "-c",
        "echo 123456789 > /f; sleep 1000",
    ]);
    let image = env.ok(&["images", "--format", "{{.Size}}", BB]);
    let size = poll("the write to show", Duration::from_secs(20), || {
        let s = env.ok(&["ps", "-s", "--format", "{{.Size}}"]);
        s.starts_with("10B ").then_some(s)
    });
    assert_eq!(size, format!("10B (virtual {})\n", image.trim()));
    let table = env.ok(&["ps", "-s"]);
    assert!(
        table.lines().next().is_some_and(|h| h.ends_with("SIZE")),
        "{table}"
    );
    // A format that shows the size measures it without -s, as docker's.
    assert_eq!(env.ok(&["ps", "--format", "{{.Size}}"]), size);
}

/// `ps` COMMAND joins the arguments as Docker's daemon does: one with
/// whitespace in single quotes, the rest as they are; then Go-quoted.
#[test]
fn ps_command_is_quoted_as_dockers() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "q3",
        BB,
        "sh",
        "-c",
        "sleep 100",
        "a\"b",
        "x=1",
        "$H",
        "",
        "it's",
    ]);
    assert_eq!(
        env.ok(&["ps", "--no-trunc", "--format", "{{.Command}}"]),
        "\"sh -c 'sleep 100' a\\\"b x=1 $H  it's\"\n"
    );
}

/// `--group-add` (names from the container's /etc/group, or numbers) and
/// `--domainname`, as Docker's, and in `inspect`.
#[test]
fn group_add_and_domainname() {
    let env = TestEnv::with_busybox();
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-u",
            "1000",
            "--group-add",
            "1234",
            "--group-add",
            "root",
            "--domainname",
            "example.org",
            BB,
            "sh",
            "-c",
            "id -G; cat /proc/sys/kernel/domainname",
        ]),
        // The primary group, then the others (root sorts first).
        "1000 0 1234\nexample.org\n"
    );
    let (_, err) = env.fails(
        &["run", "--rm", "--group-add", "nosuchgrp", BB, "true"],
        125,
    );
    assert!(
        err.contains("Unable to find group nosuchgrp: no matching entries in group file"),
        "{err}"
    );
    env.ok(&[
        "create",
        "--name",
        "ga",
        "--group-add",
        "7",
        "--domainname",
        "d.x",
        BB,
        "true",
    ]);
    assert_eq!(
        inspect_f(
            &env,
            "{{json .HostConfig.GroupAdd}} {{.Config.Domainname}}",
            "ga"
        )
        .trim(),
        "[\"7\"] d.x"
    );
    env.ok(&["create", "--name", "plain", BB, "true"]);
    assert_eq!(
        inspect_f(&env, "{{json .HostConfig.GroupAdd}}", "plain").trim(),
        "null"
    );
}

/// `--pid/--ipc/--uts/--cgroupns host` share the host's namespace (the same
/// /proc/self/ns links as ours), Docker's words for bad values, and inspect.
#[test]
fn host_namespace_options() {
    let env = TestEnv::with_busybox();
    let ours = |ns: &str| {
        std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .unwrap()
            .display()
            .to_string()
    };
    for (flag, ns) in [
        ("--pid", "pid"),
        ("--ipc", "ipc"),
        ("--uts", "uts"),
        ("--cgroupns", "cgroup"),
    ] {
        let inside = env.ok(&[
            "run",
            "--rm",
            flag,
            "host",
            BB,
            "readlink",
            &format!("/proc/self/ns/{ns}"),
        ]);
        assert_eq!(inside.trim(), ours(ns), "{flag} host");
        let own = env.ok(&[
            "run",
            "--rm",
            BB,
            "readlink",
            &format!("/proc/self/ns/{ns}"),
        ]);
        assert_ne!(own.trim(), ours(ns), "{ns} is shared by default");
    }
    assert_eq!(
        env.ok(&["run", "--rm", "--uts", "host", BB, "hostname"]),
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap()
    );
    for (opts, err) in [
        (["--pid", "bogus"], "--pid: invalid PID mode"),
        (["--ipc", "bogus"], "Invalid IPC mode: bogus"),
        (["--uts", "bogus"], "--uts: invalid UTS mode"),
        (["--cgroupns", "bogus"], "--cgroupns: invalid CGROUP mode"),
        (["--userns", "bogus"], "--userns: invalid USER mode"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(opts);
        args.extend([BB, "true"]);
        let (_, e) = env.fails(&args, 125);
        assert!(e.contains(err), "{opts:?}: {e}");
    }
    env.ok(&[
        "create",
        "--name",
        "nsx",
        "--pid",
        "host",
        "--ipc",
        "host",
        "--uts",
        "host",
        "--cgroupns",
        "host",
        BB,
        "true",
    ]);
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.PidMode}}|{{.HostConfig.IpcMode}}|{{.HostConfig.UTSMode}}|{{.HostConfig.CgroupnsMode}}", "nsx").trim(),
        "host|host|host|host"
    );
    env.ok(&["create", "--name", "nsy", BB, "true"]);
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.PidMode}}|{{.HostConfig.IpcMode}}|{{.HostConfig.UTSMode}}|{{.HostConfig.CgroupnsMode}}", "nsy").trim(),
        "|private||private"
    );
}

/// `--sysctl`: namespaced settings land in the container's own namespace
/// (never the host's); others, and net.* with the host's network, are
/// refused in Docker's (and runc's) words.
#[test]
fn sysctls_are_namespaced_only() {
    let env = TestEnv::with_busybox();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--sysctl",
            "kernel.shmmax=1000000",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            BB,
            "sh",
            "-c",
            "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward"
        ]),
        "1000000\n1\n"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    for bad in [
        "vm.swappiness=10",
        "bogus",
        "net.../x=1",
        "kernel.hostname=x",
    ] {
        let (_, err) = env.fails(&["run", "--rm", "--sysctl", bad, BB, "true"], 125);
        assert!(
            err.contains(&format!("sysctl '{bad}' is not whitelisted")),
            "{bad}: {err}"
        );
    }
    let (_, err) = env.fails(
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            BB,
            "true",
        ],
        125,
    );
    assert!(
        err.contains("sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
        "{err}"
    );
    let (_, err) = env.fails(
        &[
            "run",
            "--rm",
            "--ipc",
            "host",
            "--sysctl",
            "kernel.shmmax=1",
            BB,
            "true",
        ],
        125,
    );
    assert!(err.contains("not allowed in host IPC namespace"), "{err}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
}
