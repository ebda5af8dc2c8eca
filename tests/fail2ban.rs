//! The shipped fail2ban filter (`contrib/fail2ban/filter.d/nestbox.conf`) against log lines the
//! server wrote in this test, read by fail2ban's own `fail2ban-regex` (issue 20): failed IMAP
//! and POP3 logins from an IPv6 client and from an IPv4 client reaching a dual-stack `[::]`
//! listener (which sees it as an IPv4-mapped address) are each found, with the address to ban
//! as fail2ban must use it (plain IPv4 for the mapped one: a firewall rule for
//! `::ffff:127.0.0.1` would never match IPv4 traffic); a successful login and a right password
//! refused for its protocol are not. Behind a mail proxy (PROXY header, or a trusted
//! proxy's `ID x-originating-ip` with its `x-session-id` on the line) the address found is the
//! proxied client's, never the proxy's.
mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Options, PASSWORD, TestServer, USER};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `lines` one at a time after the greeting, each answered by one line (POP3, or an IMAP
/// command whose tagged answer is its only line); returns the answers.
fn converse(addr: SocketAddr, lines: &[&str]) -> Vec<String> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).ok();
    common::converse(s, lines).1
}

/// Runs `fail2ban-regex` with the shipped filter over `log`; the addresses it found, sorted.
fn fail2ban_ips(server: &TestServer, log: &str) -> Vec<String> {
    let log_file = server.dir.join("fail2ban-input.log");
    std::fs::write(&log_file, log).expect("write log copy");
    let filter = common::repo_root().join("contrib/fail2ban/filter.d/nestbox.conf");
    let out = Command::new("fail2ban-regex")
        .arg("--out")
        .arg("ip")
        .arg(&log_file)
        .arg(&filter)
        .output()
        .expect("run fail2ban-regex");
    assert!(
        out.status.success(),
        "fail2ban-regex: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ips: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    ips.sort();
    ips
}

fn ipv6_dual_stack_available() -> bool {
    let Ok(probe) = std::net::TcpListener::bind("[::]:0") else {
        return false;
    };
    let port = probe.local_addr().map(|a| a.port()).unwrap_or(0);
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), TIMEOUT).is_ok()
        && TcpStream::connect_timeout(&format!("[::1]:{port}").parse().expect("addr"), TIMEOUT)
            .is_ok()
}

#[test]
fn fail2ban_regex_finds_failed_logins_and_nothing_else() {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's log lines");
        return;
    }
    if !common::require_tool("fail2ban-regex", "the fail2ban filter check") {
        return;
    }
    if !ipv6_dual_stack_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI's machine must have IPv6 loopback and a dual-stack [::]"
        );
        eprintln!("SKIPPED: no IPv6 loopback or no dual-stack [::] here");
        return;
    }
    let server = TestServer::start_with(Options {
        dual_stack: true,
        // alice may use IMAP only: her right password over POP3 is refused, not failed.
        passwd_extra: vec![(USER, "nestbox_protocols=imap")],
        ..Options::default()
    });
    let v4 = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let v6 = |port: u16| -> SocketAddr { format!("[::1]:{port}").parse().expect("addr") };
    let wrong = format!("a LOGIN {USER} wrong-{PASSWORD}");
    for addr in [v4(server.imap_port), v6(server.imap_port)] {
        let a = converse(addr, &[&wrong]);
        assert!(a[0].starts_with("a NO"), "{a:?}");
    }
    for addr in [v4(server.pop3_port), v6(server.pop3_port)] {
        let a = converse(addr, &["USER mallory", "PASS guess"]);
        assert!(a[1].starts_with("-ERR"), "{a:?}");
    }
    // Not to be banned: a login that worked, and a right password refused for POP3.
    let ok = converse(
        v6(server.imap_port),
        &[&format!("a LOGIN {USER} {PASSWORD}")],
    );
    assert!(ok[0].starts_with("a OK"), "{ok:?}");
    let refused = converse(
        v4(server.pop3_port),
        &[&format!("USER {USER}"), &format!("PASS {PASSWORD}")],
    );
    assert!(refused[1].starts_with("-ERR"), "{refused:?}");

    // Every line is in the log once the refusal's is (it came last).
    let deadline = Instant::now() + TIMEOUT;
    let log = loop {
        let log = server.log();
        if log.contains("protocol refused:") && log.matches("auth failed:").count() >= 4 {
            break log;
        }
        assert!(Instant::now() < deadline, "log lines missing:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        fail2ban_ips(&server, &log),
        ["127.0.0.1", "127.0.0.1", "::1", "::1"],
        "fail2ban-regex on:\n{log}"
    );
}

/// Sends a PROXY header, then converses as [`converse`].
fn converse_proxied(port: u16, header: &[u8], lines: &[&str]) -> Vec<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).ok();
    s.write_all(header).expect("header");
    common::converse(s, lines).1
}

#[test]
fn fail2ban_regex_finds_proxied_clients_not_the_proxy() {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's log lines");
        return;
    }
    if !common::require_tool("fail2ban-regex", "the fail2ban filter check") {
        return;
    }
    let server = TestServer::start_with(Options {
        proxy: Some(
            "trusted_networks = [\"127.0.0.1/32\"]\nproxy_protocol = [\"{imap}\", \"{pop3}\"]\n",
        ),
        ..Options::default()
    });
    let wrong = format!("a LOGIN {USER} wrong-{PASSWORD}");
    // IMAP and POP3 clients named by PROXY v1 headers, IPv4 and IPv6.
    let a = converse_proxied(
        server.imap_port,
        b"PROXY TCP4 198.51.100.7 127.0.0.1 50000 143\r\n",
        &[&wrong],
    );
    assert!(a[0].starts_with("a NO"), "{a:?}");
    let a = converse_proxied(
        server.pop3_port,
        b"PROXY TCP6 2001:db8::7 ::1 50001 110\r\n",
        &["USER mallory", "PASS guess"],
    );
    assert!(a[1].starts_with("-ERR"), "{a:?}");
    // A Dovecot-style proxy: its own address in the header, the client in ID.
    let a = converse_proxied(
        server.imap_port,
        b"PROXY UNKNOWN\r\n",
        &[
            r#"i ID ("x-originating-ip" "203.0.113.77" "x-session-id" "abc123")"#,
            &wrong,
        ],
    );
    assert!(a[1].starts_with("a NO"), "{a:?}");
    // A proxied success is not banned.
    let a = converse_proxied(
        server.imap_port,
        b"PROXY TCP4 192.0.2.200 127.0.0.1 50002 143\r\n",
        &[&format!("a LOGIN {USER} {PASSWORD}")],
    );
    assert!(a[0].starts_with("a OK"), "{a:?}");

    let deadline = Instant::now() + TIMEOUT;
    let log = loop {
        let log = server.log();
        if log.contains("auth ok:") && log.matches("auth failed:").count() >= 3 {
            break log;
        }
        assert!(Instant::now() < deadline, "log lines missing:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        log.contains("rip=203.0.113.77 mech=LOGIN session=abc123"),
        "{log}"
    );
    assert_eq!(
        fail2ban_ips(&server, &log),
        ["198.51.100.7", "2001:db8::7", "203.0.113.77"],
        "fail2ban-regex on:\n{log}"
    );
}
