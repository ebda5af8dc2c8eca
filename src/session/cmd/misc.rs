//! CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, CHECK.

use crate::proto::data::Data;
use crate::proto::response::StatusKind;
use crate::session::caps::capability_line;
use crate::session::{CmdResult, Session, State, Status};

pub fn capability(s: &mut Session) -> CmdResult {
    let atoms = capability_line(s);
    s.data(&Data::Capability(&atoms));
    Ok(Status::ok("Capability completed."))
}

/// Untagged updates are written by the dispatcher after every command;
/// NOOP exists to give them a chance (RFC 9051 §6.1.2).
pub fn noop(_s: &mut Session) -> CmdResult {
    Ok(Status::ok("NOOP completed."))
}

pub fn logout(s: &mut Session) -> CmdResult {
    s.untagged(StatusKind::Bye, None, "Logging out.");
    s.state = State::Logout;
    Ok(Status::ok("Logout completed."))
}

/// RFC 2971. The client's parameters are logged; from a trusted proxy
/// before login, Dovecot's `x-originating-ip` and friends name the client
/// from then on (`session::forwarded`).
pub fn id(s: &mut Session, params: Option<Vec<(String, Option<String>)>>) -> CmdResult {
    if let Some(p) = &params {
        forward(s, p);
    }
    if let Some(p) = params {
        let summary: Vec<String> = p
            .iter()
            .take(30)
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    k.chars().take(64).collect::<String>(),
                    v.as_deref()
                        .unwrap_or("NIL")
                        .chars()
                        .take(128)
                        .collect::<String>()
                )
            })
            .collect();
        tracing::info!(remote = %s.conn.remote, "client id: {}", summary.join(", "));
    }
    s.data(&Data::Id {
        name: "nestbox",
        version: env!("CARGO_PKG_VERSION"),
    });
    Ok(Status::ok("ID completed."))
}

/// Takes the client a trusted proxy names (module doc of `session::forwarded`): only
/// before login, in the front, from an address in `proxy.trusted_networks`.
fn forward(s: &mut Session, params: &[(String, Option<String>)]) {
    if !matches!(s.state, State::NotAuthenticated)
        || !matches!(s.shared.role, crate::session::Role::Front { .. })
        || !s.shared.config.proxy.trusts(s.conn.remote.ip())
    {
        return;
    }
    let f = crate::session::forwarded::Forwarded::from_params(params);
    if f.is_empty() {
        return;
    }
    let proxy = s.conn.remote;
    if let Some(client) = f.client {
        if let Some(mut count) = s.count_client.take() {
            if !count(client.ip()) {
                // As the accept loop answers a client over the limit (logged there).
                s.untagged(
                    StatusKind::Bye,
                    None,
                    "Too many connections, try again later.",
                );
                s.state = State::Logout;
                return;
            }
        }
        s.conn.remote = client;
    }
    if f.session_id.is_some() {
        s.conn.session_id = f.session_id;
    }
    tracing::info!(
        rip = %s.conn.remote.ip(),
        rport = s.conn.remote.port(),
        proxy = %proxy,
        lip = %f.connected_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        session = s.conn.session_id.as_deref().unwrap_or(""),
        "client named by a trusted proxy"
    );
}

/// RFC 5161 / RFC 9051 §6.3.1. Only valid before a mailbox is selected.
pub fn enable(s: &mut Session, caps: Vec<String>) -> CmdResult {
    if matches!(s.state, State::Selected(..)) {
        return Err(Status::bad(
            "ENABLE is not allowed while a mailbox is selected.",
        ));
    }
    let mut newly = Vec::new();
    for c in caps {
        if c.eq_ignore_ascii_case("IMAP4rev2") && !s.enabled.rev2 {
            s.enabled.rev2 = true;
            newly.push("IMAP4rev2");
        }
        // No mailbox is selected here, so there is no HIGHESTMODSEQ to tell.
        if c.eq_ignore_ascii_case("CONDSTORE") && !s.enabled.condstore {
            s.enabled.condstore = true;
            newly.push("CONDSTORE");
        }
        // RFC 9755: UTF-8 mailbox names both ways from now on (what
        // IMAP4rev2 does anyway), UTF8 APPEND, UTF-8 SEARCH strings.
        if c.eq_ignore_ascii_case("UTF8=ACCEPT") && !s.enabled.utf8 {
            s.enabled.utf8 = true;
            newly.push("UTF8=ACCEPT");
        }
        // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
        if c.eq_ignore_ascii_case("QRESYNC") && !s.enabled.qresync {
            s.enabled.qresync = true;
            s.enabled.condstore = true;
            newly.push("QRESYNC");
        }
        // Unknown capabilities are ignored (RFC 5161 §3.1).
    }
    s.data(&Data::Enabled(&newly));
    Ok(Status::ok("ENABLE completed."))
}

/// One personal namespace, no others (RFC 2342).
pub fn namespace(s: &mut Session) -> CmdResult {
    s.data(&Data::Namespace);
    Ok(Status::ok("NAMESPACE completed."))
}

/// Every write is durable before its tagged OK, so CHECK has nothing to do.
pub fn check(_s: &mut Session) -> CmdResult {
    Ok(Status::ok("CHECK completed."))
}
