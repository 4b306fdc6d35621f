//! Prints the inventory of a directory tree as JSON, with a count per ecosystem and
//! the time it took on stderr: `cargo run -p berth-inventory --example scan -- DIR`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1) else {
        eprintln!("usage: scan DIR");
        return ExitCode::from(2);
    };
    let t = Instant::now();
    let inv = match berth_inventory::scan_tree(std::path::Path::new(&root)) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("scan: {e}");
            return ExitCode::FAILURE;
        }
    };
    let took = t.elapsed();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &inv.packages {
        *counts.entry(p.ecosystem.as_str()).or_default() += 1;
    }
    match serde_json::to_string_pretty(&inv) {
        Ok(s) => println!("{s}"),
        Err(e) => {
            eprintln!("scan: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!(
        "{} packages {:?}, {} databases, {} findings, {} whiteouts, in {:?}",
        inv.packages.len(),
        counts,
        inv.databases.len(),
        inv.findings.len(),
        inv.whiteouts.len(),
        took
    );
    ExitCode::SUCCESS
}
