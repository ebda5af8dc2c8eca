//! The Maildir++ backend of the store: file names, the uidlist, keywords,
//! subscriptions, folder state and sync, saving, and nestbox's own index.
//!
//! Everything here is synchronous and assumes other programs work on the
//! same files at the same time (MAILDIR.md); nothing here talks IMAP.

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
use std::path::Path;

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
