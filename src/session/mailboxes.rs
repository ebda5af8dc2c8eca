//! How mailboxes are described to a client, shared by the commands that
//! describe them: the name space LIST shows, the `* LIST` line of one of
//! its entries, and the `* STATUS` response. LIST and LSUB (`cmd::list`),
//! SELECT (the LIST line RFC 9051 §6.3.2 puts in a rev2 SELECT response,
//! `cmd::select`) and STATUS (`cmd::mailbox`, and LIST-STATUS, RFC 5819)
//! all use them, so none of those commands imports another.
//!
//! The name space is built once per command from one directory listing and
//! the subscriptions file: existing folders plus their missing ancestors
//! (which are `\NonExistent`/`\Noselect` placeholders, as Maildir++ allows
//! `.A.B` without `.A`).
//!
//! Must never: write to the store; only [`names_and_subscriptions`] reads
//! it, off the runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::proto::data::{Data, ListAttr, StatusValue};
use crate::proto::{ListReturn, ListSelect, StatusItem};
use crate::session::names::{SEP, SpecialUses, to_wire};
use crate::session::{Session, Status, blocking};
use crate::store::{FolderStatus, MailStore};

/// One name of the name space and what LIST may say about it.
pub(crate) struct Entry {
    pub(crate) exists: bool,
    subscribed: bool,
    has_children: bool,
    /// Some descendant is subscribed (RECURSIVEMATCH's CHILDINFO).
    subscribed_child: bool,
}

/// Every folder name and the subscriptions, read off the runtime.
pub(crate) async fn names_and_subscriptions(
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

/// The special-use attributes of every folder (what CREATE stored, then
/// the configuration's and the names' defaults), read off the runtime.
pub(crate) async fn special_uses(
    store: Arc<MailStore>,
    configured: BTreeMap<String, String>,
) -> Result<SpecialUses, Status> {
    let stored = blocking(move || store.special_uses()).await??;
    Ok(SpecialUses::new(stored, &configured))
}

/// The prefixes of `name` before each separator: its ancestors, shortest
/// first (the first is empty when `name` starts with one).
pub(crate) fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.char_indices()
        .filter(|(_, c)| *c == SEP)
        .map(move |(i, _)| &name[..i])
}

/// The name space: every folder, subscribed name and missing ancestor.
pub(crate) fn build(folders: &[String], subs: &[String]) -> BTreeMap<String, Entry> {
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

/// The `* LIST` line of entry `e`, or `None` when the selection options
/// leave it out.
pub(crate) fn list_line(
    name: &str,
    e: &Entry,
    select: &ListSelect,
    ret: &ListReturn,
    extended: bool,
    enabled: crate::session::Enabled,
    uses: &SpecialUses,
) -> Option<Vec<u8>> {
    let use_attrs = uses.of(name);
    if select.special_use && use_attrs.is_empty() {
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
    if e.exists {
        attrs.extend(use_attrs.into_iter().map(ListAttr::Use));
    }
    let mut line = Vec::new();
    crate::proto::data::write(
        &mut line,
        &Data::List {
            attrs: &attrs,
            name: to_wire(name, enabled).as_bytes(),
            childinfo_subscribed: childinfo,
            oldname: None,
        },
    );
    Some(line)
}

/// The `LIST` line RFC 9051 §6.3.2 requires in a rev2 SELECT response,
/// with accurate attributes.
pub(crate) fn select_list_line(
    name: &str,
    folders: &[String],
    subs: &[String],
    enabled: crate::session::Enabled,
    uses: &SpecialUses,
) -> Option<Vec<u8>> {
    let map = build(folders, subs);
    let e = map.get(name)?;
    let ret = ListReturn {
        subscribed: true,
        ..ListReturn::default()
    };
    list_line(name, e, &ListSelect::default(), &ret, true, enabled, uses)
}

/// The `* LIST` line NOTIFY sends for a name whose existence or
/// subscription changed (RFC 5465 §5.4-5.5): always an extended LIST, so
/// a name that no longer exists says `\NonExistent`, and `\Subscribed`
/// exactly when it is subscribed; after a RENAME with `("OLDNAME" (old))`.
pub(crate) fn notify_list_line(
    name: &str,
    space: &BTreeMap<String, Entry>,
    oldname: Option<&str>,
    enabled: crate::session::Enabled,
    uses: &SpecialUses,
) -> Vec<u8> {
    let blank = Entry {
        exists: false,
        subscribed: false,
        has_children: false,
        subscribed_child: false,
    };
    let e = space.get(name).unwrap_or(&blank);
    let mut attrs: Vec<ListAttr> = Vec::new();
    if !e.exists {
        attrs.push(ListAttr::NonExistent);
    }
    attrs.push(if e.has_children {
        ListAttr::HasChildren
    } else {
        ListAttr::HasNoChildren
    });
    if e.subscribed {
        attrs.push(ListAttr::Subscribed);
    }
    if e.exists {
        attrs.extend(uses.of(name).into_iter().map(ListAttr::Use));
    }
    let old = oldname.map(|o| to_wire(o, enabled));
    let mut line = Vec::new();
    crate::proto::data::write(
        &mut line,
        &Data::List {
            attrs: &attrs,
            name: to_wire(name, enabled).as_bytes(),
            childinfo_subscribed: false,
            oldname: old.as_deref().map(str::as_bytes),
        },
    );
    line
}

/// Queues `* STATUS name (ITEM n ...)`, also used by LIST-STATUS.
pub(crate) fn status_response(
    name: &str,
    st: &FolderStatus,
    items: &[StatusItem],
    s: &mut Session,
) {
    let values: Vec<StatusValue> = items
        .iter()
        .map(|i| match i {
            StatusItem::Messages => StatusValue::Messages(st.messages as u64),
            StatusItem::UidNext => StatusValue::UidNext(st.uidnext as u64),
            StatusItem::UidValidity => StatusValue::UidValidity(st.uidvalidity as u64),
            StatusItem::Unseen => StatusValue::Unseen(st.unseen as u64),
            StatusItem::Deleted => StatusValue::Deleted(st.deleted as u64),
            StatusItem::Size => StatusValue::Size(st.size),
            StatusItem::Recent => StatusValue::Recent(st.recent as u64),
            StatusItem::HighestModSeq => StatusValue::HighestModSeq(st.highest_modseq),
            StatusItem::MailboxId => StatusValue::MailboxId(st.mailbox_id.clone()),
            StatusItem::DeletedStorage => {
                StatusValue::DeletedStorage(st.deleted_size.div_ceil(1024))
            }
            // The same for every mailbox: the one APPENDLIMIT= advertises.
            StatusItem::AppendLimit => {
                StatusValue::AppendLimit(crate::session::caps::append_limit(s))
            }
        })
        .collect();
    let name = to_wire(name, s.enabled);
    s.data(&Data::Status {
        name: name.as_bytes(),
        values: &values,
    });
}
