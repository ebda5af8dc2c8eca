//! The digest of common header fields that the store's cache keeps for
//! each message (`CacheField::CommonHeaders`): which fields it holds
//! ([`COMMON_HEADERS`]), whether a FETCH section or a SEARCH `HEADER` key
//! can be answered from it, and one message's digest, from the cache or
//! made from its header block and cached. FETCH (`BODY[HEADER.FIELDS
//! (...)]`, and alongside ENVELOPE), SEARCH and SORT/THREAD all read
//! message headers through it, so a second listing of a big mailbox opens
//! no message file.
//!
//! Owns the field list and the cache-or-make rule for the digest; never
//! decides which messages are read (the commands and `session::evaluate`
//! do).

use std::sync::Arc;

use crate::proto::{Section, SectionText};
use crate::store::{CacheField, Folder, StoreError};

/// Header fields kept in the store's cache (`CacheField::CommonHeaders`):
/// what Thunderbird, K-9/FairEmail, iOS/macOS Mail, mutt and the benchmark
/// ask for when they list a mailbox. Lower case.
pub(crate) const COMMON_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "reply-to",
    "sender",
    "content-type",
    "priority",
    "x-priority",
    "importance",
    "newsgroups",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "x-mailer",
    "user-agent",
    "x-k9mail-identity",
    "chat-version",
    "x-uniform-type-identifier",
    "x-universally-unique-identifier",
    "bimi-indicator",
    "bimi-location",
    "x-bimi-indicator-hash",
];

/// `BODY[HEADER.FIELDS (...)]` naming only common fields: answerable from
/// the cached digest of those fields, since selecting fields from the
/// digest gives the same lines, in the same order, as from the header.
pub(crate) fn from_common_headers(section: &Section) -> bool {
    section.part.is_empty()
        && matches!(&section.text, Some(SectionText::HeaderFields(f)) if f.iter().all(|n| is_common_header(n)))
}

/// Whether `name` is one of [`COMMON_HEADERS`].
pub(crate) fn is_common_header(name: &str) -> bool {
    COMMON_HEADERS.iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// The digest of common header fields of one message, from the cache or
/// made from its header block (and cached).
pub(crate) fn common_digest(folder: &Folder, uid: u32) -> Result<Arc<[u8]>, StoreError> {
    if let Some(c) = folder.cached(uid, CacheField::CommonHeaders) {
        return Ok(c);
    }
    let digest = digest_of(&folder.read_header(uid)?.bytes);
    folder.put_cache(uid, CacheField::CommonHeaders, digest.clone());
    Ok(digest)
}

/// The digest of a message (or its header block), stored or CRLF form.
pub(crate) fn digest_of(raw: &[u8]) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(512);
    crate::mime::header_fields_of(&mut out, raw, COMMON_HEADERS, true);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::Message;

    /// Selecting common fields from the cached digest gives exactly what
    /// selecting them from the whole message gives.
    #[test]
    fn common_header_digest_answers_like_the_header() {
        let msgs: &[&[u8]] = &[
            b"Received: x\nFrom: A <a@x>\nX-Other: y\nSubject: Hi\n  folded\nTo: b@x\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nReferences: <1@x>\n <2@x>\nsubject: again\n\nbody\nFrom: not a header\n",
            b"From: a@x\r\n\r\n",
            b"Subject: no body at all",
            b"",
        ];
        let asks: &[&[&str]] = &[
            &["FROM", "SUBJECT", "DATE"],
            &["subject"],
            &["References", "To", "Cc"],
            &["Bcc"],
        ];
        for raw in msgs {
            let whole = Message::parse(raw);
            let all = Section {
                part: vec![],
                text: Some(SectionText::HeaderFields(
                    COMMON_HEADERS.iter().map(|s| s.to_string()).collect(),
                )),
            };
            let digest = whole.section(&all);
            for ask in asks {
                let names: Vec<String> = ask.iter().map(|s| s.to_string()).collect();
                let sec = Section {
                    part: vec![],
                    text: Some(SectionText::HeaderFields(names.clone())),
                };
                assert!(from_common_headers(&sec));
                // What FETCH sends: fields picked from the digest as it is.
                let mut from_digest = Vec::new();
                crate::mime::select_header_fields(&mut from_digest, &digest, &names, true);
                assert_eq!(
                    String::from_utf8_lossy(&from_digest),
                    String::from_utf8_lossy(&whole.section(&sec)),
                    "{ask:?} of {:?}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
        let other = Section {
            part: vec![],
            text: Some(SectionText::HeaderFields(vec!["X-Other".into()])),
        };
        assert!(!from_common_headers(&other));
    }
}
