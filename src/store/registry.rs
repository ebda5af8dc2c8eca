//! The process's table of open folders, and their lifetime.
//!
//! Every session (of every user a process serves) that opens the same
//! folder shares one [`Folder`]: one in-memory state, one change signal.
//! The registry owns each open folder from its open to its close:
//! - **Open.** [`Registry::get_or_open`] hands out the open folder, or
//!   makes one; with live sync on ([`Registry::live`]) the store's change
//!   feed ([`super::live`]) starts following it at once.
//! - **Linger.** A folder nobody holds stays open a while
//!   ([`LINGER_FOR`], at most [`LINGER_MAX`] of them): phones reconnect all
//!   the time, and a folder found open costs one directory check instead of
//!   re-reading its index and uidlist.
//! - **Close.** The registry alone closes folders ([`Folder::close`]: cache
//!   entries and index written, the change feed stopped), and only once no
//!   one holds them: when they have lingered long enough
//!   ([`Registry::release_idle`], which the server calls now and then, and
//!   every open), and all of them at the end ([`Registry::close_all`]).
//!   Dropping a folder does no I/O, so a session may let go of one
//!   anywhere, on the async runtime included.
//!
//! It never reads or writes a folder's files itself, and never decides
//! anything about a folder's content: that is [`Folder`]'s.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::live::Live;
use super::quota_upkeep::{QuotaUpkeep, SharedWarnings};
use super::quota_warning::QuotaWarnings;
use super::{Folder, Result};

/// How many recently used folders stay open without a holder.
const LINGER_MAX: usize = 32;
/// How long a folder stays open after it was last seen in use.
pub const LINGER_FOR: Duration = Duration::from_secs(120);

/// One open folder and when it was last seen in use.
struct Open {
    folder: Arc<Folder>,
    used: Instant,
}

/// See the module doc.
#[derive(Default)]
pub struct Registry {
    /// Canonical folder directory -> the open folder.
    open: Mutex<HashMap<PathBuf, Open>>,
    /// Live sync (the change feed), when the registry was made with it.
    live: Option<Live>,
    /// Folders being closed right now. A close writes index and cache (140
    /// ms at 100,000 messages); an open of the same directory waits for it
    /// (`closed`), so that it neither reads a half-written cache nor has
    /// its index overwritten by the old state afterwards (which could claim
    /// clean modseqs the new one exceeded).
    pub(super) closing: Mutex<HashMap<PathBuf, usize>>,
    pub(super) closed: Condvar,
    /// Maildir root -> its quota upkeep (one per Maildir, for as long as
    /// the registry lives: a worker serves one user).
    upkeeps: Mutex<HashMap<PathBuf, Arc<QuotaUpkeep>>>,
    /// The quota warning settings every upkeep reads.
    warnings: SharedWarnings,
}

impl Registry {
    /// A registry without live sync: folders learn of outside changes only
    /// when a session syncs them (tools, tests).
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    /// A registry whose folders follow every change to their directories
    /// as it happens, through one change watcher for the process (see
    /// [`super::live`]). Must be called inside the tokio runtime.
    pub fn live(opts: crate::watch::WatchOptions) -> Arc<Self> {
        Arc::new(Registry {
            live: Some(Live::start(opts)),
            ..Registry::default()
        })
    }

    /// A watch of the Maildir root at `root` (see `Live::watch_root`);
    /// `None` without live sync.
    pub fn watch_root(&self, root: &Path) -> Option<crate::watch::FolderWatch> {
        self.live.as_ref().map(|l| l.watch_root(root))
    }

    /// The quota upkeep of the Maildir at `root` (canonical), made on
    /// first use.
    pub(super) fn quota_upkeep(
        &self,
        root: &Path,
        file_mode: u32,
        fsync: bool,
    ) -> Arc<QuotaUpkeep> {
        let mut t = self.upkeeps.lock().unwrap_or_else(|p| p.into_inner());
        t.entry(root.to_path_buf())
            .or_insert_with(|| {
                QuotaUpkeep::new(root.to_path_buf(), file_mode, fsync, self.warnings.clone())
            })
            .clone()
    }

    /// What the quota warning says and when (`None`: no warnings), for
    /// every Maildir of this registry; the worker sets it from the
    /// configuration at each login.
    pub fn set_quota_warnings(&self, w: Option<QuotaWarnings>) {
        *self.warnings.write().unwrap_or_else(|p| p.into_inner()) = w.map(Arc::new);
    }

    fn table(&self) -> MutexGuard<'_, HashMap<PathBuf, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open folder for `dir`, or a new one made by `make`. `make` runs
    /// without the table locked (it may read an index of 11 MB); if two
    /// sessions race, the first one registered wins and the other copy is
    /// dropped unused.
    pub(super) fn get_or_open(
        &self,
        dir: &Path,
        make: impl FnOnce() -> Result<Folder>,
    ) -> Result<Arc<Folder>> {
        if let Some(f) = self.get(dir) {
            self.let_go_of_unused(Instant::now());
            return Ok(f);
        }
        {
            let mut c = self.closing.lock().unwrap_or_else(|p| p.into_inner());
            while c.contains_key(dir) {
                c = self.closed.wait(c).unwrap_or_else(|p| p.into_inner());
            }
        }
        let made = Arc::new(make()?);
        let now = Instant::now();
        {
            let mut t = self.table();
            match t.get_mut(dir) {
                Some(e) if !e.folder.is_gone() => {
                    e.used = now;
                    let f = e.folder.clone();
                    drop(t);
                    return Ok(f);
                }
                // A gone folder's successor at the same path takes its
                // place; the gone one writes nothing (its successor may be
                // open), so it is simply dropped.
                _ => {
                    t.insert(
                        dir.to_path_buf(),
                        Open {
                            folder: made.clone(),
                            used: now,
                        },
                    );
                }
            }
        }
        if let Some(live) = &self.live {
            live.follow(&made);
        }
        self.let_go_of_unused(now);
        Ok(made)
    }

    /// The folder for `dir` if it is open, marked used now. A folder marked
    /// gone (its directory vanished) is never handed out again, even if a
    /// directory is back at its path: that is a new folder, read afresh,
    /// and a session given the old one would be told at once that its
    /// mailbox was deleted.
    fn get(&self, dir: &Path) -> Option<Arc<Folder>> {
        let mut t = self.table();
        let e = t.get_mut(dir).filter(|e| !e.folder.is_gone())?;
        e.used = Instant::now();
        Some(e.folder.clone())
    }

    /// Closes the folders no one has used for [`LINGER_FOR`]; the server
    /// calls this now and then, so that an idle server does not keep a big
    /// folder's messages and caches (about 150 MB for 100,000 messages
    /// after a full sync) for as long as nobody opens another. Must run
    /// off the async runtime: a close writes the index. Returns how many
    /// folders were closed.
    pub fn release_idle(&self) -> usize {
        self.let_go_of_unused(Instant::now())
    }

    /// [`Registry::release_idle`] as of `now` (tests move the clock).
    #[cfg(test)]
    pub(super) fn release_idle_at(&self, now: Instant) -> usize {
        self.let_go_of_unused(now)
    }

    /// Closes every open folder, held or not: the process is ending (a
    /// worker after its sessions said goodbye) and what the folders hold
    /// that the disk does not should be written now, not rebuilt by the
    /// next open. Must run off the async runtime.
    pub fn close_all(&self) {
        let all: Vec<(PathBuf, Arc<Folder>)> =
            self.table().drain().map(|(d, e)| (d, e.folder)).collect();
        self.close(all);
    }

    /// Takes out of the table, and closes, the folders to let go of at
    /// `now`: gone ones nobody holds; the unheld ones unused for
    /// [`LINGER_FOR`]; then the longest unused beyond [`LINGER_MAX`]. A
    /// folder someone holds (a session, a change-feed round) counts as used
    /// now, so its time runs from when its last holder left, not from when
    /// it was opened: a phone that kept INBOX selected for an hour and
    /// reconnects a minute later still finds it open.
    fn let_go_of_unused(&self, now: Instant) -> usize {
        let out = {
            let mut t = self.table();
            let mut unheld: Vec<(Instant, PathBuf)> = Vec::new();
            for (dir, e) in t.iter_mut() {
                // The table's own reference is the only one: nobody holds
                // it, and nobody can start to without the table lock.
                if Arc::strong_count(&e.folder) > 1 {
                    e.used = now;
                } else {
                    unheld.push((e.used, dir.clone()));
                }
            }
            unheld.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
            let mut out = Vec::new();
            for (i, (used, dir)) in unheld.into_iter().enumerate() {
                let gone = t.get(&dir).is_some_and(|e| e.folder.is_gone());
                if gone || i >= LINGER_MAX || now.saturating_duration_since(used) > LINGER_FOR {
                    if let Some(e) = t.remove(&dir) {
                        out.push((dir, e.folder));
                    }
                }
            }
            out
        };
        let n = out.len();
        self.close(out);
        n
    }

    /// Closes `folders` (taken out of the table), with their directories
    /// marked as closing meanwhile (see `closing`).
    fn close(&self, folders: Vec<(PathBuf, Arc<Folder>)>) {
        if folders.is_empty() {
            return;
        }
        {
            let mut c = self.closing.lock().unwrap_or_else(|p| p.into_inner());
            for (d, _) in &folders {
                *c.entry(d.clone()).or_default() += 1;
            }
        }
        for (_, f) in &folders {
            f.close();
        }
        let mut c = self.closing.lock().unwrap_or_else(|p| p.into_inner());
        for (d, _) in &folders {
            if let Some(n) = c.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    c.remove(d);
                }
            }
        }
        drop(c);
        self.closed.notify_all();
    }

    /// Forgets `dir` and every directory whose name starts with it plus `.`
    /// (the folder's children), after a rename or delete. Those nobody
    /// holds are closed (which writes nothing: their uidlist is no longer
    /// at their path); sessions that hold one keep it until they leave,
    /// and learn at their next sync that it is gone.
    pub(super) fn forget_tree(&self, dir: &Path) {
        let prefix = format!("{}.", dir.display());
        let forgotten: Vec<(PathBuf, Arc<Folder>)> = {
            let mut t = self.table();
            let dirs: Vec<PathBuf> = t
                .keys()
                .filter(|k| *k == dir || k.display().to_string().starts_with(&prefix))
                .cloned()
                .collect();
            dirs.into_iter()
                .filter_map(|d| t.remove(&d).map(|e| (d, e.folder)))
                .collect()
        };
        let unheld = forgotten
            .into_iter()
            .filter(|(_, f)| Arc::strong_count(f) == 1)
            .collect();
        self.close(unheld);
    }
}
