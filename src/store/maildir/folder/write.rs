//! Changes to message files: STORE (renames), EXPUNGE and POP3's removal
//! at QUIT (unlinks), APPEND, COPY and MOVE (tmp/ -> fsync -> rename ->
//! fsync dir -> uidlist record, before returning), and the Maildir++ quota
//! bookkeeping that goes with them.
//!
//! It must never replace or unlink a file it did not mean to (renames use
//! `RENAME_NOREPLACE`), and never return before a saved message is durable
//! (unless the store was opened with `fsync: false`).

use rustc_hash::FxHashSet as HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;

use crate::flags::{FlagOp, Flags, sys};
use crate::store::{MessageMeta, Result, Spool, StoreError};

use super::super::dotlock;
use super::super::filename;
use super::super::keywords::{self, Keywords};
use super::super::uidlist::Record;

/// A file in `tmp/` for [`Folder::commit_tmp`]: name in `tmp/`, base name,
/// flags, other letters, mtime, uidlist extension fields.
pub(super) type TmpItem = (String, String, Flags, String, i64, String);

/// What copying or moving takes from a source message (see
/// [`Folder::sources`]).
pub(super) type Source = (u32, String, Loc, Flags, String, i64, String);
use super::{Folder, Loc, State, is_enoent, mtime_ns};
use crate::store::beneath::FolderDirs;

impl Folder {
    /// Saves the keyword table if rendering flags assigned new letters.
    /// Saves the keyword table if names were assigned since it held
    /// `before` of them ([`Keywords::assigned`]; assigning only ever adds).
    pub(super) fn save_keywords_if(&self, st: &mut State, before: usize) -> Result<()> {
        if st.keywords.assigned() != before {
            st.keywords.save(&self.dirs().dir)?;
            st.kw_mtime = self
                .dirs()
                .dir
                .stat(keywords::FILE)
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
        let dirs = self.dirs();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut any = false;
        let mut rescanned = false;
        let mut next = 0;
        for &uid in uids {
            // Sets come ascending: try the entry after the last one first
            // (a binary search over 100,000 messages misses the cache at
            // nearly every step).
            let i = match st.msgs.get(next) {
                Some(m) if m.uid == uid => next,
                _ => match st.find(uid) {
                    Some(i) => i,
                    None => continue,
                },
            };
            next = i + 1;
            if unchanged_since.is_some_and(|m| st.msgs[i].modseq > m) {
                failed.push(uid);
                continue;
            }
            if let Some(meta) = self.apply_flags(&mut st, &dirs, i, op, flags, &mut rescanned)? {
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
    pub(super) fn apply_flags(
        &self,
        st: &mut State,
        dirs: &FolderDirs,
        i: usize,
        op: FlagOp,
        flags: &Flags,
        rescanned: &mut bool,
    ) -> Result<Option<MessageMeta>> {
        for _ in 0..3 {
            if !st.msgs[i].flags.changed_by(op, flags) {
                return Ok(None);
            }
            let mut new_flags = st.msgs[i].flags.clone();
            new_flags.apply(op, flags);
            let before = st.keywords.assigned();
            let other: Box<str> = st.msgs[i].other().into();
            let (info, extra) = filename::render_info(&new_flags, &other, &mut st.keywords);
            if let Some(c) = st.keywords.canonical(&new_flags) {
                new_flags = c;
            }
            self.save_keywords_if(st, before)?;
            let m = &st.msgs[i];
            let to = Loc {
                in_new: false,
                fname: filename::cur_name(m.base(), &info),
            };
            let renamed = if m.loc == to {
                Ok(())
            } else {
                // By descriptor and name: no path built or resolved.
                dirs.sub(m.loc.in_new).rename_noreplace(
                    &m.loc.fname,
                    dirs.sub(to.in_new),
                    &to.fname,
                )
            };
            match renamed {
                Ok(()) => {
                    st.highest_modseq += 1;
                    let modseq = st.highest_modseq;
                    let m = &mut st.msgs[i];
                    m.loc = to;
                    m.flags = new_flags;
                    m.set_extra_kw(extra);
                    m.modseq = modseq;
                    let meta = m.meta();
                    st.note_flag_change(meta.uid, modseq);
                    return Ok(Some(meta));
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
    /// Returns the UIDs removed, ascending.
    pub fn expunge(&self, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        self.unlink_msgs(uids, Unlink::FlaggedDeleted)
    }

    /// Removes the messages `uids` names whatever their flags (POP3's
    /// QUIT removes the messages DELE marked, RFC 1939 §6, which need not
    /// carry `\Deleted`), with everything [`Folder::expunge`] does: a file
    /// renamed meanwhile is found again, `maildirsize` is kept current, and
    /// sessions that have the folder selected (IDLE included) see the
    /// expunges at once. A UID that is gone already is skipped. Returns
    /// the UIDs removed, ascending. On an error (not `ENOENT`), what was
    /// removed before it stays removed and is reported to sessions as
    /// expunged, as with [`Folder::expunge`].
    pub fn remove(&self, uids: &[u32]) -> Result<Vec<u32>> {
        self.unlink_msgs(Some(uids), Unlink::Any)
    }

    /// Unlinks the messages `which` allows (only those in `uids` if given):
    /// [`Folder::expunge`] and [`Folder::remove`].
    fn unlink_msgs(&self, uids: Option<&[u32]>, which: Unlink) -> Result<Vec<u32>> {
        let counting = self.own_quota_change();
        let mut st = self.lock_state();
        let wanted: Option<HashSet<u32>> = uids.map(|u| u.iter().copied().collect());
        let allowed = |st: &State, i: usize| match which {
            Unlink::FlaggedDeleted => st.msgs[i].flags.has(sys::DELETED),
            Unlink::Any => true,
        };
        let candidates: Vec<u32> = (0..st.msgs.len())
            .filter(|&i| {
                allowed(&st, i) && wanted.as_ref().is_none_or(|w| w.contains(&st.msgs[i].uid))
            })
            .map(|i| st.msgs[i].uid)
            .collect();
        let mut gone = Vec::new();
        let mut freed: u64 = 0;
        let mut failure: Option<StoreError> = None;
        let mut rescanned = false;
        'each: for uid in candidates {
            let Some(mut i) = st.find(uid) else { continue };
            for _ in 0..3 {
                let loc = &st.msgs[i].loc;
                // Quota counts physical sizes: `,S=` or the file's length.
                let size = filename::size_fields(st.msgs[i].base())
                    .0
                    .or_else(|| self.stat_loc(loc).ok().map(|m| m.len()));
                match self.dirs().sub(loc.in_new).unlink(&loc.fname) {
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
                        if !allowed(&st, i) {
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
        self.record_quota(counting, -(freed as i64), -(gone.len() as i64));
        match failure {
            Some(e) => Err(e),
            None => Ok(gone),
        }
    }

    /// `OverQuota` if saving `bytes` in `count` messages would pass the
    /// Maildir++ quota (when there is one).
    /// `OverQuota` if saving `count` messages of `bytes` in all would pass
    /// the Maildir's quota: what a MULTIAPPEND asks before it saves the
    /// first of them (all or nothing, RFC 3502).
    pub fn check_room(&self, bytes: u64, count: u64) -> Result<()> {
        self.check_quota(bytes, count)
    }

    /// Attaches the Maildir's quota upkeep (the store does, on every
    /// open; the first one stays).
    pub(crate) fn attach_upkeep(
        &self,
        upkeep: &std::sync::Arc<crate::store::quota_upkeep::QuotaUpkeep>,
    ) {
        let _ = self.upkeep.set(upkeep.clone());
    }

    /// A sync saw a change nestbox did not make: another program delivered
    /// or removed a message. The quota is counted again before it is next
    /// asked (`store::quota_upkeep`).
    pub(super) fn outside_change(&self) {
        if let Some(u) = self.upkeep.get() {
            u.note_outside();
        }
    }

    /// Held by an own change of the quota's totals from its first file
    /// change to its `maildirsize` line (see `store::quota_upkeep`).
    pub(super) fn own_quota_change(&self) -> Option<std::sync::RwLockReadGuard<'_, ()>> {
        self.upkeep.get().map(|u| u.own_change())
    }

    pub(super) fn check_quota(&self, bytes: u64, count: u64) -> Result<()> {
        let root = &self.dirs().root;
        let current = match self.upkeep.get() {
            Some(u) => u.settle(root)?,
            None => super::super::quota::load(root)?,
        };
        match current {
            Some(q) if !q.allows(bytes, count) => {
                // Maildir++: over the limit with totals older than 15
                // minutes, count again before refusing (deliveries and
                // removals by programs that do not write maildirsize).
                if super::super::quota::stale(root) {
                    let q = super::super::quota::recalc(root, q.bytes_limit, q.count_limit)?;
                    if q.allows(bytes, count) {
                        return Ok(());
                    }
                }
                Err(StoreError::OverQuota)
            }
            _ => Ok(()),
        }
    }

    /// Notes a change in `maildirsize`. A failure only makes the totals
    /// drift until the next recount, so it is logged, not returned.
    /// `counting` is the change's [`Folder::own_quota_change`] guard: let
    /// go of once the line is written, before the warning check (which
    /// may need to be alone).
    pub(super) fn record_quota(
        &self,
        counting: Option<std::sync::RwLockReadGuard<'_, ()>>,
        bytes: i64,
        count: i64,
    ) {
        if bytes == 0 && count == 0 {
            return;
        }
        let root = &self.dirs().root;
        let Some(u) = self.upkeep.get() else {
            if let Err(e) = super::super::quota::record(root, bytes, count) {
                tracing::warn!(root = %root.display(), error = %e, "cannot update maildirsize");
            }
            return;
        };
        u.record(root, bytes, count);
        drop(counting);
        u.after_own_change(root);
    }

    /// Creates a file in `tmp/` with the folder's file mode.
    /// Returns the name in `tmp/` with the file.
    pub(super) fn create_tmp(&self, base: &str) -> io::Result<(String, File)> {
        let f = self.dirs().tmp.create_new(base, self.file_mode)?;
        Ok((base.to_string(), f))
    }

    /// Saves a new message (tmp/, fsync, rename into `cur/` with its flags,
    /// fsync the directory, uidlist record) and returns its UID, all before
    /// returning. `internal_date` sets the mtime (INTERNALDATE).
    pub fn append(&self, data: &[u8], flags: &Flags, internal_date: Option<i64>) -> Result<u32> {
        let (len, crlf_len) = (data.len() as u64, crate::message::crlf_size(data));
        self.save_new(len, Some(crlf_len), flags, internal_date, |base| {
            let (tmp, mut f) = self.create_tmp(base)?;
            let r = f.write_all(data);
            Ok((tmp, f, r))
        })
    }

    /// [`Folder::append`] for part `part` of a spool (a big message the
    /// session received straight to disk). A spool holding only this
    /// message is given a name in this folder's `tmp/` (a hard link of the
    /// unnamed file, no copy); otherwise the part is copied (in the kernel).
    pub fn append_spooled(
        &self,
        spool: &Spool,
        part: usize,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> Result<u32> {
        let p = spool
            .part(part)
            .ok_or_else(|| StoreError::Cannot("no such spooled message".into()))?;
        self.save_new(p.len, p.crlf_len, flags, internal_date, |base| {
            if let Some(file) = spool.whole_file(part) {
                // Cross-device (a folder on another file system) or a
                // kernel without the means: copy instead.
                if self.dirs().tmp.link_unnamed(file, base).is_ok() {
                    let f = match file.try_clone() {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = self.dirs().tmp.unlink(base);
                            return Err(e);
                        }
                    };
                    // The folder's mode, as create_tmp would give it: the
                    // spool was made with the root's.
                    let r = f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
                        self.file_mode,
                    ));
                    return Ok((base.to_string(), f, r));
                }
            }
            let (tmp, f) = self.create_tmp(base)?;
            let r = spool.copy_part(part, &f);
            Ok((tmp, f, r))
        })
    }

    /// The common part of saving one message of `len` bytes (`crlf_len`
    /// its served size, when known: the `W=` of its name): `fill` puts its bytes in a file in `tmp/`
    /// under the base name given, returning the name, the file and how
    /// writing went (the name is removed again if anything fails).
    fn save_new(
        &self,
        len: u64,
        crlf_len: Option<u64>,
        flags: &Flags,
        internal_date: Option<i64>,
        fill: impl FnOnce(&str) -> io::Result<(String, File, io::Result<()>)>,
    ) -> Result<u32> {
        self.check_quota(len, 1)?;
        let base = match crlf_len {
            Some(w) => format!("{},S={len},W={w}", filename::unique_base()),
            None => format!("{},S={len}", filename::unique_base()),
        };
        let (tmp, f, filled) = fill(&base)?;
        let written = filled.and_then(|()| {
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
        });
        let meta = match written {
            Ok(m) => m,
            Err(e) => {
                let _ = self.dirs().tmp.unlink(&tmp);
                return Err(e.into());
            }
        };
        drop(f);
        let counting = self.own_quota_change();
        let r = self.commit_tmp(vec![(
            tmp.clone(),
            base,
            flags.clone(),
            String::new(),
            meta.mtime(),
            String::new(),
        )]);
        if r.is_err() {
            let _ = self.dirs().tmp.unlink(&tmp);
        }
        let uid = r?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Cannot("append failed".into()))?;
        self.record_quota(counting, len as i64, 1);
        Ok(uid)
    }

    /// Moves prepared files from `tmp/` into `cur/` under the uidlist lock and
    /// numbers them, in order. Each item: name in `tmp/`, base name, flags,
    /// other letters, mtime, and the uidlist extension fields of the new
    /// record (a copy's `G`, see `objectid`; empty for new mail).
    pub(super) fn commit_tmp(&self, items: Vec<TmpItem>) -> Result<Vec<u32>> {
        let mut st = self.lock_state();
        let dirs = self.dirs();
        let before = st.keywords.assigned();
        let mut prepared = Vec::with_capacity(items.len());
        for (tmp, base, flags, other, mtime, fields) in items {
            let (info, extra) = filename::render_info(&flags, &other, &mut st.keywords);
            let flags = st.keywords.canonical(&flags).unwrap_or(flags);
            prepared.push((tmp, base, flags, info, extra, mtime, fields));
        }
        self.save_keywords_if(&mut st, before)?;
        // The lock's path names the descriptor: the directories must stay
        // open until it is released (declared first, dropped last).
        let lock_dirs = self.dirs();
        let _lock = dotlock::lock(&lock_dirs.dir.lock_path(), self.lock_stale_after)?;
        self.refresh_uidlist(&mut st)?;
        let first_uid = st.next_uid;
        let mut recs = Vec::new();
        let mut done: Vec<(u32, String)> = Vec::new();
        let mut failure = None;
        for (tmp, base, flags, info, extra, mtime, fields) in prepared {
            let uid = st.next_uid;
            let Some(next) = st.next_uid.checked_add(1) else {
                failure = Some(StoreError::Cannot("UID space exhausted".into()));
                break;
            };
            let loc = Loc {
                in_new: false,
                fname: filename::cur_name(&base, &info),
            };
            if let Err(e) = dirs.tmp.rename_noreplace(&tmp, &dirs.cur, &loc.fname) {
                failure = Some(e.into());
                break;
            }
            st.next_uid = next;
            let ino = self.stat_loc(&loc).map_or(0, |m| m.ino());
            done.push((uid, loc.fname.clone()));
            recs.push(st.place(uid, loc, flags, extra, mtime, ino, &fields));
        }
        if failure.is_none() {
            if let Err(e) = self.write_records(&mut st, recs.iter().map(Record::line)) {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            // All or nothing (RFC 9051 §6.4.7): take back what was placed.
            // Nobody has seen these UIDs, so they may be handed out again.
            let uids: Vec<u32> = done.iter().map(|(u, _)| *u).collect();
            for (_, fname) in done {
                let _ = self.dirs().cur.unlink(&fname);
            }
            st.remove_msgs(|u| uids.contains(&u));
            st.next_uid = first_uid;
            return Err(e);
        }
        drop(_lock);
        let uids: Vec<u32> = done.into_iter().map(|(u, _)| u).collect();
        st.recent.extend_from_slice(&uids);
        if self.fsync {
            self.dirs().cur.sync()?;
        }
        self.changed(&mut st);
        Ok(uids)
    }

    /// Snapshot of what copying/moving needs from the source, in UID order:
    /// UID, base name, file, flags, other letters, mtime, and the uidlist
    /// field that keeps its EMAILID in the destination (`G<id>`).
    pub(super) fn sources(&self, uids: &[u32]) -> Vec<Source> {
        let st = self.lock_state();
        let mut wanted: Vec<u32> = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .filter_map(|u| st.find(u).map(|i| &st.msgs[i]))
            .map(|m| {
                // Lower-case letters we could not name belong to this
                // folder's keyword table; in another folder they would
                // name other keywords, so they do not travel.
                let other = m
                    .other()
                    .chars()
                    .filter(|c| !c.is_ascii_lowercase())
                    .collect();
                let mtime = if m.mtime == crate::store::UNKNOWN_DATE {
                    // The copy must keep INTERNALDATE: look it up now.
                    self.stat_loc(&m.loc).map_or(m.mtime, |md| md.mtime())
                } else {
                    m.mtime
                };
                (
                    m.uid,
                    m.base().to_string(),
                    m.loc.clone(),
                    m.flags.clone(),
                    other,
                    mtime,
                    format!("G{}", m.email_id()),
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
            for (uid, base, loc, mut flags, other, mtime, id_field) in self.sources(uids) {
                let fresh = filename::fresh_base_like(&base);
                let mut src = loc;
                let mut ok = false;
                for _ in 0..3 {
                    // A message file that is a symlink is linked as the
                    // link (never its target), and a symlink is never read
                    // as a message (`Dir::open` refuses it).
                    match self
                        .dirs()
                        .sub(src.in_new)
                        .link(&src.fname, &dest.dirs().tmp, &fresh)
                    {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(e) if is_enoent(&e) => match self.locate(&base)? {
                            Some(l) => {
                                // Renamed meanwhile: its system flags are news.
                                let now = filename::split(&l.fname).1.unwrap_or("");
                                flags.system =
                                    filename::parse_info(now, &Keywords::default()).flags.system;
                                src = l;
                            }
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
                    items.push((fresh.clone(), fresh, flags, other, mtime, id_field));
                    src_uids.push(uid);
                }
            }
            Ok(())
        })();
        let dest_dirs = dest.dirs();
        let tmp_dir = &dest_dirs.tmp;
        if let Err(e) = result {
            for (tmp, ..) in &items {
                let _ = tmp_dir.unlink(tmp);
            }
            return Err(e);
        }
        let tmps: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
        let bytes: u64 = tmps
            .iter()
            .filter_map(|t| tmp_dir.stat(t).ok())
            .map(|m| m.len())
            .sum();
        if let Err(e) = dest.check_quota(bytes, tmps.len() as u64) {
            for t in &tmps {
                let _ = tmp_dir.unlink(t);
            }
            return Err(e);
        }
        let counting = dest.own_quota_change();
        match dest.commit_tmp(items) {
            Ok(dest_uids) => {
                dest.record_quota(counting, bytes as i64, dest_uids.len() as i64);
                Ok(src_uids.into_iter().zip(dest_uids).collect())
            }
            Err(e) => {
                for t in tmps {
                    let _ = tmp_dir.unlink(&t);
                }
                Err(e)
            }
        }
    }

    /// Copies a message's bytes into `dest`'s `tmp/` as `fresh`, keeping its
    /// mtime. `false` if the message is gone.
    pub(super) fn copy_bytes(
        &self,
        uid: u32,
        dest: &Folder,
        fresh: &str,
        mtime: i64,
    ) -> Result<bool> {
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
            let _ = dest.dirs().tmp.unlink(&path);
            return Err(e.into());
        }
        Ok(true)
    }

    /// Moves messages into `dest` by rename (atomic: never in both or
    /// neither), then drops them here as expunged. `dest` may be this very
    /// folder (RFC 6851 allows MOVE into the selected mailbox; Dovecot does
    /// it): each message is renamed to a fresh base name and gets a new UID,
    /// and its old UID is expunged under the same lock, so no session ever
    /// sees both.
    pub fn move_to(&self, uids: &[u32], dest: &Folder) -> Result<Vec<(u32, u32)>> {
        let same = std::ptr::eq(self, dest);
        let sources = self.sources(uids);
        let mut dst = dest.lock_state();
        let before = dst.keywords.assigned();
        let mut planned = Vec::new();
        for (uid, base, loc, flags, other, mtime, id_field) in sources {
            let (info, extra) = filename::render_info(&flags, &other, &mut dst.keywords);
            let flags = dst.keywords.canonical(&flags).unwrap_or(flags);
            // A fresh base name: the old one may still be listed in the
            // destination's uidlist from an earlier visit, with an old UID.
            let fresh = filename::fresh_base_like(&base);
            planned.push((uid, base, loc, flags, info, extra, mtime, fresh, id_field));
        }
        dest.save_keywords_if(&mut dst, before)?;
        // As in `commit_tmp`: the directories outlive the lock.
        let lock_dirs = dest.dirs();
        let _lock = dotlock::lock(&lock_dirs.dir.lock_path(), dest.lock_stale_after)?;
        dest.refresh_uidlist(&mut dst)?;
        let mut pairs = Vec::new();
        let mut recs = Vec::new();
        let mut moved_src = Vec::new();
        let mut failure: Option<StoreError> = None;
        for (uid, base, loc, mut flags, info, mut extra, mtime, fresh, id_field) in planned {
            let mut to = Loc {
                in_new: false,
                fname: filename::cur_name(&fresh, &info),
            };
            let mut from = loc;
            let mut ok = false;
            for _ in 0..3 {
                match self.dirs().sub(from.in_new).rename_noreplace(
                    &from.fname,
                    dest.dirs().sub(to.in_new),
                    &to.fname,
                ) {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(e) if is_enoent(&e) => match self.locate(&base) {
                        Ok(Some(l)) => {
                            // Renamed meanwhile (flags changed by someone
                            // else): take its system flags from the new
                            // name. Its keyword letters belong to the source
                            // table, which we must not lock here, so the
                            // keywords we knew stay.
                            let now = filename::split(&l.fname).1.unwrap_or("");
                            let seen = filename::parse_info(now, &Keywords::default());
                            flags.system = seen.flags.system;
                            // Lower-case letters name source keywords: drop.
                            let other: String = seen
                                .other
                                .chars()
                                .filter(|c| !c.is_ascii_lowercase())
                                .collect();
                            let kw_before = dst.keywords.assigned();
                            let info;
                            (info, extra) =
                                filename::render_info(&flags, &other, &mut dst.keywords);
                            if let Err(e) = dest.save_keywords_if(&mut dst, kw_before) {
                                failure = Some(e);
                                break;
                            }
                            to.fname = filename::cur_name(&fresh, &info);
                            from = l;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
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
            let ino = dest.stat_loc(&to).map_or(0, |m| m.ino());
            recs.push(dst.place(new_uid, to, flags, extra, mtime, ino, &id_field));
            dst.recent.push(new_uid);
            pairs.push((uid, new_uid));
            moved_src.push(uid);
        }
        let wrote = dest.write_records(&mut dst, recs.iter().map(Record::line));
        drop(_lock);
        if dest.fsync {
            dest.dirs().cur.sync()?;
            self.dirs().cur.sync()?;
        }
        if same {
            self.record_expunges(&mut dst, &moved_src);
        }
        if !pairs.is_empty() {
            dest.changed(&mut dst);
        }
        drop(dst);
        if !same && !moved_src.is_empty() {
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
}

/// Which messages [`Folder::unlink_msgs`] may remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unlink {
    /// Only those flagged `\Deleted`, checked again after a rename by
    /// someone else (IMAP's EXPUNGE).
    FlaggedDeleted,
    /// Whatever their flags (POP3's QUIT).
    Any,
}
