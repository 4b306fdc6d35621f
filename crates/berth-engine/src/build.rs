//! `berth build`: a Dockerfile's stages evaluated step by step, each RUN in a
//! container made by the engine as `run` makes one (same runtime, same
//! isolation), each COPY/ADD a layer written straight from its sources, and
//! a cache that reuses a step whose inputs are unchanged.
//!
//! A step's state is the image it would produce: config, layers, the last
//! image stored below it, and its cache key (the key of the state before,
//! the instruction as expanded, and for COPY/ADD the hash of its sources'
//! content and metadata, never their times). Metadata instructions (ENV,
//! WORKDIR, …) change the state in memory only; an image row is stored when
//! a RUN needs one to start from, after each RUN/COPY/ADD, and at the end of
//! a stage, each recorded in the `build_cache` table under its key. A fully
//! cached build therefore reads the database and hashes its COPY sources,
//! and ends with the very image of the build before.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use berth_layers::tarwriter::{EntryMeta, SpecialKind, TarBuilder};
use berth_store::{ImageRow, LayerRow};
use berth_types::{History, ImageConfig, Reference, RootFs, RunConfig};
use sha2::{Digest as _, Sha256};

use crate::buildadd;
use crate::buildfs::{self, CopyAttrs, FKind, Layers, Plan, Tree};
use crate::buildmount::{self, MountKind};
use crate::dockerfile::{self, Args, Base, Instruction, Stage};
use crate::dockerignore::Ignore;
use crate::{
    now_rfc3339, AttachStreams, CreateOptions, Digest, Engine, EngineError, Output, Result,
};

/// The label on a RUN step's container: `PID:START` of its builder (the
/// process and its start time, so a reused PID is not mistaken for it).
pub const BUILD_STEP_LABEL: &str = "berth.build.step";

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";
/// The proxy ARGs every build knows without an ARG line (Docker's
/// predefined ARGs): passed to RUN, never part of the cache key or history.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What `berth build` takes.
#[derive(Clone, Default)]
pub struct BuildOptions {
    /// How a base image that is not local is pulled (None: it is an error).
    pub pull: Option<crate::PullOptions>,
    /// `--pull`: pull every base image, even one that is local.
    pub pull_always: bool,
    /// The context directory (a tar context is unpacked by the caller).
    pub context: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// How messages name the Dockerfile (`Dockerfile`).
    pub dockerfile_name: String,
    pub ignore: Ignore,
    /// `-t`, as given.
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--label`: on the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network`: `none` (the default), `host` or `default`.
    pub network: Option<String>,
    /// `--allow network.host`: a Dockerfile's `RUN --network=host` may run
    /// (as BuildKit's entitlement; `--network host` grants it too).
    pub allow_network_host: bool,
    /// `--secret id=ID,src=PATH`: ID → file.
    pub secrets: BTreeMap<String, PathBuf>,
}

/// What a build reports as it goes.
#[derive(Debug)]
pub enum BuildEvent<'a> {
    /// How many steps the build has (each stage's FROM counts).
    Plan { steps: usize },
    /// A step starts. `name` is BuildKit's (`[build 2/5] RUN make`).
    Start { step: usize, name: &'a str },
    /// A RUN step's container was made (`removed: false`), or was removed
    /// after the step succeeded (`removed: true`).
    Container {
        step: usize,
        id: &'a str,
        removed: bool,
    },
    /// Output of a RUN step (`stderr`: from its standard error).
    Output {
        step: usize,
        data: &'a [u8],
        stderr: bool,
    },
    /// The step's result came from the cache.
    Cached { step: usize },
    Done {
        step: usize,
        /// The image the step left, when it is stored (a base image, a
        /// RUN/COPY/ADD step's result; not a step that only changed the
        /// configuration, which is stored with the next one).
        image: Option<&'a Digest>,
    },
    /// The image is stored; `tags` were moved to it.
    Finished {
        image: &'a Digest,
        tags: &'a [String],
    },
}

pub trait BuildProgress: Send {
    fn event(&mut self, e: BuildEvent<'_>);
}

/// The caller's progress sink, shared by the stages building at once.
struct Shared<'p>(std::sync::Mutex<&'p mut dyn BuildProgress>);

impl Shared<'_> {
    fn event(&self, e: BuildEvent<'_>) {
        if let Ok(mut p) = self.0.lock() {
            p.event(e);
        }
    }
}

/// What a build leaves: the image and the references now pointing at it.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub image: Digest,
    pub tags: Vec<String>,
}

/// The image a step would produce.
#[derive(Debug, Clone)]
struct State {
    config: ImageConfig,
    layers: Vec<Digest>,
    size: u64,
    /// The stored image equal to this state, if there is one.
    image: Option<Digest>,
    /// The last stored image below this state (the parent of the next).
    parent: Option<Digest>,
    key: Digest,
    /// A CMD was set in this stage (an ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl State {
    fn step(&mut self, what: &str) {
        self.key = Digest::of_bytes(format!("{}\n{what}", self.key).as_bytes());
        self.image = None;
    }
    fn run_config(&mut self) -> &mut RunConfig {
        &mut self.config.config
    }
    fn env(&self) -> Vec<String> {
        self.config.config.env.clone().unwrap_or_default()
    }
    fn history(&mut self, created_by: String, empty_layer: bool) {
        self.config.history.push(History {
            created: Some(now_rfc3339()),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer,
        });
    }
}

fn build_err(line: usize, message: impl std::fmt::Display) -> EngineError {
    EngineError::Build(format!("Dockerfile:{line}: {message}"))
}

/// The instruction as written, for the progress view and `history`.
fn instruction_text(ins: &Instruction) -> String {
    let mut s = ins.keyword.clone();
    for (k, v) in &ins.flags {
        match v {
            Some(v) => s.push_str(&format!(" --{k}={v}")),
            None => s.push_str(&format!(" --{k}")),
        }
    }
    match &ins.args {
        Args::Exec(v) => {
            s.push(' ');
            s.push_str(&serde_json::to_string(v).unwrap_or_default());
        }
        Args::Shell(t) if !t.is_empty() => {
            s.push(' ');
            s.push_str(t);
        }
        Args::Shell(_) => {}
    }
    s
}

fn flag<'a>(ins: &'a Instruction, name: &str) -> Option<&'a str> {
    ins.flags
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
}

/// The variables a stage's words expand from: ENV first, then its ARGs.
struct Scope {
    args: BTreeMap<String, String>,
    escape: char,
}

impl Scope {
    fn lookup<'a>(&'a self, st: &'a State) -> impl Fn(&str) -> Option<String> + 'a {
        move |name: &str| {
            let prefix = format!("{name}=");
            st.config
                .config
                .env
                .as_ref()
                .and_then(|env| {
                    env.iter()
                        .rev()
                        .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
                })
                .or_else(|| self.args.get(name).cloned())
        }
    }
    fn word(&self, st: &State, w: &str, line: usize) -> Result<String> {
        dockerfile::process_word(w, &self.lookup(st), self.escape).map_err(|m| build_err(line, m))
    }
    fn words(&self, st: &State, w: &str, line: usize) -> Result<Vec<String>> {
        dockerfile::process_words(w, &self.lookup(st), self.escape).map_err(|m| build_err(line, m))
    }
}

/// `K=V K2="v 2"` or the old `K V…` form (ENV, LABEL).
fn name_values(scope: &Scope, st: &State, ins: &Instruction) -> Result<Vec<(String, String)>> {
    let Args::Shell(text) = &ins.args else {
        return Err(build_err(
            ins.line,
            format!("{} requires arguments", ins.keyword),
        ));
    };
    let words = scope.words(st, text, ins.line)?;
    let Some(first) = words.first() else {
        return Err(build_err(
            ins.line,
            format!("{} requires at least one argument", ins.keyword),
        ));
    };
    if !first.contains('=') {
        if ins.keyword == "LABEL" {
            return Err(build_err(ins.line, "LABEL requires name=value pairs"));
        }
        // ENV NAME value with spaces
        let rest = text.trim_start()[text
            .trim_start()
            .find(char::is_whitespace)
            .unwrap_or(text.trim_start().len())..]
            .trim_start();
        if rest.is_empty() {
            return Err(build_err(ins.line, "ENV must have two arguments"));
        }
        return Ok(vec![(first.clone(), scope.word(st, rest, ins.line)?)]);
    }
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    build_err(
                        ins.line,
                        format!("{}: {w:?} is not name=value", ins.keyword),
                    )
                })
        })
        .collect()
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// A duration in nanoseconds as Go's `time.Duration` prints it (`1m30s`,
/// `500ms`, `0s`).
fn go_duration_text(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let ns = ns.unsigned_abs();
    let trim = |whole: u64, frac: u64, digits: usize| -> String {
        if frac == 0 {
            return whole.to_string();
        }
        let f = format!("{frac:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    let body = if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", trim(ns / 1_000, ns % 1_000, 3))
    } else if ns < 1_000_000_000 {
        format!("{}ms", trim(ns / 1_000_000, ns % 1_000_000, 6))
    } else {
        let secs = ns / 1_000_000_000;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let sec = format!("{}s", trim(s, ns % 1_000_000_000, 9));
        match (h, m) {
            (0, 0) => sec,
            (0, m) => format!("{m}m{sec}"),
            (h, m) => format!("{h}h{m}m{sec}"),
        }
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

fn set_env(env: &mut Vec<String>, k: &str, v: &str) {
    let prefix = format!("{k}=");
    let entry = format!("{k}={v}");
    match env.iter_mut().find(|e| e.starts_with(&prefix)) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// Shell-form arguments: the stage's SHELL (default `/bin/sh -c`) + text.
fn shell_form(st: &State, text: String) -> Vec<String> {
    let mut argv: Vec<String> = st
        .config
        .config
        .extra
        .get("Shell")
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    argv.push(text);
    argv
}

/// A `RUN`'s command: exec form as is; shell form through the SHELL, its
/// heredocs given to the shell with the line (a line that is only a heredoc
/// runs the heredoc as the script).
fn run_argv(st: &State, ins: &Instruction) -> Vec<String> {
    match &ins.args {
        Args::Exec(v) => v.clone(),
        Args::Shell(text) => {
            if ins.heredocs.len() == 1 {
                let t = text.trim();
                let h = &ins.heredocs[0];
                let only = t
                    .trim_start_matches("<<")
                    .trim_start_matches('-')
                    .trim_matches(['"', '\'']);
                if only == h.name {
                    return shell_form(st, h.content.clone());
                }
            }
            let mut full = text.clone();
            for h in &ins.heredocs {
                full.push('\n');
                full.push_str(&h.content);
                full.push_str(&h.name);
            }
            shell_form(st, full)
        }
    }
}

/// `--chown=USER[:GROUP]` with names looked up in the image's
/// `/etc/passwd` and `/etc/group`.
fn resolve_chown(spec: &str, tree: &dyn Tree, line: usize) -> Result<(u32, u32)> {
    // The image's own files, never more than 4 MiB of them (Tree::open
    // opens regular files only).
    let read = |path: &str| -> String {
        let mut s = String::new();
        let real = buildfs::resolve(tree, path, true).unwrap_or_default();
        if let Ok(f) = tree.open(&real) {
            let _ = std::io::Read::read_to_string(&mut std::io::Read::take(f, 4 << 20), &mut s);
        }
        s
    };
    let find = |file: &str, name: &str| -> Option<(u32, u32)> {
        read(file).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, find("etc/passwd", user).map_or(n, |_| n)),
        Err(_) => find("etc/passwd", user).ok_or_else(|| {
            build_err(
                line,
                format!("unable to find user {user}: no matching entries in passwd file"),
            )
        })?,
    };
    let gid = match group {
        None if user.parse::<u32>().is_ok() => uid,
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find("etc/group", g)
                .map(|(gid, _)| gid)
                .or_else(|| {
                    read("etc/group").lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g)
                            .then(|| f[2].parse().ok())
                            .flatten()
                    })
                })
                .ok_or_else(|| {
                    build_err(
                        line,
                        format!("unable to find group {g}: no matching entries in group file"),
                    )
                })?,
        },
    };
    Ok((uid, gid))
}

/// The stages done so far, by index.
type Done = HashMap<usize, State>;

struct Build<'o> {
    o: &'o BuildOptions,
    escape: char,
    globals: BTreeMap<String, String>,
    /// The context, walked once, when a step first reads it.
    context: std::sync::OnceLock<std::result::Result<buildfs::Context, String>>,
    step: std::sync::atomic::AtomicUsize,
    total: usize,
    stage_count: usize,
}

impl Build<'_> {
    fn next_step(&self) -> usize {
        self.step.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
    fn context(&self) -> Result<&buildfs::Context> {
        self.context
            .get_or_init(|| {
                buildfs::Context::open(&self.o.context, &self.o.ignore)
                    .map_err(|e| format!("reading the build context: {e}"))
            })
            .as_ref()
            .map_err(|e| EngineError::Build(e.clone()))
    }
}

impl Engine {
    /// `build`: evaluates the stages `o.target` needs and tags the result.
    pub fn build(&mut self, o: &BuildOptions, p: &mut dyn BuildProgress) -> Result<BuildResult> {
        let df = dockerfile::parse(&o.dockerfile).map_err(|e| EngineError::Build(e.to_string()))?;
        self.reap_dead_builds()?;
        let mut tags = Vec::new();
        for t in &o.tags {
            let r = Reference::parse(t)
                .map_err(|e| EngineError::InvalidArgument(format!("invalid tag {t:?}: {e}")))?;
            tags.push(r);
        }
        let plat = dockerfile::platform_args("linux", berth_types::host_architecture(), "");
        let stages = dockerfile::stages(&df, &o.build_args, &plat)
            .map_err(|e| EngineError::Build(e.to_string()))?;
        let globals = dockerfile::global_args(&df, &o.build_args, &plat)
            .map_err(|e| EngineError::Build(e.to_string()))?;
        let order = dockerfile::needed(&stages, o.target.as_deref()).map_err(EngineError::Build)?;
        let total = order
            .iter()
            .map(|&i| stages[i].instructions.len() + 1)
            .sum();
        let b = Build {
            o,
            escape: df.escape,
            globals,
            context: std::sync::OnceLock::new(),
            step: std::sync::atomic::AtomicUsize::new(0),
            total,
            stage_count: stages.len(),
        };
        let p = Shared(std::sync::Mutex::new(p));
        p.event(BuildEvent::Plan { steps: b.total });
        let mut done: Done = HashMap::new();
        let last = *order
            .last()
            .ok_or_else(|| EngineError::Build("no stage to build".into()))?;
        // In waves: every stage whose base and sources are built goes at
        // once, each in a thread with an engine of its own.
        let mut todo = order.clone();
        while !todo.is_empty() {
            let ready: Vec<usize> = todo
                .iter()
                .copied()
                .filter(|&i| {
                    let s = &stages[i];
                    let base_ok = match s.base {
                        Base::Stage(j) => done.contains_key(&j),
                        _ => true,
                    };
                    base_ok && s.deps.iter().all(|d| done.contains_key(d))
                })
                .collect();
            if ready.is_empty() {
                return Err(EngineError::Build(
                    "the stages depend on each other in a circle".into(),
                ));
            }
            todo.retain(|i| !ready.contains(i));
            if ready.len() == 1 {
                let i = ready[0];
                let st = self.build_stage(&b, &stages, i, i == last, &done, &p)?;
                done.insert(i, st);
                continue;
            }
            let opts = self.opts.clone();
            let results: Vec<(usize, Result<State>)> = std::thread::scope(|sc| {
                let handles: Vec<_> = ready
                    .iter()
                    .map(|&i| {
                        let (b, stages, done, p, opts) = (&b, &stages, &done, &p, opts.clone());
                        (
                            i,
                            sc.spawn(move || {
                                let mut eng = Engine::open(opts)?;
                                eng.build_stage(b, stages, i, i == last, done, p)
                            }),
                        )
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(i, h)| {
                        (
                            i,
                            h.join().unwrap_or_else(|_| {
                                Err(EngineError::Build(
                                    "a stage's builder thread panicked".into(),
                                ))
                            }),
                        )
                    })
                    .collect()
            });
            for (i, r) in results {
                done.insert(i, r?);
            }
        }
        let fin = done
            .remove(&last)
            .and_then(|s| s.image)
            .ok_or_else(|| EngineError::Build("the build produced no image".into()))?;
        let names: Vec<String> = tags.iter().map(|r| r.familiar()).collect();
        self.store.transaction(|t| -> Result<()> {
            if t.image(&fin)?.is_none() {
                return Err(EngineError::NoSuchImage(fin.to_string()));
            }
            t.mark_build_result(&fin)?;
            for r in &tags {
                t.set_tag(&r.to_string(), &fin)?;
            }
            Ok(())
        })?;
        p.event(BuildEvent::Finished {
            image: &fin,
            tags: &names,
        });
        Ok(BuildResult {
            image: fin,
            tags: names,
        })
    }

    fn build_stage(
        &mut self,
        b: &Build<'_>,
        stages: &[Stage],
        index: usize,
        is_last: bool,
        done: &Done,
        p: &Shared<'_>,
    ) -> Result<State> {
        let stage = &stages[index];
        let label = match (&stage.name, b.stage_count) {
            (_, 1) => String::new(),
            (Some(n), _) => format!("{n} "),
            (None, _) => format!("stage-{index} "),
        };
        let n = stage.instructions.len() + 1;
        let step = b.next_step();
        let from_text = match &stage.base {
            Base::Scratch => "FROM scratch".to_string(),
            Base::Image(r) => format!("FROM {r}"),
            Base::Stage(j) => format!(
                "FROM {}",
                stages[*j].name.clone().unwrap_or_else(|| j.to_string())
            ),
        };
        let from_name = format!("[{label}1/{n}] {from_text}");
        p.event(BuildEvent::Start {
            step,
            name: &from_name,
        });
        let mut st = match &stage.base {
            Base::Scratch => {
                let config = ImageConfig {
                    architecture: berth_types::host_architecture().to_string(),
                    os: "linux".into(),
                    created: None,
                    author: None,
                    config: RunConfig {
                        env: Some(vec![DEFAULT_PATH.into()]),
                        ..Default::default()
                    },
                    rootfs: RootFs {
                        kind: "layers".into(),
                        diff_ids: Vec::new(),
                    },
                    history: Vec::new(),
                    extra: BTreeMap::new(),
                };
                State {
                    config,
                    layers: Vec::new(),
                    size: 0,
                    image: None,
                    parent: None,
                    key: Digest::of_bytes(b"FROM scratch"),
                    cmd_set: false,
                }
            }
            Base::Image(r) => {
                let local = if b.o.pull_always {
                    Err(EngineError::NoSuchImage(r.clone()))
                } else {
                    self.resolve_image(r)
                };
                let row = match (local, &b.o.pull) {
                    (Ok(row), _) => row,
                    // Not here (or `--pull`): from its registry, as
                    // Docker's builder does.
                    (Err(EngineError::NoSuchImage(_)), Some(po)) => {
                        let reference = Reference::parse(r)
                            .map_err(|e| build_err(stage.line, format!("{r}: {e}")))?;
                        let pulled = self
                            .pull(&reference, po, &|_| {})
                            .map_err(|e| build_err(stage.line, format!("{r}: {e}")))?;
                        self.resolve_image(pulled.id.as_str())?
                    }
                    (Err(EngineError::NoSuchImage(_)), None) => {
                        return Err(build_err(stage.line, format!("{r}: No such image")))
                    }
                    (Err(e), _) => return Err(e),
                };
                self.state_of(&row)?
            }
            Base::Stage(j) => done
                .get(j)
                .cloned()
                .ok_or_else(|| build_err(stage.line, "base stage was not built"))?,
        };
        st.cmd_set = false;
        if st
            .config
            .config
            .env
            .as_ref()
            .is_none_or(|e| !e.iter().any(|e| e.starts_with("PATH=")))
        {
            st.config
                .config
                .env
                .get_or_insert_with(Vec::new)
                .insert(0, DEFAULT_PATH.into());
        }
        p.event(BuildEvent::Done {
            step,
            image: st.image.as_ref(),
        });
        let mut scope = Scope {
            args: BTreeMap::new(),
            escape: b.escape,
        };
        // ONBUILD triggers of the base run first, then are gone.
        let triggers: Vec<String> = st
            .config
            .config
            .extra
            .remove("OnBuild")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if !triggers.is_empty() {
            st.step("ONBUILD cleared");
        }
        for t in triggers {
            let parsed = dockerfile::parse(&t).map_err(|e| {
                build_err(stage.line, format!("ONBUILD trigger {t:?}: {}", e.message))
            })?;
            for ins in parsed.instructions {
                let mut ins = ins;
                ins.line = stage.line;
                self.step(b, &mut st, &mut scope, &ins, stages, done, p, None)?;
            }
        }
        for (k, ins) in stage.instructions.iter().enumerate() {
            let step = b.next_step();
            let name = format!("[{label}{}/{n}] {}", k + 2, instruction_text(ins));
            p.event(BuildEvent::Start { step, name: &name });
            let cached = self.step(b, &mut st, &mut scope, ins, stages, done, p, Some(step))?;
            if cached {
                p.event(BuildEvent::Cached { step });
            }
            p.event(BuildEvent::Done {
                step,
                image: st.image.as_ref(),
            });
        }
        if is_last && !b.o.labels.is_empty() {
            let labels = st.run_config().labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &b.o.labels {
                labels.insert(k.clone(), v.clone());
            }
            st.step(&format!("LABEL {:?}", b.o.labels));
        }
        self.materialize(&mut st, b.o.no_cache)?;
        Ok(st)
    }

    fn state_of(&self, row: &ImageRow) -> Result<State> {
        Ok(State {
            config: Self::image_config(row)?,
            layers: row.layers.clone(),
            size: row.size,
            image: Some(row.id.clone()),
            parent: Some(row.id.clone()),
            key: Digest::of_bytes(format!("FROM {}", row.id).as_bytes()),
            cmd_set: false,
        })
    }

    /// Stores the state as an image (unless it is one), cached under its key.
    fn materialize(&mut self, st: &mut State, no_cache: bool) -> Result<Digest> {
        if let Some(id) = &st.image {
            return Ok(id.clone());
        }
        let key = st.key.clone();
        if self.reuse_cached(st, &key, no_cache)? {
            if let Some(id) = &st.image {
                return Ok(id.clone());
            }
        }
        self.store_state(st, None)
    }

    /// Writes the state as an image row (with `layer`, its new top layer,
    /// if it has one) cached under the state's key, in one transaction.
    fn store_state(&mut self, st: &mut State, layer: Option<&LayerRow>) -> Result<Digest> {
        let created = now_rfc3339();
        st.config.created = Some(created.clone());
        let bytes = serde_json::to_vec(&st.config).map_err(|e| {
            EngineError::InvalidArgument(format!("cannot encode the image config: {e}"))
        })?;
        let id = Digest::of_bytes(&bytes);
        let row = ImageRow {
            id: id.clone(),
            config: bytes,
            layers: st.layers.clone(),
            size: st.size,
            parent: st.parent.clone(),
            created,
            added: now_ns(),
        };
        let key = st.key.clone();
        self.store.transaction(|t| -> Result<()> {
            if let Some(l) = layer {
                t.insert_layer(l)?;
            }
            t.insert_image(&row)?;
            t.cache_step(&key, &id, now_ns())?;
            Ok(())
        })?;
        if layer.is_some() {
            self.inventory_new_image(&id);
        }
        st.image = Some(id.clone());
        st.parent = Some(id.clone());
        Ok(id)
    }

    /// A cache hit for `key`: the state becomes that image. False when the
    /// cache does not have it (or `--no-cache`).
    fn reuse_cached(&self, st: &mut State, key: &Digest, no_cache: bool) -> Result<bool> {
        if no_cache {
            return Ok(false);
        }
        let Some(id) = self.store.read().cached_step(key)? else {
            return Ok(false);
        };
        let Some(row) = self.store.read().image(&id)? else {
            return Ok(false);
        };
        let _ = self.store.read().touch_cached_step(key, now_ns());
        let cmd_set = st.cmd_set;
        *st = self.state_of(&row)?;
        st.key = key.clone();
        st.cmd_set = cmd_set;
        Ok(true)
    }

    /// One instruction; true when its result came from the cache.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        b: &Build<'_>,
        st: &mut State,
        scope: &mut Scope,
        ins: &Instruction,
        stages: &[Stage],
        done: &Done,
        p: &Shared<'_>,
        step: Option<usize>,
    ) -> Result<bool> {
        let line = ins.line;
        let text = instruction_text(ins);
        let shell_text = || match &ins.args {
            Args::Shell(t) => Ok(t.clone()),
            Args::Exec(_) => Err(build_err(
                line,
                format!("{} does not take a JSON array", ins.keyword),
            )),
        };
        match ins.keyword.as_str() {
            "ARG" => {
                let t = shell_text()?;
                let mut shown = Vec::new();
                for w in scope.words(st, &t, line)? {
                    let (k, default) = match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w.clone(), None),
                    };
                    let value =
                        b.o.build_args
                            .get(&k)
                            .cloned()
                            .or(default.clone())
                            .or_else(|| b.globals.get(&k).cloned());
                    if let Some(v) = &value {
                        scope.args.insert(k.clone(), v.clone());
                    }
                    shown.push(match default {
                        Some(d) => format!("{k}={d}"),
                        None => k.clone(),
                    });
                }
                // The key sees the line, not the values: only a step that
                // uses them (a RUN's environment, an expanded word) misses.
                let shown = format!("ARG {}", shown.join(" "));
                st.step(&shown);
                st.history(shown, true);
            }
            "ENV" => {
                let pairs = name_values(scope, st, ins)?;
                let mut env = st.env();
                for (k, v) in &pairs {
                    set_env(&mut env, k, v);
                }
                st.run_config().env = Some(env);
                let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let shown = format!("ENV {}", shown.join(" "));
                st.step(&shown);
                st.history(shown, true);
            }
            "LABEL" => {
                let pairs = name_values(scope, st, ins)?;
                let labels = st.run_config().labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in &pairs {
                    labels.insert(k.clone(), v.clone());
                }
                let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let shown = format!("LABEL {}", shown.join(" "));
                st.step(&shown);
                st.history(shown, true);
            }
            "MAINTAINER" => {
                let t = scope.word(st, &shell_text()?, line)?;
                st.config.author = Some(t.clone());
                st.step(&format!("MAINTAINER {t}"));
                st.history(format!("MAINTAINER {t}"), true);
            }
            "EXPOSE" => {
                let words = scope.words(st, &shell_text()?, line)?;
                if words.is_empty() {
                    return Err(build_err(line, "EXPOSE requires at least one argument"));
                }
                let ports = st
                    .run_config()
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for w in &words {
                    for port in crate::commit::expand_port(w).map_err(|m| build_err(line, m))? {
                        ports.insert(port, serde_json::json!({}));
                    }
                }
                // As BuildKit records it: Go's map of the ports, sorted.
                let mut keys: Vec<String> = Vec::new();
                for w in &words {
                    for port in crate::commit::expand_port(w).map_err(|m| build_err(line, m))? {
                        keys.push(format!("{port}:{{}}"));
                    }
                }
                keys.sort();
                keys.dedup();
                let shown = format!("EXPOSE map[{}]", keys.join(" "));
                st.step(&format!("EXPOSE {}", words.join(" ")));
                st.history(shown, true);
            }
            "CMD" | "ENTRYPOINT" => {
                let argv = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(t) => shell_form(st, t.clone()),
                };
                let shown = format!("{} {}", ins.keyword, go_quoted_list(&argv));
                if ins.keyword == "CMD" {
                    st.run_config().cmd = Some(argv);
                    st.cmd_set = true;
                } else {
                    st.run_config().entrypoint = Some(argv);
                    // A new entrypoint drops a CMD that came from the base.
                    if !st.cmd_set {
                        st.run_config().cmd = None;
                    }
                }
                st.step(&shown);
                st.history(shown, true);
            }
            "WORKDIR" => {
                let w = scope.word(st, &shell_text()?, line)?;
                if w.is_empty() {
                    return Err(build_err(line, "WORKDIR requires exactly one argument"));
                }
                let cur = st.config.config.working_dir.clone();
                let new = if w.starts_with('/') {
                    format!("/{}", buildfs::clean(&w))
                } else {
                    format!("/{}", buildfs::clean(&format!("{cur}/{w}")))
                };
                st.run_config().working_dir = new.clone();
                st.step(&format!("WORKDIR {new}"));
                st.history(format!("WORKDIR {new}"), true);
            }
            "USER" => {
                let u = scope.word(st, &shell_text()?, line)?;
                if u.is_empty() {
                    return Err(build_err(line, "USER requires exactly one argument"));
                }
                st.run_config().user = u.clone();
                st.step(&format!("USER {u}"));
                st.history(format!("USER {u}"), true);
            }
            "VOLUME" => {
                let paths = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(t) => scope.words(st, t, line)?,
                };
                if paths.is_empty() || paths.iter().any(|p| p.trim().is_empty()) {
                    return Err(build_err(
                        line,
                        "VOLUME specified can not be an empty string",
                    ));
                }
                let vols = st.run_config().volumes.get_or_insert_with(BTreeMap::new);
                for p in &paths {
                    vols.insert(p.clone(), serde_json::json!({}));
                }
                let shown = format!("VOLUME [{}]", paths.join(" "));
                st.step(&shown);
                st.history(shown, true);
            }
            "STOPSIGNAL" => {
                let s = scope.word(st, &shell_text()?, line)?;
                if crate::parse_signal(&s).is_none() {
                    return Err(build_err(line, format!("invalid signal: {s}")));
                }
                st.run_config().stop_signal = s.clone();
                st.step(&format!("STOPSIGNAL {s}"));
                st.history(format!("STOPSIGNAL {s}"), true);
            }
            "HEALTHCHECK" => {
                let mut t = String::new();
                for (k, v) in &ins.flags {
                    t.push_str(&format!("--{k}={} ", v.clone().unwrap_or_default()));
                }
                match &ins.args {
                    Args::Shell(s) => t.push_str(s),
                    Args::Exec(v) => t.push_str(&serde_json::to_string(v).unwrap_or_default()),
                }
                let h = crate::commit::parse_healthcheck(&t).map_err(|m| build_err(line, m))?;
                // BuildKit records Go's %q of the struct.
                let retries = u8::try_from(h.retries).unwrap_or(0);
                let shown = format!(
                    "HEALTHCHECK &{{{} {:?} {:?} {:?} {}}}",
                    go_quoted_list(&h.test),
                    go_duration_text(h.interval),
                    go_duration_text(h.timeout),
                    go_duration_text(h.start_period),
                    if (0x20..0x7f).contains(&retries) {
                        format!("'{}'", retries as char)
                    } else {
                        format!("'\\x{retries:02x}'")
                    }
                );
                st.run_config().healthcheck = Some(h);
                st.step(&text);
                st.history(shown, true);
            }
            "SHELL" => {
                let Args::Exec(v) = &ins.args else {
                    return Err(build_err(
                        line,
                        "SHELL requires the arguments to be in JSON form",
                    ));
                };
                if v.is_empty() {
                    return Err(build_err(line, "SHELL requires at least one argument"));
                }
                st.config
                    .config
                    .extra
                    .insert("Shell".into(), serde_json::json!(v));
                st.step(&text);
                st.history(format!("SHELL [{}]", v.join(" ")), true);
            }
            "ONBUILD" => {
                let t = shell_text()?;
                let trigger = t
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER" | "") {
                    return Err(build_err(
                        line,
                        format!("{trigger} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                let list = st
                    .config
                    .config
                    .extra
                    .entry("OnBuild".to_string())
                    .or_insert_with(|| serde_json::json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(serde_json::Value::String(t.clone()));
                }
                // BuildKit records no history entry for ONBUILD.
                st.step(&format!("ONBUILD {t}"));
            }
            "RUN" => return self.run_step(b, st, scope, ins, stages, done, p, step),
            "COPY" | "ADD" => return self.copy_step(b, st, scope, ins, stages, done),
            "FROM" => return Err(build_err(line, "FROM is not allowed here")),
            other => return Err(build_err(line, format!("{other} is not supported yet"))),
        }
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &mut self,
        b: &Build<'_>,
        st: &mut State,
        scope: &Scope,
        ins: &Instruction,
        stages: &[Stage],
        done: &Done,
        p: &Shared<'_>,
        step: Option<usize>,
    ) -> Result<bool> {
        let line = ins.line;
        let argv = run_argv(st, ins);
        let network = flag(ins, "network")
            .map(str::to_string)
            .or_else(|| b.o.network.clone())
            .unwrap_or_else(|| "none".into());
        let granted = b.o.allow_network_host || b.o.network.as_deref() == Some("host");
        let network = match network.as_str() {
            "default" | "none" => "none".to_string(),
            // A Dockerfile alone never reaches the host's network.
            "host" if !granted => {
                return Err(build_err(
                    line,
                    "RUN --network=host is not allowed: grant it with --allow network.host (or --network host)",
                ))
            }
            "host" => "host".to_string(),
            other => {
                return Err(build_err(
                    line,
                    format!("network mode {other:?} not supported (none, host, default)"),
                ))
            }
        };
        let mut mounts = Vec::new();
        for (k, v) in &ins.flags {
            match k.as_str() {
                "network" => {}
                "mount" => {
                    let v = v
                        .as_deref()
                        .ok_or_else(|| build_err(line, "RUN --mount requires a value"))?;
                    let v = scope.word(st, v, line)?;
                    let m = buildmount::parse(&v, &st.config.config.working_dir)
                        .map_err(|m| build_err(line, format!("--mount={v}: {m}")))?;
                    mounts.push(m);
                }
                _ => return Err(build_err(line, format!("RUN --{k} is not supported yet"))),
            }
        }
        buildmount::check(&mounts).map_err(|m| build_err(line, format!("RUN --mount: {m}")))?;
        // Bind sources: their trees, resolved paths and content hashes (the
        // cache key sees what is bound, as BuildKit's does, never times).
        let mut mount_key = String::new();
        let mut sources: Vec<Option<(Box<dyn Tree + '_>, String)>> = Vec::new();
        for m in &mounts {
            mount_key.push_str(&format!(
                "\nmount {}",
                serde_json::to_string(&(&m.target, format!("{:?}", m.kind))).unwrap_or_default()
            ));
            let MountKind::Bind { source, from, .. } = &m.kind else {
                sources.push(None);
                continue;
            };
            let (tree, what): (Box<dyn Tree + '_>, String) = match from {
                None => (Box::new(b.context()?), "context".into()),
                Some(f) => {
                    let f = scope.word(st, f, line)?;
                    let (layers, id) =
                        self.layers_of_from(stages, done, &f, line, "RUN --mount")?;
                    let dirs = layers.iter().map(|l| self.layer_dir(l)).collect();
                    (Box::new(Layers::new(dirs)), id)
                }
            };
            let real = buildfs::resolve(tree.as_ref(), source, true)
                .map_err(|e| build_err(line, format!("--mount: {e}")))?;
            if tree.lstat(&real).is_none() {
                return Err(build_err(
                    line,
                    format!("failed to compute cache key: \"/{real}\" not found: not found"),
                ));
            }
            let mut h = Sha256::new();
            let mut plan = Plan::default();
            buildfs::plan_copy(
                &mut plan,
                tree.as_ref(),
                0,
                &real,
                "m",
                &CopyAttrs {
                    chown: None,
                    keep_owner: true,
                    chmod: None,
                },
                &mut h,
                &StoreDigests(&self.store),
            )
            .map_err(|e| build_err(line, format!("--mount: {e}")))?;
            mount_key.push_str(&format!(" {what} {}", Digest::from_hasher(h)));
            sources.push(Some((tree, real)));
        }
        // ARGs reach the command's environment; ENV wins over them.
        let image_env = st.env();
        let has = |k: &str| {
            image_env
                .iter()
                .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k))
        };
        let mut env: Vec<String> = scope
            .args
            .iter()
            .filter(|(k, _)| !has(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let args_key = env.clone();
        for k in PROXY_ARGS {
            if let Some(v) = b.o.build_args.get(*k) {
                if !has(k) && !scope.args.contains_key(*k) {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        // BuildKit's record: the ARGs the command saw (`|N K=V …`), then it.
        let shown = if args_key.is_empty() {
            format!("RUN {} # buildkit", argv.join(" "))
        } else {
            format!(
                "RUN |{} {} {} # buildkit",
                args_key.len(),
                args_key.join(" "),
                argv.join(" ")
            )
        };
        let key = Digest::of_bytes(
            format!(
                "{}\nRUN {}\nenv {}\nnetwork {network}{mount_key}",
                st.key,
                serde_json::to_string(&argv).unwrap_or_default(),
                serde_json::to_string(&args_key).unwrap_or_default()
            )
            .as_bytes(),
        );
        if self.reuse_cached(st, &key, b.o.no_cache)? {
            return Ok(true);
        }
        // A required secret that was not given fails before anything is stored.
        for m in &mounts {
            if let MountKind::Secret {
                id, required: true, ..
            } = &m.kind
            {
                if !b.o.secrets.contains_key(id) {
                    return Err(build_err(line, format!("secret {id}: not found")));
                }
            }
        }
        let image = self.materialize(st, b.o.no_cache)?;
        let mut held = buildmount::Held::default();
        let (specs, tmpfs) = self.prepare_mounts(b.o, &mounts, &sources, &mut held, line)?;
        let image_tree = Layers::new(st.layers.iter().map(|l| self.layer_dir(l)).collect());
        let stubs: Vec<(String, bool)> = mounts
            .iter()
            .flat_map(|m| buildmount::stubs(&image_tree, &m.target))
            .collect();
        let co = CreateOptions {
            mounts: specs,
            tmpfs,
            image: image.to_string(),
            cmd: argv.clone(),
            entrypoint: Some(Vec::new()),
            env,
            network: Some(network),
            log_driver: Some("none".into()),
            attach: AttachStreams {
                stdin: false,
                stdout: true,
                stderr: true,
            },
            healthcheck: Some(berth_types::Healthcheck {
                test: vec!["NONE".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let co = CreateOptions {
            build_step: Some(builder_mark(std::process::id())),
            ..co
        };
        let id = self.create(&co)?;
        if let Some(s) = step {
            p.event(BuildEvent::Container {
                step: s,
                id: id.as_str(),
                removed: false,
            });
        }
        let result = self.run_and_commit(
            &id,
            st,
            p,
            step,
            RunInfo {
                line,
                argv: &argv,
                stubs: &stubs,
            },
        );
        let removed = self.remove(id.as_str(), true, true);
        drop(held);
        let (layer, new) = result?;
        removed?;
        if let Some(s) = step {
            p.event(BuildEvent::Container {
                step: s,
                id: id.as_str(),
                removed: true,
            });
        }
        self.add_layer(st, layer, new, shown, key)?;
        Ok(false)
    }

    /// Runs the created container to its end, streaming its output; its
    /// changes become a new layer (None when it changed nothing).
    fn run_and_commit(
        &mut self,
        id: &berth_types::ContainerId,
        st: &State,
        p: &Shared<'_>,
        step: Option<usize>,
        r: RunInfo<'_>,
    ) -> Result<(Option<LayerRow>, bool)> {
        let (_, mut a) = self.start_attached(
            id.as_str(),
            AttachStreams {
                stdin: false,
                stdout: true,
                stderr: true,
            },
        )?;
        let mut tail: Vec<u8> = Vec::new();
        let code = loop {
            let (d, stderr) = match a.next_output() {
                Ok(Some(Output::Stdout(d))) => (d, false),
                Ok(Some(Output::Stderr(d))) => (d, true),
                Ok(Some(Output::Exit(code))) => break code,
                Ok(None) | Err(_) => break self.container(id.as_str())?.state.exit_code,
            };
            if let Some(s) = step {
                p.event(BuildEvent::Output {
                    step: s,
                    data: &d,
                    stderr,
                });
            }
            tail.extend_from_slice(&d);
            if tail.len() > 64 * 1024 {
                tail.drain(..tail.len() - 16 * 1024);
            }
        };
        if code != 0 {
            let text = String::from_utf8_lossy(&tail);
            let last: Vec<&str> = text.lines().rev().take(10).collect();
            let command = r.argv.join(" ");
            let mut msg = format!(
                "Dockerfile:{}: process {command:?} did not complete successfully: exit code: {code}",
                r.line
            );
            if !last.is_empty() {
                msg.push_str("\n  last output:");
                for l in last.iter().rev() {
                    msg.push_str("\n    ");
                    msg.push_str(l);
                }
            }
            return Err(EngineError::BuildRun {
                command,
                code,
                message: msg,
            });
        }
        let v = self.container(id.as_str())?;
        let lower: Vec<PathBuf> = st.layers.iter().map(|l| self.layer_dir(l)).collect();
        let upper = v.dir.join("upper");
        if !r.stubs.is_empty() {
            buildmount::remove_stubs(&upper, &Layers::new(lower.clone()), r.stubs);
        }
        let nl = self.write_layer(&upper, &lower, None)?;
        self.keep_layer(nl, st.layers.last())
    }

    /// Puts a finished temp layer in place. None (and nothing kept) when it
    /// is empty; the flag says whether this call created its directory.
    pub(crate) fn keep_layer(
        &self,
        nl: crate::commit::NewLayer,
        below: Option<&Digest>,
    ) -> Result<(Option<LayerRow>, bool)> {
        let empty_tar = Digest::of_bytes(&[0u8; 1024]);
        let diff_id = nl.stats.diff_id.clone();
        if diff_id == empty_tar {
            let _ = berth_layers::remove_layer_dir(&nl.tmp);
            if !nl.had_blob {
                let _ = self.blobs.remove(&nl.blob);
            }
            return Ok((None, false));
        }
        let chain_id = match below {
            Some(b) => Digest::of_bytes(format!("{b} {diff_id}").as_bytes()),
            None => diff_id.clone(),
        };
        let dir = self.layer_dir(&chain_id);
        let new = !dir.exists();
        if new {
            if let Err(e) = berth_layers::commit_temp(&nl.tmp, &dir) {
                let _ = berth_layers::remove_layer_dir(&nl.tmp);
                if !nl.had_blob {
                    let _ = self.blobs.remove(&nl.blob);
                }
                return Err(e.into());
            }
        } else {
            let _ = berth_layers::remove_layer_dir(&nl.tmp);
        }
        Ok((
            Some(LayerRow {
                chain_id,
                diff_id,
                parent: below.cloned(),
                size: nl.stats.size,
                blob: Some(nl.blob),
            }),
            new,
        ))
    }

    /// The state gains `layer` (or an empty step) and is stored as an image
    /// cached under `key`, the layer row in the same transaction.
    fn add_layer(
        &mut self,
        st: &mut State,
        layer: Option<LayerRow>,
        new_dir: bool,
        shown: String,
        key: Digest,
    ) -> Result<()> {
        match &layer {
            Some(l) => {
                st.config.rootfs.diff_ids.push(l.diff_id.clone());
                st.layers.push(l.chain_id.clone());
                st.size += l.size;
                st.history(shown, false);
            }
            None => st.history(shown, true),
        }
        st.key = key;
        st.image = None;
        if let Err(e) = self.store_state(st, layer.as_ref()) {
            if let Some(l) = &layer {
                if new_dir && !matches!(self.store.read().layer(&l.chain_id), Ok(Some(_))) {
                    let _ = berth_layers::remove_layer_dir(&self.layer_dir(&l.chain_id));
                }
            }
            return Err(e);
        }
        Ok(())
    }

    fn copy_step(
        &mut self,
        b: &Build<'_>,
        st: &mut State,
        scope: &Scope,
        ins: &Instruction,
        stages: &[Stage],
        done: &Done,
    ) -> Result<bool> {
        let line = ins.line;
        let is_add = ins.keyword == "ADD";
        for (k, _) in &ins.flags {
            // ADD has no --from, in any Dockerfile syntax; COPY no --checksum.
            if is_add && k == "from" {
                return Err(build_err(line, "Unknown flag: from"));
            }
            let known = matches!(
                k.as_str(),
                "from" | "chown" | "chmod" | "link" | "parents" | "exclude"
            ) || (is_add && k == "checksum");
            if !known {
                return Err(build_err(
                    line,
                    format!("{} --{k} is not supported yet", ins.keyword),
                ));
            }
        }
        let mut words = match &ins.args {
            Args::Exec(v) => v
                .iter()
                .map(|w| scope.word(st, w, line))
                .collect::<Result<Vec<_>>>()?,
            Args::Shell(t) => scope.words(st, t, line)?,
        };
        if words.len() < 2 {
            return Err(build_err(
                line,
                format!("{} requires at least two arguments", ins.keyword),
            ));
        }
        let dest_word = words.pop().unwrap_or_default();
        let workdir = st.config.config.working_dir.clone();
        let dest_is_dir_syntax =
            dest_word.ends_with('/') || dest_word == "." || dest_word.ends_with("/.");
        let dest = if dest_word.starts_with('/') {
            buildfs::clean(&dest_word)
        } else {
            buildfs::clean(&format!("{workdir}/{dest_word}"))
        };
        // The image as it is now (for the destination and --chown names).
        let image_tree = Layers::new(st.layers.iter().map(|l| self.layer_dir(l)).collect());
        // Where the sources come from: the context, a stage or an image.
        let from = flag(ins, "from")
            .map(|f| scope.word(st, f, line))
            .transpose()?;
        let (src_tree, src_id): (Box<dyn Tree>, String) = match &from {
            None => (Box::new(b.context()?), "context".into()),
            Some(f) => {
                let (layers, id) = self.layers_of_from(stages, done, f, line, "COPY")?;
                let dirs = layers.iter().map(|l| self.layer_dir(l)).collect();
                (Box::new(Layers::new(dirs)), id)
            }
        };
        let attrs = CopyAttrs {
            chown: flag(ins, "chown")
                .map(|c| scope.word(st, c, line))
                .transpose()?
                .map(|c| resolve_chown(&c, &image_tree, line))
                .transpose()?,
            keep_owner: from.is_some(),
            chmod: flag(ins, "chmod")
                .map(|m| {
                    u32::from_str_radix(m, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| build_err(line, format!("invalid chmod parameter {m:?}")))
                })
                .transpose()?,
        };
        let checksum = flag(ins, "checksum")
            .map(|c| scope.word(st, c, line))
            .transpose()?
            .map(|c| buildadd::parse_checksum(&c).map_err(|e| build_err(line, e)))
            .transpose()?;
        // Heredoc sources (`COPY <<EOF /file`) are files of their own.
        let heredoc_files = tempdir_in(&self.opts.root.join("tmp"))?;
        let mut hd_names = Vec::new();
        for h in &ins.heredocs {
            let content = if h.quoted {
                h.content.clone()
            } else {
                scope
                    .word(st, &h.content, line)
                    .unwrap_or_else(|_| h.content.clone())
            };
            std::fs::write(heredoc_files.path().join(&h.name), content)
                .map_err(crate::io_ctx("writing a heredoc"))?;
            hd_names.push(h.name.clone());
        }
        let hd_tree = buildfs::Context::open(heredoc_files.path(), &Ignore::default())
            .map_err(crate::io_ctx("reading heredocs"))?;

        let digests = StoreDigests(&self.store);
        let mut hasher = Sha256::new();
        hasher.update(
            format!(
                "{}\n{}\n{}\n{:?}\n{}\n{dest_is_dir_syntax}\n",
                st.key,
                ins.keyword,
                serde_json::to_string(&src_id).unwrap_or_default(),
                attrs,
                serde_json::to_string(&dest).unwrap_or_default()
            )
            .as_bytes(),
        );
        let mut plan = Plan::default();
        // What the sources write, in order: ADD's archives are extracted
        // only if the step has to run.
        let mut segments: Vec<Segment> = Vec::new();
        let trees: [&dyn Tree; 2] = [src_tree.as_ref(), &hd_tree];
        // ADD's extracted archives and downloads: trees 2, 3, …
        let mut extras: Vec<(buildadd::Scratch, buildfs::Context)> = Vec::new();
        let tmp = self.opts.root.join("tmp");
        let multi = words.len() > 1;
        if checksum.is_some() && !words.iter().all(|w| buildadd::is_url(w)) {
            return Err(build_err(
                line,
                "checksum can't be specified for non-HTTP(S) sources",
            ));
        }
        // --exclude=PATTERN (as .dockerignore lines, relative to each
        // source) and --parents (a source keeps its path under the
        // destination).
        let excludes: Vec<String> = ins
            .flags
            .iter()
            .filter(|(k, _)| k == "exclude")
            .filter_map(|(_, v)| v.clone())
            .map(|v| scope.word(st, &v, line))
            .collect::<Result<_>>()?;
        let exclude = Ignore::parse(&excludes.join("\n"));
        let parents = match ins.flags.iter().rev().find(|(k, _)| k == "parents") {
            None => false,
            Some((_, None)) => true,
            Some((_, Some(v))) => matches!(v.as_str(), "true" | "1"),
        };
        if !excludes.is_empty() || parents {
            hasher.update(format!("exclude {excludes:?} parents {parents}\n").as_bytes());
        }
        let mut found_any = false;
        for w in &words {
            let (tree_no, pattern) = match w.strip_prefix("<<") {
                Some(n)
                    if hd_names
                        .iter()
                        .any(|h| h == n.trim_start_matches('-').trim_matches(['"', '\''])) =>
                {
                    (
                        1usize,
                        n.trim_start_matches('-')
                            .trim_matches(['"', '\''])
                            .to_string(),
                    )
                }
                _ => (0usize, w.clone()),
            };
            let tree = trees[tree_no];
            if buildadd::is_url(w) {
                if !is_add {
                    return Err(build_err(line, "source can't be a URL for COPY"));
                }
                let name = buildadd::url_file_name(w);
                found_any = true;
                hasher.update(format!("url {w}\0").as_bytes());
                let into_dir = multi || dest_is_dir_syntax || image_is_dir(&image_tree, &dest);
                let target = if into_dir {
                    buildfs::clean(&format!("{dest}/{name}"))
                } else {
                    dest.clone()
                };
                if let Some(sum) = &checksum {
                    // The checksum stands for the content, as in BuildKit:
                    // downloaded only when the step is not in the cache.
                    hasher.update(format!("sha256:{} {name}\0", hex::encode(sum)).as_bytes());
                    segments.push(Segment::Copy(std::mem::take(&mut plan)));
                    segments.push(Segment::Url {
                        url: w.clone(),
                        name,
                        target,
                    });
                    continue;
                }
                let (scratch, got) = buildadd::download(w, &name, None, &tmp)
                    .map_err(|e| build_err(line, format!("ADD failed: {w}: {e}")))?;
                buildfs::plan_copy(
                    &mut plan,
                    &got,
                    2 + extras.len(),
                    &name,
                    &target,
                    &attrs,
                    // A download's temp path is new each time: hashed, not remembered.
                    &mut hasher,
                    &buildfs::NoDigests,
                )
                .map_err(|e| build_err(line, format!("ADD: {e}")))?;
                extras.push((scratch, got));
                continue;
            }
            if is_add && w.starts_with("git@") {
                return Err(build_err(line, "ADD from git is not supported yet"));
            }
            let matches = buildfs::expand_source(tree, &pattern)
                .map_err(|e| build_err(line, format!("{}: {e}", ins.keyword)))?;
            let wildcard = matches.len() != 1 || pattern.contains(['*', '?', '[']);
            if matches.is_empty() && !pattern.contains(['*', '?', '[']) {
                return Err(build_err(line, format!("{} failed: file not found in build context or excluded by .dockerignore: stat {pattern}: file does not exist", ins.keyword)));
            }
            for m in matches {
                if !excludes.is_empty() && exclude.excludes(&m) {
                    continue;
                }
                let real = buildfs::resolve(tree, &m, true)
                    .map_err(|e| build_err(line, format!("{}: {e}", ins.keyword)))?;
                let Some(meta) = tree.lstat(&real) else {
                    return Err(build_err(line, format!("{} failed: file not found in build context or excluded by .dockerignore: stat {m}: file does not exist", ins.keyword)));
                };
                found_any = true;
                hasher.update(m.as_bytes());
                hasher.update([0]);
                let into_dir =
                    multi || wildcard || dest_is_dir_syntax || image_is_dir(&image_tree, &dest);
                let target = if parents {
                    // The source's own path under the destination, with its
                    // parent directories as the source has them.
                    let mut acc = String::new();
                    let comps: Vec<&str> = m.split('/').collect();
                    for c in &comps[..comps.len().saturating_sub(1)] {
                        acc = if acc.is_empty() {
                            c.to_string()
                        } else {
                            format!("{acc}/{c}")
                        };
                        if let Some(pm) = tree.lstat(&acc).filter(|pm| pm.kind == FKind::Dir) {
                            let mut pm = pm;
                            if !attrs.keep_owner {
                                let (u, g) = attrs.chown.unwrap_or((0, 0));
                                pm.uid = u;
                                pm.gid = g;
                            }
                            plan.put(buildfs::PlanEntry {
                                dest: buildfs::clean(&format!("{dest}/{acc}")),
                                meta: pm,
                                source: None,
                            });
                        }
                    }
                    buildfs::clean(&format!("{dest}/{m}"))
                } else if meta.kind == FKind::Dir {
                    dest.clone()
                } else if into_dir {
                    let base = m.rsplit('/').next().unwrap_or(&m);
                    buildfs::clean(&format!("{dest}/{base}"))
                } else {
                    dest.clone()
                };
                if is_add
                    && tree_no == 0
                    && meta.kind == FKind::File
                    && buildadd::is_archive(tree, &real)
                {
                    // The key has the archive as it is; it is extracted
                    // only when the step is not in the cache.
                    hasher.update(b"archive\0");
                    buildfs::plan_copy(
                        &mut Plan::default(),
                        tree,
                        tree_no,
                        &real,
                        "",
                        &attrs,
                        &mut hasher,
                        &StoreDigests(&self.store),
                    )
                    .map_err(|e| build_err(line, format!("ADD: {e}")))?;
                    segments.push(Segment::Copy(std::mem::take(&mut plan)));
                    segments.push(Segment::Archive {
                        path: real,
                        shown: m,
                    });
                    continue;
                }
                let mut mine = Plan::default();
                buildfs::plan_copy(
                    &mut mine,
                    tree,
                    tree_no,
                    &real,
                    &target,
                    &attrs,
                    &mut hasher,
                    &digests,
                )
                .map_err(|e| build_err(line, format!("{}: {e}", ins.keyword)))?;
                for e in mine.entries {
                    let rel = e
                        .dest
                        .strip_prefix(&target)
                        .map(|r| r.trim_start_matches('/'))
                        .unwrap_or("");
                    if !excludes.is_empty() && !rel.is_empty() && exclude.excludes(rel) {
                        continue;
                    }
                    plan.put(e);
                }
            }
        }
        if !found_any && !words.iter().any(|w| w.contains(['*', '?', '['])) {
            return Err(build_err(
                line,
                format!("{}: no source files were specified", ins.keyword),
            ));
        }
        if (multi || words.iter().any(|w| w.contains(['*', '?', '['])))
            && !dest_is_dir_syntax
            && !image_is_dir(&image_tree, &dest)
            && plan.entries.len() + segments.len() > 1
        {
            return Err(build_err(line, format!("When using {} with more than one source file, the destination must be a directory and end with a /", ins.keyword)));
        }
        let key = Digest::from_hasher(hasher);
        let shown = format!("{} # buildkit", instruction_text(ins));
        if self.reuse_cached(st, &key, b.o.no_cache)? {
            return Ok(true);
        }
        segments.push(Segment::Copy(plan));
        let mut plan = Plan::default();
        for seg in segments {
            match seg {
                Segment::Copy(p) => {
                    for e in p.entries {
                        plan.put(e);
                    }
                }
                Segment::Archive { path, shown } => {
                    let got = self.extract_into(
                        &mut plan,
                        src_tree.as_ref(),
                        &path,
                        &dest,
                        &attrs,
                        &image_tree,
                        2 + extras.len(),
                    );
                    let got = got.map_err(|e| {
                        build_err(line, format!("ADD failed: extracting {shown}: {e}"))
                    })?;
                    extras.push(got);
                }
                Segment::Url { url, name, target } => {
                    let (scratch, got) =
                        buildadd::download(&url, &name, checksum.as_ref(), &tmp)
                            .map_err(|e| build_err(line, format!("ADD failed: {url}: {e}")))?;
                    buildfs::plan_copy(
                        &mut plan,
                        &got,
                        2 + extras.len(),
                        &name,
                        &target,
                        &attrs,
                        &mut Sha256::new(),
                        &buildfs::Unhashed,
                    )
                    .map_err(|e| build_err(line, format!("ADD: {e}")))?;
                    extras.push((scratch, got));
                }
            }
        }
        // The destination's parents, as the image has them or 0755 root.
        let mut parents = Vec::new();
        let mut acc = String::new();
        for comp in dest.split('/').filter(|c| !c.is_empty()) {
            acc = if acc.is_empty() {
                comp.to_string()
            } else {
                format!("{acc}/{comp}")
            };
            parents.push(acc.clone());
        }
        // The image below is stored first: it is the new one's parent.
        self.materialize(st, b.o.no_cache)?;
        let mut full = Plan::default();
        for d in &parents {
            if plan.has(d) {
                continue;
            }
            let meta = image_tree
                .lstat(d)
                .filter(|m| m.kind == FKind::Dir)
                .unwrap_or(buildfs::Meta {
                    kind: FKind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    mtime: now_secs(),
                    rdev: 0,
                });
            // A file destination's own name is not a parent.
            if plan
                .entries
                .iter()
                .any(|e| e.dest == *d && e.meta.kind != FKind::Dir)
            {
                continue;
            }
            full.put(buildfs::PlanEntry {
                dest: d.clone(),
                meta,
                source: None,
            });
        }
        for e in plan.entries {
            full.put(e);
        }
        let mut all: Vec<&dyn Tree> = trees.to_vec();
        all.extend(extras.iter().map(|(_, t)| t as &dyn Tree));
        let nl = self.ingest_layer(|out| write_plan(out, &full, &all))?;
        let (layer, new) = self.keep_layer(nl, st.layers.last())?;
        drop(heredoc_files);
        drop(extras);
        self.add_layer(st, layer, new, shown, key)?;
        Ok(false)
    }

    /// The layers and identity of `--from=f`: a stage built before, by name
    /// or index, else an image.
    fn layers_of_from(
        &self,
        stages: &[Stage],
        done: &Done,
        f: &str,
        line: usize,
        what: &str,
    ) -> Result<(Vec<Digest>, String)> {
        let lf = f.to_ascii_lowercase();
        let stage = stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&lf))
            .or_else(|| f.parse::<usize>().ok().filter(|n| *n < stages.len()));
        match stage {
            Some(i) => {
                let s = done.get(&i).ok_or_else(|| {
                    build_err(line, format!("stage {f} is not built before this one"))
                })?;
                Ok((
                    s.layers.clone(),
                    s.image.clone().map(|d| d.to_string()).unwrap_or_default(),
                ))
            }
            None => {
                let row = self.resolve_image(f).map_err(|_| {
                    build_err(line, format!("{what} --from={f}: no such stage or image"))
                })?;
                Ok((row.layers.clone(), row.id.to_string()))
            }
        }
    }

    /// Extracts the archive at `path` of `tree` and adds its entries to
    /// `plan` under `dest` as tree `tree_no`: the archive's owners and modes
    /// kept, `--chown` applied, `--chmod` not (as BuildKit unpacks). The
    /// destination directory itself is the image's, or a new 0755 one.
    #[allow(clippy::too_many_arguments)]
    fn extract_into(
        &self,
        plan: &mut Plan,
        tree: &dyn Tree,
        path: &str,
        dest: &str,
        attrs: &CopyAttrs,
        image_tree: &Layers,
        tree_no: usize,
    ) -> std::result::Result<(buildadd::Scratch, buildfs::Context), String> {
        let (scratch, got) = buildadd::extract(tree, path, &self.opts.root.join("tmp"))?;
        let archive_attrs = CopyAttrs {
            chown: attrs.chown,
            keep_owner: true,
            chmod: None,
        };
        buildfs::plan_copy(
            plan,
            &got,
            tree_no,
            "",
            dest,
            &archive_attrs,
            &mut Sha256::new(),
            &buildfs::Unhashed,
        )
        .map_err(|e| e.to_string())?;
        if !dest.is_empty() {
            let existing = image_tree.lstat(dest).filter(|m| m.kind == FKind::Dir);
            let (uid, gid) = attrs.chown.unwrap_or((0, 0));
            plan.put(buildfs::PlanEntry {
                dest: dest.to_string(),
                meta: existing.unwrap_or(buildfs::Meta {
                    kind: FKind::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    size: 0,
                    mtime: now_secs(),
                    rdev: 0,
                }),
                source: None,
            });
        }
        Ok((scratch, got))
    }
}

/// Context file digests kept in the store.
pub(crate) struct StoreDigests<'s>(pub(crate) &'s berth_store::Store);

impl buildfs::DigestCache for StoreDigests<'_> {
    fn get(&self, path: &str, stat: &str) -> Option<String> {
        self.0.read().file_digest(path, stat).ok().flatten()
    }
    fn put(&self, path: &str, stat: &str, digest: &str) {
        let _ = self.0.read().set_file_digest(path, stat, digest);
    }
}

/// What `run_and_commit` needs of the RUN: its line and command (for the
/// error message) and its mounts' stubs (to keep out of the layer).
struct RunInfo<'a> {
    line: usize,
    argv: &'a [String],
    stubs: &'a [(String, bool)],
}

/// A part of what a COPY/ADD writes, in source order.
enum Segment {
    Copy(Plan),
    /// An archive of the source tree, extracted into the destination.
    Archive {
        path: String,
        shown: String,
    },
    /// A URL with `--checksum`, downloaded to `target`.
    Url {
        url: String,
        name: String,
        target: String,
    },
}

fn image_is_dir(tree: &Layers, dest: &str) -> bool {
    buildfs::resolve(tree, dest, true)
        .ok()
        .and_then(|r| tree.lstat(&r))
        .is_some_and(|m| m.kind == FKind::Dir)
}

pub(crate) fn write_plan(
    out: File,
    plan: &Plan,
    trees: &[&dyn Tree],
) -> std::result::Result<(), berth_layers::LayerError> {
    let io = |e: std::io::Error| berth_layers::LayerError::Io {
        context: "reading a COPY source".into(),
        source: e,
    };
    let mut tb = TarBuilder::new(std::io::BufWriter::with_capacity(256 * 1024, out));
    for e in &plan.entries {
        let m = EntryMeta {
            mode: e.meta.mode,
            uid: e.meta.uid,
            gid: e.meta.gid,
            mtime: e.meta.mtime,
            rdev: e.meta.rdev,
        };
        let name = e.dest.as_bytes();
        match (e.meta.kind, &e.source) {
            (FKind::Dir, _) => tb.dir(name, &m)?,
            (FKind::File, Some((t, src))) => {
                let f = trees[*t].open(src).map_err(io)?;
                let size = f.metadata().map_err(io)?.len();
                tb.file(name, &m, f, size)?
            }
            (FKind::Symlink, Some((t, src))) => {
                let target = trees[*t].read_link(src).map_err(io)?;
                tb.symlink(name, &m, target.as_bytes())?
            }
            (FKind::Fifo, _) => tb.special(name, &m, SpecialKind::Fifo)?,
            (FKind::Char, _) => tb.special(name, &m, SpecialKind::Char)?,
            (FKind::Block, _) => tb.special(name, &m, SpecialKind::Block)?,
            _ => {}
        }
    }
    tb.finish().map(|_| ())
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A temp directory under the store's `tmp/` (collected after a crash).
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir_in(dir: &Path) -> Result<TempDir> {
    std::fs::create_dir_all(dir).map_err(crate::io_ctx(format!("creating {}", dir.display())))?;
    Ok(TempDir(berth_layers::create_temp_dir(dir)?))
}

/// `PID:START` of a process (its start time in clock ticks since boot).
fn builder_mark(pid: u32) -> String {
    format!("{pid}:{}", process_start(pid).unwrap_or(0))
}

fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // A zombie (killed, its parent not reaping it) is gone as a builder.
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

impl Engine {
    /// Removes the RUN containers of builds whose process is gone (killed
    /// mid-step): a running one is killed first.
    pub fn reap_dead_builds(&mut self) -> Result<()> {
        let rows = self
            .store
            .read()
            .containers_mentioning(&format!("\"{BUILD_STEP_LABEL}\""))?;
        for r in rows {
            let Ok(v) = self.view(r) else {
                continue;
            };
            let Some(mark) = v.config.labels.get(BUILD_STEP_LABEL) else {
                continue;
            };
            let alive = mark
                .split_once(':')
                .and_then(|(p, _)| p.parse::<u32>().ok())
                .is_some_and(|pid| builder_mark(pid) == *mark);
            if !alive {
                match self.remove(v.id.as_str(), true, true) {
                    Ok(_) | Err(EngineError::NoSuchContainer(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// A build context unpacked from a tar stream (`build -` or a tar file):
/// removed when dropped.
pub struct UnpackedContext {
    dir: PathBuf,
}

impl UnpackedContext {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for UnpackedContext {
    fn drop(&mut self) {
        let _ = berth_layers::remove_layer_dir(&self.dir);
    }
}

impl Engine {
    /// Unpacks a tar context (plain or compressed) as `import` reads a
    /// tarball: confined to a fresh directory, `..` and links out refused,
    /// no devices.
    pub fn unpack_context(&self, input: impl std::io::Read + 'static) -> Result<UnpackedContext> {
        let tmp = self.opts.root.join("tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(crate::io_ctx(format!("creating {}", tmp.display())))?;
        let (_, reader) = berth_layers::decompress(input)?;
        let (dir, _) = berth_layers::unpack_to_temp(
            reader,
            &tmp,
            &berth_layers::ApplyOptions {
                whiteouts: berth_layers::WhiteoutMode::Skip,
                allow_devices: false,
                no_overwrite_dir_non_dir: false,
            },
        )
        .map_err(|e| EngineError::Build(format!("the build context: {e}")))?;
        Ok(UnpackedContext { dir })
    }
}
