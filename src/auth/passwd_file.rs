//! Dovecot's passwd-file user database (SPEC §4):
//! `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields`, one user a line, `#` comments
//! and blank lines ignored, trailing fields optional.
//!
//! The file is re-read when its mtime, size or inode changes, checked with one `stat` per
//! lookup, so an operator can add users without restarting. A file that cannot be re-read
//! keeps the last good copy in memory (and says so in the log) rather than locking everyone
//! out. Bad lines are skipped with a line-numbered warning; they never stop the others.
//!
//! The extra fields nestbox reads itself (`nestbox_protocols`, `nestbox_pop3_dele`,
//! `nestbox_pop3_retr_seen`, also with Dovecot's `userdb_` prefix) are parsed at load
//! (`access::UserSettings`); a line with a bad one is skipped like any bad line.
//!
//! This module never verifies passwords itself (see `hash.rs`) and never logs hashes.
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::access::UserSettings;
use super::hash::StoredHash;

/// One user line.
#[derive(Clone, Debug)]
pub struct Entry {
    pub user: String,
    pub password: StoredHash,
    /// The uid/gid fields (`None` when empty): the user's worker runs as them
    /// (`server::identity`; without them, as `mail.user`).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<PathBuf>,
    /// The trailing `extra_fields` (space-separated `key=value`), kept verbatim
    /// (issue 19's per-user quota will come from Dovecot's
    /// `userdb_quota_rule=*:storage=100M` field here).
    pub extra: String,
    /// The `nestbox_` fields of `extra`: protocols, POP3's DELE and RETR
    /// (`access::UserSettings`). A line whose fields are wrong is skipped.
    pub settings: UserSettings,
}

/// A problem on one line; the line is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Parses the whole file. Returns the users (the first of duplicate names wins) and the
/// problems found.
pub fn parse(text: &str) -> (HashMap<String, Arc<Entry>>, Vec<LineError>) {
    let mut users = HashMap::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(e) => {
                if users.contains_key(&e.user) {
                    errors.push(LineError {
                        line: i + 1,
                        message: format!(
                            "duplicate user {:?} ignored (the first line wins)",
                            e.user
                        ),
                    });
                } else {
                    users.insert(e.user.clone(), Arc::new(e));
                }
            }
            Err(message) => errors.push(LineError {
                line: i + 1,
                message,
            }),
        }
    }
    (users, errors)
}

fn parse_line(line: &str) -> Result<Entry, String> {
    // extra_fields may contain ':' (e.g. `userdb_mail=maildir:/x`), so split at most 8 ways.
    let mut f = line.splitn(8, ':');
    let user = f.next().unwrap_or("");
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("empty or malformed user name".into());
    }
    let pw = f.next().ok_or("no password field")?;
    let password = StoredHash::parse(pw).map_err(|e| format!("user {user:?}: {e}"))?;
    let id = |s: Option<&str>, what: &str| -> Result<Option<u32>, String> {
        match s.map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("user {user:?}: bad {what} {v:?}")),
        }
    };
    let uid = id(f.next(), "uid")?;
    let gid = id(f.next(), "gid")?;
    let _gecos = f.next();
    let home = f.next().filter(|h| !h.is_empty()).map(PathBuf::from);
    let _shell = f.next();
    let extra = f.next().unwrap_or("").to_string();
    let settings =
        UserSettings::from_extra_fields(&extra).map_err(|e| format!("user {user:?}: {e}"))?;
    Ok(Entry {
        user: user.to_string(),
        password,
        uid,
        gid,
        home,
        extra,
        settings,
    })
}

/// What identifies one version of the file on disk.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

struct Loaded {
    stamp: Option<Stamp>,
    users: Arc<HashMap<String, Arc<Entry>>>,
    /// A hash of the most common scheme in the file, verified for unknown users so that
    /// they cost as much time as known ones.
    representative: Option<StoredHash>,
    /// Whether some user has a `{PLAIN}` secret (APOP can work).
    plaintext: bool,
}

/// The passwd-file, re-read when it changes.
pub struct PasswdFile {
    path: PathBuf,
    state: Mutex<Loaded>,
}

impl PasswdFile {
    /// Loads the file now; a missing or unreadable file at startup is an error.
    pub fn open(path: &Path) -> std::io::Result<PasswdFile> {
        let pf = PasswdFile {
            path: path.to_path_buf(),
            state: Mutex::new(Loaded {
                stamp: None,
                users: Arc::new(HashMap::new()),
                representative: None,
                plaintext: false,
            }),
        };
        pf.refresh()?;
        Ok(pf)
    }

    /// Re-reads the file if it changed since the last read. Blocking (stat, maybe read).
    pub fn refresh(&self) -> std::io::Result<()> {
        let md = std::fs::metadata(&self.path)?;
        let stamp = Stamp {
            mtime: md.modified().ok(),
            len: md.len(),
            ino: md.ino(),
        };
        {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.stamp == Some(stamp) {
                return Ok(());
            }
        }
        let text = std::fs::read_to_string(&self.path)?;
        let (users, errors) = parse(&text);
        for e in &errors {
            tracing::warn!("{}:{}: {}", self.path.display(), e.line, e.message);
        }
        let plain = users
            .values()
            .filter(|e| e.password.scheme == super::hash::Scheme::Plain)
            .count();
        if plain > 0 {
            tracing::warn!(
                "{}: {plain} user(s) have {{PLAIN}} passwords; store hashes instead (nestbox passwd)",
                self.path.display()
            );
        }
        tracing::info!("{}: loaded {} user(s)", self.path.display(), users.len());
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let representative = representative(&users);
        *st = Loaded {
            stamp: Some(stamp),
            users: Arc::new(users),
            representative,
            plaintext: plain > 0,
        };
        Ok(())
    }

    /// Looks a user up, re-reading the file first if it changed. If it cannot be re-read the
    /// last good copy answers (logged). Blocking.
    pub fn lookup(&self, user: &str) -> Option<Arc<Entry>> {
        if let Err(e) = self.refresh() {
            tracing::error!(
                "{}: cannot re-read, using the last good copy: {e}",
                self.path.display()
            );
        }
        self.snapshot().get(user).cloned()
    }

    /// A stored hash of the file's most common scheme (see `Loaded::representative`).
    pub fn representative(&self) -> Option<StoredHash> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .representative
            .clone()
    }

    /// Whether the file, as last read, has a user with a `{PLAIN}` secret. Does not block.
    pub fn has_plaintext(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .plaintext
    }

    /// All users as last loaded.
    pub fn snapshot(&self) -> Arc<HashMap<String, Arc<Entry>>> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .users
            .clone()
    }
}

fn representative(users: &HashMap<String, Arc<Entry>>) -> Option<StoredHash> {
    let mut counts: HashMap<super::hash::Scheme, (usize, &StoredHash)> = HashMap::new();
    for e in users.values() {
        counts
            .entry(e.password.scheme)
            .or_insert((0, &e.password))
            .0 += 1;
    }
    counts
        .into_values()
        .max_by_key(|(n, _)| *n)
        .map(|(_, h)| h.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# nestbox users
ann:{PLAIN}pw1:1000:1000:Ann Example:/home/ann:/bin/false:userdb_mail=maildir:/x nestbox_protocols=pop3

bob@example.org:{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA
  # indented comment
carl:{PLAIN}pw3::::::
dave:{MD5}abc:::
eve:{PLAIN}x:notanumber
ann:{PLAIN}second
:{PLAIN}nouser
frank
gina:{PLAIN}pw\r
hank:{PLAIN}pw::::::nestbox_protocols=imap,pop4
ida:{PLAIN}pw::::::userdb_nestbox_pop3_dele=move:Old nestbox_pop3_retr_seen=no
";

    #[test]
    fn parse_table() {
        let (users, errors) = parse(FILE);
        let mut names: Vec<_> = users.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["ann", "bob@example.org", "carl", "gina", "ida"]);
        let ann = &users["ann"];
        assert_eq!((ann.uid, ann.gid), (Some(1000), Some(1000)));
        assert_eq!(ann.home.as_deref(), Some(Path::new("/home/ann")));
        assert_eq!(ann.extra, "userdb_mail=maildir:/x nestbox_protocols=pop3");
        assert_eq!(
            ann.settings.protocols,
            Some(vec![super::super::Protocol::Pop3])
        );
        assert_eq!(users["carl"].settings, UserSettings::default());
        let ida = &users["ida"].settings;
        assert_eq!(ida.pop3_dele_folder.as_deref(), Some("Old"));
        assert_eq!(ida.pop3_retr_seen, Some(false));
        assert!(ann.password.verify("pw1"));
        let bob = &users["bob@example.org"];
        assert_eq!((bob.uid, bob.gid, bob.home.clone()), (None, None, None));
        assert!(bob.password.verify("secret"));
        assert_eq!(users["carl"].uid, None);
        assert!(users["gina"].password.verify("pw"));
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [7, 8, 9, 10, 11, 13], "{errors:?}");
        assert!(errors[0].message.contains("MD5"));
        assert!(errors[1].message.contains("uid"));
        assert!(errors[2].message.contains("duplicate"));
        // A bad nestbox_ field skips the line: the user cannot log in at all rather than
        // with every protocol.
        assert!(errors[5].message.contains("hank") && errors[5].message.contains("pop4"));
    }

    #[test]
    fn knows_whether_apop_can_work() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(
            &p,
            "a:{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA\n",
        )
        .unwrap();
        let pf = PasswdFile::open(&p).unwrap();
        assert!(!pf.has_plaintext());
        std::fs::write(&p, "a:{PLAIN}x\nb:{CLEAR}y\n").unwrap();
        pf.refresh().unwrap();
        assert!(pf.has_plaintext());
    }

    #[test]
    fn reloads_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, "a:{PLAIN}1\n").unwrap();
        let pf = PasswdFile::open(&p).unwrap();
        assert!(pf.lookup("a").is_some());
        assert!(pf.lookup("b").is_none());
        // Same second, different size: still noticed.
        std::fs::write(&p, "a:{PLAIN}1\nb:{PLAIN}22\n").unwrap();
        assert!(pf.lookup("b").is_some());
        // Replaced by rename (new inode), same size and mtime forced equal.
        let q = dir.path().join("users.new");
        std::fs::write(&q, "c:{PLAIN}1\nd:{PLAIN}22\n").unwrap();
        let old = filetime::FileTime::from_last_modification_time(&std::fs::metadata(&p).unwrap());
        filetime::set_file_mtime(&q, old).unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert!(pf.lookup("c").is_some());
        assert!(pf.lookup("a").is_none());
        // Gone: the last good copy keeps answering.
        std::fs::remove_file(&p).unwrap();
        assert!(pf.lookup("c").is_some());
        assert!(PasswdFile::open(&p).is_err());
    }
}
