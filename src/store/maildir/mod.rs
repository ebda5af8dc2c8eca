//! The Maildir++ backend of the store: file names, the uidlist, keywords,
//! subscriptions, folder state and sync, saving, and nestbox's own index.
//!
//! Everything here is synchronous and assumes other programs work on the
//! same files at the same time (MAILDIR.md); nothing here talks IMAP.

pub mod dotlock;
pub mod filename;
pub mod folder;
pub mod index;
pub mod keywords;
pub mod names;
pub mod quota;
pub mod subscriptions;
pub mod uidlist;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes a file atomically: a temporary name in the same directory, then a
/// rename over the target, so readers see the old or the new content, never
/// a torn one.
pub fn write_atomic(path: &Path, data: &[u8], fsync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        "{name}.{}.{}.tmp",
        std::process::id(),
        filename::unique_base()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        if fsync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if fsync {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Makes a rename or create inside `dir` durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames without replacing an existing target (`AlreadyExists` then)
/// where the system supports it, else a plain rename. Two files can share
/// a base name (a real duplicate, MAILDIR.md); renaming one to carry new
/// flags must never destroy the other.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let f = CString::new(from.as_os_str().as_bytes())?;
        let t = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both pointers are valid NUL-terminated strings that live
        // across the call; AT_FDCWD resolves relative paths like rename(2).
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // Not supported by this kernel or file system: plain rename.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(e);
        }
    }
    std::fs::rename(from, to)
}

/// Renames between a folder's `new/` and `cur/` by directory descriptor
/// and a reused name buffer, for commands that rename many files at once
/// (`STORE 1:*`): no path built and no allocation per file, and the
/// kernel resolves two short names instead of two paths from `/`.
/// Same rules as [`rename_noreplace`].
pub struct DirRenamer {
    dir: PathBuf,
    /// `cur/` and `new/`, opened on first use.
    fds: [Option<OwnedFd>; 2],
    names: Vec<u8>,
}

impl DirRenamer {
    pub fn new(dir: &Path) -> DirRenamer {
        DirRenamer {
            dir: dir.to_path_buf(),
            fds: [None, None],
            names: Vec::new(),
        }
    }

    fn fd(&mut self, in_new: bool) -> io::Result<RawFd> {
        let slot = &mut self.fds[in_new as usize];
        if let Some(fd) = slot {
            return Ok(fd.as_raw_fd());
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(self.dir.join(if in_new { "new" } else { "cur" }))?;
        let fd = OwnedFd::from(f);
        let raw = fd.as_raw_fd();
        *slot = Some(fd);
        Ok(raw)
    }

    /// Renames `from` (in `new/` if `from_new`, else `cur/`) to `to`.
    pub fn rename(&mut self, from_new: bool, from: &str, to_new: bool, to: &str) -> io::Result<()> {
        // One vectorised pass a name: `str::contains` four times was most
        // of the user time this spends (core's memchr is not vectorised).
        let plain = |s: &str| memchr::memchr2(0, b'/', s.as_bytes()).is_none();
        if !plain(from) || !plain(to) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a plain file name",
            ));
        }
        let from_fd = self.fd(from_new)?;
        let to_fd = self.fd(to_new)?;
        self.names.clear();
        self.names.extend_from_slice(from.as_bytes());
        self.names.push(0);
        let split = self.names.len();
        self.names.extend_from_slice(to.as_bytes());
        self.names.push(0);
        let f = self.names.as_ptr().cast::<libc::c_char>();
        // SAFETY: `names` holds two NUL-terminated names (checked above to
        // hold no other NUL) and is not touched until the calls return; the
        // descriptors are open directories owned by `self`.
        let t = unsafe { f.add(split) };
        let r = unsafe { libc::renameat2(from_fd, f, to_fd, t, libc::RENAME_NOREPLACE) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(e);
        }
        // SAFETY: as above.
        if unsafe { libc::renameat(from_fd, f, to_fd, t) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn maildir() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in ["new", "cur", "tmp"] {
            fs::create_dir(t.path().join(d)).unwrap();
        }
        t
    }

    #[test]
    fn dir_renamer_moves_within_and_between_new_and_cur() {
        let t = maildir();
        fs::write(t.path().join("new/1.a.h"), b"x").unwrap();
        fs::write(t.path().join("cur/2.b.h:2,"), b"y").unwrap();
        let mut r = DirRenamer::new(t.path());
        r.rename(true, "1.a.h", false, "1.a.h:2,S").unwrap();
        r.rename(false, "2.b.h:2,", false, "2.b.h:2,FS").unwrap();
        assert_eq!(fs::read(t.path().join("cur/1.a.h:2,S")).unwrap(), b"x");
        assert_eq!(fs::read(t.path().join("cur/2.b.h:2,FS")).unwrap(), b"y");
        assert!(!t.path().join("new/1.a.h").exists());
        assert!(!t.path().join("cur/2.b.h:2,").exists());
    }

    #[test]
    fn dir_renamer_never_replaces_and_reports_what_went_wrong() {
        let t = maildir();
        fs::write(t.path().join("cur/1.a.h:2,"), b"one").unwrap();
        fs::write(t.path().join("cur/1.a.h:2,S"), b"dup").unwrap();
        let mut r = DirRenamer::new(t.path());
        let e = r.rename(false, "1.a.h:2,", false, "1.a.h:2,S").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(t.path().join("cur/1.a.h:2,S")).unwrap(), b"dup");
        assert_eq!(fs::read(t.path().join("cur/1.a.h:2,")).unwrap(), b"one");
        let e = r.rename(false, "gone:2,", false, "gone:2,S").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // Names, not paths: nothing leaves the folder.
        for (from, to) in [("1.a.h:2,", "../escape"), ("../x", "y"), ("a\0b", "c")] {
            let e = r.rename(false, from, false, to).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{from} -> {to}");
        }
        assert!(!t.path().join("escape").exists());
    }
}
