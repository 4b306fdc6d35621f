//! `stats`: CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O BLOCK
//! I/O PIDS, computed as the docker CLI computes them from two readings.

use std::time::Duration;

use anyhow::Result;
use berth_engine::{ContainerView, Engine, StatsSample};

use crate::cli::StatsArgs;
use crate::commands::print_rows;
use crate::format::human::{bytes_size, human_size_with_precision};

const DEFAULT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn row(
    v: &ContainerView,
    given: &str,
    now: &StatsSample,
    before: &StatsSample,
    no_trunc: bool,
) -> serde_json::Value {
    let id = if no_trunc {
        v.id.to_string()
    } else {
        v.id.short().to_string()
    };
    let io = |a: u64, b: u64| {
        format!(
            "{} / {}",
            human_size_with_precision(a as f64, 3),
            human_size_with_precision(b as f64, 3)
        )
    };
    serde_json::json!({
        "ID": id,
        "Container": if given.is_empty() { id.clone() } else { given.to_string() },
        "Name": v.name,
        "CPUPerc": format!("{:.2}%", now.cpu_percent(before)),
        "MemUsage": format!("{} / {}", bytes_size(now.mem_usage as f64), bytes_size(now.mem_limit as f64)),
        "MemPerc": format!("{:.2}%", now.mem_percent()),
        "NetIO": io(now.net_rx, now.net_tx),
        "BlockIO": io(now.blk_read, now.blk_write),
        "PIDs": now.pids.to_string(),
    })
}

/// `stats [-a] [--no-stream] [--no-trunc] [--format F] [CONTAINER...]`
pub fn stats(e: &Engine, a: &StatsArgs) -> Result<i32> {
    let list: Vec<(String, ContainerView)> = if a.containers.is_empty() {
        e.containers()?
            .into_iter()
            .filter(|v| a.all || v.running())
            .map(|v| (String::new(), v))
            .collect()
    } else {
        let mut l = Vec::new();
        for c in &a.containers {
            l.push((c.clone(), e.container(c)?));
        }
        l
    };
    let fmt = a.format.clone().unwrap_or_else(|| DEFAULT.to_string());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut before: Vec<StatsSample> = list.iter().map(|(_, v)| e.stats_sample(v)).collect();
    loop {
        // CPU % is a rate: a second between two readings, as Docker's.
        std::thread::sleep(Duration::from_secs(1));
        let now: Vec<StatsSample> = list.iter().map(|(_, v)| e.stats_sample(v)).collect();
        let rows: Vec<serde_json::Value> = list
            .iter()
            .zip(now.iter().zip(before.iter()))
            .map(|((given, v), (n, b))| row(v, given, n, b, a.no_trunc))
            .collect();
        if !a.no_stream && tty {
            // Redraw in place on a terminal, as the docker CLI does; a pipe
            // gets one table after another.
            out!("\x1b[2J\x1b[H")?;
        }
        print_rows(&fmt, &rows, HEADERS)?;
        if a.no_stream {
            return Ok(0);
        }
        before = now;
    }
}
