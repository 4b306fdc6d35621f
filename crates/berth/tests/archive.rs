mod common;

// `save` and `load`, black box: round trips, several images in one archive,
// interoperability with skopeo and umoci (Docker archives, OCI layouts, gzip
// and zstd layers), bad archives refused without a trace, and `kill -9`
// during a load.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

fn scratch() -> TempDir {
    tempfile::Builder::new()
        .prefix("berth-archive-test.")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"))
}

/// Runs a host tool, asserts success, returns stdout.
fn tool(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo(args: &[&str]) -> String {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    tool("skopeo", &all)
}

/// `tar -C dir -cf out .`: an archive of a directory's contents (names start with `./`).
fn tar_dir(dir: &Path, out: &Path) {
    tool("tar", &["-C", path_str(dir), "-cf", path_str(out), "."]);
}

fn untar(archive: &Path, dir: &Path) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    tool("tar", &["-C", path_str(dir), "-xf", path_str(archive)]);
}

/// The sha256 hex of a file.
fn sha256_hex(path: &Path) -> String {
    let text = tool("sha256sum", &[path_str(path)]);
    let hex = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(hex.len(), 64, "sha256sum printed {text:?}");
    hex
}

fn read_json(path: &Path) -> Value {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Stores `data` as a blob of an extracted layout; returns its hex.
fn put_blob(layout: &Path, data: &[u8]) -> String {
    let tmp = layout.join("blob.tmp");
    write_file(&tmp, data);
    let hex = sha256_hex(&tmp);
    fs::rename(&tmp, layout.join("blobs/sha256").join(&hex))
        .unwrap_or_else(|e| panic!("rename blob: {e}"));
    hex
}

fn image_id(env: &TestEnv, name: &str) -> String {
    let v = env.inspect(name);
    v["Id"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no Id in {v}"))
        .to_string()
}

fn save(env: &TestEnv, dir: &Path, file: &str, images: &[&str]) -> PathBuf {
    let out = dir.join(file);
    let mut args = vec!["save", "-o", path_str(&out)];
    args.extend_from_slice(images);
    let stdout = env.ok(&args);
    assert_eq!(stdout, "", "save -o printed something");
    out
}

fn load(env: &TestEnv, archive: &Path) -> String {
    env.ok(&["load", "-i", path_str(archive)])
}

/// Entry names of a directory under the store root (none when absent).
fn entries(env: &TestEnv, sub: &str) -> Vec<String> {
    let dir = env.root.path().join(sub);
    let mut v: Vec<String> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    };
    v.sort();
    v
}

/// What a refused load must not change.
#[derive(Debug, PartialEq, Eq)]
struct StoreState {
    images: String,
    layers: Vec<String>,
    blobs: Vec<String>,
    tmp: Vec<String>,
}

fn store_state(env: &TestEnv) -> StoreState {
    StoreState {
        images: env.ok(&["images", "-q", "--no-trunc"]),
        layers: entries(env, "layers"),
        blobs: entries(env, "blobs/sha256"),
        tmp: entries(env, "tmp"),
    }
}

/// `load -i archive` fails with one line naming `mention`, and the store is as before.
fn assert_load_refused(env: &TestEnv, archive: &Path, mention: &str) {
    let before = store_state(env);
    let (stdout, stderr) = env.fails(&["load", "-i", path_str(archive)], 1);
    assert_eq!(stdout, "", "refused load printed on stdout");
    assert_eq!(
        stderr.lines().count(),
        1,
        "not one line of error for {}: {stderr:?}",
        archive.display()
    );
    assert!(
        stderr.starts_with("Error: ") && stderr.contains(mention),
        "error for {} does not mention {mention:?}: {stderr:?}",
        archive.display()
    );
    assert_eq!(
        store_state(env),
        before,
        "a refused load of {} changed the store",
        archive.display()
    );
}

/// A tar archive of `(name, content)` regular files, by Python's tarfile.
fn make_tar(out: &Path, files: &[(&str, &[u8])]) {
    const SCRIPT: &str = r#"
import io, json, sys, tarfile
spec = json.load(sys.stdin)
with tarfile.open(spec["out"], "w", format=tarfile.PAX_FORMAT) as out:
    for name, data in spec["files"]:
        data = bytes(data)
        ti = tarfile.TarInfo(name)
        ti.mode = 0o644
        ti.mtime = 0
        ti.size = len(data)
        out.addfile(ti, io.BytesIO(data))
"#;
    let files: Vec<Value> = files.iter().map(|(n, d)| json!([n, d])).collect();
    let spec = json!({"out": path_str(out), "files": files});
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("no stdin"))
        .write_all(spec.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("writing to python3: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        out.status.success(),
        "python3 tarfile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A berth store with `bb` plus the archive `berth save bb` made of it.
fn saved_busybox(dir: &Path) -> (TestEnv, PathBuf, String) {
    let env = TestEnv::with_busybox();
    let archive = save(&env, dir, "bb.tar", &[BB]);
    let id = image_id(&env, BB);
    (env, archive, id)
}

// ---------------------------------------------------------------------------
// Round trips

#[test]
fn save_then_load_round_trips_into_a_fresh_store() {
    let dir = scratch();
    let (env, archive, id) = saved_busybox(dir.path());

    // Deterministic: the same image gives the same bytes, to a file or stdout.
    let again = save(&env, dir.path(), "again.tar", &[BB]);
    let bytes = fs::read(&archive).unwrap_or_else(|e| panic!("read archive: {e}"));
    assert_eq!(bytes, fs::read(&again).unwrap_or_default());
    let out = env.run(&["save", BB]);
    assert!(out.status.success(), "save to stdout failed");
    assert!(out.stdout == bytes, "save to stdout differs from save -o");

    let fresh = TestEnv::new();
    assert_eq!(load(&fresh, &archive), "Loaded image: bb:latest\n");
    assert_eq!(image_id(&fresh, BB), id, "the image ID changed on the way");
    assert_eq!(fresh.ok(&["run", "--rm", BB, "echo", "hi"]), "hi\n");

    // Loading again (from stdin, -q) changes nothing and prints the same.
    let before = store_state(&fresh);
    let mut cmd = fresh.berth(&["load", "-q"]);
    cmd.stdin(File::open(&archive).unwrap_or_else(|e| panic!("open archive: {e}")));
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "second load failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: bb:latest\n"
    );
    assert_eq!(
        store_state(&fresh),
        before,
        "a second load changed the store"
    );
    assert!(before.tmp.is_empty(), "load left {:?} in tmp", before.tmp);
    assert_eq!(before.layers.len(), 1);
    assert_eq!(before.blobs.len(), 1, "only the layer blob is kept");
}

#[test]
fn several_images_in_one_archive() {
    let dir = scratch();
    let env = TestEnv::with_busybox();
    env.ok(&["tag", BB, "bb2:v1"]);
    env.ok(&["tag", BB, "bb:two"]);
    let other_tar = dir.path().join("other.tar");
    make_tar(&other_tar, &[("hello.txt", b"hello\n")]);
    env.ok(&["import", path_str(&other_tar), "other:1"]);
    let lone_tar = dir.path().join("lone.tar");
    make_tar(&lone_tar, &[("lone.txt", b"alone\n")]);
    let lone = env.ok(&["import", path_str(&lone_tar)]).trim().to_string();
    let bb_id = image_id(&env, BB);

    // A repository name without a tag takes every tag of it.
    let archive = save(
        &env,
        dir.path(),
        "m.tar",
        &["bb", "bb2:v1", "other:1", &lone],
    );
    let layout = dir.path().join("m");
    untar(&archive, &layout);
    let manifest = read_json(&layout.join("manifest.json"));
    let items = manifest.as_array().unwrap_or_else(|| panic!("{manifest}"));
    assert_eq!(items.len(), 3, "{manifest}");
    assert_eq!(
        items[0]["RepoTags"],
        json!(["bb:latest", "bb:two", "bb2:v1"])
    );
    assert_eq!(items[1]["RepoTags"], json!(["other:1"]));
    assert_eq!(items[2]["RepoTags"], Value::Null);
    let index = read_json(&layout.join("index.json"));
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{index}"))
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/bb:latest",
            "docker.io/library/bb:two",
            "docker.io/library/bb2:v1",
            "docker.io/library/other:1",
            ""
        ]
    );
    let repositories = read_json(&layout.join("repositories"));
    assert!(repositories["bb"]["two"].is_string(), "{repositories}");

    let fresh = TestEnv::new();
    assert_eq!(
        load(&fresh, &archive),
        format!(
            "Loaded image: bb:latest\nLoaded image: bb:two\nLoaded image: bb2:v1\n\
             Loaded image: other:1\nLoaded image ID: {lone}\n"
        )
    );
    // Three images (`images -q` prints one line per tag, as docker's).
    let ids = fresh.ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(ids.lines().count(), 5, "{ids}");
    let unique: std::collections::BTreeSet<&str> = ids.lines().collect();
    assert_eq!(unique.len(), 3, "{ids}");
    assert_eq!(image_id(&fresh, "bb2:v1"), bb_id);
    assert_eq!(image_id(&fresh, &lone), lone);
    assert_eq!(
        entries(&fresh, "layers").len(),
        3,
        "shared layers stored once"
    );
    assert_eq!(fresh.ok(&["run", "--rm", "bb2:v1", "echo", "ok"]), "ok\n");

    // Saved by ID alone: no tags, and it loads as an ID.
    let by_id = save(&env, dir.path(), "id.tar", &[&bb_id]);
    let other = TestEnv::new();
    assert_eq!(load(&other, &by_id), format!("Loaded image ID: {bb_id}\n"));
}

#[test]
fn save_refuses_a_terminal_and_unknown_images() {
    let dir = scratch();
    let env = TestEnv::with_busybox();
    // `script` gives the command a terminal as its stdout.
    let cmd = env.berth(&["save", BB]);
    let line = format!(
        "{} {}",
        path_str(berth_bin()),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run script: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // The docker CLI's own check: its words alone, no "Error:".
    assert_eq!(
        text.trim_end(),
        "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        "{text:?}"
    );

    let target = dir.path().join("nope.tar");
    let (_, stderr) = env.fails(&["save", "-o", path_str(&target), BB, "nope"], 1);
    // A bare name as typed, as Docker's.
    assert_eq!(stderr, "Error: No such image: nope\n");
    assert!(
        fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0) == 0,
        "a failed save left a file"
    );
}

// ---------------------------------------------------------------------------
// Other tools

#[test]
fn skopeo_and_umoci_read_what_berth_saves() {
    let dir = scratch();
    let (_env, archive, id) = saved_busybox(dir.path());
    let a = path_str(&archive);

    let docker: Value = serde_json::from_str(&skopeo(&["inspect", &format!("docker-archive:{a}")]))
        .unwrap_or_else(|e| panic!("skopeo inspect: {e}"));
    let oci: Value = serde_json::from_str(&skopeo(&["inspect", &format!("oci-archive:{a}")]))
        .unwrap_or_else(|e| panic!("skopeo inspect: {e}"));
    assert_eq!(
        docker["Layers"].as_array().map(Vec::len),
        Some(1),
        "{docker}"
    );
    assert_eq!(docker["Layers"], oci["Layers"]);
    let raw: Value =
        serde_json::from_str(&skopeo(&["inspect", "--raw", &format!("oci-archive:{a}")]))
            .unwrap_or_else(|e| panic!("skopeo inspect --raw: {e}"));
    assert_eq!(raw["config"]["digest"], json!(id));
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );

    // Copies verify every digest on the way.
    let d2 = dir.path().join("d2");
    skopeo(&[
        "copy",
        &format!("docker-archive:{a}"),
        &format!("oci:{}", path_str(&d2)),
    ]);
    let d3 = dir.path().join("d3");
    skopeo(&[
        "copy",
        &format!("oci-archive:{a}"),
        &format!("oci:{}:bb:latest", path_str(&d3)),
    ]);
    assert!(d2.join("index.json").is_file() && d3.join("index.json").is_file());

    // umoci finds the image by its tag and unpacks it.
    let layout = dir.path().join("layout");
    untar(&archive, &layout);
    let tags = tool("umoci", &["ls", "--layout", path_str(&layout)]);
    assert_eq!(tags, "latest\n");
    let bundle = dir.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:latest", path_str(&layout)),
            path_str(&bundle),
        ],
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

#[test]
fn archives_made_by_skopeo_load_and_run() {
    let dir = scratch();
    let (src, archive, id) = saved_busybox(dir.path());
    let a = path_str(&archive);

    // OCI layout → Docker archive (skopeo's own: <id>/layer.tar, <hex>.json).
    let oci = dir.path().join("oci");
    skopeo(&[
        "copy",
        &format!("docker-archive:{a}"),
        &format!("oci:{}:bb:latest", path_str(&oci)),
    ]);
    let docker_archive = dir.path().join("skopeo-docker.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:bb:latest", path_str(&oci)),
        &format!("docker-archive:{}:bb:latest", path_str(&docker_archive)),
    ]);
    let env = TestEnv::new();
    assert_eq!(load(&env, &docker_archive), "Loaded image: bb:latest\n");
    assert_eq!(
        env.ok(&["run", "--rm", BB, "echo", "docker-archive"]),
        "docker-archive\n"
    );

    // An oci-archive (a tar of the layout) named by its ref annotation.
    let oci_archive = dir.path().join("skopeo-oci.tar");
    skopeo(&[
        "copy",
        &format!("docker-archive:{a}"),
        &format!("oci-archive:{}:bb:oci", path_str(&oci_archive)),
    ]);
    let env = TestEnv::new();
    assert_eq!(load(&env, &oci_archive), "Loaded image: bb:oci\n");
    assert_eq!(
        env.ok(&["run", "--rm", "bb:oci", "echo", "oci-archive"]),
        "oci-archive\n"
    );
    // The layer's diff_id is the same whatever way it came: one layer dir, named by it.
    let diff_id = src.inspect_image(BB)["RootFS"]["Layers"][0]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("sha256:")
        .to_string();
    assert_eq!(
        env.inspect("bb:oci")["RootFS"]["Layers"][0],
        json!(format!("sha256:{diff_id}"))
    );
    assert_eq!(entries(&env, "layers"), [diff_id]);
    assert_eq!(image_id(&env, "bb:oci").len(), id.len());
}

/// Loads a layout skopeo wrote with compressed layers, checks the blob is kept
/// as it came, and that berth's save of it is read back by skopeo.
fn compressed_round_trip(format: &str, magic: &[u8], media_type: &str) {
    let dir = scratch();
    let (_env, archive, _) = saved_busybox(dir.path());
    let layout = dir.path().join("layout");
    skopeo(&[
        "copy",
        "--dest-compress-format",
        format,
        &format!("docker-archive:{}", path_str(&archive)),
        &format!("oci:{}:bb:latest", path_str(&layout)),
    ]);
    let tar = dir.path().join("layout.tar");
    tar_dir(&layout, &tar);
    // The whole archive compressed too.
    let packed = dir.path().join(format!("layout.tar.{format}"));
    let prog = if format == "gzip" { "gzip" } else { "zstd" };
    let out = File::create(&packed).unwrap_or_else(|e| panic!("create: {e}"));
    let status = Command::new(prog)
        .args(["-c", path_str(&tar)])
        .stdout(out)
        .status()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(status.success());

    let env = TestEnv::new();
    assert_eq!(load(&env, &packed), "Loaded image: bb:latest\n");
    assert_eq!(
        env.ok(&["run", "--rm", BB, "echo", format]),
        format!("{format}\n")
    );
    let blobs = entries(&env, "blobs/sha256");
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let blob = fs::read(env.root.path().join("blobs/sha256").join(&blobs[0]))
        .unwrap_or_else(|e| panic!("read blob: {e}"));
    assert!(
        blob.starts_with(magic),
        "the layer blob was not kept as it came"
    );

    let saved = save(&env, dir.path(), "saved.tar", &[BB]);
    let s = path_str(&saved);
    let raw: Value =
        serde_json::from_str(&skopeo(&["inspect", "--raw", &format!("oci-archive:{s}")]))
            .unwrap_or_else(|e| panic!("skopeo inspect --raw: {e}"));
    assert_eq!(raw["layers"][0]["mediaType"], media_type);
    let copy = dir.path().join("copy");
    skopeo(&[
        "copy",
        &format!("docker-archive:{s}"),
        &format!("oci:{}", path_str(&copy)),
    ]);
    skopeo(&[
        "copy",
        &format!("oci-archive:{s}"),
        &format!("oci:{}:x", path_str(&copy)),
    ]);
    let again = TestEnv::new();
    assert_eq!(load(&again, &saved), "Loaded image: bb:latest\n");
    assert_eq!(image_id(&again, BB), image_id(&env, BB));
}

#[test]
fn gzip_layers_load_and_save() {
    compressed_round_trip(
        "gzip",
        &[0x1f, 0x8b],
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
}

#[test]
fn zstd_layers_load_and_save() {
    compressed_round_trip(
        "zstd",
        &[0x28, 0xb5, 0x2f, 0xfd],
        "application/vnd.oci.image.layer.v1.tar+zstd",
    );
}

// ---------------------------------------------------------------------------
// Bad input

/// The busybox archive extracted, its config and layer named: a base to spoil.
struct Layout {
    dir: PathBuf,
    config_hex: String,
    layer_hex: String,
}

fn extract(archive: &Path, dir: &Path) -> Layout {
    untar(archive, dir);
    let manifest = read_json(&dir.join("manifest.json"));
    let hex = |s: &Value| {
        s.as_str()
            .and_then(|s| s.strip_prefix("blobs/sha256/"))
            .unwrap_or_else(|| panic!("unexpected manifest.json {manifest}"))
            .to_string()
    };
    Layout {
        dir: dir.to_path_buf(),
        config_hex: hex(&manifest[0]["Config"]),
        layer_hex: hex(&manifest[0]["Layers"][0]),
    }
}

impl Layout {
    /// Keeps only one of the two views (`manifest.json` or `index.json`).
    fn docker_only(&self) {
        for f in ["index.json", "oci-layout"] {
            let _ = fs::remove_file(self.dir.join(f));
        }
    }
    fn oci_only(&self) {
        for f in ["manifest.json", "repositories"] {
            let _ = fs::remove_file(self.dir.join(f));
        }
    }
    fn blob(&self, hex: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex)
    }
    fn config(&self) -> Value {
        read_json(&self.blob(&self.config_hex))
    }
    /// A Docker manifest.json for one image.
    fn set_docker_manifest(&self, config: &str, layers: &[String]) {
        let m = json!([{"Config": config, "RepoTags": ["bb:latest"], "Layers": layers}]);
        write_file(&self.dir.join("manifest.json"), m.to_string().as_bytes());
    }
    fn pack(&self, out: &Path) -> PathBuf {
        tar_dir(&self.dir, out);
        out.to_path_buf()
    }
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    let dir = scratch();
    let (env, archive, _) = saved_busybox(dir.path());
    let d = dir.path();
    let bytes = fs::read(&archive).unwrap_or_else(|e| panic!("read: {e}"));

    // Truncated in the middle of the layer; not a tar; empty.
    let cut = d.join("cut.tar");
    write_file(&cut, &bytes[..bytes.len() / 2]);
    assert_load_refused(&env, &cut, "the archive is truncated");
    let text = d.join("text.tar");
    write_file(&text, &[b'x'; 2048]);
    assert_load_refused(&env, &text, "invalid archive: not a tar archive");
    let empty = d.join("empty.tar");
    write_file(&empty, b"");
    assert_load_refused(&env, &empty, "the archive is empty");

    // A Docker config named by a digest its content does not have.
    let l = extract(&archive, &d.join("cfg"));
    l.docker_only();
    let mut config = l.config();
    config["author"] = json!("mallory");
    let name = format!("{}.json", l.config_hex);
    write_file(&l.dir.join(&name), config.to_string().as_bytes());
    l.set_docker_manifest(&name, &[format!("blobs/sha256/{}", l.layer_hex)]);
    let bad = l.pack(&d.join("bad-config.tar"));
    assert_load_refused(
        &env,
        &bad,
        "the config of bb:latest does not match its digest",
    );

    // OCI blobs whose content is not what their digest says (layer, config).
    let l = extract(&archive, &d.join("oci-layer"));
    l.oci_only();
    write_file(&l.blob(&l.layer_hex), b"not the layer");
    let bad = l.pack(&d.join("bad-layer.tar"));
    assert_load_refused(&env, &bad, "does not match its digest");
    let l = extract(&archive, &d.join("oci-config"));
    l.oci_only();
    write_file(&l.blob(&l.config_hex), b"{}");
    let bad = l.pack(&d.join("bad-oci-config.tar"));
    assert_load_refused(&env, &bad, "does not match its digest");

    // A config whose diff_id does not match the layer.
    let l = extract(&archive, &d.join("diffid"));
    l.docker_only();
    let mut config = l.config();
    config["rootfs"]["diff_ids"] = json!([format!("sha256:{}", "0".repeat(64))]);
    let hex = put_blob(&l.dir, config.to_string().as_bytes());
    l.set_docker_manifest(
        &format!("blobs/sha256/{hex}"),
        &[format!("blobs/sha256/{}", l.layer_hex)],
    );
    let bad = l.pack(&d.join("bad-diffid.tar"));
    assert_load_refused(
        &env,
        &bad,
        "layer 1 of bb:latest does not match its diff_id",
    );

    // Two new layers, the second with a `../` entry: the first one's
    // directory must go too.
    let l = extract(&archive, &d.join("hostile"));
    l.docker_only();
    let good = d.join("good-layer.tar");
    make_tar(&good, &[("good.txt", b"good\n")]);
    let evil = d.join("evil-layer.tar");
    make_tar(
        &evil,
        &[("ok.txt", b"ok\n"), ("../escaped.txt", b"escaped\n")],
    );
    let good_hex = sha256_hex(&good);
    let evil_hex = sha256_hex(&evil);
    fs::copy(&good, l.blob(&good_hex)).unwrap_or_else(|e| panic!("copy: {e}"));
    fs::copy(&evil, l.blob(&evil_hex)).unwrap_or_else(|e| panic!("copy: {e}"));
    let mut config = l.config();
    config["rootfs"]["diff_ids"] = json!([
        format!("sha256:{}", l.layer_hex),
        format!("sha256:{good_hex}"),
        format!("sha256:{evil_hex}")
    ]);
    let hex = put_blob(&l.dir, config.to_string().as_bytes());
    l.set_docker_manifest(
        &format!("blobs/sha256/{hex}"),
        &[
            format!("blobs/sha256/{}", l.layer_hex),
            format!("blobs/sha256/{good_hex}"),
            format!("blobs/sha256/{evil_hex}"),
        ],
    );
    let bad = l.pack(&d.join("hostile.tar"));
    assert_load_refused(
        &env,
        &bad,
        "layer 3 of bb:latest: layer entry \"../escaped.txt\" escapes the layer root",
    );
    assert!(!env.root.path().join("escaped.txt").exists());
    assert!(!env.root.path().join("layers/escaped.txt").exists());

    // A manifest naming a layer the archive does not have.
    let l = extract(&archive, &d.join("missing"));
    l.docker_only();
    l.set_docker_manifest(
        &format!("blobs/sha256/{}", l.config_hex),
        &[format!("blobs/sha256/{}", "1".repeat(64))],
    );
    let bad = l.pack(&d.join("missing.tar"));
    assert_load_refused(&env, &bad, "is missing from the archive");

    // The same good archive still loads into that store afterwards.
    assert_eq!(load(&env, &archive), "Loaded image: bb:latest\n");
}

#[test]
fn nested_oci_index_picks_the_host_platform() {
    let dir = scratch();
    let (_env, archive, id) = saved_busybox(dir.path());
    let l = extract(&archive, &dir.path().join("nested"));
    l.oci_only();
    let index = read_json(&l.dir.join("index.json"));
    let manifest = index["manifests"][0].clone();
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let foreign = if host == "s390x" { "ppc64le" } else { "s390x" };
    // Another platform first (its manifest is not even in the archive), an
    // attestation-like entry, then ours.
    let mut other = manifest.clone();
    other["digest"] = json!(format!("sha256:{}", "2".repeat(64)));
    other["platform"] = json!({"os": "linux", "architecture": foreign});
    let mut unknown = other.clone();
    unknown["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    let mut ours = manifest.clone();
    ours["platform"] = json!({"os": "linux", "architecture": host});
    for m in [&mut other, &mut unknown, &mut ours] {
        m.as_object_mut().map(|o| o.remove("annotations"));
    }
    let nested = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other, unknown, ours],
    })
    .to_string();
    let hex = put_blob(&l.dir, nested.as_bytes());
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": nested.len(),
            "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"},
        }],
    });
    write_file(&l.dir.join("index.json"), top.to_string().as_bytes());
    let packed = l.pack(&dir.path().join("nested.tar"));
    let env = TestEnv::new();
    assert_eq!(load(&env, &packed), "Loaded image: multi:1\n");
    assert_eq!(image_id(&env, "multi:1"), id);
    assert_eq!(
        env.ok(&["run", "--rm", "multi:1", "echo", "picked"]),
        "picked\n"
    );
}

#[test]
fn unreferenced_blobs_are_collected_when_old() {
    let dir = scratch();
    let (env, archive, _) = saved_busybox(dir.path());
    let blobs = env.root.path().join("blobs/sha256");
    let orphan = |name: &str, data: &[u8]| -> String {
        let p = dir.path().join(name);
        write_file(&p, data);
        let hex = sha256_hex(&p);
        fs::rename(&p, blobs.join(&hex)).unwrap_or_else(|e| panic!("rename: {e}"));
        hex
    };
    let old = orphan("old", b"left by a killed load");
    let fresh = orphan("fresh", b"being written by someone now");
    tool("touch", &["-d", "2 hours ago", path_str(&blobs.join(&old))]);
    load(&env, &archive);
    let left = entries(&env, "blobs/sha256");
    assert!(!left.contains(&old), "an old unreferenced blob stayed");
    assert!(
        left.contains(&fresh),
        "a fresh unreferenced blob was removed"
    );
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn kill_during_load_leaves_a_consistent_store() {
    let dir = scratch();
    // An image with a 48 MiB layer, so the load is caught mid-stream.
    let rootfs = dir.path().join("rootfs");
    fs::create_dir_all(&rootfs).unwrap_or_else(|e| panic!("mkdir: {e}"));
    tool(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}", path_str(&rootfs.join("big"))),
            "bs=1M",
            "count=48",
            "status=none",
        ],
    );
    let big_tar = dir.path().join("big.tar");
    tar_dir(&rootfs, &big_tar);
    let src = TestEnv::new();
    src.ok(&["import", path_str(&big_tar), "big"]);
    let archive = save(&src, dir.path(), "big-archive.tar", &["big"]);
    let bytes = fs::read(&archive).unwrap_or_else(|e| panic!("read: {e}"));

    let env = TestEnv::new();
    let mut cmd = env.berth(&["load"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn load: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    stdin
        .write_all(&bytes[..bytes.len() / 2])
        .unwrap_or_else(|e| panic!("write to load: {e}"));
    // Half of it read: a blob is being spooled.
    poll(
        "a temp file in ROOT/tmp",
        std::time::Duration::from_secs(30),
        || {
            entries(&env, "tmp")
                .iter()
                .any(|n| n.starts_with("tmp-"))
                .then_some(())
        },
    );
    child.kill().unwrap_or_else(|e| panic!("kill: {e}"));
    let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
    assert!(!status.success());
    drop(stdin);

    assert_eq!(env.ok(&["images", "-q"]), "");
    assert!(env.ok(&["images"]).starts_with("REPOSITORY"));
    assert_eq!(load(&env, &archive), "Loaded image: big:latest\n");
    assert_eq!(image_id(&env, "big"), image_id(&src, "big"));
    // The killed load's temp file was collected by the next one.
    assert_eq!(entries(&env, "tmp"), Vec::<String>::new());
    assert!(entries(&env, "layers")
        .iter()
        .all(|n| !n.starts_with("tmp-")));
    // Blobs the killed load finished (config, manifest: which ones depends on
    // their digests' order) have no row; they may be someone's work in
    // progress until they are a minute old, then they go.
    let blobs = env.root.path().join("blobs/sha256");
    for b in entries(&env, "blobs/sha256") {
        tool("touch", &["-d", "2 hours ago", path_str(&blobs.join(b))]);
    }
    assert_eq!(load(&env, &archive), "Loaded image: big:latest\n");
    assert_eq!(entries(&env, "blobs/sha256").len(), 1);
}
