//! Scanner tests over real trees made in a temp dir, with the real fixtures of
//! `tests/data/` (see its README) and format-built ones for the rest.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{compose, scan_tree, Ecosystem, Finding, LayerInventory};

pub(crate) fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub(crate) fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

pub(crate) fn copy(root: &Path, rel: &str, fixture: &str) {
    put(root, rel, &fs::read(data(fixture)).unwrap());
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

pub(crate) fn debian_root(root: &Path) {
    copy(root, "var/lib/dpkg/status", "dpkg/status");
    for p in ["libssl3", "zlib1g", "tzdata", "base-files"] {
        copy(
            root,
            &format!("usr/share/doc/{p}/copyright"),
            &format!("dpkg/doc/{p}/copyright"),
        );
    }
    put(
        root,
        "usr/lib/os-release",
        b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    );
    link(root, "etc/os-release", "../usr/lib/os-release");
}

fn find<'a>(inv: &'a LayerInventory, name: &str) -> &'a crate::Package {
    inv.packages
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:#?}", inv.packages))
}

#[test]
fn real_debian_root() {
    let t = tempfile::tempdir().unwrap();
    debian_root(t.path());
    let inv = scan_tree(t.path()).unwrap();
    assert_eq!(inv.findings, []);
    assert_eq!(inv.databases, ["var/lib/dpkg/status"]);
    assert_eq!(inv.packages.len(), 5);
    // etc/os-release is a symlink, not followed; usr/lib/os-release is read.
    assert_eq!(
        inv.os_release.as_ref().map(|o| o.id.as_str()),
        Some("debian")
    );
    let ssl = find(&inv, "libssl3");
    assert_eq!(ssl.version, "3.0.22-1~deb12u2");
    assert_eq!(ssl.source.as_deref(), Some("openssl"));
    assert_eq!(ssl.licenses, ["Apache-2.0", "Artistic or GPL-1+"]);
    assert_eq!(
        ssl.purl,
        "pkg:deb/debian/libssl3@3.0.22-1~deb12u2?arch=amd64&upstream=openssl"
    );
    let z = find(&inv, "zlib1g");
    assert_eq!(z.licenses, ["Zlib"]);
    assert_eq!(
        z.purl,
        "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&upstream=zlib"
    );
    // Free-form copyright: no licence claimed.
    assert_eq!(find(&inv, "base-files").licenses, Vec::<String>::new());
    assert_eq!(find(&inv, "libgcc-s1").source.as_deref(), Some("gcc-12"));
}

fn elf_exec(root: &Path, rel: &str, sections: &[(&str, &[u8])], mode: u32) {
    put(root, rel, &crate::elf::tests::elf64(sections));
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn language_packages() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let site = "usr/local/lib/python3.11/site-packages";
    for d in [
        "six-1.17.0.dist-info",
        "backcall-0.2.0.dist-info",
        "attrs-26.1.0.dist-info",
    ] {
        copy(
            r,
            &format!("{site}/{d}/METADATA"),
            &format!("python/{d}/METADATA"),
        );
    }
    put(
        r,
        &format!("{site}/legacy-1.0.egg-info/PKG-INFO"),
        b"Metadata-Version: 1.1\nName: legacy\nVersion: 1.0\nLicense: BSD\n",
    );
    put(
        r,
        &format!("{site}/single-2.0.egg-info"),
        b"Metadata-Version: 1.1\nName: single\nVersion: 2.0\n",
    );
    copy(
        r,
        "app/node_modules/semver/package.json",
        "npm/semver/package.json",
    );
    copy(
        r,
        "app/node_modules/@npmcli/fs/package.json",
        "npm/@npmcli/fs/package.json",
    );
    // Not dependencies: the application itself and a package's own test fixture.
    put(
        r,
        "app/package.json",
        br#"{"name":"my-app","version":"1.0.0"}"#,
    );
    put(
        r,
        "app/node_modules/semver/test/package.json",
        br#"{"name":"fixture","version":"0.0.0"}"#,
    );
    copy(r, "opt/app/lib/plexus-cipher.jar", "java/plexus-cipher.jar");
    copy(
        r,
        "opt/app/lib/atinject-jsr330-api-1.0.jar",
        "java/atinject-jsr330-api-1.0.jar",
    );
    let go = crate::golang::tests::section("go1.22.1", crate::golang::tests::MODINFO);
    let dep = crate::rustaudit::tests::section(crate::rustaudit::tests::JSON);
    elf_exec(
        r,
        "usr/local/bin/hello",
        &[(".text", b"code"), (".go.buildinfo", &go)],
        0o755,
    );
    elf_exec(r, "usr/local/bin/rusty", &[(".dep-v0", &dep)], 0o755);
    // Not executable: not looked into.
    elf_exec(
        r,
        "usr/local/lib/libgo.so.data",
        &[(".go.buildinfo", &go)],
        0o644,
    );
    // Executable, not ELF.
    put(r, "usr/local/bin/script", &[b'#'; 100]);
    fs::set_permissions(
        r.join("usr/local/bin/script"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let inv = scan_tree(r).unwrap();
    assert_eq!(inv.findings, []);
    let by = |eco: Ecosystem| {
        let mut v: Vec<String> = inv
            .packages
            .iter()
            .filter(|p| p.ecosystem == eco)
            .map(|p| format!("{} {}", p.purl, p.licenses.join("|")))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        by(Ecosystem::Pypi),
        [
            "pkg:pypi/attrs@26.1.0 MIT",
            "pkg:pypi/backcall@0.2.0 BSD License",
            "pkg:pypi/legacy@1.0 BSD",
            "pkg:pypi/single@2.0 ",
            "pkg:pypi/six@1.17.0 MIT"
        ]
    );
    assert_eq!(
        by(Ecosystem::Npm),
        ["pkg:npm/%40npmcli/fs@5.0.0 ISC", "pkg:npm/semver@7.8.5 ISC"]
    );
    assert_eq!(
        by(Ecosystem::Maven),
        [
            "pkg:maven/javax.inject@1.0.0 ",
            "pkg:maven/org.codehaus.plexus/plexus-cipher@2.0 ",
        ]
    );
    assert_eq!(by(Ecosystem::Golang).len(), 4);
    assert!(inv
        .packages
        .iter()
        .all(|p| p.found_in != "usr/local/lib/libgo.so.data"));
    assert_eq!(
        by(Ecosystem::Cargo),
        ["pkg:cargo/hello@0.1.0 ", "pkg:cargo/serde@1.0.200 "]
    );
    assert!(inv.databases.contains(&"usr/local/bin/hello".to_string()));
    assert!(inv
        .databases
        .contains(&format!("{site}/six-1.17.0.dist-info/METADATA")));
    assert_eq!(
        find(&inv, "semver").found_in,
        "app/node_modules/semver/package.json"
    );
}

#[test]
fn symlinks_never_lead_out_of_the_tree() {
    // Every link here points at real host files holding packages: the host's
    // /var/lib/dpkg/status, /etc/os-release, npm's node_modules. None may be read.
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    link(r, "etc", "/etc");
    link(r, "var/lib/dpkg", "/var/lib/dpkg");
    link(r, "lib", "../../..");
    link(r, "usr/lib/os-release", "/etc/os-release");
    link(r, "usr/lib/node_modules", "/usr/lib/node_modules");
    link(
        r,
        "app/node_modules/x",
        "../../../../../../../../usr/lib/node_modules/npm",
    );
    link(
        r,
        "usr/lib/python3/dist-packages",
        "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages",
    );
    link(r, "opt/up", "..");
    let inv = scan_tree(r).unwrap();
    let empty = LayerInventory {
        scanner: crate::SCANNER_VERSION,
        ..Default::default()
    };
    assert_eq!(inv, empty, "nothing outside the tree may show");

    // A real status file whose doc dir links to the host's: no licence from there.
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    copy(r, "var/lib/dpkg/status", "dpkg/status");
    link(r, "usr/share/doc", "/usr/share/doc");
    let inv = scan_tree(r).unwrap();
    assert_eq!(inv.packages.len(), 5);
    assert!(inv.packages.iter().all(|p| p.licenses.is_empty()));
    // A status file that is itself a link to the host's.
    let t = tempfile::tempdir().unwrap();
    link(t.path(), "var/lib/dpkg/status", "/var/lib/dpkg/status");
    assert_eq!(scan_tree(t.path()).unwrap(), empty);
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let lower = tempfile::tempdir().unwrap();
    debian_root(lower.path());
    let site = "usr/local/lib/python3.11/site-packages";
    copy(
        lower.path(),
        &format!("{site}/six-1.17.0.dist-info/METADATA"),
        "python/six-1.17.0.dist-info/METADATA",
    );
    copy(
        lower.path(),
        "app/node_modules/semver/package.json",
        "npm/semver/package.json",
    );
    copy(
        lower.path(),
        "opt/lib/plexus-cipher.jar",
        "java/plexus-cipher.jar",
    );

    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    // pip uninstall six: the dist-info directory whited out.
    put(u, &format!("{site}/.wh.six-1.17.0.dist-info"), b"");
    // rm -rf app && mkdir app: opaque.
    put(u, "app/.wh..wh..opq", b"");
    // An upgrade of libssl3: dpkg rewrote the whole status file.
    let status = fs::read_to_string(data("dpkg/status"))
        .unwrap()
        .replace("3.0.22-1~deb12u2", "3.0.23-1~deb12u1");
    put(u, "var/lib/dpkg/status", status.as_bytes());
    // rm opt/lib/plexus-cipher.jar, overlayfs's way: a 0:0 character device (root only).
    fs::create_dir_all(u.join("opt/lib")).unwrap();
    let _ = rustix::fs::mknodat(
        rustix::fs::CWD,
        u.join("opt/lib/plexus-cipher.jar").as_path(),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    );
    let dev_made = u.join("opt/lib/plexus-cipher.jar").exists();
    eprintln!("whiteout device made: {dev_made}");
    // An opaque directory by xattr, as overlayfs marks it (needs CAP_SYS_ADMIN).
    fs::create_dir_all(u.join("srv")).unwrap();
    let xattr_made = rustix::fs::setxattr(
        u.join("srv").as_path(),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    eprintln!("opaque xattr set: {xattr_made}");

    let inv = scan_tree(u).unwrap();
    assert!(inv
        .whiteouts
        .contains(&format!("{site}/six-1.17.0.dist-info")));
    assert!(inv.opaque_dirs.contains(&"app".to_string()));
    assert_eq!(
        inv.whiteouts
            .contains(&"opt/lib/plexus-cipher.jar".to_string()),
        dev_made
    );
    assert_eq!(inv.opaque_dirs.contains(&"srv".to_string()), xattr_made);

    let layers = [scan_tree(lower.path()).unwrap(), inv];
    let image = compose(&layers);
    let mut names: Vec<(String, String, Option<usize>)> = image
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.layer))
        .collect();
    names.sort();
    let mut want = vec![
        ("base-files", "12.4+deb12u11", Some(0)),
        ("libgcc-s1", "12.2.0-14+deb12u1", Some(0)),
        ("libssl3", "3.0.23-1~deb12u1", Some(1)),
        ("tzdata", "2025b-0+deb12u2", Some(0)),
        ("zlib1g", "1:1.2.13.dfsg-1", Some(0)),
    ];
    if !dev_made {
        want.push(("org.codehaus.plexus:plexus-cipher", "2.0", Some(0)));
    }
    want.sort();
    let want: Vec<(String, String, Option<usize>)> = want
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c))
        .collect();
    assert_eq!(names, want);
    // The upper layer's status has no doc dir in that layer: licences come only
    // from the tree scanned (a documented limit).
    assert!(image
        .iter()
        .find(|p| p.name == "libssl3")
        .is_some_and(|p| p.licenses.is_empty()));
}

#[test]
fn corrupt_inputs_are_findings() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    put(
        r,
        "lib/apk/db/installed",
        b"P:musl\nV:1.2.5-r0\nA:x86_64\n\nP:libssl3\nV",
    );
    put(r, "var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0truncated");
    put(r, "var/lib/rpm/Packages", &[0u8; 512]);
    put(r, "usr/lib/sysimage/rpm/Packages.db", &[0u8; 512]);
    put(
        r,
        "app/node_modules/left-pad/package.json",
        br#"{"name": "left-pad", "vers"#,
    );
    let jar = fs::read(data("java/plexus-cipher.jar")).unwrap();
    put(r, "opt/broken.jar", &jar[..jar.len() / 2]);
    let mut elf = crate::elf::tests::elf64(&[(".go.buildinfo", b"\xff Go buildinf:")]);
    elf.truncate(elf.len() - 70);
    put(r, "usr/bin/cut", &elf);
    fs::set_permissions(r.join("usr/bin/cut"), fs::Permissions::from_mode(0o755)).unwrap();
    // A 3 GiB (sparse) status file: refused by size, never read.
    fs::create_dir_all(r.join("var/lib/dpkg")).unwrap();
    fs::File::create(r.join("var/lib/dpkg/status"))
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    // A FIFO where a metadata file would be: never opened (it would block).
    fs::create_dir_all(r.join("usr/lib/python3/dist-packages/x.dist-info")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r.join("usr/lib/python3/dist-packages/x.dist-info/METADATA")
            .as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();

    let inv = scan_tree(r).unwrap();
    let mut unreadable: Vec<&str> = Vec::new();
    let mut unsupported: Vec<&str> = Vec::new();
    for f in &inv.findings {
        match f {
            Finding::Unreadable { path, .. } => unreadable.push(path),
            Finding::Unsupported { path, .. } => unsupported.push(path),
        }
    }
    unreadable.sort();
    assert_eq!(
        unreadable,
        [
            "app/node_modules/left-pad/package.json",
            "lib/apk/db/installed",
            "opt/broken.jar",
            "usr/bin/cut",
            "var/lib/dpkg/status",
            "var/lib/rpm/rpmdb.sqlite",
        ],
        "{:#?}",
        inv.findings
    );
    unsupported.sort();
    assert_eq!(
        unsupported,
        ["usr/lib/sysimage/rpm/Packages.db", "var/lib/rpm/Packages"]
    );
    assert_eq!(inv.packages, []);
    // Unreadable databases still replace the lower layer's: they are listed.
    assert!(inv.databases.contains(&"var/lib/dpkg/status".to_string()));
    assert!(inv.databases.contains(&"lib/apk/db/installed".to_string()));
}

#[test]
fn rpmdb_and_apk_through_the_scanner() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    put(
        r,
        "etc/os-release",
        b"NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.4\"\n",
    );
    fs::create_dir_all(r.join("var/lib/rpm")).unwrap();
    let conn = rusqlite::Connection::open(r.join("var/lib/rpm/rpmdb.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO Packages (blob) VALUES (?1)",
        [crate::rpm::tests::openssl_libs()],
    )
    .unwrap();
    // A header blob rpm 4.18 itself wrote (tests/data/README.md).
    let real = fs::read(data("rpm/berth-hello.header")).unwrap();
    conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [real])
        .unwrap();
    drop(conn);
    put(
        r,
        "lib/apk/db/installed",
        b"P:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\n\n",
    );
    let inv = scan_tree(r).unwrap();
    assert_eq!(inv.findings, []);
    assert_eq!(find(&inv, "openssl-libs").purl, "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&upstream=openssl-3.0.7-27.el9.src.rpm");
    let hello = find(&inv, "berth-hello");
    assert_eq!(hello.version, "2:1.2.3-4.fc40");
    assert_eq!(hello.licenses, ["MIT AND Apache-2.0"]);
    assert_eq!(hello.source.as_deref(), Some("berth-hello"));
    assert_eq!(
        hello.purl,
        "pkg:rpm/rocky/berth-hello@1.2.3-4.fc40?arch=noarch&epoch=2&upstream=berth-hello-1.2.3-4.fc40.src.rpm"
    );
    assert_eq!(
        find(&inv, "musl").purl,
        "pkg:apk/rocky/musl@1.2.5-r0?arch=x86_64"
    );
    // Nothing was written beside the database (no journal, no WAL).
    let mut names: Vec<String> = fs::read_dir(r.join("var/lib/rpm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["rpmdb.sqlite"]);
}

#[test]
fn json_round_trip_and_root_errors() {
    let t = tempfile::tempdir().unwrap();
    debian_root(t.path());
    put(t.path(), "x/.wh.y", b"");
    let inv = scan_tree(t.path()).unwrap();
    let json = serde_json::to_string(&inv).unwrap();
    let back: LayerInventory = serde_json::from_str(&json).unwrap();
    assert_eq!(back, inv);
    assert!(json.contains(r#""ecosystem":"deb""#));
    assert!(scan_tree(&t.path().join("missing")).is_err());
    assert!(scan_tree(&t.path().join("var/lib/dpkg/status")).is_err());
    assert_eq!(inv.scanner, crate::SCANNER_VERSION);
    let f = Finding::Unsupported {
        path: "p".into(),
        format: "f".into(),
    };
    assert_eq!(
        serde_json::to_string(&f).unwrap(),
        r#"{"kind":"unsupported","path":"p","format":"f"}"#
    );
}

/// A Go binary built by the test, when a Go toolchain is installed (Debian's
/// `golang-go`); without one there is nothing to build and the test says so.
#[test]
fn real_go_binary() {
    let Ok(v) = std::process::Command::new("go").arg("version").output() else {
        crate::missing_tool("no Go toolchain: real_go_binary checks nothing");
        return;
    };
    let gover = String::from_utf8_lossy(&v.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    let src = tempfile::tempdir().unwrap();
    put(
        src.path(),
        "go.mod",
        b"module example.com/hello\n\ngo 1.18\n",
    );
    put(
        src.path(),
        "main.go",
        b"package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n",
    );
    let tree = tempfile::tempdir().unwrap();
    fs::create_dir_all(tree.path().join("usr/local/bin")).unwrap();
    let out = std::process::Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(tree.path().join("usr/local/bin/hello"))
        .arg(".")
        .current_dir(src.path())
        .env("GOCACHE", src.path().join(".cache"))
        .env("GOPATH", src.path().join(".gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv = scan_tree(tree.path()).unwrap();
    assert_eq!(inv.findings, []);
    let got: Vec<(&str, &str, &str)> = inv
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str(), p.purl.as_str()))
        .collect();
    let std_version = gover.trim_start_matches("go").to_string();
    assert_eq!(
        got,
        [
            (
                "example.com/hello",
                "(devel)",
                "pkg:golang/example.com/hello@%28devel%29"
            ),
            (
                "stdlib",
                std_version.as_str(),
                format!("pkg:golang/stdlib@{std_version}").as_str()
            ),
        ]
    );
    assert_eq!(inv.packages[0].found_in, "usr/local/bin/hello");
}

/// A Rust binary built by the test with cargo-auditable, when it is installed
/// (`cargo install cargo-auditable`); without it the test says so.
#[test]
fn real_cargo_auditable_binary() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let has = std::process::Command::new(&cargo)
        .args(["auditable", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        crate::missing_tool("no cargo-auditable: real_cargo_auditable_binary checks nothing");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    put(
        src.path(),
        "Cargo.toml",
        b"[package]\nname = \"audited\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\n[dependencies]\nhex = \"0.4\"\n\n[workspace]\n",
    );
    put(
        src.path(),
        "src/main.rs",
        b"fn main() { println!(\"{}\", hex::encode(b\"hi\")); }\n",
    );
    let out = std::process::Command::new(&cargo)
        .args(["auditable", "build", "--offline", "--quiet", "--target-dir"])
        .arg(src.path().join("target"))
        .current_dir(src.path())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo auditable build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = tempfile::tempdir().unwrap();
    fs::create_dir_all(tree.path().join("usr/local/bin")).unwrap();
    fs::copy(
        src.path().join("target/debug/audited"),
        tree.path().join("usr/local/bin/audited"),
    )
    .unwrap();
    let inv = scan_tree(tree.path()).unwrap();
    assert_eq!(inv.findings, []);
    let mut got: Vec<(&str, &str)> = inv
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.purl.as_str()))
        .collect();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], ("audited", "pkg:cargo/audited@0.3.1"));
    assert_eq!(got[1].0, "hex");
    assert!(got[1].1.starts_with("pkg:cargo/hex@0.4."));
    assert!(inv
        .packages
        .iter()
        .all(|p| p.ecosystem == Ecosystem::Cargo && p.found_in == "usr/local/bin/audited"));
}

#[test]
fn real_rpm_header_truncated_anywhere_is_an_error() {
    let real = fs::read(data("rpm/berth-hello.header")).unwrap();
    assert!(crate::rpm::parse_header(&real).is_ok());
    for cut in 0..real.len() {
        assert!(
            crate::rpm::parse_header(&real[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Every single-byte corruption is an answer, never a panic.
    for i in 0..real.len() {
        let mut b = real.clone();
        b[i] ^= 0xff;
        let _ = crate::rpm::parse_header(&b).and_then(|h| crate::rpm::package(h, "f", "x"));
    }
}

#[test]
fn limits_turn_into_findings() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    copy(r, "opt/plexus-cipher.jar", "java/plexus-cipher.jar");
    copy(
        r,
        "a/b/c/d/e/node_modules/semver/package.json",
        "npm/semver/package.json",
    );
    let limits = crate::scan::Limits {
        max_archive: 1000,
        max_depth: 3,
        ..Default::default()
    };
    let inv = crate::scan::scan_tree_with(r, &limits).unwrap();
    let paths: Vec<&str> = inv
        .findings
        .iter()
        .map(|f| match f {
            Finding::Unreadable { path, .. } | Finding::Unsupported { path, .. } => path.as_str(),
        })
        .collect();
    assert_eq!(
        paths,
        ["a/b/c/d", "opt/plexus-cipher.jar"],
        "{:#?}",
        inv.findings
    );
    assert_eq!(inv.packages, []);
    // With the default limits both are read.
    assert_eq!(scan_tree(r).unwrap().packages.len(), 2);
}

#[test]
fn fingerprints_move_with_every_change_a_scan_could_see() {
    use crate::{fingerprint_tree, Limits};
    let t = tempfile::tempdir().unwrap();
    debian_root(t.path());
    let l = Limits::default();
    let fp = || fingerprint_tree(t.path(), &l).unwrap();
    let first = fp();
    assert_eq!(first, fp(), "a tree nobody touched");
    // Reading is not a change.
    scan_tree(t.path()).unwrap();
    assert_eq!(first, fp());
    let status = t.path().join("var/lib/dpkg/status");
    type Change<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let mut changes: Vec<Change> = vec![
        (
            "rewritten in place, same size",
            Box::new(|| {
                let b = fs::read(&status).unwrap();
                fs::write(&status, b).unwrap();
            }),
        ),
        (
            "mode",
            Box::new(|| fs::set_permissions(&status, fs::Permissions::from_mode(0o600)).unwrap()),
        ),
        (
            "a new empty file deep down",
            Box::new(|| put(t.path(), "usr/lib/python3/x.dist-info/METADATA", b"")),
        ),
        (
            "a rename",
            Box::new(|| {
                fs::rename(
                    t.path().join("usr/lib/python3/x.dist-info"),
                    t.path().join("usr/lib/python3/y.dist-info"),
                )
                .unwrap()
            }),
        ),
        (
            "a symlink's target",
            Box::new(|| {
                fs::remove_file(t.path().join("etc/os-release")).unwrap();
                link(t.path(), "etc/os-release", "../usr/lib/os-releasE");
            }),
        ),
    ];
    let mut seen = vec![first];
    for (what, change) in changes.drain(..) {
        change();
        let now = fp();
        assert!(!seen.contains(&now), "{what}: fingerprint unchanged");
        seen.push(now);
    }
    assert!(fingerprint_tree(&t.path().join("nope"), &l).is_err());
}
