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
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};

use crate::flags::sys;
use crate::mime::search_text::{self, Needle};
use crate::mime::tree::{self, Part};
use crate::proto::{SearchKey, SeqNum, SequenceSet};
use crate::store::MessageMeta;

/// One candidate message.
pub struct SearchTarget<'a> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    /// \Recent in this session.
    pub recent: bool,
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

/// The message content, fetched and parsed on first need.
struct Content {
    data: Arc<Vec<u8>>,
    root: Part,
}

struct Ctx<'a, 'b> {
    t: &'a SearchTarget<'a>,
    env: &'a SearchEnv<'a>,
    load: &'b mut dyn FnMut() -> Option<Arc<Vec<u8>>>,
    /// `None`: not tried yet; `Some(None)`: the message vanished.
    loaded: Option<Option<Content>>,
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
    fn content(&mut self) -> Option<&Content> {
        if self.loaded.is_none() {
            let c = (self.load)().map(|data| {
                let root = tree::parse_message(&data);
                Content { data, root }
            });
            self.loaded = Some(c);
        }
        self.loaded.as_ref().and_then(Option::as_ref)
    }

    fn flag(&self, bit: u8) -> bool {
        self.t.meta.flags.has(bit)
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
            search_text::first_value(&c.data, c.root.header.clone(), "date").and_then(sent_date);
        from_header.or_else(|| self.internal_date())
    }

    fn size(&mut self) -> Option<u64> {
        if let Some(s) = self.t.meta.size {
            return Some(s);
        }
        self.content().map(|c| crate::mime::crlf_size(&c.data))
    }

    fn header(&mut self, name: &str, value: &str) -> bool {
        let needle = Needle::new(value);
        self.content().is_some_and(|c| {
            search_text::header_matches(&c.data, c.root.header.clone(), name, &needle)
        })
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
            K::Bcc(v) => self.header("bcc", v),
            K::Cc(v) => self.header("cc", v),
            K::From(v) => self.header("from", v),
            K::To(v) => self.header("to", v),
            K::Subject(v) => self.header("subject", v),
            K::Header(name, v) => self.header(name, v),
            K::Body(v) => {
                let needle = Needle::new(v);
                self.content()
                    .is_some_and(|c| search_text::body_matches(&c.data, &c.root, &needle))
            }
            K::Text(v) => {
                let needle = Needle::new(v);
                self.content()
                    .is_some_and(|c| search_text::text_matches(&c.data, &c.root, &needle))
            }
            K::ModSeq(n) => t.meta.modseq >= *n,
            K::Older(secs) => env.now - t.meta.internal_date > i64::from(*secs),
            K::Younger(secs) => env.now - t.meta.internal_date <= i64::from(*secs),
        }
    }
}

#[cfg(test)]
mod tests {}
