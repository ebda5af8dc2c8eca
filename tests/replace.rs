//! REPLACE (RFC 8508) with messages big enough to be spooled to disk (past the 256 KiB a
//! session keeps in memory), as a mail client saving a draft with an attachment does again and
//! again: each save leaves exactly one draft, whole; and a save the quota refuses leaves the
//! previous draft in place (the new one is saved before the old one goes).
mod common;

use common::{ImapClient, Options, TestServer};

fn draft(n: usize, size: usize) -> String {
    let body: String = "0123456789abcdef\r\n".repeat(size / 18);
    format!("Subject: draft {n}\r\nContent-Type: text/plain\r\n\r\n{body}")
}

fn subjects(c: &mut ImapClient) -> Vec<String> {
    c.ok("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)")
        .into_iter()
        .filter(|l| l.contains(" FETCH "))
        .collect()
}

#[test]
fn big_drafts_replaced_again_and_again() {
    let server = TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        passwd_extra: vec![(common::USER, "userdb_quota_rule=*:storage=1500k")],
        ..Options::default()
    });
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT Drafts");
    let first = draft(1, 400_000);
    c.ok(&format!(
        "APPEND Drafts (\\Draft) {{{}+}}\r\n{first}",
        first.len()
    ));
    for n in 2..=4 {
        let d = draft(n, 400_000);
        let (lines, tagged) = c.command(&format!(
            "UID REPLACE {} Drafts (\\Draft) {{{}+}}\r\n{d}",
            n - 1,
            d.len()
        ));
        assert!(tagged.contains("OK"), "{tagged} {lines:?}");
        assert!(
            lines.iter().any(|l| l.starts_with("* OK [APPENDUID ")),
            "{lines:?}"
        );
        let s = subjects(&mut c);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].contains(&format!("draft {n}")), "{s:?}");
        assert!(s[0].contains(&format!("RFC822.SIZE {}", d.len())), "{s:?}");
    }
    // 1,500 KiB of quota, 400 KB in use by the draft (and the fixture's few KB): a 1.2 MB draft
    // does not fit beside the old one, so the REPLACE is refused and the old draft stays.
    let huge = draft(5, 1_200_000);
    let (_, tagged) = c.command(&format!(
        "UID REPLACE 4 Drafts (\\Draft) {{{}+}}\r\n{huge}",
        huge.len()
    ));
    assert!(tagged.contains("NO [OVERQUOTA]"), "{tagged}");
    let s = subjects(&mut c);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].contains("draft 4"), "{s:?}");
    c.logout();
}
