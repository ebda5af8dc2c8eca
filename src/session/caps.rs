//! The CAPABILITY list, which depends on the connection's state (TLS,
//! authenticated) and on the configuration.

use super::{Session, State};

/// Offered in every state.
const BASE: &[&str] = &[
    "IMAP4rev1",
    "IMAP4rev2",
    "SASL-IR",
    "ID",
    "ENABLE",
    "IDLE",
    "LITERAL+",
];

/// Added once authenticated. Everything listed is implemented; IMAP4rev2 is
/// offered because every extension RFC 9051 folds in (ESEARCH, SEARCHRES,
/// LIST-EXTENDED, LIST-STATUS, BINARY, LITERAL-, SPECIAL-USE, MOVE, UIDPLUS,
/// UNSELECT, NAMESPACE, ENABLE, IDLE, SASL-IR) is.
const AUTHED: &[&str] = &[
    "NAMESPACE",
    "UIDPLUS",
    "MOVE",
    "UNSELECT",
    "CHILDREN",
    "SPECIAL-USE",
    "ESEARCH",
    "SEARCHRES",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "STATUS=SIZE",
    "BINARY",
    "MULTIAPPEND",
];

/// The capability atoms for this moment, space-separated.
pub fn capability_line(s: &Session) -> String {
    let mut caps: Vec<String> = BASE.iter().map(|c| c.to_string()).collect();
    match s.state {
        State::NotAuthenticated => {
            if !s.conn.tls && s.shared.tls.is_some() {
                caps.push("STARTTLS".into());
            }
            if s.conn.plaintext_ok(&s.shared.config) {
                caps.extend(
                    crate::auth::sasl::MECHANISMS
                        .iter()
                        .map(|m| format!("AUTH={m}")),
                );
            } else {
                caps.push("LOGINDISABLED".into());
            }
        }
        _ => {
            caps.extend(AUTHED.iter().map(|c| c.to_string()));
            let limit = s
                .shared
                .config
                .limits
                .max_literal_bytes
                .min(u32::MAX as u64);
            caps.push(format!("APPENDLIMIT={limit}"));
        }
    }
    caps.join(" ")
}
