//! Licences as packages record them (SPDX expressions, Debian DEP-5 short names,
//! Fedora's legacy names, Python classifiers, free text) mapped to SPDX licence
//! expressions that use only identifiers of the SPDX License List.
//!
//! A recorded licence is mapped whole when it is a known alias ("MIT License",
//! "ASL 2.0"); otherwise it is parsed as an expression (`AND`, `OR`, `WITH`, in
//! any case, and parentheses) in which every licence must be a listed identifier
//! (matched case-insensitively), a GNU short name (`GPL-2+`, `LGPLv2.1`, `GPL-2.0`)
//! or an alias, and every exception a listed exception. Anything else becomes one
//! `LicenseRef-` for the whole recorded text: berth never guesses what part of a
//! free text means, nor writes text that is not an expression.

const LICENSE_IDS: &str = include_str!("license-ids.txt");
const EXCEPTION_IDS: &str = include_str!("exception-ids.txt");

/// A list's identifiers by their lower-case form, made once.
fn index(list: &'static str) -> std::collections::HashMap<String, &'static str> {
    list.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| (l.to_ascii_lowercase(), l))
        .collect()
}

fn listed(
    index: &std::sync::OnceLock<std::collections::HashMap<String, &'static str>>,
    list: &'static str,
    s: &str,
) -> Option<&'static str> {
    index
        .get_or_init(|| self::index(list))
        .get(&s.to_ascii_lowercase())
        .copied()
}

static LICENSES: std::sync::OnceLock<std::collections::HashMap<String, &'static str>> =
    std::sync::OnceLock::new();
static EXCEPTIONS: std::sync::OnceLock<std::collections::HashMap<String, &'static str>> =
    std::sync::OnceLock::new();

/// The listed SPDX licence identifier `s` names, in its canonical case.
pub(crate) fn license_id(s: &str) -> Option<&'static str> {
    listed(&LICENSES, LICENSE_IDS, s)
}

/// Every listed licence identifier (for tests).
#[cfg(test)]
pub(crate) fn all_license_ids() -> impl Iterator<Item = &'static str> {
    LICENSE_IDS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
}

pub(crate) fn exception_id(s: &str) -> Option<&'static str> {
    listed(&EXCEPTIONS, EXCEPTION_IDS, s)
}

/// Whole-text aliases (lower case, single spaces) of listed licences.
const ALIASES: &[(&str, &str)] = &[
    ("mit license", "MIT"),
    ("the mit license", "MIT"),
    ("mit/expat", "MIT"),
    ("expat", "MIT"),
    ("expat license", "MIT"),
    ("http://opensource.org/licenses/mit", "MIT"),
    ("https://opensource.org/licenses/mit", "MIT"),
    ("apache 2.0", "Apache-2.0"),
    ("apache-2", "Apache-2.0"),
    ("apache 2", "Apache-2.0"),
    ("apache license 2.0", "Apache-2.0"),
    ("apache license, version 2.0", "Apache-2.0"),
    ("apache license version 2.0", "Apache-2.0"),
    ("apache software license 2.0", "Apache-2.0"),
    ("the apache software license, version 2.0", "Apache-2.0"),
    ("the apache license, version 2.0", "Apache-2.0"),
    ("asl 2.0", "Apache-2.0"),
    ("asl-2.0", "Apache-2.0"),
    ("http://www.apache.org/licenses/license-2.0", "Apache-2.0"),
    ("https://www.apache.org/licenses/license-2.0", "Apache-2.0"),
    (
        "http://www.apache.org/licenses/license-2.0.txt",
        "Apache-2.0",
    ),
    (
        "https://www.apache.org/licenses/license-2.0.txt",
        "Apache-2.0",
    ),
    (
        "http://www.apache.org/licenses/license-2.0.html",
        "Apache-2.0",
    ),
    (
        "https://www.apache.org/licenses/license-2.0.html",
        "Apache-2.0",
    ),
    ("isc license", "ISC"),
    ("isc license (iscl)", "ISC"),
    ("mpl-2", "MPL-2.0"),
    ("mozilla public license 2.0 (mpl 2.0)", "MPL-2.0"),
    ("mpl 2.0", "MPL-2.0"),
    ("zlib license", "Zlib"),
    ("zlib/libpng license", "Zlib"),
    ("the unlicense (unlicense)", "Unlicense"),
    ("python software foundation license", "PSF-2.0"),
];

/// `GPL-2+`, `GPLv2+`, `LGPL-2.1`, `GPL-2.0+` (deprecated SPDX), `AGPL-3`,
/// `GFDL-1.3+`: the GNU family's `-only`/`-or-later` identifiers.
fn gnu(s: &str) -> Option<&'static str> {
    let lower = s.to_ascii_lowercase();
    let (fam, rest) = ["agpl", "lgpl", "gpl", "gfdl"]
        .iter()
        .find_map(|f| lower.strip_prefix(f).map(|r| (*f, r)))?;
    let rest = rest
        .strip_prefix('-')
        .or_else(|| rest.strip_prefix('v'))
        .unwrap_or(rest);
    let (ver, later) = match rest.strip_suffix('+') {
        Some(v) => (v, true),
        None => match rest.strip_suffix("-or-later") {
            Some(v) => (v, true),
            None => (rest.strip_suffix("-only").unwrap_or(rest), false),
        },
    };
    if ver.is_empty() || !ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let ver = if ver.contains('.') {
        ver.to_string()
    } else {
        format!("{ver}.0")
    };
    let id = format!(
        "{}-{ver}-{}",
        fam.to_ascii_uppercase(),
        if later { "or-later" } else { "only" }
    );
    license_id(&id)
}

/// One licence of an expression, mapped to a listed identifier.
fn simple(tok: &str) -> Option<String> {
    if let Some(id) = license_id(tok) {
        // Deprecated GNU ids (`GPL-2.0`) are not listed, so this is a current one.
        return Some(id.to_string());
    }
    if let Some(id) = gnu(tok) {
        return Some(id.to_string());
    }
    let lower = tok.to_ascii_lowercase();
    if let Some((_, id)) = ALIASES.iter().find(|(a, _)| *a == lower) {
        return Some((*id).to_string());
    }
    // `ID+`: this version or later, for licences that are not GNU's.
    let base = tok.strip_suffix('+')?;
    license_id(base).map(|id| format!("{id}+"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Id(String),
    With(String, String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    fn render(&self) -> String {
        match self {
            Expr::Id(s) => s.clone(),
            Expr::With(l, e) => format!("{l} WITH {e}"),
            Expr::And(v) => v
                .iter()
                .map(|e| match e {
                    Expr::Or(_) => format!("({})", e.render()),
                    _ => e.render(),
                })
                .collect::<Vec<_>>()
                .join(" AND "),
            Expr::Or(v) => v.iter().map(Expr::render).collect::<Vec<_>>().join(" OR "),
        }
    }
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let mut cur = String::new();
        for c in word.chars() {
            if c == '(' || c == ')' {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            } else {
                cur.push(c);
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        self.toks
            .get(self.pos)
            .is_some_and(|t| t.eq_ignore_ascii_case(op))
    }

    fn or(&mut self) -> Option<Expr> {
        let mut v = vec![self.and()?];
        while self.peek_op("or") {
            self.pos += 1;
            v.push(self.and()?);
        }
        Some(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }

    fn and(&mut self) -> Option<Expr> {
        let mut v = vec![self.with()?];
        while self.peek_op("and") {
            self.pos += 1;
            v.push(self.with()?);
        }
        Some(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }

    fn with(&mut self) -> Option<Expr> {
        let tok = self.toks.get(self.pos)?.clone();
        self.pos += 1;
        if tok == "(" {
            let e = self.or()?;
            if self.toks.get(self.pos).map(String::as_str) != Some(")") {
                return None;
            }
            self.pos += 1;
            return Some(e);
        }
        if tok == ")"
            || ["and", "or", "with"]
                .iter()
                .any(|o| tok.eq_ignore_ascii_case(o))
        {
            return None;
        }
        let id = simple(&tok)?;
        if self.peek_op("with") {
            self.pos += 1;
            let exc = exception_id(self.toks.get(self.pos)?)?;
            self.pos += 1;
            return Some(Expr::With(id, exc.to_string()));
        }
        Some(Expr::Id(id))
    }
}

/// A recorded licence as an SPDX expression of listed identifiers, or `None` when
/// it is not one (free text, an unknown name): the caller then gives it a
/// `LicenseRef-`.
pub(crate) fn to_spdx(raw: &str) -> Option<Mapped> {
    let norm = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = norm.to_ascii_lowercase();
    if let Some((_, id)) = ALIASES.iter().find(|(a, _)| *a == lower) {
        return Some(Mapped {
            expr: (*id).to_string(),
            compound: false,
            or: false,
        });
    }
    let mut p = Parser {
        toks: tokens(&norm),
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return None;
    }
    let compound = !matches!(&e, Expr::Id(id) if license_id(id).is_some());
    Some(Mapped {
        expr: e.render(),
        compound,
        or: matches!(e, Expr::Or(_)),
    })
}

/// A recorded licence mapped to an SPDX expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub(crate) expr: String,
    /// Not a single listed identifier (an operator, `WITH`, or `ID+`).
    pub(crate) compound: bool,
    /// An `OR` at the top: parenthesised when joined with `AND`.
    pub(crate) or: bool,
}

impl Mapped {
    /// The expression as an operand of `AND`.
    pub(crate) fn and_operand(&self) -> String {
        if self.or {
            format!("({})", self.expr)
        } else {
            self.expr.clone()
        }
    }
}

/// The `LicenseRef-` identifiers of one document: each distinct recorded text
/// that is not an expression gets one, derived from the text (its characters
/// outside `[A-Za-z0-9.-]` become `-`), made unique with `-2`, `-3`, ... in the
/// order first seen.
#[derive(Debug, Default)]
pub(crate) struct LicenseRefs {
    /// (recorded text, identifier), in the order first seen.
    pub(crate) refs: Vec<(String, String)>,
}

impl LicenseRefs {
    pub(crate) fn get(&mut self, raw: &str) -> String {
        if let Some((_, id)) = self.refs.iter().find(|(r, _)| r == raw) {
            return id.clone();
        }
        let text = raw.trim();
        let text = text
            .get(..11)
            .filter(|p| p.eq_ignore_ascii_case("LicenseRef-"))
            .map_or(text, |_| &text[11..]);
        let mut base = String::new();
        for c in text.chars() {
            if c.is_ascii_alphanumeric() || c == '.' {
                base.push(c);
            } else if !base.ends_with('-') && !base.is_empty() {
                base.push('-');
            }
            if base.len() >= 48 {
                break;
            }
        }
        let base = base.trim_end_matches('-');
        let base = if base.is_empty() { "unknown" } else { base };
        let mut id = format!("LicenseRef-{base}");
        let mut n = 2;
        while self.refs.iter().any(|(_, i)| *i == id) {
            id = format!("LicenseRef-{base}-{n}");
            n += 1;
        }
        self.refs.push((raw.to_string(), id.clone()));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Option<String> {
        to_spdx(s).map(|m| m.expr)
    }

    #[test]
    fn mapping() {
        assert_eq!(m("MIT").as_deref(), Some("MIT"));
        assert_eq!(m("mit").as_deref(), Some("MIT"));
        assert_eq!(m("Zlib").as_deref(), Some("Zlib"));
        assert_eq!(m("BSD-3-clause").as_deref(), Some("BSD-3-Clause"));
        assert_eq!(m("GPL-2+").as_deref(), Some("GPL-2.0-or-later"));
        assert_eq!(m("GPL-2.0").as_deref(), Some("GPL-2.0-only"));
        assert_eq!(m("LGPLv2.1+").as_deref(), Some("LGPL-2.1-or-later"));
        assert_eq!(m("GPL-3.0-only").as_deref(), Some("GPL-3.0-only"));
        assert_eq!(m("ASL 2.0").as_deref(), Some("Apache-2.0"));
        assert_eq!(m("MIT License").as_deref(), Some("MIT"));
        assert_eq!(
            m("https://www.apache.org/licenses/LICENSE-2.0.txt").as_deref(),
            Some("Apache-2.0")
        );
        assert_eq!(
            m("(mit or apache-2.0) and BSD-3-Clause").as_deref(),
            Some("(MIT OR Apache-2.0) AND BSD-3-Clause")
        );
        assert_eq!(
            m("GPL-2+ with Classpath-exception-2.0").as_deref(),
            Some("GPL-2.0-or-later WITH Classpath-exception-2.0")
        );
        assert_eq!(m("Apache-1.0+").as_deref(), Some("Apache-1.0+"));
        assert!(to_spdx("Apache-1.0+").is_some_and(|m| m.compound));
        assert!(to_spdx("MIT").is_some_and(|m| !m.compound));
        assert_eq!(
            to_spdx("MIT or ISC").map(|m| m.and_operand()).as_deref(),
            Some("(MIT OR ISC)")
        );
        assert_eq!(
            to_spdx("(MIT or ISC) and Zlib")
                .map(|m| m.and_operand())
                .as_deref(),
            Some("(MIT OR ISC) AND Zlib")
        );
        // Not expressions of listed ids: the caller's LicenseRef.
        for s in [
            "Artistic or GPL-1+",
            "BSD License",
            "GPL",
            "public domain",
            "GPL or later",
            "MIT AND",
            "(MIT",
            "MIT)",
            "MIT Apache-2.0",
            "GPL-2+ with OpenSSL exception",
            "",
            "LicenseRef-Foo",
        ] {
            assert_eq!(m(s), None, "{s}");
        }
    }

    #[test]
    fn lists() {
        let ids: Vec<&str> = all_license_ids().collect();
        assert!(ids.len() > 600);
        for id in &ids {
            assert_eq!(license_id(&id.to_ascii_lowercase()), Some(*id));
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "{id}"
            );
        }
        // Deprecated ids are not listed: the GNU ones are mapped instead.
        assert_eq!(license_id("GPL-2.0"), None);
        assert_eq!(license_id("GPL-2.0+"), None);
        assert_eq!(
            exception_id("classpath-exception-2.0"),
            Some("Classpath-exception-2.0")
        );
        assert_eq!(exception_id("MIT"), None);
    }

    #[test]
    fn refs() {
        let mut r = LicenseRefs::default();
        assert_eq!(r.get("Artistic or GPL-1+"), "LicenseRef-Artistic-or-GPL-1");
        assert_eq!(r.get("Artistic or GPL-1+"), "LicenseRef-Artistic-or-GPL-1");
        assert_eq!(r.get("Artistic or GPL-1"), "LicenseRef-Artistic-or-GPL-1-2");
        assert_eq!(r.get("LicenseRef-Foo"), "LicenseRef-Foo");
        assert_eq!(r.get("(c) ©"), "LicenseRef-c");
        assert_eq!(r.get("©"), "LicenseRef-unknown");
        assert_eq!(r.get(&"x".repeat(200)).len(), "LicenseRef-".len() + 48);
    }
}
