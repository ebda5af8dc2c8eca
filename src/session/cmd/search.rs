//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH results (RFC 4731,
//! the only form a rev2 client gets), SEARCHRES (RFC 5182) and CONTEXT
//! (RFC 5267): how the result is answered is `session::esearch`'s.
//!
//! The search program is run by `session::evaluate` (shared with SORT and
//! THREAD), off the runtime; this file answers with what it found.

use crate::proto::data::Data;
use crate::proto::{SearchCommand, SearchReturn};
use crate::session::condstore::mentions_modseq;
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
    crate::session::context::check_tag(view, tag, cmd.ret.as_deref())?;
    let candidates = Candidates::of(view);
    let key = cmd.criteria.clone();
    let found: Vec<(u32, u32)> = blocking(move || evaluate(&candidates, &key)).await??;
    // RFC 7162 §3.1.5: a search that used MODSEQ names the highest modseq
    // of what it found.
    let modseqs: Option<Vec<u64>> = if mentions_modseq(&cmd.criteria) && !found.is_empty() {
        let uids: Vec<u32> = found.iter().map(|f| f.1).collect();
        let metas = crate::session::metas_of(&view.folder, uids).await?;
        Some(
            metas
                .iter()
                .map(|m| m.as_ref().map_or(0, |m| m.modseq))
                .collect(),
        )
    } else {
        None
    };

    let ret = match &cmd.ret {
        None if !rev2 => {
            let nums: Vec<u32> = found
                .iter()
                .map(|&(seq, uid)| if cmd.uid { uid } else { seq })
                .collect();
            let highest = modseqs.as_ref().and_then(|m| m.iter().copied().max());
            s.data(&Data::Search(&nums, highest));
            return Ok(Status::ok("SEARCH completed."));
        }
        // A rev2 client always gets ESEARCH (RFC 9051 §6.4.4).
        None => &[][..],
        Some(r) => &r[..],
    };
    let asked = crate::session::esearch::Asked {
        tag,
        uid: cmd.uid,
        ret,
        key: &cmd.criteria,
        sort: None,
        modseqs: modseqs.as_deref(),
    };
    crate::session::esearch::answer(s, view, asked, &found)?;
    if ret == [SearchReturn::Save] {
        return Ok(Status::ok("SEARCH completed, result saved."));
    }
    Ok(Status::ok("SEARCH completed."))
}
