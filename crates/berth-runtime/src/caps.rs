//! Linux capabilities of a container's process: Docker's default set, the
//! names Docker accepts for `--cap-add`/`--cap-drop`, and the drop itself.
//!
//! The container's init runs [`drop_bounding`], the user switch (with
//! `PR_SET_KEEPCAPS`) and then [`set_process_caps`], as runc does; [`apply`]
//! is the two halves without a user switch. Together they narrow the
//! bounding set, clear the ambient set and set effective = permitted =
//! `keep` with an empty inheritable set, as Docker has done
//! since 20.10.14 (CVE-2022-24769: inheritable capabilities let a non-root
//! user gain them by executing a file with inheritable file capabilities).
//! For a non-root user, the exec then clears permitted and effective, as in
//! Docker. [`normalize`] and [`tweak`] are Docker's `--cap-add`/`--cap-drop`
//! handling.
//!
//! Never: raises a capability the process does not already hold.

use std::io;

use rustix::thread::{self as rthread, CapabilitySet, CapabilitySets};

/// Errors from changing the capability sets.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("dropping capability {name} from the bounding set failed: {source}")]
    DropBounding { name: String, source: io::Error },
    #[error("clearing the ambient capability set failed: {0}")]
    ClearAmbient(io::Error),
    #[error("reading the process capabilities failed: {0}")]
    Get(io::Error),
    #[error("setting the process capabilities failed: {0}")]
    Set(io::Error),
    #[error("capabilities not held by the runtime, cannot grant them: {0}")]
    NotHeld(String),
}

/// The capability names, indexed by number (`linux/capability.h`).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const fn bit(name: &str) -> u64 {
    let mut i = 0;
    while i < NAMES.len() {
        if const_eq(NAMES[i], name) {
            return 1 << i;
        }
        i += 1;
    }
    panic!("unknown capability name")
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Docker's default capabilities: CHOWN, DAC_OVERRIDE, FSETID, FOWNER,
/// MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE,
/// SYS_CHROOT, KILL, AUDIT_WRITE (`CapEff: 00000000a80425fb`).
pub const DOCKER_DEFAULT: u64 = bit("CAP_CHOWN")
    | bit("CAP_DAC_OVERRIDE")
    | bit("CAP_FSETID")
    | bit("CAP_FOWNER")
    | bit("CAP_MKNOD")
    | bit("CAP_NET_RAW")
    | bit("CAP_SETGID")
    | bit("CAP_SETUID")
    | bit("CAP_SETFCAP")
    | bit("CAP_SETPCAP")
    | bit("CAP_NET_BIND_SERVICE")
    | bit("CAP_SYS_CHROOT")
    | bit("CAP_KILL")
    | bit("CAP_AUDIT_WRITE");

/// The number of a capability from its name as Docker accepts it: with or
/// without the `CAP_` prefix, in any case ("NET_ADMIN", "cap_net_admin").
/// `ALL` is not a capability; callers expand it themselves.
pub fn parse_name(s: &str) -> Option<u32> {
    let upper = s.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES
        .iter()
        .position(|n| n.strip_prefix("CAP_") == Some(bare))
        .map(|i| i as u32)
}

/// The name of a capability (`CAP_NET_ADMIN`), if berth knows it.
pub fn name(cap: u32) -> Option<&'static str> {
    NAMES.get(cap as usize).copied()
}

fn display(cap: u32) -> String {
    name(cap).map_or_else(|| format!("capability {cap}"), str::to_string)
}

/// A `--cap-add`/`--cap-drop` name Docker does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability: {0:?}")]
pub struct UnknownCapability(pub String);

/// Normalises `--cap-add`/`--cap-drop` values as Docker does: upper case,
/// `CAP_` prefixed (`net_admin` -> `CAP_NET_ADMIN`), `ALL` kept as it is.
pub fn normalize(names: &[String]) -> Result<Vec<String>, UnknownCapability> {
    names
        .iter()
        .map(|n| {
            let upper = n.to_ascii_uppercase();
            if upper == "ALL" {
                return Ok(upper);
            }
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            if NAMES.contains(&full.as_str()) {
                Ok(full)
            } else {
                Err(UnknownCapability(full))
            }
        })
        .collect()
}

/// Docker's capability arithmetic on normalised lists: `ALL` in `add`
/// gives every capability in `all` but the dropped ones; `ALL` in `drop`
/// gives just the added ones; otherwise `base` less `drop` plus `add`.
pub fn tweak(base: u64, add: &[String], drop: &[String], all: u64) -> u64 {
    let set = |names: &[String]| {
        names
            .iter()
            .filter_map(|n| parse_name(n))
            .filter(|&c| c < 64)
            .fold(0u64, |acc, c| acc | 1 << c)
    };
    let is_all = |names: &[String]| names.iter().any(|n| n == "ALL");
    if is_all(add) {
        all & !set(drop)
    } else if is_all(drop) {
        set(add)
    } else {
        (base & !set(drop)) | set(add)
    }
}

/// Every capability the running kernel knows that this process holds
/// (its permitted set): what `ALL` and `--privileged` grant.
pub fn all_held() -> u64 {
    let last = last_cap().min(63);
    let known = if last == 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    let held = rthread::capabilities(None).map_or(u64::MAX, |c| c.permitted.bits());
    known & held
}

/// The names of the capabilities in `set`, lowest number first.
pub fn names(set: u64) -> Vec<&'static str> {
    (0..64u32)
        .filter(|c| set & (1u64 << c) != 0)
        .filter_map(name)
        .collect()
}

/// Drops every capability not in `keep` from the bounding set, clears the
/// ambient set, then sets effective = permitted = `keep` and inheritable
/// to empty. Needs CAP_SETPCAP (so: call it as root, before the user
/// switch). `keep` may only name capabilities the process holds.
pub fn apply(keep: u64) -> Result<(), CapsError> {
    drop_bounding(keep)?;
    set_process_caps(keep)
}

/// First half of [`apply`]: narrows the bounding set to `keep` and clears
/// the ambient set. Needs CAP_SETPCAP.
///
/// Split out for callers that must switch user between the two halves, as
/// runc does (bounding set, `PR_SET_KEEPCAPS`, setuid, then
/// [`set_process_caps`]) when `keep` lacks CAP_SETUID or CAP_SETGID.
pub fn drop_bounding(keep: u64) -> Result<(), CapsError> {
    for cap in 0..=last_cap() {
        if cap >= 64 || keep & (1 << cap) != 0 {
            continue;
        }
        let set = CapabilitySet::from_bits_retain(1 << cap);
        rthread::remove_capability_from_bounding_set(set).map_err(|e| CapsError::DropBounding {
            name: display(cap),
            source: e.into(),
        })?;
    }
    match rthread::clear_ambient_capability_set() {
        // EINVAL: a kernel without ambient capabilities (< 4.3).
        Ok(()) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(CapsError::ClearAmbient(e.into())),
    }
}

/// Second half of [`apply`]: effective = permitted = `keep`, inheritable
/// empty.
pub fn set_process_caps(keep: u64) -> Result<(), CapsError> {
    let now = rthread::capabilities(None).map_err(|e| CapsError::Get(e.into()))?;
    let missing = keep & !now.permitted.bits();
    if missing != 0 {
        let names: Vec<String> = (0..64)
            .filter(|c| missing & (1u64 << c) != 0)
            .map(display)
            .collect();
        return Err(CapsError::NotHeld(names.join(", ")));
    }
    let keep = CapabilitySet::from_bits_retain(keep);
    rthread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| CapsError::Set(e.into()))
}

/// The highest capability number the kernel knows: from
/// `/proc/sys/kernel/cap_last_cap`, or probed with `PR_CAPBSET_READ` when
/// that file cannot be read.
fn last_cap() -> u32 {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap") {
        if let Ok(n) = s.trim().parse::<u32>() {
            return n;
        }
    }
    let mut last = 0;
    for cap in 0..64u32 {
        let set = CapabilitySet::from_bits_retain(1 << cap);
        match rthread::capability_is_in_bounding_set(set) {
            Ok(_) => last = cap,
            Err(_) => break,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask() {
        assert_eq!(DOCKER_DEFAULT, 0xa804_25fb);
    }

    #[test]
    fn names_parse_like_docker() {
        assert_eq!(parse_name("NET_ADMIN"), Some(12));
        assert_eq!(parse_name("CAP_NET_ADMIN"), Some(12));
        assert_eq!(parse_name("cap_net_admin"), Some(12));
        assert_eq!(parse_name("chown"), Some(0));
        assert_eq!(parse_name("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(parse_name("ALL"), None);
        assert_eq!(parse_name("CAP_"), None);
        assert_eq!(parse_name("NET_ADMINX"), None);
        assert_eq!(name(21), Some("CAP_SYS_ADMIN"));
        assert_eq!(name(41), None);
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cap_flags_normalize_like_docker() {
        assert_eq!(
            normalize(&strings(&["net_admin", "CAP_chown", "all", "Sys_Admin"])).unwrap(),
            strings(&["CAP_NET_ADMIN", "CAP_CHOWN", "ALL", "CAP_SYS_ADMIN"])
        );
        assert_eq!(
            normalize(&strings(&["FOO"])).unwrap_err().to_string(),
            "unknown capability: \"CAP_FOO\""
        );
        assert!(normalize(&strings(&["CAP_"])).is_err());
    }

    #[test]
    fn cap_arithmetic_is_dockers() {
        let all = (1u64 << 41) - 1;
        let n = |v: &[&str]| normalize(&strings(v)).unwrap();
        let bit = |c: &str| 1u64 << parse_name(c).unwrap();
        assert_eq!(tweak(DOCKER_DEFAULT, &[], &[], all), DOCKER_DEFAULT);
        assert_eq!(
            tweak(DOCKER_DEFAULT, &n(&["NET_BIND_SERVICE"]), &n(&["ALL"]), all),
            0x400
        );
        assert_eq!(
            tweak(DOCKER_DEFAULT, &n(&["ALL"]), &n(&["CHOWN"]), all),
            all & !1
        );
        assert_eq!(
            tweak(DOCKER_DEFAULT, &n(&["SYS_ADMIN"]), &n(&["NET_RAW"]), all),
            (DOCKER_DEFAULT | bit("SYS_ADMIN")) & !bit("NET_RAW")
        );
        assert_eq!(names(0x401), vec!["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
        assert_eq!(all_held() & DOCKER_DEFAULT, DOCKER_DEFAULT);
    }

    fn status_field(status: &str, key: &str) -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        u64::from_str_radix(line[key.len()..].trim(), 16).ok()
    }

    #[test]
    fn apply_leaves_exactly_dockers_set() {
        // SAFETY: the child applies the caps, reads /proc/self/status and
        // leaves with _exit; glibc keeps malloc usable after fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = match apply(DOCKER_DEFAULT) {
                Err(_) => 10,
                Ok(()) => {
                    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                    let want = Some(DOCKER_DEFAULT);
                    if status_field(&s, "CapEff:") != want {
                        11
                    } else if status_field(&s, "CapPrm:") != want {
                        12
                    } else if status_field(&s, "CapBnd:") != want {
                        13
                    } else if status_field(&s, "CapInh:") != Some(0) {
                        14
                    } else if status_field(&s, "CapAmb:") != Some(0) {
                        15
                    } else if parse_name("SYS_ADMIN").is_some_and(|c| {
                        rthread::capability_is_in_bounding_set(CapabilitySet::from_bits_retain(
                            1 << c,
                        ))
                        .unwrap_or(true)
                    }) {
                        16
                    } else {
                        0
                    }
                }
            };
            // SAFETY: ends the forked child without the parent's atexit.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "check failed (see its number)"
        );
    }

    #[test]
    fn granting_a_capability_not_held_fails() {
        // SAFETY: as above.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = match apply(DOCKER_DEFAULT) {
                Err(_) => 10,
                Ok(()) => match set_process_caps(DOCKER_DEFAULT | 1 << 21) {
                    Err(CapsError::NotHeld(n)) if n == "CAP_SYS_ADMIN" => 0,
                    _ => 11,
                },
            };
            // SAFETY: ends the forked child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
