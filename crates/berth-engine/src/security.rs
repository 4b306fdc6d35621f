//! A container's confinement as `create` decides it: `--cap-add`,
//! `--cap-drop`, `--privileged`, `--security-opt`, and the seccomp filter,
//! compiled here (in the engine, at create time) and cached by content hash
//! so that starting a container only loads it.
//!
//! Cache: `<root>/seccomp/<sha256>.bpf`, keyed by the profile's bytes, the
//! capability set it is evaluated for, the kernel version (for `minKernel`)
//! and the architecture and format; written tmp + rename, validated on
//! every use, recompiled when damaged. A container gets a hard link to its
//! entry (`containers/<id>/seccomp.bpf`), so removing cache entries never
//! breaks a container.

use std::path::{Path, PathBuf};

use berth_runtime::caps;
use berth_runtime::seccomp::{self, CompiledFilters, Profile, Target};
use sha2::{Digest as _, Sha256};

use crate::{io_ctx, Engine, EngineError, Result};

/// What `create` records and hands the runtime about confinement.
#[derive(Clone, Debug, Default)]
pub(crate) struct SecuritySetup {
    /// `None`: every capability berth holds (`--privileged`).
    pub caps: Option<u64>,
    pub no_new_privileges: bool,
    /// The seccomp profile to compile (Docker's JSON); `None`: unconfined.
    pub seccomp_profile: Option<Vec<u8>>,
    /// No masked or read-only paths (`systempaths=unconfined`).
    pub unmask_system_paths: bool,
    /// As `inspect` shows them.
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub security_opt: Option<Vec<String>>,
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Checks `--cap-add`, `--cap-drop`, `--privileged` and `--security-opt`
/// as Docker's daemon does, with its wording. A `seccomp=` value is the
/// profile's JSON itself (the CLI reads the file, as Docker's does).
pub(crate) fn parse(
    cap_add: &[String],
    cap_drop: &[String],
    privileged: bool,
    security_opt: &[String],
) -> Result<SecuritySetup> {
    let add = caps::normalize(cap_add).map_err(|e| invalid(format!("invalid CapAdd: {e}")))?;
    let drop = caps::normalize(cap_drop).map_err(|e| invalid(format!("invalid CapDrop: {e}")))?;
    let mut s = SecuritySetup {
        caps: (!privileged)
            .then(|| caps::tweak(caps::DOCKER_DEFAULT, &add, &drop, caps::all_held())),
        cap_add: (!add.is_empty()).then_some(add),
        cap_drop: (!drop.is_empty()).then_some(drop),
        ..SecuritySetup::default()
    };
    let mut recorded = Vec::new();
    let mut seccomp: Option<Option<Vec<u8>>> = None;
    for opt in security_opt {
        if opt == "systempaths=unconfined" {
            s.unmask_system_paths = true;
            continue;
        }
        if opt == "no-new-privileges" {
            s.no_new_privileges = true;
            recorded.push(opt.clone());
            continue;
        }
        if opt == "disable" {
            recorded.push(opt.clone());
            continue;
        }
        let Some((k, v)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return Err(invalid(format!("invalid --security-opt 1: {opt:?}")));
        };
        match k {
            // berth has neither SELinux nor AppArmor: accepted, recorded,
            // without effect (as Docker on a host without them).
            "label" | "apparmor" => {}
            "seccomp" if v == "unconfined" => seccomp = Some(None),
            "seccomp" => seccomp = Some(Some(v.as_bytes().to_vec())),
            "no-new-privileges" => {
                s.no_new_privileges = parse_bool(v)
                    .ok_or_else(|| invalid(format!("invalid --security-opt 2: {opt:?}")))?;
            }
            _ => return Err(invalid(format!("invalid --security-opt 2: {opt:?}"))),
        }
        recorded.push(opt.clone());
    }
    s.security_opt = (!recorded.is_empty()).then_some(recorded);
    s.seccomp_profile = if privileged {
        None
    } else {
        seccomp.unwrap_or_else(|| Some(seccomp::DEFAULT_PROFILE_JSON.to_vec()))
    };
    Ok(s)
}

/// The cache key of `profile` evaluated for `target`.
fn cache_key(profile: &[u8], target: &Target) -> String {
    let mut h = Sha256::new();
    h.update(b"berth seccomp cache v1\0");
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(b"\0");
    h.update(target.caps.to_le_bytes());
    h.update(target.kernel.0.to_le_bytes());
    h.update(target.kernel.1.to_le_bytes());
    h.update(profile);
    hex::encode(h.finalize())
}

impl Engine {
    fn seccomp_cache_dir(&self) -> PathBuf {
        self.opts.root.join("seccomp")
    }

    /// The compiled filter of `profile` for the capability set `caps`, from
    /// the cache or compiled into it now. A profile berth cannot use is an
    /// invalid argument.
    pub(crate) fn compiled_seccomp(&self, profile: &[u8], caps: u64) -> Result<PathBuf> {
        let target = Target::host(caps);
        let dir = self.seccomp_cache_dir();
        let path = dir.join(format!("{}.bpf", cache_key(profile, &target)));
        if let Ok(bytes) = std::fs::read(&path) {
            if CompiledFilters::from_bytes(&bytes).is_ok() {
                return Ok(path);
            }
        }
        let parsed = Profile::parse(profile).map_err(|e| invalid(e.to_string()))?;
        let filters = seccomp::compile(&parsed, &target).map_err(|e| invalid(e.to_string()))?;
        std::fs::create_dir_all(&dir).map_err(io_ctx(format!("creating {}", dir.display())))?;
        let tmp = dir.join(format!(
            "tmp-{}-{}",
            std::process::id(),
            hex::encode(crate::random_bytes())
        ));
        let written = std::fs::write(&tmp, filters.to_bytes())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io_ctx(format!("writing {}", path.display())));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map(|()| path)
    }
}

impl Engine {
    /// Where the filter of a container's processes is (None: unconfined),
    /// for an exec monitor to load. A spec written before filters were
    /// compiled at create (confined, no filter file) gets the built-in
    /// profile's, for its capabilities.
    pub(crate) fn container_filter_path(
        &self,
        spec: &berth_runtime::ContainerSpec,
    ) -> Result<Option<PathBuf>> {
        if let Some(path) = self.legacy_filter(spec)? {
            return Ok(Some(path));
        }
        if !spec.seccomp || spec.privileged {
            return Ok(None);
        }
        match &spec.security.seccomp_filter {
            Some(p) => Ok(Some(p.clone())),
            None => Err(EngineError::Runtime {
                code: 125,
                message: "seccomp: the container has no compiled seccomp filter".into(),
            }),
        }
    }

    /// For a spec from before filters were compiled at create: the cached
    /// filter of the built-in profile for its capabilities.
    fn legacy_filter(&self, spec: &berth_runtime::ContainerSpec) -> Result<Option<PathBuf>> {
        if !spec.seccomp || spec.privileged || spec.security.seccomp_filter.is_some() {
            return Ok(None);
        }
        let caps = spec.security.capabilities.unwrap_or(caps::DOCKER_DEFAULT);
        self.compiled_seccomp(seccomp::DEFAULT_PROFILE_JSON, caps)
            .map(Some)
    }

    /// Before a container created by an older berth starts: compile its
    /// filter and record it in its `monitor.json`, so that the monitor only
    /// loads it.
    pub(crate) fn upgrade_legacy_spec(&self, dir: &Path) -> Result<()> {
        let path = dir.join("monitor.json");
        let data = std::fs::read(&path).map_err(io_ctx("reading monitor.json"))?;
        let mut mon: berth_runtime::monitor::MonitorConfig = serde_json::from_slice(&data)
            .map_err(|e| invalid(format!("parsing monitor.json: {e}")))?;
        let Some(cached) = self.legacy_filter(&mon.spec)? else {
            return Ok(());
        };
        let own = dir.join("seccomp.bpf");
        let _ = std::fs::remove_file(&own);
        link_filter(&cached, &own)?;
        mon.spec.security.seccomp_filter = Some(own);
        let out = serde_json::to_vec_pretty(&mon).map_err(|e| invalid(e.to_string()))?;
        let tmp = dir.join("monitor.json.tmp");
        std::fs::write(&tmp, out)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io_ctx("writing monitor.json"))
    }
}

/// Gives the container its own name for the cached filter: a hard link
/// (a copy where links cannot be made).
pub(crate) fn link_filter(cached: &Path, dst: &Path) -> Result<()> {
    std::fs::hard_link(cached, dst)
        .or_else(|_| std::fs::copy(cached, dst).map(|_| ()))
        .map_err(io_ctx(format!("writing {}", dst.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn err(add: &[&str], drop: &[&str], opts: &[&str]) -> String {
        match parse(&v(add), &v(drop), false, &v(opts)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_values_are_refused_in_dockers_words() {
        assert_eq!(
            err(&["FOO"], &[], &[]),
            "invalid CapAdd: unknown capability: \"CAP_FOO\""
        );
        assert_eq!(
            err(&[], &["foo"], &[]),
            "invalid CapDrop: unknown capability: \"CAP_FOO\""
        );
        assert_eq!(
            err(&[], &[], &["bogus"]),
            "invalid --security-opt 1: \"bogus\""
        );
        assert_eq!(
            err(&[], &[], &["foo=bar"]),
            "invalid --security-opt 2: \"foo=bar\""
        );
        assert_eq!(
            err(&[], &[], &["no-new-privileges=maybe"]),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
    }

    #[test]
    fn options_are_recorded_as_docker_records_them() {
        let s = parse(
            &v(&["net_admin"]),
            &v(&["CAP_chown"]),
            false,
            &v(&[
                "no-new-privileges:true",
                "seccomp=unconfined",
                "label=disable",
                "apparmor=unconfined",
                "systempaths=unconfined",
            ]),
        )
        .unwrap();
        assert!(s.no_new_privileges);
        assert!(s.unmask_system_paths);
        assert_eq!(s.seccomp_profile, None);
        assert_eq!(s.cap_add, Some(v(&["CAP_NET_ADMIN"])));
        assert_eq!(s.cap_drop, Some(v(&["CAP_CHOWN"])));
        assert_eq!(
            s.security_opt,
            Some(v(&[
                "no-new-privileges:true",
                "seccomp=unconfined",
                "label=disable",
                "apparmor=unconfined"
            ]))
        );
        let d = parse(&[], &[], false, &v(&["no-new-privileges=false"])).unwrap();
        assert!(!d.no_new_privileges);
        assert_eq!(d.caps, Some(caps::DOCKER_DEFAULT));
        assert_eq!(
            d.seccomp_profile.as_deref(),
            Some(seccomp::DEFAULT_PROFILE_JSON)
        );
        let p = parse(&[], &[], true, &[]).unwrap();
        assert_eq!((p.caps, p.seccomp_profile), (None, None));
    }
}
