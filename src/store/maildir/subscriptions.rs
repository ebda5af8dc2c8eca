//! The subscription list: Dovecot's `subscriptions` file at the Maildir
//! root, and Courier's `courierimapsubscribed` as a read-only fallback.
//!
//! Version 2 (what we write): `V\t2\n\n`, then one name a line with a tab
//! where the hierarchy separator goes and each level in modified UTF-7, as
//! Dovecot 2.3 writes it (checked against a real Dovecot: `Entwürfe/Sub` is
//! stored as `Entw&APw-rfe<TAB>Sub`). Version 1 (no header): one storage
//! name a line, `.` between levels, levels in modified UTF-7.
//! Courier: `INBOX.A.B` names (namespace prefix `INBOX.`). Owns only this
//! file; it never checks that subscribed folders exist (RFC 9051 §6.3.7).

use crate::store::beneath::Dir;
use std::io;

use super::names;

pub const FILE: &str = "subscriptions";
pub const COURIER: &str = "courierimapsubscribed";

/// Parses a `subscriptions` file (either version).
pub fn parse(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(body) = text.strip_prefix("V\t2\n") {
        for line in body.lines().filter(|l| !l.is_empty()) {
            out.push(levels_to_name(line.split('\t')));
        }
    } else {
        for line in text.lines().filter(|l| !l.is_empty()) {
            out.push(storage_to_name(line));
        }
    }
    dedup(out)
}

/// Parses Courier's `courierimapsubscribed`.
pub fn parse_courier(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line == "INBOX" {
            out.push("INBOX".to_string());
        } else if let Some(rest) = line.strip_prefix("INBOX.") {
            out.push(storage_to_name(rest));
        }
    }
    dedup(out)
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|n| seen.insert(n.clone()));
    v
}

/// `A.B` (levels in modified UTF-7) to `A/B`.
fn storage_to_name(s: &str) -> String {
    levels_to_name(s.split('.'))
}

/// Joins decoded levels with `/`. A level that is not valid modified
/// UTF-7 (e.g. raw UTF-8 from another writer) is kept as it is: dropping
/// it would lose the subscription at our next write.
fn levels_to_name<'a>(levels: impl Iterator<Item = &'a str>) -> String {
    let out: Vec<String> = levels
        .map(|l| names::decode_level(l).unwrap_or_else(|| l.to_string()))
        .collect();
    out.join("/")
}

/// Renders the version-2 file.
pub fn render(list: &[String]) -> String {
    let mut out = String::from("V\t2\n\n");
    for n in list {
        let levels: Vec<String> = n.split('/').map(names::encode_level).collect();
        out.push_str(&levels.join("\t"));
        out.push('\n');
    }
    out
}

/// Reads the subscriptions of the Maildir at `root`.
pub fn load(root: &Dir) -> io::Result<Vec<String>> {
    match root.read(FILE) {
        Ok(b) => return Ok(parse(&String::from_utf8_lossy(&b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match root.read(COURIER) {
        Ok(b) => Ok(parse_courier(&String::from_utf8_lossy(&b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Writes the list in version 2, atomically.
pub fn save(root: &Dir, list: &[String], fsync: bool) -> io::Result<()> {
    root.write_atomic(FILE, render(list).as_bytes(), super::FILE_MODE, fsync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, &[&str])] = &[
            ("V\t2\n\nINBOX\nA\tB\nSent\n", &["INBOX", "A/B", "Sent"]),
            ("V\t2\n\n", &[]),
            // As Dovecot 2.3 wrote it.
            ("V\t2\n\nArchive\nLists\trust\n", &["Archive", "Lists/rust"]),
            ("INBOX\nA.B\nA.B\n", &["INBOX", "A/B"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), *want, "{text:?}");
        }
        assert_eq!(parse_courier("INBOX\nINBOX.A.B\nother\n"), ["INBOX", "A/B"]);
    }

    #[test]
    fn round_trip_and_courier_fallback() {
        let d = tempfile::tempdir().unwrap();
        let root = Dir::open_root(d.path()).unwrap();
        assert!(load(&root).unwrap().is_empty());
        std::fs::write(d.path().join(COURIER), "INBOX.Sent\n").unwrap();
        assert_eq!(load(&root).unwrap(), ["Sent"]);
        let names = vec!["INBOX".to_string(), "A/B".to_string()];
        save(&root, &names, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join(FILE)).unwrap(),
            "V\t2\n\nINBOX\nA\tB\n"
        );
        assert_eq!(load(&root).unwrap(), names);
    }
}
