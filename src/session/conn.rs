//! What a session runs over and shares: the byte stream ([`Io`]), the
//! process-wide parts ([`Shared`]: configuration, authenticator, folder
//! registry, and which kind of process this is), the connection's facts
//! ([`ConnInfo`]), and what a front hands a worker after login
//! ([`Handover`]). No protocol here.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{Authenticator, User};
use crate::config::Config;
use crate::store::Registry;

/// Any byte stream a session can run over (TCP, TLS over TCP, a Unix
/// socket from the front).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// For [`downcast`]: the server needs the concrete stream back at
    /// STARTTLS and when it hands a logged-in connection to a worker.
    fn as_any(&self) -> &dyn std::any::Any;
    /// The same, to reach the COMPRESS layer a session put under itself
    /// (`session::compress`).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// The concrete stream in `io` if it is a `T`, else `io` back.
///
/// The check calls through `&*io` on purpose: `io.as_any()` on a
/// `Box<dyn Io>` resolves to the box's own `Io` impl (a box of a stream is a
/// stream too) and never matches; that mistake once sent every relayed
/// connection and STARTTLS handshake through a second dynamic layer.
pub fn downcast<T: Io>(io: Box<dyn Io>) -> Result<Box<T>, Box<dyn Io>> {
    if !(*io).as_any().is::<T>() {
        return Err(io);
    }
    // SAFETY: the value in the box is a `T` (checked just above), so the
    // thin pointer to it is a valid `*mut T` from `Box`'s allocation; the
    // same cast `Box<dyn Any>::downcast` makes.
    Ok(unsafe { Box::from_raw(Box::into_raw(io).cast::<T>()) })
}

/// Process-wide things a session needs besides its stream.
pub struct Shared {
    pub config: Arc<Config>,
    /// `None` when no certificate is configured: STARTTLS is not offered.
    pub tls: Option<Arc<dyn TlsUpgrade>>,
    /// Flips to `true` on SIGTERM: sessions say `* BYE` and end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub role: Role,
}

/// Which process a session runs in (SPEC §4): the front checks logins and
/// hands logged-in connections over; a worker serves them from the store.
pub enum Role {
    Front {
        auth: Arc<Authenticator>,
        failures: Arc<crate::auth::FailureTracker>,
    },
    Worker {
        registry: Arc<Registry>,
    },
}

impl Shared {
    /// The front's: sessions end at login with a [`Handover`].
    pub fn front(
        config: Arc<Config>,
        auth: Arc<Authenticator>,
        tls: Option<Arc<dyn TlsUpgrade>>,
        failures: Arc<crate::auth::FailureTracker>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Shared {
            config,
            tls,
            shutdown,
            role: Role::Front { auth, failures },
        }
    }

    /// A worker's: sessions start logged in ([`Session::resume`]).
    pub fn worker(
        config: Arc<Config>,
        registry: Arc<Registry>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Shared {
            config,
            tls: None,
            shutdown,
            role: Role::Worker { registry },
        }
    }
}

/// A connection whose client has just logged in, as the front's session
/// gives it up: the worker of that user's uid takes it from here.
pub struct Handover {
    pub io: Box<dyn Io>,
    pub conn: ConnInfo,
    /// The tag of the login command; the worker answers it.
    pub tag: String,
    pub user: User,
    /// What the client sent after the login command.
    pub pipelined: Vec<u8>,
    /// Which protocol the connection speaks.
    pub protocol: crate::pop3::Protocol,
}

/// Upgrades a plaintext stream to TLS (STARTTLS). A trait so the session
/// does not depend on how the server loads and reloads certificates.
pub trait TlsUpgrade: Send + Sync {
    fn upgrade(&self, io: Box<dyn Io>) -> UpgradeFuture;
}

/// The handshake in progress; resolves to the encrypted stream.
pub type UpgradeFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Box<dyn Io>>> + Send>>;

/// STARTTLS (IMAP) and STLS (POP3) once their OK went out: replaces `io`
/// with TLS over it and marks `conn` as TLS. An error (no certificate, no
/// stream, a failed handshake) means the connection must close.
pub(crate) async fn upgrade_in_place(
    tls: Option<Arc<dyn TlsUpgrade>>,
    io: &mut Option<Box<dyn Io>>,
    conn: &mut ConnInfo,
) -> std::io::Result<()> {
    let (Some(tls), Some(plain)) = (tls, io.take()) else {
        return Err(std::io::Error::other("no TLS or no stream"));
    };
    *io = Some(tls.upgrade(plain).await?);
    conn.tls = true;
    Ok(())
}

/// Facts about the connection, fixed at accept time except the client's
/// address, which a trusted proxy's `ID` fields may still name (`cmd::misc::id`).
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The client's address: the TCP peer's, or the one a trusted proxy gave
    /// (PROXY header, `ID` fields). Logs, limits and failure delays use this.
    pub remote: SocketAddr,
    /// The TCP peer: the client itself, or the proxy it came through.
    /// Whether a password may cross the wire without TLS is the peer's matter.
    pub peer: SocketAddr,
    /// Dovecot's `x-session-id` from a trusted proxy's `ID`, sanitized, for
    /// the login lines.
    pub session_id: Option<String>,
    /// TLS is active (implicit TLS, or after STARTTLS).
    pub tls: bool,
    /// The TCP socket under the stream (also under TLS), for socket options
    /// that must be set again while the connection runs ([`ConnInfo::quickack`]).
    /// The session owns the stream, so the descriptor stays open as long as
    /// the session; `None` for streams that are not TCP sockets.
    pub tcp: Option<std::os::fd::RawFd>,
}

impl ConnInfo {
    /// Asks the kernel to acknowledge what arrives next at once instead of
    /// delaying the ACK (Linux `TCP_QUICKACK`; the kernel drops back to
    /// delayed ACKs on its own, so this is set again before every read).
    /// A client that sends a literal and then its closing CRLF in a second
    /// small write with Nagle's algorithm on (Python's `imaplib`) holds the
    /// CRLF until the literal is acknowledged, and Linux delays that ACK up
    /// to 40 ms on a connection that has answered before: every APPEND took
    /// 40 ms more. The same holds for any small write a client makes while
    /// an earlier one is unacknowledged (pipelined commands of a client
    /// without `TCP_NODELAY`). Dovecot sets the option after every flush.
    /// One system call per read; a failure only costs that latency, so it
    /// is ignored.
    pub fn quickack(&self) {
        if let Some(fd) = self.tcp {
            // SAFETY: `fd` is the socket of the stream this session owns (see
            // `tcp`), open for as long as the session that calls this.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = rustix::net::sockopt::set_tcp_quickack(fd, true);
        }
    }

    /// A connection straight from a client at `remote` (no proxy).
    pub fn direct(remote: SocketAddr, tls: bool, tcp: Option<std::os::fd::RawFd>) -> Self {
        ConnInfo {
            remote,
            peer: remote,
            session_id: None,
            tls,
            tcp,
        }
    }

    /// Plaintext passwords are acceptable on this connection; the rule is
    /// [`AuthConfig::plaintext_allowed`](crate::config::AuthConfig::plaintext_allowed)
    /// (SPEC §3 `auth.plaintext_on_loopback`), which also knows 127.0.0.1 as
    /// it arrives on a dual-stack `[::]` listener (`::ffff:127.0.0.1`), and
    /// `proxy.trust_plaintext` for a peer in `proxy.trusted_networks`. Both
    /// ask about the TCP peer, not the client a proxy names: the password
    /// crosses the wire between the peer and us (nginx on the same machine
    /// talks to nestbox over loopback whoever its client is).
    pub fn plaintext_ok(&self, cfg: &Config) -> bool {
        cfg.auth.plaintext_allowed(self.peer.ip(), self.tls)
            || (cfg.proxy.trust_plaintext && cfg.proxy.trusts(self.peer.ip()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boxed_stream_downcasts_to_what_it_holds_and_only_to_that() {
        let (a, _b) = tokio::io::duplex(64);
        let io: Box<dyn Io> = Box::new(a);
        let io = match downcast::<tokio::net::TcpStream>(io) {
            Ok(_) => panic!("a duplex stream is not TCP"),
            Err(io) => io,
        };
        let io = match downcast::<Box<dyn Io>>(io) {
            Ok(_) => panic!("the box is not a box of a box"),
            Err(io) => io,
        };
        assert!(downcast::<tokio::io::DuplexStream>(io).is_ok());
    }
}
