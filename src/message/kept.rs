//! Which bytes of a message are data, not text: the line-end conversion
//! of a whole message (RFC822.SIZE, `BODY[]`, BODYSTRUCTURE sizes) leaves
//! them alone.
//!
//! # The rule
//!
//! IMAP serves messages with CRLF line ends (RFC 9051 §2.3.4: RFC822.SIZE
//! is the size in that form), and Maildir files often hold bare LFs, so
//! nestbox presents a stored message with every bare LF turned into CRLF
//! (`crlf`). That is right for text: the header, every text/* part, the
//! lines of multipart structure, 7bit and 8bit content (which RFC 2045
//! §2.7/§2.8 defines as CRLF lines), and the base64 or quoted-printable
//! text of encoded parts. It is wrong for the content of a part whose
//! Content-Transfer-Encoding is `binary` and whose type is not text/*:
//! there (RFC 2045 §2.9) CR and LF are octets of the data, in any order,
//! and adding a CR alters the data: 7 octets appended with a literal8 must
//! come back as 7 (RFC 3516 §4.3: BINARY.SIZE is the size of what BINARY
//! returns, and the data is the data). So the bodies of such leaf parts
//! are *kept*: served exactly as stored, in every view of the message
//! (`BODY[]`, `BODY[TEXT]`, `BODY[n]`, `BINARY[n]`), and counted as stored
//! in RFC822.SIZE and the BODYSTRUCTURE size, so every size stays the
//! length of what is served. A text/* part is converted whatever its
//! encoding: RFC 3516 §4.3 requires textual sections in CRLF form
//! "regardless of the underlying storage representation".
//!
//! A Maildir file written by an MTA that turned every CRLF into LF,
//! binary parts included, cannot be told apart from one whose binary part
//! holds bare LFs as data; the stored bytes are served, which is at least
//! what was stored. Dovecot, for comparison, converts every bare LF (its
//! own APPEND avoids the question by re-encoding binary parts as base64).
//!
//! Kept ranges are leaf bodies, which the part tree ends before the line
//! break of a multipart delimiter (CR included), so the byte after a kept
//! range is never the LF of a CR inside it, and the conversion around kept
//! ranges counts exactly as [`bare_in`] does.
//!
//! Most messages have no binary part: [`Kept::of`] finds that with one
//! vectorised search for the word before it parses anything.
use std::ops::Range;

use memchr::memchr2_iter;

use super::crlf::{append_crlf, line_ends};
use super::tree::{self, Cte, Kind, Part};

/// The kept ranges of one message, in order, disjoint.
#[derive(Debug, Default, Clone)]
pub(crate) struct Kept(Vec<Range<usize>>);

/// Whether `s` contains `binary` in any case: a message without the word
/// has no binary part (the encoding is named in a header field).
pub fn may_have_binary(s: &[u8]) -> bool {
    memchr2_iter(b'b', b'B', s).any(|i| {
        s.get(i + 1..i + 6)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"inary"))
    })
}

impl Kept {
    /// The kept ranges of the message that is all of `raw` (stored or CRLF
    /// form).
    pub fn of(raw: &[u8]) -> Kept {
        if !may_have_binary(raw) {
            return Kept::default();
        }
        Kept::from_tree(&tree::parse_message(raw))
    }

    /// The kept ranges of a parsed message (offsets in the parsed bytes).
    pub fn from_tree(root: &Part) -> Kept {
        let mut v = Vec::new();
        collect(root, &mut v);
        Kept(v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bare LFs of `data[range]` that lie in kept ranges (and so are not
    /// converted).
    pub fn bare_in(&self, data: &[u8], range: Range<usize>) -> usize {
        self.0
            .iter()
            .map(|k| {
                let r = k.start.max(range.start)..k.end.min(range.end);
                if r.start < r.end {
                    line_ends(data, r).1
                } else {
                    0
                }
            })
            .sum()
    }

    /// Length of `data[range]` in its served form: bare LFs outside kept
    /// ranges become CRLF.
    pub fn served_len(&self, data: &[u8], range: Range<usize>) -> usize {
        let len = data.get(range.clone()).map_or(0, <[u8]>::len);
        len + line_ends(data, range.clone()).1 - self.bare_in(data, range)
    }

    /// `raw` in served form: bare LFs outside kept ranges become CRLF.
    pub fn to_crlf(&self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.served_len(raw, 0..raw.len()));
        let mut at = 0;
        for k in &self.0 {
            let (start, end) = (k.start.min(raw.len()), k.end.min(raw.len()));
            if start < at {
                continue;
            }
            append_gap(&mut out, raw, at..start);
            out.extend_from_slice(&raw[start..end]);
            at = end;
        }
        append_gap(&mut out, raw, at..raw.len());
        out
    }
}

/// Converts `raw[r]`, judging an LF at its start by the byte before it.
fn append_gap(out: &mut Vec<u8>, raw: &[u8], r: Range<usize>) {
    let Some(mut s) = raw.get(r.clone()) else {
        return;
    };
    if r.start > 0 && raw.get(r.start - 1) == Some(&b'\r') && s.first() == Some(&b'\n') {
        out.push(b'\n');
        s = &s[1..];
    }
    append_crlf(out, s);
}

fn collect(p: &Part, out: &mut Vec<Range<usize>>) {
    match &p.kind {
        Kind::Leaf => {
            if p.cte == Cte::Binary && !p.is_text() && p.body.start < p.body.end {
                out.push(p.body.clone());
            }
        }
        Kind::Multipart(ch) => ch.iter().for_each(|c| collect(c, out)),
        Kind::Message(inner) => collect(inner, out),
    }
}

/// RFC822.SIZE of a stored message: its length in served form.
pub fn crlf_size(raw: &[u8]) -> u64 {
    let (_, bare) = line_ends(raw, 0..raw.len());
    if bare == 0 {
        return raw.len() as u64;
    }
    Kept::of(raw).served_len(raw, 0..raw.len()) as u64
}

/// A stored message in served form (`BODY[]`).
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    Kept::of(raw).to_crlf(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_size_table() {
        for (data, n) in [
            (&b""[..], 0),
            (b"a\n", 3),
            (b"a\r\n", 3),
            (b"\n\n", 4),
            (b"a\r\nb\nc", 7),
        ] {
            assert_eq!(crlf_size(data), n, "{data:?}");
        }
    }

    #[test]
    fn binary_bodies_are_kept_and_counted_as_stored() {
        let raw: &[u8] = b"Subject: b\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Transfer-Encoding: binary\n\nt\nu\n--x\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: BINARY\n\na\nb\r\n\nc\n--x--\n";
        let served = to_crlf(raw);
        let text = String::from_utf8_lossy(&served);
        // The text/plain part is converted, the octet-stream is not, the
        // delimiter's line break is.
        assert!(text.contains("\r\n\r\nt\r\nu\r\n--x\r\n"), "{text:?}");
        assert!(
            text.contains("\r\n\r\na\nb\r\n\nc\r\n--x--\r\n"),
            "{text:?}"
        );
        assert_eq!(crlf_size(raw), served.len() as u64);
        // Converting again changes nothing: the served form is a fixed point.
        assert_eq!(to_crlf(&served), served);
        assert!(may_have_binary(b"x BiNaRy"));
        assert!(!may_have_binary(b"binar"));
    }
}
