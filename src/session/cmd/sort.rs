//! SORT and THREAD (RFC 5256 §3, RFC 5957) and their UID forms.
//!
//! The search criteria are evaluated exactly as SEARCH evaluates them
//! ([`super::search::evaluate`]); then each found message's sort or
//! thread values are read from the store's cached digest of common header
//! fields (`CacheField::CommonHeaders`, which holds Date, Subject, From,
//! To, Cc, Message-ID, In-Reply-To and References), made from the header
//! and cached where missing, so a second SORT or THREAD over a big mailbox
//! reads no message file. What the values mean is `session::sort`'s, the
//! threading `session::thread`'s; this file only gathers and answers.
//! Everything runs off the runtime, split across the machine's cores.
use crate::proto::data::Data;
use crate::proto::encode::ThreadNode;
use crate::proto::{SortCommand, SortKey, ThreadAlgorithm, ThreadCommand};
use crate::session::sort::{self, Facts, Headers, Value};
use crate::session::thread::{self, Item, message_ids};
use crate::session::{CmdResult, Session, State, Status, blocking};
use crate::store::CacheField;

use super::search::{Candidates, evaluate};

/// What a command needs besides the header digest.
#[derive(Clone, Copy)]
struct Needs {
    /// INTERNALDATE (ARRIVAL, and the sent date's fallback).
    dates: bool,
    /// RFC822.SIZE.
    sizes: bool,
    /// The header digest.
    headers: bool,
}

/// Runs `f` over every found message's facts, in parallel blocks, and
/// returns the results in the order of `found`. Blocking.
fn gather<T: Send>(
    c: &Candidates,
    found: &[(u32, u32)],
    needs: Needs,
    f: impl Fn(u32, &Facts<'_>) -> T + Sync,
) -> Result<Vec<T>, Status> {
    let folder = &c.folder;
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
                        .or_else(|| super::fetch::common_digest(folder, uid).ok())
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

pub async fn sort(s: &mut Session, cmd: SortCommand) -> CmdResult {
    let State::Selected(_, view) = &mut s.state else {
        return Err(Status::bad("No mailbox selected."));
    };
    let candidates = Candidates::of(view);
    let criteria = cmd.criteria.clone();
    let search = cmd.search.clone();
    let order: Vec<(u32, u32)> = blocking(move || -> Result<Vec<(u32, u32)>, Status> {
        let found = evaluate(&candidates, &search)?;
        let has = |k: &[SortKey]| criteria.iter().any(|c| k.contains(&c.key));
        let needs = Needs {
            dates: has(&[SortKey::Arrival, SortKey::Date]),
            sizes: has(&[SortKey::Size]),
            headers: !criteria
                .iter()
                .all(|c| matches!(c.key, SortKey::Arrival | SortKey::Size)),
        };
        let mut items: Vec<(u32, Vec<Value>)> =
            gather(&candidates, &found, needs, |seq, facts| {
                (seq, sort::values(&criteria, facts))
            })?;
        sort::sort(&criteria, &mut items);
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
    })
    .await??;
    let nums: Vec<u32> = order
        .into_iter()
        .map(|(seq, uid)| if cmd.uid { uid } else { seq })
        .collect();
    s.data(&Data::Sort(&nums));
    Ok(Status::ok("SORT completed."))
}

pub async fn thread(s: &mut Session, cmd: ThreadCommand) -> CmdResult {
    let State::Selected(_, view) = &mut s.state else {
        return Err(Status::bad("No mailbox selected."));
    };
    let candidates = Candidates::of(view);
    let search = cmd.search.clone();
    let algorithm = cmd.algorithm;
    let uid = cmd.uid;
    let line: Vec<u8> = blocking(move || -> Result<Vec<u8>, Status> {
        let found = evaluate(&candidates, &search)?;
        let needs = Needs {
            dates: true,
            sizes: false,
            headers: true,
        };
        let references = algorithm == ThreadAlgorithm::References;
        let items: Vec<Item> = gather(&candidates, &found, needs, |seq, facts| {
            let h = &facts.headers;
            let (subject, reply) = h.base_subject();
            let mut it = Item {
                seq,
                date: h.sent_date(facts.internal_date),
                subject,
                reply,
                ..Item::default()
            };
            if references {
                let ids = |f: &Option<crate::mime::tree::Field<'_>>| {
                    f.as_ref().map(|f| message_ids(f.value)).unwrap_or_default()
                };
                it.message_id = ids(&h.message_id).into_iter().next();
                it.references = ids(&h.references);
                if it.references.is_empty() {
                    it.references = ids(&h.in_reply_to).into_iter().take(1).collect();
                }
            }
            it
        })?;
        let forest = match algorithm {
            ThreadAlgorithm::OrderedSubject => thread::ordered_subject(&items),
            ThreadAlgorithm::References => thread::references(&items),
        };
        let nodes: Vec<ThreadNode> = forest
            .nodes
            .into_iter()
            .map(|n| ThreadNode {
                number: n.item.map(|i| if uid { found[i].1 } else { found[i].0 }),
                children: n.children,
            })
            .collect();
        let mut line = Vec::new();
        crate::proto::data::write(
            &mut line,
            &Data::Thread {
                nodes: &nodes,
                roots: &forest.roots,
            },
        );
        Ok(line)
    })
    .await??;
    s.out.extend_from_slice(&line);
    Ok(Status::ok("THREAD completed."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::Flags;
    use crate::proto::{SearchKey, SortCriterion};
    use crate::store::{ClosingStore, MailStore, Registry, StoreOptions};

    /// The sort and thread values come from the cached header digest: once
    /// a SORT has read the headers, the next one reads no message file
    /// (here they are gone from the disk, unknown to the open folder) and
    /// gets the same values.
    #[test]
    fn second_sort_reads_no_message_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let store = ClosingStore(
            MailStore::open(
                d.path().to_path_buf(),
                Registry::new(),
                StoreOptions { fsync: false },
            )
            .expect("store"),
        );
        let f = store.open_folder("INBOX").expect("folder");
        let msgs = [
            "From: \"Zed\" <z@x>\nTo: b@x\nSubject: Re: beta\nDate: 2 Jan 2022 10:00 +0000\nMessage-ID: <2@x>\nReferences: <1@x>\n\nb\n",
            "From: a@x\nTo: \"Al\" <c@x>\nSubject: alpha\nDate: 1 Jan 2022 10:00 +0000\nMessage-ID: <1@x>\n\na\n",
            "From: m@x\nSubject: gamma\n\nno date\n",
        ];
        for (k, m) in msgs.iter().enumerate() {
            f.append(m.as_bytes(), &Flags::new(), Some(1_600_000_000 + k as i64))
                .expect("append");
        }
        let c = Candidates::all(f.clone());
        let found = evaluate(&c, &SearchKey::All).expect("search");
        assert_eq!(found.len(), 3);
        let criteria: Vec<SortCriterion> = [
            SortKey::Subject,
            SortKey::From,
            SortKey::Date,
            SortKey::DisplayTo,
            SortKey::Size,
            SortKey::Arrival,
        ]
        .into_iter()
        .map(|key| SortCriterion {
            reverse: false,
            key,
        })
        .collect();
        let needs = Needs {
            dates: true,
            sizes: true,
            headers: true,
        };
        let run = || {
            gather(&c, &found, needs, |seq, facts| {
                let ids = facts
                    .headers
                    .references
                    .as_ref()
                    .map(|r| message_ids(r.value));
                (seq, sort::values(&criteria, facts), ids)
            })
            .expect("gather")
        };
        let first = run();
        assert_eq!(first[0].1[0], Value::Text("BETA".into()));
        assert_eq!(first[1].1[3], Value::Text("AL".into()));
        assert_eq!(first[2].1[2], Value::Num(1_600_000_002));
        assert_eq!(first[0].2, Some(vec!["1@x".to_string()]));
        for sub in ["cur", "new"] {
            for e in std::fs::read_dir(store.root().join(sub)).expect("dir") {
                std::fs::remove_file(e.expect("entry").path()).expect("remove");
            }
        }
        assert_eq!(run(), first);
    }
}
