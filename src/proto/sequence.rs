//! Sequence-set arithmetic (RFC 9051 §9 `sequence-set`).
//!
//! Owns turning a parsed [`SequenceSet`] into concrete numbers against the
//! mailbox's current largest number. It never resolves `$` (SEARCHRES): the
//! session keeps the saved result and substitutes it before calling here.

use super::command::{SeqNum, SequenceSet};

impl SeqNum {
    /// The number, with `*` standing for `largest`.
    pub fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqNum::Value(v) => v,
            SeqNum::Asterisk => largest,
        }
    }
}

impl SequenceSet {
    /// The set as sorted, merged, inclusive ranges, with `*` standing for
    /// `largest` and `a:b` normalised to `min:max`. `Saved` yields nothing
    /// (the session resolves `$` before calling this).
    ///
    /// Ranges are not clipped to `largest`: `5:10` in a mailbox of 7
    /// messages stays `5:10`, and the caller decides whether numbers past
    /// the end are an error (sequence numbers, RFC 9051 §9) or simply match
    /// nothing (UIDs).
    pub fn ranges(&self, largest: u32) -> Vec<(u32, u32)> {
        let SequenceSet::Ranges(rs) = self else {
            return Vec::new();
        };
        let mut v: Vec<(u32, u32)> = rs
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.resolve(largest), b.resolve(largest));
                (a.min(b), a.max(b))
            })
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                // Overlapping or adjacent: extend.
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeqNum::{Asterisk as S, Value as V};
    use proptest::prelude::*;

    /// Whether `n` is in the set (`*` = `largest`), straight from the
    /// definition: the oracle for [`SequenceSet::ranges`]. Always false for
    /// `Saved`.
    fn contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
        let SequenceSet::Ranges(rs) = set else {
            return false;
        };
        rs.iter().any(|&(a, b)| {
            let (a, b) = (a.resolve(largest), b.resolve(largest));
            a.min(b) <= n && n <= a.max(b)
        })
    }

    /// The set as a client writes it (`1:3,*`, `$`), for round trips
    /// through the parser.
    fn to_wire(set: &SequenceSet) -> String {
        let SequenceSet::Ranges(rs) = set else {
            return "$".into();
        };
        let num = |n: SeqNum| match n {
            SeqNum::Value(v) => v.to_string(),
            SeqNum::Asterisk => "*".into(),
        };
        rs.iter()
            .map(|&(a, b)| {
                if a == b {
                    num(a)
                } else {
                    format!("{}:{}", num(a), num(b))
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn ranges_table() {
        type Case = (Vec<(SeqNum, SeqNum)>, u32, Vec<(u32, u32)>);
        let cases: Vec<Case> = vec![
            (vec![(V(1), V(1))], 10, vec![(1, 1)]),
            (vec![(V(5), V(2))], 10, vec![(2, 5)]),
            (vec![(V(1), S)], 10, vec![(1, 10)]),
            (vec![(S, S)], 10, vec![(10, 10)]),
            (vec![(S, V(20))], 10, vec![(10, 20)]),
            (
                vec![(V(1), V(3)), (V(4), V(4)), (V(8), V(9))],
                10,
                vec![(1, 4), (8, 9)],
            ),
            (vec![(V(8), V(9)), (V(1), V(8))], 10, vec![(1, 9)]),
            (
                vec![(V(1), V(u32::MAX)), (V(3), V(4))],
                0,
                vec![(1, u32::MAX)],
            ),
            (vec![(S, S)], 0, vec![(0, 0)]),
        ];
        for (rs, largest, want) in cases {
            assert_eq!(
                SequenceSet::Ranges(rs.clone()).ranges(largest),
                want,
                "{rs:?}"
            );
        }
        assert_eq!(SequenceSet::Saved.ranges(10), vec![]);
    }

    #[test]
    fn oracle_and_wire_helpers() {
        let set = SequenceSet::Ranges(vec![(V(3), V(1)), (V(7), S)]);
        let got: Vec<u32> = (0..12).filter(|&n| contains(&set, n, 9)).collect();
        assert_eq!(got, vec![1, 2, 3, 7, 8, 9]);
        assert!(!contains(&SequenceSet::Saved, 1, 1));
        assert_eq!(to_wire(&set), "3:1,7:*");
    }

    fn seqnum() -> impl Strategy<Value = SeqNum> {
        prop_oneof![
            (1u32..=u32::MAX).prop_map(SeqNum::Value),
            (1u32..50).prop_map(SeqNum::Value),
            Just(SeqNum::Asterisk),
        ]
    }

    proptest! {
        /// `ranges` agrees with `contains` and yields disjoint, sorted,
        /// non-adjacent ranges.
        #[test]
        fn ranges_match_contains(
            rs in prop::collection::vec((seqnum(), seqnum()), 1..6),
            largest in 0u32..60,
            probes in prop::collection::vec(0u32..70, 20),
        ) {
            let set = SequenceSet::Ranges(rs);
            let ranges = set.ranges(largest);
            for w in ranges.windows(2) {
                prop_assert!(w[0].1 < w[1].0 && w[0].1 + 1 < w[1].0);
            }
            for n in probes {
                let in_ranges = ranges.iter().any(|&(a, b)| a <= n && n <= b);
                prop_assert_eq!(in_ranges, contains(&set, n, largest));
            }
        }

        /// Encoding a set of numbers and parsing it back gives the same set.
        #[test]
        fn encode_parse_round_trip(nums in prop::collection::btree_set(1u32..=u32::MAX, 1..30)) {
            let nums: Vec<u32> = nums.into_iter().collect();
            let mut wire = b"a FETCH ".to_vec();
            crate::proto::encode::sequence_set(&mut wire, &nums);
            wire.extend_from_slice(b" UID\r\n");
            let cmd = crate::proto::parse::parse_command(&wire).unwrap();
            let crate::proto::CommandBody::Fetch { set, .. } = cmd.body else {
                panic!("not a FETCH");
            };
            let back: Vec<u32> = set
                .ranges(0)
                .into_iter()
                .flat_map(|(a, b)| a..=b)
                .collect();
            prop_assert_eq!(back, nums);
        }

        /// Parsing the wire form of a parsed set gives the same set.
        #[test]
        fn parse_to_wire_round_trip(rs in prop::collection::vec((seqnum(), seqnum()), 1..8)) {
            let set = SequenceSet::Ranges(rs);
            let wire = format!("a UID EXPUNGE {}\r\n", to_wire(&set));
            let cmd = crate::proto::parse::parse_command(wire.as_bytes()).unwrap();
            prop_assert_eq!(cmd.body, crate::proto::CommandBody::Expunge { uids: Some(set) });
        }
    }
}
