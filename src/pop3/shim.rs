//! TEMPORARY: stand-ins for what the store branch of issue 17 adds
//! (`Folder::{pop3_uidls, remove}`), so the POP3 session builds before it
//! is merged. Removed at the merge.
#![allow(dead_code)]

use crate::flags::{Flag, FlagOp, Flags};
use crate::store::{Folder, StoreError};

pub trait FolderExt {
    fn pop3_uidls(&self) -> Vec<(u32, Box<str>)>;
    fn remove(&self, uids: &[u32]) -> Result<Vec<u32>, StoreError>;
}

impl FolderExt for Folder {
    fn pop3_uidls(&self) -> Vec<(u32, Box<str>)> {
        Vec::new()
    }
    fn remove(&self, uids: &[u32]) -> Result<Vec<u32>, StoreError> {
        let flags = Flags::from_flags(&[Flag::Deleted]);
        self.store_flags(uids, FlagOp::Add, &flags, None)?;
        self.expunge(Some(uids))
    }
}
