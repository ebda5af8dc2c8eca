//! LIST with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and
//! SPECIAL-USE (RFC 6154) options, and LSUB (RFC 3501 §6.3.9).
//!
//! The name space is built once per command from one directory listing and
//! the subscriptions file: existing folders plus their missing ancestors
//! (which are `\NonExistent`/`\Noselect` placeholders, as Maildir++ allows
//! `.A.B` without `.A`).

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::data::{Data, ListAttr};
use crate::proto::{ListCommand, ListReturn, ListSelect};
use crate::session::names::{SEP, combine, pattern_matches, special_use, to_wire};
use crate::session::{CmdResult, Session, Status, blocking};
use crate::store::MailStore;
use std::sync::Arc;

struct Entry {
    exists: bool,
    subscribed: bool,
    has_children: bool,
    /// Some descendant is subscribed (RECURSIVEMATCH's CHILDINFO).
    subscribed_child: bool,
}

/// Every folder name and the subscriptions, read off the runtime.
async fn names_and_subscriptions(
    store: &Arc<MailStore>,
) -> Result<(Vec<String>, Vec<String>), Status> {
    let st = store.clone();
    let r = blocking(move || -> Result<_, crate::store::StoreError> {
        let f: Vec<String> = st.list_folders()?.into_iter().map(|e| e.name).collect();
        Ok((f, st.subscriptions()?))
    })
    .await??;
    Ok(r)
}

fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.char_indices()
        .filter(|(_, c)| *c == SEP)
        .map(move |(i, _)| &name[..i])
}

fn build(folders: &[String], subs: &[String]) -> BTreeMap<String, Entry> {
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    let blank = || Entry {
        exists: false,
        subscribed: false,
        has_children: false,
        subscribed_child: false,
    };
    for f in folders {
        map.entry(f.clone()).or_insert_with(blank).exists = true;
        for a in ancestors(f) {
            if !a.is_empty() {
                map.entry(a.to_string()).or_insert_with(blank).has_children = true;
            }
        }
    }
    let subs: BTreeSet<String> = subs
        .iter()
        .map(|s| crate::session::names::canonical_inbox(s))
        .collect();
    for s in &subs {
        map.entry(s.clone()).or_insert_with(blank).subscribed = true;
        for a in ancestors(s) {
            if let Some(e) = map.get_mut(a) {
                e.subscribed_child = true;
            } else if !a.is_empty() {
                let mut e = blank();
                e.subscribed_child = true;
                map.insert(a.to_string(), e);
            }
        }
    }
    map
}

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
    let map = build(&folders, &subs);
    let need_size = ret
        .status
        .as_ref()
        .is_some_and(|items| items.contains(&crate::proto::StatusItem::Size));
    for (name, e) in &map {
        if !pats.iter().any(|p| pattern_matches(p, name)) {
            continue;
        }
        let Some(line) = list_line(name, e, &select, &ret, extended, enabled) else {
            continue;
        };
        s.out.extend_from_slice(&line);
        // LIST-STATUS: each STATUS right after its LIST (RFC 5819 §2: MUST).
        if let (Some(items), true) = (&ret.status, e.exists) {
            let st = store.clone();
            let n = name.clone();
            let status = super::select::blocking_unlocked(&store, name, move || {
                st.status_opts(&n, need_size)
            });
            if let Ok(Ok(fs)) = status.await {
                super::mailbox::status_response(name, &fs, items, s);
            }
        }
    }
    Ok(Status::ok("LIST completed."))
}

fn list_line(
    name: &str,
    e: &Entry,
    select: &ListSelect,
    ret: &ListReturn,
    extended: bool,
    enabled: crate::session::Enabled,
) -> Option<Vec<u8>> {
    let use_attr = special_use(name);
    if select.special_use && use_attr.is_none() {
        return None;
    }
    let childinfo = select.subscribed && select.recursive_match && e.subscribed_child;
    if select.subscribed && !e.subscribed && !childinfo {
        return None;
    }
    if !e.exists && !e.has_children && !select.subscribed {
        return None;
    }
    let mut attrs: Vec<ListAttr> = Vec::new();
    if !e.exists {
        if extended || enabled.rev2 {
            attrs.push(ListAttr::NonExistent);
        } else {
            attrs.push(ListAttr::Noselect);
        }
    }
    attrs.push(if e.has_children {
        ListAttr::HasChildren
    } else {
        ListAttr::HasNoChildren
    });
    if e.subscribed && (select.subscribed || ret.subscribed) {
        attrs.push(ListAttr::Subscribed);
    }
    if let Some(u) = use_attr {
        if e.exists {
            attrs.push(ListAttr::Use(u));
        }
    }
    let mut line = Vec::new();
    crate::proto::data::write(
        &mut line,
        &Data::List {
            attrs: &attrs,
            name: to_wire(name, enabled).as_bytes(),
            childinfo_subscribed: childinfo,
        },
    );
    Some(line)
}

/// The `LIST` line RFC 9051 §6.3.2 requires in a rev2 SELECT response,
/// with accurate attributes.
pub fn select_list_line(
    name: &str,
    folders: &[String],
    subs: &[String],
    enabled: crate::session::Enabled,
) -> Option<Vec<u8>> {
    let map = build(folders, subs);
    let e = map.get(name)?;
    let ret = ListReturn {
        subscribed: true,
        ..ListReturn::default()
    };
    list_line(name, e, &ListSelect::default(), &ret, true, enabled)
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
