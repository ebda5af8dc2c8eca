//! The MIME part tree: where each part's header and body lie in the bytes.
//!
//! The parser is line-ending agnostic (a line ends at LF, with or without a
//! CR before it), so SEARCH and the ENVELOPE/BODYSTRUCTURE renderers run it
//! over the stored bytes as they are, without first copying them into the
//! CRLF form; `Message` runs it over the CRLF-normalised copy, where the
//! same offsets are the IMAP ones. Either way it finds the same parts: every
//! boundary it draws falls before a line end or just after an LF, never
//! between a CR and its LF, so the offsets of one form map onto the other.
//!
//! Invariants: every range lies inside the input and `start <= end`; a
//! multipart always has at least one child (an empty text/plain part stands
//! in when no delimiter is found, because the BODYSTRUCTURE grammar needs
//! `1*body`); nesting stops at [`MAX_DEPTH`], below which multiparts and
//! messages are treated as opaque text/plain leaves, and a message has at
//! most [`MAX_PARTS`] parts (the last one found takes the rest of its
//! multipart's body), so a hostile message of a million empty parts costs
//! no more than a large ordinary one. Both limits are Dovecot's defaults.
//! The parser never panics: all slicing goes through ranges checked
//! against the input. When a field repeats, the first occurrence counts.
use std::ops::Range;

use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem};

use super::crlf::crlf_value;

/// Deepest nesting of multiparts and encapsulated messages we descend into.
pub(crate) const MAX_DEPTH: usize = 100;

/// Most parts (of any kind) in one message.
pub(crate) const MAX_PARTS: usize = 10_000;

/// Most parameters read from one header field.
const MAX_PARAMS: usize = 128;

/// How a part's content is transfer-encoded (RFC 2045 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cte {
    SevenBit,
    EightBit,
    Binary,
    Base64,
    QuotedPrintable,
    /// Anything else (`x-uuencode`, garbage): BINARY must refuse it.
    Unknown,
}

impl Cte {
    fn from_value(v: &[u8]) -> Cte {
        let v = trim(v);
        if v.is_empty() {
            return Cte::SevenBit;
        }
        let eq = |s: &str| v.eq_ignore_ascii_case(s.as_bytes());
        if eq("7bit") {
            Cte::SevenBit
        } else if eq("8bit") {
            Cte::EightBit
        } else if eq("binary") {
            Cte::Binary
        } else if eq("base64") {
            Cte::Base64
        } else if eq("quoted-printable") {
            Cte::QuotedPrintable
        } else {
            Cte::Unknown
        }
    }
}

/// What a part contains beyond its own bytes.
#[derive(Debug)]
pub(crate) enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    /// message/rfc822 (or message/global): the encapsulated message, whose
    /// own header and body are the ranges of the boxed part.
    Message(Box<Part>),
}

/// One node of the tree. For the top-level message (and each encapsulated
/// message) `header` is the message header.
#[derive(Debug)]
pub(crate) struct Part {
    /// The header block, including the blank line that ends it (if any).
    pub header: Range<usize>,
    pub body: Range<usize>,
    /// Lower-cased media type and subtype as they take effect (defaults
    /// applied, broken multiparts degraded to text/plain).
    pub mtype: String,
    pub subtype: String,
    pub cte: Cte,
    pub kind: Kind,
    /// The MIME fields of the part's header, found while parsing it.
    pub mime: MimeFields,
}

/// Where the values of the MIME header fields BODYSTRUCTURE shows lie in
/// the data (first occurrence of each, still folded): recorded by the one
/// pass over the header that finds the part's type, so that rendering does
/// not read the header again.
#[derive(Debug, Default, Clone)]
pub(crate) struct MimeFields {
    pub ctype: Option<Range<usize>>,
    pub cte: Option<Range<usize>>,
    pub id: Option<Range<usize>>,
    pub description: Option<Range<usize>>,
    pub md5: Option<Range<usize>>,
    pub disposition: Option<Range<usize>>,
    pub language: Option<Range<usize>>,
    pub location: Option<Range<usize>>,
}

impl MimeFields {
    /// The MIME fields of the header block `data[header]`.
    pub fn of(data: &[u8], header: Range<usize>) -> MimeFields {
        let mut m = MimeFields::default();
        for f in fields(data, header) {
            // Every MIME field starts with `content-`: one check skips the
            // rest of the header.
            let Some(rest) = f
                .name
                .get(..8)
                .filter(|p| p.eq_ignore_ascii_case(b"content-"))
                .and_then(|_| f.name.get(8..))
            else {
                continue;
            };
            let slot = match () {
                _ if rest.eq_ignore_ascii_case(b"type") => &mut m.ctype,
                _ if rest.eq_ignore_ascii_case(b"transfer-encoding") => &mut m.cte,
                _ if rest.eq_ignore_ascii_case(b"id") => &mut m.id,
                _ if rest.eq_ignore_ascii_case(b"description") => &mut m.description,
                _ if rest.eq_ignore_ascii_case(b"md5") => &mut m.md5,
                _ if rest.eq_ignore_ascii_case(b"disposition") => &mut m.disposition,
                _ if rest.eq_ignore_ascii_case(b"language") => &mut m.language,
                _ if rest.eq_ignore_ascii_case(b"location") => &mut m.location,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(f.value_range());
            }
        }
        m
    }
}

impl Part {
    pub fn is_text(&self) -> bool {
        self.mtype == "text"
    }
}

/// Parses the message that is all of `data`.
pub(crate) fn parse_message(data: &[u8]) -> Part {
    let mut budget = MAX_PARTS;
    parse_part(data, 0..data.len(), 0, false, &mut budget)
}

/// Parses one entity (header + body) in `range`. `digest`: the parent is a
/// multipart/digest, so the default type is message/rfc822 (RFC 2046 §5.1.5).
/// `budget`: how many more parts may be created in this message.
fn parse_part(
    data: &[u8],
    range: Range<usize>,
    depth: usize,
    digest: bool,
    budget: &mut usize,
) -> Part {
    let (header, body) = split_header(data, range);
    let mime = MimeFields::of(data, header.clone());
    let value = |r: &Option<Range<usize>>| r.clone().map(|r| data.get(r).unwrap_or_default());
    let cte = value(&mime.cte).map_or(Cte::SevenBit, Cte::from_value);
    // Parameters are read as in the CRLF form, whatever the stored line ends.
    let ctype = value(&mime.ctype).map(crlf_value);
    let (mut mtype, mut subtype, params) = match ctype.as_deref().and_then(media_type) {
        Some((t, s, p)) => (t, s, p),
        None if digest => ("message".to_string(), "rfc822".to_string(), &b""[..]),
        None => ("text".to_string(), "plain".to_string(), &b""[..]),
    };
    let mut kind = Kind::Leaf;
    if mtype == "multipart" {
        let boundary = param(params, b"boundary").filter(|b| !b.is_empty());
        match boundary {
            Some(b) if depth < MAX_DEPTH && *budget > 0 => {
                let digest = subtype == "digest";
                let ranges = split_multipart(data, body.clone(), &b, *budget);
                *budget = budget.saturating_sub(ranges.len());
                let children = ranges
                    .into_iter()
                    .map(|r| parse_part(data, r, depth + 1, digest, budget))
                    .collect::<Vec<_>>();
                kind = Kind::Multipart(if children.is_empty() {
                    vec![empty_part(body.end)]
                } else {
                    children
                });
            }
            _ => {
                mtype = "text".into();
                subtype = "plain".into();
            }
        }
    } else if mtype == "message" && (subtype == "rfc822" || subtype == "global") {
        // An encoded message/rfc822 is not allowed (RFC 2046 §5.2.1); such a
        // part is shown as the opaque leaf it is, as Dovecot does.
        if depth < MAX_DEPTH
            && *budget > 0
            && matches!(cte, Cte::SevenBit | Cte::EightBit | Cte::Binary)
        {
            *budget -= 1;
            kind = Kind::Message(Box::new(parse_part(
                data,
                body.clone(),
                depth + 1,
                false,
                budget,
            )));
        } else {
            mtype = "text".into();
            subtype = "plain".into();
        }
    }
    Part {
        header,
        body,
        mtype,
        subtype,
        cte,
        kind,
        mime,
    }
}

fn empty_part(at: usize) -> Part {
    Part {
        header: at..at,
        body: at..at,
        mtype: "text".into(),
        subtype: "plain".into(),
        cte: Cte::SevenBit,
        kind: Kind::Leaf,
        mime: MimeFields::default(),
    }
}

/// `type "/" subtype` of a Content-Type value, lower-cased, and the rest
/// (the parameters). `None` when the value is not a usable media type, in
/// which case RFC 2045 §5.2 says to assume text/plain.
pub(crate) fn media_type(value: &[u8]) -> Option<(String, String, &[u8])> {
    // Tokens are ASCII, so lower-casing byte by byte is the whole job.
    let lower = |t: &[u8]| -> String {
        t.iter()
            .map(|&c| char::from(c.to_ascii_lowercase()))
            .collect()
    };
    split_media_type(value, |t, s| (lower(t), lower(s))).map(|((t, s), rest)| (t, s, rest))
}

/// The parameters of a Content-Type value when it is a usable media type:
/// [`media_type`] without making the type strings.
pub(crate) fn media_type_params(value: &[u8]) -> Option<&[u8]> {
    split_media_type(value, |_, _| ()).map(|(_, rest)| rest)
}

/// Checks the `type "/" subtype` of a Content-Type value, hands the two
/// tokens to `f`, and returns its result with the rest of the value.
fn split_media_type<R>(value: &[u8], f: impl FnOnce(&[u8], &[u8]) -> R) -> Option<(R, &[u8])> {
    let end = memchr(b';', value).unwrap_or(value.len());
    let (ty, rest) = (&value[..end], &value[end..]);
    // Without a `(` there is no comment to strip (and nothing to copy).
    let stripped;
    let ty = if memchr(b'(', ty).is_some() {
        stripped = strip_comments(ty);
        &stripped[..]
    } else {
        ty
    };
    let slash = memchr(b'/', ty)?;
    let t = trim(&ty[..slash]);
    let s = trim(&ty[slash + 1..]);
    if !is_token(t) || !is_token(s) {
        return None;
    }
    Some((f(t, s), rest))
}

/// RFC 2045 §5.1 `token`: printable ASCII without blanks and tspecials.
pub(crate) fn is_token(x: &[u8]) -> bool {
    // A `match`, not a search of the tspecials string per byte: this runs
    // over every media type and encoding of every part.
    !x.is_empty()
        && x.iter().all(|&c| {
            c > b' '
                && c < 0x7f
                && !matches!(
                    c,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                )
        })
}

fn strip_comments(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut level = 0usize;
    for &c in v {
        match c {
            b'(' => level += 1,
            b')' if level > 0 => level -= 1,
            _ if level == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Splits a header block off `range`: the header runs to (and includes) the
/// first empty line; with no empty line the whole range is header. A range
/// starting with an empty line has an empty-line-only header.
pub(crate) fn split_header(data: &[u8], range: Range<usize>) -> (Range<usize>, Range<usize>) {
    let start = range.start.min(data.len());
    let end = range.end.min(data.len()).max(start);
    let s = &data[start..end];
    let blank_len = |at: usize| -> usize {
        match s.get(at) {
            Some(b'\n') => 1,
            Some(b'\r') if s.get(at + 1) == Some(&b'\n') => 2,
            _ => 0,
        }
    };
    let first = blank_len(0);
    if first > 0 {
        return (start..start + first, start + first..end);
    }
    let mut pos = 0;
    while let Some(nl) = memchr(b'\n', &s[pos..]) {
        let next = pos + nl + 1;
        let b = blank_len(next);
        if b > 0 {
            return (start..start + next + b, start + next + b..end);
        }
        pos = next;
    }
    (start..end, end..end)
}

/// The ranges of a multipart body's parts, between `--boundary` delimiter
/// lines (RFC 2046 §5.1.1). The line break before a delimiter belongs to the
/// delimiter. A missing close delimiter ends the last part at the end of the
/// body; the preamble and epilogue belong to no part. At most `max` parts:
/// the last takes the rest of the body.
fn split_multipart(
    data: &[u8],
    body: Range<usize>,
    boundary: &[u8],
    max: usize,
) -> Vec<Range<usize>> {
    let Some(s) = data.get(body.clone()) else {
        return Vec::new();
    };
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delim);
    let mut parts = Vec::new();
    // Start of the current part's content, once the first delimiter is seen.
    let mut open: Option<usize> = None;
    let mut search = 0;
    while let Some(i) = finder.find(&s[search..]) {
        let at = search + i;
        search = at + 1;
        if at != 0 && s[at - 1] != b'\n' {
            continue;
        }
        let after = at + delim.len();
        let line_end = memchr(b'\n', &s[after..]).map_or(s.len(), |n| after + n);
        let rest = &s[after..line_end];
        let close = rest.starts_with(b"--");
        // `--boundaryX` is a longer boundary, not ours; but a close
        // delimiter with junk after it still closes.
        if !close && !rest.iter().all(|c| matches!(c, b' ' | b'\t' | b'\r')) {
            continue;
        }
        if let Some(start) = open {
            // Drop the line break that belongs to this delimiter.
            let mut end = at;
            if end > start && s[end - 1] == b'\n' {
                end -= 1;
                if end > start && s[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            parts.push(body.start + start..body.start + end.max(start));
        }
        if close {
            open = None;
            break;
        }
        if parts.len() + 1 >= max {
            open = Some((line_end + 1).min(s.len()));
            break;
        }
        let next = (line_end + 1).min(s.len());
        open = Some(next);
        search = next;
    }
    if let Some(start) = open {
        parts.push(body.start + start..body.end);
    }
    parts
}

/// One header field.
pub(crate) struct Field<'a> {
    /// The field name as written (without trailing blanks).
    pub name: &'a [u8],
    /// The whole field, continuation lines and final line break included.
    pub raw: &'a [u8],
    /// The value after the colon, still folded, without the final line
    /// break.
    pub value: &'a [u8],
    /// Where `value` starts in the data the fields were read from.
    pub value_at: usize,
}

impl Field<'_> {
    /// Where `value` lies in the data the fields were read from.
    pub fn value_range(&self) -> Range<usize> {
        self.value_at..self.value_at + self.value.len()
    }
}

impl Field<'_> {
    pub fn is(&self, lower_name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(lower_name)
    }
}

/// The fields of a header block, in order. Lines without a colon (broken
/// headers) are yielded with the whole line as name and an empty value, so
/// HEADER.FIELDS.NOT still returns them.
pub(crate) fn fields(data: &[u8], header: Range<usize>) -> impl Iterator<Item = Field<'_>> {
    let base = header.start;
    let block = data.get(header).unwrap_or_default();
    let mut pos = 0;
    std::iter::from_fn(move || {
        loop {
            if pos >= block.len() {
                return None;
            }
            let start = pos;
            // The field runs until a line that does not start with WSP.
            let mut end = start;
            loop {
                match memchr(b'\n', &block[end..]) {
                    Some(n) => {
                        end += n + 1;
                        if !matches!(block.get(end), Some(b' ' | b'\t')) {
                            break;
                        }
                    }
                    None => {
                        end = block.len();
                        break;
                    }
                }
            }
            pos = end;
            let raw = &block[start..end];
            let content = strip_eol(raw);
            if content.is_empty() {
                // The blank line ending the header.
                continue;
            }
            let (name, value, off) = match memchr(b':', content) {
                Some(c) => {
                    let after = &content[c + 1..];
                    let value = trim_start(after);
                    (
                        trim_end(&content[..c]),
                        value,
                        c + 1 + after.len() - value.len(),
                    )
                }
                None => (content, &content[content.len()..], content.len()),
            };
            let value_at = base + start + off;
            return Some(Field {
                name,
                raw,
                value,
                value_at,
            });
        }
    })
}

/// `raw` without its final line break.
pub(crate) fn strip_eol(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

pub(crate) fn trim_start(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &v[n..]
}

pub(crate) fn trim_end(v: &[u8]) -> &[u8] {
    let n = v
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    &v[..v.len() - n]
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    trim_end(trim_start(v))
}

/// A folded header value unfolded: CR and LF removed (the WSP that follows
/// a fold stays, RFC 5322 §2.2.3), outer blanks trimmed.
pub(crate) fn unfold(v: &[u8]) -> Cow<'_, [u8]> {
    let v = trim(v);
    if memchr2(b'\r', b'\n', v).is_none() {
        // Not folded, the usual case: nothing to copy.
        return Cow::Borrowed(v);
    }
    Cow::Owned(
        v.iter()
            .copied()
            .filter(|&c| c != b'\r' && c != b'\n')
            .collect(),
    )
}

/// Parameters of a structured MIME header value (`; name=value` after the
/// type), in order, names as written, quoted strings unquoted, RFC 2231
/// continuations (`name*0`, `name*1*`) merged into one `name` (or `name*`
/// when any segment is charset-encoded, its value left encoded): what
/// Dovecot puts into BODYSTRUCTURE.
pub(crate) fn params(rest: &[u8]) -> Vec<Param<'_>> {
    let mut raw: Vec<Param<'_>> = Vec::new();
    let mut i = 0;
    let s = rest;
    // Real headers have a handful; the cap keeps a hostile header with
    // thousands from making the continuation merge quadratic.
    while i < s.len() && raw.len() < MAX_PARAMS {
        // Skip to the start of a name.
        while i < s.len() && (s[i] == b';' || s[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i < s.len() && s[i] == b'(' {
            i = skip_comment(s, i);
            continue;
        }
        let ns = i;
        while i < s.len() && !matches!(s[i], b'=' | b';' | b'(') && !s[i].is_ascii_whitespace() {
            i += 1;
        }
        let name = &s[ns..i];
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= s.len() || s[i] != b'=' {
            // A name without a value: skip it.
            while i < s.len() && s[i] != b';' {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        let value: Cow<'_, [u8]>;
        if i < s.len() && s[i] == b'"' {
            i += 1;
            let start = i;
            // A quoted string without quoted pairs or line breaks (the
            // usual case) is its own content: borrow it.
            while i < s.len() && !matches!(s[i], b'"' | b'\\' | b'\r' | b'\n') {
                i += 1;
            }
            if i >= s.len() || s[i] == b'"' {
                value = Cow::Borrowed(&s[start..i]);
            } else {
                let mut v = s[start..i].to_vec();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    if s[i] != b'\r' && s[i] != b'\n' {
                        v.push(s[i]);
                    }
                    i += 1;
                }
                value = Cow::Owned(v);
            }
            i += 1;
        } else {
            let start = i;
            while i < s.len() && s[i] != b';' && s[i] != b'(' && !s[i].is_ascii_whitespace() {
                i += 1;
            }
            value = Cow::Borrowed(&s[start..i]);
        }
        if !name.is_empty() {
            raw.push((Cow::Borrowed(name), value));
        }
    }
    merge_continuations(raw)
}

fn skip_comment(s: &[u8], mut i: usize) -> usize {
    let mut level = 0usize;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 1,
            b'(' => level += 1,
            b')' => {
                level = level.saturating_sub(1);
                if level == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// RFC 2231 §3/§4: `name*N` and `name*N*` segments become one parameter at
/// the place of the first; the others are kept as they are.
fn merge_continuations(raw: Vec<Param<'_>>) -> Vec<Param<'_>> {
    fn segment(name: &[u8]) -> Option<(&[u8], u32, bool)> {
        let encoded = name.ends_with(b"*");
        let n = if encoded {
            &name[..name.len() - 1]
        } else {
            name
        };
        let star = n.iter().rposition(|&c| c == b'*')?;
        let idx = std::str::from_utf8(&n[star + 1..]).ok()?.parse().ok()?;
        Some((&n[..star], idx, encoded))
    }
    if !raw.iter().any(|(n, _)| segment(n).is_some()) {
        return raw;
    }
    /// A parameter being merged: its slot in `out`, base name, whether
    /// any segment is encoded, and the segments by index.
    struct Merged<'a> {
        slot: usize,
        base: Vec<u8>,
        encoded: bool,
        segments: Vec<(u32, Cow<'a, [u8]>)>,
    }
    let mut out: Vec<Param<'_>> = Vec::new();
    let mut merged: Vec<Merged<'_>> = Vec::new();
    for (name, value) in raw {
        match segment(&name) {
            Some((base, idx, enc)) => {
                if let Some(m) = merged
                    .iter_mut()
                    .find(|m| m.base.eq_ignore_ascii_case(base))
                {
                    m.encoded |= enc;
                    m.segments.push((idx, value));
                } else {
                    out.push((Cow::Borrowed(&[][..]), Cow::Borrowed(&[][..])));
                    merged.push(Merged {
                        slot: out.len() - 1,
                        base: base.to_vec(),
                        encoded: enc,
                        segments: vec![(idx, value)],
                    });
                }
            }
            None => out.push((name, value)),
        }
    }
    for mut m in merged {
        m.segments.sort_by_key(|s| s.0);
        let mut name = m.base;
        if m.encoded {
            name.push(b'*');
        }
        let mut value = Vec::new();
        for (_, seg) in m.segments {
            value.extend_from_slice(&seg);
        }
        if let Some(o) = out.get_mut(m.slot) {
            *o = (Cow::Owned(name), Cow::Owned(value));
        }
    }
    out
}

/// One parameter: its name as written and its value, borrowed from the
/// header where they are written in one piece.
pub(crate) type Param<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// The value of parameter `name` (case-insensitive) in a parameter list.
pub(crate) fn param<'a>(rest: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    params(rest)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}
