//! `maildirsize` against the Maildir it describes (issue 19): after any mix
//! of our own APPEND, COPY, MOVE and EXPUNGE, deliveries by programs that
//! write no `maildirsize` line (Postfix's `local`) and by programs that do
//! (maildrop, Dovecot's LDA), removals by other programs and restarts, the
//! quota the store reports, once its folders have synced, is exactly what
//! counting the folders gives: nothing missed, nothing counted twice.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::maildir::quota;
use super::*;
use crate::flags::{Flag, FlagOp, Flags};

const FOLDERS: [&str; 3] = ["INBOX", "B", "C"];

#[derive(Clone, Debug)]
enum Op {
    Append(usize, usize),
    Copy(usize, usize, usize),
    Move(usize, usize, usize),
    Expunge(usize, usize),
    /// Another program delivers into `new/`; `true`: it also appends its
    /// own `maildirsize` line, as maildrop and Dovecot's LDA do.
    Deliver(usize, usize, bool),
    OutsideDelete(usize, usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..FOLDERS.len();
    prop_oneof![
        3 => (f.clone(), 1usize..300).prop_map(|(f, n)| Op::Append(f, n)),
        2 => (f.clone(), 0usize..16, f.clone()).prop_map(|(a, i, b)| Op::Copy(a, i, b)),
        2 => (f.clone(), 0usize..16, f.clone()).prop_map(|(a, i, b)| Op::Move(a, i, b)),
        2 => (f.clone(), 0usize..16).prop_map(|(f, i)| Op::Expunge(f, i)),
        3 => (f.clone(), 1usize..300, any::<bool>()).prop_map(|(f, n, l)| Op::Deliver(f, n, l)),
        2 => (f.clone(), 0usize..16).prop_map(|(f, i)| Op::OutsideDelete(f, i)),
        1 => Just(Op::Restart),
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

fn folder_dir(root: &Path, f: usize) -> PathBuf {
    match f {
        0 => root.to_path_buf(),
        _ => root.join(format!(".{}", FOLDERS[f])),
    }
}

/// The i-th message file of a folder (by name), if there are any.
fn nth_file(root: &Path, f: usize, i: usize) -> Option<PathBuf> {
    let mut all: Vec<PathBuf> = ["cur", "new"]
        .iter()
        .flat_map(|sub| fs::read_dir(folder_dir(root, f).join(sub)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    (!all.is_empty()).then(|| all.swap_remove(i % all.len()))
}

/// A message of `n` bytes.
fn body(n: usize, tag: usize) -> Vec<u8> {
    let mut b = format!("Subject: {tag}\n\n").into_bytes();
    b.resize(n.max(b.len()), b'x');
    b
}

fn apply(root: &Path, s: &mut ClosingStore, op: &Op, step: usize) {
    let folder = |s: &ClosingStore, f: usize| s.open_folder(FOLDERS[f]).unwrap();
    let nth_uid = |s: &ClosingStore, f: usize, i: usize| {
        let uids = folder(s, f).uid_list();
        (!uids.is_empty()).then(|| uids[i % uids.len()])
    };
    match *op {
        Op::Append(f, n) => {
            folder(s, f)
                .append(&body(n, step), &Flags::new(), None)
                .unwrap();
        }
        Op::Copy(a, i, b) => {
            if let Some(uid) = nth_uid(s, a, i) {
                let dest = s.open_folder_for_write(FOLDERS[b]).unwrap();
                folder(s, a).copy_to(&[uid], &dest).unwrap();
            }
        }
        Op::Move(a, i, b) => {
            if let Some(uid) = nth_uid(s, a, i) {
                let dest = s.open_folder_for_write(FOLDERS[b]).unwrap();
                folder(s, a).move_to(&[uid], &dest).unwrap();
            }
        }
        Op::Expunge(f, i) => {
            if let Some(uid) = nth_uid(s, f, i) {
                let fo = folder(s, f);
                let deleted = Flags::from_flags(&[Flag::Deleted]);
                fo.store_flags(&[uid], FlagOp::Add, &deleted, None).unwrap();
                fo.expunge(Some(&[uid])).unwrap();
            }
        }
        Op::Deliver(f, n, line) => {
            // Postfix's name: no `,S=`, so the file's length counts.
            let name = format!("{step}.V801I{step}M1.outside");
            let dir = folder_dir(root, f);
            let data = body(n, step);
            fs::write(dir.join("tmp").join(&name), &data).unwrap();
            fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name)).unwrap();
            if line {
                let mut m = fs::OpenOptions::new()
                    .append(true)
                    .open(root.join(quota::FILE))
                    .unwrap();
                writeln!(m, "{} 1", data.len()).unwrap();
            }
        }
        Op::OutsideDelete(f, i) => {
            if let Some(p) = nth_file(root, f, i) {
                fs::remove_file(p).unwrap();
            }
        }
        Op::Restart => {
            *s = open(root);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn maildirsize_matches_the_folders(ops in proptest::collection::vec(op(), 1..40)) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let mut s = open(root);
        for f in &FOLDERS[1..] {
            s.create_folder(f).unwrap();
        }
        s.set_quota_limits(Some(1 << 30), None).unwrap();
        for (step, op) in ops.iter().enumerate() {
            apply(root, &mut s, op, step);
            // The folders sync (as a client's SELECT, STATUS or NOTIFY
            // would make them), then the quota is asked.
            for f in FOLDERS {
                s.open_folder(f).unwrap();
            }
            let q = s.quota().unwrap().unwrap();
            let real = quota::compute(&Dir::open_root(root).unwrap()).unwrap();
            prop_assert_eq!((q.bytes, q.count), real, "after {:?} (step {})", op, step);
        }
    }
}

/// Over quota because of a delivery by a program that writes no
/// `maildirsize` line: refused at once, not only after Maildir++'s
/// 15-minute recount; and a removal by another program makes room at once.
#[test]
fn outside_changes_count_as_soon_as_seen() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let s = open(root);
    s.set_quota_limits(Some(1000), None).unwrap();
    let inbox = s.open_folder("INBOX").unwrap();
    inbox.append(&body(400, 0), &Flags::new(), None).unwrap();
    fs::write(root.join("new/1.V1I1M1.mx"), body(500, 1)).unwrap();
    // Not seen yet: nothing knows of it.
    assert_eq!(
        fs::read_to_string(root.join(quota::FILE)).unwrap(),
        "1000S\n0 0\n400 1\n"
    );
    inbox.sync(false).unwrap();
    assert!(matches!(
        inbox.append(&body(200, 2), &Flags::new(), None),
        Err(StoreError::OverQuota)
    ));
    let q = s.quota().unwrap().unwrap();
    assert_eq!((q.bytes, q.count), (900, 2));
    fs::remove_file(root.join("new/1.V1I1M1.mx")).unwrap();
    inbox.sync(false).unwrap();
    inbox.append(&body(200, 3), &Flags::new(), None).unwrap();
    let q = s.quota().unwrap().unwrap();
    assert_eq!((q.bytes, q.count), (600, 2));
}

/// How long a recount takes at 100,000 messages (run by hand:
/// `cargo test --release --lib recount_cost -- --ignored --nocapture`); the
/// figure is in `quota_upkeep`'s module doc.
#[test]
#[ignore = "a measurement, not a check"]
fn recount_cost() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    drop(open(root));
    for i in 0..100_000 {
        // Half named as nestbox and Dovecot name files (`,S=`), half as
        // Postfix does (no size: each costs a stat).
        let name = if i % 2 == 0 {
            format!("cur/{i}.M1P1.h,S=1000:2,S")
        } else {
            format!("new/{i}.V1I1M1.mx")
        };
        fs::write(root.join(name), b"x").unwrap();
    }
    let dir = Dir::open_root(root).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let (b, c) = quota::compute(&dir).unwrap();
        eprintln!("recount of {c} messages ({b} bytes): {:?}", t.elapsed());
    }
}

/// Past Maildir++'s 5,120 bytes the file is rewritten as its limits and one
/// line of totals (not counted again from every folder), and stays exact;
/// a line another program appends is read at the next question (the cached
/// totals hold only while the file is as they were read).
#[test]
fn the_file_is_kept_short_and_lines_of_others_are_read() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let s = open(root);
    s.set_quota_limits(Some(1 << 30), None).unwrap();
    let inbox = s.open_folder("INBOX").unwrap();
    for i in 0..800 {
        inbox.append(&body(40, i), &Flags::new(), None).unwrap();
        let len = fs::metadata(root.join(quota::FILE)).unwrap().len();
        assert!(len < 5120 + 64, "{len} bytes after {i} APPENDs");
    }
    let q = s.quota().unwrap().unwrap();
    let real = quota::compute(&Dir::open_root(root).unwrap()).unwrap();
    assert_eq!((q.bytes, q.count), real);
    // maildrop's line for a delivery we have not seen yet.
    let mut m = fs::OpenOptions::new()
        .append(true)
        .open(root.join(quota::FILE))
        .unwrap();
    writeln!(m, "1000 1").unwrap();
    let q2 = s.quota().unwrap().unwrap();
    assert_eq!((q2.bytes, q2.count), (q.bytes + 1000, q.count + 1));
}
