//! The promise CONDSTORE and QRESYNC clients rely on (RFC 7162 §3.1, issue
//! 18), checked over random histories: whatever happens to a Maildir (our
//! own STORE/APPEND/EXPUNGE, deliveries into `new/`, flag renames and
//! deletions by other programs, clean restarts, crashes, the loss of
//! nestbox's index), a client that remembers any HIGHESTMODSEQ it was once
//! told learns every change since then from `CHANGEDSINCE` (every message
//! that changed or is new has a higher modseq) and `VANISHED (EARLIER)`
//! (every message gone is in the expunge log, or the log admits it does
//! not reach back and the session lists every known UID not present), and
//! no modseq ever goes back.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::*;
use crate::flags::{Flag, FlagOp, Flags};

#[derive(Clone, Debug)]
enum Op {
    /// An MTA delivers into `new/`.
    Deliver,
    /// A session APPENDs.
    Append,
    /// A session sets (`true`) or clears \Flagged on the i-th message.
    Store(usize, bool),
    /// A session marks the i-th message \Deleted and expunges it.
    Expunge(usize),
    /// Another program renames the i-th file in `cur/` to toggle `S`.
    OutsideSeen(usize),
    /// Another program deletes the i-th file.
    OutsideDelete(usize),
    /// The server stops cleanly and starts again.
    Restart,
    /// The server is killed (nothing closed) and starts again.
    Crash,
    /// The server stops (cleanly or not) and someone deletes its index.
    DropIndex(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Deliver),
        1 => Just(Op::Append),
        3 => (0usize..32, any::<bool>()).prop_map(|(i, b)| Op::Store(i, b)),
        2 => (0usize..32).prop_map(Op::Expunge),
        2 => (0usize..32).prop_map(Op::OutsideSeen),
        1 => (0usize..32).prop_map(Op::OutsideDelete),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
        1 => any::<bool>().prop_map(Op::DropIndex),
    ]
}

fn open(root: &Path) -> ClosingStore {
    ClosingStore(
        MailStore::open(
            root.to_path_buf(),
            Registry::new(),
            StoreOptions { fsync: false },
        )
        .unwrap(),
    )
}

/// A message's flags as a client compares them (the store has no
/// \Recent among them: that is per session).
fn shown(f: &Flags) -> String {
    let mut v: Vec<String> = f.iter().map(|x| x.to_string()).collect();
    v.sort();
    v.join(" ")
}

/// What a client that synced at `modseq` holds: every UID with its flags.
struct Checkpoint {
    modseq: u64,
    view: BTreeMap<u32, String>,
}

fn files_in(root: &Path, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join(sub))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn run(ops: Vec<Op>) -> std::result::Result<(), TestCaseError> {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let mut s = open(&root);
    let mut f = s.open_folder("INBOX").unwrap();
    let uidvalidity = f.uidvalidity();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    // Every modseq a message was ever shown with, by UID.
    let mut last_modseq: BTreeMap<u32, u64> = BTreeMap::new();
    let mut highest = 0;
    let mut n = 0;
    for op in ops {
        let metas = f.messages();
        let uid_at = |i: usize| metas.get(i % metas.len().max(1)).map(|m| m.uid);
        match op.clone() {
            Op::Deliver => {
                n += 1;
                let name = format!("1700000{n:03}.ext{n}.host");
                fs::write(root.join("tmp").join(&name), format!("m {n}\n")).unwrap();
                fs::rename(root.join("tmp").join(&name), root.join("new").join(&name)).unwrap();
            }
            Op::Append => {
                n += 1;
                f.append(format!("a {n}\n").as_bytes(), &Flags::new(), None)
                    .unwrap();
            }
            Op::Store(i, set) => {
                if let Some(u) = uid_at(i) {
                    let how = if set { FlagOp::Add } else { FlagOp::Remove };
                    f.store_flags(&[u], how, &Flags::from_flags(&[Flag::Flagged]), None)
                        .unwrap();
                }
            }
            Op::Expunge(i) => {
                if let Some(u) = uid_at(i) {
                    let del = Flags::from_flags(&[Flag::Deleted]);
                    f.store_flags(&[u], FlagOp::Add, &del, None).unwrap();
                    f.expunge(Some(&[u])).unwrap();
                }
            }
            Op::OutsideSeen(i) => {
                let cur = files_in(&root, "cur");
                if !cur.is_empty() {
                    let x = &cur[i % cur.len()];
                    let (base, info) = maildir::filename::split(x);
                    let info = info.unwrap_or("");
                    let to = if info.contains('S') {
                        info.replace('S', "")
                    } else {
                        let mut l: Vec<char> = format!("{info}S").chars().collect();
                        l.sort_unstable();
                        l.into_iter().collect()
                    };
                    fs::rename(
                        root.join("cur").join(x),
                        root.join("cur").join(format!("{base}:2,{to}")),
                    )
                    .unwrap();
                }
            }
            Op::OutsideDelete(i) => {
                let mut all: Vec<(String, String)> = Vec::new();
                for sub in ["new", "cur"] {
                    all.extend(
                        files_in(&root, sub)
                            .into_iter()
                            .map(|x| (sub.to_string(), x)),
                    );
                }
                if !all.is_empty() {
                    let (sub, x) = &all[i % all.len()];
                    fs::remove_file(root.join(sub).join(x)).unwrap();
                }
            }
            Op::Restart | Op::Crash | Op::DropIndex(_) => {
                let clean = match op {
                    Op::Restart => true,
                    Op::Crash => false,
                    Op::DropIndex(clean) => clean,
                    _ => unreachable!(),
                };
                if clean {
                    drop(f);
                    drop(s);
                } else {
                    std::mem::forget(f);
                    std::mem::forget(s);
                }
                if let Op::DropIndex(_) = op {
                    let _ = fs::remove_file(root.join(maildir::index::FILE));
                }
                s = open(&root);
                f = s.open_folder("INBOX").unwrap();
            }
        }
        f.sync(false).unwrap();
        prop_assert_eq!(f.uidvalidity(), uidvalidity);
        let metas = f.messages();
        let now = f.highest_modseq();
        prop_assert!(now >= highest, "HIGHESTMODSEQ went back after {:?}", op);
        highest = now;
        let mut view = BTreeMap::new();
        for m in metas.iter() {
            prop_assert!(m.modseq <= now, "UID {} above HIGHESTMODSEQ", m.uid);
            if let Some(&before) = last_modseq.get(&m.uid) {
                prop_assert!(
                    m.modseq >= before,
                    "UID {}'s modseq went back after {:?}",
                    m.uid,
                    op
                );
            }
            last_modseq.insert(m.uid, m.modseq);
            view.insert(m.uid, shown(&m.flags));
        }
        for c in &checkpoints {
            // CHANGEDSINCE: every message new or changed since the client's
            // modseq has a higher one.
            for m in metas.iter() {
                if c.view.get(&m.uid) != view.get(&m.uid) {
                    prop_assert!(
                        m.modseq > c.modseq,
                        "UID {} changed since {} but has modseq {} (after {:?})",
                        m.uid,
                        c.modseq,
                        m.modseq,
                        op
                    );
                }
            }
            // VANISHED (EARLIER): every message gone since is in the log,
            // or the log says it does not reach back.
            let gone: Vec<u32> = c
                .view
                .keys()
                .copied()
                .filter(|u| !view.contains_key(u))
                .collect();
            if let Some(logged) = f.expunged_since(c.modseq) {
                for u in &gone {
                    prop_assert!(
                        logged.contains(u),
                        "UID {} vanished since {} but the log has only {:?} (after {:?})",
                        u,
                        c.modseq,
                        logged,
                        op
                    );
                }
                for u in &logged {
                    prop_assert!(!view.contains_key(u), "UID {} logged gone but here", u);
                }
            }
        }
        checkpoints.push(Checkpoint { modseq: now, view });
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn every_change_since_any_modseq_is_reported(ops in proptest::collection::vec(op(), 1..48)) {
        run(ops)?;
    }
}
