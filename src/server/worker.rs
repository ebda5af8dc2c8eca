//! A worker process (`nestbox worker`, started by the front's `pool`): serves
//! every logged-in connection of one uid, with that uid's rights.
//!
//! It reads its configuration, then hand-offs, from the control channel on
//! standard input; each hand-off brings a connection (the client's TCP
//! socket itself when it has no TLS, else a Unix stream whose other end the
//! front relays to the client) and the session's state at login, and
//! becomes a [`Session`] here. The end of a session on a client's own
//! socket is reported back (`FromWorker::Ended`): the front holds that
//! connection's slots until then. All sessions of the process share
//! one folder registry and one change watcher, so the
//! one-watcher-per-process and kilobytes-per-connection design holds for
//! each user.
//!
//! It ends when the front closes the channel (the front retired it, or the
//! front itself ended) or on SIGTERM/SIGINT; either way its sessions say
//! `* BYE` first, within the drain timeout. It never holds a TLS key, never
//! reads the users file (the front sends neither), never listens on a
//! socket, and never runs as root (the front refuses to start one so).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::channel::Channel;
use super::handoff::{FromWorker, Handoff, ToWorker};
use crate::pop3::Protocol;
use crate::session::{ConnInfo, Io, Session, Shared};
use crate::store::Registry;

/// How long ending waits for sessions to say goodbye.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the worker until the front lets go of it.
pub async fn run() -> io::Result<()> {
    if rustix::process::geteuid().is_root() {
        return Err(io::Error::other(
            "a worker never runs as root (the front starts workers with the user's uid)",
        ));
    }
    super::run::raise_descriptor_limit();
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let chan = Arc::new(Channel::new(stdin)?);
    let cfg = match chan.recv().await? {
        Some((bytes, _)) => match ToWorker::decode(&bytes).map_err(io::Error::other)? {
            ToWorker::Init { config } => {
                crate::config::parse_from_front(&config).map_err(io::Error::other)?
            }
            ToWorker::Session(_) | ToWorker::Config { .. } => {
                return Err(io::Error::other("control channel: no init first"));
            }
        },
        None => return Ok(()),
    };
    let cfg = Arc::new(cfg);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let registry = Registry::live(crate::watch::WatchOptions::default());
    tokio::spawn(super::memory::sweep_idle_folders(registry.clone()));
    let mut shared = Arc::new(Shared::worker(cfg, registry.clone(), shutdown_rx.clone()));
    let sessions = sessions::Counter::default();
    let selections = report_selections(chan.clone());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // SIGHUP is the front's to handle; a worker ignores it.
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            msg = chan.recv() => match msg {
                Ok(Some((bytes, fd))) => match ToWorker::decode(&bytes) {
                    Ok(ToWorker::Session(h)) => {
                        // Confirmed at once: from here the connection is this
                        // process's (the front relays it and will not retry).
                        let ack = FromWorker::Taken { id: h.id }.encode().map_err(io::Error::other)?;
                        if let Err(e) = chan.send(&ack, None).await {
                            tracing::error!("cannot confirm a hand-off: {e}");
                            break;
                        }
                        accept(h, fd, &shared, &sessions, &chan, &selections)
                    }
                    Ok(ToWorker::Config { config }) => match crate::config::parse_from_front(&config) {
                        // New sessions get it; running ones keep theirs.
                        Ok(c) => {
                            shared = Arc::new(Shared::worker(Arc::new(c), registry.clone(), shutdown_rx.clone()));
                        }
                        Err(e) => tracing::error!("new configuration from the front: {e}"),
                    },
                    Ok(ToWorker::Init { .. }) => tracing::error!("control channel: a second init ignored"),
                    Err(e) => tracing::error!("{e}"),
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("worker control channel failed: {e}");
                    break;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, sessions.zero()).await;
    // What the open folders hold that the disk does not (index, cache) is
    // written now rather than rebuilt by the next start.
    let _ = tokio::task::spawn_blocking(move || registry.close_all()).await;
    Ok(())
}

/// Starts the session a hand-off brings.
fn accept(
    handoff: Handoff,
    fd: Option<OwnedFd>,
    shared: &Arc<Shared>,
    sessions: &sessions::Counter,
    chan: &Arc<Channel>,
    selections: &Selections,
) {
    let (id, direct) = (handoff.id, handoff.direct);
    let ended = {
        let chan = chan.clone();
        async move {
            if direct {
                let msg = FromWorker::Ended { id }
                    .encode()
                    .map_err(io::Error::other)?;
                chan.send(&msg, None).await?;
            }
            Ok::<_, io::Error>(())
        }
    };
    let connection = match fd {
        Some(fd) => connection(fd, direct),
        None => Err(io::Error::other(
            "control channel: a hand-off without its connection",
        )),
    };
    let (stream, tcp) = match connection {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("hand-off for {}: {e}", handoff.user);
            tokio::spawn(ended);
            return;
        }
    };
    let shared = shared.clone();
    let guard = sessions.enter();
    let selections = selections.clone();
    tokio::spawn(async move {
        let _guard = guard;
        serve(stream, tcp, handoff, shared, selections).await;
        // The stream is closed by now; the channel is gone only when the
        // front is (then nobody waits for this).
        if let Err(e) = ended.await {
            tracing::debug!("cannot report a session's end: {e}");
        }
    });
}

/// The session's stream from the hand-off's descriptor, and the TCP socket
/// under it when it is the client's own (for [`ConnInfo::tcp`]).
fn connection(fd: OwnedFd, direct: bool) -> io::Result<(Box<dyn Io>, Option<RawFd>)> {
    if direct {
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true)?;
        let tcp = tokio::net::TcpStream::from_std(std)?;
        let raw = tcp.as_raw_fd();
        return Ok((Box::new(tcp), Some(raw)));
    }
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true)?;
    Ok((Box::new(tokio::net::UnixStream::from_std(std)?), None))
}

/// Where sessions report their selected folder: (hand-off id, folder).
type Selections = tokio::sync::mpsc::UnboundedSender<(u64, Option<String>)>;

/// Sends the sessions' selected folders to the front (`nestbox who`), in the order they
/// changed, from one task: a session's observer cannot wait for the channel.
fn report_selections(chan: Arc<Channel>) -> Selections {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Option<String>)>();
    tokio::spawn(async move {
        while let Some((id, folder)) = rx.recv().await {
            let msg = match (FromWorker::Selected { id, folder }).encode() {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!("cannot encode a selected folder: {e}");
                    continue;
                }
            };
            if chan.send(&msg, None).await.is_err() {
                break;
            }
        }
    });
    tx
}

async fn serve(
    stream: Box<dyn Io>,
    tcp: Option<RawFd>,
    h: Handoff,
    shared: Arc<Shared>,
    selections: Selections,
) {
    let pipelined = match h.pipelined() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    // The client's address as the front knew it (a proxy's, if any, stays
    // there: after login nothing asks for the peer).
    let conn = ConnInfo::direct(h.remote, h.tls, tcp);
    let user = crate::auth::User {
        name: h.user.clone(),
        maildir: h.maildir.clone(),
        uid: Some(rustix::process::getuid().as_raw()),
        gid: Some(rustix::process::getgid().as_raw()),
        groups: Vec::new(),
    };
    // The user's quota into their maildirsize before the session looks at
    // it (as the user: this process runs as them). A failure costs the
    // limit, not the session: logged.
    if let crate::session::Role::Worker { registry } = &shared.role {
        registry.set_quota_warnings(
            shared
                .config
                .mail
                .quota_warnings(&h.user, &shared.config.hostname),
        );
    }
    if !h.quota.is_none() {
        let (root, limits) = (h.maildir.clone(), h.quota);
        let keep = shared.config.mail.quota_set;
        let applied =
            tokio::task::spawn_blocking(move || crate::store::apply_quota(&root, limits, keep))
                .await;
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(user = %h.user, error = %e, "cannot write the quota into maildirsize")
            }
            Err(e) => tracing::warn!(user = %h.user, error = %e, "quota task failed"),
        }
    }
    match (h.protocol, h.pop3) {
        (Protocol::Pop3, Some(policy)) => {
            crate::pop3::Pop3::new(stream, shared, conn)
                .resume(user, policy, &pipelined)
                .await
        }
        (Protocol::Pop3, None) => {
            tracing::error!("control channel: a POP3 hand-off without its policy")
        }
        (Protocol::Imap, _) => {
            let mut session = Session::new(stream, shared, conn);
            let id = h.id;
            session.observe_selection(Box::new(move |folder| {
                let _ = selections.send((id, folder.map(str::to_owned)));
            }));
            session.resume(user, &h.tag, &pipelined).await
        }
    }
}

/// A count of live sessions that can be awaited down to zero.
mod sessions {
    use std::sync::Arc;
    use tokio::sync::watch;

    #[derive(Clone)]
    pub struct Counter {
        tx: Arc<watch::Sender<usize>>,
    }

    impl Default for Counter {
        fn default() -> Self {
            Counter {
                tx: Arc::new(watch::channel(0).0),
            }
        }
    }

    pub struct Guard {
        tx: Arc<watch::Sender<usize>>,
    }

    impl Counter {
        pub fn enter(&self) -> Guard {
            self.tx.send_modify(|n| *n += 1);
            Guard {
                tx: self.tx.clone(),
            }
        }

        /// Resolves once no guard is alive.
        pub async fn zero(&self) {
            let mut rx = self.tx.subscribe();
            let _ = rx.wait_for(|n| *n == 0).await;
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.tx.send_modify(|n| *n -= 1);
        }
    }
}
