//! Docker's default seccomp profile, written as Rust tables and compiled to
//! classic BPF with `seccompiler`.
//!
//! The profile reproduces what Docker (moby's default profile run by runc)
//! gives a container that holds Docker's default capabilities and nothing
//! more: every syscall not listed fails with `EPERM`; `clone` is allowed only
//! without namespace flags; `clone3` fails with `ENOSYS` so that libc falls
//! back to `clone`; `socket` is refused for `AF_ALG` and `AF_VSOCK`;
//! `personality` is allowed for the five harmless personas only; syscalls
//! newer than the newest one the profile knows fail with `ENOSYS` (as runc
//! does), so that libc falls back to an older syscall instead of failing. The
//! capability-gated groups (mount, unshare, setns, bpf, keyctl, syslog,
//! modules, kexec, reboot, ...) are simply absent. Only the native
//! architecture is accepted: an i386 (`int 0x80`) or other foreign-ABI
//! syscall kills the process, and x32 syscall numbers fail with `EPERM`.
//!
//! Two filters are installed because `seccompiler` gives a filter one
//! match action and one mismatch action (see [`default_profile`]).
//!
//! Never: sets `no_new_privs` (Docker does not; the caller loads the filters
//! while it still holds CAP_SYS_ADMIN), or compiles per container — compile
//! once, cache [`CompiledFilters::to_bytes`], and only load per container.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// Errors from compiling, loading or decoding seccomp filters.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile could not be turned into BPF.
    #[error("compiling the default seccomp profile failed: {0}")]
    Compile(#[from] seccompiler::BackendError),
    /// No profile exists for the architecture berth was built for.
    #[error("no seccomp profile for architecture {0}")]
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
// The profile.

/// Syscalls newer than the `libc` crate knows on every supported arch. From
/// number 424 on, Linux gives a syscall the same number on every
/// architecture (alpha excepted), so one table serves x86_64 and aarch64.
mod nr {
    pub const CACHESTAT: i64 = 451;
    pub const FCHMODAT2: i64 = 452;
    pub const MAP_SHADOW_STACK: i64 = 453;
    pub const FUTEX_WAKE: i64 = 454;
    pub const FUTEX_WAIT: i64 = 455;
    pub const FUTEX_REQUEUE: i64 = 456;
    pub const STATMOUNT: i64 = 457;
    pub const LISTMOUNT: i64 = 458;
    pub const SETXATTRAT: i64 = 463;
    pub const GETXATTRAT: i64 = 464;
    pub const LISTXATTRAT: i64 = 465;
    pub const REMOVEXATTRAT: i64 = 466;
    /// Missing from `libc` (Linux 4.18); numbered per arch.
    #[cfg(target_arch = "x86_64")]
    pub const IO_PGETEVENTS: i64 = 333;
    #[cfg(target_arch = "aarch64")]
    pub const IO_PGETEVENTS: i64 = 292;
    /// x86_64 only (Linux 6.11).
    #[cfg(target_arch = "x86_64")]
    pub const URETPROBE: i64 = 335;
}

/// Syscalls allowed whatever their arguments, on every supported arch.
/// Docker's unconditional list, minus names that do not exist on 64-bit
/// x86 and arm (`*32`, `*64` time variants, `socketcall`, ...), plus what
/// Docker's default capabilities unlock (`chroot` for CAP_SYS_CHROOT) and its
/// kernel-version rule (`ptrace`, `process_vm_*` on Linux >= 4.8).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ALLOW: &[i64] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_adjtimex,
    libc::SYS_bind,
    libc::SYS_brk,
    nr::CACHESTAT,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_chroot,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fanotify_mark,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    nr::FCHMODAT2,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    nr::FUTEX_REQUEUE,
    nr::FUTEX_WAIT,
    libc::SYS_futex_waitv,
    nr::FUTEX_WAKE,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrlimit,
    libc::SYS_get_robust_list,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    nr::GETXATTRAT,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_ioctl,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    nr::IO_PGETEVENTS,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lgetxattr,
    libc::SYS_linkat,
    libc::SYS_listen,
    nr::LISTMOUNT,
    libc::SYS_listxattr,
    nr::LISTXATTRAT,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_madvise,
    nr::MAP_SHADOW_STACK,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_mincore,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_mseal,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_name_to_handle_at,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe2,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_process_mrelease,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pselect6,
    libc::SYS_ptrace,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    nr::REMOVEXATTRAT,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setrlimit,
    libc::SYS_set_robust_list,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_set_tid_address,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    nr::SETXATTRAT,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd4,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_statfs,
    nr::STATMOUNT,
    libc::SYS_statx,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlinkat,
    libc::SYS_utimensat,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
];

/// x86_64's legacy syscalls (absent from the generic table arm64 uses) and
/// its arch-specific ones.
#[cfg(target_arch = "x86_64")]
const ALLOW_ARCH: &[i64] = &[
    libc::SYS_access,
    libc::SYS_alarm,
    libc::SYS_arch_prctl,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_creat,
    libc::SYS_dup2,
    libc::SYS_epoll_create,
    libc::SYS_epoll_ctl_old,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old,
    libc::SYS_eventfd,
    libc::SYS_fork,
    libc::SYS_futimesat,
    libc::SYS_get_thread_area,
    libc::SYS_getdents,
    libc::SYS_getpgrp,
    libc::SYS_inotify_init,
    libc::SYS_lchown,
    libc::SYS_link,
    libc::SYS_lstat,
    libc::SYS_mkdir,
    libc::SYS_mknod,
    libc::SYS_modify_ldt,
    libc::SYS_open,
    libc::SYS_pause,
    libc::SYS_pipe,
    libc::SYS_poll,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_rmdir,
    libc::SYS_select,
    libc::SYS_set_thread_area,
    libc::SYS_signalfd,
    libc::SYS_stat,
    libc::SYS_symlink,
    libc::SYS_time,
    libc::SYS_unlink,
    nr::URETPROBE,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_vfork,
];

/// arm64 uses the generic table: nothing legacy, nothing arch-specific that
/// Docker allows (its arm list is for 32-bit arm).
#[cfg(target_arch = "aarch64")]
const ALLOW_ARCH: &[i64] = &[];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOW: &[i64] = &[];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOW_ARCH: &[i64] = &[];

#[cfg(target_arch = "x86_64")]
const ARCH: Option<(TargetArch, u32)> = Some((TargetArch::x86_64, AUDIT_ARCH_X86_64));
#[cfg(target_arch = "aarch64")]
const ARCH: Option<(TargetArch, u32)> = Some((TargetArch::aarch64, AUDIT_ARCH_AARCH64));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: Option<(TargetArch, u32)> = None;

/// `AUDIT_ARCH_*`: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// The namespace flags `clone` must not carry: NEWNS | NEWCGROUP | NEWUTS |
/// NEWIPC | NEWUSER | NEWPID | NEWNET (Docker's 2114060288).
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// One comparison on the low 32 bits of an argument. The compared arguments
/// (clone flags, socket domain, personality) are all read as 32-bit values
/// by the kernel, so comparing the low half is exact and cannot be bypassed
/// with garbage in the high half.
#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq(u32),
    Lt(u32),
    Gt(u32),
    /// `(arg & mask) == 0`.
    MaskedZero(u32),
}

/// A syscall allowed when argument `arg` passes any one of `any_of`.
struct Conditional {
    nr: i64,
    arg: u8,
    any_of: &'static [Cmp],
}

const AF_ALG: u32 = 38;
const AF_VSOCK: u32 = 40;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const CONDITIONAL: &[Conditional] = &[
    // clone: never with a namespace flag (arg0 is the flags on x86_64 and
    // arm64 alike; only s390 differs).
    Conditional {
        nr: libc::SYS_clone,
        arg: 0,
        any_of: &[Cmp::MaskedZero(CLONE_NS_FLAGS)],
    },
    // socket: every family except AF_ALG (38) and AF_VSOCK (40).
    Conditional {
        nr: libc::SYS_socket,
        arg: 0,
        any_of: &[Cmp::Lt(AF_ALG), Cmp::Eq(AF_ALG + 1), Cmp::Gt(AF_VSOCK)],
    },
    // personality: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
    // and the 0xffffffff query.
    Conditional {
        nr: libc::SYS_personality,
        arg: 0,
        any_of: &[
            Cmp::Eq(0x0),
            Cmp::Eq(0x8),
            Cmp::Eq(0x2_0000),
            Cmp::Eq(0x2_0008),
            Cmp::Eq(0xffff_ffff),
        ],
    },
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const CONDITIONAL: &[Conditional] = &[];

/// Syscalls that fail with ENOSYS instead of EPERM: `clone3` (so that glibc
/// and others fall back to `clone`, whose flags the first filter can see).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ENOSYS: &[i64] = &[libc::SYS_clone3];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ENOSYS: &[i64] = &[];

/// x32 syscalls carry this bit (and x86_64's audit arch). They are not
/// "newer" syscalls; they fall to the first filter's EPERM.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The newest syscall number the profile knows. Anything above it (and
/// below the x32 bit) is a syscall added to Linux after this profile was
/// written: it fails with ENOSYS, so libc falls back as on an old kernel.
fn newest_known() -> i64 {
    ALLOW
        .iter()
        .chain(ALLOW_ARCH)
        .chain(ENOSYS)
        .copied()
        .chain(CONDITIONAL.iter().map(|c| c.nr))
        .max()
        .unwrap_or(0)
}

/// Compiles Docker's default profile for the native architecture.
///
/// Two filters, in install order:
/// 1. the allow-list (seccompiler): listed syscalls ALLOW, conditional ones
///    ALLOW when their argument rule holds, everything else ERRNO(EPERM),
///    foreign architectures KILL_PROCESS;
/// 2. the ENOSYS filter (built by hand, 8 instructions): `clone3` and
///    syscall numbers above [`newest_known`] give ERRNO(ENOSYS), everything
///    else ALLOW.
///
/// The kernel runs every installed filter and keeps the action of highest
/// precedence (KILL > TRAP > ERRNO > TRACE > LOG > ALLOW); between two
/// ERRNO results it keeps the one of the filter installed last. So `clone3`
/// (EPERM from 1, ENOSYS from 2) gives ENOSYS because filter 2 is installed
/// after filter 1; a syscall filter 1 allows stays allowed unless filter 2
/// says ENOSYS, which it only does for syscalls filter 1 does not allow.
pub fn default_profile() -> Result<CompiledFilters, SeccompError> {
    let Some((target, audit_arch)) = ARCH else {
        return Err(SeccompError::UnsupportedArch(std::env::consts::ARCH));
    };

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in ALLOW.iter().chain(ALLOW_ARCH) {
        rules.insert(nr, Vec::new());
    }
    for c in CONDITIONAL {
        let mut chain = Vec::with_capacity(c.any_of.len());
        for &cmp in c.any_of {
            chain.push(SeccompRule::new(vec![condition(c.arg, cmp)?])?);
        }
        rules.insert(c.nr, chain);
    }
    let allow_list = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        target,
    )?;
    let allow_list: BpfProgram = allow_list.try_into()?;

    let enosys = enosys_filter(audit_arch, ENOSYS, newest_known());
    Ok(CompiledFilters(vec![allow_list, enosys]))
}

fn condition(arg: u8, cmp: Cmp) -> Result<SeccompCondition, SeccompError> {
    let (op, value) = match cmp {
        Cmp::Eq(v) => (SeccompCmpOp::Eq, v),
        Cmp::Lt(v) => (SeccompCmpOp::Lt, v),
        Cmp::Gt(v) => (SeccompCmpOp::Gt, v),
        Cmp::MaskedZero(mask) => (SeccompCmpOp::MaskedEq(u64::from(mask)), 0),
    };
    Ok(SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        op,
        u64::from(value),
    )?)
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

/// The second filter: ERRNO(ENOSYS) for `enosys` and for numbers in
/// `(newest, X32_SYSCALL_BIT)`, ALLOW for the rest (including foreign
/// architectures, which the first filter kills).
fn enosys_filter(audit_arch: u32, enosys: &[i64], newest: i64) -> BpfProgram {
    let ret_errno = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    // Layout: [ld arch, jeq arch, ld nr, (jeq nr)*, jge x32, jgt newest,
    //          ret ALLOW, ret ENOSYS]; jump offsets count from the next
    // instruction.
    let n = enosys.len();
    let mut p = Vec::with_capacity(n + 7);
    // From instruction 1, ALLOW is at index 3 + n + 2.
    p.push(stmt(BPF_LD_W_ABS, DATA_ARCH));
    p.push(jump(BPF_JMP_JEQ_K, audit_arch, 0, jmp(n + 3)));
    p.push(stmt(BPF_LD_W_ABS, DATA_NR));
    for (i, &nr) in enosys.iter().enumerate() {
        // Instruction 3 + i; ENOSYS is at 3 + n + 3.
        p.push(jump(BPF_JMP_JEQ_K, nr_u32(nr), jmp(n - i + 2), 0));
    }
    p.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 1, 0));
    p.push(jump(BPF_JMP_JGT_K, nr_u32(newest), 1, 0));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(BPF_RET_K, ret_errno));
    p
}

fn jmp(offset: usize) -> u8 {
    // The ENOSYS table has one entry; offsets stay far below 255.
    u8::try_from(offset).unwrap_or(u8::MAX)
}

fn nr_u32(nr: i64) -> u32 {
    u32::try_from(nr).unwrap_or(u32::MAX)
}

/// A stable fingerprint of the default profile's tables (FNV-1a), for
/// keying a cache of [`CompiledFilters::to_bytes`]: it changes whenever the
/// profile does, and costs microseconds where compiling costs more.
pub fn profile_id() -> u64 {
    let mut h = Fnv::new();
    h.u32(FORMAT_VERSION);
    h.u32(ARCH.map_or(0, |(_, a)| a));
    for &nr in ALLOW.iter().chain(ALLOW_ARCH) {
        h.u64(nr as u64);
    }
    h.u32(0xffff_ffff);
    for c in CONDITIONAL {
        h.u64(c.nr as u64);
        h.u32(u32::from(c.arg));
        for cmp in c.any_of {
            let (tag, v) = match *cmp {
                Cmp::Eq(v) => (1, v),
                Cmp::Lt(v) => (2, v),
                Cmp::Gt(v) => (3, v),
                Cmp::MaskedZero(v) => (4, v),
            };
            h.u32(tag);
            h.u32(v);
        }
    }
    h.u32(0xffff_ffff);
    for &nr in ENOSYS {
        h.u64(nr as u64);
    }
    h.u64(newest_known() as u64);
    h.finish()
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
        out.extend_from_slice(&ARCH.map_or(0, |(_, a)| a).to_le_bytes());
        out.extend_from_slice(&fnv(&body).to_le_bytes());
        out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote, refusing anything
    /// truncated, corrupted, of another format version or made for another
    /// architecture. (Which profile it holds is the cache key's business:
    /// see [`profile_id`].)
    pub fn from_bytes(b: &[u8]) -> Result<Self, SeccompError> {
        let mut r = Reader(b);
        if r.take(8)? != MAGIC {
            return Err(SeccompError::BadCache("not a berth seccomp cache"));
        }
        if r.u32()? != FORMAT_VERSION {
            return Err(SeccompError::BadCache("unknown format version"));
        }
        if Some(r.u32()?) != ARCH.map(|(_, a)| a) {
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
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
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

    #[test]
    fn clone_mask_is_dockers() {
        assert_eq!(CLONE_NS_FLAGS, 0x7E02_0000);
        assert_eq!(CLONE_NS_FLAGS, 2_114_060_288);
    }

    #[test]
    fn profile_compiles_and_reports_its_cost() {
        let t = Instant::now();
        let f = default_profile().unwrap();
        let first = t.elapsed();
        let mut best = first;
        for _ in 0..20 {
            let t = Instant::now();
            let g = default_profile().unwrap();
            best = best.min(t.elapsed());
            assert_eq!(f, g);
        }
        let sizes: Vec<usize> = f.programs().iter().map(Vec::len).collect();
        eprintln!(
            "seccomp default profile: {} allowed + {} conditional syscalls, \
             {sizes:?} instructions, compiled in {first:?} (first), {best:?} (best of 20)",
            ALLOW.len() + ALLOW_ARCH.len(),
            CONDITIONAL.len()
        );
        assert_eq!(f.programs().len(), 2);
        assert!(sizes[0] > 1000 && sizes[0] < MAX_INSNS);
        assert_eq!(sizes[1], 8);
    }

    #[test]
    fn lists_have_no_duplicates_and_leave_out_the_dangerous() {
        let mut all: Vec<i64> = ALLOW.iter().chain(ALLOW_ARCH).copied().collect();
        all.extend(CONDITIONAL.iter().map(|c| c.nr));
        all.extend(ENOSYS);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a syscall is listed twice");
        for denied in [
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_syslog,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_reboot,
            libc::SYS_acct,
            libc::SYS_swapon,
            libc::SYS_open_by_handle_at,
            libc::SYS_sethostname,
            libc::SYS_setdomainname,
            libc::SYS_io_uring_setup,
            libc::SYS_userfaultfd,
            libc::SYS_fsopen,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_clock_settime,
            libc::SYS_settimeofday,
            libc::SYS_kcmp,
            libc::SYS_pidfd_getfd,
            libc::SYS_mbind,
            libc::SYS_quotactl,
            libc::SYS_lookup_dcookie,
            libc::SYS_fanotify_init,
            libc::SYS_vhangup,
        ] {
            assert!(
                all.binary_search(&denied).is_err(),
                "syscall {denied} is allowed"
            );
        }
        assert_eq!(newest_known(), nr::REMOVEXATTRAT);
    }

    #[test]
    fn cache_round_trips_and_rejects_damage() {
        let f = default_profile().unwrap();
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
        assert_eq!(profile_id(), profile_id());
    }

    /// Runs `check` in a forked child, after installing the profile there
    /// if `filtered`; the child's exit code is the number of the first
    /// failed check (0 if all passed, 100 if the install failed).
    fn in_child(filtered: bool, check: fn() -> i32) -> i32 {
        let f = default_profile().unwrap();
        // SAFETY: the child only installs the filter, makes raw syscalls and
        // leaves with _exit; glibc keeps malloc usable after fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = match filtered.then(|| f.install()) {
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
            // SAFETY: an x32-ABI getpid, no arguments.
            let rc = unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) };
            results.push(expect(15, rc, Some(libc::EPERM)));
        }
        // Threads: glibc's pthread_create tries clone3, gets ENOSYS and
        // falls back to clone without namespace flags.
        let joined = std::thread::spawn(|| 5).join().ok();
        results.push((joined != Some(5)).then_some(16));
        results.into_iter().flatten().next().unwrap_or(0)
    }

    #[test]
    fn installed_profile_behaves_like_dockers() {
        assert_eq!(in_child(true, checks), 0, "check failed (see its number)");
    }

    /// The checks do test the filter: as root without it, some fail (here
    /// the first, `unshare(CLONE_NEWUSER)`, succeeds).
    #[test]
    fn checks_fail_without_the_filter() {
        assert_ne!(in_child(false, checks), 0);
    }
}
