//! Special-use attributes (RFC 6154) given to a folder at CREATE
//! (CREATE-SPECIAL-USE): kept in a small file of ours in the folder's
//! directory, `nestbox-special-use`, one attribute a line. Dovecot keeps
//! special-use in its configuration, not beside the folder, so nothing of
//! Dovecot's is there to share; the file travels with the folder on
//! RENAME, goes with it on DELETE, and is ignored by Dovecot and every
//! other Maildir program. A folder without the file gets its attribute
//! from its name (the session's defaults, which the configuration can
//! change).
//!
//! Owns the file's format; never decides which attributes are valid (the
//! session checks them against RFC 6154 first). Bounded: at most
//! [`MAX_BYTES`] of a file are read, so a planted file cannot make LIST
//! hold much.

use std::io::Read;

use super::{INBOX, MailStore, Result, StoreError};

pub const FILE: &str = "nestbox-special-use";
const MAX_BYTES: u64 = 1024;

impl MailStore {
    /// The attributes stored for each folder that has any.
    pub fn special_uses(&self) -> Result<Vec<(String, Vec<String>)>> {
        let root = self.root_dir();
        let mut out = Vec::new();
        for f in self.list_folders()? {
            let dir = match self.dir_of(&f.name)? {
                (None, _) => None,
                (Some(entry), _) => match root.dir(&entry) {
                    Ok(d) => Some(d),
                    Err(_) => continue,
                },
            };
            let file = match &dir {
                Some(d) => d.open(FILE),
                None => root.open(FILE),
            };
            let Ok(file) = file else {
                continue;
            };
            let mut text = String::new();
            if file.take(MAX_BYTES).read_to_string(&mut text).is_err() {
                continue;
            }
            let attrs: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with('\\'))
                .map(str::to_string)
                .collect();
            if !attrs.is_empty() {
                out.push((f.name, attrs));
            }
        }
        Ok(out)
    }

    /// Stores `attrs` (checked by the caller) for the folder `name`.
    pub fn set_special_use(&self, name: &str, attrs: &[String]) -> Result<()> {
        let root = self.root_dir();
        let text: String = attrs.iter().map(|a| format!("{a}\n")).collect();
        let mode = self.file_mode();
        match self.dir_of(name)? {
            (None, _) if name == INBOX => {
                root.write_atomic(FILE, text.as_bytes(), mode, self.opts.fsync)?
            }
            (Some(entry), _) => {
                let dir = root.dir(&entry).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::NotFound,
                    _ => e.into(),
                })?;
                dir.write_atomic(FILE, text.as_bytes(), mode, self.opts.fsync)?
            }
            (None, _) => return Err(StoreError::NotFound),
        }
        Ok(())
    }
}
