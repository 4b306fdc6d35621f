//! Offline vulnerability matching against advisories in the OSV format (the
//! open schema osv.dev publishes: <https://ossf.github.io/osv-schema/>).
//!
//! [`AdvisoryDb::load`] reads a database from a path: one OSV JSON file (an
//! object, or an array of objects), a zip of them (osv.dev's per-ecosystem
//! `all.zip`), or a directory walked recursively for `*.json` and `*.zip`. Each
//! file is read whole up to a size cap ([`DbLimits`]); a directory whose name
//! starts with `.` is not entered, and a symbolic link inside a directory is
//! not followed (a [`DbProblem`]). A file or record that cannot be read is a
//! [`DbProblem`], never an error for the whole database.
//! Withdrawn advisories are skipped, `GIT` ranges never match, and an
//! advisory seen twice (a mirror holding both the files and their `all.zip`) is
//! kept once.
//!
//! The database is indexed by (ecosystem, normalised name): [`AdvisoryDb::matches`]
//! looks a package up and evaluates only that package's advisories, by the
//! schema's algorithm ([`crate::version::in_range`]) and the ecosystem's own
//! version ordering.
//!
//! How a package meets an advisory's `affected[].package`:
//! - Debian, Ubuntu, Alpine: by the *source* package (`Source:`, apk `o:`),
//!   at the source version, as those databases key their advisories; a
//!   release-qualified ecosystem (`Debian:12`, `Ubuntu:22.04:LTS`,
//!   `Alpine:v3.19`) only holds packages of that release when the release is
//!   known (an [`OsRelease`]), and the distribution (the purl namespace, or the
//!   release's `ID`) must be the ecosystem's (`Ubuntu` advisories never match a
//!   Debian package).
//! - Red Hat, Rocky Linux, AlmaLinux, Mageia, Photon OS: by the binary rpm name
//!   or the source rpm name, the release by its `VERSION_ID` or major version
//!   (`Red Hat:enterprise_linux:9::appstream`, `Photon OS:5.0`). openSUSE, SUSE
//!   and openEuler name releases in ways not mapped yet: their entries are
//!   counted in [`DbStats::unsupported`], never matched.
//! - PyPI by the PEP 503 normalised name, crates.io case- and `-`/`_`-insensitively,
//!   npm, Go (module path, `stdlib`) and Maven (`group:artifact`) exactly.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::version::{compare, in_range, Range};
use crate::{Ecosystem, OsRelease, Package};

/// Why a database could not be loaded at all. A file or record within it that
/// cannot be read is a [`DbProblem`] instead.
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    #[error("advisory database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("advisory database {0}: neither a file nor a directory")]
    NotFileOrDir(String),
}

/// A file, zip member or record of the database that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbProblem {
    /// The file (`dir/GHSA-x.json`), a zip member (`all.zip!/GHSA-x.json`), or
    /// a record of an array (`all.json[3]`).
    pub path: String,
    pub reason: String,
}

/// Bounds on what [`AdvisoryDb::load_with`] reads.
#[derive(Debug, Clone, Copy)]
pub struct DbLimits {
    /// The largest JSON file or zip member read, in bytes.
    pub max_file: u64,
    /// How deep a directory is walked.
    pub max_depth: usize,
    /// The most members of one zip read.
    pub max_zip_entries: usize,
}

impl Default for DbLimits {
    fn default() -> DbLimits {
        DbLimits {
            max_file: 16 << 20,
            max_depth: 32,
            max_zip_entries: 2_000_000,
        }
    }
}

/// A CVSS-style severity level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    /// CVSS v3's qualitative rating of a base score (0.0 is "None": no level).
    pub fn from_score(score: f64) -> Option<Level> {
        Some(match score {
            s if s >= 9.0 => Level::Critical,
            s if s >= 7.0 => Level::High,
            s if s >= 4.0 => Level::Medium,
            s if s > 0.0 => Level::Low,
            _ => return None,
        })
    }

    /// A database's word for a severity: GHSA's `MODERATE`, Red Hat's
    /// `Important`, Ubuntu's `negligible`, Debian's `unimportant`, ...
    pub fn from_word(w: &str) -> Option<Level> {
        Some(match w.trim().to_ascii_lowercase().as_str() {
            "critical" => Level::Critical,
            "high" | "important" => Level::High,
            "medium" | "moderate" => Level::Medium,
            "low" | "negligible" | "unimportant" | "minor" => Level::Low,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "LOW",
            Level::Medium => "MEDIUM",
            Level::High => "HIGH",
            Level::Critical => "CRITICAL",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One advisory that holds one package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The advisory's id: `GHSA-…`, `CVE-…`, `DSA-…`, `GO-…`.
    pub id: String,
    pub aliases: Vec<String>,
    /// The advisory's summary, or the first line of its details.
    pub summary: String,
    /// The severity as the advisory gives it: a CVSS vector when it has one
    /// (v3 preferred, then v4, then v2), else the database's word
    /// (`database_specific.severity`, Ubuntu's priority).
    pub severity: Option<String>,
    /// The level: from the CVSS v3 base score when there is one, else from the
    /// database's word.
    pub level: Option<Level>,
    /// The CVSS v3 base score, computed from the vector.
    pub score: Option<f64>,
    /// The version that fixes it (the least `fixed` event above the package's
    /// version in a range that holds it); none when unfixed or only a
    /// `last_affected` is known.
    pub fixed: Option<String>,
    /// The `affected[].package` that matched: `Debian:12/openssl`.
    pub via: String,
    /// The package matched (for a Debian binary package, the binary; `via`
    /// names its source).
    pub package: Package,
}

/// Counts of what [`AdvisoryDb::load`] read and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbStats {
    /// Files and zip members read.
    pub files: usize,
    /// Advisories kept.
    pub advisories: usize,
    /// Advisories skipped as withdrawn.
    pub withdrawn: usize,
    /// Advisories skipped as already loaded (same id).
    pub duplicates: usize,
    /// `affected[]` entries of ecosystems berth does not inventory, by
    /// ecosystem (`NuGet`, `RubyGems`, `openSUSE:Leap 15.5`, ...).
    pub unsupported: BTreeMap<String, usize>,
}

struct Advisory {
    id: String,
    aliases: Vec<String>,
    summary: String,
    severity: Sev,
}

#[derive(Clone, Default)]
struct Sev {
    text: Option<String>,
    level: Option<Level>,
    score: Option<f64>,
    /// `text` is a CVSS vector.
    cvss: bool,
}

struct Entry {
    adv: usize,
    ecosystem: Ecosystem,
    /// The os-release `ID`s the ecosystem means (`debian`), for OS packages.
    distros: &'static [&'static str],
    /// The release qualifier (`12`, `22.04:LTS`, `v3.19`).
    release: Option<String>,
    /// `Ubuntu:Pro:…`: kept only when no other entry of the advisory matches.
    pro: bool,
    via: String,
    ranges: Vec<Range>,
    versions: Vec<String>,
    severity: Option<Sev>,
}

/// An OSV advisory database, indexed by (ecosystem, normalised name).
#[derive(Default)]
pub struct AdvisoryDb {
    advisories: Vec<Advisory>,
    entries: Vec<Entry>,
    index: HashMap<(Ecosystem, String), Vec<usize>>,
    ids: HashMap<String, usize>,
    stats: DbStats,
}

impl std::fmt::Debug for AdvisoryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvisoryDb")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

// The record as the schema writes it; what berth does not use is not read.
// `null` is accepted wherever a field may be absent.
#[derive(Deserialize)]
struct RawRecord {
    id: String,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    affected: Option<Vec<RawAffected>>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    ranges: Option<Vec<Range>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
    #[serde(default)]
    ecosystem_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

impl AdvisoryDb {
    /// Loads the database at `path` with [`DbLimits::default`].
    pub fn load(path: &Path) -> Result<(AdvisoryDb, Vec<DbProblem>), OsvError> {
        AdvisoryDb::load_with(path, &DbLimits::default())
    }

    /// Loads the database at `path`: a JSON file, a zip, or a directory (see
    /// the module's documentation). Only a path that cannot be opened at all
    /// is an error; what could not be read within it is a [`DbProblem`].
    pub fn load_with(
        path: &Path,
        limits: &DbLimits,
    ) -> Result<(AdvisoryDb, Vec<DbProblem>), OsvError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| OsvError::Open {
            path: shown.clone(),
            source,
        })?;
        let mut l = Loader {
            db: AdvisoryDb::default(),
            problems: Vec::new(),
            limits: *limits,
        };
        if meta.is_dir() {
            // Opened now so that an unreadable top directory is an error.
            std::fs::read_dir(path).map_err(|source| OsvError::Open {
                path: shown.clone(),
                source,
            })?;
            l.walk(path, &shown, 0);
        } else if meta.is_file() {
            File::open(path).map_err(|source| OsvError::Open {
                path: shown.clone(),
                source,
            })?;
            l.file(path, &shown);
        } else {
            return Err(OsvError::NotFileOrDir(shown));
        }
        l.db.stats.advisories = l.db.advisories.len();
        Ok((l.db, l.problems))
    }

    /// What was loaded and left out.
    pub fn stats(&self) -> &DbStats {
        &self.stats
    }

    /// The number of advisories loaded.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The advisories that hold `pkg`, the distribution release taken from
    /// nothing but the package itself: a release-qualified OS ecosystem
    /// (`Debian:12`) is then held to match whatever the release. Prefer
    /// [`AdvisoryDb::matches_on`] with the image's [`OsRelease`].
    pub fn matches(&self, pkg: &Package) -> Vec<Match> {
        self.matches_on(pkg, None)
    }

    /// The advisories that hold `pkg`, a package of the distribution `os`
    /// (the inventory's `os_release`), sorted by id. Each advisory is reported
    /// once per package.
    pub fn matches_on(&self, pkg: &Package, os: Option<&OsRelease>) -> Vec<Match> {
        let distro = match os {
            Some(o) => Some(o.id.to_ascii_lowercase()),
            None => purl_namespace(&pkg.purl),
        };
        let release = os.and_then(|o| o.version_id.as_deref());
        let mut found: Vec<(Match, bool)> = Vec::new();
        for (name, version) in lookup_keys(pkg) {
            let key = (pkg.ecosystem, normalize(pkg.ecosystem, name));
            let Some(list) = self.index.get(&key) else {
                continue;
            };
            for &ei in list {
                let Some(e) = self.entries.get(ei) else {
                    continue;
                };
                if !e.distros.is_empty() {
                    let same = distro.as_deref().is_some_and(|d| e.distros.contains(&d));
                    if !same {
                        continue;
                    }
                    if let (Some(q), Some(r)) = (&e.release, release) {
                        if !release_matches(q, r) {
                            continue;
                        }
                    }
                }
                let Some(fixed) = e.holds(version) else {
                    continue;
                };
                let Some(a) = self.advisories.get(e.adv) else {
                    continue;
                };
                if let Some((m, pro)) = found.iter_mut().find(|(m, _)| m.id == a.id) {
                    // One report an advisory; an Ubuntu Pro entry gives way.
                    if *pro && !e.pro {
                        *pro = false;
                        m.fixed = fixed;
                        m.via.clone_from(&e.via);
                    }
                    continue;
                }
                let sev = e.severity.as_ref().unwrap_or(&a.severity);
                found.push((
                    Match {
                        id: a.id.clone(),
                        aliases: a.aliases.clone(),
                        summary: a.summary.clone(),
                        severity: sev.text.clone(),
                        level: sev.level,
                        score: sev.score,
                        fixed,
                        via: e.via.clone(),
                        package: pkg.clone(),
                    },
                    e.pro,
                ));
            }
        }
        let mut out: Vec<Match> = found.into_iter().map(|(m, _)| m).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

impl Entry {
    /// Whether the entry holds `version`: `None` if not, else the fixing
    /// version if known.
    fn holds(&self, version: &str) -> Option<Option<String>> {
        let eco = self.ecosystem;
        let mut hit = false;
        let mut fixed: Option<&str> = None;
        for r in &self.ranges {
            if in_range(eco, version, r) {
                hit = true;
                if let Some(f) = r.fixed_after(eco, version) {
                    if fixed.is_none_or(|g| compare(eco, f, g).is_lt()) {
                        fixed = Some(f);
                    }
                }
            }
        }
        if !hit {
            hit = self.versions.iter().any(|v| v == version)
                || self
                    .versions
                    .iter()
                    .any(|v| compare(eco, v, version).is_eq());
            if !hit {
                return None;
            }
            // Listed, not in a range: the least fix above it, from any range.
            for r in &self.ranges {
                if let Some(f) = r.fixed_after(eco, version) {
                    if fixed.is_none_or(|g| compare(eco, f, g).is_lt()) {
                        fixed = Some(f);
                    }
                }
            }
        }
        Some(fixed.map(str::to_string))
    }
}

/// The (name, version) pairs under which a package's advisories are filed.
fn lookup_keys(pkg: &Package) -> Vec<(&str, &str)> {
    let name = pkg.name.as_str();
    let version = pkg.version.as_str();
    match pkg.ecosystem {
        // Debian and Ubuntu file advisories under the source package, at the
        // source version (a binNMU `+b1` binary, or a binary versioned apart).
        Ecosystem::Deb => vec![(
            pkg.source.as_deref().unwrap_or(name),
            pkg.source_version.as_deref().unwrap_or(version),
        )],
        // Alpine's secdb under the origin package; subpackages share its version.
        Ecosystem::Apk => vec![(pkg.source.as_deref().unwrap_or(name), version)],
        // Red Hat lists binary rpms, Rocky and Alma source ones.
        Ecosystem::Rpm => {
            let mut v = vec![(name, version)];
            if let Some(s) = pkg.source.as_deref().filter(|s| *s != name) {
                v.push((s, version));
            }
            v
        }
        _ => vec![(name, version)],
    }
}

/// The name as the index keys it.
fn normalize(eco: Ecosystem, name: &str) -> String {
    match eco {
        Ecosystem::Pypi => crate::python::normalize(name),
        Ecosystem::Cargo => name.to_ascii_lowercase().replace('_', "-"),
        _ => name.to_string(),
    }
}

/// The purl's namespace (`debian` of `pkg:deb/debian/openssl@…`), lower-cased.
fn purl_namespace(purl: &str) -> Option<String> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split(['@', '?', '#']).next()?;
    let mut segs = rest.split('/');
    segs.next()?;
    let ns = segs.next()?;
    // A name alone (`pkg:cargo/rand`) has no namespace.
    segs.next()?;
    Some(ns.to_ascii_lowercase())
}

/// The os-release `ID`s an OSV distribution ecosystem means; empty for a
/// language ecosystem (no distribution to check).
fn distros_of(base: &str) -> &'static [&'static str] {
    match base {
        "debian" => &["debian"],
        "ubuntu" => &["ubuntu"],
        "alpine" => &["alpine"],
        "wolfi" => &["wolfi"],
        "chainguard" => &["chainguard"],
        // `redhat` is the purl namespace of an rpm found without os-release.
        "red hat" => &["rhel", "redhat"],
        "rocky linux" => &["rocky"],
        "almalinux" => &["almalinux"],
        "fedora" => &["fedora"],
        "mageia" => &["mageia"],
        "photon os" => &["photon"],
        _ => &[],
    }
}

/// Whether an ecosystem's release qualifier (`12`, `22.04:LTS`, `v3.19`,
/// `enterprise_linux:9::appstream`) names the release whose os-release
/// `VERSION_ID` is `version_id` (`12`, `22.04`, `3.19.1`, `9.3`).
fn release_matches(qualifier: &str, version_id: &str) -> bool {
    let mut nums = version_id.split('.');
    let major = nums.next().unwrap_or_default();
    let minor = nums.next();
    let alpine = minor.map(|m| format!("v{major}.{m}"));
    qualifier
        .split(':')
        .filter(|p| !p.is_empty())
        .any(|p| p == version_id || p == major || alpine.as_deref() == Some(p))
}

struct Loader {
    db: AdvisoryDb,
    problems: Vec<DbProblem>,
    limits: DbLimits,
}

impl Loader {
    fn problem(&mut self, path: &str, reason: impl Into<String>) {
        self.problems.push(DbProblem {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    fn walk(&mut self, dir: &Path, shown: &str, depth: usize) {
        if depth > self.limits.max_depth {
            self.problem(
                shown,
                format!("more than {} directories deep", self.limits.max_depth),
            );
            return;
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => return self.problem(shown, e.to_string()),
        };
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        for ent in rd {
            match ent {
                Ok(ent) => names.push(ent.file_name()),
                Err(e) => self.problem(shown, e.to_string()),
            }
        }
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let s = format!("{shown}/{}", name.to_string_lossy());
            let meta = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) => {
                    self.problem(&s, e.to_string());
                    continue;
                }
            };
            let lower = name.to_string_lossy().to_ascii_lowercase();
            if meta.is_dir() {
                if !lower.starts_with('.') {
                    self.walk(&p, &s, depth + 1);
                }
            } else if lower.ends_with(".json") || lower.ends_with(".zip") {
                if meta.file_type().is_symlink() {
                    self.problem(&s, "a symbolic link: not followed");
                } else if meta.is_file() {
                    self.file(&p, &s);
                }
            }
        }
    }

    /// A JSON file, or a zip when it starts as one.
    fn file(&mut self, path: &Path, shown: &str) {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.problem(shown, e.to_string()),
        };
        let mut magic = [0u8; 4];
        let is_zip = f.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04";
        drop(f);
        if is_zip {
            return self.zip(path, shown);
        }
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.problem(shown, e.to_string()),
        };
        // Said before reading it; read_capped still bounds a growing file.
        let cap = self.limits.max_file;
        if f.metadata().is_ok_and(|m| m.len() > cap) {
            return self.problem(shown, format!("larger than {cap} bytes: skipped"));
        }
        if let Some(b) = self.read_capped(f, shown) {
            self.db.stats.files += 1;
            self.json(&b, shown);
        }
    }

    fn zip(&mut self, path: &Path, shown: &str) {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.problem(shown, e.to_string()),
        };
        let mut z = match zip::ZipArchive::new(std::io::BufReader::new(f)) {
            Ok(z) => z,
            Err(e) => return self.problem(shown, format!("not a readable zip: {e}")),
        };
        if z.len() > self.limits.max_zip_entries {
            return self.problem(
                shown,
                format!(
                    "{} members, more than {}",
                    z.len(),
                    self.limits.max_zip_entries
                ),
            );
        }
        for i in 0..z.len() {
            let entry = match z.by_index(i) {
                Ok(e) => e,
                Err(e) => {
                    self.problem(&format!("{shown}!/#{i}"), format!("zip: {e}"));
                    continue;
                }
            };
            if entry.is_dir() || !entry.name().to_ascii_lowercase().ends_with(".json") {
                continue;
            }
            let s = format!("{shown}!/{}", entry.name());
            if let Some(b) = self.read_capped(entry, &s) {
                self.db.stats.files += 1;
                self.json(&b, &s);
            }
        }
    }

    /// Reads at most the cap, whatever the file or member claims its size is.
    fn read_capped(&mut self, r: impl Read, shown: &str) -> Option<Vec<u8>> {
        let cap = self.limits.max_file;
        let mut b = Vec::new();
        match r.take(cap.saturating_add(1)).read_to_end(&mut b) {
            Ok(n) if u64::try_from(n).unwrap_or(u64::MAX) > cap => {
                self.problem(shown, format!("larger than {cap} bytes: skipped"));
                None
            }
            Ok(_) => Some(b),
            Err(e) => {
                self.problem(shown, e.to_string());
                None
            }
        }
    }

    fn json(&mut self, b: &[u8], shown: &str) {
        let first = b.iter().find(|c| !c.is_ascii_whitespace()).copied();
        if first == Some(b'[') {
            let records: Vec<serde_json::Value> = match serde_json::from_slice(b) {
                Ok(v) => v,
                Err(e) => return self.problem(shown, json_reason(&e)),
            };
            for (i, v) in records.into_iter().enumerate() {
                match serde_json::from_value::<RawRecord>(v) {
                    Ok(r) => self.record(r),
                    Err(e) => {
                        self.problem(&format!("{shown}[{i}]"), format!("not an OSV record: {e}"))
                    }
                }
            }
        } else {
            match serde_json::from_slice::<RawRecord>(b) {
                Ok(r) => self.record(r),
                Err(e) => self.problem(shown, json_reason(&e)),
            }
        }
    }

    fn record(&mut self, r: RawRecord) {
        if r.withdrawn.as_deref().is_some_and(|w| !w.is_empty()) {
            self.db.stats.withdrawn += 1;
            return;
        }
        if self.db.ids.contains_key(&r.id) {
            self.db.stats.duplicates += 1;
            return;
        }
        let adv = self.db.advisories.len();
        let summary = match r
            .summary
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => s.to_string(),
            None => first_line(r.details.as_deref().unwrap_or_default()),
        };
        let top = severity_of(r.severity.as_deref(), &[r.database_specific.as_ref()]);
        for a in r.affected.unwrap_or_default() {
            let Some(p) = a.package else {
                continue;
            };
            let Some(eco) = Ecosystem::parse(&p.ecosystem) else {
                *self
                    .db
                    .stats
                    .unsupported
                    .entry(p.ecosystem.clone())
                    .or_default() += 1;
                continue;
            };
            let (base, release) = match p.ecosystem.split_once(':') {
                Some((b, q)) => (b.to_ascii_lowercase(), Some(q.to_string())),
                None => (p.ecosystem.to_ascii_lowercase(), None),
            };
            let distros = distros_of(&base);
            let pro = base == "ubuntu" && release.as_deref().is_some_and(|q| q.starts_with("Pro:"));
            let own = severity_of(
                a.severity.as_deref(),
                &[a.database_specific.as_ref(), a.ecosystem_specific.as_ref()],
            );
            // The entry's own vector wins; else the record's severity, given
            // the entry's level when it has none; else the entry's word.
            let severity = if own.cvss {
                Some(own)
            } else if top.text.is_some() {
                (top.level.is_none() && own.level.is_some()).then(|| Sev {
                    level: own.level,
                    ..top.clone()
                })
            } else {
                own.text.is_some().then_some(own)
            };
            let entry = Entry {
                adv,
                ecosystem: eco,
                distros,
                release: if distros.is_empty() { None } else { release },
                pro,
                via: format!("{}/{}", p.ecosystem, p.name),
                ranges: a.ranges.unwrap_or_default(),
                versions: a.versions.unwrap_or_default(),
                severity,
            };
            let ei = self.db.entries.len();
            self.db.entries.push(entry);
            self.db
                .index
                .entry((eco, normalize(eco, &p.name)))
                .or_default()
                .push(ei);
        }
        self.db.ids.insert(r.id.clone(), adv);
        self.db.advisories.push(Advisory {
            id: r.id,
            aliases: r.aliases.unwrap_or_default(),
            summary,
            severity: top,
        });
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => format!("truncated JSON: {e}"),
        Category::Syntax => format!("malformed JSON: {e}"),
        Category::Data => format!("not an OSV record: {e}"),
        Category::Io => e.to_string(),
    }
}

fn first_line(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// The severity of a record or an affected entry: a CVSS vector (v3, else v4,
/// else v2) and its v3 base score, or the database's word (a `severity` in a
/// `database_specific` or `ecosystem_specific` object, Debian's `urgency`,
/// Ubuntu's severity type).
fn severity_of(list: Option<&[RawSeverity]>, specific: &[Option<&serde_json::Value>]) -> Sev {
    let list = list.unwrap_or_default();
    let find = |t: &str| list.iter().find(|s| s.kind.eq_ignore_ascii_case(t));
    let word = ["severity", "urgency"]
        .iter()
        .find_map(|k| {
            specific
                .iter()
                .flatten()
                .find_map(|d| d.get(k).and_then(serde_json::Value::as_str))
        })
        .map(str::to_string)
        .or_else(|| find("Ubuntu").map(|s| s.score.clone()));
    let word_level = word.as_deref().and_then(Level::from_word);
    if let Some(v3) = find("CVSS_V3") {
        let score = cvss3_base_score(&v3.score);
        return Sev {
            text: Some(v3.score.clone()),
            level: score.and_then(Level::from_score).or(word_level),
            score,
            cvss: true,
        };
    }
    if let Some(v) = find("CVSS_V4").or_else(|| find("CVSS_V2")) {
        return Sev {
            text: Some(v.score.clone()),
            level: word_level,
            score: None,
            cvss: true,
        };
    }
    Sev {
        text: word,
        level: word_level,
        score: None,
        cvss: false,
    }
}

/// The base score of a CVSS v3.0 or v3.1 vector
/// (`CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H` → 9.8), by the v3.1
/// specification's formulas and its `Roundup`; `None` if a base metric is
/// missing or unknown. Temporal and environmental metrics are ignored.
pub fn cvss3_base_score(vector: &str) -> Option<f64> {
    let mut parts = vector.trim().split('/');
    if !matches!(parts.next(), Some("CVSS:3.0" | "CVSS:3.1")) {
        return None;
    }
    let mut m: [Option<&str>; 8] = [None; 8];
    for p in parts {
        let (k, v) = p.split_once(':')?;
        let i = match k {
            "AV" => 0,
            "AC" => 1,
            "PR" => 2,
            "UI" => 3,
            "S" => 4,
            "C" => 5,
            "I" => 6,
            "A" => 7,
            _ => continue,
        };
        m[i] = Some(v);
    }
    let changed = match m[4]? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let av = match m[0]? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match m[1]? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (m[2]?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match m[3]? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |x: Option<&str>| -> Option<f64> {
        match x? {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        }
    };
    let (c, i, a) = (cia(m[5])?, cia(m[6])?, cia(m[7])?);
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    if impact <= 0.0 {
        return Some(0.0);
    }
    let exploitability = 8.22 * av * ac * pr * ui;
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Some(roundup(raw))
}

/// CVSS v3.1's `Roundup`: the least one-decimal number at or above `x`,
/// computed on integers so that 4.000000001 does not become 4.1.
fn roundup(x: f64) -> f64 {
    // x is within 0..=10: the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let i = (x * 100_000.0).round() as i64;
    if i % 10_000 == 0 {
        i as f64 / 100_000.0
    } else {
        ((i / 10_000) + 1) as f64 / 10.0
    }
}

#[cfg(test)]
#[path = "osv_tests.rs"]
mod tests;
