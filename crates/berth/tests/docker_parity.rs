//! Differences scripts/docker-diff/docker-diff.py found between berth and
//! Docker (dockerd 20.10 with the docker 28 CLI), one test each: list
//! formats' JSON, image sizes, what `image inspect --format` sees, reference
//! and missing-image errors in Docker's words.
mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn json_line(s: &str) -> Value {
    let line = s.lines().next().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// A layer's size is Docker's: file content plus each symlink's target.
#[test]
fn image_size_counts_symlink_targets_as_docker() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/prog"), vec![7u8; 1000]).unwrap();
    std::os::unix::fs::symlink("/bin/prog", root.join("bin/link")).unwrap();
    let tar = dir.path().join("img.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&["import", tar.to_str().unwrap(), "sized"]);
    let img = env.inspect_image("sized");
    assert_eq!(img["Size"], 1000 + "/bin/prog".len() as u64, "{img}");
}

/// `ps --format '{{json .}}'`: Docker's keys, `LocalVolumes`, `Platform`
/// null, `Mounts` cut to 15 columns, and the size measured because the
/// format shows it.
#[test]
fn ps_json_has_dockers_keys_and_values() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "create", "--name", "c1", "-l", "a=b", "-v", "/data", BB, "true",
    ]);
    let row = json_line(&env.ok(&["ps", "-a", "--format", "{{json .}}"]));
    assert_eq!(
        keys(&row),
        [
            "Command",
            "CreatedAt",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Names",
            "Networks",
            "Platform",
            "Ports",
            "RunningFor",
            "Size",
            "State",
            "Status"
        ]
    );
    assert_eq!(row["LocalVolumes"], "1");
    assert_eq!(row["Platform"], Value::Null);
    let mounts = row["Mounts"].as_str().unwrap_or_default();
    assert_eq!(mounts.chars().count(), 15, "{mounts}");
    assert!(mounts.ends_with('…'), "{mounts}");
    let size = row["Size"].as_str().unwrap_or_default();
    assert!(
        size.starts_with("0B (virtual ") && size.ends_with("MB)"),
        "{size}"
    );
    let full = env.ok(&["ps", "-a", "--no-trunc", "--format", "{{.Mounts}}"]);
    assert_eq!(full.trim().len(), 64, "{full}");
    // Not asked for: not measured.
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{.Names}} {{.LocalVolumes}}"]),
        "c1 1\n"
    );
}

/// `images --format '{{json .}}'`: Docker's keys, "N/A" for what only
/// `system df` computes, `VirtualSize` with 4 digits.
#[test]
fn images_json_has_dockers_keys_and_values() {
    let env = TestEnv::with_busybox();
    let row = json_line(&env.ok(&["images", "--format", "{{json .}}"]));
    assert_eq!(
        keys(&row),
        [
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize"
        ]
    );
    for k in ["Containers", "SharedSize", "UniqueSize"] {
        assert_eq!(row[k], "N/A", "{k}");
    }
    let size = env.inspect_image(BB)["Size"].as_u64().unwrap_or_default();
    let mb = size as f64 / 1e6;
    assert_eq!(row["VirtualSize"], format!("{mb:.3}MB"));
    let table = env.ok(&[
        "images",
        "--format",
        "table {{.Containers}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.VirtualSize}}",
    ]);
    assert_eq!(
        table.lines().next().unwrap_or_default(),
        "CONTAINERS   SHARED SIZE   UNIQUE SIZE   SIZE"
    );
}

/// `image inspect --format` runs on the image as the docker CLI's typed
/// struct holds it: an OCI config without empty fields, no empty
/// `Container`; what that lacks comes from the JSON.
#[test]
fn image_inspect_format_sees_dockers_typed_struct() {
    let env = TestEnv::with_busybox();
    let f = |tmpl: &str, img: &str| env.ok(&["image", "inspect", "--format", tmpl, img]);
    assert_eq!(f("{{json .Config}}", BB), "{}\n");
    assert_eq!(f("{{len .Config.Env}}", BB), "0\n");
    assert_eq!(f("{{.Config.Hostname}}|{{.Container}}", BB), "|\n");
    let top = json_line(&f("{{json .}}", BB));
    assert!(top.get("Container").is_none(), "{top}");
    assert!(top.get("ContainerConfig").is_some(), "{top}");
    // The JSON itself keeps Docker's 17 keys.
    let raw = env.inspect_image(BB);
    assert_eq!(raw["Config"].as_object().map(|m| m.len()), Some(17));

    let tar = busybox_tar();
    env.ok(&[
        "import",
        "-c",
        "ENV A=1",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "WORKDIR /tmp",
        tar.to_str().unwrap(),
        "withcfg",
    ]);
    assert_eq!(
        f("{{json .Config}}", "withcfg"),
        "{\"Env\":[\"A=1\"],\"Cmd\":[\"sh\"],\"WorkingDir\":\"/tmp\"}\n"
    );
    // `inspect` without --type finds the image the same way.
    assert_eq!(
        env.ok(&["inspect", "--format", "{{json .Config}}", BB]),
        "{}\n"
    );
    // A container's `Config` is untouched.
    env.ok(&["create", "--name", "c1", BB, "true"]);
    let c = json_line(&env.ok(&["inspect", "--format", "{{json .Config}}", "c1"]));
    assert!(c.get("Hostname").is_some(), "{c}");
}

/// The docker CLI checks references itself: `tag`'s words, and `commit`,
/// `import`, `create` print the error bare; `run` as its other errors.
#[test]
fn reference_errors_are_the_docker_clients() {
    let env = TestEnv::with_busybox();
    let (_, err) = env.fails(&["tag", BB, "Bad:Ref"], 1);
    assert_eq!(
        err,
        "Error parsing reference: \"Bad:Ref\" is not a valid repository/tag: invalid reference format: repository name (library/Bad) must be lowercase\n"
    );
    let (_, err) = env.fails(&["tag", BB, "a:b:c"], 1);
    assert_eq!(
        err,
        "Error parsing reference: \"a:b:c\" is not a valid repository/tag: invalid reference format\n"
    );
    let (_, err) = env.fails(&["tag", "Bad", "x"], 1);
    assert!(
        err.starts_with("Error parsing reference: \"Bad\" is not"),
        "{err}"
    );
    let digest = format!("x@sha256:{}", "0".repeat(64));
    let (_, err) = env.fails(&["tag", BB, &digest], 1);
    assert_eq!(err, "refusing to create a tag with a digest reference\n");
    env.ok(&["create", "--name", "c1", BB, "true"]);
    let (_, err) = env.fails(&["commit", "c1", "x/Y"], 1);
    assert_eq!(
        err,
        "invalid reference format: repository name (x/Y) must be lowercase\n"
    );
    let tar = busybox_tar();
    let (_, err) = env.fails(&["import", tar.to_str().unwrap(), "Bad"], 1);
    assert_eq!(
        err,
        "invalid reference format: repository name (library/Bad) must be lowercase\n"
    );
    let (_, err) = env.fails(&["create", "Bad"], 1);
    assert_eq!(
        err,
        "invalid reference format: repository name (library/Bad) must be lowercase\n"
    );
    let (_, err) = env.fails(&["run", "--rm", "Bad"], 125);
    assert_eq!(
        err,
        "berth: invalid reference format: repository name (library/Bad) must be lowercase\n\nRun 'berth run --help' for more information\n"
    );
    // Nothing was made.
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
}

/// Missing images in Docker's words: `save` names a bare name as typed,
/// `image inspect` says it twice.
#[test]
fn missing_images_in_dockers_words() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tar");
    let (_, err) = env.fails(&["save", "-o", out.to_str().unwrap(), "nosuch"], 1);
    assert_eq!(err, "Error: No such image: nosuch\n");
    let (_, err) = env.fails(&["save", "-o", out.to_str().unwrap(), BB, "nosuch:v1"], 1);
    // A tag the image store lacks, in its words.
    assert_eq!(err, "Error: reference does not exist\n");
    assert!(!out.exists());
    let (stdout, err) = env.fails(&["image", "inspect", "nosuch"], 1);
    assert_eq!(stdout, "[]\n");
    assert_eq!(
        err,
        "Error: no such image: nosuch: No such image: nosuch:latest\n"
    );
    let (_, err) = env.fails(&["inspect", "--type", "image", "nosuch:v2"], 1);
    assert_eq!(
        err,
        "Error: no such image: nosuch:v2: No such image: nosuch:v2\n"
    );
    let (_, err) = env.fails(&["inspect", "nosuch"], 1);
    assert_eq!(err, "Error: No such object: nosuch\n");
}

/// `volume rm`: a volume in use is refused even with `-f` (Docker's); `-f`
/// makes a missing one no error, printed as removed.
#[test]
fn volume_rm_force_keeps_volumes_in_use() {
    let env = TestEnv::with_busybox();
    assert_eq!(env.ok(&["volume", "rm", "-f", "nosuch"]), "nosuch\n");
    let (_, err) = env.fails(&["volume", "rm", "nosuch"], 1);
    assert_eq!(err, "Error: get nosuch: no such volume\n");
    env.ok(&["create", "--name", "c1", "-v", "v1:/d", BB, "true"]);
    let (_, err) = env.fails(&["volume", "rm", "-f", "v1"], 1);
    assert!(
        err.starts_with("Error: remove v1: volume is in use - ["),
        "{err}"
    );
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "v1\n");
}

/// `volume ls --format`: Docker's keys, "N/A" for what cluster volumes
/// have, labels as `k=v,...`; a list's nil pointer (`ps`'s `.Platform`)
/// prints `<nil>`.
#[test]
fn volume_ls_keys_and_nil_in_rows() {
    let env = TestEnv::with_busybox();
    env.ok(&["volume", "create", "--label", "a=1", "--label", "b=2", "v1"]);
    let row = json_line(&env.ok(&["volume", "ls", "--format", "{{json .}}"]));
    assert_eq!(
        keys(&row),
        [
            "Availability",
            "Driver",
            "Group",
            "Labels",
            "Links",
            "Mountpoint",
            "Name",
            "Scope",
            "Size",
            "Status"
        ]
    );
    assert_eq!(row["Labels"], "a=1,b=2");
    assert_eq!(
        env.ok(&[
            "volume",
            "ls",
            "--format",
            "table {{.Name}}\t{{.Links}}\t{{.Availability}}"
        ]),
        "VOLUME NAME   LINKS     AVAILABILITY\nv1            N/A       N/A\n"
    );
    env.ok(&["create", "--name", "c1", BB, "true"]);
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{.Platform}} {{json .Platform}}"]),
        "<nil> null\n"
    );
}

/// What the docker CLI says itself: files it cannot open, `cp` without a
/// container, `inspect --type` it does not know; `save` of a missing tag;
/// `rename` in the daemon's words.
#[test]
fn client_side_and_rename_errors_in_dockers_words() {
    let env = TestEnv::with_busybox();
    let (_, err) = env.fails(&["load", "-i", "/nonexistent.tar"], 1);
    assert_eq!(err, "open /nonexistent.tar: no such file or directory\n");
    let (_, err) = env.fails(&["import", "/nonexistent/x.tar"], 1);
    assert_eq!(err, "open /nonexistent/x.tar: no such file or directory\n");
    let (_, err) = env.fails(&["cp", "a", "b"], 1);
    assert_eq!(err, "must specify at least one container source\n");
    let (_, err) = env.fails(&["inspect", "--type", "bogus", "x"], 1);
    assert_eq!(
        err,
        "unknown type: \"bogus\": must be one of \"config\", \"container\", \"image\", \"network\", \"node\", \"plugin\", \"secret\", \"service\", \"task\", \"volume\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tar");
    let (_, err) = env.fails(&["save", "-o", out.to_str().unwrap(), "nosuch:v1"], 1);
    assert_eq!(err, "Error: reference does not exist\n");

    env.ok(&["create", "--name", "c1", BB, "true"]);
    let id = env.ok(&["create", "--name", "c2", BB, "true"]);
    let (_, err) = env.fails(&["rename", "c1", "c2"], 1);
    assert_eq!(
        err,
        format!(
            "Error: Error when allocating new name: Conflict. The container name \"/c2\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.\nError: failed to rename container named c1\n",
            id.trim()
        )
    );
    let (_, err) = env.fails(&["rename", "c1", "bad name"], 1);
    assert!(
        err.starts_with("Error: Error when allocating new name: Invalid container name (/bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed\n"),
        "{err}"
    );
}

/// A committed image records its container as Docker's commit does: the
/// container's ID and config (`Container`, `ContainerConfig`), and its own
/// fields (`Hostname`, `Attach*`, `Image`, `Labels`) in `Config`.
#[test]
fn commit_records_the_container_as_docker() {
    let env = TestEnv::with_busybox();
    let id = env.ok(&[
        "run", "--name", "c1", "-e", "A=1", "-w", "/tmp", "-h", "hh", BB, "true",
    ]);
    assert_eq!(id, "");
    let cid = env.inspect("c1")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    env.ok(&["commit", "-c", "CMD [\"sh\"]", "c1", "img"]);
    let img = env.inspect_image("img");
    assert_eq!(img["Container"], cid.as_str());
    let cfg = &img["Config"];
    assert_eq!(cfg["Hostname"], "hh");
    assert_eq!(cfg["AttachStdout"], true);
    assert_eq!(cfg["AttachStderr"], true);
    assert_eq!(cfg["Image"], BB);
    assert_eq!(cfg["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(cfg["Labels"], serde_json::json!({}));
    let ran = &img["ContainerConfig"];
    assert_eq!(ran["Hostname"], "hh");
    assert_eq!(ran["Cmd"], serde_json::json!(["true"]));
    assert_eq!(ran["Labels"], serde_json::json!({}));
    // `--format` falls back to the JSON for what the typed view lacks.
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.Hostname}} {{.Config.AttachStdout}} {{if .Container}}has{{end}}",
            "img"
        ]),
        "hh true has\n"
    );
    // A container of the image still gets a hostname of its own.
    let out = env.ok(&["run", "--rm", "img", "hostname"]);
    assert_ne!(out.trim(), "hh");
}

/// `container prune --filter`: `until=` (a time or a duration ago),
/// `label=`, `label!=`; anything else refused in Docker's words.
#[test]
fn container_prune_takes_dockers_filters() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "keep", "-l", "keep=1", BB, "true"]);
    env.ok(&["create", "--name", "plain", BB, "true"]);
    let (_, err) = env.fails(&["container", "prune", "-f", "--filter", "bogus=1"], 1);
    assert_eq!(err, "Error: Invalid filter 'bogus'\n");
    let (_, err) = env.fails(&["container", "prune", "-f", "--filter", "until=soon"], 1);
    assert_eq!(
        err,
        "Error: failed to parse value as time or duration: \"soon\"\n"
    );
    // Made less than an hour ago: nothing goes.
    assert_eq!(
        env.ok(&["container", "prune", "-f", "--filter", "until=1h"]),
        "Total reclaimed space: 0B\n"
    );
    let out = env.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(env.ok(&["ps", "-a", "--format", "{{.Names}}"]), "keep\n");
    env.ok(&["container", "prune", "-f", "--filter", "label=keep=1"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// More of Docker's words: `attach` to a stopped container (the CLI's own
/// check, bare), files `run` cannot read, a volume's nil maps in
/// `inspect --format`, the storage driver's name.
#[test]
fn attach_files_volume_maps_and_driver_in_dockers_words() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "c1", BB, "true"]);
    let (_, err) = env.fails(&["attach", "c1"], 1);
    assert_eq!(
        err,
        "You cannot attach to a stopped container, start it first\n"
    );
    for flag in ["--env-file", "--label-file"] {
        let (_, err) = env.fails(&["run", "--rm", flag, "/nonexistent", BB, "true"], 125);
        assert_eq!(
            err,
            "berth: open /nonexistent: no such file or directory\n\nRun 'berth run --help' for more information\n"
        );
    }
    env.ok(&["volume", "create", "v1"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}} {{.Labels}} {{.Options}}", "v1"]),
        "v1 map[] map[]\n"
    );
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{.Labels}}", "v1"]),
        "map[]\n"
    );
    // As dockerd's JSON after the docker CLI 28 (checked side by side): no
    // label or option given, none kept (null); a container's volume too.
    env.ok(&["volume", "create", "--label", "a=b", "v2"]);
    env.ok(&[
        "create",
        "--name",
        "withvol",
        "-v",
        "implicit1:/d",
        BB,
        "true",
    ]);
    let kept = |name: &str| -> (serde_json::Value, serde_json::Value) {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["volume", "inspect", name])).unwrap();
        (v[0]["Labels"].clone(), v[0]["Options"].clone())
    };
    let null = serde_json::Value::Null;
    assert_eq!(kept("v1"), (null.clone(), null.clone()));
    assert_eq!(kept("v2"), (serde_json::json!({"a": "b"}), null.clone()));
    assert_eq!(kept("implicit1"), (null.clone(), null));
    assert_eq!(env.ok(&["info", "--format", "{{.Driver}}"]), "overlay2\n");
}

/// `images -q` prints one ID per row, as docker's (an image with two tags
/// twice); `stop`/`restart` name their flag `-t, --timeout` (`--time`
/// still works).
#[test]
fn images_quiet_rows_and_stop_timeout_flag() {
    let env = TestEnv::with_busybox();
    env.ok(&["tag", BB, "second:v1"]);
    let ids = env.ok(&["images", "-q"]);
    let lines: Vec<&str> = ids.lines().collect();
    assert_eq!(lines.len(), 2, "{ids}");
    assert_eq!(lines[0], lines[1]);
    let (_, err) = env.fails(&["stop", "-t", "x", "c1"], 125);
    assert!(
        err.starts_with(
            "invalid argument \"x\" for \"-t, --timeout\" flag: strconv.ParseInt: parsing \"x\": invalid syntax\n"
        ),
        "{err}"
    );
    env.ok(&["run", "-d", "--name", "c1", BB, "sleep", "300"]);
    assert_eq!(env.ok(&["stop", "--time", "0", "c1"]), "c1\n");
    assert_eq!(env.ok(&["restart", "--timeout", "0", "c1"]), "c1\n");
    env.ok(&["rm", "-f", "c1"]);
}

/// Docker's init layer: `/.dockerenv`, `/etc/mtab` and the mount points are
/// there for the container and for `export` (Docker 20.10's list for a
/// busybox image, created and never started), never in `diff` or a commit.
#[test]
fn the_init_layer_is_dockers() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "c1", BB, "true"]);
    let out = output_with_timeout(env.berth(&["export", "c1"]), COMMAND_TIMEOUT);
    let listing = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut tar| {
            use std::io::Write as _;
            if let Some(mut i) = tar.stdin.take() {
                i.write_all(&out.stdout)?;
            }
            tar.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("tar -t: {e}"));
    let mut names: Vec<String> = text(&listing.stdout)
        .lines()
        .filter(|l| !l.starts_with("bin/") && !l.starts_with("usr/") && !l.starts_with("sbin/"))
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".dockerenv",
            "dev/",
            "dev/console",
            "dev/pts/",
            "dev/shm/",
            "etc/",
            "etc/group",
            "etc/hostname",
            "etc/hosts",
            "etc/mtab",
            "etc/passwd",
            "etc/resolv.conf",
            "home/",
            "home/app/",
            "proc/",
            "root/",
            "sys/",
            "tmp/",
            "var/",
        ]
    );
    let inside = sh(
        &env,
        &[],
        "stat -c '%a %s' /.dockerenv; readlink /etc/mtab; test -s /etc/hostname && echo named",
    );
    assert_eq!(inside, "755 0\n/proc/mounts\nnamed\n");
    env.ok(&["run", "--name", "c2", BB, "touch", "/x"]);
    assert_eq!(env.ok(&["diff", "c2"]), "A /x\n");
    // Shared: every container of the image stands on the same one.
    let init = env.root.path().join("init");
    assert_eq!(std::fs::read_dir(&init).map(|d| d.count()).unwrap_or(0), 1);
}
