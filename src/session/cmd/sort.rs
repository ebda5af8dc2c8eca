//! SORT and THREAD (RFC 5256 §3, RFC 5957) and their UID forms.
//!
//! The search criteria are evaluated exactly as SEARCH evaluates them
//! (`session::evaluate`); then each found message's sort or
//! thread values are read from the store's cached digest of common header
//! fields (`CacheField::CommonHeaders`, which holds Date, Subject, From,
//! To, Cc, Message-ID, In-Reply-To and References), made from the header
//! and cached where missing, so a second SORT or THREAD over a big mailbox
//! reads no message file. What the values mean is `session::sort`'s, the
//! threading `session::thread`'s; this file only gathers and answers.
//! Everything runs off the runtime, split across the machine's cores.
use crate::proto::data::Data;
use crate::proto::encode::ThreadNode;
use crate::proto::{SortCommand, ThreadAlgorithm, ThreadCommand};
use crate::session::evaluate::{Candidates, evaluate};
use crate::session::sorted::{Needs, gather, sorted};
use crate::session::thread::{self, Item, message_ids};
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Session, Status, blocking};

pub async fn sort(
    s: &mut Session,
    view: &mut SelectedView,
    tag: &str,
    cmd: SortCommand,
) -> CmdResult {
    crate::session::context::check_tag(view, tag, cmd.ret.as_deref())?;
    let candidates = Candidates::of(view);
    let criteria = cmd.criteria.clone();
    let search = cmd.search.clone();
    let order: Vec<(u32, u32)> = blocking(move || -> Result<Vec<(u32, u32)>, Status> {
        let found = evaluate(&candidates, &search)?;
        sorted(&candidates.folder, &criteria, &found)
    })
    .await??;
    let Some(ret) = &cmd.ret else {
        let nums: Vec<u32> = order
            .into_iter()
            .map(|(seq, uid)| if cmd.uid { uid } else { seq })
            .collect();
        s.data(&Data::Sort(&nums));
        return Ok(Status::ok("SORT completed."));
    };
    // The extended SORT (ESORT, RFC 5267 §3).
    let asked = crate::session::esearch::Asked {
        modseqs: None,
        tag,
        uid: cmd.uid,
        ret,
        key: &cmd.search,
        sort: Some(&cmd.criteria),
    };
    crate::session::esearch::answer(s, view, asked, &order)?;
    Ok(Status::ok("SORT completed."))
}

pub async fn thread(s: &mut Session, view: &mut SelectedView, cmd: ThreadCommand) -> CmdResult {
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
        let items: Vec<Item> = gather(&candidates.folder, &found, needs, |seq, facts| {
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
                let ids = |f: &Option<crate::message::tree::Field<'_>>| {
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
    use crate::proto::{SearchKey, SortCriterion, SortKey};
    use crate::session::sort::{self, Value};
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
            gather(&c.folder, &found, needs, |seq, facts| {
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
