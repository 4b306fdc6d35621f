//! rpm version ordering: `[EPOCH:]VERSION[-RELEASE]`, each part compared by
//! `rpmvercmp` (rpm ≥ 4.15: `~` sorts before everything, `^` after the end but
//! before anything else; alphanumeric segments; numbers beat letters).

use std::cmp::Ordering;

fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while i < a.len() || j < b.len() {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else { break };
        let numeric = ca.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let si = i;
        while i < a.len() && class(&a[i]) {
            i += 1;
        }
        let sj = j;
        while j < b.len() && class(&b[j]) {
            j += 1;
        }
        let (mut sa, mut sb) = (&a[si..i], &b[sj..j]);
        if sb.is_empty() {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        if numeric {
            while sa.first() == Some(&b'0') && sa.len() > 1 {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') && sb.len() > 1 {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (false, _) => Ordering::Greater,
        (true, false) => Ordering::Less,
    }
}

fn split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, v),
    };
    let (ver, rel) = rest.rsplit_once('-').unwrap_or((rest, ""));
    (epoch, ver, rel)
}

pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(va.as_bytes(), vb.as_bytes()))
        // A missing release sorts before any release (as rpm's own rpm.vercmp
        // does): a total order, which sorting needs. rpm's dependency matching
        // lets a missing release match any; a constraint here says `<= 3.0.7-999`
        // for that.
        .then_with(|| rpmvercmp(ra.as_bytes(), rb.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn rpmvercmp_examples() {
        // From rpm's tests/rpmvercmp.at.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0.1", Equal),
            ("2.0", "2.0.1", Less),
            ("2.0.1a", "2.0.1", Greater),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10.1", Less),
            ("xyz.4", "8", Less),
            ("xyz.4", "2", Less),
            ("5.5p2", "5.6p1", Less),
            ("6.0.rc1", "6.0", Greater),
            ("10b2", "10a1", Greater),
            ("1.0aa", "1.0a", Greater),
            ("10.0001", "10.1", Equal),
            ("10.0001", "10.0039", Less),
            ("4.999.9", "5.0", Less),
            ("20101121", "20101122", Less),
            ("2_0", "2_0", Equal),
            ("2.0", "2_0", Equal),
            ("a", "a", Equal),
            ("a+", "a+", Equal),
            ("a+", "a_", Equal),
            ("+a", "_a", Equal),
            ("+_", "_+", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc1", Equal),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0^git1", "1.01", Less),
            ("1.0^20160101", "1.0.1", Less),
            ("1.0~rc1", "1.0~rc1^git1", Less),
            ("1.0^git1~pre", "1.0^git1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(rpmvercmp(a.as_bytes(), b.as_bytes()), want, "{a} vs {b}");
            assert_eq!(
                rpmvercmp(b.as_bytes(), a.as_bytes()),
                want.reverse(),
                "{b} vs {a}"
            );
        }
    }

    #[test]
    fn evr() {
        assert_eq!(compare("1:3.0.7-27.el9", "3.2.0-1.fc40"), Greater);
        assert_eq!(compare("3.0.7-27.el9", "3.0.7-28.el9"), Less);
        assert_eq!(compare("3.0.7", "3.0.7-28.el9"), Less);
        assert_eq!(compare("0:3.0.7-1", "3.0.7-1"), Equal);
    }
}
