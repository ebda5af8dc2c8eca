//! A scripted QRESYNC client (RFC 7162 §3.2) that goes offline and comes back.
//!
//! The client syncs a 240-message INBOX in full (UIDVALIDITY, HIGHESTMODSEQ, UID -> flags) and
//! logs out. While it is away the mailbox changes the three ways a Maildir changes: an MTA
//! delivers (tmp/ -> new/), another IMAP session stores flags and keywords and expunges, and an
//! outside program renames a file in cur/ to change its `:2,` flags and unlinks another. The
//! client then reconnects with `SELECT INBOX (QRESYNC (...))`, with and without known-uids,
//! applies only what the server tells it (VANISHED (EARLIER), FETCH with MODSEQ, and a
//! `UID FETCH` of new UIDs when the SELECT did not cover them), and must end up with exactly
//! the view a fresh full sync gives, having read far fewer bytes than that full sync.
//!
//! The same scenario runs with the server kept running, restarted while the client is away,
//! and restarted without nestbox's index (which holds the modseqs): then every message is
//! reported, since the server cannot tell which changed, and the view must still be exact.
//! In every case modseqs only rise: whatever the resync reports lies above what the client
//! knew.
//!
//! The expectations were checked against Dovecot as well (`NESTBOX_TEST_SERVER=dovecot`, the
//! index-loss variant aside): the same messages are reported.
//!
//! Owns nothing but its temp dirs; talks to 127.0.0.1 only, every read has a timeout, and
//! every loop is bounded by the number of lines the server sends.
mod common;

use common::{ImapClient, Kind, Options, TestServer};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Messages in INBOX before the client goes offline (UIDs 1..=SEEDED).
const SEEDED: u32 = 240;
/// Messages an MTA delivers while the client is offline.
const DELIVERED: u32 = 8;
/// The UIDVALIDITY of the seeded uidlist.
const UIDVALIDITY: u32 = 1_700_000_000;
/// The seeded `dovecot-keywords`: letter `a` and `b`.
const KEYWORDS: [&str; 2] = ["$Forwarded", "Work"];

type Flags = BTreeSet<String>;

/// What the client keeps of INBOX between connections.
#[derive(Clone, Debug, PartialEq)]
struct View {
    uidvalidity: u32,
    highest_modseq: u64,
    msgs: BTreeMap<u32, Flags>,
}

/// A logged-in connection that counts every byte the server sends to its commands.
struct Wire {
    c: ImapClient,
    next_tag: u32,
    received: usize,
}

impl Wire {
    fn login(server: &TestServer) -> Wire {
        Wire {
            c: ImapClient::login(server, common::USER, common::PASSWORD),
            next_tag: 0,
            received: 0,
        }
    }

    /// Sends `cmd`, which must succeed; returns its untagged lines and adds every line read
    /// (with its CRLF; a literal is inside its logical line) to `received`.
    fn ok(&mut self, cmd: &str) -> Vec<String> {
        self.next_tag += 1;
        // "w" tags: ImapClient's own commands (LOGIN, LOGOUT) use "t".
        let tag = format!("w{} ", self.next_tag);
        self.c.send_raw(format!("{tag}{cmd}\r\n").as_bytes());
        let mut untagged = Vec::new();
        loop {
            let line = self
                .c
                .read_line()
                .unwrap_or_else(|| panic!("connection closed during {cmd}"));
            self.received += line.len() + 2;
            if let Some(status) = line.strip_prefix(&tag) {
                assert!(status.starts_with("OK"), "{cmd} -> {status}");
                return untagged;
            }
            untagged.push(line);
        }
    }

    fn logout(self) {
        self.c.logout();
    }
}

/// The number in `[NAME n]` in one of `lines`.
fn code(lines: &[String], name: &str) -> Option<u64> {
    let re = regex::Regex::new(&format!(r"\[{name} (\d+)\]")).expect("re");
    lines
        .iter()
        .find_map(|l| re.captures(l).and_then(|c| c[1].parse().ok()))
}

/// One `* n FETCH (...)` line: UID, flags without `\Recent`, MODSEQ if given.
#[derive(Debug)]
struct Fetched {
    uid: u32,
    flags: Flags,
    modseq: Option<u64>,
}

fn parse_fetch(line: &str) -> Option<Fetched> {
    let re = regex::Regex::new(r"^\* \d+ FETCH \(").expect("re");
    if !re.is_match(line) {
        return None;
    }
    let uid = regex::Regex::new(r"[( ]UID (\d+)")
        .expect("re")
        .captures(line)
        .unwrap_or_else(|| panic!("FETCH without UID: {line}"))[1]
        .parse()
        .expect("UID");
    let list = regex::Regex::new(r"FLAGS \(([^)]*)\)")
        .expect("re")
        .captures(line)
        .unwrap_or_else(|| panic!("FETCH without FLAGS: {line}"))[1]
        .to_string();
    let modseq = regex::Regex::new(r"MODSEQ \((\d+)\)")
        .expect("re")
        .captures(line)
        .map(|c| c[1].parse().expect("MODSEQ"));
    Some(Fetched {
        uid,
        flags: list
            .split_whitespace()
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .map(str::to_string)
            .collect(),
        modseq,
    })
}

/// The ranges of a `* VANISHED (EARLIER) set` line (RFC 7162 §3.2.10), or None for other lines.
fn parse_vanished(line: &str) -> Option<Vec<(u32, u32)>> {
    let set = line.strip_prefix("* VANISHED (EARLIER) ")?;
    Some(
        set.split(',')
            .map(|r| {
                let (a, b) = r.split_once(':').unwrap_or((r, r));
                let (a, b): (u32, u32) = (
                    a.parse().unwrap_or_else(|_| panic!("UID in {line}")),
                    b.parse().unwrap_or_else(|_| panic!("UID in {line}")),
                );
                (a.min(b), a.max(b))
            })
            .collect(),
    )
}

/// `uids` (ascending) as a sequence set: `1:4,6,8:9`.
fn uid_set<'a>(uids: impl IntoIterator<Item = &'a u32>) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match ranges.last_mut() {
            Some(r) if r.1 + 1 == u => r.1 = u,
            _ => ranges.push((u, u)),
        }
    }
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The base name (what never changes) and flag letters of seeded message `i`: it is UID `i`.
fn seeded(i: u32) -> (String, String) {
    let mut letters = String::new();
    if i % 7 == 0 {
        letters.push('F');
    }
    if i % 3 == 0 {
        letters.push('S');
    }
    if i % 10 == 0 {
        letters.push('a');
    }
    if i % 11 == 0 {
        letters.push('b');
    }
    (format!("{}.M{i}P4242.offline", 1_700_001_000 + i), letters)
}

/// The IMAP flags that `letters` of a `:2,` suffix stand for, with the seeded keywords.
fn flags_of_letters(letters: &str) -> Flags {
    letters
        .chars()
        .map(|c| match c {
            'D' => "\\Draft".to_string(),
            'F' => "\\Flagged".to_string(),
            'R' => "\\Answered".to_string(),
            'S' => "\\Seen".to_string(),
            'T' => "\\Deleted".to_string(),
            k => KEYWORDS[(k as u8 - b'a') as usize].to_string(),
        })
        .collect()
}

fn message(i: u32, what: &str) -> String {
    format!(
        "From: mta@example.org\r\nTo: alice@example.org\r\nSubject: {what} {i}\r\n\
         Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{what}.{i}@offline.test>\r\n\
         \r\n{what} body {i}\r\n"
    )
}

/// A Maildir with SEEDED messages in cur/, their UIDs fixed by a dovecot-uidlist so that the
/// test knows which file is which UID, and two keywords.
fn seed_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("nestbox-qresync-seed-")
        .tempdir()
        .expect("seed dir");
    let md = dir.path();
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(md.join(sub)).expect("seed cur/new/tmp");
    }
    let mut uidlist = format!("3 V{UIDVALIDITY} N{}\n", SEEDED + 1);
    for i in 1..=SEEDED {
        let (base, letters) = seeded(i);
        let body = message(i, "seeded");
        fs::write(
            md.join("cur")
                .join(format!("{base},S={}:2,{letters}", body.len())),
            &body,
        )
        .expect("seed message");
        uidlist.push_str(&format!("{i} :{base},S={}\n", body.len()));
    }
    fs::write(md.join("dovecot-uidlist"), uidlist).expect("seed uidlist");
    let keywords: String = KEYWORDS
        .iter()
        .enumerate()
        .map(|(n, k)| format!("{n} {k}\n"))
        .collect();
    fs::write(md.join("dovecot-keywords"), keywords).expect("seed keywords");
    dir
}

/// The current file in `cur/` of a message whose name starts with `base`.
fn file_in_cur(maildir: &Path, base: &str) -> PathBuf {
    let prefix = format!("{base},");
    fs::read_dir(maildir.join("cur"))
        .expect("read cur/")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no file for {base} in cur/"))
}

/// What an outside program (a local MUA, a script) does: rename a message's file with
/// `letter` added to (or, with `add` false, taken from) its `:2,` flags.
fn rename_with_flag(maildir: &Path, uid: u32, letter: char, add: bool) {
    let from = file_in_cur(maildir, &seeded(uid).0);
    let name = from
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let (stem, info) = name.split_once(":2,").expect(":2, in a cur/ name");
    let mut letters: Vec<char> = info.chars().filter(|&c| c != letter).collect();
    if add {
        letters.push(letter);
    }
    // Maildir wants the letters in ASCII order.
    letters.sort_unstable();
    let to = from.with_file_name(format!("{stem}:2,{}", String::from_iter(letters)));
    fs::rename(&from, &to).expect("outside rename");
}

/// What an MTA does: write the message into tmp/ under a unique name (time.pid_seq.host),
/// then rename it into new/.
fn deliver(maildir: &Path, seq: u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let name = format!("{secs}.{}_{seq}.mta.offline", std::process::id());
    let tmp = maildir.join("tmp").join(&name);
    fs::write(&tmp, message(seq, "delivered")).expect("write to tmp/");
    // As root the server serves this mail as another user, who must own it as if it had
    // delivered it.
    common::give_to_mail_user(&tmp);
    fs::rename(&tmp, maildir.join("new").join(&name)).expect("rename into new/");
}

/// Every `nestbox.index` under `dir`, at any depth.
fn index_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if e.file_type().expect("file type").is_dir() {
            index_files(&p, found);
        } else if e.file_name() == "nestbox.index" {
            found.push(p);
        }
    }
}

/// The client's first full sync; returns its view and the bytes it read.
fn full_sync_with_modseq(server: &TestServer) -> (View, usize) {
    let mut w = Wire::login(server);
    w.ok("ENABLE QRESYNC");
    let select = w.ok("SELECT INBOX");
    let highest_modseq = code(&select, "HIGHESTMODSEQ").expect("HIGHESTMODSEQ");
    let uidvalidity = code(&select, "UIDVALIDITY").expect("UIDVALIDITY") as u32;
    let mut msgs = BTreeMap::new();
    for f in w
        .ok("UID FETCH 1:* (UID FLAGS MODSEQ)")
        .iter()
        .filter_map(|l| parse_fetch(l))
    {
        let m = f.modseq.expect("MODSEQ");
        assert!(m <= highest_modseq, "MODSEQ {m} above {highest_modseq}");
        msgs.insert(f.uid, f.flags);
    }
    let bytes = w.received;
    w.logout();
    (
        View {
            uidvalidity,
            highest_modseq,
            msgs,
        },
        bytes,
    )
}

/// A fresh full sync as a client without a cache does it.
struct FullSync {
    msgs: BTreeMap<u32, Flags>,
    /// Bytes read from SELECT to the FETCH's tagged OK.
    bytes: usize,
    /// Bytes of the SELECT's answer alone, which a resync pays as well.
    preamble: usize,
    /// The longest FETCH line, with its CRLF.
    longest_line: usize,
}

fn full_sync(server: &TestServer) -> FullSync {
    let mut w = Wire::login(server);
    w.ok("SELECT INBOX");
    let preamble = w.received;
    let lines = w.ok("UID FETCH 1:* (UID FLAGS)");
    let msgs = lines
        .iter()
        .filter_map(|l| parse_fetch(l))
        .map(|f| (f.uid, f.flags))
        .collect();
    let longest_line = lines.iter().map(|l| l.len() + 2).max().unwrap_or(0);
    let bytes = w.received;
    w.logout();
    FullSync {
        msgs,
        bytes,
        preamble,
        longest_line,
    }
}

/// What one resync saw.
struct Resync {
    view: View,
    /// Bytes read from ENABLE to the last tagged OK.
    bytes: usize,
    /// UIDs the SELECT sent FETCHes for.
    fetched_in_select: BTreeSet<u32>,
    /// Every VANISHED (EARLIER) range.
    vanished: Vec<(u32, u32)>,
    /// Whether new messages needed a UID FETCH after the SELECT.
    fetched_new: bool,
}

/// Reconnects and brings `old` up to date the QRESYNC way (RFC 7162 §3.2.5): only from what
/// the server says, never from a full listing.
fn resync(server: &TestServer, old: &View, known_uids: bool) -> Resync {
    let mut w = Wire::login(server);
    let enabled = w.ok("ENABLE QRESYNC");
    assert!(
        enabled
            .iter()
            .any(|l| l.starts_with("* ENABLED") && l.contains("QRESYNC")),
        "{enabled:?}"
    );
    let param = if known_uids {
        format!(
            "{} {} {}",
            old.uidvalidity,
            old.highest_modseq,
            uid_set(old.msgs.keys())
        )
    } else {
        format!("{} {}", old.uidvalidity, old.highest_modseq)
    };
    let lines = w.ok(&format!("SELECT INBOX (QRESYNC ({param}))"));
    assert_eq!(
        code(&lines, "UIDVALIDITY"),
        Some(u64::from(old.uidvalidity)),
        "{lines:?}"
    );
    let highest_modseq = code(&lines, "HIGHESTMODSEQ").expect("HIGHESTMODSEQ");
    assert!(
        highest_modseq > old.highest_modseq,
        "HIGHESTMODSEQ went from {} to {highest_modseq} though the mailbox changed",
        old.highest_modseq
    );
    let exists: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .expect("EXISTS");

    let mut view = old.clone();
    view.highest_modseq = highest_modseq;
    let mut fetched_in_select = BTreeSet::new();
    let mut vanished = Vec::new();
    // Every modseq the resync reports must lie above what the client knew, and none above the
    // new HIGHESTMODSEQ.
    let check_modseq = |f: &Fetched| {
        let m = f
            .modseq
            .unwrap_or_else(|| panic!("no MODSEQ for UID {}", f.uid));
        assert!(
            m > old.highest_modseq && m <= highest_modseq,
            "UID {} has MODSEQ {m}, outside ({}, {highest_modseq}]",
            f.uid,
            old.highest_modseq
        );
    };
    for line in &lines {
        assert!(
            !line.starts_with("* VANISHED ") || line.starts_with("* VANISHED (EARLIER) "),
            "a SELECT tells only what vanished earlier: {line}"
        );
        if let Some(ranges) = parse_vanished(line) {
            // All VANISHED (EARLIER) before the first FETCH: RFC 7162 §3.2.5.1 makes this
            // answer that of UID FETCH ... (CHANGEDSINCE n VANISHED), for which §3.2.6 says so.
            assert!(
                fetched_in_select.is_empty(),
                "VANISHED after a FETCH: {lines:?}"
            );
            for &(a, b) in &ranges {
                // A UID the client never had (expunged before it learnt of it, or never
                // given out) names nothing it holds: nothing to remove.
                view.msgs.retain(|&u, _| !(a..=b).contains(&u));
            }
            vanished.extend(ranges);
        } else if let Some(f) = parse_fetch(line) {
            check_modseq(&f);
            fetched_in_select.insert(f.uid);
            view.msgs.insert(f.uid, f.flags);
        }
    }
    // With known-uids the answer is that of `UID FETCH known-uids (FLAGS) (CHANGEDSINCE n
    // VANISHED)` (§3.2.5.1), so new messages, outside the set, come from a UID FETCH above the
    // last UID the client knew; the client sees it needs one when its view falls short of
    // EXISTS.
    let fetched_new = view.msgs.len() != exists;
    if fetched_new {
        let from = old.msgs.keys().last().map_or(1, |u| u + 1);
        for f in w
            .ok(&format!("UID FETCH {from}:* (UID FLAGS MODSEQ)"))
            .iter()
            .filter_map(|l| parse_fetch(l))
        {
            check_modseq(&f);
            view.msgs.insert(f.uid, f.flags);
        }
    }
    assert_eq!(view.msgs.len(), exists, "view vs EXISTS");
    let bytes = w.received;
    w.logout();
    Resync {
        view,
        bytes,
        fetched_in_select,
        vanished,
        fetched_new,
    }
}

/// How the server spends the time the client is offline, after the changes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Offline {
    /// It keeps running.
    Running,
    /// It is restarted.
    Restarted,
    /// It is stopped, every `nestbox.index` under the Maildir is deleted, and it starts again.
    IndexLost,
}

/// UIDs the other IMAP session changes flags of: (UIDs, STORE item).
const STORES: [(&str, &str); 6] = [
    ("5,17,33", "+FLAGS (\\Seen \\Flagged)"),
    ("3,6", "-FLAGS (\\Seen)"),
    ("10,20", "-FLAGS ($Forwarded)"),
    ("40:42", "+FLAGS (Project $Label2)"),
    ("50", "+FLAGS (\\Answered Work)"),
    ("70", "+FLAGS (\\Deleted)"),
];
/// UIDs the other session expunges.
const EXPUNGED: [u32; 4] = [60, 61, 62, 150];
/// The outside program: (UID, letter, added) renames, and the UID whose file it deletes.
const RENAMES: [(u32, char, bool); 3] = [(80, 'S', true), (81, 'F', true), (99, 'S', false)];
const UNLINKED: u32 = 90;

fn scenario(offline: Offline) {
    let seed = seed_dir();
    let mut server = TestServer::start_with(Options {
        seed_maildir: Some(seed.path().to_path_buf()),
        ..Options::default()
    });
    let maildir = server.maildir();

    // 1. Full sync, then offline.
    let (old, first_sync_bytes) = full_sync_with_modseq(&server);
    assert_eq!(old.uidvalidity, UIDVALIDITY);
    let seeded_view: BTreeMap<u32, Flags> = (1..=SEEDED)
        .map(|i| (i, flags_of_letters(&seeded(i).1)))
        .collect();
    assert_eq!(old.msgs, seeded_view, "the first sync shows the seed");

    // 2a. An MTA delivers.
    for seq in 1..=DELIVERED {
        deliver(&maildir, seq);
    }
    // 2b. Another IMAP session sees the new mail, stores flags and keywords, and expunges,
    // also one of the new messages (a UID the client never had).
    let new_uids: Vec<u32> = (SEEDED + 1..=SEEDED + DELIVERED).collect();
    let (new_flagged, new_expunged) = (new_uids[2], new_uids[1]);
    let mut other = ImapClient::login(&server, common::USER, common::PASSWORD);
    let lines = other.ok("SELECT INBOX");
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("* {} EXISTS", SEEDED + DELIVERED)),
        "the other session sees the deliveries: {lines:?}"
    );
    for (uids, item) in STORES {
        other.ok(&format!("UID STORE {uids} {item}"));
    }
    other.ok(&format!("UID STORE {new_flagged} +FLAGS (\\Flagged)"));
    let gone = format!("{},{new_expunged}", uid_set(&EXPUNGED));
    other.ok(&format!("UID STORE {gone} +FLAGS (\\Deleted)"));
    other.ok(&format!("UID EXPUNGE {gone}"));
    other.logout();
    // 2c. An outside program renames files in cur/ to change flags, and deletes one.
    for (uid, letter, add) in RENAMES {
        rename_with_flag(&maildir, uid, letter, add);
    }
    fs::remove_file(file_in_cur(&maildir, &seeded(UNLINKED).0)).expect("outside unlink");

    // What the mailbox must now hold, from the test's own account of what it did.
    let mut expected = seeded_view.clone();
    let edit = |e: &mut BTreeMap<u32, Flags>, uid: u32, f: &str, add: bool| {
        let set = e.get_mut(&uid).expect("a UID the test changed");
        if add {
            set.insert(f.to_string());
        } else {
            set.remove(f);
        }
    };
    for uid in [5, 17, 33] {
        edit(&mut expected, uid, "\\Seen", true);
        edit(&mut expected, uid, "\\Flagged", true);
    }
    for uid in [3, 6] {
        edit(&mut expected, uid, "\\Seen", false);
    }
    for uid in [10, 20] {
        edit(&mut expected, uid, "$Forwarded", false);
    }
    for uid in 40..=42 {
        edit(&mut expected, uid, "Project", true);
        edit(&mut expected, uid, "$Label2", true);
    }
    edit(&mut expected, 50, "\\Answered", true);
    edit(&mut expected, 50, "Work", true);
    edit(&mut expected, 70, "\\Deleted", true);
    for (uid, letter, add) in RENAMES {
        let f = flags_of_letters(&letter.to_string());
        edit(&mut expected, uid, f.first().expect("one flag"), add);
    }
    for uid in EXPUNGED.iter().chain([&UNLINKED]) {
        expected.remove(uid);
    }
    for &uid in &new_uids {
        if uid != new_expunged {
            expected.insert(uid, Flags::new());
        }
    }
    edit(&mut expected, new_flagged, "\\Flagged", true);
    // Every UID whose flags or existence changed: a minimal resync reports no others.
    let touched: BTreeSet<u32> = [3, 5, 6, 10, 17, 20, 33, 40, 41, 42, 50, 70, 80, 81, 99]
        .into_iter()
        .chain(new_uids.iter().copied())
        .collect();

    match offline {
        Offline::Running => {}
        Offline::Restarted => server.restart(),
        Offline::IndexLost => {
            server.stop();
            let mut found = Vec::new();
            index_files(&maildir, &mut found);
            assert!(!found.is_empty(), "no nestbox.index under {maildir:?}");
            for f in &found {
                fs::remove_file(f).expect("remove nestbox.index");
            }
            server.restart();
        }
    }

    // 3. Resync, with and without known-uids, each from the same offline view.
    let with_known = resync(&server, &old, true);
    let without_known = resync(&server, &old, false);

    // 4. A fresh full sync is the truth, and the test's own account agrees with it.
    let full = full_sync(&server);
    let fresh = &full.msgs;
    assert_eq!(fresh, &expected, "the mailbox after the changes");
    for (name, r) in [
        ("known-uids", &with_known),
        ("no known-uids", &without_known),
    ] {
        assert_eq!(&r.view.msgs, fresh, "{name}: the resynced view");
        for &(a, b) in &r.vanished {
            assert!(
                !fresh.keys().any(|u| (a..=b).contains(u)),
                "{name}: VANISHED {a}:{b} names a UID still present"
            );
        }
        eprintln!(
            "{offline:?}, {name}: resync {} bytes (FETCHes in SELECT: {}, UID FETCH of new \
             mail: {}); full sync {} bytes (SELECT {}, longest FETCH line {}); first sync \
             with MODSEQ {first_sync_bytes} bytes",
            r.bytes,
            r.fetched_in_select.len(),
            r.fetched_new,
            full.bytes,
            full.preamble,
            full.longest_line,
        );
    }
    // Without known-uids the SELECT covers every UID below UIDNEXT, the new ones among them
    // (their modseqs are above the client's), so no UID FETCH is needed; with known-uids
    // only the client's UIDs are reported and the new ones are fetched after.
    assert!(
        !without_known.fetched_new,
        "new mail missing from the SELECT"
    );
    assert!(
        with_known.fetched_new,
        "new mail reported beyond known-uids"
    );

    // What a resync that reports `n` messages may cost: the SELECT answer a full sync pays
    // too, then per message at most the longest full-sync line plus ` MODSEQ (n)` (at most
    // 20 digits), and a fixed allowance for ENABLE's answer, the VANISHED (EARLIER) lines
    // (a few ranges here), and the tagged OK of the UID FETCH of new mail.
    const MODSEQ_ROOM: usize = " MODSEQ ()".len() + 20;
    const FIXED_ROOM: usize = 400;
    let bound = |n: usize| full.preamble + n * (full.longest_line + MODSEQ_ROOM) + FIXED_ROOM;
    let present_known: BTreeSet<u32> = old
        .msgs
        .keys()
        .copied()
        .filter(|u| fresh.contains_key(u))
        .collect();
    match offline {
        Offline::Running | Offline::Restarted => {
            // The modseqs survived (in memory, or in the index written at shutdown), so the
            // server reports exactly the messages that changed: the touched UIDs still there,
            // and without known-uids the new ones as well.
            let changed_known: BTreeSet<u32> =
                touched.intersection(&present_known).copied().collect();
            assert_eq!(with_known.fetched_in_select, changed_known);
            let changed_all: BTreeSet<u32> = touched
                .iter()
                .copied()
                .filter(|u| fresh.contains_key(u))
                .collect();
            assert_eq!(without_known.fetched_in_select, changed_all);
            // 22 of the 242 messages changed or are new, so the resync costs the SELECT
            // answer plus 22 lines, against the same SELECT answer plus 242 lines of a full
            // sync: about a fifth of it with the longer lines. A third is the headline bound,
            // well clear of a server that listed everything.
            for r in [&with_known, &without_known] {
                assert!(
                    r.bytes <= bound(changed_all.len()),
                    "{offline:?}: resync read {} bytes, more than {} for {} changes",
                    r.bytes,
                    bound(changed_all.len()),
                    changed_all.len()
                );
                assert!(
                    r.bytes * 3 < full.bytes,
                    "{offline:?}: resync read {} bytes, a full sync {}",
                    r.bytes,
                    full.bytes
                );
            }
        }
        Offline::IndexLost => {
            // Modseqs live only in nestbox.index. Without it the server gives every message a
            // new modseq above anything handed out before (the time in microseconds), as it
            // must: it cannot tell which messages changed while it was down, and a modseq at
            // or below the client's would hide a change. So every message the client knows
            // and still exists is reported: correct, but a full sync's worth of bytes: more
            // than the FLAGS-only full sync, and about the client's first sync, which listed
            // 240 messages with MODSEQ as this lists 242 (a tenth more leaves room for that,
            // ENABLE's answer and the VANISHED line).
            assert_eq!(with_known.fetched_in_select, present_known);
            let all: BTreeSet<u32> = fresh.keys().copied().collect();
            assert_eq!(without_known.fetched_in_select, all);
            for r in [&with_known, &without_known] {
                assert!(
                    r.bytes > full.bytes
                        && r.bytes <= bound(fresh.len())
                        && r.bytes * 10 <= first_sync_bytes * 11,
                    "{offline:?}: resync read {} bytes, a full sync {}, the first sync {}, \
                     bound {}",
                    r.bytes,
                    full.bytes,
                    first_sync_bytes,
                    bound(fresh.len())
                );
            }
        }
    }
    drop(seed);
}

#[test]
fn resync_with_the_server_kept_running() {
    scenario(Offline::Running);
}

#[test]
fn resync_after_a_restart() {
    scenario(Offline::Restarted);
}

#[test]
fn resync_after_the_index_was_lost() {
    if Kind::from_env() == Kind::Dovecot {
        return; // nestbox's index file.
    }
    scenario(Offline::IndexLost);
}
