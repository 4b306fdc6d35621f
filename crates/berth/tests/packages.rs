//! The package inventory (issue 12): `sbom` and `packages ls` over images
//! and containers, from real package databases (a slice of this host's own
//! dpkg status file, which dpkg wrote).

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The stanzas of the host's dpkg status for `names` (real data).
fn host_status(names: &[&str]) -> String {
    let all = std::fs::read_to_string("/var/lib/dpkg/status")
        .unwrap_or_else(|e| panic!("this test reads the host's dpkg status: {e}"));
    let mut out = String::new();
    for stanza in all.split("\n\n") {
        let name = stanza
            .lines()
            .find_map(|l| l.strip_prefix("Package: "))
            .unwrap_or("");
        if names.contains(&name) {
            out.push_str(stanza.trim_end());
            out.push_str("\n\n");
        }
    }
    assert_eq!(
        out.matches("Package: ").count(),
        names.len(),
        "host status lacks one of {names:?}"
    );
    out
}

fn version_in(status: &str, name: &str) -> String {
    status
        .split("\n\n")
        .find(|s| s.lines().any(|l| l == format!("Package: {name}")))
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Version: ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .to_string()
}

/// busybox plus `extra` files, imported as `name`.
fn import_rootfs(
    env: &TestEnv,
    name: &str,
    extra: &[(&str, &str)],
    links: &[(&str, &str)],
) -> PathBuf {
    let dir = env.root.path().join(format!("rootfs-{name}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(busybox_tar())
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success());
    for (path, content) in extra {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("{e}"));
    }
    for (path, target) in links {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(target, &p).unwrap_or_else(|e| panic!("{e}"));
    }
    let tar = env.root.path().join(format!("{name}.tar"));
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success());
    env.ok(&["import", &tar.to_string_lossy(), name]);
    tar
}

fn sbom_rows(env: &TestEnv, what: &str) -> Vec<(String, String, usize)> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["sbom", "--format", "json", what]))
        .unwrap_or_else(|e| panic!("{e}"));
    v["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no packages"))
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["version"].as_str().unwrap_or_default().to_string(),
                p["layer"].as_u64().unwrap_or(u64::MAX) as usize,
            )
        })
        .collect()
}

#[test]
fn an_images_packages_and_what_a_container_installs_at_run_time() {
    let env = TestEnv::with_busybox();
    let status = host_status(&["libc6", "libssl3", "openssl", "zlib1g"]);
    import_rootfs(&env, "debby", &[("var/lib/dpkg/status", &status)], &[]);
    let rows = sbom_rows(&env, "debby");
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["libc6", "libssl3", "openssl", "zlib1g"]);
    assert_eq!(rows[2].1, version_in(&status, "openssl"));
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["sbom", "--format", "json", "debby"])).unwrap();
    let ssl = &json["packages"][1];
    assert_eq!(ssl["ecosystem"], "deb");
    assert_eq!(ssl["source"], "openssl");
    assert!(
        ssl["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:deb/debian/libssl3@"),
        "{ssl}"
    );
    assert_eq!(ssl["found_in"], "var/lib/dpkg/status");
    // The table, and -o.
    let table = env.ok(&["sbom", "debby"]);
    assert!(
        table.starts_with("NAME") && table.contains("openssl"),
        "{table}"
    );
    let out = env.root.path().join("sbom.json");
    env.ok(&[
        "sbom",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "debby",
    ]);
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("\"libssl3\""));
    // SPDX 2.3 and CycloneDX 1.5 (their schemas are checked in
    // berth-inventory's tests): one element per package, with its purl.
    let spdx: serde_json::Value =
        serde_json::from_str(&env.ok(&["sbom", "--format", "spdx-json", "debby"])).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let purls: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
        .filter_map(|r| r["referenceLocator"].as_str())
        .collect();
    assert_eq!(purls.len(), 4, "{spdx}");
    let cdx: serde_json::Value =
        serde_json::from_str(&env.ok(&["sbom", "--format", "cyclonedx-json", "debby"])).unwrap();
    assert_eq!(
        (cdx["bomFormat"].as_str(), cdx["specVersion"].as_str()),
        (Some("CycloneDX"), Some("1.5"))
    );
    assert_eq!(cdx["components"].as_array().unwrap().len(), 4);
    let (_, err) = env.fails(&["sbom", "--format", "xml", "debby"], 1);
    assert!(err.contains("unknown --format \"xml\""), "{err}");

    // A package "installed" at run time: the container's, not the image's.
    env.ok(&[
        "run", "-d", "--network", "none", "--name", "c1", "debby", "sh", "-c",
        "printf '\\nPackage: late\\nStatus: install ok installed\\nVersion: 2.0-1\\nArchitecture: amd64\\n' >> /var/lib/dpkg/status; touch /done; sleep 1000",
    ]);
    poll("the install", std::time::Duration::from_secs(10), || {
        env.run(&["exec", "c1", "test", "-e", "/done"])
            .status
            .success()
            .then_some(())
    });
    let ls = env.ok(&[
        "packages",
        "ls",
        "--filter",
        "name=late",
        "--format",
        "{{.Kind}} {{.Name}} {{.Version}} {{.Where}}",
    ]);
    assert_eq!(ls, "container c1 2.0-1 its writable layer\n");
    // The writable layer's inventory is kept between queries, and made
    // again when the layer changed: here the status file rewritten in place
    // (same inode, same size), then a package removed by a rename over it.
    env.ok(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "cat /var/lib/dpkg/status > /tmp/s && sed s/2.0-1/2.1-1/ /tmp/s > /var/lib/dpkg/status",
    ]);
    let fmt = "{{.Kind}} {{.Name}} {{.Version}}";
    let ls = env.ok(&["packages", "ls", "--filter", "name=late", "--format", fmt]);
    assert_eq!(ls, "container c1 2.1-1\n");
    env.ok(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "sed s/Package:.late/Package:\\ later/ /tmp/s > /tmp/t && mv /tmp/t /var/lib/dpkg/status",
    ]);
    let ls = env.ok(&["packages", "ls", "--filter", "name=late", "--format", fmt]);
    assert_eq!(ls, "");
    let ls = env.ok(&["packages", "ls", "--filter", "name=later", "--format", fmt]);
    assert_eq!(ls, "container c1 2.0-1\n");
    env.ok(&["exec", "c1", "sh", "-c", "cp /tmp/s /var/lib/dpkg/status"]);
    let ls = env.ok(&["packages", "ls", "--images", "--filter", "name=late"]);
    assert_eq!(ls.lines().count(), 1, "only the header: {ls}");
    // The rest of the container's packages keep their image layer.
    let c = sbom_rows(&env, "c1");
    assert!(
        c.contains(&("openssl".to_string(), version_in(&status, "openssl"), 0)),
        "{c:?}"
    );
    assert!(
        c.contains(&("late".to_string(), "2.0-1".to_string(), 1)),
        "{c:?}"
    );
    // Host-wide, by source package and version order (Debian's).
    let ssl = version_in(&status, "openssl");
    let below = env.ok(&[
        "packages",
        "ls",
        "--filter",
        "name=openssl",
        "--filter",
        &format!("version<{ssl}"),
        "--format",
        "{{.Package}}",
    ]);
    assert_eq!(below, "");
    let at = env.ok(&[
        "packages",
        "ls",
        "--images",
        "--filter",
        "name=openssl",
        "--filter",
        &format!("version<={ssl}"),
        "--format",
        "{{.Package}}",
    ]);
    let mut at: Vec<&str> = at.lines().collect();
    at.sort();
    assert_eq!(at, ["libssl3", "openssl"]);
    let (_, err) = env.fails(&["packages", "ls", "--filter", "bogus=1"], 1);
    assert!(err.contains("Invalid filter 'bogus'"), "{err}");
    env.ok(&["rm", "-f", "c1"]);
}

#[test]
fn upgrades_in_later_layers_and_whiteouts_compose_like_layers() {
    let env = TestEnv::with_busybox();
    let status = host_status(&["libssl3", "zlib1g"]);
    import_rootfs(&env, "base", &[("var/lib/dpkg/status", &status)], &[]);
    // An upgrade committed on top: the new version, from the new layer.
    let old = version_in(&status, "libssl3");
    let new_status = status.replace(&format!("Version: {old}"), "Version: 9.9.9-1");
    std::fs::write(env.root.path().join("status.new"), &new_status).unwrap();
    let dir = env.root.path().to_str().unwrap().to_string();
    env.ok(&[
        "run",
        "--name",
        "up",
        "--network",
        "none",
        "-v",
        &format!("{dir}:/in:ro"),
        "base",
        "cp",
        "/in/status.new",
        "/var/lib/dpkg/status",
    ]);
    env.ok(&["commit", "up", "upgraded"]);
    let rows = sbom_rows(&env, "upgraded");
    assert!(
        rows.contains(&("libssl3".to_string(), "9.9.9-1".to_string(), 1)),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("zlib1g".to_string(), version_in(&status, "zlib1g"), 0)),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 2);
    // The base image still has the old one; the query sees both images.
    let ls = env.ok(&[
        "packages",
        "ls",
        "--images",
        "--filter",
        "name=libssl3",
        "--format",
        "{{.Name}} {{.Version}}",
    ]);
    let mut ls: Vec<&str> = ls.lines().collect();
    ls.sort();
    assert_eq!(
        ls,
        [
            "base:latest ".to_string() + &old,
            "upgraded:latest 9.9.9-1".to_string()
        ]
    );
    // A whiteout: the database removed in a layer removes its packages.
    env.ok(&[
        "run",
        "--name",
        "rmdb",
        "--network",
        "none",
        "base",
        "rm",
        "/var/lib/dpkg/status",
    ]);
    env.ok(&["commit", "rmdb", "nodb"]);
    assert_eq!(sbom_rows(&env, "nodb"), []);
    // The impact of an upgrade to 9.9.9-1: base is to rebuild (and its
    // running container to restart), upgraded is not, nodb has none.
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "svc",
        "base",
        "sleep",
        "1000",
    ]);
    // A container whose own layer holds no package database: its image's.
    assert_eq!(
        env.ok(&[
            "packages",
            "ls",
            "--containers",
            "--filter",
            "name=zlib1g",
            "--format",
            "{{.Name}} {{.Where}}"
        ]),
        "svc image base\n"
    );
    let out = env.run(&[
        "packages", "impact", "openssl", "--fixed", "9.9.9-1", "--format", "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["kind"], "image");
    assert_eq!(rows[0]["name"], "base:latest");
    assert_eq!(rows[0]["package"]["name"], "libssl3");
    assert_eq!(rows[0]["containers"], serde_json::json!(["svc"]));
    assert!(rows[0]["layer"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let table = env.run(&["packages", "impact", "libssl3", "--fixed", "9.9.9-1"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("svc"),
        "{table:?}"
    );
    // Nothing below the first version: nothing to do, exit 0.
    let out = env.run(&["packages", "impact", "libssl3", "--fixed", "0.1"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    env.ok(&["rm", "-f", "svc"]);
    // The layer that brought it names its history step.
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["sbom", "--format", "json", "upgraded"])).unwrap();
    assert!(
        json["layers"][1]["created_by"]
            .as_str()
            .unwrap_or("")
            .contains("cp"),
        "{json}"
    );
}

#[test]
fn links_out_of_a_layer_are_never_followed_and_bad_databases_are_reported() {
    let env = TestEnv::with_busybox();
    // /var/lib/dpkg a link to the host's (absolute), and one that climbs.
    import_rootfs(&env, "linked", &[], &[("var/lib/dpkg", "/var/lib/dpkg")]);
    assert_eq!(sbom_rows(&env, "linked"), []);
    import_rootfs(
        &env,
        "climb",
        &[],
        &[("var/lib/dpkg", "../../../../../../var/lib/dpkg")],
    );
    assert_eq!(sbom_rows(&env, "climb"), []);
    // (The host has packages there: following the link would find them.)
    assert!(Path::new("/var/lib/dpkg/status").metadata().unwrap().len() > 0);
    // A truncated apk database and a binary status file: reported, not fatal.
    import_rootfs(
        &env,
        "broken",
        &[
            ("lib/apk/db/installed", "P:musl\nV:"),
            ("var/lib/rpm/Packages", "not berkeley"),
        ],
        &[],
    );
    let out = env.run(&["sbom", "broken"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARNING: /var/lib/rpm/Packages"), "{err}");
    // reindex makes every inventory again, and the answers stay.
    let before = env.ok(&["packages", "ls", "--format", "{{.Name}} {{.Package}}"]);
    let out = env.ok(&["packages", "reindex"]);
    assert!(out.contains("images inventoried"), "{out}");
    assert_eq!(
        env.ok(&["packages", "ls", "--format", "{{.Name}} {{.Package}}"]),
        before
    );
    let (_, err) = env.fails(&["sbom", "nosuch"], 1);
    assert!(err.contains("No such image or container: nosuch"), "{err}");
}

#[test]
fn scan_matches_osv_advisories_offline() {
    let env = TestEnv::with_busybox();
    let status = host_status(&["libssl3", "openssl", "zlib1g"]);
    import_rootfs(&env, "debby", &[("var/lib/dpkg/status", &status)], &[]);
    let ssl = version_in(&status, "openssl");
    // A Debian advisory keyed on the source package, fixed after what the
    // image has; and one fixed before it (not a match).
    let db = env.root.path().join("osv");
    std::fs::create_dir_all(&db).unwrap();
    let record = |id: &str, fixed: &str| {
        serde_json::json!({
            "schema_version": "1.6.0",
            "id": id,
            "modified": "2026-11-01T00:00:00Z",
            "summary": "openssl: a test advisory",
            "affected": [{
                "package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
                "ecosystem_specific": {"urgency": "high"}
            }]
        })
        .to_string()
    };
    std::fs::write(
        db.join("DSA-9999-1.json"),
        record("DSA-9999-1", &format!("{ssl}+fix1")),
    )
    .unwrap();
    std::fs::write(db.join("DSA-1000-1.json"), record("DSA-1000-1", "1.0.0-1")).unwrap();
    std::fs::write(db.join("broken.json"), "{\"id\": ").unwrap();
    let out = env.run(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
        "debby",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.json: truncated JSON"),
        "{out:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut hits: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["match"]["package"]["name"].as_str().unwrap().to_string(),
                h["match"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    hits.sort();
    assert_eq!(
        hits,
        [
            ("libssl3".to_string(), "DSA-9999-1".to_string()),
            ("openssl".to_string(), "DSA-9999-1".to_string())
        ]
    );
    assert!(v[0]["layer"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let table = env.run(&["scan", "--db", db.to_str().unwrap(), "--all"]);
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.contains("DSA-9999-1") && t.contains("HIGH"), "{t}");
    // The fixed one only: nothing found, exit 0.
    std::fs::remove_file(db.join("DSA-9999-1.json")).unwrap();
    let out = env.run(&["scan", "--db", db.to_str().unwrap(), "debby"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (_, err) = env.fails(&["scan", "--db", "/nonexistent/osv", "debby"], 1);
    assert!(err.contains("advisories /nonexistent/osv"), "{err}");
}

/// Runs `cmd` with `args` in `dir`; its stdout, or why it failed.
fn tool(dir: &Path, cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the package managers' own tools fetch: three Debian packages
/// (`apt-get download`), a wheel installed by pip, a tarball made by `npm
/// pack`; kept between runs. `None` (after saying why) when a tool or the
/// network is missing, which under CI is a failure.
fn fetched() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inventory-fetched");
    let done = dir.join("done");
    if done.exists() {
        return Some(dir);
    }
    let fetch = || -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["debs", "pip", "npm"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
        }
        tool(
            &dir.join("debs"),
            "apt-get",
            &["download", "-q", "zlib1g", "libssl3", "openssl"],
        )?;
        tool(
            &dir,
            "python3",
            &[
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                "pip",
                "six==1.17.0",
            ],
        )?;
        tool(&dir.join("npm"), "npm", &["pack", "-q", "semver@7.6.3"])?;
        std::fs::write(&done, b"").map_err(|e| e.to_string())
    };
    match fetch() {
        Ok(()) => Some(dir),
        Err(e) if std::env::var_os("CI").is_some() => panic!("fetching real packages: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: real package managers' output not available: {e}");
            None
        }
    }
}

fn untar_busybox(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    tool(dir, "tar", &["-xf", &busybox_tar().to_string_lossy()]).unwrap_or_else(|e| panic!("{e}"));
}

fn import_dir(env: &TestEnv, dir: &Path, name: &str) {
    let tar = dir.with_extension("tar");
    tool(dir, "tar", &["-cf", &tar.to_string_lossy(), "."]).unwrap_or_else(|e| panic!("{e}"));
    env.ok(&["import", &tar.to_string_lossy(), name]);
}

/// `name version` of each package of `ecosystem` in `what`'s SBOM, sorted.
fn sbom_of(env: &TestEnv, what: &str, ecosystem: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["sbom", "--format", "json", what]))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<String> = v["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["ecosystem"] == ecosystem)
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn roots_made_by_dpkg_pip_and_npm_themselves() {
    let Some(fetched) = fetched() else { return };
    let env = TestEnv::with_busybox();
    let debs: Vec<String> = std::fs::read_dir(fetched.join("debs"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    assert_eq!(debs.len(), 3, "{debs:?}");

    // dpkg installs the packages into a busybox root (their maintainer
    // scripts run there, in busybox's sh) and writes its status file.
    let deb = env.root.path().join("deb");
    untar_busybox(&deb);
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(deb.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(deb.join(f), b"").unwrap();
    }
    let root_arg = format!("--root={}", deb.display());
    let mut args = vec![root_arg.as_str(), "--force-depends", "--no-triggers", "-i"];
    args.extend(debs.iter().map(String::as_str));
    tool(&deb, "dpkg", &args).unwrap();
    // Python and Node packages as pip and npm lay them out.
    let site = deb.join("usr/lib/python3/dist-packages");
    std::fs::create_dir_all(&site).unwrap();
    tool(
        &fetched.join("pip"),
        "cp",
        &[
            "-a",
            "six-1.17.0.dist-info",
            "six.py",
            &site.to_string_lossy(),
        ],
    )
    .unwrap();
    let nm = deb.join("app/node_modules/semver");
    std::fs::create_dir_all(&nm).unwrap();
    tool(
        &nm,
        "tar",
        &[
            "-xzf",
            &fetched.join("npm/semver-7.6.3.tgz").to_string_lossy(),
            "--strip-components=1",
        ],
    )
    .unwrap();
    import_dir(&env, &deb, "real-deb");

    // What dpkg itself says is installed there.
    let admindir = format!("--admindir={}", deb.join("var/lib/dpkg").display());
    let mut want: Vec<String> = tool(
        &deb,
        "dpkg-query",
        &[&admindir, "-W", "-f", "${Package} ${Version}\n"],
    )
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect();
    want.sort();
    assert_eq!(want.len(), 3, "{want:?}");
    assert_eq!(sbom_of(&env, "real-deb", "deb"), want);
    assert_eq!(sbom_of(&env, "real-deb", "pypi"), ["six 1.17.0"]);
    assert_eq!(sbom_of(&env, "real-deb", "npm"), ["semver 7.6.3"]);
    // The licences of DEP-5 copyright files dpkg unpacked.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["sbom", "--format", "json", "real-deb"])).unwrap();
    let zlib = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "zlib1g")
        .unwrap();
    assert_eq!(zlib["licenses"][0], "Zlib", "{zlib}");

    // A commit that installed nothing has its parent's packages (copied,
    // not composed again), each still from its own layer.
    env.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "w1",
        "real-deb",
        "sh",
        "-c",
        "echo x > /x",
    ]);
    env.ok(&["commit", "w1", "real-deb-2"]);
    env.ok(&["rm", "w1"]);
    assert_eq!(sbom_of(&env, "real-deb-2", "deb"), want);
    assert_eq!(sbom_of(&env, "real-deb-2", "npm"), ["semver 7.6.3"]);
    let layers: Vec<usize> = sbom_rows(&env, "real-deb-2").iter().map(|r| r.2).collect();
    assert!(layers.iter().all(|l| *l == 0), "{layers:?}");

    // The same packages as distroless images hold them: unpacked by
    // `dpkg-deb -x`, each one's control fields in status.d/NAME.
    let dl = env.root.path().join("distroless");
    untar_busybox(&dl);
    std::fs::create_dir_all(dl.join("var/lib/dpkg/status.d")).unwrap();
    for d in &debs {
        tool(&dl, "dpkg-deb", &["-x", d, "."]).unwrap();
        let control = tool(&dl, "dpkg-deb", &["-f", d]).unwrap();
        let name = tool(&dl, "dpkg-deb", &["-f", d, "Package"]).unwrap();
        std::fs::write(dl.join("var/lib/dpkg/status.d").join(name.trim()), control).unwrap();
    }
    import_dir(&env, &dl, "real-distroless");
    assert_eq!(sbom_of(&env, "real-distroless", "deb"), want);

    // Host-wide: both images, by the source package.
    let ls = env.ok(&[
        "packages",
        "ls",
        "--filter",
        "name=openssl",
        "--format",
        "{{.Name}} {{.Package}}",
    ]);
    let mut ls: Vec<&str> = ls.lines().collect();
    ls.sort();
    assert_eq!(
        ls,
        [
            "real-deb-2:latest libssl3",
            "real-deb-2:latest openssl",
            "real-deb:latest libssl3",
            "real-deb:latest openssl",
            "real-distroless:latest libssl3",
            "real-distroless:latest openssl"
        ]
    );
}

/// An rpm database as rpm itself writes it (rpmbuild of the spec in
/// berth-inventory's test data, installed with `--justdb` into a busybox
/// root), and an apk database written from its documented format (apk-tools
/// has no packages to install here).
#[test]
fn rpm_and_apk_roots() {
    let env = TestEnv::with_busybox();
    let have_rpm = tool(env.root.path(), "rpmbuild", &["--version"]).is_ok();
    if !have_rpm {
        assert!(std::env::var_os("CI").is_none(), "CI installs rpm");
        eprintln!("SKIPPED: rpmbuild not installed");
        return;
    }
    let top = env.root.path().join("rpmtop");
    let spec = repo_root().join("crates/berth-inventory/tests/data/rpm/berth-hello.spec");
    let topdir = format!("_topdir {}", top.display());
    tool(
        env.root.path(),
        "rpmbuild",
        &["-bb", "--define", &topdir, &spec.to_string_lossy()],
    )
    .unwrap();
    let rpm_file = top.join("RPMS/noarch/berth-hello-1.2.3-4.fc40.noarch.rpm");
    let r = env.root.path().join("rpmroot");
    untar_busybox(&r);
    std::fs::write(
        r.join("etc/os-release"),
        "NAME=\"Fedora Linux\"\nID=fedora\nVERSION_ID=40\n",
    )
    .unwrap();
    let root = r.to_string_lossy().into_owned();
    let rpm = |extra: &[&str]| {
        let mut args = vec![
            "--root",
            &root,
            "--dbpath",
            "/var/lib/rpm",
            "--define",
            "_db_backend sqlite",
        ];
        args.extend_from_slice(extra);
        tool(env.root.path(), "rpm", &args).unwrap()
    };
    rpm(&["--initdb"]);
    rpm(&[
        "-i",
        "--justdb",
        "--nodeps",
        "--ignorearch",
        "--ignoreos",
        "--nosignature",
        &rpm_file.to_string_lossy(),
    ]);
    assert_eq!(rpm(&["-qa"]).trim(), "berth-hello-1.2.3-4.fc40.noarch");
    import_dir(&env, &r, "fedora-ish");
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["sbom", "--format", "json", "fedora-ish"])).unwrap();
    assert_eq!(v["findings"], serde_json::json!([]), "{v}");
    let p = &v["packages"][0];
    assert_eq!(
        (
            p["name"].as_str(),
            p["version"].as_str(),
            p["ecosystem"].as_str()
        ),
        (Some("berth-hello"), Some("2:1.2.3-4.fc40"), Some("rpm")),
        "{v}"
    );
    assert_eq!(
        p["purl"],
        "pkg:rpm/fedora/berth-hello@1.2.3-4.fc40?arch=noarch&epoch=2&upstream=berth-hello-1.2.3-4.fc40.src.rpm"
    );
    assert_eq!(p["found_in"], "var/lib/rpm/rpmdb.sqlite");
    // rpm's version order: epoch 2 is above any 1.x without one.
    let ls = env.ok(&[
        "packages",
        "ls",
        "--filter",
        "ecosystem=rpm",
        "--filter",
        "version>9.9-9",
        "--format",
        "{{.Package}} {{.Version}}",
    ]);
    assert_eq!(ls, "berth-hello 2:1.2.3-4.fc40\n");

    let a = env.root.path().join("apkroot");
    untar_busybox(&a);
    std::fs::write(
        a.join("etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n",
    )
    .unwrap();
    std::fs::create_dir_all(a.join("lib/apk/db")).unwrap();
    std::fs::write(
        a.join("lib/apk/db/installed"),
        "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\n\n\
         P:libssl3\nV:3.3.2-r1\nA:x86_64\nL:Apache-2.0\no:openssl\n\n",
    )
    .unwrap();
    import_dir(&env, &a, "alpine-ish");
    assert_eq!(
        sbom_of(&env, "alpine-ish", "apk"),
        ["libssl3 3.3.2-r1", "musl 1.2.5-r0"]
    );
    // apk's order: 3.3.2-r1 < 3.3.2-r2 < 3.3.10.
    let ls = env.ok(&[
        "packages",
        "ls",
        "--filter",
        "name=openssl",
        "--filter",
        "version<3.3.10",
        "--format",
        "{{.Name}} {{.Package}} {{.Version}}",
    ]);
    assert_eq!(ls, "alpine-ish:latest libssl3 3.3.2-r1\n");
    let ls = env.ok(&[
        "packages",
        "ls",
        "--filter",
        "name=openssl",
        "--filter",
        "version<3.3.2-r1",
        "--format",
        "{{.Package}}",
    ]);
    assert_eq!(ls, "");
}
