//! Dovecot compatibility: a Maildir written by Dovecot (`dovecot-uidlist` format 3 with UID gaps
//! and records for files that are gone, `dovecot-keywords`, keyword letters in file names) keeps
//! its UIDVALIDITY, every UID and every keyword when served by nestbox, across a restart, and
//! after nestbox's own files are deleted.
//!
//! The fixture `tests/fixtures/maildirs/dovecot/` was produced by real Dovecot 2.3 (Debian
//! bookworm): `make_dovecot_fixture` below (ignored; run it with
//! `cargo test --test dovecot_compat -- --ignored make_dovecot_fixture` and Dovecot installed)
//! appends, flags and expunges through Dovecot, copies the Maildir without Dovecot's binary
//! index files, and then sets UIDVALIDITY 1700000000, spreads the UIDs out and raises the next
//! UID to 120 in the uidlist (two records were then given the optional `S<size>`/`W<vsize>`
//! fields by hand), which Dovecot itself then serves unchanged (checked by running
//! this file with `NESTBOX_TEST_SERVER=dovecot`).
//!
//! `pop3_uidl_formats_equal_dovecots` compares the POP3 UIDLs of each `pop3.uidl_format`
//! with Dovecot's own pop3 run with the same `pop3_uidl_format` on the same Maildir.

mod common;

use common::{ImapClient, Kind, Options, PASSWORD, TestServer, USER};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    common::fixtures_dir().join("maildirs").join("dovecot")
}

/// What the fixture's own files say: folder dir -> (uidvalidity, uid -> sorted flags), for the
/// records whose message file exists, with keyword letters mapped through dovecot-keywords.
fn expected_from_files(maildir: &Path, folder_dir: &str) -> (u32, BTreeMap<u32, Vec<String>>) {
    let d = maildir.join(folder_dir);
    let uidlist = fs::read_to_string(d.join("dovecot-uidlist")).expect("dovecot-uidlist");
    let mut lines = uidlist.lines();
    let header = lines.next().expect("uidlist header");
    assert!(header.starts_with("3 "), "format 3: {header}");
    let uidvalidity: u32 = header
        .split(' ')
        .find_map(|f| f.strip_prefix('V'))
        .and_then(|v| v.parse().ok())
        .expect("V field");
    let keywords: BTreeMap<char, String> = fs::read_to_string(d.join("dovecot-keywords"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (n, name) = l.split_once(' ')?;
            let n: u8 = n.parse().ok()?;
            Some(((b'a' + n) as char, name.to_string()))
        })
        .collect();
    // Base name -> info letters, from cur/ and new/.
    let mut files = BTreeMap::new();
    for sub in ["cur", "new"] {
        // Git keeps no empty directories: a fixture may lack `new/`.
        let Ok(entries) = fs::read_dir(d.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let (base, info) = name.split_once(":2,").unwrap_or((&name, ""));
            files.insert(base.to_string(), info.to_string());
        }
    }
    let mut out = BTreeMap::new();
    for rec in lines {
        let (head, base) = rec.split_once(" :").expect("record with :filename");
        let uid: u32 = head.split(' ').next().unwrap().parse().expect("uid");
        let Some(info) = files.get(base) else {
            continue; // a record for a file that is gone: not a message
        };
        let mut flags: Vec<String> = info
            .chars()
            .filter_map(|c| match c {
                'D' => Some("\\Draft".to_string()),
                'F' => Some("\\Flagged".to_string()),
                'R' => Some("\\Answered".to_string()),
                'S' => Some("\\Seen".to_string()),
                'T' => Some("\\Deleted".to_string()),
                'a'..='z' => keywords.get(&c).cloned(),
                _ => None,
            })
            .collect();
        flags.sort();
        out.insert(uid, flags);
    }
    (uidvalidity, out)
}

/// (IMAP name, Maildir++ dir) of the fixture's folders.
const FOLDERS: &[(&str, &str)] = &[("INBOX", ""), ("Lists/Rust", ".Lists.Rust")];

fn check_served(server: &TestServer, when: &str) {
    let mut c = ImapClient::login(server, USER, PASSWORD);
    for (name, dir) in FOLDERS {
        let (uidvalidity, expected) = expected_from_files(&fixture(), dir);
        let untagged = c.ok(&format!("SELECT \"{name}\""));
        let want = format!("* OK [UIDVALIDITY {uidvalidity}]");
        assert!(
            untagged.iter().any(|l| l.starts_with(&want)),
            "{when}: SELECT {name} must report {want}: {untagged:?}"
        );
        if dir.is_empty() {
            assert!(
                untagged.iter().any(|l| l.starts_with("* OK [UIDNEXT 120]")),
                "{when}: UIDNEXT comes from the uidlist's N field: {untagged:?}"
            );
        }
        let got: BTreeMap<u32, Vec<String>> = c.uids_and_flags().into_iter().collect();
        assert_eq!(got, expected, "{when}: UIDs and flags of {name}");
    }
    c.logout();
}

#[test]
fn dovecot_maildir_keeps_uids_and_keywords() {
    if Kind::from_env() == Kind::Dovecot && !common::require_tool("dovecot", "reference") {
        return;
    }
    // The fixture's exact content, so that a change to it is a conscious one.
    let (v, inbox) = expected_from_files(&fixture(), "");
    assert_eq!(v, 1_700_000_000);
    assert!(inbox.len() >= 5, "fixture INBOX: {inbox:?}");
    let uids: Vec<u32> = inbox.keys().copied().collect();
    assert!(
        uids.windows(2).any(|w| w[1] > w[0] + 1),
        "fixture must have UID gaps: {uids:?}"
    );
    let all_flags: BTreeSet<&String> = inbox.values().flatten().collect();
    for k in ["$Forwarded", "Junk", "$label1"] {
        assert!(all_flags.iter().any(|f| f.as_str() == k), "keyword {k}");
    }

    let mut server = TestServer::start_with(Options {
        seed_maildir: Some(fixture()),
        ..Options::default()
    });
    check_served(&server, "first start");
    server.restart();
    check_served(&server, "after restart");

    server.stop();
    // Delete every file nestbox (or Dovecot, when validating) created that the fixture lacks
    // and that is not Dovecot's Maildir format: index, caches, locks.
    let md = server.maildir();
    remove_foreign_files(&md, &fixture());
    server.restart();
    check_served(&server, "after deleting the server's own files");

    // New mail gets the uidlist's next UID (its N field, 120), not max(UID) + 1.
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    let (_, status) = c.command("APPEND INBOX {13+}\r\nSubject: x\r\n\r\n");
    assert!(
        status.starts_with("OK [APPENDUID 1700000000 120]"),
        "APPEND after the fixture: {status}"
    );
    c.logout();
}

/// `pop3.uidl_format`: for each supported form of Dovecot's `pop3_uidl_format`, nestbox's
/// UIDL listing of a Dovecot Maildir equals the one Dovecot's own pop3 gives with that
/// setting (the `P` field a migration left wins in both; `%g` is the `G` field, else the
/// base name; `%f` the file name up to its `:`). Dovecot 2.3 takes only the short
/// variables here (`%{uid}` is its config error); the long forms and 2.4's `hex(8)` are
/// checked against these by `pop3::uidl_format`'s unit tests.
#[test]
#[cfg_attr(
    nestbox_missing_dovecot_pop3,
    ignore = "Dovecot's pop3 (dovecot-pop3d) is not installed"
)]
fn pop3_uidl_formats_equal_dovecots() {
    if !common::require_tool(
        common::dovecot_pop3::PROGRAM,
        "Dovecot's POP3 (dovecot-pop3d)",
    ) {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let md = common::dovecot_pop3::uidl_maildir(d.path());
    for format in [
        "%08Xu%08Xv",
        "%u.%v",
        "%f",
        "%g",
        "%u-%v",
        "%f_%g",
        "%Uf",
        "%v%05u",
        "%-4.f%Xu",
        "%3.8g",
    ] {
        let dovecot = common::dovecot_pop3::uidls(&md, format);
        assert_eq!(dovecot.len(), 7, "{format}: {dovecot:?}");
        let server = TestServer::start_kind(
            Kind::Nestbox,
            Options {
                seed_maildir: Some(md.clone()),
                pop3_extra: Some(format!("uidl_format = {format:?}\n")),
                ..Options::default()
            },
        );
        let mut pop = common::Pop3Client::login(&server, USER, PASSWORD);
        let ours = pop.uidl();
        pop.quit();
        assert_eq!(ours, dovecot, "UIDL with {format} (nestbox, Dovecot)");
    }
}

/// Remove files under `maildir` that are not in `fixture`, except message files (cur/ new/)
/// and the Dovecot-format files (`dovecot-uidlist`, `dovecot-keywords`, `subscriptions`,
/// `maildirfolder`) which are the shared truth.
fn remove_foreign_files(maildir: &Path, fixture: &Path) {
    let keep = [
        "dovecot-uidlist",
        "dovecot-keywords",
        "subscriptions",
        "maildirfolder",
    ];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(maildir.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                if name != "cur" && name != "new" && name != "tmp" {
                    stack.push(r);
                }
                continue;
            }
            if keep.contains(&name.as_str()) || fixture.join(&r).exists() {
                continue;
            }
            eprintln!("removing server-owned file {}", r.display());
            fs::remove_file(e.path()).expect("remove");
        }
    }
}

/// Regenerate the fixture with real Dovecot (see the module doc). Not part of the suite.
#[test]
#[ignore]
fn make_dovecot_fixture() {
    if !common::require_tool("dovecot", "produces the fixture") {
        return;
    }
    let mut server = TestServer::start_kind(Kind::Dovecot, Options::default());
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    let msg = |i: u32| {
        format!(
            "From: Dovecot Fixture <fixture@example.org>\r\nTo: alice@example.org\r\n\
             Subject: fixture {i}\r\nMessage-ID: <dc-{i}@example.org>\r\n\r\nBody {i}.\r\n"
        )
    };
    let flags = [
        "(\\Seen)",
        "()",
        "(\\Seen $Forwarded)",
        "(\\Flagged Junk)",
        "(\\Answered \\Seen)",
        "($label1 Junk)",
        "(\\Draft)",
        "(\\Seen \\Flagged $Forwarded $label1)",
        "()",
        "(\\Deleted)",
    ];
    c.ok("CREATE Lists/Rust");
    for (i, f) in flags.iter().enumerate() {
        let m = msg(i as u32 + 1);
        c.ok(&format!("APPEND INBOX {f} {{{}+}}\r\n{m}", m.len()));
    }
    for i in 0..3 {
        let m = msg(100 + i);
        c.ok(&format!(
            "APPEND Lists/Rust (\\Seen) {{{}+}}\r\n{m}",
            m.len()
        ));
    }
    c.ok("SELECT INBOX");
    c.ok("UID STORE 2,3,7 +FLAGS.SILENT (\\Deleted)");
    c.ok("UID EXPUNGE 2,3,7");
    c.ok("SELECT Lists/Rust");
    c.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)");
    c.ok("EXPUNGE");
    c.logout();
    server.stop();

    let out = fixture();
    let _ = fs::remove_dir_all(&out);
    let md = server.maildir();
    for (_, dir) in FOLDERS {
        let src = md.join(dir);
        let dst = out.join(dir);
        for sub in ["cur", "new"] {
            fs::create_dir_all(dst.join(sub)).unwrap();
            for e in fs::read_dir(src.join(sub)).unwrap().flatten() {
                fs::copy(e.path(), dst.join(sub).join(e.file_name())).unwrap();
            }
        }
        for f in ["dovecot-keywords", "maildirfolder"] {
            if src.join(f).exists() {
                fs::copy(src.join(f), dst.join(f)).unwrap();
            }
        }
        // UIDVALIDITY 1700000000 (+1 for the folder), UIDs spread out, next UID 120.
        let uidlist = fs::read_to_string(src.join("dovecot-uidlist")).unwrap();
        let mut lines = uidlist.lines();
        let header = lines.next().unwrap();
        let v = if dir.is_empty() {
            1_700_000_000
        } else {
            1_700_000_001
        };
        let header: Vec<String> = header
            .split(' ')
            .map(|f| match f.chars().next() {
                Some('V') => format!("V{v}"),
                Some('N') => "N120".to_string(),
                _ => f.to_string(),
            })
            .collect();
        let mut text = header.join(" ") + "\n";
        for rec in lines {
            let (uid, rest) = rec.split_once(' ').unwrap();
            let uid: u32 = uid.parse().unwrap();
            text.push_str(&format!("{} {rest}\n", uid * 11 + 3));
        }
        fs::write(dst.join("dovecot-uidlist"), text).unwrap();
    }
    fs::copy(md.join("subscriptions"), out.join("subscriptions")).ok();
    eprintln!("wrote {}", out.display());
}
