//! SIGHUP reloads the configuration (issue 15 item 6, SPEC §2): new connections get the new
//! limits, in the front (connection caps) and in the workers (what a logged-in session
//! announces and enforces), while sessions already open keep working; a file that does not
//! load changes nothing; listener changes are logged as needing a restart.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{ImapClient, Options, PASSWORD, TestServer, USER};

fn hup(server: &TestServer) {
    let pid = server.pid().expect("pid");
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP");
}

/// Appends `[limits]` lines to the server's config file.
fn set_limits(server: &TestServer, limits: &str) {
    let cfg = fs::read_to_string(&server.config_file).expect("config");
    let cfg = match cfg.find("[limits]") {
        Some(i) => cfg[..i].to_string(),
        None => cfg,
    };
    fs::write(&server.config_file, format!("{cfg}[limits]\n{limits}")).expect("config");
}

/// Waits until the log has `needle` (reloads are asynchronous to the signal).
fn wait_log(server: &TestServer, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn appendlimit(c: &mut ImapClient) -> u64 {
    let caps = c.ok("CAPABILITY").join(" ");
    caps.split_whitespace()
        .find_map(|w| w.strip_prefix("APPENDLIMIT="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no APPENDLIMIT in {caps}"))
}

/// The greeting of a new connection, or None when it is refused.
fn greeting(server: &TestServer) -> (TcpStream, String) {
    let s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut line = String::new();
    BufReader::new(s.try_clone().expect("clone"))
        .read_line(&mut line)
        .expect("greeting");
    (s, line)
}

#[test]
fn sighup_applies_new_limits_to_new_connections_and_keeps_sessions() {
    let server = TestServer::start_with(Options::default());
    if server.kind != common::Kind::Nestbox {
        return;
    }
    set_limits(
        &server,
        "max_literal_bytes = \"50M\"\nmax_connections_per_ip = 3\n",
    );
    hup(&server);
    wait_log(&server, "configuration reloaded", 1);

    let mut old = ImapClient::login(&server, USER, PASSWORD);
    old.ok("SELECT INBOX");
    assert_eq!(appendlimit(&mut old), 50 * 1024 * 1024);
    // Two more fill the per-address cap of 3: a fourth is refused.
    let (_a, g) = greeting(&server);
    assert!(g.starts_with("* OK"), "{g}");
    let (_b, g) = greeting(&server);
    assert!(g.starts_with("* OK"), "{g}");
    let (_c, g) = greeting(&server);
    assert!(g.starts_with("* BYE"), "over the cap: {g}");

    set_limits(
        &server,
        "max_literal_bytes = \"1M\"\nmax_connections_per_ip = 5\n",
    );
    hup(&server);
    wait_log(&server, "configuration reloaded", 2);
    // The raised cap lets a fourth in; the worker's sessions get the new literal cap.
    let mut new = ImapClient::login(&server, USER, PASSWORD);
    assert_eq!(
        appendlimit(&mut new),
        1024 * 1024,
        "a new session, new limits"
    );
    let big = "x".repeat(2 * 1024 * 1024);
    let (_, status) = new.command(&format!("APPEND INBOX {{{}+}}\r\n{big}", big.len()));
    assert!(
        status.contains("[TOOBIG]"),
        "over the new literal cap: {status}"
    );
    // The session opened before goes on as it was.
    old.ok("NOOP");
    assert_eq!(
        appendlimit(&mut old),
        50 * 1024 * 1024,
        "an open session keeps its limits"
    );
    let msg = "Subject: still here\r\n\r\nbody\r\n";
    old.ok(&format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()));
    old.logout();
    new.logout();
}

#[test]
fn a_broken_config_on_sighup_changes_nothing() {
    let server = TestServer::start_with(Options::default());
    if server.kind != common::Kind::Nestbox {
        return;
    }
    let good = fs::read_to_string(&server.config_file).expect("config");
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    fs::write(
        &server.config_file,
        format!("{good}[limits]\nmax_connections = 0\n"),
    )
    .expect("config");
    hup(&server);
    wait_log(
        &server,
        "reload failed, keeping the running configuration",
        1,
    );
    c.ok("NOOP");
    let mut d = ImapClient::login(&server, USER, PASSWORD);
    d.ok("SELECT INBOX");
    // A listener change is applied only by a restart, and the log says so.
    let moved = good.replace(
        &format!("127.0.0.1:{}", server.imap_port),
        &format!("127.0.0.1:{}", common::free_port()),
    );
    fs::write(&server.config_file, moved).expect("config");
    hup(&server);
    wait_log(&server, "take effect after a restart", 1);
    let mut e = ImapClient::login(&server, USER, PASSWORD);
    e.ok("NOOP");
    for s in [c, d, e] {
        s.logout();
    }
    let _ = std::io::stdout().flush();
}
