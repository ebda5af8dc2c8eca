//! The QRESYNC resync of issue 18: a client that last saw a big folder at some modseq comes
//! back after 100 changes made elsewhere and is told only those (RFC 7162 §3.2).
//!
//! Owns the folder it works on, `bench-resync`: a `COPY` of the generator's INBOX messages,
//! made untimed at the start and deleted at the end. INBOX is only read (the 100 deliveries of
//! the IDLE workload, if they came first, sit above the copied `1:N`), so no other workload's
//! folder, count or check changes. It runs after the memory reading of `rss_after_workloads`,
//! so a server that keeps recently used folders in memory is not charged for this one there.
//!
//! Per iteration (`--iters`, each needing fresh changes since the modseq the previous one
//! learned):
//! 1. Another session, the "other device", selected on the folder throughout, makes
//!    [`FLAG_CHANGES`] `\Flagged` toggles (`UID STORE +FLAGS.SILENT` or `-FLAGS.SILENT`, so each
//!    really changes the message and its modseq), [`EXPUNGES`] expunges (`UID STORE
//!    +FLAGS.SILENT (\Deleted)` then `UID EXPUNGE` of exactly those UIDs: the corpus has
//!    `\Deleted` messages of its own) on UIDs spread over the folder, and [`APPENDS`] APPENDs.
//! 2. A new connection logs in (untimed: login is what `login_select_*` measure, and its cost
//!    does not depend on what changed) and runs, one at a time as a client reconnecting does,
//!    `ENABLE QRESYNC`, `SELECT bench-resync (QRESYNC (uidvalidity modseq))` and
//!    `UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq VANISHED)`. Timed from the first byte written
//!    to the third tagged OK; the bytes the server sent for the three are counted. Responses are
//!    only copied while timing and parsed afterwards.
//!
//! The answer is checked every time (`--check` makes a difference a failure): the union of the
//! VANISHED UIDs of SELECT and UID FETCH (a server may tell them in either, always as
//! `VANISHED (EARLIER)`) holds every UID expunged since the modseq and no UID still in the
//! folder; UIDs expunged before the modseq are allowed (§3.2.10: a client ignores UIDs it does
//! not know; a server without a long enough expunge memory sends every gap) and counted in the
//! note, since they cost bytes. The FETCHed UIDs are exactly the toggled and appended ones,
//! UID FETCH's alone included (CHANGEDSINCE is a complete answer by itself), each with the
//! `\Flagged` state the harness set (appended ones `\Seen`) and a MODSEQ above the old one;
//! UIDVALIDITY is unchanged and HIGHESTMODSEQ has grown.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::check::{self, Value};
use crate::corpus::Expected;
use crate::err;
use crate::imap::{self, Conn, Res};
use crate::servers::Server;
use crate::workload::{self, Outcome, Plan, Unit, cpu_secs, median};

/// The folder the workload builds, changes and deletes.
pub const FOLDER: &str = "bench-resync";
/// `\Flagged` toggles per iteration.
pub const FLAG_CHANGES: usize = 60;
/// Expunges per iteration.
pub const EXPUNGES: usize = 20;
/// APPENDs per iteration.
pub const APPENDS: usize = 20;
/// Synthetic folder number of the appended messages ([`crate::corpus::message_bytes`]).
const APPEND_SOURCE: u64 = 11;

/// What the harness knows the folder holds: UID -> whether it is `\Flagged`.
type Model = BTreeMap<u64, bool>;

/// One iteration's changes.
#[derive(Debug, Default)]
struct Changes {
    /// Toggled UIDs with their new `\Flagged` state.
    flagged: BTreeMap<u64, bool>,
    expunged: BTreeSet<u64>,
    appended: BTreeSet<u64>,
}

/// What FETCH said about one message.
#[derive(Debug)]
struct Fetched {
    flags: Vec<String>,
    modseq: Option<u64>,
}

/// What one command of the resync answered.
#[derive(Debug, Default)]
struct Part {
    vanished: BTreeSet<u64>,
    /// VANISHED lines without `(EARLIER)`: live expunge news, not an answer to the resync.
    vanished_live: usize,
    fetched: BTreeMap<u64, Fetched>,
    /// Untagged responses that could not be read (a FETCH without UID, a bad VANISHED).
    unreadable: usize,
    highestmodseq: Option<u64>,
    uidvalidity: Option<u64>,
    nomodseq: bool,
    enabled_qresync: bool,
}

fn parse(responses: &[Vec<u8>]) -> Part {
    let mut p = Part::default();
    for r in responses {
        if let Some(n) = imap::code_number(r, "HIGHESTMODSEQ") {
            p.highestmodseq = Some(n);
        }
        if let Some(n) = imap::code_number(r, "UIDVALIDITY") {
            p.uidvalidity = Some(n);
        }
        let up = String::from_utf8_lossy(r).to_ascii_uppercase();
        if up.contains("[NOMODSEQ]") {
            p.nomodseq = true;
        }
        if up.starts_with("* ENABLED") && up.split_ascii_whitespace().any(|w| w == "QRESYNC") {
            p.enabled_qresync = true;
        }
        if up.starts_with("* VANISHED") {
            match imap::vanished(r) {
                Some((earlier, uids)) => {
                    if !earlier {
                        p.vanished_live += 1;
                    }
                    p.vanished.extend(uids);
                }
                None => p.unreadable += 1,
            }
        } else if let Some((_, m)) = check::parse_fetch(r) {
            let Some(uid) = m.get("UID").and_then(Value::as_u64) else {
                p.unreadable += 1;
                continue;
            };
            let modseq = match m.get("MODSEQ") {
                Some(Value::List(v)) => v.first().and_then(Value::as_u64),
                _ => None,
            };
            let flags = m
                .get("FLAGS")
                .map(|f| check::flag_list(f, true))
                .unwrap_or_default();
            p.fetched.insert(uid, Fetched { flags, modseq });
        }
    }
    p
}

/// `k` distinct indices into `0..len`, one in each of `k` equal stretches, at an offset that
/// moves with `iter` so each iteration touches other messages.
fn spread(len: usize, k: usize, iter: usize) -> Vec<usize> {
    let stretch = (len / k.max(1)).max(1);
    (0..k.min(len))
        .map(|j| j * stretch + (iter * 31 + j * 7) % stretch)
        .collect()
}

/// The other device's changes for iteration `iter`, made on `c` (selected on [`FOLDER`]),
/// applied to `model` as the server should now hold it.
async fn change(c: &mut Conn, model: &mut Model, iter: usize, msgs: &[Vec<u8>]) -> Res<Changes> {
    let uids: Vec<u64> = model.keys().copied().collect();
    let mut ch = Changes::default();
    // Every fourth pick is expunged, the rest toggled: both spread over the whole folder.
    for (j, i) in spread(uids.len(), FLAG_CHANGES + EXPUNGES, iter)
        .into_iter()
        .enumerate()
    {
        let uid = uids[i];
        if j % 4 == 3 {
            ch.expunged.insert(uid);
        } else {
            ch.flagged.insert(uid, !model[&uid]);
        }
    }
    for (on, op) in [(true, '+'), (false, '-')] {
        let set: Vec<u64> = ch
            .flagged
            .iter()
            .filter(|&(_, &f)| f == on)
            .map(|(&u, _)| u)
            .collect();
        if !set.is_empty() {
            let cmd = format!(
                "UID STORE {} {op}FLAGS.SILENT (\\Flagged)",
                imap::uid_set(&set)
            );
            c.run_ok(&cmd, |_| {}).await?;
        }
    }
    let gone: Vec<u64> = ch.expunged.iter().copied().collect();
    let set = imap::uid_set(&gone);
    c.run_ok(
        &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
        |_| {},
    )
    .await?;
    c.run_ok(&format!("UID EXPUNGE {set}"), |_| {}).await?;
    for m in msgs {
        let line = c.append_sync(FOLDER, "\\Seen", m).await?;
        let uid = imap::appenduid(&line).ok_or_else(|| err!("APPEND without APPENDUID: {line}"))?;
        ch.appended.insert(uid);
    }
    for (&u, &f) in &ch.flagged {
        model.insert(u, f);
    }
    for u in &ch.expunged {
        model.remove(u);
    }
    for &u in &ch.appended {
        model.insert(u, false);
    }
    Ok(ch)
}

/// Compare one resync's answer with the changes; problems go to `out.mismatches`. Returns the
/// number of VANISHED UIDs beyond the expunged ones (expunged before the modseq: allowed).
fn verify(
    iter: usize,
    sel: &Part,
    fetch: &Part,
    ch: &Changes,
    model: &Model,
    (validity, modseq): (u64, u64),
    out: &mut Outcome,
) -> usize {
    let mut wrong = Vec::new();
    if !sel.enabled_qresync {
        wrong.push("no `* ENABLED QRESYNC`".to_string());
    }
    if sel.nomodseq {
        wrong.push("SELECT answered NOMODSEQ".into());
    }
    if sel.uidvalidity != Some(validity) {
        wrong.push(format!("UIDVALIDITY {:?}, was {validity}", sel.uidvalidity));
    }
    if sel.highestmodseq.is_none_or(|h| h <= modseq) {
        wrong.push(format!(
            "HIGHESTMODSEQ {:?} after changes since {modseq}",
            sel.highestmodseq
        ));
    }
    let unreadable = sel.unreadable + fetch.unreadable;
    if unreadable > 0 {
        wrong.push(format!(
            "{unreadable} unreadable VANISHED or FETCH responses"
        ));
    }
    let live = sel.vanished_live + fetch.vanished_live;
    if live > 0 {
        wrong.push(format!("{live} VANISHED without (EARLIER)"));
    }
    let vanished: BTreeSet<u64> = sel.vanished.union(&fetch.vanished).copied().collect();
    let missing: Vec<u64> = ch.expunged.difference(&vanished).copied().collect();
    if !missing.is_empty() {
        wrong.push(format!(
            "VANISHED left out {} of {} expunged UIDs: {}",
            missing.len(),
            ch.expunged.len(),
            imap::uid_set(&missing)
        ));
    }
    let present: Vec<u64> = vanished
        .iter()
        .filter(|u| model.contains_key(u))
        .copied()
        .collect();
    if !present.is_empty() {
        wrong.push(format!(
            "VANISHED named {} UIDs still in the folder: {}",
            present.len(),
            imap::uid_set(&present)
        ));
    }
    let earlier = vanished.len() - (ch.expunged.len() - missing.len()) - present.len();

    let want: BTreeSet<u64> = ch.flagged.keys().chain(&ch.appended).copied().collect();
    let got: BTreeSet<u64> = sel
        .fetched
        .keys()
        .chain(fetch.fetched.keys())
        .copied()
        .collect();
    let left_out: Vec<u64> = want.difference(&got).copied().collect();
    if !left_out.is_empty() {
        wrong.push(format!(
            "FETCH left out {} of {} changed UIDs: {}",
            left_out.len(),
            want.len(),
            imap::uid_set(&left_out)
        ));
    }
    let fetch_left_out: Vec<u64> = want
        .iter()
        .filter(|u| !fetch.fetched.contains_key(u))
        .copied()
        .collect();
    if !fetch_left_out.is_empty() && left_out.is_empty() {
        wrong.push(format!(
            "UID FETCH CHANGEDSINCE alone left out {} changed UIDs (SELECT had them): {}",
            fetch_left_out.len(),
            imap::uid_set(&fetch_left_out)
        ));
    }
    let extra: Vec<u64> = got.difference(&want).copied().collect();
    if !extra.is_empty() {
        wrong.push(format!(
            "FETCH named {} UIDs that did not change: {}",
            extra.len(),
            imap::uid_set(&extra)
        ));
    }
    // The later answer (UID FETCH) is the client's final word on each message.
    let mut bad_flags = Vec::new();
    let mut bad_modseq = Vec::new();
    for part in [sel, fetch] {
        for (&u, f) in &part.fetched {
            let has = |flag: &str| f.flags.iter().any(|x| x.eq_ignore_ascii_case(flag));
            let ok = match (ch.flagged.get(&u), ch.appended.contains(&u)) {
                (Some(&flagged), _) => has("\\Flagged") == flagged,
                (None, true) => has("\\Seen") && !has("\\Flagged"),
                (None, false) => true,
            };
            if !ok {
                bad_flags.push(format!("{u} {:?}", f.flags));
            }
            if f.modseq.is_none_or(|m| m <= modseq) {
                bad_modseq.push(format!("{u} {:?}", f.modseq));
            }
        }
    }
    if let Some(b) = bad_flags.first() {
        wrong.push(format!(
            "{} FETCHes with flags other than set, e.g. UID {b}",
            bad_flags.len()
        ));
    }
    if let Some(b) = bad_modseq.first() {
        wrong.push(format!(
            "{} FETCHes without a MODSEQ above {modseq}, e.g. UID {b}",
            bad_modseq.len()
        ));
    }
    for w in wrong {
        out.mismatches
            .push(format!("qresync resync (iteration {}): {w}", iter + 1));
    }
    earlier
}

/// The untagged responses of a command, copied (parsing waits until the timing is done).
async fn collect(c: &mut Conn, cmd: &str) -> Res<Vec<Vec<u8>>> {
    let mut v = Vec::new();
    c.run_ok(cmd, |r| v.push(r.to_vec())).await?;
    Ok(v)
}

/// One timed resync; the connection is already logged in.
struct Sample {
    ms: [f64; 3],
    bytes: [u64; 3],
    server_cpu_ms: f64,
    client_cpu: f64,
    sel: Part,
    fetch: Part,
}

async fn resync(srv: &Server, c: &mut Conn, validity: u64, modseq: u64) -> Res<Sample> {
    let cmds = [
        "ENABLE QRESYNC".to_string(),
        format!(
            "SELECT {} (QRESYNC ({validity} {modseq}))",
            imap::quote(FOLDER)
        ),
        format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"),
    ];
    let (scpu, ccpu) = (srv.cpu_secs(), cpu_secs());
    let mut ms = [0.0; 3];
    let mut bytes = [0; 3];
    let mut answers: [Vec<Vec<u8>>; 3] = Default::default();
    for (i, cmd) in cmds.iter().enumerate() {
        let (t, b) = (Instant::now(), c.received());
        answers[i] = collect(c, cmd).await?;
        ms[i] = t.elapsed().as_secs_f64() * 1000.0;
        bytes[i] = c.received() - b;
    }
    // The client's CPU first: reading the server's from /proc is the client's work too.
    let client_cpu = cpu_secs() - ccpu;
    let server_cpu_ms = (srv.cpu_secs() - scpu) * 1000.0;
    let [enable, sel, fetch] = answers;
    let mut sel_part = parse(&sel);
    sel_part.enabled_qresync = parse(&enable).enabled_qresync;
    Ok(Sample {
        ms,
        bytes,
        server_cpu_ms,
        client_cpu,
        sel: sel_part,
        fetch: parse(&fetch),
    })
}

/// Build the folder, run `plan.iters` resyncs with fresh changes before each, push
/// `qresync_resync_100` (ms) and `qresync_resync_100_bytes`, delete the folder.
pub async fn run(srv: &Server, plan: &Plan, exp: &Expected, out: &mut Outcome) -> Res<()> {
    let n = exp.inbox;
    let picks = FLAG_CHANGES + EXPUNGES;
    let iters = plan.iters.max(1);
    let mut other = workload::login(srv, plan).await?;
    for cap in ["QRESYNC", "UIDPLUS"] {
        if !other.has_cap(cap) {
            out.notes
                .push(format!("qresync_resync: skipped, {cap} not offered"));
            other.logout().await;
            return Ok(());
        }
    }
    // Enough messages that the picks of every iteration are spread out and never run dry.
    if n < 2 * picks + EXPUNGES * iters {
        out.notes.push(format!(
            "qresync_resync: skipped, {n} messages are too few for {iters} iterations"
        ));
        other.logout().await;
        return Ok(());
    }
    let msgs = workload::crlf_messages(plan.seed, APPEND_SOURCE, APPENDS * iters);

    // The folder: a copy of the generator's INBOX messages (untimed).
    let t = Instant::now();
    let inbox = workload::select(&mut other, "INBOX").await?;
    if inbox < n as u64 {
        return Err(err!("INBOX has {inbox} messages, generator wrote {n}"));
    }
    other.run_ok(&format!("CREATE {FOLDER}"), |_| {}).await?;
    other
        .run_ok(&format!("COPY 1:{n} {FOLDER}"), |_| {})
        .await?;
    let count = workload::select(&mut other, FOLDER).await?;
    if count != n as u64 {
        return Err(err!("{FOLDER} has {count} messages after COPY 1:{n}"));
    }
    let mut model = Model::new();
    let mut unreadable = 0;
    other
        .run_ok("UID FETCH 1:* (FLAGS)", |r| {
            match check::parse_fetch(r).and_then(|(_, m)| {
                let uid = m.get("UID")?.as_u64()?;
                let flags = check::flag_list(m.get("FLAGS")?, true);
                Some((
                    uid,
                    flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged")),
                ))
            }) {
                Some((uid, flagged)) => {
                    model.insert(uid, flagged);
                }
                None => unreadable += 1,
            }
        })
        .await?;
    if model.len() != n || unreadable > 0 {
        return Err(err!(
            "{FOLDER}: {} FETCHes read, {unreadable} unreadable, for {n} messages",
            model.len()
        ));
    }
    let seeded = t.elapsed().as_secs_f64();

    // The client's starting point, on its own connection.
    let mut c = workload::login(srv, plan).await?;
    let mut start = collect(&mut c, "ENABLE QRESYNC").await?;
    start.extend(collect(&mut c, &format!("SELECT {}", imap::quote(FOLDER))).await?);
    c.logout().await;
    let first = parse(&start);
    let (Some(validity), Some(mut modseq)) = (first.uidvalidity, first.highestmodseq) else {
        return Err(err!(
            "SELECT {FOLDER} after ENABLE QRESYNC: UIDVALIDITY {:?}, HIGHESTMODSEQ {:?}",
            first.uidvalidity,
            first.highestmodseq
        ));
    };

    let mut samples = Vec::new();
    for i in 0..iters {
        let ch = change(
            &mut other,
            &mut model,
            i,
            &msgs[i * APPENDS..(i + 1) * APPENDS],
        )
        .await?;
        let mut c = workload::login(srv, plan).await?;
        let s = resync(srv, &mut c, validity, modseq).await?;
        c.logout().await;
        let wall: f64 = s.ms.iter().sum();
        out.client_cpu
            .push(("qresync_resync".into(), wall / 1000.0, s.client_cpu));
        let earlier = verify(i, &s.sel, &s.fetch, &ch, &model, (validity, modseq), out);
        modseq = s.sel.highestmodseq.unwrap_or(modseq);
        samples.push((s, earlier));
    }

    let changes = FLAG_CHANGES + EXPUNGES + APPENDS;
    let med =
        |f: &dyn Fn(&Sample) -> f64| median(&samples.iter().map(|(s, _)| f(s)).collect::<Vec<_>>());
    let earlier: Vec<usize> = samples.iter().map(|(_, e)| *e).collect();
    let fetches = med(&|s| (s.sel.fetched.len() + s.fetch.fetched.len()) as f64);
    // The slowest iteration too: a server that sometimes rereads the folder shows it here,
    // not in the median.
    let slowest = samples
        .iter()
        .map(|(s, _)| s)
        .max_by(|a, b| a.ms.iter().sum::<f64>().total_cmp(&b.ms.iter().sum()))
        .map_or(String::new(), |s| {
            format!(
                "; slowest {:.2} ms (SELECT {:.2} ms, UID FETCH {:.2} ms, server CPU {:.2} ms)",
                s.ms.iter().sum::<f64>(),
                s.ms[1],
                s.ms[2],
                s.server_cpu_ms
            )
        });
    let note = format!(
        "{n} messages, {FLAG_CHANGES} flag changes, {EXPUNGES} expunges, {APPENDS} APPENDs since \
         the modseq; login untimed; medians: ENABLE {:.2} ms, SELECT (QRESYNC) {:.2} ms, UID FETCH \
         (CHANGEDSINCE VANISHED) {:.2} ms; server CPU {:.2} ms{slowest}; folder built in \
         {seeded:.1} s",
        med(&|s| s.ms[0]),
        med(&|s| s.ms[1]),
        med(&|s| s.ms[2]),
        med(&|s| s.server_cpu_ms),
    );
    let bytes_note = format!(
        "medians: ENABLE {:.0} B, SELECT {:.0} B, UID FETCH {:.0} B; {fetches:.0} FETCH \
         responses in all; VANISHED UIDs expunged before the modseq (allowed) per iteration: \
         {earlier:?}",
        med(&|s| s.bytes[0] as f64),
        med(&|s| s.bytes[1] as f64),
        med(&|s| s.bytes[2] as f64),
    );
    out.push(
        &format!("qresync_resync_{changes}"),
        Unit::Millis,
        samples.iter().map(|(s, _)| s.ms.iter().sum()).collect(),
        note,
    );
    out.push(
        &format!("qresync_resync_{changes}_bytes"),
        Unit::Bytes,
        samples
            .iter()
            .map(|(s, _)| s.bytes.iter().sum::<u64>() as f64)
            .collect(),
        bytes_note,
    );

    // Leave the mailbox as it was (untimed).
    other.run_ok("UNSELECT", |_| {}).await?;
    other.run_ok(&format!("DELETE {FOLDER}"), |_| {}).await?;
    other.logout().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_distinct_indices_in_range() {
        for (len, k, iter) in [(300, 80, 0), (300, 80, 5), (100_000, 80, 2), (80, 80, 1)] {
            let v = spread(len, k, iter);
            assert_eq!(v.len(), k);
            assert!(v.iter().all(|&i| i < len), "{len} {k} {iter}");
            assert!(v.windows(2).all(|w| w[0] < w[1]), "{len} {k} {iter}");
        }
        assert_ne!(spread(100_000, 80, 0), spread(100_000, 80, 1));
    }

    #[test]
    fn answers_parse() {
        let r: Vec<Vec<u8>> = [
            &b"* ENABLED QRESYNC\r\n"[..],
            b"* OK [UIDVALIDITY 17] ok\r\n",
            b"* OK [HIGHESTMODSEQ 90] ok\r\n",
            b"* VANISHED (EARLIER) 3:4,9\r\n",
            b"* 2 FETCH (UID 5 FLAGS (\\Seen \\Flagged) MODSEQ (88))\r\n",
            b"* 3 FETCH (FLAGS ()) \r\n",
        ]
        .iter()
        .map(|x| x.to_vec())
        .collect();
        let p = parse(&r);
        assert!(p.enabled_qresync);
        assert_eq!((p.uidvalidity, p.highestmodseq), (Some(17), Some(90)));
        assert_eq!(p.vanished, BTreeSet::from([3, 4, 9]));
        assert_eq!(p.fetched[&5].modseq, Some(88));
        assert_eq!(p.fetched[&5].flags, vec!["\\Flagged", "\\Seen"]);
        assert_eq!(p.unreadable, 1);
    }
}
