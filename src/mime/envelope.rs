//! ENVELOPE (RFC 9051 §7.5.2) and the address-list parser behind it.
//!
//! The strings are the header bytes as written, unfolded but not RFC 2047
//! decoded: IMAP leaves decoding to the client. That is also why addresses
//! are parsed here and not with `mailparse::addrparse`: it works on decoded
//! `str`s and rejects a whole list when one mailbox lacks an `@`, whereas an
//! ENVELOPE must render whatever the header holds. Malformed input gives
//! Dovecot's placeholders (`MISSING_DOMAIN`) rather than an error.
use std::ops::Range;

use super::crlf::crlf_value;
use super::tree::{fields, unfold};
use crate::proto::encode::{nstring, string};

/// Writes the ENVELOPE list of the message whose header is `data[header]`.
pub(crate) fn write(out: &mut Vec<u8>, data: &[u8], header: Range<usize>, utf8: bool) {
    const NAMES: [&[u8]; 10] = [
        b"date",
        b"subject",
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"in-reply-to",
        b"message-id",
    ];
    let mut found: [Option<&[u8]>; 10] = [None; 10];
    for f in fields(data, header) {
        if let Some(i) = NAMES.iter().position(|n| f.is(n)) {
            // The first occurrence wins, as in Dovecot.
            if found[i].is_none() {
                found[i] = Some(f.value);
            }
        }
    }
    out.push(b'(');
    let plain = |out: &mut Vec<u8>, v: Option<&[u8]>| {
        let v = v.map(unfold);
        nstring(out, v.as_deref(), utf8);
    };
    plain(out, found[0]);
    out.push(b' ');
    plain(out, found[1]);
    // Address lists are read as in the CRLF form: the tokenizer keeps some
    // line-break bytes (in domain literals, quoted pairs in comments), so
    // the stored form must not change what it sees.
    let addresses = |v: &[u8]| parse_addresses(&crlf_value(v));
    let from = found[2].map(addresses).unwrap_or_default();
    for (i, value) in found.iter().enumerate().take(8).skip(2) {
        out.push(b' ');
        let list = value.map(addresses).unwrap_or_default();
        // Sender and Reply-To default to From (RFC 9051 §7.5.2).
        let list = if list.is_empty() && (i == 3 || i == 4) {
            &from
        } else {
            &list
        };
        write_addresses(out, list, utf8);
    }
    out.push(b' ');
    plain(out, found[8]);
    out.push(b' ');
    plain(out, found[9]);
    out.push(b')');
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

#[cfg(test)]
mod tests {
    use super::*;

    fn render(v: &str) -> String {
        let mut out = Vec::new();
        write_addresses(&mut out, &parse_addresses(v.as_bytes()), false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn address_lists() {
        let cases = [
            ("", "NIL"),
            (
                "Terry Gray <gray@cac.washington.edu>",
                r#"(("Terry Gray" NIL "gray" "cac.washington.edu"))"#,
            ),
            (
                "imap@cac.washington.edu",
                r#"((NIL NIL "imap" "cac.washington.edu"))"#,
            ),
            (
                "\"Doe, John\" <j.doe@example.com>, b@x.org",
                r#"(("Doe, John" NIL "j.doe" "example.com")(NIL NIL "b" "x.org"))"#,
            ),
            (
                "a@b.c (Alice Example)",
                r#"(("Alice Example" NIL "a" "b.c"))"#,
            ),
            (
                "undisclosed-recipients:;",
                r#"((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))"#,
            ),
            (
                "team: a@x.org, B <b@y.org>; c@z.org",
                r#"((NIL NIL "team" NIL)(NIL NIL "a" "x.org")("B" NIL "b" "y.org")(NIL NIL NIL NIL)(NIL NIL "c" "z.org"))"#,
            ),
            (
                "=?utf-8?q?J=C3=B6rg?= <joerg@example.de>",
                r#"(("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.de"))"#,
            ),
            (
                "MAILER-DAEMON",
                r#"((NIL NIL "MAILER-DAEMON" "MISSING_DOMAIN"))"#,
            ),
            ("<@r1,@r2:u@h>", r#"((NIL "@r1,@r2" "u" "h"))"#),
            (
                "Broken <unterminated@x",
                r#"(("Broken" NIL "unterminated" "x"))"#,
            ),
            ("<>", r#"((NIL NIL "" ""))"#),
            ("u@[127.0.0.1]", r#"((NIL NIL "u" "[127.0.0.1]"))"#),
            (
                "Dr. Who <who@tardis>",
                r#"(("Dr. Who" NIL "who" "tardis"))"#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(render(input), want, "input {input:?}");
        }
    }
}
