//! Fixtures: OSV records written by hand in the published schema's shape,
//! modelled on real ones (DSA-5532-1, DEBIAN-CVE-2024-6387, GHSA-vm8q-m57g-pff3,
//! GHSA-84pr-m4jr-85g5, GHSA-2p57-rm9w-gvfp, GO-2024-2687, an Alpine secdb
//! record, a Red Hat errata record).

use std::io::Write;
use std::path::Path;

use super::*;

const DSA: &str = r#"{
  "schema_version": "1.6.0",
  "id": "DSA-5532-1",
  "modified": "2023-10-26T09:36:51Z",
  "published": "2023-10-25T00:00:00Z",
  "related": ["CVE-2023-5363"],
  "summary": "openssl - security update",
  "details": "\nSeveral vulnerabilities were discovered in OpenSSL.\n",
  "affected": [
    {
      "package": {"ecosystem": "Debian:12", "name": "openssl", "purl": "pkg:deb/debian/openssl?arch=source"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}],
      "versions": ["3.0.9-1", "3.0.11-1~deb12u1"],
      "ecosystem_specific": {"urgency": "low"},
      "database_specific": {"source": "https://storage.googleapis.com/debian-osv/dsa-osv/DSA-5532-1.json"}
    }
  ],
  "references": [{"type": "ADVISORY", "url": "https://www.debian.org/security/2023/dsa-5532"}]
}"#;

const REGRESSHION: &str = r#"{
  "id": "DEBIAN-CVE-2024-6387",
  "modified": "2024-07-10T00:00:00Z",
  "details": "A security regression (CVE-2006-5051) was discovered in OpenSSH's server (sshd).\nMore text.",
  "upstream": ["CVE-2024-6387"],
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
  "affected": [
    {
      "package": {"ecosystem": "Debian:12", "name": "openssh"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:9.2p1-2+deb12u3"}]}]
    },
    {
      "package": {"ecosystem": "Debian:13", "name": "openssh"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:9.7p1-7"}]}],
      "versions": ["1:9.6p1-3", "1:9.7p1-6"],
      "ecosystem_specific": {"urgency": "not yet assigned"},
      "database_specific": {"source": "https://storage.googleapis.com/debian-osv/debian-cve-osv/DEBIAN-CVE-2024-6387.json"}
    }
  ]
}"#;

const DJANGO: &str = r#"{
  "schema_version": "1.4.0",
  "id": "GHSA-vm8q-m57g-pff3",
  "modified": "2024-03-05T00:00:00Z",
  "aliases": ["CVE-2024-27351"],
  "summary": "Django Regular expression denial-of-service in django.utils.text.Truncator.words()",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
  "affected": [
    {
      "package": {"ecosystem": "PyPI", "name": "django", "purl": "pkg:pypi/django"},
      "ranges": [
        {"type": "ECOSYSTEM", "events": [{"introduced": "3.2"}, {"fixed": "3.2.25"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "4.0"}, {"fixed": "4.2.11"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "5.0a1"}, {"fixed": "5.0.3"}]}
      ],
      "versions": ["3.2", "3.2.24", "4.2.10", "5.0.2"],
      "database_specific": {"source": "https://github.com/github/advisory-database"}
    },
    {
      "package": {"ecosystem": "PyPI", "name": "django"},
      "ranges": [{"type": "GIT", "repo": "https://github.com/django/django", "events": [{"introduced": "0"}, {"fixed": "3a2e9d7bc3e02bc35f94e9c3c5d5d2d6ef6e2d3a"}]}],
      "versions": ["1.11.29"]
    }
  ],
  "database_specific": {"severity": "MODERATE", "github_reviewed": true}
}"#;

const FLASK_CORS: &str = r#"{
  "id": "GHSA-84pr-m4jr-85g5",
  "aliases": ["CVE-2024-1681"],
  "summary": "flask-cors vulnerable to log injection when the log level is set to debug",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:N"}],
  "affected": [
    {
      "package": {"ecosystem": "PyPI", "name": "flask-cors"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "4.0.1"}]}]
    }
  ],
  "database_specific": {"severity": "MODERATE"}
}"#;

const IP: &str = r#"{
  "id": "GHSA-2p57-rm9w-gvfp",
  "aliases": ["CVE-2024-29415"],
  "summary": "ip SSRF improper categorization in isPublic",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
  "affected": [
    {
      "package": {"ecosystem": "npm", "name": "ip"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "2.0.1"}]}]
    }
  ],
  "database_specific": {"severity": "HIGH"}
}"#;

const WITHDRAWN: &str = r#"{
  "id": "GHSA-wwww-wwww-wwww",
  "withdrawn": "2024-02-01T00:00:00Z",
  "summary": "Duplicate advisory: withdrawn",
  "affected": [
    {
      "package": {"ecosystem": "npm", "name": "ip"},
      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]
    }
  ]
}"#;

const GO: &str = r#"{
  "schema_version": "1.3.1",
  "id": "GO-2024-2687",
  "aliases": ["CVE-2023-45288", "GHSA-4v7x-pqxf-cx7m"],
  "summary": "HTTP/2 CONTINUATION flood in net/http",
  "affected": [
    {
      "package": {"name": "stdlib", "ecosystem": "Go"},
      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.21.9"}, {"introduced": "1.22.0-0"}, {"fixed": "1.22.2"}]}],
      "ecosystem_specific": {"imports": [{"path": "net/http", "symbols": ["http2serverConn.processHeaders"]}]}
    },
    {
      "package": {"name": "golang.org/x/net", "ecosystem": "Go"},
      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.23.0"}]}]
    }
  ],
  "database_specific": {"url": "https://pkg.go.dev/vuln/GO-2024-2687", "review_status": "REVIEWED"}
}"#;

const ALPINE: &str = r#"{
  "id": "ALPINE-CVE-2024-0727",
  "details": "Processing a maliciously formatted PKCS12 file may lead OpenSSL to crash",
  "affected": [
    {
      "package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r5"}]}]
    }
  ]
}"#;

const UBUNTU: &str = r#"{
  "id": "USN-6622-1",
  "summary": "openssl vulnerabilities",
  "severity": [{"type": "Ubuntu", "score": "medium"}],
  "affected": [
    {
      "package": {"ecosystem": "Ubuntu:Pro:22.04:LTS", "name": "openssl"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.2-0ubuntu1.14+esm1"}]}]
    },
    {
      "package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "openssl"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.2-0ubuntu1.14"}]}]
    }
  ]
}"#;

const REDHAT: &str = r#"{
  "id": "RHSA-2024:2447",
  "summary": "openssl security and bug fix update",
  "affected": [
    {
      "package": {"ecosystem": "Red Hat:enterprise_linux:9::baseos", "name": "openssl-libs", "purl": "pkg:rpm/redhat/openssl-libs"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-27.el9"}]}]
    },
    {
      "package": {"ecosystem": "NuGet", "name": "Not.Inventoried"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
    }
  ],
  "database_specific": {"severity": "Low"}
}"#;

const LOG4SHELL: &str = r#"{
  "id": "GHSA-jfh8-c2jp-5v3q",
  "aliases": ["CVE-2021-44228"],
  "summary": "Remote code injection in Log4j",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
  "affected": [
    {
      "package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]}]
    },
    {
      "package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.3.1"}]}]
    }
  ],
  "database_specific": {"severity": "CRITICAL"}
}"#;

const H2: &str = r#"{
  "id": "RUSTSEC-2024-0003",
  "aliases": ["GHSA-8r5v-vm4m-4g25"],
  "summary": "Resource exhaustion vulnerability in h2 may lead to Denial of Service (DoS)",
  "affected": [
    {
      "package": {"ecosystem": "crates.io", "name": "h2", "purl": "pkg:cargo/h2"},
      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.0.0-0"}, {"fixed": "0.3.24"}, {"introduced": "0.4.0"}, {"fixed": "0.4.2"}]}],
      "ecosystem_specific": {"affects": {"functions": [], "os": [], "arch": []}}
    }
  ]
}"#;

#[test]
fn maven_and_crates() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "all.json", &format!("[{LOG4SHELL}, {H2}]"));
    let (db, problems) = AdvisoryDb::load(&d.path().join("all.json")).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    for (v, fixed) in [
        ("2.14.1", Some("2.15.0")),
        ("2.0-beta9", Some("2.3.1")),
        ("2.0", Some("2.3.1")),
        ("2.0-alpha1", None),
        ("2.12.4", None),
        ("2.15.0", None),
    ] {
        let p = pkg(
            Ecosystem::Maven,
            "org.apache.logging.log4j:log4j-core",
            v,
            Some("org.apache.logging.log4j"),
        );
        let m = db.matches(&p);
        assert_eq!(m.first().and_then(|m| m.fixed.as_deref()), fixed, "{v}");
        if fixed.is_some() {
            assert_eq!(m[0].score, Some(10.0));
            assert_eq!(m[0].level, Some(Level::Critical));
        }
    }
    // An artifact without its group is another package.
    assert!(db
        .matches(&pkg(Ecosystem::Maven, "log4j-core", "2.14.1", None))
        .is_empty());
    for (v, fixed) in [
        ("0.3.23", Some("0.3.24")),
        ("0.4.1", Some("0.4.2")),
        ("0.3.24", None),
        ("0.4.2", None),
    ] {
        let m = db.matches(&pkg(Ecosystem::Cargo, "h2", v, None));
        assert_eq!(m.first().and_then(|m| m.fixed.as_deref()), fixed, "{v}");
    }
}

fn pkg(eco: Ecosystem, name: &str, version: &str, purl_ns: Option<&str>) -> Package {
    Package {
        ecosystem: eco,
        name: name.into(),
        version: version.into(),
        source: None,
        source_version: None,
        licenses: vec![],
        purl: match purl_ns {
            Some(ns) => format!("pkg:{eco}/{ns}/{name}@{version}"),
            None => format!("pkg:{eco}/{name}@{version}"),
        },
        layer: Some(0),
        found_in: "x".into(),
    }
}

fn deb(name: &str, version: &str, source: Option<&str>, ns: &str) -> Package {
    let mut p = pkg(Ecosystem::Deb, name, version, Some(ns));
    p.source = source.map(str::to_string);
    p
}

fn os(id: &str, version_id: &str) -> OsRelease {
    OsRelease {
        id: id.into(),
        version_id: Some(version_id.into()),
    }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

/// Every good fixture in a directory tree, as a mirror lays them out.
fn db() -> (AdvisoryDb, Vec<DbProblem>) {
    let d = tempfile::tempdir().unwrap();
    for (rel, text) in [
        ("Debian/DSA-5532-1.json", DSA),
        ("Debian/DEBIAN-CVE-2024-6387.json", REGRESSHION),
        ("PyPI/GHSA-vm8q-m57g-pff3.json", DJANGO),
        ("PyPI/GHSA-84pr-m4jr-85g5.json", FLASK_CORS),
        ("npm/GHSA-2p57-rm9w-gvfp.json", IP),
        ("npm/GHSA-wwww-wwww-wwww.json", WITHDRAWN),
        ("Go/GO-2024-2687.json", GO),
        ("Alpine/ALPINE-CVE-2024-0727.json", ALPINE),
        ("Ubuntu/USN-6622-1.json", UBUNTU),
        ("Red Hat/RHSA-2024:2447.json", REDHAT),
        ("README.md", "not an advisory"),
    ] {
        write(d.path(), rel, text);
    }
    AdvisoryDb::load(d.path()).unwrap()
}

fn ids(ms: &[Match]) -> Vec<&str> {
    ms.iter().map(|m| m.id.as_str()).collect()
}

#[test]
fn loads_a_tree_and_counts_what_it_left_out() {
    let (db, problems) = db();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(db.len(), 9);
    let s = db.stats();
    assert_eq!(s.files, 10);
    assert_eq!(s.withdrawn, 1);
    assert_eq!(s.unsupported.get("NuGet"), Some(&1));
}

#[test]
fn a_debian_binary_package_matches_through_its_source() {
    let (db, _) = db();
    let bookworm = os("debian", "12");
    // libssl3 is built from openssl: the DSA names the source.
    let libssl = deb("libssl3", "3.0.11-1~deb12u1", Some("openssl"), "debian");
    let m = db.matches_on(&libssl, Some(&bookworm));
    assert_eq!(ids(&m), ["DSA-5532-1"]);
    assert_eq!(m[0].fixed.as_deref(), Some("3.0.11-1~deb12u2"));
    assert_eq!(m[0].via, "Debian:12/openssl");
    assert_eq!(m[0].summary, "openssl - security update");
    // No CVSS: Debian's urgency, beside another database_specific object.
    assert_eq!(m[0].severity.as_deref(), Some("low"));
    assert_eq!(m[0].level, Some(Level::Low));
    assert_eq!(m[0].package.name, "libssl3");
    // Without its source, libssl3 is not openssl.
    let orphan = deb("libssl3", "3.0.11-1~deb12u1", None, "debian");
    assert!(db.matches_on(&orphan, Some(&bookworm)).is_empty());
    // The fixed version is not affected, nor a later one.
    for v in ["3.0.11-1~deb12u2", "3.0.15-1~deb12u1"] {
        let p = deb("libssl3", v, Some("openssl"), "debian");
        assert!(db.matches_on(&p, Some(&bookworm)).is_empty(), "{v}");
    }
    // Debian 11 is another release; Ubuntu another distribution.
    assert!(db.matches_on(&libssl, Some(&os("debian", "11"))).is_empty());
    let ubuntu = deb("libssl3", "3.0.2-0ubuntu1.10", Some("openssl"), "ubuntu");
    let m = db.matches_on(&ubuntu, Some(&os("ubuntu", "22.04")));
    assert_eq!(ids(&m), ["USN-6622-1"]);
    // The Pro entry comes first; the non-Pro one is the one reported.
    assert_eq!(m[0].fixed.as_deref(), Some("3.0.2-0ubuntu1.14"));
    assert_eq!(m[0].level, Some(Level::Medium));
    assert_eq!(m[0].severity.as_deref(), Some("medium"));
    // Release unknown: any release of the distribution.
    assert_eq!(ids(&db.matches(&libssl)), ["DSA-5532-1"]);
}

#[test]
fn the_source_version_is_the_one_compared() {
    let (db, _) = db();
    // A binNMU: the binary is +b1, the source (what the DSA fixes) is older.
    let mut p = deb("libssl3", "3.0.11-1~deb12u2+b1", Some("openssl"), "debian");
    p.source_version = Some("3.0.11-1~deb12u1".into());
    assert_eq!(
        ids(&db.matches_on(&p, Some(&os("debian", "12")))),
        ["DSA-5532-1"]
    );
}

#[test]
fn epochs_order_debian_versions() {
    let (db, _) = db();
    let bookworm = os("debian", "12");
    for (v, affected) in [
        ("1:9.2p1-2+deb12u2", true),
        ("1:9.2p1-2+deb12u3", false),
        // Epoch 0 sorts below epoch 1 whatever follows.
        ("9.9p1-1", true),
        ("2:1.0-1", false),
    ] {
        let p = deb("openssh-client", v, Some("openssh"), "debian");
        let m = db.matches_on(&p, Some(&bookworm));
        assert_eq!(!m.is_empty(), affected, "{v}");
        if affected {
            assert_eq!(m[0].fixed.as_deref(), Some("1:9.2p1-2+deb12u3"));
            assert_eq!(m[0].score, Some(8.1));
            assert_eq!(m[0].level, Some(Level::High));
            assert!(
                m[0].summary.starts_with("A security regression"),
                "{}",
                m[0].summary
            );
        }
    }
    // The Debian 13 entry applies on Debian 13 only, with its own fix.
    let trixie = deb("openssh-server", "1:9.7p1-6", Some("openssh"), "debian");
    let m = db.matches_on(&trixie, Some(&os("debian", "13")));
    assert_eq!(m[0].fixed.as_deref(), Some("1:9.7p1-7"));
    // The entry's own word has no level and no vector: the record's CVSS stands.
    assert_eq!(m[0].score, Some(8.1));
    assert_eq!(m[0].level, Some(Level::High));
    assert!(db.matches_on(&trixie, Some(&bookworm)).is_empty());
}

#[test]
fn pypi_ranges_versions_and_names() {
    let (db, _) = db();
    for (v, fixed) in [
        ("3.2.24", Some(Some("3.2.25"))),
        ("4.1.0", Some(Some("4.2.11"))),
        ("4.2.10", Some(Some("4.2.11"))),
        ("5.0b1", Some(Some("5.0.3"))),
        ("5.0.2", Some(Some("5.0.3"))),
        // Listed only in the entry with a GIT range: matched by the list.
        ("1.11.29", Some(None)),
        ("3.1.14", None),
        ("3.2.25", None),
        ("4.2.11", None),
        ("5.0.3", None),
        ("1.11.28", None),
    ] {
        // Installed metadata spells the name as the project does.
        let p = pkg(Ecosystem::Pypi, "Django", v, None);
        let m = db.matches(&p);
        match fixed {
            None => assert!(m.is_empty(), "{v}: {m:?}"),
            Some(f) => {
                assert_eq!(ids(&m), ["GHSA-vm8q-m57g-pff3"], "{v}");
                assert_eq!(m[0].fixed.as_deref(), f, "{v}");
                assert_eq!(m[0].aliases, ["CVE-2024-27351"]);
                assert_eq!(m[0].score, Some(7.5));
                assert_eq!(m[0].level, Some(Level::High));
            }
        }
    }
    // PEP 503: Flask_Cors, flask.cors and FLASK-CORS are flask-cors.
    for name in ["Flask_Cors", "flask.cors", "FLASK--cors"] {
        let m = db.matches(&pkg(Ecosystem::Pypi, name, "4.0.0", None));
        assert_eq!(ids(&m), ["GHSA-84pr-m4jr-85g5"], "{name}");
        assert_eq!(m[0].score, Some(5.3));
        assert_eq!(m[0].level, Some(Level::Medium));
    }
    assert!(db
        .matches(&pkg(Ecosystem::Pypi, "flaskcors", "4.0.0", None))
        .is_empty());
}

#[test]
fn npm_last_affected_and_withdrawn() {
    let (db, _) = db();
    let m = db.matches(&pkg(Ecosystem::Npm, "ip", "2.0.1", None));
    // The withdrawn advisory (every version) is not reported.
    assert_eq!(ids(&m), ["GHSA-2p57-rm9w-gvfp"]);
    assert_eq!(m[0].fixed, None);
    assert_eq!(m[0].score, Some(9.8));
    assert_eq!(m[0].level, Some(Level::Critical));
    assert_eq!(
        m[0].severity.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    );
    assert_eq!(
        db.matches(&pkg(Ecosystem::Npm, "ip", "1.1.5", None)).len(),
        1
    );
    assert!(db
        .matches(&pkg(Ecosystem::Npm, "ip", "2.0.2", None))
        .is_empty());
    // npm names are not Python's: no normalisation.
    assert!(db
        .matches(&pkg(Ecosystem::Npm, "IP", "1.0.0", None))
        .is_empty());
}

#[test]
fn go_modules_with_v_prefixes_and_the_stdlib() {
    let (db, _) = db();
    let m = db.matches(&pkg(
        Ecosystem::Golang,
        "golang.org/x/net",
        "v0.22.0",
        Some("golang.org/x"),
    ));
    assert_eq!(ids(&m), ["GO-2024-2687"]);
    assert_eq!(m[0].fixed.as_deref(), Some("0.23.0"));
    assert_eq!(m[0].severity, None);
    assert!(db
        .matches(&pkg(Ecosystem::Golang, "golang.org/x/net", "v0.23.0", None))
        .is_empty());
    // A pseudo-version before the fix.
    assert_eq!(
        db.matches(&pkg(
            Ecosystem::Golang,
            "golang.org/x/net",
            "v0.0.0-20220722155237-a158d28d115b",
            None
        ))
        .len(),
        1
    );
    for (v, fixed) in [
        ("1.21.8", Some("1.21.9")),
        ("1.22.0", Some("1.22.2")),
        ("1.22.1", Some("1.22.2")),
        ("1.21.9", None),
        ("1.22.2", None),
    ] {
        let m = db.matches(&pkg(Ecosystem::Golang, "stdlib", v, None));
        assert_eq!(m.first().and_then(|m| m.fixed.as_deref()), fixed, "{v}");
    }
}

#[test]
fn alpine_origin_and_release() {
    let (db, _) = db();
    let mut p = pkg(Ecosystem::Apk, "libcrypto3", "3.1.4-r4", Some("alpine"));
    p.source = Some("openssl".into());
    let m = db.matches_on(&p, Some(&os("alpine", "3.19.1")));
    assert_eq!(ids(&m), ["ALPINE-CVE-2024-0727"]);
    assert_eq!(m[0].fixed.as_deref(), Some("3.1.4-r5"));
    assert!(m[0].summary.starts_with("Processing a maliciously"));
    assert!(db.matches_on(&p, Some(&os("alpine", "3.20.0"))).is_empty());
    p.version = "3.1.4-r5".into();
    assert!(db.matches_on(&p, Some(&os("alpine", "3.19.1"))).is_empty());
}

#[test]
fn red_hat_binary_rpms_by_major_release() {
    let (db, _) = db();
    let p = pkg(
        Ecosystem::Rpm,
        "openssl-libs",
        "1:3.0.7-25.el9_3",
        Some("rhel"),
    );
    let m = db.matches_on(&p, Some(&os("rhel", "9.3")));
    assert_eq!(ids(&m), ["RHSA-2024:2447"]);
    assert_eq!(m[0].fixed.as_deref(), Some("1:3.0.7-27.el9"));
    assert_eq!(m[0].level, Some(Level::Low));
    assert!(db.matches_on(&p, Some(&os("rhel", "8.9"))).is_empty());
    // Rocky Linux is not Red Hat.
    assert!(db.matches_on(&p, Some(&os("rocky", "9.3"))).is_empty());
}

#[test]
fn bad_files_are_reported_and_the_rest_loads() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "good.json", IP);
    write(
        d.path(),
        "malformed.json",
        r#"{"id": 'GHSA-x', "affected": []}"#,
    );
    write(d.path(), "truncated.json", &DSA[..DSA.len() / 2]);
    write(
        d.path(),
        "not-osv.json",
        r#"{"id": "X-1", "affected": "everything"}"#,
    );
    write(d.path(), "empty.json", "");
    // An array of records: one bad record does not spoil the others.
    write(
        d.path(),
        "array.json",
        &format!(r#"[{FLASK_CORS}, {{"summary": "no id"}}, {GO}]"#),
    );
    // Over the default 16 MiB cap: skipped unread.
    let mut big = String::from(DJANGO);
    big.push_str(&" ".repeat(16 << 20));
    write(d.path(), "huge.json", &big);
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("link.json")).unwrap();
    let (db, problems) = AdvisoryDb::load(d.path()).unwrap();
    assert_eq!(db.len(), 3, "{problems:?}");
    let reason = |name: &str| -> String {
        let want = format!("/{name}");
        problems
            .iter()
            .find(|p| p.path.ends_with(&want))
            .map(|p| p.reason.clone())
            .unwrap_or_else(|| panic!("no problem for {name}: {problems:?}"))
    };
    assert!(reason("malformed.json").starts_with("malformed JSON"));
    assert!(reason("truncated.json").starts_with("truncated JSON"));
    assert!(reason("empty.json").starts_with("truncated JSON"));
    assert!(reason("not-osv.json").starts_with("not an OSV record"));
    assert!(reason("array.json[1]").contains("missing field `id`"));
    assert!(reason("huge.json").contains("larger than 16777216 bytes"));
    assert!(reason("link.json").contains("symbolic link"));
    assert_eq!(problems.len(), 7, "{problems:?}");
    // Django's advisory was in the huge file.
    assert!(db
        .matches(&pkg(Ecosystem::Pypi, "django", "4.2.10", None))
        .is_empty());
    assert_eq!(
        db.matches(&pkg(Ecosystem::Golang, "stdlib", "1.22.1", None))
            .len(),
        1
    );
}

#[test]
fn a_single_file_a_zip_and_a_missing_path() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "one.json", DSA);
    let (db, problems) = AdvisoryDb::load(&d.path().join("one.json")).unwrap();
    assert!(problems.is_empty());
    assert_eq!(db.len(), 1);

    // osv.dev's all.zip: one record a member, beside a bad member and a huge one.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, text) in [
        ("DSA-5532-1.json", DSA.to_string()),
        ("GHSA-2p57-rm9w-gvfp.json", IP.to_string()),
        ("broken.json", "{\"id\": ".to_string()),
        ("huge.json", " ".repeat(5000)),
        ("modified_id.csv", "x".to_string()),
    ] {
        w.start_file(name, opts).unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    let bytes = w.finish().unwrap().into_inner();
    std::fs::write(d.path().join("all.zip"), bytes).unwrap();
    let limits = DbLimits {
        max_file: 4096,
        ..DbLimits::default()
    };
    let (db, problems) = AdvisoryDb::load_with(&d.path().join("all.zip"), &limits).unwrap();
    assert_eq!(db.len(), 2);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].path.ends_with("all.zip!/broken.json"));
    assert!(problems[1].reason.contains("larger than 4096"));
    // The directory holds both: DSA-5532-1 once.
    let (db, _) = AdvisoryDb::load_with(d.path(), &limits).unwrap();
    assert_eq!(db.len(), 2);
    assert_eq!(db.stats().duplicates, 1);
    let p = deb("libssl3", "3.0.9-1", Some("openssl"), "debian");
    assert_eq!(db.matches(&p).len(), 1);

    // A corrupt zip is a problem, not an error.
    std::fs::write(d.path().join("bad.zip"), b"PK\x03\x04garbage").unwrap();
    let (db, problems) = AdvisoryDb::load(&d.path().join("bad.zip")).unwrap();
    assert!(db.is_empty());
    assert!(
        problems[0].reason.starts_with("not a readable zip"),
        "{problems:?}"
    );

    assert!(matches!(
        AdvisoryDb::load(&d.path().join("nope")),
        Err(OsvError::Open { .. })
    ));
}

#[test]
fn cvss3_scores() {
    for (v, want) in [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Some(9.8)),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Some(10.0)),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", Some(5.9)),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", Some(7.8)),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", Some(6.1)),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", Some(6.4)),
        ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N", Some(6.8)),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", Some(1.6)),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", Some(0.0)),
        // Temporal metrics do not change the base score.
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O",
            Some(9.8),
        ),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", None),
        ("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", None),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", None),
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            None,
        ),
    ] {
        assert_eq!(cvss3_base_score(v), want, "{v}");
    }
    assert_eq!(Level::from_score(0.0), None);
    assert_eq!(Level::from_score(3.9), Some(Level::Low));
    assert_eq!(Level::from_score(4.0), Some(Level::Medium));
    assert_eq!(Level::from_score(8.9), Some(Level::High));
    assert_eq!(Level::from_score(9.0), Some(Level::Critical));
    assert_eq!(Level::from_word("MODERATE"), Some(Level::Medium));
    assert_eq!(Level::from_word("Important"), Some(Level::High));
}

#[test]
fn photon_os_by_release() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "PHSA-2024-5.0-0300.json",
        r#"{"id": "PHSA-2024-5.0-0300", "affected": [{"package": {"ecosystem": "Photon OS:5.0", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-2.ph5"}]}]}]}"#,
    );
    let (db, _) = AdvisoryDb::load(d.path()).unwrap();
    let p = pkg(
        Ecosystem::Rpm,
        "openssl-libs",
        "3.0.13-1.ph5",
        Some("photon"),
    );
    let mut q = p.clone();
    q.source = Some("openssl".into());
    // Photon's name is the rpm's: the source rpm openssl, not openssl-libs.
    assert!(db.matches_on(&p, Some(&os("photon", "5.0"))).is_empty());
    assert_eq!(db.matches_on(&q, Some(&os("photon", "5.0"))).len(), 1);
    assert!(db.matches_on(&q, Some(&os("photon", "4.0"))).is_empty());
}

#[test]
fn release_qualifiers() {
    assert!(release_matches("12", "12"));
    assert!(!release_matches("12", "11"));
    assert!(release_matches("v3.19", "3.19.1"));
    assert!(!release_matches("v3.19", "3.20.0"));
    assert!(release_matches("22.04:LTS", "22.04"));
    assert!(!release_matches("22.10", "22.04"));
    assert!(release_matches("enterprise_linux:9::appstream", "9.3"));
    assert!(!release_matches("enterprise_linux:8::appstream", "9.3"));
    assert_eq!(
        purl_namespace("pkg:deb/debian/libssl3@3.0?arch=amd64").as_deref(),
        Some("debian")
    );
    assert_eq!(purl_namespace("pkg:cargo/rand@0.7.2"), None);
}

/// 10,000 synthetic advisories × 2,000 packages: `cargo test -p
/// berth-inventory --release -- --ignored --nocapture osv_scale`.
#[test]
#[ignore]
fn osv_scale() {
    let d = tempfile::tempdir().unwrap();
    let ecos = [
        ("PyPI", Ecosystem::Pypi),
        ("npm", Ecosystem::Npm),
        ("Debian:12", Ecosystem::Deb),
    ];
    for i in 0..10_000 {
        let (e, _) = ecos[i % 3];
        let name = format!("pkg-{}", i % 2_500);
        let text = format!(
            r#"{{"id":"SYN-{i}","summary":"synthetic {i}","severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}],
            "affected":[{{"package":{{"ecosystem":"{e}","name":"{name}"}},
            "ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"1.{}.0"}},{{"introduced":"2.0.0"}},{{"fixed":"2.{}.1"}}]}}],
            "versions":["1.0.0","1.1.0","2.0.0","2.1.0","2.2.0"]}}]}}"#,
            i % 7,
            i % 5
        );
        write(d.path(), &format!("{e}/SYN-{i}.json"), &text);
    }
    let t = std::time::Instant::now();
    let (db, problems) = AdvisoryDb::load(d.path()).unwrap();
    let load = t.elapsed();
    assert!(problems.is_empty());
    assert_eq!(db.len(), 10_000);
    let pkgs: Vec<Package> = (0..2_000)
        .map(|i| {
            let (_, eco) = ecos[i % 3];
            pkg(
                eco,
                &format!("pkg-{}", i % 2_500),
                &format!("1.{}.{}", i % 9, i % 4),
                Some("debian"),
            )
        })
        .collect();
    let t = std::time::Instant::now();
    let n: usize = pkgs
        .iter()
        .map(|p| db.matches_on(p, Some(&os("debian", "12"))).len())
        .sum();
    let matching = t.elapsed();
    eprintln!("osv_scale: load 10,000 advisories {load:?}, match 2,000 packages {matching:?}, {n} matches");
    assert!(n > 0);
}

/// Loads a real mirror (a directory or an `all.zip`) and prints what it read:
/// `BERTH_OSV_DB=PATH cargo test -p berth-inventory --release --lib --
/// --ignored --nocapture osv_real_db`. Checks nothing without the variable.
#[test]
#[ignore]
fn osv_real_db() {
    let Some(path) = std::env::var_os("BERTH_OSV_DB") else {
        eprintln!("BERTH_OSV_DB unset: osv_real_db checks nothing");
        return;
    };
    let t = std::time::Instant::now();
    let (db, problems) = AdvisoryDb::load(Path::new(&path)).unwrap();
    eprintln!(
        "osv_real_db: {} advisories in {:?}, {:?}",
        db.len(),
        t.elapsed(),
        db.stats()
    );
    for p in problems.iter().take(20) {
        eprintln!("  problem: {}: {}", p.path, p.reason);
    }
    eprintln!("  {} problems", problems.len());
    for (eco, name, v) in [
        (Ecosystem::Golang, "stdlib", "1.22.1"),
        (Ecosystem::Golang, "golang.org/x/net", "v0.22.0"),
        (
            Ecosystem::Golang,
            "github.com/hashicorp/go-getter",
            "v1.6.0",
        ),
    ] {
        let m = db.matches(&pkg(eco, name, v, None));
        let ids: Vec<String> = m
            .iter()
            .map(|m| format!("{} (fixed {:?})", m.id, m.fixed))
            .collect();
        eprintln!("  {name}@{v}: {} matches: {}", m.len(), ids.join(", "));
    }
}
