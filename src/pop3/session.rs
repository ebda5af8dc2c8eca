//! One POP3 connection: the I/O every state shares (reading lines under a
//! deadline, writing replies, flushing), and the two ways a connection
//! runs, one per kind of process (SPEC §4), as for IMAP:
//! - in the front, [`Pop3::run`]: the greeting and the AUTHORIZATION state
//!   (`authorization`), until a login succeeds; the connection is then
//!   handed to the worker of the user's uid ([`Handover`]);
//! - in that worker, [`Pop3::resume`]: the maildrop is opened, the login
//!   answered, and the TRANSACTION and UPDATE states run (`transaction`).
//!
//! Pipelined commands (RFC 2449 PIPELINING) are answered in order, and
//! their replies go out together: output is flushed when no whole command
//! is left in the input, or when it passes [`FLUSH_AT`]. Never panics on
//! anything a client sends; never holds more than one line of input.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::lines::Lines;
use super::reply::{self, RespCode};
use crate::auth::User;
use crate::session::{ConnInfo, Handover, Io, Shared};

/// Output is written once it passes this (RETR of a big message, UIDL of
/// 100,000 messages): the bound on what a session renders ahead of a
/// client that reads slowly, as `session::FLUSH_AT` is for IMAP.
pub(super) const FLUSH_AT: usize = 256 * 1024;

/// The longest line read. RFC 2449 §4 caps commands at 255 octets; AUTH
/// responses (RFC 5034) may be longer, and the IMAP side's pre-login
/// line cap is the same 8 KiB: a stranger can make us hold no more.
pub(super) const MAX_LINE: usize = 8 * 1024;

/// Bytes read from the socket at a time; held by every waiting connection.
const READ_CHUNK: usize = 4096;

/// Why reading stopped.
pub(super) enum Input {
    Data,
    Eof,
    Timeout,
    Shutdown,
}

/// One POP3 connection.
pub struct Pop3 {
    pub(super) io: Option<Box<dyn Io>>,
    pub(super) lines: Lines,
    pub(super) out: Vec<u8>,
    pub(super) shared: Arc<Shared>,
    pub(super) conn: ConnInfo,
    /// When a connection that has not logged in is dropped.
    pub(super) login_deadline: tokio::time::Instant,
    /// Counts this connection as not logged in (the front's limiter);
    /// dropped at login.
    pub(super) preauth: Option<Box<dyn std::any::Any + Send>>,
    /// The APOP timestamp of the greeting, when APOP is offered.
    pub(super) apop_timestamp: Option<String>,
}

impl Pop3 {
    pub fn new(io: Box<dyn Io>, shared: Arc<Shared>, conn: ConnInfo) -> Self {
        let login_deadline = tokio::time::Instant::now() + shared.config.limits.login_timeout;
        Pop3 {
            io: Some(io),
            lines: Lines::new(MAX_LINE),
            out: Vec::with_capacity(256),
            shared,
            conn,
            login_deadline,
            preauth: None,
            apop_timestamp: None,
        }
    }

    /// Holds `guard` until the client logs in (or the connection ends).
    pub fn hold_until_login(&mut self, guard: Box<dyn std::any::Any + Send>) {
        self.preauth = Some(guard);
    }

    /// Serves a new connection in the front until it logs in (then returns
    /// it for the user's worker) or ends.
    pub async fn run(mut self) -> Option<Handover> {
        let user = self.authorization().await;
        match user {
            Some(user) => {
                let io = self.io.take()?;
                Some(Handover {
                    io,
                    conn: self.conn.clone(),
                    tag: String::new(),
                    user,
                    pipelined: self.lines.take_unread(),
                    protocol: crate::pop3::Protocol::Pop3,
                })
            }
            None => {
                self.close().await;
                None
            }
        }
    }

    /// Continues, in a worker, a connection whose client just logged in as
    /// `user`: opens the maildrop, answers the login, serves the rest.
    pub async fn resume(mut self, user: User, policy: crate::pop3::Pop3Policy, pipelined: &[u8]) {
        self.preauth = None;
        self.lines.push(pipelined);
        self.transaction(user, policy).await;
        self.close().await;
    }

    pub(super) fn ok(&mut self, text: &str) {
        reply::ok(&mut self.out, text);
    }

    pub(super) fn err(&mut self, code: Option<RespCode>, text: &str) {
        reply::err(&mut self.out, code, text);
    }

    /// Writes everything rendered so far.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| std::io::Error::other("connection closed"))?;
        io.write_all(&self.out).await?;
        io.flush().await?;
        self.out.clear();
        if self.out.capacity() > FLUSH_AT * 2 {
            self.out = Vec::with_capacity(256);
        }
        Ok(())
    }

    /// Writes if the output has grown past [`FLUSH_AT`].
    pub(super) async fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await
        } else {
            Ok(())
        }
    }

    /// Reads more input, waiting at most `wait`, and at once on shutdown.
    pub(super) async fn read_more(&mut self, wait: Duration) -> Input {
        let Some(io) = self.io.as_mut() else {
            return Input::Eof;
        };
        self.conn.quickack();
        let mut shutdown = self.shared.shutdown.clone();
        if *shutdown.borrow() {
            return Input::Shutdown;
        }
        let mut chunk = [0u8; READ_CHUNK];
        tokio::select! {
            r = tokio::time::timeout(wait, io.read(&mut chunk)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => Input::Eof,
                Ok(Ok(n)) => {
                    self.lines.push(&chunk[..n]);
                    Input::Data
                }
                Err(_) => Input::Timeout,
            },
            _ = shutdown.wait_for(|s| *s) => Input::Shutdown,
        }
    }

    /// One more line from the client within `wait` (an AUTH response):
    /// `None` on timeout, end of input, shutdown or a line too long.
    pub(super) async fn read_line(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.lines.next_line() {
                Some(super::lines::Line::Complete(l)) => return Some(l),
                Some(super::lines::Line::TooLong) => return None,
                None => {}
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_more(left).await {
                Input::Data => {}
                _ => return None,
            }
        }
    }

    /// Flushes what is left and closes the connection.
    pub(super) async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.flush()).await;
        if let Some(mut io) = self.io.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), io.shutdown()).await;
        }
    }

    /// The CAPA list (RFC 2449 §5), as it holds in the current state.
    pub(super) fn capabilities(&self, logged_in: bool, login_delay: u64) -> Vec<String> {
        let mut caps: Vec<String> = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !logged_in {
            if self.conn.plaintext_ok(&self.shared.config) {
                caps.push("USER".into());
                caps.push(format!("SASL {}", crate::auth::sasl::MECHANISMS.join(" ")));
            }
            if self.shared.tls.is_some() && !self.conn.tls {
                caps.push("STLS".into());
            }
        }
        // Nothing is ever deleted by the server on its own: every message
        // stays until a client deletes it.
        caps.push("EXPIRE NEVER".into());
        if login_delay > 0 {
            caps.push(format!("LOGIN-DELAY {login_delay}"));
        }
        caps.push("IMPLEMENTATION nestbox".into());
        caps
    }

    /// Writes the CAPA reply.
    pub(super) fn capa(&mut self, logged_in: bool, login_delay: u64) {
        let caps = self.capabilities(logged_in, login_delay);
        self.ok("Capability list follows.");
        for c in caps {
            reply::line(&mut self.out, &c);
        }
        reply::end(&mut self.out);
    }
}
