//! POP3 replies as bytes: status lines with RFC 2449 response codes, and
//! the body of a multi-line reply (RFC 1939 §3): a message's lines with
//! every line that starts with `.` given one more `.` ("dot-stuffing"),
//! closed by `.` on a line of its own. Pure: bytes in, bytes out.
//!
//! [`Stuffer`] turns a message as stored into what RETR and TOP send, in
//! pieces of any size: each bare LF becomes CRLF (the same rule as
//! `crate::message::crlf`, so the bytes before stuffing are exactly the
//! RFC822.SIZE that LIST and STAT announce), lines starting with `.` are
//! stuffed, and [`Stuffer::finish`] ends a last line that lacks a line
//! break before the terminating `.` (RFC 1939 §3 needs the terminator on a
//! line of its own; the added CRLF belongs to the terminator, as in
//! Dovecot, and is not counted in the size).
//!
//! A message with a part whose `Content-Transfer-Encoding` is `binary` is
//! counted with that part's bytes as stored (`message::kept`); the session
//! converts such a message whole with `message::to_crlf` and passes it
//! through [`Stuffer::raw`], which stuffs without converting.

use memchr::memchr;

/// RFC 2449 §8 and RFC 3206 response codes nestbox sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespCode {
    /// The credentials were refused (RFC 3206 `AUTH`).
    Auth,
    /// A temporary problem on our side (RFC 3206 `SYS/TEMP`).
    SysTemp,
    /// A lasting problem on our side (RFC 3206 `SYS/PERM`).
    SysPerm,
    /// Logged in too soon after the last login (RFC 2449 `LOGIN-DELAY`).
    LoginDelay,
}

impl RespCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RespCode::Auth => "AUTH",
            RespCode::SysTemp => "SYS/TEMP",
            RespCode::SysPerm => "SYS/PERM",
            RespCode::LoginDelay => "LOGIN-DELAY",
        }
    }
}

/// Appends `+OK text` CRLF (`+OK` alone when `text` is empty).
pub fn ok(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+OK");
    if !text.is_empty() {
        out.push(b' ');
        push_text(out, text);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `-ERR [code] text` CRLF.
pub fn err(out: &mut Vec<u8>, code: Option<RespCode>, text: &str) {
    out.extend_from_slice(b"-ERR");
    if let Some(c) = code {
        out.extend_from_slice(b" [");
        out.extend_from_slice(c.as_str().as_bytes());
        out.push(b']');
    }
    if !text.is_empty() {
        out.push(b' ');
        push_text(out, text);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one line of a multi-line reply that the server wrote itself
/// (never starts with `.`: CAPA names, `n size`, `n uidl`).
pub fn line(out: &mut Vec<u8>, text: &str) {
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

/// The end of a multi-line reply.
pub fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// Status text never carries a line break (it may echo what a client sent).
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// Appends `n` in decimal.
pub fn push_num(out: &mut Vec<u8>, mut n: u64) {
    // By hand, not `write!`: UIDL and LIST write one number per message.
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A message as RETR or TOP sends it, fed in pieces (see the module doc).
#[derive(Clone, Debug)]
pub struct Stuffer {
    /// The next byte starts a line.
    line_start: bool,
    /// The last byte fed was CR (an LF now is not bare).
    after_cr: bool,
    /// Bare LFs become CRLF (off for bytes already in served form).
    convert: bool,
    /// TOP: body lines still to send once the header has ended; `None`
    /// sends everything.
    budget: Option<u64>,
    /// Still in the header (only tracked for TOP).
    in_header: bool,
    /// The current line is empty so far (a blank line ends the header).
    line_empty: bool,
    /// Nothing more is to be sent (TOP's budget is spent).
    done: bool,
}

impl Stuffer {
    /// For a message as stored: bare LFs become CRLF.
    pub fn new() -> Self {
        Stuffer {
            line_start: true,
            after_cr: false,
            convert: true,
            budget: None,
            in_header: true,
            line_empty: true,
            done: false,
        }
    }

    /// For bytes already in the form to send (`message::to_crlf`'s).
    pub fn raw() -> Self {
        Stuffer {
            convert: false,
            ..Stuffer::new()
        }
    }

    /// TOP: the header, the blank line after it, and `lines` lines of the body.
    pub fn top(mut self, lines: u64) -> Self {
        self.budget = Some(lines);
        self
    }

    /// Nothing more will be sent whatever is fed (TOP's lines are out):
    /// the caller may stop reading the file.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds the next piece of the message.
    pub fn feed(&mut self, mut piece: &[u8], out: &mut Vec<u8>) {
        while !piece.is_empty() && !self.done {
            // One line (or the rest of the piece) at a time.
            let (line, ends) = match memchr(b'\n', piece) {
                Some(i) => (&piece[..i], true),
                None => (piece, false),
            };
            if !line.is_empty() {
                if self.line_start && line[0] == b'.' {
                    out.push(b'.');
                }
                out.extend_from_slice(line);
                self.line_start = false;
                // A line holding only CR (a CRLF blank line) is still blank.
                if !(line == b"\r" && self.line_empty) {
                    self.line_empty = false;
                }
                self.after_cr = line.last() == Some(&b'\r');
            }
            if !ends {
                break;
            }
            if self.convert && !self.after_cr {
                out.push(b'\r');
            }
            out.push(b'\n');
            piece = &piece[line.len() + 1..];
            self.end_of_line();
        }
    }

    fn end_of_line(&mut self) {
        let blank = self.line_empty;
        self.line_start = true;
        self.after_cr = false;
        self.line_empty = true;
        let Some(budget) = self.budget.as_mut() else {
            return;
        };
        if self.in_header {
            if blank {
                self.in_header = false;
                self.done = *budget == 0;
            }
        } else {
            *budget = budget.saturating_sub(1);
            self.done = *budget == 0;
        }
    }

    /// Ends the reply: a CRLF if the last line has no line break, then the
    /// terminating `.` line.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        end(out);
    }
}

impl Default for Stuffer {
    fn default() -> Self {
        Stuffer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn retr(msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = Stuffer::new();
        s.feed(msg, &mut out);
        s.finish(&mut out);
        out
    }

    fn top(msg: &[u8], n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = Stuffer::new().top(n);
        s.feed(msg, &mut out);
        s.finish(&mut out);
        out
    }

    /// What a client does: split at CRLF, drop the terminator, unstuff.
    fn unstuff(wire: &[u8]) -> Vec<u8> {
        let text = wire.strip_suffix(b".\r\n").expect("terminator");
        let mut out = Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    #[test]
    fn retr_table() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\n", b"a\r\n.\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"no end", b"no end\r\n.\r\n"),
            (b".\n", b"..\r\n.\r\n"),
            (b"x\n.hidden\n..two\n", b"x\r\n..hidden\r\n...two\r\n.\r\n"),
            (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"lone\rcr\n", b"lone\rcr\r\n.\r\n"),
            (b"x\n.", b"x\r\n..\r\n.\r\n"),
        ];
        for (msg, want) in rows {
            assert_eq!(
                String::from_utf8_lossy(&retr(msg)),
                String::from_utf8_lossy(want),
                "{}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn top_table() {
        let msg = b"Subject: a\nFrom: b\n\nline1\n.line2\nline3\n";
        assert_eq!(top(msg, 0), b"Subject: a\r\nFrom: b\r\n\r\n.\r\n");
        assert_eq!(top(msg, 1), b"Subject: a\r\nFrom: b\r\n\r\nline1\r\n.\r\n");
        assert_eq!(
            top(msg, 2),
            b"Subject: a\r\nFrom: b\r\n\r\nline1\r\n..line2\r\n.\r\n"
        );
        assert_eq!(top(msg, 99), retr(msg));
        // CRLF blank line; a header without a body; no header end at all.
        assert_eq!(top(b"A: b\r\n\r\nx\r\n", 0), b"A: b\r\n\r\n.\r\n");
        assert_eq!(top(b"A: b\n", 0), b"A: b\r\n.\r\n");
        assert_eq!(top(b"\nbody\nmore\n", 1), b"\r\nbody\r\n.\r\n");
    }

    #[test]
    fn status_lines() {
        let mut out = Vec::new();
        ok(&mut out, "2 320");
        err(&mut out, Some(RespCode::Auth), "Authentication failed.");
        err(&mut out, None, "evil\r\ntext");
        ok(&mut out, "");
        assert_eq!(
            out,
            b"+OK 2 320\r\n-ERR [AUTH] Authentication failed.\r\n-ERR evil  text\r\n+OK\r\n"
        );
    }

    proptest! {
        /// Whatever the message and however it is cut into pieces: the
        /// bytes before stuffing are the CRLF size LIST announces, and a
        /// client that unstuffs gets exactly the CRLF form back.
        #[test]
        fn stuffing_round_trips(
            msg in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'.'), Just(b'a')], 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(msg.len());
            let mut out = Vec::new();
            let mut s = Stuffer::new();
            s.feed(&msg[..cut], &mut out);
            s.feed(&msg[cut..], &mut out);
            s.finish(&mut out);
            let mut crlf = crate::message::to_crlf(&msg);
            prop_assert_eq!(crlf.len() as u64, crate::message::crlf_size(&msg));
            if !crlf.ends_with(b"\n") && !crlf.is_empty() {
                crlf.extend_from_slice(b"\r\n");
            }
            // A lone CR before the end is not a line end for the client either.
            let back = unstuff(&out);
            prop_assert_eq!(back, crlf);
            // The terminator appears once, at the end.
            let body = &out[..out.len() - 3];
            prop_assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n"));
        }
    }
}
