//! The connection states of RFC 9051 §3, each carrying the data a command
//! in it needs (STYLE §5): a command of the Selected state gets the view
//! itself (`cmd::run_selected`), never looks it up.

use std::sync::Arc;

use super::view::SelectedView;
use crate::auth::User;
use crate::store::MailStore;

/// The authenticated part of a session: the user and their mail store.
pub struct Authed {
    /// Who logged in (in a worker, the name and Maildir the front handed
    /// over; the process already runs as their uid). Nothing reads it yet:
    /// kept for issue 19's per-user quota.
    pub user: User,
    pub store: Arc<MailStore>,
}

/// RFC 9051 §3 connection states; each carries the data it needs so a
/// handler cannot be written against the wrong state.
pub enum State {
    NotAuthenticated,
    Authenticated(Authed),
    Selected(Authed, Box<SelectedView>),
    Logout,
}

impl State {
    pub fn authed(&self) -> Option<&Authed> {
        match self {
            State::Authenticated(a) | State::Selected(a, _) => Some(a),
            _ => None,
        }
    }

    /// Moves `Selected` back to `Authenticated`, dropping the view; any
    /// other state stays as it is. Letting go of a folder does no I/O (the
    /// store's registry closes it later, off the runtime).
    pub fn leave_selected(&mut self) {
        let state = std::mem::replace(self, State::Logout);
        *self = match state {
            State::Selected(a, _view) => State::Authenticated(a),
            other => other,
        };
    }
}

/// What the client has turned on with ENABLE (RFC 5161).
#[derive(Clone, Copy, Debug, Default)]
pub struct Enabled {
    pub rev2: bool,
    pub utf8: bool,
    /// CONDSTORE (RFC 7162 §3.1): turned on by `ENABLE CONDSTORE` or by the
    /// first command that uses it (`SELECT ... (CONDSTORE)`, `STATUS
    /// (HIGHESTMODSEQ)`, `FETCH MODSEQ`, `CHANGEDSINCE`, `SEARCH MODSEQ`,
    /// `UNCHANGEDSINCE`); from then on every untagged FETCH of flags carries
    /// UID and MODSEQ.
    pub condstore: bool,
    /// QRESYNC (RFC 7162 §3.2), by `ENABLE QRESYNC` only (which turns
    /// CONDSTORE on too): expunges are then told as `VANISHED` UIDs.
    pub qresync: bool,
}
