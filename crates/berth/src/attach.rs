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
    /// The key sequence that detaches (TTY only; ctrl-p ctrl-q by default).
    pub detach_keys: Vec<u8>,
    /// Make the program redraw (a resize to one more row and column and
    /// back, as Docker's attach does), for joining a running terminal.
    pub redraw: bool,
}

/// ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Docker's `--detach-keys`: comma-separated keys, each `ctrl-X` (X a
/// letter or one of `@[\]^_`) or a single character.
pub fn parse_detach_keys(s: Option<&str>) -> Result<Vec<u8>, String> {
    let Some(s) = s else {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    };
    let bad = || format!("Invalid detach keys ({s}) provided");
    let mut keys = Vec::new();
    for k in s.split(',') {
        let b = if let Some(c) = k.strip_prefix("ctrl-") {
            let mut chars = c.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() => {
                    c.to_ascii_lowercase() as u8 - b'a' + 1
                }
                (Some('@'), None) => 0,
                (Some('['), None) => 27,
                (Some('\\'), None) => 28,
                (Some(']'), None) => 29,
                (Some('^'), None) => 30,
                (Some('_'), None) => 31,
                _ => return Err(bad()),
            }
        } else {
            match k.as_bytes() {
                [b] => *b,
                _ => return Err(bad()),
            }
        };
        keys.push(b);
    }
    Ok(keys)
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
                if s.redraw {
                    let _ = w.resize(r.saturating_add(1), c.saturating_add(1));
                }
                let _ = w.resize(r, c);
            }
        }
    }
    spawn_signal_thread(writer.clone(), s.tty, s.proxy_pid);
    if s.stdin {
        let writer = writer.clone();
        let detached = detached.clone();
        let keys = if s.tty {
            s.detach_keys.clone()
        } else {
            Vec::new()
        };
        std::thread::spawn(move || pump_stdin(writer, detached, keys));
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

fn pump_stdin(writer: Arc<Mutex<Attachment>>, detached: Arc<AtomicBool>, keys: Vec<u8>) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 8192];
    // How much of the detach sequence the last bytes matched; those bytes
    // are held back until the sequence completes (detach) or breaks (sent).
    let mut matched = 0usize;
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
        let mut out = Vec::with_capacity(n + keys.len());
        for &b in &buf[..n] {
            if keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == keys[matched] {
                matched += 1;
                if matched == keys.len() {
                    detached.store(true, Ordering::SeqCst);
                    if let Ok(mut w) = writer.lock() {
                        let _ = w.send_stdin(&out);
                        w.shutdown();
                    }
                    return;
                }
                continue;
            }
            // The sequence broke: what was held goes through, then this
            // byte, which may itself start the sequence again.
            out.extend_from_slice(&keys[..matched]);
            matched = 0;
            if b == keys[0] {
                matched = 1;
            } else {
                out.push(b);
            }
        }
        if out.is_empty() {
            continue;
        }
        if let Ok(mut w) = writer.lock() {
            if w.send_stdin(&out).is_err() {
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
