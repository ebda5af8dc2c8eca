//! Keeping one Maildir's `maildirsize` true while others write too, and
//! warning the user as it fills (issue 19).
//!
//! nestbox's own saves and removals append their `size count` line to
//! `maildirsize` (Maildir++'s way). Deliveries and removals by other
//! programs are the problem: Postfix's `local`, procmail or a mail reader
//! on a shell account write nothing there, while maildrop, Dovecot's LDA
//! and Courier's `deliverquota` add their own line. Counting such a
//! delivery once more when nestbox sees it would count those twice; not
//! counting it leaves Postfix deliveries uncounted until the next
//! recount. So a change nestbox did not make, once a folder's sync sees it
//! ([`QuotaUpkeep::note_outside`]: a file given a UID by a scan, or an
//! expunge a scan confirmed), makes the totals be *recounted* from the
//! folders, which is exact whoever wrote what:
//! - at once before anything asks the quota (GETQUOTA, APPEND's check:
//!   [`QuotaUpkeep::settle`]), so a delivery is counted as soon as seen;
//! - and shortly after it by a small task (with live sync), debounced so a
//!   burst of deliveries costs one recount, and spaced to at least four
//!   times the last recount's duration, so a 100,000-message Maildir is not
//!   read over and over; this is what delivers a warning for a delivery by
//!   Postfix while the user's phone only IDLEs.
//!
//! A recount reads every folder's `cur/` and `new/` (a `stat` only for a
//! name without `,S=`) and rewrites the file: 0.25 s for 100,000 messages,
//! half of them without a size in their name, in a debug build
//! (`quota_tests::recount_cost`), which is why it is never done per message
//! but once per burst, spaced as above.
//!
//! The recount races with our own saves: a save of ours that renamed its
//! file into `cur/` but has not yet written its line would be counted
//! twice, and a line appended to the old file just before the rewrite
//! lost. Own changes therefore hold
//! [`QuotaUpkeep::own_change`]'s shared guard from before their first file
//! change to after their line; a recount holds it alone. Other programs'
//! lines can still race a rewrite (as they race Courier's and Dovecot's
//! own recounts); the next recount repairs that.
//!
//! Between changes, the totals are kept in memory with the file's state
//! (inode, length, mtime) they were read at: a question costs one `stat`,
//! and our own line moves the state on in place when it went right after
//! it; any other writer's line or rewrite changes the state, and the file
//! is read again. A file past Maildir++'s 5120 bytes is rewritten as its
//! limits and one line of totals (the sum of its lines), not counted again
//! from every folder: the recounts above already catch everything nestbox
//! did not do. Measured on 1,000 APPENDs at 10,000 messages, the quota
//! used to cost 8 % (read and parse the file per APPEND, and a full recount
//! every ~565 of them).
//!
//! After every change of the totals (own or recounted) the warning steps
//! are checked (`quota_warning`). One upkeep per Maildir per process, kept
//! by the [`super::Registry`] and shared by every session and folder of
//! that Maildir. Never refuses anything itself.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use super::beneath::Dir;
use super::maildir::quota::{self, Quota};
use super::quota_warning::{self, QuotaWarnings};

/// How long after an outside change the background recount waits for more.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The warning settings a registry hands its upkeeps (set by the worker
/// from the configuration; `None`: no warnings).
pub type SharedWarnings = Arc<RwLock<Option<Arc<QuotaWarnings>>>>;

/// See the module doc.
pub struct QuotaUpkeep {
    root: PathBuf,
    file_mode: u32,
    fsync: bool,
    /// A change by another program was seen since the last recount.
    outside: AtomicBool,
    /// Shared by own saves and removals, alone by a recount.
    writes: RwLock<()>,
    /// The warning step last recorded (`None`: not read yet); held while
    /// a warning is checked, so two sessions never both deliver it.
    warned: Mutex<Option<u8>>,
    warnings: SharedWarnings,
    /// Wakes the background recount; `None` outside a tokio runtime.
    wake: Option<tokio::sync::mpsc::Sender<()>>,
    /// How long the last recount took (spaces the background ones).
    last_recount: Mutex<Duration>,
    /// The totals at one state of the file ([`quota::FileKey`]): while the
    /// file shows that key, a question costs one `stat`, not a read and a
    /// parse of up to 5 KB; our own lines update it in place.
    cache: Mutex<Option<(quota::FileKey, Quota)>>,
}

impl QuotaUpkeep {
    /// The upkeep of the Maildir at `root`; with a tokio runtime at hand,
    /// also its background recount task (which ends with the upkeep).
    pub(super) fn new(
        root: PathBuf,
        file_mode: u32,
        fsync: bool,
        warnings: SharedWarnings,
    ) -> Arc<QuotaUpkeep> {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (tx, rx) = match runtime {
            Some(_) => {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let upkeep = Arc::new(QuotaUpkeep {
            root,
            file_mode,
            fsync,
            outside: AtomicBool::new(false),
            writes: RwLock::new(()),
            warned: Mutex::new(None),
            warnings,
            wake: tx,
            last_recount: Mutex::new(Duration::ZERO),
            cache: Mutex::new(None),
        });
        if let (Some(rt), Some(rx)) = (runtime, rx) {
            rt.spawn(background(Arc::downgrade(&upkeep), rx));
        }
        upkeep
    }

    /// A sync saw a change nestbox did not make (see the module doc).
    pub fn note_outside(&self) {
        self.outside.store(true, Ordering::Release);
        if let Some(tx) = &self.wake {
            // Full: a wake-up is pending already, which covers this one.
            let _ = tx.try_send(());
        }
    }

    /// Held by an own save or removal from before its first file change to
    /// after its `maildirsize` line (see the module doc). Not to be taken
    /// around [`QuotaUpkeep::settle`], [`QuotaUpkeep::after_own_change`]
    /// or a warning (which may need it alone, or take it themselves).
    pub fn own_change(&self) -> RwLockReadGuard<'_, ()> {
        self.writes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The quota of the Maildir at `root`, recounted first if another
    /// program changed it since the last count. A file grown past the
    /// Maildir++ size is rewritten as its limits and one line of totals
    /// (the sum of its lines: exact, as every outside change is recounted
    /// when seen) instead of being counted again from every folder, which
    /// cost 22 ms every ~565 APPENDs at 27,000 messages. `None`: no quota.
    pub fn settle(&self, root: &Dir) -> io::Result<Option<Quota>> {
        let outside = self.outside.swap(false, Ordering::AcqRel);
        let Some(key) = quota::key(root)? else {
            *self.cached() = None;
            return Ok(None);
        };
        if !outside {
            if let Some((k, q)) = *self.cached() {
                if k == key {
                    return Ok(Some(q));
                }
            }
        }
        let Some((q, too_long)) = quota::read(root)? else {
            *self.cached() = None;
            return Ok(None);
        };
        if !outside && !too_long {
            // Read at `key` or later: a later state shows another key, so
            // the next question reads again.
            *self.cached() = Some((key, q));
            return Ok(Some(q));
        }
        let started = Instant::now();
        let rewritten = {
            let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
            // Read again under the guard: the limits may have changed.
            let q = quota::read(root)?.map_or(q, |(q, _)| q);
            if outside {
                let (bytes, count) = quota::compute(root)?;
                let q = Quota { bytes, count, ..q };
                quota::write(root, &q).map(|len| (q, len))
            } else {
                quota::write(root, &q).map(|len| (q, len))
            }
        };
        let (counted, len) = match rewritten {
            Ok(r) => r,
            Err(e) => {
                // Try again at the next question.
                if outside {
                    self.outside.store(true, Ordering::Release);
                }
                *self.cached() = None;
                return Err(e);
            }
        };
        // What we wrote, unless someone appended since.
        *self.cached() = quota::key(root)
            .ok()
            .flatten()
            .filter(|k| k.len == len)
            .map(|k| (k, counted));
        if outside {
            *self.last_recount.lock().unwrap_or_else(|p| p.into_inner()) = started.elapsed();
        }
        self.check_warnings(root, &counted);
        Ok(Some(counted))
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<(quota::FileKey, Quota)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an own change's line to `maildirsize` (when there is one)
    /// and keeps the cached totals in step when the line went right after
    /// the state they hold.
    pub fn record(&self, root: &Dir, bytes: i64, count: i64) {
        let recorded = quota::record(root, bytes, count);
        let mut cache = self.cached();
        match recorded {
            Ok(Some((before, after))) => {
                *cache = cache.take().and_then(|(k, mut q)| {
                    (k.ino == after.ino && k.len == before).then(|| {
                        q.bytes = q.bytes.saturating_add_signed(bytes);
                        q.count = q.count.saturating_add_signed(count);
                        (after, q)
                    })
                });
            }
            Ok(None) => *cache = None,
            Err(e) => {
                *cache = None;
                tracing::warn!(root = %self.root.display(), error = %e, "cannot update maildirsize");
            }
        }
    }

    /// Runs `f` (a change of the limits) with no own change in flight.
    pub fn alone<T>(&self, f: impl FnOnce() -> T) -> T {
        let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// After an own change of the totals (with its guard let go of):
    /// warns if a step was crossed, and rewrites a file grown too long.
    pub fn after_own_change(&self, root: &Dir) {
        match self.settle(root) {
            Ok(Some(q)) => self.check_warnings(root, &q),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(root = %self.root.display(), error = %e, "cannot read maildirsize")
            }
        }
    }

    fn current_warnings(&self) -> Option<Arc<QuotaWarnings>> {
        self.warnings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|w| !w.steps.is_empty())
    }

    fn check_warnings(&self, root: &Dir, q: &Quota) {
        let Some(w) = self.current_warnings() else {
            return;
        };
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        // Delivered and counted as an own save (a recount then would count
        // it once, not twice), so the next answer already includes it.
        let counting = self.own_change();
        match quota_warning::check(root, &w, q, &mut warned, self.file_mode, self.fsync) {
            Ok(Some(len)) => self.record(root, len as i64, 1),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(root = %self.root.display(), error = %e, "cannot deliver the quota warning")
            }
        }
        drop(counting);
    }

    /// The background recount's step: opens the root and settles.
    fn settle_here(&self) {
        let settled = Dir::open_root(&self.root).and_then(|root| self.settle(&root));
        if let Err(e) = settled {
            tracing::warn!(root = %self.root.display(), error = %e, "cannot recount the quota");
        }
    }
}

/// Recounts after outside changes (see the module doc); ends when the
/// upkeep is dropped (its sender with it).
async fn background(upkeep: Weak<QuotaUpkeep>, mut rx: tokio::sync::mpsc::Receiver<()>) {
    while rx.recv().await.is_some() {
        let spacing = match upkeep.upgrade() {
            Some(u) => *u.last_recount.lock().unwrap_or_else(|p| p.into_inner()) * 4,
            None => return,
        };
        tokio::time::sleep(DEBOUNCE.max(spacing)).await;
        let Some(u) = upkeep.upgrade() else { return };
        if !u.outside.load(Ordering::Acquire) {
            continue;
        }
        if let Err(e) = tokio::task::spawn_blocking(move || u.settle_here()).await {
            tracing::warn!(error = %e, "quota recount task failed");
        }
    }
}
