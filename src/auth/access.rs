//! Which protocols a user may use, and what POP3 does for them (issue 17).
//!
//! Three sources, each of which can only take a protocol away, never grant one:
//! - the user's passwd-file line: `nestbox_protocols=imap,pop3` (any subset; empty: none;
//!   absent: all), parsed here into [`UserSettings`];
//! - `pop3.users_group`: when set, only its members may use POP3;
//! - `imap.deny_group`: its members may not use IMAP.
//!
//! Group membership is the user's primary gid or any of [`User::groups`]. It is known only
//! for users with a uid (every PAM user; a passwd-file line with a uid field); a
//! passwd-file user without one (a virtual user served as `mail.user`) has no groups, so
//! the group rules do not apply to them and their line's field alone decides.
//!
//! What POP3's DELE and RETR do ([`Pop3Policy`]) is resolved per user, each setting on its
//! own: the line's `nestbox_pop3_dele` / `nestbox_pop3_retr_seen`, else the config's
//! `[pop3.user.NAME]`, else `[pop3]`.
//!
//! This module never verifies a password and never logs: the login sequence (`login`) asks
//! it after the password was found right, and says what happened.
use serde::{Deserialize, Serialize};

use super::{AuthError, User};
use crate::config::{Config, DeleMode, Pop3Config};

/// A protocol a user logs in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Imap,
    Pop3,
}

impl Protocol {
    /// The name in logs, config and the passwd-file field.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }

    fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "imap" => Some(Protocol::Imap),
            "pop3" => Some(Protocol::Pop3),
            _ => None,
        }
    }
}

/// What POP3 does for one user: resolved in the front at login and sent to the worker
/// with the connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pop3Policy {
    /// What DELE does at QUIT.
    pub dele: DeleAction,
    /// Whether RETR sets `\Seen`.
    pub retr_seen: bool,
    /// `pop3.login_delay` in seconds (0: off), for CAPA's `LOGIN-DELAY` (RFC 2449 §6.5).
    pub login_delay_secs: u64,
    /// `pop3.uidl_format`.
    pub uidl_format: crate::pop3::uidl_format::UidlFormat,
}

/// What DELE does to a message at QUIT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DeleAction {
    /// Removed from the mailbox.
    Expunge,
    /// Only `\Deleted` is set.
    Flag,
    /// Moved to this folder (IMAP name, `/` between levels; checked by
    /// [`crate::config::check_dele_folder`]).
    Move(String),
}

/// What a user's passwd-file line says beyond who they are: its `nestbox_` extra fields
/// (PAM users have none: all `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSettings {
    /// `nestbox_protocols`: `None` when absent (every protocol).
    pub protocols: Option<Vec<Protocol>>,
    /// `nestbox_pop3_dele`: `expunge`, `flag`, `move` or `move:FOLDER`.
    pub pop3_dele: Option<DeleMode>,
    /// The folder of `move:FOLDER`.
    pub pop3_dele_folder: Option<String>,
    /// `nestbox_pop3_retr_seen=yes|no`.
    pub pop3_retr_seen: Option<bool>,
    /// Dovecot's `userdb_quota_rule=*:storage=SIZE` (also `quota_rule2`...,
    /// with or without the `userdb_` prefix): the user's byte limit (0:
    /// none).
    pub quota_bytes: Option<u64>,
    /// `...:messages=N` in the same fields: the message-count limit.
    pub quota_messages: Option<u64>,
}

/// A user's quota limits, resolved in the front at login and applied by
/// the worker to the Maildir's `maildirsize` (`None`: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    pub bytes: Option<u64>,
    pub messages: Option<u64>,
}

impl QuotaLimits {
    /// Neither limit set: nestbox leaves any `maildirsize` as it is.
    pub fn is_none(&self) -> bool {
        self.bytes.is_none() && self.messages.is_none()
    }
}

/// One Dovecot quota rule (`*:storage=100M`, `*:messages=1000`,
/// `*:storage=1G:messages=5000`) into `s`. Rules for one mailbox
/// (`Trash:ignore`), relative ones (`+10%`, `+20M`) and `ignore` have no
/// meaning for a per-user Maildir++ quota and are skipped, not refused:
/// a line shared with Dovecot must not lock its user out.
fn quota_rule(value: &str, s: &mut UserSettings) -> Result<(), String> {
    let Some(rest) = value.strip_prefix("*:") else {
        return Ok(());
    };
    for part in rest.split(':') {
        let (key, v) = part.split_once('=').unwrap_or((part, ""));
        if v.starts_with(['+', '-']) || v.ends_with('%') {
            continue;
        }
        match key {
            "storage" | "bytes" => {
                let n = crate::config::parse_size(v)
                    .map_err(|e| format!("quota_rule storage {v:?}: {e}"))?;
                s.quota_bytes = Some(n);
            }
            "messages" => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("quota_rule messages {v:?} is not a number"))?;
                s.quota_messages = Some(n);
            }
            _ => {}
        }
    }
    Ok(())
}

impl UserSettings {
    /// Reads the `nestbox_` fields of a line's space-separated `key=value` extra fields;
    /// other fields (Dovecot's) are left alone. Each may also be written with Dovecot's
    /// `userdb_` prefix (`userdb_nestbox_protocols=pop3`), so a file shared with Dovecot
    /// can carry them as userdb fields. An unknown `nestbox_` key, a bad value or a field
    /// given twice is an error, and the caller skips the whole line: a typo in a
    /// restriction must not let the user in with every protocol.
    pub fn from_extra_fields(extra: &str) -> Result<UserSettings, String> {
        let mut s = UserSettings::default();
        let mut seen: Vec<&str> = Vec::new();
        for field in extra.split_ascii_whitespace() {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            let bare = key.strip_prefix("userdb_").unwrap_or(key);
            if bare
                .strip_prefix("quota_rule")
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            {
                quota_rule(value, &mut s)?;
                continue;
            }
            let Some(name) = bare.strip_prefix("nestbox_") else {
                continue;
            };
            if seen.contains(&name) {
                return Err(format!("nestbox_{name} is given twice"));
            }
            seen.push(name);
            match name {
                "protocols" => {
                    let mut list = Vec::new();
                    for p in value.split(',').filter(|p| !p.is_empty()) {
                        let p = Protocol::parse(p).ok_or_else(|| {
                            format!("nestbox_protocols: unknown protocol {p:?} (imap, pop3)")
                        })?;
                        if !list.contains(&p) {
                            list.push(p);
                        }
                    }
                    s.protocols = Some(list);
                }
                "pop3_dele" => {
                    let (mode, folder) = match value.split_once(':') {
                        Some(("move", folder)) => {
                            crate::config::check_dele_folder(folder)
                                .map_err(|e| format!("nestbox_pop3_dele: {e}"))?;
                            (DeleMode::Move, Some(folder.to_string()))
                        }
                        None if value == "expunge" => (DeleMode::Expunge, None),
                        None if value == "flag" => (DeleMode::Flag, None),
                        None if value == "move" => (DeleMode::Move, None),
                        _ => {
                            return Err(format!(
                                "nestbox_pop3_dele: {value:?} is not expunge, flag, move or move:FOLDER"
                            ));
                        }
                    };
                    s.pop3_dele = Some(mode);
                    s.pop3_dele_folder = folder;
                }
                "pop3_retr_seen" => {
                    s.pop3_retr_seen = Some(match value {
                        "yes" | "true" => true,
                        "no" | "false" => false,
                        _ => {
                            return Err(format!(
                                "nestbox_pop3_retr_seen: {value:?} is not yes or no"
                            ));
                        }
                    });
                }
                _ => return Err(format!("unknown field nestbox_{name}")),
            }
        }
        Ok(s)
    }
}

/// The protocol rules of one configuration, with its group names resolved.
#[derive(Clone, Debug)]
pub struct Rules {
    /// `pop3.users_group` and its gid.
    pop3_users: Option<(String, u32)>,
    /// `imap.deny_group` and its gid.
    imap_deny: Option<(String, u32)>,
    pop3: Pop3Config,
    /// `mail.quota` and `[mail.user_quota]`.
    default_quota: u64,
    user_quota: std::collections::BTreeMap<String, u64>,
}

impl Rules {
    /// Resolves the config's group names through the system's group database (blocking:
    /// NSS may ask LDAP). An unknown group is an error: the server does not start, and
    /// `check-config` says so.
    pub fn from_config(cfg: &Config) -> Result<Rules, AuthError> {
        let resolve = |key: &str, name: &str| -> Result<Option<(String, u32)>, AuthError> {
            if name.is_empty() {
                return Ok(None);
            }
            match super::sysdb::group_gid(name)? {
                Some(gid) => Ok(Some((name.to_string(), gid))),
                None => Err(AuthError::Unavailable(format!(
                    "{key} = {name:?}: no such group"
                ))),
            }
        };
        Ok(Rules {
            pop3_users: resolve("pop3.users_group", &cfg.pop3.users_group)?,
            imap_deny: resolve("imap.deny_group", &cfg.imap.deny_group)?,
            pop3: cfg.pop3.clone(),
            default_quota: cfg.mail.quota,
            user_quota: cfg.mail.user_quota.clone(),
        })
    }

    /// `[pop3]` of the configuration these rules come from.
    pub fn pop3(&self) -> &Pop3Config {
        &self.pop3
    }

    /// Whether `user` may use `proto`; `Err` says why not, for the operator's log.
    pub fn access(
        &self,
        user: &User,
        settings: &UserSettings,
        proto: Protocol,
    ) -> Result<(), String> {
        if let Some(list) = &settings.protocols {
            if !list.contains(&proto) {
                let list: Vec<&str> = list.iter().map(|p| p.as_str()).collect();
                return Err(format!("nestbox_protocols={}", list.join(",")));
            }
        }
        match proto {
            Protocol::Pop3 => {
                if let Some((name, gid)) = &self.pop3_users {
                    if member(user, *gid) == Some(false) {
                        return Err(format!("not in pop3.users_group {name}"));
                    }
                }
            }
            Protocol::Imap => {
                if let Some((name, gid)) = &self.imap_deny {
                    if member(user, *gid) == Some(true) {
                        return Err(format!("in imap.deny_group {name}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// What POP3 does for `user`: each setting from the line's field, else
    /// `[pop3.user.NAME]`, else `[pop3]`.
    pub fn pop3_policy(&self, user: &User, settings: &UserSettings) -> Pop3Policy {
        let table = self.pop3.user.get(&user.name);
        let mode = settings
            .pop3_dele
            .or_else(|| table.and_then(|t| t.dele))
            .unwrap_or(self.pop3.dele);
        let dele = match mode {
            DeleMode::Expunge => DeleAction::Expunge,
            DeleMode::Flag => DeleAction::Flag,
            DeleMode::Move => DeleAction::Move(
                settings
                    .pop3_dele_folder
                    .clone()
                    .or_else(|| table.and_then(|t| t.dele_folder.clone()))
                    .unwrap_or_else(|| self.pop3.dele_folder.clone()),
            ),
        };
        Pop3Policy {
            dele,
            retr_seen: settings
                .pop3_retr_seen
                .or_else(|| table.and_then(|t| t.retr_seen))
                .unwrap_or(self.pop3.retr_seen),
            login_delay_secs: self.pop3.login_delay.as_secs(),
            uidl_format: self.pop3.uidl_format.clone(),
        }
    }
}

impl Rules {
    /// `user`'s quota: their passwd-file quota rule, else `[mail.user_quota]`,
    /// else `mail.quota`; a size of 0 anywhere means no limit.
    pub fn quota_limits(&self, user: &User, settings: &UserSettings) -> QuotaLimits {
        let bytes = settings
            .quota_bytes
            .or_else(|| self.user_quota.get(&user.name).copied())
            .unwrap_or(self.default_quota);
        QuotaLimits {
            bytes: Some(bytes).filter(|&b| b > 0),
            messages: settings.quota_messages.filter(|&m| m > 0),
        }
    }
}

/// Whether `user` is in group `gid`: `None` when unknown (no uid: a virtual user).
fn member(user: &User, gid: u32) -> Option<bool> {
    user.uid?;
    Some(user.gid == Some(gid) || user.groups.contains(&gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pop3UserConfig;

    fn user(name: &str, uid: Option<u32>, gid: Option<u32>, groups: &[u32]) -> User {
        User {
            name: name.into(),
            maildir: "/m".into(),
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    fn rules(pop3_gid: Option<u32>, imap_deny_gid: Option<u32>) -> Rules {
        Rules {
            pop3_users: pop3_gid.map(|g| ("popusers".to_string(), g)),
            imap_deny: imap_deny_gid.map(|g| ("nomap".to_string(), g)),
            pop3: Pop3Config::default(),
            default_quota: 0,
            user_quota: Default::default(),
        }
    }

    /// Quota: the line's Dovecot rule, else the table, else the default; 0
    /// is no limit; rules for one mailbox or relative ones are skipped.
    #[test]
    fn quota_limits_resolve() {
        let mut r = rules(None, None);
        r.default_quota = 100 << 20;
        r.user_quota.insert("bob".into(), 2 << 30);
        r.user_quota.insert("carl".into(), 0);
        let ann = user("ann", Some(1000), Some(1000), &[]);
        let bob = user("bob", Some(1001), Some(1001), &[]);
        let carl = user("carl", Some(1002), Some(1002), &[]);
        let none = UserSettings::default();
        let q = |b: Option<u64>, m: Option<u64>| QuotaLimits {
            bytes: b,
            messages: m,
        };
        assert_eq!(r.quota_limits(&ann, &none), q(Some(100 << 20), None));
        assert_eq!(r.quota_limits(&bob, &none), q(Some(2 << 30), None));
        assert_eq!(r.quota_limits(&carl, &none), q(None, None));
        let line = |extra: &str| UserSettings::from_extra_fields(extra).expect(extra);
        let s = line("userdb_quota_rule=*:storage=10M userdb_quota_rule2=*:messages=500");
        assert_eq!(r.quota_limits(&bob, &s), q(Some(10 << 20), Some(500)));
        let s = line("quota_rule=*:storage=0");
        assert_eq!(r.quota_limits(&ann, &s), q(None, None));
        let s = line(
            "userdb_quota_rule=*:storage=1G:messages=9 userdb_quota_rule2=Trash:storage=+10%%",
        );
        assert_eq!(r.quota_limits(&ann, &s), q(Some(1 << 30), Some(9)));
        let s = line("userdb_quota_rule=*:storage=+20M");
        assert_eq!(r.quota_limits(&ann, &s), q(Some(100 << 20), None));
        assert!(UserSettings::from_extra_fields("userdb_quota_rule=*:storage=lots").is_err());
        assert!(QuotaLimits::default().is_none());
    }

    #[test]
    fn extra_fields_table() {
        use Protocol::{Imap, Pop3};
        let ok: &[(&str, UserSettings)] = &[
            ("", UserSettings::default()),
            ("userdb_mail=maildir:/x nodelay", UserSettings::default()),
            (
                "nestbox_protocols=pop3",
                UserSettings {
                    protocols: Some(vec![Pop3]),
                    ..Default::default()
                },
            ),
            (
                "nestbox_protocols=IMAP,pop3,imap",
                UserSettings {
                    protocols: Some(vec![Imap, Pop3]),
                    ..Default::default()
                },
            ),
            (
                "nestbox_protocols=",
                UserSettings {
                    protocols: Some(vec![]),
                    ..Default::default()
                },
            ),
            (
                "userdb_nestbox_protocols=imap userdb_quota_rule=*:storage=1G",
                UserSettings {
                    protocols: Some(vec![Imap]),
                    quota_bytes: Some(1 << 30),
                    ..Default::default()
                },
            ),
            (
                "nestbox_pop3_dele=flag  nestbox_pop3_retr_seen=no",
                UserSettings {
                    pop3_dele: Some(DeleMode::Flag),
                    pop3_retr_seen: Some(false),
                    ..Default::default()
                },
            ),
            (
                "nestbox_pop3_dele=move:Archive/POP3 nestbox_pop3_retr_seen=yes",
                UserSettings {
                    pop3_dele: Some(DeleMode::Move),
                    pop3_dele_folder: Some("Archive/POP3".into()),
                    pop3_retr_seen: Some(true),
                    ..Default::default()
                },
            ),
            (
                "nestbox_pop3_dele=move",
                UserSettings {
                    pop3_dele: Some(DeleMode::Move),
                    ..Default::default()
                },
            ),
            (
                "nestbox_pop3_dele=expunge",
                UserSettings {
                    pop3_dele: Some(DeleMode::Expunge),
                    ..Default::default()
                },
            ),
        ];
        for (extra, want) in ok {
            assert_eq!(
                UserSettings::from_extra_fields(extra).as_ref(),
                Ok(want),
                "{extra:?}"
            );
        }
        let bad: &[(&str, &str)] = &[
            ("nestbox_protocols=imap,pop4", "pop4"),
            ("nestbox_protocols=imap nestbox_protocols=pop3", "twice"),
            (
                "nestbox_protocols=imap userdb_nestbox_protocols=pop3",
                "twice",
            ),
            ("nestbox_protocol=pop3", "unknown field nestbox_protocol"),
            ("nestbox_pop3_dele=delete", "not expunge"),
            ("nestbox_pop3_dele=move:", "empty name"),
            ("nestbox_pop3_dele=move:a.b", "'.'"),
            ("nestbox_pop3_dele=move:INBOX", "INBOX"),
            ("nestbox_pop3_dele=flag:Trash", "not expunge"),
            ("nestbox_pop3_retr_seen=maybe", "yes or no"),
            ("nestbox_pop3_retr_seen", "yes or no"),
        ];
        for (extra, frag) in bad {
            let e = UserSettings::from_extra_fields(extra).expect_err(extra);
            assert!(e.contains(frag), "{extra:?}: {e}");
        }
    }

    #[test]
    fn access_table() {
        use Protocol::{Imap, Pop3};
        let all = UserSettings::default();
        let only = |p: &[Protocol]| UserSettings {
            protocols: Some(p.to_vec()),
            ..Default::default()
        };
        let pam = user("ann", Some(1000), Some(1000), &[1000, 50, 60]);
        let primary = user("bob", Some(1001), Some(50), &[]);
        let outsider = user("carl", Some(1002), Some(1002), &[1002]);
        let virt = user("dora@example.org", None, None, &[]);
        // (rules, user, settings, protocol, allowed, fragment of the reason)
        let table: Vec<(Rules, &User, UserSettings, Protocol, bool, &str)> = vec![
            // No rules: everyone, everything.
            (rules(None, None), &outsider, all.clone(), Imap, true, ""),
            (rules(None, None), &virt, all.clone(), Pop3, true, ""),
            // The line's field: any subset, empty = none.
            (
                rules(None, None),
                &virt,
                only(&[Pop3]),
                Imap,
                false,
                "nestbox_protocols=pop3",
            ),
            (rules(None, None), &virt, only(&[Pop3]), Pop3, true, ""),
            (
                rules(None, None),
                &virt,
                only(&[]),
                Pop3,
                false,
                "nestbox_protocols=",
            ),
            (rules(None, None), &pam, only(&[Imap, Pop3]), Imap, true, ""),
            // users_group: supplementary and primary membership both count.
            (rules(Some(50), None), &pam, all.clone(), Pop3, true, ""),
            (rules(Some(60), None), &pam, all.clone(), Pop3, true, ""),
            (rules(Some(50), None), &primary, all.clone(), Pop3, true, ""),
            (
                rules(Some(50), None),
                &outsider,
                all.clone(),
                Pop3,
                false,
                "pop3.users_group popusers",
            ),
            // ... does not touch IMAP ...
            (
                rules(Some(50), None),
                &outsider,
                all.clone(),
                Imap,
                true,
                "",
            ),
            // ... nor users without a uid: their field decides.
            (rules(Some(50), None), &virt, all.clone(), Pop3, true, ""),
            (
                rules(Some(50), None),
                &virt,
                only(&[Imap]),
                Pop3,
                false,
                "nestbox_protocols=imap",
            ),
            // Both rules must allow: the field cannot grant what the group takes away.
            (
                rules(Some(50), None),
                &outsider,
                only(&[Pop3]),
                Pop3,
                false,
                "users_group",
            ),
            // deny_group: members (primary or supplementary) lose IMAP only.
            (
                rules(None, Some(60)),
                &pam,
                all.clone(),
                Imap,
                false,
                "imap.deny_group nomap",
            ),
            (
                rules(None, Some(50)),
                &primary,
                all.clone(),
                Imap,
                false,
                "deny_group",
            ),
            (rules(None, Some(60)), &pam, all.clone(), Pop3, true, ""),
            (
                rules(None, Some(60)),
                &outsider,
                all.clone(),
                Imap,
                true,
                "",
            ),
            (rules(None, Some(60)), &virt, all.clone(), Imap, true, ""),
        ];
        for (i, (r, u, s, p, allowed, frag)) in table.iter().enumerate() {
            let got = r.access(u, s, *p);
            assert_eq!(got.is_ok(), *allowed, "row {i}: {got:?}");
            if let Err(reason) = got {
                assert!(reason.contains(frag), "row {i}: {reason}");
            }
        }
    }

    #[test]
    fn pop3_policy_order() {
        let mut r = rules(None, None);
        r.pop3.dele = DeleMode::Flag;
        r.pop3.dele_folder = "Trash".into();
        r.pop3.retr_seen = true;
        r.pop3.login_delay = std::time::Duration::from_secs(600);
        r.pop3.user.insert(
            "ann".into(),
            Pop3UserConfig {
                dele: Some(DeleMode::Move),
                dele_folder: Some("Ann/Deleted".into()),
                retr_seen: Some(false),
            },
        );
        r.pop3.user.insert(
            "bob".into(),
            Pop3UserConfig {
                dele: Some(DeleMode::Move),
                ..Default::default()
            },
        );
        let none = UserSettings::default();
        let policy = |name: &str, s: &UserSettings| r.pop3_policy(&user(name, None, None, &[]), s);
        // Server-wide.
        assert_eq!(
            policy("carl", &none),
            Pop3Policy {
                dele: DeleAction::Flag,
                retr_seen: true,
                login_delay_secs: 600,
                uidl_format: Default::default(),
            }
        );
        // [pop3.user.ann] over [pop3].
        assert_eq!(
            policy("ann", &none),
            Pop3Policy {
                dele: DeleAction::Move("Ann/Deleted".into()),
                retr_seen: false,
                login_delay_secs: 600,
                uidl_format: Default::default(),
            }
        );
        // A table's move without a folder takes the server's folder.
        assert_eq!(policy("bob", &none).dele, DeleAction::Move("Trash".into()));
        // The line's fields over the table, each on its own.
        let line = UserSettings {
            pop3_dele: Some(DeleMode::Move),
            pop3_dele_folder: Some("Line".into()),
            ..Default::default()
        };
        assert_eq!(
            policy("ann", &line),
            Pop3Policy {
                dele: DeleAction::Move("Line".into()),
                retr_seen: false,
                login_delay_secs: 600,
                uidl_format: Default::default(),
            }
        );
        // `move` in the line without a folder: the table's folder.
        let bare_move = UserSettings {
            pop3_dele: Some(DeleMode::Move),
            pop3_retr_seen: Some(true),
            ..Default::default()
        };
        let p = policy("ann", &bare_move);
        assert_eq!(p.dele, DeleAction::Move("Ann/Deleted".into()));
        assert!(p.retr_seen);
        let expunge = UserSettings {
            pop3_dele: Some(DeleMode::Expunge),
            ..Default::default()
        };
        assert_eq!(policy("ann", &expunge).dele, DeleAction::Expunge);
    }

    #[test]
    fn unknown_group_is_an_error() {
        let mut cfg = Config::default();
        cfg.pop3.users_group = "no-such-group-nestbox".into();
        let e = Rules::from_config(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("pop3.users_group") && e.contains("no such group"),
            "{e}"
        );
        let mut cfg = Config::default();
        cfg.imap.deny_group = "no-such-group-nestbox".into();
        let e = Rules::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("imap.deny_group"), "{e}");
        let mut cfg = Config::default();
        cfg.pop3.users_group = "root".into();
        let r = Rules::from_config(&cfg).unwrap();
        assert_eq!(r.pop3_users, Some(("root".into(), 0)));
        assert_eq!(r.imap_deny, None);
    }

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::Imap.as_str(), "imap");
        assert_eq!(Protocol::Pop3.as_str(), "pop3");
        assert_eq!(
            serde_json_like(Protocol::Pop3),
            "\"pop3\"",
            "the serde name is the log name"
        );
    }

    /// Protocol's serde form, through TOML (no JSON crate in the tree).
    fn serde_json_like(p: Protocol) -> String {
        #[derive(Serialize)]
        struct W {
            p: Protocol,
        }
        toml::to_string(&W { p })
            .unwrap()
            .trim()
            .trim_start_matches("p = ")
            .to_string()
    }
}
