//! The few raw system calls the runtime needs that rustix does not wrap.
//! Every `unsafe` block of the crate's process code lives here.

use std::io;

/// Result of [`clone_process`].
pub(crate) enum Forked {
    Child,
    Parent(i32),
}

/// `clone(2)` used like `fork(2)`, with namespace flags: the child gets a
/// copy-on-write copy of the address space and starts by returning
/// `Forked::Child`; `SIGCHLD` is delivered to the parent on its exit.
///
/// The caller must be single-threaded: the child runs ordinary Rust code.
pub(crate) fn clone_process(ns_flags: libc::c_int) -> io::Result<Forked> {
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a raw clone without CLONE_VM and with a NULL stack behaves as
    // fork(2): the child continues on its own copy of the stack. The process
    // is single-threaded (documented precondition of the crate), so no other
    // thread can hold a lock the child would need.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Ends the calling (child) process at once, without running destructors or
/// atexit handlers that belong to the parent's state.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

pub(crate) fn setgroups(gids: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a valid slice of gid_t.
    let r = unsafe { libc::setgroups(gids.len(), gids.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::setresgid(gid, gid, gid) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::setresuid(uid, uid, uid) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Brings the loopback interface of the current network namespace up.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: fd is a socket we own; req is a valid ifreq naming "lo".
    let mut r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    if r == 0 {
        // SAFETY: the union member ifru_flags is the one SIOCGIFFLAGS filled.
        unsafe {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        // SAFETY: as above, setting the flags we just read plus UP.
        r = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    }
    let err = io::Error::last_os_error();
    // SAFETY: fd is ours and closed exactly once.
    unsafe { libc::close(fd) };
    if r == 0 {
        Ok(())
    } else {
        Err(err)
    }
}

/// The signal set with every signal, for blocking and waiting in the tiny init.
pub(crate) fn block_all_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; the old-mask pointer may be NULL.
    let r = unsafe {
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if r == 0 {
        Ok(set)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unblocks every signal and resets every handler to the default, so the
/// user's process starts with a clean signal state.
pub(crate) fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; failures for
        // invalid numbers are harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid set pointer, NULL old mask.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `waitpid(pid, WNOHANG)`; returns (pid, raw status) or None when nothing is ready.
pub(crate) fn waitpid_nohang(pid: i32) -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r > 0 {
        Some((r, status))
    } else {
        None
    }
}

/// Blocking `waitpid(pid)`; returns the raw status.
pub(crate) fn waitpid_blocking(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Docker's exit code for a raw wait status: the code, or 128 + signal.
pub(crate) fn exit_code_of(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// A NULL-terminated array of pointers into `strings` (which must outlive it).
fn c_array(strings: &[std::ffi::CString]) -> Vec<*const libc::c_char> {
    let mut v: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    v.push(std::ptr::null());
    v
}

/// execve(2); returns only on failure.
pub(crate) fn execve(
    path: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
) -> io::Error {
    let (a, e) = (c_array(argv), c_array(envp));
    // SAFETY: path, every argv and envp entry are NUL-terminated C strings
    // that outlive the call; both arrays are NULL-terminated.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// setns(2) into the namespace behind `fd` (0 = any type).
pub(crate) fn setns(fd: &impl std::os::fd::AsRawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is an open namespace file descriptor borrowed for the call.
    let r = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `fd` the controlling terminal of the calling session leader.
pub(crate) fn set_controlling_tty(fd: i32) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument; fd is a terminal we own.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn dup2(from: i32, to: i32) -> io::Result<()> {
    // SAFETY: dup2 on descriptors owned by this process.
    let r = unsafe { libc::dup2(from, to) };
    if r >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the parent-death signal of the calling process.
pub(crate) fn set_pdeathsig(sig: i32) {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
}

fn cstr(s: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cpath(p: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// mount(2). `source`, `fstype` and `data` may be empty.
pub(crate) fn mount(
    source: &str,
    target: &std::path::Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let src = cstr(source)?;
    let tgt = cpath(target)?;
    let fs = cstr(fstype)?;
    let dat = cstr(data)?;
    // SAFETY: every pointer is a valid NUL-terminated string (or NULL) that
    // outlives the call.
    let r = unsafe {
        libc::mount(
            if source.is_empty() {
                std::ptr::null()
            } else {
                src.as_ptr()
            },
            tgt.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                fs.as_ptr()
            },
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                dat.as_ptr().cast()
            },
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn umount_detach(target: &std::path::Path) -> io::Result<()> {
    let tgt = cpath(target)?;
    // SAFETY: tgt is a valid C string.
    let r = unsafe { libc::umount2(tgt.as_ptr(), libc::MNT_DETACH) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// pivot_root(".", "."): the caller must have chdir'ed into the new root.
pub(crate) fn pivot_root_here() -> io::Result<()> {
    let dot = cstr(".")?;
    // SAFETY: both arguments are valid C strings.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn mknod(
    path: &std::path::Path,
    mode: libc::mode_t,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: p is a valid C string; makedev is a pure computation.
    let r = unsafe { libc::mknod(p.as_ptr(), mode, libc::makedev(major, minor)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe the bytes of `name`.
    let r = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe the bytes of `name`.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with an integer argument.
    let r = unsafe { libc::unshare(flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: plain syscall without arguments.
    let r = unsafe { libc::setsid() };
    if r >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn umask(mask: libc::mode_t) {
    // SAFETY: plain syscall with an integer argument.
    unsafe { libc::umask(mask) };
}

/// fork(2) for the exec and init paths (single-threaded callers only).
pub(crate) fn fork() -> io::Result<Forked> {
    clone_process(0)
}

/// PR_SET_DUMPABLE 0 for the calling process.
pub(crate) fn set_not_dumpable() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
}

/// Closes every descriptor from `first` up (close_range(2), Linux ≥ 5.9;
/// falls back to closing what /proc/self/fd lists).
pub fn close_fds_from(first: u32) {
    // SAFETY: close_range takes integers only; it closes descriptors of this
    // process, which the caller no longer uses (its documented contract).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if r != 0 {
        for fd in listed_fds(first) {
            // SAFETY: closing a descriptor number of this process; see above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Marks every descriptor from `first` up close-on-exec
/// (close_range(CLOSE_RANGE_CLOEXEC), Linux ≥ 5.11; else one by one): the
/// last step before a container's process is exec'd, so that nothing the
/// runtime holds open can reach the container.
pub(crate) fn cloexec_fds_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range with integer arguments; CLOEXEC closes nothing now.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    for fd in listed_fds(first) {
        // SAFETY: F_SETFD on a descriptor number; a closed one fails harmlessly.
        let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EBADF) {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn listed_fds(first: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|&fd| fd >= first as i32)
        .collect()
}

/// mount_setattr(2) on the detached or attached mount tree behind `fd`:
/// sets `attr_set` (MOUNT_ATTR_*) on it and, with `recursive`, on every
/// mount below it.
pub(crate) fn mount_setattr(
    fd: &impl std::os::fd::AsRawFd,
    attr_set: u64,
    recursive: bool,
) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: fd is an open mount descriptor borrowed for the call; the path
    // is an empty C string (AT_EMPTY_PATH); attr is a valid mount_attr of the
    // size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): runs the program behind an
/// open descriptor (a sealed memfd). Returns only on failure.
pub(crate) fn execve_fd(
    fd: &impl std::os::fd::AsRawFd,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
) -> io::Error {
    let (a, e) = (c_array(argv), c_array(envp));
    let empty = c"";
    // SAFETY: fd is open; the path is an empty C string; argv and envp are
    // NULL-terminated arrays of C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// `bpf(BPF_PROG_LOAD)` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program
/// (`insns`: eBPF instructions, 8 bytes each). The verifier's log is not
/// asked for; its refusal comes back as the errno.
pub(crate) fn bpf_load_device_program(insns: &[u64]) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // The leading fields of `union bpf_attr` for BPF_PROG_LOAD; the kernel
    // zero-fills the rest of the union.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
    }
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    let license = c"Apache";
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
    };
    // SAFETY: `attr` is a valid, fully initialised prefix of `union
    // bpf_attr` of the size passed; the pointers in it (the instructions,
    // the license) are valid for the call, which only reads them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad descriptor"))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else
    // owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `bpf(BPF_PROG_ATTACH)` of a device program to a cgroup v2 directory,
/// with BPF_F_ALLOW_MULTI: programs of descendant cgroups run as well as
/// this one, never instead of it.
pub(crate) fn bpf_attach_device_program(
    cgroup: std::os::fd::BorrowedFd<'_>,
    prog: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
    }
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    let fd = |f: std::os::fd::BorrowedFd<'_>| {
        u32::try_from(f.as_raw_fd()).map_err(|_| io::Error::other("bad descriptor"))
    };
    let attr = ProgAttach {
        target_fd: fd(cgroup)?,
        attach_bpf_fd: fd(prog)?,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: `attr` is a valid, fully initialised prefix of `union
    // bpf_attr` of the size passed; the call only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
