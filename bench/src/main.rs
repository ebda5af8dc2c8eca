//! `nestbox-bench`: the side-by-side benchmark of nestbox against Dovecot (issue 4).
//!
//! Owns the command line, the order of a run (generate once, then for each server: fresh copy,
//! start, workloads, stop), and the report: a table with both figures and the ratio
//! candidate/baseline per workload, JSON for machines, the ratio chart (SVG, `chart.rs`), and
//! the correctness cross-check.
//! Servers run one after the other, never at once, so they do not compete for the CPUs.
//!
//! It never decides pass/fail on a timing: `--check` fails only on wrong answers (counts,
//! sizes, search hits, cross-check differences) and on workloads that did not complete.

mod chart;
mod check;
mod compress;
mod corpus;
mod imap;
mod notify;
mod pop3;
mod preview;
mod quota;
mod resync;
mod servers;
mod tls;
mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::corpus::json_str;
use crate::servers::{Kind, Server};
use crate::workload::{Only, Outcome, Plan};

#[derive(Parser, Debug)]
#[command(
    name = "nestbox-bench",
    about = "Benchmark nestbox side by side with Dovecot"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write the deterministic Maildir++ corpus to DIR/Maildir and DIR/expected.json.
    Generate {
        /// Messages in INBOX (other folders get 5-10 % of it).
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Seed: the same seed and count give the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate, start each server on its own copy, run the workloads, report.
    Run(Box<RunArgs>),
    /// Draw the ratio chart (SVG) from results JSON written by `run --json`, without running
    /// anything: one series per file (a mailbox size), workloads in the files' order.
    Chart {
        /// Where to write the SVG.
        #[arg(long, default_value = "bench/ratios.svg")]
        out: PathBuf,
        /// Results JSON files, e.g. a 10k and a 100k run.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Messages in INBOX (default 10,000; 300 with --quick).
    #[arg(long)]
    messages: Option<usize>,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Small sizes and one iteration, for CI: asserts completion and the cross-check.
    #[arg(long)]
    quick: bool,
    /// Targets in order, the first is the baseline of the ratios: dovecot, nestbox
    /// (a name may repeat: `dovecot,dovecot` is a dry run of the ratio code; the
    /// second is labelled `dovecot-2`).
    #[arg(long, default_value = "dovecot,nestbox", value_delimiter = ',')]
    servers: Vec<String>,
    /// Fail (exit non-zero) when a listed server is skipped, nestbox included: for CI once
    /// nestbox serves.
    #[arg(long)]
    require_all: bool,
    /// Write results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the ratio chart (SVG) to this file (default: beside --json as FILE.svg, else
    /// `ratios.svg` in the work directory). It is drawn and checked whenever a ratio exists;
    /// with --check a malformed chart or a missing mark fails the run.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Exit non-zero on wrong answers, cross-check differences or failed workloads.
    #[arg(long)]
    check: bool,
    /// Work directory (corpus and server copies); default: a new directory under $TMPDIR.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Keep the work directory (server logs, configs, mail copies) afterwards.
    #[arg(long)]
    keep: bool,
    /// The nestbox binary.
    #[arg(long, default_value = "target/release/nestbox")]
    nestbox_bin: PathBuf,
    /// Timed repetitions of repeatable workloads (default 3; 1 with --quick).
    #[arg(long)]
    iters: Option<usize>,
    /// Idle IDLE connections for the memory test (default 1000; 50 with --quick).
    #[arg(long)]
    idle_conns: Option<usize>,
    /// Idle connections over TLS for the `rss_per_idle_tls_conn_N` rows, one measurement per
    /// count, each on a freshly restarted server (default 1000,10000; 20 with --quick; 0
    /// skips them).
    #[arg(long, value_delimiter = ',')]
    idle_tls_conns: Option<Vec<usize>>,
    /// IDLE deliveries for the latency test (default 100; 5 with --quick).
    #[arg(long)]
    idle_deliveries: Option<usize>,
    /// Messages for APPEND, COPY and MOVE and for the single APPENDs into INBOX (default
    /// 1000; 100 with --quick; at most --messages).
    #[arg(long)]
    ops: Option<usize>,
    /// Messages for the mbsync-style upload into a new folder (default 10000; 300 with
    /// --quick; 0 skips it).
    #[arg(long)]
    upload: Option<usize>,
    /// Dovecot's `mail_fsync`: `always` (the default here: it fsyncs its index files too,
    /// as strict as it gets) or `optimized` (Dovecot's own default: message files, their
    /// directories and `dovecot-uidlist` are still fsynced before the OK, as nestbox does;
    /// only Dovecot's index log is not). Changes only the write workloads.
    #[arg(long, value_enum, default_value_t = servers::DovecotFsync::Always)]
    dovecot_fsync: servers::DovecotFsync,
    /// Parallel clients (default 50; 10 with --quick).
    #[arg(long)]
    parallel: Option<usize>,
    /// Run only these groups of workloads (`pop3`, `resync`, `preview`, `notify`,
    /// `compress`, `quota`; several separated by commas run in that order), for quick turns;
    /// published figures come from whole runs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Only>,
    /// Per-read timeout in seconds (default 300; 30 with --quick). A timeout ends that
    /// server's run: a server that stops answering is not waited out workload after workload.
    #[arg(long)]
    timeout: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Generate {
            messages,
            seed,
            out,
        } => {
            let t = Instant::now();
            match corpus::generate(&out, messages, seed) {
                Ok(exp) => {
                    println!(
                        "wrote {} messages ({} in INBOX, {:.1} MB) to {} in {:.1} s; expectations in {}",
                        exp.inbox + exp.folders.iter().map(|f| f.1).sum::<usize>(),
                        exp.inbox,
                        exp.bytes as f64 / 1e6,
                        out.join("Maildir").display(),
                        t.elapsed().as_secs_f64(),
                        out.join("expected.json").display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("generate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run(a) => run(*a),
        Cmd::Chart { out, files } => chart_only(&out, &files),
    }
}

/// `nestbox-bench chart`: the chart of earlier runs, from their JSON.
fn chart_only(out: &std::path::Path, files: &[PathBuf]) -> ExitCode {
    let mut series = Vec::new();
    let mut from = Vec::new();
    let mut dovecot = None;
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        };
        match chart::from_json(&text) {
            Ok(s) => series.extend(s),
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        }
        if dovecot.is_none() {
            dovecot = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["machine"]["dovecot"].as_str().map(str::to_string));
        }
        from.push(f.file_name().map_or_else(
            || f.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ));
    }
    let mut subtitle = format!("bench/run results {}", from.join(", "));
    if let Some(d) = dovecot {
        let _ = write!(subtitle, "; Dovecot {d}");
    }
    match write_chart(out, &series, &subtitle) {
        Ok(()) => {
            println!(
                "chart written to {} ({} series)",
                out.display(),
                series.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Draws, writes and checks the chart.
fn write_chart(
    path: &std::path::Path,
    series: &[chart::Series],
    subtitle: &str,
) -> Result<(), String> {
    let svg = chart::render(series, subtitle)?;
    std::fs::write(path, &svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
    chart::verify(&svg, series)
}

/// Facts about the machine for the report: nproc, RAM, kernel, Dovecot version.
fn machine() -> Vec<(&'static str, String)> {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        })
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("?".into(), |k| {
            format!("{:.1} GiB", k as f64 / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    vec![
        ("nproc", nproc.to_string()),
        ("cpu", cpu),
        ("ram", mem),
        ("kernel", kernel),
        (
            "dovecot",
            servers::dovecot_version().unwrap_or_else(|| "not installed".into()),
        ),
    ]
}

fn run(a: RunArgs) -> ExitCode {
    let q = a.quick;
    let messages = a.messages.unwrap_or(if q { 300 } else { 10_000 });
    let plan = Plan {
        seed: a.seed,
        iters: a.iters.unwrap_or(if q { 1 } else { 3 }),
        ops: a.ops.unwrap_or(if q { 100 } else { 1000 }).min(messages),
        upload: a.upload.unwrap_or(if q { 300 } else { 10_000 }),
        idle_deliveries: a.idle_deliveries.unwrap_or(if q { 5 } else { 100 }),
        idle_wait: Duration::from_secs(if q { 5 } else { 10 }),
        idle_conns: a.idle_conns.unwrap_or(if q { 50 } else { 1000 }),
        idle_tls_conns: a
            .idle_tls_conns
            .clone()
            .unwrap_or_else(|| if q { vec![20] } else { vec![1000, 10_000] })
            .into_iter()
            .filter(|&n| n > 0)
            .collect(),
        parallel: a.parallel.unwrap_or(if q { 10 } else { 50 }),
        timeout: Duration::from_secs(a.timeout.unwrap_or(if q { 30 } else { 300 })),
        // Past nestbox's 5 s before a quiet connection's deflater goes, and (whole runs) its
        // 30 s memory sweep.
        deflate_quiet: Duration::from_secs(if q { 6 } else { 40 }),
        only: a.only,
    };
    let nofile = servers::raise_nofile();
    let most = plan
        .idle_tls_conns
        .iter()
        .copied()
        .fold(plan.idle_conns, usize::max);
    // nestbox's front holds two descriptors per TLS connection after login.
    if (nofile as usize) < 2 * most + 200 {
        eprintln!("warning: RLIMIT_NOFILE is {nofile}; {most} idle connections may fail");
    }
    let mach = machine();
    for (k, v) in &mach {
        println!("{k:>8}: {v}");
    }
    let (work, temp) = match &a.work {
        Some(w) => (w.clone(), false),
        None => (
            std::env::temp_dir().join(format!("nestbox-bench-{}", std::process::id())),
            true,
        ),
    };
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("work dir {}: {e}", work.display());
        return ExitCode::FAILURE;
    }
    let t = Instant::now();
    let exp = match corpus::generate(&work.join("corpus"), messages, a.seed) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("generate: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "corpus: {messages} messages in INBOX, {:.1} MB in all, generated in {:.1} s (seed {})",
        exp.bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        a.seed
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mail = work.join("corpus").join("Maildir");
    let mut results: Vec<(String, Outcome)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut fatal = false;
    for (i, name) in a.servers.iter().enumerate() {
        let label = if a.servers[..i].contains(name) {
            format!("{name}-{}", i + 1)
        } else {
            name.clone()
        };
        let started = match name.as_str() {
            "dovecot" => Server::start_dovecot(&label, &mail, &work, a.dovecot_fsync),
            "nestbox" => Server::start_nestbox(&label, &a.nestbox_bin, &mail, &work),
            other => {
                eprintln!("unknown server {other:?} (known: dovecot, nestbox)");
                return ExitCode::FAILURE;
            }
        };
        let mut srv = match started {
            Ok(s) => s,
            Err(e) => {
                // nestbox is optional until it exists; Dovecot is the baseline and must run.
                println!("skipping {label}: {e}");
                skipped.push(format!("{label}: {e}"));
                if name == "dovecot" {
                    fatal = true;
                }
                continue;
            }
        };
        println!(
            "running workloads against {label} on {} (pid {:?})",
            srv.addr,
            srv.pid()
        );
        let t = Instant::now();
        let mut out = rt.block_on(workload::run_all(&srv, &plan, &exp));
        if let Some(st) = srv.exited() {
            out.errors
                .push(format!("the server exited during the run ({st})"));
        }
        // Last, as it restarts the server: LOGIN+SELECT with only what is on disk, then the
        // memory of idle connections on a heap the other workloads never touched.
        if out.errors.is_empty() {
            match srv.restart() {
                Ok(()) => rt.block_on(async {
                    workload::select_after_restart(&srv, &plan, &mut out).await;
                    if !out.wedged() {
                        workload::idle_memory_after_restart(&srv, &plan, &mut out).await;
                    }
                }),
                Err(e) => out.errors.push(format!("restart: {e}")),
            }
        }
        // Idle connections over TLS, each count on a server restarted again, so that they
        // do not reuse memory the plaintext ones (or a smaller count) freed.
        for &n in &plan.idle_tls_conns {
            if !out.errors.is_empty() {
                break;
            }
            if let Some(why) = tls::too_big(&out, n) {
                out.notes.push(why);
                continue;
            }
            match srv.restart() {
                Ok(()) => rt.block_on(tls::idle_memory_bounded(&srv, &plan, n, &mut out)),
                Err(e) => out.errors.push(format!("restart: {e}")),
            }
        }
        // Compressed connections' memory, on a server restarted again for the same reason.
        if out.errors.is_empty() && plan.wants(Only::Compress) {
            match srv.restart() {
                Ok(()) => {
                    let bound = plan.timeout * 2 + plan.deflate_quiet;
                    let r = rt.block_on(async {
                        tokio::time::timeout(bound, compress::memory_rows(&srv, &plan, &mut out))
                            .await
                    });
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => out.errors.push(format!("compressed memory: {e}")),
                        Err(_) => out
                            .errors
                            .push(format!("compressed memory: timed out after {bound:?}")),
                    }
                }
                Err(e) => out.errors.push(format!("restart: {e}")),
            }
        }
        // Last: APPEND with the quota off and on, which restarts the server for each.
        if out.errors.is_empty()
            && plan.wants(Only::Quota)
            && let Err(e) = quota::run(&rt, &mut srv, &plan, &mut out)
        {
            out.errors.push(format!("append quota: {e}"));
        }
        println!("  {label}: done in {:.1} s", t.elapsed().as_secs_f64());
        for e in &out.errors {
            println!("  {label}: FAILED {e}");
        }
        if !out.errors.is_empty() {
            println!("  {label}: last log lines:\n{}", srv.log_tail());
        }
        if let Some((w, wall, cpu)) = out
            .client_cpu
            .iter()
            .filter(|(_, wall, _)| *wall > 0.0)
            .max_by(|a, b| (a.2 / a.1).total_cmp(&(b.2 / b.1)))
        {
            println!(
                "  {label}: client CPU at most {:.0} % of wall time ({w}: {:.1} ms of {:.1} ms)",
                cpu / wall * 100.0,
                cpu * 1000.0,
                wall * 1000.0
            );
        }
        for n in &out.notes {
            println!("  {label}: note: {n}");
        }
        for m in &out.mismatches {
            println!("  {label}: WRONG {m}");
        }
        srv.stop_and_clean(a.keep);
        if srv.kind == Kind::Nestbox && out.measures.is_empty() && !out.errors.is_empty() {
            skipped.push(format!("{label}: failed before measuring"));
        }
        results.push((label, out));
    }

    let mut diffs = Vec::new();
    let mut compared = Vec::new();
    if results.len() >= 2 {
        let (an, aa) = (&results[0].0, &results[0].1.answers);
        for (bn, bo) in &results[1..] {
            // A server that failed before answering already counts as failed; comparing
            // against nothing would only repeat that 300 times.
            if aa.envelope.is_empty() || bo.answers.envelope.is_empty() {
                let empty = if aa.envelope.is_empty() { an } else { bn };
                println!("cross-check {an} vs {bn}: skipped, {empty} gave no answers to compare");
                continue;
            }
            diffs.extend(check::compare(an, aa, bn, &bo.answers, 5));
            compared.push(format!("{an} and {bn}"));
        }
    }
    println!("\n{}", table(&results));
    if let Some((an, a)) = results.first() {
        for (bn, b) in &results[1..] {
            if let Some(s) = preview::agreement(an, &a.answers.preview, bn, &b.answers.preview) {
                println!("{s}");
            }
        }
    }
    if !compared.is_empty() {
        if diffs.is_empty() {
            println!(
                "cross-check: {} agree on ENVELOPE, BODYSTRUCTURE, RFC822.SIZE, FLAGS, INTERNALDATE, SEARCH, SORT and THREAD",
                compared.join(", ")
            );
        } else {
            println!("cross-check: {} differences:", diffs.len());
            for d in &diffs {
                println!("  {d}");
            }
        }
    }
    let mut chart_failed = false;
    let series = chart::from_outcomes(messages, &results);
    if series.is_empty() {
        println!("chart: no ratios to draw");
    } else {
        let path = match (&a.chart, &a.json) {
            (Some(c), _) => c.clone(),
            (None, Some(j)) => j.with_extension("svg"),
            (None, None) => work.join("ratios.svg"),
        };
        let dovecot = mach
            .iter()
            .find(|(k, _)| *k == "dovecot")
            .map_or("", |(_, v)| v.as_str());
        let subtitle = format!(
            "bench/run{}, seed {}; Dovecot {dovecot}",
            if q {
                " --quick (not figures: CI's completion check)"
            } else {
                ""
            },
            a.seed
        );
        match write_chart(&path, &series, &subtitle) {
            Ok(()) => println!(
                "chart written to {} and checked ({} marks)",
                path.display(),
                series.iter().map(|s| s.points.len()).sum::<usize>()
            ),
            Err(e) => {
                println!("chart: FAILED {e}");
                chart_failed = true;
            }
        }
    }
    if let Some(path) = &a.json {
        let j = json(&mach, messages, &plan, &exp, &results, &diffs, &skipped);
        if let Err(e) = std::fs::write(path, j) {
            eprintln!("writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("JSON written to {}", path.display());
    }
    if temp && !a.keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("work directory kept: {}", work.display());
    }
    let wrong: usize = results
        .iter()
        .map(|(_, o)| o.errors.len() + o.mismatches.len())
        .sum();
    if a.require_all && !skipped.is_empty() {
        println!(
            "check: FAILED (--require-all and skipped: {})",
            skipped.join("; ")
        );
        return ExitCode::FAILURE;
    }
    if fatal || (a.check && (wrong > 0 || !diffs.is_empty() || chart_failed)) {
        println!(
            "check: FAILED ({wrong} failed or wrong workloads, {} cross-check differences{})",
            diffs.len(),
            if chart_failed { ", the chart" } else { "" }
        );
        return ExitCode::FAILURE;
    }
    if a.check {
        println!("check: ok");
    }
    ExitCode::SUCCESS
}

/// The ratio candidate/baseline of one workload, when both measured it.
fn ratio(base: &Outcome, cand: &Outcome, name: &str) -> Option<f64> {
    let b = base.measures.iter().find(|m| m.name == name)?.value;
    let c = cand.measures.iter().find(|m| m.name == name)?.value;
    (b > 0.0).then(|| c / b)
}

fn fmt_val(v: f64, unit: workload::Unit) -> String {
    match unit {
        workload::Unit::Secs if v < 1.0 => format!("{:.1} ms", v * 1000.0),
        workload::Unit::Secs => format!("{v:.3} s"),
        workload::Unit::Millis => format!("{v:.1} ms"),
        workload::Unit::Micros => format!("{v:.1} us"),
        workload::Unit::KiB => format!("{v:.0} KiB"),
        workload::Unit::Bytes => format!("{v:.0} B"),
    }
}

/// Workload | one column per server | ratio of each later server to the first.
fn table(r: &[(String, Outcome)]) -> String {
    let Some((_, base)) = r.first() else {
        return "no results".into();
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head = vec!["workload".to_string()];
    head.extend(r.iter().map(|(n, _)| n.clone()));
    for (n, _) in &r[1..] {
        head.push(format!("{n}/{}", r[0].0));
    }
    rows.push(head);
    let mut names: Vec<(String, workload::Unit)> = Vec::new();
    for (_, o) in r {
        for m in &o.measures {
            if !names.iter().any(|(n, _)| *n == m.name) {
                names.push((m.name.clone(), m.unit));
            }
        }
    }
    for (name, unit) in &names {
        let mut row = vec![name.clone()];
        for (_, o) in r {
            row.push(
                o.measures
                    .iter()
                    .find(|m| m.name == *name)
                    .map_or("-".into(), |m| fmt_val(m.value, *unit)),
            );
        }
        for (_, o) in &r[1..] {
            row.push(ratio(base, o, name).map_or("-".into(), |x| format!("{x:.2}")));
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for (ri, row) in rows.iter().enumerate() {
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(s, "{cell:<w$}", w = widths[i]);
            } else {
                let _ = write!(s, "  {cell:>w$}", w = widths[i]);
            }
        }
        s.push('\n');
        if ri == 0 {
            s.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            s.push('\n');
        }
    }
    s
}

fn json(
    mach: &[(&str, String)],
    messages: usize,
    plan: &Plan,
    exp: &corpus::Expected,
    r: &[(String, Outcome)],
    diffs: &[String],
    skipped: &[String],
) -> String {
    let num = |x: f64| {
        if x.is_finite() {
            format!("{x:.6}")
        } else {
            "null".into()
        }
    };
    let mut s = String::from("{\n");
    let m: Vec<String> = mach
        .iter()
        .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
        .collect();
    let _ = writeln!(s, "  \"machine\": {{{}}},", m.join(","));
    let _ = writeln!(
        s,
        "  \"corpus\": {{\"messages\":{messages},\"seed\":{},\"bytes\":{},\"subject_hits\":{},\"body_hits\":{}}},",
        plan.seed,
        exp.bytes,
        exp.subject_hits.len(),
        exp.body_hits.len()
    );
    let _ = writeln!(
        s,
        "  \"plan\": {{\"iters\":{},\"ops\":{},\"upload\":{},\"idle_deliveries\":{},\"idle_conns\":{},\"idle_tls_conns\":{:?},\"parallel\":{},\"only\":[{}]}},",
        plan.iters,
        plan.ops,
        plan.upload,
        plan.idle_deliveries,
        plan.idle_conns,
        plan.idle_tls_conns,
        plan.parallel,
        plan.only
            .iter()
            .map(|o| json_str(&format!("{o:?}").to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(",")
    );
    s.push_str("  \"servers\": [\n");
    for (i, (name, o)) in r.iter().enumerate() {
        let ms: Vec<String> = o
            .measures
            .iter()
            .map(|m| {
                format!(
                    "{{\"name\":{},\"unit\":{},\"value\":{},\"samples\":[{}],\"note\":{}}}",
                    json_str(&m.name),
                    json_str(m.unit.name()),
                    num(m.value),
                    m.samples
                        .iter()
                        .map(|x| num(*x))
                        .collect::<Vec<_>>()
                        .join(","),
                    json_str(&m.note)
                )
            })
            .collect();
        let list = |v: &[String]| v.iter().map(|x| json_str(x)).collect::<Vec<_>>().join(",");
        let _ = write!(
            s,
            "    {{\"label\":{},\"measures\":[\n      {}\n    ],\"errors\":[{}],\"mismatches\":[{}],\"notes\":[{}]}}",
            json_str(name),
            ms.join(",\n      "),
            list(&o.errors),
            list(&o.mismatches),
            list(&o.notes)
        );
        s.push_str(if i + 1 < r.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ],\n  \"ratios\": {");
    if let Some((bn, base)) = r.first() {
        let mut first = true;
        for (cn, c) in &r[1..] {
            for m in &c.measures {
                if let Some(x) = ratio(base, c, &m.name) {
                    let key = format!("{} ({cn}/{bn})", m.name);
                    let _ = write!(
                        s,
                        "{}\n    {}: {}",
                        if first { "" } else { "," },
                        json_str(&key),
                        num(x)
                    );
                    first = false;
                }
            }
        }
    }
    s.push_str("\n  },\n");
    let _ = writeln!(
        s,
        "  \"cross_check_differences\": [{}],",
        diffs
            .iter()
            .map(|d| json_str(d))
            .collect::<Vec<_>>()
            .join(",")
    );
    let _ = writeln!(
        s,
        "  \"skipped\": [{}]",
        skipped
            .iter()
            .map(|d| json_str(d))
            .collect::<Vec<_>>()
            .join(",")
    );
    s.push_str("}\n");
    s
}
