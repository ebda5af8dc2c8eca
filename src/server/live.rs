//! Live sync: connects the process's one change watcher (`watch`) to the
//! store's folder registry, so that a change to a folder's `new/` or `cur/`
//! by anyone (the MTA, mutt, a script, another nestbox session) resyncs the
//! folder once and wakes every session that has it selected.
//!
//! When the registry opens a folder, [`attach`] registers its directory
//! with the watcher and spawns one small task per open folder: on each
//! coalesced burst of events it runs, off the runtime,
//! `Folder::sync_for_watcher` with the names of the entries that changed
//! (inotify), or without names, a rescan, when they are not known. The
//! sync notifies sessions through the folder's own change channel; sessions
//! turn that into their own untagged responses. The task ends (and its
//! inotify watches go) when the folder's last holder drops it, which closes
//! the folder's change channel.
//!
//! Never: one inotify instance or thread per session, or a sync on the
//! async runtime's threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::{EntryEvent, Folder, Registry, StoreError};
use crate::watch::{Changes, EntryChange, Mode, WatchOptions, Watcher};

/// How long after a watcher round the folder writes what the round left
/// (its index, cache entries): long enough for the sessions the round woke
/// to have taken their look, so none of them waits behind the write.
const PERSIST_AFTER: Duration = Duration::from_millis(20);

/// How long after the last round of a burst the watcher runs one more,
/// quiet round (on inotify): the directories' stamp it vouches for is
/// then settled (older than a timestamp tick, 50 ms, when read), and the
/// folder records it as if it had scanned then, so that its index lets the
/// next process skip reading the directories. Without it, the last stamp
/// of a burst (a `STORE 1:*`, a delivery) is read within milliseconds of
/// the last change, and a restart rescans 100,000 entries (0.2 s).
const QUIET_ROUND_AFTER: Duration = Duration::from_millis(200);

/// Creates the watcher and installs the registry hook. Must be called
/// inside the tokio runtime.
pub fn attach(registry: &Registry, opts: WatchOptions) -> Arc<Watcher> {
    let watcher = Watcher::new(opts);
    let handle = tokio::runtime::Handle::current();
    let w = watcher.clone();
    registry.set_on_open(Arc::new(move |folder: &Arc<Folder>| {
        let mut fw = w.watch_folder(folder.dir());
        // Watching (on inotify) before the folder's first scan: from now on
        // every entry change reaches the folder by name.
        folder.set_events_live(w.mode() == Mode::Inotify);
        let watcher = w.clone();
        let weak = Arc::downgrade(folder);
        let dir = folder.dir().to_path_buf();
        let mut alive = folder.watch();
        handle.spawn(async move {
            // The last round failed: the names it took were not applied.
            let mut rescan = false;
            // A write of what the rounds left (index, cache) is scheduled.
            let persist_pending = Arc::new(AtomicBool::new(false));
            let quiet = tokio::time::sleep(QUIET_ROUND_AFTER);
            tokio::pin!(quiet);
            let mut quiet_armed = false;
            loop {
                tokio::select! {
                    r = alive.changed() => {
                        if r.is_err() {
                            // The folder was dropped: stop watching it.
                            break;
                        }
                    }
                    // A round for changes, or the quiet round after them
                    // (which takes whatever came meanwhile, usually nothing).
                    quiet_round = async {
                        tokio::select! {
                            _ = fw.changed() => false,
                            _ = &mut quiet, if quiet_armed => true,
                        }
                    } => {
                        let Some(f) = weak.upgrade() else { break };
                        quiet_armed = !quiet_round && watcher.mode() == Mode::Inotify;
                        if quiet_armed {
                            quiet
                                .as_mut()
                                .reset(tokio::time::Instant::now() + QUIET_ROUND_AFTER);
                        }
                        let inotify = watcher.mode() == Mode::Inotify;
                        let after_failure = rescan;
                        // The directories' stamp first, then a barrier
                        // through the watcher: every change the stamp shows
                        // is then among the names taken next (or applied
                        // by an earlier round), so sessions may trust the
                        // folder's state as long as the stamp holds.
                        let g = f.clone();
                        let stamp = tokio::task::spawn_blocking(move || g.dir_stamp()).await;
                        let vouched = inotify && watcher.barrier().await;
                        // Events after the take fire again: the next round.
                        let changes = fw.take_changes();
                        let res = tokio::task::spawn_blocking(move || {
                            let r = match stamp {
                                Ok(Ok(stamp)) => {
                                    let stamp = vouched.then_some(stamp);
                                    match changes {
                                        // Names taken by a round that failed
                                        // are lost: rescan once instead.
                                        Changes::Entries(entries) if !after_failure => f
                                            .sync_for_watcher(
                                                Some(&entry_events(entries)),
                                                stamp,
                                            ),
                                        _ => {
                                            // Until this rescan is done,
                                            // sessions must look themselves.
                                            f.set_events_live(false);
                                            f.sync_for_watcher(None, stamp)
                                        }
                                    }
                                }
                                Ok(Err(e)) => Err(e),
                                Err(e) => Err(StoreError::Cannot(format!("stamp task: {e}"))),
                            };
                            f.set_events_live(vouched && r.is_ok());
                            let name = f.name().to_string();
                            // The last holder may be us: dropping here, off
                            // the runtime, is where the index gets written.
                            drop(f);
                            (name, r)
                        })
                        .await;
                        rescan = !matches!(res, Ok((_, Ok(()))));
                        if !persist_pending.swap(true, Ordering::AcqRel) {
                            let pending = persist_pending.clone();
                            let weak = weak.clone();
                            tokio::spawn(async move {
                                // After the sessions this round woke have
                                // looked at the folder.
                                tokio::time::sleep(PERSIST_AFTER).await;
                                pending.store(false, Ordering::Release);
                                if let Some(f) = weak.upgrade() {
                                    let _ = tokio::task::spawn_blocking(move || {
                                        f.persist_due();
                                        // Possibly the last holder: see above.
                                        drop(f);
                                    })
                                    .await;
                                }
                            });
                        }
                        if rescan {
                            if let Some(f) = weak.upgrade() {
                                f.set_events_live(false);
                            }
                        }
                        match res {
                            Ok((name, Err(StoreError::NotFound))) => {
                                // A directory missing for one scan may be
                                // in the middle of a replacement (a restore
                                // from backup: `mv Maildir aside; mv backup
                                // Maildir`). Only one still missing after a
                                // grace period is gone: marking it gone
                                // disconnects every session that has it
                                // selected, for good.
                                if folder_still_missing(dir.clone()).await {
                                    tracing::info!(folder = %name, "folder removed by another program");
                                    if let Some(f) = weak.upgrade() {
                                        f.mark_gone();
                                    }
                                    // Nothing of it can be served any more.
                                    break;
                                }
                                // Back (replaced): rescan it now, whether or
                                // not the watcher fires again.
                                quiet_armed = true;
                                quiet.as_mut().reset(tokio::time::Instant::now());
                            }
                            Ok((name, Err(e))) => {
                                tracing::warn!(folder = %name, "resync after change failed: {e}");
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
    }));
    watcher
}

/// How long a folder whose directory vanished may take to come back
/// before its sessions are told it is gone: a `mv` pair takes microseconds,
/// a sync that ran between the two finds nothing for a moment.
const GONE_GRACE: Duration = Duration::from_millis(500);

/// Whether the folder's directory is still missing after [`GONE_GRACE`]
/// (checked off the runtime; `new/` and `cur/` must both be there again).
async fn folder_still_missing(dir: std::path::PathBuf) -> bool {
    tokio::time::sleep(GONE_GRACE).await;
    tokio::task::spawn_blocking(move || !(dir.join("cur").is_dir() && dir.join("new").is_dir()))
        .await
        .unwrap_or(true)
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
