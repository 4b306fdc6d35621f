//! Version ordering per ecosystem, constraints such as `version<3.0.15`, and OSV's
//! affected ranges.

mod apk;
mod deb;
mod maven;
mod pep440;
mod rpm;
mod semver;

#[cfg(test)]
mod oracle_tests;

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::Ecosystem;

/// Orders two versions by `eco`'s rules. Every ordering is total, whatever the
/// input, so sorting by it is sound: a version the ecosystem's grammar does not
/// accept (PEP 440, semver) sorts after every version it accepts, and such
/// versions among themselves in Maven-style order.
pub fn compare(eco: Ecosystem, a: &str, b: &str) -> Ordering {
    match eco {
        Ecosystem::Deb => deb::compare(a, b),
        Ecosystem::Apk => apk::compare(a, b),
        Ecosystem::Rpm => rpm::compare(a, b),
        Ecosystem::Pypi => valid_first(pep440::parse(a), pep440::parse(b), a, b),
        Ecosystem::Npm | Ecosystem::Cargo | Ecosystem::Golang => compare_semver(a, b),
        Ecosystem::Maven => maven::compare(a, b),
    }
}

fn valid_first<K: Ord>(ka: Option<K>, kb: Option<K>, a: &str, b: &str) -> Ordering {
    match (ka, kb) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => maven::compare(a, b),
    }
}

/// Semver ordering whatever the ecosystem (OSV's `SEMVER` ranges).
fn compare_semver(a: &str, b: &str) -> Ordering {
    valid_first(semver::key(a), semver::key(b), a, b)
}

/// A comparison operator of a [`Constraint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// One comparison with a version, as a `--filter 'version<3.0.15'` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub op: Op,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("invalid version constraint {0:?}: expected an operator (<, <=, >, >=, =, !=) and a version")]
    NoOperator(String),
    #[error("invalid version constraint {0:?}: no version after the operator")]
    NoVersion(String),
}

impl Constraint {
    /// Parses `[version]OP VERSION` with OP one of `<`, `<=`, `>`, `>=`, `=`,
    /// `==`, `!=`; spaces around the operator are allowed.
    pub fn parse(s: &str) -> Result<Constraint, ConstraintError> {
        let t = s.trim();
        let t = t.strip_prefix("version").unwrap_or(t).trim_start();
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("=", Op::Eq),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r)))
            .ok_or_else(|| ConstraintError::NoOperator(s.to_string()))?;
        let version = rest.trim();
        if version.is_empty() || version.contains(char::is_whitespace) {
            return Err(ConstraintError::NoVersion(s.to_string()));
        }
        Ok(Constraint {
            op,
            version: version.to_string(),
        })
    }

    /// Parses a comma-separated conjunction: `>=1.0,<2.0`.
    pub fn parse_all(s: &str) -> Result<Vec<Constraint>, ConstraintError> {
        s.split(',').map(Constraint::parse).collect()
    }

    /// Whether `version` satisfies the constraint under `eco`'s ordering.
    pub fn matches(&self, eco: Ecosystem, version: &str) -> bool {
        let o = compare(eco, version, &self.version);
        match self.op {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
        }
    }
}

/// An OSV range's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RangeType {
    /// Versions ordered by the package's ecosystem.
    Ecosystem,
    /// Versions ordered by semver 2.0.
    Semver,
    /// Commit hashes: cannot be evaluated against a version, never matches.
    Git,
}

/// An OSV range event: `{"introduced": "0"}`, `{"fixed": "1.2"}`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

/// An OSV `affected[].ranges[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: RangeType,
    pub events: Vec<Event>,
}

/// Whether `version` falls in any of `ranges`, by the OSV schema's evaluation:
/// the events sorted by version (`introduced: "0"` first), `introduced` at or
/// below the version makes it affected, `fixed` at or below it or `last_affected`
/// below it makes it not; a range with `limit` events holds only versions below
/// one of its limits (`*` is infinity).
pub fn affected(eco: Ecosystem, version: &str, ranges: &[Range]) -> bool {
    ranges.iter().any(|r| in_range(eco, version, r))
}

impl Range {
    fn cmp_fn(&self, eco: Ecosystem) -> impl Fn(&str, &str) -> Ordering + '_ {
        let kind = self.kind;
        move |a: &str, b: &str| match kind {
            RangeType::Semver => compare_semver(a, b),
            _ => compare(eco, a, b),
        }
    }

    /// The least `fixed` event above `version`: the version that fixes it when
    /// the range holds it.
    pub fn fixed_after(&self, eco: Ecosystem, version: &str) -> Option<&str> {
        if self.kind == RangeType::Git {
            return None;
        }
        let cmp = self.cmp_fn(eco);
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Fixed(f) if cmp(version, f) == Ordering::Less => Some(f.as_str()),
                _ => None,
            })
            .min_by(|a, b| cmp(a, b))
    }
}

/// Whether `version` falls in one OSV range (see [`affected`]). A `GIT` range
/// never holds a version.
pub fn in_range(eco: Ecosystem, version: &str, r: &Range) -> bool {
    if r.kind == RangeType::Git {
        return false;
    }
    let cmp = r.cmp_fn(eco);
    // BeforeLimits: with no limit event, an implicit "*".
    let mut limits = r.events.iter().filter_map(|e| match e {
        Event::Limit(l) => Some(l.as_str()),
        _ => None,
    });
    let mut limits_seen = false;
    let below_a_limit = limits.any(|l| {
        limits_seen = true;
        l.contains('*') || cmp(version, l) == Ordering::Less
    });
    if limits_seen && !below_a_limit {
        return false;
    }
    // Walking the sorted events and keeping the last one that applies is the
    // same as taking the greatest event that applies: no sort needed. On a tie,
    // an event that ends the range wins.
    let mut last: Option<(&str, bool)> = None;
    for e in &r.events {
        let (v, opens) = match e {
            Event::Introduced(v) if v == "0" || cmp(version, v) != Ordering::Less => {
                (v.as_str(), true)
            }
            Event::Fixed(v) if cmp(version, v) != Ordering::Less => (v.as_str(), false),
            Event::LastAffected(v) if cmp(version, v) == Ordering::Greater => (v.as_str(), false),
            _ => continue,
        };
        let later = match last {
            None => true,
            Some((lv, lopens)) => {
                let o = if opens && v == "0" {
                    Ordering::Less
                } else if lopens && lv == "0" {
                    Ordering::Greater
                } else {
                    cmp(v, lv)
                };
                o == Ordering::Greater || (o == Ordering::Equal && !opens && lopens)
            }
        };
        if later {
            last = Some((v, opens));
        }
    }
    last.is_some_and(|(_, opens)| opens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints() {
        let c = Constraint::parse("version<3.0.15").unwrap();
        assert_eq!(
            c,
            Constraint {
                op: Op::Lt,
                version: "3.0.15".into()
            }
        );
        assert!(c.matches(Ecosystem::Deb, "3.0.14-1~deb12u2"));
        assert!(c.matches(Ecosystem::Deb, "3.0.15~rc1"));
        assert!(!c.matches(Ecosystem::Deb, "3.0.15-1~deb12u1"));
        assert_eq!(Constraint::parse(">= 1.2").unwrap().op, Op::Ge);
        assert_eq!(Constraint::parse("version==1").unwrap().op, Op::Eq);
        assert_eq!(Constraint::parse("!=1").unwrap().op, Op::Ne);
        assert!(Constraint::parse("version~1").is_err());
        assert!(Constraint::parse("version<").is_err());
        let all = Constraint::parse_all(">=1.0,<2.0").unwrap();
        assert!(all.iter().all(|c| c.matches(Ecosystem::Npm, "1.5.0")));
        assert!(!all.iter().all(|c| c.matches(Ecosystem::Npm, "2.0.0")));
    }

    #[test]
    fn osv_ranges() {
        let r: Vec<Range> = serde_json::from_str(
            r#"[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.15-1~deb12u1"}]}]"#,
        )
        .unwrap();
        assert!(affected(Ecosystem::Deb, "3.0.14-1~deb12u2", &r));
        assert!(!affected(Ecosystem::Deb, "3.0.15-1~deb12u1", &r));
        assert!(!affected(Ecosystem::Deb, "3.1.0-1", &r));
        // Two introduced/fixed pairs, given out of order.
        let r: Vec<Range> = serde_json::from_str(
            r#"[{"type":"SEMVER","events":[{"introduced":"2.0.0"},{"fixed":"2.3.1"},{"introduced":"1.0.0"},{"fixed":"1.4.2"}]}]"#,
        )
        .unwrap();
        for (v, want) in [
            ("0.9.0", false),
            ("1.0.0", true),
            ("1.4.1", true),
            ("1.4.2", false),
            ("1.9.0", false),
            ("2.3.0", true),
            ("2.3.1", false),
        ] {
            assert_eq!(affected(Ecosystem::Npm, v, &r), want, "{v}");
        }
        let r: Vec<Range> = serde_json::from_str(
            r#"[{"type":"ECOSYSTEM","events":[{"introduced":"1.0"},{"last_affected":"1.5"}]}]"#,
        )
        .unwrap();
        assert!(affected(Ecosystem::Pypi, "1.5", &r));
        assert!(!affected(Ecosystem::Pypi, "1.5.post1", &r));
        assert!(!affected(Ecosystem::Pypi, "0.9", &r));
        let git: Vec<Range> =
            serde_json::from_str(r#"[{"type":"GIT","events":[{"introduced":"0"}]}]"#).unwrap();
        assert!(!affected(Ecosystem::Golang, "v1.0.0", &git));
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains(r#"{"last_affected":"1.5"}"#), "{s}");
    }

    #[test]
    fn osv_limits_and_fixed_after() {
        let r: Range = serde_json::from_str(
            r#"{"type":"SEMVER","events":[{"introduced":"0"},{"limit":"2.0.0"},{"limit":"1.5.0"}]}"#,
        )
        .unwrap();
        // Below one of the limits: held; at or above every limit: not.
        assert!(in_range(Ecosystem::Npm, "1.9.0", &r));
        assert!(!in_range(Ecosystem::Npm, "2.0.0", &r));
        let star: Range = serde_json::from_str(
            r#"{"type":"ECOSYSTEM","events":[{"introduced":"1.0"},{"limit":"*"}]}"#,
        )
        .unwrap();
        assert!(in_range(Ecosystem::Pypi, "99", &star));
        let two: Range = serde_json::from_str(
            r#"{"type":"ECOSYSTEM","events":[{"introduced":"2.0.0"},{"fixed":"2.3.1"},{"introduced":"1.0.0"},{"fixed":"1.4.2"}]}"#,
        )
        .unwrap();
        assert_eq!(two.fixed_after(Ecosystem::Npm, "1.2.0"), Some("1.4.2"));
        assert_eq!(two.fixed_after(Ecosystem::Npm, "2.0.0"), Some("2.3.1"));
        assert_eq!(two.fixed_after(Ecosystem::Npm, "2.3.1"), None);
        // Debian ordering: an epoch outranks everything after it.
        let deb: Range = serde_json::from_str(
            r#"{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:2.3-1"}]}"#,
        )
        .unwrap();
        assert!(in_range(Ecosystem::Deb, "9.9-9", &deb));
        assert!(in_range(Ecosystem::Deb, "1:2.2-9", &deb));
        assert!(!in_range(Ecosystem::Deb, "1:2.3-1", &deb));
        assert!(!in_range(Ecosystem::Deb, "2:0.1-1", &deb));
    }

    #[test]
    fn every_order_is_total_even_on_odd_input() {
        let odd = [
            "",
            " ",
            "~",
            "^",
            "1:",
            ":1",
            "-",
            "1.0-",
            "v",
            "+",
            "1!",
            "1.0+",
            "0.0.0-",
            "99999999999999999999999999",
            "1.0_",
            "1.0-r",
            "1_p_p",
            "a",
            "1a1a1",
            "1.0~~~",
            "é",
            "1..2",
            "1.2.3.4.5",
            "!",
            "0:0-0",
            "1.0.dev.post",
        ];
        let ecos = [
            Ecosystem::Deb,
            Ecosystem::Apk,
            Ecosystem::Rpm,
            Ecosystem::Pypi,
            Ecosystem::Npm,
            Ecosystem::Golang,
            Ecosystem::Cargo,
            Ecosystem::Maven,
        ];
        let normal = [
            "1",
            "1.0",
            "1.0.0",
            "1.0-1",
            "1:1.0",
            "1.0~rc1",
            "1.0a",
            "1.0-sp",
            "1.0.1",
            "1.0_p1",
            "1.0-r1",
            "1.0.post1",
            "1.0a1",
            "2.0.0-rc.1",
            "v2.0.0",
            "1.0.0+build",
            "0.9",
            "10",
            "1.01",
            "1.0^git1",
            "1.0-SNAPSHOT",
            "1.0-ga",
        ];
        let all: Vec<&str> = odd.iter().chain(normal.iter()).copied().collect();
        for eco in ecos {
            for a in &all {
                assert_eq!(compare(eco, a, a), Ordering::Equal, "{eco} {a:?}");
                for b in &all {
                    let ab = compare(eco, a, b);
                    assert_eq!(ab, compare(eco, b, a).reverse(), "{eco} {a:?} {b:?}");
                    if ab == Ordering::Greater {
                        continue;
                    }
                    // Transitive: a <= b and b <= c give a <= c.
                    for c in &all {
                        if compare(eco, b, c) != Ordering::Greater {
                            assert_ne!(
                                compare(eco, a, c),
                                Ordering::Greater,
                                "{eco}: {a:?} <= {b:?} <= {c:?}"
                            );
                        }
                    }
                }
            }
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| compare(eco, a, b));
        }
    }

    #[test]
    fn dispatch() {
        assert_eq!(
            compare(Ecosystem::Golang, "v1.10.0", "v1.9.0"),
            Ordering::Greater
        );
        assert_eq!(compare(Ecosystem::Pypi, "2.0", "2.0rc1"), Ordering::Greater);
        assert_eq!(
            compare(Ecosystem::Pypi, "weird-1", "weird-2"),
            Ordering::Less
        );
        assert_eq!(
            compare(Ecosystem::Maven, "2.17.0", "2.14.1"),
            Ordering::Greater
        );
    }
}
