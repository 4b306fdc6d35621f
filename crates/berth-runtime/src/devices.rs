//! Device rules for a container's cgroup: Docker's defaults (every device
//! may be created with mknod, only the harmless ones read or written;
//! without them CAP_MKNOD would let a container read the host's disks),
//! then the container's own (`--device`, `--device-cgroup-rule`). On v1
//! the devices controller enforces them; on v2 an eBPF device program
//! built here.
//!
//! Never: allows a device no rule names; takes a rule it did not parse.

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

/// Applies Docker's default rules (see [`apply_rules`]).
pub fn apply_default_rules(cg: &Cgroup) -> io::Result<()> {
    apply_rules(cg, &[])
}

/// Docker's default rules and then `extra` (`--device`'s and
/// `--device-cgroup-rule`'s, each checked by [`parse_rule`]): on v1 (or
/// hybrid) written to the devices controller (`devices.deny` `a`, then one
/// `devices.allow` each); on a unified v2 host, where the kernel has no
/// devices files, as an eBPF device program attached to the cgroup
/// ([`device_program`], as runc does).
pub fn apply_rules(cg: &Cgroup, extra: &[String]) -> io::Result<()> {
    let Layout::V1 { mounts } = cg.layout() else {
        let Layout::Unified(root) = cg.layout() else {
            return Ok(());
        };
        return attach_program(&root.join(cg.rel()), extra);
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

/// Loads the device program for Docker's defaults and `extra` and attaches
/// it to the cgroup v2 directory `dir` (BPF_F_ALLOW_MULTI: a program the
/// container's own sub-cgroups might get can only narrow it).
fn attach_program(dir: &std::path::Path, extra: &[String]) -> io::Result<()> {
    use std::os::fd::AsFd;
    let mut rules = Vec::with_capacity(DEFAULT_ALLOW.len() + extra.len());
    for r in DEFAULT_ALLOW
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        rules.push(parse_rule(r).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid device cgroup format '{r}'"),
            )
        })?);
    }
    let prog = crate::sys::bpf_load_device_program(&device_program(&rules))
        .map_err(|e| io::Error::new(e.kind(), format!("loading the device program: {e}")))?;
    let cgroup = std::fs::File::open(dir)?;
    crate::sys::bpf_attach_device_program(cgroup.as_fd(), prog.as_fd())
        .map_err(|e| io::Error::new(e.kind(), format!("attaching the device program: {e}")))
}

/// An eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program that allows what one of
/// `rules` allows and refuses everything else. Its context is `struct
/// bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`, with
/// the device type (1 block, 2 char) in the low 16 bits of `access_type`
/// and the access (1 mknod, 2 read, 4 write) in the high ones. Each rule is
/// one block that jumps to the next on a mismatch and returns 1 at its
/// end; the last block returns 0.
pub fn device_program(rules: &[Rule]) -> Vec<u64> {
    // Registers: r2 type, r3 access, r4 major, r5 minor; r1 (the context,
    // read first) then scratch.
    const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
    const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
    const MOV32_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
    const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
    const JNE32_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
    const JNE32_X: u8 = 0x5e; // BPF_JMP32 | BPF_JNE | BPF_X
    const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
        u64::from(code)
            | (u64::from(dst & 0xf) << 8)
            | (u64::from(src & 0xf) << 12)
            | (u64::from(off as u16) << 16)
            | (u64::from(imm as u32) << 32)
    }
    let mut prog = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules {
        // (code, dst, src, imm) of each test; all jump past the block.
        let mut tests: Vec<(u8, u8, u8, i32)> = Vec::new();
        match r.kind {
            'b' => tests.push((JNE32_K, 2, 0, 1)),
            'c' => tests.push((JNE32_K, 2, 0, 2)),
            _ => {}
        }
        let access = r.access.bytes().fold(0i32, |a, b| {
            a | match b {
                b'm' => 1,
                b'r' => 2,
                b'w' => 4,
                _ => 0,
            }
        });
        let mut block: Vec<(u8, u8, u8, i32, bool)> = Vec::new();
        for (code, dst, src, imm) in tests {
            block.push((code, dst, src, imm, true));
        }
        if access != 7 {
            // (access & allowed) must be the access asked for.
            block.push((MOV32_X, 1, 3, 0, false));
            block.push((AND32_K, 1, 0, access, false));
            block.push((JNE32_X, 1, 3, 0, true));
        }
        if let Some(major) = r.major {
            block.push((JNE32_K, 4, 0, major as i32, true));
        }
        if let Some(minor) = r.minor {
            block.push((JNE32_K, 5, 0, minor as i32, true));
        }
        block.push((MOV32_K, 0, 0, 1, false));
        block.push((EXIT, 0, 0, 0, false));
        let n = block.len();
        for (i, (code, dst, src, imm, jump)) in block.into_iter().enumerate() {
            // A jump's offset counts from the next instruction.
            let off = if jump { (n - i - 1) as i16 } else { 0 };
            prog.push(insn(code, dst, src, off, imm));
        }
    }
    prog.push(insn(MOV32_K, 0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

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

    /// The v2 program, run by the kernel: this host's hybrid layout has a
    /// cgroup2 mount (`/sys/fs/cgroup/unified`), where device programs work
    /// as on a unified host. A child moved into a cgroup2 directory with
    /// the program may use /dev/null, read /dev/loop7 (granted `r`), and
    /// nothing else (not /dev/loop6); mknod of any number is allowed
    /// (Docker's `b *:* m`). Skipped where there is no loop6 or loop7.
    #[test]
    fn the_v2_device_program_holds_in_the_kernel() {
        let Some(unified) = cgroup2_mount() else {
            eprintln!("no cgroup2 mount: skipped");
            return;
        };
        if !std::path::Path::new("/dev/loop6").exists()
            || !std::path::Path::new("/dev/loop7").exists()
        {
            eprintln!("no /dev/loop6 or /dev/loop7: skipped");
            return;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let rel = format!("berth-devtest-{}-{nanos:x}", std::process::id());
        let layout = Layout::Unified(unified.clone());
        let cg = Cgroup::new(&layout, &rel);
        cg.create().unwrap();
        struct Rm(Cgroup);
        impl Drop for Rm {
            fn drop(&mut self) {
                self.0.kill_all(libc::SIGKILL);
                let _ = self.0.remove();
            }
        }
        let _rm = Rm(cg.clone());
        apply_rules(&cg, &["b 7:7 r".into()]).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("disk");
        let node_c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
        // Which opens succeed, as a bit set the child exits with.
        // SAFETY: the child only makes system calls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let procs = unified.join(&rel).join("cgroup.procs");
            if std::fs::write(&procs, "0").is_err() {
                // SAFETY: ends the child without running the parent's code.
                unsafe { libc::_exit(100) };
            }
            let open = |p: &std::ffi::CStr, flags: i32| {
                // SAFETY: p is a valid C string; the descriptor is closed.
                let fd = unsafe { libc::open(p.as_ptr(), flags) };
                if fd >= 0 {
                    // SAFETY: our own descriptor.
                    unsafe { libc::close(fd) };
                }
                fd >= 0
            };
            let mut bits = 0;
            if open(c"/dev/null", libc::O_RDWR) {
                bits |= 1;
            }
            if open(c"/dev/loop7", libc::O_RDONLY) {
                bits |= 2;
            }
            if open(c"/dev/loop7", libc::O_WRONLY) {
                bits |= 4;
            }
            // SAFETY: node_c is a valid C string.
            let made = unsafe {
                libc::mknod(
                    node_c.as_ptr(),
                    libc::S_IFBLK | 0o600,
                    libc::makedev(254, 0),
                )
            };
            if made == 0 {
                bits |= 8;
            }
            // Another block device (not through the node above: /tmp may
            // be nodev).
            if open(c"/dev/loop6", libc::O_RDONLY) {
                bits |= 16;
            }
            // SAFETY: ends the child.
            unsafe { libc::_exit(bits) };
        }
        let mut status = 0;
        // SAFETY: reaps our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        // null yes, loop7 read yes, write no, mknod yes, loop6 no.
        assert_eq!(libc::WEXITSTATUS(status), 1 | 2 | 8);
    }

    /// The cgroup2 mount of this host (unified or hybrid), if any.
    fn cgroup2_mount() -> Option<std::path::PathBuf> {
        let m = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        m.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4).map(std::path::PathBuf::from))
                .flatten()
        })
    }

    #[test]
    fn device_program_shape() {
        let p = device_program(&[
            parse_rule("c 1:3 rw").unwrap(),
            parse_rule("a *:* m").unwrap(),
        ]);
        // 6 loads, block 1: type, access (3), major, minor, mov, exit = 8;
        // block 2: access (3), mov, exit = 5; the final mov, exit.
        assert_eq!(p.len(), 6 + 8 + 5 + 2);
        // The first block's type test jumps over the 7 instructions after it.
        assert_eq!(
            (p[6] & 0xff, (p[6] >> 16) & 0xffff, p[6] >> 32),
            (0x56, 7, 2)
        );
        assert_eq!(p[p.len() - 1] & 0xff, 0x95);
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
