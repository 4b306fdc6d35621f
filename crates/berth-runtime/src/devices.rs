//! Docker's default device rules for a container's cgroup: every device
//! may be created (mknod), but only the harmless ones may be read or
//! written. Without them CAP_MKNOD would let a container read the host's
//! disks.

use std::io;

use crate::cgroups::{Cgroup, Layout};

/// `type major:minor access`, as the v1 devices controller takes them.
pub const DEFAULT_ALLOW: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",    // null
    "c 1:5 rwm",    // zero
    "c 1:7 rwm",    // full
    "c 1:8 rwm",    // random
    "c 1:9 rwm",    // urandom
    "c 5:0 rwm",    // tty
    "c 5:1 rwm",    // console
    "c 5:2 rwm",    // ptmx
    "c 136:* rwm",  // pts
    "c 10:200 rwm", // tun
];

/// Applies the default rules on a v1 (or hybrid) host. On a unified v2
/// host the kernel has no devices file; device access control there needs
/// an eBPF program (not yet: see ARCHITECTURE.md), so this does nothing.
pub fn apply_default_rules(cg: &Cgroup) -> io::Result<()> {
    apply_rules(cg, &[])
}

/// Docker's default rules and then `extra` (`--device`'s and
/// `--device-cgroup-rule`'s, each checked by [`parse_rule`]) on a v1 host.
/// On v2 extra rules are an error: without an eBPF device program berth
/// could not keep a container to them.
pub fn apply_rules(cg: &Cgroup, extra: &[String]) -> io::Result<()> {
    let Layout::V1 { mounts } = cg.layout() else {
        if extra.is_empty() {
            return Ok(());
        }
        return Err(io::Error::other(V2_UNSUPPORTED));
    };
    let Some((_, root)) = mounts
        .iter()
        .find(|(c, _)| c.split(',').any(|c| c == "devices"))
    else {
        return Ok(());
    };
    let dir = root.join(cg.rel());
    std::fs::write(dir.join("devices.deny"), "a")?;
    for rule in DEFAULT_ALLOW
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        if parse_rule(rule).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid device cgroup format '{rule}'"),
            ));
        }
        std::fs::write(dir.join("devices.allow"), rule)?;
    }
    Ok(())
}

/// Why `--device` and `--device-cgroup-rule` fail on a unified host.
pub const V2_UNSUPPORTED: &str =
    "--device and --device-cgroup-rule need cgroup v1: berth has no eBPF device filter for cgroup v2 yet";

/// A device cgroup rule, `TYPE MAJOR:MINOR ACCESS`, as Docker accepts it
/// (`^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`): None when it is
/// not one. The numbers must fit the kernel's 32 bits.
pub fn parse_rule(rule: &str) -> Option<Rule> {
    let mut parts = rule.split(' ');
    let (Some(kind), Some(numbers), Some(access), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next()?,
        _ => return None,
    };
    let (major, minor) = numbers.split_once(':')?;
    let number = |s: &str| -> Option<Option<u32>> {
        if s == "*" {
            return Some(None);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u32>().ok().map(Some)
    };
    let (major, minor) = (number(major)?, number(minor)?);
    let ok_access =
        (1..=3).contains(&access.len()) && access.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'));
    if !ok_access {
        return None;
    }
    Some(Rule {
        kind,
        major,
        minor,
        access: access.to_string(),
    })
}

/// A parsed device cgroup rule; None numbers are `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_as_docker_accepts_them() {
        for ok in [
            "c 1:3 rwm",
            "b 7:* r",
            "a *:* m",
            "c *:5 mw",
            "c 4294967295:0 r",
        ] {
            assert!(parse_rule(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "c 1:3",
            "x 1:3 r",
            "c 1:3 rwq",
            "c 1:3 rwmr",
            "c 1 r",
            "c :3 r",
            "c 1:3  r",
            "c -1:3 r",
            "c 4294967296:0 r",
            "c 1:3 r extra",
            "c 1:3 r\n",
            "c 1:3 r\nc *:* rwm",
        ] {
            assert!(parse_rule(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            parse_rule("b 7:* rw"),
            Some(Rule {
                kind: 'b',
                major: Some(7),
                minor: None,
                access: "rw".into()
            })
        );
        assert!(DEFAULT_ALLOW.iter().all(|r| parse_rule(r).is_some()));
    }

    #[test]
    fn extra_rules_on_v2_fail_and_defaults_pass() {
        let cg = Cgroup::new(&Layout::Unified("/nonexistent".into()), "berth/c1");
        assert!(apply_rules(&cg, &[]).is_ok());
        let e = apply_rules(&cg, &["c 1:3 r".into()]).unwrap_err();
        assert_eq!(e.to_string(), V2_UNSUPPORTED);
    }

    #[test]
    fn v1_rules_follow_the_defaults_and_bad_ones_stop() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("berth/c1");
        std::fs::create_dir_all(&dir).unwrap();
        let layout = Layout::V1 {
            mounts: vec![("devices".into(), root.path().to_path_buf())],
        };
        let cg = Cgroup::new(&layout, "berth/c1");
        apply_rules(&cg, &["b 7:* rw".into()]).unwrap();
        // A plain file keeps the last write: the extra rule came last.
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.allow")).unwrap(),
            "b 7:* rw"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.deny")).unwrap(),
            "a"
        );
        assert!(apply_rules(&cg, &["c 1:3 rwm\na *:* rwm".into()]).is_err());
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.allow")).unwrap(),
            "c 10:200 rwm"
        );
    }
}
