//! `sbom IMAGE|CONTAINER` and `packages ls|reindex`: the package inventory
//! (issue 12) as tables, JSON and SBOM documents.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use berth_engine::inventory::{PackageQuery, Sbom};
use berth_engine::Engine;
use berth_inventory::Constraint;

use crate::cli::{ImpactArgs, PackagesCommand, PackagesLsArgs, SbomArgs, ScanArgs};
use crate::commands::print_rows;

const SBOM_HEADERS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Version", "VERSION"),
    ("Type", "TYPE"),
    ("Layer", "LAYER"),
    ("FoundIn", "FOUND IN"),
];

const LS_DEFAULT: &str =
    "table {{.Kind}}\t{{.Name}}\t{{.Package}}\t{{.Version}}\t{{.Type}}\t{{.Where}}";
const LS_HEADERS: &[(&str, &str)] = &[
    ("Kind", "KIND"),
    ("Name", "NAME"),
    ("ID", "ID"),
    ("Package", "PACKAGE"),
    ("Version", "VERSION"),
    ("Type", "TYPE"),
    ("Where", "WHERE"),
];

/// `sbom [--format table|json|spdx-json|cyclonedx-json] [-o FILE] TARGET`
pub fn sbom(e: &mut Engine, a: &SbomArgs) -> Result<i32> {
    let s = e.sbom(&a.target)?;
    let text = match a.format.as_str() {
        "table" => table(&s)?,
        "json" => serde_json::to_string_pretty(&s)? + "\n",
        "spdx-json" | "cyclonedx-json" => {
            use berth_inventory::sbom;
            let subject = sbom::Subject {
                name: s.name.clone(),
                id: s.id.clone(),
                kind: if s.kind == "container" {
                    sbom::SubjectKind::Container
                } else {
                    sbom::SubjectKind::Image
                },
            };
            let layers: Vec<sbom::Layer> = s
                .layers
                .iter()
                .map(|l| sbom::Layer {
                    digest: l.digest.clone(),
                    created_by: l.created_by.clone(),
                })
                .collect();
            // SPDX wants whole seconds in UTC with a Z.
            let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let version = env!("CARGO_PKG_VERSION");
            let doc = if a.format == "spdx-json" {
                sbom::spdx_json(&subject, &layers, &s.packages, &created, version)
            } else {
                sbom::cyclonedx_json(&subject, &layers, &s.packages, &created, version)
            };
            serde_json::to_string_pretty(&doc)? + "\n"
        }
        other => bail!("unknown --format {other:?}: table, json, spdx-json or cyclonedx-json"),
    };
    for f in &s.findings {
        errln!("WARNING: {}", finding_line(f));
    }
    match &a.output {
        Some(path) => {
            let out = crate::output::OutputFile::create(path, "SBOM")?;
            out.file().write_all(text.as_bytes())?;
            out.commit()?;
        }
        None => out!("{text}")?,
    }
    Ok(0)
}

fn finding_line(f: &berth_inventory::Finding) -> String {
    match f {
        berth_inventory::Finding::Unreadable { path, reason } => {
            format!("/{path}: could not be read: {reason}")
        }
        berth_inventory::Finding::Unsupported { path, format } => {
            format!("/{path}: {format} is not supported")
        }
    }
}

fn table(s: &Sbom) -> Result<String> {
    let rows: Vec<serde_json::Value> = s
        .packages
        .iter()
        .map(|p| {
            let layer = p
                .layer
                .and_then(|i| s.layers.get(i))
                .map(|l| short_layer(&l.digest))
                .unwrap_or_default();
            serde_json::json!({
                "Name": p.name,
                "Version": p.version,
                "Type": p.ecosystem.as_str(),
                "Layer": layer,
                "FoundIn": format!("/{}", p.found_in),
            })
        })
        .collect();
    let f = crate::format::template::Format::parse("table")
        .and_then(|f| {
            f.with_default("table {{.Name}}\t{{.Version}}\t{{.Type}}\t{{.Layer}}\t{{.FoundIn}}")
        })
        .map_err(|m| anyhow!("{m}"))?;
    f.render_rows(&rows, SBOM_HEADERS)
        .map_err(|m| anyhow!("{m}"))
}

fn short_layer(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(h) => h.get(..12).unwrap_or(h).to_string(),
        None => d.to_string(),
    }
}

pub fn packages(e: &mut Engine, c: &PackagesCommand) -> Result<i32> {
    match c {
        PackagesCommand::Ls(a) => ls(e, a),
        PackagesCommand::Impact(a) => impact(e, a),
        PackagesCommand::Reindex => {
            // A one-line progress on a terminal (stderr), as a pull's.
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let n = e.reindex(|done, total| {
                if tty {
                    let _ = write!(std::io::stderr(), "\rInventorying images {done}/{total}");
                }
            })?;
            if tty && n > 0 {
                let _ = writeln!(std::io::stderr());
            }
            outln!("{n} images inventoried")?;
            Ok(0)
        }
    }
}

/// Parses `--filter` values: `name=`, `ecosystem=`, `version<…`.
fn query(a: &PackagesLsArgs) -> Result<PackageQuery> {
    let mut q = PackageQuery {
        images: a.images,
        containers: a.containers,
        ..Default::default()
    };
    for f in &a.filter {
        if let Some(v) = f.strip_prefix("name=") {
            q.name = Some(v.to_string());
        } else if let Some(v) = f.strip_prefix("ecosystem=") {
            if berth_inventory::Ecosystem::parse(v).is_none() {
                bail!("Invalid filter 'ecosystem={v}'");
            }
            q.ecosystem = Some(v.to_ascii_lowercase());
        } else if let Some(rest) = f.strip_prefix("version") {
            let c =
                Constraint::parse_all(rest).map_err(|e| anyhow!("Invalid filter '{f}': {e}"))?;
            q.version.extend(c);
        } else {
            let key = f.split(['=', '<', '>', '!']).next().unwrap_or(f);
            bail!("Invalid filter '{key}'");
        }
    }
    Ok(q)
}

fn ls(e: &mut Engine, a: &PackagesLsArgs) -> Result<i32> {
    let q = query(a)?;
    let hits = e.packages(&q)?;
    let rows: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| {
            let short =
                h.id.strip_prefix("sha256:")
                    .unwrap_or(&h.id)
                    .get(..12)
                    .unwrap_or(&h.id)
                    .to_string();
            let place = if h.kind == "container" {
                if h.in_container_layer {
                    "its writable layer".to_string()
                } else {
                    format!("image {}", h.image)
                }
            } else {
                format!("/{}", h.package.found_in)
            };
            serde_json::json!({
                "Kind": h.kind,
                "Name": h.name,
                "ID": short,
                "Package": h.package.name,
                "Version": h.package.version,
                "Type": h.package.ecosystem.as_str(),
                "Source": h.package.source.clone().unwrap_or_default(),
                "Purl": h.package.purl,
                "Where": place,
            })
        })
        .collect();
    let fmt = a.format.clone().unwrap_or_else(|| LS_DEFAULT.to_string());
    let fmt = if fmt == "table" {
        LS_DEFAULT.to_string()
    } else {
        fmt
    };
    print_rows(&fmt, &rows, LS_HEADERS)?;
    Ok(0)
}

/// `packages impact NAME --fixed V [--format table|json]`: exit 1 when
/// anything is affected, so a CI job can gate on it.
fn impact(e: &mut Engine, a: &ImpactArgs) -> Result<i32> {
    let rows = e.impact(&a.package, &a.fixed)?;
    match a.format.as_str() {
        "json" => outln!("{}", serde_json::to_string_pretty(&rows)?)?,
        "table" => {
            let table: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "Kind": r.kind,
                        "Name": r.name,
                        "Package": r.package.name,
                        "Version": r.package.version,
                        "Layer": r.layer.as_ref().map(|l| short_layer(&l.digest)).unwrap_or_else(|| "(its writable layer)".into()),
                        "Step": r.layer.as_ref().and_then(|l| l.created_by.clone()).unwrap_or_default(),
                        "Running": r.containers.join(","),
                    })
                })
                .collect();
            print_rows(
                "table {{.Kind}}\t{{.Name}}\t{{.Package}}\t{{.Version}}\t{{.Layer}}\t{{.Running}}\t{{.Step}}",
                &table,
                &[
                    ("Kind", "KIND"),
                    ("Name", "NAME"),
                    ("Package", "PACKAGE"),
                    ("Version", "VERSION"),
                    ("Layer", "LAYER"),
                    ("Running", "RUNNING CONTAINERS"),
                    ("Step", "STEP"),
                ],
            )?;
        }
        other => bail!("unknown --format {other:?}: table or json"),
    }
    Ok(if rows.is_empty() { 0 } else { 1 })
}

/// `scan --db PATH [--all] [--format table|json] [TARGET...]`: the
/// packages of each target matched against OSV advisories, offline; exit
/// 1 when anything matches.
pub fn scan(e: &mut Engine, a: &ScanArgs) -> Result<i32> {
    let targets = if a.all {
        e.scan_targets()?
    } else if a.targets.is_empty() {
        bail!("\"berth scan\" requires at least 1 argument, or --all")
    } else {
        a.targets.clone()
    };
    let (db, problems) = berth_inventory::osv::AdvisoryDb::load(&a.db)
        .map_err(|err| anyhow!("advisories {}: {err}", a.db.display()))?;
    for p in &problems {
        errln!("WARNING: {}: {}", p.path, p.reason);
    }
    let mut found = Vec::new();
    for t in &targets {
        let s = e.sbom(t)?;
        for p in &s.packages {
            for m in db.matches_on(p, s.os.as_ref()) {
                let layer = p.layer.and_then(|i| s.layers.get(i)).cloned();
                found.push((s.kind, s.name.clone(), m, layer));
            }
        }
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<serde_json::Value> = found
                .iter()
                .map(|(kind, name, m, layer)| {
                    serde_json::json!({"kind": kind, "target": name, "match": m, "layer": layer})
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&v)?)?;
        }
        "table" => {
            let rows: Vec<serde_json::Value> = found
                .iter()
                .map(|(_, name, m, layer)| {
                    serde_json::json!({
                        "Target": name,
                        "Package": m.package.name,
                        "Version": m.package.version,
                        "ID": m.id,
                        "Severity": m.level.map(|l| format!("{l:?}").to_uppercase()).unwrap_or_default(),
                        "Fixed": m.fixed.clone().unwrap_or_default(),
                        "Layer": layer.as_ref().map(|l| short_layer(&l.digest)).unwrap_or_default(),
                    })
                })
                .collect();
            print_rows(
                "table {{.Target}}\t{{.Package}}\t{{.Version}}\t{{.ID}}\t{{.Severity}}\t{{.Fixed}}\t{{.Layer}}",
                &rows,
                &[
                    ("Target", "TARGET"),
                    ("Package", "PACKAGE"),
                    ("Version", "VERSION"),
                    ("ID", "ADVISORY"),
                    ("Severity", "SEVERITY"),
                    ("Fixed", "FIXED IN"),
                    ("Layer", "LAYER"),
                ],
            )?;
        }
        other => bail!("unknown --format {other:?}: table or json"),
    }
    Ok(if found.is_empty() { 0 } else { 1 })
}
