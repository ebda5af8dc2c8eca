//! A small POP3 client (RFC 1939, RFC 2449 PIPELINING) and the POP3 workloads of issue 4.
//!
//! Owns framing POP3 replies: one status line, and for multi-line replies everything up to the
//! `CRLF . CRLF` terminator, found with a substring search over one buffer so RETR of every
//! message costs the client next to nothing. It never sends DELE: the mailbox is left as found.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::corpus::Expected;
use crate::err;
use crate::imap::Res;
use crate::servers::{PASS, USER};
use crate::workload::{Outcome, Plan, Unit};

/// One POP3 connection.
struct Pop3 {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    timeout: Duration,
    pipelining: bool,
}

impl Pop3 {
    async fn connect(addr: SocketAddr, timeout: Duration) -> Res<Pop3> {
        let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| err!("POP3 connect to {addr} timed out"))?
            .map_err(|e| err!("POP3 connect to {addr}: {e}"))?;
        s.set_nodelay(true)?;
        let mut p = Pop3 {
            s,
            buf: Vec::with_capacity(256 * 1024),
            start: 0,
            timeout,
            pipelining: false,
        };
        p.status().await?;
        Ok(p)
    }

    /// Read more bytes. Compaction (dropping consumed bytes) happens only between replies, in
    /// [`Pop3::status`], so offsets held while scanning a multi-line body stay valid.
    async fn fill(&mut self) -> Res<()> {
        // Read straight into the buffer's tail: one copy from the kernel, none after.
        let len = self.buf.len();
        self.buf.resize(len + 64 * 1024, 0);
        let r = tokio::time::timeout(self.timeout, self.s.read(&mut self.buf[len..])).await;
        let got = match &r {
            Ok(Ok(n)) => *n,
            _ => 0,
        };
        self.buf.truncate(len + got);
        let n = r.map_err(|_| {
            err!(
                "POP3: timed out after {:?} waiting for the server",
                self.timeout
            )
        })??;
        if n == 0 {
            return Err(err!("POP3: server closed the connection"));
        }
        Ok(())
    }

    /// Read one status line; fail unless it is `+OK`. Returns the text after `+OK`.
    async fn status(&mut self) -> Res<String> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[self.start..]) {
                let line = String::from_utf8_lossy(&self.buf[self.start..self.start + nl + 1])
                    .trim_end()
                    .to_string();
                self.start += nl + 1;
                return match line.strip_prefix("+OK") {
                    Some(rest) => Ok(rest.trim().to_string()),
                    None => Err(err!("POP3: {line}")),
                };
            }
            self.fill().await?;
        }
    }

    /// After a `+OK` line, find the end of the multi-line body; returns its byte range in `buf`
    /// (still dot-stuffed, without the terminator) and consumes it.
    async fn body(&mut self) -> Res<(usize, usize)> {
        // The status line's CRLF lies just before `start`: searching from there finds an empty
        // body (`.` right after the status line) as `\r\n.\r\n` too.
        let from = self.start.saturating_sub(2);
        let mut scan = from;
        loop {
            if let Some(p) = memchr::memmem::find(&self.buf[scan..], b"\r\n.\r\n") {
                let end = scan + p + 2;
                let range = (self.start.min(end), end);
                self.start = end + 3;
                return Ok(range);
            }
            // Rescan the last 4 bytes: the terminator may straddle two reads.
            scan = self.buf.len().saturating_sub(4).max(from);
            self.fill().await?;
        }
    }

    /// Read a multi-line reply; returns the number of data lines and bytes.
    async fn multi(&mut self) -> Res<(usize, usize)> {
        self.status().await?;
        let (a, b) = self.body().await?;
        Ok((memchr::memchr_iter(b'\n', &self.buf[a..b]).count(), b - a))
    }

    /// Read a multi-line reply; returns its size in bytes (no per-line work: RETR's hot path).
    async fn multi_bytes(&mut self) -> Res<usize> {
        self.status().await?;
        let (a, b) = self.body().await?;
        Ok(b - a)
    }

    async fn cmd(&mut self, c: &str) -> Res<String> {
        self.s.write_all(format!("{c}\r\n").as_bytes()).await?;
        self.status().await
    }

    async fn login(addr: SocketAddr, timeout: Duration) -> Res<Pop3> {
        let mut p = Pop3::connect(addr, timeout).await?;
        p.s.write_all(b"CAPA\r\n").await?;
        // A server without CAPA answers -ERR: then there is no PIPELINING either.
        if p.status().await.is_ok() {
            let (a, b) = p.body().await?;
            let caps = String::from_utf8_lossy(&p.buf[a..b]).into_owned();
            p.pipelining = caps
                .lines()
                .any(|l| l.trim().eq_ignore_ascii_case("PIPELINING"));
        }
        p.cmd(&format!("USER {USER}")).await?;
        p.cmd(&format!("PASS {PASS}")).await?;
        Ok(p)
    }
}

/// STAT, UIDL and RETR of every message, then a fetchmail-style download. A server without a POP3 listener is noted, not failed.
pub async fn run(
    srv: &crate::servers::Server,
    plan: &Plan,
    exp: &Expected,
    out: &mut Outcome,
) -> Res<()> {
    let Some(addr) = srv.pop3_addr else {
        out.notes
            .push("POP3: not configured for this server (install dovecot-pop3d)".into());
        return Ok(());
    };
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        out.notes.push(format!(
            "POP3: nothing listens on {addr}; POP3 workloads skipped"
        ));
        return Ok(());
    }
    let t = Instant::now();
    let mut p = Pop3::login(addr, plan.timeout).await?;
    let stat = p.cmd("STAT").await?;
    out.push(
        "pop3_login_stat",
        Unit::Secs,
        vec![t.elapsed().as_secs_f64()],
        String::new(),
    );
    let mut f = stat.split_whitespace().map(|x| x.parse::<u64>().ok());
    let (n, octets) = (
        f.next().flatten().unwrap_or(0),
        f.next().flatten().unwrap_or(0),
    );
    let want_octets: u64 = exp.inbox_msgs.iter().map(|m| m.vsize).sum();
    if n != exp.inbox as u64 || octets != want_octets {
        out.mismatches.push(format!(
            "POP3 STAT {n} {octets}, generator wrote {} messages of {want_octets} octets",
            exp.inbox
        ));
    }

    // The round trip of a command with no work behind it, one at a time:
    // the floor under every one-at-a-time workload (client, kernel and the
    // server's wake-up), against which `pop3_fetchmail` is read.
    const NOOPS: u32 = 2000;
    let t = Instant::now();
    for _ in 0..NOOPS {
        p.cmd("NOOP").await?;
    }
    out.push(
        "pop3_noop_rtt",
        Unit::Micros,
        vec![t.elapsed().as_secs_f64() * 1e6 / f64::from(NOOPS)],
        format!("mean of {NOOPS} NOOPs, one at a time, after STAT"),
    );

    let t = Instant::now();
    p.s.write_all(b"UIDL\r\n").await?;
    let (lines, _) = p.multi().await?;
    out.push(
        "pop3_uidl",
        Unit::Secs,
        vec![t.elapsed().as_secs_f64()],
        String::new(),
    );
    if lines as u64 != n {
        out.mismatches
            .push(format!("POP3 UIDL: {lines} lines for {n} messages"));
    }

    // RETR everything; pipelined in batches when the server offers PIPELINING (RFC 2449 §6.6).
    let (t, cpu, server_cpu) = (Instant::now(), crate::workload::cpu_secs(), srv.cpu_secs());
    let mut bytes = 0usize;
    let batch = if p.pipelining { 100 } else { 1 };
    let mut i = 1;
    while i <= n {
        let end = (i + batch - 1).min(n);
        let cmds: String = (i..=end).map(|k| format!("RETR {k}\r\n")).collect();
        p.s.write_all(cmds.as_bytes()).await?;
        for _ in i..=end {
            bytes += p.multi_bytes().await?;
        }
        i = end + 1;
    }
    let wall = t.elapsed().as_secs_f64();
    // Before QUIT: a server process per session (Dovecot's pop3) takes its
    // CPU time with it when it exits.
    let server_cpu = srv.cpu_secs() - server_cpu;
    let note = format!(
        "{}; server CPU {:.1} ms",
        if p.pipelining {
            "pipelined"
        } else {
            "one at a time (no PIPELINING)"
        },
        server_cpu * 1e3
    );
    out.client_cpu.push((
        "pop3_retr_all".into(),
        wall,
        crate::workload::cpu_secs() - cpu,
    ));
    out.push("pop3_retr_all", Unit::Secs, vec![wall], note);
    // Dot-stuffing can only add bytes.
    if (bytes as u64) < want_octets {
        out.mismatches.push(format!(
            "POP3 RETR: {bytes} bytes for {want_octets} octets of mail"
        ));
    }
    let _ = p.cmd("QUIT").await;
    fetchmail_style(srv, addr, plan, n, want_octets, out).await
}

/// A whole download the way fetchmail makes it in keep mode: a new
/// session, STAT, UIDL, LIST, then each message with `RETR n`, one command
/// at a time (fetchmail does not pipeline), then QUIT.
async fn fetchmail_style(
    srv: &crate::servers::Server,
    addr: SocketAddr,
    plan: &Plan,
    n: u64,
    want_octets: u64,
    out: &mut Outcome,
) -> Res<()> {
    let t = Instant::now();
    let mut p = Pop3::login(addr, plan.timeout).await?;
    // After login: Dovecot's login process is shared, its pop3 process is this session's.
    let server_cpu = srv.cpu_secs();
    p.cmd("STAT").await?;
    p.s.write_all(b"UIDL\r\n").await?;
    let (uidls, _) = p.multi().await?;
    p.s.write_all(b"LIST\r\n").await?;
    let (lists, _) = p.multi().await?;
    let mut bytes = 0usize;
    for k in 1..=n {
        p.s.write_all(format!("RETR {k}\r\n").as_bytes()).await?;
        bytes += p.multi_bytes().await?;
    }
    let server_cpu = srv.cpu_secs() - server_cpu;
    let _ = p.cmd("QUIT").await;
    out.push(
        "pop3_fetchmail",
        Unit::Secs,
        vec![t.elapsed().as_secs_f64()],
        format!(
            "login, STAT, UIDL, LIST, RETR each one at a time, QUIT; server CPU after login {:.1} ms",
            server_cpu * 1e3
        ),
    );
    if uidls as u64 != n || lists as u64 != n || (bytes as u64) < want_octets {
        out.mismatches.push(format!(
            "POP3 fetchmail-style: {uidls} UIDL and {lists} LIST lines, {bytes} bytes for {n} messages of {want_octets} octets"
        ));
    }
    Ok(())
}

/// RSS per logged-in POP3 connection that sits idle after STAT (a mail
/// client between its download and QUIT, or one that keeps its session
/// open): one session first (what is kept once per maildrop is then in
/// both readings), then `plan.idle_conns / 4` more, the difference divided
/// among them.
pub async fn idle_memory(srv: &crate::servers::Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let Some(addr) = srv.pop3_addr else {
        return Ok(());
    };
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        return Ok(());
    }
    let mut first = Pop3::login(addr, plan.timeout).await?;
    first.cmd("STAT").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, _, procs0) = srv.memory_kib();
    let n = (plan.idle_conns / 4).max(10);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(20));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (timeout, sem) = (plan.timeout, sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| err!("{e}"))?;
            let mut p = Pop3::login(addr, timeout).await?;
            p.cmd("STAT").await?;
            Ok::<_, crate::imap::Error>(p)
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut errs = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => errs.push(e.to_string()),
            Err(e) => errs.push(format!("task: {e}")),
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss1, _, procs1) = srv.memory_kib();
    let got = conns.len().max(1) as f64;
    for mut c in conns {
        let _ = c.cmd("QUIT").await;
    }
    let _ = first.cmd("QUIT").await;
    if let Some(e) = errs.first() {
        return Err(err!(
            "{} of {n} idle POP3 connections failed, e.g. {e}",
            errs.len()
        ));
    }
    out.push(
        "pop3_rss_per_idle_conn",
        Unit::KiB,
        vec![rss1.saturating_sub(rss0) as f64 / got],
        format!("{n} sessions after STAT, after a first one; {procs0} -> {procs1} processes; RSS {rss0} -> {rss1} KiB"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A scripted server: send `wire` in small pieces, whatever the client writes.
    async fn serve(wire: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            for chunk in wire.chunks(3) {
                let _ = s.write_all(chunk).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        addr
    }

    #[tokio::test]
    async fn multi_line_replies_split_anywhere() {
        let addr = serve(
            b"+OK hi\r\n+OK 2 msgs\r\n1 a\r\n2 b\r\n.\r\n+OK\r\n.\r\n+OK x\r\n..dot\r\nz\r\n.\r\n",
        )
        .await;
        let mut p = Pop3::connect(addr, Duration::from_secs(5))
            .await
            .expect("connect");
        assert_eq!(p.multi().await.expect("uidl"), (2, 10));
        assert_eq!(p.multi().await.expect("empty"), (0, 0));
        assert_eq!(p.multi().await.expect("stuffed"), (2, 10));
    }

    #[tokio::test]
    async fn err_status_is_an_error() {
        let addr = serve(b"+OK hi\r\n-ERR no\r\n").await;
        let mut p = Pop3::connect(addr, Duration::from_secs(5))
            .await
            .expect("connect");
        assert!(p.status().await.is_err());
    }
}
