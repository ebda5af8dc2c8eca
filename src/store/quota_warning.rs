//! The quota warning (issue 19): one message delivered into the user's
//! INBOX when their use first crosses a configured share of the quota
//! (`mail.quota_warning`, 90 % and 100 % by default).
//!
//! "Once per crossing": the highest step the user was last warned for is
//! kept in the Maildir ([`LEVEL_FILE`]), so a warning survives restarts
//! and is not repeated on every APPEND; when use falls below a step again
//! the file falls with it, and the next crossing warns again. Use is
//! measured on the limited resource nearest its limit (STORAGE or
//! MESSAGE). Crossing two steps at once gives one message, for the higher.
//!
//! The message is delivered like any other: written in `tmp/`, synced,
//! renamed into `new/` (never rewritten in place). It is not counted in
//! `maildirsize` here: the folder's next sync sees it arrive and the
//! quota is recounted, as for any delivery by another program. The step is
//! recorded only after the message is in `new/`, so a crash in between
//! repeats a warning rather than losing one.
//!
//! Owns the level file and the warning's text; never refuses or delays
//! anything (the quota is `maildirsize`'s and `Folder::check_quota`'s).

use std::io::{self, Write};

use super::beneath::Dir;
use super::maildir::filename;
use super::maildir::quota::Quota;

/// The highest step the user was warned for, in percent (`90\n`).
pub const LEVEL_FILE: &str = "nestbox-quota-warned";

/// What the warning says and when (from the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaWarnings {
    /// Shares of the quota in percent, ascending; empty: no warnings.
    pub steps: Vec<u8>,
    /// `From:` of the message.
    pub from: String,
    /// `To:` of the message: the user's login name.
    pub to: String,
    /// The server's name, for `Message-ID` and the text.
    pub hostname: String,
    /// Templates: `{percent}`, `{used}`, `{limit}`, `{hostname}`.
    pub subject: String,
    pub text: String,
}

/// The default subject (`mail.quota_warning_subject`).
pub const DEFAULT_SUBJECT: &str = "Your mailbox is {percent}% full";

/// The default text (`mail.quota_warning_text`).
pub const DEFAULT_TEXT: &str = "\
Your mailbox on {hostname} is {percent}% full: it holds {used} of the {limit} it may use.

When it is full, messages you send, save or move cannot be stored in it, and new
mail may be returned to its senders.

To make room, delete messages you no longer need, above all large ones with
attachments, then empty the Trash and Junk folders (in most mail programs:
right-click the folder and choose \"Empty\"). Deleted messages count until the
Trash is emptied.
";

/// How full the quota is, on the resource nearest its limit: the share in
/// whole percent (rounded down), and use and limit in the user's terms.
/// `None` when nothing is limited.
fn fullness(q: &Quota) -> Option<(u64, String, String)> {
    let mut best: Option<(u128, u128, String, String)> = None;
    let mut consider = |used: u64, limit: u64, u: String, l: String| {
        // Compare used/limit exactly: used * other_limit vs other_used * limit.
        let better = best
            .as_ref()
            .is_none_or(|(bu, bl, ..)| u128::from(used) * *bl > *bu * u128::from(limit));
        if better {
            best = Some((u128::from(used), u128::from(limit), u, l));
        }
    };
    if let Some(l) = q.bytes_limit {
        consider(q.bytes, l, human(q.bytes), human(l));
    }
    if let Some(l) = q.count_limit {
        let m = |n: u64| format!("{n} message{}", if n == 1 { "" } else { "s" });
        consider(q.count, l, m(q.count), m(l));
    }
    let (used, limit, u, l) = best?;
    let pct = (used * 100 / limit.max(1)).min(u128::from(u64::MAX)) as u64;
    Some((pct, u, l))
}

/// A size as people read it (binary units, as `mail.quota = "100M"` is).
fn human(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K * K {
        format!("{} KB", bytes.div_ceil(1024))
    } else if b < K * K * K {
        trim(format!("{:.1}", b / (K * K))) + " MB"
    } else {
        trim(format!("{:.1}", b / (K * K * K))) + " GB"
    }
}

fn trim(s: String) -> String {
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// The highest step reached by `q` (0: none).
pub fn level(q: &Quota, steps: &[u8]) -> u8 {
    let Some((pct, ..)) = fullness(q) else {
        return 0;
    };
    steps
        .iter()
        .copied()
        .filter(|&s| u64::from(s) <= pct)
        .max()
        .unwrap_or(0)
}

/// The step last warned for, from [`LEVEL_FILE`] (0 when missing or not a
/// number).
pub fn read_level(root: &Dir) -> u8 {
    root.read(LEVEL_FILE)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn write_level(root: &Dir, level: u8, mode: u32, fsync: bool) -> io::Result<()> {
    root.write_atomic(LEVEL_FILE, format!("{level}\n").as_bytes(), mode, fsync)
}

/// Fills a template's placeholders.
fn fill(template: &str, w: &QuotaWarnings, pct: u64, used: &str, limit: &str) -> String {
    template
        .replace("{percent}", &pct.to_string())
        .replace("{used}", used)
        .replace("{limit}", limit)
        .replace("{hostname}", &w.hostname)
}

/// A header value: as it is when ASCII, else an RFC 2047 encoded word.
fn header_value(v: &str) -> String {
    let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    if v.is_ascii() {
        return v;
    }
    use base64::Engine as _;
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
    )
}

/// The warning message for `q` (LF line ends, as an MTA stores mail).
pub fn render(w: &QuotaWarnings, q: &Quota, unique: &str) -> Vec<u8> {
    let (pct, used, limit) = fullness(q).unwrap_or((0, String::new(), String::new()));
    let subject = fill(&w.subject, w, pct, &used, &limit);
    let mut text = fill(&w.text, w, pct, &used, &limit).replace("\r\n", "\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut m = String::new();
    m.push_str(&format!("From: {}\n", header_value(&w.from)));
    m.push_str(&format!("To: {}\n", header_value(&w.to)));
    m.push_str(&format!("Subject: {}\n", header_value(&subject)));
    m.push_str(&format!(
        "Date: {}\n",
        chrono::Local::now().format("%a, %d %b %Y %H:%M:%S %z")
    ));
    m.push_str(&format!("Message-ID: <{unique}.quota@{}>\n", w.hostname));
    // RFC 3834: no auto-reply or vacation answer to it.
    m.push_str("Auto-Submitted: auto-generated\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\n");
    m.push_str("Content-Transfer-Encoding: 8bit\n\n");
    m.push_str(&text);
    m.into_bytes()
}

/// Delivers the warning for `q` into the INBOX at `root` (`tmp/`, then
/// `new/`); returns its size.
fn deliver(root: &Dir, w: &QuotaWarnings, q: &Quota, mode: u32, fsync: bool) -> io::Result<u64> {
    let unique = filename::unique_base();
    let body = render(w, q, &unique);
    let lines = body.iter().filter(|&&b| b == b'\n').count() as u64;
    let len = body.len() as u64;
    let name = format!("{unique},S={len},W={}", len + lines);
    let tmp = root.dir("tmp")?;
    let new = root.dir("new")?;
    let mut f = tmp.create_new(&name, mode)?;
    let written = f.write_all(&body).and_then(|()| {
        if fsync {
            f.sync_all()?;
        }
        Ok(())
    });
    drop(f);
    if let Err(e) = written.and_then(|()| tmp.rename(&name, &new, &name)) {
        let _ = tmp.unlink(&name);
        return Err(e);
    }
    if fsync {
        new.sync()?;
    }
    Ok(len)
}

/// Warns if `q` has crossed a step above the one last warned for, and
/// lowers the recorded step when use fell below it. `warned` is the
/// caller's copy of the recorded step (`None`: not read yet). Returns the
/// size of the warning delivered, if one was.
pub fn check(
    root: &Dir,
    w: &QuotaWarnings,
    q: &Quota,
    warned: &mut Option<u8>,
    mode: u32,
    fsync: bool,
) -> io::Result<Option<u64>> {
    let now = level(q, &w.steps);
    let last = *warned.get_or_insert_with(|| read_level(root));
    if now == last {
        return Ok(None);
    }
    let delivered = if now > last {
        let len = deliver(root, w, q, mode, fsync)?;
        tracing::info!(root = %root.display(), percent = now, "quota warning delivered");
        Some(len)
    } else {
        None
    };
    write_level(root, now, mode, fsync)?;
    *warned = Some(now);
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn q(bytes: u64, bl: Option<u64>, count: u64, cl: Option<u64>) -> Quota {
        Quota {
            bytes_limit: bl,
            count_limit: cl,
            bytes,
            count,
        }
    }

    fn warnings() -> QuotaWarnings {
        QuotaWarnings {
            steps: vec![90, 100],
            from: "postmaster@mail.example".into(),
            to: "ann".into(),
            hostname: "mail.example".into(),
            subject: DEFAULT_SUBJECT.into(),
            text: DEFAULT_TEXT.into(),
        }
    }

    #[test]
    fn levels_follow_the_fullest_resource() {
        let steps = [90, 100];
        assert_eq!(level(&q(89, Some(100), 0, None), &steps), 0);
        assert_eq!(level(&q(90, Some(100), 0, None), &steps), 90);
        assert_eq!(level(&q(99, Some(100), 0, None), &steps), 90);
        assert_eq!(level(&q(100, Some(100), 0, None), &steps), 100);
        assert_eq!(level(&q(250, Some(100), 0, None), &steps), 100);
        assert_eq!(level(&q(10, Some(100), 9, Some(10)), &steps), 90);
        assert_eq!(level(&q(10, None, 1, None), &steps), 0);
        assert_eq!(level(&q(95, Some(100), 0, None), &[]), 0);
        // No overflow near u64::MAX.
        assert_eq!(level(&q(u64::MAX, Some(u64::MAX), 0, None), &steps), 100);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 KB");
        assert_eq!(human(1500), "2 KB");
        assert_eq!(human(100 << 20), "100 MB");
        assert_eq!(human(94_000_000), "89.6 MB");
        assert_eq!(human(3 << 30), "3 GB");
    }

    #[test]
    fn message_reads_well_and_encodes_non_ascii() {
        let mut w = warnings();
        let text =
            String::from_utf8(render(&w, &q(95 << 20, Some(100 << 20), 3, None), "u1")).unwrap();
        assert!(
            text.contains("Subject: Your mailbox is 95% full\n"),
            "{text}"
        );
        assert!(text.contains("holds 95 MB of the 100 MB"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-generated\n"));
        assert!(text.contains("Message-ID: <u1.quota@mail.example>\n"));
        assert!(!text.contains('\r'));
        w.subject = "Postfach zu {percent} % voll – bitte aufräumen".into();
        let text = String::from_utf8(render(&w, &q(1, None, 9, Some(10)), "u2")).unwrap();
        let subject = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(subject.starts_with("Subject: =?UTF-8?B?"), "{subject}");
        assert!(
            text.contains("holds 9 messages of the 10 messages"),
            "{text}"
        );
    }

    #[test]
    fn warns_once_per_crossing() {
        let d = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir(d.path().join(sub)).unwrap();
        }
        let root = Dir::open_root(d.path()).unwrap();
        let w = warnings();
        let delivered = || fs::read_dir(d.path().join("new")).unwrap().count();
        let mut warned = None;
        let mut at = |bytes| {
            check(
                &root,
                &w,
                &q(bytes, Some(100), 0, None),
                &mut warned,
                0o600,
                false,
            )
            .unwrap()
        };
        at(50);
        assert_eq!(delivered(), 0);
        at(91);
        assert_eq!(delivered(), 1);
        at(95);
        at(92);
        assert_eq!(delivered(), 1, "no second warning above the same step");
        at(100);
        assert_eq!(delivered(), 2);
        at(80);
        assert_eq!(delivered(), 2);
        assert_eq!(read_level(&root), 0);
        at(90);
        assert_eq!(delivered(), 3, "a new crossing warns again");
        // The step survives a restart (a fresh copy reads the file).
        let mut fresh = None;
        check(
            &root,
            &w,
            &q(93, Some(100), 0, None),
            &mut fresh,
            0o600,
            false,
        )
        .unwrap();
        assert_eq!(delivered(), 3);
        assert!(fs::read_dir(d.path().join("tmp")).unwrap().next().is_none());
        // The file's name carries its sizes, as our own saves do.
        let name = fs::read_dir(d.path().join("new"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name()
            .into_string()
            .unwrap();
        let len = fs::metadata(d.path().join("new").join(&name))
            .unwrap()
            .len();
        assert!(name.contains(&format!(",S={len},W=")), "{name}");
    }
}
