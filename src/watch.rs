//! The process-wide change watcher: ONE inotify instance for every folder
//! that any session of any user has open, turned into per-folder change
//! signals with the names of the entries that changed.
//!
//! # Why not the `notify` crate (SPEC §7 names notify 8)
//! notify 8's inotify backend always asks the kernel for `IN_OPEN` (and
//! `IN_MODIFY`, `IN_ATTRIB`) on every watched directory, with no option to
//! leave them out. Every message file a session opens in `cur/` then wakes
//! notify's thread for an event we drop: measured at 100,000 messages, a
//! first `FETCH 1:* (... ENVELOPE)` took 2.7-3.0 s with the watch and
//! 1.9-2.4 s in polling mode, and `SEARCH BODY` burnt 0.36-0.55 s of CPU in
//! the watcher's threads. So this module uses the `inotify` crate (what
//! notify is built on) read through tokio's `AsyncFd`: the mask is ours,
//! no thread is needed, and [`Watcher::barrier`] can read the kernel queue
//! dry whenever it must.
//!
//! # What this module owns
//! - The single inotify instance of the process and the task reading it.
//!   Never one per session or per user: the kernel allows 128 inotify
//!   instances per user by default and Dovecot installations hit exactly
//!   that ("Inotify instance limit exceeded").
//! - The registrations: [`Watcher::watch_folder`] and [`Watcher::watch_root`]
//!   hand out [`FolderWatch`] guards, refcounted per canonical path. The first
//!   guard adds the inotify watches, the last one dropped removes them.
//! - Coalescing, the fallback to polling directory mtimes, and the recovery
//!   back to inotify.
//!
//! # What it must never do
//! - Read or interpret mail. It only says *that* a folder may have changed;
//!   the store's sync decides *what* changed (new UIDs, flag renames,
//!   expunges) under the uidlist lock. A spurious signal costs one cheap
//!   rescan; a missed one loses an update, so every doubt resolves to firing.
//! - Block the reader. The reader task only maps the event and
//!   `try_send`s it into a bounded queue; if the queue is full it sets a flag
//!   and the driver handles it like a kernel queue overflow (below). Overflow
//!   and errors travel through atomics, so they are never lost.
//! - Hold a thread or an inotify instance per registration. A registration
//!   is a few paths, a `watch` channel and some bookkeeping.
//!
//! # How it works
//! A folder directory `F` is watched through three inotify watches: `F/new`
//! and `F/cur` (any entry created, removed, renamed, or closed after writing:
//! deliveries, flag renames, expunges, direct writes that complete later) and
//! `F` itself, of which only `dovecot-uidlist`, `dovecot-keywords`, `new` and
//! `cur` matter (the uidlist being replaced by another writer, the subdirs
//! disappearing or reappearing); lock files and index files in `F` are noise
//! and ignored. A Maildir root is watched for `.Name` directories appearing,
//! disappearing or being renamed. Opens, reads, writes in progress and
//! attribute changes are not asked for (`watch_mask`), so the store
//! reading messages never echoes back.
//!
//! The reader maps nothing: it forwards `(path, kind of change)`. The driver
//! task (on tokio) maps the path to registrations through the watched
//! directory table (`path.parent()` -> the roles registered on that dir) and
//! coalesces per registration: the first event after a quiet window fires at
//! once (latency is what IDLE users feel), later events within `coalesce` of
//! the last fire are folded into one trailing fire at the end of the window,
//! so there is at most one fire per window and the last event of a burst is
//! always followed by a fire.
//!
//! ## Directories that go away
//! inotify watches inodes, not paths. When a watched directory is deleted or
//! moved away (folder deleted and recreated, a Maildir restored from backup
//! with `mv`), its watch dies or follows the moved inode. Any event whose
//! path *is* a watched directory (its own `DELETE_SELF`/`MOVE_SELF`, or the
//! entry event in its parent) makes the driver re-add the watch of every
//! watched directory at or below that path (unwatch, then watch the path
//! again) and fire their registrations. A directory that does not exist at
//! that moment stays "missing" and is retried on every `poll_interval` tick
//! (one `stat` each); when it reappears it is watched again and its
//! registrations fire, so the store rescans whatever appeared meanwhile.
//!
//! ## Falling back to polling, and recovering
//! When inotify cannot be initialised (instance limit), a watch cannot be
//! added (`ENOSPC`: out of watches), the kernel queue overflows
//! (`IN_Q_OVERFLOW`) or reading inotify fails, or the driver falls so far
//! behind that the queue from the reader fills up, the watcher switches to
//! polling: it records a signature
//! of each registration (full-precision mtime, inode and device of `new/`
//! and `cur/`, mtime, inode and size of `dovecot-uidlist`, only the identity
//! of the folder directory itself since lock and index files change its
//! mtime; the root's mtime for a root watch), then drops the inotify
//! instance, so changes before the signature still arrive as events. Every
//! `poll_interval` it stats them again and fires where the signature changed
//! or where the previous look saw an mtime within the last second, because
//! several changes can land in one timestamp tick (MAILDIR.md, time
//! resolution). The first fallback logs at `warn`, later ones at `info`.
//! After an overflow every registration fires once (events were lost); after
//! running out of watches only those that were not fully watched fire.
//! Every `30 * poll_interval` it tries inotify again: a new instance, every
//! directory watched, then one last poll against the recorded signatures so
//! nothing that changed between the last poll and the new watches is lost.
//! In polling mode a root watch fires on any change of the root's mtime
//! (also lock files of INBOX), which is harmless: the caller re-lists.
//!
//! `force_poll` (or `NESTBOX_FORCE_POLL=1` in the environment) uses polling
//! only and never tries inotify; it exists for tests and for filesystems
//! where inotify does not see other hosts' changes (NFS).
//!
//! # Store integration (`store/live.rs`)
//! - The store's `Registry::live` creates one `Arc<Watcher>` inside the
//!   runtime for the process.
//! - When the `Registry` opens a `Folder` for the first time (the entry that
//!   all sessions of all users share), it calls
//!   [`Watcher::watch_folder`] with the folder directory (for INBOX the
//!   Maildir root, otherwise `root/.Name`) *before* the folder's initial
//!   sync, so nothing between the sync and the watch is missed, and spawns a
//!   feed task that, on every [`FolderWatch::changed`], reads the folder's
//!   directory stamp (`Folder::dir_stamp`), on inotify waits for
//!   [`Watcher::barrier`], takes the entry names collected since its last
//!   round ([`FolderWatch::take_changes`]) and runs
//!   `Folder::sync_for_watcher` off the runtime: with those names, or with
//!   none (a rescan) when they are [`Changes::Unknown`]. A moment later it
//!   has the folder write what the rounds left (`Folder::persist_due`). The
//!   sync bumps the folder's own watch channel, which every session
//!   IDLEing on it awaits. The task ends (dropping the guard, which removes
//!   the inotify watches once no other guard holds them) when the registry
//!   closes the folder or its last holder drops it. Because `changed()`
//!   collapses fires that happen while a sync runs into one, at most one
//!   sync is queued behind the running one.
//! - Moving `new/` to `cur/` is the store's policy; the watcher neither knows
//!   nor cares.
//! - Self-echo: the store's own renames (new/ -> cur/, flag changes, the
//!   uidlist rewrite) produce events too, so one extra sync follows each own
//!   change. With entry names it costs a table lookup per name (each names a
//!   file where the store put it, or one it renamed away from) and no system
//!   call; it finds nothing new and bumps nothing, which ends the loop.
//!   Names are collected per guard, at most `LOG_MAX` of them; beyond that,
//!   and for anything names do not describe (polling, an overflow, `new/`
//!   or `cur/` themselves replaced), the guard's next take says `Unknown`.
//! - Root watches ([`Watcher::watch_root`]) have no caller yet: they are
//!   kept for issue 18's NOTIFY `MailboxName` events (RFC 5465), which must
//!   come from this one watcher, and are tested here.
//! - Sessions never talk to this module; they await the `Folder`'s channel.
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use inotify::{EventMask, WatchDescriptor, WatchMask};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// Environment switch equivalent to [`WatchOptions::force_poll`]: `1` means
/// poll only.
pub const FORCE_POLL_ENV: &str = "NESTBOX_FORCE_POLL";

/// The uidlist file of a folder (MAILDIR.md); another writer replacing it is
/// a change.
const UIDLIST: &str = "dovecot-uidlist";
/// Keyword names file; a new keyword added by another program is a change.
const KEYWORDS: &str = "dovecot-keywords";
/// Bytes read from the inotify instance at a time (about 250 events with
/// message-sized names per read during a burst).
const READ_BUFFER: usize = 16 * 1024;
/// How long the reader stays out of epoll after reading a batch. While an
/// inotify descriptor sits in an epoll set that a parked runtime thread
/// waits on, every event the kernel queues wakes that thread (an IPI, and
/// on a VM an exit) and the task making the change pays for it: at 100,000
/// messages a `STORE 1:*` renaming 30,700 files spent about 5.7 us of its
/// 15 us per rename waking the watcher (a C loop: 8.5 us per rename
/// unwatched, 14.4 with a reader blocked on the descriptor, 8.7 with one
/// that sleeps 2 ms between reads). Out of epoll, events only queue (up to
/// `max_queued_events`, 16,384 by default; a burst of renames fills about
/// 500 in this time). The first event after a quiet spell is still read at
/// once; later ones wait at most this long.
const PACE: Duration = Duration::from_millis(2);
/// Capacity of the queue from the reader task to the driver. Beyond this
/// the callback drops events and the driver handles it like a kernel queue
/// overflow (fire every folder, poll until inotify is re-established).
const EVENT_QUEUE: usize = 4096;
/// Events the driver takes per lock of the state.
const BATCH: usize = 256;
/// After a fallback, try inotify again every this many poll intervals.
const RECOVER_AFTER_POLLS: u32 = 30;
/// An mtime this close to "now" may still receive changes within the same
/// timestamp tick, so the next poll looks again even if it is unchanged.
const RECENT: Duration = Duration::from_secs(1);
/// Lower bound on the poll interval (a zero interval would spin).
const MIN_POLL: Duration = Duration::from_millis(10);

/// How the [`Watcher`] behaves; `Default` is what production uses.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How often directories are stat'ed in polling mode, and how often
    /// missing directories are looked for in inotify mode. Recovery to
    /// inotify is tried every 30 intervals.
    pub poll_interval: Duration,
    /// Coalescing window: at most one fire per registration per window; the
    /// first event after a quiet window fires immediately.
    pub coalesce: Duration,
    /// Poll only, never use inotify (tests; NFS). Also set by
    /// `NESTBOX_FORCE_POLL=1`.
    pub force_poll: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll_interval: Duration::from_secs(1),
            coalesce: Duration::from_millis(5),
            force_poll: false,
        }
    }
}

/// How changes are currently detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One inotify instance, event driven.
    Inotify,
    /// Stat'ing directory mtimes every `poll_interval` (forced, or after a
    /// fallback until inotify recovers).
    Polling,
}

/// The process-wide change watcher: one per process, shared as
/// `Arc<Watcher>` by every session of every user. See the module doc.
pub struct Watcher {
    inner: Arc<Inner>,
    driver: tokio::task::AbortHandle,
}

/// A registration guard returned by [`Watcher::watch_folder`] and
/// [`Watcher::watch_root`]. Dropping the last guard of a path removes its
/// inotify watches. Keeps the [`Watcher`] alive.
pub struct FolderWatch {
    watcher: Arc<Watcher>,
    id: RegId,
    rx: watch::Receiver<u64>,
    log: Arc<Mutex<EntryLog>>,
}

/// What changed in a watched folder's `new/` and `cur/` since the last
/// [`FolderWatch::take_changes`].
#[derive(Debug, PartialEq, Eq)]
pub enum Changes {
    /// Every change was an entry event and these are all of them, in the
    /// order the kernel reported them (possibly with repeats).
    Entries(Vec<EntryChange>),
    /// Something not described by entry names happened (polling mode, a
    /// kernel queue overflow, a directory replaced, too many entries): the
    /// folder must be rescanned.
    Unknown,
}

/// One entry event of `new/` or `cur/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryChange {
    /// In `new/` (else `cur/`).
    pub in_new: bool,
    /// The entry's file name.
    pub name: std::ffi::OsString,
    /// The name went away (removed, or renamed away); otherwise it appeared
    /// or was written to.
    pub gone: bool,
}

/// Entry events collected for one guard. `complete == false` means
/// [`Changes::Unknown`].
#[derive(Debug)]
struct EntryLog {
    entries: Vec<EntryChange>,
    complete: bool,
}

/// Entries a log holds before it gives up and asks for a rescan: enough for
/// a `STORE 1:*` over 100,000 messages (two events per rename), about 25 MB
/// at most, and only until the folder's sync task takes them.
const LOG_MAX: usize = 262_144;

impl EntryLog {
    fn push(&mut self, e: EntryChange) {
        if !self.complete {
            return;
        }
        if self.entries.len() >= LOG_MAX {
            self.unknown();
            return;
        }
        self.entries.push(e);
    }

    fn unknown(&mut self) {
        self.complete = false;
        self.entries = Vec::new();
    }
}

impl FolderWatch {
    /// Resolves once per coalesced burst of changes that happened after the
    /// previous call returned (or after registration). Fires that happen
    /// while the caller is busy are collapsed into one, never lost.
    /// Cancel-safe, so it can sit in a `select!`.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            // The sender lives in the registration, which lives as long as
            // this guard: unreachable in practice. Never report a change we
            // did not see.
            std::future::pending::<()>().await;
        }
    }

    /// Takes what changed since the last call (or since registration, for
    /// a folder: the caller's first full sync must come after registering).
    /// A sync that acts on the names alone is exact while the watcher is on
    /// inotify; anything else comes back as [`Changes::Unknown`].
    pub fn take_changes(&self) -> Changes {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let was = std::mem::replace(
            &mut *log,
            EntryLog {
                entries: Vec::new(),
                complete: true,
            },
        );
        if was.complete {
            Changes::Entries(was.entries)
        } else {
            Changes::Unknown
        }
    }

    /// How many times the registration has fired so far (tests: to count
    /// fires that [`FolderWatch::changed`] collapses).
    #[cfg(test)]
    fn fire_count(&self) -> u64 {
        *self.rx.borrow()
    }
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        self.watcher.inner.release(self.id, &self.log);
    }
}

impl fmt::Debug for FolderWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FolderWatch").field("id", &self.id).finish()
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("mode", &self.mode())
            .field("registrations", &self.registrations())
            .finish()
    }
}

impl Watcher {
    /// Creates the watcher and its driver task, and tries to initialise
    /// inotify (falling back to polling, logged, if that fails).
    ///
    /// # Panics
    /// When called outside a tokio runtime (it spawns the driver task).
    pub fn new(opts: WatchOptions) -> Arc<Watcher> {
        let mut opts = opts;
        opts.force_poll |= std::env::var_os(FORCE_POLL_ENV).is_some_and(|v| v == "1");
        opts.poll_interval = opts.poll_interval.max(MIN_POLL);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let inner = Arc::new(Inner {
            opts,
            state: Mutex::new(State::default()),
            polling: AtomicBool::new(true),
            signals: Arc::new(Signals::default()),
            events_tx,
            barrier_seen: watch::Sender::new(0),
            next_barrier: AtomicU64::new(0),
        });
        {
            let mut st = inner.lock();
            if inner.opts.force_poll {
                tracing::info!("change watcher: polling only (forced)");
            } else {
                st.next_gen += 1;
                match inner.new_backend(st.next_gen) {
                    Ok(backend) => {
                        st.backend = Some(backend);
                        inner.polling.store(false, Ordering::Relaxed);
                    }
                    Err(e) => {
                        st.fallbacks += 1;
                        st.next_recover = Some(Instant::now() + inner.recover_interval());
                        tracing::warn!(
                            "change watcher: inotify unavailable ({e}); polling every {:?}",
                            inner.opts.poll_interval
                        );
                    }
                }
            }
        }
        let driver = tokio::spawn(drive(inner.clone(), events_rx)).abort_handle();
        Arc::new(Watcher { inner, driver })
    }

    /// Starts watching a folder directory: its `new/` and `cur/`, and the
    /// directory itself for the uidlist being replaced and the subdirs
    /// disappearing. Registrations are refcounted per canonical path; the
    /// returned guard unregisters on drop and the last guard removes the
    /// inotify watches. The directory need not exist yet: it is watched once
    /// it appears (checked every `poll_interval`).
    ///
    /// Call it before the folder's initial sync. Does a few short blocking
    /// syscalls (canonicalize, adding watches); fine on the runtime.
    pub fn watch_folder(self: &Arc<Self>, folder_dir: &Path) -> FolderWatch {
        self.register(Kind::Folder, folder_dir)
    }

    /// Watches a Maildir root for folder creation, deletion and renames
    /// (`.Name` directories appearing or disappearing). Same guard rules as
    /// [`Watcher::watch_folder`]; independent of a folder watch on the same
    /// directory (INBOX).
    ///
    /// NOTIFY (RFC 5465) learns of folders created, deleted and renamed,
    /// and of subscriptions changed, through it (`session::notify`).
    pub fn watch_root(self: &Arc<Self>, root: &Path) -> FolderWatch {
        self.register(Kind::Root, root)
    }

    /// Waits until every inotify event the kernel had queued when this was
    /// called has been handed to the registrations (so a guard's next
    /// [`FolderWatch::take_changes`] includes it). False in polling mode or
    /// when that does not happen within a second (the caller must then not
    /// rely on it).
    pub async fn barrier(&self) -> bool {
        let req = {
            let st = self.inner.lock();
            match st.backend.as_ref() {
                Some(b) => b.barrier_req.clone(),
                None => return false,
            }
        };
        let mut seen = self.inner.barrier_seen.subscribe();
        let n = self.inner.next_barrier.fetch_add(1, Ordering::Relaxed) + 1;
        if req.send(n).is_err() {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(1), seen.wait_for(|&s| s >= n)).await,
            Ok(Ok(_))
        )
    }

    /// Whether changes currently come from inotify or from polling.
    pub fn mode(&self) -> Mode {
        if self.inner.polling.load(Ordering::Relaxed) {
            Mode::Polling
        } else {
            Mode::Inotify
        }
    }

    /// Number of distinct registrations (paths being watched): in the
    /// watcher's `Debug` form, and for tests (`tests/watch_public.rs`) that
    /// dropped guards leave nothing registered.
    pub fn registrations(&self) -> usize {
        self.inner.lock().regs.len()
    }

    /// Number of distinct directories the registrations need watched
    /// (inotify watches in use, plus missing directories). Only tests ask
    /// (`tests/watch_public.rs` and here): that dropped guards leave no
    /// watch behind.
    pub fn watched_dirs(&self) -> usize {
        self.inner.lock().dirs.len()
    }

    fn register(self: &Arc<Self>, kind: Kind, path: &Path) -> FolderWatch {
        let path = canonical(path);
        let (dirs, probes) = layout(kind, &path);
        let key = (kind, path);
        let log = Arc::new(Mutex::new(EntryLog {
            entries: Vec::new(),
            complete: true,
        }));
        let mut st = self.inner.lock();
        if let Some(&id) = st.by_key.get(&key) {
            if let Some(reg) = st.regs.get_mut(&id) {
                reg.refs += 1;
                reg.logs.push(log.clone());
                let rx = reg.tx.subscribe();
                return FolderWatch {
                    watcher: self.clone(),
                    id,
                    rx,
                    log,
                };
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        let (tx, rx) = watch::channel(0u64);
        // In polling mode the baseline is taken now, so the first poll only
        // fires for changes after registration.
        let (sig, recent) = if st.backend.is_none() {
            let (sig, recent) = probe_all(&probes, SystemTime::now());
            (Some(sig), recent)
        } else {
            (None, false)
        };
        st.regs.insert(
            id,
            Reg {
                key: key.clone(),
                refs: 1,
                dirs: dirs.iter().map(|(d, _)| d.clone()).collect(),
                probes,
                tx,
                logs: vec![log.clone()],
                coalesce: Coalesce::default(),
                sig,
                recent,
            },
        );
        st.by_key.insert(key, id);
        for (dir, role) in dirs {
            let entry = st.dirs.entry(dir.clone()).or_default();
            let fresh = entry.users.is_empty();
            entry.users.push((id, role));
            if fresh {
                st.start_watch(&dir);
            }
        }
        if st.limit_hit {
            self.inner.signals.wake.notify_one();
        }
        drop(st);
        FolderWatch {
            watcher: self.clone(),
            id,
            rx,
            log,
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // The driver holds the only other reference to `Inner`; aborting it
        // drops the inotify instance (and its reader task ends).
        self.driver.abort();
    }
}

type RegId = u64;

/// What a registration watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Folder,
    Root,
}

/// The part a watched directory plays for one registration; decides which
/// entry events matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The folder directory: only the uidlist, keywords and the subdirs.
    FolderDir,
    /// `new/` or `cur/`: every entry change.
    Sub,
    /// A Maildir root: `.Name` directories.
    Root,
}

impl Role {
    /// Whether a change of entry `name` in a directory playing this role is
    /// a change for the registration.
    fn wants(self, name: &OsStr, change: Change) -> bool {
        match self {
            Role::Sub => true,
            Role::FolderDir => {
                name == "new" || name == "cur" || name == UIDLIST || name == KEYWORDS
            }
            Role::Root => {
                // The subscriptions file, replaced (ours and Dovecot's
                // writers rename a new one in) or written in place.
                if name == "subscriptions" {
                    return matches!(
                        change,
                        Change::RenamedTo | Change::Written | Change::Removed
                    );
                }
                name.as_encoded_bytes().first() == Some(&b'.')
                    && name != "."
                    && name != ".."
                    && matches!(
                        change,
                        Change::CreatedDir
                            | Change::RemovedDir
                            | Change::RenamedFrom
                            | Change::RenamedTo
                    )
            }
        }
    }
}

/// The kinds of entry change the reader forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    CreatedDir,
    Created,
    RemovedDir,
    Removed,
    /// The leaving half of a rename (`IN_MOVED_FROM`), or a watched
    /// directory itself moved (`IN_MOVE_SELF`).
    RenamedFrom,
    /// The arriving half of a rename.
    RenamedTo,
    /// A file closed after writing (a direct write completing).
    Written,
}

/// What the kernel is asked to report for a watched directory: entries
/// created, deleted, renamed in or out, files closed after writing, and the
/// directory itself deleted or moved. Not `IN_OPEN`, `IN_ACCESS`,
/// `IN_MODIFY` or `IN_ATTRIB`: every message a session reads would wake the
/// watcher (notify 8 always asks for `IN_OPEN`, which is why this module
/// talks to inotify directly; see the module doc).
///
/// Not `IN_CLOSE_WRITE` on a `cur/`: it is for writers that create a file
/// in `new/` and write it in place, while nothing writes into `cur/` (files
/// arrive there by rename or link, which `IN_MOVED_TO`/`IN_CREATE` report).
/// An event about the directory's children makes the kernel mark every
/// cached child entry when the watch is added: 14 ms for a `cur/` of
/// 100,000 looked-up files (measured on this kernel, 6.18), paid at every
/// open of a big folder, against well under 0.1 ms without.
fn watch_mask(dir: &Path) -> WatchMask {
    let mask = WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        // A `cur`/`new` swapped for a symlink is not watched through (the
        // store does not serve such a folder either). Only the last
        // component: the folder directory above was checked not to be a
        // symlink when the store opened it, and a watch is only ever a
        // wake-up (the store reads through its own descriptors).
        | WatchMask::DONT_FOLLOW
        | WatchMask::EXCL_UNLINK;
    if dir.file_name().is_some_and(|n| n == "cur") {
        mask
    } else {
        mask | WatchMask::CLOSE_WRITE
    }
}

/// Maps an inotify event to a change worth forwarding (`None`: nothing of
/// ours, e.g. `IN_IGNORED` after a watch went away). Events without a name
/// are about the watched directory itself.
fn classify(mask: EventMask) -> Option<Change> {
    let dir = mask.contains(EventMask::ISDIR);
    if mask.contains(EventMask::DELETE_SELF) {
        Some(Change::RemovedDir)
    } else if mask.contains(EventMask::MOVE_SELF) || mask.contains(EventMask::MOVED_FROM) {
        Some(Change::RenamedFrom)
    } else if mask.contains(EventMask::MOVED_TO) {
        Some(Change::RenamedTo)
    } else if mask.contains(EventMask::CREATE) {
        Some(if dir {
            Change::CreatedDir
        } else {
            Change::Created
        })
    } else if mask.contains(EventMask::DELETE) {
        Some(if dir {
            Change::RemovedDir
        } else {
            Change::Removed
        })
    } else if mask.contains(EventMask::CLOSE_WRITE) {
        Some(Change::Written)
    } else {
        None
    }
}

/// One forwarded event: the full path and what happened.
#[derive(Debug)]
struct Raw {
    path: PathBuf,
    change: Change,
}

/// What the reader task sends the driver.
#[derive(Debug)]
enum Msg {
    Event(Raw),
    /// Every event the kernel had queued when barrier `n` was asked for
    /// is ahead of this in the queue (see [`Watcher::barrier`]).
    Barrier(u64),
}

/// What the reader task reports outside the event queue, so it is never
/// dropped and never blocks. Generations tell a live instance's overflow
/// from a dropped instance's.
#[derive(Default)]
struct Signals {
    /// Generation of an instance whose kernel queue overflowed (0: none).
    overflow_gen: AtomicU64,
    /// Generation of an instance that reported an error (0: none).
    failed_gen: AtomicU64,
    /// Our own queue was full and events were dropped (handled like an
    /// overflow of the kernel queue).
    queue_full: AtomicBool,
    /// Wakes the driver for the above and for fallback requests.
    wake: Notify,
}

/// A live inotify instance: its watches, the task reading its events, and
/// its generation. Dropping it stops the reader, which closes the instance.
struct Backend {
    watches: inotify::Watches,
    /// Watch descriptor -> watched directory, shared with the reader.
    dirs: Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>,
    by_path: HashMap<PathBuf, WatchDescriptor>,
    reader: tokio::task::AbortHandle,
    /// Asks the reader to forward everything queued, then a barrier.
    barrier_req: mpsc::UnboundedSender<u64>,
    generation: u64,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Backend {
    fn unwatch(&mut self, dir: &Path) {
        if let Some(wd) = self.by_path.remove(dir) {
            lock_dirs(&self.dirs).remove(&wd);
            // Fails when the kernel already dropped it (directory deleted).
            let _ = self.watches.remove(wd);
        }
    }
}

fn lock_dirs(
    m: &Mutex<HashMap<WatchDescriptor, PathBuf>>,
) -> MutexGuard<'_, HashMap<WatchDescriptor, PathBuf>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reader task's side: turns inotify events into [`Msg`]s for the
/// driver, and trouble into [`Signals`].
struct Forward {
    tx: mpsc::Sender<Msg>,
    signals: Arc<Signals>,
    dirs: Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>,
    generation: u64,
}

impl Forward {
    /// One non-blocking read of the instance, every event in it forwarded.
    /// `WouldBlock` when the kernel queue is empty; any other error has
    /// been signalled as a failure of the instance.
    fn read_once(&self, inotify: &mut inotify::Inotify, buf: &mut [u8]) -> std::io::Result<()> {
        let events = match inotify.read_events(buf) {
            Ok(events) => events,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(e),
            Err(e) => {
                tracing::debug!("change watcher: inotify error: {e}");
                self.failed();
                return Err(e);
            }
        };
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                self.signals
                    .overflow_gen
                    .store(self.generation, Ordering::Relaxed);
                self.signals.wake.notify_one();
                continue;
            }
            let Some(change) = classify(ev.mask) else {
                continue;
            };
            let Some(dir) = lock_dirs(&self.dirs).get(&ev.wd).cloned() else {
                continue;
            };
            let path = match ev.name {
                Some(name) => dir.join(name),
                None => dir,
            };
            self.send(Msg::Event(Raw { path, change }));
        }
        Ok(())
    }

    /// Reads what the kernel holds right now, whatever tokio believes about
    /// readiness (the kernel queued each event when its change happened, so
    /// this is every change made before barrier `n` was asked for), then
    /// forwards the barrier. `false` when the instance failed.
    fn barrier(&self, inotify: &mut inotify::Inotify, buf: &mut [u8], n: u64) -> bool {
        loop {
            match self.read_once(inotify, buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        self.send(Msg::Barrier(n));
        true
    }

    /// Never blocks: a full queue is handled like a kernel overflow.
    fn send(&self, msg: Msg) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(msg) {
            self.signals.queue_full.store(true, Ordering::Relaxed);
            self.signals.wake.notify_one();
        }
    }

    fn failed(&self) {
        self.signals
            .failed_gen
            .store(self.generation, Ordering::Relaxed);
        self.signals.wake.notify_one();
    }
}

struct Inner {
    opts: WatchOptions,
    state: Mutex<State>,
    /// Mirror of `state.backend.is_none()` for a lock-free [`Watcher::mode`].
    polling: AtomicBool,
    signals: Arc<Signals>,
    events_tx: mpsc::Sender<Msg>,
    /// The highest barrier the driver has passed, with every event before
    /// it handed to the registrations.
    barrier_seen: watch::Sender<u64>,
    next_barrier: AtomicU64,
}

/// Everything behind the one lock. The lock is held while adding and
/// removing inotify watches (one system call each); the reader task takes
/// only the small watch-descriptor table, never this lock.
#[derive(Default)]
struct State {
    /// `None` means polling.
    backend: Option<Backend>,
    next_gen: u64,
    /// A watch could not be added for lack of inotify watches: the driver
    /// falls back to polling.
    limit_hit: bool,
    regs: HashMap<RegId, Reg>,
    by_key: HashMap<(Kind, PathBuf), RegId>,
    /// Every directory some registration needs watched.
    dirs: HashMap<PathBuf, Dir>,
    /// Registrations with a trailing fire scheduled.
    pending: HashSet<RegId>,
    next_id: RegId,
    /// When to try inotify again (polling mode, not forced).
    next_recover: Option<Instant>,
    /// How many times inotify was given up, for the log level.
    fallbacks: u64,
}

/// One registration: one canonical path, any number of guards.
struct Reg {
    key: (Kind, PathBuf),
    refs: usize,
    /// The directories watched for it (keys of `State::dirs`).
    dirs: Vec<PathBuf>,
    /// What polling stats for it.
    probes: Vec<Probe>,
    tx: watch::Sender<u64>,
    /// One entry log per guard (each guard takes its own changes).
    logs: Vec<Arc<Mutex<EntryLog>>>,
    coalesce: Coalesce,
    /// Last polled signature (polling mode only).
    sig: Option<Vec<Option<Sig>>>,
    /// The last poll saw an mtime within [`RECENT`] of now.
    recent: bool,
}

/// One watched directory.
#[derive(Default)]
struct Dir {
    users: Vec<(RegId, Role)>,
    /// An inotify watch is believed to be in place.
    watched: bool,
}

/// A path polling stats, and whether only its identity matters.
#[derive(Clone, Debug)]
struct Probe {
    path: PathBuf,
    identity_only: bool,
}

/// What polling compares: identity, full-precision mtime and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sig {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    size: u64,
}

/// The directories watched and the paths polled for a registration.
fn layout(kind: Kind, path: &Path) -> (Vec<(PathBuf, Role)>, Vec<Probe>) {
    let probe = |path: PathBuf, identity_only| Probe {
        path,
        identity_only,
    };
    match kind {
        Kind::Folder => (
            vec![
                (path.to_path_buf(), Role::FolderDir),
                (path.join("new"), Role::Sub),
                (path.join("cur"), Role::Sub),
            ],
            vec![
                // Lock and index files change the folder dir's mtime: only
                // its identity (deleted and recreated) matters.
                probe(path.to_path_buf(), true),
                probe(path.join("new"), false),
                probe(path.join("cur"), false),
                probe(path.join(UIDLIST), false),
            ],
        ),
        Kind::Root => (
            vec![(path.to_path_buf(), Role::Root)],
            vec![probe(path.to_path_buf(), false)],
        ),
    }
}

/// The registration key: the canonical path, or for a directory that does
/// not exist (yet) its canonical parent joined with its name, so the key and
/// the paths notify reports agree once it appears.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        if let Ok(p) = std::fs::canonicalize(parent) {
            return p.join(name);
        }
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Stats one probe. `recent` when its mtime is within [`RECENT`] of `now`
/// (or in the future: clocks drift).
fn probe(p: &Probe, now: SystemTime) -> (Option<Sig>, bool) {
    let Ok(md) = std::fs::metadata(&p.path) else {
        return (None, false);
    };
    if p.identity_only {
        let sig = Sig {
            dev: md.dev(),
            ino: md.ino(),
            mtime: (0, 0),
            size: 0,
        };
        return (Some(sig), false);
    }
    let recent = md
        .modified()
        .map(|m| now.duration_since(m).map_or(true, |age| age < RECENT))
        .unwrap_or(false);
    let sig = Sig {
        dev: md.dev(),
        ino: md.ino(),
        mtime: (md.mtime(), md.mtime_nsec()),
        size: md.size(),
    };
    (Some(sig), recent)
}

fn probe_all(probes: &[Probe], now: SystemTime) -> (Vec<Option<Sig>>, bool) {
    let mut recent = false;
    let sigs = probes
        .iter()
        .map(|p| {
            let (sig, r) = probe(p, now);
            recent |= r;
            sig
        })
        .collect();
    (sigs, recent)
}

/// Whether a poll must fire: no baseline yet, the signature changed, or the
/// previous look was too close to a change to trust an unchanged mtime.
fn poll_fires(old: Option<&[Option<Sig>]>, old_recent: bool, new: &[Option<Sig>]) -> bool {
    match old {
        None => true,
        Some(old) => old != new || old_recent,
    }
}

/// Per-registration coalescing: leading fire, then at most one trailing fire
/// per window.
#[derive(Debug, Default)]
struct Coalesce {
    last_fire: Option<Instant>,
    pending: bool,
}

impl Coalesce {
    /// An event at `now`. True: fire now. False: folded into the pending
    /// trailing fire (see [`Coalesce::due`]).
    fn on_event(&mut self, now: Instant, window: Duration) -> bool {
        if self.pending {
            return false;
        }
        match self.last_fire {
            Some(t) if now < t + window => {
                self.pending = true;
                false
            }
            _ => {
                self.last_fire = Some(now);
                true
            }
        }
    }

    /// When the pending trailing fire is due, if any.
    fn due(&self, window: Duration) -> Option<Instant> {
        if self.pending {
            self.last_fire.map(|t| t + window)
        } else {
            None
        }
    }

    /// The trailing fire happened at `now`.
    fn fired(&mut self, now: Instant) {
        self.last_fire = Some(now);
        self.pending = false;
    }
}

/// Outcome of adding one inotify watch.
enum Added {
    Watched,
    /// Missing, not a directory, no permission: retried later.
    Unavailable,
    /// Out of inotify watches (`ENOSPC`).
    Limit,
}

fn add_watch(backend: &mut Backend, dir: &Path) -> Added {
    match backend.watches.add(dir, watch_mask(dir)) {
        Ok(wd) => {
            lock_dirs(&backend.dirs).insert(wd.clone(), dir.to_path_buf());
            backend.by_path.insert(dir.to_path_buf(), wd);
            Added::Watched
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => Added::Limit,
        Err(e) => {
            tracing::debug!("change watcher: cannot watch {}: {e}", dir.display());
            Added::Unavailable
        }
    }
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

impl State {
    /// Adds the inotify watch of `dir` if there is an instance; records the
    /// outcome. True when watched.
    fn start_watch(&mut self, dir: &Path) -> bool {
        let Some(backend) = self.backend.as_mut() else {
            return false;
        };
        let watched = match add_watch(backend, dir) {
            Added::Watched => true,
            Added::Unavailable => false,
            Added::Limit => {
                self.limit_hit = true;
                false
            }
        };
        if let Some(d) = self.dirs.get_mut(dir) {
            d.watched = watched;
        }
        watched
    }

    /// Re-adds the watch of `dir`: the old one may be gone (notify drops
    /// watches of deleted or moved-away directories itself) or follow a
    /// moved inode, so it is removed first, errors ignored.
    fn rewatch(&mut self, dir: &Path) -> bool {
        if let Some(backend) = self.backend.as_mut() {
            backend.unwatch(dir);
        }
        if let Some(d) = self.dirs.get_mut(dir) {
            d.watched = false;
        }
        self.start_watch(dir)
    }

    /// A change for registration `id` at `now` that entry names do not
    /// describe: its guards' next [`FolderWatch::take_changes`] say
    /// [`Changes::Unknown`].
    fn change(&mut self, id: RegId, now: Instant, window: Duration) {
        if let Some(reg) = self.regs.get(&id) {
            for l in &reg.logs {
                l.lock().unwrap_or_else(|e| e.into_inner()).unknown();
            }
        }
        self.fire(id, now, window);
    }

    /// An entry event of `new/` or `cur/` for registration `id`.
    fn change_entry(&mut self, id: RegId, e: &EntryChange, now: Instant, window: Duration) {
        if let Some(reg) = self.regs.get(&id) {
            for l in &reg.logs {
                l.lock().unwrap_or_else(|e| e.into_inner()).push(e.clone());
            }
        }
        self.fire(id, now, window);
    }

    /// Fires (or schedules the trailing fire of) registration `id`.
    fn fire(&mut self, id: RegId, now: Instant, window: Duration) {
        let Some(reg) = self.regs.get_mut(&id) else {
            return;
        };
        if reg.coalesce.on_event(now, window) {
            bump(&reg.tx);
        } else if reg.coalesce.pending {
            self.pending.insert(id);
        }
    }

    fn change_all(&mut self, now: Instant, window: Duration) {
        let ids: Vec<RegId> = self.regs.keys().copied().collect();
        for id in ids {
            self.change(id, now, window);
        }
    }

    fn change_users(&mut self, dir: &Path, now: Instant, window: Duration) {
        let ids: Vec<RegId> = match self.dirs.get(dir) {
            Some(d) => d.users.iter().map(|&(id, _)| id).collect(),
            None => return,
        };
        for id in ids {
            self.change(id, now, window);
        }
    }

    /// Something happened to the watched directory `path` itself (deleted,
    /// moved, recreated): re-add the watch of every watched directory at or
    /// below it and fire their registrations.
    fn verify_under(&mut self, path: &Path, now: Instant, window: Duration) {
        let affected: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| d.starts_with(path))
            .cloned()
            .collect();
        for dir in affected {
            self.rewatch(&dir);
            self.change_users(&dir, now, window);
        }
    }

    /// One event from the reader task.
    fn handle(&mut self, raw: &Raw, now: Instant, window: Duration) {
        if self.dirs.contains_key(&raw.path) {
            self.verify_under(&raw.path, now, window);
        }
        let (Some(parent), Some(name)) = (raw.path.parent(), raw.path.file_name()) else {
            return;
        };
        let hits: Vec<(RegId, Role)> = match self.dirs.get(parent) {
            Some(d) => d
                .users
                .iter()
                .filter(|(_, role)| role.wants(name, raw.change))
                .copied()
                .collect(),
            None => return,
        };
        for (id, role) in hits {
            match role {
                // A message file: the store can act on the name alone.
                Role::Sub if !matches!(raw.change, Change::CreatedDir | Change::RemovedDir) => {
                    let e = EntryChange {
                        in_new: parent.file_name().is_some_and(|n| n == "new"),
                        name: name.to_os_string(),
                        gone: matches!(raw.change, Change::Removed | Change::RenamedFrom),
                    };
                    self.change_entry(id, &e, now, window);
                }
                // The uidlist and keywords files are checked by every sync
                // (one stat each): their names add nothing.
                Role::FolderDir if name == UIDLIST || name == KEYWORDS => {
                    self.fire(id, now, window)
                }
                _ => self.change(id, now, window),
            }
        }
    }

    /// Inotify mode, every tick: watch directories that were missing and
    /// exist now, and fire their registrations (they may hold anything).
    fn recheck_missing(&mut self, now: Instant, window: Duration) {
        let missing: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|(p, d)| !d.watched && p.is_dir())
            .map(|(p, _)| p.clone())
            .collect();
        for dir in missing {
            if self.rewatch(&dir) {
                self.change_users(&dir, now, window);
            }
        }
    }

    fn next_due(&self, window: Duration) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|id| self.regs.get(id)?.coalesce.due(window))
            .min()
    }

    /// Fires every trailing fire that is due.
    fn flush(&mut self, now: Instant, window: Duration) {
        let due: Vec<RegId> = self
            .pending
            .iter()
            .copied()
            .filter(|id| {
                self.regs
                    .get(id)
                    .and_then(|r| r.coalesce.due(window))
                    .is_none_or(|d| d <= now)
            })
            .collect();
        for id in due {
            self.pending.remove(&id);
            if let Some(reg) = self.regs.get_mut(&id) {
                reg.coalesce.fired(now);
                bump(&reg.tx);
            }
        }
    }

    fn probe_jobs(&self) -> Vec<(RegId, Vec<Probe>)> {
        self.regs
            .iter()
            .map(|(&id, r)| (id, r.probes.clone()))
            .collect()
    }

    /// Applies a poll's results: fire where needed, store the new baseline.
    fn apply_poll(&mut self, results: Vec<PollResult>, now: Instant, window: Duration) {
        for (id, sig, recent) in results {
            let Some(reg) = self.regs.get_mut(&id) else {
                continue;
            };
            let fire = poll_fires(reg.sig.as_deref(), reg.recent, &sig);
            reg.sig = Some(sig);
            reg.recent = recent;
            if fire {
                self.change(id, now, window);
            }
        }
    }

    fn set_all_unwatched(&mut self) {
        for d in self.dirs.values_mut() {
            d.watched = false;
        }
    }
}

type PollResult = (RegId, Vec<Option<Sig>>, bool);

/// Stats every job off the runtime.
async fn probe_blocking(jobs: Vec<(RegId, Vec<Probe>)>) -> Vec<PollResult> {
    let res = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        jobs.into_iter()
            .map(|(id, probes)| {
                let (sig, recent) = probe_all(&probes, now);
                (id, sig, recent)
            })
            .collect::<Vec<_>>()
    })
    .await;
    res.unwrap_or_else(|e| {
        tracing::error!("change watcher: poll task failed: {e}");
        Vec::new()
    })
}

/// Why inotify is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trouble {
    Overflow,
    Failed,
    Limit,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state
        // (worst case a missed unwatch); keep serving rather than poison
        // every session.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn recover_interval(&self) -> Duration {
        self.opts.poll_interval * RECOVER_AFTER_POLLS
    }

    /// A new inotify instance and a task (on the runtime, no thread of its
    /// own) that reads its events and forwards them into the driver.
    fn new_backend(&self, generation: u64) -> std::io::Result<Backend> {
        let inotify = inotify::Inotify::init()?;
        let watches = inotify.watches();
        // SAFETY: `Inotify` owns its descriptor (closed only when the last
        // of its handles, this one included, is dropped) and always reports
        // that same descriptor from `as_raw_fd`.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(inotify)? };
        let dirs: Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>> = Arc::default();
        let out = Forward {
            tx: self.events_tx.clone(),
            signals: self.signals.clone(),
            dirs: dirs.clone(),
            generation,
        };
        let (barrier_req, mut barrier_rx) = mpsc::unbounded_channel::<u64>();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; READ_BUFFER];
            let mut fd = fd;
            loop {
                tokio::select! {
                    ready = fd.readable_mut() => {
                        let Ok(mut guard) = ready else {
                            out.failed();
                            return;
                        };
                        // Read until the kernel queue is empty; `try_io`
                        // clears the readiness only on that last empty read.
                        loop {
                            match guard.try_io(|fd| out.read_once(fd.get_mut(), &mut buf)) {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => return,
                                Err(_empty) => break,
                            }
                        }
                    }
                    req = barrier_rx.recv() => {
                        let Some(n) = req else { return };
                        if !out.barrier(fd.get_mut(), &mut buf, n) {
                            return;
                        }
                        continue;
                    }
                }
                // Something came: step out of epoll for a moment (see
                // `PACE`), answering barriers meanwhile, then back in.
                let mut inotify = fd.into_inner();
                let pause = tokio::time::sleep(PACE);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        req = barrier_rx.recv() => {
                            let Some(n) = req else { return };
                            if !out.barrier(&mut inotify, &mut buf, n) {
                                return;
                            }
                        }
                    }
                }
                // SAFETY: as above; registering again after `into_inner`
                // deregistered it. Events queued during the pause make the
                // descriptor readable at once (epoll checks on insertion).
                fd = match unsafe { tokio::io::unix::AsyncFd::register(inotify) } {
                    Ok(fd) => fd,
                    Err(e) => {
                        tracing::debug!("change watcher: re-registering inotify: {e}");
                        out.failed();
                        return;
                    }
                };
            }
        });
        Ok(Backend {
            watches,
            dirs,
            by_path: HashMap::new(),
            reader: reader.abort_handle(),
            barrier_req,
            generation,
        })
    }

    /// Drops one guard of registration `id`; the last one removes it and the
    /// inotify watches no other registration needs.
    fn release(&self, id: RegId, log: &Arc<Mutex<EntryLog>>) {
        let mut st = self.lock();
        let Some(reg) = st.regs.get_mut(&id) else {
            return;
        };
        reg.logs.retain(|l| !Arc::ptr_eq(l, log));
        reg.refs = reg.refs.saturating_sub(1);
        if reg.refs > 0 {
            return;
        }
        let Some(reg) = st.regs.remove(&id) else {
            return;
        };
        st.pending.remove(&id);
        st.by_key.remove(&reg.key);
        for dir in reg.dirs {
            let Some(d) = st.dirs.get_mut(&dir) else {
                continue;
            };
            d.users.retain(|&(u, _)| u != id);
            if !d.users.is_empty() {
                continue;
            }
            let watched = d.watched;
            st.dirs.remove(&dir);
            if watched {
                if let Some(backend) = st.backend.as_mut() {
                    backend.unwatch(&dir);
                }
            }
        }
    }

    /// Takes the signals the reader task left and acts on them.
    async fn troubles(&self) {
        let s = &self.signals;
        let lost = s.queue_full.swap(false, Ordering::Relaxed);
        let overflow = s.overflow_gen.swap(0, Ordering::Relaxed);
        let failed = s.failed_gen.swap(0, Ordering::Relaxed);
        let (generation, limit) = {
            let mut st = self.lock();
            (
                st.backend.as_ref().map(|b| b.generation),
                std::mem::take(&mut st.limit_hit),
            )
        };
        // Signals of an instance already dropped are stale: polling (or the
        // recovery's final poll) covers their time.
        let live = |g: u64| g != 0 && Some(g) == generation;
        // Our own queue being full loses events just as the kernel's does,
        // including a directory's DELETE_SELF that would have re-added its
        // watch: treat it the same way.
        let trouble = if live(overflow) || (lost && generation.is_some()) {
            Some(Trouble::Overflow)
        } else if live(failed) {
            Some(Trouble::Failed)
        } else if limit && generation.is_some() {
            Some(Trouble::Limit)
        } else {
            None
        };
        if let Some(trouble) = trouble {
            self.fall_back(trouble).await;
        }
        if lost || trouble == Some(Trouble::Overflow) {
            // Events were dropped: anything may have changed.
            let window = self.opts.coalesce;
            self.lock().change_all(Instant::now(), window);
        }
    }

    /// Gives up inotify: baseline every registration, then drop the
    /// instance (so changes before the baseline still arrive as events).
    async fn fall_back(&self, why: Trouble) {
        let jobs = {
            let st = self.lock();
            if st.backend.is_none() {
                return;
            }
            st.probe_jobs()
        };
        let results = probe_blocking(jobs).await;
        let now = Instant::now();
        let window = self.opts.coalesce;
        let mut st = self.lock();
        // Registrations that had no (complete) inotify coverage may have
        // missed something before their baseline.
        let uncovered: HashSet<RegId> = st
            .dirs
            .values()
            .filter(|d| !d.watched)
            .flat_map(|d| d.users.iter().map(|&(id, _)| id))
            .collect();
        for (id, sig, recent) in results {
            if let Some(reg) = st.regs.get_mut(&id) {
                reg.sig = Some(sig);
                reg.recent = recent;
            }
        }
        st.backend = None;
        st.set_all_unwatched();
        self.polling.store(true, Ordering::Relaxed);
        st.next_recover = Some(now + self.recover_interval());
        st.fallbacks += 1;
        let what = match why {
            Trouble::Overflow => "inotify queue overflowed",
            Trouble::Failed => "inotify failed",
            Trouble::Limit => "out of inotify watches (fs.inotify.max_user_watches)",
        };
        if st.fallbacks == 1 {
            tracing::warn!(
                "change watcher: {what}; polling every {:?}, retrying inotify every {:?}",
                self.opts.poll_interval,
                self.recover_interval()
            );
        } else {
            tracing::info!("change watcher: {what}; polling again");
        }
        for id in uncovered {
            st.change(id, now, window);
        }
    }

    /// Every `poll_interval`.
    async fn maintain(&self) {
        let now = Instant::now();
        let window = self.opts.coalesce;
        let (polling, recover) = {
            let mut st = self.lock();
            if st.backend.is_some() {
                st.recheck_missing(now, window);
                return;
            }
            let recover = !self.opts.force_poll && st.next_recover.is_none_or(|t| t <= now);
            (true, recover)
        };
        if polling && recover && self.try_recover().await {
            return;
        }
        let jobs = self.lock().probe_jobs();
        let results = probe_blocking(jobs).await;
        self.lock().apply_poll(results, Instant::now(), window);
    }

    /// Polling mode: tries a new inotify instance with every directory
    /// watched; on success one last poll catches what changed since the
    /// previous one. True when inotify is back.
    async fn try_recover(&self) -> bool {
        {
            let mut st = self.lock();
            st.next_gen += 1;
            let backend = match self.new_backend(st.next_gen) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!("change watcher: inotify still unavailable: {e}");
                    st.next_recover = Some(Instant::now() + self.recover_interval());
                    return false;
                }
            };
            st.backend = Some(backend);
            // The lock stays held while every directory is watched (a system
            // call each) so no registration slips in between; recovery is
            // rare, and it costs milliseconds per thousand directories.
            let dirs: Vec<PathBuf> = st.dirs.keys().cloned().collect();
            for dir in dirs {
                st.start_watch(&dir);
                if st.limit_hit {
                    st.limit_hit = false;
                    st.backend = None;
                    st.set_all_unwatched();
                    st.next_recover = Some(Instant::now() + self.recover_interval());
                    tracing::debug!("change watcher: still out of inotify watches");
                    return false;
                }
            }
            self.polling.store(false, Ordering::Relaxed);
            tracing::info!("change watcher: inotify recovered");
        }
        let jobs = self.lock().probe_jobs();
        let results = probe_blocking(jobs).await;
        let mut st = self.lock();
        st.apply_poll(results, Instant::now(), self.opts.coalesce);
        for reg in st.regs.values_mut() {
            reg.sig = None;
            reg.recent = false;
        }
        true
    }
}

/// The driver task: events, trailing fires, ticks, troubles.
async fn drive(inner: Arc<Inner>, mut rx: mpsc::Receiver<Msg>) {
    let window = inner.opts.coalesce;
    let mut tick = tokio::time::interval(inner.opts.poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let due = inner.lock().next_due(window);
        let trailing = async {
            match due {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                let now = Instant::now();
                let mut st = inner.lock();
                let mut passed = None;
                for msg in batch.drain(..) {
                    match msg {
                        Msg::Event(raw) => st.handle(&raw, now, window),
                        Msg::Barrier(n) => passed = Some(n),
                    }
                }
                drop(st);
                if let Some(n) = passed {
                    inner.barrier_seen.send_modify(|s| *s = (*s).max(n));
                }
            }
            () = trailing => {}
            () = inner.signals.wake.notified() => {}
            _ = tick.tick() => inner.maintain().await,
        }
        inner.troubles().await;
        inner.lock().flush(Instant::now(), window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tokio::time::timeout;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn opts(poll_ms: u64, force_poll: bool) -> WatchOptions {
        WatchOptions {
            poll_interval: ms(poll_ms),
            coalesce: ms(5),
            force_poll,
        }
    }

    fn forced_by_env() -> bool {
        std::env::var_os(FORCE_POLL_ENV).is_some_and(|v| v == "1")
    }

    /// Creates `dir/{new,cur,tmp}`.
    fn maildir(dir: &Path) -> PathBuf {
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        dir.to_path_buf()
    }

    /// Backdates the mtimes of a Maildir's directories, so the polling
    /// "recently changed, look again" rule cannot produce the fires a test
    /// expects from something else.
    fn age(dir: &Path) {
        let past = filetime::FileTime::from_unix_time(1_600_000_000, 0);
        for p in [
            dir.to_path_buf(),
            dir.join("new"),
            dir.join("cur"),
            dir.join("tmp"),
        ] {
            filetime::set_file_mtime(&p, past).unwrap();
        }
    }

    /// A delivery the Maildir way: write in tmp/, rename into new/.
    fn deliver(dir: &Path, name: &str) {
        let tmp = dir.join("tmp").join(name);
        fs::write(&tmp, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        fs::rename(&tmp, dir.join("new").join(name)).unwrap();
    }

    async fn fires(fw: &mut FolderWatch, within: Duration) -> bool {
        timeout(within, fw.changed()).await.is_ok()
    }

    /// Waits until no fire comes for `quiet`.
    async fn drain(fw: &mut FolderWatch, quiet: Duration) {
        while fires(fw, quiet).await {}
    }

    /// Number of inotify watches in this process (any instance) on the
    /// inode of `path`, read from the kernel's fdinfo.
    fn kernel_watches(path: &Path) -> usize {
        let ino = fs::metadata(path).unwrap().ino();
        let needle = format!(" ino:{ino:x} ");
        let mut n = 0;
        for entry in fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let is_inotify =
                fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"));
            if !is_inotify {
                continue;
            }
            let info = fs::read_to_string(Path::new("/proc/self/fdinfo").join(entry.file_name()))
                .unwrap_or_default();
            n += info
                .lines()
                .filter(|l| l.starts_with("inotify") && l.contains(&needle))
                .count();
        }
        n
    }

    #[test]
    fn coalesce_table() {
        // (event times in ms, window ms, expected fire times in ms). The
        // simulation flushes due trailing fires before each event, as the
        // driver does.
        let cases: &[(&[u64], u64, &[u64])] = &[
            (&[0], 5, &[0]),
            (&[0, 1, 2], 5, &[0, 5]),
            (&[0, 1, 2, 10, 11, 30], 5, &[0, 5, 10, 15, 30]),
            (&[0, 4, 5], 5, &[0, 5, 10]),
            (&[0, 6, 12], 5, &[0, 6, 12]),
            (&[0, 1, 2, 3], 0, &[0, 1, 2, 3]),
        ];
        for &(events, window, want) in cases {
            let base = Instant::now();
            let at = |t: u64| base + ms(t);
            let window = ms(window);
            let mut c = Coalesce::default();
            let mut got = Vec::new();
            for &e in events {
                while let Some(d) = c.due(window).filter(|&d| d <= at(e)) {
                    c.fired(d);
                    got.push((d - base).as_millis() as u64);
                }
                if c.on_event(at(e), window) {
                    got.push(e);
                }
            }
            if let Some(d) = c.due(window) {
                c.fired(d);
                got.push((d - base).as_millis() as u64);
            }
            assert_eq!(got, want, "events {events:?}");
        }
    }

    #[test]
    fn classify_table() {
        let cases = [
            (EventMask::CREATE, Some(Change::Created)),
            (
                EventMask::CREATE | EventMask::ISDIR,
                Some(Change::CreatedDir),
            ),
            (EventMask::DELETE, Some(Change::Removed)),
            (
                EventMask::DELETE | EventMask::ISDIR,
                Some(Change::RemovedDir),
            ),
            (EventMask::MOVED_FROM, Some(Change::RenamedFrom)),
            (
                EventMask::MOVED_FROM | EventMask::ISDIR,
                Some(Change::RenamedFrom),
            ),
            (EventMask::MOVED_TO, Some(Change::RenamedTo)),
            (EventMask::CLOSE_WRITE, Some(Change::Written)),
            (EventMask::DELETE_SELF, Some(Change::RemovedDir)),
            (EventMask::MOVE_SELF, Some(Change::RenamedFrom)),
            (EventMask::IGNORED, None),
            (EventMask::OPEN, None),
            (EventMask::ACCESS, None),
            (EventMask::CLOSE_NOWRITE, None),
            (EventMask::MODIFY, None),
            (EventMask::ATTRIB, None),
        ];
        for (mask, want) in cases {
            assert_eq!(classify(mask), want, "{mask:?}");
        }
    }

    /// Writes completing in place are watched for in `new/` (and elsewhere), not in `cur/`,
    /// where the kernel would mark every cached entry when the watch is added.
    #[test]
    fn close_write_is_watched_except_in_cur() {
        for (dir, close_write) in [
            ("/m/Maildir/new", true),
            ("/m/Maildir/.Work/new", true),
            ("/m/Maildir", true),
            ("/m/Maildir/cur", false),
            ("/m/Maildir/.Work/cur", false),
            ("/m/Maildir/.cur", true),
        ] {
            let mask = watch_mask(Path::new(dir));
            assert_eq!(mask.contains(WatchMask::CLOSE_WRITE), close_write, "{dir}");
            assert!(
                mask.contains(WatchMask::DONT_FOLLOW | WatchMask::ONLYDIR),
                "{dir}"
            );
            assert!(
                mask.contains(WatchMask::MOVED_TO | WatchMask::CREATE),
                "{dir}"
            );
        }
    }

    #[test]
    fn role_table() {
        use Change::*;
        let cases = [
            (Role::Sub, "1.2.host:2,S", RenamedFrom, true),
            (Role::Sub, "1.2.host", Written, true),
            (Role::FolderDir, "dovecot-uidlist", RenamedTo, true),
            (Role::FolderDir, "dovecot-uidlist", Written, true),
            (Role::FolderDir, "dovecot-keywords", RenamedTo, true),
            (Role::FolderDir, "dovecot-uidlist.lock", Created, false),
            (Role::FolderDir, "dovecot.index.cache", Written, false),
            (Role::FolderDir, "new", CreatedDir, true),
            (Role::FolderDir, "cur", RemovedDir, true),
            (Role::FolderDir, "tmp", CreatedDir, false),
            (Role::Root, ".Sent", CreatedDir, true),
            (Role::Root, ".Sent", RemovedDir, true),
            (Role::Root, ".Sent", RenamedTo, true),
            (Role::Root, ".Sent", Written, false),
            (Role::Root, "subscriptions", RenamedFrom, false),
            (Role::Root, "subscriptions", RenamedTo, true),
            (Role::Root, "subscriptions", Written, true),
            (Role::Root, "subscriptions.lock", Created, false),
            (Role::Root, "cur", CreatedDir, false),
        ];
        for (role, name, change, want) in cases {
            assert_eq!(
                role.wants(OsStr::new(name), change),
                want,
                "{role:?} {name} {change:?}"
            );
        }
    }

    #[test]
    fn poll_fires_table() {
        let a = Some(Sig {
            dev: 1,
            ino: 2,
            mtime: (10, 5),
            size: 0,
        });
        let b = Some(Sig {
            dev: 1,
            ino: 2,
            mtime: (10, 6),
            size: 0,
        });
        let c = Some(Sig {
            dev: 1,
            ino: 3,
            mtime: (10, 5),
            size: 0,
        });
        // (previous signature, previous look was recent, new signature, fires)
        type Case<'a> = (Option<&'a [Option<Sig>]>, bool, &'a [Option<Sig>], bool);
        let cases: [Case; 6] = [
            (None, false, &[a], true),
            (Some(&[a]), false, &[a], false),
            (Some(&[a]), true, &[a], true),
            (Some(&[a]), false, &[b], true),
            (Some(&[a]), false, &[c], true),
            (Some(&[a]), false, &[None], true),
        ];
        for (i, (old, recent, new, want)) in cases.into_iter().enumerate() {
            assert_eq!(poll_fires(old, recent, new), want, "case {i}");
        }
    }

    #[test]
    fn probe_identity_only_ignores_mtime() {
        let t = tempfile::tempdir().unwrap();
        let p = Probe {
            path: t.path().to_path_buf(),
            identity_only: true,
        };
        let (before, recent) = probe(&p, SystemTime::now());
        assert!(!recent);
        fs::write(t.path().join("x.lock"), b"").unwrap();
        assert_eq!(probe(&p, SystemTime::now()).0, before);
        let full = Probe {
            path: t.path().to_path_buf(),
            identity_only: false,
        };
        assert!(
            probe(&full, SystemTime::now()).1,
            "just-modified dir is recent"
        );
        let gone = Probe {
            path: t.path().join("nope"),
            identity_only: false,
        };
        assert_eq!(probe(&gone, SystemTime::now()), (None, false));
    }

    /// Every kind of entry change in new/ and cur/ fires, in both modes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_fire_in_both_modes() {
        for force in [false, true] {
            let w = Watcher::new(opts(50, force));
            let t = tempfile::tempdir().unwrap();
            let dir = maildir(t.path());
            let mut fw = w.watch_folder(&dir);
            // Polling needs the change to be visible at the next tick;
            // inotify must be fast.
            let within = if w.mode() == Mode::Polling {
                ms(1000)
            } else {
                ms(200)
            };
            if w.mode() == Mode::Inotify {
                assert!(!fires(&mut fw, ms(100)).await, "no spurious fire");
            }

            deliver(&dir, "1.a.host");
            assert!(
                fires(&mut fw, within).await,
                "rename into new/ (force={force})"
            );
            drain(&mut fw, ms(150)).await;

            fs::rename(dir.join("new/1.a.host"), dir.join("cur/1.a.host:2,")).unwrap();
            assert!(fires(&mut fw, within).await, "new/ -> cur/ (force={force})");
            drain(&mut fw, ms(150)).await;

            fs::rename(dir.join("cur/1.a.host:2,"), dir.join("cur/1.a.host:2,S")).unwrap();
            assert!(
                fires(&mut fw, within).await,
                "flag rename in cur/ (force={force})"
            );
            drain(&mut fw, ms(150)).await;

            fs::remove_file(dir.join("cur/1.a.host:2,S")).unwrap();
            assert!(
                fires(&mut fw, within).await,
                "unlink in cur/ (force={force})"
            );
            drain(&mut fw, ms(150)).await;

            fs::write(dir.join("dovecot-uidlist.tmp"), b"3 V1 N1\n").unwrap();
            fs::rename(dir.join("dovecot-uidlist.tmp"), dir.join(UIDLIST)).unwrap();
            assert!(
                fires(&mut fw, within).await,
                "uidlist replaced (force={force})"
            );
            drain(&mut fw, ms(150)).await;
        }
    }

    /// On inotify a guard gets the names that came and went, in order, and
    /// the uidlist adds none; polling, or a folder directory replaced, gives
    /// `Unknown`; a second guard of the same folder has its own log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entry_names_reach_each_guard() {
        let entry = |in_new, name: &str, gone| EntryChange {
            in_new,
            name: name.into(),
            gone,
        };
        for force in [false, true] {
            let w = Watcher::new(opts(50, force));
            let t = tempfile::tempdir().unwrap();
            let dir = maildir(t.path());
            let mut fw = w.watch_folder(&dir);
            let within = if w.mode() == Mode::Polling {
                ms(1000)
            } else {
                ms(200)
            };
            deliver(&dir, "1.a.host");
            fs::rename(dir.join("new/1.a.host"), dir.join("cur/1.a.host:2,S")).unwrap();
            fs::write(dir.join("dovecot-uidlist.tmp"), b"3 V1 N1\n").unwrap();
            fs::rename(dir.join("dovecot-uidlist.tmp"), dir.join(UIDLIST)).unwrap();
            fs::remove_file(dir.join("cur/1.a.host:2,S")).unwrap();
            assert!(fires(&mut fw, within).await);
            drain(&mut fw, ms(150)).await;
            let got = fw.take_changes();
            if w.mode() == Mode::Polling {
                assert_eq!(got, Changes::Unknown, "polling knows no names");
                continue;
            }
            let Changes::Entries(got) = got else {
                panic!("inotify gave no names: {got:?}");
            };
            // `deliver` writes in tmp/ (not watched) and renames into new/.
            assert_eq!(
                got,
                [
                    entry(true, "1.a.host", false),
                    entry(true, "1.a.host", true),
                    entry(false, "1.a.host:2,S", false),
                    entry(false, "1.a.host:2,S", true),
                ]
            );
            assert_eq!(fw.take_changes(), Changes::Entries(vec![]), "taken once");

            // Two guards, two logs: each sees the delivery.
            let fw2 = w.watch_folder(&dir);
            deliver(&dir, "2.b.host");
            assert!(fires(&mut fw, within).await);
            drain(&mut fw, ms(150)).await;
            let one = Changes::Entries(vec![entry(true, "2.b.host", false)]);
            assert_eq!(fw.take_changes(), one);
            assert_eq!(fw2.take_changes(), one);
            drop(fw2);

            // new/ replaced: names cannot describe that.
            fs::remove_dir_all(dir.join("new")).unwrap();
            fs::create_dir(dir.join("new")).unwrap();
            assert!(fires(&mut fw, within).await);
            drain(&mut fw, ms(150)).await;
            assert_eq!(fw.take_changes(), Changes::Unknown);
            assert_eq!(fw.take_changes(), Changes::Entries(vec![]));
        }
    }

    /// Right after a change, without waiting for any fire: once `barrier`
    /// returns true, the guard's next take holds the change's name. In
    /// polling mode there is no barrier.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn barrier_puts_every_earlier_change_in_the_log() {
        for force in [false, true] {
            let w = Watcher::new(opts(50, force));
            let t = tempfile::tempdir().unwrap();
            let dir = maildir(t.path());
            let fw = w.watch_folder(&dir);
            if w.mode() == Mode::Polling {
                assert!(!w.barrier().await, "polling has no barrier");
                continue;
            }
            for i in 0..100 {
                let name = format!("{i}.b.host");
                deliver(&dir, &name);
                assert!(w.barrier().await, "barrier {i}");
                let Changes::Entries(got) = fw.take_changes() else {
                    panic!("names expected");
                };
                assert!(
                    got.iter()
                        .any(|e| e.in_new && !e.gone && e.name == name.as_str()),
                    "{name} missing from {got:?}"
                );
            }
        }
    }

    /// Reading messages, lock files and index files must not echo.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn noise_does_not_fire() {
        let w = Watcher::new(opts(50, false));
        let t = tempfile::tempdir().unwrap();
        let dir = maildir(t.path());
        fs::write(dir.join("cur/1.a.host:2,S"), b"x").unwrap();
        age(&dir);
        let mut fw = w.watch_folder(&dir);
        let _ = fs::read(dir.join("cur/1.a.host:2,S")).unwrap();
        fs::write(dir.join("dovecot-uidlist.lock"), b"").unwrap();
        fs::remove_file(dir.join("dovecot-uidlist.lock")).unwrap();
        fs::write(dir.join("dovecot.index.cache"), b"cache").unwrap();
        assert!(!fires(&mut fw, ms(300)).await);
    }

    /// Two guards on one folder (spelled differently) share one
    /// registration and one kernel watch per directory; the watches go only
    /// when both guards are dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn guards_share_one_watch() {
        let w = Watcher::new(opts(50, false));
        let t = tempfile::tempdir().unwrap();
        let dir = maildir(&t.path().join("Maildir"));
        std::os::unix::fs::symlink(&dir, t.path().join("link")).unwrap();
        let inotify = w.mode() == Mode::Inotify;

        let fw1 = w.watch_folder(&dir);
        let mut fw2 = w.watch_folder(&t.path().join("link"));
        assert_eq!(w.registrations(), 1);
        assert_eq!(w.watched_dirs(), 3);
        if inotify {
            for p in [dir.clone(), dir.join("new"), dir.join("cur")] {
                assert_eq!(kernel_watches(&p), 1, "{}", p.display());
            }
        }
        drop(fw1);
        assert_eq!(w.registrations(), 1);
        if inotify {
            assert_eq!(kernel_watches(&dir.join("new")), 1);
        }
        deliver(&dir, "1.a.host");
        assert!(
            fires(&mut fw2, ms(1000)).await,
            "the remaining guard still fires"
        );
        drop(fw2);
        assert_eq!(w.registrations(), 0);
        assert_eq!(w.watched_dirs(), 0);
        for p in [dir.clone(), dir.join("new"), dir.join("cur")] {
            assert_eq!(kernel_watches(&p), 0, "{}", p.display());
        }
        if !forced_by_env() {
            assert!(inotify, "inotify should be available in tests");
        }
    }

    /// A root watch and an INBOX folder watch on the same directory coexist,
    /// and dropping one keeps the other's kernel watch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn root_and_inbox_share_a_directory() {
        let w = Watcher::new(opts(50, false));
        let t = tempfile::tempdir().unwrap();
        let root = maildir(t.path());
        let mut inbox = w.watch_folder(&root);
        let root_watch = w.watch_root(&root);
        assert_eq!(w.registrations(), 2);
        assert_eq!(w.watched_dirs(), 3);
        drop(root_watch);
        if w.mode() == Mode::Inotify {
            assert_eq!(kernel_watches(&root), 1);
        }
        fs::write(root.join("dovecot-uidlist.tmp"), b"3 V1 N1\n").unwrap();
        fs::rename(root.join("dovecot-uidlist.tmp"), root.join(UIDLIST)).unwrap();
        assert!(fires(&mut inbox, ms(1000)).await);
    }

    /// 1,000 renames in a burst: coalesced into far fewer fires, and the
    /// consumer's last look (after the last fire) sees every file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn burst_keeps_the_last_change() {
        const N: usize = 1000;
        let w = Watcher::new(opts(100, false));
        let t = tempfile::tempdir().unwrap();
        let dir = maildir(t.path());
        for i in 0..N {
            fs::write(dir.join("tmp").join(format!("{i}.m.host")), b"x").unwrap();
        }
        let mut fw = w.watch_folder(&dir);
        let start = fw.fire_count();
        let new = dir.join("new");
        let consumer = tokio::spawn(async move {
            let mut seen = Vec::new();
            while fires(&mut fw, ms(1000)).await {
                seen.push((Instant::now(), fs::read_dir(&new).unwrap().count()));
            }
            (seen, fw.fire_count())
        });
        let d = dir.clone();
        let before_last = tokio::task::spawn_blocking(move || {
            let mut before_last = Instant::now();
            for i in 0..N {
                let name = format!("{i}.m.host");
                before_last = Instant::now();
                fs::rename(d.join("tmp").join(&name), d.join("new").join(&name)).unwrap();
            }
            before_last
        })
        .await
        .unwrap();
        let (seen, end) = consumer.await.unwrap();
        let fired = end.wrapping_sub(start);
        let &(last_at, last_count) = seen.last().expect("at least one fire");
        assert_eq!(last_count, N, "the last look sees every delivery");
        assert!(last_at >= before_last, "a fire came after the last rename");
        assert!(
            fired >= 1 && fired < N as u64 / 2,
            "coalesced: {fired} fires for {N} renames"
        );
    }

    /// The folder directory deleted and recreated (or moved away and
    /// replaced, as a restore from backup does) keeps firing, in both modes;
    /// the moved-away copy is no longer watched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn folder_recreated_keeps_firing() {
        for (force, by_move) in [(false, false), (false, true), (true, false), (true, true)] {
            let ctx = format!("force={force} move={by_move}");
            let w = Watcher::new(opts(50, force));
            let t = tempfile::tempdir().unwrap();
            let dir = maildir(&t.path().join(".Folder"));
            let mut fw = w.watch_folder(&dir);
            deliver(&dir, "1.a.host");
            assert!(fires(&mut fw, ms(1000)).await, "before ({ctx})");

            let old = t.path().join(".Folder.old");
            if by_move {
                fs::rename(&dir, &old).unwrap();
            } else {
                fs::remove_dir_all(&dir).unwrap();
            }
            assert!(fires(&mut fw, ms(1000)).await, "removal fires ({ctx})");
            maildir(&dir);
            // Long enough for the missing-directory recheck to re-add the
            // watches and fire for the recreation.
            drain(&mut fw, ms(300)).await;

            deliver(&dir, "2.a.host");
            assert!(fires(&mut fw, ms(1000)).await, "after recreation ({ctx})");
            if by_move {
                drain(&mut fw, ms(300)).await;
                deliver(&old, "3.a.host");
                assert!(
                    !fires(&mut fw, ms(300)).await,
                    "moved-away copy is unwatched ({ctx})"
                );
            }
        }
    }

    /// A root watch fires on `.Folder` directories appearing and vanishing,
    /// not on plain files (inotify mode; polling sees only the root mtime).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn root_watch_sees_folders() {
        for force in [false, true] {
            let w = Watcher::new(opts(50, force));
            let t = tempfile::tempdir().unwrap();
            let root = maildir(t.path());
            let mut fw = w.watch_root(&root);
            if w.mode() == Mode::Inotify {
                assert!(!fires(&mut fw, ms(150)).await, "no spurious fire");
            } else {
                // The root was just created: polling re-checks it for a second.
                drain(&mut fw, ms(150)).await;
            }
            maildir(&root.join(".Folder"));
            assert!(
                fires(&mut fw, ms(1000)).await,
                "folder created (force={force})"
            );
            drain(&mut fw, ms(150)).await;
            if w.mode() == Mode::Inotify {
                deliver(&root, "1.a.host");
                fs::write(root.join("dovecot-uidlist.lock"), b"").unwrap();
                assert!(
                    !fires(&mut fw, ms(200)).await,
                    "files in the root are not folders"
                );
                // ...but the subscriptions are (NOTIFY SubscriptionChange).
                fs::write(root.join("subscriptions.tmp"), b"INBOX\n").unwrap();
                fs::rename(root.join("subscriptions.tmp"), root.join("subscriptions")).unwrap();
                assert!(fires(&mut fw, ms(1000)).await, "subscriptions replaced");
                drain(&mut fw, ms(150)).await;
            }
            fs::rename(root.join(".Folder"), root.join(".Renamed")).unwrap();
            assert!(
                fires(&mut fw, ms(1000)).await,
                "folder renamed (force={force})"
            );
            drain(&mut fw, ms(150)).await;
            fs::remove_dir_all(root.join(".Renamed")).unwrap();
            assert!(
                fires(&mut fw, ms(1000)).await,
                "folder deleted (force={force})"
            );
        }
    }

    /// Another program moving a message between folders fires both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn move_between_folders_fires_both() {
        for force in [false, true] {
            let w = Watcher::new(opts(50, force));
            let t = tempfile::tempdir().unwrap();
            let a = maildir(&t.path().join(".A"));
            let b = maildir(&t.path().join(".B"));
            fs::write(a.join("cur/1.a.host:2,S"), b"x").unwrap();
            age(&a);
            age(&b);
            let mut fa = w.watch_folder(&a);
            let mut fb = w.watch_folder(&b);
            fs::rename(a.join("cur/1.a.host:2,S"), b.join("cur/1.a.host:2,S")).unwrap();
            assert!(fires(&mut fa, ms(1000)).await, "source (force={force})");
            assert!(
                fires(&mut fb, ms(1000)).await,
                "destination (force={force})"
            );
        }
    }

    /// A folder registered before it exists is watched once it appears.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn folder_created_after_registration() {
        let w = Watcher::new(opts(50, false));
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(".Later");
        let mut fw = w.watch_folder(&dir);
        maildir(&dir);
        drain(&mut fw, ms(300)).await;
        deliver(&dir, "1.a.host");
        assert!(fires(&mut fw, ms(1000)).await);
    }

    /// `force_poll` never uses inotify and fires within the poll interval.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn force_poll_fires_within_interval() {
        let w = Watcher::new(opts(100, true));
        assert_eq!(w.mode(), Mode::Polling);
        let t = tempfile::tempdir().unwrap();
        let dir = maildir(t.path());
        let mut fw = w.watch_folder(&dir);
        if kernel_watches(&dir.join("new")) != 0 {
            panic!("force_poll must not add inotify watches");
        }
        // Let the registration's mtimes age past RECENT so only the
        // delivery itself can fire.
        tokio::time::sleep(ms(1100)).await;
        drain(&mut fw, ms(250)).await;
        let sent = Instant::now();
        deliver(&dir, "1.a.host");
        assert!(
            fires(&mut fw, ms(250)).await,
            "within poll interval (+ slack)"
        );
        assert!(sent.elapsed() <= ms(250));
    }

    /// Overflow and out-of-watches fall back to polling (overflow also fires
    /// every folder), changes keep arriving, and inotify recovers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fallback_and_recovery() {
        // (what goes wrong, whether every folder must fire)
        let cases = [
            ("kernel overflow", true),
            ("out of watches", false),
            ("queue full", true),
        ];
        for (trouble, fire_all) in cases {
            let w = Watcher::new(opts(30, false));
            if w.mode() != Mode::Inotify {
                return; // forced by the environment: nothing to fall back from
            }
            let t = tempfile::tempdir().unwrap();
            let a = maildir(&t.path().join(".A"));
            let b = maildir(&t.path().join(".B"));
            age(&a);
            age(&b);
            let mut fa = w.watch_folder(&a);
            let mut fb = w.watch_folder(&b);
            {
                let mut st = w.inner.lock();
                let generation = st.backend.as_ref().map(|b| b.generation).unwrap();
                let signals = &w.inner.signals;
                match trouble {
                    "kernel overflow" => signals.overflow_gen.store(generation, Ordering::Relaxed),
                    "out of watches" => st.limit_hit = true,
                    _ => signals.queue_full.store(true, Ordering::Relaxed),
                }
            }
            w.inner.signals.wake.notify_one();
            if fire_all {
                assert!(fires(&mut fa, ms(500)).await, "overflow fires every folder");
                assert!(fires(&mut fb, ms(500)).await, "overflow fires every folder");
            }
            let deadline = Instant::now() + ms(500);
            while w.mode() != Mode::Polling && Instant::now() < deadline {
                tokio::time::sleep(ms(5)).await;
            }
            assert_eq!(w.mode(), Mode::Polling, "{trouble:?}");
            // the aborted reader task closes the instance shortly after the drop.
            let deadline = Instant::now() + ms(500);
            while kernel_watches(&a.join("new")) != 0 && Instant::now() < deadline {
                tokio::time::sleep(ms(5)).await;
            }
            assert_eq!(kernel_watches(&a.join("new")), 0, "instance dropped");
            drain(&mut fa, ms(100)).await;
            deliver(&a, "1.a.host");
            assert!(
                fires(&mut fa, ms(500)).await,
                "polling delivers ({trouble:?})"
            );

            // Recovery is tried every 30 polls (900 ms here).
            let deadline = Instant::now() + ms(3000);
            while w.mode() != Mode::Inotify && Instant::now() < deadline {
                tokio::time::sleep(ms(20)).await;
            }
            assert_eq!(w.mode(), Mode::Inotify, "recovered ({trouble:?})");
            assert_eq!(kernel_watches(&b.join("cur")), 1);
            drain(&mut fb, ms(100)).await;
            deliver(&b, "2.b.host");
            assert!(fires(&mut fb, ms(200)).await, "inotify again ({trouble:?})");
        }
    }

    /// The reader steps out of epoll for `PACE` after each batch: changes
    /// made while it is out (a stream of flag renames spread over many
    /// pauses) all arrive, in order, and a barrier asked for during a pause
    /// still covers every change before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_during_the_reader_pause_all_arrive() {
        let w = Watcher::new(opts(50, false));
        if w.mode() == Mode::Polling {
            eprintln!("skipped: no inotify here");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dir = maildir(t.path());
        let mut fw = w.watch_folder(&dir);
        const N: usize = 400;
        for i in 0..N {
            fs::write(dir.join(format!("cur/{i}.p.host:2,")), b"x").unwrap();
        }
        assert!(fires(&mut fw, ms(1000)).await);
        drain(&mut fw, ms(150)).await;
        let _ = fw.take_changes();
        let start = Instant::now();
        for i in 0..N {
            fs::rename(
                dir.join(format!("cur/{i}.p.host:2,")),
                dir.join(format!("cur/{i}.p.host:2,S")),
            )
            .unwrap();
            if i % 40 == 39 {
                // Spread the stream over several pauses of the reader.
                tokio::time::sleep(ms(1)).await;
            }
            if i == N / 2 {
                // Right after a batch the reader is most likely out of epoll.
                assert!(w.barrier().await);
                let Changes::Entries(got) = fw.take_changes() else {
                    panic!("names expected");
                };
                let last = format!("{i}.p.host:2,S");
                assert!(
                    got.iter().any(|c| !c.gone && c.name == last.as_str()),
                    "barrier missed the rename just before it"
                );
            }
        }
        assert!(start.elapsed() > PACE, "the stream outlasts one pause");
        // No barrier here: what the reader left queued during its last
        // pause must come in through readiness alone.
        drain(&mut fw, ms(150)).await;
        let Changes::Entries(rest) = fw.take_changes() else {
            panic!("names expected");
        };
        let arrived: Vec<&str> = rest
            .iter()
            .filter(|c| !c.gone)
            .map(|c| c.name.to_str().unwrap())
            .collect();
        let want: Vec<String> = (N / 2 + 1..N).map(|i| format!("{i}.p.host:2,S")).collect();
        assert_eq!(arrived, want, "every rename after the barrier, in order");
    }

    /// Push latency: rename into new/ -> `changed()`, over 100 deliveries.
    /// `cargo test --lib watch::tests::latency -- --ignored --nocapture`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark-ish; prints figures"]
    async fn latency() {
        let w = Watcher::new(WatchOptions::default());
        let t = tempfile::tempdir().unwrap();
        let dir = maildir(t.path());
        let mut fw = w.watch_folder(&dir);
        let mut lat = Vec::new();
        for i in 0..100 {
            let name = format!("{i}.lat.host");
            fs::write(dir.join("tmp").join(&name), b"x").unwrap();
            drain(&mut fw, ms(20)).await;
            let start = Instant::now();
            fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name)).unwrap();
            assert!(fires(&mut fw, ms(5000)).await);
            lat.push(start.elapsed());
        }
        lat.sort();
        println!(
            "mode {:?}: median {:?}, p99 {:?}, max {:?}",
            w.mode(),
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100],
            lat[lat.len() - 1]
        );
    }
}
