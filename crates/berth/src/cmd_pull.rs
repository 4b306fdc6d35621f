//! `pull` and the implicit pull of `run`/`create`: Docker's progress
//! output (live per-layer lines on a terminal, plain status lines
//! otherwise), then `Digest:`, `Status:` and the reference.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use berth_engine::{Engine, LayerStatus, PullEvent, PullOptions, Pulled};
use berth_types::{Platform, Reference};

use crate::cli::PullArgs;
use crate::format::human::human_size;

/// Where the progress goes and how (pull's and push's).
pub(crate) struct Printer {
    to_stderr: bool,
    live: bool,
    quiet: bool,
    /// Live view: layer ids in the order of their lines, and their text.
    lines: Mutex<Vec<(String, String)>>,
}

impl Printer {
    pub(crate) fn new(to_stderr: bool, quiet: bool) -> Printer {
        let live = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Printer {
            to_stderr,
            live,
            quiet,
            lines: Mutex::new(Vec::new()),
        }
    }

    fn write(&self, text: &str) -> std::io::Result<()> {
        if self.to_stderr {
            let mut e = std::io::stderr().lock();
            e.write_all(text.as_bytes())?;
            e.flush()
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())?;
            o.flush()
        }
    }

    pub(crate) fn line(&self, text: &str) -> std::io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.write(&format!("{text}\n"))
    }

    fn event(&self, ev: PullEvent) {
        if self.quiet {
            return;
        }
        // A progress line that cannot be shown is not worth failing for.
        let _ = match ev {
            PullEvent::Pulling { what, repository } => {
                self.line(&format!("{what}: Pulling from {repository}"))
            }
            PullEvent::Layer { id, status } => self.layer(&id, &status),
        };
    }

    fn layer(&self, id: &str, status: &LayerStatus) -> std::io::Result<()> {
        let text = match status {
            LayerStatus::AlreadyExists => "Already exists".to_string(),
            LayerStatus::PullingFsLayer => "Pulling fs layer".to_string(),
            LayerStatus::Waiting => "Waiting".to_string(),
            LayerStatus::Downloading { current, total } => {
                if !self.live {
                    return Ok(());
                }
                format!("Downloading {}", bar(*current, *total))
            }
            LayerStatus::VerifyingChecksum => "Verifying Checksum".to_string(),
            LayerStatus::DownloadComplete => "Download complete".to_string(),
            LayerStatus::Extracting { current, total } => {
                if !self.live {
                    return Ok(());
                }
                format!("Extracting {}", bar(*current, *total))
            }
            LayerStatus::PullComplete => "Pull complete".to_string(),
        };
        self.show(id, text)
    }

    /// Whether progress lines are redrawn in place (a terminal).
    pub(crate) fn live(&self) -> bool {
        self.live
    }

    /// A layer's line `ID: TEXT`: appended, or rewritten in place on a
    /// terminal.
    pub(crate) fn show(&self, id: &str, text: String) -> std::io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        if !self.live {
            return self.line(&format!("{id}: {text}"));
        }
        let Ok(mut lines) = self.lines.lock() else {
            return Ok(());
        };
        match lines.iter().position(|(l, _)| l == id) {
            None => {
                lines.push((id.to_string(), text.clone()));
                self.write(&format!("{id}: {text}\n"))
            }
            Some(i) => {
                lines[i].1 = text.clone();
                let up = lines.len() - i;
                // Up to the layer's line, rewrite it, back down.
                self.write(&format!("\x1b[{up}A\r\x1b[2K{id}: {text}\r\x1b[{up}B"))
            }
        }
    }
}

/// Docker's progress bar: `[=====>      ]  1.2MB/3.4MB`.
pub(crate) fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return human_size(current);
    }
    let filled = (current.min(total) * WIDTH / total) as usize;
    let mut b = "=".repeat(filled);
    if (filled as u64) < WIDTH {
        b.push('>');
        b.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    }
    format!("[{b}]  {}/{}", human_size(current), human_size(total))
}

fn platform_of(p: Option<&str>) -> Result<Option<Platform>> {
    p.filter(|s| !s.is_empty())
        .map(|s| Platform::parse(s).map_err(|e| anyhow!(e)))
        .transpose()
}

/// Pulls `r`, printing Docker's lines up to `Digest:`.
fn pull_digest(
    e: &mut Engine,
    r: &Reference,
    opts: &PullOptions,
    printer: &Printer,
) -> Result<Pulled> {
    let pulled = e.pull(r, opts, &|ev| printer.event(ev))?;
    printer.line(&format!("Digest: {}", pulled.digest))?;
    Ok(pulled)
}

/// The `Status:` line for `what` (`x:latest`, or a repository after `-a`).
fn status(printer: &Printer, updated: bool, what: &str) -> Result<()> {
    let status = if updated {
        "Downloaded newer image for"
    } else {
        "Image is up to date for"
    };
    printer.line(&format!("Status: {status} {what}"))?;
    Ok(())
}

/// Pulls `r`, printing Docker's lines; returns what was pulled.
fn pull_one(
    e: &mut Engine,
    r: &Reference,
    opts: &PullOptions,
    printer: &Printer,
) -> Result<Pulled> {
    let pulled = pull_digest(e, r, opts, printer)?;
    status(printer, pulled.updated, &r.familiar())?;
    Ok(pulled)
}

/// Whether the user named a tag or digest (else Docker says it uses
/// `latest`).
pub(crate) fn names_tag(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    name.contains('@') || last.contains(':')
}

/// The user's Docker credentials (`berth login`'s config file and helpers),
/// asked only when a registry answers 401.
pub(crate) fn user_auth(
    settings: std::sync::Arc<berth_registry::Settings>,
) -> Result<std::sync::Arc<dyn berth_registry::Auth>> {
    let c = berth_registry::auth::Credentialed::from_user_config()
        .map_err(|err| anyhow!("{err}"))?
        // A registry's token server is reached with the registry's own TLS
        // settings (certs.d), as Docker's daemon reaches it.
        .with_agent_for(move |registry| settings.token_agent(registry));
    Ok(std::sync::Arc::new(c))
}

/// berth's registry settings (`$BERTH_CONFIG` or /etc/berth/config.toml).
pub fn registry_settings() -> Result<std::sync::Arc<berth_registry::Settings>> {
    let s = berth_registry::Settings::load_default().map_err(|err| anyhow!("{err}"))?;
    Ok(std::sync::Arc::new(s))
}

/// How a pull goes: the user's credentials and berth's settings.
pub fn pull_options(platform: Option<Platform>) -> Result<PullOptions> {
    let settings = registry_settings()?;
    Ok(PullOptions {
        platform,
        auth: Some(user_auth(settings.clone())?),
        concurrent_downloads: settings.max_concurrent_downloads,
        settings,
    })
}

/// `pull [-a] [-q] [--platform P] NAME[:TAG|@DIGEST]`
pub fn pull(e: &mut Engine, a: &PullArgs) -> Result<i32> {
    // The docker CLI's own check: its words alone.
    let r = crate::commands::client_reference(&a.name)?;
    let opts = pull_options(platform_of(a.platform.as_deref())?)?;
    let printer = Printer::new(false, a.quiet);
    if a.all_tags {
        if names_tag(&a.name) {
            anyhow::bail!(crate::usage::CliError::Bare {
                message: "tag can't be used with --all-tags/-a".into(),
                code: 1,
            });
        }
        // As Docker's: each tag's lines up to its digest, one status for
        // the repository.
        let repo = Reference::parse(&r.familiar_repository()).map_err(|err| anyhow!("{err}"))?;
        let mut updated = false;
        for tag in e.remote_tags(&repo, &opts)? {
            let tagged = Reference::parse(&format!("{}:{tag}", r.familiar_repository()))
                .map_err(|err| anyhow!("{err}"))?;
            updated |= pull_digest(e, &tagged, &opts, &printer)?.updated;
        }
        status(&printer, updated, &r.familiar_repository())?;
        outln!("{}", r.repository())?;
        return Ok(0);
    }
    if !names_tag(&a.name) {
        printer.line("Using default tag: latest")?;
    }
    pull_one(e, &r, &opts, &printer)?;
    outln!("{r}")?;
    Ok(0)
}

/// `run`/`create --pull`: checked as Docker's CLI checks it.
pub fn check_pull_policy(policy: &str) -> Result<()> {
    match policy {
        "always" | "missing" | "never" => Ok(()),
        other => Err(anyhow!(crate::usage::CliError::Bare {
            message: format!(
                "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
            ),
            code: 125,
        })),
    }
}

/// The pull `run` and `create` make (`--pull always`, or a missing
/// image): the pull's output on stderr.
pub fn pull_for_run(
    e: &mut Engine,
    image: &str,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let r = Reference::parse(image).map_err(|err| anyhow!("{err}"))?;
    let opts = pull_options(platform_of(platform)?)?;
    let printer = Printer::new(true, quiet);
    pull_one(e, &r, &opts, &printer)?;
    Ok(())
}
