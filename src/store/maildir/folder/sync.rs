//! Reconciling a folder's state with `new/`, `cur/` and the uidlist.

//! Owns scanning, duplicate resolution and the decision that a message is
//! expunged; giving new files UIDs and writing the records is `numbering`'s.
//! It must never report an expunge it has not confirmed.

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
//!   ever unlinked to "resolve" a duplicate. The one that keeps the UID is
//!   the file the UID had at the last scan, known by its inode, which every
//!   scan refreshes (the base name is the identity, so the file behind it
//!   may have been replaced; a stale inode number may meanwhile belong to
//!   a newcomer, as file systems reuse freed numbers at once).
//! - **Several changes within one timestamp tick**: a scan is skipped only
//!   when both directory mtimes (nanoseconds) are unchanged *and* were
//!   already more than a second old when we last scanned.
//! - **Other writers assigning UIDs** (dovecot-lda, doveadm): UIDs are
//!   assigned only under the uidlist dotlock, after re-reading what others
//!   appended; a base name another process already numbered keeps its UID.
//! - **The uidlist rewritten with another UIDVALIDITY** (`doveadm force-resync`
//!   after a loss): the folder starts over: every old UID is expunged and the
//!   session sees the new UIDVALIDITY (it must then drop the client).

// FxHash: keys are our own base names and UIDs (see Cargo.toml).
use hashbrown::hash_table::Entry;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::io;
use std::time::{Duration, Instant};

use crate::store::beneath::Dir;
use crate::store::{Result, StoreError};

use super::super::dotlock;
use super::super::filename::{self, Info};
use super::super::keywords::{self, Keywords};
use super::super::uidlist::{self, FileStamp, Record};
use super::by_base::{FileNamed, Names, base_of};
use super::{
    EXPUNGE_LOG_MAX, Folder, Loc, Msg, NO_SIZE, State, corrupt, dir_mtime, is_enoent, mtime_ns,
    now_ns, rare,
};

/// How long a session's sync waits for the change watcher's round
/// ([`Folder::catch_up`]) before it reads the directories itself.
const CATCH_UP_FOR: Duration = Duration::from_millis(50);

/// Folders with fewer messages read their directories rather than wait:
/// below this a read of `cur/` takes less than a watcher round (a few ms).
const CATCH_UP_FROM: usize = 5_000;

/// One file a scan saw: where, and the inode number `readdir` reported
/// (`d_ino`, free: no `stat` per file).
#[derive(Clone, Debug)]
pub(super) struct Seen {
    loc: Loc,
    ino: u64,
}

impl FileNamed for Seen {
    fn file_name(&self) -> &str {
        &self.loc.fname
    }
}

/// How long before a scan's start a directory's mtime must lie for the scan
/// to be sure it saw every change stamped with that mtime: a change in the
/// same timestamp tick after the scan read the directory would leave the
/// mtime as it was. Sub-second timestamps (nanoseconds present: ext4, xfs,
/// btrfs, tmpfs) tick with the kernel's coarse clock, at most 10 ms, so
/// 50 ms is ample; whole-second ones (ext3, some network file systems; FAT
/// ticks every 2 s) need 2 s. The margin decides how soon after a change a
/// folder can be opened without reading its directories again.
fn tick_margin(mtime_ns: i128) -> i128 {
    if mtime_ns % 1_000_000_000 != 0 {
        50_000_000
    } else {
        2_000_000_000
    }
}

/// The full-precision mtimes of a folder's `new/` and `cur/` (see
/// [`Folder::sync_for_watcher`]), and when they were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirStamp {
    new: i128,
    cur: i128,
    /// Taken just before the mtimes were read (ns since the epoch).
    read_at: i128,
}

/// One change of an entry of `new/` or `cur/`, as the change watcher saw
/// it (see [`Folder::sync_for_watcher`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryEvent {
    /// In `new/` (else `cur/`).
    pub in_new: bool,
    /// The entry's file name.
    pub name: String,
    /// The name went away (unlinked or renamed away); otherwise it appeared.
    pub gone: bool,
}

/// What a scan found: base name -> file. A base name with more than one
/// file (a duplicate, or a file seen in both directories mid-move) is kept
/// apart in `more`, with all its files, so the usual case costs one table
/// entry and no list per file. `one` holds no copy of the names (see
/// `by_base`).
#[derive(Default)]
pub(super) struct Scan {
    one: Names<Seen>,
    more: HashMap<String, Vec<Seen>>,
}

impl Scan {
    fn with_capacity(n: usize) -> Scan {
        Scan {
            one: Names::with_capacity(n),
            more: HashMap::default(),
        }
    }

    fn insert(&mut self, s: Seen) {
        // Duplicates are rare: no lookup in `more` while it is empty, and
        // one hash of the name for the usual new entry.
        if !self.more.is_empty()
            && let Some(v) = self.more.get_mut(s.base())
        {
            if !v.iter().any(|x| x.loc == s.loc) {
                v.push(s);
            }
            return;
        }
        match self.one.entry(s.base()) {
            Entry::Vacant(e) => {
                e.insert(s);
            }
            Entry::Occupied(e) if e.get().loc == s.loc => {}
            Entry::Occupied(e) => {
                let (first, _) = e.remove();
                self.more.insert(s.base().to_string(), vec![first, s]);
            }
        }
    }

    /// Every file seen for `base`.
    fn get(&self, base: &str) -> &[Seen] {
        match self.one.get(base) {
            Some(s) => std::slice::from_ref(s),
            None => self.more.get(base).map_or(&[], |v| v.as_slice()),
        }
    }
}

/// Reads a directory into `out`, skipping dot files.
/// Names that are not UTF-8 are not Maildir messages we can track.
pub(super) fn read_dir_into(dir: &Dir, in_new: bool, out: &mut Scan) -> io::Result<()> {
    dir.for_each_entry(|e| {
        // Only regular files are messages (the type comes with the entry on
        // most file systems; where it does not, this is one lstat): a
        // symlink is not one.
        if e.name.starts_with('.') || !e.is_file || base_of(e.name).is_empty() {
            return Ok(());
        }
        out.insert(Seen {
            loc: Loc {
                in_new,
                fname: e.name.to_string(),
            },
            ino: e.ino,
        });
        Ok(())
    })
}

impl Folder {
    /// Rescans `new/` and `cur/` and reconciles with the uidlist; see the
    /// module doc for the races handled. With `move_new`, files in `new/`
    /// move to `cur/` and become claimable as \Recent.
    pub fn sync(&self, move_new: bool) -> Result<()> {
        let mut st = self.catch_up(self.lock_state());
        // No index was loaded: this is the first scan of the folder.
        let cold = !st.synced_once && st.scan_time == 0;
        let changed = self.sync_locked(&mut st, move_new, true)?;
        if changed {
            self.changed(&mut st);
        }
        if cold {
            // The session that opens a folder cold waits for this sync;
            // the index (about 110 bytes a message, a cache: the uidlist
            // already holds the UIDs) is written by a later sync or when
            // the folder closes, not while it waits.
            st.last_index_write.get_or_insert_with(Instant::now);
        }
        let jobs = self.persist_jobs(&mut st);
        drop(st);
        self.persist(jobs);
        Ok(())
    }

    /// Waits, for a big folder whose change watcher reports every change
    /// by name, until the watcher has applied what the directories show,
    /// instead of letting the sync read them. The case: a session of ours
    /// changed `cur/` (an APPEND, a flag rename, an expunge) a few
    /// milliseconds ago and the watcher's round for it has not run yet, so
    /// its stamp does not cover `cur/`'s mtime and `sync_locked` would read
    /// all of `cur/` (150 ms at 100,000 messages; a phone resyncing right
    /// after a laptop changed the folder met it one time in four) for
    /// changes the state already holds. A round takes a few milliseconds.
    /// Bounded by [`CATCH_UP_FOR`]; under a stream of changes that keeps
    /// the stamp behind, the sync reads the directories as before. Small
    /// folders read theirs at once: that is cheaper than any wait.
    fn catch_up<'a>(
        &'a self,
        mut st: std::sync::MutexGuard<'a, State>,
    ) -> std::sync::MutexGuard<'a, State> {
        let deadline = Instant::now() + CATCH_UP_FOR;
        loop {
            if !st.synced_once
                || st.msgs.len() < CATCH_UP_FROM
                || !self.events_live.load(std::sync::atomic::Ordering::Acquire)
            {
                return st;
            }
            let (Ok(new_m), Ok(cur_m)) = (dir_mtime(&self.dirs().new), dir_mtime(&self.dirs().cur))
            else {
                return st;
            };
            if st
                .watcher_stamp
                .is_some_and(|s| s.new == new_m && s.cur == cur_m)
            {
                return st;
            }
            let mut rounds = self
                .watcher_rounds
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let seen = *rounds;
            drop(st);
            while *rounds == seen {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    drop(rounds);
                    return self.lock_state();
                }
                rounds = self
                    .watcher_round
                    .wait_timeout(rounds, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            drop(rounds);
            st = self.lock_state();
        }
    }

    /// Brings the folder up to date for a write into it (APPEND, the
    /// destination of COPY and MOVE) without reading its directories once
    /// it has been scanned: a message saved here is numbered under the
    /// uidlist lock from the uidlist itself (`commit_tmp` re-reads what
    /// others appended to it), so nothing in `new/` or `cur/` is needed
    /// for a correct UID, and messages others added meanwhile are numbered
    /// by the change watcher or the next sync of a session, after ours
    /// (UIDs follow numbering, not arrival). Reading the directory on every
    /// APPEND made an upload quadratic: each save changes `cur/`, so the
    /// next one found it unsettled and read all of it again (mbsync pushing
    /// 8,000 messages: 40 s against Dovecot's 13). What it still does: the
    /// folder must exist (a deleted one says `NotFound`), and the keywords
    /// and uidlist are refreshed as by any sync. A folder never scanned yet
    /// gets its one full sync.
    pub fn sync_for_write(&self) -> Result<()> {
        let mut st = self.lock_state();
        if !st.synced_once {
            drop(st);
            return self.sync(false);
        }
        if self.sync_preamble(&mut st)? {
            self.changed(&mut st);
        }
        Ok(())
    }

    /// The sync the change watcher runs on every burst of events
    /// (`store::live`). It never moves `new/` to `cur/` (that would change
    /// `cur/` and make the next delivery re-read all of it); instead, while a
    /// session has the folder selected read-write, messages arriving in
    /// `new/` become claimable as \Recent right away, as if that session had
    /// moved them.
    ///
    /// `events` are the entry names of `new/` and `cur/` the watcher
    /// collected since its last call, all of them (inotify, no overflow);
    /// `None`: not known, rescan. With names, only those are looked at, so
    /// the folder's own renames (a `STORE 1:*`, new/ -> cur/) cost no system
    /// call at all and a delivery or another program's flag change costs one
    /// `lstat`, where a rescan of a 100,000-message `cur/` costs about 0.3 s
    /// of CPU. What names alone cannot settle (a file we know that vanished
    /// without a new name for it, a duplicate) falls back to the full,
    /// race-safe scan.
    ///
    /// `stamp`, when given, was read ([`Folder::dir_stamp`]) before those
    /// names were taken, and the watcher had passed a barrier after reading
    /// it (every event of a change made before the stamp was among the
    /// names): afterwards every change the stamp shows is applied, so while
    /// the directories still show it, the syncs of sessions need not read
    /// them (see [`Folder::set_events_live`]). Without a stamp, sessions do.
    ///
    /// It writes nothing of nestbox's own (index, cache): the watcher calls
    /// [`Folder::persist_due`] a moment later, so that the sessions it just
    /// woke find the folder unlocked and the next round is not held up by
    /// an 11 MB index write at 100,000 messages.
    pub fn sync_for_watcher(
        &self,
        events: Option<&[EntryEvent]>,
        stamp: Option<DirStamp>,
    ) -> Result<()> {
        let mut st = self.lock_state();
        if self.is_closed() {
            // The registry let go of it: a round that raced the close
            // changes nothing the close did not write.
            return Ok(());
        }
        let changed = match events {
            Some(ev) if st.synced_once => {
                let mut changed = self.sync_preamble(&mut st)?;
                if !self.apply_entries(&mut st, ev, &mut changed)? {
                    changed |= self.sync_locked(&mut st, false, false)?;
                }
                changed
            }
            _ => self.sync_locked(&mut st, false, false)?,
        };
        // Only messages that arrived since the last look can be fresh: new
        // UIDs are always above every known one. (Walking all messages here
        // cost about 1.8 ms per delivery at 100,000, on the IDLE push path.)
        let from = st.msgs.partition_point(|m| m.uid < st.recent_checked_to);
        if self.has_rw_holders() {
            let fresh: Vec<u32> = st.msgs[from..]
                .iter()
                .filter(|m| m.loc.in_new && !st.recent_in_new.contains(&m.uid))
                .map(|m| m.uid)
                .collect();
            st.recent_in_new.extend(fresh.iter().copied());
            st.recent.extend(fresh);
        }
        // Without a read-write holder they are not claimed here; the SELECT
        // that makes one moves them to cur/ and hands them out then.
        st.recent_checked_to = st.msgs.last().map_or(0, |m| m.uid.saturating_add(1));
        if changed {
            self.changed(&mut st);
        }
        // Only a stamp vouched for by this very sync is trusted.
        st.watcher_stamp = stamp;
        {
            let mut rounds = self
                .watcher_rounds
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *rounds += 1;
            self.watcher_round.notify_all();
        }
        if let Some(s) = stamp {
            // Every change up to the stamp is applied now: the state is
            // what a full scan started when the stamp was read would have
            // found. Recorded as that scan, the index written later lets
            // the next process trust it too instead of reading the whole
            // directory again (after a STORE 1:* the folder's own renames
            // leave `cur/` newer than its last scan). Trusting it needs
            // mtimes settled by then, as for any scan (`sync_locked`); the
            // watcher's quiet round (`store::live`) supplies a stamp read
            // well after a burst of changes.
            if s.read_at > st.scan_time {
                st.new_mtime = s.new;
                st.cur_mtime = s.cur;
                st.scan_time = s.read_at;
            }
        }
        Ok(())
    }

    /// The mtimes of `new/` and `cur/` now, for [`Folder::sync_for_watcher`].
    pub fn dir_stamp(&self) -> Result<DirStamp> {
        let read_at = now_ns();
        Ok(DirStamp {
            new: dir_mtime(&self.dirs().new)?,
            cur: dir_mtime(&self.dirs().cur)?,
            read_at,
        })
    }

    /// Tests only: the watcher's rescan ([`Folder::sync_for_watcher`] with
    /// no names and no stamp), writing the index and cache at once instead
    /// of leaving that to [`Folder::persist_due`].
    #[cfg(test)]
    pub(crate) fn sync_watched(&self) -> Result<()> {
        self.sync_for_watcher(None, None)?;
        self.persist_due();
        Ok(())
    }

    /// Tests only: [`Folder::sync_for_watcher`] with these names and no
    /// stamp, writing the index and cache at once.
    #[cfg(test)]
    pub(crate) fn sync_entries(&self, events: &[EntryEvent]) -> Result<()> {
        self.sync_for_watcher(Some(events), None)?;
        self.persist_due();
        Ok(())
    }

    /// What every sync checks first, cheaply: the folder still exists, the
    /// keyword table and the uidlist as other programs left them.
    fn sync_preamble(&self, st: &mut State) -> Result<bool> {
        // Deleted or renamed away: say so before touching anything inside.
        self.check_in_place()?;
        let mut changed = false;
        // Keywords first: file names are read with them.
        let kw_mtime = self
            .dirs()
            .dir
            .stat(keywords::FILE)
            .ok()
            .map(|m| mtime_ns(&m));
        if kw_mtime != st.kw_mtime {
            st.keywords = Keywords::load(&self.dirs().dir)?;
            st.kw_mtime = kw_mtime;
            // A letter read before its name was in the table now has one.
            for i in 0..st.msgs.len() {
                if st.msgs[i].other().bytes().any(|b| b.is_ascii_lowercase()) {
                    let loc = st.msgs[i].loc.clone();
                    changed |= self.update_loc(st, i, loc);
                }
            }
        }
        if self.refresh_uidlist(st)? {
            changed = true;
        }
        if st.ul_stamp.is_none() {
            self.restore_uidlist(st)?;
        }
        Ok(changed)
    }

    /// Applies entry events (see [`Folder::sync_for_watcher`]). Returns false
    /// when they cannot settle the folder's state and a scan must.
    fn apply_entries(
        &self,
        st: &mut State,
        events: &[EntryEvent],
        changed: &mut bool,
    ) -> Result<bool> {
        // Names that appeared and are not where a message of ours is: new
        // files, or another name for one we know (a flag change elsewhere).
        let mut appeared: Vec<Loc> = Vec::new();
        // Messages whose file had a name go away.
        let mut left: Vec<u32> = Vec::new();
        let mut looked: HashSet<(&str, bool, bool)> = HashSet::default();
        for e in events {
            if !looked.insert((e.name.as_str(), e.in_new, e.gone)) || e.name.starts_with('.') {
                continue;
            }
            let base = filename::split(&e.name).0;
            if base.is_empty() {
                continue;
            }
            let here = st
                .find_base(base)
                .filter(|&i| st.msgs[i].loc.in_new == e.in_new && st.msgs[i].loc.fname == e.name);
            match (here, e.gone) {
                // Ours, where we put it: our own rename, link or delivery.
                (Some(_), false) => {}
                (Some(i), true) => left.push(st.msgs[i].uid),
                // A name no message has now went away: a name we renamed
                // away from or unlinked ourselves, or a transient one.
                (None, true) => {}
                (None, false) => appeared.push(Loc {
                    in_new: e.in_new,
                    fname: e.name.clone(),
                }),
            }
        }
        let mut fresh: Names<Seen> = Names::default();
        let mut moved: HashSet<u32> = HashSet::default();
        for loc in appeared {
            let md = match self.stat_loc(&loc) {
                Ok(md) => md,
                // Gone again: its own event says so, or it was transient.
                Err(e) if is_enoent(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            if !md.is_file() {
                continue;
            }
            match st.find_base(base_of(&loc.fname)) {
                Some(i) => {
                    // Another name for a message we know: its own file
                    // renamed (same inode, old name gone, the only new
                    // name for it) is followed; anything else may be a
                    // duplicate or a replacement, which the scan's rules
                    // decide.
                    let m = &st.msgs[i];
                    if m.ino == 0
                        || m.ino != md.ino()
                        || !moved.insert(m.uid)
                        || self.stat_loc(&m.loc).is_ok()
                    {
                        return Ok(false);
                    }
                    if self.update_loc(st, i, loc) {
                        *changed = true;
                    }
                    set_ino(st, i, md.ino());
                }
                None => {
                    if fresh.contains(base_of(&loc.fname)) {
                        return Ok(false);
                    }
                    fresh.insert(Seen { loc, ino: md.ino() });
                }
            }
        }
        for uid in left {
            let Some(i) = st.find(uid) else { continue };
            // Moved within this batch (handled above), or back again.
            if self.stat_loc(&st.msgs[i].loc).is_err() {
                // Deleted, or renamed to a name not reported yet: the scan
                // tells those apart (and looks twice before expunging).
                return Ok(false);
            }
        }
        if self.assign_unknown(st, fresh)? {
            *changed = true;
        }
        Ok(true)
    }

    /// The sync itself. With `trust_events` (a session's sync), a folder
    /// whose watcher reports every entry change ([`Folder::set_events_live`])
    /// reads no directory; the watcher's own syncs pass false.
    pub(super) fn sync_locked(
        &self,
        st: &mut State,
        move_new: bool,
        trust_events: bool,
    ) -> Result<bool> {
        let mut changed = self.sync_preamble(st)?;

        let scan_start = now_ns();
        let new_m = dir_mtime(&self.dirs().new)?;
        let cur_m = dir_mtime(&self.dirs().cur)?;
        let settled = |stored: i128| stored < st.scan_time - tick_margin(stored);
        // A fresh index counts as a previous scan: a warm open of an
        // unchanged folder reads no directory.
        let events_live =
            trust_events && self.events_live.load(std::sync::atomic::Ordering::Acquire);
        // Everything up to the directories' present mtimes is applied by the
        // watcher, which also applies whatever comes next.
        let covered = st
            .watcher_stamp
            .is_some_and(|s| s.new == new_m && s.cur == cur_m);
        let skip = (st.synced_once && events_live && covered)
            || ((st.synced_once || st.scan_time != 0)
                && new_m == st.new_mtime
                && cur_m == st.cur_mtime
                && settled(new_m)
                && settled(cur_m));
        // `cur/` untouched since a full scan that saw it settled: a change
        // can only be in `new/` (the usual delivery).
        let cur_clean =
            st.synced_once && st.scan_time != 0 && cur_m == st.cur_mtime && settled(cur_m);
        if !skip {
            let partial = if cur_clean {
                self.scan_new_only(st)?
            } else {
                None
            };
            match partial {
                Some(added) => {
                    changed |= added;
                    // cur/ was not read: its mtime and the scan time stay
                    // those of the last full scan, which is what `settled`
                    // must be measured against.
                    st.new_mtime = new_m;
                    st.dirty = true;
                }
                None => {
                    if self.scan_and_reconcile(st)? {
                        changed = true;
                    }
                    st.new_mtime = new_m;
                    st.cur_mtime = cur_m;
                    st.scan_time = scan_start;
                    st.dirty = true;
                }
            }
        }
        st.synced_once = true;
        if move_new && self.move_new_to_cur(st)? {
            changed = true;
        }
        Ok(changed)
    }

    /// Picks up uidlist changes by others. Returns whether the folder's
    /// messages changed (only on a UIDVALIDITY change).
    pub(super) fn refresh_uidlist(&self, st: &mut State) -> Result<bool> {
        let meta = match self.dirs().dir.stat(uidlist::FILE) {
            Ok(m) => m,
            Err(e) if is_enoent(&e) => {
                // Lost under us: `sync` rewrites it from our state (same
                // UIDVALIDITY, same UIDs); a UID assignment under the lock
                // does the same.
                st.ul_stamp = None;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let now = FileStamp::of_meta(&meta);
        if let Some(old) = st.ul_stamp {
            if old.ino == now.ino && now.len >= old.len && now.len > 0 {
                if now.len > old.len {
                    let (recs, stamp) =
                        uidlist::read_appended(&self.dirs().dir, old, st.ul_version)?;
                    st.ul_stamp = Some(stamp);
                    self.note_records(st, recs);
                }
                return Ok(false);
            }
        }
        let Some((ul, stamp)) =
            uidlist::Loaded::load(&self.dirs().dir).map_err(|e| corrupt("uidlist", e))?
        else {
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
            self.outside_change();
            st.uidvalidity = ul.uidvalidity;
            st.last_uidvalidity = st.last_uidvalidity.max(ul.uidvalidity);
            // Past every record, as the records are noted below.
            st.next_uid = ul.header_next.max(1);
            st.synced_once = false;
            st.ul_unknown.clear();
            st.cache = None;
            st.cache_pending.clear();
            st.cache_file_entries = usize::MAX;
            st.new_mtime = 0;
            st.cur_mtime = 0;
            for p in ul.lines() {
                st.note_record(&p);
            }
            return Ok(true);
        }
        st.next_uid = st.next_uid.max(ul.header_next);
        st.ul_unknown.clear();
        // A record that disagrees with a message we know is the other
        // writer's mistake: the message keeps its UID.
        for p in ul.lines() {
            st.note_record(&p);
        }
        Ok(false)
    }

    /// The uidlist vanished (someone deleted it): write it back from our
    /// state at once, same UIDVALIDITY and UIDs, before another program
    /// creates a fresh one and renumbers everything.
    pub(super) fn restore_uidlist(&self, st: &mut State) -> Result<()> {
        // The lock's path names the descriptor: the directories must stay
        // open until it is released (declared first, dropped last).
        let lock_dirs = self.dirs();
        let _lock = dotlock::lock(&lock_dirs.dir.lock_path(), self.lock_stale_after)?;
        if self.refresh_uidlist(st)? || st.ul_stamp.is_some() {
            return Ok(());
        }
        tracing::warn!(dir = %self.dir.display(), "uidlist missing; rewriting it from memory");
        self.write_full_uidlist(st, std::iter::empty())
    }

    /// Takes in records another writer appended. One for a message we
    /// know under the same UID gives its extension fields, as a later
    /// line for the same record does in Dovecot's reader.
    pub(super) fn note_records(&self, st: &mut State, recs: Vec<Record>) {
        for r in recs {
            st.next_uid = st.next_uid.max(r.uid.saturating_add(1));
            match st.uid_of_base(&r.base) {
                None => {
                    st.ul_unknown.insert(r.base.clone(), r);
                }
                Some(u) if u == r.uid => {
                    st.take_record_fields(u, r.extra.split(' ').filter(|x| !x.is_empty()));
                }
                Some(_) => {}
            }
        }
    }

    pub(super) fn scan(&self) -> Result<Scan> {
        // A directory's size tracks its entries (ext4: about 115 bytes each
        // for Maildir names, more after deletions, as directories never
        // shrink): room for that many, capped against file systems that
        // count differently. Only a guess: the table grows if it is short.
        let dir_bytes: u64 = [&self.dirs().new, &self.dirs().cur]
            .iter()
            .filter_map(|d| d.meta().ok())
            .map(|m| m.len())
            .sum();
        let mut found = Scan::with_capacity((dir_bytes / 112).min(1 << 20) as usize);
        // new/ before cur/: a file moving from new/ to cur/ during the scan
        // is then seen at least once (maybe twice, handled as a duplicate).
        for in_new in [true, false] {
            self.dir_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match read_dir_into(self.dirs().sub(in_new), in_new, &mut found) {
                Ok(()) => {}
                Err(e) if is_enoent(&e) => return Err(StoreError::NotFound),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(found)
    }

    /// Chooses one file per base name; real duplicates get fresh base
    /// names (returned as extra entries).
    pub(super) fn resolve(
        &self,
        st: &State,
        base: &str,
        mut files: Vec<Seen>,
        out: &mut Names<Seen>,
    ) {
        if files.len() == 1 {
            if let Some(f) = files.pop() {
                out.insert(f);
            }
            return;
        }
        // Which of them really exist right now, and which is the file we
        // know (same inode: renames keep it; the inode is refreshed on every
        // scan, so it is the file this UID had at our last look)?
        let known = st.find_base(base).map(|i| &st.msgs[i]);
        let mut found: Vec<(Seen, u64)> = files
            .into_iter()
            .filter_map(|f| {
                let ino = self.stat_loc(&f.loc).ok()?.ino();
                Some((f, ino))
            })
            .collect();
        // Keep the one we know by inode, else by location, else the one in
        // cur/. `d_ino` and `st_ino` agree except on some overlay mounts:
        // either counts.
        found.sort_by_key(|(f, ino)| {
            let same_ino = known.is_some_and(|m| m.ino != 0 && (m.ino == *ino || m.ino == f.ino));
            let same_loc = known.is_some_and(|m| m.loc == f.loc);
            (!same_ino, !same_loc, f.loc.in_new)
        });
        let mut it = found.into_iter().map(|(f, ino)| Seen { loc: f.loc, ino });
        let Some(keep) = it.next() else {
            return;
        };
        for Seen { loc: dup, ino } in it {
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
            let dirs = self.dirs();
            let d = dirs.sub(dup.in_new);
            match d.rename_noreplace(&dup.fname, d, &to.fname) {
                Ok(()) => {
                    tracing::info!(base, fresh = %fresh, "duplicate base name renamed");
                    out.insert(Seen { loc: to, ino });
                }
                // Gone: it was a double readdir entry after all.
                Err(e) if is_enoent(&e) => {}
                Err(e) => tracing::warn!(base, error = %e, "cannot rename a duplicate"),
            }
        }
        out.insert(keep);
    }

    pub(super) fn scan_and_reconcile(&self, st: &mut State) -> Result<bool> {
        let Scan {
            one: mut seen,
            more,
        } = self.scan()?;
        for (base, files) in more {
            self.resolve(st, &base, files, &mut seen);
        }
        let mut changed = false;
        let mut missing: Vec<u32> = Vec::new();
        for i in 0..st.msgs.len() {
            match seen.remove(st.msgs[i].base()) {
                Some(f) => {
                    if f.loc != st.msgs[i].loc && self.update_loc(st, i, f.loc) {
                        changed = true;
                    }
                    // The base name is the identity, but the file may be
                    // another one now (restored, replaced, a duplicate that
                    // outlived the original): remember the inode of the file
                    // this UID has now, so a later duplicate is told apart
                    // from it, not from a long-gone file whose inode number
                    // the file system may already have handed out again.
                    set_ino(st, i, f.ino);
                }
                None => {
                    // Absent from this scan: gone only if its last path is
                    // gone too (readdir may have skipped it).
                    if self.stat_loc(&st.msgs[i].loc).is_err() {
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
                // The file we know by inode first, as in `resolve`.
                let ino = st.msgs[i].ino;
                let candidates = again.get(st.msgs[i].base());
                let found = (!candidates.is_empty())
                    .then_some(candidates)
                    .and_then(|candidates| {
                        let exist: Vec<&Seen> = candidates
                            .iter()
                            .filter(|f| self.stat_loc(&f.loc).is_ok())
                            .collect();
                        let known = exist.iter().find(|f| ino != 0 && f.ino == ino);
                        known.or(exist.first()).map(|f| (*f).clone())
                    });
                match found {
                    Some(f) => {
                        if self.update_loc(st, i, f.loc) {
                            changed = true;
                        }
                        set_ino(st, i, f.ino);
                    }
                    None => gone.push(uid),
                }
            }
            if !gone.is_empty() {
                // Removed by another program: the quota counts again.
                self.record_expunges(st, &gone);
                self.outside_change();
                changed = true;
            }
        }
        // What is left in `seen` has no UID in our state.
        if self.assign_unknown(st, seen)? {
            changed = true;
        }
        Ok(changed)
    }

    /// Gives UIDs to files no message of ours has (`seen`: base -> file).
    /// Returns whether any message was added.
    fn assign_unknown(&self, st: &mut State, seen: Names<Seen>) -> Result<bool> {
        let mut changed = false;
        if !seen.is_empty() {
            // Delivered by another program (or, on a first open, simply
            // not known yet): the quota counts again.
            self.outside_change();
            // The new messages are made here, without a UID yet (0), and
            // become the folder's as they are: on a cold open the list is
            // the folder (no second list of 100,000 files in between).
            let mut files: Vec<Msg> = Vec::with_capacity(seen.len());
            for Seen { loc, ino } in seen {
                // No stat per file: `readdir` gave the inode and the file
                // type, and INTERNALDATE is looked up when first needed
                // (`resolve_dates`). A file that moved on meanwhile is found
                // under its new name by the next sync, as for any rename.
                let (_, size) = filename::size_fields(base_of(&loc.fname));
                let info = filename::split(&loc.fname).1.unwrap_or("");
                let Info { flags, other } = filename::parse_info(info, &st.keywords);
                files.push(Msg {
                    uid: 0,
                    loc,
                    flags,
                    rare: rare(other, Vec::new()),
                    mtime: crate::store::UNKNOWN_DATE,
                    size_raw: size.unwrap_or(NO_SIZE),
                    modseq: 0,
                    ino,
                });
            }
            // In delivery order: unique names start with the delivery time
            // (the mtime may be an old INTERNALDATE set by a client). Sorted
            // by their first 16 bytes, cached: comparing 100,000 names where
            // they lie chased two pointers per comparison (7 % of a cold
            // SELECT). Names alike that far (the same second and the same
            // 100 us in Dovecot's names; one process's deliveries within a
            // second in qmail's) are then put in order among themselves, so
            // the result is exactly the names' order. 16 bytes rather than
            // 32: the keys are 3.2 MB instead of 4.8 MB of fresh memory at
            // 100,000 names.
            fn head(f: &Msg) -> &[u8] {
                let b = f.base().as_bytes();
                &b[..b.len().min(16)]
            }
            files.sort_by_cached_key(|f| {
                // A big-endian integer orders like the bytes, and compares
                // without a call to memcmp.
                let mut key = [0u8; 16];
                let h = head(f);
                key[..h.len()].copy_from_slice(h);
                u128::from_be_bytes(key)
            });
            for run in files.chunk_by_mut(|a, b| head(a) == head(b)) {
                if run.len() > 1 {
                    run.sort_unstable_by(|a, b| a.base().cmp(b.base()));
                }
            }
            if !files.is_empty() {
                self.number_files(st, &mut files)?;
                // Modseqs in name (delivery) order, as the UIDs.
                for m in &mut files {
                    st.highest_modseq += 1;
                    m.modseq = st.highest_modseq;
                }
                st.add_msgs(files);
                changed = true;
            }
        }
        Ok(changed)
    }

    /// The common case of a delivery: `cur/` is unchanged and settled since
    /// our last full scan, so only `new/` needs reading. Handles exactly
    /// "files were added to `new/`"; returns `None` (the caller then does
    /// the full scan) for anything else: a message we know in `new/` that is
    /// not where we left it, a duplicate, or a new file whose base name we
    /// already know. A big `cur/` is then not re-read on every delivery.
    fn scan_new_only(&self, st: &mut State) -> Result<Option<bool>> {
        let mut raw = Scan::default();
        self.dir_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match read_dir_into(&self.dirs().new, true, &mut raw) {
            Ok(()) => {}
            Err(e) if is_enoent(&e) => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        }
        if !raw.more.is_empty() {
            return Ok(None);
        }
        let mut seen = raw.one;
        // Every scan refreshes the inode a UID is known by, this one too: a
        // file replaced under the same name in new/ is the message now, and
        // a later duplicate must be told apart from *it*.
        let mut replaced: Vec<(usize, u64)> = Vec::new();
        for (i, m) in st.msgs.iter().enumerate().filter(|(_, m)| m.loc.in_new) {
            match seen.remove(m.base()) {
                Some(f) if f.loc == m.loc => {
                    if f.ino != m.ino {
                        replaced.push((i, f.ino));
                    }
                }
                _ => return Ok(None),
            }
        }
        for (i, ino) in replaced {
            set_ino(st, i, ino);
        }
        if seen.is_empty() {
            return Ok(Some(false));
        }
        // New base names only: one already ours means a duplicate or a
        // restored file, which the full scan's rules decide.
        if st.msgs.iter().any(|m| seen.contains(m.base())) {
            return Ok(None);
        }
        self.assign_unknown(st, seen).map(Some)
    }

    /// Updates a message's location; returns whether its flags changed.
    pub(super) fn update_loc(&self, st: &mut State, i: usize, loc: Loc) -> bool {
        let info = filename::split(&loc.fname).1.unwrap_or("");
        let Info { mut flags, other } = filename::parse_info(info, &st.keywords);
        let Some(m) = st.msgs.get(i) else {
            return false;
        };
        for k in m.extra_kw() {
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
            m.set_other(other);
            m.modseq = modseq;
            let uid = m.uid;
            if flags_changed {
                st.note_flag_change(uid, modseq);
            }
        }
        st.dirty = true;
        st.snapshot = None;
        flags_changed
    }

    pub(super) fn record_expunges(&self, st: &mut State, uids: &[u32]) {
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
        st.remove_msgs(|u| gone.contains(&u));
        st.recent.retain(|u| !gone.contains(u));
        st.recent_in_new.retain(|u| !gone.contains(u));
        if let Some(c) = st.cache.as_mut() {
            c.retain(|(u, _), _| !gone.contains(u));
        }
        st.cache_pending.retain(|(u, _, _)| !gone.contains(u));
    }

    pub(super) fn move_new_to_cur(&self, st: &mut State) -> Result<bool> {
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
                fname: filename::cur_name(m.base(), &info),
            };
            let from = m.loc.clone();
            let uid = m.uid;
            match self
                .dirs()
                .new
                .rename_noreplace(&from.fname, &self.dirs().cur, &to.fname)
            {
                Ok(()) => {
                    st.msgs[i].loc = to;
                    // Unless the watcher's sync already handed it out.
                    if !st.recent_in_new.remove(&uid) {
                        st.recent.push(uid);
                    }
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
    pub(super) fn locate(&self, base: &str) -> Result<Option<Loc>> {
        for in_new in [false, true] {
            let mut found = None;
            let r = self.dirs().sub(in_new).for_each_entry(|e| {
                if filename::split(e.name).0 == base {
                    found = Some(e.name.to_string());
                    // Stops the walk: found.
                    return Err(io::Error::from(io::ErrorKind::Interrupted));
                }
                Ok(())
            });
            if let Some(fname) = found {
                return Ok(Some(Loc { in_new, fname }));
            }
            match r {
                Ok(()) => {}
                Err(e) if is_enoent(&e) => {}
                Err(e) => return Err(e.into()),
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
    pub(super) fn relocate(&self, st: &mut State, i: usize, rescanned: &mut bool) -> Result<bool> {
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
            let files = raw.get(st.msgs[j].base());
            if files.is_empty() || files.iter().any(|f| f.loc == st.msgs[j].loc) {
                continue;
            }
            // The file we know by inode if it is there (the rest are
            // duplicates for the next sync to separate), else prefer cur/
            // over new/ if a move is under way.
            let ino = st.msgs[j].ino;
            let pick = files
                .iter()
                .find(|f| ino != 0 && f.ino == ino)
                .or_else(|| files.iter().find(|f| !f.loc.in_new))
                .or(files.first())
                .cloned();
            if let Some(f) = pick {
                flags_changed |= self.update_loc(st, j, f.loc);
                set_ino(st, j, f.ino);
            }
        }
        if flags_changed {
            self.changed(st);
        }
        Ok(st.msgs.get(i).is_some_and(|m| m.loc != before))
    }
}

/// Records the inode of the file message `i` has now (0: not known).
fn set_ino(st: &mut State, i: usize, ino: u64) {
    if let Some(m) = st.msgs.get_mut(i) {
        if ino != 0 && m.ino != ino {
            m.ino = ino;
            st.dirty = true;
        }
    }
}
