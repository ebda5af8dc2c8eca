//! REPLACE and UID REPLACE (RFC 8508): a draft saved again by a client
//! that edits it. The new message is saved first, as APPEND saves (into
//! any mailbox, all its checks included: quota, size, CATENATE), and only
//! once it is on disk is the old one removed from the selected mailbox:
//! a failure leaves the old message as it was, and no moment has neither.
//! The untagged `OK [APPENDUID ...]` (RFC 8508 §3.3) comes before the
//! expunge of the old message, which the dispatcher's change report tells
//! (EXPUNGE, or VANISHED under QRESYNC) before the tagged OK.

use crate::proto::response::{Code, StatusKind};
use crate::proto::{AppendMessage, SeqNum, SequenceSet};
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Session, Status, blocking};

pub async fn replace(
    s: &mut Session,
    view: &mut SelectedView,
    uid: bool,
    number: SeqNum,
    mailbox: String,
    message: AppendMessage,
) -> CmdResult {
    if view.read_only {
        return Err(Status::no(
            Some(Code::ReadOnly),
            "The selected mailbox is read-only.",
        ));
    }
    let set = SequenceSet::Ranges(vec![(number, number)]);
    let old = match view.resolve(&set, uid)?.first() {
        Some(&(_, u)) if !view.is_expunged(u) => u,
        _ => {
            return Err(Status::no(
                Some(Code::Nonexistent),
                "No such message to replace.",
            ));
        }
    };
    let (validity, uids) = super::append::save(s, &mailbox, vec![message]).await?;
    s.untagged(
        StatusKind::Ok,
        Some(Code::AppendUid {
            uidvalidity: validity,
            uids,
        }),
        "Replacement message saved.",
    );
    let folder = view.folder.clone();
    blocking(move || folder.remove(&[old])).await??;
    Ok(Status::ok("REPLACE completed."))
}
