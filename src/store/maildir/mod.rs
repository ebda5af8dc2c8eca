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
