//! CONDSTORE (RFC 7162 §3.1) in the session: when it turns on, and what it
//! adds to responses once on. The modseqs themselves are the store's (every
//! change made by anyone takes a new one; `store::maildir::folder`); the
//! commands that use them (FETCH `CHANGEDSINCE`, STORE `UNCHANGEDSINCE`,
//! SEARCH `MODSEQ`, STATUS `HIGHESTMODSEQ`) live with their commands.
//!
//! Once a client has issued a "CONDSTORE enabling command" (§3.1), every
//! untagged FETCH that reports flags, whoever changed them, carries UID and
//! MODSEQ, so the client can keep its own highest modseq. When it turns on
//! while a mailbox is selected, the client is told the mailbox's
//! HIGHESTMODSEQ at once (`* OK [HIGHESTMODSEQ n]`, as SELECT would have):
//! the value is the one this session has reported up to, never a newer one
//! whose changes it has not sent yet.

use crate::proto::CommandBody;
use crate::proto::command::{FetchAttr, SearchKey, StatusItem};
use crate::proto::data::{self, Data, FetchItem};
use crate::proto::response::{Code, StatusKind};
use crate::store::MessageMeta;

use super::view::SelectedView;
use super::{Session, State};

/// Whether `body` is a CONDSTORE enabling command (RFC 7162 §3.1): one
/// that uses a modseq. SELECT/EXAMINE `(CONDSTORE)` and ENABLE are handled
/// by their commands.
pub fn enables(body: &CommandBody) -> bool {
    match body {
        CommandBody::Status { items, .. } => items.contains(&StatusItem::HighestModSeq),
        CommandBody::Fetch {
            items,
            changed_since,
            ..
        } => changed_since.is_some() || items.contains(&FetchAttr::ModSeq),
        CommandBody::Store {
            unchanged_since, ..
        } => unchanged_since.is_some(),
        CommandBody::Search(cmd) => mentions_modseq(&cmd.criteria),
        _ => false,
    }
}

/// Whether a search program uses the MODSEQ key anywhere (then its result
/// carries the highest modseq of what it found, RFC 7162 §3.1.5).
pub fn mentions_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(keys) => keys.iter().any(mentions_modseq),
        SearchKey::Or(a, b) => mentions_modseq(a) || mentions_modseq(b),
        SearchKey::Not(k) => mentions_modseq(k),
        _ => false,
    }
}

/// Which items an untagged FETCH reporting a message's flags carries
/// besides FLAGS: UID when the client numbers by UID (`uid`) or CONDSTORE
/// is on, MODSEQ when CONDSTORE is on (§3.1: "both UID and mod-sequence").
#[derive(Clone, Copy)]
pub struct Shown {
    pub uid: bool,
    pub condstore: bool,
}

impl Shown {
    /// Writes `* seq FETCH ([UID u] FLAGS (...) [MODSEQ (m)])` for `m`.
    pub fn write_flags(self, out: &mut Vec<u8>, seq: u32, m: &MessageMeta, flags: FetchItem<'_>) {
        let all = [FetchItem::Uid(m.uid), flags, FetchItem::ModSeq(m.modseq)];
        let items = match (self.uid || self.condstore, self.condstore) {
            (_, true) => &all[..],
            (true, false) => &all[..2],
            (false, false) => &all[1..2],
        };
        data::write(out, &Data::Fetch { seq, items });
    }
}

impl Session {
    /// Turns CONDSTORE on; `view` is the selected mailbox (when a command
    /// has it lent out), else the session's own selected one is used.
    pub(crate) fn enable_condstore(&mut self, view: Option<&SelectedView>) {
        if self.enabled.condstore {
            return;
        }
        self.enabled.condstore = true;
        let highest = match (view, &self.state) {
            (Some(v), _) => Some(v.highest_modseq()),
            (None, State::Selected(_, v)) => Some(v.highest_modseq()),
            _ => None,
        };
        if let Some(n) = highest {
            self.untagged(
                StatusKind::Ok,
                Some(Code::HighestModSeq(n)),
                "Highest mod-sequence.",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::parse::parse_command;

    fn body(line: &str) -> CommandBody {
        parse_command(format!("a {line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("{line}: {e:?}"))
            .body
    }

    #[test]
    fn the_enabling_commands_are_those_of_rfc_7162() {
        for (line, on) in [
            ("STATUS INBOX (HIGHESTMODSEQ)", true),
            ("STATUS INBOX (MESSAGES UIDNEXT)", false),
            ("FETCH 1:* MODSEQ", true),
            ("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7)", true),
            ("FETCH 1:* (FLAGS UID)", false),
            ("STORE 1 (UNCHANGEDSINCE 9) +FLAGS (\\Seen)", true),
            ("STORE 1 +FLAGS (\\Seen)", false),
            ("SEARCH MODSEQ 5", true),
            ("SEARCH OR SEEN NOT MODSEQ 5", true),
            ("SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338", true),
            ("SEARCH SEEN", false),
            ("NOOP", false),
        ] {
            assert_eq!(enables(&body(line)), on, "{line}");
        }
    }
}
