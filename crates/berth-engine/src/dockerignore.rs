//! `.dockerignore`, read and matched as Docker's builder does (moby's
//! pattern matcher): one pattern a line, `#` comments, patterns relative to
//! the context root (a leading `/` or `./` means the same), each path
//! segment matched as Go's `filepath.Match` (`*`, `?`, `[a-z]`, `\x`), `**`
//! for any number of directories, `!` re-including what an earlier pattern
//! excluded; the last pattern that matches a path or one of its parent
//! directories decides.

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<String>,
    exclusion: bool,
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, p) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let segments = clean(p);
            if segments.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                segments,
                exclusion,
            });
        }
        Ignore { patterns }
    }

    /// Whether `path` (relative to the context root, `/`-separated) stays
    /// out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let segs = clean(path);
        if segs.is_empty() {
            return false;
        }
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself or one of its parent directories.
            let hit = (1..=segs.len()).any(|n| matches(&p.segments, &segs[..n]));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether some `!` pattern could re-include something under `dir`
    /// (then a walk must look inside an excluded directory).
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let d = clean(dir);
        self.patterns.iter().any(|p| {
            p.exclusion
                && (p.segments.iter().any(|s| s == "**")
                    || p.segments.len() > d.len() && matches(&p.segments[..d.len()], &d))
        })
    }
}

/// Go's `filepath.Clean` of a relative pattern or path, split into segments.
fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    out
}

/// Segment-wise match of the whole `path`; `**` takes any number of segments.
fn matches(pat: &[String], path: &[String]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|k| matches(&pat[1..], &path[k..])),
        Some(p) => {
            !path.is_empty()
                && crate::dockerfile::glob(p, &path[0])
                && matches(&pat[1..], &path[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_rules() {
        let ig = Ignore::parse(
            "# comment\n\n*.md\n!README.md\n/build\n./tmp/*\nsrc/**/*.o\n**/.git\nnode_modules\n",
        );
        for (path, out) in [
            ("notes.md", true),
            ("README.md", false),
            ("docs/notes.md", false), // `*.md` is for the root only
            ("build", true),
            ("build/x/y", true), // a parent directory matched
            ("tmp/a", true),
            ("tmp", false),
            ("src/a.o", true),
            ("src/deep/er/a.o", true),
            ("src/a.c", false),
            (".git", true),
            ("sub/.git/config", true),
            ("node_modules/x", true),
            ("a/node_modules", false),
            ("main.go", false),
        ] {
            assert_eq!(ig.excludes(path), out, "{path}");
        }
    }

    #[test]
    fn the_last_matching_pattern_decides() {
        let ig = Ignore::parse("docs\n!docs/keep.txt\n");
        assert!(ig.excludes("docs/a.txt"));
        assert!(!ig.excludes("docs/keep.txt"));
        assert!(ig.may_reinclude_under("docs"));
        assert!(!ig.may_reinclude_under("other"));
        let ig = Ignore::parse("!a\na\n");
        assert!(ig.excludes("a"));
        let ig = Ignore::parse("*\n!src\n");
        assert!(ig.excludes("Dockerfile"));
        assert!(!ig.excludes("src/main.rs"));
    }

    #[test]
    fn dots_and_escapes() {
        let ig = Ignore::parse("a/../b\n\\!x\nf[0-9]\n");
        assert!(ig.excludes("b"));
        assert!(!ig.excludes("a"));
        assert!(ig.excludes("!x"));
        assert!(ig.excludes("f7"));
        assert!(!ig.excludes("fx"));
    }
}
