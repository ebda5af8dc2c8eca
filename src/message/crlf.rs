//! Line ends: IMAP counts and serves messages with CRLF line ends, while
//! Maildir files often hold bare LFs. This module converts text (`to_crlf`;
//! which bytes of a message are text is `kept`'s business) and,
//! more often, only counts what the conversion would add, so that sizes in
//! CRLF terms come from the stored bytes without a copy.
//!
//! A "bare LF" is an LF whose preceding byte is not CR; a lone CR is not a
//! line end and is left alone (Dovecot keeps it too). Whether an LF is bare
//! depends on the byte before it, so the counting functions take the whole
//! buffer and a range in it rather than a detached slice.
//!
//! Never panics: ranges outside the buffer count as empty.
use std::borrow::Cow;
use std::ops::Range;

use memchr::{memchr, memchr_iter};

/// LFs in `data[range]`, and how many of them are bare (judged against the
/// byte before the range too).
pub(crate) fn line_ends(data: &[u8], range: Range<usize>) -> (usize, usize) {
    let Some(s) = data.get(range.clone()) else {
        return (0, 0);
    };
    // memchr's count is vectorised; it is the common case's only pass over
    // the bytes besides the CR probe below.
    let lf = memchr_iter(b'\n', s).count();
    if lf == 0 {
        return (0, 0);
    }
    // The byte before the range decides whether an LF at its start is bare.
    let ctx = data
        .get(range.start.saturating_sub(1)..range.end)
        .unwrap_or(s);
    if memchr(b'\r', ctx).is_none() {
        // Stored mail is usually all-LF: then every LF is bare.
        return (lf, lf);
    }
    (lf, lf.saturating_sub(crlf_pairs(ctx)))
}

/// Occurrences of CR LF in `s`. Written so that the compiler vectorises it
/// (byte-wide counters, flushed every 255 bytes): a CRLF message pays about
/// one instruction per byte here instead of a branch per line.
fn crlf_pairs(s: &[u8]) -> usize {
    if s.len() < 2 {
        return 0;
    }
    let (a, b) = (&s[..s.len() - 1], &s[1..]);
    let mut n = 0usize;
    for (ca, cb) in a.chunks(255).zip(b.chunks(255)) {
        let mut k = 0u8;
        for (x, y) in ca.iter().zip(cb) {
            k += u8::from(*x == b'\r') & u8::from(*y == b'\n');
        }
        n += usize::from(k);
    }
    n
}

/// Length of `data[range]` once bare LFs become CRLF.
pub(crate) fn crlf_len(data: &[u8], range: Range<usize>) -> usize {
    let len = data.get(range.clone()).map_or(0, <[u8]>::len);
    len + line_ends(data, range).1
}

/// Size of `raw` once every bare LF becomes CRLF, without copying: the
/// size of text. A whole message's size is `kept::crlf_size`, which leaves
/// binary parts alone.
pub(crate) fn crlf_size(raw: &[u8]) -> u64 {
    crlf_len(raw, 0..raw.len()) as u64
}

/// `raw` with every bare LF turned into CRLF (a lone CR is left alone: it is
/// not a line end and Dovecot keeps it too): text. A whole message is
/// served by `kept::to_crlf`, which leaves binary parts alone.
pub(crate) fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let size = usize::try_from(crlf_size(raw)).unwrap_or(raw.len());
    let mut out = Vec::with_capacity(size);
    append_crlf(&mut out, raw);
    out
}

/// Appends `raw` to `out` with every bare LF turned into CRLF (an LF at the
/// start of `raw` counts as bare).
pub(crate) fn append_crlf(out: &mut Vec<u8>, raw: &[u8]) {
    let mut last = 0;
    for i in memchr_iter(b'\n', raw) {
        if i == 0 || raw[i - 1] != b'\r' {
            out.extend_from_slice(&raw[last..i]);
            out.extend_from_slice(b"\r\n");
            last = i + 1;
        }
    }
    out.extend_from_slice(&raw[last..]);
}

/// A header field value as it reads in the CRLF form of the message.
///
/// A value never starts with a line break (the blanks after the colon are
/// trimmed), so converting the detached slice gives exactly the bytes the
/// value has in the CRLF-normalised message. Unfolded values (the usual
/// case) contain no LF and are borrowed. Used where a value's bytes are
/// parsed by rules that treat CR and LF differently (address lists,
/// parameters), so that the stored and the CRLF form always render alike.
pub(crate) fn crlf_value(v: &[u8]) -> Cow<'_, [u8]> {
    if memchr(b'\n', v).is_none() {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(to_crlf(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious definition, byte by byte.
    fn bare_slow(data: &[u8], r: Range<usize>) -> usize {
        r.filter(|&i| data[i] == b'\n' && (i == 0 || data[i - 1] != b'\r'))
            .count()
    }

    #[test]
    fn line_end_table() {
        /// Bytes, range, and the (LFs, bare LFs) expected in it.
        type Case = (&'static [u8], Range<usize>, (usize, usize));
        let t: &[Case] = &[
            (b"", 0..0, (0, 0)),
            (b"a\nb\n", 0..4, (2, 2)),
            (b"a\r\nb\r\n", 0..6, (2, 0)),
            (b"a\r\nb\n", 0..5, (2, 1)),
            // The CR before the range makes the LF at its start not bare.
            (b"a\r\nb\n", 2..5, (2, 1)),
            (b"a\n\nb\n", 2..5, (2, 2)),
            (b"\r\r\n\n", 0..4, (2, 1)),
            (b"x", 0..9, (0, 0)),
        ];
        for (data, r, want) in t {
            assert_eq!(line_ends(data, r.clone()), *want, "{data:?} {r:?}");
        }
        assert_eq!(crlf_size(b"\n\r\n\n"), 6);
        assert_eq!(to_crlf(b"\n\r\r\nx\r"), b"\r\n\r\r\nx\r");
    }

    proptest! {
        #[test]
        fn counts_match_conversion(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'x')], 0..1200),
            a in 0usize..1300,
            b in 0usize..1300,
        ) {
            let (a, b) = (a.min(data.len()), b.min(data.len()));
            let r = a.min(b)..a.max(b);
            let (lf, bare) = line_ends(&data, r.clone());
            prop_assert_eq!(bare, bare_slow(&data, r.clone()));
            prop_assert_eq!(lf, data[r.clone()].iter().filter(|&&c| c == b'\n').count());
            prop_assert_eq!(crlf_size(&data), to_crlf(&data).len() as u64);
            prop_assert_eq!(crlf_size(&data), data.len() as u64 + bare_slow(&data, 0..data.len()) as u64);
            prop_assert_eq!(crlf_len(&data, r.clone()), r.len() + bare_slow(&data, r));
        }
    }
}
