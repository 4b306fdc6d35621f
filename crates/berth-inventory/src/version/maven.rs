//! Maven-style ordering (Maven's `ComparableVersion`, simplified), also the
//! fallback for a version an ecosystem's own rules cannot parse: items split at
//! `.`, `-` and digit/letter changes; numbers compare as numbers; the qualifiers
//! `alpha` < `beta` < `milestone` < `rc` < `snapshot` sort before any number
//! (`1.0-rc1 < 1.0`), `sp` and other words after (`1.0 < 1.0-sp`); a missing item
//! is 0 (`1 = 1.0.0`). The order is total (see [`class`]).

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

/// Where an item sits in one total order of all items, padding included: the
/// pre-release qualifiers (`alpha` < `beta` < `milestone` < `rc` < `snapshot`),
/// then numbers, where a missing item and the release qualifiers (`ga`, `final`,
/// `release`) are 0, then `sp`, then other words in lexical order. (Maven puts a
/// number after every qualifier; one order for padding and items is what makes
/// the comparison total, so that sorting by it is sound.)
fn class(item: Option<&Item>) -> (u8, u64, &str) {
    match item {
        None => (1, 0, ""),
        Some(Item::Num(n)) => (1, *n, ""),
        Some(Item::Word(w)) => match w.as_str() {
            "alpha" | "a" => (0, 0, ""),
            "beta" | "b" => (0, 1, ""),
            "milestone" | "m" => (0, 2, ""),
            "rc" | "cr" => (0, 3, ""),
            "snapshot" => (0, 4, ""),
            "ga" | "final" | "release" => (1, 0, ""),
            "sp" => (2, 0, ""),
            w => (3, 0, w),
        },
    }
}

pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (items(a), items(b));
    for i in 0..a.len().max(b.len()) {
        match class(a.get(i)).cmp(&class(b.get(i))) {
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
            "1.0.1",
            "1.1",
            "1.1-sp",
            "1.1-zzz",
            "2.14.1",
            "2.15.0-rc1",
            "2.15.0",
            "31.1-android",
            "31.1-jre",
        ];
        for w in ascending.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Ordering::Greater);
        }
        assert_eq!(compare("1.0.0", "1"), Ordering::Equal);
        assert_eq!(compare("1.0-final", "1"), Ordering::Equal);
    }
}
