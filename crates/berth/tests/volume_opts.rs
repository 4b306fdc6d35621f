mod common;

// `volume create -o`: the local driver's options (type, device, o) as
// Docker's: checked at create, shown by inspect, mounted for each container
// that uses the volume. Reference: Docker 20.10 on this machine.

use common::*;

#[test]
fn a_tmpfs_volume_is_mounted_with_its_options_for_each_container() {
    let env = TestEnv::with_busybox();
    let name = env.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=10m,uid=1000",
        "tv",
    ]);
    assert_eq!(name.trim(), "tv");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["volume", "inspect", "tv"]))
        .unwrap_or_else(|e| panic!("volume inspect: {e}"));
    let v = &v[0];
    assert_eq!(
        v["Options"],
        serde_json::json!({"device": "tmpfs", "o": "size=10m,uid=1000", "type": "tmpfs"})
    );
    // RFC 3339 to the second, as Docker's.
    let created = v["CreatedAt"].as_str().unwrap_or("");
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
    let out = sh(
        &env,
        &["-v", "tv:/data"],
        "grep ' /data ' /proc/mounts; stat -c '%u %a' /data; echo x > /data/f; cat /data/f",
    );
    let mut lines = out.lines();
    let mount = lines.next().unwrap_or("");
    assert!(
        mount.starts_with("tmpfs /data tmpfs ") && mount.contains("size=10240k"),
        "{out}"
    );
    assert_eq!(lines.next(), Some("1000 1777"));
    assert_eq!(lines.next(), Some("x"));
    // Nothing of it on the host: the file system lived with the container.
    let data = env.root.path().join("volumes/tv/_data");
    assert_eq!(std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0), 0);
    assert_eq!(sh(&env, &["-v", "tv:/data"], "ls -A /data").trim(), "");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        !mounts.contains(env.root.path().to_str().unwrap_or("?")),
        "a mount under the test root is left on the host"
    );
}

#[test]
fn a_bind_volume_binds_its_device() {
    let env = TestEnv::with_busybox();
    let src = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(src.path().join("hello"), "hi\n").unwrap_or_else(|e| panic!("{e}"));
    let dev = format!("device={}", src.path().display());
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &dev,
        "-o",
        "o=bind",
        "bv",
    ]);
    assert_eq!(
        sh(&env, &["-v", "bv:/d"], "cat /d/hello; echo new > /d/made").trim(),
        "hi"
    );
    assert_eq!(
        std::fs::read_to_string(src.path().join("made")).unwrap_or_default(),
        "new\n"
    );
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &dev,
        "-o",
        "o=bind,ro",
        "ro",
    ]);
    let out = run_sh(&env, &["-v", "ro:/d"], "touch /d/x");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Read-only file system"));
}

#[test]
fn bad_options_are_refused_in_dockers_words_and_create_nothing() {
    let env = TestEnv::with_busybox();
    for (opts, msg) in [
        (&["-o", "foo=bar"][..], "create vv: invalid option: \"foo\""),
        (
            &["-o", "type=tmpfs"][..],
            "create vv: missing required option: \"device\"",
        ),
        (
            &["-o", "o=size=1m"][..],
            "create vv: missing required option: \"device\"",
        ),
        (
            &["-o", "device=/tmp"][..],
            "create vv: missing required option: \"type\"",
        ),
        (
            &["-o", "size=1m"][..],
            "create vv: quota size requested but no quota support",
        ),
    ] {
        let mut a = vec!["volume", "create"];
        a.extend_from_slice(opts);
        a.push("vv");
        let (_, err) = env.fails(&a, 1);
        assert_eq!(err.trim(), format!("Error: {msg}"), "{opts:?}");
    }
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "");
    assert!(!env.root.path().join("volumes/vv").exists());
    // A file system the kernel refuses fails the start with its words.
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=bogusfs",
        "-o",
        "device=x",
        "bad",
    ]);
    let out = run_sh(&env, &["-v", "bad:/d"], "true");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("error while mounting volume at /d: bogusfs x"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn mount_volume_opt_creates_the_volume_with_its_options() {
    let env = TestEnv::with_busybox();
    let spec = "type=volume,src=mv,dst=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-driver=local";
    let out = sh(
        &env,
        &["--mount", spec],
        "grep ' /d ' /proc/mounts | cut -d' ' -f1-3",
    );
    assert_eq!(out.trim(), "tmpfs /d tmpfs");
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{json .Options}}", "mv"])
            .trim(),
        r#"{"device":"tmpfs","type":"tmpfs"}"#
    );
    let spec = "type=volume,src=mv2,dst=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs";
    env.ok(&["create", "--name", "mvc", "--mount", spec, BB, "true"]);
    assert_eq!(
        inspect_f(&env, "{{json .HostConfig.Mounts}}", "mvc"),
        r#"[{"Type":"volume","Source":"mv2","Target":"/d","VolumeOptions":{"DriverConfig":{"Options":{"device":"tmpfs","type":"tmpfs"}}}}]"#
    );
    let (_, err) = env.fails(
        &[
            "create",
            "--mount",
            "type=volume,src=mv5,dst=/d,volume-opt=foo=bar",
            BB,
            "true",
        ],
        1,
    );
    assert_eq!(err.trim(), "Error: create mv5: invalid option: \"foo\"");
    let (_, err) = env.fails(
        &[
            "create",
            "--mount",
            "type=volume,src=mv3,dst=/d,volume-driver=bogus",
            BB,
            "true",
        ],
        1,
    );
    assert!(err.contains("plugin \"bogus\" not found"), "{err}");
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
}
