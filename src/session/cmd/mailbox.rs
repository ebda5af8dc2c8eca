//! CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS (RFC 9051 §6.3).

use crate::proto::StatusItem;
use crate::proto::response::{Code, StatusKind};
use crate::session::mailboxes::status_response;
use crate::session::names::{SEP, from_wire};
use crate::session::unlocked::blocking_unlocked;
use crate::session::{CmdResult, Session, State, Status, blocking};

pub async fn create(s: &mut Session, mailbox: String, special_use: Vec<String>) -> CmdResult {
    // CREATE-SPECIAL-USE (RFC 6154 §3): only the attributes of §2, each
    // once; stored beside the folder (`store::special_use`).
    let mut uses: Vec<String> = Vec::new();
    for a in &special_use {
        let Some(known) = crate::session::names::known_special_use(a) else {
            return Err(Status::no(
                Some(Code::UseAttr),
                format!("{a} is not a special-use attribute."),
            ));
        };
        if !uses.iter().any(|u| u == known) {
            uses.push(known.to_string());
        }
    }
    let mut name = from_wire(&mailbox, s.enabled)?;
    // A trailing separator only says the client intends children (§6.3.4).
    while name.ends_with(SEP) {
        name.pop();
    }
    if name.is_empty() {
        return Err(Status::no(Some(Code::Cannot), "Empty mailbox name."));
    }
    if name == "INBOX" {
        return Err(Status::no(
            Some(Code::AlreadyExists),
            "INBOX always exists.",
        ));
    }
    let store = s.store()?;
    let id = blocking(move || -> Result<String, crate::store::StoreError> {
        store.create_folder(&name)?;
        if !uses.is_empty() {
            store.set_special_use(&name, &uses)?;
        }
        // RFC 8474 §4: the new mailbox's ID in the tagged OK. Opening it
        // writes its uidlist, whose GUID the ID is.
        Ok(store.open_folder(&name)?.mailbox_id())
    })
    .await??;
    Ok(Status::ok_code(Code::MailboxId(id), "CREATE completed."))
}

pub async fn delete(s: &mut Session, mailbox: String) -> CmdResult {
    let name = from_wire(&mailbox, s.enabled)?;
    if name == "INBOX" {
        return Err(Status::no(Some(Code::Cannot), "INBOX cannot be deleted."));
    }
    // Deleting the selected mailbox leaves the selected state, and the
    // client is told so with CLOSED (RFC 9051 §7.1), rev1 clients too (they
    // ignore codes they do not know, RFC 3501 §7.1). Dovecot instead ends
    // the connection at the next command (BYE): a phone would then
    // reconnect and log in again for nothing.
    if let State::Selected(_, view) = &s.state {
        if view.name == name {
            s.state.leave_selected();
            s.untagged(
                StatusKind::Ok,
                Some(Code::Closed),
                "Selected mailbox deleted.",
            );
        }
    }
    let store = s.store()?;
    blocking(move || store.delete_folder(&name)).await??;
    Ok(Status::ok("DELETE completed."))
}

pub async fn rename(s: &mut Session, from: String, to: String) -> CmdResult {
    let from = from_wire(&from, s.enabled)?;
    let mut to = from_wire(&to, s.enabled)?;
    while to.ends_with(SEP) {
        to.pop();
    }
    if to == "INBOX" {
        return Err(Status::no(
            Some(Code::AlreadyExists),
            "INBOX always exists.",
        ));
    }
    if to.is_empty() {
        return Err(Status::no(Some(Code::Cannot), "Empty mailbox name."));
    }
    if to.starts_with(&format!("{from}{SEP}")) {
        return Err(Status::no(
            Some(Code::Cannot),
            "Cannot rename a mailbox into its own child.",
        ));
    }
    let store = s.store()?;
    blocking(move || store.rename_folder(&from, &to)).await??;
    Ok(Status::ok("RENAME completed."))
}

pub async fn subscribe(s: &mut Session, mailbox: String, on: bool) -> CmdResult {
    let name = from_wire(&mailbox, s.enabled)?;
    let store = s.store()?;
    blocking(move || store.set_subscribed(&name, on)).await??;
    Ok(Status::ok(if on {
        "SUBSCRIBE completed."
    } else {
        "UNSUBSCRIBE completed."
    }))
}

pub async fn status(s: &mut Session, mailbox: String, items: Vec<StatusItem>) -> CmdResult {
    let name = from_wire(&mailbox, s.enabled)?;
    let store = s.store()?;
    let n = name.clone();
    let need_size =
        items.contains(&StatusItem::Size) || items.contains(&StatusItem::DeletedStorage);
    let st = blocking_unlocked(&store.clone(), &name, move || {
        store.status_opts(&n, need_size)
    })
    .await??;
    status_response(&name, &st, &items, s);
    Ok(Status::ok("STATUS completed."))
}
