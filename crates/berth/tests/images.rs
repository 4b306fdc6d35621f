mod common;

// Images, black box: `import` (plain, gzip, zstd, stdin), `images` and its output
// options, reference normalisation, `tag`, `rmi`, `image inspect`, and hostile
// tarballs that try to write outside the layer directory.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

/// A name no other test (in this or another process) uses, for paths on the host.
fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "berth-{tag}-{}-{}-{nanos:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Asserts `s` is exactly `sha256:<64 lower-case hex>` plus a newline; returns the ID.
fn assert_image_id_line(s: &str) -> String {
    let id = s
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("import output does not end in a newline: {s:?}"));
    let hex = id
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("import did not print sha256:<hex>: {s:?}"));
    assert!(
        hex.len() == 64 && is_hex(hex),
        "import did not print sha256:<64 hex>: {s:?}"
    );
    id.to_string()
}

/// `sha256:<hex>` of a file, by the system's sha256sum.
fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sha256sum: {e}"));
    assert!(out.status.success(), "sha256sum {} failed", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    assert_eq!(hex.len(), 64, "sha256sum printed {text:?}");
    format!("sha256:{hex}")
}

/// Runs `prog ARGS` with stdout written to `out` (gzip -c, zstd -c).
fn compress_with(prog: &str, args: &[&str], input: &Path, out: &Path) {
    let file = File::create(out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let status = Command::new(prog)
        .args(args)
        .arg(input)
        .stdin(Stdio::null())
        .stdout(file)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    assert!(
        status.success(),
        "{prog} {args:?} {} failed",
        input.display()
    );
}

/// Makes a tar file at `out` with Python's tarfile module (GNU format), from
/// `entries` (each `{"name", "type": file|dir|symlink|hardlink|char|block,
/// "target", "data", "major", "minor"}`), after the members of `base` if given.
/// Names are written exactly as given: tarfile does not sanitise on write.
fn make_tar(out: &Path, base: Option<&Path>, entries: &[Value]) {
    const SCRIPT: &str = r#"
import io, json, sys, tarfile
spec = json.load(sys.stdin)
kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}
with tarfile.open(spec["out"], "w", format=tarfile.GNU_FORMAT) as out:
    if spec["base"]:
        with tarfile.open(spec["base"]) as base:
            for m in base.getmembers():
                out.addfile(m, base.extractfile(m) if m.isfile() else None)
    for e in spec["entries"]:
        ti = tarfile.TarInfo(e["name"])
        ti.type = kinds[e["type"]]
        ti.mode = 0o755 if e["type"] == "dir" else 0o644
        ti.mtime = 0
        ti.linkname = e.get("target", "")
        ti.devmajor = e.get("major", 0)
        ti.devminor = e.get("minor", 0)
        data = e.get("data", "").encode()
        if ti.type == tarfile.REGTYPE:
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))
        else:
            out.addfile(ti)
"#;
    let spec = json!({
        "out": path_str(out),
        "base": base.map(path_str),
        "entries": entries,
    });
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        stdin
            .write_all(spec.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("writing to python3: {e}"));
    }
    let out_put = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        out_put.status.success(),
        "python3 tarfile failed: {}",
        String::from_utf8_lossy(&out_put.stderr)
    );
}

fn file(name: &str, data: &str) -> Value {
    json!({"name": name, "type": "file", "data": data})
}

fn symlink(name: &str, target: &str) -> Value {
    json!({"name": name, "type": "symlink", "target": target})
}

/// The entries of `ROOT/layers/` (none when it does not exist).
fn layer_dirs(env: &TestEnv) -> Vec<String> {
    let dir = env.root.path().join("layers");
    match fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| {
                e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    }
}

/// Asserts the store holds no image and no layer directory (nor a temp one).
fn assert_store_empty(env: &TestEnv, what: &str) {
    assert_eq!(env.ok(&["images", "-q"]), "", "{what}: images -q not empty");
    assert!(
        layer_dirs(env).is_empty(),
        "{what}: left {:?} in {}/layers",
        layer_dirs(env),
        env.root.path().display()
    );
}

/// `berth import FILE` must fail: one line on stderr, naming `mention`; nothing stored.
fn assert_import_refused(env: &TestEnv, tar: &Path, mention: &str) {
    let out = env.run(&["import", path_str(tar)]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "import of {} succeeded: stdout {:?}",
        tar.display(),
        stdout(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "import exit code; stderr {err:?}"
    );
    assert_eq!(stdout(&out), "", "a refused import printed an ID");
    let line = err.trim_end_matches('\n');
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "expected a one-line error, got {err:?}"
    );
    assert!(
        line.contains(mention),
        "error does not mention {mention:?}: {err:?}"
    );
    assert_store_empty(env, &format!("after refusing {}", tar.display()));
}

/// The `berth images` table: header cells and rows, split on runs of 2+ spaces.
fn images_table(env: &TestEnv, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut all = vec!["images"];
    all.extend_from_slice(args);
    let text = env.ok(&all);
    let mut lines = text.lines().map(|l| {
        l.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let header = lines.next().unwrap_or_default();
    (header, lines.collect())
}

fn inspect_image(env: &TestEnv, what: &str) -> Value {
    let text = env.ok(&["image", "inspect", what]);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("image inspect {what}: not JSON ({e}): {text}"));
    match v {
        Value::Array(mut a) if a.len() == 1 => a.swap_remove(0),
        other => panic!("image inspect {what}: expected one object, got {other}"),
    }
}

fn image_id(env: &TestEnv, what: &str) -> String {
    inspect_image(env, what)["Id"]
        .as_str()
        .unwrap_or_else(|| panic!("image inspect {what}: no Id"))
        .to_string()
}

// ---------------------------------------------------------------------------
// import

#[test]
fn import_plain_gzip_zstd_and_stdin_give_the_same_layer() {
    let env = TestEnv::new();
    let tar = busybox_tar();
    let dir = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let gz = dir.path().join("bb.tar.gz");
    let zst = dir.path().join("bb.tar.zst");
    compress_with("gzip", &["-c", "-n"], &tar, &gz);
    compress_with("zstd", &["-q", "-c"], &tar, &zst);
    // The diff_id of the one layer is the sha256 of the uncompressed tar.
    let diff_id = sha256_of(&tar);

    let mut ids = Vec::new();
    for (file, reference) in [(&tar, "plain:1"), (&gz, "gzipped:2"), (&zst, "zstded:3")] {
        let id = assert_image_id_line(&env.ok(&["import", path_str(file), reference]));
        ids.push(id);
    }
    let mut cmd = env.berth(&["import", "-", "fromstdin"]);
    cmd.stdin(File::open(&tar).unwrap_or_else(|e| panic!("open tar: {e}")));
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "import - failed: {}", stderr(&out));
    ids.push(assert_image_id_line(&stdout(&out)));

    for (reference, id) in ["plain:1", "gzipped:2", "zstded:3", "fromstdin:latest"]
        .iter()
        .zip(&ids)
    {
        let v = inspect_image(&env, reference);
        assert_eq!(v["Id"], json!(id), "{reference}");
        assert_eq!(v["RepoTags"], json!([reference]), "{reference}");
        assert_eq!(v["RootFS"]["Layers"], json!([diff_id]), "{reference}");
        let out = env.ok(&[
            "run",
            "--rm",
            reference,
            "sh",
            "-c",
            "echo hi from $0",
            reference,
        ]);
        assert_eq!(out, format!("hi from {reference}\n"));
    }
    // All four share one layer directory, named by the layer's chain ID.
    assert_eq!(
        layer_dirs(&env),
        vec![diff_id.trim_start_matches("sha256:").to_string()]
    );

    // Without a reference: an untagged image.
    let id = assert_image_id_line(&env.ok(&["import", path_str(&tar)]));
    let v = inspect_image(&env, &id);
    assert_eq!(v["RepoTags"], json!([]));
    let (_, rows) = images_table(&env, &[]);
    let short = &id["sha256:".len()..][..12];
    assert!(
        rows.iter()
            .any(|r| r.len() >= 3 && r[0] == "<none>" && r[1] == "<none>" && r[2] == short),
        "no <none> <none> {short} row in {rows:?}"
    );
}

#[test]
fn images_table_quiet_no_trunc_and_format() {
    let env = TestEnv::with_busybox();
    let id = image_id(&env, BB);
    let hex = id.trim_start_matches("sha256:");

    let (header, rows) = images_table(&env, &[]);
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.len(), 5, "{row:?}");
    assert_eq!(row[0], "bb");
    assert_eq!(row[1], "latest");
    assert_eq!(row[2], &hex[..12]);
    assert!(row[3].ends_with(" ago"), "CREATED {:?}", row[3]);
    let size = &row[4];
    let unit_at = size
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or_else(|| panic!("SIZE {size:?} has no unit"));
    assert!(unit_at > 0, "SIZE {size:?}");
    assert!(
        ["B", "kB", "MB", "GB"].contains(&&size[unit_at..]),
        "SIZE {size:?}"
    );
    size[..unit_at]
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("SIZE {size:?}: {e}"));

    assert_eq!(env.ok(&["images", "-q"]), format!("{}\n", &hex[..12]));
    assert_eq!(env.ok(&["image", "ls", "-q"]), format!("{}\n", &hex[..12]));

    let (header, rows) = images_table(&env, &["--no-trunc"]);
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][2], id);

    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "bb:latest\n"
    );

    env.ok(&["tag", BB, "example.com:5000/team/app:v1"]);
    let mut listed: Vec<String> = env
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(listed, ["bb:latest", "example.com:5000/team/app:v1"]);
}

#[test]
fn references_are_normalised_and_image_ids_resolve() {
    let env = TestEnv::with_busybox();
    let id = image_id(&env, BB);
    let hex = id.trim_start_matches("sha256:");

    for name in [
        "bb:latest",
        "docker.io/library/bb",
        "docker.io/library/bb:latest",
        "library/bb",
        &id,
        &hex[..12],
    ] {
        assert_eq!(image_id(&env, name), id, "image inspect {name}");
    }
    for name in ["docker.io/library/bb", &hex[..12], &hex[..6], &id] {
        assert_eq!(
            env.ok(&["run", "--rm", name, "echo", "ran"]),
            "ran\n",
            "run {name}"
        );
    }
    // The container records the image as the user named it; it runs the same image.
    let cid = env.ok(&["create", "docker.io/library/bb:latest", "true"]);
    let c = env.inspect(cid.trim());
    assert_eq!(c["Image"], json!(id));

    // A fully qualified tag reads back in its familiar form.
    env.ok(&["tag", "docker.io/library/bb", "docker.io/library/other:2"]);
    assert_eq!(image_id(&env, "other:2"), id);
    assert_eq!(
        inspect_image(&env, "other:2")["RepoTags"]
            .as_array()
            .map(|a| {
                let mut v: Vec<String> = a
                    .iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default(),
        ["bb:latest", "other:2"]
    );
}

#[test]
fn image_inspect_has_id_repotags_and_layers() {
    let env = TestEnv::with_busybox();
    let v = inspect_image(&env, BB);
    let id = v["Id"].as_str().unwrap_or_default();
    assert!(
        id.strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && is_hex(h)),
        "Id {id:?}"
    );
    assert_eq!(v["RepoTags"], json!(["bb:latest"]));
    assert_eq!(v["RootFS"]["Type"], json!("layers"));
    assert_eq!(v["RootFS"]["Layers"], json!([sha256_of(&busybox_tar())]));
    assert_eq!(v["Os"], json!("linux"));

    let (_, err) = env.fails(&["image", "inspect", "nosuchimage"], 1);
    assert!(err.contains("nosuchimage"), "{err}");
}

#[test]
fn unknown_image_for_run_is_exit_125() {
    let env = TestEnv::with_busybox();
    let (_, err) = env.fails(&["run", "--rm", "x"], 125);
    assert!(
        err.contains("Unable to find image 'x:latest' locally"),
        "{err}"
    );
    let (_, err) = env.fails(&["run", "--rm", "docker.io/library/x:v1", "true"], 125);
    assert!(err.contains("Unable to find image 'x:v1' locally"), "{err}");
    let (_, err) = env.fails(&["create", "nope/nothing:here"], 1);
    assert!(
        err.contains("Unable to find image 'nope/nothing:here' locally"),
        "{err}"
    );
    // Nothing was created on the way.
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

// ---------------------------------------------------------------------------
// tag and rmi

#[test]
fn tag_then_rmi_untags_then_deletes_the_image_and_its_layer() {
    let env = TestEnv::with_busybox();
    let id = image_id(&env, BB);
    let layers = layer_dirs(&env);
    assert_eq!(layers.len(), 1, "{layers:?}");

    env.ok(&["tag", BB, "bb:v2"]);
    env.ok(&["image", "tag", "bb:v2", "myrepo/bb"]);
    assert_eq!(image_id(&env, "bb:v2"), id);
    assert_eq!(image_id(&env, "myrepo/bb:latest"), id);

    // Several tags: rmi only untags.
    assert_eq!(env.ok(&["rmi", "bb:v2"]), "Untagged: bb:v2\n");
    assert_eq!(
        env.ok(&["rmi", "myrepo/bb"]),
        "Untagged: myrepo/bb:latest\n"
    );
    env.fails(&["image", "inspect", "bb:v2"], 1);
    assert_eq!(image_id(&env, BB), id);
    assert_eq!(layer_dirs(&env), layers);

    // The last tag: the image and its layer directory go.
    let out = env.ok(&["rmi", BB]);
    assert!(out.contains("Untagged: bb:latest\n"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}\n")), "{out}");
    assert_store_empty(&env, "after rmi of the last tag");
    let (_, err) = env.fails(&["rmi", BB], 1);
    assert!(err.contains("No such image"), "{err}");
}

#[test]
fn rmi_refuses_while_a_stopped_container_uses_the_image() {
    let env = TestEnv::with_busybox();
    let id = image_id(&env, BB);
    let short_image = &id["sha256:".len()..][..12];
    env.ok(&["run", "--name", "user", BB, "echo", "hello"]);
    let cid = env.inspect("user")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(env.inspect("user")["State"]["Status"], json!("exited"));

    for what in [BB, short_image, id.as_str()] {
        let (_, err) = env.fails(&["rmi", what], 1);
        let line = err.trim_end();
        assert!(!line.contains('\n'), "not one line: {err:?}");
        // Docker's wording differs by how the image was named.
        let expected = if what == BB {
            format!("container {} is using its referenced image", &cid[..12])
        } else {
            format!("image is being used by stopped container {}", &cid[..12])
        };
        assert!(line.contains(&expected), "rmi {what}: {err:?}");
    }
    assert_eq!(env.ok(&["images", "-q"]), format!("{short_image}\n"));
    assert_eq!(image_id(&env, BB), id);

    // Forced, as Docker: untagged and deleted, since the container is not running ...
    let out = env.ok(&["rmi", "-f", BB]);
    assert!(out.contains("Untagged: bb:latest\n"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}\n")), "rmi -f: {out:?}");
    assert_eq!(env.ok(&["images", "-q"]), "", "rmi -f left the image");
    // ... and the container keeps its root filesystem: it still starts.
    assert_eq!(env.ok(&["start", "-a", "user"]), "hello\n");
}

/// `create IMAGE` and `rmi IMAGE` at once: either the create wins (the rmi
/// refuses, naming the container, and the container starts) or the rmi wins
/// (the create finds no image and leaves nothing) — never a container whose
/// image and layers are gone.
#[test]
fn create_racing_rmi_never_leaves_a_container_without_its_image() {
    let env = TestEnv::with_busybox();
    let tar = busybox_tar();
    let tar = path_str(&tar);
    let (mut create_won, mut rmi_won) = (0, 0);
    for round in 0..20 {
        if round > 0 {
            env.ok(&["import", tar, BB]);
        }
        let image = image_id(&env, BB);
        let (created, removed) = std::thread::scope(|s| {
            let c = s.spawn(|| env.run(&["create", BB, "echo", "alive"]));
            let r = s.spawn(|| env.run(&["rmi", BB]));
            (
                c.join()
                    .unwrap_or_else(|_| panic!("create thread panicked")),
                r.join().unwrap_or_else(|_| panic!("rmi thread panicked")),
            )
        });
        let what = format!(
            "round {round}: create {:?} {:?} {:?}; rmi {:?} {:?} {:?}",
            created.status,
            stdout(&created),
            stderr(&created),
            removed.status,
            stdout(&removed),
            stderr(&removed)
        );
        match (created.status.success(), removed.status.success()) {
            (true, false) => {
                create_won += 1;
                let cid = stdout(&created).trim().to_string();
                assert!(is_full_id(&cid), "{what}");
                assert_eq!(removed.status.code(), Some(1), "{what}");
                let expected = format!(
                    "conflict: unable to remove repository reference \"bb\" (must force) - container {} is using its referenced image {}\n",
                    &cid[..12],
                    &image["sha256:".len()..][..12]
                );
                assert!(stderr(&removed).ends_with(&expected), "{what}");
                assert_eq!(stderr(&removed).lines().count(), 1, "{what}");
                assert_eq!(env.ok(&["start", "-a", &cid]), "alive\n", "{what}");
                env.ok(&["rm", &cid]);
                env.ok(&["rmi", BB]);
            }
            (false, true) => {
                rmi_won += 1;
                // `create` answers 1 (the docker CLI's), `run` would be 125.
                assert_eq!(created.status.code(), Some(1), "{what}");
                // Not here any more: pulled, from a registry the tests
                // cannot reach.
                assert!(
                    stderr(&created).contains("Unable to find image 'bb:latest' locally"),
                    "{what}"
                );
                assert_eq!(env.ok(&["ps", "-aq"]), "", "{what}");
            }
            _ => panic!("exactly one of create and rmi must succeed: {what}"),
        }
        assert_store_empty(&env, &what);
        let leftover = fs::read_dir(env.root.path().join("containers"))
            .map(|rd| rd.count())
            .unwrap_or(0);
        assert_eq!(leftover, 0, "{what}: a container directory was left");
    }
    eprintln!("create won {create_won} rounds, rmi won {rmi_won}");
}

// ---------------------------------------------------------------------------
// Hostile tarballs

#[test]
fn dot_dot_entries_are_refused_and_leave_nothing() {
    let env = TestEnv::new();
    let dir = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let target = std::env::temp_dir().join(unique("dotdot"));
    let deep = format!("../../../../../../../../..{}", path_str(&target));
    for (i, (name, would_land)) in [
        // Relative to ROOT/layers/tmp-*: one and two levels up.
        ("../evil", env.root.path().join("layers/evil")),
        ("./../../evil", env.root.path().join("evil")),
        ("ok/../../evil", env.root.path().join("layers/evil")),
        (deep.as_str(), target.clone()),
    ]
    .iter()
    .enumerate()
    {
        let tar = dir.path().join(format!("dotdot-{i}.tar"));
        // A valid entry first, so that something was extracted before the refusal.
        make_tar(
            &tar,
            None,
            &[
                json!({"name": "ok", "type": "dir"}),
                file("ok/file", "fine"),
                file(name, "pwned"),
            ],
        );
        assert_import_refused(&env, &tar, &format!("{name:?}"));
        assert!(
            fs::symlink_metadata(would_land).is_err(),
            "{name}: something was written at {}",
            would_land.display()
        );
    }
}

#[test]
fn hard_link_out_of_the_layer_is_refused() {
    let env = TestEnv::new();
    let dir = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let before = fs::metadata("/etc/passwd").unwrap_or_else(|e| panic!("/etc/passwd: {e}"));
    for (i, target) in [
        "../../etc/passwd",
        "/etc/passwd",
        "../../../../../../etc/passwd",
    ]
    .iter()
    .enumerate()
    {
        let tar = dir.path().join(format!("hard-{i}.tar"));
        make_tar(
            &tar,
            None,
            &[
                file("ok", "fine"),
                json!({"name": "passwd", "type": "hardlink", "target": target}),
            ],
        );
        assert_import_refused(&env, &tar, "\"passwd\"");
    }
    let after = fs::metadata("/etc/passwd").unwrap_or_else(|e| panic!("/etc/passwd: {e}"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (after.ino(), after.nlink(), after.len()),
        (before.ino(), before.nlink(), before.len()),
        "/etc/passwd changed"
    );
}

#[test]
fn device_nodes_are_refused() {
    let env = TestEnv::new();
    let dir = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for (i, (name, kind, major, minor)) in [
        ("dev/mem", "char", 1, 1),
        ("dev/kmsg", "char", 1, 11),
        ("sda", "block", 8, 0),
    ]
    .iter()
    .enumerate()
    {
        let tar = dir.path().join(format!("dev-{i}.tar"));
        make_tar(
            &tar,
            None,
            &[
                json!({"name": "dev", "type": "dir"}),
                json!({"name": name, "type": kind, "major": major, "minor": minor}),
            ],
        );
        assert_import_refused(&env, &tar, &format!("{name:?}"));
    }
}

#[test]
fn writes_through_symlinks_stay_inside_the_rootfs() {
    let env = TestEnv::new();
    let dir = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let abs = unique("abs");
    let rel = unique("rel");
    let top = unique("top");
    let host_abs = Path::new("/tmp").join(&abs);
    let host_rel = Path::new("/tmp").join(&rel);
    let host_top = Path::new("/").join(&top);
    // Enough `..` to climb from ROOT/layers/<dir> to `/` (at least six, as the issue has).
    let depth = env.root.path().components().count() + 2;
    let up_target = format!("{}tmp/{rel}", "../".repeat(depth.max(6)));
    let tar = dir.path().join("symlinks.tar");
    make_tar(
        &tar,
        Some(&busybox_tar()),
        &[
            symlink("link", &format!("/tmp/{abs}")),
            file("link/pwned", "absolute"),
            symlink("rootlink", "/"),
            file(&format!("rootlink/{top}"), "root"),
            symlink("up", &up_target),
            file("up/pwned", "relative"),
        ],
    );
    let id = assert_image_id_line(&env.ok(&["import", path_str(&tar), "hostile"]));
    for p in [&host_abs, &host_rel, &host_top] {
        assert!(
            fs::symlink_metadata(p).is_err(),
            "the import wrote {} on the host",
            p.display()
        );
    }
    assert_eq!(image_id(&env, "hostile"), id);

    let script = format!(
        "cat /tmp/{abs}/pwned; echo; cat /{top}; echo; cat /tmp/{rel}/pwned; echo; \
         readlink /link; readlink /rootlink; readlink /up"
    );
    let out = env.ok(&["run", "--rm", "hostile", "sh", "-c", &script]);
    assert_eq!(
        out,
        format!("absolute\nroot\nrelative\n/tmp/{abs}\n/\n{up_target}\n")
    );
    for p in [&host_abs, &host_rel, &host_top] {
        assert!(
            fs::symlink_metadata(p).is_err(),
            "running the image wrote {} on the host",
            p.display()
        );
    }
}

#[test]
fn corrupt_or_truncated_compressed_tarballs_are_refused() {
    let env = TestEnv::new();
    let dir = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let tar = busybox_tar();
    let gz = dir.path().join("bb.tar.gz");
    let zst = dir.path().join("bb.tar.zst");
    compress_with("gzip", &["-c", "-n"], &tar, &gz);
    compress_with("zstd", &["-q", "-c"], &tar, &zst);
    let gz_bytes = fs::read(&gz).unwrap_or_else(|e| panic!("read gz: {e}"));
    let zst_bytes = fs::read(&zst).unwrap_or_else(|e| panic!("read zst: {e}"));

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip cut in half", gz_bytes[..gz_bytes.len() / 2].to_vec()),
        // Only the trailer (CRC32 and size) is missing: every tar member is intact.
        (
            "gzip without its trailer",
            gz_bytes[..gz_bytes.len() - 8].to_vec(),
        ),
        (
            "zstd cut in half",
            zst_bytes[..zst_bytes.len() / 2].to_vec(),
        ),
    ];
    let mut flipped = gz_bytes.clone();
    let n = flipped.len();
    flipped[n - 8] ^= 0xff; // the CRC32 no longer matches
    cases.push(("gzip with a wrong CRC", flipped));
    let mut garbled = gz_bytes.clone();
    for b in &mut garbled[n / 2..n / 2 + 64] {
        *b ^= 0x5a;
    }
    cases.push(("gzip garbled in the middle", garbled));

    for (i, (what, bytes)) in cases.iter().enumerate() {
        let path: PathBuf = dir.path().join(format!("bad-{i}"));
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write: {e}"));
        let out = env.run(&["import", path_str(&path), "bad"]);
        assert!(
            !out.status.success(),
            "{what}: import succeeded with {}",
            stdout(&out)
        );
        let err = stderr(&out);
        assert!(
            !err.trim().is_empty() && !err.trim_end().contains('\n'),
            "{what}: expected a one-line error, got {err:?}"
        );
        assert_store_empty(&env, what);
    }
    // The intact one still imports, under the same name.
    assert_image_id_line(&env.ok(&["import", path_str(&gz), "bad"]));
}

/// `import -c`: the image gets the instructions (`commit -c`'s set); a bad
/// one is refused before anything is stored.
#[test]
fn import_applies_changes() {
    let env = TestEnv::new();
    let tar = busybox_tar();
    let tar = tar.to_str().unwrap();
    env.ok(&[
        "import",
        "-c",
        "CMD [\"echo\",\"imported\"]",
        "--change",
        "ENV A=1",
        tar,
        "bbc",
    ]);
    assert_eq!(env.ok(&["run", "--rm", "bbc"]), "imported\n");
    assert_eq!(
        env.ok(&["run", "--rm", "bbc", "sh", "-c", "echo $A"]),
        "1\n"
    );
    let (_, err) = env.fails(&["import", "-c", "BOGUS x", tar, "bad"], 1);
    assert_eq!(err, "Error: bogus is not a valid change command\n");
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);
}

/// An image deeper than mount(2)'s one page of options holds (about 40
/// layers here): 70 layers, each committed on the last, run and exported
/// (Docker's overlay2 allows 125).
#[test]
fn an_image_of_70_layers_runs_and_exports() {
    let env = TestEnv::with_busybox();
    let mut base = BB.to_string();
    for i in 0..70 {
        let c = format!("c{i}");
        env.ok(&["run", "--name", &c, &base, "touch", &format!("/f{i}")]);
        let img = format!("deep{i}");
        env.ok(&["commit", &c, &img]);
        env.ok(&["rm", &c]);
        base = img;
    }
    let layers = env.inspect_image(&base)["RootFS"]["Layers"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(layers, 71);
    let out = env.ok(&["run", "--rm", &base, "sh", "-c", "ls / | grep -c '^f'"]);
    assert_eq!(out.trim(), "70");
    env.ok(&["create", "--name", "stopped", &base, "true"]);
    let exported = output_with_timeout(env.berth(&["export", "stopped"]), COMMAND_TIMEOUT);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let names = String::from_utf8_lossy(&exported.stdout);
    assert!(names.contains("f69") && names.contains("f0"));
}
