//! Quota limits from the configuration (issue 19, first slice): `mail.quota`, a passwd-file
//! user's Dovecot-style `userdb_quota_rule`, and `[mail.user_quota]` are written into the
//! Maildir's Maildir++ `maildirsize` at login; GETQUOTAROOT reports them (as Thunderbird
//! asks, `GETQUOTAROOT INBOX`); an APPEND, COPY or MULTIAPPEND past them is `NO [OVERQUOTA]`
//! and leaves no file in `tmp/`, `new/` or `cur/`; expunging brings the user back under.
mod common;

use std::fs;
use std::path::Path;

use common::{ImapClient, Options, TestServer};

/// Every message file in the Maildir's INBOX `tmp/`, `new/` and `cur/`, and Archive's, by
/// folder, `tmp/` or not, and base name (a SELECT moves `new/` to `cur/` and flags rename).
fn files(maildir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for (folder, dir) in [
        ("INBOX", maildir.to_path_buf()),
        ("Archive", maildir.join(".Archive")),
    ] {
        for sub in ["tmp", "new", "cur"] {
            if let Ok(rd) = fs::read_dir(dir.join(sub)) {
                for e in rd {
                    let name = e.expect("entry").file_name().to_string_lossy().into_owned();
                    let base = name.split(':').next().unwrap_or_default().to_string();
                    v.push(format!("{folder} {} {base}", sub == "tmp"));
                }
            }
        }
    }
    v.sort();
    v
}

fn quota_line(c: &mut ImapClient) -> String {
    let lines = c.ok("GETQUOTAROOT INBOX");
    assert!(
        lines
            .iter()
            .any(|l| l == "* QUOTAROOT INBOX \"User quota\""),
        "{lines:?}"
    );
    lines
        .into_iter()
        .find(|l| l.starts_with("* QUOTA \"User quota\""))
        .expect("QUOTA")
}

#[test]
fn a_passwd_file_quota_rule_limits_appends_and_copies() {
    let server = TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        passwd_extra: vec![(
            common::USER,
            "userdb_quota_rule=*:storage=4k userdb_quota_rule2=*:messages=7",
        )],
        mail_extra: Some("quota = \"1M\"\n".into()),
        ..Options::default()
    });
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    // The fixture: 1984 bytes in 5 messages over its folders (2 KiB used of 4).
    assert_eq!(
        quota_line(&mut c),
        "* QUOTA \"User quota\" (STORAGE 2 4 MESSAGE 5 7)"
    );
    let maildir = server.maildir();
    let limits = fs::read_to_string(maildir.join("maildirsize")).expect("maildirsize");
    assert!(limits.starts_with("4096S,7C\n"), "{limits}");
    // 3 KiB more would pass 4 KiB: refused, and nothing is left behind.
    let before = files(&maildir);
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(3000));
    let (_, tagged) = c.command(&format!("APPEND INBOX {{{}+}}\r\n{big}", big.len()));
    assert!(tagged.contains("NO [OVERQUOTA]"), "{tagged}");
    // MULTIAPPEND: all or nothing.
    let small = "Subject: s\r\n\r\nhi\r\n";
    let (_, tagged) = c.command(&format!(
        "APPEND INBOX {{{}+}}\r\n{small} {{{}+}}\r\n{big}",
        small.len(),
        big.len()
    ));
    assert!(tagged.contains("NO [OVERQUOTA]"), "{tagged}");
    // COPY of everything would double the use.
    c.ok("SELECT INBOX");
    let (_, tagged) = c.command("COPY 1:* Archive");
    assert!(tagged.contains("NO [OVERQUOTA]"), "{tagged}");
    assert_eq!(files(&maildir), before);
    // Small ones fit; the count limit (7) then stops the third.
    for _ in 0..2 {
        c.ok(&format!("APPEND INBOX {{{}+}}\r\n{small}", small.len()));
    }
    let (_, tagged) = c.command(&format!("APPEND INBOX {{{}+}}\r\n{small}", small.len()));
    assert!(tagged.contains("NO [OVERQUOTA]"), "{tagged}");
    // The 7th message reached 100 % of the count: the warning came into INBOX (it is
    // delivered even then, as Dovecot's quota-warning script does), and counts.
    assert!(quota_line(&mut c).contains("MESSAGE 8 7"));
    // Over quota, the user can still read, flag, and delete, and expunging frees room.
    c.ok("FETCH 1 (FLAGS BODY.PEEK[])");
    c.ok("STORE 1:2 +FLAGS (\\Deleted)");
    c.ok("EXPUNGE");
    assert!(quota_line(&mut c).contains("MESSAGE 6 7"));
    c.ok(&format!("APPEND INBOX {{{}+}}\r\n{small}", small.len()));
    c.logout();
}

#[test]
fn the_configured_default_and_table_apply_to_users_without_a_rule() {
    let server = TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        mail_extra: Some(format!(
            "quota = \"1M\"\n[mail.user_quota]\n{} = \"2M\"\n",
            common::USER2
        )),
        ..Options::default()
    });
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    assert_eq!(
        quota_line(&mut c),
        "* QUOTA \"User quota\" (STORAGE 2 1024)"
    );
    c.logout();
    let mut b = ImapClient::login(&server, common::USER2, common::PASSWORD2);
    let line = quota_line(&mut b);
    assert!(line.ends_with(" 2048)"), "{line}");
    b.logout();
}

/// Python's imaplib asks as Thunderbird does (`GETQUOTAROOT INBOX`) and parses the answers:
/// `tests/python/test_quota.py`.
#[test]
#[cfg_attr(
    nestbox_missing_python3,
    ignore = "python3 is not installed (the imaplib client)"
)]
fn imaplib_reads_the_quota_as_thunderbird_asks() {
    if !common::require_tool("python3", "the imaplib quota suite") {
        return;
    }
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: the test Dovecot has no quota plugin");
        return;
    }
    let server = TestServer::start_with(Options {
        mail_extra: Some("quota = \"1M\"\n".into()),
        ..Options::default()
    });
    let out = std::process::Command::new("python3")
        .args(["-m", "unittest", "-v", "test_quota"])
        .current_dir(common::repo_root().join("tests").join("python"))
        .envs(server.client_env())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success() && stderr.contains("Ran 2 tests"),
        "test_quota.py failed (exit {:?}); server log:\n{}",
        out.status.code(),
        server.log()
    );
}
