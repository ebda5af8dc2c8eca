//! The front's worker processes: one per [`Identity`] (in practice, per
//! uid), started on the first login that needs it, handed every logged-in
//! connection of that identity, and retired a while after its last session
//! ends (SPEC §4).
//!
//! A worker is this same executable (`/proc/self/exe`, so a package upgrade
//! that replaces the file on disk never pairs an old front with a new
//! worker) run as `nestbox worker`, with the identity's uid, gid and groups
//! set between fork and exec, `no_new_privs` set, an empty environment but
//! for the log filter, `/` as its directory, and its control channel as
//! standard input. The first message it gets is its configuration
//! (`handoff::worker_config`: no TLS files, no users file).
//!
//! A worker that dies takes its own sessions with it (their relays see the
//! socket close; a direct session's wait for `Ended` ends with the channel)
//! and is logged; the next login of that identity starts a
//! new one. Retiring is the front's decision alone: it drops the channel of
//! a worker that has had no session for `LINGER` (60 s), so it never hands a
//! connection to a worker that is on its way out.
//!
//! Owns the processes and their channels. It never opens a Maildir and
//! never speaks IMAP.

use std::collections::HashMap;
use std::io;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tokio::sync::Mutex;

use super::channel::{self, Channel};
use super::handoff::{FromWorker, Handoff, ToWorker};
use super::identity::Identity;

/// How long a worker without sessions stays, so that a client reconnecting
/// (a phone waking up, a mail client's next check) finds its folders cached.
const LINGER: Duration = Duration::from_secs(60);

/// How long a hand-off may wait for a worker to take it.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variables a worker keeps: the log filter and colours, the journal stream
/// its inherited stderr is (`logging`), and the switch that makes the change watcher poll
/// instead of using inotify.
const KEPT_ENV: &[&str] = &[
    "NESTBOX_LOG",
    crate::logging::JOURNAL_STREAM,
    "RUST_LOG",
    "NO_COLOR",
    crate::watch::FORCE_POLL_ENV,
];

/// Hand-offs sent to a worker and not yet acknowledged (or, for direct
/// ones, not yet ended), by id.
type Waiting = std::sync::Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>;

/// One running worker process.
pub struct Worker {
    identity: Identity,
    pid: u32,
    /// Shared with the task that reads the worker's acknowledgements.
    chan: Arc<Channel>,
    waiting: Arc<Waiting>,
    /// Direct hand-offs ([`Handoff::direct`]) whose session has not ended.
    ending: Arc<Waiting>,
    sessions: AtomicUsize,
    /// Set when the front ends the worker on purpose (retired, shutdown):
    /// any other end is a failure, logged as one.
    ended_by_front: Arc<AtomicBool>,
}

impl Worker {
    fn kill(&self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }

    /// Tells the worker to finish: it reads end-of-file, lets its sessions
    /// (none, when retired) say goodbye, and exits.
    fn close(&self) {
        let _ = rustix::net::shutdown(self.chan.as_fd(), rustix::net::Shutdown::Write);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.close();
    }
}

/// A worker process ended: logged as an error unless the front ended it.
/// (The table no longer has it: its channel's end removed it already.)
fn exited(id: &Identity, pid: u32, status: io::Result<std::process::ExitStatus>, on_purpose: bool) {
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    if on_purpose {
        tracing::debug!(uid = id.uid, pid, "worker exited ({status})");
    } else {
        tracing::error!(
            uid = id.uid,
            pid,
            "worker ended unexpectedly ({status}); its sessions were closed"
        );
    }
}

/// Reads what a worker sends back: acknowledgements of hand-offs and ends
/// of direct sessions. When the channel ends (the worker exited or was
/// killed), the worker leaves the table at once, before its exit is even
/// reaped, every hand-off still waiting learns it was not taken, and every
/// direct session counts as ended (its socket closed with the process).
async fn read_acknowledgements(
    chan: Arc<Channel>,
    waiting: Arc<Waiting>,
    ending: Arc<Waiting>,
    pool: Weak<Pool>,
    identity: Identity,
    pid: u32,
) {
    let tell = |table: &Waiting, id: u64| {
        let tx = table.lock().ok().and_then(|mut w| w.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    };
    while let Ok(Some((bytes, _))) = chan.recv().await {
        match FromWorker::decode(&bytes) {
            Ok(FromWorker::Taken { id }) => tell(&waiting, id),
            Ok(FromWorker::Ended { id }) => tell(&ending, id),
            Ok(FromWorker::Selected { id, folder }) => {
                if let Some(pool) = pool.upgrade() {
                    pool.sessions.selected(id, folder);
                }
            }
            Err(e) => tracing::error!(uid = identity.uid, pid, "from a worker: {e}"),
        }
    }
    if let Some(pool) = pool.upgrade() {
        pool.forget_pid(&identity, pid).await;
    }
    // Dropping the senders tells their waiters.
    for table in [&waiting, &ending] {
        if let Ok(mut w) = table.lock() {
            w.clear();
        }
    }
}

/// All workers of the front.
pub struct Pool {
    workers: Mutex<HashMap<Identity, Arc<Worker>>>,
    /// The configuration workers get ([`super::handoff::worker_config`]).
    config: RwLock<String>,
    /// For the retire timers and reapers, which must not keep the pool alive.
    me: Weak<Pool>,
    next_id: std::sync::atomic::AtomicU64,
    /// What `nestbox who` shows; the workers' reports of selected folders go there.
    pub sessions: Arc<super::control::Sessions>,
}

/// A session's hold on its worker; the last one dropped starts the linger
/// timer.
pub struct Lease {
    worker: Arc<Worker>,
    pool: Weak<Pool>,
    /// For a direct hand-off: resolves when the worker reports the session
    /// ended, or its channel ends.
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Lease {
    /// The worker process serving the session.
    pub fn pid(&self) -> u32 {
        self.worker.pid
    }

    /// Waits until the worker has ended the direct session this lease was
    /// given for (or the worker is gone). Returns at once for a relayed
    /// session: its relay sees the end itself.
    pub async fn session_ended(&mut self) {
        if let Some(rx) = self.ended.take() {
            let _ = rx.await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.worker.sessions.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(pool) = self.pool.upgrade() {
                pool.retire_later(self.worker.clone());
            }
        }
    }
}

impl Pool {
    pub fn new(worker_config: String) -> Arc<Pool> {
        Arc::new_cyclic(|me| Pool {
            workers: Mutex::new(HashMap::new()),
            config: RwLock::new(worker_config),
            me: me.clone(),
            next_id: std::sync::atomic::AtomicU64::new(1),
            sessions: Arc::default(),
        })
    }

    /// A fresh id for a [`Handoff`].
    pub fn handoff_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands a logged-in connection to the worker of `identity`, starting
    /// one if needed; returns once the worker has confirmed it has the
    /// connection. `stream` is the worker's end of the connection's socket
    /// pair, or, for a [`Handoff::direct`] one, the client's socket. A worker that turns out to be gone, or dies before it confirms,
    /// or does not confirm within `HANDOFF_TIMEOUT` (10 s) (then it is killed:
    /// it is stuck), is replaced once: nothing of the connection has been
    /// read or written yet, so the next worker starts it as if the first
    /// had never been asked.
    pub async fn hand_over(
        &self,
        identity: &Identity,
        handoff: &Handoff,
        stream: std::os::fd::BorrowedFd<'_>,
    ) -> io::Result<Lease> {
        let msg = ToWorker::Session(handoff.clone())
            .encode()
            .map_err(io::Error::other)?;
        let mut last = None;
        for _ in 0..2 {
            let worker = self.get(identity).await?;
            // Counted before sending: the linger timer must not retire it meanwhile.
            worker.sessions.fetch_add(1, Ordering::AcqRel);
            let mut lease = Lease {
                worker: worker.clone(),
                pool: self.me.clone(),
                ended: None,
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            if let Ok(mut w) = worker.waiting.lock() {
                w.insert(handoff.id, tx);
            }
            if handoff.direct {
                // Before sending: the session may end before `Taken` is read.
                let (tx, rx) = tokio::sync::oneshot::channel();
                if let Ok(mut w) = worker.ending.lock() {
                    w.insert(handoff.id, tx);
                }
                lease.ended = Some(rx);
            }
            let taken = tokio::time::timeout(HANDOFF_TIMEOUT, async {
                worker.chan.send(&msg, Some(stream)).await?;
                rx.await.map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "worker ended before taking the connection",
                    )
                })
            })
            .await
            .unwrap_or_else(|_| {
                worker.kill();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "worker did not take the connection in time; killed",
                ))
            });
            if let Ok(mut w) = worker.waiting.lock() {
                w.remove(&handoff.id);
            }
            match taken {
                Ok(()) => return Ok(lease),
                Err(e) => {
                    if let Ok(mut w) = worker.ending.lock() {
                        w.remove(&handoff.id);
                    }
                    tracing::warn!(
                        uid = identity.uid,
                        pid = worker.pid,
                        "worker did not take a connection: {e}"
                    );
                    self.forget(&worker).await;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no worker")))
    }

    /// The running worker of `identity`, or a new one.
    async fn get(&self, identity: &Identity) -> io::Result<Arc<Worker>> {
        let mut workers = self.workers.lock().await;
        if let Some(w) = workers.get(identity) {
            return Ok(w.clone());
        }
        let config = self
            .config
            .read()
            .map(|c| c.clone())
            .map_err(|_| io::Error::other("worker config lock poisoned"))?;
        let worker = self.spawn(identity, &config).await?;
        workers.insert(identity.clone(), worker.clone());
        Ok(worker)
    }

    async fn spawn(&self, identity: &Identity, config: &str) -> io::Result<Arc<Worker>> {
        let (front_end, worker_end) = channel::pair()?;
        let mut cmd = tokio::process::Command::new("/proc/self/exe");
        cmd.arg0("nestbox")
            .arg("worker")
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::from(worker_end))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for var in KEPT_ENV {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        let setup = super::credentials::child_setup(identity);
        // SAFETY: the closure makes raw system calls only and allocates nothing, as the
        // child between fork and exec requires (`credentials::child_setup` says how).
        unsafe {
            cmd.pre_exec(setup);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start a worker: {e}")))?;
        let pid = child.id().unwrap_or(0);
        let worker = Arc::new(Worker {
            identity: identity.clone(),
            pid,
            chan: Arc::new(Channel::new(front_end)?),
            waiting: Arc::default(),
            ending: Arc::default(),
            sessions: AtomicUsize::new(0),
            ended_by_front: Arc::default(),
        });
        tokio::spawn(read_acknowledgements(
            worker.chan.clone(),
            worker.waiting.clone(),
            worker.ending.clone(),
            self.me.clone(),
            identity.clone(),
            pid,
        ));
        worker
            .chan
            .send(
                &ToWorker::Init {
                    config: config.to_string(),
                }
                .encode()
                .map_err(io::Error::other)?,
                None,
            )
            .await?;
        tracing::info!(
            uid = identity.uid,
            gid = identity.gid,
            pid,
            "worker started"
        );
        let id = identity.clone();
        let on_purpose = worker.ended_by_front.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            exited(&id, pid, status, on_purpose.load(Ordering::Acquire));
        });
        Ok(worker)
    }

    /// Removes the worker `pid` of `id` from the table if it is still there
    /// (its channel ended: no new session must go to it).
    async fn forget_pid(&self, id: &Identity, pid: u32) {
        let mut workers = self.workers.lock().await;
        if workers.get(id).is_some_and(|w| w.pid == pid) {
            workers.remove(id);
        }
    }

    /// Removes `worker` from the table if it is still the one there.
    async fn forget(&self, worker: &Arc<Worker>) {
        let mut workers = self.workers.lock().await;
        if workers
            .get(&worker.identity)
            .is_some_and(|w| Arc::ptr_eq(w, worker))
        {
            workers.remove(&worker.identity);
        }
    }

    /// After [`LINGER`], drops `worker` if it still has no session: its
    /// channel closes and it exits.
    fn retire_later(&self, worker: Arc<Worker>) {
        let pool = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER).await;
            let Some(pool) = pool.upgrade() else { return };
            let mut workers = pool.workers.lock().await;
            let idle = worker.sessions.load(Ordering::Acquire) == 0;
            if idle
                && workers
                    .get(&worker.identity)
                    .is_some_and(|w| Arc::ptr_eq(w, &worker))
            {
                workers.remove(&worker.identity);
                tracing::debug!(
                    uid = worker.identity.uid,
                    pid = worker.pid,
                    "worker retired"
                );
            }
        });
    }

    /// A new configuration (SIGHUP): for workers started from now on, and
    /// sent to the running ones for their next sessions.
    pub async fn set_config(&self, config: String) {
        if let Ok(mut c) = self.config.write() {
            c.clone_from(&config);
        }
        let msg = match (ToWorker::Config { config }).encode() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let workers: Vec<Arc<Worker>> = self.workers.lock().await.values().cloned().collect();
        for w in workers {
            if let Err(e) = w.chan.send(&msg, None).await {
                tracing::warn!(
                    uid = w.identity.uid,
                    pid = w.pid,
                    "worker missed the new configuration: {e}"
                );
            }
        }
    }

    /// Asks every worker to end its sessions (SIGTERM: each says `* BYE` to
    /// its clients and exits), for shutdown.
    pub async fn shut_down(&self) {
        let workers = self.workers.lock().await;
        for w in workers.values() {
            w.ended_by_front.store(true, Ordering::Release);
            if let Some(pid) = rustix::process::Pid::from_raw(w.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }

    /// Pids of the running workers (tests, diagnostics).
    pub async fn pids(&self) -> Vec<u32> {
        self.workers.lock().await.values().map(|w| w.pid).collect()
    }
}
