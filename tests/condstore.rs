//! CONDSTORE (RFC 7162 §3.1) by value: what the transcript (060-condstore) can only match as
//! numbers. Modseqs of changes rise above the HIGHESTMODSEQ a client was told; CHANGEDSINCE
//! returns exactly the messages changed since a value, whoever changed them; UNCHANGEDSINCE
//! refuses to overwrite another session's change; HIGHESTMODSEQ never goes back across a
//! restart or the loss of nestbox's index, and nothing changed before is hidden from a client
//! that asks from an older value.
mod common;

use common::{ImapClient, Kind, Options, TestServer};

/// The number in `[NAME n]` or `NAME (n)` in one of `lines`.
fn number_after(lines: &[String], name: &str) -> Option<u64> {
    lines.iter().find_map(|l| {
        let at = l.find(name)? + name.len();
        let digits: String = l[at..]
            .trim_start_matches([' ', '('])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// `(sequence number, MODSEQ)` of every `* n FETCH` line that has a MODSEQ.
fn fetched_modseqs(lines: &[String]) -> Vec<(u32, u64)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("* ")?;
            let (seq, rest) = rest.split_once(' ')?;
            rest.starts_with("FETCH").then(|| {
                Some((
                    seq.parse().ok()?,
                    number_after(std::slice::from_ref(l), "MODSEQ")?,
                ))
            })?
        })
        .collect()
}

fn select_condstore(c: &mut ImapClient) -> u64 {
    let lines = c.ok("SELECT INBOX (CONDSTORE)");
    number_after(&lines, "HIGHESTMODSEQ").expect("HIGHESTMODSEQ in SELECT")
}

fn start() -> TestServer {
    TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        ..Options::default()
    })
}

#[test]
fn changedsince_returns_exactly_what_changed_whoever_changed_it() {
    let server = start();
    let mut a = ImapClient::login(&server, common::USER, common::PASSWORD);
    let h0 = select_condstore(&mut a);
    assert!(h0 > 0);
    // Nothing changed since the value SELECT gave.
    let lines = a.ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h0})"));
    assert!(fetched_modseqs(&lines).is_empty(), "{lines:?}");

    // Our own change: a .SILENT STORE still tells the new modseq (message 3 has no flags;
    // setting one message 2 already has would change nothing and say nothing).
    let lines = a.ok("STORE 2:3 +FLAGS.SILENT (\\Flagged)");
    let own = fetched_modseqs(&lines);
    assert_eq!(own.len(), 1, "{lines:?}");
    let (seq, m1) = own[0];
    assert_eq!(seq, 3);
    assert!(m1 > h0, "{m1} after {h0}");
    let lines = a.ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h0})"));
    assert_eq!(fetched_modseqs(&lines), vec![(3, m1)], "{lines:?}");

    // Another session's change reaches us with its modseq, and CHANGEDSINCE finds it.
    let mut b = ImapClient::login(&server, common::USER, common::PASSWORD);
    b.ok("SELECT INBOX");
    b.ok("STORE 4 +FLAGS.SILENT (\\Seen)");
    let lines = a.ok("NOOP");
    let theirs = fetched_modseqs(&lines);
    assert_eq!(theirs.len(), 1, "{lines:?}");
    let (seq, m2) = theirs[0];
    assert_eq!(seq, 4);
    assert!(m2 > m1);
    assert!(lines.iter().any(|l| l.contains("UID 10")), "{lines:?}");
    let lines = a.ok(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m1})"));
    assert_eq!(fetched_modseqs(&lines), vec![(4, m2)], "{lines:?}");
    let lines = a.ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h0})"));
    assert_eq!(fetched_modseqs(&lines), vec![(3, m1), (4, m2)], "{lines:?}");

    // SEARCH MODSEQ: the messages changed since, and the highest modseq among them.
    let lines = a.ok(&format!("SEARCH MODSEQ {}", m1 + 1));
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("* SEARCH 4 (MODSEQ {m2})")),
        "{lines:?}"
    );
    let lines = a.ok(&format!("SEARCH MODSEQ {m1}"));
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("* SEARCH 3 4 (MODSEQ {m2})")),
        "{lines:?}"
    );
    // STATUS elsewhere agrees.
    let lines = b.ok("STATUS INBOX (HIGHESTMODSEQ)");
    assert_eq!(number_after(&lines, "HIGHESTMODSEQ"), Some(m2), "{lines:?}");
    a.logout();
    b.logout();
}

#[test]
fn unchangedsince_keeps_another_sessions_change() {
    let server = start();
    let mut a = ImapClient::login(&server, common::USER, common::PASSWORD);
    select_condstore(&mut a);
    let lines = a.ok("FETCH 1:2 (MODSEQ)");
    let m = fetched_modseqs(&lines)
        .iter()
        .map(|&(_, m)| m)
        .max()
        .expect("MODSEQ");

    let mut b = ImapClient::login(&server, common::USER, common::PASSWORD);
    b.ok("SELECT INBOX");
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)");

    // Based on the old value: refused for message 1, done for message 2.
    let (lines, tagged) = a.command(&format!(
        "STORE 1:2 (UNCHANGEDSINCE {m}) +FLAGS (\\Deleted)"
    ));
    assert!(tagged.contains("OK [MODIFIED 1]"), "{tagged} {lines:?}");
    let flags = a.uids_and_flags();
    assert!(!flags[0].1.iter().any(|f| f == "\\Deleted"), "{flags:?}");
    assert!(flags[0].1.iter().any(|f| f == "\\Flagged"), "{flags:?}");
    assert!(flags[1].1.iter().any(|f| f == "\\Deleted"), "{flags:?}");
    // With the current value it goes through.
    let lines = a.ok("FETCH 1 (MODSEQ)");
    let now = number_after(&lines, "MODSEQ").expect("MODSEQ");
    assert!(now > m);
    let (_, tagged) = a.command(&format!(
        "STORE 1 (UNCHANGEDSINCE {now}) +FLAGS (\\Deleted)"
    ));
    assert!(
        tagged.starts_with("OK") || tagged.contains(" OK"),
        "{tagged}"
    );
    assert!(!tagged.contains("MODIFIED"), "{tagged}");
    a.logout();
    b.logout();
}

/// Modseqs only rise: across a restart, and across the loss of nestbox's index (which
/// holds them), after which a client asking from an old value is told about every message
/// rather than nothing.
#[test]
fn highestmodseq_never_goes_back_and_hides_nothing_after_index_loss() {
    if Kind::from_env() == Kind::Dovecot {
        return; // nestbox's index file.
    }
    let mut server = start();
    let mut a = ImapClient::login(&server, common::USER, common::PASSWORD);
    select_condstore(&mut a);
    a.ok("STORE 1 +FLAGS.SILENT (\\Answered)");
    let h1 = number_after(&a.ok("STATUS INBOX (HIGHESTMODSEQ)"), "HIGHESTMODSEQ").expect("h1");
    a.logout();

    server.restart();
    let mut a = ImapClient::login(&server, common::USER, common::PASSWORD);
    let h2 = select_condstore(&mut a);
    assert!(h2 >= h1, "{h2} < {h1} after a restart");
    let lines = a.ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h1})"));
    assert!(
        fetched_modseqs(&lines).is_empty(),
        "a restart changed nothing: {lines:?}"
    );
    a.logout();

    server.stop();
    let index = server.maildir().join("nestbox.index");
    assert!(index.exists(), "no index at {}", index.display());
    std::fs::remove_file(&index).expect("remove the index");
    server.restart();
    let mut a = ImapClient::login(&server, common::USER, common::PASSWORD);
    let h3 = select_condstore(&mut a);
    assert!(h3 > h1, "{h3} <= {h1} after the index was lost");
    // Every message now has a modseq above what the client knew: it refetches flags, and
    // misses nothing.
    let lines = a.ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h1})"));
    assert_eq!(fetched_modseqs(&lines).len(), 4, "{lines:?}");
    assert!(
        fetched_modseqs(&lines)
            .iter()
            .all(|&(_, m)| m > h1 && m <= h3)
    );
    a.logout();
}

/// The `* VANISHED ...` lines of `lines`, as their UID sets.
fn vanished(lines: &[String], earlier: bool) -> Vec<String> {
    let prefix = if earlier {
        "* VANISHED (EARLIER) "
    } else {
        "* VANISHED "
    };
    lines
        .iter()
        .filter(|l| earlier || !l.starts_with("* VANISHED (EARLIER)"))
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
        .collect()
}

fn qresync_client(server: &TestServer) -> ImapClient {
    let mut c = ImapClient::login(server, common::USER, common::PASSWORD);
    let lines = c.ok("ENABLE QRESYNC");
    assert!(lines.iter().any(|l| l.contains("QRESYNC")), "{lines:?}");
    c
}

/// QRESYNC (RFC 7162 §3.2): expunges are told as VANISHED UIDs (during IDLE and NOOP, and to
/// the EXPUNGE itself, whose tagged OK names HIGHESTMODSEQ); a client that reconnects with
/// `SELECT ... (QRESYNC (uidvalidity modseq))` is told exactly what vanished and what changed
/// since, before the tagged OK, VANISHED first; `UID FETCH ... (CHANGEDSINCE n VANISHED)` does
/// the same for a UID set; across a restart (the expunge memory is cut) every missing UID of the
/// known set is named, so nothing the client still holds is left out.
#[test]
fn qresync_tells_what_vanished_and_changed() {
    let mut server = start();
    let mut a = qresync_client(&server);
    let h0 = select_condstore(&mut a);
    let uidvalidity: u64 = 1_700_000_000;

    // Another session expunges UID 2 and flags UID 5.
    let mut b = ImapClient::login(&server, common::USER, common::PASSWORD);
    b.ok("SELECT INBOX");
    b.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)");
    b.ok("UID EXPUNGE 2");
    b.ok("UID STORE 5 +FLAGS.SILENT (\\Flagged)");
    let lines = a.ok("NOOP");
    assert_eq!(vanished(&lines, false), vec!["2"], "{lines:?}");
    assert!(!lines.iter().any(|l| l.ends_with(" EXPUNGE")), "{lines:?}");

    // UID FETCH with VANISHED: VANISHED (EARLIER) before the FETCHes.
    let lines = a.ok(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h0} VANISHED)"
    ));
    assert_eq!(vanished(&lines, true), vec!["2"], "{lines:?}");
    let first_fetch = lines
        .iter()
        .position(|l| l.contains(" FETCH "))
        .expect("a FETCH");
    let first_vanished = lines
        .iter()
        .position(|l| l.starts_with("* VANISHED"))
        .expect("VANISHED");
    assert!(first_vanished < first_fetch, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("UID 5") && l.contains("\\Flagged")),
        "{lines:?}"
    );

    // Our own EXPUNGE: VANISHED, and HIGHESTMODSEQ in the tagged OK.
    a.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    let (lines, tagged) = a.command("EXPUNGE");
    assert_eq!(vanished(&lines, false), vec!["1"], "{lines:?}");
    assert!(tagged.contains("OK [HIGHESTMODSEQ "), "{tagged}");
    let h1 = number_after(std::slice::from_ref(&tagged), "HIGHESTMODSEQ").expect("h1");
    a.logout();

    // A client that synced at h0 reconnects: exactly UIDs 1 and 2 vanished, UID 5 changed.
    let mut c = qresync_client(&server);
    let lines = c.ok(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {h0}))"));
    assert_eq!(vanished(&lines, true), vec!["1:2"], "{lines:?}");
    let changed = fetched_modseqs(&lines);
    assert!(lines.iter().any(|l| l.contains("UID 5")), "{lines:?}");
    assert!(changed.iter().all(|&(_, m)| m > h0 && m <= h1), "{lines:?}");
    // Known UIDs limit the answer; a UIDVALIDITY that changed gets a plain SELECT.
    let lines = c.ok(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {h0} 2:4))"));
    assert_eq!(vanished(&lines, true), vec!["2"], "{lines:?}");
    assert!(fetched_modseqs(&lines).is_empty(), "{lines:?}");
    let lines = c.ok(&format!("SELECT INBOX (QRESYNC (7 {h0}))"));
    assert!(
        vanished(&lines, true).is_empty() && fetched_modseqs(&lines).is_empty(),
        "{lines:?}"
    );
    // Up to date: nothing.
    let lines = c.ok(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {h1}))"));
    assert!(
        vanished(&lines, true).is_empty() && fetched_modseqs(&lines).is_empty(),
        "{lines:?}"
    );
    c.logout();
    b.logout();

    // Without ENABLE QRESYNC the parameter is BAD.
    let mut d = ImapClient::login(&server, common::USER, common::PASSWORD);
    let (_, tagged) = d.command(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {h0}))"));
    assert!(tagged.contains("BAD"), "{tagged}");
    d.logout();

    if Kind::from_env() == Kind::Dovecot {
        return;
    }
    // A restart keeps the expunge memory (in the index, written when the folder closes): the
    // answer is still exact.
    server.restart();
    let mut e = qresync_client(&server);
    let lines = e.ok(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {h0}))"));
    assert_eq!(vanished(&lines, true), vec!["1:2"], "{lines:?}");
    // A crash (kill -9 of every process, after a change made the index incomplete) loses it:
    // every missing UID below UIDNEXT is named, the ones the client held (1, 2) among them,
    // and every message's flags are sent again.
    e.ok("UID STORE 3 +FLAGS.SILENT (\\Seen)");
    let pid = server.pid().expect("running");
    for p in common::process_tree(pid) {
        // SAFETY: kill(2) on processes of the server this test started.
        unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
    }
    drop(e);
    server.restart();
    let mut e = qresync_client(&server);
    let lines = e.ok(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {h1}))"));
    assert_eq!(vanished(&lines, true), vec!["1:4,6:9"], "{lines:?}");
    let exists = number_before(&lines, " EXISTS").expect("EXISTS");
    assert_eq!(fetched_modseqs(&lines).len() as u64, exists, "{lines:?}");
    assert!(
        fetched_modseqs(&lines).iter().all(|&(_, m)| m > h1),
        "{lines:?}"
    );
    e.logout();
}

/// The number before `suffix` in a `* n<suffix>` line.
fn number_before(lines: &[String], suffix: &str) -> Option<u64> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(suffix)?.parse().ok())
}

/// An expunge that cannot be told during a FETCH (RFC 9051 §7.5.1) must not be skipped by a
/// QRESYNC client that takes the FETCH's MODSEQ as its sync point: after the FETCH the session
/// says a HIGHESTMODSEQ from before the expunge, and the VANISHED follows at the next NOOP.
#[test]
fn an_expunge_held_back_during_fetch_keeps_the_sync_point_below_it() {
    let server = start();
    let mut a = qresync_client(&server);
    let h0 = select_condstore(&mut a);
    let mut b = ImapClient::login(&server, common::USER, common::PASSWORD);
    b.ok("SELECT INBOX");
    b.ok("UID STORE 5 +FLAGS.SILENT (\\Deleted)");
    b.ok("UID EXPUNGE 5");
    b.ok("UID STORE 10 +FLAGS.SILENT (\\Flagged)");
    let lines = a.ok("FETCH 1:* (FLAGS MODSEQ)");
    assert!(
        vanished(&lines, false).is_empty(),
        "no VANISHED during FETCH: {lines:?}"
    );
    let top = fetched_modseqs(&lines)
        .iter()
        .map(|&(_, m)| m)
        .max()
        .expect("modseqs");
    let floor = number_after(&lines, "HIGHESTMODSEQ").expect("HIGHESTMODSEQ after the FETCH");
    assert!(floor < top && floor >= h0, "{floor} vs {top}: {lines:?}");
    let last = lines
        .iter()
        .rposition(|l| l.contains("HIGHESTMODSEQ"))
        .unwrap_or(0);
    assert!(
        lines
            .iter()
            .rposition(|l| l.contains(" FETCH "))
            .unwrap_or(0)
            < last,
        "{lines:?}"
    );
    let lines = a.ok("NOOP");
    assert_eq!(vanished(&lines, false), vec!["5"], "{lines:?}");
    a.logout();
    b.logout();
}

/// `UID FETCH 1:* ... VANISHED` names an expunged UID above every UID left: `*` in the set
/// reaches to the last UID given out, not the last one still there.
#[test]
fn vanished_reaches_past_the_last_uid_left() {
    let server = start();
    let mut a = qresync_client(&server);
    let h0 = select_condstore(&mut a);
    a.ok("UID STORE 10 +FLAGS.SILENT (\\Deleted)");
    let (lines, _) = a.command("UID EXPUNGE 10");
    assert_eq!(vanished(&lines, false), vec!["10"], "{lines:?}");
    let lines = a.ok(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h0} VANISHED)"
    ));
    assert_eq!(vanished(&lines, true), vec!["10"], "{lines:?}");
    a.logout();
}

/// During IDLE a QRESYNC client is told another session's expunge as `* VANISHED uid`.
#[test]
fn idle_tells_vanished() {
    let server = start();
    let mut a = qresync_client(&server);
    select_condstore(&mut a);
    a.send_raw(b"i IDLE\r\n");
    let cont = a.read_line().expect("continuation");
    assert!(cont.starts_with('+'), "{cont}");
    let mut b = ImapClient::login(&server, common::USER, common::PASSWORD);
    b.ok("SELECT INBOX");
    b.ok("UID STORE 5 +FLAGS.SILENT (\\Deleted)");
    b.ok("UID EXPUNGE 5");
    let mut seen = Vec::new();
    loop {
        let line = a.read_line().expect("a line during IDLE");
        let done = line.starts_with("* VANISHED");
        seen.push(line);
        if done {
            break;
        }
        assert!(seen.len() < 10, "{seen:?}");
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("* VANISHED 5"),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l.ends_with("EXPUNGE")), "{seen:?}");
    a.send_raw(b"DONE\r\n");
    let tagged = a.read_line().expect("IDLE's end");
    assert!(tagged.starts_with("i OK"), "{tagged}");
    a.logout();
    b.logout();
}

/// Once CONDSTORE is on, EXPUNGE's tagged OK names the HIGHESTMODSEQ the expunge brought the
/// mailbox to (RFC 7162 §3.2.10 asks it of QRESYNC clients; Dovecot does it for CONDSTORE
/// ones too), and it is what a later SELECT says; before CONDSTORE is on it is not sent.
#[test]
fn expunge_names_highestmodseq_once_condstore_is_on() {
    let server = start();
    let mut a = ImapClient::login(&server, common::USER, common::PASSWORD);
    a.ok("SELECT INBOX");
    a.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    let (_, tagged) = a.command("UID EXPUNGE 1");
    assert!(!tagged.contains("HIGHESTMODSEQ"), "{tagged}");
    let before = select_condstore(&mut a);
    a.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)");
    let (lines, tagged) = a.command("EXPUNGE");
    assert!(lines.iter().any(|l| l.ends_with(" EXPUNGE")), "{lines:?}");
    let after =
        number_after(std::slice::from_ref(&tagged), "HIGHESTMODSEQ").expect("HIGHESTMODSEQ");
    assert!(after > before, "{tagged}");
    a.logout();
    let mut b = ImapClient::login(&server, common::USER, common::PASSWORD);
    assert_eq!(select_condstore(&mut b), after);
    b.logout();
}
