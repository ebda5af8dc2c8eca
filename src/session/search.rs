//! STUB: interface only; the mime helper replaces this file.
use std::sync::Arc;

use crate::proto::SearchKey;
use crate::store::MessageMeta;

/// One candidate message.
pub struct SearchTarget<'a> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    /// \Recent in this session.
    pub recent: bool,
}

/// What the keys are evaluated against besides the message itself.
pub struct SearchEnv<'a> {
    /// Number of messages (what `*` means in a sequence set).
    pub max_seq: u32,
    /// Highest UID (what `*` means in a UID set).
    pub max_uid: u32,
    /// UIDs of the SEARCHRES saved result (`$`), ascending.
    pub saved: &'a [u32],
    /// Now, seconds since the epoch (OLDER/YOUNGER).
    pub now: i64,
    /// The server's zone for INTERNALDATE date comparisons.
    pub zone: chrono::FixedOffset,
}

/// Decides one message. `load` fetches the raw message and is called only
/// when a key needs the header or body (cheap keys are tried first); it
/// returns `None` if the message vanished, which makes content keys false.
pub fn matches(
    _key: &SearchKey,
    _t: &SearchTarget<'_>,
    _env: &SearchEnv<'_>,
    _load: &mut dyn FnMut() -> Option<Arc<Vec<u8>>>,
) -> bool {
    unimplemented!()
}
