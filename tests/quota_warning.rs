//! The quota warning (issue 19): when a user's mailbox first crosses 90 % (or 100 %) of its
//! quota, one message is delivered into their INBOX; not again while it stays above, again
//! after it fell below and crossed once more. Driven by the user's own APPEND and by a real
//! Postfix delivering while their client IDLEs (a delivery by a program that writes no
//! `maildirsize` line, counted as soon as the server sees it). Also SETQUOTA when the operator
//! allows it (`mail.quota_set`).
mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::postfix::{Postfix, smtp_send};
use common::{ImapClient, Options, TestServer};

/// A message of about `size` bytes (LF lines, no line starting with a dot).
fn message(subject: &str, size: usize) -> String {
    let mut m = format!(
        "From: Sender <sender@example.org>\nTo: alice@test.local\nSubject: {subject}\n\
         Message-ID: <{subject}.{}@test>\n\n",
        std::process::id()
    );
    while m.len() < size {
        m.push_str(&"x".repeat(75));
        m.push('\n');
    }
    m
}

/// The subjects of every message in INBOX that says it is a quota warning, from its
/// headers (fetched without setting \Seen).
fn warnings(c: &mut ImapClient) -> Vec<String> {
    let lines = c.ok("EXAMINE INBOX");
    let exists = lines
        .iter()
        .find_map(|l| {
            l.strip_suffix(" EXISTS")?
                .strip_prefix("* ")?
                .parse::<u32>()
                .ok()
        })
        .expect("EXISTS");
    if exists == 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    let fetched = c.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT AUTO-SUBMITTED FROM)])");
    let text = fetched.join("\n");
    for chunk in text.split("* ").skip(1) {
        if chunk.contains("Auto-Submitted: auto-generated") {
            let subject = chunk
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default();
            assert!(chunk.contains("From: postmaster@"), "{chunk}");
            found.push(subject.to_string());
        }
    }
    found
}

/// Bytes and count per `maildirsize`, and counted from the folders' files as Maildir++ does
/// (`,S=` or the file's length).
fn maildirsize_vs_files(maildir: &Path) -> ((i64, i64), (i64, i64)) {
    let text = fs::read_to_string(maildir.join("maildirsize")).expect("maildirsize");
    let mut noted = (0, 0);
    for line in text.lines().skip(1) {
        let mut it = line.split_whitespace();
        if let (Some(b), Some(c)) = (it.next(), it.next()) {
            noted.0 += b.parse::<i64>().expect("bytes");
            noted.1 += c.parse::<i64>().expect("count");
        }
    }
    let mut real = (0, 0);
    for sub in ["cur", "new"] {
        for e in fs::read_dir(maildir.join(sub)).expect("read_dir") {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let size = name
                .split(':')
                .next()
                .and_then(|b| b.split(',').find_map(|f| f.strip_prefix("S=")))
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or_else(|| e.metadata().expect("stat").len() as i64);
            real.0 += size;
            real.1 += 1;
        }
    }
    (noted, real)
}

fn append(c: &mut ImapClient, msg: &str) -> String {
    let msg = msg.replace('\n', "\r\n");
    let (_, tagged) = c.command(&format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()));
    tagged
}

#[test]
fn an_append_past_90_percent_warns_once_per_crossing() {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's own warning");
        return;
    }
    let server = TestServer::start_with(Options {
        mail_extra: Some("quota = \"100k\"\n".into()),
        ..Options::default()
    });
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    let big = message("big", 93 * 1024);
    assert!(append(&mut c, &big).contains("OK"));
    let w = warnings(&mut c);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("Your mailbox is 9") && w[0].ends_with("% full"),
        "{w:?}"
    );
    // Still above 90 %: no second warning.
    assert!(append(&mut c, &message("small", 300)).contains("OK"));
    assert_eq!(warnings(&mut c).len(), 1);
    // Below again (the big one expunged), then over once more: a second warning.
    c.ok("SELECT INBOX");
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    c.ok("EXPUNGE");
    assert!(append(&mut c, &big).contains("OK"));
    assert_eq!(warnings(&mut c).len(), 2);
    // The second warning was seen arriving (by EXAMINE) like any delivery: the answer counts
    // it, and so does maildirsize once asked (or a moment later, by the background recount).
    let q = c.ok("GETQUOTAROOT INBOX");
    assert!(
        q.iter()
            .any(|l| l.starts_with("* QUOTA \"User quota\" (STORAGE 9")),
        "{q:?}"
    );
    let (noted, real) = maildirsize_vs_files(&server.maildir());
    assert_eq!(noted, real, "maildirsize against the files");
}

#[test]
fn setquota_only_when_the_operator_allows_it() {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's own configuration");
        return;
    }
    // Not allowed (the default): refused, and not advertised.
    let server = TestServer::start_with(Options {
        mail_extra: Some("quota = \"1M\"\n".into()),
        ..Options::default()
    });
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    let caps = c.ok("CAPABILITY").join(" ");
    assert!(!caps.contains("QUOTASET"), "{caps}");
    let (_, tagged) = c.command("SETQUOTA \"User quota\" (STORAGE 10)");
    assert!(tagged.contains("NO [NOPERM]"), "{tagged}");
    drop(c);
    drop(server);

    let server = TestServer::start_with(Options {
        mail_extra: Some("quota = \"1M\"\nquota_set = true\n".into()),
        ..Options::default()
    });
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    let caps = c.ok("CAPABILITY").join(" ");
    assert!(caps.contains("QUOTASET"), "{caps}");
    let lines = c.ok("SETQUOTA \"User quota\" (STORAGE 2048 MESSAGE 50)");
    assert!(
        lines.contains(&"* QUOTA \"User quota\" (STORAGE 0 2048 MESSAGE 0 50)".to_string()),
        "{lines:?}"
    );
    for (cmd, want) in [
        ("SETQUOTA \"Other\" (STORAGE 1)", "NO [NONEXISTENT]"),
        ("SETQUOTA \"User quota\" (FLUX 1)", "NO "),
        ("SETQUOTA \"User quota\" (STORAGE 0)", "NO "),
        ("SETQUOTA \"User quota\" (STORAGE 1 STORAGE 2)", "BAD "),
    ] {
        let (_, tagged) = c.command(cmd);
        assert!(tagged.contains(want), "{cmd}: {tagged}");
    }
    let text = fs::read_to_string(server.maildir().join("maildirsize")).expect("maildirsize");
    assert!(text.starts_with("2097152S,50C\n"), "{text}");
    // The user's choice outlives a new login (the configured 1M is for Maildirs without one).
    c.logout();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    let q = c.ok("GETQUOTA \"User quota\"");
    assert!(
        q.contains(&"* QUOTA \"User quota\" (STORAGE 0 2048 MESSAGE 0 50)".to_string()),
        "{q:?}"
    );
    // No limits at all: the root stays (SETQUOTA needs one), with nothing in it.
    let lines = c.ok("SETQUOTA \"User quota\" ()");
    assert!(
        lines.contains(&"* QUOTA \"User quota\" ()".to_string()),
        "{lines:?}"
    );
    let (_, tagged) = c.command(&format!(
        "APPEND INBOX {{{}+}}\r\n{}",
        3 << 20,
        "x".repeat(3 << 20)
    ));
    assert!(tagged.contains("OK"), "no limit left: {tagged}");
}

#[test]
#[cfg_attr(nestbox_missing_postfix, ignore = "postfix is not installed")]
#[cfg_attr(
    all(not(nestbox_missing_postfix), nestbox_not_root),
    ignore = "starting a Postfix instance needs root"
)]
fn a_postfix_delivery_past_90_percent_warns_an_idle_client() {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's own warning");
        return;
    }
    if !common::require_tool("postfix", "real MTA delivery for the quota warning") {
        return;
    }
    if !common::require_root("starting a Postfix instance") {
        return;
    }
    let server = TestServer::start_with(Options {
        mail_extra: Some("quota = \"100k\"\n".into()),
        ..Options::default()
    });
    // virtual(8) runs as nobody and must reach the Maildir through the server's temp dir.
    common::postfix::open_to_virtual(&server.dir);
    let postfix = Postfix::start(&server.maildir());
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    c.send_raw(b"i IDLE\r\n");
    let cont = c.read_line().expect("IDLE continuation");
    assert!(cont.starts_with('+'), "{cont}");
    // Postfix's local delivery writes no maildirsize line: 95 KiB of 100 only the server counts.
    smtp_send(
        postfix.smtp_port,
        "alice@test.local",
        &message("big", 95 * 1024),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "* 2 EXISTS") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no delivery and warning pushed: {seen:?}\nPostfix log:\n{}\nserver log:\n{}",
            postfix.log(),
            server.log()
        );
        if let Some(l) = c.read_line_within(left.min(Duration::from_secs(1))) {
            seen.push(l);
        }
    }
    // A second, small delivery: still above 90 %, so no second warning.
    smtp_send(
        postfix.smtp_port,
        "alice@test.local",
        &message("small", 500),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l| l == "* 3 EXISTS") {
        assert!(
            Instant::now() < deadline,
            "second delivery not pushed: {seen:?}"
        );
        if let Some(l) = c.read_line_within(Duration::from_secs(1)) {
            seen.push(l);
        }
    }
    // Time enough for a wrongly repeated warning to show.
    let quiet_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < quiet_until {
        if let Some(l) = c.read_line_within(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    assert!(!seen.iter().any(|l| l == "* 4 EXISTS"), "{seen:?}");
    c.send_raw(b"DONE\r\n");
    loop {
        let l = c.read_line().expect("IDLE end");
        if l.starts_with("i ") {
            assert!(l.starts_with("i OK"), "{l}");
            break;
        }
    }
    let w = warnings(&mut c);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("Your mailbox is 9"), "{w:?}");
    let q = c.ok("GETQUOTAROOT INBOX");
    // 95 KiB and the small one and the warning: the server counted Postfix's deliveries.
    assert!(
        q.iter()
            .any(|l| l.starts_with("* QUOTA \"User quota\" (STORAGE 9")),
        "{q:?}"
    );
    let (noted, real) = maildirsize_vs_files(&server.maildir());
    assert_eq!(noted, real, "maildirsize against the files");
    assert!(
        postfix.log().contains("status=sent (delivered to maildir)"),
        "{}",
        postfix.log()
    );
}
