//! Helpers for the parser's test tables: each submodule checks its own
//! part of the grammar as (wire bytes, expected value) and (wire bytes,
//! tag, BAD text) rows with [`good`] and [`bad`].

use chrono::NaiveDate;

use super::{ParseError, parse_command};
use crate::proto::command::*;
pub(super) use SeqNum::{Asterisk as S, Value as V};

pub(super) fn set(rs: &[(SeqNum, SeqNum)]) -> SequenceSet {
    SequenceSet::Ranges(rs.to_vec())
}

pub(super) fn one(n: u32) -> SequenceSet {
    set(&[(V(n), V(n))])
}

pub(super) fn search(uid: bool, criteria: SearchKey) -> CommandBody {
    CommandBody::Search(SearchCommand {
        uid,
        ret: None,
        charset: None,
        criteria,
    })
}

pub(super) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub(super) fn list(reference: &str, patterns: &[&str]) -> ListCommand {
    ListCommand {
        reference: reference.into(),
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub(super) fn body_section(peek: bool, part: &[u32], text: Option<SectionText>) -> FetchAttr {
    FetchAttr::BodySection {
        peek,
        section: Section {
            part: part.to_vec(),
            text,
        },
        partial: None,
    }
}

pub(super) fn fetch(uid: bool, s: SequenceSet, items: Vec<FetchAttr>) -> CommandBody {
    CommandBody::Fetch {
        uid,
        set: s,
        items,
        changed_since: None,
        vanished: false,
    }
}

pub(super) fn msg(data: &[u8]) -> AppendMessage {
    AppendMessage {
        flags: vec![],
        date: None,
        data: AppendData::Bytes(data.to_vec()),
        binary: false,
    }
}

/// Every row parses, with tag `a`, to its command body.
pub(super) fn good(cases: Vec<(&[u8], CommandBody)>) {
    for (wire, want) in cases {
        let got = parse_command(wire);
        assert_eq!(
            got,
            Ok(Command {
                tag: "a".into(),
                body: want
            }),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
}

/// Every row is refused with `BAD`, carrying the tag (if any) and text.
pub(super) fn bad(cases: &[(&[u8], Option<&str>, &str)]) {
    for &(wire, tag, text) in cases {
        assert_eq!(
            parse_command(wire),
            Err(ParseError::Bad {
                tag: tag.map(String::from),
                text: text.into()
            }),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
}
