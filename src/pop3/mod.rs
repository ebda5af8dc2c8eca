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
//! - `uidl_format`: `pop3.uidl_format` (Dovecot's `pop3_uidl_format`
//!   syntax), parsed and expanded; pure.
//!
//! A POP3 session never touches the file system but through `store`, and
//! shares the worker's folder registry with the user's IMAP sessions: a
//! POP3 deletion reaches IMAP clients (IDLE included) as EXPUNGE at once,
//! and an IMAP expunge makes POP3's RETR of that message `-ERR`.
pub mod authorization;
pub mod command;
pub mod lines;
pub mod maildrop;
pub mod reply;
pub mod session;
pub mod transaction;
pub mod uidl_format;

pub use crate::auth::{DeleAction, Pop3Policy, Protocol};
pub use session::Pop3;

/// The server-wide LOGIN-DELAY, in seconds (0: none), for CAPA before login.
pub fn server_login_delay(cfg: &crate::config::Config) -> u64 {
    cfg.pop3.login_delay.as_secs()
}
