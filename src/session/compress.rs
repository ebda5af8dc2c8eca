//! COMPRESS=DEFLATE (RFC 4978): the stream layer a session puts under itself
//! once its tagged OK to `COMPRESS DEFLATE` has gone out.
//!
//! Owns [`Deflate`], a byte stream over the session's own ([`Io`]) that
//! inflates what the client sends and deflates what the session writes,
//! raw DEFLATE (RFC 1951, no zlib header) both ways, through
//! `async-compression`'s tokio adaptors (SPEC §7) on flate2's zlib-rs
//! backend (chosen in Cargo.toml: 2-2.5x faster than flate2's default,
//! miniz_oxide, at every level on FETCH output; at level 6 it deflates
//! the 7.3 MB of a 10,000-message `FETCH 1:* (ENVELOPE BODYSTRUCTURE)` to
//! 11.5x smaller in 48 ms, miniz_oxide in 116 ms). It knows nothing of
//! IMAP: the session decides when to switch ([`Session::start_compress`],
//! after the OK's CRLF, RFC 4978 §3) and when a connection has gone quiet
//! ([`Session::rest_compressor`]).
//! It must never buffer output past a flush: every [`AsyncWrite::poll_flush`]
//! is a sync flush (async-compression's `Z_SYNC_FLUSH`), so a response burst,
//! an IDLE push or a NOTIFY update reaches the client whole without waiting
//! for more output, as RFC 4978 §4 asks.
//!
//! # Where it runs
//! Only in a worker: COMPRESS is a command of the authenticated state, and
//! the front's session ends at login. The worker's stream is the client's
//! own TCP socket (cleartext) or the Unix socket the front relays TLS
//! through, so compression happens before TLS, the order RFC 4978 §3
//! requires, and the same way for both.
//!
//! # What was already read
//! RFC 4978 §3: after an OK the client compresses "starting with the first
//! command after COMPRESS". Whatever the session had read past the COMPRESS
//! command line (a client that did not wait for the OK) is therefore the
//! start of the compressed stream and is inflated first ([`Deflate::new`]'s
//! `unread`), as Dovecot's imap_zlib does.
//!
//! # Memory (SPEC §8), and why the compressor rests
//! zlib's state at its defaults (a 32 KiB window, memLevel 8), as zlib-rs
//! allocates it: the inflater 46 KiB (its window: the client may refer back
//! that far, so it lives as long as the connection) and the deflater 371
//! KiB (window, hash chains, pending buffer), against about 20 KiB for a
//! whole idle session without compression. A smaller deflater cannot be
//! asked for: async-compression's only DEFLATE parameter is the level
//! (flate2 could take a smaller window with this backend, but not the
//! memLevel, whose 128 KiB of hash and symbol buffers stay at any window;
//! miniz_oxide's state is fixed at 312 + 42 KiB). So instead the deflater
//! is dropped while the client is quiet: after a sync flush the output is
//! byte-aligned and nothing in it is open, and a raw DEFLATE stream has no
//! header, so a new deflater's blocks simply continue the stream (they
//! never refer back past their own start, which any inflater accepts). A connection that has sent nothing for
//! [`REST_AFTER`], or that is in IDLE, keeps only the inflater and a
//! 4 KiB read buffer. The cost: the first response after a rest is
//! compressed without the earlier responses as dictionary (a short tagged
//! OK takes about 41 bytes instead of 8), and making a deflater costs about
//! 7 us; neither matters for a connection that waited seconds. zlib-rs
//! makes the deflater's state in one allocation, which glibc serves with
//! mmap (it is far above glibc's mmap threshold) and unmaps when it is
//! freed, so the memory goes back to the kernel at the rest itself
//! (bench/RESULTS.md, session 15: 365 KiB per active connection, 53-56 KiB
//! once quiet or in IDLE). The stream is never finished with a final block
//! except at shutdown.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_compression::Level;
use async_compression::tokio::bufread::DeflateDecoder;
use async_compression::tokio::write::DeflateEncoder;
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, BufReader, Chain, ReadBuf, ReadHalf, WriteHalf,
};

use super::{Io, Session};

/// How long a client may be silent before the deflater is dropped (see
/// the module doc): longer than the gaps inside a client's burst of
/// commands (milliseconds), far shorter than any keepalive.
pub(crate) const REST_AFTER: Duration = Duration::from_secs(5);

/// zlib's default, 6, as Dovecot's imap_zlib uses: on FETCH output level 1
/// is four times as fast but sends 1.7 times the bytes (6.6x smaller
/// instead of 11.5x), and bandwidth is what a client asks COMPRESS for.
/// The state is the same size at every level.
const LEVEL: Level = Level::Default;

/// Compressed bytes read from the stream at a time; the inflater's input
/// buffer, kept for the connection's life (the session's own read buffer
/// is the same size).
const READ_BUF: usize = 4096;

/// What the inflater reads: the bytes the session had already read past
/// COMPRESS, then the stream.
type Source = Chain<io::Cursor<Vec<u8>>, ReadHalf<Box<dyn Io>>>;

/// The deflater, writing to the stream.
type Encoder = DeflateEncoder<WriteHalf<Box<dyn Io>>>;

/// The session's stream with DEFLATE both ways.
pub(crate) struct Deflate {
    reader: DeflateDecoder<BufReader<Source>>,
    writer: Writer,
    /// Bytes went into the deflater since its last completed flush: it must
    /// not be dropped before they are out.
    unflushed: bool,
}

enum Writer {
    Active(Encoder),
    /// No deflater (the client is quiet); the next write makes one.
    Resting(WriteHalf<Box<dyn Io>>),
    /// Only while one replaces the other.
    Gone,
}

impl Deflate {
    /// DEFLATE over `io`, inflating `unread` (bytes already taken from
    /// `io`) before anything more from `io`.
    pub(crate) fn new(io: Box<dyn Io>, unread: Vec<u8>) -> Self {
        let (read, write) = tokio::io::split(io);
        let source = io::Cursor::new(unread).chain(read);
        Deflate {
            reader: DeflateDecoder::new(BufReader::with_capacity(READ_BUF, source)),
            writer: Writer::Active(DeflateEncoder::with_quality(write, LEVEL)),
            unflushed: false,
        }
    }

    /// Whether there is a deflater that [`Deflate::rest`] would drop.
    pub(crate) fn can_rest(&self) -> bool {
        matches!(self.writer, Writer::Active(_)) && !self.unflushed
    }

    /// Drops the deflater if everything written went out (see the module
    /// doc); otherwise does nothing.
    pub(crate) fn rest(&mut self) {
        if !self.can_rest() {
            return;
        }
        if let Writer::Active(enc) = std::mem::replace(&mut self.writer, Writer::Gone) {
            self.writer = Writer::Resting(enc.into_inner());
        }
    }

    /// The deflater, made anew after a rest.
    fn encoder(&mut self) -> io::Result<Pin<&mut Encoder>> {
        self.writer = match std::mem::replace(&mut self.writer, Writer::Gone) {
            Writer::Resting(w) => Writer::Active(DeflateEncoder::with_quality(w, LEVEL)),
            other => other,
        };
        match &mut self.writer {
            Writer::Active(enc) => Ok(Pin::new(enc)),
            _ => Err(io::Error::other("deflate stream gone")),
        }
    }
}

impl AsyncRead for Deflate {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Cancel-safe (IDLE drops reads): the decoder returns what it
        // inflated before it would wait, and keeps the input it consumed.
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Deflate {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = match this.encoder() {
            Ok(enc) => enc.poll_write(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.unflushed = true;
        }
        r
    }

    /// A sync flush of the deflater, then of the stream under it.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = match &mut this.writer {
            Writer::Active(enc) => Pin::new(enc).poll_flush(cx),
            Writer::Resting(w) => Pin::new(w).poll_flush(cx),
            Writer::Gone => return Poll::Ready(Err(io::Error::other("deflate stream gone"))),
        };
        if matches!(r, Poll::Ready(Ok(()))) {
            this.unflushed = false;
        }
        r
    }

    /// Ends the DEFLATE stream with its final block, then the stream under it.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.encoder() {
            Ok(enc) => enc.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Session {
    /// COMPRESS DEFLATE after its tagged OK was flushed: from here on the
    /// session's stream is [`Deflate`] over the old one, starting with the
    /// bytes the framer had read past the command (see the module doc).
    pub(crate) fn start_compress(&mut self) {
        if let Some(io) = self.io.take() {
            let unread = self.framer.take_unread();
            self.io = Some(Box::new(Deflate::new(io, unread)));
        }
    }

    /// The DEFLATE layer, if COMPRESS turned it on.
    pub(crate) fn deflate(&mut self) -> Option<&mut Deflate> {
        // Through `**io`: the box's own `Io` impl would never match.
        let io: &mut dyn Io = &mut **self.io.as_mut()?;
        io.as_any_mut().downcast_mut::<Deflate>()
    }

    /// Whether COMPRESS is on for this connection.
    pub(crate) fn compressing(&mut self) -> bool {
        self.deflate().is_some()
    }

    /// Drops the deflater of a connection whose client went quiet (after
    /// [`REST_AFTER`], or in IDLE); it comes back with the next write.
    pub(crate) fn rest_compressor(&mut self) {
        if let Some(d) = self.deflate() {
            d.rest();
        }
    }
}
