//! Reading the client: waiting for the next complete command (or what
//! ends the wait instead: EOF, a timeout, shutdown, a NOTIFY event), and
//! for one raw line (AUTHENTICATE's responses, IDLE's DONE).
//!
//! Owns the read deadlines (before login one for the whole connection,
//! after it `limits.idle_timeout` per wait), the flush of everything owed
//! before a wait, and the moment a quiet COMPRESS connection's deflater goes
//! (`session::compress`). It never parses a command (the framer and
//! `proto::parse` do) and never takes more from the socket than one small
//! buffer's worth at a time: what a waiting connection holds is part of the
//! memory per idle connection (SPEC §8).

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{OUT_KEEP, READ_CHUNK, Session, State, compress, notify};
use crate::proto::frame::Frame;

/// Why reading a command stopped.
pub(super) enum Input {
    Frame(Frame),
    /// Something NOTIFY watches changed (RFC 5465).
    Notify(notify::Wake),
    Eof,
    Timeout,
    Shutdown,
}

impl Session {
    /// How long the next read may wait: before login, what is left of the
    /// login deadline (one deadline for the whole connection, not one per
    /// read, so a byte every few seconds cannot hold a slot forever).
    pub(crate) fn read_timeout(&self) -> Duration {
        match self.state {
            State::NotAuthenticated => self
                .login_deadline
                .saturating_duration_since(tokio::time::Instant::now()),
            _ => self.shared.config.limits.idle_timeout,
        }
    }

    /// Reads until the framer yields a frame.
    pub(super) async fn read_frame(&mut self) -> std::io::Result<Input> {
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            // Again for every read: before login it shrinks to the deadline.
            let timeout = self.read_timeout();
            match self.framer.next_frame() {
                Some(Frame::BigLiteral { size, sync }) => {
                    if let Some(end) = self.big_literal(size, sync).await? {
                        return Ok(end);
                    }
                    continue;
                }
                Some(f) => return Ok(Input::Frame(f)),
                None => {}
            }
            if *shutdown.borrow() {
                return Ok(Input::Shutdown);
            }
            // Everything owed goes out before waiting for the client (it
            // may be waiting for exactly that, e.g. a continuation).
            self.flush().await?;
            if self.out.capacity() > OUT_KEEP {
                // Don't keep a big FETCH's buffer for the life of an idle connection.
                self.out = Vec::with_capacity(512);
            }
            self.conn.quickack();
            let can_rest = self.deflate().is_some_and(|d| d.can_rest());
            let mut rest = false;
            // Small on purpose: it lives in every idle connection's task.
            let mut buf = [0u8; READ_CHUNK];
            let io = self
                .io
                .as_mut()
                .ok_or_else(|| std::io::Error::other("stream gone"))?;
            // NOTIFY's events go out between commands only, never into
            // the middle of one the client is still sending.
            let selected = match &mut self.state {
                State::Selected(_, view) => Some(&mut view.watch),
                _ => None,
            };
            let between = self.framer.buffered() == 0;
            let notify = async {
                match self.notify.as_mut() {
                    Some(n) if between => n.wait(selected).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                r = tokio::time::timeout(timeout, io.read(&mut buf)) => match r {
                    Err(_) => return Ok(Input::Timeout),
                    Ok(Ok(0)) => return Ok(Input::Eof),
                    Ok(Ok(n)) => self.framer.push(&buf[..n]),
                    Ok(Err(e)) => return Err(e),
                },
                _ = shutdown.changed() => return Ok(Input::Shutdown),
                w = notify => return Ok(Input::Notify(w)),
                // A quiet client: COMPRESS's deflater goes (`session::
                // compress`). The read starts over (it is cancel-safe), its
                // timeout too: the idle limit grows by REST_AFTER, once.
                _ = tokio::time::sleep(compress::REST_AFTER), if can_rest => {
                    rest = true;
                }
            }
            if rest {
                self.rest_compressor();
            }
        }
    }

    /// Reads one raw line (AUTHENTICATE responses, IDLE's DONE).
    pub(crate) async fn read_line(
        &mut self,
        timeout: Duration,
    ) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            match self.framer.next_line() {
                Some(Ok(l)) => return Ok(Some(l)),
                Some(Err(())) => return Err(std::io::Error::other("line too long")),
                None => {}
            }
            self.conn.quickack();
            let mut buf = [0u8; READ_CHUNK];
            let io = self
                .io
                .as_mut()
                .ok_or_else(|| std::io::Error::other("stream gone"))?;
            match tokio::time::timeout(timeout, io.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => self.framer.push(&buf[..n]),
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}
