mod common;

// `berth build`, black box: the instructions, variable substitution,
// heredocs, .dockerignore, the cache, multi-stage builds, failures that
// change nothing, hostile contexts, concurrent builds, deep images and a
// build killed mid-step.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use tempfile::TempDir;

/// A context directory with `files` (path → content) and a Dockerfile.
fn context(dockerfile: &str, files: &[(&str, &str)]) -> TempDir {
    let d = tempfile::Builder::new()
        .prefix("berth-build-ctx.")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    fs::write(d.path().join("Dockerfile"), dockerfile).unwrap_or_else(|e| panic!("{e}"));
    for (p, c) in files {
        let path = d.path().join(p);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(&path, c).unwrap_or_else(|e| panic!("{e}"));
    }
    d
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

/// `build --progress plain`: (stdout, stderr), asserting success.
fn build_plain(env: &TestEnv, ctx: &Path, extra: &[&str]) -> String {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.push(p(ctx));
    let out = env.run(&args);
    let err = text(&out.stderr);
    assert!(out.status.success(), "build failed:\n{err}");
    err
}

fn run_out(env: &TestEnv, image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", image];
    args.extend_from_slice(cmd);
    env.ok(&args)
}

/// Steps of a plain progress log that came from the cache.
fn cached_steps(log: &str) -> Vec<String> {
    let mut names = std::collections::HashMap::new();
    let mut out = Vec::new();
    for l in log.lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some((n, what)) = rest.split_once(' ') else {
            continue;
        };
        if what.starts_with('[') {
            names.insert(n.to_string(), what.to_string());
        } else if what == "CACHED" {
            out.push(names.get(n).cloned().unwrap_or_default());
        }
    }
    out
}

#[test]
fn instructions_make_the_image_docker_would() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\n\
         LABEL org.example.a=1 \"b c\"=\"d e\"\n\
         MAINTAINER someone@example.com\n\
         ENV GREETING=hello NAME=\"big world\"\n\
         ENV OLD form with spaces\n\
         WORKDIR /app\n\
         WORKDIR sub\n\
         COPY a.txt .\n\
         COPY dir /data/\n\
         COPY --chown=app:app --chmod=640 a.txt /owned\n\
         RUN echo \"$GREETING $NAME\" > out && id -u > uid\n\
         USER app\n\
         RUN id -un > /tmp/who\n\
         EXPOSE 80 53/udp 8000-8001\n\
         VOLUME /vol [\"/ignored-as-json-only-when-first\"]\n\
         STOPSIGNAL SIGUSR1\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
         CMD [\"cat /app/sub/out\"]\n",
        &[("a.txt", "A\n"), ("dir/x", "X"), ("dir/deep/y", "Y")],
    );
    build_plain(&env, ctx.path(), &["-t", "inst"]);
    assert_eq!(run_out(&env, "inst", &[]), "hello big world\n");
    assert_eq!(
        run_out(&env, "inst", &["cat /app/sub/a.txt /data/x /data/deep/y"]),
        "A\nXY"
    );
    assert_eq!(
        run_out(&env, "inst", &["cat /app/sub/uid /tmp/who"]),
        "0\napp\n"
    );
    assert_eq!(
        run_out(&env, "inst", &["stat -c '%U:%G %a' /owned"]),
        "app:app 640\n"
    );
    let img = env.inspect_image("inst");
    let c = &img["Config"];
    assert_eq!(c["WorkingDir"], "/app/sub");
    assert_eq!(c["User"], "app");
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(c["Labels"]["org.example.a"], "1");
    assert_eq!(c["Labels"]["b c"], "d e");
    assert_eq!(img["Author"], "someone@example.com");
    let env_list: Vec<String> = c["Env"]
        .as_array()
        .unwrap_or_else(|| panic!("no Env"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        env_list.contains(&"OLD=form with spaces".to_string()),
        "{env_list:?}"
    );
    assert!(env_list.iter().any(|e| e.starts_with("PATH=")));
    for port in ["80/tcp", "53/udp", "8000/tcp", "8001/tcp"] {
        assert!(c["ExposedPorts"].get(port).is_some(), "{port} not exposed");
    }
    assert!(c["Volumes"].get("/vol").is_some());
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    // One history entry per instruction after FROM, layers only for files.
    let hist = env.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "inst",
    ]);
    assert!(hist.contains("COPY a.txt . # buildkit"), "{hist}");
    // BuildKit's records (Go's forms), as dockerd 20.10's BuildKit writes them.
    assert!(hist.contains("CMD [\"cat /app/sub/out\"]|0B"), "{hist}");
    assert!(
        hist.contains("ENTRYPOINT [\"/bin/sh\" \"-c\"]|0B"),
        "{hist}"
    );
    assert!(
        hist.contains("EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{}]|0B"),
        "{hist}"
    );
    assert!(hist.contains("STOPSIGNAL SIGUSR1|0B"), "{hist}");
    assert!(
        hist.lines().any(|l| l.starts_with("WORKDIR /app/sub|0B")),
        "{hist}"
    );
}

#[test]
fn variables_expand_as_docker_expands_them() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "ARG BASE=bb\n\
         FROM ${BASE}\n\
         ARG UNSET\n\
         ARG WITH_DEFAULT=dflt\n\
         ENV V=value EMPTY=\n\
         ENV R1=${V:-w} R2=${UNSET:-w} R3=${EMPTY:-w} R4=${EMPTY-w} R5=${V:+w} R6=${UNSET:+w} \
             R7=${V#va} R8=${V%ue} R9=${V/al/AL} R10=$V R11=\\$V R12='$V' R13=\"$V\" R14=${WITH_DEFAULT}\n\
         RUN env | grep '^R[0-9]*=' | sort -V > /r\n",
        &[],
    );
    build_plain(&env, ctx.path(), &["-t", "vars"]);
    let got = run_out(&env, "vars", &["cat", "/r"]);
    assert_eq!(
        got,
        "R1=value\nR2=w\nR3=w\nR4=\nR5=w\nR6=\nR7=lue\nR8=val\nR9=vALue\nR10=value\nR11=$V\nR12=$V\nR13=value\nR14=dflt\n"
    );
    // A --build-arg wins over the default; ENV wins over ARG in RUN.
    let ctx = context(
        "FROM bb\nARG A=default\nARG B=b\nENV B=from-env\nRUN echo \"$A $B\" > /ab\n",
        &[],
    );
    build_plain(
        &env,
        ctx.path(),
        &["-t", "args", "--build-arg", "A=given", "--build-arg", "B=x"],
    );
    assert_eq!(run_out(&env, "args", &["cat", "/ab"]), "given from-env\n");
    // ARG values reach RUN but never the image's config.
    let img = env.inspect_image("args");
    assert!(!img["Config"]["Env"].to_string().contains("A=given"));
}

#[test]
fn heredocs_run_and_copy() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\n\
         ENV WHO=world\n\
         RUN <<EOF\n\
         echo one > /one\n\
         echo \"hello $WHO\" > /two\n\
         EOF\n\
         RUN cat <<'A' > /quoted && cat <<-B > /tabs\n\
         $WHO stays\n\
         A\n\
         \tstripped\n\
         \tB\n\
         COPY <<EOF /etc/greeting\n\
         hi $WHO\n\
         EOF\n",
        &[],
    );
    build_plain(&env, ctx.path(), &["-t", "here"]);
    assert_eq!(
        run_out(
            &env,
            "here",
            &["cat", "/one", "/two", "/quoted", "/tabs", "/etc/greeting"]
        ),
        "one\nhello world\n$WHO stays\nstripped\nhi world\n"
    );
}

#[test]
fn dockerignore_shapes_the_context() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort > /list\n",
        &[
            (
                ".dockerignore",
                "secret\n**/*.log\ndocs\n!docs/keep.md\n/top-only\n",
            ),
            ("secret", "s"),
            ("a/b/c.log", "l"),
            ("a/b/c.txt", "t"),
            ("docs/drop.md", "d"),
            ("docs/keep.md", "k"),
            ("top-only", "x"),
            ("a/top-only", "y"),
        ],
    );
    build_plain(&env, ctx.path(), &["-t", "ign"]);
    assert_eq!(
        run_out(&env, "ign", &["cat", "/list"]),
        "./.dockerignore\n./Dockerfile\n./a/b/c.txt\n./a/top-only\n./docs/keep.md\n"
    );
    // An excluded file cannot be copied by name.
    let ctx2 = context(
        "FROM bb\nCOPY secret /s\n",
        &[(".dockerignore", "secret\n"), ("secret", "s")],
    );
    let (_, err) = env.fails(&["build", p(ctx2.path())], 1);
    assert!(
        err.contains("Dockerfile:2") && err.contains("secret"),
        "{err}"
    );
    // FILE.dockerignore next to a custom Dockerfile wins.
    let ctx3 = context(
        "",
        &[
            ("build/app.Dockerfile", "FROM bb\nCOPY . /c/\n"),
            ("build/app.Dockerfile.dockerignore", "x\n"),
            (".dockerignore", "y\n"),
            ("x", "x"),
            ("y", "y"),
        ],
    );
    let df = ctx3.path().join("build/app.Dockerfile");
    build_plain(&env, ctx3.path(), &["-t", "own", "-f", p(&df)]);
    assert_eq!(
        run_out(&env, "own", &["ls", "-A", "/c"]),
        ".dockerignore\nDockerfile\nbuild\ny\n"
    );
}

#[test]
fn the_cache_reuses_unchanged_steps_and_misses_changed_ones() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\nARG V=1\nCOPY f /f\nRUN echo ran > /ran\nRUN echo $V > /v\nCMD [\"cat\", \"/v\"]\n",
        &[("f", "content")],
    );
    let first = env.ok(&["build", "-q", p(ctx.path())]);
    // The same build again: every step cached, the very same image.
    let log = build_plain(&env, ctx.path(), &["--iidfile", p(&ctx.path().join("iid"))]);
    let cached = cached_steps(&log);
    assert_eq!(cached.len(), 3, "{log}");
    let iid = fs::read_to_string(ctx.path().join("iid")).unwrap_or_default();
    assert_eq!(iid, first.trim());
    // Touching a file without changing it keeps the cache.
    let f = fs::File::options()
        .write(true)
        .open(ctx.path().join("f"))
        .unwrap_or_else(|e| panic!("{e}"));
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    assert_eq!(env.ok(&["build", "-q", p(ctx.path())]), first);
    // A build arg used by a RUN misses it (and only from there).
    let log = build_plain(&env, ctx.path(), &["--build-arg", "V=2", "-t", "v2"]);
    let cached = cached_steps(&log);
    assert!(cached.iter().any(|c| c.contains("COPY f /f")), "{log}");
    assert!(!cached.iter().any(|c| c.contains("echo $V")), "{log}");
    assert_eq!(run_out(&env, "v2", &[]), "2\n");
    // Changed content misses the COPY and everything after it.
    fs::write(ctx.path().join("f"), "changed").unwrap_or_else(|e| panic!("{e}"));
    let log = build_plain(&env, ctx.path(), &[]);
    assert!(cached_steps(&log).is_empty(), "{log}");
    // --no-cache runs everything.
    let log = build_plain(&env, ctx.path(), &["--no-cache"]);
    assert!(cached_steps(&log).is_empty(), "{log}");
}

#[test]
fn multi_stage_builds_only_what_the_target_needs() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb AS base\nRUN echo base > /base\n\
         FROM base AS build\nRUN echo built > /artifact\n\
         FROM bb AS broken\nRUN exit 7\n\
         FROM bb AS assets\nCOPY asset /asset\n\
         FROM bb\nCOPY --from=build /artifact /out/artifact\nCOPY --from=assets /asset /out/\nCOPY --from=bb /bin/busybox /out/bb-copy\n",
        &[("asset", "A")],
    );
    // The final stage needs build and assets, never `broken`.
    build_plain(&env, ctx.path(), &["-t", "ms"]);
    assert_eq!(
        run_out(&env, "ms", &["cat", "/out/artifact", "/out/asset"]),
        "built\nA"
    );
    assert!(run_out(&env, "ms", &["ls", "/out"]).contains("bb-copy"));
    // --target stops at a stage.
    build_plain(&env, ctx.path(), &["-t", "tgt", "--target", "build"]);
    assert_eq!(
        run_out(&env, "tgt", &["cat", "/base", "/artifact"]),
        "base\nbuilt\n"
    );
    let (_, err) = env.fails(&["build", "--target", "broken", p(ctx.path())], 1);
    assert!(err.contains("exit code: 7"), "{err}");
    let (_, err) = env.fails(&["build", "--target", "nope", p(ctx.path())], 1);
    assert!(
        err.contains("target stage \"nope\" could not be found"),
        "{err}"
    );
}

#[test]
fn onbuild_triggers_run_in_the_child_build() {
    let env = TestEnv::with_busybox();
    let parent = context(
        "FROM bb\nONBUILD COPY trigger.txt /t\nONBUILD RUN echo fired > /fired\n",
        &[],
    );
    build_plain(&env, parent.path(), &["-t", "parent"]);
    let img = env.inspect_image("parent");
    assert_eq!(img["Config"]["OnBuild"].as_array().map(Vec::len), Some(2));
    let child = context(
        "FROM parent\nRUN cat /t /fired > /both\n",
        &[("trigger.txt", "T\n")],
    );
    build_plain(&env, child.path(), &["-t", "child"]);
    assert_eq!(run_out(&env, "child", &["cat", "/both"]), "T\nfired\n");
    // Triggers do not carry on to grandchildren.
    assert!(env.inspect_image("child")["Config"]["OnBuild"].is_null());
}

fn tags(env: &TestEnv) -> String {
    env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
}

#[test]
fn a_failed_build_says_where_and_changes_no_tag() {
    let env = TestEnv::with_busybox();
    let ok = context("FROM bb\nRUN echo one > /x\n", &[]);
    build_plain(&env, ok.path(), &["-t", "keep"]);
    let before = tags(&env);
    // A syntax error names the file and line.
    let bad = context("FROM bb\nRUN true\nBOGUS x\n", &[]);
    let (out, err) = env.fails(&["build", "-t", "keep", p(bad.path())], 1);
    assert!(out.is_empty());
    assert!(
        err.contains("Dockerfile:3: unknown instruction: BOGUS"),
        "{err}"
    );
    // A failing RUN: its exit code, its last output, the line.
    let failing = context(
        "FROM bb\nRUN echo first\nRUN echo some output; echo to stderr >&2; exit 3\n",
        &[],
    );
    let (_, err) = env.fails(
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "keep",
            p(failing.path()),
        ],
        1,
    );
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(err.contains("to stderr"), "{err}");
    // A missing COPY source.
    let missing = context("FROM bb\nCOPY nothere /x\n", &[]);
    let (_, err) = env.fails(&["build", "-t", "keep", p(missing.path())], 1);
    assert!(
        err.contains("Dockerfile:2") && err.contains("nothere"),
        "{err}"
    );
    // A missing base image.
    let nobase = context("FROM no-such-image\n", &[]);
    let (_, err) = env.fails(&["build", "-t", "keep", p(nobase.path())], 1);
    assert!(err.contains("no-such-image"), "{err}");
    // No tag moved, no container left behind.
    assert_eq!(tags(&env), before);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    let containers = fs::read_dir(env.root.path().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(containers, 0, "container directories left behind");
}

#[test]
fn context_symlinks_never_reach_the_host() {
    let env = TestEnv::with_busybox();
    let host = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    fs::write(host.path().join("hostfile"), "HOST SECRET").unwrap_or_else(|e| panic!("{e}"));
    let ctx = context("FROM bb\nCOPY . /c/\n", &[("inside", "in")]);
    std::os::unix::fs::symlink(host.path().join("hostfile"), ctx.path().join("abs"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("../../../../../../..", ctx.path().join("up"))
        .unwrap_or_else(|e| panic!("{e}"));
    build_plain(&env, ctx.path(), &["-t", "links"]);
    // Links are copied as links, never followed.
    let listing = run_out(&env, "links", &["ls", "-l", "/c"]);
    assert!(listing.contains("abs -> "), "{listing}");
    let (_, err) = {
        let out = env.run(&["run", "--rm", "links", "cat", "/c/abs"]);
        (text(&out.stdout), text(&out.stderr))
    };
    assert!(!err.contains("HOST SECRET"));
    // Naming the link resolves it inside the context: not found, not the host.
    let probe = "FROM bb\nCOPY abs /got\n";
    fs::write(ctx.path().join("Dockerfile"), probe).unwrap_or_else(|e| panic!("{e}"));
    let (_, err) = env.fails(&["build", p(ctx.path())], 1);
    assert!(!err.contains("HOST SECRET"), "{err}");
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nCOPY up/etc/passwd /got\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (_, err) = env.fails(&["build", p(ctx.path())], 1);
    assert!(err.contains("up/etc/passwd"), "{err}");
}

#[test]
fn contexts_from_stdin_a_tar_or_a_bare_dockerfile() {
    let env = TestEnv::with_busybox();
    // A bare Dockerfile on stdin: no context files.
    let mut c = env.berth(&["build", "-q", "-t", "stdin-df", "-"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{e}"));
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(b"FROM bb\nRUN echo from-stdin > /s\n"))
        .transpose()
        .unwrap_or_else(|e| panic!("{e}"));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(run_out(&env, "stdin-df", &["cat", "/s"]), "from-stdin\n");
    // A tar context on stdin.
    let ctx = context("FROM bb\nCOPY f /f\n", &[("f", "from tar\n")]);
    let tar = ctx.path().join("../ctx-build.tar");
    let st = Command::new("tar")
        .args(["-C", p(ctx.path()), "-cf", p(&tar), "."])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success());
    let mut c = env.berth(&["build", "-q", "-t", "stdin-tar", "-"]);
    c.stdin(fs::File::open(&tar).unwrap_or_else(|e| panic!("{e}")));
    let out = output_with_timeout(c, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(run_out(&env, "stdin-tar", &["cat", "/f"]), "from tar\n");
    // The same tar as a file argument.
    env.ok(&["build", "-q", "-t", "file-tar", p(&tar)]);
    assert_eq!(run_out(&env, "file-tar", &["cat", "/f"]), "from tar\n");
    let _ = fs::remove_file(&tar);
}

#[test]
fn a_hostile_tar_context_is_refused() {
    let env = TestEnv::with_busybox();
    // A tar whose entry climbs out: written by hand (tar(1) would refuse).
    let mut data = Vec::new();
    {
        let mut b = tar::Builder::new(&mut data);
        let body = b"FROM bb\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "Dockerfile", &body[..])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut h = tar::Header::new_old();
        let evil = b"../../../../../../tmp/berth-build-escape";
        h.as_old_mut().name[..evil.len()].copy_from_slice(evil);
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap_or_else(|e| panic!("{e}"));
        b.finish().unwrap_or_else(|e| panic!("{e}"));
    }
    let mut c = env.berth(&["build", "-t", "evil", "-"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(&data);
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!Path::new("/tmp/berth-build-escape").exists());
    assert!(!tags(&env).contains("evil"));
}

#[test]
fn concurrent_builds_of_one_dockerfile_agree() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\nCOPY f /f\nRUN cat /f > /g\nRUN echo done > /h\n",
        &[("f", "same")],
    );
    let spawn = |tag: &str| {
        let mut c = env.berth(&["build", "-q", "-t", tag, p(ctx.path())]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b, c) = (spawn("ca"), spawn("cb"), spawn("cc"));
    for child in [a, b, c] {
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    for t in ["ca", "cb", "cc"] {
        assert_eq!(run_out(&env, t, &["cat", "/g", "/h"]), "samedone\n");
    }
    // And a later build is fully cached.
    let log = build_plain(&env, ctx.path(), &[]);
    assert_eq!(cached_steps(&log).len(), 3, "{log}");
}

#[test]
fn a_build_of_120_steps_runs() {
    let env = TestEnv::with_busybox();
    let mut df = String::from("FROM bb\n");
    let mut files = Vec::new();
    for i in 0..120 {
        if i % 2 == 0 {
            df.push_str(&format!("RUN echo {i} > /f{i}\n"));
        } else {
            df.push_str(&format!("COPY f{i} /f{i}\n"));
            files.push((format!("f{i}"), format!("{i}\n")));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ctx = context(&df, &refs);
    env.ok(&["build", "-q", "-t", "deep", p(ctx.path())]);
    let layers = env.inspect_image("deep")["RootFS"]["Layers"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(layers, 121);
    assert_eq!(
        run_out(&env, "deep", &["cat", "/f0", "/f61", "/f119"]),
        "0\n61\n119\n"
    );
}

#[test]
fn a_build_killed_mid_step_leaves_a_store_the_next_build_accepts() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        // The output says `running-2`, which the step's name does not.
        "FROM bb\nRUN echo running-$((1+1)); while [ ! -e /never ]; do sleep 0.05; done\n",
        &[],
    );
    let mut c = env.berth(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "killed",
        p(ctx.path()),
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{e}"));
    // Wait until the RUN step is running (its output arrives).
    let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("running-2") {
                return true;
            }
        }
        false
    });
    poll("the RUN step to start", Duration::from_secs(60), || {
        reader.is_finished().then_some(())
    });
    assert!(
        reader.join().unwrap_or(false),
        "the build ended before its RUN started"
    );
    let _ = child.kill();
    let _ = child.wait();
    // No stray container, and its monitor is gone once ps has looked.
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    poll(
        "the step's container to go",
        Duration::from_secs(30),
        || {
            let n = fs::read_dir(env.root.path().join("containers"))
                .map(|d| d.count())
                .unwrap_or(0);
            (n == 0).then_some(())
        },
    );
    assert!(!tags(&env).contains("killed"));
    // The next build and a prune accept the store.
    let ok = context("FROM bb\nRUN echo fine > /f\n", &[]);
    build_plain(&env, ok.path(), &["-t", "after"]);
    env.ok(&["system", "prune", "-f"]);
    assert_eq!(run_out(&env, "after", &["cat", "/f"]), "fine\n");
}

#[test]
fn independent_stages_build_at_the_same_time() {
    // Stage a's RUN waits for stage b's to talk to it: built one after the
    // other, a would wait in vain (and give up after 30 s). Both RUNs use
    // the host's network, which is a namespace of this test's own.
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb AS a\nRUN timeout 30 nc -l -p 41234 -e sh -c \"head -n1 > /got\" && grep -q hello /got\n\
         FROM bb AS b\nRUN for i in $(seq 300); do echo hello | nc 127.0.0.1 41234 && exit 0; sleep 0.1; done; exit 1\n\
         FROM bb\nCOPY --from=a /got /got\nCOPY --from=b /etc/passwd /b-passwd\n",
        &[],
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "sh",
        "-c",
        "ip link set lo up && exec \"$@\"",
        "sh",
    ])
    .arg(berth_bin())
    .args([
        "--root",
        p(env.root.path()),
        "--run-root",
        p(env.run_root.path()),
    ])
    .args(["--cgroup-parent", &env.cgroup_parent])
    .args([
        "build",
        "--network",
        "host",
        "-q",
        "-t",
        "together",
        p(ctx.path()),
    ])
    .stdin(Stdio::null());
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(run_out(&env, "together", &["cat", "/got"]), "hello\n");
}

#[test]
fn copy_parents_and_exclude() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\n\
         COPY --parents src/a/one.txt src/b/two.txt /out/\n\
         COPY --exclude=**/*.log --exclude=skip src /filtered/\n\
         COPY --exclude=src/b src/* /matched/\n",
        &[
            ("src/a/one.txt", "1"),
            ("src/b/two.txt", "2"),
            ("src/a/noise.log", "log"),
            ("src/skip/x", "x"),
        ],
    );
    build_plain(&env, ctx.path(), &["-t", "pe"]);
    assert_eq!(
        run_out(
            &env,
            "pe",
            &["cat", "/out/src/a/one.txt", "/out/src/b/two.txt"]
        ),
        "12"
    );
    assert_eq!(
        run_out(&env, "pe", &["sh", "-c", "find /filtered -type f | sort"]),
        "/filtered/a/one.txt\n/filtered/b/two.txt\n"
    );
    assert_eq!(
        run_out(&env, "pe", &["sh", "-c", "find /matched | sort"]),
        "/matched\n/matched/noise.log\n/matched/one.txt\n/matched/x\n"
    );
}

#[test]
fn shell_healthcheck_labels_and_the_image_build_alias() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\n\
         SHELL [\"/bin/sh\", \"-c\", \"echo shell-used > /shell; sh -c \\\"$0\\\"\"]\n\
         RUN echo ran > /ran\n\
         HEALTHCHECK --interval=5s --retries=2 CMD test -e /ran\n\
         LABEL from.file=1\n",
        &[],
    );
    let out = env.run(&[
        "image",
        "build",
        "-q",
        "-t",
        "sh",
        "--label",
        "from.cli=2",
        "--label",
        "from.file=cli",
        p(ctx.path()),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        run_out(&env, "sh", &["cat", "/shell", "/ran"]),
        "shell-used\nran\n"
    );
    let img = env.inspect_image("sh");
    let c = &img["Config"];
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /ran"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Labels"]["from.cli"], "2");
    // --label wins over the Dockerfile's, as Docker's.
    assert_eq!(c["Labels"]["from.file"], "cli");
    // Flags Docker has, and a platform that is not the host's.
    let help = env.ok(&["build", "--help"]);
    for flag in [
        "--build-arg",
        "--file",
        "--iidfile",
        "--no-cache",
        "--progress",
        "--target",
        "--secret",
    ] {
        assert!(help.contains(flag), "{flag} missing from build --help");
    }
    let (_, err) = env.fails(&["build", "--platform", "linux/s390x", p(ctx.path())], 1);
    assert!(err.contains("linux/s390x"), "{err}");
    let (_, err) = env.fails(&["build", "/no/such/dir"], 1);
    assert!(
        err.contains("unable to prepare context: path \"/no/such/dir\" not found"),
        "{err}"
    );
}

#[test]
fn a_dockerfile_alone_never_gets_the_host_network() {
    let env = TestEnv::with_busybox();
    let ctx = context("FROM bb\nRUN --network=host true\n", &[]);
    let (_, err) = env.fails(&["build", p(ctx.path())], 1);
    assert!(
        err.contains("Dockerfile:2") && err.contains("--allow network.host"),
        "{err}"
    );
    // The user grants it: --allow network.host (or --network host). The
    // build runs in a network namespace of this test's own.
    let mut cmd = Command::new("unshare");
    cmd.args(["--net"])
        .arg(berth_bin())
        .args([
            "--root",
            p(env.root.path()),
            "--run-root",
            p(env.run_root.path()),
        ])
        .args(["--cgroup-parent", &env.cgroup_parent])
        .args(["build", "-q", "--allow", "network.host", p(ctx.path())])
        .stdin(Stdio::null());
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, err) = env.fails(&["build", "--allow", "security.insecure", p(ctx.path())], 1);
    assert!(err.contains("security.insecure"), "{err}");
}

#[test]
fn the_store_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::with_busybox();
    fs::set_permissions(env.root.path(), fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    env.ok(&["images", "-q"]);
    let mode = fs::metadata(env.root.path())
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o710, "the store root is {mode:o}");
}

#[test]
fn a_tar_context_cannot_point_the_dockerfile_at_a_host_file() {
    let env = TestEnv::with_busybox();
    let host = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let secret = host.path().join("secret");
    fs::write(&secret, "HOSTSECRET-line\n").unwrap_or_else(|e| panic!("{e}"));
    for name in ["Dockerfile", ".dockerignore"] {
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            if name == ".dockerignore" {
                let body = b"FROM bb\nCOPY . /c/\n";
                let mut h = tar::Header::new_gnu();
                h.set_size(body.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, "Dockerfile", &body[..])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, name, &secret)
                .unwrap_or_else(|e| panic!("{e}"));
            b.finish().unwrap_or_else(|e| panic!("{e}"));
        }
        let mut c = env.berth(&["build", "--progress", "plain", "-"]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(&data);
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("HOSTSECRET"), "{name}: {all}");
        if name == "Dockerfile" {
            assert_eq!(out.status.code(), Some(1), "{all}");
        }
    }
}

#[test]
fn an_image_device_as_etc_passwd_is_never_read() {
    let env = TestEnv::with_busybox();
    // /etc/passwd becomes /dev/zero's device in the image: resolving
    // --chown must not read it (it would never end).
    let ctx = context(
        "FROM bb\nRUN rm /etc/passwd && mknod /etc/passwd c 1 5\nCOPY --chown=app f /f\n",
        &[("f", "x")],
    );
    let (_, err) = env.fails(&["build", p(ctx.path())], 1);
    assert!(err.contains("unable to find user app"), "{err}");
}
