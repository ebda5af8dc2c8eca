//! ESEARCH responses as a type, and their one encoder: RFC 4731 §3.1
//! (MIN MAX ALL COUNT), RFC 5267 §3 and §5 (ALL in sort order, PARTIAL,
//! ADDTO, REMOVEFROM), RFC 9394 §4 (negative PARTIAL ranges).
//!
//! The session decides what an ESEARCH says; this module owns how its
//! items are spelt (the response itself is one of `data::Data`'s). Sets whose order means something (an extended SORT's results,
//! ADDTO/REMOVEFROM at a non-zero position) are written in the order
//! given with only ascending runs compressed (RFC 5267 §3.2); the others
//! as plain sets. No I/O, never fails: it appends to the caller's buffer.

use std::io::Write;

use super::command::PartialRange;
use super::encode;

/// `* ESEARCH (TAG "tag") [UID] items...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Esearch<'a> {
    /// The tag of the searching command (for ADDTO/REMOVEFROM, of the
    /// command that asked for UPDATE).
    pub tag: &'a str,
    /// Numbers are UIDs.
    pub uid: bool,
    pub items: Vec<Item>,
}

/// One search-return-data item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Min(u32),
    Max(u32),
    /// `ordered`: keep the order given (ESORT); else a set.
    All {
        nums: Vec<u32>,
        ordered: bool,
    },
    Count(usize),
    /// The range as requested, and the results in it (`NIL` if none).
    Partial {
        range: PartialRange,
        nums: Vec<u32>,
        ordered: bool,
    },
    AddTo(Vec<Run>),
    RemoveFrom(Vec<Run>),
    /// RFC 7162 §3.1.5: the highest modseq of the messages found, when the
    /// search used MODSEQ.
    ModSeq(u64),
}

/// A context position and the results inserted or removed there (RFC 5267
/// §4.3.3-4). Position 0 (SEARCH contexts only) means "wherever they
/// belong in mailbox order": the set is then written as a plain set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub position: u32,
    pub nums: Vec<u32>,
}

/// Appends the response from `ESEARCH` on, without `* ` and CRLF: the
/// rest of the line is [`super::data::write`]'s, through which every
/// ESEARCH is sent (`Data::Esearch`).
pub(super) fn body(out: &mut Vec<u8>, e: &Esearch<'_>) {
    out.extend_from_slice(b"ESEARCH (TAG ");
    encode::string(out, e.tag.as_bytes(), false);
    out.push(b')');
    if e.uid {
        out.extend_from_slice(b" UID");
    }
    for item in &e.items {
        match item {
            Item::Min(n) => {
                let _ = write!(out, " MIN {n}");
            }
            Item::Max(n) => {
                let _ = write!(out, " MAX {n}");
            }
            Item::All { nums, ordered } => {
                out.extend_from_slice(b" ALL ");
                set(out, nums, *ordered);
            }
            Item::Count(n) => {
                let _ = write!(out, " COUNT {n}");
            }
            Item::Partial {
                range,
                nums,
                ordered,
            } => {
                let minus = if range.from_end { "-" } else { "" };
                let _ = write!(
                    out,
                    " PARTIAL ({minus}{}:{minus}{} ",
                    range.first, range.second
                );
                if nums.is_empty() {
                    out.extend_from_slice(b"NIL");
                } else {
                    set(out, nums, *ordered);
                }
                out.push(b')');
            }
            Item::ModSeq(n) => {
                let _ = write!(out, " MODSEQ {n}");
            }
            Item::AddTo(runs) => runs_item(out, "ADDTO", runs),
            Item::RemoveFrom(runs) => runs_item(out, "REMOVEFROM", runs),
        }
    }
}

fn set(out: &mut Vec<u8>, nums: &[u32], ordered: bool) {
    if ordered {
        encode::sequence_in_order(out, nums);
    } else {
        encode::sequence_set(out, nums);
    }
}

fn runs_item(out: &mut Vec<u8>, word: &str, runs: &[Run]) {
    let _ = write!(out, " {word} (");
    for (i, r) in runs.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let _ = write!(out, "{} ", r.position);
        set(out, &r.nums, r.position != 0);
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(e: &Esearch<'_>) -> String {
        let mut v = Vec::new();
        crate::proto::data::write(&mut v, &crate::proto::data::Data::Esearch(e.clone()));
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn responses_on_the_wire() {
        let range = |from_end, first, second| PartialRange {
            from_end,
            first,
            second,
        };
        let cases: Vec<(&str, bool, Vec<Item>, &str)> = vec![
            ("A1", false, vec![], "* ESEARCH (TAG \"A1\")\r\n"),
            (
                "A2",
                true,
                vec![
                    Item::Min(10),
                    Item::Max(1),
                    Item::All {
                        nums: vec![10, 5, 2, 1, 3, 4],
                        ordered: true,
                    },
                    Item::Count(6),
                ],
                "* ESEARCH (TAG \"A2\") UID MIN 10 MAX 1 ALL 10,5,2,1,3:4 COUNT 6\r\n",
            ),
            (
                "A3",
                false,
                vec![Item::All {
                    nums: vec![4, 3, 1],
                    ordered: false,
                }],
                "* ESEARCH (TAG \"A3\") ALL 1,3:4\r\n",
            ),
            (
                "A4",
                true,
                vec![Item::Partial {
                    range: range(false, 500, 400),
                    nums: vec![],
                    ordered: false,
                }],
                "* ESEARCH (TAG \"A4\") UID PARTIAL (500:400 NIL)\r\n",
            ),
            (
                "A5",
                false,
                vec![
                    Item::Partial {
                        range: range(true, 1, 3),
                        nums: vec![9, 7, 8],
                        ordered: true,
                    },
                    Item::Count(3),
                ],
                "* ESEARCH (TAG \"A5\") PARTIAL (-1:-3 9,7:8) COUNT 3\r\n",
            ),
            (
                "B01",
                true,
                vec![
                    Item::RemoveFrom(vec![Run {
                        position: 0,
                        nums: vec![32769, 32768],
                    }]),
                    Item::AddTo(vec![
                        Run {
                            position: 1,
                            nums: vec![2733, 2731, 2732],
                        },
                        Run {
                            position: 0,
                            nums: vec![7],
                        },
                    ]),
                ],
                "* ESEARCH (TAG \"B01\") UID REMOVEFROM (0 32768:32769) ADDTO (1 2733,2731:2732 0 7)\r\n",
            ),
        ];
        for (tag, uid, items, want) in cases {
            assert_eq!(wire(&Esearch { tag, uid, items }), want);
        }
    }
}
