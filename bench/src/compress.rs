//! COMPRESS=DEFLATE (RFC 4978) rows (issue 19, session 15): what compression saves on the wire
//! and costs in time for a big FETCH, and what a compressed connection costs in memory.
//!
//! Owns the client's side of a compressed connection ([`Zconn`]: async-compression's tokio
//! adaptors over the socket, the crate nestbox itself uses; the test suites check the stream
//! against flate2 and Python's zlib) and the rows:
//! - `fetch_env_bs`, `fetch_env_bs_deflate`: `FETCH 1:* (ENVELOPE BODYSTRUCTURE)` on INBOX,
//!   without and with COMPRESS, after one untimed run (both servers fill their caches there),
//!   alternating, median of `--iters`; `..._bytes`: what the server sent on the wire (the
//!   compressed bytes for the second). Timed as the other FETCH rows, from the first byte
//!   written to the tagged OK read, so the client's inflating is inside the second (a real
//!   client inflates too). The note gives the server's CPU time per run.
//! - `rss_per_deflate_conn_active`, `_quiet`, `_idle`: K connections that did LOGIN, COMPRESS
//!   and SELECT INBOX; RSS per connection right after each answered a NOOP (every deflater
//!   just used), again after 40 s without a command (`--quick`: 6 s; nestbox drops a quiet
//!   connection's deflater after 5 s; the margin also covers its 30 s memory sweep), and once
//!   they are in IDLE.
//!
//! Checks, never timings: every FETCH run answers one response per INBOX message, and the
//! inflated responses of the compressed runs are byte for byte the plain runs' (a hash of the
//! FETCH responses in order).

use std::hash::{DefaultHasher, Hasher};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_compression::Level;
use async_compression::tokio::bufread::DeflateDecoder;
use async_compression::tokio::write::DeflateEncoder;
use tokio::io::{AsyncRead, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::corpus::Expected;
use crate::err;
use crate::imap::{self, Conn, Reader, Res, Status};
use crate::servers::Server;
use crate::workload::{Outcome, Plan, Unit, login, select};

/// The FETCH of the wire-size rows: what a client's first sync of a folder's list asks.
const FETCH: &str = "FETCH 1:* (ENVELOPE BODYSTRUCTURE)";

/// Bytes read through it, counted (the compressed bytes on the wire).
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.n += read as u64;
        r
    }
}

/// An IMAP connection after COMPRESS DEFLATE.
pub struct Zconn {
    w: DeflateEncoder<OwnedWriteHalf>,
    r: DeflateDecoder<BufReader<Counted<OwnedReadHalf>>>,
    rd: Reader,
    tag: u64,
}

impl Zconn {
    /// COMPRESS DEFLATE on a logged-in connection; from its OK on, both ways compressed.
    pub async fn start(mut c: Conn, timeout: Duration) -> Res<Zconn> {
        if !c.has_cap("COMPRESS=DEFLATE") {
            return Err(err!("no COMPRESS=DEFLATE in the capabilities"));
        }
        c.run_ok("COMPRESS DEFLATE", |_| {}).await?;
        let (rh, wh) = c.into_stream()?.into_split();
        Ok(Zconn {
            w: DeflateEncoder::with_quality(wh, Level::Default),
            r: DeflateDecoder::new(BufReader::new(Counted { inner: rh, n: 0 })),
            rd: Reader::new(timeout),
            tag: 0,
        })
    }

    /// Compressed bytes the server has sent since COMPRESS.
    pub fn wire_received(&self) -> u64 {
        self.r.get_ref().get_ref().n
    }

    async fn send(&mut self, line: &str) -> Res<String> {
        self.tag += 1;
        let tag = format!("z{}", self.tag);
        self.w
            .write_all(format!("{tag} {line}\r\n").as_bytes())
            .await?;
        // A sync flush: the server can read the command now.
        self.w.flush().await?;
        Ok(tag)
    }

    /// Runs one command; `f` sees every untagged response, inflated.
    pub async fn run<F: FnMut(&[u8])>(&mut self, cmd: &str, mut f: F) -> Res<(Status, String)> {
        let tag = self.send(cmd).await?;
        loop {
            let s = self.rd.next(&mut self.r).await?;
            let r = self.rd.get(s);
            if let Some(st) = imap::tagged_status(r, &tag) {
                return Ok((st, String::from_utf8_lossy(r).trim_end().to_string()));
            }
            f(r);
        }
    }

    pub async fn run_ok<F: FnMut(&[u8])>(&mut self, cmd: &str, f: F) -> Res<()> {
        let (st, line) = self.run(cmd, f).await?;
        if st != Status::Ok {
            return Err(err!("{cmd:.60} (compressed): {line}"));
        }
        Ok(())
    }

    /// Enters IDLE and waits for the continuation.
    pub async fn idle(&mut self) -> Res<()> {
        let tag = self.send("IDLE").await?;
        loop {
            let s = self.rd.next(&mut self.r).await?;
            let r = self.rd.get(s);
            if r.starts_with(b"+") {
                return Ok(());
            }
            if let Some(st) = imap::tagged_status(r, &tag) {
                return Err(err!("IDLE refused ({st:?}, compressed)"));
            }
        }
    }
}

/// What one FETCH run answered: responses, a hash of them in order, bytes seen by the framer.
struct Answer {
    n: u64,
    hash: u64,
}

fn hash_into(h: &mut DefaultHasher, n: &mut u64, r: &[u8]) {
    *n += 1;
    h.write(r);
}

/// The FETCH rows: plain and compressed, alternating after one untimed run.
pub async fn fetch_rows(srv: &Server, plan: &Plan, exp: &Expected, out: &mut Outcome) -> Res<()> {
    let inbox = exp.inbox as u64;
    let mut plain = login(srv, plan).await?;
    select(&mut plain, "INBOX").await?;
    let mut z = login(srv, plan).await?;
    select(&mut z, "INBOX").await?;
    let mut z = Zconn::start(z, plan.timeout).await?;
    // Untimed: the first FETCH of these items is where both servers fill their caches.
    plain.run_ok(FETCH, |_| {}).await?;
    let (mut t_plain, mut t_z) = (Vec::new(), Vec::new());
    let (mut b_plain, mut b_z, mut b_inflated) = (Vec::new(), Vec::new(), 0u64);
    let (mut cpu_plain, mut cpu_z) = (Vec::new(), Vec::new());
    let mut want: Option<u64> = None;
    for _ in 0..plan.iters.max(1) {
        // Plain.
        let (mut h, mut n) = (DefaultHasher::new(), 0);
        let (before, cpu, t) = (plain.received(), srv.cpu_secs(), Instant::now());
        plain
            .run_ok(FETCH, |r| hash_into(&mut h, &mut n, r))
            .await?;
        t_plain.push(t.elapsed().as_secs_f64());
        cpu_plain.push(srv.cpu_secs() - cpu);
        b_plain.push((plain.received() - before) as f64);
        let a = Answer {
            n,
            hash: h.finish(),
        };
        // Compressed.
        let (mut h, mut n) = (DefaultHasher::new(), 0);
        let (before, inflated) = (z.wire_received(), z.rd.received());
        let (cpu, t) = (srv.cpu_secs(), Instant::now());
        z.run_ok(FETCH, |r| hash_into(&mut h, &mut n, r)).await?;
        t_z.push(t.elapsed().as_secs_f64());
        cpu_z.push(srv.cpu_secs() - cpu);
        b_z.push((z.wire_received() - before) as f64);
        b_inflated = z.rd.received() - inflated;
        let b = Answer {
            n,
            hash: h.finish(),
        };
        for (what, ans) in [("plain", &a), ("compressed", &b)] {
            if ans.n != inbox {
                out.mismatches.push(format!(
                    "{FETCH} ({what}): {} responses for {inbox} messages",
                    ans.n
                ));
            }
        }
        if a.hash != b.hash {
            out.mismatches.push(format!(
                "{FETCH}: the compressed answer inflates to other bytes than the plain one"
            ));
        }
        if want.is_some_and(|w| w != a.hash) {
            out.mismatches
                .push(format!("{FETCH}: the plain answer changed between runs"));
        }
        want = Some(a.hash);
    }
    let ms = |v: &[f64]| crate::workload::median(v) * 1e3;
    out.push(
        "fetch_env_bs",
        Unit::Secs,
        t_plain,
        format!("server CPU {:.0} ms", ms(&cpu_plain)),
    );
    out.push("fetch_env_bs_bytes", Unit::Bytes, b_plain, String::new());
    out.push(
        "fetch_env_bs_deflate",
        Unit::Secs,
        t_z,
        format!(
            "server CPU {:.0} ms; {b_inflated} B inflated (tagged OK included)",
            ms(&cpu_z)
        ),
    );
    out.push(
        "fetch_env_bs_deflate_bytes",
        Unit::Bytes,
        b_z,
        String::new(),
    );
    plain.logout().await;
    Ok(())
}

/// The memory rows: K compressed connections, active, quiet, in IDLE.
pub async fn memory_rows(srv: &Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    // One compressed session first, so what the server keeps once (the open INBOX) is in
    // every reading, as in `rss_per_idle_conn`.
    let first = open(srv, plan).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, pss0, procs0) = srv.memory_kib();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(50));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..plan.idle_conns {
        let (srv_addr, plan, sem) = (srv.addr, plan.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| err!("{e}"))?;
            let c = Conn::login(
                srv_addr,
                plan.timeout,
                crate::servers::USER,
                crate::servers::PASS,
            )
            .await?;
            let mut z = Zconn::start(c, plan.timeout).await?;
            z.run_ok("SELECT INBOX", |_| {}).await?;
            Ok::<_, imap::Error>(z)
        });
    }
    let mut conns = Vec::with_capacity(plan.idle_conns);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(err!("task: {e}")),
        }
    }
    let n = conns.len().max(1) as f64;
    // Every connection answers a NOOP at about the same moment: every deflater in use.
    let noops = conns.iter_mut().map(|c| c.run_ok("NOOP", |_| {}));
    for r in futures_join(noops).await {
        r?;
    }
    let (rss1, pss1, _) = srv.memory_kib();
    // Quiet: past nestbox's REST_AFTER (5 s) and (whole runs) one sweep that gives freed
    // memory back (every 30 s).
    tokio::time::sleep(plan.deflate_quiet).await;
    let (rss2, pss2, _) = srv.memory_kib();
    for c in conns.iter_mut() {
        c.idle().await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss3, pss3, procs3) = srv.memory_kib();
    drop(conns);
    drop(first);
    let per = |a: u64, b: u64| vec![a.saturating_sub(b) as f64 / n];
    let note = format!(
        "{} connections after a first one; {procs0} -> {procs3} processes; RSS {rss0} -> {rss1} (active) -> {rss2} (quiet) -> {rss3} KiB (IDLE); PSS {pss0} -> {pss1} -> {pss2} -> {pss3} KiB",
        plan.idle_conns
    );
    out.push(
        "rss_per_deflate_conn_active",
        Unit::KiB,
        per(rss1, rss0),
        note.clone(),
    );
    out.push(
        "rss_per_deflate_conn_quiet",
        Unit::KiB,
        per(rss2, rss0),
        String::new(),
    );
    out.push(
        "rss_per_deflate_conn_idle",
        Unit::KiB,
        per(rss3, rss0),
        String::new(),
    );
    out.push(
        "pss_per_deflate_conn_idle",
        Unit::KiB,
        per(pss3, pss0),
        String::new(),
    );
    Ok(())
}

/// A compressed session with INBOX selected.
async fn open(srv: &Server, plan: &Plan) -> Res<Zconn> {
    let c = login(srv, plan).await?;
    let mut z = Zconn::start(c, plan.timeout).await?;
    z.run_ok("SELECT INBOX", |_| {}).await?;
    Ok(z)
}

/// Awaits all of `futs` together (no futures crate in the harness).
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut outs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outs[i].is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => outs[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().flatten().collect()
}
