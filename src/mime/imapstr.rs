//! IMAP `string` / `nstring` encoding for ENVELOPE and BODYSTRUCTURE.
//!
//! A private copy of the rules in `proto::encode` (written in parallel by
//! another helper): to be replaced by calls to `proto::encode::{string,
//! nstring}` once that exists. Kept byte-for-byte equivalent in intent:
//! quoted when possible, else a `{n}` literal.

/// Quoted strings longer than this become literals, like Dovecot's.
const MAX_QUOTED: usize = 1024;

/// `string` (RFC 9051 §9): quoted unless the bytes contain CR, LF or NUL,
/// 8-bit bytes without UTF8=ACCEPT (or invalid UTF-8 with it), or are very
/// long; then a synchronizing literal. NUL cannot appear even in a literal
/// (`CHAR8` excludes it), so it is dropped there.
pub(crate) fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let quotable = s.len() <= MAX_QUOTED
        && !s
            .iter()
            .any(|&c| c == 0 || c == b'\r' || c == b'\n' || (c >= 0x80 && !utf8))
        && (!utf8 || s.is_ascii() || std::str::from_utf8(s).is_ok());
    if quotable {
        out.push(b'"');
        for &c in s {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        let nuls = s.iter().filter(|&&c| c == 0).count();
        out.extend_from_slice(format!("{{{}}}\r\n", s.len() - nuls).as_bytes());
        out.extend(s.iter().copied().filter(|&c| c != 0));
    }
}

/// `nstring`: `NIL` or [`string`].
pub(crate) fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, utf8: bool) {
    match s {
        Some(s) => string(out, s, utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], bool, &[u8])] = &[
            (b"abc", false, b"\"abc\""),
            (b"", false, b"\"\""),
            (b"a\"b\\c", false, b"\"a\\\"b\\\\c\""),
            (b"a\r\nb", false, b"{4}\r\na\r\nb"),
            ("é".as_bytes(), false, b"{2}\r\n\xc3\xa9"),
            ("é".as_bytes(), true, "\"é\"".as_bytes()),
            (b"\xff", true, b"{1}\r\n\xff"),
            (b"a\0b", false, b"{2}\r\nab"),
        ];
        for (input, utf8, want) in cases {
            let mut out = Vec::new();
            string(&mut out, input, *utf8);
            assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(input));
        }
        let mut out = Vec::new();
        nstring(&mut out, None, false);
        assert_eq!(out, b"NIL");
    }
}
