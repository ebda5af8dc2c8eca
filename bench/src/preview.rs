//! PREVIEW (RFC 8970) of issue 18: `FETCH 1:* (PREVIEW)` over a folder of `--messages`
//! messages, the first time (cold: the server makes every preview from the message file) and
//! again (warm: nestbox answers from its `nestbox.cache`, Dovecot from `dovecot.index.cache`).
//!
//! Owns the folder it works on, `bench-preview`: a `COPY` of the generator's INBOX messages,
//! made untimed at the start and deleted at the end. A folder nobody has previewed is what makes
//! "first" cold for both servers whatever ran before: nestbox's COPY links the files and carries
//! no cache entry over, and Dovecot's, which copies the cache fields the source has, finds no
//! preview there because no workload asks INBOX for one. INBOX is only read.
//!
//! The command is `FETCH 1:* (PREVIEW)` when the server announces `PREVIEW`, else Dovecot's
//! older `FETCH 1:* (SNIPPET (FUZZY))` under `SNIPPET=FUZZY` (the same text as
//! `SNIPPET (FUZZY "text")`); the row's note says which. Without either the workload is skipped
//! with a note.
//!
//! Timed from the first byte written to the tagged OK; the responses (about 25 MB at 100,000
//! messages) are copied into one flat buffer while timing, which costs both servers the same,
//! and parsed afterwards. The answers are checked every time (`--check` makes a difference a
//! failure): one FETCH per message, sequence numbers 1 to N each once, each with a preview that
//! is a string (not NIL: the server had every message), and every repeat identical to the first
//! answer. The note gives the server's CPU and what it read with read(2) during each command
//! (`rchar` of its whole process tree, page cache included): what tells a server that answers
//! from its cache from one that reads the message files again.
//!
//! For information, never a failure: each server's previews are kept by Message-ID and the run
//! prints how many two servers agree on (RFC 8970 leaves the algorithm to the server).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::check::{self, Value};
use crate::corpus::Expected;
use crate::err;
use crate::imap::{Conn, Res};
use crate::servers::Server;
use crate::workload::{self, Outcome, Plan, Unit, cpu_secs, median};

/// The folder the workload builds, previews and deletes.
pub const FOLDER: &str = "bench-preview";

/// Which FETCH item the server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    /// RFC 8970 `PREVIEW`.
    Preview,
    /// Dovecot's pre-RFC `SNIPPET (FUZZY)`, answered as `SNIPPET (FUZZY "text")`.
    Snippet,
}

impl Item {
    fn command(self) -> &'static str {
        match self {
            Item::Preview => "FETCH 1:* (PREVIEW)",
            Item::Snippet => "FETCH 1:* (SNIPPET (FUZZY))",
        }
    }
}

/// The preview text in one FETCH response's items, `None` for NIL or when absent.
fn text_of(item: Item, m: &BTreeMap<String, Value>) -> Option<Vec<u8>> {
    match (item, m.get(item_key(item))?) {
        (Item::Preview, Value::Str(s)) => Some(s.clone()),
        (Item::Snippet, Value::List(v)) => v.get(1)?.as_str().map(<[u8]>::to_vec),
        _ => None,
    }
}

fn item_key(item: Item) -> &'static str {
    match item {
        Item::Preview => "PREVIEW",
        Item::Snippet => "SNIPPET",
    }
}

/// One run's answer, indexed by sequence number - 1.
#[derive(Debug, Default)]
struct Answer {
    texts: Vec<Option<Vec<u8>>>,
    /// FETCH responses in all (duplicates included).
    fetches: usize,
    /// Sequence numbers answered more than once or outside 1..=N.
    stray: usize,
    /// Responses that were neither a readable FETCH nor something else untagged.
    unreadable: usize,
}

/// Parse the responses of one run (copied flat into `buf`, each ending at an offset in `ends`).
fn parse(item: Item, n: usize, buf: &[u8], ends: &[usize]) -> Answer {
    let mut a = Answer {
        texts: vec![None; n],
        ..Answer::default()
    };
    let mut seen = vec![false; n];
    let mut start = 0;
    for &end in ends {
        let r = &buf[start..end];
        start = end;
        let is_fetch = r
            .split(|&c| c == b' ')
            .nth(2)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"FETCH"));
        if !is_fetch {
            continue;
        }
        a.fetches += 1;
        let Some((seq, m)) = check::parse_fetch(r) else {
            a.unreadable += 1;
            continue;
        };
        let i = seq as usize;
        if i == 0 || i > n || seen[i - 1] {
            a.stray += 1;
            continue;
        }
        seen[i - 1] = true;
        a.texts[i - 1] = text_of(item, &m);
    }
    a
}

/// Everything one timed run measured.
struct Run {
    secs: f64,
    bytes: u64,
    server_cpu: f64,
    server_rchar: u64,
    answer: Answer,
}

async fn timed(srv: &Server, c: &mut Conn, item: Item, n: usize, out: &mut Outcome) -> Res<Run> {
    let mut buf = Vec::new();
    let mut ends = Vec::with_capacity(n + 8);
    let (b0, rchar0, scpu0) = (c.received(), srv.rchar(), srv.cpu_secs());
    let (t, ccpu) = (Instant::now(), cpu_secs());
    c.run_ok(item.command(), |r| {
        buf.extend_from_slice(r);
        ends.push(buf.len());
    })
    .await?;
    let secs = t.elapsed().as_secs_f64();
    out.client_cpu
        .push(("fetch_preview".into(), secs, cpu_secs() - ccpu));
    let (server_cpu, server_rchar) = (srv.cpu_secs() - scpu0, srv.rchar().saturating_sub(rchar0));
    Ok(Run {
        secs,
        bytes: c.received() - b0,
        server_cpu,
        server_rchar,
        answer: parse(item, n, &buf, &ends),
    })
}

/// Compare one run's answer with what it must be; problems go to `out.mismatches`.
fn verify(label: &str, n: usize, a: &Answer, first: Option<&Answer>, out: &mut Outcome) {
    let mut wrong = Vec::new();
    if a.fetches != n {
        wrong.push(format!("{} FETCH responses for {n} messages", a.fetches));
    }
    if a.unreadable > 0 {
        wrong.push(format!("{} unreadable FETCH responses", a.unreadable));
    }
    if a.stray > 0 {
        wrong.push(format!(
            "{} FETCHes for a repeated or unknown sequence number",
            a.stray
        ));
    }
    let missing: Vec<usize> = (0..n).filter(|&i| a.texts[i].is_none()).collect();
    if let Some(&i) = missing.first() {
        wrong.push(format!(
            "{} messages without a preview (NIL or not answered), e.g. message {}",
            missing.len(),
            i + 1
        ));
    }
    if let Some(f) = first {
        let differ: Vec<usize> = (0..n).filter(|&i| a.texts[i] != f.texts[i]).collect();
        if let Some(&i) = differ.first() {
            let show = |t: &Option<Vec<u8>>| {
                t.as_ref().map_or("NIL".into(), |t| {
                    format!("{:?}", String::from_utf8_lossy(t))
                })
            };
            wrong.push(format!(
                "{} previews differ from the first answer, e.g. message {}: first {}, now {}",
                differ.len(),
                i + 1,
                show(&f.texts[i]),
                show(&a.texts[i])
            ));
        }
    }
    for w in wrong {
        out.mismatches.push(format!("fetch_preview ({label}): {w}"));
    }
}

/// Build the folder, run the FETCH once cold and `plan.iters` times warm, push
/// `fetch_preview_first` and `fetch_preview_again`, keep the previews by Message-ID, delete the
/// folder.
pub async fn run(srv: &Server, plan: &Plan, exp: &Expected, out: &mut Outcome) -> Res<()> {
    let n = exp.inbox;
    let mut c = workload::login(srv, plan).await?;
    let item = if c.has_cap("PREVIEW") {
        Item::Preview
    } else if c.has_cap("SNIPPET=FUZZY") {
        Item::Snippet
    } else {
        out.notes.push(
            "fetch_preview: skipped, neither PREVIEW (RFC 8970) nor SNIPPET=FUZZY offered".into(),
        );
        c.logout().await;
        return Ok(());
    };

    // The folder: a copy of the generator's INBOX messages (untimed), never previewed.
    let t = Instant::now();
    let inbox = workload::select(&mut c, "INBOX").await?;
    if inbox < n as u64 {
        return Err(err!("INBOX has {inbox} messages, generator wrote {n}"));
    }
    c.run_ok(&format!("CREATE {FOLDER}"), |_| {}).await?;
    c.run_ok(&format!("COPY 1:{n} {FOLDER}"), |_| {}).await?;
    let count = workload::select(&mut c, FOLDER).await?;
    if count != n as u64 {
        return Err(err!("{FOLDER} has {count} messages after COPY 1:{n}"));
    }
    let seeded = t.elapsed().as_secs_f64();

    let mut runs: Vec<Run> = Vec::new();
    for k in 0..=plan.iters.max(1) {
        let r = timed(srv, &mut c, item, n, out).await?;
        let label = if k == 0 {
            "first".to_string()
        } else {
            format!("again {k}")
        };
        verify(&label, n, &r.answer, runs.first().map(|f| &f.answer), out);
        runs.push(r);
    }

    let first = &runs[0];
    let again = &runs[1..];
    let texts = first.answer.texts.iter().flatten();
    let empty = texts.clone().filter(|t| t.is_empty()).count();
    let chars: usize = texts
        .map(|t| String::from_utf8_lossy(t).chars().count())
        .sum();
    let what = format!(
        "`{}` over {n} messages of a fresh COPY of INBOX{}",
        item.command(),
        if item == Item::Snippet {
            " (Dovecot's SNIPPET, no PREVIEW offered)"
        } else {
            ""
        }
    );
    let mb = |b: u64| b as f64 / 1e6;
    out.push(
        "fetch_preview_first",
        Unit::Secs,
        vec![first.secs],
        format!(
            "{what}, nothing cached; {:.1} MB sent; server CPU {:.0} ms, read(2) {:.1} MB; \
             {empty} empty previews, {:.0} characters on average; folder built in {seeded:.1} s",
            mb(first.bytes),
            first.server_cpu * 1e3,
            mb(first.server_rchar),
            chars as f64 / n.max(1) as f64,
        ),
    );
    let med = |f: &dyn Fn(&Run) -> f64| median(&again.iter().map(f).collect::<Vec<_>>());
    out.push(
        "fetch_preview_again",
        Unit::Secs,
        again.iter().map(|r| r.secs).collect(),
        format!(
            "the same again, median of {}; {:.1} MB sent; server CPU {:.0} ms, read(2) {:.1} MB \
             (medians)",
            again.len(),
            med(&|r| r.bytes as f64) / 1e6,
            med(&|r| r.server_cpu) * 1e3,
            med(&|r| r.server_rchar as f64) / 1e6,
        ),
    );

    // Untimed: each message's Message-ID, to keep the previews for the comparison between
    // servers (sequence numbers are the same copy of INBOX in each server's own order).
    let mut ids: Vec<Option<String>> = vec![None; n];
    c.run_ok("FETCH 1:* (ENVELOPE)", |r| {
        if let Some((seq, m)) = check::parse_fetch(r)
            && let Some(slot) = (seq as usize).checked_sub(1).and_then(|i| ids.get_mut(i))
        {
            *slot = m.get("ENVELOPE").and_then(check::envelope_message_id);
        }
    })
    .await?;
    for (id, text) in ids.into_iter().zip(&first.answer.texts) {
        if let (Some(id), Some(t)) = (id, text) {
            out.answers
                .preview
                .insert(id, String::from_utf8_lossy(t).into_owned());
        }
    }

    // Leave the mailbox as it was (untimed).
    c.run_ok("UNSELECT", |_| {}).await?;
    c.run_ok(&format!("DELETE {FOLDER}"), |_| {}).await?;
    c.logout().await;
    Ok(())
}

/// How far two servers' previews agree, for the report (RFC 8970 leaves the text to the
/// server, so this is information, not a cross-check difference); `None` when either has none.
pub fn agreement(
    a_name: &str,
    a: &BTreeMap<String, String>,
    b_name: &str,
    b: &BTreeMap<String, String>,
) -> Option<String> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let both: Vec<(&String, &String, &String)> = a
        .iter()
        .filter_map(|(id, x)| b.get(id).map(|y| (id, x, y)))
        .collect();
    let same = both.iter().filter(|(_, x, y)| x == y).count();
    let trimmed = both
        .iter()
        .filter(|(_, x, y)| x != y && x.trim() == y.trim())
        .count();
    let mut s = format!(
        "PREVIEW: {a_name} and {b_name} give the same text for {same} of {} messages, \
         {trimmed} more differ only in leading or trailing white space",
        both.len()
    );
    if let Some((id, x, y)) = both
        .iter()
        .find(|(_, x, y)| x.trim() != y.trim())
        .or_else(|| both.iter().find(|(_, x, y)| x != y))
    {
        s.push_str(&format!(
            " (information, RFC 8970 leaves the text to the server); e.g. {id}:\n    {a_name}: {x:?}\n    {b_name}: {y:?}"
        ));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(rs: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        for r in rs {
            buf.extend_from_slice(r);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn answers_parse_and_check() {
        let (buf, ends) = flat(&[
            b"* 1 FETCH (PREVIEW \"Hello there\")\r\n",
            b"* 2 FETCH (PREVIEW {6}\r\nGr\xc3\xbc\xc3\x9f)\r\n",
            b"* 3 FETCH (PREVIEW \"\")\r\n",
            b"* 4 FETCH (PREVIEW NIL)\r\n",
            b"* 4 FETCH (FLAGS (\\Seen))\r\n",
            b"* 9 EXISTS\r\n",
        ]);
        let a = parse(Item::Preview, 5, &buf, &ends);
        assert_eq!(a.fetches, 5);
        assert_eq!(a.stray, 1);
        assert_eq!(a.texts[0].as_deref(), Some(&b"Hello there"[..]));
        assert_eq!(a.texts[1].as_deref(), Some("Grüß".as_bytes()));
        assert_eq!(a.texts[2].as_deref(), Some(&b""[..]));
        assert_eq!(a.texts[3], None);
        assert_eq!(a.texts[4], None);
        let mut out = Outcome::default();
        verify("first", 5, &a, None, &mut out);
        assert_eq!(out.mismatches.len(), 2, "{:?}", out.mismatches);
        assert!(out.mismatches[1].contains("2 messages without a preview"));

        let (buf, ends) = flat(&[b"* 1 FETCH (SNIPPET (FUZZY \"Hi\"))\r\n"]);
        let s = parse(Item::Snippet, 1, &buf, &ends);
        assert_eq!(s.texts[0].as_deref(), Some(&b"Hi"[..]));
        let mut out = Outcome::default();
        verify("first", 1, &s, None, &mut out);
        assert!(out.mismatches.is_empty(), "{:?}", out.mismatches);

        let (buf, ends) = flat(&[b"* 1 FETCH (SNIPPET (FUZZY \"Ho\"))\r\n"]);
        let later = parse(Item::Snippet, 1, &buf, &ends);
        verify("again 1", 1, &later, Some(&s), &mut out);
        assert_eq!(out.mismatches.len(), 1);
        assert!(out.mismatches[0].contains("differ from the first"));
    }

    #[test]
    fn agreement_counts() {
        let m = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(k, x)| (k.to_string(), x.to_string()))
                .collect()
        };
        let a = m(&[("<1>", "same"), ("<2>", "cut"), ("<3>", "x"), ("<4>", "a")]);
        let b = m(&[("<1>", "same"), ("<2>", "cut "), ("<3>", "y")]);
        let s = agreement("d", &a, "n", &b).expect("both have previews");
        assert!(
            s.starts_with("PREVIEW: d and n give the same text for 1 of 3 messages, 1 more"),
            "{s}"
        );
        assert!(s.contains("e.g. <3>"), "{s}");
        assert_eq!(agreement("d", &a, "n", &BTreeMap::new()), None);
    }
}
