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
