//! APPEND at the socket (issue 14): latency with clients that write a literal and its closing
//! CRLF separately, and uploads that run beside other programs' deliveries.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{ImapClient, PASSWORD, TestServer, USER};

fn message(i: usize) -> Vec<u8> {
    format!(
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: upload {i}\r\n\
         Message-ID: <upload-{i}@test>\r\n\r\n{}\r\n",
        "body line\r\n".repeat(40)
    )
    .into_bytes()
}

/// Python's `imaplib` writes the literal and its CRLF in two writes with Nagle on: the CRLF
/// leaves only once the server has acknowledged the literal. A server that delays that ACK
/// (Linux: up to 40 ms once it has answered on the connection) makes every APPEND take 40 ms
/// more; Dovecot takes 1.5-4 ms. So APPENDs written that way are timed against the same
/// APPENDs with the CRLF in the literal's write, alternating on one connection: on a loaded
/// machine both slow down alike (a fixed bound once failed at 35 ms per APPEND beside two
/// other test suites), while a delayed ACK adds its 40 ms to the split ones only.
#[test]
fn appends_with_the_crlf_in_a_separate_write_are_not_held_by_a_delayed_ack() {
    let server = TestServer::start();
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    // Warm up: the folder open and the first save are not what is measured.
    assert!(
        c.append_split_writes("INBOX", &message(0))
            .starts_with("OK")
    );
    let n = 100;
    let (mut split, mut one) = (Vec::new(), Vec::new());
    for i in 1..=n {
        let t = Instant::now();
        let status = c.append_split_writes("INBOX", &message(2 * i - 1));
        assert!(status.starts_with("OK"), "APPEND {i}: {status}");
        split.push(t.elapsed());
        let t = Instant::now();
        let status = c.append_one_write("INBOX", &message(2 * i));
        assert!(status.starts_with("OK"), "APPEND {i}: {status}");
        one.push(t.elapsed());
    }
    split.sort();
    one.sort();
    let (split_median, one_median) = (split[n / 2], one[n / 2]);
    eprintln!(
        "{n} APPENDs each way: split writes median {split_median:?} (slowest {:?}), \
         one write median {one_median:?}",
        split[n - 1]
    );
    assert!(
        split_median < one_median + Duration::from_millis(15),
        "split writes {split_median:?} against {one_median:?} per APPEND: the literal's ACK \
         is being delayed"
    );
    c.ok("SELECT INBOX");
    assert_eq!(c.uids_and_flags().len(), 2 * n + 1);
}

/// A long upload (as mbsync pushes a mailbox) while an MTA delivers into `new/` and a mail
/// reader renames a file in `cur/`: the upload's shortcut (no directory read per APPEND) must
/// not hide anyone else's change. Every message ends up once, with UIDs in order of
/// numbering, and the outside rename shows as a flag change.
#[test]
fn outside_changes_during_a_long_upload_are_seen() {
    let server = TestServer::start();
    let md = server.maildir();
    let mut up = ImapClient::login(&server, USER, PASSWORD);
    let mut watcher = ImapClient::login(&server, USER, PASSWORD);
    watcher.ok("SELECT INBOX");
    let n = 300;
    let mut outside = Vec::new();
    for i in 0..n {
        let status = up.append_split_writes("INBOX", &message(i));
        assert!(status.starts_with("OK [APPENDUID"), "APPEND {i}: {status}");
        if i % 60 == 30 {
            let name = format!("1800000{i:03}.M1P1.outside,S=40");
            let body = format!("Subject: outside {i}\n\nbody\n");
            fs::write(md.join("tmp").join(&name), body).expect("write tmp");
            fs::rename(md.join("tmp").join(&name), md.join("new").join(&name)).expect("deliver");
            outside.push(name);
        }
    }
    // A mail reader marks the first outside message read: new/ -> cur/ with S.
    let first = &outside[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    let moved_to = md.join("cur").join(format!("{first}:2,S"));
    loop {
        // nestbox may have moved it to cur/ itself (a SELECT does): rename wherever it is.
        let in_new = md.join("new").join(first);
        let in_cur = md.join("cur").join(format!("{first}:2,"));
        if fs::rename(&in_new, &moved_to).is_ok() || fs::rename(&in_cur, &moved_to).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "cannot find {first} to rename");
        std::thread::sleep(Duration::from_millis(20));
    }
    let expected = n + outside.len();
    // Both the uploading session and one that had INBOX selected all along agree.
    for c in [&mut up, &mut watcher] {
        c.ok("SELECT INBOX");
        let got = c.uids_and_flags();
        assert_eq!(got.len(), expected, "{got:?}");
        let uids: Vec<u32> = got.iter().map(|(u, _)| *u).collect();
        assert_eq!(uids, (1..=expected as u32).collect::<Vec<_>>());
        assert_eq!(
            got.iter()
                .filter(|(_, f)| f.contains(&"\\Seen".to_string()))
                .count(),
            1,
            "the outside rename is one \\Seen message"
        );
    }
    let ul = fs::read_to_string(md.join("dovecot-uidlist")).expect("uidlist");
    assert_eq!(ul.lines().count(), 1 + expected, "{ul}");
}
