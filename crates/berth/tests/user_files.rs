//! No command destroys what it should not (DESIGN.md invariant 7): output
//! paths that are devices, FIFOs, sockets or symlinks are refused with
//! Docker's words and left as they were; a failing command leaves the file
//! it was asked to write as it found it; a closed stdout ends a command
//! quietly; a prune asks before it deletes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use common::*;

/// A command that would block forever on a FIFO fails the test quickly.
const SHORT: Duration = Duration::from_secs(20);

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) {
    let c = CString::new(s(path)).unwrap();
    // SAFETY: a valid NUL-terminated path; mknod reads nothing else.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A directory holding one of each kind of thing a command must not replace:
/// `null` (a character device 1,3, as /dev/null), `fifo`, `sock` (a bound
/// unix socket), `link` (a symlink to `reg`), `reg` ("precious\n") and `dir`.
fn special_files() -> (tempfile::TempDir, std::os::unix::net::UnixListener) {
    let d = tempfile::tempdir().unwrap();
    mknod(
        &d.path().join("null"),
        libc::S_IFCHR | 0o666,
        libc::makedev(1, 3),
    );
    mknod(&d.path().join("fifo"), libc::S_IFIFO | 0o644, 0);
    let sock = std::os::unix::net::UnixListener::bind(d.path().join("sock")).unwrap();
    fs::write(d.path().join("reg"), "precious\n").unwrap();
    std::os::unix::fs::symlink("reg", d.path().join("link")).unwrap();
    fs::create_dir(d.path().join("dir")).unwrap();
    (d, sock)
}

/// Every entry of `dir` with its kind (and a device's numbers, a symlink's
/// target, a file's content): what a command must leave unchanged.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let t = m.file_type();
            let name = e.file_name().to_string_lossy().into_owned();
            let what = if t.is_char_device() {
                format!("char {}:{}", libc::major(m.rdev()), libc::minor(m.rdev()))
            } else if t.is_fifo() {
                "fifo".into()
            } else if t.is_socket() {
                "socket".into()
            } else if t.is_symlink() {
                format!("symlink -> {}", fs::read_link(e.path()).unwrap().display())
            } else if t.is_dir() {
                "dir".into()
            } else {
                format!(
                    "file {:?}",
                    fs::read_to_string(e.path()).unwrap_or_default()
                )
            };
            format!("{name}: {what}")
        })
        .collect();
    out.sort();
    out
}

fn run_short(env: &TestEnv, args: &[&str]) -> std::process::Output {
    output_with_timeout(env.berth(args), SHORT)
}

fn assert_fails_with(env: &TestEnv, args: &[&str], want: &str) {
    let out = run_short(env, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "berth {args:?}: {err}");
    assert!(
        err.contains(want),
        "berth {args:?}: expected {want:?} in {err:?}"
    );
}

/// A stopped container `ctr` holding `/f` ("hi\n").
fn env_with_container() -> TestEnv {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "ctr", BB, "sh", "-c", "echo hi > /f"]);
    env
}

// ---------------------------------------------------------------------------
// Output paths

#[test]
fn save_and_export_refuse_what_is_not_a_regular_file_and_touch_nothing() {
    let env = env_with_container();
    let (d, _sock) = special_files();
    let before = snapshot(d.path());
    let cases = [
        ("null", "cannot write to a character device file"),
        ("fifo", "cannot write to a named pipe (FIFO)"),
        ("sock", "cannot write to a socket"),
        ("link", "cannot write to a symbolic link directly"),
        ("dir", "cannot write to a directory"),
    ];
    for (name, msg) in cases {
        let p = d.path().join(name);
        assert_fails_with(
            &env,
            &["save", "-o", s(&p), BB],
            &format!("Error: failed to save image: {msg}"),
        );
        assert_fails_with(
            &env,
            &["export", "-o", s(&p), "ctr"],
            &format!("Error: failed to export container: {msg}"),
        );
        // Docker checks the path before it looks for the image/container.
        assert_fails_with(
            &env,
            &["image", "save", "-o", s(&p), "nosuch"],
            &format!("failed to save image: {msg}"),
        );
        assert_fails_with(
            &env,
            &["container", "export", "-o", s(&p), "nosuch"],
            &format!("failed to export container: {msg}"),
        );
    }
    let missing = d.path().join("nodir");
    assert_fails_with(
        &env,
        &["save", "-o", s(&missing.join("x")), BB],
        &format!(
            "failed to save image: invalid output path: stat {}: no such file or directory",
            missing.display()
        ),
    );
    assert_fails_with(
        &env,
        &["export", "-o", s(&d.path().join("reg/x")), "ctr"],
        &format!(
            "failed to export container: invalid output path: stat {}: not a directory",
            d.path().join("reg").display()
        ),
    );
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn save_and_export_replace_a_regular_file_only_when_complete() {
    let env = env_with_container();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.tar");
    fs::write(&out, "precious\n").unwrap();

    // A failing command leaves the file as it was, and no temporary file.
    assert_fails_with(
        &env,
        &["save", "-o", s(&out), "nosuch"],
        "No such image: nosuch",
    );
    assert_fails_with(
        &env,
        &["export", "-o", s(&out), "nosuch"],
        "No such container: nosuch",
    );
    assert_fails_with(&env, &["save", "-o", s(&out), BB, "nosuch"], "nosuch");
    assert_eq!(fs::read_to_string(&out).unwrap(), "precious\n");
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);

    // A successful one replaces it whole, with Docker's mode (0600).
    env.ok(&["save", "-o", s(&out), BB]);
    let m = fs::metadata(&out).unwrap();
    assert!(m.len() > 1000);
    assert_eq!(m.mode() & 0o777, 0o600);
    env.ok(&["export", "-o", s(&out), "ctr"]);
    let list = Command::new("tar").arg("tf").arg(&out).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.trim_start_matches("./") == "f"));
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn cp_to_the_host_refuses_devices_fifos_and_sockets_and_follows_symlinks() {
    let env = env_with_container();
    let (d, _sock) = special_files();
    let before = snapshot(d.path());
    for (name, got) in [
        ("null", "a device"),
        ("fifo", "a named pipe"),
        ("sock", "a socket"),
    ] {
        let p = d.path().join(name);
        let want = format!(
            "Error: invalid output path: \"{}\" must be a directory or a regular file: got {got}",
            p.display()
        );
        assert_fails_with(&env, &["cp", "ctr:/f", s(&p)], &want);
        // Checked before the container, as Docker does.
        assert_fails_with(&env, &["cp", "nosuch:/f", s(&p)], &want);
    }
    // Into a directory where the entry of that name is a device.
    let sub = d.path().join("dir");
    mknod(&sub.join("f"), libc::S_IFCHR | 0o666, libc::makedev(1, 3));
    assert_fails_with(
        &env,
        &["cp", "ctr:/f", s(&sub)],
        &format!(
            "invalid output path: \"{}\" must be a directory or a regular file: got a device",
            sub.join("f").display()
        ),
    );
    fs::remove_file(sub.join("f")).unwrap();
    assert_eq!(snapshot(d.path()), before);

    // A failing copy leaves the destination alone.
    let reg = d.path().join("reg");
    assert_fails_with(
        &env,
        &["cp", "nosuch:/f", s(&reg)],
        "No such container: nosuch",
    );
    assert_fails_with(&env, &["cp", "ctr:/nope", s(&reg)], "nope");
    assert_eq!(snapshot(d.path()), before);

    // A symlink to a file: the file it points to gets the content, the link stays.
    env.ok(&["cp", "ctr:/f", s(&d.path().join("link"))]);
    assert_eq!(
        fs::read_link(d.path().join("link")).unwrap(),
        Path::new("reg")
    );
    assert_eq!(fs::read_to_string(&reg).unwrap(), "hi\n");
}

#[test]
fn a_copy_that_fails_half_way_leaves_the_old_file() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "big",
        BB,
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1024 count=512",
    ]);
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("f");
    // A 64 KiB filesystem in a mount namespace of the command's own (the
    // mount dies with it): the 512 KiB copy runs out of room half-way.
    let script = r#"dir=$1; shift
        mount -t tmpfs -o size=64k tmpfs "$dir" || exit 99
        echo precious > "$dir/f"
        "$@" 2>/dev/null; echo "rc=$?"
        head -c 9 "$dir/f"; ls -A "$dir""#;
    let berth = env.berth(&["cp", "big:/big", s(&dest)]);
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(d.path())
        .arg(berth.get_program())
        .args(berth.get_args())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "rc=1\nprecious\nf\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// A closed stdout

/// Runs berth with its stdout a pipe whose read end is already closed, its
/// stderr into a file; returns how it ended and what it printed on stderr.
fn with_closed_stdout(env: &TestEnv, args: &[&str]) -> (ExitStatus, String) {
    let (r, w): (OwnedFd, OwnedFd) = rustix::pipe::pipe().unwrap();
    drop(r);
    let errf = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = env.berth(args);
    cmd.stdout(Stdio::from(w))
        .stderr(Stdio::from(errf.reopen().unwrap()));
    let mut child = cmd.spawn().unwrap();
    let status = poll(&format!("berth {args:?} to end"), SHORT, || {
        child.try_wait().unwrap()
    });
    (status, fs::read_to_string(errf.path()).unwrap())
}

#[test]
fn a_closed_stdout_ends_every_command_quietly_as_sigpipe_does() {
    let env = env_with_container();
    env.ok(&["run", "--name", "talker", BB, "sh", "-c", "seq 1 20000"]);
    for args in [
        &["ps", "-a"][..],
        &["ps", "-aq"],
        &["images"],
        &["images", "-q"],
        &["image", "ls", "--format", "{{json .}}"],
        &["history", BB],
        &["inspect", "ctr"],
        &["logs", "talker"],
        &["save", BB],
        &["export", "ctr"],
        &["cp", "ctr:/f", "-"],
        &["diff", "ctr"],
        &["version"],
        &["system", "df"],
        &["volume", "ls"],
    ] {
        let (status, err) = with_closed_stdout(&env, args);
        assert!(!err.contains("panicked"), "berth {args:?}: {err}");
        assert!(
            !err.to_lowercase().contains("broken pipe"),
            "berth {args:?}: {err}"
        );
        assert_eq!(err, "", "berth {args:?} printed on stderr");
        // Like the docker CLI (a Go program): killed by SIGPIPE, so a shell
        // sees 141, `set -o pipefail` notices, and nothing is printed.
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "berth {args:?}: {status}"
        );
    }
    // The store is untouched by the interrupted commands.
    assert!(env.ok(&["ps", "-aq"]).lines().count() == 2);
}

#[test]
fn an_attached_run_with_a_closed_stdout_ends_quietly() {
    let env = TestEnv::with_busybox();
    let (status, err) = with_closed_stdout(
        &env,
        &["run", "--name", "talker", BB, "sh", "-c", "seq 1 20000"],
    );
    assert_eq!(err, "");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status}");
    // The container itself is not the CLI's: it runs on and exits by itself.
    poll("the container to exit", SHORT, || {
        (status_of(&env, "talker") == "exited").then_some(())
    });
}

fn status_of(env: &TestEnv, name: &str) -> String {
    inspect_f(env, "{{.State.Status}}", name)
}

// ---------------------------------------------------------------------------
// Prune prompts

/// Runs berth with `input` on its stdin; returns (exit code, stdout).
fn with_input(env: &TestEnv, args: &[&str], input: &str) -> (Option<i32>, String) {
    let f = tempfile::NamedTempFile::new().unwrap();
    fs::write(f.path(), input).unwrap();
    let mut cmd = env.berth(args);
    cmd.stdin(Stdio::from(File::open(f.path()).unwrap()));
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const CONTAINER_PROMPT: &str =
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ";

#[test]
fn container_prune_asks_first_and_only_y_removes() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "stopped", BB, "true"]);
    // Docker's answers: "y" or "Y" (spaces around allowed) is yes; anything
    // else, an empty line or no input at all is no: nothing removed, exit 0,
    // nothing printed after the prompt.
    for no in ["n\n", "", "\n", "yes\n", "YES\n", "nope\n"] {
        let (code, out) = with_input(&env, &["container", "prune"], no);
        assert_eq!(code, Some(0), "answer {no:?}");
        assert_eq!(out, CONTAINER_PROMPT, "answer {no:?}");
        assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1, "answer {no:?}");
    }
    let (code, out) = with_input(&env, &["container", "prune"], " Y \n");
    assert_eq!(code, Some(0));
    assert!(out.starts_with(CONTAINER_PROMPT), "{out}");
    assert!(out.contains("Deleted Containers:\n"), "{out}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");

    env.ok(&["create", "--name", "stopped2", BB, "true"]);
    for force in ["-f", "--force"] {
        let (code, out) = with_input(&env, &["container", "prune", force], "n\n");
        assert_eq!(code, Some(0));
        assert!(!out.contains("Are you sure"), "{out}");
        assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn image_and_system_prune_ask_with_dockers_words() {
    let env = TestEnv::with_busybox();
    let dangling = env.ok(&["import", s(&busybox_tar())]).trim().to_string();
    env.ok(&["create", "--name", "stopped", BB, "true"]);
    let images = || env.ok(&["images", "-q", "--no-trunc", "-a"]);
    let before = images();
    assert!(before.contains(&dangling));

    let ask = "Are you sure you want to continue? [y/N] ";
    let cases: [(&[&str], String); 4] = [
        (&["image", "prune"], format!("WARNING! This will remove all dangling images.\n{ask}")),
        (
            &["image", "prune", "-a"],
            format!("WARNING! This will remove all images without at least one container associated to them.\n{ask}"),
        ),
        (
            &["system", "prune"],
            format!("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\n{ask}"),
        ),
        (
            &["system", "prune", "-a", "--volumes"],
            format!("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all anonymous volumes not used by at least one container\n  - all images without at least one container associated to them\n  - all build cache\n\n{ask}"),
        ),
    ];
    for (args, prompt) in &cases {
        let (code, out) = with_input(&env, args, "n\n");
        assert_eq!(code, Some(0), "{args:?}");
        assert_eq!(&out, prompt, "{args:?}");
    }
    assert_eq!(images(), before);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);

    let (_, out) = with_input(&env, &["image", "prune"], "y\n");
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    let (_, out) = with_input(&env, &["system", "prune"], "y\n");
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}
