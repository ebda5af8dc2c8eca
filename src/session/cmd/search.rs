//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH results (RFC 4731,
//! the only form a rev2 client gets) and SEARCHRES (RFC 5182).
//!
//! The search program is run by `session::evaluate` (shared with SORT and
//! THREAD), off the runtime; this file answers with what it found.

use crate::proto::data::{Data, Esearch};
use crate::proto::{SearchCommand, SearchReturn};
use crate::session::evaluate::{Candidates, evaluate};
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Session, Status, blocking};

pub async fn search(
    s: &mut Session,
    view: &mut SelectedView,
    tag: &str,
    cmd: SearchCommand,
) -> CmdResult {
    let rev2 = s.enabled.rev2;
    let candidates = Candidates::of(view);
    let key = cmd.criteria.clone();
    let found: Vec<(u32, u32)> = blocking(move || evaluate(&candidates, &key)).await??;

    let nums: Vec<u32> = found
        .iter()
        .map(|&(seq, uid)| if cmd.uid { uid } else { seq })
        .collect();
    let ret = match &cmd.ret {
        None if !rev2 => {
            s.data(&Data::Search(&nums));
            return Ok(Status::ok("SEARCH completed."));
        }
        None => vec![SearchReturn::All],
        Some(r) if r.is_empty() => vec![SearchReturn::All],
        Some(r) => r.clone(),
    };
    let want = |r: SearchReturn| ret.contains(&r);
    if want(SearchReturn::Save) {
        let only_minmax = !want(SearchReturn::All)
            && !want(SearchReturn::Count)
            && (want(SearchReturn::Min) || want(SearchReturn::Max));
        view.saved = if only_minmax {
            let mut v = Vec::new();
            if want(SearchReturn::Min) {
                v.extend(found.first().map(|&(_, u)| u));
            }
            if want(SearchReturn::Max) {
                v.extend(found.last().map(|&(_, u)| u));
            }
            v.sort_unstable();
            v.dedup();
            v
        } else {
            found.iter().map(|&(_, u)| u).collect()
        };
        if ret.iter().all(|r| *r == SearchReturn::Save) {
            // SAVE alone: no ESEARCH response (RFC 5182 §2.1).
            return Ok(Status::ok("SEARCH completed, result saved."));
        }
    }
    s.data(&Data::Esearch(Esearch {
        tag,
        uid: cmd.uid,
        min: nums.first().copied().filter(|_| want(SearchReturn::Min)),
        max: nums.last().copied().filter(|_| want(SearchReturn::Max)),
        all: if want(SearchReturn::All) { &nums } else { &[] },
        count: want(SearchReturn::Count).then_some(nums.len()),
    }));
    Ok(Status::ok("SEARCH completed."))
}
