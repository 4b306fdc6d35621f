//! `berth serve` (issue 13): the Docker Engine API on a socket of the
//! test's own, driven by the real docker CLI and by raw HTTP requests.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::serve::ApiServer;
use common::*;

/// A `berth serve` of the test's store (see [`ApiServer`]), driven by the
/// docker CLI and by raw requests.
struct Server(ApiServer);

impl std::ops::Deref for Server {
    type Target = ApiServer;
    fn deref(&self) -> &ApiServer {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ApiServer {
        &mut self.0
    }
}

impl Server {
    fn start(env: &TestEnv) -> Server {
        Server(ApiServer::start(env))
    }

    /// A server on the test's socket and the `extra` arguments (more
    /// hosts, TLS).
    fn start_with(env: &TestEnv, extra: &[&str]) -> Server {
        Server(ApiServer::start_with(env, extra))
    }

    /// SIGTERM, and the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.0.stop().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The real docker CLI against this server (`None` without one).
    fn docker(&self, args: &[&str]) -> Option<Output> {
        let bin = docker_cli()?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.sock.with_file_name("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null());
        Some(output_with_timeout(cmd, Duration::from_secs(60)))
    }

    /// The docker CLI with `input` on its stdin (from a file beside the
    /// socket).
    fn docker_with_input(&self, args: &[&str], input: &[u8]) -> Option<Output> {
        let bin = docker_cli()?;
        let file = self.sock.with_file_name("docker-stdin");
        std::fs::write(&file, input).unwrap_or_else(|e| panic!("{e}"));
        let stdin = std::fs::File::open(&file).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.sock.with_file_name("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(stdin);
        Some(output_with_timeout(cmd, Duration::from_secs(60)))
    }

    /// A raw HTTP/1.1 request; the status, the headers (lower-case names)
    /// and the body (de-chunked).
    fn request(&self, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
        self.request_body(method, path, None)
    }

    /// A raw request with a body (its length given).
    fn request_body(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (u16, Vec<(String, String)>, String) {
        let a = self
            .0
            .request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = a.text();
        (a.status, a.headers, text)
    }
}

/// The docker CLI on PATH; under CI its absence is a failure.
fn docker_cli() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("docker"))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs a docker CLI (docker.io)"
        );
        eprintln!("SKIPPED: no docker CLI on PATH");
    }
    found
}

fn ok(o: Option<Output>) -> Option<String> {
    let o = o?;
    assert!(
        o.status.success(),
        "docker failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    Some(text(&o.stdout))
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn the_docker_cli_reads_what_the_berth_cli_made() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "create", "--name", "c1", "--label", "tier=web", BB, "sleep", "100",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "up1",
        BB,
        "sleep",
        "1000",
    ]);
    env.ok(&["tag", BB, "localhost:5000/team/bb:v1"]);
    let server = Server::start(&env);
    // The socket: root and the berth group, 0660.
    let meta = std::fs::metadata(&server.sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.uid(), 0);
    let pid: u32 = std::fs::read_to_string(&server.pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, server.child.id());

    if let Some(v) = ok(server.docker(&["version", "--format", "{{.Server.APIVersion}}"])) {
        assert_eq!(v, "1.41\n");
        let ps =
            ok(server.docker(&["ps", "--format", "{{.Names}} {{.State}} {{.Command}}"])).unwrap();
        assert_eq!(ps, "up1 running \"sleep 1000\"\n");
        let ps = ok(server.docker(&[
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.Names}} {{.Status}} {{.Labels}}",
        ]))
        .unwrap();
        let mut rows: Vec<&str> = ps.lines().collect();
        rows.sort();
        assert_eq!(rows.len(), 2, "{ps}");
        assert_eq!(rows[0], "c1 Created tier=web");
        assert!(rows[1].starts_with("up1 Up "), "{ps}");
        let ps = ok(server.docker(&["ps", "-a", "--filter", "label=tier=web", "-q"])).unwrap();
        assert_eq!(
            ps.trim(),
            &env.ok(&["inspect", "-f", "{{.Id}}", "c1"])[..12]
        );
        // inspect is the CLI's inspect, byte for byte.
        let theirs = ok(server.docker(&["container", "inspect", "up1"])).unwrap();
        let mut a: serde_json::Value = serde_json::from_str(&theirs).unwrap();
        let b: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "up1"])).unwrap();
        // API 1.41 still carries the kernel memory limits (0); the CLI's
        // inspect is Docker 25's, without them.
        for k in ["KernelMemory", "KernelMemoryTCP"] {
            let gone = a[0]["HostConfig"].as_object_mut().unwrap().remove(k);
            assert_eq!(gone, Some(serde_json::json!(0)), "{k}");
        }
        assert_eq!(a, b);
        let images =
            ok(server.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])).unwrap();
        let mut images: Vec<&str> = images.lines().collect();
        images.sort();
        assert_eq!(images, ["bb:latest", "localhost:5000/team/bb:v1"]);
        let id = ok(server.docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            "localhost:5000/team/bb:v1",
        ]))
        .unwrap();
        assert_eq!(id, env.ok(&["image", "inspect", "-f", "{{.Id}}", BB]));
        let h = ok(server.docker(&["history", "--format", "{{.Comment}}", BB])).unwrap();
        assert_eq!(h, "Imported from -\n");
        let info =
            ok(server.docker(&["info", "--format", "{{.Containers}} {{.ContainersRunning}}"]))
                .unwrap();
        assert_eq!(info, "2 1\n");
        // A missing object: the docker CLI's own words and exit status.
        let o = server.docker(&["container", "inspect", "nope"]).unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(
            text(&o.stderr).contains("No such container: nope"),
            "{}",
            text(&o.stderr)
        );
        let o = server.docker(&["history", "nope:1"]).unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(
            text(&o.stderr).contains("No such image: nope:1"),
            "{}",
            text(&o.stderr)
        );
    }

    // The server holds nothing: stopped, the containers run on, and the
    // socket and pidfile are gone.
    let mut server = server;
    assert!(server.stop().success());
    assert!(!server.sock.exists());
    assert!(!server.pidfile.exists());
    assert_eq!(inspect_f(&env, "{{.State.Status}}", "up1"), "running");
    env.ok(&["rm", "-f", "up1", "c1"]);
}

/// The server keeps inspects and lists while what they were read from is
/// unchanged (cache.rs). Every change made beside it — by the berth CLI, by
/// a monitor, by a monitor's death — shows in the very next answer: no
/// polling here, a stale answer fails.
#[test]
fn kept_answers_follow_every_change_made_beside_the_server() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "w1",
        BB,
        "sleep",
        "1000",
    ]);
    env.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "c2",
        BB,
        "sleep",
        "1000",
    ]);
    let server = Server::start(&env);
    let inspect = |what: &str| -> Option<serde_json::Value> {
        let (code, _, body) = server.request("GET", &format!("/v1.41/containers/{what}/json"));
        match code {
            200 => Some(serde_json::from_str(&body).unwrap()),
            404 => None,
            c => panic!("inspect {what}: {c} {body}"),
        }
    };
    let status = |what: &str| -> Option<String> {
        inspect(what).map(|v| v["State"]["Status"].as_str().unwrap().to_string())
    };
    let listed = |query: &str| -> Vec<String> {
        let (code, _, body) = server.request("GET", &format!("/v1.41/containers/json{query}"));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["Names"][0].as_str().unwrap(),
                    c["State"].as_str().unwrap()
                )
            })
            .collect()
    };
    // Twice each: the second answer may come from memory.
    let both = |what: &str| -> Option<String> {
        let a = status(what);
        assert_eq!(status(what), a, "{what} read twice");
        a
    };
    let lists = |query: &str| -> Vec<String> {
        let a = listed(query);
        assert_eq!(listed(query), a, "list {query} read twice");
        a
    };
    assert_eq!(both("w1").as_deref(), Some("running"));
    assert_eq!(both("c2").as_deref(), Some("created"));
    assert_eq!(lists(""), ["/w1 running"]);
    assert_eq!(lists("?all=1"), ["/c2 created", "/w1 running"]);

    // A freeze writes only the cgroup.
    env.ok(&["pause", "w1"]);
    assert_eq!(both("w1").as_deref(), Some("paused"));
    assert_eq!(lists(""), ["/w1 paused"]);
    env.ok(&["unpause", "w1"]);
    assert_eq!(both("w1").as_deref(), Some("running"));
    assert_eq!(lists(""), ["/w1 running"]);

    // A freeze written straight to the cgroup, as a tool beside berth
    // would: nothing of berth's changes.
    let id = inspect("w1").unwrap()["Id"].as_str().unwrap().to_string();
    let (file, frozen, thawed) =
        if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (
                format!("/sys/fs/cgroup/{}/{id}/cgroup.freeze", env.cgroup_parent),
                "1",
                "0",
            )
        } else {
            (
                format!(
                    "/sys/fs/cgroup/freezer/{}/{id}/freezer.state",
                    env.cgroup_parent
                ),
                "FROZEN",
                "THAWED",
            )
        };
    std::fs::write(&file, frozen).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(both("w1").as_deref(), Some("paused"));
    assert_eq!(lists(""), ["/w1 paused"]);
    std::fs::write(&file, thawed).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(both("w1").as_deref(), Some("running"));
    assert_eq!(lists(""), ["/w1 running"]);

    // A rename writes only the database.
    env.ok(&["rename", "w1", "w2"]);
    assert_eq!(status("w1"), None);
    assert_eq!(inspect("w2").unwrap()["Name"], "/w2");
    assert_eq!(lists(""), ["/w2 running"]);

    // A start by the CLI: a new monitor writes the state.
    env.ok(&["start", "c2"]);
    assert_eq!(both("c2").as_deref(), Some("running"));
    assert_eq!(lists(""), ["/c2 running", "/w2 running"]);

    // A monitor killed outright writes nothing: its container is exited
    // all the same.
    let id = inspect("w2").unwrap()["Id"].as_str().unwrap().to_string();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            env.root
                .path()
                .join("containers")
                .join(&id)
                .join("state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let monitor = state["MonitorPid"].as_i64().unwrap();
    assert!(monitor > 0, "{state}");
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor as i32).unwrap(),
        rustix::process::Signal::KILL,
    );
    // The kill is sent; its delivery is the kernel's (the pidfd is
    // readable once the monitor is gone): the first answer that is not
    // running must be exited, and every one after it.
    poll("w2 seen exited", Duration::from_secs(10), || {
        (status("w2").as_deref() != Some("running")).then_some(())
    });
    assert_eq!(both("w2").as_deref(), Some("exited"));
    assert_eq!(inspect("w2").unwrap()["State"]["ExitCode"], 137);
    assert_eq!(lists(""), ["/c2 running"]);

    // A removal by the CLI.
    env.ok(&["rm", "-f", "c2"]);
    assert_eq!(status("c2"), None);
    assert_eq!(lists("?all=1"), ["/w2 exited"]);
    env.ok(&["rm", "w2"]);
    assert_eq!(lists("?all=1"), Vec::<String>::new());
}

#[test]
fn requests_as_dockerd_answers_them() {
    let env = TestEnv::with_busybox();
    let server = Server::start(&env);
    let (status, h, body) = server.request("GET", "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert_eq!(header(&h, "api-version"), Some("1.41"));
    assert_eq!(header(&h, "ostype"), Some("linux"));
    let (status, h, body) = server.request("HEAD", "/_ping");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(header(&h, "api-version"), Some("1.41"));
    // A volume's labels and options as its creator sent them (dockerd
    // 20.10, side by side): none is null, an empty map {}.
    for (body, kept) in [
        (r#"{"Name":"raw"}"#, "null"),
        (r#"{"Name":"rawe","Labels":{},"DriverOpts":{}}"#, "{}"),
    ] {
        let (status, _, text) =
            server.request_body("POST", "/v1.41/volumes/create", Some(body.as_bytes()));
        assert_eq!(status, 201, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let kept: serde_json::Value = serde_json::from_str(kept).unwrap();
        assert_eq!((&v["Labels"], &v["Options"]), (&kept, &kept), "{text}");
        let name = v["Name"].as_str().unwrap();
        let (_, _, text) = server.request("GET", &format!("/v1.41/volumes/{name}"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((&v["Labels"], &v["Options"]), (&kept, &kept), "{text}");
    }
    // Versions: the prefix is optional; outside 1.24-1.47 is refused.
    for p in ["/version", "/v1.24/version", "/v1.47/version"] {
        let (status, _, body) = server.request("GET", p);
        assert_eq!(status, 200, "{p}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ApiVersion"], "1.41");
    }
    let (status, h, body) = server.request("GET", "/v1.23/version");
    assert_eq!(status, 400);
    assert_eq!(header(&h, "content-type"), Some("application/json"));
    assert_eq!(body, "{\"message\":\"client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version\"}\n");
    let (status, _, body) = server.request("GET", "/v1.48/info");
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = server.request("GET", "/v1.41/no/such/thing");
    assert_eq!(
        (status, body.as_str()),
        (404, "{\"message\":\"page not found\"}\n")
    );
    let (status, _, body) = server.request("GET", "/v1.41/containers/nope/json");
    assert_eq!(
        (status, body.as_str()),
        (404, "{\"message\":\"No such container: nope\"}\n")
    );
    let (status, _, body) = server.request("GET", "/v1.41/images/nope:1/json");
    assert_eq!(
        (status, body.as_str()),
        (404, "{\"message\":\"No such image: nope:1\"}\n")
    );
    // Bad query values: 400 and nothing else.
    let (status, _, body) = server.request("GET", "/v1.41/containers/json?filters=%5B1%5D");
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = server.request(
        "GET",
        "/v1.41/containers/json?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
    );
    assert_eq!(
        (status, body.as_str()),
        (400, "{\"message\":\"Invalid filter 'bogus'\"}\n")
    );
    let (status, _, body) = server.request("GET", "/v1.41/containers/json?limit=x");
    assert_eq!(status, 400, "{body}");
    // The summaries' shape.
    env.ok(&["create", "--name", "c1", BB, "echo", "a b"]);
    let (status, _, body) = server.request("GET", "/v1.41/containers/json?all=1&size=1");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = &list[0];
    assert_eq!(c["Names"], serde_json::json!(["/c1"]));
    assert_eq!(c["Command"], "echo 'a b'");
    assert_eq!(c["State"], "created");
    assert_eq!(c["Status"], "Created");
    assert!(c["Created"].as_i64().unwrap() > 1_600_000_000);
    assert!(c["SizeRootFs"].as_u64().unwrap() > 0);
    let (_, _, body) = server.request("GET", "/v1.41/containers/json");
    assert_eq!(body, "[]\n");
    let (_, _, body) = server.request("GET", "/v1.41/images/json");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["RepoTags"], serde_json::json!(["bb:latest"]));
    assert_eq!(list[0]["Containers"], -1);
    drop(server);
    env.ok(&["rm", "c1"]);
}

#[test]
fn one_server_per_socket_and_leftovers_replaced() {
    let env = TestEnv::new();
    let server = Server::start(&env);
    let host = format!("unix://{}", server.sock.display());
    let out = env.run(&["serve", "-H", &host]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is in use: another server answers on it"),
        "{}",
        text(&out.stderr)
    );
    // Killed outright, it leaves its socket: the next server replaces it.
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
    assert!(server.sock.exists());
    let again = Server::start(&env);
    let (status, _, _) = again.request("GET", "/_ping");
    assert_eq!(status, 200);
    // Hosts it cannot serve are refused up front.
    for bad in ["tcp://127.0.0.1:2375", "unix://", "http://x"] {
        let out = env.run(&["serve", "-H", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            text(&out.stderr).starts_with("berth serve: "),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_docker_cli_runs_containers_through_berth() {
    let env = TestEnv::with_busybox();
    let server = Server::start(&env);
    let Some(o) = server.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        BB,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]) else {
        return;
    };
    // Output and errors on their own streams (stdcopy), the exit status.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "out\n");
    assert_eq!(text(&o.stderr), "err\n");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "--rm removed it");
    // Quick containers, many times: the exit status never lost.
    for _ in 0..5 {
        let o = server
            .docker(&["run", "--rm", "--network", "none", BB, "sh", "-c", "exit 4"])
            .unwrap();
        assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    }
    // stdin, to its end.
    let mut cmd = Command::new(docker_cli().unwrap());
    cmd.args([
        "run",
        "-i",
        "--rm",
        "--network",
        "none",
        BB,
        "sh",
        "-c",
        "tr a-z A-Z; echo done",
    ])
    .env("DOCKER_HOST", format!("unix://{}", server.sock.display()))
    .env("DOCKER_CONFIG", server.sock.with_file_name("docker-config"))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        text(&o.stdout),
        "HELLO\nWORLD\ndone\n",
        "{}",
        text(&o.stderr)
    );
    // Detached, then the lifecycle verbs.
    let id = ok(server.docker(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--network",
        "none",
        "--label",
        "a=b",
        BB,
        "sleep",
        "1000",
    ]))
    .unwrap();
    assert!(is_full_id(id.trim()), "{id}");
    assert_eq!(inspect_f(&env, "{{.State.Status}}", "d1"), "running");
    assert_eq!(inspect_f(&env, "{{.Config.Labels.a}}", "d1"), "b");
    ok(server.docker(&["pause", "d1"]));
    assert_eq!(inspect_f(&env, "{{.State.Status}}", "d1"), "paused");
    ok(server.docker(&["unpause", "d1"]));
    ok(server.docker(&["rename", "d1", "d2"]));
    ok(server.docker(&["stop", "-t", "1", "d2"]));
    assert_eq!(inspect_f(&env, "{{.State.Status}}", "d2"), "exited");
    let w = ok(server.docker(&["wait", "d2"])).unwrap();
    assert_eq!(w, "137\n");
    ok(server.docker(&["start", "d2"]));
    assert_eq!(inspect_f(&env, "{{.State.Status}}", "d2"), "running");
    ok(server.docker(&["kill", "d2"]));
    let o = server.docker(&["kill", "d2"]).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not running"),
        "{}",
        text(&o.stderr)
    );
    ok(server.docker(&["rm", "d2"]));
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    // create with the API's own shapes: limits, env, a bind, a port.
    let host_dir = env.root.path().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from the host").unwrap();
    let bind = format!("{}:/h:ro", host_dir.display());
    ok(server.docker(&[
        "create",
        "--name",
        "c3",
        "--network",
        "none",
        "-e",
        "A=1",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "-v",
        &bind,
        "--entrypoint",
        "cat",
        BB,
        "/h/f",
    ]));
    assert_eq!(inspect_f(&env, "{{.HostConfig.Memory}}", "c3"), "67108864");
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.NanoCpus}}", "c3"),
        "500000000"
    );
    assert_eq!(
        inspect_f(&env, "{{json .Config.Entrypoint}}", "c3"),
        "[\"cat\"]"
    );
    let o = server.docker(&["start", "-a", "c3"]).unwrap();
    assert_eq!(text(&o.stdout), "from the host", "{}", text(&o.stderr));
    ok(server.docker(&["rm", "c3"]));
    // A missing image: the daemon's 404, the CLI's words.
    let o = server
        .docker(&["create", "--pull", "never", "nope:1"])
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("No such image: nope:1"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn the_docker_cli_execs_through_a_child_berth() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "e1",
        BB,
        "sleep",
        "1000",
    ]);
    let server = Server::start(&env);
    let Some(o) = server.docker(&["exec", "e1", "sh", "-c", "echo out; echo err >&2; exit 6"])
    else {
        return;
    };
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        ("out\n".into(), "err\n".into())
    );
    let o = server
        .docker(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "e1",
            "sh",
            "-c",
            "id -u; pwd; echo $X",
        ])
        .unwrap();
    assert_eq!(text(&o.stdout), "1000\n/tmp\n1\n", "{}", text(&o.stderr));
    let mut cmd = Command::new(docker_cli().unwrap());
    cmd.args(["exec", "-i", "e1", "tr", "a-z", "A-Z"])
        .env("DOCKER_HOST", format!("unix://{}", server.sock.display()))
        .env("DOCKER_CONFIG", server.sock.with_file_name("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(text(&o.stdout), "ABC\n", "{}", text(&o.stderr));
    ok(server.docker(&["exec", "-d", "e1", "touch", "/made"]));
    poll("the detached exec", Duration::from_secs(10), || {
        env.run(&["exec", "e1", "test", "-e", "/made"])
            .status
            .success()
            .then_some(())
    });
    // A TTY: the process's terminal is a pseudo-terminal of its own.
    let sock = format!("unix://{}", server.sock.display());
    let o = output_with_timeout(
        {
            let mut c = Command::new("script");
            c.args([
                "-eqc",
                "docker exec -it e1 sh -c 'tty; exit 9'",
                "/dev/null",
            ])
            .env("DOCKER_HOST", &sock)
            .env("DOCKER_CONFIG", server.sock.with_file_name("docker-config"))
            .stdin(Stdio::null());
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(
        o.status.code(),
        Some(9),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("/dev/pts/"), "{}", text(&o.stdout));
    let o = server.docker(&["exec", "e1", "nosuchcmd"]).unwrap();
    assert_eq!(o.status.code(), Some(126), "{}", text(&o.stderr));
    env.ok(&["stop", "-t", "0", "e1"]);
    let o = server.docker(&["exec", "e1", "true"]).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not running"),
        "{}",
        text(&o.stderr)
    );
    env.ok(&["rm", "e1"]);
}

#[test]
fn volumes_networks_images_and_events_through_the_docker_cli() {
    let env = TestEnv::with_busybox();
    let server = Server::start(&env);
    let Some(v) = ok(server.docker(&["volume", "create", "--label", "k=v", "v1"])) else {
        return;
    };
    assert_eq!(v, "v1\n");
    let ls = ok(server.docker(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"])).unwrap();
    assert_eq!(ls, "v1 local\n");
    ok(server.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "v1:/data",
        BB,
        "sh",
        "-c",
        "echo hi > /data/f",
    ]));
    let out = ok(server.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "v1:/data",
        BB,
        "cat",
        "/data/f",
    ]))
    .unwrap();
    assert_eq!(out, "hi\n");
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{.Labels.k}}", "v1"]),
        "v\n"
    );
    ok(server.docker(&["volume", "rm", "v1"]));
    let o = server.docker(&["volume", "inspect", "v1"]).unwrap();
    assert_eq!(o.status.code(), Some(1));

    let id = ok(server.docker(&["network", "create", "--subnet", "10.99.0.0/24", "hnet"])).unwrap();
    assert!(is_full_id(id.trim()), "{id}");
    assert_eq!(
        env.ok(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}}",
            "hnet"
        ]),
        "10.99.0.0/24\n"
    );
    let ls = ok(server.docker(&["network", "ls", "--format", "{{.Name}}"])).unwrap();
    assert!(ls.lines().any(|l| l == "hnet"), "{ls}");
    ok(server.docker(&["network", "rm", "hnet"]));
    let o = server.docker(&["network", "rm", "hnet"]).unwrap();
    assert_eq!(o.status.code(), Some(1));

    ok(server.docker(&["tag", BB, "my/bb:v2"]));
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Id}}", "my/bb:v2"]),
        env.ok(&["image", "inspect", "-f", "{{.Id}}", BB])
    );
    let rmi = ok(server.docker(&["rmi", "my/bb:v2"])).unwrap();
    assert_eq!(rmi, "Untagged: my/bb:v2\n");
    ok(server.docker(&[
        "run",
        "--name",
        "cc1",
        "--network",
        "none",
        BB,
        "sh",
        "-c",
        "echo x > /x",
    ]));
    ok(server.docker(&[
        "commit",
        "-c",
        "ENV FOO=bar",
        "-m",
        "msg",
        "cc1",
        "c1img:v1",
    ]));
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Config.Env}}", "c1img:v1"]),
        "[FOO=bar]\n"
    );
    let h = ok(server.docker(&["history", "--format", "{{.Comment}}", "c1img:v1"])).unwrap();
    assert_eq!(h.lines().next(), Some("msg"));
    let cc1 = env.ok(&["inspect", "-f", "{{.Id}}", "cc1"]);
    let pruned = ok(server.docker(&["container", "prune", "-f"])).unwrap();
    assert!(pruned.contains(cc1.trim()), "{pruned}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    ok(server.docker(&["rmi", "c1img:v1"]));

    // Events: what happened, in Docker's wording, between two times.
    let since = chrono_like_now();
    ok(server.docker(&["volume", "create", "v2"]));
    ok(server.docker(&["volume", "rm", "v2"]));
    let until = chrono_like_now() + 1;
    let ev = ok(server.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "volume=v2",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ]))
    .unwrap();
    assert_eq!(ev, "volume create v2\nvolume destroy v2\n");
    // A login is checked against its registry, as dockerd checks it: none
    // answers here (docker_login_is_checked_... covers one that does).
    let o = server
        .docker(&["login", "-u", "x", "-p", "y", "localhost:5999"])
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("Error response from daemon: "),
        "{}",
        text(&o.stderr)
    );
}

fn chrono_like_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn the_docker_cli_moves_images_through_berth() {
    let reg = common::registry::Registry::start();
    let env = TestEnv::with_busybox();
    let server = Server::start(&env);
    let name = format!("{}/h/bb", reg.addr);
    let tagged = format!("{name}:1");
    let Some(out) = ok(server.docker(&["tag", BB, &tagged])) else {
        return;
    };
    assert_eq!(out, "");
    // push: Docker's lines, the layer named by its diff ID.
    let out = ok(server.docker(&["push", &tagged])).unwrap();
    assert!(
        out.starts_with(&format!("The push refers to repository [{name}]\n")),
        "{out}"
    );
    assert!(out.contains(": Pushed\n"), "{out}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_once(" size: "))
        .map(|(d, _)| d.to_string())
        .unwrap_or_else(|| panic!("no digest line in {out}"));
    assert!(digest.starts_with("sha256:"), "{digest}");
    // pull: gone locally, back from the registry; again, up to date.
    ok(server.docker(&["rmi", &tagged]));
    let out = ok(server.docker(&["pull", &tagged])).unwrap();
    assert!(out.starts_with("1: Pulling from h/bb\n"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {tagged}\n")),
        "{out}"
    );
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Id}}", &tagged]),
        env.ok(&["image", "inspect", "-f", "{{.Id}}", BB])
    );
    let out = ok(server.docker(&["pull", &tagged])).unwrap();
    assert!(
        out.contains(&format!("Status: Image is up to date for {tagged}\n")),
        "{out}"
    );
    // A missing image: the registry's 404 as the daemon's, nothing stored.
    let images = env.ok(&["images", "-q", "--no-trunc"]);
    let o = server.docker(&["pull", &format!("{name}-nope:1")]).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).starts_with("Error response from daemon: ")
            && text(&o.stderr).contains("not found"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(env.ok(&["images", "-q", "--no-trunc"]), images);
    // `run` of an image not here: the CLI pulls it (create's 404, then
    // images/create), then runs it.
    ok(server.docker(&["rmi", &tagged]));
    let o = server
        .docker(&["run", "--rm", "--network", "none", &tagged, "echo", "hi"])
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "hi\n");
    assert!(
        text(&o.stderr).contains(&format!("Unable to find image '{tagged}' locally")),
        "{}",
        text(&o.stderr)
    );

    // save, then load into a store without it.
    let archive = env.root.path().join("saved.tar");
    ok(server.docker(&["save", "-o", &archive.to_string_lossy(), BB]));
    let listing = Command::new("tar")
        .arg("tf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        text(&listing.stdout).contains("manifest.json"),
        "a Docker archive"
    );
    ok(server.docker(&["rmi", &tagged]));
    ok(server.docker(&["rmi", BB]));
    let out = ok(server.docker(&["load", "-i", &archive.to_string_lossy()])).unwrap();
    assert_eq!(out, format!("Loaded image: {BB}:latest\n"));
    let images = env.ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(images, env.ok(&["image", "inspect", "-f", "{{.Id}}", BB]));
    // A missing image saves nothing: the daemon's 404, no file.
    let nothing = env.root.path().join("nothing.tar");
    let o = server
        .docker(&["save", "-o", &nothing.to_string_lossy(), "nope"])
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "Error response from daemon: No such image: nope\n"
    );
    assert!(!nothing.exists());
    // Garbage loads and imports nothing.
    for args in [&["load"][..], &["import", "-", "junk:1"][..]] {
        let o = server
            .docker_with_input(args, b"this is not an archive\n")
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            text(&o.stderr).starts_with("Error response from daemon: "),
            "{args:?}: {}",
            text(&o.stderr)
        );
        assert_eq!(env.ok(&["images", "-q", "--no-trunc"]), images, "{args:?}");
    }
    // import: a root filesystem tarball on stdin, with changes and a message.
    let rootfs = std::fs::read(busybox_tar()).unwrap();
    let o = server
        .docker_with_input(
            &[
                "import",
                "-c",
                "CMD [\"sh\"]",
                "-m",
                "from the API",
                "-",
                "imp:1",
            ],
            &rootfs,
        )
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let id = text(&o.stdout);
    assert!(
        id.trim().strip_prefix("sha256:").is_some_and(is_full_id),
        "{id}"
    );
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Cmd}} {{.Comment}}",
            "imp:1"
        ]),
        "[\"sh\"] from the API\n"
    );
}

#[test]
fn a_run_rm_that_cannot_start_is_removed() {
    let env = TestEnv::with_busybox();
    let server = Server::start(&env);
    let Some(o) = server.docker(&["run", "--rm", "--network", "none", BB, "/nonexistent"]) else {
        return;
    };
    // Docker's: 127, the runtime's words, and nothing left behind.
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("/nonexistent"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn the_docker_cli_copies_exports_and_builds_through_berth() {
    let env = TestEnv::with_busybox();
    let server = Server::start(&env);
    let dir = env.root.path();
    let Some(_) = ok(server.docker(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "none",
        BB,
        "sleep",
        "1000",
    ])) else {
        return;
    };
    // cp out: a file, then a directory.
    let p = dir.join("passwd");
    ok(server.docker(&["cp", "c1:/etc/passwd", &p.to_string_lossy()]));
    assert!(std::fs::read_to_string(&p)
        .unwrap()
        .starts_with("root:x:0:0:"));
    let etc = dir.join("etc-copy");
    ok(server.docker(&["cp", "c1:/etc", &etc.to_string_lossy()]));
    assert!(etc.join("group").is_file());
    // cp in: into a directory, then to a new name; owned by root there.
    let h = dir.join("h.txt");
    std::fs::write(&h, "hello\n").unwrap();
    ok(server.docker(&["cp", &h.to_string_lossy(), "c1:/tmp/"]));
    ok(server.docker(&["cp", &h.to_string_lossy(), "c1:/tmp/new.txt"]));
    let out = ok(server.docker(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "cat /tmp/h.txt /tmp/new.txt; stat -c %u:%g /tmp/new.txt",
    ]))
    .unwrap();
    assert_eq!(out, "hello\nhello\n0:0\n");
    // A path that is not there: Docker's words, 404.
    let o = server
        .docker(&["cp", "c1:/nope", &dir.join("x").to_string_lossy()])
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    // The CLI's words on the 404: 28 relays the daemon's, 20.10 (which
    // stats first) has its own.
    let err = text(&o.stderr);
    assert!(
        err == "Error response from daemon: Could not find the file /nope in container c1\n"
            || err == "Error: No such container:path: c1:/nope\n",
        "{err}"
    );
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "c1"]);
    let (status, headers, _) = server.request(
        "HEAD",
        &format!("/v1.41/containers/{}/archive?path=/bin/sh", id.trim()),
    );
    assert_eq!(status, 200);
    use base64::Engine as _;
    let stat = header(&headers, "x-docker-container-path-stat").unwrap();
    let stat: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(stat)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stat["name"], "sh");
    assert_eq!(stat["linkTarget"], "/bin/busybox");
    assert_ne!(
        stat["mode"].as_u64().unwrap() & (1 << 27),
        0,
        "a symlink: {stat}"
    );
    // A directory is not turned into a file when the client asks
    // (noOverwriteDirNonDir, which the docker CLI always sends; dockerd's
    // 500 and words), and is when it does not (docker-py's put_archive).
    ok(server.docker(&["exec", "c1", "mkdir", "-p", "/t/d/f"]));
    let put = |flag: &str| {
        server.request_body(
            "PUT",
            &format!(
                "/v1.41/containers/{}/archive?path=/t&noOverwriteDirNonDir={flag}",
                id.trim()
            ),
            Some(&tar_of("d/f", b"file\n")),
        )
    };
    let (status, _, body) = put("true");
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        "{\"message\":\"Error processing tar file(exit status 1): cannot overwrite directory \\\"/t/d/f\\\" with non-directory \\\"/t\\\"\"}\n"
    );
    let kind = |c: &str| ok(server.docker(&["exec", "c1", "stat", "-c", "%F", c])).unwrap();
    assert_eq!(kind("/t/d/f"), "directory\n");
    let (status, _, body) = put("false");
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind("/t/d/f"), "regular file\n");

    // export: the whole filesystem, the copied file in it.
    let tarball = dir.join("c1.tar");
    ok(server.docker(&["export", "-o", &tarball.to_string_lossy(), "c1"]));
    let listing = Command::new("tar")
        .arg("tf")
        .arg(&tarball)
        .output()
        .unwrap();
    let listing = text(&listing.stdout);
    assert!(listing.lines().any(|l| l == "tmp/new.txt"), "{listing}");
    assert!(listing.lines().any(|l| l == "bin/busybox"), "{listing}");

    // stats: Docker's columns from two samples; update: the new limit there.
    let out = ok(server.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "c1",
    ]))
    .unwrap();
    assert!(out.starts_with("c1 "), "{out}");
    ok(server.docker(&[
        "update",
        "--memory",
        "64m",
        "--restart",
        "on-failure:2",
        "c1",
    ]));
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
            "c1"
        ]),
        "67108864 on-failure\n"
    );
    let out =
        ok(server.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "c1"])).unwrap();
    assert!(out.trim_end().ends_with("/ 64MiB"), "{out}");
    let out = ok(server.docker(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]))
    .unwrap();
    assert!(out.contains("Containers 1 1\n"), "{out}");

    // build: the classic builder's lines; cached the second time.
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {BB}\nCOPY h.txt /h.txt\nRUN echo building; cat /h.txt > /x\nCMD [\"cat\", \"/x\"]\n"),
    )
    .unwrap();
    std::fs::write(ctx.join("h.txt"), "from the context\n").unwrap();
    let out = ok(server.docker(&["build", "-t", "built:1", &ctx.to_string_lossy()])).unwrap();
    assert!(out.contains("Step 1/4 : FROM"), "{out}");
    // The base's ID after its step, as the classic builder shows it.
    let base = env.ok(&["image", "inspect", "-f", "{{.Id}}", BB]);
    let base = base.trim().trim_start_matches("sha256:");
    assert!(
        out.contains(&format!("Step 1/4 : FROM {BB}\n ---> {}\n", &base[..12])),
        "{out}"
    );
    assert!(out.contains("Step 3/4 : RUN echo building"), "{out}");
    assert!(out.contains("\nbuilding\n"), "{out}");
    // The RUN step's container, named as the classic builder names it.
    let running = out
        .split_once("Step 3/4 : RUN echo building")
        .and_then(|(_, rest)| rest.split_once(" ---> Running in "))
        .map(|(_, rest)| rest.get(..12).unwrap_or(""))
        .unwrap_or_else(|| panic!("no Running in line: {out}"));
    assert!(running.bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    assert!(
        out.contains(&format!(
            "\nbuilding\nRemoving intermediate container {running}\n ---> "
        )),
        "{out}"
    );
    assert!(out.contains("Successfully tagged built:1\n"), "{out}");
    let o = server
        .docker(&["run", "--rm", "--network", "none", "built:1"])
        .unwrap();
    assert_eq!(text(&o.stdout), "from the context\n");
    let out = ok(server.docker(&["build", "-t", "built:1", &ctx.to_string_lossy()])).unwrap();
    assert!(out.contains(" ---> Using cache"), "{out}");
    let q = ok(server.docker(&["build", "-q", &ctx.to_string_lossy()])).unwrap();
    assert_eq!(
        q.trim(),
        env.ok(&["image", "inspect", "-f", "{{.Id}}", "built:1"])
            .trim()
    );
    // A failing step: the classic builder's words and code (the CLI exits
    // with it, as with dockerd); no tag.
    // Its standard error in red, as dockerd's classic builder shows it.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {BB}\nRUN echo oops >&2; exit 3\n"),
    )
    .unwrap();
    let o = server
        .docker(&["build", "-t", "broken:1", &ctx.to_string_lossy()])
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).ends_with(
            "The command '/bin/sh -c echo oops >&2; exit 3' returned a non-zero code: 3\n"
        ),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("\u{1b}[91moops\n\u{1b}[0m"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        env.berth(&["image", "inspect", "broken:1"])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    // A Dockerfile that does not parse: dockerd's 400, before any step.
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {BB}\nBOGUS x\n")).unwrap();
    let o = server
        .docker(&["build", "-t", "broken:1", &ctx.to_string_lossy()])
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).ends_with(
            "Error response from daemon: dockerfile parse error line 2: unknown instruction: BOGUS\n"
        ),
        "{}",
        text(&o.stderr)
    );
    assert!(!text(&o.stdout).contains("Step 1/"), "{}", text(&o.stdout));
    // The build cache is pruned through the API too (`system prune` asks).
    let out = ok(server.docker(&["builder", "prune", "-af"])).unwrap();
    assert!(out.contains("Deleted build cache objects:"), "{out}");
    ok(server.docker(&["system", "prune", "-f"]));
    let out =
        ok(server.docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])).unwrap();
    assert!(out.contains("Build Cache 0\n"), "{out}");
}

/// Runs openssl (CI installs it); panics with its words.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o.stderr));
}

#[test]
fn tcp_is_mutual_tls_or_explicitly_insecure() {
    let env = TestEnv::with_busybox();
    // Loopback of the test's own network namespace.
    common::enter_own_netns();
    let dir = env.root.path().join("tls");
    std::fs::create_dir(&dir).unwrap();
    // A CA, a server certificate for 127.0.0.1, a client certificate.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
        ],
    );
    std::fs::write(
        dir.join("s.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("c.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (who, ext) in [("server", "s.ext"), ("client", "c.ext")] {
        let key = format!("{who}-key.pem");
        let csr = format!("{who}.csr");
        let pem = format!("{who}.pem");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={who}"),
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    // Plain TCP is refused unless asked for by name.
    let o = env.berth(&["serve", "-H", &tcp]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("without mutual TLS"),
        "{}",
        text(&o.stderr)
    );
    let (ca, cert, key) = (p("ca.pem"), p("server.pem"), p("server-key.pem"));
    let server = Server::start_with(
        &env,
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
        ],
    );
    let Some(bin) = docker_cli() else {
        return;
    };
    let docker = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .env("DOCKER_CONFIG", dir.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        output_with_timeout(cmd, Duration::from_secs(60))
    };
    let (ccert, ckey) = (p("client.pem"), p("client-key.pem"));
    let tls = [
        "--tlsverify",
        "--tlscacert",
        &ca,
        "--tlscert",
        &ccert,
        "--tlskey",
        &ckey,
        "-H",
        &tcp,
    ];
    let mut args = tls.to_vec();
    args.extend([
        "run",
        "--rm",
        "--network",
        "none",
        BB,
        "sh",
        "-c",
        "echo over tls; exit 2",
    ]);
    let o = docker(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "over tls\n");
    // Without a client certificate: no answer.
    let o = docker(&["--tls", "--tlscacert", &ca, "-H", &tcp, "ps"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("certificate"),
        "{}",
        text(&o.stderr)
    );
    // Plain HTTP on the TLS port: nothing HTTP comes back.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/"), "{:?}", text(&got));
    // The unix socket serves beside it.
    let (status, _, body) = server.request("GET", "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
}

#[test]
fn socket_activation_serves_the_passed_socket() {
    let env = TestEnv::with_busybox();
    let sock = env.root.path().join("activated.sock");
    // systemd's own tool passes the socket as systemd would (LISTEN_FDS).
    let berth = berth_bin();
    let child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(berth)
        .arg("--root")
        .arg(env.root.path())
        .args(["serve", "-H", "fd://"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("systemd-socket-activate (CI installs systemd): {e}"));
    // Stopped (SIGTERM, by PID) however the test ends.
    struct Stop(Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(child);
    let got = poll(
        "an answer on the activated socket",
        Duration::from_secs(20),
        || {
            let mut s = UnixStream::connect(&sock).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut got = String::new();
            s.read_to_string(&mut got).ok()?;
            got.starts_with("HTTP/1.1 200").then_some(got)
        },
    );
    assert!(got.ends_with("OK"), "{got}");
}

/// The server's open descriptors.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// A tar of one entry `name` holding `data` (any name: hostile ones too).
fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut t = h.to_vec();
    t.extend_from_slice(data);
    t.resize(t.len().div_ceil(512) * 512 + 1024, 0);
    t
}

#[test]
fn hostile_requests_get_errors_and_change_nothing() {
    let env = TestEnv::with_busybox();
    let server = Server::start(&env);
    let pid = server.child.id();
    let containers = env.ok(&["ps", "-aq"]);
    // Malformed JSON, a field of the wrong type, an oversized body: 400 and
    // 413, no container.
    for (body, want) in [
        (&b"{\"Image\": "[..], 400),
        (
            &b"{\"Image\":\"bb\",\"HostConfig\":{\"Memory\":\"lots\"}}"[..],
            400,
        ),
        (&b"[1,2,3]"[..], 400),
    ] {
        let (status, h, text) = server.request_body("POST", "/v1.41/containers/create", Some(body));
        assert_eq!(status, want, "{text}");
        assert_eq!(header(&h, "content-type"), Some("application/json"));
        assert!(text.starts_with("{\"message\":"), "{text}");
    }
    let big = vec![b' '; 5 << 20];
    let (status, _, text) = server.request_body("POST", "/v1.41/containers/create", Some(&big));
    assert_eq!(status, 413, "{text}");
    assert_eq!(env.ok(&["ps", "-aq"]), containers);

    // Archive paths cannot leave the container.
    let id = env
        .ok(&["run", "-d", "--network", "none", BB, "sleep", "1000"])
        .trim()
        .to_string();
    let secret = env.root.path().join("host-secret");
    std::fs::write(&secret, "host only\n").unwrap();
    let up = "/..".repeat(20);
    let path = format!("{up}{}", secret.display());
    let (status, _, text) = server.request(
        "GET",
        &format!("/v1.41/containers/{id}/archive?path={path}"),
    );
    assert_eq!(status, 404, "{text}");
    // A tar whose entry climbs out lands nowhere outside.
    let escape = env.root.path().join("escaped");
    let name = format!("../../../../../../../..{}", escape.display());
    let (status, _, text) = server.request_body(
        "PUT",
        &format!("/v1.41/containers/{id}/archive?path=/tmp"),
        Some(&tar_of(&name, b"owned\n")),
    );
    assert!(status >= 400, "{status} {text}");
    assert!(!escape.exists(), "a tar entry escaped the container");
    // So does a load.
    let images = env.ok(&["images", "-q", "--no-trunc"]);
    let (status, _, _) =
        server.request_body("POST", "/v1.41/images/load", Some(&tar_of(&name, b"x")));
    assert_eq!(status, 400, "refused before anything was written");
    assert!(!escape.exists());
    assert_eq!(env.ok(&["images", "-q", "--no-trunc"]), images);

    // Clients that go away mid-stream leave nothing open behind them.
    let before = fds_of(pid);
    for path in [
        "/v1.41/events".to_string(),
        format!("/v1.41/containers/{id}/logs?follow=1&stdout=1"),
        format!("/v1.41/containers/{id}/wait"),
        format!("/v1.41/containers/{id}/stats"),
    ] {
        let mut s = UnixStream::connect(&server.sock).unwrap();
        let method = if path.ends_with("/wait") {
            "POST"
        } else {
            "GET"
        };
        write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "{path}");
        drop(s);
    }
    poll(
        "the streams' descriptors closed",
        Duration::from_secs(20),
        || (fds_of(pid) <= before).then_some(()),
    );
    let (status, _, _) = server.request("GET", "/_ping");
    assert_eq!(status, 200, "still serving");
}

#[test]
fn docker_login_is_checked_and_its_credentials_reach_the_registry() {
    let env = TestEnv::with_busybox();
    let dir = env.root.path().join("reg");
    std::fs::create_dir(&dir).unwrap();
    let hash = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap_or_else(|e| panic!("htpasswd (CI installs apache2-utils): {e}"));
    assert!(hash.status.success());
    std::fs::write(dir.join("htpasswd"), &hash.stdout).unwrap();
    common::enter_own_netns();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: test-realm\n    path: {d}/htpasswd\n",
            d = dir.display()
        ),
    )
    .unwrap();
    struct Reg(Child);
    impl Drop for Reg {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _reg = Reg(Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    poll("the registry", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let server = Server::start(&env);
    let reg = format!("127.0.0.1:{port}");
    // A wrong password: the registry's refusal, nothing stored.
    let Some(o) = server.docker_with_input(
        &["login", "-u", "alice", "--password-stdin", &reg],
        b"wrong\n",
    ) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).starts_with("Error response from daemon: "),
        "{}",
        text(&o.stderr)
    );
    // Without credentials a push is refused.
    let name = format!("{reg}/h/bb:1");
    ok(server.docker(&["tag", BB, &name]));
    let o = server.docker(&["push", &name]).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    // The right one: checked, kept by the CLI, sent with the push.
    let o = server
        .docker_with_input(
            &["login", "-u", "alice", "--password-stdin", &reg],
            b"s3cret\n",
        )
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("Login Succeeded"),
        "{}",
        text(&o.stdout)
    );
    let out = ok(server.docker(&["push", &name])).unwrap();
    assert!(out.contains("1: digest: sha256:"), "{out}");
    ok(server.docker(&["rmi", &name]));
    let out = ok(server.docker(&["pull", &name])).unwrap();
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
}
