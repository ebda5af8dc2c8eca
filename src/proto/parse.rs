//! One framed command (line plus inline literals, from [`super::frame`]) ->
//! [`Command`]. Pure: no I/O, no clock, no panics on any input.
//!
//! # One grammar
//! SPEC §7 asked for imap-codec where it covers the grammar; issue 16 asks
//! for one grammar at runtime. This reader is it: one recursive-descent
//! parser of the RFC 9051 command grammar plus CONDSTORE, ESEARCH,
//! SEARCHRES, LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CREATE-SPECIAL-USE,
//! MULTIAPPEND, BINARY, LITERAL+, UNSELECT, MOVE, UIDPLUS, ENABLE, ID,
//! WITHIN and UTF8 APPEND. imap-codec (pinned `=2.0.0-alpha.10`) is kept
//! as the oracle it is checked against, never run on a client's bytes,
//! because for nestbox it could only ever have been half of the grammar:
//! - it lacks `$` (SEARCHRES, RFC 5182) in `sequence-set`; SEARCH
//!   `RETURN (...)` (ESEARCH), `OLDER`/`YOUNGER` (WITHIN), and caps
//!   search-key nesting at 9, below what real clients send;
//! - LIST selection options, pattern lists and `RETURN (...)`, CREATE
//!   `(USE (...))`, MULTIAPPEND;
//! - it folds a mailbox argument equal to `inbox` in any case into
//!   `Mailbox::Inbox`, losing the spelling that
//!   [`super::command::MailboxArg`] promises to keep;
//! - atoms with 8-bit bytes (`SELECT Entwürfe`), which UTF-8 clients send;
//! - its errors carry no human text for the BAD answer.
//!
//! Running it first for the commands it covers (FETCH, STORE, LOGIN...)
//! and this parser for the rest, and for whatever it refused, meant two
//! readers of one command and a second parse of bytes the first refused.
//! Instead, the `codec` submodule (built for tests, and for the fuzz
//! targets with the `oracle` feature) converts imap-codec's value into our
//! AST, and `agrees_with_imap_codec`, two property tests and the
//! `parse_oracle` fuzz target (`proto::fuzzing`, also run in `cargo test`'s
//! smoke mode) check that wherever imap-codec accepts one of the commands
//! it covers, this parser reads the same value. SORT and THREAD (RFC 5256),
//! which imap-codec does not have at all, are read in the `sort` submodule.
//!
//! # Diverted literals
//! A big APPEND message does not reach the parser: the framer diverted it
//! (the session spools it to disk) and the command holds only its
//! announcement. [`parse_command_diverted`] is told where such literals
//! were; an APPEND message there becomes [`AppendData::Diverted`], and a
//! diverted literal anywhere else (a mailbox name, say) is an error, as no
//! other value could be made from bytes the parser never saw.
//!
//! # Errors
//! Whenever the tag could be read, errors carry it
//! ([`ParseError::Bad`]), so the session answers `tag BAD text` and goes on.
//! Search-key nesting (parentheses, NOT, OR) is bounded by
//! [`MAX_SEARCH_DEPTH`], so hostile input cannot exhaust the stack.
//!
//! # Leniency
//! Line ends may be CRLF or LF (the framer normalises to CRLF anyway).
//! Mailbox names and other astrings accept 8-bit bytes in atoms and quoted
//! strings when they are valid UTF-8 (clients send UTF-8 names under
//! IMAP4rev2 / UTF8=ACCEPT; the session decides what they mean).

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use encoding_rs::Encoding;

use super::command::*;
use crate::flags::{Flag, FlagOp};

mod catenate;
#[cfg(any(test, feature = "oracle"))]
#[doc(hidden)]
pub mod codec;
mod sort;

/// Why a command could not be parsed.
#[derive(Debug, PartialEq)]
pub enum ParseError {
    /// The client's mistake: answer `tag BAD text` (`* BAD` without a tag).
    Bad { tag: Option<String>, text: String },
    /// SEARCH with a charset we cannot decode: answer
    /// `tag NO [BADCHARSET (UTF-8 US-ASCII)] ...`.
    BadCharset { tag: String },
}

/// Deepest nesting of search keys (parentheses, `NOT`, `OR`) accepted.
pub const MAX_SEARCH_DEPTH: usize = 100;

/// Internal failure: a BAD text or the charset refusal.
#[derive(Debug)]
enum Fail {
    Bad(String),
    Charset,
}

type R<T> = Result<T, Fail>;

fn bad<T>(text: impl Into<String>) -> R<T> {
    Err(Fail::Bad(text.into()))
}

/// Parses one complete command: `tag SP command CRLF`, the literals inline
/// (as [`super::frame::Frame::Command`] delivers it).
pub fn parse_command(bytes: &[u8]) -> Result<Command, ParseError> {
    parse_command_diverted(bytes, &[])
}

/// [`parse_command`] for a command some of whose literals were diverted
/// ([`super::frame::Frame::Command`]): `diverted` holds the offsets in
/// `bytes` right after each such literal's announcement, ascending.
pub fn parse_command_diverted(bytes: &[u8], diverted: &[usize]) -> Result<Command, ParseError> {
    let mut p = P::new(bytes);
    p.diverted = diverted;
    let tag = p.tag().map_err(|_| tag_error(bytes))?;
    own(p, tag)
}

/// A `section-spec` (RFC 9051 §9) on its own, as an IMAP URL carries it
/// (RFC 5092 `enc-section`, already %-decoded): the same reader as
/// FETCH's, so a URL names exactly the sections FETCH does.
pub fn parse_section_spec(spec: &[u8]) -> Option<Section> {
    let mut b = Vec::with_capacity(spec.len() + 2);
    b.push(b'[');
    b.extend_from_slice(spec);
    b.push(b']');
    let mut p = P::new(&b);
    let s = p.section().ok()?;
    (p.i == b.len()).then_some(s)
}

/// Whether `head`, the start of a command, is an APPEND (`tag SP "APPEND"
/// SP`, any case): the one command whose literals the session may divert.
pub fn is_append(head: &[u8]) -> bool {
    let mut p = P::new(head);
    p.tag().is_ok() && p.peek_names().0 == "APPEND" && head.get(p.i + 6) == Some(&b' ')
}

/// The error for a command whose tag is not followed by a space: tagged
/// when the tag itself is whole and the line simply ends after it (`a1`
/// alone: RFC 9051 §7.1 answers BAD with the tag when it can be
/// determined, and a client waits for its tag), untagged when no valid tag
/// can be read at all.
fn tag_error(bytes: &[u8]) -> ParseError {
    let n = bytes
        .iter()
        .position(|&c| !super::frame::is_tag_char(c))
        .unwrap_or(bytes.len());
    match bytes.get(n) {
        Some(b'\r' | b'\n') | None if n > 0 => ParseError::Bad {
            tag: Some(String::from_utf8_lossy(&bytes[..n]).into_owned()),
            text: "Missing command".into(),
        },
        _ => no_tag(),
    }
}

fn no_tag() -> ParseError {
    ParseError::Bad {
        tag: None,
        text: "Missing or invalid tag".into(),
    }
}

/// Our own parser, for the whole grammar, after the tag.
fn own(mut p: P<'_>, tag: String) -> Result<Command, ParseError> {
    match p.command() {
        Ok(body) => Ok(Command { tag, body }),
        Err(Fail::Bad(text)) => Err(ParseError::Bad {
            tag: Some(tag),
            text,
        }),
        Err(Fail::Charset) => Err(ParseError::BadCharset { tag }),
    }
}

/// `ATOM-CHAR` (RFC 9051 §9): any CHAR except atom-specials
/// `( ) { SP CTL % * " \ ]`.
pub(crate) fn is_atom_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR` (ATOM-CHAR / `]`), plus 8-bit bytes (UTF-8 names).
fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']' || b >= 0x80
}

/// `list-char` (ATOM-CHAR / list-wildcards / resp-specials), plus 8-bit.
fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// The cursor over one command.
struct P<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// SEARCH `CHARSET`; `None` means UTF-8.
    charset: Option<&'static Encoding>,
    /// Offsets where a diverted literal's data would have begun.
    diverted: &'a [usize],
}

impl<'a> P<'a> {
    fn new(b: &'a [u8]) -> Self {
        P {
            b,
            i: 0,
            depth: 0,
            charset: None,
            diverted: &[],
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or_default()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn at_end(&self) -> bool {
        matches!(self.rest(), b"" | b"\r\n" | b"\n")
    }

    fn end(&self) -> R<()> {
        if self.at_end() {
            Ok(())
        } else {
            bad("Unexpected extra arguments")
        }
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else if self.at_end() {
            bad("Missing argument")
        } else {
            bad(format!("Expected '{}'", c as char))
        }
    }

    fn sp(&mut self) -> R<()> {
        if self.eat(b' ') {
            Ok(())
        } else if self.at_end() {
            bad("Missing argument")
        } else {
            bad("Expected a space")
        }
    }

    /// Takes the longest run of bytes matching `f`.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    fn missing_or(&self, what: &str) -> Fail {
        if self.at_end() {
            Fail::Bad("Missing argument".into())
        } else {
            Fail::Bad(what.into())
        }
    }

    /// `tag SP`.
    fn tag(&mut self) -> R<String> {
        let t = self.take_while(super::frame::is_tag_char);
        if t.is_empty() || !self.eat(b' ') {
            return bad("Missing or invalid tag");
        }
        Ok(String::from_utf8_lossy(t).into_owned())
    }

    /// `atom` (RFC 9051 §9).
    fn atom(&mut self) -> R<&'a [u8]> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(self.missing_or("Expected an atom"));
        }
        Ok(a)
    }

    /// An atom, upper-cased, for keyword matching.
    fn keyword(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// True if the next atom is `kw` (case-insensitive); does not consume.
    fn peek_kw(&self, kw: &str) -> bool {
        let r = self.rest();
        r.len() >= kw.len()
            && r[..kw.len()].eq_ignore_ascii_case(kw.as_bytes())
            && r.get(kw.len()).is_none_or(|&b| !is_atom_char(b))
    }

    fn digits(&mut self) -> R<&'a [u8]> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() {
            return Err(self.missing_or("Expected a number"));
        }
        Ok(d)
    }

    /// `number64` (RFC 9051 §9).
    fn number64(&mut self) -> R<u64> {
        let d = self.digits()?;
        d.iter()
            .try_fold(0u64, |acc, &c| {
                acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
            })
            .ok_or_else(|| Fail::Bad("Number too large".into()))
    }

    /// `number` (32-bit).
    fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| Fail::Bad("Number too large".into()))
    }

    /// `nz-number`.
    fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => bad("Number must not be zero"),
            n => Ok(n),
        }
    }

    /// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`; only `\"` and `\\` escapes.
    fn quoted(&mut self) -> R<Vec<u8>> {
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
    fn literal(&mut self, allow8: bool) -> R<(Vec<u8>, bool)> {
        match self.literal_or_diverted(allow8)? {
            (AppendData::Bytes(data), binary) => Ok((data, binary)),
            (AppendData::Diverted { .. } | AppendData::Catenate(_), _) => {
                bad("Literal too large here")
            }
        }
    }

    /// A literal, or where one was diverted (see the module doc).
    fn literal_or_diverted(&mut self, allow8: bool) -> R<(AppendData, bool)> {
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
    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal(false)?.0),
            _ => Err(self.missing_or("Expected a string")),
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`.
    fn astring(&mut self) -> R<Vec<u8>> {
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
    fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if self.peek_kw("NIL") {
            self.i += 3;
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn utf8(bytes: Vec<u8>) -> R<String> {
        String::from_utf8(bytes).map_err(|_| Fail::Bad("Invalid UTF-8 in string".into()))
    }

    /// `mailbox` (an astring, decoded; `INBOX` not folded).
    fn mailbox(&mut self) -> R<String> {
        Self::utf8(self.astring()?)
    }

    /// `list-mailbox = 1*list-char / string`.
    fn list_mailbox(&mut self) -> R<String> {
        match self.peek() {
            Some(b'"' | b'{') => Self::utf8(self.string()?),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    return Err(self.missing_or("Expected a mailbox pattern"));
                }
                Self::utf8(a.to_vec())
            }
        }
    }

    /// `flag` (RFC 9051 §9): a system flag, `\Extension` or a keyword.
    fn flag(&mut self) -> R<Flag> {
        if self.eat(b'\\') {
            let a = self.take_while(is_atom_char);
            if a.is_empty() {
                return bad("Invalid flag");
            }
            let name = String::from_utf8_lossy(a).into_owned();
            return Ok(match name.to_ascii_uppercase().as_str() {
                "SEEN" => Flag::Seen,
                "ANSWERED" => Flag::Answered,
                "FLAGGED" => Flag::Flagged,
                "DELETED" => Flag::Deleted,
                "DRAFT" => Flag::Draft,
                _ => Flag::Extension(name),
            });
        }
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(self.missing_or("Invalid flag"));
        }
        Ok(Flag::Keyword(String::from_utf8_lossy(a).into_owned()))
    }

    /// `flag-list = "(" [flag *(SP flag)] ")"`.
    fn flag_list(&mut self) -> R<Vec<Flag>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    /// `sequence-set` or `$` (RFC 5182).
    fn seq_set(&mut self) -> R<SequenceSet> {
        if self.eat(b'$') {
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_number()?;
            let b = if self.eat(b':') {
                self.seq_number()?
            } else {
                a
            };
            ranges.push((a, b));
            if !self.eat(b',') {
                return Ok(SequenceSet::Ranges(ranges));
            }
        }
    }

    fn seq_number(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            return Ok(SeqNum::Asterisk);
        }
        match self.peek() {
            Some(b'1'..=b'9') => {}
            _ => return Err(self.missing_or("Invalid sequence set")),
        }
        self.number()
            .map(SeqNum::Value)
            .map_err(|_| Fail::Bad("Invalid sequence set".into()))
    }

    /// `date = date-text / DQUOTE date-text DQUOTE`,
    /// `date-text = date-day "-" date-month "-" date-year`.
    fn date(&mut self) -> R<NaiveDate> {
        let q = self.eat(b'"');
        let day = self
            .number()
            .map_err(|_| Fail::Bad("Invalid date".into()))?;
        let d = self.date_rest(day)?;
        if q {
            self.expect(b'"')?;
        }
        Ok(d)
    }

    /// `"-" date-month "-" date-year` after the day.
    fn date_rest(&mut self, day: u32) -> R<NaiveDate> {
        let invalid = || Fail::Bad("Invalid date".into());
        if !self.eat(b'-') {
            return Err(invalid());
        }
        let m = self.take_while(|b| b.is_ascii_alphabetic());
        let month = MONTHS
            .iter()
            .position(|x| x.as_bytes().eq_ignore_ascii_case(m))
            .ok_or_else(invalid)?;
        if !self.eat(b'-') {
            return Err(invalid());
        }
        let y = self.digits().map_err(|_| invalid())?;
        if y.len() != 4 {
            return Err(invalid());
        }
        let year = y.iter().fold(0i32, |a, &c| a * 10 + i32::from(c - b'0'));
        NaiveDate::from_ymd_opt(year, month as u32 + 1, day).ok_or_else(invalid)
    }

    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP
    /// time SP zone DQUOTE` (RFC 9051 §9).
    fn date_time(&mut self) -> R<DateTime<FixedOffset>> {
        let invalid = || Fail::Bad("Invalid date-time".into());
        self.expect(b'"')?;
        // date-day-fixed = (SP DIGIT) / 2DIGIT
        self.eat(b' ');
        let day = self.number().map_err(|_| invalid())?;
        let date = self.date_rest(day).map_err(|_| invalid())?;
        if !self.eat(b' ') {
            return Err(invalid());
        }
        let h = self.two_digits()?;
        let colon1 = self.eat(b':');
        let mi = self.two_digits()?;
        let colon2 = self.eat(b':');
        let s = self.two_digits()?;
        if !(colon1 && colon2 && self.eat(b' ')) {
            return Err(invalid());
        }
        let sign = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(invalid()),
        };
        self.i += 1;
        let z = self.take_while(|b| b.is_ascii_digit());
        if z.len() != 4 {
            return Err(invalid());
        }
        let zh = i32::from(z[0] - b'0') * 10 + i32::from(z[1] - b'0');
        let zm = i32::from(z[2] - b'0') * 10 + i32::from(z[3] - b'0');
        if zm > 59 {
            return Err(invalid());
        }
        self.expect(b'"')?;
        let tz = FixedOffset::east_opt(sign * (zh * 3600 + zm * 60)).ok_or_else(invalid)?;
        let time = NaiveTime::from_hms_opt(h, mi, s).ok_or_else(invalid)?;
        tz.from_local_datetime(&date.and_time(time))
            .single()
            .ok_or_else(invalid)
    }

    /// Exactly two digits (time fields of `date-time`).
    fn two_digits(&mut self) -> R<u32> {
        match self.take_while(|b| b.is_ascii_digit()) {
            [a, b] => Ok(u32::from(a - b'0') * 10 + u32::from(b - b'0')),
            _ => bad("Invalid date-time"),
        }
    }

    /// A parenthesized list of items, each parsed by `f`; `allow_empty`
    /// permits `()`.
    fn paren_list<T>(
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
    fn peek_names(&self) -> (String, Option<String>) {
        let mut q = P::new(self.b);
        q.i = self.i;
        let name = String::from_utf8_lossy(q.take_while(is_atom_char)).to_ascii_uppercase();
        let sub = (name == "UID" && q.eat(b' '))
            .then(|| String::from_utf8_lossy(q.take_while(is_atom_char)).to_ascii_uppercase());
        (name, sub)
    }

    // ------------------------------------------------------------------
    // Commands

    fn command(&mut self) -> R<CommandBody> {
        let name = self.take_while(is_atom_char);
        if name.is_empty() {
            return bad("Missing command");
        }
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let body = match name.as_str() {
            "CAPABILITY" => CommandBody::Capability,
            "NOOP" => CommandBody::Noop,
            "LOGOUT" => CommandBody::Logout,
            "STARTTLS" => CommandBody::StartTls,
            "CHECK" => CommandBody::Check,
            "CLOSE" => CommandBody::Close,
            "UNSELECT" => CommandBody::Unselect,
            "IDLE" => CommandBody::Idle,
            "NAMESPACE" => CommandBody::Namespace,
            "EXPUNGE" => CommandBody::Expunge { uids: None },
            "ID" => self.id()?,
            "AUTHENTICATE" => self.authenticate()?,
            "LOGIN" => {
                self.sp()?;
                let username = Self::utf8(self.astring()?)?;
                self.sp()?;
                let password = Self::utf8(self.astring()?)?;
                CommandBody::Login { username, password }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while !self.at_end() || caps.is_empty() {
                    self.sp()?;
                    caps.push(String::from_utf8_lossy(self.atom()?).into_owned());
                }
                CommandBody::Enable(caps)
            }
            "SELECT" | "EXAMINE" => self.select(name == "EXAMINE")?,
            "CREATE" => self.create()?,
            "DELETE" => {
                self.sp()?;
                CommandBody::Delete(self.mailbox()?)
            }
            "SUBSCRIBE" => {
                self.sp()?;
                CommandBody::Subscribe(self.mailbox()?)
            }
            "UNSUBSCRIBE" => {
                self.sp()?;
                CommandBody::Unsubscribe(self.mailbox()?)
            }
            "RENAME" => {
                self.sp()?;
                let from = self.mailbox()?;
                self.sp()?;
                let to = self.mailbox()?;
                CommandBody::Rename { from, to }
            }
            "LIST" => CommandBody::List(self.list()?),
            "LSUB" => {
                self.sp()?;
                let reference = self.mailbox()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                CommandBody::Lsub { reference, pattern }
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                let items = self.paren_list(false, Self::status_item)?;
                CommandBody::Status { mailbox, items }
            }
            "APPEND" => self.append()?,
            "SEARCH" => CommandBody::Search(self.search(false)?),
            "SORT" => CommandBody::Sort(self.sort(false)?),
            "THREAD" => CommandBody::Thread(self.thread(false)?),
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" | "MOVE" => self.copy_move(false, name == "MOVE")?,
            "UID" => {
                self.sp()?;
                let sub = self.keyword()?;
                match sub.as_str() {
                    "SEARCH" => CommandBody::Search(self.search(true)?),
                    "SORT" => CommandBody::Sort(self.sort(true)?),
                    "THREAD" => CommandBody::Thread(self.thread(true)?),
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" | "MOVE" => self.copy_move(true, sub == "MOVE")?,
                    "EXPUNGE" => {
                        self.sp()?;
                        CommandBody::Expunge {
                            uids: Some(self.seq_set()?),
                        }
                    }
                    _ => return bad(format!("Unknown command UID {sub}")),
                }
            }
            _ => return bad(format!("Unknown command {name}")),
        };
        self.end()?;
        Ok(body)
    }

    /// `id = "ID" SP id-params-list` (RFC 2971):
    /// `"(" string SP nstring *(SP string SP nstring) ")" / NIL`.
    fn id(&mut self) -> R<CommandBody> {
        self.sp()?;
        if self.peek_kw("NIL") {
            self.i += 3;
            return Ok(CommandBody::Id(None));
        }
        // RFC 2971 allows `()` in practice although the ABNF does not;
        // several clients send it.
        let params = self.paren_list(true, |p| {
            let k = String::from_utf8_lossy(&p.string()?).into_owned();
            p.sp()?;
            let v = p
                .nstring()?
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            Ok((k, v))
        })?;
        Ok(CommandBody::Id(Some(params)))
    }

    /// `authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp]`,
    /// `initial-resp = base64 / "="` (RFC 4959).
    fn authenticate(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mechanism = String::from_utf8_lossy(self.atom()?).to_ascii_uppercase();
        let mut initial_response = None;
        if !self.at_end() {
            self.sp()?;
            if self.eat(b'=') {
                initial_response = Some(Vec::new());
            } else {
                let b = self
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
                // An empty response is spelled `=`; nothing at all is wrong.
                if b.is_empty() {
                    return bad("Invalid base64 in initial response");
                }
                let data = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| Fail::Bad("Invalid base64 in initial response".into()))?;
                initial_response = Some(data);
            }
        }
        Ok(CommandBody::Authenticate {
            mechanism,
            initial_response,
        })
    }

    /// `select = "SELECT" SP mailbox [select-params]` (RFC 7162 §3.2.8).
    fn select(&mut self, read_only: bool) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut condstore = false;
        if !self.at_end() {
            self.sp()?;
            // QRESYNC is not offered, so CONDSTORE is the only parameter.
            self.paren_list(false, |p| match p.keyword()?.as_str() {
                "CONDSTORE" => Ok(()),
                other => bad(format!("Unsupported select parameter {other}")),
            })?;
            condstore = true;
        }
        Ok(CommandBody::Select {
            mailbox,
            read_only,
            condstore,
        })
    }

    /// `create = "CREATE" SP mailbox [SP "(" create-param ")"]`, only the
    /// `USE (...)` parameter of RFC 6154 §3 is known.
    fn create(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut special_use = Vec::new();
        if !self.at_end() {
            self.sp()?;
            let params = self.paren_list(false, |p| {
                let name = p.keyword()?;
                if name != "USE" {
                    return bad(format!("Unsupported CREATE parameter {name}"));
                }
                p.sp()?;
                p.paren_list(true, |p| {
                    p.expect(b'\\')?;
                    let a = p.atom()?;
                    Ok(format!("\\{}", String::from_utf8_lossy(a)))
                })
            })?;
            special_use = params.into_iter().flatten().collect();
        }
        Ok(CommandBody::Create {
            mailbox,
            special_use,
        })
    }

    /// RFC 5258 §6: `list = "LIST" [SP list-select-opts] SP mailbox SP
    /// mbox-or-pat [SP list-return-opts]`.
    fn list(&mut self) -> R<ListCommand> {
        let mut cmd = ListCommand::default();
        self.sp()?;
        if self.peek() == Some(b'(') {
            cmd.extended = true;
            let mut base = false;
            for opt in self.paren_list(true, Self::keyword)? {
                match opt.as_str() {
                    "SUBSCRIBED" => (cmd.select.subscribed, base) = (true, true),
                    // Not a base for RECURSIVEMATCH: it only widens the
                    // set (RFC 5258 §3).
                    "REMOTE" => cmd.select.remote = true,
                    "SPECIAL-USE" => (cmd.select.special_use, base) = (true, true),
                    "RECURSIVEMATCH" => cmd.select.recursive_match = true,
                    _ => return bad(format!("Unknown LIST selection option {opt}")),
                }
            }
            // RFC 5258 §3: RECURSIVEMATCH alone, or only with REMOTE, is a
            // syntax error.
            if cmd.select.recursive_match && !base {
                return bad("RECURSIVEMATCH needs another selection option");
            }
            self.sp()?;
        }
        cmd.reference = self.mailbox()?;
        self.sp()?;
        if self.peek() == Some(b'(') {
            cmd.extended = true;
            cmd.patterns = self.paren_list(false, Self::list_mailbox)?;
        } else {
            cmd.patterns = vec![self.list_mailbox()?];
        }
        if !self.at_end() {
            self.sp()?;
            if self.keyword()? != "RETURN" {
                return bad("Expected RETURN");
            }
            self.sp()?;
            cmd.extended = true;
            let opts = self.paren_list(true, |p| {
                let opt = p.keyword()?;
                match opt.as_str() {
                    "SUBSCRIBED" => Ok(ListRet::Subscribed),
                    "CHILDREN" => Ok(ListRet::Children),
                    "SPECIAL-USE" => Ok(ListRet::SpecialUse),
                    "STATUS" => {
                        p.sp()?;
                        let items = p.paren_list(false, Self::status_item)?;
                        Ok(ListRet::Status(items))
                    }
                    _ => bad(format!("Unknown LIST return option {opt}")),
                }
            })?;
            for o in opts {
                match o {
                    ListRet::Subscribed => cmd.ret.subscribed = true,
                    ListRet::Children => cmd.ret.children = true,
                    ListRet::SpecialUse => cmd.ret.special_use = true,
                    ListRet::Status(items) => cmd.ret.status = Some(items),
                }
            }
        }
        Ok(cmd)
    }

    /// `status-att` (RFC 9051 §9, RFC 8438, RFC 7162, RFC 7889 §4).
    fn status_item(&mut self) -> R<StatusItem> {
        let k = self.keyword()?;
        Ok(match k.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "RECENT" => StatusItem::Recent,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "APPENDLIMIT" => StatusItem::AppendLimit,
            _ => return bad(format!("Unknown STATUS item {k}")),
        })
    }

    /// `append = "APPEND" SP mailbox 1*append-message` (RFC 3502),
    /// `append-message = [SP flag-list] [SP date-time] SP append-data`,
    /// `append-data = literal / literal8 / "UTF8" SP "(" literal8 ")"`.
    fn append(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut messages = Vec::new();
        loop {
            self.sp()?;
            let mut msg = AppendMessage {
                flags: Vec::new(),
                date: None,
                data: AppendData::Bytes(Vec::new()),
                binary: false,
            };
            if self.peek() == Some(b'(') {
                msg.flags = self.flag_list()?;
                self.sp()?;
            }
            if self.peek() == Some(b'"') {
                msg.date = Some(self.date_time()?);
                self.sp()?;
            }
            if self.peek_kw("CATENATE") {
                // RFC 4469: the message is built from TEXT and URL parts.
                msg.data = self.catenate()?;
            } else if self.peek_kw("UTF8") {
                // RFC 6855 §4: the message is UTF-8, carried as literal8.
                self.i += 4;
                self.sp()?;
                self.expect(b'(')?;
                msg.data = self.literal_or_diverted(true)?.0;
                self.expect(b')')?;
            } else {
                match self.peek() {
                    Some(b'{' | b'~') => (msg.data, msg.binary) = self.literal_or_diverted(true)?,
                    _ => return Err(self.missing_or("Expected a message literal")),
                }
            }
            messages.push(msg);
            if self.at_end() {
                break;
            }
        }
        Ok(CommandBody::Append { mailbox, messages })
    }

    fn copy_move(&mut self, uid: bool, is_move: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        Ok(if is_move {
            CommandBody::Move { uid, set, mailbox }
        } else {
            CommandBody::Copy { uid, set, mailbox }
        })
    }

    /// `store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags`
    /// (RFC 7162 §3.1.3), `store-att-flags = (["+" / "-"] "FLAGS"
    /// [".SILENT"]) SP (flag-list / (flag *(SP flag)))`.
    fn store(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            for (name, v) in self.paren_list(false, |p| {
                let k = p.keyword()?;
                p.sp()?;
                Ok((k, p.number64()?))
            })? {
                match name.as_str() {
                    "UNCHANGEDSINCE" => unchanged_since = Some(v),
                    _ => return bad(format!("Unknown STORE modifier {name}")),
                }
            }
            self.sp()?;
        }
        let att = String::from_utf8_lossy(self.take_while(is_atom_char)).to_ascii_uppercase();
        let (op, rest) = match att.as_bytes().first() {
            Some(b'+') => (FlagOp::Add, &att[1..]),
            Some(b'-') => (FlagOp::Remove, &att[1..]),
            _ => (FlagOp::Replace, &att[..]),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            "" => return Err(self.missing_or("Expected FLAGS, +FLAGS or -FLAGS")),
            _ => return bad(format!("Unknown STORE item {att}")),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut flags = vec![self.flag()?];
            while !self.at_end() {
                self.sp()?;
                flags.push(self.flag()?);
            }
            flags
        };
        Ok(CommandBody::Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        })
    }

    /// `fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
    /// fetch-att / "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]`.
    fn fetch(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let items = if self.peek() == Some(b'(') {
            self.paren_list(false, Self::fetch_att)?
        } else if self.peek_kw("ALL") || self.peek_kw("FAST") || self.peek_kw("FULL") {
            use FetchAttr::*;
            let m = self.keyword()?;
            let mut items = vec![Flags, InternalDate, Rfc822Size];
            if m != "FAST" {
                items.push(Envelope);
            }
            if m == "FULL" {
                items.push(Body);
            }
            items
        } else {
            vec![self.fetch_att()?]
        };
        let mut changed_since = None;
        if !self.at_end() {
            self.sp()?;
            // `fetch-modifier = "CHANGEDSINCE" SP mod-sequence-valzer`
            // (RFC 7162 §3.1.4); VANISHED needs QRESYNC, which is not offered.
            for v in self.paren_list(false, |p| {
                let k = p.keyword()?;
                if k != "CHANGEDSINCE" {
                    return bad(format!("Unknown FETCH modifier {k}"));
                }
                p.sp()?;
                match p.number64()? {
                    0 => bad("CHANGEDSINCE must not be zero"),
                    v => Ok(v),
                }
            })? {
                changed_since = Some(v);
            }
        }
        Ok(CommandBody::Fetch {
            uid,
            set,
            items,
            changed_since,
        })
    }

    /// `fetch-att` (RFC 9051 §9, RFC 3516, RFC 7162).
    fn fetch_att(&mut self) -> R<FetchAttr> {
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
        if name.is_empty() {
            return Err(self.missing_or("Expected a FETCH item"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let has_section = self.peek() == Some(b'[');
        Ok(match (name.as_str(), has_section) {
            ("UID", false) => FetchAttr::Uid,
            ("FLAGS", false) => FetchAttr::Flags,
            ("INTERNALDATE", false) => FetchAttr::InternalDate,
            ("RFC822.SIZE", false) => FetchAttr::Rfc822Size,
            ("ENVELOPE", false) => FetchAttr::Envelope,
            ("BODY", false) => FetchAttr::Body,
            ("BODYSTRUCTURE", false) => FetchAttr::BodyStructure,
            ("RFC822", false) => FetchAttr::Rfc822,
            ("RFC822.HEADER", false) => FetchAttr::Rfc822Header,
            ("RFC822.TEXT", false) => FetchAttr::Rfc822Text,
            ("MODSEQ", false) => FetchAttr::ModSeq,
            ("BODY" | "BODY.PEEK", true) => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchAttr::BodySection {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            ("BINARY" | "BINARY.PEEK", true) => {
                let part = self.binary_part()?;
                let partial = self.partial()?;
                FetchAttr::Binary {
                    peek: name == "BINARY.PEEK",
                    part,
                    partial,
                }
            }
            ("BINARY.SIZE", true) => FetchAttr::BinarySize {
                part: self.binary_part()?,
            },
            _ => return bad(format!("Unknown FETCH item {name}")),
        })
    }

    /// `section = "[" [section-spec] "]"`.
    fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let mut s = Section::default();
        let mut need_text = false;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            s.part.push(
                self.nz_number()
                    .map_err(|_| Fail::Bad("Invalid section part".into()))?,
            );
            need_text = false;
            if !self.eat(b'.') {
                break;
            }
            need_text = true;
        }
        if self.eat(b']') {
            if need_text {
                return bad("Invalid section");
            }
            return Ok(s);
        }
        let t = String::from_utf8_lossy(self.take_while(|b| b.is_ascii_alphabetic() || b == b'.'))
            .to_ascii_uppercase();
        s.text = Some(match t.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !s.part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                self.sp()?;
                let names = self.paren_list(false, |p| {
                    let n = p.astring()?;
                    String::from_utf8(n).map_err(|_| Fail::Bad("Invalid header field name".into()))
                })?;
                if t == "HEADER.FIELDS" {
                    SectionText::HeaderFields(names)
                } else {
                    SectionText::HeaderFieldsNot(names)
                }
            }
            _ => return bad("Invalid section"),
        });
        self.expect(b']')?;
        Ok(s)
    }

    /// `section-binary = "[" [section-part] "]"` (RFC 3516).
    fn binary_part(&mut self) -> R<Vec<u32>> {
        self.expect(b'[')?;
        let mut part = Vec::new();
        if self.eat(b']') {
            return Ok(part);
        }
        loop {
            part.push(
                self.nz_number()
                    .map_err(|_| Fail::Bad("Invalid section part".into()))?,
            );
            if self.eat(b']') {
                return Ok(part);
            }
            if !self.eat(b'.') {
                return bad("Invalid section");
            }
        }
    }

    /// `partial = "<" number "." nz-number ">"`.
    fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let invalid = |_| Fail::Bad("Invalid partial range".into());
        let offset = self.number().map_err(invalid)?;
        self.expect(b'.')?;
        let count = self.nz_number().map_err(invalid)?;
        self.expect(b'>')?;
        Ok(Some((offset, count)))
    }

    /// `search = "SEARCH" [search-return-opts] SP search-program`
    /// (RFC 9051 §9, RFC 4731, RFC 5182).
    fn search(&mut self, uid: bool) -> R<SearchCommand> {
        self.sp()?;
        let mut ret = None;
        if self.peek_kw("RETURN") {
            self.i += 6;
            self.sp()?;
            ret = Some(self.paren_list(true, |p| {
                let k = p.keyword()?;
                Ok(match k.as_str() {
                    "MIN" => SearchReturn::Min,
                    "MAX" => SearchReturn::Max,
                    "ALL" => SearchReturn::All,
                    "COUNT" => SearchReturn::Count,
                    "SAVE" => SearchReturn::Save,
                    _ => return bad(format!("Unknown SEARCH return option {k}")),
                })
            })?);
            self.sp()?;
        }
        let mut charset = None;
        if self.peek_kw("CHARSET") {
            self.i += 7;
            self.sp()?;
            let name = String::from_utf8_lossy(&self.astring()?).to_ascii_uppercase();
            self.charset = Some(Encoding::for_label(name.as_bytes()).ok_or(Fail::Charset)?);
            charset = Some(name);
            self.sp()?;
        }
        let mut keys = vec![self.search_key()?];
        while !self.at_end() {
            self.sp()?;
            keys.push(self.search_key()?);
        }
        let criteria = if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        };
        Ok(SearchCommand {
            uid,
            ret,
            charset,
            criteria,
        })
    }

    /// A search string (`astring`), decoded with the SEARCH charset.
    fn search_string(&mut self) -> R<String> {
        let raw = self.astring()?;
        match self.charset {
            None => Self::utf8(raw),
            Some(enc) => enc
                .decode_without_bom_handling_and_without_replacement(&raw)
                .map(|s| s.into_owned())
                .ok_or_else(|| Fail::Bad("String is not valid in the given charset".into())),
        }
    }

    fn search_key(&mut self) -> R<SearchKey> {
        if self.depth >= MAX_SEARCH_DEPTH {
            return bad("Search criteria nested too deeply");
        }
        self.depth += 1;
        let r = self.search_key_inner();
        self.depth -= 1;
        r
    }

    /// `search-key` (RFC 9051 §9 plus MODSEQ, OLDER/YOUNGER).
    fn search_key_inner(&mut self) -> R<SearchKey> {
        use SearchKey as K;
        match self.peek() {
            Some(b'(') => {
                let mut keys = self.paren_list(false, Self::search_key)?;
                return Ok(if keys.len() == 1 {
                    keys.pop().unwrap_or(K::All)
                } else {
                    K::And(keys)
                });
            }
            Some(b'0'..=b'9' | b'*' | b'$') => return Ok(K::SequenceSet(self.seq_set()?)),
            _ => {}
        }
        let k = self.keyword()?;
        macro_rules! arg {
            ($e:expr) => {{
                self.sp()?;
                $e
            }};
        }
        Ok(match k.as_str() {
            "ALL" => K::All,
            "ANSWERED" => K::Answered,
            "DELETED" => K::Deleted,
            "DRAFT" => K::Draft,
            "FLAGGED" => K::Flagged,
            "SEEN" => K::Seen,
            "UNANSWERED" => K::Unanswered,
            "UNDELETED" => K::Undeleted,
            "UNDRAFT" => K::Undraft,
            "UNFLAGGED" => K::Unflagged,
            "UNSEEN" => K::Unseen,
            "RECENT" => K::Recent,
            "NEW" => K::New,
            "OLD" => K::Old,
            "KEYWORD" => arg!(K::Keyword(
                String::from_utf8_lossy(self.atom()?).into_owned()
            )),
            "UNKEYWORD" => arg!(K::Unkeyword(
                String::from_utf8_lossy(self.atom()?).into_owned()
            )),
            "BEFORE" => arg!(K::Before(self.date()?)),
            "ON" => arg!(K::On(self.date()?)),
            "SINCE" => arg!(K::Since(self.date()?)),
            "SENTBEFORE" => arg!(K::SentBefore(self.date()?)),
            "SENTON" => arg!(K::SentOn(self.date()?)),
            "SENTSINCE" => arg!(K::SentSince(self.date()?)),
            "LARGER" => arg!(K::Larger(self.number64()?)),
            "SMALLER" => arg!(K::Smaller(self.number64()?)),
            "BCC" => arg!(K::Bcc(self.search_string()?)),
            "CC" => arg!(K::Cc(self.search_string()?)),
            "FROM" => arg!(K::From(self.search_string()?)),
            "TO" => arg!(K::To(self.search_string()?)),
            "SUBJECT" => arg!(K::Subject(self.search_string()?)),
            "BODY" => arg!(K::Body(self.search_string()?)),
            "TEXT" => arg!(K::Text(self.search_string()?)),
            "HEADER" => {
                self.sp()?;
                let name = Self::utf8(self.astring()?)?;
                self.sp()?;
                K::Header(name, self.search_string()?)
            }
            "UID" => arg!(K::Uid(self.seq_set()?)),
            "NOT" => arg!(K::Not(Box::new(self.search_key()?))),
            "OR" => {
                self.sp()?;
                let a = self.search_key()?;
                self.sp()?;
                let b = self.search_key()?;
                K::Or(Box::new(a), Box::new(b))
            }
            "MODSEQ" => {
                // `MODSEQ [SP entry-name SP entry-type-req] SP
                // mod-sequence-valzer` (RFC 7162 §3.1.5); the entry is
                // accepted and ignored, as the per-flag modseq is not kept.
                self.sp()?;
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    let t = self.keyword()?;
                    if !matches!(t.as_str(), "PRIV" | "SHARED" | "ALL") {
                        return bad("Invalid MODSEQ entry type");
                    }
                    self.sp()?;
                }
                K::ModSeq(self.number64()?)
            }
            "OLDER" => arg!(K::Older(self.nz_number()?)),
            "YOUNGER" => arg!(K::Younger(self.nz_number()?)),
            _ => return bad(format!("Unknown search key {k}")),
        })
    }
}

/// A parsed LIST return option (helper for [`P::list`]).
enum ListRet {
    Subscribed,
    Children,
    SpecialUse,
    Status(Vec<StatusItem>),
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::*;
    use SeqNum::{Asterisk as S, Value as V};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn set(rs: &[(SeqNum, SeqNum)]) -> SequenceSet {
        SequenceSet::Ranges(rs.to_vec())
    }

    fn one(n: u32) -> SequenceSet {
        set(&[(V(n), V(n))])
    }

    fn search(uid: bool, criteria: SearchKey) -> CommandBody {
        CommandBody::Search(SearchCommand {
            uid,
            ret: None,
            charset: None,
            criteria,
        })
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn list(reference: &str, patterns: &[&str]) -> ListCommand {
        ListCommand {
            reference: reference.into(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn body_section(peek: bool, part: &[u32], text: Option<SectionText>) -> FetchAttr {
        FetchAttr::BodySection {
            peek,
            section: Section {
                part: part.to_vec(),
                text,
            },
            partial: None,
        }
    }

    fn fetch(uid: bool, s: SequenceSet, items: Vec<FetchAttr>) -> CommandBody {
        CommandBody::Fetch {
            uid,
            set: s,
            items,
            changed_since: None,
        }
    }

    fn msg(data: &[u8]) -> AppendMessage {
        AppendMessage {
            flags: vec![],
            date: None,
            data: AppendData::Bytes(data.to_vec()),
            binary: false,
        }
    }

    #[test]
    fn diverted_literals() {
        use CommandBody as C;
        let wire = b"b APPEND x {100+}\r\n (\\Seen) ~{7}\r\n {2}\r\nhi\r\n";
        let got = parse_command_diverted(wire, &[19, 34]).unwrap().body;
        assert_eq!(
            got,
            C::Append {
                mailbox: "x".into(),
                messages: vec![
                    AppendMessage {
                        data: AppendData::Diverted {
                            index: 0,
                            size: 100
                        },
                        ..msg(b"")
                    },
                    AppendMessage {
                        flags: vec![Flag::Seen],
                        data: AppendData::Diverted { index: 1, size: 7 },
                        binary: true,
                        ..msg(b"")
                    },
                    msg(b"hi"),
                ],
            }
        );
        // A diverted literal where no message goes is refused, not read.
        for (wire, at) in [
            (&b"a APPEND {5}\r\n {1}\r\nx\r\n"[..], 14),
            (b"a SEARCH TEXT {5}\r\n\r\n", 19),
        ] {
            assert!(
                matches!(
                    parse_command_diverted(wire, &[at]),
                    Err(ParseError::Bad { .. })
                ),
                "{wire:?}"
            );
        }
        for (head, want) in [
            (&b"a APPEND x {9}\r\n"[..], true),
            (b"a append x (\\Seen) {9}\r\n", true),
            (b"a APPENDX x {9}\r\n", false),
            (b"a SEARCH {9}\r\n", false),
            (b"APPEND x {9}\r\n", false),
            (b"a UID APPEND {9}\r\n", false),
        ] {
            assert_eq!(is_append(head), want, "{head:?}");
        }
    }

    #[test]
    fn good_commands() {
        use CommandBody as C;
        use FetchAttr as F;
        use SearchKey as K;
        let tz = FixedOffset::west_opt(7 * 3600).unwrap();
        let dt = tz.with_ymd_and_hms(1996, 7, 17, 2, 44, 25).unwrap();
        let cases: Vec<(&[u8], CommandBody)> = vec![
            (b"a CAPABILITY\r\n", C::Capability),
            (b"a capability\r\n", C::Capability),
            (b"a NOOP\n", C::Noop),
            (b"a NoOp", C::Noop),
            (b"a LOGOUT\r\n", C::Logout),
            (b"a STARTTLS\r\n", C::StartTls),
            (b"a CHECK\r\n", C::Check),
            (b"a CLOSE\r\n", C::Close),
            (b"a UNSELECT\r\n", C::Unselect),
            (b"a IDLE\r\n", C::Idle),
            (b"a NAMESPACE\r\n", C::Namespace),
            (b"a EXPUNGE\r\n", C::Expunge { uids: None }),
            (b"a UID EXPUNGE 1:3,5\r\n", C::Expunge { uids: Some(set(&[(V(1), V(3)), (V(5), V(5))])) }),
            (b"a uid expunge $\r\n", C::Expunge { uids: Some(SequenceSet::Saved) }),
            (b"a ID NIL\r\n", C::Id(None)),
            (b"a ID ()\r\n", C::Id(Some(vec![]))),
            (
                b"a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n",
                C::Id(Some(vec![("name".into(), Some("Thunderbird".into())), ("version".into(), None)])),
            ),
            (
                b"a AUTHENTICATE PLAIN\r\n",
                C::Authenticate { mechanism: "PLAIN".into(), initial_response: None },
            ),
            (
                b"a authenticate plain AGJvYgBzZWNyZXQ=\r\n",
                C::Authenticate { mechanism: "PLAIN".into(), initial_response: Some(b"\0bob\0secret".to_vec()) },
            ),
            (
                b"a AUTHENTICATE EXTERNAL =\r\n",
                C::Authenticate { mechanism: "EXTERNAL".into(), initial_response: Some(vec![]) },
            ),
            (b"a LOGIN bob secret\r\n", C::Login { username: "bob".into(), password: "secret".into() }),
            (
                b"a LOGIN \"bob@x.org\" \"p\\\"w\\\\d\"\r\n",
                C::Login { username: "bob@x.org".into(), password: "p\"w\\d".into() },
            ),
            (
                b"a LOGIN {3}\r\nbob {5+}\r\np w\"d\r\n",
                C::Login { username: "bob".into(), password: "p w\"d".into() },
            ),
            (b"a LOGIN \"j\xc3\xb6rg\" x\r\n", C::Login { username: "jörg".into(), password: "x".into() }),
            (b"a ENABLE CONDSTORE\r\n", C::Enable(vec!["CONDSTORE".into()])),
            (b"a ENABLE UTF8=ACCEPT IMAP4rev2\r\n", C::Enable(vec!["UTF8=ACCEPT".into(), "IMAP4rev2".into()])),
            (b"a SELECT INBOX\r\n", C::Select { mailbox: "INBOX".into(), read_only: false, condstore: false }),
            (b"a select inbox\r\n", C::Select { mailbox: "inbox".into(), read_only: false, condstore: false }),
            (
                b"a EXAMINE \"Sent Items\" (CONDSTORE)\r\n",
                C::Select { mailbox: "Sent Items".into(), read_only: true, condstore: true },
            ),
            (
                b"a SELECT Entw&APw-rfe\r\n",
                C::Select { mailbox: "Entw&APw-rfe".into(), read_only: false, condstore: false },
            ),
            (
                "a SELECT \"Entwürfe\"\r\n".as_bytes(),
                C::Select { mailbox: "Entwürfe".into(), read_only: false, condstore: false },
            ),
            (
                "a SELECT Entwürfe\r\n".as_bytes(),
                C::Select { mailbox: "Entwürfe".into(), read_only: false, condstore: false },
            ),
            (b"a CREATE foo/bar\r\n", C::Create { mailbox: "foo/bar".into(), special_use: vec![] }),
            (
                b"a CREATE MySent (USE (\\Sent \\Archive))\r\n",
                C::Create { mailbox: "MySent".into(), special_use: vec!["\\Sent".into(), "\\Archive".into()] },
            ),
            (b"a DELETE {3}\r\nfoo\r\n", C::Delete("foo".into())),
            (b"a RENAME a \"b c\"\r\n", C::Rename { from: "a".into(), to: "b c".into() }),
            (b"a SUBSCRIBE x\r\n", C::Subscribe("x".into())),
            (b"a UNSUBSCRIBE \"\"\r\n", C::Unsubscribe("".into())),
            (b"a LIST \"\" *\r\n", C::List(list("", &["*"]))),
            (b"a LIST \"\" %/a]b\r\n", C::List(list("", &["%/a]b"]))),
            (b"a LIST ~/Mail \"%\"\r\n", C::List(list("~/Mail", &["%"]))),
            (
                b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
                C::List(ListCommand {
                    select: ListSelect { subscribed: true, recursive_match: true, ..Default::default() },
                    ret: ListReturn {
                        children: true,
                        status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
                        ..Default::default()
                    },
                    extended: true,
                    ..list("", &["INBOX", "Sent*"])
                }),
            ),
            (
                b"a LIST () \"\" % RETURN ()\r\n",
                C::List(ListCommand { extended: true, ..list("", &["%"]) }),
            ),
            (
                b"a list (special-use remote) \"\" * return (special-use subscribed)\r\n",
                C::List(ListCommand {
                    select: ListSelect { special_use: true, remote: true, ..Default::default() },
                    ret: ListReturn { special_use: true, subscribed: true, ..Default::default() },
                    extended: true,
                    ..list("", &["*"])
                }),
            ),
            (b"a LSUB \"\" *\r\n", C::Lsub { reference: "".into(), pattern: "*".into() }),
            (
                b"a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ)\r\n",
                C::Status {
                    mailbox: "INBOX".into(),
                    items: vec![
                        StatusItem::Messages,
                        StatusItem::UidNext,
                        StatusItem::UidValidity,
                        StatusItem::Unseen,
                        StatusItem::Deleted,
                        StatusItem::Size,
                        StatusItem::Recent,
                        StatusItem::HighestModSeq,
                    ],
                },
            ),
            (b"a APPEND x {5}\r\nhello\r\n", C::Append { mailbox: "x".into(), messages: vec![msg(b"hello")] }),
            (
                b"a APPEND x (\\Seen $Junk) \"17-Jul-1996 02:44:25 -0700\" ~{3+}\r\n\0\r\n\r\n",
                C::Append {
                    mailbox: "x".into(),
                    messages: vec![AppendMessage {
                        flags: vec![Flag::Seen, Flag::Keyword("$Junk".into())],
                        date: Some(dt),
                        data: AppendData::Bytes(b"\0\r\n".to_vec()),
                        binary: true,
                    }],
                },
            ),
            (
                b"a APPEND x \" 7-Jul-1996 02:44:25 +0000\" {1}\r\nA (\\Draft) {1}\r\nB {0}\r\n\r\n",
                C::Append {
                    mailbox: "x".into(),
                    messages: vec![
                        AppendMessage {
                            date: Some(FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(1996, 7, 7, 2, 44, 25).unwrap()),
                            ..msg(b"A")
                        },
                        AppendMessage { flags: vec![Flag::Draft], ..msg(b"B") },
                        msg(b""),
                    ],
                },
            ),
            (
                b"a APPEND x UTF8 (~{2}\r\nhi)\r\n",
                C::Append { mailbox: "x".into(), messages: vec![msg(b"hi")] },
            ),
            (b"a SEARCH ALL\r\n", search(false, K::All)),
            (b"a UID SEARCH 1:* UNSEEN\r\n", search(true, K::And(vec![K::SequenceSet(set(&[(V(1), S)])), K::Unseen]))),
            (b"a SEARCH $\r\n", search(false, K::SequenceSet(SequenceSet::Saved))),
            (b"a SEARCH UID $\r\n", search(false, K::Uid(SequenceSet::Saved))),
            (
                b"a SEARCH RETURN (MIN MAX ALL COUNT SAVE) SEEN\r\n",
                C::Search(SearchCommand {
                    uid: false,
                    ret: Some(vec![SearchReturn::Min, SearchReturn::Max, SearchReturn::All, SearchReturn::Count, SearchReturn::Save]),
                    charset: None,
                    criteria: K::Seen,
                }),
            ),
            (
                b"a SEARCH RETURN () CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa4bc\r\n",
                C::Search(SearchCommand {
                    uid: false,
                    ret: Some(vec![]),
                    charset: Some("UTF-8".into()),
                    criteria: K::Subject("äbc".into()),
                }),
            ),
            (
                b"a SEARCH CHARSET ISO-8859-1 FROM \"\xe4\"\r\n",
                C::Search(SearchCommand {
                    uid: false,
                    ret: None,
                    charset: Some("ISO-8859-1".into()),
                    criteria: K::From("ä".into()),
                }),
            ),
            (
                b"a SEARCH OR (FROM bob TO \"x y\") NOT (SUBJECT hi) HEADER X-Spam \"\"\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Or(
                            Box::new(K::And(vec![K::From("bob".into()), K::To("x y".into())])),
                            Box::new(K::Not(Box::new(K::Subject("hi".into())))),
                        ),
                        K::Header("X-Spam".into(), "".into()),
                    ]),
                ),
            ),
            (
                b"a SEARCH ANSWERED DELETED DRAFT FLAGGED SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN RECENT NEW OLD\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Answered, K::Deleted, K::Draft, K::Flagged, K::Seen, K::Unanswered, K::Undeleted,
                        K::Undraft, K::Unflagged, K::Unseen, K::Recent, K::New, K::Old,
                    ]),
                ),
            ),
            (
                b"a SEARCH KEYWORD $Junk UNKEYWORD foo BEFORE 1-Feb-2024 ON \"29-Feb-2024\" SINCE 01-jan-2000 SENTBEFORE 2-Mar-2024 SENTON 3-Mar-2024 SENTSINCE 4-Mar-2024\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Keyword("$Junk".into()),
                        K::Unkeyword("foo".into()),
                        K::Before(date(2024, 2, 1)),
                        K::On(date(2024, 2, 29)),
                        K::Since(date(2000, 1, 1)),
                        K::SentBefore(date(2024, 3, 2)),
                        K::SentOn(date(2024, 3, 3)),
                        K::SentSince(date(2024, 3, 4)),
                    ]),
                ),
            ),
            (
                b"a SEARCH LARGER 10000000000 SMALLER 5 BCC a CC b BODY c TEXT d UID 1,3:* MODSEQ 7 OLDER 60 YOUNGER 3600\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Larger(10_000_000_000),
                        K::Smaller(5),
                        K::Bcc("a".into()),
                        K::Cc("b".into()),
                        K::Body("c".into()),
                        K::Text("d".into()),
                        K::Uid(set(&[(V(1), V(1)), (V(3), S)])),
                        K::ModSeq(7),
                        K::Older(60),
                        K::Younger(3600),
                    ]),
                ),
            ),
            (
                b"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
                search(false, K::ModSeq(620_162_338)),
            ),
            (b"a SEARCH (((SEEN)))\r\n", search(false, K::Seen)),
            (b"a FETCH 1 UID\r\n", fetch(false, one(1), vec![F::Uid])),
            (b"a FETCH 1:* ALL\r\n", fetch(false, set(&[(V(1), S)]), vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope])),
            (b"a FETCH 1 fast\r\n", fetch(false, one(1), vec![F::Flags, F::InternalDate, F::Rfc822Size])),
            (
                b"a FETCH 1 FULL\r\n",
                fetch(false, one(1), vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope, F::Body]),
            ),
            (
                b"a FETCH $ (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822 RFC822.HEADER RFC822.TEXT MODSEQ UID)\r\n",
                fetch(
                    false,
                    SequenceSet::Saved,
                    vec![
                        F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope, F::Body, F::BodyStructure, F::Rfc822,
                        F::Rfc822Header, F::Rfc822Text, F::ModSeq, F::Uid,
                    ],
                ),
            ),
            (
                b"a UID FETCH 1:3 (BODY[] BODY.PEEK[HEADER] BODY[1.2.MIME] BODY[TEXT] BODY[2] BODY[3.HEADER] BODY[1.TEXT])\r\n",
                fetch(
                    true,
                    set(&[(V(1), V(3))]),
                    vec![
                        body_section(false, &[], None),
                        body_section(true, &[], Some(SectionText::Header)),
                        body_section(false, &[1, 2], Some(SectionText::Mime)),
                        body_section(false, &[], Some(SectionText::Text)),
                        body_section(false, &[2], None),
                        body_section(false, &[3], Some(SectionText::Header)),
                        body_section(false, &[1], Some(SectionText::Text)),
                    ],
                ),
            ),
            (
                b"a FETCH 2 (BODY.PEEK[HEADER.FIELDS (From \"Subject\" x-Spam)] body[header.fields.not (Received)]<0.1024>)\r\n",
                fetch(
                    false,
                    one(2),
                    vec![
                        body_section(true, &[], Some(SectionText::HeaderFields(vec!["From".into(), "Subject".into(), "x-Spam".into()]))),
                        F::BodySection {
                            peek: false,
                            section: Section { part: vec![], text: Some(SectionText::HeaderFieldsNot(vec!["Received".into()])) },
                            partial: Some((0, 1024)),
                        },
                    ],
                ),
            ),
            (
                b"a FETCH 1 (BINARY[1.2]<5.10> BINARY.PEEK[] BINARY.SIZE[3])\r\n",
                fetch(
                    false,
                    one(1),
                    vec![
                        F::Binary { peek: false, part: vec![1, 2], partial: Some((5, 10)) },
                        F::Binary { peek: true, part: vec![], partial: None },
                        F::BinarySize { part: vec![3] },
                    ],
                ),
            ),
            (
                b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
                C::Fetch { uid: true, set: set(&[(V(1), S)]), items: vec![F::Flags], changed_since: Some(12345) },
            ),
            (
                b"a STORE 1 +FLAGS (\\Seen)\r\n",
                C::Store { uid: false, set: one(1), op: FlagOp::Add, silent: false, flags: vec![Flag::Seen], unchanged_since: None },
            ),
            (
                b"a UID STORE 1:2 -flags.silent \\Deleted $Junk\r\n",
                C::Store {
                    uid: true,
                    set: set(&[(V(1), V(2))]),
                    op: FlagOp::Remove,
                    silent: true,
                    flags: vec![Flag::Deleted, Flag::Keyword("$Junk".into())],
                    unchanged_since: None,
                },
            ),
            (
                b"a STORE $ (UNCHANGEDSINCE 9) FLAGS.SILENT ()\r\n",
                C::Store { uid: false, set: SequenceSet::Saved, op: FlagOp::Replace, silent: true, flags: vec![], unchanged_since: Some(9) },
            ),
            (
                b"a STORE 1 FLAGS (\\Answered \\Flagged \\Draft \\Recent)\r\n",
                C::Store {
                    uid: false,
                    set: one(1),
                    op: FlagOp::Replace,
                    silent: false,
                    flags: vec![Flag::Answered, Flag::Flagged, Flag::Draft, Flag::Extension("Recent".into())],
                    unchanged_since: None,
                },
            ),
            (b"a COPY 1:2 Trash\r\n", C::Copy { uid: false, set: set(&[(V(1), V(2))]), mailbox: "Trash".into() }),
            (b"a UID COPY $ \"A B\"\r\n", C::Copy { uid: true, set: SequenceSet::Saved, mailbox: "A B".into() }),
            (b"a MOVE 5:3 x\r\n", C::Move { uid: false, set: set(&[(V(5), V(3))]), mailbox: "x".into() }),
            (b"a UID MOVE *:1 x\r\n", C::Move { uid: true, set: set(&[(S, V(1))]), mailbox: "x".into() }),
        ];
        for (wire, want) in cases {
            let got = parse_command(wire);
            assert_eq!(
                got,
                Ok(Command {
                    tag: "a".into(),
                    body: want
                }),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    use super::codec::normalise;

    /// Wherever imap-codec decodes a command it covers, our parser reads it
    /// the same way (imap-codec is the oracle, see the module doc).
    #[test]
    fn agrees_with_imap_codec() {
        let wires: &[&[u8]] = &[
            b"a CAPABILITY\r\n",
            b"a noop\r\n",
            b"a LOGOUT\r\n",
            b"a STARTTLS\r\n",
            b"a NAMESPACE\r\n",
            b"a IDLE\r\n",
            b"a CHECK\r\n",
            b"a CLOSE\r\n",
            b"a UNSELECT\r\n",
            b"a EXPUNGE\r\n",
            b"a UID EXPUNGE 3:1,7,*\r\n",
            b"a ID NIL\r\n",
            b"a ID ()\r\n",
            b"a ID (\"name\" \"x\" \"os\" NIL)\r\n",
            b"a LOGIN bob secret\r\n",
            b"a LOGIN \"bob\" {3}\r\np\"w\r\n",
            b"a LOGIN \"j\xc3\xb6rg\" \"p w\"\r\n",
            b"a AUTHENTICATE plain\r\n",
            b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
            b"a AUTHENTICATE EXTERNAL =\r\n",
            b"a ENABLE CONDSTORE utf8=accept X-FOO\r\n",
            b"a FETCH 1:* ALL\r\n",
            b"a FETCH 1 FAST\r\n",
            b"a FETCH 1 FULL\r\n",
            b"a FETCH 1,3:5 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE MODSEQ)\r\n",
            b"a FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT)\r\n",
            b"a UID FETCH 5:3 (BODY[] BODY.PEEK[HEADER] BODY[1.2.MIME] BODY[TEXT] BODY[2] BODY[3.HEADER] BODY[1.TEXT])\r\n",
            b"a FETCH 2 (BODY.PEEK[HEADER.FIELDS (From \"Subject\")] BODY[1.HEADER.FIELDS.NOT (Received)]<0.1024>)\r\n",
            b"a FETCH 1 (BINARY[1.2]<5.10> BINARY.PEEK[] BINARY.SIZE[3])\r\n",
            b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
            b"a STORE 1 +FLAGS (\\Seen)\r\n",
            b"a UID STORE 1:2 -FLAGS.SILENT \\Deleted $Junk\r\n",
            b"a STORE 1 (UNCHANGEDSINCE 9) FLAGS.SILENT ()\r\n",
            b"a STORE 1 FLAGS (\\Answered \\Flagged \\Draft \\Foo kw)\r\n",
        ];
        for wire in wires {
            let name = String::from_utf8_lossy(wire);
            let codec = codec::decode(wire).unwrap_or_else(|| panic!("imap-codec rejects {name}"));
            let ours = parse_command(wire).unwrap_or_else(|e| panic!("we reject {name}: {e:?}"));
            assert_eq!(normalise(codec), normalise(ours), "{name}");
        }
        // What imap-codec rejects and ours must read.
        let fallbacks: &[&[u8]] = &[
            b"a FETCH $ UID\r\n",
            b"a UID STORE $ +FLAGS x\r\n",
            b"a LOGIN b\xc3\xb6b x\r\n",
        ];
        for wire in fallbacks {
            let name = String::from_utf8_lossy(wire);
            assert!(codec::decode(wire).is_none(), "{name}");
            assert!(parse_command(wire).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_commands() {
        let cases: &[(&[u8], Option<&str>, &str)] = &[
            (b"", None, "Missing or invalid tag"),
            (b"\r\n", None, "Missing or invalid tag"),
            (b"NOOP\r\n", Some("NOOP"), "Missing command"),
            (b"a1\r\n", Some("a1"), "Missing command"),
            (b"a1", Some("a1"), "Missing command"),
            (b"a+ NOOP\r\n", None, "Missing or invalid tag"),
            (b"a \r\n", Some("a"), "Missing command"),
            (b"a FOO\r\n", Some("a"), "Unknown command FOO"),
            (b"a UID FOO 1\r\n", Some("a"), "Unknown command UID FOO"),
            (b"a NOOP extra\r\n", Some("a"), "Unexpected extra arguments"),
            (b"a SELECT\r\n", Some("a"), "Missing argument"),
            (b"a LOGIN bob\r\n", Some("a"), "Missing argument"),
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
            (b"a FETCH 0 UID\r\n", Some("a"), "Invalid sequence set"),
            (b"a FETCH x UID\r\n", Some("a"), "Invalid sequence set"),
            (
                b"a FETCH 1:99999999999 UID\r\n",
                Some("a"),
                "Invalid sequence set",
            ),
            (b"a FETCH 1 FOO\r\n", Some("a"), "Unknown FETCH item FOO"),
            (b"a FETCH 1 BODY[1.]\r\n", Some("a"), "Invalid section"),
            (b"a FETCH 1 BODY[MIME]\r\n", Some("a"), "Invalid section"),
            (
                b"a FETCH 1 BODY[]<1.0>\r\n",
                Some("a"),
                "Invalid partial range",
            ),
            (b"a FETCH 1 ()\r\n", Some("a"), "Empty list"),
            (
                b"a FETCH 1 UID (VANISHED)\r\n",
                Some("a"),
                "Unknown FETCH modifier VANISHED",
            ),
            (
                b"a STORE 1 FLAG (\\Seen)\r\n",
                Some("a"),
                "Unknown STORE item FLAG",
            ),
            (
                b"a STORE 1 +FLAGS (\\Seen\r\n",
                Some("a"),
                "Missing argument",
            ),
            (b"a SEARCH FOO\r\n", Some("a"), "Unknown search key FOO"),
            (b"a SEARCH\r\n", Some("a"), "Missing argument"),
            (
                b"a SEARCH BEFORE 30-Feb-2024\r\n",
                Some("a"),
                "Invalid date",
            ),
            (
                b"a SEARCH RETURN (FOO) ALL\r\n",
                Some("a"),
                "Unknown SEARCH return option FOO",
            ),
            (
                b"a SEARCH CHARSET UTF-8 FROM \"\xff\"\r\n",
                Some("a"),
                "String is not valid in the given charset",
            ),
            (
                b"a SEARCH FROM \"\xff\"\r\n",
                Some("a"),
                "Invalid UTF-8 in string",
            ),
            (
                b"a LIST (FOO) \"\" *\r\n",
                Some("a"),
                "Unknown LIST selection option FOO",
            ),
            (
                b"a LIST (RECURSIVEMATCH) \"\" *\r\n",
                Some("a"),
                "RECURSIVEMATCH needs another selection option",
            ),
            (
                b"a LIST (REMOTE RECURSIVEMATCH) \"\" *\r\n",
                Some("a"),
                "RECURSIVEMATCH needs another selection option",
            ),
            (
                b"a LIST \"\" * RETURN (FOO)\r\n",
                Some("a"),
                "Unknown LIST return option FOO",
            ),
            (b"a LIST \"\" * FOO ()\r\n", Some("a"), "Expected RETURN"),
            (
                b"a STATUS x (FOO)\r\n",
                Some("a"),
                "Unknown STATUS item FOO",
            ),
            (
                b"a SELECT x (QRESYNC (1 2))\r\n",
                Some("a"),
                "Unsupported select parameter QRESYNC",
            ),
            (
                b"a CREATE x (FOO)\r\n",
                Some("a"),
                "Unsupported CREATE parameter FOO",
            ),
            (b"a APPEND x\r\n", Some("a"), "Missing argument"),
            (
                b"a APPEND x (\\Seen) hello\r\n",
                Some("a"),
                "Expected a message literal",
            ),
            (
                b"a APPEND x \"17-Jul-1996 25:44:25 -0700\" {1}\r\nA\r\n",
                Some("a"),
                "Invalid date-time",
            ),
            (
                b"a AUTHENTICATE PLAIN !!\r\n",
                Some("a"),
                "Invalid base64 in initial response",
            ),
            (
                b"a AUTHENTICATE PLAIN AGJ\r\n",
                Some("a"),
                "Invalid base64 in initial response",
            ),
            (b"a ENABLE\r\n", Some("a"), "Missing argument"),
        ];
        for &(wire, tag, text) in cases {
            assert_eq!(
                parse_command(wire),
                Err(ParseError::Bad {
                    tag: tag.map(String::from),
                    text: text.into()
                }),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    /// Every prefix of a good command parses without panicking and, once
    /// the tag is complete, any error carries it.
    #[test]
    fn every_prefix_keeps_the_tag() {
        let samples: &[&[u8]] = &[
            b"a APPEND x (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {3}\r\nabc ~{2}\r\nhi\r\n",
            b"a UID FETCH 1:* (BODY.PEEK[1.HEADER.FIELDS (From {2}\r\nTo)]<0.5> BINARY[1]) (CHANGEDSINCE 5)\r\n",
            b"a SEARCH RETURN (MIN) CHARSET UTF-8 OR NOT (FROM x) UID $ SINCE 1-Jan-2024\r\n",
            b"a LIST (SUBSCRIBED) \"\" (a b) RETURN (STATUS (SIZE))\r\n",
            b"a STORE 1 (UNCHANGEDSINCE 1) +FLAGS.SILENT (\\Seen)\r\n",
            b"a LOGIN {3}\r\nbob \"pw\"\r\n",
        ];
        for wire in samples {
            assert!(
                parse_command(wire).is_ok(),
                "{}",
                String::from_utf8_lossy(wire)
            );
            for cut in 2..wire.len() {
                if let Err(ParseError::Bad { tag, text }) = parse_command(&wire[..cut]) {
                    assert_eq!(tag.as_deref(), Some("a"), "cut {cut}: {text}");
                }
            }
        }
    }

    /// The framer's output is what the parser expects: a client session cut
    /// into odd reads, with LF-only line ends and both literal kinds.
    #[test]
    fn framed_session() {
        use crate::proto::frame::{Frame, FrameLimits, Framer};
        let stream: &[u8] = b"1 LOGIN {3}\nbob {2+}\npw\n2 SELECT INBOX\r\n\
            3 APPEND Drafts (\\Draft) {5+}\r\nhello\r\n4 UID FETCH 1:* (FLAGS)\r\n";
        let mut f = Framer::new(FrameLimits {
            max_line: 100,
            max_literal: 100,
        });
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            f.push(chunk);
            while let Some(frame) = f.next_frame() {
                match frame {
                    Frame::Command { bytes, .. } => got.push(parse_command(&bytes).unwrap().body),
                    Frame::NeedContinuation { size } => assert_eq!(size, 3),
                    Frame::TooLarge { .. } | Frame::BigLiteral { .. } => panic!("too large"),
                }
            }
        }
        assert_eq!(
            got,
            vec![
                CommandBody::Login {
                    username: "bob".into(),
                    password: "pw".into()
                },
                CommandBody::Select {
                    mailbox: "INBOX".into(),
                    read_only: false,
                    condstore: false
                },
                CommandBody::Append {
                    mailbox: "Drafts".into(),
                    messages: vec![AppendMessage {
                        flags: vec![Flag::Draft],
                        ..msg(b"hello")
                    }],
                },
                fetch(true, set(&[(V(1), S)]), vec![FetchAttr::Flags]),
            ]
        );
    }

    #[test]
    fn unknown_charset() {
        assert_eq!(
            parse_command(b"t1 SEARCH CHARSET X-NOPE FROM x\r\n"),
            Err(ParseError::BadCharset { tag: "t1".into() })
        );
    }

    #[test]
    fn search_depth_is_bounded() {
        let ok = format!("a SEARCH {}ALL{}\r\n", "(".repeat(99), ")".repeat(99));
        assert!(parse_command(ok.as_bytes()).is_ok());
        let deep = format!("a SEARCH {}ALL{}\r\n", "(".repeat(100), ")".repeat(100));
        let too_deep = Err(ParseError::Bad {
            tag: Some("a".into()),
            text: "Search criteria nested too deeply".into(),
        });
        assert_eq!(parse_command(deep.as_bytes()), too_deep);
        let nots = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(100_000));
        assert_eq!(parse_command(nots.as_bytes()), too_deep);
        let ors = format!("a SEARCH {}ALL\r\n", "OR (".repeat(100_000));
        assert_eq!(parse_command(ors.as_bytes()), too_deep);
    }

    /// Token soup for the differential property test: pieces of routed
    /// commands that combine into valid and invalid forms.
    const PIECES: &[&str] = &[
        "1",
        "1:*",
        "3:2,5",
        "$",
        "*",
        "(",
        ")",
        "()",
        "BODY[",
        "BODY.PEEK[",
        "]",
        "1.2",
        "1.",
        "HEADER",
        "HEADER.FIELDS",
        "HEADER.FIELDS.NOT",
        "(From \"To\")",
        "TEXT",
        "MIME",
        "<0.5>",
        "<1.0>",
        "FLAGS",
        "+FLAGS",
        "-FLAGS.SILENT",
        "FLAGS.SILENT",
        "\\Seen",
        "\\Recent",
        "kw",
        "\"q\"",
        "{2}\r\nab",
        "NIL",
        "(UNCHANGEDSINCE 5)",
        "(CHANGEDSINCE 3)",
        "(CHANGEDSINCE 0)",
        "BINARY[1]",
        "BINARY.SIZE[]",
        "ALL",
        "FAST",
        "UID",
        "ENVELOPE",
        "RFC822.SIZE",
        "MODSEQ",
        "=",
        "AGJvYgBzZWNyZXQ=",
        "PLAIN",
        "CONDSTORE",
        "b\u{f6}b",
    ];

    proptest! {
        /// Whenever imap-codec accepts a routed command, our parser reads
        /// the same value (so the fallback is never a change of meaning).
        #[test]
        fn codec_and_own_agree(
            cmd in prop::sample::select(vec![
                "FETCH", "UID FETCH", "STORE", "UID STORE", "UID EXPUNGE", "LOGIN", "ID",
                "ENABLE", "AUTHENTICATE",
            ]),
            parts in prop::collection::vec((prop::sample::select(PIECES), prop::bool::ANY), 1..7),
        ) {
            let mut wire = format!("a {cmd} ");
            for (piece, space) in parts {
                wire.push_str(piece);
                if space {
                    wire.push(' ');
                }
            }
            let wire = format!("{}\r\n", wire.trim_end());
            if let Some(codec) = codec::decode(wire.as_bytes()) {
                let ours = parse_command(wire.as_bytes());
                prop_assert!(ours.is_ok(), "{wire:?}: codec {codec:?}, ours {ours:?}");
                prop_assert_eq!(normalise(codec), normalise(ours.unwrap()), "{:?}", wire);
            }
        }

        /// The same for FETCH and STORE built from mostly valid parts.
        #[test]
        fn codec_and_own_agree_on_fetch_store(
            uid in prop::bool::ANY,
            set in prop::sample::select(vec!["1", "1:*", "*:4,7", "4294967295", "0", "$"]),
            atts in prop::collection::vec(prop::sample::select(vec![
                "UID", "FLAGS", "BODY[]", "BODY.PEEK[1.2.HEADER]", "BODY[HEADER.FIELDS (A b)]<3.4>",
                "BINARY[1]<0.1>", "BINARY.SIZE[2.3]", "BODY[1.MIME]", "RFC822", "RFC822.TEXT",
                "MODSEQ", "BODY[0]", "BODY[1.0]", "BODY[]<0.0>", "BINARY[]", "BODY[HEADER.FIELDS ()]",
                "BODY[TEXT]<4294967295.1>", "BODY[1.TEXT]", "BODY[MIME]", "body.peek[header]",
                "BODY[HEADER.FIELDS.NOT ({3}\r\nX-y \"Z\")]", "ENVELOPE", "BODYSTRUCTURE", "BODY",
            ]), 1..5),
            modifier in prop::sample::select(vec!["", " (CHANGEDSINCE 7)", " (CHANGEDSINCE 0)", " (VANISHED)"]),
            store in prop::sample::select(vec![
                "FLAGS ()", "+FLAGS (\\Seen kw)", "-FLAGS.SILENT \\Deleted", "(UNCHANGEDSINCE 0) FLAGS x",
                "FLAGS (\\Recent \\X $y)", "+FLAGS", "FLAGS.SILENT (\\Seen) extra",
            ]),
        ) {
            let uid = if uid { "UID " } else { "" };
            let fetch = format!("a {uid}FETCH {set} ({}){modifier}\r\n", atts.join(" "));
            let single = format!("a {uid}FETCH {set} {}{modifier}\r\n", atts[0]);
            let store = format!("a {uid}STORE {set} {store}\r\n");
            for wire in [fetch, single, store] {
                if let Some(codec) = codec::decode(wire.as_bytes()) {
                    let ours = parse_command(wire.as_bytes());
                    prop_assert!(ours.is_ok(), "{wire:?}: codec {codec:?}, ours {ours:?}");
                    prop_assert_eq!(normalise(codec), normalise(ours.unwrap()), "{:?}", wire);
                }
            }
        }

        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_command(&bytes);
        }

        /// Arbitrary text after a valid command name exercises the argument
        /// parsers rather than stopping at the tag.
        #[test]
        fn never_panics_on_commands(
            name in prop::sample::select(vec![
                "SEARCH", "FETCH 1", "STORE 1", "LIST", "APPEND x", "UID SEARCH", "STATUS x",
                "LOGIN", "AUTHENTICATE", "ID", "SELECT", "CREATE x", "UID FETCH 1:*",
            ]),
            rest in "[ -~\r\n\u{80}-\u{ff}]{0,80}",
        ) {
            let wire = format!("a {name} {rest}");
            if let Err(ParseError::Bad { tag, .. }) = parse_command(wire.as_bytes()) {
                prop_assert_eq!(tag, Some("a".to_string()));
            }
        }
    }
}
