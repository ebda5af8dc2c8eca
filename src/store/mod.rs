//! STUB: interface only; the store helper replaces this file (and adds
//! `store/maildir/...`). The public names and signatures below are the
//! contract the session is written against.
//!
//! The mail store: one user's Maildir++ behind a narrow, synchronous
//! interface. Callers on the async runtime wrap calls in `spawn_blocking`.
//! Folder names here are UTF-8 with `/` as the hierarchy separator; `INBOX`
//! is always spelled `INBOX` (the session case-folds it).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::flags::{FlagOp, Flags};

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

pub type Result<T> = std::result::Result<T, StoreError>;

/// Process-wide table of open folders, so every session of every user that
/// opens the same folder shares one [`Folder`] (one in-memory state, one
/// change notification channel).
#[derive(Default)]
pub struct Registry {}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry {})
    }
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
pub struct MailStore {}

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

impl MailStore {
    /// Opens (and creates if missing: `cur/ new/ tmp/`) the Maildir at `root`.
    pub fn open(_root: PathBuf, _registry: Arc<Registry>, _opts: StoreOptions) -> Result<Self> {
        unimplemented!()
    }
    pub fn root(&self) -> &Path {
        unimplemented!()
    }
    /// Every existing folder, INBOX included, in no particular order.
    /// Parents that exist only as a prefix (`.A.B` without `.A`) are not
    /// listed: the session infers `\NonExistent`/`\Noselect` for them.
    pub fn list_folders(&self) -> Result<Vec<FolderEntry>> {
        unimplemented!()
    }
    pub fn folder_exists(&self, _name: &str) -> bool {
        unimplemented!()
    }
    /// `InvalidName` for names with an empty level, a level starting with
    /// `.`... anything that is not a safe Maildir++ name; `AlreadyExists`.
    pub fn create_folder(&self, _name: &str) -> Result<()> {
        unimplemented!()
    }
    /// `Cannot` for INBOX. Children stay (RFC 9051 §6.3.4).
    pub fn delete_folder(&self, _name: &str) -> Result<()> {
        unimplemented!()
    }
    /// Renames the folder and all its children. Renaming INBOX moves its
    /// messages into a new folder and leaves INBOX empty (RFC 9051 §6.3.6).
    pub fn rename_folder(&self, _from: &str, _to: &str) -> Result<()> {
        unimplemented!()
    }
    /// Subscribed names (they need not exist).
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        unimplemented!()
    }
    pub fn set_subscribed(&self, _name: &str, _subscribed: bool) -> Result<()> {
        unimplemented!()
    }
    /// Opens the folder (shared through the registry) and brings it up to
    /// date with the disk.
    pub fn open_folder(&self, _name: &str) -> Result<Arc<Folder>> {
        unimplemented!()
    }
    pub fn status(&self, _name: &str) -> Result<FolderStatus> {
        unimplemented!()
    }
}

/// What the store knows about one message without reading its file.
#[derive(Clone, Debug)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    /// INTERNALDATE: the file's mtime, seconds since the epoch.
    pub internal_date: i64,
    /// RFC822.SIZE (the CRLF form), when known from `W=`, the uidlist or
    /// the index; see [`Folder::rfc822_size`].
    pub size: Option<u64>,
    pub modseq: u64,
}

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
}

/// One open folder, shared by every session that has it selected.
pub struct Folder {}

impl Folder {
    pub fn name(&self) -> &str {
        unimplemented!()
    }
    pub fn uidvalidity(&self) -> u32 {
        unimplemented!()
    }
    pub fn uidnext(&self) -> u32 {
        unimplemented!()
    }
    pub fn highest_modseq(&self) -> u64 {
        unimplemented!()
    }
    /// Rescans `new/` and `cur/` and reconciles with the uidlist: new files
    /// get UIDs, renamed files change flags, vanished files (confirmed
    /// gone) are expunged. With `move_new`, files in `new/` are moved to
    /// `cur/` (read-write sessions only) and become claimable as \Recent.
    /// Notifies subscribers if anything changed.
    pub fn sync(&self, _move_new: bool) -> Result<()> {
        unimplemented!()
    }
    /// Every message, ascending by UID.
    pub fn messages(&self) -> Arc<Vec<MessageMeta>> {
        unimplemented!()
    }
    /// Takes the UIDs that are \Recent and not yet claimed by any session.
    pub fn take_recent(&self) -> Vec<u32> {
        unimplemented!()
    }
    /// A receiver that wakes whenever the folder changed (the value is the
    /// new highest modseq). Sessions then call [`Folder::changes_since`].
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        unimplemented!()
    }
    /// Changes relative to a session's view: `known` is the session's UIDs
    /// (ascending), `since_modseq` the highest modseq it has reported.
    pub fn changes_since(&self, _since_modseq: u64, _known: &[u32]) -> Changes {
        unimplemented!()
    }
    /// Reads the message file as stored (LF or CRLF line ends).
    pub fn read_message(&self, _uid: u32) -> Result<Arc<Vec<u8>>> {
        unimplemented!()
    }
    /// RFC822.SIZE, computing (and remembering) it from the file if needed.
    pub fn rfc822_size(&self, _uid: u32) -> Result<u64> {
        unimplemented!()
    }
    pub fn cached(&self, _uid: u32, _field: CacheField) -> Option<Arc<[u8]>> {
        unimplemented!()
    }
    pub fn put_cache(&self, _uid: u32, _field: CacheField, _data: Arc<[u8]>) {
        unimplemented!()
    }
    /// Changes the flags of the given UIDs (renames within `cur/`). UIDs no
    /// longer present are skipped. Returns the messages whose flags changed
    /// with their new flags and modseqs; with `unchanged_since`, messages
    /// whose modseq is higher are left alone and returned in the second list.
    pub fn store_flags(
        &self,
        _uids: &[u32],
        _op: FlagOp,
        _flags: &Flags,
        _unchanged_since: Option<u64>,
    ) -> Result<(Vec<MessageMeta>, Vec<u32>)> {
        unimplemented!()
    }
    /// Removes messages flagged `\Deleted` (only those in `uids` if given).
    /// Returns the expunged UIDs, ascending.
    pub fn expunge(&self, _uids: Option<&[u32]>) -> Result<Vec<u32>> {
        unimplemented!()
    }
    /// Saves a new message (tmp/, fsync, rename, fsync dir, uidlist) and
    /// returns its UID. `internal_date` sets the mtime.
    pub fn append(&self, _data: &[u8], _flags: &Flags, _internal_date: Option<i64>) -> Result<u32> {
        unimplemented!()
    }
    /// Copies messages into `dest` (hard link where possible, else copy;
    /// fsynced). Returns `(source uid, dest uid)` pairs, ascending by source.
    pub fn copy_to(&self, _uids: &[u32], _dest: &Folder) -> Result<Vec<(u32, u32)>> {
        unimplemented!()
    }
    /// Moves messages into `dest` by rename, then expunges them here.
    pub fn move_to(&self, _uids: &[u32], _dest: &Folder) -> Result<Vec<(u32, u32)>> {
        unimplemented!()
    }
}
