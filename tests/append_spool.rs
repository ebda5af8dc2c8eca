//! APPEND of big messages after login (issue 15, item 4): a message bigger than what a session
//! keeps in memory (256 KiB, `session::literal`) goes to an unnamed spool file in the
//! Maildir's `tmp/` as it arrives, so what a connection holds does not grow with the message.
//! These tests check the bound, that the messages arrive whole, that every way a command can
//! end leaves no file behind, and that MULTIAPPEND and real clients (Python's imaplib, in
//! tests/python/test_imap.py) are served as before.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ImapClient, Options, PASSWORD, TestServer, USER};

/// Appended by each of the ten connections of the memory test.
const BIG: usize = 40 << 20;

/// Growth of the server's RSS (front and worker) allowed while ten connections are each half
/// way through a 40 MB APPEND, and until they are saved: per connection, the 256 KiB chunk of
/// the literal being written, 256 KiB at most of the command in the framer, and a blocking-
/// pool thread's stack while it writes; the rest is allocator slack. Before the spool, each
/// held its whole literal: 400 MB for the ten.
const RSS_BOUND_KIB: u64 = 30 * 1024;

/// Hundreds of MB of test mail go to a tmpfs where there is one, not to the build disk.
/// (The spool file's pages are the file system's, never the server's RSS.)
fn big_options() -> Options {
    let shm = Path::new("/dev/shm");
    Options {
        temp_parent: shm.is_dir().then(|| shm.to_path_buf()),
        ..Options::default()
    }
}

/// Message `i` of `len` bytes: a header and CRLF lines that name the message and the line,
/// so every byte is where it belongs only if it arrived whole and in order.
fn message(i: usize, len: usize) -> Vec<u8> {
    let mut m = format!(
        "From: big@example.org\r\nTo: {USER}@example.org\r\nSubject: big {i}\r\n\
         Message-ID: <spool{i}@example.org>\r\n\r\n"
    )
    .into_bytes();
    let mut line = 0u64;
    while m.len() < len {
        let l = format!(
            "message {i:02} line {line:08} {}\r\n",
            "abcdefghij".repeat(9)
        );
        m.extend_from_slice(l.as_bytes());
        line += 1;
    }
    m.truncate(len - 2);
    m.extend_from_slice(b"\r\n");
    m
}

/// Reads until the line tagged `tag`; returns it without the tag.
fn tagged(c: &mut ImapClient, tag: &str) -> String {
    loop {
        let line = c
            .read_line()
            .unwrap_or_else(|| panic!("connection closed before {tag} was answered"));
        if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
            return rest.to_string();
        }
    }
}

/// Sends `prefix` (a command line ending in a synchronizing literal announcement) and
/// returns the server's answer: a `+` continuation or the command's tagged status.
fn announce(c: &mut ImapClient, prefix: &str) -> String {
    c.send_raw(prefix.as_bytes());
    c.read_line().expect("answer to a literal announcement")
}

/// What a spool could leave behind: files in any `tmp/` of the Maildir, and descriptors of the
/// server's processes (front and workers) that are open on a file there (an unnamed spool
/// file shows as `.../tmp/#123 (deleted)`).
fn leftovers(server: &TestServer) -> Vec<String> {
    let md = server.maildir();
    let mut out = Vec::new();
    let mut tmps = vec![md.join("tmp")];
    for e in fs::read_dir(&md).expect("read Maildir").flatten() {
        if e.file_name().to_string_lossy().starts_with('.') && e.path().join("tmp").is_dir() {
            tmps.push(e.path().join("tmp"));
        }
    }
    for t in &tmps {
        for e in fs::read_dir(t).expect("read tmp").flatten() {
            out.push(e.path().display().to_string());
        }
    }
    let pid = server.pid().expect("server pid");
    for p in common::process_tree(pid) {
        for fd in fs::read_dir(format!("/proc/{p}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(target) = fs::read_link(fd.path()) {
                // The directories themselves are held open by the store.
                if tmps.iter().any(|t| target.starts_with(t) && target != *t) {
                    out.push(format!("pid {p} fd -> {}", target.display()));
                }
            }
        }
    }
    out
}

/// Waits (up to 10 s) until nothing is left behind, then says what is.
fn settle(server: &TestServer) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let l = leftovers(server);
        if l.is_empty() || Instant::now() > until {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The message files in INBOX (`cur/` and `new/`).
fn inbox_files(md: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["cur", "new"]
        .iter()
        .flat_map(|d| fs::read_dir(md.join(d)).expect("read dir").flatten())
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Ten logged-in connections each APPEND a 40 MB message, all ten half way through their
/// literal at once: the server's memory (front and worker) grows by at most
/// `RSS_BOUND_KIB` in total, and the ten messages are saved byte for byte.
#[test]
fn ten_big_appends_at_once_hold_a_bounded_amount_of_memory() {
    const N: usize = 10;
    let server = TestServer::start_with(big_options());
    let pid = server.pid().expect("server pid");
    let logged_in = Barrier::new(N + 1);
    let half_sent = Barrier::new(N + 1);
    let go_on = Barrier::new(N + 1);
    let done = AtomicBool::new(false);
    let peak = AtomicU64::new(0);
    let mut baseline = 0;
    let mut middle = 0;
    std::thread::scope(|s| {
        let mut clients = Vec::new();
        for i in 0..N {
            let (server, logged_in, half_sent, go_on) = (&server, &logged_in, &half_sent, &go_on);
            clients.push(s.spawn(move || {
                let msg = message(i, BIG);
                let mut c = ImapClient::login(server, USER, PASSWORD);
                logged_in.wait();
                let cont = announce(&mut c, &format!("b{i} APPEND INBOX {{{}}}\r\n", msg.len()));
                assert!(cont.starts_with('+'), "no continuation: {cont}");
                let (first, rest) = msg.split_at(msg.len() / 2);
                c.send_raw(first);
                half_sent.wait();
                go_on.wait();
                c.send_raw(rest);
                c.send_raw(b"\r\n");
                let status = tagged(&mut c, &format!("b{i}"));
                c.logout();
                status
            }));
        }
        logged_in.wait();
        // Every connection's worker is up and has served a LOGIN: what a connection costs
        // anyway is not what is measured.
        baseline = common::tree_rss_kib(pid);
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(common::tree_rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        half_sent.wait();
        // All ten are mid-literal; let the server take in what the sockets hold.
        std::thread::sleep(Duration::from_millis(500));
        middle = common::tree_rss_kib(pid);
        go_on.wait();
        for (i, c) in clients.into_iter().enumerate() {
            let status = c.join().expect("client thread");
            assert!(status.starts_with("OK"), "APPEND {i}: {status}");
        }
        done.store(true, Ordering::Relaxed);
    });
    let peak = peak.load(Ordering::Relaxed).max(middle);
    eprintln!(
        "RSS: {baseline} KiB after login, {middle} KiB with ten literals half sent, peak {peak} KiB (+{} KiB)",
        peak.saturating_sub(baseline)
    );
    assert!(
        peak.saturating_sub(baseline) <= RSS_BOUND_KIB,
        "server RSS grew by {} KiB (bound {RSS_BOUND_KIB} KiB) while ten 40 MB APPENDs ran",
        peak.saturating_sub(baseline)
    );
    // Byte for byte, each once.
    let files = inbox_files(&server.maildir());
    assert_eq!(files.len(), N, "{files:?}");
    let mut seen = [false; N];
    for f in files {
        let got = fs::read(&f).expect("read message");
        let i = (0..N)
            .find(|&i| got.starts_with(&message(i, 200)[..100]))
            .unwrap_or_else(|| panic!("{} is none of the messages", f.display()));
        assert!(!seen[i], "message {i} saved twice");
        seen[i] = true;
        assert!(
            got == message(i, BIG),
            "message {i} differs from what was sent"
        );
    }
    assert_eq!(settle(&server), Vec::<String>::new());
}

/// A client that goes away half way through a big literal leaves no file, no open
/// descriptor and no message, and the server serves the next connection as before.
#[test]
fn a_client_that_leaves_mid_literal_leaves_nothing_behind() {
    let server = TestServer::start_with(big_options());
    let msg = message(0, 10 << 20);
    for sync in [true, false] {
        let mut c = ImapClient::login(&server, USER, PASSWORD);
        if sync {
            let cont = announce(&mut c, &format!("a1 APPEND INBOX {{{}}}\r\n", msg.len()));
            assert!(cont.starts_with('+'), "no continuation: {cont}");
        } else {
            c.send_raw(format!("a1 APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes());
        }
        c.send_raw(&msg[..msg.len() / 2]);
        // The half has reached the spool (the descriptor is open) before the client leaves.
        let until = Instant::now() + Duration::from_secs(10);
        while leftovers(&server).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !leftovers(&server).is_empty(),
            "no spool file open while the literal arrives"
        );
        drop(c);
        assert_eq!(settle(&server), Vec::<String>::new(), "sync {sync}");
    }
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    let untagged = c.ok("SELECT INBOX");
    assert!(untagged.iter().any(|l| l == "* 0 EXISTS"), "{untagged:?}");
    assert_eq!(inbox_files(&server.maildir()), Vec::<PathBuf>::new());
    c.logout();
}

/// MULTIAPPEND (RFC 3502) with big and small messages, synchronizing and LITERAL+, and the
/// ways such a command is refused: each refused command saves nothing and leaves nothing,
/// and what can be refused before the client sends a big message is refused before its `+`.
#[test]
fn multiappend_and_refusals_with_big_messages() {
    let server = TestServer::start_with(Options {
        max_literal_bytes: Some(8 << 20),
        ..big_options()
    });
    let md = server.maildir();
    let big = message(1, 3 << 20);
    let small = b"Subject: small\r\n\r\nsmall one\r\n".to_vec();
    let mut c = ImapClient::login(&server, USER, PASSWORD);

    // A big and a small message in one command: both saved, in order, intact.
    let cont = announce(
        &mut c,
        &format!("m1 APPEND INBOX (\\Seen) {{{}}}\r\n", big.len()),
    );
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&big);
    let cont = announce(&mut c, &format!(" (\\Flagged) {{{}}}\r\n", small.len()));
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&small);
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "m1");
    assert!(
        st.starts_with("OK [APPENDUID ") && st.contains(" 1:2]"),
        "{st}"
    );
    // And a big one as LITERAL+ (no continuation).
    c.send_raw(format!("p1 APPEND INBOX {{{}+}}\r\n", big.len()).as_bytes());
    c.send_raw(&big);
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "p1");
    assert!(
        st.starts_with("OK [APPENDUID ") && st.ends_with(" 3] APPEND completed."),
        "{st}"
    );
    c.ok("SELECT INBOX");
    for (uid, want, flag) in [(1, &big, "\\Seen"), (2, &small, "\\Flagged"), (3, &big, "")] {
        let lines = c.ok(&format!("UID FETCH {uid} (FLAGS RFC822.SIZE BODY.PEEK[])"));
        let l = lines
            .iter()
            .find(|l| l.contains(" FETCH "))
            .expect("FETCH line");
        assert!(
            l.contains(&format!("RFC822.SIZE {}", want.len())),
            "uid {uid}"
        );
        assert!(l.contains(flag), "uid {uid}: {flag}");
        let body = format!(
            "BODY[] {{{}}}\r\n{})",
            want.len(),
            String::from_utf8_lossy(want)
        );
        assert!(l.ends_with(&body), "uid {uid}: body differs");
    }
    assert_eq!(inbox_files(&md).len(), 3);

    // The second message refused after the first was sent: neither is saved.
    let cont = announce(&mut c, &format!("m2 APPEND INBOX {{{}}}\r\n", big.len()));
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&big);
    let cont = announce(&mut c, " {0}\r\n");
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "m2");
    assert!(st.starts_with("NO "), "{st}");
    // ... or over `max_literal_bytes`, refused without a continuation.
    let cont = announce(&mut c, &format!("m3 APPEND INBOX {{{}}}\r\n", big.len()));
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&big);
    let st = announce(&mut c, " {9000000}\r\n");
    assert!(st.starts_with("m3 NO [TOOBIG]"), "{st}");
    // ... or whole-command over twice `max_literal_bytes` (16 MB): refused at the
    // announcement that passes it, although each literal is within the limit.
    c.send_raw(b"m4 APPEND INBOX");
    for _ in 0..6 {
        c.send_raw(format!(" {{{}+}}\r\n", big.len()).as_bytes());
        c.send_raw(&big);
    }
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "m4");
    assert!(st.starts_with("NO [TOOBIG]"), "{st}");
    c.ok("NOOP");
    assert_eq!(
        inbox_files(&md).len(),
        3,
        "a refused MULTIAPPEND saved something"
    );
    assert_eq!(settle(&server), Vec::<String>::new());

    // A folder that does not exist: TRYCREATE once the message is in, nothing left.
    let cont = announce(&mut c, &format!("t1 APPEND Nope {{{}}}\r\n", big.len()));
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&big);
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "t1");
    assert!(st.starts_with("NO [TRYCREATE]"), "{st}");
    assert_eq!(settle(&server), Vec::<String>::new());

    // Over quota: refused before the client sends a byte of it.
    fs::write(md.join("maildirsize"), "2000000S\n0 0\n").expect("write maildirsize");
    let st = announce(&mut c, &format!("q1 APPEND INBOX {{{}}}\r\n", big.len()));
    assert!(st.starts_with("q1 NO [OVERQUOTA]"), "{st}");
    fs::remove_file(md.join("maildirsize")).expect("remove maildirsize");

    // A big literal in any other command: refused before it is sent, the session goes on.
    let st = announce(&mut c, "s1 SEARCH TEXT {100000}\r\n");
    assert!(st.starts_with("s1 NO [TOOBIG]"), "{st}");
    c.ok("NOOP");
    assert_eq!(inbox_files(&md).len(), 3);
    assert_eq!(settle(&server), Vec::<String>::new());
    c.logout();
}

/// Small APPENDs, for the latency of the in-memory path: run by hand
/// (`cargo test --test append_spool -- --ignored --nocapture`) to compare builds.
#[test]
#[ignore = "a measurement, not a check"]
fn small_append_latency() {
    let server = TestServer::start();
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    let msg = message(0, 4000);
    let mut times = Vec::new();
    for i in 0..1000 {
        let t = Instant::now();
        let cont = announce(&mut c, &format!("l{i} APPEND INBOX {{{}}}\r\n", msg.len()));
        assert!(cont.starts_with('+'));
        c.send_raw(&msg);
        c.send_raw(b"\r\n");
        assert!(tagged(&mut c, &format!("l{i}")).starts_with("OK"));
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "small APPEND (4000 bytes) x1000: median {:?}, p90 {:?}",
        times[500], times[900]
    );
}

/// A full disk (a 4 MB tmpfs as the Maildir): a big message that cannot fit is refused
/// before its `+` (its space is asked for first), one that fits is saved without a second
/// copy of it, and a MULTIAPPEND that runs out of space while saving answers NO; none of
/// them leaves a file behind, and none is our fault (no SERVERBUG).
#[test]
#[cfg_attr(nestbox_not_root, ignore = "mounting a small tmpfs needs root")]
fn a_full_disk_is_refused_early_and_leaves_nothing() {
    if common::Kind::from_env() != common::Kind::Nestbox {
        return;
    }
    let server = TestServer::start();
    let md = server.maildir();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&md)
        .status()
        .expect("run mount");
    assert!(ok.success(), "mount tmpfs on the Maildir");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _u = Unmount(md.clone());
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir(md.join(sub)).expect("mkdir");
    }
    // The worker runs as the mail user (as root: nobody), who must own the new file system.
    common::give_to_mail_user(&md);
    let mut c = ImapClient::login(&server, USER, PASSWORD);

    let too_big = message(2, 6 << 20);
    let st = announce(
        &mut c,
        &format!("f1 APPEND INBOX {{{}}}\r\n", too_big.len()),
    );
    assert!(st.starts_with("f1 NO [OVERQUOTA]"), "{st}");
    assert_eq!(settle(&server), Vec::<String>::new());

    // 2.5 MB of 4: fits only if the spool file itself becomes the message.
    let fits = message(3, 5 << 19);
    let cont = announce(&mut c, &format!("f2 APPEND INBOX {{{}}}\r\n", fits.len()));
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&fits);
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "f2");
    assert!(st.starts_with("OK"), "{st}");
    assert_eq!(inbox_files(&md).len(), 1);

    // Two of 600 KB: the spool (1.2 MB) fits beside the first, their copies do not both.
    let part = message(4, 600 << 10);
    c.send_raw(b"f3 APPEND INBOX");
    for _ in 0..2 {
        c.send_raw(format!(" {{{}+}}\r\n", part.len()).as_bytes());
        c.send_raw(&part);
    }
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "f3");
    eprintln!("MULTIAPPEND on a full disk: {st}");
    assert!(st.starts_with("NO") && !st.contains("SERVERBUG"), "{st}");
    assert_eq!(settle(&server), Vec::<String>::new());
    c.ok("NOOP");
    c.logout();
    drop(server);
}

/// A disk that fills while a big literal arrives (ext2 reserves no space ahead, so the spool
/// learns it only when a write fails): the APPEND is answered NO at once, the rest of the
/// literal is read and dropped, the session goes on, and nothing is left behind.
#[test]
#[cfg_attr(nestbox_not_root, ignore = "mounting a loop device needs root")]
fn a_disk_that_fills_mid_literal_answers_no_and_leaves_nothing() {
    if common::Kind::from_env() != common::Kind::Nestbox {
        return;
    }
    let server = TestServer::start();
    let md = server.maildir();
    let image = server.dir.join("ext2.img");
    let made = fs::File::create(&image).and_then(|f| f.set_len(8 << 20));
    assert!(made.is_ok(), "make the image: {made:?}");
    let mkfs = std::process::Command::new("mkfs.ext2")
        .args(["-q", "-F"])
        .arg(&image)
        .status();
    let mounted = std::process::Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&md)
        .status();
    if !matches!((&mkfs, &mounted), (Ok(a), Ok(b)) if a.success() && b.success()) {
        // Containers without loop devices (or without mkfs.ext2).
        eprintln!("SKIPPED: cannot loop-mount an ext2 image ({mkfs:?}, {mounted:?})");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _u = Unmount(md.clone());
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir(md.join(sub)).expect("mkdir");
    }
    let _ = fs::remove_dir(md.join("lost+found"));
    common::give_to_mail_user(&md);
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    // 10 MB into an 8 MB file system: asked for, it is not refused (ext2 cannot reserve).
    let msg = message(5, 10 << 20);
    let cont = announce(&mut c, &format!("d1 APPEND INBOX {{{}}}\r\n", msg.len()));
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&msg);
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "d1");
    assert!(st.starts_with("NO [OVERQUOTA]"), "{st}");
    c.ok("NOOP");
    assert_eq!(settle(&server), Vec::<String>::new());
    assert_eq!(inbox_files(&md), Vec::<PathBuf>::new());
    // The space is free again: a big message that fits is saved.
    let fits = message(6, 3 << 20);
    let cont = announce(&mut c, &format!("d2 APPEND INBOX {{{}}}\r\n", fits.len()));
    assert!(cont.starts_with('+'), "{cont}");
    c.send_raw(&fits);
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "d2");
    assert!(st.starts_with("OK"), "{st}");
    assert_eq!(inbox_files(&md).len(), 1);
    c.logout();
    drop(server);
}
