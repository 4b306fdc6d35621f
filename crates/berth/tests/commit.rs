mod common;

// A container's changes and the image graph, black box: `diff` (added, changed,
// deleted, replaced directories), `commit` (the new layer, whiteouts across layers,
// `-c`, `-m`, `-a`, a running container, shared layers, bad input), `history`,
// `images --tree` and `images --format dot`, and `rmi` of a parent.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// sha256 of 1024 zero bytes: the empty layer (an empty tar), as Docker's.
const EMPTY_LAYER: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// `berth commit ...`: asserts it prints exactly `sha256:<64 hex>`; returns the ID.
fn commit(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["commit"];
    all.extend_from_slice(args);
    let out = env.ok(&all);
    let id = out.trim_end().to_string();
    let hex = id
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("commit printed {out:?}"));
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "commit printed {out:?}"
    );
    assert_eq!(out, format!("{id}\n"));
    id
}

/// The layer directories under the root (crash leftovers `tmp-*` excluded).
fn layer_dirs(env: &TestEnv) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(env.root.path().join("layers"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("tmp-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn blob_count(env: &TestEnv) -> usize {
    fs::read_dir(env.root.path().join("blobs").join("sha256"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

fn image_ids(env: &TestEnv) -> Vec<String> {
    let mut v: Vec<String> = env
        .ok(&["images", "-a", "-q", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The directories of an image's layers, topmost first: its `UpperDir`,
/// then its `LowerDir`s (Docker's shape: no LowerDir for one layer).
fn lower_dirs(env: &TestEnv, image: &str) -> Vec<String> {
    let v = env.inspect(image);
    let data = &v["GraphDriver"]["Data"];
    let upper = data["UpperDir"]
        .as_str()
        .unwrap_or_else(|| panic!("{image}: no UpperDir in {v}"));
    std::iter::once(upper)
        .chain(
            data["LowerDir"]
                .as_str()
                .into_iter()
                .flat_map(|l| l.split(':')),
        )
        .map(str::to_string)
        .collect()
}

#[test]
fn diff_lists_added_changed_and_deleted_paths() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "cc",
        BB,
        "sh",
        "-c",
        "echo x >> /etc/passwd && rm /etc/group && rm -rf /home \
         && mkdir /new && echo n > /new/f \
         && rm -rf /usr/bin && mkdir /usr/bin && touch /usr/bin/zz",
    ]);
    // Docker's order: a directory, then what is in it (sorted here; Docker's
    // daemon walks a Go map), then what was deleted from it.
    let mut want: Vec<String> = [
        "C /etc",
        "C /etc/passwd",
        "D /etc/group",
        "A /new",
        "A /new/f",
        "C /usr",
        // Replaced: what is in the new directory is new, and every entry of
        // the image's is deleted, one by one.
        "C /usr/bin",
        "A /usr/bin/zz",
    ]
    .map(String::from)
    .to_vec();
    let mut applets: Vec<String> = lines(&env.ok(&["run", "--rm", BB, "ls", "-A", "/usr/bin"]))
        .into_iter()
        .map(|a| format!("D /usr/bin/{a}"))
        .collect();
    applets.sort();
    assert!(applets.len() > 10, "{applets:?}");
    want.extend(applets);
    want.push("D /home".into());
    assert_eq!(lines(&env.ok(&["diff", "cc"])), want);
    // The same through `container diff`.
    assert_eq!(
        env.ok(&["container", "diff", "cc"]),
        env.ok(&["diff", "cc"])
    );
}

/// Docker's walk: a directory with any change inside it, however deep, is
/// listed before it; deletions come after everything else in their
/// directory, nested ones included.
#[test]
fn diff_walks_in_dockers_order() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "dw",
        BB,
        "sh",
        "-c",
        "rm /bin/ls /bin/cat && touch /bin/new && mkdir /bin/zz && touch /bin/zz/a \
         && mkdir -p /home/app/x/y && rm /etc/group && touch /etc/Z /etc/_u \
         && mkdir /a /a-b /a.b && touch /a/f /a-b/f /a.b/f",
    ]);
    assert_eq!(
        lines(&env.ok(&["diff", "dw"])),
        [
            "A /a",
            "A /a/f",
            "A /a-b",
            "A /a-b/f",
            "A /a.b",
            "A /a.b/f",
            "C /bin",
            "A /bin/new",
            "A /bin/zz",
            "A /bin/zz/a",
            "D /bin/cat",
            "D /bin/ls",
            "C /etc",
            "A /etc/Z",
            "A /etc/_u",
            "D /etc/group",
            "C /home",
            "C /home/app",
            "A /home/app/x",
            "A /home/app/x/y",
        ]
    );
}

#[test]
fn diff_of_an_untouched_container_is_empty() {
    let env = TestEnv::with_busybox();
    // The runtime's mount points (/etc/hostname, /etc/hosts, /etc/resolv.conf) are
    // created in the writable layer, but they are not the container's changes.
    env.ok(&["run", "--name", "quiet", BB, "true"]);
    assert_eq!(env.ok(&["diff", "quiet"]), "");
    let id = commit(&env, &["quiet", "quiet-img"]);
    let v = env.inspect(&id);
    let layers = v["RootFS"]["Layers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(layers.len(), 2, "{v}");
    assert_eq!(
        layers[1], EMPTY_LAYER,
        "an unchanged container commits an empty layer"
    );

    let (_, err) = env.fails(&["diff", "nope"], 1);
    assert!(err.contains("No such container: nope"), "{err}");
}

#[test]
fn commit_makes_an_image_with_the_changes_and_deletions_stay_deleted() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "c1",
        BB,
        "sh",
        "-c",
        "rm /etc/group && rm -rf /home && mkdir -p /data/sub && echo one > /data/sub/f \
         && ln -s /data/sub/f /data/link && ln /data/sub/f /data/hard \
         && rm -rf /usr/bin && mkdir /usr/bin && echo 'echo replaced' > /usr/bin/zz",
    ]);
    let id = commit(&env, &["c1", "img1"]);
    let out = env.ok(&[
        "run",
        "--rm",
        "img1",
        "sh",
        "-c",
        "test ! -e /etc/group && test ! -e /home && cat /data/link && \
         stat -c %h /data/hard && ls /usr/bin && cat /etc/passwd | head -1",
    ]);
    assert_eq!(out, "one\n2\nzz\nroot:x:0:0:root:/root:/bin/sh\n");
    let v = env.inspect("img1");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Parent"], env.inspect_image(BB)["Id"]);

    // A container on the new image: what the image deleted comes back as added,
    // what the replaced directory hides below it is new.
    env.ok(&[
        "run",
        "--name",
        "c2",
        "img1",
        "sh",
        "-c",
        "echo g > /etc/group && touch /usr/bin/ls /usr/bin/zz",
    ]);
    assert_eq!(
        lines(&env.ok(&["diff", "c2"])),
        [
            "C /etc",
            "A /etc/group",
            // Something changed inside it (Docker's daemon lists it too).
            "C /usr",
            "C /usr/bin",
            "A /usr/bin/ls",
            "C /usr/bin/zz"
        ]
    );
    commit(&env, &["c2", "img2"]);
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "img2",
            "sh",
            "-c",
            "cat /etc/group; ls /usr/bin; ls -d /home 2>&1 || true"
        ]),
        "g\nls\nzz\nls: /home: No such file or directory\n"
    );
}

#[test]
fn commit_applies_changes_that_run_honours() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "cc",
        BB,
        "sh",
        "-c",
        "mkdir /w && echo from-w > /w/f",
    ]);

    commit(&env, &["-c", r#"CMD ["echo","hi"]"#, "cc", "cmd-img"]);
    assert_eq!(env.ok(&["run", "--rm", "cmd-img"]), "hi\n");

    commit(
        &env,
        &[
            "--change",
            "ENV A=b C=\"two words\"",
            "-c",
            "WORKDIR /w",
            "-c",
            "CMD cat f; echo $A $C",
            "cc",
            "env-img",
        ],
    );
    assert_eq!(env.ok(&["run", "--rm", "env-img"]), "from-w\nb two words\n");
    assert_eq!(env.ok(&["run", "--rm", "env-img", "pwd"]), "/w\n");

    commit(&env, &["-c", r#"ENTRYPOINT ["echo","ep"]"#, "cc", "ep-img"]);
    // A new entrypoint drops the command the container ran.
    assert_eq!(env.ok(&["run", "--rm", "ep-img"]), "ep\n");
    assert_eq!(env.ok(&["run", "--rm", "ep-img", "x", "y"]), "ep x y\n");

    commit(
        &env,
        &[
            "-c",
            "USER app",
            "-c",
            "EXPOSE 80 53/udp",
            "-c",
            "LABEL team=infra",
            "-c",
            "VOLUME /data",
            "-c",
            "STOPSIGNAL SIGINT",
            "cc",
            "cfg-img",
        ],
    );
    assert_eq!(env.ok(&["run", "--rm", "cfg-img", "id", "-un"]), "app\n");
    let cfg = env.inspect("cfg-img")["Config"].clone();
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["Labels"]["team"], "infra");
    assert!(cfg["ExposedPorts"].get("80/tcp").is_some(), "{cfg}");
    assert!(cfg["ExposedPorts"].get("53/udp").is_some(), "{cfg}");
    assert!(cfg["Volumes"].get("/data").is_some(), "{cfg}");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    // The container's hostname is not baked into the image.
    let env_list = cfg["Env"].as_array().cloned().unwrap_or_default();
    assert!(
        !env_list
            .iter()
            .any(|e| e.as_str().is_some_and(|s| s.starts_with("HOSTNAME="))),
        "{cfg}"
    );
}

#[test]
fn bad_change_or_reference_fails_and_creates_nothing() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "cc", BB, "sh", "-c", "echo x > /x"]);
    let (images, layers, blobs) = (image_ids(&env), layer_dirs(&env), blob_count(&env));
    for (args, reason) in [
        (
            vec!["-c", "FROM busybox"],
            "Error: from is not a valid change command",
        ),
        (vec!["-c", "EXPOSE nope"], "Error: Invalid containerPort: nope"),
        (vec!["-c", "CMD"], "CMD requires at least one argument"),
        (
            vec!["-c", "ENV A=\"unterminated"],
            "Error: failed to process \"\\\"unterminated\": unexpected end of statement while looking for matching double-quote",
        ),
    ] {
        let mut all = vec!["commit"];
        all.extend(args.iter().copied());
        all.extend(["cc", "bad-img"]);
        let (out, err) = env.fails(&all, 1);
        assert_eq!(out, "");
        // Docker's words alone.
        assert!(err.starts_with("Error: "), "{err}");
        assert!(err.contains(reason), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // The docker CLI's words: the repository as it would be stored.
    let (_, err) = env.fails(&["commit", "cc", "Bad:Ref"], 1);
    assert!(
        err.contains("repository name (library/Bad) must be lowercase"),
        "{err}"
    );
    let (_, err) = env.fails(&["commit", "nope"], 1);
    assert!(err.contains("No such container: nope"), "{err}");
    assert_eq!(image_ids(&env), images);
    assert_eq!(layer_dirs(&env), layers);
    assert_eq!(blob_count(&env), blobs);
    assert!(env
        .fails(&["image", "inspect", "bad-img"], 1)
        .1
        .contains("No such image"));
}

#[test]
fn message_and_author_show_in_history_and_inspect() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "cc", BB, "sh", "-c", "echo 12345 > /f"]);
    let id = commit(
        &env,
        &["-m", "add f", "-a", "Ann <ann@example.com>", "cc", "hist:1"],
    );
    let v = env.inspect("hist:1");
    assert_eq!(v["Comment"], "add f");
    assert_eq!(v["Author"], "Ann <ann@example.com>");

    let base = env.inspect_image(BB)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let out = env.ok(&["history", "hist:1"]);
    let rows = lines(&out);
    assert_eq!(rows.len(), 3, "{out}");
    let header: Vec<&str> = rows[0]
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    );
    assert!(
        rows[1].starts_with(&id["sha256:".len().."sha256:".len() + 12]),
        "{out}"
    );
    // The container's command, cut to 45 columns with an ellipsis.
    assert!(rows[1].contains("sh -c echo 12345 > /f"), "{out}");
    assert!(rows[1].contains("6B"), "{out}");
    assert!(rows[1].trim_end().ends_with("add f"), "{out}");
    assert!(rows[1].contains("ago"), "{out}");
    assert!(
        rows[2].starts_with(&base["sha256:".len().."sha256:".len() + 12]),
        "{out}"
    );
    assert!(rows[2].trim_end().ends_with("Imported from -"), "{out}");

    assert_eq!(
        env.ok(&["history", "-q", "--no-trunc", "hist:1"]),
        format!("{id}\n{base}\n")
    );
    assert_eq!(
        env.ok(&[
            "image",
            "history",
            "--format",
            "{{.ID}}|{{.Size}}|{{.Comment}}",
            "-H=false",
            "hist:1"
        ]),
        format!(
            "{}|6|add f\n{}|{}|Imported from -\n",
            &id[7..19],
            &base[7..19],
            {
                // The base layer's size without -H: a plain number.
                let o = env.ok(&["history", "--format", "{{.Size}}", "-H=false", BB]);
                o.trim().to_string()
            }
        )
    );

    // Long commands are cut unless --no-trunc.
    let long = format!("echo {} > /g", "x".repeat(60));
    env.ok(&["run", "--name", "long", BB, "sh", "-c", &long]);
    commit(&env, &["long", "long-img"]);
    let out = env.ok(&["history", "long-img"]);
    let first = lines(&out)[1];
    assert!(
        first.contains(&format!(
            "sh -c echo {}…",
            "x".repeat(45 - "sh -c echo ".len() - 1)
        )),
        "{out}"
    );
    assert!(env
        .ok(&["history", "--no-trunc", "long-img"])
        .contains(&format!("sh -c {long}")));
}

#[test]
fn layers_are_shared_not_copied() {
    let env = TestEnv::with_busybox();
    let base_layers = layer_dirs(&env);
    assert_eq!(base_layers.len(), 1);
    env.ok(&["run", "--name", "ca", BB, "sh", "-c", "echo a > /a"]);
    env.ok(&["run", "--name", "cb", BB, "sh", "-c", "echo b > /b"]);
    commit(&env, &["ca", "img-a"]);
    commit(&env, &["cb", "img-b"]);
    // One new layer each; the base is stored once and both images stand on it.
    let layers = layer_dirs(&env);
    assert_eq!(layers.len(), 3, "{layers:?}");
    let (la, lb) = (lower_dirs(&env, "img-a"), lower_dirs(&env, "img-b"));
    assert_eq!(la.len(), 2);
    assert_eq!(la[1], lb[1]);
    assert!(la[1].ends_with(&base_layers[0]), "{la:?}");
    assert_ne!(la[0], lb[0]);
    // An image on an image adds one more.
    env.ok(&["run", "--name", "cc", "img-a", "sh", "-c", "echo c > /c"]);
    commit(&env, &["cc", "img-c"]);
    assert_eq!(layer_dirs(&env).len(), 4);
    assert_eq!(lower_dirs(&env, "img-c")[1..], la[..]);
    assert_eq!(
        env.ok(&["run", "--rm", "img-c", "cat", "/a", "/c"]),
        "a\nc\n"
    );
}

#[test]
fn images_tree_and_dot_show_parents_and_children() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "ca", BB, "true"]);
    let a = commit(&env, &["ca", "child-a"]);
    env.ok(&["run", "--name", "cb", BB, "true"]);
    let b = commit(&env, &["cb"]);
    env.ok(&["run", "--name", "cc", "child-a", "true"]);
    let c = commit(&env, &["cc", "grandchild:v1"]);
    let base = env.inspect_image(BB)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let short = |id: &str| id[7..19].to_string();

    let tree = env.ok(&["images", "--tree"]);
    let rows = lines(&tree);
    assert_eq!(rows.len(), 4, "{tree}");
    assert!(
        rows[0].starts_with(&format!("└─{} Virtual Size: ", short(&base))),
        "{tree}"
    );
    assert!(rows[0].ends_with(" Tags: bb:latest"), "{tree}");
    assert!(
        rows[1].starts_with(&format!("  ├─{} ", short(&a))),
        "{tree}"
    );
    assert!(rows[1].ends_with(" Tags: child-a:latest"), "{tree}");
    assert!(
        rows[2].starts_with(&format!("  │ └─{} ", short(&c))),
        "{tree}"
    );
    assert!(rows[2].ends_with(" Tags: grandchild:v1"), "{tree}");
    assert!(
        rows[3].starts_with(&format!("  └─{} ", short(&b))),
        "{tree}"
    );
    assert!(!rows[3].contains("Tags:"), "{tree}");
    assert!(env.ok(&["images", "--tree", "--no-trunc"]).contains(&c));

    let dot = env.ok(&["images", "--format", "dot"]);
    assert!(
        dot.starts_with("digraph images {\n") && dot.ends_with("}\n"),
        "{dot}"
    );
    for (p, ch) in [(&base, &a), (&base, &b), (&a, &c)] {
        assert!(
            dot.contains(&format!("\"{}\" -> \"{}\"", short(p), short(ch))),
            "{dot}"
        );
    }
    assert!(dot.contains("grandchild:v1"), "{dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{dot}");
    if Path::new("/usr/bin/dot").exists() {
        let png = env.root.path().join("graph.png");
        let mut child = Command::new("/usr/bin/dot")
            .arg("-Tpng")
            .arg("-o")
            .arg(&png)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "dot refused:\n{dot}");
        assert!(fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    }
}

#[test]
fn removing_a_parent_image_with_children_is_refused() {
    let env = TestEnv::with_busybox();
    env.ok(&["run", "--name", "cc", BB, "true"]);
    commit(&env, &["cc", "kid"]);
    env.ok(&["rm", "cc"]);
    let base = env.inspect_image(BB)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, err) = env.fails(&["rmi", "-f", &base], 1);
    assert!(err.contains("image has dependent child images"), "{err}");
    assert_eq!(env.inspect(&base)["Id"], base.as_str());
    // By its last tag it is untagged, as Docker does, and stays for the child.
    assert_eq!(env.ok(&["rmi", BB]), "Untagged: bb:latest\n");
    assert_eq!(env.inspect_image(&base)["Id"], base.as_str());
    env.ok(&["tag", &base, BB]);
    // Once the child is gone, the parent goes too, and with it every layer.
    env.ok(&["rmi", "kid"]);
    env.ok(&["rmi", BB]);
    assert_eq!(layer_dirs(&env), Vec::<String>::new());
}

#[test]
fn commit_of_a_running_container_pauses_it_and_lets_it_run_on() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        BB,
        "sh",
        "-c",
        "echo started > /started; i=0; while true; do i=$((i+1)); echo $i > /count; done",
    ]);
    poll(
        "the container to write /started",
        Duration::from_secs(20),
        || {
            env.ok(&["diff", "busy"])
                .contains("A /started")
                .then_some(())
        },
    );
    let id = commit(&env, &["busy", "live"]);
    let v = env.inspect("busy");
    assert_eq!(v["State"]["Status"], "running", "{v}");
    // Thawed: the container answers and keeps counting.
    let count = || -> u64 {
        env.ok(&["exec", "busy", "cat", "/count"])
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let first = count();
    poll(
        "the counter to move on after the commit",
        Duration::from_secs(20),
        || (count() > first).then_some(()),
    );
    assert_eq!(
        env.ok(&["run", "--rm", "--entrypoint", "cat", &id, "/started"]),
        "started\n"
    );
    // Without pausing, too.
    commit(&env, &["--pause=false", "busy", "live:2"]);
    assert_eq!(env.inspect("busy")["State"]["Status"], "running");
    env.ok(&["rm", "-f", "busy"]);
    let _: Value = env.inspect("live:2");
}

#[test]
fn kill_9_during_commit_leaves_a_consistent_store() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "many",
        BB,
        "sh",
        "-c",
        "mkdir /d; i=0; while [ $i -lt 3000 ]; do echo $i > /d/f$i; i=$((i+1)); done; echo done > /ready; sleep 1000",
    ]);
    poll("the files to be written", Duration::from_secs(60), || {
        env.ok(&["diff", "many"]).contains("A /ready").then_some(())
    });
    // Kill the commit at once: wherever it is (reading the files with the
    // container frozen, writing the blob, unpacking), nothing may break.
    let mut child = env.berth(&["commit", "many", "half"]);
    let mut child = child
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // The store answers, no half image exists, and the container is not
    // left frozen: it can be stopped and committed again.
    let images = env.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(
        !images.contains("half") || env.ok(&["run", "--rm", "half", "cat", "/ready"]) == "done\n"
    );
    let id = commit(&env, &["many", "whole"]);
    assert_eq!(env.ok(&["run", "--rm", &id, "cat", "/ready"]), "done\n");
    // A commit killed while the container was frozen leaves it frozen:
    // stop must still work (it thaws first).
    let cid = env.inspect("many")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let state = Path::new("/sys/fs/cgroup/freezer")
        .join(&env.cgroup_parent)
        .join(&cid)
        .join("freezer.state");
    if state.exists() {
        fs::write(&state, "FROZEN").unwrap();
        poll("the container to freeze", Duration::from_secs(10), || {
            (fs::read_to_string(&state).unwrap_or_default().trim() == "FROZEN").then_some(())
        });
    }
    env.ok(&["stop", "-t", "1", "many"]);
    assert_eq!(env.inspect("many")["State"]["Status"], "exited");
}
