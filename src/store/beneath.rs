//! The only place the store touches the file system by name: every open,
//! directory read, stat, rename, link, unlink and mkdir inside a Maildir
//! goes through a [`Dir`], a directory descriptor, and takes one plain name
//! (no `/`, not `.` or `..`), resolved relative to that descriptor without
//! following a symlink.
//!
//! Why: the server may run as root over Maildirs whose owners have shell
//! access. A path built as `root/.Foo/cur/name` and handed to `open(2)` is
//! resolved afresh every time, following whatever symlinks the owner has
//! planted along it (`.Foo/cur -> /home/bob/Maildir/cur`, `new -> /etc`).
//! Here every step is one component beneath a descriptor that was itself
//! opened that way, starting from the Maildir root, so nothing outside the
//! root is reachable by any name, and a symlink swapped in after a
//! directory was opened changes nothing for its holders.
//!
//! How each call resolves:
//! - opens: `openat2(dirfd, name, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
//!   (plus `RESOLVE_CACHED` for [`Dir::open_cached`]). Where the kernel has
//!   no `openat2` (before Linux 5.6, or a seccomp filter that answers
//!   `ENOSYS`/`EPERM`), `openat(dirfd, name, O_NOFOLLOW)`: for a single
//!   component that is not `..`, which is all this module accepts, the two
//!   are the same guarantee (the only component is the last, and
//!   `O_NOFOLLOW` refuses it if it is a symlink). `openat2` is still first:
//!   it is the belt to [`plain`]'s braces.
//! - `fstatat(AT_SYMLINK_NOFOLLOW)`, `mkdirat`, `unlinkat`, `renameat2`,
//!   `linkat` (without `AT_SYMLINK_FOLLOW`) never follow a last component,
//!   and with one component there is no other.
//! - Directory reads reopen `.` of the descriptor.
//!
//! A symlink met where a directory or file is expected fails with `ELOOP`
//! (see [`is_symlink_refusal`]); callers decide what that means (a folder
//! whose `cur/` is a symlink is not served; a symlinked message is not a
//! message).
//!
//! Owns only the descriptors and the name rule. It never builds a path
//! from a name and never follows a symlink; the Maildir root itself is the
//! one path opened the ordinary way ([`Dir::open_root`]: the administrator
//! configured it, and may well have made it a symlink).
//!
//! Limits, on purpose:
//! - The uidlist dotlock still takes a path (`uidlist::lock`, being
//!   rewritten separately): it is given [`Dir::lock_path`],
//!   `/proc/self/fd/N`, which the kernel resolves to the open directory, so
//!   it too stays in the folder opened. It should take a [`Dir`] next.
//! - A hard link is a file of its own, not a pointer: one planted in a
//!   folder is served like any message. Linking another user's file needs
//!   write access to it under `fs.protected_hardlinks` (every distribution's
//!   default), and the per-user worker processes are the second wall.
//! - The change watcher (`watch.rs`) adds inotify watches by path, with
//!   `IN_DONT_FOLLOW | IN_ONLYDIR`; a watch only wakes the store, which
//!   reads through its own descriptors.
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Open flags for [`Dir::open_with`].
pub use rustix::fs::OFlags;
use rustix::fs::{AtFlags, Mode, RenameFlags, ResolveFlags};

/// A directory opened beneath a Maildir root (or the root itself).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Where it was when opened, for log lines only (see [`Dir::display`]).
    shown: PathBuf,
}

/// What `fstatat` says about an entry (the entry itself, never a symlink's
/// target).
#[derive(Clone, Debug)]
pub struct Meta(rustix::fs::Stat);

impl Meta {
    /// Size in bytes (a directory's: what its entries take).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.0.st_size as u64
    }
    pub fn ino(&self) -> u64 {
        self.0.st_ino
    }
    pub fn dev(&self) -> u64 {
        self.0.st_dev
    }
    pub fn uid(&self) -> u32 {
        self.0.st_uid
    }
    pub fn nlink(&self) -> u64 {
        self.0.st_nlink
    }
    /// Modification time, seconds.
    pub fn mtime(&self) -> i64 {
        self.0.st_mtime
    }
    pub fn mtime_nsec(&self) -> i64 {
        self.0.st_mtime_nsec as i64
    }
    /// Modification time, nanoseconds since the epoch.
    pub fn mtime_ns(&self) -> i128 {
        self.0.st_mtime as i128 * 1_000_000_000 + self.0.st_mtime_nsec as i128
    }
    /// Inode change time, nanoseconds since the epoch.
    pub fn ctime_ns(&self) -> i128 {
        self.0.st_ctime as i128 * 1_000_000_000 + self.0.st_ctime_nsec as i128
    }
    fn kind(&self) -> rustix::fs::FileType {
        rustix::fs::FileType::from_raw_mode(self.0.st_mode)
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == rustix::fs::FileType::Directory
    }
    pub fn is_file(&self) -> bool {
        self.kind() == rustix::fs::FileType::RegularFile
    }
    pub fn is_symlink(&self) -> bool {
        self.kind() == rustix::fs::FileType::Symlink
    }
    /// Same file as `other` (device and inode).
    pub fn same_file(&self, other: &Meta) -> bool {
        self.dev() == other.dev() && self.ino() == other.ino()
    }
}

/// One entry of a directory read by [`Dir::for_each_entry`].
pub struct Entry<'a> {
    pub name: &'a str,
    pub ino: u64,
    /// Regular file (the type from the entry; one `fstatat` where the file
    /// system does not say).
    pub is_file: bool,
    pub is_dir: bool,
}

/// Cleared when the kernel turns out not to have `openat2` (or a filter
/// refuses it): every open then takes the `O_NOFOLLOW` way.
static OPENAT2_WORKS: AtomicBool = AtomicBool::new(true);

/// Checks that `name` is one plain component: not empty, not `.` or `..`,
/// no `/` and no NUL.
pub fn plain(name: &str) -> io::Result<&str> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || memchr::memchr2(b'/', 0, name.as_bytes()).is_some()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a plain file name: {name:?}"),
        ));
    }
    Ok(name)
}

/// The error an open or stat gives when it met a symlink it would not
/// follow (`ELOOP`; `EXDEV` is what `RESOLVE_BENEATH` answers for an
/// escape, which a plain name cannot attempt, but it means the same).
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV))
}

fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

impl Dir {
    /// Opens the Maildir root by its configured path (the one path this
    /// module follows symlinks in: see the module doc).
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            shown: path.to_path_buf(),
        })
    }

    /// Whether a root opened with [`Dir::open_root`] is still what its path
    /// leads to (a Maildir moved aside and another put in its place, as a
    /// restore from backup does, is not). A `stat` of the configured path,
    /// the one path this module follows, and an `fstat`.
    pub fn root_still_at_its_path(&self) -> io::Result<bool> {
        let now = match rustix::fs::stat(&self.shown) {
            Ok(m) => Meta(m),
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(now.same_file(&self.meta()?))
    }

    /// The path this directory had when opened, for log lines. Never
    /// open anything by it: that is what this module exists to prevent.
    pub fn display(&self) -> std::path::Display<'_> {
        self.shown.display()
    }

    fn openat(&self, name: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let name = plain(name)?;
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        if OPENAT2_WORKS.load(Ordering::Relaxed) {
            match rustix::fs::openat2(&self.fd, name, flags, mode, resolve()) {
                Ok(fd) => return Ok(fd),
                Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                    OPENAT2_WORKS.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rustix::fs::openat(&self.fd, name, flags, mode)?)
    }

    /// The subdirectory `name`; `ELOOP` if it is a symlink, `ENOTDIR` if it
    /// is something else.
    pub fn dir(&self, name: &str) -> io::Result<Dir> {
        let fd = match self.openat(name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Ok(fd) => fd,
            // `O_DIRECTORY` answers a symlink with `ENOTDIR` before
            // `O_NOFOLLOW` looks: say which it was.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(match self.stat(name) {
                    Ok(m) if m.is_symlink() => io::Error::from_raw_os_error(libc::ELOOP),
                    _ => e,
                });
            }
            Err(e) => return Err(e),
        };
        Ok(Dir {
            fd,
            shown: self.shown.join(name),
        })
    }

    /// Opens `name` read-only.
    pub fn open(&self, name: &str) -> io::Result<File> {
        Ok(File::from(self.openat(
            name,
            OFlags::RDONLY,
            Mode::empty(),
        )?))
    }

    /// Opens `name` with `flags` (access mode included; `CLOEXEC` and
    /// `NOFOLLOW` are added) and, if created, `mode`.
    pub fn open_with(&self, name: &str, flags: OFlags, mode: u32) -> io::Result<File> {
        Ok(File::from(self.openat(
            name,
            flags,
            Mode::from_raw_mode(mode),
        )?))
    }

    /// Creates `name`, which must not exist (not even as a dangling
    /// symlink), for writing.
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        self.open_with(name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, mode)
    }

    /// A new regular file in this directory with no name (`O_TMPFILE`), for
    /// reading and writing: it vanishes when closed unless
    /// [`Dir::link_unnamed`] gives it one, so a crash leaves nothing
    /// behind. `Ok(None)` where the file system or kernel cannot make one
    /// (`EOPNOTSUPP`, or `EISDIR`/`EINVAL` from kernels before 3.11).
    pub fn create_unnamed(&self, mode: u32) -> io::Result<Option<File>> {
        match rustix::fs::openat(
            &self.fd,
            c".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL,
            ) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives a file made by [`Dir::create_unnamed`] the name `to` in this
    /// directory (`AlreadyExists` if taken). By descriptor: `AT_EMPTY_PATH`
    /// where the kernel allows it (it asks for `CAP_DAC_READ_SEARCH`), else
    /// `/proc/self/fd/N`, the magic link to this process's own descriptor
    /// (what `open(2)` documents for `O_TMPFILE`). The only name resolved is
    /// `to`, one plain name beneath this directory.
    pub fn link_unnamed(&self, file: &File, to: &str) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let to = plain(to)?;
        match rustix::fs::linkat(file, c"", &self.fd, to, AtFlags::EMPTY_PATH) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
        let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
        Ok(rustix::fs::linkat(
            rustix::fs::CWD,
            proc.as_str(),
            &self.fd,
            to,
            AtFlags::SYMLINK_FOLLOW,
        )?)
    }

    /// Opens `name` read-only only if every step is in the kernel's caches
    /// (`RESOLVE_CACHED`): `Ok(None)` when that would wait or the kernel
    /// cannot do it (see `nowait`).
    pub fn open_cached(&self, name: &str) -> io::Result<Option<File>> {
        static CACHED_WORKS: AtomicBool = AtomicBool::new(true);
        let name = plain(name)?;
        if !CACHED_WORKS.load(Ordering::Relaxed) || !OPENAT2_WORKS.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match rustix::fs::openat2(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            resolve() | ResolveFlags::CACHED,
        ) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::AGAIN) => Ok(None),
            // No openat2, or no RESOLVE_CACHED (before Linux 5.12).
            Err(
                rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::TOOBIG
                | rustix::io::Errno::PERM,
            ) => {
                CACHED_WORKS.store(false, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The whole content of `name`.
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut f = self.open(name)?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)?;
        Ok(out)
    }

    /// `fstatat(name, AT_SYMLINK_NOFOLLOW)`.
    pub fn stat(&self, name: &str) -> io::Result<Meta> {
        Ok(Meta(rustix::fs::statat(
            &self.fd,
            plain(name)?,
            AtFlags::SYMLINK_NOFOLLOW,
        )?))
    }

    /// `fstat` of this directory.
    pub fn meta(&self) -> io::Result<Meta> {
        Ok(Meta(rustix::fs::fstat(&self.fd)?))
    }

    /// Creates the subdirectory `name` with `mode`.
    pub fn mkdir(&self, name: &str, mode: u32) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(
            &self.fd,
            plain(name)?,
            Mode::from_raw_mode(mode),
        )?)
    }

    /// Removes the entry `name` (a symlink is removed, not followed).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.fd,
            plain(name)?,
            AtFlags::empty(),
        )?)
    }

    /// Removes the empty subdirectory `name`.
    pub fn rmdir(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.fd,
            plain(name)?,
            AtFlags::REMOVEDIR,
        )?)
    }

    /// Renames `from` here to `to` in `to_dir`, replacing what is there.
    pub fn rename(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(
            &self.fd,
            plain(from)?,
            &to_dir.fd,
            plain(to)?,
        )?)
    }

    /// Renames without replacing an existing target (`AlreadyExists`)
    /// where the file system supports it, else a plain rename. Two files
    /// can share a base name (a real duplicate, MAILDIR.md); renaming one
    /// to carry new flags must never destroy the other.
    pub fn rename_noreplace(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        let (from, to) = (plain(from)?, plain(to)?);
        match rustix::fs::renameat_with(&self.fd, from, &to_dir.fd, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            // Not supported by this kernel or file system: plain rename.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                Ok(rustix::fs::renameat(&self.fd, from, &to_dir.fd, to)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Hard-links `from` here as `to` in `to_dir` (a symlink `from` is
    /// linked as the symlink, never its target).
    pub fn link(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        Ok(rustix::fs::linkat(
            &self.fd,
            plain(from)?,
            &to_dir.fd,
            plain(to)?,
            AtFlags::empty(),
        )?)
    }

    /// Makes renames and creates in this directory durable.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }

    /// Calls `f` for every entry but `.` and `..`, in directory order.
    /// Names that are not UTF-8 are skipped (no Maildir name we track is
    /// one). Stops at the first error `f` returns.
    pub fn for_each_entry(&self, mut f: impl FnMut(Entry<'_>) -> io::Result<()>) -> io::Result<()> {
        let fd = rustix::fs::openat(
            &self.fd,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut rd = rustix::fs::Dir::new(fd)?;
        while let Some(entry) = rd.read() {
            let entry = entry?;
            let cname: &CStr = entry.file_name();
            let Ok(name) = cname.to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let (is_file, is_dir) = match entry.file_type() {
                rustix::fs::FileType::RegularFile => (true, false),
                rustix::fs::FileType::Directory => (false, true),
                rustix::fs::FileType::Unknown => match self.stat(name) {
                    Ok(m) => (m.is_file(), m.is_dir()),
                    Err(_) => continue,
                },
                _ => (false, false),
            };
            f(Entry {
                name,
                ino: entry.ino(),
                is_file,
                is_dir,
            })?;
        }
        Ok(())
    }

    /// Every entry's name (but `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        self.for_each_entry(|e| {
            out.push(e.name.to_string());
            Ok(())
        })?;
        Ok(out)
    }

    /// Writes `name` atomically: a temporary name in this directory, then
    /// a rename over it, so readers see the old or the new content, never
    /// a torn one.
    pub fn write_atomic(&self, name: &str, data: &[u8], mode: u32, fsync: bool) -> io::Result<()> {
        let tmp = format!(
            "{}.{}.{}.tmp",
            plain(name)?,
            std::process::id(),
            crate::store::maildir::filename::unique_base()
        );
        let result = (|| {
            let mut f = self.create_new(&tmp, mode)?;
            f.write_all(data)?;
            if fsync {
                f.sync_all()?;
            }
            self.rename(&tmp, self, name)
        })();
        if result.is_err() {
            let _ = self.unlink(&tmp);
        }
        result?;
        if fsync {
            self.sync()?;
        }
        Ok(())
    }

    /// Removes `name` and, if it is a directory, everything in it, never
    /// following a symlink (a symlink inside is removed as a link).
    pub fn remove_tree(&self, name: &str) -> io::Result<()> {
        match self.dir(name) {
            Ok(sub) => {
                for n in sub.names()? {
                    sub.remove_tree(&n)?;
                }
                drop(sub);
                self.rmdir(name)
            }
            // Not a directory (a file or a symlink): unlink the entry.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                self.unlink(name)
            }
            Err(e) => Err(e),
        }
    }

    /// A path for the one caller that still takes a directory path, the
    /// uidlist dotlock (`uidlist::lock`, being rewritten elsewhere; it
    /// should take a [`Dir`] next): `/proc/self/fd/N`, which the kernel
    /// resolves to this very open directory, not to whatever has its old
    /// name now. Where `/proc` is not mounted, the path it was opened by.
    /// The path is only good while this `Dir` is open: the descriptor's
    /// number is reused once it is closed.
    pub fn lock_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
            Path::new("/proc/self/fd").join(self.fd.as_raw_fd().to_string())
        } else {
            self.shown.clone()
        }
    }

    /// An independent handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            shown: self.shown.clone(),
        })
    }
}

/// A folder's directory and its `cur/`, `new/` and `tmp/`, each opened
/// once, beneath the Maildir root and without following a symlink. The
/// folder reads, creates, renames and removes its messages only through
/// these: a symlink planted later at any of their names, or the folder
/// renamed away, leaves its holders working on the directories they opened
/// (which [`FolderDirs::in_place`] notices, so the folder can be dropped
/// and opened afresh, which refuses the symlink).
#[derive(Debug)]
pub struct FolderDirs {
    /// The Maildir root (opened by [`Dir::open_root`]), where
    /// `maildirsize` lives.
    pub root: Arc<Dir>,
    /// The folder directory's name in the root (`.Foo`); `None` for INBOX,
    /// the root itself.
    name: Option<String>,
    /// Mode for a missing `cur/`, `new/` or `tmp/`.
    mode: u32,
    pub dir: Dir,
    pub cur: Dir,
    pub new: Dir,
    pub tmp: Dir,
    /// Device and inode of `dir`, `cur/` and `new/` as opened.
    ids: [(u64, u64); 3],
}

impl FolderDirs {
    /// Opens the folder `name` in `root` (`None`: the root itself),
    /// creating a missing `cur/`, `new/` or `tmp/` with `mode`. `ELOOP` if
    /// the folder directory or one of the three is a symlink, `ENOENT` if
    /// the folder does not exist, `ENOTDIR` if it is not a directory.
    pub fn open(root: &Arc<Dir>, name: Option<&str>, mode: u32) -> io::Result<FolderDirs> {
        let dir = match name {
            Some(n) => root.dir(n)?,
            None => root.try_clone()?,
        };
        let sub = |s: &str| -> io::Result<Dir> {
            match dir.mkdir(s, mode) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            dir.dir(s)
        };
        let (cur, new, tmp) = (sub("cur")?, sub("new")?, sub("tmp")?);
        let id = |d: &Dir| d.meta().map(|m| (m.dev(), m.ino()));
        let ids = [id(&dir)?, id(&cur)?, id(&new)?];
        Ok(FolderDirs {
            root: root.clone(),
            name: name.map(str::to_string),
            mode,
            dir,
            cur,
            new,
            tmp,
            ids,
        })
    }

    /// The folder at the same name now, from the root at its path now: what
    /// a folder follows when it was replaced (a Maildir restored from
    /// backup), with the same refusals as [`FolderDirs::open`].
    pub fn reopen(&self) -> io::Result<FolderDirs> {
        let root = if self.root.root_still_at_its_path()? {
            self.root.clone()
        } else {
            Arc::new(Dir::open_root(&self.root.shown)?)
        };
        FolderDirs::open(&root, self.name.as_deref(), self.mode)
    }

    /// `new/` or `cur/`.
    pub fn sub(&self, in_new: bool) -> &Dir {
        if in_new { &self.new } else { &self.cur }
    }

    /// Whether the folder is still where and what it was when opened: the
    /// root (opened by [`Dir::open_root`]) still at its path, the folder's
    /// directory not deleted, its name in `root` (for a folder other than
    /// INBOX) and the names `cur` and `new` in it still leading to the very
    /// directories opened (not to a symlink, not to a replacement). A
    /// `stat`, an `fstat` and three `fstatat`s.
    pub fn in_place(&self) -> io::Result<bool> {
        let root = &self.root;
        if !root.root_still_at_its_path()? {
            return Ok(false);
        }
        let same = |m: io::Result<Meta>, (dev, ino): (u64, u64)| match m {
            Ok(m) => Ok(m.dev() == dev && m.ino() == ino && m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(false),
            Err(e) => Err(e),
        };
        let dir_ok = match &self.name {
            Some(n) => same(root.stat(n), self.ids[0])?,
            None => self.dir.meta()?.nlink() > 0,
        };
        Ok(dir_ok
            && same(self.dir.stat("cur"), self.ids[1])?
            && same(self.dir.stat("new"), self.ids[2])?)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Dir) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::fs::write(root.path().join("real/file"), b"mine").unwrap();
        symlink(outside.path(), root.path().join("out")).unwrap();
        symlink(outside.path().join("secret"), root.path().join("real/link")).unwrap();
        symlink("real", root.path().join("inside")).unwrap();
        let d = Dir::open_root(root.path()).unwrap();
        (root, outside, d)
    }

    #[test]
    fn names_with_a_slash_or_dots_never_reach_the_kernel() {
        let (_r, _o, d) = setup();
        for bad in ["", ".", "..", "../x", "real/file", "/etc/passwd", "a\0b"] {
            for e in [
                d.open(bad).err(),
                d.dir(bad).err(),
                d.stat(bad).err(),
                d.unlink(bad).err(),
                d.mkdir(bad, 0o700).err(),
                d.create_new(bad, 0o600).err(),
                d.rename(bad, &d, "x").err(),
                d.rename("real", &d, bad).err(),
                d.link(bad, &d, "x").err(),
            ] {
                let e = e.unwrap_or_else(|| panic!("{bad:?} accepted"));
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
            }
        }
    }

    #[test]
    fn symlinks_are_refused_not_followed() {
        let (root, outside, d) = setup();
        for name in ["out", "inside"] {
            let e = d.dir(name).unwrap_err();
            assert!(is_symlink_refusal(&e), "{name}: {e}");
            assert!(is_symlink_refusal(&d.open(name).unwrap_err()));
        }
        let real = d.dir("real").unwrap();
        assert_eq!(real.read("file").unwrap(), b"mine");
        assert!(is_symlink_refusal(&real.open("link").unwrap_err()));
        assert!(real.stat("link").unwrap().is_symlink());
        // Creating through a dangling or real symlink fails.
        assert!(real.create_new("link", 0o600).is_err());
        // The nowait open refuses the same.
        assert!(!matches!(real.open_cached("link"), Ok(Some(_))));
        // Linking a symlink links the link; unlinking it removes the link.
        real.link("link", &real, "link2").unwrap();
        assert!(real.stat("link2").unwrap().is_symlink());
        real.unlink("link2").unwrap();
        // remove_tree removes links, never what they point to.
        d.remove_tree("real").unwrap();
        d.remove_tree("out").unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("secret")).unwrap(),
            b"secret"
        );
        assert!(!root.path().join("real").exists());
    }

    #[test]
    fn an_open_directory_stays_itself_when_its_name_is_swapped() {
        let (root, outside, d) = setup();
        let real = d.dir("real").unwrap();
        std::fs::rename(root.path().join("real"), root.path().join("moved")).unwrap();
        symlink(outside.path(), root.path().join("real")).unwrap();
        // Still the directory opened, not the symlink's target.
        assert_eq!(real.read("file").unwrap(), b"mine");
        real.create_new("new", 0o600).unwrap();
        assert!(root.path().join("moved/new").exists());
        assert!(!outside.path().join("new").exists());
        assert!(is_symlink_refusal(&d.dir("real").unwrap_err()));
        // The lock's path reaches the open directory too.
        let p = real.lock_path().join("file");
        assert_eq!(std::fs::read(p).unwrap(), b"mine");
    }

    #[test]
    fn folder_dirs_refuse_symlinks_and_notice_a_swap() {
        let (root, outside, d) = setup();
        // The root itself (INBOX) and a real folder: cur/new/tmp made.
        let d = Arc::new(d);
        let inbox = FolderDirs::open(&d, None, 0o700).unwrap();
        assert!(inbox.in_place().unwrap());
        std::fs::create_dir(root.path().join(".F")).unwrap();
        let f = FolderDirs::open(&d, Some(".F"), 0o700).unwrap();
        assert!(root.path().join(".F/tmp").is_dir());
        assert!(f.in_place().unwrap());
        // A folder directory, or one of its three, that is a symlink.
        assert!(is_symlink_refusal(
            &FolderDirs::open(&d, Some("out"), 0o700).unwrap_err()
        ));
        for sub in ["cur", "new", "tmp"] {
            let g = root.path().join(format!(".G{sub}"));
            std::fs::create_dir(&g).unwrap();
            symlink(outside.path(), g.join(sub)).unwrap();
            let e = FolderDirs::open(&d, Some(&format!(".G{sub}")), 0o700).unwrap_err();
            assert!(is_symlink_refusal(&e), "{sub}: {e}");
        }
        assert!(
            std::fs::read_dir(outside.path()).unwrap().count() == 1,
            "nothing made outside"
        );
        // Swapped after opening: still the directories opened, and noticed.
        std::fs::rename(root.path().join(".F/cur"), root.path().join(".F/cur.old")).unwrap();
        symlink(outside.path(), root.path().join(".F/cur")).unwrap();
        assert!(!f.in_place().unwrap());
        assert!(is_symlink_refusal(&f.reopen().unwrap_err()));
        f.cur.create_new("m", 0o600).unwrap();
        assert!(root.path().join(".F/cur.old/m").exists());
        // Renamed away, or deleted.
        let h = {
            std::fs::create_dir(root.path().join(".H")).unwrap();
            FolderDirs::open(&d, Some(".H"), 0o700).unwrap()
        };
        std::fs::rename(root.path().join(".H"), root.path().join(".H2")).unwrap();
        assert!(!h.in_place().unwrap());
        assert_eq!(h.reopen().unwrap_err().kind(), io::ErrorKind::NotFound);
        // Another directory put at its name (a restore): followed.
        std::fs::create_dir(root.path().join(".H")).unwrap();
        let h3 = h.reopen().unwrap();
        assert!(h3.in_place().unwrap());
        let sub = Arc::new(Dir::open_root(&root.path().join(".H2")).unwrap());
        let h2 = FolderDirs::open(&sub, None, 0o700).unwrap();
        std::fs::remove_dir_all(root.path().join(".H2")).unwrap();
        assert!(!h2.in_place().unwrap());
        // The root itself moved aside and another put at its path.
        let moved = root.path().with_extension("aside");
        std::fs::rename(root.path(), &moved).unwrap();
        std::fs::create_dir(root.path()).unwrap();
        assert!(!h3.in_place().unwrap());
        let h4 = inbox.reopen().unwrap();
        assert!(h4.in_place().unwrap() && root.path().join("cur").is_dir());
        std::fs::remove_dir_all(&moved).unwrap();
    }

    #[test]
    fn files_are_written_atomically_and_listed() {
        let (_r, _o, d) = setup();
        let real = d.dir("real").unwrap();
        real.write_atomic("f", b"one", 0o600, true).unwrap();
        real.write_atomic("f", b"two", 0o600, false).unwrap();
        assert_eq!(real.read("f").unwrap(), b"two");
        let mut names = real.names().unwrap();
        names.sort();
        assert_eq!(names, ["f", "file", "link"]);
        let mut files = Vec::new();
        real.for_each_entry(|e| {
            if e.is_file {
                files.push(e.name.to_string());
            }
            Ok(())
        })
        .unwrap();
        files.sort();
        assert_eq!(files, ["f", "file"]);
        real.rename_noreplace("f", &real, "g").unwrap();
        let e = real.rename_noreplace("g", &real, "file").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    }
}
