//! NOTIFY push latency (RFC 5465) of issue 18: how soon a client that watches its other folders
//! hears of mail arriving in one of them.
//!
//! Owns the folder the mail arrives in, `bench-notify`: created empty (untimed) at the start and
//! deleted at the end, so no other workload's folder or count changes. The client logs in,
//! selects nothing and sends `NOTIFY SET (personal (MessageNew MessageExpunge))` (RFC 5465 §5:
//! MessageNew and MessageExpunge go together), then waits, sending no command, as a client
//! between commands does. [`Plan::idle_deliveries`] messages arrive, one at a time, each timed
//! to the unsolicited `* STATUS bench-notify (... MESSAGES n ...)` that counts it:
//! 1. `notify_push_latency`: the harness delivers like an MTA (written to the folder's `tmp/`
//!    and fsynced, then renamed into `new/`, as the IDLE workload does into INBOX), timed from
//!    the rename. This is issue 18's figure.
//! 2. `notify_push_latency_append`: another IMAP session of the same user APPENDs (a second
//!    device filing mail), timed from the APPEND's tagged OK, when the message is stored. A
//!    STATUS that comes before the OK counts as 0 (the note says how often, and gives the
//!    median from writing the APPEND too). Dovecot 2.3 tells NOTIFY clients only of changes
//!    made through Dovecot: after an MTA's delivery into an unselected folder nothing came
//!    within 35 s, with or without IDLE, until another session ran `STATUS` on the folder (its
//!    own indexes learn of changes only from its own sessions). So this row is the one both
//!    servers have.
//!
//! Arrivals are [`SPACING`] apart, counted from the previous STATUS: nestbox sends at most one
//! STATUS per folder every 100 ms (the first of a quiet spell at once), so closer arrivals
//! would time its rate limit, not its push. Whatever comes during the spacing is read and
//! counted (a second STATUS for the same arrival is allowed, and counted in the note).
//!
//! Checked every time (`--check` makes it a failure): every STATUS for the folder carries
//! MESSAGES, never more than have arrived, every arrival is told within [`Plan::idle_wait`], and
//! the folder holds them all at the end. A server that sends no STATUS at all for the first
//! [`GIVE_UP`] arrivals of a phase is taken not to notice that kind of arrival: the phase stops
//! there, without a row, and the report shows the other server alone. For Dovecot, which is
//! known not to notice an MTA's deliveries, that is a note; for nestbox it is a failure.

use std::time::{Duration, Instant};

use crate::err;
use crate::imap::{Conn, Res};
use crate::servers::{Kind, Server};
use crate::workload::{self, Outcome, Plan, Unit, median, percentile};

/// The folder the workload delivers into.
pub const FOLDER: &str = "bench-notify";
/// Synthetic folder number of the delivered messages ([`crate::corpus::message_bytes`]).
const SOURCE: u64 = 12;
/// Time between a STATUS (or a timeout) and the next delivery.
pub const SPACING: Duration = Duration::from_millis(150);
/// Deliveries without any STATUS after which a server is taken not to notice them.
const GIVE_UP: usize = 3;

/// `* STATUS <mailbox> (<items>)` -> (mailbox, MESSAGES if present). The mailbox may be quoted
/// or an atom; a literal mailbox name is not read (the harness's folder name never needs one).
pub fn status_messages(r: &[u8]) -> Option<(String, Option<u64>)> {
    let s = std::str::from_utf8(r).ok()?.trim_end();
    let rest = s.strip_prefix("* ")?;
    let (word, rest) = rest.split_once(' ')?;
    if !word.eq_ignore_ascii_case("STATUS") {
        return None;
    }
    let (name, items) = if let Some(q) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = q.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => name.push(chars.next()?.1),
                (i, '"') => break i + 1,
                (_, ch) => name.push(ch),
            }
        };
        (name, &q[end..])
    } else {
        let (name, items) = rest.split_once(' ')?;
        (name.to_string(), items)
    };
    let items = items.trim().strip_prefix('(')?.strip_suffix(')')?;
    let words: Vec<&str> = items.split_ascii_whitespace().collect();
    let messages = words
        .chunks(2)
        .find(|kv| kv[0].eq_ignore_ascii_case("MESSAGES"))
        .and_then(|kv| kv.get(1)?.parse().ok());
    Some((name, messages))
}

/// What the notified client saw of one folder's STATUS lines.
#[derive(Debug, Default)]
struct Seen {
    /// STATUS lines for the folder in all.
    lines: usize,
    /// STATUS lines for the folder without MESSAGES.
    without_messages: usize,
    /// The highest MESSAGES above what had been delivered, if any was.
    too_many: Option<(u64, u64)>,
}

impl Seen {
    /// Whether `r` tells of `want` messages (or more) in the folder; counts what it sees.
    /// `delivered` is what the harness has delivered by now.
    fn tells(&mut self, r: &[u8], want: u64, delivered: u64) -> bool {
        let Some((name, messages)) = status_messages(r) else {
            return false;
        };
        if name != FOLDER {
            return false;
        }
        self.lines += 1;
        match messages {
            None => {
                self.without_messages += 1;
                false
            }
            Some(m) => {
                if m > delivered && self.too_many.is_none_or(|(t, _)| m > t) {
                    self.too_many = Some((m, delivered));
                }
                m >= want
            }
        }
    }
}

/// How a message arrives in the folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    /// An MTA: tmp/, fsync, rename into new/; timed from the rename.
    Mta,
    /// Another IMAP session's APPEND; timed from its tagged OK.
    Append,
}

impl Arrival {
    fn row(self) -> &'static str {
        match self {
            Arrival::Mta => "notify_push_latency",
            Arrival::Append => "notify_push_latency_append",
        }
    }
}

/// The watching client, the other session and what both have seen so far.
struct Bench<'a> {
    plan: &'a Plan,
    /// Logged in, nothing selected, `NOTIFY SET` done.
    watcher: Conn,
    /// The other session (CREATE, APPEND, STATUS, DELETE).
    other: Conn,
    /// The folder's directory.
    dir: std::path::PathBuf,
    /// Messages in the folder by now (what the harness put there).
    delivered: u64,
    seen: Seen,
}

/// One phase's figures.
#[derive(Debug, Default)]
struct Phase {
    /// Milliseconds from the arrival to the STATUS (the bound for a timeout).
    lat: Vec<f64>,
    /// Milliseconds from writing the APPEND command to the STATUS ([`Arrival::Append`]).
    from_command: Vec<f64>,
    timeouts: usize,
    /// STATUS lines read before the APPEND's tagged OK (their latency counted as 0).
    early: usize,
    /// STATUS lines for the folder during the phase.
    lines: usize,
    /// Whether it stopped after [`GIVE_UP`] arrivals nobody was told of.
    gave_up: bool,
}

impl Bench<'_> {
    async fn phase(&mut self, how: Arrival) -> Res<Phase> {
        let mut p = Phase::default();
        let lines0 = self.seen.lines;
        let wait = self.plan.idle_wait;
        let msgs = match how {
            Arrival::Append => {
                workload::crlf_messages(self.plan.seed, SOURCE + 1, self.plan.idle_deliveries)
            }
            Arrival::Mta => Vec::new(),
        };
        for i in 0..self.plan.idle_deliveries {
            // The spacing, reading (and counting) whatever the server still says meanwhile.
            let (seen, delivered) = (&mut self.seen, self.delivered);
            self.watcher
                .wait_for(SPACING, |r| {
                    seen.tells(r, u64::MAX, delivered);
                    false
                })
                .await?;
            let want = self.delivered + 1;
            let told = match how {
                Arrival::Mta => {
                    let (tmp, new) =
                        workload::prepare_delivery_into(&self.dir, self.plan.seed, SOURCE, i)?;
                    let t = Instant::now();
                    std::fs::rename(&tmp, &new)?;
                    self.delivered += 1;
                    let seen = &mut self.seen;
                    let told = self
                        .watcher
                        .wait_for(wait, |r| seen.tells(r, want, want))
                        .await?;
                    told.then(|| t.elapsed().as_secs_f64() * 1000.0)
                }
                Arrival::Append => {
                    let (watcher, other, seen) =
                        (&mut self.watcher, &mut self.other, &mut self.seen);
                    let t = Instant::now();
                    let (appended, status) = tokio::join!(
                        async {
                            let r = other
                                .append_sync(FOLDER, "", msgs.get(i).map_or(&[][..], Vec::as_slice))
                                .await;
                            (r, Instant::now())
                        },
                        async {
                            let r = watcher.wait_for(wait, |r| seen.tells(r, want, want)).await;
                            (r, Instant::now())
                        }
                    );
                    let (ok_at, (told, told_at)) = (appended.1, (status.0?, status.1));
                    appended.0?;
                    self.delivered += 1;
                    if told {
                        p.from_command
                            .push(told_at.duration_since(t).as_secs_f64() * 1000.0);
                        if told_at < ok_at {
                            p.early += 1;
                        }
                    }
                    told.then(|| told_at.saturating_duration_since(ok_at).as_secs_f64() * 1000.0)
                }
            };
            match told {
                Some(ms) => p.lat.push(ms),
                None => {
                    p.timeouts += 1;
                    p.lat.push(wait.as_secs_f64() * 1000.0);
                }
            }
            if i + 1 == GIVE_UP && self.seen.lines == lines0 {
                p.gave_up = true;
                break;
            }
        }
        p.lines = self.seen.lines - lines0;
        Ok(p)
    }
}

/// Push one phase's row, or the note saying why there is none; failures to `out.mismatches`.
fn report(how: Arrival, p: Phase, kind: Kind, plan: &Plan, out: &mut Outcome) {
    let row = how.row();
    let (what, from) = match how {
        Arrival::Mta => (
            "MTA deliveries (tmp/, fsync, rename into new/)",
            "from the rename",
        ),
        Arrival::Append => (
            "APPENDs by another IMAP session",
            "from the APPEND's tagged OK",
        ),
    };
    let made = p.lat.len();
    if p.gave_up {
        let why = format!(
            "{row}: no row: NOTIFY is offered, but no STATUS for {FOLDER} came within {:?} of \
             any of the first {GIVE_UP} {what} into the unselected folder, so the rest were not \
             made",
            plan.idle_wait
        );
        // Known of Dovecot 2.3 (see the module doc); from nestbox it is a broken NOTIFY.
        match kind {
            Kind::Dovecot => out.notes.push(why),
            Kind::Nestbox => out.mismatches.push(why),
        }
        return;
    }
    if p.timeouts > 0 {
        out.mismatches.push(format!(
            "{row}: {} of {made} arrivals not told within {:?}",
            p.timeouts, plan.idle_wait
        ));
    }
    let mut note = format!(
        "{made} {what} into the unselected {FOLDER}, {} ms apart, nothing selected, `NOTIFY SET \
         (personal (MessageNew MessageExpunge))`, {from} to `* STATUS {FOLDER} (...)`; p90 \
         {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} STATUS lines for the folder",
        SPACING.as_millis(),
        percentile(&p.lat, 90.0),
        percentile(&p.lat, 99.0),
        p.lat.iter().copied().fold(0.0, f64::max),
        p.lines,
    );
    if how == Arrival::Append {
        note.push_str(&format!(
            "; from writing the APPEND: median {:.2} ms; {} STATUS before the OK (counted as 0)",
            median(&p.from_command),
            p.early
        ));
    }
    if p.timeouts > 0 {
        note.push_str(&format!(
            "; {} not told within {:?} (counted as that)",
            p.timeouts, plan.idle_wait
        ));
    }
    out.push(row, Unit::Millis, vec![median(&p.lat)], note);
    if let Some(m) = out.measures.iter_mut().find(|m| m.name == row) {
        m.samples = p.lat;
    }
}

/// Create the folder, have messages arrive in it while a NOTIFY client waits (first from an
/// MTA, then by APPEND from another session), push `notify_push_latency` and
/// `notify_push_latency_append` (ms, median; every arrival's latency in the samples), delete
/// the folder.
pub async fn run(srv: &Server, plan: &Plan, out: &mut Outcome) -> Res<()> {
    let mut other = workload::login(srv, plan).await?;
    if !other.has_cap("NOTIFY") {
        out.notes
            .push("notify_push_latency: skipped, NOTIFY not offered".into());
        other.logout().await;
        return Ok(());
    }
    other.run_ok(&format!("CREATE {FOLDER}"), |_| {}).await?;
    let base = workload::status_messages(&mut other, FOLDER).await?;
    // Maildir++: the folder `name` is the directory `.name` under the user's Maildir.
    let dir = srv.maildir.join(format!(".{FOLDER}"));
    if !dir.join("tmp").is_dir() || !dir.join("new").is_dir() {
        return Err(err!(
            "CREATE {FOLDER} made no Maildir++ folder at {}",
            dir.display()
        ));
    }
    let mut watcher = workload::login(srv, plan).await?;
    watcher
        .run_ok("NOTIFY SET (personal (MessageNew MessageExpunge))", |_| {})
        .await?;
    let mut b = Bench {
        plan,
        watcher,
        other,
        dir,
        delivered: base,
        seen: Seen::default(),
    };
    for how in [Arrival::Mta, Arrival::Append] {
        let p = b.phase(how).await?;
        report(how, p, srv.kind, plan, out);
    }
    if b.seen.without_messages > 0 {
        out.mismatches.push(format!(
            "notify_push_latency: {} STATUS lines for {FOLDER} without MESSAGES",
            b.seen.without_messages
        ));
    }
    if let Some((m, d)) = b.seen.too_many {
        out.mismatches.push(format!(
            "notify_push_latency: STATUS said MESSAGES {m} when {d} messages had arrived"
        ));
    }
    let Bench {
        mut watcher,
        mut other,
        delivered,
        ..
    } = b;
    watcher.run_ok("NOTIFY NONE", |_| {}).await?;
    watcher.logout().await;

    // What is in the folder must be what arrived; then leave the mailbox as it was.
    let n = workload::status_messages(&mut other, FOLDER).await?;
    if n != delivered {
        out.mismatches.push(format!(
            "notify_push_latency: {FOLDER} has {n} messages after {} arrivals",
            delivered - base
        ));
    }
    other.run_ok(&format!("DELETE {FOLDER}"), |_| {}).await?;
    other.logout().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        type Want = Option<(&'static str, Option<u64>)>;
        let table: &[(&[u8], Want)] = &[
            (
                b"* STATUS bench-notify (MESSAGES 3 UIDNEXT 4 UNSEEN 3)\r\n",
                Some(("bench-notify", Some(3))),
            ),
            (
                b"* STATUS \"bench-notify\" (UIDNEXT 4 MESSAGES 12)\r\n",
                Some(("bench-notify", Some(12))),
            ),
            (
                b"* status \"a \\\"b\\\"\" (messages 1)\r\n",
                Some(("a \"b\"", Some(1))),
            ),
            (b"* STATUS INBOX (UIDNEXT 9)\r\n", Some(("INBOX", None))),
            (b"* 3 EXISTS\r\n", None),
            (b"* STATUS INBOX\r\n", None),
        ];
        for (line, want) in table {
            let got = status_messages(line);
            let got = got.as_ref().map(|(n, m)| (n.as_str(), *m));
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn seen_counts() {
        let mut s = Seen::default();
        assert!(!s.tells(b"* STATUS INBOX (MESSAGES 9)\r\n", 1, 1));
        assert!(s.tells(b"* STATUS bench-notify (MESSAGES 1)\r\n", 1, 1));
        assert!(!s.tells(b"* STATUS bench-notify (UIDNEXT 2)\r\n", 1, 1));
        assert!(s.tells(b"* STATUS bench-notify (MESSAGES 3)\r\n", 2, 2));
        assert_eq!(
            (s.lines, s.without_messages, s.too_many),
            (3, 1, Some((3, 2)))
        );
    }
}
