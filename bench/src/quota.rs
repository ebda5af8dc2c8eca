//! APPEND with the quota off and on (issue 19, session 15): what keeping `maildirsize` costs.
//!
//! Owns the `append_quota_off_K` and `append_quota_on_K` rows: K APPENDs into a new folder,
//! pipelined with LITERAL+ as `append_K` sends them, on a server restarted with the quota off
//! ([`Server::set_quota`]: no `maildirsize`) or on (10 GiB: every APPEND adds a line to
//! `maildirsize`, and past 5,120 bytes the file is recomputed from every folder, the Maildir++
//! rule both servers follow). Off and on alternate (off first in even iterations, on first in
//! odd ones), `--iters` times each, each on a fresh
//! folder after one untimed APPEND into it (the login's own quota work, nestbox's recount when
//! the limit changed and Dovecot's first calculation, is not timed); the rows are the medians,
//! of the wall time and (`..._server_cpu`) of the server's CPU time for the batch: the APPENDs
//! wait on fsyncs, whose time on a shared disk moves more from run to run than the quota costs,
//! while the CPU time shows the quota's own work. The note has each pair's on/off ratio.
//!
//! Checks, never timings: the folder holds exactly K + 1 messages; with the quota on
//! `maildirsize` exists and its totals grew by K messages and by the appended bytes (between
//! the size with LF line ends, as both servers store a message, and with CRLF, as it was sent);
//! with the quota off there is no `maildirsize`.

use std::time::Instant;

use tokio::runtime::Runtime;

use crate::err;
use crate::imap::Res;
use crate::servers::Server;
use crate::workload::{Outcome, Plan, Unit, crlf_messages, login, median, status_messages};

/// Totals of a `maildirsize` (bytes, messages): the sum of its lines after the first.
fn totals(srv: &Server) -> Option<(i64, i64)> {
    let text = std::fs::read_to_string(srv.maildir.join("maildirsize")).ok()?;
    let mut lines = text.lines();
    lines.next()?;
    let (mut b, mut c) = (0, 0);
    for l in lines {
        let mut w = l.split_whitespace();
        // A torn last line is ignored, as the servers do.
        if let (Some(x), Some(y)) = (w.next(), w.next())
            && let (Ok(x), Ok(y)) = (x.parse::<i64>(), y.parse::<i64>())
        {
            b += x;
            c += y;
        }
    }
    Some((b, c))
}

/// One timed batch into `folder`; returns its wall time and the server's CPU time for it.
async fn batch(
    srv: &Server,
    plan: &Plan,
    folder: &str,
    on: bool,
    out: &mut Outcome,
) -> Res<(f64, f64)> {
    let k = plan.ops;
    let mut c = login(srv, plan).await?;
    if !c.has_cap("LITERAL+") {
        return Err(err!("no LITERAL+"));
    }
    c.run_ok(&format!("CREATE {folder}"), |_| {}).await?;
    let msgs = crlf_messages(plan.seed, 11, k + 1);
    let cmd = |m: &Vec<u8>| {
        let mut v = format!("APPEND {folder} (\\Seen) {{{}+}}\r\n", m.len()).into_bytes();
        v.extend_from_slice(m);
        v
    };
    c.pipeline(&[cmd(&msgs[k])], |_| {}).await?;
    let before = totals(srv);
    let cmds: Vec<Vec<u8>> = msgs[..k].iter().map(cmd).collect();
    let (t, cpu) = (Instant::now(), srv.cpu_secs());
    c.pipeline(&cmds, |_| {}).await?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = srv.cpu_secs() - cpu;
    let n = status_messages(&mut c, folder).await?;
    if n != k as u64 + 1 {
        out.mismatches.push(format!(
            "append quota {}: {folder} has {n} messages, appended {}",
            if on { "on" } else { "off" },
            k + 1
        ));
    }
    let after = totals(srv);
    match (on, before, after) {
        (false, None, None) => {}
        (false, ..) => out
            .mismatches
            .push("append quota off: a maildirsize exists".into()),
        (true, Some((b0, c0)), Some((b1, c1))) => {
            let crlf: i64 = msgs[..k].iter().map(|m| m.len() as i64).sum();
            let lf: i64 = msgs[..k]
                .iter()
                .map(|m| (m.len() - m.iter().filter(|&&b| b == b'\n').count()) as i64)
                .sum();
            if c1 - c0 != k as i64 || b1 - b0 < lf || b1 - b0 > crlf {
                out.mismatches.push(format!(
                    "append quota on: maildirsize grew by {} B in {} messages for {k} messages of {lf}-{crlf} B",
                    b1 - b0,
                    c1 - c0
                ));
            }
        }
        (true, ..) => out
            .mismatches
            .push("append quota on: no maildirsize before or after the APPENDs".into()),
    }
    c.logout().await;
    Ok((wall, cpu))
}

/// The rows; restarts the server twice per iteration and leaves the quota off.
pub fn run(rt: &Runtime, srv: &mut Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let k = plan.ops;
    // (wall, server CPU) per batch.
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for i in 0..plan.iters.max(1) {
        // Off first in even iterations, on first in odd ones: neither always comes second
        // (one more folder to recount, the previous batch's writeback still going).
        let order = if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for quota in order {
            srv.set_quota(quota)?;
            srv.restart()?;
            let folder = format!("bench-quota-{}-{i}", if quota { "on" } else { "off" });
            let r = rt.block_on(batch(srv, plan, &folder, quota, out))?;
            if quota { &mut on } else { &mut off }.push(r);
        }
    }
    srv.set_quota(false)?;
    // Each on against the off of the same iteration: the disk's mood changes slower than that.
    let pairs: Vec<f64> = off.iter().zip(&on).map(|(a, b)| b.0 / a.0).collect();
    let note = format!(
        "{k} APPENDs, LITERAL+ pipelined, fresh folder; off and on alternate, order flipped every iteration; on/off of each pair: median {:.3} ({})",
        median(&pairs),
        pairs
            .iter()
            .map(|p| format!("{p:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let wall = |v: &[(f64, f64)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
    let cpu = |v: &[(f64, f64)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
    out.push(
        &format!("append_quota_off_{k}"),
        Unit::Secs,
        wall(&off),
        note,
    );
    let on_row = format!("append_quota_on_{k}");
    out.push(&on_row, Unit::Secs, wall(&on), String::new());
    let cpu_row = format!("append_quota_off_{k}_server_cpu");
    out.push(&cpu_row, Unit::Secs, cpu(&off), String::new());
    let cpu_row = format!("append_quota_on_{k}_server_cpu");
    out.push(&cpu_row, Unit::Secs, cpu(&on), String::new());
    Ok(())
}
