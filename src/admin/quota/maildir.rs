//! What `nestbox quota` does to one Maildir, in the helper running as its user: read the
//! quota from `maildirsize`, count the folders, or rewrite the file.
//!
//! Every name beneath the Maildir root is opened with the store's `beneath` rules (one
//! component at a time, never following a symlink): a `maildirsize` that is a symlink is
//! reported, never read through, and `recalc` replaces it with a file of its own (a rename
//! replaces the link, not what it points at); a folder or `cur/`/`new/` that is a symlink
//! counts nothing, as the server does not serve it (`quota::compute`). The root itself is
//! the configured path and may be a symlink, as for the server.
//!
//! The Maildir++ format and the counting rule are `store::maildir::quota`'s; this module
//! only calls its public functions.
//!
//! Against Dovecot (the reference: `tests/quota_cli.rs` runs Debian's `doveadm quota recalc`
//! on the same Maildir). Its `maildir` backend (`quota-maildir.c`, `maildir_sum_dir`) has
//! the same rule for a message's size (`,S=` of the name, else `stat`) and the same folders
//! (INBOX and each `.Folder`, `cur/` and `new/`, not `tmp/`), and writes the same file, limits
//! line included. It differs in two places, and nestbox keeps its own way in both:
//! - a file in `cur/` or `new/` whose name starts with a dot is counted by Dovecot's quota
//!   code (it skips only `.` and `..`), though Dovecot's own mail store never shows it
//!   (`maildir-sync.c` skips every dot name, as the Maildir convention says). Counting it
//!   would put a user over quota with mail no client can see or delete; nestbox counts what
//!   it serves.
//! - a folder, or its `cur/`/`new/`, that is a symlink is followed by Dovecot (`stat`,
//!   `opendir` by path). nestbox never follows one beneath the Maildir root (the product's
//!   rule: nothing planted there may lead outside), and what it does not serve it does not
//!   count.
//!
//! Both are rare in a Maildir that only mail programs write; the test pins the difference
//! down so that it stays known. It never creates a Maildir (a user without one is
//! reported as such) and never writes anything but `maildirsize`, and that only for
//! `recalc`: `show`, with or without counting, only reads.
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auth::QuotaLimits;
use crate::store::beneath::{Dir, is_symlink_refusal};
use crate::store::maildir::quota;

/// One Maildir's work, as the parent sends it to the helper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub maildir: PathBuf,
    pub action: Action,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Report `maildirsize`; with `count`, the use counted from the folders instead of the
    /// file's totals (the file is not written).
    Show { count: bool },
    /// Count the folders and rewrite `maildirsize` with `limits` (the configuration's). With
    /// no limit configured, a `maildirsize` already there keeps its own limits, as at login
    /// (`store::apply_quota` leaves it alone then), and a Maildir without one stays
    /// without quota. With `keep_existing` (`mail.quota_set`: users set their own limits)
    /// a `maildirsize` already there keeps its limits too, again as at login.
    Recalc {
        limits: QuotaLimits,
        #[serde(default)]
        keep_existing: bool,
    },
}

/// What is in use: bytes (the sum of the messages' sizes, Maildir++'s `S`) and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

/// What the helper found in one Maildir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Found {
    /// The configured Maildir path does not exist (the user never logged in, or has no
    /// mail yet).
    NoMaildir,
    /// No `maildirsize` (or one without a limits line): no quota. `usage` when counted.
    NoQuota { usage: Option<Usage> },
    /// The quota: `usage` from the file's totals, or `counted` from the folders; `written`
    /// when `maildirsize` was rewritten with them.
    Quota {
        limits: QuotaLimits,
        usage: Usage,
        counted: bool,
        written: bool,
    },
    /// Why this Maildir could not be read or written (one line).
    Failed(String),
}

/// Does `job`, as whoever this process runs as (the helper: the Maildir's user).
pub fn run(job: &Job) -> Found {
    let root = match Dir::open_root(&job.maildir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Found::NoMaildir,
        Err(e) => return Found::Failed(format!("{}: {e}", job.maildir.display())),
    };
    match job.action {
        Action::Show { count } => show(&root, count),
        Action::Recalc {
            limits,
            keep_existing,
        } => recalc(&root, limits, keep_existing),
    }
    .unwrap_or_else(|e| Found::Failed(format!("{}: {e}", job.maildir.display())))
}

/// `maildirsize`, parsed; `None` when it is missing or has no limits line (no quota, as the
/// server reads it).
fn read_file(root: &Dir) -> io::Result<Option<quota::Quota>> {
    match root.read(quota::FILE) {
        Ok(bytes) => Ok(quota::parse(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if is_symlink_refusal(&e) => Err(io::Error::new(
            e.kind(),
            format!(
                "{} is a symlink or leads outside the Maildir: not followed",
                quota::FILE
            ),
        )),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", quota::FILE))),
    }
}

fn counted(root: &Dir) -> io::Result<Usage> {
    let (bytes, messages) = quota::compute(root)?;
    Ok(Usage { bytes, messages })
}

fn show(root: &Dir, count: bool) -> io::Result<Found> {
    let file = read_file(root)?;
    let usage = if count { Some(counted(root)?) } else { None };
    Ok(match file {
        None => Found::NoQuota { usage },
        Some(q) => Found::Quota {
            limits: QuotaLimits {
                bytes: q.bytes_limit,
                messages: q.count_limit,
            },
            usage: usage.unwrap_or(Usage {
                bytes: q.bytes,
                messages: q.count,
            }),
            counted: count,
            written: false,
        },
    })
}

fn recalc(root: &Dir, limits: QuotaLimits, keep_existing: bool) -> io::Result<Found> {
    let limits = if limits.is_none() || keep_existing {
        match read_file(root)? {
            Some(q) => QuotaLimits {
                bytes: q.bytes_limit,
                messages: q.count_limit,
            },
            None if limits.is_none() => {
                return Ok(Found::NoQuota {
                    usage: Some(counted(root)?),
                });
            }
            None => limits,
        }
    } else {
        limits
    };
    let q = quota::recalc(root, limits.bytes, limits.messages)?;
    Ok(Found::Quota {
        limits,
        usage: Usage {
            bytes: q.bytes,
            messages: q.count,
        },
        counted: true,
        written: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn maildir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for dir in [d.path().to_path_buf(), d.path().join(".Sent")] {
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }
        }
        fs::write(d.path().join("cur/1.a.h,S=10:2,S"), b"0123456789").unwrap();
        fs::write(d.path().join(".Sent/new/2.b.h"), b"12345").unwrap();
        fs::write(d.path().join("tmp/3.c.h"), b"not yet delivered").unwrap();
        d
    }

    fn job(d: &tempfile::TempDir, action: Action) -> Job {
        Job {
            maildir: d.path().to_path_buf(),
            action,
        }
    }

    const LIMITS: QuotaLimits = QuotaLimits {
        bytes: Some(1000),
        messages: Some(9),
    };

    #[test]
    fn show_and_recalc() {
        let d = maildir();
        let file = d.path().join(quota::FILE);
        assert_eq!(
            run(&job(&d, Action::Show { count: false })),
            Found::NoQuota { usage: None }
        );
        let usage = Usage {
            bytes: 15,
            messages: 2,
        };
        assert_eq!(
            run(&job(&d, Action::Show { count: true })),
            Found::NoQuota { usage: Some(usage) }
        );
        // Without configured limits and without a file, nothing is written.
        let none = QuotaLimits::default();
        assert_eq!(
            run(&job(
                &d,
                Action::Recalc {
                    limits: none,
                    keep_existing: false,
                }
            )),
            Found::NoQuota { usage: Some(usage) }
        );
        assert!(!file.exists());
        let want = Found::Quota {
            limits: LIMITS,
            usage,
            counted: true,
            written: true,
        };
        assert_eq!(
            run(&job(
                &d,
                Action::Recalc {
                    limits: LIMITS,
                    keep_existing: false,
                }
            )),
            want
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "1000S,9C\n15 2\n");
        // Show reads the file's totals, even when they are wrong, and never writes.
        fs::write(&file, "1000S,9C\n15 2\n100 1\n").unwrap();
        let from_file = Found::Quota {
            limits: LIMITS,
            usage: Usage {
                bytes: 115,
                messages: 3,
            },
            counted: false,
            written: false,
        };
        assert_eq!(run(&job(&d, Action::Show { count: false })), from_file);
        let recounted = Found::Quota {
            limits: LIMITS,
            usage,
            counted: true,
            written: false,
        };
        assert_eq!(run(&job(&d, Action::Show { count: true })), recounted);
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "1000S,9C\n15 2\n100 1\n"
        );
        // With no limit configured, recalc keeps the file's own.
        assert_eq!(
            run(&job(
                &d,
                Action::Recalc {
                    limits: none,
                    keep_existing: false,
                }
            )),
            want
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "1000S,9C\n15 2\n");
        // Users set their own (`mail.quota_set`): the file's limits stay, whatever is
        // configured, as at login.
        let other = QuotaLimits {
            bytes: Some(5000),
            messages: None,
        };
        let keep = |limits| Action::Recalc {
            limits,
            keep_existing: true,
        };
        assert_eq!(run(&job(&d, keep(other))), want);
        assert_eq!(fs::read_to_string(&file).unwrap(), "1000S,9C\n15 2\n");
        // ...and a Maildir without a file gets the configured ones.
        fs::remove_file(&file).unwrap();
        run(&job(&d, keep(other)));
        assert_eq!(fs::read_to_string(&file).unwrap(), "5000S\n15 2\n");
    }

    #[test]
    fn no_maildir_is_not_an_error_and_is_not_made() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("Maildir");
        for action in [
            Action::Show { count: true },
            Action::Recalc {
                limits: LIMITS,
                keep_existing: false,
            },
        ] {
            let j = Job {
                maildir: missing.clone(),
                action,
            };
            assert_eq!(run(&j), Found::NoMaildir);
        }
        assert!(!missing.exists());
        let file = d.path().join("file");
        fs::write(&file, "").unwrap();
        let j = Job {
            maildir: file,
            action: Action::Show { count: false },
        };
        assert!(matches!(run(&j), Found::Failed(_)));
    }

    #[test]
    fn symlinks_are_not_followed() {
        let d = maildir();
        let outside = tempfile::tempdir().unwrap();
        // A maildirsize pointing elsewhere is neither read nor written through.
        let target = outside.path().join("theirs");
        fs::write(&target, "1S\n999999 999\n").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(quota::FILE)).unwrap();
        let found = run(&job(&d, Action::Show { count: false }));
        assert!(
            matches!(&found, Found::Failed(why) if why.contains("symlink")),
            "{found:?}"
        );
        // A folder pointing elsewhere counts nothing.
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(outside.path().join("Evil").join(sub)).unwrap();
        }
        fs::write(outside.path().join("Evil/cur/9.z.h,S=5000"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("Evil"), d.path().join(".Evil")).unwrap();
        let found = run(&job(
            &d,
            Action::Recalc {
                limits: LIMITS,
                keep_existing: false,
            },
        ));
        assert!(
            matches!(found, Found::Quota { usage, .. } if usage == Usage { bytes: 15, messages: 2 }),
            "{found:?}"
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "1S\n999999 999\n");
        let meta = fs::symlink_metadata(d.path().join(quota::FILE)).unwrap();
        assert!(meta.is_file(), "the link was replaced by a file");
    }
}
