//! `nestbox index check|rebuild` (issue 20, item 3) as an operator runs it: the built binary
//! against the server harness's configuration and a Maildir the server itself wrote (APPEND,
//! CREATE, STORE, FETCH over IMAP). The index is damaged the ways it can be (cut short, a
//! byte flipped, deleted, out of step with the files, a bad cache entry): `check` must exit 1
//! naming the problem, `rebuild` must fix it, the UIDs a client sees (UID FETCH before and
//! after) must not change, and `check` must then exit 0. A rebuild while the server has the
//! folder selected by a client must leave that client's session working with the same UIDs.
//!
//! As root (CI) the harness serves its passwd-file users as `nobody` (`mail.user`): the
//! command runs its helper as that user, and the rebuilt index must belong to it.
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ImapClient, PASSWORD, TestServer, USER};

const BIN: &str = env!("CARGO_BIN_EXE_nestbox");
/// How long one run of the binary may take.
const PATIENCE: Duration = Duration::from_secs(60);

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `nestbox index ARGS -c CONFIG` to its end within [`PATIENCE`].
fn index(server: &TestServer, args: &[&str]) -> Out {
    let f = common::run_to_end(
        Command::new(BIN)
            .arg("index")
            .args(args)
            .arg("-c")
            .arg(&server.config_file)
            .env_remove("NESTBOX_LOG")
            .env_remove("RUST_LOG"),
        PATIENCE,
    );
    Out {
        code: f.code,
        stdout: f.stdout,
        stderr: f.stderr,
    }
}

/// `check` or `rebuild` that must find everything consistent.
fn consistent(server: &TestServer, args: &[&str]) -> String {
    let out = index(server, args);
    assert_eq!(
        out.code,
        Some(0),
        "{args:?}\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("PROBLEMS"), "{}", out.stdout);
    // On a pipe: no progress bar, and no log lines but the harness's one warning (its
    // users have `{PLAIN}` passwords).
    let other: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.contains("{PLAIN} passwords"))
        .collect();
    assert!(other.is_empty(), "{args:?}: {}", out.stderr);
    out.stdout
}

/// `check` that must fail naming `problem` for INBOX.
fn check_finds(server: &TestServer, problem: &str) {
    let out = index(server, &["check", USER]);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let inbox: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("INBOX: PROBLEMS"))
        .take_while(|l| l.starts_with("INBOX") || l.starts_with("  "))
        .collect();
    assert!(
        inbox.iter().any(|l| l.contains(problem)),
        "{problem:?} not named for INBOX:\n{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("not every folder checked is consistent"),
        "{}",
        out.stderr
    );
}

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: message {n}\r\n\
         Message-ID: <{n}@example.org>\r\n\r\nBody {n}.\r\n"
    )
    .into_bytes()
}

/// INBOX with 5 messages (flags on some), `Archive/2024` with 2, the cache filled by a
/// FETCH of ENVELOPE and BODYSTRUCTURE; the client's view of INBOX.
fn fill(server: &TestServer) -> Vec<(u32, Vec<String>)> {
    let mut c = ImapClient::login(server, USER, PASSWORD);
    c.ok("CREATE Archive/2024");
    for n in 1..=5 {
        let r = c.append_one_write("INBOX", &message(n));
        assert!(r.starts_with("OK"), "{r}");
    }
    for n in 6..=7 {
        let r = c.append_one_write("Archive/2024", &message(n));
        assert!(r.starts_with("OK"), "{r}");
    }
    c.ok("SELECT INBOX");
    c.ok("UID STORE 2 +FLAGS (\\Flagged)");
    c.ok("UID STORE 4 +FLAGS (\\Seen \\Answered)");
    c.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE)");
    let view = c.uids_and_flags();
    assert_eq!(view.len(), 5);
    c.logout();
    view
}

fn inbox_view(server: &TestServer) -> Vec<(u32, Vec<String>)> {
    let mut c = ImapClient::login(server, USER, PASSWORD);
    c.ok("SELECT INBOX");
    let view = c.uids_and_flags();
    c.logout();
    view
}

/// The INBOX index's owner is the user the mail is served as (as root: `nobody`).
fn assert_owner(server: &TestServer) {
    if let Some((uid, _)) = common::mail_owner() {
        let m = fs::metadata(server.maildir().join("nestbox.index")).expect("index");
        assert_eq!(m.uid(), uid, "the index was not written as the mail's user");
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = fs::read(path).expect("read");
    let at = at.min(b.len() - 1);
    b[at] ^= 0x5a;
    fs::write(path, b).expect("write");
}

#[test]
fn damaged_indexes_are_found_and_rebuilt_without_changing_uids() {
    let mut server = TestServer::start();
    let before = fill(&server);
    // A stopped server has written every folder's index (the close writes it).
    server.stop();
    let out = consistent(&server, &["check", USER]);
    assert!(out.contains("INBOX: consistent (5 messages)"), "{out}");
    assert!(
        out.contains("Archive/2024: consistent (2 messages)"),
        "{out}"
    );
    let idx = server.maildir().join("nestbox.index");
    let cache = server.maildir().join("nestbox.cache");
    assert!(cache.exists(), "the FETCH filled the cache");

    // A bad cache entry (an entry cut short, then bytes that are none).
    let mut c = fs::OpenOptions::new()
        .append(true)
        .open(&cache)
        .expect("cache");
    std::io::Write::write_all(&mut c, b"\x01\x00\x00\x00garbage").expect("append");
    drop(c);
    check_finds(&server, "nestbox.cache");
    let out = consistent(&server, &["rebuild", USER]);
    assert!(
        out.contains("Archive/2024: consistent (2 messages, index rebuilt with 2)"),
        "{out}"
    );

    // Cut short, a byte flipped, deleted: each named, each rebuilt.
    type Damage = (&'static str, fn(&Path));
    let damages: [Damage; 3] = [
        ("nestbox.index: truncated", |p| {
            let b = fs::read(p).expect("read");
            fs::write(p, &b[..12]).expect("write");
        }),
        ("nestbox.index: bad checksum", |p| {
            let b = fs::read(p).expect("read");
            fs::write(p, &b[..b.len() - 3]).expect("write");
        }),
        ("nestbox.index: bad checksum", |p| flip_byte(p, 200)),
    ];
    for (problem, damage) in damages {
        damage(&idx);
        check_finds(&server, problem);
        let out = consistent(&server, &["rebuild", USER, "INBOX"]);
        assert!(
            out.contains("INBOX: consistent (5 messages, index rebuilt with 5)"),
            "{out}"
        );
        assert!(!out.contains("Archive"), "only INBOX was asked for: {out}");
        assert_owner(&server);
        consistent(&server, &["check", USER]);
    }

    // A deleted index is no fault (the next open builds it): a note, exit 0; a rebuild
    // makes it now.
    fs::remove_file(&idx).expect("rm");
    let out = consistent(&server, &["check", USER]);
    assert!(
        out.contains("INBOX: consistent (5 messages)\n  note: no nestbox.index yet"),
        "{out}"
    );
    let out = consistent(&server, &["rebuild", USER, "INBOX"]);
    assert!(!out.contains("note:"), "{out}");
    assert!(idx.exists());

    // A uidlist deleted from under an index: the UIDs it gave out have no record.
    let uidlist = server.maildir().join("dovecot-uidlist");
    let kept = fs::read(&uidlist).expect("uidlist");
    fs::remove_file(&uidlist).expect("rm uidlist");
    check_finds(&server, "no dovecot-uidlist beside nestbox.index");
    fs::write(&uidlist, kept).expect("put back");
    common::give_to_mail_user(&uidlist);
    consistent(&server, &["check", USER]);

    // The index out of step with the files: a flag changed by another program (the file
    // renamed), and a message removed by hand.
    let cur = server.maildir().join("cur");
    let mut names: Vec<String> = fs::read_dir(&cur)
        .expect("cur")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
    let renamed = names[0].replace(":2,", ":2,D");
    fs::rename(cur.join(&names[0]), cur.join(&renamed)).expect("rename");
    check_finds(&server, "flags or place differ");
    fs::rename(cur.join(&renamed), cur.join(&names[0])).expect("rename back");
    let aside = server.dir.join("aside");
    fs::rename(cur.join(&names[4]), &aside).expect("move out");
    check_finds(&server, "in the index but not on disk (1): UID ");
    fs::rename(&aside, cur.join(&names[4])).expect("move back");
    consistent(&server, &["check", USER]);

    // The UIDs (and flags) a client sees are the ones it saw before.
    server.restart();
    assert_eq!(inbox_view(&server), before);
    server.stop();
    consistent(&server, &["check", USER]);
}

#[test]
fn a_rebuild_beside_a_client_that_has_the_folder_selected() {
    let mut server = TestServer::start();
    let before = fill(&server);
    server.stop();
    server.restart();
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    c.ok("SELECT INBOX");
    assert_eq!(c.uids_and_flags(), before);

    flip_byte(&server.maildir().join("nestbox.index"), 100);
    check_finds(&server, "bad checksum");
    let out = consistent(&server, &["rebuild", USER]);
    assert!(out.contains("INBOX: consistent (5 messages"), "{out}");

    // The open session is unaffected: same UIDs, it changes flags and saves a message that
    // takes the next UID.
    assert_eq!(c.uids_and_flags(), before);
    c.ok("UID STORE 3 +FLAGS (\\Flagged)");
    let appended = c.append_one_write("INBOX", &message(8));
    assert!(
        appended.contains("APPENDUID") && appended.contains(" 6]"),
        "{appended}"
    );
    let after = c.uids_and_flags();
    assert_eq!(after.len(), 6);
    assert_eq!(
        after.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    c.logout();
    // The server's own index, written as it closes the folder, checks consistent too, and a
    // new session sees what the old one saw last.
    server.stop();
    consistent(&server, &["check", USER, "INBOX"]);
    server.restart();
    assert_eq!(inbox_view(&server), after);
}

#[test]
fn unknown_users_and_folders_are_usage_errors() {
    let mut server = TestServer::start();
    server.stop();
    for args in [
        &["check", "nobody-here"][..],
        &["rebuild", "nobody-here"],
        &["check", USER, "No/Such"],
    ] {
        let out = index(&server, args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.lines().any(|l| l.starts_with("nestbox: ")),
            "{}",
            out.stderr
        );
    }
    // A Maildir that nestbox never opened: no uidlist, no index. Rebuilding numbers it.
    let cur = server.maildir().join("new");
    fs::write(cur.join("1700000000.M1P1.test"), message(1)).expect("deliver");
    common::give_to_mail_user(&server.maildir());
    let out = consistent(&server, &["check", USER]);
    assert!(
        out.contains("INBOX: consistent (0 messages, 1 not numbered yet")
            && out.contains("note: no dovecot-uidlist yet")
            && out.contains("note: no nestbox.index yet"),
        "{out}"
    );
    consistent(&server, &["rebuild", USER]);
    let out = consistent(&server, &["check", USER]);
    assert!(out.contains("INBOX: consistent (1 messages)"), "{out}");
}

/// On a terminal (`script` gives the command one) the progress bar is drawn on standard
/// error; on a pipe (every other test here) nothing is.
#[test]
fn a_progress_bar_only_on_a_terminal() {
    if !common::require_tool("script", "util-linux's script gives the command a terminal") {
        return;
    }
    let mut server = TestServer::start();
    fill(&server);
    server.stop();
    let cmd = format!(
        "{BIN} index rebuild {USER} -c {}",
        server.config_file.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let bar = regex::Regex::new(r"INBOX: checking \[[=> ]+\] \d+/\d+").expect("re");
    assert!(bar.is_match(&text), "no progress bar in {text:?}");
    assert!(text.contains('\u{1b}'), "no terminal control in {text:?}");
}

/// Problems of the uidlist itself are named; a uidlist that does not read is never replaced
/// by a rebuild (the store would move it aside and number everything anew, with a new
/// UIDVALIDITY: the operator's decision, not the command's).
#[test]
fn uidlist_problems_are_named_and_a_broken_uidlist_is_left_alone() {
    let mut server = TestServer::start();
    fill(&server);
    server.stop();
    let uidlist = server.maildir().join("dovecot-uidlist");
    let good = fs::read_to_string(&uidlist).expect("uidlist");
    // One record again, under another name: a UID given twice.
    let second = good.lines().nth(2).expect("a second record");
    let uid = second.split(' ').next().expect("uid");
    let twice = format!("{good}{uid} :1700000099.M1P1.elsewhere\n");
    fs::write(&uidlist, &twice).expect("write");
    check_finds(&server, &format!("uidlist: UID given twice (1): {uid}"));
    fs::write(&uidlist, &good).expect("restore");
    consistent(&server, &["check", USER]);

    let broken = "this is not a uidlist\n1 :a\n";
    fs::write(&uidlist, broken).expect("write");
    check_finds(&server, "dovecot-uidlist does not read");
    let out = index(&server, &["rebuild", USER, "INBOX"]);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("not rebuilt"), "{}", out.stdout);
    assert_eq!(fs::read_to_string(&uidlist).expect("uidlist"), broken);
    assert!(
        server.maildir().join("nestbox.index").exists(),
        "the index of a folder not rebuilt is left as it was"
    );
    fs::write(&uidlist, &good).expect("restore");
    consistent(&server, &["check", USER]);
}
