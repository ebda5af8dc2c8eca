//! A search program run over the messages of a selected folder: which
//! messages ([`Candidates`], taken from the view when the command starts),
//! and for each only what its keys need (the cached digest of common header
//! fields, the header block, or the whole message), split across the
//! machine's cores. SEARCH answers with the result; SORT and THREAD filter
//! with it before they sort or thread. What each key means is
//! `session::search`'s, pure; this module owns the reading.
//!
//! Blocking: [`evaluate`] may read every message file, so it runs off the
//! runtime.

use std::sync::Arc;

use crate::proto::SearchKey;
use crate::session::Status;
use crate::session::digest::{common_digest, is_common_header};
use crate::session::search::{
    SearchEnv, SearchTarget, matches, needs_whole_message, uses_object_info,
};
use crate::session::view::SelectedView;
use crate::store::{CacheField, Folder};

/// The messages a search runs over, taken from the view at the start of
/// a command (so the evaluation can run off the runtime without it).
pub(crate) struct Candidates {
    pub folder: Arc<Folder>,
    /// (sequence number, UID, \Recent) of every message not expunged.
    targets: Vec<(u32, u32, bool)>,
    max_seq: u32,
    max_uid: u32,
    saved: Vec<u32>,
}

impl Candidates {
    pub(crate) fn of(view: &SelectedView) -> Candidates {
        let targets: Vec<(u32, u32, bool)> = view
            .uids()
            .iter()
            .enumerate()
            .filter(|(_, u)| !view.is_expunged(**u))
            .map(|(i, &u)| (i as u32 + 1, u, view.is_recent(u)))
            .collect();
        Candidates {
            folder: view.folder.clone(),
            targets,
            max_seq: view.len(),
            max_uid: view.uids().last().copied().unwrap_or(0),
            saved: view.saved.clone(),
        }
    }
}

#[cfg(test)]
impl Candidates {
    /// Every message of `folder`, in UID order, none \Recent.
    pub(crate) fn all(folder: Arc<Folder>) -> Candidates {
        let targets: Vec<(u32, u32, bool)> = folder
            .messages()
            .iter()
            .enumerate()
            .map(|(i, m)| (i as u32 + 1, m.uid, false))
            .collect();
        Candidates {
            max_seq: targets.len() as u32,
            max_uid: targets.last().map_or(0, |t| t.1),
            targets,
            folder,
            saved: Vec::new(),
        }
    }
}

/// Evaluates `key` over the candidates: the (sequence number, UID) of
/// every match, ascending. Blocking (it may read every message): call it
/// off the runtime. SORT and THREAD filter with it too.
pub(crate) fn evaluate(c: &Candidates, key: &SearchKey) -> Result<Vec<(u32, u32)>, Status> {
    let folder = &c.folder;
    let targets = &c.targets;
    if uses_internal_date(key) {
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        folder.resolve_dates(&uids)?;
    }
    let metas = folder.messages();
    // EMAILID and save dates, beside `metas`, only for keys that need them.
    let objects = if uses_object_info(key) {
        let uids: Vec<u32> = metas.iter().map(|m| m.uid).collect();
        folder.object_info(&uids)
    } else {
        Vec::new()
    };
    let now = chrono::Utc::now().timestamp();
    let zone = *chrono::Local::now().offset();
    let whole = needs_whole_message(key);
    let common = !whole && only_common_headers(key);
    let env = SearchEnv {
        max_seq: c.max_seq,
        max_uid: c.max_uid,
        saved: &c.saved,
        now,
        zone,
    };
    let threads = crate::session::cpus().min(8);
    let per = targets.len().div_ceil(threads.max(1)).max(256);
    let run = |part: &[(u32, u32, bool)]| -> Vec<(u32, u32)> {
        let mut hits = Vec::new();
        // Cached header digests are looked up a block at a time: one
        // lock of the folder per block, not one per message (the
        // threads of one SEARCH would otherwise queue on it).
        for block in part.chunks(1024) {
            let digests = if common {
                let uids: Vec<u32> = block.iter().map(|t| t.1).collect();
                folder.cached_many(&uids, CacheField::CommonHeaders)
            } else {
                Vec::new()
            };
            for (k, &(seq, uid, recent)) in block.iter().enumerate() {
                let Ok(i) = metas.binary_search_by_key(&uid, |m| m.uid) else {
                    continue;
                };
                let t = SearchTarget {
                    seq,
                    meta: &metas[i],
                    recent,
                    object: objects.get(i).and_then(Option::as_ref),
                };
                let mut load = || {
                    if whole {
                        folder.read_message(uid).ok()
                    } else if common {
                        match digests.get(k).cloned().flatten() {
                            Some(d) => Some(Arc::new(d.to_vec())),
                            None => common_digest(folder, uid)
                                .ok()
                                .map(|d| Arc::new(d.to_vec())),
                        }
                    } else {
                        folder.read_header(uid).ok().map(|h| Arc::new(h.bytes))
                    }
                };
                if matches(key, &t, &env, &mut load) {
                    hits.push((seq, uid));
                }
            }
        }
        hits
    };
    if targets.len() <= per {
        return Ok(run(targets));
    }
    std::thread::scope(|sc| {
        let handles: Vec<_> = targets
            .chunks(per)
            .map(|c| sc.spawn(move || run(c)))
            .collect();
        let mut all = Vec::new();
        for h in handles {
            // A panicking evaluator thread is a bug; its hits are lost
            // but the command still answers.
            if let Ok(mut v) = h.join() {
                all.append(&mut v);
            }
        }
        Ok(all)
    })
}

/// True if every header the key looks at is in the cached digest of
/// common header fields, so the search can run from the cache.
fn only_common_headers(key: &crate::proto::SearchKey) -> bool {
    use crate::proto::SearchKey::*;
    match key {
        And(v) => v.iter().all(only_common_headers),
        Or(a, b) => only_common_headers(a) && only_common_headers(b),
        Not(k) => only_common_headers(k),
        Header(name, _) => is_common_header(name),
        Body(_) | Text(_) | Larger(_) | Smaller(_) => false,
        _ => true,
    }
}

/// True if the key compares INTERNALDATE (SENT* fall back to it when a
/// message has no usable Date: header).
pub(crate) fn uses_internal_date(key: &crate::proto::SearchKey) -> bool {
    use crate::proto::SearchKey::*;
    match key {
        And(v) => v.iter().any(uses_internal_date),
        Or(a, b) => uses_internal_date(a) || uses_internal_date(b),
        Not(k) => uses_internal_date(k),
        Before(_) | On(_) | Since(_) | Older(_) | Younger(_) | SentBefore(_) | SentOn(_)
        | SentSince(_) => true,
        _ => false,
    }
}
