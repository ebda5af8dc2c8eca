//! Memory per idle IMAP connection over TLS: the `rss_per_idle_tls_conn_N` rows.
//!
//! Owns the harness's TLS client (rustls, trusting only the server's throwaway self-signed
//! certificate from `servers`) and the workload: N clients connect to the implicit-TLS port
//! (993-style), LOGIN, SELECT INBOX and IDLE, with a bounded number of handshakes in flight,
//! and the server's memory, summed over its whole process tree (every Dovecot `imap` and
//! `imap-login`; every nestbox process), is read from `/proc` before and after.
//!
//! Each client keeps only its TLS stream once it idles (no 256 KiB response buffer as the
//! workload client has), so 10,000 of them fit in the harness. It never talks to anything
//! but the server's 127.0.0.1 port and never interprets more of a response than its tag.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::err;
use crate::imap::Res;
use crate::servers::{PASS, Server, USER};
use crate::workload::{Outcome, Plan, Unit};

/// Handshakes (and logins) in flight at once: enough to keep both sides busy, few enough not
/// to overflow the listen backlog or time a server's accept queue.
const CONCURRENCY: usize = 64;

/// A client config that trusts exactly the certificate in `cert_pem` (name `localhost`).
pub fn client_config(cert_pem: &Path) -> Res<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert_pem).map_err(|e| err!("{e}"))? {
        roots
            .add(c.map_err(|e| err!("{}: {e}", cert_pem.display()))?)
            .map_err(|e| err!("{}: {e}", cert_pem.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err!("{e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reads until a line starting with `prefix`: the greeting's `* OK`, a tag and its space
/// (`a `: anything but OK after it fails), or `+` for IDLE's continuation. Fails on EOF and
/// after `timeout`.
async fn until<R: AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut Vec<u8>,
    prefix: &[u8],
    timeout: Duration,
) -> Res<()> {
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..i + 2).collect();
            if line.starts_with(prefix) {
                let rest = &line[prefix.len()..];
                if prefix.ends_with(b" ") && !rest.starts_with(b"OK") {
                    return Err(err!("{}", String::from_utf8_lossy(&line).trim_end()));
                }
                return Ok(());
            }
        }
        let n = tokio::time::timeout(timeout, s.read(&mut chunk))
            .await
            .map_err(|_| err!("no answer within {timeout:?}"))??;
        if n == 0 {
            return Err(err!("the server closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Connects over TLS, logs in, SELECTs INBOX and IDLEs; returns the idling stream.
pub async fn idle_client(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Res<TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| err!("connect to {addr} timed out"))?
        .map_err(|e| err!("connect to {addr}: {e}"))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").map_err(|e| err!("{e}"))?;
    let mut s = tokio::time::timeout(timeout, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| err!("TLS handshake with {addr} timed out"))?
        .map_err(|e| err!("TLS handshake with {addr}: {e}"))?;
    let mut buf = Vec::new();
    until(&mut s, &mut buf, b"* OK", timeout).await?;
    s.write_all(format!("a LOGIN {USER} {PASS}\r\n").as_bytes())
        .await?;
    until(&mut s, &mut buf, b"a ", timeout).await?;
    s.write_all(b"b SELECT INBOX\r\n").await?;
    until(&mut s, &mut buf, b"b ", timeout).await?;
    s.write_all(b"c IDLE\r\n").await?;
    until(&mut s, &mut buf, b"+", timeout).await?;
    Ok(s)
}

/// The row suffix for a connection count: `1k`, `10k`, or the number.
pub fn count_label(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Memory available to new work, KiB (`MemAvailable`).
pub fn mem_available_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `n` connections would be safe on this machine, judged from a smaller count
/// already measured on the same server (its PSS per connection, which counts shared pages
/// once): `Some(reason)` to skip. Dovecot keeps an `imap-login` and an `imap` process per
/// TLS connection; 10,000 of them need more memory than a small machine has, and running
/// it out of memory would take the other work on it down too.
pub fn too_big(out: &Outcome, n: usize) -> Option<String> {
    let (m, per) = out
        .measures
        .iter()
        .filter_map(|m| {
            let c = m.name.strip_prefix("pss_per_idle_tls_conn_")?;
            let c = c.strip_suffix('k').map_or_else(
                || c.parse::<usize>().ok(),
                |k| k.parse::<usize>().ok().map(|k| k * 1000),
            )?;
            (c < n).then_some((c, m.value))
        })
        .max_by_key(|(c, _)| *c)?;
    let need = per * n as f64;
    let avail = mem_available_kib()? as f64;
    (need > avail / 2.0).then(|| {
        format!(
            "{} idle TLS connections skipped: at {per:.0} KiB PSS each (measured at {m}) they \
             would need {:.1} GiB, more than half of the {:.1} GiB available",
            n,
            need / 1048576.0,
            avail / 1048576.0
        )
    })
}

/// `n` idle TLS connections; pushes `rss_per_idle_tls_conn_<n>`, `pss_per_idle_tls_conn_<n>`
/// and `rss_total_with_idle_tls_<n>`. Bounded as a whole by the caller.
pub async fn idle_memory(srv: &Server, plan: &Plan, n: usize, out: &mut Outcome) -> Res<()> {
    let (Some(addr), Some(cert)) = (srv.tls_addr, srv.tls_cert.as_deref()) else {
        return Err(err!("{} has no TLS port configured", srv.label));
    };
    let config = client_config(cert)?;
    // One connection first, as in the plaintext row: what a server keeps once per open
    // mailbox is then in both readings.
    let first = idle_client(addr, config.clone(), plan.timeout).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, pss0, procs0) = srv.memory_kib();
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (config, timeout, sem) = (config.clone(), plan.timeout, sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| err!("{e}"))?;
            idle_client(addr, config, timeout).await
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
    // Let lazily freed memory and late process starts settle before reading /proc.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss1, pss1, procs1) = srv.memory_kib();
    let got = conns.len().max(1) as f64;
    drop(conns);
    drop(first);
    if let Some(e) = errs.first() {
        return Err(err!(
            "{} of {n} idle TLS connections failed, e.g. {e}",
            errs.len()
        ));
    }
    let label = count_label(n);
    let note = format!(
        "{n} TLS connections after a first one; {procs0} -> {procs1} processes; RSS {rss0} -> {rss1} KiB; PSS {pss0} -> {pss1} KiB"
    );
    out.push(
        &format!("rss_per_idle_tls_conn_{label}"),
        Unit::KiB,
        vec![rss1.saturating_sub(rss0) as f64 / got],
        note.clone(),
    );
    out.push(
        &format!("pss_per_idle_tls_conn_{label}"),
        Unit::KiB,
        vec![pss1.saturating_sub(pss0) as f64 / got],
        note,
    );
    out.push(
        &format!("rss_total_with_idle_tls_{label}"),
        Unit::KiB,
        vec![rss1 as f64],
        String::new(),
    );
    Ok(())
}

/// [`idle_memory`] on a freshly restarted server (so the connections do not reuse heap that
/// earlier workloads freed), bounded in time; failures become the outcome's errors.
pub async fn idle_memory_bounded(srv: &Server, plan: &Plan, n: usize, out: &mut Outcome) {
    // Handshakes cost CPU on both sides: allow a few ms each beyond the usual bound.
    let bound = plan.timeout * 2 + Duration::from_millis(20) * n as u32;
    match tokio::time::timeout(bound, idle_memory(srv, plan, n, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("idle TLS memory ({n}): {e}")),
        Err(_) => out
            .errors
            .push(format!("idle TLS memory ({n}): timed out after {bound:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(count_label(1000), "1k");
        assert_eq!(count_label(10_000), "10k");
        assert_eq!(count_label(20), "20");
        assert_eq!(count_label(1500), "1500");
    }
}
