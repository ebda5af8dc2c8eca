//! A real CONDSTORE/QRESYNC client (issue 18): NeoMutt with `imap_condstore` and
//! `imap_qresync` and a header cache, started twice in a pseudo-terminal (`script`) with its
//! protocol log on. Its first run fills the cache; between the runs another session expunges a
//! message and flags another; the second run must resync from the cache with `UID FETCH ...
//! (CHANGEDSINCE n VANISHED)` and be told exactly those two changes, nothing more.
//!
//! What NeoMutt 20220429 uses: `ENABLE QRESYNC`, `SELECT ... (CONDSTORE)`, HIGHESTMODSEQ from the
//! SELECT, and on a cached mailbox the UID FETCH with CHANGEDSINCE and VANISHED (not SELECT
//! QRESYNC); mbsync 1.4 uses neither extension.
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{ImapClient, Kind, Options, TestServer};

/// Runs NeoMutt once on INBOX and quits; returns the IMAP lines of its debug log.
fn neomutt_run(dir: &Path, port: u16, run: usize) -> Vec<String> {
    let rc = dir.join("muttrc");
    fs::write(
        &rc,
        format!(
            "set folder = \"imap://127.0.0.1:{port}/\"\n\
             set imap_user = \"{}\"\nset imap_pass = \"{}\"\n\
             set imap_authenticators = \"login\"\nset spoolfile = \"+INBOX\"\n\
             set ssl_starttls = no\nset ssl_force_tls = no\n\
             set imap_condstore = yes\nset imap_qresync = yes\n\
             set header_cache = \"{}\"\nset message_cachedir = \"{}\"\n\
             set mail_check = 0\nset mark_old = no\n",
            common::USER,
            common::PASSWORD,
            dir.join("hcache").display(),
            dir.join("mcache").display(),
        ),
    )
    .expect("muttrc");
    let log = dir.join(format!("run{run}.log"));
    let cmd = format!(
        "neomutt -n -F {} -d 5 -l {} -e 'push <quit>y'",
        rc.display(),
        log.display()
    );
    let status = Command::new("timeout")
        .args(["30", "script", "-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .env("HOME", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run neomutt under script");
    assert!(status.success(), "neomutt run {run}: {status}");
    // NeoMutt numbers its log file: run1.log0.
    let text = fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("run{run}.log"))
        })
        .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    text.lines()
        .filter_map(|l| {
            let at = l.find(" 4< ").or_else(|| l.find(" 4> "))?;
            Some(l[at + 1..].to_string())
        })
        .collect()
}

#[test]
fn neomutt_resyncs_a_cached_inbox_with_changedsince_and_vanished() {
    if Kind::from_env() == Kind::Dovecot {
        return; // the modseqs and the expected answers are nestbox's
    }
    if !common::require_tool("neomutt", "NeoMutt, a QRESYNC client")
        || !common::require_tool("script", "util-linux script, a pseudo-terminal for NeoMutt")
    {
        return;
    }
    let server = TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        ..Options::default()
    });
    let dir = server.dir.join("neomutt");
    fs::create_dir_all(&dir).expect("neomutt dir");

    let first = neomutt_run(&dir, server.imap_port, 1);
    // (NeoMutt logs some of its pipelined commands, not all: the answer shows it.)
    assert!(
        first.iter().any(|l| l.contains("* ENABLED QRESYNC")),
        "{first:#?}"
    );
    assert!(
        first.iter().any(|l| l.contains("[HIGHESTMODSEQ ")),
        "{first:#?}"
    );

    // Meanwhile on another device: UID 2 expunged, UID 5 flagged.
    let mut other = ImapClient::login(&server, common::USER, common::PASSWORD);
    other.ok("SELECT INBOX");
    other.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)");
    other.ok("UID EXPUNGE 2");
    other.ok("UID STORE 5 +FLAGS.SILENT (\\Flagged)");
    other.logout();
    std::thread::sleep(Duration::from_millis(100));

    let second = neomutt_run(&dir, server.imap_port, 2);
    let resync = second
        .iter()
        .position(|l| l.contains("CHANGEDSINCE") && l.contains("VANISHED"))
        .unwrap_or_else(|| panic!("no CHANGEDSINCE/VANISHED resync: {second:#?}"));
    let answer: Vec<&String> = second[resync + 1..]
        .iter()
        .take_while(|l| !l.contains(" OK FETCH") && !l.contains(" OK "))
        .collect();
    assert!(
        answer.iter().any(|l| l.contains("* VANISHED (EARLIER) 2")),
        "{answer:#?}"
    );
    let fetches: Vec<&&String> = answer.iter().filter(|l| l.contains(" FETCH (")).collect();
    assert_eq!(fetches.len(), 1, "only UID 5 changed: {answer:#?}");
    assert!(
        fetches[0].contains("UID 5") && fetches[0].contains("\\Flagged"),
        "{answer:#?}"
    );
}
