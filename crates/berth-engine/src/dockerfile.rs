//! The Dockerfile language, read as Docker's (BuildKit's) parser reads it:
//! parser directives, comments, line continuations, instructions with their
//! `--flags`, exec (JSON) and shell forms, heredocs, and the builder's
//! variable substitution. The first piece of `berth build` (issue 8): it
//! turns text into instructions and expands words; evaluating them (ARG/ENV
//! scoping, stages, the cache) builds on it.

use std::fmt;

/// A syntax error, named as Docker names them: `Dockerfile:3: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dockerfile:{}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// How an instruction's arguments were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// `["a", "b"]`
    Exec(Vec<String>),
    /// Anything else, as written (continuations joined).
    Shell(String),
}

/// A heredoc (`<<EOF` … `EOF`) attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// The body, each line ending with a newline (`<<-`: leading tabs removed).
    pub content: String,
    /// `<<"EOF"` / `<<'EOF'`: the body is not expanded.
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line the instruction starts on (1-based).
    pub line: usize,
    /// Upper-cased: `RUN`, `COPY`, …
    pub keyword: String,
    /// Leading `--name=value` / `--name` flags, in order.
    pub flags: Vec<(String, Option<String>)>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dockerfile {
    /// `# syntax=` (accepted, not acted on), `# escape=`, `# check=`.
    pub directives: Vec<(String, String)>,
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Instructions whose arguments may hold heredocs.
const HEREDOC_KEYWORDS: &[&str] = &["RUN", "COPY", "ADD"];

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let mut df = Dockerfile {
        escape: '\\',
        ..Default::default()
    };
    let mut i = 0;
    // Parser directives: only at the very top, before anything else.
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else {
            break;
        };
        if df.directives.iter().any(|(d, _)| *d == k) {
            return Err(ParseError {
                line: i + 1,
                message: format!("only one {k} parser directive can be used"),
            });
        }
        if k == "escape" {
            df.escape = match v.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError {
                        line: i + 1,
                        message: format!("invalid escape token '{v}' does not match ` or \\"),
                    })
                }
            };
        }
        df.directives.push((k, v));
        i += 1;
    }
    while i < lines.len() {
        let start = i;
        let first = lines[i].trim_start();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        // Join continuations; comment and empty lines inside are dropped.
        let mut logical = String::new();
        let mut cur = first.to_string();
        loop {
            match strip_continuation(&cur, df.escape) {
                Some(head) => {
                    logical.push_str(head);
                    // Find the next line that is neither a comment nor empty.
                    let mut next = None;
                    while i < lines.len() {
                        let t = lines[i].trim_start();
                        i += 1;
                        if t.starts_with('#') || t.trim().is_empty() {
                            continue;
                        }
                        next = Some(lines[i - 1].to_string());
                        break;
                    }
                    match next {
                        Some(n) => cur = n,
                        None => break,
                    }
                }
                None => {
                    logical.push_str(&cur);
                    break;
                }
            }
        }
        let logical = logical.trim();
        let (word, rest) = match logical.find(char::is_whitespace) {
            Some(p) => (&logical[..p], logical[p..].trim_start()),
            None => (logical, ""),
        };
        let keyword = word.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(ParseError {
                line: start + 1,
                message: format!("unknown instruction: {word}"),
            });
        }
        let (flags, rest) = split_flags(rest);
        let mut heredocs = Vec::new();
        if HEREDOC_KEYWORDS.contains(&keyword.as_str()) {
            for (name, strip_tabs, quoted) in heredoc_names(rest) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let body = if strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if body == name {
                        closed = true;
                        break;
                    }
                    content.push_str(body);
                    content.push('\n');
                }
                if !closed {
                    return Err(ParseError {
                        line: start + 1,
                        message: format!("unterminated heredoc {name}"),
                    });
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    quoted,
                });
            }
        }
        let args = match rest.starts_with('[') {
            true => match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => Args::Exec(v),
                Err(_) => Args::Shell(rest.to_string()),
            },
            false => Args::Shell(rest.to_string()),
        };
        df.instructions.push(Instruction {
            line: start + 1,
            keyword,
            flags,
            args,
            heredocs,
        });
    }
    Ok(df)
}

/// `# key=value` at the top of the file (key case-insensitive, one of
/// Docker's), or None.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim().strip_prefix('#')?.trim();
    let (k, v) = body.split_once('=')?;
    let k = k.trim().to_ascii_lowercase();
    if !matches!(k.as_str(), "syntax" | "escape" | "check") || k.contains(char::is_whitespace) {
        return None;
    }
    Some((k, v.trim().to_string()))
}

/// The line without its trailing escape character when it continues.
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end();
    t.strip_suffix(escape)
}

/// Leading `--name[=value]` tokens.
fn split_flags(rest: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut r = rest;
    while let Some(f) = r.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let tok = &f[..end];
        if tok.is_empty() {
            break;
        }
        match tok.split_once('=') {
            Some((n, v)) => flags.push((n.to_string(), Some(v.to_string()))),
            None => flags.push((tok.to_string(), None)),
        }
        r = f[end..].trim_start();
    }
    (flags, r)
}

/// The heredocs an instruction's line opens: `<<NAME`, `<<-NAME`,
/// `<<"NAME"`, `<<'NAME'`, in order.
fn heredoc_names(rest: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'<' && b[i + 1] == b'<' && (i == 0 || b[i - 1] != b'<') {
            let mut j = i + 2;
            let strip = j < b.len() && b[j] == b'-';
            if strip {
                j += 1;
            }
            let quote = if j < b.len() && (b[j] == b'"' || b[j] == b'\'') {
                Some(b[j])
            } else {
                None
            };
            if quote.is_some() {
                j += 1;
            }
            let s = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > s {
                let name = rest[s..j].to_string();
                if let Some(q) = quote {
                    if j < b.len() && b[j] == q {
                        j += 1;
                    }
                }
                out.push((name, strip, quote.is_some()));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The builder's word processing (Docker's shell lexer): `$V`, `${V}` and
/// its modifiers expanded from `lookup`, quotes removed (single quotes
/// keep everything literal, double quotes allow expansion), `escape`
/// before a character makes it literal.
pub fn process_word(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, String> {
    Ok(process(word, lookup, escape, false)?.join(""))
}

/// Like [`process_word`], split into words at unquoted whitespace (ENV's old
/// form, EXPOSE, VOLUME, …).
pub fn process_words(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, String> {
    process(text, lookup, escape, true)
}

fn process(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
    split: bool,
) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if split && c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
            i += 1;
            continue;
        }
        in_word = true;
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                cur.push(n);
                i += 2;
            } else {
                cur.push(c);
                i += 1;
            }
            continue;
        }
        match c {
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or("unexpected end of statement while looking for matching single-quote")?;
                cur.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        );
                    };
                    if d == '"' {
                        i += 1;
                        break;
                    }
                    if d == escape {
                        // In double quotes the escape only escapes what it must.
                        match chars.get(i + 1) {
                            Some(&n) if n == '"' || n == '$' || n == escape => {
                                cur.push(n);
                                i += 2;
                            }
                            _ => {
                                cur.push(d);
                                i += 1;
                            }
                        }
                        continue;
                    }
                    if d == '$' {
                        let (v, used) = variable(&chars[i..], lookup, escape)?;
                        cur.push_str(&v);
                        i += used;
                        continue;
                    }
                    cur.push(d);
                    i += 1;
                }
            }
            '$' => {
                let (v, used) = variable(&chars[i..], lookup, escape)?;
                cur.push_str(&v);
                i += used;
            }
            _ => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if in_word || !split {
        words.push(cur);
    }
    Ok(words)
}

/// Expands the variable at `s[0] == '$'`; returns its value and how many
/// characters it took. A `$` that starts no name stays a `$`.
fn variable(
    s: &[char],
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<(String, usize), String> {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match s.get(1) {
        Some('{') => {
            let mut j = 2;
            while j < s.len() && name_char(s[j]) {
                j += 1;
            }
            let name: String = s[2..j].iter().collect();
            if name.is_empty() {
                return Err("bad substitution".into());
            }
            // The modifier's word runs to the matching brace.
            let mut depth = 1;
            let mut k = j;
            while k < s.len() {
                match s[k] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            if k >= s.len() {
                return Err(format!("missing '}}' in ${{{name}"));
            }
            let modifier: String = s[j..k].iter().collect();
            let value = lookup(&name);
            let word = |w: &str| process_word(w, lookup, escape);
            let out = apply_modifier(&name, value, &modifier, &word)?;
            Ok((out, k + 1))
        }
        Some(&c) if c.is_ascii_alphabetic() || c == '_' => {
            let mut j = 1;
            while j < s.len() && name_char(s[j]) {
                j += 1;
            }
            let name: String = s[1..j].iter().collect();
            Ok((lookup(&name).unwrap_or_default(), j))
        }
        _ => Ok(("$".into(), 1)),
    }
}

fn apply_modifier(
    name: &str,
    value: Option<String>,
    modifier: &str,
    word: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let set = value.is_some();
    let nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let v = value.clone().unwrap_or_default();
    if modifier.is_empty() {
        return Ok(v);
    }
    let (op, arg) = if let Some(a) = modifier.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = modifier.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = modifier.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = modifier.strip_prefix("##") {
        ("##", a)
    } else if let Some(a) = modifier.strip_prefix("%%") {
        ("%%", a)
    } else if let Some(a) = modifier.strip_prefix("//") {
        ("//", a)
    } else {
        let (o, a) = modifier.split_at(modifier.chars().next().map_or(0, char::len_utf8));
        (o, a)
    };
    match op {
        ":-" => {
            if nonempty {
                Ok(v)
            } else {
                word(arg)
            }
        }
        "-" => {
            if set {
                Ok(v)
            } else {
                word(arg)
            }
        }
        ":+" => {
            if nonempty {
                word(arg)
            } else {
                Ok(String::new())
            }
        }
        "+" => {
            if set {
                word(arg)
            } else {
                Ok(String::new())
            }
        }
        ":?" | "?" => {
            let ok = if op == ":?" { nonempty } else { set };
            if ok {
                Ok(v)
            } else {
                let msg = word(arg)?;
                Err(if msg.is_empty() {
                    format!("{name}: is not allowed to be unset")
                } else {
                    format!("{name}: {msg}")
                })
            }
        }
        "#" | "##" => {
            let pat = word(arg)?;
            let ends: Vec<usize> = char_boundaries(&v);
            let pick = if op == "#" {
                ends.iter().find(|&&e| glob(&pat, &v[..e]))
            } else {
                ends.iter().rev().find(|&&e| glob(&pat, &v[..e]))
            };
            Ok(pick.map_or(v.clone(), |&e| v[e..].to_string()))
        }
        "%" | "%%" => {
            let pat = word(arg)?;
            let starts: Vec<usize> = char_boundaries(&v);
            let pick = if op == "%" {
                starts.iter().rev().find(|&&s| glob(&pat, &v[s..]))
            } else {
                starts.iter().find(|&&s| glob(&pat, &v[s..]))
            };
            Ok(pick.map_or(v.clone(), |&s| v[..s].to_string()))
        }
        "/" | "//" => {
            let (pat, rep) = match arg.split_once('/') {
                Some((p, r)) => (word(p)?, word(r)?),
                None => (word(arg)?, String::new()),
            };
            if pat.is_empty() {
                return Ok(v);
            }
            Ok(if op == "//" {
                v.replace(&pat, &rep)
            } else {
                v.replacen(&pat, &rep, 1)
            })
        }
        _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
    }
}

/// Every char boundary of `s`, 0 and `s.len()` included.
fn char_boundaries(s: &str) -> Vec<usize> {
    let mut v: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    v.push(s.len());
    v
}

/// Shell pattern matching of the whole of `s`: `*`, `?`, `[...]`, `\x`.
pub(crate) fn glob(pat: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|k| m(&p[1..], &s[k..])),
            Some('?') => !s.is_empty() && m(&p[1..], &s[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(1).position(|&c| c == ']') else {
                    return !s.is_empty() && s[0] == '[' && m(&p[1..], &s[1..]);
                };
                let set = &p[1..close + 1];
                let (neg, set) = match set.first() {
                    Some('!') | Some('^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let Some(&c) = s.first() else { return false };
                let mut hit = false;
                let mut k = 0;
                while k < set.len() {
                    if k + 2 < set.len() && set[k + 1] == '-' {
                        hit |= set[k] <= c && c <= set[k + 2];
                        k += 3;
                    } else {
                        hit |= set[k] == c;
                        k += 1;
                    }
                }
                hit != neg && m(&p[close + 2..], &s[1..])
            }
            Some('\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && m(&p[2..], &s[1..]),
            Some(&c) => !s.is_empty() && s[0] == c && m(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let s: Vec<char> = s.chars().collect();
    m(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "V" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "PATHV" => Some("/usr/local/bin/tool.tar.gz".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> String {
        process_word(s, &vars, '\\').unwrap()
    }

    #[test]
    fn substitution_table() {
        for (input, want) in [
            ("$V", "value"),
            ("${V}", "value"),
            ("a${V}b", "avalueb"),
            ("$NOPE", ""),
            ("${NOPE:-dflt}", "dflt"),
            ("${EMPTY:-dflt}", "dflt"),
            ("${EMPTY-dflt}", ""),
            ("${NOPE-dflt}", "dflt"),
            ("${V:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${NOPE+alt}", ""),
            ("${PATHV#*/}", "usr/local/bin/tool.tar.gz"),
            ("${PATHV##*/}", "tool.tar.gz"),
            ("${PATHV%.*}", "/usr/local/bin/tool.tar"),
            ("${PATHV%%.*}", "/usr/local/bin/tool"),
            ("${V/a/A}", "vAlue"),
            ("${PATHV//o/0}", "/usr/l0cal/bin/t00l.tar.gz"),
            ("${NOPE:-${V}}", "value"),
            ("'$V'", "$V"),
            ("\"$V x\"", "value x"),
            ("\\$V", "$V"),
            ("cost $5", "cost $5"),
            ("\"a\\\"b\"", "a\"b"),
        ] {
            assert_eq!(w(input), want, "{input}");
        }
        assert_eq!(
            process_word("${NOPE:?must be set}", &vars, '\\').unwrap_err(),
            "NOPE: must be set"
        );
        assert_eq!(
            process_words("a \"b c\" 'd e'  $V", &vars, '\\').unwrap(),
            ["a", "b c", "d e", "value"]
        );
        assert!(process_word("\"open", &vars, '\\').is_err());
    }

    #[test]
    fn instructions_flags_forms_and_continuations() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n# escape=\\\n\nFROM --platform=linux/amd64 busybox AS base\n# a comment\nRUN echo a \\\n  # comment inside\n  && echo b\nCMD [\"sh\", \"-c\", \"echo hi\"]\ncopy --chown=1:1 --link a /b\nENTRYPOINT [not json\n",
        )
        .unwrap();
        assert_eq!(
            df.directives,
            [
                ("syntax".into(), "docker/dockerfile:1".into()),
                ("escape".into(), "\\".into())
            ]
        );
        let i = &df.instructions;
        assert_eq!(i.len(), 5);
        assert_eq!(i[0].keyword, "FROM");
        assert_eq!(i[0].line, 4);
        assert_eq!(
            i[0].flags,
            [("platform".into(), Some("linux/amd64".into()))]
        );
        assert_eq!(i[0].args, Args::Shell("busybox AS base".into()));
        assert_eq!(i[1].args, Args::Shell("echo a   && echo b".into()));
        assert_eq!(i[1].line, 6);
        assert_eq!(
            i[2].args,
            Args::Exec(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(i[3].keyword, "COPY");
        assert_eq!(
            i[3].flags,
            [("chown".into(), Some("1:1".into())), ("link".into(), None)]
        );
        assert_eq!(i[4].args, Args::Shell("[not json".into()));
    }

    #[test]
    fn backtick_escape_and_errors() {
        let df = parse("# escape=`\nRUN dir c:\\ `\n  && echo x\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.instructions[0].args,
            Args::Shell("dir c:\\   && echo x".into())
        );
        assert_eq!(
            parse("FROM busybox\n\nBOGUS x\n").unwrap_err().to_string(),
            "Dockerfile:3: unknown instruction: BOGUS"
        );
        assert!(parse("# escape=x\nFROM a\n").is_err());
        // A directive after an instruction is a comment.
        let df = parse("FROM a\n# escape=`\n").unwrap();
        assert!(df.directives.is_empty());
    }

    #[test]
    fn heredocs() {
        let df = parse(
            "FROM a\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-\"A\" <<B /dst/\n\tfirst $X\n\tA\nsecond\nB\nRUN echo done\n",
        )
        .unwrap();
        let i = &df.instructions;
        assert_eq!(i.len(), 4);
        assert_eq!(i[1].heredocs[0].content, "echo one\necho two\n");
        assert_eq!(i[2].heredocs.len(), 2);
        assert_eq!(i[2].heredocs[0].name, "A");
        assert_eq!(i[2].heredocs[0].content, "first $X\n");
        assert!(i[2].heredocs[0].quoted);
        assert_eq!(i[2].heredocs[1].content, "second\n");
        assert!(!i[2].heredocs[1].quoted);
        assert_eq!(i[3].line, 11);
        assert_eq!(
            parse("FROM a\nRUN <<EOF\necho\n").unwrap_err().to_string(),
            "Dockerfile:2: unterminated heredoc EOF"
        );
    }

    #[test]
    fn globs() {
        assert!(glob("*.gz", "a.tar.gz"));
        assert!(glob("a?c", "abc"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[!a-c]x", "bx"));
        assert!(!glob("*.gz", "a.tar"));
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference (after the global ARGs were substituted).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// One `FROM … [AS name]` and the instructions under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Lower-cased, as BuildKit compares stage names.
    pub name: Option<String>,
    pub base: Base,
    pub platform: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
    /// Stages this one needs besides its base (`COPY --from`,
    /// `RUN --mount=…,from=`), by index.
    pub deps: Vec<usize>,
}

/// The build's platform ARGs, predefined in the global scope (Docker's
/// automatic `TARGETPLATFORM`, `BUILDPLATFORM`, … for the host).
pub fn platform_args(os: &str, arch: &str, variant: &str) -> Vec<(String, String)> {
    let platform = if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    };
    let mut v = Vec::new();
    for side in ["TARGET", "BUILD"] {
        v.push((format!("{side}PLATFORM"), platform.clone()));
        v.push((format!("{side}OS"), os.to_string()));
        v.push((format!("{side}ARCH"), arch.to_string()));
        v.push((format!("{side}VARIANT"), variant.to_string()));
    }
    v
}

/// Splits a Dockerfile into stages. `build_args` are `--build-arg`s; the
/// ARGs before the first FROM (and the platform ARGs) are what FROM lines
/// may use.
pub fn stages(
    df: &Dockerfile,
    build_args: &std::collections::BTreeMap<String, String>,
    predefined: &[(String, String)],
) -> Result<Vec<Stage>, ParseError> {
    let err = |line: usize, message: String| ParseError { line, message };
    let mut meta: std::collections::BTreeMap<String, String> = predefined.iter().cloned().collect();
    let mut out: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            let Args::Shell(text) = &ins.args else {
                return Err(err(
                    ins.line,
                    "FROM requires either one or three arguments".into(),
                ));
            };
            let lookup = |n: &str| meta.get(n).cloned();
            let words = process_words(text, &lookup, df.escape).map_err(|m| err(ins.line, m))?;
            let (image, name) = match words.as_slice() {
                [image] => (image.clone(), None),
                [image, kw, name] if kw.eq_ignore_ascii_case("as") => {
                    (image.clone(), Some(name.to_ascii_lowercase()))
                }
                _ => {
                    return Err(err(
                        ins.line,
                        "FROM requires either one or three arguments".into(),
                    ))
                }
            };
            if let Some(n) = &name {
                if out.iter().any(|s| s.name.as_deref() == Some(n)) {
                    return Err(err(ins.line, format!("duplicate stage name {n:?}")));
                }
            }
            if image.is_empty() {
                return Err(err(ins.line, "base name (${…}) should not be blank".into()));
            }
            let lowered = image.to_ascii_lowercase();
            let base = if lowered == "scratch" {
                Base::Scratch
            } else if let Some(i) = out.iter().position(|s| s.name.as_deref() == Some(&lowered)) {
                Base::Stage(i)
            } else {
                Base::Image(image)
            };
            let platform = ins
                .flags
                .iter()
                .find(|(k, _)| k == "platform")
                .and_then(|(_, v)| v.clone())
                .map(|p| process_word(&p, &lookup, df.escape))
                .transpose()
                .map_err(|m| err(ins.line, m))?;
            out.push(Stage {
                name,
                base,
                platform,
                line: ins.line,
                instructions: Vec::new(),
                deps: Vec::new(),
            });
            continue;
        }
        match out.last_mut() {
            None if ins.keyword == "ARG" => {
                global_arg(&mut meta, ins, build_args, df.escape)?;
            }
            None => {
                return Err(err(
                    ins.line,
                    format!("{} instruction before the first FROM", ins.keyword),
                ))
            }
            Some(stage) => stage.instructions.push(ins.clone()),
        }
    }
    if out.is_empty() {
        return Err(err(1, "the Dockerfile has no FROM".into()));
    }
    // Dependencies: COPY/ADD --from and RUN --mount=…,from= naming a stage
    // (by name or index) that comes earlier.
    for i in 0..out.len() {
        let mut deps = Vec::new();
        for ins in &out[i].instructions {
            let mut froms: Vec<String> = Vec::new();
            for (k, v) in &ins.flags {
                match (k.as_str(), v) {
                    ("from", Some(v)) => froms.push(v.clone()),
                    ("mount", Some(v)) => froms.extend(
                        v.split(',')
                            .filter_map(|kv| kv.strip_prefix("from="))
                            .map(str::to_string),
                    ),
                    _ => {}
                }
            }
            for f in froms {
                let lf = f.to_ascii_lowercase();
                let hit = out[..i]
                    .iter()
                    .position(|s| s.name.as_deref() == Some(&lf))
                    .or_else(|| f.parse::<usize>().ok().filter(|&n| n < i));
                if let Some(d) = hit {
                    if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
            }
        }
        out[i].deps = deps;
    }
    Ok(out)
}

/// A global ARG (before the first FROM): NAME[=default], the build arg
/// winning.
fn global_arg(
    meta: &mut std::collections::BTreeMap<String, String>,
    ins: &Instruction,
    build_args: &std::collections::BTreeMap<String, String>,
    escape: char,
) -> Result<(), ParseError> {
    let Args::Shell(text) = &ins.args else {
        return Ok(());
    };
    let words = process_words(text, &|n| meta.get(n).cloned(), escape).map_err(|m| ParseError {
        line: ins.line,
        message: m,
    })?;
    for w in words {
        let (k, default) = match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w.clone(), None),
        };
        match build_args.get(&k).cloned().or(default) {
            Some(v) => {
                meta.insert(k, v);
            }
            None => {
                meta.entry(k).or_default();
            }
        }
    }
    Ok(())
}

/// The global scope a stage's `ARG NAME` (without a value) inherits from:
/// the predefined ARGs and those declared before the first FROM.
pub fn global_args(
    df: &Dockerfile,
    build_args: &std::collections::BTreeMap<String, String>,
    predefined: &[(String, String)],
) -> Result<std::collections::BTreeMap<String, String>, ParseError> {
    let mut meta: std::collections::BTreeMap<String, String> = predefined.iter().cloned().collect();
    for ins in &df.instructions {
        if ins.keyword != "ARG" {
            break;
        }
        global_arg(&mut meta, ins, build_args, df.escape)?;
    }
    Ok(meta)
}

/// The stages a build of `target` (a stage name, or the last stage) needs,
/// each after those it needs.
pub fn needed(stages: &[Stage], target: Option<&str>) -> Result<Vec<usize>, String> {
    let last = stages.len().checked_sub(1).ok_or("no stages")?;
    let t = match target {
        None => last,
        Some(name) => {
            let n = name.to_ascii_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&n))
                .ok_or_else(|| format!("target stage \"{name}\" could not be found"))?
        }
    };
    let mut order = Vec::new();
    let mut seen = vec![false; stages.len()];
    fn visit(i: usize, stages: &[Stage], seen: &mut Vec<bool>, order: &mut Vec<usize>) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        if let Base::Stage(b) = stages[i].base {
            visit(b, stages, seen, order);
        }
        for &d in &stages[i].deps {
            visit(d, stages, seen, order);
        }
        order.push(i);
    }
    visit(t, stages, &mut seen, &mut order);
    Ok(order)
}

#[cfg(test)]
mod stage_tests {
    use super::*;
    use std::collections::BTreeMap;

    const DF: &str = "ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG:-latest} AS Build\nRUN make\nFROM scratch AS assets\nCOPY x /x\nFROM build AS test\nRUN --mount=type=bind,from=assets,target=/a true\nFROM busybox\nCOPY --from=build /out /out\nCOPY --from=1 /x /x\n";

    #[test]
    fn stages_bases_and_global_args() {
        let df = parse(DF).unwrap();
        let mut args = BTreeMap::new();
        args.insert("TAG".to_string(), "1.36".to_string());
        let s = stages(&df, &args, &platform_args("linux", "amd64", "")).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name.as_deref(), Some("build"));
        assert_eq!(s[0].base, Base::Image("busybox:1.36".into()));
        assert_eq!(s[1].base, Base::Scratch);
        assert_eq!(s[2].base, Base::Stage(0));
        assert_eq!(s[2].deps, [1]);
        assert_eq!(s[3].deps, [0, 1]);
        let s = stages(&df, &BTreeMap::new(), &[]).unwrap();
        assert_eq!(s[0].base, Base::Image("busybox:latest".into()));
    }

    #[test]
    fn only_what_the_target_needs() {
        let df = parse(DF).unwrap();
        let s = stages(&df, &BTreeMap::new(), &[]).unwrap();
        assert_eq!(needed(&s, None).unwrap(), [0, 1, 3]);
        assert_eq!(needed(&s, Some("TEST")).unwrap(), [0, 1, 2]);
        assert_eq!(needed(&s, Some("assets")).unwrap(), [1]);
        assert_eq!(
            needed(&s, Some("nope")).unwrap_err(),
            "target stage \"nope\" could not be found"
        );
    }

    #[test]
    fn stage_errors() {
        let e = |t: &str| {
            stages(&parse(t).unwrap(), &BTreeMap::new(), &[])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("RUN x\nFROM a\n"),
            "Dockerfile:1: RUN instruction before the first FROM"
        );
        assert_eq!(
            e("FROM a AS x\nFROM b AS X\n"),
            "Dockerfile:2: duplicate stage name \"x\""
        );
        assert_eq!(
            e("FROM a b\n"),
            "Dockerfile:1: FROM requires either one or three arguments"
        );
        assert_eq!(e("ARG X\n"), "Dockerfile:1: the Dockerfile has no FROM");
        let s = stages(
            &parse("FROM --platform=$BUILDPLATFORM busybox\n").unwrap(),
            &BTreeMap::new(),
            &platform_args("linux", "arm64", "v8"),
        )
        .unwrap();
        assert_eq!(s[0].platform.as_deref(), Some("linux/arm64/v8"));
    }
}
