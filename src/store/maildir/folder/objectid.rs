//! What OBJECTID (RFC 8474) and SAVEDATE (RFC 8514) say about a folder and
//! its messages, all taken from what the Maildir itself keeps, so that the
//! answers survive restarts, the loss of nestbox's index and a switch to
//! Dovecot and back:
//!
//! - MAILBOXID is the folder's uidlist GUID (the `G` field of the
//!   `dovecot-uidlist` header, 128 random bits in hex, which Dovecot also
//!   reports as the mailbox GUID). The uidlist moves with the folder on
//!   RENAME, so the ID does; a folder deleted and created again gets a new
//!   uidlist and a new ID, as RFC 8474 §4 wants.
//! - EMAILID is the message's `G` field in the uidlist when it has one
//!   (Dovecot writes it for a message whose GUID is not its file name;
//!   nestbox writes it when it copies or moves a message, below), else 128
//!   bits of SHA-256 of the unique part of its file's base name (up to the
//!   first `,`), in hex. COPY and MOVE give the new file a fresh base
//!   name, so they write the source's EMAILID into the new record's `G`
//!   field: the message keeps its ID in every folder it is copied to, as
//!   §5.1 asks, and Dovecot reads the same field as its GUID.
//! - THREADID is not computed: FETCH answers NIL and SEARCH THREADID
//!   matches nothing (§5.2 allows this).
//! - SAVEDATE is the time at the start of the file's base name, which every
//!   Maildir writer puts there when it creates the file (MAILDIR.md, unique
//!   names): the delivery, APPEND, COPY or MOVE into this folder (COPY and
//!   MOVE make a new name). A base name that does not start with a
//!   plausible time gives NIL (§3: "unknown").
//!
//! Owns these derivations; never writes anything itself (the uidlist
//! writers carry the `G` fields, `numbering` persists a new folder GUID).

use sha2::{Digest, Sha256};

use super::*;

/// An object ID as RFC 8474 §7 allows it: 1 to 255 of ALPHA, DIGIT, `_`, `-`.
pub fn valid_objectid(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The EMAILID of a message with this base name and uidlist `G` field.
pub fn email_id(base: &str, guid_field: Option<&str>) -> String {
    if let Some(g) = guid_field.filter(|g| valid_objectid(g)) {
        return g.to_string();
    }
    let unique = base.split(',').next().unwrap_or(base);
    let digest = Sha256::digest(unique.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The save date (seconds since the epoch) a base name tells, if any.
pub fn save_date(base: &str) -> Option<i64> {
    let digits = base.split('.').next()?;
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = digits.parse().ok()?;
    // 1990-01-01 up to a day from now: anything else is not a time.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (631_152_000..=now + 86_400).contains(&secs).then_some(secs)
}

/// A message's EMAILID and save date ([`Folder::object_info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub email_id: String,
    pub save_date: Option<i64>,
}

impl Msg {
    pub(super) fn email_id(&self) -> String {
        email_id(self.base(), self.field('G'))
    }
}

impl Folder {
    /// The EMAILID and save date of each message (`None` for those not
    /// here), in the order asked, under one lock.
    pub fn object_info(&self, uids: &[u32]) -> Vec<Option<ObjectInfo>> {
        let st = self.lock_state();
        uids.iter()
            .map(|&u| {
                let m = &st.msgs[st.find(u)?];
                Some(ObjectInfo {
                    email_id: m.email_id(),
                    save_date: save_date(m.base()),
                })
            })
            .collect()
    }

    /// The UIDs of messages whose EMAILID is `id`.
    pub fn uids_with_email_id(&self, id: &str) -> Vec<u32> {
        let st = self.lock_state();
        st.msgs
            .iter()
            .filter(|m| m.email_id() == id)
            .map(|m| m.uid)
            .collect()
    }

    /// The folder's MAILBOXID: its uidlist GUID. A uidlist without one (or
    /// with one that is not a valid object ID) is rewritten with a fresh
    /// GUID first, so the ID is the same tomorrow.
    pub fn mailbox_id(&self) -> String {
        let mut st = self.lock_state();
        if valid_objectid(&st.guid) {
            return st.guid.clone();
        }
        let written = (|| -> Result<()> {
            let lock_dirs = self.dirs();
            let _lock = dotlock::lock(&lock_dirs.dir.lock_path(), self.lock_stale_after)?;
            self.refresh_uidlist(&mut st)?;
            if !valid_objectid(&st.guid) {
                st.guid.clear();
                self.write_full_uidlist(&mut st, std::iter::empty())?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot give the folder a GUID");
        }
        if !valid_objectid(&st.guid) {
            // Not persisted (logged above): an ID for this process's life.
            st.guid = uidlist::new_guid();
        }
        st.guid.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_ids_come_from_the_guid_field_or_the_unique_name() {
        let a = email_id("1700000000.M1P2Q3.host,S=10,W=12", None);
        assert_eq!(a.len(), 32);
        assert!(valid_objectid(&a));
        // The size fields are not part of the identity.
        assert_eq!(a, email_id("1700000000.M1P2Q3.host,S=11", None));
        assert_ne!(a, email_id("1700000000.M1P2Q4.host,S=10,W=12", None));
        assert_eq!(
            email_id("x", Some("0123456789abcdef0123456789abcdef")),
            "0123456789abcdef0123456789abcdef"
        );
        // A field that is not an object ID is not used as one.
        assert_eq!(email_id("x", Some("a.b")), email_id("x", None));
    }

    #[test]
    fn save_dates_come_from_plausible_name_times() {
        assert_eq!(save_date("1700000000.M1P2.host"), Some(1_700_000_000));
        assert_eq!(save_date("1700000000"), Some(1_700_000_000));
        assert_eq!(save_date("12.M1.host"), None);
        assert_eq!(save_date("msg.1700000000"), None);
        assert_eq!(save_date("99999999999.M1.host"), None);
        assert_eq!(save_date(""), None);
    }

    #[test]
    fn object_ids_are_checked() {
        assert!(valid_objectid("M6d99ac3275bb4e"));
        assert!(valid_objectid("a-b_c"));
        assert!(!valid_objectid(""));
        assert!(!valid_objectid("a.b"));
        assert!(!valid_objectid(&"a".repeat(256)));
    }
}
