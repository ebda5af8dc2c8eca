//! What a client can make the server hold (issue 15, item 4), after login and at the door:
//! FETCH of big messages by clients that do not read, the cap on connections not logged in,
//! and one log line when a limit bites.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Kind, Options, PASSWORD, TestServer, USER};

/// Messages in the folder and the size of each file, as stored (LF line ends).
const MESSAGES: usize = 16;
const MESSAGE_BYTES: usize = 20 << 20;

/// Growth of the server's RSS allowed while ten clients have pipelined FETCHes of all 16
/// messages and read nothing: each connection may hold its output buffer (256 KiB), one
/// piece of a file being converted (64 KiB, up to 128 KiB once CRLF) and a big message's
/// metadata; the rest is allocator and thread slack. Before issue 15 each such
/// connection held ~275 MB.
const RSS_BOUND_KIB: u64 = 40 * 1024;

/// The server's resident memory, in KiB: the front and its workers.
fn rss_kib(pid: u32) -> u64 {
    common::tree_rss_kib(pid)
}

/// Message `i`: a header and ~20 MB of LF-terminated lines that name the message and the
/// line, so every byte is where it belongs only if it arrived in order. Long lines: the
/// debug build converts line ends at a few MB/s per thousand lines.
fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: big@example.org\nTo: {USER}@example.org\nSubject: big {i}\nMessage-ID: <big{i}@example.org>\n\n"
    )
    .into_bytes();
    let mut line = 0u64;
    while m.len() < MESSAGE_BYTES {
        let l = format!(
            "message {i:02} line {line:08} {}\n",
            "abcdefghij".repeat(100)
        );
        m.extend_from_slice(l.as_bytes());
        line += 1;
    }
    m.truncate(MESSAGE_BYTES - 1);
    m.push(b'\n');
    m
}

/// `raw` with bare LFs as CRLF, as IMAP sends it.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for (k, &b) in raw.iter().enumerate() {
        if b == b'\n' && (k == 0 || raw[k - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Writes the big messages into `cur/`; half of the names carry their sizes (`S=`, `W=`),
/// half do not, so both ways of learning a size are used.
fn fill_maildir(maildir: &Path) -> (Vec<u8>, usize) {
    let first = crlf(&message(0));
    for i in 0..MESSAGES {
        let m = message(i);
        let name = if i % 2 == 0 {
            let w = crlf(&m).len();
            format!(
                "{}.M{i}P1.bounds,S={},W={w}:2,S",
                1_700_000_000 + i,
                m.len()
            )
        } else {
            format!("{}.M{i}P1.bounds:2,S", 1_700_000_000 + i)
        };
        std::fs::write(maildir.join("cur").join(name), &m).expect("write message");
    }
    (first, crlf(&message(1)).len())
}

/// A raw connection: reads lines and literals.
struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn open(server: &TestServer) -> Conn {
        let s = server.connect();
        s.set_read_timeout(Some(Duration::from_secs(120))).ok();
        let w = s.try_clone().expect("clone");
        Conn {
            r: BufReader::new(s),
            w,
        }
    }

    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.r.read_until(b'\n', &mut buf).expect("read line");
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).expect("send");
    }

    /// Reads up to the tagged answer of `tag`, which must be OK.
    fn until_ok(&mut self, tag: &str) {
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "connection closed before {tag} answered");
            if l.starts_with(&format!("{tag} ")) {
                assert!(l.starts_with(&format!("{tag} OK")), "{l}");
                return;
            }
        }
    }

    fn logged_in(server: &TestServer) -> Conn {
        let mut c = Conn::open(server);
        assert!(c.line().starts_with("* OK"));
        c.send(&format!("l LOGIN {USER} {PASSWORD}\r\ns SELECT INBOX\r\n"));
        c.until_ok("l");
        c.until_ok("s");
        c
    }

    /// Reads the FETCH responses up to the tagged OK of `tag`: for each, the text before
    /// its literal and the literal.
    fn fetched(&mut self, tag: &str) -> Vec<(String, Vec<u8>)> {
        let mut got = Vec::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "connection closed inside the FETCH");
            if l.starts_with(&format!("{tag} ")) {
                assert!(l.starts_with(&format!("{tag} OK")), "{l}");
                return got;
            }
            let Some(open) = l.rfind('{') else {
                continue;
            };
            let n: usize = l[open + 1..]
                .trim_end()
                .trim_end_matches('}')
                .parse()
                .expect("literal length");
            let mut lit = vec![0u8; n];
            self.r.read_exact(&mut lit).expect("read literal");
            let rest = self.line();
            assert!(rest.ends_with(")\r\n"), "after the literal of {l}: {rest}");
            got.push((l[..open].to_string(), lit));
        }
    }
}

/// Ten logged-in clients pipeline FETCHes of 16 messages of 20 MB each (whole bodies,
/// BINARY, a partial range) and read nothing: the server's RSS grows by at most
/// [`RSS_BOUND_KIB`] in all. Then they read, and every byte arrives.
#[test]
fn clients_that_do_not_read_cannot_make_fetch_hold_their_messages() {
    if Kind::from_env() == Kind::Dovecot {
        return; // nestbox's bound.
    }
    let t0 = Instant::now();
    let server = TestServer::start();
    let (first, second_len) = fill_maildir(&server.maildir());
    eprintln!("filled in {:?}", t0.elapsed());
    let pid = server.pid().expect("pid");
    let mut conns: Vec<Conn> = (0..10).map(|_| Conn::logged_in(&server)).collect();
    let before = rss_kib(pid);
    // 8 x BODY[] followed by a NOOP (pipelined), 1 x BINARY[], 1 x a partial BODY[].
    let commands = |k: usize| match k {
        8 => "b UID FETCH 1:* BINARY.PEEK[]\r\n",
        9 => "p FETCH 1:* BODY.PEEK[]<0.30000000>\r\n",
        _ => "f FETCH 1:* BODY.PEEK[]\r\nn NOOP\r\n",
    };
    for (k, c) in conns.iter_mut().enumerate() {
        c.send(commands(k));
    }
    // While nobody reads, the server fills the sockets and must then wait.
    let mut peak = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "server RSS: {before} KiB before, at most {peak} KiB while 10 clients did not read (+{} KiB)",
        peak.saturating_sub(before)
    );
    assert!(
        peak < before + RSS_BOUND_KIB,
        "RSS {before} KiB -> {peak} KiB while 10 clients did not read their FETCHes"
    );
    // Now they read: sizes of every body, the whole of the first, the start of the second.
    for (k, c) in conns.iter_mut().enumerate() {
        let tag = match k {
            8 => "b",
            9 => "p",
            _ => "f",
        };
        {
            let got = c.fetched(tag);
            assert_eq!(got.len(), MESSAGES, "connection {k} {tag}");
            for (i, (text, lit)) in got.iter().enumerate() {
                let want_label = match tag {
                    "b" => "BINARY[] ",
                    "p" => "BODY[]<0> ",
                    _ => "BODY[] ",
                };
                assert!(
                    text.starts_with(&format!("* {} FETCH (", i + 1)) && text.ends_with(want_label),
                    "{text}"
                );
                let want = format!("message {i:02} line 00000000 ");
                assert!(
                    lit.windows(want.len())
                        .take(400)
                        .any(|w| w == want.as_bytes()),
                    "message {} starts with its own lines",
                    i + 1
                );
                assert!(lit.ends_with(b"\r\n") && !lit.ends_with(b"\r\r\n"));
            }
            assert!(got[0].1 == first, "connection {k} {tag}: message 1 differs");
            assert_eq!(got[1].1.len(), second_len);
            for (_, lit) in &got {
                assert!(lit.len() > MESSAGE_BYTES, "CRLF adds to every line");
            }
        }
        if tag == "f" {
            c.until_ok("n");
        }
    }
    eprintln!("read in {:?}", t0.elapsed());
    let after = rss_kib(pid);
    eprintln!("server RSS after the clients read: {after} KiB");
}

/// A folder of small and big messages, fetched whole and in parts: big ones are sent from
/// their files between small ones rendered in chunks, in order, each byte right.
#[test]
fn small_and_big_messages_come_in_order() {
    let server = TestServer::start();
    let sizes = [3_000, 400_000, 5_000, 1_500_000, 200, 300_000, 260_000, 10];
    let mut want = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let mut m = format!("Subject: m{i}\n\n").into_bytes();
        while m.len() < n {
            m.extend_from_slice(format!("m{i} {}\n", m.len()).as_bytes());
        }
        let name = format!("{}.M{i}P2.bounds:2,", 1_700_000_100 + i);
        std::fs::write(server.maildir().join("cur").join(name), &m).expect("write");
        want.push(crlf(&m));
    }
    let mut c = Conn::logged_in(&server);
    c.send("f FETCH 1:* (UID BODY.PEEK[] RFC822.SIZE)\r\n");
    let got = c.fetched("f");
    assert_eq!(got.len(), sizes.len());
    for (i, (text, lit)) in got.iter().enumerate() {
        assert!(
            text.starts_with(&format!("* {} FETCH (UID ", i + 1)),
            "{text}"
        );
        assert!(lit == &want[i], "message {} differs", i + 1);
    }
    c.send("t FETCH 1:* BODY.PEEK[TEXT]<5.100000>\r\n");
    let got = c.fetched("t");
    for (i, (_, lit)) in got.iter().enumerate() {
        let text_start = want[i]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("blank")
            + 4;
        let text = &want[i][text_start..];
        let from = 5.min(text.len());
        let to = (from + 100_000).min(text.len());
        assert!(
            lit[..] == text[from..to],
            "text of message {} differs",
            i + 1
        );
    }
    // RFC822.SIZE, learnt from the files on the way, agrees with the literals.
    c.send("s FETCH 1:* RFC822.SIZE\r\n");
    let mut n = 0;
    loop {
        let l = c.line();
        if l.starts_with("s OK") {
            break;
        }
        let size: usize = l
            .trim_end()
            .trim_end_matches(')')
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("size");
        assert_eq!(size, want[n].len(), "{l}");
        n += 1;
    }
    assert_eq!(n, sizes.len());
}

/// At most `limits.max_unauthenticated` connections wait for a login: the next gets
/// `* BYE`, a burst of refusals gives one log line, and a login frees its place.
#[test]
fn connections_not_logged_in_are_capped_and_logged_once() {
    if Kind::from_env() == Kind::Dovecot {
        return; // limits.max_unauthenticated is nestbox's.
    }
    let server = TestServer::start_with(Options {
        extra_limits: Some("max_unauthenticated = 3\n"),
        ..Options::default()
    });
    // The readiness probe has logged out; let its connection end.
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting: Vec<Conn> = (0..3)
        .map(|_| {
            let mut c = Conn::open(&server);
            let l = c.line();
            assert!(l.starts_with("* OK"), "{l}");
            c
        })
        .collect();
    for _ in 0..20 {
        let mut c = Conn::open(&server);
        let l = c.line();
        assert!(l.starts_with("* BYE Too many connections"), "{l}");
        assert_eq!(c.line(), "", "closed after the BYE");
    }
    // One logs in: its place is free for a newcomer, and the session goes on.
    let c = &mut waiting[0];
    c.send(&format!("l LOGIN {USER} {PASSWORD}\r\n"));
    c.until_ok("l");
    let mut newcomer = Conn::open(&server);
    let l = newcomer.line();
    assert!(l.starts_with("* OK"), "{l}");
    let mut refused = Conn::open(&server);
    assert!(refused.line().starts_with("* BYE"));
    waiting[0].send("n NOOP\r\n");
    waiting[0].until_ok("n");
    // One that leaves before logging in frees its place too.
    drop(waiting.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Conn::open(&server);
        if c.line().starts_with("* OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the place of a closed connection stays taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection refused"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for 21 refusals:\n{log}");
    assert!(
        lines[0].contains("limits.max_unauthenticated = 3"),
        "{}",
        lines[0]
    );
}

/// A client that keeps sending commands and never reads the answers: once its answers
/// fill the socket, the server stops reading its commands (the client's writes block),
/// and holds no more than its output buffer meanwhile.
#[test]
fn a_client_that_never_reads_is_not_read_from_either() {
    if Kind::from_env() == Kind::Dovecot {
        return; // nestbox's bound.
    }
    let server = TestServer::start();
    let pid = server.pid().expect("pid");
    let mut c = Conn::logged_in(&server);
    let before = rss_kib(pid);
    let block = "n NOOP\r\n".repeat(8192);
    c.w.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0usize;
    let mut stuck_since: Option<Instant> = None;
    let start = Instant::now();
    loop {
        match c.w.write(block.as_bytes()) {
            Ok(n) => {
                sent += n;
                stuck_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *stuck_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("write: {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(60) && sent < 512 << 20,
            "the server keeps reading commands whose answers nobody reads ({sent} bytes sent)"
        );
    }
    let after = rss_kib(pid);
    eprintln!(
        "{sent} bytes of commands taken before the server stopped reading; RSS {before} -> {after} KiB"
    );
    assert!(after < before + 16 * 1024, "RSS {before} -> {after} KiB");
}

/// The tagged answer to a LOGIN of the default user on a new connection.
fn login_answer(server: &TestServer) -> String {
    let mut s = server.connect();
    let mut r = std::io::BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).expect("greeting");
    s.write_all(format!("l LOGIN {} {}\r\n", common::USER, common::PASSWORD).as_bytes())
        .expect("send");
    line.clear();
    std::io::BufRead::read_line(&mut r, &mut line).expect("answer");
    line
}

/// `limits.max_connections_per_user`: one more login than the cap gets `NO [LIMIT]`, a
/// burst of such refusals is logged once, and a session that ends frees its place.
#[test]
fn a_users_connections_are_capped_at_login_and_logged_once() {
    if Kind::from_env() == Kind::Dovecot {
        return; // nestbox's limit.
    }
    let server = TestServer::start_with(common::Options {
        max_connections_per_user: Some(2),
        ..common::Options::default()
    });
    let a = common::ImapClient::login(&server, common::USER, common::PASSWORD);
    let _b = common::ImapClient::login(&server, common::USER, common::PASSWORD);
    for _ in 0..5 {
        let line = login_answer(&server);
        assert!(line.starts_with("l NO [LIMIT]"), "{line}");
    }
    // Another user is not affected.
    let bob = common::ImapClient::login(&server, common::USER2, common::PASSWORD2);
    let log = server.log();
    assert_eq!(
        log.matches("limits.max_connections_per_user = 2 reached")
            .count(),
        1,
        "{log}"
    );
    a.logout();
    // The place is free again once the session has ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = login_answer(&server);
        if line.starts_with("l OK") {
            break;
        }
        assert!(Instant::now() < deadline, "never freed: {line}");
        std::thread::sleep(Duration::from_millis(50));
    }
    bob.logout();
}

/// Growth of the worker's peak RSS allowed while a message of [`HEADER_ONLY_BYTES`] whose
/// header never ends is asked for its ENVELOPE, a header field, searched by subject and
/// sent as `BODY[HEADER]`: the store parses at most the header's first MiB
/// (`MAX_HEADER_READ`), and the exact header is sent from the file a piece at a time, so
/// a few MiB (the prefix, its parse, the output buffer, allocator slack) whatever the
/// file's size. Before, the whole file was read for each of these, and held two or three
/// times over for `BODY[HEADER]`.
const HEADER_PEAK_BOUND_KIB: u64 = 12 * 1024;
const HEADER_ONLY_BYTES: usize = 30 << 20;

/// A message that is all header: no blank line anywhere, ~30 MB of long fields after the
/// usual ones.
fn header_only_message() -> Vec<u8> {
    let mut m = format!(
        "From: big@example.org\r\nTo: {USER}@example.org\r\nSubject: endless header\r\nMessage-ID: <endless@example.org>\r\n"
    )
    .into_bytes();
    let mut n = 0u64;
    while m.len() < HEADER_ONLY_BYTES {
        m.extend_from_slice(
            format!("X-Filler-{n:08}: {}\r\n", "abcdefghij".repeat(100)).as_bytes(),
        );
        n += 1;
    }
    m
}

/// Peak resident memory (`VmHWM`) summed over the server's processes, in KiB.
fn tree_peak_kib(pid: u32) -> u64 {
    common::process_tree(pid)
        .into_iter()
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Resets the peak RSS of the server's processes to their current RSS (`clear_refs` 5).
fn reset_peaks(pid: u32) {
    for p in common::process_tree(pid) {
        std::fs::write(format!("/proc/{p}/clear_refs"), "5").expect("reset peak RSS");
    }
}

/// A 30 MB message with no blank line: ENVELOPE, `BODY[HEADER.FIELDS (SUBJECT)]` and
/// `SEARCH SUBJECT` answer from the header's start, `BODY[HEADER]` and `RFC822.HEADER` are
/// exactly the file (it is all header), and the worker's peak RSS grows by at most
/// [`HEADER_PEAK_BOUND_KIB`].
#[test]
fn a_header_without_end_is_never_held_whole() {
    if Kind::from_env() == Kind::Dovecot {
        return; // nestbox's bound.
    }
    let server = TestServer::start();
    let msg = header_only_message();
    std::fs::write(
        server
            .maildir()
            .join("cur")
            .join("1700000000.M1P1.endless:2,S"),
        &msg,
    )
    .expect("write message");
    let pid = server.pid().expect("pid");
    let mut c = Conn::logged_in(&server);
    let peak_growth = |what: &str, before: u64| {
        let peak = tree_peak_kib(pid);
        eprintln!(
            "{what}: peak RSS {peak} KiB, +{} KiB",
            peak.saturating_sub(before)
        );
        assert!(
            peak < before + HEADER_PEAK_BOUND_KIB,
            "{what}: peak RSS {before} KiB -> {peak} KiB for a {HEADER_ONLY_BYTES}-byte header"
        );
    };
    reset_peaks(pid);
    let before = rss_kib(pid);
    c.send("e FETCH 1 (ENVELOPE)\r\n");
    let mut envelope = String::new();
    loop {
        let l = c.line();
        assert!(!l.is_empty(), "closed");
        if l.starts_with("e ") {
            assert!(l.starts_with("e OK"), "{l}");
            break;
        }
        envelope.push_str(&l);
    }
    assert!(
        envelope.contains("\"endless header\"") && envelope.contains("\"<endless@example.org>\""),
        "{envelope}"
    );
    c.send("h FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n");
    let got = c.fetched("h");
    assert_eq!(got.len(), 1);
    // No blank line: the message has none (RFC 9051 §6.4.5, issue 16
    // defect 5).
    assert_eq!(got[0].1, b"Subject: endless header\r\n");
    c.send("s SEARCH SUBJECT \"endless\"\r\n");
    let l = c.line();
    assert_eq!(l, "* SEARCH 1\r\n");
    c.until_ok("s");
    c.send("n SEARCH SUBJECT \"nothing like it\"\r\n");
    assert_eq!(c.line(), "* SEARCH\r\n");
    c.until_ok("n");
    peak_growth("ENVELOPE, HEADER.FIELDS, SEARCH", before);
    for (tag, item) in [("b", "BODY.PEEK[HEADER]"), ("r", "RFC822.HEADER")] {
        reset_peaks(pid);
        let before = rss_kib(pid);
        c.send(&format!("{tag} FETCH 1 ({item})\r\n"));
        let got = c.fetched(tag);
        assert_eq!(got.len(), 1, "{item}");
        assert!(
            got[0].1 == msg,
            "{item} is not the file's bytes ({} bytes)",
            got[0].1.len()
        );
        peak_growth(item, before);
    }
    c.send("p FETCH 1 (BODY.PEEK[HEADER]<20000000.100>)\r\n");
    let got = c.fetched("p");
    assert_eq!(got[0].1, &msg[20_000_000..20_000_100]);
}
