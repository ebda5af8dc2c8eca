//! Giving files UIDs and writing them down: numbering new files (taking
//! the UIDs other writers already recorded for their base names, new ones
//! under the uidlist lock for the rest), and writing the records, appended
//! or in a full rewrite that keeps every record of files we did not see
//! and every extension field (`P`, `O`, `G`...) of those we did.
//!
//! It must never give a file a UID without recording it in the uidlist
//! (under the lock) first, and never write a uidlist that loses a record.
//! Split from `sync` (which decides what is there) because this is the one
//! place that writes the uidlist's records.

use rustc_hash::FxHashSet as HashSet;

use crate::store::{Result, StoreError};

use super::super::dotlock;
use super::super::uidlist::{self, FileStamp, Line, Record};
use super::{Folder, Msg, State};

impl Folder {
    /// Gives UIDs to files: the uidlist's own for base names another process
    /// numbered, new ones (appended under the lock) for the rest.
    /// `files` are messages without a UID (0); every one gets one.
    pub(super) fn number_files(&self, st: &mut State, files: &mut [Msg]) -> Result<()> {
        let mut adopted = Vec::new();
        let r = self.number_files_adopting(st, files, &mut adopted);
        if r.is_err() {
            // None of `files` is kept (the sync fails): the records they
            // would have taken stay for the next sync, which would
            // otherwise give those messages new UIDs. The usual failure:
            // another program holds the lock, and the sync is run again
            // once it is free (`MailStore::without_lock_waits`).
            for rec in adopted {
                st.ul_unknown.entry(rec.base.clone()).or_insert(rec);
            }
        }
        r
    }

    /// [`Folder::number_files`], saying in `adopted` which records of
    /// `ul_unknown` it took.
    fn number_files_adopting(
        &self,
        st: &mut State,
        files: &mut [Msg],
        adopted: &mut Vec<Record>,
    ) -> Result<()> {
        let max_uid = st.msgs.last().map_or(0, |m| m.uid);
        let mut taken: HashSet<u32> = HashSet::default();
        let mut adopt = |st: &mut State, f: &mut Msg| {
            if st.ul_unknown.is_empty() {
                return;
            }
            if let Some(r) = st.ul_unknown.remove(f.base()) {
                // A UID below one we already know would appear out of order
                // (and may be one we reported expunged, its file come back),
                // and a UID listed twice can only be used once: renumber
                // those instead. On a cold open nothing is known yet.
                if r.uid > max_uid && taken.insert(r.uid) {
                    f.uid = r.uid;
                    f.set_size(f.size().or(r.vsize));
                }
                // Renumbered or not, the fields are the file's: a POP3
                // UIDL stays with the message it named.
                f.take_fields(r.extra.split(' ').filter(|x| !x.is_empty()));
                adopted.push(r);
            }
        };
        for f in files.iter_mut() {
            adopt(st, f);
        }
        if files.iter().all(|f| f.uid != 0) {
            return Ok(());
        }
        // The lock's path names the descriptor: the directories must stay
        // open until it is released (declared first, dropped last).
        let lock_dirs = self.dirs();
        let _lock = dotlock::lock(&lock_dirs.dir.lock_path(), self.lock_stale_after)?;
        // Someone may have numbered them while we scanned.
        self.refresh_uidlist(st)?;
        for f in files.iter_mut().filter(|f| f.uid == 0) {
            adopt(st, f);
        }
        // UIDs from here on are new; every adopted one lies below.
        let first = st.next_uid;
        for f in files.iter_mut().filter(|f| f.uid == 0) {
            let uid = st.next_uid;
            st.next_uid = st
                .next_uid
                .checked_add(1)
                .ok_or_else(|| StoreError::Cannot("UID space exhausted".into()))?;
            f.uid = uid;
        }
        // The lines borrow the names from `files`, and are made as they are
        // written: no copy of each name, no list of 100,000 records.
        let recs = files.iter().filter(|f| f.uid >= first).map(|f| Line {
            uid: f.uid,
            base: f.base(),
            size: None,
            vsize: f.size(),
            extra: f.ul_fields(),
        });
        self.write_records(st, recs)
    }

    /// Records new UIDs in the uidlist (lock held): appended, or a full
    /// rewrite when the file is missing, in an old format, or holds no UID
    /// yet. `recs` is walked more than once (hence `Clone`: a cheap iterator
    /// over what the caller holds).
    ///
    /// The header's `N` (next UID) is right when the header is written; an
    /// append leaves it as it was, as Dovecot's appends do (its
    /// `maildir_uidlist_sync_update` writes only the new records), and every
    /// reader, Dovecot and ours ([`uidlist::Uidlist::next_uid`]), takes the
    /// larger of `N` and the last record's UID + 1. Rewriting the header on
    /// every delivery would cost a rename (and a sync in every session that
    /// watches the folder) per message. But a folder's first UIDs go into a
    /// file that is still the header we wrote when the folder was first
    /// opened, saying `N1`: they are written with a fresh header instead, so
    /// a folder filled at once (a Maildir opened with mail in it, a COPY
    /// into a new folder) has a header that tells the truth. UID 1 among
    /// `recs` means no UID was given before in this UID space (we hold the
    /// lock and have read every record), so the file has no record to lose.
    pub(super) fn write_records<'a>(
        &self,
        st: &mut State,
        recs: impl Iterator<Item = Line<'a>> + Clone,
    ) -> Result<()> {
        if recs.clone().next().is_none() {
            return Ok(());
        }
        let first_uids = recs.clone().any(|l| l.uid == 1);
        if st.ul_stamp.is_some() && st.ul_version == 3 && !first_uids {
            let before = st.ul_stamp;
            uidlist::append(&self.dirs().dir, recs, self.fsync)?;
            // We hold the lock, so the growth is ours alone: skip re-reading it.
            if let (Some(b), Ok(m)) = (before, self.dirs().dir.stat(uidlist::FILE)) {
                let now = FileStamp::of_meta(&m);
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
    /// listed by our last readdir. A UID in more than one place is written
    /// once: ours first, then the unseen record, then `recs`.
    pub(super) fn write_full_uidlist<'a>(
        &self,
        st: &mut State,
        recs: impl Iterator<Item = Line<'a>> + Clone,
    ) -> Result<()> {
        let guid = if st.guid.is_empty() {
            uidlist::new_guid()
        } else {
            st.guid.clone()
        };
        // Each source in UID order for the merge: `msgs` is, `recs` are
        // numbered in order by their callers (sorted here if not), the
        // unseen records (few) are sorted here.
        let mut unseen: Vec<Line> = st.ul_unknown.values().map(Record::line).collect();
        unseen.sort_by_key(|l| l.uid);
        let mut sorted: Vec<Line> = Vec::new();
        if !recs.clone().is_sorted_by_key(|l| l.uid) {
            sorted.extend(recs.clone());
            sorted.sort_by_key(|l| l.uid);
        }
        let highest = [
            st.msgs.last().map(|m| m.uid),
            unseen.last().map(|l| l.uid),
            recs.clone().map(|l| l.uid).max(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        // Every message's extension fields go back as read (see `fields`):
        // a POP3 UIDL lost here is a POP3 client downloading it all again.
        let ours = st.msgs.iter().map(|m| Line {
            uid: m.uid,
            base: m.base(),
            size: None,
            vsize: m.size(),
            extra: m.ul_fields(),
        });
        // `sorted` is empty unless `recs` needed sorting.
        let recs = recs
            .filter(|_| sorted.is_empty())
            .chain(sorted.iter().copied());
        let lines = uidlist::merge(uidlist::merge(ours, unseen.iter().copied()), recs);
        let next = st.next_uid.max(highest.saturating_add(1));
        let stamp = uidlist::write_new(
            &self.dirs().dir,
            self.fsync,
            st.uidvalidity,
            next,
            &guid,
            lines,
        )?;
        st.ul_stamp = Some(stamp);
        st.ul_version = 3;
        st.guid = guid;
        Ok(())
    }
}
