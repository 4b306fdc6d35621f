//! berth-inventory owns the package inventory of a layer: which package databases a
//! directory tree (an unpacked layer or a container's upper dir) holds, the packages
//! they record, how the inventories of an image's layers compose, and how each
//! ecosystem orders its versions.
//!
//! It never touches the store, the network or anything outside the tree it is given:
//! the tree is opened once as a directory fd and walked with `openat(O_NOFOLLOW)`; a
//! symlink is recorded as nothing and never followed, `..` is never resolved, and
//! every file is opened relative to its parent's fd. It never holds a large file in
//! memory (each kind of file has a size cap, see [`scan::Limits`]).
//!
//! Invariants: a package database it cannot read is a [`Finding`], never an empty
//! result; bytes from a layer never cause a panic; [`compose`] is a pure function of
//! the layers' inventories.

mod apk;
mod compose;
mod dpkg;
mod elf;
mod golang;
mod java;
mod npm;
pub mod osv;
mod purl;
mod python;
mod rpm;
mod rustaudit;
pub mod sbom;
pub mod scan;
pub mod version;

#[cfg(test)]
mod tests;

/// A test's reference tool (dpkg, rpm, go, node's semver, cargo-auditable,
/// Python's packaging) is missing: said on stderr, and a failure where the
/// tools are required (`CI` set: `.ci/run` installs them all), so that no
/// check silently checks nothing there.
#[cfg(test)]
pub(crate) fn missing_tool(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} (CI installs it: see .ci/run)");
    }
    eprintln!("{what}");
}

use serde::{Deserialize, Serialize};

pub use compose::compose;
pub use scan::{fingerprint_tree, scan_dir, scan_tree, scan_tree_with, Limits, ScanError};
pub use version::{
    affected, compare, in_range, Constraint, ConstraintError, Event, Op, Range, RangeType,
};

/// A packaging ecosystem. The serialised names are OSV's ecosystems in purl's
/// lower-case type spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Debian packages (dpkg).
    Deb,
    /// Alpine packages (apk).
    Apk,
    /// RPM packages.
    Rpm,
    /// Python distributions.
    Pypi,
    /// npm packages.
    Npm,
    /// Go modules.
    Golang,
    /// Rust crates.
    Cargo,
    /// Maven artifacts.
    Maven,
}

impl Ecosystem {
    /// The purl type and serialised name: `deb`, `apk`, `pypi`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Rpm => "rpm",
            Ecosystem::Pypi => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Golang => "golang",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Maven => "maven",
        }
    }

    /// Parses a name as [`Ecosystem::as_str`] writes it, or as OSV spells it
    /// (`Debian`, `Alpine`, `PyPI`, `Go`, `crates.io`, `Maven`, ...).
    pub fn parse(s: &str) -> Option<Ecosystem> {
        let lower = s.to_ascii_lowercase();
        // OSV qualifies a distribution's ecosystem with its release: "Debian:12".
        let base = lower.split(':').next().unwrap_or_default();
        Some(match base {
            "deb" | "debian" | "ubuntu" => Ecosystem::Deb,
            "apk" | "alpine" | "wolfi" | "chainguard" => Ecosystem::Apk,
            "rpm" | "red hat" | "redhat" | "rocky linux" | "almalinux" | "fedora" | "mageia"
            | "photon os" => Ecosystem::Rpm,
            "pypi" | "python" => Ecosystem::Pypi,
            "npm" | "node" => Ecosystem::Npm,
            "golang" | "go" => Ecosystem::Golang,
            "cargo" | "crates.io" | "rust" => Ecosystem::Cargo,
            "maven" | "java" => Ecosystem::Maven,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod ecosystem_tests {
    use super::Ecosystem;

    #[test]
    fn names() {
        for (s, e) in [
            ("Debian:12", Ecosystem::Deb),
            ("Alpine:v3.20", Ecosystem::Apk),
            ("PyPI", Ecosystem::Pypi),
            ("Go", Ecosystem::Golang),
            ("crates.io", Ecosystem::Cargo),
            ("Maven", Ecosystem::Maven),
            ("npm", Ecosystem::Npm),
            ("Red Hat", Ecosystem::Rpm),
            ("Rocky Linux:9", Ecosystem::Rpm),
            ("Photon OS:5.0", Ecosystem::Rpm),
        ] {
            assert_eq!(Ecosystem::parse(s), Some(e), "{s}");
            assert_eq!(Ecosystem::parse(e.as_str()), Some(e));
        }
        assert_eq!(Ecosystem::parse("cobol"), None);
        assert_eq!(
            serde_json::to_string(&Ecosystem::Golang).unwrap(),
            "\"golang\""
        );
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    /// The version as the ecosystem writes it (rpm: `[EPOCH:]VERSION-RELEASE`).
    pub version: String,
    /// The source package (dpkg `Source:`, apk `o:`, rpm's source rpm name, a Go
    /// binary's main module for its dependencies), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source package's version when it differs from `version` (dpkg
    /// `Source: name (version)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Licences as recorded (SPDX expressions or free text), deduplicated.
    #[serde(default)]
    pub licenses: Vec<String>,
    /// The package URL (package-url spec).
    pub purl: String,
    /// The index of the layer that brought the package, once composed.
    #[serde(default)]
    pub layer: Option<usize>,
    /// The file it was found in, relative to the layer root, without a leading `/`
    /// (`var/lib/dpkg/status`); a member of an archive is `outer.jar!/inner.jar`.
    pub found_in: String,
}

impl Package {
    /// The path of the layer's file this package was found in (the part of
    /// `found_in` before any `!/` archive member).
    pub fn found_in_file(&self) -> &str {
        match self.found_in.find("!/") {
            Some(i) => &self.found_in[..i],
            None => &self.found_in,
        }
    }
}

/// Something the scanner could not inventory. A layer with findings is inventoried
/// only in part: the caller decides whether that is enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A file or directory that looked like package data but could not be read or
    /// parsed (corrupt, truncated, too large, permission denied).
    Unreadable { path: String, reason: String },
    /// A package database in a format berth does not read (rpm's BerkeleyDB
    /// `Packages`, NDB `Packages.db`, Go build info before Go 1.18).
    Unsupported { path: String, format: String },
}

/// The version of what [`scan_tree`] finds, recorded in each [`LayerInventory`]:
/// raised whenever a scan of the same tree would give more or other packages, so
/// that a store can tell an inventory made by an older scanner and redo it.
pub const SCANNER_VERSION: u32 = 1;

/// Which package databases a layer holds, what it removes from the layers below,
/// and the packages it records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInventory {
    /// The [`SCANNER_VERSION`] that made this inventory (0: not made by a scan).
    #[serde(default)]
    pub scanner: u32,
    /// Every package found in the layer, `layer` unset.
    pub packages: Vec<Package>,
    /// Files that are package databases or package metadata (every `found_in_file`
    /// of `packages`, plus databases that held no package or could not be read),
    /// sorted. A database here replaces the same path's in a lower layer.
    pub databases: Vec<String>,
    /// Paths the layer whites out (a `.wh.NAME` file or a 0:0 character device),
    /// sorted.
    pub whiteouts: Vec<String>,
    /// Directories the layer makes opaque (`.wh..wh..opq` or the
    /// `trusted.overlay.opaque` xattr): nothing beneath them in a lower layer shows,
    /// sorted.
    pub opaque_dirs: Vec<String>,
    /// What could not be inventoried.
    pub findings: Vec<Finding>,
    /// `ID` and `VERSION_ID` from the layer's `etc/os-release` (or
    /// `usr/lib/os-release`), when it has one: the purl namespace of its OS packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_release: Option<OsRelease>,
}

/// The distribution an OS package belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// Why a file's contents could not be read as package data; the scanner turns it
/// into a [`Finding::Unreadable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ParseError(pub(crate) String);

impl ParseError {
    pub(crate) fn new(reason: impl Into<String>) -> ParseError {
        ParseError(reason.into())
    }
}
