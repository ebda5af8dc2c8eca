//! The address-list parser as it was before it borrowed from the header
//! value (one `Vec` per token and part), kept verbatim as the oracle the
//! faster one is checked against: ENVELOPE bytes must not change.

use crate::proto::encode::{nstring, string};

/// Renders an address list the old way.
pub(super) fn render(v: &[u8], utf8: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_addresses(&mut out, &parse_addresses(v), utf8);
    out
}

/// One element of an ENVELOPE address list.
#[derive(Debug, PartialEq, Eq)]
enum Addr {
    Mailbox {
        name: Option<Vec<u8>>,
        route: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Vec<u8>,
    },
    GroupStart(Vec<u8>),
    GroupEnd,
}

fn write_addresses(out: &mut Vec<u8>, list: &[Addr], utf8: bool) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match a {
            Addr::Mailbox {
                name,
                route,
                mailbox,
                host,
            } => {
                nstring(out, name.as_deref(), utf8);
                out.push(b' ');
                nstring(out, route.as_deref(), utf8);
                out.push(b' ');
                string(out, mailbox, utf8);
                out.push(b' ');
                string(out, host, utf8);
            }
            Addr::GroupStart(name) => {
                out.extend_from_slice(b"NIL NIL ");
                string(out, name, utf8);
                out.extend_from_slice(b" NIL");
            }
            Addr::GroupEnd => out.extend_from_slice(b"NIL NIL NIL NIL"),
        }
        out.push(b')');
    }
    out.push(b')');
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    /// An atom or a quoted string's content.
    Word(Vec<u8>),
    /// A domain literal, brackets kept.
    Literal(Vec<u8>),
    Special(u8),
    /// A comment's content (used as the name of `addr (Name)`).
    Comment(Vec<u8>),
}

fn tokenize(v: &[u8]) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let mut w = Vec::new();
                i += 1;
                while i < v.len() && v[i] != b'"' {
                    if v[i] == b'\\' && i + 1 < v.len() {
                        i += 1;
                    }
                    if v[i] != b'\r' && v[i] != b'\n' {
                        w.push(v[i]);
                    }
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Word(w));
            }
            b'(' => {
                let mut level = 0usize;
                let mut w = Vec::new();
                while i < v.len() {
                    match v[i] {
                        b'\\' if i + 1 < v.len() => {
                            i += 1;
                            w.push(v[i]);
                        }
                        b'(' => {
                            if level > 0 {
                                w.push(b'(');
                            }
                            level += 1;
                        }
                        b')' => {
                            level -= 1;
                            if level == 0 {
                                i += 1;
                                break;
                            }
                            w.push(b')');
                        }
                        b'\r' | b'\n' => {}
                        x => w.push(x),
                    }
                    i += 1;
                }
                toks.push(Tok::Comment(w));
            }
            b'[' => {
                let end = v[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .map_or(v.len(), |p| i + p + 1);
                toks.push(Tok::Literal(v[i..end].to_vec()));
                i = end;
            }
            b'<' | b'>' | b'@' | b',' | b':' | b';' | b'.' => {
                toks.push(Tok::Special(c));
                i += 1;
            }
            _ => {
                let start = i;
                while i < v.len() && !b" \t\r\n\"(<>@,:;.[".contains(&v[i]) {
                    i += 1;
                }
                toks.push(Tok::Word(v[start..i].to_vec()));
            }
        }
    }
    toks
}

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

/// Parses an RFC 5322 `address-list` (with groups) tolerantly.
fn parse_addresses(v: &[u8]) -> Vec<Addr> {
    let toks = tokenize(v);
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_group = false;
    while i < toks.len() {
        // Phrase (display name or local part) up to a delimiter.
        let mut words: Vec<&Tok> = Vec::new();
        let mut comment: Option<&[u8]> = None;
        while i < toks.len() {
            match &toks[i] {
                Tok::Special(b'<' | b':' | b',' | b';' | b'@') => break,
                Tok::Comment(c) => {
                    if comment.is_none() {
                        comment = Some(c);
                    }
                }
                t => words.push(t),
            }
            i += 1;
        }
        match toks.get(i) {
            Some(Tok::Special(b':')) if !in_group => {
                i += 1;
                in_group = true;
                out.push(Addr::GroupStart(phrase(&words)));
            }
            Some(Tok::Special(b'<')) => {
                i += 1;
                let (route, mailbox, host, next) = angle_addr(&toks, i);
                i = next;
                let name = if words.is_empty() {
                    comment.map(<[u8]>::to_vec)
                } else {
                    Some(phrase(&words))
                };
                out.push(Addr::Mailbox {
                    name,
                    route,
                    mailbox,
                    host,
                });
            }
            Some(Tok::Special(b'@')) => {
                i += 1;
                let mut host = Vec::new();
                while let Some(t) = toks.get(i) {
                    match t {
                        Tok::Special(b',' | b';') => break,
                        Tok::Comment(c) => {
                            if comment.is_none() {
                                comment = Some(c);
                            }
                        }
                        t => push_tok(&mut host, t),
                    }
                    i += 1;
                }
                out.push(Addr::Mailbox {
                    name: comment.map(<[u8]>::to_vec),
                    route: None,
                    mailbox: nonempty(dotted(&words), MISSING_MAILBOX),
                    host: nonempty(host, MISSING_DOMAIN),
                });
            }
            other => {
                if !words.is_empty() {
                    out.push(Addr::Mailbox {
                        name: comment.map(<[u8]>::to_vec),
                        route: None,
                        mailbox: dotted(&words),
                        host: MISSING_DOMAIN.to_vec(),
                    });
                }
                if let Some(Tok::Special(b';')) = other {
                    if in_group {
                        out.push(Addr::GroupEnd);
                        in_group = false;
                    }
                }
                i += 1;
            }
        }
        // Skip to the next list element.
        while let Some(t) = toks.get(i) {
            match t {
                Tok::Special(b',') => {
                    i += 1;
                    break;
                }
                Tok::Special(b';') => {
                    if in_group {
                        out.push(Addr::GroupEnd);
                        in_group = false;
                    }
                    i += 1;
                }
                Tok::Special(b'<' | b':' | b'@') | Tok::Word(_) | Tok::Literal(_) => break,
                _ => i += 1,
            }
        }
    }
    if in_group {
        out.push(Addr::GroupEnd);
    }
    out
}

/// `[route ":"] local "@" domain ">"` starting after `<`; returns the parts
/// and the index after `>`.
fn angle_addr(toks: &[Tok], mut i: usize) -> (Option<Vec<u8>>, Vec<u8>, Vec<u8>, usize) {
    let mut route = None;
    // Obsolete source route: `@a,@b:` (RFC 5322 §4.4).
    if let Some(Tok::Special(b'@')) = toks.get(i) {
        let mut r = Vec::new();
        while let Some(t) = toks.get(i) {
            i += 1;
            match t {
                Tok::Special(b':') => break,
                Tok::Special(b'>') => {
                    return (None, MISSING_MAILBOX.to_vec(), MISSING_DOMAIN.to_vec(), i);
                }
                t => push_tok(&mut r, t),
            }
        }
        route = Some(r);
    }
    let mut local = Vec::new();
    let mut host = Vec::new();
    let mut at = false;
    while let Some(t) = toks.get(i) {
        i += 1;
        match t {
            Tok::Special(b'>') => break,
            Tok::Special(b'@') if !at => at = true,
            Tok::Comment(_) => {}
            t if at => push_tok(&mut host, t),
            t => push_tok(&mut local, t),
        }
    }
    if local.is_empty() && !at {
        // `<>`: the null return path.
        return (route, Vec::new(), Vec::new(), i);
    }
    (
        route,
        nonempty(local, MISSING_MAILBOX),
        nonempty(host, MISSING_DOMAIN),
        i,
    )
}

fn push_tok(out: &mut Vec<u8>, t: &Tok) {
    match t {
        Tok::Word(w) | Tok::Literal(w) => out.extend_from_slice(w),
        Tok::Special(c) => out.push(*c),
        Tok::Comment(_) => {}
    }
}

fn nonempty(v: Vec<u8>, default: &[u8]) -> Vec<u8> {
    if v.is_empty() { default.to_vec() } else { v }
}

/// Words joined by single spaces (a display name).
fn phrase(words: &[&Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, t) in words.iter().enumerate() {
        if n > 0 && !matches!(t, Tok::Special(b'.')) {
            out.push(b' ');
        }
        push_tok(&mut out, t);
    }
    out
}

/// Tokens joined without spaces (a local part such as `first.last`).
fn dotted(words: &[&Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in words {
        push_tok(&mut out, t);
    }
    out
}
