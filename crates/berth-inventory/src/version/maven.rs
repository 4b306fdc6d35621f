//! Maven-style ordering (Maven's `ComparableVersion`, simplified), also the
//! fallback for a version an ecosystem's own rules cannot parse: items split at
//! `.`, `-` and digit/letter changes; numbers compare as numbers and beat words;
//! the qualifiers `alpha` < `beta` < `milestone` < `rc` < `snapshot` < (release) <
//! `sp`, others after them in lexical order; a missing item is 0 or the release.

use std::cmp::Ordering;

#[derive(Debug)]
enum Item {
    Num(u64),
    Word(String),
}

fn items(v: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<Item>| {
        if cur.is_empty() {
            return;
        }
        if cur.bytes().all(|b| b.is_ascii_digit()) {
            out.push(Item::Num(cur.parse().unwrap_or(u64::MAX)));
        } else {
            out.push(Item::Word(cur.to_ascii_lowercase()));
        }
        cur.clear();
    };
    for c in v.trim().chars() {
        if matches!(c, '.' | '-' | '_' | '+' | '~') {
            flush(&mut cur, &mut out);
            continue;
        }
        if let Some(last) = cur.chars().last() {
            if last.is_ascii_digit() != c.is_ascii_digit() {
                flush(&mut cur, &mut out);
            }
        }
        cur.push(c);
    }
    flush(&mut cur, &mut out);
    out
}

fn rank(w: &str) -> (u8, &str) {
    match w {
        "alpha" | "a" => (0, ""),
        "beta" | "b" => (1, ""),
        "milestone" | "m" => (2, ""),
        "rc" | "cr" => (3, ""),
        "snapshot" => (4, ""),
        "" | "ga" | "final" | "release" => (5, ""),
        "sp" => (6, ""),
        _ => (7, w),
    }
}

fn cmp_item(a: Option<&Item>, b: Option<&Item>) -> Ordering {
    match (a, b) {
        (Some(Item::Num(x)), Some(Item::Num(y))) => x.cmp(y),
        (Some(Item::Num(_)), Some(Item::Word(_))) => Ordering::Greater,
        (Some(Item::Word(_)), Some(Item::Num(_))) => Ordering::Less,
        (Some(Item::Word(x)), Some(Item::Word(y))) => rank(x).cmp(&rank(y)),
        (Some(Item::Num(x)), None) => x.cmp(&0),
        (None, Some(Item::Num(y))) => 0.cmp(y),
        (Some(Item::Word(x)), None) => rank(x).cmp(&rank("")),
        (None, Some(Item::Word(y))) => rank("").cmp(&rank(y)),
        (None, None) => Ordering::Equal,
    }
}

pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (items(a), items(b));
    for i in 0..a.len().max(b.len()) {
        match cmp_item(a.get(i), b.get(i)) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maven_order() {
        let ascending = [
            "1-alpha",
            "1-beta",
            "1-milestone",
            "1-rc",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-zzz",
            "1.0.1",
            "1.1",
            "2.14.1",
            "2.15.0-rc1",
            "2.15.0",
        ];
        for w in ascending.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Ordering::Greater);
        }
        assert_eq!(compare("1.0.0", "1"), Ordering::Equal);
        assert_eq!(compare("1.0-final", "1"), Ordering::Equal);
    }
}
