//! What `nestbox index` does to one Maildir, in the helper running as its user: compare
//! each folder's `nestbox.index` and `nestbox.cache` with the folder's files and its
//! `dovecot-uidlist` (`check`), or make them again from those (`rebuild`).
//!
//! The uidlist is the truth for UIDs; the index and the cache are caches of the folder
//! (`store::maildir::index`). So:
//! - `check` only reads. It reports, per folder, what the index says that the Maildir does
//!   not: messages it lists whose file is gone, files with a UID that it does not list, a
//!   file name (the flags) or a size it has wrong, a UID or UIDVALIDITY other than the
//!   uidlist's, and an image that does not read at all (truncated, bad checksum, unknown
//!   format); a cache with a bad entry or of another UIDVALIDITY; and what is wrong with the
//!   uidlist itself (unreadable, a UID twice, a file twice, UIDs out of order). Files no
//!   program has numbered yet (mail delivered since the folder was last opened) are
//!   counted, not reported as a problem: the next open numbers them.
//! - `rebuild` never writes the uidlist's UIDs: it removes the index and the cache and opens
//!   the folder through the store (`MailStore`), exactly as the server opens a folder whose
//!   index was lost, then closes it, which writes a complete index. UIDs come from the
//!   uidlist; files not numbered yet are numbered as any open would (appended under the
//!   uidlist's lock, `dovecot-uidlist.lock`, which the store takes itself); modseqs restart
//!   above the clock, as after a lost index (SPEC §5), so CONDSTORE clients resync. The
//!   cache is left empty: sessions fill it as clients fetch (it holds encoded ENVELOPE and
//!   BODYSTRUCTURE, which only a session makes). A folder whose uidlist does not read is not
//!   rebuilt (the store would move it aside and start a new UIDVALIDITY): the operator
//!   decides that, and `check` says why.
//!
//! Safe beside a running server that has the folder open: the server reads a folder's index
//! only when it opens the folder, and writes it whole by rename, so it is unaffected by ours
//! (its later writes replace ours with its own, equally valid, image; its in-place
//! `clean`-byte mark lands in whichever image is there, and both stay valid). The one
//! shared file whose numbers matter, the uidlist, is written only through the store's lock.
//! Modseqs only move forward whichever image wins: ours starts above the clock, above
//! anything the server handed out (the store's own premise for a lost index: fewer than a
//! million changes a second); the server's, if it writes one after ours, holds exactly what
//! its clients were told. Changes made between our scan and our write (a flag, an expunge)
//! are differences of names and files, which the next open's sync finds and gives new
//! modseqs, as it does for any change made while nestbox was not looking.
//! `tests/index_cli.rs` rebuilds beside a client that has the folder selected, which then
//! goes on (UIDs, STORE, APPEND's next UID) as if nothing happened.
//!
//! Every name beneath the Maildir root is opened with the store's `beneath` rules, as in
//! `admin::quota::maildir`.
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::admin::as_user::{Progress, report};
use crate::store::beneath::Dir;
use crate::store::maildir::filename;
use crate::store::maildir::index::{self, IndexData};
use crate::store::maildir::names;
use crate::store::maildir::uidlist::{self, Loaded};

/// One Maildir's work, as the parent sends it to the helper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub maildir: PathBuf,
    /// One folder (IMAP name, `/` between levels), or every folder.
    pub folder: Option<String>,
    pub rebuild: bool,
    /// Report progress (the parent draws a bar: its standard error is a terminal).
    pub progress: bool,
}

/// What the helper found in one folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderReport {
    pub folder: String,
    /// Files with a UID in the uidlist.
    pub messages: u64,
    /// Files no program has numbered yet (before a rebuild: it numbers them).
    pub unnumbered: u64,
    /// Messages the rebuilt index holds (rebuild only).
    pub indexed: Option<u64>,
    /// What is wrong, one line each (empty: consistent).
    pub problems: Vec<String>,
    /// What is not there yet but is no fault: a folder no IMAP server has opened (no uidlist,
    /// no index), or one only Dovecot has (no `nestbox.index`). Each is made at the folder's
    /// next open, so `check` still calls the folder consistent.
    pub notes: Vec<String>,
}

/// What the helper answers for one Maildir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Found {
    NoMaildir,
    NoFolder(String),
    Folders(Vec<FolderReport>),
    Failed(String),
}

/// Per kind of problem, how many are named before "and N more".
const NAMED: usize = 5;

/// Does `job`, as whoever this process runs as (the helper: the Maildir's user).
pub fn run(job: &Job) -> Found {
    let root = match Dir::open_root(&job.maildir) {
        Ok(d) => Arc::new(d),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Found::NoMaildir,
        Err(e) => return Found::Failed(format!("{}: {e}", job.maildir.display())),
    };
    let folders = match &job.folder {
        Some(f) => match folder_entry(&root, f) {
            Ok(Some(None)) => vec![("INBOX".to_string(), None)],
            Ok(Some(entry)) => vec![(f.clone(), entry)],
            Ok(None) => return Found::NoFolder(f.clone()),
            Err(e) => return Found::Failed(e),
        },
        None => match all_folders(&root) {
            Ok(all) => all,
            Err(e) => return Found::Failed(format!("{}: {e}", job.maildir.display())),
        },
    };
    let mut reports = Vec::new();
    for (name, entry) in folders {
        let report = if job.rebuild {
            rebuild(&job.maildir, &root, &name, entry.as_deref(), job.progress)
        } else {
            check(&root, &name, entry.as_deref(), job.progress)
        };
        reports.push(report);
    }
    Found::Folders(reports)
}

/// The directory entry of folder `name` in the root (`Some(None)`: INBOX, the root), or
/// `None` if there is no such folder.
fn folder_entry(root: &Dir, name: &str) -> Result<Option<Option<String>>, String> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok(Some(None));
    }
    let entry = names::to_dir(name).map_err(|e| format!("{name:?}: {e}"))?;
    match root.stat(&entry) {
        Ok(m) if m.is_dir() => Ok(Some(Some(entry))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// INBOX and every folder directory of the root (not through symlinks), sorted by name.
fn all_folders(root: &Dir) -> io::Result<Vec<(String, Option<String>)>> {
    let mut out = BTreeMap::new();
    root.for_each_entry(|e| {
        if e.is_dir {
            if let Some(name) = names::from_dir(e.name) {
                out.insert(name, Some(e.name.to_string()));
            }
        }
        Ok(())
    })?;
    let mut all = vec![("INBOX".to_string(), None)];
    all.extend(out);
    Ok(all)
}

/// Problems of one kind: the first [`NAMED`] named, the rest counted.
struct Kind {
    what: &'static str,
    named: Vec<String>,
    count: usize,
}

impl Kind {
    fn new(what: &'static str) -> Kind {
        Kind {
            what,
            named: Vec::new(),
            count: 0,
        }
    }
    fn add(&mut self, item: impl FnOnce() -> String) {
        if self.named.len() < NAMED {
            self.named.push(item());
        }
        self.count += 1;
    }
    fn line(&self) -> Option<String> {
        (self.count > 0).then(|| {
            let more = self.count - self.named.len();
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "{} ({}): {}{tail}",
                self.what,
                self.count,
                self.named.join(", ")
            )
        })
    }
}

/// A message file on disk.
struct OnDisk {
    in_new: bool,
    fname: String,
}

/// Reports progress at most every this many messages.
const PROGRESS_EVERY: u64 = 2000;

/// Compares the folder's index and cache with its files and uidlist (see the module doc).
fn check(root: &Arc<Dir>, name: &str, entry: Option<&str>, progress: bool) -> FolderReport {
    let mut report = FolderReport {
        folder: name.to_string(),
        ..FolderReport::default()
    };
    if let Err(e) = check_into(root, entry, progress, &mut report) {
        report.problems.push(format!("cannot read the folder: {e}"));
    }
    report
}

fn check_into(
    root: &Arc<Dir>,
    entry: Option<&str>,
    progress: bool,
    report: &mut FolderReport,
) -> io::Result<()> {
    let dir = match entry {
        Some(e) => root.dir(e)?,
        None => root.try_clone()?,
    };
    let mut problems = Vec::new();
    let mut no_uidlist = false;

    // The uidlist: base name -> UID.
    let loaded = match Loaded::load(&dir) {
        Ok(Some((ul, _))) => Some(ul),
        Ok(None) => {
            no_uidlist = true;
            None
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            problems.push(format!("{} does not read: {e}", uidlist::FILE));
            None
        }
        Err(e) => return Err(e),
    };
    let mut uid_of: HashMap<String, u32> = HashMap::new();
    if let Some(ul) = &loaded {
        let mut seen_uids = HashMap::new();
        let mut twice_uid = Kind::new("uidlist: UID given twice");
        let mut twice_file = Kind::new("uidlist: file numbered twice");
        // The header's next UID may lag behind appended records (Dovecot appends without
        // rewriting the header; readers take the larger), so it is not checked here; the
        // order of the records is (each append takes a UID above every one before).
        let mut order = Kind::new("uidlist: UID not above the one before it");
        let mut last = 0;
        for p in ul.lines() {
            if let Some(first) = seen_uids.insert(p.uid, p.base) {
                twice_uid.add(|| format!("{} ({first}, {})", p.uid, p.base));
            }
            if uid_of.insert(p.base.to_string(), p.uid).is_some() {
                twice_file.add(|| p.base.to_string());
            }
            if p.uid <= last {
                order.add(|| format!("{} after {last}", p.uid));
            }
            last = p.uid;
        }
        problems.extend([twice_uid, twice_file, order].iter().filter_map(Kind::line));
    }

    // The files: base name -> where.
    let mut files: HashMap<String, OnDisk> = HashMap::new();
    let mut twice_on_disk = Kind::new("one message in two files");
    for in_new in [true, false] {
        let sub = dir.dir(if in_new { "new" } else { "cur" })?;
        sub.for_each_entry(|e| {
            if e.name.starts_with('.') || !e.is_file {
                return Ok(());
            }
            let base = filename::split(e.name).0.to_string();
            let fname = e.name.to_string();
            if files
                .insert(base.clone(), OnDisk { in_new, fname })
                .is_some()
            {
                twice_on_disk.add(|| base);
            }
            Ok(())
        })?;
    }
    problems.extend(twice_on_disk.line());
    report.messages = files.keys().filter(|b| uid_of.contains_key(*b)).count() as u64;
    report.unnumbered = files.len() as u64 - report.messages;

    // The index.
    let idx = match dir.read(index::FILE) {
        Ok(image) => match index::inspect(&image) {
            Ok(d) => Some(d),
            Err(damage) => {
                problems.push(format!("{}: {damage}", index::FILE));
                None
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A cache that is not there yet (a folder only Dovecot or an MTA has seen, or an
            // index deleted by hand): the next open builds it, so this is no fault.
            report.notes.push(format!(
                "no {} yet (the server builds it at the next open; `rebuild` does now)",
                index::FILE
            ));
            None
        }
        Err(e) => return Err(e),
    };
    if no_uidlist {
        if idx.is_some() {
            // An index whose UIDs have no uidlist behind them: those UIDs were given out
            // and the file that records them is gone.
            problems.push(format!("no {} beside {}", uidlist::FILE, index::FILE));
        } else {
            report.notes.push(format!(
                "no {} yet: no IMAP server has opened this folder (its first open numbers the \
                 messages)",
                uidlist::FILE
            ));
        }
    }
    if let (Some(idx), Some(ul)) = (&idx, &loaded) {
        let progress = progress.then(|| format!("{}: checking", report.folder));
        compare(idx, ul, &uid_of, &files, progress, &mut problems);
    }

    // The cache: only its own soundness (entries of expunged UIDs are normal until it is
    // compacted).
    if let Some(ul) = &loaded {
        match dir.stat(index::CACHE_FILE) {
            Ok(_) => {
                let (_, entries) = index::load_cache(&dir, ul.uidvalidity);
                if entries == usize::MAX {
                    problems.push(format!(
                        "{}: a bad entry (bad checksum or cut short), or another UIDVALIDITY",
                        index::CACHE_FILE
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    report.problems = problems;
    Ok(())
}

/// The index against the uidlist and the files.
fn compare(
    idx: &IndexData,
    ul: &Loaded,
    uid_of: &HashMap<String, u32>,
    files: &HashMap<String, OnDisk>,
    progress: Option<String>,
    problems: &mut Vec<String>,
) {
    if idx.uidvalidity != ul.uidvalidity {
        problems.push(format!(
            "index: UIDVALIDITY {} where the uidlist has {}",
            idx.uidvalidity, ul.uidvalidity
        ));
        return;
    }
    let total = (idx.msgs.len() + files.len()) as u64;
    let mut done = 0u64;
    let tick = |done: &mut u64| {
        *done += 1;
        if let Some(what) = &progress
            && (*done % PROGRESS_EVERY == 0 || *done == total)
        {
            report(&Progress {
                what: what.clone(),
                done: *done,
                total,
            });
        }
    };
    let mut wrong_uid = Kind::new("index: UID differs from the uidlist's");
    let mut gone = Kind::new("in the index but not on disk");
    let mut unnumbered = Kind::new("index: a UID the uidlist does not give that file");
    let mut flags = Kind::new("index: flags or place differ from the file's name");
    let mut size = Kind::new("index: size differs");
    let mut twice = Kind::new("index: a UID listed twice");
    let mut listed: HashMap<&str, u32> = HashMap::new();
    for m in &idx.msgs {
        tick(&mut done);
        let base = filename::split(&m.fname).0;
        if listed.insert(base, m.uid).is_some() {
            twice.add(|| m.uid.to_string());
        }
        match uid_of.get(base) {
            Some(&u) if u != m.uid => wrong_uid.add(|| format!("{} (uidlist: {u})", m.uid)),
            None if files.contains_key(base) => {
                unnumbered.add(|| format!("UID {}", m.uid));
                continue;
            }
            None => {
                gone.add(|| format!("UID {}", m.uid));
                continue;
            }
            _ => {}
        }
        let Some(f) = files.get(base) else {
            gone.add(|| format!("UID {}", m.uid));
            continue;
        };
        if f.fname != m.fname || f.in_new != m.in_new {
            flags.add(|| {
                let info = |n: &str| filename::split(n).1.unwrap_or("").to_string();
                format!(
                    "UID {} (index {:?}, disk {:?}{})",
                    m.uid,
                    info(&m.fname),
                    info(&f.fname),
                    if f.in_new != m.in_new {
                        if f.in_new { " in new/" } else { " in cur/" }
                    } else {
                        ""
                    }
                )
            });
        }
        // The size the index holds is RFC822.SIZE (CRLF lines): the name's `,W=` says it.
        if let (Some(have), (_, Some(want))) = (m.size, filename::size_fields(base)) {
            if have != want {
                size.add(|| format!("UID {} (index {have}, name {want})", m.uid));
            }
        }
    }
    let mut missing = Kind::new("on disk but not in the index");
    let mut uids: Vec<u32> = Vec::new();
    for base in files.keys() {
        tick(&mut done);
        if let Some(&uid) = uid_of.get(base.as_str()) {
            if !listed.contains_key(base.as_str()) {
                uids.push(uid);
            }
        }
    }
    uids.sort_unstable();
    for uid in uids {
        missing.add(|| format!("UID {uid}"));
    }
    if let Some(top) = idx.msgs.iter().map(|m| m.uid).max() {
        if top >= idx.next_uid {
            problems.push(format!(
                "index: UID {top} not below its next UID {}",
                idx.next_uid
            ));
        }
    }
    problems.extend(
        [wrong_uid, unnumbered, twice, gone, missing, flags, size]
            .iter()
            .filter_map(Kind::line),
    );
}

/// Makes the folder's index again (see the module doc), then checks it.
fn rebuild(
    maildir: &std::path::Path,
    root: &Arc<Dir>,
    name: &str,
    entry: Option<&str>,
    progress: bool,
) -> FolderReport {
    let failed = |why: String| FolderReport {
        folder: name.to_string(),
        problems: vec![why],
        ..FolderReport::default()
    };
    let dir = match entry {
        Some(e) => root.dir(e),
        None => root.try_clone(),
    };
    let dir = match dir {
        Ok(d) => d,
        Err(e) => return failed(format!("cannot open the folder: {e}")),
    };
    match Loaded::load(&dir) {
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return failed(format!(
                "{} does not read ({e}): not rebuilt (the next open would move it aside and \
                 number every message anew, with a new UIDVALIDITY)",
                uidlist::FILE
            ));
        }
        Err(e) => return failed(format!("{}: {e}", uidlist::FILE)),
        Ok(_) => {}
    }
    if progress {
        report(&Progress {
            what: format!("{name}: indexing"),
            done: 0,
            total: 0,
        });
    }
    for file in [index::FILE, index::CACHE_FILE] {
        match dir.unlink(file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return failed(format!("cannot remove {file}: {e}")),
        }
    }
    let registry = crate::store::Registry::new();
    let opened = crate::store::MailStore::open(
        maildir.to_path_buf(),
        registry.clone(),
        crate::store::StoreOptions::default(),
    )
    .and_then(|store| store.open_folder(name).map(drop));
    // Writes the index of what was opened (the folder is closed once nobody holds it).
    registry.close_all();
    if let Err(e) = opened {
        return failed(format!("cannot open the folder: {e}"));
    }
    let mut after = check(root, name, entry, progress);
    after.indexed = match dir.read(index::FILE).map(|i| index::inspect(&i)) {
        Ok(Ok(d)) => Some(d.msgs.len() as u64),
        _ => None,
    };
    after
}
