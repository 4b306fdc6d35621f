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
    let Layout::V1 { mounts } = cg.layout() else {
        return Ok(());
    };
    let Some((_, root)) = mounts
        .iter()
        .find(|(c, _)| c.split(',').any(|c| c == "devices"))
    else {
        return Ok(());
    };
    let dir = root.join(cg.rel());
    std::fs::write(dir.join("devices.deny"), "a")?;
    for rule in DEFAULT_ALLOW {
        std::fs::write(dir.join("devices.allow"), rule)?;
    }
    Ok(())
}
