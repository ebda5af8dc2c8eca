//! Small helpers the session writes responses with: strings (quoted or
//! literal), astrings, flag lists, sequence sets, `date-time` and THREAD's
//! thread lists.
//!
//! Owns the choice between the wire forms of a value (RFC 9051 §4.3, §9).
//! Appends to a caller's buffer and never fails; it must never decide
//! *what* to say (that is the session's) nor do any I/O.

use crate::flags::Flag;

/// Strings longer than this go out as literals: some clients cap quoted
/// strings, and a literal needs no escaping pass on their side.
const MAX_QUOTED: usize = 1024;

/// A string as `quoted` when that is possible, otherwise as a `{n}` literal
/// (CR, LF, NUL, 8-bit bytes when `utf8` is false, or very long).
///
/// `quoted-specials` (`"` and `\`) are escaped with a backslash. With
/// `utf8` (IMAP4rev2 or UTF8=ACCEPT) valid UTF-8 may be quoted
/// (`quoted = DQUOTE *QUOTED-CHAR DQUOTE`, `QUOTED-CHAR =/ UTF8-2 / ...`);
/// invalid UTF-8 always goes out as a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let needs_literal = s.len() > MAX_QUOTED
        || s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
        || (s.iter().any(|&b| b >= 0x80) && (!utf8 || std::str::from_utf8(s).is_err()));
    if needs_literal {
        // NUL cannot appear even in a literal (`CHAR8` excludes it): drop it.
        let nuls = s.iter().filter(|&&c| c == 0).count();
        literal_prefix(out, (s.len() - nuls) as u64, false);
        if nuls == 0 {
            out.extend_from_slice(s);
        } else {
            out.extend(s.iter().copied().filter(|&c| c != 0));
        }
        return;
    }
    out.push(b'"');
    // Runs without a quote or backslash are copied whole: ENVELOPE writes
    // several strings per message.
    let mut rest = s;
    while let Some(i) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\\');
        out.push(rest[i]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// `{n}\r\n`, or `~{n}\r\n` for a `literal8` (RFC 3516 §4.3): the
/// prefix of a literal whose `n` bytes the caller sends next (from memory
/// or from a file).
pub fn literal_prefix(out: &mut Vec<u8>, len: u64, literal8: bool) {
    use std::io::Write;
    if literal8 {
        out.push(b'~');
    }
    let _ = write!(out, "{{{len}}}\r\n");
}

/// `data` as a `{n}` literal: every item but BINARY. A literal's CHAR8
/// excludes NUL (RFC 9051 §4.3, §9), and outside BINARY binary data MUST
/// be sent in a textual form; a stored part with NULs is not re-encoded
/// (BODYSTRUCTURE and every size would then have to describe the encoded
/// form), so each NUL is sent as 0x80, as Dovecot does: the string keeps
/// its size and structure, and BINARY gives the exact bytes.
pub fn text_literal(out: &mut Vec<u8>, data: &[u8]) {
    literal_prefix(out, data.len() as u64, false);
    let mark = out.len();
    out.extend_from_slice(data);
    if memchr::memchr(0, data).is_some() {
        for b in &mut out[mark..] {
            if *b == 0 {
                *b = 0x80;
            }
        }
    }
}

/// `BINARY` data: a `literal8` when it holds a NUL, else a `{n}` literal
/// (RFC 3516 §4.3, RFC 9051 §7.5.2: data without NUL SHOULD be a string,
/// so the client knows there is none without scanning).
pub fn binary_literal(out: &mut Vec<u8>, data: &[u8]) {
    literal_prefix(out, data.len() as u64, data.contains(&0));
    out.extend_from_slice(data);
}

/// `NIL` or [`string`].
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, utf8: bool) {
    match s {
        Some(s) => string(out, s, utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// An atom when the bytes are atom-chars, otherwise [`string`].
///
/// `NIL` (any case) is quoted so that it is not read as the nil value.
pub fn astring(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let atom = !s.is_empty()
        && s.iter()
            .all(|&b| super::parse::is_atom_char(b) || b == b']')
        && !s.eq_ignore_ascii_case(b"NIL");
    if atom {
        out.extend_from_slice(s);
    } else {
        string(out, s, utf8);
    }
}

/// `(\Seen $Forwarded)`
pub fn flag_list(out: &mut Vec<u8>, flags: impl IntoIterator<Item = Flag>) {
    out.push(b'(');
    for (i, f) in flags.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.as_imap().as_bytes());
    }
    out.push(b')');
}

/// Sorted numbers compressed to `1:3,7,9:10`. Input need not be sorted;
/// duplicates are merged. An empty input writes nothing (the caller must
/// not send an empty sequence set).
pub fn sequence_set(out: &mut Vec<u8>, nums: &[u32]) {
    let mut sorted = nums.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut first = true;
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && end.checked_add(1) == Some(sorted[i + 1]) {
            i += 1;
            end = sorted[i];
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if start == end {
            out.extend_from_slice(start.to_string().as_bytes());
        } else {
            out.extend_from_slice(format!("{start}:{end}").as_bytes());
        }
        i += 1;
    }
}

/// `"17-Jul-1996 02:44:25 -0700"` (quoted, day padded with a space;
/// RFC 9051 §9 `date-time` with `date-day-fixed`).
pub fn date_time(out: &mut Vec<u8>, dt: &chrono::DateTime<chrono::FixedOffset>) {
    use chrono::{Datelike, Timelike};
    use std::io::Write;
    // Written field by field: `format` parses its pattern on every call,
    // once per message of a `FETCH 1:* INTERNALDATE`.
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get(dt.month0() as usize).copied().unwrap_or("Jan");
    let off = dt.offset().local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    // Whole minutes, rounded as chrono's `%z` rounds (offsets with seconds
    // exist only in historic zones).
    let off = (off.unsigned_abs() + 30) / 60;
    let _ = write!(
        out,
        "\"{:>2}-{month}-{:04} {:02}:{:02}:{:02} {sign}{:02}{:02}\"",
        dt.day(),
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        off / 60,
        off % 60
    );
}

/// One node of a THREAD response: a message number, or `None` for a dummy
/// parent (RFC 5256 §2.2: only at the top level, with two or more
/// children), and its children as indices into the same list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadNode {
    pub number: Option<u32>,
    pub children: Vec<usize>,
}

/// The `thread-list`s of a THREAD response (RFC 5256 §5), one per root:
///
/// ```text
/// thread-list    = "(" (thread-members / thread-nested) ")"
/// thread-members = nz-number *(SP nz-number) [SP thread-nested]
/// thread-nested  = 2*thread-list
/// ```
///
/// A message with one child continues its list (`1 2`); with several,
/// each child opens a list of its own (`1 (2)(3)`). Iterative: a reply
/// chain may be as deep as the mailbox is long.
pub fn thread_lists(out: &mut Vec<u8>, nodes: &[ThreadNode], roots: &[usize]) {
    enum Step {
        Byte(u8),
        Members(usize),
    }
    let mut stack: Vec<Step> = Vec::new();
    for &r in roots.iter().rev() {
        stack.push(Step::Byte(b')'));
        stack.push(Step::Members(r));
        stack.push(Step::Byte(b'('));
    }
    // Children as nested lists, pushed so that they pop in order.
    let nested = |stack: &mut Vec<Step>, children: &[usize]| {
        for &c in children.iter().rev() {
            stack.push(Step::Byte(b')'));
            stack.push(Step::Members(c));
            stack.push(Step::Byte(b'('));
        }
    };
    while let Some(step) = stack.pop() {
        let n = match step {
            Step::Byte(b) => {
                out.push(b);
                continue;
            }
            Step::Members(n) => n,
        };
        let Some(node) = nodes.get(n) else { continue };
        let children = &node.children;
        match node.number {
            Some(num) => {
                out.extend_from_slice(num.to_string().as_bytes());
                match children.len() {
                    0 => {}
                    1 => {
                        out.push(b' ');
                        stack.push(Step::Members(children[0]));
                    }
                    _ => {
                        out.push(b' ');
                        nested(&mut stack, children);
                    }
                }
            }
            // A dummy with one child would be `((...))`, which the grammar
            // has no room for: its child stands in its place.
            None if children.len() == 1 => stack.push(Step::Members(children[0])),
            None => nested(&mut stack, children),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn strings() {
        let long = "x".repeat(1025);
        let cases: &[(&[u8], bool, &str)] = &[
            (b"", false, "\"\""),
            (b"abc", false, "\"abc\""),
            (b"a\"b\\c", false, "\"a\\\"b\\\\c\""),
            (b"a\r\nb", true, "{4}\r\na\r\nb"),
            (b"a\0", true, "{1}\r\na"),
            ("Entwürfe".as_bytes(), false, "{9}\r\nEntwürfe"),
            ("Entwürfe".as_bytes(), true, "\"Entwürfe\""),
            (b"\xff\xfe", true, "{2}\r\n\u{fffd}\u{fffd}"),
            (long.as_bytes(), false, ""),
        ];
        for &(input, utf8, want) in cases {
            let got = s(|o| string(o, input, utf8));
            if input.len() > 1024 {
                assert!(got.starts_with("{1025}\r\nxxx"), "{got}");
            } else {
                assert_eq!(got, want, "{input:?}");
            }
        }
        assert_eq!(s(|o| string(o, &[b'x'; 1024], false)).len(), 1026);
    }

    #[test]
    fn nstrings_and_astrings() {
        assert_eq!(s(|o| nstring(o, None, false)), "NIL");
        assert_eq!(s(|o| nstring(o, Some(b"x"), false)), "\"x\"");
        let cases: &[(&[u8], &str)] = &[
            (b"INBOX", "INBOX"),
            (b"a]b", "a]b"),
            (b"", "\"\""),
            (b"a b", "\"a b\""),
            (b"a*", "\"a*\""),
            (b"a%", "\"a%\""),
            (b"(x)", "\"(x)\""),
            (b"{x", "\"{x\""),
            (b"nil", "\"nil\""),
            (b"Sent/2024", "Sent/2024"),
        ];
        for &(input, want) in cases {
            assert_eq!(s(|o| astring(o, input, false)), want);
        }
    }

    #[test]
    fn flags() {
        assert_eq!(s(|o| flag_list(o, [])), "()");
        assert_eq!(
            s(|o| flag_list(o, [Flag::Seen, Flag::Keyword("$Forwarded".into())])),
            "(\\Seen $Forwarded)"
        );
    }

    #[test]
    fn sequence_sets() {
        let cases: &[(&[u32], &str)] = &[
            (&[], ""),
            (&[5], "5"),
            (&[3, 1, 2, 7, 10, 9, 9], "1:3,7,9:10"),
            (&[u32::MAX, u32::MAX - 1, 1], "1,4294967294:4294967295"),
        ];
        for &(nums, want) in cases {
            assert_eq!(s(|o| sequence_set(o, nums)), want);
        }
    }

    #[test]
    fn date_times() {
        let tz = chrono::FixedOffset::west_opt(7 * 3600).unwrap();
        let dt = tz.with_ymd_and_hms(1996, 7, 17, 2, 44, 25).unwrap();
        assert_eq!(s(|o| date_time(o, &dt)), "\"17-Jul-1996 02:44:25 -0700\"");
        let utc = chrono::FixedOffset::east_opt(0).unwrap();
        let dt = utc.with_ymd_and_hms(2024, 1, 5, 23, 0, 0).unwrap();
        assert_eq!(s(|o| date_time(o, &dt)), "\" 5-Jan-2024 23:00:00 +0000\"");
        let ist = chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        let dt = ist.with_ymd_and_hms(2024, 12, 31, 0, 0, 9).unwrap();
        assert_eq!(s(|o| date_time(o, &dt)), "\"31-Dec-2024 00:00:09 +0530\"");
    }

    proptest::proptest! {
        /// The hand-written formatter says what chrono's `format` says.
        #[test]
        fn date_time_matches_chrono(secs in 0i64..8_000_000_000, off in -86_399i32..86_400) {
            let tz = chrono::FixedOffset::east_opt(off).unwrap();
            let dt = tz.timestamp_opt(secs, 0).unwrap();
            let want = dt.format("\"%e-%b-%Y %H:%M:%S %z\"").to_string();
            proptest::prop_assert_eq!(s(|o| date_time(o, &dt)), want);
        }

        /// Quoting escapes exactly `"` and `\`, whatever else the bytes are.
        #[test]
        fn quoted_strings_escape_quote_and_backslash(t in "[ -~]{0,80}") {
            let got = s(|o| string(o, t.as_bytes(), false));
            let want = format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\""));
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn thread_lists_forms() {
        let n = |number: Option<u32>, children: &[usize]| ThreadNode {
            number,
            children: children.to_vec(),
        };
        // 0: 1 -> 2 -> {3, 4 -> 5}; 6: dummy {7, 8}; 9 alone; 10: dummy {11}.
        let nodes = vec![
            n(Some(1), &[1]),
            n(Some(2), &[2, 3]),
            n(Some(3), &[]),
            n(Some(4), &[4]),
            n(Some(5), &[]),
            n(None, &[7, 8]),
            n(Some(9), &[]),
            n(Some(7), &[]),
            n(Some(8), &[]),
            n(None, &[10]),
            n(Some(11), &[]),
        ];
        assert_eq!(
            s(|o| thread_lists(o, &nodes, &[0, 5, 6, 9])),
            "(1 2 (3)(4 5))((7)(8))(9)(11)"
        );
        assert_eq!(s(|o| thread_lists(o, &nodes, &[])), "");
        // A chain as deep as a big mailbox does not exhaust the stack.
        const N: usize = 200_000;
        let deep: Vec<ThreadNode> = (0..N)
            .map(|i| ThreadNode {
                number: Some(i as u32 + 1),
                children: if i + 1 < N { vec![i + 1] } else { vec![] },
            })
            .collect();
        let out = s(|o| thread_lists(o, &deep, &[0]));
        assert!(out.starts_with("(1 2 3 ") && out.ends_with(" 200000)"));
    }
}
