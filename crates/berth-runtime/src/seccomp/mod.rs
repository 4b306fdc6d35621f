//! Seccomp: Docker's profile format, evaluated against a container's
//! capabilities and compiled to classic BPF with `seccompiler`.
//!
//! - [`Profile::parse`] reads Docker's JSON (`default.json` format) into
//!   types; [`default_profile`] is berth's built-in profile, written in that
//!   format (`seccomp/default.json`): what Docker's default profile allows,
//!   capability-gated groups included.
//! - [`compile`] evaluates a profile for a [`Target`] (the container's
//!   effective capabilities, the kernel version, the native architecture)
//!   as Docker does (`includes`/`excludes` on caps, arches and minKernel),
//!   maps names to numbers ([`syscalls`]; unknown names are skipped, as
//!   libseccomp skips them) and builds the filters.
//! - [`CompiledFilters::to_bytes`]/[`from_bytes`](CompiledFilters::from_bytes)
//!   are the on-disk form the engine caches, so that a container's init only
//!   loads ([`CompiledFilters::install`]) and never compiles.
//!
//! Architectures: the native one (x86_64 or arm64) and, on x86_64, x32 when
//! the profile lists it (x32 shares x86_64's audit arch; its numbers carry
//! the x32 bit, so its rules live in the same filter). i386 (`int 0x80`,
//! SCMP_ARCH_X86) and 32-bit arm are not supported by `seccompiler`: their
//! syscalls kill the process, even where a profile lists them.
//!
//! Never: sets `no_new_privs` itself (Docker does not, unless asked: the
//! caller decides), or compiles in a container's init.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

mod profile;
pub mod syscalls;

pub use profile::{
    kernel_version, Action, Arch, ArchMapEntry, ArgCmp, Condition, FieldProblem, Op, Profile,
    ProfileError, SyscallRule,
};

/// berth's built-in profile, in Docker's format.
pub const DEFAULT_PROFILE_JSON: &[u8] = include_bytes!("default.json");

/// Errors from compiling, loading or decoding seccomp filters.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile could not be parsed.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The profile could not be turned into BPF.
    #[error("compiling the seccomp profile failed: {0}")]
    Compile(#[from] seccompiler::BackendError),
    /// The profile asks for something berth cannot do.
    #[error("seccomp profile: {0}")]
    Unsupported(&'static str),
    /// No syscall table exists for the architecture berth was built for.
    #[error("no seccomp support for architecture {0}")]
    UnsupportedArch(&'static str),
    /// The kernel refused a filter.
    #[error("loading seccomp filter {index} of {count} failed: {source}{hint}")]
    Load {
        index: usize,
        count: usize,
        source: io::Error,
        hint: &'static str,
    },
    /// Cached filter bytes are not usable.
    #[error("cached seccomp filter is invalid: {0}")]
    BadCache(&'static str),
}

/// The compiled filters of a profile, in install order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilters(Vec<BpfProgram>);

// ---------------------------------------------------------------------------
// The native architecture.

struct Native {
    arch: Arch,
    /// Go's name for it, as Docker's `includes.arches` spells it.
    go_name: &'static str,
    target: TargetArch,
    audit_arch: u32,
    table: &'static [(&'static str, u32)],
    /// x32's table, where the native arch has that ABI.
    x32: Option<&'static [(&'static str, u32)]>,
}

/// `AUDIT_ARCH_*`: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
#[cfg(target_arch = "x86_64")]
static NATIVE: Option<Native> = Some(Native {
    arch: Arch::X86_64,
    go_name: "amd64",
    target: TargetArch::x86_64,
    audit_arch: 62 | 0x8000_0000 | 0x4000_0000,
    table: syscalls::X86_64,
    x32: Some(syscalls::X32),
});
#[cfg(target_arch = "aarch64")]
static NATIVE: Option<Native> = Some(Native {
    arch: Arch::Aarch64,
    go_name: "arm64",
    target: TargetArch::aarch64,
    audit_arch: 183 | 0x8000_0000 | 0x4000_0000,
    table: syscalls::AARCH64,
    x32: None,
});
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
static NATIVE: Option<Native> = None;

fn native() -> Result<&'static Native, SeccompError> {
    NATIVE
        .as_ref()
        .ok_or(SeccompError::UnsupportedArch(std::env::consts::ARCH))
}

fn audit_arch() -> u32 {
    native().map_or(0, |n| n.audit_arch)
}

/// The number of syscall `name` in `table`, if the architecture has it.
pub fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

/// x32 syscalls carry this bit (and x86_64's audit arch).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// ---------------------------------------------------------------------------
// Evaluating a profile.

/// What a profile is evaluated against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The container's effective capabilities (bit n = capability n).
    pub caps: u64,
    /// The running kernel's (major, minor), for `minKernel`.
    pub kernel: (u32, u32),
}

impl Target {
    /// `caps` on the running kernel.
    pub fn host(caps: u64) -> Target {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        let kernel = release
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .and_then(|v| {
                let mut it = v.split('.');
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .unwrap_or((0, 0));
        Target { caps, kernel }
    }
}

/// Berth's built-in profile (Docker's default), parsed.
pub fn default_profile() -> Result<Profile, SeccompError> {
    Ok(Profile::parse(DEFAULT_PROFILE_JSON)?)
}

/// Whether `rule` applies to `target` on this architecture, as Docker
/// decides: an `excludes` that matches (an arch, any held cap, a kernel at
/// least `minKernel`) drops it; every `includes` must match (the arch, all
/// the caps, a kernel at least `minKernel`).
pub fn rule_applies(rule: &SyscallRule, target: &Target) -> bool {
    let go_name = native().map_or("", |n| n.go_name);
    let held = |c: &String| {
        crate::caps::parse_name(c).is_some_and(|n| n < 64 && target.caps & (1u64 << n) != 0)
    };
    let ex = &rule.excludes;
    if ex.arches.iter().any(|a| a == go_name)
        || ex.caps.iter().any(held)
        || ex.min_kernel.is_some_and(|k| target.kernel >= k)
    {
        return false;
    }
    let inc = &rule.includes;
    (inc.arches.is_empty() || inc.arches.iter().any(|a| a == go_name))
        && inc.caps.iter().all(held)
        && inc.min_kernel.is_none_or(|k| target.kernel >= k)
}

/// The argument conditions under which a syscall gets an action: any one
/// of the sets, each set all of its comparisons. An empty set matches
/// always.
type Chains = Vec<Vec<ArgCmp>>;

/// The rules that apply, by action and syscall number.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evaluated {
    pub default_action: Action,
    pub by_action: BTreeMap<Action, BTreeMap<i64, Chains>>,
    /// The highest native syscall number a applying rule names.
    pub newest: Option<u32>,
    /// Whether x32 syscalls are covered.
    pub x32: bool,
}

impl Default for Action {
    fn default() -> Self {
        Action::Errno(libc::EPERM as u32)
    }
}

/// Evaluates `profile` for `target`: which rules apply, on which syscall
/// numbers. Rules whose action is the default one change nothing and are
/// dropped (as runc drops them); several comparisons on the same argument
/// become separate rules (as runc splits them); a MASKED_EQ whose datum has
/// bits outside its mask can never match (as in libseccomp) and is dropped.
pub fn evaluate(profile: &Profile, target: &Target) -> Result<Evaluated, SeccompError> {
    let native = native()?;
    let arches: Vec<Arch> = if profile.arch_map.is_empty() {
        profile.architectures.clone()
    } else {
        profile
            .arch_map
            .iter()
            .filter(|e| e.architecture == native.arch)
            .flat_map(|e| std::iter::once(e.architecture).chain(e.sub_architectures.clone()))
            .collect()
    };
    let x32 = native.x32.filter(|_| arches.contains(&Arch::X32));
    let mut out = Evaluated {
        default_action: profile.default_action,
        x32: x32.is_some(),
        ..Evaluated::default()
    };
    if profile.default_action == Action::Notify {
        return Err(SeccompError::Unsupported(
            "SCMP_ACT_NOTIFY needs a seccomp agent, which berth does not have",
        ));
    }
    for rule in &profile.syscalls {
        if rule.action == profile.default_action || !rule_applies(rule, target) {
            continue;
        }
        if rule.action == Action::Notify {
            return Err(SeccompError::Unsupported(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which berth does not have",
            ));
        }
        let Some(sets) = condition_sets(&rule.args) else {
            continue;
        };
        let per_nr = out.by_action.entry(rule.action).or_default();
        for name in &rule.names {
            let native_nr = lookup(native.table, name);
            if let Some(nr) = native_nr {
                out.newest = out.newest.max(Some(nr));
            }
            let x32_nr = x32.and_then(|t| lookup(t, name));
            for nr in native_nr.into_iter().chain(x32_nr) {
                let chains = per_nr.entry(i64::from(nr)).or_default();
                if chains.iter().any(Vec::is_empty) {
                    continue;
                }
                if sets.iter().any(Vec::is_empty) {
                    *chains = vec![Vec::new()];
                } else {
                    chains.extend(sets.iter().cloned());
                }
            }
        }
    }
    out.by_action.retain(|_, m| !m.is_empty());
    Ok(out)
}

/// A rule's `args` as condition sets (see [`evaluate`]); `None` when the
/// rule can never match.
fn condition_sets(args: &[ArgCmp]) -> Option<Chains> {
    let possible = |a: &ArgCmp| a.op != Op::MaskedEq || a.value_two & !a.value == 0;
    let mut seen = [false; 6];
    let repeated = args.iter().any(|a| {
        let i = usize::from(a.index).min(5);
        std::mem::replace(&mut seen[i], true)
    });
    if repeated {
        let sets: Chains = args
            .iter()
            .filter(|a| possible(a))
            .map(|a| vec![*a])
            .collect();
        (!sets.is_empty()).then_some(sets)
    } else if args.iter().all(possible) {
        Some(vec![args.to_vec()])
    } else {
        None
    }
}

fn seccomp_action(a: Action) -> SeccompAction {
    match a {
        Action::Allow => SeccompAction::Allow,
        Action::Errno(e) => SeccompAction::Errno(e),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Trace(v) => SeccompAction::Trace(v),
        Action::Log => SeccompAction::Log,
        // Refused by `evaluate`; never reaches the compiler.
        Action::Notify => SeccompAction::KillProcess,
    }
}

fn seccomp_rules(
    per_nr: &BTreeMap<i64, Chains>,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules = BTreeMap::new();
    for (&nr, chains) in per_nr {
        let mut out = Vec::new();
        if !chains.iter().any(Vec::is_empty) {
            for set in chains {
                let conds = set
                    .iter()
                    .map(|a| {
                        let (op, value) = match a.op {
                            Op::Ne => (SeccompCmpOp::Ne, a.value),
                            Op::Lt => (SeccompCmpOp::Lt, a.value),
                            Op::Le => (SeccompCmpOp::Le, a.value),
                            Op::Eq => (SeccompCmpOp::Eq, a.value),
                            Op::Ge => (SeccompCmpOp::Ge, a.value),
                            Op::Gt => (SeccompCmpOp::Gt, a.value),
                            Op::MaskedEq => (SeccompCmpOp::MaskedEq(a.value), a.value_two),
                        };
                        SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, value)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(SeccompRule::new(conds)?);
            }
        }
        rules.insert(nr, out);
    }
    Ok(rules)
}

/// Evaluates and compiles `profile` for `target`.
///
/// The filters, in install order (the kernel runs them all and keeps the
/// action of highest precedence, KILL > TRAP > ERRNO > TRACE > LOG > ALLOW;
/// between two ERRNO results, the filter installed last wins):
/// 1. the base filter: a syscall some applying rule names (whatever its
///    action) is ALLOWed here when its arguments match, everything else
///    gets the default action (skipped when the default is ALLOW); with
///    x32, two: one for native numbers, one for x32 numbers (see [`gated`]);
/// 2. one filter per other action: its rules give that action, everything
///    else ALLOW;
/// 3. when the default is neither ALLOW nor LOG, the ENOSYS filter: native
///    syscall numbers above the highest one the profile names fail with
///    ENOSYS (as runc does), so that libc falls back to an older syscall.
///
/// A syscall its rules match thus gets the rule's action, any other the
/// default, as in one libseccomp filter. Every filter kills foreign
/// architectures.
pub fn compile(profile: &Profile, target: &Target) -> Result<CompiledFilters, SeccompError> {
    let native = native()?;
    let ev = evaluate(profile, target)?;
    let mut progs = Vec::new();
    if ev.default_action != Action::Allow {
        let mut all: BTreeMap<i64, Chains> = BTreeMap::new();
        for per_nr in ev.by_action.values() {
            for (&nr, chains) in per_nr {
                let merged = all.entry(nr).or_default();
                if merged.iter().any(Vec::is_empty) {
                    continue;
                }
                if chains.iter().any(Vec::is_empty) {
                    *merged = vec![Vec::new()];
                } else {
                    merged.extend(chains.iter().cloned());
                }
            }
        }
        // x32 gets a filter of its own behind a gate, so that native
        // syscalls never walk the x32 rules (the kernel's load-time
        // emulation walks every filter for every syscall number).
        let (native_rules, x32_rules): (BTreeMap<i64, Chains>, BTreeMap<i64, Chains>) = all
            .into_iter()
            .partition(|(nr, _)| *nr < i64::from(X32_SYSCALL_BIT));
        let base = |rules: &BTreeMap<i64, Chains>| -> Result<BpfProgram, SeccompError> {
            let f = SeccompFilter::new(
                seccomp_rules(rules)?,
                seccomp_action(ev.default_action),
                SeccompAction::Allow,
                native.target,
            )?;
            Ok(BpfProgram::try_from(f)?)
        };
        if ev.x32 {
            progs.push(gated(false, base(&native_rules)?));
            progs.push(gated(true, base(&x32_rules)?));
        } else {
            progs.push(base(&native_rules)?);
        }
    }
    for (&action, per_nr) in &ev.by_action {
        if action == Action::Allow {
            continue;
        }
        let f = SeccompFilter::new(
            seccomp_rules(per_nr)?,
            SeccompAction::Allow,
            seccomp_action(action),
            native.target,
        )?;
        progs.push(BpfProgram::try_from(f)?);
    }
    if progs.is_empty() {
        // Everything allowed: still refuse foreign architectures.
        let f = SeccompFilter::new(
            BTreeMap::new(),
            SeccompAction::Allow,
            SeccompAction::KillProcess,
            native.target,
        )?;
        progs.push(BpfProgram::try_from(f)?);
    }
    if !matches!(ev.default_action, Action::Allow | Action::Log) {
        if let Some(newest) = ev.newest {
            progs.push(enosys_filter(native.audit_arch, newest));
        }
    }
    if progs.len() > MAX_FILTERS {
        return Err(SeccompError::Unsupported(
            "too many different actions (berth installs one filter per action)",
        ));
    }
    Ok(CompiledFilters(progs))
}

// Classic BPF opcodes (linux/bpf_common.h) and seccomp return values.
/// BPF_LD | BPF_W | BPF_ABS.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// `prog` behind a gate on the x32 bit: it only sees x32 syscall numbers
/// (`x32`) or only the others; the rest are ALLOWed here and left to the
/// filter that covers them. Every filter checks the architecture, so a
/// foreign one is still killed by one of them.
fn gated(x32: bool, prog: BpfProgram) -> BpfProgram {
    let mut p = Vec::with_capacity(prog.len() + 3);
    p.push(stmt(BPF_LD_W_ABS, DATA_NR));
    // x32: numbers below the bit skip to ALLOW (jf); others: numbers at or
    // above it do (jt).
    p.push(if x32 {
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 1, 0)
    } else {
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1)
    });
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p.extend(prog);
    p
}

/// The ENOSYS filter: ERRNO(ENOSYS) for native numbers in
/// `(newest, X32_SYSCALL_BIT)`, ALLOW for the rest (x32 numbers, and
/// foreign architectures, which the other filters kill).
fn enosys_filter(audit_arch: u32, newest: u32) -> BpfProgram {
    vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JMP_JEQ_K, audit_arch, 0, 3),
        stmt(BPF_LD_W_ABS, DATA_NR),
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 1, 0),
        jump(BPF_JMP_JGT_K, newest, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ]
}

// ---------------------------------------------------------------------------
// Loading and caching.

const MAGIC: &[u8; 8] = b"berthbpf";
const FORMAT_VERSION: u32 = 1;
/// The kernel's BPF_MAXINSNS.
const MAX_INSNS: usize = 4096;
const MAX_FILTERS: usize = 16;
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 4;

impl CompiledFilters {
    /// The BPF programs, in install order.
    pub fn programs(&self) -> &[BpfProgram] {
        &self.0
    }

    /// Loads every filter into the calling thread, in order, with
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` and no flags.
    ///
    /// Does not set `no_new_privs`: the caller must hold CAP_SYS_ADMIN (as
    /// a container's init does before it drops capabilities), or the kernel
    /// answers EACCES. The filters are inherited across fork and execve.
    pub fn install(&self) -> Result<(), SeccompError> {
        let count = self.0.len();
        for (i, prog) in self.0.iter().enumerate() {
            load_filter(prog).map_err(|source| {
                let hint = if source.raw_os_error() == Some(libc::EACCES) {
                    " (needs CAP_SYS_ADMIN or no_new_privs)"
                } else {
                    ""
                };
                SeccompError::Load {
                    index: i + 1,
                    count,
                    source,
                    hint,
                }
            })?;
        }
        Ok(())
    }

    /// Serialises the filters for an on-disk cache: a header (magic,
    /// format version, audit arch, FNV-1a checksum of the body, filter
    /// count), then per filter its length and its instructions, all
    /// little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let insns: usize = self.0.iter().map(Vec::len).sum();
        let mut body = Vec::with_capacity(4 * self.0.len() + 8 * insns);
        for prog in &self.0 {
            body.extend_from_slice(&(prog.len() as u32).to_le_bytes());
            for ins in prog {
                body.extend_from_slice(&ins.code.to_le_bytes());
                body.push(ins.jt);
                body.push(ins.jf);
                body.extend_from_slice(&ins.k.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&audit_arch().to_le_bytes());
        out.extend_from_slice(&fnv(&body).to_le_bytes());
        out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote, refusing anything
    /// truncated, corrupted, of another format version or made for another
    /// architecture. (Which profile it holds is the cache key's business.)
    pub fn from_bytes(b: &[u8]) -> Result<Self, SeccompError> {
        let mut r = Reader(b);
        if r.take(8)? != MAGIC {
            return Err(SeccompError::BadCache("not a berth seccomp cache"));
        }
        if r.u32()? != FORMAT_VERSION {
            return Err(SeccompError::BadCache("unknown format version"));
        }
        if r.u32()? != audit_arch() {
            return Err(SeccompError::BadCache("made for another architecture"));
        }
        let sum = r.u64()?;
        let count = r.u32()? as usize;
        if fnv(r.0) != sum {
            return Err(SeccompError::BadCache("checksum mismatch"));
        }
        if count == 0 || count > MAX_FILTERS {
            return Err(SeccompError::BadCache("bad filter count"));
        }
        let mut progs = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32()? as usize;
            if len == 0 || len > MAX_INSNS {
                return Err(SeccompError::BadCache("bad filter length"));
            }
            let mut prog = Vec::with_capacity(len);
            for _ in 0..len {
                let ins = r.take(8)?;
                prog.push(sock_filter {
                    code: u16::from_le_bytes([ins[0], ins[1]]),
                    jt: ins[2],
                    jf: ins[3],
                    k: u32::from_le_bytes([ins[4], ins[5], ins[6], ins[7]]),
                });
            }
            progs.push(prog);
        }
        if !r.0.is_empty() {
            return Err(SeccompError::BadCache("trailing bytes"));
        }
        Ok(CompiledFilters(progs))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SeccompError> {
        if self.0.len() < n {
            return Err(SeccompError::BadCache("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, SeccompError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, SeccompError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn fnv(b: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.bytes(b);
    h.finish()
}

// seccompiler's instruction type and the kernel's have the same layout, so
// a program can be handed to the kernel as it is.
const _: () = assert!(
    std::mem::size_of::<sock_filter>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<sock_filter>() == std::mem::align_of::<libc::sock_filter>()
);

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`. Unlike
/// `seccompiler::apply_filter` it leaves `no_new_privs` alone.
fn load_filter(prog: &[sock_filter]) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` initialised instructions whose layout
    // matches `struct sock_filter` (checked at compile time above); the
    // kernel only reads them (copy_from_user) during the call, while `prog`
    // and `fprog` are borrowed and alive.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            0 as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Docker's default capabilities on this kernel.
    fn docker_default() -> Target {
        Target::host(crate::caps::DOCKER_DEFAULT)
    }

    fn cap(name: &str) -> u64 {
        1u64 << crate::caps::parse_name(name).unwrap()
    }

    fn nr(name: &str) -> i64 {
        i64::from(lookup(native().unwrap().table, name).unwrap())
    }

    /// The action `ev` gives `name` when its arguments match every rule
    /// (`None`: no rule names it, the default applies).
    fn action_of(ev: &Evaluated, name: &str) -> Option<Action> {
        let n = nr(name);
        ev.by_action
            .iter()
            .find(|(_, m)| m.contains_key(&n))
            .map(|(a, _)| *a)
    }

    fn unconditional(ev: &Evaluated, name: &str) -> bool {
        let n = nr(name);
        ev.by_action
            .values()
            .any(|m| m.get(&n).is_some_and(|c| c.iter().any(Vec::is_empty)))
    }

    #[test]
    fn syscall_tables_are_sorted_and_complete() {
        for t in [syscalls::X86_64, syscalls::X32, syscalls::AARCH64] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "not sorted");
        }
        assert_eq!(lookup(syscalls::X86_64, "mkdir"), Some(83));
        assert_eq!(lookup(syscalls::X86_64, "clone3"), Some(435));
        assert_eq!(lookup(syscalls::X32, "getpid"), Some(39 | X32_SYSCALL_BIT));
        assert_eq!(lookup(syscalls::AARCH64, "mkdirat"), Some(34));
        assert_eq!(lookup(syscalls::AARCH64, "mkdir"), None);
        assert_eq!(lookup(syscalls::X86_64, "nosuchcall"), None);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                lookup(syscalls::X86_64, "unshare"),
                Some(libc::SYS_unshare as u32)
            );
            assert_eq!(
                lookup(syscalls::X86_64, "mseal"),
                Some(libc::SYS_mseal as u32)
            );
        }
    }

    #[test]
    fn clone_mask_is_dockers() {
        let p = default_profile().unwrap();
        let rule = p
            .syscalls
            .iter()
            .find(|r| r.names == ["clone"] && !r.args.is_empty())
            .unwrap();
        let ns = (libc::CLONE_NEWNS
            | libc::CLONE_NEWCGROUP
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET) as u64;
        assert_eq!(rule.args[0].value, ns);
        assert_eq!(ns, 2_114_060_288);
    }

    #[test]
    fn default_caps_leave_out_the_dangerous() {
        let ev = evaluate(&default_profile().unwrap(), &docker_default()).unwrap();
        assert_eq!(ev.default_action, Action::Errno(libc::EPERM as u32));
        for denied in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "syslog",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "acct",
            "swapon",
            "open_by_handle_at",
            "sethostname",
            "setdomainname",
            "io_uring_setup",
            "userfaultfd",
            "fsopen",
            "move_mount",
            "open_tree",
            "clock_settime",
            "settimeofday",
            "kcmp",
            "pidfd_getfd",
            "mbind",
            "quotactl",
            "lookup_dcookie",
            "fanotify_init",
            "vhangup",
        ] {
            assert_eq!(action_of(&ev, denied), None, "{denied} is allowed");
        }
        for allowed in ["read", "mkdir", "chroot", "ptrace", "execve", "statx"] {
            assert!(unconditional(&ev, allowed), "{allowed} is not allowed");
        }
        // clone: only without namespace flags; clone3: ENOSYS.
        assert!(!unconditional(&ev, "clone"));
        assert_eq!(action_of(&ev, "clone"), Some(Action::Allow));
        assert_eq!(
            action_of(&ev, "clone3"),
            Some(Action::Errno(libc::ENOSYS as u32))
        );
        assert_eq!(ev.newest, lookup(native().unwrap().table, "removexattrat"));
        #[cfg(target_arch = "x86_64")]
        {
            assert!(ev.x32);
            let x32_getpid = i64::from(39 | X32_SYSCALL_BIT);
            assert!(ev.by_action[&Action::Allow].contains_key(&x32_getpid));
        }
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let p = default_profile().unwrap();
        let base = docker_default();
        let with = |c: &str| Target {
            caps: base.caps | cap(c),
            ..base
        };
        let ev = evaluate(&p, &with("CAP_SYS_ADMIN")).unwrap();
        for s in [
            "mount",
            "unshare",
            "setns",
            "umount2",
            "sethostname",
            "clone3",
        ] {
            assert!(unconditional(&ev, s), "{s} with CAP_SYS_ADMIN");
        }
        assert!(unconditional(&ev, "clone"), "clone with CAP_SYS_ADMIN");
        assert_eq!(action_of(&ev, "clone3"), Some(Action::Allow));
        let ev = evaluate(&p, &with("CAP_SYS_PTRACE")).unwrap();
        for s in ["kcmp", "pidfd_getfd", "process_madvise"] {
            assert!(unconditional(&ev, s), "{s} with CAP_SYS_PTRACE");
        }
        assert_eq!(action_of(&ev, "mount"), None);
        let ev = evaluate(&p, &with("CAP_SYS_TIME")).unwrap();
        assert!(unconditional(&ev, "clock_settime"));
        // Without CAP_SYS_CHROOT, no chroot; on a kernel before 4.8 no ptrace.
        let ev = evaluate(
            &p,
            &Target {
                caps: base.caps & !cap("CAP_SYS_CHROOT"),
                kernel: (4, 4),
            },
        )
        .unwrap();
        assert_eq!(action_of(&ev, "chroot"), None);
        assert_eq!(action_of(&ev, "ptrace"), None);
    }

    #[test]
    fn rules_evaluate_as_docker_and_runc_do() {
        let p = Profile::parse(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","mkdirat","nosuchcall"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
                {"names":["socket"],"action":"SCMP_ACT_KILL","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
                {"names":["kill"],"action":"SCMP_ACT_TRAP","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":9,"op":"SCMP_CMP_EQ"}]},
                {"names":["tkill"],"action":"SCMP_ACT_TRAP","args":[
                    {"index":0,"value":1,"valueTwo":3,"op":"SCMP_CMP_MASKED_EQ"}]},
                {"names":["chown"],"action":"SCMP_ACT_LOG","includes":{"arches":["s390x"]}},
                {"names":["chmod"],"action":"SCMP_ACT_LOG","excludes":{"caps":["CAP_CHOWN"]}}
            ]}"#,
        )
        .unwrap();
        let ev = evaluate(&p, &docker_default()).unwrap();
        assert_eq!(action_of(&ev, "mkdir"), Some(Action::Errno(13)));
        assert!(unconditional(&ev, "mkdirat"));
        // Same action as the default: dropped.
        assert_eq!(action_of(&ev, "getpid"), None);
        // Two comparisons on one argument: either one.
        let kill = &ev.by_action[&Action::KillThread][&nr("socket")];
        assert_eq!(kill.len(), 2);
        // On different arguments: both.
        assert_eq!(ev.by_action[&Action::Trap][&nr("kill")].len(), 1);
        assert_eq!(ev.by_action[&Action::Trap][&nr("kill")][0].len(), 2);
        // A datum outside its mask never matches.
        assert_eq!(action_of(&ev, "tkill"), None);
        assert_eq!(action_of(&ev, "chown"), None);
        assert_eq!(action_of(&ev, "chmod"), None);
        let f = compile(&p, &docker_default()).unwrap();
        // No base filter (default ALLOW): one per action, no ENOSYS filter.
        assert_eq!(f.programs().len(), 3);
    }

    #[test]
    fn notify_is_refused() {
        let p = Profile::parse(br#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).unwrap();
        assert!(matches!(
            compile(&p, &docker_default()),
            Err(SeccompError::Unsupported(_))
        ));
    }

    #[test]
    fn profile_compiles_and_reports_its_cost() {
        let p = default_profile().unwrap();
        let t = Instant::now();
        let f = compile(&p, &docker_default()).unwrap();
        let first = t.elapsed();
        let mut best = first;
        for _ in 0..20 {
            let t = Instant::now();
            let p = Profile::parse(DEFAULT_PROFILE_JSON).unwrap();
            let g = compile(&p, &docker_default()).unwrap();
            best = best.min(t.elapsed());
            assert_eq!(f, g);
        }
        let sizes: Vec<usize> = f.programs().iter().map(Vec::len).collect();
        eprintln!(
            "seccomp default profile: {sizes:?} instructions, compiled in {first:?} (first), \
             parsed and compiled in {best:?} (best of 20)"
        );
        // Base (native, x32), the ENOSYS rule for clone3, the newer-syscall filter.
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(f.programs().len(), 4);
            assert!(sizes[0] > 1000 && sizes[0] < MAX_INSNS);
            assert!(sizes[1] > 1000 && sizes[1] < MAX_INSNS);
            assert_eq!(sizes[3], 7);
        }
    }

    /// What the start path pays: decoding the cached bytes and loading the
    /// filters into the kernel (in a forked child, best of 10).
    #[test]
    fn loading_reports_its_cost() {
        let bytes = compile(&default_profile().unwrap(), &docker_default())
            .unwrap()
            .to_bytes();
        let mut fds = [0; 2];
        // SAFETY: pipe fills the two-element array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut best = u64::MAX;
        for _ in 0..10 {
            // SAFETY: the child decodes, installs, writes 8 bytes and leaves
            // with _exit; glibc keeps malloc usable after fork.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let t = Instant::now();
                let ok = CompiledFilters::from_bytes(&bytes).is_ok_and(|f| f.install().is_ok());
                let ns = if ok { t.elapsed().as_nanos() as u64 } else { 0 };
                // SAFETY: writes 8 bytes from a live local to our pipe.
                unsafe { libc::write(fds[1], (&ns as *const u64).cast(), 8) };
                // SAFETY: ends the forked child.
                unsafe { libc::_exit(0) };
            }
            let mut ns = 0u64;
            // SAFETY: reads 8 bytes into a live local from our pipe.
            let n = unsafe { libc::read(fds[0], (&mut ns as *mut u64).cast(), 8) };
            assert_eq!(n, 8);
            let mut status = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(ns > 0, "install failed");
            best = best.min(ns);
        }
        eprintln!(
            "seccomp: {} bytes cached, decoded and loaded in {} µs (best of 10)",
            bytes.len(),
            best / 1000
        );
    }

    #[test]
    fn cache_round_trips_and_rejects_damage() {
        let f = compile(&default_profile().unwrap(), &docker_default()).unwrap();
        let b = f.to_bytes();
        assert_eq!(CompiledFilters::from_bytes(&b).unwrap(), f);
        for cut in [0, 7, HEADER_LEN, b.len() - 1] {
            assert!(
                CompiledFilters::from_bytes(&b[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = b.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert!(CompiledFilters::from_bytes(&flipped).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(CompiledFilters::from_bytes(&longer).is_err());
    }

    /// Runs `check` in a forked child, after installing the profile there
    /// if `filtered`; the child's exit code is the number of the first
    /// failed check (0 if all passed, 100 if the install failed).
    fn in_child(filters: Option<CompiledFilters>, check: fn() -> i32) -> i32 {
        // SAFETY: the child only installs the filter, makes raw syscalls and
        // leaves with _exit; glibc keeps malloc usable after fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = match filters.as_ref().map(CompiledFilters::install) {
                Some(Err(_)) => 100,
                _ => check(),
            };
            // SAFETY: ends the forked child without running the parent's
            // atexit handlers or destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        assert!(
            libc::WIFEXITED(status),
            "child died by signal {}",
            libc::WTERMSIG(status)
        );
        libc::WEXITSTATUS(status)
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Each check: (result, expected errno or None for success).
    fn checks() -> i32 {
        let expect = |n: i32, rc: libc::c_long, want: Option<i32>| -> Option<i32> {
            let ok = match want {
                None => rc >= 0,
                Some(e) => rc == -1 && errno() == e,
            };
            (!ok).then_some(n)
        };
        let mut results = Vec::new();

        // SAFETY: unshare takes a flag word.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
        results.push(expect(1, rc.into(), Some(libc::EPERM)));
        // SAFETY: clone3 with a null argument: the filter answers before the
        // kernel would look at it.
        let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
        results.push(expect(2, rc, Some(libc::ENOSYS)));
        // SAFETY: getpid has no arguments.
        let rc = unsafe { libc::syscall(libc::SYS_getpid) };
        results.push(expect(3, rc, None));
        // SAFETY: a fork-like clone with a null stack; if it were allowed the
        // new process would _exit at once.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if rc == 0 {
            // SAFETY: we are the unexpected grandchild: leave at once.
            unsafe { libc::_exit(0) };
        }
        results.push(expect(4, rc, Some(libc::EPERM)));
        // A plain fork must work (glibc's fork is clone without ns flags).
        // SAFETY: the grandchild leaves with _exit at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            unsafe { libc::_exit(7) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        let forked = pid > 0 && waited == pid && libc::WEXITSTATUS(status) == 7;
        results.push((!forked).then_some(5));
        // SAFETY: socket with scalar arguments; fds are closed by _exit.
        let rc = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) };
        results.push(expect(6, rc.into(), Some(libc::EPERM)));
        // SAFETY: as above.
        let rc = unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) };
        results.push(expect(7, rc.into(), Some(libc::EPERM)));
        // SAFETY: as above.
        let rc = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        results.push(expect(8, rc.into(), None));
        // SAFETY: personality with the query value changes nothing.
        let rc = unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) };
        results.push(expect(9, rc, None));
        // SAFETY: ADDR_NO_RANDOMIZE is refused by the filter.
        let rc = unsafe { libc::syscall(libc::SYS_personality, 0x0004_0000u64) };
        results.push(expect(10, rc, Some(libc::EPERM)));
        // SAFETY: SYSLOG_ACTION_SIZE_BUFFER reads a number.
        let rc = unsafe { libc::syscall(libc::SYS_syslog, 10, 0usize, 0) };
        results.push(expect(11, rc, Some(libc::EPERM)));
        // SAFETY: KEYCTL_GET_KEYRING_ID of the session keyring, no create.
        let rc = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
        results.push(expect(12, rc, Some(libc::EPERM)));
        // SAFETY: mount with null pointers fails before touching anything.
        let rc = unsafe { libc::syscall(libc::SYS_mount, 0usize, 0usize, 0usize, 0usize, 0usize) };
        results.push(expect(13, rc, Some(libc::EPERM)));
        // SAFETY: open_tree_attr (467, Linux 6.15) is newer than the profile:
        // ENOSYS, as runc answers, whatever the kernel.
        let rc = unsafe { libc::syscall(467, -1i64, 0usize, 0, 0usize, 0usize) };
        results.push(expect(14, rc, Some(libc::ENOSYS)));
        #[cfg(target_arch = "x86_64")]
        {
            // x32 is in the profile (as in Docker's): an x32 getpid passes
            // the filter (the kernel then answers ENOSYS if it was built
            // without x32), an x32 unshare does not.
            // SAFETY: an x32-ABI getpid, no arguments.
            let rc = unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) };
            results.push((rc == -1 && errno() == libc::EPERM).then_some(15));
            // SAFETY: an x32-ABI unshare with a flag word.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_unshare | 0x4000_0000,
                    libc::CLONE_NEWUSER as libc::c_ulong,
                )
            };
            results.push(expect(17, rc, Some(libc::EPERM)));
        }
        // Threads: glibc's pthread_create tries clone3, gets ENOSYS and
        // falls back to clone without namespace flags.
        let joined = std::thread::spawn(|| 5).join().ok();
        results.push((joined != Some(5)).then_some(16));
        results.into_iter().flatten().next().unwrap_or(0)
    }

    fn default_filters() -> Option<CompiledFilters> {
        Some(compile(&default_profile().unwrap(), &docker_default()).unwrap())
    }

    #[test]
    fn installed_profile_behaves_like_dockers() {
        assert_eq!(
            in_child(default_filters(), checks),
            0,
            "check failed (see its number)"
        );
    }

    /// The checks do test the filter: as root without it, some fail (here
    /// the first, `unshare(CLONE_NEWUSER)`, succeeds).
    #[test]
    fn checks_fail_without_the_filter() {
        assert_ne!(in_child(None, checks), 0);
    }

    #[test]
    fn a_users_profile_gives_its_errno() {
        let p = Profile::parse(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":7,
                 "args":[{"index":0,"value":5,"op":"SCMP_CMP_GT"}]}]}"#,
        )
        .unwrap();
        let f = compile(&p, &docker_default()).unwrap();
        fn check() -> i32 {
            let dir = c"/nonexistent-berth-test/x";
            // SAFETY: mkdirat with a valid C string; it fails either way.
            let rc = unsafe { libc::mkdirat(libc::AT_FDCWD, dir.as_ptr(), 0o755) };
            if rc != -1 || errno() != libc::EACCES {
                return 1;
            }
            // SAFETY: getppid ignores its (extra) arguments.
            let rc = unsafe { libc::syscall(libc::SYS_getppid, 6usize) };
            if rc != -1 || errno() != 7 {
                return 2;
            }
            // SAFETY: as above.
            let rc = unsafe { libc::syscall(libc::SYS_getppid, 5usize) };
            if rc <= 0 {
                return 3;
            }
            0
        }
        assert_eq!(in_child(Some(f), check), 0);
    }
}
