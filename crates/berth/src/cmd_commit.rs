//! `diff`, `commit`, `history`, `images --tree` / `--format dot`.

use std::io::Write;

use anyhow::{anyhow, Result};
use berth_engine::{CommitOptions, Engine, HistoryEntry, ImageNode};
use chrono::{DateTime, Utc};

use crate::cli::{CommitArgs, DiffArgs, HistoryArgs, ImagesArgs};
use crate::format::human::{ago, ellipsis, human_size, truncate_id};
use crate::format::template::Format;

/// `docker history`'s CREATED BY column width.
const CREATED_BY_WIDTH: usize = 45;

const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

pub fn diff(e: &Engine, a: &DiffArgs) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    for c in e.diff(&a.container)? {
        writeln!(out, "{} {}", c.kind.symbol(), c.path)?;
    }
    Ok(0)
}

pub fn commit(e: &mut Engine, a: &CommitArgs) -> Result<i32> {
    let id = e.commit(
        &a.container,
        &CommitOptions {
            message: a.message.clone(),
            author: a.author.clone(),
            changes: a.change.clone(),
            pause: a.pause,
            reference: a.reference.clone(),
        },
    )?;
    outln!("{id}")?;
    Ok(0)
}

pub fn history(e: &Engine, a: &HistoryArgs) -> Result<i32> {
    let rows = e.history(&a.image)?;
    let id_of = |h: &HistoryEntry| match &h.id {
        Some(id) if a.no_trunc => id.to_string(),
        Some(id) => truncate_id(id.as_str()).to_string(),
        None => "<missing>".to_string(),
    };
    if a.quiet {
        let mut out = std::io::stdout().lock();
        for h in &rows {
            writeln!(out, "{}", id_of(h))?;
        }
        return Ok(0);
    }
    let now = Utc::now();
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|h| {
            let created = h
                .created
                .as_deref()
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .map(|t| t.with_timezone(&Utc));
            let rfc3339 = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let created_since = match created {
                Some(t) if a.human => ago(t, now),
                Some(t) => rfc3339(t),
                None => "N/A".to_string(),
            };
            let created_by = h.created_by.replace('\t', " ");
            let created_by = if a.no_trunc {
                created_by
            } else {
                ellipsis(&created_by, CREATED_BY_WIDTH)
            };
            serde_json::json!({
                "ID": id_of(h),
                "CreatedSince": created_since,
                "CreatedAt": created.map(rfc3339).unwrap_or_default(),
                "CreatedBy": created_by,
                "Size": if a.human { human_size(h.size) } else { h.size.to_string() },
                "Comment": h.comment,
                "Tags": h.tags,
            })
        })
        .collect();
    let fmt = Format::parse(a.format.as_deref().unwrap_or(HISTORY_TABLE))
        .and_then(|f| f.with_default(HISTORY_TABLE))
        .map_err(|e| anyhow!("{e}"))?;
    let text = fmt
        .render_table(&values, HISTORY_HEADERS)
        .map_err(|e| anyhow!("{e}"))?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(0)
}

/// `images --tree` (text) and `images --format dot` (Graphviz).
pub fn image_graph(e: &Engine, a: &ImagesArgs) -> Result<i32> {
    let roots = e.image_tree()?;
    let text = if a.format.as_deref() == Some("dot") {
        dot(&roots, a.no_trunc)
    } else {
        let mut s = String::new();
        tree(&roots, "", a.no_trunc, &mut s);
        s
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(0)
}

fn shown_id(n: &ImageNode, no_trunc: bool) -> String {
    if no_trunc {
        n.id.to_string()
    } else {
        truncate_id(n.id.as_str()).to_string()
    }
}

/// The tree as the docker CLI once drew it (`docker images --tree`):
/// `└─3f2a1b4c5d6e Virtual Size: 4.3MB Tags: bb:latest`, children indented below.
fn tree(nodes: &[ImageNode], prefix: &str, no_trunc: bool, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let (branch, indent) = if last {
            ("└─", "  ")
        } else {
            ("├─", "│ ")
        };
        out.push_str(&format!(
            "{prefix}{branch}{} Virtual Size: {}",
            shown_id(n, no_trunc),
            human_size(n.size)
        ));
        if !n.tags.is_empty() {
            out.push_str(&format!(" Tags: {}", n.tags.join(", ")));
        }
        out.push('\n');
        tree(&n.children, &format!("{prefix}{indent}"), no_trunc, out);
    }
}

/// The image graph in Graphviz DOT (the docker CLI's old `images --viz`): an edge
/// from each parent to its children, tagged images as labelled boxes.
fn dot(roots: &[ImageNode], no_trunc: bool) -> String {
    fn walk(n: &ImageNode, parent: Option<&str>, no_trunc: bool, out: &mut String) {
        let id = shown_id(n, no_trunc);
        match parent {
            Some(p) => out.push_str(&format!(" \"{p}\" -> \"{id}\"\n")),
            None => out.push_str(&format!(" base -> \"{id}\" [style=invis]\n")),
        }
        if !n.tags.is_empty() {
            let tags: Vec<String> = n.tags.iter().map(|t| dot_escape(t)).collect();
            out.push_str(&format!(
                " \"{id}\" [label=\"{id}\\n{}\",shape=box,fillcolor=\"paleturquoise\",style=\"filled,rounded\"];\n",
                tags.join("\\n")
            ));
        }
        for c in &n.children {
            walk(c, Some(&id), no_trunc, out);
        }
    }
    let mut out = String::from("digraph images {\n");
    for r in roots {
        walk(r, None, no_trunc, &mut out);
    }
    out.push_str(" base [style=invisible]\n}\n");
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_types::Digest;

    fn node(seed: &str, tags: &[&str], children: Vec<ImageNode>) -> ImageNode {
        ImageNode {
            id: Digest::of_bytes(seed.as_bytes()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            size: 1_500_000,
            created: String::new(),
            parent: None,
            children,
        }
    }

    #[test]
    fn tree_and_dot_shapes() {
        let roots = vec![node(
            "a",
            &["bb:latest"],
            vec![
                node("b", &["b:1", "b:2"], vec![node("d", &[], vec![])]),
                node("c", &[], vec![]),
            ],
        )];
        let a = truncate_id(Digest::of_bytes(b"a").as_str()).to_string();
        let b = truncate_id(Digest::of_bytes(b"b").as_str()).to_string();
        let c = truncate_id(Digest::of_bytes(b"c").as_str()).to_string();
        let d = truncate_id(Digest::of_bytes(b"d").as_str()).to_string();
        let mut t = String::new();
        tree(&roots, "", false, &mut t);
        assert_eq!(
            t,
            format!(
                "└─{a} Virtual Size: 1.5MB Tags: bb:latest\n  ├─{b} Virtual Size: 1.5MB Tags: b:1, b:2\n  │ └─{d} Virtual Size: 1.5MB\n  └─{c} Virtual Size: 1.5MB\n"
            )
        );
        let g = dot(&roots, false);
        assert!(g.starts_with("digraph images {\n"));
        assert!(g.ends_with("}\n"));
        assert!(g.contains(&format!(" base -> \"{a}\" [style=invis]\n")));
        assert!(g.contains(&format!(" \"{a}\" -> \"{b}\"\n")));
        assert!(g.contains(&format!(" \"{b}\" -> \"{d}\"\n")));
        assert!(g.contains(&format!("label=\"{b}\\nb:1\\nb:2\"")));
    }
}
