//! The one error model of a session (STYLE §3): every command's outcome
//! is a [`Status`]. Client mistakes are `BAD`, refusals `NO` with a typed
//! response code, our own faults `NO [SERVERBUG]`, logged with context;
//! the store's errors map to codes in one place (`From<StoreError>`).

use crate::proto::response::{Code, StatusKind};
use crate::store::StoreError;

/// Outcome of one command: the tagged status line (encoded by
/// `proto::response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub kind: StatusKind,
    pub code: Option<Code>,
    pub text: String,
}

impl Status {
    pub fn ok(text: impl Into<String>) -> Self {
        Status {
            kind: StatusKind::Ok,
            code: None,
            text: text.into(),
        }
    }
    pub fn ok_code(code: Code, text: impl Into<String>) -> Self {
        Status {
            kind: StatusKind::Ok,
            code: Some(code),
            text: text.into(),
        }
    }
    pub fn no(code: Option<Code>, text: impl Into<String>) -> Self {
        Status {
            kind: StatusKind::No,
            code,
            text: text.into(),
        }
    }
    pub fn bad(text: impl Into<String>) -> Self {
        Status {
            kind: StatusKind::Bad,
            code: None,
            text: text.into(),
        }
    }
    /// Our own fault: logged with context, reported without details.
    pub fn server_bug(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        Status::no(
            Some(Code::ServerBug),
            "Internal error occurred. Refer to server log for more information.",
        )
    }
}

/// Handlers return `Ok(status)` for OK and `Err(status)` for NO/BAD, so
/// store errors convert with `?`.
pub type CmdResult = Result<Status, Status>;

impl From<StoreError> for Status {
    /// The single mapping of store errors to IMAP response codes (STYLE §4).
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Status::no(Some(Code::Nonexistent), "Mailbox doesn't exist."),
            StoreError::AlreadyExists => {
                Status::no(Some(Code::AlreadyExists), "Mailbox already exists.")
            }
            StoreError::InvalidName(why) => {
                Status::no(Some(Code::Cannot), format!("Invalid mailbox name: {why}"))
            }
            StoreError::Cannot(why) => Status::no(Some(Code::Cannot), why),
            // RFC 5530: CANNOT, "can never succeed", rather than LIMIT: no
            // folder of that name can ever exist, whatever else changes
            // (Dovecot answers the same). ENAMETOOLONG is the backstop for a
            // path the name checks did not foresee; not our fault either.
            StoreError::NameTooLong => Status::no(Some(Code::Cannot), "Mailbox name too long."),
            StoreError::Io(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                tracing::info!("name too long for the file system: {e}");
                Status::no(Some(Code::Cannot), "Mailbox name too long.")
            }
            StoreError::OverQuota => Status::no(Some(Code::OverQuota), "Quota exceeded."),
            StoreError::Expunged => Status::no(
                Some(Code::ExpungeIssued),
                "Some of the requested messages no longer exist.",
            ),
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                tracing::error!("disk full: {e}");
                Status::no(Some(Code::OverQuota), "Not enough disk space.")
            }
            // A file or folder the user's own uid may not touch (e.g. made by root
            // inside their Maildir): theirs to fix, not a server fault. Logged for the
            // operator, who may have to chown it.
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!("permission denied in a Maildir: {e}");
                Status::no(
                    Some(Code::NoPerm),
                    "Permission denied on the server's file system.",
                )
            }
            // A folder lock another program held past the store's wait
            // limit (store::maildir::dotlock): a refusal, not our fault.
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::warn!("{e}");
                Status::no(
                    Some(Code::InUse),
                    "Mailbox is locked by another program, try again later.",
                )
            }
            e @ (StoreError::Io(_) | StoreError::Corrupt { .. }) => Status::server_bug("store", &e),
        }
    }
}
