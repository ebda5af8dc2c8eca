//! COPY, MOVE and their UID forms (RFC 9051 §6.4.7, §6.4.8; RFC 6851 MOVE;
//! COPYUID from RFC 4315).

use crate::proto::SequenceSet;
use crate::proto::response::{Code, StatusKind};
use crate::session::names::from_wire;
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Session, Status};
use crate::store::{MailStore, StoreError};

pub async fn copy(
    s: &mut Session,
    view: &mut SelectedView,
    uid: bool,
    set: SequenceSet,
    mailbox: String,
    is_move: bool,
) -> CmdResult {
    let dest_name = from_wire(&mailbox, s.enabled)?;
    let store = s.store()?;
    let pairs = view.resolve(&set, uid)?;
    if is_move && view.read_only {
        return Err(Status::no(Some(Code::Cannot), "Mailbox is read-only."));
    }
    let uids: Vec<u32> = pairs
        .iter()
        .map(|&(_, u)| u)
        .filter(|u| !view.is_expunged(*u))
        .collect();
    let src = view.folder.clone();
    // Another program's lock on the destination is waited for here, not
    // on a blocking-pool thread (store::maildir::dotlock).
    store.wait_unlocked(&dest_name).await?;
    let (st, name) = (store.clone(), dest_name.clone());
    let uids = std::sync::Arc::new(uids);
    let result = crate::session::unlocked::retry_unlocked(&store, &dest_name, move || {
        // As in APPEND: the first look may give up, nothing copied yet.
        let dest = MailStore::without_lock_waits(|| st.open_folder_for_write(&name))?;
        if uids.is_empty() {
            return Ok((dest.uidvalidity(), Vec::new()));
        }
        let pairs = if is_move {
            src.move_to(&uids, &dest)?
        } else {
            src.copy_to(&uids, &dest)?
        };
        Ok((dest.uidvalidity(), pairs))
    })
    .await?;
    let (validity, moved) = match result {
        Ok(r) => r,
        Err(StoreError::NotFound) => {
            return Err(Status::no(
                Some(Code::TryCreate),
                "Destination mailbox doesn't exist.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let verb = if is_move { "MOVE" } else { "COPY" };
    if moved.is_empty() {
        return Ok(Status::ok(format!("{verb} completed, no messages.")));
    }
    let code = Code::CopyUid {
        uidvalidity: validity,
        from: moved.iter().map(|p| p.0).collect(),
        to: moved.iter().map(|p| p.1).collect(),
    };
    if is_move {
        // RFC 6851 §4.3: COPYUID goes in an untagged OK before the
        // EXPUNGEs, which the dispatcher sends after this handler.
        s.untagged(StatusKind::Ok, Some(code), "Moved UIDs.");
        Ok(Status::ok("MOVE completed."))
    } else {
        Ok(Status::ok_code(code, "COPY completed."))
    }
}
