//! The character classes of the IMAP grammar (RFC 9051 §9), shared by the
//! framer (which must find a command's tag before the parser runs), the
//! parser and the encoder (which decides when a string may go out as an
//! atom). A leaf: it imports nothing, so `frame` and `parse` both depend
//! on it and never on each other.
//!
//! ```text
//! ATOM-CHAR    = <any CHAR except atom-specials>
//! atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
//!                 quoted-specials / resp-specials
//! ASTRING-CHAR = ATOM-CHAR / resp-specials
//! tag          = 1*<any ASTRING-CHAR except "+">
//! list-char    = ATOM-CHAR / list-wildcards / resp-specials
//! ```

/// `ATOM-CHAR` (RFC 9051 §9): any CHAR except atom-specials
/// `( ) { SP CTL % * " \ ]`.
pub(crate) fn is_atom_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR` (ATOM-CHAR / `]`), plus 8-bit bytes (UTF-8 names).
pub(crate) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']' || b >= 0x80
}

/// `list-char` (ATOM-CHAR / list-wildcards / resp-specials), plus 8-bit.
pub(crate) fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// `ASTRING-CHAR` except `+` (RFC 9051 §9), without the 8-bit leniency:
/// the bytes of a `tag`.
pub(crate) fn is_tag_char(b: u8) -> bool {
    b != b'+' && (is_atom_char(b) || b == b']')
}
