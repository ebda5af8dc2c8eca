//! Large message bodies sent from their file in pieces (issue 15, item 4):
//! `BODY[]`, `BODY[TEXT]`, `RFC822`, `RFC822.TEXT` and `BINARY[]` of a
//! message too big to hold (see `fetch::BIG`), and `BODY[HEADER]` and
//! `RFC822.HEADER` of a header too long to read whole (see
//! `Folder::read_header`), with or without a partial range. FETCH renders `{n}\r\n` and leaves a hole in its output where the
//! literal goes ([`FileLiteral`]); the session fills the hole a piece at a
//! time, converting bare LFs to CRLF on the way, and writes each piece
//! before reading the next, so a connection holds one piece and its output
//! buffer, not the message, however slowly its client reads.
//!
//! Owns the one pass over a file that finds the literal's length (the CRLF
//! size of the whole message and of its text, [`scan`]) and the piecewise
//! conversion, which must give exactly the bytes `mime::Message` gives for
//! the same section (the tests in `fetch` compare the two). It never opens
//! files itself (the store does, [`MessageFile`]) and never holds more than
//! one piece of a file.

use std::io;
use std::sync::Arc;

use memchr::{memchr, memchr_iter};

use crate::session::Session;
use crate::store::MessageFile;

/// Bytes read from a message file at a time. Big enough that a 20 MB body
/// costs a few hundred reads and writes, small next to the output buffer's
/// flush threshold (`session::FLUSH_AT`).
pub(crate) const PIECE: usize = 64 * 1024;

/// A literal's bytes in a message file: the file from raw offset `start`
/// on, converted to CRLF, of which `skip` bytes are dropped and the next
/// `len` sent. `start` is 0 (the whole message) or where the text begins
/// (just after an LF), so an LF at `start` is always a bare one.
pub(crate) struct FileLiteral {
    pub file: Arc<MessageFile>,
    pub start: u64,
    pub skip: u64,
    pub len: u64,
    /// A plain `{n}` literal, which cannot carry NUL: each NUL is sent as
    /// 0x80, as `fetch::render::literal` does (`false` for a literal8).
    pub string: bool,
}

/// What one pass over a message file tells (all in CRLF terms but `body_start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Raw offset where the text begins: after the blank line that ends the
    /// header, or the file's end when none does (then the text is empty).
    pub body_start: u64,
    /// RFC822.SIZE: the whole message once bare LFs become CRLF.
    pub total: u64,
    /// The text (`BODY[TEXT]`) in CRLF form.
    pub text: u64,
    /// Some byte is NUL (a `BINARY[]` of it is sent as `literal8`).
    pub has_nul: bool,
    /// The word `binary` occurs: the message may have a binary part,
    /// whose body is served as stored (`message::kept`), which this piecewise
    /// conversion does not know; such a message is rendered in memory.
    pub maybe_binary: bool,
}

/// Where the header ends, found piece by piece: the same place
/// `message::tree::split_header` finds in the whole message (an LF followed
/// by LF or CR LF, or a blank first line: the start of the file counts as
/// just after an LF).
struct HeaderEnd {
    found: Option<u64>,
    /// The last piece ended in LF, or in LF CR: undecided until the next.
    after_lf: bool,
    after_lf_cr: bool,
}

impl HeaderEnd {
    fn new() -> Self {
        HeaderEnd {
            found: None,
            after_lf: true,
            after_lf_cr: false,
        }
    }

    fn feed(&mut self, c: &[u8], off: u64) {
        if self.found.is_some() || c.is_empty() {
            return;
        }
        if self.after_lf_cr {
            self.after_lf_cr = false;
            if c[0] == b'\n' {
                self.found = Some(off + 1);
                return;
            }
        }
        if self.after_lf {
            self.after_lf = false;
            match (c[0], c.get(1)) {
                (b'\n', _) => {
                    self.found = Some(off + 1);
                    return;
                }
                (b'\r', Some(b'\n')) => {
                    self.found = Some(off + 2);
                    return;
                }
                (b'\r', None) => {
                    self.after_lf_cr = true;
                    return;
                }
                _ => {}
            }
        }
        for i in memchr_iter(b'\n', c) {
            match (c.get(i + 1), c.get(i + 2)) {
                (Some(b'\n'), _) => {
                    self.found = Some(off + i as u64 + 2);
                    return;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    self.found = Some(off + i as u64 + 3);
                    return;
                }
                (None, _) => self.after_lf = true,
                (Some(b'\r'), None) => self.after_lf_cr = true,
                _ => {}
            }
        }
    }
}

/// Reads the file once, a piece at a time: the sizes a literal of it needs.
pub(crate) fn scan(file: &MessageFile) -> io::Result<Scan> {
    scan_in(file, PIECE)
}

fn scan_in(file: &MessageFile, piece: usize) -> io::Result<Scan> {
    let mut buf = vec![0u8; piece.max(1)];
    let mut off = 0u64;
    let mut prev_cr = false;
    let mut header = HeaderEnd::new();
    let (mut head_bare, mut body_bare) = (0u64, 0u64);
    let mut has_nul = false;
    let mut maybe_binary = false;
    // The last bytes of the previous piece, for a word cut in two.
    let mut carry: Vec<u8> = Vec::with_capacity(12);
    loop {
        let n = file.read_full(&mut buf, off)?;
        if n == 0 {
            break;
        }
        let c = &buf[..n];
        header.feed(c, off);
        has_nul |= memchr(0, c).is_some();
        if !maybe_binary {
            let mut joined = std::mem::take(&mut carry);
            joined.extend_from_slice(&c[..n.min(5)]);
            maybe_binary =
                crate::message::may_have_binary(&joined) || crate::message::may_have_binary(c);
            // The last 5 bytes read, however small the pieces.
            if n >= 5 {
                joined.clear();
                joined.extend_from_slice(&c[n - 5..]);
            } else {
                joined.drain(..joined.len().saturating_sub(5));
            }
            carry = joined;
        }
        for i in memchr_iter(b'\n', c) {
            let bare = if i == 0 { !prev_cr } else { c[i - 1] != b'\r' };
            if bare {
                if header.found.is_some_and(|h| off + i as u64 >= h) {
                    body_bare += 1;
                } else {
                    head_bare += 1;
                }
            }
        }
        prev_cr = c[n - 1] == b'\r';
        off += n as u64;
    }
    let body_start = header.found.unwrap_or(off).min(off);
    Ok(Scan {
        body_start,
        total: off + head_bare + body_bare,
        text: off - body_start + body_bare,
        has_nul,
        maybe_binary,
    })
}

/// The piecewise CRLF conversion of a [`FileLiteral`].
pub(crate) struct Converter {
    /// Raw offset of the next piece.
    pub off: u64,
    prev_cr: bool,
    skip: u64,
    /// NUL becomes 0x80 ([`FileLiteral::string`]).
    string: bool,
    /// Bytes still to send.
    pub left: u64,
}

impl Converter {
    pub fn new(lit: &FileLiteral) -> Self {
        Converter {
            off: lit.start,
            prev_cr: false,
            skip: lit.skip,
            left: lit.len,
            string: lit.string,
        }
    }

    /// Converts the raw piece at `self.off` and appends what of it belongs
    /// to the literal to `out`.
    pub fn feed(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let Some(&last) = piece.last() else {
            return;
        };
        let mark = out.len();
        let mut from = 0;
        if self.prev_cr && piece[0] == b'\n' {
            // The CR ended the previous piece: this LF is not bare.
            out.push(b'\n');
            from = 1;
        }
        let rest = &piece[from..];
        let mut last_end = 0;
        for i in memchr_iter(b'\n', rest) {
            let bare = if i == 0 { true } else { rest[i - 1] != b'\r' };
            if bare {
                out.extend_from_slice(&rest[last_end..i]);
                out.extend_from_slice(b"\r\n");
                last_end = i + 1;
            }
        }
        out.extend_from_slice(&rest[last_end..]);
        if self.string {
            for b in &mut out[mark..] {
                if *b == 0 {
                    *b = 0x80;
                }
            }
        }
        self.prev_cr = last == b'\r';
        self.off += piece.len() as u64;
        let produced = (out.len() - mark) as u64;
        let drop = self.skip.min(produced);
        if drop > 0 {
            out.drain(mark..mark + drop as usize);
            self.skip -= drop;
        }
        let kept = (out.len() - mark) as u64;
        if kept > self.left {
            out.truncate(mark + self.left as usize);
        }
        self.left -= kept.min(self.left);
    }
}

/// Whether the literal's bytes contain a NUL (a partial `BINARY[]` is a
/// `literal8` only then): one more pass over that window of the file.
pub(crate) fn window_has_nul(lit: &FileLiteral) -> io::Result<bool> {
    let mut conv = Converter::new(lit);
    let mut buf = vec![0u8; PIECE];
    let mut out = Vec::with_capacity(2 * PIECE);
    while conv.left > 0 {
        let n = lit.file.read_full(&mut buf, conv.off)?;
        if n == 0 {
            break;
        }
        out.clear();
        conv.feed(&buf[..n], &mut out);
        if memchr(0, &out).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads a piece on this thread in a nowait scope (the page cache usually
/// has it), or `None` where no scope can be had (a current-thread runtime).
fn read_here(file: &MessageFile, buf: &mut [u8], off: u64) -> Option<io::Result<usize>> {
    let _scope = crate::session::nowait_scope()?;
    Some(file.read_full(buf, off))
}

/// Sends a literal's bytes through the session's output buffer, a piece at
/// a time, writing to the socket whenever the buffer is full: the next
/// piece is read only once the socket took enough of the previous ones.
pub(crate) async fn send(s: &mut Session, lit: FileLiteral) -> io::Result<()> {
    let mut conv = Converter::new(&lit);
    let mut buf = vec![0u8; PIECE];
    while conv.left > 0 {
        let n = match read_here(&lit.file, &mut buf, conv.off) {
            Some(r) => r?,
            None => {
                let file = lit.file.clone();
                let off = conv.off;
                let (b, r) = tokio::task::spawn_blocking(move || {
                    let r = file.read_full(&mut buf, off);
                    (buf, r)
                })
                .await
                .map_err(io::Error::other)?;
                buf = b;
                r?
            }
        };
        if n == 0 {
            // The file got shorter than it was a moment ago, which a
            // Maildir message never does (they are never rewritten in
            // place). The literal's length is promised: pad it, so the
            // client stays in step, and say so.
            tracing::error!(
                missing = conv.left,
                "message file shrank while FETCH sent it; padded with spaces"
            );
            while conv.left > 0 {
                let pad = conv.left.min(PIECE as u64);
                s.out.resize(s.out.len() + pad as usize, b' ');
                conv.left -= pad;
                s.maybe_flush().await?;
            }
            break;
        }
        conv.feed(&buf[..n], &mut s.out);
        s.maybe_flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a scan must find, from the whole message in memory.
    fn expected(raw: &[u8]) -> Scan {
        let body_start = crate::mime::header_block(raw).len();
        Scan {
            body_start: body_start as u64,
            total: crate::message::crlf_size(raw),
            text: crate::message::crlf_size(&raw[body_start..]),
            has_nul: raw.contains(&0),
            maybe_binary: crate::message::may_have_binary(raw),
        }
    }

    /// The scan finds the header's end and the CRLF sizes wherever the
    /// pieces cut the file (an LF, CR LF or blank line split across two).
    #[test]
    fn scans_agree_with_the_message_in_memory_for_any_piece_size() {
        let d = tempfile::tempdir().unwrap();
        let store = crate::store::MailStore::open(
            d.path().to_path_buf(),
            crate::store::Registry::new(),
            crate::store::StoreOptions { fsync: false },
        )
        .unwrap();
        let mut msgs: Vec<Vec<u8>> = [
            &b"S: a\n\nbody\n"[..],
            b"S: a\r\n\r\nbody\r\n",
            b"S: a\n\r\nbody\n",
            b"S: a\r\n\nbody",
            b"\nbody",
            b"\r\nbody\n",
            b"\r\r\n\n\nx",
            b"no end\n",
            b"no end\n\r",
            b"",
            b"\0\n\n\0",
            b"X: bin\nary\n\nBINARY",
            b"X: bi\n\nnary",
        ]
        .iter()
        .map(|m| m.to_vec())
        .collect();
        let mut seed = 7u64;
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 33) as usize % 60;
            msgs.push(
                (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        b"ab\r\n\n\0"[(seed >> 40) as usize % 6]
                    })
                    .collect(),
            );
        }
        let cur = d.path().join("cur");
        for (i, m) in msgs.iter().enumerate() {
            std::fs::write(cur.join(format!("{}.M{i}P1.host:2,", 1000 + i)), m).unwrap();
        }
        let folder = store.open_folder("INBOX").unwrap();
        for (i, m) in msgs.iter().enumerate() {
            let f = folder.open_message(folder.messages()[i].uid).unwrap();
            let want = expected(m);
            for piece in [1, 2, 3, 4, 7, PIECE] {
                assert_eq!(
                    scan_in(&f, piece).unwrap(),
                    want,
                    "{m:?} in pieces of {piece}"
                );
            }
        }
    }
}
