//! What SORT (RFC 5256 §3, RFC 5957) and THREAD (RFC 5256 §2) know of a
//! message, read from its header block, and the SORT order itself.
//!
//! Owns the meaning of every sort key. Pure: the header comes from the
//! caller (the store's cached digest of common header fields, which holds
//! every field read here), and nothing here touches the store or the
//! clock.
//!
//! - ARRIVAL: INTERNALDATE. SIZE: RFC822.SIZE.
//! - DATE: the sent date (RFC 5256 §2.2): the Date: field in UTC, or the
//!   INTERNALDATE when it is missing or cannot be parsed.
//! - SUBJECT: the base subject (RFC 5256 §2.1, `mime::subject`), from the
//!   RFC 2047 decoded Subject: field.
//! - FROM, TO, CC: the addr-mailbox (local part) of the field's first
//!   address; an absent field or address is the empty string.
//! - DISPLAYFROM, DISPLAYTO (RFC 5957 §3): the first address's decoded
//!   display name if that is not empty, else `mailbox@host`, else the
//!   mailbox alone, else the empty string.
//!
//! Strings compare under i;unicode-casemap (`mime::collate`), as in
//! Dovecot. Messages equal under every criterion keep their mailbox order
//! (sequence numbers ascending, also under REVERSE: RFC 5256 §3 makes the
//! sequence number the tie-breaker, outside the criteria REVERSE applies
//! to).
use std::cmp::Ordering;

use crate::message::tree::{Field, fields};
use crate::mime::{collate::casemap_key, subject::base_subject};
use crate::proto::{SortCriterion, SortKey};

/// The first occurrence of each header field SORT and THREAD read.
#[derive(Default)]
pub(crate) struct Headers<'a> {
    pub date: Option<Field<'a>>,
    pub subject: Option<Field<'a>>,
    pub from: Option<Field<'a>>,
    pub to: Option<Field<'a>>,
    pub cc: Option<Field<'a>>,
    pub message_id: Option<Field<'a>>,
    pub in_reply_to: Option<Field<'a>>,
    pub references: Option<Field<'a>>,
}

impl<'a> Headers<'a> {
    /// Reads a header block (or a digest of its fields) once.
    pub fn of(block: &'a [u8]) -> Headers<'a> {
        let mut h = Headers::default();
        for f in fields(block, 0..block.len()) {
            let slot = match f.name.len() {
                2 if f.is(b"to") => &mut h.to,
                2 if f.is(b"cc") => &mut h.cc,
                4 if f.is(b"date") => &mut h.date,
                4 if f.is(b"from") => &mut h.from,
                7 if f.is(b"subject") => &mut h.subject,
                10 if f.is(b"message-id") => &mut h.message_id,
                10 if f.is(b"references") => &mut h.references,
                11 if f.is(b"in-reply-to") => &mut h.in_reply_to,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(f);
            }
        }
        h
    }

    /// The sent date (RFC 5256 §2.2), seconds since the epoch: the Date:
    /// field, or `internal_date` when there is none that parses.
    pub fn sent_date(&self, internal_date: i64) -> i64 {
        self.date
            .as_ref()
            .and_then(|f| date_time(&String::from_utf8_lossy(f.value)))
            .unwrap_or(internal_date)
    }

    /// The base subject's collation key, and whether the subject marked a
    /// reply or forward.
    pub fn base_subject(&self) -> (String, bool) {
        let decoded = match &self.subject {
            // Nothing to decode: step 1 of the extraction turns the line
            // breaks of a folded value into spaces itself.
            Some(f) if f.value.is_ascii() && memchr::memmem::find(f.value, b"=?").is_none() => {
                String::from_utf8_lossy(f.value).into_owned()
            }
            Some(f) => crate::mime::search_text::decoded_value(f.raw),
            None => String::new(),
        };
        let (base, reply) = base_subject(&decoded);
        (casemap_key(&base), reply)
    }
}

/// An RFC 5322 `date-time` (§3.3, with the obsolete forms of §4.3: no
/// weekday, two- or three-digit years, zone names, no seconds) in seconds
/// since the epoch, UTC. A missing or unknown zone counts as UTC (RFC 5322
/// §4.3 says to treat unknown military zones as `-0000`). `None` unless
/// day, month, year, hour and minute are all there.
fn date_time(v: &str) -> Option<i64> {
    let mut toks = v
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .skip_while(|t| !t.starts_with(|c: char| c.is_ascii_digit()));
    let day: u32 = toks.next()?.parse().ok()?;
    let month = toks.next()?.get(..3)?.to_ascii_lowercase();
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let year_tok = toks.next()?;
    let mut year: i32 = year_tok.parse().ok()?;
    match year_tok.len() {
        0..=2 => year += if year < 50 { 2000 } else { 1900 },
        3 => year += 1900,
        _ => {}
    }
    let mut hms = toks.next()?.split(':');
    let hour: u32 = hms.next()?.parse().ok()?;
    let minute: u32 = hms.next()?.parse().ok()?;
    let second: u32 = match hms.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    let zone = toks.next().unwrap_or("+0000");
    let offset: i64 = match zone.as_bytes() {
        [sign @ (b'+' | b'-'), d @ ..] if d.len() == 4 && d.iter().all(u8::is_ascii_digit) => {
            let n: i64 = zone[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => match zone.to_ascii_uppercase().as_str() {
            "EDT" => -4 * 3600,
            "EST" | "CDT" => -5 * 3600,
            "CST" | "MDT" => -6 * 3600,
            "MST" | "PDT" => -7 * 3600,
            "PST" => -8 * 3600,
            _ => 0,
        },
    };
    let date = chrono::NaiveDate::from_ymd_opt(year, month, day)?;
    let time = chrono::NaiveTime::from_hms_opt(hour, minute, second.min(59))?;
    Some(date.and_time(time).and_utc().timestamp() - offset)
}

/// One message's values for SORT's criteria.
pub(crate) struct Facts<'a> {
    pub headers: Headers<'a>,
    pub internal_date: i64,
    pub size: u64,
}

/// The value of one sort key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Value {
    Num(i64),
    Text(String),
}

/// The values of `criteria` for one message, in order.
pub(crate) fn values(criteria: &[SortCriterion], m: &Facts<'_>) -> Vec<Value> {
    criteria.iter().map(|c| value(c.key, m)).collect()
}

fn value(key: SortKey, m: &Facts<'_>) -> Value {
    let h = &m.headers;
    match key {
        SortKey::Arrival => Value::Num(m.internal_date),
        SortKey::Size => Value::Num(i64::try_from(m.size).unwrap_or(i64::MAX)),
        SortKey::Date => Value::Num(h.sent_date(m.internal_date)),
        SortKey::Subject => Value::Text(h.base_subject().0),
        SortKey::From => Value::Text(mailbox_of(h.from.as_ref())),
        SortKey::To => Value::Text(mailbox_of(h.to.as_ref())),
        SortKey::Cc => Value::Text(mailbox_of(h.cc.as_ref())),
        SortKey::DisplayFrom => Value::Text(display_of(h.from.as_ref())),
        SortKey::DisplayTo => Value::Text(display_of(h.to.as_ref())),
    }
}

/// RFC 5256 §3 FROM/TO/CC: the first address's addr-mailbox.
fn mailbox_of(f: Option<&Field<'_>>) -> String {
    let mailbox = f
        .and_then(|f| crate::mime::first_address(f.value))
        .and_then(|a| a.mailbox)
        .unwrap_or_default();
    casemap_key(&String::from_utf8_lossy(&mailbox))
}

/// RFC 5957 §3: the DISPLAY sort value of the first address.
fn display_of(f: Option<&Field<'_>>) -> String {
    let Some(a) = f.and_then(|f| crate::mime::first_address(f.value)) else {
        return String::new();
    };
    if let Some(name) = a.name.as_deref().filter(|n| !n.is_empty()) {
        // Decoded as a header value is (RFC 2047 words, 8-bit text).
        let mut raw = b"X: ".to_vec();
        raw.extend_from_slice(name);
        raw.extend_from_slice(b"\r\n");
        let decoded = crate::mime::search_text::decoded_value(&raw);
        if !decoded.is_empty() {
            return casemap_key(&decoded);
        }
    }
    let text = match (a.mailbox, a.host) {
        (Some(mut m), Some(h)) => {
            m.push(b'@');
            m.extend_from_slice(&h);
            m
        }
        (Some(m), None) => m,
        _ => Vec::new(),
    };
    casemap_key(&String::from_utf8_lossy(&text))
}

/// Compares two messages' values under `criteria`, then by sequence
/// number.
pub(crate) fn compare(
    criteria: &[SortCriterion],
    a: (u32, &[Value]),
    b: (u32, &[Value]),
) -> Ordering {
    for (c, (x, y)) in criteria.iter().zip(a.1.iter().zip(b.1)) {
        let o = x.cmp(y);
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.0.cmp(&b.0)
}

/// Sorts `(sequence number, values)` pairs by `criteria`.
pub(crate) fn sort(criteria: &[SortCriterion], items: &mut [(u32, Vec<Value>)]) {
    items.sort_unstable_by(|a, b| compare(criteria, (a.0, &a.1), (b.0, &b.1)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn facts(header: &str) -> Facts<'_> {
        Facts {
            headers: Headers::of(header.as_bytes()),
            internal_date: 1_000,
            size: 77,
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    #[test]
    fn key_values() {
        let h = concat!(
            "From: =?UTF-8?Q?J=C3=B6rg?= <Joerg@Example.DE>, other@x\r\n",
            "To: undisclosed-recipients:;\r\n",
            "Cc: <cc-user (comment)@ (c) example.org>\r\n",
            "Subject: Re: [list] =?ISO-8859-1?Q?Gr=FC=DFe?= (fwd)\r\n",
            "Date: Mon, 2 Jan 2023 23:30:00 -0800\r\n",
            "From: second@ignored\r\n",
            "\r\n"
        );
        let m = facts(h);
        let cases = [
            (SortKey::Arrival, Value::Num(1_000)),
            (SortKey::Size, Value::Num(77)),
            // 2023-01-03 07:30:00 UTC.
            (SortKey::Date, Value::Num(1_672_731_000)),
            (SortKey::Subject, text("GRU\u{308}ßE")),
            (SortKey::From, text("JOERG")),
            (SortKey::To, text("UNDISCLOSED-RECIPIENTS")),
            (SortKey::Cc, text("CC-USER")),
            (SortKey::DisplayFrom, text("JO\u{308}RG")),
            (SortKey::DisplayTo, text("UNDISCLOSED-RECIPIENTS")),
        ];
        for (key, want) in cases {
            assert_eq!(value(key, &m), want, "{key:?}");
        }
    }

    #[test]
    fn missing_fields() {
        let m = facts("X-Other: 1\r\n\r\n");
        for key in [
            SortKey::Subject,
            SortKey::From,
            SortKey::To,
            SortKey::Cc,
            SortKey::DisplayFrom,
            SortKey::DisplayTo,
        ] {
            assert_eq!(value(key, &m), text(""), "{key:?}");
        }
        // No Date: the internal date stands in; so does a broken one.
        assert_eq!(value(SortKey::Date, &m), Value::Num(1_000));
        let m = facts("Date: the day after tomorrow\r\n\r\n");
        assert_eq!(value(SortKey::Date, &m), Value::Num(1_000));
    }

    #[test]
    fn sent_dates() {
        let cases = [
            ("Mon, 2 Jan 2023 23:30:00 -0800", Some(1_672_731_000)),
            ("2 Jan 2023 23:30 -0800", Some(1_672_731_000)),
            ("Tue, 3 Jan 2023 07:30:00 +0000 (UTC)", Some(1_672_731_000)),
            ("3 January 2023 09:30:00 +0200", Some(1_672_731_000)),
            ("Tue, 03 Jan 23 02:30:00 EST", Some(1_672_731_000)),
            ("3 Jan 2023 07:30:00", Some(1_672_731_000)),
            ("3 Jan 2023 07:30:00 GMT", Some(1_672_731_000)),
            ("Thu, 1 Jan 1970 00:00:00 +0000", Some(0)),
            ("31 Feb 2023 10:00 +0000", None),
            ("3 Jan 2023", None),
            ("3 Foo 2023 10:00", None),
            ("the day after tomorrow", None),
            ("", None),
        ];
        for (v, want) in cases {
            assert_eq!(date_time(v), want, "{v:?}");
        }
    }

    #[test]
    fn display_values() {
        let cases = [
            ("From: \"Zed\" <a@b.c>\r\n", "ZED"),
            ("From: \"\" <a@b.c>\r\n", "A@B.C"),
            ("From: a@b.c (Comment Name)\r\n", "COMMENT NAME"),
            ("From: <a@b.c>\r\n", "A@B.C"),
            ("From: local-only\r\n", "LOCAL-ONLY"),
            ("From: =?UTF-8?B?w4RyZ2Vy?= <x@y>\r\n", "A\u{308}RGER"),
        ];
        for (h, want) in cases {
            assert_eq!(value(SortKey::DisplayFrom, &facts(h)), text(want), "{h:?}");
        }
    }

    #[test]
    fn ties_keep_mailbox_order_even_reversed() {
        let c = [SortCriterion {
            reverse: true,
            key: SortKey::Size,
        }];
        let mut items = vec![
            (1, vec![Value::Num(5)]),
            (2, vec![Value::Num(9)]),
            (3, vec![Value::Num(5)]),
            (4, vec![Value::Num(9)]),
        ];
        sort(&c, &mut items);
        let seqs: Vec<u32> = items.iter().map(|i| i.0).collect();
        assert_eq!(seqs, [2, 4, 1, 3]);
    }

    fn criterion() -> impl Strategy<Value = SortCriterion> {
        (any::<bool>(), 0usize..9).prop_map(|(reverse, k)| SortCriterion {
            reverse,
            key: [
                SortKey::Arrival,
                SortKey::Cc,
                SortKey::Date,
                SortKey::From,
                SortKey::Size,
                SortKey::Subject,
                SortKey::To,
                SortKey::DisplayFrom,
                SortKey::DisplayTo,
            ][k],
        })
    }

    fn message() -> impl Strategy<Value = (String, i64, u64)> {
        (
            "(Re: |\\[x\\] |Fwd: )?[a-cA-C]{0,2}",
            "[a-c]{0,2}",
            0i64..4,
            0u64..4,
            0i64..3,
        )
            .prop_map(|(subj, from, day, size, idate)| {
                let h = format!(
                    "Subject: {subj}\r\nFrom: {from}@x\r\nTo: \"{from}\" <t@x>\r\nDate: {} Jan 2023 10:00 +0000\r\n\r\n",
                    day + 1
                );
                (h, idate, size)
            })
    }

    proptest! {
        /// SORT is a permutation; the order obeys the first criterion;
        /// REVERSE of a single key reverses all but the ties.
        #[test]
        fn sort_properties(
            crit in proptest::collection::vec(criterion(), 1..4),
            msgs in proptest::collection::vec(message(), 0..30),
        ) {
            let facts: Vec<Facts<'_>> = msgs
                .iter()
                .map(|(h, d, s)| Facts { headers: Headers::of(h.as_bytes()), internal_date: *d, size: *s })
                .collect();
            let mut items: Vec<(u32, Vec<Value>)> = facts
                .iter()
                .enumerate()
                .map(|(i, f)| (i as u32 + 1, values(&crit, f)))
                .collect();
            sort(&crit, &mut items);
            let mut seqs: Vec<u32> = items.iter().map(|i| i.0).collect();
            for w in items.windows(2) {
                prop_assert_ne!(compare(&crit, (w[0].0, &w[0].1), (w[1].0, &w[1].1)), Ordering::Greater);
                let o = w[0].1[0].cmp(&w[1].1[0]);
                let ok = if crit[0].reverse { o != Ordering::Less } else { o != Ordering::Greater };
                prop_assert!(ok);
            }
            seqs.sort_unstable();
            prop_assert_eq!(seqs, (1..=msgs.len() as u32).collect::<Vec<_>>());

            // One key, then the same key reversed: the groups of equal
            // values come in the opposite order, each still ascending.
            let one = [SortCriterion { reverse: false, key: crit[0].key }];
            let rev = [SortCriterion { reverse: true, key: crit[0].key }];
            let mut a: Vec<(u32, Vec<Value>)> = facts.iter().enumerate().map(|(i, f)| (i as u32 + 1, values(&one, f))).collect();
            let mut b = a.clone();
            sort(&one, &mut a);
            sort(&rev, &mut b);
            let groups = |v: &[(u32, Vec<Value>)]| {
                let mut g: Vec<Vec<u32>> = Vec::new();
                for (k, (s, val)) in v.iter().enumerate() {
                    if k > 0 && v[k - 1].1 == *val {
                        if let Some(last) = g.last_mut() { last.push(*s); }
                    } else {
                        g.push(vec![*s]);
                    }
                }
                g
            };
            let mut ga = groups(&a);
            ga.reverse();
            prop_assert_eq!(ga, groups(&b));
        }
    }
}
