//! STORE and UID STORE (RFC 9051 §6.4.6, CONDSTORE's UNCHANGEDSINCE from
//! RFC 7162 §3.1.3).

use crate::flags::{Flag, FlagOp, Flags};
use crate::proto::SequenceSet;
use crate::proto::data::{self, Data, FetchItem};
use crate::proto::response::Code;
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Session, Status, blocking};

#[allow(clippy::too_many_arguments)]
pub async fn store(
    s: &mut Session,
    view: &mut SelectedView,
    uid: bool,
    set: SequenceSet,
    op: FlagOp,
    silent: bool,
    flags: Vec<Flag>,
    unchanged_since: Option<u64>,
) -> CmdResult {
    let rev2 = s.enabled.rev2;
    // Once CONDSTORE is on, every FETCH this sends carries UID and MODSEQ
    // (RFC 7162 §3.1), .SILENT ones included: those say just that, for the
    // messages this STORE changed (§3.1.3, erratum 3401's example), so the
    // client's highest modseq stays right without a FLAGS it did not want.
    let condstore = s.enabled.condstore;
    if let Some(Flag::Extension(x)) = flags.iter().find(|f| matches!(f, Flag::Extension(_))) {
        return Err(Status::bad(format!("Invalid system flag \\{x}.")));
    }
    let pairs = view.resolve(&set, uid)?;
    if view.read_only {
        return Err(Status::no(Some(Code::Cannot), "Mailbox is read-only."));
    }
    let uids: Vec<u32> = pairs
        .iter()
        .map(|&(_, u)| u)
        .filter(|u| !view.is_expunged(*u))
        .collect();
    let flagset = Flags::from_flags(&flags);
    let folder = view.folder.clone();
    let (changed, failed) = if uids.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        blocking(move || folder.store_flags(&uids, op, &flagset, unchanged_since)).await??
    };
    for m in &changed {
        view.note_own_flags(m.uid, m.modseq);
    }
    // A keyword new to the folder is announced even with .SILENT: FLAGS is
    // the mailbox's state, not a reply to this command.
    view.announce_keywords(changed.iter().map(|m| &m.flags), &mut s.out);
    if silent && condstore {
        let mut lines = Vec::new();
        for m in &changed {
            if let Some(seq) = view.seq_of(m.uid) {
                let items = [FetchItem::Uid(m.uid), FetchItem::ModSeq(m.modseq)];
                data::write(&mut lines, &Data::Fetch { seq, items: &items });
            }
        }
        s.out.extend_from_slice(&lines);
    }
    if !silent {
        // Report the resulting flags of every message in the set, changed
        // or not (RFC 9051 §6.4.6).
        let want: Vec<u32> = pairs.iter().map(|&(_, u)| u).collect();
        let metas = crate::session::metas_of(&view.folder, want).await?;
        let mut lines = Vec::new();
        for (&(seq, u), m) in pairs.iter().zip(&metas) {
            if failed.contains(&u) || view.is_expunged(u) {
                continue;
            }
            let Some(m) = m else {
                continue;
            };
            let flags = FetchItem::Flags {
                flags: &m.flags,
                recent: !rev2 && view.is_recent(u),
            };
            let shown = crate::session::condstore::Shown {
                uid: uid || rev2,
                condstore,
            };
            shown.write_flags(&mut lines, seq, m, flags);
            view.note_own_flags(u, m.modseq);
        }
        view.announce_keywords(metas.iter().flatten().map(|m| &m.flags), &mut s.out);
        s.out.extend_from_slice(&lines);
    }
    if !failed.is_empty() {
        let nums: Vec<u32> = if uid {
            failed
        } else {
            failed.iter().filter_map(|u| view.seq_of(*u)).collect()
        };
        return Ok(Status::ok_code(
            Code::Modified(nums),
            "Conditional STORE failed.",
        ));
    }
    Ok(Status::ok("STORE completed."))
}
