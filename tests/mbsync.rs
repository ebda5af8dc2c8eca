//! mbsync (isync) against the server: a generated Maildir of 500 messages in five folders is
//! served, fully synced to a local Maildir over IMAPS, then flags are changed and messages
//! deleted on both sides, synced again in both directions, and both ends must be identical:
//! the same messages (by Message-ID) in the same folders with the same flags.

mod common;

use common::{ImapClient, Options, PASSWORD, TestServer, USER};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (IMAP name, Maildir++ directory name, message count): 500 messages in all.
const FOLDERS: &[(&str, &str, usize)] = &[
    ("INBOX", "", 250),
    ("Archive", ".Archive", 120),
    ("Sent", ".Sent", 60),
    ("Work", ".Work", 40),
    ("Work/Projects", ".Work.Projects", 30),
];

/// Folder -> Message-ID -> sorted IMAP flags (system flags mbsync syncs).
type State = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn message(folder: &str, i: usize) -> (String, Vec<u8>) {
    let id = format!(
        "{}-{i}@gen.example",
        folder.replace('/', "-").to_lowercase()
    );
    let body = format!(
        "Date: Tue, 14 Nov 2023 10:{:02}:00 +0000\nFrom: Gen <gen@example.org>\nTo: alice@example.org\n\
         Subject: Message {i} in {folder}\nMessage-ID: <{id}>\n\nBody of message {i}.\n{}\n",
        i % 60,
        "x".repeat(i % 200)
    );
    (id, body.into_bytes())
}

fn flag_letters(i: usize) -> String {
    let mut s = String::new();
    if i % 7 == 0 {
        s.push('F');
    }
    if i % 5 == 0 {
        s.push('R');
    }
    if i % 3 != 0 {
        s.push('S');
    }
    s
}

fn letters_to_flags(letters: &str) -> Vec<String> {
    let mut f: Vec<String> = letters
        .chars()
        .filter_map(|c| match c {
            'D' => Some("\\Draft"),
            'F' => Some("\\Flagged"),
            'R' => Some("\\Answered"),
            'S' => Some("\\Seen"),
            'T' => Some("\\Deleted"),
            _ => None,
        })
        .map(str::to_string)
        .collect();
    f.sort();
    f
}

/// Write the generated Maildir (no uidlist: the server assigns UIDs on first sight).
fn generate(root: &Path) {
    for (name, dir, count) in FOLDERS {
        let d = root.join(dir);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        if !dir.is_empty() {
            fs::write(d.join("maildirfolder"), b"").expect("maildirfolder");
        }
        for i in 0..*count {
            let (_, data) = message(name, i);
            let base = format!("{}.M{i}P1Q{i}.gen,S={}", 1_700_000_000 + i, data.len());
            // A few messages arrive in new/, as from an MTA.
            let path = if i % 50 == 49 {
                d.join("new").join(&base)
            } else {
                d.join("cur").join(format!("{base}:2,{}", flag_letters(i)))
            };
            fs::write(path, data).expect("write message");
        }
    }
}

fn message_id(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.to_ascii_lowercase().starts_with("message-id:") {
            let v = line[11..].trim();
            return Some(v.trim_start_matches('<').trim_end_matches('>').to_string());
        }
    }
    None
}

/// The local (mbsync) side: `SubFolders Verbatim`, INBOX at `local/INBOX`.
fn local_state(local: &Path) -> State {
    let mut state = State::new();
    for (name, _, _) in FOLDERS {
        let d = local.join(name);
        let mut msgs = BTreeMap::new();
        for sub in ["cur", "new"] {
            let Ok(rd) = fs::read_dir(d.join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let fname = e.file_name().to_string_lossy().into_owned();
                let letters = fname.split_once(":2,").map(|(_, f)| f).unwrap_or("");
                let data = fs::read(e.path()).expect("read local message");
                let id = message_id(&data).expect("Message-ID");
                let prev = msgs.insert(id.clone(), letters_to_flags(letters));
                assert!(prev.is_none(), "duplicate {id} in local {name}");
            }
        }
        state.insert(name.to_string(), msgs);
    }
    state
}

/// The server side, read over IMAP (what any client would see).
fn server_state(c: &mut ImapClient) -> State {
    let re_flags = regex::Regex::new(r"FLAGS \(([^)]*)\)").expect("re");
    let re_id = regex::Regex::new(r"(?i)Message-ID:\s*<([^>]*)>").expect("re");
    let mut state = State::new();
    for (name, _, _) in FOLDERS {
        c.ok(&format!("EXAMINE \"{name}\""));
        let mut msgs = BTreeMap::new();
        for l in c.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])") {
            if !l.contains(" FETCH ") {
                continue;
            }
            let flags = re_flags.captures(&l).expect("FLAGS in FETCH")[1]
                .split_whitespace()
                .filter(|f| f.starts_with('\\') && *f != "\\Recent")
                .map(str::to_string)
                .collect::<Vec<_>>();
            let mut flags = flags;
            flags.sort();
            let id = re_id.captures(&l).expect("Message-ID in FETCH")[1].to_string();
            let prev = msgs.insert(id.clone(), flags);
            assert!(prev.is_none(), "duplicate {id} on the server in {name}");
        }
        state.insert(name.to_string(), msgs);
    }
    state
}

fn run_mbsync(rc: &Path, dir: &Path) {
    let out = Command::new("timeout")
        .args(["300", "mbsync", "-c"])
        .arg(rc)
        .arg("-a")
        .current_dir(dir)
        .output()
        .expect("run mbsync");
    assert!(
        out.status.success(),
        "mbsync failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(s: &State) -> usize {
    s.values().map(|m| m.len()).sum()
}

#[test]
#[cfg_attr(
    nestbox_missing_mbsync,
    ignore = "mbsync is not installed (Debian package isync)"
)]
fn mbsync_full_sync_then_changes_on_both_sides() {
    if !common::require_tool("mbsync", "isync, the mbsync client") {
        return;
    }
    let seed = tempfile::tempdir().expect("tempdir");
    generate(seed.path());
    let server = TestServer::start_with(Options {
        seed_maildir: Some(seed.path().to_path_buf()),
        ..Options::default()
    });
    let local: PathBuf = server.dir.join("local");
    fs::create_dir_all(&local).expect("local dir");
    let rc = server.dir.join("mbsyncrc");
    fs::write(
        &rc,
        format!(
            "IMAPAccount remote\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\n\
             SSLType IMAPS\nCertificateFile {ca}\n\n\
             IMAPStore remote\nAccount remote\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nSync All\nCreate Both\n\
             Expunge Both\nSyncState *\n",
            port = server.imaps_port,
            ca = server.ca_file.display(),
            local = local.display(),
        ),
    )
    .expect("write mbsyncrc");

    // 1. Full sync: the local copy equals the server, 500 messages.
    run_mbsync(&rc, &server.dir);
    let mut imap = ImapClient::login(&server, USER, PASSWORD);
    let remote = server_state(&mut imap);
    assert_eq!(
        count(&remote),
        500,
        "server must show all generated messages"
    );
    let near = local_state(&local);
    assert_eq!(near, remote, "after the first sync");
    // The generated flags survived the trip (spot check against the generator).
    let inbox = &remote["INBOX"];
    assert_eq!(inbox["inbox-7@gen.example"], vec!["\\Flagged", "\\Seen"]);
    assert_eq!(inbox["inbox-15@gen.example"], vec!["\\Answered"]);
    assert_eq!(inbox["inbox-49@gen.example"], Vec::<String>::new());

    // 2. Changes on the server, through IMAP: flag 10 messages, delete 5 in Archive.
    imap.ok("SELECT INBOX");
    imap.ok("STORE 1:10 +FLAGS.SILENT (\\Flagged)");
    imap.ok("SELECT Archive");
    imap.ok("STORE 1:5 +FLAGS.SILENT (\\Deleted)");
    imap.ok("EXPUNGE");
    imap.ok("UNSELECT");

    // 3. Changes on the local side: mark every Sent message seen, delete 3 in Work/Projects.
    let mut renamed = 0;
    let sent = local.join("Sent");
    for sub in ["cur", "new"] {
        for e in fs::read_dir(sent.join(sub)).expect("local Sent").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let (base, letters) = name.split_once(":2,").unwrap_or((&name, ""));
            if letters.contains('S') {
                continue;
            }
            let mut l: Vec<char> = letters.chars().chain(['S']).collect();
            l.sort();
            let new = format!("{base}:2,{}", l.into_iter().collect::<String>());
            fs::rename(e.path(), sent.join("cur").join(new)).expect("rename");
            renamed += 1;
        }
    }
    assert!(renamed > 0);
    let mut removed = Vec::new();
    let mut entries: Vec<_> = ["cur", "new"]
        .iter()
        .flat_map(|sub| fs::read_dir(local.join("Work/Projects").join(sub)).expect("local dir"))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries.iter().take(3) {
        removed.push(message_id(&fs::read(p).expect("read")).expect("id"));
        fs::remove_file(p).expect("remove");
    }

    // 4. Sync both ways; both ends identical and the changes applied.
    run_mbsync(&rc, &server.dir);
    let remote = server_state(&mut imap);
    let near = local_state(&local);
    assert_eq!(near, remote, "after the second sync");
    assert_eq!(count(&remote), 500 - 5 - 3);
    assert!(
        remote["Sent"]
            .values()
            .all(|f| f.contains(&"\\Seen".to_string())),
        "local \\Seen changes reached the server"
    );
    for id in &removed {
        assert!(
            !remote["Work/Projects"].contains_key(id),
            "{id} deleted locally"
        );
    }
    let flagged = remote["INBOX"]
        .values()
        .filter(|f| f.contains(&"\\Flagged".to_string()))
        .count();
    assert!(flagged >= 10, "server flag changes reached the local side");

    // 5. A third sync with no changes changes nothing.
    run_mbsync(&rc, &server.dir);
    assert_eq!(server_state(&mut imap), remote);
    assert_eq!(local_state(&local), near);
    imap.logout();
}
