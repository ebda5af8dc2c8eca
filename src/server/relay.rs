//! Carries a logged-in TLS connection's bytes between the client and its
//! worker (a connection without TLS goes to the worker itself: `run::Way`).
//!
//! After login the front keeps the client's socket and its TLS state (a
//! worker never holds a TLS key) and relays the decrypted stream to the
//! worker over a Unix socket pair, in both directions, until either side
//! ends. The alternative, passing the TCP socket itself to the worker with
//! kernel TLS, would spare the copy but needs the `tls` kernel module
//! (absent in many containers and VMs), rustls' secret extraction and a
//! second code path for key updates; the relay works everywhere and costs
//! one memory copy and one Unix-socket hop per chunk (see bench/RESULTS.md
//! for what it costs per idle connection and per APPEND).
//!
//! An idle relay holds no buffer: each read goes into a buffer on the stack
//! of the poll that does it, and only bytes the other side cannot take at
//! once are kept, on the heap, until they are written; then that buffer is
//! freed. So an idle connection costs the relay a few dozen bytes, and a
//! busy one at most one chunk per direction (`CHUNK`, 32 KiB).
//!
//! Owns the copying only: no IMAP, no limits (the connection's slot is held
//! by the caller for as long as [`relay`] runs).

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::session::{ConnInfo, Io, downcast};

/// Bytes moved per read. TLS records carry at most 16 KiB; 32 KiB lets a
/// large FETCH go out two records per wake-up.
const CHUNK: usize = 32 * 1024;

/// Relays between `client` (the TCP stream, or TLS over it) and `worker`
/// until the worker ends the session or either side fails. `conn` is used
/// for `TCP_QUICKACK` before each wait for the client (see
/// [`ConnInfo::quickack`]).
pub async fn relay(client: Box<dyn Io>, worker: UnixStream, conn: &ConnInfo) -> io::Result<()> {
    let client = match downcast::<tokio_rustls::server::TlsStream<TcpStream>>(client) {
        Ok(tls) => return Relay::new(*tls, worker, conn).await,
        Err(c) => c,
    };
    // Any other stream (none today: a connection without TLS goes to the
    // worker itself): the same relay, boxed.
    Relay::new(client, worker, conn).await
}

/// Bytes read from one side that the other has not taken yet.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    pos: usize,
    /// The source ended; shut the destination's write side once `buf` is out.
    eof: bool,
}

struct Relay<'a, C> {
    client: C,
    worker: UnixStream,
    conn: &'a ConnInfo,
    up: Pending,
    down: Pending,
    /// The client side's write side is shut: nothing more goes down.
    up_done: bool,
}

impl<'a, C: AsyncRead + AsyncWrite + Unpin> Relay<'a, C> {
    fn new(client: C, worker: UnixStream, conn: &'a ConnInfo) -> Self {
        conn.quickack();
        Relay {
            client,
            worker,
            conn,
            up: Pending::default(),
            down: Pending::default(),
            up_done: false,
        }
    }

    /// Client to worker. Ready when the client has ended and that end was
    /// passed on.
    fn poll_up(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(write_pending(&mut self.up, &mut self.worker, cx))?;
            if self.up.eof {
                ready!(Pin::new(&mut self.worker).poll_shutdown(cx))?;
                return Poll::Ready(Ok(()));
            }
            let mut stack = [MaybeUninit::<u8>::uninit(); CHUNK];
            let mut rb = ReadBuf::uninit(&mut stack);
            match Pin::new(&mut self.client).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    // Going idle: the next client bytes get an immediate ACK.
                    self.conn.quickack();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => self.up.eof = true,
                Poll::Ready(Ok(())) => {
                    let data = rb.filled();
                    forward(&mut self.up, data, &mut self.worker, cx)?;
                }
            }
        }
    }

    /// Worker to client. Ready when the worker has ended the session and
    /// everything it sent is out (and the client's side shut).
    fn poll_down(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(write_pending(&mut self.down, &mut self.client, cx))?;
            // Everything handed to TLS goes out before more is read: the
            // worker's bytes wait in its socket, not in this process.
            ready!(Pin::new(&mut self.client).poll_flush(cx))?;
            if self.down.eof {
                ready!(Pin::new(&mut self.client).poll_shutdown(cx))?;
                return Poll::Ready(Ok(()));
            }
            let mut stack = [MaybeUninit::<u8>::uninit(); CHUNK];
            let mut rb = ReadBuf::uninit(&mut stack);
            ready!(Pin::new(&mut self.worker).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                self.down.eof = true;
            } else {
                let data = rb.filled();
                forward(&mut self.down, data, &mut self.client, cx)?;
            }
        }
    }
}

/// Writes what `p` holds; Ready once it is all out (the buffer is freed).
fn write_pending<W: AsyncWrite + Unpin>(
    p: &mut Pending,
    w: &mut W,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while p.pos < p.buf.len() {
        let n = ready!(Pin::new(&mut *w).poll_write(cx, &p.buf[p.pos..]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        p.pos += n;
    }
    if p.pos > 0 || p.buf.capacity() > 0 {
        *p = Pending {
            eof: p.eof,
            ..Pending::default()
        };
    }
    Poll::Ready(Ok(()))
}

/// Writes freshly read `data` at once as far as `w` takes it; keeps the
/// rest in `p` (which is empty when this is called).
fn forward<W: AsyncWrite + Unpin>(
    p: &mut Pending,
    data: &[u8],
    w: &mut W,
    cx: &mut Context<'_>,
) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        match Pin::new(&mut *w).poll_write(cx, &data[done..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => done += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    if done < data.len() {
        p.buf = data[done..].to_vec();
        p.pos = 0;
    }
    Ok(())
}

impl<C: AsyncRead + AsyncWrite + Unpin> Future for Relay<'_, C> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.up_done {
            match this.poll_up(cx) {
                Poll::Ready(Ok(())) => this.up_done = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        // The session ends when the worker ends it (after LOGOUT, a timeout,
        // or the client's end reaching it).
        this.poll_down(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client TCP connection whose server side is relayed to the returned
    /// Unix stream (the worker's end), by the returned task.
    async fn relayed() -> (
        TcpStream,
        UnixStream,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let (front_end, worker_end) = UnixStream::pair().unwrap();
        let task = tokio::spawn(async move {
            let c = ConnInfo::direct("127.0.0.1:1".parse().unwrap(), false, None);
            relay(Box::new(server_side), front_end, &c).await
        });
        (client, worker_end, task)
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_the_end_follows() {
        let (mut client, mut worker_end, relay) = relayed().await;
        // A large message both ways, larger than CHUNK and than socket buffers.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let send = big.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&send).await.unwrap();
            client
        });
        let mut got = vec![0u8; big.len()];
        worker_end.read_exact(&mut got).await.unwrap();
        assert!(got == big);
        let mut client = writer.await.unwrap();
        worker_end.write_all(&big).await.unwrap();
        let mut back = vec![0u8; big.len()];
        client.read_exact(&mut back).await.unwrap();
        assert!(back == big);
        // The client ends: the worker sees end-of-file; then the worker ends.
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        worker_end.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(worker_end);
        relay.await.unwrap().unwrap();
        let n = client.read(&mut [0u8; 8]).await.unwrap();
        assert_eq!(n, 0, "the client sees the end too");
    }

    #[tokio::test]
    async fn the_worker_ending_ends_the_relay_while_the_client_stays() {
        let (mut client, mut worker_end, relay) = relayed().await;
        worker_end.write_all(b"* BYE\r\n").await.unwrap();
        drop(worker_end);
        tokio::time::timeout(std::time::Duration::from_secs(5), relay)
            .await
            .expect("relay ends")
            .unwrap()
            .unwrap();
        let mut buf = Vec::new();
        client.read_to_end(&mut buf).await.unwrap();
        assert_eq!(buf, b"* BYE\r\n");
    }
}
