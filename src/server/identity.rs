//! Which uid, gid and groups serve a user's mail (SPEC §4).
//!
//! - A user with a uid of their own (every PAM user; a passwd-file line with
//!   its uid field set) is served as that uid, their gid, and (PAM users)
//!   their supplementary groups.
//! - A passwd-file user without one is served as `mail.user`/`mail.group`
//!   (e.g. `vmail`) when set, else as the daemon's own user.
//! - Never as root: the code that reads and writes mail runs with the
//!   user's rights, so a user's Maildir can give nobody more than that
//!   user has. A user who would be served as uid 0 cannot log in, and the
//!   log says what to configure.
//! - A daemon that is not root cannot change uid: it serves only users that
//!   resolve to its own uid, as itself (the demo, tests, a per-user setup).
//!
//! Owns the rule only; the front applies it at login, and `pool` starts
//! the worker process with the result.

use crate::auth::User;
use crate::config::Config;

/// The credentials of one worker process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary one included).
    pub groups: Vec<u32>,
}

/// The rule, with the names in the config resolved once at startup.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The daemon's own credentials.
    own: Identity,
    /// The daemon may change uid (it runs as root).
    privileged: bool,
    /// `mail.user`/`mail.group`, resolved.
    mail: Option<Identity>,
}

impl Policy {
    /// Resolves `mail.user` and `mail.group` through the system's user
    /// database (blocking: call once at startup, off the runtime or before
    /// serving).
    pub fn from_config(cfg: &Config) -> Result<Policy, String> {
        use crate::auth::sysdb;
        let own = own_identity();
        let privileged = rustix::process::geteuid().is_root();
        let unavailable = |e: crate::auth::AuthError| e.to_string();
        let mail = match (&cfg.mail.user, &cfg.mail.group) {
            (None, None) => None,
            (user, group) => {
                let (uid, primary, groups) = match user {
                    Some(u) => {
                        let pw = sysdb::passwd_entry(u)
                            .map_err(unavailable)?
                            .ok_or_else(|| format!("mail.user {u:?}: no such user"))?;
                        let groups = sysdb::group_list(u, pw.gid).map_err(unavailable)?;
                        (pw.uid, pw.gid, groups)
                    }
                    None => (own.uid, own.gid, own.groups.clone()),
                };
                let gid = match group {
                    Some(g) => sysdb::group_gid(g)
                        .map_err(unavailable)?
                        .ok_or_else(|| format!("mail.group {g:?}: no such group"))?,
                    None => primary,
                };
                let groups = if gid == primary { groups } else { vec![gid] };
                Some(Identity { uid, gid, groups })
            }
        };
        Ok(Policy {
            own,
            privileged,
            mail,
        })
    }

    /// The identity `user`'s mail is served as, or why they cannot be served
    /// (for the log; the client only learns the service is unavailable).
    pub fn identity_for(&self, user: &User) -> Result<Identity, String> {
        let id = match user.uid {
            Some(uid) => {
                let gid = user
                    .gid
                    .or(self.mail.as_ref().map(|m| m.gid))
                    .unwrap_or(self.own.gid);
                let groups = if user.groups.is_empty() {
                    vec![gid]
                } else {
                    user.groups.clone()
                };
                Identity { uid, gid, groups }
            }
            None => self.mail.clone().unwrap_or_else(|| self.own.clone()),
        };
        if id.uid == 0 {
            return Err(format!(
                "refusing to serve {}'s mail as root: give the user a uid of their own in the passwd-file, or set mail.user (e.g. \"vmail\")",
                user.name
            ));
        }
        if !self.privileged {
            if id.uid != self.own.uid {
                return Err(format!(
                    "cannot serve {} as uid {}: nestbox runs as uid {} and can serve only its own uid unless started as root",
                    user.name, id.uid, self.own.uid
                ));
            }
            // Without privilege the groups cannot change either.
            return Ok(self.own.clone());
        }
        Ok(id)
    }
}

/// The daemon's own uid, gid and supplementary groups.
fn own_identity() -> Identity {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let mut groups = vec![gid];
    if let Ok(list) = rustix::process::getgroups() {
        groups.extend(list.into_iter().map(|g| g.as_raw()).filter(|&g| g != gid));
    }
    Identity { uid, gid, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: Option<u32>, gid: Option<u32>, groups: Vec<u32>) -> User {
        User {
            name: "alice".into(),
            maildir: "/home/alice/Maildir".into(),
            uid,
            gid,
            groups,
        }
    }

    fn policy(privileged: bool, mail: Option<Identity>, own_uid: u32) -> Policy {
        Policy {
            own: Identity {
                uid: own_uid,
                gid: own_uid,
                groups: vec![own_uid],
            },
            privileged,
            mail,
        }
    }

    #[test]
    fn a_user_with_a_uid_runs_as_it() {
        let p = policy(true, None, 0);
        let id = p
            .identity_for(&user(Some(1000), Some(1000), vec![1000, 27]))
            .unwrap();
        assert_eq!((id.uid, id.gid, id.groups), (1000, 1000, vec![1000, 27]));
        let id = p
            .identity_for(&user(Some(1001), Some(100), vec![]))
            .unwrap();
        assert_eq!(id.groups, vec![100]);
    }

    #[test]
    fn users_without_a_uid_run_as_mail_user_never_as_root() {
        let vmail = Identity {
            uid: 5000,
            gid: 5000,
            groups: vec![5000],
        };
        let p = policy(true, Some(vmail.clone()), 0);
        assert_eq!(p.identity_for(&user(None, None, vec![])).unwrap(), vmail);
        let p = policy(true, None, 0);
        let e = p.identity_for(&user(None, None, vec![])).unwrap_err();
        assert!(e.contains("mail.user"), "{e}");
        // A passwd-file line naming uid 0 is refused too.
        assert!(p.identity_for(&user(Some(0), Some(0), vec![])).is_err());
    }

    #[test]
    fn an_unprivileged_daemon_serves_only_its_own_uid() {
        let p = policy(false, None, 1000);
        assert_eq!(p.identity_for(&user(None, None, vec![])).unwrap().uid, 1000);
        assert_eq!(
            p.identity_for(&user(Some(1000), Some(5), vec![]))
                .unwrap()
                .gid,
            1000
        );
        assert!(p.identity_for(&user(Some(1001), None, vec![])).is_err());
    }
}
