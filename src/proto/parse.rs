//! STUB: interface only; the proto helper replaces this file.
use super::command::Command;

#[derive(Debug, PartialEq)]
pub enum ParseError {
    /// The client's mistake: answer `tag BAD text` (`* BAD` without a tag).
    Bad { tag: Option<String>, text: String },
    /// SEARCH with a charset we cannot decode: answer
    /// `tag NO [BADCHARSET (UTF-8 US-ASCII)] ...`.
    BadCharset { tag: String },
}

pub fn parse_command(_bytes: &[u8]) -> Result<Command, ParseError> {
    unimplemented!()
}
