//! PEP 440 version ordering: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+LOCAL]`, with
//! PEP 440's normalisations (case, `v` prefix, `alpha`/`beta`/`c`/`pre`/
//! `preview`, `-`/`_`/`.` separators, implicit numbers, `1.0-1` as a post
//! release). Releases compare with trailing zeros ignored; a dev release of a final
//! sorts before its pre-releases; a local version after the public one.

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Pre {
    /// `1.0.dev1`: before every pre-release of 1.0.
    DevOnly,
    Release(u8, u64),
    /// No pre-release: after all of them.
    Final,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalSeg {
    Str(String),
    Num(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    epoch: u64,
    release: Vec<u64>,
    pre: Pre,
    post: Option<u64>,
    /// `(false, n)` for `.devN`, `(true, 0)` without: dev releases first.
    dev: (bool, u64),
    local: Option<Vec<LocalSeg>>,
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn num(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            v = v.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            self.i += 1;
        }
        (self.i > start).then_some(v)
    }
    fn sep(&mut self) -> bool {
        if matches!(self.peek(), Some(b'-' | b'_' | b'.')) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Matches one of `words` (longest first), optionally after a separator.
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        let save = self.i;
        self.sep();
        for (k, w) in words.iter().enumerate() {
            if self.s[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                return Some(k);
            }
        }
        self.i = save;
        None
    }
    fn opt_num(&mut self) -> u64 {
        let save = self.i;
        self.sep();
        match self.num() {
            Some(n) => n,
            None => {
                self.i = save;
                0
            }
        }
    }
}

pub(crate) fn parse(v: &str) -> Option<Key> {
    let lower = v.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix('v').unwrap_or(&lower);
    let (public, local) = match lower.split_once('+') {
        Some((p, l)) => (p, Some(l)),
        None => (lower, None),
    };
    let mut p = P {
        s: public.as_bytes(),
        i: 0,
    };
    let mut epoch = 0;
    let first = p.num()?;
    let mut release = vec![first];
    if p.peek() == Some(b'!') {
        p.i += 1;
        epoch = first;
        release = vec![p.num()?];
    }
    while p.peek() == Some(b'.') && p.s.get(p.i + 1).is_some_and(u8::is_ascii_digit) {
        p.i += 1;
        release.push(p.num()?);
    }
    let mut pre = None;
    if let Some(k) = p.word(&["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"]) {
        let kind = match k {
            0 | 5 => 0,
            1 | 6 => 1,
            _ => 2,
        };
        pre = Some((kind, p.opt_num()));
    }
    let mut post = None;
    if p.word(&["post", "rev", "r"]).is_some() {
        post = Some(p.opt_num());
    } else if p.peek() == Some(b'-') && p.s.get(p.i + 1).is_some_and(u8::is_ascii_digit) {
        p.i += 1;
        post = p.num();
    }
    let mut dev = None;
    if p.word(&["dev"]).is_some() {
        dev = Some(p.opt_num());
    }
    if p.i != p.s.len() {
        return None;
    }
    while release.len() > 1 && release.last() == Some(&0) {
        release.pop();
    }
    let pre = match (pre, post, dev) {
        (Some((k, n)), _, _) => Pre::Release(k, n),
        (None, None, Some(_)) => Pre::DevOnly,
        _ => Pre::Final,
    };
    let local = match local {
        Some(l) => {
            let segs: Vec<LocalSeg> = l
                .split(['.', '-', '_'])
                .map(|s| match s.parse::<u64>() {
                    Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Some(LocalSeg::Num(n)),
                    _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                        Some(LocalSeg::Str(s.to_string()))
                    }
                    _ => None,
                })
                .collect::<Option<_>>()?;
            Some(segs)
        }
        None => None,
    };
    Some(Key {
        epoch,
        release,
        pre,
        post,
        dev: dev.map_or((true, 0), |n| (false, n)),
        local,
    })
}

#[cfg(test)]
fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    Some(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn pep440_order() {
        // PEP 440's own examples, in ascending order ("Summary of permitted suffixes
        // and relative ordering"), and epochs, locals.
        let ascending = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1!0.1",
        ];
        for w in ascending.windows(2) {
            assert_eq!(
                compare(w[0], w[1]),
                Some(Ordering::Less),
                "{} < {}",
                w[0],
                w[1]
            );
            assert_eq!(compare(w[1], w[0]), Some(Ordering::Greater));
        }
        let equal = [
            ("1.0", "1.0.0"),
            ("1.0a1", "1.0alpha1"),
            ("1.0c1", "1.0rc1"),
            ("1.0-1", "1.0.post1"),
            ("1.0.post", "1.0.post0"),
            ("v1.0", "1.0"),
            ("1.0-rc.1", "1.0rc1"),
            ("1.0.DEV", "1.0.dev0"),
        ];
        for (a, b) in equal {
            assert_eq!(compare(a, b), Some(Ordering::Equal), "{a} == {b}");
        }
        assert_eq!(compare("1.0.x", "1"), None);
    }
}
