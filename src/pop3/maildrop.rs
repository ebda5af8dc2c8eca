//! The POP3 maildrop (RFC 1939 §4-§6): INBOX as it stood at login, over
//! the store's shared view of the folder. Owns the message numbers, the
//! sizes and UIDLs announced for them, the marks DELE and RETR leave, and
//! what QUIT does with those marks (the UPDATE state). Knows no socket
//! and no POP3 syntax; every call that may touch the disk is synchronous
//! (the session runs it off the runtime).
//!
//! Decisions:
//! - The message list is fixed at login: messages that arrive later are
//!   not shown until the next session (RFC 1939 §8, "the maildrop is
//!   locked... messages that arrive are not visible"), and messages that
//!   an IMAP client expunges meanwhile keep their number and size, but
//!   RETR and TOP of them answer `-ERR`: a message is looked up by its
//!   UID, never by position, so no other message's content can ever be
//!   sent in its place.
//! - No lock on the maildrop (RFC 1939 asks for an exclusive one). IMAP
//!   clients of the same INBOX must not be locked out, and two POP3
//!   sessions of one user are safe side by side: both work through the
//!   one folder of their worker, and a message one of them deleted is
//!   skipped by the other's QUIT. Dovecot does the same by default
//!   (`pop3_lock_session = no`).
//! - Sizes are RFC822.SIZE, the CRLF size of the message as RETR sends it
//!   (`message::crlf_size`); unknown ones are computed at login, reading
//!   each such file once (then kept in the index: the next login reads
//!   none).
//! - UIDL is the POP3 UIDL kept in `dovecot-uidlist` for the message
//!   (Dovecot's `P` field, left there by a migration from another server),
//!   else `pop3.uidl_format` expanded (`pop3::uidl_format`; Dovecot's
//!   default `%08Xu%08Xv` unless configured), in that order as Dovecot
//!   does. So a client that moves between Dovecot and nestbox downloads
//!   nothing twice. A format with `%f` or `%g` reads the base names and
//!   GUIDs once at login (about 40 bytes a message, kept for the session).
//! - Memory: the UID list is the folder's shared one (one copy per worker
//!   while INBOX does not change); per session there are 4 bytes of size
//!   per message and two bit sets, so an idle session over 10,000 messages
//!   costs about 40 KiB.
//! - QUIT (UPDATE): `\Seen` for what RETR sent (unless configured off),
//!   then the DELE'd messages are removed, flagged `\Deleted` or moved, as
//!   configured. A connection that ends without QUIT deletes nothing; it
//!   still sets `\Seen` on what it sent, since the client has it (Dovecot
//!   does both the same way).

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::uidl_format::Values;
use super::{DeleAction, Pop3Policy};
use crate::flags::{Flag, FlagOp, Flags};
use crate::store::{Folder, MailStore, StoreError};

/// In `sizes`: the size does not fit `u32` and is in `big_sizes`.
const BIG: u32 = u32::MAX;

/// INBOX as one POP3 session sees it.
pub struct Maildrop {
    pub folder: Arc<Folder>,
    uids: Arc<Vec<u32>>,
    /// RFC822.SIZE by message number - 1 ([`BIG`]: in `big_sizes`). Four
    /// bytes a message: the sizes are what a session keeps per message.
    sizes: Vec<u32>,
    /// Sizes of 4 GiB and more, by message index (practically never any).
    big_sizes: HashMap<usize, u64>,
    uidvalidity: u32,
    /// POP3 UIDLs kept from a migration (`P` fields), by UID; usually empty.
    kept_uidls: HashMap<u32, Box<str>>,
    /// Base name and GUID by UID, when the UIDL format uses them.
    names: HashMap<u32, (Box<str>, Box<str>)>,
    deleted: Bits,
    retrieved: Bits,
    /// Number and octets of messages not marked deleted.
    count: usize,
    octets: u64,
    policy: Pop3Policy,
}

/// Why a message number cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum NoMessage {
    /// 0, or past the last message.
    OutOfRange,
    /// Marked by DELE in this session.
    Deleted,
}

impl Maildrop {
    /// Opens INBOX and fixes the message list (blocking: reads the files
    /// of messages whose size is not known yet).
    pub fn open(store: &MailStore, policy: Pop3Policy) -> Result<Maildrop, StoreError> {
        let folder = store.open_folder("INBOX")?;
        // Unknown sizes are counted from the files once (then the index
        // keeps them).
        folder.resolve_sizes(&folder.uid_list())?;
        let (uids, known) = folder.uids_and_sizes();
        let mut sizes = Vec::with_capacity(uids.len());
        let mut big_sizes = HashMap::default();
        let mut octets = 0u64;
        for (i, size) in known.into_iter().enumerate() {
            // Unknown only if the file could not be read: listed with size
            // 0; RETR will say what is wrong.
            let size = size.unwrap_or(0);
            octets += size;
            let small = u32::try_from(size).ok().filter(|&s| s != BIG);
            if small.is_none() {
                big_sizes.insert(i, size);
            }
            sizes.push(small.unwrap_or(BIG));
        }
        // Only values RFC 1939 §7 allows (1 to 70 characters 0x21-0x7E):
        // anything else in the file (planted, or broken) would break the
        // reply's framing; such a message gets the default form.
        let kept_uidls = folder
            .pop3_uidls()
            .into_iter()
            .filter(|(_, u)| valid_uidl(u))
            .collect();
        let names = if policy.uidl_format.needs_names() {
            folder
                .base_names_and_guids()
                .into_iter()
                .map(|(uid, base, guid)| (uid, (base, guid)))
                .collect()
        } else {
            HashMap::default()
        };
        Ok(Maildrop {
            names,
            uidvalidity: folder.uidvalidity(),
            count: uids.len(),
            deleted: Bits::default(),
            retrieved: Bits::default(),
            folder,
            uids,
            sizes,
            big_sizes,
            kept_uidls,
            octets,
            policy,
        })
    }

    /// STAT: messages not marked deleted, and their octets.
    pub fn stat(&self) -> (usize, u64) {
        (self.count, self.octets)
    }

    /// Every message number (from 1) not marked deleted.
    pub fn numbers(&self) -> impl Iterator<Item = usize> + '_ {
        (1..=self.uids.len()).filter(|&n| !self.deleted.get(n - 1))
    }

    /// The UID of message `n`, if it may be used.
    pub fn uid(&self, n: u32) -> Result<u32, NoMessage> {
        let i = (n as usize)
            .checked_sub(1)
            .filter(|&i| i < self.uids.len())
            .ok_or(NoMessage::OutOfRange)?;
        if self.deleted.get(i) {
            return Err(NoMessage::Deleted);
        }
        Ok(self.uids[i])
    }

    /// The size announced for message `n` (checked with [`Maildrop::uid`]).
    /// Never touches the disk (LIST and DELE run on the async runtime).
    pub fn size(&self, n: usize) -> u64 {
        let i = n.wrapping_sub(1);
        match self.sizes.get(i) {
            Some(&BIG) => self.big_sizes.get(&i).copied().unwrap_or(u64::from(BIG)),
            Some(&s) => u64::from(s),
            None => 0,
        }
    }

    /// Appends the UIDL of message `n` (checked with [`Maildrop::uid`]).
    pub fn push_uidl(&self, n: usize, out: &mut Vec<u8>) {
        let uid = self.uids[n - 1];
        match self.kept_uidls.get(&uid) {
            Some(u) => out.extend_from_slice(u.as_bytes()),
            None if self.policy.uidl_format.is_default() => {
                push_hex8(out, uid);
                push_hex8(out, self.uidvalidity);
            }
            None => {
                let (filename, guid) = self.names.get(&uid).map_or(("", ""), |(b, g)| (&**b, &**g));
                let start = out.len();
                self.policy.uidl_format.expand(
                    &Values {
                        uid,
                        uidvalidity: self.uidvalidity,
                        filename,
                        guid,
                    },
                    out,
                );
                // A base name may hold what a UIDL may not (a space
                // would break the listing's framing): that message
                // gets the default form.
                if !valid_uidl_bytes(&out[start..]) {
                    out.truncate(start);
                    push_hex8(out, uid);
                    push_hex8(out, self.uidvalidity);
                }
            }
        }
    }

    /// DELE.
    pub fn mark_deleted(&mut self, n: u32) -> Result<(), NoMessage> {
        self.uid(n)?;
        let i = n as usize - 1;
        self.deleted.set(i, true);
        self.count -= 1;
        self.octets -= self.size(n as usize);
        Ok(())
    }

    /// RETR sent message `n` whole.
    pub fn mark_retrieved(&mut self, n: u32) {
        if let Some(i) = (n as usize).checked_sub(1).filter(|&i| i < self.uids.len()) {
            self.retrieved.set(i, true);
        }
    }

    /// RSET: no message is marked deleted.
    pub fn reset(&mut self) {
        self.deleted = Bits::default();
        self.count = self.uids.len();
        self.octets = (1..=self.uids.len()).map(|n| self.size(n)).sum();
    }

    /// The UPDATE state (QUIT), or the end of a session without QUIT
    /// (`quit` false: only `\Seen` is set). Returns how many messages were
    /// deleted. Blocking.
    pub fn update(&self, store: &MailStore, quit: bool) -> Result<usize, StoreError> {
        if self.policy.retr_seen {
            let seen: Vec<u32> = self
                .retrieved
                .ones()
                .filter(|&i| !(quit && self.deleted.get(i)))
                .map(|i| self.uids[i])
                .collect();
            if !seen.is_empty() {
                let flags = Flags::from_flags(&[Flag::Seen]);
                self.folder.store_flags(&seen, FlagOp::Add, &flags, None)?;
            }
        }
        if !quit {
            return Ok(0);
        }
        let gone: Vec<u32> = self.deleted.ones().map(|i| self.uids[i]).collect();
        if gone.is_empty() {
            return Ok(0);
        }
        match &self.policy.dele {
            DeleAction::Expunge => {
                self.folder.remove(&gone)?;
            }
            DeleAction::Flag => {
                let flags = Flags::from_flags(&[Flag::Deleted]);
                self.folder.store_flags(&gone, FlagOp::Add, &flags, None)?;
            }
            DeleAction::Move(to) => {
                let dest = match store.open_folder_for_write(to) {
                    Err(StoreError::NotFound) => {
                        store.create_folder(to)?;
                        store.open_folder_for_write(to)?
                    }
                    r => r?,
                };
                self.folder.move_to(&gone, &dest)?;
            }
        }
        Ok(gone.len())
    }

    pub fn policy(&self) -> &Pop3Policy {
        &self.policy
    }
}

/// A unique-id as RFC 1939 §7 defines it.
fn valid_uidl(u: &str) -> bool {
    (1..=70).contains(&u.len()) && valid_uidl_bytes(u.as_bytes())
}

/// Characters a unique-id may hold, at least one. The 70-character limit
/// is not applied to what a format makes: Dovecot sends a long `%f` as it
/// is, and the same UIDLs matter more to clients than the limit.
fn valid_uidl_bytes(u: &[u8]) -> bool {
    !u.is_empty() && u.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Appends `n` as 8 lower-case hex digits.
fn push_hex8(out: &mut Vec<u8>, n: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        out.push(HEX[((n >> (shift * 4)) & 0xf) as usize]);
    }
}

/// A bit set by message index, allocated on first use (most sessions
/// never DELE).
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize, on: bool) {
        let w = i / 64;
        if self.0.len() <= w {
            if !on {
                return;
            }
            self.0.resize(w + 1, 0);
        }
        if on {
            self.0[w] |= 1 << (i % 64);
        } else {
            self.0[w] &= !(1 << (i % 64));
        }
    }

    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidl_is_dovecots_default_form() {
        let mut out = Vec::new();
        push_hex8(&mut out, 0x3e9);
        push_hex8(&mut out, 0x5f3f8b80);
        assert_eq!(out, b"000003e95f3f8b80");
        let mut out = Vec::new();
        push_hex8(&mut out, u32::MAX);
        assert_eq!(out, b"ffffffff");
    }

    #[test]
    fn kept_uidls_must_be_rfc_1939_unique_ids() {
        assert!(valid_uidl("0000000100000001"));
        assert!(valid_uidl("1600000003.M3P400.oldhost"));
        assert!(valid_uidl(&"x".repeat(70)));
        assert!(!valid_uidl(&"x".repeat(71)));
        assert!(!valid_uidl(""));
        assert!(!valid_uidl("a\rb"));
        assert!(!valid_uidl("a b"));
        assert!(!valid_uidl("ä"));
    }

    #[test]
    fn bits() {
        let mut b = Bits::default();
        assert!(!b.get(5));
        b.set(3, false);
        assert!(b.0.is_empty());
        for i in [0, 63, 64, 200] {
            b.set(i, true);
        }
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 63, 64, 200]);
        b.set(63, false);
        assert!(!b.get(63) && b.get(64));
        assert_eq!(b.ones().count(), 3);
    }
}
