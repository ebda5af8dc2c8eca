//! Content-Transfer-Encoding decoders (RFC 2045 §6.7, §6.8), lenient.
//!
//! Mail in the wild has broken encodings; BINARY and SEARCH must still give
//! something useful, so these never fail: characters outside the base64
//! alphabet are skipped, a malformed `=` escape in quoted-printable is kept
//! literally. They append to a caller-owned buffer so SEARCH can reuse one
//! allocation across messages.

/// Appends the base64 decoding of `src` to `out`.
pub(crate) fn base64(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in src {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                // Padding ends a quantum; a new one may follow (some
                // encoders concatenate padded chunks).
                acc = 0;
                bits = 0;
                continue;
            }
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
}

/// Appends the quoted-printable decoding of `src` to `out`, a line at a
/// time. RFC 2045 §6.7 rule 3: blanks at the end of an encoded line are
/// not data (transports add and strip them) and are deleted when decoding;
/// a blank that is data is written `=20` or `=09`. A line that ends in `=`
/// (after those blanks) is a soft line break: the `=` and the line break go.
/// A hard line break is kept as written (CRLF, or LF in stored form).
pub(crate) fn quoted_printable(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len());
    let mut rest = src;
    while !rest.is_empty() {
        let (line, eol, next) = match memchr::memchr(b'\n', rest) {
            Some(n) if n > 0 && rest[n - 1] == b'\r' => (&rest[..n - 1], &rest[n - 1..=n], n + 1),
            Some(n) => (&rest[..n], &rest[n..=n], n + 1),
            None => (rest, &b""[..], rest.len()),
        };
        rest = &rest[next..];
        let mut end = line.len();
        while end > 0 && matches!(line[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        let line = &line[..end];
        match line.strip_suffix(b"=") {
            Some(soft) => qp_line(soft, out),
            None => {
                qp_line(line, out);
                out.extend_from_slice(eol);
            }
        }
    }
}

/// Decodes the `=XX` escapes of one line (without its line break); an `=`
/// not followed by two hex digits is kept as it is.
fn qp_line(src: &[u8], out: &mut Vec<u8>) {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    while i < src.len() {
        let Some(eq) = memchr::memchr(b'=', &src[i..]) else {
            out.extend_from_slice(&src[i..]);
            break;
        };
        out.extend_from_slice(&src[i..i + eq]);
        i += eq + 1;
        match (
            src.get(i).copied().and_then(hex),
            src.get(i + 1).copied().and_then(hex),
        ) {
            (Some(a), Some(b)) => {
                out.push((a * 16 + b) as u8);
                i += 2;
            }
            _ => out.push(b'='),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"aGVsbG8=", b"hello"),
            (b"aGVs\r\nbG8gd29y\r\nbGQ=", b"hello world"),
            (b"aGVsbG8", b"hello"),
            (b"a!G@V#s$b%G^8=", b"hello"),
            (b"aGk=aGk=", b"hihi"),
            (b"", b""),
            (b"=", b""),
            (b"Q", b""),
        ];
        for (src, want) in cases {
            let mut out = Vec::new();
            base64(src, &mut out);
            assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(src));
        }
    }

    #[test]
    fn qp_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"caf=C3=A9", "café".as_bytes()),
            (b"soft=\r\nbreak", b"softbreak"),
            (b"soft=\nbreak", b"softbreak"),
            (b"trail= \t\r\nx", b"trailx"),
            (b"bad=ZZ", b"bad=ZZ"),
            (b"end=", b"end"),
            (b"lower=c3=a9", "loweré".as_bytes()),
            (b"a=\r\n", b"a"),
            // Rule 3: trailing blanks are not data; encoded ones are.
            (b"one  \r\ntwo\t\r\nthree ", b"one\r\ntwo\r\nthree"),
            (b"sp=20 \r\ntab=09\t\nx", b"sp \r\ntab\t\nx"),
            (b"soft= \t\r\n  next  \n", b"soft  next\n"),
            (b"a=\rb", b"a=\rb"),
            (b"=\r\n=\n=", b""),
            (b"=4", b"=4"),
        ];
        for (src, want) in cases {
            let mut out = Vec::new();
            quoted_printable(src, &mut out);
            assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(src));
        }
    }
}
