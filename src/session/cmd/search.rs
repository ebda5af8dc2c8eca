//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH results (RFC 4731,
//! the only form a rev2 client gets), SEARCHRES (RFC 5182) and CONTEXT
//! (RFC 5267): how the result is answered is `session::esearch`'s.
//!
//! The search program is run by `session::evaluate` (shared with SORT and
//! THREAD), off the runtime; this file answers with what it found.

use crate::proto::data::Data;
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
    crate::session::context::check_tag(view, tag, cmd.ret.as_deref())?;
    let candidates = Candidates::of(view);
    let key = cmd.criteria.clone();
    let found: Vec<(u32, u32)> = blocking(move || evaluate(&candidates, &key)).await??;

    let ret = match &cmd.ret {
        None if !rev2 => {
            let nums: Vec<u32> = found
                .iter()
                .map(|&(seq, uid)| if cmd.uid { uid } else { seq })
                .collect();
            s.data(&Data::Search(&nums));
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
    };
    crate::session::esearch::answer(s, view, asked, &found)?;
    if ret == [SearchReturn::Save] {
        return Ok(Status::ok("SEARCH completed, result saved."));
    }
    Ok(Status::ok("SEARCH completed."))
}
