//! The IMAP grammar: bytes in, typed values out, and back. No tokio, no
//! filesystem, no clocks.
//!
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
pub mod command;
pub mod data;
pub mod encode;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod imapurl;
pub mod parse;
pub mod response;
pub mod sequence;

pub use command::*;
