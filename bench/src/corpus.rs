//! Deterministic Maildir++ generator.
//!
//! Owns the test corpus: given a seed and a message count it writes the same bytes every time
//! (file names, contents, mtimes), so two servers, two machines or two runs see identical mail.
//! Every message is a pure function of `(seed, folder, index)`, which lets generation run on all
//! cores without shared state and lets a reply name its parent's Message-ID without bookkeeping.
//!
//! The corpus looks like what Postfix leaves behind (LF line ends, `tmp/` then `new/`, a few
//! messages still in `new/`) after an IMAP server has moved most of it to `cur/` with flags:
//! plain, multipart/alternative, multipart/mixed with base64 attachments, nested multiparts and
//! forwarded `message/rfc822`, RFC 2047 encoded subjects and names, threading headers, keywords
//! with a matching `dovecot-keywords`, and a few folders.
//!
//! Search terms are planted on a fixed schedule ([`SUBJECT_TERM`] in every [`SUBJECT_EVERY`]th
//! INBOX message, [`BODY_TERM`] in every [`BODY_EVERY`]th, some of them only visible after
//! decoding RFC 2047, quoted-printable or base64), and the exact hit sets are returned in
//! [`Expected`]. The generator never writes the terms anywhere else.
//!
//! It must never touch anything outside the output directory it is given.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Token planted in the Subject of every [`SUBJECT_EVERY`]th INBOX message.
pub const SUBJECT_TERM: &str = "zqsubjtoken";
/// Token planted in a text body part of every [`BODY_EVERY`]th INBOX message.
pub const BODY_TERM: &str = "zqbodytoken";
/// Period of the subject plant (a prime, so it drifts against the other schedules).
pub const SUBJECT_EVERY: usize = 97;
/// Period of the body plant.
pub const BODY_EVERY: usize = 101;
/// First Date/mtime of the corpus (2024-01-01T00:00:00Z); message `i` is `i * 37` s later.
const BASE_TIME: u64 = 1_704_067_200;
/// Host part of generated unique names and Message-IDs.
const HOST: &str = "bench.nestbox.example";

/// What the generator promises about the corpus it wrote; the harness checks servers against it.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Messages in INBOX (`cur/` plus `new/`).
    pub inbox: usize,
    /// INBOX messages in generation order.
    pub inbox_msgs: Vec<InboxMsg>,
    /// Message-IDs of INBOX messages whose Subject contains [`SUBJECT_TERM`].
    pub subject_hits: Vec<String>,
    /// Message-IDs of INBOX messages whose body contains [`BODY_TERM`].
    pub body_hits: Vec<String>,
    /// Other folders (IMAP names) and their message counts.
    pub folders: Vec<(String, usize)>,
    /// Total bytes written.
    pub bytes: u64,
}

impl Expected {
    /// The expectations as a small JSON document (counts, terms, folder sizes).
    pub fn to_json(&self) -> String {
        let folders: Vec<String> = self
            .folders
            .iter()
            .map(|(n, c)| format!("{{\"name\":{},\"messages\":{c}}}", json_str(n)))
            .collect();
        let ids = |v: &[String]| -> String {
            v.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(",")
        };
        format!(
            "{{\"inbox\":{},\"bytes\":{},\"subject_term\":{},\"subject_hits\":{},\"subject_hit_ids\":[{}],\"body_term\":{},\"body_hits\":{},\"body_hit_ids\":[{}],\"folders\":[{}]}}\n",
            self.inbox,
            self.bytes,
            json_str(SUBJECT_TERM),
            self.subject_hits.len(),
            ids(&self.subject_hits),
            json_str(BODY_TERM),
            self.body_hits.len(),
            ids(&self.body_hits),
            folders.join(",")
        )
    }
}

/// Quote a string as JSON.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// What a server must report for one INBOX message of the corpus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxMsg {
    /// Message-ID header value.
    pub id: String,
    /// Size with CRLF line ends (RFC822.SIZE).
    pub vsize: u64,
    /// Delivery time, Unix seconds (INTERNALDATE; also the file's mtime).
    pub time: u64,
    /// Maildir info letters (`RS`, `Fa`, ...; empty for a message still in `new/`).
    pub letters: String,
}

/// IMAP flags of Maildir info letters (SPEC §5; keywords as in the corpus' `dovecot-keywords`),
/// sorted. `P` is `$Forwarded`, which Dovecot does not map: `with_passed = false` leaves it out.
pub fn imap_flags(letters: &str, with_passed: bool) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = letters
        .chars()
        .filter_map(|c| match c {
            'D' => Some("\\Draft"),
            'F' => Some("\\Flagged"),
            'P' if with_passed => Some("$Forwarded"),
            'R' => Some("\\Answered"),
            'S' => Some("\\Seen"),
            'T' => Some("\\Deleted"),
            'a' => Some("$NotJunk"),
            'b' => Some("work"),
            'c' => Some("$label1"),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v
}

/// SplitMix64: tiny, fast, and good enough to make mail look varied; seeded per message.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose stream depends only on the given words.
    pub fn new(seed: u64, a: u64, b: u64) -> Rng {
        let mut r = Rng(seed
            ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
        r.next();
        r
    }
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "server",
    "mailbox",
    "message",
    "folder",
    "invoice",
    "meeting",
    "quarterly",
    "report",
    "schedule",
    "deploy",
    "release",
    "kernel",
    "compiler",
    "borrow",
    "checker",
    "lifetime",
    "trait",
    "async",
    "runtime",
    "socket",
    "latency",
    "throughput",
    "budget",
    "garden",
    "holiday",
    "weather",
    "coffee",
    "bicycle",
    "mountain",
    "river",
    "library",
    "concert",
    "ticket",
    "dinner",
    "project",
    "deadline",
    "review",
    "patch",
    "branch",
    "merge",
    "conflict",
    "tomorrow",
    "yesterday",
    "morning",
    "evening",
    "please",
    "thanks",
    "regards",
    "attached",
    "draft",
    "proposal",
    "contract",
    "customer",
    "support",
    "question",
    "answer",
    "update",
    "status",
    "network",
    "backup",
    "restore",
    "migration",
    "database",
    "index",
    "query",
    "cache",
];

const UTF8_LINES: &[&str] = &[
    "Grüße aus München, wir sehen uns übermorgen.",
    "Réunion de l'équipe reportée à jeudi après-midi.",
    "Счёт за октябрь во вложении, пожалуйста проверьте.",
    "会議の議事録を添付します。よろしくお願いします。",
    "Ελπίζω να είστε όλοι καλά αυτή την εβδομάδα.",
    "Smörgåsbord på fredag – alla är välkomna!",
    "Zażółć gęślą jaźń, to jest test znaków.",
];

/// (display name, address); names with non-ASCII characters get RFC 2047 encoding.
const PEOPLE: &[(&str, &str)] = &[
    ("Alice Example", "alice@example.org"),
    ("Bob", "bob@example.net"),
    ("Smith, John", "john.smith@example.com"),
    ("Jürgen Müller", "juergen.mueller@example.de"),
    ("François Lefèvre", "francois@example.fr"),
    ("Zoë Ångström", "zoe@example.se"),
    ("Łukasz Żółkiewski", "lukasz@example.pl"),
    ("田中 太郎", "tanaka@example.jp"),
    ("Ελένη Παπαδοπούλου", "eleni@example.gr"),
    ("Иван Петров", "ivan@example.ru"),
    ("", "noreply@lists.example.org"),
    ("Carol O'Neil", "carol@example.ie"),
];

const SUBJECTS: &[&str] = &[
    "Quarterly report",
    "Meeting tomorrow at ten",
    "Invoice 2024-117",
    "Patch review: borrow checker fix",
    "Holiday plans",
    "Grüße aus München",
    "Réunion de l'équipe",
    "Счёт за октябрь",
    "会議の議事録",
    "Release 1.4 is out",
    "Backup failed on host mx2",
    "Lunch?",
    "Re: deployment schedule",
    "Smörgåsbord på fredag",
];

/// One folder of the corpus: IMAP name, Maildir++ directory (relative), message count.
struct FolderSpec {
    name: &'static str,
    dir: &'static str,
    count: usize,
}

/// Write the corpus: `out/Maildir` (INBOX plus folders) and `out/expected.json`.
///
/// `messages` is the INBOX size; the other folders are 5 % to 10 % of it.
pub fn generate(out: &Path, messages: usize, seed: u64) -> io::Result<Expected> {
    let root = out.join("Maildir");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    let folders = [
        FolderSpec {
            name: "INBOX",
            dir: "",
            count: messages,
        },
        FolderSpec {
            name: "Sent",
            dir: ".Sent",
            count: messages / 20,
        },
        FolderSpec {
            name: "Archive",
            dir: ".Archive",
            count: messages / 10,
        },
        FolderSpec {
            name: "Lists/rust",
            dir: ".Lists.rust",
            count: messages / 20,
        },
    ];
    let mut exp = Expected {
        inbox: messages,
        ..Expected::default()
    };
    for (fi, f) in folders.iter().enumerate() {
        let dir = if f.dir.is_empty() {
            root.clone()
        } else {
            root.join(f.dir)
        };
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        if !f.dir.is_empty() {
            fs::write(dir.join("maildirfolder"), b"")?;
            exp.folders.push((f.name.to_string(), f.count));
        }
        // Keyword letters a, b, c are used in every folder (see `flags_for`).
        fs::write(
            dir.join("dovecot-keywords"),
            b"0 $NotJunk\n1 work\n2 $label1\n",
        )?;
        let results = write_folder(&dir, fi as u64, f.count, seed)?;
        for m in results {
            exp.bytes += m.size;
            if fi == 0 {
                if m.subject_hit {
                    exp.subject_hits.push(m.message_id.clone());
                }
                if m.body_hit {
                    exp.body_hits.push(m.message_id.clone());
                }
                exp.inbox_msgs.push(InboxMsg {
                    id: m.message_id,
                    vsize: m.vsize,
                    time: m.time,
                    letters: m.letters,
                });
            }
        }
    }
    fs::write(
        root.join("subscriptions"),
        b"V\t2\n\nSent\nArchive\nLists\trust\n",
    )?;
    fs::write(out.join("expected.json"), exp.to_json())?;
    Ok(exp)
}

/// What one written message contributed.
struct Written {
    message_id: String,
    size: u64,
    vsize: u64,
    time: u64,
    letters: String,
    subject_hit: bool,
    body_hit: bool,
}

/// The bytes (LF line ends) of message `i` of a synthetic `folder` that is not on disk: the
/// harness APPENDs and delivers these (folders 7 and up keep them apart from the corpus).
pub fn message_bytes(seed: u64, folder: u64, i: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed, folder, i as u64);
    build_message(&mut rng, seed, folder, i, message_time(i), false, false)
}

/// The Date (Unix seconds) of message `i` of [`message_bytes`].
pub fn message_time(i: usize) -> u64 {
    BASE_TIME + 86_400 * 400 + i as u64
}

/// IMAP date-time (`"dd-Mon-yyyy hh:mm:ss +0100"` without the quotes) from Unix seconds, in
/// the fixed +0100 zone of [`rfc5322_date`]: what a client such as mbsync gives APPEND.
pub fn imap_date(t: u64) -> String {
    let local = t + 3600;
    let (y, m, d) = civil_from_days((local / 86400) as i64);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    let secs = local % 86400;
    format!(
        "{d:02}-{mon}-{y} {:02}:{:02}:{:02} +0100",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Write one folder's messages on all available cores; results come back in index order.
fn write_folder(dir: &Path, folder: u64, count: usize, seed: u64) -> io::Result<Vec<Written>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let mut parts: Vec<io::Result<Vec<(usize, Written)>>> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> io::Result<Vec<(usize, Written)>> {
                    let mut v = Vec::new();
                    let mut i = t;
                    while i < count {
                        v.push((i, write_message(dir, folder, i, count, seed)?));
                        i += threads;
                    }
                    Ok(v)
                })
            })
            .collect();
        for h in handles {
            parts.push(
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("generator thread panicked"))),
            );
        }
    });
    let mut all = Vec::with_capacity(count);
    for p in parts {
        all.extend(p?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, w)| w).collect())
}

/// The Message-ID of message `i` in `folder`: a pure function so replies can reference it.
pub fn message_id(seed: u64, folder: u64, i: usize) -> String {
    let h = Rng::new(seed, folder + 1000, i as u64).next();
    format!("<{i}.{folder}.{h:016x}@{HOST}>")
}

fn write_message(
    dir: &Path,
    folder: u64,
    i: usize,
    count: usize,
    seed: u64,
) -> io::Result<Written> {
    let mut rng = Rng::new(seed, folder, i as u64);
    let time = BASE_TIME + i as u64 * 37 + folder * 7;
    let subject_hit = folder == 0 && i.is_multiple_of(SUBJECT_EVERY);
    let body_hit = folder == 0 && i.is_multiple_of(BODY_EVERY);
    let msg = build_message(&mut rng, seed, folder, i, time, subject_hit, body_hit);
    let size = msg.len() as u64;
    let vsize = size + msg.iter().filter(|&&b| b == b'\n').count() as u64;
    // The newest 1 % of INBOX is still in new/, as if Postfix delivered it after the last sync.
    let in_new = folder == 0 && i + count / 100 >= count && count >= 100;
    let usecs = rng.below(1_000_000);
    let base = format!(
        "{time}.M{usecs}P{}Q{i}.{HOST},S={size},W={vsize}",
        4000 + folder
    );
    let letters = if in_new {
        String::new()
    } else {
        flags_for(&mut rng, folder)
    };
    let path: PathBuf = if in_new {
        dir.join("new").join(base)
    } else {
        dir.join("cur").join(format!("{base}:2,{letters}"))
    };
    let mut f = fs::File::create(&path)?;
    f.write_all(&msg)?;
    // mtime is the delivery time: servers derive INTERNALDATE from it.
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(time))?;
    Ok(Written {
        message_id: message_id(seed, folder, i),
        size,
        vsize,
        time,
        letters,
        subject_hit,
        body_hit,
    })
}

/// Maildir info flags, letters in ASCII order (upper-case system flags, then keywords a..c).
fn flags_for(rng: &mut Rng, folder: u64) -> String {
    let mut s = String::new();
    if rng.pct(5) {
        s.push('F');
    }
    if rng.pct(3) {
        s.push('P');
    }
    if rng.pct(15) || folder == 1 {
        s.push('R');
    }
    if rng.pct(70) || folder == 1 {
        s.push('S');
    }
    if rng.pct(1) {
        s.push('T');
    }
    for k in ['a', 'b', 'c'] {
        if rng.pct(4) {
            s.push(k);
        }
    }
    s
}

/// RFC 2047 `B` encoding of `s` in UTF-8, split into encoded-words of at most 75 characters,
/// never splitting a character; the words are joined by folding white space.
pub fn encode_word_b(s: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", B64.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", B64.encode(chunk.as_bytes())));
    }
    words.join("\n ")
}

/// RFC 2047 `Q` encoding of `s` in UTF-8, split into encoded-words of at most 75 characters
/// at character boundaries.
pub fn encode_word_q(s: &str) -> String {
    const OPEN: &str = "=?UTF-8?Q?";
    let mut words = Vec::new();
    let mut w = String::from(OPEN);
    for c in s.chars() {
        let mut enc = String::new();
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            match b {
                b' ' => enc.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                    enc.push(b as char)
                }
                _ => {
                    let _ = write!(enc, "={b:02X}");
                }
            }
        }
        if w.len() + enc.len() + 2 > 75 {
            w.push_str("?=");
            words.push(std::mem::replace(&mut w, String::from(OPEN)));
        }
        w.push_str(&enc);
    }
    w.push_str("?=");
    words.push(w);
    words.join("\n ")
}

/// Quoted-printable (RFC 2045 §6.7) with LF line ends. `split` lists byte offsets of the input
/// where a soft line break is forced (used to split a planted token across lines).
pub fn encode_qp(input: &[u8], split: &[usize]) -> String {
    let mut out = String::with_capacity(input.len() * 11 / 10);
    let mut col = 0;
    for (pos, &b) in input.iter().enumerate() {
        if split.contains(&pos) {
            out.push_str("=\n");
            col = 0;
        }
        if b == b'\n' {
            out.push('\n');
            col = 0;
            continue;
        }
        let lit = (b == b'\t' || b == b' ' || (33..=126).contains(&b)) && b != b'=';
        // Trailing white space before a line end must be encoded (RFC 2045 rule 3).
        let ws_at_eol = (b == b' ' || b == b'\t') && input.get(pos + 1).is_none_or(|&n| n == b'\n');
        let piece_len = if lit && !ws_at_eol { 1 } else { 3 };
        if col + piece_len > 75 {
            out.push_str("=\n");
            col = 0;
        }
        if lit && !ws_at_eol {
            out.push(b as char);
        } else {
            let _ = write!(out, "={b:02X}");
        }
        col += piece_len;
    }
    out
}

/// Base64 body with 76-character lines.
fn encode_b64_lines(data: &[u8]) -> String {
    let enc = B64.encode(data);
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 + 1);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out
}

fn address(rng: &mut Rng) -> String {
    let (name, addr) = *rng.pick(PEOPLE);
    if name.is_empty() {
        addr.to_string()
    } else if !name.is_ascii() {
        if rng.pct(50) {
            format!("{} <{addr}>", encode_word_b(name))
        } else {
            format!("{} <{addr}>", encode_word_q(name))
        }
    } else if name.contains([',', '\'']) {
        format!("\"{name}\" <{addr}>")
    } else {
        format!("{name} <{addr}>")
    }
}

/// Random prose of about `bytes` bytes, wrapped at 72 columns, with occasional UTF-8 lines if
/// `utf8`. `plant` puts the body term in the second line.
fn prose(rng: &mut Rng, bytes: usize, utf8: bool, plant: bool) -> String {
    let mut s = String::with_capacity(bytes + 100);
    let mut line = String::new();
    let mut lines = 0;
    while s.len() < bytes {
        if utf8 && line.is_empty() && rng.pct(8) {
            s.push_str(rng.pick::<&str>(UTF8_LINES));
            s.push('\n');
            lines += 1;
            continue;
        }
        let w = rng.pick(WORDS);
        if line.len() + w.len() + 1 > 72 {
            s.push_str(&line);
            s.push('\n');
            line.clear();
            lines += 1;
            if plant && lines == 2 {
                s.push_str("see ");
                s.push_str(BODY_TERM);
                s.push_str(" for the details\n");
            }
            if rng.pct(12) {
                s.push('\n');
            }
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() || (plant && lines < 2) {
        s.push_str(&line);
        s.push('\n');
        if plant && lines < 2 {
            s.push_str("see ");
            s.push_str(BODY_TERM);
            s.push_str(" for the details\n");
        }
    }
    s
}

/// How a text part's body is transfer-encoded.
#[derive(Clone, Copy, PartialEq)]
enum Cte {
    SevenBit,
    EightBit,
    Qp,
    QpSplitTerm,
    Base64,
}

/// A `text/*` part (headers + body), the text in the chosen encoding.
fn text_part(subtype: &str, text: &str, cte: Cte) -> String {
    let (name, body) = match cte {
        Cte::SevenBit => ("7bit", text.to_string()),
        Cte::EightBit => ("8bit", text.to_string()),
        Cte::Qp => ("quoted-printable", encode_qp(text.as_bytes(), &[])),
        Cte::QpSplitTerm => {
            let splits: Vec<usize> = text
                .find(BODY_TERM)
                .map(|p| vec![p + 4])
                .unwrap_or_default();
            ("quoted-printable", encode_qp(text.as_bytes(), &splits))
        }
        Cte::Base64 => ("base64", encode_b64_lines(text.as_bytes())),
    };
    format!(
        "Content-Type: text/{subtype}; charset=\"utf-8\"\nContent-Transfer-Encoding: {name}\n\n{body}"
    )
}

fn html_of(text: &str) -> String {
    let mut h = String::from("<html><head><meta charset=\"utf-8\"></head><body>\n");
    for para in text.split("\n\n") {
        h.push_str("<p>");
        h.push_str(&para.replace('&', "&amp;").replace('<', "&lt;"));
        h.push_str("</p>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn attachment(rng: &mut Rng, bytes: usize) -> String {
    let kinds: &[(&str, &str)] = &[
        ("application/pdf", "report.pdf"),
        ("image/png", "photo.png"),
        ("application/zip", "archive.zip"),
        (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "budget.xlsx",
        ),
    ];
    let (ct, file) = *rng.pick(kinds);
    let data: Vec<u8> = (0..bytes.max(16)).map(|_| rng.next() as u8).collect();
    let disp = if rng.pct(20) {
        // RFC 2231 extended parameter for a non-ASCII file name.
        "attachment; filename*=UTF-8''Gr%C3%BC%C3%9Fe-%C3%BCbersicht.pdf".to_string()
    } else {
        format!("attachment; filename=\"{file}\"")
    };
    format!(
        "Content-Type: {ct}; name=\"{file}\"\nContent-Disposition: {disp}\nContent-Transfer-Encoding: base64\n\n{}",
        encode_b64_lines(&data)
    )
}

fn multipart(subtype: &str, boundary: &str, parts: &[String]) -> String {
    let mut s = format!(
        "Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\n\nThis is a multi-part message in MIME format.\n"
    );
    for p in parts {
        let _ = write!(s, "\n--{boundary}\n{p}");
    }
    let _ = write!(s, "\n--{boundary}--\n");
    s
}

/// RFC 5322 date from Unix seconds, in a fixed +0100 zone.
pub fn rfc5322_date(t: u64) -> String {
    let t = t + 3600;
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    let (y, m, d) = civil_from_days(days);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d} {mon} {y} {:02}:{:02}:{:02} +0100",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Build the full message bytes (LF line ends).
fn build_message(
    rng: &mut Rng,
    seed: u64,
    folder: u64,
    i: usize,
    time: u64,
    subject_hit: bool,
    body_hit: bool,
) -> Vec<u8> {
    // Sizes 2..50 KiB, skewed towards small like real mail. The parts' transfer encodings
    // make the result only roughly proportional to the target, so rescale and rebuild (from
    // the same random state, hence still deterministic) when it lands outside the range.
    let r = rng.below(1000) as f64 / 1000.0;
    let want = 2300 + (r * r * (MAX_SIZE - 2800) as f64) as usize;
    let mut target = want;
    let start = rng.clone();
    for _ in 0..4 {
        *rng = start.clone();
        let msg = build_sized(rng, seed, folder, i, time, subject_hit, body_hit, target);
        if (MIN_SIZE..=MAX_SIZE).contains(&msg.len()) {
            return msg;
        }
        target = (target as f64 * want as f64 / msg.len() as f64) as usize;
    }
    *rng = start;
    build_sized(rng, seed, folder, i, time, subject_hit, body_hit, target)
}

/// Smallest and largest message the generator writes.
pub const MIN_SIZE: usize = 2048;
/// See [`MIN_SIZE`].
pub const MAX_SIZE: usize = 50 * 1024;

/// Build a message aiming at `target` bytes.
#[allow(clippy::too_many_arguments)]
fn build_sized(
    rng: &mut Rng,
    seed: u64,
    folder: u64,
    i: usize,
    time: u64,
    subject_hit: bool,
    body_hit: bool,
    target: usize,
) -> Vec<u8> {
    let mid = message_id(seed, folder, i);
    let from = address(rng);
    let to = address(rng);
    let mut subject = rng.pick(SUBJECTS).to_string();
    if subject_hit {
        subject = format!("{subject} {SUBJECT_TERM} #{i}");
    }
    // Which plants need decoding: cycle through the variants so each kind occurs.
    let variant = i / BODY_EVERY % 4;
    let subject_enc = if !subject.is_ascii() || (subject_hit && i / SUBJECT_EVERY % 3 == 1) {
        if i.is_multiple_of(2) {
            encode_word_b(&subject)
        } else {
            encode_word_q(&subject)
        }
    } else {
        subject
    };
    let mut h = String::with_capacity(target + 1024);
    let _ = write!(
        h,
        "Return-Path: <bounce@example.org>\nDelivered-To: bench@{HOST}\nReceived: from mx.example.org (mx.example.org [192.0.2.25])\n\tby {HOST} (Postfix) with ESMTPS id 4X{i:08X}\n\tfor <bench@{HOST}>; {date}\n",
        date = rfc5322_date(time)
    );
    let _ = write!(h, "Date: {}\nFrom: {from}\nTo: {to}\n", rfc5322_date(time));
    if rng.pct(20) {
        let _ = writeln!(h, "Cc: {}, {}", address(rng), address(rng));
    }
    let _ = write!(h, "Subject: {subject_enc}\nMessage-ID: {mid}\n");
    if i > 0 && rng.pct(40) {
        // Reply to an earlier message of the same folder, with a References chain of up to 3.
        let parent = rng.below(i as u64) as usize;
        let pid = message_id(seed, folder, parent);
        let mut refs = Vec::new();
        if parent > 0 && rng.pct(50) {
            refs.push(message_id(seed, folder, rng.below(parent as u64) as usize));
        }
        refs.push(pid.clone());
        let _ = write!(h, "In-Reply-To: {pid}\nReferences: {}\n", refs.join("\n "));
    }
    if folder == 3 {
        let _ = write!(
            h,
            "List-Id: Rust users <rust.lists.example.org>\nPrecedence: list\n"
        );
    }
    h.push_str("MIME-Version: 1.0\n");

    let kind = if body_hit {
        // Planted body terms: plain 7bit, QP, QP split by a soft break, base64.
        // plain for 7bit and base64, multipart/alternative for the QP variants.
        match variant {
            0 | 3 => 0,
            _ => 40,
        }
    } else {
        rng.below(100)
    };
    let utf8 = rng.pct(30);
    let text_cte = if body_hit {
        match variant {
            0 => Cte::SevenBit,
            1 => Cte::Qp,
            2 => Cte::QpSplitTerm,
            _ => Cte::Base64,
        }
    } else if utf8 {
        *rng.pick(&[Cte::Qp, Cte::EightBit, Cte::Base64])
    } else {
        Cte::SevenBit
    };
    let utf8 = utf8 && text_cte != Cte::SevenBit;
    let boundary = |n: u32| format!("=_bench_{i:x}_{n}_{:x}", seed & 0xffff);
    let body = if kind < 35 {
        let text = prose(rng, target.saturating_sub(h.len() + 200), utf8, body_hit);
        text_part("plain", &text, text_cte)
    } else if kind < 60 {
        let text = prose(
            rng,
            target.saturating_sub(h.len() + 400) / 2,
            utf8,
            body_hit,
        );
        let html = html_of(&text);
        let html_cte = match text_cte {
            Cte::SevenBit => Cte::SevenBit,
            Cte::QpSplitTerm => Cte::QpSplitTerm,
            _ => Cte::Qp,
        };
        multipart(
            "alternative",
            &boundary(1),
            &[
                text_part("plain", &text, text_cte),
                text_part("html", &html, html_cte),
            ],
        )
    } else if kind < 85 {
        let len = 600 + rng.below(2000) as usize;
        let text = prose(rng, len, utf8, body_hit);
        let att = target.saturating_sub(h.len() + text.len() + 600) * 3 / 4;
        let mut parts = vec![text_part("plain", &text, text_cte), attachment(rng, att)];
        if rng.pct(25) {
            let len = 200 + rng.below(800) as usize;
            parts.push(attachment(rng, len));
        }
        multipart("mixed", &boundary(1), &parts)
    } else if kind < 95 {
        // mixed [ alternative [ plain, related [ html, inline png ] ], attachment ]
        let len = 800 + rng.below(2000) as usize;
        let text = prose(rng, len, utf8, body_hit);
        let html = html_of(&text);
        let png: Vec<u8> = (0..400 + rng.below(1200))
            .map(|_| rng.next() as u8)
            .collect();
        let inline = format!(
            "Content-Type: image/png\nContent-ID: <logo.{i}@{HOST}>\nContent-Disposition: inline\nContent-Transfer-Encoding: base64\n\n{}",
            encode_b64_lines(&png)
        );
        let related = multipart(
            "related",
            &boundary(3),
            &[text_part("html", &html, Cte::Qp), inline],
        );
        let alt = multipart(
            "alternative",
            &boundary(2),
            &[text_part("plain", &text, text_cte), related],
        );
        let att =
            target.saturating_sub(h.len() + text.len() * 2 + png.len() * 4 / 3 + 1200) * 3 / 4;
        multipart("mixed", &boundary(1), &[alt, attachment(rng, att)])
    } else {
        // Forwarded message: mixed [ plain, message/rfc822 [ alternative ] ].
        let len = 300 + rng.below(600) as usize;
        let text = prose(rng, len, utf8, body_hit);
        let inner_text = prose(rng, target.saturating_sub(h.len() + 1500) / 2, false, false);
        let inner = format!(
            "Content-Type: message/rfc822\nContent-Disposition: inline\n\nDate: {}\nFrom: {}\nTo: {}\nSubject: {}\nMessage-ID: <fwd.{i}.{folder}@{HOST}>\nMIME-Version: 1.0\n{}",
            rfc5322_date(time - 86400),
            address(rng),
            address(rng),
            encode_word_q("Fwd: Grüße"),
            multipart(
                "alternative",
                &boundary(2),
                &[
                    text_part("plain", &inner_text, Cte::SevenBit),
                    text_part("html", &html_of(&inner_text), Cte::SevenBit)
                ]
            )
        );
        multipart(
            "mixed",
            &boundary(1),
            &[text_part("plain", &text, text_cte), inner],
        )
    };
    h.push_str(&body);
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_like_dovecot() {
        let table: &[(&str, bool, &[&str])] = &[
            ("", true, &[]),
            ("RS", true, &["\\Answered", "\\Seen"]),
            (
                "FPSab",
                true,
                &["$Forwarded", "$NotJunk", "\\Flagged", "\\Seen", "work"],
            ),
            ("FPSab", false, &["$NotJunk", "\\Flagged", "\\Seen", "work"]),
            ("Tc", true, &["$label1", "\\Deleted"]),
        ];
        for (letters, passed, want) in table {
            assert_eq!(imap_flags(letters, *passed), *want, "{letters}");
        }
    }

    #[test]
    fn imap_dates() {
        assert_eq!(imap_date(0), "01-Jan-1970 01:00:00 +0100");
        assert_eq!(imap_date(BASE_TIME + 3599), "01-Jan-2024 01:59:59 +0100");
        assert_eq!(
            imap_date(BASE_TIME + 86_400 * 40),
            "10-Feb-2024 01:00:00 +0100"
        );
    }

    #[test]
    fn dates_are_rfc5322() {
        let table = [
            (0u64, "Thu, 1 Jan 1970 01:00:00 +0100"),
            (BASE_TIME, "Mon, 1 Jan 2024 01:00:00 +0100"),
            (1_709_164_800, "Thu, 29 Feb 2024 01:00:00 +0100"),
        ];
        for (t, want) in table {
            assert_eq!(rfc5322_date(t), want);
        }
    }

    #[test]
    fn qp_round_trip_and_line_length() {
        let table: &[&[u8]] = &[
            b"plain ascii line\n",
            "Grüße = ünïcödé\n".as_bytes(),
            b"trailing space \nnext\n",
            &[b'x'; 200],
        ];
        for input in table {
            let enc = encode_qp(input, &[]);
            assert!(enc.lines().all(|l| l.len() <= 76), "{enc}");
            assert_eq!(&decode_qp(&enc), input);
        }
    }

    #[test]
    fn qp_split_breaks_inside_term() {
        let text = format!("see {BODY_TERM} now\n");
        let enc = encode_qp(text.as_bytes(), &[8]);
        assert!(!enc.contains(BODY_TERM));
        assert_eq!(decode_qp(&enc), text.as_bytes());
    }

    #[test]
    fn encoded_words_stay_short_and_decode() {
        for s in [
            "Grüße aus München",
            "会議の議事録を添付します。よろしくお願いします。",
        ] {
            let b = encode_word_b(s);
            for w in b.split("\n ") {
                assert!(w.len() <= 75, "{w}");
            }
            let q = encode_word_q(s);
            for w in q.split("\n ") {
                assert!(w.len() <= 75, "{w}");
            }
        }
    }

    #[test]
    fn generation_is_deterministic_and_plants_exact_counts() {
        let (ga, gb) = (TempDir::new("a"), TempDir::new("b"));
        let (a, b) = (ga.0.clone(), gb.0.clone());
        let ea = generate(&a, 450, 7).expect("generate a");
        let eb = generate(&b, 450, 7).expect("generate b");
        assert_eq!(ea.subject_hits.len(), 5); // 0, 97, 194, 291, 388
        assert_eq!(ea.body_hits.len(), 5); // 0, 101, 202, 303, 404
        assert_eq!(ea.inbox_msgs, eb.inbox_msgs);
        let list = |p: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(p.join("Maildir/cur"))
                .expect("read cur")
                .map(|e| {
                    let e = e.expect("entry");
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).expect("read"),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let (la, lb) = (list(&a), list(&b));
        assert_eq!(la, lb);
        assert_eq!(la.len() + 4, 450); // 1 % in new/
        for (name, data) in &la {
            assert!(!data.contains(&b'\r'), "LF line ends only");
            let size: usize = name
                .split(",S=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.parse().ok())
                .expect("S= in name");
            assert_eq!(size, data.len(), "{name}");
            assert!(
                (MIN_SIZE..=MAX_SIZE).contains(&data.len()),
                "{name} {}",
                data.len()
            );
        }
        // The body term never appears in headers, the subject term never in bodies.
        let mut raw_body_hits = 0;
        for (_, data) in &la {
            let text = String::from_utf8_lossy(data);
            let (head, body) = text.split_once("\n\n").expect("header/body split");
            assert!(!head.contains(BODY_TERM));
            assert!(!body.contains(SUBJECT_TERM));
            raw_body_hits += usize::from(body.contains(BODY_TERM));
        }
        assert_eq!(
            raw_body_hits, 3,
            "planted body terms at 202 (QP split) and 303 (base64) need decoding"
        );
    }

    /// A scratch directory removed on drop, so a failing assertion leaves nothing behind.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            TempDir(
                std::env::temp_dir()
                    .join(format!("nestbox-bench-gen-{tag}-{}", std::process::id())),
            )
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn decode_qp(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                if b.get(i + 1) == Some(&b'\n') {
                    i += 2;
                    continue;
                }
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex digit"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }
}
