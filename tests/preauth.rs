//! What a stranger can make the server hold before logging in (issue 15, item 4): literals of
//! a few KiB at most, and one deadline for reaching login, not one per read.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{ImapClient, Kind, Options, PASSWORD, TestServer, USER};

/// The server's resident memory, in KiB: the front and its workers.
fn rss_kib(pid: u32) -> u64 {
    common::tree_rss_kib(pid)
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read line");
    line
}

fn greeted(server: &TestServer) -> (BufReader<TcpStream>, TcpStream) {
    let s = server.connect();
    let w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    assert!(read_line(&mut r).starts_with("* OK"));
    (r, w)
}

#[test]
fn big_literals_are_refused_before_login() {
    if Kind::from_env() == Kind::Dovecot {
        return; // Dovecot's own pre-login limits differ; this is nestbox's bound.
    }
    let server = TestServer::start();
    let pid = server.pid().expect("pid");
    let before = rss_kib(pid);
    // A synchronising literal over the bound gets NO [TOOBIG] at once and no `+`.
    let (mut r, mut w) = greeted(&server);
    w.write_all(b"a LOGIN {40000000}\r\n").expect("send");
    let answer = read_line(&mut r);
    assert!(answer.starts_with("a NO [TOOBIG]"), "{answer}");
    // Non-synchronising ones are counted down, not kept: 20 connections each sending a
    // 4 MB literal leave the server's memory where it was.
    let chunk = vec![b'x'; 64 * 1024];
    let mut conns = Vec::new();
    for i in 0..20 {
        let (r, mut w) = greeted(&server);
        w.write_all(format!("c{i} LOGIN {{4000000+}}\r\n").as_bytes())
            .expect("send");
        for _ in 0..(4_000_000 / chunk.len()) {
            w.write_all(&chunk).expect("send literal");
        }
        w.write_all(&chunk[..4_000_000 % chunk.len()])
            .expect("send");
        w.write_all(b"\r\nn NOOP\r\n").expect("send");
        conns.push((i, r, w));
    }
    for (i, r, _) in &mut conns {
        let answer = read_line(r);
        assert!(answer.starts_with(&format!("c{i} NO [TOOBIG]")), "{answer}");
        let noop = read_line(r);
        assert!(noop.starts_with("n OK"), "the connection goes on: {noop}");
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 8 * 1024,
        "RSS {before} KiB -> {after} KiB with 20 connections' 4 MB literals before login"
    );
    // A LOGIN with literals of ordinary size still works.
    let (mut r, mut w) = greeted(&server);
    w.write_all(format!("l LOGIN {{{}}}\r\n", USER.len()).as_bytes())
        .expect("send");
    assert!(read_line(&mut r).starts_with('+'));
    w.write_all(format!("{USER} {{{}}}\r\n", PASSWORD.len()).as_bytes())
        .expect("send");
    assert!(read_line(&mut r).starts_with('+'));
    w.write_all(format!("{PASSWORD}\r\n").as_bytes())
        .expect("send");
    let ok = read_line(&mut r);
    assert!(ok.starts_with("l OK"), "{ok}");
}

#[test]
fn after_login_the_configured_literal_size_applies() {
    let server = TestServer::start();
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    let body = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(2000)
    );
    assert!(body.len() > 100_000);
    let status = c.append_split_writes("INBOX", body.as_bytes());
    assert!(status.starts_with("OK"), "{status}");
}

#[test]
fn a_client_that_trickles_is_dropped_at_the_login_deadline() {
    if Kind::from_env() == Kind::Dovecot {
        return; // limits.login_timeout is nestbox's.
    }
    let server = TestServer::start_with(Options {
        login_timeout: Some("2s"),
        ..Options::default()
    });
    let (mut r, mut w) = greeted(&server);
    let start = Instant::now();
    // One byte a quarter second: every read is quick, the login never comes.
    let trickle = std::thread::spawn(move || {
        for b in b"a LOGIN alice wrong-password-that-never-ends"
            .iter()
            .cycle()
        {
            if w.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
            if start.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
    });
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok();
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    let took = start.elapsed();
    assert!(rest.contains("* BYE"), "{rest:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "dropped after {took:?}, deadline 2s"
    );
    trickle.join().expect("trickle thread");
    // Someone else still gets in.
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    c.ok("NOOP");
    assert!(
        server
            .log()
            .contains("no login within limits.login_timeout"),
        "logged when it bites"
    );
}
