//! Persistence of a folder's own files: marking the index incomplete
//! before a change is seen, writing the index image and cache entries
//! without the folder locked, and closing the folder (what the registry
//! calls once nobody holds it). Everything here is rebuildable from the
//! Maildir: a failed write only costs the next open a rescan.

use super::*;

impl Folder {
    pub(super) fn changed(&self, st: &mut State) {
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
    pub(super) fn mark_index_unclean(&self, st: &mut State) {
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
    pub(super) fn persist_jobs(&self, st: &mut State) -> PersistJobs {
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
    pub(super) fn persist(&self, jobs: PersistJobs) {
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
    pub(super) fn write_index(&self, st: &mut State, clean: bool) {
        let job = self.index_job(st, clean);
        match self.write_index_job(&job) {
            Ok(()) => st.index_clean = clean,
            Err(_) => st.dirty = true,
        }
    }

    /// Encodes the index image of the current state. The state counts as
    /// written from here on (so concurrent syncs do not encode it again);
    /// a failed write marks it dirty again.
    pub(super) fn index_job(&self, st: &mut State, clean: bool) -> IndexJob {
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
            fields: st.fields_image(),
            expunges: Some(index::ExpungeMemory {
                floor: st.log_floor,
                entries: st.expunge_log.iter().copied().collect(),
            }),
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
    pub(super) fn uidlist_seal(&self, st: &State) -> Option<index::UidlistSeal> {
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
    pub(super) fn write_index_job(&self, job: &IndexJob) -> io::Result<()> {
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

    pub(super) fn load_cache(&self, st: &mut State) {
        if st.cache.is_none() {
            let (map, n) = nowait::blocking(|| index::load_cache(&self.dirs().dir, st.uidvalidity));
            st.cache_file_entries = n;
            st.cache = Some(map);
        }
    }

    /// Writes the collected cache entries with the folder locked (the
    /// caller holds `st`); see `put_cache` for the unlocked way.
    pub(super) fn flush_cache(&self, st: &mut State) {
        if let Some(job) = take_cache_job(st) {
            let result = self.write_cache_job(&job);
            finish_cache_job(&self.dir, st, &job, result);
        }
    }

    /// Appends (or rewrites) `nestbox.cache`; one writer at a time.
    pub(super) fn write_cache_job(&self, job: &CacheJob) -> io::Result<()> {
        let _file = self.cache_file.lock().unwrap_or_else(|p| p.into_inner());
        index::append_cache(&self.dirs().dir, job.uidvalidity, &job.entries, job.rewrite)
    }

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

/// What a sync leaves to write once the folder is unlocked.
pub(super) struct PersistJobs {
    index: Option<IndexJob>,
    cache: Option<CacheJob>,
}

/// An encoded index image on its way to `nestbox.index`.
pub(super) struct IndexJob {
    image: Vec<u8>,
    generation: u64,
}

/// A batch of cache entries on its way to `nestbox.cache`.
pub(super) struct CacheJob {
    entries: Vec<(u32, u8, Arc<[u8]>)>,
    /// Start the file afresh with `entries` (all live entries).
    rewrite: bool,
    uidvalidity: u32,
}

/// Takes the pending entries (or, when the file holds too many dead ones or
/// a bad tail, all live entries for a rewrite) out of the state.
pub(super) fn take_cache_job(st: &mut State) -> Option<CacheJob> {
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
pub(super) fn finish_cache_job(dir: &Path, st: &mut State, job: &CacheJob, result: io::Result<()>) {
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
