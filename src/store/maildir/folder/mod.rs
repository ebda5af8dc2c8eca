//! One folder's state and its synchronisation with the disk.
//!
//! Owns the in-memory view of a folder (UID -> file, flags, modseqs), the
//! sync that reconciles it with `new/`, `cur/` and the uidlist, and every
//! write to message files. It must never unlink a file it did not mean to
//! expunge, never report an expunge it has not confirmed, and never give a
//! file a UID without recording it in the uidlist first.
//!
//! Layout: this file holds the state and opening; `changes` what sessions
//! read of the state (messages, UIDs, \Recent, changes since their last
//! look); `bodies` message files and the per-message cache; `persist` the
//! index and cache files and closing; `sync` reconciles with the disk (its
//! module doc lists the races and how each is handled); `write` changes
//! message files (STORE, EXPUNGE, APPEND, COPY, MOVE, POP3's removal);
//! `by_base` holds the tables keyed by base names, which keep no copy of
//! the names; `fields` the uidlist extension fields of messages (Dovecot's
//! POP3 UIDLs); `objectid` MAILBOXID, EMAILID and SAVEDATE; `resolve` what
//! is looked up only when first needed (INTERNALDATE, RFC822.SIZE).
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

mod bodies;
mod by_base;
mod changes;
mod fields;
mod numbering;
mod objectid;
mod persist;
mod resolve;
mod sync;
pub use bodies::{HeaderBlock, MAX_HEADER_READ, MessageFile};
pub use changes::{ChangeQuery, ViewStart};
pub use objectid::{ObjectInfo, valid_objectid};
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
const EXPUNGE_LOG_MAX: usize = index::EXPUNGE_MEMORY_MAX;
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
    /// The uidlist record's extension fields other than `S` and `W`, as
    /// [`uidlist::Record::extra`] keeps them (see `fields`).
    ul_fields: Box<str>,
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
        ul_fields: Box::default(),
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
        self.edit_rare(other.as_ref().is_empty(), |r| r.other = other.into());
    }

    fn set_extra_kw(&mut self, extra_kw: impl Into<Box<[String]>> + AsRef<[String]>) {
        self.edit_rare(extra_kw.as_ref().is_empty(), |r| {
            r.extra_kw = extra_kw.into()
        });
    }

    /// Sets one rare part (`empty`: to nothing, which for a message
    /// without any is nothing to do: every rename sets `other`), keeping
    /// the others; no box is kept once all are empty.
    fn edit_rare(&mut self, empty: bool, set: impl FnOnce(&mut Rare)) {
        if empty && self.rare.is_none() {
            return;
        }
        let r = self.rare.get_or_insert_with(Box::default);
        set(r);
        if r.other.is_empty() && r.extra_kw.is_empty() && r.ul_fields.is_empty() {
            self.rare = None;
        }
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
        CacheField::Preview => 4,
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
    /// The Maildir's quota bookkeeping (`store::quota_upkeep`), attached
    /// by the store that opened the folder; absent, the quota is read
    /// and written without it (a folder opened on its own, in tests).
    upkeep: std::sync::OnceLock<Arc<crate::store::quota_upkeep::QuotaUpkeep>>,
    /// Rounds of the change watcher done ([`Folder::sync_for_watcher`]),
    /// and its signal: a session's sync may wait for the next round
    /// instead of reading a big folder's directories (`sync::catch_up`).
    watcher_rounds: Mutex<u64>,
    watcher_round: std::sync::Condvar,
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
        // The expunge log of a folder closed cleanly: complete up to the
        // HIGHESTMODSEQ it had. After a crash (an unclean index) expunges
        // a client was told of may be missing from it, so it is dropped
        // and VANISHED (EARLIER) falls back to every known UID not here.
        let mut memory = None;
        if let Some(i) = idx.filter(|i| i.uidvalidity == uidvalidity) {
            from_index = true;
            if i.clean {
                memory = i.expunges.clone();
            }
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
            if !i.clean {
                // After a crash the image may be older than changes clients
                // were told of: a flag set and cleared since it was written
                // looks unchanged, with the modseq from before both. Every
                // message takes the raised HIGHESTMODSEQ instead, so a
                // client that synced in between is told every message's
                // flags again (as after losing the index), never fewer.
                for m in &mut indexed {
                    m.modseq = st.highest_modseq;
                }
            }
            st.msgs = indexed;
            st.reset_by_base();
            st.take_indexed_fields(&i.fields);
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
        if let Some(m) = memory.filter(|_| from_index) {
            st.log_floor = m.floor.min(st.highest_modseq);
            st.expunge_log = m.entries.into();
        }
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
            upkeep: std::sync::OnceLock::new(),
            watcher_rounds: Mutex::new(0),
            watcher_round: std::sync::Condvar::new(),
        })
    }

    /// Counts a read-write session until the guard drops.
    pub fn hold_rw(self: &Arc<Self>) -> RwHold {
        self.rw_holders
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RwHold(self.clone())
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

    /// Status figures from the current state (after a sync by the caller).
    /// With `need_size`, unknown sizes are computed from the files.
    pub(crate) fn status(&self, need_size: bool) -> Result<crate::store::FolderStatus> {
        if need_size {
            self.resolve_sizes(&self.all_uids())?;
        }
        let recent = self.recent_count();
        let mailbox_id = self.mailbox_id();
        let st = self.lock_state();
        let s = crate::store::FolderStatus {
            mailbox_id,
            messages: st.msgs.len() as u32,
            recent,
            uidnext: st.next_uid,
            uidvalidity: st.uidvalidity,
            unseen: st.msgs.iter().filter(|m| !m.flags.has(sys::SEEN)).count() as u32,
            deleted: st.msgs.iter().filter(|m| m.flags.has(sys::DELETED)).count() as u32,
            size: st.msgs.iter().filter_map(|m| m.size()).sum(),
            deleted_size: st
                .msgs
                .iter()
                .filter(|m| m.flags.has(sys::DELETED))
                .filter_map(|m| m.size())
                .sum(),
            highest_modseq: st.highest_modseq,
        };
        Ok(s)
    }

    /// Every UID, ascending (for moving all of INBOX on RENAME).
    pub(crate) fn all_uids(&self) -> Vec<u32> {
        self.lock_state().msgs.iter().map(|m| m.uid).collect()
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
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        uid: u32,
        loc: Loc,
        flags: Flags,
        extra_kw: Vec<String>,
        mtime: i64,
        ino: u64,
        ul_fields: &str,
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
            extra: ul_fields.to_string(),
        };
        let modseq = self.highest_modseq;
        let mut m = Msg {
            uid,
            loc,
            flags,
            rare: rare(other, extra_kw),
            mtime,
            size_raw: size.unwrap_or(NO_SIZE),
            modseq,
            ino,
        };
        m.set_ul_fields(ul_fields);
        self.put(m);
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
            if let Some(m) = self.msgs.get_mut(i)
                && m.uid == p.uid
                && m.base() == p.base
            {
                self.dirty |= m.take_fields(p.fields());
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
            Some(u) if u == p.uid => {
                self.take_record_fields(u, p.fields());
                true
            }
            Some(_) => false,
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

#[cfg(test)]
mod tests;
