//! `--mount type=bind|volume|tmpfs,…`: Docker's long form of `-v` and
//! `--tmpfs`, its errors, and how `inspect` records it.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

#[test]
fn binds_volumes_and_tmpfs_are_mounted() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    fs::write(dir.path().join("f"), "host\n").unwrap_or_else(|e| panic!("write: {e}"));
    let src = dir.path().display().to_string();
    let out = env.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={src},target=/rw"),
        "--mount",
        &format!("type=bind,src={src},dst=/ro,readonly"),
        "--mount",
        &format!("type=bind,src={src},destination=/rw2,ro=false,bind-propagation=rprivate"),
        "--mount",
        "type=volume,src=vol1,dst=/v,volume-nocopy",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1700",
        BB,
        "sh",
        "-c",
        "cat /ro/f; echo c > /rw/c && echo wrote; touch /ro/x 2>&1; touch /rw2/y && echo wrote2; \
         echo v > /v/v; grep ' /t ' /proc/mounts; ls -ld /t | cut -c1-10",
    ]);
    assert!(out.contains("host\n"), "{out}");
    assert!(out.contains("wrote\n") && out.contains("wrote2\n"), "{out}");
    assert!(out.contains("touch: /ro/x: Read-only file system"), "{out}");
    assert!(
        out.contains("tmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1700"),
        "{out}"
    );
    assert!(out.contains("drwx-----T"), "{out}");
    assert!(dir.path().join("c").exists() && dir.path().join("y").exists());
    // The named volume outlives the container, as with `-v`.
    let out = env.ok(&[
        "run",
        "--rm",
        "--mount",
        "src=vol1,dst=/w",
        BB,
        "cat",
        "/w/v",
    ]);
    assert_eq!(out, "v\n");
}

#[test]
fn inspect_shows_the_mounts_as_docker() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let src = dir.path().display().to_string();
    env.ok(&[
        "create",
        "--name",
        "mm",
        "--mount",
        &format!("type=bind,src={src},dst=/b,ro,bind-recursive=disabled"),
        "--mount",
        "type=volume,src=vv,dst=/v,volume-nocopy,volume-label=a=b",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1700",
        "--mount",
        &format!("type=bind,src={src},dst=/b2,bind-propagation=rprivate"),
        "--mount",
        "type=volume,dst=/anon",
        BB,
        "true",
    ]);
    let v = env.inspect("mm");
    assert_eq!(
        v["HostConfig"]["Mounts"],
        json!([
            {"Type": "bind", "Source": src, "Target": "/b", "ReadOnly": true,
             "BindOptions": {"NonRecursive": true}},
            {"Type": "volume", "Source": "vv", "Target": "/v",
             "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"}, "DriverConfig": {}}},
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 960}},
            {"Type": "bind", "Source": src, "Target": "/b2",
             "BindOptions": {"Propagation": "rprivate"}},
            {"Type": "volume", "Target": "/anon"},
        ])
    );
    // The new volume has the labels.
    let vol = env.ok(&["volume", "inspect", "-f", "{{json .Labels}}", "vv"]);
    assert_eq!(vol.trim(), r#"{"a":"b"}"#);
    assert_eq!(v["HostConfig"]["Binds"], json!(null));
    assert_eq!(v["HostConfig"].get("Tmpfs"), None);
    let mounts = v["Mounts"].as_array().cloned().unwrap_or_default();
    assert_eq!(mounts.len(), 5, "{mounts:?}");
    assert_eq!(
        mounts[0],
        json!({"Type": "bind", "Source": src, "Destination": "/b", "Mode": "",
               "RW": false, "Propagation": "rprivate"})
    );
    assert_eq!(mounts[1]["Name"], "vv");
    assert_eq!(mounts[1]["Driver"], "local");
    assert_eq!(mounts[1]["Mode"], "z");
    assert_eq!(mounts[1]["RW"], true);
    assert!(
        mounts[1]["Source"]
            .as_str()
            .is_some_and(|s| s.ends_with("/volumes/vv/_data")),
        "{mounts:?}"
    );
    assert_eq!(
        mounts[2],
        json!({"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "",
               "RW": true, "Propagation": ""})
    );
    assert!(
        mounts[4]["Name"].as_str().is_some_and(is_full_id),
        "{mounts:?}"
    );
    // Without --mount, HostConfig.Mounts is absent, as Docker's.
    env.ok(&["create", "--name", "plain", "-v", "/x", BB, "true"]);
    assert_eq!(env.inspect("plain")["HostConfig"].get("Mounts"), None);
}

#[test]
fn bad_mounts_are_refused_with_dockers_words_and_nothing_made() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let missing = dir.path().join("missing").display().to_string();
    let src = dir.path().display().to_string();
    let cases = [
        ("type=bind".to_string(), "invalid argument \"type=bind\" for \"--mount\" flag: target is required".to_string()),
        (
            format!("type=bind,src={missing},dst=/x"),
            format!("invalid mount config for type \"bind\": bind source path does not exist: {missing}"),
        ),
        (
            format!("type=bind,src={src},dst=/x,foo=bar"),
            "flag: unexpected key 'foo' in 'foo=bar'".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=/x,readonly=maybe"),
            "flag: invalid value for readonly: maybe".to_string(),
        ),
        (
            "type=tmpfs,dst=/x,tmpfs-size=abc".to_string(),
            "flag: invalid value for tmpfs-size: abc".to_string(),
        ),
        (
            "type=foo,dst=/x".to_string(),
            "invalid mount config for type \"foo\": mount type unknown".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=/x,volume-nocopy"),
            "flag: cannot mix 'volume-*' options with mount type 'bind'".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=/x,bind-recursive=bogus"),
            "flag: invalid value for bind-recursive: bogus (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")".to_string(),
        ),
        (
            "type=bind,src=rel,dst=/x".to_string(),
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=rel"),
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute".to_string(),
        ),
        (
            "type=tmpfs,src=foo,dst=/x".to_string(),
            "invalid mount config for type \"tmpfs\": field Source must not be specified".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=/x,bind-recursive=readonly"),
            "flag: option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=/x,bind-propagation=bogus"),
            "invalid mount config for type \"bind\": invalid propagation mode: bogus".to_string(),
        ),
        (
            "type=volume,src=bad@name,dst=/x".to_string(),
            "create bad@name: \"bad@name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=/m"),
            "Duplicate mount point: /m".to_string(),
        ),
        (
            format!("type=bind,src={src},dst=/x,bind-propagation=rshared"),
            "propagation rshared is not supported".to_string(),
        ),
    ];
    for (spec, want) in &cases {
        for verb in ["run", "create"] {
            // The daemon's refusals are 1 for `create`, as Docker's.
            let code = if verb == "create" && !want.contains("flag:") {
                1
            } else {
                125
            };
            let (_, err) = env.fails(
                &[
                    verb,
                    "--mount",
                    "type=volume,src=made,dst=/m",
                    "--mount",
                    spec,
                    BB,
                    "true",
                ],
                code,
            );
            let first = err.lines().next().unwrap_or_default();
            assert!(first.contains(want.as_str()), "{spec}: {err}");
        }
    }
    assert!(
        !Path::new(&missing).exists(),
        "--mount made the bind source"
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
}

/// Runs `berth ARGS` in a mount namespace of its own where `sub`, under
/// the bind's source, is a tmpfs (it dies with the command).
fn run_with_submount(env: &TestEnv, sub: &Path, args: &[&str]) -> String {
    let cmd = env.berth(args);
    let mut line = format!("mount -t tmpfs berth-test '{}' && exec", sub.display());
    line.push_str(&format!(" '{}'", cmd.get_program().to_string_lossy()));
    for a in cmd.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    let mut unshare = Command::new("unshare");
    unshare
        .args(["-m", "--propagation", "private", "sh", "-c", &line])
        .stdin(Stdio::null());
    let out = output_with_timeout(unshare, COMMAND_TIMEOUT);
    let seen = text(&out.stdout);
    assert!(out.status.success(), "{seen}{}", text(&out.stderr));
    seen
}

#[test]
fn a_readonly_bind_mount_is_read_only_all_the_way_down() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let seen = run_with_submount(
        &env,
        &sub,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={},dst=/h,readonly", dir.path().display()),
            BB,
            "sh",
            "-c",
            "touch /h/sub/x 2>&1; touch /h/y 2>&1; grep -F \" /h/sub \" /proc/self/mountinfo | cut -d\" \" -f6",
        ],
    );
    assert!(
        seen.contains("touch: /h/sub/x: Read-only file system"),
        "{seen}"
    );
    assert!(
        seen.contains("touch: /h/y: Read-only file system"),
        "{seen}"
    );
    assert!(
        seen.lines().last().is_some_and(|l| l.starts_with("ro,")),
        "{seen}"
    );
}

#[test]
fn bind_recursive_disabled_leaves_the_submounts_out() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let script = "grep -cF \" /h/sub \" /proc/self/mountinfo; true";
    let src = dir.path().display();
    let with = run_with_submount(
        &env,
        &sub,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={src},dst=/h"),
            BB,
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(with, "1\n");
    let without = run_with_submount(
        &env,
        &sub,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={src},dst=/h,bind-recursive=disabled"),
            BB,
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(without, "0\n");
}

#[test]
fn volumes_from_shares_the_other_containers_binds_and_volumes() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let other = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let src = dir.path().display().to_string();
    env.ok(&[
        "create",
        "--name",
        "src",
        "-v",
        &format!("{src}:/b"),
        "-v",
        "named:/n",
        "-v",
        "/anon",
        "--mount",
        "type=tmpfs,dst=/t",
        BB,
        "true",
    ]);
    let out = env.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        BB,
        "sh",
        "-c",
        "echo b > /b/f && echo n > /n/f && echo a > /anon/f && echo ok; grep -c ' /t ' /proc/mounts; true",
    ]);
    assert_eq!(out, "ok\n0\n");
    assert_eq!(
        fs::read_to_string(dir.path().join("f")).ok().as_deref(),
        Some("b\n")
    );
    // :ro makes them read-only; a -v at the same path wins.
    env.ok(&[
        "create",
        "--name",
        "dst",
        "--volumes-from",
        "src:ro",
        "-v",
        &format!("{}:/n", other.path().display()),
        BB,
        "sh",
        "-c",
        "cat /b/f /anon/f; touch /b/x 2>&1; touch /anon/x 2>&1; touch /n/x && echo wrote",
    ]);
    let out = env.ok(&["start", "-a", "dst"]);
    assert!(out.starts_with("b\na\n"), "{out}");
    assert!(out.contains("touch: /b/x: Read-only file system"), "{out}");
    assert!(
        out.contains("touch: /anon/x: Read-only file system"),
        "{out}"
    );
    assert!(out.ends_with("wrote\n"), "{out}");
    let v = env.inspect("dst");
    assert_eq!(v["HostConfig"]["VolumesFrom"], json!(["src:ro"]));
    assert_eq!(v["HostConfig"].get("Mounts"), None);
    let mounts = v["Mounts"].as_array().cloned().unwrap_or_default();
    let at = |d: &str| mounts.iter().find(|m| m["Destination"] == d).cloned();
    assert_eq!(
        at("/b"),
        Some(
            json!({"Type": "bind", "Source": src, "Destination": "/b", "Mode": "",
                    "RW": false, "Propagation": "rprivate"})
        )
    );
    assert_eq!(at("/n").map(|m| m["Type"].clone()), Some(json!("bind")));
    assert_eq!(at("/anon").map(|m| m["RW"].clone()), Some(json!(false)));
    assert_eq!(at("/t"), None);
    // Removing the borrower with -v leaves the lender's anonymous volume.
    env.ok(&["rm", "-v", "dst"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 2);
    // Errors as Docker's, nothing made.
    let (_, err) = env.fails(&["create", "--volumes-from", "nosuch", BB, "true"], 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
    let (_, err) = env.fails(&["run", "--volumes-from", "src:bogus", BB, "true"], 125);
    assert!(err.contains("invalid mode: bogus"), "{err}");
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn bind_recursive_writable_keeps_the_submounts_writable() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let seen = run_with_submount(
        &env,
        &sub,
        &[
            "run",
            "--rm",
            "--mount",
            &format!(
                "type=bind,src={},dst=/h,readonly,bind-recursive=writable",
                dir.path().display()
            ),
            BB,
            "sh",
            "-c",
            "touch /h/sub/x && echo wrote; touch /h/y 2>&1; true",
        ],
    );
    assert_eq!(seen, "wrote\ntouch: /h/y: Read-only file system\n");
}
