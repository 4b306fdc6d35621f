//! apk version ordering, as apk-tools' `apk_version_compare`: a version is a token
//! stream `DIGITS(.DIGITS)*[LETTER](_SUFFIX[DIGITS])*[-rDIGITS]`, compared token by
//! token. Suffixes `_alpha`, `_beta`, `_pre`, `_rc` sort before the version without
//! them; `_cvs`, `_svn`, `_git`, `_hg`, `_p` after. A number after a dot with a
//! leading zero compares as a fraction (`1.01 < 1.1`). When one version runs out
//! first, the other is newer, unless what remains is a pre-release suffix.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Invalid,
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    RevisionNo,
    End,
}

const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    ty: Token,
}

impl Lexer<'_> {
    fn digits(&mut self) -> i64 {
        let mut v: i64 = 0;
        while let Some(c) = self.s.get(self.i).filter(|c| c.is_ascii_digit()) {
            v = v.saturating_mul(10).saturating_add(i64::from(c - b'0'));
            self.i += 1;
        }
        v
    }

    /// The value of the current token; moves `ty` to the next token's type.
    fn token(&mut self) -> i64 {
        let v = match self.ty {
            Token::DigitOrZero if self.s.get(self.i) == Some(&b'0') => {
                let start = self.i;
                while self.s.get(self.i) == Some(&b'0') {
                    self.i += 1;
                }
                let zeros = (self.i - start) as i64;
                if self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    // The rest of the number is the next token.
                    self.ty = Token::Digit;
                    return -zeros;
                }
                -zeros
            }
            Token::DigitOrZero | Token::Digit | Token::SuffixNo | Token::RevisionNo => {
                self.digits()
            }
            Token::Letter => {
                let c = self.s.get(self.i).copied().unwrap_or(0);
                self.i += 1;
                i64::from(c)
            }
            Token::Suffix => {
                let rest = &self.s[self.i.min(self.s.len())..];
                if let Some(k) = PRE.iter().position(|p| rest.starts_with(p.as_bytes())) {
                    self.i += PRE[k].len();
                    k as i64 - PRE.len() as i64
                } else if let Some(k) = POST.iter().position(|p| rest.starts_with(p.as_bytes())) {
                    self.i += POST[k].len();
                    k as i64
                } else {
                    self.ty = Token::Invalid;
                    return -1;
                }
            }
            Token::Invalid | Token::End => return -1,
        };
        self.next();
        v
    }

    fn next(&mut self) {
        let cur = self.ty;
        let c = self.s.get(self.i).copied();
        let mut n = Token::Invalid;
        match c {
            None => n = Token::End,
            Some(c)
                if matches!(cur, Token::Digit | Token::DigitOrZero) && c.is_ascii_lowercase() =>
            {
                n = Token::Letter
            }
            Some(c) if cur == Token::Letter && c.is_ascii_digit() => n = Token::Digit,
            Some(c) if cur == Token::Suffix && c.is_ascii_digit() => n = Token::SuffixNo,
            Some(c) => {
                match c {
                    b'.' => n = Token::DigitOrZero,
                    b'_' => n = Token::Suffix,
                    b'-' if self.s.get(self.i + 1) == Some(&b'r') => {
                        n = Token::RevisionNo;
                        self.i += 1;
                    }
                    _ => {}
                }
                self.i += 1;
            }
        }
        if n < cur
            && !((n == Token::DigitOrZero && cur == Token::Digit)
                || (n == Token::Suffix && cur == Token::SuffixNo)
                || (n == Token::Digit && cur == Token::Letter))
        {
            n = Token::Invalid;
        }
        self.ty = n;
    }
}

pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let mut a = Lexer {
        s: a.trim().as_bytes(),
        i: 0,
        ty: Token::Digit,
    };
    let mut b = Lexer {
        s: b.trim().as_bytes(),
        i: 0,
        ty: Token::Digit,
    };
    let (mut av, mut bv) = (0i64, 0i64);
    while a.ty == b.ty && a.ty != Token::End && a.ty != Token::Invalid && av == bv {
        av = a.token();
        bv = b.token();
    }
    match av.cmp(&bv) {
        Ordering::Equal => {}
        o => return o,
    }
    if a.ty == b.ty {
        return Ordering::Equal;
    }
    if a.ty == Token::Suffix && a.token() < 0 {
        return Ordering::Less;
    }
    if b.ty == Token::Suffix && b.token() < 0 {
        return Ordering::Greater;
    }
    // The version whose next token type is later (the end) is older.
    b.ty.cmp(&a.ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn apk_examples() {
        // Cases in the spirit of apk-tools' test/version.data.
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
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
