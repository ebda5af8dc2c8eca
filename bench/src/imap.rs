//! A small, fast IMAP client for benchmarking.
//!
//! Owns the socket side of the harness: framing server responses (lines plus `{n}` literals)
//! with a streaming reader over one growable buffer, handing each complete response to the
//! caller as a borrowed slice so that 100,000 FETCH responses cost no allocation each, and
//! pipelining commands where the workload allows. Writes and reads run concurrently when a
//! pipeline is large, so neither side can stall the other on full socket buffers.
//!
//! It never interprets more of a response than a workload needs; value parsing for the
//! cross-check lives in `check`. Every read is bounded by the connection's timeout.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Harness error: a message with context, enough for a benchmark's report.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(format!("i/o: {e}"))
    }
}

/// Result with the harness error.
pub type Res<T> = Result<T, Error>;

/// Build an [`Error`] from format arguments.
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::imap::Error(format!($($t)*)) };
}

/// Streaming response framer: holds unread bytes and yields complete responses.
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout: Duration,
    /// Bytes read from the socket so far (what the server sent, for the on-the-wire rows).
    received: u64,
}

/// Where a complete response lies in the reader's buffer (valid until the next read).
#[derive(Clone, Copy, Debug)]
pub struct Span {
    start: usize,
    end: usize,
}

impl Reader {
    pub(crate) fn new(timeout: Duration) -> Reader {
        Reader {
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            timeout,
            received: 0,
        }
    }

    /// Bytes read from the stream so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The bytes of a response returned by [`Reader::next`].
    pub fn get(&self, s: Span) -> &[u8] {
        &self.buf[s.start..s.end]
    }

    /// Read until one complete response (line and any literals, ending in CRLF) is buffered.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Res<Span> {
        // `scan` is relative to `start`, so compaction does not invalidate it.
        let mut scan = 0;
        loop {
            let avail = &self.buf[self.start + scan..self.end];
            if let Some(nl) = memchr_nl(avail) {
                let line_end = scan + nl + 1;
                let line = &self.buf[self.start..self.start + line_end];
                match literal_len(line) {
                    Some(n) => {
                        let need = line_end + n;
                        while self.end - self.start < need {
                            self.fill(rd, need).await?;
                        }
                        scan = need;
                    }
                    None => {
                        let span = Span {
                            start: self.start,
                            end: self.start + line_end,
                        };
                        self.start += line_end;
                        return Ok(span);
                    }
                }
            } else {
                scan = self.end - self.start;
                self.fill(rd, scan + 1).await?;
            }
        }
    }

    /// Read more bytes, making room for at least `want` unread bytes.
    async fn fill<R: AsyncRead + Unpin>(&mut self, rd: &mut R, want: usize) -> Res<()> {
        if self.start > 0 && (self.start == self.end || self.buf.len() - self.end < 64 * 1024) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let need = (self.start + want).max(self.end + 64 * 1024);
        if need > self.buf.len() {
            self.buf.resize(need.next_power_of_two(), 0);
        }
        let n = tokio::time::timeout(self.timeout, rd.read(&mut self.buf[self.end..]))
            .await
            .map_err(|_| err!("timed out after {:?} waiting for the server", self.timeout))??;
        if n == 0 {
            return Err(err!("server closed the connection"));
        }
        self.end += n;
        self.received += n as u64;
        Ok(())
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// If `line` (ending in LF) ends with a literal announcement `{n}`, `{n+}` or `~{n}`, its size.
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"\n")?;
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let l = l.strip_suffix(b"}")?;
    let l = l.strip_suffix(b"+").unwrap_or(l);
    let open = l.iter().rposition(|&c| c == b'{')?;
    let digits = &l[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One IMAP connection (cleartext; the harness only talks to 127.0.0.1).
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Response framer.
    pub rd: Reader,
    tag: u64,
    /// Capabilities from the greeting or a CAPABILITY command, upper-cased.
    pub caps: Vec<String>,
}

/// Tagged completion status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `OK`
    Ok,
    /// `NO`
    No,
    /// `BAD`
    Bad,
}

impl Conn {
    /// Connect and read the greeting.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Res<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| err!("connect to {addr} timed out"))?
            .map_err(|e| err!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rd: Reader::new(timeout),
            tag: 0,
            caps: Vec::new(),
        };
        let g = c.rd.next(&mut c.stream).await?;
        let greeting = c.rd.get(g).to_vec();
        if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
            return Err(err!("bad greeting: {}", String::from_utf8_lossy(&greeting)));
        }
        c.caps = parse_caps(&greeting);
        Ok(c)
    }

    /// Connect, LOGIN and make sure capabilities are known.
    pub async fn login(addr: SocketAddr, timeout: Duration, user: &str, pass: &str) -> Res<Conn> {
        let mut c = Conn::connect(addr, timeout).await?;
        let mut caps = Vec::new();
        c.run_ok(&format!("LOGIN {} {}", quote(user), quote(pass)), |r| {
            if let Some(v) = Some(parse_caps(r)).filter(|v| !v.is_empty()) {
                caps = v;
            }
        })
        .await?;
        if caps.is_empty() {
            c.run_ok("CAPABILITY", |r| {
                let v = parse_caps(r);
                if !v.is_empty() {
                    caps = v;
                }
            })
            .await?;
        }
        c.caps = caps;
        Ok(c)
    }

    /// Bytes the server has sent on this connection so far, greeting included. Between two
    /// commands run one at a time, the difference is exactly what the server sent for them:
    /// the framer never reads past a tagged completion unless the server sent more.
    pub fn received(&self) -> u64 {
        self.rd.received
    }

    /// The socket, for a layer the client puts under the protocol (COMPRESS, `compress`).
    /// Fails if the framer holds bytes the server sent past the last response: those would
    /// belong to that layer.
    pub fn into_stream(self) -> Res<TcpStream> {
        if self.rd.start != self.rd.end {
            return Err(err!(
                "{} unread bytes after the last response",
                self.rd.end - self.rd.start
            ));
        }
        Ok(self.stream)
    }

    /// Whether the server announced `cap`.
    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    /// A fresh tag.
    pub fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("b{}", self.tag)
    }

    /// Run one command; `f` sees every untagged response. Returns the status and tagged line.
    pub async fn run<F: FnMut(&[u8])>(&mut self, cmd: &str, mut f: F) -> Res<(Status, String)> {
        let tag = self.next_tag();
        let line = format!("{tag} {cmd}\r\n");
        self.stream.write_all(line.as_bytes()).await?;
        loop {
            let s = self.rd.next(&mut self.stream).await?;
            let r = self.rd.get(s);
            if let Some(st) = tagged_status(r, &tag) {
                return Ok((st, String::from_utf8_lossy(r).trim_end().to_string()));
            }
            f(r);
        }
    }

    /// [`Conn::run`], failing unless the status is OK.
    pub async fn run_ok<F: FnMut(&[u8])>(&mut self, cmd: &str, f: F) -> Res<()> {
        let (st, line) = self.run(cmd, f).await?;
        if st != Status::Ok {
            return Err(err!("{cmd:.60}: {line}"));
        }
        Ok(())
    }

    /// Send many commands at once (each given without tag and CRLF, raw bytes allowed for
    /// non-synchronizing literals), reading while writing; `f` sees every untagged response.
    /// Fails if any command does not complete with OK.
    pub async fn pipeline<F: FnMut(&[u8])>(&mut self, cmds: &[Vec<u8>], mut f: F) -> Res<()> {
        let mut out = Vec::with_capacity(cmds.iter().map(|c| c.len() + 12).sum());
        let mut tags = std::collections::HashSet::with_capacity(cmds.len());
        for c in cmds {
            let t = self.next_tag();
            out.extend_from_slice(t.as_bytes());
            out.push(b' ');
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
            tags.insert(t);
        }
        let (mut rh, mut wh) = self.stream.split();
        let rd = &mut self.rd;
        let writer = async {
            wh.write_all(&out).await?;
            Ok::<(), Error>(())
        };
        let reader = async {
            let mut failed = None;
            while !tags.is_empty() {
                let s = rd.next(&mut rh).await?;
                let r = rd.get(s);
                if r.first() != Some(&b'*') && r.first() != Some(&b'+') {
                    let tag_end = r.iter().position(|&c| c == b' ').unwrap_or(r.len());
                    let tag = String::from_utf8_lossy(&r[..tag_end]).into_owned();
                    if tags.remove(&tag) {
                        if tagged_status(r, &tag) != Some(Status::Ok) && failed.is_none() {
                            failed = Some(String::from_utf8_lossy(r).trim_end().to_string());
                        }
                        continue;
                    }
                }
                f(r);
            }
            match failed {
                Some(l) => Err(err!("pipelined command failed: {l}")),
                None => Ok(()),
            }
        };
        let (w, r) = tokio::join!(writer, reader);
        w?;
        r
    }

    /// Send `cmds` (as for [`Conn::pipeline`]) with at most `window` of them outstanding, the
    /// way mbsync uploads: a command goes out as soon as a tagged completion frees a slot, and
    /// tagged responses are read as they come. `done` is called after each completion with
    /// the number completed so far (split times). Writes and reads alternate, which cannot
    /// stall: the server's answers to at most `window` commands (tagged lines; no mailbox is
    /// selected for an upload) fit in its socket buffer while it reads the next command.
    /// Fails if any command does not complete with OK, once all have completed.
    pub async fn pipeline_window<F: FnMut(usize)>(
        &mut self,
        cmds: &[Vec<u8>],
        window: usize,
        mut done: F,
    ) -> Res<()> {
        let window = window.max(1);
        let mut pending = std::collections::HashSet::with_capacity(window);
        let (mut sent, mut completed) = (0, 0);
        let mut failed = None;
        let mut line = Vec::new();
        while completed < cmds.len() {
            while sent < cmds.len() && pending.len() < window {
                let t = self.next_tag();
                // One write per command (tag, command, literal, CRLF): one segment train,
                // as a client that builds the command in its buffer sends it.
                line.clear();
                line.extend_from_slice(t.as_bytes());
                line.push(b' ');
                line.extend_from_slice(&cmds[sent]);
                line.extend_from_slice(b"\r\n");
                self.stream.write_all(&line).await?;
                pending.insert(t);
                sent += 1;
            }
            let s = self.rd.next(&mut self.stream).await?;
            let r = self.rd.get(s);
            if r.first() == Some(&b'*') || r.first() == Some(&b'+') {
                continue;
            }
            let tag_end = r.iter().position(|&c| c == b' ').unwrap_or(r.len());
            let tag = String::from_utf8_lossy(&r[..tag_end]).into_owned();
            if pending.remove(&tag) {
                if tagged_status(r, &tag) != Some(Status::Ok) && failed.is_none() {
                    failed = Some(String::from_utf8_lossy(r).trim_end().to_string());
                }
                completed += 1;
                done(completed);
            }
        }
        match failed {
            Some(l) => Err(err!("pipelined command failed: {l}")),
            None => Ok(()),
        }
    }

    /// APPEND one message with a synchronizing literal (waits for the continuation). Returns
    /// the tagged OK line (for its `[APPENDUID ...]`, see [`appenduid`]).
    pub async fn append_sync(&mut self, mailbox: &str, flags: &str, msg: &[u8]) -> Res<String> {
        let tag = self.next_tag();
        let line = format!(
            "{tag} APPEND {} ({flags}) {{{}}}\r\n",
            quote(mailbox),
            msg.len()
        );
        self.stream.write_all(line.as_bytes()).await?;
        loop {
            let s = self.rd.next(&mut self.stream).await?;
            let r = self.rd.get(s);
            if r.starts_with(b"+") {
                break;
            }
            if let Some(st) = tagged_status(r, &tag) {
                return Err(err!(
                    "APPEND refused ({st:?}): {}",
                    String::from_utf8_lossy(r).trim_end()
                ));
            }
        }
        self.stream.write_all(msg).await?;
        self.stream.write_all(b"\r\n").await?;
        loop {
            let s = self.rd.next(&mut self.stream).await?;
            let r = self.rd.get(s);
            if let Some(st) = tagged_status(r, &tag) {
                let line = String::from_utf8_lossy(r).trim_end().to_string();
                if st != Status::Ok {
                    return Err(err!("APPEND failed: {line}"));
                }
                return Ok(line);
            }
        }
    }

    /// Enter IDLE and wait for the continuation; returns the tag to finish it with [`Conn::done`].
    pub async fn idle(&mut self) -> Res<String> {
        let tag = self.next_tag();
        self.stream
            .write_all(format!("{tag} IDLE\r\n").as_bytes())
            .await?;
        loop {
            let s = self.rd.next(&mut self.stream).await?;
            let r = self.rd.get(s);
            if r.starts_with(b"+") {
                return Ok(tag);
            }
            if let Some(st) = tagged_status(r, &tag) {
                return Err(err!("IDLE refused ({st:?})"));
            }
        }
    }

    /// Wait up to `wait` for an untagged `* N EXISTS` with `N >= want`.
    pub async fn wait_exists(&mut self, want: u64, wait: Duration) -> Res<bool> {
        self.wait_for(wait, |r| exists_count(r).is_some_and(|n| n >= want))
            .await
    }

    /// Wait up to `wait` for a response `done` accepts (unsolicited ones: IDLE's EXISTS,
    /// NOTIFY's STATUS); responses it refuses are dropped. `false` when the time ran out.
    pub async fn wait_for<F: FnMut(&[u8]) -> bool>(
        &mut self,
        wait: Duration,
        mut done: F,
    ) -> Res<bool> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let next = tokio::time::timeout(left, self.rd.next(&mut self.stream)).await;
            let Ok(s) = next else { return Ok(false) };
            if done(self.rd.get(s?)) {
                return Ok(true);
            }
        }
    }

    /// Leave IDLE.
    pub async fn done(&mut self, tag: &str) -> Res<()> {
        self.stream.write_all(b"DONE\r\n").await?;
        loop {
            let s = self.rd.next(&mut self.stream).await?;
            if tagged_status(self.rd.get(s), tag).is_some() {
                return Ok(());
            }
        }
    }

    /// LOGOUT, ignoring errors: the server may close first.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.run("LOGOUT", |_| {})).await;
    }
}

/// `tag OK ...` etc. for the given tag.
pub fn tagged_status(r: &[u8], tag: &str) -> Option<Status> {
    let rest = r.strip_prefix(tag.as_bytes())?.strip_prefix(b" ")?;
    let word = rest.get(..3)?;
    if word.eq_ignore_ascii_case(b"OK ") || word.eq_ignore_ascii_case(b"OK\r") {
        Some(Status::Ok)
    } else if word.eq_ignore_ascii_case(b"NO ") || word.eq_ignore_ascii_case(b"NO\r") {
        Some(Status::No)
    } else {
        Some(Status::Bad)
    }
}

/// `* N EXISTS` -> N.
pub fn exists_count(r: &[u8]) -> Option<u64> {
    let rest = r.strip_prefix(b"* ")?;
    let sp = rest.iter().position(|&c| c == b' ')?;
    let n = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let word = rest.get(sp + 1..sp + 7)?;
    word.eq_ignore_ascii_case(b"EXISTS").then_some(n)
}

/// Capabilities from `* CAPABILITY ...`, `* OK [CAPABILITY ...]` or a tagged `OK [CAPABILITY ...]`.
pub fn parse_caps(r: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(r);
    let up = s.to_ascii_uppercase();
    let Some(p) = up.find("CAPABILITY ") else {
        return Vec::new();
    };
    let rest = &s[p + "CAPABILITY ".len()..];
    let end = rest.find([']', '\r', '\n']).unwrap_or(rest.len());
    rest[..end]
        .split_ascii_whitespace()
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The UID of `[APPENDUID validity uid]` in a tagged APPEND completion (RFC 4315), if any.
pub fn appenduid(line: &str) -> Option<u64> {
    let up = line.to_ascii_uppercase();
    let p = up.find("[APPENDUID ")?;
    let mut words = line[p + "[APPENDUID ".len()..].split([' ', ']']);
    let _validity: u64 = words.next()?.parse().ok()?;
    words.next()?.parse().ok()
}

/// A compact UID set (`1:3,7,9:10`) of `uids`, in any order, duplicates allowed.
pub fn uid_set(uids: &[u64]) -> String {
    let mut v = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}:{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The UIDs of a UID set (`1:3,7`) as sent in VANISHED (RFC 9051 sequence-set, without `*`),
/// ranges in either order expanded; `None` if it is not one, or if it names more than
/// [`MAX_SET_UIDS`] UIDs (a server's wrong answer must not exhaust the harness's memory).
pub fn parse_uid_set(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?),
            None => {
                let a = part.parse::<u64>().ok()?;
                (a, a)
            }
        };
        let (lo, hi) = (a.min(b), a.max(b));
        if (out.len() as u64).saturating_add(hi - lo) >= MAX_SET_UIDS {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

/// UIDs [`parse_uid_set`] expands at most: far above any folder the harness builds.
pub const MAX_SET_UIDS: u64 = 1 << 24;

/// `* VANISHED [(EARLIER)] set` (RFC 7162 §3.2.10) -> (whether EARLIER, the UIDs).
pub fn vanished(r: &[u8]) -> Option<(bool, Vec<u64>)> {
    let s = std::str::from_utf8(r).ok()?.trim_end();
    let rest = s.strip_prefix("* ")?;
    let (word, rest) = rest.split_once(' ')?;
    if !word.eq_ignore_ascii_case("VANISHED") {
        return None;
    }
    let (earlier, set) = match rest.split_once(' ') {
        Some((e, set)) if e.eq_ignore_ascii_case("(EARLIER)") => (true, set),
        _ => (false, rest),
    };
    Some((earlier, parse_uid_set(set)?))
}

/// The number of a response code `[NAME n]` in an untagged or tagged response, e.g.
/// `* OK [HIGHESTMODSEQ 7] ...` -> 7 for `HIGHESTMODSEQ`.
pub fn code_number(r: &[u8], name: &str) -> Option<u64> {
    let s = String::from_utf8_lossy(r);
    let up = s.to_ascii_uppercase();
    let p = up.find(&format!("[{} ", name.to_ascii_uppercase()))?;
    s[p + name.len() + 2..]
        .split([']', ' '])
        .next()?
        .parse()
        .ok()
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Numbers of a `* SEARCH n n n` response (or `* ESEARCH ... ALL set`, not requested here).
pub fn search_numbers(r: &[u8]) -> Option<Vec<u64>> {
    let s = std::str::from_utf8(r).ok()?;
    let rest = s
        .strip_prefix("* SEARCH")
        .or_else(|| s.strip_prefix("* search"))?;
    Some(
        rest.split_ascii_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements() {
        let table: &[(&[u8], Option<usize>)] = &[
            (b"* 1 FETCH (BODY[] {12}\r\n", Some(12)),
            (b"* 1 FETCH (BODY[] {12+}\r\n", Some(12)),
            (b"* 1 FETCH (BINARY[1] ~{0}\r\n", Some(0)),
            (b"* 1 FETCH (FLAGS (\\Seen))\r\n", None),
            (b"* OK {x}\r\n", None),
            (b"* OK {}\r\n", None),
            (b"{5}\n", Some(5)),
        ];
        for (line, want) in table {
            assert_eq!(
                literal_len(line),
                *want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn statuses_and_exists() {
        assert_eq!(tagged_status(b"b1 OK done\r\n", "b1"), Some(Status::Ok));
        assert_eq!(
            tagged_status(b"b1 NO [TRYCREATE] x\r\n", "b1"),
            Some(Status::No)
        );
        assert_eq!(tagged_status(b"b1 BAD x\r\n", "b1"), Some(Status::Bad));
        assert_eq!(tagged_status(b"b12 OK x\r\n", "b1"), None);
        assert_eq!(exists_count(b"* 17 EXISTS\r\n"), Some(17));
        assert_eq!(exists_count(b"* 17 RECENT\r\n"), None);
        assert_eq!(search_numbers(b"* SEARCH 1 5 9\r\n"), Some(vec![1, 5, 9]));
        assert_eq!(search_numbers(b"* SEARCH\r\n"), Some(vec![]));
        assert_eq!(
            parse_caps(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] ready\r\n"),
            vec!["IMAP4REV1", "LITERAL+", "IDLE"]
        );
    }

    #[test]
    fn appenduid_and_uid_sets() {
        assert_eq!(
            appenduid("b7 OK [APPENDUID 1700000000 10042] Append completed."),
            Some(10042)
        );
        assert_eq!(appenduid("b7 OK [appenduid 5 3]"), Some(3));
        assert_eq!(appenduid("b7 OK Append completed."), None);
        assert_eq!(appenduid("b7 OK [APPENDUID 5 3:4]"), None);
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10, 2]), "1:3,7,9:10");
    }

    #[test]
    fn vanished_and_response_codes() {
        type Want = Option<(bool, Vec<u64>)>;
        let table: &[(&[u8], Want)] = &[
            (
                b"* VANISHED (EARLIER) 1:3,7\r\n",
                Some((true, vec![1, 2, 3, 7])),
            ),
            (b"* VANISHED 9\r\n", Some((false, vec![9]))),
            (b"* vanished (earlier) 5:4\r\n", Some((true, vec![4, 5]))),
            (b"* VANISHED (EARLIER) 1:*\r\n", None),
            (b"* 3 EXPUNGE\r\n", None),
        ];
        for (line, want) in table {
            assert_eq!(vanished(line), *want, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(parse_uid_set("2,4:5"), Some(vec![2, 4, 5]));
        assert_eq!(parse_uid_set(""), None);
        assert_eq!(parse_uid_set("1:4294967295"), None);
        assert_eq!(
            code_number(
                b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
                "HIGHESTMODSEQ"
            ),
            Some(715_194_045_007)
        );
        assert_eq!(
            code_number(
                b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
                "uidvalidity"
            ),
            Some(3_857_529_045)
        );
        assert_eq!(code_number(b"* OK [NOMODSEQ] x\r\n", "HIGHESTMODSEQ"), None);
    }

    /// Feed a response stream in every chunking and check the framer yields the same responses.
    #[tokio::test]
    async fn framer_handles_literals_split_anywhere() {
        let wire: &[u8] =
            b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n* 2 FETCH (X {0}\r\n)\r\nb1 OK done\r\n";
        let want: Vec<&[u8]> = vec![
            b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n",
            b"* 2 FETCH (X {0}\r\n)\r\n",
            b"b1 OK done\r\n",
        ];
        for chunk in 1..wire.len() {
            let mut builder = tokio_test_reader(wire, chunk);
            let mut rd = Reader::new(Duration::from_secs(5));
            rd.buf = vec![0; 8];
            for w in &want {
                let s = rd.next(&mut builder).await.expect("response");
                assert_eq!(rd.get(s), *w, "chunk {chunk}");
            }
            assert!(rd.next(&mut builder).await.is_err(), "EOF is an error");
        }
    }

    /// An AsyncRead that returns `data` in chunks of `n` bytes.
    fn tokio_test_reader(data: &[u8], n: usize) -> impl AsyncRead + Unpin {
        let chunks: Vec<Vec<u8>> = data.chunks(n).map(<[u8]>::to_vec).collect();
        Chunked { chunks, i: 0 }
    }

    struct Chunked {
        chunks: Vec<Vec<u8>>,
        i: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(c) = self.chunks.get(self.i).cloned() {
                let n = c.len().min(buf.remaining());
                buf.put_slice(&c[..n]);
                if n == c.len() {
                    self.i += 1;
                } else {
                    let i = self.i;
                    self.chunks[i] = c[n..].to_vec();
                }
            }
            std::task::Poll::Ready(Ok(()))
        }
    }
}
