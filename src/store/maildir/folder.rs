//! One folder's state and its synchronisation with the disk.
//!
//! Owns the in-memory view of a folder (UID -> file, flags, modseqs), the
//! sync that reconciles it with `new/`, `cur/` and the uidlist, and every
//! write to message files. It must never unlink a file it did not mean to
//! expunge, never report an expunge it has not confirmed, and never give a
//! file a UID without recording it in the uidlist first.
//!
//! # The races, and what this module does about each (MAILDIR.md)
//! - **A file renamed under our feet** (another client changed flags or
//!   moved `new/` -> `cur/`): every open, rename and unlink that fails with
//!   `ENOENT` looks the base name up again in both directories
//!   (`Folder::relocate`: one scan per operation refreshes every location)
//!   and retries. Not finding it there proves nothing; the operation skips
//!   the message and only [`Folder::sync`] may call it expunged.
//! - **readdir is not a snapshot**: `new/` is read before `cur/` (so a
//!   file moving between them is seen at least once), the same base name
//!   seen twice is de-duplicated, and a known message absent from a scan is
//!   only expunged if a `stat` of its last path fails *and* a second scan
//!   does not find it either.
//! - **Real duplicates** (two files, one base name): the second one gets a
//!   fresh base name by rename and becomes a message of its own; nothing is
//!   ever unlinked to "resolve" a duplicate.
//! - **Several changes within one timestamp tick**: a scan is skipped only
//!   when both directory mtimes (nanoseconds) are unchanged *and* were
//!   already more than a second old when we last scanned.
//! - **Other writers assigning UIDs** (dovecot-lda, doveadm): UIDs are
//!   assigned only under the uidlist dotlock, after re-reading what others
//!   appended; a base name another process already numbered keeps its UID.
//! - **The uidlist rewritten with another UIDVALIDITY** (`doveadm force-resync`
//!   after a loss): the folder starts over: every old UID is expunged and the
//!   session sees the new UIDVALIDITY (it must then drop the client).
//!
//! Modseqs: every flag change, new message and expunge takes the next
//! modseq. They are kept in `nestbox.index`; if that is lost, or the process
//! died before writing it, modseqs restart at the current time in
//! microseconds, which is above anything handed out before as long as the
//! folder averaged fewer than a million changes a second.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::flags::{FlagOp, Flags, sys};
use crate::store::{CacheField, Changes, MessageMeta, Result, StoreError, StoreOptions};

use super::filename::{self, Info};
use super::index::{self, CacheMap, IndexData, IndexMsg};
use super::keywords::{self, Keywords};
use super::uidlist::{self, FileStamp, Record, Uidlist};

/// How long an empty or foreign uidlist lock must stay unchanged before it
/// is broken (SPEC §5: short, and logged).
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(10);
/// Expunges remembered for [`Folder::expunged_since`].
const EXPUNGE_LOG_MAX: usize = 10_000;
/// Minimum time between index rewrites while the folder is open.
const INDEX_WRITE_EVERY: Duration = Duration::from_secs(2);
/// Cache entries collected before they are appended to `nestbox.cache`.
const CACHE_BATCH: usize = 256;
/// Files in `tmp/` older than this are debris of crashed writers.
const TMP_DEBRIS_AGE: Duration = Duration::from_secs(36 * 3600);

/// Where a message file is: its directory and exact name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Loc {
    in_new: bool,
    fname: String,
}

#[derive(Clone, Debug)]
struct Msg {
    uid: u32,
    base: String,
    loc: Loc,
    /// All flags, including keywords only the index can hold.
    flags: Flags,
    /// Info letters we keep without interpreting.
    other: String,
    /// Keywords without a letter (beyond the 26 of `dovecot-keywords`).
    extra_kw: Vec<String>,
    mtime: i64,
    size: Option<u64>,
    modseq: u64,
    /// Inode of the file (0: unknown). Renames keep it, so it tells which
    /// of two files with one base name is the message we know.
    ino: u64,
}

impl Msg {
    fn meta(&self) -> MessageMeta {
        MessageMeta {
            uid: self.uid,
            flags: self.flags.clone(),
            internal_date: self.mtime,
            size: self.size,
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

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

fn is_enoent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

fn field_no(f: CacheField) -> u8 {
    match f {
        CacheField::Envelope => 0,
        CacheField::BodyStructure => 1,
        CacheField::Body => 2,
    }
}

/// A file found by a scan that has no UID yet.
struct NewFile {
    base: String,
    loc: Loc,
    mtime: i64,
    ino: u64,
    uid: Option<u32>,
    size: Option<u64>,
}

struct State {
    /// The first sync has run.
    synced_once: bool,
    uidvalidity: u32,
    next_uid: u32,
    last_uidvalidity: u32,
    guid: String,
    ul_version: u32,
    ul_stamp: Option<FileStamp>,
    /// Uidlist records whose files we have not seen (yet), by base name.
    ul_unknown: HashMap<String, Record>,
    msgs: Vec<Msg>,
    by_base: HashMap<String, u32>,
    keywords: Keywords,
    kw_mtime: Option<i128>,
    highest_modseq: u64,
    expunge_log: VecDeque<(u32, u64)>,
    /// The log answers for modseqs at or above this.
    log_floor: u64,
    recent: Vec<u32>,
    snapshot: Option<Arc<Vec<MessageMeta>>>,
    new_mtime: i128,
    cur_mtime: i128,
    scan_time: i128,
    dirty: bool,
    /// The index file on disk is a clean (complete) image of this state.
    index_clean: bool,
    last_index_write: Option<Instant>,
    cache: Option<CacheMap>,
    cache_pending: Vec<(u32, u8, Arc<[u8]>)>,
    cache_file_entries: usize,
}

/// One open folder, shared by every session that has it selected.
pub struct Folder {
    name: String,
    dir: PathBuf,
    /// The Maildir root, where `maildirsize` lives.
    root: PathBuf,
    fsync: bool,
    file_mode: u32,
    lock_stale_after: Duration,
    state: Mutex<State>,
    tx: watch::Sender<u64>,
}

/// Reads a directory into `(base, loc)` pairs, skipping dot files.
fn read_dir_into(dir: &Path, in_new: bool, out: &mut HashMap<String, Vec<Loc>>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if is_enoent(&e) => continue,
            Err(e) => return Err(e),
        };
        let Ok(fname) = entry.file_name().into_string() else {
            // A name that is not UTF-8 is not a Maildir message we can track.
            continue;
        };
        if fname.starts_with('.') {
            continue;
        }
        let base = filename::split(&fname).0.to_string();
        if base.is_empty() {
            continue;
        }
        let locs = out.entry(base).or_default();
        let loc = Loc { in_new, fname };
        if !locs.contains(&loc) {
            locs.push(loc);
        }
    }
    Ok(())
}

impl Folder {
    /// Opens the folder at `dir` (which must exist): loads the uidlist (or
    /// creates it), the keywords and the index. Does not scan; call
    /// [`Folder::sync`].
    pub(crate) fn open(
        name: &str,
        dir: PathBuf,
        root: &Path,
        opts: &StoreOptions,
        file_mode: u32,
    ) -> Result<Folder> {
        Self::open_with(name, dir, root, opts, file_mode, LOCK_STALE_AFTER)
    }

    pub(crate) fn open_with(
        name: &str,
        dir: PathBuf,
        root: &Path,
        opts: &StoreOptions,
        file_mode: u32,
        lock_stale_after: Duration,
    ) -> Result<Folder> {
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(StoreError::NotFound),
            Err(e) if is_enoent(&e) => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        }
        for sub in ["cur", "new", "tmp"] {
            match fs::create_dir(dir.join(sub)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        clean_tmp(&dir.join("tmp"));
        let keywords = Keywords::load(&dir)?;
        let kw_mtime = fs::metadata(dir.join(keywords::FILE))
            .ok()
            .map(|m| mtime_ns(&m));
        let idx = index::load(&dir);
        let last_uidv = idx
            .as_ref()
            .map_or(0, |i| i.last_uidvalidity.max(i.uidvalidity));

        let ul = match Uidlist::load(&dir) {
            Ok(Some(x)) => x,
            Ok(None) => create_uidlist(&dir, last_uidv, opts.fsync, lock_stale_after)?,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // Never overwrite what we cannot read: move it aside, then
                // start a new UID space above the old one.
                let aside = dir.join(format!("{}.corrupt.{}", uidlist::FILE, now_ns()));
                tracing::warn!(dir = %dir.display(), error = %e, "uidlist unreadable; moved aside");
                let _ = fs::rename(dir.join(uidlist::FILE), &aside);
                create_uidlist(&dir, last_uidv, opts.fsync, lock_stale_after)?
            }
            Err(e) => return Err(e.into()),
        };
        let (ul, stamp) = ul;

        let mut st = State {
            synced_once: false,
            uidvalidity: ul.uidvalidity,
            next_uid: ul.next_uid(),
            last_uidvalidity: last_uidv.max(ul.uidvalidity),
            guid: ul.guid.clone(),
            ul_version: ul.version,
            ul_stamp: Some(stamp),
            ul_unknown: HashMap::new(),
            msgs: Vec::new(),
            by_base: HashMap::new(),
            keywords,
            kw_mtime,
            highest_modseq: 0,
            expunge_log: VecDeque::new(),
            log_floor: 0,
            recent: Vec::new(),
            snapshot: None,
            new_mtime: 0,
            cur_mtime: 0,
            scan_time: 0,
            dirty: false,
            index_clean: false,
            last_index_write: None,
            cache: None,
            cache_pending: Vec::new(),
            cache_file_entries: 0,
        };
        let ul_uid: HashMap<&str, u32> = ul
            .records
            .iter()
            .map(|r| (r.base.as_str(), r.uid))
            .collect();
        let usable = idx.filter(|i| {
            i.uidvalidity == ul.uidvalidity
                && i.msgs.iter().all(|m| {
                    let base = filename::split(&m.fname).0;
                    ul_uid.get(base).is_none_or(|&u| u == m.uid)
                })
        });
        match usable {
            Some(i) => {
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
                for m in i.msgs {
                    let base = filename::split(&m.fname).0.to_string();
                    let info = filename::split(&m.fname).1.unwrap_or("");
                    let Info { mut flags, other } = filename::parse_info(info, &st.keywords);
                    for k in &m.extra_keywords {
                        flags.insert_keyword(k);
                    }
                    st.by_base.insert(base.clone(), m.uid);
                    st.msgs.push(Msg {
                        uid: m.uid,
                        base,
                        loc: Loc {
                            in_new: m.in_new,
                            fname: m.fname,
                        },
                        flags,
                        other,
                        extra_kw: m.extra_keywords,
                        mtime: m.mtime,
                        size: m.size,
                        modseq: m.modseq,
                        ino: m.ino,
                    });
                }
                st.msgs.sort_by_key(|m| m.uid);
                st.msgs.dedup_by_key(|m| m.uid);
            }
            None => st.highest_modseq = modseq_floor(),
        }
        for r in ul.records {
            st.next_uid = st.next_uid.max(r.uid.saturating_add(1));
            if !st.by_base.contains_key(&r.base) {
                st.ul_unknown.insert(r.base.clone(), r);
            }
        }
        st.log_floor = st.highest_modseq;
        let (tx, _) = watch::channel(st.highest_modseq);
        Ok(Folder {
            name: name.to_string(),
            dir,
            root: root.to_path_buf(),
            fsync: opts.fsync,
            file_mode,
            lock_stale_after,
            state: Mutex::new(st),
            tx,
        })
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves state that is still
        // consistent enough to serve (every mutation is re-derived from
        // disk on the next sync), so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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

    fn path_of(&self, loc: &Loc) -> PathBuf {
        self.dir
            .join(if loc.in_new { "new" } else { "cur" })
            .join(&loc.fname)
    }

    fn changed(&self, st: &mut State) {
        st.snapshot = None;
        st.dirty = true;
        // The index on disk claims complete modseqs; before anyone sees a
        // newer one, mark it incomplete, so a crash now makes the next
        // open raise HIGHESTMODSEQ instead of reusing modseqs.
        if st.index_clean {
            self.write_index(st, false);
        }
        self.tx.send_replace(st.highest_modseq);
    }

    /// Rescans `new/` and `cur/` and reconciles with the uidlist; see the
    /// module doc for the races handled. With `move_new`, files in `new/`
    /// move to `cur/` and become claimable as \Recent.
    pub fn sync(&self, move_new: bool) -> Result<()> {
        let mut st = self.lock_state();
        let changed = self.sync_locked(&mut st, move_new)?;
        if changed {
            self.changed(&mut st);
        }
        self.maybe_persist(&mut st);
        Ok(())
    }

    fn sync_locked(&self, st: &mut State, move_new: bool) -> Result<bool> {
        // Deleted or renamed away: say so before touching anything inside.
        dir_mtime(&self.dir)?;
        let mut changed = false;
        // Keywords first: file names are read with them.
        let kw_mtime = fs::metadata(self.dir.join(keywords::FILE))
            .ok()
            .map(|m| mtime_ns(&m));
        if kw_mtime != st.kw_mtime {
            st.keywords = Keywords::load(&self.dir)?;
            st.kw_mtime = kw_mtime;
        }
        if self.refresh_uidlist(st)? {
            changed = true;
        }
        if st.ul_stamp.is_none() {
            self.restore_uidlist(st)?;
        }

        let scan_start = now_ns();
        let new_m = dir_mtime(&self.dir.join("new"))?;
        let cur_m = dir_mtime(&self.dir.join("cur"))?;
        let settled = |stored: i128| stored < st.scan_time - 1_000_000_000;
        // A fresh index counts as a previous scan: a warm open of an
        // unchanged folder reads no directory.
        let skip = (st.synced_once || st.scan_time != 0)
            && new_m == st.new_mtime
            && cur_m == st.cur_mtime
            && settled(new_m)
            && settled(cur_m);
        if !skip {
            if self.scan_and_reconcile(st)? {
                changed = true;
            }
            st.new_mtime = new_m;
            st.cur_mtime = cur_m;
            st.scan_time = scan_start;
            st.dirty = true;
        }
        st.synced_once = true;
        if move_new && self.move_new_to_cur(st)? {
            changed = true;
        }
        Ok(changed)
    }

    /// Picks up uidlist changes by others. Returns whether the folder's
    /// messages changed (only on a UIDVALIDITY change).
    fn refresh_uidlist(&self, st: &mut State) -> Result<bool> {
        let meta = match fs::metadata(self.dir.join(uidlist::FILE)) {
            Ok(m) => m,
            Err(e) if is_enoent(&e) => {
                // Lost under us: it is rewritten from our state (same
                // UIDVALIDITY, same UIDs) the next time a UID is assigned.
                st.ul_stamp = None;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let now = FileStamp::of(&meta);
        if let Some(old) = st.ul_stamp {
            if old.ino == now.ino && now.len >= old.len && now.len > 0 {
                if now.len > old.len {
                    let (recs, stamp) = uidlist::read_appended(&self.dir, old, st.ul_version)?;
                    st.ul_stamp = Some(stamp);
                    self.note_records(st, recs);
                }
                return Ok(false);
            }
        }
        let Some((ul, stamp)) = Uidlist::load(&self.dir).map_err(|e| corrupt("uidlist", e))? else {
            st.ul_stamp = None;
            return Ok(false);
        };
        st.ul_stamp = Some(stamp);
        st.ul_version = ul.version;
        st.guid = ul.guid.clone();
        if ul.uidvalidity != st.uidvalidity {
            tracing::warn!(
                dir = %self.dir.display(),
                old = st.uidvalidity,
                new = ul.uidvalidity,
                "uidlist rewritten with a new UIDVALIDITY; renumbering the folder"
            );
            let gone: Vec<u32> = st.msgs.iter().map(|m| m.uid).collect();
            self.record_expunges(st, &gone);
            st.uidvalidity = ul.uidvalidity;
            st.last_uidvalidity = st.last_uidvalidity.max(ul.uidvalidity);
            st.next_uid = ul.next_uid();
            st.synced_once = false;
            st.ul_unknown.clear();
            st.cache = None;
            st.cache_pending.clear();
            st.cache_file_entries = usize::MAX;
            st.new_mtime = 0;
            st.cur_mtime = 0;
            self.note_records(st, ul.records);
            return Ok(true);
        }
        st.next_uid = st.next_uid.max(ul.next_uid());
        st.ul_unknown.clear();
        self.note_records(st, ul.records);
        Ok(false)
    }

    /// The uidlist vanished (someone deleted it): write it back from our
    /// state at once, same UIDVALIDITY and UIDs, before another program
    /// creates a fresh one and renumbers everything.
    fn restore_uidlist(&self, st: &mut State) -> Result<()> {
        let _lock = uidlist::lock(&self.dir, self.lock_stale_after)?;
        if self.refresh_uidlist(st)? || st.ul_stamp.is_some() {
            return Ok(());
        }
        tracing::warn!(dir = %self.dir.display(), "uidlist missing; rewriting it from memory");
        self.write_full_uidlist(st, Vec::new())
    }

    fn note_records(&self, st: &mut State, recs: Vec<Record>) {
        for r in recs {
            st.next_uid = st.next_uid.max(r.uid.saturating_add(1));
            if !st.by_base.contains_key(&r.base) {
                st.ul_unknown.insert(r.base.clone(), r);
            }
        }
    }

    fn scan(&self) -> Result<HashMap<String, Vec<Loc>>> {
        let mut found = HashMap::new();
        // new/ before cur/: a file moving from new/ to cur/ during the scan
        // is then seen at least once (maybe twice, handled as a duplicate).
        for (sub, in_new) in [("new", true), ("cur", false)] {
            match read_dir_into(&self.dir.join(sub), in_new, &mut found) {
                Ok(()) => {}
                Err(e) if is_enoent(&e) => return Err(StoreError::NotFound),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(found)
    }

    /// Chooses one location per base name; real duplicates get fresh base
    /// names (returned as extra entries).
    fn resolve(&self, st: &State, base: &str, mut locs: Vec<Loc>, out: &mut HashMap<String, Loc>) {
        if locs.len() == 1 {
            if let Some(l) = locs.pop() {
                out.insert(base.to_string(), l);
            }
            return;
        }
        // Which of them really exist right now, and which is the file we
        // know (same inode: renames keep it)?
        let known = st
            .by_base
            .get(base)
            .and_then(|u| st.find(*u))
            .map(|i| &st.msgs[i]);
        let mut found: Vec<(Loc, u64)> = locs
            .into_iter()
            .filter_map(|l| {
                let ino = fs::symlink_metadata(self.path_of(&l)).ok()?.ino();
                Some((l, ino))
            })
            .collect();
        // Keep the one we know by inode, else by location, else the one in cur/.
        found.sort_by_key(|(l, ino)| {
            let same_ino = known.is_some_and(|m| m.ino != 0 && m.ino == *ino);
            let same_loc = known.is_some_and(|m| m.loc == *l);
            (!same_ino, !same_loc, l.in_new)
        });
        let locs: Vec<Loc> = found.into_iter().map(|(l, _)| l).collect();
        let mut it = locs.into_iter();
        let Some(keep) = it.next() else {
            return;
        };
        for dup in it {
            let fresh = filename::fresh_base_like(base);
            let info = filename::split(&dup.fname).1;
            let fname = match info {
                Some(i) => filename::cur_name(&fresh, i),
                None => fresh.clone(),
            };
            let to = Loc {
                in_new: dup.in_new,
                fname,
            };
            match super::rename_noreplace(&self.path_of(&dup), &self.path_of(&to)) {
                Ok(()) => {
                    tracing::info!(base, fresh = %fresh, "duplicate base name renamed");
                    out.insert(fresh, to);
                }
                // Gone: it was a double readdir entry after all.
                Err(e) if is_enoent(&e) => {}
                Err(e) => tracing::warn!(base, error = %e, "cannot rename a duplicate"),
            }
        }
        out.insert(base.to_string(), keep);
    }

    fn scan_and_reconcile(&self, st: &mut State) -> Result<bool> {
        let raw = self.scan()?;
        let mut seen: HashMap<String, Loc> = HashMap::with_capacity(raw.len());
        for (base, locs) in raw {
            self.resolve(st, &base, locs, &mut seen);
        }
        let mut changed = false;
        let mut missing: Vec<u32> = Vec::new();
        for i in 0..st.msgs.len() {
            let base = st.msgs[i].base.clone();
            match seen.remove(&base) {
                Some(loc) => {
                    if loc != st.msgs[i].loc && self.update_loc(st, i, loc) {
                        changed = true;
                    }
                }
                None => {
                    // Absent from this scan: gone only if its last path is
                    // gone too (readdir may have skipped it).
                    if fs::symlink_metadata(self.path_of(&st.msgs[i].loc)).is_err() {
                        missing.push(st.msgs[i].uid);
                    }
                }
            }
        }
        if !missing.is_empty() {
            // Second look, with a fresh scan.
            let again = self.scan()?;
            let mut gone = Vec::new();
            for uid in missing {
                let Some(i) = st.find(uid) else { continue };
                let base = st.msgs[i].base.clone();
                let loc = again
                    .get(&base)
                    .and_then(|ls| {
                        ls.iter()
                            .find(|l| fs::symlink_metadata(self.path_of(l)).is_ok())
                    })
                    .cloned();
                match loc {
                    Some(loc) => {
                        if self.update_loc(st, i, loc) {
                            changed = true;
                        }
                    }
                    None => gone.push(uid),
                }
            }
            if !gone.is_empty() {
                self.record_expunges(st, &gone);
                changed = true;
            }
        }
        // What is left in `seen` has no UID in our state.
        if !seen.is_empty() {
            let mut files: Vec<NewFile> = Vec::with_capacity(seen.len());
            for (base, loc) in seen {
                let meta = match fs::symlink_metadata(self.path_of(&loc)) {
                    Ok(m) if m.is_file() => m,
                    // Moved on already; the next sync finds it.
                    _ => continue,
                };
                let (_, w) = filename::size_fields(&base);
                files.push(NewFile {
                    base,
                    loc,
                    mtime: meta.mtime(),
                    ino: meta.ino(),
                    uid: None,
                    size: w,
                });
            }
            // In delivery order: unique names start with the delivery time
            // (the mtime may be an old INTERNALDATE set by a client).
            files.sort_by(|a, b| a.base.cmp(&b.base));
            if !files.is_empty() {
                self.number_files(st, &mut files)?;
                for f in files {
                    self.insert_new(st, f, false);
                }
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Updates a message's location; returns whether its flags changed.
    fn update_loc(&self, st: &mut State, i: usize, loc: Loc) -> bool {
        let info = filename::split(&loc.fname).1.unwrap_or("");
        let Info { mut flags, other } = filename::parse_info(info, &st.keywords);
        let Some(m) = st.msgs.get(i) else {
            return false;
        };
        for k in &m.extra_kw {
            flags.insert_keyword(k);
        }
        let flags_changed = flags != m.flags;
        let modseq = if flags_changed {
            st.highest_modseq += 1;
            st.highest_modseq
        } else {
            m.modseq
        };
        if let Some(m) = st.msgs.get_mut(i) {
            m.loc = loc;
            m.flags = flags;
            m.other = other;
            m.modseq = modseq;
        }
        st.dirty = true;
        st.snapshot = None;
        flags_changed
    }

    /// Gives UIDs to files: the uidlist's own for base names another process
    /// numbered, new ones (appended under the lock) for the rest.
    fn number_files(&self, st: &mut State, files: &mut [NewFile]) -> Result<()> {
        let max_uid = st.msgs.last().map_or(0, |m| m.uid);
        let mut taken: HashSet<u32> = HashSet::new();
        let mut adopt = |st: &mut State, f: &mut NewFile| {
            if let Some(r) = st.ul_unknown.get(&f.base) {
                // A UID below one we already know would appear out of order
                // (and may be one we reported expunged, its file come back),
                // and a UID listed twice can only be used once: renumber
                // those instead. On a cold open nothing is known yet.
                if r.uid > max_uid && taken.insert(r.uid) {
                    f.uid = Some(r.uid);
                    f.size = f.size.or(r.vsize);
                }
                st.ul_unknown.remove(&f.base);
            }
        };
        for f in files.iter_mut() {
            adopt(st, f);
        }
        if files.iter().all(|f| f.uid.is_some()) {
            return Ok(());
        }
        let _lock = uidlist::lock(&self.dir, self.lock_stale_after)?;
        // Someone may have numbered them while we scanned.
        self.refresh_uidlist(st)?;
        for f in files.iter_mut().filter(|f| f.uid.is_none()) {
            adopt(st, f);
        }
        let mut recs = Vec::new();
        for f in files.iter_mut().filter(|f| f.uid.is_none()) {
            let uid = st.next_uid;
            st.next_uid = st
                .next_uid
                .checked_add(1)
                .ok_or_else(|| StoreError::Cannot("UID space exhausted".into()))?;
            f.uid = Some(uid);
            recs.push(Record {
                uid,
                base: f.base.clone(),
                size: None,
                vsize: f.size,
                extra: Vec::new(),
            });
        }
        self.write_records(st, recs)
    }

    /// Records new UIDs in the uidlist (lock held): appended, or a full
    /// rewrite when the file is missing or in an old format.
    fn write_records(&self, st: &mut State, recs: Vec<Record>) -> Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        if st.ul_stamp.is_some() && st.ul_version == 3 {
            let before = st.ul_stamp;
            uidlist::append(&self.dir, &recs, self.fsync)?;
            // We hold the lock, so the growth is ours alone: skip re-reading it.
            if let (Some(b), Ok(m)) = (before, fs::metadata(self.dir.join(uidlist::FILE))) {
                let now = FileStamp::of(&m);
                if now.ino == b.ino {
                    st.ul_stamp = Some(now);
                }
            }
            return Ok(());
        }
        self.write_full_uidlist(st, recs)
    }

    /// Rewrites the whole uidlist from our state plus `recs` (lock held).
    /// Records of files we never saw are kept: they may just not have been
    /// listed by our last readdir.
    fn write_full_uidlist(&self, st: &mut State, recs: Vec<Record>) -> Result<()> {
        let mut ul = Uidlist::new(st.uidvalidity, st.next_uid);
        if !st.guid.is_empty() {
            ul.guid = st.guid.clone();
        }
        ul.records = st
            .msgs
            .iter()
            .map(|m| Record {
                uid: m.uid,
                base: m.base.clone(),
                size: None,
                vsize: m.size,
                extra: Vec::new(),
            })
            .chain(st.ul_unknown.values().cloned())
            .chain(recs)
            .collect();
        ul.records.sort_by_key(|r| r.uid);
        ul.records.dedup_by_key(|r| r.uid);
        ul.header_next = st.next_uid;
        let stamp = ul.write(&self.dir, self.fsync)?;
        st.ul_stamp = Some(stamp);
        st.ul_version = 3;
        st.guid = ul.guid;
        Ok(())
    }

    fn insert_new(&self, st: &mut State, f: NewFile, recent: bool) {
        let Some(uid) = f.uid else { return };
        let info = filename::split(&f.loc.fname).1.unwrap_or("");
        let Info { flags, other } = filename::parse_info(info, &st.keywords);
        st.highest_modseq += 1;
        let m = Msg {
            uid,
            base: f.base.clone(),
            loc: f.loc,
            flags,
            other,
            extra_kw: Vec::new(),
            mtime: f.mtime,
            size: f.size,
            modseq: st.highest_modseq,
            ino: f.ino,
        };
        st.by_base.insert(f.base, uid);
        match st.msgs.binary_search_by_key(&uid, |m| m.uid) {
            Ok(i) => st.msgs[i] = m,
            Err(i) => st.msgs.insert(i, m),
        }
        if recent {
            st.recent.push(uid);
        }
    }

    fn record_expunges(&self, st: &mut State, uids: &[u32]) {
        if uids.is_empty() {
            return;
        }
        let gone: HashSet<u32> = uids.iter().copied().collect();
        let mut sorted: Vec<u32> = uids.to_vec();
        sorted.sort_unstable();
        for uid in sorted {
            st.highest_modseq += 1;
            st.expunge_log.push_back((uid, st.highest_modseq));
        }
        while st.expunge_log.len() > EXPUNGE_LOG_MAX {
            if let Some((_, m)) = st.expunge_log.pop_front() {
                st.log_floor = m;
            }
        }
        let State { msgs, by_base, .. } = st;
        msgs.retain(|m| {
            if gone.contains(&m.uid) {
                by_base.remove(&m.base);
                false
            } else {
                true
            }
        });
        st.recent.retain(|u| !gone.contains(u));
        if let Some(c) = st.cache.as_mut() {
            c.retain(|(u, _), _| !gone.contains(u));
        }
        st.cache_pending.retain(|(u, _, _)| !gone.contains(u));
    }

    fn move_new_to_cur(&self, st: &mut State) -> Result<bool> {
        let pending: Vec<usize> = (0..st.msgs.len())
            .filter(|&i| st.msgs[i].loc.in_new)
            .collect();
        let mut changed = false;
        let mut rescanned = false;
        for i in pending {
            let m = &st.msgs[i];
            let info = filename::split(&m.loc.fname).1.unwrap_or("").to_string();
            let to = Loc {
                in_new: false,
                fname: filename::cur_name(&m.base, &info),
            };
            let from = m.loc.clone();
            let uid = m.uid;
            match super::rename_noreplace(&self.path_of(&from), &self.path_of(&to)) {
                Ok(()) => {
                    st.msgs[i].loc = to;
                    st.recent.push(uid);
                    changed = true;
                }
                Err(e) if is_enoent(&e) => {
                    // Someone else moved it first; it is not ours to call recent.
                    if self.relocate(st, i, &mut rescanned)? {
                        changed = true;
                    }
                }
                Err(e) => {
                    // E.g. no space: leave it in new/ and try again later.
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot move new/ to cur/");
                }
            }
        }
        Ok(changed)
    }

    /// Finds a base name in `cur/` or `new/` (after `ENOENT` on its last path).
    fn locate(&self, base: &str) -> Result<Option<Loc>> {
        for (sub, in_new) in [("cur", false), ("new", true)] {
            let rd = match fs::read_dir(self.dir.join(sub)) {
                Ok(rd) => rd,
                Err(e) if is_enoent(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in rd.flatten() {
                if let Ok(fname) = entry.file_name().into_string() {
                    if filename::split(&fname).0 == base {
                        return Ok(Some(Loc { in_new, fname }));
                    }
                }
            }
        }
        Ok(None)
    }

    /// After `ENOENT` on message `i`'s file: finds it again. The first time
    /// in an operation one scan of both directories refreshes every
    /// message's location (a client that renamed one file has often renamed
    /// many); later calls in the same operation only trust that scan.
    /// Returns whether the message now has another location to retry with.
    /// Not finding it proves nothing (readdir is not a snapshot): callers
    /// skip the message and leave expunges to [`Folder::sync`].
    fn relocate(&self, st: &mut State, i: usize, rescanned: &mut bool) -> Result<bool> {
        let Some(before) = st.msgs.get(i).map(|m| m.loc.clone()) else {
            return Ok(false);
        };
        if *rescanned {
            return Ok(false);
        }
        *rescanned = true;
        let raw = self.scan()?;
        let mut flags_changed = false;
        for j in 0..st.msgs.len() {
            let Some(locs) = raw.get(&st.msgs[j].base) else {
                continue;
            };
            if locs.contains(&st.msgs[j].loc) {
                continue;
            }
            // Prefer cur/ over new/ if a move is under way.
            let pick = locs.iter().find(|l| !l.in_new).or(locs.first()).cloned();
            if let Some(l) = pick {
                flags_changed |= self.update_loc(st, j, l);
            }
        }
        if flags_changed {
            self.changed(st);
        }
        Ok(st.msgs.get(i).is_some_and(|m| m.loc != before))
    }

    /// Writes the index when it is due, and flushes collected cache entries.
    fn maybe_persist(&self, st: &mut State) {
        if st.dirty
            && st
                .last_index_write
                .is_none_or(|t| t.elapsed() >= INDEX_WRITE_EVERY)
        {
            self.write_index(st, false);
        }
        self.flush_cache(st);
    }

    fn write_index(&self, st: &mut State, clean: bool) {
        let d = IndexData {
            uidvalidity: st.uidvalidity,
            next_uid: st.next_uid,
            highest_modseq: st.highest_modseq,
            last_uidvalidity: st.last_uidvalidity.max(st.uidvalidity),
            clean,
            new_mtime: st.new_mtime,
            cur_mtime: st.cur_mtime,
            scan_time: st.scan_time,
            msgs: st
                .msgs
                .iter()
                .map(|m| IndexMsg {
                    uid: m.uid,
                    fname: m.loc.fname.clone(),
                    in_new: m.loc.in_new,
                    modseq: m.modseq,
                    mtime: m.mtime,
                    size: m.size,
                    ino: m.ino,
                    extra_keywords: m.extra_kw.clone(),
                })
                .collect(),
        };
        match index::save(&self.dir, &d) {
            Ok(()) => {
                st.dirty = false;
                st.index_clean = clean;
                st.last_index_write = Some(Instant::now());
            }
            Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write index"),
        }
    }

    fn load_cache(&self, st: &mut State) {
        if st.cache.is_none() {
            let (map, n) = index::load_cache(&self.dir, st.uidvalidity);
            st.cache_file_entries = n;
            st.cache = Some(map);
        }
    }

    fn flush_cache(&self, st: &mut State) {
        if st.cache_pending.is_empty() {
            return;
        }
        let Some(cache) = st.cache.as_ref() else {
            return;
        };
        let live = cache.len();
        let rewrite =
            st.cache_file_entries == usize::MAX || st.cache_file_entries > 2 * live + 1000;
        let result = if rewrite {
            let all: Vec<(u32, u8, Arc<[u8]>)> =
                cache.iter().map(|(&(u, f), d)| (u, f, d.clone())).collect();
            index::append_cache(&self.dir, st.uidvalidity, &all, true).map(|()| all.len())
        } else {
            index::append_cache(&self.dir, st.uidvalidity, &st.cache_pending, false)
                .map(|()| st.cache_file_entries + st.cache_pending.len())
        };
        match result {
            Ok(n) => {
                st.cache_file_entries = n;
                st.cache_pending.clear();
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write cache");
                st.cache_pending.clear();
                st.cache_file_entries = usize::MAX;
            }
        }
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

    /// Takes the UIDs that are \Recent and not yet claimed by any session.
    pub fn take_recent(&self) -> Vec<u32> {
        let mut r = std::mem::take(&mut self.lock_state().recent);
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
        let st = self.lock_state();
        let max_known = known.last().copied().unwrap_or(0);
        let mut c = Changes {
            highest_modseq: st.highest_modseq,
            ..Changes::default()
        };
        for m in &st.msgs {
            if m.uid > max_known {
                c.new.push(m.meta());
            } else if m.modseq > since_modseq && known.binary_search(&m.uid).is_ok() {
                c.flags.push(m.meta());
            }
        }
        let mut j = 0;
        for &u in known {
            while j < st.msgs.len() && st.msgs[j].uid < u {
                j += 1;
            }
            if st.msgs.get(j).is_none_or(|m| m.uid != u) {
                c.expunged.push(u);
            }
        }
        c
    }

    /// UIDs expunged after `modseq` (for QRESYNC `VANISHED (EARLIER)`), or
    /// `None` when the bounded log no longer reaches back that far.
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
            let path = {
                let st = self.lock_state();
                let i = st.find(uid).ok_or(StoreError::Expunged)?;
                self.path_of(&st.msgs[i].loc)
            };
            match File::open(&path) {
                Ok(f) => return Ok(f),
                Err(e) if is_enoent(&e) && attempt < 2 => {
                    let mut st = self.lock_state();
                    let Some(i) = st.find(uid) else {
                        return Err(StoreError::Expunged);
                    };
                    let mut rescanned = false;
                    if !self.relocate(&mut st, i, &mut rescanned)? {
                        return Err(StoreError::Expunged);
                    }
                }
                Err(e) if is_enoent(&e) => return Err(StoreError::Expunged),
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Expunged)
    }

    /// Reads the message file as stored (LF or CRLF line ends).
    pub fn read_message(&self, uid: u32) -> Result<Arc<Vec<u8>>> {
        let mut f = self.open_msg(uid)?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        let mut st = self.lock_state();
        if let Some(i) = st.find(uid) {
            if st.msgs[i].size.is_none() {
                st.msgs[i].size = Some(filename::crlf_size(&data));
                st.snapshot = None;
                st.dirty = true;
            }
        }
        Ok(Arc::new(data))
    }

    /// RFC822.SIZE, computing (and remembering) it from the file if needed.
    pub fn rfc822_size(&self, uid: u32) -> Result<u64> {
        {
            let st = self.lock_state();
            let i = st.find(uid).ok_or(StoreError::Expunged)?;
            if let Some(s) = st.msgs[i].size {
                return Ok(s);
            }
        }
        let data = self.read_message(uid)?;
        Ok(filename::crlf_size(&data))
    }

    /// A cached ENVELOPE/BODYSTRUCTURE/BODY (the first call loads
    /// `nestbox.cache`).
    pub fn cached(&self, uid: u32, field: CacheField) -> Option<Arc<[u8]>> {
        let mut st = self.lock_state();
        self.load_cache(&mut st);
        st.cache.as_ref()?.get(&(uid, field_no(field))).cloned()
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
            self.flush_cache(&mut st);
        }
    }

    /// Saves the keyword table if rendering flags assigned new letters.
    fn save_keywords_if(&self, st: &mut State, before: &Keywords) -> Result<()> {
        if st.keywords != *before {
            st.keywords.save(&self.dir)?;
            st.kw_mtime = fs::metadata(self.dir.join(keywords::FILE))
                .ok()
                .map(|m| mtime_ns(&m));
        }
        Ok(())
    }

    /// Changes the flags of the given UIDs (renames within `cur/`). UIDs no
    /// longer present are skipped. Returns the messages whose flags changed
    /// with their new flags and modseqs; with `unchanged_since`, messages
    /// whose modseq is higher are left alone and returned in the second list.
    pub fn store_flags(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<MessageMeta>, Vec<u32>)> {
        let mut st = self.lock_state();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut any = false;
        let mut rescanned = false;
        for &uid in uids {
            let Some(i) = st.find(uid) else { continue };
            if unchanged_since.is_some_and(|m| st.msgs[i].modseq > m) {
                failed.push(uid);
                continue;
            }
            if let Some(meta) = self.apply_flags(&mut st, i, op, flags, &mut rescanned)? {
                done.push(meta);
                any = true;
            }
        }
        if any {
            self.changed(&mut st);
        }
        Ok((done, failed))
    }

    /// Applies a STORE to message `i` by renaming its file (moving it out of
    /// `new/` if it is still there). If the file was renamed by someone else
    /// meanwhile, the flags are recomputed from its new name, so their change
    /// is kept. `None` if nothing changed or the file is gone.
    fn apply_flags(
        &self,
        st: &mut State,
        i: usize,
        op: FlagOp,
        flags: &Flags,
        rescanned: &mut bool,
    ) -> Result<Option<MessageMeta>> {
        for _ in 0..3 {
            let mut new_flags = st.msgs[i].flags.clone();
            if !new_flags.apply(op, flags) {
                return Ok(None);
            }
            let before = st.keywords.clone();
            let other = st.msgs[i].other.clone();
            let (info, extra) = filename::render_info(&new_flags, &other, &mut st.keywords);
            self.save_keywords_if(st, &before)?;
            let m = &st.msgs[i];
            let to = Loc {
                in_new: false,
                fname: filename::cur_name(&m.base, &info),
            };
            let renamed = if m.loc == to {
                Ok(())
            } else {
                super::rename_noreplace(&self.path_of(&m.loc), &self.path_of(&to))
            };
            match renamed {
                Ok(()) => {
                    st.highest_modseq += 1;
                    let modseq = st.highest_modseq;
                    let m = &mut st.msgs[i];
                    m.loc = to;
                    m.flags = new_flags;
                    m.extra_kw = extra;
                    m.modseq = modseq;
                    return Ok(Some(m.meta()));
                }
                Err(e) if is_enoent(&e) => {
                    if !self.relocate(st, i, rescanned)? {
                        // Gone, or out of sight: the next sync decides.
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // A duplicate holds that name; the next sync gives it a
                    // name of its own. Skip this message for now.
                    tracing::info!(dir = %self.dir.display(), "flag rename blocked by a duplicate");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Removes messages flagged `\Deleted` (only those in `uids` if given).
    pub fn expunge(&self, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        let mut st = self.lock_state();
        let wanted: Option<HashSet<u32>> = uids.map(|u| u.iter().copied().collect());
        let candidates: Vec<u32> = st
            .msgs
            .iter()
            .filter(|m| {
                m.flags.has(sys::DELETED) && wanted.as_ref().is_none_or(|w| w.contains(&m.uid))
            })
            .map(|m| m.uid)
            .collect();
        let mut gone = Vec::new();
        let mut freed: u64 = 0;
        let mut failure: Option<StoreError> = None;
        let mut rescanned = false;
        'each: for uid in candidates {
            let Some(mut i) = st.find(uid) else { continue };
            for _ in 0..3 {
                let path = self.path_of(&st.msgs[i].loc);
                // Quota counts physical sizes: `,S=` or the file's length.
                let size = filename::size_fields(&st.msgs[i].base)
                    .0
                    .or_else(|| fs::metadata(&path).ok().map(|m| m.len()));
                match fs::remove_file(&path) {
                    Ok(()) => {
                        freed += size.unwrap_or(0);
                        gone.push(uid);
                        break;
                    }
                    Err(e) if is_enoent(&e) => {
                        // Not found again: maybe gone, maybe out of sight;
                        // only a sync may turn that into an expunge.
                        if !self.relocate(&mut st, i, &mut rescanned)? {
                            break;
                        }
                        // Someone un-deleted it meanwhile: keep it.
                        if !st.msgs[i].flags.has(sys::DELETED) {
                            break;
                        }
                    }
                    Err(e) => {
                        // Report what is already unlinked, then the error.
                        failure = Some(e.into());
                        break 'each;
                    }
                }
                i = match st.find(uid) {
                    Some(i) => i,
                    None => break,
                };
            }
        }
        gone.sort_unstable();
        if !gone.is_empty() {
            self.record_expunges(&mut st, &gone);
            self.changed(&mut st);
        }
        drop(st);
        self.record_quota(-(freed as i64), -(gone.len() as i64));
        match failure {
            Some(e) => Err(e),
            None => Ok(gone),
        }
    }

    /// `OverQuota` if saving `bytes` in `count` messages would pass the
    /// Maildir++ quota (when there is one).
    fn check_quota(&self, bytes: u64, count: u64) -> Result<()> {
        match super::quota::load(&self.root)? {
            Some(q) if !q.allows(bytes, count) => Err(StoreError::OverQuota),
            _ => Ok(()),
        }
    }

    /// Notes a change in `maildirsize`. A failure only makes the totals
    /// drift until the next recount, so it is logged, not returned.
    fn record_quota(&self, bytes: i64, count: i64) {
        if let Err(e) = super::quota::record(&self.root, bytes, count) {
            tracing::warn!(root = %self.root.display(), error = %e, "cannot update maildirsize");
        }
    }

    /// Creates a file in `tmp/` with the folder's file mode.
    fn create_tmp(&self, base: &str) -> io::Result<(PathBuf, File)> {
        let path = self.dir.join("tmp").join(base);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.file_mode)
            .open(&path)?;
        Ok((path, f))
    }

    /// Saves a new message (tmp/, fsync, rename into `cur/` with its flags,
    /// fsync the directory, uidlist record) and returns its UID, all before
    /// returning. `internal_date` sets the mtime (INTERNALDATE).
    pub fn append(&self, data: &[u8], flags: &Flags, internal_date: Option<i64>) -> Result<u32> {
        self.check_quota(data.len() as u64, 1)?;
        let base = format!(
            "{},S={},W={}",
            filename::unique_base(),
            data.len(),
            filename::crlf_size(data)
        );
        let (tmp, mut f) = self.create_tmp(&base)?;
        let written = (|| {
            f.write_all(data)?;
            if self.fsync {
                f.sync_all()?;
            }
            if let Some(t) = internal_date {
                filetime::set_file_handle_times(
                    &f,
                    None,
                    Some(filetime::FileTime::from_unix_time(t, 0)),
                )?;
            }
            f.metadata()
        })();
        let meta = match written {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
        };
        drop(f);
        let r = self.commit_tmp(vec![(
            tmp.clone(),
            base,
            flags.clone(),
            String::new(),
            meta.mtime(),
        )]);
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let uid = r?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Cannot("append failed".into()))?;
        self.record_quota(data.len() as i64, 1);
        Ok(uid)
    }

    /// Moves prepared files from `tmp/` into `cur/` under the uidlist lock and
    /// numbers them, in order. Each item: tmp path, base name, flags, other
    /// letters, mtime.
    fn commit_tmp(&self, items: Vec<(PathBuf, String, Flags, String, i64)>) -> Result<Vec<u32>> {
        let mut st = self.lock_state();
        let before = st.keywords.clone();
        let mut prepared = Vec::with_capacity(items.len());
        for (tmp, base, flags, other, mtime) in items {
            let (info, extra) = filename::render_info(&flags, &other, &mut st.keywords);
            prepared.push((tmp, base, flags, info, extra, mtime));
        }
        self.save_keywords_if(&mut st, &before)?;
        let _lock = uidlist::lock(&self.dir, self.lock_stale_after)?;
        self.refresh_uidlist(&mut st)?;
        let first_uid = st.next_uid;
        let mut recs = Vec::new();
        let mut done: Vec<(u32, PathBuf)> = Vec::new();
        let mut failure = None;
        for (tmp, base, flags, info, extra, mtime) in prepared {
            let uid = st.next_uid;
            let Some(next) = st.next_uid.checked_add(1) else {
                failure = Some(StoreError::Cannot("UID space exhausted".into()));
                break;
            };
            let loc = Loc {
                in_new: false,
                fname: filename::cur_name(&base, &info),
            };
            let path = self.path_of(&loc);
            if let Err(e) = super::rename_noreplace(&tmp, &path) {
                failure = Some(e.into());
                break;
            }
            st.next_uid = next;
            let ino = fs::symlink_metadata(&path).map_or(0, |m| m.ino());
            done.push((uid, path));
            let (_, w) = filename::size_fields(&base);
            recs.push(Record {
                uid,
                base: base.clone(),
                size: None,
                vsize: w,
                extra: Vec::new(),
            });
            st.highest_modseq += 1;
            let modseq = st.highest_modseq;
            let Info { other, .. } = filename::parse_info(&info, &st.keywords);
            st.by_base.insert(base.clone(), uid);
            let m = Msg {
                uid,
                base,
                loc,
                flags,
                other,
                extra_kw: extra,
                mtime,
                size: w,
                modseq,
                ino,
            };
            match st.msgs.binary_search_by_key(&uid, |m| m.uid) {
                Ok(i) => st.msgs[i] = m,
                Err(i) => st.msgs.insert(i, m),
            }
        }
        if failure.is_none() {
            if let Err(e) = self.write_records(&mut st, recs) {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            // All or nothing (RFC 9051 §6.4.7): take back what was placed.
            // Nobody has seen these UIDs, so they may be handed out again.
            let uids: Vec<u32> = done.iter().map(|(u, _)| *u).collect();
            for (_, path) in done {
                let _ = fs::remove_file(path);
            }
            let State { msgs, by_base, .. } = &mut *st;
            msgs.retain(|m| {
                let keep = !uids.contains(&m.uid);
                if !keep {
                    by_base.remove(&m.base);
                }
                keep
            });
            st.next_uid = first_uid;
            return Err(e);
        }
        drop(_lock);
        let uids: Vec<u32> = done.into_iter().map(|(u, _)| u).collect();
        st.recent.extend_from_slice(&uids);
        if self.fsync {
            super::fsync_dir(&self.dir.join("cur"))?;
        }
        self.changed(&mut st);
        Ok(uids)
    }

    /// Snapshot of what copying/moving needs from the source, in UID order.
    fn sources(&self, uids: &[u32]) -> Vec<(u32, String, Loc, Flags, String, i64)> {
        let st = self.lock_state();
        let mut wanted: Vec<u32> = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .filter_map(|u| st.find(u).map(|i| &st.msgs[i]))
            .map(|m| {
                (
                    m.uid,
                    m.base.clone(),
                    m.loc.clone(),
                    m.flags.clone(),
                    m.other.clone(),
                    m.mtime,
                )
            })
            .collect()
    }

    /// Copies messages into `dest` (hard link, else a byte copy; fsynced),
    /// keeping flags (keyword letters remapped to `dest`'s table) and
    /// INTERNALDATE. Returns `(source uid, dest uid)` pairs, ascending by
    /// source; messages already gone are left out. All or nothing.
    pub fn copy_to(&self, uids: &[u32], dest: &Folder) -> Result<Vec<(u32, u32)>> {
        let mut items = Vec::new();
        let mut src_uids = Vec::new();
        let result = (|| -> Result<()> {
            for (uid, base, loc, flags, other, mtime) in self.sources(uids) {
                let fresh = filename::fresh_base_like(&base);
                let tmp = dest.dir.join("tmp").join(&fresh);
                let mut src = self.path_of(&loc);
                let mut ok = false;
                for _ in 0..3 {
                    match fs::hard_link(&src, &tmp) {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(e) if is_enoent(&e) => match self.locate(&base)? {
                            Some(l) => src = self.path_of(&l),
                            None => break,
                        },
                        Err(_) => {
                            // EXDEV, EPERM (no links on this fs)...: copy bytes.
                            ok = self.copy_bytes(uid, dest, &fresh, mtime)?;
                            break;
                        }
                    }
                }
                if ok {
                    items.push((tmp, fresh, flags, other, mtime));
                    src_uids.push(uid);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            for (tmp, ..) in &items {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
        let tmps: Vec<PathBuf> = items.iter().map(|i| i.0.clone()).collect();
        let bytes: u64 = tmps
            .iter()
            .filter_map(|t| fs::metadata(t).ok())
            .map(|m| m.len())
            .sum();
        if let Err(e) = dest.check_quota(bytes, tmps.len() as u64) {
            for t in &tmps {
                let _ = fs::remove_file(t);
            }
            return Err(e);
        }
        match dest.commit_tmp(items) {
            Ok(dest_uids) => {
                dest.record_quota(bytes as i64, dest_uids.len() as i64);
                Ok(src_uids.into_iter().zip(dest_uids).collect())
            }
            Err(e) => {
                for t in tmps {
                    let _ = fs::remove_file(t);
                }
                Err(e)
            }
        }
    }

    /// Copies a message's bytes into `dest`'s `tmp/` as `fresh`, keeping its
    /// mtime. `false` if the message is gone.
    fn copy_bytes(&self, uid: u32, dest: &Folder, fresh: &str, mtime: i64) -> Result<bool> {
        let data = match self.read_message(uid) {
            Ok(d) => d,
            Err(StoreError::Expunged) => return Ok(false),
            Err(e) => return Err(e),
        };
        let (path, mut f) = dest.create_tmp(fresh)?;
        let written = (|| {
            f.write_all(&data)?;
            if dest.fsync {
                f.sync_all()?;
            }
            let t = filetime::FileTime::from_unix_time(mtime, 0);
            filetime::set_file_handle_times(&f, None, Some(t))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        Ok(true)
    }

    /// Moves messages into `dest` by rename (atomic: never in both or
    /// neither), then drops them here as expunged.
    pub fn move_to(&self, uids: &[u32], dest: &Folder) -> Result<Vec<(u32, u32)>> {
        if std::ptr::eq(self, dest) {
            return Err(StoreError::Cannot(
                "source and destination are the same mailbox".into(),
            ));
        }
        let sources = self.sources(uids);
        let mut dst = dest.lock_state();
        let before = dst.keywords.clone();
        let mut planned = Vec::new();
        for (uid, base, loc, flags, other, mtime) in sources {
            let (info, extra) = filename::render_info(&flags, &other, &mut dst.keywords);
            // A fresh base name: the old one may still be listed in the
            // destination's uidlist from an earlier visit, with an old UID.
            let fresh = filename::fresh_base_like(&base);
            planned.push((uid, base, loc, flags, info, extra, mtime, fresh));
        }
        dest.save_keywords_if(&mut dst, &before)?;
        let _lock = uidlist::lock(&dest.dir, dest.lock_stale_after)?;
        dest.refresh_uidlist(&mut dst)?;
        let mut pairs = Vec::new();
        let mut recs = Vec::new();
        let mut moved_src = Vec::new();
        let mut failure: Option<StoreError> = None;
        for (uid, base, loc, flags, info, extra, mtime, fresh) in planned {
            let to = Loc {
                in_new: false,
                fname: filename::cur_name(&fresh, &info),
            };
            let mut from = self.path_of(&loc);
            let mut ok = false;
            for _ in 0..3 {
                match super::rename_noreplace(&from, &dest.path_of(&to)) {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(e) if is_enoent(&e) => match self.locate(&base)? {
                        Some(l) => from = self.path_of(&l),
                        None => break,
                    },
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                        failure = Some(StoreError::Cannot(
                            "folders on different file systems: use COPY and EXPUNGE".into(),
                        ));
                        break;
                    }
                    Err(e) => {
                        failure = Some(e.into());
                        break;
                    }
                }
            }
            if failure.is_some() {
                // What moved so far is recorded below; nothing is lost.
                break;
            }
            if !ok {
                continue;
            }
            let new_uid = dst.next_uid;
            dst.next_uid = dst.next_uid.saturating_add(1);
            let (_, w) = filename::size_fields(&fresh);
            recs.push(Record {
                uid: new_uid,
                base: fresh.clone(),
                size: None,
                vsize: w,
                extra: Vec::new(),
            });
            dst.highest_modseq += 1;
            let modseq = dst.highest_modseq;
            let Info { other, .. } = filename::parse_info(&info, &dst.keywords);
            dst.by_base.insert(fresh.clone(), new_uid);
            let ino = fs::symlink_metadata(dest.path_of(&to)).map_or(0, |m| m.ino());
            let m = Msg {
                uid: new_uid,
                base: fresh,
                loc: to,
                flags,
                other,
                extra_kw: extra,
                mtime,
                size: w,
                modseq,
                ino,
            };
            match dst.msgs.binary_search_by_key(&new_uid, |m| m.uid) {
                Ok(i) => dst.msgs[i] = m,
                Err(i) => dst.msgs.insert(i, m),
            }
            dst.recent.push(new_uid);
            pairs.push((uid, new_uid));
            moved_src.push(uid);
        }
        let wrote = dest.write_records(&mut dst, recs);
        drop(_lock);
        if dest.fsync {
            super::fsync_dir(&dest.dir.join("cur"))?;
            super::fsync_dir(&self.dir.join("cur"))?;
        }
        if !pairs.is_empty() {
            dest.changed(&mut dst);
        }
        drop(dst);
        if !moved_src.is_empty() {
            let mut st = self.lock_state();
            self.record_expunges(&mut st, &moved_src);
            self.changed(&mut st);
        }
        wrote?;
        match failure {
            Some(e) => Err(e),
            None => Ok(pairs),
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
                    .filter(|m| m.size.is_none())
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
            size: st.msgs.iter().filter_map(|m| m.size).sum(),
            highest_modseq: st.highest_modseq,
        };
        Ok(s)
    }

    /// Every UID, ascending (for moving all of INBOX on RENAME).
    pub(crate) fn all_uids(&self) -> Vec<u32> {
        self.lock_state().msgs.iter().map(|m| m.uid).collect()
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let mut st = self.lock_state();
        // Only if the directory is still the one we loaded: after a DELETE
        // or RENAME a new folder may live at this path.
        let same_uidlist = fs::metadata(self.dir.join(uidlist::FILE))
            .is_ok_and(|m| st.ul_stamp.is_some_and(|s| s.ino == m.ino()));
        if st.synced_once && same_uidlist {
            self.flush_cache(&mut st);
            if st.dirty || !st.index_clean {
                self.write_index(&mut st, true);
            }
        }
    }
}

impl State {
    fn find(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }
}

fn corrupt(what: &str, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::InvalidData {
        StoreError::Corrupt {
            what: what.into(),
            detail: e.to_string(),
        }
    } else {
        StoreError::Io(e)
    }
}

fn dir_mtime(dir: &Path) -> Result<i128> {
    match fs::metadata(dir) {
        Ok(m) => Ok(mtime_ns(&m)),
        Err(e) if is_enoent(&e) => Err(StoreError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Creates the uidlist of a folder that has none: imported from Courier's
/// `courierimapuiddb` if there is one, else empty with a UIDVALIDITY above
/// `last_uidvalidity` (the one our index remembers, if any).
fn create_uidlist(
    dir: &Path,
    last_uidvalidity: u32,
    fsync: bool,
    stale: Duration,
) -> Result<(Uidlist, FileStamp)> {
    let _lock = uidlist::lock(dir, stale)?;
    // Someone may have created it while we waited for the lock.
    if let Some(x) = Uidlist::load(dir).map_err(|e| corrupt("uidlist", e))? {
        return Ok(x);
    }
    let courier = match fs::read(dir.join(uidlist::COURIER)) {
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
    Ok((ul, stamp))
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
fn clean_tmp(tmp: &Path) {
    let Ok(rd) = fs::read_dir(tmp) else { return };
    let now = SystemTime::now();
    for entry in rd.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        // ctime, not mtime: an APPEND in progress may already carry an old
        // INTERNALDATE as its mtime.
        let changed = UNIX_EPOCH + Duration::from_secs(meta.ctime().max(0) as u64);
        let old = now
            .duration_since(changed)
            .is_ok_and(|age| age > TMP_DEBRIS_AGE);
        if old && meta.is_file() {
            let _ = fs::remove_file(entry.path());
        }
    }
}
