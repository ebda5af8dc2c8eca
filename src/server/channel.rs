//! The control channel between the front process and one worker process:
//! whole messages, each optionally carrying one file descriptor.
//!
//! A Unix `SOCK_SEQPACKET` socket pair: the kernel keeps message boundaries
//! (no framing of our own), delivers in order, and passes descriptors with
//! `SCM_RIGHTS`, which is how a connection's stream reaches the worker. The
//! worker's end is its standard input; the front keeps the other. When
//! either process ends, the other reads end-of-file.
//!
//! Owns the socket calls only (`rustix`'s `sendmsg`/`recvmsg`, driven by
//! tokio's `AsyncFd`); what the messages mean is `handoff`'s. Messages are
//! at most [`MAX_MESSAGE`] bytes; a longer one is an error, never a
//! truncated read.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::{IoSlice, IoSliceMut};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The largest message either side sends (a config file of a few KiB, or a
/// hand-off with at most one pre-login command's worth of pipelined bytes);
/// well under the socket's default send buffer, which bounds a datagram.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// A connected pair of `SOCK_SEQPACKET` sockets, both close-on-exec (the one
/// given to a child as its standard input loses that flag in the `dup2`).
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// One end of the channel.
pub struct Channel {
    fd: AsyncFd<OwnedFd>,
}

impl Channel {
    /// Wraps an end made by [`pair`] (or inherited as standard input).
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        // SAFETY: an `OwnedFd` is open until dropped, which happens only with
        // the `AsyncFd`, and always reports that same descriptor.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }
                .map_err(|e| e.into_parts().1)?;
        Ok(Channel { fd })
    }

    /// Sends one message, with `fd` attached if given. Fails with
    /// `BrokenPipe` when the other process is gone.
    pub async fn send(&self, msg: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        if msg.len() > MAX_MESSAGE {
            return Err(io::Error::other(format!(
                "control message of {} bytes exceeds {MAX_MESSAGE}",
                msg.len()
            )));
        }
        let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
        loop {
            let mut guard = self.fd.writable().await?;
            let sent = guard.try_io(|inner| {
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                    return Err(io::Error::other("control buffer too small"));
                }
                Ok(rustix::net::sendmsg(
                    inner.get_ref(),
                    &[IoSlice::new(msg)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )?)
            });
            match sent {
                Ok(Ok(n)) if n == msg.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::other(format!(
                        "control message cut at {n} of {} bytes",
                        msg.len()
                    )));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives the next message and the descriptor sent with it, if any;
    /// `None` at end-of-file (the other process closed its end or ended).
    pub async fn recv(&self) -> io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|inner| {
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let r = rustix::net::recvmsg(
                    inner.get_ref(),
                    &mut [IoSliceMut::new(&mut buf)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                )?;
                let mut received = None;
                for m in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = m {
                        for fd in fds {
                            // One is expected; any further one is closed here.
                            if received.is_none() {
                                received = Some(fd);
                            }
                        }
                    }
                }
                Ok((r.bytes, r.flags, received))
            });
            match got {
                Ok(Ok((0, _, None))) => return Ok(None),
                Ok(Ok((_, flags, _)))
                    if flags.intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC) =>
                {
                    return Err(io::Error::other("control message truncated"));
                }
                Ok(Ok((n, _, fd))) => {
                    buf.truncate(n);
                    return Ok(Some((buf, fd)));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// The socket, e.g. to hand to a child process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn messages_and_descriptors_cross_intact() {
        let (a, b) = pair().unwrap();
        let (a, b) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        a.send(b"hello", None).await.unwrap();
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        a.send(b"with fd", Some(x.as_fd())).await.unwrap();
        drop(x);
        let (m, fd) = b.recv().await.unwrap().unwrap();
        assert_eq!((m.as_slice(), fd.is_none()), (&b"hello"[..], true));
        let (m, fd) = b.recv().await.unwrap().unwrap();
        assert_eq!(m, b"with fd");
        // The received descriptor is the same socket: bytes written to it reach `y`.
        let mut z = std::os::unix::net::UnixStream::from(fd.unwrap());
        z.write_all(b"ping").unwrap();
        drop(z);
        let mut got = String::new();
        let mut y = y;
        y.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ping");
        drop(a);
        assert!(
            b.recv().await.unwrap().is_none(),
            "end of file once the peer is gone"
        );
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_not_cut() {
        let (a, _b) = pair().unwrap();
        let a = Channel::new(a).unwrap();
        let big = vec![b'x'; MAX_MESSAGE + 1];
        assert!(a.send(&big, None).await.is_err());
    }
}
