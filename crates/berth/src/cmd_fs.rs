//! `export`, `cp`, `container prune`, `image prune`, `system df`, `system
//! prune`: argv to the engine's filesystem and housekeeping verbs, and their
//! output.

use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use berth_engine::{CopyOptions, DiskUsage, Engine, HostPath, RemovedImage};
use chrono::{DateTime, Utc};

use crate::cli::{
    BuilderPruneArgs, CpArgs, ExportArgs, ImagePruneArgs, PruneArgs, SystemDfArgs, SystemPruneArgs,
};
use crate::format::human::{ago, command_column, human_size, status_line, truncate_id};
use crate::format::table;
use crate::format::template::Format;
use crate::output::OutputFile;

/// `export [-o FILE] CONTAINER`: a file is written as `save -o` writes it
/// ([`OutputFile`]): checked first, complete before it replaces anything.
pub fn export(e: &Engine, a: &ExportArgs) -> Result<i32> {
    // `-o ""` is standard output, as with Docker.
    match a.output.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => {
            let file = OutputFile::create(path, "failed to export container")?;
            e.export(&a.container, file.file().as_fd())?;
            file.commit()?;
        }
        None => {
            let out = std::io::stdout();
            if rustix::termios::isatty(&out) {
                // The docker CLI's own check: its words alone, exit 1.
                bail!(crate::usage::CliError::Bare {
                    message: "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        .into(),
                    code: 1
                });
            }
            out.lock().flush()?;
            e.export(&a.container, out.as_fd())?;
        }
    }
    Ok(0)
}

/// Docker's split of a `cp` argument: `CONTAINER:PATH`, or a local path
/// (absolute, starting with `.`, or without a colon).
fn container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty()).then_some((c, p))
}

/// `cp [-a] [-L] CONTAINER:SRC DEST|-` and `cp [-a] [-L] SRC|- CONTAINER:DEST`
pub fn cp(e: &Engine, a: &CpArgs) -> Result<i32> {
    let opts = CopyOptions {
        archive: a.archive,
        follow_link: a.follow_link,
        // as the docker CLI always asks
        no_overwrite_dir_non_dir: true,
    };
    match (container_path(&a.source), container_path(&a.destination)) {
        // The docker CLI's own checks: its words alone, exit 1.
        (Some(_), Some(_)) => bail!(crate::usage::CliError::Bare {
            message: "copying between containers is not supported".into(),
            code: 1
        }),
        (None, None) => bail!(crate::usage::CliError::Bare {
            message: "must specify at least one container source".into(),
            code: 1
        }),
        (Some((c, src)), None) => {
            if a.destination == "-" {
                let out = std::io::stdout();
                out.lock().flush()?;
                e.copy_from_container(c, src, HostPath::Tar(out.as_fd()), opts)?;
            } else {
                let dest = Path::new(&a.destination);
                let n = e.copy_from_container(c, src, HostPath::Path(dest), opts)?;
                report_copied(a, n, &a.destination);
            }
        }
        (None, Some((c, dest))) => {
            if a.source == "-" {
                let stdin = std::io::stdin();
                e.copy_to_container(c, HostPath::Tar(stdin.as_fd()), dest, opts)?;
            } else {
                let src = Path::new(&a.source);
                let n = e.copy_to_container(c, HostPath::Path(src), dest, opts)?;
                report_copied(a, n, &a.destination);
            }
        }
    }
    Ok(0)
}

/// The docker CLI's closing line, on a terminal only (unless `-q`).
fn report_copied(a: &CpArgs, bytes: u64, to: &str) {
    if !a.quiet && rustix::termios::isatty(std::io::stderr()) {
        errln!("Successfully copied {} to {to}", human_size(bytes));
    }
}

/// Docker's prompt (on stdout, the answer on stdin): true only for `y` or
/// `Y`, spaces around it allowed. Anything else — `n`, `yes`, an empty line,
/// no input at all — is no, and the command then ends with 0 having printed
/// nothing more.
pub(crate) fn confirm(warning: &str) -> Result<bool> {
    ask(&format!(
        "{warning}\nAre you sure you want to continue? [y/N] "
    ))
}

/// [`confirm`] with the whole question given (`builder prune` asks on one
/// line).
fn ask(question: &str) -> Result<bool> {
    out!("{question}")?;
    std::io::stdout().lock().flush()?;
    let mut answer = String::new();
    // A read error (stdin closed) is no answer, so no.
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

/// `container prune [-f]`
pub fn container_prune(e: &mut Engine, a: &PruneArgs) -> Result<i32> {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let filters = berth_engine::filters::Filters::parse(&a.filter).map_err(|err| {
        anyhow::anyhow!(crate::usage::CliError::Flag(format!(
            "invalid argument \"{}\" for \"--filter\" flag: {err}",
            err.0
        )))
    })?;
    let r = e.prune_containers(&filters)?;
    if !r.deleted.is_empty() {
        outln!("Deleted Containers:")?;
        for id in &r.deleted {
            outln!("{id}")?;
        }
        outln!()?;
    }
    outln!("Total reclaimed space: {}", human_size(r.space_reclaimed))?;
    Ok(0)
}

/// `volume prune [-a] [-f]`: Docker ≥ 23's meaning (API 1.42): anonymous
/// volumes no container uses, every unused one with `-a`.
pub fn volume_prune(e: &mut Engine, all: bool, force: bool) -> Result<i32> {
    let what = if all { "all" } else { "anonymous" };
    if !force
        && !confirm(&format!(
            "WARNING! This will remove {what} local volumes not used by at least one container."
        ))?
    {
        return Ok(0);
    }
    let r = e.prune_volumes(all)?;
    if !r.deleted.is_empty() {
        outln!("Deleted Volumes:")?;
        for n in &r.deleted {
            outln!("{n}")?;
        }
        outln!()?;
    }
    outln!("Total reclaimed space: {}", human_size(r.space_reclaimed))?;
    Ok(0)
}

fn print_removed_images(removed: &[RemovedImage]) -> Result<()> {
    if removed.is_empty() {
        return Ok(());
    }
    outln!("Deleted Images:")?;
    for r in removed {
        match r {
            RemovedImage::Untagged(t) => outln!("untagged: {t}")?,
            RemovedImage::Deleted(d) => outln!("deleted: {d}")?,
        }
    }
    outln!()?;
    Ok(())
}

/// `image prune [-a] [-f]`
pub fn image_prune(e: &mut Engine, a: &ImagePruneArgs) -> Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning)? {
        return Ok(0);
    }
    let r = e.prune_images(a.all)?;
    print_removed_images(&r.removed)?;
    outln!("Total reclaimed space: {}", human_size(r.space_reclaimed))?;
    Ok(0)
}

fn print_deleted_cache(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    outln!("Deleted build cache objects:")?;
    for id in ids {
        outln!("{id}")?;
    }
    outln!()?;
    Ok(())
}

/// `builder prune [-a] [-f] [--filter until=D] [--keep-storage SIZE]`, and
/// `buildx prune`.
pub fn builder_prune(e: &mut Engine, a: &BuilderPruneArgs) -> Result<i32> {
    let filters = berth_engine::filters::Filters::parse(&a.filter).map_err(|err| {
        anyhow::anyhow!(crate::usage::CliError::Flag(format!(
            "invalid argument \"{}\" for \"--filter\" flag: {err}",
            err.0
        )))
    })?;
    let keep_storage = a
        .keep_storage
        .as_deref()
        .map(|v| {
            berth_engine::ram_in_bytes(v).map_err(|err| {
                anyhow::anyhow!(crate::usage::CliError::Flag(format!(
                    "invalid argument \"{v}\" for \"--keep-storage\" flag: {err}"
                )))
            })
        })
        .transpose()?;
    let question = if a.all {
        "WARNING! This will remove all build cache. Are you sure you want to continue? [y/N] "
    } else {
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "
    };
    if !a.force && !ask(question)? {
        return Ok(0);
    }
    let r = e.prune_build_cache(&berth_engine::BuildCachePruneOptions {
        all: a.all,
        filters,
        keep_storage,
    })?;
    print_deleted_cache(&r.deleted)?;
    outln!("Total reclaimed space: {}", human_size(r.space_reclaimed))?;
    Ok(0)
}

/// `system prune [-a] [-f] [--volumes]`
pub fn system_prune(e: &mut Engine, a: &SystemPruneArgs) -> Result<i32> {
    if !a.force {
        // Docker's words.
        let mut w = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
        );
        if a.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        w.push_str(if a.all {
            "  - all images without at least one container associated to them\n  - all build cache\n"
        } else {
            "  - all dangling images\n  - unused build cache\n"
        });
        if !confirm(&w)? {
            return Ok(0);
        }
    }
    let r = e.prune_system(a.all, a.volumes)?;
    // The custom networks no running container is on, as `network prune`.
    let networks = e.network_prune(&berth_engine::filters::Filters::default())?;
    if !r.containers.deleted.is_empty() {
        outln!("Deleted Containers:")?;
        for id in &r.containers.deleted {
            outln!("{id}")?;
        }
        outln!()?;
    }
    if !networks.is_empty() {
        outln!("Deleted Networks:")?;
        for n in &networks {
            outln!("{n}")?;
        }
        outln!()?;
    }
    if let Some(v) = r.volumes.as_ref().filter(|v| !v.deleted.is_empty()) {
        outln!("Deleted Volumes:")?;
        for name in &v.deleted {
            outln!("{name}")?;
        }
        outln!()?;
    }
    print_removed_images(&r.images.removed)?;
    print_deleted_cache(&r.build_cache.deleted)?;
    outln!("Total reclaimed space: {}", human_size(r.space_reclaimed()))?;
    Ok(0)
}

const DF_HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

/// The docker CLI's RECLAIMABLE column: the size, and its share of the
/// total when there is a total.
fn reclaimable(part: u64, total: u64) -> String {
    if total == 0 {
        return human_size(part);
    }
    format!("{} ({}%)", human_size(part), part * 100 / total)
}

/// `system df [-v] [--format F]`
pub fn system_df(e: &Engine, a: &SystemDfArgs) -> Result<i32> {
    let u = e.disk_usage()?;
    if a.verbose && a.format.is_none() {
        print_df_verbose(&u)?;
        return Ok(0);
    }
    let row = |kind: &str, total: usize, active: usize, size: String, rec: String| {
        serde_json::json!({
            "Type": kind,
            "TotalCount": total.to_string(),
            "Active": active.to_string(),
            "Size": size,
            "Reclaimable": rec,
        })
    };
    let rows = vec![
        row(
            "Images",
            u.images.len(),
            u.active_images(),
            human_size(u.images_size),
            reclaimable(u.images_reclaimable, u.images_size),
        ),
        row(
            "Containers",
            u.containers.len(),
            u.running_containers(),
            human_size(u.containers_size),
            reclaimable(u.containers_reclaimable, u.containers_size),
        ),
        row(
            "Local Volumes",
            u.volumes.len(),
            u.active_volumes(),
            human_size(u.volumes_size),
            reclaimable(u.volumes_reclaimable, u.volumes_size),
        ),
        // Docker's Build Cache row has no share in its RECLAIMABLE.
        row(
            "Build Cache",
            u.build_cache.len(),
            u.active_build_cache(),
            human_size(u.build_cache_size()),
            human_size(u.build_cache_reclaimable()),
        ),
    ];
    let fmt = Format::parse(a.format.as_deref().unwrap_or("table"))
        .and_then(|f| {
            f.with_default(
                "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            )
        })
        .map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if fmt.is_table() {
        let s = fmt
            .render_table(&rows, DF_HEADERS)
            .map_err(|e| anyhow!("{e}"))?;
        out.write_all(s.as_bytes())?;
    } else {
        for r in &rows {
            let s = fmt.render(r).map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "{s}")?;
        }
    }
    Ok(0)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `system df -v`: one table per kind of object.
fn print_df_verbose(u: &DiskUsage) -> Result<()> {
    let now = Utc::now();
    outln!("Images space usage:\n")?;
    let mut rows = Vec::new();
    for img in &u.images {
        let created = parse_time(&img.created).map_or_else(String::new, |t| ago(t, now));
        let names: Vec<(String, String)> = if img.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.tags
                .iter()
                .map(|r| {
                    (
                        r.familiar_repository(),
                        r.tag().unwrap_or("<none>").to_string(),
                    )
                })
                .collect()
        };
        for (repo, tag) in names {
            rows.push(vec![
                repo,
                tag,
                truncate_id(img.id.as_str()).to_string(),
                created.clone(),
                human_size(img.size),
                human_size(img.shared_size),
                human_size(img.unique_size()),
                img.containers.to_string(),
            ]);
        }
    }
    out!(
        "{}",
        table::render(
            &[
                "REPOSITORY",
                "TAG",
                "IMAGE ID",
                "CREATED",
                "SIZE",
                "SHARED SIZE",
                "UNIQUE SIZE",
                "CONTAINERS"
            ],
            &rows
        )
    )?;

    outln!("\nContainers space usage:\n")?;
    let rows: Vec<Vec<String>> = u
        .containers
        .iter()
        .map(|c| {
            let v = &c.container;
            let created = parse_time(&v.created).map_or_else(String::new, |t| ago(t, now));
            let status = status_line(
                v.status_word(),
                i64::from(v.state.exit_code),
                parse_time(&v.state.started_at),
                parse_time(&v.state.finished_at),
                now,
                false,
                v.status_word() == "restarting",
            );
            let volumes = v
                .host_config
                .mounts
                .iter()
                .filter(|m| m.kind == "volume")
                .count();
            vec![
                v.id.short().to_string(),
                v.image.clone(),
                command_column(&v.command_line().join(" "), true),
                volumes.to_string(),
                human_size(c.size),
                created,
                status,
                v.name.clone(),
            ]
        })
        .collect();
    out!(
        "{}",
        table::render(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "LOCAL VOLUMES",
                "SIZE",
                "CREATED",
                "STATUS",
                "NAMES"
            ],
            &rows
        )
    )?;

    outln!("\nLocal Volumes space usage:\n")?;
    let rows: Vec<Vec<String>> = u
        .volumes
        .iter()
        .map(|v| vec![v.name.clone(), v.links.to_string(), human_size(v.size)])
        .collect();
    out!(
        "{}",
        table::render(&["VOLUME NAME", "LINKS", "SIZE"], &rows)
    )?;

    outln!(
        "\nBuild cache usage: {}\n",
        human_size(u.build_cache_size())
    )?;
    let rows: Vec<Vec<String>> = u
        .build_cache
        .iter()
        .map(|r| {
            vec![
                truncate_id(&r.id).to_string(),
                // BuildKit's type for a step's result.
                "regular".to_string(),
                human_size(r.size),
                ago(r.created, now),
                ago(r.last_used, now),
                r.usage.to_string(),
                r.shared.to_string(),
            ]
        })
        .collect();
    out!(
        "{}",
        table::render(
            &[
                "CACHE ID",
                "CACHE TYPE",
                "SIZE",
                "CREATED",
                "LAST USED",
                "USAGE",
                "SHARED"
            ],
            &rows
        )
    )?;
    Ok(())
}
