//! `dovecot-uidlist`: the authoritative UID <-> base name map of a folder.
//!
//! Owns parsing (format 3, and the old formats 1 and 2), appending records,
//! full atomic rewrites, and the import of Courier's
//! `courierimapuiddb`. It must never truncate or delete the uidlist: losing
//! it costs every client a full re-download (MAILDIR.md).
//!
//! Format 3 (what Dovecot writes and we write):
//! ```text
//! 3 V<uidvalidity> N<nextuid> G<guid>
//! <uid> [<key><value> ...] :<base name>
//! ```
//! Readers never lock. Writers that assign UIDs hold the dotlock, re-read
//! what others appended, then append their records (or rewrite the whole
//! file under a temporary name and rename it over the old one, making sure
//! the mtime increases because inode numbers are reused).
//!
//! The dotlock itself, and when a stale one is broken, is `dotlock.rs`'s.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;

use crate::store::beneath::{self, Dir, OFlags};

/// The file name inside a folder directory.
pub const FILE: &str = "dovecot-uidlist";
/// Courier's UID database, imported when there is no uidlist.
pub const COURIER: &str = "courierimapuiddb";

/// One record: a UID and the base name it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub uid: u32,
    pub base: String,
    /// `S<size>`: physical size.
    pub size: Option<u64>,
    /// `W<vsize>`: the CRLF size.
    pub vsize: Option<u64>,
    /// The other extension fields (Dovecot's `P` POP3 UIDL, `O` POP3
    /// order, `G` GUID, and any other `<key><value>` with an upper-case
    /// key), verbatim and in file order, separated by one space (see
    /// [`Parsed::fields`]); empty for nearly every record.
    pub extra: String,
}

impl Record {
    /// The record as a line to write.
    pub fn line(&self) -> Line<'_> {
        Line {
            uid: self.uid,
            base: &self.base,
            size: self.size,
            vsize: self.vsize,
            extra: &self.extra,
        }
    }
}

/// A record to write, borrowing its name: a folder writes its messages'
/// lines from the names it keeps, without copying 100,000 of them into
/// [`Record`]s first (8 MB of fresh memory on a cold open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub uid: u32,
    pub base: &'a str,
    pub size: Option<u64>,
    pub vsize: Option<u64>,
    /// [`Record::extra`]: written as it is after `S` and `W`.
    pub extra: &'a str,
}

impl Line<'_> {
    fn render(&self, out: &mut String) {
        // Written into `out` directly, numbers without `fmt` (a cold open
        // renders one line per message of the folder; `write!` made that
        // about 600 instructions a line).
        push_num(out, self.uid.into());
        if let Some(s) = self.size {
            out.push_str(" S");
            push_num(out, s);
        }
        if let Some(w) = self.vsize {
            out.push_str(" W");
            push_num(out, w);
        }
        if !self.extra.is_empty() {
            out.push(' ');
            out.push_str(self.extra);
        }
        out.push_str(" :");
        out.push_str(self.base);
        out.push('\n');
    }
}

/// Record lines as the file holds them (for keeping a few records
/// elsewhere, e.g. in the index's uidlist seal; [`parse_records`] with
/// version 3 reads them back).
pub fn render_lines<'a>(lines: impl Iterator<Item = Line<'a>>) -> Vec<u8> {
    let mut text = String::new();
    for l in lines {
        l.render(&mut text);
    }
    text.into_bytes()
}

/// The lines of `a` and `b`, each in ascending UID order, as one ascending
/// run with each UID once: a UID in both (or twice in one) is written as
/// its first line in `a`, else in `b`.
pub fn merge<'a, 'b: 'a>(
    a: impl Iterator<Item = Line<'a>>,
    b: impl Iterator<Item = Line<'b>>,
) -> impl Iterator<Item = Line<'a>> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut last: Option<u32> = None;
    std::iter::from_fn(move || {
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if y.uid < x.uid => b.next(),
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            }?;
            if last.is_none_or(|l| next.uid > l) {
                last = Some(next.uid);
                return Some(next);
            }
        }
    })
}

/// A fresh uidlist GUID (Dovecot's `G` field: 16 random bytes in hex).
pub fn new_guid() -> String {
    let guid: [u8; 16] = rand::random();
    guid.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends `v` in decimal.
fn push_num(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// A parsed uidlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uidlist {
    pub version: u32,
    pub uidvalidity: u32,
    /// The header's next UID; see [`Uidlist::next_uid`] for the effective one.
    pub header_next: u32,
    pub guid: String,
    pub records: Vec<Record>,
}

impl Uidlist {
    pub fn new(uidvalidity: u32, next: u32) -> Self {
        Uidlist {
            version: 3,
            uidvalidity,
            header_next: next.max(1),
            guid: new_guid(),
            records: Vec::new(),
        }
    }

    /// The next UID to assign: past both the header and every record.
    pub fn next_uid(&self) -> u32 {
        let last = self.records.iter().map(|r| r.uid).max().unwrap_or(0);
        self.header_next.max(last.saturating_add(1)).max(1)
    }

    /// [`Loaded::parse`], one [`Record`] per line. Tests only: the folder
    /// keeps the file's text ([`Loaded::load`]).
    #[cfg(test)]
    pub fn parse(data: &[u8]) -> io::Result<Self> {
        Loaded::parse(data.to_vec()).map(|l| l.to_uidlist())
    }

    /// The whole file. Tests only: the folder writes it from its own
    /// records.
    #[cfg(test)]
    pub fn render(&self) -> String {
        let mut out = header(self.uidvalidity, self.next_uid(), &self.guid);
        for r in &self.records {
            r.line().render(&mut out);
        }
        out
    }

    /// Reads the folder's uidlist whole; `Ok(None)` if there is none. The
    /// folder reads it in place ([`Loaded::load`]); this is for tests.
    #[cfg(test)]
    pub fn load(dir: &Dir) -> io::Result<Option<(Self, FileStamp)>> {
        Ok(Loaded::load(dir)?.map(|(l, stamp)| (l.to_uidlist(), stamp)))
    }

    /// Rewrites the whole file atomically. Call with the lock held.
    pub fn write(&self, dir: &Dir, fsync: bool) -> io::Result<FileStamp> {
        write_lines(
            dir,
            fsync,
            &header(self.uidvalidity, self.next_uid(), &self.guid),
            self.records.iter().map(Record::line),
        )
    }
}

/// A format 3 header line.
fn header(uidvalidity: u32, next_uid: u32, guid: &str) -> String {
    format!("3 V{uidvalidity} N{next_uid} G{guid}\n")
}

/// Rewrites the whole file atomically as `header` and `lines` (in the order
/// given, a line at a time: at 100,000 messages the text is 8 MB, which a
/// cold open should not build in memory; fresh pages are what a cold SELECT
/// waits for on a VM whose host takes freed memory back). Call with the
/// lock held.
fn write_lines<'a>(
    dir: &Dir,
    fsync: bool,
    header: &str,
    lines: impl Iterator<Item = Line<'a>>,
) -> io::Result<FileStamp> {
    let old_mtime = dir
        .stat(FILE)
        .ok()
        .map(|m| filetime::FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32));
    let tmp = format!(
        "{FILE}.{}.{}.tmp",
        std::process::id(),
        super::filename::host()
    );
    let written = (|| {
        // A name of ours from a crash (or planted: it is predictable) is
        // removed, not written through: the new file is created afresh.
        let _ = dir.unlink(&tmp);
        let f = dir.create_new(&tmp, super::FILE_MODE)?;
        let mut w = io::BufWriter::with_capacity(64 * 1024, f);
        w.write_all(header.as_bytes())?;
        let mut text = String::with_capacity(128);
        for l in lines {
            text.clear();
            l.render(&mut text);
            w.write_all(text.as_bytes())?;
        }
        w.into_inner().map_err(|e| e.into_error())
    })();
    // A full disk must not leave half a uidlist behind in the folder.
    let f = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = dir.unlink(&tmp);
            return Err(e);
        }
    };
    if fsync {
        f.sync_all()?;
    }
    // Readers detect a rewrite by mtime: it must go forward even when
    // two rewrites fall in one timestamp tick.
    let new_mtime = filetime::FileTime::from_last_modification_time(&f.metadata()?);
    if let Some(old) = old_mtime {
        if new_mtime <= old {
            let bumped = filetime::FileTime::from_unix_time(
                old.unix_seconds(),
                old.nanoseconds().saturating_add(1_000_000),
            );
            let bumped = if bumped.nanoseconds() >= 1_000_000_000 {
                filetime::FileTime::from_unix_time(old.unix_seconds() + 1, 0)
            } else {
                bumped
            };
            filetime::set_file_handle_times(&f, None, Some(bumped))?;
        }
    }
    drop(f);
    if let Err(e) = dir.rename(&tmp, dir, FILE) {
        let _ = dir.unlink(&tmp);
        return Err(e);
    }
    if fsync {
        dir.sync()?;
    }
    Ok(FileStamp::of_meta(&dir.stat(FILE)?))
}

/// A uidlist as read from disk: its header and the text of its records,
/// which [`Loaded::lines`] reads in place. Opening a folder needs a record
/// of its own only for the few lines whose file it has not seen; making
/// one of every line (a `Record` and its name: about 17 MB at 100,000
/// messages) was most of the memory a warm open touched.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub version: u32,
    pub uidvalidity: u32,
    /// The header's next UID (records may go past it).
    pub header_next: u32,
    pub guid: String,
    /// The file's text up to its last newline; the records start at
    /// `start` (complete lines only: a torn last line is left out).
    text: String,
    start: usize,
}

impl Loaded {
    /// Parses a whole file. A torn last line (a writer appending right now)
    /// is ignored; a bad header is `InvalidData`.
    pub fn parse(data: Vec<u8>) -> io::Result<Self> {
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        // Valid UTF-8 (the usual case) is taken as it is, without a copy.
        let text = String::from_utf8(data)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let (header, _) = text.split_once('\n').ok_or_else(|| bad("no header line"))?;
        let mut parts = header.split(' ');
        let version: u32 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("bad version"))?;
        let (mut uidvalidity, mut header_next, mut guid) = (0, 1, String::new());
        match version {
            1 | 2 => {
                uidvalidity = parts
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("bad uidvalidity"))?;
                header_next = parts
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("bad next uid"))?;
            }
            3 => {
                for p in parts {
                    let mut cs = p.chars();
                    let key = cs.next();
                    let val = cs.as_str();
                    match key {
                        Some('V') => uidvalidity = val.parse().map_err(|_| bad("bad V"))?,
                        Some('N') => header_next = val.parse().map_err(|_| bad("bad N"))?,
                        Some('G') => guid = val.to_string(),
                        _ => {}
                    }
                }
            }
            _ => return Err(bad("unknown version")),
        }
        if uidvalidity == 0 {
            return Err(bad("zero uidvalidity"));
        }
        // The records: from after the header line up to the last newline.
        let start = header.len() + 1;
        let end = text.rfind('\n').map_or(start, |i| (i + 1).max(start));
        let mut text = text;
        text.truncate(end);
        Ok(Loaded {
            version,
            uidvalidity,
            header_next,
            guid,
            text,
            start,
        })
    }

    /// Reads the folder's uidlist; `Ok(None)` if there is none.
    pub fn load(dir: &Dir) -> io::Result<Option<(Self, FileStamp)>> {
        #[cfg(test)]
        WHOLE_READS.with(|n| n.set(n.get() + 1));
        let mut f = match dir.open(FILE) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = FileStamp::of(&f.metadata()?);
        let mut data = Vec::with_capacity(stamp.len as usize + 1);
        f.read_to_end(&mut data)?;
        // Only complete lines count as read.
        let used = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let ul = Self::parse(data)?;
        Ok(Some((
            ul,
            FileStamp {
                len: used as u64,
                ..stamp
            },
        )))
    }

    /// The records, in file order; lines that do not parse are skipped.
    pub fn lines(&self) -> impl Iterator<Item = Parsed<'_>> {
        let version = self.version;
        self.text[self.start..]
            .split_terminator('\n')
            .filter_map(move |l| parse_line(l, version))
    }

    /// The same uidlist as one [`Record`] per line (tests only).
    #[cfg(test)]
    pub fn to_uidlist(&self) -> Uidlist {
        Uidlist {
            version: self.version,
            uidvalidity: self.uidvalidity,
            header_next: self.header_next,
            guid: self.guid.clone(),
            records: self.lines().map(|p| p.to_record()).collect(),
        }
    }
}

impl From<&Uidlist> for Loaded {
    fn from(ul: &Uidlist) -> Self {
        let mut text = String::new();
        for r in &ul.records {
            r.line().render(&mut text);
        }
        Loaded {
            version: ul.version,
            uidvalidity: ul.uidvalidity,
            header_next: ul.header_next,
            guid: ul.guid.clone(),
            text,
            start: 0,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Whole-file reads of a uidlist on this thread ([`Loaded::load`]), for
    /// tests that a folder opens without one.
    pub static WHOLE_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One record line, read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub uid: u32,
    pub base: &'a str,
    pub size: Option<u64>,
    pub vsize: Option<u64>,
    /// The extension fields other than `S` and `W`, space-separated (and
    /// with `S`/`W` among them: skipped when made a record).
    exts: &'a str,
}

impl<'a> Parsed<'a> {
    pub fn to_record(&self) -> Record {
        Record {
            uid: self.uid,
            base: self.base.to_string(),
            size: self.size,
            vsize: self.vsize,
            extra: self.fields_text(),
        }
    }

    /// The extension fields other than `S` and `W` (which the folder owns:
    /// it writes the sizes it knows), each `<key><value>` as written.
    ///
    /// As Dovecot reads them (`maildir_uidlist_read_extended`): a field
    /// runs to the next space, so a value never holds one and is never
    /// escaped (a `P` value is written as the POP3 server gave it; an
    /// empty one, `P` alone, means "the base file name"); the key is one
    /// upper-case letter, and a field with any other first byte is
    /// dropped (Dovecot drops it too, as corrupt, and rewrites the file).
    pub fn fields(&self) -> impl Iterator<Item = &'a str> + Clone + use<'a> {
        self.exts
            .split(' ')
            .filter(|e| e.starts_with(|c: char| c.is_ascii_uppercase() && c != 'S' && c != 'W'))
    }

    /// [`Parsed::fields`] as [`Record::extra`] holds them (no allocation
    /// when there are none, as for nearly every record).
    pub fn fields_text(&self) -> String {
        let mut it = self.fields();
        let Some(first) = it.next() else {
            return String::new();
        };
        let mut out = first.to_string();
        for f in it {
            out.push(' ');
            out.push_str(f);
        }
        out
    }
}

/// Whether the fields of a record (as [`Parsed::fields`] gives them) are
/// the ones `text` holds (as [`Record::extra`] keeps them), compared
/// without allocating.
pub fn same_fields<'a>(fields: impl Iterator<Item = &'a str>, text: &str) -> bool {
    fields.eq(text.split(' ').filter(|f| !f.is_empty()))
}

/// Parses record lines; lines that do not parse (and a torn last line
/// without its newline) are skipped.
pub fn parse_records(body: &[u8], version: u32) -> Vec<Record> {
    let text = String::from_utf8_lossy(body);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    complete
        .split('\n')
        .filter_map(|l| parse_line(l, version))
        .map(|p| p.to_record())
        .collect()
}

fn parse_line(line: &str, version: u32) -> Option<Parsed<'_>> {
    let (uid, rest) = line.split_once(' ')?;
    let uid: u32 = uid.parse().ok().filter(|&u| u > 0)?;
    let mut rec = Parsed {
        uid,
        base: "",
        size: None,
        vsize: None,
        exts: "",
    };
    let name = if version == 1 {
        rest
    } else {
        // Extension fields, then ` :<filename>` (the name may contain
        // spaces in theory, so everything after the first " :" is the name).
        let (exts, name) = match rest.strip_prefix(':') {
            Some(n) => ("", n),
            None => {
                let i = rest.find(" :")?;
                (&rest[..i], &rest[i + 2..])
            }
        };
        for e in exts.split(' ').filter(|e| !e.is_empty()) {
            if let Some(v) = e.strip_prefix('S') {
                rec.size = v.parse().ok();
            } else if let Some(v) = e.strip_prefix('W') {
                rec.vsize = v.parse().ok();
            }
        }
        rec.exts = exts;
        name
    };
    let base = super::filename::split(name).0;
    if base.is_empty() || base.contains('/') {
        return None;
    }
    rec.base = base;
    Some(rec)
}

/// Identifies a version of a file: a change of inode means a rewrite, a
/// longer length with the same inode means appended records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStamp {
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileStamp {
    pub fn of(m: &std::fs::Metadata) -> Self {
        FileStamp {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        }
    }

    /// The stamp of what [`Dir::stat`] found.
    pub fn of_meta(m: &beneath::Meta) -> Self {
        FileStamp {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime_ns(),
        }
    }
}

/// Reads records appended since `from` (same inode). Returns them and the
/// new stamp (covering complete lines only).
pub fn read_appended(
    dir: &Dir,
    from: FileStamp,
    version: u32,
) -> io::Result<(Vec<Record>, FileStamp)> {
    let mut f = dir.open(FILE)?;
    let stamp = FileStamp::of(&f.metadata()?);
    f.seek(SeekFrom::Start(from.len))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let used = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let recs = parse_records(&data[..used], version);
    Ok((
        recs,
        FileStamp {
            len: from.len + used as u64,
            ..stamp
        },
    ))
}

/// Appends records to the existing file. Call with the lock held.
/// Rewrites the whole file atomically with a format 3 header and `lines`.
/// `next_uid` must be past every line's UID. Call with the lock held.
pub fn write_new<'a>(
    dir: &Dir,
    fsync: bool,
    uidvalidity: u32,
    next_uid: u32,
    guid: &str,
    lines: impl Iterator<Item = Line<'a>>,
) -> io::Result<FileStamp> {
    write_lines(
        dir,
        fsync,
        &header(uidvalidity, next_uid.max(1), guid),
        lines,
    )
}

pub fn append<'a>(
    dir: &Dir,
    records: impl Iterator<Item = Line<'a>>,
    fsync: bool,
) -> io::Result<()> {
    let mut f = dir.open_with(FILE, OFlags::WRONLY | OFlags::APPEND, 0)?;
    // A torn last line from a crashed writer would swallow our first
    // record: start on a fresh line if the file does not end in one.
    let len = f.metadata()?.len();
    let mut w = io::BufWriter::with_capacity(64 * 1024, &mut f);
    if len > 0 {
        let mut r = dir.open(FILE)?;
        r.seek(SeekFrom::Start(len - 1))?;
        let mut last = [0u8; 1];
        r.read_exact(&mut last)?;
        if last[0] != b'\n' {
            w.write_all(b"\n")?;
        }
    }
    // A line at a time through the buffer, as in `write_lines`.
    let mut line = String::with_capacity(128);
    for r in records {
        line.clear();
        r.render(&mut line);
        w.write_all(line.as_bytes())?;
    }
    w.flush()?;
    drop(w);
    if fsync {
        f.sync_data()?;
    }
    Ok(())
}

/// Parses Courier's `courierimapuiddb`: a header `1 <uidvalidity>
/// <nextuid>`, then `<uid> <filename>` lines (the format Dovecot's
/// `courier-dovecot-migrate.pl` reads). Returns it as a uidlist.
pub fn parse_courier(data: &[u8]) -> io::Result<Uidlist> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| bad("empty"))?;
    let (uidv, next) = match header.split(' ').collect::<Vec<_>>().as_slice() {
        ["1", u, n] => (
            u.parse::<u32>().map_err(|_| bad("uidvalidity"))?,
            n.parse::<u32>().map_err(|_| bad("nextuid"))?,
        ),
        _ => return Err(bad("header")),
    };
    if uidv == 0 {
        return Err(bad("zero uidvalidity"));
    }
    let mut ul = Uidlist::new(uidv, next);
    for line in lines {
        let Some((uid, name)) = line.split_once(' ') else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        let base = super::filename::split(name).0;
        if uid == 0 || base.is_empty() || base.contains('/') {
            continue;
        }
        ul.records.push(Record {
            uid,
            base: base.to_string(),
            size: None,
            vsize: None,
            extra: String::new(),
        });
    }
    ul.records.sort_by_key(|r| r.uid);
    ul.records.dedup_by_key(|r| r.uid);
    Ok(ul)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by hand from Dovecot's documented format (wiki
    /// "MailboxFormat/Maildir", dovecot-uidlist section).
    const DOVECOT_SAMPLE: &str = "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n\
25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394:2,\n\
25017 W2481 :1276533073.M242911P3632.kurkku:2,F\n\
25021 S3000 W3050 M1 :1276533100.M1P1.kurkku\n";

    #[test]
    fn parses_dovecot_sample() {
        let ul = Uidlist::parse(DOVECOT_SAMPLE.as_bytes()).unwrap();
        assert_eq!(ul.version, 3);
        assert_eq!(ul.uidvalidity, 1275660208);
        assert_eq!(ul.header_next, 25022);
        assert_eq!(ul.guid, "3085f01b7f11094c501100008c4a11c1");
        assert_eq!(ul.records.len(), 3);
        assert_eq!(ul.records[0].uid, 25006);
        assert_eq!(
            ul.records[0].base,
            "1276528487.M364837P9451.kurkku,S=1355,W=1394"
        );
        assert_eq!(ul.records[1].vsize, Some(2481));
        assert_eq!(ul.records[1].base, "1276533073.M242911P3632.kurkku");
        assert_eq!(ul.records[2].size, Some(3000));
        assert_eq!(ul.records[2].extra, "M1");
        assert_eq!(ul.next_uid(), 25022);
        // Round trip (the info suffixes are dropped: we store base names).
        let again = Uidlist::parse(ul.render().as_bytes()).unwrap();
        assert_eq!(again, ul);
    }

    /// Extension fields as Dovecot reads them (`maildir_uidlist_read_extended`):
    /// each runs to the next space, unescaped, its key one upper-case
    /// letter (others are dropped, as Dovecot drops them); `S` and `W` are
    /// the sizes. The rest is kept byte for byte, in file order, and
    /// written back after the sizes.
    #[test]
    fn extension_fields_are_kept_verbatim() {
        let table: &[(&str, &str, Option<u64>, &str)] = &[
            // A record as Dovecot writes it with a POP3 UIDL from a migration.
            (
                "5 P000003e95f3f8b80 W1234 :1.a.host",
                "P000003e95f3f8b80",
                Some(1234),
                "5 W1234 P000003e95f3f8b80 :1.a.host\n",
            ),
            // `P` alone (the base name is the UIDL), order, GUID.
            (
                "5 S10 P O3 Gabc:def W7 :b",
                "P O3 Gabc:def",
                Some(7),
                "5 S10 W7 P O3 Gabc:def :b\n",
            ),
            // Bytes a UIDL may hold (RFC 1939: 0x21 to 0x7E), a colon too.
            ("5 P!x:/=~ :b", "P!x:/=~", None, "5 P!x:/=~ :b\n"),
            // Extra spaces, and keys Dovecot refuses.
            ("5  P1   pfoo 9x :b", "P1", None, "5 P1 :b\n"),
            ("5 :b", "", None, "5 :b\n"),
        ];
        for &(line, extra, vsize, rendered) in table {
            let p = parse_line(line, 3).unwrap_or_else(|| panic!("{line}"));
            let r = p.to_record();
            assert_eq!((r.extra.as_str(), r.vsize), (extra, vsize), "{line}");
            assert!(same_fields(p.fields(), extra), "{line}");
            let mut out = String::new();
            r.line().render(&mut out);
            assert_eq!(out, rendered, "{line}");
            // What we write reads back the same.
            let again = parse_line(out.trim_end(), 3).unwrap().to_record();
            assert_eq!(again, r, "{line}");
        }
        assert!(!same_fields(["P1"].into_iter(), "P2"));
        assert!(!same_fields(["P1", "O1"].into_iter(), "P1"));
        assert!(same_fields(std::iter::empty(), ""));
    }

    proptest::proptest! {
        /// `merge` writes what sorting both lists together (stably) and
        /// keeping the first line of each UID writes.
        #[test]
        fn merge_is_a_stable_sort_keeping_the_first_of_each_uid(
            mut a in proptest::collection::vec((1u32..40, 0u8..3), 0..30),
            mut b in proptest::collection::vec((1u32..40, 0u8..3), 0..30),
        ) {
            a.sort_by_key(|x| x.0);
            b.sort_by_key(|x| x.0);
            let names = ["x", "y", "z"];
            let line = |side: usize, (uid, n): (u32, u8)| Line {
                uid,
                base: names[usize::from(n)],
                size: Some(side as u64),
                vsize: None,
                extra: "",
            };
            let la: Vec<Line> = a.iter().map(|&x| line(0, x)).collect();
            let lb: Vec<Line> = b.iter().map(|&x| line(1, x)).collect();
            let mut want: Vec<Line> = la.iter().chain(&lb).copied().collect();
            want.sort_by_key(|l| l.uid);
            want.dedup_by_key(|l| l.uid);
            let got: Vec<Line> = merge(la.iter().copied(), lb.iter().copied()).collect();
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn render_parse_round_trip(
            uidv in 1u32..,
            recs in proptest::collection::btree_map(1u32..1_000_000, ("[0-9]{10}\\.[A-Za-z0-9]{1,12}\\.[a-z]{1,8}", proptest::option::of(0u64..), proptest::option::of(0u64..1<<40)), 0..20),
        ) {
            let mut ul = Uidlist::new(uidv, 1);
            for (uid, (base, size, vsize)) in recs {
                ul.records.push(Record { uid, base, size, vsize, extra: String::new() });
            }
            ul.header_next = ul.next_uid();
            let back = Uidlist::parse(ul.render().as_bytes()).unwrap();
            proptest::prop_assert_eq!(back, ul);
        }
    }

    /// The file written a line at a time is exactly the rendered text,
    /// also past the write buffer's size; appends add exactly their lines.
    #[test]
    fn write_and_append_put_exactly_the_rendered_text() {
        let d = tempfile::tempdir().unwrap();
        let rec = |i: u32| Record {
            uid: i,
            base: format!("{i}.M1P1.host"),
            size: None,
            vsize: Some(u64::from(i) * 7),
            extra: String::new(),
        };
        let mut ul = Uidlist::new(5, 1);
        ul.records.extend((1..=4000).map(rec));
        ul.header_next = ul.next_uid();
        let dir = Dir::open_root(d.path()).unwrap();
        ul.write(&dir, false).unwrap();
        let text = std::fs::read_to_string(d.path().join(FILE)).unwrap();
        assert!(text.len() > 64 * 1024);
        assert_eq!(text, ul.render());
        let more: Vec<Record> = (4001..=8000).map(rec).collect();
        append(&dir, more.iter().map(Record::line), false).unwrap();
        let mut want = text;
        for r in &more {
            r.line().render(&mut want);
        }
        assert_eq!(std::fs::read_to_string(d.path().join(FILE)).unwrap(), want);
    }

    /// The temporary name of a rewrite is predictable: a symlink planted
    /// there (to `/dev/full`, or to a file of someone else's) is replaced,
    /// never written through; a rewrite that fails (here: the uidlist's
    /// name is taken by a directory) leaves no temporary file behind.
    #[test]
    fn a_rewrite_never_writes_through_a_planted_temporary_name_and_leaves_no_debris() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open_root(d.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let mut ul = Uidlist::new(5, 1);
        ul.records.push(Record {
            uid: 1,
            base: "a".into(),
            size: None,
            vsize: None,
            extra: String::new(),
        });
        let tmp = d.path().join(format!(
            "{FILE}.{}.{}.tmp",
            std::process::id(),
            super::super::filename::host()
        ));
        for target in [std::path::Path::new("/dev/full"), victim.as_path()] {
            std::os::unix::fs::symlink(target, &tmp).unwrap();
            ul.write(&dir, false).unwrap();
            assert!(
                std::fs::symlink_metadata(&tmp).is_err(),
                "temporary file left"
            );
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(Uidlist::load(&dir).unwrap().unwrap().0.records, ul.records);
        std::fs::remove_file(d.path().join(FILE)).unwrap();
        std::fs::create_dir_all(d.path().join(FILE).join("x")).unwrap();
        assert!(ul.write(&dir, false).is_err());
        assert!(
            std::fs::symlink_metadata(&tmp).is_err(),
            "temporary file left"
        );
    }

    #[test]
    fn renders_numbers_at_their_edges() {
        let mut out = String::new();
        Record {
            uid: u32::MAX,
            base: "b".into(),
            size: Some(0),
            vsize: Some(u64::MAX),
            extra: String::new(),
        }
        .line()
        .render(&mut out);
        assert_eq!(out, "4294967295 S0 W18446744073709551615 :b\n");
    }

    #[test]
    fn parses_old_versions_and_rejects_garbage() {
        let v1 = Uidlist::parse(b"1 1000 5\n1 a.b.c:2,S\n3 d.e.f\n").unwrap();
        assert_eq!((v1.uidvalidity, v1.next_uid()), (1000, 5));
        assert_eq!(v1.records[1].base, "d.e.f");
        let torn = Uidlist::parse(b"3 V9 N2 Gx\n1 :a\n2 :b").unwrap();
        assert_eq!(torn.records.len(), 1);
        assert_eq!(torn.next_uid(), 2);
        for bad in [&b""[..], b"x\n", b"3 V0 N1\n", b"9 V1 N1\n", b"3 Vx\n"] {
            assert!(Uidlist::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn write_append_and_read_appended() {
        let d = tempfile::tempdir().unwrap();
        let mut ul = Uidlist::new(77, 1);
        ul.records.push(Record {
            uid: 1,
            base: "a".into(),
            size: None,
            vsize: Some(5),
            extra: String::new(),
        });
        ul.header_next = 2;
        let dir = Dir::open_root(d.path()).unwrap();
        let s1 = ul.write(&dir, false).unwrap();
        let (back, stamp) = Uidlist::load(&dir).unwrap().unwrap();
        assert_eq!(back, ul);
        assert_eq!(stamp.len, s1.len);
        let rec = Record {
            uid: 2,
            base: "b".into(),
            size: Some(1),
            vsize: None,
            extra: String::new(),
        };
        append(&dir, std::iter::once(rec.line()), false).unwrap();
        let (recs, s2) = read_appended(&dir, stamp, 3).unwrap();
        assert_eq!(recs, vec![rec]);
        assert_eq!(s2.ino, stamp.ino);
        // A rewrite gets a later mtime even within one tick.
        let s3 = ul.write(&dir, false).unwrap();
        assert!(s3.mtime_ns > s2.mtime_ns);
    }

    #[test]
    fn courier_import() {
        let ul = parse_courier(
            b"1 1111 4\n1 1111.abc.host:2,S\n3 1112.def.host\nbroken\n5 1113.x.host\n",
        )
        .unwrap();
        assert_eq!(ul.uidvalidity, 1111);
        assert_eq!(ul.next_uid(), 6);
        assert_eq!(ul.records[0].base, "1111.abc.host");
        assert_eq!(ul.records[1].uid, 3);
        assert_eq!(ul.records.len(), 3);
        for bad in [&b"junk"[..], b"1 0 5\n", b"2 5 9\n", b""] {
            assert!(parse_courier(bad).is_err(), "{bad:?}");
        }
    }
}
