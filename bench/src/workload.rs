//! The workloads of issue 4, run against one server at a time.
//!
//! Owns what is measured and how: wall time on the socket from the first byte written to the
//! tagged completion read, with the client doing no more than counting responses inside the
//! timed region (the cross-check pass that parses everything is separate and untimed). It also
//! checks each server against what the generator promised (message counts, sizes, search hits)
//! and collects the answers the cross-check compares.
//!
//! Workloads run in a fixed order because some change the mailbox: the read-only ones first,
//! then STORE, APPEND, COPY, MOVE, the single APPENDs into INBOX (removed again, see
//! [`append_sync_inbox`]), the upload into a new folder, IDLE deliveries, then on folders of
//! their own the QRESYNC resync ([`crate::resync`]), FETCH PREVIEW ([`crate::preview`]) and
//! the NOTIFY push latency ([`crate::notify`]), and finally the idle-connection memory test.
//! A failing workload is recorded and the run goes on; it never hides a failure.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::check::{self, Answers};
use crate::corpus::{self, BODY_TERM, Expected, SUBJECT_TERM};
use crate::err;
use crate::imap::{self, Conn, Res};
use crate::servers::{Kind, PASS, Server, USER};

/// Sizes and repetitions of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Generator seed (APPEND and IDLE deliveries derive their messages from it too).
    pub seed: u64,
    /// Timed repetitions of the repeatable workloads.
    pub iters: usize,
    /// Messages for APPEND, COPY and MOVE, and for the single APPENDs into INBOX.
    pub ops: usize,
    /// Messages for the mbsync-style upload.
    pub upload: usize,
    /// IDLE deliveries for the latency test.
    pub idle_deliveries: usize,
    /// Bound on each IDLE delivery's wait.
    pub idle_wait: Duration,
    /// Idle IDLE connections for the memory test.
    pub idle_conns: usize,
    /// Idle IDLE connections over TLS, one memory measurement per count (`tls`).
    pub idle_tls_conns: Vec<usize>,
    /// Parallel clients.
    pub parallel: usize,
    /// Per-read timeout.
    pub timeout: Duration,
    /// How long the compressed connections of `rss_per_deflate_conn_quiet` wait ([`crate::compress`]).
    pub deflate_quiet: Duration,
    /// Only these groups of workloads, in this order (`--only`: quick turns while working
    /// on them; the published figures come from whole runs). Empty: all of them.
    pub only: Vec<Only>,
}

/// A group of workloads `--only` runs alone.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    /// The POP3 workloads.
    Pop3,
    /// The QRESYNC resync ([`crate::resync`]).
    Resync,
    /// FETCH PREVIEW, first and again ([`crate::preview`]).
    Preview,
    /// The NOTIFY push latency ([`crate::notify`]).
    Notify,
    /// FETCH with and without COMPRESS=DEFLATE, and compressed connections' memory
    /// ([`crate::compress`]).
    Compress,
    /// APPEND with the quota off and on ([`crate::quota`]).
    Quota,
}

impl Plan {
    /// Whether this run includes `group` (every group when `--only` was not given).
    pub fn wants(&self, group: Only) -> bool {
        self.only.is_empty() || self.only.contains(&group)
    }
}

/// Unit of a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Wall seconds.
    Secs,
    /// Milliseconds (latencies).
    Millis,
    /// Microseconds (round trips).
    Micros,
    /// KiB (memory).
    KiB,
    /// Bytes (on the wire).
    Bytes,
}

impl Unit {
    /// Short name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Secs => "s",
            Unit::Millis => "ms",
            Unit::Micros => "us",
            Unit::KiB => "KiB",
            Unit::Bytes => "B",
        }
    }
}

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Measure {
    /// Workload name (stable: it is the JSON key).
    pub name: String,
    /// Unit of `value` and `samples`.
    pub unit: Unit,
    /// The reported figure (median of samples unless stated otherwise).
    pub value: f64,
    /// Every sample.
    pub samples: Vec<f64>,
    /// Free-form note (e.g. timeouts, literal mode).
    pub note: String,
}

/// Everything one server produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Measurements in workload order.
    pub measures: Vec<Measure>,
    /// Answers for the cross-check.
    pub answers: Answers,
    /// Workloads that failed, with the reason.
    pub errors: Vec<String>,
    /// Departures from what the generator promised.
    pub mismatches: Vec<String>,
    /// Things worth knowing that are not failures (e.g. a protocol the server does not offer).
    pub notes: Vec<String>,
    /// (workload, wall seconds, client CPU seconds) of single timed commands.
    pub client_cpu: Vec<(String, f64, f64)>,
}

impl Outcome {
    /// Whether a failure suggests the server no longer answers (a timeout or a closed
    /// connection): then the remaining workloads are skipped instead of each waiting out its
    /// own timeout, so a hung server cannot stretch a CI run past its budget.
    pub(crate) fn wedged(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.contains("timed out") || e.contains("closed the connection"))
    }

    pub(crate) fn push(&mut self, name: &str, unit: Unit, samples: Vec<f64>, note: String) {
        let value = median(&samples);
        self.measures.push(Measure {
            name: name.into(),
            unit,
            value,
            samples,
            note,
        });
    }

    /// Record a timed workload that was run `samples.len()` times: the first run is reported
    /// apart from the repeats, because the first FETCH of a fresh mailbox is where a server
    /// builds its caches (Dovecot's dovecot.index.cache) and that is what a new client sees.
    fn push_first_and_again(&mut self, name: &str, samples: Vec<f64>) {
        if let Some(&first) = samples.first() {
            self.push(name, Unit::Secs, vec![first], String::new());
        }
        if samples.len() > 1 {
            self.push(
                &format!("{name} (again)"),
                Unit::Secs,
                samples[1..].to_vec(),
                String::new(),
            );
        }
    }
}

/// Median (upper median for even counts); 0 for no samples.
pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub(crate) async fn login(srv: &Server, plan: &Plan) -> Res<Conn> {
    Conn::login(srv.addr, plan.timeout, USER, PASS).await
}

/// SELECT and return EXISTS.
pub(crate) async fn select(c: &mut Conn, mailbox: &str) -> Res<u64> {
    let mut exists = None;
    c.run_ok(&format!("SELECT {}", imap::quote(mailbox)), |r| {
        if let Some(n) = imap::exists_count(r) {
            exists = Some(n);
        }
    })
    .await?;
    exists.ok_or_else(|| err!("SELECT {mailbox}: no EXISTS"))
}

/// LOGIN + SELECT INBOX on a server the caller has just restarted: what each server keeps on
/// disk (nestbox's index and the uidlist, Dovecot's index files) is there, nothing it held in
/// memory is. `login_select_warm` measures a running server, whose memory nestbox uses across
/// logins and Dovecot (a process per login) does not; this is the warm open from disk, as after
/// a reboot or an upgrade. Pushes `login_select_restart`, the server's CPU in its note.
pub async fn select_after_restart(srv: &Server, plan: &Plan, out: &mut Outcome) {
    let t = Instant::now();
    let cpu = srv.cpu_secs();
    let r = async {
        let mut c = login(srv, plan).await?;
        select(&mut c, "INBOX").await?;
        let el = t.elapsed().as_secs_f64();
        let cpu = srv.cpu_secs() - cpu;
        c.logout().await;
        Ok::<_, imap::Error>((el, cpu))
    }
    .await;
    match r {
        Ok((el, cpu)) => {
            let note = format!("server CPU {:.1} ms", cpu * 1e3);
            out.push("login_select_restart", Unit::Secs, vec![el], note);
        }
        Err(e) => out
            .errors
            .push(format!("login+select after a restart: {e}")),
    }
}

/// CPU seconds (user + system) this process has used so far.
pub fn cpu_secs() -> f64 {
    // SAFETY: getrusage with a valid pointer to a zeroed local struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Time one command, counting untagged responses; also records the client's own CPU time
/// under `name`, the evidence that the client is not what is being measured.
async fn timed(c: &mut Conn, out: &mut Outcome, name: &str, cmd: &str) -> Res<(f64, usize)> {
    let (t, cpu) = (Instant::now(), cpu_secs());
    let mut n = 0;
    c.run_ok(cmd, |_| n += 1).await?;
    let wall = t.elapsed().as_secs_f64();
    out.client_cpu
        .push((name.to_string(), wall, cpu_secs() - cpu));
    Ok((wall, n))
}

/// The SORT and THREAD workloads: name, capability, command. UIDs, so that the answers map to
/// Message-IDs for the cross-check.
const ORDERED: [(&str, &str, &str); 4] = [
    ("sort_date", "SORT", "UID SORT (DATE) UTF-8 ALL"),
    (
        "sort_subject_from",
        "SORT",
        "UID SORT (SUBJECT REVERSE FROM) UTF-8 ALL",
    ),
    (
        "thread_references",
        "THREAD=REFERENCES",
        "UID THREAD REFERENCES UTF-8 ALL",
    ),
    (
        "thread_orderedsubject",
        "THREAD=ORDEREDSUBJECT",
        "UID THREAD ORDEREDSUBJECT UTF-8 ALL",
    ),
];

/// A SORT or THREAD response with every UID replaced by its message's Message-ID (the
/// structure, parentheses and order kept), so two servers' answers compare.
fn uids_to_ids(text: &str, uid_to_id: &HashMap<u64, String>) -> String {
    let mut out = String::with_capacity(text.len() * 4);
    let mut num = String::new();
    let flush = |num: &mut String, out: &mut String| {
        if !num.is_empty() {
            match num.parse::<u64>().ok().and_then(|u| uid_to_id.get(&u)) {
                Some(id) => out.push_str(id),
                None => out.push_str(&format!("<unknown uid {num}>")),
            }
            num.clear();
        }
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
        } else {
            flush(&mut num, &mut out);
            out.push(ch);
        }
    }
    flush(&mut num, &mut out);
    out
}

/// Run every workload against `srv`. `exp` is what the generator wrote.
/// STAT, UIDL, RETR, a fetchmail-style download and idle memory over POP3.
async fn pop3_workloads(srv: &Server, plan: &Plan, exp: &Expected, out: &mut Outcome) {
    let bound = plan.timeout * 2;
    match tokio::time::timeout(bound, crate::pop3::run(srv, plan, exp, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("pop3: {e}")),
        Err(_) => out.errors.push(format!("pop3: timed out after {bound:?}")),
    }
    match tokio::time::timeout(bound, crate::pop3::idle_memory(srv, plan, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("pop3 idle memory: {e}")),
        Err(_) => out
            .errors
            .push(format!("pop3 idle memory: timed out after {bound:?}")),
    }
}

/// The QRESYNC resync of issue 18 on its own folder ([`crate::resync`]), bounded as a whole.
async fn resync_workload(srv: &Server, plan: &Plan, exp: &Expected, out: &mut Outcome) {
    let bound = plan.timeout * 2;
    match tokio::time::timeout(bound, crate::resync::run(srv, plan, exp, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("qresync resync: {e}")),
        Err(_) => out
            .errors
            .push(format!("qresync resync: timed out after {bound:?}")),
    }
}

/// FETCH PREVIEW on its own folder ([`crate::preview`]), bounded as a whole.
async fn preview_workload(srv: &Server, plan: &Plan, exp: &Expected, out: &mut Outcome) {
    let bound = plan.timeout * 2;
    match tokio::time::timeout(bound, crate::preview::run(srv, plan, exp, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("fetch preview: {e}")),
        Err(_) => out
            .errors
            .push(format!("fetch preview: timed out after {bound:?}")),
    }
}

/// FETCH with and without COMPRESS ([`crate::compress`]), bounded as a whole.
async fn compress_fetch(srv: &Server, plan: &Plan, exp: &Expected, out: &mut Outcome) {
    let bound = plan.timeout * 2;
    match tokio::time::timeout(bound, crate::compress::fetch_rows(srv, plan, exp, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("fetch compressed: {e}")),
        Err(_) => out
            .errors
            .push(format!("fetch compressed: timed out after {bound:?}")),
    }
}

/// The NOTIFY push latency on its own folder ([`crate::notify`]), bounded as a whole.
async fn notify_workload(srv: &Server, plan: &Plan, out: &mut Outcome) {
    let bound = plan.timeout * 2;
    match tokio::time::timeout(bound, crate::notify::run(srv, plan, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("notify latency: {e}")),
        Err(_) => out
            .errors
            .push(format!("notify latency: timed out after {bound:?}")),
    }
}

pub async fn run_all(srv: &Server, plan: &Plan, exp: &Expected) -> Outcome {
    let mut out = Outcome::default();
    if !plan.only.is_empty() {
        for group in &plan.only {
            if out.wedged() {
                break;
            }
            match group {
                Only::Pop3 => pop3_workloads(srv, plan, exp, &mut out).await,
                Only::Resync => resync_workload(srv, plan, exp, &mut out).await,
                Only::Preview => preview_workload(srv, plan, exp, &mut out).await,
                Only::Notify => notify_workload(srv, plan, &mut out).await,
                Only::Compress => compress_fetch(srv, plan, exp, &mut out).await,
                // Restarts the server: `main` runs it after these.
                Only::Quota => {}
            }
        }
        return out;
    }
    let inbox = exp.inbox as u64;

    // LOGIN + SELECT, first on the fresh copy (no index: cold), then again (warm).
    let mut samples = Vec::new();
    for i in 0..=plan.iters {
        let t = Instant::now();
        let cpu = srv.cpu_secs();
        let r = async {
            let mut c = login(srv, plan).await?;
            let n = select(&mut c, "INBOX").await?;
            let el = t.elapsed().as_secs_f64();
            let cpu = srv.cpu_secs() - cpu;
            c.logout().await;
            Ok::<_, imap::Error>((n, el, cpu))
        }
        .await;
        match r {
            Ok((n, el, cpu)) => {
                if n != inbox {
                    out.mismatches
                        .push(format!("SELECT INBOX: EXISTS {n}, generator wrote {inbox}"));
                }
                if i == 0 {
                    // The server's CPU tells waiting (the disk, the machine) from working.
                    let note = format!("server CPU {:.1} ms", cpu * 1e3);
                    out.push("login_select_cold", Unit::Secs, vec![el], note);
                } else {
                    samples.push(el);
                }
            }
            Err(e) => {
                out.errors.push(format!("login+select: {e}"));
                return out;
            }
        }
    }
    out.push("login_select_warm", Unit::Secs, samples, String::new());

    let mut c = match login(srv, plan).await {
        Ok(c) => c,
        Err(e) => {
            out.errors.push(format!("login: {e}"));
            return out;
        }
    };
    if let Err(e) = select(&mut c, "INBOX").await {
        out.errors.push(format!("select: {e}"));
        return out;
    }

    let fetches = [
        (
            "fetch_meta",
            "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
        ),
        (
            "fetch_headers",
            "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])",
        ),
        ("fetch_bodystructure", "FETCH 1:* BODYSTRUCTURE"),
    ];
    for (name, cmd) in fetches {
        let mut samples = Vec::new();
        for _ in 0..plan.iters.max(1) {
            match timed(&mut c, &mut out, name, cmd).await {
                Ok((t, n)) => {
                    if n as u64 != inbox {
                        out.mismatches
                            .push(format!("{name}: {n} FETCH responses for {inbox} messages"));
                    }
                    samples.push(t);
                }
                Err(e) => {
                    out.errors.push(format!("{name}: {e}"));
                    break;
                }
            }
        }
        out.push_first_and_again(name, samples);
    }
    compress_fetch(srv, plan, exp, &mut out).await;

    if out.wedged() {
        return out;
    }
    // 100 whole messages, spread over the mailbox, as 100 pipelined commands.
    let picks: Vec<u64> = (0..100u64.min(inbox))
        .map(|k| 1 + k * inbox / 100.min(inbox).max(1))
        .collect();
    let cmds: Vec<Vec<u8>> = picks
        .iter()
        .map(|s| format!("FETCH {s} BODY.PEEK[]").into_bytes())
        .collect();
    let mut samples = Vec::new();
    for _ in 0..plan.iters.max(1) {
        let t = Instant::now();
        let mut n = 0;
        match c.pipeline(&cmds, |_| n += 1).await {
            Ok(()) => {
                samples.push(t.elapsed().as_secs_f64());
                if n != picks.len() {
                    out.mismatches.push(format!(
                        "fetch_100_full: {n} responses for {} commands",
                        picks.len()
                    ));
                }
            }
            Err(e) => {
                out.errors.push(format!("fetch_100_full: {e}"));
                break;
            }
        }
    }
    out.push("fetch_100_full", Unit::Secs, samples, String::new());

    if out.wedged() {
        return out;
    }
    // SEARCH, timed; hits are checked after the cross-check pass maps UIDs to Message-IDs.
    let mut search_uids: Vec<(String, Vec<u64>)> = Vec::new();
    for (name, cmd) in [
        (
            "search_subject",
            format!("UID SEARCH SUBJECT {SUBJECT_TERM}"),
        ),
        ("search_body", format!("UID SEARCH BODY {BODY_TERM}")),
    ] {
        let mut samples = Vec::new();
        for _ in 0..plan.iters.max(1) {
            let t = Instant::now();
            let mut uids = Vec::new();
            match c
                .run_ok(&cmd, |r| {
                    uids.extend(imap::search_numbers(r).unwrap_or_default())
                })
                .await
            {
                Ok(()) => {
                    samples.push(t.elapsed().as_secs_f64());
                    search_uids.push((cmd.trim_start_matches("UID SEARCH ").to_string(), uids));
                }
                Err(e) => {
                    out.errors.push(format!("{name}: {e}"));
                    break;
                }
            }
        }
        out.push(name, Unit::Secs, samples, String::new());
    }

    if out.wedged() {
        return out;
    }
    // SORT and THREAD (RFC 5256), timed, the first run and again; the answers, turned into
    // Message-IDs after the cross-check pass, are compared between the servers.
    let mut ordered: Vec<(String, String)> = Vec::new();
    for (name, cap, cmd) in ORDERED {
        if !c.has_cap(cap) {
            out.notes.push(format!("{name}: {cap} not offered"));
            continue;
        }
        let mut samples = Vec::new();
        let mut answer = None;
        for _ in 0..plan.iters.max(1) {
            let t = Instant::now();
            let mut got = None;
            match c
                .run_ok(cmd, |r| {
                    if r.starts_with(b"* SORT") || r.starts_with(b"* THREAD") {
                        got = Some(r.to_vec());
                    }
                })
                .await
            {
                Ok(()) => {
                    samples.push(t.elapsed().as_secs_f64());
                    answer = got;
                }
                Err(e) => {
                    out.errors.push(format!("{name}: {e}"));
                    break;
                }
            }
        }
        out.push_first_and_again(name, samples);
        if let Some(a) = answer {
            let text = String::from_utf8_lossy(&a).trim_end().to_string();
            let numbers = text
                .split(|ch: char| !ch.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .count() as u64;
            if numbers != inbox {
                out.mismatches.push(format!(
                    "{name}: {numbers} messages in the answer for {inbox}"
                ));
            }
            ordered.push((name.to_string(), text));
        }
    }

    if out.wedged() {
        return out;
    }
    // Cross-check pass (untimed): everything parsed, keyed by Message-ID.
    let uid_to_id = match cross_check_pass(&mut c, &mut out, exp, srv.kind).await {
        Ok(m) => m,
        Err(e) => {
            out.errors.push(format!("cross-check pass: {e}"));
            HashMap::new()
        }
    };
    // More searches for the cross-check only (untimed); the non-ASCII ones need LITERAL+.
    let mut extra: Vec<(String, Vec<u8>)> = [
        "FLAGGED",
        "UNSEEN",
        "KEYWORD work",
        "FROM juergen",
        "TEXT zqbodytoken",
        "HEADER In-Reply-To \"<1.0.\"",
        "LARGER 40000",
    ]
    .iter()
    .map(|s| (s.to_string(), format!("UID SEARCH {s}").into_bytes()))
    .collect();
    if c.has_cap("LITERAL+") {
        for term in ["München", "Счёт", "Grüße"] {
            let mut cmd =
                format!("UID SEARCH CHARSET UTF-8 SUBJECT {{{}+}}\r\n", term.len()).into_bytes();
            cmd.extend_from_slice(term.as_bytes());
            extra.push((format!("SUBJECT {term}"), cmd));
        }
        let term = "übermorgen";
        let mut cmd = format!("UID SEARCH CHARSET UTF-8 BODY {{{}+}}\r\n", term.len()).into_bytes();
        cmd.extend_from_slice(term.as_bytes());
        extra.push((format!("BODY {term}"), cmd));
    }
    for (name, cmd) in extra {
        let mut uids = Vec::new();
        match c
            .pipeline(&[cmd], |r| {
                uids.extend(imap::search_numbers(r).unwrap_or_default())
            })
            .await
        {
            Ok(()) => search_uids.push((name, uids)),
            Err(e) => out.errors.push(format!("SEARCH {name}: {e}")),
        }
    }
    for (name, uids) in &search_uids {
        let mut ids: Vec<String> = uids
            .iter()
            .map(|u| {
                uid_to_id
                    .get(u)
                    .cloned()
                    .unwrap_or_else(|| format!("<unknown uid {u}>"))
            })
            .collect();
        ids.sort();
        out.answers.search.insert(name.clone(), ids);
    }
    for (name, text) in &ordered {
        out.answers
            .ordered
            .insert(name.clone(), uids_to_ids(text, &uid_to_id));
    }
    for (name, want) in [
        (format!("SUBJECT {SUBJECT_TERM}"), &exp.subject_hits),
        (format!("BODY {BODY_TERM}"), &exp.body_hits),
    ] {
        let mut want = want.clone();
        want.sort();
        match out.answers.search.get(&name) {
            Some(got) if *got == want => {}
            Some(got) => out.mismatches.push(format!(
                "SEARCH {name}: {} hits, generator planted {} (first missing: {:?}, first extra: {:?})",
                got.len(),
                want.len(),
                want.iter().find(|w| !got.contains(w)),
                got.iter().find(|g| !want.contains(g)),
            )),
            None => {}
        }
    }

    if out.wedged() {
        return out;
    }
    // STORE over 1:* (once: a second run would change nothing).
    match timed(
        &mut c,
        &mut out,
        "store_seen_all",
        "UID STORE 1:* +FLAGS.SILENT (\\Seen)",
    )
    .await
    {
        Ok((t, _)) => out.push("store_seen_all", Unit::Secs, vec![t], String::new()),
        Err(e) => out.errors.push(format!("store: {e}")),
    }

    if out.wedged() {
        return out;
    }
    if let Err(e) = append_copy_move(&mut c, plan, &mut out).await {
        out.errors.push(e.to_string());
    }
    if !out.wedged()
        && let Err(e) = append_sync_inbox(srv, plan, exp, &mut out).await
    {
        out.errors.push(format!("append_sync_inbox: {e}"));
    }
    if !out.wedged()
        && let Err(e) = upload(&mut c, plan, &mut out).await
    {
        out.errors.push(format!("upload: {e}"));
    }
    if !out.wedged()
        && let Err(e) = mbsync_pull(srv, plan, &mut out).await
    {
        out.errors.push(format!("mbsync_pull: {e}"));
    }
    c.logout().await;

    // Each phase below opens its own connections; bound each as a whole too.
    let bound = plan.timeout * 2;
    if out.wedged() {
        return out;
    }
    match tokio::time::timeout(bound, parallel_clients(srv, plan, &mut out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("parallel clients: {e}")),
        Err(_) => out
            .errors
            .push(format!("parallel clients: timed out after {bound:?}")),
    }
    if out.wedged() {
        return out;
    }
    pop3_workloads(srv, plan, exp, &mut out).await;
    if out.wedged() {
        return out;
    }
    match tokio::time::timeout(bound, idle_latency(srv, plan, &mut out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("idle latency: {e}")),
        Err(_) => out
            .errors
            .push(format!("idle latency: timed out after {bound:?}")),
    }
    // What the server holds once the work is done and its clients have
    // left: Dovecot's processes ended with their sessions, nestbox keeps
    // recently used folders (and their caches) for a while.
    let (rss, _, procs) = srv.memory_kib();
    out.push(
        "rss_after_workloads",
        Unit::KiB,
        vec![rss as f64],
        format!("{procs} processes"),
    );
    // After the memory reading: nestbox keeps recently used folders in memory, and the
    // resync's 100,000-message folder is not what `rss_after_workloads` is about.
    if !out.wedged() {
        resync_workload(srv, plan, exp, &mut out).await;
    }
    // The same for PREVIEW's copy of INBOX, and NOTIFY, which makes nestbox hold every
    // folder open while it watches them.
    if !out.wedged() {
        preview_workload(srv, plan, exp, &mut out).await;
    }
    if !out.wedged() {
        notify_workload(srv, plan, &mut out).await;
    }
    // Untimed SELECTs before the caller restarts the server: the IDLE phase
    // left 100 deliveries in new/, and `login_select_restart` is to measure
    // opening what is on disk, not catching up. The first moves them to
    // cur/; the second, seconds later, lets each server record directory
    // mtimes old enough to trust (both rescan a directory changed within a
    // timestamp tick of their last look). Until session 7 the idle-memory
    // phase came first and did this; session 7's first two runs had not:
    // Dovecot 682 and 392 ms, nestbox 178 and 226 ms.
    let settled = async {
        for pause in [true, false] {
            let mut c = login(srv, plan).await?;
            select(&mut c, "INBOX").await?;
            c.logout().await;
            if pause {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        Ok::<_, imap::Error>(())
    };
    if let Err(e) = settled.await {
        out.errors.push(format!("select before the restart: {e}"));
    }
    out
}

/// RSS and PSS per idle IDLE connection, on a server the caller has just restarted (and
/// opened INBOX on once, see [`select_after_restart`]): on a server that had done the other
/// workloads, new connections reuse heap the workloads freed, and nestbox showed 0 KiB per
/// connection at 100,000 messages.
pub async fn idle_memory_after_restart(srv: &Server, plan: &Plan, out: &mut Outcome) {
    let bound = plan.timeout * 2;
    match tokio::time::timeout(bound, idle_memory(srv, plan, out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("idle memory: {e}")),
        Err(_) => out
            .errors
            .push(format!("idle memory: timed out after {bound:?}")),
    }
}

/// Fetch ENVELOPE, BODYSTRUCTURE and RFC822.SIZE of everything; fill `out.answers`, check sizes
/// against the generator, and return UID -> Message-ID.
async fn cross_check_pass(
    c: &mut Conn,
    out: &mut Outcome,
    exp: &Expected,
    kind: Kind,
) -> Res<HashMap<u64, String>> {
    let mut map = HashMap::new();
    let mut bad = 0usize;
    let mut flags_full: HashMap<String, Vec<String>> = HashMap::new();
    let answers = &mut out.answers;
    c.run_ok(
        "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)",
        |r| {
            let Some((_, m)) = check::parse_fetch(r) else {
                bad += 1;
                return;
            };
            let (Some(uid), Some(env)) = (
                m.get("UID").and_then(check::Value::as_u64),
                m.get("ENVELOPE"),
            ) else {
                bad += 1;
                return;
            };
            let id = check::envelope_message_id(env)
                .unwrap_or_else(|| format!("<no message-id, uid {uid}>"));
            map.insert(uid, id.clone());
            answers.envelope.insert(id.clone(), env.canon(false));
            if let Some(bs) = m.get("BODYSTRUCTURE") {
                answers
                    .bodystructure
                    .insert(id.clone(), check::canon_bodystructure(bs));
            }
            if let Some(sz) = m.get("RFC822.SIZE").and_then(check::Value::as_u64) {
                answers.size.insert(id.clone(), sz);
            }
            if let Some(f) = m.get("FLAGS") {
                answers
                    .flags
                    .insert(id.clone(), check::flag_list(f, false).join(" "));
                flags_full.insert(id.clone(), check::flag_list(f, true));
            }
            if let Some(t) = m
                .get("INTERNALDATE")
                .and_then(check::Value::as_str)
                .and_then(check::parse_internaldate)
            {
                answers.internaldate.insert(id, t);
            }
        },
    )
    .await?;
    if bad > 0 {
        out.mismatches
            .push(format!("{bad} FETCH responses could not be parsed"));
    }
    // Against the generator: sizes, dates and flags of every INBOX message.
    let (mut wrong, mut first) = (0usize, None);
    for m in &exp.inbox_msgs {
        let want_flags: Vec<String> = corpus::imap_flags(&m.letters, kind == Kind::Nestbox)
            .into_iter()
            .map(String::from)
            .collect();
        let problem = match (
            out.answers.size.get(&m.id),
            out.answers.internaldate.get(&m.id),
            flags_full.get(&m.id),
        ) {
            (None, _, _) => Some(format!("{}: missing", m.id)),
            (Some(s), _, _) if *s != m.vsize => {
                Some(format!("{}: RFC822.SIZE {s}, expected {}", m.id, m.vsize))
            }
            (_, t, _) if t != Some(&(m.time as i64)) => {
                Some(format!("{}: INTERNALDATE {t:?}, expected {}", m.id, m.time))
            }
            (_, _, f) if f != Some(&want_flags) => Some(format!(
                "{}: FLAGS {f:?}, expected {want_flags:?} (letters {:?})",
                m.id, m.letters
            )),
            _ => None,
        };
        if let Some(p) = problem {
            wrong += 1;
            first.get_or_insert(p);
        }
    }
    if let Some(p) = first {
        out.mismatches.push(format!(
            "{wrong} INBOX messages differ from the generator, e.g. {p}"
        ));
    }
    Ok(map)
}

/// STATUS MESSAGES of a mailbox.
pub(crate) async fn status_messages(c: &mut Conn, mailbox: &str) -> Res<u64> {
    let mut n = None;
    c.run_ok(
        &format!("STATUS {} (MESSAGES)", imap::quote(mailbox)),
        |r| {
            let s = String::from_utf8_lossy(r);
            if let Some(p) = s.to_ascii_uppercase().find("MESSAGES ") {
                n = s[p + 9..]
                    .trim_end_matches([')', '\r', '\n'])
                    .split([' ', ')'])
                    .next()
                    .and_then(|x| x.parse().ok());
            }
        },
    )
    .await?;
    n.ok_or_else(|| err!("STATUS {mailbox}: no MESSAGES"))
}

/// Messages `0..n` of the synthetic `folder` ([`corpus::message_bytes`]) with CRLF line ends,
/// as a client sends them; built on all cores before any timing starts.
pub(crate) fn crlf_messages(seed: u64, folder: u64, n: usize) -> Vec<Vec<u8>> {
    let one = |i: usize| {
        let lf = corpus::message_bytes(seed, folder, i);
        let mut crlf = Vec::with_capacity(lf.len() + lf.len() / 40);
        for &b in &lf {
            if b == b'\n' {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        crlf
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, |t| t.get())
        .clamp(1, 8);
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); n];
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (c, part) in out.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                for (j, m) in part.iter_mut().enumerate() {
                    *m = one(c * chunk + j);
                }
            });
        }
    });
    out
}

async fn append_copy_move(c: &mut Conn, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let k = plan.ops;
    for m in ["bench-append", "bench-copy", "bench-move"] {
        c.run_ok(&format!("CREATE {m}"), |_| {}).await?;
    }
    // APPEND: CRLF messages, LITERAL+ pipelined when offered, else one round trip each.
    let msgs = crlf_messages(plan.seed, 7, k);
    let plus = c.has_cap("LITERAL+");
    let t = Instant::now();
    if plus {
        let cmds: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let mut v =
                    format!("APPEND bench-append (\\Seen) {{{}+}}\r\n", m.len()).into_bytes();
                v.extend_from_slice(m);
                v
            })
            .collect();
        c.pipeline(&cmds, |_| {})
            .await
            .map_err(|e| err!("append: {e}"))?;
    } else {
        for m in &msgs {
            c.append_sync("bench-append", "\\Seen", m)
                .await
                .map_err(|e| err!("append: {e}"))?;
        }
    }
    let note = if plus {
        "LITERAL+ pipelined"
    } else {
        "synchronizing literals"
    };
    out.push(
        &format!("append_{k}"),
        Unit::Secs,
        vec![t.elapsed().as_secs_f64()],
        note.into(),
    );
    let n = status_messages(c, "bench-append").await?;
    if n != k as u64 {
        out.mismatches.push(format!(
            "APPEND: bench-append has {n} messages, appended {k}"
        ));
    }

    let t = Instant::now();
    c.run_ok(&format!("COPY 1:{k} bench-copy"), |_| {})
        .await
        .map_err(|e| err!("copy: {e}"))?;
    out.push(
        &format!("copy_{k}"),
        Unit::Secs,
        vec![t.elapsed().as_secs_f64()],
        String::new(),
    );
    let copied = status_messages(c, "bench-copy").await?;
    if copied != k as u64 {
        out.mismatches.push(format!(
            "COPY: bench-copy has {copied} messages, copied {k}"
        ));
    }

    if c.has_cap("MOVE") {
        select(c, "bench-copy").await?;
        let t = Instant::now();
        c.run_ok(&format!("MOVE 1:{k} bench-move"), |_| {})
            .await
            .map_err(|e| err!("move: {e}"))?;
        out.push(
            &format!("move_{k}"),
            Unit::Secs,
            vec![t.elapsed().as_secs_f64()],
            String::new(),
        );
        c.run_ok("UNSELECT", |_| {}).await.ok();
        let moved = status_messages(c, "bench-move").await?;
        let left = status_messages(c, "bench-copy").await?;
        if moved != k as u64 || left != 0 {
            out.mismatches.push(format!(
                "MOVE: bench-move has {moved} messages and bench-copy {left}, after moving {k}"
            ));
        }
    } else {
        out.errors
            .push("move: server does not announce MOVE".into());
    }
    Ok(())
}

/// `append_sync_inbox_K`: K single APPENDs into INBOX, the big folder, one at a time with
/// synchronising literals (`{n}`, wait for `+`, then the literal and CRLF; the tagged OK
/// before the next), as Thunderbird saves to Sent or Drafts: two round trips and the server's
/// fsyncs per message. Reports the total and the median and p99 of each APPEND's wall time
/// (command line written to tagged OK), with every APPEND's time kept under the median's entry.
/// Then the same again with INBOX selected on that connection (`append_sync_inbox_selected_*`):
/// with nothing selected Dovecot opens and syncs the folder for every APPEND (a directory
/// read of the whole INBOX), with it selected it does not, and clients do both.
///
/// INBOX is what the rest of the run checks against the generator: POP3 STAT must give its
/// count and octets, and the IDLE, parallel, restart and memory workloads open it. So the K
/// messages are removed again, untimed, by `UID STORE +FLAGS.SILENT (\Deleted)` and
/// `UID EXPUNGE` of exactly the UIDs their APPENDUIDs named (never a plain EXPUNGE: the corpus
/// has `T`, i.e. `\Deleted`, messages of its own), and STATUS must then give the generator's
/// count. Every later check stays exact and every later workload opens the INBOX it opened
/// before this workload existed; running it last instead would still leave `login_select_restart`
/// and the idle-memory figures measuring a larger INBOX. (The cross-check pass and the two
/// timed searches ran earlier, on the untouched INBOX.) A server without UIDPLUS could not
/// remove them by UID, so there the workload is skipped with a note.
async fn append_sync_inbox(
    srv: &Server,
    plan: &Plan,
    exp: &Expected,
    out: &mut Outcome,
) -> Res<()> {
    let k = plan.ops;
    if k == 0 {
        return Ok(());
    }
    let mut c = login(srv, plan).await?;
    if !c.has_cap("UIDPLUS") {
        out.notes.push(
            "append_sync_inbox: skipped, no UIDPLUS to remove the appended messages by UID".into(),
        );
        c.logout().await;
        return Ok(());
    }
    let msgs = crlf_messages(plan.seed, 9, k);
    let before = status_messages(&mut c, "INBOX").await?;
    let mut uids = Vec::with_capacity(2 * k);
    // Twice: with nothing selected (a client saving into a folder it is not looking at), then
    // with INBOX selected on the same connection (the folder stays open in the session, as
    // in a script that selects and appends). Dovecot syncs the folder per APPEND in the first
    // case; both keep it open in the second.
    for (selected, suffix) in [(false, ""), (true, "_selected")] {
        if selected {
            select(&mut c, "INBOX").await?;
        }
        let mut lat = Vec::with_capacity(k);
        let t = Instant::now();
        for m in &msgs {
            let t1 = Instant::now();
            let line = c.append_sync("INBOX", "\\Seen", m).await?;
            lat.push(t1.elapsed().as_secs_f64() * 1000.0);
            uids.extend(imap::appenduid(&line));
        }
        let total = t.elapsed().as_secs_f64();
        let note = if selected {
            "synchronising literals, one at a time, INBOX selected"
        } else {
            "synchronising literals, one at a time, nothing selected"
        };
        out.push(
            &format!("append_sync_inbox{suffix}_{k}"),
            Unit::Secs,
            vec![total],
            note.into(),
        );
        let median_row = format!("append_sync_inbox{suffix}_median");
        out.push(&median_row, Unit::Millis, vec![median(&lat)], note.into());
        out.push(
            &format!("append_sync_inbox{suffix}_p99"),
            Unit::Millis,
            vec![percentile(&lat, 99.0)],
            note.into(),
        );
        if let Some(m) = out.measures.iter_mut().find(|m| m.name == median_row) {
            m.samples = lat;
        }
        if selected {
            c.run_ok("UNSELECT", |_| {}).await?;
        }
    }
    let k2 = 2 * k;
    let n = status_messages(&mut c, "INBOX").await?;
    if n != before + k2 as u64 {
        out.mismatches.push(format!(
            "append_sync_inbox: INBOX has {n} messages after {k2} APPENDs to {before}"
        ));
    }
    uids.sort_unstable();
    uids.dedup();
    if uids.len() != k2 {
        return Err(err!(
            "{} distinct APPENDUIDs for {k2} APPENDs: the messages stay in INBOX",
            uids.len()
        ));
    }
    select(&mut c, "INBOX").await?;
    let set = imap::uid_set(&uids);
    c.run_ok(
        &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
        |_| {},
    )
    .await?;
    c.run_ok(&format!("UID EXPUNGE {set}"), |_| {}).await?;
    c.run_ok("UNSELECT", |_| {}).await?;
    let after = status_messages(&mut c, "INBOX").await?;
    if after != exp.inbox as u64 {
        out.mismatches.push(format!(
            "append_sync_inbox: INBOX has {after} messages after expunging the {k2} appended, generator wrote {}",
            exp.inbox
        ));
    }
    c.logout().await;
    Ok(())
}

/// `mbsync_pull_N`: isync's `mbsync`, the real client, pulls the N messages `upload_N` left in
/// `bench-upload` into an empty local Maildir: a laptop's first sync of a big folder, every
/// round trip and the server's answers to mbsync's own pipelining included (issue 14: an
/// outside check saw nestbox at 1.1-1.3x Dovecot's wall time for 10,900 messages while using
/// less CPU, i.e. time lost waiting, not working). Cleartext LOGIN on loopback, which both
/// servers allow there. The local Maildir must end with N messages. Skipped with a note when
/// `mbsync` is not installed (Debian package isync).
async fn mbsync_pull(srv: &Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let n = plan.upload;
    if n == 0 {
        return Ok(());
    }
    let Some(mbsync) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("mbsync"))
            .find(|b| b.is_file())
    }) else {
        out.notes
            .push("mbsync_pull: skipped, mbsync is not installed (isync)".into());
        return Ok(());
    };
    let dir = srv.dir.join("mbsync-pull");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("local"))?;
    let rc = dir.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount bench\nHost {host}\nPort {port}\nUser {USER}\nPass {PASS}\n\
             SSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount bench\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel pull\nFar :remote:\nNear :local:\nPatterns bench-upload\nSync Pull\n\
             Create Near\nSyncState *\n",
            host = srv.addr.ip(),
            port = srv.addr.port(),
            USER = crate::servers::USER,
            PASS = crate::servers::PASS,
            local = dir.join("local").display(),
        ),
    )?;
    let bound = plan.timeout;
    let (elapsed, result) = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let r = std::process::Command::new("timeout")
            .arg(bound.as_secs().to_string())
            .arg(&mbsync)
            .arg("-q")
            .arg("-c")
            .arg(&rc)
            .arg("pull")
            .output();
        (t.elapsed().as_secs_f64(), r)
    })
    .await
    .map_err(|e| err!("mbsync task: {e}"))?;
    let output = result.map_err(|e| err!("running mbsync: {e}"))?;
    if !output.status.success() {
        return Err(err!(
            "mbsync exited with {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    out.push(
        &format!("mbsync_pull_{n}"),
        Unit::Secs,
        vec![elapsed],
        "isync mbsync, Sync Pull of bench-upload into an empty Maildir".into(),
    );
    let local = dir.join("local").join("bench-upload");
    let count = ["cur", "new"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(local.join(sub)).ok())
        .map(|d| d.count())
        .sum::<usize>();
    if count != n {
        out.mismatches.push(format!(
            "mbsync_pull: the local Maildir has {count} messages, the server's bench-upload {n}"
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Commands an mbsync-style upload keeps in flight. mbsync pipelines APPENDs but bounds what is
/// outstanding; 32 is in the range it runs at and far from one round trip per message.
const UPLOAD_WINDOW: usize = 32;

/// `upload_N`: N messages into a new folder the way mbsync moves a mailbox in: APPEND with the
/// message's date and `(\Seen)`, LITERAL+ (`{n+}`), at most [`UPLOAD_WINDOW`] commands
/// outstanding, each tagged response read as it comes and the next command sent in its slot.
/// Also reports the time to the completion of the first N/2 and from there to the end: with a
/// cost per APPEND that does not grow with the folder the halves are about equal, a quadratic
/// server's second half is about three times its first (issue 14). Without LITERAL+ it falls
/// back to synchronising literals one at a time, with a note. STATUS checks the count.
async fn upload(c: &mut Conn, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let n = plan.upload;
    if n == 0 {
        return Ok(());
    }
    let folder = "bench-upload";
    c.run_ok(&format!("CREATE {folder}"), |_| {}).await?;
    let msgs = crlf_messages(plan.seed, 10, n);
    let half = n / 2;
    let plus = c.has_cap("LITERAL+");
    let mut at_half = None;
    let t;
    if plus {
        let cmds: Vec<Vec<u8>> = msgs
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let date = corpus::imap_date(corpus::message_time(i));
                let mut v = format!("APPEND {folder} (\\Seen) \"{date}\" {{{}+}}\r\n", m.len())
                    .into_bytes();
                v.extend_from_slice(&m);
                v
            })
            .collect();
        t = Instant::now();
        c.pipeline_window(&cmds, UPLOAD_WINDOW, |done| {
            if done == half {
                at_half = Some(t.elapsed());
            }
        })
        .await?;
    } else {
        out.notes.push(
            "upload: no LITERAL+, so synchronising literals, one round trip per message".into(),
        );
        t = Instant::now();
        for (i, m) in msgs.iter().enumerate() {
            c.append_sync(folder, "\\Seen", m).await?;
            if i + 1 == half {
                at_half = Some(t.elapsed());
            }
        }
    }
    let total = t.elapsed().as_secs_f64();
    let first = at_half.map_or(0.0, |d| d.as_secs_f64());
    let note = if plus {
        format!("LITERAL+, {UPLOAD_WINDOW} commands in flight")
    } else {
        "synchronising literals".to_string()
    };
    out.push(
        &format!("upload_{n}"),
        Unit::Secs,
        vec![total],
        note.clone(),
    );
    out.push(
        &format!("upload_{n}_first_half"),
        Unit::Secs,
        vec![first],
        format!("messages 1-{half}; {note}"),
    );
    out.push(
        &format!("upload_{n}_second_half"),
        Unit::Secs,
        vec![total - first],
        format!("messages {}-{n}; {note}", half + 1),
    );
    let got = status_messages(c, folder).await?;
    if got != n as u64 {
        out.mismatches
            .push(format!("upload: {folder} has {got} messages, uploaded {n}"));
    }
    Ok(())
}

async fn parallel_clients(srv: &Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..plan.parallel {
        let (addr, timeout) = (srv.addr, plan.timeout);
        set.spawn(async move {
            let mut c = Conn::login(addr, timeout, USER, PASS).await?;
            let exists = select(&mut c, "INBOX").await?;
            let mut n = 0u64;
            c.run_ok("UID FETCH 1:* (UID FLAGS RFC822.SIZE)", |_| n += 1)
                .await?;
            c.logout().await;
            Ok::<_, imap::Error>((exists, n))
        });
    }
    let mut errs = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok((e, n))) if e == n => {}
            Ok(Ok((e, n))) => errs.push(format!("EXISTS {e} but {n} FETCH responses")),
            Ok(Err(e)) => errs.push(e.to_string()),
            Err(e) => errs.push(format!("task: {e}")),
        }
    }
    if let Some(e) = errs.first() {
        return Err(err!(
            "{} of {} clients failed, e.g. {e}",
            errs.len(),
            plan.parallel
        ));
    }
    out.push(
        &format!("parallel_{}_select_fetch", plan.parallel),
        Unit::Secs,
        vec![t.elapsed().as_secs_f64()],
        String::new(),
    );
    Ok(())
}

/// Prepare a delivery into INBOX like an MTA: write into tmp/ and fsync. Returns (tmp path,
/// new/ path); the rename that makes it visible is left to the caller, who times from it.
fn prepare_delivery(srv: &Server, seed: u64, i: usize) -> Res<(PathBuf, PathBuf)> {
    prepare_delivery_into(&srv.maildir, seed, 8, i)
}

/// [`prepare_delivery`] into the Maildir folder `dir` (INBOX's root or a `.name` folder),
/// message `i` of the synthetic folder `source` ([`corpus::message_bytes`]). File names are
/// unique within a folder, as an MTA's are.
pub(crate) fn prepare_delivery_into(
    dir: &std::path::Path,
    seed: u64,
    source: u64,
    i: usize,
) -> Res<(PathBuf, PathBuf)> {
    let msg = corpus::message_bytes(seed, source, i);
    let name = format!(
        "{}.M{}P{}Q{i}.bench-mta,S={}",
        1_800_000_000 + i,
        i * 7 % 1_000_000,
        std::process::id(),
        msg.len()
    );
    let tmp = dir.join("tmp").join(&name);
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&msg)?;
    f.sync_all()?;
    Ok((tmp, dir.join("new").join(&name)))
}

async fn idle_latency(srv: &Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let mut c = login(srv, plan).await?;
    let mut exists = select(&mut c, "INBOX").await?;
    let tag = c.idle().await?;
    let mut lat = Vec::new();
    let mut timeouts = 0;
    for i in 0..plan.idle_deliveries {
        // Let the previous notification settle so each delivery is a separate event.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (tmp, new) = prepare_delivery(srv, plan.seed, i)?;
        let t = Instant::now();
        fs::rename(&tmp, &new)?;
        exists += 1;
        if c.wait_exists(exists, plan.idle_wait).await? {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        } else {
            timeouts += 1;
            lat.push(plan.idle_wait.as_secs_f64() * 1000.0);
        }
    }
    c.done(&tag).await?;
    c.logout().await;
    let note = if timeouts > 0 {
        format!(
            "{timeouts} of {} deliveries not seen within {:?} (counted as that)",
            plan.idle_deliveries, plan.idle_wait
        )
    } else {
        String::new()
    };
    out.push(
        "idle_push_median",
        Unit::Millis,
        vec![median(&lat)],
        note.clone(),
    );
    out.push(
        "idle_push_p99",
        Unit::Millis,
        vec![percentile(&lat, 99.0)],
        note.clone(),
    );
    let max = lat.iter().copied().fold(0.0, f64::max);
    out.push("idle_push_max", Unit::Millis, vec![max], note);
    // Keep every delivery's latency in the JSON, under the median's entry.
    if let Some(m) = out
        .measures
        .iter_mut()
        .find(|m| m.name == "idle_push_median")
    {
        m.samples = lat;
    }
    Ok(())
}

async fn idle_memory(srv: &Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    // One IDLE session before the baseline: whatever the server keeps once
    // per open mailbox (nestbox's folder state and cache, Dovecot's mapped
    // indexes in the first process) is then in both readings, and the
    // difference is what each further connection costs.
    let mut first = Conn::login(srv.addr, plan.timeout, USER, PASS).await?;
    select(&mut first, "INBOX").await?;
    first.idle().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, pss0, procs0) = srv.memory_kib();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(50));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..plan.idle_conns {
        let (addr, timeout, sem) = (srv.addr, plan.timeout, sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| err!("{e}"))?;
            let mut c = Conn::login(addr, timeout, USER, PASS).await?;
            select(&mut c, "INBOX").await?;
            c.idle().await?;
            Ok::<_, imap::Error>(c)
        });
    }
    let mut conns = Vec::with_capacity(plan.idle_conns);
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
    let n = conns.len().max(1) as f64;
    drop(conns);
    drop(first);
    if let Some(e) = errs.first() {
        return Err(err!(
            "{} of {} idle connections failed, e.g. {e}",
            errs.len(),
            plan.idle_conns
        ));
    }
    let note = format!(
        "{} connections after a first one; {procs0} -> {procs1} processes; RSS {rss0} -> {rss1} KiB; PSS {pss0} -> {pss1} KiB",
        plan.idle_conns
    );
    out.push(
        "rss_per_idle_conn",
        Unit::KiB,
        vec![(rss1.saturating_sub(rss0)) as f64 / n],
        note.clone(),
    );
    out.push(
        "pss_per_idle_conn",
        Unit::KiB,
        vec![(pss1.saturating_sub(pss0)) as f64 / n],
        note,
    );
    out.push(
        "rss_total_with_idle",
        Unit::KiB,
        vec![rss1 as f64],
        String::new(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let table: &[(&[f64], f64, f64)] = &[
            (&[], 50.0, 0.0),
            (&[3.0], 99.0, 3.0),
            (&[5.0, 1.0, 3.0], 50.0, 3.0),
            (&[1.0, 2.0, 3.0, 4.0], 50.0, 2.0),
            (&[1.0, 2.0, 3.0, 4.0], 99.0, 4.0),
        ];
        for (v, p, want) in table {
            assert_eq!(percentile(v, *p), *want, "{v:?} p{p}");
        }
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 99.0), 99.0);
        assert_eq!(median(&hundred), 50.0);
    }

    #[test]
    fn sort_and_thread_answers_in_message_ids() {
        let ids: HashMap<u64, String> = [(1, "<a@x>"), (12, "<b@x>"), (3, "<c@x>")]
            .into_iter()
            .map(|(u, id)| (u, id.to_string()))
            .collect();
        assert_eq!(
            uids_to_ids("* THREAD ((12)(3))(1 12)", &ids),
            "* THREAD ((<b@x>)(<c@x>))(<a@x> <b@x>)"
        );
        assert_eq!(
            uids_to_ids("* SORT 3 1 7", &ids),
            "* SORT <c@x> <a@x> <unknown uid 7>"
        );
    }
}
