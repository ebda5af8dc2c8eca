//! COMPRESS (RFC 4978 §3): turns on DEFLATE both ways once the tagged OK
//! has gone out. The stream layer itself is `session::compress`'s; this
//! only decides the answer.

use crate::proto::response::Code;
use crate::session::{CmdResult, Session, Status};

/// `COMPRESS mechanism`, in the authenticated or selected state (the
/// grammar puts it in `command-auth`, RFC 4978 §5; the session has checked).
pub fn compress(s: &mut Session, mechanism: &str) -> CmdResult {
    // `algorithm = "DEFLATE"` is the whole grammar: anything else is
    // "invalid or unknown argument", BAD (RFC 4978 §3).
    if mechanism != "DEFLATE" {
        let shown: String = mechanism.chars().take(32).collect();
        return Err(Status::bad(format!(
            "Unknown compression mechanism {shown}; only DEFLATE is supported."
        )));
    }
    // RFC 4978 §3: NO with COMPRESSIONACTIVE, saying which layer compresses.
    // TLS never compresses here (rustls has no TLS compression).
    if s.compressing() {
        return Err(Status::no(
            Some(Code::CompressionActive),
            "DEFLATE active via COMPRESS.",
        ));
    }
    s.pending_compress = true;
    Ok(Status::ok("DEFLATE active."))
}
