//! The tokens of the command grammar (RFC 9051 §9) and the cursor that
//! reads them: [`P`], a position in one framed command, with the atoms,
//! numbers, quoted strings, literals (and where a literal was diverted),
//! `string`, `astring`, `nstring` and parenthesized lists every command's
//! arguments are built from. The character classes are
//! [`crate::proto::chars`], shared with the framer and the encoder.
//!
//! ```text
//! atom          = 1*ATOM-CHAR
//! number        = 1*DIGIT          ; 32 bits
//! number64      = 1*DIGIT          ; 63 bits
//! nz-number     = digit-nz *DIGIT
//! quoted        = DQUOTE *QUOTED-CHAR DQUOTE
//! literal       = "{" number64 ["+"] "}" CRLF *CHAR8
//! literal8      = "~{" number64 ["+"] "}" CRLF *OCTET
//! string        = quoted / literal
//! astring       = 1*ASTRING-CHAR / string
//! nstring       = string / nil
//! ```
//!
//! Never decides what a token means: a keyword is handed back upper-cased
//! for the command readers to match, and no reader here looks past the
//! token it was asked for.

use encoding_rs::Encoding;

use super::super::chars::{is_astring_char, is_atom_char, is_tag_char};
use crate::proto::command::AppendData;

/// Internal failure: a BAD text or the charset refusal.
#[derive(Debug)]
pub(super) enum Fail {
    Bad(String),
    Charset,
}

pub(super) type R<T> = Result<T, Fail>;

pub(super) fn bad<T>(text: impl Into<String>) -> R<T> {
    Err(Fail::Bad(text.into()))
}

/// The cursor over one command.
pub(super) struct P<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    pub(super) depth: usize,
    /// SEARCH `CHARSET`; `None` means UTF-8.
    pub(super) charset: Option<&'static Encoding>,
    /// Offsets where a diverted literal's data would have begun.
    pub(super) diverted: &'a [usize],
}

impl<'a> P<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        P {
            b,
            i: 0,
            depth: 0,
            charset: None,
            diverted: &[],
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or_default()
    }

    pub(super) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn at_end(&self) -> bool {
        matches!(self.rest(), b"" | b"\r\n" | b"\n")
    }

    pub(super) fn end(&self) -> R<()> {
        if self.at_end() {
            Ok(())
        } else {
            bad("Unexpected extra arguments")
        }
    }

    pub(super) fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else if self.at_end() {
            bad("Missing argument")
        } else {
            bad(format!("Expected '{}'", c as char))
        }
    }

    pub(super) fn sp(&mut self) -> R<()> {
        if self.eat(b' ') {
            Ok(())
        } else if self.at_end() {
            bad("Missing argument")
        } else {
            bad("Expected a space")
        }
    }

    /// Takes the longest run of bytes matching `f`.
    pub(super) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    pub(super) fn missing_or(&self, what: &str) -> Fail {
        if self.at_end() {
            Fail::Bad("Missing argument".into())
        } else {
            Fail::Bad(what.into())
        }
    }

    /// `tag SP`.
    pub(super) fn tag(&mut self) -> R<String> {
        let t = self.take_while(is_tag_char);
        if t.is_empty() || !self.eat(b' ') {
            return bad("Missing or invalid tag");
        }
        Ok(String::from_utf8_lossy(t).into_owned())
    }

    /// `atom` (RFC 9051 §9).
    pub(super) fn atom(&mut self) -> R<&'a [u8]> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(self.missing_or("Expected an atom"));
        }
        Ok(a)
    }

    /// `objectid = 1*255(ALPHA / DIGIT / "_" / "-")` (RFC 8474 §7): an
    /// atom of other characters, or a longer one, is BAD.
    pub(super) fn objectid(&mut self) -> R<String> {
        let a = self.atom()?;
        let ok = a.len() <= 255
            && a.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return bad("Invalid object ID");
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    /// An atom, upper-cased, for keyword matching.
    pub(super) fn keyword(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// True if the next atom is `kw` (case-insensitive); does not consume.
    pub(super) fn peek_kw(&self, kw: &str) -> bool {
        let r = self.rest();
        r.len() >= kw.len()
            && r[..kw.len()].eq_ignore_ascii_case(kw.as_bytes())
            && r.get(kw.len()).is_none_or(|&b| !is_atom_char(b))
    }

    pub(super) fn digits(&mut self) -> R<&'a [u8]> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() {
            return Err(self.missing_or("Expected a number"));
        }
        Ok(d)
    }

    /// `number64` (RFC 9051 §9).
    pub(super) fn number64(&mut self) -> R<u64> {
        let d = self.digits()?;
        d.iter()
            .try_fold(0u64, |acc, &c| {
                acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
            })
            .ok_or_else(|| Fail::Bad("Number too large".into()))
    }

    /// `number` (32-bit).
    pub(super) fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| Fail::Bad("Number too large".into()))
    }

    /// `nz-number`.
    pub(super) fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => bad("Number must not be zero"),
            n => Ok(n),
        }
    }

    /// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`; only `\"` and `\\` escapes.
    pub(super) fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n' | 0) => return bad("Unterminated quoted string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.i += 1;
                        }
                        _ => return bad("Invalid escape in quoted string"),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `literal` / `literal8`: `["~"] "{" number64 ["+"] "}" CRLF *OCTET`.
    /// Returns the data and whether it was a literal8.
    pub(super) fn literal(&mut self, allow8: bool) -> R<(Vec<u8>, bool)> {
        match self.literal_or_diverted(allow8)? {
            (AppendData::Bytes(data), binary) => Ok((data, binary)),
            (AppendData::Diverted { .. } | AppendData::Catenate(_), _) => {
                bad("Literal too large here")
            }
        }
    }

    /// A literal, or where one was diverted (see the module doc).
    pub(super) fn literal_or_diverted(&mut self, allow8: bool) -> R<(AppendData, bool)> {
        let binary = self.eat(b'~');
        if binary && !allow8 {
            return bad("Binary literal not allowed here");
        }
        self.expect(b'{')?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        // CRLF, or a bare LF when called on unframed input.
        self.eat(b'\r');
        if !self.eat(b'\n') {
            return bad("Expected CRLF after literal size");
        }
        if let Ok(index) = self.diverted.binary_search(&self.i) {
            return Ok((AppendData::Diverted { index, size: n }, binary));
        }
        let data = usize::try_from(n)
            .ok()
            .and_then(|n| self.b.get(self.i..self.i.checked_add(n)?))
            .ok_or_else(|| Fail::Bad("Literal data incomplete".into()))?;
        self.i += data.len();
        Ok((AppendData::Bytes(data.to_vec()), binary))
    }

    /// `string = quoted / literal`.
    pub(super) fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal(false)?.0),
            _ => Err(self.missing_or("Expected a string")),
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`.
    pub(super) fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    return Err(self.missing_or("Expected a string"));
                }
                Ok(a.to_vec())
            }
        }
    }

    /// `nstring = string / NIL`.
    pub(super) fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if self.peek_kw("NIL") {
            self.i += 3;
            return Ok(None);
        }
        self.string().map(Some)
    }

    pub(super) fn utf8(bytes: Vec<u8>) -> R<String> {
        String::from_utf8(bytes).map_err(|_| Fail::Bad("Invalid UTF-8 in string".into()))
    }

    /// A parenthesized list of items, each parsed by `f`; `allow_empty`
    /// permits `()`.
    pub(super) fn paren_list<T>(
        &mut self,
        allow_empty: bool,
        mut f: impl FnMut(&mut Self) -> R<T>,
    ) -> R<Vec<T>> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        if self.eat(b')') {
            if allow_empty {
                return Ok(out);
            }
            return bad("Empty list");
        }
        loop {
            out.push(f(self)?);
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }

    /// The command name and, after `UID`, the sub-command, upper-cased,
    /// without consuming them.
    pub(super) fn peek_names(&self) -> (String, Option<String>) {
        let mut q = P::new(self.b);
        q.i = self.i;
        let name = String::from_utf8_lossy(q.take_while(is_atom_char)).to_ascii_uppercase();
        let sub = (name == "UID" && q.eat(b' '))
            .then(|| String::from_utf8_lossy(q.take_while(is_atom_char)).to_ascii_uppercase());
        (name, sub)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn bad_tokens() {
        bad(&[
            (
                b"a LOGIN \"bob\r\n",
                Some("a"),
                "Unterminated quoted string",
            ),
            (
                b"a LOGIN \"b\\ob\" x\r\n",
                Some("a"),
                "Invalid escape in quoted string",
            ),
            (
                b"a LOGIN {10}\r\nbob\r\n",
                Some("a"),
                "Literal data incomplete",
            ),
            (
                b"a LOGIN \"\xff\" x\r\n",
                Some("a"),
                "Invalid UTF-8 in string",
            ),
        ]);
    }
}
