//! A container's files from the host: `export` (and `import` of what it wrote),
//! `cp` both ways with Docker's rules, tar streams, ownership, symlinks that try
//! to lead out of the container; and the housekeeping verbs `image prune`,
//! `system df`, `system prune`. Every check runs on a running and on a stopped
//! container where both make sense, and a stopped container's files must be
//! reached without leaving a mount on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Helpers

/// A path under /tmp no other test (in this or another process) uses, removed
/// when dropped.
struct HostPath(PathBuf);

impl HostPath {
    fn new(tag: &str) -> HostPath {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        HostPath(PathBuf::from(format!(
            "/tmp/berth-fsops-{tag}-{}-{}-{nanos:08x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    fn s(&self) -> &str {
        s(&self.0)
    }
}

impl Drop for HostPath {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        let _ = fs::remove_file(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A container called `name` that ran `script`: still running (and past the
/// script) when `running`, exited otherwise.
fn container(env: &TestEnv, name: &str, running: bool, script: &str) {
    if running {
        let script = format!("{script} && echo ready && exec sleep 1000");
        env.ok(&["run", "-d", "--name", name, BB, "sh", "-c", &script]);
        poll(&format!("{name} to be ready"), DEADLINE, || {
            env.ok(&["logs", name]).contains("ready").then_some(())
        });
    } else {
        env.ok(&["run", "--name", name, BB, "sh", "-c", script]);
    }
}

fn mode_name(running: bool) -> &'static str {
    if running {
        "running"
    } else {
        "stopped"
    }
}

/// The member names of a tar file, as `tar tf` prints them.
fn tar_names(tar: &Path) -> BTreeSet<String> {
    let out = Command::new("tar")
        .arg("tf")
        .arg(tar)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
    assert!(
        out.status.success(),
        "tar tf {}: {}",
        tar.display(),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

/// The verbose listing of a tar file (modes, owners, sizes, times, names).
fn tar_verbose(tar: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .args(["tvf"])
        .arg(tar)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
    assert!(
        out.status.success(),
        "tar tvf {}: {}",
        tar.display(),
        stderr(&out)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// `tar tv` lines with the date and time dropped from the directories a
/// container's create makes as mount points.
fn without_mount_point_times(lines: Vec<String>) -> Vec<String> {
    const MADE_AT_CREATE: [&str; 6] = ["dev/", "dev/pts/", "dev/shm/", "etc/", "proc/", "sys/"];
    lines
        .into_iter()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [mode, owner, size, _date, _time, name] if MADE_AT_CREATE.contains(name) => {
                    format!("{mode} {owner} {size} {name}")
                }
                _ => line,
            }
        })
        .collect()
}

/// One member's content.
fn tar_file(tar: &Path, member: &str) -> String {
    let out = Command::new("tar")
        .arg("xOf")
        .arg(tar)
        .arg(member)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
    assert!(out.status.success(), "tar xOf {member}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `berth export NAME` into a host file.
fn export(env: &TestEnv, name: &str, to: &Path) {
    env.ok(&["export", "-o", s(to), name]);
}

/// A file's content in the container, read through `export` (works whatever
/// the container's state).
fn read_in(env: &TestEnv, name: &str, path: &str) -> Option<String> {
    let tar = HostPath::new("read");
    export(env, name, &tar.0);
    let member = path.trim_start_matches('/');
    tar_names(&tar.0)
        .contains(member)
        .then(|| tar_file(&tar.0, member))
}

/// Nothing is mounted on the host under the test's root: a stopped
/// container's files were reached inside a private mount namespace.
fn assert_no_mounts(env: &TestEnv) {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let root = s(env.root.path());
    let leaked: Vec<&str> = info.lines().filter(|l| l.contains(root)).collect();
    assert!(leaked.is_empty(), "mounts left on the host: {leaked:#?}");
}

fn berth_with_stdin(env: &TestEnv, args: &[&str], stdin: &Path) -> Output {
    let mut cmd = env.berth(args);
    cmd.stdin(Stdio::from(File::open(stdin).expect("open stdin file")));
    output_with_timeout(cmd, COMMAND_TIMEOUT)
}

/// A host directory: `file.txt`, `tree/a.txt`, `tree/sub/b.txt`.
fn host_tree() -> HostPath {
    let h = HostPath::new("src");
    fs::create_dir_all(h.join("tree/sub")).unwrap();
    fs::write(h.join("file.txt"), "hello file\n").unwrap();
    fs::write(h.join("tree/a.txt"), "a\n").unwrap();
    fs::write(h.join("tree/sub/b.txt"), "b\n").unwrap();
    h
}

// ---------------------------------------------------------------------------
// export

const CHANGES: &str =
    "echo changed > /etc/motd-new && rm /bin/ls && mkdir -p /data/sub && echo deep > /data/sub/f";

#[test]
fn export_has_the_image_and_the_changes_but_not_deleted_files() {
    let env = TestEnv::with_busybox();
    for running in [false, true] {
        let name = format!("exp-{}", mode_name(running));
        container(&env, &name, running, CHANGES);
        let tar = HostPath::new("export");
        export(&env, &name, &tar.0);
        let names = tar_names(&tar.0);
        for want in [
            "etc/motd-new",
            "data/sub/f",
            "bin/busybox",
            "bin/sh",
            "etc/passwd",
        ] {
            assert!(
                names.contains(want),
                "{name}: {want} missing from the export"
            );
        }
        assert!(
            !names.contains("bin/ls"),
            "{name}: a deleted file was exported"
        );
        // The root filesystem only: not what is mounted on it (/proc, /sys).
        assert!(
            !names.iter().any(|n| n.starts_with("proc/") && n.len() > 5),
            "{name}: /proc's contents were exported"
        );
        assert!(!names.iter().any(|n| n.starts_with("./")));
        assert_eq!(tar_file(&tar.0, "etc/motd-new"), "changed\n");
        assert_eq!(tar_file(&tar.0, "data/sub/f"), "deep\n");

        // To stdout, the same stream.
        let out = env.run(&["export", &name]);
        assert!(out.status.success(), "export to stdout: {}", stderr(&out));
        let again = HostPath::new("export-stdout");
        fs::write(&again.0, &out.stdout).unwrap();
        assert_eq!(tar_names(&again.0), names);
        assert_no_mounts(&env);
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Gone, or a zombie: either way it holds no mount namespace any more.
fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// While berth reads a stopped container's files, the overlay exists only
/// in its worker's mount namespace; `kill -9` of berth takes the worker with
/// it and releases the container.
#[test]
fn a_stopped_containers_overlay_lives_only_in_the_worker() {
    let env = TestEnv::with_busybox();
    container(
        &env,
        "bulky",
        false,
        "dd if=/dev/urandom of=/big bs=1024 count=4096 2>/dev/null",
    );
    let id = env
        .ok(&["inspect", "-f", "{{.Id}}", "bulky"])
        .trim()
        .to_string();
    let merged = env.root.path().join("containers").join(&id).join("merged");
    let mut cmd = env.berth(&["export", "bulky"]);
    // Nobody reads: the export blocks on a full pipe with its overlay mounted.
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut cli = cmd.spawn().unwrap();
    let worker = poll("the export's worker", DEADLINE, || {
        children_of(cli.id()).into_iter().next()
    });
    poll("the worker's overlay", DEADLINE, || {
        let info = fs::read_to_string(format!("/proc/{worker}/mountinfo")).ok()?;
        info.lines()
            .any(|l| l.contains(s(&merged)) && l.contains(" overlay "))
            .then_some(())
    });
    assert_no_mounts(&env);

    cli.kill().unwrap();
    cli.wait().unwrap();
    poll("the worker to die with berth", DEADLINE, || {
        process_gone(worker).then_some(())
    });
    assert_no_mounts(&env);
    env.ok(&["start", "-a", "bulky"]);
}

#[test]
fn export_then_import_round_trips() {
    let env = TestEnv::with_busybox();
    container(&env, "orig", false, CHANGES);
    let tar = HostPath::new("roundtrip");
    export(&env, "orig", &tar.0);
    env.ok(&["import", tar.s(), "roundtrip"]);
    let out = env.ok(&[
        "run",
        "--rm",
        "roundtrip",
        "sh",
        "-c",
        "cat /etc/motd-new /data/sub/f; test -e /bin/ls && echo has-ls || echo no-ls",
    ]);
    assert_eq!(out, "changed\ndeep\nno-ls\n");

    // A container of the imported image exports the same files, owners,
    // modes, sizes and times, but for the directories that create makes
    // afresh as mount points (as Docker's init layer does): theirs are the
    // time of each create, a minute apart when the clock turns between them.
    env.ok(&["create", "--name", "copy", "roundtrip", "true"]);
    let tar2 = HostPath::new("roundtrip2");
    export(&env, "copy", &tar2.0);
    assert_eq!(
        without_mount_point_times(tar_verbose(&tar2.0)),
        without_mount_point_times(tar_verbose(&tar.0))
    );
    assert_no_mounts(&env);
}

#[test]
fn export_of_a_missing_container_fails() {
    let env = TestEnv::with_busybox();
    let out = HostPath::new("nothing");
    let (_, err) = env.fails(&["export", "-o", out.s(), "nosuch"], 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
    assert!(!out.0.exists(), "a failed export left its output file");
}

// ---------------------------------------------------------------------------
// cp

#[test]
fn cp_files_and_directories_into_and_out_of_containers() {
    let env = TestEnv::with_busybox();
    let src = host_tree();
    for running in [false, true] {
        let c = format!("cp-{}", mode_name(running));
        container(&env, &c, running, "true");
        let at = |p: &str| format!("{c}:{p}");

        // In: a file into a directory, to a new name; a directory to a new
        // name, into an image directory (only in a lower layer), its contents.
        env.ok(&["cp", s(&src.join("file.txt")), &at("/tmp")]);
        env.ok(&["cp", s(&src.join("file.txt")), &at("/tmp/renamed.txt")]);
        env.ok(&["cp", s(&src.join("tree")), &at("/tmp/newtree")]);
        env.ok(&["cp", s(&src.join("tree")), &at("/etc")]);
        env.ok(&["cp", &format!("{}/.", s(&src.join("tree"))), &at("/var")]);
        // Replace a file that only the image has.
        env.ok(&["cp", s(&src.join("file.txt")), &at("/etc/group")]);
        assert_no_mounts(&env);

        let tar = HostPath::new("cp-check");
        export(&env, &c, &tar.0);
        let names = tar_names(&tar.0);
        for (member, content) in [
            ("tmp/file.txt", "hello file\n"),
            ("tmp/renamed.txt", "hello file\n"),
            ("tmp/newtree/a.txt", "a\n"),
            ("tmp/newtree/sub/b.txt", "b\n"),
            ("etc/tree/a.txt", "a\n"),
            ("etc/tree/sub/b.txt", "b\n"),
            ("var/a.txt", "a\n"),
            ("var/sub/b.txt", "b\n"),
            ("etc/group", "hello file\n"),
        ] {
            assert!(names.contains(member), "{c}: {member} not in the container");
            assert_eq!(tar_file(&tar.0, member), content, "{c}: {member}");
        }
        assert!(names.contains("etc/passwd"), "{c}: /etc lost its files");
        assert!(
            !names.contains("var/tree/a.txt"),
            "{c}: tree/. copied the directory"
        );
        if running {
            let seen = env.ok(&["exec", &c, "cat", "/tmp/newtree/sub/b.txt", "/var/a.txt"]);
            assert_eq!(seen, "b\na\n");
        }

        // Out: a file to a new name, into a directory; a directory into a
        // directory, to a new name; a directory's contents.
        let out = HostPath::new("cp-out");
        fs::create_dir(&out.0).unwrap();
        env.ok(&["cp", &at("/tmp/file.txt"), s(&out.join("f.txt"))]);
        env.ok(&["cp", &at("/etc/passwd"), out.s()]);
        env.ok(&["cp", &at("/etc/tree"), out.s()]);
        env.ok(&["cp", &at("/tmp/newtree"), s(&out.join("renamed-tree"))]);
        fs::create_dir(out.join("contents")).unwrap();
        env.ok(&["cp", &at("/tmp/newtree/."), s(&out.join("contents"))]);
        assert_eq!(
            fs::read_to_string(out.join("f.txt")).unwrap(),
            "hello file\n"
        );
        assert!(fs::read_to_string(out.join("passwd"))
            .unwrap()
            .starts_with("root:"));
        assert_eq!(
            fs::read_to_string(out.join("tree/sub/b.txt")).unwrap(),
            "b\n"
        );
        assert_eq!(
            fs::read_to_string(out.join("renamed-tree/a.txt")).unwrap(),
            "a\n"
        );
        assert_eq!(
            fs::read_to_string(out.join("contents/sub/b.txt")).unwrap(),
            "b\n"
        );
        assert!(!out.join("contents/newtree").exists());
        // A file the container deleted cannot be copied out.
        let (_, err) = env.fails(&["cp", &at("/bin/nosuch"), out.s()], 1);
        assert!(
            err.contains(&format!(
                "Could not find the file /bin/nosuch in container {c}"
            )),
            "{err}"
        );
        assert_no_mounts(&env);
    }
}

#[test]
fn cp_tar_streams_on_stdin_and_stdout() {
    let env = TestEnv::with_busybox();
    let src = host_tree();
    let input = HostPath::new("stream.tar");
    let made = Command::new("tar")
        .arg("cf")
        .arg(&input.0)
        .arg("-C")
        .arg(&src.0)
        .args(["file.txt", "tree"])
        .status()
        .expect("tar");
    assert!(made.success());
    for running in [false, true] {
        let c = format!("stream-{}", mode_name(running));
        container(&env, &c, running, "mkdir /incoming");

        let out = berth_with_stdin(&env, &["cp", "-", &format!("{c}:/incoming")], &input.0);
        assert!(out.status.success(), "cp - {c}: {}", stderr(&out));
        assert_eq!(
            read_in(&env, &c, "/incoming/tree/sub/b.txt").as_deref(),
            Some("b\n")
        );
        assert_eq!(
            read_in(&env, &c, "/incoming/file.txt").as_deref(),
            Some("hello file\n")
        );

        // The destination of a stream must be a directory.
        let out = berth_with_stdin(&env, &["cp", "-", &format!("{c}:/etc/passwd")], &input.0);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("must be a directory"),
            "{}",
            stderr(&out)
        );

        let out = env.run(&["cp", &format!("{c}:/incoming/tree"), "-"]);
        assert!(out.status.success(), "cp {c} -: {}", stderr(&out));
        let tar = HostPath::new("stdout.tar");
        fs::write(&tar.0, &out.stdout).unwrap();
        let names = tar_names(&tar.0);
        assert!(names.contains("tree/sub/b.txt"), "{names:?}");
        assert!(names.contains("tree/a.txt"), "{names:?}");
        assert_eq!(tar_file(&tar.0, "tree/a.txt"), "a\n");
        assert_no_mounts(&env);
    }
}

#[test]
fn cp_sets_owners_to_root_unless_archive_mode() {
    let env = TestEnv::with_busybox();
    let src = HostPath::new("owned");
    fs::write(&src.0, "owned\n").unwrap();
    std::os::unix::fs::chown(&src.0, Some(1234), Some(5678)).unwrap();
    for running in [false, true] {
        let c = format!("own-{}", mode_name(running));
        container(
            &env,
            &c,
            running,
            "echo x > /owned-in && chown 4321:8765 /owned-in",
        );
        env.ok(&["cp", src.s(), &format!("{c}:/plain")]);
        env.ok(&["cp", "-a", src.s(), &format!("{c}:/archived")]);
        let tar = HostPath::new("owners");
        export(&env, &c, &tar.0);
        let listing = tar_verbose(&tar.0);
        let owner = |name: &str| {
            listing
                .iter()
                .find(|l| l.ends_with(&format!(" {name}")))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
                .unwrap_or_else(|| panic!("{name} not in {listing:#?}"))
        };
        assert_eq!(owner("plain"), "0/0", "{c}");
        assert_eq!(owner("archived"), "1234/5678", "{c}");

        let out = HostPath::new("owned-out");
        fs::create_dir(&out.0).unwrap();
        env.ok(&["cp", &format!("{c}:/owned-in"), s(&out.join("plain"))]);
        env.ok(&[
            "cp",
            "-a",
            &format!("{c}:/owned-in"),
            s(&out.join("archived")),
        ]);
        let m = fs::metadata(out.join("plain")).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0), "{c}: copied out without -a");
        let m = fs::metadata(out.join("archived")).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 8765), "{c}: copied out with -a");
    }
}

/// Symlinks in the container pointing at `/`, `/etc` and `../../../..` resolve
/// inside the container for both directions of `cp`; the host's files stay
/// untouched.
#[test]
fn cp_never_follows_a_symlink_out_of_the_container() {
    let env = TestEnv::with_busybox();
    let host_file = HostPath::new("escape-src");
    fs::write(&host_file.0, "from the host\n").unwrap();
    for running in [false, true] {
        let c = format!("evil-{}", mode_name(running));
        // Host paths the copies would hit if they escaped.
        let probe = HostPath::new("escape");
        let name = probe
            .0
            .file_name()
            .and_then(|n| n.to_str())
            .expect("probe name")
            .to_string();
        let etc_probe = PathBuf::from("/etc").join(&name);
        let root_probe = PathBuf::from("/").join(&name);
        let script = format!(
            "ln -s / /evil && ln -s /etc /evil-etc && ln -s ../../../.. /evil-up && \
             echo container-secret > /etc/secret-{name}"
        );
        container(&env, &c, running, &script);

        for dest in [
            format!("{c}:/evil/tmp/{name}-1"),
            format!("{c}:/evil-up/tmp/{name}-2"),
            format!("{c}:/evil-etc/{name}-3"),
            format!("{c}:/evil/{name}-4"),
            format!("{c}:/evil-up/../../{name}-5"),
        ] {
            env.ok(&["cp", host_file.s(), &dest]);
        }
        for (i, host) in [
            PathBuf::from(format!("{}-1", probe.s())),
            PathBuf::from(format!("{}-2", probe.s())),
            PathBuf::from(format!("{}-3", s(&etc_probe))),
            PathBuf::from(format!("{}-4", s(&root_probe))),
            PathBuf::from(format!("{}-5", s(&root_probe))),
        ]
        .iter()
        .enumerate()
        {
            assert!(
                fs::symlink_metadata(host).is_err(),
                "{c}: copy {} escaped to the host's {}",
                i + 1,
                host.display()
            );
        }
        let tar = HostPath::new("escape-check");
        export(&env, &c, &tar.0);
        let names = tar_names(&tar.0);
        for member in [
            format!("tmp/{name}-1"),
            format!("tmp/{name}-2"),
            format!("etc/{name}-3"),
            format!("{name}-4"),
            format!("{name}-5"),
        ] {
            assert!(
                names.contains(&member),
                "{c}: {member} did not land in the container"
            );
            assert_eq!(tar_file(&tar.0, &member), "from the host\n");
        }

        // Out: the container's files, not the host's.
        let out = HostPath::new("escape-out");
        fs::create_dir(&out.0).unwrap();
        env.ok(&[
            "cp",
            &format!("{c}:/evil/etc/secret-{name}"),
            s(&out.join("secret")),
        ]);
        assert_eq!(
            fs::read_to_string(out.join("secret")).unwrap(),
            "container-secret\n"
        );
        env.ok(&[
            "cp",
            &format!("{c}:/evil-up/etc/passwd"),
            s(&out.join("passwd")),
        ]);
        env.ok(&[
            "cp",
            &format!("{c}:/evil-etc/passwd"),
            s(&out.join("passwd2")),
        ]);
        let container_passwd = tar_file(&tar.0, "etc/passwd");
        assert_eq!(
            fs::read_to_string(out.join("passwd")).unwrap(),
            container_passwd
        );
        assert_eq!(
            fs::read_to_string(out.join("passwd2")).unwrap(),
            container_passwd
        );
        // A symlink as the source is copied as a symlink, with -L as its target.
        env.ok(&["cp", &format!("{c}:/evil-etc"), s(&out.join("link"))]);
        assert_eq!(
            fs::read_link(out.join("link")).unwrap(),
            PathBuf::from("/etc")
        );
        env.ok(&[
            "cp",
            "-L",
            &format!("{c}:/evil-etc"),
            s(&out.join("followed")),
        ]);
        assert_eq!(
            fs::read_to_string(out.join("followed/passwd")).unwrap(),
            container_passwd
        );
        assert!(out.join(&format!("followed/secret-{name}")).exists());
        assert_no_mounts(&env);
    }
}

#[test]
fn cp_never_turns_a_directory_into_a_file_or_back() {
    let env = TestEnv::with_busybox();
    let host = HostPath::new("kinds");
    std::fs::create_dir_all(host.0.join("d")).unwrap();
    std::fs::write(host.0.join("d/f"), "file\n").unwrap();
    std::fs::write(host.0.join("plain"), "file\n").unwrap();
    std::fs::create_dir_all(host.0.join("x")).unwrap();
    std::fs::write(host.0.join("x/inner"), "file\n").unwrap();
    let setup = "mkdir -p /t/d/f /t/plain /t/y/z && echo file > /t/x";
    for running in [false, true] {
        let c = format!("kinds-{}", mode_name(running));
        container(&env, &c, running, setup);
        let to_t = format!("{c}:/t/");
        // dockerd's words (docker cp always asks for noOverwriteDirNonDir),
        // at any depth of the copy.
        for (src, words) in [
            (
                "d",
                "cannot overwrite directory \"/t/d/f\" with non-directory \"/t\"",
            ),
            (
                "plain",
                "cannot overwrite directory \"/t/plain\" with non-directory \"/t\"",
            ),
            (
                "x",
                "cannot overwrite non-directory \"/t/x\" with directory \"/t\"",
            ),
        ] {
            let (_, err) = env.fails(&["cp", host.0.join(src).to_str().unwrap(), &to_t], 1);
            assert_eq!(
                err,
                format!("Error: Error processing tar file(exit status 1): {words}\n"),
                "{src}"
            );
        }
        // Nothing changed kind.
        let out = HostPath::new("kinds-out");
        env.ok(&["cp", &format!("{c}:/t"), out.s()]);
        assert!(out.0.join("d/f").is_dir());
        assert!(out.0.join("plain").is_dir());
        assert!(out.0.join("x").is_file());
        assert!(!out.0.join("x/inner").exists());
        // Out to the host: the docker CLI's words alone, the host's paths.
        std::fs::remove_dir_all(out.0.join("y/z")).unwrap();
        std::fs::write(out.0.join("y/z"), "host file\n").unwrap();
        let (_, err) = env.fails(&["cp", &format!("{c}:/t/y"), out.s()], 1);
        assert_eq!(
            err,
            format!(
                "cannot overwrite non-directory \"{0}/y/z\" with directory \"{0}\"\n",
                out.s()
            )
        );
        assert_eq!(
            std::fs::read_to_string(out.0.join("y/z")).unwrap(),
            "host file\n"
        );
        assert_no_mounts(&env);
    }
}

#[test]
fn cp_refuses_bad_destinations_cleanly() {
    let env = TestEnv::with_busybox();
    let src = host_tree();
    for running in [false, true] {
        let c = format!("bad-{}", mode_name(running));
        container(&env, &c, running, "true");
        let at = |p: &str| format!("{c}:{p}");
        let file = s(&src.join("file.txt")).to_string();

        // Docker's daemon's words: the missing directory, or a file on the way.
        let (_, err) = env.fails(&["cp", &file, &at("/no/such/dir/x")], 1);
        assert_eq!(
            err,
            format!("Error: Could not find the file /no/such/dir in container {c}\n")
        );
        let (_, err) = env.fails(&["cp", &file, &at("/nodir/")], 1);
        assert!(err.contains("does not exist"), "{err}");
        // The docker CLI's own check, in its words alone.
        let (_, err) = env.fails(&["cp", s(&src.join("tree")), &at("/etc/passwd")], 1);
        assert_eq!(err, "cannot copy directory\n");
        let (_, err) = env.fails(&["cp", &file, &at("/etc/passwd/x")], 1);
        assert_eq!(err, "Error: extraction point is not a directory\n");
        let (_, err) = env.fails(&["cp", &at("/no/such"), src.s()], 1);
        assert!(
            err.contains("Could not find the file /no/such in container"),
            "{err}"
        );
        let tar = HostPath::new("bad-check");
        export(&env, &c, &tar.0);
        let names = tar_names(&tar.0);
        assert!(!names
            .iter()
            .any(|n| n.starts_with("no/") || n.starts_with("nodir")));
        assert!(!names.contains("etc/passwd/"));
        assert_no_mounts(&env);
    }
    let (_, err) = env.fails(&["cp", "bad-running:/etc", "bad-stopped:/tmp"], 1);
    assert!(
        err.contains("copying between containers is not supported"),
        "{err}"
    );
    let (_, err) = env.fails(&["cp", src.s(), "/tmp/elsewhere"], 1);
    assert!(
        err.contains("must specify at least one container source"),
        "{err}"
    );
    let (_, err) = env.fails(&["cp", src.s(), "nosuch:/tmp"], 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
    let (_, err) = env.fails(&["cp", "/no/such/host/file", "bad-running:/tmp"], 1);
    assert!(err.contains("/no/such/host/file"), "{err}");
}

// ---------------------------------------------------------------------------
// image prune, system df, system prune

/// A new image `tag` with one more layer than bb (a container's export).
fn extra_image(env: &TestEnv, tag: &str) {
    let name = format!("src-{tag}");
    container(
        env,
        &name,
        false,
        "echo extra > /extra && dd if=/dev/zero of=/blob bs=1024 count=256 2>/dev/null",
    );
    let tar = HostPath::new("extra");
    export(env, &name, &tar.0);
    env.ok(&["rm", &name]);
    env.ok(&["import", tar.s(), tag]);
}

fn image_ids(env: &TestEnv) -> BTreeSet<String> {
    env.ok(&["images", "-q", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn layer_dirs(env: &TestEnv) -> usize {
    fs::read_dir(env.root.path().join("layers"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn image_prune_removes_dangling_images_and_with_all_unused_ones() {
    let env = TestEnv::with_busybox();
    // Without -f the prompt needs a yes: stdin is empty, nothing happens.
    let dangling = env.ok(&["import", s(&busybox_tar())]).trim().to_string();
    let out = env.ok(&["image", "prune"]);
    assert!(
        out.contains("Are you sure you want to continue? [y/N]"),
        "{out}"
    );
    assert!(image_ids(&env).contains(&dangling));

    // A dangling image sharing bb's layer: deleted, its layer stays.
    let layers = layer_dirs(&env);
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    assert!(!image_ids(&env).contains(&dangling));
    assert_eq!(layer_dirs(&env), layers);
    env.ok(&["run", "--rm", BB, "true"]);

    // Tagged images stay without -a.
    extra_image(&env, "extra");
    env.ok(&["create", "--name", "user", BB, "true"]);
    let before = image_ids(&env);
    let out = env.ok(&["image", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(image_ids(&env), before);

    // -a: every image no container uses; its own layer goes with it.
    let layers = layer_dirs(&env);
    let out = env.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: extra:latest"), "{out}");
    assert!(!out.contains("untagged: bb:latest"), "{out}");
    let reclaimed = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .expect("total line");
    assert_ne!(reclaimed, "0B", "{out}");
    assert_eq!(layer_dirs(&env), layers - 1);
    assert_eq!(image_ids(&env).len(), 1);
    env.ok(&["start", "-a", "user"]);
}

/// `system df` rows as (type, total, active, size, reclaimable).
fn df(env: &TestEnv) -> Vec<(String, String, String, String, String)> {
    env.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    ])
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 5, "{l}");
        (
            f[0].to_string(),
            f[1].to_string(),
            f[2].to_string(),
            f[3].to_string(),
            f[4].to_string(),
        )
    })
    .collect()
}

fn row(
    rows: &[(String, String, String, String, String)],
    kind: &str,
) -> (String, String, String, String) {
    rows.iter()
        .find(|r| r.0 == kind)
        .map(|r| (r.1.clone(), r.2.clone(), r.3.clone(), r.4.clone()))
        .unwrap_or_else(|| panic!("no {kind} row in {rows:?}"))
}

fn own(a: &str, b: &str, c: &str, d: &str) -> (String, String, String, String) {
    (a.into(), b.into(), c.into(), d.into())
}

#[test]
fn system_df_counts_images_containers_and_volumes() {
    let env = TestEnv::with_busybox();
    let bb_size = env
        .ok(&["images", "--format", "{{.Size}}", BB])
        .trim()
        .to_string();
    let rows = df(&env);
    assert_eq!(rows.len(), 4);
    assert_eq!(
        row(&rows, "Images"),
        own("1", "0", &bb_size, &format!("{bb_size} (100%)"))
    );
    assert_eq!(row(&rows, "Containers"), own("0", "0", "0B", "0B"));
    assert_eq!(row(&rows, "Local Volumes"), own("0", "0", "0B", "0B"));
    assert_eq!(row(&rows, "Build Cache"), own("0", "0", "0B", "0B"));

    // A container that wrote 1 MiB, another image sharing bb's layer.
    env.ok(&[
        "run",
        "--name",
        "big",
        BB,
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1024",
        "count=1024",
    ]);
    env.ok(&["import", s(&busybox_tar()), "bb2"]);
    let rows = df(&env);
    assert_eq!(row(&rows, "Images"), own("2", "1", &bb_size, "0B (0%)"));
    assert_eq!(
        row(&rows, "Containers"),
        own("1", "0", "1.05MB", "1.05MB (100%)")
    );

    // A running container and a volume with 1 MiB in it.
    container(&env, "live", true, "true");
    env.ok(&[
        "run",
        "--name",
        "filler",
        "-v",
        "vol:/vol",
        BB,
        "dd",
        "if=/dev/zero",
        "of=/vol/data",
        "bs=1024",
        "count=1024",
    ]);
    let rows = df(&env);
    let (total, active, _, _) = row(&rows, "Containers");
    assert_eq!((total.as_str(), active.as_str()), ("3", "1"));
    assert_eq!(
        row(&rows, "Local Volumes"),
        own("1", "1", "1.05MB", "0B (0%)")
    );
    env.ok(&["rm", "filler"]);
    assert_eq!(
        row(&df(&env), "Local Volumes"),
        own("1", "0", "1.05MB", "1.05MB (100%)")
    );

    let verbose = env.ok(&["system", "df", "-v"]);
    for want in [
        "Images space usage:",
        "SHARED SIZE",
        "Containers space usage:",
        "big",
        "1.05MB",
        "Local Volumes space usage:",
        "vol",
        "Build cache usage: 0B",
    ] {
        assert!(verbose.contains(want), "{want:?} not in:\n{verbose}");
    }
    let table = env.ok(&["system", "df"]);
    assert!(
        table.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{table}"
    );
}

#[test]
fn system_prune_removes_stopped_containers_and_dangling_images() {
    let env = TestEnv::with_busybox();
    container(&env, "up", true, "true");
    container(&env, "done", false, "true");
    env.ok(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/data",
        BB,
        "sh",
        "-c",
        "echo x > /data/x",
    ]);
    let volume = env.ok(&["volume", "ls", "-q"]).trim().to_string();
    assert_eq!(volume.len(), 64, "an anonymous volume: {volume}");
    let done_id = env
        .ok(&["inspect", "-f", "{{.Id}}", "done"])
        .trim()
        .to_string();
    let dangling = env.ok(&["import", s(&busybox_tar())]).trim().to_string();
    extra_image(&env, "unused");

    let out = env.ok(&["system", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(&done_id), "{out}");
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert!(!out.contains("Deleted Volumes:"), "{out}");
    let left = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left, "up\n");
    let images = image_ids(&env);
    assert_eq!(
        images.len(),
        2,
        "bb (in use) and the tagged unused image stay"
    );
    assert!(!images.contains(&dangling));
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), volume);

    // --volumes: anonymous volumes no container uses; -a: unused images.
    let out = env.ok(&["system", "prune", "-f", "-a", "--volumes"]);
    assert!(
        out.contains(&format!("Deleted Volumes:\n{volume}\n")),
        "{out}"
    );
    assert!(out.contains("untagged: unused:latest"), "{out}");
    assert!(!out.contains("untagged: bb:latest"), "{out}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(image_ids(&env).len(), 1);
    assert_eq!(env.ok(&["exec", "up", "echo", "still-up"]), "still-up\n");
}

/// A tar stream copied into a running container that replaces a directory
/// with a file must not empty a volume mounted at that directory.
#[test]
fn cp_never_empties_a_volume_it_would_replace() {
    let env = TestEnv::with_busybox();
    let vol = tempfile::tempdir().unwrap();
    fs::write(vol.path().join("precious"), "keep me").unwrap();
    let bind = format!("{}:/data", s(vol.path()));
    env.ok(&[
        "run", "-d", "--name", "vol1", "-v", &bind, BB, "sleep", "1000",
    ]);
    // A tar whose entry `data` is a plain file.
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("t.tar");
    let made = Command::new("python3")
        .arg("-c")
        .arg(
            "import io,sys,tarfile\n\
             t=tarfile.open(sys.argv[1],'w')\n\
             i=tarfile.TarInfo('data'); d=b'file now'; i.size=len(d)\n\
             t.addfile(i, io.BytesIO(d)); t.close()",
        )
        .arg(&tar)
        .status()
        .unwrap();
    assert!(made.success());
    let out = berth_with_stdin(&env, &["cp", "-", "vol1:/"], &tar);
    assert!(!out.status.success(), "cp replaced a mounted volume");
    assert_eq!(
        fs::read_to_string(vol.path().join("precious")).unwrap(),
        "keep me"
    );
    env.ok(&["rm", "-f", "vol1"]);
}
