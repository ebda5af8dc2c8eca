//! nestbox's own per-folder index (`nestbox.index`) and cache
//! (`nestbox.cache`).
//!
//! Both are accelerators: deleting them loses no UID (the uidlist owns
//! UIDs), only modseqs, which then restart above anything handed out
//! before. Owns their binary formats; it never decides what the state is.
//!
//! `nestbox.index` is rewritten whole and atomically:
//! magic `NBIDX007`, header fields, the uidlist seal (below), the uidlist
//! extension fields of the messages that have any (below), the expunge
//! memory (below), one record per
//! message (UID, file name, modseq, mtime, size, keywords that have no
//! letter), then a CRC-32 of everything before it (in a 64-bit field)
//! except the header's `clean` byte. Any mismatch means "no index". Older
//! images still read: `NBIDX006` (no expunge memory: it starts empty, as
//! if the index had been lost), `NBIDX005` (no extension fields) without its seal,
//! so the folder reads the uidlist once and takes the fields from there;
//! `NBIDX004` (the format before the seal) as it is. The one write in place is
//! [`mark_unclean`]: a single byte, `clean` 1 -> 0, so that the first change
//! after opening a folder does not have to rewrite the whole file (11 MB at
//! 100,000 messages) with the folder locked. A torn write cannot happen to
//! one byte, and both values are valid images.
//!
//! The uidlist seal ([`UidlistSeal`]) names the `dovecot-uidlist` the
//! index's messages were checked against: its identity (inode, size,
//! mtime, ctime), header fields, and the records of files the folder had
//! not seen, as opaque bytes the folder writes and reads. Dovecot keeps
//! the same (the uidlist's mtime and size in its index header) so that
//! opening a folder need not read a uidlist nobody changed: at 100,000
//! messages that is 8 MB parsed on every open from disk.
//!
//! The extension fields ([`IndexData::fields`]) are what the uidlist says
//! about a message beyond its UID and sizes: Dovecot's `P` (a POP3 UIDL
//! kept from a migration), `O`, `G`. A folder opened under the seal does
//! not read the uidlist, so the index must hold them; kept as uidlist
//! record lines of just the messages that have any (opaque bytes here,
//! like the seal's `unseen`), they cost nothing in a folder without them,
//! where a field in every message record would cost 4 bytes a message.
//!
//! The expunge memory ([`ExpungeMemory`]) is the folder's log of expunged
//! UIDs with the modseq each took, so that a QRESYNC client that comes
//! back after a restart is told exactly which of its messages vanished
//! (`VANISHED (EARLIER)`) instead of every UID it knows that is not here.
//! Kept as runs (first UID, first modseq, length) of consecutive UIDs that
//! took consecutive modseqs, which is what one EXPUNGE of many messages
//! makes: at most 10,000 entries (the folder's bound), so at most 160 KB
//! and usually a few hundred bytes.
//!
//! `nestbox.cache` holds the session's encoded ENVELOPE/BODYSTRUCTURE/BODY
//! per UID. It is append-only (`NBCCH003` + UIDVALIDITY, then entries each
//! with its own checksum), so filling the cache never rewrites what is
//! already there; a torn or corrupt tail is ignored. Message content never
//! changes for a UID, so an entry is valid as long as the UIDVALIDITY is.

use std::io::{self, Write};

use crate::store::beneath::{Dir, OFlags};
use std::sync::Arc;

pub const FILE: &str = "nestbox.index";
pub const CACHE_FILE: &str = "nestbox.cache";
const MAGIC: &[u8; 8] = b"NBIDX007";
/// The format before the expunge memory: read (with none), never written.
const MAGIC_006: &[u8; 8] = b"NBIDX006";
/// The format before the extension fields: read (without its seal, see
/// the module doc), never written.
const MAGIC_005: &[u8; 8] = b"NBIDX005";
/// The format before the uidlist seal: read, never written.
const MAGIC_004: &[u8; 8] = b"NBIDX004";
/// Where the `clean` byte sits: after the magic, UIDVALIDITY, next UID,
/// HIGHESTMODSEQ and last UIDVALIDITY.
const CLEAN_AT: usize = 8 + 4 + 4 + 8 + 4;
/// 003: BODYSTRUCTURE sizes count binary parts as stored and the header
/// digest keeps the blank line only when the message has one (issue 16);
/// an older cache is dropped and rebuilt as messages are fetched.
const CACHE_MAGIC: &[u8; 8] = b"NBCCH003";

/// One message as the index remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexMsg {
    pub uid: u32,
    pub fname: String,
    pub in_new: bool,
    pub modseq: u64,
    pub mtime: i64,
    pub size: Option<u64>,
    /// Inode of the file (0: unknown).
    pub ino: u64,
    /// Keywords that have no letter in `dovecot-keywords` (the 27th and later).
    pub extra_keywords: Vec<String>,
}

/// A whole index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexData {
    pub uidvalidity: u32,
    pub next_uid: u32,
    pub highest_modseq: u64,
    /// The highest UIDVALIDITY this folder ever had (to pick a larger one if
    /// the uidlist is lost).
    pub last_uidvalidity: u32,
    /// Written when the folder was closed: the modseqs are complete.
    pub clean: bool,
    /// Full-precision mtimes of `new/` and `cur/` at the last scan, and when
    /// that scan started (ns since the epoch).
    pub new_mtime: i128,
    pub cur_mtime: i128,
    pub scan_time: i128,
    /// The uidlist this index agrees with (`None`: check it against the
    /// uidlist on disk, as before the seal).
    pub uidlist: Option<UidlistSeal>,
    /// The uidlist extension fields of the messages that have any, in the
    /// uidlist's own line format (see the module doc; the folder writes
    /// and parses them, opaque here).
    pub fields: Vec<u8>,
    /// The expunge log (`None`: an image from before it was kept).
    pub expunges: Option<ExpungeMemory>,
    pub msgs: Vec<IndexMsg>,
}

/// The folder's expunge log as the index keeps it (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpungeMemory {
    /// The log holds every expunge whose modseq is above this.
    pub floor: u64,
    /// `(uid, modseq)` of each expunge, in the order they happened
    /// (ascending modseq).
    pub entries: Vec<(u32, u64)>,
}

impl ExpungeMemory {
    fn encode(&self, w: &mut W) {
        w.u64(self.floor);
        let mut runs: Vec<(u32, u64, u32)> = Vec::new();
        for &(uid, modseq) in &self.entries {
            match runs.last_mut() {
                Some((u, m, n))
                    if u64::from(*u) + u64::from(*n) == u64::from(uid)
                        && *m + u64::from(*n) == modseq =>
                {
                    *n += 1
                }
                _ => runs.push((uid, modseq, 1)),
            }
        }
        w.u32(runs.len() as u32);
        for (uid, modseq, n) in runs {
            w.u32(uid);
            w.u64(modseq);
            w.u32(n);
        }
    }

    /// `None` if malformed; never more entries than [`EXPUNGE_MEMORY_MAX`].
    fn decode(r: &mut impl Src) -> Option<Self> {
        let floor = r.u64()?;
        let runs = r.u32()?;
        let mut entries = Vec::new();
        for _ in 0..runs {
            let uid = r.u32()?;
            let modseq = r.u64()?;
            let n = r.u32()?;
            if n == 0 || entries.len() + n as usize > EXPUNGE_MEMORY_MAX {
                return None;
            }
            for k in 0..n {
                entries.push((uid.checked_add(k)?, modseq.checked_add(k.into())?));
            }
        }
        Some(ExpungeMemory { floor, entries })
    }
}

/// The most expunges an index remembers (the folder's log is cut there).
pub const EXPUNGE_MEMORY_MAX: usize = 10_000;

/// The `dovecot-uidlist` an index was written against: when the file on
/// disk still has this identity, the index holds all it says (its
/// messages' UIDs, and `unseen`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UidlistSeal {
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
    /// ctime cannot be set from user space: a file edited and given its
    /// old mtime back still differs here.
    pub ctime_ns: i128,
    pub version: u32,
    pub guid: String,
    /// The records of files the folder had not seen, in the uidlist's own
    /// line format (the folder writes and parses them; opaque here).
    pub unseen: Vec<u8>,
}

/// The checksum of both files: CRC-32 (`crc32fast`, which uses the CPU's
/// carry-less multiply). It replaced a byte-at-a-time FNV-1a that cost
/// about 30 ms per write or load of a 100,000-message index and a few
/// percent of a first `FETCH 1:* ENVELOPE` (every cache entry is summed).
fn checksum(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// The index's checksum: over `body` with the `clean` byte read as 0, so
/// that [`mark_unclean`] keeps the image valid.
fn index_checksum(body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    match body.get(CLEAN_AT + 1..) {
        Some(rest) => {
            h.update(&body[..CLEAN_AT]);
            h.update(&[0]);
            h.update(rest);
        }
        None => h.update(body),
    }
    h.finalize()
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i128(&mut self, v: i128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

/// Bounds-checked reader of bytes in memory: every getter returns `None`
/// past the end (the index decoder reads through [`Src`]).
struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// One message as [`encode_parts`] takes it: borrowed from the folder's
/// state, so writing the index of a big folder copies no names.
pub struct IndexMsgRef<'a> {
    pub uid: u32,
    pub fname: &'a str,
    pub in_new: bool,
    pub modseq: u64,
    pub mtime: i64,
    pub size: Option<u64>,
    pub ino: u64,
    pub extra_keywords: &'a [String],
}

/// The file image of an index (see the module doc for the layout).
/// Tests only: the folder encodes its own records with [`encode_parts`].
#[cfg(test)]
pub fn encode(d: &IndexData) -> Vec<u8> {
    encode_parts(
        d,
        d.msgs.iter().map(|m| IndexMsgRef {
            uid: m.uid,
            fname: &m.fname,
            in_new: m.in_new,
            modseq: m.modseq,
            mtime: m.mtime,
            size: m.size,
            ino: m.ino,
            extra_keywords: &m.extra_keywords,
        }),
    )
}

/// The file image of an index (see the module doc for the layout) with the
/// header fields from `d` (its `msgs` are ignored) and the messages from
/// `msgs`: the folder's own records, without a list of `IndexMsg`s.
pub fn encode_parts<'a>(
    d: &IndexData,
    msgs: impl ExactSizeIterator<Item = IndexMsgRef<'a>>,
) -> Vec<u8> {
    // A record is 49 bytes plus the file name (about 80 bytes for names with
    // `,S=` and `,W=`): growing the buffer by doubling copied ~10 MB more at
    // 100,000 messages, with the folder locked.
    let mut w = W(Vec::with_capacity(64 + msgs.len() * 144));
    w.0.extend_from_slice(MAGIC);
    w.u32(d.uidvalidity);
    w.u32(d.next_uid);
    w.u64(d.highest_modseq);
    w.u32(d.last_uidvalidity);
    w.u8(d.clean as u8);
    w.i128(d.new_mtime);
    w.i128(d.cur_mtime);
    w.i128(d.scan_time);
    match &d.uidlist {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.u64(s.ino);
            w.u64(s.len);
            w.i128(s.mtime_ns);
            w.i128(s.ctime_ns);
            w.u32(s.version);
            w.bytes(s.guid.as_bytes());
            w.bytes(&s.unseen);
        }
    }
    w.bytes(&d.fields);
    d.expunges.clone().unwrap_or_default().encode(&mut w);
    w.u32(msgs.len() as u32);
    for m in msgs {
        w.u32(m.uid);
        w.bytes(m.fname.as_bytes());
        w.u8(m.in_new as u8);
        w.u64(m.modseq);
        w.u64(m.mtime as u64);
        w.u64(m.size.unwrap_or(u64::MAX));
        w.u64(m.ino);
        w.u32(m.extra_keywords.len() as u32);
        for k in m.extra_keywords {
            w.bytes(k.as_bytes());
        }
    }
    let sum = index_checksum(&w.0);
    w.u64(sum.into());
    w.0
}

/// Parses a file image; `None` unless it is complete and intact.
/// Tests only: the folder reads the file through [`load_with`].
#[cfg(test)]
pub fn decode(data: &[u8]) -> Option<IndexData> {
    let mut msgs = Vec::new();
    let mut d = decode_with(data, |m, n| {
        msgs.reserve(n);
        msgs.push(m);
    })?;
    d.msgs = msgs;
    Some(d)
}

/// [`decode`] handing each message to `each` instead of collecting them,
/// with the number of messages from it to the last (for a reserve):
/// the folder makes its own record of each at once, without a list of
/// 100,000 `IndexMsg`s in between. The returned `msgs` is empty. On
/// `None`, whatever `each` got must be dropped (here the checksum is
/// verified before any message is handed out; [`load_with`] verifies it
/// at the end). Tests only, like [`decode`].
#[cfg(test)]
pub fn decode_with(data: &[u8], each: impl FnMut(IndexMsg, usize)) -> Option<IndexData> {
    let body_len = data.len().checked_sub(8)?;
    let (body, sum) = data.split_at(body_len);
    if u64::from(index_checksum(body)) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut r = R(body);
    let d = decode_body(&mut r, each)?;
    r.0.is_empty().then_some(d)
}

/// What the index decoder reads from: a whole image in memory ([`R`]) or
/// the file through a small buffer ([`Chunked`]). Every getter returns
/// `None` past the end of the body (the checksum is not part of it).
trait Src {
    fn take(&mut self, n: usize) -> Option<&[u8]>;
    /// Bytes of the body not taken yet.
    fn left(&self) -> u64;
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&[u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        let b = self.bytes()?;
        // File names are nearly always ASCII, which `is_ascii` checks a
        // word at a time; `from_utf8` cost a tenth of opening a folder of
        // 100,000 messages from its index.
        if b.is_ascii() {
            // SAFETY: ASCII is valid UTF-8.
            return Some(unsafe { String::from_utf8_unchecked(b.to_vec()) });
        }
        std::str::from_utf8(b).ok().map(str::to_owned)
    }
}

impl Src for R<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        R::take(self, n)
    }
    fn left(&self) -> u64 {
        self.0.len() as u64
    }
}

/// The index file read through a fixed buffer, checksummed as it is read.
/// Reading the whole file first took 11 MB of fresh memory at 100,000
/// messages (2,800 page faults on every open from disk) for bytes that
/// are each looked at once.
struct Chunked<F> {
    src: F,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Body bytes not yet read from `src`.
    unread: u64,
    /// File offset of `buf[end]`.
    offset: u64,
    crc: crc32fast::Hasher,
}

/// The buffer [`Chunked`] reads through (grown only for a longer field).
const CHUNK: usize = 256 * 1024;

impl<F: io::Read> Chunked<F> {
    fn new(src: F, body_len: u64, chunk: usize) -> Self {
        Chunked {
            src,
            buf: vec![0; chunk.max(1)],
            pos: 0,
            end: 0,
            unread: body_len,
            offset: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Checksums `buf[from..from + n]`, just read; the `clean` byte counts
    /// as 0 (see [`index_checksum`]).
    fn sum(&mut self, from: usize, n: usize) {
        let bytes = &self.buf[from..from + n];
        let at = CLEAN_AT as u64;
        if (self.offset..self.offset + n as u64).contains(&at) {
            let i = (at - self.offset) as usize;
            self.crc.update(&bytes[..i]);
            self.crc.update(&[0]);
            self.crc.update(&bytes[i + 1..]);
        } else {
            self.crc.update(bytes);
        }
        self.offset += n as u64;
    }

    /// After the whole body is taken: whether the checksum that follows it
    /// matches.
    fn verify(mut self) -> Option<()> {
        if self.pos != self.end || self.unread != 0 {
            return None;
        }
        let mut sum = [0u8; 8];
        self.src.read_exact(&mut sum).ok()?;
        (u64::from(self.crc.finalize()) == u64::from_le_bytes(sum)).then_some(())
    }
}

impl<F: io::Read> Chunked<F> {
    /// Makes `n` bytes available at `pos` by reading more (the rare path
    /// of [`Src::take`], kept out of line so that the usual one, a few
    /// instructions, is inlined into every field read). `None` if the body
    /// has fewer bytes left, or reading fails.
    #[inline(never)]
    fn fill(&mut self, n: usize) -> Option<()> {
        if n as u64 > (self.end - self.pos) as u64 + self.unread {
            return None;
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n {
            let room = (self.buf.len() - self.end).min(usize::try_from(self.unread).ok()?);
            let got = match self.src.read(&mut self.buf[self.end..self.end + room]) {
                Ok(0) => return None,
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            };
            self.sum(self.end, got);
            self.end += got;
            self.unread -= got as u64;
        }
        Some(())
    }
}

impl<F: io::Read> Src for Chunked<F> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.end - self.pos < n {
            self.fill(n)?;
        }
        let taken = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(taken)
    }

    fn left(&self) -> u64 {
        (self.end - self.pos) as u64 + self.unread
    }
}

/// The body of an index image (everything before the checksum), from
/// `r`; `None` if it is malformed. The caller checks that `r` is used up
/// and that the checksum matches.
fn decode_body(r: &mut impl Src, mut each: impl FnMut(IndexMsg, usize)) -> Option<IndexData> {
    let magic = r.take(8)?;
    let (sealed, fields, expunges) = match magic {
        m if m == MAGIC => (true, true, true),
        m if m == MAGIC_006 => (true, true, false),
        m if m == MAGIC_005 => (true, false, false),
        m if m == MAGIC_004 => (false, false, false),
        _ => return None,
    };
    let mut d = IndexData {
        uidvalidity: r.u32()?,
        next_uid: r.u32()?,
        highest_modseq: r.u64()?,
        last_uidvalidity: r.u32()?,
        // Outside the checksum: only the two values it may take.
        clean: match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        },
        new_mtime: r.i128()?,
        cur_mtime: r.i128()?,
        scan_time: r.i128()?,
        uidlist: None,
        fields: Vec::new(),
        expunges: None,
        msgs: Vec::new(),
    };
    if sealed {
        d.uidlist = match r.u8()? {
            0 => None,
            1 => Some(UidlistSeal {
                ino: r.u64()?,
                len: r.u64()?,
                mtime_ns: r.i128()?,
                ctime_ns: r.i128()?,
                version: r.u32()?,
                guid: r.string()?,
                unseen: r.bytes()?.to_vec(),
            }),
            _ => return None,
        };
    }
    if fields {
        d.fields = r.bytes()?.to_vec();
    } else {
        // Without the fields, the seal would let the folder open without
        // reading the uidlist, and so without them (see the module doc).
        d.uidlist = None;
    }
    if expunges {
        d.expunges = Some(ExpungeMemory::decode(r)?);
    }
    let n = r.u32()? as usize;
    // Each record takes at least 45 bytes: a bad count cannot make us
    // allocate more than the file could hold.
    let at_most = n.min(usize::try_from(r.left() / 45).unwrap_or(usize::MAX));
    for i in 0..n {
        let uid = r.u32()?;
        let fname = r.string()?;
        let in_new = r.u8()? != 0;
        let modseq = r.u64()?;
        let mtime = r.u64()? as i64;
        let size = Some(r.u64()?).filter(|&s| s != u64::MAX);
        let ino = r.u64()?;
        let k = r.u32()? as usize;
        let mut extra_keywords = Vec::with_capacity(k.min(64));
        for _ in 0..k {
            extra_keywords.push(r.string()?);
        }
        let later = at_most.saturating_sub(i);
        each(
            IndexMsg {
                uid,
                fname,
                in_new,
                modseq,
                mtime,
                size,
                ino,
                extra_keywords,
            },
            later,
        );
    }
    Some(d)
}

/// What is wrong with an index image, as `nestbox index check` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Shorter than a header and its checksum.
    Truncated,
    /// Not one of the formats this version reads (its first 8 bytes).
    UnknownFormat,
    /// The CRC-32 at its end does not match its bytes.
    BadChecksum,
    /// The checksum matches but the records do not parse (or bytes follow
    /// them): written by a broken writer, never by a torn write.
    Malformed,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Damage::Truncated => "truncated",
            Damage::UnknownFormat => "not an index of a format this version reads",
            Damage::BadChecksum => "bad checksum",
            Damage::Malformed => "records do not parse",
        })
    }
}

/// Reads a whole index image with its messages, or says why it is not one
/// (the folder itself only needs "valid or not", [`load_with`]; the
/// operator's check names the problem).
pub fn inspect(image: &[u8]) -> Result<IndexData, Damage> {
    let body_len = image
        .len()
        .checked_sub(8)
        .filter(|&n| n > CLEAN_AT)
        .ok_or(Damage::Truncated)?;
    let magic = &image[..8];
    if ![MAGIC, MAGIC_006, MAGIC_005, MAGIC_004]
        .iter()
        .any(|m| &m[..] == magic)
    {
        return Err(Damage::UnknownFormat);
    }
    let (body, sum) = image.split_at(body_len);
    let sum = u64::from_le_bytes(sum.try_into().map_err(|_| Damage::Truncated)?);
    if u64::from(index_checksum(body)) != sum {
        return Err(Damage::BadChecksum);
    }
    let mut msgs = Vec::new();
    let mut r = R(body);
    let mut d = decode_body(&mut r, |m, _| msgs.push(m)).ok_or(Damage::Malformed)?;
    if !r.0.is_empty() {
        return Err(Damage::Malformed);
    }
    d.msgs = msgs;
    Ok(d)
}

/// Loads the index of the folder at `dir` with its messages collected;
/// `None` if missing or not valid. The folder itself uses [`load_with`];
/// this is for tests.
#[cfg(test)]
pub fn load(dir: &std::path::Path) -> Option<IndexData> {
    let mut msgs = Vec::new();
    let mut d = load_with(&Dir::open_root(dir).ok()?, |m, _| msgs.push(m))?;
    d.msgs = msgs;
    Some(d)
}

/// Loads the index of the folder at `dir`, handing each message to `each`
/// with the number of messages from it to the last (for a reserve), so the
/// folder makes its own record of each at once; reads the file through a
/// buffer (`Chunked`) and verifies the checksum at the end; `None` if missing
/// or not valid (a corrupt index is logged and then ignored: it is only a
/// cache), and then whatever `each` got must be dropped.
pub fn load_with(dir: &Dir, each: impl FnMut(IndexMsg, usize)) -> Option<IndexData> {
    let f = dir.open(FILE).ok()?;
    let len = f.metadata().ok()?.len();
    let d = read_with(f, len, CHUNK, each);
    if d.is_none() {
        tracing::warn!(dir = %dir.display(), "ignoring corrupt nestbox.index");
    }
    d
}

/// [`load_with`] of an open file of `len` bytes, through a buffer of
/// `chunk` bytes; the checksum is verified at the end, so on `None`
/// whatever `each` got must be dropped.
fn read_with(
    f: impl io::Read,
    len: u64,
    chunk: usize,
    each: impl FnMut(IndexMsg, usize),
) -> Option<IndexData> {
    let body_len = len.checked_sub(8)?;
    let mut r = Chunked::new(f, body_len, chunk);
    let d = decode_body(&mut r, each)?;
    r.verify()?;
    Some(d)
}

/// [`save_image`] of [`encode`]. Tests only: the folder writes an image
/// of its own records.
#[cfg(test)]
pub fn save(dir: &std::path::Path, d: &IndexData) -> io::Result<()> {
    save_image(&Dir::open_root(dir)?, &encode(d))
}

/// Writes an index image made with [`encode_parts`] atomically. It is not
/// fsynced: a torn index after a crash fails its checksum and is rebuilt.
pub fn save_image(dir: &Dir, image: &[u8]) -> io::Result<()> {
    dir.write_atomic(FILE, image, super::FILE_MODE, false)
}

/// Turns the index at `dir` into one that no longer claims complete
/// modseqs, in place: its `clean` byte becomes 0 (the checksum leaves that
/// byte out). `Ok(false)` when there is no index of this format to mark
/// (missing, or another magic): the caller then writes a whole one.
///
/// Like [`save_image`], not fsynced: a crash of the process (what this
/// guards against) keeps the byte, which is in the page cache by then; a
/// power loss may drop it, as it may drop a whole-file write.
pub fn mark_unclean(dir: &Dir) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = match dir.open_with(FILE, OFlags::RDWR, 0) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut head = [0u8; CLEAN_AT + 1];
    if f.read_exact_at(&mut head, 0).is_err() || &head[..8] != MAGIC {
        return Ok(false);
    }
    if head[CLEAN_AT] != 0 {
        f.write_all_at(&[0], CLEAN_AT as u64)?;
    }
    Ok(true)
}

/// A cache field's number in the cache file.
pub type FieldNo = u8;

/// The cache entries of a folder: `(uid, field) -> bytes`.
pub type CacheMap = rustc_hash::FxHashMap<(u32, FieldNo), Arc<[u8]>>;

fn cache_entry(w: &mut W, uid: u32, field: FieldNo, data: &[u8]) {
    let start = w.0.len();
    w.u32(uid);
    w.u8(field);
    w.bytes(data);
    let sum = checksum(&w.0[start..]);
    w.u32(sum);
}

/// Loads the cache; entries of another UIDVALIDITY, and everything after a
/// torn or corrupt entry, are ignored. Returns the map and the number of
/// entries in the file (to decide when to compact), or `usize::MAX` when
/// the file must be rewritten before appending (bad tail, wrong
/// UIDVALIDITY) so that new entries do not land after garbage.
pub fn load_cache(dir: &Dir, uidvalidity: u32) -> (CacheMap, usize) {
    let mut map = CacheMap::default();
    let data = match dir.read(CACHE_FILE) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (map, 0),
        Err(_) => return (map, usize::MAX),
    };
    let mut r = R(&data);
    if r.take(8) != Some(&CACHE_MAGIC[..]) || r.u32() != Some(uidvalidity) {
        return (map, usize::MAX);
    }
    let mut count = 0;
    loop {
        let before = r.0;
        let entry = (|| {
            let uid = r.u32()?;
            let field = r.u8()?;
            let bytes = r.bytes()?;
            let used = before.len() - r.0.len();
            let sum = r.u32()?;
            (checksum(before.get(..used)?) == sum).then_some((uid, field, bytes))
        })();
        match entry {
            Some((uid, field, bytes)) => {
                map.insert((uid, field), Arc::from(bytes));
                count += 1;
            }
            None => {
                if !before.is_empty() {
                    count = usize::MAX;
                }
                break;
            }
        }
    }
    (map, count)
}

/// Appends entries to the cache file (creating it, or starting it afresh
/// with `rewrite`, e.g. for compaction or a new UIDVALIDITY).
pub fn append_cache(
    dir: &Dir,
    uidvalidity: u32,
    entries: &[(u32, FieldNo, Arc<[u8]>)],
    rewrite: bool,
) -> io::Result<()> {
    let mut w = W(Vec::new());
    if rewrite {
        w.0.extend_from_slice(CACHE_MAGIC);
        w.u32(uidvalidity);
        for (uid, f, d) in entries {
            cache_entry(&mut w, *uid, *f, d);
        }
        return dir.write_atomic(CACHE_FILE, &w.0, super::FILE_MODE, false);
    }
    let mut f = dir.open_with(
        CACHE_FILE,
        OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
        super::FILE_MODE,
    )?;
    if f.metadata()?.len() == 0 {
        w.0.extend_from_slice(CACHE_MAGIC);
        w.u32(uidvalidity);
    }
    for (uid, fld, d) in entries {
        cache_entry(&mut w, *uid, *fld, d);
    }
    f.write_all(&w.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IndexData {
        IndexData {
            uidvalidity: 5,
            next_uid: 3,
            highest_modseq: 99,
            last_uidvalidity: 5,
            clean: true,
            new_mtime: 1,
            cur_mtime: -2,
            scan_time: 3,
            uidlist: Some(UidlistSeal {
                ino: 77,
                len: 4096,
                mtime_ns: 1_700_000_000_123_456_789,
                ctime_ns: 1_700_000_001_000_000_000,
                version: 3,
                guid: "0123abcd".into(),
                unseen: b"9 :1002.c.host\n".to_vec(),
            }),
            fields: b"1 P000003e95f3f8b80 O1 :a\n".to_vec(),
            expunges: Some(ExpungeMemory {
                floor: 50,
                entries: vec![(3, 60), (4, 61), (5, 62), (9, 70), (8, 71)],
            }),
            msgs: vec![
                IndexMsg {
                    uid: 1,
                    fname: "a:2,S".into(),
                    in_new: false,
                    modseq: 7,
                    mtime: 1700000000,
                    size: Some(10),
                    ino: 42,
                    extra_keywords: vec!["k27".into()],
                },
                IndexMsg {
                    uid: 2,
                    fname: "b".into(),
                    in_new: true,
                    modseq: 8,
                    mtime: -1,
                    size: None,
                    ino: 0,
                    extra_keywords: vec![],
                },
            ],
        }
    }

    #[test]
    fn index_round_trip_and_corruption() {
        let d = sample();
        let bytes = encode(&d);
        assert_eq!(decode(&bytes), Some(d));
        // Every truncation and every single-byte flip is rejected.
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), None, "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert_eq!(decode(&b), None, "flipped {i}");
        }
    }

    /// The file read through a small buffer (as a folder reads it, 256 KiB
    /// at a time) gives what the whole image decodes to, at any buffer
    /// size, and rejects every truncation and every flipped byte.
    #[test]
    fn reading_through_a_buffer_is_the_same_and_as_strict() {
        let mut d = sample();
        for uid in 3..40u32 {
            d.msgs.push(IndexMsg {
                uid,
                fname: format!("{uid}.M{}.host:2,S", "x".repeat(uid as usize * 7)),
                in_new: uid % 3 == 0,
                modseq: uid.into(),
                mtime: 1_700_000_000 + i64::from(uid),
                size: Some(uid.into()),
                ino: uid.into(),
                extra_keywords: (0..uid % 3).map(|k| format!("kw{k}")).collect(),
            });
        }
        let bytes = encode(&d);
        let read = |b: &[u8], chunk: usize| {
            let mut msgs = Vec::new();
            let got = read_with(b, b.len() as u64, chunk, |m, _| msgs.push(m));
            got.map(|g| IndexData { msgs, ..g })
        };
        for chunk in [1, 7, 64, 4096, CHUNK] {
            assert_eq!(read(&bytes, chunk), Some(d.clone()), "chunk {chunk}");
        }
        for n in 0..bytes.len() {
            assert_eq!(read(&bytes[..n], 64), None, "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert_eq!(read(&b, 64), None, "flipped {i}");
        }
        // Bytes after the last record, even under a valid checksum: rejected
        // (as a message count one short would be).
        let mut longer = bytes[..bytes.len() - 8].to_vec();
        longer.extend_from_slice(&[0u8; 3]);
        let sum = index_checksum(&longer);
        longer.extend_from_slice(&u64::from(sum).to_le_bytes());
        assert_eq!(read(&longer, 64), None);
        assert_eq!(decode(&longer), None);
    }

    /// Names that are not ASCII read back as written; bytes that are not
    /// UTF-8 in a name are refused even under a valid checksum.
    #[test]
    fn names_beyond_ascii_read_back_and_broken_ones_do_not() {
        let mut d = sample();
        d.msgs.push(IndexMsg {
            uid: 7,
            fname: "1700000000.M1.hôte-€:2,S".into(),
            in_new: false,
            modseq: 9,
            mtime: 1_700_000_000,
            size: Some(10),
            ino: 11,
            extra_keywords: vec!["Étiquette".into()],
        });
        let bytes = encode(&d);
        assert_eq!(decode(&bytes), Some(d.clone()));
        // Turn the `ô` (C3 B4) into C3 28: not UTF-8.
        let at = bytes
            .windows(2)
            .position(|w| w == [0xC3, 0xB4])
            .expect("the name is in the image");
        let mut broken = bytes[..bytes.len() - 8].to_vec();
        broken[at + 1] = 0x28;
        let sum = index_checksum(&broken);
        broken.extend_from_slice(&u64::from(sum).to_le_bytes());
        assert_eq!(decode(&broken), None);
        let got = read_with(&broken[..], broken.len() as u64, 64, |_, _| {});
        assert_eq!(got, None);
    }

    /// The format before the uidlist seal still reads (an upgrade keeps
    /// the index), without a seal; the same bytes under the new magic do
    /// not (the seal byte is missing).
    #[test]
    fn an_index_without_the_seal_still_reads() {
        let d = IndexData {
            uidlist: None,
            fields: Vec::new(),
            expunges: None,
            ..sample()
        };
        let new = encode(&d);
        // `NBIDX004` had everything but the seal's presence byte, the
        // fields (here empty: their length, 4 bytes of 0) and the expunge
        // memory (here empty: floor and run count, 12 bytes of 0).
        let seal_at = CLEAN_AT + 1 + 16 * 3;
        assert_eq!(new[seal_at..seal_at + 17], [0; 17]);
        let mut old = new[..new.len() - 8].to_vec();
        old.drain(seal_at..seal_at + 17);
        old[..8].copy_from_slice(MAGIC_004);
        let sum = index_checksum(&old);
        let mut old_file = old.clone();
        old_file.extend_from_slice(&u64::from(sum).to_le_bytes());
        assert_eq!(decode(&old_file), Some(d.clone()));
        let mut wrong = old;
        wrong[..8].copy_from_slice(MAGIC);
        let sum = index_checksum(&wrong);
        wrong.extend_from_slice(&u64::from(sum).to_le_bytes());
        assert_ne!(decode(&wrong), Some(d));
    }

    /// An `NBIDX005` image (a seal, no extension fields) reads with its
    /// messages but without its seal: the folder must read the uidlist,
    /// where the fields are, once.
    #[test]
    fn an_index_without_the_fields_reads_unsealed() {
        let d = IndexData {
            fields: Vec::new(),
            expunges: None,
            ..sample()
        };
        let new = encode(&d);
        let unseen = b"9 :1002.c.host\n";
        let fields_at = new
            .windows(unseen.len())
            .position(|w| w == unseen)
            .expect("the seal is in the image")
            + unseen.len();
        assert_eq!(new[fields_at..fields_at + 16], [0; 16]);
        let mut old = new[..new.len() - 8].to_vec();
        old.drain(fields_at..fields_at + 16);
        old[..8].copy_from_slice(MAGIC_005);
        let sum = index_checksum(&old);
        old.extend_from_slice(&u64::from(sum).to_le_bytes());
        assert_eq!(
            decode(&old),
            Some(IndexData {
                uidlist: None,
                ..d.clone()
            })
        );
        let read = read_with(&old[..], old.len() as u64, 64, |_, _| {});
        assert_eq!(read.map(|r| r.uidlist), Some(None));
    }

    /// An `NBIDX006` image (no expunge memory) reads with everything else
    /// and no memory: the folder then answers VANISHED from what it has
    /// seen since it opened (as before the memory was kept).
    #[test]
    fn an_index_without_the_expunge_memory_reads_without_it() {
        let d = IndexData {
            expunges: None,
            ..sample()
        };
        let new = encode(&d);
        let fields = &d.fields[..];
        let memory_at = new
            .windows(fields.len())
            .position(|w| w == fields)
            .expect("the fields are in the image")
            + fields.len();
        assert_eq!(new[memory_at..memory_at + 12], [0; 12]);
        let mut old = new[..new.len() - 8].to_vec();
        old.drain(memory_at..memory_at + 12);
        old[..8].copy_from_slice(MAGIC_006);
        let sum = index_checksum(&old);
        old.extend_from_slice(&u64::from(sum).to_le_bytes());
        assert_eq!(decode(&old), Some(d.clone()));
        let read = read_with(&old[..], old.len() as u64, 64, |_, _| {});
        assert_eq!(read, Some(IndexData { msgs: vec![], ..d }));
    }

    /// The expunge memory keeps runs: one EXPUNGE of 5,000 messages is one
    /// run of 16 bytes, and it reads back entry for entry; a run that would
    /// pass the bound is refused.
    #[test]
    fn the_expunge_memory_is_kept_as_runs() {
        let entries: Vec<(u32, u64)> = (0..5000).map(|k| (100 + k, 9000 + u64::from(k))).collect();
        let d = IndexData {
            expunges: Some(ExpungeMemory {
                floor: 8999,
                entries: entries.clone(),
            }),
            ..sample()
        };
        let empty = encode(&IndexData {
            expunges: Some(ExpungeMemory::default()),
            ..sample()
        });
        let image = encode(&d);
        assert_eq!(image.len(), empty.len() + 16);
        assert_eq!(
            decode(&image).and_then(|d| d.expunges).map(|e| e.entries),
            Some(entries)
        );
        let mut w = W(Vec::new());
        w.u64(0);
        w.u32(1);
        w.u32(1);
        w.u64(1);
        w.u32(EXPUNGE_MEMORY_MAX as u32 + 1);
        assert_eq!(ExpungeMemory::decode(&mut R(&w.0)), None);
    }

    /// `inspect` reads what `decode` reads, and names each kind of damage.
    #[test]
    fn inspect_names_the_damage() {
        let bytes = encode(&sample());
        assert_eq!(inspect(&bytes), Ok(sample()));
        assert_eq!(inspect(&bytes[..20]), Err(Damage::Truncated));
        assert_eq!(inspect(&bytes[..bytes.len() - 1]), Err(Damage::BadChecksum));
        let mut flipped = bytes.clone();
        flipped[60] ^= 1;
        assert_eq!(inspect(&flipped), Err(Damage::BadChecksum));
        let mut other = bytes.clone();
        other[..8].copy_from_slice(b"NBIDX999");
        assert_eq!(inspect(&other), Err(Damage::UnknownFormat));
        let mut longer = bytes[..bytes.len() - 8].to_vec();
        longer.push(0);
        let sum = index_checksum(&longer);
        longer.extend_from_slice(&u64::from(sum).to_le_bytes());
        assert_eq!(inspect(&longer), Err(Damage::Malformed));
    }

    #[test]
    fn marking_unclean_in_place_keeps_the_rest_of_the_index() {
        let dir = tempfile::tempdir().unwrap();
        // No index yet: nothing to mark, the caller writes one.
        assert!(!mark_unclean(&Dir::open_root(dir.path()).unwrap()).unwrap());
        let d = sample();
        save(dir.path(), &d).unwrap();
        assert!(mark_unclean(&Dir::open_root(dir.path()).unwrap()).unwrap());
        let got = load(dir.path()).expect("still a valid index");
        assert!(!got.clean);
        assert_eq!(IndexData { clean: true, ..got }, d);
        // Marking again changes nothing.
        assert!(mark_unclean(&Dir::open_root(dir.path()).unwrap()).unwrap());
        assert!(!load(dir.path()).unwrap().clean);
        // A file of another format is left alone.
        std::fs::write(
            dir.path().join(FILE),
            b"NBIDX003 and more bytes than a header",
        )
        .unwrap();
        assert!(!mark_unclean(&Dir::open_root(dir.path()).unwrap()).unwrap());
        assert!(
            std::fs::read(dir.path().join(FILE))
                .unwrap()
                .starts_with(b"NBIDX003")
        );
    }

    #[test]
    fn cache_append_reload_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let e1: Arc<[u8]> = Arc::from(&b"(env)"[..]);
        append_cache(
            &Dir::open_root(dir.path()).unwrap(),
            7,
            &[(1, 0, e1.clone())],
            false,
        )
        .unwrap();
        append_cache(
            &Dir::open_root(dir.path()).unwrap(),
            7,
            &[(2, 1, Arc::from(&b"(bs)"[..]))],
            false,
        )
        .unwrap();
        let (m, n) = load_cache(&Dir::open_root(dir.path()).unwrap(), 7);
        assert_eq!(n, 2);
        assert_eq!(m.get(&(1, 0)), Some(&e1));
        // Wrong UIDVALIDITY: nothing.
        let (m8, n8) = load_cache(&Dir::open_root(dir.path()).unwrap(), 8);
        assert!(m8.is_empty());
        assert_eq!(n8, usize::MAX);
        // A torn tail keeps what came before.
        let path = dir.path().join(CACHE_FILE);
        let mut data = std::fs::read(&path).unwrap();
        data.truncate(data.len() - 2);
        std::fs::write(&path, &data).unwrap();
        let (m, n) = load_cache(&Dir::open_root(dir.path()).unwrap(), 7);
        assert_eq!((m.len(), n), (1, usize::MAX));
        append_cache(
            &Dir::open_root(dir.path()).unwrap(),
            7,
            &[(3, 0, e1.clone())],
            true,
        )
        .unwrap();
        assert_eq!(load_cache(&Dir::open_root(dir.path()).unwrap(), 7).1, 1);
    }
}
