//! STUB: interface only; the proto helper replaces this file.
/// Hard limits applied before parsing (SPEC §3 `[limits]`).
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    /// Longest command line (without literals), bytes.
    pub max_line: usize,
    /// Largest single literal, bytes.
    pub max_literal: u64,
}

#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A complete command: its lines with the literals inline, ready for
    /// [`super::parse::parse_command`].
    Command(Vec<u8>),
    /// The client announced a synchronizing literal within the limit: send
    /// `+ ...` and keep feeding bytes.
    NeedContinuation { size: u64 },
    /// The command broke a limit. Its remaining bytes are discarded by the
    /// framer; the session answers `tag BAD`/`NO [TOOBIG]` with `text`.
    TooLarge { tag: Option<String>, text: String },
}

pub struct Framer {
    _limits: FrameLimits,
}

impl Framer {
    pub fn new(limits: FrameLimits) -> Self {
        Framer { _limits: limits }
    }
    pub fn push(&mut self, _bytes: &[u8]) {
        unimplemented!()
    }
    /// The next complete frame, or `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        unimplemented!()
    }
    /// One raw line without its CRLF (AUTHENTICATE responses, IDLE's
    /// `DONE`), bypassing command framing. `Some(Err(()))` if the line broke
    /// `max_line` (it is discarded).
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        unimplemented!()
    }
    /// Bytes received but not yet returned (STARTTLS must refuse pipelined
    /// plaintext after the command).
    pub fn buffered(&self) -> usize {
        unimplemented!()
    }
}
