//! Live sync: how the store keeps its open folders in step with changes
//! made by anyone (the MTA, mutt, a script, another nestbox session) as
//! they happen, so that a change resyncs its folder once and wakes every
//! session that has it selected.
//!
//! The process has one change watcher (`crate::watch`: one inotify
//! instance, or polling). The [`super::Registry`] made with live sync asks
//! [`Live::follow`] to follow each folder it opens; each followed folder
//! gets one [`Feed`], a small task that on each coalesced burst of events
//! runs one *round*: off the runtime, [`Folder::sync_for_watcher`] with the
//! names of the entries that changed (inotify), or without names, a rescan,
//! when they are not known. The sync notifies sessions through the
//! folder's own change signal; sessions turn that into their own untagged
//! responses. A feed ends when its folder is closed or dropped (then its
//! inotify watches go too).
//!
//! Policy, all here:
//! - **Trust.** While the watcher delivers every entry change by name
//!   (inotify, watching since before the folder's first scan, no overflow
//!   since the last full round), the folder trusts the state the feed keeps
//!   and sessions' syncs read no directory ([`Folder::set_events_live`]).
//!   A round the names cannot describe turns that off until it is done.
//! - **Failure.** The names a failed round took are lost: the next round
//!   rescans instead, with trust off meanwhile.
//! - **Locks.** Before a round the feed waits for another program's
//!   uidlist lock on tokio timers (`dotlock::wait_free`), and the round's
//!   sync never waits for it in place (it stops and is run again), so a
//!   stalled folder never holds a blocking-pool thread, nor its own state
//!   that SELECTs would queue behind.
//! - **Gone.** A directory missing for one round may be in the middle of a
//!   replacement (`mv Maildir aside; mv backup Maildir`); only one still
//!   missing after [`GONE_GRACE`] is marked gone, which ends every session
//!   that has it selected.
//! - **Persistence.** A round writes nothing of nestbox's own; the feed
//!   writes what it left (index, cache entries) [`PERSIST_AFTER`] later,
//!   once the sessions it woke have looked, and runs one more quiet round
//!   [`QUIET_ROUND_AFTER`] after a burst, so the index records a settled
//!   directory stamp.
//!
//! Never: one inotify instance or thread per session, a sync or a file
//! write on the async runtime's threads, or a thread held while another
//! program's lock is waited for.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::maildir::{dotlock, folder::LOCK_STALE_AFTER};
use super::{EntryEvent, Folder, Result, StoreError};
use crate::watch::{Changes, EntryChange, FolderWatch, Mode, WatchOptions, Watcher};

/// How long after a round the folder writes what the round left (its
/// index, cache entries): long enough for the sessions the round woke to
/// have taken their look, so none of them waits behind the write.
const PERSIST_AFTER: Duration = Duration::from_millis(20);

/// How long after the last round of a burst the feed runs one more, quiet
/// round (on inotify): the directories' stamp it vouches for is then
/// settled (older than a timestamp tick, 50 ms, when read), and the folder
/// records it as if it had scanned then, so that its index lets the next
/// process skip reading the directories. Without it, the last stamp of a
/// burst (a `STORE 1:*`, a delivery) is read within milliseconds of the
/// last change, and a restart rescans 100,000 entries (0.2 s).
const QUIET_ROUND_AFTER: Duration = Duration::from_millis(200);

/// How long a folder whose directory vanished may take to come back
/// before its sessions are told it is gone: a `mv` pair takes
/// microseconds, a round that ran between the two finds nothing for a
/// moment.
const GONE_GRACE: Duration = Duration::from_millis(500);

/// How long a round waits before trying again when another program took
/// the uidlist lock between the wait for it and the sync.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// The process's change watcher, as the registry uses it.
pub(super) struct Live {
    watcher: Arc<Watcher>,
    runtime: tokio::runtime::Handle,
}

impl Live {
    /// Starts the watcher. Must be called inside the tokio runtime.
    pub(super) fn start(opts: WatchOptions) -> Live {
        Live {
            watcher: Watcher::new(opts),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// A watch of a Maildir root: its folders appearing, going or being
    /// renamed, and its `subscriptions` file replaced (NOTIFY's
    /// MailboxName and SubscriptionChange, RFC 5465 §5.4-5.5).
    pub(super) fn watch_root(&self, root: &std::path::Path) -> FolderWatch {
        self.watcher.watch_root(root)
    }

    /// Follows a folder just opened, from before its first scan: from now
    /// on (on inotify) every entry change reaches it by name.
    pub(super) fn follow(&self, folder: &Arc<Folder>) {
        let changes = self.watcher.watch_folder(folder.dir());
        folder.set_events_live(self.watcher.mode() == Mode::Inotify);
        let feed = Feed {
            folder: Arc::downgrade(folder),
            dir: folder.dir().to_path_buf(),
            name: folder.name().to_string(),
            alive: folder.watch(),
            changes,
            watcher: self.watcher.clone(),
            rescan: false,
            persist_pending: Arc::new(AtomicBool::new(false)),
        };
        self.runtime.spawn(feed.run());
    }
}

/// One followed folder's task (see the module doc).
struct Feed {
    folder: Weak<Folder>,
    dir: PathBuf,
    name: String,
    /// The folder's change signal: closed when the folder is dropped.
    alive: watch::Receiver<u64>,
    changes: FolderWatch,
    watcher: Arc<Watcher>,
    /// The last round failed: the names it took were not applied.
    rescan: bool,
    /// A write of what the rounds left (index, cache) is scheduled.
    persist_pending: Arc<AtomicBool>,
}

/// What the feed waits for next.
enum Wake {
    /// The folder was dropped or closed.
    End,
    /// Something else changed the folder: nothing to do.
    Nothing,
    /// A round for changes (`false`), or the quiet round after them
    /// (`true`), which takes whatever came meanwhile, usually nothing.
    Round { quiet: bool },
}

impl Feed {
    fn inotify(&self) -> bool {
        self.watcher.mode() == Mode::Inotify
    }

    async fn run(mut self) {
        let quiet = tokio::time::sleep(QUIET_ROUND_AFTER);
        tokio::pin!(quiet);
        let mut quiet_armed = false;
        loop {
            let wake = tokio::select! {
                r = self.alive.changed() => if r.is_err() { Wake::End } else { Wake::Nothing },
                _ = self.changes.changed() => Wake::Round { quiet: false },
                _ = &mut quiet, if quiet_armed => Wake::Round { quiet: true },
            };
            let quiet_round = match wake {
                Wake::End => break,
                Wake::Nothing => continue,
                Wake::Round { quiet } => quiet,
            };
            let Some(f) = self.folder.upgrade().filter(|f| !f.is_closed()) else {
                break;
            };
            quiet_armed = !quiet_round && self.inotify();
            if quiet_armed {
                quiet
                    .as_mut()
                    .reset(tokio::time::Instant::now() + QUIET_ROUND_AFTER);
            }
            match self.round(f).await {
                Ok(()) => {}
                Err(StoreError::NotFound) => {
                    if self.still_missing().await {
                        tracing::info!(folder = %self.name, "folder removed by another program");
                        if let Some(f) = self.folder.upgrade() {
                            f.mark_gone();
                        }
                        // Nothing of it can be served any more.
                        break;
                    }
                    // Back (replaced): rescan it now, whether or not the
                    // watcher fires again.
                    quiet_armed = true;
                    quiet.as_mut().reset(tokio::time::Instant::now());
                }
                Err(e) => {
                    tracing::warn!(folder = %self.name, "resync after change failed: {e}");
                }
            }
        }
    }

    /// One round: the changes since the last one applied to the folder.
    async fn round(&mut self, f: Arc<Folder>) -> Result<()> {
        let result = self.sync(f).await;
        self.rescan = result.is_err();
        if self.rescan {
            if let Some(f) = self.folder.upgrade() {
                f.set_events_live(false);
            }
        }
        self.schedule_persist();
        result
    }

    /// A round's sync. Another program's uidlist lock is waited for on
    /// timers, never in the sync: that runs with lock waits off
    /// (`dotlock::without_waiting`), so a lock taken again just after the
    /// wait makes it stop at once (with the folder's state unchanged) instead
    /// of holding a blocking-pool thread and the folder's state, which every
    /// SELECT of the folder would then queue behind. It is then run again,
    /// as a rescan (the names it took are spent), for at most
    /// `dotlock::WAIT_LIMIT` in all.
    async fn sync(&mut self, f: Arc<Folder>) -> Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            match dotlock::wait_free(&self.dir, LOCK_STALE_AFTER).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound);
                }
                Err(e) => return Err(e.into()),
                Ok(()) => {}
            }
            match self.sync_once(f.clone()).await {
                Err(e) if e.is_lock_busy() && start.elapsed() < dotlock::WAIT_LIMIT => {
                    self.rescan = true;
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                r => return r,
            }
        }
    }

    async fn sync_once(&mut self, f: Arc<Folder>) -> Result<()> {
        let inotify = self.inotify();
        // The directories' stamp first, then a barrier through the watcher:
        // every change the stamp shows is then among the names taken next
        // (or applied by an earlier round), so sessions may trust the
        // folder's state as long as the stamp holds.
        let g = f.clone();
        let stamp = off_runtime(move || g.dir_stamp()).await?;
        let vouched = inotify && self.watcher.barrier().await;
        // Events after the take fire again: the next round.
        let changes = self.changes.take_changes();
        let after_failure = self.rescan;
        off_runtime(move || {
            let stamp = vouched.then_some(stamp);
            let r = dotlock::without_waiting(|| match changes {
                // Names taken by a round that failed are lost: rescan once
                // instead.
                Changes::Entries(entries) if !after_failure => {
                    f.sync_for_watcher(Some(&entry_events(entries)), stamp)
                }
                _ => {
                    // Until this rescan is done, sessions must look
                    // themselves.
                    f.set_events_live(false);
                    f.sync_for_watcher(None, stamp)
                }
            });
            f.set_events_live(vouched && r.is_ok());
            r
        })
        .await
    }

    /// Writes what the rounds left, [`PERSIST_AFTER`] from now, unless
    /// such a write is already scheduled.
    fn schedule_persist(&self) {
        if self.persist_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let pending = self.persist_pending.clone();
        let folder = self.folder.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PERSIST_AFTER).await;
            pending.store(false, Ordering::Release);
            if let Some(f) = folder.upgrade().filter(|f| !f.is_closed()) {
                let _ = off_runtime(move || {
                    f.persist_due();
                    Ok(())
                })
                .await;
            }
        });
    }

    /// Whether the folder's directory is still missing after
    /// [`GONE_GRACE`] (`new/` and `cur/` must both be there again).
    async fn still_missing(&self) -> bool {
        tokio::time::sleep(GONE_GRACE).await;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || !(dir.join("cur").is_dir() && dir.join("new").is_dir()))
            .await
            .unwrap_or(true)
    }
}

/// Runs store work on the blocking pool.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Cannot(format!("change feed task: {e}"))))
}

/// The watcher's entry events in the store's terms. Names that are not
/// UTF-8 are left out: the store's scans do not track such files either.
fn entry_events(entries: Vec<EntryChange>) -> Vec<EntryEvent> {
    entries
        .into_iter()
        .filter_map(|e| {
            Some(EntryEvent {
                in_new: e.in_new,
                name: e.name.into_string().ok()?,
                gone: e.gone,
            })
        })
        .collect()
}
