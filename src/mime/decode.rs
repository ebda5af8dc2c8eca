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

/// Appends the quoted-printable decoding of `src` to `out`.
pub(crate) fn quoted_printable(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len());
    let mut i = 0;
    while i < src.len() {
        let Some(eq) = memchr::memchr(b'=', &src[i..]) else {
            out.extend_from_slice(&src[i..]);
            break;
        };
        out.extend_from_slice(&src[i..i + eq]);
        i += eq + 1;
        let hex = |c: u8| (c as char).to_digit(16);
        match (src.get(i), src.get(i + 1)) {
            (Some(&a), Some(&b)) if hex(a).is_some() && hex(b).is_some() => {
                let v = hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0);
                out.push(v as u8);
                i += 2;
            }
            // Soft line break, possibly after trailing blanks.
            _ => {
                let mut j = i;
                while matches!(src.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                match (src.get(j), src.get(j + 1)) {
                    (Some(b'\n'), _) => i = j + 1,
                    (Some(b'\r'), Some(b'\n')) => i = j + 2,
                    (None, _) => i = j,
                    _ => out.push(b'='),
                }
            }
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
        ];
        for (src, want) in cases {
            let mut out = Vec::new();
            quoted_printable(src, &mut out);
            assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(src));
        }
    }
}
