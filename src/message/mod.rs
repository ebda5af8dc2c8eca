//! One stored message as bytes: its MIME part tree (`tree`: where each
//! part's header and body lie), which bytes are text and which are data
//! kept as stored (`kept`: the bodies of non-text binary parts), and the
//! form IMAP serves it in, with every bare LF of the text as CRLF
//! (`crlf`), and the size of that form ([`crlf_size`], RFC822.SIZE).
//! Pure: bytes in, offsets and counts out; no IMAP syntax, no I/O.
//!
//! # Why a leaf of its own
//! The store must write a message's RFC822.SIZE into its file name
//! (`,W=`) and count it for messages whose names lack it, and FETCH must
//! report the same number for every message. So the size is one function,
//! [`crlf_size`], which both call. It cannot be a line-end count alone:
//! a non-text part with `Content-Transfer-Encoding: binary` is served and
//! counted as stored (RFC 2045 §2.9, RFC 3516 §4.3; `kept` says why), so
//! the size needs the part tree whenever a message with bare LFs may have
//! a binary part. The tree therefore lives here, below both of its users:
//! the store (`store::maildir`), which must not reach the renderer or the
//! IMAP grammar, and `mime`, which renders FETCH, SEARCH and SORT content
//! from the same tree. Handing the store a size function instead
//! (injection) would allow two functions where the sizes must be one.
//!
//! Must never: import `proto`, `mime`, `store` or `session`; panic or
//! loop on any input (every range is checked, nesting and part counts are
//! capped, see `tree`).
pub(crate) mod crlf;
pub(crate) mod kept;
pub(crate) mod tree;

pub use kept::{crlf_size, may_have_binary, to_crlf};
