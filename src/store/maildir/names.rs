//! Folder names: the IMAP form (UTF-8, `/` between levels) and the
//! Maildir++ directory form (`.A.B`, each level in modified UTF-7).
//!
//! Owns the rule for which names are safe. It must never produce a
//! directory name that escapes the Maildir root or collides with the
//! hierarchy separator `.`. INBOX is the root itself; a folder named
//! `INBOX/foo` is simply `.INBOX.foo` (Dovecot's Maildir++ layout gives
//! `INBOX` as a first level no special meaning on disk).

use crate::mutf7;

use super::super::StoreError;

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
    if name.len() > 512 {
        return Err(StoreError::InvalidName("name too long".into()));
    }
    for level in name.split('/') {
        check_level(level, name)?;
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

/// The longest directory name file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// What a name too long for the file system gets (as Dovecot answers it:
/// `NO [CANNOT] Mailbox name too long`).
pub fn too_long() -> StoreError {
    StoreError::Cannot("Mailbox name too long".into())
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

    /// Longer than the file system takes is `Cannot` ("Mailbox name too
    /// long"), never an I/O error; non-ASCII grows in modified UTF-7.
    #[test]
    fn names_too_long_for_the_file_system_are_refused() {
        assert_eq!(to_dir(&"a".repeat(254)).unwrap().len(), 255);
        for name in ["a".repeat(255), "\u{e9}".repeat(100), ["b"; 130].join("/")] {
            assert!(
                matches!(to_dir(&name), Err(StoreError::Cannot(ref m)) if m.contains("too long")),
                "{} bytes",
                name.len()
            );
        }
        assert!(matches!(
            validate(&"a".repeat(600)),
            Err(StoreError::InvalidName(_))
        ));
    }
}
