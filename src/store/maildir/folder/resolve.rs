//! What a folder looks up only when first asked: INTERNALDATE (a `stat`)
//! and RFC822.SIZE (reading the file) of messages whose file name and
//! records do not say. The first scan of a big folder reads neither (that
//! was most of a cold SELECT); once looked up, a value is kept in the
//! state, and so in the index, so the next process need not look again.
//! Nothing here changes a message file or decides that one is gone: a
//! file that vanished keeps its value unknown, and the next sync decides.

use super::*;

impl Folder {
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

    /// Computes RFC822.SIZE ([`crate::message::crlf_size`], what `,W=`
    /// records) for those of `uids` whose size is not known yet, reading
    /// each of their files once, and remembers it ([`Folder::messages`]
    /// shows it from then on, and the index keeps it: a POP3 login, which
    /// needs every size for STAT, reads no file the second time). A file
    /// renamed under us is found again; messages that are gone are
    /// skipped.
    pub fn resolve_sizes(&self, uids: &[u32]) -> Result<()> {
        let unknown: Vec<u32> = {
            let st = self.lock_state();
            uids.iter()
                .copied()
                .filter(|&uid| st.find(uid).is_some_and(|i| st.msgs[i].size().is_none()))
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        // One file at a time (one message's bytes in memory), the folder
        // unlocked while it is read: other sessions go on meanwhile.
        nowait::blocking(|| {
            for uid in unknown {
                match self.read_message_sized(uid) {
                    Ok(_) | Err(StoreError::Expunged) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }
}
