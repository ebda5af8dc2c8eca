//! SELECT, EXAMINE (RFC 9051 §6.3.2–3), CLOSE and UNSELECT (§6.4.1–2).

use crate::flags::sys;
use crate::proto::Qresync;
use crate::proto::data::Data;
use crate::proto::data::FetchItem;
use crate::proto::response::{Code, StatusKind};
use crate::session::mailboxes::select_list_line;
use crate::session::names::from_wire;
use crate::session::unlocked::blocking_unlocked;
use crate::session::{CmdResult, SelectedView, Session, State, Status, blocking};
use crate::store::StoreError;

/// `condstore`: the `(CONDSTORE)` parameter (RFC 7162 §3.1.8), which turns
/// CONDSTORE on for the session. `qresync`: what the client knew (§3.2.5):
/// if the UIDVALIDITY is still the same, the client is told what vanished
/// and what changed since, before the tagged OK.
pub async fn select(
    s: &mut Session,
    mailbox: String,
    read_only: bool,
    condstore: bool,
    qresync: Option<Qresync>,
) -> CmdResult {
    if qresync.is_some() && !s.enabled.qresync {
        return Err(Status::bad("QRESYNC needs ENABLE QRESYNC first."));
    }
    let name = from_wire(&mailbox, s.enabled)?;
    // Selecting always leaves the previous mailbox first, even if the new
    // one fails (RFC 9051 §6.3.2); rev2 clients are told with [CLOSED].
    let was_selected = matches!(s.state, State::Selected(..));
    s.state.leave_selected();
    if was_selected && s.enabled.rev2 {
        s.untagged(
            StatusKind::Ok,
            Some(Code::Closed),
            "Previous mailbox closed.",
        );
    }
    let Some(authed) = s.state.authed() else {
        return Err(Status::bad("Not authenticated."));
    };
    let store = authed.store.clone();
    let open_name = name.clone();
    let enabled = s.enabled;
    let special_use_config = s.shared.config.mail.special_use.clone();
    let (folder, recent, list_line, keywords, first_unseen, start) =
        blocking_unlocked(&store.clone(), &name, move || -> Result<_, StoreError> {
            // The open fails (busy) before anything below is done.
            let folder = store.open_folder_with(&open_name, !read_only)?;
            // EXAMINE shows \Recent as SELECT would, without claiming it
            // (RFC 3501 §6.3.2).
            let recent = if read_only {
                folder.peek_recent()
            } else {
                folder.take_recent()
            };
            let list_line = if enabled.rev2 {
                let folders: Vec<String> =
                    store.list_folders()?.into_iter().map(|e| e.name).collect();
                let uses = crate::session::names::SpecialUses::new(
                    store.special_uses()?,
                    &special_use_config,
                );
                select_list_line(
                    &open_name,
                    &folders,
                    &store.subscriptions()?,
                    enabled,
                    &uses,
                )
            } else {
                None
            };
            let (keywords, first_unseen) = flags_and_first_unseen(&folder);
            let start = folder.view_start();
            let resync = qresync
                .clone()
                .filter(|q| q.uidvalidity == start.uidvalidity)
                .map(|q| resync(&folder, &q, &start));
            let mailbox_id = folder.mailbox_id();
            Ok((
                folder,
                recent,
                list_line,
                keywords,
                first_unseen,
                (start, resync, mailbox_id),
            ))
        })
        .await??;
    let (start, resync, mailbox_id) = start;

    let (uidvalidity, uidnext, highest) = (start.uidvalidity, start.uidnext, start.highest_modseq);
    let view = SelectedView::new(folder, name, read_only, recent, start, keywords);
    view.flags_responses(&mut s.out);
    s.data(&Data::Exists(view.len()));
    if !s.enabled.rev2 {
        s.data(&Data::Recent(view.recent_count()));
        if let Some(n) = first_unseen {
            s.untagged(
                StatusKind::Ok,
                Some(Code::Unseen(n as u32)),
                "First unseen.",
            );
        }
    }
    s.untagged(
        StatusKind::Ok,
        Some(Code::UidValidity(uidvalidity)),
        "UIDs valid.",
    );
    s.untagged(
        StatusKind::Ok,
        Some(Code::UidNext(uidnext)),
        "Predicted next UID.",
    );
    // With every SELECT and EXAMINE, CONDSTORE on or not: modseqs are kept
    // for every mailbox (RFC 7162 §3.1.2.1; never NOMODSEQ). Dovecot sends
    // it only once CONDSTORE is on; the RFC's MUST is followed here.
    s.untagged(
        StatusKind::Ok,
        Some(Code::HighestModSeq(highest)),
        "Highest mod-sequence.",
    );
    // RFC 8474 §4.
    s.untagged(StatusKind::Ok, Some(Code::MailboxId(mailbox_id)), "Ok");
    if condstore {
        s.enabled.condstore = true;
    }
    if let Some((gone, changed)) = resync {
        // Every VANISHED (EARLIER) before any FETCH (RFC 7162 §3.2.6).
        crate::session::qresync::write(&mut s.out, true, &gone);
        let shown = crate::session::condstore::Shown {
            uid: true,
            condstore: true,
        };
        for m in &changed {
            if let Some(seq) = view.seq_of(m.uid) {
                let flags = FetchItem::Flags {
                    flags: &m.flags,
                    recent: !s.enabled.rev2 && view.is_recent(m.uid),
                };
                shown.write_flags(&mut s.out, seq, m, flags);
            }
        }
    }
    if let Some(line) = list_line {
        // RFC 9051 §6.3.2: a LIST response for the selected mailbox.
        s.out.extend_from_slice(&line);
    }
    let Some(authed) = take_authed(s) else {
        return Err(Status::bad("Not authenticated."));
    };
    s.state = State::Selected(authed, Box::new(view));
    if read_only {
        Ok(Status::ok_code(Code::ReadOnly, "EXAMINE completed."))
    } else {
        Ok(Status::ok_code(Code::ReadWrite, "SELECT completed."))
    }
}

/// What a QRESYNC SELECT tells beyond a plain one: the UIDs of the client's
/// known set (all UIDs below UIDNEXT if it gave none) that vanished since
/// its modseq, and the messages of that set changed since.
fn resync(
    folder: &crate::store::Folder,
    q: &Qresync,
    start: &crate::store::ViewStart,
) -> (Vec<(u32, u32)>, Vec<crate::store::MessageMeta>) {
    use crate::session::qresync::{below_uidnext, in_ranges, vanished};
    // known-uids has no `*` (the parser refuses it).
    let asked = match &q.known_uids {
        Some(set) => set.ranges(0),
        None => vec![(1, u32::MAX)],
    };
    let within = below_uidnext(asked, start.uidnext);
    let gone = vanished(folder, q.modseq, &within, &start.uid_list);
    let changed = folder
        .changed_since(q.modseq)
        .into_iter()
        .filter(|m| in_ranges(&within, m.uid))
        .collect();
    (gone, changed)
}

fn take_authed(s: &mut Session) -> Option<crate::session::Authed> {
    match std::mem::replace(&mut s.state, State::Logout) {
        State::Authenticated(a) | State::Selected(a, _) => Some(a),
        other => {
            s.state = other;
            None
        }
    }
}

/// CLOSE: expunge silently (read-write only), then leave.
pub async fn close(s: &mut Session) -> CmdResult {
    if let State::Selected(_, view) = &s.state {
        if !view.read_only {
            let folder = view.folder.clone();
            blocking(move || folder.expunge(None)).await??;
        }
    }
    s.state.leave_selected();
    Ok(Status::ok("CLOSE completed."))
}

pub fn unselect(s: &mut Session) -> CmdResult {
    s.state.leave_selected();
    Ok(Status::ok("UNSELECT completed."))
}

/// The keywords for FLAGS (those the folder defines, plus any a message
/// carries beyond them: more than 26 live only in the index; compared
/// case-insensitively) and the first unseen message's sequence number.
/// One pass over the folder, run off the runtime.
fn flags_and_first_unseen(folder: &crate::store::Folder) -> (Vec<String>, Option<usize>) {
    let mut keywords = folder.defined_keywords();
    let mut first_unseen = None;
    folder.for_each_flags(|seq, flags| {
        for k in flags.keywords() {
            // Few keywords: a scan, and no allocation per message.
            if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                keywords.push(k.clone());
            }
        }
        if first_unseen.is_none() && !flags.has(sys::SEEN) {
            first_unseen = Some(seq);
        }
    });
    (keywords, first_unseen)
}
