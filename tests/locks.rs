//! The uidlist dotlock never wedges a folder (issue 15 item 5), end to end
//! against the built server: kill -9 at random moments while clients write,
//! locks of live but wrong owners, a full disk, and one user's stalled folder
//! next to another user's APPENDs. The lock's own rules are unit-tested in
//! `src/store/maildir/dotlock/tests.rs`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{ImapClient, PASSWORD, PASSWORD2, TestServer, USER, USER2};

const LOCK: &str = "dovecot-uidlist.lock";

/// Dovecot tests run against nestbox only: these are nestbox's lock rules.
fn nestbox_only() -> bool {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("skipped: nestbox's own lock rules");
        return false;
    }
    true
}

/// This machine's host name as the server writes it into lock files (the same function).
fn host() -> &'static str {
    nestbox::store::maildir::filename::host()
}

fn bob_maildir(s: &TestServer) -> PathBuf {
    s.maildir()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(USER2)
        .join("Maildir")
}

/// Writes a lock naming `owner` into `dir`, with an mtime `age` ago.
fn plant_lock(dir: &Path, owner: &str, age: Duration) {
    let p = dir.join(LOCK);
    std::fs::write(&p, owner).unwrap();
    filetime::set_file_mtime(
        &p,
        filetime::FileTime::from_system_time(SystemTime::now() - age),
    )
    .unwrap();
}

/// Lock files and their temporary files in `dir`.
fn lock_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(LOCK))
        .collect()
}

fn message(subject: &str) -> Vec<u8> {
    format!("From: t@example.org\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n").into_bytes()
}

/// APPEND with a non-synchronising literal; the tagged status.
fn append(c: &mut ImapClient, mailbox: &str, subject: &str) -> String {
    let m = message(subject);
    let (_, status) = c.command(&format!(
        "APPEND {mailbox} {{{}+}}\r\n{}",
        m.len(),
        String::from_utf8(m).unwrap()
    ));
    status
}

/// The subjects of all messages in `mailbox`.
fn subjects(c: &mut ImapClient, mailbox: &str) -> Vec<String> {
    c.ok(&format!("SELECT {mailbox}"));
    let (lines, status) = c.command("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    if !status.starts_with("OK") {
        return Vec::new();
    }
    lines
        .iter()
        .filter_map(|l| l.split("Subject: ").nth(1))
        .map(|s| s.trim().trim_end_matches(')').trim().to_string())
        .collect()
}

/// A tiny xorshift generator: the kill moments need to vary, not to be good.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("kill loop seed {seed}");
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// kill -9 of the whole server: the front and its workers, which are the
/// processes that hold the locks (workers first, so none sees its front go
/// and finishes its work in an orderly way).
fn kill9(s: &TestServer) {
    let front = s.pid().unwrap();
    let mut all = common::process_tree(front);
    all.reverse();
    for pid in all {
        // SAFETY: kill(2) on the server this test started and its workers.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

const FOLDERS: [&str; 3] = ["INBOX", "Work", "Lists"];

/// kill -9 at random moments while a client APPENDs and STOREs; after each
/// restart every folder is served (SELECT and APPEND) within a second, and
/// at the end every acknowledged message is there.
#[test]
fn kill9_loop_never_wedges_a_folder_and_loses_nothing() {
    if !nestbox_only() {
        return;
    }
    const ROUNDS: usize = 200;
    let mut server = TestServer::start();
    {
        let mut c = ImapClient::login(&server, USER, PASSWORD);
        for f in &FOLDERS[1..] {
            c.ok(&format!("CREATE {f}"));
        }
    }
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut rng = Rng::new();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for round in 0..ROUNDS {
        // Served within a second: every folder, SELECT and APPEND.
        let t = Instant::now();
        let mut c = ImapClient::login(&server, USER, PASSWORD);
        for f in FOLDERS {
            c.ok(&format!("SELECT {f}"));
            let subject = format!("check-{round}-{f}");
            let st = append(&mut c, f, &subject);
            assert!(
                st.starts_with("OK"),
                "round {round} {f}: {st}\n{}",
                server.log()
            );
            acked.lock().unwrap().push((f.to_string(), subject));
        }
        let took = t.elapsed();
        if took > Duration::from_millis(300) {
            eprintln!("round {round}: every folder served after {took:?}");
        }
        slowest = slowest.max(took);
        assert!(
            took < Duration::from_secs(1),
            "round {round}: folders served after {took:?}; log:\n{}",
            server.log()
        );
        c.logout();
        // A burst, pipelined on a connection of its own, killed at a
        // random moment.
        let mut stream = server.connect();
        read_until(&mut stream, "* OK");
        stream
            .write_all(format!("l LOGIN {USER} {PASSWORD}\r\nx SELECT INBOX\r\n").as_bytes())
            .unwrap();
        read_until(&mut stream, "x OK");
        let burst = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut tags = Vec::new();
                let mut out = Vec::new();
                for i in 0..12 {
                    let f = FOLDERS[i % 3];
                    let subject = format!("burst-{round}-{i}");
                    let m = message(&subject);
                    out.extend_from_slice(
                        format!("b{i} APPEND {f} (\\Seen) {{{}+}}\r\n", m.len()).as_bytes(),
                    );
                    out.extend_from_slice(&m);
                    out.extend_from_slice(b"\r\n");
                    tags.push((format!("b{i}"), f, subject));
                    if i % 4 == 3 {
                        out.extend_from_slice(
                            format!("s{i} STORE 1:* +FLAGS (\\Flagged)\r\n").as_bytes(),
                        );
                    }
                }
                if stream.write_all(&out).is_err() {
                    return;
                }
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&got);
                for (tag, f, subject) in tags {
                    if text.contains(&format!("\r\n{tag} OK")) {
                        acked.lock().unwrap().push((f.to_string(), subject));
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_micros(rng.below(60_000)));
        kill9(&server);
        burst.join().unwrap();
        server.restart();
    }
    eprintln!(
        "{ROUNDS} kill -9 rounds in {:?}; slowest time to serve every folder after a restart: {slowest:?}",
        started.elapsed()
    );
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    let acked = acked.lock().unwrap().clone();
    for f in FOLDERS {
        let have = subjects(&mut c, f);
        let want: Vec<&String> = acked
            .iter()
            .filter(|(g, _)| g == f)
            .map(|(_, s)| s)
            .collect();
        for s in &want {
            assert!(have.contains(s), "{f}: acknowledged message {s} lost");
        }
        let mut dedup = have.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), have.len(), "{f}: a message is listed twice");
        eprintln!("{f}: {} acknowledged, {} present", want.len(), have.len());
    }
}

/// Locks naming a live process that is not their owner are broken within
/// seconds: an unrelated running PID whose process started after the lock,
/// PID 1 (started before, but the lock untouched for minutes), and the
/// restarted server's own PID with the earlier run's time.
#[test]
fn locks_of_live_but_wrong_owners_are_broken_within_seconds() {
    if !nestbox_only() {
        return;
    }
    let mut server = TestServer::start();
    {
        let mut c = ImapClient::login(&server, USER, PASSWORD);
        for f in ["Work", "Old"] {
            c.ok(&format!("CREATE {f}"));
        }
        for f in ["INBOX", "Work", "Old"] {
            assert!(append(&mut c, f, "first").starts_with("OK"));
        }
    }
    server.restart();
    let md = server.maildir();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let minutes_ago = Duration::from_secs(5 * 60);
    let h = host();
    plant_lock(&md, &format!("{}:{h}", sleeper.id()), minutes_ago);
    plant_lock(&md.join(".Work"), &format!("1:{h}"), minutes_ago);
    plant_lock(
        &md.join(".Old"),
        &format!("{}:{h}", server.pid().unwrap()),
        minutes_ago,
    );
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    for f in ["INBOX", "Work", "Old"] {
        let t = Instant::now();
        let st = append(&mut c, f, "second");
        let took = t.elapsed();
        assert!(st.starts_with("OK"), "{f}: {st}");
        assert!(took < Duration::from_secs(3), "{f}: APPEND took {took:?}");
        eprintln!("{f}: stale lock broken, APPEND in {took:?}");
    }
    for d in [md.clone(), md.join(".Work"), md.join(".Old")] {
        assert!(
            lock_files(&d).is_empty(),
            "{}: {:?}",
            d.display(),
            lock_files(&d)
        );
    }
    assert!(
        server.log().contains("breaking stale uidlist lock"),
        "{}",
        server.log()
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// A connection from a given loopback source address (127.0.0.1 allows
/// only 50 per address).
fn connect_from(server: &TestServer, src: [u8; 4]) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddrV4::new(src.into(), 0)).unwrap();
    let port = server.connect().peer_addr().unwrap().port();
    connect(&fd, &SocketAddrV4::new([127, 0, 0, 1].into(), port)).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s
}

/// Reads until `needle` has arrived; what was read.
fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads lines until one starts with `tag` and a space; that line.
fn tagged(s: &mut BufReader<TcpStream>, tag: &str) -> String {
    loop {
        let mut line = String::new();
        let n = s.read_line(&mut line).unwrap();
        assert!(n > 0, "closed before the {tag} response");
        if line.starts_with(&format!("{tag} ")) {
            return line;
        }
    }
}

/// How long one of bob's APPENDs may take before the stalled-folder test
/// stops waiting (and fails, reporting "over" this). `ImapClient` gives up
/// reading after 30 s anyway.
const BOB_PATIENCE: Duration = Duration::from_secs(30);

/// The slowest of a few of bob's APPENDs; `None` when one took longer than
/// [`BOB_PATIENCE`]. Bob's connection is handed back when done.
fn bob_append_latency(
    bob: ImapClient,
    label: &'static str,
) -> (Option<Duration>, Option<ImapClient>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bob = bob;
        let mut worst = Duration::ZERO;
        for i in 0..5 {
            let t = Instant::now();
            let st = append(&mut bob, "INBOX", &format!("{label}-{i}"));
            worst = worst.max(t.elapsed());
            assert!(st.starts_with("OK"), "{st}");
        }
        let _ = tx.send((worst, bob));
    });
    // A client that gave up (its read timeout) drops the sender: over.
    match rx.recv_timeout(BOB_PATIENCE + Duration::from_secs(5)) {
        Ok((worst, bob)) => (Some(worst), Some(bob)),
        Err(_) => (None, None),
    }
}

/// 70 of alice's sessions waiting on a live foreign lock of her INBOX do
/// not slow bob's APPEND.
#[test]
fn a_stalled_folder_does_not_slow_another_users_append() {
    if !nestbox_only() {
        return;
    }
    const WAITERS: usize = 70;
    // Alice has more sessions than the default per-user cap (50).
    let server = TestServer::start_with(common::Options {
        max_connections_per_user: Some(200),
        ..common::Options::default()
    });
    let md = server.maildir();
    {
        let mut c = ImapClient::login(&server, USER, PASSWORD);
        assert!(append(&mut c, "INBOX", "before").starts_with("OK"));
    }
    let bob = ImapClient::login(&server, USER2, PASSWORD2);
    let (idle, bob) = bob_append_latency(bob, "idle");
    let idle = idle.unwrap();
    // A live process holds alice's INBOX lock, freshly.
    let mut holder = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    plant_lock(&md, &format!("{}:{}", holder.id(), host()), Duration::ZERO);
    let mut waiters = Vec::new();
    for i in 0..WAITERS {
        let mut s = BufReader::new(connect_from(&server, [127, 0, 0, 2 + (i % 2) as u8]));
        tagged(&mut s, "*");
        s.get_mut()
            .write_all(format!("l LOGIN {USER} {PASSWORD}\r\n").as_bytes())
            .unwrap();
        assert!(tagged(&mut s, "l").starts_with("l OK"));
        waiters.push(s);
    }
    for (i, s) in waiters.iter_mut().enumerate() {
        let m = message(&format!("waiter-{i}"));
        let w = s.get_mut();
        w.write_all(format!("a APPEND INBOX {{{}+}}\r\n", m.len()).as_bytes())
            .unwrap();
        w.write_all(&m).unwrap();
        w.write_all(b"\r\n").unwrap();
    }
    // Let every APPEND reach its wait.
    std::thread::sleep(Duration::from_secs(1));
    let (stalled, _bob) = bob_append_latency(bob.unwrap(), "stalled");
    eprintln!(
        "bob's APPEND, slowest of 5: {idle:?} with alice idle, {} with {WAITERS} of alice's APPENDs waiting on her lock",
        stalled.map_or(format!("over {BOB_PATIENCE:?}"), |d| format!("{d:?}"))
    );
    let stalled = stalled.expect("bob's APPENDs finish");
    assert!(stalled < Duration::from_secs(1), "{stalled:?}");
    let t = Instant::now();
    let fresh = ImapClient::login(&server, USER2, PASSWORD2);
    let login = t.elapsed();
    fresh.logout();
    eprintln!("a new login of bob's meanwhile: {login:?}");
    assert!(login < Duration::from_secs(1), "{login:?}");
    // Nothing was answered yet, and the lock is the holder's still.
    assert!(
        std::fs::read_to_string(md.join(LOCK))
            .unwrap()
            .starts_with(&holder.id().to_string())
    );
    // The holder goes: every waiter's APPEND completes.
    let _ = holder.kill();
    let _ = holder.wait();
    let t = Instant::now();
    for s in &mut waiters {
        let got = tagged(s, "a");
        assert!(got.starts_with("a OK"), "{got}");
    }
    eprintln!(
        "all {WAITERS} waiting APPENDs done {:?} after the holder died",
        t.elapsed()
    );
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    assert_eq!(subjects(&mut c, "INBOX").len(), WAITERS + 1);
    assert!(lock_files(&md).is_empty(), "{:?}", lock_files(&md));
    assert!(lock_files(&bob_maildir(&server)).is_empty());
}

/// Keeps a lock fresh as a live holder that holds it long does (Dovecot
/// touches its locks): its mtime is set to now every second until dropped,
/// so that it is never old enough to be broken whoever it names.
struct Toucher(
    Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Toucher {
    fn start(lock: PathBuf) -> Toucher {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = filetime::set_file_mtime(&lock, filetime::FileTime::now());
                std::thread::sleep(Duration::from_millis(1000));
            }
        });
        Toucher(stop, Some(h))
    }
}

impl Drop for Toucher {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

/// 70 of alice's sessions SELECT, EXAMINE and STATUS her INBOX while
/// another program holds its lock (a live process, the lock kept fresh)
/// and a delivery in `new/` needs a UID, so every one of them must wait
/// for the lock: they wait without holding threads, so bob's APPEND and
/// alice's own APPEND to another folder stay quick. When the lock goes,
/// every one completes and sees the delivery. Before, each waited in place
/// on a blocking-pool thread (the first on the lock, the others on the
/// folder behind it), and bob's APPENDs waited for a free thread.
#[test]
fn sessions_opening_a_stalled_folder_do_not_slow_others() {
    if !nestbox_only() {
        return;
    }
    const WAITERS: usize = 70;
    let server = TestServer::start_with(common::Options {
        max_connections_per_user: Some(200),
        ..common::Options::default()
    });
    let md = server.maildir();
    {
        let mut c = ImapClient::login(&server, USER, PASSWORD);
        c.ok("CREATE Work");
        c.logout();
    }
    // INBOX as another program left it, not opened by nestbox yet: one
    // message numbered in the uidlist, one delivered and not numbered.
    std::fs::write(
        md.join("dovecot-uidlist"),
        "3 V1700000000 N2 G0123456789abcdef0123456789abcdef\n1 :1700000000.M1P1.locks\n",
    )
    .unwrap();
    std::fs::write(md.join("cur/1700000000.M1P1.locks:2,S"), message("old")).unwrap();
    std::fs::write(md.join("new/1700000100.M2P1.locks"), message("delivered")).unwrap();
    // A live process holds the lock, freshly, for as long as the test needs.
    let mut holder = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    plant_lock(&md, &format!("{}:{}", holder.id(), host()), Duration::ZERO);
    common::give_to_mail_user(&md);
    let toucher = Toucher::start(md.join(LOCK));
    let bob = ImapClient::login(&server, USER2, PASSWORD2);
    let (idle, bob) = bob_append_latency(bob, "idle");
    let idle = idle.unwrap();
    let commands = [
        "s SELECT INBOX\r\n",
        "s EXAMINE INBOX\r\n",
        "s STATUS INBOX (MESSAGES UIDNEXT)\r\n",
    ];
    let mut waiters = Vec::new();
    for i in 0..WAITERS {
        let mut s = BufReader::new(connect_from(&server, [127, 0, 0, 2 + (i % 2) as u8]));
        tagged(&mut s, "*");
        s.get_mut()
            .write_all(format!("l LOGIN {USER} {PASSWORD}\r\n").as_bytes())
            .unwrap();
        assert!(tagged(&mut s, "l").starts_with("l OK"));
        waiters.push(s);
    }
    for (i, s) in waiters.iter_mut().enumerate() {
        s.get_mut()
            .write_all(commands[i % commands.len()].as_bytes())
            .unwrap();
    }
    // Let every command reach its wait.
    std::thread::sleep(Duration::from_secs(1));
    let (stalled, bob) = bob_append_latency(bob.unwrap(), "stalled");
    let mut alice = ImapClient::login(&server, USER, PASSWORD);
    let t = Instant::now();
    for i in 0..5 {
        assert!(append(&mut alice, "Work", &format!("work-{i}")).starts_with("OK"));
    }
    let work = t.elapsed();
    eprintln!(
        "bob's APPEND, slowest of 5: {idle:?} with alice idle, {} with {WAITERS} of alice's SELECT/EXAMINE/STATUS waiting on her INBOX's lock; 5 APPENDs to alice's Work meanwhile: {work:?}",
        stalled.map_or(format!("over {BOB_PATIENCE:?}"), |d| format!("{d:?}"))
    );
    let stalled = stalled.expect("bob's APPENDs finish");
    assert!(stalled < Duration::from_secs(1), "{stalled:?}");
    assert!(work < Duration::from_secs(2), "{work:?}");
    drop(bob);
    // Nothing was answered yet, and the lock is the holder's still.
    for (i, s) in waiters.iter_mut().enumerate() {
        assert!(s.buffer().is_empty(), "waiter {i}");
        s.get_mut().set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        match s.get_mut().read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            r => panic!(
                "waiter {i} was answered while the lock was held: {r:?} {:?}",
                String::from_utf8_lossy(&b)
            ),
        }
        s.get_mut().set_nonblocking(false).unwrap();
    }
    assert!(
        std::fs::read_to_string(md.join(LOCK))
            .unwrap()
            .starts_with(&holder.id().to_string())
    );
    // The holder goes: every waiter completes, and sees both messages.
    drop(toucher);
    let _ = holder.kill();
    let _ = holder.wait();
    let t = Instant::now();
    for (i, s) in waiters.iter_mut().enumerate() {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(s.read_line(&mut line).unwrap() > 0, "waiter {i} closed");
            all.push_str(&line);
            if line.starts_with("s ") {
                break;
            }
        }
        assert!(
            all.contains("\r\ns OK") || all.starts_with("s OK"),
            "waiter {i}: {all}"
        );
        match i % commands.len() {
            2 => assert!(all.contains("(MESSAGES 2 UIDNEXT 3)"), "waiter {i}: {all}"),
            _ => assert!(all.contains("* 2 EXISTS"), "waiter {i}: {all}"),
        }
    }
    eprintln!(
        "all {WAITERS} waiting commands done {:?} after the holder died",
        t.elapsed()
    );
    assert!(subjects(&mut alice, "INBOX").contains(&"delivered".to_string()));
    assert!(lock_files(&md).is_empty(), "{:?}", lock_files(&md));
}

/// A full disk: APPEND fails with NO (not SERVERBUG), leaves no lock
/// behind, and once there is space again the next APPEND works at once.
#[test]
#[cfg_attr(nestbox_not_root, ignore = "mounting a small tmpfs needs root")]
fn a_full_disk_leaves_no_lock_behind() {
    if !nestbox_only() {
        return;
    }
    let server = TestServer::start();
    let md = server.maildir();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&md)
        .status()
        .unwrap();
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
        std::fs::create_dir(md.join(sub)).unwrap();
    }
    // The worker runs as the mail user (as root: nobody), who must own the new file system.
    common::give_to_mail_user(&md);
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    assert!(append(&mut c, "INBOX", "fits").starts_with("OK"));
    // One page kept aside, then every other block filled.
    std::fs::write(md.join("page"), vec![0u8; 4096]).unwrap();
    let mut f = std::fs::File::create(md.join("filler")).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
    drop(f);
    for (label, free_a_page) in [("disk full", false), ("one page free", true)] {
        if free_a_page {
            // The message fits in the page; the lock's content then does not.
            std::fs::remove_file(md.join("page")).unwrap();
        }
        let st = append(&mut c, "INBOX", label);
        eprintln!("{label}: APPEND -> {st}");
        assert!(st.starts_with("NO"), "{label}: {st}");
        assert!(!st.contains("SERVERBUG"), "{label}: {st}");
        assert!(lock_files(&md).is_empty(), "{label}: {:?}", lock_files(&md));
        assert_eq!(
            std::fs::read_dir(md.join("tmp")).unwrap().count(),
            0,
            "{label}: tmp/ not cleaned"
        );
    }
    std::fs::remove_file(md.join("filler")).unwrap();
    let t = Instant::now();
    let st = append(&mut c, "INBOX", "after");
    assert!(st.starts_with("OK"), "{st}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(
        subjects(&mut c, "INBOX"),
        vec!["fits".to_string(), "after".to_string()]
    );
    c.logout();
    drop(server);
}

/// The same with the folder already open and followed by the change
/// watcher: a delivery under the foreign lock makes the watcher's round
/// need the lock. The round waits for it on timers, never holding a thread
/// or the folder's state, so the 70 sessions opening the folder still do
/// not slow bob, and all complete, seeing the delivery, when the lock goes.
#[test]
fn a_watched_folder_under_a_foreign_lock_holds_no_thread() {
    if !nestbox_only() {
        return;
    }
    const WAITERS: usize = 70;
    let server = TestServer::start_with(common::Options {
        max_connections_per_user: Some(200),
        ..common::Options::default()
    });
    let md = server.maildir();
    std::fs::write(md.join("new/1700000000.M1P1.locks"), message("old")).unwrap();
    common::give_to_mail_user(&md);
    // INBOX open (and followed) from here on.
    let mut selected = ImapClient::login(&server, USER, PASSWORD);
    selected.ok("SELECT INBOX");
    let mut holder = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    plant_lock(&md, &format!("{}:{}", holder.id(), host()), Duration::ZERO);
    common::give_to_mail_user(&md);
    let toucher = Toucher::start(md.join(LOCK));
    // A delivery: the watcher's round must number it, under the lock.
    std::fs::write(md.join("tmp/1700000100.M2P1.locks"), message("delivered")).unwrap();
    common::give_to_mail_user(&md);
    std::fs::rename(
        md.join("tmp/1700000100.M2P1.locks"),
        md.join("new/1700000100.M2P1.locks"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let commands = [
        "s SELECT INBOX\r\n",
        "s EXAMINE INBOX\r\n",
        "s STATUS INBOX (MESSAGES UIDNEXT)\r\n",
    ];
    let mut waiters = Vec::new();
    for i in 0..WAITERS {
        let mut s = BufReader::new(connect_from(&server, [127, 0, 0, 2 + (i % 2) as u8]));
        tagged(&mut s, "*");
        s.get_mut()
            .write_all(format!("l LOGIN {USER} {PASSWORD}\r\n").as_bytes())
            .unwrap();
        assert!(tagged(&mut s, "l").starts_with("l OK"));
        s.get_mut()
            .write_all(commands[i % commands.len()].as_bytes())
            .unwrap();
        waiters.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let bob = ImapClient::login(&server, USER2, PASSWORD2);
    let (stalled, bob) = bob_append_latency(bob, "stalled");
    eprintln!(
        "bob's APPEND, slowest of 5, with alice's watched INBOX stalled and {WAITERS} sessions opening it: {}",
        stalled.map_or(format!("over {BOB_PATIENCE:?}"), |d| format!("{d:?}"))
    );
    let stalled = stalled.expect("bob's APPENDs finish");
    assert!(stalled < Duration::from_secs(1), "{stalled:?}");
    drop(bob);
    drop(toucher);
    let _ = holder.kill();
    let _ = holder.wait();
    let t = Instant::now();
    for (i, s) in waiters.iter_mut().enumerate() {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(s.read_line(&mut line).unwrap() > 0, "waiter {i} closed");
            all.push_str(&line);
            if line.starts_with("s ") {
                break;
            }
        }
        assert!(all.contains("s OK"), "waiter {i}: {all}");
        match i % commands.len() {
            2 => assert!(all.contains("(MESSAGES 2 UIDNEXT 3)"), "waiter {i}: {all}"),
            _ => assert!(all.contains("* 2 EXISTS"), "waiter {i}: {all}"),
        }
    }
    eprintln!(
        "all {WAITERS} commands done {:?} after the holder died",
        t.elapsed()
    );
    // The session that had it selected all along is told too.
    let noop = selected.ok("NOOP");
    assert!(noop.iter().any(|l| l == "* 2 EXISTS"), "{noop:?}");
    assert!(lock_files(&md).is_empty(), "{:?}", lock_files(&md));
}
