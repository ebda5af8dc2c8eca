//! The values SORT and THREAD order by, gathered for a found set of
//! messages: from the store's cached digest of common header fields
//! (`CacheField::CommonHeaders`: Date, Subject, From, To, Cc, Message-ID,
//! In-Reply-To, References), made from the header and cached where
//! missing, so a second SORT or THREAD over a big mailbox reads no message
//! file. Shared by the SORT and THREAD commands and by SORT update
//! contexts (`session::context`). Blocking: callers run it off the runtime.

use crate::proto::{SortCriterion, SortKey};
use crate::session::Status;
use crate::session::digest::common_digest;
use crate::session::sort::{self, Facts, Headers, Value};
use crate::store::{CacheField, Folder};
use std::sync::Arc;

/// What a command needs besides the header digest.
#[derive(Clone, Copy)]
pub(crate) struct Needs {
    /// INTERNALDATE (ARRIVAL, and the sent date's fallback).
    pub dates: bool,
    /// RFC822.SIZE.
    pub sizes: bool,
    /// The header digest.
    pub headers: bool,
}

/// Runs `f` over every found message's facts, in parallel blocks, and
/// returns the results in the order of `found`. Blocking.
pub(crate) fn gather<T: Send>(
    folder: &Arc<Folder>,
    found: &[(u32, u32)],
    needs: Needs,
    f: impl Fn(u32, &Facts<'_>) -> T + Sync,
) -> Result<Vec<T>, Status> {
    if needs.dates {
        let uids: Vec<u32> = found.iter().map(|m| m.1).collect();
        folder.resolve_dates(&uids)?;
    }
    let run = |part: &[(u32, u32)]| -> Vec<T> {
        let mut out = Vec::with_capacity(part.len());
        // One folder lock per block for the metadata and the digests.
        for block in part.chunks(1024) {
            let uids: Vec<u32> = block.iter().map(|m| m.1).collect();
            let metas = folder.metas(&uids);
            let digests = if needs.headers {
                folder.cached_many(&uids, CacheField::CommonHeaders)
            } else {
                Vec::new()
            };
            for (k, &(seq, uid)) in block.iter().enumerate() {
                let meta = metas.get(k).cloned().flatten();
                let digest = if needs.headers {
                    digests
                        .get(k)
                        .cloned()
                        .flatten()
                        .or_else(|| common_digest(folder, uid).ok())
                } else {
                    None
                };
                let size = match (&meta, needs.sizes) {
                    (Some(m), true) => m.size.or_else(|| folder.rfc822_size(uid).ok()).unwrap_or(0),
                    _ => 0,
                };
                // A message gone from the store since the view was taken
                // (still in the view until its expunge is reported) sorts
                // with empty values rather than failing the command.
                let facts = Facts {
                    headers: Headers::of(digest.as_deref().unwrap_or_default()),
                    internal_date: meta.map_or(0, |m| m.internal_date),
                    size,
                };
                out.push(f(seq, &facts));
            }
        }
        out
    };
    let threads = crate::session::cpus().min(8);
    let per = found.len().div_ceil(threads.max(1)).max(1024);
    if found.len() <= per {
        return Ok(run(found));
    }
    std::thread::scope(|sc| {
        let handles: Vec<_> = found
            .chunks(per)
            .map(|part| sc.spawn(|| run(part)))
            .collect();
        let mut all = Vec::with_capacity(found.len());
        for h in handles {
            match h.join() {
                Ok(mut v) => all.append(&mut v),
                Err(_) => return Err(Status::server_bug("sort", &"a sort thread panicked")),
            }
        }
        Ok(all)
    })
}

impl Needs {
    pub(crate) fn of(criteria: &[SortCriterion]) -> Needs {
        let has = |k: &[SortKey]| criteria.iter().any(|c| k.contains(&c.key));
        Needs {
            dates: has(&[SortKey::Arrival, SortKey::Date]),
            sizes: has(&[SortKey::Size]),
            headers: !criteria
                .iter()
                .all(|c| matches!(c.key, SortKey::Arrival | SortKey::Size)),
        }
    }
}

/// `found` ((sequence number, UID), ascending) in the order `criteria`
/// sort them, ties in mailbox order (RFC 5256 §3). Blocking.
pub(crate) fn sorted(
    folder: &Arc<Folder>,
    criteria: &[SortCriterion],
    found: &[(u32, u32)],
) -> Result<Vec<(u32, u32)>, Status> {
    let mut items: Vec<(u32, Vec<Value>)> =
        gather(folder, found, Needs::of(criteria), |seq, facts| {
            (seq, sort::values(criteria, facts))
        })?;
    sort::sort(criteria, &mut items);
    // Sequence number -> UID through the found list (ascending).
    Ok(items
        .into_iter()
        .map(|(seq, _)| {
            let uid = found
                .binary_search_by_key(&seq, |m| m.0)
                .map_or(0, |i| found[i].1);
            (seq, uid)
        })
        .collect())
}

/// `uids` (ascending) in sort order: what a SORT update context
/// (`session::context`) places new results by. UIDs order ties as
/// sequence numbers do. Blocking.
pub(crate) fn sort_uids(
    folder: &Arc<Folder>,
    criteria: &[SortCriterion],
    uids: &[u32],
) -> Result<Vec<u32>, Status> {
    let found: Vec<(u32, u32)> = uids.iter().map(|&u| (u, u)).collect();
    Ok(sorted(folder, criteria, &found)?
        .into_iter()
        .map(|(_, u)| u)
        .collect())
}
