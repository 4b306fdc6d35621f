//! The terminal side of an attached container: raw mode, window size,
//! stdin pumping, signal forwarding and the ctrl-p ctrl-q detach keys.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_engine::{Attachment, Output};

/// How the attached session ended.
pub enum Ended {
    Exited(i32),
    Detached,
    /// Our stdout's reader went away (`berth run ... | head -1`); the
    /// container goes on without us.
    OutputClosed,
    /// The monitor hung up without an exit code.
    Lost,
}

/// Puts the terminal on `fd` into raw mode until dropped.
pub struct RawMode {
    saved: Option<rustix::termios::Termios>,
}

impl RawMode {
    pub fn enable(fd: impl AsFd) -> RawMode {
        let fd = fd.as_fd();
        match rustix::termios::tcgetattr(fd) {
            Ok(t) => {
                let mut raw = t.clone();
                raw.make_raw();
                let _ = rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &raw);
                RawMode { saved: Some(t) }
            }
            Err(_) => RawMode { saved: None },
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

pub fn is_terminal(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
}

fn window_size() -> Option<(u16, u16)> {
    rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()))
        .ok()
        .filter(|w| w.ws_row > 0 && w.ws_col > 0)
        .map(|w| (w.ws_row, w.ws_col))
}

pub struct Session {
    pub tty: bool,
    pub stdin: bool,
    /// Forward these signals to this PID (sig-proxy, non-TTY only).
    pub proxy_pid: Option<i32>,
}

/// Runs the attached session until the container exits or the user detaches.
pub fn run(mut a: Attachment, s: Session) -> Ended {
    let writer = match a.try_clone() {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(_) => return Ended::Lost,
    };
    let detached = Arc::new(AtomicBool::new(false));
    let _raw = if s.tty && s.stdin && is_terminal(std::io::stdin()) {
        Some(RawMode::enable(std::io::stdin()))
    } else {
        None
    };
    if s.tty {
        if let Some((r, c)) = window_size() {
            if let Ok(mut w) = writer.lock() {
                let _ = w.resize(r, c);
            }
        }
    }
    spawn_signal_thread(writer.clone(), s.tty, s.proxy_pid);
    if s.stdin {
        let writer = writer.clone();
        let detached = detached.clone();
        let tty = s.tty;
        std::thread::spawn(move || pump_stdin(writer, detached, tty));
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    loop {
        if detached.load(Ordering::SeqCst) {
            return Ended::Detached;
        }
        match a.next_output() {
            Ok(Some(Output::Stdout(d))) => {
                if let Err(e) = out.write_all(&d).and_then(|()| out.flush()) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ended::OutputClosed;
                    }
                }
            }
            Ok(Some(Output::Stderr(d))) => {
                let _ = err.write_all(&d);
            }
            Ok(Some(Output::Exit(c))) => return Ended::Exited(c),
            Ok(None) | Err(_) => {
                return if detached.load(Ordering::SeqCst) {
                    Ended::Detached
                } else {
                    Ended::Lost
                };
            }
        }
    }
}

fn pump_stdin(writer: Arc<Mutex<Attachment>>, detached: Arc<AtomicBool>, tty: bool) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 8192];
    let mut saw_ctrl_p = false;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => {
                if let Ok(mut w) = writer.lock() {
                    let _ = w.close_stdin();
                }
                return;
            }
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        if tty {
            // ctrl-p ctrl-q detaches (the keys are not sent).
            for (i, &b) in data.iter().enumerate() {
                if saw_ctrl_p && b == 0x11 {
                    detached.store(true, Ordering::SeqCst);
                    if let Ok(w) = writer.lock() {
                        w.shutdown();
                    }
                    return;
                }
                saw_ctrl_p = b == 0x10;
                if saw_ctrl_p && i + 1 == data.len() {
                    data = &data[..i];
                    break;
                }
            }
        }
        if let Ok(mut w) = writer.lock() {
            if w.send_stdin(data).is_err() {
                return;
            }
        }
    }
}

/// Forwards signals: SIGWINCH as a resize (TTY), the usual terminating
/// signals to the container's process (non-TTY sig-proxy).
fn spawn_signal_thread(writer: Arc<Mutex<Attachment>>, tty: bool, proxy_pid: Option<i32>) {
    let mut sigs = vec![libc::SIGWINCH];
    if !tty && proxy_pid.is_some() {
        sigs.extend([
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ]);
    }
    // SAFETY: sigset_t is plain data and is initialised by sigemptyset;
    // blocking the signals in this (main) thread before other threads are
    // spawned makes them inherited, so only the sigwait thread takes them.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in &sigs {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: set is a valid, initialised signal set; sig a valid out pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        if sig == libc::SIGWINCH {
            if tty {
                if let Some((r, c)) = window_size() {
                    if let Ok(mut w) = writer.lock() {
                        let _ = w.resize(r, c);
                    }
                }
            }
        } else if let Some(pid) = proxy_pid {
            let _ = berth_runtime::process::send_signal(pid, sig);
        }
    });
}
