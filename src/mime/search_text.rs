//! Content matching for SEARCH (RFC 9051 §6.4.4 BODY, TEXT, header keys).
//!
//! Works on the stored bytes as they are (LF or CRLF), through a part tree
//! parsed once per message by the caller. Matching is a case-insensitive
//! substring test: the needle is lower-cased once; the haystack is folded
//! into a thread-local scratch buffer reused across messages (no
//! per-message allocation proportional to the message size) and searched
//! with `memchr::memmem`.
//!
//! Folding: an ASCII needle is matched against ASCII-folded bytes when the
//! part's charset keeps ASCII as ASCII (UTF-8, US-ASCII, single-byte
//! charsets), skipping charset conversion; the only Unicode characters whose
//! lower case is ASCII (KELVIN SIGN, LATIN CAPITAL I WITH DOT ABOVE) are
//! thereby not folded. Otherwise the text is converted to UTF-8 with
//! `encoding_rs` and folded with `char::to_lowercase`.
//!
//! Only text/* parts and encapsulated messages are searched for BODY:
//! attachments (images, PDFs) are not text and are never decoded.
use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use encoding_rs::Encoding;
use memchr::memmem;

use super::decode;
use crate::message::tree::{Cte, Field, Kind, Part, fields, media_type, param};

/// A lower-cased search string with its prepared searcher.
pub(crate) struct Needle {
    lower: Vec<u8>,
    ascii: bool,
    finder: memmem::Finder<'static>,
}

impl Needle {
    pub fn new(s: &str) -> Needle {
        let lower = s.to_lowercase().into_bytes();
        let finder = memmem::Finder::new(&lower).into_owned();
        Needle {
            ascii: lower.is_ascii(),
            lower,
            finder,
        }
    }

    /// The needle for `s`, from a small per-thread cache: SEARCH asks for
    /// the same few strings once per message, and lower-casing plus
    /// building the searcher each time would be wasted work.
    pub fn cached(s: &str) -> Rc<Needle> {
        const SLOTS: usize = 8;
        NEEDLES.with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return Rc::new(Needle::new(s));
            };
            if let Some((_, n)) = cache.iter().find(|(k, _)| k == s) {
                return n.clone();
            }
            let n = Rc::new(Needle::new(s));
            if cache.len() == SLOTS {
                cache.remove(0);
            }
            cache.push((s.to_string(), n.clone()));
            n
        })
    }

    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    fn find_in(&self, folded: &[u8]) -> bool {
        self.finder.find(folded).is_some()
    }
}

#[derive(Default)]
struct Scratch {
    decoded: Vec<u8>,
    folded: Vec<u8>,
    text: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    static NEEDLES: RefCell<Vec<(String, Rc<Needle>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the thread's scratch buffers (a fresh set if they are
/// already in use further up the stack, which cannot happen today).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            let r = f(&mut s);
            // Don't keep a huge buffer alive after one giant message.
            const KEEP: usize = 4 << 20;
            let s = &mut *s;
            for b in [&mut s.decoded, &mut s.folded] {
                if b.capacity() > KEEP {
                    *b = Vec::new();
                }
            }
            if s.text.capacity() > KEEP {
                s.text = String::new();
            }
            r
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

fn ascii_fold_into(src: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend(src.iter().map(u8::to_ascii_lowercase));
}

fn unicode_fold_into(src: &str, out: &mut Vec<u8>) {
    out.clear();
    for c in src.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase() as u8);
        } else {
            let mut buf = [0u8; 4];
            for l in c.to_lowercase() {
                out.extend_from_slice(l.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// ASCII-case-insensitive search, folding a cache-sized chunk at a time
/// (chunks overlap by the needle's length less one, so no match is lost).
fn ascii_contains(text: &[u8], needle: &Needle, out: &mut Vec<u8>) -> bool {
    const CHUNK: usize = 32 * 1024;
    let overlap = needle.lower.len().saturating_sub(1);
    let chunk = CHUNK.max(needle.lower.len() * 2);
    let mut start = 0;
    loop {
        let end = (start + chunk).min(text.len());
        ascii_fold_into(&text[start..end], out);
        if needle.find_in(out) {
            return true;
        }
        if end == text.len() {
            return false;
        }
        start = end - overlap;
    }
}

/// Does the bytes `text` in `charset` contain the needle?
fn text_contains(
    text: &[u8],
    charset: Option<&'static Encoding>,
    needle: &Needle,
    s: &mut Scratch,
) -> bool {
    let enc = charset.unwrap_or(encoding_rs::UTF_8);
    // Charsets where ASCII bytes are ASCII characters and nothing else.
    let ascii_safe = enc == encoding_rs::UTF_8 || enc.is_single_byte();
    if ascii_safe && needle.ascii {
        return ascii_contains(text, needle, &mut s.folded);
    }
    if ascii_safe && text.is_ascii() {
        // A non-ASCII needle cannot occur in ASCII text.
        return false;
    }
    s.text.clear();
    let mut dec = enc.new_decoder_without_bom_handling();
    s.text.reserve(
        dec.max_utf8_buffer_length(text.len())
            .unwrap_or(text.len() * 3),
    );
    let _ = dec.decode_to_string(text, &mut s.text, true);
    unicode_fold_into(&s.text, &mut s.folded);
    needle.find_in(&s.folded)
}

/// A header field's value as SEARCH sees it: unfolded, RFC 2047 decoded
/// (mailparse), 8-bit taken as UTF-8 or else Latin-1.
pub(crate) fn decoded_value(raw_field: &[u8]) -> String {
    match mailparse::parse_header(raw_field) {
        Ok((h, _)) => h.get_value(),
        Err(_) => String::from_utf8_lossy(raw_field).into_owned(),
    }
}

/// Does the field's value (decoded as SEARCH sees it) contain the needle?
fn field_contains(f: &Field<'_>, needle: &Needle, s: &mut Scratch) -> bool {
    if needle.ascii && f.value.is_ascii() && memmem::find(f.value, b"=?").is_none() {
        // Nothing to decode: unfolding only drops the line breaks.
        s.folded.clear();
        s.folded.extend(
            f.value
                .iter()
                .filter(|&&c| c != b'\r' && c != b'\n')
                .map(u8::to_ascii_lowercase),
        );
        return needle.find_in(&s.folded);
    }
    let v = decoded_value(f.raw);
    unicode_fold_into(&v, &mut s.folded);
    needle.find_in(&s.folded)
}

/// HEADER-style keys: any field called `name` whose decoded value contains
/// the needle; an empty needle matches the field's mere presence.
pub(crate) fn header_matches(
    data: &[u8],
    header: Range<usize>,
    name: &str,
    needle: &Needle,
) -> bool {
    with_scratch(|s| {
        fields(data, header)
            .filter(|f| f.is(name.as_bytes()))
            .any(|f| needle.is_empty() || field_contains(&f, needle, s))
    })
}

/// FROM, TO, CC and BCC keys (RFC 9051 §6.4.4): any field called `name`
/// whose addresses, as the ENVELOPE shows them
/// ([`super::envelope::address_search_text`], display names decoded),
/// contain the needle.
pub(crate) fn address_matches(
    data: &[u8],
    header: Range<usize>,
    name: &str,
    needle: &Needle,
) -> bool {
    with_scratch(|s| {
        fields(data, header)
            .filter(|f| f.is(name.as_bytes()))
            .any(|f| {
                if needle.is_empty() {
                    return true;
                }
                let text = super::envelope::address_search_text(f.value);
                if needle.ascii && text.is_ascii() && memmem::find(&text, b"=?").is_none() {
                    s.folded.clear();
                    s.folded.extend(text.iter().map(u8::to_ascii_lowercase));
                    return needle.find_in(&s.folded);
                }
                // Encoded display names: decoded as a header value is.
                let mut raw = b"X: ".to_vec();
                raw.extend_from_slice(&text);
                raw.extend_from_slice(b"\r\n");
                let v = decoded_value(&raw);
                unicode_fold_into(&v, &mut s.folded);
                needle.find_in(&s.folded)
            })
    })
}

/// The whole header block: raw bytes first (cheap), then each field that
/// decoding or unfolding could change.
fn header_block_contains(
    data: &[u8],
    header: Range<usize>,
    needle: &Needle,
    s: &mut Scratch,
) -> bool {
    let block = data.get(header.clone()).unwrap_or_default();
    if needle.ascii && ascii_contains(block, needle, &mut s.folded) {
        return true;
    }
    fields(data, header).any(|f| {
        let may_change = !needle.ascii
            || !f.raw.is_ascii()
            || memmem::find(f.raw, b"=?").is_some()
            || memchr::memchr(b'\n', f.value).is_some();
        may_change && field_contains(&f, needle, s)
    })
}

/// The charset of a text part's Content-Type, if named and known.
pub(crate) fn part_charset(data: &[u8], p: &Part) -> Option<&'static Encoding> {
    let f = fields(data, p.header.clone()).find(|f| f.is(b"content-type"))?;
    let (_, _, rest) = media_type(f.value)?;
    let cs = param(rest, b"charset")?;
    Encoding::for_label(&cs)
}

fn body_contains(data: &[u8], p: &Part, needle: &Needle, s: &mut Scratch) -> bool {
    match &p.kind {
        Kind::Multipart(children) => children.iter().any(|c| body_contains(data, c, needle, s)),
        Kind::Message(inner) => {
            header_block_contains(data, inner.header.clone(), needle, s)
                || body_contains(data, inner, needle, s)
        }
        Kind::Leaf if !p.is_text() => false,
        Kind::Leaf => {
            let raw = data.get(p.body.clone()).unwrap_or_default();
            let charset = part_charset(data, p);
            let mut decoded = std::mem::take(&mut s.decoded);
            decoded.clear();
            let text: &[u8] = match p.cte {
                Cte::Base64 => {
                    decode::base64(raw, &mut decoded);
                    &decoded
                }
                Cte::QuotedPrintable => {
                    decode::quoted_printable(raw, &mut decoded);
                    &decoded
                }
                _ => raw,
            };
            let found = text_contains(text, charset, needle, s);
            s.decoded = decoded;
            found
        }
    }
}

/// SEARCH BODY: the decoded text of the message's text parts.
pub(crate) fn body_matches(data: &[u8], root: &Part, needle: &Needle) -> bool {
    needle.is_empty() || with_scratch(|s| body_contains(data, root, needle, s))
}

/// SEARCH TEXT: header or body.
pub(crate) fn text_matches(data: &[u8], root: &Part, needle: &Needle) -> bool {
    needle.is_empty()
        || with_scratch(|s| {
            header_block_contains(data, root.header.clone(), needle, s)
                || body_contains(data, root, needle, s)
        })
}

/// The first `name` field's raw value (for the Date: header).
pub(crate) fn first_value<'a>(
    data: &'a [u8],
    header: Range<usize>,
    name: &str,
) -> Option<&'a [u8]> {
    fields(data, header)
        .find(|f| f.is(name.as_bytes()))
        .map(|f| f.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tree::parse_message;

    fn body(raw: &[u8], needle: &str) -> bool {
        body_matches(raw, &parse_message(raw), &Needle::new(needle))
    }

    #[test]
    fn needle_cache() {
        let a = Needle::cached("Cache");
        assert!(Rc::ptr_eq(&a, &Needle::cached("Cache")));
        assert!(!Rc::ptr_eq(&a, &Needle::cached("cache")));
        for i in 0..20 {
            Needle::cached(&i.to_string());
        }
        // Evicted, rebuilt, still correct.
        let b = Needle::cached("Cache");
        assert!(!Rc::ptr_eq(&a, &b));
        assert!(b.find_in(b"a cache"));
    }

    #[test]
    fn needle_across_chunk_boundary() {
        let mut raw = b"Subject: x\r\n\r\n".to_vec();
        let pad = 32 * 1024 - raw.len() - 3;
        raw.extend(std::iter::repeat_n(b'a', pad));
        raw.extend_from_slice(b"NEEDLE in a haystack");
        assert!(body(&raw, "needle in"));
        assert!(!body(&raw, "needle out"));
        // A needle longer than a chunk.
        let long = "b".repeat(70_000);
        let mut raw = b"\r\n".to_vec();
        raw.extend_from_slice(long.to_uppercase().as_bytes());
        assert!(body(&raw, &long));
        assert!(!body(&raw, &format!("{long}b")));
    }

    #[test]
    fn charsets() {
        let (jis, _, _) = encoding_rs::ISO_2022_JP.encode("日本語のテキスト");
        let mut raw = b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n".to_vec();
        raw.extend_from_slice(&jis);
        assert!(jis.is_ascii());
        assert!(body(&raw, "テキスト"));
        assert!(!body(&raw, "中文"));
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("ＡＢＣ表示");
        let mut raw = b"Content-Type: text/plain; charset=shift_jis\r\n\r\n".to_vec();
        raw.extend_from_slice(&sjis);
        assert!(body(&raw, "表示"));
        assert!(body(&raw, "ａｂｃ"));
        let raw = b"Content-Type: text/plain; charset=windows-1252\r\n\r\nNa\xefve \x80 price";
        assert!(body(raw, "NAÏVE €"));
        assert!(!body(raw, "naive"));
        // Unknown charset: taken as UTF-8.
        let raw = "Content-Type: text/plain; charset=x-unknown\r\n\r\nÜber".as_bytes();
        assert!(body(raw, "über"));
    }

    #[test]
    fn header_values() {
        let raw = concat!(
            "Subject: =?iso-8859-1?q?Caf=E9?= =?utf-8?b?w6k=?=\r\n",
            "To: \"Smith, J\" <j@x.org>,\r\n",
            "  k@y.org\r\n",
            "\r\n",
        )
        .as_bytes();
        let h = 0..raw.len();
        let m =
            |name: &str, needle: &str| header_matches(raw, h.clone(), name, &Needle::new(needle));
        assert!(m("subject", "CAFÉé"));
        assert!(m("SUBJECT", ""));
        assert!(!m("subject", "=?iso"));
        assert!(m("to", "smith, j"));
        assert!(m("to", "j@x.org>,  k@y"));
        assert!(!m("to", "subject"));
        assert!(!m("cc", ""));
    }
}
