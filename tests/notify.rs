//! NOTIFY (RFC 5465) by value, against the built server with its one change watcher: events
//! arrive unsolicited, with no command in progress and no IDLE, for the selected mailbox
//! (EXISTS and the asked FETCH items, flag changes, expunges) and as STATUS for the others;
//! folders created, renamed and deleted by other programs come as LIST (with OLDNAME for a
//! rename, `\NonExistent` for a deletion), subscriptions as LIST with or without
//! `\Subscribed`; a burst of deliveries is a bounded number of STATUS lines; NOTIFY NONE stops
//! it all; a NOTIFY asking for too many mailboxes is refused with NOTIFICATIONOVERFLOW. The
//! forms and error cases are in transcript 063.
mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ImapClient, Options, TestServer};

fn start() -> TestServer {
    TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        ..Options::default()
    })
}

/// Delivers like an MTA: a file in `tmp/`, renamed into `new/`.
fn deliver(folder: &Path, n: usize) {
    let name = format!(
        "{}.M{n}P{}.notify-test",
        1_700_000_000 + n,
        std::process::id()
    );
    let body = format!("Subject: message {n}\r\n\r\nbody {n}\r\n");
    fs::write(folder.join("tmp").join(&name), body).expect("write");
    fs::rename(
        folder.join("tmp").join(&name),
        folder.join("new").join(&name),
    )
    .expect("rename");
}

/// A folder made by another program (as the mail user, who owns the Maildir).
fn make_folder(path: &Path) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(path.join(sub)).expect("mkdir");
    }
    common::give_to_mail_user(path);
}

/// Lines the server sends unsolicited until `done` says the wanted ones came, or `within`
/// passes (then the lines so far, for the assertion's message).
fn collect(c: &mut ImapClient, within: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut lines = Vec::new();
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match c.read_line_within(left) {
            Some(l) => lines.push(l),
            None => break,
        }
    }
    lines
}

/// Nothing unsolicited for `quiet`.
fn silent(c: &mut ImapClient, quiet: Duration) -> Option<String> {
    c.read_line_within(quiet)
}

#[test]
fn events_arrive_between_commands_for_the_selected_and_other_mailboxes() {
    let server = start();
    let maildir = server.maildir();
    make_folder(&maildir.join(".Work"));
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    c.ok("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))");
    assert_eq!(silent(&mut c, Duration::from_millis(300)), None);

    // A delivery into the selected INBOX: EXISTS, then the asked items, unasked.
    let t = Instant::now();
    deliver(&maildir, 1);
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.contains(" FETCH "))
    });
    let push = t.elapsed();
    assert!(lines.iter().any(|l| l == "* 5 EXISTS"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* 5 FETCH (") && l.contains("UID 11") && l.contains("FLAGS (")),
        "{lines:?}"
    );
    eprintln!("selected MessageNew pushed in {push:?}");

    // A delivery into another folder: its STATUS.
    let t = Instant::now();
    deliver(&maildir.join(".Work"), 2);
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* STATUS Work"))
    });
    let status = lines
        .iter()
        .find(|l| l.starts_with("* STATUS Work"))
        .unwrap_or_else(|| panic!("no STATUS for Work: {lines:?}"));
    for item in ["MESSAGES 1", "UIDNEXT 2", "UNSEEN 1", "UIDVALIDITY "] {
        assert!(status.contains(item), "{status}");
    }
    eprintln!("unselected MessageNew pushed in {:?}", t.elapsed());

    // Another session: a flag change in Work (FlagChange asked: a STATUS), one in INBOX (a
    // FETCH), an expunge in INBOX (EXPUNGE, with no command in progress: `selected`).
    let mut other = ImapClient::login(&server, common::USER, common::PASSWORD);
    other.ok("SELECT Work");
    other.ok("UID STORE 1 +FLAGS (\\Seen)");
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter()
            .any(|x| x.starts_with("* STATUS Work") && x.contains("UNSEEN 0"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* STATUS Work") && l.contains("UNSEEN 0")),
        "{lines:?}"
    );
    other.ok("SELECT INBOX");
    other.ok("UID STORE 11 +FLAGS (\\Flagged)");
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.contains(" FETCH "))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* 5 FETCH (") && l.contains("\\Flagged")),
        "{lines:?}"
    );
    other.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    other.ok("UID EXPUNGE 1");
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.ends_with(" EXPUNGE"))
    });
    assert!(lines.iter().any(|l| l == "* 1 EXPUNGE"), "{lines:?}");

    // Folders made, renamed and deleted by another program; a subscription by the other
    // session.
    make_folder(&maildir.join(".Trips"));
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* LIST"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* LIST (") && l.ends_with("\"/\" Trips")),
        "{lines:?}"
    );
    fs::rename(maildir.join(".Trips"), maildir.join(".Travel")).expect("rename");
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* LIST"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* LIST (") && l.contains("Travel (\"OLDNAME\" (Trips))")),
        "{lines:?}"
    );
    other.ok("SUBSCRIBE Travel");
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* LIST"))
    });
    assert!(
        lines.iter().any(|l| l.starts_with("* LIST (")
            && l.contains("\\Subscribed")
            && l.ends_with("Travel")),
        "{lines:?}"
    );
    // Moved out of the Maildir (an `rm -r` races the server's own writes into it).
    let away = tempfile::tempdir().expect("tempdir");
    fs::rename(maildir.join(".Travel"), away.path().join("Travel")).expect("move away");
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* LIST"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* LIST (\\NonExistent") && l.ends_with("Travel")),
        "{lines:?}"
    );

    // NOTIFY NONE: silence, until the next command reports the selected mailbox as usual.
    c.ok("NOTIFY NONE");
    deliver(&maildir.join(".Work"), 3);
    deliver(&maildir, 4);
    assert_eq!(silent(&mut c, Duration::from_millis(700)), None);
    let lines = c.ok("NOOP");
    assert!(lines.iter().any(|l| l.ends_with(" EXISTS")), "{lines:?}");
    other.logout();
    c.logout();
}

#[test]
fn selected_delayed_holds_expunges_and_status_indicator_answers_at_once() {
    let server = start();
    let maildir = server.maildir();
    make_folder(&maildir.join(".Work"));
    deliver(&maildir.join(".Work"), 1);
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    // STATUS for every watched mailbox before the tagged OK (§3.1), not for the selected one.
    let lines = c.ok("NOTIFY SET STATUS (selected-delayed (MessageNew MessageExpunge)) (mailboxes (Work INBOX) (MessageNew MessageExpunge))");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* STATUS Work (") && l.contains("MESSAGES 1")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("* STATUS INBOX")),
        "{lines:?}"
    );
    // selected-delayed: a new message is told, an expunge waits for a command that allows it.
    let mut other = ImapClient::login(&server, common::USER, common::PASSWORD);
    other.ok("SELECT INBOX");
    other.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    other.ok("UID EXPUNGE 1");
    deliver(&maildir, 7);
    let mut lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.ends_with(" EXISTS"))
    });
    // And its RECENT (a rev1 session).
    lines.extend(collect(&mut c, Duration::from_millis(300), |_| false));
    assert!(lines.iter().any(|l| l == "* 5 EXISTS"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.ends_with(" EXPUNGE")), "{lines:?}");
    // FlagChange was not asked for: another session's flag change is not pushed.
    other.ok("UID STORE 5 +FLAGS (\\Flagged)");
    assert_eq!(silent(&mut c, Duration::from_millis(700)), None);
    // A command that may tell expunges tells it (and the flag change).
    let lines = c.ok("NOOP");
    assert!(lines.iter().any(|l| l == "* 1 EXPUNGE"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("\\Flagged")), "{lines:?}");
    // Once INBOX is not selected any more it is watched like the others (it is in the group).
    c.ok("UNSELECT");
    deliver(&maildir, 8);
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* STATUS INBOX"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* STATUS INBOX (") && l.contains("MESSAGES 5")),
        "{lines:?}"
    );
    other.logout();
    c.logout();
}

#[test]
fn notify_during_idle_and_a_burst_is_a_few_status_lines() {
    let server = start();
    let maildir = server.maildir();
    let folders = ["A", "B", "C"];
    for f in folders {
        make_folder(&maildir.join(format!(".{f}")));
    }
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("ENABLE CONDSTORE");
    c.ok("NOTIFY SET (personal (MessageNew MessageExpunge))");
    c.send_raw(b"i1 IDLE\r\n");
    assert_eq!(c.read_line().as_deref(), Some("+ idling"));
    // 1,000 deliveries over three folders as fast as a script makes them.
    let t = Instant::now();
    for n in 0..999 {
        deliver(&maildir.join(format!(".{}", folders[n % 3])), n);
    }
    let lines = collect(&mut c, Duration::from_secs(30), |l| {
        folders.iter().all(|f| {
            l.iter()
                .any(|x| x.starts_with(&format!("* STATUS {f} (")) && x.contains("MESSAGES 333"))
        })
    });
    let took = t.elapsed();
    let statuses = lines.iter().filter(|l| l.starts_with("* STATUS")).count();
    eprintln!("{statuses} STATUS lines for 999 deliveries in {took:?}");
    for f in folders {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("* STATUS {f} (")) && l.contains("MESSAGES 333")),
            "{f}: {lines:?}"
        );
    }
    // CONDSTORE is on: HIGHESTMODSEQ is in them (§5.2).
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("* STATUS"))
            .all(|l| l.contains("HIGHESTMODSEQ ")),
        "{lines:?}"
    );
    // Bounded: at most one line per folder per 100 ms of the burst (and the first at once),
    // far fewer than one per delivery.
    let bound = 3 * (took.as_millis() as usize / 100 + 2);
    assert!(
        statuses <= bound,
        "{statuses} STATUS lines (bound {bound}): {lines:?}"
    );
    assert!(statuses < 200, "{statuses} STATUS lines");
    c.send_raw(b"DONE\r\n");
    let rest = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("i1 "))
    });
    assert!(rest.iter().any(|l| l.starts_with("i1 OK")), "{rest:?}");
    c.logout();
}

#[test]
fn too_many_mailboxes_is_notification_overflow() {
    let server = start();
    let maildir = server.maildir();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    // Below the limit (256 watched; the fixture has a few folders): accepted; then folders made
    // by another program push the session past it: an untagged NOTIFICATIONOVERFLOW, and no
    // more events (§5.8).
    for i in 0..240 {
        make_folder(&maildir.join(format!(".F{i:03}")));
    }
    c.ok("NOTIFY SET (personal (MessageNew MessageExpunge))");
    for i in 240..260 {
        make_folder(&maildir.join(format!(".F{i:03}")));
    }
    let lines = collect(&mut c, Duration::from_secs(20), |l| {
        l.iter().any(|x| x.contains("NOTIFICATIONOVERFLOW"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* OK [NOTIFICATIONOVERFLOW]")),
        "{lines:?}"
    );
    deliver(&maildir.join(".F001"), 1);
    assert_eq!(silent(&mut c, Duration::from_millis(700)), None);
    // Asked again for more than the limit: refused, the session keeps working.
    let (_, tagged) = c.command("NOTIFY SET (personal (MessageNew MessageExpunge))");
    assert!(tagged.contains("NO [NOTIFICATIONOVERFLOW]"), "{tagged}");
    // A narrower request is fine.
    c.ok("NOTIFY SET (mailboxes F001 (MessageNew MessageExpunge))");
    deliver(&maildir.join(".F001"), 2);
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* STATUS F001"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* STATUS F001 (") && l.contains("MESSAGES 2")),
        "{lines:?}"
    );
    c.logout();
}

/// A folder that appears with mail already in it (an MTA creating it with its first delivery,
/// a folder moved in whole) is news: its STATUS comes at once, not at its second message.
#[test]
fn a_folder_that_arrives_with_mail_is_told() {
    let server = start();
    let maildir = server.maildir();
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("NOTIFY SET (personal (MessageNew MessageExpunge))");
    // Made outside the Maildir, with two messages, then moved in.
    let outside = tempfile::tempdir_in(maildir.parent().expect("parent")).expect("tempdir");
    let staged = outside.path().join("Auto");
    make_folder(&staged);
    deliver(&staged, 1);
    deliver(&staged, 2);
    common::give_to_mail_user(&staged);
    fs::rename(&staged, maildir.join(".Auto")).expect("move in");
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* STATUS Auto"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* STATUS Auto (") && l.contains("MESSAGES 2")),
        "{lines:?}"
    );
    // And the next delivery there is told as usual.
    deliver(&maildir.join(".Auto"), 3);
    let lines = collect(&mut c, Duration::from_secs(10), |l| {
        l.iter().any(|x| x.starts_with("* STATUS Auto"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* STATUS Auto (") && l.contains("MESSAGES 3")),
        "{lines:?}"
    );
    c.logout();
}
