//! The mail store: one user's Maildir++ behind a narrow, synchronous
//! interface. Callers on the async runtime wrap calls in `spawn_blocking`,
//! or, for small reads, run them in a [`nowait::Scope`], where the store
//! itself hands anything that would wait to the caller's hook.
//! Folder names here are UTF-8 with `/` as the hierarchy separator; `INBOX`
//! is always spelled `INBOX` (the session case-folds it).
//!
//! Owns the mapping from folder names to directories, the process-wide
//! [`Registry`] of open folders (their lifetime: open, linger, close; see
//! `registry`), live sync (a change feed per open folder, driven by the
//! process's change watcher: `live`) and folder-level operations (CREATE,
//! DELETE, RENAME, subscriptions, STATUS). Message-level work lives in
//! [`maildir::folder`]. It never speaks IMAP, knows no socket, and never
//! assumes it is the only program using the Maildir (see
//! `shared/MAILDIR.md`).
//!
//! Decisions worth knowing:
//! - `INBOX` is the Maildir root; `INBOX/foo` is the ordinary folder
//!   `.INBOX.foo` (no special case on disk, as in Dovecot's Maildir++).
//! - The store cannot leave the Maildir: everything below the root is
//!   reached through [`beneath`] (directory descriptors, one name at a
//!   time, no symlink followed). A folder whose directory, `cur/`, `new/`
//!   or `tmp/` is a symlink is not served: opening it (SELECT, EXAMINE,
//!   STATUS, APPEND, COPY/MOVE into it) is `Cannot` (`NO [CANNOT]`), logged
//!   once per folder. LIST leaves out a folder directory that is a symlink
//!   (it is an entry pointing elsewhere, not a folder of this Maildir) but
//!   shows a real folder directory whose `cur/`, `new/` or `tmp/` is one:
//!   the folder exists, and hiding it would tell clients it was deleted
//!   (they would drop their copy of it, or try to create it again).
//!   An open folder keeps its directories open: a symlink swapped in
//!   later is never followed; its next sync notices, drops the folder
//!   (sessions that have it selected end) and the next open refuses it.
//!   Real directories put at its name (a restore from backup) are followed.
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
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub mod beneath;
mod live;
pub mod maildir;
pub mod nowait;
pub mod quota_upkeep;
pub mod quota_warning;
mod registry;
mod special_use;
mod spool;

pub use registry::{LINGER_FOR, Registry};

use beneath::{Dir, FolderDirs};

use crate::flags::Flags;
pub use maildir::folder::{
    ChangeQuery, DirStamp, EntryEvent, Folder, HeaderBlock, MessageFile, ObjectInfo, RwHold,
    ViewStart, valid_objectid,
};
use maildir::{names, subscriptions};
pub use spool::{Part, Spool};

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
    /// The name's directory would not fit one directory entry (NAME_MAX
    /// bytes after encoding, see `maildir::names`): such a folder can never
    /// exist. Also what a stray `ENAMETOOLONG` from the OS becomes.
    #[error("mailbox name too long")]
    NameTooLong,
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
    Io(std::io::Error),
}

/// What [`StoreError::Cannot`] says for a symlink met where the store
/// wanted a file or directory of the Maildir.
pub const NOT_SERVED: &str = "Mailbox not served: it contains a symbolic link";

impl StoreError {
    /// A folder's uidlist lock is held by another live process, and the
    /// call ran in [`MailStore::without_lock_waits`], so it did not wait.
    pub fn is_lock_busy(&self) -> bool {
        matches!(self, StoreError::Io(e) if maildir::dotlock::is_busy(e))
    }
}

impl From<std::io::Error> for StoreError {
    /// A symlink the store refused to follow ([`beneath`]) is `Cannot`, not
    /// an I/O error: it is how the Maildir is made, not a fault of ours,
    /// and no retry will help (RFC 5530 `CANNOT`). So is a name too long
    /// for the file system.
    fn from(e: std::io::Error) -> Self {
        if beneath::is_symlink_refusal(&e) {
            return StoreError::Cannot(NOT_SERVED.into());
        }
        if e.raw_os_error() == Some(libc::ENAMETOOLONG) {
            return names::too_long();
        }
        StoreError::Io(e)
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;

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
    /// The canonical root path: the registry's keys and log lines.
    root: PathBuf,
    /// The root, open: every file below it is reached through this (see
    /// [`MailStore::root_dir`]).
    root_fd: Mutex<Arc<Dir>>,
    registry: Arc<Registry>,
    opts: StoreOptions,
    /// Permission bits of the root: new folders and files never get more.
    dir_mode: u32,
    /// The Maildir's quota bookkeeping, shared with its folders.
    upkeep: Arc<quota_upkeep::QuotaUpkeep>,
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
    /// MAILBOXID (RFC 8474), see `Folder::mailbox_id`.
    pub mailbox_id: String,
    /// Sum of RFC822.SIZE of the \Deleted messages whose size is known
    /// (RFC 9208 DELETED-STORAGE; exact with `need_size`).
    pub deleted_size: u64,
}

const INBOX: &str = "INBOX";

impl MailStore {
    /// Opens (and creates if missing: `cur/ new/ tmp/`) the Maildir at `root`.
    /// The root path is the one path followed as given (the administrator
    /// configured it); below it nothing is (see [`beneath`]).
    pub fn open(root: PathBuf, registry: Arc<Registry>, opts: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        let root_dir = Dir::open_root(&root)?;
        let dir_mode = std::fs::metadata(&root)?.permissions().mode() & 0o7777;
        for sub in ["cur", "new", "tmp"] {
            match root_dir.mkdir(sub, dir_mode) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        clean_deleted(&root_dir);
        let upkeep = registry.quota_upkeep(&root, dir_mode & 0o666, opts.fsync);
        Ok(MailStore {
            root,
            root_fd: Mutex::new(Arc::new(root_dir)),
            registry,
            opts,
            dir_mode,
            upkeep,
        })
    }

    /// The Maildir root (tests only).
    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The open root, opened again if the path now leads to another
    /// directory (a Maildir restored from backup in place of the old one):
    /// a long session then works on the Maildir that is there, as a new
    /// one would. One `stat` and one `fstat`.
    fn root_dir(&self) -> Arc<Dir> {
        let mut held = self.root_fd.lock().unwrap_or_else(|p| p.into_inner());
        if !held.root_still_at_its_path().unwrap_or(true) {
            match Dir::open_root(&self.root) {
                Ok(d) => *held = Arc::new(d),
                Err(e) => {
                    tracing::warn!(root = %self.root.display(), error = %e, "cannot open the Maildir again")
                }
            }
        }
        held.clone()
    }

    fn file_mode(&self) -> u32 {
        self.dir_mode & 0o666
    }

    /// The directory entry in the root a folder name maps to (`None`: the
    /// root itself, INBOX; it need not exist), and its path for the
    /// registry and the log.
    fn dir_of(&self, name: &str) -> Result<(Option<String>, PathBuf)> {
        if name == INBOX {
            return Ok((None, self.root.clone()));
        }
        let entry = names::to_dir(name)?;
        let path = self.root.join(&entry);
        Ok((Some(entry), path))
    }

    /// The existing directory of a folder: `NotFound` if there is none,
    /// `Cannot` (logged once) if its name in the root is a symlink.
    fn existing_dir(&self, root: &Dir, name: &str) -> Result<(Option<String>, PathBuf)> {
        let (entry, path) = self.dir_of(name)?;
        let Some(e) = &entry else {
            return Ok((entry, path));
        };
        match root.stat(e) {
            Ok(m) if m.is_dir() => Ok((entry, path)),
            Ok(m) if m.is_symlink() => Err(not_served(&path, "is a symbolic link")),
            Ok(_) => Err(StoreError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Every existing folder, INBOX included, in no particular order.
    /// Parents that exist only as a prefix (`.A.B` without `.A`) are not
    /// listed: the session infers `\NonExistent`/`\Noselect` for them.
    /// Only real directories count (see the module doc): one `readdir` of
    /// the root, the type from its entries.
    pub fn list_folders(&self) -> Result<Vec<FolderEntry>> {
        let mut out = vec![FolderEntry { name: INBOX.into() }];
        self.root_dir().for_each_entry(|e| {
            if e.is_dir {
                if let Some(name) = names::from_dir(e.name) {
                    out.push(FolderEntry { name });
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every existing folder with the inode of its directory (the root's
    /// for INBOX): a folder renamed keeps its inode, one deleted and made
    /// again gets another, which is how NOTIFY tells a RENAME from a DELETE
    /// and a CREATE (RFC 5465 §5.4). One `readdir` of the root.
    pub fn folder_ids(&self) -> Result<Vec<(String, u64)>> {
        let root = self.root_dir();
        let mut out = vec![(INBOX.to_string(), root.meta()?.ino())];
        root.for_each_entry(|e| {
            if e.is_dir {
                if let Some(name) = names::from_dir(e.name) {
                    out.push((name, e.ino));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// A watch of this Maildir's folders and subscriptions (see
    /// `Registry::watch_root`); `None` without live sync.
    pub fn watch_folders(&self) -> Option<crate::watch::FolderWatch> {
        self.registry.watch_root(&self.root)
    }

    /// Whether the folder exists (tests only: commands open it and answer
    /// `NotFound`).
    #[cfg(test)]
    pub fn folder_exists(&self, name: &str) -> bool {
        self.existing_dir(&self.root_dir(), name).is_ok()
    }

    /// `InvalidName` for names with an empty level, a level starting with
    /// `.`... anything that is not a safe Maildir++ name; `AlreadyExists`.
    pub fn create_folder(&self, name: &str) -> Result<()> {
        let root = self.root_dir();
        if name == INBOX {
            return Err(StoreError::AlreadyExists);
        }
        let (Some(entry), _) = self.dir_of(name)? else {
            return Err(StoreError::AlreadyExists);
        };
        match root.mkdir(&entry, self.dir_mode) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists);
            }
            Err(e) => return Err(e.into()),
        }
        let dir = root.dir(&entry)?;
        for sub in ["cur", "new", "tmp"] {
            dir.mkdir(sub, self.dir_mode)?;
        }
        dir.open_with(
            "maildirfolder",
            beneath::OFlags::WRONLY | beneath::OFlags::CREATE,
            self.file_mode(),
        )?;
        if self.opts.fsync {
            dir.sync()?;
            root.sync()?;
        }
        Ok(())
    }

    /// `Cannot` for INBOX. Children stay (RFC 9051 §6.3.4).
    pub fn delete_folder(&self, name: &str) -> Result<()> {
        let root = self.root_dir();
        if name == INBOX {
            return Err(StoreError::Cannot("INBOX cannot be deleted".into()));
        }
        let (Some(entry), canon) = self.existing_dir(&root, name)? else {
            return Err(StoreError::Cannot("INBOX cannot be deleted".into()));
        };
        // Rename first so the folder vanishes at once and a crash half-way
        // through the removal leaves no half-folder behind (the leftover is
        // removed on the next open). Both names are entries of the root.
        let trash = format!("{DELETED_PREFIX}{}", maildir::filename::unique_base());
        root.rename(&entry, &root, &trash)?;
        self.registry.forget_tree(&canon);
        if let Err(e) = root.remove_tree(&trash) {
            tracing::warn!(dir = %self.root.join(&trash).display(), error = %e, "cannot remove deleted folder");
        }
        Ok(())
    }

    /// Renames the folder and all its children. Renaming INBOX moves its
    /// messages into a new folder and leaves INBOX empty (RFC 9051 §6.3.6).
    pub fn rename_folder(&self, from: &str, to: &str) -> Result<()> {
        let root = self.root_dir();
        if to == INBOX {
            return Err(StoreError::AlreadyExists);
        }
        let (to_entry, to_dir) = self.dir_of(to)?;
        if from == INBOX {
            self.create_folder(to)?;
            let inbox = self.open_folder(INBOX)?;
            let dest = self.open_folder(to)?;
            inbox.sync(false)?;
            let all = inbox.all_uids();
            inbox.move_to(&all, &dest)?;
            return Ok(());
        }
        let (Some(from_name), canon) = self.existing_dir(&root, from)? else {
            return Err(StoreError::Cannot("INBOX is renamed by moving".into()));
        };
        let Some(to_name) = to_entry else {
            return Err(StoreError::AlreadyExists);
        };
        let _ = to_dir;
        if to.starts_with(&format!("{from}/")) {
            return Err(StoreError::Cannot(
                "cannot rename a folder into itself".into(),
            ));
        }
        if root.stat(&to_name).is_ok() {
            return Err(StoreError::AlreadyExists);
        }
        // Children: every `.from.*` entry becomes `.to.*` (renaming an
        // entry that is a symlink moves the link, never what it points to).
        let prefix = format!("{from_name}.");
        let mut children = Vec::new();
        for n in root.names()? {
            if let Some(rest) = n.strip_prefix(&prefix) {
                let target = format!("{to_name}.{rest}");
                // Checked before anything moves: a child that cannot be
                // renamed would be left behind under the old name.
                names::dir_fits(&target)?;
                if root.stat(&target).is_ok() {
                    return Err(StoreError::AlreadyExists);
                }
                children.push((n.clone(), target));
            }
        }
        root.rename(&from_name, &root, &to_name)?;
        for (old, new) in children {
            if let Err(e) = root.rename(&old, &root, &new) {
                tracing::warn!(old, new, error = %e, "cannot rename child folder");
            }
        }
        self.registry.forget_tree(&canon);
        if self.opts.fsync {
            root.sync()?;
        }
        Ok(())
    }

    /// Subscribed names (they need not exist).
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(subscriptions::load(&self.root_dir())?)
    }

    pub fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()> {
        let root = self.root_dir();
        if name != INBOX {
            names::validate(name)?;
        }
        let mut list = subscriptions::load(&root)?;
        let present = list.iter().any(|n| n == name);
        if subscribed && !present {
            list.push(name.to_string());
        } else if !subscribed && present {
            list.retain(|n| n != name);
        } else {
            return Ok(());
        }
        subscriptions::save(&root, &list, self.opts.fsync)?;
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
        self.registered_then(name, |f| f.sync(move_new))
    }

    /// The folder from the registry after `prepare` (a sync). An open
    /// folder that `prepare` finds moved, deleted or replaced (its
    /// directory or `cur/`/`new/` swapped, say for a symlink) is marked gone
    /// and dropped from the registry: then it is opened afresh once, so the
    /// caller gets the answer for what is there now (a new folder, `NotFound`,
    /// or `Cannot` for a symlink), not a stale `NotFound`.
    fn registered_then(
        &self,
        name: &str,
        prepare: impl Fn(&Folder) -> Result<()>,
    ) -> Result<Arc<Folder>> {
        let folder = self.registered(name)?;
        folder.attach_upkeep(&self.upkeep);
        match prepare(&folder) {
            Ok(()) => Ok(folder),
            Err(StoreError::NotFound) if folder.is_gone() => {
                let again = self.registered(name)?;
                again.attach_upkeep(&self.upkeep);
                prepare(&again)?;
                Ok(again)
            }
            Err(e) => Err(e),
        }
    }

    /// The folder from the registry, opened (not synced) if nobody has it.
    fn registered(&self, name: &str) -> Result<Arc<Folder>> {
        let root = self.root_dir();
        let (entry, dir) = self.existing_dir(&root, name)?;
        self.registry.get_or_open(&dir, || {
            let dirs = match FolderDirs::open(&root, entry.as_deref(), self.dir_mode) {
                Ok(d) => d,
                Err(e) if beneath::is_symlink_refusal(&e) => {
                    return Err(not_served(
                        &dir,
                        "or its cur/, new/ or tmp/ is a symbolic link",
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(StoreError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            Folder::open(name, dir.clone(), dirs, &self.opts, self.file_mode()).map_err(|e| match e
            {
                StoreError::Cannot(m) if m == NOT_SERVED => not_served(
                    &dir,
                    "holds a symbolic link where a file of the folder belongs",
                ),
                e => e,
            })
        })
    }

    /// Waits, without holding a thread, until no other process holds the
    /// uidlist lock of folder `name`, breaking a stale one; does not take
    /// it. A session awaits this before a command that saves into the
    /// folder (APPEND, COPY, MOVE), and before it runs again a section that
    /// [`MailStore::without_lock_waits`] cut short (SELECT, STATUS), so
    /// that waiting for another program's lock never ties up a
    /// blocking-pool thread (see `maildir::dotlock`).
    /// A missing folder or bad name is not an error here: the command
    /// itself reports it. Fails with `TimedOut` after the lock's wait limit.
    pub async fn wait_unlocked(&self, name: &str) -> Result<()> {
        let root = self.root_dir();
        let Ok((_, dir)) = self.existing_dir(&root, name) else {
            return Ok(());
        };
        match maildir::dotlock::wait_free(&dir, maildir::folder::LOCK_STALE_AFTER).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Runs `f`, store calls that open or sync folders, so that none of
    /// them waits in place for another process's uidlist lock: where one
    /// would (a live owner's fresh lock, see `maildir::dotlock`), it fails
    /// at once with an error for which [`StoreError::is_lock_busy`] holds,
    /// having changed nothing a second run would not redo. The caller then
    /// awaits [`MailStore::wait_unlocked`] and runs `f` again: so a session
    /// waits for the lock without holding a blocking-pool thread, and only
    /// when its sync needs the lock (to number new messages, or to create a
    /// missing uidlist). Not for sections that commit messages under the
    /// lock (see `dotlock`).
    pub fn without_lock_waits<T>(f: impl FnOnce() -> T) -> T {
        maildir::dotlock::without_waiting(f)
    }

    /// The folder (shared through the registry) for saving into it:
    /// APPEND, and the destination of COPY and MOVE. An open folder is not
    /// rescanned (see [`Folder::sync_for_write`]).
    pub fn open_folder_for_write(&self, name: &str) -> Result<Arc<Folder>> {
        self.registered_then(name, |f| f.sync_for_write())
    }

    /// STATUS without computing unknown sizes when `need_size` is false
    /// (then `size` counts only messages whose size is already known).
    pub fn status_opts(&self, name: &str, need_size: bool) -> Result<FolderStatus> {
        let folder = self.open_folder(name)?;
        folder.status(need_size)
    }
}

/// Tests only: a store that closes every folder of its registry when it
/// goes, as a worker does when it ends, so that a test may drop a store
/// and open the Maildir again as the next process would find it.
#[cfg(test)]
pub(crate) struct ClosingStore(pub MailStore);

#[cfg(test)]
impl std::ops::Deref for ClosingStore {
    type Target = MailStore;
    fn deref(&self) -> &MailStore {
        &self.0
    }
}

#[cfg(test)]
impl Drop for ClosingStore {
    fn drop(&mut self) {
        self.0.registry.close_all();
    }
}

/// Writes a user's quota limits into the Maildir++ `maildirsize` at
/// `root` (the Maildir): a file missing, or with other limits, is written
/// anew with totals counted from the folders (as Dovecot and maildrop do
/// when they find it so); one with these limits is left as it is.
///
/// With `keep_existing` (the operator lets users SETQUOTA their own), a
/// file that exists keeps its limits: they are the user's choice.
pub fn apply_quota(
    root: &std::path::Path,
    limits: crate::auth::QuotaLimits,
    keep_existing: bool,
) -> Result<()> {
    // Opened as a session would: a first login's Maildir is made here.
    let store = MailStore::open(root.to_path_buf(), Registry::new(), StoreOptions::default())?;
    let dir = store.root_dir();
    let current = maildir::quota::load(&dir)?;
    if keep_existing && current.is_some() {
        return Ok(());
    }
    let same =
        current.is_some_and(|q| q.bytes_limit == limits.bytes && q.count_limit == limits.messages);
    if !same {
        maildir::quota::recalc(&dir, limits.bytes, limits.messages)?;
    }
    Ok(())
}

/// Quota limits and use (RFC 9208 `STORAGE` is `bytes / 1024`,
/// `MESSAGE` is `count`). `None` limits mean unlimited.
pub use maildir::quota::Quota;

impl MailStore {
    /// The Maildir++ quota (`maildirsize`); `None` when the Maildir has no
    /// quota file, i.e. no quota. GETQUOTA and GETQUOTAROOT answer from it;
    /// APPEND and COPY enforce it.
    pub fn quota(&self) -> Result<Option<Quota>> {
        Ok(self.upkeep.settle(&self.root_dir())?)
    }

    /// Sets the limits (SETQUOTA, when the operator allows it), counting
    /// the use again from the directories. Both `None` keeps the file with
    /// no limit in it (`0S`), so the choice outlives the next login
    /// (`apply_quota` with `keep_existing`).
    pub fn set_quota_limits(&self, bytes: Option<u64>, count: Option<u64>) -> Result<Quota> {
        let root = self.root_dir();
        let q = self
            .upkeep
            .alone(|| maildir::quota::recalc(&root, bytes, count))?;
        self.upkeep.after_own_change(&root);
        Ok(q)
    }
}

/// Name prefix of a deleted folder awaiting removal (not a `.` name, so no
/// program mistakes it for a folder).
const DELETED_PREFIX: &str = "nestbox-deleted.";

/// `Cannot` for a folder that is not served because of a symlink where a
/// directory belongs (see the module doc), logged the first time this
/// process meets it: a client retrying SELECT every minute must not fill
/// the log.
fn not_served(dir: &Path, why: &str) -> StoreError {
    static SEEN: Mutex<Option<std::collections::HashSet<PathBuf>>> = Mutex::new(None);
    let first = SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(Default::default)
        .insert(dir.to_path_buf());
    if first {
        tracing::warn!(
            dir = %dir.display(),
            "folder not served: its directory {why} (the store never follows symlinks inside a Maildir)"
        );
    }
    StoreError::Cannot(NOT_SERVED.into())
}

/// Finishes removing folders a crash left half-deleted (never following a
/// symlink: a planted `nestbox-deleted.x -> /` removes the link only).
fn clean_deleted(root: &Dir) {
    let Ok(names) = root.names() else {
        return;
    };
    for name in names {
        if name.starts_with(DELETED_PREFIX)
            && root
                .stat(&name)
                .is_ok_and(|m| m.is_dir() && m.uid() == unsafe_uid())
        {
            let _ = root.remove_tree(&name);
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
    /// the index; see [`Folder::rfc822_size`], and
    /// [`Folder::resolve_sizes`] for many at once.
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
    /// The folder's UIDVALIDITY (from [`Folder::changes`] only).
    pub uidvalidity: u32,
    /// \Recent claimed for the caller, ascending (from [`Folder::changes`]
    /// with `claim_recent`, when there are new messages).
    pub recent: Vec<u32>,
    /// The folder's shared UID list (from [`Folder::changes`], when
    /// anything changed or the caller asked).
    pub uid_list: Option<Arc<Vec<u32>>>,
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
    /// The RFC 8970 PREVIEW text (UTF-8, possibly empty).
    Preview,
}

#[cfg(test)]
mod modseq_tests;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod tests;
