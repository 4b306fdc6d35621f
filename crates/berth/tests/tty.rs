//! Interactive terminals, driven through a real pseudo-terminal as a user's
//! terminal emulator would: `run -it`, window size and resize, job control,
//! `attach` and the ctrl-p ctrl-q detach keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{poll, TestEnv};
use rustix::termios::{tcsetwinsize, Winsize};

/// A terminal with `berth …` running in it as the session leader.
struct Terminal {
    master: File,
    child: Child,
    seen: Vec<u8>,
}

impl Terminal {
    fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Terminal {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        tcsetwinsize(
            &master,
            Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave: OwnedFd = File::options()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap()
            .into();
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and the TIOCSCTTY ioctl are async-signal-safe and
        // only touch the child's own process state.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        rustix::io::ioctl_fionbio(&master, true).unwrap();
        Terminal {
            master: File::from(master),
            child,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, s: &[u8]) {
        self.master.write_all(s).unwrap();
    }

    /// Reads until `needle` shows up; consumes and returns the text up to it.
    fn expect(&mut self, needle: &str) -> String {
        match self.expect_within(needle, Duration::from_secs(20)) {
            Some(text) => text,
            None => panic!(
                "terminal never showed {needle:?}; it showed:\n{}\n(berth: {:?})",
                String::from_utf8_lossy(&self.seen),
                self.child.try_wait()
            ),
        }
    }

    /// [`expect`](Self::expect), giving up (None) after `limit`.
    fn expect_within(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(pos) = find(&self.seen, needle.as_bytes()) {
                let taken: Vec<u8> = self.seen.drain(..pos + needle.len()).collect();
                return Some(String::from_utf8_lossy(&taken).into_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut fds = [rustix::event::PollFd::new(
                &self.master,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(
                &mut fds,
                Some(&rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                }),
            );
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => self.seen.extend_from_slice(&buf[..n]),
                _ => {}
            }
        }
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        tcsetwinsize(
            self.master.as_fd(),
            Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
    }

    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Keep draining so the writer never blocks on a full terminal.
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                self.seen.extend_from_slice(&buf[..n]);
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "berth did not exit; terminal:\n{}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut fds = [rustix::event::PollFd::new(
                &self.master,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(
                &mut fds,
                Some(&rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 20_000_000,
                }),
            );
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.master.as_raw_fd();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn run_it_gives_a_real_terminal() {
    let env = TestEnv::with_busybox();
    let mut t = Terminal::spawn(
        env.berth(&["run", "-it", "--rm", "--name", "tty1", "bb", "sh"]),
        33,
        111,
    );
    t.expect("# ");
    // The window size reaches the container, and so does a resize.
    t.send(b"stty size; echo ok-$((6*7))\r");
    t.expect("33 111");
    t.expect("ok-42");
    t.resize(40, 120);
    // SIGWINCH reaches berth as the terminal's foreground process; poll the
    // container until the new size has arrived.
    let mut attempts = 0;
    loop {
        attempts += 1;
        t.send(format!("stty size; echo probe-$((1000+{attempts}))\r").as_bytes());
        let text = t.expect(&format!("probe-{}", 1000 + attempts));
        if text.contains("40 120") {
            break;
        }
        assert!(attempts < 50, "resize never arrived");
    }
    // Job control: a background job and `jobs`.
    t.send(b"sleep 100 &\r");
    t.send(b"jobs\r");
    t.expect("Running");
    // A line-editing terminal: the shell echoes what we type.
    t.send(b"echo typed-here\r");
    t.expect("typed-here");
    t.send(b"exit 5\r");
    assert_eq!(t.wait(), 5);
    poll("container removed", Duration::from_secs(10), || {
        (!env.ok(&["ps", "-aq"]).contains(char::is_alphanumeric)).then_some(())
    });
}

#[test]
fn attach_and_detach_with_ctrl_p_ctrl_q() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&["run", "-dit", "--name", "tty2", "bb", "sh"]);
    assert_eq!(id.trim().len(), 64);
    let mut t = Terminal::spawn(env.berth(&["attach", "tty2"]), 24, 80);
    t.send(b"echo attached-$((40+2))\r");
    t.expect("attached-42");
    t.send(b"\x10\x11");
    // As the docker CLI: `attach` says so and exits 1 when detached.
    assert_eq!(t.wait(), 1, "detaching exits berth attach with 1");
    t.expect("read escape sequence");
    let status = env.inspect("tty2")["State"]["Status"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        status, "running",
        "the container keeps running after a detach"
    );
    // Reattach and wait until the session answers: ask again while it does
    // not (a line typed before `attach` has its terminal raw is the local
    // terminal's), failing if berth attach ends.
    let mut t = Terminal::spawn(env.berth(&["attach", "tty2"]), 24, 80);
    let mut answered = false;
    for _ in 0..10 {
        t.send(b"echo again-$((1+1))\r");
        if t.expect_within("again-2", Duration::from_secs(2)).is_some() {
            answered = true;
            break;
        }
        if let Ok(Some(st)) = t.child.try_wait() {
            panic!(
                "berth attach ended with {st}: {:?}",
                String::from_utf8_lossy(&t.seen)
            );
        }
    }
    assert!(answered, "{:?}", String::from_utf8_lossy(&t.seen));
    t.send(b"exit 4\r");
    assert_eq!(t.wait(), 4);
    assert_eq!(env.ok(&["wait", "tty2"]).trim(), "4");
}

#[test]
fn exec_it_runs_in_a_terminal() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "tty3", "bb", "sleep", "1000"]);
    let mut t = Terminal::spawn(env.berth(&["exec", "-it", "tty3", "sh"]), 24, 80);
    t.expect("# ");
    t.send(b"[ -t 0 ] && echo is-a-tty; echo $$\r");
    t.expect("is-a-tty");
    t.send(b"exit 3\r");
    assert_eq!(t.wait(), 3);
}

/// `exec -it` gets a cooked terminal of the container's own: the line
/// discipline edits and echoes, `read` returns a line, ^C interrupts the
/// foreground process, and `tty` names a pty of the container's devpts.
#[test]
fn exec_it_has_a_cooked_terminal() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "-d", "--name", "tty4", "bb", "sleep", "1000"]);
    let mut t = Terminal::spawn(env.berth(&["exec", "-it", "tty4", "sh"]), 24, 80);
    t.expect("# ");
    t.send(b"read x; echo got-$x\r");
    t.send(b"hello\r");
    t.expect("got-hello");
    t.send(b"sleep 321\r");
    // Wait until the sleep runs before interrupting it.
    poll("the exec'd sleep", Duration::from_secs(20), || {
        env.ok(&["top", "tty4"]).contains("sleep 321").then_some(())
    });
    t.send(b"\x03");
    poll(
        "the sleep to be interrupted",
        Duration::from_secs(20),
        || (!env.ok(&["top", "tty4"]).contains("sleep 321")).then_some(()),
    );
    t.send(b"echo back-$((1+2))\r");
    t.expect("back-3");
    t.send(b"tty\r");
    t.expect("/dev/pts/0");
    t.send(b"exit 7\r");
    assert_eq!(t.wait(), 7);
}

/// `--detach-keys` on run, attach and exec; `run -it` detaches quietly with
/// 0, `exec -it` with "read escape sequence" and 1 (the docker CLI's), and
/// a key that only starts the sequence reaches the program.
#[test]
fn detach_keys_are_dockers() {
    let env = TestEnv::with_busybox();
    let mut t = Terminal::spawn(
        env.berth(&[
            "run",
            "-it",
            "--detach-keys=ctrl-x,x",
            "--name",
            "tty5",
            "bb",
            "sh",
        ]),
        24,
        80,
    );
    t.expect("# ");
    // ctrl-x then y: not the sequence, both go through (ctrl-x is nothing
    // to the shell's line; y is typed).
    t.send(b"echo a\x18y\r");
    t.expect("ay");
    t.send(b"\x18x");
    assert_eq!(t.wait(), 0, "run -it detaches with 0");
    assert_eq!(
        env.inspect("tty5")["State"]["Status"].as_str(),
        Some("running")
    );
    let mut t = Terminal::spawn(
        env.berth(&["exec", "-it", "--detach-keys", "ctrl-a", "tty5", "sh"]),
        24,
        80,
    );
    t.expect("# ");
    t.send(b"\x01");
    assert_eq!(t.wait(), 1);
    t.expect("read escape sequence");
    let (_, err) = env.fails(&["attach", "--detach-keys", "ctrl-", "tty5"], 1);
    assert!(
        err.contains("Invalid detach keys (ctrl-) provided"),
        "{err}"
    );
}
