//! The TRANSACTION and UPDATE states (RFC 1939 §5, §6), run in the user's
//! worker: STAT, LIST, RETR, TOP, DELE, RSET, NOOP, UIDL, CAPA and QUIT
//! over the [`Maildrop`].
//!
//! RETR and TOP send the message as `reply::Stuffer` makes it, from the
//! file: a message up to [`IN_MEMORY`] is read whole; a bigger one a
//! piece at a time, each piece written before the next is read, so a
//! session holds one piece and its output buffer however big the message
//! and however slowly the client reads. A message that may hold a binary
//! part (whose bytes are served as stored, `message::kept`) is converted
//! whole, so its bytes are exactly those its size counts.
//!
//! What a RETR costs (bench/RESULTS.md, session 13, 100,000 messages of
//! 19 KB on average): 29 us of CPU pipelined, spent in stuffing and line-end
//! conversion, `sendto`, the file's read, `openat2` in a big `cur/`,
//! `close`, the `binary` scan and `fstat`, in that order; no step is worth a
//! second design. A client that sends one command at a time (fetchmail)
//! also pays the loopback round trip, 56 us with nestbox and 64 us with
//! Dovecot even for a NOOP: above that floor nestbox spends 0.27 of
//! Dovecot's time per message, and the floor is why the whole round trip
//! comes out at 0.5-0.7 of Dovecot's rather than lower.

use std::sync::Arc;

use super::command::{self, Command, MsgNo, ParseError};
use super::lines::Line;
use super::maildrop::{Maildrop, NoMessage};
use super::reply::{self, RespCode, Stuffer};
use super::session::{Input, Pop3};
use crate::auth::User;
use crate::session::{Role, blocking, nowait_scope};
use crate::store::{MailStore, MessageFile, StoreError, StoreOptions};

/// Messages up to this size (as stored) are read whole for RETR and TOP.
const IN_MEMORY: u64 = 1024 * 1024;

/// Bytes read from a big message file at a time.
const PIECE: usize = 64 * 1024;

/// What the session holds once logged in.
struct Txn {
    store: Arc<MailStore>,
    drop: Maildrop,
}

impl Pop3 {
    /// Opens the maildrop, answers the login, and serves commands until
    /// QUIT or the end of the connection.
    pub(super) async fn transaction(&mut self, user: User, policy: crate::pop3::Pop3Policy) {
        let Some(mut t) = self.open_maildrop(&user, policy).await else {
            return;
        };
        let (n, octets) = t.drop.stat();
        self.ok(&format!("Logged in: {n} messages ({octets} octets)."));
        let quit = self.serve_transaction(&mut t).await;
        let Txn { store, drop } = t;
        // Without QUIT there is no UPDATE state: nothing is deleted (RFC
        // 1939 §6), but what was sent is \Seen.
        let result = blocking(move || drop.update(&store, quit)).await;
        let result = match result {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(st) => Err(st.text),
        };
        if !quit {
            if let Err(e) = result {
                tracing::warn!(user = %user.name, "pop3: cannot set \\Seen: {e}");
            }
            return;
        }
        match result {
            Ok(0) => self.ok("Logging out."),
            Ok(n) => self.ok(&format!("Logging out, {n} messages deleted.")),
            Err(e) => {
                tracing::error!(user = %user.name, "pop3: QUIT could not remove every deleted message: {e}");
                self.err(
                    Some(RespCode::SysTemp),
                    "Some deleted messages were not removed.",
                );
            }
        }
    }

    async fn open_maildrop(&mut self, user: &User, policy: crate::pop3::Pop3Policy) -> Option<Txn> {
        let Role::Worker { registry } = &self.shared.role else {
            return None;
        };
        let registry = registry.clone();
        let root = user.maildir.clone();
        let opened = blocking(move || MailStore::open(root, registry, StoreOptions::default()))
            .await
            .map_err(|s| s.text)
            .and_then(|r| r.map_err(|e| e.to_string()));
        let store = match opened {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(user = %user.name, "cannot open mail store {}: {e}", user.maildir.display());
                self.err(
                    Some(RespCode::SysTemp),
                    "Mail store unavailable, try again later.",
                );
                return None;
            }
        };
        let s = store.clone();
        let opened = crate::session::unlocked::blocking_unlocked(&store, "INBOX", move || {
            Maildrop::open(&s, policy.clone())
        })
        .await;
        match opened {
            Ok(Ok(drop)) => Some(Txn { store, drop }),
            Ok(Err(e)) => {
                tracing::error!(user = %user.name, "pop3: cannot open INBOX: {e}");
                self.err(
                    Some(RespCode::SysTemp),
                    "Cannot open the maildrop, try again later.",
                );
                None
            }
            Err(st) => {
                tracing::error!(user = %user.name, "pop3: cannot open INBOX: {}", st.text);
                self.err(
                    Some(RespCode::SysTemp),
                    "Cannot open the maildrop, try again later.",
                );
                None
            }
        }
    }

    /// Serves commands; true when the session ended with QUIT.
    async fn serve_transaction(&mut self, t: &mut Txn) -> bool {
        let idle = self.shared.config.limits.idle_timeout;
        loop {
            while let Some(line) = self.lines.next_line() {
                let done = match line {
                    Line::TooLong => {
                        self.err(None, "Line too long.");
                        false
                    }
                    Line::Complete(l) => self.transaction_command(&l, t).await,
                };
                if done {
                    return true;
                }
                if self.maybe_flush().await.is_err() {
                    return false;
                }
            }
            if self.flush().await.is_err() {
                return false;
            }
            match self.read_more(idle).await {
                Input::Data => {}
                Input::Eof => return false,
                // RFC 1939 §3: the autologout timer closes without UPDATE
                // and without a reply.
                Input::Timeout => return false,
                Input::Shutdown => {
                    self.err(Some(RespCode::SysTemp), "Server shutting down.");
                    return false;
                }
            }
        }
    }

    /// One command; true after QUIT.
    async fn transaction_command(&mut self, line: &[u8], t: &mut Txn) -> bool {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(ParseError::Unknown) => {
                self.err(None, "Unknown command.");
                return false;
            }
            Err(ParseError::Syntax(text)) => {
                self.err(None, text);
                return false;
            }
        };
        match cmd {
            Command::Stat => {
                let (n, octets) = t.drop.stat();
                self.ok(&format!("{n} {octets}"));
            }
            Command::List(None) => self.list_all(t, false).await,
            Command::Uidl(None) => self.list_all(t, true).await,
            Command::List(Some(n)) => {
                if let Some(n) = self.number(t, n) {
                    let size = t.drop.size(n);
                    self.ok(&format!("{n} {size}"));
                }
            }
            Command::Uidl(Some(n)) => {
                if let Some(n) = self.number(t, n) {
                    let mut text = format!("{n} ").into_bytes();
                    t.drop.push_uidl(n, &mut text);
                    self.ok(&String::from_utf8_lossy(&text));
                }
            }
            Command::Retr(n) => self.send_message(t, n, None).await,
            Command::Top(n, lines) => self.send_message(t, n, Some(lines)).await,
            Command::Dele(MsgNo(n)) => match t.drop.mark_deleted(n) {
                Ok(()) => self.ok("Marked to be deleted."),
                Err(e) => self.no_message(n, e),
            },
            Command::Rset => {
                t.drop.reset();
                let (n, octets) = t.drop.stat();
                self.ok(&format!("{n} messages ({octets} octets)."));
            }
            Command::Noop => self.ok(""),
            Command::Capa => {
                let delay = t.drop.policy().login_delay_secs;
                self.capa(true, delay);
            }
            // The UPDATE state is `transaction`'s, with the maildrop.
            Command::Quit => return true,
            Command::User(_)
            | Command::Pass(_)
            | Command::Apop { .. }
            | Command::Auth { .. }
            | Command::Stls => self.err(None, "Already logged in."),
        }
        false
    }

    /// A usable message number, or `-ERR` written.
    fn number(&mut self, t: &Txn, MsgNo(n): MsgNo) -> Option<usize> {
        match t.drop.uid(n) {
            Ok(_) => Some(n as usize),
            Err(e) => {
                self.no_message(n, e);
                None
            }
        }
    }

    fn no_message(&mut self, n: u32, why: NoMessage) {
        match why {
            NoMessage::OutOfRange => self.err(None, "There is no such message."),
            NoMessage::Deleted => self.err(None, &format!("Message {n} is deleted.")),
        }
    }

    /// LIST or UIDL without an argument.
    async fn list_all(&mut self, t: &Txn, uidl: bool) {
        if uidl {
            self.ok("");
        } else {
            let (n, octets) = t.drop.stat();
            self.ok(&format!("{n} messages ({octets} octets)"));
        }
        for n in t.drop.numbers() {
            reply::push_num(&mut self.out, n as u64);
            self.out.push(b' ');
            if uidl {
                t.drop.push_uidl(n, &mut self.out);
            } else {
                reply::push_num(&mut self.out, t.drop.size(n));
            }
            self.out.extend_from_slice(b"\r\n");
            if self.out.len() >= super::session::FLUSH_AT && self.flush().await.is_err() {
                return;
            }
        }
        reply::end(&mut self.out);
    }

    /// RETR (`top` None) or TOP.
    async fn send_message(&mut self, t: &mut Txn, MsgNo(n): MsgNo, top: Option<u64>) {
        let uid = match t.drop.uid(n) {
            Ok(u) => u,
            Err(e) => return self.no_message(n, e),
        };
        let size = t.drop.size(n as usize);
        let folder = t.drop.folder.clone();
        // In place when nothing waits (most messages: small, cached), as
        // FETCH does; the scope ends before any await.
        let in_place = nowait_scope().map(|_scope| folder.read_message_within(uid, IN_MEMORY));
        let read = match in_place {
            Some(r) => Ok(r),
            None => {
                let f = folder.clone();
                blocking(move || f.read_message_within(uid, IN_MEMORY)).await
            }
        };
        let whole = match read {
            Ok(Ok(Some((data, _)))) => Some(data),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => return self.read_failed(n, e),
            Err(st) => {
                tracing::error!("pop3: RETR: {}", st.text);
                return self.err(Some(RespCode::SysTemp), "Cannot read the message.");
            }
        };
        let sent = match whole {
            Some(data) => {
                self.status_for(size, top);
                self.send_whole(&data, top).await
            }
            None => {
                let f = folder.clone();
                match blocking(move || f.open_message(uid)).await {
                    Ok(Ok(file)) => self.send_file(Arc::new(file), size, top).await,
                    Ok(Err(e)) => return self.read_failed(n, e),
                    Err(st) => {
                        tracing::error!("pop3: RETR: {}", st.text);
                        return self.err(Some(RespCode::SysTemp), "Cannot read the message.");
                    }
                }
            }
        };
        if sent && top.is_none() {
            t.drop.mark_retrieved(n);
        }
    }

    fn status_for(&mut self, size: u64, top: Option<u64>) {
        if top.is_some() {
            self.ok("");
        } else {
            self.ok(&format!("{size} octets"));
        }
    }

    fn read_failed(&mut self, n: u32, e: StoreError) {
        match e {
            // An IMAP client (or another program) removed it after login.
            StoreError::Expunged | StoreError::NotFound => {
                self.err(None, &format!("Message {n} was removed by another client."))
            }
            e => {
                tracing::error!("pop3: cannot read message {n}: {e}");
                self.err(Some(RespCode::SysTemp), "Cannot read the message.");
            }
        }
    }

    /// Sends a message held whole; false if the connection failed.
    async fn send_whole(&mut self, data: &[u8], top: Option<u64>) -> bool {
        let served;
        let (bytes, mut stuffer) = if crate::message::may_have_binary(data) {
            served = crate::message::to_crlf(data);
            (&served[..], Stuffer::raw())
        } else {
            (data, Stuffer::new())
        };
        if let Some(lines) = top {
            stuffer = stuffer.top(lines);
        }
        for piece in bytes.chunks(PIECE) {
            stuffer.feed(piece, &mut self.out);
            if stuffer.is_done() {
                break;
            }
            if self.maybe_flush().await.is_err() {
                return false;
            }
        }
        stuffer.finish(&mut self.out);
        true
    }

    /// Sends a big message from its file a piece at a time. The status
    /// line is written here, once the file is known to be readable.
    async fn send_file(&mut self, file: Arc<MessageFile>, size: u64, top: Option<u64>) -> bool {
        // A binary part changes what the bytes are: look for the word
        // first (a second pass over a file in the page cache).
        let f = file.clone();
        let binary = blocking(move || file_may_have_binary(&f)).await;
        match binary {
            Ok(Ok(true)) => {
                let f = file.clone();
                let all = blocking(move || read_all(&f)).await;
                match all {
                    Ok(Ok(data)) => {
                        self.status_for(size, top);
                        return self.send_whole(&data, top).await;
                    }
                    _ => {
                        self.err(Some(RespCode::SysTemp), "Cannot read the message.");
                        return false;
                    }
                }
            }
            Ok(Ok(false)) => {}
            _ => {
                self.err(Some(RespCode::SysTemp), "Cannot read the message.");
                return false;
            }
        }
        self.status_for(size, top);
        let mut stuffer = Stuffer::new();
        if let Some(lines) = top {
            stuffer = stuffer.top(lines);
        }
        let mut off = 0u64;
        loop {
            let f = file.clone();
            let piece = blocking(move || {
                let mut buf = vec![0u8; PIECE];
                let n = f.read_full(&mut buf, off)?;
                buf.truncate(n);
                Ok::<_, std::io::Error>(buf)
            })
            .await;
            let piece = match piece {
                Ok(Ok(p)) => p,
                _ => {
                    // Mid-reply: the client cannot be told; end the
                    // connection rather than send a truncated message.
                    tracing::error!("pop3: a message file failed while being sent");
                    self.io = None;
                    return false;
                }
            };
            if piece.is_empty() {
                break;
            }
            off += piece.len() as u64;
            stuffer.feed(&piece, &mut self.out);
            if stuffer.is_done() {
                break;
            }
            if self.maybe_flush().await.is_err() {
                return false;
            }
        }
        stuffer.finish(&mut self.out);
        true
    }
}

/// Whether the word `binary` occurs anywhere in the file (pieces overlap
/// by the word's length, so it is found across a boundary).
fn file_may_have_binary(f: &MessageFile) -> std::io::Result<bool> {
    let mut buf = vec![0u8; PIECE + 6];
    let mut off = 0u64;
    let mut carry = 0usize;
    loop {
        let n = f.read_full(&mut buf[carry..], off)?;
        if n == 0 {
            return Ok(false);
        }
        let end = carry + n;
        if crate::message::may_have_binary(&buf[..end]) {
            return Ok(true);
        }
        off += n as u64;
        carry = end.min(6);
        buf.copy_within(end - carry..end, 0);
    }
}

fn read_all(f: &MessageFile) -> std::io::Result<Vec<u8>> {
    let len = f.size()?;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let n = f.read_full(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}
