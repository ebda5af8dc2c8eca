//! Live search results: the UPDATE return option of SEARCH and the
//! extended SORT (RFC 5267 §4.3, CONTEXT=SEARCH and CONTEXT=SORT).
//!
//! A searching command with `RETURN (UPDATE ...)` leaves behind a
//! [`Live`] context in the selected view: its search program, its result
//! (UIDs, in the requested order) and, for SORT, its sort criteria. As the
//! mailbox changes, each context's result is kept current and the client
//! is told with `* ESEARCH (TAG "t") [UID] REMOVEFROM (...) ADDTO (...)`,
//! under the tag of the command that asked for it. Contexts live as long
//! as the selection (they are part of [`SelectedView`]) or until
//! CANCELUPDATE.
//!
//! # When and in what order
//! - An expunge (by anyone) takes the message out of every result at
//!   once, in the same report that learns of it: the REMOVEFROM goes out
//!   before the `* n EXPUNGE` (RFC 5267 §4.3.4: its sequence numbers must
//!   still be valid), even when the EXPUNGE itself must wait for a
//!   command that allows it (RFC 9051 §7.5.1); a REMOVEFROM may be sent at
//!   any time. The view calls [`Contexts::expunged`] for that.
//! - A new message, or a flag change (this session's STORE included),
//!   makes the message *touched* ([`Contexts::touch`]); after the view
//!   has written its EXISTS and FETCH responses, [`update`] decides every
//!   touched message against every context's program again and reports
//!   what joined or left (ADDTO after EXISTS, RFC 5267 §4.3.3). This runs
//!   wherever the session reports changes: after each command and during
//!   IDLE.
//! - Sort keys (header fields, INTERNALDATE, size) never change, so a
//!   message that stays in a sorted result never moves: only insertions
//!   and removals are ever reported.
//!   Where messages join a SORT context, its result is sorted again whole
//!   (values from the cached header digests, as SORT itself reads them)
//!   to place them; if the old results came out in another order (a
//!   message file vanished under us) the result is resent whole rather
//!   than left wrong at the client.
//!
//! # Positions
//! SEARCH contexts report at position 0 with the numbers as a set in
//! mailbox order (RFC 5267 §4.3.3-4 recommends it; Dovecot does the
//! same). SORT contexts must give real positions: runs of consecutive
//! results, each at the position it has when the client applies it in
//! turn ([`remove_runs`], [`add_runs`]).
//!
//! # What is frozen at command time
//! RFC 5267 §4.3: sequence numbers in the search program are evaluated
//! when the command is received. [`freeze`] rewrites them (and `$`, and
//! `*` in UID sets) into the UIDs they meant then, so later evaluations
//! of new or changed messages mean what the command meant. Keys that
//! depend on the clock (OLDER, YOUNGER) are decided again only when a
//! message changes: a message ageing past the limit alone is not
//! reported.
//!
//! # Bounds
//! A session keeps at most [`MAX_CONTEXTS`] contexts (Dovecot keeps 10
//! too), and refuses one whose result would take the session's contexts
//! past [`MAX_ENTRIES`] results: `* NO [NOUPDATE "tag"]`, the other
//! return options still answered (§4.3.1). A context that grows with the
//! mailbox until the session holds [`HARD_ENTRIES`] results is dropped
//! with the same untagged NO, so a connection's memory stays bounded
//! whatever arrives (§4.3.1 names NOUPDATE for the searching command
//! only; a client that reads it later learns the same thing: no more
//! updates for that tag). One result costs 4 bytes (8 for SORT), so at
//! most about 1.6 MB a session.
//!
//! Never touches the disk itself: message content and sort values are
//! read through the store's folder, off the runtime (`blocking`).

use std::sync::Arc;

use crate::proto::data::{self, Data};
use crate::proto::esearch::{Esearch, Item, Run};
use crate::proto::response::{Code, StatusKind, status_line};
use crate::proto::{SearchKey, SearchReturn, SeqNum, SequenceSet, SortCriterion};
use crate::session::search::{SearchEnv, SearchTarget, matches, needs_whole_message};
use crate::session::view::SelectedView;
use crate::session::{Status, blocking};
use crate::store::Folder;

/// Update contexts one session may keep.
pub const MAX_CONTEXTS: usize = 10;
/// Results (plus frozen UID ranges) a new context may bring the session's
/// contexts to; past it the UPDATE is refused.
pub const MAX_ENTRIES: usize = 100_000;
/// Past this many, the context that grew is dropped.
pub const HARD_ENTRIES: usize = 2 * MAX_ENTRIES;

/// One live result.
pub struct Live {
    tag: String,
    uid: bool,
    /// The search program, frozen ([`freeze`]).
    key: SearchKey,
    /// Frozen UID ranges in `key`, counted against the bounds.
    key_entries: usize,
    /// Every result's UID, ascending (a SEARCH context's result itself).
    members: Vec<u32>,
    /// SORT contexts: the criteria and the result in sort order.
    sort: Option<(Vec<SortCriterion>, Vec<u32>)>,
}

impl Live {
    fn entries(&self) -> usize {
        self.members.len() * if self.sort.is_some() { 2 } else { 1 } + self.key_entries
    }
}

/// The selected view's update contexts, in creation order (the order
/// their updates are sent in).
#[derive(Default)]
pub struct Contexts {
    live: Vec<Live>,
    /// Messages to decide again (new or with changed flags), any order.
    touched: Vec<u32>,
}

impl Contexts {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// True if `tag` names a live context (RFC 5267 §4.3: reusing it for
    /// another UPDATE is the client's error).
    pub fn in_use(&self, tag: &str) -> bool {
        self.live.iter().any(|l| l.tag == tag)
    }

    fn entries(&self) -> usize {
        self.live.iter().map(Live::entries).sum()
    }

    /// Keeps a new context unless the bounds forbid it (then `Err` with
    /// the text of the NOUPDATE response).
    fn add(&mut self, live: Live) -> Result<(), &'static str> {
        if self.live.len() >= MAX_CONTEXTS {
            return Err("Too many update contexts.");
        }
        if self.entries() + live.entries() > MAX_ENTRIES {
            return Err("Result too large to keep updated.");
        }
        self.live.push(live);
        Ok(())
    }

    /// The tags of the contexts to drop, newest first, until the rest
    /// hold at most [`HARD_ENTRIES`] results.
    fn over_budget(&self) -> Vec<String> {
        let mut total = self.entries();
        let mut out = Vec::new();
        for l in self.live.iter().rev() {
            if total <= HARD_ENTRIES {
                break;
            }
            total -= l.entries();
            out.push(l.tag.clone());
        }
        out
    }

    /// CANCELUPDATE: ends the contexts of all `tags`, or of none if one
    /// of them is unknown (returned).
    pub fn cancel(&mut self, tags: &[String]) -> Result<(), String> {
        if let Some(t) = tags.iter().find(|t| !self.in_use(t)) {
            return Err(t.clone());
        }
        self.live.retain(|l| !tags.contains(&l.tag));
        Ok(())
    }

    /// Messages that are new or whose flags changed: decided again by the
    /// next [`update`]. Nothing is kept while there are no contexts.
    pub fn touch(&mut self, uids: impl IntoIterator<Item = u32>) {
        if !self.live.is_empty() {
            self.touched.extend(uids);
        }
    }

    /// Takes `gone` (expunged UIDs) out of every result, writing the
    /// REMOVEFROM responses; `seq_of` still numbers them as the client
    /// does (call before the EXPUNGE responses).
    pub fn expunged(
        &mut self,
        gone: &[u32],
        seq_of: &dyn Fn(u32) -> Option<u32>,
        out: &mut Vec<u8>,
    ) {
        if self.live.is_empty() || gone.is_empty() {
            return;
        }
        let mut gone = gone.to_vec();
        gone.sort_unstable();
        let is_gone = |u: u32| gone.binary_search(&u).is_ok();
        for l in &mut self.live {
            let removed = remove_from(l, &is_gone);
            if !removed.is_empty() {
                write_update(out, l, removed, Vec::new(), seq_of);
            }
        }
    }
}

/// Takes the members for which `gone` holds out of `l`; the REMOVEFROM
/// runs (UIDs).
fn remove_from(l: &mut Live, gone: &dyn Fn(u32) -> bool) -> Vec<Run> {
    if !l.members.iter().any(|&u| gone(u)) {
        return Vec::new();
    }
    let before: Vec<u32> = l.members.iter().copied().filter(|&u| gone(u)).collect();
    l.members.retain(|&u| !gone(u));
    match &mut l.sort {
        Some((_, order)) => remove_runs(order, gone),
        None => vec![Run {
            position: 0,
            nums: before,
        }],
    }
}

/// REMOVEFROM runs taking the results for which `gone` holds out of
/// `order` (which loses them): runs of consecutive results, each at the
/// position its first result has once the runs before it are applied
/// (RFC 5267 §4.3.4).
pub(crate) fn remove_runs(order: &mut Vec<u32>, gone: &dyn Fn(u32) -> bool) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut kept = 0u32;
    let mut in_run = false;
    for &u in order.iter() {
        if gone(u) {
            match runs.last_mut() {
                Some(r) if in_run => r.nums.push(u),
                _ => runs.push(Run {
                    position: kept + 1,
                    nums: vec![u],
                }),
            }
            in_run = true;
        } else {
            kept += 1;
            in_run = false;
        }
    }
    order.retain(|&u| !gone(u));
    runs
}

/// ADDTO runs turning the result into `new` (which holds it in the same
/// order, plus the results for which `added` holds): runs of consecutive
/// new results, each at its final position, in increasing order, so every
/// run meets the results before it already in place (RFC 5267 §4.3.3).
pub(crate) fn add_runs(new: &[u32], added: &dyn Fn(u32) -> bool) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut in_run = false;
    for (i, &u) in new.iter().enumerate() {
        if added(u) {
            match runs.last_mut() {
                Some(r) if in_run => r.nums.push(u),
                _ => runs.push(Run {
                    position: i as u32 + 1,
                    nums: vec![u],
                }),
            }
            in_run = true;
        } else {
            in_run = false;
        }
    }
    runs
}

/// Writes one context's update: REMOVEFROM before ADDTO, both applied in
/// that order. UIDs become sequence numbers for a non-UID context.
fn write_update(
    out: &mut Vec<u8>,
    l: &Live,
    removed: Vec<Run>,
    added: Vec<Run>,
    seq_of: &dyn Fn(u32) -> Option<u32>,
) {
    let numbered = |runs: Vec<Run>| -> Vec<Run> {
        if l.uid {
            return runs;
        }
        runs.into_iter()
            .map(|r| Run {
                position: r.position,
                nums: r.nums.iter().filter_map(|&u| seq_of(u)).collect(),
            })
            .collect()
    };
    let mut items = Vec::new();
    if !removed.is_empty() {
        items.push(Item::RemoveFrom(numbered(removed)));
    }
    if !added.is_empty() {
        items.push(Item::AddTo(numbered(added)));
    }
    data::write(
        out,
        &Data::Esearch(Esearch {
            tag: &l.tag,
            uid: l.uid,
            items,
        }),
    );
}

/// The search program as the command meant it when it ran: message
/// sequence numbers, `$` and `*` in UID sets become the UIDs they stood
/// for then. Returns the key and the number of UID ranges it holds.
pub fn freeze(key: &SearchKey, view: &SelectedView) -> (SearchKey, usize) {
    let mut n = 0;
    let k = freeze_in(key, view, &mut n);
    (k, n)
}

fn freeze_in(key: &SearchKey, view: &SelectedView, n: &mut usize) -> SearchKey {
    use SearchKey as K;
    let uids = view.uids();
    let max_uid = uids.last().copied().unwrap_or(0);
    let frozen = |ranges: Vec<(u32, u32)>, n: &mut usize| {
        *n += ranges.len();
        K::Uid(SequenceSet::Ranges(
            ranges
                .into_iter()
                .map(|(a, b)| (SeqNum::Value(a), SeqNum::Value(b)))
                .collect(),
        ))
    };
    match key {
        K::And(v) => K::And(v.iter().map(|k| freeze_in(k, view, n)).collect()),
        K::Or(a, b) => K::Or(
            Box::new(freeze_in(a, view, n)),
            Box::new(freeze_in(b, view, n)),
        ),
        K::Not(k) => K::Not(Box::new(freeze_in(k, view, n))),
        K::SequenceSet(SequenceSet::Saved) | K::Uid(SequenceSet::Saved) => {
            frozen(runs_of(&view.saved), n)
        }
        // A run of sequence numbers is a run of the UIDs between its ends:
        // the UIDs between them that do not exist now never will (new
        // messages get higher ones).
        K::SequenceSet(set) => {
            let len = uids.len() as u32;
            let ranges = set
                .ranges(len)
                .into_iter()
                .filter_map(|(lo, hi)| {
                    let (lo, hi) = (lo.max(1), hi.min(len));
                    (lo <= hi).then(|| (uids[lo as usize - 1], uids[hi as usize - 1]))
                })
                .collect();
            frozen(ranges, n)
        }
        K::Uid(set) => frozen(set.ranges(max_uid), n),
        other => other.clone(),
    }
}

/// Ascending UIDs as runs of consecutive numbers.
fn runs_of(uids: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(u) => *hi = u,
            _ => out.push((u, u)),
        }
    }
    out
}

/// What a searching command with UPDATE leaves behind.
pub struct NewContext<'a> {
    pub tag: &'a str,
    pub uid: bool,
    pub key: &'a SearchKey,
    pub sort: Option<&'a [SortCriterion]>,
    /// The result's UIDs, in the requested order.
    pub result: Vec<u32>,
}

/// BAD if `ret` asks for UPDATE under a tag a live context already has
/// (RFC 5267 §4.3); checked before the command runs, so it changes nothing.
pub fn check_tag(
    view: &SelectedView,
    tag: &str,
    ret: Option<&[SearchReturn]>,
) -> Result<(), Status> {
    if ret.is_some_and(|r| r.contains(&SearchReturn::Update)) && view.contexts.in_use(tag) {
        return Err(Status::bad("Tag reuse: an update context has this tag."));
    }
    Ok(())
}

/// Keeps the context, or writes `* NO [NOUPDATE "tag"]` if the bounds
/// refuse it (the command's other answers stand, RFC 5267 §4.3.1).
pub fn open(view: &mut SelectedView, c: NewContext<'_>, out: &mut Vec<u8>) {
    let (key, key_entries) = freeze(c.key, view);
    let mut members = c.result.clone();
    members.sort_unstable();
    let live = Live {
        tag: c.tag.to_string(),
        uid: c.uid,
        key,
        key_entries,
        members,
        sort: c.sort.map(|s| (s.to_vec(), c.result)),
    };
    if let Err(why) = view.contexts.add(live) {
        tracing::debug!(tag = c.tag, "update context refused: {why}");
        let code = Code::NoUpdate(c.tag.to_string());
        status_line(out, None, StatusKind::No, Some(&code), why);
    }
}

/// Decides the touched messages against every context again and writes
/// what joined or left each result. Call after the view's own report
/// (EXISTS first: RFC 5267 §4.3.3).
pub async fn update(view: &mut SelectedView, out: &mut Vec<u8>) -> Result<(), Status> {
    let mut touched = std::mem::take(&mut view.contexts.touched);
    if view.contexts.live.is_empty() || touched.is_empty() {
        return Ok(());
    }
    touched.sort_unstable();
    touched.dedup();
    // Only what the client knows and has not seen expunged.
    let targets: Vec<(u32, u32, bool)> = touched
        .into_iter()
        .filter(|&u| !view.is_expunged(u))
        .filter_map(|u| view.seq_of(u).map(|s| (s, u, view.is_recent(u))))
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let keys: Vec<SearchKey> = view.contexts.live.iter().map(|l| l.key.clone()).collect();
    let folder = view.folder.clone();
    let (max_seq, max_uid) = (view.len(), view.uids().last().copied().unwrap_or(0));
    let t = targets.clone();
    let verdicts = blocking(move || decide(&folder, &keys, &t, max_seq, max_uid)).await??;

    // The numbering as the client has it (a cheap shared handle, so the
    // contexts can be changed while it is read).
    let numbering = view.uid_list();
    let seq_of = |u: u32| numbering.binary_search(&u).ok().map(|i| i as u32 + 1);
    // One response per context, sent in the contexts' creation order.
    let mut each: Vec<Vec<u8>> = vec![Vec::new(); view.contexts.live.len()];
    let mut sorts = Vec::new();
    for (i, l) in view.contexts.live.iter_mut().enumerate() {
        let mut gone = Vec::new();
        let mut joined = Vec::new();
        for (k, &(_, uid, _)) in targets.iter().enumerate() {
            let now = verdicts[i][k];
            let was = l.members.binary_search(&uid).is_ok();
            if was && !now {
                gone.push(uid);
            } else if now && !was {
                joined.push(uid);
            }
        }
        if gone.is_empty() && joined.is_empty() {
            continue;
        }
        let removed = remove_from(l, &|u| gone.binary_search(&u).is_ok());
        if joined.is_empty() {
            write_update(&mut each[i], l, removed, Vec::new(), &seq_of);
            continue;
        }
        for &u in &joined {
            if let Err(p) = l.members.binary_search(&u) {
                l.members.insert(p, u);
            }
        }
        match &l.sort {
            None => {
                let added = vec![Run {
                    position: 0,
                    nums: joined,
                }];
                write_update(&mut each[i], l, removed, added, &seq_of);
            }
            // Placed once the new order is known (below).
            Some(_) => sorts.push((i, removed, joined)),
        }
    }
    for (i, removed, joined) in sorts {
        let l = &mut view.contexts.live[i];
        let Some((criteria, order)) = &l.sort else {
            continue;
        };
        let folder = view.folder.clone();
        let (criteria, members) = (criteria.clone(), l.members.clone());
        let new = blocking(move || crate::session::sorted::sort_uids(&folder, &criteria, &members))
            .await??;
        let is_new = |u: u32| joined.binary_search(&u).is_ok();
        let kept: Vec<u32> = new.iter().copied().filter(|&u| !is_new(u)).collect();
        let (removed, added) = if kept == *order {
            (removed, add_runs(&new, &is_new))
        } else {
            // The old results no longer sort as they did (a message file
            // vanished under us): say everything again rather than leave
            // the client's order wrong.
            tracing::warn!(tag = %l.tag, "sorted update context resent whole");
            let mut all = order.clone();
            let mut removed = removed;
            removed.extend(remove_runs(&mut all, &|_| true));
            (removed, add_runs(&new, &|_| true))
        };
        if let Some((_, order)) = &mut l.sort {
            *order = new;
        }
        write_update(&mut each[i], l, removed, added, &seq_of);
    }
    let mut lines = each.concat();
    for tag in view.contexts.over_budget() {
        view.contexts.live.retain(|l| l.tag != tag);
        let code = Code::NoUpdate(tag);
        status_line(
            &mut lines,
            None,
            StatusKind::No,
            Some(&code),
            "Result grew too large, no further updates.",
        );
    }
    out.extend_from_slice(&lines);
    Ok(())
}

/// Decides each target against each key: `[key][target]`. Blocking.
fn decide(
    folder: &Arc<Folder>,
    keys: &[SearchKey],
    targets: &[(u32, u32, bool)],
    max_seq: u32,
    max_uid: u32,
) -> Result<Vec<Vec<bool>>, Status> {
    let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
    if keys
        .iter()
        .any(crate::session::evaluate::uses_internal_date)
    {
        folder.resolve_dates(&uids)?;
    }
    let metas = folder.metas(&uids);
    let objects = if keys.iter().any(crate::session::search::uses_object_info) {
        folder.object_info(&uids)
    } else {
        Vec::new()
    };
    let whole = keys.iter().any(needs_whole_message);
    let env = SearchEnv {
        max_seq,
        max_uid,
        saved: &[],
        now: chrono::Utc::now().timestamp(),
        zone: *chrono::Local::now().offset(),
    };
    let mut out = vec![Vec::with_capacity(targets.len()); keys.len()];
    for (k, (&(seq, uid, recent), meta)) in targets.iter().zip(&metas).enumerate() {
        let Some(meta) = meta else {
            // Gone from the store: its expunge is on its way.
            out.iter_mut().for_each(|v| v.push(false));
            continue;
        };
        let t = SearchTarget {
            seq,
            meta,
            recent,
            object: objects.get(k).and_then(Option::as_ref),
        };
        // Read at most once for all the keys.
        let mut content: Option<Option<Arc<Vec<u8>>>> = None;
        let mut load = || {
            content
                .get_or_insert_with(|| {
                    if whole {
                        folder.read_message(uid).ok()
                    } else {
                        folder.read_header(uid).ok().map(|h| Arc::new(h.bytes))
                    }
                })
                .clone()
        };
        for (k, key) in keys.iter().enumerate() {
            out[k].push(matches(key, &t, &env, &mut load));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies runs as a client does (RFC 5267 §4.3.3-4), in order.
    fn apply(list: &mut Vec<u32>, removes: &[Run], adds: &[Run]) {
        for r in removes {
            let p = r.position as usize - 1;
            for (i, &u) in r.nums.iter().enumerate() {
                assert_eq!(list[p], u, "REMOVEFROM run {i} at {}", r.position);
                list.remove(p);
            }
        }
        for r in adds {
            let p = r.position as usize - 1;
            for (i, &u) in r.nums.iter().enumerate() {
                list.insert(p + i, u);
            }
        }
    }

    fn runs(v: &[(u32, &[u32])]) -> Vec<Run> {
        v.iter()
            .map(|&(position, nums)| Run {
                position,
                nums: nums.to_vec(),
            })
            .collect()
    }

    #[test]
    fn positions_in_sort_order() {
        // (old order, removed, new order after additions, REMOVEFROM, ADDTO)
        type Case<'a> = (&'a [u32], &'a [u32], &'a [u32], Vec<Run>, Vec<Run>);
        let cases: Vec<Case<'_>> = vec![
            // Nothing changes.
            (&[5, 3, 9], &[], &[5, 3, 9], vec![], vec![]),
            // One removal in the middle, one at each end.
            (&[5, 3, 9], &[3], &[5, 9], runs(&[(2, &[3])]), vec![]),
            (
                &[5, 3, 9, 1],
                &[5, 1],
                &[3, 9],
                runs(&[(1, &[5]), (3, &[1])]),
                vec![],
            ),
            // A run of removals, then another: the second's position
            // counts the first as gone.
            (
                &[8, 7, 6, 5, 4, 3],
                &[7, 6, 4],
                &[8, 5, 3],
                runs(&[(2, &[7, 6]), (3, &[4])]),
                vec![],
            ),
            // Additions at the front, between, at the end.
            (
                &[20, 10],
                &[],
                &[30, 20, 15, 10, 5],
                vec![],
                runs(&[(1, &[30]), (3, &[15]), (5, &[5])]),
            ),
            // A run of additions, in sort order (not mailbox order).
            (
                &[1, 2],
                &[],
                &[1, 9, 7, 8, 2],
                vec![],
                runs(&[(2, &[9, 7, 8])]),
            ),
            // Both: removals first, then insertions into what is left.
            (
                &[4, 3, 2, 1],
                &[3, 1],
                &[6, 4, 5, 2],
                runs(&[(2, &[3]), (3, &[1])]),
                runs(&[(1, &[6]), (3, &[5])]),
            ),
            // Everything goes, everything comes.
            (
                &[1, 2],
                &[1, 2],
                &[3],
                runs(&[(1, &[1, 2])]),
                runs(&[(1, &[3])]),
            ),
        ];
        for (old, removed, new, want_rm, want_add) in cases {
            let mut order = old.to_vec();
            let rm = remove_runs(&mut order, &|u| removed.contains(&u));
            assert_eq!(rm, want_rm, "REMOVEFROM for {old:?} - {removed:?}");
            let is_new = |u: u32| !old.contains(&u);
            let add = add_runs(new, &is_new);
            assert_eq!(add, want_add, "ADDTO for {old:?} -> {new:?}");
            // And a client applying them ends up with the new order.
            let mut client = old.to_vec();
            apply(&mut client, &rm, &add);
            assert_eq!(client, new, "{old:?} -> {new:?}");
        }
    }

    proptest::proptest! {
        /// Whatever leaves and joins, a client applying the runs in order
        /// holds the new result.
        #[test]
        fn runs_replay_to_the_new_order(
            keep in proptest::collection::vec(proptest::bool::ANY, 0..40),
            joins in proptest::collection::vec(0usize..60, 0..20),
        ) {
            // Old result: 1..=n in some order; new: the kept ones in the
            // same order with new UIDs 1000+ inserted at random places.
            let old: Vec<u32> = (1..=keep.len() as u32).rev().collect();
            let gone = |u: u32| !keep[(u - 1) as usize];
            let mut order = old.clone();
            let rm = remove_runs(&mut order, &gone);
            let mut new = order.clone();
            for (k, &at) in joins.iter().enumerate() {
                let at = at.min(new.len());
                new.insert(at, 1000 + k as u32);
            }
            let add = add_runs(&new, &|u| u >= 1000);
            let mut client = old.clone();
            apply(&mut client, &rm, &add);
            proptest::prop_assert_eq!(client, new);
        }
    }

    fn live(tag: &str, uid: bool, members: Vec<u32>, order: Option<Vec<u32>>) -> Live {
        Live {
            tag: tag.into(),
            uid,
            key: SearchKey::All,
            key_entries: 0,
            members,
            sort: order.map(|o| (Vec::new(), o)),
        }
    }

    #[test]
    fn bounds_and_cancel() {
        let mut c = Contexts::default();
        for i in 0..MAX_CONTEXTS {
            assert!(c.add(live(&format!("t{i}"), true, vec![1], None)).is_ok());
        }
        assert_eq!(
            c.add(live("x", true, vec![], None)),
            Err("Too many update contexts.")
        );
        // All or nothing: one unknown tag cancels none.
        assert_eq!(
            c.cancel(&["t1".into(), "nope".into()]),
            Err("nope".to_string())
        );
        assert!(c.in_use("t1"));
        assert_eq!(c.cancel(&["t1".into(), "t2".into()]), Ok(()));
        assert!(!c.in_use("t1") && !c.in_use("t2") && c.in_use("t3"));
        // The result budget at creation: a SORT result counts twice.
        let mut c = Contexts::default();
        let big: Vec<u32> = (1..=MAX_ENTRIES as u32 / 2).collect();
        assert!(
            c.add(live("s", true, big.clone(), Some(big.clone())))
                .is_ok()
        );
        assert_eq!(
            c.add(live("q", true, vec![7], None)),
            Err("Result too large to keep updated.")
        );
        assert!(c.over_budget().is_empty());
        // Grown past the hard bound: the newest contexts go first.
        let mut c = Contexts::default();
        let half: Vec<u32> = (1..=HARD_ENTRIES as u32 / 2).collect();
        c.live.push(live("a", true, half.clone(), None));
        c.live.push(live("b", true, half.clone(), None));
        c.live.push(live("c", true, vec![1, 2], None));
        assert_eq!(c.over_budget(), vec!["c".to_string()]);
        c.live.push(live("d", true, half, None));
        assert_eq!(c.over_budget(), vec!["d".to_string(), "c".to_string()]);
    }

    #[test]
    fn expunges_are_removed_where_they_are() {
        let mut c = Contexts::default();
        c.live.push(live("q", false, vec![2, 5, 9], None));
        c.live
            .push(live("s", true, vec![2, 5, 9], Some(vec![9, 2, 5])));
        c.live.push(live("n", true, vec![3], None));
        // Nothing is kept for messages touched while no context lives.
        let mut none = Contexts::default();
        none.touch([1, 2]);
        assert!(none.touched.is_empty());
        let numbering = [2u32, 3, 5, 9];
        let seq_of = |u: u32| numbering.iter().position(|&x| x == u).map(|i| i as u32 + 1);
        let mut out = Vec::new();
        c.expunged(&[9, 2], &seq_of, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "* ESEARCH (TAG \"q\") REMOVEFROM (0 1,4)\r\n\
             * ESEARCH (TAG \"s\") UID REMOVEFROM (1 9,2)\r\n"
        );
        assert_eq!(c.live[1].sort.as_ref().map(|s| s.1.clone()), Some(vec![5]));
        assert_eq!(c.live[0].members, vec![5]);
    }

    /// A message delivered by another program (a file dropped into
    /// `new/`) and one deleted by it reach a SORT and a SEARCH context
    /// through the same report a session makes after each command and
    /// during IDLE: ADDTO at the new message's place in DATE order after
    /// the EXISTS, REMOVEFROM before the EXPUNGE.
    #[tokio::test(flavor = "multi_thread")]
    async fn outside_changes_reach_contexts() {
        use crate::flags::Flags;
        use crate::proto::{SortCriterion, SortKey};
        use crate::session::Enabled;
        use crate::store::{ClosingStore, MailStore, Registry, StoreOptions};
        let d = tempfile::tempdir().expect("tempdir");
        let store = ClosingStore(
            MailStore::open(
                d.path().to_path_buf(),
                Registry::new(),
                StoreOptions { fsync: false },
            )
            .expect("store"),
        );
        let f = store.open_folder("INBOX").expect("folder");
        for (subject, day) in [("A", 3), ("B", 1), ("C", 5)] {
            let m = format!("Subject: {subject}\nDate: {day} Jan 2024 10:00 +0000\n\nx\n");
            f.append(m.as_bytes(), &Flags::new(), None).expect("append");
        }
        let mut view = SelectedView::new(
            f.clone(),
            "INBOX".into(),
            false,
            vec![],
            f.view_start(),
            vec![],
        );
        let date = [SortCriterion {
            reverse: false,
            key: SortKey::Date,
        }];
        let mut out = Vec::new();
        let sort_ctx = NewContext {
            tag: "S1",
            uid: true,
            key: &SearchKey::All,
            sort: Some(&date),
            result: vec![2, 1, 3],
        };
        open(&mut view, sort_ctx, &mut out);
        let search_ctx = NewContext {
            tag: "Q1",
            uid: false,
            key: &SearchKey::Unseen,
            sort: None,
            result: vec![1, 2, 3],
        };
        open(&mut view, search_ctx, &mut out);
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));

        async fn report(view: &mut SelectedView) -> String {
            let mut out = Vec::new();
            let valid = view
                .report_changes(true, Enabled::default(), true, &mut out)
                .await
                .expect("report");
            assert!(valid);
            update(view, &mut out).await.expect("update");
            String::from_utf8(out).expect("ascii")
        }
        std::fs::write(
            store.root().join("new/1700000000.M1P1.outside"),
            "Subject: D\nDate: 2 Jan 2024 10:00 +0000\n\nx\n",
        )
        .expect("deliver");
        f.sync(false).expect("sync");
        let got = report(&mut view).await;
        assert!(
            got.ends_with(
                "* 4 EXISTS\r\n* 1 RECENT\r\n\
                 * ESEARCH (TAG \"S1\") UID ADDTO (2 4)\r\n\
                 * ESEARCH (TAG \"Q1\") ADDTO (0 4)\r\n"
            ) || got.ends_with(
                "* 4 EXISTS\r\n* 0 RECENT\r\n\
                 * ESEARCH (TAG \"S1\") UID ADDTO (2 4)\r\n\
                 * ESEARCH (TAG \"Q1\") ADDTO (0 4)\r\n"
            ),
            "{got}"
        );
        // Now in DATE order: B(2) D(4) A(1) C(3). Another program deletes A.
        for sub in ["cur", "new"] {
            for e in std::fs::read_dir(store.root().join(sub)).expect("dir") {
                let p = e.expect("entry").path();
                if std::fs::read(&p).expect("read").starts_with(b"Subject: A") {
                    std::fs::remove_file(&p).expect("remove");
                }
            }
        }
        f.sync(false).expect("sync");
        let got = report(&mut view).await;
        assert_eq!(
            got,
            "* ESEARCH (TAG \"S1\") UID REMOVEFROM (3 1)\r\n\
             * ESEARCH (TAG \"Q1\") REMOVEFROM (0 1)\r\n\
             * 1 EXPUNGE\r\n"
        );
    }

    #[test]
    fn frozen_keys() {
        use crate::flags::Flags;
        use crate::store::{ClosingStore, MailStore, Registry, StoreOptions};
        use SeqNum::{Asterisk, Value};
        let d = tempfile::tempdir().expect("tempdir");
        let store = ClosingStore(
            MailStore::open(
                d.path().to_path_buf(),
                Registry::new(),
                StoreOptions { fsync: false },
            )
            .expect("store"),
        );
        let f = store.open_folder("INBOX").expect("folder");
        for _ in 0..6 {
            f.append(b"Subject: x\n\nx\n", &Flags::new(), None)
                .expect("append");
        }
        // UIDs 1..6; expunge 2 and 4: the view numbers 1 3 5 6 as 1..4.
        let deleted = Flags::from_flags(&[crate::flags::Flag::Deleted]);
        f.store_flags(&[2, 4], crate::flags::FlagOp::Add, &deleted, None)
            .expect("flag");
        f.expunge(None).expect("expunge");
        let mut view = SelectedView::new(
            f.clone(),
            "INBOX".into(),
            false,
            vec![],
            f.view_start(),
            vec![],
        );
        assert_eq!(view.uids(), &[1, 3, 5, 6]);
        view.saved = vec![3, 5, 6];
        let set = |r: &[(SeqNum, SeqNum)]| SequenceSet::Ranges(r.to_vec());
        let uid = |r: &[(u32, u32)]| {
            SearchKey::Uid(set(&r
                .iter()
                .map(|&(a, b)| (Value(a), Value(b)))
                .collect::<Vec<_>>()))
        };
        let cases = vec![
            // Sequence numbers 2:3 were UIDs 3 and 5: the run 3:5.
            (
                SearchKey::SequenceSet(set(&[(Value(2), Value(3))])),
                uid(&[(3, 5)]),
                1,
            ),
            // `*` is the last message now; numbers past the end mean none.
            (
                SearchKey::SequenceSet(set(&[(Value(4), Asterisk), (Value(9), Value(9))])),
                uid(&[(6, 6)]),
                1,
            ),
            (
                SearchKey::Not(Box::new(SearchKey::Uid(set(&[(Value(4), Asterisk)])))),
                SearchKey::Not(Box::new(uid(&[(4, 6)]))),
                1,
            ),
            (
                SearchKey::And(vec![
                    SearchKey::Seen,
                    SearchKey::SequenceSet(SequenceSet::Saved),
                ]),
                SearchKey::And(vec![SearchKey::Seen, uid(&[(3, 3), (5, 6)])]),
                2,
            ),
            (SearchKey::Flagged, SearchKey::Flagged, 0),
        ];
        for (key, want, n) in cases {
            assert_eq!(freeze(&key, &view), (want, n), "{key:?}");
        }
    }

    #[test]
    fn uid_runs() {
        assert_eq!(runs_of(&[]), vec![]);
        assert_eq!(runs_of(&[1, 2, 3, 7, 9, 10]), vec![(1, 3), (7, 7), (9, 10)]);
        assert_eq!(
            runs_of(&[u32::MAX - 1, u32::MAX]),
            vec![(u32::MAX - 1, u32::MAX)]
        );
    }
}
