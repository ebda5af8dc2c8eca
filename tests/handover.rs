//! Where a logged-in connection lives (SPEC §4, `server::run::Way`): without TLS the
//! client's own socket goes to the user's worker, which then reads and writes it with no
//! hop through the front; with TLS the front keeps the socket (a worker never holds the
//! key) and relays. Either way the front keeps the connection's slots until the session
//! ends, also when the worker dies, and a shutdown still says goodbye.
//!
//! The checks read `/proc`: which process of the server holds the server's end of the
//! client's TCP connection (its socket inode, from `/proc/net/tcp{,6}`).
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::{Kind, Options, Pop3Client, TestServer};

/// The inode of the server's end of the TCP connection from client port `client`
/// to server port `server` (both on loopback).
fn server_socket_inode(server: u16, client: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| {
                addr.rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            if f.len() > 9 && port(f[1]) == Some(server) && port(f[2]) == Some(client) {
                return f[9].parse().ok();
            }
        }
    }
    None
}

/// The processes of the server (front and workers) that have socket `inode` open.
fn holders(front: u32, inode: u64) -> Vec<u32> {
    let want = format!("socket:[{inode}]");
    common::process_tree(front)
        .into_iter()
        .filter(|pid| {
            fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == want))
        })
        .collect()
}

/// Which server process holds the server's end of the connection, waited for until
/// exactly one does (the front closes its copy right after the hand-off).
fn holder(server: &TestServer, server_port: u16, client_port: u16) -> u32 {
    let front = server.pid().expect("server runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(inode) = server_socket_inode(server_port, client_port) {
            let h = holders(front, inode);
            if h.len() == 1 {
                return h[0];
            }
            assert!(Instant::now() < deadline, "socket {inode} held by {h:?}");
        }
        assert!(
            Instant::now() < deadline,
            "no socket for client port {client_port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn options() -> Options {
    Options {
        max_connections_per_user: Some(1),
        ..Options::default()
    }
}

/// A session without TLS is served by the worker from the client's own socket; one with
/// TLS stays on the front's socket. Both work the same for the client.
#[test]
fn only_tls_sessions_stay_in_the_front() {
    if Kind::from_env() == Kind::Dovecot {
        return; // nestbox's process layout.
    }
    let server = TestServer::start();
    let front = server.pid().expect("server runs");

    let mut plain = Pop3Client::login(&server, common::USER, common::PASSWORD);
    plain.stat();
    let worker = holder(&server, server.pop3_port, plain.local_port());
    assert_ne!(
        worker, front,
        "the front still holds a cleartext session's socket"
    );
    assert!(
        common::process_tree(front).contains(&worker),
        "held by {worker}, not a worker of {front}"
    );
    assert!(plain.quit().starts_with("+OK"));

    let mut tls = Pop3Client::connect_tls(&server);
    tls.ok(&format!("USER {}", common::USER));
    tls.ok(&format!("PASS {}", common::PASSWORD));
    tls.stat();
    assert_eq!(holder(&server, server.pop3s_port, tls.local_port()), front);
    assert!(tls.quit().starts_with("+OK"));

    // IMAP the same way.
    let mut s = server.connect();
    let client_port = s.local_addr().expect("local").port();
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    s.write_all(
        format!(
            "a LOGIN {} {}\r\nb NOOP\r\n",
            common::USER,
            common::PASSWORD
        )
        .as_bytes(),
    )
    .expect("send");
    for tag in ["a OK", "b OK"] {
        loop {
            line.clear();
            r.read_line(&mut line).expect("answer");
            if line.starts_with(tag) {
                break;
            }
            assert!(!line.is_empty() && line.starts_with('*'), "{line}");
        }
    }
    assert_ne!(holder(&server, server.imap_port, client_port), front);
}

/// The front holds a direct session's place (here: the user's one connection) until the
/// worker reports its end, and gives it back when the worker is killed instead.
#[test]
fn a_direct_sessions_place_is_kept_until_it_ends() {
    if Kind::from_env() == Kind::Dovecot {
        return;
    }
    let server = TestServer::start_with(options());
    let front = server.pid().expect("server runs");
    let mut first = Pop3Client::login(&server, common::USER, common::PASSWORD);
    first.stat();
    // The place is taken: a second login is refused while the first runs.
    let mut second = Pop3Client::connect(&server);
    second.ok(&format!("USER {}", common::USER));
    let answer = second.command(&format!("PASS {}", common::PASSWORD));
    assert!(answer.starts_with("-ERR"), "{answer}");
    drop(second);

    let login_succeeds = |within: Duration| {
        let deadline = Instant::now() + within;
        loop {
            let mut c = Pop3Client::connect(&server);
            c.ok(&format!("USER {}", common::USER));
            let a = c.command(&format!("PASS {}", common::PASSWORD));
            if a.starts_with("+OK") {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "the place was never given back: {a}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A session that ends gives it back.
    assert!(first.quit().starts_with("+OK"));
    let mut again = login_succeeds(Duration::from_secs(10));
    again.stat();

    // A worker killed with its session gives it back too, and the client sees the end.
    let worker = holder(&server, server.pop3_port, again.local_port());
    assert_ne!(worker, front);
    // SAFETY: kill(2) on a worker process of the server this test started.
    unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) };
    let end = again.next_line(Duration::from_secs(10));
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    let mut third = login_succeeds(Duration::from_secs(10));
    third.stat();
    assert!(third.quit().starts_with("+OK"));
}

/// Stopping the server (SIGTERM) ends direct sessions with a goodbye from the worker
/// (IMAP `* BYE`), and the front exits in bounded time.
#[test]
fn shutdown_says_goodbye_on_direct_sessions() {
    if Kind::from_env() == Kind::Dovecot {
        return;
    }
    let mut server = TestServer::start();
    let mut c = common::ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    let started = Instant::now();
    let stopper = std::thread::spawn(move || {
        server.stop();
        server
    });
    let mut bye = false;
    while let Some(line) = c.read_line() {
        if line.starts_with("* BYE") {
            bye = true;
        }
    }
    let server = stopper.join().expect("stop");
    assert!(bye, "no BYE on shutdown:\n{}", server.log());
    assert!(started.elapsed() < Duration::from_secs(10));
}
