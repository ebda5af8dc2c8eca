//! APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502) and APPENDUID
//! (RFC 4315). Every message is on disk and fsynced before the tagged OK
//! (the store guarantees it); MULTIAPPEND is all or nothing (RFC 3502 §6):
//! the quota is checked for the whole command first, and should a later
//! message still fail, the ones saved before it are removed again (other
//! sessions may have seen them come and go).
//!
//! CATENATE messages (RFC 4469) are built first (`cmd::catenate`), into
//! the spool, and then saved as big messages are.
//!
//! Big messages arrive already on disk, in the command's spool
//! (`session::literal`), and are saved from there; the rest arrived with
//! the command.

use crate::proto::response::Code;
use std::sync::Arc;

use crate::flags::{Flag, Flags};
use crate::proto::{AppendData, AppendMessage};
use crate::session::names::from_wire;
use crate::session::{CmdResult, Session, Status};
use crate::store::{MailStore, StoreError};

pub async fn append(s: &mut Session, mailbox: String, messages: Vec<AppendMessage>) -> CmdResult {
    let (validity, uids) = save(s, &mailbox, messages).await?;
    let code = Code::AppendUid {
        uidvalidity: validity,
        uids,
    };
    Ok(Status::ok_code(code, "APPEND completed."))
}

/// Saves `messages` into `mailbox` (wire form) as APPEND does, all or
/// nothing: the UIDVALIDITY and the new UIDs. REPLACE saves its message
/// through here too.
pub(super) async fn save(
    s: &mut Session,
    mailbox: &str,
    mut messages: Vec<AppendMessage>,
) -> Result<(u32, Vec<u32>), Status> {
    let name = from_wire(mailbox, s.enabled)?;
    let store = s.store()?;
    let spool = s.spool.take();
    for m in &messages {
        if let Some(Flag::Extension(x)) = m.flags.iter().find(|f| matches!(f, Flag::Extension(_))) {
            return Err(Status::bad(format!("Invalid system flag \\{x}.")));
        }
    }
    // CATENATE messages are built into the spool first (session::cmd::
    // catenate): a URL that names nothing fails the command before any
    // message is saved.
    let spool = super::catenate::assemble(s, &mut messages, spool).await?;
    for m in &messages {
        if m.data.is_empty() {
            return Err(Status::no(None, "Can't save a zero byte message."));
        }
    }
    // Another program's lock on the folder is waited for here, not on a
    // blocking-pool thread (store::maildir::dotlock).
    store.wait_unlocked(&name).await?;
    let messages = Arc::new(messages);
    let st = store.clone();
    let n = name.clone();
    let result = crate::session::unlocked::retry_unlocked(
        &store,
        &name,
        move || -> Result<_, StoreError> {
            // The first look at a folder may need the lock too (to number what
            // others delivered). Should another program have taken it since
            // the wait above, that look gives up, nothing being saved yet, and
            // the wait is repeated without a thread.
            let folder = MailStore::without_lock_waits(|| st.open_folder_for_write(&n))?;
            if messages.len() > 1 {
                // The quota for the whole MULTIAPPEND before its first
                // message: all or nothing (RFC 3502 §6).
                let bytes: u64 = messages
                    .iter()
                    .map(|m| match (&m.data, &spool) {
                        (AppendData::Bytes(d), _) => d.len() as u64,
                        (AppendData::Diverted { index, .. }, Some(sp)) => {
                            sp.part(*index).map_or(0, |p| p.len)
                        }
                        _ => 0,
                    })
                    .sum();
                folder.check_room(bytes, messages.len() as u64)?;
            }
            let mut uids = Vec::with_capacity(messages.len());
            let saved = (|| -> Result<(), StoreError> {
                for m in messages.iter() {
                    let flags = Flags::from_flags(&m.flags);
                    let date = m.date.map(|d| d.timestamp());
                    let uid = match (&m.data, &spool) {
                        (AppendData::Bytes(data), _) => folder.append(data, &flags, date)?,
                        (AppendData::Diverted { index, .. }, Some(spool)) => {
                            folder.append_spooled(spool, *index, &flags, date)?
                        }
                        (AppendData::Diverted { .. }, None) | (AppendData::Catenate(_), _) => {
                            return Err(StoreError::Cannot("spooled message missing".into()));
                        }
                    };
                    uids.push(uid);
                }
                Ok(())
            })();
            if let Err(e) = saved {
                // A later message failed (the disk, a limit another writer
                // reached meanwhile): take back the ones saved, so the
                // command leaves nothing behind (RFC 3502 §6).
                if !uids.is_empty() {
                    if let Err(undo) = folder.remove(&uids) {
                        tracing::warn!(error = %undo, "MULTIAPPEND: cannot take back the messages saved before a failure");
                    }
                }
                return Err(e);
            }
            Ok((folder.uidvalidity(), uids))
        },
    )
    .await?;
    match result {
        Ok(r) => Ok(r),
        Err(StoreError::NotFound) => {
            Err(Status::no(Some(Code::TryCreate), "Mailbox doesn't exist."))
        }
        Err(e) => Err(e.into()),
    }
}
