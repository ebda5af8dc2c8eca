//! Cuts a POP3 connection's input into lines under a length cap. Pure:
//! bytes are pushed in, lines come out; the session does the reading.
//!
//! A line longer than the cap is answered once (`Line::TooLong`) and the
//! rest of it, however long, is dropped as it arrives: the reader never
//! holds more than the cap, so a client (before login, a stranger) cannot
//! make the server buffer more than that (issue 15's pre-auth bound).

use memchr::memchr;

/// What [`Lines::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its LF and without a CR before it.
    Complete(Vec<u8>),
    /// A line past the cap started; the rest of it will be dropped.
    TooLong,
}

/// Buffered input of one connection.
pub struct Lines {
    buf: Vec<u8>,
    max: usize,
    /// Dropping the rest of a line that was too long.
    discarding: bool,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Lines {
            buf: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// Sets the cap for lines from now on.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next line, if a whole one (or a too long one) is buffered.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            match memchr(b'\n', &self.buf) {
                Some(i) => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > self.max {
                        return Some(Line::TooLong);
                    }
                    return Some(Line::Complete(line));
                }
                None if self.discarding => {
                    self.buf.clear();
                    return None;
                }
                None if self.buf.len() > self.max => {
                    self.buf.clear();
                    self.discarding = true;
                    return Some(Line::TooLong);
                }
                None => {
                    // Nothing to keep a big allocation for while waiting.
                    if self.buf.is_empty() && self.buf.capacity() > 4096 {
                        self.buf = Vec::new();
                    }
                    return None;
                }
            }
        }
    }

    /// Bytes received but not yet returned as lines.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes every byte not yet returned (the hand-over to a worker).
    pub fn take_unread(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(s: &str) -> Option<Line> {
        Some(Line::Complete(s.as_bytes().to_vec()))
    }

    #[test]
    fn lines_and_limits() {
        let mut l = Lines::new(10);
        l.push(b"STAT\r\nLIST 1\nNO");
        assert_eq!(l.next_line(), complete("STAT"));
        assert_eq!(l.next_line(), complete("LIST 1"));
        assert_eq!(l.next_line(), None);
        l.push(b"OP\r\n");
        assert_eq!(l.next_line(), complete("NOOP"));
        // Too long within one push, and across pushes.
        l.push(b"0123456789AB\r\nQUIT\r\n");
        assert_eq!(l.next_line(), Some(Line::TooLong));
        assert_eq!(l.next_line(), complete("QUIT"));
        l.push(b"0123456789ABCDEF");
        assert_eq!(l.next_line(), Some(Line::TooLong));
        assert_eq!(l.buffered(), 0);
        l.push(b"more and more");
        assert_eq!(l.next_line(), None);
        assert_eq!(l.buffered(), 0);
        l.push(b"end\r\nRSET\r\nX");
        assert_eq!(l.next_line(), complete("RSET"));
        assert_eq!(l.take_unread(), b"X");
        // Exactly at the cap is fine.
        l.push(b"0123456789\r\n");
        assert_eq!(l.next_line(), complete("0123456789"));
    }
}
