//! STUB: interface only; the mime helper replaces this file.
//!
//! Message content for FETCH and SEARCH: parse a stored message once and
//! render ENVELOPE, BODYSTRUCTURE, body sections and BINARY parts, all in
//! the CRLF form IMAP counts in. Pure: bytes in, bytes out.
use crate::proto::Section;

/// A parsed message. Holds the CRLF-normalised bytes and the MIME part tree
/// (offsets into those bytes).
pub struct Message {}

#[derive(Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// The part's Content-Transfer-Encoding is unknown: `NO [UNKNOWN-CTE]`.
    UnknownCte,
    /// No such part.
    NoSuchPart,
}

impl Message {
    /// Never fails: broken MIME degrades to a single text/plain part.
    pub fn parse(_raw: &[u8]) -> Message {
        unimplemented!()
    }
    /// The whole message in CRLF form (`BODY[]`, `RFC822`).
    pub fn bytes(&self) -> &[u8] {
        unimplemented!()
    }
    /// The encoded ENVELOPE list. `utf8`: raw UTF-8 allowed in strings
    /// (UTF8=ACCEPT enabled); otherwise 8-bit header bytes force literals.
    pub fn envelope(&self, _utf8: bool) -> Vec<u8> {
        unimplemented!()
    }
    /// The encoded BODYSTRUCTURE (`extensible`) or BODY (`!extensible`).
    pub fn body_structure(&self, _extensible: bool) -> Vec<u8> {
        unimplemented!()
    }
    /// The bytes of `BODY[section]` before any partial. A part that does not
    /// exist yields an empty vector (RFC 9051 §6.4.5 leaves this to the
    /// server; empty is what Dovecot returns).
    pub fn section(&self, _section: &Section) -> Vec<u8> {
        unimplemented!()
    }
    /// `BINARY[part]`: the part's content with its transfer encoding undone.
    pub fn binary(&self, _part: &[u32]) -> Result<Vec<u8>, BinaryError> {
        unimplemented!()
    }
}
