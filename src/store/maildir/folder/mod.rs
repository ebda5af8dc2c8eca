//! One folder's state and its synchronisation with the disk.
//!
//! Owns the in-memory view of a folder (UID -> file, flags, modseqs), the
//! sync that reconciles it with `new/`, `cur/` and the uidlist, and every
//! write to message files. It must never unlink a file it did not mean to
//! expunge, never report an expunge it has not confirmed, and never give a
//! file a UID without recording it in the uidlist first.
//!
//! Layout: this file holds the state, opening, the read side (messages,
//! changes, bodies, cache) and persistence of the index; `sync` reconciles
//! with the disk (its module doc lists the races and how each is handled);
//! `write` changes message files (STORE, EXPUNGE, APPEND, COPY, MOVE);
//! `by_base` holds the tables keyed by base names, which keep no copy of
//! the names.
//!
//! Modseqs: every flag change, new message and expunge takes the next
//! modseq. They are kept in `nestbox.index`; if that is lost, or the process
//! died before writing it, modseqs restart at the current time in
//! microseconds, which is above anything handed out before as long as the
//! folder averaged fewer than a million changes a second.

use std::collections::VecDeque;

// FxHash: keys are our own base names and UIDs (see Cargo.toml).
use rustc_hash::FxHashMap as HashMap;
use std::fs::File;
use std::io;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::flags::{Flags, sys};
use crate::store::beneath::{Dir, FolderDirs, Meta};
use crate::store::{CacheField, Changes, MessageMeta, Result, StoreError, StoreOptions, nowait};

mod by_base;
mod sync;
pub use sync::{DirStamp, EntryEvent};
mod write;

use by_base::ByBase;

use super::dotlock;
use super::filename::{self, Info};
use super::index::{self, CacheMap, IndexData};
use super::keywords::{self, Keywords};
use super::uidlist::{self, FileStamp, Record, Uidlist};

/// How long an empty or foreign uidlist lock must stay unchanged before it
/// is broken (SPEC §5: short, and logged).
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(10);
/// Expunges remembered for [`Folder::expunged_since`].
const EXPUNGE_LOG_MAX: usize = 10_000;
/// Flag changes remembered for [`Folder::changes_since`] (16 bytes each);
/// a session further behind than this gets a walk over the folder.
const FLAG_LOG_MAX: usize = 65_536;
/// Minimum time between index rewrites while the folder is open.
const INDEX_WRITE_EVERY: Duration = Duration::from_secs(2);
/// Cache entries collected before they are appended to `nestbox.cache`.
const CACHE_BATCH: usize = 256;
/// Files in `tmp/` older than this are debris of crashed writers.
const TMP_DEBRIS_AGE: Duration = Duration::from_secs(36 * 3600);

/// What a cached UID list is valid for: (highest modseq, message count).
/// (highest modseq, count, `reshaped`) of the state a UID list was made of.
type UidListKey = (u64, usize, u64);

/// Where a message file is: its directory and exact name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Loc {
    in_new: bool,
    fname: String,
}

#[derive(Clone, Debug)]
struct Msg {
    uid: u32,
    /// The file; its name starts with the base name ([`Msg::base`]), which
    /// is the message's identity and is not kept a second time.
    loc: Loc,
    /// All flags, including keywords only the index can hold.
    flags: Flags,
    /// What few messages have ([`Rare`]): one pointer, `None` for the
    /// others, instead of two empty boxed slices (24 bytes a message).
    rare: Option<Box<Rare>>,
    mtime: i64,
    /// The size if known, else [`NO_SIZE`] (see [`Msg::size`]): an
    /// `Option<u64>` takes 16 bytes.
    size_raw: u64,
    modseq: u64,
    /// Inode of the file (0: unknown). Renames keep it, so it tells which
    /// of two files with one base name is the message we know.
    ino: u64,
}

/// The parts of a message's record that nearly every message lacks.
#[derive(Clone, Debug, Default)]
struct Rare {
    /// Info letters we keep without interpreting.
    other: Box<str>,
    /// Keywords without a letter (beyond the 26 of `dovecot-keywords`).
    extra_kw: Box<[String]>,
}

/// [`Msg::size_raw`] of a message whose size is not known (no file is
/// 2^64 - 1 bytes long).
const NO_SIZE: u64 = u64::MAX;

/// The [`Msg::rare`] for these parts: `None` when both are empty.
fn rare<O, K>(other: O, extra_kw: K) -> Option<Box<Rare>>
where
    O: Into<Box<str>> + AsRef<str>,
    K: Into<Box<[String]>> + AsRef<[String]>,
{
    // Looked at before converting: nearly every message has neither, and
    // this runs for each one when a folder is opened.
    if other.as_ref().is_empty() && extra_kw.as_ref().is_empty() {
        return None;
    }
    Some(Box::new(Rare {
        other: other.into(),
        extra_kw: extra_kw.into(),
    }))
}

impl Msg {
    /// The base name: the file name before its info suffix. Renames by
    /// anyone keep it, so every name this message's file has starts with it.
    fn base(&self) -> &str {
        by_base::base_of(&self.loc.fname)
    }

    /// Info letters kept without interpreting.
    fn other(&self) -> &str {
        self.rare.as_ref().map_or("", |r| &r.other)
    }

    /// Keywords without a letter.
    fn extra_kw(&self) -> &[String] {
        self.rare.as_ref().map_or(&[], |r| &r.extra_kw)
    }

    fn set_other(&mut self, other: impl Into<Box<str>> + AsRef<str>) {
        let extra: Box<[String]> = self.rare.take().map(|r| r.extra_kw).unwrap_or_default();
        self.rare = rare(other, extra);
    }

    fn set_extra_kw(&mut self, extra_kw: impl Into<Box<[String]>> + AsRef<[String]>) {
        let other: Box<str> = self.rare.take().map(|r| r.other).unwrap_or_default();
        self.rare = rare(other, extra_kw);
    }

    fn size(&self) -> Option<u64> {
        (self.size_raw != NO_SIZE).then_some(self.size_raw)
    }

    fn set_size(&mut self, size: Option<u64>) {
        self.size_raw = size.unwrap_or(NO_SIZE);
    }

    fn meta(&self) -> MessageMeta {
        MessageMeta {
            uid: self.uid,
            flags: self.flags.clone(),
            internal_date: self.mtime,
            size: self.size(),
            modseq: self.modseq,
        }
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// A modseq above anything handed out before a crash or index loss.
fn modseq_floor() -> u64 {
    (now_ns() / 1000).max(1) as u64
}

fn mtime_ns(m: &Meta) -> i128 {
    m.mtime_ns()
}

/// The header fields of the uidlist a folder opens with, and its stamp.
struct UlHeader {
    stamp: FileStamp,
    uidvalidity: u32,
    next: u32,
    guid: String,
    version: u32,
}

/// The uidlist's stamp if the file on disk is still the one `seal` names
/// (inode, size, mtime and ctime all equal).
fn seal_holds(dir: &Dir, seal: &index::UidlistSeal) -> Option<FileStamp> {
    let m = dir.stat(uidlist::FILE).ok()?;
    let now = FileStamp::of_meta(&m);
    let held = now.ino == seal.ino
        && now.len == seal.len
        && now.mtime_ns == seal.mtime_ns
        && m.ctime_ns() == seal.ctime_ns;
    held.then_some(now)
}

fn is_enoent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

fn field_no(f: CacheField) -> u8 {
    match f {
        CacheField::Envelope => 0,
        CacheField::BodyStructure => 1,
        CacheField::Body => 2,
        CacheField::CommonHeaders => 3,
    }
}

struct State {
    /// The first sync has run.
    synced_once: bool,
    /// The directories' stamp up to which the change watcher has applied
    /// every change ([`Folder::sync_for_watcher`]).
    watcher_stamp: Option<DirStamp>,
    uidvalidity: u32,
    next_uid: u32,
    last_uidvalidity: u32,
    guid: String,
    ul_version: u32,
    ul_stamp: Option<FileStamp>,
    /// Uidlist records whose files we have not seen (yet), by base name.
    ul_unknown: HashMap<String, Record>,
    msgs: Vec<Msg>,
    /// Base name -> UID for every message in `msgs`, made on first use:
    /// a folder opened from its index answers SELECT without it (7 ms and
    /// 2 MB at 100,000 messages), and only a sync that finds files, or the
    /// change watcher, looks names up. Unmade, there is nothing to keep
    /// current.
    by_base: std::cell::OnceCell<ByBase>,
    keywords: Keywords,
    kw_mtime: Option<i128>,
    highest_modseq: u64,
    expunge_log: VecDeque<(u32, u64)>,
    /// The log answers for modseqs at or above this.
    log_floor: u64,
    /// `(modseq, uid)` of each flag change, in modseq order, so that a
    /// session learns what changed without a walk over every message
    /// (3 ms per IDLE wake-up at 100,000 messages).
    flag_log: VecDeque<(u64, u32)>,
    /// `flag_log` holds every flag change above this modseq.
    flag_log_floor: u64,
    recent: Vec<u32>,
    /// Messages still in `new/` already handed out as \Recent by the
    /// change watcher's syncs ([`Folder::sync_for_watcher`]); moving them to
    /// `cur/` later must not hand them out again.
    recent_in_new: rustc_hash::FxHashSet<u32>,
    /// Messages below this UID were looked at by a watcher sync for
    /// \Recent already (see [`Folder::sync_for_watcher`]).
    recent_checked_to: u32,
    snapshot: Option<Arc<Vec<MessageMeta>>>,
    /// [`Folder::uid_list`]'s cache, valid for (highest modseq, count):
    /// every new message and expunge takes a modseq.
    uid_list: Option<(UidListKey, Arc<Vec<u32>>)>,
    /// Bumped whenever `msgs` changes other than by appending (expunges,
    /// a UID put between others): until then, a newer UID list is the
    /// cached one plus the appended messages.
    reshaped: u64,
    new_mtime: i128,
    cur_mtime: i128,
    scan_time: i128,
    dirty: bool,
    /// The index file on disk is a clean (complete) image of this state.
    index_clean: bool,
    /// The index on disk seals another uidlist than the one read at open
    /// (copied, restored, `chmod`ed, or appended to by another program):
    /// written when the folder closes, so the next open need not read it.
    reseal: bool,
    last_index_write: Option<Instant>,
    /// Counts encoded index images (see [`Folder::write_index_job`]).
    index_generation: u64,
    cache: Option<CacheMap>,
    cache_pending: Vec<(u32, u8, Arc<[u8]>)>,
    cache_file_entries: usize,
}

/// One open folder, shared by every session that has it selected.
pub struct Folder {
    name: String,
    /// Where the folder was when opened: the registry's key and what log
    /// lines show. Nothing is opened by it (see `dirs`).
    dir: PathBuf,
    /// The folder's directories, opened beneath the Maildir root: every
    /// file the folder touches is reached through these (see
    /// [`Folder::dirs`]). Replaced only when the folder was replaced at its
    /// name by real directories ([`Folder::check_in_place`]).
    dirs: Mutex<Arc<FolderDirs>>,
    fsync: bool,
    file_mode: u32,
    lock_stale_after: Duration,
    state: Mutex<State>,
    tx: watch::Sender<u64>,
    /// Sessions that have the folder selected read-write: while there are
    /// any, a sync triggered by the change watcher hands out messages
    /// arriving in `new/` as \Recent, as such a session's own sync would.
    rw_holders: std::sync::atomic::AtomicUsize,
    /// Held while `nestbox.cache` is written, which happens without the
    /// state locked (see `put_cache`).
    cache_file: Mutex<()>,
    /// Held while `nestbox.index` is written (also without the state
    /// locked, see [`Folder::persist`]); the generation last written.
    index_file: Mutex<u64>,
    /// The folder's directory vanished under us (deleted or renamed by
    /// another program): sessions must drop it.
    gone: std::sync::atomic::AtomicBool,
    /// A change watcher reports every entry change of `new/` and `cur/` to
    /// [`Folder::sync_for_watcher`] (see [`Folder::set_events_live`]).
    events_live: std::sync::atomic::AtomicBool,
    /// How many times `new/` or `cur/` was read (see [`Folder::dir_reads`]).
    dir_reads: std::sync::atomic::AtomicU64,
    /// [`Folder::close`] ran (set with the state locked).
    closed: std::sync::atomic::AtomicBool,
}

/// Keeps [`Folder::hold_rw`]'s count while a read-write session has the
/// folder selected.
pub struct RwHold(Arc<Folder>);

impl Drop for RwHold {
    fn drop(&mut self) {
        self.0
            .rw_holders
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Folder {
    /// Opens the folder whose directories `dirs` holds (`dir` is where
    /// they are, for the registry and the log): loads the uidlist (or
    /// creates it), the keywords and the index. Does not scan; call
    /// [`Folder::sync`].
    pub(crate) fn open(
        name: &str,
        dir: PathBuf,
        dirs: FolderDirs,
        opts: &StoreOptions,
        file_mode: u32,
    ) -> Result<Folder> {
        Self::open_with(name, dir, dirs, opts, file_mode, LOCK_STALE_AFTER)
    }

    pub(crate) fn open_with(
        name: &str,
        dir: PathBuf,
        dirs: FolderDirs,
        opts: &StoreOptions,
        file_mode: u32,
        lock_stale_after: Duration,
    ) -> Result<Folder> {
        clean_tmp(&dirs.tmp);
        let fdir = &dirs.dir;
        let keywords = Keywords::load(fdir)?;
        let kw_mtime = fdir.stat(keywords::FILE).ok().map(|m| mtime_ns(&m));
        // The index's messages become the folder's at once (no list of
        // 100,000 decoded records in between); they count only if the index
        // agrees with the uidlist, checked below.
        let mut indexed: Vec<Msg> = Vec::new();
        // Whether the UIDs came strictly ascending (as written), noted on
        // the way: two more passes over 14 MB of messages otherwise.
        let mut ascending = true;
        let idx = index::load_with(fdir, |m, n| {
            indexed.reserve(n);
            ascending &= indexed.last().is_none_or(|l| l.uid < m.uid);
            let info = filename::split(&m.fname).1.unwrap_or("");
            let Info { mut flags, other } = filename::parse_info(info, &keywords);
            for k in &m.extra_keywords {
                flags.insert_keyword(k);
            }
            indexed.push(Msg {
                uid: m.uid,
                loc: Loc {
                    in_new: m.in_new,
                    fname: m.fname,
                },
                flags,
                rare: rare(other, m.extra_keywords),
                mtime: m.mtime,
                size_raw: m.size.unwrap_or(NO_SIZE),
                modseq: m.modseq,
                ino: m.ino,
            });
        });
        let last_uidv = idx
            .as_ref()
            .map_or(0, |i| i.last_uidvalidity.max(i.uidvalidity));

        // A uidlist that is still the one the index was written against
        // is not read: the index holds everything it says.
        let sealed = idx.as_ref().and_then(|i| {
            let seal = i.uidlist.as_ref()?;
            Some(UlHeader {
                stamp: seal_holds(fdir, seal)?,
                uidvalidity: i.uidvalidity,
                next: i.next_uid,
                guid: seal.guid.clone(),
                version: seal.version,
            })
        });
        let (ul, head) = match sealed {
            Some(head) => (None, head),
            None => {
                let (ul, stamp) = match uidlist::Loaded::load(fdir) {
                    Ok(Some(x)) => x,
                    Ok(None) => create_uidlist(fdir, last_uidv, opts.fsync, lock_stale_after)?,
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        // Never overwrite what we cannot read: move it aside, then
                        // start a new UID space above the old one.
                        let aside = format!("{}.corrupt.{}", uidlist::FILE, now_ns());
                        tracing::warn!(dir = %dir.display(), error = %e, "uidlist unreadable; moved aside");
                        let _ = fdir.rename(uidlist::FILE, fdir, &aside);
                        create_uidlist(fdir, last_uidv, opts.fsync, lock_stale_after)?
                    }
                    Err(e) => return Err(e.into()),
                };
                let head = UlHeader {
                    stamp,
                    uidvalidity: ul.uidvalidity,
                    next: ul.header_next,
                    guid: ul.guid.clone(),
                    version: ul.version,
                };
                (Some(ul), head)
            }
        };
        let uidvalidity = head.uidvalidity;

        let mut st = State {
            synced_once: false,
            watcher_stamp: None,
            uidvalidity,
            next_uid: head.next.max(1),
            last_uidvalidity: last_uidv.max(uidvalidity),
            guid: head.guid,
            ul_version: head.version,
            ul_stamp: Some(head.stamp),
            ul_unknown: HashMap::default(),
            msgs: Vec::new(),
            by_base: std::cell::OnceCell::new(),
            keywords,
            kw_mtime,
            highest_modseq: 0,
            expunge_log: VecDeque::new(),
            log_floor: 0,
            flag_log: VecDeque::new(),
            flag_log_floor: 0,
            recent: Vec::new(),
            recent_in_new: rustc_hash::FxHashSet::default(),
            recent_checked_to: 0,
            uid_list: None,
            reshaped: 0,
            snapshot: None,
            new_mtime: 0,
            cur_mtime: 0,
            scan_time: 0,
            dirty: false,
            index_clean: false,
            reseal: false,
            last_index_write: None,
            index_generation: 0,
            cache: None,
            cache_pending: Vec::new(),
            cache_file_entries: 0,
        };
        // The index counts if it is of this UID space and every message of
        // it has the UID the uidlist gives its base name. One walk over the
        // uidlist checks that and keeps the records of files not (yet)
        // seen; a mismatch (rare) drops the index and walks again.
        let mut from_index = false;
        if let Some(i) = idx.filter(|i| i.uidvalidity == uidvalidity) {
            from_index = true;
            st.highest_modseq = if i.clean {
                i.highest_modseq
            } else {
                (i.highest_modseq + 1).max(modseq_floor())
            };
            st.index_clean = i.clean;
            st.dirty = !i.clean;
            st.next_uid = st.next_uid.max(i.next_uid);
            st.new_mtime = i.new_mtime;
            st.cur_mtime = i.cur_mtime;
            st.scan_time = i.scan_time;
            // Written in UID order: sorting is for a damaged one (and a
            // stable sort of 100,000 messages takes 8 MB of scratch).
            if !ascending {
                indexed.sort_by_key(|m| m.uid);
                indexed.dedup_by_key(|m| m.uid);
            }
            st.msgs = indexed;
            st.reset_by_base();
            if let (None, Some(seal)) = (&ul, &i.uidlist) {
                // The records of files not seen when the index was written
                // (none of them a message's: a record is dropped from there
                // when its file is seen). Checked by UID, which needs no
                // base-name table (see `State::by_base`).
                for r in uidlist::parse_records(&seal.unseen, 3) {
                    st.next_uid = st.next_uid.max(r.uid.saturating_add(1));
                    if st.find(r.uid).is_none() {
                        st.ul_unknown.insert(r.base.clone(), r);
                    }
                }
            }
        }
        if let Some(ul) = &ul
            && !st.note_uidlist(ul)
        {
            tracing::info!(dir = %dir.display(), "index disagrees with the uidlist; ignoring it");
            from_index = false;
            st.msgs = Vec::new();
            st.reset_by_base();
            st.ul_unknown.clear();
            st.index_clean = false;
            st.dirty = false;
            st.next_uid = ul.header_next.max(1);
            st.new_mtime = 0;
            st.cur_mtime = 0;
            st.scan_time = 0;
            st.note_uidlist(ul);
        }
        if !from_index {
            st.highest_modseq = modseq_floor();
        }
        st.reseal = ul.is_some();
        st.log_floor = st.highest_modseq;
        st.flag_log_floor = st.highest_modseq;
        let (tx, _) = watch::channel(st.highest_modseq);
        Ok(Folder {
            name: name.to_string(),
            dir,
            dirs: Mutex::new(Arc::new(dirs)),
            fsync: opts.fsync,
            file_mode,
            lock_stale_after,
            state: Mutex::new(st),
            tx,
            rw_holders: std::sync::atomic::AtomicUsize::new(0),
            cache_file: Mutex::new(()),
            index_file: Mutex::new(0),
            gone: std::sync::atomic::AtomicBool::new(false),
            events_live: std::sync::atomic::AtomicBool::new(false),
            dir_reads: std::sync::atomic::AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Counts a read-write session until the guard drops.
    pub fn hold_rw(self: &Arc<Self>) -> RwHold {
        self.rw_holders
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RwHold(self.clone())
    }

    /// Looks up INTERNALDATE (the file's mtime) for those of `uids` whose
    /// date is still [`crate::store::UNKNOWN_DATE`], and remembers it. A
    /// file renamed under us is found again; one that is gone keeps the
    /// unknown date (the next sync expunges it).
    pub fn resolve_dates(&self, uids: &[u32]) -> Result<()> {
        // The stats run without the folder locked: FETCH calls this for
        // chunks of a thousand messages from several threads at once.
        let unknown: Vec<(u32, Loc)> = {
            let st = self.lock_state();
            uids.iter()
                .filter_map(|&uid| {
                    let m = &st.msgs[st.find(uid)?];
                    (m.mtime == crate::store::UNKNOWN_DATE).then(|| (uid, m.loc.clone()))
                })
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        nowait::blocking(|| self.resolve_unknown_dates(unknown))
    }

    /// The stat part of [`Folder::resolve_dates`].
    fn resolve_unknown_dates(&self, unknown: Vec<(u32, Loc)>) -> Result<()> {
        let stats: Vec<(u32, Loc, io::Result<Meta>)> = unknown
            .into_iter()
            .map(|(uid, loc)| {
                let md = self.stat_loc(&loc);
                (uid, loc, md)
            })
            .collect();
        let mut st = self.lock_state();
        let mut rescanned = false;
        let mut any = false;
        for (uid, loc, md) in stats {
            let Some(i) = st.find(uid) else { continue };
            // Renamed meanwhile (a flag change): look again where it is now.
            let mut found = if st.msgs[i].loc == loc {
                md
            } else {
                self.stat_loc(&st.msgs[i].loc)
            };
            if found.as_ref().is_err_and(is_enoent) && self.relocate(&mut st, i, &mut rescanned)? {
                found = self.stat_loc(&st.msgs[i].loc);
            }
            if let Ok(md) = found {
                st.msgs[i].mtime = md.mtime();
                any = true;
            }
        }
        if any {
            st.snapshot = None;
            st.dirty = true;
        }
        Ok(())
    }

    /// The keywords defined for this folder (its `dovecot-keywords`), which
    /// SELECT lists in FLAGS even when no message carries them now.
    pub fn defined_keywords(&self) -> Vec<String> {
        self.lock_state()
            .keywords
            .names()
            .map(str::to_string)
            .collect()
    }

    /// Records that the folder's directory is gone and wakes every session
    /// watching it, so each can tell its client (nothing of the folder can
    /// be served any more).
    pub fn mark_gone(&self) {
        self.gone.store(true, std::sync::atomic::Ordering::Relaxed);
        self.tx.send_modify(|_| {});
    }

    /// How many times this folder read its `new/` or `cur/` directory (a
    /// full scan counts both, a scan of `new/` alone one). What a command
    /// costs at 100,000 messages is mostly whether it reads `cur/`: tests
    /// hold commands that must not (APPEND, COPY into an open folder) to it.
    pub fn dir_reads(&self) -> u64 {
        self.dir_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Says whether a change watcher currently hands every entry change of
    /// `new/` and `cur/` to [`Folder::sync_for_watcher`] (inotify, watching
    /// since before the folder's first scan, no overflow since the last full
    /// sync). While it does, the syncs sessions run (SELECT, STATUS) trust
    /// the state the watcher keeps and read no directory; a change is then
    /// seen as soon as the watcher has applied it, which is also when IDLE
    /// reports it. The watcher glue turns this off before a sync it cannot
    /// describe by names and on again once that sync is done.
    pub fn set_events_live(&self, on: bool) {
        self.events_live
            .store(on, std::sync::atomic::Ordering::Release);
    }

    /// Whether some session has the folder selected read-write.
    pub fn has_rw_holders(&self) -> bool {
        self.rw_holders.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves state that is still
        // consistent enough to serve (every mutation is re-derived from
        // disk on the next sync), so a poisoned lock is taken over.
        match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Held by someone else (a STORE over 100,000 messages holds it
            // for 0.4 s): in a nowait scope, wait where waiting is allowed.
            Err(TryLockError::WouldBlock) => {
                nowait::blocking(|| self.state.lock().unwrap_or_else(|p| p.into_inner()))
            }
        }
    }

    /// The name the folder was opened under (UTF-8, `/`-separated).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current UIDVALIDITY. It changes only if another program
    /// recreated the uidlist; a session that sees it change must drop its
    /// view (and, in IMAP, the client: RFC 9051 §2.3.1.1).
    pub fn uidvalidity(&self) -> u32 {
        self.lock_state().uidvalidity
    }

    /// The UID the next new message will get.
    pub fn uidnext(&self) -> u32 {
        self.lock_state().next_uid
    }

    /// HIGHESTMODSEQ (RFC 7162).
    pub fn highest_modseq(&self) -> u64 {
        self.lock_state().highest_modseq
    }

    /// The folder's directories. A command binds them once: a replacement
    /// meanwhile ([`Folder::check_in_place`]) takes effect at its next one.
    fn dirs(&self) -> Arc<FolderDirs> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `fstatat` of a message file (not following a symlink: a symlink is
    /// never a message).
    fn stat_loc(&self, loc: &Loc) -> io::Result<Meta> {
        self.dirs().sub(loc.in_new).stat(&loc.fname)
    }

    /// Checks that the folder is still where and what it was when opened
    /// ([`FolderDirs::in_place`]). A folder is its name: one replaced there
    /// by real directories (a Maildir restored from backup in place of the
    /// old one) is followed, its state reconciled by the sync as for any
    /// outside change. One removed is `NotFound` (the change watcher marks
    /// it gone after a grace period). One whose directory, `cur/` or `new/`
    /// is now a symlink is marked gone at once, logged, and `Cannot`:
    /// sessions that have it selected end, and until then they only ever
    /// reach the directories opened.
    fn check_in_place(&self) -> Result<()> {
        let dirs = self.dirs();
        if dirs.in_place()? {
            return Ok(());
        }
        match dirs.reopen() {
            Ok(now) => {
                tracing::info!(dir = %self.dir.display(), "folder directory replaced; following it");
                *self.dirs.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(now);
                Ok(())
            }
            Err(e) if is_enoent(&e) || e.raw_os_error() == Some(libc::ENOTDIR) => {
                Err(StoreError::NotFound)
            }
            Err(e) => {
                if !self.is_gone() {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "folder directory replaced by one not served; dropping it");
                    self.mark_gone();
                }
                Err(e.into())
            }
        }
    }

    fn changed(&self, st: &mut State) {
        st.snapshot = None;
        st.dirty = true;
        // The index on disk claims complete modseqs; before anyone sees a
        // newer one, mark it incomplete, so a crash now makes the next
        // open raise HIGHESTMODSEQ instead of reusing modseqs.
        if st.index_clean {
            self.mark_index_unclean(st);
        }
        self.tx.send_replace(st.highest_modseq);
    }

    /// Makes the index on disk stop claiming complete modseqs: one byte
    /// written in place, or (no index of ours there) a whole new image.
    /// Rewriting 11 MB here was most of what a `STORE` over a freshly
    /// opened 100,000-message folder spent besides its renames.
    fn mark_index_unclean(&self, st: &mut State) {
        let marked = {
            // Beside whole-image writes, never between their write and rename.
            let _file = self.index_file.lock().unwrap_or_else(|p| p.into_inner());
            index::mark_unclean(&self.dirs().dir)
        };
        match marked {
            Ok(true) => st.index_clean = false,
            Ok(false) => self.write_index(st, false),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot mark the index");
                self.write_index(st, false);
            }
        }
    }

    /// What a sync leaves to write: the index when it is due, and the
    /// collected cache entries. Taken with the folder locked and written by
    /// [`Folder::persist`] after the lock is released: at 100,000 messages
    /// the index is about 11 MB, and sessions waiting for the folder (an
    /// IDLE client being told of new mail) must not wait for that write.
    fn persist_jobs(&self, st: &mut State) -> PersistJobs {
        let index = (st.dirty
            && st
                .last_index_write
                .is_none_or(|t| t.elapsed() >= INDEX_WRITE_EVERY))
        .then(|| self.index_job(st, false));
        PersistJobs {
            index,
            cache: take_cache_job(st),
        }
    }

    /// Writes what is due: the index (at most every `INDEX_WRITE_EVERY`
    /// while it is behind) and the collected cache entries. Syncs do this
    /// themselves, except the change watcher's (see
    /// [`Folder::sync_for_watcher`]).
    pub fn persist_due(&self) {
        let jobs = self.persist_jobs(&mut self.lock_state());
        self.persist(jobs);
    }

    /// Writes what [`Folder::persist_jobs`] took, without the folder locked;
    /// locks it again only to book a failure or the cache file's size.
    fn persist(&self, jobs: PersistJobs) {
        let index_failed = jobs
            .index
            .as_ref()
            .is_some_and(|j| self.write_index_job(j).is_err());
        let cache = jobs.cache.map(|j| {
            let result = self.write_cache_job(&j);
            (j, result)
        });
        if index_failed || cache.is_some() {
            let mut st = self.lock_state();
            if index_failed {
                st.dirty = true;
            }
            if let Some((job, result)) = cache {
                finish_cache_job(&self.dir, &mut st, &job, result);
            }
        }
    }

    /// Writes the index now, with the folder locked (`clean`: the folder is
    /// closing and the modseqs are complete).
    fn write_index(&self, st: &mut State, clean: bool) {
        let job = self.index_job(st, clean);
        match self.write_index_job(&job) {
            Ok(()) => st.index_clean = clean,
            Err(_) => st.dirty = true,
        }
    }

    /// Encodes the index image of the current state. The state counts as
    /// written from here on (so concurrent syncs do not encode it again);
    /// a failed write marks it dirty again.
    fn index_job(&self, st: &mut State, clean: bool) -> IndexJob {
        let d = IndexData {
            uidvalidity: st.uidvalidity,
            next_uid: st.next_uid,
            highest_modseq: st.highest_modseq,
            last_uidvalidity: st.last_uidvalidity.max(st.uidvalidity),
            clean,
            new_mtime: st.new_mtime,
            cur_mtime: st.cur_mtime,
            scan_time: st.scan_time,
            uidlist: self.uidlist_seal(st),
            msgs: Vec::new(),
        };
        let image = index::encode_parts(
            &d,
            st.msgs.iter().map(|m| index::IndexMsgRef {
                uid: m.uid,
                fname: &m.loc.fname,
                in_new: m.loc.in_new,
                modseq: m.modseq,
                mtime: m.mtime,
                size: m.size(),
                ino: m.ino,
                extra_keywords: m.extra_kw(),
            }),
        );
        st.dirty = false;
        st.reseal = false;
        if !clean {
            // The file will no longer be a clean image: the close must
            // write one (a failed write leaves the old one, which this
            // only makes us rewrite).
            st.index_clean = false;
        }
        st.last_index_write = Some(Instant::now());
        st.index_generation += 1;
        IndexJob {
            image,
            generation: st.index_generation,
        }
    }

    /// The seal of the uidlist the state holds everything of (see
    /// [`index::UidlistSeal`]): the file as last read or written by us,
    /// if it is still that file on disk (one `stat`, with the folder
    /// locked). `None` (the next open reads the uidlist) when we hold no
    /// stamp or another writer has changed the file since.
    fn uidlist_seal(&self, st: &State) -> Option<index::UidlistSeal> {
        let ours = st.ul_stamp?;
        let m = self.dirs().dir.stat(uidlist::FILE).ok()?;
        if FileStamp::of_meta(&m) != ours {
            return None;
        }
        let mut unseen: Vec<uidlist::Line> = st.ul_unknown.values().map(Record::line).collect();
        unseen.sort_by_key(|l| l.uid);
        Some(index::UidlistSeal {
            ino: ours.ino,
            len: ours.len,
            mtime_ns: ours.mtime_ns,
            ctime_ns: m.ctime_ns(),
            version: st.ul_version,
            guid: st.guid.clone(),
            unseen: uidlist::render_lines(unseen.into_iter()),
        })
    }

    /// Writes an index image unless a newer one was written meanwhile
    /// (images are encoded in order under the folder lock, but written
    /// outside it, so two may race).
    fn write_index_job(&self, job: &IndexJob) -> io::Result<()> {
        let mut written = self.index_file.lock().unwrap_or_else(|p| p.into_inner());
        if *written >= job.generation {
            return Ok(());
        }
        match index::save_image(&self.dirs().dir, &job.image) {
            Ok(()) => {
                *written = job.generation;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write index");
                Err(e)
            }
        }
    }

    fn load_cache(&self, st: &mut State) {
        if st.cache.is_none() {
            let (map, n) = nowait::blocking(|| index::load_cache(&self.dirs().dir, st.uidvalidity));
            st.cache_file_entries = n;
            st.cache = Some(map);
        }
    }

    /// Writes the collected cache entries with the folder locked (the
    /// caller holds `st`); see `put_cache` for the unlocked way.
    fn flush_cache(&self, st: &mut State) {
        if let Some(job) = take_cache_job(st) {
            let result = self.write_cache_job(&job);
            finish_cache_job(&self.dir, st, &job, result);
        }
    }

    /// Appends (or rewrites) `nestbox.cache`; one writer at a time.
    fn write_cache_job(&self, job: &CacheJob) -> io::Result<()> {
        let _file = self.cache_file.lock().unwrap_or_else(|p| p.into_inner());
        index::append_cache(&self.dirs().dir, job.uidvalidity, &job.entries, job.rewrite)
    }

    /// Every message, ascending by UID.
    pub fn messages(&self) -> Arc<Vec<MessageMeta>> {
        let mut st = self.lock_state();
        if let Some(s) = &st.snapshot {
            return s.clone();
        }
        let s = Arc::new(st.msgs.iter().map(Msg::meta).collect::<Vec<_>>());
        st.snapshot = Some(s.clone());
        s
    }

    /// Calls `f` with each message's sequence number (from 1) and flags, in
    /// UID order, with the folder locked: for one quick pass that needs only
    /// the flags (SELECT's keywords and first unseen), without the copy of
    /// the whole folder [`Folder::messages`] makes and keeps (7 MB at
    /// 100,000 messages, which a client that only SELECTs and IDLEs never
    /// needs).
    pub fn for_each_flags(&self, mut f: impl FnMut(usize, &Flags)) {
        let st = self.lock_state();
        for (i, m) in st.msgs.iter().enumerate() {
            f(i + 1, &m.flags);
        }
    }

    /// Every UID, ascending, shared: sessions in step with the folder hold
    /// this one list instead of a copy each. Rebuilt only after a change.
    pub fn uid_list(&self) -> Arc<Vec<u32>> {
        uid_list_locked(&mut self.lock_state())
    }

    /// The metadata of the given messages (`None` for those not here), in
    /// the order asked; cheaper than [`Folder::messages`] for a few.
    pub fn metas(&self, uids: &[u32]) -> Vec<Option<MessageMeta>> {
        let st = self.lock_state();
        // FETCH asks for runs of ascending UIDs: try the entry after the
        // last one found before searching (a binary search over a big
        // folder misses the cache at every step).
        let mut next = 0;
        uids.iter()
            .map(|&u| {
                let i = match st.msgs.get(next) {
                    Some(m) if m.uid == u => Some(next),
                    _ => st.find(u),
                }?;
                next = i + 1;
                Some(st.msgs[i].meta())
            })
            .collect()
    }

    /// Takes the UIDs that are \Recent and not yet claimed by any session.
    pub fn take_recent(&self) -> Vec<u32> {
        let mut r = std::mem::take(&mut self.lock_state().recent);
        r.sort_unstable();
        r
    }

    /// The UIDs that are \Recent and not yet claimed by any session (also
    /// files still in `new/`, which become recent for whoever moves them),
    /// ascending, without claiming them: what a read-only session (EXAMINE)
    /// shows as \Recent (RFC 3501 §6.3.2: EXAMINE does not clear it).
    pub fn peek_recent(&self) -> Vec<u32> {
        let st = self.lock_state();
        let mut r = unclaimed_recent(&st, 0);
        r.sort_unstable();
        r
    }

    /// Number of \Recent messages nobody claimed yet, plus files still in
    /// `new/` (which become recent for whoever moves them).
    pub fn recent_count(&self) -> u32 {
        let st = self.lock_state();
        (st.recent.len() + st.msgs.iter().filter(|m| m.loc.in_new).count()) as u32
    }

    /// A receiver that wakes whenever the folder changed (the value is the
    /// new highest modseq). Sessions then call [`Folder::changes_since`].
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Changes relative to a session's view. Expunges are computed by
    /// merging `known` with the current UIDs, which is always right (the
    /// bounded log can miss old ones); see [`Folder::expunged_since`].
    pub fn changes_since(&self, since_modseq: u64, known: &[u32]) -> Changes {
        changes_since_locked(&self.lock_state(), since_modseq, known)
    }

    /// Everything a session needs to bring its view up to date (see
    /// [`ChangeQuery`]), read with the folder locked once. Never blocks the
    /// calling thread: when the folder is locked by someone else (a `STORE
    /// 1:*` over 100,000 messages holds it for 0.4 s, a sync of a big
    /// directory longer) or the answer needs a walk over every message,
    /// the read runs on the blocking pool; otherwise (nearly always) in
    /// place, in microseconds. Must be called inside the tokio runtime.
    pub async fn changes(self: &Arc<Self>, q: ChangeQuery) -> Result<Changes> {
        let quick = |st: &State| {
            q.since_modseq >= st.flag_log_floor
                || (st.highest_modseq <= q.since_modseq
                    && st.msgs.last().map_or(0, |m| m.uid) <= q.known.last().copied().unwrap_or(0))
        };
        match self.state.try_lock() {
            Ok(mut st) if quick(&st) => return Ok(self.changes_locked(&mut st, &q)),
            Err(TryLockError::Poisoned(p)) if quick(p.get_ref()) => {
                return Ok(self.changes_locked(&mut p.into_inner(), &q));
            }
            _ => {}
        }
        let f = self.clone();
        tokio::task::spawn_blocking(move || f.changes_locked(&mut f.lock_state(), &q))
            .await
            .map_err(|e| StoreError::Cannot(format!("change read task: {e}")))
    }

    fn changes_locked(&self, st: &mut State, q: &ChangeQuery) -> Changes {
        let mut c = changes_since_locked(st, q.since_modseq, &q.known);
        c.uidvalidity = st.uidvalidity;
        if let Some(first_new) = c.new.first().map(|m| m.uid) {
            c.recent = if q.claim_recent {
                std::mem::take(&mut st.recent)
            } else {
                unclaimed_recent(st, first_new)
            };
            c.recent.sort_unstable();
        }
        if q.want_uid_list || !c.new.is_empty() || !c.expunged.is_empty() {
            c.uid_list = Some(uid_list_locked(st));
        }
        c
    }

    /// What a session starts its view from at SELECT: read with the folder
    /// locked once, so that the UID list, UIDVALIDITY, UIDNEXT and
    /// HIGHESTMODSEQ belong together.
    pub fn view_start(&self) -> ViewStart {
        let mut st = self.lock_state();
        ViewStart {
            uid_list: uid_list_locked(&mut st),
            uidvalidity: st.uidvalidity,
            uidnext: st.next_uid,
            highest_modseq: st.highest_modseq,
        }
    }
}

/// What a session knows of a folder, for [`Folder::changes`].
#[derive(Clone, Debug)]
pub struct ChangeQuery {
    /// The highest modseq the session has reported.
    pub since_modseq: u64,
    /// The UIDs the session knows, ascending.
    pub known: Arc<Vec<u32>>,
    /// Claim the \Recent of new messages (a read-write view).
    pub claim_recent: bool,
    /// Return the folder's shared UID list even if nothing changed (the
    /// session's list is its own copy and may share the folder's again).
    pub want_uid_list: bool,
}

/// See [`Folder::view_start`].
#[derive(Clone, Debug)]
pub struct ViewStart {
    pub uid_list: Arc<Vec<u32>>,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
}

/// The UIDs from `from` up that are \Recent for whoever claims them: those
/// handed out and not claimed yet, and files still in `new/` that no watcher
/// sync handed out (see [`Folder::peek_recent`]).
fn unclaimed_recent(st: &State, from: u32) -> Vec<u32> {
    let start = st.msgs.partition_point(|m| m.uid < from);
    let mut r: Vec<u32> = st.recent.iter().copied().filter(|&u| u >= from).collect();
    r.extend(
        st.msgs[start..]
            .iter()
            .filter(|m| m.loc.in_new && !st.recent_in_new.contains(&m.uid))
            .map(|m| m.uid),
    );
    r.sort_unstable();
    r.dedup();
    r
}

/// Every UID, ascending, shared (see [`Folder::uid_list`]).
fn uid_list_locked(st: &mut State) -> Arc<Vec<u32>> {
    let key = (st.highest_modseq, st.msgs.len(), st.reshaped);
    let list = match &st.uid_list {
        Some((k, list)) if *k == key => return list.clone(),
        // Only appended to since: copy the old list (a memcpy) and walk
        // just the new messages, not 100,000 of them per delivery.
        Some(((_, len, reshaped), old)) if *reshaped == st.reshaped && *len <= key.1 => {
            let mut v = Vec::with_capacity(key.1);
            v.extend_from_slice(old);
            v.extend(st.msgs[*len..].iter().map(|m| m.uid));
            v
        }
        _ => st.msgs.iter().map(|m| m.uid).collect(),
    };
    let list = Arc::new(list);
    st.uid_list = Some((key, list.clone()));
    list
}

/// [`Folder::changes_since`] with the folder locked.
fn changes_since_locked(st: &State, since_modseq: u64, known: &[u32]) -> Changes {
    let max_known = known.last().copied().unwrap_or(0);
    let mut c = Changes {
        highest_modseq: st.highest_modseq,
        ..Changes::default()
    };
    // Every new message, flag change and expunge takes a new modseq, so
    // a caller that has seen the highest one has nothing to learn: the
    // common case after each command costs no walk over the folder.
    if st.highest_modseq <= since_modseq && st.msgs.last().map_or(0, |m| m.uid) <= max_known {
        return c;
    }
    if since_modseq >= st.flag_log_floor {
        // New UIDs are above every known one; flag changes are in the
        // log; and when the messages up to `max_known` are as many as the
        // session knows, none of those is gone.
        let known_here = st.msgs.partition_point(|m| m.uid <= max_known);
        c.new = st.msgs[known_here..].iter().map(Msg::meta).collect();
        let start = st.flag_log.partition_point(|&(m, _)| m <= since_modseq);
        let mut changed: Vec<u32> = st
            .flag_log
            .range(start..)
            .map(|&(_, u)| u)
            .filter(|&u| u <= max_known && known.binary_search(&u).is_ok())
            .collect();
        changed.sort_unstable();
        changed.dedup();
        for u in changed {
            if let Some(m) = st.find(u).map(|i| &st.msgs[i]) {
                if m.modseq > since_modseq {
                    c.flags.push(m.meta());
                }
            }
        }
        if known_here != known.len() {
            c.expunged = expunged_from(&st.msgs, known);
        }
        return c;
    }
    for m in &st.msgs {
        if m.uid > max_known {
            c.new.push(m.meta());
        } else if m.modseq > since_modseq && known.binary_search(&m.uid).is_ok() {
            c.flags.push(m.meta());
        }
    }
    c.expunged = expunged_from(&st.msgs, known);
    c
}

impl Folder {
    /// UIDs expunged after `modseq` (for QRESYNC `VANISHED (EARLIER)`), or
    /// `None` when the bounded log no longer reaches back that far.
    ///
    /// Nothing calls it yet (QRESYNC is not offered): kept for issue 18.
    pub fn expunged_since(&self, modseq: u64) -> Option<Vec<u32>> {
        let st = self.lock_state();
        if modseq < st.log_floor {
            return None;
        }
        let mut v: Vec<u32> = st
            .expunge_log
            .iter()
            .filter(|(_, m)| *m > modseq)
            .map(|(u, _)| *u)
            .collect();
        v.sort_unstable();
        v.dedup();
        Some(v)
    }

    /// Opens a message file, following it if it was renamed meanwhile.
    fn open_msg(&self, uid: u32) -> Result<File> {
        for attempt in 0..3 {
            let loc = {
                let st = self.lock_state();
                let i = st.find(uid).ok_or(StoreError::Expunged)?;
                st.msgs[i].loc.clone()
            };
            match nowait::open_in(self.dirs().sub(loc.in_new), &loc.fname) {
                Ok(f) => return Ok(f),
                Err(e) if is_enoent(&e) && attempt < 2 => {
                    // Renamed under us: finding it may read the directory.
                    let found = nowait::blocking(|| {
                        let mut st = self.lock_state();
                        let Some(i) = st.find(uid) else {
                            return Ok(false);
                        };
                        let mut rescanned = false;
                        self.relocate(&mut st, i, &mut rescanned)
                    })?;
                    if !found {
                        return Err(StoreError::Expunged);
                    }
                }
                Err(e) if is_enoent(&e) => return Err(StoreError::Expunged),
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Expunged)
    }

    /// The message file, opened for reading in pieces: FETCH sends large
    /// bodies from it a chunk at a time instead of reading them whole.
    pub fn open_message(&self, uid: u32) -> Result<MessageFile> {
        self.open_msg(uid).map(MessageFile)
    }

    /// Reads the message file as stored (LF or CRLF line ends).
    pub fn read_message(&self, uid: u32) -> Result<Arc<Vec<u8>>> {
        self.read_message_sized(uid).map(|(data, _)| data)
    }

    /// [`Folder::read_message`] and the message's RFC822.SIZE, counted from
    /// the bytes just read when not known yet (and remembered), so that a
    /// FETCH of RFC822.SIZE with other items reads the file once.
    pub fn read_message_sized(&self, uid: u32) -> Result<(Arc<Vec<u8>>, u64)> {
        self.read_message_within(uid, u64::MAX)?
            .ok_or(StoreError::Expunged)
    }

    /// [`Folder::read_message_sized`], or `None` without reading when the
    /// file is longer than `cap` bytes as stored: FETCH then sends it in
    /// pieces (see [`Folder::open_message`]) instead of holding it whole.
    pub fn read_message_within(&self, uid: u32, cap: u64) -> Result<Option<(Arc<Vec<u8>>, u64)>> {
        let f = self.open_msg(uid)?;
        if cap < u64::MAX && f.metadata()?.len() > cap {
            return Ok(None);
        }
        let mut data = Vec::new();
        nowait::read_to_end(&f, &mut data)?;
        let mut st = self.lock_state();
        let known = st.find(uid).and_then(|i| st.msgs[i].size());
        let size = match known {
            Some(s) => s,
            None => {
                // The vectorised count: this runs once per message of a cold
                // FETCH RFC822.SIZE (or BODYSTRUCTURE) of a mailbox whose
                // file names carry no `,W=`.
                let s = crate::mime::crlf_size(&data);
                if let Some(i) = st.find(uid) {
                    st.msgs[i].set_size(Some(s));
                    st.snapshot = None;
                    st.dirty = true;
                }
                s
            }
        };
        Ok(Some((Arc::new(data), size)))
    }

    /// The message's header block as stored, up to and including the blank
    /// line that ends it, reading only that much of the file: what ENVELOPE,
    /// `BODY[HEADER.FIELDS ...]` (and `.NOT`) and header SEARCH keys parse,
    /// and the header digest the cache keeps. A header
    /// longer than [`MAX_HEADER_READ`] (hostile or broken; or a file with no
    /// blank line at all, whose header is the whole file, of any size) is
    /// cut to the fields that lie wholly within its first
    /// [`MAX_HEADER_READ`] bytes, and says so ([`HeaderBlock::cut`]):
    /// fields further on are not seen, as if absent. A caller that must
    /// give the header's exact bytes (`BODY[HEADER]`) sends a cut one from
    /// the file instead. (Dovecot bounds this too: its header parser stops
    /// keeping field values past 10 MiB of header,
    /// `MESSAGE_HEADER_BLOCK_DEFAULT_MAX_SIZE`.)
    pub fn read_header(&self, uid: u32) -> Result<HeaderBlock> {
        let f = self.open_msg(uid)?;
        let mut data = Vec::with_capacity(4096);
        let mut buf = [0u8; 4096];
        loop {
            let want = buf.len().min(MAX_HEADER_READ - data.len());
            let n = nowait::read_at(&f, &mut buf[..want], data.len() as u64)?;
            if n == 0 {
                return Ok(HeaderBlock {
                    bytes: data,
                    cut: false,
                });
            }
            // Look for the end from a little before the new bytes, in case
            // the blank line straddles two reads.
            let from = data.len().saturating_sub(3);
            data.extend_from_slice(&buf[..n]);
            if let Some(end) = header_end(&data[from..]) {
                data.truncate(from + end);
                return Ok(HeaderBlock {
                    bytes: data,
                    cut: false,
                });
            }
            if data.len() >= MAX_HEADER_READ {
                // The last field may go on past what was read: keep up to
                // the start of the last line that starts a field.
                let keep = memchr::memrchr_iter(b'\n', &data)
                    .map(|i| i + 1)
                    .find(|&i| data.get(i).is_some_and(|c| !matches!(c, b' ' | b'\t')))
                    .unwrap_or(0);
                data.truncate(keep);
                return Ok(HeaderBlock {
                    bytes: data,
                    cut: true,
                });
            }
        }
    }

    /// RFC822.SIZE, computing (and remembering) it from the file if needed.
    pub fn rfc822_size(&self, uid: u32) -> Result<u64> {
        {
            let st = self.lock_state();
            let i = st.find(uid).ok_or(StoreError::Expunged)?;
            if let Some(s) = st.msgs[i].size() {
                return Ok(s);
            }
        }
        self.read_message_sized(uid).map(|(_, size)| size)
    }

    /// A cached ENVELOPE/BODYSTRUCTURE/BODY (the first call loads
    /// `nestbox.cache`).
    pub fn cached(&self, uid: u32, field: CacheField) -> Option<Arc<[u8]>> {
        let mut st = self.lock_state();
        self.load_cache(&mut st);
        st.cache.as_ref()?.get(&(uid, field_no(field))).cloned()
    }

    /// [`Folder::cached`] for many messages under one lock (FETCH asks per
    /// chunk, not per message).
    pub fn cached_many(&self, uids: &[u32], field: CacheField) -> Vec<Option<Arc<[u8]>>> {
        let mut st = self.lock_state();
        self.load_cache(&mut st);
        let f = field_no(field);
        match st.cache.as_ref() {
            Some(c) => uids.iter().map(|&u| c.get(&(u, f)).cloned()).collect(),
            None => vec![None; uids.len()],
        }
    }

    /// Remembers a cache entry; entries reach `nestbox.cache` in batches,
    /// on sync and when the folder closes, never one write per FETCH item.
    pub fn put_cache(&self, uid: u32, field: CacheField, data: Arc<[u8]>) {
        let mut st = self.lock_state();
        if st.find(uid).is_none() {
            return;
        }
        self.load_cache(&mut st);
        let key = (uid, field_no(field));
        if let Some(c) = st.cache.as_mut() {
            if c.get(&key) == Some(&data) {
                return;
            }
            c.insert(key, data.clone());
        }
        st.cache_pending.push((uid, key.1, data));
        if st.cache_pending.len() >= CACHE_BATCH {
            // Encoding and writing a batch (a checksum over every entry)
            // happens without the folder locked: a first FETCH fills the
            // cache from several threads, which must not queue behind it.
            let Some(job) = take_cache_job(&mut st) else {
                return;
            };
            drop(st);
            let result = nowait::blocking(|| self.write_cache_job(&job));
            let mut st = self.lock_state();
            finish_cache_job(&self.dir, &mut st, &job, result);
        }
    }

    /// Status figures from the current state (after a sync by the caller).
    /// With `need_size`, unknown sizes are computed from the files.
    pub(crate) fn status(&self, need_size: bool) -> Result<crate::store::FolderStatus> {
        if need_size {
            let unknown: Vec<u32> = {
                let st = self.lock_state();
                st.msgs
                    .iter()
                    .filter(|m| m.size().is_none())
                    .map(|m| m.uid)
                    .collect()
            };
            for uid in unknown {
                match self.rfc822_size(uid) {
                    Ok(_) | Err(StoreError::Expunged) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let recent = self.recent_count();
        let st = self.lock_state();
        let s = crate::store::FolderStatus {
            messages: st.msgs.len() as u32,
            recent,
            uidnext: st.next_uid,
            uidvalidity: st.uidvalidity,
            unseen: st.msgs.iter().filter(|m| !m.flags.has(sys::SEEN)).count() as u32,
            deleted: st.msgs.iter().filter(|m| m.flags.has(sys::DELETED)).count() as u32,
            size: st.msgs.iter().filter_map(|m| m.size()).sum(),
            highest_modseq: st.highest_modseq,
        };
        Ok(s)
    }

    /// Every UID, ascending (for moving all of INBOX on RENAME).
    pub(crate) fn all_uids(&self) -> Vec<u32> {
        self.lock_state().msgs.iter().map(|m| m.uid).collect()
    }
}

impl Folder {
    /// Writes what the folder holds that the disk does not (collected cache
    /// entries; the index, as a clean image, when it is behind) and marks
    /// the folder closed: its change feed stops following it. Only the
    /// registry calls this, once nobody holds the folder (or the process is
    /// ending); dropping a folder does no I/O, so holders may let go of it
    /// anywhere. Runs blocking I/O: not on the async runtime.
    pub(crate) fn close(&self) {
        let mut st = self.lock_state();
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        // Only if the directory is still the one we loaded: after a DELETE
        // or RENAME a new folder may live at this path.
        // A folder marked gone writes nothing: its successor may be open.
        let same_uidlist = !self.is_gone()
            && self
                .dirs()
                .dir
                .stat(uidlist::FILE)
                .is_ok_and(|m| st.ul_stamp.is_some_and(|s| s.ino == m.ino()));
        if st.synced_once && same_uidlist {
            self.flush_cache(&mut st);
            if st.dirty || !st.index_clean || st.reseal {
                self.write_index(&mut st, true);
            }
        }
    }

    /// Whether [`Folder::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The UIDs of `known` (ascending) that `msgs` no longer has.
fn expunged_from(msgs: &[Msg], known: &[u32]) -> Vec<u32> {
    let mut gone = Vec::new();
    let mut j = 0;
    for &u in known {
        while j < msgs.len() && msgs[j].uid < u {
            j += 1;
        }
        if msgs.get(j).is_none_or(|m| m.uid != u) {
            gone.push(u);
        }
    }
    gone
}

/// What a sync leaves to write once the folder is unlocked.
struct PersistJobs {
    index: Option<IndexJob>,
    cache: Option<CacheJob>,
}

/// An encoded index image on its way to `nestbox.index`.
struct IndexJob {
    image: Vec<u8>,
    generation: u64,
}

/// A batch of cache entries on its way to `nestbox.cache`.
struct CacheJob {
    entries: Vec<(u32, u8, Arc<[u8]>)>,
    /// Start the file afresh with `entries` (all live entries).
    rewrite: bool,
    uidvalidity: u32,
}

/// Takes the pending entries (or, when the file holds too many dead ones or
/// a bad tail, all live entries for a rewrite) out of the state.
fn take_cache_job(st: &mut State) -> Option<CacheJob> {
    if st.cache_pending.is_empty() {
        return None;
    }
    let cache = st.cache.as_ref()?;
    let live = cache.len();
    let rewrite = st.cache_file_entries == usize::MAX || st.cache_file_entries > 2 * live + 1000;
    let entries = if rewrite {
        st.cache_pending.clear();
        cache.iter().map(|(&(u, f), d)| (u, f, d.clone())).collect()
    } else {
        std::mem::take(&mut st.cache_pending)
    };
    Some(CacheJob {
        entries,
        rewrite,
        uidvalidity: st.uidvalidity,
    })
}

/// Books a written batch: how many entries the file holds decides when it
/// is compacted; a failed write makes the next batch rewrite it.
fn finish_cache_job(dir: &Path, st: &mut State, job: &CacheJob, result: io::Result<()>) {
    match result {
        Ok(()) if job.rewrite => st.cache_file_entries = job.entries.len(),
        Ok(()) => {
            if st.cache_file_entries != usize::MAX {
                st.cache_file_entries += job.entries.len();
            }
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write cache");
            st.cache_file_entries = usize::MAX;
        }
    }
}

impl State {
    /// Records that message `uid` took `modseq` for a flag change.
    fn note_flag_change(&mut self, uid: u32, modseq: u64) {
        self.flag_log.push_back((modseq, uid));
        while self.flag_log.len() > FLAG_LOG_MAX {
            if let Some((m, _)) = self.flag_log.pop_front() {
                self.flag_log_floor = m;
            }
        }
    }

    /// Adds (or replaces) a message, keeping `msgs` sorted by UID and
    /// `by_base` current.
    fn put(&mut self, m: Msg) {
        let State { msgs, by_base, .. } = self;
        if let Some(by_base) = by_base.get_mut() {
            if let Ok(i) = msgs.binary_search_by_key(&m.uid, |x| x.uid) {
                let old = &msgs[i];
                by_base.remove(old.base(), old.uid);
            }
            by_base.insert(m.base(), m.uid, |u| name_in(msgs, u));
        }
        // New UIDs are the highest: a cold scan adds 100,000 of them.
        if self.msgs.last().is_none_or(|l| l.uid < m.uid) {
            self.msgs.push(m);
            return;
        }
        match self.msgs.binary_search_by_key(&m.uid, |x| x.uid) {
            Ok(i) => self.msgs[i] = m,
            Err(i) => {
                self.msgs.insert(i, m);
                self.reshaped += 1;
            }
        }
    }

    /// A message COPY or MOVE has just placed in this folder under `uid`:
    /// adds it with the next modseq and returns its uidlist record, which
    /// the caller writes with the others under the lock. `loc` names the
    /// placed file, whose info suffix gives the letters kept uninterpreted.
    fn place(
        &mut self,
        uid: u32,
        loc: Loc,
        flags: Flags,
        extra_kw: Vec<String>,
        mtime: i64,
        ino: u64,
    ) -> Record {
        let (base, info) = filename::split(&loc.fname);
        let (_, size) = filename::size_fields(base);
        let Info { other, .. } = filename::parse_info(info.unwrap_or(""), &self.keywords);
        self.highest_modseq += 1;
        let rec = Record {
            uid,
            base: base.to_string(),
            size: None,
            vsize: size,
            extra: Vec::new(),
        };
        let modseq = self.highest_modseq;
        self.put(Msg {
            uid,
            loc,
            flags,
            rare: rare(other, extra_kw),
            mtime,
            size_raw: size.unwrap_or(NO_SIZE),
            modseq,
            ino,
        });
        rec
    }

    fn find(&self, uid: u32) -> Option<usize> {
        find_uid(&self.msgs, uid)
    }

    /// The UID of the message whose base name is `base`.
    fn uid_of_base(&self, base: &str) -> Option<u32> {
        self.by_base().get(base, |u| name_in(&self.msgs, u))
    }

    /// The base-name table, made now if it was not.
    fn by_base(&self) -> &ByBase {
        self.by_base.get_or_init(|| {
            let mut t = ByBase::default();
            t.reserve(self.msgs.len());
            for m in &self.msgs {
                t.insert(m.base(), m.uid, |u| name_in(&self.msgs, u));
            }
            t
        })
    }

    /// Index of the message whose base name is `base`.
    fn find_base(&self, base: &str) -> Option<usize> {
        self.uid_of_base(base).and_then(|u| self.find(u))
    }

    /// Removes the messages `gone` says are gone, keeping `by_base` and the
    /// `reshaped` count current.
    fn remove_msgs(&mut self, gone: impl Fn(u32) -> bool) {
        if let Some(by_base) = self.by_base.get_mut() {
            for m in self.msgs.iter().filter(|m| gone(m.uid)) {
                by_base.remove(m.base(), m.uid);
            }
        }
        self.msgs.retain(|m| !gone(m.uid));
        self.reshaped += 1;
    }

    /// Takes in every record of a uidlist just read: its UIDs are used
    /// (`next_uid` goes past them), and records whose base name no message
    /// has are kept for when their file shows up. Returns false, and stops,
    /// at a record that gives a message's base name another UID than the
    /// message has.
    fn note_uidlist(&mut self, ul: &uidlist::Loaded) -> bool {
        // Both the uidlist and `msgs` are in UID order as a rule: walked
        // side by side, a line that is the next message's own (same UID,
        // same name) is settled without a lookup by name (a binary search
        // per line was a third of a warm open at 100,000 messages). Any
        // other line, or a uidlist out of order, takes the lookup.
        let mut i = 0;
        for p in ul.lines() {
            while self.msgs.get(i).is_some_and(|m| m.uid < p.uid) {
                i += 1;
            }
            if let Some(m) = self.msgs.get(i)
                && m.uid == p.uid
                && m.base() == p.base
            {
                self.next_uid = self.next_uid.max(p.uid.saturating_add(1));
                continue;
            }
            if !self.note_record(&p) {
                return false;
            }
        }
        true
    }

    /// [`State::note_uidlist`] for one record; returns whether it agrees.
    fn note_record(&mut self, p: &uidlist::Parsed) -> bool {
        self.next_uid = self.next_uid.max(p.uid.saturating_add(1));
        match self.uid_of_base(p.base) {
            Some(u) => u == p.uid,
            None => {
                self.ul_unknown.insert(p.base.to_string(), p.to_record());
                true
            }
        }
    }

    /// Adds messages new to the folder (UIDs above all it has, unique).
    /// Into an empty folder in UID order (a cold open), the list becomes
    /// the folder's as it is, without a copy.
    fn add_msgs(&mut self, mut new: Vec<Msg>) {
        if self.msgs.is_empty() {
            // UIDs a uidlist gave may not follow name order.
            if !new.is_sorted_by_key(|m| m.uid) {
                new.sort_by_key(|m| m.uid);
            }
            self.msgs = new;
            self.reset_by_base();
            return;
        }
        self.msgs.reserve(new.len());
        if let Some(by_base) = self.by_base.get_mut() {
            by_base.reserve(new.len());
        }
        for m in new {
            self.put(m);
        }
    }

    /// Drops `by_base`, to be made anew from `msgs` when next needed.
    fn reset_by_base(&mut self) {
        self.by_base = std::cell::OnceCell::new();
    }
}

/// The base name of message `uid` among `msgs` (sorted by UID).
fn name_in(msgs: &[Msg], uid: u32) -> Option<&str> {
    find_uid(msgs, uid).map(|i| msgs[i].base())
}

/// Where message `uid` is in `msgs` (sorted by UID). UIDs are distinct
/// and start at 1, so UID `u` is at most at index `u - 1`, and exactly
/// there in a folder nothing was expunged from: that guess first, then a
/// binary search up to it. The change watcher looks up every renamed
/// file's message (60,000 lookups for a STORE on 30,000 messages), where
/// a full binary search missed the cache at most of its 17 steps.
fn find_uid(msgs: &[Msg], uid: u32) -> Option<usize> {
    let guess = (uid as usize)
        .checked_sub(1)?
        .min(msgs.len().checked_sub(1)?);
    if msgs[guess].uid == uid {
        return Some(guess);
    }
    msgs[..guess].binary_search_by_key(&uid, |m| m.uid).ok()
}

fn corrupt(what: &str, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::InvalidData {
        StoreError::Corrupt {
            what: what.into(),
            detail: e.to_string(),
        }
    } else {
        e.into()
    }
}

/// The mtime of an open directory (`cur/` or `new/`).
fn dir_mtime(dir: &Dir) -> Result<i128> {
    Ok(dir.meta()?.mtime_ns())
}

/// Creates the uidlist of a folder that has none: imported from Courier's
/// `courierimapuiddb` if there is one, else empty with a UIDVALIDITY above
/// `last_uidvalidity` (the one our index remembers, if any).
fn create_uidlist(
    dir: &Dir,
    last_uidvalidity: u32,
    fsync: bool,
    stale: Duration,
) -> Result<(uidlist::Loaded, FileStamp)> {
    let _lock = dotlock::lock(&dir.lock_path(), stale)?;
    // Someone may have created it while we waited for the lock.
    if let Some(x) = uidlist::Loaded::load(dir).map_err(|e| corrupt("uidlist", e))? {
        return Ok(x);
    }
    let courier = match dir.read(uidlist::COURIER) {
        Ok(b) => match uidlist::parse_courier(&b) {
            Ok(ul) => Some(ul),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "ignoring unreadable courierimapuiddb");
                None
            }
        },
        Err(_) => None,
    };
    let ul = match courier {
        Some(ul) => ul,
        None => Uidlist::new(fresh_uidvalidity(last_uidvalidity), 1),
    };
    let stamp = ul.write(dir, fsync)?;
    Ok(((&ul).into(), stamp))
}

/// A UIDVALIDITY for a new UID space: the current time, but above
/// `last` and above any this process handed out before, so a folder
/// deleted and re-created within one second still gets a different one
/// (RFC 9051 §2.3.1.1).
fn fresh_uidvalidity(last: u32) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static ISSUED: AtomicU32 = AtomicU32::new(0);
    let now = (now_ns() / 1_000_000_000) as u32;
    let mut prev = ISSUED.load(Ordering::Relaxed);
    loop {
        let v = now
            .max(last.saturating_add(1))
            .max(prev.saturating_add(1))
            .max(1);
        match ISSUED.compare_exchange_weak(prev, v, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return v,
            Err(p) => prev = p,
        }
    }
}

/// Removes files left in `tmp/` by crashed writers (MAILDIR.md: 36 hours).
fn clean_tmp(tmp: &Dir) {
    let Ok(names) = tmp.names() else { return };
    let now = SystemTime::now();
    for name in names {
        let Ok(meta) = tmp.stat(&name) else { continue };
        // ctime, not mtime: an APPEND in progress may already carry an old
        // INTERNALDATE as its mtime.
        let ctime = (meta.ctime_ns() / 1_000_000_000).max(0) as u64;
        let changed = UNIX_EPOCH + Duration::from_secs(ctime);
        let old = now
            .duration_since(changed)
            .is_ok_and(|age| age > TMP_DEBRIS_AGE);
        if old && meta.is_file() {
            let _ = tmp.unlink(&name);
        }
    }
}

/// How much of a message file [`Folder::read_header`] reads at most: 1 MiB,
/// far more than any real header (a few KiB; hundreds of `Received:`
/// lines are still tens of KiB), small enough that FETCH and SEARCH
/// threads parsing headers at once stay a few MiB each.
pub const MAX_HEADER_READ: usize = 1 << 20;

/// What [`Folder::read_header`] gives.
pub struct HeaderBlock {
    /// The header block as stored, or the fields of its start (`cut`).
    pub bytes: Vec<u8>,
    /// The header goes on past [`MAX_HEADER_READ`]: `bytes` holds only the
    /// fields that lie wholly within it.
    pub cut: bool,
}

/// Offset just past the blank line ending a header block (`\n\n` or
/// `\n\r\n`), if `b` contains it.
/// An open message file (see [`Folder::open_message`]). Reads go through
/// `nowait::read_at`, so they may run on a runtime thread in a nowait scope.
pub struct MessageFile(File);

impl MessageFile {
    /// Its length as stored (an `fstat`, which never waits: the inode is in
    /// memory once the file is open).
    pub fn size(&self) -> std::io::Result<u64> {
        self.0.metadata().map(|m| m.len())
    }

    /// Reads at `offset`; 0 at the end of the file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        nowait::read_at(&self.0, buf, offset)
    }
}

fn header_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\n', &b[i..]) {
        let at = i + p + 1;
        match b.get(at..) {
            Some([b'\n', ..]) => return Some(at + 1),
            Some([b'\r', b'\n', ..]) => return Some(at + 2),
            _ => {}
        }
        i = at;
    }
    None
}

#[cfg(test)]
mod find_tests {
    use super::*;
    use proptest::prelude::*;

    /// A message record with nothing but a UID and a name.
    pub(super) fn msg(uid: u32) -> Msg {
        Msg {
            uid,
            loc: Loc {
                in_new: false,
                fname: format!("{uid}.x.host"),
            },
            flags: Flags::new(),
            rare: None,
            mtime: 0,
            size_raw: NO_SIZE,
            modseq: 1,
            ino: 0,
        }
    }

    proptest! {
        /// The guess-first lookup finds what a binary search finds, in
        /// folders with and without gaps (expunges) in their UIDs.
        #[test]
        fn find_uid_answers_like_a_binary_search(
            uids in proptest::collection::btree_set(1u32..300, 0..120),
            probe in 0u32..320,
        ) {
            let msgs: Vec<Msg> = uids.iter().map(|&u| msg(u)).collect();
            for u in uids.iter().copied().chain([probe, 0, u32::MAX]) {
                prop_assert_eq!(
                    find_uid(&msgs, u),
                    msgs.binary_search_by_key(&u, |m| m.uid).ok()
                );
            }
        }
    }
}

#[cfg(test)]
mod rare_tests {
    /// Setting one rare part keeps the other; with both empty the message
    /// holds no box at all. Sizes round-trip, unknown included.
    #[test]
    fn rare_parts_and_sizes() {
        let mut m = super::find_tests::msg(1);
        assert_eq!((m.other(), m.extra_kw()), ("", &[][..]));
        m.set_other("Z");
        m.set_extra_kw(vec!["k27".to_string()]);
        assert_eq!((m.other(), m.extra_kw()), ("Z", &["k27".to_string()][..]));
        m.set_other("");
        assert_eq!((m.other(), m.extra_kw()), ("", &["k27".to_string()][..]));
        m.set_extra_kw(Vec::new());
        assert!(m.rare.is_none());
        assert_eq!(m.size(), None);
        for s in [Some(0), Some(12_345), None] {
            m.set_size(s);
            assert_eq!(m.size(), s);
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// A message's record is kept for every message of every open folder
    /// (16 MB at 100,000 messages when it was 160 bytes, 11 MB at 112):
    /// growing it should be a decision, not an accident.
    #[test]
    fn a_message_record_stays_small() {
        assert!(
            std::mem::size_of::<super::Msg>() <= 112,
            "{}",
            std::mem::size_of::<super::Msg>()
        );
    }
}

#[cfg(test)]
mod header_end_tests {
    #[test]
    fn finds_blank_line() {
        let t: &[(&[u8], Option<usize>)] = &[
            (b"A: b\n\nbody", Some(6)),
            (b"A: b\r\n\r\nbody", Some(8)),
            (b"A: b\r\nC: d\r\n", None),
            (b"\n\nx", Some(2)),
            (b"", None),
        ];
        for (input, want) in t {
            assert_eq!(
                super::header_end(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[cfg(test)]
mod persist_tests {
    use super::*;
    use crate::store::{ClosingStore, MailStore, Registry, StoreOptions};
    use std::fs;

    /// Dropping it closes its folders, as a worker ending does.
    fn store_at(root: &Path) -> ClosingStore {
        ClosingStore(
            MailStore::open(
                root.to_path_buf(),
                Registry::new(),
                StoreOptions { fsync: false },
            )
            .unwrap(),
        )
    }

    fn inbox(root: &Path) -> (ClosingStore, Arc<Folder>) {
        let s = store_at(root);
        fs::write(root.join("new/1000.a.host"), b"Subject: a\n\nbody\n").unwrap();
        let f = s.open_folder("INBOX").unwrap();
        (s, f)
    }

    /// In a nowait scope a folder lock held by someone else is waited for
    /// through the scope's hook (on the runtime: `block_in_place`), never
    /// on the caller's thread as is; without contention the hook is not
    /// called at all.
    #[test]
    fn a_held_folder_lock_is_waited_for_through_the_nowait_hook() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static HOOKED: AtomicUsize = AtomicUsize::new(0);
        fn hook(g: &mut dyn FnMut()) {
            HOOKED.fetch_add(1, Ordering::SeqCst);
            g()
        }
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let uid = f.messages()[0].uid;
        {
            let _scope = nowait::Scope::enter(hook);
            assert!(f.metas(&[uid])[0].is_some());
        }
        assert_eq!(HOOKED.load(Ordering::SeqCst), 0, "uncontended");
        let held = f.lock_state();
        let (tx, rx) = std::sync::mpsc::channel();
        let f2 = f.clone();
        let t = std::thread::spawn(move || {
            let _scope = nowait::Scope::enter(hook);
            let found = f2.metas(&[uid])[0].is_some();
            tx.send(found).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "waits for the lock");
        drop(held);
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        t.join().unwrap();
        assert_eq!(HOOKED.load(Ordering::SeqCst), 1);
    }

    /// A session's read of the folder's changes never blocks its runtime
    /// thread while another command holds the folder (a `STORE 1:*` over
    /// 100,000 messages holds it for 0.4 s): on a single-threaded runtime,
    /// another task keeps running meanwhile, and the answer (a new message,
    /// its \Recent claimed) comes once the holder lets go.
    #[test]
    fn reading_changes_never_blocks_the_runtime_thread() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        // The message there is this session's (and its \Recent claimed).
        f.sync(true).unwrap();
        f.take_recent();
        let known = f.uid_list();
        let since = f.highest_modseq();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let (holding_tx, holding_rx) = std::sync::mpsc::channel::<()>();
        let f2 = f.clone();
        let holder = std::thread::spawn(move || {
            let _held = f2.lock_state();
            holding_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        holding_rx.recv().unwrap();
        let changes = rt.block_on(async {
            let t = ticks.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    t.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            // The answer must wait for the holder...
            let q = ChangeQuery {
                since_modseq: since,
                known: known.clone(),
                claim_recent: true,
                want_uid_list: false,
            };
            let read = f.changes(q);
            let c = read.await.unwrap();
            ticker.abort();
            c
        });
        holder.join().unwrap();
        // ...while the runtime's other task went on (300 ms at 5 ms a tick).
        assert!(
            ticks.load(Ordering::SeqCst) >= 10,
            "the runtime thread was blocked: {} ticks",
            ticks.load(Ordering::SeqCst)
        );
        assert!(changes.new.is_empty() && changes.flags.is_empty());
        assert_eq!(changes.uidvalidity, f.uidvalidity());

        // Uncontended, in place: a new message, \Recent claimed once.
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        f.sync(true).unwrap();
        let q = ChangeQuery {
            since_modseq: since,
            known: known.clone(),
            claim_recent: true,
            want_uid_list: false,
        };
        let c = rt.block_on(f.changes(q.clone())).unwrap();
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.recent, [c.new[0].uid]);
        assert_eq!(c.uid_list.as_deref().map(Vec::len), Some(2));
        let again = rt.block_on(f.changes(q)).unwrap();
        assert!(again.recent.is_empty(), "\\Recent is claimed once");
    }

    /// Dropping a folder writes nothing; closing it (which the registry
    /// does once nobody holds it, and for all at the end) writes its index.
    #[test]
    fn only_closing_writes_the_index() {
        let d = tempfile::tempdir().unwrap();
        let index = d.path().join(index::FILE);
        let open_plain = || {
            MailStore::open(
                d.path().to_path_buf(),
                Registry::new(),
                StoreOptions { fsync: false },
            )
            .unwrap()
        };
        let s = open_plain();
        fs::write(d.path().join("new/1000.a.host"), b"Subject: a\n\nbody\n").unwrap();
        let f = s.open_folder("INBOX").unwrap();
        f.sync(true).unwrap();
        drop(f);
        drop(s);
        assert!(!index.exists(), "a drop wrote the index");
        let s = store_at(d.path());
        let f = s.open_folder("INBOX").unwrap();
        f.sync(true).unwrap();
        drop(f);
        drop(s);
        assert!(index.exists(), "closing wrote no index");
    }

    /// Index images are encoded in order under the folder lock but written
    /// outside it: whichever write comes last, the newest image stays.
    #[test]
    fn an_older_index_image_never_replaces_a_newer_one() {
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let (old, new, newest_modseq) = {
            let mut st = f.lock_state();
            let old = f.index_job(&mut st, false);
            st.highest_modseq += 5;
            let new = f.index_job(&mut st, false);
            (old, new, st.highest_modseq)
        };
        f.write_index_job(&new).unwrap();
        f.write_index_job(&old).unwrap();
        let on_disk = index::load(d.path()).unwrap();
        assert_eq!(on_disk.highest_modseq, newest_modseq);
        assert!(!on_disk.clean);
    }

    /// The change watcher's sync writes nothing of ours; `persist_due`,
    /// which the watcher runs a moment later, does.
    #[test]
    fn the_watchers_sync_leaves_the_writes_to_persist_due() {
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let index_path = d.path().join(index::FILE);
        let _ = fs::remove_file(&index_path);
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        f.lock_state().last_index_write = None;
        f.sync_for_watcher(None, None).unwrap();
        assert_eq!(f.messages().len(), 2);
        assert!(!index_path.exists(), "the watcher's sync wrote the index");
        f.persist_due();
        assert_eq!(index::load(d.path()).unwrap().msgs.len(), 2);
        assert!(!f.lock_state().dirty);
    }

    /// A folder opened from its index, with settled directories, makes no
    /// base-name table; the first sync that finds a file makes it, and it
    /// names every message.
    #[test]
    fn the_base_name_table_is_made_when_first_needed() {
        let d = tempfile::tempdir().unwrap();
        let settle = |sub: &str| {
            let t = filetime::FileTime::from_unix_time(now_ns() as i64 / 1_000_000_000 - 10, 0);
            filetime::set_file_mtime(d.path().join(sub), t).unwrap();
        };
        {
            let (_s, f) = inbox(d.path());
            f.sync(true).unwrap();
            settle("new");
            settle("cur");
            f.sync(false).unwrap();
        }
        let s = store_at(d.path());
        let f = s.open_folder("INBOX").unwrap();
        assert_eq!(f.messages().len(), 1);
        assert!(f.lock_state().by_base.get().is_none(), "made at open");
        // Another program renames the message's file (a flag change) and
        // delivers one; the change watcher passes on the names, which are
        // looked up by base name.
        fs::rename(
            d.path().join("cur/1000.a.host:2,"),
            d.path().join("cur/1000.a.host:2,F"),
        )
        .unwrap();
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        let event = |in_new: bool, name: &str, gone: bool| EntryEvent {
            in_new,
            name: name.to_string(),
            gone,
        };
        f.sync_for_watcher(
            Some(&[
                event(false, "1000.a.host:2,", true),
                event(false, "1000.a.host:2,F", false),
                event(true, "1001.b.host", false),
            ]),
            None,
        )
        .unwrap();
        let msgs = f.messages();
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].flags.has(sys::FLAGGED));
        let st = f.lock_state();
        assert!(st.by_base.get().is_some());
        assert_eq!(st.by_base().len(), 2);
        for m in &st.msgs {
            assert_eq!(st.uid_of_base(m.base()), Some(m.uid));
        }
    }

    /// An index whose records are out of UID order, one of them twice,
    /// still opens as the folder (sorted, each UID once).
    #[test]
    fn an_index_out_of_order_opens_sorted() {
        let d = tempfile::tempdir().unwrap();
        {
            let (_s, f) = inbox(d.path());
            fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
            f.sync(true).unwrap();
            assert_eq!(f.messages().len(), 2);
        }
        let mut idx = index::load(d.path()).unwrap();
        idx.msgs.reverse();
        idx.msgs.push(idx.msgs[0].clone());
        index::save(d.path(), &idx).unwrap();
        let s = store_at(d.path());
        let f = s.open_folder("INBOX").unwrap();
        let uids: Vec<u32> = f.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uids, [1, 2]);
        assert_eq!(&**f.read_message(2).unwrap(), b"Subject: b\n\nbody\n");
    }

    /// A periodic index image (written unclean) followed by a close with
    /// nothing else changed leaves a clean index: the next open keeps
    /// HIGHESTMODSEQ instead of taking the path for a crash (a new,
    /// time-based one, which sends CONDSTORE clients to resync).
    #[test]
    fn a_close_after_a_periodic_index_write_leaves_it_clean() {
        let d = tempfile::tempdir().unwrap();
        let reopen = || {
            let s = store_at(d.path());
            let f = s.open_folder("INBOX").unwrap();
            (s, f)
        };
        {
            let (_s, f) = inbox(d.path());
            f.sync(true).unwrap();
        }
        assert!(index::load(d.path()).unwrap().clean);
        let before = {
            let (_s, f) = reopen();
            let before = f.highest_modseq();
            // Directories changed under us (here: their mtimes): a rescan
            // that finds nothing new, then the periodic write.
            let t = filetime::FileTime::from_unix_time(now_ns() as i64 / 1_000_000_000 - 10, 0);
            filetime::set_file_mtime(d.path().join("cur"), t).unwrap();
            f.lock_state().last_index_write = None;
            f.sync(false).unwrap();
            assert!(!index::load(d.path()).unwrap().clean, "the periodic image");
            assert_eq!(f.highest_modseq(), before);
            before
        };
        assert!(
            index::load(d.path()).unwrap().clean,
            "written clean at close"
        );
        let (_s, f) = reopen();
        assert_eq!(f.highest_modseq(), before);
    }

    /// An index write that fails (now outside the folder lock) leaves the
    /// state dirty, so the next sync writes it.
    #[test]
    fn a_failed_index_write_is_retried_by_the_next_sync() {
        let d = tempfile::tempdir().unwrap();
        let (_s, f) = inbox(d.path());
        let index_path = d.path().join(index::FILE);
        // A directory where the index goes makes the rename fail.
        let _ = fs::remove_file(&index_path);
        fs::create_dir(&index_path).unwrap();
        fs::write(d.path().join("new/1001.b.host"), b"Subject: b\n\nbody\n").unwrap();
        f.lock_state().last_index_write = None;
        f.sync(false).unwrap();
        assert!(f.lock_state().dirty, "a failed index write is retried");
        fs::remove_dir(&index_path).unwrap();
        f.lock_state().last_index_write = None;
        f.sync(false).unwrap();
        assert!(!f.lock_state().dirty);
        let on_disk = index::load(d.path()).unwrap();
        assert_eq!(on_disk.msgs.len(), 2);
    }
}

#[cfg(test)]
mod changes_tests {
    use super::*;
    use crate::flags::{Flag, FlagOp, Flags};
    use crate::store::{MailStore, Registry, StoreOptions};
    use proptest::prelude::*;
    use std::fs;

    /// What `changes_since` answered before the flag log: a walk over
    /// every message. The log must give exactly this.
    fn by_walk(f: &Folder, since: u64, known: &[u32]) -> (Vec<u32>, Vec<(u32, u64)>, Vec<u32>) {
        let st = f.lock_state();
        let max_known = known.last().copied().unwrap_or(0);
        let new = st.msgs.iter().filter(|m| m.uid > max_known).map(|m| m.uid);
        let flags = st
            .msgs
            .iter()
            .filter(|m| {
                m.uid <= max_known && m.modseq > since && known.binary_search(&m.uid).is_ok()
            })
            .map(|m| (m.uid, m.modseq));
        (
            new.collect(),
            flags.collect(),
            expunged_from(&st.msgs, known),
        )
    }

    fn answer(c: &crate::store::Changes) -> (Vec<u32>, Vec<(u32, u64)>, Vec<u32>) {
        let new = c.new.iter().map(|m| m.uid).collect();
        let flags = c.flags.iter().map(|m| (m.uid, m.modseq)).collect();
        (new, flags, c.expunged.clone())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Deliver,
        Store(u8, bool),
        Rename(u8),
        Expunge(u8),
        Look,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Deliver),
            3 => (any::<u8>(), any::<bool>()).prop_map(|(i, s)| Op::Store(i, s)),
            2 => any::<u8>().prop_map(Op::Rename),
            1 => any::<u8>().prop_map(Op::Expunge),
            2 => Just(Op::Look),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Sessions look at the folder at random points (`Look` keeps a
        /// view); between looks the folder gets deliveries, STOREs, flag
        /// renames by another program and expunges. For every kept view,
        /// the answer from the log equals the walk, also once the log is
        /// taken to have overflowed; the shared UID list is always every
        /// UID, and the base name table names every message.
        #[test]
        fn the_flag_log_and_uid_list_answer_like_a_walk(ops in proptest::collection::vec(op(), 1..40)) {
            let d = tempfile::tempdir().unwrap();
            let root = d.path();
            let s = MailStore::open(root.to_path_buf(), Registry::new(), StoreOptions { fsync: false }).unwrap();
            for i in 0..6 {
                fs::write(root.join(format!("new/{i}.a.host")), b"Subject: a\n\nbody\n").unwrap();
            }
            let f = s.open_folder("INBOX").unwrap();
            f.sync(true).unwrap();
            let mut views: Vec<(u64, Vec<u32>)> = Vec::new();
            let look = |f: &Folder| {
                let st = f.lock_state();
                (st.highest_modseq, st.msgs.iter().map(|m| m.uid).collect::<Vec<u32>>())
            };
            views.push(look(&f));
            let mut n = 100;
            for op in ops {
                let op_kind = op.clone();
                let uids: Vec<u32> = f.lock_state().msgs.iter().map(|m| m.uid).collect();
                let pick = |i: u8| uids.get(i as usize % uids.len().max(1)).copied();
                match op {
                    Op::Deliver => {
                        n += 1;
                        fs::write(root.join(format!("new/{n}.b.host")), b"Subject: b\n\nbody\n").unwrap();
                        f.sync(false).unwrap();
                    }
                    Op::Store(i, add) => {
                        if let Some(u) = pick(i) {
                            let op = if add { FlagOp::Add } else { FlagOp::Remove };
                            f.store_flags(&[u], op, &Flags::from_flags(&[Flag::Flagged]), None).unwrap();
                        }
                    }
                    Op::Rename(i) => {
                        // Another program marks a message seen.
                        if let Some(u) = pick(i) {
                            let loc = { let st = f.lock_state(); st.msgs[st.find(u).unwrap()].loc.clone() };
                            if !loc.in_new && !loc.fname.ends_with('S') {
                                let from = root.join("cur").join(&loc.fname);
                                let to = root.join("cur").join(format!("{}S", loc.fname));
                                fs::rename(from, to).unwrap();
                                f.sync(false).unwrap();
                            }
                        }
                    }
                    Op::Expunge(i) => {
                        if let Some(u) = pick(i) {
                            f.store_flags(&[u], FlagOp::Add, &Flags::from_flags(&[Flag::Deleted]), None).unwrap();
                            f.expunge(Some(&[u])).unwrap();
                        }
                    }
                    Op::Look => views.push(look(&f)),
                }
                {
                    // The base name table names every message, and only those.
                    let st = f.lock_state();
                    prop_assert_eq!(st.by_base().len(), st.msgs.len());
                    for m in &st.msgs {
                        prop_assert_eq!(st.uid_of_base(m.base()), Some(m.uid));
                    }
                }
                for (since, known) in &views {
                    prop_assert_eq!(answer(&f.changes_since(*since, known)), by_walk(&f, *since, known));
                }
                if matches!(op_kind, Op::Look) {
                    // The shared UID list, extended by appending where it
                    // can be (asked for only now and then, as sessions do,
                    // so several changes come between two lists).
                    let all: Vec<u32> = f.lock_state().msgs.iter().map(|m| m.uid).collect();
                    prop_assert_eq!(&*f.uid_list(), &all);
                }
            }
            // As if the log had overflowed: everything older is walked.
            {
                let mut st = f.lock_state();
                st.flag_log_floor = st.highest_modseq;
            }
            for (since, known) in &views {
                prop_assert_eq!(answer(&f.changes_since(*since, known)), by_walk(&f, *since, known));
            }
        }
    }
}
