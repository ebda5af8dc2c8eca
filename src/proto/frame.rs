//! Command framing: splits the client's byte stream into complete commands
//! (each line plus its literals inline) under hard size caps, before any
//! parsing happens (STYLE.md habit 2).
//!
//! Owns: line splitting (CRLF, or a bare LF, which is normalised to CRLF in
//! the frame handed to the parser), literal announcements (`{n}`, `{n+}`
//! LITERAL+, `~{n}` / `~{n+}` literal8 from RFC 3516), the `max_line` and
//! `max_literal` caps, and the discarding of a command that broke a cap.
//! It must never buffer more than the caps allow, never interpret a command
//! beyond finding its tag, and never write to the client: it only tells the
//! session, with [`Frame::NeedContinuation`], that a `+` is due.
//!
//! # Why not imap-codec's `Fragmentizer`
//! The pinned imap-codec (2.0.0-alpha.10) `Fragmentizer` has one cap on the
//! whole message, not one per line and one per literal, and once the cap is
//! exceeded it still has to be fed the oversized message to skip it; it has
//! no way to count an oversized non-synchronizing literal down without
//! keeping it. The rules below need both, so the framer is our own (about
//! the size of an adapter around `Fragmentizer` would have been).
//!
//! # Rules when a cap is broken
//! - A synchronizing literal `{n}` with `n > max_literal`: [`Frame::TooLarge`]
//!   at once; the client gets no `+`, so it will not send the data; the line
//!   that announced it is dropped and framing restarts at the next line.
//! - A non-synchronizing literal `{n+}` too large: [`Frame::TooLarge`], then
//!   its `n` bytes are counted down without being kept, and the rest of that
//!   command (further lines and non-synchronizing literals) is discarded.
//! - A line longer than `max_line`: [`Frame::TooLarge`] as soon as that is
//!   known, then everything up to the next LF is dropped (and, if that line
//!   announced a non-synchronizing literal, the command continues to be
//!   discarded as above).
//!
//! # Literals the session takes out of band
//! With [`Framer::set_ask_above`] (after login), a literal that would take
//! the command's bytes in memory past that size is not copied into the
//! command: the framer stops before its first byte and returns
//! [`Frame::BigLiteral`], and the session decides, from the command so far
//! ([`Framer::head`]), what becomes of it:
//! - [`Framer::keep_literal`]: framed as usual, into the command (a small
//!   APPEND message);
//! - [`Framer::divert_literal`]: its bytes go to the session instead
//!   ([`Framer::take_diverted`] for those already buffered, then the session
//!   reads the rest from its stream itself and counts them with
//!   [`Framer::diverted_read`]), and the command carries only its
//!   announcement; [`Frame::Command`] lists where (`diverted`), so the parser
//!   can tell the literal was taken out. This is how APPEND spools a big
//!   message to disk without holding it (session::literal);
//! - [`Framer::refuse_literal`]: the command is dropped as if it broke a cap
//!   (no `+`; a non-synchronizing literal is counted down unkept).
//!
//! A diverted literal that cannot be taken after all (disk full) is given up
//! with [`Framer::abort_diverted`]: its remaining bytes and the rest of the
//! command are discarded unkept. The framer itself still does no I/O: it
//! only says where the bytes are.
//!
//! Invariant: `buf[pos..]` never holds more than `max_line + 1` bytes of an
//! unfinished line, and `cur` (the command being assembled) holds at most
//! `max_command` bytes; diverted literals count towards `max_command` too
//! (the cap is on what the client sends for one command, wherever it goes),
//! and while one is being diverted the framer buffers none of its bytes
//! beyond what the session pushed before the decision.

use std::mem;

use super::chars::is_tag_char;

/// Hard limits applied before parsing (SPEC §3 `[limits]`).
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    /// Longest command line (without literals), bytes.
    pub max_line: usize,
    /// Largest single literal, bytes.
    pub max_literal: u64,
}

/// What [`Framer::next_frame`] found in the stream.
/// The cap a [`Frame::TooLarge`] command broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Line,
    Literal,
    Command,
}

#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A complete command: its lines with the literals inline, ready for
    /// the parser (`proto::parse`); `diverted` lists, in order, the
    /// offsets in `bytes` right after the announcement of each literal that
    /// was diverted (its data is not in `bytes`; see
    /// `parse_command_diverted`).
    Command {
        bytes: Vec<u8>,
        diverted: Vec<usize>,
    },
    /// A literal of `size` bytes, announced at the end of [`Framer::head`],
    /// would take the command in memory past the size set with
    /// [`Framer::set_ask_above`]. Nothing more is framed until the session
    /// calls [`Framer::keep_literal`], [`Framer::divert_literal`] or
    /// [`Framer::refuse_literal`] (until then this frame is returned again);
    /// a `+` for a synchronizing literal is the session's to send once it
    /// keeps or diverts it.
    BigLiteral { size: u64, sync: bool },
    /// The client announced a synchronizing literal within the limit: send
    /// `+ ...` and keep feeding bytes.
    NeedContinuation { size: u64 },
    /// The command broke a limit. Its remaining bytes are discarded by the
    /// framer; the session answers `tag BAD`/`NO [TOOBIG]` with `text`.
    TooLarge {
        tag: Option<String>,
        text: String,
        /// Which cap was broken: the session answers a too-long line with
        /// `BAD` (malformed input) and a too-large literal or command with
        /// `NO [TOOBIG]` (a refusal, RFC 7889).
        limit: Limit,
    },
}

/// What the framer is doing with the next input bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Reading a line of a command.
    Line,
    /// Copying `remaining` literal bytes into the command.
    Literal { remaining: u64 },
    /// Dropping bytes up to the next LF (over-long line). When
    /// `Framer::discarding` is set the dropped line belonged to a command,
    /// and its tail is checked for a literal announcement.
    DropLine,
    /// Counting down an oversized (or abandoned) non-synchronizing literal.
    SkipLiteral { remaining: u64 },
    /// Discarding the lines of a command that already broke a cap.
    DiscardCommand,
    /// Waiting for the session to decide about a big literal
    /// ([`Frame::BigLiteral`]).
    Ask { size: u64, sync: bool },
    /// `remaining` bytes of a diverted literal are still to come; the
    /// session takes them ([`Framer::take_diverted`]).
    Divert { remaining: u64 },
}

/// A literal announcement at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Announce {
    size: u64,
    sync: bool,
}

/// Longest tail of a dropped line kept to spot a literal announcement
/// (`~{` + 20 digits + `+}` + CR fits).
const TAIL: usize = 32;

/// Splits a byte stream into [`Frame`]s. Feed with [`Framer::push`], drain
/// with [`Framer::next_frame`] (or [`Framer::next_line`] while the session
/// expects raw lines).
pub struct Framer {
    limits: FrameLimits,
    /// Cap on a whole command (lines plus literals), `None` = unbounded.
    max_command: Option<u64>,
    /// Received bytes; `buf[..pos]` are consumed.
    buf: Vec<u8>,
    pos: usize,
    /// The command assembled so far.
    cur: Vec<u8>,
    mode: Mode,
    /// Whether the line `DropLine` is dropping belongs to a command (its
    /// tail may announce a literal that must be skipped too) rather than
    /// being a raw line from [`Framer::next_line`].
    discarding: bool,
    /// Last bytes of a line being dropped, to find a literal announcement.
    tail: Vec<u8>,
    /// Literals that would take `cur` past this are put to the session
    /// ([`Frame::BigLiteral`]); `None`: all are kept.
    ask_above: Option<u64>,
    /// Offsets in `cur` of the literals of this command that were diverted.
    diverted: Vec<usize>,
    /// Their bytes, for `max_command`.
    diverted_bytes: u64,
}

impl Framer {
    /// A framer with the given caps and no cap on the whole command.
    pub fn new(limits: FrameLimits) -> Self {
        Framer {
            limits,
            max_command: None,
            buf: Vec::new(),
            pos: 0,
            cur: Vec::new(),
            mode: Mode::Line,
            discarding: false,
            tail: Vec::new(),
            ask_above: None,
            diverted: Vec::new(),
            diverted_bytes: 0,
        }
    }

    /// From the next literal on, one that would take the command's bytes
    /// in memory past `max` is put to the session ([`Frame::BigLiteral`])
    /// instead of being kept.
    pub fn set_ask_above(&mut self, max: u64) {
        self.ask_above = Some(max);
    }

    /// Caps a whole command (all its lines and literals together, e.g. a
    /// MULTIAPPEND). Without it only each line and each literal is capped.
    pub fn set_max_command(&mut self, max: u64) {
        self.max_command = Some(max);
    }

    /// Changes the line and literal caps from the next command on (the
    /// session raises them after login). The command being assembled keeps
    /// the caps it was checked against.
    pub fn set_limits(&mut self, limits: FrameLimits) {
        self.limits = limits;
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        // Reclaim the consumed prefix before growing, so a long-lived
        // connection does not keep every byte it ever received.
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos >= 4096) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned (STARTTLS must refuse pipelined
    /// plaintext after the command).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.cur.len()
    }

    /// Takes the bytes received but not yet framed, leaving the framer
    /// empty. Called between two commands, when a logged-in connection moves
    /// to a worker process: what the client pipelined after its login
    /// command goes with it.
    pub fn take_unread(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos);
        self.buf = Vec::new();
        self.pos = 0;
        rest
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// The next complete frame, or `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.mode {
                Mode::Line => {
                    if let Some(r) = self.frame_line() {
                        return r;
                    }
                }
                Mode::Literal { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.avail().len());
                    self.cur
                        .extend_from_slice(&self.buf[self.pos..self.pos + n]);
                    self.pos += n;
                    let remaining = remaining - n as u64;
                    if remaining > 0 {
                        self.mode = Mode::Literal { remaining };
                        return None;
                    }
                    self.mode = Mode::Line;
                }
                Mode::SkipLiteral { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.avail().len());
                    self.pos += n;
                    let remaining = remaining - n as u64;
                    if remaining > 0 {
                        self.mode = Mode::SkipLiteral { remaining };
                        return None;
                    }
                    self.mode = Mode::DiscardCommand;
                }
                Mode::DropLine => {
                    if !self.drop_line() {
                        return None;
                    }
                }
                // The session has not decided yet: ask again.
                Mode::Ask { size, sync } => return Some(Frame::BigLiteral { size, sync }),
                Mode::Divert { remaining: 0 } => self.mode = Mode::Line,
                // The session takes these bytes itself.
                Mode::Divert { .. } => return None,
                Mode::DiscardCommand => {
                    let Some(lf) = memchr::memchr(b'\n', self.avail()) else {
                        // Keep only what could still be the tail of the line.
                        if self.avail().len() > self.limits.max_line + 1 {
                            self.mode = Mode::DropLine;
                            self.discarding = true;
                            continue;
                        }
                        return None;
                    };
                    let line = strip_cr(&self.buf[self.pos..self.pos + lf]);
                    let ann = announcement(line);
                    self.pos += lf + 1;
                    match ann {
                        // A synchronizing literal will not be sent (no `+`):
                        // the command ends here.
                        Some(a) if !a.sync => self.mode = Mode::SkipLiteral { remaining: a.size },
                        _ => self.mode = Mode::Line,
                    }
                }
            }
        }
    }

    /// Drops bytes up to the next LF. Returns true once the LF was seen and
    /// the mode was advanced.
    fn drop_line(&mut self) -> bool {
        let avail = &self.buf[self.pos..];
        let (chunk, done) = match memchr::memchr(b'\n', avail) {
            Some(lf) => (&avail[..lf], true),
            None => (avail, false),
        };
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
        self.pos += chunk.len();
        if !done {
            return false;
        }
        self.pos += 1;
        let ann = if self.discarding {
            announcement(strip_cr(&self.tail))
        } else {
            None
        };
        self.tail.clear();
        self.mode = match ann {
            Some(a) if !a.sync => Mode::SkipLiteral { remaining: a.size },
            _ => Mode::Line,
        };
        true
    }

    /// In `Mode::Line`: reads one line of a command. `None` means "go on
    /// framing" (a loop rather than recursion, so a flood of empty lines or
    /// small literals cannot grow the stack).
    fn frame_line(&mut self) -> Option<Option<Frame>> {
        let max_line = self.limits.max_line;
        let Some(lf) = memchr::memchr(b'\n', self.avail()) else {
            // Without an LF the line may still end with CR; anything longer
            // than `max_line + 1` can no longer fit.
            if self.avail().len() > max_line + 1 {
                let tag = self.tag();
                self.abandon();
                self.mode = Mode::DropLine;
                self.discarding = true;
                return Some(Some(too_long(tag)));
            }
            return Some(None);
        };
        let line = strip_cr(&self.buf[self.pos..self.pos + lf]);
        if line.len() > max_line {
            let tag = self.tag();
            // The tail of an over-long line can still announce a literal
            // whose bytes will follow; let DropLine look at it.
            self.abandon();
            self.mode = Mode::DropLine;
            self.discarding = true;
            return Some(Some(too_long(tag)));
        }
        if line.is_empty() && self.cur.is_empty() {
            // Stray empty lines between commands are ignored, as most
            // servers do; they carry no tag to answer.
            self.pos += lf + 1;
            return None;
        }
        let ann = announcement(line);
        let line_len = line.len();
        if let Some(a) = ann {
            let literal_too_big = a.size > self.limits.max_literal;
            if literal_too_big || self.over_command_cap(line_len as u64 + 2 + a.size) {
                let tag = self.tag_with_line(&self.buf[self.pos..self.pos + line_len]);
                self.pos += lf + 1;
                self.abandon();
                self.mode = if a.sync {
                    // No `+` goes out, so the client sends nothing more of
                    // this command.
                    Mode::Line
                } else {
                    Mode::SkipLiteral { remaining: a.size }
                };
                let (text, limit) = if literal_too_big {
                    (
                        format!(
                            "Literal of {} bytes exceeds the limit of {} bytes",
                            a.size, self.limits.max_literal
                        ),
                        Limit::Literal,
                    )
                } else {
                    ("Command too large".into(), Limit::Command)
                };
                return Some(Some(Frame::TooLarge { tag, text, limit }));
            }
        } else if self.over_command_cap(line_len as u64 + 2) {
            let tag = self.tag_with_line(&self.buf[self.pos..self.pos + line_len]);
            self.pos += lf + 1;
            self.abandon();
            return Some(Some(Frame::TooLarge {
                tag,
                text: "Command too large".into(),
                limit: Limit::Command,
            }));
        }
        self.cur
            .extend_from_slice(&self.buf[self.pos..self.pos + line_len]);
        self.cur.extend_from_slice(b"\r\n");
        self.pos += lf + 1;
        match ann {
            Some(a) => {
                if self
                    .ask_above
                    .is_some_and(|max| self.cur.len() as u64 + a.size > max)
                {
                    self.mode = Mode::Ask {
                        size: a.size,
                        sync: a.sync,
                    };
                    return Some(Some(Frame::BigLiteral {
                        size: a.size,
                        sync: a.sync,
                    }));
                }
                self.mode = Mode::Literal { remaining: a.size };
                if a.sync {
                    return Some(Some(Frame::NeedContinuation { size: a.size }));
                }
                None
            }
            None => {
                self.diverted_bytes = 0;
                Some(Some(Frame::Command {
                    bytes: mem::take(&mut self.cur),
                    diverted: mem::take(&mut self.diverted),
                }))
            }
        }
    }

    /// Whether adding `more` bytes (a line with its CRLF, plus any literal
    /// it announces) to the command would break `max_command`.
    fn over_command_cap(&self, more: u64) -> bool {
        self.max_command
            .is_some_and(|m| self.cur.len() as u64 + self.diverted_bytes + more > m)
    }

    /// Forgets the command being assembled.
    fn abandon(&mut self) {
        self.cur = Vec::new();
        self.diverted = Vec::new();
        self.diverted_bytes = 0;
    }

    /// The command assembled so far; after [`Frame::BigLiteral`], up to
    /// and including the line that announced the literal.
    pub fn head(&self) -> &[u8] {
        &self.cur
    }

    /// After [`Frame::BigLiteral`]: frame the literal into the command as
    /// usual.
    pub fn keep_literal(&mut self) {
        if let Mode::Ask { size, .. } = self.mode {
            self.mode = Mode::Literal { remaining: size };
        }
    }

    /// After [`Frame::BigLiteral`]: the session takes the literal's bytes
    /// ([`Framer::take_diverted`], [`Framer::diverted_read`]); the command
    /// goes on after them.
    pub fn divert_literal(&mut self) {
        if let Mode::Ask { size, .. } = self.mode {
            self.diverted.push(self.cur.len());
            self.diverted_bytes += size;
            self.mode = Mode::Divert { remaining: size };
        }
    }

    /// After [`Frame::BigLiteral`]: drop the command (the session answers
    /// it with the returned tag, if it had one). A non-synchronizing
    /// literal's bytes are counted down unkept.
    pub fn refuse_literal(&mut self) -> Option<String> {
        let Mode::Ask { size, sync } = self.mode else {
            return None;
        };
        let tag = tag_of(&self.cur);
        self.abandon();
        self.mode = if sync {
            Mode::Line
        } else {
            Mode::SkipLiteral { remaining: size }
        };
        tag
    }

    /// Bytes of the diverted literal still to come, `None` when no literal
    /// is being diverted.
    pub fn diverting(&self) -> Option<u64> {
        match self.mode {
            Mode::Divert { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// Up to `max` bytes of the diverted literal already received (never
    /// past its end), taken out of the framer.
    pub fn take_diverted(&mut self, max: usize) -> &[u8] {
        let Mode::Divert { remaining } = self.mode else {
            return &[];
        };
        let n = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(self.avail().len())
            .min(max);
        let start = self.pos;
        self.pos += n;
        self.mode = Mode::Divert {
            remaining: remaining - n as u64,
        };
        &self.buf[start..start + n]
    }

    /// Counts `n` bytes of the diverted literal that the session read from
    /// its stream itself (never more than [`Framer::diverting`] said).
    pub fn diverted_read(&mut self, n: u64) {
        if let Mode::Divert { remaining } = self.mode {
            self.mode = Mode::Divert {
                remaining: remaining.saturating_sub(n),
            };
        }
    }

    /// Gives up the literal being diverted and its command: what remains
    /// of the literal, and the rest of the command, is discarded unkept.
    /// Returns the command's tag.
    pub fn abort_diverted(&mut self) -> Option<String> {
        let Mode::Divert { remaining } = self.mode else {
            return None;
        };
        let tag = tag_of(&self.cur);
        self.abandon();
        self.mode = Mode::SkipLiteral { remaining };
        tag
    }

    /// The tag of the command being assembled (or of the line at `pos`).
    fn tag(&self) -> Option<String> {
        let avail = self.avail();
        self.tag_with_line(avail)
    }

    fn tag_with_line(&self, line: &[u8]) -> Option<String> {
        if self.cur.is_empty() {
            // Only a tag within the first `max_line` bytes counts, so the
            // answer does not depend on how much of a long line has arrived.
            tag_of(&line[..line.len().min(self.limits.max_line)])
        } else {
            tag_of(&self.cur)
        }
    }

    /// One raw line without its CRLF (AUTHENTICATE responses, IDLE's
    /// `DONE`), bypassing command framing. `Some(Err(()))` if the line broke
    /// `max_line` (it is discarded).
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        if self.mode == Mode::DropLine {
            if !self.drop_line() {
                return None;
            }
            // A raw line announces no literal.
            self.mode = Mode::Line;
        }
        let max_line = self.limits.max_line;
        let Some(lf) = memchr::memchr(b'\n', self.avail()) else {
            if self.avail().len() > max_line + 1 {
                self.mode = Mode::DropLine;
                self.discarding = false;
                return Some(Err(()));
            }
            return None;
        };
        let line = strip_cr(&self.buf[self.pos..self.pos + lf]);
        let out = (line.len() <= max_line).then(|| line.to_vec());
        self.pos += lf + 1;
        Some(out.ok_or(()))
    }
}

fn too_long(tag: Option<String>) -> Frame {
    Frame::TooLarge {
        tag,
        text: "Command line too long".into(),
        limit: Limit::Line,
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The tag at the start of `line`, if it is a valid `tag` (RFC 9051 §9:
/// `1*<any ASTRING-CHAR except "+">`) followed by a space.
pub(crate) fn tag_of(line: &[u8]) -> Option<String> {
    let end = line.iter().position(|&b| b == b' ')?;
    let tag = &line[..end];
    if tag.is_empty() || !tag.iter().all(|&b| is_tag_char(b)) {
        return None;
    }
    // All tag chars are ASCII.
    Some(String::from_utf8_lossy(tag).into_owned())
}

/// A literal announcement ending `line` (without its CRLF):
/// `["~"] "{" number64 ["+"] "}"`. A size too big for `u64` is reported as
/// `u64::MAX` so that it is refused as too large rather than misparsed.
fn announcement(line: &[u8]) -> Option<Announce> {
    let body = line.strip_suffix(b"}")?;
    let (body, sync) = match body.strip_suffix(b"+") {
        Some(b) => (b, false),
        None => (body, true),
    };
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(Announce {
        size: size.unwrap_or(u64::MAX),
        sync,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: FrameLimits = FrameLimits {
        max_line: 40,
        max_literal: 10,
    };

    fn cmd(s: &str) -> Frame {
        Frame::Command {
            bytes: s.as_bytes().to_vec(),
            diverted: Vec::new(),
        }
    }

    fn big(tag: &str, text: &str) -> Frame {
        let limit = if text.starts_with("Literal") {
            Limit::Literal
        } else if text == "Command line too long" {
            Limit::Line
        } else {
            Limit::Command
        };
        Frame::TooLarge {
            tag: Some(tag.into()),
            text: text.into(),
            limit,
        }
    }

    /// Feeds `input` in one go and collects every frame.
    fn frames(input: &[u8]) -> Vec<Frame> {
        let mut f = Framer::new(LIMITS);
        f.push(input);
        std::iter::from_fn(|| f.next_frame()).collect()
    }

    /// Feeds `input` one byte at a time, collecting frames as they appear.
    fn frames_bytewise(input: &[u8]) -> Vec<Frame> {
        let mut f = Framer::new(LIMITS);
        let mut out = Vec::new();
        for b in input {
            f.push(std::slice::from_ref(b));
            while let Some(fr) = f.next_frame() {
                out.push(fr);
            }
        }
        out
    }

    fn lit_big(tag: &str, n: u64) -> Frame {
        big(
            tag,
            &format!("Literal of {n} bytes exceeds the limit of 10 bytes"),
        )
    }

    #[test]
    fn table() {
        let cases: Vec<(&[u8], Vec<Frame>)> = vec![
            (b"a NOOP\r\n", vec![cmd("a NOOP\r\n")]),
            (b"a NOOP\n", vec![cmd("a NOOP\r\n")]),
            (
                b"a NOOP\r\nb CHECK\n",
                vec![cmd("a NOOP\r\n"), cmd("b CHECK\r\n")],
            ),
            (b"\r\n\na NOOP\r\n", vec![cmd("a NOOP\r\n")]),
            (
                b"a LOGIN {3}\r\nbob {2}\r\npw\r\n",
                vec![
                    Frame::NeedContinuation { size: 3 },
                    Frame::NeedContinuation { size: 2 },
                    cmd("a LOGIN {3}\r\nbob {2}\r\npw\r\n"),
                ],
            ),
            (
                b"a LOGIN {3+}\r\nbob {2+}\npw\r\n",
                vec![cmd("a LOGIN {3+}\r\nbob {2+}\r\npw\r\n")],
            ),
            // The literal's own bytes are kept verbatim, bare LF included.
            (
                b"a APPEND x ~{4+}\r\n\0\n\r\n\r\n",
                vec![cmd("a APPEND x ~{4+}\r\n\0\n\r\n\r\n")],
            ),
            (
                b"a APPEND x ~{2}\r\nhi\r\n",
                vec![
                    Frame::NeedContinuation { size: 2 },
                    cmd("a APPEND x ~{2}\r\nhi\r\n"),
                ],
            ),
            (
                b"a APPEND x {0}\r\n\r\n",
                vec![
                    Frame::NeedContinuation { size: 0 },
                    cmd("a APPEND x {0}\r\n\r\n"),
                ],
            ),
            // Sync literal too large: refused, no continuation; the next
            // line is a new command.
            (
                b"a APPEND x {11}\r\nb NOOP\r\n",
                vec![lit_big("a", 11), cmd("b NOOP\r\n")],
            ),
            // Non-sync literal too large: its bytes and the rest of the
            // command are skipped.
            (
                b"a APPEND x {11+}\r\n0123456789A rest\r\nb NOOP\r\n",
                vec![lit_big("a", 11), cmd("b NOOP\r\n")],
            ),
            // ... including further non-sync literals of that command.
            (
                b"a APPEND x {11+}\r\n0123456789A {3+}\r\nxyz more\r\nb NOOP\r\n",
                vec![lit_big("a", 11), cmd("b NOOP\r\n")],
            ),
            // A second literal too large after a good one.
            (
                b"a APPEND x {1+}\r\nM {99}\r\nb NOOP\r\n",
                vec![lit_big("a", 99), cmd("b NOOP\r\n")],
            ),
            (
                b"a APPEND x {99999999999999999999999}\r\nb NOOP\r\n",
                vec![lit_big("a", u64::MAX), cmd("b NOOP\r\n")],
            ),
            // Over-long line.
            (
                b"t1 NOOP 0123456789012345678901234567890123456789\r\nb NOOP\r\n",
                vec![big("t1", "Command line too long"), cmd("b NOOP\r\n")],
            ),
            // Over-long line announcing a non-sync literal: skip it too.
            (
                b"t1 APPEND 0123456789012345678901234567890123456789 {3+}\r\nabc\r\nb NOOP\r\n",
                vec![big("t1", "Command line too long"), cmd("b NOOP\r\n")],
            ),
            // Exactly max_line is fine (40 bytes).
            (
                b"a NOOP 45678901234567890123456789012345\r\n",
                vec![cmd("a NOOP 45678901234567890123456789012345\r\n")],
            ),
            // Over-long line without a valid tag.
            (
                b"(((((((((((((((((((((((((((((((((((((((((((\r\n",
                vec![Frame::TooLarge {
                    tag: None,
                    text: "Command line too long".into(),
                    limit: Limit::Line,
                }],
            ),
            // A "tag" ending past `max_line` is no tag (the answer must not
            // depend on how much of the line had arrived).
            (
                b"0123456789012345678901234567890123456789a NOOP\r\nb NOOP\r\n",
                vec![
                    Frame::TooLarge {
                        tag: None,
                        text: "Command line too long".into(),
                        limit: Limit::Line,
                    },
                    cmd("b NOOP\r\n"),
                ],
            ),
            // `{` inside a line is not an announcement.
            (b"a X {3} y\r\n", vec![cmd("a X {3} y\r\n")]),
            (b"a X {}\r\n", vec![cmd("a X {}\r\n")]),
            (b"a X {+}\r\n", vec![cmd("a X {+}\r\n")]),
        ];
        for (input, want) in cases {
            assert_eq!(
                frames(input),
                want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(
                frames_bytewise(input),
                want,
                "bytewise {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn every_incomplete_prefix_yields_only_a_prefix_of_the_frames() {
        let samples: &[&[u8]] = &[
            b"a LOGIN {3}\r\nbob {2}\r\npw\r\n",
            b"a APPEND x (\\Seen) {5+}\r\nhello ~{2+}\r\nhi\r\n",
            b"a APPEND x {11+}\r\n0123456789A rest\r\nb NOOP\r\n",
            b"t1 NOOP 0123456789012345678901234567890123456789\r\nb NOOP\r\n",
        ];
        for input in samples {
            let full = frames(input);
            for cut in 0..input.len() {
                let part = frames(&input[..cut]);
                assert!(part.len() <= full.len(), "cut {cut}");
                assert_eq!(part[..], full[..part.len()], "cut {cut} of {input:?}");
                // Feeding the rest completes the same sequence.
                let mut f = Framer::new(LIMITS);
                f.push(&input[..cut]);
                let mut got: Vec<Frame> = std::iter::from_fn(|| f.next_frame()).collect();
                f.push(&input[cut..]);
                got.extend(std::iter::from_fn(|| f.next_frame()));
                assert_eq!(got, full, "split at {cut}");
            }
        }
    }

    /// CATENATE (RFC 4469) puts several literals in one APPEND message,
    /// inside a list: each synchronizing one gets its own `+`, a LITERAL+
    /// one none, and one over the limit is refused before its bytes (no
    /// `+`), also after good ones; every prefix frames the same.
    #[test]
    fn catenate_literals() {
        let cont = |size| Frame::NeedContinuation { size };
        let cases: Vec<(&[u8], Vec<Frame>)> = vec![
            (
                b"a APPEND x CATENATE (TEXT {3}\r\nabc URL /a/;UID=1 TEXT {2+}\r\nhi TEXT {4}\r\nabcd)\r\nb NOOP\r\n",
                vec![
                    cont(3),
                    cont(4),
                    cmd("a APPEND x CATENATE (TEXT {3}\r\nabc URL /a/;UID=1 TEXT {2+}\r\nhi TEXT {4}\r\nabcd)\r\n"),
                    cmd("b NOOP\r\n"),
                ],
            ),
            (
                b"a APPEND x CATENATE (TEXT {3}\r\nabc TEXT {11}\r\nb NOOP\r\n",
                vec![cont(3), lit_big("a", 11), cmd("b NOOP\r\n")],
            ),
            (
                b"a APPEND x CATENATE (TEXT {1+}\r\nx TEXT {11+}\r\n0123456789A TEXT {2}\r\nb NOOP\r\n",
                vec![lit_big("a", 11), cmd("b NOOP\r\n")],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(frames(input), want, "{}", String::from_utf8_lossy(input));
            assert_eq!(frames_bytewise(input), want, "bytewise");
            for cut in 0..input.len() {
                let part = frames(&input[..cut]);
                assert_eq!(part[..], want[..part.len()], "cut {cut}");
            }
        }
    }

    #[test]
    fn skipped_literal_is_not_buffered() {
        let mut f = Framer::new(LIMITS);
        f.push(b"a APPEND x {1000000+}\r\n");
        assert_eq!(f.next_frame(), Some(lit_big("a", 1_000_000)));
        for _ in 0..200 {
            f.push(&[b'x'; 5000]);
            assert_eq!(f.next_frame(), None);
            assert_eq!(f.buffered(), 0);
        }
        f.push(b"\r\nb NOOP\r\n");
        assert_eq!(f.next_frame(), Some(cmd("b NOOP\r\n")));
    }

    #[test]
    fn long_line_is_not_buffered() {
        let mut f = Framer::new(LIMITS);
        f.push(b"a ");
        assert_eq!(f.next_frame(), None);
        f.push(&[b'x'; 100]);
        assert_eq!(f.next_frame(), Some(big("a", "Command line too long")));
        for _ in 0..10 {
            f.push(&[b'x'; 100]);
            assert_eq!(f.next_frame(), None);
            assert_eq!(f.buffered(), 0);
        }
        f.push(b"\nb NOOP\r\n");
        assert_eq!(f.next_frame(), Some(cmd("b NOOP\r\n")));
    }

    #[test]
    fn command_cap() {
        let mut f = Framer::new(LIMITS);
        f.set_max_command(30);
        f.push(b"a APPEND x {9+}\r\n123456789 {9+}\r\n123456789\r\nb NOOP\r\n");
        assert_eq!(f.next_frame(), Some(big("a", "Command too large")));
        assert_eq!(f.next_frame(), Some(cmd("b NOOP\r\n")));
    }

    #[test]
    fn big_literals_are_put_to_the_session() {
        let mut f = Framer::new(FrameLimits {
            max_line: 40,
            max_literal: 1000,
        });
        f.set_max_command(150);
        f.set_ask_above(20);
        let ask = |size, sync| Some(Frame::BigLiteral { size, sync });
        // Small enough: kept without asking.
        f.push(b"a X {3}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::NeedContinuation { size: 3 }));
        f.push(b"abc\r\n");
        assert_eq!(f.next_frame(), Some(cmd("a X {3}\r\nabc\r\n")));
        // Kept after asking; asked again until answered.
        f.push(b"a APPEND x {30}\r\n");
        assert_eq!(f.next_frame(), ask(30, true));
        assert_eq!(f.next_frame(), ask(30, true));
        assert_eq!(f.head(), b"a APPEND x {30}\r\n");
        f.keep_literal();
        f.push(&[b'k'; 30]);
        f.push(b"\r\n");
        let kept = format!("a APPEND x {{30}}\r\n{}\r\n", "k".repeat(30));
        assert_eq!(f.next_frame(), Some(cmd(&kept)));
        // Diverted: the bytes that came with the line, then those the
        // session reads itself; the command goes on after them.
        f.push(b"b APPEND x {100+}\r\n0123456789");
        assert_eq!(f.next_frame(), ask(100, false));
        f.divert_literal();
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.take_diverted(4), b"0123");
        assert_eq!(f.take_diverted(100), b"456789");
        assert_eq!(f.take_diverted(100), b"");
        assert_eq!(f.diverting(), Some(90));
        f.diverted_read(90);
        assert_eq!(f.diverting(), Some(0));
        f.push(b" {2}\r\nhi\r\n");
        assert_eq!(f.next_frame(), ask(2, true));
        f.keep_literal();
        assert_eq!(
            f.next_frame(),
            Some(Frame::Command {
                bytes: b"b APPEND x {100+}\r\n {2}\r\nhi\r\n".to_vec(),
                diverted: vec![19],
            })
        );
        assert_eq!(f.diverting(), None);
        // Refused: a synchronizing literal is not sent, a
        // non-synchronizing one is counted down unkept.
        f.push(b"c SEARCH TEXT {50}\r\nd NOOP\r\n");
        assert_eq!(f.next_frame(), ask(50, true));
        assert_eq!(f.refuse_literal(), Some("c".into()));
        assert_eq!(f.next_frame(), Some(cmd("d NOOP\r\n")));
        f.push(b"e SEARCH TEXT {50+}\r\n");
        assert_eq!(f.next_frame(), ask(50, false));
        assert_eq!(f.refuse_literal(), Some("e".into()));
        f.push(&[b'x'; 50]);
        f.push(b"\r\nf NOOP\r\n");
        assert_eq!(f.next_frame(), Some(cmd("f NOOP\r\n")));
        // Given up part-way: the rest of the literal and of the command
        // (further literals included) is discarded unkept.
        f.push(b"g APPEND x {60+}\r\n0123456789");
        assert_eq!(f.next_frame(), ask(60, false));
        f.divert_literal();
        assert_eq!(f.take_diverted(100).len(), 10);
        assert_eq!(f.abort_diverted(), Some("g".into()));
        f.push(&[b'x'; 50]);
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.buffered(), 0);
        f.push(b" {3+}\r\nabc\r\nh NOOP\r\n");
        assert_eq!(f.next_frame(), Some(cmd("h NOOP\r\n")));
        // Diverted bytes count towards the whole-command cap.
        f.push(b"i APPEND x {100+}\r\n");
        assert_eq!(f.next_frame(), ask(100, false));
        f.divert_literal();
        f.diverted_read(100);
        f.push(b" {40+}\r\n");
        assert_eq!(f.next_frame(), Some(big("i", "Command too large")));
        f.push(&[b'x'; 40]);
        f.push(b"\r\nj NOOP\r\n");
        assert_eq!(f.next_frame(), Some(cmd("j NOOP\r\n")));
    }

    #[test]
    fn raw_lines_and_buffered() {
        let mut f = Framer::new(LIMITS);
        f.push(b"a IDLE\r\nDONE\r\nb NOOP\r\n");
        assert_eq!(f.next_frame(), Some(cmd("a IDLE\r\n")));
        assert_eq!(f.buffered(), 14);
        assert_eq!(f.next_line(), Some(Ok(b"DONE".to_vec())));
        assert_eq!(f.next_line(), Some(Ok(b"b NOOP".to_vec())));
        assert_eq!(f.next_line(), None);
        assert_eq!(f.buffered(), 0);

        f.push(b"dGVzdA==");
        assert_eq!(f.next_line(), None);
        f.push(b"\n");
        assert_eq!(f.next_line(), Some(Ok(b"dGVzdA==".to_vec())));

        // Over-long raw line: one error, then the line is dropped.
        f.push(&[b'A'; 50]);
        assert_eq!(f.next_line(), Some(Err(())));
        f.push(&[b'A'; 50]);
        assert_eq!(f.next_line(), None);
        f.push(b"\r\n*\r\n");
        assert_eq!(f.next_line(), Some(Ok(b"*".to_vec())));
        // Over-long but complete raw line.
        f.push(&[b'A'; 45]);
        f.push(b"\r\nok\r\n");
        assert_eq!(f.next_line(), Some(Err(())));
        assert_eq!(f.next_line(), Some(Ok(b"ok".to_vec())));
    }

    /// Input built from pieces that exercise every mode.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            &b"a NOOP\r\n"[..],
            b"b APPEND x {3}\r\n",
            b"c APPEND x {3+}\r\n",
            b"d APPEND x ~{12+}\r\n",
            b"e APPEND x {99+}\r\n",
            b"f APPEND x {99}\r\n",
            b"g APPEND x {4+}\r\n",
            b"h APPEND x {10}\r\n",
            b"abc",
            b"\r\n",
            b"\n",
            b"\r",
            b"0123456789012345678901234567890123456789",
            b"{2+}\r\n",
            b"{",
            b"}",
            b" ",
        ]);
        prop::collection::vec(piece, 0..30).prop_map(|v| v.concat())
    }

    proptest! {
        /// Framing does not depend on how the stream is cut into reads,
        /// and what is held never exceeds the caps.
        #[test]
        fn chunking_does_not_matter(input in soup(), cuts in prop::collection::vec(1usize..20, 0..40)) {
            let mut whole = Framer::new(LIMITS);
            whole.set_max_command(64);
            whole.push(&input);
            let want: Vec<Frame> = std::iter::from_fn(|| whole.next_frame()).collect();

            let mut f = Framer::new(LIMITS);
            f.set_max_command(64);
            let mut got = Vec::new();
            let mut rest = &input[..];
            for n in cuts.iter().copied().chain(std::iter::repeat(7)) {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at(n.min(rest.len()));
                rest = later;
                f.push(now);
                got.extend(std::iter::from_fn(|| f.next_frame()));
                prop_assert!(f.buffered() <= 64 + LIMITS.max_line + 1, "holds {}", f.buffered());
            }
            prop_assert_eq!(got, want);
        }
    }

    /// What a session sees from a framer that asks above 8 bytes: frames,
    /// and the bytes of diverted literals (merged). It keeps, diverts or
    /// refuses a big literal by its size, as a session decides by command.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Frame(Frame),
        Diverted(Vec<u8>),
    }

    fn drain_asking(f: &mut Framer, seen: &mut Vec<Seen>) {
        loop {
            if f.diverting().is_some_and(|r| r > 0) {
                let bytes = f.take_diverted(usize::MAX).to_vec();
                if bytes.is_empty() {
                    return;
                }
                match seen.last_mut() {
                    Some(Seen::Diverted(d)) => d.extend_from_slice(&bytes),
                    _ => seen.push(Seen::Diverted(bytes)),
                }
                continue;
            }
            let Some(fr) = f.next_frame() else { return };
            if let Frame::BigLiteral { size, .. } = fr {
                match size % 3 {
                    0 => f.keep_literal(),
                    1 => f.divert_literal(),
                    _ => {
                        f.refuse_literal();
                    }
                }
            }
            seen.push(Seen::Frame(fr));
        }
    }

    proptest! {
        /// With big literals put to the session, framing still does not
        /// depend on how the stream is cut, and a diverted literal's bytes
        /// are never buffered beyond one read.
        #[test]
        fn asking_does_not_depend_on_chunking(input in soup(), cuts in prop::collection::vec(1usize..20, 0..40)) {
            let framer = || {
                let mut f = Framer::new(FrameLimits { max_line: 40, max_literal: 100 });
                f.set_max_command(64);
                f.set_ask_above(8);
                f
            };
            let mut whole = framer();
            whole.push(&input);
            let mut want = Vec::new();
            drain_asking(&mut whole, &mut want);

            let mut f = framer();
            let mut got = Vec::new();
            let mut rest = &input[..];
            for n in cuts.iter().copied().chain(std::iter::repeat(7)) {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at(n.min(rest.len()));
                rest = later;
                f.push(now);
                drain_asking(&mut f, &mut got);
                prop_assert!(f.buffered() <= 64 + 40 + 1, "holds {}", f.buffered());
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of(b"a1 NOOP"), Some("a1".into()));
        assert_eq!(tag_of(b"a+ NOOP"), None);
        assert_eq!(tag_of(b" NOOP"), None);
        assert_eq!(tag_of(b"NOOP"), None);
        assert_eq!(tag_of(b"a* NOOP"), None);
        assert_eq!(tag_of(b"a] NOOP"), Some("a]".into()));
    }
}
