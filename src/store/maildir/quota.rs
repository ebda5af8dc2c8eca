//! Maildir++ quota: the `maildirsize` file at the Maildir root.
//!
//! Format (Courier's Maildir++ quota spec, also used by Dovecot's
//! `maildir` quota backend): a first line of limits such as
//! `1000000S,1000C` (bytes, messages; either may be missing), then one
//! `<bytes> <count>` line per change, appended by every writer without
//! locking, so the last line may be torn and is then ignored. When the
//! file grows past 5120 bytes, or a change would pass a limit while the
//! file is older than 15 minutes, it is rewritten atomically: [`load`]
//! recomputes the totals from the directories, as Maildir++ says; the
//! server's sessions go through `store::quota_upkeep`, which recounts
//! whenever another program's change is seen and so, past 5120 bytes,
//! only folds the lines into one.
//! The limits come from the Maildir's own file, or from the configuration
//! (`store::apply_quota`, at login).
//!
//! Owns only this file. A Maildir without `maildirsize` has no quota:
//! nothing is enforced and nothing is written.

use std::io::{self, Write};

use crate::store::beneath::{Dir, OFlags};

pub const FILE: &str = "maildirsize";
/// Past this size the file is recomputed (the Maildir++ rule).
const RECALC_AT: u64 = 5120;

/// Limits and current use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub bytes_limit: Option<u64>,
    pub count_limit: Option<u64>,
    pub bytes: u64,
    pub count: u64,
}

impl Quota {
    /// Whether adding `bytes` in `count` messages stays within the limits.
    pub fn allows(&self, bytes: u64, count: u64) -> bool {
        self.bytes_limit
            .is_none_or(|l| self.bytes.saturating_add(bytes) <= l)
            && self
                .count_limit
                .is_none_or(|l| self.count.saturating_add(count) <= l)
    }
}

/// Parses the limits line.
fn parse_limits(line: &str) -> (Option<u64>, Option<u64>) {
    let mut b = None;
    let mut c = None;
    for part in line.split(',') {
        let part = part.trim();
        // 0 means "no limit" (as in Courier and Dovecot).
        if let Some(n) = part.strip_suffix('S') {
            b = n.parse().ok().filter(|&n| n > 0);
        } else if let Some(n) = part.strip_suffix('C') {
            c = n.parse().ok().filter(|&n| n > 0);
        }
    }
    (b, c)
}

/// Parses the whole file; `None` if it has no limits line.
pub fn parse(text: &str) -> Option<Quota> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => return None,
    };
    let mut lines = complete.split('\n');
    let (bytes_limit, count_limit) = parse_limits(lines.next()?);
    let mut bytes: i64 = 0;
    let mut count: i64 = 0;
    for line in lines {
        let mut it = line.split_whitespace();
        if let (Some(b), Some(c)) = (it.next(), it.next()) {
            if let (Ok(b), Ok(c)) = (b.parse::<i64>(), c.parse::<i64>()) {
                bytes = bytes.saturating_add(b);
                count = count.saturating_add(c);
            }
        }
    }
    Some(Quota {
        bytes_limit,
        count_limit,
        bytes: bytes.max(0) as u64,
        count: count.max(0) as u64,
    })
}

fn render_limits(q: &Quota) -> String {
    let mut parts = Vec::new();
    if let Some(b) = q.bytes_limit {
        parts.push(format!("{b}S"));
    }
    if let Some(c) = q.count_limit {
        parts.push(format!("{c}C"));
    }
    if parts.is_empty() {
        // An empty limits line would read as "no quota file"; 0S means
        // "no byte limit" to Courier and Dovecot alike.
        parts.push("0S".into());
    }
    parts.join(",")
}

/// Size of one message file for quota: `,S=` if present, else its length.
fn file_size(dir: &Dir, name: &str) -> Option<u64> {
    let base = super::filename::split(name).0;
    match super::filename::size_fields(base).0 {
        Some(s) => Some(s),
        None => dir.stat(name).ok().filter(|m| m.is_file()).map(|m| m.len()),
    }
}

/// Totals of every folder under `root` (INBOX and every `.X`).
/// Folders and their `cur/` and `new/` are opened beneath the root without
/// following symlinks: a symlinked one counts nothing (it is not served).
pub fn compute(root: &Dir) -> io::Result<(u64, u64)> {
    let mut folders = Vec::new();
    root.for_each_entry(|e| {
        if e.name.starts_with('.') && e.is_dir {
            folders.push(e.name.to_string());
        }
        Ok(())
    })?;
    let (mut bytes, mut count) = (0u64, 0u64);
    let mut tally = |d: &Dir| {
        for sub in ["cur", "new"] {
            let Ok(sd) = d.dir(sub) else {
                continue;
            };
            let _ = sd.for_each_entry(|e| {
                if !e.name.starts_with('.') {
                    if let Some(s) = file_size(&sd, e.name) {
                        bytes += s;
                        count += 1;
                    }
                }
                Ok(())
            });
        }
    };
    tally(root);
    for f in folders {
        if let Ok(d) = root.dir(&f) {
            tally(&d);
        }
    }
    Ok((bytes, count))
}

/// Reads the quota of the Maildir at `root`, recomputing the file when it
/// is too long or its totals unreadable. `None`: no quota.
pub fn load(root: &Dir) -> io::Result<Option<Quota>> {
    match read(root)? {
        Some((q, true)) => recalc(root, q.bytes_limit, q.count_limit).map(Some),
        Some((q, false)) => Ok(Some(q)),
        None => Ok(None),
    }
}

/// Reads the file as it is, without recomputing: the quota, and whether
/// the file has grown to where Maildir++ recomputes it. `None`: no quota.
pub fn read(root: &Dir) -> io::Result<Option<(Quota, bool)>> {
    let text = match root.read(FILE) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse(&text).map(|q| (q, text.len() as u64 >= RECALC_AT)))
}

/// How old the totals may be before an over-quota answer counts again
/// (the Maildir++ rule, which Courier and Dovecot follow).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Whether `maildirsize` was last written more than 15 minutes ago.
pub fn stale(root: &Dir) -> bool {
    let Ok(m) = root.stat(FILE) else {
        return false;
    };
    let written =
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(m.mtime_ns().max(0) as u64);
    written.elapsed().is_ok_and(|age| age > STALE_AFTER)
}

/// Recomputes the totals and rewrites the file with the given limits.
pub fn recalc(root: &Dir, bytes_limit: Option<u64>, count_limit: Option<u64>) -> io::Result<Quota> {
    let (bytes, count) = compute(root)?;
    let q = Quota {
        bytes_limit,
        count_limit,
        bytes,
        count,
    };
    write(root, &q)?;
    Ok(q)
}

/// Rewrites the file (atomically) as the limits and one line of totals;
/// returns its length.
pub fn write(root: &Dir, q: &Quota) -> io::Result<u64> {
    let text = format!("{}\n{} {}\n", render_limits(q), q.bytes, q.count);
    root.write_atomic(FILE, text.as_bytes(), super::FILE_MODE, false)?;
    Ok(text.len() as u64)
}

/// One state of the file: every writer changes it (an append its length
/// and mtime, a rewrite its inode), so totals read at one key hold while
/// the file still shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKey {
    pub ino: u64,
    pub len: u64,
    mtime: (i64, i64),
}

/// The file's key now; `None` without a file.
pub fn key(root: &Dir) -> io::Result<Option<FileKey>> {
    match root.stat(FILE) {
        Ok(m) => Ok(Some(FileKey {
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records a change (positive for saves, negative for expunges) if the
/// Maildir has a quota file. A single `write` of one short line with
/// `O_APPEND` is how every Maildir++ writer does it, without locks.
/// Returns the file's length before the line (as far as this writer can
/// tell: its length after, less the line) and its key after it; `None`
/// when there is no file (nothing written).
pub fn record(root: &Dir, bytes: i64, count: i64) -> io::Result<Option<(u64, FileKey)>> {
    use std::os::unix::fs::MetadataExt;
    if bytes == 0 && count == 0 {
        return Ok(None);
    }
    let mut f = match root.open_with(FILE, OFlags::WRONLY | OFlags::APPEND, 0) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let line = format!("{bytes} {count}\n");
    f.write_all(line.as_bytes())?;
    let m = f.metadata()?;
    let after = FileKey {
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
    };
    Ok(Some((m.len().saturating_sub(line.len() as u64), after)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn parse_table() {
        let q = |bl, cl, b, c| Quota {
            bytes_limit: bl,
            count_limit: cl,
            bytes: b,
            count: c,
        };
        for (text, want) in [
            (
                "1000S,10C\n100 1\n50 2\n",
                Some(q(Some(1000), Some(10), 150, 3)),
            ),
            ("1000S\n100 1\n-40 -1\n", Some(q(Some(1000), None, 60, 0))),
            ("10C\n5 1\n7 1", Some(q(None, Some(10), 5, 1))), // torn tail
            ("0S\n-5 -1\n", Some(q(None, None, 0, 0))),
            ("", None),
            ("1000S", None),
        ] {
            assert_eq!(parse(text), want, "{text:?}");
        }
        assert!(q(Some(100), None, 90, 1).allows(10, 1));
        assert!(!q(Some(100), None, 90, 1).allows(11, 1));
        assert!(!q(None, Some(2), 0, 2).allows(0, 1));
    }

    #[test]
    fn recalc_counts_every_folder_and_record_appends() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let rd = Dir::open_root(root).unwrap();
        for dir in [root.to_path_buf(), root.join(".A")] {
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }
        }
        fs::write(root.join("cur/1.a.h,S=10:2,S"), b"12345").unwrap();
        fs::write(root.join("new/2.b.h"), b"1234567").unwrap();
        fs::write(root.join(".A/cur/3.c.h:2,"), b"123").unwrap();
        fs::write(root.join("tmp/4.d.h"), b"ignored").unwrap();
        assert_eq!(load(&rd).unwrap(), None);
        record(&rd, 5, 1).unwrap(); // no file: nothing written
        assert!(!root.join(FILE).exists());
        let q = recalc(&rd, Some(100), None).unwrap();
        assert_eq!((q.bytes, q.count), (20, 3));
        record(&rd, 30, 1).unwrap();
        let q = load(&rd).unwrap().unwrap();
        assert_eq!((q.bytes, q.count, q.bytes_limit), (50, 4, Some(100)));
        // A long file is recomputed from the directories.
        let mut text = fs::read_to_string(root.join(FILE)).unwrap();
        while text.len() < RECALC_AT as usize {
            text.push_str("1 0\n");
        }
        fs::write(root.join(FILE), text).unwrap();
        let q = load(&rd).unwrap().unwrap();
        assert_eq!((q.bytes, q.count), (20, 3));
        assert!(fs::read_to_string(root.join(FILE)).unwrap().len() < 100);
    }
}
