//! What a Dovecot 2.3 or 2.4 configuration (`parse`'s tree) means in `nestbox.toml`, and
//! the list of what it cannot say. Owns the mapping of each Dovecot setting; never reads a
//! file (the tree is given) and never guesses silently: every setting it does not carry
//! over, and every default that changes on the way, is listed with where it was written.
//!
//! Mapped: `mail_location` (2.3) or `mail_driver` + `mail_path` (2.4), with `~`, `%u`,
//! `%n`, `%d` and their long forms; `mail_uid`/`mail_gid` and a static userdb's uid, gid and
//! home; the first `passdb` that is `pam` or `passwd-file` (2.3 `args`, 2.4
//! `passwd_file_path`); `ssl`, `ssl_cert`/`ssl_key` (2.3, `<path`) and
//! `ssl_server_cert_file`/`ssl_server_key_file` (2.4); `protocols`, `listen` and the
//! `inet_listener`s of `service imap-login` and `service pop3-login` (port 0: off);
//! `pop3_uidl_format` (checked as `pop3.uidl_format` would be) and `pop3_no_flag_updates`;
//! a simple storage quota (2.3 `quota_rule = *:storage=N`, 2.4 `quota_storage_size` or a
//! `quota NAME { storage_size }`); `hostname`; the inbox namespace's `special_use`
//! mailboxes, one folder per attribute.
//!
//! Here: the result, the walk that lists every setting not read, and the TOML text; each
//! group of settings has its file: `listen` (TLS and listeners), `users` (passdb,
//! userdb, mail uid and gid), `mail` (location, quota, POP3, namespaces).
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::parse::{Item, Loc, Section, Setting};

mod listen;
mod mail;
mod users;

/// The result: the TOML text (comments included) and the two lists.
#[derive(Debug, Default)]
pub struct Translation {
    /// "2.3" or "2.4" (2.4 configurations must set `dovecot_config_version`).
    pub version: &'static str,
    pub toml: String,
    /// Settings that change what the server does and were not carried over.
    pub untranslated: Vec<String>,
    /// Settings nestbox has no use for (logging, Dovecot's own processes and indexes).
    pub ignored: Vec<String>,
}

/// Keys with no meaning for nestbox: listed as ignored, not as untranslated.
const IGNORED: &[&str] = &[
    "dovecot_config_version",
    "dovecot_storage_version",
    "ssl_dh",
    "ssl_client_ca_dir",
    "ssl_client_ca_file",
    "ssl_min_protocol",
    "ssl_cipher_list",
    "ssl_prefer_server_ciphers",
    "ssl_curve_list",
    "auth_mechanisms",
    "mail_privileged_group",
    "mail_plugins",
    "log_path",
    "info_log_path",
    "debug_log_path",
    "log_timestamp",
    "syslog_facility",
    "auth_verbose",
    "auth_debug",
    "mail_debug",
    "verbose_ssl",
    "mail_fsync",
    "mmap_disable",
    "maildir_very_dirty_syncs",
    "base_dir",
    "state_dir",
    "instance_name",
    "default_internal_user",
    "default_internal_group",
    "default_login_user",
    "login_trusted_networks",
];

#[derive(Default)]
struct Out {
    hostname: Option<String>,
    /// (listen, listen_tls) for imap and pop3; `None`: nestbox's default.
    imap: Option<(Vec<String>, Vec<String>)>,
    pop3: Option<(Vec<String>, Vec<String>)>,
    uidl_format: Option<String>,
    retr_seen: Option<bool>,
    cert: Option<String>,
    key: Option<String>,
    backend: String,
    passwd_file: Option<String>,
    pam_service: Option<String>,
    plaintext_on_loopback: Option<bool>,
    maildir: String,
    quota: Option<u64>,
    user: Option<String>,
    group: Option<String>,
    special_use: BTreeMap<String, String>,
    /// Users' home as a static userdb or `mail_home` gives it (for `~`); not written.
    home: Option<String>,
}

struct Ctx<'a> {
    top: &'a Section,
    used: HashSet<(PathBuf, usize)>,
    untranslated: Vec<String>,
    ignored: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// The last value of a top-level `key`, marked as read.
    fn get(&mut self, key: &str) -> Option<&'a Setting> {
        let s = self.top.get(key)?;
        self.use_(s);
        Some(s)
    }

    fn use_(&mut self, s: &Setting) {
        self.used.insert((s.loc.file.clone(), s.loc.line));
    }

    fn note(&mut self, loc: Option<&Loc>, what: impl Into<String>) {
        let what = what.into();
        self.untranslated.push(match loc {
            Some(l) => format!("{l}: {what}"),
            None => what,
        });
    }
}

/// Translates a parsed configuration.
pub fn translate(top: &Section) -> Translation {
    let mut c = Ctx {
        top,
        used: HashSet::new(),
        untranslated: Vec::new(),
        ignored: Vec::new(),
    };
    let v24 = top.get("dovecot_config_version").is_some();
    let mut o = Out {
        backend: "pam".into(),
        maildir: "~/Maildir".into(),
        ..Out::default()
    };
    if let Some(h) = c.get("hostname") {
        o.hostname = Some(h.value.clone());
    }
    listen::tls(&mut c, &mut o);
    listen::listeners(&mut c, &mut o);
    users::auth(&mut c, &mut o);
    users::userdbs(&mut c, &mut o);
    mail::location(&mut c, &mut o, v24);
    mail::quota(&mut c, &mut o);
    mail::pop3(&mut c, &mut o);
    mail::namespaces(&mut c, &mut o);
    leftovers(&mut c, top, "");
    Translation {
        version: if v24 { "2.4" } else { "2.3" },
        toml: render(&o),
        untranslated: c.untranslated,
        ignored: c.ignored,
    }
}

fn yes(v: &str) -> bool {
    matches!(v.trim(), "yes" | "true" | "1")
}

/// Every setting not read above, named in one of the two lists (an empty value changes
/// nothing and is skipped).
fn leftovers(c: &mut Ctx<'_>, s: &Section, path: &str) {
    for item in &s.items {
        match item {
            Item::Set(x) => {
                // Read, empty, or set again later in the same section.
                let overridden = s.get(&x.key).is_some_and(|last| last.loc != x.loc);
                if c.used.contains(&(x.loc.file.clone(), x.loc.line))
                    || x.value.is_empty()
                    || overridden
                {
                    continue;
                }
                let line = format!("{}: {path}{} = {}", x.loc, x.key, x.value);
                let section = path.split(' ').next().unwrap_or("");
                if IGNORED.contains(&x.key.as_str())
                    || IGNORED.contains(&section)
                    || x.key.starts_with("log_")
                {
                    c.ignored.push(line);
                } else {
                    c.untranslated.push(line);
                }
            }
            Item::Section(sub) => {
                let p = if sub.name.is_empty() {
                    format!("{path}{} / ", sub.kind)
                } else {
                    format!("{path}{} {} / ", sub.kind, sub.name)
                };
                leftovers(c, sub, &p);
            }
        }
    }
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn render(o: &Out) -> String {
    let mut t = String::new();
    if let Some(h) = &o.hostname {
        t.push_str(&format!("hostname = {}\n", q(h)));
    }
    for (name, l) in [("imap", &o.imap), ("pop3", &o.pop3)] {
        t.push_str(&format!("\n[{name}]\n"));
        if let Some((plain, tls)) = l {
            t.push_str(&format!(
                "listen = {}\nlisten_tls = {}\n",
                list(plain),
                list(tls)
            ));
        }
        if name == "pop3" {
            if let Some(f) = &o.uidl_format {
                t.push_str(&format!("uidl_format = {}\n", q(f)));
            }
            if let Some(r) = o.retr_seen {
                t.push_str(&format!("retr_seen = {r}\n"));
            }
        }
    }
    t.push_str("\n[tls]\n");
    if let Some(c) = &o.cert {
        t.push_str(&format!("cert = {}\n", q(c)));
    }
    if let Some(k) = &o.key {
        t.push_str(&format!("key = {}\n", q(k)));
    }
    t.push_str(&format!("\n[auth]\nbackend = {}\n", q(&o.backend)));
    if let Some(p) = &o.passwd_file {
        t.push_str(&format!("passwd_file = {}\n", q(p)));
    }
    if let Some(p) = &o.pam_service {
        t.push_str(&format!("pam_service = {}\n", q(p)));
    }
    if let Some(p) = o.plaintext_on_loopback {
        t.push_str(&format!("plaintext_on_loopback = {p}\n"));
    }
    t.push_str(&format!("\n[mail]\nmaildir = {}\n", q(&o.maildir)));
    if let Some(n) = o.quota {
        t.push_str(&format!("quota = {}\n", q(&crate::config::fmt_size(n))));
    }
    if let Some(u) = &o.user {
        t.push_str(&format!("user = {}\n", q(u)));
    }
    if let Some(g) = &o.group {
        t.push_str(&format!("group = {}\n", q(g)));
    }
    if !o.special_use.is_empty() {
        t.push_str("\n[mail.special_use]\n");
        for (a, f) in &o.special_use {
            t.push_str(&format!("{a} = {}\n", q(f)));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(conf: &str) -> (toml::Table, Translation) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dovecot.conf");
        std::fs::write(&p, conf).unwrap();
        let t = translate(&super::super::parse::parse_file(&p).unwrap());
        (t.toml.parse().unwrap(), t)
    }

    fn has(t: &Translation, what: &str) -> bool {
        t.untranslated.iter().any(|l| l.contains(what))
    }

    #[test]
    fn virtual_users_on_23() {
        let (toml, t) = run(r#"
protocols = imap lmtp
listen = 192.0.2.1, 2001:db8::1
ssl = no
disable_plaintext_auth = no
mail_location = maildir:/var/vmail/%d/%n:LAYOUT=fs:CONTROL=/var/ctl/%u:INDEX=/var/idx/%u
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%n /etc/dovecot/passwd
}
passdb {
  driver = sql
  args = /etc/dovecot/sql.conf.ext
}
userdb {
  driver = static
  args = uid=5000 gid=vmail home=/var/vmail/%d/%n
}
userdb {
  driver = passwd-file
  args = username_format=%u /etc/dovecot/other
}
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=102400
  quota_rule2 = Trash:storage=+100M
}
pop3_uidl_format = %m
first_valid_uid = 5000
service imap-login {
  inet_listener imap {
    port = 1143
  }
  inet_listener imaps {
    port = 993
  }
}
"#);
        assert_eq!(
            toml["imap"]["listen"].as_array().unwrap(),
            &["192.0.2.1:1143", "[2001:db8::1]:1143"].map(toml::Value::from)
        );
        assert!(
            toml["imap"]["listen_tls"].as_array().unwrap().is_empty(),
            "ssl = no"
        );
        assert!(
            toml["pop3"]["listen"].as_array().unwrap().is_empty(),
            "not in protocols"
        );
        assert!(toml["pop3"].get("uidl_format").is_none());
        assert!(toml["tls"].as_table().unwrap().is_empty());
        assert_eq!(toml["auth"]["backend"].as_str(), Some("passwd-file"));
        assert_eq!(
            toml["auth"]["passwd_file"].as_str(),
            Some("/etc/dovecot/passwd")
        );
        assert_eq!(toml["mail"]["maildir"].as_str(), Some("/var/vmail/%d/%n"));
        assert_eq!(
            toml["mail"]["quota"].as_str(),
            Some("100M"),
            "kilobytes without a unit"
        );
        assert_eq!(toml["mail"]["group"].as_str(), Some("vmail"));
        assert!(
            toml["mail"].get("user").is_none(),
            "a uid number is no user name"
        );
        for what in [
            "disable_plaintext_auth = no",
            "LAYOUT=fs",
            "CONTROL=/var/ctl/%u",
            "username_format=%n",
            "passdb sql: only the first",
            "mail uid 5000",
            "quota_rule2",
            "pop3_uidl_format = %m",
            "first_valid_uid = 5000",
            "imaps (port 993): ssl = no",
            "protocols: lmtp: nestbox has no LMTP",
            "userdb passwd-file /etc/dovecot/other",
        ] {
            assert!(has(&t, what), "{what}: {:#?}", t.untranslated);
        }
        assert!(!has(&t, "scheme="), "{:#?}", t.untranslated);
        assert!(t.ignored.iter().any(|l| l.contains("INDEX=/var/idx/%u")));
        assert_eq!(t.version, "2.3");
    }

    #[test]
    fn pam_and_dbox_on_24() {
        let (toml, t) = run(r#"
dovecot_config_version = 2.4.0
listen = *
passdb pam {
  passdb_pam {
    service_name = mail
  }
}
mail_driver = sdbox
mail_path = ~/dbox
quota_storage_size = 500M
ssl_server_cert_file = /c.pem
ssl_server_key_file = /k.pem
"#);
        assert_eq!(t.version, "2.4");
        assert_eq!(toml["auth"]["backend"].as_str(), Some("pam"));
        assert_eq!(toml["auth"]["pam_service"].as_str(), Some("mail"));
        assert_eq!(toml["mail"]["maildir"].as_str(), Some("~/Maildir"));
        assert_eq!(toml["mail"]["quota"].as_str(), Some("500M"));
        assert_eq!(toml["tls"]["cert"].as_str(), Some("/c.pem"));
        assert_eq!(
            toml["pop3"]["listen_tls"].as_array().unwrap(),
            &["0.0.0.0:995"].map(toml::Value::from)
        );
        assert!(
            has(&t, "the mail is in sdbox format"),
            "{:#?}",
            t.untranslated
        );
        assert!(!has(&t, "service_name"), "{:#?}", t.untranslated);
        assert!(!has(&t, "PAM service"), "{:#?}", t.untranslated);
    }
}
