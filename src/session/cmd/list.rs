//! LIST with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and
//! SPECIAL-USE (RFC 6154) options, and LSUB (RFC 3501 §6.3.9).
//!
//! The name space and the lines that describe its entries are
//! `session::mailboxes`, shared with SELECT and STATUS.

use std::collections::BTreeSet;

use crate::proto::ListCommand;
use crate::proto::data::{Data, ListAttr};
use crate::session::mailboxes::{
    ancestors, build, list_line, names_and_subscriptions, status_response,
};
use crate::session::names::{combine, pattern_matches, to_wire};
use crate::session::unlocked::blocking_unlocked;
use crate::session::{CmdResult, Session, Status};

pub async fn list(s: &mut Session, cmd: ListCommand) -> CmdResult {
    let ListCommand {
        reference,
        patterns,
        select,
        ret,
        extended,
    } = cmd;
    let enabled = s.enabled;
    let reference = crate::session::names::from_wire(&reference, enabled).unwrap_or(reference);
    // `LIST "" ""`: the hierarchy delimiter and root (RFC 9051 §6.3.9).
    if patterns.len() == 1 && patterns[0].is_empty() {
        s.data(&Data::List {
            attrs: &[ListAttr::Noselect],
            name: b"",
            childinfo_subscribed: false,
            oldname: None,
        });
        return Ok(Status::ok("LIST completed."));
    }
    // A pattern that is not valid modified UTF-7 names no mailbox: it
    // matches nothing (OK, no LIST), as Dovecot answers, rather than NO.
    let pats: Vec<String> = patterns
        .iter()
        .filter_map(|p| crate::session::names::from_wire(p, enabled).ok())
        .map(|p| combine(&reference, &p))
        .collect();
    let store = s.store()?;
    let (folders, subs) = names_and_subscriptions(&store).await?;
    let uses = crate::session::mailboxes::special_uses(
        store.clone(),
        s.shared.config.mail.special_use.clone(),
    )
    .await?;
    let map = build(&folders, &subs);
    let need_size = ret.status.as_ref().is_some_and(|items| {
        items.contains(&crate::proto::StatusItem::Size)
            || items.contains(&crate::proto::StatusItem::DeletedStorage)
    });
    for (name, e) in &map {
        if !pats.iter().any(|p| pattern_matches(p, name)) {
            continue;
        }
        let Some(line) = list_line(name, e, &select, &ret, extended, enabled, &uses) else {
            continue;
        };
        s.out.extend_from_slice(&line);
        // LIST-STATUS: each STATUS right after its LIST (RFC 5819 §2: MUST).
        if let (Some(items), true) = (&ret.status, e.exists) {
            let st = store.clone();
            let n = name.clone();
            let status = blocking_unlocked(&store, name, move || st.status_opts(&n, need_size));
            if let Ok(Ok(fs)) = status.await {
                status_response(name, &fs, items, s);
            }
        }
    }
    Ok(Status::ok("LIST completed."))
}

pub async fn lsub(s: &mut Session, reference: String, pattern: String) -> CmdResult {
    let enabled = s.enabled;
    if pattern.is_empty() {
        s.data(&Data::Lsub {
            attrs: &[ListAttr::Noselect],
            name: b"",
        });
        return Ok(Status::ok("LSUB completed."));
    }
    let reference = crate::session::names::from_wire(&reference, enabled).unwrap_or(reference);
    // As for LIST: a pattern that is not valid modified UTF-7 matches nothing.
    let Ok(pattern) = crate::session::names::from_wire(&pattern, enabled) else {
        return Ok(Status::ok("LSUB completed."));
    };
    let pattern = combine(&reference, &pattern);
    let store = s.store()?;
    let (_, subs) = names_and_subscriptions(&store).await?;
    let subs: BTreeSet<String> = subs
        .iter()
        .map(|s| crate::session::names::canonical_inbox(s))
        .collect();
    let mut out: BTreeSet<String> = BTreeSet::new();
    for name in &subs {
        if pattern_matches(&pattern, name) {
            out.insert(name.clone());
        } else if pattern.contains('%') {
            // `%` may stop at a parent of a subscribed name: report it
            // as \Noselect (RFC 3501 §6.3.9). Only `%` does: a pattern
            // without it names the parent itself, which is not subscribed.
            for a in ancestors(name) {
                if !a.is_empty() && pattern_matches(&pattern, a) && !subs.contains(a) {
                    out.insert(a.to_string());
                }
            }
        }
    }
    // A parent reported only because `%` stopped at it is \Noselect in LSUB
    // even when the folder exists: it is not subscribed (RFC 3501 §6.3.9;
    // Dovecot answers the same).
    for name in out {
        let attrs: &[ListAttr] = if subs.contains(&name) {
            &[]
        } else {
            &[ListAttr::Noselect]
        };
        s.data(&Data::Lsub {
            attrs,
            name: to_wire(&name, enabled).as_bytes(),
        });
    }
    Ok(Status::ok("LSUB completed."))
}
