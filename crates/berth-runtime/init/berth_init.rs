//! berth-init: the container's PID 1 with `--init`.
//!
//! A freestanding static program (no libc, no std; x86_64 Linux system
//! calls only), built by `build.rs` and embedded in the runtime, which runs
//! it from a sealed memfd: nothing of the host (its binary, environment or
//! paths) is visible through `/proc/1` inside the container.
//!
//! Usage: `berth-init EXE -- ARGV0 ARGS...`. It makes itself not dumpable,
//! blocks every signal, forks EXE (with the signal mask cleared) and then
//! waits for signals: SIGCHLD reaps every zombie (and ends with the
//! command's status once the command is reaped: its exit code, or 128 + the
//! signal that killed it); every other signal is forwarded to the command.
#![no_std]
#![no_main]

use core::arch::{asm, naked_asm};

const SYS_WRITE: usize = 1;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_FORK: usize = 57;
const SYS_EXECVE: usize = 59;
const SYS_EXIT_GROUP: usize = 231;
const SYS_WAIT4: usize = 61;
const SYS_KILL: usize = 62;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_PRCTL: usize = 157;

const SIG_BLOCK: usize = 0;
const SIG_SETMASK: usize = 2;
const SIGCHLD: usize = 17;
const WNOHANG: usize = 1;
const PR_SET_DUMPABLE: usize = 4;
const EINTR: isize = 4;
const ENOENT: isize = 2;

#[inline(always)]
unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a valid system call and arguments; the
    // kernel clobbers only rcx and r11 besides rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

fn exit(code: usize) -> ! {
    // SAFETY: exit_group takes an integer and does not return.
    unsafe {
        syscall4(SYS_EXIT_GROUP, code, 0, 0, 0);
    }
    loop {}
}

fn write_err(msg: &[u8]) {
    // SAFETY: the pointer and length describe `msg`.
    unsafe {
        syscall4(SYS_WRITE, 2, msg.as_ptr() as usize, msg.len(), 0);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(125)
}

/// The process entry: the kernel leaves argc, argv and envp on the stack.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!("mov rdi, rsp", "and rsp, -16", "call {main}", "ud2", main = sym main)
}

/// All signals: one 64-bit word, as the kernel's sigset for rt_sig* calls.
const ALL: u64 = !0;
const NONE: u64 = 0;

unsafe extern "C" fn main(sp: *const usize) -> ! {
    // SAFETY: the System V ABI's initial stack: argc, then argc argument
    // pointers and a NULL, then the environment pointers and a NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    if argc < 4 {
        write_err(b"usage: berth-init EXE -- ARGV0 [ARGS...]\n");
        exit(125);
    }
    // SAFETY: plain system calls with integer or valid pointer arguments;
    // the argument vectors come from the kernel and are NULL-terminated.
    unsafe {
        syscall4(SYS_PRCTL, PR_SET_DUMPABLE, 0, 0, 0);
        syscall4(SYS_RT_SIGPROCMASK, SIG_BLOCK, &ALL as *const u64 as usize, 0, 8);
        let exe = *argv.add(1);
        let cmd = argv.add(3);
        let child = syscall4(SYS_FORK, 0, 0, 0, 0);
        if child == 0 {
            syscall4(SYS_RT_SIGPROCMASK, SIG_SETMASK, &NONE as *const u64 as usize, 0, 8);
            let err = syscall4(SYS_EXECVE, exe as usize, cmd as usize, envp as usize, 0);
            write_err(b"berth-init: cannot execute the command\n");
            exit(if err == -ENOENT { 127 } else { 126 });
        }
        if child < 0 {
            write_err(b"berth-init: fork failed\n");
            exit(125);
        }
        loop {
            let sig = syscall4(
                SYS_RT_SIGTIMEDWAIT,
                &ALL as *const u64 as usize,
                0,
                0,
                8,
            );
            if sig == -EINTR || sig < 0 {
                continue;
            }
            if sig as usize != SIGCHLD {
                syscall4(SYS_KILL, child as usize, sig as usize, 0, 0);
                continue;
            }
            loop {
                let mut status: i32 = 0;
                let pid = syscall4(
                    SYS_WAIT4,
                    usize::MAX, // -1: any child
                    &mut status as *mut i32 as usize,
                    WNOHANG,
                    0,
                );
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    let s = status as usize;
                    if s & 0x7f == 0 {
                        exit((s >> 8) & 0xff);
                    }
                    exit(128 + (s & 0x7f));
                }
            }
        }
    }
}
