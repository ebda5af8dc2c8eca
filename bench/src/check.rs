//! Correctness cross-check: parse FETCH data into values and compare two servers' answers.
//!
//! Owns the normalisation rules, which are deliberately few: a string sent as a literal equals
//! the same string sent quoted; in BODYSTRUCTURE, strings compare ASCII case-insensitively
//! because MIME types, subtypes, parameter names and encodings are case-insensitive
//! (RFC 2045 §5.1, §6.1) and servers legitimately differ in how they spell them. Everything
//! else must match byte for byte: a difference is a bug in one of the servers.
//!
//! Messages are matched by Message-ID rather than UID because each server assigns UIDs to a
//! fresh Maildir in its own directory-reading order. It never talks to a socket.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One IMAP value from a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `NIL`
    Nil,
    /// An atom or number, as sent.
    Atom(Vec<u8>),
    /// A quoted string or literal, unescaped.
    Str(Vec<u8>),
    /// A parenthesised list.
    List(Vec<Value>),
}

impl Value {
    /// Canonical text: every string quoted, so literal/quoted spellings compare equal.
    pub fn canon(&self, fold_case: bool) -> String {
        let mut s = String::new();
        self.write(&mut s, fold_case);
        s
    }

    fn write(&self, o: &mut String, fold: bool) {
        match self {
            Value::Nil => o.push_str("NIL"),
            Value::Atom(a) => o.push_str(&String::from_utf8_lossy(a)),
            Value::Str(b) => {
                let t = String::from_utf8_lossy(b);
                let t = if fold {
                    t.to_ascii_lowercase()
                } else {
                    t.into_owned()
                };
                let _ = write!(o, "{t:?}");
            }
            Value::List(v) => {
                o.push('(');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        o.push(' ');
                    }
                    x.write(o, fold);
                }
                o.push(')');
            }
        }
    }

    /// The string value of a `Str`, if it is one.
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number of an atom, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Atom(a) => std::str::from_utf8(a).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// Parser over one complete response (line plus literals). Bounded by the input; nesting is
/// limited so a hostile server cannot overflow the stack.
struct P<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_sp();
        match self.peek()? {
            b'(' => {
                if self.depth > 100 {
                    return None;
                }
                self.depth += 1;
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.skip_sp();
                    match self.peek()? {
                        b')' => {
                            self.i += 1;
                            self.depth -= 1;
                            return Some(Value::List(v));
                        }
                        _ => v.push(self.value()?),
                    }
                }
            }
            b'"' => {
                self.i += 1;
                let mut s = Vec::new();
                loop {
                    match self.peek()? {
                        b'\\' => {
                            s.push(*self.b.get(self.i + 1)?);
                            self.i += 2;
                        }
                        b'"' => {
                            self.i += 1;
                            return Some(Value::Str(s));
                        }
                        c => {
                            s.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            b'{' | b'~' => {
                if self.peek() == Some(b'~') {
                    self.i += 1;
                }
                if self.peek() != Some(b'{') {
                    return None;
                }
                let close = self.b.get(self.i..)?.iter().position(|&c| c == b'}')? + self.i;
                let digits = std::str::from_utf8(self.b.get(self.i + 1..close)?).ok()?;
                let n: usize = digits.trim_end_matches('+').parse().ok()?;
                // A literal cannot be longer than what is left of the response.
                if n > self.b.len() {
                    return None;
                }
                let mut j = close + 1;
                if self.b.get(j) == Some(&b'\r') {
                    j += 1;
                }
                if self.b.get(j) != Some(&b'\n') {
                    return None;
                }
                let data = self.b.get(j + 1..j + 1 + n)?;
                self.i = j + 1 + n;
                Some(Value::Str(data.to_vec()))
            }
            _ => {
                let st = self.i;
                while let Some(c) = self.peek() {
                    match c {
                        b' ' | b')' | b'(' | b'\r' | b'\n' => break,
                        b'[' => {
                            // Section specs like BODY[HEADER.FIELDS (FROM)] belong to the atom.
                            let close = self.b[self.i..].iter().position(|&c| c == b']')?;
                            self.i += close + 1;
                        }
                        _ => self.i += 1,
                    }
                }
                if self.i == st {
                    return None;
                }
                let a = &self.b[st..self.i];
                Some(if a.eq_ignore_ascii_case(b"NIL") {
                    Value::Nil
                } else {
                    Value::Atom(a.to_vec())
                })
            }
        }
    }
}

/// Parse `* <n> FETCH (<key> <value> ...)` into (n, key -> value), keys upper-cased.
pub fn parse_fetch(r: &[u8]) -> Option<(u64, BTreeMap<String, Value>)> {
    let rest = r.strip_prefix(b"* ")?;
    let sp = rest.iter().position(|&c| c == b' ')?;
    let n: u64 = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let rest = &rest[sp + 1..];
    if !rest.get(..6)?.eq_ignore_ascii_case(b"FETCH ") {
        return None;
    }
    let mut p = P {
        b: &rest[6..],
        i: 0,
        depth: 0,
    };
    let Value::List(items) = p.value()? else {
        return None;
    };
    let mut m = BTreeMap::new();
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let Value::Atom(k) = k else { return None };
        m.insert(String::from_utf8_lossy(&k).to_ascii_uppercase(), v);
    }
    Some((n, m))
}

/// The Message-ID field of an ENVELOPE value (10th element).
pub fn envelope_message_id(env: &Value) -> Option<String> {
    let Value::List(v) = env else { return None };
    v.get(9)?
        .as_str()
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Canonical BODYSTRUCTURE: strings case-folded, and trailing `NIL`s of every list dropped,
/// because extension data (md5, disposition, language, location) may be cut short after any
/// field (RFC 9051 §7.5.2 body-ext-1part / body-ext-mpart) and a server that omits trailing NILs
/// says the same as one that sends them.
pub fn canon_bodystructure(v: &Value) -> String {
    fn strip(v: &Value) -> Value {
        match v {
            Value::List(items) => {
                let mut out: Vec<Value> = items.iter().map(strip).collect();
                while out.len() > 1 && out.last() == Some(&Value::Nil) {
                    out.pop();
                }
                Value::List(out)
            }
            other => other.clone(),
        }
    }
    strip(v).canon(true)
}

/// Flag atoms of a FLAGS value, sorted, minus `\Recent`; `$Forwarded` kept only if asked.
pub fn flag_list(v: &Value, with_passed: bool) -> Vec<String> {
    let Value::List(items) = v else {
        return Vec::new();
    };
    let mut f: Vec<String> = items
        .iter()
        .filter_map(|x| match x {
            Value::Atom(a) => Some(String::from_utf8_lossy(a).into_owned()),
            _ => None,
        })
        .filter(|a| !a.eq_ignore_ascii_case("\\Recent"))
        .filter(|a| with_passed || !a.eq_ignore_ascii_case("$Forwarded"))
        .collect();
    f.sort();
    f
}

/// INTERNALDATE `"dd-Mon-yyyy hh:mm:ss +zzzz"` (RFC 9051 date-time; day may be space-padded)
/// as Unix seconds.
pub fn parse_internaldate(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.trim().split_once(' ')?;
    let mut d = date.split('-');
    let day: i64 = d.next()?.trim().parse().ok()?;
    let mon = d.next()?;
    let year: i64 = d.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as i64 + 1;
    let mut t = time.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let z: i64 = zone.get(1..5)?.parse().ok()?;
    let offset = sign * ((z / 100) * 3600 + (z % 100) * 60);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// What one server answered, keyed by Message-ID, for comparison with another server.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    /// Message-ID -> canonical ENVELOPE.
    pub envelope: BTreeMap<String, String>,
    /// Message-ID -> canonical BODYSTRUCTURE.
    pub bodystructure: BTreeMap<String, String>,
    /// Message-ID -> RFC822.SIZE.
    pub size: BTreeMap<String, u64>,
    /// Message-ID -> FLAGS, sorted, without `\Recent` (a per-session flag) and `$Forwarded`
    /// (SPEC §5: nestbox shows Maildir `P` as `$Forwarded`, Dovecot does not map it).
    pub flags: BTreeMap<String, String>,
    /// Message-ID -> INTERNALDATE as Unix seconds (servers may render other zones).
    pub internaldate: BTreeMap<String, i64>,
    /// Search name -> sorted Message-IDs of the hits.
    pub search: BTreeMap<String, Vec<String>>,
    /// SORT / THREAD workload -> its response with Message-IDs for UIDs (order and structure
    /// are the answer).
    pub ordered: BTreeMap<String, String>,
    /// Message-ID -> PREVIEW text (`crate::preview`): reported as agreement, never compared
    /// as a difference, since RFC 8970 leaves the text to the server.
    pub preview: BTreeMap<String, String>,
}

/// Compare two servers' answers; returns human-readable differences (empty when they agree),
/// at most `limit` per category so a systematic bug does not flood the terminal.
pub fn compare(a_name: &str, a: &Answers, b_name: &str, b: &Answers, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cat = |what: &str, x: &BTreeMap<String, String>, y: &BTreeMap<String, String>| {
        let mut n = 0;
        for (k, va) in x {
            let vb = y.get(k);
            if vb != Some(va) {
                n += 1;
                if n <= limit {
                    out.push(format!(
                        "{what} differs for {k}:\n    {a_name}: {va}\n    {b_name}: {}",
                        vb.map_or("<missing>", String::as_str)
                    ));
                }
            }
        }
        let extra = y.keys().filter(|k| !x.contains_key(*k)).count();
        if extra > 0 {
            n += extra;
            out.push(format!(
                "{what}: {extra} messages only in {b_name}'s answer"
            ));
        }
        if n > limit {
            out.push(format!("{what}: {n} differences in all"));
        }
    };
    cat("ENVELOPE", &a.envelope, &b.envelope);
    cat("BODYSTRUCTURE", &a.bodystructure, &b.bodystructure);
    let sa: BTreeMap<String, String> = a
        .size
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let sb: BTreeMap<String, String> = b
        .size
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    cat("RFC822.SIZE", &sa, &sb);
    cat("FLAGS", &a.flags, &b.flags);
    let da: BTreeMap<String, String> = a
        .internaldate
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let db: BTreeMap<String, String> = b
        .internaldate
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    cat("INTERNALDATE", &da, &db);
    let qa: BTreeMap<String, String> = a
        .search
        .iter()
        .map(|(k, v)| (k.clone(), v.join(" ")))
        .collect();
    let qb: BTreeMap<String, String> = b
        .search
        .iter()
        .map(|(k, v)| (k.clone(), v.join(" ")))
        .collect();
    cat("SEARCH", &qa, &qb);
    // A SORT or THREAD answer is one long line: say where the two first part, not all of it.
    for (k, va) in &a.ordered {
        let vb = b.ordered.get(k).map_or("<missing>", String::as_str);
        if va != vb {
            let at = va
                .char_indices()
                .zip(vb.chars())
                .find(|((_, x), y)| x != y)
                .map_or(va.len().min(vb.len()), |((i, _), _)| i);
            let mut from = at.saturating_sub(80);
            while !va.is_char_boundary(from) {
                from -= 1;
            }
            let show = |v: &str| {
                v.get(from..)
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect::<String>()
            };
            out.push(format!(
                "{k} differs from character {at}:\n    {a_name}: ...{}\n    {b_name}: ...{}",
                show(va),
                show(vb)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_quoted_strings_compare_equal() {
        let quoted = b"* 3 FETCH (UID 7 ENVELOPE (\"Mon, 1 Jan 2024\" \"Hi \\\"x\\\"\" NIL NIL NIL NIL NIL NIL NIL \"<a@b>\"))\r\n";
        let literal = b"* 9 FETCH (ENVELOPE (\"Mon, 1 Jan 2024\" {6}\r\nHi \"x\" NIL NIL NIL NIL NIL NIL NIL {5}\r\n<a@b>) UID 7)\r\n";
        let (n, a) = parse_fetch(quoted).expect("quoted");
        let (_, b) = parse_fetch(literal).expect("literal");
        assert_eq!(n, 3);
        assert_eq!(a["ENVELOPE"].canon(false), b["ENVELOPE"].canon(false));
        assert_eq!(a["UID"].as_u64(), Some(7));
        assert_eq!(
            envelope_message_id(&a["ENVELOPE"]).as_deref(),
            Some("<a@b>")
        );
    }

    #[test]
    fn parse_table() {
        let table: &[(&[u8], Option<&str>)] = &[
            (
                b"* 1 FETCH (FLAGS (\\Seen $NotJunk) UID 4)\r\n",
                Some("FLAGS=(\\Seen $NotJunk)"),
            ),
            (
                b"* 1 FETCH (BODY[HEADER.FIELDS (FROM SUBJECT)] {4}\r\nab\r\n)\r\n",
                Some("BODY[HEADER.FIELDS (FROM SUBJECT)]=\"ab\\r\\n\""),
            ),
            (
                b"* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3 1))\r\n",
                Some("BODYSTRUCTURE=(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3 1)"),
            ),
            (b"* 1 FETCH (UID 4\r\n", None),
            (b"* 1 FETCH (X {99}\r\nab)\r\n", None),
            (b"* 1 EXISTS\r\n", None),
            (b"* 1 FETCH (X \"unterminated)\r\n", None),
            (b"* 1 FETCH (X ~}\r\n)\r\n", None),
            (b"* 1 FETCH (X ~\r\n", None),
            (b"* 1 FETCH (X {}\r\n)\r\n", None),
            (b"* 1 FETCH (X {99999999999999999999}\r\n)\r\n", None),
            (b"* 1 FETCH (X ~{2}\r\nab)\r\n", Some("X=\"ab\"")),
        ];
        for (wire, want) in table {
            let got = parse_fetch(wire).map(|(_, m)| {
                let (k, v) = m.into_iter().next().expect("one item");
                format!("{k}={}", v.canon(false))
            });
            assert_eq!(got.as_deref(), *want, "{}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn bodystructure_extension_data_may_be_cut_short() {
        let full = b"* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL))\r\n";
        let short = b"* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"7BIT\" 3 1))\r\n";
        let other = b"* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"7BIT\" 3 2))\r\n";
        let c = |w: &[u8]| canon_bodystructure(&parse_fetch(w).expect("parse").1["BODYSTRUCTURE"]);
        assert_eq!(c(full), c(short));
        assert_ne!(c(full), c(other));
    }

    #[test]
    fn internaldates() {
        let table: &[(&[u8], Option<i64>)] = &[
            (b"01-Jan-1970 00:00:00 +0000", Some(0)),
            (b" 1-Jan-2024 01:00:00 +0100", Some(1_704_067_200)),
            (b"31-Dec-2023 19:00:00 -0500", Some(1_704_067_200)),
            (b"29-Feb-2024 00:00:00 +0000", Some(1_709_164_800)),
            (b"29-Foo-2024 00:00:00 +0000", None),
            (b"29-Feb-2024 00:00:00", None),
        ];
        for (s, want) in table {
            assert_eq!(
                parse_internaldate(s),
                *want,
                "{}",
                String::from_utf8_lossy(s)
            );
        }
    }

    #[test]
    fn flags_drop_recent() {
        let (_, m) = parse_fetch(b"* 1 FETCH (FLAGS (\\Seen \\Recent $Forwarded \\Answered))\r\n")
            .expect("parse");
        assert_eq!(
            flag_list(&m["FLAGS"], true),
            ["$Forwarded", "\\Answered", "\\Seen"]
        );
        assert_eq!(flag_list(&m["FLAGS"], false), ["\\Answered", "\\Seen"]);
    }

    proptest::proptest! {
        /// Server bytes are untrusted: the parser returns None or a value, never panics.
        #[test]
        fn parser_never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut wire = b"* 1 FETCH ".to_vec();
            wire.extend_from_slice(&tail);
            let _ = parse_fetch(&wire);
        }

        /// Any string sent as a literal canonicalises like the same string quoted.
        #[test]
        fn literal_equals_quoted(text in "[ -~]{0,40}") {
            let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
            let quoted = format!("* 1 FETCH (X \"{escaped}\")\r\n");
            let literal = format!("* 1 FETCH (X {{{}}}\r\n{text})\r\n", text.len());
            let a = parse_fetch(quoted.as_bytes()).map(|(_, m)| m["X"].canon(false));
            let b = parse_fetch(literal.as_bytes()).map(|(_, m)| m["X"].canon(false));
            proptest::prop_assert!(a.is_some());
            proptest::prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut wire = b"* 1 FETCH (X ".to_vec();
        wire.extend(std::iter::repeat_n(b'(', 10_000));
        assert!(parse_fetch(&wire).is_none());
    }

    #[test]
    fn compare_reports_differences() {
        let mut a = Answers::default();
        a.envelope.insert("<1@x>".into(), "(\"a\")".into());
        a.search.insert("SUBJECT t".into(), vec!["<1@x>".into()]);
        let mut b = a.clone();
        assert!(compare("x", &a, "y", &b, 5).is_empty());
        b.envelope.insert("<1@x>".into(), "(\"b\")".into());
        b.search.insert("SUBJECT t".into(), vec![]);
        let d = compare("x", &a, "y", &b, 5);
        assert_eq!(d.len(), 2, "{d:?}");
    }

    #[test]
    fn sort_and_thread_answers_are_compared() {
        let mut a = Answers::default();
        let mut b = Answers::default();
        a.ordered
            .insert("thread_references".into(), "(<1@x> (<2@x>)(<3@x>))".into());
        b.ordered
            .insert("thread_references".into(), "(<1@x> (<3@x>)(<2@x>))".into());
        let d = compare("a", &a, "b", &b, 5);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("thread_references differs from character 9"),
            "{d:?}"
        );
        b.ordered = a.ordered.clone();
        assert!(compare("a", &a, "b", &b, 5).is_empty());
    }
}
