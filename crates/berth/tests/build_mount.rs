//! `RUN --mount=…` in `berth build`: cache, bind, tmpfs and secret mounts,
//! what reaches the layer and the cache key, and what must never: a secret's
//! bytes, a mount's stub, a host file behind a context symlink.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::fs;
use std::path::Path;
use std::process::Output;

/// A context directory with `Dockerfile` and the given files.
fn context(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, content) in files {
        let p = dir.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    dir
}

fn build(env: &TestEnv, ctx: &Path, extra: &[&str]) -> Output {
    let ctx = ctx.to_str().unwrap();
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.push(ctx);
    env.run(&args)
}

fn build_ok(env: &TestEnv, ctx: &Path, extra: &[&str]) -> String {
    let out = build(env, ctx, extra);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "build failed: {all}");
    all
}

/// The RUN's marker lines (`got:…`) in a plain build log, in order.
fn got(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            // `#2 0.102 got:…`: a line of the step's output, not its title.
            let mut w = l.splitn(3, ' ');
            let (_, t, rest) = (w.next()?, w.next()?, w.next()?);
            t.parse::<f64>().ok()?;
            rest.strip_prefix("got:").map(|v| v.trim().to_string())
        })
        .collect()
}

#[test]
fn a_cache_mount_persists_across_builds_and_stays_out_of_the_image() {
    let env = TestEnv::with_busybox();
    let df = "FROM bb\nRUN --mount=type=cache,target=/var/cache/app,id=app \
              echo got:$(ls /var/cache/app | tr '\\n' ' ') && date +%N > /var/cache/app/$(date +%s%N)\n";
    let ctx = context(df, &[]);
    let first = build_ok(&env, ctx.path(), &["-t", "c1"]);
    assert_eq!(got(&first), vec![String::new()], "{first}");
    // --no-cache re-runs the RUN; it sees the file the first build left.
    let second = build_ok(&env, ctx.path(), &["--no-cache", "-t", "c2"]);
    let seen = got(&second);
    assert_eq!(seen.len(), 1, "{second}");
    assert_eq!(seen[0].split_whitespace().count(), 1, "{second}");
    // Nothing of the cache (nor its mount point) is in the image.
    let ls = env.run(&["run", "--rm", "c2", "ls", "-a", "/var/cache"]);
    assert!(
        !ls.status.success()
            || text(&ls.stdout)
                .split_whitespace()
                .all(|n| n == "." || n == ".."),
        "the cache mount's stub is in the image: {}",
        text(&ls.stdout)
    );
    // A different id is a different cache.
    let df2 = df.replace("id=app", "id=other");
    let ctx2 = context(&df2, &[]);
    let third = build_ok(&env, ctx2.path(), &["--no-cache"]);
    assert_eq!(got(&third), vec![String::new()], "{third}");
    // The cache lives under the store root.
    let caches = fs::read_dir(env.root.path().join("build-cache-mounts"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(caches, 2);
}

#[test]
fn a_bind_mount_from_the_context_is_read_only_and_its_content_is_in_the_cache_key() {
    let env = TestEnv::with_busybox();
    let df = "FROM bb\nRUN --mount=type=bind,source=src,target=/mnt/src \
              echo got:$(cat /mnt/src/a) && (touch /mnt/src/new 2>/dev/null && echo got:writable || echo got:ro) \
              && echo x > /made-by-run\n";
    let ctx = context(df, &[("src/a", "one")]);
    let first = build_ok(&env, ctx.path(), &["-t", "b1"]);
    assert_eq!(got(&first), vec!["one", "ro"], "{first}");
    // Unchanged content: cached, even with a new mtime.
    let a = ctx.path().join("src/a");
    fs::write(&a, "one").unwrap();
    let again = build_ok(&env, ctx.path(), &["-t", "b1b"]);
    assert!(
        got(&again).is_empty(),
        "an unchanged bind source missed the cache: {again}"
    );
    // Changed content: the RUN runs again and sees it.
    fs::write(&a, "two").unwrap();
    let changed = build_ok(&env, ctx.path(), &["-t", "b2"]);
    assert_eq!(got(&changed), vec!["two", "ro"], "{changed}");
    // The context's files were not touched, and neither they nor the mount
    // point are in the image; only what the RUN wrote is.
    assert!(!ctx.path().join("src/new").exists());
    let out = env.run(&["run", "--rm", "b2", "ls", "/mnt"]);
    assert!(
        !out.status.success() || text(&out.stdout).trim().is_empty(),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        env.ok(&["run", "--rm", "b2", "cat", "/made-by-run"]).trim(),
        "x"
    );
}

#[test]
fn a_rw_bind_mount_writes_to_a_copy_and_a_stage_can_be_the_source() {
    let env = TestEnv::with_busybox();
    let df = "FROM bb AS gen\nRUN mkdir /out && echo from-stage > /out/f\n\
              FROM bb\n\
              RUN --mount=type=bind,from=gen,source=/out,target=/g echo got:$(cat /g/f) && \
                  (touch /g/f 2>/dev/null && echo got:writable || echo got:ro)\n\
              RUN --mount=type=bind,from=gen,source=/out,target=/g,rw echo changed > /g/f && echo got:$(cat /g/f)\n\
              RUN --mount=type=bind,from=gen,source=/out,target=/g echo got:$(cat /g/f)\n";
    let ctx = context(df, &[]);
    let log = build_ok(&env, ctx.path(), &["-t", "s1"]);
    assert_eq!(
        got(&log),
        vec!["from-stage", "ro", "changed", "from-stage"],
        "{log}"
    );
    // A change in the stage's content misses the cache of the RUN binding it.
    let df2 = df.replace("echo from-stage", "echo from-stage-2");
    let ctx2 = context(&df2, &[]);
    let log2 = build_ok(&env, ctx2.path(), &[]);
    assert_eq!(
        got(&log2),
        vec!["from-stage-2", "ro", "changed", "from-stage-2"],
        "{log2}"
    );
}

#[test]
fn a_secret_is_readable_in_run_and_absent_from_the_image() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("tok");
    let bytes = "s3cr3t-9f1c2b7e-never-in-a-layer";
    fs::write(&secret, bytes).unwrap();
    let df = "FROM bb\n\
              RUN --mount=type=secret,id=tok echo got:$(cat /run/secrets/tok) \
                  && echo got:$(stat -c %a /run/secrets/tok) \
                  && (touch /run/secrets/tok 2>/dev/null && echo got:writable || echo got:ro)\n\
              RUN --mount=type=secret,id=tok,target=/deep/er/t,mode=0444 echo got:$(stat -c %a /deep/er/t) && touch /kept\n";
    let ctx = context(df, &[]);
    let src = format!("id=tok,src={}", secret.display());
    let log = build_ok(&env, ctx.path(), &["--secret", &src, "-t", "sec"]);
    assert_eq!(got(&log), vec![bytes, "400", "ro", "444"], "{log}");
    // Neither the secret nor its mount points are in the image.
    let ls = env.run(&["run", "--rm", "sec", "ls", "-la", "/run/secrets"]);
    assert!(!ls.status.success(), "{}", text(&ls.stdout));
    let ls = env.run(&["run", "--rm", "sec", "ls", "/deep"]);
    assert!(!ls.status.success(), "{}", text(&ls.stdout));
    env.ok(&["run", "--rm", "sec", "test", "-f", "/kept"]);
    let saved = dir.path().join("sec.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), "sec"]);
    let tar = fs::read(&saved).unwrap();
    assert!(
        !tar.windows(bytes.len()).any(|w| w == bytes.as_bytes()),
        "the secret's bytes are in the saved image"
    );
    // The RUN's copies of its secret are gone with it.
    let tmp = env.root.path().join("tmp");
    let left: Vec<_> = fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
    // The secret is not in the cache key: other bytes, same id -> cached.
    fs::write(&secret, "other-bytes").unwrap();
    let again = build_ok(&env, ctx.path(), &["--secret", &src]);
    assert!(got(&again).is_empty(), "{again}");
    // A required secret that was not given fails the build; an optional
    // one is simply absent.
    let req = context(
        "FROM bb\nENV A=1\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n",
        &[],
    );
    let images = env.ok(&["images", "-aq"]);
    let out = build(&env, req.path(), &[]);
    assert_eq!(
        env.ok(&["images", "-aq"]),
        images,
        "a failed build stored an image"
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("secret nope: not found"),
        "{}",
        text(&out.stderr)
    );
    let opt = context(
        "FROM bb\nRUN --mount=type=secret,id=nope test ! -e /run/secrets/nope && echo got:absent\n",
        &[],
    );
    assert_eq!(got(&build_ok(&env, opt.path(), &[])), vec!["absent"]);
}

#[test]
fn a_tmpfs_mount_is_empty_and_leaves_nothing() {
    let env = TestEnv::with_busybox();
    let df = "FROM bb\nRUN --mount=type=tmpfs,target=/scratch,size=1m \
              echo big > /scratch/f && echo got:$(cat /scratch/f) && echo got:$(df -k /scratch | awk 'NR==2{print $2}')\n";
    let ctx = context(df, &[]);
    let log = build_ok(&env, ctx.path(), &["-t", "t1"]);
    assert_eq!(got(&log), vec!["big", "1024"], "{log}");
    let out = env.run(&["run", "--rm", "t1", "ls", "/scratch"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn a_context_symlink_to_a_host_file_never_exposes_it() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\nRUN --mount=type=bind,source=shadow,target=/s cat /s\n",
        &[],
    );
    std::os::unix::fs::symlink("/etc/shadow", ctx.path().join("shadow")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", ctx.path().join("up")).unwrap();
    // The link resolves inside the context, where there is no /etc/shadow.
    let out = build(&env, ctx.path(), &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"/etc/shadow\" not found"),
        "{}",
        text(&out.stderr)
    );
    // Through a directory link, and with the link itself as the source of a
    // directory bind: the container sees the links, never the host's files.
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nRUN --mount=type=bind,source=up/shadow,target=/s cat /s\n",
    )
    .unwrap();
    let out = build(&env, ctx.path(), &[]);
    assert!(!out.status.success());
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nRUN --mount=type=bind,target=/c echo got:$(readlink /c/shadow) && \
         (cat /c/shadow /c/up/shadow 2>/dev/null || true) | grep -c root: | sed s/^/got:/\n",
    )
    .unwrap();
    let log = build_ok(&env, ctx.path(), &[]);
    assert_eq!(got(&log), vec!["/etc/shadow", "0"], "{log}");
}

#[test]
fn a_run_that_swaps_a_mount_points_parent_for_a_link_cannot_aim_the_cleanup() {
    let env = TestEnv::with_busybox();
    // A host directory holding an empty file and an empty directory, as the
    // stub cleanup would remove them.
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("t"), "").unwrap();
    fs::create_dir(host.path().join("d")).unwrap();
    let df = format!(
        "FROM bb\nRUN --mount=type=tmpfs,target=/x/d --mount=type=secret,id=t,target=/x/t \
         mv /x /y && ln -s {} /x\n",
        host.path().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("t");
    fs::write(&secret, "v").unwrap();
    let ctx = context(&df, &[]);
    let src = format!("id=t,src={}", secret.display());
    let out = build(&env, ctx.path(), &["--secret", &src, "-t", "sec"]);
    // The move is allowed (as in Docker); the cleanup never follows the link.
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.ok(&["run", "--rm", "sec", "readlink", "/x"]).trim(),
        host.path().to_str().unwrap()
    );
    assert!(host.path().join("t").exists());
    assert!(host.path().join("d").exists());
}

#[test]
fn bad_mounts_are_refused_with_one_line() {
    let env = TestEnv::with_busybox();
    for (mount, want) in [
        ("type=ssh", "ssh is not supported"),
        ("type=bind", "requires a target"),
        ("type=nfs,target=/x", "unsupported mount type"),
        (
            "type=cache,target=/x,sharing=maybe",
            "unsupported sharing value",
        ),
        (
            "type=bind,source=nothere,target=/x",
            "\"/nothere\" not found",
        ),
        (
            "type=tmpfs,target=/t --mount=type=cache,target=/t/c",
            "under the tmpfs mount",
        ),
        (
            "type=tmpfs,target=/t --mount=type=cache,target=/t",
            "two mounts at /t",
        ),
    ] {
        let ctx = context(&format!("FROM bb\nRUN --mount={mount} true\n"), &[]);
        let out = build(&env, ctx.path(), &[]);
        assert!(!out.status.success(), "{mount}");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{mount}: {err}");
    }
    assert!(!env.root.path().join("build-cache-mounts").exists());
    // A --secret whose file is missing or not a file stops the build first.
    let ctx = context("FROM bb\nRUN true\n", &[]);
    for src in [
        "id=a,src=/nonexistent/x",
        "id=a,src=/dev/null",
        "id=a,env=HOME",
    ] {
        let out = build(&env, ctx.path(), &["--secret", src]);
        assert!(!out.status.success(), "{src}");
        let err = text(&out.stderr);
        assert!(err.contains("invalid secret"), "{src}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{src}: {err}");
    }
    assert_eq!(env.ok(&["images", "-aq"]).lines().count(), 1);
}

#[test]
fn a_private_cache_mount_in_use_elsewhere_gets_a_fresh_directory() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let env = TestEnv::with_busybox();
    let df = "FROM bb\nRUN --mount=type=cache,target=/c,sharing=private \
              echo got:$(ls /c) && touch /c/$(date +%s%N)\n";
    let ctx = context(df, &[]);
    assert_eq!(got(&build_ok(&env, ctx.path(), &[])), vec![String::new()]);
    let locks: Vec<_> = fs::read_dir(env.root.path().join("build-cache-mounts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lock"))
        .collect();
    assert_eq!(locks.len(), 1);
    // Another holder of the cache (flock(1), holding it until its stdin closes).
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&locks[0])
        .args(["-c", "echo held; cat >/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    // In use: this RUN gets an empty cache of its own, thrown away after.
    let busy = build_ok(&env, ctx.path(), &["--no-cache"]);
    assert_eq!(got(&busy), vec![String::new()], "{busy}");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    // Free again: the shared directory, with only the first build's file.
    let free = build_ok(&env, ctx.path(), &["--no-cache"]);
    let seen = got(&free);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].split_whitespace().count(), 1, "{free}");
}

#[test]
fn mounts_nest_inside_a_read_only_bind_in_either_order() {
    let env = TestEnv::with_busybox();
    let df = "FROM bb\n\
              RUN --mount=type=bind,target=/src --mount=type=cache,target=/src/out \
                  echo got:$(cat /src/a) && touch /src/out/made && echo got:$(ls /src/out)\n\
              RUN --mount=type=cache,target=/src/out --mount=type=bind,target=/src \
                  --mount=type=tmpfs,target=/src/t echo got:$(ls /src/out)\n";
    let ctx = context(df, &[("a", "ctx-file")]);
    let log = build_ok(&env, ctx.path(), &["-t", "nest"]);
    assert_eq!(got(&log), vec!["ctx-file", "made", "made"], "{log}");
    // The mount points made in the copy never reached the context or image.
    assert!(!ctx.path().join("out").exists());
    assert!(!env
        .run(&["run", "--rm", "nest", "ls", "/src"])
        .status
        .success());
}
