//! Message files and what is cached about them: opening a message (found
//! again if renamed meanwhile), reading it whole, within a cap or only its
//! header, RFC822.SIZE, and the per-message cache (ENVELOPE,
//! BODYSTRUCTURE, header digests) kept in `nestbox.cache`.

use super::persist::{finish_cache_job, take_cache_job};
use super::*;

impl Folder {
    /// Opens a message file, following it if it was renamed meanwhile.
    pub(super) fn open_msg(&self, uid: u32) -> Result<File> {
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
        let len = f.metadata()?.len();
        if len > cap {
            return Ok(None);
        }
        let mut data = Vec::new();
        nowait::read_len(&f, &mut data, len)?;
        let mut st = self.lock_state();
        let known = st.find(uid).and_then(|i| st.msgs[i].size());
        let size = match known {
            Some(s) => s,
            None => {
                // The vectorised count: this runs once per message of a cold
                // FETCH RFC822.SIZE (or BODYSTRUCTURE) of a mailbox whose
                // file names carry no `,W=`.
                let s = crate::message::crlf_size(&data);
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

    /// Fills `buf` from `offset` until it is full or the file ends; the
    /// count read (FETCH's and POP3's pieces of a big message).
    pub fn read_full(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

/// Offset just past the blank line ending a header block (`\n\n` or
/// `\n\r\n`), if `b` contains it.
pub(super) fn header_end(b: &[u8]) -> Option<usize> {
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
