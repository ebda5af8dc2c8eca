//! Protocol transcript tests: every `tests/transcripts/*.txt` file is replayed against a fresh
//! server (see `common::TestServer`) over the cleartext loopback port, and each server line is
//! checked against the file. `TRANSCRIPT=substring` runs only the files whose name contains it.
//!
//! # File format
//! One step per line; blank lines and lines starting with `#` are ignored. A digit after the
//! letter picks a connection (`C2:`, `S2:`...; default 1); connections open on first use.
//!
//! - `#! fixture NAME`: copy `tests/fixtures/maildirs/NAME/` into alice's Maildir before start.
//! - `#! option plaintext_on_loopback=false`, `#! option max_literal_bytes=N` (nestbox only:
//!   also its APPENDLIMIT), `#! option quota_set=true` (nestbox's `mail.quota_set`): server
//!   options.
//! - `#! skip dovecot`: this file tests nestbox-only behaviour (e.g. IMAP4rev2), so it is not
//!   replayed when validating against Dovecot (`NESTBOX_TEST_SERVER=dovecot`).
//! - `LOGIN`: read the greeting, log in as alice with tag `L0`, expect `L0 OK` (an untagged
//!   CAPABILITY before it is allowed by RFC 9051 §6.2.3 and skipped).
//! - `C: text`: send `text` CRLF. Placeholders inside: `{msg:FILE}` / `{msg+:FILE}` send
//!   `tests/fixtures/messages/FILE` (LF turned into CRLF) as a synchronizing literal (the
//!   runner waits for the `+` continuation; if the server answers the command's tag instead,
//!   the rest of the command is not sent) or as a LITERAL+ non-synchronizing one;
//!   `{str:TEXT}` / `{str+:TEXT}` do the same with TEXT (escapes `\r \n \\ \} \xHH`);
//!   `{fill:N}` inserts N `x` characters into the line itself. Anything else, including a raw
//!   `{5}`, is sent verbatim.
//! - `S: text`: the next server line must be exactly `text`. `{msg:FILE}` / `{str:TEXT}` in it
//!   stand for a literal `{N}` CRLF and its bytes. A list written `%(a b c)` matches the same
//!   elements in any order (flag lists; an element written `x?` may be missing), and `%%(k1 v1 k2 v2)` the same key/value pairs in any
//!   order (FETCH data items): RFC 9051 leaves those orders to the server. `%i(...)` is an
//!   ordered list whose strings compare case-insensitively (BODYSTRUCTURE). In these lines a
//!   quoted string, a literal and an atom with the same value are equal (mailbox names may be
//!   sent either way), and a literal8 `~{N}` equals a literal of the same bytes.
//! - `S~ regex`: the next server line must match `regex` in full.
//! - `U: text` / `U~ regex`: a run of consecutive U lines matches the same number of server
//!   lines in any order (e.g. SELECT's untagged data). `U?:`/`U?~`/`S?:`/`S?~` are optional.
//! - `S!~ regex` (or `S!:`): the next server line must exist and NOT match.
//! - `EOF`: the server must close the connection (after LOGOUT or a fatal error).
//! - `DEFLATE`: COMPRESS=DEFLATE (RFC 4978) from the end of the next tagged OK line the server
//!   sends on this connection: from there both directions are raw DEFLATE (no zlib header), each
//!   `C:` send sync-flushed. Put it before the `S:` line of the COMPRESS command's OK; a `NO` or
//!   `BAD` in between leaves it waiting. The lines are matched after inflating, as before.
//!
//! - `TRANSCRIPT_RECORD=1` prints what a server answers to the `C:` lines in this syntax, to
//!   draft new files against a reference server (`tests/tools/recording_to_transcript.py`).
//!
//! A server line is "logical": a literal `{N}` inside it is read with its N bytes and the rest
//! of the line, so one FETCH response is one line for matching.

mod common;

use common::deflate::Deflater;
use common::{Kind, Options, TestServer, fixtures_dir};
use regex::Regex;
use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one expected line may take to arrive.
const LINE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Matcher {
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
struct Pattern {
    optional: bool,
    negated: bool,
    matcher: Matcher,
    src: String,
    line_no: usize,
}

#[derive(Debug)]
enum Step {
    Send {
        conn: usize,
        text: String,
        line_no: usize,
    },
    Expect {
        conn: usize,
        group: Vec<Pattern>,
        unordered: bool,
    },
    Eof {
        conn: usize,
        line_no: usize,
    },
    Login {
        conn: usize,
        line_no: usize,
    },
    Deflate {
        conn: usize,
    },
}

struct Transcript {
    fixture: Option<String>,
    options: Options,
    skip_dovecot: bool,
    steps: Vec<Step>,
}

fn messages_dir() -> PathBuf {
    fixtures_dir().join("messages")
}

/// A fixture message with its line endings turned into CRLF (as IMAP carries it).
fn message_bytes(name: &str) -> Result<Vec<u8>, String> {
    let raw = fs::read(messages_dir().join(name)).map_err(|e| format!("message {name}: {e}"))?;
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    let mut prev = 0u8;
    for &b in &raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    Ok(out)
}

/// Decode `{str:...}` escapes.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'}') => out.push(b'}'),
            Some(b'x') => {
                let h: Vec<u8> = it.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&h).map_err(|_| "bad \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
            }
            other => return Err(format!("unknown escape \\{:?}", other.map(char::from))),
        }
    }
    Ok(out)
}

/// A piece of a client line: verbatim text, or a literal to send (with its `+` flag).
enum Piece {
    Text(Vec<u8>),
    Literal { data: Vec<u8>, non_sync: bool },
}

/// Split a `C:` line into verbatim text and literals, expanding placeholders.
fn expand_client(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut cur = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let kinds = ["msg:", "msg+:", "str:", "str+:", "fill:"];
        let Some(kind) = kinds.iter().find(|k| after.starts_with(*k)) else {
            cur.extend_from_slice(&rest.as_bytes()[..=start]);
            rest = after;
            continue;
        };
        cur.extend_from_slice(&rest.as_bytes()[..start]);
        let body_start = start + 1 + kind.len();
        let end = find_placeholder_end(rest, body_start)
            .ok_or_else(|| format!("unterminated placeholder in {text:?}"))?;
        let body = &rest[body_start..end];
        rest = &rest[end + 1..];
        match *kind {
            "fill:" => {
                let n: usize = body.parse().map_err(|_| format!("bad fill {body:?}"))?;
                cur.extend(std::iter::repeat_n(b'x', n));
            }
            k => {
                let data = if k.starts_with("msg") {
                    message_bytes(body)?
                } else {
                    unescape(body)?
                };
                let non_sync = k.contains('+');
                cur.extend_from_slice(
                    format!("{{{}{}}}\r\n", data.len(), if non_sync { "+" } else { "" }).as_bytes(),
                );
                pieces.push(Piece::Text(std::mem::take(&mut cur)));
                pieces.push(Piece::Literal { data, non_sync });
            }
        }
    }
    cur.extend_from_slice(rest.as_bytes());
    cur.extend_from_slice(b"\r\n");
    pieces.push(Piece::Text(cur));
    Ok(pieces)
}

/// Index of the `}` closing a placeholder body starting at `from` (skipping `\}` escapes).
fn find_placeholder_end(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'}' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Expand `{msg:F}` / `{str:T}` in an expected line into `{N}` CRLF bytes.
fn expand_expected(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let kind = ["msg:", "str:"].into_iter().find(|k| after.starts_with(k));
        let Some(kind) = kind else {
            out.push_str(&rest[..=start]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..start]);
        let body_start = start + 1 + kind.len();
        let end = find_placeholder_end(rest, body_start)
            .ok_or_else(|| format!("unterminated placeholder in {text:?}"))?;
        let body = &rest[body_start..end];
        let data = if kind == "msg:" {
            message_bytes(body)?
        } else {
            unescape(body)?
        };
        out.push_str(&format!(
            "{{{}}}\r\n{}",
            data.len(),
            String::from_utf8_lossy(&data)
        ));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_transcript(path: &Path) -> Result<Transcript, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let line_re = Regex::new(r"^(C|S|U)(\d*)([?!])?([:~])(?: (.*))?$").expect("static regex");
    let mut t = Transcript {
        fixture: None,
        options: Options::default(),
        skip_dovecot: false,
        steps: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |m: &str| format!("{}:{line_no}: {m}", path.display());
        if let Some(d) = line.strip_prefix("#!") {
            let words: Vec<&str> = d.split_whitespace().collect();
            match words.as_slice() {
                ["fixture", name] => t.fixture = Some(name.to_string()),
                ["option", "plaintext_on_loopback=false"] => {
                    t.options.plaintext_on_loopback = false
                }
                ["option", o] if o.starts_with("max_literal_bytes=") => {
                    let n = o["max_literal_bytes=".len()..]
                        .parse()
                        .map_err(|_| err("bad max_literal_bytes"))?;
                    t.options.max_literal_bytes = Some(n);
                }
                ["option", "quota_set=true"] => {
                    t.options.mail_extra = Some("quota_set = true\n".into())
                }
                ["skip", "dovecot"] => t.skip_dovecot = true,
                _ => return Err(err("unknown directive")),
            }
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let conn_of = |s: &str| -> Result<usize, String> {
            if s.is_empty() {
                Ok(1)
            } else {
                s.parse().map_err(|_| err("bad connection number"))
            }
        };
        if let Some(n) = line.strip_prefix("LOGIN") {
            t.steps.push(Step::Login {
                conn: conn_of(n.trim())?,
                line_no,
            });
            continue;
        }
        if let Some(n) = line.strip_prefix("DEFLATE") {
            t.steps.push(Step::Deflate {
                conn: conn_of(n.trim())?,
            });
            continue;
        }
        if let Some(n) = line.strip_prefix("EOF") {
            t.steps.push(Step::Eof {
                conn: conn_of(n.trim())?,
                line_no,
            });
            continue;
        }
        let caps = line_re
            .captures(line)
            .ok_or_else(|| err("not a transcript line"))?;
        let kind = &caps[1];
        let conn = conn_of(&caps[2])?;
        let optional = caps.get(3).is_some_and(|m| m.as_str() == "?");
        let negated = caps.get(3).is_some_and(|m| m.as_str() == "!");
        let is_regex = &caps[4] == "~";
        let body = caps.get(5).map(|m| m.as_str()).unwrap_or("").to_string();
        if kind == "C" {
            if optional || is_regex {
                return Err(err("C takes ':' only"));
            }
            t.steps.push(Step::Send {
                conn,
                text: body,
                line_no,
            });
            continue;
        }
        let matcher = if is_regex {
            Matcher::Regex(
                Regex::new(&format!("^(?:{body})$")).map_err(|e| err(&format!("regex: {e}")))?,
            )
        } else {
            Matcher::Exact(expand_expected(&body).map_err(|e| err(&e))?)
        };
        let pat = Pattern {
            optional,
            negated,
            matcher,
            src: line.to_string(),
            line_no,
        };
        let unordered = kind == "U";
        match t.steps.last_mut() {
            Some(Step::Expect {
                conn: c,
                group,
                unordered: true,
            }) if unordered && *c == conn => group.push(pat),
            _ => t.steps.push(Step::Expect {
                conn,
                group: vec![pat],
                unordered,
            }),
        }
    }
    Ok(t)
}

// ---- structural comparison for `%(...)` lists ----

#[derive(Debug, PartialEq, Clone)]
enum Tok {
    Atom(String),
    List { items: Vec<Tok>, mode: u8 }, // mode: 0 ordered, 1 unordered elements, 2 unordered pairs
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let mut pos = 0;
    let items = tokenize_list(b, &mut pos, false)?;
    (pos == b.len()).then_some(items)
}

fn tokenize_list(b: &[u8], pos: &mut usize, nested: bool) -> Option<Vec<Tok>> {
    let mut items = Vec::new();
    while *pos < b.len() {
        match b[*pos] {
            b' ' => *pos += 1,
            b')' if nested => {
                *pos += 1;
                return Some(items);
            }
            b'%' if b.get(*pos + 1) == Some(&b'%') && b.get(*pos + 2) == Some(&b'(') => {
                *pos += 3;
                items.push(Tok::List {
                    items: tokenize_list(b, pos, true)?,
                    mode: 2,
                });
            }
            b'%' if b.get(*pos + 1) == Some(&b'(') => {
                *pos += 2;
                items.push(Tok::List {
                    items: tokenize_list(b, pos, true)?,
                    mode: 1,
                });
            }
            b'%' if b.get(*pos + 1) == Some(&b'i') && b.get(*pos + 2) == Some(&b'(') => {
                *pos += 3;
                items.push(Tok::List {
                    items: tokenize_list(b, pos, true)?,
                    mode: 3,
                });
            }
            b'(' => {
                *pos += 1;
                items.push(Tok::List {
                    items: tokenize_list(b, pos, true)?,
                    mode: 0,
                });
            }
            b'"' => {
                let start = *pos;
                *pos += 1;
                while *pos < b.len() && b[*pos] != b'"' {
                    if b[*pos] == b'\\' {
                        *pos += 1;
                    }
                    *pos += 1;
                }
                *pos += 1;
                let end = (*pos).min(b.len());
                items.push(Tok::Atom(
                    String::from_utf8_lossy(&b[start..end]).into_owned(),
                ));
            }
            b'{' | b'~' if b[*pos] == b'{' || b.get(*pos + 1) == Some(&b'{') => {
                // A literal `{N}` (or literal8 `~{N}`) CRLF + N bytes is one token.
                let start = *pos;
                let open = if b[start] == b'~' { start + 1 } else { start };
                let close = start + b[start..].iter().position(|&c| c == b'}')?;
                let n: usize = std::str::from_utf8(&b[open + 1..close])
                    .ok()?
                    .parse()
                    .ok()?;
                let end = close + 3 + n;
                if end > b.len() {
                    return None;
                }
                *pos = end;
                items.push(Tok::Atom(
                    String::from_utf8_lossy(&b[start..end]).into_owned(),
                ));
            }
            _ => {
                // An atom, with any `[...]` section (which may hold spaces and parens) inside.
                let start = *pos;
                let mut depth = 0i32;
                while *pos < b.len() {
                    let c = b[*pos];
                    if c == b'[' {
                        depth += 1;
                    } else if c == b']' {
                        depth -= 1;
                    } else if depth == 0 && matches!(c, b' ' | b'(' | b')') {
                        break;
                    }
                    *pos += 1;
                }
                items.push(Tok::Atom(
                    String::from_utf8_lossy(&b[start..*pos]).into_owned(),
                ));
            }
        }
    }
    (!nested).then_some(items)
}

fn tok_match(exp: &Tok, act: &Tok) -> bool {
    tok_match_ci(exp, act, false)
}

/// `ci`: inside a `%i(...)` list, strings compare ASCII-case-insensitively (MIME types,
/// parameter names and encodings in BODYSTRUCTURE are case-insensitive, RFC 2045 §5.1).
fn tok_match_ci(exp: &Tok, act: &Tok, ci: bool) -> bool {
    let tok_match = |x: &Tok, y: &Tok| tok_match_ci(x, y, ci);
    match (exp, act) {
        (Tok::Atom(a), Tok::Atom(b)) => {
            a == b
                || (ci && a.eq_ignore_ascii_case(b))
                || string_value(a).is_some_and(|x| {
                    string_value(b).is_some_and(|y| x == y || (ci && x.eq_ignore_ascii_case(&y)))
                })
        }
        (Tok::List { items: e, mode }, Tok::List { items: a, .. }) => match mode {
            0 => e.len() == a.len() && e.iter().zip(a).all(|(x, y)| tok_match(x, y)),
            3 => e.len() == a.len() && e.iter().zip(a).all(|(x, y)| tok_match_ci(x, y, true)),
            1 => unordered_match(&e.iter().collect::<Vec<_>>(), &a.iter().collect::<Vec<_>>()),
            _ => {
                if e.len() % 2 != 0 || a.len() != e.len() {
                    return false;
                }
                let pe: Vec<_> = e.chunks(2).collect();
                let pa: Vec<_> = a.chunks(2).collect();
                let mut used = vec![false; pa.len()];
                pe.iter().all(|p| {
                    let hit = pa.iter().enumerate().find(|(i, q)| {
                        !used[*i] && tok_match(&p[0], &q[0]) && tok_match(&p[1], &q[1])
                    });
                    hit.map(|(i, _)| used[i] = true).is_some()
                })
            }
        },
        _ => false,
    }
}

/// The value of a string token: a quoted string, a literal, or an atom other than NIL (for
/// astrings such as mailbox names, which a server may send either way, RFC 9051 §4.3).
fn string_value(tok: &str) -> Option<String> {
    if let Some(q) = tok.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        let mut out = String::new();
        let mut esc = false;
        for ch in q.chars() {
            if esc || ch != '\\' {
                out.push(ch);
                esc = false;
            } else {
                esc = true;
            }
        }
        return Some(out);
    }
    if let Some(lit8) = tok.strip_prefix('~') {
        // literal8 (RFC 3516): the same string as a plain literal of the same bytes.
        let i = lit8.find("}\r\n")?;
        return Some(lit8[i + 3..].to_string());
    }
    if tok.starts_with('{') {
        let i = tok.find("}\r\n")?;
        let data = &tok[i + 3..];
        // NUL cannot be sent in a plain literal: such a token equals nothing.
        return (!data.contains('\0')).then(|| data.to_string());
    }
    let atom_ok = !tok.is_empty()
        && !tok.eq_ignore_ascii_case("NIL")
        && tok
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && !b"(){%*\"\\]".contains(&b));
    atom_ok.then(|| tok.to_string())
}

/// Same elements in any order. An expected atom written `x?` (e.g. `\\Recent?`) may be absent.
fn unordered_match(e: &[&Tok], a: &[&Tok]) -> bool {
    let mut used = vec![false; a.len()];
    for x in e {
        let (x, optional) = match x {
            Tok::Atom(s) if s.len() > 1 && s.ends_with('?') => {
                (Tok::Atom(s[..s.len() - 1].to_string()), true)
            }
            other => ((*other).clone(), false),
        };
        let hit = a
            .iter()
            .enumerate()
            .find(|(i, y)| !used[*i] && tok_match(&x, y));
        match hit {
            Some((i, _)) => used[i] = true,
            None if optional => {}
            None => return false,
        }
    }
    used.iter().all(|u| *u)
}

fn matches(p: &Pattern, line: &str) -> bool {
    p.negated != matches_positive(p, line)
}

fn matches_positive(p: &Pattern, line: &str) -> bool {
    match &p.matcher {
        Matcher::Regex(r) => r.is_match(line),
        Matcher::Exact(e) if e.contains("%(") => match (tokenize(e), tokenize(line)) {
            (Some(e), Some(a)) => {
                e.len() == a.len() && e.iter().zip(&a).all(|(x, y)| tok_match(x, y))
            }
            _ => false,
        },
        Matcher::Exact(e) => e == line,
    }
}

// ---- connections ----

struct Conn {
    stream: TcpStream,
    /// What the server sent, inflated once COMPRESS is on.
    buf: Vec<u8>,
    pending: VecDeque<Option<String>>, // None = EOF
    log: Vec<String>,
    /// `DEFLATE` was seen: compression starts after the next tagged OK.
    deflate_next: bool,
    /// COMPRESS=DEFLATE is on.
    deflate: Option<Deflater>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            pending: VecDeque::new(),
            log: Vec::new(),
            deflate_next: false,
            deflate: None,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.log
            .push(format!("C: {}", String::from_utf8_lossy(bytes).trim_end()));
        let wire = match &mut self.deflate {
            Some(d) => d.compress(bytes),
            None => bytes.to_vec(),
        };
        self.stream
            .write_all(&wire)
            .map_err(|e| format!("send: {e}"))
    }

    /// Turns COMPRESS on if it is armed and `line` is a tagged OK: what was read after that
    /// line is already compressed.
    fn maybe_start_deflate(&mut self, line: &[u8]) -> Result<(), String> {
        let tagged_ok = line
            .split(|&b| b == b' ')
            .collect::<Vec<_>>()
            .get(..2)
            .is_some_and(|w| w[0] != b"*" && w[0] != b"+" && w[1].eq_ignore_ascii_case(b"OK"));
        if !self.deflate_next || !tagged_ok {
            return Ok(());
        }
        self.deflate_next = false;
        let mut d = Deflater::new();
        let rest = std::mem::take(&mut self.buf);
        self.buf = d.decompress(&rest)?;
        self.deflate = Some(d);
        self.log.push("-- DEFLATE on --".into());
        Ok(())
    }

    /// Fill the buffer until it holds `n` bytes, EOF, or the deadline.
    fn fill(&mut self, n: usize, deadline: Instant) -> Result<bool, String> {
        let mut chunk = [0u8; 8192];
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out waiting for the server".into());
            }
            self.stream.set_read_timeout(Some(left)).ok();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(k) => match &mut self.deflate {
                    Some(d) => {
                        let plain = d.decompress(&chunk[..k])?;
                        self.buf.extend_from_slice(&plain);
                    }
                    None => self.buf.extend_from_slice(&chunk[..k]),
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timed out waiting for the server".into());
                }
                Err(_) => return Ok(false), // reset counts as closed
            }
        }
        Ok(true)
    }

    /// One logical server line (literals included), or None at EOF.
    fn read_logical(&mut self) -> Result<Option<String>, String> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(l);
        }
        let deadline = Instant::now() + LINE_TIMEOUT;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let crlf = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break Some(i);
                }
                let want = self.buf.len() + 1;
                if !self.fill(want, deadline)? {
                    break None;
                }
            };
            let Some(i) = crlf else {
                if out.is_empty() && self.buf.is_empty() {
                    self.log.push("S: <EOF>".into());
                    return Ok(None);
                }
                return Err(format!(
                    "connection closed inside a line: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            };
            let line: Vec<u8> = self.buf.drain(..i + 2).collect();
            let line = &line[..i];
            out.extend_from_slice(line);
            // A line ending in a literal `{N}` continues after N bytes.
            let lit = literal_len(line);
            match lit {
                Some(n) => {
                    out.extend_from_slice(b"\r\n");
                    if !self.fill(n, deadline)? {
                        return Err("connection closed inside a literal".into());
                    }
                    out.extend(self.buf.drain(..n));
                }
                None => break,
            }
        }
        self.maybe_start_deflate(&out)?;
        let s = String::from_utf8_lossy(&out).into_owned();
        self.log.push(format!("S: {s}"));
        Ok(Some(s))
    }
}

/// `N` when the line ends with a server literal `{N}` (or `~{N}`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(line).ok()?;
    let s = s.strip_suffix('}')?;
    let open = s.rfind('{')?;
    s[open + 1..].parse().ok()
}

struct Run<'a> {
    server: &'a TestServer,
    conns: Vec<Option<Conn>>,
}

impl Run<'_> {
    fn conn(&mut self, n: usize) -> &mut Conn {
        if self.conns.len() <= n {
            self.conns.resize_with(n + 1, || None);
        }
        let server = self.server;
        self.conns[n].get_or_insert_with(|| Conn::new(server.connect()))
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Send {
                conn,
                text,
                line_no,
            } => {
                let pieces = expand_client(text).map_err(|e| format!("line {line_no}: {e}"))?;
                let c = self.conn(*conn);
                for p in pieces {
                    match p {
                        Piece::Text(t) => c.send(&t)?,
                        Piece::Literal { data, non_sync } => {
                            if !non_sync {
                                let l = c.read_logical()?;
                                let tag = text.split(' ').next().unwrap_or("");
                                match l {
                                    Some(l) if l.starts_with('+') => {}
                                    // The server refused the command before its literal
                                    // (allowed, RFC 9051 §7.5): the client must not send it;
                                    // the tagged answer is left for the next S: line.
                                    Some(l) if l.starts_with(&format!("{tag} ")) => {
                                        c.pending.push_front(Some(l));
                                        return Ok(());
                                    }
                                    other => {
                                        return Err(format!(
                                            "line {line_no}: expected a `+` continuation \
                                             for the literal, got {other:?}"
                                        ));
                                    }
                                }
                            }
                            c.send(&data)?;
                        }
                    }
                }
                Ok(())
            }
            Step::Login { conn, line_no } => {
                let c = self.conn(*conn);
                match c.read_logical()? {
                    Some(g) if g.starts_with("* OK") => {}
                    other => return Err(format!("line {line_no}: bad greeting {other:?}")),
                }
                c.send(format!("L0 LOGIN {} {}\r\n", common::USER, common::PASSWORD).as_bytes())?;
                loop {
                    match c.read_logical()? {
                        Some(l) if l.starts_with("* CAPABILITY ") => continue,
                        Some(l) if l.starts_with("L0 OK") => return Ok(()),
                        other => return Err(format!("line {line_no}: login failed: {other:?}")),
                    }
                }
            }
            Step::Deflate { conn } => {
                self.conn(*conn).deflate_next = true;
                Ok(())
            }
            Step::Eof { conn, line_no } => match self.conn(*conn).read_logical()? {
                None => Ok(()),
                Some(l) => Err(format!(
                    "line {line_no}: expected the server to close, got {l:?}"
                )),
            },
            Step::Expect {
                conn,
                group,
                unordered,
            } => {
                let c = self.conn(*conn);
                let mut done = vec![false; group.len()];
                loop {
                    if done.iter().all(|d| *d) {
                        return Ok(());
                    }
                    let line = c.read_logical();
                    let line = match line {
                        Ok(l) => l,
                        // A timeout is fine if only optional patterns are left.
                        Err(e) => {
                            if group.iter().zip(&done).all(|(p, d)| *d || p.optional) {
                                return Ok(());
                            }
                            return Err(missing(group, &done, &e));
                        }
                    };
                    let Some(l) = line else {
                        c.pending.push_front(None);
                        return Err(missing(group, &done, "the server closed the connection"));
                    };
                    let hit = group.iter().enumerate().find(|(i, p)| {
                        !done[*i]
                            && (*unordered
                                || group[..*i].iter().zip(&done).all(|(q, d)| *d || q.optional))
                            && matches(p, &l)
                    });
                    match hit {
                        Some((i, _)) => done[i] = true,
                        None => {
                            let all_required =
                                group.iter().zip(&done).all(|(p, d)| *d || p.optional);
                            if all_required {
                                c.pending.push_front(Some(l));
                                return Ok(());
                            }
                            return Err(missing(group, &done, &format!("got {l:?}")));
                        }
                    }
                }
            }
        }
    }
}

fn missing(group: &[Pattern], done: &[bool], got: &str) -> String {
    let want: Vec<String> = group
        .iter()
        .zip(done)
        .filter(|(_, d)| !**d)
        .map(|(p, _)| format!("  line {}: {}", p.line_no, p.src))
        .collect();
    format!("expected:\n{}\n{got}", want.join("\n"))
}

fn run_file(path: &Path, kind: Kind) -> Result<bool, String> {
    let t = parse_transcript(path)?;
    if kind == Kind::Dovecot && t.skip_dovecot {
        return Ok(false);
    }
    let mut options = t.options.clone();
    if let Some(f) = &t.fixture {
        options.seed_maildir = Some(fixtures_dir().join("maildirs").join(f));
    }
    let server = TestServer::start_kind(kind, options);
    let mut run = Run {
        server: &server,
        conns: Vec::new(),
    };
    if std::env::var_os("TRANSCRIPT_RECORD").is_some() {
        record(&mut run, &t);
        return Ok(true);
    }
    for step in &t.steps {
        if let Err(e) = run.step(step) {
            let mut msg = format!("{}: {e}\n--- conversation ---\n", path.display());
            for (i, c) in run.conns.iter().enumerate() {
                if let Some(c) = c {
                    msg.push_str(&format!("[connection {i}]\n"));
                    for l in c
                        .log
                        .iter()
                        .rev()
                        .take(40)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                    {
                        msg.push_str(&format!("  {}\n", l.escape_debug()));
                    }
                }
            }
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            msg.push_str("--- server log (tail) ---\n");
            for l in tail.into_iter().rev() {
                msg.push_str(&format!("  {l}\n"));
            }
            return Err(msg);
        }
    }
    Ok(true)
}

/// `TRANSCRIPT_RECORD=1`: send only the client lines and print what the server answers, already
/// in transcript syntax (tagged and `* OK [code]` text loosened, FETCH items and flag lists
/// unordered), for writing new transcripts against a reference server. Every printed line must
/// still be reviewed against the RFC before it goes into a file.
fn record(run: &mut Run, t: &Transcript) {
    for step in &t.steps {
        let (conn, tag, text) = match step {
            Step::Send { conn, text, .. } => (
                *conn,
                text.split(' ').next().unwrap_or("").to_string(),
                text.clone(),
            ),
            Step::Deflate { conn } => {
                let _ = run.step(step);
                println!(
                    "DEFLATE{}",
                    if *conn == 1 {
                        String::new()
                    } else {
                        conn.to_string()
                    }
                );
                continue;
            }
            Step::Login { conn, .. } => {
                let _ = run.step(step);
                println!(
                    "LOGIN{}",
                    if *conn == 1 {
                        String::new()
                    } else {
                        conn.to_string()
                    }
                );
                continue;
            }
            _ => continue,
        };
        let n = if conn == 1 {
            String::new()
        } else {
            conn.to_string()
        };
        println!("C{n}: {text}");
        if let Err(e) = run.step(step) {
            println!("# record: {e}");
        }
        let c = run.conn(conn);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match c.read_logical() {
                Ok(Some(l)) => {
                    println!("{}", to_expectation(&l, &n));
                    if l.starts_with(&format!("{tag} ")) || l.starts_with('+') {
                        break;
                    }
                }
                Ok(None) => {
                    println!("EOF{n}");
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

/// One recorded server line as a transcript expectation.
fn to_expectation(l: &str, n: &str) -> String {
    let status =
        Regex::new(r"^(\*|[A-Za-z0-9.]+) (OK|NO|BAD|BYE|PREAUTH)( \[[^\]]*\])?").expect("re");
    if let Some(c) = status.captures(l) {
        let code = c
            .get(3)
            .map(|m| regex::escape(m.as_str()))
            .unwrap_or_default();
        return format!("S{n}~ {} {}{code}.*", regex::escape(&c[1]), &c[2]);
    }
    if l.starts_with('+') {
        return format!("S{n}~ \\+.*");
    }
    // Literals become {str:...} placeholders.
    let mut out = String::new();
    let mut rest = l;
    while let Some(i) = rest.find("}\r\n") {
        let open = rest[..i].rfind('{').unwrap_or(i);
        let len: usize = rest[open + 1..i].parse().unwrap_or(0);
        let prefix = &rest[..open];
        out.push_str(prefix);
        let data = &rest.as_bytes()[i + 3..(i + 3 + len).min(rest.len())];
        out.push_str("{str:");
        for &b in data {
            match b {
                b'\r' => out.push_str("\\r"),
                b'\n' => out.push_str("\\n"),
                b'\\' => out.push_str("\\\\"),
                b'}' => out.push_str("\\}"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        out.push('}');
        rest = &rest[(i + 3 + len).min(rest.len())..];
    }
    out.push_str(rest);
    let out = out
        .replace(" FETCH (", " FETCH %%(")
        .replace("FLAGS (", "FLAGS %(");
    format!("S{n}: {out}")
}

#[test]
fn transcripts() {
    let kind = Kind::from_env();
    if kind == Kind::Dovecot && !common::require_tool("dovecot", "reference server") {
        return;
    }
    let dir = common::repo_root().join("tests").join("transcripts");
    let filter = std::env::var("TRANSCRIPT").unwrap_or_default();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/transcripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .filter(|p| p.to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no transcript matched {filter:?}");
    let mut failures = Vec::new();
    let (mut passed, mut skipped) = (0, 0);
    for f in &files {
        // A server that fails to start panics in the harness; report it as this file's
        // failure and go on with the next file.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_file(f, kind)));
        match result {
            Ok(Ok(true)) => passed += 1,
            Ok(Ok(false)) => skipped += 1,
            Ok(Err(e)) => failures.push(e),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: panicked: {msg}", f.display()));
            }
        }
    }
    for f in &failures {
        eprintln!("FAILED {f}\n");
    }
    eprintln!(
        "transcripts: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} transcript(s) failed",
        failures.len()
    );
}

#[cfg(test)]
mod format_tests {
    use super::*;

    fn exact(s: &str) -> Pattern {
        Pattern {
            optional: false,
            negated: false,
            matcher: Matcher::Exact(expand_expected(s).unwrap()),
            src: s.into(),
            line_no: 0,
        }
    }

    #[test]
    fn unordered_lists_and_pairs() {
        let table = [
            (
                r"* FLAGS %(\Seen \Answered)",
                r"* FLAGS (\Answered \Seen)",
                true,
            ),
            (r"* FLAGS %(\Seen \Answered)", r"* FLAGS (\Answered)", false),
            (
                r"* FLAGS %(\Seen \Answered)",
                r"* FLAGS (\Answered \Seen \Draft)",
                false,
            ),
            (
                r"* FLAGS (\Seen \Answered)",
                r"* FLAGS (\Answered \Seen)",
                false,
            ),
            (
                r"* 1 FETCH %%(UID 4 FLAGS %(\Seen))",
                r"* 1 FETCH (FLAGS (\Seen) UID 4)",
                true,
            ),
            (
                r"* 1 FETCH %%(UID 4 FLAGS %(\Seen))",
                r"* 1 FETCH (FLAGS (\Seen) UID 5)",
                false,
            ),
            (
                r"* 1 FETCH %%(UID 4 FLAGS ())",
                r"* 1 FETCH (UID 4 FLAGS (\Seen))",
                false,
            ),
            (
                r"* 2 FETCH %%(BODY[HEADER.FIELDS (TO)] {str:x\r\n} UID 2)",
                "* 2 FETCH (UID 2 BODY[HEADER.FIELDS (TO)] {3}\r\nx\r\n)",
                true,
            ),
            (
                r"* 2 FETCH %%(BODY[HEADER.FIELDS (TO)] {str:x\r\n} UID 2)",
                "* 2 FETCH (UID 2 BODY[HEADER.FIELDS (TO)] {3}\r\ny\r\n)",
                false,
            ),
            (
                r#"* LIST %(\HasNoChildren) "/" Foo"#,
                r#"* LIST (\HasNoChildren) "/" "Foo""#,
                true,
            ),
            (
                r#"* LIST %(\HasNoChildren) "/" Foo"#,
                r#"* LIST (\HasNoChildren) "/" "Fo""#,
                false,
            ),
            (
                r#"* LIST %(\HasNoChildren) "/" Foo"#,
                "* LIST (\\HasNoChildren) \"/\" {3}\r\nFoo",
                true,
            ),
            ("* X %() NIL", r#"* X () "NIL""#, false),
            (
                r#"* 1 FETCH %%(BODY %i(("text" "plain") "7bit"))"#,
                r#"* 1 FETCH (BODY (("TEXT" "PLAIN") "7BIT"))"#,
                true,
            ),
            (
                r#"* 1 FETCH %%(BODY %i(("text" "plain") "7bit"))"#,
                r#"* 1 FETCH (BODY (("TEXT" "HTML") "7BIT"))"#,
                false,
            ),
            (
                r#"* 1 FETCH %%(BODY (("text" "plain") "7bit"))"#,
                r#"* 1 FETCH (BODY (("TEXT" "PLAIN") "7BIT"))"#,
                false,
            ),
            (
                r"* 1 FETCH %%(BINARY[1] {str:ab})",
                "* 1 FETCH (BINARY[1] ~{2}\r\nab)",
                true,
            ),
            (
                r"* 1 FETCH %%(BINARY[1] ~{str:\x00b})",
                "* 1 FETCH (BINARY[1] ~{2}\r\n\0b)",
                true,
            ),
            (
                r"* 1 FETCH %%(BINARY[1] ~{str:\x00b})",
                "* 1 FETCH (BINARY[1] {2}\r\n\0b)",
                false,
            ),
            (
                r"* 1 FETCH %%(FLAGS %(\Seen \Recent?))",
                r"* 1 FETCH (FLAGS (\Seen))",
                true,
            ),
            (
                r"* 1 FETCH %%(FLAGS %(\Seen \Recent?))",
                r"* 1 FETCH (FLAGS (\Recent \Seen))",
                true,
            ),
            (
                r"* 1 FETCH %%(FLAGS %(\Seen \Recent?))",
                r"* 1 FETCH (FLAGS (\Recent))",
                false,
            ),
            (
                r"* 1 FETCH %%(FLAGS %(\Seen \Recent?))",
                r"* 1 FETCH (FLAGS (\Seen \Draft))",
                false,
            ),
            ("a OK done", "a OK done", true),
            ("a OK done", "a OK done ", false),
        ];
        for (e, a, want) in table {
            assert_eq!(matches(&exact(e), a), want, "{e} vs {a}");
        }
    }

    #[test]
    fn client_placeholders() {
        let p = expand_client(r"a LOGIN {str:al\}ice} {str+:pw} x{fill:3}").unwrap();
        let flat: Vec<String> = p
            .iter()
            .map(|p| match p {
                Piece::Text(t) => format!("T:{}", String::from_utf8_lossy(t)),
                Piece::Literal { data, non_sync } => {
                    format!("L{}:{}", non_sync, String::from_utf8_lossy(data))
                }
            })
            .collect();
        assert_eq!(
            flat,
            vec![
                "T:a LOGIN {6}\r\n",
                "Lfalse:al}ice",
                "T: {2+}\r\n",
                "Ltrue:pw",
                "T: xxxx\r\n"
            ]
        );
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_len(b"* 1 FETCH (BINARY[] ~{3}"), Some(3));
        assert_eq!(literal_len(b"* OK {not}"), None);
    }
}
