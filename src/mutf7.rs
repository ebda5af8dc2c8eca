//! Modified UTF-7 (RFC 3501 §5.1.3), the mailbox-name encoding of
//! IMAP4rev1 clients and of Dovecot's and Courier's Maildir++ folder names
//! on disk (`.Entw&APw-rfe`).
//!
//! Owns the conversion in both directions. Decoding is strict: a name that
//! has more than one spelling would let two different folder directories
//! map to one visible name, so only the canonical encoding (the one
//! [`encode`] produces, and Dovecot's and Courier's encoders produce) is
//! accepted. It never touches the filesystem and does not know about
//! hierarchy separators.
//!
//! Rules: printable US-ASCII (0x20..=0x7e) stands for itself except `&`,
//! which is `&-`; every other character run is UTF-16BE in base64 with `,`
//! for `/`, no padding, between `&` and `-`.

/// A modified UTF-7 string that is not in canonical form, or not valid.
#[derive(Debug, PartialEq, Eq)]
pub struct Mutf7Error;

impl std::fmt::Display for Mutf7Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid modified UTF-7")
    }
}

impl std::error::Error for Mutf7Error {}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    } as u32)
}

fn is_direct(c: char) -> bool {
    matches!(c, ' '..='~')
}

/// UTF-8 -> modified UTF-7 (RFC 3501 §5.1.3).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run: Vec<u16> = Vec::new();
    for c in s.chars() {
        if is_direct(c) {
            flush(&mut out, &mut run);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut run);
    out
}

/// Writes a pending run of UTF-16 units as `&...-`.
fn flush(out: &mut String, run: &mut Vec<u16>) {
    if run.is_empty() {
        return;
    }
    out.push('&');
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &u in run.iter() {
        bits = (bits << 16) | u32::from(u);
        nbits += 16;
        while nbits >= 6 {
            nbits -= 6;
            out.push(B64[((bits >> nbits) & 0x3f) as usize] as char);
        }
        bits &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(B64[((bits << (6 - nbits)) & 0x3f) as usize] as char);
    }
    out.push('-');
    run.clear();
}

/// Modified UTF-7 -> UTF-8; strict: rejects non-canonical encodings,
/// unterminated `&` shifts, 8-bit bytes and encoded printable ASCII.
pub fn decode(s: &str) -> Result<String, Mutf7Error> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    // Whether the previous token was a base64 shift: two shifts in a row
    // are not canonical (the encoder merges runs).
    let mut after_shift = false;
    while i < b.len() {
        let c = b[i];
        if !(0x20..=0x7e).contains(&c) {
            return Err(Mutf7Error);
        }
        if c != b'&' {
            out.push(c as char);
            after_shift = false;
            i += 1;
            continue;
        }
        let end = b[i + 1..]
            .iter()
            .position(|&x| x == b'-')
            .ok_or(Mutf7Error)?
            + i
            + 1;
        let body = &b[i + 1..end];
        i = end + 1;
        if body.is_empty() {
            out.push('&');
            after_shift = false;
            continue;
        }
        if after_shift {
            return Err(Mutf7Error);
        }
        after_shift = true;
        let mut units = Vec::with_capacity(body.len() * 6 / 16);
        let mut bits: u32 = 0;
        let mut nbits = 0;
        for &x in body {
            bits = (bits << 6) | b64_value(x).ok_or(Mutf7Error)?;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push((bits >> nbits) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        // Canonical: fewer than 6 leftover bits, all zero.
        if nbits >= 6 || bits != 0 {
            return Err(Mutf7Error);
        }
        for ch in char::decode_utf16(units) {
            let ch = ch.map_err(|_| Mutf7Error)?;
            if is_direct(ch) {
                return Err(Mutf7Error);
            }
            out.push(ch);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_names() {
        let cases = [
            ("", ""),
            ("INBOX", "INBOX"),
            ("&", "&-"),
            ("a&b", "a&-b"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
            ("Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s"),
            ("日本語", "&ZeVnLIqe-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("😀", "&2D3eAA-"),
            ("\t", "&AAk-"),
            ("äö", "&AOQA9g-"),
        ];
        for (utf8, m) in cases {
            assert_eq!(encode(utf8), m, "encode {utf8}");
            assert_eq!(decode(m), Ok(utf8.to_string()), "decode {m}");
        }
    }

    #[test]
    fn strictness() {
        let bad = [
            "&",          // unterminated
            "&AOQ",       // unterminated
            "&AOQ*-",     // non-base64
            "&AOQ=-",     // padding is not used
            "&AGE-",      // encoded printable ASCII "a"
            "&AOR-",      // non-zero leftover bits
            "&AOQA-",     // six or more leftover bits
            "&2D0-",      // lone high surrogate
            "&3gA-",      // lone low surrogate
            "&AOQ-&APY-", // two adjacent shifts (canonical merges them)
            "Entwürfe",   // 8-bit
            "a\tb",       // control character
            "&AOQ/-",     // '/' is ',' in modified base64
        ];
        for b in bad {
            assert_eq!(decode(b), Err(Mutf7Error), "{b:?}");
        }
        // Adjacent after a literal '&' is fine.
        assert_eq!(decode("&-&AOQ-"), Ok("&ä".into()));
        assert_eq!(decode("&AOQ-&-"), Ok("ä&".into()));
    }

    proptest! {
        #[test]
        fn round_trip(s in any::<String>()) {
            let e = encode(&s);
            prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&e), Ok(s));
        }

        /// Whatever decodes re-encodes to the same bytes (so decoding is
        /// injective: one visible name, one on-disk spelling).
        #[test]
        fn decode_is_canonical(s in "([ -~]|[A-D0-9+,&-]){0,24}") {
            if let Ok(d) = decode(&s) {
                prop_assert_eq!(encode(&d), s);
            }
        }
    }
}
