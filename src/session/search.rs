//! SEARCH evaluation for one message (RFC 9051 §6.4.4, RFC 7162 MODSEQ,
//! RFC 5032 OLDER/YOUNGER, RFC 5182 `$`).
//!
//! Owns the semantics of every [`SearchKey`]; it never touches the store:
//! the message's bytes come through the caller's `load` closure, which is
//! called at most once per message and only when a key needs the content.
//! Cheap keys (flags, numbers, dates, sizes known from the index) are tried
//! before content keys inside AND/OR so that most messages are decided
//! without reading their file. The MIME tree is parsed at most once per
//! call, over the stored bytes as they are (see `mime::search_text`).
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};

use crate::flags::sys;
use crate::message::tree::{self, Part};
use crate::mime::search_text::{self, Needle};
use crate::proto::{SearchKey, SeqNum, SequenceSet};
use crate::store::{MessageMeta, ObjectInfo};

/// One candidate message.
pub struct SearchTarget<'a> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    /// \Recent in this session.
    pub recent: bool,
    /// EMAILID and save date, looked up when a key needs them
    /// ([`uses_object_info`]).
    pub object: Option<&'a ObjectInfo>,
}

/// Whether deciding `key` needs the messages' EMAILID or save date.
pub fn uses_object_info(key: &SearchKey) -> bool {
    use SearchKey::*;
    match key {
        And(v) => v.iter().any(uses_object_info),
        Or(a, b) => uses_object_info(a) || uses_object_info(b),
        Not(k) => uses_object_info(k),
        SavedBefore(_) | SavedOn(_) | SavedSince(_) | EmailId(_) => true,
        _ => false,
    }
}

/// What the keys are evaluated against besides the message itself.
pub struct SearchEnv<'a> {
    /// Number of messages (what `*` means in a sequence set).
    pub max_seq: u32,
    /// Highest UID (what `*` means in a UID set).
    pub max_uid: u32,
    /// UIDs of the SEARCHRES saved result (`$`), ascending.
    pub saved: &'a [u32],
    /// Now, seconds since the epoch (OLDER/YOUNGER).
    pub now: i64,
    /// The server's zone for INTERNALDATE date comparisons.
    pub zone: chrono::FixedOffset,
}

/// Decides one message. `load` fetches the raw message and is called only
/// when a key needs the header or body (cheap keys are tried first); it
/// returns `None` if the message vanished, which makes content keys false.
pub fn matches(
    key: &SearchKey,
    t: &SearchTarget<'_>,
    env: &SearchEnv<'_>,
    load: &mut dyn FnMut() -> Option<Arc<Vec<u8>>>,
) -> bool {
    let mut ctx = Ctx {
        t,
        env,
        load,
        loaded: None,
    };
    ctx.eval(key)
}

/// The message content, fetched on first need. The header is located at
/// once (cheap); the MIME tree, which scans the whole body, only when a
/// BODY or TEXT key asks for it.
struct Content {
    data: Arc<Vec<u8>>,
    header: Range<usize>,
    root: Option<Part>,
}

impl Content {
    /// The bytes and the MIME tree, parsed on first use.
    fn parts(&mut self) -> (&[u8], &Part) {
        let root = self
            .root
            .get_or_insert_with(|| tree::parse_message(&self.data));
        (&self.data, root)
    }
}

struct Ctx<'a, 'b> {
    t: &'a SearchTarget<'a>,
    env: &'a SearchEnv<'a>,
    load: &'b mut dyn FnMut() -> Option<Arc<Vec<u8>>>,
    /// `None`: not tried yet; `Some(None)`: the message vanished.
    loaded: Option<Option<Content>>,
}

/// Whether deciding `key` may need more of the message than its header
/// block (BODY/TEXT, or a size not known from the metadata). When not, the
/// caller's `load` may return just the header, which is most of the cost
/// saved on header searches over big mailboxes.
pub fn needs_whole_message(key: &SearchKey) -> bool {
    use SearchKey::*;
    match key {
        And(v) => v.iter().any(needs_whole_message),
        Or(a, b) => needs_whole_message(a) || needs_whole_message(b),
        Not(k) => needs_whole_message(k),
        Larger(_) | Smaller(_) | Body(_) | Text(_) => true,
        _ => false,
    }
}

/// How expensive a key is to decide: 0 needs only the metadata, 1 may need
/// the file for its size, 2 needs the header, 3 the body.
fn cost(key: &SearchKey) -> u8 {
    use SearchKey::*;
    match key {
        And(v) => v.iter().map(cost).max().unwrap_or(0),
        Or(a, b) => cost(a).max(cost(b)),
        Not(k) => cost(k),
        Larger(_) | Smaller(_) => 1,
        SentBefore(_) | SentOn(_) | SentSince(_) | Bcc(_) | Cc(_) | From(_) | To(_)
        | Subject(_) | Header(..) => 2,
        Body(_) | Text(_) => 3,
        _ => 0,
    }
}

/// Is `n` in the set, with `*` standing for `largest`? `$` is resolved
/// through the saved UIDs by the caller.
fn in_ranges(ranges: &[(SeqNum, SeqNum)], n: u32, largest: u32) -> bool {
    let v = |s: SeqNum| match s {
        SeqNum::Value(x) => x,
        SeqNum::Asterisk => largest,
    };
    ranges.iter().any(|&(a, b)| {
        let (a, b) = (v(a), v(b));
        a.min(b) <= n && n <= a.max(b)
    })
}

/// The date part of an RFC 5322 Date: value as written, its zone ignored
/// (RFC 9051 §6.4.4 SENTBEFORE). Tolerates a missing weekday and two-digit
/// years (RFC 5322 §4.3).
fn sent_date(v: &[u8]) -> Option<NaiveDate> {
    let s = String::from_utf8_lossy(v);
    let mut toks = s
        .split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .filter(|t| !t.is_empty())
        .skip_while(|t| !t.bytes().all(|b| b.is_ascii_digit()));
    let day: u32 = toks.next()?.parse().ok()?;
    let month = toks.next()?.to_ascii_lowercase();
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| month.starts_with(m))? as u32 + 1;
    let year_tok = toks.next()?;
    let mut year: i32 = year_tok.parse().ok()?;
    if year_tok.len() <= 2 {
        year += if year < 50 { 2000 } else { 1900 };
    } else if year_tok.len() == 3 {
        year += 1900;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

impl Ctx<'_, '_> {
    fn content(&mut self) -> Option<&mut Content> {
        if self.loaded.is_none() {
            let c = (self.load)().map(|data| {
                let header = tree::split_header(&data, 0..data.len()).0;
                Content {
                    data,
                    header,
                    root: None,
                }
            });
            self.loaded = Some(c);
        }
        self.loaded.as_mut().and_then(Option::as_mut)
    }

    fn flag(&self, bit: u8) -> bool {
        self.t.meta.flags.has(bit)
    }

    /// The save date's day in the server's zone; `None` when unknown.
    fn saved(&self) -> Option<NaiveDate> {
        let secs = self.t.object?.save_date?;
        DateTime::from_timestamp(secs, 0).map(|d| d.with_timezone(&self.env.zone).date_naive())
    }

    fn internal_date(&self) -> Option<NaiveDate> {
        DateTime::from_timestamp(self.t.meta.internal_date, 0)
            .map(|d| d.with_timezone(&self.env.zone).date_naive())
    }

    /// The Date: header's date; the internal date when it is missing or
    /// unparsable, so such messages still sort into date ranges.
    fn sent(&mut self) -> Option<NaiveDate> {
        let c = self.content()?;
        let from_header =
            search_text::first_value(&c.data, c.header.clone(), "date").and_then(sent_date);
        from_header.or_else(|| self.internal_date())
    }

    fn size(&mut self) -> Option<u64> {
        if let Some(s) = self.t.meta.size {
            return Some(s);
        }
        self.content().map(|c| crate::message::crlf_size(&c.data))
    }

    fn header(&mut self, name: &str, value: &str) -> bool {
        let needle = Needle::cached(value);
        self.content()
            .is_some_and(|c| search_text::header_matches(&c.data, c.header.clone(), name, &needle))
    }

    /// FROM/TO/CC/BCC: the field's addresses, not its raw text.
    fn address(&mut self, name: &str, value: &str) -> bool {
        let needle = Needle::cached(value);
        self.content()
            .is_some_and(|c| search_text::address_matches(&c.data, c.header.clone(), name, &needle))
    }

    /// Evaluates children cheapest first; `all`: AND semantics, else OR.
    fn combine<'k>(
        &mut self,
        keys: impl Iterator<Item = &'k SearchKey> + Clone,
        all: bool,
    ) -> bool {
        for level in 0..=3 {
            for k in keys.clone().filter(|k| cost(k) == level) {
                if self.eval(k) != all {
                    return !all;
                }
            }
        }
        all
    }

    fn eval(&mut self, key: &SearchKey) -> bool {
        use SearchKey as K;
        let t = self.t;
        let env = self.env;
        match key {
            K::All => true,
            K::And(keys) => self.combine(keys.iter(), true),
            K::Or(a, b) => self.combine([a.as_ref(), b.as_ref()].into_iter(), false),
            K::Not(k) => !self.eval(k),
            K::SequenceSet(SequenceSet::Ranges(r)) => in_ranges(r, t.seq, env.max_seq),
            K::Uid(SequenceSet::Ranges(r)) => in_ranges(r, t.meta.uid, env.max_uid),
            K::SequenceSet(SequenceSet::Saved) | K::Uid(SequenceSet::Saved) => {
                env.saved.binary_search(&t.meta.uid).is_ok()
            }
            K::Answered => self.flag(sys::ANSWERED),
            K::Deleted => self.flag(sys::DELETED),
            K::Draft => self.flag(sys::DRAFT),
            K::Flagged => self.flag(sys::FLAGGED),
            K::Seen => self.flag(sys::SEEN),
            K::Unanswered => !self.flag(sys::ANSWERED),
            K::Undeleted => !self.flag(sys::DELETED),
            K::Undraft => !self.flag(sys::DRAFT),
            K::Unflagged => !self.flag(sys::FLAGGED),
            K::Unseen => !self.flag(sys::SEEN),
            K::Keyword(k) => t.meta.flags.has_keyword(k),
            K::Unkeyword(k) => !t.meta.flags.has_keyword(k),
            K::Recent => t.recent,
            K::New => t.recent && !self.flag(sys::SEEN),
            K::Old => !t.recent,
            K::Before(d) => self.internal_date().is_some_and(|x| x < *d),
            K::On(d) => self.internal_date().is_some_and(|x| x == *d),
            K::Since(d) => self.internal_date().is_some_and(|x| x >= *d),
            K::SentBefore(d) => self.sent().is_some_and(|x| x < *d),
            K::SentOn(d) => self.sent().is_some_and(|x| x == *d),
            K::SentSince(d) => self.sent().is_some_and(|x| x >= *d),
            K::Larger(n) => self.size().is_some_and(|s| s > *n),
            K::Smaller(n) => self.size().is_some_and(|s| s < *n),
            K::Bcc(v) => self.address("bcc", v),
            K::Cc(v) => self.address("cc", v),
            K::From(v) => self.address("from", v),
            K::To(v) => self.address("to", v),
            K::Subject(v) => self.header("subject", v),
            K::Header(name, v) => self.header(name, v),
            K::Body(v) => {
                let needle = Needle::cached(v);
                self.content().is_some_and(|c| {
                    let (data, root) = c.parts();
                    search_text::body_matches(data, root, &needle)
                })
            }
            K::Text(v) => {
                let needle = Needle::cached(v);
                self.content().is_some_and(|c| {
                    let (data, root) = c.parts();
                    search_text::text_matches(data, root, &needle)
                })
            }
            K::ModSeq(n) => t.meta.modseq >= *n,
            K::Older(secs) => env.now.saturating_sub(t.meta.internal_date) > i64::from(*secs),
            K::Younger(secs) => env.now.saturating_sub(t.meta.internal_date) <= i64::from(*secs),
            // RFC 8514 §4: a message without a save date matches none of these.
            K::SavedBefore(d) => self.saved().is_some_and(|x| x < *d),
            K::SavedOn(d) => self.saved().is_some_and(|x| x == *d),
            K::SavedSince(d) => self.saved().is_some_and(|x| x >= *d),
            // Every mailbox here keeps save dates (from file names).
            K::SaveDateSupported => true,
            K::EmailId(id) => t.object.is_some_and(|o| o.email_id == *id),
            // THREADID is not computed (NIL in FETCH): no message has one.
            K::ThreadId(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use chrono::FixedOffset;

    use super::*;
    use crate::flags::{Flag, Flags};

    /// LF-only, as Postfix stores it: multipart with a QP UTF-8 part, a
    /// Latin-1 part, a base64 text part and a base64 binary attachment.
    const MSG: &str = concat!(
        "From: =?ISO-8859-1?Q?J=F6rg?= <joerg@example.de>\n",
        "To: Bob Builder <bob@example.net>, carol@example.org\n",
        "Cc: dave@example.com\n",
        "Bcc: hidden@example.com\n",
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?= aus\n",
        " Berlin\n",
        "Date: Mon, 2 Jan 2023 23:30:00 -0800\n",
        "X-Spam-Flag: NO\n",
        "Content-Type: multipart/mixed; boundary=\"sep\"\n",
        "\n",
        "--sep\n",
        "Content-Type: text/plain; charset=utf-8\n",
        "Content-Transfer-Encoding: quoted-printable\n",
        "\n",
        "Meet at the Caf=C3=A9 tomor=\n",
        "row.\n",
        "--sep\n",
        "Content-Type: text/plain; charset=iso-8859-1\n",
        "Content-Transfer-Encoding: 8bit\n",
        "\n",
        "Hauptstra\u{df}e\n",
        "--sep\n",
        "Content-Type: text/html; charset=us-ascii\n",
        "Content-Transfer-Encoding: base64\n",
        "\n",
        "PGI+SGlkZGVuV29yZDwvYj4=\n",
        "--sep\n",
        "Content-Type: application/octet-stream\n",
        "Content-Transfer-Encoding: base64\n",
        "\n",
        "c2VjcmV0d29yZA==\n",
        "--sep--\n",
    );

    /// MSG with the Latin-1 part really in Latin-1 (the literal above is
    /// UTF-8 source text).
    fn msg_bytes() -> Vec<u8> {
        let s = MSG.replace("Hauptstra\u{df}e", "Hauptstra\u{fffd}e");
        let mut v = s.into_bytes();
        let pos = memchr::memmem::find(&v, "\u{fffd}".as_bytes()).expect("marker");
        v.splice(pos..pos + 3, [0xdfu8]);
        v
    }

    fn meta() -> MessageMeta {
        let mut flags = Flags::new();
        flags.insert(&Flag::Seen);
        flags.insert(&Flag::Flagged);
        flags.insert(&Flag::Keyword("$Forwarded".into()));
        MessageMeta {
            uid: 42,
            flags,
            // 2023-01-03 06:30:00 UTC
            internal_date: 1_672_727_400,
            size: None,
            modseq: 7,
        }
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    fn seqs(r: &[(SeqNum, SeqNum)]) -> SequenceSet {
        SequenceSet::Ranges(r.to_vec())
    }

    fn run(key: &SearchKey, recent: bool, zone_hours: i32, loads: &Cell<u32>) -> bool {
        let data = Arc::new(msg_bytes());
        let m = meta();
        let t = SearchTarget {
            seq: 5,
            meta: &m,
            recent,
            object: None,
        };
        let env = SearchEnv {
            max_seq: 10,
            max_uid: 100,
            saved: &[3, 42, 77],
            now: 1_672_727_400 + 3600,
            zone: FixedOffset::east_opt(zone_hours * 3600).expect("zone"),
        };
        let mut load = || {
            loads.set(loads.get() + 1);
            Some(data.clone())
        };
        matches(key, &t, &env, &mut load)
    }

    /// FROM/TO/CC/BCC look at the addresses as the ENVELOPE parses them
    /// (RFC 9051 §6.4.4), not at the header's spelling: comments inside an
    /// address, routes and quoting do not get in the way, and comments are
    /// not searched.
    #[test]
    fn address_keys_match_the_envelope_addresses() {
        use crate::mime::search_text::{Needle, address_matches};
        let msg = concat!(
            "From: <user-from (comment)@ (comment) domain.org>\r\n",
            "To: \"Doe, John\" <john (x) . doe @ example.com>, =?UTF-8?Q?J=C3=B6rg?= <j@x.de>\r\n",
            "Cc: team: a@b.c, (note) d@e.f;\r\n",
            "Bcc: <@route.example:hidden@example.net>\r\n",
            "\r\n",
            "body\r\n"
        )
        .as_bytes();
        let header = 0..memchr::memmem::find(msg, b"\r\n\r\n").expect("header") + 4;
        let m = |field: &str, what: &str| {
            address_matches(msg, header.clone(), field, &Needle::new(what))
        };
        assert!(m("from", "user-from@domain.org"));
        assert!(m("from", "USER-FROM@DOMAIN"));
        assert!(!m("from", "comment"), "comments are not in the envelope");
        assert!(m("to", "john.doe@example.com"));
        assert!(m("to", "Doe, John"));
        assert!(m("to", "jörg <j@x.de>"), "names are decoded");
        assert!(!m("to", "(x)"));
        assert!(m("cc", "team"));
        assert!(m("cc", "d@e.f"));
        // A comment beside an address is the name the ENVELOPE shows for
        // it (as in Dovecot), so it is searched as a name.
        assert!(m("cc", "note <d@e.f>"));
        assert!(m("bcc", "hidden@example.net"));
        assert!(!m("bcc", "route.example"), "routes are not searched");
        assert!(
            m("from", ""),
            "an empty string matches the field's presence"
        );
        assert!(!m("reply-to", ""));
    }

    #[test]
    fn every_key() {
        use SearchKey as K;
        use SeqNum::{Asterisk, Value};
        let s = |x: &str| x.to_string();
        let cases: Vec<(SearchKey, bool)> = vec![
            (K::All, true),
            (K::SequenceSet(seqs(&[(Value(5), Value(5))])), true),
            (
                K::SequenceSet(seqs(&[(Value(1), Value(4)), (Value(6), Asterisk)])),
                false,
            ),
            (K::SequenceSet(seqs(&[(Asterisk, Value(5))])), true),
            (K::SequenceSet(seqs(&[(Value(11), Asterisk)])), false),
            (K::Uid(seqs(&[(Value(40), Value(45))])), true),
            (K::Uid(seqs(&[(Value(200), Asterisk)])), false),
            (K::Uid(seqs(&[(Asterisk, Asterisk)])), false),
            (K::Uid(SequenceSet::Saved), true),
            (K::SequenceSet(SequenceSet::Saved), true),
            (K::Answered, false),
            (K::Unanswered, true),
            (K::Deleted, false),
            (K::Undeleted, true),
            (K::Draft, false),
            (K::Undraft, true),
            (K::Flagged, true),
            (K::Unflagged, false),
            (K::Seen, true),
            (K::Unseen, false),
            (K::Keyword(s("$forwarded")), true),
            (K::Keyword(s("Junk")), false),
            (K::Unkeyword(s("Junk")), true),
            (K::Unkeyword(s("$Forwarded")), false),
            (K::Recent, false),
            (K::New, false),
            (K::Old, true),
            // Internal date 2023-01-03 06:30 UTC.
            (K::On(d(2023, 1, 3)), true),
            (K::Before(d(2023, 1, 3)), false),
            (K::Before(d(2023, 1, 4)), true),
            (K::Since(d(2023, 1, 3)), true),
            (K::Since(d(2023, 1, 4)), false),
            // Date: header's own date, zone ignored (it is Jan 3 in UTC).
            (K::SentOn(d(2023, 1, 2)), true),
            (K::SentBefore(d(2023, 1, 2)), false),
            (K::SentBefore(d(2023, 1, 3)), true),
            (K::SentSince(d(2023, 1, 2)), true),
            (K::SentSince(d(2023, 1, 3)), false),
            (K::Larger(100), true),
            (K::Larger(100_000), false),
            (K::Smaller(100_000), true),
            (K::Smaller(100), false),
            (K::From(s("jörg")), true),
            (K::From(s("JOERG@EXAMPLE")), true),
            (K::From(s("bob")), false),
            (K::To(s("builder")), true),
            (K::To(s("carol@example.org")), true),
            (K::Cc(s("dave")), true),
            (K::Bcc(s("hidden")), true),
            (K::Bcc(s("dave")), false),
            (K::Subject(s("GRÜSSE")), false),
            (K::Subject(s("grüße aus berlin")), true),
            (K::Subject(s("aus Berlin")), true),
            (K::Header(s("x-spam-flag"), s("no")), true),
            (K::Header(s("X-Spam-Flag"), s("")), true),
            (K::Header(s("X-Absent"), s("")), false),
            (K::Header(s("subject"), s("Grüße")), true),
            (K::Body(s("café tomorrow")), true),
            (K::Body(s("CAFÉ")), true),
            (K::Body(s("hauptstraße")), true),
            (K::Body(s("HAUPTSTRASSE")), false),
            (K::Body(s("hiddenword")), true),
            (K::Body(s("secretword")), false),
            (K::Body(s("berlin")), false),
            (K::Body(s("")), true),
            (K::Text(s("berlin")), true),
            (K::Text(s("grüße")), true),
            (K::Text(s("x-spam-flag")), true),
            (K::Text(s("tomorrow")), true),
            (K::Text(s("nowhere")), false),
            (K::ModSeq(7), true),
            (K::ModSeq(8), false),
            (K::Older(3599), true),
            (K::Older(3600), false),
            (K::Younger(3600), true),
            (K::Younger(3599), false),
            (K::Not(Box::new(K::Seen)), false),
            (K::Or(Box::new(K::Deleted), Box::new(K::Flagged)), true),
            (K::Or(Box::new(K::Deleted), Box::new(K::Draft)), false),
            (K::And(vec![K::Seen, K::Body(s("café"))]), true),
            (K::And(vec![K::Seen, K::Body(s("nothing"))]), false),
            (K::And(vec![]), true),
        ];
        for (key, want) in cases {
            let loads = Cell::new(0);
            assert_eq!(run(&key, false, 0, &loads), want, "{key:?}");
            assert!(loads.get() <= 1, "{key:?} loaded {} times", loads.get());
            if cost(&key) == 0 {
                assert_eq!(loads.get(), 0, "{key:?} needed no content");
            }
        }
    }

    #[test]
    fn recent_new_old() {
        let loads = Cell::new(0);
        assert!(run(&SearchKey::Recent, true, 0, &loads));
        assert!(!run(&SearchKey::Old, true, 0, &loads));
        // Seen, so not NEW even though recent.
        assert!(!run(&SearchKey::New, true, 0, &loads));
    }

    #[test]
    fn internal_date_uses_server_zone() {
        let loads = Cell::new(0);
        // 06:30 UTC is still Jan 2 at UTC-8.
        assert!(run(&SearchKey::On(d(2023, 1, 2)), false, -8, &loads));
        assert!(!run(&SearchKey::On(d(2023, 1, 3)), false, -8, &loads));
    }

    #[test]
    fn cheap_keys_first_and_one_load() {
        let s = |x: &str| x.to_string();
        let loads = Cell::new(0);
        // A failing flag test decides the AND before the body is needed.
        let key = SearchKey::And(vec![SearchKey::Body(s("café")), SearchKey::Deleted]);
        assert!(!run(&key, false, 0, &loads));
        assert_eq!(loads.get(), 0);
        // Several content keys share one load.
        let key = SearchKey::And(vec![
            SearchKey::Body(s("café")),
            SearchKey::Subject(s("berlin")),
            SearchKey::Larger(10),
            SearchKey::SentOn(d(2023, 1, 2)),
        ]);
        assert!(run(&key, false, 0, &loads));
        assert_eq!(loads.get(), 1);
        // A passing flag in an OR needs no content either.
        loads.set(0);
        let key = SearchKey::Or(Box::new(SearchKey::Text(s("x"))), Box::new(SearchKey::Seen));
        assert!(run(&key, false, 0, &loads));
        assert_eq!(loads.get(), 0);
    }

    /// EMAILID and the save-date keys decide from the object info alone;
    /// without a save date none of SAVEDBEFORE/ON/SINCE matches (RFC 8514
    /// §4), and THREADID (not computed) matches nothing.
    #[test]
    fn object_keys_use_the_object_info() {
        let m = meta();
        let env = SearchEnv {
            max_seq: 1,
            max_uid: 42,
            saved: &[],
            now: 0,
            zone: FixedOffset::east_opt(3600).expect("zone"),
        };
        let mut load = || -> Option<Arc<Vec<u8>>> { panic!("no content needed") };
        // 2023-11-14 23:30:00 UTC: the 15th in the server's zone (+01:00).
        let info = ObjectInfo {
            email_id: "abc".into(),
            save_date: Some(1_700_004_600),
        };
        let with = |object| SearchTarget {
            seq: 1,
            meta: &m,
            recent: false,
            object,
        };
        let t = with(Some(&info));
        let mut yes = |k: SearchKey, t: &SearchTarget| matches(&k, t, &env, &mut load);
        assert!(yes(SearchKey::EmailId("abc".into()), &t));
        assert!(!yes(SearchKey::EmailId("abd".into()), &t));
        assert!(yes(SearchKey::SavedOn(d(2023, 11, 15)), &t));
        assert!(yes(SearchKey::SavedSince(d(2023, 11, 15)), &t));
        assert!(!yes(SearchKey::SavedBefore(d(2023, 11, 15)), &t));
        assert!(yes(SearchKey::SavedBefore(d(2023, 11, 16)), &t));
        assert!(yes(SearchKey::SaveDateSupported, &t));
        assert!(!yes(SearchKey::ThreadId("abc".into()), &t));
        let unknown = ObjectInfo {
            email_id: "abc".into(),
            save_date: None,
        };
        let t = with(Some(&unknown));
        for k in [
            SearchKey::SavedOn(d(2023, 11, 15)),
            SearchKey::SavedSince(d(1990, 1, 1)),
            SearchKey::SavedBefore(d(2100, 1, 1)),
        ] {
            assert!(!yes(k, &t));
        }
        assert!(uses_object_info(&SearchKey::Not(Box::new(
            SearchKey::EmailId("x".into())
        ))));
        assert!(!uses_object_info(&SearchKey::ThreadId("x".into())));
    }

    #[test]
    fn vanished_message_fails_content_keys() {
        let m = meta();
        let t = SearchTarget {
            seq: 1,
            meta: &m,
            recent: false,
            object: None,
        };
        let env = SearchEnv {
            max_seq: 1,
            max_uid: 42,
            saved: &[],
            now: 0,
            zone: FixedOffset::east_opt(0).expect("zone"),
        };
        let mut calls = 0;
        let mut load = || {
            calls += 1;
            None
        };
        let key = SearchKey::Or(
            Box::new(SearchKey::Body("a".into())),
            Box::new(SearchKey::Or(
                Box::new(SearchKey::Larger(0)),
                Box::new(SearchKey::SentBefore(d(2100, 1, 1))),
            )),
        );
        assert!(!matches(&key, &t, &env, &mut load));
        assert_eq!(calls, 1);
        assert!(matches(
            &SearchKey::Not(Box::new(key)),
            &t,
            &env,
            &mut || None
        ));
    }

    #[test]
    fn size_from_meta_needs_no_load() {
        let mut m = meta();
        m.size = Some(500);
        let t = SearchTarget {
            seq: 1,
            meta: &m,
            recent: false,
            object: None,
        };
        let env = SearchEnv {
            max_seq: 1,
            max_uid: 42,
            saved: &[],
            now: 0,
            zone: FixedOffset::east_opt(0).expect("zone"),
        };
        let mut load = || -> Option<Arc<Vec<u8>>> { panic!("size is known") };
        assert!(matches(&SearchKey::Larger(499), &t, &env, &mut load));
        assert!(!matches(&SearchKey::Smaller(500), &t, &env, &mut load));
    }

    #[test]
    fn sent_dates() {
        let cases = [
            ("Mon, 2 Jan 2023 23:30:00 -0800", Some(d(2023, 1, 2))),
            ("2 Jan 2023 10:00 +0000", Some(d(2023, 1, 2))),
            ("Tue, 15 Nov 94 08:12:31 GMT", Some(d(1994, 11, 15))),
            ("Sat, 01 Jan 05 00:00:00 GMT", Some(d(2005, 1, 1))),
            ("31 February 2023", None),
            ("garbage", None),
            ("", None),
        ];
        for (v, want) in cases {
            assert_eq!(sent_date(v.as_bytes()), want, "{v:?}");
        }
    }

    fn env0() -> SearchEnv<'static> {
        SearchEnv {
            max_seq: 1,
            max_uid: 1,
            saved: &[],
            now: 0,
            zone: FixedOffset::east_opt(0).expect("zone"),
        }
    }

    proptest::proptest! {
        #[test]
        fn content_keys_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), needle in "\\PC{0,6}") {
            let m = meta();
            let t = SearchTarget { seq: 1, meta: &m, recent: false, object: None };
            let data = Arc::new(raw);
            for key in [
                SearchKey::Body(needle.clone()),
                SearchKey::Text(needle.clone()),
                SearchKey::From(needle.clone()),
                SearchKey::Header("content-type".into(), needle.clone()),
                SearchKey::SentOn(d(2023, 1, 2)),
                SearchKey::Larger(10),
            ] {
                let mut load = || Some(data.clone());
                let _ = matches(&key, &t, &env0(), &mut load);
            }
        }

        #[test]
        fn body_finds_what_is_there(
            body in "[a-zA-Z \\n]{0,300}",
            start in 0usize..300,
            len in 1usize..20,
        ) {
            let start = start.min(body.len());
            let end = (start + len).min(body.len());
            let needle = body[start..end].to_uppercase();
            let raw = Arc::new(format!("Subject: p\n\n{body}").into_bytes());
            let m = meta();
            let t = SearchTarget { seq: 1, meta: &m, recent: false, object: None };
            let mut load = || Some(raw.clone());
            proptest::prop_assert!(matches(&SearchKey::Body(needle), &t, &env0(), &mut load));
        }
    }
}
