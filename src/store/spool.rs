//! Spool files: where big APPEND messages wait, on disk, between the
//! client's socket and the folder they are saved in (issue 15 item 4: the
//! memory a logged-in connection holds must not grow with the size of the
//! messages it appends).
//!
//! Owns the spool file of one command: a file with no name (`O_TMPFILE`) in
//! the Maildir root's `tmp/`, holding the command's big messages one after
//! another as [`Part`]s, with what their file names need (`S=` and `W=`,
//! the CRLF size, counted while the bytes go by). The session fills it
//! (from a blocking-pool thread: these are file writes); the folder saves a
//! part from it ([`Folder::append_spooled`](super::Folder::append_spooled))
//! by giving the file a name in its `tmp/` when the spool holds just that
//! message (no copy), else by copying the part (`copy_file_range`, in the
//! kernel).
//!
//! Must never: be reached through a name a client chose (the root's
//! `tmp/` is opened beneath the root without following a symlink, and the
//! file has no name at all), leave a file behind (an unnamed file vanishes
//! when its descriptor closes, also on a crash; where the file system
//! cannot make one, a named file is unlinked the moment it is created), or
//! hold a message's bytes in memory.
//!
//! Disk space and quota are asked for before the client sends a byte: a
//! part is begun with its announced size ([`Spool::begin`]), which checks
//! the Maildir++ quota and reserves the blocks (`fallocate`), so a full disk
//! or quota is answered `NO` instead of a `+`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::beneath::Dir;
use super::maildir::{filename, quota};
use super::{MailStore, Result, StoreError};

/// One message in a spool: `len` bytes from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub len: u64,
    /// Its size as served (`RFC822.SIZE`, the `W=` of its file name): every
    /// bare LF as CRLF. `None` when that needs the MIME structure: the
    /// message has bare LFs and may have a binary part, whose body is
    /// served as stored (`message::kept`); the name then carries no `W=`
    /// and the size is computed from the saved file when first asked, as
    /// for any delivered message without one.
    pub crlf_len: Option<u64>,
    /// Some byte is NUL (a CATENATE `TEXT {n}` may not hold one).
    pub has_nul: bool,
}

/// The part being written.
#[derive(Debug)]
struct Open {
    offset: u64,
    /// Announced size.
    size: u64,
    /// LFs not preceded by CR so far.
    bare_lf: u64,
    /// The last byte written (a CR before an LF that comes in the next
    /// write).
    last: u8,
    nul: bool,
    /// The word "binary" (any case) was seen: a part may be
    /// `Content-Transfer-Encoding: binary` (`message::may_have_binary`).
    binary: bool,
    /// The last bytes written, for a word cut between two writes.
    tail: Vec<u8>,
}

/// The spool file of one command (see the module doc).
#[derive(Debug)]
pub struct Spool {
    file: File,
    /// The Maildir root, for the quota.
    root: Arc<Dir>,
    /// Made with `O_TMPFILE`: a folder may give it a name.
    unnamed: bool,
    /// Bytes written (the end of the last part).
    len: u64,
    parts: Vec<Part>,
    open: Option<Open>,
}

impl MailStore {
    /// A new, empty spool file in the Maildir root's `tmp/`.
    pub fn spool(&self) -> Result<Spool> {
        self.spool_with(true)
    }

    /// [`MailStore::spool`], with or without trying `O_TMPFILE` first (the
    /// tests take the other way too).
    fn spool_with(&self, unnamed: bool) -> Result<Spool> {
        let root = self.root_dir();
        let tmp = root.dir("tmp")?;
        let mode = self.file_mode();
        let made = if unnamed {
            tmp.create_unnamed(mode)?
        } else {
            None
        };
        let (file, unnamed) = match made {
            Some(f) => (f, true),
            None => {
                // No O_TMPFILE here: a named file, unlinked at once, is
                // just as anonymous from then on.
                let name = format!("{}.spool", filename::unique_base());
                let f = tmp.open_with(
                    &name,
                    super::beneath::OFlags::RDWR
                        | super::beneath::OFlags::CREATE
                        | super::beneath::OFlags::EXCL,
                    mode,
                )?;
                tmp.unlink(&name)?;
                (f, false)
            }
        };
        Ok(Spool {
            file,
            root,
            unnamed,
            len: 0,
            parts: Vec::new(),
            open: None,
        })
    }
}

impl Spool {
    /// Starts a part of `size` bytes: `OverQuota` if the Maildir++ quota
    /// cannot take it with the parts already here, a storage-full error if
    /// the disk cannot hold it. A part begun and not ended is dropped.
    pub fn begin(&mut self, size: u64) -> Result<()> {
        if let Some(q) = quota::load(&self.root)? {
            let count = self.parts.len() as u64 + 1;
            if !q.allows(self.len.saturating_add(size), count) {
                return Err(StoreError::OverQuota);
            }
        }
        self.open = None;
        if size > 0 {
            use rustix::fs::FallocateFlags;
            match rustix::fs::fallocate(&self.file, FallocateFlags::KEEP_SIZE, self.len, size) {
                Ok(()) => {}
                // Not every file system reserves space; the writes will
                // tell then.
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        self.open = Some(Open {
            offset: self.len,
            size,
            bare_lf: 0,
            last: 0,
            nul: false,
            binary: false,
            tail: Vec::new(),
        });
        Ok(())
    }

    /// Appends the next bytes of the part begun; never more than it
    /// announced.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Err(io::Error::other("spool: no part begun"));
        };
        if self.len + data.len() as u64 > open.offset + open.size {
            return Err(io::Error::other("spool: part longer than announced"));
        }
        self.file.write_all_at(data, self.len)?;
        for i in memchr::memchr_iter(b'\n', data) {
            let before = if i == 0 { open.last } else { data[i - 1] };
            if before != b'\r' {
                open.bare_lf += 1;
            }
        }
        if let Some(&b) = data.last() {
            open.last = b;
        }
        open.nul |= memchr::memchr(0, data).is_some();
        if !open.binary {
            // "binary" is 6 bytes: the last 5 of the previous write and the
            // start of this one cover a word cut in two.
            let head = &data[..data.len().min(5)];
            let mut seam = std::mem::take(&mut open.tail);
            seam.extend_from_slice(head);
            open.binary =
                crate::message::may_have_binary(&seam) || crate::message::may_have_binary(data);
            let mut tail = seam;
            tail.extend_from_slice(&data[head.len()..]);
            let keep = tail.len().saturating_sub(5);
            open.tail = tail.split_off(keep);
        }
        self.len += data.len() as u64;
        Ok(())
    }

    /// Ends the part begun, which must have all its bytes; returns its
    /// index.
    pub fn end(&mut self) -> io::Result<usize> {
        let Some(open) = self.open.take() else {
            return Err(io::Error::other("spool: no part begun"));
        };
        let len = self.len - open.offset;
        if len != open.size {
            return Err(io::Error::other("spool: part shorter than announced"));
        }
        self.parts.push(Part {
            offset: open.offset,
            len,
            crlf_len: (open.bare_lf == 0 || !open.binary).then_some(len + open.bare_lf),
            has_nul: open.nul,
        });
        Ok(self.parts.len() - 1)
    }

    /// Appends the bytes of part `i` of this same spool to the part begun:
    /// CATENATE builds its message here from parts that include a big TEXT
    /// literal spooled before (one buffer of 64 KiB, never the part).
    pub fn write_part(&mut self, i: usize) -> io::Result<()> {
        let p = self
            .part(i)
            .ok_or_else(|| io::Error::other("spool: no such part"))?;
        // A second handle on the same file: the bytes are read from it
        // while `write` appends through `self`.
        let file = self.file.try_clone()?;
        read_chunks(&file, p.offset, p.offset + p.len, |chunk| self.write(chunk))
    }

    /// Part `i`, if it was ended.
    pub fn part(&self, i: usize) -> Option<Part> {
        self.parts.get(i).copied()
    }

    /// The file itself, when it is part `i` and nothing else and has no
    /// name yet, so a folder can link it into place instead of copying it.
    pub(crate) fn whole_file(&self, i: usize) -> Option<&File> {
        (self.unnamed && self.parts.len() == 1 && i == 0 && self.open.is_none())
            .then_some(&self.file)
    }

    /// Copies part `i` to the end of `out` (in the kernel where it can).
    pub(crate) fn copy_part(&self, i: usize, out: &File) -> io::Result<()> {
        let p = self
            .part(i)
            .ok_or_else(|| io::Error::other("spool: no such part"))?;
        let mut off = p.offset;
        let end = p.offset + p.len;
        while off < end {
            let want = usize::try_from(end - off)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match rustix::fs::copy_file_range(&self.file, Some(&mut off), out, None, want) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                // Across file systems on old kernels, or a file system that
                // cannot: copy through a small buffer.
                Err(
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::INVAL
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::OPNOTSUPP,
                ) => return self.copy_by_hand(off, end, out),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn copy_by_hand(&self, off: u64, end: u64, mut out: &File) -> io::Result<()> {
        use std::io::Write;
        read_chunks(&self.file, off, end, |chunk| out.write_all(chunk))
    }
}

/// Hands `f` the bytes `off..end` of `file`, 64 KiB at a time (one buffer,
/// never the range).
fn read_chunks(
    file: &File,
    mut off: u64,
    end: u64,
    mut f: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while off < end {
        let want = usize::try_from(end - off)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = file.read_at(&mut buf[..want], off)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        f(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Registry, StoreOptions};

    fn store() -> (tempfile::TempDir, MailStore) {
        let d = tempfile::tempdir().unwrap();
        let s = MailStore::open(
            d.path().join("Maildir"),
            Registry::new(),
            StoreOptions { fsync: false },
        )
        .unwrap();
        (d, s)
    }

    /// A big APPEND of a message with bare LFs and a binary part: its
    /// served size needs the MIME structure (the binary body is served as
    /// stored), so the name gets no `W=` and RFC822.SIZE is computed from
    /// the saved file, equal to what `BODY[]` serves. The word "binary" is
    /// found even cut between two writes.
    #[test]
    fn a_spooled_binary_part_gets_its_served_size() {
        let msg: &[u8] = b"Content-Type: multipart/mixed; boundary=z\n\n--z\n\
            Content-Transfer-Encoding: binary\nContent-Type: application/x\n\n\
            a\nb\nc\n--z--\n";
        let cut = memchr::memmem::find(msg, b"binary").unwrap() + 3;
        for (i, plain) in [(0usize, false), (1, true)] {
            let (_d, s) = store();
            let mut sp = s.spool().unwrap();
            let body: Vec<u8> = if plain {
                msg.to_vec()
                    .iter()
                    .map(|&b| if b == b'y' { b'q' } else { b })
                    .collect()
            } else {
                msg.to_vec()
            };
            sp.begin(body.len() as u64).unwrap();
            sp.write(&body[..cut]).unwrap();
            sp.write(&body[cut..]).unwrap();
            assert_eq!(sp.end().unwrap(), 0);
            let bare = body.iter().filter(|&&b| b == b'\n').count() as u64;
            let want = (plain).then_some(body.len() as u64 + bare);
            assert_eq!(sp.part(0).unwrap().crlf_len, want, "case {i}");
            let folder = s.open_folder_for_write("INBOX").unwrap();
            let uid = folder
                .append_spooled(&sp, 0, &crate::flags::Flags::default(), None)
                .unwrap();
            let served = crate::message::to_crlf(&folder.read_message(uid).unwrap());
            assert_eq!(
                folder.rfc822_size(uid).unwrap(),
                served.len() as u64,
                "case {i}"
            );
        }
    }

    #[test]
    fn parts_count_their_bare_lfs_across_writes_and_leave_no_file() {
        let (d, s) = store();
        let mut sp = s.spool().unwrap();
        sp.begin(7).unwrap();
        // A CR at the end of one write and its LF at the start of the next
        // is one CRLF, not a bare LF.
        sp.write(b"a\r").unwrap();
        sp.write(b"\nb\n").unwrap();
        sp.write(b"\nc").unwrap();
        assert_eq!(sp.end().unwrap(), 0);
        sp.begin(2).unwrap();
        sp.write(b"\n\n").unwrap();
        assert!(sp.write(b"x").is_err(), "longer than announced");
        assert_eq!(sp.end().unwrap(), 1);
        assert_eq!(
            sp.part(0),
            Some(Part {
                offset: 0,
                len: 7,
                crlf_len: Some(9),
                has_nul: false
            })
        );
        assert_eq!(
            sp.part(1),
            Some(Part {
                offset: 7,
                len: 2,
                crlf_len: Some(4),
                has_nul: false
            })
        );
        assert!(sp.whole_file(0).is_none(), "two parts: copied, not linked");
        sp.begin(3).unwrap();
        sp.write(b"ab").unwrap();
        assert!(sp.end().is_err(), "shorter than announced");
        let out = tempfile::tempfile().unwrap();
        sp.copy_part(1, &out).unwrap();
        sp.copy_part(0, &out).unwrap();
        let mut got = vec![0u8; 9];
        out.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, b"\n\na\r\nb\n\nc");
        let tmp = d.path().join("Maildir/tmp");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        drop(sp);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }

    /// Saves `parts` through a spool (made `unnamed` or not) into INBOX;
    /// returns the spool's inode and the saved files' inodes and contents.
    fn save(unnamed: bool, parts: &[&[u8]]) -> (u64, Vec<(u64, Vec<u8>)>) {
        use std::os::unix::fs::MetadataExt;
        let (d, s) = store();
        let mut sp = s.spool_with(unnamed).unwrap();
        for p in parts {
            sp.begin(p.len() as u64).unwrap();
            sp.write(p).unwrap();
            sp.end().unwrap();
        }
        let tmp = d.path().join("Maildir/tmp");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "named");
        let folder = s.open_folder_for_write("INBOX").unwrap();
        for i in 0..parts.len() {
            folder
                .append_spooled(&sp, i, &crate::flags::Flags::default(), Some(1_000_000_000))
                .unwrap();
        }
        let ino = sp.file.metadata().unwrap().ino();
        drop(sp);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "left in tmp/");
        let mut saved: Vec<_> = std::fs::read_dir(d.path().join("Maildir/cur"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let m = std::fs::metadata(&p).unwrap();
                assert_eq!(m.mtime(), 1_000_000_000, "INTERNALDATE");
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let body = std::fs::read(&p).unwrap();
                let crlf = crate::message::crlf_size(&body);
                assert!(
                    name.contains(&format!(",S={},W={crlf}", body.len()))
                        || (crate::message::may_have_binary(&body)
                            && !name.contains(",W=")
                            && name.contains(&format!(",S={}", body.len()))),
                    "{name}"
                );
                (m.ino(), body)
            })
            .collect();
        saved.sort_by(|a, b| a.1.cmp(&b.1));
        (ino, saved)
    }

    #[test]
    fn a_spool_of_one_message_is_linked_into_place_and_others_are_copied() {
        let (ino, saved) = save(true, &[b"one\nmessage\r\n"]);
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].1, b"one\nmessage\r\n");
        assert_eq!(saved[0].0, ino, "linked, not copied");
        let (ino, saved) = save(true, &[b"b: two\n", b"a: one\n\n"]);
        assert_eq!(
            saved.iter().map(|s| &s.1[..]).collect::<Vec<_>>(),
            [&b"a: one\n\n"[..], b"b: two\n"]
        );
        assert!(saved.iter().all(|s| s.0 != ino), "copied");
        // Without O_TMPFILE: a named file unlinked at once, then copied.
        let (ino, saved) = save(false, &[b"only\n"]);
        assert_eq!(saved[0].1, b"only\n");
        assert_ne!(saved[0].0, ino);
    }

    #[test]
    fn quota_is_asked_before_the_bytes_come() {
        let (d, s) = store();
        std::fs::write(d.path().join("Maildir/maildirsize"), "100S\n0 0\n").unwrap();
        let mut sp = s.spool().unwrap();
        sp.begin(60).unwrap();
        sp.write(&[b'x'; 60]).unwrap();
        sp.end().unwrap();
        assert!(matches!(sp.begin(50), Err(StoreError::OverQuota)));
        sp.begin(40).unwrap();
    }

    #[test]
    fn a_symlinked_tmp_is_refused() {
        let (d, s) = store();
        let outside = tempfile::tempdir().unwrap();
        let tmp = d.path().join("Maildir/tmp");
        std::fs::remove_dir(&tmp).unwrap();
        std::os::unix::fs::symlink(outside.path(), &tmp).unwrap();
        let e = s.spool().unwrap_err();
        assert!(matches!(&e, StoreError::Cannot(_)), "{e}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
