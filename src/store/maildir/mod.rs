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

/// Mode of the store's own files (index, cache, keywords, subscriptions,
/// quota): what `File::create` gives, less the umask.
pub const FILE_MODE: u32 = 0o666;

#[cfg(test)]
mod tests {
    use crate::store::beneath::Dir;
    use crate::store::beneath::FolderDirs;
    use std::fs;
    use std::io;

    fn maildir() -> (tempfile::TempDir, FolderDirs) {
        let t = tempfile::tempdir().unwrap();
        let root = std::sync::Arc::new(Dir::open_root(t.path()).unwrap());
        let dirs = FolderDirs::open(&root, None, 0o700).unwrap();
        (t, dirs)
    }

    /// Flag changes rename by directory descriptor and name (no path
    /// built, nothing resolved from `/`).
    #[test]
    fn renames_move_within_and_between_new_and_cur() {
        let (t, d) = maildir();
        fs::write(t.path().join("new/1.a.h"), b"x").unwrap();
        fs::write(t.path().join("cur/2.b.h:2,"), b"y").unwrap();
        d.new
            .rename_noreplace("1.a.h", &d.cur, "1.a.h:2,S")
            .unwrap();
        d.cur
            .rename_noreplace("2.b.h:2,", &d.cur, "2.b.h:2,FS")
            .unwrap();
        assert_eq!(fs::read(t.path().join("cur/1.a.h:2,S")).unwrap(), b"x");
        assert_eq!(fs::read(t.path().join("cur/2.b.h:2,FS")).unwrap(), b"y");
        assert!(!t.path().join("new/1.a.h").exists());
        assert!(!t.path().join("cur/2.b.h:2,").exists());
    }

    #[test]
    fn renames_never_replace_and_report_what_went_wrong() {
        let (t, d) = maildir();
        fs::write(t.path().join("cur/1.a.h:2,"), b"one").unwrap();
        fs::write(t.path().join("cur/1.a.h:2,S"), b"dup").unwrap();
        let e = d
            .cur
            .rename_noreplace("1.a.h:2,", &d.cur, "1.a.h:2,S")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(t.path().join("cur/1.a.h:2,S")).unwrap(), b"dup");
        assert_eq!(fs::read(t.path().join("cur/1.a.h:2,")).unwrap(), b"one");
        let e = d
            .cur
            .rename_noreplace("gone:2,", &d.cur, "gone:2,S")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // Names, not paths: nothing leaves the folder.
        for (from, to) in [("1.a.h:2,", "../escape"), ("../x", "y"), ("a\0b", "c")] {
            let e = d.cur.rename_noreplace(from, &d.cur, to).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{from} -> {to}");
        }
        assert!(!t.path().join("escape").exists());
    }
}
