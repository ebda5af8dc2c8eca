//! The CAPABILITY list, which depends on the connection's state (TLS,
//! authenticated) and on the configuration.

use super::{Session, State};

/// Extensions offered once authenticated, in the order clients look for
/// them. Everything listed here is implemented; IMAP4rev2 is offered because
/// every extension RFC 9051 folds in (ESEARCH, SEARCHRES, LIST-EXTENDED,
/// LIST-STATUS, BINARY, LITERAL-, SPECIAL-USE, MOVE, UIDPLUS, UNSELECT,
/// NAMESPACE, ENABLE, IDLE, SASL-IR) is.
const AUTHED: &[&str] = &[
    "IMAP4rev1",
    "IMAP4rev2",
    "SASL-IR",
    "ID",
    "ENABLE",
    "IDLE",
    "LITERAL+",
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
    let mut caps: Vec<String> = Vec::new();
    match s.state {
        State::NotAuthenticated => {
            caps.extend(
                [
                    "IMAP4rev1",
                    "IMAP4rev2",
                    "SASL-IR",
                    "ID",
                    "ENABLE",
                    "IDLE",
                    "LITERAL+",
                ]
                .iter()
                .map(|c| c.to_string()),
            );
            if !s.conn.tls && s.shared.tls.is_some() {
                caps.push("STARTTLS".into());
            }
            if s.conn.plaintext_ok(&s.shared.config) {
                caps.push("AUTH=PLAIN".into());
                caps.push("AUTH=LOGIN".into());
            } else {
                caps.push("LOGINDISABLED".into());
            }
        }
        _ => {
            caps.extend(AUTHED.iter().map(|c| c.to_string()));
            caps.push(format!(
                "APPENDLIMIT={}",
                s.shared
                    .config
                    .limits
                    .max_literal_bytes
                    .min(u32::MAX as u64)
            ));
        }
    }
    caps.join(" ")
}
