//! QRESYNC (RFC 7162 §3.2) in the session: which UIDs a client must be
//! told have vanished, and the `VANISHED` responses that tell it.
//!
//! The store remembers the last 10,000 expunges of a folder with their
//! modseqs (`Folder::expunged_since`), across restarts in its index. When
//! that memory reaches back to the client's modseq the answer is exact;
//! when it does not (more expunges since, a crash or the index lost in
//! between), the answer is
//! every UID of the client's known set that is not in the mailbox now:
//! also right, since a client ignores UIDs it never knew (§3.2.10), just
//! longer. Either way nothing the client still holds is left out.
//!
//! Responses are split so that no line carries more than [`RANGES_PER_LINE`]
//! ranges: a client that reads lines into a fixed buffer is not handed one
//! of megabytes after a big cleanup.

use crate::proto::data::{self, Data};
use crate::store::Folder;

/// Ranges per VANISHED line (a few KiB at most).
pub const RANGES_PER_LINE: usize = 500;

/// The UIDs within `within` (sorted, disjoint ranges) that a client which
/// synced at modseq `since` must be told are gone, as sorted ranges.
/// `present`: the UIDs the mailbox has now (ascending).
pub fn vanished(
    folder: &Folder,
    since: u64,
    within: &[(u32, u32)],
    present: &[u32],
) -> Vec<(u32, u32)> {
    match folder.expunged_since(since) {
        Some(gone) => ranges_of(gone.into_iter().filter(|&u| in_ranges(within, u))),
        None => gaps(within, present),
    }
}

/// Writes `uids` as one or more `* VANISHED [(EARLIER)]` lines.
pub fn write(out: &mut Vec<u8>, earlier: bool, uids: &[(u32, u32)]) {
    for chunk in uids.chunks(RANGES_PER_LINE) {
        data::write(
            out,
            &Data::Vanished {
                earlier,
                uids: chunk,
            },
        );
    }
}

/// `ranges` cut below `uidnext`: no UID at or above it was ever given out,
/// so none can have vanished.
pub fn below_uidnext(ranges: Vec<(u32, u32)>, uidnext: u32) -> Vec<(u32, u32)> {
    let last = uidnext.saturating_sub(1);
    ranges
        .into_iter()
        .filter(|&(a, _)| a <= last)
        .map(|(a, b)| (a, b.min(last)))
        .collect()
}

/// Whether `u` is in `ranges` (sorted, disjoint).
pub fn in_ranges(ranges: &[(u32, u32)], u: u32) -> bool {
    let i = ranges.partition_point(|&(_, b)| b < u);
    ranges.get(i).is_some_and(|&(a, _)| a <= u)
}

/// Ascending UIDs (duplicates allowed) as sorted, merged ranges.
pub fn ranges_of(uids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut v: Vec<u32> = uids.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for u in v {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(u) => last.1 = u,
            _ => out.push((u, u)),
        }
    }
    out
}

/// The numbers of `within` that are not in `present` (ascending), as
/// ranges, without visiting each number: one pass over `present`.
fn gaps(within: &[(u32, u32)], present: &[u32]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(a, b) in within {
        let mut next = a;
        let start = present.partition_point(|&u| u < a);
        for &u in present[start..].iter().take_while(|&&u| u <= b) {
            if u > next {
                out.push((next, u - 1));
            }
            next = u.saturating_add(1);
            if u == u32::MAX {
                break;
            }
        }
        if next <= b && !(next == u32::MAX && present.last() == Some(&u32::MAX)) {
            out.push((next, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gaps_table() {
        assert_eq!(gaps(&[(1, 10)], &[2, 3, 7]), vec![(1, 1), (4, 6), (8, 10)]);
        assert_eq!(gaps(&[(1, 3)], &[1, 2, 3]), vec![]);
        assert_eq!(gaps(&[(1, 3), (8, 9)], &[]), vec![(1, 3), (8, 9)]);
        assert_eq!(gaps(&[(5, 5)], &[4, 6]), vec![(5, 5)]);
        assert_eq!(
            gaps(&[(u32::MAX - 1, u32::MAX)], &[u32::MAX]),
            vec![(u32::MAX - 1, u32::MAX - 1)]
        );
    }

    #[test]
    fn lines_are_split() {
        let uids: Vec<(u32, u32)> = (0..1201).map(|i| (i * 2 + 1, i * 2 + 1)).collect();
        let mut out = Vec::new();
        write(&mut out, true, &uids);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| l.starts_with("* VANISHED (EARLIER) ")));
        assert!(text.ends_with(",2401\r\n"));
    }

    proptest! {
        #[test]
        fn gaps_are_the_complement_within(
            present in proptest::collection::btree_set(1u32..200, 0..60),
            within in proptest::collection::vec((1u32..200, 0u32..30), 0..5),
        ) {
            let within = ranges_of(within.into_iter().flat_map(|(a, n)| a..=a.saturating_add(n)));
            let present: Vec<u32> = present.into_iter().collect();
            let got = gaps(&within, &present);
            let want = ranges_of(
                within.iter().flat_map(|&(a, b)| a..=b).filter(|u| present.binary_search(u).is_err()),
            );
            prop_assert_eq!(got, want);
        }
    }
}
