//! How a searching command (SEARCH, UID SEARCH, and the extended SORT)
//! answers once it has its result: the ESEARCH return options (RFC 4731
//! MIN MAX ALL COUNT, RFC 5267 §3 ESORT and §4 CONTEXT, UPDATE and
//! PARTIAL), the saved result `$` (RFC 5182 §2.4, RFC 9394 §3.2) and
//! opening an update context (`session::context`).
//!
//! The result comes in the requested order: mailbox order for SEARCH,
//! sort order for SORT. MIN and MAX are its first and last (for SORT,
//! "the lowest and highest sorted message", RFC 5267 §3.1); ALL and
//! PARTIAL keep its order, which for SORT means a sequence set with
//! ranges only where numbers ascend (§3.2). Return options do not
//! interact (§4.1), except as RFC 5182 and RFC 9394 §3.2 say for SAVE
//! ([`saved`]).
//!
//! Owns no state: it reads and sets the view's `$` and contexts, and
//! writes the responses.

use crate::proto::data::{self, Data};
use crate::proto::esearch::{Esearch, Item};
use crate::proto::{SearchKey, SearchReturn, SortCriterion};
use crate::session::view::SelectedView;
use crate::session::{Session, Status, context};

/// What the command asked for.
pub(crate) struct Asked<'a> {
    pub tag: &'a str,
    pub uid: bool,
    /// The return options as given (`()` means ALL).
    pub ret: &'a [SearchReturn],
    pub key: &'a SearchKey,
    /// SORT: its criteria (the result is in their order).
    pub sort: Option<&'a [SortCriterion]>,
    /// When the search used MODSEQ: each found message's modseq, in the
    /// order of `found` (RFC 7162 §3.1.5: the answer carries the highest).
    pub modseqs: Option<&'a [u64]>,
}

/// Answers `found` ((sequence number, UID), in the requested order).
pub(crate) fn answer(
    s: &mut Session,
    view: &mut SelectedView,
    a: Asked<'_>,
    found: &[(u32, u32)],
) -> Result<(), Status> {
    // CONTEXT is a hint this server takes no action on (RFC 5267 §4.2:
    // it MAY ignore it), so it counts as absent: `RETURN (CONTEXT)` is
    // `RETURN ()`, which means ALL (RFC 4731 §3.1), as in Dovecot.
    let mut ret: Vec<SearchReturn> = a
        .ret
        .iter()
        .copied()
        .filter(|r| *r != SearchReturn::Context)
        .collect();
    if ret.is_empty() {
        ret.push(SearchReturn::All);
    }
    let ret = &ret[..];
    let want = |r: SearchReturn| ret.contains(&r);
    let partial = ret.iter().find_map(|r| match r {
        SearchReturn::Partial(p) => Some(*p),
        _ => None,
    });
    let uids: Vec<u32> = found.iter().map(|f| f.1).collect();
    let nums: Vec<u32> = found
        .iter()
        .map(|&(seq, uid)| if a.uid { uid } else { seq })
        .collect();
    let window = partial.map_or(0..0, |p| p.slice(found.len()));
    if want(SearchReturn::Save) {
        view.saved = saved(ret, &uids, &uids[window.clone()]);
    }
    let mut out = Vec::new();
    if ret.iter().any(|r| *r != SearchReturn::Save) {
        // SAVE alone answers nothing (RFC 5182 §1).
        let ordered = a.sort.is_some();
        let mut items = Vec::new();
        if want(SearchReturn::Min)
            && let Some(&n) = nums.first()
        {
            items.push(Item::Min(n));
        }
        if want(SearchReturn::Max)
            && let Some(&n) = nums.last()
        {
            items.push(Item::Max(n));
        }
        if want(SearchReturn::All) && !nums.is_empty() {
            items.push(Item::All {
                nums: nums.clone(),
                ordered,
            });
        }
        if let Some(range) = partial {
            items.push(Item::Partial {
                range,
                nums: nums[window.clone()].to_vec(),
                ordered,
            });
        }
        if want(SearchReturn::Count) {
            items.push(Item::Count(nums.len()));
        }
        // The highest modseq of the messages the answer names (RFC 7162
        // §3.1.5, RFC 4731 §3.2): all of them for ALL or COUNT, else those
        // MIN, MAX and PARTIAL return. None when nothing was found.
        if let Some(ms) = a.modseqs.filter(|_| !nums.is_empty()) {
            let everything = want(SearchReturn::All) || want(SearchReturn::Count);
            let mut returned: Vec<usize> = Vec::new();
            if !everything {
                if want(SearchReturn::Min) {
                    returned.push(0);
                }
                if want(SearchReturn::Max) {
                    returned.push(nums.len() - 1);
                }
                returned.extend(window.clone());
            }
            let highest = if everything {
                ms.iter().copied().max()
            } else {
                returned.iter().filter_map(|&i| ms.get(i).copied()).max()
            };
            if let Some(m) = highest {
                items.push(Item::ModSeq(m));
            }
        }
        data::write(
            &mut out,
            &Data::Esearch(Esearch {
                tag: a.tag,
                uid: a.uid,
                items,
            }),
        );
    }
    if want(SearchReturn::Update) {
        let new = context::NewContext {
            tag: a.tag,
            uid: a.uid,
            key: a.key,
            sort: a.sort,
            result: uids,
        };
        context::open(view, new, &mut out);
    }
    s.out.extend_from_slice(&out);
    Ok(())
}

/// The value `$` takes (UIDs, ascending) from a result (`found`, in the
/// requested order) and its PARTIAL window: RFC 5182 §2.4's table, with
/// RFC 9394 §3.2's rows for PARTIAL (which apply with CONTEXT=SEARCH):
/// ALL or COUNT save everything; otherwise PARTIAL saves its window plus
/// MIN/MAX if asked; MIN/MAX alone save just those; anything else (SAVE
/// with only CONTEXT or UPDATE) everything.
pub(crate) fn saved(ret: &[SearchReturn], found: &[u32], window: &[u32]) -> Vec<u32> {
    let want = |r: SearchReturn| ret.contains(&r);
    let has_partial = ret.iter().any(|r| matches!(r, SearchReturn::Partial(_)));
    let minmax = want(SearchReturn::Min) || want(SearchReturn::Max);
    let mut v: Vec<u32> = if want(SearchReturn::All) || want(SearchReturn::Count) {
        found.to_vec()
    } else if has_partial || minmax {
        let mut v = if has_partial {
            window.to_vec()
        } else {
            Vec::new()
        };
        if want(SearchReturn::Min) {
            v.extend(found.first());
        }
        if want(SearchReturn::Max) {
            v.extend(found.last());
        }
        v
    } else {
        found.to_vec()
    };
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PartialRange;

    #[test]
    fn what_dollar_holds() {
        use SearchReturn::*;
        let p = Partial(PartialRange {
            from_end: false,
            first: 2,
            second: 3,
        });
        // A sorted result: 9 7 3 5 1, PARTIAL 2:3 is 7 3.
        let found = [9, 7, 3, 5, 1];
        let window = [7, 3];
        let cases: Vec<(Vec<SearchReturn>, Vec<u32>)> = vec![
            (vec![Save], vec![1, 3, 5, 7, 9]),
            (vec![Save, Min], vec![9]),
            (vec![Save, Max], vec![1]),
            (vec![Save, Min, Max], vec![1, 9]),
            (vec![Save, All, Min], vec![1, 3, 5, 7, 9]),
            (vec![Save, Count, Max], vec![1, 3, 5, 7, 9]),
            (vec![Save, p], vec![3, 7]),
            (vec![Save, p, Min], vec![3, 7, 9]),
            (vec![Save, p, Min, Max], vec![1, 3, 7, 9]),
            (vec![Save, p, Count], vec![1, 3, 5, 7, 9]),
            (vec![Save, p, Count, Min], vec![1, 3, 5, 7, 9]),
            (vec![Save, Update], vec![1, 3, 5, 7, 9]),
            (vec![Save, Context, Min], vec![9]),
        ];
        for (ret, want) in cases {
            assert_eq!(saved(&ret, &found, &window), want, "{ret:?}");
        }
        assert_eq!(saved(&[Save, Min, Max], &[], &[]), Vec::<u32>::new());
    }

    #[test]
    fn partial_windows() {
        // (from_end, first, second, results, window)
        let cases = [
            (false, 1, 2, 5, 0..2),
            (false, 3, 2, 5, 1..3),
            (false, 4, 9, 5, 3..5),
            (false, 6, 9, 5, 0..0),
            (false, 1, 1, 0, 0..0),
            (true, 1, 1, 5, 4..5),
            (true, 1, 2, 5, 3..5),
            (true, 3, 2, 5, 2..4),
            (true, 4, 100, 5, 0..2),
            (true, 6, 100, 5, 0..0),
            (false, 1, u32::MAX, 3, 0..3),
        ];
        for (from_end, first, second, n, want) in cases {
            let r = PartialRange {
                from_end,
                first,
                second,
            };
            assert_eq!(r.slice(n), want, "{r:?} of {n}");
        }
    }
}
