//! Start-path timing for benchmarks: with `BERTH_TRACE=FILE` in the
//! environment, the CLI, the engine, the monitor and the container's init
//! append `<unix ns> <pid> <label>` lines to FILE. Unset, it costs one
//! environment lookup.

use std::io::Write;

pub fn trace(label: &str) {
    let Some(path) = std::env::var_os("BERTH_TRACE") else {
        return;
    };
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{ns} {} {label}", std::process::id());
    }
}
