//! Debian version ordering, as dpkg's `verrevcmp`: `[EPOCH:]UPSTREAM[-REVISION]`;
//! within a part, runs of non-digits compare character by character with `~`
//! before everything (even the end), then the end, then letters, then everything
//! else; runs of digits compare as numbers.

use std::cmp::Ordering;

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

struct Version<'a> {
    epoch: u64,
    upstream: &'a str,
    revision: &'a str,
}

fn parse(v: &str) -> Version<'_> {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, v),
    };
    let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
    Version {
        epoch,
        upstream,
        revision,
    }
}

pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (parse(a), parse(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn dpkg_examples() {
        // From dpkg's own tests (lib/dpkg/t/t-version.c) and Debian policy 5.6.12.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1:0.1", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.1", Less),
            ("3.0.15-1~deb12u1", "3.0.15-1", Less),
            ("3.0.14-1~deb12u2", "3.0.15-1~deb12u1", Less),
            ("2.30-1", "2.3-1", Greater),
            ("1.002", "1.2", Equal),
            ("1.0-1", "1.0-2", Less),
            ("1.0-1.1", "1.0-1", Greater),
            ("7.6p2-4", "7.6-0", Greater),
            ("1.0.3-3", "1.0-1", Greater),
            ("1.3", "1.2.2-2", Greater),
            ("1.3", "1.2.2", Greater),
            ("0-pre", "0-pre", Equal),
            ("0-pre", "0-pree", Less),
            ("1.1.6r2-2", "1.1.6r-1", Greater),
            ("2.6b2-1", "2.6b-2", Greater),
            ("0.4a6-2", "0.4a6-1", Greater),
            ("3.0~rc1-1", "3.0-1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
