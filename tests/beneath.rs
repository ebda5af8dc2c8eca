//! The store cannot leave the Maildir (issue 15 item 3), end to end against the real server.
//!
//! User A (`alice`) has shell access to her own Maildir and plants symlinks anywhere in it:
//! folder directories, `cur`/`new`/`tmp` of real folders and of INBOX, `dovecot-uidlist`,
//! `dovecot-keywords`, `nestbox.index`/`nestbox.cache`, `subscriptions`, `maildirsize` and
//! message files, pointing into user B's (`bob`'s) Maildir and into a root-only directory
//! (mode 0700; owned by root when the suite runs as root, as in CI). Through IMAP she then
//! tries every command that reads, writes, renames or deletes: SELECT, EXAMINE, STATUS,
//! FETCH, APPEND, STORE, EXPUNGE, COPY, MOVE, RENAME, DELETE, and mailbox names that try to
//! lead outside (`..`, absolute, leading `.`, over-long). Checked:
//! - nothing of B's or of the root-only files reaches her (their contents carry markers that
//!   must never appear in a response);
//! - B's Maildir and the root-only directory are exactly as before (every entry's name, type,
//!   size, mtime, content or link target), so nothing there was created, renamed, written or
//!   deleted;
//! - a folder whose directory or `cur`/`new`/`tmp` is a symlink answers `NO [CANNOT]` to
//!   SELECT/EXAMINE/STATUS/APPEND, and the server logs it once, not once per command;
//! - a symlink swapped in while a session has the folder selected changes nothing: the store
//!   works on the directories it opened (descriptors), notices the swap at its next sync and
//!   drops the folder.
//!
//! Nothing here needs root (the server follows symlinks as whichever user runs it, and B's
//! Maildir is as reachable to it as a root-only file is to root); run as root, the root-only
//! directory really is root's. Every path touched is inside the test server's temp dir.

mod common;

use common::{PASSWORD, TestServer, USER, USER2};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// In every file of B's; must never appear in anything the server sends A.
const BOB_MARK: &str = "BOB-PRIVATE-7f3a";
/// In every root-only file.
const ROOT_MARK: &str = "ROOT-ONLY-91c2";

/// The shared client, with a record of everything the server sent (for the marker checks)
/// and commands that answer `"CLOSED"` instead of panicking once the server has closed the
/// connection (a session whose selected folder is replaced gets `* BYE`).
struct Client {
    c: common::ImapClient,
    tag: u32,
    /// Everything the server sent, for the marker checks.
    seen: String,
    closed: bool,
}

impl Client {
    fn login(server: &TestServer, user: &str, password: &str) -> Client {
        Client {
            c: common::ImapClient::login(server, user, password),
            tag: 0,
            seen: String::new(),
            closed: false,
        }
    }

    /// One logical line (literals included), or `None` once the server has closed.
    fn line(&mut self) -> Option<String> {
        let Some(s) = self.c.read_line() else {
            self.closed = true;
            return None;
        };
        self.seen.push_str(&s);
        self.seen.push('\n');
        Some(s)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.c.send_raw(bytes);
    }

    /// (untagged lines, tagged status without the tag, or `"CLOSED"`).
    fn cmd(&mut self, c: &str) -> (Vec<String>, String) {
        if self.closed {
            return (Vec::new(), "CLOSED".into());
        }
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.send(format!("{tag} {c}\r\n").as_bytes());
        self.until_tagged(&tag)
    }

    fn until_tagged(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        loop {
            let Some(l) = self.line() else {
                return (untagged, "CLOSED".into());
            };
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                return (untagged, rest.to_string());
            }
            untagged.push(l);
        }
    }

    /// APPEND with a synchronising literal; the server may refuse before `+`.
    fn append(&mut self, mailbox: &str, msg: &str) -> String {
        if self.closed {
            return "CLOSED".into();
        }
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.send(format!("{tag} APPEND {mailbox} {{{}}}\r\n", msg.len()).as_bytes());
        let Some(first) = self.line() else {
            return "CLOSED".into();
        };
        if let Some(rest) = first.strip_prefix(&format!("{tag} ")) {
            return rest.to_string();
        }
        assert!(first.starts_with('+'), "APPEND {mailbox}: {first}");
        self.send(msg.as_bytes());
        self.send(b"\r\n");
        self.until_tagged(&tag).1
    }
}

/// Every entry under `root`, not following symlinks: kind, owner and mode, size, mtime, and
/// the content of files or the target of links.
type Snapshot = BTreeMap<PathBuf, (char, (u32, u32, u32), u64, i64, i64, Vec<u8>)>;

fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, p: &Path, out: &mut Snapshot) {
        let m = fs::symlink_metadata(p).expect("lstat");
        let rel = p.strip_prefix(root).expect("inside").to_path_buf();
        let t = m.file_type();
        let (kind, data) = if t.is_symlink() {
            (
                'l',
                fs::read_link(p)
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if t.is_dir() {
            ('d', Vec::new())
        } else {
            ('f', fs::read(p).expect("read"))
        };
        let owner = (m.uid(), m.gid(), m.mode());
        out.insert(rel, (kind, owner, m.len(), m.mtime(), m.mtime_nsec(), data));
        if t.is_dir() {
            for e in fs::read_dir(p).expect("read_dir").flatten() {
                walk(root, &e.path(), out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn message(subject: &str, mark: &str) -> String {
    format!(
        "From: someone@example.org\nSubject: {subject}\nMessage-ID: <{subject}@x>\n\n{mark} {subject}\n"
    )
}

fn mkdirs(p: &Path) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(p.join(sub)).expect("mkdir");
    }
}

/// B's Maildir (INBOX, a folder, uidlist, keywords, subscriptions, quota) and the root-only
/// directory (0700, with message-like files in `cur`/`new`/`tmp` and plain secrets).
struct Victims {
    bob: PathBuf,
    root_only: PathBuf,
}

impl Victims {
    fn make(server: &TestServer) -> Victims {
        let bob = server.dir.join("mail").join(USER2).join("Maildir");
        mkdirs(&bob);
        mkdirs(&bob.join(".Private"));
        fs::write(
            bob.join("cur/1000.bob1.host:2,S"),
            message("bob1", BOB_MARK),
        )
        .unwrap();
        fs::write(bob.join("new/1001.bob2.host"), message("bob2", BOB_MARK)).unwrap();
        fs::write(bob.join("tmp/1002.bob3.host"), message("bob3", BOB_MARK)).unwrap();
        fs::write(
            bob.join(".Private/cur/1003.bob4.host:2,"),
            message("bob4", BOB_MARK),
        )
        .unwrap();
        fs::write(
            bob.join("dovecot-uidlist"),
            format!("3 V1700000000 N3 G{BOB_MARK}\n1 :1000.bob1.host\n2 :1001.bob2.host\n"),
        )
        .unwrap();
        fs::write(bob.join("dovecot-keywords"), format!("0 {BOB_MARK}\n")).unwrap();
        fs::write(bob.join("subscriptions"), format!("V\t2\n\n{BOB_MARK}\n")).unwrap();
        fs::write(bob.join("maildirsize"), "0S\n0 0\n").unwrap();
        // B's mail belongs to the user the workers run as: the same uid as A's worker when
        // both are served as `mail.user`, so nothing but the store's own rule keeps A out.
        give_to_mail_user(&bob);
        let root_only = server.dir.join("root-only");
        mkdirs(&root_only);
        fs::create_dir_all(root_only.join("etc")).unwrap();
        fs::write(
            root_only.join("cur/2000.root1.host:2,"),
            message("root1", ROOT_MARK),
        )
        .unwrap();
        fs::write(
            root_only.join("new/2001.root2.host"),
            message("root2", ROOT_MARK),
        )
        .unwrap();
        fs::write(
            root_only.join("tmp/2002.root3.host"),
            message("root3", ROOT_MARK),
        )
        .unwrap();
        fs::write(
            root_only.join("etc/passwd"),
            format!("root:x:0:0:{ROOT_MARK}:/root:/bin/sh\n"),
        )
        .unwrap();
        fs::write(root_only.join("secret"), format!("{ROOT_MARK} secret\n")).unwrap();
        fs::write(root_only.join("secret2"), format!("{ROOT_MARK} secret2\n")).unwrap();
        // Root's own: 0700 directories, 0600 files (owned by root when the suite runs as
        // root, as in CI).
        for e in walk_paths(&root_only) {
            let mode = if e.is_dir() { 0o700 } else { 0o600 };
            fs::set_permissions(&e, fs::Permissions::from_mode(mode)).unwrap();
        }
        Victims { bob, root_only }
    }

    fn snapshots(&self) -> (Snapshot, Snapshot) {
        (snapshot(&self.bob), snapshot(&self.root_only))
    }
}

/// Gives what the test made in a Maildir to the user the server's workers serve mail as
/// (root runs the suite in CI; the harness serves mail as `nobody` then), as that user's
/// mail client would have made it: `lchown`, never following the planted symlinks (a
/// `chown -R` would hand B's and root's files over too).
fn give_to_mail_user(root: &Path) {
    let Some((uid, gid)) = common::mail_owner() else {
        return;
    };
    for p in walk_paths(root) {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).expect("lchown");
    }
}

fn walk_paths(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in fs::read_dir(p).unwrap().flatten() {
            out.extend(walk_paths(&e.path()));
        }
    }
    out
}

fn assert_unchanged(what: &str, before: &(Snapshot, Snapshot), v: &Victims) {
    let after = v.snapshots();
    assert_eq!(before.0, after.0, "{what}: B's Maildir changed");
    assert_eq!(before.1, after.1, "{what}: the root-only directory changed");
}

fn assert_nothing_leaked(what: &str, c: &Client, server: &TestServer) {
    for mark in [BOB_MARK, ROOT_MARK] {
        assert!(
            !c.seen.contains(mark),
            "{what}: the server sent A a file of B's or root's ({mark}):\n{}\n--- log:\n{}",
            c.seen,
            server.log()
        );
    }
}

/// Runs every command on `mb` (and into and out of it); returns the tagged answers by command.
fn exercise(c: &mut Client, mb: &str) -> BTreeMap<&'static str, String> {
    let mut r = BTreeMap::new();
    r.insert("SELECT", c.cmd(&format!("SELECT {mb}")).1);
    c.cmd("FETCH 1:* (FLAGS BODY[] RFC822.SIZE INTERNALDATE)");
    c.cmd("UID FETCH 1:* (BODY.PEEK[HEADER] ENVELOPE BODYSTRUCTURE)");
    c.cmd("STORE 1:* +FLAGS (\\Seen \\Deleted $Junk)");
    c.cmd("SEARCH TEXT x");
    c.cmd("EXPUNGE");
    c.cmd("CLOSE");
    r.insert("EXAMINE", c.cmd(&format!("EXAMINE {mb}")).1);
    c.cmd("FETCH 1:* BODY.PEEK[]");
    c.cmd("UNSELECT");
    r.insert(
        "STATUS",
        c.cmd(&format!(
            "STATUS {mb} (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE)"
        ))
        .1,
    );
    r.insert("APPEND", c.append(mb, &message("alice-append", "alice")));
    // INBOX of A holds a message of hers to copy and move.
    c.append("INBOX", &message("alice-copy", "alice"));
    c.cmd("SELECT INBOX");
    r.insert("COPY", c.cmd(&format!("UID COPY 1:* {mb}")).1);
    r.insert("MOVE", c.cmd(&format!("MOVE 1 {mb}")).1);
    c.cmd("UNSELECT");
    // Out of it, into a folder of A's.
    c.cmd(&format!("SELECT {mb}"));
    c.cmd("COPY 1:* Safe");
    c.cmd("MOVE 1:* Safe");
    c.cmd("UNSELECT");
    r.insert("RENAME", c.cmd(&format!("RENAME {mb} {mb}-renamed")).1);
    c.cmd(&format!("RENAME {mb}-renamed {mb}"));
    c.cmd("LIST \"\" *");
    c.cmd("LSUB \"\" *");
    c.cmd(&format!("SUBSCRIBE {mb}"));
    r
}

/// The answers and log lines checked are nestbox's (and Dovecot, like most servers, follows
/// symlinks inside a Maildir: that is what this suite exists to rule out).
fn skip_on_dovecot() -> bool {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's confinement to the Maildir");
        return true;
    }
    false
}

fn is_cannot(st: &str) -> bool {
    st.starts_with("NO [CANNOT]")
}

#[test]
fn no_symlink_or_name_leads_out_of_the_maildir() {
    if skip_on_dovecot() {
        return;
    }
    let server = TestServer::start();
    let v = Victims::make(&server);
    let a = server.maildir();
    let before = v.snapshots();
    let mut c = Client::login(&server, USER, PASSWORD);
    c.cmd("CREATE Safe");

    // Folder directories that are symlinks, and real folders whose cur/new/tmp is one.
    let mut refused: Vec<(&str, PathBuf)> = vec![
        ("LinkBob", v.bob.clone()),
        ("LinkBobPrivate", v.bob.join(".Private")),
        ("LinkRoot", v.root_only.clone()),
    ];
    for (mb, target) in &refused {
        symlink(target, a.join(format!(".{mb}"))).unwrap();
    }
    let subs: Vec<(&str, &str, PathBuf)> = vec![
        ("CurBob", "cur", v.bob.join("cur")),
        ("NewBob", "new", v.bob.join("new")),
        ("TmpBob", "tmp", v.bob.join("tmp")),
        ("CurRoot", "cur", v.root_only.join("cur")),
        ("NewRoot", "new", v.root_only.join("new")),
        ("TmpRoot", "tmp", v.root_only.join("tmp")),
        ("NewEtc", "new", v.root_only.join("etc")),
    ];
    for (mb, sub, target) in &subs {
        let d = a.join(format!(".{mb}"));
        mkdirs(&d);
        fs::remove_dir(d.join(sub)).unwrap();
        symlink(target, d.join(sub)).unwrap();
        refused.push((mb, target.clone()));
    }
    // A folder's own files as symlinks.
    let files: Vec<(&str, &str, PathBuf)> = vec![
        (
            "UidlistBob",
            "dovecot-uidlist",
            v.bob.join("dovecot-uidlist"),
        ),
        (
            "KeywordsRoot",
            "dovecot-keywords",
            v.root_only.join("secret"),
        ),
        (
            "KeywordsBob",
            "dovecot-keywords",
            v.bob.join("dovecot-keywords"),
        ),
    ];
    for (mb, file, target) in &files {
        let d = a.join(format!(".{mb}"));
        mkdirs(&d);
        symlink(target, d.join(file)).unwrap();
        refused.push((mb, target.clone()));
    }
    // Harmless ones: an index and cache that are symlinks are not read (and get replaced by
    // files of A's own), message files that are symlinks are not messages.
    let idx = a.join(".IndexRoot");
    mkdirs(&idx);
    symlink(v.root_only.join("secret"), idx.join("nestbox.index")).unwrap();
    symlink(v.root_only.join("secret2"), idx.join("nestbox.cache")).unwrap();
    let msgs = a.join(".MsgLinks");
    mkdirs(&msgs);
    symlink(
        v.bob.join("cur/1000.bob1.host:2,S"),
        msgs.join("cur/1000.bob1.host:2,S"),
    )
    .unwrap();
    symlink(
        v.root_only.join("new/2001.root2.host"),
        msgs.join("new/2001.root2.host"),
    )
    .unwrap();
    symlink(
        v.root_only.join("secret"),
        msgs.join("cur/3000.sec.host:2,"),
    )
    .unwrap();

    give_to_mail_user(&a);
    // Answers checked after everything else (a wrong answer is a lesser fault than a leak).
    let mut not_cannot = Vec::new();
    for (mb, _) in &refused {
        let r = exercise(&mut c, mb);
        assert_nothing_leaked(mb, &c, &server);
        assert_unchanged(mb, &before, &v);
        for cmd in ["SELECT", "EXAMINE", "STATUS", "APPEND", "COPY", "MOVE"] {
            if !is_cannot(&r[cmd]) {
                not_cannot.push(format!("{cmd} {mb}: {}", r[cmd]));
            }
        }
    }
    for mb in ["IndexRoot", "MsgLinks"] {
        let r = exercise(&mut c, mb);
        assert!(
            r["SELECT"].starts_with("OK"),
            "SELECT {mb}: {}",
            r["SELECT"]
        );
        assert_nothing_leaked(mb, &c, &server);
        assert_unchanged(mb, &before, &v);
    }
    // The symlinked messages are not messages: only A's own appends and copies are there.
    let (lines, st) = c.cmd("EXAMINE MsgLinks");
    assert!(st.starts_with("OK"), "{st}");
    let exists = lines
        .iter()
        .find(|l| l.ends_with(" EXISTS"))
        .cloned()
        .unwrap_or_default();
    let (fetched, _) = c.cmd("FETCH 1:* BODY.PEEK[]");
    assert!(
        fetched
            .iter()
            .all(|l| !l.contains(BOB_MARK) && !l.contains(ROOT_MARK)),
        "{exists}"
    );
    c.cmd("UNSELECT");

    // LIST: a folder directory that is a symlink is not a folder; a real one is listed even
    // when its cur/new/tmp is a symlink (see the store's module doc).
    let (list, _) = c.cmd("LIST \"\" *");
    let listed = |mb: &str| {
        list.iter()
            .any(|l| l.ends_with(&format!(" {mb}")) || l.ends_with(&format!(" \"{mb}\"")))
    };
    for mb in ["LinkBob", "LinkBobPrivate", "LinkRoot"] {
        assert!(!listed(mb), "{mb} listed: {list:?}");
    }
    for mb in ["CurBob", "NewEtc", "UidlistBob", "Safe"] {
        assert!(listed(mb), "{mb} not listed: {list:?}");
    }

    // Names that try to lead outside.
    let long = "x".repeat(300);
    let names = [
        "../mail".to_string(),
        "\"../../root-only\"".to_string(),
        "/etc".to_string(),
        "\"/tmp/x\"".to_string(),
        ".hidden".to_string(),
        "\"A/../..\"".to_string(),
        "\"..\"".to_string(),
        "\".\"".to_string(),
        "INBOX/..".to_string(),
        format!("\"{}\"", v.bob.display()),
        long.clone(),
        format!("{}/{}", "y".repeat(200), "z".repeat(200)),
    ];
    for n in &names {
        for cmd in [
            format!("SELECT {n}"),
            format!("STATUS {n} (MESSAGES)"),
            format!("CREATE {n}"),
            format!("DELETE {n}"),
            format!("RENAME Safe {n}"),
        ] {
            let (_, st) = c.cmd(&cmd);
            assert!(st.starts_with("NO") || st.starts_with("BAD"), "{cmd}: {st}");
            assert!(!st.contains("SERVERBUG"), "{cmd}: {st}");
        }
        let st = c.append(n, &message("alice-name", "alice"));
        assert!(
            st.starts_with("NO") || st.starts_with("BAD"),
            "APPEND {n}: {st}"
        );
    }
    let (_, st) = c.cmd(&format!("CREATE {long}"));
    assert!(st.starts_with("NO [CANNOT]"), "CREATE over-long: {st}");
    assert_nothing_leaked("names", &c, &server);
    assert_unchanged("names", &before, &v);

    // Files at the root of A's Maildir: subscriptions and maildirsize.
    let _ = fs::remove_file(a.join("subscriptions"));
    symlink(v.root_only.join("secret"), a.join("subscriptions")).unwrap();
    let _ = fs::remove_file(a.join("maildirsize"));
    symlink(v.bob.join("maildirsize"), a.join("maildirsize")).unwrap();
    give_to_mail_user(&a);
    c.cmd("LSUB \"\" *");
    c.cmd("LIST (SUBSCRIBED) \"\" *");
    c.cmd("SUBSCRIBE Safe");
    c.cmd("UNSUBSCRIBE Safe");
    let st = c.append("Safe", &message("alice-quota", "alice"));
    assert!(!st.starts_with("OK") || fs::read(v.bob.join("maildirsize")).unwrap() == b"0S\n0 0\n");
    c.cmd("SELECT Safe");
    c.cmd("STORE 1:* +FLAGS (\\Deleted)");
    c.cmd("EXPUNGE");
    c.cmd("UNSELECT");
    assert_nothing_leaked("root files", &c, &server);
    assert_unchanged("root files", &before, &v);
    fs::remove_file(a.join("subscriptions")).unwrap();
    fs::remove_file(a.join("maildirsize")).unwrap();

    // INBOX's own cur/new/tmp, one at a time (each from a fresh login).
    c.cmd("LOGOUT");
    for (sub, target) in [
        ("new", v.root_only.join("etc")),
        ("cur", v.bob.join("cur")),
        ("tmp", v.bob.join("tmp")),
        ("new", v.bob.join("new")),
    ] {
        let real = a.join(format!("{sub}.real"));
        fs::rename(a.join(sub), &real).unwrap();
        symlink(&target, a.join(sub)).unwrap();
        give_to_mail_user(&a);
        let mut c = Client::login(&server, USER, PASSWORD);
        let r = exercise(&mut c, "INBOX");
        c.cmd("LOGOUT");
        assert_nothing_leaked(&format!("INBOX {sub}"), &c, &server);
        assert_unchanged(&format!("INBOX {sub}"), &before, &v);
        for cmd in ["SELECT", "EXAMINE", "STATUS", "APPEND"] {
            if !is_cannot(&r[cmd]) {
                not_cannot.push(format!(
                    "{cmd} INBOX with {sub} -> {}: {}",
                    target.display(),
                    r[cmd]
                ));
            }
        }
        fs::remove_file(a.join(sub)).unwrap();
        fs::rename(&real, a.join(sub)).unwrap();
    }

    // DELETE of every planted folder removes links, never what they point to.
    let mut c = Client::login(&server, USER, PASSWORD);
    for (mb, _) in &refused {
        c.cmd(&format!("DELETE {mb}"));
    }
    c.cmd("DELETE IndexRoot");
    c.cmd("DELETE MsgLinks");
    c.cmd("LOGOUT");
    assert_nothing_leaked("DELETE", &c, &server);
    assert_unchanged("DELETE", &before, &v);

    assert!(
        not_cannot.is_empty(),
        "not NO [CANNOT]:\n{}",
        not_cannot.join("\n")
    );

    // One log line per refused folder, however many commands it refused.
    let log = server.log();
    for mb in ["CurBob", "NewEtc", "LinkRoot"] {
        let n = log
            .lines()
            .filter(|l| l.contains("folder not served") && l.contains(&format!(".{mb}")))
            .count();
        assert_eq!(n, 1, "log lines for {mb}:\n{log}");
    }
}

/// A symlink swapped in for `cur` and `new` while a session has the folder selected: the
/// store keeps working on the directories it opened (it holds their descriptors, and every
/// message is opened, renamed or unlinked by name relative to them), its next sync sees that
/// the names no longer lead to them and drops the folder (the session gets `* BYE`), and
/// reopening it is refused.
#[test]
fn a_symlink_swapped_in_after_select_does_not_lead_outside() {
    if skip_on_dovecot() {
        return;
    }
    let server = TestServer::start();
    let v = Victims::make(&server);
    let a = server.maildir();
    let before = v.snapshots();
    let mut c = Client::login(&server, USER, PASSWORD);
    c.cmd("CREATE Swap");
    for i in 0..3 {
        assert!(
            c.append("Swap", &message(&format!("alice{i}"), "alice"))
                .starts_with("OK")
        );
    }
    let (_, st) = c.cmd("SELECT Swap");
    assert!(st.starts_with("OK"), "{st}");
    let (f, _) = c.cmd("FETCH 1:* BODY.PEEK[]");
    assert!(f.iter().any(|l| l.contains("alice0")));

    let d = a.join(".Swap");
    fs::rename(d.join("cur"), d.join("cur.old")).unwrap();
    symlink(v.bob.join("cur"), d.join("cur")).unwrap();
    fs::rename(d.join("new"), d.join("new.old")).unwrap();
    symlink(v.root_only.join("new"), d.join("new")).unwrap();
    fs::rename(d.join("tmp"), d.join("tmp.old")).unwrap();
    symlink(v.bob.join("tmp"), d.join("tmp")).unwrap();
    give_to_mail_user(&a);

    // A second session appends and selects meanwhile.
    let mut c2 = Client::login(&server, USER, PASSWORD);
    c2.append("Swap", &message("alice-late", "alice"));
    let (_, st2) = c2.cmd("SELECT Swap");
    c2.cmd("FETCH 1:* BODY[]");
    c2.cmd("STATUS Swap (MESSAGES UIDNEXT)");

    for cmd in [
        "FETCH 1:* (FLAGS BODY[])",
        "UID FETCH 1:* BODY.PEEK[TEXT]",
        "STORE 1:* +FLAGS (\\Seen)",
        "STORE 2 +FLAGS (\\Deleted)",
        "EXPUNGE",
        "NOOP",
        "FETCH 1:* BODY[]",
        "COPY 1:* INBOX",
    ] {
        c.cmd(cmd);
    }
    c.append("Swap", &message("alice-later", "alice"));
    let (_, reopen) = Client::login(&server, USER, PASSWORD).cmd("SELECT Swap");

    assert_nothing_leaked("swapped, first session", &c, &server);
    assert_nothing_leaked("swapped, second session", &c2, &server);
    assert_unchanged("swapped", &before, &v);
    assert!(!st2.starts_with("OK"), "SELECT after the swap: {st2}");
    assert!(is_cannot(&reopen), "SELECT after the swap: {reopen}");
    // A's own messages stayed in A's (renamed-away) directories.
    let kept = fs::read_dir(d.join("cur.old")).unwrap().count()
        + fs::read_dir(d.join("new.old")).unwrap().count();
    assert!(kept >= 2, "{kept} of A's messages left in cur.old/new.old");
}
