//! [`Pop3Client`]: a small blocking POP3 client for tests (RFC 1939 framing, RFC 2595 STLS).
//!
//! Owns: reading status lines and multi-line responses (dot-unstuffing, RFC 1939 §3), the
//! STLS upgrade and implicit TLS with rustls against the server's test CA, and typed helpers
//! for STAT, LIST, UIDL and RETR. It checks framing only: what a response must say is for the
//! test to assert.
//!
//! Never: read without a deadline (every read has one, see [`LINE_TIMEOUT`]), talk to anything
//! but the 127.0.0.1 ports of a [`TestServer`], or keep bytes that arrived before a TLS
//! handshake (a server that sends data after STLS's `+OK` is a test failure: RFC 2595 §3.2's
//! injection rule).

use super::TestServer;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one line of a response may take to arrive.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(30);

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// The connection under a [`Pop3Client`]: cleartext, or TLS (implicit or after STLS).
pub enum Pop3Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
    /// Only while switching from `Plain` to `Tls`.
    Gone,
}

impl Pop3Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Pop3Stream::Plain(t) => Some(t),
            Pop3Stream::Tls(s) => Some(&s.sock),
            Pop3Stream::Gone => None,
        }
    }
}

impl Read for Pop3Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Pop3Stream::Plain(t) => t.read(buf),
            Pop3Stream::Tls(s) => s.read(buf),
            Pop3Stream::Gone => Ok(0),
        }
    }
}

impl Write for Pop3Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Pop3Stream::Plain(t) => t.write(buf),
            Pop3Stream::Tls(s) => s.write(buf),
            Pop3Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Pop3Stream::Plain(t) => t.flush(),
            Pop3Stream::Tls(s) => s.flush(),
            Pop3Stream::Gone => Ok(()),
        }
    }
}

/// Does a TLS handshake as a client of `tcp` for the name `localhost` (a SAN of the test
/// certificate), bounded by the socket's timeouts.
pub fn tls_handshake(
    tcp: TcpStream,
    config: &Arc<rustls::ClientConfig>,
) -> Result<Box<TlsStream>, String> {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut s = Box::new(rustls::StreamOwned::new(conn, tcp));
    tcp_timeouts(&s.sock, LINE_TIMEOUT);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(s)
}

fn tcp_timeouts(t: &TcpStream, d: Duration) {
    t.set_read_timeout(Some(d)).ok();
    t.set_write_timeout(Some(d)).ok();
}

/// A blocking POP3 client. Lines are returned without their CRLF.
pub struct Pop3Client {
    stream: Pop3Stream,
    buf: Vec<u8>,
    /// The server's greeting line (empty for [`Pop3Client::from_tcp`]).
    pub greeting: String,
}

impl Pop3Client {
    /// A client over a connected socket whose greeting has not been read.
    pub fn from_tcp(tcp: TcpStream) -> Pop3Client {
        tcp_timeouts(&tcp, LINE_TIMEOUT);
        Pop3Client {
            stream: Pop3Stream::Plain(tcp),
            buf: Vec::new(),
            greeting: String::new(),
        }
    }

    /// Connects to the cleartext POP3 port and reads the greeting, which must be `+OK`.
    pub fn connect(server: &TestServer) -> Pop3Client {
        let mut c = Pop3Client::from_tcp(server.connect_pop3());
        c.read_greeting();
        c
    }

    /// Connects to the implicit-TLS POP3 port (trusting the test CA) and reads the greeting.
    pub fn connect_tls(server: &TestServer) -> Pop3Client {
        let tcp =
            TcpStream::connect(("127.0.0.1", server.pop3s_port)).expect("connect POP3 over TLS");
        let tls = tls_handshake(tcp, &server.tls_client_config()).expect("implicit TLS");
        let mut c = Pop3Client {
            stream: Pop3Stream::Tls(tls),
            buf: Vec::new(),
            greeting: String::new(),
        };
        c.read_greeting();
        c
    }

    /// [`Pop3Client::connect`], then `USER` and `PASS`, both of which must succeed.
    pub fn login(server: &TestServer, user: &str, password: &str) -> Pop3Client {
        let mut c = Pop3Client::connect(server);
        c.ok(&format!("USER {user}"));
        c.ok(&format!("PASS {password}"));
        c
    }

    fn read_greeting(&mut self) {
        let g = self.read_line().expect("POP3 greeting");
        assert!(g.starts_with("+OK"), "POP3 greeting: {g}");
        self.greeting = g;
    }

    /// The client's own port of the connection (to find the server's end of it).
    pub fn local_port(&self) -> u16 {
        self.stream
            .tcp()
            .and_then(|t| t.local_addr().ok())
            .map_or(0, |a| a.port())
    }

    /// Whether the connection is TLS now.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Pop3Stream::Tls(_))
    }

    /// Reads more bytes. Ok(false) at EOF (a reset counts as closed), Err on the deadline.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for the server".into());
        }
        if let Some(t) = self.stream.tcp() {
            t.set_read_timeout(Some(left)).ok();
        }
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err("timed out waiting for the server".into())
            }
            Err(_) => Ok(false),
        }
    }

    /// The next line without its CRLF; Ok(None) when the server closed the connection first
    /// (bytes after the last CRLF are then an error: a POP3 line always ends in CRLF).
    pub fn next_line(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, String> {
        let deadline = Instant::now() + timeout;
        let mut searched = 0;
        loop {
            if let Some(i) = memchr_crlf(&self.buf[searched..]) {
                let i = searched + i;
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return Ok(Some(line));
            }
            searched = self.buf.len().saturating_sub(1);
            if !self.fill(deadline)? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(format!(
                    "connection closed inside a line: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        }
    }

    /// The next line as text (lossy UTF-8), None at EOF. Panics on a timeout.
    pub fn read_line(&mut self) -> Option<String> {
        self.next_line(LINE_TIMEOUT)
            .unwrap_or_else(|e| panic!("POP3 read: {e}"))
            .map(|l| String::from_utf8_lossy(&l).into_owned())
    }

    /// Bytes received but not yet returned as a line.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to POP3 server");
        self.stream.flush().expect("flush to POP3 server");
    }

    /// Sends bytes, reporting a failure instead of panicking (the server may have closed).
    pub fn try_send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .and_then(|_| self.stream.flush())
            .map_err(|e| format!("send: {e}"))
    }

    /// Sends `cmd` CRLF and returns the status line. Panics if the server closes instead.
    pub fn command(&mut self, cmd: &str) -> String {
        self.send_raw(format!("{cmd}\r\n").as_bytes());
        self.read_line()
            .unwrap_or_else(|| panic!("POP3 server closed the connection during {cmd}"))
    }

    /// Sends a command that must answer `+OK`; returns the status line.
    pub fn ok(&mut self, cmd: &str) -> String {
        let status = self.command(cmd);
        assert!(status.starts_with("+OK"), "{cmd} -> {status}");
        status
    }

    /// The body of a multi-line response up to its `.` line: each line dot-unstuffed
    /// (RFC 1939 §3) and followed by CRLF. Panics on EOF or timeout.
    pub fn read_multiline(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line = self
                .next_line(LINE_TIMEOUT)
                .unwrap_or_else(|e| panic!("POP3 multi-line read: {e}"))
                .expect("POP3 server closed inside a multi-line response");
            if line == b"." {
                return out;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Sends a command with a multi-line answer: its body on `+OK`, the status line on `-ERR`.
    pub fn multi(&mut self, cmd: &str) -> Result<Vec<u8>, String> {
        let status = self.command(cmd);
        if status.starts_with("+OK") {
            Ok(self.read_multiline())
        } else {
            Err(status)
        }
    }

    /// `STAT` as (count, octets).
    pub fn stat(&mut self) -> (usize, u64) {
        let status = self.ok("STAT");
        let mut w = status.split(' ').skip(1);
        let n = w.next().and_then(|x| x.parse().ok());
        let size = w.next().and_then(|x| x.parse().ok());
        match (n, size) {
            (Some(n), Some(size)) => (n, size),
            _ => panic!("bad STAT answer: {status}"),
        }
    }

    /// `LIST` as (message number, octets) pairs.
    pub fn list(&mut self) -> Vec<(u32, u64)> {
        pairs(&self.multi("LIST").expect("LIST"), "LIST")
            .into_iter()
            .map(|(n, s)| (n, s.parse().unwrap_or_else(|_| panic!("LIST size {s:?}"))))
            .collect()
    }

    /// `UIDL` as (message number, unique-id) pairs.
    pub fn uidl(&mut self) -> Vec<(u32, String)> {
        pairs(&self.multi("UIDL").expect("UIDL"), "UIDL")
    }

    /// `RETR n`: the message as sent (CRLF lines, unstuffed), or the `-ERR` line.
    pub fn retr(&mut self, n: u32) -> Result<Vec<u8>, String> {
        self.multi(&format!("RETR {n}"))
    }

    /// `STLS`, which must answer `+OK`, then the TLS handshake trusting the test CA.
    pub fn stls(&mut self, server: &TestServer) {
        self.ok("STLS");
        self.start_tls(&server.tls_client_config())
            .expect("TLS handshake after STLS");
    }

    /// The TLS handshake on the cleartext connection (after the test had `STLS` answered).
    /// Bytes the server sent before it are an error: they would be accepted as if protected.
    pub fn start_tls(&mut self, config: &Arc<rustls::ClientConfig>) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "the server sent {:?} before the TLS handshake",
                String::from_utf8_lossy(&self.buf)
            ));
        }
        match std::mem::replace(&mut self.stream, Pop3Stream::Gone) {
            Pop3Stream::Plain(tcp) => {
                self.stream = Pop3Stream::Tls(tls_handshake(tcp, config)?);
                Ok(())
            }
            other => {
                self.stream = other;
                Err("the connection is already TLS".into())
            }
        }
    }

    /// Sends `QUIT` and returns its status line (the server closes after it).
    pub fn quit(mut self) -> String {
        self.command("QUIT")
    }

    /// Closes the connection without QUIT (a dropped client: RFC 1939 §6, no UPDATE state).
    pub fn drop_connection(self) {
        if let Some(t) = self.stream.tcp() {
            let _ = t.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Index of the first CRLF in `b`.
fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// The `n value` lines of a LIST or UIDL body.
fn pairs(body: &[u8], what: &str) -> Vec<(u32, String)> {
    String::from_utf8_lossy(body)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad {what} line {l:?}"));
            let n = n
                .parse()
                .unwrap_or_else(|_| panic!("bad {what} number {l:?}"));
            (n, v.to_string())
        })
        .collect()
}

/// A message file's bytes as POP3 sends them (RFC 1939 §3): every bare LF turned into CRLF.
/// A file that does not end in a line break is returned as it is; RETR then ends its last
/// line with a CRLF that is framing, not message (compare with [`retr_form`]).
pub fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// What [`Pop3Client::retr`] returns for a message file: [`crlf`], with a final CRLF added
/// when the file does not end in a line break (the multi-line framing needs one).
pub fn retr_form(raw: &[u8]) -> Vec<u8> {
    let mut out = crlf(raw);
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}
