//! The subset of Go's `text/template` that docker users type after
//! `--format`, executed over a `serde_json::Value`.
//!
//! Supported: text; `{{pipeline}}` with `|`; fields `.A.B` (object keys: an
//! exact match first, then a case-insensitive one, so `{{.ID}}` finds "Id"
//! the way docker's typed structs do); `.`, `$`, `$x := ...`, `$x = ...`,
//! `(pipeline).Field`; string, raw string, char, number, bool and nil
//! literals; `if`/`else if`/`else`, `range` (arrays, objects in key order,
//! integers; `$i, $e :=`; `else`; `break`/`continue`), `with`/`else with`;
//! `{{- ` and ` -}}` trimming; `{{/* comments */}}`. Functions: Go's `and or
//! not len index print printf println eq ne lt le gt ge`, docker's `json
//! split join title lower upper pad truncate`, and docker's `.Label "key"`
//! method of `docker ps`.
//!
//! Values print as Go prints `interface{}` values decoded from JSON: strings
//! raw, `true`/`false`, numbers plain (floats as `%v`), arrays as `[a b]`,
//! objects as `map[k:v]` with sorted keys, a missing key or null as
//! `<no value>`. Errors read like Go's: `template: :1:2: executing "" at
//! <.Foo.Bar>: nil pointer evaluating interface {}.Bar`.
//!
//! [`Format`] adds docker's `--format` conventions on top: `table`, `json`,
//! un-escaping `\t` and `\n`, and table headers derived from field names.

use std::fmt::{self, Display};

use serde_json::{Map, Number, Value};

use super::human::{format_float_g, go_quote, go_quote_rune};
use super::table;

// ---------------------------------------------------------------------------
// Public API

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    root: Vec<Node>,
}

impl Template {
    /// Parse a template exactly as written (no docker un-escaping; this is
    /// what `docker inspect --format` does).
    pub fn parse(src: &str) -> Result<Template, String> {
        let items = Lexer::new(src)
            .run()
            .map_err(|(pos, msg)| parse_error(src, pos, &msg))?;
        let mut parser = Parser {
            src,
            items,
            i: 0,
            last_pos: 0,
            vars: vec!["$".to_string()],
            range_depth: 0,
            depth: 0,
        };
        let root = parser.parse_root()?;
        Ok(Template {
            src: src.to_string(),
            root,
        })
    }

    /// Execute the template with `data` as `.` and `$`.
    pub fn execute(&self, data: &Value) -> Result<String, String> {
        let mut exec = Exec::new(&self.src, data, None);
        exec.walk_list(&Val::V(data.clone()), &self.root)?;
        Ok(exec.out)
    }

    /// Execute the template as `docker inspect --format` does over a
    /// container's or an image's JSON: a field that the object does not
    /// have is an error, `map has no entry for key "Bogus"` (docker falls
    /// back to the raw JSON with Go's `missingkey=error` when the template
    /// does not fit its typed struct). A key missing from a map of data
    /// (`Labels`, `Networks`, ...) or a struct field docker leaves out when
    /// empty (`HostConfig.Init`, `Config.StopSignal`, ...) is no error, as
    /// with docker's typed structs.
    pub fn execute_inspect(&self, data: &Value) -> Result<String, String> {
        let mut exec = Exec::new(&self.src, data, None);
        exec.strict = true;
        exec.walk_list(&Val::V(data.clone()), &self.root)?;
        Ok(exec.out)
    }

    /// Execute the template over one row of a list (`ps`, `images`,
    /// `volume ls`): docker's rows are typed, and a `null` there is a nil
    /// pointer, printed `<nil>`.
    pub fn execute_row(&self, data: &Value) -> Result<String, String> {
        let mut exec = Exec::new(&self.src, data, None);
        exec.nil_pointers = true;
        exec.walk_list(&Val::V(data.clone()), &self.root)?;
        Ok(exec.out)
    }

    /// Execute the template in "header mode", as docker renders a table's
    /// header: every field evaluates to its header text (looked up in
    /// `names` by dotted path, then by last segment, exact then ignoring
    /// case; otherwise the last segment split at camel case and upper-cased,
    /// `CreatedAt` -> `CREATED AT`), and `json split join title lower upper
    /// pad truncate` return their first argument unchanged. On an error the
    /// text produced so far is returned, as docker does.
    pub fn header(&self, names: &[(&str, &str)]) -> String {
        let ctx = Value::String(String::new());
        let mut exec = Exec::new(&self.src, &ctx, Some(names));
        // Docker ignores header errors and prints what was rendered so far.
        let _ = exec.walk_list(&Val::V(ctx.clone()), &self.root);
        exec.out
    }
}

/// A docker `--format` value.
#[derive(Debug, Clone)]
pub struct Format {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `table` alone (or an empty format): the command's default table.
    Table(Option<Template>),
    /// `json`: `{{json .}}` per item.
    Json(Template),
    /// Any other template.
    Raw(Template),
}

impl Format {
    /// Parse a `--format` value the way the docker CLI's list commands do:
    /// `""` and `"table"` mean the command's default table (see
    /// [`Format::with_default`]); `"json"` is `{{json .}}`; `"table ..."`
    /// is a table whose rows use the rest; anything else is a template. The
    /// template has surrounding spaces trimmed and the two-character
    /// sequences `\t` and `\n` turned into a tab and a newline.
    pub fn parse(s: &str) -> Result<Format, String> {
        let kind = match s {
            "" | "table" => Kind::Table(None),
            "json" => Kind::Json(Template::parse("{{json .}}")?),
            _ => match s.strip_prefix("table") {
                Some(rest) => {
                    Kind::Table(Some(Template::parse(&unescape(rest.trim_matches(' ')))?))
                }
                None => Kind::Raw(Template::parse(&unescape(s.trim_matches(' ')))?),
            },
        };
        Ok(Format { kind })
    }

    /// Give a bare `table` (or empty) format the command's default template,
    /// written like a user's (`"table {{.ID}}\t{{.Image}}"` or without the
    /// `table` prefix). Other formats are returned unchanged.
    pub fn with_default(self, default: &str) -> Result<Format, String> {
        match self.kind {
            Kind::Table(None) => {
                let body = default.strip_prefix("table").unwrap_or(default);
                Ok(Format {
                    kind: Kind::Table(Some(Template::parse(&unescape(body.trim_matches(' ')))?)),
                })
            }
            kind => Ok(Format { kind }),
        }
    }

    /// True for `table` formats: a header line and tab-aligned columns.
    pub fn is_table(&self) -> bool {
        matches!(self.kind, Kind::Table(_))
    }

    /// True for `--format json`.
    pub fn is_json(&self) -> bool {
        matches!(self.kind, Kind::Json(_))
    }

    /// True when this is a bare `table` still needing [`Format::with_default`].
    pub fn needs_default(&self) -> bool {
        matches!(self.kind, Kind::Table(None))
    }

    /// Render one item (one row, without the trailing newline). Table rows
    /// still contain their tabs; [`Format::render_table`] aligns them.
    pub fn render(&self, v: &Value) -> Result<String, String> {
        self.template()?.execute(v)
    }

    /// Render one row of a list (see [`Template::execute_row`]).
    pub fn render_row(&self, v: &Value) -> Result<String, String> {
        self.template()?.execute_row(v)
    }

    /// A whole listing as [`Format::render_table`], each row rendered as
    /// [`Format::render_row`] does.
    pub fn render_rows(&self, rows: &[Value], names: &[(&str, &str)]) -> Result<String, String> {
        self.render_listing(rows, names, true)
    }

    /// Render one object of `inspect` (see [`Template::execute_inspect`]).
    pub fn render_inspect(&self, v: &Value) -> Result<String, String> {
        self.template()?.execute_inspect(v)
    }

    /// The header line of a table format (no trailing newline); `None` for
    /// other formats. `names` maps field names to header texts, e.g.
    /// `("ID", "CONTAINER ID")`.
    pub fn header(&self, names: &[(&str, &str)]) -> Option<String> {
        match &self.kind {
            Kind::Table(Some(t)) => Some(t.header(names)),
            _ => None,
        }
    }

    /// Render a whole listing. Tables: header line, then one line per row,
    /// aligned like the docker CLI. Other formats: one rendered item per
    /// line. Every line ends in `\n`.
    pub fn render_table(&self, rows: &[Value], names: &[(&str, &str)]) -> Result<String, String> {
        self.render_listing(rows, names, false)
    }

    fn render_listing(
        &self,
        rows: &[Value],
        names: &[(&str, &str)],
        typed_rows: bool,
    ) -> Result<String, String> {
        let template = self.template()?;
        let mut text = String::new();
        if let Kind::Table(_) = self.kind {
            text.push_str(&template.header(names));
            text.push('\n');
        }
        for row in rows {
            let line = if typed_rows {
                template.execute_row(row)?
            } else {
                template.execute(row)?
            };
            text.push_str(&line);
            text.push('\n');
        }
        if self.is_table() {
            Ok(table::tabwrite(&text))
        } else {
            Ok(text)
        }
    }

    fn template(&self) -> Result<&Template, String> {
        match &self.kind {
            Kind::Table(Some(t)) | Kind::Json(t) | Kind::Raw(t) => Ok(t),
            Kind::Table(None) => {
                Err("table format has no template: call Format::with_default".to_string())
            }
        }
    }
}

/// The docker CLI's `strings.NewReplacer(`\t`, "\t", `\n`, "\n")`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('t') => {
                    chars.next();
                    out.push('\t');
                    continue;
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = src.get(..pos).unwrap_or(src);
    let line = 1 + before.matches('\n').count();
    let col = match before.rfind('\n') {
        Some(nl) => pos - nl - 1,
        None => pos,
    };
    (line, col)
}

fn parse_error(src: &str, pos: usize, msg: &str) -> String {
    format!("template: :{}: {msg}", line_col(src, pos).0)
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Break,
    Continue,
    Else,
    End,
    If,
    Range,
    With,
    Define,
    Template,
    Block,
}

impl Kw {
    fn from_word(word: &str) -> Option<Kw> {
        Some(match word {
            "break" => Kw::Break,
            "continue" => Kw::Continue,
            "else" => Kw::Else,
            "end" => Kw::End,
            "if" => Kw::If,
            "range" => Kw::Range,
            "with" => Kw::With,
            "define" => Kw::Define,
            "template" => Kw::Template,
            "block" => Kw::Block,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    LParen,
    RParen,
    Pipe,
    Comma,
    Declare,
    Assign,
    /// Another printable ASCII character inside an action.
    Char,
    Str(String),
    CharConst(i64),
    Number,
    Bool(bool),
    Nil,
    Dot,
    Field(String),
    Variable(String),
    Ident(String),
    Kw(Kw),
    Eof,
}

#[derive(Debug, Clone)]
struct Item {
    tok: Tok,
    pos: usize,
    raw: String,
}

impl Display for Item {
    /// Go's `item.String()`, used in "unexpected ..." messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tok {
            Tok::Eof => f.write_str("EOF"),
            Tok::Kw(_) => write!(f, "<{}>", self.raw),
            _ if self.raw.chars().count() > 10 => {
                let head: String = self.raw.chars().take(10).collect();
                write!(f, "{}...", go_quote(&head))
            }
            _ => f.write_str(&go_quote(&self.raw)),
        }
    }
}

type LexResult<T> = Result<T, (usize, String)>;

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    items: Vec<Item>,
    paren_depth: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            items: Vec::new(),
            paren_depth: 0,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn emit(&mut self, tok: Tok, start: usize) {
        let raw = self.src.get(start..self.pos).unwrap_or("").to_string();
        self.items.push(Item {
            tok,
            pos: start,
            raw,
        });
    }

    fn run(mut self) -> LexResult<Vec<Item>> {
        loop {
            let start = self.pos;
            let Some(offset) = self.rest().find("{{") else {
                if self.pos < self.src.len() {
                    self.pos = self.src.len();
                    let text = self.src.get(start..).unwrap_or("").to_string();
                    self.emit(Tok::Text(text), start);
                }
                let end = self.src.len();
                self.items.push(Item {
                    tok: Tok::Eof,
                    pos: end,
                    raw: String::new(),
                });
                return Ok(self.items);
            };
            let delim = start + offset;
            let after = delim + 2;
            let after_delim = self.src.get(after..).unwrap_or("");
            let trim_left = has_left_trim_marker(after_delim);
            let mut text = self.src.get(start..delim).unwrap_or("");
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.items.push(Item {
                    tok: Tok::Text(text.to_string()),
                    pos: start,
                    raw: text.to_string(),
                });
            }
            let marker = if trim_left { 2 } else { 0 };
            self.pos = after + marker;
            if self.rest().starts_with("/*") {
                self.comment()?;
                continue;
            }
            self.pos = after;
            self.emit(Tok::Left, delim);
            self.pos = after + marker;
            self.inside_action()?;
        }
    }

    fn comment(&mut self) -> LexResult<()> {
        let start = self.pos;
        let Some(end) = self.rest().get(2..).and_then(|r| r.find("*/")) else {
            return Err((start, "unclosed comment".to_string()));
        };
        self.pos += 2 + end + 2;
        match self.at_right_delim() {
            Some(trim) => {
                self.pos += if trim { 4 } else { 2 };
                if trim {
                    self.skip_leading_space();
                }
                Ok(())
            }
            None => Err((start, "comment ends before closing delimiter".to_string())),
        }
    }

    /// `Some(trim)` when at `}}` or ` -}}`.
    fn at_right_delim(&self) -> Option<bool> {
        let rest = self.rest();
        let mut chars = rest.chars();
        if let (Some(c0), Some('-')) = (chars.next(), chars.next()) {
            if is_space(c0)
                && rest
                    .get(c0.len_utf8() + 1..)
                    .is_some_and(|r| r.starts_with("}}"))
            {
                return Some(true);
            }
        }
        rest.starts_with("}}").then_some(false)
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_space).len();
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with("}}"),
        }
    }

    fn bad_char(&self) -> (usize, String) {
        let c = self.peek().unwrap_or('\0');
        (
            self.pos,
            format!(
                "bad character U+{:04X} {}",
                c as u32,
                go_quote_rune(c as i64)
            ),
        )
    }

    fn inside_action(&mut self) -> LexResult<()> {
        loop {
            if let Some(trim) = self.at_right_delim() {
                if self.paren_depth > 0 {
                    return Err((self.pos, "unclosed left paren".to_string()));
                }
                let start = self.pos + if trim { 2 } else { 0 };
                self.pos = start + 2;
                self.emit(Tok::Right, start);
                if trim {
                    self.skip_leading_space();
                }
                return Ok(());
            }
            let start = self.pos;
            let Some(c) = self.bump() else {
                return Err((start, "unclosed action".to_string()));
            };
            match c {
                c if is_space(c) => self.space(start),
                '=' => self.emit(Tok::Assign, start),
                ':' => {
                    if self.bump() != Some('=') {
                        return Err((start, "expected :=".to_string()));
                    }
                    self.emit(Tok::Declare, start);
                }
                '|' => self.emit(Tok::Pipe, start),
                ',' => self.emit(Tok::Comma, start),
                '"' => self.quote(start)?,
                '`' => self.raw_quote(start)?,
                '\'' => self.char_const(start)?,
                '$' => self.field_or_variable(start, true)?,
                '.' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                    self.field_or_variable(start, false)?
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos = start;
                    self.number(start)?;
                }
                c if is_alnum(c) => {
                    self.pos = start;
                    self.identifier(start)?;
                }
                '(' => {
                    self.paren_depth += 1;
                    self.emit(Tok::LParen, start);
                }
                ')' => {
                    if self.paren_depth == 0 {
                        return Err((start, "unexpected right paren".to_string()));
                    }
                    self.paren_depth -= 1;
                    self.emit(Tok::RParen, start);
                }
                c if c.is_ascii_graphic() => self.emit(Tok::Char, start),
                c => {
                    return Err((
                        start,
                        format!("unrecognized character in action: U+{:04X}", c as u32),
                    ));
                }
            }
        }
    }

    fn space(&mut self, start: usize) {
        let mut count = 1;
        while self.peek().is_some_and(is_space) {
            self.bump();
            count += 1;
        }
        // A space that belongs to a " -}}" trim marker is not ours.
        let before = self.pos - 1;
        let marker_follows = self.rest().starts_with("-}}")
            && self
                .src
                .get(before..self.pos)
                .is_some_and(|s| s.chars().all(is_space));
        if marker_follows {
            self.pos = before;
            if count == 1 {
                return;
            }
        }
        self.emit(Tok::Space, start);
    }

    fn quote(&mut self, start: usize) -> LexResult<()> {
        loop {
            match self.bump() {
                Some('\\') => match self.bump() {
                    Some(c) if c != '\n' => {}
                    _ => return Err((start, "unterminated quoted string".to_string())),
                },
                None | Some('\n') => return Err((start, "unterminated quoted string".to_string())),
                Some('"') => break,
                Some(_) => {}
            }
        }
        let raw = self.src.get(start + 1..self.pos - 1).unwrap_or("");
        let value = unquote(raw, '"').ok_or((start, "invalid syntax".to_string()))?;
        self.emit(Tok::Str(value), start);
        Ok(())
    }

    fn raw_quote(&mut self, start: usize) -> LexResult<()> {
        loop {
            match self.bump() {
                None => return Err((start, "unterminated raw quoted string".to_string())),
                Some('`') => break,
                Some(_) => {}
            }
        }
        let raw = self.src.get(start + 1..self.pos - 1).unwrap_or("");
        self.emit(Tok::Str(raw.replace('\r', "")), start);
        Ok(())
    }

    fn char_const(&mut self, start: usize) -> LexResult<()> {
        loop {
            match self.bump() {
                Some('\\') => match self.bump() {
                    Some(c) if c != '\n' => {}
                    _ => return Err((start, "unterminated character constant".to_string())),
                },
                None | Some('\n') => {
                    return Err((start, "unterminated character constant".to_string()))
                }
                Some('\'') => break,
                Some(_) => {}
            }
        }
        let raw = self.src.get(start + 1..self.pos - 1).unwrap_or("");
        let value = unquote(raw, '\'').filter(|s| s.chars().count() == 1);
        let Some(c) = value.and_then(|s| s.chars().next()) else {
            let text = self.src.get(start..self.pos).unwrap_or("");
            return Err((start, format!("malformed character constant: {text}")));
        };
        self.emit(Tok::CharConst(i64::from(u32::from(c))), start);
        Ok(())
    }

    fn field_or_variable(&mut self, start: usize, variable: bool) -> LexResult<()> {
        if self.at_terminator() {
            let tok = if variable {
                Tok::Variable("$".to_string())
            } else {
                Tok::Dot
            };
            self.emit(tok, start);
            return Ok(());
        }
        while self.peek().is_some_and(is_alnum) {
            self.bump();
        }
        if !self.at_terminator() {
            return Err(self.bad_char());
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        let tok = if variable {
            Tok::Variable(text.to_string())
        } else {
            Tok::Field(text.get(1..).unwrap_or("").to_string())
        };
        self.emit(tok, start);
        Ok(())
    }

    fn identifier(&mut self, start: usize) -> LexResult<()> {
        while self.peek().is_some_and(is_alnum) {
            self.bump();
        }
        if !self.at_terminator() {
            return Err(self.bad_char());
        }
        let word = self.src.get(start..self.pos).unwrap_or("");
        let tok = match word {
            "true" => Tok::Bool(true),
            "false" => Tok::Bool(false),
            "nil" => Tok::Nil,
            _ => match Kw::from_word(word) {
                Some(kw) => Tok::Kw(kw),
                None => Tok::Ident(word.to_string()),
            },
        };
        self.emit(tok, start);
        Ok(())
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.bump();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    /// Go's `scanNumber`.
    fn number(&mut self, start: usize) -> LexResult<()> {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if self.peek().is_some_and(is_alnum) {
            self.bump();
            let text = self.src.get(start..self.pos).unwrap_or("");
            return Err((start, format!("bad number syntax: {}", go_quote(text))));
        }
        self.emit(Tok::Number, start);
        Ok(())
    }
}

fn has_left_trim_marker(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('-') && chars.next().is_some_and(is_space)
}

/// Go's `strconv.Unquote` body for `"` strings and `'` characters.
fn unquote(raw: &str, quote: char) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let simple = match e {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            c if c == quote => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (radix, len) = match e {
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='7' => (8, 2),
            _ => return None,
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        for _ in 0..len {
            digits.push(chars.next()?);
        }
        let code = u32::from_str_radix(&digits, radix).ok()?;
        if e == 'x' || radix == 8 {
            // A byte; only ASCII bytes make sense in a Rust string.
            if code > 0x7f {
                return None;
            }
        }
        out.push(char::from_u32(code)?);
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Parse tree

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Control>),
    Range(Box<Control>),
    With(Box<Control>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Control {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    is_assign: bool,
    decl: Vec<String>,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Lit {
    Int(i64),
    Float(f64),
}

#[derive(Debug, Clone)]
enum Arg {
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Str {
        pos: usize,
        raw: String,
        val: String,
    },
    Num {
        pos: usize,
        raw: String,
        val: Lit,
    },
    Field {
        pos: usize,
        names: Vec<String>,
    },
    Var {
        pos: usize,
        name: String,
        fields: Vec<String>,
    },
    Ident {
        pos: usize,
        name: String,
    },
    Chain {
        pos: usize,
        base: Box<Arg>,
        fields: Vec<String>,
    },
    Pipe(Box<Pipe>),
}

impl Arg {
    fn pos(&self) -> usize {
        match self {
            Arg::Dot(pos) | Arg::Nil(pos) | Arg::Bool(pos, _) => *pos,
            Arg::Str { pos, .. }
            | Arg::Num { pos, .. }
            | Arg::Field { pos, .. }
            | Arg::Var { pos, .. }
            | Arg::Ident { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

impl Display for Arg {
    /// Go's `Node.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Str { raw, .. } | Arg::Num { raw, .. } => f.write_str(raw),
            Arg::Field { names, .. } => names.iter().try_for_each(|n| write!(f, ".{n}")),
            Arg::Var { name, fields, .. } => {
                f.write_str(name)?;
                fields.iter().try_for_each(|n| write!(f, ".{n}"))
            }
            Arg::Ident { name, .. } => f.write_str(name),
            Arg::Chain { base, fields, .. } => {
                match base.as_ref() {
                    Arg::Pipe(p) => write!(f, "({p})")?,
                    other => write!(f, "{other}")?,
                }
                fields.iter().try_for_each(|n| write!(f, ".{n}"))
            }
            Arg::Pipe(p) => write!(f, "{p}"),
        }
    }
}

impl Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match arg {
                Arg::Pipe(p) => write!(f, "({p})")?,
                other => write!(f, "{other}")?,
            }
        }
        Ok(())
    }
}

impl Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, cmd) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{cmd}")?;
        }
        Ok(())
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, list: &[Node]) -> fmt::Result {
    list.iter().try_for_each(|n| write!(f, "{n}"))
}

impl Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let control = |f: &mut fmt::Formatter<'_>, name: &str, c: &Control| {
            write!(f, "{{{{{name} {}}}}}", c.pipe)?;
            write_list(f, &c.list)?;
            if let Some(e) = &c.else_list {
                f.write_str("{{else}}")?;
                write_list(f, e)?;
            }
            f.write_str("{{end}}")
        };
        match self {
            Node::Text(t) => f.write_str(t),
            Node::Action(p) => write!(f, "{{{{{p}}}}}"),
            Node::If(c) => control(f, "if", c),
            Node::Range(c) => control(f, "range", c),
            Node::With(c) => control(f, "with", c),
            Node::Break => f.write_str("{{break}}"),
            Node::Continue => f.write_str("{{continue}}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Parser

enum Parsed {
    Node(Node),
    End,
    Else,
}

struct Parser<'a> {
    src: &'a str,
    items: Vec<Item>,
    i: usize,
    last_pos: usize,
    vars: Vec<String>,
    range_depth: usize,
    /// Control structures and parenthesised pipelines open around the
    /// current item (see [`MAX_DEPTH`]).
    depth: usize,
}

/// How deeply `if`/`range`/`with` blocks (an `else if` chain counts each
/// link) and parenthesised pipelines may nest. Go stops at 10,000
/// parentheses ("max expression depth exceeded") on a stack that grows to
/// 1 GiB; berth parses and executes on a fixed stack, so it stops at 100 of
/// either, far beyond any template a person writes.
const MAX_DEPTH: usize = 100;

type PResult<T> = Result<T, String>;

impl Parser<'_> {
    fn eof(&self) -> Item {
        Item {
            tok: Tok::Eof,
            pos: self.src.len(),
            raw: String::new(),
        }
    }

    fn next(&mut self) -> Item {
        let item = self
            .items
            .get(self.i)
            .cloned()
            .unwrap_or_else(|| self.eof());
        self.i += 1;
        self.last_pos = item.pos;
        item
    }

    fn backup(&mut self) {
        self.i = self.i.saturating_sub(1);
    }

    fn peek(&self) -> Item {
        self.items
            .get(self.i)
            .cloned()
            .unwrap_or_else(|| self.eof())
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.tok != Tok::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let item = self.next_non_space();
        self.backup();
        item
    }

    fn error<T>(&self, msg: impl Display) -> PResult<T> {
        Err(parse_error(self.src, self.last_pos, &msg.to_string()))
    }

    fn unexpected<T>(&self, item: &Item, context: &str) -> PResult<T> {
        self.error(format_args!("unexpected {item} in {context}"))
    }

    fn expect(&mut self, tok: Tok, context: &str) -> PResult<Item> {
        let item = self.next_non_space();
        if item.tok != tok {
            return self.unexpected(&item, context);
        }
        Ok(item)
    }

    fn parse_root(&mut self) -> PResult<Vec<Node>> {
        let mut list = Vec::new();
        while self.peek_non_space().tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                Parsed::End => return self.error("unexpected {{end}}"),
                Parsed::Else => return self.error("unexpected {{else}}"),
            }
        }
        Ok(list)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Parsed)> {
        let mut list = Vec::new();
        loop {
            if self.peek_non_space().tok == Tok::Eof {
                return self.error("unexpected EOF");
            }
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let item = self.next_non_space();
        match item.tok {
            Tok::Text(t) => Ok(Parsed::Node(Node::Text(t))),
            Tok::Left => self.action(),
            _ => self.unexpected(&item, "input"),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let item = self.next_non_space();
        match item.tok {
            Tok::Kw(Kw::Break | Kw::Continue) => {
                let is_break = item.tok == Tok::Kw(Kw::Break);
                let name = if is_break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                self.expect(Tok::Right, name)?;
                if self.range_depth == 0 {
                    return self.error(format_args!("{name} outside {{{{range}}}}"));
                }
                Ok(Parsed::Node(if is_break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Tok::Kw(Kw::Else) => {
                // "{{else if ...": leave the "if" for the enclosing control.
                if !matches!(self.peek_non_space().tok, Tok::Kw(Kw::If | Kw::With)) {
                    self.expect(Tok::Right, "else")?;
                }
                Ok(Parsed::Else)
            }
            Tok::Kw(Kw::End) => {
                self.expect(Tok::Right, "end")?;
                Ok(Parsed::End)
            }
            Tok::Kw(Kw::If) => Ok(Parsed::Node(Node::If(Box::new(self.control("if")?)))),
            Tok::Kw(Kw::Range) => Ok(Parsed::Node(Node::Range(Box::new(self.control("range")?)))),
            Tok::Kw(Kw::With) => Ok(Parsed::Node(Node::With(Box::new(self.control("with")?)))),
            Tok::Kw(kw @ (Kw::Define | Kw::Template | Kw::Block)) => {
                let name = format!("{kw:?}").to_lowercase();
                self.error(format_args!("{{{{{name}}}}} is not supported"))
            }
            _ => {
                self.backup();
                Ok(Parsed::Node(Node::Action(
                    self.pipeline("command", &Tok::Right)?,
                )))
            }
        }
    }

    /// Enters one more level of nesting, or refuses it.
    fn deeper(&mut self) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            return self.error("max expression depth exceeded");
        }
        self.depth += 1;
        Ok(())
    }

    fn control(&mut self, context: &str) -> PResult<Control> {
        self.deeper()?;
        let c = self.control_body(context);
        self.depth -= 1;
        c
    }

    fn control_body(&mut self, context: &str) -> PResult<Control> {
        let mark = self.vars.len();
        let pipe = self.pipeline(context, &Tok::Right)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match next {
            Parsed::Else => {
                let peek = self.peek_non_space().tok;
                if context == "if" && peek == Tok::Kw(Kw::If) {
                    self.next_non_space();
                    Some(vec![Node::If(Box::new(self.control("if")?))])
                } else if context == "with" && peek == Tok::Kw(Kw::With) {
                    self.next_non_space();
                    Some(vec![Node::With(Box::new(self.control("with")?))])
                } else {
                    let (list, next) = self.item_list()?;
                    if !matches!(next, Parsed::End) {
                        return self.error("expected end; found {{else}}");
                    }
                    Some(list)
                }
            }
            _ => None,
        };
        self.vars.truncate(mark);
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: &Tok) -> PResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations: "$x :=", "$x =", "$i, $e :=" (range only).
        loop {
            let save = self.i;
            let v = self.next_non_space();
            let Tok::Variable(name) = v.tok else {
                self.i = save;
                break;
            };
            let n = self.next_non_space();
            match n.tok {
                Tok::Declare | Tok::Assign => {
                    pipe.is_assign = n.tok == Tok::Assign;
                    self.vars.push(name.clone());
                    pipe.decl.push(name);
                    break;
                }
                Tok::Comma => {
                    self.vars.push(name.clone());
                    pipe.decl.push(name);
                    if context == "range" && pipe.decl.len() < 2 {
                        if matches!(
                            self.peek_non_space().tok,
                            Tok::Variable(_) | Tok::Right | Tok::RParen
                        ) {
                            continue;
                        }
                        return self.error("range can only initialize variables");
                    }
                    return self.error(format_args!("too many declarations in {context}"));
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        loop {
            let item = self.next_non_space();
            match &item.tok {
                t if t == end => {
                    if pipe.cmds.is_empty() {
                        return self.error(format_args!("missing value for {context}"));
                    }
                    for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                        if matches!(
                            c.args.first(),
                            Some(
                                Arg::Bool(..)
                                    | Arg::Dot(_)
                                    | Arg::Nil(_)
                                    | Arg::Num { .. }
                                    | Arg::Str { .. }
                            )
                        ) {
                            return self.error(format_args!(
                                "non executable command in pipeline stage {}",
                                i + 1
                            ));
                        }
                    }
                    return Ok(pipe);
                }
                Tok::Bool(_)
                | Tok::CharConst(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number
                | Tok::Nil
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&item, context),
            }
        }
    }

    fn command(&mut self) -> PResult<Cmd> {
        let mut cmd = Cmd { args: Vec::new() };
        loop {
            self.peek_non_space();
            if let Some(arg) = self.operand()? {
                cmd.args.push(arg);
            }
            let item = self.next();
            match item.tok {
                Tok::Space => continue,
                Tok::Right | Tok::RParen => self.backup(),
                Tok::Pipe => {}
                _ => return self.unexpected(&item, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.error("empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if !matches!(self.peek().tok, Tok::Field(_)) {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut more = Vec::new();
        while let Tok::Field(f) = self.peek().tok {
            self.next();
            more.push(f);
        }
        Ok(Some(match node {
            Arg::Field { mut names, .. } => {
                names.extend(more);
                Arg::Field {
                    pos: chain_pos,
                    names,
                }
            }
            Arg::Var {
                name, mut fields, ..
            } => {
                fields.extend(more);
                Arg::Var {
                    pos: chain_pos,
                    name,
                    fields,
                }
            }
            Arg::Bool(..) | Arg::Str { .. } | Arg::Num { .. } | Arg::Nil(_) | Arg::Dot(_) => {
                return self.error(format_args!(
                    "unexpected . after term {}",
                    go_quote(&node.to_string())
                ));
            }
            base => Arg::Chain {
                pos: chain_pos,
                base: Box::new(base),
                fields: more,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let item = self.next_non_space();
        let pos = item.pos;
        Ok(Some(match item.tok {
            Tok::Ident(name) => {
                if function(&name).is_none() {
                    return self.error(format_args!("function {} not defined", go_quote(&name)));
                }
                Arg::Ident { pos, name }
            }
            Tok::Dot => Arg::Dot(pos),
            Tok::Nil => Arg::Nil(pos),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return self.error(format_args!("undefined variable {}", go_quote(&name)));
                }
                Arg::Var {
                    pos,
                    name,
                    fields: Vec::new(),
                }
            }
            Tok::Field(name) => Arg::Field {
                pos,
                names: vec![name],
            },
            Tok::Bool(b) => Arg::Bool(pos, b),
            Tok::CharConst(c) => Arg::Num {
                pos,
                raw: item.raw,
                val: Lit::Int(c),
            },
            Tok::Number => {
                let Some(val) = parse_number(&item.raw) else {
                    return self.error(format_args!(
                        "illegal number syntax: {}",
                        go_quote(&item.raw)
                    ));
                };
                Arg::Num {
                    pos,
                    raw: item.raw,
                    val,
                }
            }
            Tok::LParen => {
                self.deeper()?;
                let pipe = self.pipeline("parenthesized pipeline", &Tok::RParen);
                self.depth -= 1;
                Arg::Pipe(Box::new(pipe?))
            }
            Tok::Str(val) => Arg::Str {
                pos,
                raw: item.raw,
                val,
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

fn parse_number(raw: &str) -> Option<Lit> {
    let text: String = raw.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let radix_int = |prefixes: [&str; 2], radix: u32| {
        prefixes
            .iter()
            .find_map(|p| body.strip_prefix(p))
            .and_then(|digits| i64::from_str_radix(digits, radix).ok())
            .map(|v| Lit::Int(if neg { -v } else { v }))
    };
    if let Some(v) = radix_int(["0x", "0X"], 16)
        .or_else(|| radix_int(["0o", "0O"], 8))
        .or_else(|| radix_int(["0b", "0B"], 2))
    {
        return Some(v);
    }
    if body.contains(['.', 'e', 'E']) {
        return text.parse::<f64>().ok().map(Lit::Float);
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(Lit::Int(i));
    }
    text.parse::<f64>().ok().map(Lit::Float)
}

// ---------------------------------------------------------------------------
// Functions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    /// `interface{}` / `reflect.Value`.
    Any,
    /// `string`.
    Str,
    /// `int`.
    Int,
    /// `[]string`.
    StrSlice,
}

struct Func {
    params: &'static [P],
    variadic: Option<P>,
    /// Docker's `HeaderFunctions` make this the identity on its first
    /// argument when rendering a table header.
    header_identity: bool,
}

const fn func(params: &'static [P], variadic: Option<P>, header_identity: bool) -> Func {
    Func {
        params,
        variadic,
        header_identity,
    }
}

fn function(name: &str) -> Option<Func> {
    use P::*;
    Some(match name {
        "and" | "or" => func(&[Any], Some(Any), false),
        "not" | "len" => func(&[Any], None, false),
        "index" => func(&[Any], Some(Any), false),
        "print" | "println" => func(&[], Some(Any), false),
        "printf" => func(&[Str], Some(Any), false),
        "eq" => func(&[Any], Some(Any), false),
        "ne" | "lt" | "le" | "gt" | "ge" => func(&[Any, Any], None, false),
        "json" => func(&[Any], None, true),
        "split" => func(&[Str, Str], None, true),
        "join" => func(&[StrSlice, Str], None, true),
        "title" | "lower" | "upper" => func(&[Str], None, true),
        "pad" => func(&[Str, Int, Int], None, true),
        "truncate" => func(&[Str, Int], None, true),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Execution

/// A value during execution: `Missing` is Go's invalid `reflect.Value` (a
/// missing map key, printed `<no value>`); `V(Null)` is a nil `interface{}`.
#[derive(Debug, Clone)]
enum Val {
    Missing,
    V(Value),
}

enum Flow {
    Normal,
    Break,
    Continue,
}

type XResult<T> = Result<T, String>;

struct Exec<'a> {
    src: &'a str,
    vars: Vec<(String, Val)>,
    out: String,
    header: Option<&'a [(&'a str, &'a str)]>,
    /// Bytes produced so far: the output and every function's result
    /// (at most [`BUDGET`]).
    spent: usize,
    /// A missing field is an error, as in `inspect` (see
    /// [`Template::execute_inspect`]).
    strict: bool,
    /// A `null` is a nil pointer of a list's typed row (`ps`'s
    /// `.Platform`) and prints `<nil>` (see [`Template::execute_row`]).
    nil_pointers: bool,
}

/// Objects of `inspect` whose keys are data, not struct fields: a key
/// missing from one is no error (docker's typed structs hold maps there).
/// `Config` is the data map of `LogConfig`; the other `Config`s are structs.
fn is_data_map(name: &str, parent: Option<&str>) -> bool {
    matches!(
        name,
        "Labels"
            | "Networks"
            | "Tmpfs"
            | "Volumes"
            | "ExposedPorts"
            | "Ports"
            | "PortBindings"
            | "DriverOpts"
            | "Data"
            | "Options"
            | "Sysctls"
            | "StorageOpt"
    ) || (name == "Config" && parent == Some("LogConfig"))
}

/// How docker prints a field of its typed `inspect` structs that is nil or
/// left out of the JSON, when the action `pipe` is just that field: `[]` for
/// a slice, `map[]` for a map, `<nil>` for a pointer, the zero value for the
/// others; `<no value>` for anything else (a missing key of a data map).
fn typed_zero(pipe: &Pipe) -> &'static str {
    let names = match pipe.cmds.as_slice() {
        [cmd] => match cmd.args.as_slice() {
            [Arg::Field { names, .. }] => names.as_slice(),
            [Arg::Var { fields, .. }] | [Arg::Chain { fields, .. }] => fields.as_slice(),
            _ => &[],
        },
        _ => &[],
    };
    let Some((last, rest)) = names.split_last() else {
        return "<no value>";
    };
    if let Some(parent) = rest.last() {
        let grandparent = rest.len().checked_sub(2).map(|i| rest[i].as_str());
        if is_data_map(parent, grandparent) {
            return "<no value>";
        }
    }
    match last.as_str() {
        "Env"
        | "Cmd"
        | "Entrypoint"
        | "OnBuild"
        | "Shell"
        | "Args"
        | "Binds"
        | "CapAdd"
        | "CapDrop"
        | "SecurityOpt"
        | "Dns"
        | "DnsOptions"
        | "DnsSearch"
        | "ExecIDs"
        | "Links"
        | "VolumesFrom"
        | "ExtraHosts"
        | "GroupAdd"
        | "DeviceCgroupRules"
        | "DeviceRequests"
        | "Ulimits"
        | "BlkioWeightDevice"
        | "BlkioDeviceReadBps"
        | "BlkioDeviceWriteBps"
        | "BlkioDeviceReadIOps"
        | "BlkioDeviceWriteIOps"
        | "Devices"
        | "MaskedPaths"
        | "ReadonlyPaths"
        | "Mounts"
        | "RepoTags"
        | "RepoDigests"
        | "Layers"
        | "Aliases"
        | "SecondaryIPAddresses"
        | "SecondaryIPv6Addresses" => "[]",
        "Volumes" | "Labels" | "ExposedPorts" | "Tmpfs" | "Sysctls" | "StorageOpt" | "Ports"
        | "PortBindings" | "DriverOpts" | "Options" | "Data" => "map[]",
        "Init" | "MemorySwappiness" | "PidsLimit" | "OomKillDisable" | "Healthcheck" | "Health"
        | "StopTimeout" | "IPAMConfig" | "Node" | "SizeRw" => "<nil>",
        "StopSignal" | "MacAddress" | "Variant" | "Name" | "Driver" => "",
        "ArgsEscaped" | "NetworkDisabled" => "false",
        "SizeRootFs" => "0",
        _ => "<no value>",
    }
}

/// Whether `names[i]`, missing from `m`, is a field the object lacks (an
/// error in `inspect`) rather than an empty one docker leaves out or a key of
/// a data map.
fn missing_is_error(m: &Map<String, Value>, names: &[String], i: usize) -> bool {
    let name = names[i].as_str();
    if OMITTED_WHEN_EMPTY.contains(&name) {
        return false;
    }
    // A bind mount has no Name nor Driver.
    if matches!(name, "Name" | "Driver") && m.contains_key("Destination") {
        return false;
    }
    let parent = i.checked_sub(1).map(|p| names[p].as_str());
    let grandparent = i.checked_sub(2).map(|p| names[p].as_str());
    !parent.is_some_and(|p| is_data_map(p, grandparent))
}

/// Struct fields docker's `inspect` JSON leaves out when they are empty:
/// reading one is no error.
const OMITTED_WHEN_EMPTY: &[&str] = &[
    "Init",
    "Tmpfs",
    "Mounts",
    "Sysctls",
    "StorageOpt",
    "ExposedPorts",
    "Healthcheck",
    "ArgsEscaped",
    "NetworkDisabled",
    "MacAddress",
    "StopSignal",
    "StopTimeout",
    "Shell",
    "Health",
    "Node",
    "SizeRw",
    "SizeRootFs",
    "Variant",
    "BindOptions",
    "VolumeOptions",
    "TmpfsOptions",
    "ReadOnly",
    "Consistency",
];

impl<'a> Exec<'a> {
    fn new(src: &'a str, data: &Value, header: Option<&'a [(&'a str, &'a str)]>) -> Exec<'a> {
        Exec {
            src,
            vars: vec![("$".to_string(), Val::V(data.clone()))],
            out: String::new(),
            header,
            spent: 0,
            strict: false,
            nil_pointers: false,
        }
    }

    /// What may still be produced.
    fn room(&self) -> usize {
        BUDGET.saturating_sub(self.spent)
    }

    /// Counts `n` more bytes against the budget.
    fn spend(&mut self, n: usize) -> XResult<()> {
        if n > self.room() {
            return Err(format!("template: {}", too_large()));
        }
        self.spent += n;
        Ok(())
    }

    /// Appends to the output, within the budget.
    fn emit(&mut self, s: &str) -> XResult<()> {
        self.spend(s.len())?;
        self.out.push_str(s);
        Ok(())
    }

    fn err(&self, pos: usize, context: &dyn Display, msg: impl Display) -> String {
        let (line, col) = line_col(self.src, pos);
        format!("template: :{line}:{col}: executing \"\" at <{context}>: {msg}")
    }

    fn walk_list(&mut self, dot: &Val, list: &[Node]) -> XResult<Flow> {
        for node in list {
            match self.walk(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Val, node: &Node) -> XResult<Flow> {
        match node {
            Node::Text(t) => self.emit(t)?,
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    match v {
                        Val::V(Value::Null) if self.nil_pointers => self.emit("<nil>")?,
                        Val::Missing | Val::V(Value::Null) => {
                            let text = if self.strict {
                                typed_zero(pipe)
                            } else {
                                "<no value>"
                            };
                            self.emit(text)?
                        }
                        Val::V(v) => {
                            let mut text = Text::new(self.room());
                            write_v(&mut text, &v);
                            let text = text.finish().map_err(|e| format!("template: {e}"))?;
                            self.emit(&text)?;
                        }
                    }
                }
            }
            Node::If(c) => return self.walk_if_with(dot, c, false),
            Node::With(c) => return self.walk_if_with(dot, c, true),
            Node::Range(c) => return self.walk_range(dot, node, c),
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(&mut self, dot: &Val, c: &Control, with: bool) -> XResult<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let flow = if truth(&val) {
            let dot = if with { &val } else { dot };
            self.walk_list(dot, &c.list)
        } else if let Some(else_list) = &c.else_list {
            self.walk_list(dot, else_list)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        flow
    }

    fn walk_range(&mut self, dot: &Val, node: &Node, c: &Control) -> XResult<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let body_mark = self.vars.len();
        // An integer is iterated without making its elements first: `range
        // 99999999999` must not ask for memory up front.
        let (items, count): (Vec<(Value, Value)>, i64) = if self.header.is_some() {
            // Header mode: the body once, with the header text as element.
            let v = match &val {
                Val::V(v) => v.clone(),
                Val::Missing => Value::String(String::new()),
            };
            (vec![(v.clone(), v)], 0)
        } else {
            match &val {
                Val::Missing | Val::V(Value::Null) => (Vec::new(), 0),
                Val::V(Value::Array(a)) => (
                    a.iter()
                        .enumerate()
                        .map(|(i, e)| (Value::from(i), e.clone()))
                        .collect(),
                    0,
                ),
                Val::V(Value::Object(m)) => (
                    sorted(m)
                        .into_iter()
                        .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                        .collect(),
                    0,
                ),
                Val::V(Value::Number(n)) if n.as_i64().is_some() => {
                    (Vec::new(), n.as_i64().unwrap_or(0).max(0))
                }
                Val::V(v) => {
                    return Err(self.err(
                        c.pipe.pos,
                        node,
                        format_args!("range can't iterate over {}", go_v(v)),
                    ));
                }
            }
        };
        let empty = items.is_empty() && count == 0;
        let numbers = (0..count).map(|i| (Value::from(i), Value::from(i)));
        for (index, elem) in items.into_iter().chain(numbers) {
            let flow = self.range_body(c, node, index, elem)?;
            self.vars.truncate(body_mark);
            if let Flow::Break = flow {
                break;
            }
        }
        if empty {
            if let Some(else_list) = &c.else_list {
                let flow = self.walk_list(dot, else_list)?;
                self.vars.truncate(mark);
                return Ok(flow);
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    /// One iteration of a `range`: its variables set, its body run.
    fn range_body(&mut self, c: &Control, node: &Node, index: Value, elem: Value) -> XResult<Flow> {
        let decl = &c.pipe.decl;
        if c.pipe.is_assign {
            match decl.as_slice() {
                [e] => self.set_var(e, Val::V(elem.clone()), c.pipe.pos, node)?,
                [i, e] => {
                    self.set_var(i, Val::V(index), c.pipe.pos, node)?;
                    self.set_var(e, Val::V(elem.clone()), c.pipe.pos, node)?;
                }
                _ => {}
            }
        } else {
            let n = self.vars.len();
            match decl.len() {
                1 => set_nth(&mut self.vars, n - 1, Val::V(elem.clone())),
                2 => {
                    set_nth(&mut self.vars, n - 1, Val::V(elem.clone()));
                    set_nth(&mut self.vars, n - 2, Val::V(index));
                }
                _ => {}
            }
        }
        self.walk_list(&Val::V(elem), &c.list)
    }

    fn set_var(&mut self, name: &str, v: Val, pos: usize, node: &dyn Display) -> XResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.err(pos, node, format_args!("undefined variable: {name}"))),
        }
    }

    fn var(&self, name: &str, pos: usize, node: &dyn Display) -> XResult<Val> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.err(pos, node, format_args!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Val, pipe: &Pipe) -> XResult<Val> {
        let mut value: Option<Val> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // Go digs the value out of its interface{}: a nil becomes
            // invalid (a typed row's nil pointer stays one).
            value = Some(match v {
                Val::V(Value::Null) if !self.nil_pointers => Val::Missing,
                v => v,
            });
        }
        let value = value.unwrap_or(Val::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone(), pipe.pos, pipe)?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, cmd: &Cmd, first: &Arg, final_val: &Option<Val>) -> XResult<()> {
        if cmd.args.len() > 1 || final_val.is_some() {
            return Err(self.err(
                first.pos(),
                first,
                format_args!("can't give argument to non-function {first}"),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val, cmd: &Cmd, final_val: Option<Val>) -> XResult<Val> {
        let Some((first, rest)) = cmd.args.split_first() else {
            return Ok(Val::Missing);
        };
        let has_args = !rest.is_empty() || final_val.is_some();
        match first {
            Arg::Field { pos, names } => {
                if has_args && names.last().is_some_and(|n| n == "Label") {
                    return self.label_method(dot, first, names, rest, final_val);
                }
                self.field_chain(dot.clone(), names, *pos, first, has_args)
            }
            Arg::Chain { pos, base, fields } => {
                if let Arg::Nil(_) = base.as_ref() {
                    return Err(self.err(
                        *pos,
                        first,
                        format_args!("indirection through explicit nil in {first}"),
                    ));
                }
                let receiver = self.eval_arg_raw(dot, base)?;
                self.field_chain(receiver, fields, *pos, first, has_args)
            }
            Arg::Ident { pos, name } => self.eval_function(dot, *pos, name, first, rest, final_val),
            Arg::Pipe(p) => {
                self.not_a_function(cmd, first, &final_val)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Var { pos, name, fields } => {
                let v = self.var(name, *pos, first)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, first, &final_val)?;
                    return Ok(v);
                }
                self.field_chain(v, fields, *pos, first, has_args)
            }
            Arg::Bool(_, b) => {
                self.not_a_function(cmd, first, &final_val)?;
                Ok(Val::V(Value::Bool(*b)))
            }
            Arg::Dot(_) => {
                self.not_a_function(cmd, first, &final_val)?;
                Ok(dot.clone())
            }
            Arg::Nil(pos) => Err(self.err(*pos, first, "nil is not a command")),
            Arg::Num { val, .. } => {
                self.not_a_function(cmd, first, &final_val)?;
                Ok(Val::V(lit_value(val)))
            }
            Arg::Str { val, .. } => {
                self.not_a_function(cmd, first, &final_val)?;
                Ok(Val::V(Value::String(val.clone())))
            }
        }
    }

    /// Evaluate a node as an argument without type conversion.
    fn eval_arg_raw(&mut self, dot: &Val, arg: &Arg) -> XResult<Val> {
        match arg {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Val::V(Value::Null)),
            Arg::Bool(_, b) => Ok(Val::V(Value::Bool(*b))),
            Arg::Str { val, .. } => Ok(Val::V(Value::String(val.clone()))),
            Arg::Num { val, .. } => Ok(Val::V(lit_value(val))),
            Arg::Field { pos, names } => self.field_chain(dot.clone(), names, *pos, arg, false),
            Arg::Var { pos, name, fields } => {
                let v = self.var(name, *pos, arg)?;
                if fields.is_empty() {
                    Ok(v)
                } else {
                    self.field_chain(v, fields, *pos, arg, false)
                }
            }
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Ident { pos, name } => self.eval_function(dot, *pos, name, arg, &[], None),
            Arg::Chain { .. } => {
                let cmd = Cmd {
                    args: vec![arg.clone()],
                };
                self.eval_command(dot, &cmd, None)
            }
        }
    }

    /// Evaluate a node for a parameter of type `kind` (Go's `evalArg`).
    fn eval_arg(&mut self, dot: &Val, kind: P, arg: &Arg) -> XResult<Value> {
        let literal_error = |what: &str| format!("expected {what}; found {arg}");
        match (kind, arg) {
            (P::Str, Arg::Str { val, .. }) => return Ok(Value::String(val.clone())),
            (P::Str, Arg::Num { .. } | Arg::Bool(..)) => {
                return Err(self.err(arg.pos(), arg, literal_error("string")));
            }
            (
                P::Int,
                Arg::Num {
                    val: Lit::Int(i), ..
                },
            ) => return Ok(Value::from(*i)),
            (P::Int, Arg::Num { .. } | Arg::Str { .. } | Arg::Bool(..)) => {
                return Err(self.err(arg.pos(), arg, literal_error("integer")));
            }
            (P::StrSlice, Arg::Num { .. } | Arg::Str { .. } | Arg::Bool(..)) => {
                return Err(self.err(
                    arg.pos(),
                    arg,
                    format_args!("can't handle {arg} for arg of type []string"),
                ));
            }
            (P::Str | P::Int | P::StrSlice, Arg::Nil(_)) => {
                let typ = go_param_type(kind);
                return Err(self.err(arg.pos(), arg, format_args!("cannot assign nil to {typ}")));
            }
            _ => {}
        }
        let v = self.eval_arg_raw(dot, arg)?;
        self.validate(v, kind, arg.pos(), arg)
    }

    /// Go's `validateType` for a computed value.
    fn validate(&self, v: Val, kind: P, pos: usize, node: &dyn Display) -> XResult<Value> {
        let typ = go_param_type(kind);
        match (kind, v) {
            (P::Any, Val::Missing) => Ok(Value::Null),
            (P::Any, Val::V(v)) => Ok(v),
            (P::StrSlice, Val::Missing | Val::V(Value::Null)) => Ok(Value::Array(Vec::new())),
            (_, Val::Missing) => {
                Err(self.err(pos, node, format_args!("invalid value; expected {typ}")))
            }
            (P::Str, Val::V(v @ Value::String(_))) => Ok(v),
            (P::Int, Val::V(Value::Number(n))) if n.as_i64().is_some() => Ok(Value::Number(n)),
            (P::StrSlice, Val::V(Value::Array(a))) => Ok(Value::Array(
                a.into_iter()
                    .map(|e| match e {
                        Value::String(s) => Value::String(s),
                        other => Value::String(go_v(&other)),
                    })
                    .collect(),
            )),
            (_, Val::V(v)) => {
                let got = match v {
                    Value::Null => "interface {}",
                    ref v => go_type(v),
                };
                Err(self.err(
                    pos,
                    node,
                    format_args!("wrong type for value; expected {typ}; got {got}"),
                ))
            }
        }
    }

    fn field_chain(
        &self,
        receiver: Val,
        names: &[String],
        pos: usize,
        node: &Arg,
        has_args: bool,
    ) -> XResult<Val> {
        if self.header.is_some() {
            return Ok(Val::V(Value::String(self.header_text(names))));
        }
        let mut cur = receiver;
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            cur = match cur {
                Val::Missing => Val::Missing,
                Val::V(Value::Null) => {
                    return Err(self.err(
                        pos,
                        node,
                        format_args!("nil pointer evaluating interface {{}}.{name}"),
                    ));
                }
                Val::V(Value::Object(m)) => {
                    if has_args && last {
                        return Err(self.err(
                            pos,
                            node,
                            format_args!("{name} is not a method but has arguments"),
                        ));
                    }
                    match lookup(&m, name) {
                        Some(v) => Val::V(v.clone()),
                        None if self.strict && missing_is_error(&m, names, i) => {
                            return Err(self.err(
                                pos,
                                node,
                                format_args!("map has no entry for key {name:?}"),
                            ));
                        }
                        None => Val::Missing,
                    }
                }
                Val::V(_) => {
                    return Err(self.err(
                        pos,
                        node,
                        format_args!("can't evaluate field {name} in type interface {{}}"),
                    ));
                }
            };
        }
        Ok(cur)
    }

    /// Docker's `{{.Label "key"}}` method of `docker ps`/`images`: the value
    /// of label `key` from the receiver's `Labels` (an object, or docker's
    /// "k=v,k2=v2" string), or "".
    fn label_method(
        &mut self,
        dot: &Val,
        node: &Arg,
        names: &[String],
        rest: &[Arg],
        final_val: Option<Val>,
    ) -> XResult<Val> {
        let pos = node.pos();
        let argc = rest.len() + usize::from(final_val.is_some());
        if argc != 1 {
            return Err(self.err(
                pos,
                node,
                format_args!("wrong number of args for Label: want 1 got {argc}"),
            ));
        }
        let key = match (rest.first(), final_val) {
            (Some(arg), _) => self.eval_arg(dot, P::Str, arg)?,
            (None, Some(v)) => self.validate(v, P::Str, pos, node)?,
            (None, None) => Value::Null,
        };
        let key = key.as_str().unwrap_or("").to_string();
        if self.header.is_some() {
            let last = key.rsplit('.').next().unwrap_or("");
            return Ok(Val::V(Value::String(
                last.replace(['-', '_'], " ").to_uppercase(),
            )));
        }
        let receiver_names = names.get(..names.len().saturating_sub(1)).unwrap_or(&[]);
        let receiver = self.field_chain(dot.clone(), receiver_names, pos, node, false)?;
        let labels = match receiver {
            Val::V(Value::Object(m)) => lookup(&m, "Labels").cloned(),
            _ => None,
        };
        let value = match labels {
            Some(Value::Object(m)) => m.get(&key).map(go_v),
            Some(Value::String(s)) => s.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == key).then(|| v.to_string())
            }),
            _ => None,
        };
        Ok(Val::V(Value::String(value.unwrap_or_default())))
    }

    fn header_text(&self, names: &[String]) -> String {
        let table = self.header.unwrap_or(&[]);
        let full = names.join(".");
        let last = names.last().map(String::as_str).unwrap_or("");
        for key in [full.as_str(), last] {
            if let Some((_, h)) = table.iter().find(|(k, _)| *k == key) {
                return (*h).to_string();
            }
            if let Some((_, h)) = table.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
                return (*h).to_string();
            }
        }
        default_header(last)
    }

    fn eval_function(
        &mut self,
        dot: &Val,
        pos: usize,
        name: &str,
        node: &Arg,
        args: &[Arg],
        final_val: Option<Val>,
    ) -> XResult<Val> {
        let Some(spec) = function(name) else {
            return Err(self.err(pos, node, format_args!("{name} is not a defined function")));
        };
        let num_in = args.len() + usize::from(final_val.is_some());
        if spec.variadic.is_some() {
            if num_in < spec.params.len() {
                let (want, got) = (spec.params.len(), args.len());
                return Err(self.err(
                    pos,
                    node,
                    format_args!("wrong number of args for {name}: want at least {want} got {got}"),
                ));
            }
        } else if num_in != spec.params.len() {
            let want = spec.params.len();
            return Err(self.err(
                pos,
                node,
                format_args!("wrong number of args for {name}: want {want} got {num_in}"),
            ));
        }
        let kind_of = |i: usize| {
            spec.params
                .get(i)
                .copied()
                .or(spec.variadic)
                .unwrap_or(P::Any)
        };

        if name == "and" || name == "or" {
            let want = name == "or";
            let mut last = Val::Missing;
            for arg in args {
                let v = self.eval_arg_raw(dot, arg)?;
                if truth(&v) == want {
                    return Ok(v);
                }
                last = v;
            }
            return Ok(final_val.unwrap_or(last));
        }

        let header_mode = self.header.is_some();
        let mut argv = Vec::with_capacity(num_in);
        for (i, arg) in args.iter().enumerate() {
            let kind = if header_mode && spec.header_identity {
                P::Any
            } else {
                kind_of(i)
            };
            argv.push(self.eval_arg(dot, kind, arg)?);
        }
        if let Some(v) = final_val {
            let kind = if header_mode && spec.header_identity {
                P::Any
            } else {
                kind_of(args.len())
            };
            argv.push(self.validate(v, kind, pos, node)?);
        }
        if header_mode {
            if spec.header_identity {
                return Ok(Val::V(Value::String(
                    argv.first().map(plain_string).unwrap_or_default(),
                )));
            }
            if name == "index" {
                let key = argv
                    .get(1..)
                    .and_then(|keys| keys.last())
                    .map(plain_string)
                    .unwrap_or_default();
                return Ok(Val::V(Value::String(self.header_text(&[key]))));
            }
        }
        let v = call(name, &argv, self.room(), self.strict)
            .map_err(|e| self.err(pos, node, format_args!("error calling {name}: {e}")))?;
        self.spend(approx_size(&v)).map_err(|_| {
            self.err(
                pos,
                node,
                format_args!("error calling {name}: {}", too_large()),
            )
        })?;
        Ok(Val::V(v))
    }
}

fn set_nth(vars: &mut [(String, Val)], i: usize, v: Val) {
    if let Some(slot) = vars.get_mut(i) {
        slot.1 = v;
    }
}

fn lit_value(lit: &Lit) -> Value {
    match lit {
        Lit::Int(i) => Value::from(*i),
        Lit::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
    }
}

/// A key of a JSON object: exact, else the unique case-insensitive match.
fn lookup<'m>(m: &'m Map<String, Value>, name: &str) -> Option<&'m Value> {
    if let Some(v) = m.get(name) {
        return Some(v);
    }
    let mut found = m.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Some(v),
        _ => None,
    }
}

fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// `CreatedAt` -> `CREATED AT`, `IPAddress` -> `IP ADDRESS`, `ID` -> `ID`.
fn default_header(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = chars.get(i - 1).copied().unwrap_or(' ');
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Go's template truth: false, 0, "", empty array/object, nil, missing.
fn truth(v: &Val) -> bool {
    match v {
        Val::Missing => false,
        Val::V(v) => truth_value(v),
    }
}

fn truth_value(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn go_param_type(kind: P) -> &'static str {
    match kind {
        P::Any => "interface {}",
        P::Str => "string",
        P::Int => "int",
        P::StrSlice => "[]string",
    }
}

/// The Go type a JSON value would have, for messages.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn plain_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => go_v(other),
    }
}

/// Roughly the bytes a value made by a function holds.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a
            .iter()
            .map(|e| approx_size(e).saturating_add(32))
            .fold(0, usize::saturating_add),
        _ => 8,
    }
}

/// Calls a template function; what it makes may take at most `room` bytes.
///
/// `typed`: the data is an `inspect` object, whose `json` keeps the key
/// order (docker's typed structs); otherwise objects print with sorted keys,
/// as Go's maps do.
fn call(name: &str, argv: &[Value], room: usize, typed: bool) -> Result<Value, String> {
    let arg = |i: usize| argv.get(i).unwrap_or(&Value::Null);
    let s = |i: usize| arg(i).as_str().unwrap_or("");
    let int = |i: usize| arg(i).as_i64().unwrap_or(0);
    Ok(match name {
        "not" => Value::Bool(!truth_value(arg(0))),
        "len" => match arg(0) {
            Value::String(s) => Value::from(s.len()),
            Value::Array(a) => Value::from(a.len()),
            Value::Object(m) => Value::from(m.len()),
            // A null is a nil slice or map in docker's structs: length 0.
            Value::Null => Value::from(0),
            other => return Err(format!("len of type {}", go_type(other))),
        },
        "index" => index(arg(0), argv.get(1..).unwrap_or(&[]))?,
        "print" => Value::String(go_sprint(argv, room)?),
        "println" => Value::String(go_sprintln(argv, room)?),
        "printf" => Value::String(go_sprintf(s(0), argv.get(1..).unwrap_or(&[]), room)?),
        "eq" => {
            let rest = argv.get(1..).unwrap_or(&[]);
            if rest.is_empty() {
                return Err("missing argument for comparison".to_string());
            }
            let mut any = false;
            for other in rest {
                if equal(arg(0), other)? {
                    any = true;
                    break;
                }
            }
            Value::Bool(any)
        }
        "ne" => Value::Bool(!equal(arg(0), arg(1))?),
        "lt" => Value::Bool(less(arg(0), arg(1))?),
        "le" => Value::Bool(less(arg(0), arg(1))? || equal(arg(0), arg(1))?),
        "gt" => Value::Bool(!(less(arg(0), arg(1))? || equal(arg(0), arg(1))?)),
        "ge" => Value::Bool(!less(arg(0), arg(1))?),
        "json" if typed => Value::String(json(arg(0))),
        "json" => Value::String(json(&sorted_keys(arg(0)))),
        "split" => {
            let pieces = if s(1).is_empty() {
                s(0).chars().count()
            } else {
                s(0).matches(s(1)).count() + 1
            };
            if pieces.saturating_mul(32).saturating_add(s(0).len()) > room {
                return Err(too_large());
            }
            Value::Array(
                go_split(s(0), s(1))
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            )
        }
        "join" => {
            let parts: Vec<String> = match arg(0) {
                Value::Array(a) => a.iter().map(plain_string).collect(),
                _ => Vec::new(),
            };
            let size = parts
                .iter()
                .map(|p| p.len().saturating_add(s(1).len()))
                .fold(0, usize::saturating_add);
            if size > room {
                return Err(too_large());
            }
            Value::String(parts.join(s(1)))
        }
        "title" => Value::String(title(s(0))),
        "lower" => Value::String(map_chars(s(0), |c| c.to_lowercase().collect())),
        "upper" => Value::String(map_chars(s(0), |c| c.to_uppercase().collect())),
        "pad" => {
            let (prefix, suffix) = (int(1), int(2));
            if prefix < 0 || suffix < 0 {
                return Err("strings: negative Repeat count".to_string());
            }
            if s(0).is_empty() {
                Value::String(String::new())
            } else {
                let mut out = Text::new(room);
                out.fill(' ', usize::try_from(prefix).unwrap_or(usize::MAX));
                out.push_str(s(0));
                out.fill(' ', usize::try_from(suffix).unwrap_or(usize::MAX));
                Value::String(out.finish()?)
            }
        }
        "truncate" => {
            let source = s(0);
            let Ok(length) = usize::try_from(int(1)) else {
                return Err(format!(
                    "runtime error: slice bounds out of range [:{}]",
                    int(1)
                ));
            };
            if source.len() < length {
                Value::String(source.to_string())
            } else {
                let mut end = length;
                while !source.is_char_boundary(end) {
                    end -= 1;
                }
                Value::String(source.get(..end).unwrap_or("").to_string())
            }
        }
        _ => return Err(format!("{name} is not a defined function")),
    })
}

/// Go's `strings.ToUpper`/`ToLower` map each rune to one rune; characters
/// whose case mapping is longer (ß -> SS) stay as they are.
fn map_chars(s: &str, f: impl Fn(char) -> Vec<char>) -> String {
    s.chars()
        .map(|c| match f(c).as_slice() {
            [one] => *one,
            _ => c,
        })
        .collect()
}

/// Docker's `title`: upper-case the first letter of each word, leave the
/// rest alone.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start {
            match c.to_uppercase().collect::<Vec<_>>().as_slice() {
                [one] => out.push(*one),
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '_');
    }
    out
}

fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return s.chars().map(|c| c.to_string()).collect();
    }
    s.split(sep).map(str::to_string).collect()
}

/// Docker's `json`: compact, HTML left alone, U+2028/U+2029 escaped as Go's
/// encoder does.
/// `v` with the keys of every object in sorted order.
fn sorted_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keys(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

fn json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".to_string())
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn index(item: &Value, keys: &[Value]) -> Result<Value, String> {
    let mut cur = item.clone();
    for key in keys {
        cur = match (&cur, key) {
            // Docker's typed maps (Labels, Options...) are map[string]string:
            // a nil one, or a missing key, reads as "".
            (Value::Null, Value::String(_)) => Value::String(String::new()),
            (Value::Null, _) => return Err("index of untyped nil".to_string()),
            (Value::Object(m), Value::String(k)) => match m.get(k) {
                Some(v) => v.clone(),
                None if m.values().all(Value::is_string) => Value::String(String::new()),
                None => Value::Null,
            },
            (Value::Object(_), other) => {
                return Err(format!(
                    "value has type {}; should be string",
                    go_type(other)
                ));
            }
            (Value::Array(_) | Value::String(_), Value::Number(n)) => {
                let len = match &cur {
                    Value::Array(a) => a.len(),
                    Value::String(s) => s.len(),
                    _ => 0,
                };
                let i = n
                    .as_i64()
                    .ok_or_else(|| "cannot index slice/array with type float64".to_string())?;
                let Some(i) = usize::try_from(i).ok().filter(|&i| i < len) else {
                    return Err(format!("index out of range: {i}"));
                };
                match &cur {
                    Value::Array(a) => a.get(i).cloned().unwrap_or(Value::Null),
                    Value::String(s) => {
                        s.as_bytes().get(i).map_or(Value::Null, |&b| Value::from(b))
                    }
                    _ => Value::Null,
                }
            }
            (Value::Array(_) | Value::String(_), Value::Null) => {
                return Err("cannot index slice/array with nil".to_string());
            }
            (Value::Array(_) | Value::String(_), other) => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    go_type(other)
                ));
            }
            (other, _) => return Err(format!("can't index item of type {}", go_type(other))),
        };
    }
    Ok(cur)
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => a.is_null() && b.is_null(),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            return Err(format!(
                "non-comparable types {}: {}",
                go_type(a),
                go_type(b)
            ));
        }
        _ => return Err("incompatible types for comparison".to_string()),
    })
}

fn less(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x < y),
        (Value::Number(x), Value::Number(y)) => Ok(match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x < y,
            _ => x.as_f64() < y.as_f64(),
        }),
        (Value::String(_) | Value::Number(_), Value::String(_) | Value::Number(_)) => {
            Err("incompatible types for comparison".to_string())
        }
        _ => Err("invalid type for comparison".to_string()),
    }
}

// ---------------------------------------------------------------------------
// Go's fmt

/// What one execution of a template may produce in all: its output and
/// every string its functions make. Go tries to allocate whatever a
/// template asks for (`{{pad .ID 99999999999 0}}`, a `printf` doubling a
/// variable in a `range`) and dies when it cannot; berth stops with an
/// error instead.
const BUDGET: usize = 64 << 20;

fn too_large() -> String {
    format!("output over {} MiB", BUDGET >> 20)
}

/// Text being formatted, refusing to grow past a limit: once something
/// did not fit, it stays marked and [`Text::finish`] says so.
struct Text {
    s: String,
    limit: usize,
    over: bool,
}

impl Text {
    fn new(limit: usize) -> Text {
        Text {
            s: String::new(),
            limit,
            over: false,
        }
    }

    /// No limit: for text no bigger than values already in memory.
    fn unbounded() -> Text {
        Text::new(usize::MAX)
    }

    fn room(&mut self, n: usize) -> bool {
        if self.over || self.s.len().saturating_add(n) > self.limit {
            self.over = true;
            return false;
        }
        true
    }

    fn push(&mut self, c: char) {
        if self.room(c.len_utf8()) {
            self.s.push(c);
        }
    }

    fn push_str(&mut self, t: &str) {
        if self.room(t.len()) {
            self.s.push_str(t);
        }
    }

    /// `n` times `c` (an ASCII padding character).
    fn fill(&mut self, c: char, n: usize) {
        if self.room(n.saturating_mul(c.len_utf8())) {
            self.s.extend(std::iter::repeat_n(c, n));
        }
    }

    fn finish(self) -> Result<String, String> {
        if self.over {
            Err(too_large())
        } else {
            Ok(self.s)
        }
    }
}

/// `fmt.Sprint("%v", v)` of a JSON value.
fn go_v(v: &Value) -> String {
    let mut out = Text::unbounded();
    write_v(&mut out, v);
    out.s
}

fn write_v(out: &mut Text, v: &Value) {
    fmt_arg(out, v, 'v', &Spec::default(), false);
}

fn num_v(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        format_float_g(n.as_f64().unwrap_or(f64::NAN), None)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn go_sprint(args: &[Value], room: usize) -> Result<String, String> {
    let mut out = Text::new(room);
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = a.is_string();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        write_v(&mut out, a);
        prev_string = is_string;
    }
    out.finish()
}

fn go_sprintln(args: &[Value], room: usize) -> Result<String, String> {
    let mut out = Text::new(room);
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, a);
    }
    out.push('\n');
    out.finish()
}

/// Go's `tooLarge`: a width or precision beyond a million is refused.
const MAX_WIDTH: usize = 1_000_000;

/// A width or precision written in the format.
enum Digits {
    Absent,
    Num(usize),
    /// Go's `parsenum` gives up on a number past [`MAX_WIDTH`] and skips the
    /// rest of the format.
    TooLarge,
}

/// Go's `parsenum` from `f[*i]`: the number checked against [`MAX_WIDTH`]
/// before each digit is added (so up to 10,000,009 passes, as in Go).
fn take_digits(f: &[char], i: &mut usize) -> Digits {
    let mut n: Option<usize> = None;
    while let Some(d) = f.get(*i).and_then(|c| c.to_digit(10)) {
        let so_far = n.unwrap_or(0);
        if so_far > MAX_WIDTH {
            *i = f.len();
            return Digits::TooLarge;
        }
        n = Some(so_far * 10 + d as usize);
        *i += 1;
    }
    n.map_or(Digits::Absent, Digits::Num)
}

/// Go's `intFromArg` for a `*` width or precision: an integer argument of
/// at most a million either way; `None` (a BADWIDTH/BADPREC) otherwise. A
/// missing argument is not consumed.
fn star_arg(args: &[Value], argi: &mut usize) -> Option<i64> {
    let arg = args.get(*argi)?;
    *argi += 1;
    arg.as_i64()
        .filter(|n| n.unsigned_abs() <= MAX_WIDTH as u64)
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %q %t %f %e %g
/// %x %X %o %b %c %%`, flags `- + 0 space`, width and precision (`*` too),
/// with Go's limits on widths and precisions. At most `room` bytes.
fn go_sprintf(format: &str, args: &[Value], room: usize) -> Result<String, String> {
    let f: Vec<char> = format.chars().collect();
    let end = f.len();
    let mut out = Text::new(room);
    let mut argi = 0;
    let mut i = 0;
    while let Some(&c) = f.get(i) {
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = f.get(i) {
            match flag {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '0' => spec.zero = !spec.minus,
                ' ' => spec.space = true,
                '#' => {}
                _ => break,
            }
            i += 1;
        }
        if f.get(i) == Some(&'*') {
            i += 1;
            match star_arg(args, &mut argi) {
                Some(w) => {
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = usize::try_from(w.unsigned_abs()).ok();
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
        } else if let Digits::Num(w) = take_digits(&f, &mut i) {
            spec.width = Some(w);
        }
        // Go takes a '.' as a precision only when something follows it.
        if i + 1 < end && f.get(i) == Some(&'.') {
            i += 1;
            if f.get(i) == Some(&'*') {
                i += 1;
                match star_arg(args, &mut argi) {
                    Some(p) if p >= 0 => spec.prec = usize::try_from(p).ok(),
                    _ => out.push_str("%!(BADPREC)"),
                }
            } else {
                spec.prec = match take_digits(&f, &mut i) {
                    Digits::Num(p) => Some(p),
                    Digits::Absent | Digits::TooLarge => Some(0),
                };
            }
        }
        let Some(&verb) = f.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(argi) {
            Some(arg) => {
                argi += 1;
                fmt_arg(&mut out, arg, verb, &spec, false);
            }
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
    }
    if let Some(extra) = args.get(argi..).filter(|e| !e.is_empty()) {
        out.push_str("%!(EXTRA ");
        for (i, a) in extra.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if a.is_null() {
                out.push_str("<nil>");
            } else {
                out.push_str(go_type(a));
                out.push('=');
                write_v(&mut out, a);
            }
        }
        out.push(')');
    }
    out.finish()
}

/// `%.{prec}f` as Go prints it, for any precision: no f64 has a non-zero
/// digit past the 1074th after the point, and Rust's precision stops at
/// 65535, so the digits past 1100 are zeros written here.
fn go_fixed(f: f64, prec: usize) -> String {
    let mut s = format!("{:.*}", prec.min(1100), f);
    if f.is_finite() {
        s.extend(std::iter::repeat_n('0', prec.saturating_sub(1100)));
    }
    s
}

fn pad(out: &mut Text, s: &str, spec: &Spec, numeric: bool) {
    let len = s.chars().count();
    let fill = spec.width.map_or(0, |w| w.saturating_sub(len));
    if fill == 0 {
        out.push_str(s);
    } else if spec.minus {
        out.push_str(s);
        out.fill(' ', fill);
    } else if spec.zero && numeric {
        let (sign, digits) = match s.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), s.get(1..).unwrap_or("")),
            _ => (None, s),
        };
        if let Some(c) = sign {
            out.push(c);
        }
        out.fill('0', fill);
        out.push_str(digits);
    } else {
        out.fill(' ', fill);
        out.push_str(s);
    }
}

fn bad_verb(out: &mut Text, v: &Value, verb: char) {
    if v.is_null() {
        out.push_str(&format!("%!{verb}(<nil>)"));
    } else {
        out.push_str(&format!("%!{verb}({}={})", go_type(v), go_v(v)));
    }
}

fn signed(s: String, negative: bool, spec: &Spec) -> String {
    if negative {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn fmt_arg(out: &mut Text, v: &Value, verb: char, spec: &Spec, nested: bool) {
    if out.over {
        return;
    }
    match v {
        Value::Null => {
            if verb == 'v' || nested {
                pad(out, "<nil>", spec, false);
            } else {
                bad_verb(out, v, verb);
            }
        }
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, spec, false),
            _ => bad_verb(out, v, verb),
        },
        Value::Number(n) => match (n.as_i64(), verb) {
            (Some(i), 'v' | 'd') => pad(out, &signed(i.to_string(), i < 0, spec), spec, true),
            (Some(i), 'x' | 'X' | 'o' | 'b') => {
                let mag = i.unsigned_abs();
                let digits = match verb {
                    'x' => format!("{mag:x}"),
                    'X' => format!("{mag:X}"),
                    'o' => format!("{mag:o}"),
                    _ => format!("{mag:b}"),
                };
                let s = if i < 0 { format!("-{digits}") } else { digits };
                pad(out, &signed(s, i < 0, spec), spec, true);
            }
            (Some(i), 'c') => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                pad(out, &c.to_string(), spec, false);
            }
            (Some(i), 'q') => pad(out, &go_quote_rune(i), spec, false),
            (None, 'v' | 'd') if n.as_u64().is_some() => pad(out, &num_v(n), spec, true),
            (None, 'v' | 'g' | 'G' | 'f' | 'F' | 'e' | 'E') => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let s = match verb {
                    'f' | 'F' => go_fixed(f.abs(), spec.prec.unwrap_or(6)),
                    'e' | 'E' => go_exp(f.abs(), spec.prec.unwrap_or(6), verb == 'E'),
                    _ => format_float_g(f.abs(), spec.prec),
                };
                let neg = f.is_sign_negative();
                let s = if neg { format!("-{s}") } else { s };
                pad(out, &signed(s, neg, spec), spec, true);
            }
            _ => bad_verb(out, v, verb),
        },
        Value::String(s) => match verb {
            'v' | 's' => {
                let s: String = match spec.prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                };
                pad(out, &s, spec, false);
            }
            'q' => pad(out, &go_quote(s), spec, false),
            'x' | 'X' => {
                let hex: String = s
                    .bytes()
                    .map(|b| {
                        if verb == 'x' {
                            format!("{b:02x}")
                        } else {
                            format!("{b:02X}")
                        }
                    })
                    .collect();
                pad(out, &hex, spec, false);
            }
            _ => bad_verb(out, v, verb),
        },
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_arg(out, e, verb, spec, true);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, e)) in sorted(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_arg(out, &Value::String(k.clone()), verb, spec, true);
                out.push(':');
                fmt_arg(out, e, verb, spec, true);
            }
            out.push(']');
        }
    }
}

/// Go's `%e`: `1.500000e+00`.
fn go_exp(f: f64, prec: usize, upper: bool) -> String {
    // No f64 has more than 767 significant digits: past them Go prints zeros,
    // and Rust's precision stops at 65535.
    let s = format!("{:.*e}", prec.min(800), f);
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let mut mantissa = mantissa.to_string();
    if f.is_finite() {
        mantissa.extend(std::iter::repeat_n('0', prec.saturating_sub(800)));
    }
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}{e}{sign}{:02}", exp.abs())
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn inspect() -> Value {
        json!({
            "Id": "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4",
            "Name": "/boring_turing",
            "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 4242, "ExitCode": 0, "Health": null},
            "Config": {
                "Cmd": ["sh", "-c", "echo hi"],
                "Labels": {"com.example.vendor": "berth", "version": "1.0"},
                "Env": [],
                "Image": "busybox"
            },
            "Mounts": [
                {"Source": "/var/lib/berth/volumes/data", "Destination": "/data", "RW": true},
                {"Source": "/tmp", "Destination": "/host-tmp", "RW": false}
            ],
            "SizeRw": 1.5,
            "Ratio": 1000000.0
        })
    }

    fn run(src: &str, data: &Value) -> String {
        Template::parse(src).unwrap().execute(data).unwrap()
    }

    fn fails(src: &str, data: &Value) -> String {
        match Template::parse(src) {
            Err(e) => e,
            Ok(t) => t.execute(data).unwrap_err(),
        }
    }

    #[test]
    fn text_and_fields() {
        let d = inspect();
        assert_eq!(run("plain text", &d), "plain text");
        assert_eq!(run("", &d), "");
        assert_eq!(run("{{.Name}}", &d), "/boring_turing");
        assert_eq!(
            run("{{.State.Status}} pid={{.State.Pid}}", &d),
            "running pid=4242"
        );
        assert_eq!(run("{{.Config.Labels.version}}", &d), "1.0");
        assert_eq!(
            run("{{.State.Running}}/{{.State.Paused}}", &d),
            "true/false"
        );
        assert_eq!(run("{{.SizeRw}} {{.Ratio}}", &d), "1.5 1e+06");
        // Case-insensitive fallback, like docker's typed ID field vs "Id".
        assert_eq!(run("{{.ID}}", &d), d["Id"].as_str().unwrap());
    }

    #[test]
    fn missing_and_null_print_no_value() {
        let d = inspect();
        assert_eq!(run("{{.Nope}}", &d), "<no value>");
        assert_eq!(run("{{.Nope.Deeper}}", &d), "<no value>");
        assert_eq!(run("{{.Config.Labels.missing}}", &d), "<no value>");
        assert_eq!(run("{{.State.Health}}", &d), "<no value>");
        assert_eq!(run("{{.}}", &Value::Null), "<no value>");
    }

    #[test]
    fn composite_values_print_like_go() {
        let d = inspect();
        assert_eq!(run("{{.Config.Cmd}}", &d), "[sh -c echo hi]");
        assert_eq!(run("{{.Config.Env}}", &d), "[]");
        assert_eq!(
            run("{{.Config.Labels}}", &d),
            "map[com.example.vendor:berth version:1.0]"
        );
        assert_eq!(
            run("{{.Mounts}}", &d),
            "[map[Destination:/data RW:true Source:/var/lib/berth/volumes/data] map[Destination:/host-tmp RW:false Source:/tmp]]"
        );
        assert_eq!(
            run("{{.}}", &json!({"b": [1, null], "a": {}})),
            "map[a:map[] b:[1 <nil>]]"
        );
    }

    #[test]
    fn json_function() {
        let d = inspect();
        assert_eq!(run("{{json .Config.Cmd}}", &d), r#"["sh","-c","echo hi"]"#);
        assert_eq!(run("{{json .State.Health}}", &d), "null");
        assert_eq!(run("{{json .Nope}}", &d), "null");
        assert_eq!(
            run("{{json .}}", &json!({"b": "<&>", "a": 1})),
            r#"{"a":1,"b":"<&>"}"#
        );
        assert_eq!(
            run("{{json .Config.Labels}}", &d),
            r#"{"com.example.vendor":"berth","version":"1.0"}"#
        );
        assert_eq!(run("{{json .}}", &json!("a\u{2028}b")), r#""a\u2028b""#);
    }

    #[test]
    fn index_join_split_case() {
        let d = inspect();
        assert_eq!(
            run(r#"{{index .Config.Labels "com.example.vendor"}}"#, &d),
            "berth"
        );
        assert_eq!(run(r#"[{{index .Config.Labels "missing"}}]"#, &d), "[]");
        assert_eq!(run(r#"[{{index .Config.Nothing "k"}}]"#, &d), "[]");
        assert_eq!(run("{{index .Config.Cmd 2}}", &d), "echo hi");
        assert_eq!(run("{{index .Mounts 1 \"Destination\"}}", &d), "/host-tmp");
        assert_eq!(run(r#"{{join .Config.Cmd " "}}"#, &d), "sh -c echo hi");
        assert_eq!(
            run(r#"{{join .Config.Env ","}}|{{join .Nope ","}}"#, &d),
            "|"
        );
        assert_eq!(run(r#"{{split "a,b,,c" ","}}"#, &d), "[a b  c]");
        assert_eq!(run(r#"{{len (split "a:b" ":")}}"#, &d), "2");
        assert_eq!(
            run(
                "{{upper .State.Status}} {{lower \"MiXeD\"}} {{title \"hello big-world\"}}",
                &d
            ),
            "RUNNING mixed Hello Big-World"
        );
        assert_eq!(run("{{upper \"straße\"}}", &d), "STRAßE");
        assert_eq!(run("{{.State.Status | upper}}", &d), "RUNNING");
        assert_eq!(
            run("[{{pad .State.Status 1 2}}][{{pad \"\" 1 2}}]", &d),
            "[ running  ][]"
        );
        assert_eq!(
            run("{{truncate .Id 12}} {{truncate \"ab\" 5}}", &d),
            "3f2a9c1b7d4e ab"
        );
        assert_eq!(
            fails(r#"{{index .Config.Cmd 7}}"#, &d),
            "template: :1:2: executing \"\" at <index>: error calling index: index out of range: 7"
        );
    }

    /// Found by fuzzing: `%2222…2s` asked for a usize::MAX-wide string and
    /// panicked ("capacity overflow"). Go refuses widths and precisions past
    /// a million, as these (checked against the docker CLI) show.
    #[test]
    fn printf_widths_past_gos_limit_are_refused_as_go_does() {
        let d = inspect();
        for (t, want) in [
            (
                r#"{{printf "%99999999999s|" "x"}}"#,
                "%!(NOVERB)%!(EXTRA string=x)",
            ),
            (
                r#"{{printf "%.99999999999f|" 1.5}}"#,
                "%!(NOVERB)%!(EXTRA float64=1.5)",
            ),
            (r#"{{printf "%*s|" 99999999999 "x"}}"#, "%!(BADWIDTH)x|"),
            (
                r#"{{printf "%.*f|" 99999999999 1.5}}"#,
                "%!(BADPREC)1.500000|",
            ),
            (r#"{{printf "%.*f|" -2 1.5}}"#, "%!(BADPREC)1.500000|"),
            (r#"{{printf "%*s|" -3 "x"}}"#, "x  |"),
            (r#"{{len (printf "%*s" 1000001 "x")}}"#, "13"),
            (r#"{{len (printf "%1000001s" "x")}}"#, "1000001"),
            // Found by fuzzing: precisions past Rust's 65535 panicked
            // ("Formatting argument out of range"); Go prints the zeros.
            (r#"{{len (printf "%.5323555f" 1.5)}}"#, "5323557"),
            (r#"{{len (printf "%.70000e" 1.5)}}"#, "70006"),
            (r#"{{printf "%.70000g|" 1.5}}"#, "1.5|"),
            (
                r#"{{printf "%.1101f" 0.5}}"#,
                &format!("0.5{}", "0".repeat(1100)),
            ),
        ] {
            assert_eq!(run(t, &d), want, "{t}");
        }
        // Found by fuzzing: `pad` allocated whatever it was asked for.
        assert_eq!(run(r#"{{len (pad "x" 1000000 1)}}"#, &d), "1000002");
        assert_eq!(
            fails(r#"{{pad "x" 5 166666666666666}}"#, &d),
            "template: :1:2: executing \"\" at <pad>: error calling pad: output over 64 MiB"
        );
        let huge = format!("{{{{printf \"%{}s\" .Name}}}}", "2".repeat(120));
        assert_eq!(run(&huge, &d), "%!(NOVERB)%!(EXTRA string=/boring_turing)");
    }

    #[test]
    fn printf_subset() {
        let d = inspect();
        assert_eq!(
            run(r#"{{printf "%s is %s" .Name .State.Status}}"#, &d),
            "/boring_turing is running"
        );
        assert_eq!(run(r#"{{printf "%d" .State.Pid}}"#, &d), "4242");
        assert_eq!(
            run(
                r#"{{printf "%v|%v|%v" .Config.Cmd .State.Running .SizeRw}}"#,
                &d
            ),
            "[sh -c echo hi]|true|1.5"
        );
        assert_eq!(
            run(
                r#"{{printf "%-8s|%8s|%05d|%x|%q" "ab" "cd" 42 255 "q"}}"#,
                &d
            ),
            "ab      |      cd|00042|ff|\"q\""
        );
        assert_eq!(
            run(r#"{{printf "%.2f %e %.3s %%" 3.14159 1.5 "abcdef"}}"#, &d),
            "3.14 1.500000e+00 abc %"
        );
        assert_eq!(run(r#"{{printf "%s" .State.Pid}}"#, &d), "%!s(int=4242)");
        assert_eq!(run(r#"{{printf "%d" "x"}}"#, &d), "%!d(string=x)");
        assert_eq!(run(r#"{{printf "%s %s" "a"}}"#, &d), "a %!s(MISSING)");
        assert_eq!(
            run(r#"{{printf "%s" "a" 1 "b"}}"#, &d),
            "a%!(EXTRA int=1, string=b)"
        );
        assert_eq!(
            run(r#"{{printf "%v %s" .Nope .Nope}}"#, &d),
            "<nil> %!s(<nil>)"
        );
        assert_eq!(run(r#"{{.Name | printf "%q"}}"#, &d), "\"/boring_turing\"");
        assert_eq!(run(r#"{{print "a" 1 2 "b" true}}"#, &d), "a1 2btrue");
        assert_eq!(run(r#"{{println "a" 1}}"#, &d), "a 1\n");
    }

    #[test]
    fn range_forms() {
        let d = inspect();
        assert_eq!(
            run("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &d),
            "/var/lib/berth/volumes/data:/data /tmp:/host-tmp "
        );
        assert_eq!(
            run(
                "{{range $i, $m := .Mounts}}{{$i}}={{$m.Destination}};{{end}}",
                &d
            ),
            "0=/data;1=/host-tmp;"
        );
        assert_eq!(
            run(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}\n{{end}}",
                &d
            ),
            "com.example.vendor=berth\nversion=1.0\n"
        );
        assert_eq!(
            run("{{range .Config.Labels}}{{.}},{{end}}", &d),
            "berth,1.0,"
        );
        assert_eq!(run("{{range .Config.Env}}x{{else}}none{{end}}", &d), "none");
        assert_eq!(run("{{range .Nope}}x{{else}}none{{end}}", &d), "none");
        assert_eq!(
            run(
                "{{range .Config.Cmd}}{{if eq . \"-c\"}}{{continue}}{{end}}{{.}}.{{end}}",
                &d
            ),
            "sh.echo hi."
        );
        assert_eq!(
            run(
                "{{range .Config.Cmd}}{{if eq . \"-c\"}}{{break}}{{end}}{{.}}.{{end}}",
                &d
            ),
            "sh."
        );
        assert_eq!(run("{{range 3}}{{.}}{{end}}", &d), "012");
        assert_eq!(
            run("{{range .Mounts}}{{$.Name}}{{end}}", &d),
            "/boring_turing/boring_turing"
        );
        assert_eq!(
            fails("{{range .Name}}x{{end}}", &d),
            "template: :1:8: executing \"\" at <{{range .Name}}x{{end}}>: range can't iterate over /boring_turing"
        );
    }

    #[test]
    fn conditionals_and_variables() {
        let d = inspect();
        assert_eq!(run("{{if .State.Running}}yes{{else}}no{{end}}", &d), "yes");
        assert_eq!(run("{{if .State.Paused}}yes{{else}}no{{end}}", &d), "no");
        assert_eq!(
            run(
                "{{if .Nope}}yes{{else if .State.Pid}}pid{{else}}no{{end}}",
                &d
            ),
            "pid"
        );
        assert_eq!(
            run("{{if and .State.Running (not .State.Paused)}}up{{end}}", &d),
            "up"
        );
        assert_eq!(
            run(
                "{{if or .Nope .Config.Env .Name}}{{end}}{{or .Nope \"dflt\"}}",
                &d
            ),
            "dflt"
        );
        assert_eq!(
            run("{{if ne .State.ExitCode 0}}bad{{else}}ok{{end}}", &d),
            "ok"
        );
        assert_eq!(
            run(
                "{{if lt .State.Pid 5000}}low{{end}}{{if ge .State.Pid 4242}}!{{end}}",
                &d
            ),
            "low!"
        );
        assert_eq!(
            run(
                "{{if eq .State.Status \"exited\" \"running\"}}match{{end}}",
                &d
            ),
            "match"
        );
        assert_eq!(
            run(
                "{{with .State}}{{.Status}}{{end}}{{with .Nope}}x{{else}}-{{end}}",
                &d
            ),
            "running-"
        );
        assert_eq!(
            run("{{with .Nope}}x{{else with .State}}{{.Pid}}{{end}}", &d),
            "4242"
        );
        assert_eq!(
            run("{{$n := .Name}}{{$n}} {{$n = \"x\"}}{{$n}}", &d),
            "/boring_turing x"
        );
        assert_eq!(run("{{(index .Mounts 0).Destination}}", &d), "/data");
        assert_eq!(run("{{len .Mounts}} {{len .Name}}", &d), "2 14");
    }

    #[test]
    fn trimming_and_comments() {
        let d = inspect();
        assert_eq!(run("a  {{- .State.Status -}}  \n b", &d), "arunningb");
        assert_eq!(
            run("{{range .Config.Cmd -}}\n  {{.}}\n{{- end}}", &d),
            "sh-cecho hi"
        );
        assert_eq!(run("x {{/* note */}} y", &d), "x  y");
        assert_eq!(run("x {{- /* note */ -}} y", &d), "xy");
        assert_eq!(run("{{-3}}", &d), "-3");
    }

    #[test]
    fn label_method() {
        let row = json!({"Names": "web", "Labels": "com.docker.compose.project=shop,tier=front"});
        assert_eq!(
            run(r#"{{.Label "tier"}}|{{.Label "nope"}}"#, &row),
            "front|"
        );
        let obj = json!({"Labels": {"tier": "back"}});
        assert_eq!(run(r#"{{.Label "tier"}}"#, &obj), "back");
    }

    #[test]
    fn execution_errors_read_like_go() {
        let d = inspect();
        assert_eq!(
            fails("{{.State.Health.Status}}", &d),
            "template: :1:8: executing \"\" at <.State.Health.Status>: nil pointer evaluating interface {}.Status"
        );
        assert_eq!(
            fails("{{json .State.Health.Status}}", &d),
            "template: :1:13: executing \"\" at <.State.Health.Status>: nil pointer evaluating interface {}.Status"
        );
        assert_eq!(
            fails("{{.Name.First}}", &d),
            "template: :1:7: executing \"\" at <.Name.First>: can't evaluate field First in type interface {}"
        );
        assert_eq!(
            fails("{{upper .State.Pid}}", &d),
            "template: :1:14: executing \"\" at <.State.Pid>: wrong type for value; expected string; got int"
        );
        assert_eq!(
            fails("{{upper .Nope}}", &d),
            "template: :1:8: executing \"\" at <.Nope>: invalid value; expected string"
        );
        assert_eq!(
            fails("line one\n{{upper 3}}", &d),
            "template: :2:8: executing \"\" at <3>: expected string; found 3"
        );
        assert_eq!(
            fails("{{join .Config.Cmd}}", &d),
            "template: :1:2: executing \"\" at <join>: wrong number of args for join: want 2 got 1"
        );
        assert_eq!(
            fails("{{\"x\" 1}}", &d),
            "template: :1:2: executing \"\" at <\"x\">: can't give argument to non-function \"x\""
        );
        assert_eq!(
            fails("{{eq .Name 1}}", &d),
            "template: :1:2: executing \"\" at <eq>: error calling eq: incompatible types for comparison"
        );
    }

    #[test]
    fn parse_errors_read_like_go() {
        let d = Value::Null;
        assert_eq!(
            fails("{{nope .X}}", &d),
            "template: :1: function \"nope\" not defined"
        );
        assert_eq!(fails("{{.X", &d), "template: :1: unclosed action");
        assert_eq!(fails("{{if .X}}", &d), "template: :1: unexpected EOF");
        assert_eq!(fails("a\n{{end}}", &d), "template: :2: unexpected {{end}}");
        assert_eq!(fails("{{}}", &d), "template: :1: missing value for command");
        assert_eq!(
            fails("{{$x}}", &d),
            "template: :1: undefined variable \"$x\""
        );
        assert_eq!(
            fails("{{break}}", &d),
            "template: :1: {{break}} outside {{range}}"
        );
        assert_eq!(
            fails("{{\"abc}}", &d),
            "template: :1: unterminated quoted string"
        );
        assert_eq!(
            fails("{{.X 3 | 4}}", &d),
            "template: :1: non executable command in pipeline stage 2"
        );
        assert_eq!(fails("{{.X}", &d), "template: :1: bad character U+007D '}'");
        assert_eq!(
            fails("{{template \"x\"}}", &d),
            "template: :1: {{template}} is not supported"
        );
    }

    fn ps_rows() -> Vec<Value> {
        vec![
            json!({"ID": "3f2a9c1b7d4e", "Image": "busybox", "Names": "boring_turing", "Status": "Up 4 seconds", "CreatedAt": "2024-01-01"}),
            json!({"ID": "a1b2c3d4e5f6", "Image": "nginx:latest", "Names": "web", "Status": "Exited (0) 1 hour ago", "CreatedAt": "2024-01-02"}),
        ]
    }

    const NAMES: &[(&str, &str)] = &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Names", "NAMES"),
        ("Status", "STATUS"),
    ];

    #[test]
    fn format_parse_kinds() {
        assert!(Format::parse("table").unwrap().is_table());
        assert!(Format::parse("table").unwrap().needs_default());
        assert!(Format::parse("").unwrap().needs_default());
        assert!(Format::parse("json").unwrap().is_json());
        assert!(!Format::parse("{{.ID}}").unwrap().is_table());
        assert!(Format::parse("table {{.ID}}").unwrap().is_table());
        assert!(Format::parse("{{.ID").is_err());
        let f = Format::parse("json").unwrap();
        assert_eq!(
            f.render(&json!({"b": 1, "a": [true]})).unwrap(),
            r#"{"a":[true],"b":1}"#
        );
        assert_eq!(f.header(NAMES), None);
    }

    #[test]
    fn raw_format_unescapes_and_trims() {
        let f = Format::parse(r"  {{.ID}}\t{{.Names}}\n ").unwrap();
        assert_eq!(
            f.render(&ps_rows()[0]).unwrap(),
            "3f2a9c1b7d4e\tboring_turing\n"
        );
        assert_eq!(
            f.render_table(&ps_rows(), NAMES).unwrap(),
            "3f2a9c1b7d4e\tboring_turing\n\na1b2c3d4e5f6\tweb\n\n"
        );
        assert_eq!(f.header(NAMES), None);
    }

    #[test]
    fn table_format_with_header() {
        let f = Format::parse(r"table {{.ID}}\t{{.Image}}\t{{.Names}}").unwrap();
        assert_eq!(f.header(NAMES).unwrap(), "CONTAINER ID\tIMAGE\tNAMES");
        assert_eq!(
            f.render_table(&ps_rows(), NAMES).unwrap(),
            "CONTAINER ID   IMAGE          NAMES\n3f2a9c1b7d4e   busybox        boring_turing\na1b2c3d4e5f6   nginx:latest   web\n"
        );
        assert_eq!(
            f.render_table(&[], NAMES).unwrap(),
            "CONTAINER ID   IMAGE     NAMES\n"
        );
    }

    #[test]
    fn table_header_derivation() {
        let f = Format::parse(r"table {{.ID}}: {{upper .Status}}\t{{.CreatedAt}}\t{{json .State.Status}}\t{{index .Labels `a`}}").unwrap();
        assert_eq!(
            f.header(NAMES).unwrap(),
            "CONTAINER ID: STATUS\tCREATED AT\tSTATUS\tA"
        );
        let f = Format::parse(r"table {{.id}}\t{{.IPAddress}}\t{{printf `%-6s|` .Names}}\t{{.Label `com.docker.compose.project`}}").unwrap();
        assert_eq!(
            f.header(NAMES).unwrap(),
            "CONTAINER ID\tIP ADDRESS\tNAMES |\tPROJECT"
        );
        let f = Format::parse(r"table {{range .Mounts}}{{.Source}} {{end}}").unwrap();
        assert_eq!(f.header(NAMES).unwrap(), "SOURCE ");
    }

    #[test]
    fn bare_table_takes_the_default() {
        let f = Format::parse("table").unwrap();
        assert!(f.render(&json!({})).is_err());
        let f = f.with_default(r"table {{.ID}}\t{{.Names}}").unwrap();
        assert_eq!(
            f.render_table(&ps_rows(), NAMES).unwrap(),
            "CONTAINER ID   NAMES\n3f2a9c1b7d4e   boring_turing\na1b2c3d4e5f6   web\n"
        );
        let f = Format::parse("{{.ID}}")
            .unwrap()
            .with_default("{{.Names}}")
            .unwrap();
        assert_eq!(f.render(&ps_rows()[1]).unwrap(), "a1b2c3d4e5f6");
    }

    #[test]
    fn row_errors_propagate() {
        let f = Format::parse("table {{.ID.X}}").unwrap();
        assert_eq!(
            f.render_table(&ps_rows(), NAMES).unwrap_err(),
            "template: :1:5: executing \"\" at <.ID.X>: can't evaluate field X in type interface {}"
        );
    }

    // No user input makes berth abort: Go's limits where Go has them, an
    // error where Go would die trying to allocate.

    #[test]
    fn printf_widths_and_precisions_have_gos_limits() {
        let d = json!({"ID": "abc"});
        let cases = [
            // A written number past a million: Go gives up on the rest.
            (
                r#"{{printf "%99999999999s" .ID}}"#,
                "%!(NOVERB)%!(EXTRA string=abc)",
            ),
            (
                r#"{{printf "%10000010s" .ID}}"#,
                "%!(NOVERB)%!(EXTRA string=abc)",
            ),
            (r#"{{printf "%10000009s" .ID | len}}"#, "10000009"),
            (
                r#"{{printf "%.99999999999s|" .ID}}"#,
                "%!(NOVERB)%!(EXTRA string=abc)",
            ),
            // A `*` argument past a million, negative (precision) or not an integer.
            (r#"{{printf "%*s" 1000001 .ID}}"#, "%!(BADWIDTH)abc"),
            (r#"{{printf "%*s" 1000000 .ID | len}}"#, "1000000"),
            (r#"{{printf "%*s" "x" .ID}}"#, "%!(BADWIDTH)abc"),
            (r#"{{printf "%.*s" 1000001 .ID}}"#, "%!(BADPREC)abc"),
            (r#"{{printf "%.*s" -1 .ID}}"#, "%!(BADPREC)abc"),
            (r#"{{printf "%.*s" "x" .ID}}"#, "%!(BADPREC)abc"),
            (r#"{{printf "%-*s|" -3 "a"}}"#, "a  |"),
            (r#"{{printf "%*s"}}"#, "%!(BADWIDTH)%!s(MISSING)"),
            (r#"{{printf "%.*s" 2}}"#, "%!s(MISSING)"),
            // A '.' at the very end is the verb.
            (r#"{{printf "%."}}"#, "%!.(MISSING)"),
            (r#"{{printf "%.s|" "abc"}}"#, "|"),
        ];
        for (src, want) in cases {
            assert_eq!(run(src, &d), want, "{src}");
        }
    }

    #[test]
    fn what_would_exhaust_memory_is_an_error() {
        let d = json!({"ID": "abc", "Names": ["a", "b"]});
        let over = "output over 64 MiB";
        for src in [
            r#"{{pad .ID 99999999999 0}}"#,
            r#"{{pad .ID 0 9223372036854775807}}"#,
            // Doubling a variable.
            r#"{{$x := "ab"}}{{range 100}}{{$x = printf "%s%s" $x $x}}{{end}}"#,
            r#"{{$x := "ab"}}{{range 100}}{{$x = print $x $x}}{{end}}"#,
            r#"{{$x := "ab"}}{{range 100}}{{$x = println $x $x}}{{end}}"#,
            r#"{{$x := split "a,b" ","}}{{range 100}}{{$x = split (join $x ",,") ""}}{{end}}"#,
            // A width applied to every element of a long list.
            r#"{{$l := split (printf "%1000000s" "") ""}}{{printf "%1000000v" $l}}"#,
            // Output that never ends.
            r#"{{range 99999999999}}{{printf "%1000000d" .}}{{end}}"#,
        ]
        .into_iter()
        .map(str::to_string)
        .chain([format!(
            "{{{{range 99999999999}}}}{}{{{{end}}}}",
            "x".repeat(100_000)
        )]) {
            let e = fails(&src, &d);
            assert!(e.contains(over), "{src}: {e}");
        }
        // Within the budget all is well.
        assert_eq!(run(r#"{{pad .ID 2 1}}"#, &d), "  abc ");
        assert_eq!(run(r#"{{range 3}}{{.}}{{end}}"#, &d), "012");
        assert_eq!(run(r#"{{range -3}}x{{else}}none{{end}}"#, &d), "none");
        assert_eq!(run(r#"{{index .Names 1}}"#, &d), "b");
        assert!(fails(r#"{{index .Names 99}}"#, &d).contains("index out of range: 99"));
        assert!(fails(r#"{{index .Names -1}}"#, &d).contains("index out of range: -1"));
        assert!(fails(r#"{{truncate .ID -1}}"#, &d).contains("slice bounds out of range [:-1]"));
        assert!(fails(r#"{{pad .ID -1 0}}"#, &d).contains("negative Repeat count"));
    }

    #[test]
    fn nesting_is_limited_rather_than_overflowing_the_stack() {
        let d = json!({});
        let parens = |n: usize| format!("{{{{{}1{}}}}}", "(".repeat(n), ")".repeat(n));
        let ifs = |n: usize| format!("{}x{}", "{{if 1}}".repeat(n), "{{end}}".repeat(n));
        let else_ifs = |n: usize| format!("{{{{if 0}}}}{}x{{{{end}}}}", "{{else if 0}}".repeat(n));
        assert_eq!(run(&parens(MAX_DEPTH), &d), "1");
        assert_eq!(run(&ifs(MAX_DEPTH), &d), "x");
        assert_eq!(run(&else_ifs(MAX_DEPTH - 1), &d), "");
        for src in [
            parens(MAX_DEPTH + 1),
            ifs(MAX_DEPTH + 1),
            else_ifs(MAX_DEPTH),
        ] {
            let e = fails(&src, &d);
            assert!(e.contains("max expression depth exceeded"), "{e}");
        }
        // Far deeper than any stack: refused just the same.
        assert!(fails(&parens(100_000), &d).contains("max expression depth exceeded"));
        assert!(fails(&ifs(20_000), &d).contains("max expression depth exceeded"));
    }
}
