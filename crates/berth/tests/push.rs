#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

// `push`, black box, against real registries (Debian's docker-registry on
// 127.0.0.1, started per test): an imported (uncompressed) image goes up
// gzipped, skopeo copies and verifies what berth pushed and another berth
// pulls and runs it; a second push only asks (HEAD) and compresses nothing;
// another repository of the same registry mounts; a committed image sends
// only its new layer; a pulled image goes up as its blobs came; a 500 in
// the middle of an upload is retried, or fails with nothing recorded.

use std::fs;
use std::path::Path;
use std::process::Command;

use common::registry::{Fault, FaultProxy, Registry};
use common::*;
use tempfile::TempDir;

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

/// The blobs berth keeps (`<root>/blobs/sha256`), sorted.
fn blobs(env: &TestEnv) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(env.root.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The first 12 hex digits of each diff ID of `image`, top layer first
/// (the order Docker lists a push's layers in).
fn layer_ids(env: &TestEnv, image: &str) -> Vec<String> {
    let img = env.inspect_image(image);
    let mut ids: Vec<String> = img["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap()["sha256:".len().."sha256:".len() + 12].to_string())
        .collect();
    ids.reverse();
    ids
}

/// The `TAG: digest: D size: N` line of a push's output: (D, N).
fn digest_line(out: &str, tag: &str) -> (String, usize) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{tag}: digest: ")))
        .unwrap_or_else(|| panic!("no digest line for {tag} in {out}"));
    let rest = &line[format!("{tag}: digest: ").len()..];
    let (d, size) = rest.split_once(" size: ").unwrap();
    (d.to_string(), size.parse().unwrap())
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo: {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn push_of_an_imported_image_then_again_then_to_another_repository() {
    let reg = Registry::start();
    let env = TestEnv::with_busybox();
    let name = format!("{}/bb", reg.addr);
    env.ok(&["tag", BB, &format!("{name}:v1")]);
    let ids = layer_ids(&env, BB);
    let before = blobs(&env);

    let out = env.ok(&["push", &format!("{name}:v1")]);
    let mut want = vec![format!("The push refers to repository [{name}]")];
    want.extend(ids.iter().map(|id| format!("{id}: Preparing")));
    want.extend(ids.iter().map(|id| format!("{id}: Pushed")));
    let (digest, size) = digest_line(&out, "v1");
    want.push(format!("v1: digest: {digest} size: {size}"));
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");

    // What the registry serves is what berth said it pushed.
    let (manifest, served) = reg.manifest("bb:v1");
    assert_eq!(served, digest);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(config, env.inspect_image(BB)["Id"].as_str().unwrap());
    // The import was uncompressed: one gzipped blob more, kept.
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let after = blobs(&env);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert!(after.contains(&layer["sha256:".len()..].to_string()));
    // skopeo copies it, verifying every digest on the way.
    let tmp = TempDir::new().unwrap();
    let oci = tmp.path().join("oci");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &reg.docker_ref("bb:v1"),
        &format!("oci:{}:v1", path_str(&oci)),
    ]);
    let inspected: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &reg.docker_ref("bb:v1"),
    ]))
    .unwrap();
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(inspected["Layers"][0], layer);
    // RepoDigests, as Docker records them after a push.
    assert_eq!(
        env.inspect_image(BB)["RepoDigests"],
        serde_json::json!([format!("{name}@{digest}")])
    );
    // Another berth pulls it and runs it.
    let other = TestEnv::new();
    other.ok(&["pull", &format!("{name}:v1")]);
    assert_eq!(
        other.ok(&["run", "--rm", &format!("{name}:v1"), "echo", "pulled"]),
        "pulled\n"
    );

    // Again: the registry has it all; nothing is compressed or read again.
    let out = env.ok(&["push", &format!("{name}:v1")]);
    for id in &ids {
        assert!(
            out.contains(&format!("{id}: Layer already exists")),
            "{out}"
        );
    }
    assert_eq!(digest_line(&out, "v1"), (digest.clone(), size));
    assert_eq!(blobs(&env), after);

    // Another repository of the same registry: mounted, not uploaded.
    let second = format!("{}/team/copy:v2", reg.addr);
    env.ok(&["tag", BB, &second]);
    let out = env.ok(&["push", &second]);
    for id in &ids {
        assert!(out.contains(&format!("{id}: Mounted from bb")), "{out}");
    }
    assert_eq!(digest_line(&out, "v2").0, digest);
    assert_eq!(blobs(&env), after);

    // Removing the image takes the compressed blob with its layer.
    let id = env.inspect_image(BB)["Id"].as_str().unwrap().to_string();
    env.ok(&["rmi", "-f", &id]);
    assert_eq!(blobs(&env), Vec::<String>::new());
}

#[test]
fn push_errors_in_dockers_words() {
    let reg = Registry::start();
    let env = TestEnv::with_busybox();
    let name = format!("{}/nope", reg.addr);
    let (out, err) = env.fails(&["push", &name], 1);
    assert_eq!(
        out,
        format!("Using default tag: latest\nThe push refers to repository [{name}]\n")
    );
    assert_eq!(
        err.trim_end(),
        format!("An image does not exist locally with the tag: {name}")
    );
    let (_, err) = env.fails(&["push", "-a", &name], 1);
    assert_eq!(
        err.trim_end(),
        format!("An image does not exist locally with the tag: {name}")
    );
    let (_, err) = env.fails(&["push", "-a", &format!("{name}:v1")], 1);
    assert_eq!(err.trim_end(), "tag can't be used with --all-tags/-a");
    // -a pushes every local tag of the repository; -q prints its name.
    let repo = format!("{}/bb", reg.addr);
    env.ok(&["tag", BB, &format!("{repo}:one")]);
    env.ok(&["tag", BB, &format!("{repo}:two")]);
    let out = env.ok(&["push", "-a", &repo]);
    let one = digest_line(&out, "one");
    assert_eq!(digest_line(&out, "two"), one);
    assert_eq!(env.ok(&["push", "-a", "-q", &repo]), format!("{repo}\n"));
    assert_eq!(
        env.ok(&["push", "-q", &format!("{repo}:one")]),
        format!("{repo}:one\n")
    );
}

#[test]
fn a_committed_image_pushes_only_its_new_layer() {
    let reg = Registry::start();
    let env = TestEnv::with_busybox();
    let base = format!("{}/app:base", reg.addr);
    env.ok(&["tag", BB, &base]);
    env.ok(&["push", &base]);
    env.ok(&[
        "run",
        "--name",
        "committed",
        BB,
        "sh",
        "-c",
        "echo hi > /new",
    ]);
    let top = format!("{}/app:top", reg.addr);
    env.ok(&["commit", "committed", &top]);
    let ids = layer_ids(&env, &top);
    assert_eq!(ids.len(), 2);
    let out = env.ok(&["push", &top]);
    assert!(out.contains(&format!("{}: Pushed", ids[0])), "{out}");
    assert!(
        out.contains(&format!("{}: Layer already exists", ids[1])),
        "{out}"
    );
    let other = TestEnv::new();
    other.ok(&["pull", &top]);
    assert_eq!(other.ok(&["run", "--rm", &top, "cat", "/new"]), "hi\n");
}

#[test]
fn a_pulled_image_goes_up_as_its_blobs_came() {
    let tmp = TempDir::new().unwrap();
    let src = Registry::start();
    let dst = Registry::start();
    let saved = TestEnv::with_busybox();
    let archive = tmp.path().join("bb.tar");
    saved.ok(&["save", "-o", path_str(&archive), BB]);
    src.push(
        &format!("docker-archive:{}", path_str(&archive)),
        "bb:v1",
        &["--format", "v2s2"],
    );
    let (pulled_manifest, _) = src.manifest("bb:v1");

    let env = TestEnv::new();
    let from = format!("{}/bb:v1", src.addr);
    env.ok(&["pull", &from]);
    let before = blobs(&env);
    let to = format!("{}/mirror/bb:v1", dst.addr);
    env.ok(&["tag", &from, &to]);
    let out = env.ok(&["push", &to]);
    assert!(out.contains(": Pushed"), "{out}");
    let (pushed_manifest, _) = dst.manifest("mirror/bb:v1");
    assert_eq!(
        pushed_manifest["layers"][0]["digest"],
        pulled_manifest["layers"][0]["digest"]
    );
    assert_eq!(
        pushed_manifest["config"]["digest"],
        pulled_manifest["config"]["digest"]
    );
    // Nothing was compressed.
    assert_eq!(blobs(&env), before);
    // The registry it came from mounts it into another repository.
    let again = format!("{}/elsewhere:v1", src.addr);
    env.ok(&["tag", &from, &again]);
    let out = env.ok(&["push", &again]);
    assert!(out.contains(": Mounted from bb"), "{out}");
}

#[test]
fn a_500_in_an_upload_is_retried_or_fails_with_nothing_recorded() {
    let reg = Registry::start();
    const ERR500: &str =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    // The first upload PUT fails once: the retry carries the push.
    let once = std::sync::atomic::AtomicBool::new(false);
    let proxy = FaultProxy::start(&reg.addr, move |head, _| {
        if head.starts_with("PUT ")
            && head.contains("/blobs/uploads/")
            && !once.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Fault::Answer(ERR500);
        }
        Fault::Pass
    });
    let env = TestEnv::with_busybox();
    let name = format!("{}/bb:v1", proxy.addr);
    env.ok(&["tag", BB, &name]);
    let out = env.ok(&["push", &name]);
    assert!(out.contains(": Pushed"), "{out}");
    let puts = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("/blobs/uploads/"))
        .count();
    // The layer twice (once refused), the config once.
    assert_eq!(puts, 3);

    // Every upload fails: one line, exit 1, nothing recorded or kept.
    let broken = FaultProxy::start(&reg.addr, |head, _| {
        if head.starts_with("PUT ") && head.contains("/blobs/uploads/") {
            return Fault::Answer(ERR500);
        }
        Fault::Pass
    });
    let env = TestEnv::with_busybox();
    let before = blobs(&env);
    let name = format!("{}/broken:v1", broken.addr);
    env.ok(&["tag", BB, &name]);
    let (_, err) = env.fails(&["push", &name], 1);
    assert_eq!(
        err.trim_end(),
        "received unexpected HTTP status: 500 Internal Server Error"
    );
    assert_eq!(blobs(&env), before);
    assert_eq!(env.inspect_image(BB)["RepoDigests"], serde_json::json!([]));
}

#[test]
fn a_registry_refusing_monolithic_uploads_gets_chunks() {
    let reg = Registry::start();
    // A PUT that carries the blob is refused (405); PATCH then an empty
    // PUT is the way in.
    let proxy = FaultProxy::start(&reg.addr, |head, _| {
        let lower = head.to_ascii_lowercase();
        if lower.starts_with("put ")
            && lower.contains("/blobs/uploads/")
            && !lower.contains("content-length: 0\r\n")
        {
            return Fault::Answer(
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        Fault::Pass
    });
    let env = TestEnv::with_busybox();
    let name = format!("{}/chunked:v1", proxy.addr);
    env.ok(&["tag", BB, &name]);
    let out = env.ok(&["push", &name]);
    let (digest, _) = digest_line(&out, "v1");
    assert_eq!(reg.manifest("chunked:v1").1, digest);
    let patches = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("PATCH "))
        .count();
    // The layer and the config.
    assert_eq!(patches, 2);
    let other = TestEnv::new();
    other.ok(&["pull", &format!("{}/chunked:v1", reg.addr)]);
}

#[test]
fn a_killed_push_records_nothing_and_the_next_push_works() {
    let reg = Registry::start();
    // The layer's upload is taken and never answered: berth is killed
    // while it waits, after compressing.
    let proxy = FaultProxy::start(&reg.addr, |head, _| {
        if head.starts_with("PUT ") && head.contains("/blobs/uploads/") {
            return Fault::Hold;
        }
        Fault::Pass
    });
    let env = TestEnv::with_busybox();
    let held = format!("{}/bb:v1", proxy.addr);
    env.ok(&["tag", BB, &held]);
    let mut child = env.berth(&["push", &held]).spawn().unwrap();
    poll("the upload to reach the proxy", COMMAND_TIMEOUT, || {
        let seen = proxy.seen.lock().ok()?;
        seen.iter().any(|l| l.starts_with("PUT ")).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.inspect_image(BB)["RepoDigests"], serde_json::json!([]));
    // The same image goes up directly; it pulls and runs elsewhere.
    let name = format!("{}/bb:v1", reg.addr);
    env.ok(&["tag", BB, &name]);
    let out = env.ok(&["push", &name]);
    let (digest, _) = digest_line(&out, "v1");
    assert_eq!(reg.manifest("bb:v1").1, digest);
    let other = TestEnv::new();
    other.ok(&["pull", &name]);
    assert_eq!(other.ok(&["run", "--rm", &name, "echo", "ok"]), "ok\n");
}
