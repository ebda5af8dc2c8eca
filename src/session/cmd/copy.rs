//! COPY, MOVE and their UID forms (RFC 9051 §6.4.7, §6.4.8; RFC 6851 MOVE;
//! COPYUID from RFC 4315).

use crate::proto::SequenceSet;
use crate::session::names::from_wire;
use crate::session::{CmdResult, Session, State, Status};
use crate::store::{MailStore, StoreError};

pub async fn copy(
    s: &mut Session,
    uid: bool,
    set: SequenceSet,
    mailbox: String,
    is_move: bool,
) -> CmdResult {
    let dest_name = from_wire(&mailbox, s.enabled)?;
    let State::Selected(authed, view) = &mut s.state else {
        return Err(Status::bad("No mailbox selected."));
    };
    let pairs = view.resolve(&set, uid)?;
    if is_move && view.read_only {
        return Err(Status::no(Some("CANNOT"), "Mailbox is read-only."));
    }
    let uids: Vec<u32> = pairs
        .iter()
        .map(|&(_, u)| u)
        .filter(|u| !view.is_expunged(*u))
        .collect();
    let store = authed.store.clone();
    let src = view.folder.clone();
    // Another program's lock on the destination is waited for here, not
    // on a blocking-pool thread (store::maildir::dotlock).
    store.wait_unlocked(&dest_name).await?;
    let (st, name) = (store.clone(), dest_name.clone());
    let uids = std::sync::Arc::new(uids);
    let result = super::select::retry_unlocked(&store, &dest_name, move || {
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
                Some("TRYCREATE"),
                "Destination mailbox doesn't exist.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let verb = if is_move { "MOVE" } else { "COPY" };
    if moved.is_empty() {
        return Ok(Status::ok(format!("{verb} completed, no messages.")));
    }
    let mut code = format!("COPYUID {validity} ").into_bytes();
    let src_uids: Vec<u32> = moved.iter().map(|p| p.0).collect();
    let dst_uids: Vec<u32> = moved.iter().map(|p| p.1).collect();
    set_in_order(&mut code, &src_uids);
    code.push(b' ');
    set_in_order(&mut code, &dst_uids);
    let code = String::from_utf8_lossy(&code).into_owned();
    if is_move {
        // RFC 6851 §4.3: COPYUID goes in an untagged OK before the
        // EXPUNGEs, which the dispatcher sends after this handler.
        s.line(format!("* OK [{code}] Moved UIDs."));
        Ok(Status::ok("MOVE completed."))
    } else {
        Ok(Status::ok_code(code, "COPY completed."))
    }
}

/// COPYUID's two sets must correspond element by element, so they are
/// written in source order with only adjacent runs compressed.
fn set_in_order(out: &mut Vec<u8>, nums: &[u32]) {
    let mut i = 0;
    let mut first = true;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && nums[j + 1] == nums[j].wrapping_add(1) {
            j += 1;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if j > i {
            out.extend_from_slice(format!("{}:{}", nums[i], nums[j]).as_bytes());
        } else {
            out.extend_from_slice(nums[i].to_string().as_bytes());
        }
        i = j + 1;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copyuid_sets_keep_order() {
        let mut v = Vec::new();
        super::set_in_order(&mut v, &[3, 4, 5, 9, 7]);
        assert_eq!(v, b"3:5,9,7");
    }
}
