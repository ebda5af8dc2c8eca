//! A NUL inside a user name or password never logs in, whichever way it arrives: AUTHENTICATE
//! PLAIN (RFC 4616 §2: the fields are separated by NUL and contain none), the LOGIN
//! mechanism (with and without SASL-IR) and the LOGIN command's literals. Each gets a tagged
//! `BAD` before any password check.
//!
//! The user's password is stored as a bcrypt hash, which reads a password as a C string
//! repeated over 72 bytes: to it, `secret\0secret` is the same key as `secret`. A server that
//! hands such a password to the hash logs the client in.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpStream;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Kind, Options, PASSWORD, TestServer, USER};

/// One connection, read line by line.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(server: &TestServer) -> Conn {
        let mut c = Conn {
            stream: server.connect(),
            buf: Vec::new(),
        };
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next line without CRLF (the stream has a read timeout).
    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return String::from_utf8_lossy(&line).into_owned();
            }
            let mut chunk = [0u8; 4096];
            let n = std::io::Read::read(&mut self.stream, &mut chunk).expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads up to the line tagged `tag` and returns it without the tag.
    fn tagged(&mut self, tag: &str) -> String {
        loop {
            let l = self.line();
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                return rest.to_string();
            }
            assert!(l.starts_with("* "), "{tag}: unexpected {l:?}");
        }
    }

    /// Reads a continuation request.
    fn plus(&mut self, tag: &str) {
        let l = self.line();
        assert!(
            l.starts_with('+'),
            "{tag}: expected a continuation, got {l:?}"
        );
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Replaces the passwd-file under the running server: a new inode, so the next lookup
/// re-reads it.
fn store_bcrypt_password(server: &TestServer) {
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    let tmp = server.dir.join("users.new");
    fs::write(&tmp, format!("{USER}:{{BLF-CRYPT}}{hash}::::::\n")).expect("write users");
    fs::rename(&tmp, server.dir.join("users")).expect("replace users");
}

#[test]
fn nul_in_a_user_name_or_password_never_logs_in() {
    // nestbox's answer (Dovecot says NO [AUTHENTICATIONFAILED]), so never the reference server.
    let server = TestServer::start_kind(Kind::Nestbox, Options::default());
    store_bcrypt_password(&server);
    let twice = format!("{PASSWORD}\0{PASSWORD}");
    let mut c = Conn::open(&server);

    // PLAIN with an extra NUL in the password, as initial response and as answer.
    let plain = b64(format!("\0{USER}\0{twice}").as_bytes());
    c.send(format!("a1 AUTHENTICATE PLAIN {plain}\r\n").as_bytes());
    let r = c.tagged("a1");
    assert!(r.starts_with("BAD"), "a1: {r}");
    c.send(b"a2 AUTHENTICATE PLAIN\r\n");
    c.plus("a2");
    c.send(format!("{plain}\r\n").as_bytes());
    let r = c.tagged("a2");
    assert!(r.starts_with("BAD"), "a2: {r}");

    // The LOGIN mechanism: a NUL in the password, then in the user name.
    for (tag, user, pass) in [
        ("a3", USER.to_string(), twice.clone()),
        ("a4", format!("{USER}\0x"), PASSWORD.to_string()),
    ] {
        c.send(format!("{tag} AUTHENTICATE LOGIN\r\n").as_bytes());
        c.plus(tag);
        c.send(format!("{}\r\n", b64(user.as_bytes())).as_bytes());
        c.plus(tag);
        c.send(format!("{}\r\n", b64(pass.as_bytes())).as_bytes());
        let r = c.tagged(tag);
        assert!(r.starts_with("BAD"), "{tag}: {r}");
    }
    // The LOGIN mechanism with the user name as initial response (SASL-IR).
    c.send(format!("a5 AUTHENTICATE LOGIN {}\r\n", b64(USER.as_bytes())).as_bytes());
    c.plus("a5");
    c.send(format!("{}\r\n", b64(twice.as_bytes())).as_bytes());
    let r = c.tagged("a5");
    assert!(r.starts_with("BAD"), "a5: {r}");

    // The LOGIN command, the password in a synchronizing literal.
    c.send(format!("a6 LOGIN {USER} {{{}}}\r\n", twice.len()).as_bytes());
    c.plus("a6");
    c.send(format!("{twice}\r\n").as_bytes());
    let r = c.tagged("a6");
    assert!(r.starts_with("BAD"), "a6: {r}");

    // Still not logged in, and the right password does log in.
    c.send(b"a7 SELECT INBOX\r\n");
    let r = c.tagged("a7");
    assert!(r.starts_with("BAD"), "a7: {r}");
    let right = b64(format!("\0{USER}\0{PASSWORD}").as_bytes());
    c.send(format!("a8 AUTHENTICATE PLAIN {right}\r\n").as_bytes());
    let r = c.tagged("a8");
    assert!(r.starts_with("OK"), "a8: {r}");
    c.send(b"a9 LOGOUT\r\n");
    let r = c.tagged("a9");
    assert!(r.starts_with("OK"), "a9: {r}");
}
