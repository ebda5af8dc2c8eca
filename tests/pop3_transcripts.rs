//! POP3 transcript tests: every `tests/pop3_transcripts/*.txt` file is replayed against a fresh
//! server (see `common::TestServer`) over the cleartext loopback POP3 port, and each server line
//! is checked against the file. `TRANSCRIPT=substring` runs only the files whose name contains
//! it; `NESTBOX_TEST_SERVER=dovecot` replays them against Dovecot's pop3 (the reference).
//!
//! # File format
//! The IMAP transcripts' format (`tests/transcripts.rs`), for a protocol without tags or
//! literals. One step per line; blank lines and lines starting with `#` are ignored. A digit
//! after the step's name picks a connection (`C2:`, `S2~`, `LOGIN2`, `TLS2`...; default 1);
//! connections open on first use (the greeting is then the first line to expect).
//!
//! - `#! fixture NAME`: copy `tests/fixtures/maildirs/NAME/` into alice's Maildir before start.
//! - `#! skip dovecot`: nestbox-specific behaviour (or an RFC rule Dovecot breaks: the file says
//!   which), not replayed against Dovecot.
//! - `#! pop3 KEY = VALUE`: a `[pop3]` line for nestbox's config (e.g. `dele = "flag"`).
//! - `#! option plaintext_on_loopback=false`: a server option.
//! - `LOGIN`: on a new connection, read the `+OK` greeting, then `USER alice` and
//!   `PASS secret`, each `+OK`.
//! - `TLS`: the TLS handshake (trusting the test CA), after a `C: STLS` and its `+OK` line.
//!   Any byte the server sent before the handshake fails the step (RFC 2595 §3.2).
//! - `C: text`: send `text` CRLF in one write. `{crlf}` inside sends a CRLF there (pipelined
//!   commands: `C: STAT{crlf}LIST`), `{fill:N}` inserts N `x` characters.
//! - `S: text`: the next server line must be exactly `text` (without its CRLF; a dot-stuffed
//!   line is written as sent, `..text`). `S~ regex`: the next line must match `regex` in full.
//! - `U: text` / `U~ regex`: a run of consecutive U lines matches the same number of server
//!   lines in any order (CAPA). `U?:`/`U?~`/`S?:`/`S?~` are optional; `S!~ regex` (or `S!:`):
//!   the next line must exist and NOT match.
//! - `BODY PATH`: the next lines must be the file `tests/fixtures/PATH` as RETR sends it: bare
//!   LF turned into CRLF, each line dot-stuffed, and a last line without a line break ended
//!   with one (RFC 1939 §3). The `.` line after it is written out as `S: .`.
//! - `EOF`: the server must close the connection.
//!
//! `TRANSCRIPT_RECORD=1` prints what the server answers to the `C:` lines instead, as
//! expectations to review (every recorded line must still be checked against the RFC).

mod common;

use common::{Kind, Options, Pop3Client, TestServer, fixtures_dir};
use regex::Regex;
use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one expected line may take to arrive.
const LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// In record mode: how long the server may stay quiet before the next command is sent.
const RECORD_QUIET: Duration = Duration::from_millis(1500);

#[derive(Debug)]
enum Matcher {
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
struct Pattern {
    optional: bool,
    negated: bool,
    matcher: Matcher,
    src: String,
    line_no: usize,
}

impl Pattern {
    fn matches(&self, line: &str) -> bool {
        let hit = match &self.matcher {
            Matcher::Exact(e) => e == line,
            Matcher::Regex(r) => r.is_match(line),
        };
        hit != self.negated
    }
}

#[derive(Debug)]
enum Step {
    Send {
        conn: usize,
        bytes: Vec<u8>,
    },
    Expect {
        conn: usize,
        group: Vec<Pattern>,
        unordered: bool,
    },
    Login {
        conn: usize,
    },
    Tls {
        conn: usize,
    },
    Eof {
        conn: usize,
    },
}

struct Transcript {
    options: Options,
    skip_dovecot: bool,
    /// (line number, step)
    steps: Vec<(usize, Step)>,
}

/// The wire lines RETR sends for a message file: LF -> CRLF, dot-stuffed, last line ended.
fn body_lines(raw: &[u8]) -> Vec<String> {
    let data = common::retr_form(raw);
    let mut lines = Vec::new();
    let mut rest = &data[..];
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = &rest[..i];
        let stuffed = if line.first() == Some(&b'.') {
            [b".", line].concat()
        } else {
            line.to_vec()
        };
        lines.push(String::from_utf8_lossy(&stuffed).into_owned());
        rest = &rest[i + 2..];
    }
    lines
}

/// Expands `{crlf}` and `{fill:N}` in a `C:` line and ends it with CRLF.
fn expand_client(text: &str) -> Result<Vec<u8>, String> {
    let fill = Regex::new(r"\{fill:(\d+)\}").expect("static regex");
    let mut out = String::new();
    let mut last = 0;
    for c in fill.captures_iter(text) {
        let m = c.get(0).expect("match");
        out.push_str(&text[last..m.start()]);
        let n: usize = c[1].parse().map_err(|_| format!("bad fill in {text:?}"))?;
        out.push_str(&"x".repeat(n));
        last = m.end();
    }
    out.push_str(&text[last..]);
    let mut bytes = out.replace("{crlf}", "\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n");
    Ok(bytes)
}

fn parse_transcript(path: &Path) -> Result<Transcript, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let line_re = Regex::new(r"^(C|S|U)(\d*)([?!])?([:~])(?: (.*))?$").expect("static regex");
    let word_re = Regex::new(r"^(LOGIN|TLS|EOF|BODY)(\d*)(?: (.*))?$").expect("static regex");
    let mut t = Transcript {
        options: Options::default(),
        skip_dovecot: false,
        steps: Vec::new(),
    };
    let mut pop3_extra = String::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |m: &str| format!("{}:{line_no}: {m}", path.display());
        let conn_of = |s: &str| -> Result<usize, String> {
            if s.is_empty() {
                Ok(1)
            } else {
                s.parse().map_err(|_| err("bad connection number"))
            }
        };
        if let Some(d) = line.strip_prefix("#!") {
            let d = d.trim();
            let words: Vec<&str> = d.split_whitespace().collect();
            match words.as_slice() {
                ["fixture", name] => {
                    t.options.seed_maildir = Some(fixtures_dir().join("maildirs").join(name))
                }
                ["skip", "dovecot"] => t.skip_dovecot = true,
                ["option", "plaintext_on_loopback=false"] => {
                    t.options.plaintext_on_loopback = false
                }
                ["pop3", ..] => {
                    pop3_extra.push_str(d["pop3".len()..].trim());
                    pop3_extra.push('\n');
                }
                _ => return Err(err("unknown directive")),
            }
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(c) = word_re.captures(line) {
            let conn = conn_of(&c[2])?;
            let arg = c.get(3).map(|m| m.as_str());
            let step = match (&c[1], arg) {
                ("LOGIN", None) => Step::Login { conn },
                ("TLS", None) => Step::Tls { conn },
                ("EOF", None) => Step::Eof { conn },
                ("BODY", Some(file)) => {
                    let raw = fs::read(fixtures_dir().join(file))
                        .map_err(|e| err(&format!("BODY {file}: {e}")))?;
                    let group = body_lines(&raw)
                        .into_iter()
                        .map(|l| Pattern {
                            optional: false,
                            negated: false,
                            src: format!("BODY line {l:?}"),
                            matcher: Matcher::Exact(l),
                            line_no,
                        })
                        .collect();
                    Step::Expect {
                        conn,
                        group,
                        unordered: false,
                    }
                }
                _ => return Err(err("bad step")),
            };
            t.steps.push((line_no, step));
            continue;
        }
        let caps = line_re
            .captures(line)
            .ok_or_else(|| err("not a transcript line"))?;
        let kind = &caps[1];
        let conn = conn_of(&caps[2])?;
        let optional = caps.get(3).is_some_and(|m| m.as_str() == "?");
        let negated = caps.get(3).is_some_and(|m| m.as_str() == "!");
        let is_regex = &caps[4] == "~";
        let body = caps.get(5).map(|m| m.as_str()).unwrap_or("").to_string();
        if kind == "C" {
            if optional || negated || is_regex {
                return Err(err("C takes ':' only"));
            }
            let bytes = expand_client(&body).map_err(|e| err(&e))?;
            t.steps.push((line_no, Step::Send { conn, bytes }));
            continue;
        }
        let matcher = if is_regex {
            Matcher::Regex(
                Regex::new(&format!("^(?:{body})$")).map_err(|e| err(&format!("regex: {e}")))?,
            )
        } else {
            Matcher::Exact(body)
        };
        let pat = Pattern {
            optional,
            negated,
            matcher,
            src: line.to_string(),
            line_no,
        };
        let unordered = kind == "U";
        match t.steps.last_mut() {
            Some((
                _,
                Step::Expect {
                    conn: c,
                    group,
                    unordered: true,
                },
            )) if unordered && *c == conn => group.push(pat),
            _ => t.steps.push((
                line_no,
                Step::Expect {
                    conn,
                    group: vec![pat],
                    unordered,
                },
            )),
        }
    }
    if !pop3_extra.is_empty() {
        t.options.pop3_extra = Some(pop3_extra);
    }
    Ok(t)
}

// ---- connections ----

struct Conn {
    client: Pop3Client,
    /// Lines read ahead of the step that wants them (None = EOF).
    pending: VecDeque<Option<String>>,
    log: Vec<String>,
}

impl Conn {
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        for l in String::from_utf8_lossy(bytes).split_terminator("\r\n") {
            let shown: String = l.chars().take(200).collect();
            let more = if l.len() > 200 { "..." } else { "" };
            self.log.push(format!("C: {shown}{more}"));
        }
        self.client.try_send(bytes)
    }

    /// The next server line, None at EOF.
    fn line(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(l);
        }
        let l = self
            .client
            .next_line(timeout)?
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        self.log.push(match &l {
            Some(l) => format!("S: {l}"),
            None => "S: <EOF>".into(),
        });
        Ok(l)
    }
}

struct Run<'a> {
    server: &'a TestServer,
    conns: Vec<Option<Conn>>,
}

impl Run<'_> {
    fn conn(&mut self, n: usize) -> &mut Conn {
        if self.conns.len() <= n {
            self.conns.resize_with(n + 1, || None);
        }
        let server = self.server;
        self.conns[n].get_or_insert_with(|| Conn {
            client: Pop3Client::from_tcp(server.connect_pop3()),
            pending: VecDeque::new(),
            log: Vec::new(),
        })
    }

    fn expect_ok(c: &mut Conn, what: &str) -> Result<(), String> {
        match c.line(LINE_TIMEOUT)? {
            Some(l) if l.starts_with("+OK") => Ok(()),
            other => Err(format!("{what}: expected +OK, got {other:?}")),
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Send { conn, bytes } => self.conn(*conn).send(bytes),
            Step::Login { conn } => {
                let c = self.conn(*conn);
                Self::expect_ok(c, "greeting")?;
                c.send(format!("USER {}\r\n", common::USER).as_bytes())?;
                Self::expect_ok(c, "USER")?;
                c.send(format!("PASS {}\r\n", common::PASSWORD).as_bytes())?;
                Self::expect_ok(c, "PASS")
            }
            Step::Tls { conn } => {
                let config = self.server.tls_client_config();
                let c = self.conn(*conn);
                if !c.pending.is_empty() {
                    return Err("lines left unread before the TLS handshake".into());
                }
                c.log.push("-- TLS handshake --".into());
                c.client.start_tls(&config)
            }
            Step::Eof { conn } => match self.conn(*conn).line(LINE_TIMEOUT)? {
                None => Ok(()),
                Some(l) => Err(format!("expected the server to close, got {l:?}")),
            },
            Step::Expect {
                conn,
                group,
                unordered,
            } => {
                let c = self.conn(*conn);
                let mut done = vec![false; group.len()];
                loop {
                    let open =
                        |done: &[bool]| group.iter().zip(done).all(|(p, d)| *d || p.optional);
                    if done.iter().all(|d| *d) {
                        return Ok(());
                    }
                    let l = match c.line(LINE_TIMEOUT) {
                        Ok(l) => l,
                        // A timeout is fine if only optional patterns are left.
                        Err(_) if open(&done) => return Ok(()),
                        Err(e) => return Err(missing(group, &done, &e)),
                    };
                    let Some(l) = l else {
                        c.pending.push_front(None);
                        if open(&done) {
                            return Ok(());
                        }
                        return Err(missing(group, &done, "the server closed the connection"));
                    };
                    let hit = (0..group.len()).find(|&i| {
                        !done[i]
                            && (*unordered
                                || group[..i].iter().zip(&done).all(|(q, d)| *d || q.optional))
                            && group[i].matches(&l)
                    });
                    match hit {
                        Some(i) => done[i] = true,
                        None if open(&done) => {
                            c.pending.push_front(Some(l));
                            return Ok(());
                        }
                        None => return Err(missing(group, &done, &format!("got {l:?}"))),
                    }
                }
            }
        }
    }
}

fn missing(group: &[Pattern], done: &[bool], got: &str) -> String {
    let want: Vec<String> = group
        .iter()
        .zip(done)
        .filter(|(_, d)| !**d)
        .map(|(p, _)| format!("  line {}: {}", p.line_no, p.src))
        .collect();
    format!("expected:\n{}\n{got}", want.join("\n"))
}

fn run_file(path: &Path, kind: Kind) -> Result<bool, String> {
    let t = parse_transcript(path)?;
    if kind == Kind::Dovecot && t.skip_dovecot {
        return Ok(false);
    }
    let server = TestServer::start_kind(kind, t.options);
    let mut run = Run {
        server: &server,
        conns: Vec::new(),
    };
    if std::env::var_os("TRANSCRIPT_RECORD").is_some() {
        println!("==== {}", path.display());
        record(&mut run, &t.steps);
        return Ok(true);
    }
    for (line_no, step) in &t.steps {
        if let Err(e) = run.step(step) {
            let mut msg = format!("{}:{line_no}: {e}\n--- conversation ---\n", path.display());
            for (i, c) in run.conns.iter().enumerate() {
                if let Some(c) = c {
                    msg.push_str(&format!("[connection {i}]\n"));
                    let from = c.log.len().saturating_sub(40);
                    for l in &c.log[from..] {
                        msg.push_str(&format!("  {}\n", l.escape_debug()));
                    }
                }
            }
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            msg.push_str("--- server log (tail) ---\n");
            for l in tail.into_iter().rev() {
                msg.push_str(&format!("  {l}\n"));
            }
            return Err(msg);
        }
    }
    Ok(true)
}

/// `TRANSCRIPT_RECORD=1`: runs the non-expectation steps and prints every server line as an
/// exact expectation (status lines loosened to `+OK.*` / `-ERR.*` with their response code).
fn record(run: &mut Run, steps: &[(usize, Step)]) {
    let status = Regex::new(r"^(\+OK|-ERR)( \[[^\]]*\])?").expect("static regex");
    for (_, step) in steps {
        let conn = match step {
            Step::Expect { .. } => continue,
            Step::Send { conn, bytes } => {
                for l in String::from_utf8_lossy(bytes).split_terminator("\r\n") {
                    let shown: String = l.chars().take(100).collect();
                    println!("C{}: {shown}", suffix(*conn));
                }
                *conn
            }
            Step::Login { conn } | Step::Tls { conn } | Step::Eof { conn } => {
                let name = match step {
                    Step::Login { .. } => "LOGIN",
                    Step::Tls { .. } => "TLS",
                    _ => "EOF",
                };
                println!("{name}{}", suffix(*conn));
                if let Err(e) = run.step(step) {
                    println!("# record: {e}");
                }
                continue;
            }
        };
        if let Err(e) = run.step(step) {
            println!("# record: {e}");
        }
        let c = run.conn(conn);
        loop {
            match c.line(RECORD_QUIET) {
                Ok(Some(l)) => match status.captures(&l) {
                    Some(s) => println!(
                        "S{}~ {}{}.*    # {l}",
                        suffix(conn),
                        regex::escape(&s[1]),
                        s.get(2)
                            .map(|m| regex::escape(m.as_str()))
                            .unwrap_or_default()
                    ),
                    None => println!("S{}: {l}", suffix(conn)),
                },
                Ok(None) => {
                    println!("EOF{}", suffix(conn));
                    c.pending.push_back(None);
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

fn suffix(conn: usize) -> String {
    if conn == 1 {
        String::new()
    } else {
        conn.to_string()
    }
}

#[test]
fn pop3_transcripts() {
    let kind = Kind::from_env();
    if kind == Kind::Dovecot
        && (!common::require_tool("dovecot", "reference server")
            || !common::require_tool("/usr/lib/dovecot/pop3", "Dovecot's POP3 (dovecot-pop3d)"))
    {
        return;
    }
    let dir = common::repo_root().join("tests").join("pop3_transcripts");
    let filter = std::env::var("TRANSCRIPT").unwrap_or_default();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/pop3_transcripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .filter(|p| p.to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no transcript matched {filter:?}");
    let mut failures = Vec::new();
    let (mut passed, mut skipped) = (0, 0);
    for f in &files {
        // A server that fails to start panics in the harness: that is this file's failure.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_file(f, kind)));
        match result {
            Ok(Ok(true)) => passed += 1,
            Ok(Ok(false)) => skipped += 1,
            Ok(Err(e)) => failures.push(e),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: panicked: {msg}", f.display()));
            }
        }
    }
    for f in &failures {
        eprintln!("FAILED {f}\n");
    }
    eprintln!(
        "pop3 transcripts: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} POP3 transcript(s) failed",
        failures.len()
    );
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn body_lines_stuff_dots_and_end_the_last_line() {
        let table: [(&[u8], &[&str]); 5] = [
            (b"a\nb\n", &["a", "b"]),
            (b"a\n.b\n.\n", &["a", "..b", ".."]),
            (b"a\r\nno end", &["a", "no end"]),
            (b"..x\n", &["...x"]),
            (b"", &[]),
        ];
        for (raw, want) in table {
            assert_eq!(body_lines(raw), want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn client_lines() {
        let table = [
            ("STAT", "STAT\r\n"),
            ("STAT{crlf}LIST 1", "STAT\r\nLIST 1\r\n"),
            ("NOOP {fill:3}y", "NOOP xxxy\r\n"),
        ];
        for (line, want) in table {
            assert_eq!(expand_client(line).unwrap(), want.as_bytes(), "{line}");
        }
    }

    #[test]
    fn patterns() {
        let p = |s: &str, negated| Pattern {
            optional: false,
            negated,
            matcher: Matcher::Regex(Regex::new(&format!("^(?:{s})$")).unwrap()),
            src: s.into(),
            line_no: 0,
        };
        assert!(p(r"\+OK.*", false).matches("+OK fine"));
        assert!(!p(r"\+OK", false).matches("+OK fine"));
        assert!(!p(r"\+OK.*", true).matches("+OK fine"));
        assert!(p(r"\+OK.*", true).matches("-ERR no"));
    }
}
