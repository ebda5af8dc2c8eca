//! OBJECTID (RFC 8474), SAVEDATE (RFC 8514) and PREVIEW (RFC 8970) by value: what the
//! transcript (062) can only match as forms. A message keeps its EMAILID when copied or moved
//! and across a restart and the loss of nestbox's index; a mailbox keeps its MAILBOXID across
//! RENAME and restarts, and a mailbox created again under the same name gets a new one; the save
//! date is when the message came into the folder; a second `FETCH 1:* (PREVIEW)` reads no message
//! file (the answers come from the cache, also after a restart).
mod common;

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{ImapClient, Options, TestServer};

fn start() -> TestServer {
    TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        ..Options::default()
    })
}

/// The text inside `NAME (...)` in `line`.
fn paren_after<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name} ("))? + name.len() + 2;
    let end = at + line[at..].find(')')?;
    Some(&line[at..end])
}

/// `(UID, EMAILID)` of every message of the selected mailbox.
fn email_ids(c: &mut ImapClient) -> Vec<(u32, String)> {
    c.ok("UID FETCH 1:* (EMAILID)")
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .map(|l| {
            let uid = l.split("UID ").nth(1).and_then(|r| {
                r.split(|ch: char| !ch.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            });
            (
                uid.expect("UID in UID FETCH"),
                paren_after(l, "EMAILID").expect("EMAILID").to_string(),
            )
        })
        .collect()
}

fn mailbox_id(c: &mut ImapClient, mailbox: &str) -> String {
    let lines = c.ok(&format!("STATUS {mailbox} (MAILBOXID)"));
    let line = lines
        .iter()
        .find(|l| l.starts_with("* STATUS"))
        .expect("STATUS");
    paren_after(line, "MAILBOXID")
        .expect("MAILBOXID")
        .to_string()
}

fn search(c: &mut ImapClient, query: &str) -> Vec<u32> {
    let lines = c.ok(&format!("UID SEARCH {query}"));
    let line = lines
        .iter()
        .find(|l| l.starts_with("* SEARCH"))
        .expect("SEARCH");
    line["* SEARCH".len()..]
        .split_whitespace()
        .map(|n| n.parse().expect("UID"))
        .collect()
}

#[test]
fn email_ids_follow_messages_through_copy_move_restart_and_index_loss() {
    let mut server = start();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    let inbox = email_ids(&mut c);
    assert_eq!(inbox.len(), 4);
    let mut distinct: Vec<&String> = inbox.iter().map(|(_, id)| id).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{inbox:?}");
    c.ok("CREATE Copies");
    c.ok("CREATE Later");
    c.ok("UID COPY 1:2 Copies");
    c.ok("UID MOVE 5 Later");
    c.ok("SELECT Copies");
    let copies = email_ids(&mut c);
    assert_eq!(
        copies.iter().map(|(_, id)| id).collect::<Vec<_>>(),
        [&inbox[0].1, &inbox[1].1]
    );
    // SEARCH EMAILID finds the copy here, as it finds the original in INBOX.
    assert_eq!(
        search(&mut c, &format!("EMAILID {}", inbox[1].1)),
        [copies[1].0]
    );
    c.ok("SELECT Later");
    let later = email_ids(&mut c);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].1, inbox[2].1);
    // A copy of the copy still has the first ID.
    c.ok("UID COPY 1 INBOX");
    c.ok("SELECT INBOX");
    let after = email_ids(&mut c);
    assert_eq!(after.iter().filter(|(_, id)| *id == inbox[2].1).count(), 1);
    assert_eq!(
        search(&mut c, &format!("EMAILID {}", inbox[0].1)),
        [inbox[0].0]
    );
    c.logout();

    // The same IDs after a restart, and after nestbox's indexes are deleted: they come from
    // the Maildir (file names and the uidlist's G fields), not from our index.
    server.restart();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    assert_eq!(email_ids(&mut c), after);
    c.logout();
    server.stop();
    for dir in [
        server.maildir(),
        server.maildir().join(".Copies"),
        server.maildir().join(".Later"),
    ] {
        let _ = fs::remove_file(dir.join("nestbox.index"));
        let _ = fs::remove_file(dir.join("nestbox.cache"));
    }
    server.restart();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT Copies");
    assert_eq!(email_ids(&mut c), copies);
    c.ok("SELECT INBOX");
    assert_eq!(email_ids(&mut c), after);
    c.logout();
}

#[test]
fn mailbox_ids_survive_rename_and_restart_and_are_new_for_a_new_mailbox() {
    let mut server = start();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    let (_, tagged) = c.command("CREATE Trips");
    let created = paren_after(&tagged, "MAILBOXID")
        .expect("MAILBOXID in CREATE's OK")
        .to_string();
    assert_eq!(mailbox_id(&mut c, "Trips"), created);
    let inbox = mailbox_id(&mut c, "INBOX");
    assert_ne!(inbox, created);
    let select = c.ok("SELECT Trips");
    assert!(
        select
            .iter()
            .any(|l| l.contains(&format!("[MAILBOXID ({created})]"))),
        "{select:?}"
    );
    c.ok("UNSELECT");
    c.ok("RENAME Trips Travel");
    assert_eq!(mailbox_id(&mut c, "Travel"), created);
    c.logout();
    server.restart();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    assert_eq!(mailbox_id(&mut c, "Travel"), created);
    assert_eq!(mailbox_id(&mut c, "INBOX"), inbox);
    // Deleted and created again: another mailbox, another ID (RFC 8474 §4).
    c.ok("DELETE Travel");
    let (_, tagged) = c.command("CREATE Travel");
    let again = paren_after(&tagged, "MAILBOXID")
        .expect("MAILBOXID")
        .to_string();
    assert_ne!(again, created);
    // LIST-STATUS carries it too.
    let lines = c.ok("LIST \"\" Travel RETURN (STATUS (MAILBOXID))");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* STATUS") && l.contains(&again)),
        "{lines:?}"
    );
    c.logout();
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The save date in `line`, as seconds since the epoch; `None` for NIL.
fn save_date(line: &str) -> Option<i64> {
    let at = line.find("SAVEDATE ")? + "SAVEDATE ".len();
    let rest = &line[at..];
    if rest.starts_with("NIL") {
        return None;
    }
    let quoted = rest.strip_prefix('"')?.split('"').next()?;
    chrono::DateTime::parse_from_str(quoted, "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.timestamp())
}

#[test]
fn save_dates_are_when_the_message_came_into_the_folder() {
    let server = start();
    // A file whose name does not start with a time: no save date.
    let name = "no-time-here.host";
    fs::write(
        server.maildir().join("tmp").join(name),
        "Subject: x\n\nhello\n",
    )
    .expect("write");
    fs::rename(
        server.maildir().join("tmp").join(name),
        server.maildir().join("new").join(name),
    )
    .expect("deliver");
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("CREATE Kept");
    let before = now();
    c.ok("APPEND Kept {11+}\r\nSubject: y\r\n");
    c.ok("SELECT INBOX");
    c.ok("UID COPY 1 Kept");
    let after = now();
    let lines = c.ok("FETCH 1:* (SAVEDATE)");
    let dates: Vec<Option<i64>> = lines
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .map(|l| save_date(l))
        .collect();
    // The fixture's four files were made in November 2023; the hand-made one has none.
    assert_eq!(dates.len(), 5, "{lines:?}");
    assert!(
        dates[..4]
            .iter()
            .all(|d| d.is_some_and(|t| (1_700_000_000..1_700_001_000).contains(&t)))
    );
    assert_eq!(dates[4], None, "{lines:?}");
    assert_eq!(search(&mut c, "SAVEDBEFORE 1-Jan-2030").len(), 4);
    c.ok("SELECT Kept");
    let lines = c.ok("FETCH 1:* (SAVEDATE)");
    let kept: Vec<i64> = lines
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .filter_map(|l| save_date(l))
        .collect();
    // The APPEND and the COPY (a copy is saved into this folder now).
    assert_eq!(kept.len(), 2, "{lines:?}");
    assert!(
        kept.iter().all(|&t| before - 1 <= t && t <= after + 1),
        "{kept:?}"
    );
    c.logout();
}

#[test]
fn a_second_preview_of_every_message_reads_no_file() {
    let mut server = start();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    let first = c.ok("FETCH 1:* (PREVIEW)");
    assert!(
        first
            .iter()
            .any(|l| l.contains("PREVIEW \"Hi Bob, shall we have lunch on Friday? Alice\"")),
        "{first:?}"
    );
    // The non-ASCII preview goes out as a literal, decoded from quoted-printable UTF-8.
    assert!(
        first
            .iter()
            .any(|l| l.contains("Schöne Grüße aus München!")),
        "{first:?}"
    );
    c.logout();
    server.restart();
    // Overwrite every message file's text in place (no Maildir program does this: it stands
    // for "the file is not read"): previews still come from the cache, as LAZY ones too.
    for sub in ["cur", "new"] {
        for e in fs::read_dir(server.maildir().join(sub)).expect("dir") {
            let p = e.expect("entry").path();
            let data = fs::read(&p).expect("read");
            let blank: Vec<u8> = data
                .iter()
                .map(|&b| if b.is_ascii_alphabetic() { b'z' } else { b })
                .collect();
            fs::write(&p, blank).expect("write");
        }
    }
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    let again = c.ok("FETCH 1:* (PREVIEW)");
    let fetches = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| l.contains(" FETCH "))
            .cloned()
            .collect()
    };
    assert_eq!(fetches(&again), fetches(&first));
    let lazy = c.ok("FETCH 1:* (PREVIEW (LAZY))");
    assert_eq!(fetches(&lazy), fetches(&first));
    c.logout();
}
