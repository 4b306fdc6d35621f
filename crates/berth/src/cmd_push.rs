//! `push` and `image push`: Docker's output (`The push refers to
//! repository […]`, a line per layer — live on a terminal, plain lines
//! otherwise — then `TAG: digest: sha256:… size: N`); `-q` prints only the
//! name.

use anyhow::{anyhow, Result};
use berth_engine::{Engine, PushEvent, PushOptions, PushStatus};
use berth_types::Reference;

use crate::cli::PushArgs;
use crate::cmd_pull::{bar, names_tag, user_auth, Printer};

fn event(printer: &Printer, ev: PushEvent) {
    let text = match ev.status {
        PushStatus::Preparing => "Preparing".to_string(),
        PushStatus::Waiting => "Waiting".to_string(),
        PushStatus::Pushing { current, total } => {
            if !printer.live() {
                return;
            }
            format!("Pushing {}", bar(current, total))
        }
        PushStatus::Pushed => "Pushed".to_string(),
        PushStatus::AlreadyExists => "Layer already exists".to_string(),
        PushStatus::MountedFrom(from) => format!("Mounted from {from}"),
    };
    // A progress line that cannot be shown is not worth failing for.
    let _ = printer.show(&ev.id, text);
}

/// Pushes `r` (a tag), printing Docker's lines from the layers on.
fn push_one(e: &mut Engine, r: &Reference, opts: &PushOptions, printer: &Printer) -> Result<()> {
    // Docker's daemon reports a push's failure in its progress stream:
    // the CLI prints it bare and exits 1.
    let pushed = e.push(r, opts, &|ev| event(printer, ev)).map_err(bare)?;
    printer.line(&format!(
        "{}: digest: {} size: {}",
        pushed.tag, pushed.digest, pushed.size
    ))?;
    Ok(())
}

fn bare(err: berth_engine::EngineError) -> anyhow::Error {
    anyhow!(crate::usage::CliError::Bare {
        message: err.to_string(),
        code: 1,
    })
}

/// `push [-a] [-q] NAME[:TAG]`
pub fn push(e: &mut Engine, a: &PushArgs) -> Result<i32> {
    // The docker CLI's own checks: its words alone.
    let r = crate::commands::client_reference(&a.name)?;
    if a.all_tags && names_tag(&a.name) {
        anyhow::bail!(crate::usage::CliError::Bare {
            message: "tag can't be used with --all-tags/-a".into(),
            code: 1,
        });
    }
    if r.digest().is_some() {
        anyhow::bail!(crate::usage::CliError::Bare {
            message: format!("invalid reference format: {} is a digest reference", a.name),
            code: 1,
        });
    }
    let settings = crate::cmd_pull::registry_settings()?;
    let opts = PushOptions {
        auth: Some(user_auth(settings.clone())?),
        concurrent_uploads: settings.max_concurrent_uploads,
        settings,
    };
    let printer = Printer::new(false, a.quiet);
    let repo = r.familiar_repository();
    if a.all_tags {
        printer.line(&format!(
            "The push refers to repository [{}]",
            r.repository()
        ))?;
        let tags = e.local_tags(&r)?;
        if tags.is_empty() {
            return Err(bare(berth_engine::EngineError::NoLocalTag(repo)));
        }
        for tag in tags {
            let tagged =
                Reference::parse(&format!("{repo}:{tag}")).map_err(|err| anyhow!("{err}"))?;
            push_one(e, &tagged, &opts, &printer)?;
        }
    } else {
        if !names_tag(&a.name) {
            printer.line("Using default tag: latest")?;
        }
        printer.line(&format!(
            "The push refers to repository [{}]",
            r.repository()
        ))?;
        push_one(e, &r, &opts, &printer)?;
    }
    if a.quiet {
        // The name as Docker's CLI normalised it: the default tag added,
        // none with -a.
        if a.all_tags {
            outln!("{}", r.repository())?;
        } else {
            outln!("{r}")?;
        }
    }
    Ok(0)
}
