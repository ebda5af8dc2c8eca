//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, `body` in §9).
//!
//! Spelling: media types, subtypes, encodings, parameter names and
//! disposition types are upper-cased as in the RFC examples
//! (`"TEXT" "PLAIN" ("CHARSET" "US-ASCII")`); values are as written. IMAP
//! compares all of these case-insensitively, so this is cosmetic. Parameter
//! values keep RFC 2047/2231 encodings (continuations merged), as Dovecot
//! does: decoding is the client's job and keeps 8-bit out of the strings.
use std::borrow::Cow;

use super::envelope;
use crate::message::crlf::{crlf_value, line_ends};
use crate::message::kept::Kept;
use crate::message::tree::{Kind, Param, Part, is_token, media_type_params, params, trim, unfold};
use crate::proto::encode::{nstring, string};

/// Writes `body` for `part` (a message root or any part). `kept`: the
/// message's binary bodies, counted as stored.
pub(crate) fn write(out: &mut Vec<u8>, data: &[u8], part: &Part, kept: &Kept, ext: bool) {
    out.push(b'(');
    match &part.kind {
        Kind::Multipart(children) => {
            for c in children {
                write(out, data, c, kept, ext);
            }
            out.push(b' ');
            upper_string(out, part.subtype.as_bytes());
            if ext {
                let h = Headers::collect(data, part);
                out.push(b' ');
                write_params(out, h.ctype_params(), false);
                write_ext_common(out, &h);
            }
        }
        kind => {
            let h = Headers::collect(data, part);
            upper_string(out, part.mtype.as_bytes());
            out.push(b' ');
            upper_string(out, part.subtype.as_bytes());
            out.push(b' ');
            write_params(out, h.ctype_params(), part.is_text());
            out.push(b' ');
            nstring(out, h.id.map(unfold).as_deref(), false);
            out.push(b' ');
            nstring(out, h.description.map(unfold).as_deref(), false);
            out.push(b' ');
            // As written, so that an unknown encoding is shown to the
            // client rather than hidden; a value that is not even a token
            // is ignored like a missing one (RFC 2045 §6.1 default 7BIT),
            // as Dovecot does.
            let enc = h
                .cte
                .map(|v| unfold(v).to_ascii_uppercase())
                .filter(|v| is_token(v))
                .unwrap_or_else(|| b"7BIT".to_vec());
            string(out, &enc, false);
            out.push(b' ');
            // Size and lines in served terms (CRLF, binary bodies as
            // stored), counted on the bytes as given (stored LF or already
            // served) instead of on a converted copy.
            let (lines, bare) = line_ends(data, part.body.clone());
            let len = data.get(part.body.clone()).map_or(0, <[u8]>::len);
            let kept_bare = if kept.is_empty() {
                0
            } else {
                kept.bare_in(data, part.body.clone())
            };
            number(out, len + bare - kept_bare);
            if let Kind::Message(inner) = kind {
                out.push(b' ');
                envelope::write(out, data, inner.header.clone(), false);
                out.push(b' ');
                write(out, data, inner, kept, ext);
                out.push(b' ');
                number(out, lines);
            } else if part.is_text() {
                out.push(b' ');
                number(out, lines);
            }
            if ext {
                out.push(b' ');
                nstring(out, h.md5.map(unfold).as_deref(), false);
                write_ext_common(out, &h);
            }
        }
    }
    out.push(b')');
}

// Lines of a body are its line breaks, as Dovecot counts them (an
// unterminated last line does not count; the line break before a multipart
// delimiter belongs to the delimiter, not to the part): the LF count of
// `line_ends`.

/// [`string`] of `s` upper-cased, without a heap copy for the short
/// tokens this is used for (types, subtypes, parameter names).
fn upper_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut buf = [0u8; 64];
    match buf.get_mut(..s.len()) {
        Some(b) => {
            b.copy_from_slice(s);
            b.make_ascii_uppercase();
            string(out, b, false);
        }
        None => string(out, &s.to_ascii_uppercase(), false),
    }
}

fn number(out: &mut Vec<u8>, n: usize) {
    use std::io::Write;
    let _ = write!(out, "{n}");
}

/// The MIME header fields BODYSTRUCTURE needs, first occurrence each.
/// Content-Type is kept in its CRLF form (its parameters are parsed); the
/// others are only unfolded, which removes every CR and LF anyway.
#[derive(Default)]
struct Headers<'a> {
    ctype: Option<Cow<'a, [u8]>>,
    cte: Option<&'a [u8]>,
    id: Option<&'a [u8]>,
    description: Option<&'a [u8]>,
    md5: Option<&'a [u8]>,
    disposition: Option<&'a [u8]>,
    language: Option<&'a [u8]>,
    location: Option<&'a [u8]>,
}

impl<'a> Headers<'a> {
    fn collect(data: &'a [u8], part: &Part) -> Headers<'a> {
        let m = &part.mime;
        let get =
            |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| data.get(r).unwrap_or_default());
        Headers {
            ctype: get(&m.ctype).map(crlf_value),
            cte: get(&m.cte),
            id: get(&m.id),
            description: get(&m.description),
            md5: get(&m.md5),
            disposition: get(&m.disposition),
            language: get(&m.language),
            location: get(&m.location),
        }
    }

    /// The parameters of Content-Type, when it is a valid media type (an
    /// invalid one was replaced by text/plain and its parameters with it).
    fn ctype_params(&self) -> Vec<Param<'_>> {
        self.ctype
            .as_deref()
            .and_then(media_type_params)
            .map(params)
            .unwrap_or_default()
    }
}

/// `body-fld-param`; text parts always name a charset (RFC 2045 §5.2
/// default), as Dovecot does.
fn write_params(out: &mut Vec<u8>, params: Vec<Param<'_>>, text: bool) {
    let has_charset = params
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"charset"));
    if params.is_empty() && !text {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    let mut first = true;
    for (name, value) in &params {
        if !first {
            out.push(b' ');
        }
        first = false;
        upper_string(out, name);
        out.push(b' ');
        string(out, value, false);
    }
    if text && !has_charset {
        if !first {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"CHARSET\" \"US-ASCII\"");
    }
    out.push(b')');
}

/// ` dsp lang loc`, shared by single parts and multiparts.
fn write_ext_common(out: &mut Vec<u8>, h: &Headers<'_>) {
    out.push(b' ');
    match h.disposition {
        Some(v) => {
            let v = unfold(v);
            let end = memchr::memchr(b';', &v).unwrap_or(v.len());
            let ty = trim(&v[..end]);
            if ty.is_empty() {
                out.extend_from_slice(b"NIL");
            } else {
                out.push(b'(');
                upper_string(out, ty);
                out.push(b' ');
                write_params(out, params(&v[end..]), false);
                out.push(b')');
            }
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    let langs: Vec<Vec<u8>> = h
        .language
        .map(|v| {
            unfold(v)
                .split(|&c| c == b',')
                .map(|l| trim(l).to_vec())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match langs.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one, false),
        many => {
            out.push(b'(');
            for (i, l) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l, false);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, h.location.map(unfold).as_deref(), false);
}
