//! The IMAP grammar: bytes in, typed values out, and back. No tokio, no
//! filesystem, no clocks.
//!
//! - `chars`: the character classes of RFC 9051 §9 (atom, astring, tag,
//!   list chars), a leaf that the framer, the parser and the encoder
//!   share, so that neither of the first two imports the other.
//! - [`frame`]: splits the byte stream into command lines with their
//!   literals under hard size caps, and tells the session when a
//!   synchronizing literal needs a `+` continuation.
//! - [`parse`]: one framed command -> [`command::Command`]: one grammar,
//!   our own parser, checked against imap-codec as an oracle (its module
//!   doc says why).
//! - `fuzzing`: the fuzz targets' bodies, also run by `cargo test`.
//! - [`imapurl`]: IMAP URLs (RFC 5092) naming a message or part, for
//!   CATENATE.
//! - [`response`]: status responses and response codes as types, and
//!   their one encoder.
//! - [`encode`]: the small helpers responses are written with (strings,
//!   literals, flag lists, sequence sets, dates).
//! - [`sequence`]: sequence-set arithmetic.
//! - [`esearch`]: ESEARCH responses (ESEARCH, ESORT, CONTEXT) and their
//!   encoder.
pub(crate) mod chars;
pub mod command;
pub mod data;
pub mod encode;
pub mod esearch;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod imapurl;
pub mod parse;
pub mod response;
pub mod sequence;

pub use command::*;
