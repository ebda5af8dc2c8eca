//! POP3 against real clients and beside IMAP (issue 17): Python's `poplib` over STLS and
//! implicit TLS (`tests/python/test_pop3.py`), `fetchmail` downloading 1,000 messages in keep
//! mode twice and then in delete mode, POP3 and IMAP sessions on one INBOX at once, the DELE
//! modes, UIDLs kept in `dovecot-uidlist`, and UIDL/STAT/LIST byte for byte against Dovecot's
//! pop3 on the same Maildir.
//!
//! Every test runs against the server `NESTBOX_TEST_SERVER` selects (nestbox by default;
//! `dovecot` validates the tests themselves), except those of nestbox-only config (DELE
//! modes), which say so and return under Dovecot, and the comparison, which starts both.
//! Every wait is bounded.

mod common;

use common::{ImapClient, Kind, Options, PASSWORD, Pop3Client, TestServer, USER};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `tests/fixtures/maildirs/NAME`.
fn fixture(name: &str) -> PathBuf {
    common::fixtures_dir().join("maildirs").join(name)
}

fn with_fixture(name: &str) -> Options {
    Options {
        seed_maildir: Some(fixture(name)),
        ..Options::default()
    }
}

/// Message files of a Maildir folder (cur/ and new/), by path.
fn message_files(folder: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["cur", "new"] {
        for e in fs::read_dir(folder.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().is_file() {
                out.insert(e.path(), fs::read(e.path()).expect("read message file"));
            }
        }
    }
    out
}

/// The Maildir info flags of a file name (`...:2,FS` -> "FS").
fn flags_of(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.rsplit_once(":2,")
        .map(|(_, f)| f.to_string())
        .unwrap_or_default()
}

fn nestbox_only(what: &str) -> bool {
    if Kind::from_env() == Kind::Dovecot {
        eprintln!("SKIPPED under Dovecot: {what} is nestbox configuration");
        return false;
    }
    true
}

// ---- Python poplib ----

#[test]
#[cfg_attr(
    nestbox_missing_python3,
    ignore = "python3 is not installed (the poplib client)"
)]
fn poplib_stls_and_implicit_tls() {
    if !common::require_tool("python3", "the poplib suite") {
        return;
    }
    let server = TestServer::start_with(with_fixture("pop3"));
    let dir = common::repo_root().join("tests").join("python");
    let out = run_bounded(
        Command::new("python3")
            .args(["-m", "unittest", "-v", "test_pop3"])
            .current_dir(&dir)
            .envs(server.client_env())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(120),
        &server.dir.join("python.out"),
    );
    eprintln!("{out}");
    assert!(
        out.contains("\nOK") && !out.contains("Ran 0 tests"),
        "poplib suite failed; server log:\n{}",
        server.log()
    );
}

/// Runs a command with stdout and stderr into `log`, killing it after `limit`. Returns the
/// output and panics if it had to be killed.
fn run_bounded(cmd: &mut Command, limit: Duration, log: &Path) -> String {
    let out = fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start client");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = fs::read_to_string(log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("killed after {limit:?}; output:\n{text}"));
    format!("exit: {status}\n{text}")
}

// ---- fetchmail ----

/// 1,000 messages straight in `new/` (no uidlist: the server numbers them), of sizes from
/// a few hundred bytes to ~100 KB; message 7 has lines starting with ".", message 13 has no
/// final line break. Returns the seed directory.
fn generate_maildrop(root: &Path, count: usize) -> PathBuf {
    let seed = root.join("seed");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(seed.join(sub)).expect("seed dirs");
    }
    for i in 1..=count {
        let mut m = format!(
            "Date: Mon, 06 Nov 2023 10:00:00 +0000\nFrom: Generator <gen@example.org>\n\
             To: Alice <alice@example.org>\nSubject: generated {i}\n\
             Message-ID: <gen-{i}@example.org>\n\n"
        );
        let lines = match i {
            500 => 1500,
            _ => i % 60 + 1,
        };
        for j in 0..lines {
            let width = (i * 7 + j * 13) % 70;
            m.push_str(&format!("line {j} of {i} {}\n", "x".repeat(width)));
        }
        if i == 7 {
            m.push_str(".starts with a dot\n..two dots\n.\nlast\n");
        }
        if i == 13 {
            m.push_str("no final line break");
        }
        let name = format!("{}.M{i}P1.generated", 1_700_000_000 + i);
        fs::write(seed.join("new").join(name), m).expect("write message");
    }
    seed
}

/// A message as compared after delivery: CRLF -> LF, and one final LF (fetchmail ends the
/// last line of a message that had none, as the POP3 framing does).
fn normalized(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// The Message-ID header value of a message.
fn message_id(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
        .unwrap_or_default()
}

struct Fetchmail {
    home: PathBuf,
    rc: PathBuf,
    out_dir: PathBuf,
    port: u16,
    ca: PathBuf,
}

impl Fetchmail {
    fn new(home: &Path, server: &TestServer) -> Fetchmail {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(home).expect("fetchmail home");
        let rc = home.join("fetchmailrc");
        fs::write(
            &rc,
            format!(
                "set no syslog\n\
                 poll 127.0.0.1 with service {port} protocol pop3 uidl timeout 30\n\
                 \tuser \"{USER}\" there with password \"{PASSWORD}\"\n",
                port = server.pop3_port
            ),
        )
        .expect("write fetchmailrc");
        // fetchmail refuses a run control file others can read.
        fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).expect("chmod rc");
        Fetchmail {
            home: home.to_path_buf(),
            rc,
            out_dir: home.join("delivered"),
            port: server.pop3_port,
            ca: server.ca_file.clone(),
        }
    }

    /// One fetchmail run delivering into `out_dir/<run>/`: returns (exit code, output,
    /// delivered files).
    fn run(&self, run: &str, extra: &[&str]) -> (i32, String, Vec<Vec<u8>>) {
        let dir = self.out_dir.join(run);
        fs::create_dir_all(&dir).expect("delivery dir");
        // One file per message: fetchmail starts the MDA once per message.
        let mda = format!("cat > \"$(mktemp {}/m.XXXXXXXX)\"", dir.display());
        let mut cmd = Command::new("fetchmail");
        cmd.env("HOME", &self.home)
            .env("FETCHMAILHOME", &self.home)
            .arg("--fetchmailrc")
            .arg(&self.rc)
            .arg("--idfile")
            .arg(self.home.join("fetchids"))
            .arg("--pidfile")
            .arg(self.home.join("fetchmail.pid"))
            .args([
                "--nodetach",
                "--nosyslog",
                "--timeout",
                "30",
                "--uidl",
                "-v",
            ])
            .args(["--norewrite", "--invisible", "--mda", &mda])
            // STLS with the test CA: the certificate is checked, TLS is required.
            .args(["--sslproto", "tls1.2+", "--sslcertck", "--sslcertfile"])
            .arg(&self.ca)
            .args(extra);
        let out = run_bounded(
            &mut cmd,
            Duration::from_secs(300),
            &self.home.join(format!("{run}.log")),
        );
        let code = out
            .lines()
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        let mut files: Vec<Vec<u8>> = fs::read_dir(&dir)
            .expect("read deliveries")
            .flatten()
            .map(|e| fs::read(e.path()).expect("read delivered"))
            .collect();
        files.sort();
        // What shows the run did what it should: TLS, the count, deletions, the end.
        let head: Vec<&str> = out
            .lines()
            .filter(|l| {
                ["STLS", "TLS", "messages", "DELE 1 ", "QUIT", "exit"]
                    .iter()
                    .any(|k| l.contains(k))
            })
            .take(20)
            .collect();
        eprintln!("fetchmail {run} (port {}):\n{}", self.port, head.join("\n"));
        (code, out, files)
    }
}

/// Each original message delivered exactly once, byte-equal after normalisation.
fn assert_delivered_all(originals: &BTreeMap<String, Vec<u8>>, got: &[Vec<u8>], what: &str) {
    assert_eq!(
        got.len(),
        originals.len(),
        "{what}: number of messages delivered"
    );
    let mut seen = BTreeMap::new();
    for m in got {
        let id = message_id(m);
        let orig = originals
            .get(&id)
            .unwrap_or_else(|| panic!("{what}: delivered a message with unknown id {id:?}"));
        assert!(
            normalized(m) == normalized(orig),
            "{what}: {id} differs:\n--- delivered ---\n{}\n--- original ---\n{}",
            String::from_utf8_lossy(&m[..m.len().min(600)]),
            String::from_utf8_lossy(&orig[..orig.len().min(600)])
        );
        assert!(seen.insert(id.clone(), ()).is_none(), "{what}: {id} twice");
    }
}

#[test]
#[cfg_attr(nestbox_missing_fetchmail, ignore = "fetchmail is not installed")]
fn fetchmail_keep_twice_then_delete() {
    if !common::require_tool("fetchmail", "the fetchmail download test") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let seed = generate_maildrop(work.path(), 1000);
    let originals: BTreeMap<String, Vec<u8>> = message_files(&seed)
        .into_values()
        .map(|b| (message_id(&b), b))
        .collect();
    assert_eq!(originals.len(), 1000);
    let server = TestServer::start_with(Options {
        seed_maildir: Some(seed),
        ..Options::default()
    });
    let fm = Fetchmail::new(&work.path().join("fetchmail"), &server);

    // Keep mode: everything once.
    let (code, out, got) = fm.run("keep1", &["--keep"]);
    assert_eq!(
        code,
        0,
        "first keep run:\n{out}\nserver log:\n{}",
        server.log()
    );
    assert_delivered_all(&originals, &got, "first keep run");
    assert_eq!(
        message_files(&server.maildir()).len(),
        1000,
        "keep mode deleted mail"
    );

    // Again: the UIDLs are the same, so nothing is new (exit 1: no mail).
    let (code, out, got) = fm.run("keep2", &["--keep"]);
    assert_eq!(got.len(), 0, "second keep run downloaded again:\n{out}");
    assert_eq!(code, 1, "second keep run:\n{out}");

    // Delete mode, all messages (seen or not): each downloaded once more and deleted.
    let (code, out, got) = fm.run("delete", &["--nokeep", "--all"]);
    assert_eq!(code, 0, "delete run:\n{out}\nserver log:\n{}", server.log());
    assert_delivered_all(&originals, &got, "delete run");
    let left = message_files(&server.maildir());
    assert!(
        left.is_empty(),
        "{} messages left after delete mode",
        left.len()
    );

    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    let select = imap.ok("SELECT INBOX");
    assert!(
        select.iter().any(|l| l == "* 0 EXISTS"),
        "IMAP disagrees: {select:?}"
    );
    imap.logout();
}

// ---- sizes, \Seen, the maildrop snapshot ----

#[test]
fn list_sizes_are_the_bytes_retr_sends() {
    let server = TestServer::start_with(with_fixture("pop3"));
    let files: Vec<Vec<u8>> = message_files(&server.maildir()).into_values().collect();
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    let list = pop.list();
    let (count, total) = pop.stat();
    assert_eq!(count, files.len());
    assert_eq!(total, list.iter().map(|(_, s)| s).sum::<u64>());
    let mut unmatched: Vec<&Vec<u8>> = files.iter().collect();
    for (n, size) in list {
        let got = pop.retr(n).expect("RETR");
        let i = unmatched
            .iter()
            .position(|f| common::retr_form(f) == got)
            .unwrap_or_else(|| {
                panic!(
                    "RETR {n} is no file's CRLF form:\n{}",
                    String::from_utf8_lossy(&got)
                )
            });
        let file = unmatched.remove(i);
        // The message in CRLF form; a CRLF RETR adds to end an unterminated last line is
        // framing, not message (as Dovecot counts it).
        assert_eq!(size, common::crlf(file).len() as u64, "LIST {n}");
        let status = pop.command(&format!("LIST {n}"));
        assert_eq!(status, format!("+OK {n} {size}"));
    }
    pop.quit();
}

#[test]
fn retr_sets_seen_and_top_does_not() {
    let server = TestServer::start_with(with_fixture("pop3"));
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    // Message 2 (UID 2) and 4 (UID 7) are unseen in the fixture.
    pop.retr(2).expect("RETR 2");
    pop.multi("TOP 4 3").expect("TOP 4 3");
    assert!(pop.quit().starts_with("+OK"));
    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    imap.ok("EXAMINE INBOX");
    let flags: BTreeMap<u32, Vec<String>> = imap.uids_and_flags().into_iter().collect();
    assert!(flags[&2].contains(&"\\Seen".to_string()), "{flags:?}");
    assert!(!flags[&7].contains(&"\\Seen".to_string()), "{flags:?}");
    imap.logout();
}

#[test]
fn maildrop_is_fixed_at_login() {
    let server = TestServer::start_with(with_fixture("pop3"));
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    assert_eq!(pop.stat().0, 5);
    // Delivered during the session (RFC 1939 §8: the maildrop is as it was at login).
    let tmp = server.maildir().join("tmp").join("1700009999.M9P9.late");
    fs::write(&tmp, "Subject: late\n\nlate\n").expect("write");
    let new = server.maildir().join("new").join("1700009999.M9P9.late");
    fs::rename(&tmp, &new).expect("deliver");
    common::give_to_mail_user(&new);
    assert_eq!(pop.stat(), (5, 1046));
    assert_eq!(pop.list().len(), 5);
    assert!(pop.command("RETR 6").starts_with("-ERR"));
    assert!(pop.quit().starts_with("+OK"));
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    assert_eq!(pop.stat().0, 6);
    pop.quit();
}

// ---- POP3 and IMAP on one INBOX ----

/// Reads IMAP lines until `want` EXPUNGE responses arrived or `limit` passed.
fn expunges_within(imap: &mut ImapClient, want: usize, limit: Duration) -> (Vec<String>, bool) {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        match imap.read_line() {
            Some(l) => {
                lines.push(l);
                if lines.iter().filter(|l| l.ends_with(" EXPUNGE")).count() >= want {
                    return (lines, true);
                }
            }
            None => break,
        }
    }
    (lines, false)
}

#[test]
fn imap_idle_sees_pop3_deletions_at_quit() {
    let server = TestServer::start_with(with_fixture("pop3"));
    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    imap.ok("SELECT INBOX");
    imap.send_raw(b"i1 IDLE\r\n");
    let cont = imap.read_line().expect("IDLE continuation");
    assert!(cont.starts_with('+'), "{cont}");

    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    let before = message_files(&server.maildir());
    pop.retr(1).expect("RETR 1");
    pop.retr(3).expect("RETR 3");
    pop.ok("DELE 1");
    pop.ok("DELE 3");
    // Nothing is deleted before QUIT (RFC 1939 §6).
    assert_eq!(message_files(&server.maildir()).len(), before.len());
    let quit_at = Instant::now();
    assert!(pop.quit().starts_with("+OK"));
    let (lines, ok) = expunges_within(&mut imap, 2, Duration::from_secs(10));
    assert!(
        ok,
        "IDLE saw {lines:?} in {:?}; server log:\n{}",
        quit_at.elapsed(),
        server.log()
    );
    imap.send_raw(b"DONE\r\n");
    assert_eq!(message_files(&server.maildir()).len(), before.len() - 2);
    let (_, status) = imap.command("NOOP");
    assert!(status.starts_with("OK"), "{status}");
    let uids: Vec<u32> = imap.uids_and_flags().into_iter().map(|(u, _)| u).collect();
    assert_eq!(uids, vec![2, 7, 9]);
    imap.logout();
}

#[test]
fn pop3_connection_dropped_before_quit_deletes_nothing() {
    let server = TestServer::start_with(with_fixture("pop3"));
    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    imap.ok("SELECT INBOX");
    let before: Vec<PathBuf> = message_files(&server.maildir()).into_keys().collect();

    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    pop.retr(1).expect("RETR 1");
    pop.ok("DELE 1");
    pop.ok("DELE 2");
    pop.drop_connection();

    // For two seconds, nothing may be expunged.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let untagged = imap.ok("NOOP");
        assert!(
            !untagged.iter().any(|l| l.ends_with(" EXPUNGE")),
            "a dropped POP3 session deleted: {untagged:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(message_files(&server.maildir()).len(), before.len());
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    assert_eq!(pop.stat(), (5, 1046));
    pop.quit();
    imap.logout();
}

#[test]
fn imap_expunge_while_pop3_lists_the_message() {
    let server = TestServer::start_with(with_fixture("pop3"));
    let files: Vec<Vec<u8>> = message_files(&server.maildir()).into_values().collect();
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    let list = pop.list();
    assert_eq!(list.len(), 5);
    let uidls = pop.uidl();

    // IMAP removes message 2 (UID 2) while the POP3 session still lists it.
    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    imap.ok("SELECT INBOX");
    imap.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)");
    let expunged = imap.ok("EXPUNGE");
    assert!(expunged.iter().any(|l| l == "* 2 EXPUNGE"), "{expunged:?}");
    imap.logout();

    match pop.retr(2) {
        Err(status) => {
            eprintln!("RETR of the message IMAP expunged: {status}");
            assert!(status.starts_with("-ERR"), "{status}")
        }
        Ok(body) => panic!(
            "RETR of an expunged message answered +OK with:\n{}",
            String::from_utf8_lossy(&body)
        ),
    }
    // The other messages are still theirs, under their old numbers.
    for n in [1, 3, 4, 5] {
        let got = pop.retr(n).expect("RETR of a message still there");
        assert!(
            files.iter().any(|f| common::retr_form(f) == got),
            "RETR {n} is not one of the messages"
        );
        assert_eq!(
            pop.command(&format!("UIDL {n}")),
            format!("+OK {n} {}", uidls[n as usize - 1].1)
        );
    }
    let status = pop.quit();
    assert!(
        status.starts_with("+OK") || status.starts_with("-ERR"),
        "{status}"
    );
    // Nothing else went: the four others are all there.
    assert_eq!(message_files(&server.maildir()).len(), 4);
}

// ---- DELE modes (nestbox config) ----

#[test]
fn dele_flag_only_sets_deleted() {
    if !nestbox_only("pop3.dele = \"flag\"") {
        return;
    }
    let server = TestServer::start_with(Options {
        pop3_extra: Some("dele = \"flag\"\n".into()),
        ..with_fixture("pop3")
    });
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    pop.ok("DELE 1");
    assert!(pop.quit().starts_with("+OK"));
    let files = message_files(&server.maildir());
    assert_eq!(files.len(), 5, "dele = flag removed a file");
    let trashed: Vec<&PathBuf> = files.keys().filter(|p| flags_of(p).contains('T')).collect();
    assert_eq!(trashed.len(), 1, "{files:?}");
    assert!(
        trashed[0].to_string_lossy().contains("1700000101.M1P300"),
        "{trashed:?}"
    );
    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    imap.ok("EXAMINE INBOX");
    let flags: BTreeMap<u32, Vec<String>> = imap.uids_and_flags().into_iter().collect();
    assert!(flags[&1].contains(&"\\Deleted".to_string()), "{flags:?}");
    imap.logout();
    // A new POP3 session still lists it: only the flag was set.
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    assert_eq!(pop.stat().0, 5);
    pop.quit();
}

#[test]
fn dele_move_puts_the_message_in_trash() {
    if !nestbox_only("pop3.dele = \"move\"") {
        return;
    }
    let server = TestServer::start_with(Options {
        pop3_extra: Some("dele = \"move\"\ndele_folder = \"Trash\"\n".into()),
        ..with_fixture("pop3")
    });
    let trash = server.maildir().join(".Trash");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(trash.join(sub)).expect("Trash");
    }
    fs::write(trash.join("maildirfolder"), "").expect("maildirfolder");
    common::give_to_mail_user(&trash);
    let original = message_files(&server.maildir())
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("1700000202.M2P300"))
        .map(|(_, b)| b)
        .expect("message 2");
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    pop.ok("DELE 2");
    assert!(pop.quit().starts_with("+OK"));
    let inbox = message_files(&server.maildir());
    assert_eq!(inbox.len(), 4);
    assert!(!inbox.values().any(|b| *b == original), "still in INBOX");
    let in_trash = message_files(&trash);
    assert_eq!(in_trash.len(), 1, "{in_trash:?}");
    assert!(in_trash.values().all(|b| *b == original));
    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    let select = imap.ok("EXAMINE Trash");
    assert!(select.iter().any(|l| l == "* 1 EXISTS"), "{select:?}");
    imap.logout();
}

// ---- UIDL compatibility ----

#[test]
fn uidl_kept_in_uidlist_is_served() {
    let server = TestServer::start_with(with_fixture("pop3-uidl"));
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    let uidl = pop.uidl();
    let want = [
        (1, "0000000100000001"),
        (2, "000000025f5e1000"),
        (3, "1600000003.M3P400.oldhost"),
        (4, "000000055f5e1000"),
    ];
    let want: Vec<(u32, String)> = want.iter().map(|(n, u)| (*n, u.to_string())).collect();
    assert_eq!(uidl, want);
    pop.quit();
    // Across a restart (and whatever index the server rebuilt) the same.
    let mut server = server;
    server.restart();
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    assert_eq!(pop.uidl(), want);
    pop.quit();
}

/// What a POP3 client sees of a maildrop without changing it.
#[derive(Debug, PartialEq)]
struct Listing {
    stat: String,
    list: Vec<(u32, u64)>,
    uidl: Vec<(u32, String)>,
}

/// STAT, LIST and UIDL of the default user on a server, read-only (QUIT without DELE).
fn listing(server: &TestServer) -> Listing {
    let mut pop = Pop3Client::login(server, USER, PASSWORD);
    let stat = pop.ok("STAT");
    let list = pop.list();
    let uidl = pop.uidl();
    pop.quit();
    Listing { stat, list, uidl }
}

#[test]
#[cfg_attr(
    nestbox_missing_dovecot_pop3,
    ignore = "Dovecot's pop3 (dovecot-pop3d) is not installed"
)]
fn uidl_stat_and_list_equal_dovecots() {
    if !common::require_tool("dovecot", "the reference server")
        || !common::require_tool("/usr/lib/dovecot/pop3", "Dovecot's POP3 (dovecot-pop3d)")
    {
        return;
    }
    for name in ["pop3", "pop3-uidl", "basic", "dovecot"] {
        let dovecot = TestServer::start_kind(Kind::Dovecot, with_fixture(name));
        let nestbox = TestServer::start_kind(Kind::Nestbox, with_fixture(name));
        let d = listing(&dovecot);
        let n = listing(&nestbox);
        assert_eq!(n.stat, d.stat, "{name}: STAT (nestbox, Dovecot)");
        assert_eq!(n.list, d.list, "{name}: LIST (nestbox, Dovecot)");
        assert_eq!(n.uidl, d.uidl, "{name}: UIDL (nestbox, Dovecot)");
    }
}

// ---- a maildrop that cannot be opened ----

/// A mode of 000 stops every user but root, and neither server reads mail as root.
#[test]
fn unreadable_maildrop_fails_pass_with_sys_temp() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_with(with_fixture("pop3"));
    let cur = server.maildir().join("cur");
    fs::set_permissions(&cur, fs::Permissions::from_mode(0o000)).expect("chmod cur");
    let mut pop = Pop3Client::connect(&server);
    pop.ok(&format!("USER {USER}"));
    let status = pop.command(&format!("PASS {PASSWORD}"));
    let later = if status.starts_with("+OK") {
        pop.command("STAT")
    } else {
        String::new()
    };
    fs::set_permissions(&cur, fs::Permissions::from_mode(0o700)).expect("chmod cur back");
    eprintln!("PASS with an unreadable cur/: {status}; then STAT: {later}");
    // RFC 3206 §4: a problem that is not the user's credentials and should go away is
    // [SYS/TEMP]. RFC 1939 §7 opens the maildrop at PASS ("-ERR unable to lock maildrop"),
    // which is where nestbox refuses; Dovecot says "+OK Logged in." and refuses the first
    // command that reads the maildrop.
    match server.kind {
        Kind::Nestbox => assert!(status.starts_with("-ERR [SYS/TEMP]"), "PASS: {status}"),
        Kind::Dovecot => assert!(later.starts_with("-ERR [SYS/TEMP]"), "STAT: {later}"),
    }
    // Readable again: the next session works.
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    assert_eq!(pop.stat(), (5, 1046));
    pop.quit();
}

// ---- per-user protocols (nestbox config) ----

/// A user may be limited to some protocols (issue 17: a passwd-file extra field); a refused
/// protocol answers as a wrong password does, so it tells a guesser nothing.
#[test]
fn passwd_file_protocols_field_limits_each_user() {
    if !nestbox_only("the nestbox_protocols passwd-file field") {
        return;
    }
    let server = TestServer::start_with(Options {
        passwd_extra: vec![
            (USER, "nestbox_protocols=pop3"),
            (common::USER2, "nestbox_protocols=imap"),
        ],
        ..Options::default()
    });
    // alice: POP3 only.
    let mut pop = Pop3Client::login(&server, USER, PASSWORD);
    assert_eq!(pop.stat(), (0, 0));
    pop.quit();
    let mut s = server.connect();
    let mut imap = Vec::new();
    {
        use std::io::{BufRead, BufReader, Write};
        s.write_all(format!("a LOGIN {USER} {PASSWORD}\r\nb LOGIN {USER} wrong\r\n").as_bytes())
            .expect("send");
        let mut r = BufReader::new(&mut s);
        while imap.len() < 3 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            imap.push(line.trim_end().to_string());
        }
    }
    // The greeting, then two answers that differ only in their tag.
    assert_eq!(imap.len(), 3, "{imap:?}");
    assert!(imap[1].starts_with("a NO "), "{imap:?}");
    assert_eq!(
        imap[1][2..],
        imap[2][2..],
        "a refused protocol must look like a bad password"
    );

    // bob: IMAP only.
    ImapClient::login(&server, common::USER2, common::PASSWORD2).logout();
    let mut pop = Pop3Client::connect(&server);
    pop.ok(&format!("USER {}", common::USER2));
    let refused = pop.command(&format!("PASS {}", common::PASSWORD2));
    pop.ok(&format!("USER {}", common::USER2));
    let wrong = pop.command("PASS wrong");
    assert!(refused.starts_with("-ERR [AUTH]"), "{refused}");
    assert_eq!(
        refused, wrong,
        "a refused protocol must look like a bad password"
    );
    pop.quit();
}
