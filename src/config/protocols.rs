//! The `[imap]` and `[pop3]` sections: listeners, and what each protocol lets a user do
//! (issue 17): which users may use it (`imap.deny_group`, `pop3.users_group`), what POP3's
//! DELE and RETR do to the mailbox, server-wide and per user (`[pop3.user.NAME]`), the
//! minimum interval between two POP3 logins of one user, and whether APOP is offered.
//!
//! Owns the keys' shapes, defaults and the checks that need no system lookup. Group names
//! are only checked for their form here; whether the group exists is asked of the system's
//! group database where the rule is applied (`auth::access`, at startup and on reload), so
//! this module stays free of NSS calls like the rest of `config`.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{addrs, de_duration, find_key_line, find_section_line, ser_duration};

/// `[imap]`: listeners, and who may not use IMAP.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// Cleartext with STARTTLS; `[]` disables.
    pub listen: Vec<SocketAddr>,
    /// Implicit TLS; `[]` disables.
    pub listen_tls: Vec<SocketAddr>,
    /// Members of this system group (primary or supplementary) may not use IMAP;
    /// empty: nobody is kept out.
    pub deny_group: String,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: addrs(&["[::]:143"]),
            listen_tls: addrs(&["[::]:993"]),
            deny_group: String::new(),
        }
    }
}

/// What POP3's DELE does to a message at QUIT (RFC 1939 §6: deletions happen only in the
/// UPDATE state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleMode {
    /// The message is removed (expunged).
    Expunge,
    /// The message only gets `\Deleted`; an IMAP client's EXPUNGE removes it.
    Flag,
    /// The message is moved to `dele_folder`.
    Move,
}

impl DeleMode {
    /// The word in the config and the passwd-file field.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleMode::Expunge => "expunge",
            DeleMode::Flag => "flag",
            DeleMode::Move => "move",
        }
    }
}

/// `[pop3]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Config {
    /// Cleartext with STLS; `[]` disables.
    pub listen: Vec<SocketAddr>,
    /// Implicit TLS; `[]` disables.
    pub listen_tls: Vec<SocketAddr>,
    /// What DELE does at QUIT.
    pub dele: DeleMode,
    /// The folder `dele = "move"` moves to (IMAP name, `/` between levels).
    pub dele_folder: String,
    /// Whether RETR sets `\Seen` (TOP never does).
    pub retr_seen: bool,
    /// Shortest time between two POP3 logins of one user (RFC 2449 LOGIN-DELAY); zero: off.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub login_delay: Duration,
    /// When set, only members of this system group may use POP3 (users with a uid:
    /// PAM users and passwd-file lines with one); empty: everybody.
    pub users_group: String,
    /// Offer APOP (RFC 1939 §7). It works only for passwd-file users with a `{PLAIN}`
    /// secret, and is advertised only when the file holds at least one.
    pub apop: bool,
    /// How a message's UIDL is made when `dovecot-uidlist` keeps none for
    /// it (Dovecot's `pop3_uidl_format` syntax, `crate::pop3::uidl_format`);
    /// checked at load.
    pub uidl_format: crate::pop3::uidl_format::UidlFormat,
    /// Per-user settings, `[pop3.user.NAME]`, over the ones above.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, Pop3UserConfig>,
}

impl Default for Pop3Config {
    /// SPEC §3's listeners.
    fn default() -> Self {
        Pop3Config {
            listen: addrs(&["[::]:110"]),
            listen_tls: addrs(&["[::]:995"]),
            dele: DeleMode::Expunge,
            dele_folder: "Trash".to_string(),
            retr_seen: true,
            login_delay: Duration::ZERO,
            users_group: String::new(),
            apop: true,
            uidl_format: Default::default(),
            user: BTreeMap::new(),
        }
    }
}

/// `[pop3.user.NAME]`: what one user's POP3 does, over `[pop3]`; a key left out keeps the
/// server-wide value. The user's passwd-file fields, if any, win over these.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pop3UserConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dele: Option<DeleMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dele_folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retr_seen: Option<bool>,
}

/// Checks a folder name for DELE's move: the store's rule for a folder name (no empty
/// level, so no leading or trailing `/`; no `.` in a level; no control characters; fits
/// one directory entry), and not INBOX, where the message already is. Shared with the
/// passwd-file's `nestbox_pop3_dele=move:FOLDER`.
pub fn check_dele_folder(name: &str) -> Result<(), String> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Err("INBOX cannot be the folder DELE moves to".into());
    }
    crate::store::maildir::names::validate(name).map_err(|e| e.to_string())
}

/// Checks the form of a system group name (whether it exists is asked at startup).
fn check_group_name(name: &str) -> Result<(), String> {
    if name.len() > 256
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(format!("{name:?} is not a group name"));
    }
    Ok(())
}

/// A problem found by [`validate`]: where it is (for the line number) and what.
pub(super) struct Problem {
    /// The section as it may be written: `pop3.user.ann` or `pop3.user."ann"`.
    sections: Vec<String>,
    key: &'static str,
    pub message: String,
}

impl Problem {
    /// The line of the key, else of its section, in `text`.
    pub fn line(&self, text: &str) -> Option<usize> {
        let s = &self.sections;
        s.iter()
            .find_map(|sec| find_key_line(text, sec, self.key))
            .or_else(|| s.iter().find_map(|sec| find_section_line(text, sec)))
    }
}

/// Checks what the types cannot, for the two sections.
pub(super) fn validate(imap: &ImapConfig, pop3: &Pop3Config) -> Result<(), Problem> {
    let problem = |section: &str, key: &'static str, message: String| Problem {
        sections: vec![section.to_string()],
        key,
        message,
    };
    if let Err(e) = check_group_name(&imap.deny_group) {
        return Err(problem(
            "imap",
            "deny_group",
            format!("imap.deny_group: {e}"),
        ));
    }
    if let Err(e) = check_group_name(&pop3.users_group) {
        return Err(problem(
            "pop3",
            "users_group",
            format!("pop3.users_group: {e}"),
        ));
    }
    if let Err(e) = check_dele_folder(&pop3.dele_folder) {
        return Err(problem(
            "pop3",
            "dele_folder",
            format!("pop3.dele_folder: {e}"),
        ));
    }
    for (name, u) in &pop3.user {
        let section = format!("pop3.user.{name}");
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == ':') {
            return Err(problem(
                "pop3",
                "user",
                format!("[pop3.user.{name:?}]: not a user name"),
            ));
        }
        if let Some(folder) = &u.dele_folder {
            if let Err(e) = check_dele_folder(folder) {
                return Err(Problem {
                    sections: vec![section.clone(), format!("pop3.user.{name:?}")],
                    key: "dele_folder",
                    message: format!("{section}.dele_folder: {e}"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse_str;
    use super::*;

    const TLS: &str = "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n";

    #[test]
    fn defaults() {
        let c = parse_str(TLS).unwrap();
        assert_eq!(c.imap.deny_group, "");
        let p = &c.pop3;
        assert_eq!(p.listen, addrs(&["[::]:110"]));
        assert_eq!(p.listen_tls, addrs(&["[::]:995"]));
        assert_eq!(p.dele, DeleMode::Expunge);
        assert_eq!(p.dele_folder, "Trash");
        assert!(p.retr_seen);
        assert_eq!(p.login_delay, Duration::ZERO);
        assert_eq!(p.users_group, "");
        assert!(p.apop);
        assert!(p.user.is_empty());
    }

    #[test]
    fn every_key() {
        let text = format!(
            "{TLS}[imap]\ndeny_group = \"popusers\"\n\
             [pop3]\ndele = \"move\"\ndele_folder = \"Archive/POP3\"\nretr_seen = false\n\
             login_delay = \"15m\"\nusers_group = \"popusers\"\napop = false\n\
             [pop3.user.ann]\ndele = \"flag\"\n\
             [pop3.user.\"bob@example.org\"]\ndele_folder = \"Gelöscht\"\nretr_seen = true\n"
        );
        let c = parse_str(&text).unwrap();
        assert_eq!(c.imap.deny_group, "popusers");
        // A key left out keeps its default.
        assert_eq!(c.imap.listen, addrs(&["[::]:143"]));
        let p = &c.pop3;
        assert_eq!(p.listen, addrs(&["[::]:110"]));
        assert_eq!(p.dele, DeleMode::Move);
        assert_eq!(p.dele_folder, "Archive/POP3");
        assert!(!p.retr_seen);
        assert_eq!(p.login_delay, Duration::from_secs(900));
        assert_eq!(p.users_group, "popusers");
        assert!(!p.apop);
        assert_eq!(
            p.user["ann"],
            Pop3UserConfig {
                dele: Some(DeleMode::Flag),
                ..Pop3UserConfig::default()
            }
        );
        assert_eq!(
            p.user["bob@example.org"],
            Pop3UserConfig {
                dele: None,
                dele_folder: Some("Gelöscht".into()),
                retr_seen: Some(true),
            }
        );
        // check-config's output reads back to the same values.
        let again = parse_str(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
        assert_eq!(again.pop3.user, c.pop3.user);
        assert_eq!(again.pop3.login_delay, c.pop3.login_delay);
    }

    #[test]
    fn bad_values_carry_line_numbers() {
        // (text, line, fragment of the message)
        let table: &[(&str, usize, &str)] = &[
            ("[pop3]\n\ndele = \"delete\"\n", 3, "unknown variant"),
            ("[pop3]\ndele = 1\n", 2, "wanted string"),
            (
                "[pop3]\ndele_folder = \"/Trash\"\n",
                2,
                "empty hierarchy level",
            ),
            (
                "[pop3]\ndele_folder = \"Trash/\"\n",
                2,
                "empty hierarchy level",
            ),
            ("[pop3]\ndele_folder = \"Old.Mail\"\n", 2, "'.'"),
            ("[pop3]\ndele_folder = \"\"\n", 2, "empty name"),
            ("[pop3]\ndele_folder = \"inbox\"\n", 2, "INBOX"),
            ("[pop3]\ndele_folder = \"a\\tb\"\n", 2, "control"),
            ("[pop3]\nretr_seen = \"yes\"\n", 2, "invalid type"),
            ("[pop3]\nlogin_delay = \"5 min\"\n", 2, "duration"),
            ("[pop3]\nlogin_delay = -5\n", 2, "negative"),
            (
                "[pop3]\nusers_group = \"pop users\"\n",
                2,
                "pop3.users_group",
            ),
            ("[pop3]\napop = \"no\"\n", 2, "invalid type"),
            ("[pop3]\nlogin_dealy = \"1m\"\n", 2, "unknown field"),
            ("[imap]\ndeny_group = \"a:b\"\n", 2, "imap.deny_group"),
            ("[imap]\ndeny_group = 5\n", 2, "invalid type"),
            (
                "[pop3.user.ann]\ndele = \"flag\"\ndele_folder = \"x.y\"\n",
                3,
                "pop3.user.ann.dele_folder",
            ),
            (
                "[pop3.user.\"a@b\"]\n\ndele_folder = \"INBOX\"\n",
                3,
                "pop3.user.a@b.dele_folder",
            ),
            (
                "[pop3.user.ann]\nlogin_delay = \"1m\"\n",
                2,
                "unknown field",
            ),
            ("[pop3.user.ann]\ndele = \"keep\"\n", 2, "unknown variant"),
        ];
        for (text, line, frag) in table {
            let full = format!("{text}{TLS}");
            let e = parse_str(&full).expect_err(text);
            assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
            assert!(e.to_string().contains(frag), "{text:?}: {e}");
        }
    }

    #[test]
    fn dele_folder_table() {
        for good in [
            "Trash",
            "Archive/2026",
            "Gelöscht",
            "INBOX/old",
            "Deleted Items",
        ] {
            assert_eq!(check_dele_folder(good), Ok(()), "{good}");
        }
        for bad in [
            "", "/Trash", "a//b", ".Trash", "a.b", "INBOX", "Inbox", "a\nb",
        ] {
            assert!(check_dele_folder(bad).is_err(), "{bad:?}");
        }
        assert!(check_dele_folder(&"x".repeat(300)).is_err());
    }
}
