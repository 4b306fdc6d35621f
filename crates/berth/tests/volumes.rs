//! Volumes as Docker makes them at `create`: an image's `VOLUME`s become
//! anonymous volumes, and a new (empty) volume is filled from the image's
//! content at its mount point (copy-up), unless mounted `nocopy`. Black box:
//! every check goes through the `berth` binary or the volume's directory.
mod common;

use std::path::PathBuf;

use common::*;

/// The host directory of volume `name` (`volume inspect`'s Mountpoint).
fn mountpoint(env: &TestEnv, name: &str) -> PathBuf {
    let out = env.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", name]);
    PathBuf::from(out.trim())
}

/// Entries of a directory on the host, sorted.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `seed-img`: busybox with `/seed` (0750, owned 1000:1000) holding a file
/// (0600, 1000:1000), a subdirectory with a file, and a relative symlink.
fn seed_image(env: &TestEnv) {
    env.ok(&[
        "run",
        "--name",
        "seeder",
        BB,
        "sh",
        "-c",
        "mkdir -p /seed/sub && echo hi > /seed/f && echo deep > /seed/sub/g \
         && chmod 600 /seed/f && chown 1000:1000 /seed/f /seed && chmod 750 /seed \
         && ln -s f /seed/l",
    ]);
    env.ok(&["commit", "seeder", "seed-img"]);
}

#[test]
fn image_volume_is_an_anonymous_volume() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "cc", BB, "true"]);
    env.ok(&["commit", "-c", "VOLUME /vv", "cc", "vimg"]);
    let out = env.ok(&[
        "run",
        "--name",
        "rr",
        "vimg",
        "grep",
        " /vv ",
        "/proc/mounts",
    ]);
    assert!(out.contains(" /vv "), "{out}");
    let v = env.inspect("rr");
    let mounts = v["Mounts"].as_array().cloned().unwrap_or_default();
    assert_eq!(mounts.len(), 1, "{v}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Destination"], "/vv");
    let name = mounts[0]["Name"].as_str().unwrap_or_default().to_string();
    assert!(is_full_id(&name), "anonymous volume name {name}");
    assert!(v["Config"]["Volumes"].get("/vv").is_some(), "{v}");
    assert!(env.ok(&["volume", "ls", "-q"]).contains(&name));
    // `rm -v` (and `--rm`) removes it with the container.
    env.ok(&["rm", "-v", "rr"]);
    env.ok(&["run", "--rm", "vimg", "true"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    // A mount of the user's at that path replaces it.
    let host = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bind = format!("{}:/vv/", host.path().display());
    env.ok(&["create", "--name", "bind1", "-v", &bind, "vimg"]);
    let mounts = env.inspect("bind1")["Mounts"].clone();
    assert_eq!(mounts.as_array().map(Vec::len), Some(1), "{mounts}");
    assert_eq!(mounts[0]["Type"], "bind");
    env.ok(&["create", "--name", "tmp1", "--tmpfs", "/vv", "vimg"]);
    assert_eq!(env.inspect("tmp1")["Mounts"], serde_json::json!([]));
}

#[test]
fn new_volume_gets_the_image_content() {
    let env = TestEnv::with_busybox();
    seed_image(&env);
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        "vol:/seed",
        "seed-img",
        "sh",
        "-c",
        "stat -c '%n %a %u:%g' /seed /seed/f /seed/sub; readlink /seed/l; cat /seed/f /seed/sub/g",
    ]);
    assert_eq!(
        out,
        "/seed 750 1000:1000\n/seed/f 600 1000:1000\n/seed/sub 755 0:0\nf\nhi\ndeep\n"
    );
    // Anonymous volumes, from -v and from the image's VOLUME, too.
    let out = env.ok(&["run", "--rm", "-v", "/seed", "seed-img", "cat", "/seed/f"]);
    assert_eq!(out, "hi\n");
    env.ok(&["commit", "-c", "VOLUME /seed", "seeder", "seed-vol"]);
    let out = env.ok(&["run", "--rm", "seed-vol", "cat", "/seed/sub/g"]);
    assert_eq!(out, "deep\n");
}

#[test]
fn nocopy_leaves_the_volume_empty() {
    let env = TestEnv::with_busybox();
    seed_image(&env);
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        "nc:/seed:nocopy",
        "seed-img",
        "ls",
        "-A",
        "/seed",
    ]);
    assert_eq!(out, "");
    assert!(entries(&mountpoint(&env, "nc")).is_empty());
    // `--mount`'s `volume-nocopy`, for a named and an anonymous volume;
    // `volume-nocopy=false` copies.
    for (spec, want) in [
        ("type=volume,src=nc2,dst=/seed,volume-nocopy", ""),
        ("type=volume,dst=/seed,volume-nocopy=true", ""),
        (
            "type=volume,src=nc3,dst=/seed,volume-nocopy=false",
            "f\nl\nsub\n",
        ),
    ] {
        let out = env.ok(&[
            "run", "--rm", "--mount", spec, "seed-img", "ls", "-A", "/seed",
        ]);
        assert_eq!(out, want, "{spec}");
    }
    assert!(entries(&mountpoint(&env, "nc2")).is_empty());
    // `-v /path:MODE` is a mode without a destination: Docker refuses the
    // spec as a whole; a relative destination names the mount's type.
    for (spec, want) in [
        ("/seed:nocopy", "berth: invalid volume specification: '/seed:nocopy'\n"),
        ("/seed:ro,z", "berth: invalid volume specification: '/seed:ro,z'\n"),
        (
            "/a:b",
            "berth: invalid volume specification: '/a:b': invalid mount config for type \"bind\": invalid mount path: 'b' mount path must be absolute\n",
        ),
        (
            "foo:bar",
            "berth: invalid volume specification: 'foo:bar': invalid mount config for type \"volume\": invalid mount path: 'bar' mount path must be absolute\n",
        ),
    ] {
        let (_, e) = env.fails(&["run", "--rm", "-v", spec, "seed-img", "true"], 125);
        // `run`'s errors end with where its help is, as docker 28's.
        let want = format!(
            "{}\n\nRun 'berth run --help' for more information\n",
            want.trim_end()
        );
        assert_eq!(e, want, "{spec}");
    }
}

#[test]
fn volume_with_content_is_not_overwritten() {
    let env = TestEnv::with_busybox();
    seed_image(&env);
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "full:/x",
        BB,
        "sh",
        "-c",
        "echo mine > /x/m",
    ]);
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        "full:/seed",
        "seed-img",
        "ls",
        "-A",
        "/seed",
    ]);
    assert_eq!(out, "m\n");
    // Once filled, a volume is not filled again from another image path.
    env.ok(&["create", "-v", "once:/seed", "seed-img"]);
    env.ok(&["run", "--rm", "-v", "once:/seed", BB, "rm", "/seed/f"]);
    env.ok(&["create", "-v", "once:/seed", "seed-img"]);
    assert_eq!(entries(&mountpoint(&env, "once")), ["l", "sub"]);
}

#[test]
fn symlinked_volume_path_stays_in_the_image() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "evil",
        BB,
        "sh",
        "-c",
        "ln -s / /toroot && ln -s ../../.. /up && mkdir /d && ln -s /etc/passwd /d/pw",
    ]);
    env.ok(&["commit", "evil", "evil-img"]);
    // A marker beside the volume's directory that must not be copied.
    let marker = env.root.path().join("volumes").join("MARKER-outside");
    std::fs::create_dir_all(marker.parent().unwrap_or(env.root.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&marker, "host").unwrap_or_else(|e| panic!("{e}"));
    for (vol, path) in [("v1", "/toroot"), ("v2", "/up")] {
        env.ok(&["create", "-v", &format!("{vol}:{path}"), "evil-img"]);
        let data = mountpoint(&env, vol);
        let names = entries(&data);
        // The image's root (the symlink resolved inside it), nothing of the host's.
        assert!(names.contains(&"toroot".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("MARKER")), "{names:?}");
        assert!(!names.contains(&"volumes".to_string()), "{names:?}");
        assert!(!names.contains(&"containers".to_string()), "{names:?}");
    }
    // A symlink inside the copied tree is copied as a symlink.
    env.ok(&["create", "-v", "v3:/d", "evil-img"]);
    let pw = mountpoint(&env, "v3").join("pw");
    let meta = std::fs::symlink_metadata(&pw).unwrap_or_else(|e| panic!("{e}"));
    assert!(meta.file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&marker).unwrap_or_default(), "host");
}

#[test]
fn cp_with_a_stopped_container_sees_its_volumes() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "st",
        "-v",
        "cpv:/data",
        "-v",
        "cpro:/ro:ro",
        BB,
        "sh",
        "-c",
        "echo in > /data/x",
    ]);
    let host = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = host.path().join("x");
    env.ok(&["cp", "st:/data/x", &out.display().to_string()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap_or_default(), "in\n");
    let src = host.path().join("h.txt");
    std::fs::write(&src, "hello\n").unwrap_or_else(|e| panic!("{e}"));
    env.ok(&["cp", &src.display().to_string(), "st:/data/h.txt"]);
    let data = mountpoint(&env, "cpv");
    assert_eq!(
        std::fs::read_to_string(data.join("h.txt")).unwrap_or_default(),
        "hello\n"
    );
    // Not into the container's own layer.
    let diff = env.ok(&["diff", "st"]);
    assert!(!diff.contains("h.txt"), "{diff}");
    // A read-only volume stays unchanged.
    env.fails(&["cp", &src.display().to_string(), "st:/ro/h.txt"], 1);
    assert!(entries(&mountpoint(&env, "cpro")).is_empty());
}

#[test]
fn cp_with_a_created_container_sees_its_volumes() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "pre:/x",
        BB,
        "sh",
        "-c",
        "echo old > /x/o",
    ]);
    // Mount points the image lacks: made as the runtime would make them.
    env.ok(&["create", "--name", "cr", "-v", "pre:/new/deep", BB, "true"]);
    let out = env.ok(&["cp", "cr:/new/deep/o", "-"]);
    assert!(out.contains("old\n"), "{out}");
    let host = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = host.path().join("f");
    std::fs::write(&src, "hi\n").unwrap_or_else(|e| panic!("{e}"));
    env.ok(&["cp", &src.display().to_string(), "cr:/new/deep/f"]);
    assert_eq!(
        std::fs::read_to_string(mountpoint(&env, "pre").join("f")).unwrap_or_default(),
        "hi\n"
    );
    env.ok(&["start", "-a", "cr"]);
}

/// Docker refuses a "config volume" (the image's `VOLUME`, a bare `-v
/// /path`) over a file of the image at `create` (a symlink followed in the
/// image), and an empty named volume over one (`source … is not
/// directory`); nothing is left behind.
#[test]
fn a_volume_over_a_file_of_the_image_is_refused() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "fv0",
        BB,
        "sh",
        "-c",
        "echo file > /vfile && ln -s /vfile /vlink",
    ]);
    env.ok(&["commit", "-c", "VOLUME /vfile", "fv0", "fvimg"]);
    env.ok(&["commit", "-c", "VOLUME /vlink", "fv0", "flimg"]);
    env.ok(&["rm", "fv0"]);
    let merged = format!("{}/containers/", env.root.path().display());
    let over_file = "cannot mount volume over existing file, file exists ";
    for (args, code, prefix, msg) in [
        (vec!["create", "fvimg", "true"], 1, "Error: ", over_file),
        (
            vec!["run", "--rm", "flimg", "true"],
            125,
            "berth: ",
            over_file,
        ),
        (
            vec!["create", "-v", "/etc/passwd", BB, "true"],
            1,
            "Error: ",
            over_file,
        ),
        (
            vec!["create", "-v", "/vfile", "fvimg", "true"],
            1,
            "Error: ",
            over_file,
        ),
        (
            vec!["create", "-v", "named:/vfile", "fvimg", "true"],
            1,
            "Error: ",
            "source ",
        ),
    ] {
        let (_, e) = env.fails(&args, code);
        let e = e.trim();
        let e = e
            .strip_suffix("\n\nRun 'berth run --help' for more information")
            .unwrap_or(e);
        let rest = e
            .strip_prefix(&format!("{prefix}{msg}{merged}"))
            .unwrap_or_else(|| panic!("{args:?}: {e}"));
        let want = if args.contains(&"/etc/passwd") {
            "/etc/passwd"
        } else {
            "/vfile"
        };
        let tail = if msg == "source " {
            format!("{want} is not directory")
        } else {
            want.to_string()
        };
        let (id, path) = rest.split_once("/merged").unwrap_or_else(|| panic!("{e}"));
        assert!(is_full_id(id), "{e}");
        assert_eq!(path, tail, "{args:?}");
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    // Only the named volume is left, as Docker leaves it.
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "named\n");
    // Without the copy-up, a named volume goes there (the runtime decides).
    env.ok(&[
        "create",
        "--mount",
        "type=volume,src=nc,dst=/vfile,volume-nocopy",
        "fvimg",
        "true",
    ]);
}

/// `--volumes-from` against the image's `VOLUME` at the same path: the
/// other container's volume wins (also over a bare `-v /path`; a named
/// `-v` wins over both), and nothing is copied into it.
#[test]
fn volumes_from_wins_over_the_image_volume() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "mk",
        BB,
        "sh",
        "-c",
        "mkdir /data && echo img > /data/f",
    ]);
    env.ok(&["commit", "-c", "VOLUME /data", "mk", "vimg"]);
    env.ok(&[
        "run",
        "--name",
        "src",
        "-v",
        "shared:/data",
        BB,
        "sh",
        "-c",
        "echo s > /data/s",
    ]);
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "vimg",
            "ls",
            "/data"
        ]),
        "s\n"
    );
    let names = |c: &str| {
        inspect_f(
            &env,
            "{{range .Mounts}}{{.Name}} {{.Destination}};{{end}}",
            c,
        )
    };
    env.ok(&[
        "create",
        "--name",
        "j1",
        "--volumes-from",
        "src",
        "vimg",
        "true",
    ]);
    assert_eq!(names("j1"), "shared /data;");
    env.ok(&[
        "create",
        "--name",
        "j2",
        "--volumes-from",
        "src",
        "-v",
        "/data",
        "vimg",
        "true",
    ]);
    assert_eq!(names("j2"), "shared /data;");
    env.ok(&[
        "create",
        "--name",
        "j3",
        "--volumes-from",
        "src",
        "-v",
        "own:/data",
        "vimg",
        "true",
    ]);
    assert_eq!(names("j3"), "own /data;");
    // No anonymous volume was made for the image's VOLUME.
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "own\nshared\n");
    // Another container's empty volume stays empty.
    env.ok(&["create", "--name", "src2", "-v", "empty:/data", BB, "true"]);
    env.ok(&[
        "create",
        "--name",
        "j4",
        "--volumes-from",
        "src2",
        "vimg",
        "true",
    ]);
    assert!(entries(&mountpoint(&env, "empty")).is_empty());
}
