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

/// The directory name (`.A.B`) of a folder other than INBOX.
pub fn to_dir(name: &str) -> Result<String, StoreError> {
    validate(name)?;
    let mut out = String::new();
    for level in name.split('/') {
        out.push('.');
        out.push_str(&encode_level(level));
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
}
