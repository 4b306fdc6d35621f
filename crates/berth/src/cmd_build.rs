//! `build` / `image build`: the context and Dockerfile as Docker's CLI finds
//! them, the build in the engine, its progress as BuildKit shows it (`plain`
//! lines, a live `tty` view, or nothing with `-q`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use berth_engine::dockerignore::Ignore;
use berth_engine::{BuildEvent, BuildOptions, BuildProgress, Engine, EngineError};

use crate::cli::BuildArgs;

/// Lines of a running step's output the live view keeps.
const TTY_TAIL: usize = 6;

pub fn build(e: &mut Engine, a: &BuildArgs) -> Result<i32> {
    let mut o = BuildOptions {
        pull: Some(crate::cmd_pull::pull_options(None)?),
        pull_always: a.pull,
        no_cache: a.no_cache,
        target: a.target.clone(),
        tags: a.tag.clone(),
        dockerfile_name: "Dockerfile".into(),
        ..Default::default()
    };
    for t in &a.tag {
        crate::commands::client_reference(t).map_err(|_| {
            anyhow!("invalid argument {t:?} for \"-t, --tag\" flag: invalid reference format")
        })?;
    }
    for kv in &a.build_arg {
        match kv.split_once('=') {
            Some((k, v)) => {
                o.build_args.insert(k.to_string(), v.to_string());
            }
            // `--build-arg NAME` takes the value from the environment.
            None => {
                if let Ok(v) = std::env::var(kv) {
                    o.build_args.insert(kv.clone(), v);
                }
            }
        }
    }
    for kv in &a.label {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        o.labels.insert(k.to_string(), v.to_string());
    }
    o.network = match a.network.as_str() {
        "default" | "" => None,
        "none" | "host" => Some(a.network.clone()),
        other => bail!("network mode {other:?} not supported by berth build (default, none, host)"),
    };
    for ent in &a.allow {
        match ent.as_str() {
            "network.host" => o.allow_network_host = true,
            other => bail!("invalid entitlement {other:?}: berth grants network.host only"),
        }
    }
    for s in &a.secret {
        let mut id = None;
        let mut src = None;
        for kv in s.split(',') {
            match kv.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("type", "file")) => {}
                Some(("type" | "env", _)) => {
                    bail!("invalid secret {s:?}: only file secrets (src=PATH) are supported")
                }
                _ => bail!("invalid secret {s:?}: want id=ID,src=PATH"),
            }
        }
        let id = id.ok_or_else(|| anyhow!("invalid secret {s:?}: no id"))?;
        let src = src.unwrap_or_else(|| PathBuf::from(&id));
        // Checked before anything is built, as Docker's CLI does.
        match std::fs::metadata(&src) {
            Ok(m) if m.is_file() => {}
            Ok(_) => bail!(
                "invalid secret {s:?}: {} is not a regular file",
                src.display()
            ),
            Err(e) => bail!(
                "invalid secret {s:?}: failed to stat {}: {e}",
                src.display()
            ),
        }
        o.secrets.insert(id, src);
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        let want = berth_types::Platform::parse(p).map_err(|e| anyhow!("{e}"))?;
        let host =
            berth_types::Platform::parse(&format!("linux/{}", berth_types::host_architecture()))
                .map_err(|e| anyhow!("{e}"))?;
        if want.os != host.os || want.architecture != host.architecture {
            bail!(
                "berth build builds for the host's platform only ({}), not {p}",
                host
            );
        }
    }

    let mode = match (a.quiet, a.progress.as_str()) {
        (true, _) | (_, "quiet") => Mode::Quiet,
        (_, "plain") | (_, "rawjson") => Mode::Plain,
        (_, "tty") => Mode::Tty,
        (_, "auto") => {
            if rustix::termios::isatty(std::io::stderr()) {
                Mode::Tty
            } else {
                Mode::Plain
            }
        }
        (_, other) => bail!("invalid progress mode {other:?} (auto, plain, tty, quiet)"),
    };
    // The context: a directory, a tar file, or stdin (a tar or a Dockerfile).
    let mut unpacked = None;
    let mut stdin_dockerfile = None;
    if a.context == "-" {
        let mut stdin = std::io::stdin().lock();
        let mut head = vec![0u8; 512];
        let n = read_full(&mut stdin, &mut head)?;
        head.truncate(n);
        if looks_like_archive(&head) {
            let rest = std::io::Cursor::new(head).chain(stdin);
            let counted = Transfer::new(rest, mode);
            unpacked = Some(e.unpack_context(counted).map_err(|err| anyhow!("{err}"))?);
        } else {
            let mut text = head;
            stdin.read_to_end(&mut text)?;
            stdin_dockerfile = Some(String::from_utf8_lossy(&text).into_owned());
        }
    } else if a.context.starts_with("http://")
        || a.context.starts_with("https://")
        || a.context.starts_with("git@")
    {
        bail!(
            "unable to prepare context: remote contexts ({}) are not supported by berth",
            a.context
        );
    } else {
        let p = Path::new(&a.context);
        let m = std::fs::metadata(p)
            .map_err(|_| anyhow!("unable to prepare context: path {:?} not found", a.context))?;
        if m.is_file() {
            let f = std::fs::File::open(p)?;
            let counted = Transfer::new(f, mode);
            unpacked = Some(e.unpack_context(counted).map_err(|err| anyhow!("{err}"))?);
        }
    }
    let empty_dir;
    let context: PathBuf = match (&unpacked, &stdin_dockerfile) {
        (Some(u), _) => u.path().to_path_buf(),
        (None, Some(_)) => {
            empty_dir = tempdir()?;
            empty_dir.0.clone()
        }
        (None, None) => PathBuf::from(&a.context),
    };

    // The Dockerfile: -f (relative to the working directory for a directory
    // context, inside the context for a tar), `-f -` from stdin, else
    // CONTEXT/Dockerfile.
    let (text, df_path) = match (&stdin_dockerfile, a.file.as_deref()) {
        (Some(t), _) => (t.clone(), None),
        (None, Some("-")) => {
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t)?;
            (t, None)
        }
        (None, f) => {
            let path = match f {
                Some(f) if unpacked.is_none() && Path::new(f).exists() => PathBuf::from(f),
                Some(f) => context.join(f.trim_start_matches('/')),
                None => context.join("Dockerfile"),
            };
            let confined = unpacked.as_ref().map(|u| u.path());
            let bytes = read_small(&path, confined).map_err(|err| {
                anyhow!(
                    "failed to read dockerfile: open {}: {}",
                    path.display(),
                    crate::commands::errno_text(&err)
                )
            })?;
            (String::from_utf8_lossy(&bytes).into_owned(), Some(path))
        }
    };
    o.dockerfile = text;
    if let Some(p) = &df_path {
        if let Some(name) = p.file_name() {
            o.dockerfile_name = name.to_string_lossy().into_owned();
        }
    }
    // `.dockerignore`: FILE.dockerignore next to the Dockerfile first.
    let own = df_path.as_ref().map(|p| {
        let mut s = p.as_os_str().to_owned();
        s.push(".dockerignore");
        PathBuf::from(s)
    });
    let confined = unpacked.as_ref().map(|u| u.path());
    let ignore_text = own
        .and_then(|p| read_small(&p, confined).ok())
        .or_else(|| read_small(&context.join(".dockerignore"), confined).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    o.ignore = Ignore::parse(&ignore_text);
    o.context = context;

    let mut view = View::new(mode);
    let result = e.build(&o, &mut view);
    view.close(result.is_ok());
    let r = match result {
        Ok(r) => r,
        Err(EngineError::Build(msg)) | Err(EngineError::BuildRun { message: msg, .. }) => {
            view.failed(&msg);
            errln!("ERROR: failed to solve: {msg}");
            return Ok(1);
        }
        Err(err) => {
            errln!("ERROR: {err}");
            return Ok(1);
        }
    };
    if let Some(f) = &a.iidfile {
        let out = crate::output::OutputFile::create(f, "failed to write the image ID file")?;
        let mut file = out.file();
        file.write_all(r.image.to_string().as_bytes())?;
        out.commit()?;
    }
    if mode == Mode::Quiet {
        outln!("{}", r.image)?;
    }
    Ok(0)
}

/// A tar context as it is read, with BuildKit's "transferring context"
/// (live on a terminal, once at the end in the plain view).
struct Transfer<R> {
    inner: R,
    mode: Mode,
    bytes: u64,
    started: Instant,
    last: Instant,
    done: bool,
}

impl<R: Read> Transfer<R> {
    fn new(inner: R, mode: Mode) -> Transfer<R> {
        let now = Instant::now();
        Transfer {
            inner,
            mode,
            bytes: 0,
            started: now,
            last: now,
            done: false,
        }
    }
}

impl<R: Read> Read for Transfer<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        let size = crate::format::human::human_size(self.bytes);
        let secs = self.started.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        match (self.mode, n) {
            (Mode::Tty, 0) if !self.done => {
                self.done = true;
                let _ = write!(
                    err,
                    "\r => transferring context: {size} {secs:.1}s done\x1b[K\n"
                );
            }
            (Mode::Tty, _) if self.last.elapsed() > Duration::from_millis(100) => {
                self.last = Instant::now();
                let _ = write!(err, "\r => transferring context: {size} {secs:.1}s\x1b[K");
            }
            (Mode::Plain, 0) if !self.done => {
                self.done = true;
                let _ = write!(
                    err,
                    "#0 [internal] load build context\n#0 transferring context: {size} {secs:.1}s done\n#0 DONE {secs:.1}s\n\n"
                );
            }
            _ => {}
        }
        Ok(n)
    }
}

/// The most of a Dockerfile or `.dockerignore` read.
const MAX_SMALL_FILE: u64 = 16 << 20;

/// Reads a Dockerfile or `.dockerignore`: a regular file, at most 16 MiB.
/// Inside an unpacked (tar or stdin) context, `confined` is its root and
/// the path is opened beneath it without following any symlink: a hostile
/// tar cannot point the builder at a host file.
pub(crate) fn read_small(path: &Path, confined: Option<&Path>) -> std::io::Result<Vec<u8>> {
    use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
    let fd = match confined {
        Some(root) => {
            let rel = path.strip_prefix(root).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "outside the context")
            })?;
            let dir = rfs::open(
                root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rfs::openat2(
                &dir,
                rel,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            )?
        }
        None => rfs::open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?,
    };
    let st = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_SMALL_FILE)
        .read_to_end(&mut out)?;
    Ok(out)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn looks_like_archive(h: &[u8]) -> bool {
    h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(b"BZh")
        || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (h.len() >= 262 && &h[257..262] == b"ustar")
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir> {
    let base = std::env::temp_dir();
    for i in 0..16u32 {
        let p = base.join(format!("berth-build-{}-{i}", std::process::id()));
        if std::fs::create_dir(&p).is_ok() {
            return Ok(TempDir(p));
        }
    }
    bail!("cannot create a temp directory in {}", base.display())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Plain,
    Tty,
}

struct Step {
    name: String,
    started: Instant,
    elapsed: Option<Duration>,
    cached: bool,
    /// Output not yet ended by a newline.
    partial: Vec<u8>,
    tail: Vec<String>,
}

/// BuildKit's two progress views.
struct View {
    mode: Mode,
    started: Instant,
    total: usize,
    steps: BTreeMap<usize, Step>,
    /// Lines the live view drew last time (to move back over them).
    drawn: usize,
    last_draw: Option<Instant>,
    export: usize,
}

impl View {
    fn new(mode: Mode) -> View {
        View {
            mode,
            started: Instant::now(),
            total: 0,
            steps: BTreeMap::new(),
            drawn: 0,
            last_draw: None,
            export: 0,
        }
    }

    fn plain(&self, s: &str) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(s.as_bytes());
    }

    fn draw(&mut self, finished: Option<bool>) {
        let cols = terminal_width();
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let done = self.steps.values().filter(|s| s.elapsed.is_some()).count();
        let head = match finished {
            Some(true) => " FINISHED",
            Some(false) => " ERROR",
            None => "",
        };
        let mut lines = vec![format!(
            "[+] Building {:.1}s ({done}/{}){head}",
            self.started.elapsed().as_secs_f64(),
            self.total.max(done)
        )];
        for s in self.steps.values() {
            let t = s.elapsed.unwrap_or_else(|| s.started.elapsed());
            let name = if s.cached {
                format!(" => CACHED {}", s.name)
            } else {
                format!(" => {}", s.name)
            };
            let time = format!("{:.1}s", t.as_secs_f64());
            let room = cols.saturating_sub(time.len() + 1);
            let name: String = name.chars().take(room).collect();
            let pad = room.saturating_sub(name.chars().count());
            lines.push(format!("{name}{}{} {time}", "", " ".repeat(pad)));
            if s.elapsed.is_none() {
                for l in &s.tail {
                    let l: String = format!(" => => # {l}").chars().take(cols).collect();
                    lines.push(l);
                }
            }
        }
        for l in &lines {
            out.push_str(l);
            out.push_str("\x1b[K\n");
        }
        // What the previous, longer view left below.
        let extra = self.drawn.saturating_sub(lines.len());
        for _ in 0..extra {
            out.push_str("\x1b[K\n");
        }
        if extra > 0 {
            out.push_str(&format!("\x1b[{extra}A"));
        }
        self.drawn = lines.len();
        self.last_draw = Some(Instant::now());
        self.plain(&out);
    }

    /// BuildKit's `#N ERROR: …` under the step that failed (plain view).
    fn failed(&self, msg: &str) {
        if self.mode != Mode::Plain {
            return;
        }
        if let Some((n, _)) = self.steps.iter().rev().find(|(_, s)| s.elapsed.is_none()) {
            let first = msg.lines().next().unwrap_or(msg);
            let first = first.split_once(": ").map_or(first, |(_, rest)| rest);
            self.plain(&format!("#{n} ERROR: {first}\n"));
        }
    }

    fn close(&mut self, ok: bool) {
        match self.mode {
            Mode::Tty => self.draw(Some(ok)),
            Mode::Plain | Mode::Quiet => {}
        }
    }
}

fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|c| *c > 20)
        .unwrap_or(80)
}

impl BuildProgress for View {
    fn event(&mut self, e: BuildEvent<'_>) {
        if self.mode == Mode::Quiet {
            return;
        }
        match e {
            BuildEvent::Plan { steps } => {
                self.total = steps + 1;
                if self.mode == Mode::Tty {
                    self.draw(None);
                }
            }
            BuildEvent::Start { step, name } => {
                self.steps.insert(
                    step,
                    Step {
                        name: name.to_string(),
                        started: Instant::now(),
                        elapsed: None,
                        cached: false,
                        partial: Vec::new(),
                        tail: Vec::new(),
                    },
                );
                match self.mode {
                    Mode::Plain => self.plain(&format!("#{step} {name}\n")),
                    _ => self.draw(None),
                }
            }
            BuildEvent::Output { step, data, .. } => {
                let Some(s) = self.steps.get_mut(&step) else {
                    return;
                };
                s.partial.extend_from_slice(data);
                let mut lines = Vec::new();
                while let Some(i) = s.partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = s.partial.drain(..=i).collect();
                    lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
                }
                let at = s.started.elapsed().as_secs_f64();
                match self.mode {
                    Mode::Plain => {
                        let mut text = String::new();
                        for l in &lines {
                            text.push_str(&format!("#{step} {at:.3} {l}\n"));
                        }
                        self.plain(&text);
                    }
                    _ => {
                        s.tail.extend(lines);
                        let n = s.tail.len().saturating_sub(TTY_TAIL);
                        s.tail.drain(..n);
                        let due = self
                            .last_draw
                            .is_none_or(|t| t.elapsed() > Duration::from_millis(100));
                        if due {
                            self.draw(None);
                        }
                    }
                }
            }
            BuildEvent::Cached { step } => {
                if let Some(s) = self.steps.get_mut(&step) {
                    s.cached = true;
                }
                if self.mode == Mode::Plain {
                    self.plain(&format!("#{step} CACHED\n\n"));
                }
            }
            BuildEvent::Done { step, .. } => {
                let Some(s) = self.steps.get_mut(&step) else {
                    return;
                };
                let t = s.started.elapsed();
                s.elapsed = Some(t);
                let rest = std::mem::take(&mut s.partial);
                let cached = s.cached;
                match self.mode {
                    Mode::Plain => {
                        let mut text = String::new();
                        if !rest.is_empty() {
                            text.push_str(&format!(
                                "#{step} {:.3} {}\n",
                                t.as_secs_f64(),
                                String::from_utf8_lossy(&rest)
                            ));
                        }
                        if !cached {
                            text.push_str(&format!("#{step} DONE {:.1}s\n\n", t.as_secs_f64()));
                        }
                        self.plain(&text);
                        self.export = step + 1;
                    }
                    _ => {
                        self.export = step + 1;
                        self.draw(None);
                    }
                }
            }
            // BuildKit's view names no step containers.
            BuildEvent::Container { .. } => {}
            BuildEvent::Finished { image, tags } => {
                let n = self.export;
                match self.mode {
                    Mode::Plain => {
                        let mut text =
                            format!("#{n} exporting to image\n#{n} writing image {image} done\n");
                        for t in tags {
                            text.push_str(&format!("#{n} naming to {} done\n", qualified(t)));
                        }
                        text.push_str(&format!("#{n} DONE 0.0s\n"));
                        self.plain(&text);
                    }
                    _ => {
                        self.steps.insert(
                            n,
                            Step {
                                name: "exporting to image".into(),
                                started: Instant::now(),
                                elapsed: Some(Duration::ZERO),
                                cached: false,
                                partial: Vec::new(),
                                tail: Vec::new(),
                            },
                        );
                    }
                }
            }
        }
    }
}

/// `docker.io/library/x:latest` for `x`, as BuildKit names what it tags.
fn qualified(t: &str) -> String {
    berth_types::Reference::parse(t)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| t.to_string())
}
