//! The build cache as a user sees it: `system df`'s Build Cache row and
//! table, `builder prune` / `buildx prune`, `system prune`, and `images`
//! hiding a build's intermediate images.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{self, File};
use std::path::Path;

use common::*;

const DOCKERFILE: &str = "FROM bb\nRUN echo hi > /x\nCOPY f /f\n";

/// A build context with `DOCKERFILE` (or `dockerfile`) and a file `f`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    fs::write(dir.path().join("f"), "hello\n").unwrap();
    dir
}

/// `build --progress plain [-t TAG] CTX`: its progress (stderr).
fn build(env: &TestEnv, ctx: &Path, tag: Option<&str>) -> String {
    let mut args = vec!["build", "--progress", "plain"];
    if let Some(t) = tag {
        args.extend(["-t", t]);
    }
    let ctx = ctx.to_str().unwrap();
    args.push(ctx);
    let out = env.run(&args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    stderr
}

/// Whether the plain progress says the step named `step` came from the cache.
fn cached(progress: &str, step: &str) -> bool {
    let Some(n) = progress
        .lines()
        .find(|l| l.ends_with(step))
        .and_then(|l| l.split_whitespace().next())
    else {
        panic!("no step {step:?} in:\n{progress}");
    };
    progress.lines().any(|l| l == format!("{n} CACHED"))
}

/// `system df`'s Build Cache row: (total, active, size, reclaimable).
fn cache_row(env: &TestEnv) -> (String, String, String, String) {
    let out = env.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("Build Cache\t"))
        .unwrap_or_else(|| panic!("no Build Cache row in:\n{out}"));
    let f: Vec<&str> = line.split('\t').collect();
    (f[1].into(), f[2].into(), f[3].into(), f[4].into())
}

fn count(env: &TestEnv) -> usize {
    cache_row(env).0.parse().unwrap()
}

/// The IDs listed under "Deleted build cache objects:".
fn deleted(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| *l != "Deleted build cache objects:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn reclaimed(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("no total in:\n{out}"))
        .to_string()
}

fn layer_dirs(env: &TestEnv) -> usize {
    fs::read_dir(env.root.path().join("layers"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn image_ids(env: &TestEnv, all: bool) -> Vec<String> {
    let mut args = vec!["images", "-q", "--no-trunc"];
    if all {
        args.push("-a");
    }
    env.ok(&args).lines().map(str::to_string).collect()
}

#[test]
fn the_cache_shows_in_df_and_prune_all_forgets_it_but_keeps_the_tagged_image() {
    let env = TestEnv::with_busybox();
    let ctx = context(DOCKERFILE);
    let first = build(&env, ctx.path(), Some("t1"));
    assert!(!cached(&first, "RUN echo hi > /x"), "{first}");
    let second = build(&env, ctx.path(), Some("t1"));
    assert!(cached(&second, "RUN echo hi > /x"), "{second}");
    assert!(cached(&second, "COPY f /f"), "{second}");

    // Two steps stored (RUN, COPY), both part of t1: shared, so the cache
    // itself holds nothing of its own and a dangling prune takes nothing.
    assert_eq!(
        cache_row(&env),
        ("2".into(), "0".into(), "0B".into(), "0B".into())
    );
    let verbose = env.ok(&["system", "df", "-v"]);
    let table: Vec<&str> = verbose
        .lines()
        .skip_while(|l| !l.starts_with("Build cache usage: "))
        .collect();
    assert_eq!(table[0], "Build cache usage: 0B", "{verbose}");
    assert!(
        table[2].starts_with("CACHE ID       CACHE TYPE   SIZE      CREATED"),
        "{verbose}"
    );
    let rows: Vec<Vec<&str>> = table[3..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{verbose}");
    for r in &rows {
        assert_eq!(r[0].len(), 12, "{verbose}");
        assert_eq!(r[1], "regular");
        // Made once, reused once.
        assert_eq!(r[r.len() - 2], "2", "{verbose}");
        assert_eq!(r[r.len() - 1], "true", "{verbose}");
    }
    // The RUN step's layer holds "hi\n", the COPY step's "hello\n".
    let mut sizes: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    sizes.sort();
    assert_eq!(sizes, ["3B", "6B"], "{verbose}");

    let out = env.ok(&["builder", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(count(&env), 2);

    // A container of t1 holds t1, not the cache (as with BuildKit).
    env.ok(&["create", "--name", "user", "t1", "true"]);
    assert_eq!(cache_row(&env).1, "0");
    let layers = layer_dirs(&env);
    let images = image_ids(&env, true);
    let out = env.ok(&["builder", "prune", "-a", "-f"]);
    let ids = deleted(&out);
    assert_eq!(ids.len(), 2, "{out}");
    assert!(ids.iter().all(|id| id.len() == 64), "{out}");
    // Nothing was freed: every layer is t1's.
    assert_eq!(reclaimed(&out), "0B");
    assert_eq!(count(&env), 0);
    assert_eq!(layer_dirs(&env), layers);
    assert_eq!(image_ids(&env, true), images);
    assert_eq!(
        env.ok(&["run", "--rm", "t1", "cat", "/x", "/f"]),
        "hi\nhello\n"
    );
    env.ok(&["rm", "user"]);

    // Forgotten: the next build runs the step again.
    let third = build(&env, ctx.path(), Some("t1"));
    assert!(!cached(&third, "RUN echo hi > /x"), "{third}");
    assert_eq!(count(&env), 2);
}

#[test]
fn buildx_prune_removes_dangling_cache_with_its_images_and_layers() {
    let env = TestEnv::with_busybox();
    let base_layers = layer_dirs(&env);
    let ctx = context(DOCKERFILE);
    build(&env, ctx.path(), Some("t1"));
    assert!(layer_dirs(&env) > base_layers);
    env.ok(&["rmi", "--no-prune", "t1"]);
    // The RUN step's image is left, no image needs it: dangling.
    let (total, active, size, reclaimable) = cache_row(&env);
    assert_eq!((total.as_str(), active.as_str()), ("1", "0"));
    assert_eq!(size, "3B");
    assert_eq!(reclaimable, "3B");

    let out = env.ok(&["buildx", "prune", "--force"]);
    assert_eq!(deleted(&out).len(), 1, "{out}");
    assert_eq!(reclaimed(&out), "3B");
    assert_eq!(count(&env), 0);
    assert_eq!(layer_dirs(&env), base_layers);
    assert_eq!(image_ids(&env, true).len(), 1, "only bb is left");
}

#[test]
fn the_prompt_reads_stdin_and_no_changes_nothing() {
    let env = TestEnv::with_busybox();
    let ctx = context(DOCKERFILE);
    build(&env, ctx.path(), Some("t1"));
    let answers = tempfile::tempdir().unwrap();
    let answer = |given: &str, args: &[&str]| -> String {
        let path = answers.path().join("answer");
        fs::write(&path, given).unwrap();
        let mut cmd = env.berth(args);
        cmd.stdin(File::open(&path).unwrap());
        let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let out = answer("n\n", &["builder", "prune", "-a"]);
    assert_eq!(
        out,
        "WARNING! This will remove all build cache. Are you sure you want to continue? [y/N] "
    );
    assert_eq!(count(&env), 2);
    let out = answer("", &["buildx", "prune"]);
    assert_eq!(
        out,
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "
    );
    let out = answer("y\n", &["builder", "prune", "--all"]);
    assert!(
        out.contains("[y/N] Deleted build cache objects:\n"),
        "{out}"
    );
    assert_eq!(count(&env), 0);
}

#[test]
fn a_container_keeps_its_cache_record_and_filters_are_checked() {
    let env = TestEnv::with_busybox();
    let ctx = context(DOCKERFILE);
    build(&env, ctx.path(), Some("t1"));
    // A container made from the RUN step's (intermediate) image.
    let all = image_ids(&env, true);
    let top = image_ids(&env, false);
    let intermediate: Vec<&String> = all.iter().filter(|i| !top.contains(i)).collect();
    assert_eq!(intermediate.len(), 1, "{all:?} {top:?}");
    env.ok(&["create", "--name", "user", intermediate[0], "true"]);
    env.ok(&["rmi", "t1"]);
    assert_eq!(
        cache_row(&env),
        ("1".into(), "1".into(), "3B".into(), "0B".into())
    );
    let out = env.ok(&["builder", "prune", "-af"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(count(&env), 1);
    env.ok(&["rm", "user"]);

    // Used within the last hour: kept.
    let out = env.ok(&["builder", "prune", "-af", "--filter", "until=1h"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(count(&env), 1);
    let (_, err) = env.fails(&["builder", "prune", "-af", "--filter", "label=x"], 1);
    assert!(
        err.contains("failed to prune build cache: Invalid filter 'label'"),
        "{err}"
    );
    let (_, err) = env.fails(&["builder", "prune", "-af", "--keep-storage", "lots"], 125);
    assert!(
        err.contains("invalid argument \"lots\" for \"--keep-storage\" flag"),
        "{err}"
    );
    // The cache holds 3B: keeping 1k of it removes nothing, keeping 0 all.
    let out = env.ok(&["builder", "prune", "-af", "--keep-storage", "1k"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = env.ok(&["builder", "prune", "-af", "--keep-storage", "0"]);
    assert_eq!(reclaimed(&out), "3B");
    assert_eq!(count(&env), 0);
}

#[test]
fn images_hides_intermediate_build_images_and_lists_a_dangling_result() {
    let env = TestEnv::with_busybox();
    let ctx = context(DOCKERFILE);
    build(&env, ctx.path(), Some("t1"));
    // bb and t1; -a adds the RUN step's image as <none>.
    assert_eq!(image_ids(&env, false).len(), 2);
    let all = env.ok(&["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = all.lines().collect();
    names.sort();
    assert_eq!(names, ["<none>:<none>", "bb:latest", "t1:latest"]);
    assert_eq!(env.ok(&["images", "-q", "-f", "dangling=true"]), "");
    // system df counts the images `images` lists.
    let df = env.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.lines().any(|l| l == "Images 2"), "{df}");

    // A build without a tag leaves its result dangling, as Docker's.
    let other = context(&format!("{DOCKERFILE}LABEL x=y\n"));
    let progress = build(&env, other.path(), None);
    assert!(cached(&progress, "COPY f /f"), "{progress}");
    let dangling = env.ok(&["images", "-q", "--no-trunc", "-f", "dangling=true"]);
    assert_eq!(dangling.lines().count(), 1, "{dangling}");
    assert!(progress.contains(dangling.trim()), "{progress}");
}

#[test]
fn system_prune_takes_the_dangling_build_cache() {
    let env = TestEnv::with_busybox();
    let base_layers = layer_dirs(&env);
    let ctx = context(DOCKERFILE);
    build(&env, ctx.path(), Some("t1"));
    let out = env.ok(&["system", "prune", "-f"]);
    assert!(deleted(&out).is_empty(), "{out}");
    assert_eq!(count(&env), 2);

    env.ok(&["rmi", "--no-prune", "t1"]);
    let out = env.ok(&["system", "prune", "-f"]);
    // The RUN step's image goes as build cache, with its record.
    assert_eq!(deleted(&out).len(), 1, "{out}");
    assert!(!out.contains("Deleted Images:"), "{out}");
    assert_eq!(reclaimed(&out), "3B");
    assert_eq!(count(&env), 0);
    assert_eq!(layer_dirs(&env), base_layers);

    build(&env, ctx.path(), Some("t1"));
    let out = env.ok(&["system", "prune", "-a", "-f"]);
    assert_eq!(deleted(&out).len(), 2, "{out}");
    assert!(out.contains("Deleted Images:\n"), "{out}");
    assert_eq!(count(&env), 0);
    assert_eq!(image_ids(&env, true), Vec::<String>::new());
    assert_eq!(layer_dirs(&env), 0);
}

#[test]
fn rmi_takes_the_build_s_untagged_parents_as_docker_s_does() {
    let env = TestEnv::with_busybox();
    let base_layers = layer_dirs(&env);
    let ctx = context(DOCKERFILE);
    build(&env, ctx.path(), Some("t1"));
    let all = image_ids(&env, true);
    assert_eq!(all.len(), 3, "{all:?}");
    let out = env.ok(&["rmi", "t1"]);
    let lines: Vec<&str> = out.lines().collect();
    // Untagged, the image, then its parent (the RUN step's image).
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "Untagged: t1:latest");
    for l in &lines[1..] {
        let id = l
            .strip_prefix("Deleted: ")
            .unwrap_or_else(|| panic!("{out}"));
        assert!(all.iter().any(|a| a == id), "{id} not in {all:?}");
    }
    assert_eq!(image_ids(&env, true).len(), 1, "only bb is left");
    assert_eq!(count(&env), 0);
    assert_eq!(layer_dirs(&env), base_layers);

    // A tagged parent stays, and so does every parent with --no-prune.
    build(&env, ctx.path(), Some("t1"));
    let out = env.ok(&["rmi", BB]);
    assert_eq!(out, "Untagged: bb:latest\n");
    let out = env.ok(&["rmi", "--no-prune", "t1"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(image_ids(&env, true).len(), 2);
}

#[test]
fn a_reused_stage_end_counts_as_a_use() {
    let env = TestEnv::with_busybox();
    // The ENV after the last RUN makes the stage's end a record of its own.
    let ctx = context("FROM bb\nRUN echo hi > /x\nENV A=1\n");
    build(&env, ctx.path(), Some("t1"));
    build(&env, ctx.path(), Some("t1"));
    let verbose = env.ok(&["system", "df", "-v"]);
    let rows: Vec<Vec<&str>> = verbose
        .lines()
        .skip_while(|l| !l.starts_with("CACHE ID"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{verbose}");
    for r in &rows {
        assert_eq!(r[r.len() - 2], "2", "{verbose}");
    }
    // Just used: a prune of what was not used within the hour keeps both.
    let out = env.ok(&["builder", "prune", "-af", "--filter", "until=1h"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(count(&env), 2);
}
