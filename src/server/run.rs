//! The daemon: listeners, the accept loop, connection limits, signals
//! (SIGTERM drains, SIGHUP reloads the TLS certificate) and systemd
//! readiness. The TLS handshakes, for implicit-TLS ports and STARTTLS, and
//! the certificate itself are `tls`'s ([`TlsState`]).
//!
//! Shaped like mini-redis: a semaphore bounds connections, each connection
//! is one task running a [`Session`], and a watch channel tells every
//! session to say `* BYE` on shutdown. An idle connection costs one task and
//! its buffers, never a thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::limits::{Limiter, canonical};
use super::tls::TlsState;
use crate::auth::{Authenticator, FailureTracker};
use crate::config::Config;
use crate::session::{ConnInfo, Io, Session, Shared, TlsUpgrade};
use crate::store::Registry;

/// How long shutdown waits for sessions to say goodbye.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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
    let limiter = Arc::new(Limiter::new(
        cfg.limits.max_connections,
        cfg.limits.max_connections_per_ip,
        cfg.limits.max_unauthenticated,
    ));

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
    let drained = async {
        while limiter.in_use() > 0 {
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
        // Refusals are logged by the limiter, once a minute at most.
        let Ok(mut slot) = limiter.admit(remote.ip()) else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let preauth = slot.unauthenticated();
            serve_connection(stream, remote, implicit_tls, shared, tls, preauth).await;
            drop(slot);
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
    preauth: Option<super::limits::Unauthenticated>,
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
    let mut session = Session::new(
        io,
        shared,
        ConnInfo {
            remote,
            tls: implicit_tls,
            tcp,
        },
    );
    if let Some(p) = preauth {
        session.hold_until_login(Box::new(p));
    }
    session.run().await;
    tracing::info!(rip = %remote.ip(), rport = remote.port(), "imap disconnect");
}
