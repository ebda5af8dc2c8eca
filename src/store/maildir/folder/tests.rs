//! Tests of the folder: lookups, compact records, sizes, persistence
//! and the change log.

use super::changes::expunged_from;
use super::*;

mod find_tests {
    use super::*;
    use proptest::prelude::*;

    /// A message record with nothing but a UID and a name.
    pub(super) fn msg(uid: u32) -> Msg {
        Msg {
            uid,
            loc: Loc {
                in_new: false,
                fname: format!("{uid}.x.host"),
            },
            flags: Flags::new(),
            rare: None,
            mtime: 0,
            size_raw: NO_SIZE,
            modseq: 1,
            ino: 0,
        }
    }

    proptest! {
        /// The guess-first lookup finds what a binary search finds, in
        /// folders with and without gaps (expunges) in their UIDs.
        #[test]
        fn find_uid_answers_like_a_binary_search(
            uids in proptest::collection::btree_set(1u32..300, 0..120),
            probe in 0u32..320,
        ) {
            let msgs: Vec<Msg> = uids.iter().map(|&u| msg(u)).collect();
            for u in uids.iter().copied().chain([probe, 0, u32::MAX]) {
                prop_assert_eq!(
                    find_uid(&msgs, u),
                    msgs.binary_search_by_key(&u, |m| m.uid).ok()
                );
            }
        }
    }
}

#[cfg(test)]
mod rare_tests {
    /// Setting one rare part keeps the other; with both empty the message
    /// holds no box at all. Sizes round-trip, unknown included.
    #[test]
    fn rare_parts_and_sizes() {
        let mut m = super::find_tests::msg(1);
        assert_eq!((m.other(), m.extra_kw()), ("", &[][..]));
        m.set_other("Z");
        m.set_extra_kw(vec!["k27".to_string()]);
        assert_eq!((m.other(), m.extra_kw()), ("Z", &["k27".to_string()][..]));
        m.set_other("");
        assert_eq!((m.other(), m.extra_kw()), ("", &["k27".to_string()][..]));
        m.set_extra_kw(Vec::new());
        assert!(m.rare.is_none());
        // Uidlist fields are kept through renames (which set `other`).
        assert!(m.take_fields(["P1", "O2"].into_iter()));
        assert!(!m.take_fields(["P1", "O2"].into_iter()), "unchanged");
        m.set_other("Z");
        m.set_extra_kw(vec!["k27".to_string()]);
        m.set_other("");
        m.set_extra_kw(Vec::new());
        assert_eq!(m.ul_fields(), "P1 O2");
        assert!(m.take_fields(std::iter::empty()));
        assert!(m.rare.is_none());
        assert_eq!(m.size(), None);
        for s in [Some(0), Some(12_345), None] {
            m.set_size(s);
            assert_eq!(m.size(), s);
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// A message's record is kept for every message of every open folder
    /// (16 MB at 100,000 messages when it was 160 bytes, 11 MB at 112):
    /// growing it should be a decision, not an accident.
    #[test]
    fn a_message_record_stays_small() {
        assert!(
            std::mem::size_of::<super::Msg>() <= 112,
            "{}",
            std::mem::size_of::<super::Msg>()
        );
    }
}

#[cfg(test)]
mod header_end_tests {
    #[test]
    fn finds_blank_line() {
        let t: &[(&[u8], Option<usize>)] = &[
            (b"A: b\n\nbody", Some(6)),
            (b"A: b\r\n\r\nbody", Some(8)),
            (b"A: b\r\nC: d\r\n", None),
            (b"\n\nx", Some(2)),
            (b"", None),
        ];
        for (input, want) in t {
            assert_eq!(
                super::super::bodies::header_end(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[cfg(test)]
mod persist_tests {
    use super::*;
    use crate::store::{ClosingStore, MailStore, Registry, StoreOptions};
    use std::fs;

    /// Dropping it closes its folders, as a worker ending does.
    fn store_at(root: &Path) -> ClosingStore {
        ClosingStore(
            MailStore::open(
                root.to_path_buf(),
                Registry::new(),
                StoreOptions { fsync: false },
            )
            .unwrap(),
        )
    }

    fn inbox(root: &Path) -> (ClosingStore, Arc<Folder>) {
        let s = store_at(root);
        fs::write(root.join("new/1000.a.host"), b"Subject: a\n\nbody\n").unwrap();
        let f = s.open_folder("INBOX").unwrap();
        (s, f)
    }

    /// In a nowait scope a folder lock held by someone else is waited for
    /// through the scope's hook (on the runtime: `block_in_place`), never
    /// on the caller's thread as is; without contention the hook is not
    /// called at all.
    #[test]
    fn a_held_folder_lock_is_waited_for_through_the_nowait_hook() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static HOOKED: AtomicUsize = AtomicUsize::new(0);
        fn hook(g: &mut dyn FnMut()) {
            HOOKED.fetch_add(1, Ordering::SeqCst);
            g()
        }
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let uid = f.messages()[0].uid;
        {
            let _scope = nowait::Scope::enter(hook);
            assert!(f.metas(&[uid])[0].is_some());
        }
        assert_eq!(HOOKED.load(Ordering::SeqCst), 0, "uncontended");
        let held = f.lock_state();
        let (tx, rx) = std::sync::mpsc::channel();
        let f2 = f.clone();
        let t = std::thread::spawn(move || {
            let _scope = nowait::Scope::enter(hook);
            let found = f2.metas(&[uid])[0].is_some();
            tx.send(found).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "waits for the lock");
        drop(held);
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        t.join().unwrap();
        assert_eq!(HOOKED.load(Ordering::SeqCst), 1);
    }

    /// A session's read of the folder's changes never blocks its runtime
    /// thread while another command holds the folder (a `STORE 1:*` over
    /// 100,000 messages holds it for 0.4 s): on a single-threaded runtime,
    /// another task keeps running meanwhile, and the answer (a new message,
    /// its \Recent claimed) comes once the holder lets go.
    #[test]
    fn reading_changes_never_blocks_the_runtime_thread() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        // The message there is this session's (and its \Recent claimed).
        f.sync(true).unwrap();
        f.take_recent();
        let known = f.uid_list();
        let since = f.highest_modseq();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let (holding_tx, holding_rx) = std::sync::mpsc::channel::<()>();
        let f2 = f.clone();
        let holder = std::thread::spawn(move || {
            let _held = f2.lock_state();
            holding_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        holding_rx.recv().unwrap();
        let changes = rt.block_on(async {
            let t = ticks.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    t.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            // The answer must wait for the holder...
            let q = ChangeQuery {
                since_modseq: since,
                known: known.clone(),
                claim_recent: true,
                want_uid_list: false,
            };
            let read = f.changes(q);
            let c = read.await.unwrap();
            ticker.abort();
            c
        });
        holder.join().unwrap();
        // ...while the runtime's other task went on (300 ms at 5 ms a tick).
        assert!(
            ticks.load(Ordering::SeqCst) >= 10,
            "the runtime thread was blocked: {} ticks",
            ticks.load(Ordering::SeqCst)
        );
        assert!(changes.new.is_empty() && changes.flags.is_empty());
        assert_eq!(changes.uidvalidity, f.uidvalidity());

        // Uncontended, in place: a new message, \Recent claimed once.
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        f.sync(true).unwrap();
        let q = ChangeQuery {
            since_modseq: since,
            known: known.clone(),
            claim_recent: true,
            want_uid_list: false,
        };
        let c = rt.block_on(f.changes(q.clone())).unwrap();
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.recent, [c.new[0].uid]);
        assert_eq!(c.uid_list.as_deref().map(Vec::len), Some(2));
        let again = rt.block_on(f.changes(q)).unwrap();
        assert!(again.recent.is_empty(), "\\Recent is claimed once");
    }

    /// Dropping a folder writes nothing; closing it (which the registry
    /// does once nobody holds it, and for all at the end) writes its index.
    #[test]
    fn only_closing_writes_the_index() {
        let d = tempfile::tempdir().unwrap();
        let index = d.path().join(index::FILE);
        let open_plain = || {
            MailStore::open(
                d.path().to_path_buf(),
                Registry::new(),
                StoreOptions { fsync: false },
            )
            .unwrap()
        };
        let s = open_plain();
        fs::write(d.path().join("new/1000.a.host"), b"Subject: a\n\nbody\n").unwrap();
        let f = s.open_folder("INBOX").unwrap();
        f.sync(true).unwrap();
        drop(f);
        drop(s);
        assert!(!index.exists(), "a drop wrote the index");
        let s = store_at(d.path());
        let f = s.open_folder("INBOX").unwrap();
        f.sync(true).unwrap();
        drop(f);
        drop(s);
        assert!(index.exists(), "closing wrote no index");
    }

    /// Index images are encoded in order under the folder lock but written
    /// outside it: whichever write comes last, the newest image stays.
    #[test]
    fn an_older_index_image_never_replaces_a_newer_one() {
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let (old, new, newest_modseq) = {
            let mut st = f.lock_state();
            let old = f.index_job(&mut st, false);
            st.highest_modseq += 5;
            let new = f.index_job(&mut st, false);
            (old, new, st.highest_modseq)
        };
        f.write_index_job(&new).unwrap();
        f.write_index_job(&old).unwrap();
        let on_disk = index::load(d.path()).unwrap();
        assert_eq!(on_disk.highest_modseq, newest_modseq);
        assert!(!on_disk.clean);
    }

    /// The change watcher's sync writes nothing of ours; `persist_due`,
    /// which the watcher runs a moment later, does.
    #[test]
    fn the_watchers_sync_leaves_the_writes_to_persist_due() {
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let index_path = d.path().join(index::FILE);
        let _ = fs::remove_file(&index_path);
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        f.lock_state().last_index_write = None;
        f.sync_for_watcher(None, None).unwrap();
        assert_eq!(f.messages().len(), 2);
        assert!(!index_path.exists(), "the watcher's sync wrote the index");
        f.persist_due();
        assert_eq!(index::load(d.path()).unwrap().msgs.len(), 2);
        assert!(!f.lock_state().dirty);
    }

    /// A folder opened from its index, with settled directories, makes no
    /// base-name table; the first sync that finds a file makes it, and it
    /// names every message.
    #[test]
    fn the_base_name_table_is_made_when_first_needed() {
        let d = tempfile::tempdir().unwrap();
        let settle = |sub: &str| {
            let t = filetime::FileTime::from_unix_time(now_ns() as i64 / 1_000_000_000 - 10, 0);
            filetime::set_file_mtime(d.path().join(sub), t).unwrap();
        };
        {
            let (_s, f) = inbox(d.path());
            f.sync(true).unwrap();
            settle("new");
            settle("cur");
            f.sync(false).unwrap();
        }
        let s = store_at(d.path());
        let f = s.open_folder("INBOX").unwrap();
        assert_eq!(f.messages().len(), 1);
        assert!(f.lock_state().by_base.get().is_none(), "made at open");
        // Another program renames the message's file (a flag change) and
        // delivers one; the change watcher passes on the names, which are
        // looked up by base name.
        fs::rename(
            d.path().join("cur/1000.a.host:2,"),
            d.path().join("cur/1000.a.host:2,F"),
        )
        .unwrap();
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        let event = |in_new: bool, name: &str, gone: bool| EntryEvent {
            in_new,
            name: name.to_string(),
            gone,
        };
        f.sync_for_watcher(
            Some(&[
                event(false, "1000.a.host:2,", true),
                event(false, "1000.a.host:2,F", false),
                event(true, "1001.b.host", false),
            ]),
            None,
        )
        .unwrap();
        let msgs = f.messages();
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].flags.has(sys::FLAGGED));
        let st = f.lock_state();
        assert!(st.by_base.get().is_some());
        assert_eq!(st.by_base().len(), 2);
        for m in &st.msgs {
            assert_eq!(st.uid_of_base(m.base()), Some(m.uid));
        }
    }

    /// An index whose records are out of UID order, one of them twice,
    /// still opens as the folder (sorted, each UID once).
    #[test]
    fn an_index_out_of_order_opens_sorted() {
        let d = tempfile::tempdir().unwrap();
        {
            let (_s, f) = inbox(d.path());
            fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
            f.sync(true).unwrap();
            assert_eq!(f.messages().len(), 2);
        }
        let mut idx = index::load(d.path()).unwrap();
        idx.msgs.reverse();
        idx.msgs.push(idx.msgs[0].clone());
        index::save(d.path(), &idx).unwrap();
        let s = store_at(d.path());
        let f = s.open_folder("INBOX").unwrap();
        let uids: Vec<u32> = f.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uids, [1, 2]);
        assert_eq!(&**f.read_message(2).unwrap(), b"Subject: b\n\nbody\n");
    }

    /// A periodic index image (written unclean) followed by a close with
    /// nothing else changed leaves a clean index: the next open keeps
    /// HIGHESTMODSEQ instead of taking the path for a crash (a new,
    /// time-based one, which sends CONDSTORE clients to resync).
    #[test]
    fn a_close_after_a_periodic_index_write_leaves_it_clean() {
        let d = tempfile::tempdir().unwrap();
        let reopen = || {
            let s = store_at(d.path());
            let f = s.open_folder("INBOX").unwrap();
            (s, f)
        };
        {
            let (_s, f) = inbox(d.path());
            f.sync(true).unwrap();
        }
        assert!(index::load(d.path()).unwrap().clean);
        let before = {
            let (_s, f) = reopen();
            let before = f.highest_modseq();
            // Directories changed under us (here: their mtimes): a rescan
            // that finds nothing new, then the periodic write.
            let t = filetime::FileTime::from_unix_time(now_ns() as i64 / 1_000_000_000 - 10, 0);
            filetime::set_file_mtime(d.path().join("cur"), t).unwrap();
            f.lock_state().last_index_write = None;
            f.sync(false).unwrap();
            assert!(!index::load(d.path()).unwrap().clean, "the periodic image");
            assert_eq!(f.highest_modseq(), before);
            before
        };
        assert!(
            index::load(d.path()).unwrap().clean,
            "written clean at close"
        );
        let (_s, f) = reopen();
        assert_eq!(f.highest_modseq(), before);
    }

    /// An index write that fails (now outside the folder lock) leaves the
    /// state dirty, so the next sync writes it.
    #[test]
    fn a_failed_index_write_is_retried_by_the_next_sync() {
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let index_path = d.path().join(index::FILE);
        // A directory where the index goes makes the rename fail.
        let _ = fs::remove_file(&index_path);
        fs::create_dir(&index_path).unwrap();
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        f.lock_state().last_index_write = None;
        f.sync(false).unwrap();
        assert!(f.lock_state().dirty, "a failed index write is retried");
        fs::remove_dir(&index_path).unwrap();
        f.lock_state().last_index_write = None;
        f.sync(false).unwrap();
        assert!(!f.lock_state().dirty);
        let on_disk = index::load(d.path()).unwrap();
        assert_eq!(on_disk.msgs.len(), 2);
    }
}

#[cfg(test)]
mod changes_tests {
    use super::*;
    use crate::flags::{Flag, FlagOp, Flags};
    use crate::store::{MailStore, Registry, StoreOptions};
    use proptest::prelude::*;
    use std::fs;

    /// What `changes_since` answered before the flag log: a walk over
    /// every message. The log must give exactly this.
    fn by_walk(f: &Folder, since: u64, known: &[u32]) -> (Vec<u32>, Vec<(u32, u64)>, Vec<u32>) {
        let st = f.lock_state();
        let max_known = known.last().copied().unwrap_or(0);
        let new = st.msgs.iter().filter(|m| m.uid > max_known).map(|m| m.uid);
        let flags = st
            .msgs
            .iter()
            .filter(|m| {
                m.uid <= max_known && m.modseq > since && known.binary_search(&m.uid).is_ok()
            })
            .map(|m| (m.uid, m.modseq));
        (
            new.collect(),
            flags.collect(),
            expunged_from(&st.msgs, known),
        )
    }

    fn answer(c: &crate::store::Changes) -> (Vec<u32>, Vec<(u32, u64)>, Vec<u32>) {
        let new = c.new.iter().map(|m| m.uid).collect();
        let flags = c.flags.iter().map(|m| (m.uid, m.modseq)).collect();
        (new, flags, c.expunged.clone())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Deliver,
        Store(u8, bool),
        Rename(u8),
        Expunge(u8),
        Look,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Deliver),
            3 => (any::<u8>(), any::<bool>()).prop_map(|(i, s)| Op::Store(i, s)),
            2 => any::<u8>().prop_map(Op::Rename),
            1 => any::<u8>().prop_map(Op::Expunge),
            2 => Just(Op::Look),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Sessions look at the folder at random points (`Look` keeps a
        /// view); between looks the folder gets deliveries, STOREs, flag
        /// renames by another program and expunges. For every kept view,
        /// the answer from the log equals the walk, also once the log is
        /// taken to have overflowed; the shared UID list is always every
        /// UID, and the base name table names every message.
        #[test]
        fn the_flag_log_and_uid_list_answer_like_a_walk(ops in proptest::collection::vec(op(), 1..40)) {
            let d = tempfile::tempdir().unwrap();
            let root = d.path();
            let s = MailStore::open(root.to_path_buf(), Registry::new(), StoreOptions { fsync: false }).unwrap();
            for i in 0..6 {
                fs::write(root.join(format!("new/{i}.a.host")), b"Subject: a\n\nbody\n").unwrap();
            }
            let f = s.open_folder("INBOX").unwrap();
            f.sync(true).unwrap();
            let mut views: Vec<(u64, Vec<u32>)> = Vec::new();
            let look = |f: &Folder| {
                let st = f.lock_state();
                (st.highest_modseq, st.msgs.iter().map(|m| m.uid).collect::<Vec<u32>>())
            };
            views.push(look(&f));
            let mut n = 100;
            for op in ops {
                let op_kind = op.clone();
                let uids: Vec<u32> = f.lock_state().msgs.iter().map(|m| m.uid).collect();
                let pick = |i: u8| uids.get(i as usize % uids.len().max(1)).copied();
                match op {
                    Op::Deliver => {
                        n += 1;
                        fs::write(root.join(format!("new/{n}.b.host")), b"Subject: b\n\nbody\n").unwrap();
                        f.sync(false).unwrap();
                    }
                    Op::Store(i, add) => {
                        if let Some(u) = pick(i) {
                            let op = if add { FlagOp::Add } else { FlagOp::Remove };
                            f.store_flags(&[u], op, &Flags::from_flags(&[Flag::Flagged]), None).unwrap();
                        }
                    }
                    Op::Rename(i) => {
                        // Another program marks a message seen.
                        if let Some(u) = pick(i) {
                            let loc = { let st = f.lock_state(); st.msgs[st.find(u).unwrap()].loc.clone() };
                            if !loc.in_new && !loc.fname.ends_with('S') {
                                let from = root.join("cur").join(&loc.fname);
                                let to = root.join("cur").join(format!("{}S", loc.fname));
                                fs::rename(from, to).unwrap();
                                f.sync(false).unwrap();
                            }
                        }
                    }
                    Op::Expunge(i) => {
                        if let Some(u) = pick(i) {
                            f.store_flags(&[u], FlagOp::Add, &Flags::from_flags(&[Flag::Deleted]), None).unwrap();
                            f.expunge(Some(&[u])).unwrap();
                        }
                    }
                    Op::Look => views.push(look(&f)),
                }
                {
                    // The base name table names every message, and only those.
                    let st = f.lock_state();
                    prop_assert_eq!(st.by_base().len(), st.msgs.len());
                    for m in &st.msgs {
                        prop_assert_eq!(st.uid_of_base(m.base()), Some(m.uid));
                    }
                }
                for (since, known) in &views {
                    prop_assert_eq!(answer(&f.changes_since(*since, known)), by_walk(&f, *since, known));
                }
                if matches!(op_kind, Op::Look) {
                    // The shared UID list, extended by appending where it
                    // can be (asked for only now and then, as sessions do,
                    // so several changes come between two lists).
                    let all: Vec<u32> = f.lock_state().msgs.iter().map(|m| m.uid).collect();
                    prop_assert_eq!(&*f.uid_list(), &all);
                }
            }
            // As if the log had overflowed: everything older is walked.
            {
                let mut st = f.lock_state();
                st.flag_log_floor = st.highest_modseq;
            }
            for (since, known) in &views {
                prop_assert_eq!(answer(&f.changes_since(*since, known)), by_walk(&f, *since, known));
            }
        }
    }
}
