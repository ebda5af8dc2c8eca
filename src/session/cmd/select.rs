//! SELECT, EXAMINE (RFC 9051 §6.3.2–3), CLOSE and UNSELECT (§6.4.1–2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flags::sys;
use crate::proto::data::Data;
use crate::proto::response::{Code, StatusKind};
use crate::session::names::from_wire;
use crate::session::{CmdResult, SelectedView, Session, State, Status, blocking};
use crate::store::{MailStore, StoreError};

pub async fn select(s: &mut Session, mailbox: String, read_only: bool) -> CmdResult {
    let name = from_wire(&mailbox, s.enabled)?;
    // Selecting always leaves the previous mailbox first, even if the new
    // one fails (RFC 9051 §6.3.2); rev2 clients are told with [CLOSED].
    let was_selected = matches!(s.state, State::Selected(..));
    leave_selected(s);
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
                super::list::select_list_line(
                    &open_name,
                    &folders,
                    &store.subscriptions()?,
                    enabled,
                )
            } else {
                None
            };
            let (keywords, first_unseen) = flags_and_first_unseen(&folder);
            let start = folder.view_start();
            Ok((folder, recent, list_line, keywords, first_unseen, start))
        })
        .await??;

    let (uidvalidity, uidnext) = (start.uidvalidity, start.uidnext);
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

/// Runs `f` on the blocking pool as [`blocking`] does, but inside
/// [`MailStore::without_lock_waits`]: when `f` needs the uidlist lock of
/// folder `name` and another program holds it, `f` gives up at once, the
/// lock is waited for here on the runtime's timers and `f` runs again
/// ([`retry_unlocked`]). So sessions waiting on one user's stalled folder
/// hold no blocking-pool thread (issue 15: 70 SELECTs waiting in place on
/// a lock made another user's APPEND take seconds). `f` must be safe to
/// run again after such a failure: it opens or syncs folder `name` before
/// it does anything else (SELECT, EXAMINE, STATUS).
pub(super) async fn blocking_unlocked<T, F>(
    store: &Arc<MailStore>,
    name: &str,
    f: F,
) -> Result<Result<T, StoreError>, Status>
where
    T: Send + 'static,
    F: Fn() -> Result<T, StoreError> + Send + Sync + 'static,
{
    retry_unlocked(store, name, move || MailStore::without_lock_waits(&f)).await
}

/// Runs `f` on the blocking pool, and again each time it fails because
/// another program holds folder `name`'s uidlist lock
/// ([`StoreError::is_lock_busy`]: a store call `f` made inside
/// [`MailStore::without_lock_waits`]), after waiting for the lock here
/// without a thread ([`MailStore::wait_unlocked`]). `f` chooses which of
/// its calls may give up so: only those before it has changed anything.
/// Past the lock's wait limit it gives `TimedOut` (`NO [INUSE]`), as a
/// wait in place does.
pub(super) async fn retry_unlocked<T, F>(
    store: &Arc<MailStore>,
    name: &str,
    f: F,
) -> Result<Result<T, StoreError>, Status>
where
    T: Send + 'static,
    F: Fn() -> Result<T, StoreError> + Send + Sync + 'static,
{
    use crate::store::maildir::dotlock::WAIT_LIMIT;
    let f = Arc::new(f);
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut pause = Duration::from_millis(5);
    let mut again = false;
    loop {
        let g = f.clone();
        match blocking(move || g()).await? {
            Err(e) if e.is_lock_busy() => {}
            r => return Ok(r),
        }
        // Free when last looked at, yet busy again: someone takes it over
        // and over. Not straight back, then.
        let backoff = again.then_some(pause);
        if again {
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        again = true;
        let wait = async {
            if let Some(p) = backoff {
                tokio::time::sleep(p).await;
            }
            store.wait_unlocked(name).await
        };
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), wait).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Ok(Err(e)),
            Err(_) => {
                return Ok(Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the uidlist lock of {name:?} is held by another process"),
                ))));
            }
        }
    }
}

/// Moves `Selected` back to `Authenticated`, dropping the view.
pub fn leave_selected(s: &mut Session) {
    let state = std::mem::replace(&mut s.state, State::Logout);
    s.state = match state {
        // Letting go of a folder does no I/O (the store's registry closes
        // it later, off the runtime).
        State::Selected(a, _view) => State::Authenticated(a),
        other => other,
    };
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
    leave_selected(s);
    Ok(Status::ok("CLOSE completed."))
}

pub fn unselect(s: &mut Session) -> CmdResult {
    leave_selected(s);
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
