//! `berth build`'s ADD: local archives extracted (tar, gzip, bzip2, xz,
//! zstd, told by content), hostile archives refused or kept inside, and
//! http(s) URLs downloaded from a python http.server on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{poll, TestEnv};

/// A context directory with `Dockerfile` = `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap_or_else(|e| panic!("{e}"));
    d
}

fn build(env: &TestEnv, tag: &str, ctx: &Path) -> std::process::Output {
    let mut cmd = env.berth(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        ctx.to_str().unwrap_or_else(|| panic!("missing value")),
    ]);
    // The download goes to 127.0.0.1 directly, whatever proxy the caller has.
    for v in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"] {
        cmd.env_remove(v);
        cmd.env_remove(v.to_lowercase());
    }
    cmd.env_remove("ALL_PROXY").env_remove("all_proxy");
    common::output_with_timeout(cmd, common::COMMAND_TIMEOUT)
}

fn build_ok(env: &TestEnv, tag: &str, ctx: &Path) -> String {
    let out = build(env, tag, ctx);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "build of {tag} failed:\n{all}");
    all
}

/// The build fails with exit 1; returns its stderr.
fn build_fails(env: &TestEnv, tag: &str, ctx: &Path) -> String {
    let out = build(env, tag, ctx);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "build of {tag}: {err}");
    // Nothing is tagged.
    let (_, e) = env.fails(&["image", "inspect", tag], 1);
    assert!(e.contains("No such image"), "{e}");
    err
}

fn image_id(env: &TestEnv, tag: &str) -> String {
    env.ok(&["image", "inspect", "-f", "{{.Id}}", tag])
        .trim()
        .to_string()
}

fn sh(env: &TestEnv, image: &str, script: &str) -> String {
    env.ok(&["run", "--rm", image, "sh", "-c", script])
}

/// A tar with: `d/` (0750, 1000:1000), `d/f` (0640, 1234:5678, `text`),
/// `d/.wh.keep` (which no layer can hold: left out), `d/l` → `f`.
fn sample_tar(text: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_size(0);
    h.set_mtime(1_000_000_000);
    b.append_data(&mut h, "d/", std::io::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    for (name, body, mode, uid, gid) in [
        ("d/f", text, 0o640, 1234, 5678),
        ("d/.wh.keep", "a whiteout in a layer", 0o644, 0, 0),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(body.len() as u64);
        h.set_mtime(1_000_000_000);
        b.append_data(&mut h, name, body.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000_000);
    h.set_size(0);
    b.append_link(&mut h, "d/l", "f")
        .unwrap_or_else(|e| panic!("{e}"));
    b.into_inner().unwrap_or_else(|e| panic!("{e}"))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    e.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn add_extracts_each_kind_of_archive_told_by_content() {
    let env = TestEnv::with_busybox();
    let ctx = context(
        "FROM bb\n\
         COPY old /x/gz/d/f\n\
         ADD plain.bin /x/plain\n\
         ADD gz.bin /x/gz/\n\
         ADD bz.bin xz.bin /x/multi/\n\
         ADD zst.bin /x/zst/\n\
         ADD --chown=7:8 gz.bin /x/owned/\n\
         ADD notar.gz /x/file/\n\
         COPY gz.bin /x/copied/\n",
    );
    let c = ctx.path();
    std::fs::write(c.join("old"), "old content").unwrap();
    std::fs::write(c.join("plain.bin"), sample_tar("plain")).unwrap();
    std::fs::write(c.join("gz.bin"), gzip(&sample_tar("gzip"))).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&sample_tar("bzip2")).unwrap();
    std::fs::write(c.join("bz.bin"), bz.finish().unwrap()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&sample_tar("xz")).unwrap();
    // Both land in /x/multi: the later one's d/f wins.
    std::fs::write(c.join("xz.bin"), xz.finish().unwrap()).unwrap();
    std::fs::write(
        c.join("zst.bin"),
        zstd::encode_all(sample_tar("zstd").as_slice(), 3).unwrap(),
    )
    .unwrap();
    // A .gz name with no archive in it is copied as the file it is.
    std::fs::write(c.join("notar.gz"), "just text").unwrap();

    let first = build_ok(&env, "arch", c);
    let out = sh(
        &env,
        "arch",
        "cd /x && for f in plain/d/f gz/d/f multi/d/f zst/d/f owned/d/f; do \
           echo \"$f $(stat -c '%a %u:%g' $f) $(cat $f)\"; done; \
         stat -c '%n %a %u:%g' plain/d owned/d; \
         ls -A gz/d | tr '\\n' ' '; echo; readlink zst/d/l; \
         cat file/notar.gz; echo; ls copied",
    );
    assert_eq!(
        out,
        "plain/d/f 640 1234:5678 plain\n\
         gz/d/f 640 1234:5678 gzip\n\
         multi/d/f 640 1234:5678 xz\n\
         zst/d/f 640 1234:5678 zstd\n\
         owned/d/f 640 7:8 gzip\n\
         plain/d 750 1000:1000\n\
         owned/d 750 7:8\n\
         f l \n\
         f\n\
         just text\n\
         gz.bin\n"
    );

    // The same context again: every step from the cache, the same image.
    let id = image_id(&env, "arch");
    let second = build_ok(&env, "arch", c);
    assert!(second.contains("CACHED"), "{first}\n---\n{second}");
    assert_eq!(image_id(&env, "arch"), id);

    // A changed archive is a new step.
    std::fs::write(c.join("zst.bin"), gzip(&sample_tar("changed"))).unwrap();
    build_ok(&env, "arch", c);
    assert_ne!(image_id(&env, "arch"), id);
    assert_eq!(sh(&env, "arch", "cat /x/zst/d/f"), "changed");
}

/// A raw tar header named `name` (no checks on the name, as a hostile tool
/// would write it) of `kind`, with `link` and `body`.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, body: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000_000);
    h.set_size(body.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[test]
fn hostile_archives_are_refused_or_kept_inside() {
    let env = TestEnv::with_busybox();
    let outside = tempfile::tempdir().unwrap();
    let outside_dir = outside.path().to_str().unwrap().to_string();

    // `..`, a hard link out, a device node: refused, nothing tagged.
    for (n, entries) in [
        (
            "dotdot",
            vec![("../../../escaped", tar::EntryType::Regular, "", &b"x"[..])],
        ),
        (
            "hardlink",
            vec![(
                "hl",
                tar::EntryType::Link,
                "../../../../etc/passwd",
                &b""[..],
            )],
        ),
        ("device", vec![("null", tar::EntryType::Char, "", &b""[..])]),
    ] {
        let mut t = Vec::new();
        for (name, kind, link, body) in entries {
            raw_entry(&mut t, name, kind, link, body);
        }
        t.resize(t.len() + 1024, 0);
        let ctx = context("FROM bb\nADD evil.tar.gz /out/\n");
        std::fs::write(ctx.path().join("evil.tar.gz"), gzip(&t)).unwrap();
        let err = build_fails(&env, n, ctx.path());
        // One line says why, after the progress.
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(
            last.starts_with(
                "ERROR: failed to solve: Dockerfile:2: ADD failed: extracting evil.tar.gz: "
            ),
            "{n}: {err}"
        );
    }
    assert!(!env.root.path().join("escaped").exists());

    // ADD has no --from (Docker's parser knows none).
    let ctx = context("FROM bb AS a\nFROM bb\nADD --from=a /bin/sh /x\n");
    let err = build_fails(&env, "addfrom", ctx.path());
    assert!(err.contains("Dockerfile:3: Unknown flag: from"), "{err}");

    // A symlink out and a write through it: the write stays in the image.
    let mut t = Vec::new();
    raw_entry(&mut t, "link", tar::EntryType::Symlink, &outside_dir, b"");
    raw_entry(&mut t, "link/pwned", tar::EntryType::Regular, "", b"inside");
    t.resize(t.len() + 1024, 0);
    let ctx = context("FROM bb\nADD evil.tar /out/\n");
    std::fs::write(ctx.path().join("evil.tar"), &t).unwrap();
    build_ok(&env, "contained", ctx.path());
    assert!(!outside.path().join("pwned").exists());
    let got = sh(
        &env,
        "contained",
        &format!("readlink /out/link; cat /out{outside_dir}/pwned"),
    );
    assert_eq!(got, format!("{outside_dir}\ninside"));
}

/// `python3 -m http.server` on 127.0.0.1 (a free port it picks) serving
/// `dir`; killed by PID when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        common::enter_own_netns();
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import functools, http.server, sys\n\
                 h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
                 s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n\
                 print(s.server_address[1], flush=True)\n\
                 s.serve_forever()\n",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut line = String::new();
        BufReader::new(
            child
                .stdout
                .take()
                .unwrap_or_else(|| panic!("missing value")),
        )
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
        let port = line.trim().parse().unwrap_or_else(|e| panic!("{e}"));
        // Listening before it printed; poll only guards a slow start.
        poll("the http server", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Server { child, port }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap_or_else(|| panic!("missing value"))
                .write_all(data)?;
            c.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("missing value"))
        .to_string()
}

#[test]
fn add_downloads_urls_with_checksums_and_caches_by_content() {
    let env = TestEnv::with_busybox();
    let served = tempfile::tempdir().unwrap();
    let s = served.path();
    std::fs::write(s.join("f.txt"), "downloaded\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(s.join("f.txt"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    let archive = gzip(&sample_tar("remote"));
    std::fs::write(s.join("a.tar.gz"), &archive).unwrap();
    let server = Server::start(s);

    let ctx = context(&format!(
        "FROM bb\n\
         ADD {f} /dl/\n\
         ADD --chown=5:6 --chmod=640 {f} /dl/renamed\n\
         ADD --checksum=sha256:{sum} {a} /dl/\n",
        f = server.url("f.txt"),
        a = server.url("a.tar.gz"),
        sum = sha256_hex(&archive),
    ));
    build_ok(&env, "dl", ctx.path());
    let out = sh(
        &env,
        "dl",
        "cd /dl && stat -c '%n %a %u:%g %Y' f.txt && stat -c '%n %a %u:%g' renamed a.tar.gz \
         && cat f.txt renamed",
    );
    assert_eq!(
        out,
        "f.txt 600 0:0 1000000000\n\
         renamed 640 5:6\n\
         a.tar.gz 600 0:0\n\
         downloaded\ndownloaded\n"
    );

    // Downloaded again, the same content: the same image, from the cache.
    // A URL with --checksum is not downloaded at all then (BuildKit's key
    // is the checksum): the server may as well not have it.
    let id = image_id(&env, "dl");
    std::fs::remove_file(s.join("a.tar.gz")).unwrap();
    let again = build_ok(&env, "dl", ctx.path());
    assert!(again.contains("CACHED"), "{again}");
    assert_eq!(image_id(&env, "dl"), id);
    std::fs::write(s.join("a.tar.gz"), &archive).unwrap();

    // New content behind the same URL: new steps.
    std::fs::write(s.join("f.txt"), "changed\n").unwrap();
    build_ok(&env, "dl", ctx.path());
    assert_ne!(image_id(&env, "dl"), id);
    assert_eq!(sh(&env, "dl", "cat /dl/f.txt"), "changed\n");

    // A checksum that does not match: exit 1, nothing stored or tagged.
    let bad = context(&format!(
        "FROM bb\nADD --checksum=sha256:{} {} /dl/\n",
        "0".repeat(64),
        server.url("a.tar.gz")
    ));
    let err = build_fails(&env, "bad", bad.path());
    assert!(
        err.contains("Dockerfile:2: ADD failed:") && err.contains("digest mismatch"),
        "{err}"
    );
    // A missing file: exit 1, the status in the message.
    let missing = context(&format!("FROM bb\nADD {} /dl/\n", server.url("nope")));
    let err = build_fails(&env, "missing", missing.path());
    assert!(
        err.contains("Dockerfile:2: ADD failed:") && err.contains("404"),
        "{err}"
    );
    // COPY takes no URL; --checksum only with URLs.
    let copy = context(&format!("FROM bb\nCOPY {} /dl/\n", server.url("f.txt")));
    let err = build_fails(&env, "copy", copy.path());
    assert!(err.contains("source can't be a URL for COPY"), "{err}");
    let local = context("FROM bb\nADD --checksum=sha256:00 Dockerfile /\n");
    let err = build_fails(&env, "local", local.path());
    assert!(err.contains("Dockerfile:2:"), "{err}");
    // Nothing was left in the store's tmp.
    let tmp = env.root.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
