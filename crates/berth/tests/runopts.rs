#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

// `run`/`create` options and top-level commands as Docker's: -a/--attach,
// --log-driver/--log-opt, --platform, --runtime, `help`, `completion`.
// Reference: Docker 20.10 (daemon and client) and the docker 28 client on
// this machine.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use common::*;

/// `berth ARGS...` with `input` on its stdin.
fn with_stdin(env: &TestEnv, args: &[&str], input: &str) -> std::process::Output {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(input.as_bytes()).unwrap();
    use std::io::Seek;
    f.rewind().unwrap();
    let mut cmd = env.berth(args);
    cmd.stdin(Stdio::from(f));
    output_with_timeout(cmd, COMMAND_TIMEOUT)
}

/// No container exists (a refused command created nothing).
fn no_containers(env: &TestEnv) {
    assert_eq!(env.ok(&["ps", "-aq"]), "", "a container was left behind");
}

/// `{{.Config.AttachStdin}} … {{.Config.StdinOnce}}` of a container.
fn attach_config(env: &TestEnv, name: &str) -> String {
    inspect_f(
        env,
        "{{.Config.AttachStdin}} {{.Config.AttachStdout}} {{.Config.AttachStderr}} {{.Config.OpenStdin}} {{.Config.StdinOnce}}",
        name,
    )
}

const OUT_ERR: &str = "echo o; echo e >&2";

// ---------------------------------------------------------------- -a / --attach

#[test]
fn attach_chooses_the_streams_run_shows() {
    let env = TestEnv::with_busybox();
    let out = run_sh(&env, &["-a", "stdout"], OUT_ERR);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("o\n".into(), "".into())
    );

    // Case does not matter, as Docker's.
    let out = run_sh(&env, &["-a", "STDERR"], OUT_ERR);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("".into(), "e\n".into())
    );

    let out = run_sh(&env, &["-a", "StdOut", "--attach", "stderr"], OUT_ERR);
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("o\n".into(), "e\n".into())
    );

    // The exit code is the container's whatever is attached.
    let out = run_sh(&env, &["-a", "stdout"], "echo o; exit 3");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn attach_stdin_is_read_only_with_i() {
    let env = TestEnv::with_busybox();
    let script = "cat; echo done";
    // -i -a stdin: input goes in, nothing comes out.
    let out = with_stdin(
        &env,
        &["run", "--rm", "-i", "-a", "stdin", BB, "sh", "-c", script],
        "hi\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "");
    let out = with_stdin(
        &env,
        &[
            "run", "--rm", "-i", "-a", "stdin", "-a", "stdout", BB, "sh", "-c", script,
        ],
        "hi\n",
    );
    assert_eq!(text(&out.stdout), "hi\ndone\n", "{out:?}");
    // -i alone attaches stdout (and stderr) too.
    let out = with_stdin(
        &env,
        &["run", "--rm", "-i", "-a", "stdout", BB, "sh", "-c", script],
        "hi\n",
    );
    assert_eq!(text(&out.stdout), "hi\ndone\n", "{out:?}");
    // -a stdin without -i: the container's stdin is closed; nothing hangs.
    let out = with_stdin(
        &env,
        &["run", "--rm", "-a", "stdin", BB, "sh", "-c", script],
        "hi\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn attach_is_recorded_as_docker_records_it() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "plain", BB, "true"]);
    assert_eq!(attach_config(&env, "plain"), "false true true false false");
    env.ok(&["create", "--name", "in", "-a", "stdin", BB, "true"]);
    assert_eq!(attach_config(&env, "in"), "true false false false false");
    env.ok(&["create", "--name", "iin", "-i", "-a", "stdin", BB, "true"]);
    assert_eq!(attach_config(&env, "iin"), "true false false true true");
    // -i attaches stdin whatever -a says.
    env.ok(&["create", "--name", "iout", "-i", "-a", "stdout", BB, "true"]);
    assert_eq!(attach_config(&env, "iout"), "true true false true true");
    env.ok(&["run", "--name", "ran", "-a", "stderr", BB, "true"]);
    assert_eq!(attach_config(&env, "ran"), "false false true false false");
    env.ok(&["run", "-d", "--name", "det", "-i", BB, "true"]);
    assert_eq!(attach_config(&env, "det"), "false false false true false");
}

#[test]
fn attach_refusals_are_the_docker_clis() {
    let env = TestEnv::with_busybox();
    for cmd in ["run", "create"] {
        for v in ["bogus", ""] {
            let (out, err) = env.fails(&[cmd, "-a", v, BB, "true"], 125);
            assert_eq!(out, "");
            let first = format!("invalid argument \"{v}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR\n");
            assert!(err.starts_with(&first), "{err}");
            assert!(err.contains(&format!("'berth {cmd} --help'")), "{err}");
        }
    }
    for a in [["-d", "-a", "stdout"], ["-a", "stdin", "-d"]] {
        let mut args = vec!["run"];
        args.extend_from_slice(&a);
        args.extend_from_slice(&[BB, "true"]);
        let (out, err) = env.fails(&args, 1);
        // The docker 28 CLI's words (20.10's: "Conflicting options: -a and -d").
        assert_eq!(
            (out.as_str(), err.as_str()),
            (
                "",
                "conflicting options: cannot specify both --attach and --detach\n"
            )
        );
    }
    no_containers(&env);
}

// ---------------------------------------------------------------- --log-driver / --log-opt

#[test]
fn log_driver_none_keeps_nothing_and_logs_refuses() {
    let env = TestEnv::with_busybox();
    let out = env.ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        BB,
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n", "the attached run still shows the output");
    let (out, err) = env.fails(&["logs", "quiet"], 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "Error: configured logging driver does not support reading\n"
    );
    let v = env.inspect("quiet");
    assert_eq!(
        v["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "none", "Config": {}})
    );
    assert_eq!(v["LogPath"], "");
    let id = v["Id"].as_str().unwrap();
    let dir = env.root.path().join("containers").join(id);
    let logs: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("log") && n != "lock")
        .collect();
    assert!(logs.is_empty(), "log files written: {logs:?}");
}

#[test]
fn log_driver_local_and_options_are_recorded() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "loc",
        "--log-driver",
        "local",
        BB,
        "echo",
        "hi",
    ]);
    assert_eq!(env.ok(&["logs", "loc"]), "hi\n");
    let v = env.inspect("loc");
    assert_eq!(
        v["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "local", "Config": {}})
    );
    assert_eq!(v["LogPath"], "", "Docker shows no path for local");

    env.ok(&[
        "run",
        "--name",
        "tagged",
        "--log-opt",
        "tag=mytag",
        "--log-opt",
        "max-size=10k",
        BB,
        "true",
    ]);
    let v = env.inspect("tagged");
    assert_eq!(
        v["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "10k", "tag": "mytag"}})
    );
    assert!(v["LogPath"].as_str().unwrap().ends_with("-json.log"));
}

#[test]
fn log_driver_refusals_are_dockers() {
    let env = TestEnv::with_busybox();
    let daemon = |args: &[&str], msg: &str| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[BB, "true"]);
        let (_, err) = env.fails(&a, 125);
        assert_eq!(
            err,
            format!("berth: {msg}\n\nRun 'berth run --help' for more information\n"),
            "{args:?}"
        );
        a[0] = "create";
        a.remove(1);
        let (_, err) = env.fails(&a, 1);
        assert_eq!(err, format!("Error: {msg}\n"), "{args:?}");
    };
    daemon(
        &["--log-driver", "syslog"],
        "error looking up logging plugin syslog: plugin \"syslog\" not found",
    );
    daemon(
        &["--log-opt", "bogus=1"],
        "unknown log opt 'bogus' for json-file log driver",
    );
    daemon(
        &["--log-opt", "bogus"],
        "unknown log opt 'bogus' for json-file log driver",
    );
    daemon(
        &["--log-driver", "local", "--log-opt", "tag=x"],
        "unknown log opt 'tag' for log driver local",
    );
    daemon(
        &["--log-opt", "max-size=abc"],
        "failed to initialize logging driver: invalid size: 'abc'",
    );
    daemon(
        &["--log-opt", "max-size=0"],
        "failed to initialize logging driver: max-size must be a positive number",
    );
    daemon(
        &["--log-opt", "max-file=x"],
        "failed to initialize logging driver: strconv.Atoi: parsing \"x\": invalid syntax",
    );
    daemon(
        &["--log-opt", "max-file=0"],
        "failed to initialize logging driver: max-file cannot be less than 1",
    );
    // The docker CLI's own check, 125 for create too.
    for cmd in ["run", "create"] {
        let (_, err) = env.fails(
            &[
                cmd,
                "--log-driver",
                "none",
                "--log-opt",
                "tag=x",
                BB,
                "true",
            ],
            125,
        );
        assert!(
            err.starts_with("berth: invalid logging opts for driver none"),
            "{err}"
        );
        assert!(err.contains(&format!("'berth {cmd} --help'")), "{err}");
    }
    no_containers(&env);
}

#[test]
fn max_size_counts_as_dockers_json_file_driver() {
    // Docker: max-size=10k is 10,000 bytes, and a file is rotated before the
    // entry that follows the one that took it to 10,000 or more — so every
    // rotated file holds at least 10,000 bytes and less than 10,000 plus
    // one entry.
    let env = TestEnv::with_busybox();
    let id = env.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        BB,
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxx; i=$((i+1)); done",
    ]);
    let id = id.trim();
    assert_eq!(env.ok(&["wait", id]), "0\n");
    let dir = env.root.path().join("containers").join(id);
    for n in [1, 2] {
        let f = dir.join(format!("{id}-json.log.{n}"));
        let data = fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let longest = data.lines().map(|l| l.len() + 1).max().unwrap();
        let len = data.len();
        assert!(
            (10_000..10_000 + longest).contains(&len),
            "{} holds {len} bytes (entries up to {longest})",
            f.display()
        );
    }
    assert!(
        !dir.join(format!("{id}-json.log.3")).exists(),
        "max-file=3 kept a fourth file"
    );
}

// ---------------------------------------------------------------- --platform

/// The Go name of the host's architecture, and one that is not the host's.
fn arches() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "arm64"),
        "aarch64" => ("arm64", "amd64"),
        other => panic!("no test platform for {other}"),
    }
}

#[test]
fn platform_of_the_host_is_accepted_in_dockers_forms() {
    let env = TestEnv::with_busybox();
    let (host, _) = arches();
    let upper = format!("LINUX/{}", host.to_uppercase());
    let full = format!("linux/{host}");
    for p in ["linux", "Linux", host, full.as_str(), upper.as_str(), ""] {
        assert_eq!(
            env.ok(&["run", "--rm", "--platform", p, BB, "echo", "hi"]),
            "hi\n",
            "{p}"
        );
    }
    if host == "amd64" {
        for p in ["linux/x86_64", "linux/amd64/v2", "x86_64"] {
            assert_eq!(
                env.ok(&["run", "--rm", "--platform", p, BB, "echo", "hi"]),
                "hi\n",
                "{p}"
            );
        }
    }
}

#[test]
fn platform_of_another_kind_is_refused_as_docker_refuses_it() {
    let env = TestEnv::with_busybox();
    let (host, other) = arches();
    let want = format!("linux/{other}");
    let msg = format!(
        "image with reference bb was found but does not match the specified platform: wanted {want}, actual: linux/{host}"
    );
    // Docker's CLI takes it as missing and pulls: from Docker Hub, which
    // the tests reach only through a closed proxy.
    let pull_failed = "Get \"https://registry-1.docker.io/v2/\": connect: connection refused";
    let (_, err) = env.fails(&["run", "--rm", "--platform", &want, BB, "true"], 125);
    assert_eq!(
        err,
        format!("Unable to find image 'bb:latest' locally\nberth: {pull_failed}\n\nRun 'berth run --help' for more information\n")
    );
    let (_, err) = env.fails(&["create", "--platform", &want, BB, "true"], 1);
    assert_eq!(
        err,
        format!("Unable to find image 'bb:latest' locally\nError: {pull_failed}\n")
    );
    // Without the pull, the mismatch itself.
    let (_, err) = env.fails(
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            "--platform",
            &want,
            BB,
            "true",
        ],
        125,
    );
    assert_eq!(
        err,
        format!("Unable to find image 'bb:latest' locally\nberth: {msg}\n\nRun 'berth run --help' for more information\n")
    );
    let (_, err) = env.fails(&["run", "--rm", "--platform", "bogus", BB, "true"], 125);
    assert_eq!(
        err,
        "berth: error parsing specified platform: \"bogus\": unknown operating system or architecture: invalid argument\n\nRun 'berth run --help' for more information\n"
    );
    let (_, err) = env.fails(
        &["run", "--rm", "--platform", "bogus/x/y/z", BB, "true"],
        125,
    );
    assert_eq!(
        err,
        "berth: error parsing specified platform: \"bogus/x/y/z\": cannot parse platform specifier: invalid argument\n\nRun 'berth run --help' for more information\n"
    );
    no_containers(&env);
}

#[test]
fn import_records_the_platform_it_is_given() {
    let env = TestEnv::with_busybox();
    let (host, other) = arches();
    let tar = busybox_tar();
    let tar = tar.to_str().unwrap();
    let want = format!("linux/{other}");
    env.ok(&["import", "--platform", &want, tar, "foreign"]);
    let v = env.inspect_image("foreign");
    assert_eq!(
        (v["Os"].as_str(), v["Architecture"].as_str()),
        (Some("linux"), Some(other))
    );
    env.ok(&["run", "--rm", "--platform", &want, "foreign", "true"]);
    let host_p = format!("linux/{host}");
    env.fails(
        &["run", "--rm", "--platform", &host_p, "foreign", "true"],
        125,
    );

    let (_, err) = env.fails(&["import", "--platform", "windows", tar, "win"], 1);
    assert_eq!(err, "Error: operating system is not supported\n");
    let (_, err) = env.fails(&["import", "--platform", "bogus", tar, "x"], 1);
    assert_eq!(
        err,
        "Error: \"bogus\": unknown operating system or architecture: invalid argument\n"
    );
    env.fails(&["image", "inspect", "win"], 1);
}

// ---------------------------------------------------------------- --runtime

#[test]
fn runtime_takes_the_default_names_only() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "dflt", BB, "true"]);
    env.ok(&["create", "--name", "runc", "--runtime", "runc", BB, "true"]);
    env.ok(&["create", "--name", "own", "--runtime", "berth", BB, "true"]);
    for (n, want) in [("dflt", "runc"), ("runc", "runc"), ("own", "berth")] {
        assert_eq!(inspect_f(&env, "{{.HostConfig.Runtime}}", n), want, "{n}");
    }
    assert_eq!(
        env.ok(&["run", "--rm", "--runtime", "runc", BB, "echo", "hi"]),
        "hi\n"
    );
    env.ok(&["rm", "dflt", "runc", "own"]);

    let (_, err) = env.fails(&["run", "--rm", "--runtime", "crun", BB, "true"], 125);
    assert_eq!(
        err,
        "berth: Unknown runtime specified crun\n\nRun 'berth run --help' for more information\n"
    );
    let (_, err) = env.fails(&["create", "--runtime", "RUNC", BB, "true"], 1);
    assert_eq!(err, "Error: Unknown runtime specified RUNC\n");
    no_containers(&env);
}

// ---------------------------------------------------------------- help, completion

#[test]
fn help_command_is_the_commands_help() {
    let env = TestEnv::new();
    for topic in [
        &["run"][..],
        &["container", "ls"],
        &["volume", "create"],
        &[],
    ] {
        let mut help = vec!["help"];
        help.extend_from_slice(topic);
        let mut flag = topic.to_vec();
        flag.push("--help");
        let a = env.ok(&help);
        assert!(a.contains("Usage: berth"), "{a}");
        assert_eq!(a, env.ok(&flag), "{topic:?}");
    }
    let (out, err) = env.fails(&["help", "nosuch"], 1);
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("", "unknown help topic: nosuch\n")
    );
    let (_, err) = env.fails(&["help", "container", "nosuch", "x"], 1);
    assert_eq!(err, "unknown help topic: nosuch x\n");
    let (_, err) = env.fails(&["help", "run", "foo"], 1);
    assert_eq!(err, "unknown help topic: foo\n");
}

#[test]
fn completion_scripts_for_each_shell() {
    let env = TestEnv::new();
    let bash = env.ok(&["completion", "bash"]);
    assert!(bash.contains("complete -F _berth"), "{bash}");
    assert!(bash.contains("--log-driver"), "flags are completed");
    assert!(env.ok(&["completion", "zsh"]).starts_with("#compdef berth"));
    assert!(env
        .ok(&["completion", "fish"])
        .contains("complete -c berth"));
    assert!(env
        .ok(&["completion", "powershell"])
        .contains("Register-ArgumentCompleter"));
    // The script works: bash accepts it and completes berth with it.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("eval \"$(cat)\"; complete -p berth")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(bash.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(text(&out.stdout).contains("_berth berth"), "{out:?}");
    // Docker's: no shell, or one it does not know, prints the help, 0.
    for args in [&["completion"][..], &["completion", "tcsh"]] {
        let out = env.ok(args);
        assert!(
            out.contains("Generate the autocompletion script for bash"),
            "{out}"
        );
    }
}
