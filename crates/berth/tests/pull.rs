mod common;

// `pull`, black box, against a real registry (Debian's docker-registry on
// 127.0.0.1, started per test): what skopeo pushes (a Docker schema 2
// image from a `berth save` archive; an OCI index with two platforms and a
// zstd layer, written by hand) berth pulls, verifies and runs; pulls by
// digest, with layers already present, of a tampered blob, of a missing
// tag or repository; and `run`'s implicit pull.

use std::fs;
use std::path::Path;

use common::registry::{sha256_digest, Fault, FaultProxy, Registry};
use common::*;
use serde_json::{json, Value};
use tempfile::TempDir;

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

/// `bb` saved by berth as a docker-archive, in `dir`.
fn busybox_archive(dir: &Path) -> String {
    let src = TestEnv::with_busybox();
    let out = dir.join("bb.tar");
    src.ok(&["save", "-o", path_str(&out), BB]);
    format!("docker-archive:{}", path_str(&out))
}

/// The host's architecture as OCI names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn pull_a_docker_schema2_image_skopeo_pushed() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    let archive = busybox_archive(tmp.path());
    reg.push(&archive, "bb:v1", &["--format", "v2s2"]);
    let (manifest, digest) = reg.manifest("bb:v1");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let short = &layer["sha256:".len().."sha256:".len() + 12];
    let config = manifest["config"]["digest"].as_str().unwrap();
    let name = format!("{}/bb:v1", reg.addr);

    let env = TestEnv::new();
    let out = env.ok(&["pull", &name]);
    assert_eq!(
        lines(&out),
        vec![
            "v1: Pulling from bb".to_string(),
            format!("{short}: Pulling fs layer"),
            format!("{short}: Verifying Checksum"),
            format!("{short}: Download complete"),
            format!("{short}: Pull complete"),
            format!("Digest: {digest}"),
            format!("Status: Downloaded newer image for {name}"),
            name.clone(),
        ]
    );
    let img = env.inspect_image(&name);
    assert_eq!(img["Id"], config);
    assert_eq!(
        img["RepoDigests"],
        json!([format!("{}/bb@{digest}", reg.addr)])
    );
    assert_eq!(img["RepoTags"], json!([name.clone()]));
    // The layer's blob is kept as it came, under its manifest digest.
    let blob = env
        .root
        .path()
        .join("blobs/sha256")
        .join(&layer["sha256:".len()..]);
    assert_eq!(sha256_digest(&fs::read(&blob).unwrap()), layer);
    let digests = env.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert_eq!(digests.trim(), format!("{}/bb v1 {digest}", reg.addr));
    // It runs.
    assert_eq!(env.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n");

    // Again: nothing to do.
    let again = env.ok(&["pull", &name]);
    assert_eq!(
        lines(&again),
        vec![
            "v1: Pulling from bb".to_string(),
            format!("Digest: {digest}"),
            format!("Status: Image is up to date for {name}"),
            name.clone(),
        ]
    );
    // -q: the reference only.
    assert_eq!(env.ok(&["pull", "-q", &name]), format!("{name}\n"));
    assert_eq!(env.ok(&["image", "pull", "-q", &name]), format!("{name}\n"));

    // -a: every tag, one status for the repository (as Docker 20.10).
    reg.push(&archive, "bb:v2", &["--format", "v2s2"]);
    let repo = format!("{}/bb", reg.addr);
    assert_eq!(
        lines(&env.ok(&["pull", "-a", &repo])),
        vec![
            "v1: Pulling from bb".to_string(),
            format!("Digest: {digest}"),
            "v2: Pulling from bb".to_string(),
            format!("Digest: {digest}"),
            format!("Status: Downloaded newer image for {repo}"),
            repo.clone(),
        ]
    );
    assert_eq!(env.inspect_image(&format!("{repo}:v2"))["Id"], config);
}

#[test]
fn pull_by_digest_and_default_tag() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(&busybox_archive(tmp.path()), "bb:latest", &[]);
    let (manifest, digest) = reg.manifest("bb:latest");
    let by_digest = format!("{}/bb@{digest}", reg.addr);

    let env = TestEnv::new();
    let out = env.ok(&["pull", &by_digest]);
    let l = lines(&out);
    assert_eq!(l[0], format!("{by_digest}: Pulling from bb"));
    assert_eq!(l[l.len() - 3], format!("Digest: {digest}"));
    assert_eq!(
        l[l.len() - 2],
        format!("Status: Downloaded newer image for {by_digest}")
    );
    assert_eq!(l[l.len() - 1], by_digest);
    // No tag came with it: the digest names the image.
    let img = env.inspect_image(&by_digest);
    assert_eq!(img["Id"], manifest["config"]["digest"]);
    assert_eq!(img["RepoTags"], json!([]));
    assert_eq!(img["RepoDigests"], json!([by_digest.clone()]));
    let rows = env.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert_eq!(rows.trim(), format!("{}/bb <none> {digest}", reg.addr));
    // No tag: dangling, as Docker's (pruned below, after the rmi checks).
    let short_id = &manifest["config"]["digest"].as_str().unwrap()[7..19];
    assert_eq!(
        env.ok(&["images", "-q", "--filter", "dangling=true"]),
        format!("{short_id}\n")
    );

    // Without a tag: latest, said so.
    let name = format!("{}/bb", reg.addr);
    let out = env.ok(&["pull", &name]);
    let l = lines(&out);
    assert_eq!(l[0], "Using default tag: latest");
    assert_eq!(l[1], "latest: Pulling from bb");
    assert_eq!(
        l[l.len() - 2],
        format!("Status: Downloaded newer image for {name}:latest")
    );
    assert_eq!(l[l.len() - 1], format!("{name}:latest"));
    // A digest that is not the tag's is refused by the registry's 404.
    let wrong = format!("{}/bb@sha256:{}", reg.addr, "0".repeat(64));
    let (_, err) = env.fails(&["pull", &wrong], 1);
    assert!(err.contains("not found: manifest unknown"), "{err}");

    // rmi of the digest reference removes that reference only; of the
    // repository's last tag, the tag, its digest references and the image.
    let id = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(
        env.ok(&["rmi", &by_digest]),
        format!("Untagged: {by_digest}\n")
    );
    assert_eq!(
        env.inspect_image(&format!("{name}:latest"))["RepoDigests"],
        json!([])
    );
    env.ok(&["pull", "-q", &by_digest]);
    assert_eq!(
        env.ok(&["rmi", &format!("{name}:latest")]),
        format!("Untagged: {name}:latest\nUntagged: {by_digest}\nDeleted: {id}\n")
    );
    assert_eq!(env.ok(&["images", "-aq"]), "");
    env.ok(&["pull", "-q", &by_digest]);
    let pruned = env.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.contains(&format!("untagged: {by_digest}\ndeleted: {id}\n")),
        "{pruned}"
    );
    assert_eq!(env.ok(&["images", "-aq"]), "");
}

/// Writes blob `data` into the OCI layout `dir`; returns its descriptor
/// fields (digest, size).
fn put_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let d = sha256_digest(data);
    let path = dir.join("blobs/sha256").join(&d["sha256:".len()..]);
    fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    (d, data.len())
}

#[test]
fn pull_an_oci_index_with_two_platforms_and_a_zstd_layer() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("oci");
    let status = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "-q",
            "--dest-compress-format",
            "zstd",
        ])
        .arg(busybox_archive(tmp.path()))
        .arg(format!("oci:{}:v1", path_str(&layout)))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy to an OCI layout");
    // The one manifest skopeo wrote, and a second for another platform
    // (same layer, a config that says s390x): an index with both.
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdesc = &index["manifests"][0];
    let mhex = &mdesc["digest"].as_str().unwrap()["sha256:".len()..];
    let manifest: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(mhex)).unwrap()).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let chex = &manifest["config"]["digest"].as_str().unwrap()["sha256:".len()..];
    let mut config: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(chex)).unwrap()).unwrap();
    config["architecture"] = json!("s390x");
    let (other_config, csize) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
    let mut other = manifest.clone();
    other["config"]["digest"] = json!(other_config);
    other["config"]["size"] = json!(csize);
    let (other_digest, msize) = put_blob(&layout, &serde_json::to_vec(&other).unwrap());
    let new_index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": mdesc["mediaType"], "digest": mdesc["digest"], "size": mdesc["size"],
             "platform": {"os": "linux", "architecture": host_arch()}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_digest, "size": msize,
             "platform": {"os": "linux", "architecture": "s390x"}},
        ]
    });
    let (index_digest, isize) = put_blob(&layout, &serde_json::to_vec(&new_index).unwrap());
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest, "size": isize,
                "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
        }))
        .unwrap(),
    )
    .unwrap();
    let reg = Registry::start();
    reg.push(
        &format!("oci:{}:v1", path_str(&layout)),
        "multi:v1",
        &["--all"],
    );
    let (served, digest) = reg.manifest("multi:v1");
    assert_eq!(served["manifests"].as_array().map(Vec::len), Some(2));
    let name = format!("{}/multi:v1", reg.addr);

    let env = TestEnv::new();
    let out = env.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    let img = env.inspect_image(&name);
    assert_eq!(img["Id"], manifest["config"]["digest"]);
    assert_eq!(img["Architecture"], host_arch());
    // The zstd blob is kept as it came.
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert!(env
        .root
        .path()
        .join("blobs/sha256")
        .join(&layer["sha256:".len()..])
        .is_file());
    assert_eq!(
        env.ok(&["run", "--rm", &name, "cat", "/etc/group"])
            .lines()
            .next(),
        Some("root:x:0:")
    );

    // The other platform: its own image, the layer already here.
    let out = env.ok(&["pull", "--platform", "linux/s390x", &name]);
    let short = &layer["sha256:".len().."sha256:".len() + 12];
    assert!(out.contains(&format!("{short}: Already exists\n")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{out}"
    );
    let img = env.inspect_image(&name);
    assert_eq!(img["Id"], other_config);
    assert_eq!(img["Architecture"], "s390x");

    // A platform the index lacks: one line, nothing new.
    let before = env.ok(&["images", "-q", "--no-trunc"]);
    let (_, err) = env.fails(&["pull", "--platform", "linux/ppc64le", &name], 1);
    assert_eq!(
        err,
        "Error: no matching manifest for linux/ppc64le in the manifest list entries\n"
    );
    assert_eq!(env.ok(&["images", "-q", "--no-trunc"]), before);
}

#[test]
fn pull_with_the_base_layer_present() {
    let tmp = TempDir::new().unwrap();
    let src = TestEnv::with_busybox();
    src.ok(&["run", "--name", "c2", BB, "sh", "-c", "echo two > /two"]);
    src.ok(&["commit", "c2", "bb2:v1"]);
    let a = tmp.path().join("a.tar");
    src.ok(&["save", "-o", path_str(&a), BB, "bb2:v1"]);
    let reg = Registry::start();
    reg.push(
        &format!("docker-archive:{}:{BB}:latest", path_str(&a)),
        "bb:v1",
        &[],
    );
    reg.push(
        &format!("docker-archive:{}:bb2:v1", path_str(&a)),
        "bb2:v1",
        &[],
    );
    let (m2, _) = reg.manifest("bb2:v1");
    let base = &m2["layers"][0]["digest"].as_str().unwrap()["sha256:".len()..][..12];
    let top = &m2["layers"][1]["digest"].as_str().unwrap()["sha256:".len()..][..12];

    let env = TestEnv::new();
    env.ok(&["pull", &format!("{}/bb:v1", reg.addr)]);
    let out = env.ok(&["pull", &format!("{}/bb2:v1", reg.addr)]);
    let l = lines(&out);
    assert_eq!(l[1], format!("{base}: Already exists"));
    assert_eq!(l[2], format!("{top}: Pulling fs layer"));
    assert!(out.contains(&format!("{top}: Pull complete\n")), "{out}");
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            &format!("{}/bb2:v1", reg.addr),
            "cat",
            "/two"
        ]),
        "two\n"
    );
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_is_kept() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(&busybox_archive(tmp.path()), "bb:v1", &[]);
    let (manifest, _) = reg.manifest("bb:v1");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = reg.blob_path(&layer["sha256:".len()..]);
    let mut data = fs::read(&path).unwrap();
    // Same size, other bytes: only the digest can tell.
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&path, &data).unwrap();

    let env = TestEnv::new();
    let name = format!("{}/bb:v1", reg.addr);
    let (_, err) = env.fails(&["pull", &name], 1);
    assert_eq!(
        err,
        format!("Error: filesystem layer verification failed for digest {layer}\n")
    );
    assert_eq!(env.ok(&["images", "-q"]), "");
    // No blob, no layer directory, no temp file stays.
    let blobs: Vec<_> = fs::read_dir(env.root.path().join("blobs/sha256"))
        .unwrap()
        .flatten()
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
    let layers: Vec<_> = fs::read_dir(env.root.path().join("layers"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(layers.is_empty(), "{layers:?}");
    let tmpfiles: Vec<_> = fs::read_dir(env.root.path().join("tmp"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(tmpfiles.is_empty(), "{tmpfiles:?}");
    // `run` of it fails the same way, creating nothing.
    let (_, err) = env.fails(&["run", "--rm", &name, "true"], 125);
    assert!(
        err.contains(&format!(
            "filesystem layer verification failed for digest {layer}"
        )),
        "{err}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn missing_tags_and_repositories_in_dockers_words() {
    let reg = Registry::start();
    let env = TestEnv::new();
    let (out, err) = env.fails(&["pull", &format!("{}/nope:v9", reg.addr)], 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "Error: manifest for {}/nope:v9 not found: manifest unknown: manifest unknown\n",
            reg.addr
        )
    );
    let (out, err) = env.fails(&["pull", &format!("{}/nope", reg.addr)], 1);
    assert_eq!(out, "Using default tag: latest\n");
    assert_eq!(
        err,
        format!(
            "Error: manifest for {}/nope:latest not found: manifest unknown: manifest unknown\n",
            reg.addr
        )
    );
    let (_, err) = env.fails(&["pull", "Bad"], 1);
    assert_eq!(
        err,
        "invalid reference format: repository name (library/Bad) must be lowercase\n"
    );
    let (_, err) = env.fails(&["pull", "--platform", "bogus", "x"], 1);
    assert_eq!(
        err,
        "Error: \"bogus\": unknown operating system or architecture: invalid argument\n"
    );
    let (_, err) = env.fails(&["pull", "-a", &format!("{}/nope:v1", reg.addr)], 1);
    assert_eq!(err, "tag can't be used with --all-tags/-a\n");
}

#[test]
fn run_pulls_a_missing_image() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(&busybox_archive(tmp.path()), "bb:v1", &[]);
    let (_, digest) = reg.manifest("bb:v1");
    let name = format!("{}/bb:v1", reg.addr);
    let env = TestEnv::new();

    // --pull never: as if there were no registry.
    let (_, err) = env.fails(&["run", "--rm", "--pull", "never", &name, "true"], 125);
    assert!(err.contains(&format!("No such image: {name}")), "{err}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    let (_, err) = env.fails(&["run", "--rm", "--pull", "sometimes", &name, "true"], 125);
    assert_eq!(
        err,
        "invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\"\n"
    );

    let out = env.run(&["run", "--rm", &name, "echo", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    let err = text(&out.stderr);
    let l = lines(&err);
    assert_eq!(l[0], format!("Unable to find image '{name}' locally"));
    assert_eq!(l[1], "v1: Pulling from bb");
    assert_eq!(l[l.len() - 2], format!("Digest: {digest}"));
    assert_eq!(
        l[l.len() - 1],
        format!("Status: Downloaded newer image for {name}")
    );

    // Present: no pull at all.
    let out = env.run(&["run", "--rm", &name, "echo", "again"]);
    assert_eq!(text(&out.stderr), "");
    // --pull always: asks the registry, which says it is up to date.
    let out = env.run(&["create", "--pull", "always", &name, "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("Status: Image is up to date for {name}")));
    assert!(is_full_id(text(&out.stdout).trim()));
}

#[test]
fn a_dropped_layer_download_resumes_and_429_waits() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(&busybox_archive(tmp.path()), "bb:v1", &[]);
    let (manifest, digest) = reg.manifest("bb:v1");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    let wanted = format!("/blobs/{layer} ");
    let cut = std::sync::atomic::AtomicBool::new(false);
    let limited = std::sync::atomic::AtomicBool::new(false);
    let proxy = FaultProxy::start(&reg.addr, move |head, _| {
        use std::sync::atomic::Ordering::SeqCst;
        if head.contains("/manifests/") && !limited.swap(true, SeqCst) {
            return Fault::Answer(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        if head.starts_with("GET") && head.contains(&wanted) && !cut.swap(true, SeqCst) {
            return Fault::CutAfter(100_000);
        }
        Fault::Pass
    });
    let name = format!("{}/bb:v1", proxy.addr);
    let env = TestEnv::new();
    let out = env.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    assert_eq!(env.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n");
    let seen = proxy.seen.lock().unwrap().clone();
    // The manifest was asked twice (after the 429), the layer once from
    // its start and once from where the connection broke.
    assert_eq!(
        seen.iter().filter(|l| l.contains("/manifests/v1")).count(),
        2,
        "{seen:?}"
    );
    let layer_gets: Vec<&String> = seen
        .iter()
        .filter(|l| l.starts_with("GET") && l.contains(&layer))
        .collect();
    assert_eq!(layer_gets.len(), 2, "{seen:?}");
    assert!(
        !layer_gets[0].to_ascii_lowercase().contains("[range"),
        "{seen:?}"
    );
    assert!(
        layer_gets[1]
            .to_ascii_lowercase()
            .ends_with("[range: bytes=100000-]"),
        "{seen:?}"
    );
    assert!(size > 100_000, "the layer is large enough to cut");
}

#[test]
fn bad_manifests_and_a_401_are_one_line_and_change_nothing() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.addr, |head, _| {
        if head.contains("/big/manifests/") {
            Fault::Answer(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n",
            )
        } else if head.contains("/junk/manifests/") {
            Fault::Answer(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{not json",
            )
        } else if head.contains("/private/") {
            Fault::Answer(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Type: application/json\r\nContent-Length: 75\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}\n",
            )
        } else {
            Fault::Pass
        }
    });
    let env = TestEnv::new();
    let p = &proxy.addr;
    let (_, err) = env.fails(&["pull", &format!("{p}/big:v1")], 1);
    assert_eq!(err, "Error: manifest v1 is larger than the 4 MiB limit\n");
    let (_, err) = env.fails(&["pull", &format!("{p}/junk:v1")], 1);
    assert!(err.starts_with("Error: invalid manifest: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (_, err) = env.fails(&["pull", &format!("{p}/private:v1")], 1);
    assert_eq!(
        err,
        format!("Error: pull access denied for {p}/private, repository does not exist or may require 'docker login': unauthorized: authentication required\n")
    );
    assert_eq!(env.ok(&["images", "-aq"]), "");
}

#[test]
fn a_killed_pull_leaves_nothing_the_next_pull_minds() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(&busybox_archive(tmp.path()), "bb:v1", &[]);
    let (manifest, digest) = reg.manifest("bb:v1");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let wanted = format!("/blobs/{layer} ");
    let proxy = FaultProxy::start(&reg.addr, move |head, _| {
        if head.starts_with("GET") && head.contains(&wanted) {
            Fault::StallAfter(200_000)
        } else {
            Fault::Pass
        }
    });
    let env = TestEnv::new();
    let mut child = env
        .berth(&["pull", &format!("{}/bb:v1", proxy.addr)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Mid-layer: part of the blob is in a temp file.
    let tmpdir = env.root.path().join("tmp");
    poll("a partial blob", std::time::Duration::from_secs(30), || {
        fs::read_dir(&tmpdir)
            .ok()?
            .flatten()
            .find(|e| e.metadata().is_ok_and(|m| m.len() >= 200_000))
            .map(|_| ())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.ok(&["images", "-aq"]), "");

    // The next pull (straight from the registry) works and takes the leftovers.
    let name = format!("{}/bb:v1", reg.addr);
    let out = env.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    assert_eq!(env.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n");
    let left: Vec<_> = fs::read_dir(&tmpdir).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    let layer_tmp: Vec<_> = fs::read_dir(env.root.path().join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .collect();
    assert!(layer_tmp.is_empty(), "{layer_tmp:?}");
}

#[test]
fn build_pulls_a_base_image_it_does_not_have() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    let archive = busybox_archive(tmp.path());
    reg.push(&archive, "base/bb:v1", &["--format", "v2s2"]);
    let env = TestEnv::new();
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}/base/bb:v1\nRUN echo built > /b\n", reg.addr),
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "on-pulled", path_str(&ctx)]);
    assert_eq!(
        env.ok(&["run", "--rm", "on-pulled", "cat", "/b"]),
        "built\n"
    );
    // The base is now local, tagged as pulled.
    let tags = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(tags.contains(&format!("{}/base/bb:v1", reg.addr)), "{tags}");
    // --pull asks the registry again; a base that is nowhere is an error.
    env.ok(&["build", "-q", "--pull", path_str(&ctx)]);
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}/base/nope:v1\n", reg.addr),
    )
    .unwrap();
    let (_, err) = env.fails(&["build", path_str(&ctx)], 1);
    assert!(
        err.contains("Dockerfile:1") && err.contains("base/nope"),
        "{err}"
    );
}

#[test]
fn the_next_pull_reuses_the_layers_a_killed_pull_stored() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    // A two-layer image: busybox and a committed change.
    let src = TestEnv::with_busybox();
    src.ok(&[
        "run",
        "--name",
        "two",
        BB,
        "sh",
        "-c",
        "head -c 300000 /dev/urandom > /big",
    ]);
    src.ok(&["commit", "two", "two:v1"]);
    let archive = tmp.path().join("two.tar");
    src.ok(&["save", "-o", path_str(&archive), "two:v1"]);
    reg.push(
        &format!("docker-archive:{}", path_str(&archive)),
        "two:v1",
        &["--format", "v2s2"],
    );
    let (manifest, _) = reg.manifest("two:v1");
    let base = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let top = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The first pull never gets the top layer.
    let held = format!("/blobs/{top} ");
    let proxy = FaultProxy::start(&reg.addr, move |head, _| {
        if head.starts_with("GET") && head.contains(&held) {
            Fault::Hold
        } else {
            Fault::Pass
        }
    });
    let env = TestEnv::new();
    let mut child = env
        .berth(&["pull", &format!("{}/two:v1", proxy.addr)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stored = env
        .root
        .path()
        .join("blobs/sha256")
        .join(base.trim_start_matches("sha256:"));
    poll(
        "the base layer's blob",
        std::time::Duration::from_secs(30),
        || stored.is_file().then_some(()),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.ok(&["images", "-aq"]), "");
    // The next pull fetches only what is missing.
    let again = FaultProxy::start(&reg.addr, |_, _| Fault::Pass);
    let name = format!("{}/two:v1", again.addr);
    env.ok(&["pull", &name]);
    let seen = again.seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|l| l.contains(&base)), "{seen:?}");
    assert!(seen.iter().any(|l| l.contains(&top)), "{seen:?}");
    assert_eq!(
        env.ok(&["run", "--rm", &name, "wc", "-c", "/big"])
            .split_whitespace()
            .next(),
        Some("300000")
    );
}

#[test]
fn the_next_pull_resumes_a_layer_from_the_byte_a_killed_pull_reached() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(&busybox_archive(tmp.path()), "bb:v1", &[]);
    let (manifest, _) = reg.manifest("bb:v1");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let wanted = format!("/blobs/{layer} ");
    let proxy = FaultProxy::start(&reg.addr, move |head, _| {
        if head.starts_with("GET") && head.contains(&wanted) {
            Fault::StallAfter(200_000)
        } else {
            Fault::Pass
        }
    });
    let env = TestEnv::new();
    let mut child = env
        .berth(&["pull", &format!("{}/bb:v1", proxy.addr)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let part = env
        .root
        .path()
        .join("tmp")
        .join(format!("partial-{}", layer.trim_start_matches("sha256:")));
    poll(
        "the kept part of the layer",
        std::time::Duration::from_secs(30),
        || {
            fs::metadata(&part)
                .ok()
                .filter(|m| m.len() >= 200_000)
                .map(|_| ())
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(kept >= 200_000, "{kept}");
    // The next pull asks only for the rest, and the result is whole.
    let again = FaultProxy::start(&reg.addr, |_, _| Fault::Pass);
    let name = format!("{}/bb:v1", again.addr);
    env.ok(&["pull", &name]);
    let seen = again.seen.lock().unwrap().clone();
    let get = seen
        .iter()
        .find(|l| l.contains(&layer))
        .cloned()
        .unwrap_or_default();
    assert!(get.contains(&format!("bytes={kept}-")), "{seen:?}");
    assert!(!part.exists());
    assert_eq!(env.ok(&["run", "--rm", &name, "echo", "whole"]), "whole\n");
}
