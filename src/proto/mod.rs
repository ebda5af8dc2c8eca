//! The IMAP grammar: bytes in, typed values out, and back. No tokio, no
//! filesystem, no clocks.
//!
//! - [`frame`]: splits the byte stream into command lines with their
//!   literals under hard size caps, and tells the session when a
//!   synchronizing literal needs a `+` continuation.
//! - [`parse`]: one framed command -> [`command::Command`], with
//!   imap-codec for the commands it covers and our own parser for the
//!   extensions it lacks (its module doc lists which is which).
//! - [`encode`]: the small helpers responses are written with (strings,
//!   literals, flag lists, sequence sets, dates).
//! - [`sequence`]: sequence-set arithmetic.
pub mod command;
pub mod encode;
pub mod frame;
pub mod parse;
pub mod sequence;

pub use command::*;
