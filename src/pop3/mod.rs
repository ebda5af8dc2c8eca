//! POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL) on the
//! same Maildir as IMAP, in the same processes (SPEC §4, §6).
//!
//! - `command`: the grammar, one line to a typed [`command::Command`]; pure.
//! - `reply`: replies as bytes (status lines, response codes, multi-line
//!   bodies with dot-stuffing); pure.
//! - `lines`: input cut into lines under a cap; pure.
//! - `session`: one connection's I/O and its two runs: in the front until
//!   login, in the user's worker after it.
//! - `authorization`: the AUTHORIZATION state (front).
//! - `transaction`: the TRANSACTION and UPDATE states (worker).
//! - `maildrop`: INBOX as it stood at login, over the store's shared
//!   folder; message numbers, sizes, UIDLs, and what QUIT does.
//! - `delay`: LOGIN-DELAY bookkeeping (front).
//!
//! A POP3 session never touches the file system but through `store`, and
//! shares the worker's folder registry with the user's IMAP sessions: a
//! POP3 deletion reaches IMAP clients (IDLE included) as EXPUNGE at once,
//! and an IMAP expunge makes POP3's RETR of that message `-ERR`.
pub mod authorization;
pub mod command;
pub mod delay;
pub mod lines;
pub mod maildrop;
pub mod reply;
pub mod session;
mod shim;
pub mod transaction;

pub use session::Pop3;
pub use shim::{DeleAction, LoginError, Pop3Policy, Protocol, login, pop3_policy};

/// The server-wide LOGIN-DELAY, in seconds (0: none).
pub fn server_login_delay(_cfg: &crate::config::Config) -> u64 {
    0
}

/// Whether the greeting offers APOP.
pub fn apop_available(_cfg: &crate::config::Config, _auth: &crate::auth::Authenticator) -> bool {
    false
}

/// APOP login (through the one login sequence).
pub async fn login_apop(
    _auth: &crate::auth::Authenticator,
    failures: &crate::auth::FailureTracker,
    _cfg: &crate::config::Config,
    rip: std::net::IpAddr,
    name: &str,
    _timestamp: &str,
    _digest: &str,
) -> Result<crate::auth::User, LoginError> {
    crate::auth::log_failure(name, rip, "APOP");
    failures.record_failure(rip);
    Err(LoginError::Failed)
}
