//! CANCELUPDATE (RFC 5267 §4.3.5): ends the update contexts of the
//! searching commands named by their tags.
//!
//! All or nothing: a tag with no live context (never one, cancelled
//! already, refused with NOUPDATE, or from an earlier selection) makes
//! the command a refusal, `NO [NONEXISTENT]` (as Dovecot answers NO), and
//! no context ends. The RFC leaves this case open; a NO lets the client go
//! on, and the code says what was wrong.

use crate::proto::response::Code;
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Status};

pub fn cancel_update(view: &mut SelectedView, tags: Vec<String>) -> CmdResult {
    match view.contexts.cancel(&tags) {
        Ok(()) => Ok(Status::ok("No further updates.")),
        Err(tag) => Err(Status::no(
            Some(Code::Nonexistent),
            format!("No update context has the tag {tag:?}."),
        )),
    }
}
