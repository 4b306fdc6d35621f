//! `--mount type=bind|volume|tmpfs,…`: Docker's comma-separated long form,
//! read as Docker's CLI reads it, then checked as Docker's daemon checks it.

use std::collections::BTreeMap;
use std::path::Path;

use berth_types::{BindOptions, MountSpec, TmpfsOptions, VolumeOptions};

use crate::{EngineError, Result};

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Reads one `--mount` value. Errors carry Docker's CLI wording:
/// `invalid argument "…" for "--mount" flag: …`.
pub fn parse(csv: &str) -> Result<MountSpec> {
    let fail = |msg: String| {
        EngineError::InvalidArgument(format!(
            "invalid argument \"{csv}\" for \"--mount\" flag: {msg}"
        ))
    };
    let mut m = MountSpec::default();
    let mut bind: Option<BindOptions> = None;
    let mut volume: Option<VolumeOptions> = None;
    let mut tmpfs: Option<TmpfsOptions> = None;
    for field in csv.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let flag = |v: Option<&str>| match v {
            None => Ok(true),
            Some(v) => parse_bool(v).ok_or_else(|| fail(format!("invalid value for {key}: {v}"))),
        };
        match (key.as_str(), value) {
            ("readonly" | "ro", v) => m.read_only = flag(v)?,
            ("volume-nocopy", v) => volume.get_or_insert_with(Default::default).no_copy = flag(v)?,
            ("bind-nonrecursive", v) => {
                bind.get_or_insert_with(Default::default).non_recursive = flag(v)?
            }
            (_, None) => {
                return Err(fail(format!(
                    "invalid field '{field}' must be a key=value pair"
                )))
            }
            ("type", Some(v)) => m.kind = v.to_ascii_lowercase(),
            ("source" | "src", Some(v)) => m.source = v.to_string(),
            ("target" | "dst" | "destination", Some(v)) => m.target = v.to_string(),
            // A no-op on Linux, as Docker's.
            ("consistency", Some(_)) => {}
            ("bind-propagation", Some(v)) => {
                bind.get_or_insert_with(Default::default).propagation = v.to_ascii_lowercase()
            }
            ("bind-recursive", Some(v)) => {
                let b = bind.get_or_insert_with(Default::default);
                match v {
                    "enabled" => {}
                    "disabled" => b.non_recursive = true,
                    "writable" => b.read_only_non_recursive = true,
                    "readonly" => b.read_only_force_recursive = true,
                    _ => {
                        return Err(fail(format!(
                            "invalid value for bind-recursive: {v} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                        )))
                    }
                }
            }
            ("volume-label", Some(v)) => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                volume
                    .get_or_insert_with(Default::default)
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k.to_string(), val.to_string());
            }
            ("volume-driver", Some(v)) => {
                volume
                    .get_or_insert_with(Default::default)
                    .driver_config
                    .name = v.to_string()
            }
            ("volume-opt", Some(v)) => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                volume
                    .get_or_insert_with(Default::default)
                    .driver_config
                    .options
                    .insert(k.to_string(), val.to_string());
            }
            ("tmpfs-size", Some(v)) => {
                let size = crate::container::parse_size(v)
                    .ok_or_else(|| fail(format!("invalid value for {key}: {v}")))?;
                tmpfs.get_or_insert_with(Default::default).size_bytes = size;
            }
            ("tmpfs-mode", Some(v)) => {
                let mode = u32::from_str_radix(v, 8)
                    .map_err(|_| fail(format!("invalid value for {key}: {v}")))?;
                tmpfs.get_or_insert_with(Default::default).mode = u64::from(mode);
            }
            (_, Some(_)) => return Err(fail(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if m.kind.is_empty() {
        m.kind = "volume".into();
    }
    if m.target.is_empty() {
        return Err(fail("target is required".into()));
    }
    for (set, prefix, kind) in [
        (bind.is_some(), "bind", "bind"),
        (volume.is_some(), "volume", "volume"),
        (tmpfs.is_some(), "tmpfs", "tmpfs"),
    ] {
        if set && m.kind != kind {
            return Err(fail(format!(
                "cannot mix '{prefix}-*' options with mount type '{}'",
                m.kind
            )));
        }
    }
    if let Some(b) = &bind {
        for (set, what) in [
            (b.read_only_force_recursive, "readonly"),
            (b.read_only_non_recursive, "writable"),
        ] {
            if set && !m.read_only {
                return Err(fail(format!(
                    "option 'bind-recursive={what}' requires 'readonly' to be specified in conjunction"
                )));
            }
        }
    }
    m.bind_options = bind;
    m.volume_options = volume;
    m.tmpfs_options = tmpfs;
    Ok(m)
}

/// Checks a `--mount` as Docker's daemon does, before anything is made:
/// the wording is the daemon's (`invalid mount config for type "bind": …`).
pub fn validate(m: &MountSpec) -> Result<()> {
    let fail = |msg: String| {
        EngineError::InvalidArgument(format!(
            "invalid mount config for type \"{}\": {msg}",
            m.kind
        ))
    };
    let not_absolute = |p: &str| {
        fail(format!(
            "invalid mount path: '{p}' mount path must be absolute"
        ))
    };
    if !m.target.starts_with('/') {
        return Err(not_absolute(&m.target));
    }
    match m.kind.as_str() {
        "bind" => {
            if m.source.is_empty() {
                return Err(fail("field Source must not be empty".into()));
            }
            if !m.source.starts_with('/') {
                return Err(not_absolute(&m.source));
            }
            if let Some(b) = &m.bind_options {
                match b.propagation.as_str() {
                    "" | "private" | "rprivate" => {}
                    p @ ("shared" | "rshared" | "slave" | "rslave") => {
                        return Err(fail(format!(
                            "berth bind mounts are rprivate; propagation {p} is not supported"
                        )))
                    }
                    p => return Err(fail(format!("invalid propagation mode: {p}"))),
                }
            }
            // Unlike `-v`, `--mount` does not make a missing source.
            if !Path::new(&m.source).exists() {
                return Err(fail(format!(
                    "bind source path does not exist: {}",
                    m.source
                )));
            }
        }
        "volume" => {
            // Checked here, so that no volume of an earlier `--mount` is
            // made (Docker's daemon makes those before it refuses).
            if !m.source.is_empty() && !crate::volume::valid_volume_name(&m.source) {
                return Err(EngineError::InvalidArgument(format!(
                    "create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
                    m.source
                )));
            }
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(fail("field Source must not be specified".into()));
            }
        }
        _ => return Err(fail("mount type unknown".into())),
    }
    Ok(())
}

/// The options a `--mount type=tmpfs` is mounted with, as Docker's daemon
/// mounts it (`nosuid,nodev,noexec`, then `size=`, `mode=`).
pub fn tmpfs_options(m: &MountSpec) -> String {
    let mut o = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
    if let Some(t) = &m.tmpfs_options {
        if t.size_bytes > 0 {
            o.push(format!("size={}", t.size_bytes));
        }
        if t.mode > 0 {
            o.push(format!("mode={:o}", t.mode));
        }
    }
    o.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_csv() {
        let m = parse("type=bind,src=/a,dst=/b,ro=false,bind-recursive=disabled").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_str(), m.target.as_str()),
            ("bind", "/a", "/b")
        );
        assert!(!m.read_only);
        assert!(m.bind_options.unwrap().non_recursive);
        let m = parse("target=/v,volume-nocopy,volume-label=a=b").unwrap();
        assert_eq!(m.kind, "volume");
        let v = m.volume_options.unwrap();
        assert!(v.no_copy);
        assert_eq!(v.labels.unwrap().get("a").map(String::as_str), Some("b"));
        let m = parse("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1700,readonly").unwrap();
        assert!(m.read_only);
        let t = m.tmpfs_options.unwrap();
        assert_eq!((t.size_bytes, t.mode), (1 << 20, 0o1700));
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert!(err("type=bind").ends_with("target is required"));
        assert!(err("dst=/x,foo=bar").ends_with("unexpected key 'foo' in 'foo=bar'"));
        assert!(err("dst=/x,ro=maybe").ends_with("invalid value for ro: maybe"));
        assert!(err("type=bind,dst=/x,volume-nocopy")
            .ends_with("cannot mix 'volume-*' options with mount type 'bind'"));
        assert!(err("dst=/x,bogus").ends_with("invalid field 'bogus' must be a key=value pair"));
        assert!(err("type=tmpfs,dst=/x,tmpfs-mode=9").ends_with("invalid value for tmpfs-mode: 9"));
        assert!(err("type=bind,dst=/x,bind-recursive=writable").ends_with(
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
        ));
    }
}
