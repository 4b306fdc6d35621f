//! `berth info` / `system info` and `berth version`: the engine's
//! `info()`/`version()` (the Engine API's shapes), as the docker CLI prints
//! them, or through `--format`.

use anyhow::{anyhow, Result};
use berth_engine::Engine;
use serde_json::{json, Value};

use crate::format::template::Format;

/// Docker's `units.BytesSize`: binary units, four significant digits.
fn bytes_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    // %.4g: four significant digits, no trailing zeros.
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let t = format!("{v:.digits$}");
    let t = if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    };
    format!("{t}{}", units[i])
}

fn formatted(format: &str, v: &Value) -> Result<String> {
    let f = Format::parse(format).map_err(|e| anyhow!(e))?;
    let mut s = f.render(v).map_err(|e| anyhow!(e))?;
    s.push('\n');
    Ok(s)
}

pub fn info(e: &Engine, format: Option<&str>) -> Result<i32> {
    let server = e.info()?;
    if let Some(f) = format {
        let v = json!({
            "ClientInfo": {"Debug": false, "Context": "default", "Plugins": [], "Warnings": null},
        });
        let mut all = server.clone();
        if let (Some(a), Some(c)) = (all.as_object_mut(), v.as_object()) {
            a.extend(c.clone());
        }
        out!("{}", formatted(f, &all)?)?;
        return Ok(0);
    }
    let g = |k: &str| server[k].clone();
    let s = |k: &str| match &server[k] {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let list = |k: &str| {
        server["Plugins"][k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut t = String::new();
    t.push_str("Client:\n Context:    default\n Debug Mode: false\n\nServer:\n");
    t.push_str(&format!(" Containers: {}\n", g("Containers")));
    t.push_str(&format!("  Running: {}\n", g("ContainersRunning")));
    t.push_str(&format!("  Paused: {}\n", g("ContainersPaused")));
    t.push_str(&format!("  Stopped: {}\n", g("ContainersStopped")));
    t.push_str(&format!(" Images: {}\n", g("Images")));
    t.push_str(&format!(" Server Version: {}\n", s("ServerVersion")));
    t.push_str(&format!(" Storage Driver: {}\n", s("Driver")));
    t.push_str(&format!(" Logging Driver: {}\n", s("LoggingDriver")));
    t.push_str(&format!(" Cgroup Driver: {}\n", s("CgroupDriver")));
    t.push_str(&format!(" Cgroup Version: {}\n", s("CgroupVersion")));
    t.push_str(" Plugins:\n");
    t.push_str(&format!("  Volume: {}\n", list("Volume")));
    t.push_str(&format!("  Network: {}\n", list("Network")));
    t.push_str(&format!("  Log: {}\n", list("Log")));
    t.push_str(" Swarm: inactive\n");
    t.push_str(&format!(" Runtimes: {}\n", s("DefaultRuntime")));
    t.push_str(&format!(" Default Runtime: {}\n", s("DefaultRuntime")));
    t.push_str(&format!(" Init Binary: {}\n", s("InitBinary")));
    t.push_str(" Security Options:\n  seccomp\n   Profile: default\n  cgroupns\n");
    t.push_str(&format!(" Kernel Version: {}\n", s("KernelVersion")));
    t.push_str(&format!(" Operating System: {}\n", s("OperatingSystem")));
    t.push_str(&format!(" OSType: {}\n", s("OSType")));
    t.push_str(&format!(" Architecture: {}\n", s("Architecture")));
    t.push_str(&format!(" CPUs: {}\n", g("NCPU")));
    t.push_str(&format!(
        " Total Memory: {}\n",
        bytes_size(server["MemTotal"].as_u64().unwrap_or(0))
    ));
    t.push_str(&format!(" Name: {}\n", s("Name")));
    t.push_str(&format!(" ID: {}\n", s("ID")));
    t.push_str(&format!(" Docker Root Dir: {}\n", s("DockerRootDir")));
    t.push_str(" Debug Mode: false\n");
    t.push_str(&format!(" Registry: {}\n", s("IndexServerAddress")));
    t.push_str(" Labels:\n Experimental: false\n Insecure Registries:\n  127.0.0.0/8\n");
    t.push_str(&format!(
        " Live Restore Enabled: {}\n",
        g("LiveRestoreEnabled")
    ));
    out!("{t}")?;
    Ok(0)
}

pub fn version(e: &Engine, format: Option<&str>) -> Result<i32> {
    let server = e.version();
    let client = json!({
        "Platform": {"Name": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_engine::API_VERSION,
        "DefaultAPIVersion": berth_engine::API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": server["Arch"],
        "BuildTime": "",
        "Context": "default",
        "Experimental": true,
    });
    if let Some(f) = format {
        let v = json!({"Client": client, "Server": server});
        out!("{}", formatted(f, &v)?)?;
        return Ok(0);
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let t = format!(
        "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           linux/{}\n Context:           default\n\nServer: berth\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          linux/{}\n  Kernel Version:   {}\n  Experimental:     false\n",
        s(&client["Version"]),
        s(&client["ApiVersion"]),
        s(&server["Arch"]),
        s(&server["Version"]),
        s(&server["ApiVersion"]),
        s(&server["MinAPIVersion"]),
        s(&server["Arch"]),
        s(&server["KernelVersion"]),
    );
    out!("{t}")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes_as_docker_prints_them() {
        assert_eq!(bytes_size(25_275_904_000), "23.54GiB");
        assert_eq!(bytes_size(1024), "1KiB");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(100), "100B");
    }
}
