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
pub async fn run(cfg: Config) -> io::Result<()> {
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
    if !cfg.pop3.listen.is_empty() || !cfg.pop3.listen_tls.is_empty() {
        tracing::warn!("POP3 is not implemented yet: the [pop3] listeners are ignored");
    }
    for (listener, implicit_tls) in listeners {
        let shared = shared.clone();
        let limiter = limiter.clone();
        let tls = tls.clone();
        tokio::spawn(accept_loop(listener, implicit_tls, shared, limiter, tls));
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    wait_for_signals(tls).await;
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

async fn wait_for_signals(tls: Option<Arc<TlsState>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
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
        },
    );
    session.run().await;
    tracing::info!(rip = %remote.ip(), rport = remote.port(), "imap disconnect");
}
