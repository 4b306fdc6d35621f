//! Semantic versioning 2.0.0 ordering (npm, Cargo, Go modules): `MAJOR.MINOR.PATCH`
//! with an optional `v`/`=` prefix, a pre-release (`-alpha.1`) that sorts before
//! the release, identifiers compared numerically when numeric and numbers before
//! words; build metadata (`+build`, Go's `+incompatible`) ignored. A missing minor
//! or patch is 0 (`v1.2` as Go writes some tags).

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ident<'a> {
    Num(u64),
    Word(&'a str),
}

#[derive(Debug)]
struct Version<'a> {
    core: [u64; 3],
    pre: Vec<Ident<'a>>,
}

fn parse(v: &str) -> Option<Version<'_>> {
    let v = v.trim();
    let v = v
        .strip_prefix('v')
        .or_else(|| v.strip_prefix('='))
        .unwrap_or(v);
    let v = v.split_once('+').map_or(v, |(a, _)| a);
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let mut nums = [0u64; 3];
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums[i] = p.parse().ok()?;
    }
    let pre = match pre {
        Some(p) => p
            .split('.')
            .map(|id| {
                if id.is_empty() {
                    None
                } else if id.bytes().all(|b| b.is_ascii_digit()) {
                    id.parse().ok().map(Ident::Num)
                } else {
                    Some(Ident::Word(id))
                }
            })
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    Some(Version { core: nums, pre })
}

/// The ordering key: the core, then "is a release" (a release after its
/// pre-releases), then the pre-release identifiers.
pub(crate) fn key(v: &str) -> Option<([u64; 3], bool, Vec<Ident<'_>>)> {
    let v = parse(v)?;
    Some((v.core, v.pre.is_empty(), v.pre))
}

#[cfg(test)]
fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    Some(key(a)?.cmp(&key(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn semver_spec_order() {
        // semver.org §11's example, then Go's forms.
        let ascending = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
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
        assert_eq!(
            compare("v0.0.0-20210101000000-abcdef123456", "v0.1.0"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare("v2.0.0+incompatible", "2.0.0"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare("1.0.0+build.1", "1.0.0+build.2"),
            Some(Ordering::Equal)
        );
        assert_eq!(compare("v1.2", "1.2.0"), Some(Ordering::Equal));
        assert_eq!(compare("1.0.0", "x"), None);
    }
}
