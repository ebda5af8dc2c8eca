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
