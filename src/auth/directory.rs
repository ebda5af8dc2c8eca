//! Users as operator commands see them (`nestbox quota`): one user by name, or every user,
//! resolved the way a login resolves them (name, Maildir, uid, gid, groups) but without any
//! password.
//!
//! Who "every user" is depends on the backend:
//! - passwd-file: every line of the file;
//! - PAM: the system's users (NSS) whose uid is in the range of normal users,
//!   `UID_MIN`..=`UID_MAX` of `/etc/login.defs` (1000..=60000 when the file or a key is
//!   missing, as `useradd` assumes), which leaves out root and the system accounts.
//!   Whether such a user has a Maildir is the caller's to find out, as that user.
//!
//! This module never checks a password, never logs, and never touches a Maildir; it is not
//! used by the server, whose logins go through `login`.
use std::path::Path;

use super::{AuthError, Authenticator, Backend, User, lookup, plausible_user, resolve_maildir};

/// Where `useradd` reads the uid range of normal users.
const LOGIN_DEFS: &str = "/etc/login.defs";
/// `useradd`'s defaults when `login.defs` says nothing.
const DEFAULT_UID_RANGE: (u32, u32) = (1000, 60000);

/// One user of [`Authenticator::all_users`]: the name, and the user or why they cannot be
/// resolved (a passwd-file line without the home directory `~` needs, say).
pub type Listed = (String, Result<User, AuthError>);

impl Authenticator {
    /// The user `name` as a login would resolve them (passwd-file: the line, tried
    /// lowercased too; PAM: the system user), `Ok(None)` when there is no such user.
    /// Blocking (NSS).
    pub fn find_user(&self, name: &str) -> Result<Option<User>, AuthError> {
        if !plausible_user(name) {
            return Ok(None);
        }
        match &self.backend {
            Backend::PasswdFile(pf) => lookup(pf, name)
                .map(|entry| super::user_of(&entry, &self.maildir_template))
                .transpose(),
            Backend::Pam(_) => match super::sysdb::passwd_entry(name)? {
                None => Ok(None),
                Some(pw) => system_user(name, pw, &self.maildir_template).map(Some),
            },
        }
    }

    /// Every user (see the module doc for who that is), sorted by name. Blocking (NSS).
    pub fn all_users(&self) -> Vec<Listed> {
        let mut users: Vec<Listed> = match &self.backend {
            Backend::PasswdFile(pf) => pf
                .snapshot()
                .values()
                .map(|entry| {
                    (
                        entry.user.clone(),
                        super::user_of(entry, &self.maildir_template),
                    )
                })
                .collect(),
            Backend::Pam(_) => {
                let (min, max) = normal_uid_range(Path::new(LOGIN_DEFS));
                super::sysdb::all_passwd_entries()
                    .into_iter()
                    .filter(|(name, pw)| (min..=max).contains(&pw.uid) && plausible_user(name))
                    .map(|(name, pw)| {
                        let user = system_user(&name, pw, &self.maildir_template);
                        (name, user)
                    })
                    .collect()
            }
        };
        users.sort_by(|a, b| a.0.cmp(&b.0));
        users.dedup_by(|a, b| a.0 == b.0);
        users
    }

    /// Whether "every user" means the system's users (PAM) rather than the passwd-file's.
    pub fn lists_system_users(&self) -> bool {
        matches!(self.backend, Backend::Pam(_))
    }
}

/// A system user as the PAM backend resolves them after a login.
fn system_user(
    name: &str,
    pw: super::sysdb::PasswdEntry,
    template: &str,
) -> Result<User, AuthError> {
    Ok(User {
        maildir: resolve_maildir(template, name, Some(&pw.home))?,
        name: name.to_string(),
        uid: Some(pw.uid),
        gid: Some(pw.gid),
        groups: super::sysdb::group_list(name, pw.gid)?,
    })
}

/// `UID_MIN` and `UID_MAX` of the `login.defs` at `path`, each defaulting on its own.
fn normal_uid_range(path: &Path) -> (u32, u32) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_uid_range(&text)
}

/// The `login.defs` rule: one `KEY VALUE` a line, `#` starts a comment line; the last
/// well-formed value of a key counts (as in shadow's `getdef`, which keeps overwriting).
fn parse_uid_range(text: &str) -> (u32, u32) {
    let (mut min, mut max) = DEFAULT_UID_RANGE;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = value.parse::<u32>() else {
            continue;
        };
        match key {
            "UID_MIN" => min = n,
            "UID_MAX" => max = n,
            _ => {}
        }
    }
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    #[test]
    fn uid_range_table() {
        for (text, want) in [
            ("", (1000, 60000)),
            ("UID_MIN 500\nUID_MAX 2000\n", (500, 2000)),
            ("# UID_MIN 5\nUID_MIN\t1001\n", (1001, 60000)),
            ("UID_MAX 70000\nUID_MIN x\n", (1000, 70000)),
            ("  UID_MIN   2000  \nSYS_UID_MIN 100\n", (2000, 60000)),
        ] {
            assert_eq!(parse_uid_range(text), want, "{text:?}");
        }
        assert_eq!(
            normal_uid_range(Path::new("/nonexistent/login.defs")),
            DEFAULT_UID_RANGE
        );
    }

    #[test]
    fn passwd_file_users_without_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(
            &p,
            "bob:{PLAIN}x:5001:5001::/home/bob::\nann:{PLAIN}y::::/home/ann\nnohome:{PLAIN}z\n",
        )
        .unwrap();
        let cfg = parse_str(&format!(
            "[imap]\nlisten=[\"127.0.0.1:1\"]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n\
             [auth]\nbackend=\"passwd-file\"\npasswd_file={p:?}\n[mail]\nmaildir=\"~/Maildir\"\n"
        ))
        .unwrap();
        let a = Authenticator::from_config(&cfg).unwrap();
        assert!(!a.lists_system_users());
        let bob = a.find_user("bob").unwrap().unwrap();
        assert_eq!(bob.maildir, Path::new("/home/bob/Maildir"));
        assert_eq!((bob.uid, bob.gid), (Some(5001), Some(5001)));
        // The lowercase fallback of logins.
        assert_eq!(a.find_user("Ann").unwrap().unwrap().name, "ann");
        assert!(a.find_user("nobody").unwrap().is_none());
        assert!(a.find_user("").unwrap().is_none());
        assert!(a.find_user("a:b").unwrap().is_none());
        // `~` without a home: the user exists but cannot be resolved.
        assert!(a.find_user("nohome").is_err());
        let all = a.all_users();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ann", "bob", "nohome"]);
        assert!(all[0].1.is_ok() && all[2].1.is_err());
    }

    /// PAM's "every user": the system's users in the normal range, never root or the
    /// system accounts (`nobody`'s 65534 is above any default `UID_MAX`).
    #[cfg(feature = "nonstick")]
    #[test]
    fn pam_lists_normal_users_only() {
        let cfg = parse_str(
            "[imap]\nlisten=[\"127.0.0.1:1\"]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n\
             [auth]\nbackend=\"pam\"\n[mail]\nmaildir=\"~/Maildir\"\n",
        )
        .unwrap();
        let a = Authenticator::from_config(&cfg).unwrap();
        assert!(a.lists_system_users());
        let (min, max) = normal_uid_range(Path::new(LOGIN_DEFS));
        let all = a.all_users();
        for (name, user) in &all {
            assert!(
                !["root", "nobody", "daemon"].contains(&name.as_str()),
                "{name}"
            );
            if let Ok(u) = user {
                assert!(u.uid.is_some_and(|uid| (min..=max).contains(&uid)), "{u:?}");
            }
        }
        // One user by name is found whatever their uid (the rule is for --all only).
        let root = a.find_user("root").unwrap().unwrap();
        assert_eq!(root.uid, Some(0));
        assert_eq!(root.maildir, Path::new("/root/Maildir"));
        assert!(a.find_user("no-such-user-nestbox").unwrap().is_none());
    }
}
