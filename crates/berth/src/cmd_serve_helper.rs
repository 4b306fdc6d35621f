//! `berth serve-helper OP` (hidden): what `berth serve` cannot do in its
//! own threads, because the engine forks for it — a container's files
//! (`export`, the archive endpoints) and `build` (its RUN steps are
//! containers). The server runs one of these per request, single-threaded,
//! on the same store.
//!
//! The request is JSON in `BERTH_SERVE_REQUEST` (never argv: build
//! arguments are no one else's business); a tar comes on stdin; the answer
//! is stdout — Docker's JSON messages, a tar, or for `archive-get` a
//! `PathStat` line then the tar. A failure before any answer is one JSON
//! line on stderr, `{"status": HTTP status, "message": …}`, and exit 1.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::Result;
use berth_engine::dockerignore::Ignore;
use berth_engine::{BuildEvent, BuildOptions, BuildProgress, CopyOptions, Engine, EngineError};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Request {
    container: String,
    path: String,
    /// archive-put: the tar's entries keep their owners.
    copy_uid_gid: bool,
    /// archive-put: refuse to change a path's kind (dir ↔ non-dir).
    no_overwrite_dir_non_dir: bool,
    build: BuildRequest,
}

/// The classic `POST /build` query, as the server read it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BuildRequest {
    dockerfile: String,
    tags: Vec<String>,
    build_args: BTreeMap<String, Option<String>>,
    labels: BTreeMap<String, String>,
    no_cache: bool,
    pull: bool,
    quiet: bool,
    target: String,
    network: String,
}

/// A failure as the server answers it.
fn fail(status: u16, message: &str) -> i32 {
    let line = json!({"status": status, "message": message});
    let _ = writeln!(std::io::stderr(), "{line}");
    1
}

fn engine_fail(e: &EngineError) -> i32 {
    fail(e.http_status(), &e.to_string())
}

pub fn run(e: &mut Engine, op: &str) -> Result<i32> {
    let req: Request = match std::env::var("BERTH_SERVE_REQUEST") {
        Ok(s) => match serde_json::from_str(&s) {
            Ok(r) => r,
            Err(err) => return Ok(fail(400, &format!("serve-helper: bad request: {err}"))),
        },
        Err(_) => return Ok(fail(500, "serve-helper: no request (BERTH_SERVE_REQUEST)")),
    };
    // Read once; the monitors this process starts (a build's RUN steps)
    // have no business with it.
    std::env::remove_var("BERTH_SERVE_REQUEST");
    let stdout = std::io::stdout();
    let stdin = std::io::stdin();
    let r = match op {
        "stat" => e.stat_in_container(&req.container, &req.path).map(|st| {
            let _ = writeln!(stdout.lock(), "{}", json!(st));
        }),
        "archive-get" => {
            let st = match e.stat_in_container(&req.container, &req.path) {
                Ok(st) => st,
                Err(err) => return Ok(engine_fail(&err)),
            };
            let mut out = stdout.lock();
            writeln!(out, "{}", json!(st))?;
            out.flush()?;
            e.copy_from_container(
                &req.container,
                &req.path,
                berth_engine::HostPath::Tar(std::io::stdout().as_fd()),
                CopyOptions::default(),
            )
            .map(|_| ())
        }
        "archive-put" => {
            // dockerd's words on the extraction point, before any byte.
            match e.stat_in_container(&req.container, &req.path) {
                Err(err) => return Ok(engine_fail(&err)),
                Ok(st) => {
                    const DIR: u32 = 1 << 31;
                    const SYMLINK: u32 = 1 << 27;
                    if st.mode & (DIR | SYMLINK) == 0 {
                        return Ok(fail(400, "extraction point is not a directory"));
                    }
                }
            }
            e.copy_to_container(
                &req.container,
                berth_engine::HostPath::Tar(stdin.as_fd()),
                &req.path,
                CopyOptions {
                    archive: req.copy_uid_gid,
                    follow_link: false,
                    no_overwrite_dir_non_dir: req.no_overwrite_dir_non_dir,
                },
            )
            .map(|_| ())
        }
        "export" => e.export(&req.container, std::io::stdout().as_fd()),
        "build" => return build(e, &req.build),
        other => {
            return Ok(fail(
                400,
                &format!("serve-helper: unknown operation {other:?}"),
            ))
        }
    };
    match r {
        Ok(()) => Ok(0),
        Err(err) => Ok(engine_fail(&err)),
    }
}

/// One JSON message on stdout (the server relays it as it comes).
fn message(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn stream(text: impl Into<String>) {
    message(&json!({"stream": text.into()}));
}

fn error_message(m: &str) {
    message(&json!({"errorDetail": {"message": m}, "error": m}));
}

/// The classic builder's messages: `Step N/M : INSTRUCTION`, ` ---> Running
/// in ID`, the RUN steps' output, `Removing intermediate container ID`,
/// ` ---> Using cache`, ` ---> ID` after a step whose image is stored, then the image's ID (`aux`) and `Successfully
/// built`/`Successfully tagged`.
struct Classic {
    quiet: bool,
    total: usize,
    started: usize,
}

impl BuildProgress for Classic {
    fn event(&mut self, e: BuildEvent<'_>) {
        match e {
            BuildEvent::Plan { steps } => self.total = steps,
            BuildEvent::Start { name, .. } if !self.quiet => {
                self.started += 1;
                let text = name.split_once("] ").map_or(name, |(_, t)| t);
                stream(format!("Step {}/{} : {text}\n", self.started, self.total));
            }
            BuildEvent::Container { id, removed, .. } if !self.quiet => {
                let short = crate::format::human::truncate_id(id);
                stream(if removed {
                    format!("Removing intermediate container {short}\n")
                } else {
                    format!(" ---> Running in {short}\n")
                });
            }
            // dockerd's classic builder shows standard error in red.
            BuildEvent::Output { data, stderr, .. } if !self.quiet => {
                let text = String::from_utf8_lossy(data);
                stream(if stderr {
                    format!("\u{1b}[91m{text}\u{1b}[0m")
                } else {
                    text.into_owned()
                });
            }
            BuildEvent::Cached { .. } if !self.quiet => stream(" ---> Using cache\n"),
            BuildEvent::Done {
                image: Some(image), ..
            } if !self.quiet => stream(format!(" ---> {}\n", image.short())),
            BuildEvent::Finished { image, tags } => {
                message(&json!({"aux": {"ID": image.to_string()}}));
                if self.quiet {
                    stream(format!("{image}\n"));
                    return;
                }
                stream(format!("Successfully built {}\n", image.short()));
                for t in tags {
                    stream(format!("Successfully tagged {t}\n"));
                }
            }
            _ => {}
        }
    }
}

/// `POST /build`: the context tar on stdin. Every failure after the
/// request was read is an error message in the stream (the server has sent
/// its 200), as the classic builder reports them.
fn build(e: &mut Engine, b: &BuildRequest) -> Result<i32> {
    let settings = crate::cmd_pull::registry_settings()?;
    // Base images come anonymously: the server's own credentials are not
    // its clients'.
    let auth: std::sync::Arc<dyn berth_registry::Auth> =
        std::sync::Arc::new(berth_registry::auth::Credentialed::with_credentials(None));
    let mut o = BuildOptions {
        pull: Some(berth_engine::PullOptions {
            platform: None,
            auth: Some(auth),
            concurrent_downloads: settings.max_concurrent_downloads,
            settings,
        }),
        pull_always: b.pull,
        no_cache: b.no_cache,
        target: Some(b.target.clone()).filter(|t| !t.is_empty()),
        tags: b.tags.clone(),
        labels: b.labels.clone(),
        dockerfile_name: "Dockerfile".into(),
        ..Default::default()
    };
    for (k, v) in &b.build_args {
        // A null value: Docker takes it from the daemon's environment;
        // berth's server has none to give.
        if let Some(v) = v {
            o.build_args.insert(k.clone(), v.clone());
        }
    }
    o.network = match b.network.as_str() {
        "" | "default" | "bridge" | "none" => Some("none".into()),
        "host" => Some("host".into()),
        other => {
            error_message(&format!(
                "network mode {other:?} not supported by berth build (default, none, host)"
            ));
            return Ok(1);
        }
    };
    let stdin = std::io::stdin();
    let unpacked = match e.unpack_context(stdin) {
        Ok(u) => u,
        Err(err) => {
            error_message(&format!("unable to prepare context: {err}"));
            return Ok(1);
        }
    };
    let context = unpacked.path().to_path_buf();
    let name = if b.dockerfile.is_empty() {
        "Dockerfile"
    } else {
        &b.dockerfile
    };
    let df = context.join(name.trim_start_matches('/'));
    let text = match crate::cmd_build::read_small(&df, Some(&context)) {
        Ok(t) => t,
        Err(err) => {
            error_message(&format!(
                "Cannot locate specified Dockerfile: {name} ({})",
                crate::commands::errno_text(&err)
            ));
            return Ok(1);
        }
    };
    o.dockerfile = String::from_utf8_lossy(&text).into_owned();
    // A Dockerfile that does not parse is refused before the build starts,
    // in dockerd's words (400).
    if let Err(p) = berth_engine::dockerfile::parse(&o.dockerfile) {
        return Ok(fail(
            400,
            &format!("dockerfile parse error line {}: {}", p.line, p.message),
        ));
    }
    if let Some(n) = Path::new(name).file_name() {
        o.dockerfile_name = n.to_string_lossy().into_owned();
    }
    let mut own = df.clone().into_os_string();
    own.push(".dockerignore");
    let ignore = crate::cmd_build::read_small(&PathBuf::from(own), Some(&context))
        .or_else(|_| crate::cmd_build::read_small(&context.join(".dockerignore"), Some(&context)))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    o.ignore = Ignore::parse(&ignore);
    o.context = context;
    let mut view = Classic {
        quiet: b.quiet,
        total: 0,
        started: 0,
    };
    match e.build(&o, &mut view) {
        Ok(_) => Ok(0),
        // The classic builder's words and code (the docker CLI exits with it).
        Err(EngineError::BuildRun { command, code, .. }) => {
            let m = format!("The command '{command}' returned a non-zero code: {code}");
            message(&json!({"errorDetail": {"code": code, "message": m}, "error": m}));
            Ok(1)
        }
        Err(err) => {
            error_message(&err.to_string());
            Ok(1)
        }
    }
}
