//! The mail store: one user's Maildir++ behind a narrow, synchronous
//! interface. Callers on the async runtime wrap calls in `spawn_blocking`,
//! or, for small reads, run them in a [`nowait::Scope`], where the store
//! itself hands anything that would wait to the caller's hook.
//! Folder names here are UTF-8 with `/` as the hierarchy separator; `INBOX`
//! is always spelled `INBOX` (the session case-folds it).
//!
//! Owns the mapping from folder names to directories, the process-wide
//! [`Registry`] of open folders, and folder-level operations (CREATE,
//! DELETE, RENAME, subscriptions, STATUS). Message-level work lives in
//! [`maildir::folder`]. It never speaks IMAP and never assumes it is the
//! only program using the Maildir (see `shared/MAILDIR.md`).
//!
//! Decisions worth knowing:
//! - `INBOX` is the Maildir root; `INBOX/foo` is the ordinary folder
//!   `.INBOX.foo` (no special case on disk, as in Dovecot's Maildir++).
//! - A folder directory that is a symlink is followed only if it resolves
//!   inside the Maildir root.
//! - [`MailStore::open_folder`] syncs without moving `new/` to `cur/`; a
//!   read-write SELECT then calls `folder.sync(true)` and `take_recent()`.
//! - Renamed or deleted folders are dropped from the registry; sessions
//!   that still hold them get `NotFound` on their next sync.
//! - Folder levels go through `crate::mutf7` only when they need it (non-
//!   ASCII or `&`); plain ASCII is its own modified UTF-7 form.
//! - [`MailStore::status_opts`] computes unknown sizes (reading files
//!   without `,W=` once, then remembered) only when STATUS asked for SIZE.
//! - Quota is Maildir++ `maildirsize` ([`MailStore::quota`]); a Maildir
//!   without that file has no quota. APPEND and COPY enforce it (MOVE
//!   within a Maildir does not change the use); reading it out and setting
//!   the limits wait for issue 19.
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

pub mod maildir;
pub mod nowait;

use crate::flags::Flags;
pub use maildir::folder::{DirStamp, EntryEvent, Folder, MessageFile, RwHold};
use maildir::{names, subscriptions};

/// Why a store operation failed; the session maps these to response codes
/// (`[NONEXISTENT]`, `[ALREADYEXISTS]`, `[OVERQUOTA]`, `[SERVERBUG]`...).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such mailbox")]
    NotFound,
    #[error("mailbox already exists")]
    AlreadyExists,
    #[error("invalid mailbox name: {0}")]
    InvalidName(String),
    /// Refused by the store's rules (e.g. DELETE INBOX); the text says why.
    #[error("{0}")]
    Cannot(String),
    #[error("over quota")]
    OverQuota,
    /// The message is gone (expunged by someone else).
    #[error("message expunged")]
    Expunged,
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Process-wide table of open folders, so every session of every user that
/// opens the same folder shares one [`Folder`] (one in-memory state, one
/// change notification channel).
#[derive(Default)]
pub struct Registry {
    /// Canonical folder directory -> the open folder, while anyone holds it.
    open: Mutex<HashMap<PathBuf, Weak<Folder>>>,
    /// Called once for every folder when it is first opened (the change
    /// watcher attaches here; the store itself never watches).
    on_open: Mutex<Option<OpenHook>>,
    /// Recently used folders, kept open a while after their last session
    /// leaves: phones reconnect all the time, and a folder found open costs
    /// one directory check instead of re-reading its index and uidlist.
    /// Each with when it was last seen in use.
    linger: Mutex<Vec<(Instant, PathBuf, Arc<Folder>)>>,
    /// Folders the registry is letting go of right now. Their last drop
    /// writes index and cache (140 ms at 100,000 messages); an open of the
    /// same directory waits for it (`closed`), so that it neither reads a
    /// half-written cache nor has its index overwritten by the old state
    /// afterwards (which could claim clean modseqs the new one exceeded).
    closing: Mutex<HashMap<PathBuf, usize>>,
    closed: Condvar,
}

/// How many recently used folders stay open without a session.
const LINGER_MAX: usize = 32;
/// How long a folder stays open after it was last seen in use.
pub const LINGER_FOR: Duration = Duration::from_secs(120);

/// See [`Registry::set_on_open`].
pub type OpenHook = Arc<dyn Fn(&Arc<Folder>) + Send + Sync>;

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    /// Installs the hook run when a folder is opened and registered (not
    /// when an already open one is shared). It runs outside the table lock,
    /// on whatever thread opened the folder.
    pub fn set_on_open(&self, hook: OpenHook) {
        *self.on_open.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Weak<Folder>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open folder for `dir`, or a new one made by `make`. `make` runs
    /// without the table locked (it may wait for a uidlist lock); if two
    /// sessions race, the first one registered wins and the other copy is
    /// dropped unused.
    fn get_or_open(
        &self,
        dir: &Path,
        make: impl FnOnce() -> Result<Folder>,
    ) -> Result<Arc<Folder>> {
        if let Some(f) = self.get(dir) {
            self.keep_warm(dir, &f);
            return Ok(f);
        }
        {
            let mut c = self.closing.lock().unwrap_or_else(|p| p.into_inner());
            while c.contains_key(dir) {
                c = self.closed.wait(c).unwrap_or_else(|p| p.into_inner());
            }
        }
        let made = Arc::new(make()?);
        let mut t = self.table();
        if let Some(f) = live(t.get(dir)) {
            drop(t);
            self.keep_warm(dir, &f);
            return Ok(f);
        }
        t.retain(|_, w| w.strong_count() > 0);
        t.insert(dir.to_path_buf(), Arc::downgrade(&made));
        drop(t);
        let hook = self
            .on_open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook(&made);
        }
        self.keep_warm(dir, &made);
        Ok(made)
    }

    /// Marks `dir` as used now and lets go of folders that are too old or
    /// too many. Folders let go of are dropped here, outside the lock (a
    /// last drop writes the index).
    fn keep_warm(&self, dir: &Path, f: &Arc<Folder>) {
        let now = Instant::now();
        let released = {
            let mut l = self.linger.lock().unwrap_or_else(|p| p.into_inner());
            let mut replaced = Vec::new();
            match l.iter_mut().find(|(_, d, _)| d == dir) {
                Some(e) if Arc::ptr_eq(&e.2, f) => e.0 = now,
                // A gone folder's successor at the same path takes its place.
                Some(e) => replaced.push(std::mem::replace(e, (now, dir.to_path_buf(), f.clone()))),
                None => l.push((now, dir.to_path_buf(), f.clone())),
            }
            let mut released = prune(&mut l, now);
            released.append(&mut replaced);
            released
        };
        self.let_go(released);
    }

    /// Drops folders taken out of the linger list, with their directories
    /// marked as closing meanwhile (see `closing`).
    fn let_go(&self, released: Vec<(Instant, PathBuf, Arc<Folder>)>) {
        if released.is_empty() {
            return;
        }
        let dirs: Vec<PathBuf> = released.iter().map(|(_, d, _)| d.clone()).collect();
        {
            let mut c = self.closing.lock().unwrap_or_else(|p| p.into_inner());
            for d in &dirs {
                *c.entry(d.clone()).or_default() += 1;
            }
        }
        drop(released);
        let mut c = self.closing.lock().unwrap_or_else(|p| p.into_inner());
        for d in &dirs {
            if let Some(n) = c.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    c.remove(d);
                }
            }
        }
        drop(c);
        self.closed.notify_all();
    }

    /// Lets go of the folders no session has used for [`LINGER_FOR`];
    /// the server calls this now and then, so that an idle server does not
    /// keep a big folder's messages and caches (about 150 MB for 100,000
    /// messages after a full sync) for as long as nobody opens another.
    /// Must run off the async runtime: a folder's last drop writes its
    /// index. Returns how many folders were let go of.
    pub fn release_idle(&self) -> usize {
        self.release_idle_at(Instant::now())
    }

    fn release_idle_at(&self, now: Instant) -> usize {
        let released = prune(
            &mut self.linger.lock().unwrap_or_else(|p| p.into_inner()),
            now,
        );
        let n = released.len();
        self.let_go(released);
        n
    }

    /// The folder for `dir` if some session has it open. A folder marked
    /// gone (its directory vanished) is never handed out again, even if a
    /// directory is back at its path: that is a new folder, read afresh,
    /// and a session given the old one would be told at once that its
    /// mailbox was deleted.
    fn get(&self, dir: &Path) -> Option<Arc<Folder>> {
        live(self.table().get(dir))
    }

    /// Forgets `dir` and every directory whose name starts with it plus `.`
    /// (the folder's children), after a rename or delete.
    fn forget_tree(&self, dir: &Path) {
        let prefix = format!("{}.", dir.display());
        let released: Vec<_> = {
            let mut l = self.linger.lock().unwrap_or_else(|p| p.into_inner());
            let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *l)
                .into_iter()
                .partition(|(_, d, _)| d == dir || d.display().to_string().starts_with(&prefix));
            *l = keep;
            gone
        };
        self.let_go(released);
        self.table()
            .retain(|k, _| k != dir && !k.display().to_string().starts_with(&prefix));
    }
}

/// The folder behind a table entry, if it is still held and not gone.
fn live(entry: Option<&Weak<Folder>>) -> Option<Arc<Folder>> {
    entry.and_then(Weak::upgrade).filter(|f| !f.is_gone())
}

/// Takes out of `linger` the entries to let go of at `now`: those unused
/// for [`LINGER_FOR`], then the longest unused beyond [`LINGER_MAX`]. A
/// folder some session (or a watcher round) still holds counts as used
/// now, so its time runs from when the last session left, not from when
/// it was opened: a phone that kept INBOX selected for an hour and
/// reconnects a minute later still finds it open.
fn prune(
    linger: &mut Vec<(Instant, PathBuf, Arc<Folder>)>,
    now: Instant,
) -> Vec<(Instant, PathBuf, Arc<Folder>)> {
    for e in linger.iter_mut() {
        if Arc::strong_count(&e.2) > 1 {
            e.0 = now;
        }
    }
    linger.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut keep = linger.len().min(LINGER_MAX);
    while keep > 0 && now.saturating_duration_since(linger[keep - 1].0) > LINGER_FOR {
        keep -= 1;
    }
    linger.split_off(keep)
}

/// Options for opening a user's store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// fsync files and directories before acknowledging writes. Only tests
    /// and the benchmark's no-fsync mode turn this off.
    pub fsync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { fsync: true }
    }
}

/// One user's Maildir++ (INBOX at the root, folders as `.A.B`).
pub struct MailStore {
    root: PathBuf,
    registry: Arc<Registry>,
    opts: StoreOptions,
    /// Permission bits of the root: new folders and files never get more.
    dir_mode: u32,
}

/// A folder as LIST sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderEntry {
    /// UTF-8, `/`-separated; `INBOX` for the root.
    pub name: String,
}

/// STATUS figures for one folder (computed without sending anything to
/// sessions that have it selected).
#[derive(Clone, Debug, Default)]
pub struct FolderStatus {
    pub messages: u32,
    pub recent: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub unseen: u32,
    pub deleted: u32,
    /// Sum of RFC822.SIZE.
    pub size: u64,
    pub highest_modseq: u64,
}

const INBOX: &str = "INBOX";

impl MailStore {
    /// Opens (and creates if missing: `cur/ new/ tmp/`) the Maildir at `root`.
    pub fn open(root: PathBuf, registry: Arc<Registry>, opts: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        let dir_mode = std::fs::metadata(&root)?.permissions().mode() & 0o7777;
        for sub in ["cur", "new", "tmp"] {
            match std::fs::DirBuilder::new()
                .mode(dir_mode)
                .create(root.join(sub))
            {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        clean_deleted(&root);
        Ok(MailStore {
            root,
            registry,
            opts,
            dir_mode,
        })
    }

    /// The Maildir root (tests only).
    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file_mode(&self) -> u32 {
        self.dir_mode & 0o666
    }

    /// The directory a folder name maps to (it need not exist).
    fn dir_of(&self, name: &str) -> Result<PathBuf> {
        if name == INBOX {
            return Ok(self.root.clone());
        }
        Ok(self.root.join(names::to_dir(name)?))
    }

    /// The existing directory of a folder, canonical, refusing one that a
    /// symlink leads out of the Maildir.
    fn existing_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir_of(name)?;
        if dir == self.root {
            return Ok(dir);
        }
        let canon = match dir.canonicalize() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        if !canon.starts_with(&self.root) || canon == self.root || !canon.is_dir() {
            return Err(StoreError::NotFound);
        }
        Ok(canon)
    }

    /// Every existing folder, INBOX included, in no particular order.
    /// Parents that exist only as a prefix (`.A.B` without `.A`) are not
    /// listed: the session infers `\NonExistent`/`\Noselect` for them.
    pub fn list_folders(&self) -> Result<Vec<FolderEntry>> {
        let mut out = vec![FolderEntry { name: INBOX.into() }];
        for entry in std::fs::read_dir(&self.root)? {
            let Ok(entry) = entry else { continue };
            let Ok(fname) = entry.file_name().into_string() else {
                continue;
            };
            let Some(name) = names::from_dir(&fname) else {
                continue;
            };
            if self.existing_dir(&name).is_ok() {
                out.push(FolderEntry { name });
            }
        }
        Ok(out)
    }

    /// Whether the folder exists (tests only: commands open it and answer
    /// `NotFound`).
    #[cfg(test)]
    pub fn folder_exists(&self, name: &str) -> bool {
        self.existing_dir(name).is_ok()
    }

    /// `InvalidName` for names with an empty level, a level starting with
    /// `.`... anything that is not a safe Maildir++ name; `AlreadyExists`.
    pub fn create_folder(&self, name: &str) -> Result<()> {
        if name == INBOX {
            return Err(StoreError::AlreadyExists);
        }
        let dir = self.dir_of(name)?;
        let builder = {
            let mut b = std::fs::DirBuilder::new();
            b.mode(self.dir_mode);
            b
        };
        match builder.create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists);
            }
            Err(e) => return Err(e.into()),
        }
        for sub in ["cur", "new", "tmp"] {
            builder.create(dir.join(sub))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.file_mode())
            .open(dir.join("maildirfolder"))?;
        if self.opts.fsync {
            maildir::fsync_dir(&dir)?;
            maildir::fsync_dir(&self.root)?;
        }
        Ok(())
    }

    /// `Cannot` for INBOX. Children stay (RFC 9051 §6.3.4).
    pub fn delete_folder(&self, name: &str) -> Result<()> {
        if name == INBOX {
            return Err(StoreError::Cannot("INBOX cannot be deleted".into()));
        }
        let dir = self.dir_of(name)?;
        let canon = self.existing_dir(name)?;
        // Rename first so the folder vanishes at once and a crash half-way
        // through the removal leaves no half-folder behind (the leftover is
        // removed on the next open).
        let trash = self.root.join(format!(
            "{DELETED_PREFIX}{}",
            maildir::filename::unique_base()
        ));
        std::fs::rename(&dir, &trash)?;
        self.registry.forget_tree(&canon);
        if let Err(e) = std::fs::remove_dir_all(&trash) {
            tracing::warn!(dir = %trash.display(), error = %e, "cannot remove deleted folder");
        }
        Ok(())
    }

    /// Renames the folder and all its children. Renaming INBOX moves its
    /// messages into a new folder and leaves INBOX empty (RFC 9051 §6.3.6).
    pub fn rename_folder(&self, from: &str, to: &str) -> Result<()> {
        if to == INBOX {
            return Err(StoreError::AlreadyExists);
        }
        let to_dir = self.dir_of(to)?;
        if from == INBOX {
            self.create_folder(to)?;
            let inbox = self.open_folder(INBOX)?;
            let dest = self.open_folder(to)?;
            inbox.sync(false)?;
            let all = inbox.all_uids();
            inbox.move_to(&all, &dest)?;
            return Ok(());
        }
        let from_dir = self.dir_of(from)?;
        let canon = self.existing_dir(from)?;
        if to.starts_with(&format!("{from}/")) {
            return Err(StoreError::Cannot(
                "cannot rename a folder into itself".into(),
            ));
        }
        if std::fs::symlink_metadata(&to_dir).is_ok() {
            return Err(StoreError::AlreadyExists);
        }
        // Children: every `.from.*` directory becomes `.to.*`.
        let from_name = dir_name(&from_dir);
        let to_name = dir_name(&to_dir);
        let prefix = format!("{from_name}.");
        let mut children = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let Ok(entry) = entry else { continue };
            let Ok(n) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(rest) = n.strip_prefix(&prefix) {
                let target = format!("{to_name}.{rest}");
                if std::fs::symlink_metadata(self.root.join(&target)).is_ok() {
                    return Err(StoreError::AlreadyExists);
                }
                children.push((n.clone(), target));
            }
        }
        std::fs::rename(&from_dir, &to_dir)?;
        for (old, new) in children {
            if let Err(e) = std::fs::rename(self.root.join(&old), self.root.join(&new)) {
                tracing::warn!(old, new, error = %e, "cannot rename child folder");
            }
        }
        self.registry.forget_tree(&canon);
        if self.opts.fsync {
            maildir::fsync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Subscribed names (they need not exist).
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(subscriptions::load(&self.root)?)
    }

    pub fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()> {
        if name != INBOX {
            names::validate(name)?;
        }
        let mut list = subscriptions::load(&self.root)?;
        let present = list.iter().any(|n| n == name);
        if subscribed && !present {
            list.push(name.to_string());
        } else if !subscribed && present {
            list.retain(|n| n != name);
        } else {
            return Ok(());
        }
        subscriptions::save(&self.root, &list, self.opts.fsync)?;
        Ok(())
    }

    /// Opens the folder (shared through the registry) and brings it up to
    /// date with the disk (without moving `new/` to `cur/`).
    pub fn open_folder(&self, name: &str) -> Result<Arc<Folder>> {
        self.open_folder_with(name, false)
    }

    /// [`MailStore::open_folder`] for a read-write SELECT: the one sync
    /// also moves `new/` to `cur/` (so a SELECT scans the folder once).
    pub fn open_folder_with(&self, name: &str, move_new: bool) -> Result<Arc<Folder>> {
        let folder = self.registered(name)?;
        folder.sync(move_new)?;
        Ok(folder)
    }

    /// The folder from the registry, opened (not synced) if nobody has it.
    fn registered(&self, name: &str) -> Result<Arc<Folder>> {
        let dir = self.existing_dir(name)?;
        self.registry.get_or_open(&dir, || {
            Folder::open(name, dir.clone(), &self.root, &self.opts, self.file_mode())
        })
    }

    /// The folder (shared through the registry) for saving into it:
    /// APPEND, and the destination of COPY and MOVE. An open folder is not
    /// rescanned (see [`Folder::sync_for_write`]).
    pub fn open_folder_for_write(&self, name: &str) -> Result<Arc<Folder>> {
        let folder = self.registered(name)?;
        folder.sync_for_write()?;
        Ok(folder)
    }

    /// STATUS without computing unknown sizes when `need_size` is false
    /// (then `size` counts only messages whose size is already known).
    pub fn status_opts(&self, name: &str, need_size: bool) -> Result<FolderStatus> {
        let dir = self.existing_dir(name)?;
        let folder = match self.registry.get(&dir) {
            Some(f) => {
                f.sync(false)?;
                f
            }
            None => self.open_folder(name)?,
        };
        folder.status(need_size)
    }
}

/// Quota limits and use (RFC 9208 `STORAGE` is `bytes / 1024`,
/// `MESSAGE` is `count`). `None` limits mean unlimited.
pub use maildir::quota::Quota;

impl MailStore {
    /// The Maildir++ quota (`maildirsize`); `None` when the Maildir has no
    /// quota file, i.e. no quota.
    ///
    /// Nothing calls it yet: kept for issue 19 (GETQUOTA/GETQUOTAROOT and
    /// `nestbox quota show`). APPEND and COPY already enforce a quota file
    /// that exists.
    pub fn quota(&self) -> Result<Option<Quota>> {
        Ok(maildir::quota::load(&self.root)?)
    }

    /// Sets the limits (from the configuration), recomputing the use from
    /// the directories. Both `None` removes the quota file.
    ///
    /// Nothing calls it yet: kept for issue 19, which applies `mail.quota`
    /// (and per-user limits) through it.
    pub fn set_quota_limits(
        &self,
        bytes: Option<u64>,
        count: Option<u64>,
    ) -> Result<Option<Quota>> {
        if bytes.is_none() && count.is_none() {
            match std::fs::remove_file(self.root.join(maildir::quota::FILE)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(None);
        }
        if let Some(q) = maildir::quota::load(&self.root)? {
            if q.bytes_limit == bytes && q.count_limit == count {
                return Ok(Some(q));
            }
        }
        Ok(Some(maildir::quota::recalc(&self.root, bytes, count)?))
    }
}

/// Name prefix of a deleted folder awaiting removal (not a `.` name, so no
/// program mistakes it for a folder).
const DELETED_PREFIX: &str = "nestbox-deleted.";

fn dir_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Finishes removing folders a crash left half-deleted.
fn clean_deleted(root: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(DELETED_PREFIX)
            && entry
                .metadata()
                .is_ok_and(|m| m.is_dir() && m.uid() == unsafe_uid())
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Our effective UID (only our own leftovers are removed).
fn unsafe_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// What the store knows about one message without reading its file.
#[derive(Clone, Debug)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    /// INTERNALDATE: the file's mtime, seconds since the epoch.
    ///
    /// [`UNKNOWN_DATE`] until someone needs it: the first scan of a big
    /// folder does not stat every file (that was most of a cold SELECT);
    /// [`Folder::resolve_dates`] fills it in (and the index keeps it).
    pub internal_date: i64,
    /// RFC822.SIZE (the CRLF form), when known from `W=`, the uidlist or
    /// the index; see [`Folder::rfc822_size`].
    pub size: Option<u64>,
    pub modseq: u64,
}

/// `MessageMeta::internal_date` not looked up yet.
pub const UNKNOWN_DATE: i64 = i64::MIN;

/// What changed in a folder since a session last looked.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Messages with a UID above the caller's highest known UID, ascending.
    pub new: Vec<MessageMeta>,
    /// Messages the caller knows whose flags changed after `since_modseq`.
    pub flags: Vec<MessageMeta>,
    /// UIDs the caller knows that are gone.
    pub expunged: Vec<u32>,
    pub highest_modseq: u64,
}

/// Per-message cached data computed by the session from the message body
/// (kept in the store's rebuildable index so warm FETCHes read no files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheField {
    /// The encoded ENVELOPE (`(...)`), UTF-8 mode off.
    Envelope,
    /// The encoded BODYSTRUCTURE.
    BodyStructure,
    /// The encoded non-extensible BODY.
    Body,
    /// The header fields mail clients list their messages with (From,
    /// Subject, Date, References...), raw, in message order, ending with
    /// the blank line: `BODY[HEADER.FIELDS (...)]` over just those is
    /// answered from here.
    CommonHeaders,
}

#[cfg(test)]
mod tests;
