//! Folder names: the IMAP form (UTF-8, `/` between levels) and the
//! Maildir++ directory form (`.A.B`, each level in modified UTF-7).
//!
//! Owns the rule for which names are safe. It must never produce a
//! directory name that escapes the Maildir root or collides with the
//! hierarchy separator `.`. INBOX is the root itself; a folder named
//! `INBOX/foo` is simply `.INBOX.foo` (Dovecot's Maildir++ layout gives
//! `INBOX` as a first level no special meaning on disk).
//!
//! Length: a Maildir++ folder is one directory whose name is the whole
//! path, so the encoded, dotted name must fit one directory entry
//! ([`NAME_MAX`] bytes on Linux's ext4, xfs, btrfs and tmpfs). A longer name
//! is refused here, up front, as [`StoreError::NameTooLong`], for every use of
//! a name (create, rename and its children, open, status, subscribe), so it
//! never reaches the file system as an `ENAMETOOLONG` that would look like
//! our own fault. That also bounds the hierarchy depth: every level takes at
//! least two bytes (a dot and a character), so no name has more than 127
//! levels; a smaller cap of our own would hide deeper folders that another
//! program made, so there is none.

use crate::mutf7;

use super::super::StoreError;

/// The longest file name (one directory entry) in bytes: Linux's NAME_MAX.
pub const NAME_MAX: usize = 255;

/// Checks one level of a folder name.
fn check_level(level: &str, full: &str) -> Result<(), StoreError> {
    let bad = |why: &str| StoreError::InvalidName(format!("{full:?}: {why}"));
    if level.is_empty() {
        return Err(bad("empty hierarchy level"));
    }
    if level.starts_with('.') {
        return Err(bad("a level may not start with '.'"));
    }
    if level.contains('.') {
        return Err(bad(
            "'.' is the on-disk separator and cannot be used in a name",
        ));
    }
    if level.chars().any(|c| c.is_control()) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(())
}

/// Checks a whole IMAP folder name (not INBOX).
pub fn validate(name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::InvalidName("empty name".into()));
    }
    // Cheap bound before encoding anything: modified UTF-7 is never shorter
    // than 8/9 of the UTF-8 (three-byte characters become 8/3 characters).
    if name.len() > 2 * NAME_MAX {
        return Err(StoreError::NameTooLong);
    }
    for level in name.split('/') {
        check_level(level, name)?;
    }
    if dir_len(name) > NAME_MAX {
        return Err(StoreError::NameTooLong);
    }
    Ok(())
}

/// The length in bytes of the directory name (`.A.B`) of a folder name.
fn dir_len(name: &str) -> usize {
    name.split('/').map(|l| 1 + encoded_len(l)).sum()
}

/// The length of [`encode_level`]'s result, without building it for ASCII.
fn encoded_len(level: &str) -> usize {
    if level.is_ascii() && !level.contains('&') {
        level.len()
    } else {
        mutf7::encode(level).len()
    }
}

/// Whether a directory name made by joining onto an existing one (RENAME's
/// children: `.to` + the rest of `.from.child`) fits one directory entry.
pub fn dir_fits(dir: &str) -> Result<(), StoreError> {
    if dir.len() > NAME_MAX {
        return Err(StoreError::NameTooLong);
    }
    Ok(())
}

/// Encodes one level in modified UTF-7. Plain ASCII without `&` is its own
/// encoding, so it skips the codec.
pub fn encode_level(level: &str) -> String {
    if level.is_ascii() && !level.contains('&') {
        level.to_string()
    } else {
        mutf7::encode(level)
    }
}

/// Decodes one level from modified UTF-7; `None` if it is not valid.
pub fn decode_level(level: &str) -> Option<String> {
    if !level.contains('&') {
        return level.is_ascii().then(|| level.to_string());
    }
    mutf7::decode(level).ok()
}

/// What a name too long for the file system is, wherever it is met (also
/// an `ENAMETOOLONG` from the OS): `NO [CANNOT] Mailbox name too long`.
pub fn too_long() -> StoreError {
    StoreError::NameTooLong
}

/// The directory name (`.A.B`) of a folder other than INBOX: always one
/// plain entry of the root (no `/`, never `.` or `..`), at most
/// `NAME_MAX` bytes (longer is `Cannot`, not an I/O error).
pub fn to_dir(name: &str) -> Result<String, StoreError> {
    validate(name)?;
    let mut out = String::new();
    for level in name.split('/') {
        out.push('.');
        out.push_str(&encode_level(level));
    }
    if out.len() > NAME_MAX {
        return Err(too_long());
    }
    Ok(out)
}

/// The IMAP name of a directory in the root, if it is a folder directory
/// with a name we can represent (others are silently not folders).
pub fn from_dir(dir: &str) -> Option<String> {
    let rest = dir.strip_prefix('.')?;
    let mut levels = Vec::new();
    for level in rest.split('.') {
        levels.push(decode_level(level)?);
    }
    let name = levels.join("/");
    validate(&name).ok()?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_table() {
        for (name, dir) in [
            ("Sent", ".Sent"),
            ("A/B", ".A.B"),
            ("INBOX/foo", ".INBOX.foo"),
            ("a b/c-d", ".a b.c-d"),
        ] {
            assert_eq!(to_dir(name).unwrap(), dir, "{name}");
            assert_eq!(from_dir(dir).as_deref(), Some(name), "{dir}");
        }
    }

    #[test]
    fn invalid_names_table() {
        for name in [
            "", "/", "A/", "/A", "A//B", "A.B", ".hidden", "A/..", "A/.", "a\tb", "x\ny", "..",
        ] {
            assert!(
                matches!(to_dir(name), Err(StoreError::InvalidName(_))),
                "{name:?}"
            );
        }
        for dir in ["", ".", "..", "..A", ".A..B", "cur", ".A.", ".a\x01"] {
            assert_eq!(from_dir(dir), None, "{dir:?}");
        }
    }

    #[test]
    fn length_limit_is_the_encoded_dotted_name() {
        let x = |n: usize| "x".repeat(n);
        // ".xxx": 1 + 254 = 255 fits, one byte more does not.
        assert_eq!(to_dir(&x(254)).unwrap().len(), NAME_MAX);
        assert!(matches!(to_dir(&x(255)), Err(StoreError::NameTooLong)));
        // Each level brings its dot.
        assert_eq!(to_dir(&format!("a/{}", x(252))).unwrap().len(), NAME_MAX);
        assert!(matches!(
            to_dir(&format!("a/{}", x(253))),
            Err(StoreError::NameTooLong)
        ));
        // Counted after modified UTF-7: "é" is 2 bytes of UTF-8 and 5 on disk (`&AOk-`).
        assert_eq!(to_dir(&format!("é{}", x(249))).unwrap().len(), NAME_MAX);
        assert!(matches!(
            to_dir(&format!("é{}", x(250))),
            Err(StoreError::NameTooLong)
        ));
        // Three-byte characters are shorter encoded: 94 of them are 282 bytes of UTF-8 and
        // 254 on disk (`.&` + 251 + `-`); the cheap pre-check must not refuse them.
        let cjk = "中".repeat(94);
        assert!(cjk.len() > NAME_MAX);
        assert!(to_dir(&cjk).unwrap().len() <= NAME_MAX);
        // Depth is bounded by the length: 127 one-character levels fit, 128 do not.
        assert!(to_dir(&vec!["a"; 127].join("/")).is_ok());
        assert!(matches!(
            to_dir(&vec!["a"; 128].join("/")),
            Err(StoreError::NameTooLong)
        ));
        // A name too long is not a folder when found on disk either.
        assert_eq!(from_dir(&format!(".{}", x(300))), None);
        assert!(dir_fits(&format!(".{}", x(254))).is_ok());
        assert!(dir_fits(&format!(".{}", x(255))).is_err());
    }

    /// Whatever the name, the directory is one plain entry of the root
    /// that starts with `.` and is neither `.` nor `..`: nothing a client
    /// names leads outside the Maildir or to a file of the store's own.
    #[test]
    fn no_name_leads_outside_the_root() {
        for name in [
            "../x",
            "A/../../etc",
            "/etc/passwd",
            "/",
            "//",
            "..",
            ".",
            "A/..",
            "~root",
            "a\0b",
            "\\x",
            "A/.B",
            ".A",
            "nestbox-deleted.x",
            "cur",
            "dovecot-uidlist",
            "&Jjo-/..",
            "Ab/\u{2028}",
        ] {
            if let Ok(dir) = to_dir(name) {
                assert!(
                    dir.starts_with('.') && dir != "." && dir != "..",
                    "{name:?} -> {dir:?}"
                );
                assert!(
                    crate::store::beneath::plain(&dir).is_ok(),
                    "{name:?} -> {dir:?}"
                );
                assert!(!dir.contains(".."), "{name:?} -> {dir:?}");
            }
        }
        assert!(to_dir("../x").is_err() && to_dir("/etc/passwd").is_err());
        assert!(to_dir("A/../../etc").is_err() && to_dir("a\0b").is_err());
    }
}
