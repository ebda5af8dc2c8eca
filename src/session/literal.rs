//! Big literals of a logged-in session: what stays in memory, what goes to
//! disk, and what is refused (issue 15 item 4, "a bound on every byte").
//!
//! Owns the session's side of
//! [`Frame::BigLiteral`](crate::proto::frame::Frame::BigLiteral): the framer stops
//! before the first byte of a literal that would take the command past
//! `limits.max_command_bytes` in memory, and this module decides:
//! - an APPEND whose command, this literal included, fits in
//!   [`KEEP_IN_MEMORY`] keeps it in memory, as every literal used to be:
//!   no file, no extra system call, so small messages cost what they did;
//! - a bigger APPEND message (or CATENATE `TEXT` part, RFC 4469) is
//!   diverted: the session reads its bytes from
//!   the stream itself, at most [`SPOOL_CHUNK`] at a time, and writes them
//!   (on a blocking-pool thread) to the command's spool file, an unnamed
//!   file in the Maildir's `tmp/` ([`crate::store::Spool`]); the parser
//!   then sees only where the literal was, and APPEND saves the message
//!   from the file (linked into the folder when it is the only one);
//! - any other command is refused `NO [TOOBIG]` before a byte is sent: no
//!   other command needs a literal that big (Dovecot caps the same commands
//!   at its 64 KiB line length), and holding it would be the hole this
//!   closes.
//!
//! So what one logged-in connection holds for the commands it sends is at
//! most `KEEP_IN_MEMORY` (plus a line) in the framer and one
//! `SPOOL_CHUNK` while a literal goes to disk, whatever the size of the
//! messages (before issue 15, up to `2 * max_literal_bytes`, 100 MB).
//!
//! Why a fixed 256 KiB for both: it is the bound the session already keeps
//! on output rendered ahead of a slow reader (`FLUSH_AT`), ten connections
//! hold 5 MB at most, and most mail is far smaller (so it stays on the
//! memory path; bench/ measures APPEND with a few KiB). A larger chunk
//! saves nothing measurable: each one costs a hop to the blocking pool and
//! one `pwrite`, which at 256 KiB is well under the time the bytes take to
//! arrive. Not configured: nobody tunes it, and a bound an operator can
//! raise to 50 MB is no bound.
//!
//! Must never: buffer a diverted literal beyond one chunk, write a file
//! the store did not make beneath the user's Maildir (the spool's place is
//! the store's, not the client's, to choose: the mailbox name plays no part
//! in it), or leave a spool behind (the file has no name; a command that
//! ends in any way but a save drops it).
//!
//! A spool that fails part-way (disk full) answers the command `NO` at
//! once and lets the framer discard the rest of it unkept; the client is
//! still sending the literal, which it then learns was refused, as with a
//! literal refused before its `+`. Quota and free space are asked for
//! before the `+` ([`crate::store::Spool::begin`]), so that is rare.

use crate::proto::response::Code;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::store::{Spool, StoreError};

use super::{Input, Session, Status, blocking};

/// The bytes of a command's literals a logged-in session holds in memory:
/// an APPEND message that would take it further goes to disk (see the
/// module doc for why 256 KiB).
pub(crate) const KEEP_IN_MEMORY: u64 = 256 * 1024;

/// Bytes of a diverted literal read from the stream before they are
/// written to the spool.
const SPOOL_CHUNK: usize = 256 * 1024;

impl Session {
    /// Answers [`Frame::BigLiteral`](crate::proto::frame::Frame::BigLiteral):
    /// keeps, diverts (and receives) or refuses the literal. `Some(input)` if the connection ended (or timed
    /// out, or the server is shutting down) while it was being received.
    pub(super) async fn big_literal(
        &mut self,
        size: u64,
        sync: bool,
    ) -> std::io::Result<Option<Input>> {
        let head = self.framer.head();
        let append = self.state.authed().is_some() && crate::proto::parse::is_append(head);
        if !append {
            let tag = self.framer.refuse_literal();
            self.discard_spool();
            // Not logged above debug: like the framer's other refusals, it
            // is the client's to see, and a client could repeat it at will.
            tracing::debug!(
                remote = %self.conn.remote,
                "refused a literal of {size} bytes outside APPEND (limits.max_command_bytes)"
            );
            self.tagged(
                tag.as_deref().unwrap_or("*"),
                &Status::no(Some(Code::TooBig), "Command too large."),
            );
            return Ok(None);
        }
        if head.len() as u64 + size <= KEEP_IN_MEMORY {
            self.framer.keep_literal();
            if sync {
                self.line("+ OK");
            }
            return Ok(None);
        }
        // The first big message of the command makes its spool file; the
        // others go after it in the same file (one descriptor per command,
        // however many messages a MULTIAPPEND carries).
        let begun = match self.store() {
            Ok(store) => {
                let held = self.spool.take();
                blocking(move || -> Result<Spool, StoreError> {
                    let mut spool = match held {
                        Some(s) => s,
                        None => store.spool()?,
                    };
                    spool.begin(size)?;
                    Ok(spool)
                })
                .await
                .and_then(|r| r.map_err(Status::from))
            }
            Err(st) => Err(st),
        };
        match begun {
            Ok(spool) => self.spool = Some(spool),
            Err(status) => {
                let tag = self.framer.refuse_literal();
                self.tagged(tag.as_deref().unwrap_or("*"), &status);
                return Ok(None);
            }
        }
        self.framer.divert_literal();
        if sync {
            self.line("+ OK");
        }
        self.receive_diverted(size).await
    }

    /// Reads the literal being diverted into the spool begun for it.
    async fn receive_diverted(&mut self, size: u64) -> std::io::Result<Option<Input>> {
        let mut shutdown = self.shared.shutdown.clone();
        let cap = usize::try_from(size).unwrap_or(usize::MAX).min(SPOOL_CHUNK);
        let mut chunk = vec![0u8; cap];
        let mut filled = 0;
        loop {
            // What the framer already holds of it (it came with the line).
            let early = self.framer.take_diverted(cap - filled);
            chunk[filled..filled + early.len()].copy_from_slice(early);
            filled += early.len();
            let remaining = self.framer.diverting().unwrap_or(0);
            if filled == cap || (remaining == 0 && filled > 0) {
                chunk = self.write_spool(chunk, filled).await;
                filled = 0;
                if self.spool.is_none() {
                    // Failed and answered: the framer skips the rest.
                    return Ok(None);
                }
            }
            if remaining == 0 {
                self.end_spool_part();
                return Ok(None);
            }
            // The `+` goes out before we wait for what it asks for.
            self.flush().await?;
            self.conn.quickack();
            let want = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(cap - filled);
            let timeout: Duration = self.shared.config.limits.idle_timeout;
            let io = self
                .io
                .as_mut()
                .ok_or_else(|| std::io::Error::other("stream gone"))?;
            let read = tokio::select! {
                r = tokio::time::timeout(timeout, io.read(&mut chunk[filled..filled + want])) => r,
                _ = shutdown.changed() => {
                    self.discard_spool();
                    return Ok(Some(Input::Shutdown));
                }
            };
            match read {
                Err(_) => {
                    self.discard_spool();
                    return Ok(Some(Input::Timeout));
                }
                Ok(Ok(0)) => {
                    self.discard_spool();
                    return Ok(Some(Input::Eof));
                }
                Ok(Ok(n)) => {
                    filled += n;
                    self.framer.diverted_read(n as u64);
                }
                Ok(Err(e)) => {
                    self.discard_spool();
                    return Err(e);
                }
            }
        }
    }

    /// Writes `chunk[..filled]` to the spool on a blocking-pool thread and
    /// gives the buffer back. On failure the command is answered and given
    /// up (the spool is dropped, the framer skips the rest).
    async fn write_spool(&mut self, chunk: Vec<u8>, filled: usize) -> Vec<u8> {
        let Some(mut spool) = self.spool.take() else {
            return chunk;
        };
        let done = blocking(move || {
            let r = spool.write(&chunk[..filled]);
            (spool, chunk, r)
        })
        .await;
        match done {
            Ok((spool, chunk, Ok(()))) => {
                self.spool = Some(spool);
                chunk
            }
            Ok((spool, chunk, Err(e))) => {
                self.spool = Some(spool);
                self.spool_failed(Status::from(StoreError::Io(e)));
                chunk
            }
            Err(status) => {
                self.spool_failed(status);
                Vec::new()
            }
        }
    }

    /// The diverted literal is complete: its part of the spool ends (no
    /// I/O: the spool only notes where the part is).
    fn end_spool_part(&mut self) {
        let Some(mut spool) = self.spool.take() else {
            return;
        };
        match spool.end() {
            Ok(_) => self.spool = Some(spool),
            Err(e) => {
                self.spool = Some(spool);
                self.spool_failed(Status::server_bug("spool", &e));
            }
        }
    }

    /// Gives up the command whose literal was being spooled: answered
    /// with `status` now, the rest of it discarded by the framer.
    fn spool_failed(&mut self, status: Status) {
        let tag = self.framer.abort_diverted();
        self.discard_spool();
        self.tagged(tag.as_deref().unwrap_or("*"), &status);
    }

    /// Drops the spool of the command being assembled, if any. Closing the
    /// file frees its blocks, which on a big file is disk work: done on the
    /// blocking pool, not waited for.
    pub(super) fn discard_spool(&mut self) {
        if let Some(spool) = self.spool.take() {
            drop(tokio::task::spawn_blocking(move || drop(spool)));
        }
    }
}
