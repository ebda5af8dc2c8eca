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
    "CATENATE",
    "WITHIN",
    "SORT",
    "SORT=DISPLAY",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "ESORT",
    "CONTEXT=SEARCH",
    "CONTEXT=SORT",
    "CONDSTORE",
    "QRESYNC",
    "OBJECTID",
    "SAVEDATE",
    "PREVIEW",
    "NOTIFY",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "UTF8=ACCEPT",
    "REPLACE",
    "CREATE-SPECIAL-USE",
    "COMPRESS=DEFLATE",
];

/// The capability atoms for this moment, space-separated.
pub fn capability_line(s: &Session) -> String {
    let mut caps: Vec<String> = BASE.iter().map(|c| c.to_string()).collect();
    if s.shared.config.mail.quota_set {
        // RFC 9208 §3.1: SETQUOTA is there for this user.
        caps.push("QUOTASET".into());
    }
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
            caps.push(format!("APPENDLIMIT={}", append_limit(s)));
        }
    }
    caps.join(" ")
}

/// The largest message APPEND accepts (RFC 7889): `limits.max_literal_bytes`,
/// capped at what the capability's `number` can say (RFC 7889 §4: a
/// 32-bit number).
pub fn append_limit(s: &Session) -> u64 {
    s.shared
        .config
        .limits
        .max_literal_bytes
        .min(u32::MAX as u64)
}
