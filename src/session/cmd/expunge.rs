//! EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, RFC 4315 §2.1). The untagged
//! EXPUNGE responses are written by the dispatcher's change report, the
//! same path that reports other sessions' expunges.

use crate::proto::SequenceSet;
use crate::proto::response::Code;
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Status, blocking};

/// `condstore`: CONDSTORE (or QRESYNC, which turns it on) is on, and the
/// tagged OK names the mailbox's HIGHESTMODSEQ after the expunge (RFC 7162
/// §3.2.10 for QRESYNC; for a CONDSTORE client too, as Dovecot does and
/// as issue 18 asks of every command that changes it), which the EXPUNGE
/// or VANISHED responses this command is answered with bring the client
/// up to.
pub async fn expunge(
    view: &mut SelectedView,
    uids: Option<SequenceSet>,
    condstore: bool,
) -> CmdResult {
    if view.read_only {
        return Err(Status::no(Some(Code::Cannot), "Mailbox is read-only."));
    }
    let only: Option<Vec<u32>> = match &uids {
        None => None,
        Some(set) => Some(
            view.resolve(set, true)?
                .into_iter()
                .map(|(_, u)| u)
                .collect(),
        ),
    };
    let folder = view.folder.clone();
    let highest = blocking(move || {
        folder.expunge(only.as_deref())?;
        Ok::<_, crate::store::StoreError>(folder.highest_modseq())
    })
    .await??;
    if condstore {
        return Ok(Status::ok_code(
            Code::HighestModSeq(highest),
            "EXPUNGE completed.",
        ));
    }
    Ok(Status::ok("EXPUNGE completed."))
}
