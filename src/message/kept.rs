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

use memchr::memmem;

use super::crlf::{append_crlf, line_ends};
use super::tree::{self, Cte, Kind, Part};

/// The kept ranges of one message, in order, disjoint.
#[derive(Debug, Default, Clone)]
pub(crate) struct Kept(Vec<Range<usize>>);

/// Whether `s` contains `binary` in any case: a message without the word
/// has no binary part (the encoding is named in a header field).
///
/// Runs for every message RETR sends and every `Kept::of`, so it is one
/// substring search, not a visit to every `b`: blocks of [`FOLD_BLOCK`]
/// bytes are folded to lower case with `| 0x20` into a stack buffer and
/// searched with memchr's SIMD `memmem`. The fold is exact for this word:
/// the only bytes that `| 0x20` turns into `b`, `i`, `n`, `a`, `r` or `y` are
/// those letters in either case. Blocks overlap by the word's length less
/// one, so a word across a boundary is found. Measured on the bench corpus
/// (10,000 messages, 19 KB each): 2 us a message, where visiting every `b`
/// of English text took 8.
pub fn may_have_binary(s: &[u8]) -> bool {
    static WORD: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(b"binary"));
    const OVERLAP: usize = b"binary".len() - 1;
    let mut folded = [0u8; FOLD_BLOCK + OVERLAP];
    let mut at = 0;
    while at < s.len() {
        let block = &s[at..(at + FOLD_BLOCK + OVERLAP).min(s.len())];
        for (f, &b) in folded.iter_mut().zip(block) {
            *f = b | 0x20;
        }
        if WORD.find(&folded[..block.len()]).is_some() {
            return true;
        }
        at += FOLD_BLOCK;
    }
    false
}

/// Bytes folded and searched at a time by [`may_have_binary`].
const FOLD_BLOCK: usize = 4096;

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
    use proptest::strategy::Strategy;

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

    /// The plain definition: the word in any case, anywhere.
    fn has_word(s: &[u8]) -> bool {
        s.windows(6).any(|w| w.eq_ignore_ascii_case(b"binary"))
    }

    #[test]
    fn the_word_is_found_across_every_block_boundary() {
        for at in FOLD_BLOCK - 8..FOLD_BLOCK + 2 {
            let mut s = vec![b'x'; 3 * FOLD_BLOCK];
            s[at..at + 6].copy_from_slice(b"BinarY");
            assert!(may_have_binary(&s), "at {at}");
            s[at + 5] = b'y' ^ 0x40; // a byte that folds to something else
            assert!(!may_have_binary(&s), "at {at}");
            s.truncate(at + 5);
            assert!(!may_have_binary(&s));
        }
    }

    proptest::proptest! {
        #[test]
        fn may_have_binary_is_the_plain_search(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::num::u8::ANY, 0..40),
                    proptest::sample::select(vec![
                        b"binary".to_vec(), b"BINARY".to_vec(), b"bInArY".to_vec(),
                        b"binar".to_vec(), b"inary".to_vec(), b"b\x00nary".to_vec(),
                        b"\x02INARY".to_vec(), b"BINAR\x19".to_vec(),
                    ]),
                    (1usize..2 * FOLD_BLOCK).prop_map(|n| vec![b'y'; n]),
                ],
                0..12,
            )
        ) {
            let s = parts.concat();
            proptest::prop_assert_eq!(may_have_binary(&s), has_word(&s));
        }
    }
}
