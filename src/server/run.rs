//! The daemon: listeners, the accept loop, connection limits, signals
//! (SIGTERM drains, SIGHUP reloads the TLS certificate) and systemd
//! readiness. The TLS handshakes, for implicit-TLS ports and STARTTLS, and
//! the certificate itself are `tls`'s ([`TlsState`]).
//!
//! Shaped like mini-redis: a semaphore bounds connections, each connection
//! is one task running a [`Session`], and a watch channel tells every
//! session to say `* BYE` on shutdown. An idle connection costs one task and
//! its buffers, never a thread.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::tls::TlsState;
use crate::auth::{Authenticator, FailureTracker};
use crate::config::Config;
use crate::session::{ConnInfo, Io, Session, Shared, TlsUpgrade};
use crate::store::Registry;

/// How long shutdown waits for sessions to say goodbye.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounds total connections and connections per remote address.
struct Limiter {
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

/// Releases a connection's slot when the connection ends.
struct Slot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.limiter.per_ip.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

impl Limiter {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let permit = self.total.clone().try_acquire_owned().ok()?;
        let mut m = self.per_ip.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(Slot {
            limiter: self.clone(),
            ip,
            _permit: permit,
        })
    }
}

/// Runs the server until SIGTERM/SIGINT.
///
/// `on_ready` is called once, after every listener is bound and just before systemd is
/// told READY=1; an address that cannot be bound returns an error before that, so a caller
/// that announces readiness from `on_ready` (as `nestbox demo` does) never announces a
/// server that is not there.
pub async fn run(cfg: Config, on_ready: impl FnOnce()) -> io::Result<()> {
    let cfg = Arc::new(cfg);
    let auth = Arc::new(Authenticator::from_config(&cfg).map_err(io::Error::other)?);
    let tls = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(c), Some(k)) => Some(Arc::new(TlsState::load(c, k)?)),
        _ => None,
    };
    if tls.is_none() && !cfg.imap.listen_tls.is_empty() {
        return Err(io::Error::other(
            "imap.listen_tls needs tls.cert and tls.key",
        ));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let registry = Registry::new();
    let _watcher = super::live::attach(&registry, crate::watch::WatchOptions::default());
    tokio::spawn(super::memory::sweep_idle_folders(registry.clone()));
    let shared = Arc::new(Shared {
        config: cfg.clone(),
        auth,
        registry,
        tls: tls.clone().map(|t| t as Arc<dyn TlsUpgrade>),
        failures: Arc::new(FailureTracker::new(cfg.limits.auth_failures_before_delay)),
        shutdown: shutdown_rx,
    });
    let limiter = Arc::new(Limiter {
        total: Arc::new(Semaphore::new(cfg.limits.max_connections)),
        per_ip: Mutex::new(HashMap::new()),
        max_per_ip: cfg.limits.max_connections_per_ip,
    });

    let mut listeners = Vec::new();
    for addr in &cfg.imap.listen {
        listeners.push((bind(*addr).await?, false));
    }
    for addr in &cfg.imap.listen_tls {
        listeners.push((bind(*addr).await?, true));
    }
    // POP3 is not served yet: `Config::warnings` tells about any [pop3] listeners.
    for (listener, implicit_tls) in listeners {
        let shared = shared.clone();
        let limiter = limiter.clone();
        let tls = tls.clone();
        tokio::spawn(accept_loop(listener, implicit_tls, shared, limiter, tls));
    }
    let signals = install_signals();
    on_ready();
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    wait_for_signals(signals, tls).await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let max = cfg.limits.max_connections;
    let drained = async {
        while limiter.total.available_permits() < max {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    Ok(())
}

async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    tracing::info!("listening on {addr}");
    Ok(l)
}

/// SIGTERM, SIGINT and SIGHUP, caught from the moment this returns.
type Signals = (
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
);

/// Installs the handlers; done before readiness is announced, so a SIGTERM sent the moment
/// the server says it is ready (by systemd or a script) drains instead of killing it.
fn install_signals() -> Option<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(term), Ok(int), Ok(hup)) => Some((term, int, hup)),
        _ => None,
    }
}

async fn wait_for_signals(signals: Option<Signals>, tls: Option<Arc<TlsState>>) {
    let Some((mut term, mut int, mut hup)) = signals else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                if let Some(t) = &tls {
                    t.reload();
                }
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    implicit_tls: bool,
    shared: Arc<Shared>,
    limiter: Arc<Limiter>,
    tls: Option<Arc<TlsState>>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // An IPv4 client of a dual-stack `[::]` listener arrives as `::ffff:a.b.c.d`: from
        // here on it is a.b.c.d, so that it has one per-IP bucket whichever listener it
        // used, and the log (fail2ban bans `rip=`) names the address its packets carry.
        let remote = canonical(remote);
        let Some(slot) = limiter.admit(remote.ip()) else {
            tracing::warn!(rip = %remote.ip(), "connection refused: too many connections");
            tokio::spawn(refuse(stream));
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, remote, implicit_tls, shared, tls).await;
        });
    }
}

/// `remote` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address.
fn canonical(remote: SocketAddr) -> SocketAddr {
    SocketAddr::new(remote.ip().to_canonical(), remote.port())
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        stream.write_all(b"* BYE Too many connections, try again later.\r\n"),
    )
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    implicit_tls: bool,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsState>>,
) {
    tracing::info!(rip = %remote.ip(), rport = remote.port(), tls = implicit_tls, "imap connect");
    let tcp = Some(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let io: Box<dyn Io> = if implicit_tls {
        let Some(tls) = tls else { return };
        match tls.upgrade(Box::new(stream)).await {
            Ok(io) => io,
            Err(e) => {
                tracing::info!(rip = %remote.ip(), "TLS handshake failed: {e}");
                return;
            }
        }
    } else {
        Box::new(stream)
    };
    let session = Session::new(
        io,
        shared,
        ConnInfo {
            remote,
            tls: implicit_tls,
            tcp,
        },
    );
    session.run().await;
    tracing::info!(rip = %remote.ip(), rport = remote.port(), "imap disconnect");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_address_shares_the_ipv4_bucket() {
        let limiter = Arc::new(Limiter {
            total: Arc::new(Semaphore::new(10)),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: 1,
        });
        let v4 = canonical("192.0.2.7:1000".parse().unwrap());
        let mapped = canonical("[::ffff:192.0.2.7]:1001".parse().unwrap());
        assert_eq!(mapped, "192.0.2.7:1001".parse().unwrap());
        let _held = limiter.admit(v4.ip()).unwrap();
        assert!(limiter.admit(mapped.ip()).is_none());
        // Real IPv6 addresses are left as they are.
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        assert!(limiter.admit(v6.ip()).is_some());
    }
}
