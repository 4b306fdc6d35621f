//! The orderings checked against the ecosystems' own tools, when the machine has
//! them: `dpkg --compare-versions`, rpm's `rpm.vercmp` (through `rpm --eval` and
//! its Lua), Python's `packaging` (pip's vendored copy) and npm's `semver`. A tool
//! that is missing is said so, and that check checks nothing.

use std::cmp::Ordering;
use std::process::Command;

use super::compare;
use crate::Ecosystem;

fn ord(n: i64) -> Ordering {
    n.cmp(&0)
}

fn pairs<'a>(vs: &'a [&'a str]) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    vs.iter()
        .flat_map(move |a| vs.iter().map(move |b| (*a, *b)))
}

fn tool_ok(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a script that prints one integer per line, one per pair, and compares.
fn check_lines(eco: Ecosystem, vs: &[&str], out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    let got: Vec<i64> = text
        .split_whitespace()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(got.len(), vs.len() * vs.len(), "{text}");
    for ((a, b), n) in pairs(vs).zip(got) {
        assert_eq!(compare(eco, a, b), ord(n), "{eco}: {a:?} vs {b:?}");
    }
}

const DEB: &[&str] = &[
    "1.0",
    "1.0-0",
    "0:1.0",
    "1:0.1",
    "1.0~rc1",
    "1.0~~",
    "1.0~",
    "1.0a",
    "1.0+",
    "1.0.1",
    "3.0.15-1~deb12u1",
    "3.0.15-1",
    "2.30-1",
    "1.002",
    "7.6p2-4",
    "1:1.2.13.dfsg-1",
    "12.2.0-14+deb12u1",
    "1.0+really0.9-1",
    "1.0-1ubuntu0.1",
    "1.0-1ubuntu1",
];

#[test]
fn dpkg_agrees() {
    if !tool_ok("dpkg", &["--version"]) {
        crate::missing_tool("no dpkg: dpkg_agrees checks nothing");
        return;
    }
    for (a, b) in pairs(DEB) {
        let lt = Command::new("dpkg")
            .args(["--compare-versions", a, "lt", b])
            .status()
            .unwrap()
            .success();
        let eq = Command::new("dpkg")
            .args(["--compare-versions", a, "eq", b])
            .status()
            .unwrap()
            .success();
        let want = if lt {
            Ordering::Less
        } else if eq {
            Ordering::Equal
        } else {
            Ordering::Greater
        };
        assert_eq!(compare(Ecosystem::Deb, a, b), want, "{a:?} vs {b:?}");
    }
}

const RPM: &[&str] = &[
    "1.0",
    "1.0-1",
    "1.0-2",
    "1:1.0-1",
    "0:1.0-1",
    "1.0~rc1",
    "1.0^git1",
    "1.0.1",
    "1.0a",
    "1.0p1",
    "3.0.7-27.el9",
    "3.0.7-28.el9",
    "1:3.0.7-27.el9",
    "5.5p10",
    "5.5p2",
    "10.0001",
    "10.1",
    "1.0~rc1^git1",
    "1.0aa",
];

#[test]
fn rpm_agrees() {
    if !tool_ok("rpm", &["--version"]) {
        crate::missing_tool("no rpm: rpm_agrees checks nothing");
        return;
    }
    let mut lua = String::from("%{lua:\n");
    for (a, b) in pairs(RPM) {
        lua.push_str(&format!("print(rpm.vercmp(\"{a}\", \"{b}\") .. \" \")\n"));
    }
    lua.push('}');
    let out = Command::new("rpm").args(["--eval", &lua]).output().unwrap();
    check_lines(Ecosystem::Rpm, RPM, &out.stdout);
}

const PEP440: &[&str] = &[
    "1.0.dev456",
    "1.0a1",
    "1.0a2.dev456",
    "1.0a12",
    "1.0b2.post345.dev456",
    "1.0b2.post345",
    "1.0c1",
    "1.0rc2",
    "1.0",
    "1.0.post456.dev34",
    "1.0.post456",
    "1.1.dev1",
    "1.2+123abc",
    "1.2+abc",
    "1.2+1234.abc",
    "1!1.0",
    "1.0.0",
    "v1.0",
    "1.0-1",
    "1.0.post",
    "1.0-rc.1",
    "1.0preview2",
    "1.0+ubuntu-1",
    "1.0+ubuntu.1.0",
    "2013.10",
];

#[test]
fn python_packaging_agrees() {
    let script = "import sys\ntry:\n    from packaging.version import Version as V\nexcept ImportError:\n    from pip._vendor.packaging.version import Version as V\nvs = sys.argv[1:]\nfor a in vs:\n    for b in vs:\n        print((V(a) > V(b)) - (V(a) < V(b)))\n";
    let Ok(out) = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(PEP440)
        .output()
    else {
        crate::missing_tool("no python3: python_packaging_agrees checks nothing");
        return;
    };
    if !out.status.success() {
        crate::missing_tool(
            "no packaging (python3-packaging or pip's): python_packaging_agrees checks nothing",
        );
        return;
    }
    check_lines(Ecosystem::Pypi, PEP440, &out.stdout);
}

const SEMVER: &[&str] = &[
    "0.0.1",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.0+build.1",
    "1.0.1",
    "2.0.0",
    "10.0.0",
    "1.0.0-0",
    "1.0.0-10",
    "1.0.0-9",
    "1.0.0-x-y-z.--",
    "v1.2.3",
    "1.2.3-rc.1.10",
    "1.2.3-rc.1.2",
];

#[test]
fn npm_semver_agrees() {
    let module = [
        "/usr/share/nodejs/semver",
        "/usr/lib/node_modules/npm/node_modules/semver",
        "/usr/local/lib/node_modules/npm/node_modules/semver",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(module) = module else {
        crate::missing_tool("no npm's semver: npm_semver_agrees checks nothing");
        return;
    };
    let script = format!(
        "const s = require({module:?}); const vs = process.argv.slice(1); for (const a of vs) for (const b of vs) console.log(s.compare(a, b, {{loose: true}}));"
    );
    // Debian's node-semver finds its own dependencies (lru-cache) in
    // /usr/share/nodejs, which a node not built by Debian does not search.
    let Ok(out) = Command::new("node")
        .env("NODE_PATH", "/usr/share/nodejs")
        .arg("-e")
        .arg(script)
        .args(SEMVER)
        .output()
    else {
        crate::missing_tool("no node: npm_semver_agrees checks nothing");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_lines(Ecosystem::Npm, SEMVER, &out.stdout);
}
