//! apk version ordering, as apk-tools (v2 and v3) compares versions. A version is
//! `DIGITS{.DIGITS}[LETTER]{_SUFFIX[DIGITS]}[~HASH][-rDIGITS]`, read as a token
//! stream and compared token by token while both streams have tokens of the same
//! kind:
//! - numbers compare as numbers, except a number after a dot that starts with `0`
//!   on either side: then both compare as strings (`1.01 < 1.1`, `8.2.0015 <
//!   8.2.002`, as Gentoo does);
//! - suffixes in the order `_alpha < _beta < _pre < _rc < (none) < _cvs < _svn <
//!   _git < _hg < _p`; a commit hash (`~1a2b`) as a string.
//!
//! When the kinds first differ, a pre-release suffix (`_alpha` .. `_rc`) is older
//! than anything; otherwise the version whose next token comes later in the
//! grammar is older (the end of a version comes after everything: `1.0 < 1.0.1`,
//! `1.0 < 1.0a`, `1.0 < 1.0_p1`, `1.0 < 1.0-r1`). A malformed tail is a token
//! after the end, so what parses is still ordered.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    FirstNumber,
    Number,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Revision,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is the rank of no suffix at all.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const NONE: usize = 4;

fn suffix_rank(word: &str) -> Option<usize> {
    let i = SUFFIXES.iter().position(|s| *s == word)?;
    Some(if i < NONE { i } else { i + 1 })
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    number: u64,
    suffix: usize,
}

fn digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

fn number(text: &str) -> u64 {
    text.bytes().fold(0u64, |v, d| {
        v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

fn tok(kind: Kind, text: &str, number: u64, suffix: usize) -> Token<'_> {
    Token {
        kind,
        text,
        number,
        suffix,
    }
}

fn tokens(v: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let (first, mut rest) = digits(v);
    if first.is_empty() {
        out.push(tok(Kind::Invalid, rest, 0, 0));
        return out;
    }
    out.push(tok(Kind::FirstNumber, first, number(first), 0));
    loop {
        let prev = out.last().map_or(Kind::Invalid, |t| t.kind);
        let Some(c) = rest.chars().next() else {
            out.push(tok(Kind::End, "", 0, 0));
            return out;
        };
        let next = match c {
            'a'..='z' if prev <= Kind::Number => {
                let (l, r) = rest.split_at(1);
                rest = r;
                Some(tok(Kind::Letter, l, 0, 0))
            }
            '.' if prev <= Kind::Number => {
                let (d, r) = digits(&rest[1..]);
                rest = r;
                (!d.is_empty()).then(|| tok(Kind::Number, d, number(d), 0))
            }
            '0'..='9' if prev == Kind::Suffix => {
                let (d, r) = digits(rest);
                rest = r;
                Some(tok(Kind::SuffixNumber, d, number(d), 0))
            }
            '_' if prev <= Kind::SuffixNumber => {
                let n = rest[1..].bytes().take_while(u8::is_ascii_lowercase).count();
                let word = &rest[1..1 + n];
                rest = &rest[1 + n..];
                suffix_rank(word).map(|r| tok(Kind::Suffix, word, 0, r))
            }
            '~' if prev < Kind::CommitHash => {
                let n = rest[1..].bytes().take_while(u8::is_ascii_hexdigit).count();
                let hash = &rest[1..1 + n];
                rest = &rest[1 + n..];
                (n > 0).then(|| tok(Kind::CommitHash, hash, 0, 0))
            }
            '-' if prev < Kind::Revision && rest[1..].starts_with('r') => {
                let (d, r) = digits(&rest[2..]);
                rest = r;
                (!d.is_empty()).then(|| tok(Kind::Revision, d, number(d), 0))
            }
            _ => None,
        };
        match next {
            Some(t) => out.push(t),
            None => {
                out.push(tok(Kind::Invalid, rest, 0, 0));
                return out;
            }
        }
    }
}

fn compare_tokens(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        Kind::Number if a.text.starts_with('0') || b.text.starts_with('0') => a.text.cmp(b.text),
        Kind::FirstNumber | Kind::Number | Kind::SuffixNumber | Kind::Revision => {
            a.number.cmp(&b.number)
        }
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.text.cmp(b.text),
    }
}

pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a.trim()), tokens(b.trim()));
    // Both lists end with an End or Invalid token, so the loop always stops at one.
    for (x, y) in ta.iter().zip(tb.iter()) {
        if x.kind != y.kind {
            if x.kind == Kind::Suffix && x.suffix < NONE {
                return Ordering::Less;
            }
            if y.kind == Kind::Suffix && y.suffix < NONE {
                return Ordering::Greater;
            }
            return y.kind.cmp(&x.kind);
        }
        if x.kind >= Kind::End {
            return Ordering::Equal;
        }
        match compare_tokens(x, y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn apk_examples() {
        // Orderings apk-tools' own tests assert, and the grammar's corners.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("2.34", "0.1.0_alpha", Greater),
            ("1.0_alpha", "1.0_beta", Less),
            ("1.0_beta", "1.0_pre", Less),
            ("1.0_pre", "1.0_rc", Less),
            ("1.0_rc", "1.0", Less),
            ("1.0_rc1", "1.0_rc2", Less),
            ("1.0", "1.0_p1", Less),
            ("1.0_p1", "1.0-r5", Greater),
            ("1.0-r1", "1.0", Greater),
            ("1.0-r9", "1.0-r10", Less),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0b", Less),
            ("1.2a", "1.2.1", Less),
            ("1.0.1", "1.0", Greater),
            ("1.0", "1", Greater),
            ("1.01", "1.1", Less),
            ("1.001", "1.01", Less),
            ("3.3.2-r0", "3.3.1-r5", Greater),
            ("3.0.15-r0", "3.0.15-r1", Less),
            ("1.2.3_git20240101", "1.2.3", Greater),
            ("1.2.3_alpha_p1", "1.2.3_alpha", Greater),
            ("1.2.3_alpha_p1", "1.2.3_beta", Less),
            ("6.4_p20231125-r0", "6.4_p20240101-r0", Less),
            // A leading zero after a dot compares as a string.
            ("1.0.1", "1.06-r1", Less),
            ("8.2.0", "8.2.001", Less),
            ("8.2.0015", "8.2.002", Less),
            // Commit hashes, then revisions.
            ("1.0~1234", "1.0~2345", Less),
            ("1.0~1234-r1", "1.0~1234-r0", Greater),
            ("1.0~1234-r1", "1.0~2345-r0", Less),
            // Malformed tails: what parses is ordered, the rest sorts after the end.
            ("1.0", "1.0bc", Less),
            ("1.0_foo", "1.0_foo", Equal),
            ("1.0_alpha_pre2", "1.0_alpha", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
