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
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::parse::{Item, Loc, Section, Setting};
use crate::pop3::uidl_format::UidlFormat;

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
    tls(&mut c, &mut o);
    listeners(&mut c, &mut o);
    auth(&mut c, &mut o);
    mail(&mut c, &mut o, v24);
    quota(&mut c, &mut o);
    pop3(&mut c, &mut o);
    namespaces(&mut c, &mut o);
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

fn tls(c: &mut Ctx<'_>, o: &mut Out) {
    let ssl = c.get("ssl").map(|s| (s.value.clone(), s.loc.clone()));
    match ssl.as_ref().map(|(v, _)| v.as_str()) {
        Some("no") => {
            // No TLS: implicit-TLS listeners go (see `listeners`), cert and key are not
            // carried over.
            return;
        }
        Some("required") => o.plaintext_on_loopback = Some(false),
        _ => {}
    }
    for (key23, key24, slot) in [
        ("ssl_cert", "ssl_server_cert_file", &mut o.cert),
        ("ssl_key", "ssl_server_key_file", &mut o.key),
    ] {
        if let Some(s) = c.get(key24) {
            *slot = Some(s.value.clone());
        } else if let Some(s) = c.get(key23) {
            if s.from_file {
                *slot = Some(s.value.clone());
            } else if !s.value.is_empty() {
                c.note(
                    Some(&s.loc),
                    format!(
                        "{key23}: an inline PEM (not `<path`): put it in a file for tls.{}",
                        &key23[4..]
                    ),
                );
            }
        }
    }
    for k in [
        "ssl_key_password",
        "ssl_server_key_password",
        "ssl_ca",
        "ssl_verify_client_cert",
    ] {
        if let Some(s) = c.get(k).filter(|s| !s.value.is_empty()) {
            let loc = s.loc.clone();
            c.note(Some(&loc), format!("{k}: not supported by nestbox"));
        }
    }
    for k in ["disable_plaintext_auth", "auth_allow_cleartext"] {
        if let Some(s) = c.get(k) {
            let cleartext = if k == "disable_plaintext_auth" {
                !yes(&s.value)
            } else {
                yes(&s.value)
            };
            if cleartext {
                let loc = s.loc.clone();
                c.note(
                    Some(&loc),
                    format!(
                        "{k} = {}: nestbox never takes a password without TLS except from \
                         127.0.0.1 and ::1 (auth.plaintext_on_loopback)",
                        s.value
                    ),
                );
            }
        }
    }
}

/// A listener as Dovecot's defaults and the config leave it.
struct Listener {
    name: String,
    port: u16,
    address: Option<String>,
    ssl: bool,
}

fn listeners(c: &mut Ctx<'_>, o: &mut Out) {
    let protocols: Vec<String> = match c.get("protocols") {
        Some(p) => p.value.split_whitespace().map(str::to_string).collect(),
        // Dovecot's built-in default.
        None => vec!["imap".into(), "pop3".into(), "lmtp".into()],
    };
    let loc = c.top.get("protocols").map(|s| s.loc.clone());
    if loc.is_some() {
        for p in &protocols {
            let why = match p.as_str() {
                "imap" | "pop3" => continue,
                "lmtp" => {
                    "nestbox has no LMTP: have the MTA deliver into the Maildirs (Postfix's \
                     local or virtual), or keep Dovecot's LDA"
                }
                "submission" => "nestbox has no submission service: the MTA's port 587 does that",
                "sieve" => "nestbox has no ManageSieve",
                _ => "not served by nestbox",
            };
            c.note(loc.as_ref(), format!("protocols: {p}: {why}"));
        }
    }
    let listen = c
        .get("listen")
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "*, ::".into());
    let ssl_off = c.top.get("ssl").is_some_and(|s| s.value == "no");
    for (proto, plain_port, tls_port) in [("imap", 143u16, 993u16), ("pop3", 110, 995)] {
        let mut ls = vec![
            Listener {
                name: proto.into(),
                port: plain_port,
                address: None,
                ssl: false,
            },
            Listener {
                name: format!("{proto}s"),
                port: tls_port,
                address: None,
                ssl: true,
            },
        ];
        let service = format!("{proto}-login");
        for svc in c.top.sections("service").filter(|s| s.name == service) {
            for l in svc.sections("inet_listener") {
                let i = match ls.iter().position(|x| x.name == l.name) {
                    Some(i) => i,
                    None => {
                        ls.push(Listener {
                            name: l.name.clone(),
                            port: 0,
                            address: None,
                            ssl: false,
                        });
                        ls.len() - 1
                    }
                };
                for item in &l.items {
                    let Item::Set(s) = item else { continue };
                    c.use_(s);
                    match s.key.as_str() {
                        "port" => match s.value.parse() {
                            Ok(p) => ls[i].port = p,
                            Err(_) => {
                                c.note(Some(&s.loc), format!("port {:?}: not a port", s.value))
                            }
                        },
                        "address" => ls[i].address = Some(s.value.clone()),
                        "ssl" => ls[i].ssl = yes(&s.value),
                        "haproxy" if yes(&s.value) => c.note(
                            Some(&s.loc),
                            "haproxy = yes: the PROXY protocol is configured in nestbox separately",
                        ),
                        "haproxy" => {}
                        _ => c.note(
                            Some(&s.loc),
                            format!("inet_listener {}: {} = {}", l.name, s.key, s.value),
                        ),
                    }
                }
            }
        }
        let (mut plain, mut tls) = (Vec::new(), Vec::new());
        if protocols.iter().any(|p| p == proto) {
            for l in &ls {
                if l.port == 0 {
                    continue;
                }
                if l.ssl && ssl_off {
                    c.note(
                        None,
                        format!(
                            "inet_listener {} (port {}): ssl = no, so it is left out",
                            l.name, l.port
                        ),
                    );
                    continue;
                }
                let addrs = l.address.as_deref().unwrap_or(&listen);
                for a in socket_addrs(c, addrs, l.port) {
                    if l.ssl { &mut tls } else { &mut plain }.push(a);
                }
            }
        }
        let pair = Some((plain, tls));
        if proto == "imap" {
            o.imap = pair;
        } else {
            o.pop3 = pair;
        }
    }
}

/// Dovecot's `listen` list as socket addresses: `*` is every IPv4 address, `::` every IPv6
/// one; both together are nestbox's dual-stack `[::]`.
fn socket_addrs(c: &mut Ctx<'_>, list: &str, port: u16) -> Vec<String> {
    let items: Vec<&str> = list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let both = items.contains(&"*") && items.contains(&"::");
    let mut out = Vec::new();
    for a in items {
        let s = match a {
            "*" if both => continue,
            "*" => format!("0.0.0.0:{port}"),
            "::" => format!("[::]:{port}"),
            a => match a.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(v4)) => format!("{v4}:{port}"),
                Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
                Err(_) => {
                    c.note(
                        None,
                        format!("listen address {a:?}: not an IP address; left out"),
                    );
                    continue;
                }
            },
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn auth(c: &mut Ctx<'_>, o: &mut Out) {
    let mut chosen = false;
    let passdbs: Vec<&Section> = c.top.sections("passdb").collect();
    for p in passdbs {
        let driver = p
            .get("driver")
            .map_or(p.name.as_str(), |d| d.value.as_str());
        let mut used: Vec<&Setting> = p.get("driver").into_iter().collect();
        let loc = p.loc.clone();
        if chosen {
            c.note(
                loc.as_ref(),
                format!("passdb {driver}: only the first passdb is used"),
            );
            continue;
        }
        match driver {
            "pam" => {
                o.backend = "pam".into();
                if let Some(a) = p.get("args") {
                    used.push(a);
                    let service = a.value.split_whitespace().find(|t| !t.contains('='));
                    match service {
                        Some("*") => c.note(Some(&a.loc), "passdb pam: the `*` service (one per protocol) is not supported; nestbox uses auth.pam_service"),
                        Some(s) => o.pam_service = Some(s.to_string()),
                        None => {}
                    }
                }
                if let Some(s) = p
                    .get("passdb_pam_service_name")
                    .or_else(|| p.get("service_name"))
                    .or_else(|| {
                        p.sections("passdb_pam")
                            .filter_map(|x| x.get("service_name"))
                            .last()
                    })
                {
                    used.push(s);
                    o.pam_service = Some(s.value.clone());
                }
                if o.pam_service.is_none() {
                    c.note(
                        loc.as_ref(),
                        "passdb pam: Dovecot's PAM service is \"dovecot\" (/etc/pam.d/dovecot); \
                         nestbox's is auth.pam_service, \"nestbox\" (/etc/pam.d/nestbox): \
                         copy any change you made there",
                    );
                }
                chosen = true;
            }
            "passwd-file" => {
                let path = if let Some(s) = p.get("passwd_file_path") {
                    used.push(s);
                    Some(s.value.clone())
                } else if let Some(a) = p.get("args") {
                    used.push(a);
                    for t in a.value.split_whitespace().filter(|t| t.contains('=')) {
                        let (k, v) = t.split_once('=').unwrap_or((t, ""));
                        // A hash without a {SCHEME} prefix is read by its crypt prefix
                        // ($6$, $5$, $2y$, $argon2id$), which covers these defaults.
                        match (k, v.to_ascii_uppercase().as_str()) {
                            ("username_format", "%U" | "%{USER}")
                            | (
                                "scheme",
                                "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT"
                                | "ARGON2ID",
                            ) => {}
                            _ => c.note(
                                Some(&a.loc),
                                format!("passdb passwd-file: {t}: not supported"),
                            ),
                        }
                    }
                    a.value
                        .split_whitespace()
                        .rfind(|t| !t.contains('='))
                        .map(str::to_string)
                } else {
                    None
                };
                match path {
                    Some(path) if !path.contains('%') => {
                        o.backend = "passwd-file".into();
                        o.passwd_file = Some(path);
                        chosen = true;
                    }
                    Some(path) => c.note(
                        loc.as_ref(),
                        format!("passdb passwd-file {path}: one file per user or domain is not supported"),
                    ),
                    None => c.note(loc.as_ref(), "passdb passwd-file without a file"),
                }
            }
            other => c.note(
                loc.as_ref(),
                format!("passdb {other}: not supported by nestbox (pam or passwd-file only)"),
            ),
        }
        for s in used {
            c.use_(s);
        }
        // The rest of the section: named in the list if it says anything.
        for item in &p.items {
            if let Item::Set(s) = item
                && !c.used.contains(&(s.loc.file.clone(), s.loc.line))
                && !matches!(
                    s.key.as_str(),
                    "default_fields" | "override_fields" | "deny" | "master" | "result_success"
                )
            {
                let s = s.clone();
                c.use_(&s);
                c.note(
                    Some(&s.loc),
                    format!("passdb {driver}: {} = {}", s.key, s.value),
                );
            }
        }
    }
    if !chosen {
        c.note(
            None,
            "no pam or passwd-file passdb: auth.backend is left at \"pam\" (system users)",
        );
    }
}

/// A Dovecot path with variables as a `mail.maildir` template, or why not.
fn template(path: &str, home: Option<&str>) -> Result<String, String> {
    let mut s = path.to_string();
    for (from, to) in [
        ("%{user | username}", "%n"),
        ("%{user|username}", "%n"),
        ("%{user | domain}", "%d"),
        ("%{user|domain}", "%d"),
        ("%{username}", "%n"),
        ("%{domain}", "%d"),
        ("%{user}", "%u"),
        ("%{home}", "~"),
        ("%h", "~"),
    ] {
        s = s.replace(from, to);
    }
    if let (Some(h), Some(rest)) = (home, s.strip_prefix('~')) {
        s = format!("{}{rest}", template(h, None)?);
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1) {
                Some(b'u' | b'n' | b'd' | b'%') => i += 1,
                _ => return Err(format!("{path:?}: a variable other than %u, %n, %d, ~")),
            }
        }
        i += 1;
    }
    if s.contains('~') && !s.starts_with('~') {
        return Err(format!("{path:?}: ~ in the middle"));
    }
    Ok(s)
}

fn mail(c: &mut Ctx<'_>, o: &mut Out, v24: bool) {
    // Users' home from a static userdb or mail_home (for `~`).
    let mut home: Option<String> = c.get("mail_home").map(|s| s.value.clone());
    let userdbs: Vec<&Section> = c.top.sections("userdb").collect();
    for u in userdbs {
        let driver = u.get("driver").map_or(u.name.clone(), |d| d.value.clone());
        if let Some(d) = u.get("driver") {
            c.use_(d);
        }
        match driver.as_str() {
            "static" => {
                let mut fields: Vec<(String, String, Loc)> = Vec::new();
                if let Some(a) = u.get("args") {
                    c.use_(a);
                    for t in a.value.split_whitespace() {
                        if let Some((k, v)) = t.split_once('=') {
                            fields.push((k.into(), v.into(), a.loc.clone()));
                        }
                    }
                }
                for f in u.sections("fields").chain(u.sections("userdb_fields")) {
                    for item in &f.items {
                        if let Item::Set(s) = item {
                            c.use_(s);
                            fields.push((s.key.clone(), s.value.clone(), s.loc.clone()));
                        }
                    }
                }
                for (k, v, loc) in fields {
                    match k.as_str() {
                        "uid" => o.user = Some(v),
                        "gid" => o.group = Some(v),
                        "home" => home = Some(v),
                        "allow_all_users" => {}
                        _ => c.note(Some(&loc), format!("userdb static: {k}={v}")),
                    }
                }
            }
            "passwd-file" => {
                let path = u
                    .get("passwd_file_path")
                    .map(|s| s.value.clone())
                    .or_else(|| {
                        u.get("args")
                            .and_then(|a| a.value.split_whitespace().rfind(|t| !t.contains('=')))
                            .map(str::to_string)
                    });
                if let Some(a) = u.get("args") {
                    c.use_(a);
                }
                if path.is_some() && path != o.passwd_file {
                    c.note(
                        u.loc.as_ref(),
                        format!(
                            "userdb passwd-file {}: nestbox reads uid, gid and home from the \
                             passdb's file (auth.passwd_file) only",
                            path.unwrap_or_default()
                        ),
                    );
                }
            }
            "passwd" | "prefetch" => {}
            other => c.note(
                u.loc.as_ref(),
                format!("userdb {other}: not supported by nestbox"),
            ),
        }
        for item in &u.items {
            if let Item::Set(s) = item
                && s.key != "args"
                && s.key != "driver"
                && !s.key.starts_with("passwd_file")
            {
                c.use_(s);
                c.note(
                    Some(&s.loc),
                    format!("userdb {driver}: {} = {}", s.key, s.value),
                );
            } else if let Item::Set(s) = item {
                c.use_(s);
            }
        }
    }
    if let Some(s) = c.get("mail_uid") {
        o.user = Some(s.value.clone());
    }
    if let Some(s) = c.get("mail_gid") {
        o.group = Some(s.value.clone());
    }
    for (what, v) in [("uid", &o.user), ("gid", &o.group)] {
        if let Some(v) = v
            && v.parse::<u32>().is_ok()
        {
            c.note(
                None,
                format!("mail {what} {v} is a number: mail.user and mail.group take names"),
            );
        }
    }
    if o.user.as_ref().is_some_and(|v| v.parse::<u32>().is_ok()) {
        o.user = None;
    }
    if o.group.as_ref().is_some_and(|v| v.parse::<u32>().is_ok()) {
        o.group = None;
    }

    // (driver, path, parameters, where)
    let (driver, path, params, loc): (String, String, Vec<(String, String)>, Option<Loc>) = if v24 {
        let d = c
            .get("mail_driver")
            .map(|s| (s.value.clone(), s.loc.clone()));
        let p = c.get("mail_path").map(|s| s.value.clone());
        let mut params = Vec::new();
        for (k, name) in [
            ("mail_inbox_path", "INBOX"),
            ("mail_control_path", "CONTROL"),
            ("mail_index_path", "INDEX"),
            ("mailbox_list_layout", "LAYOUT"),
            ("mail_volatile_path", "VOLATILEDIR"),
        ] {
            if let Some(s) = c.get(k) {
                params.push((name.to_string(), s.value.clone()));
            }
        }
        match d {
            Some((d, loc)) => (d, p.unwrap_or_default(), params, Some(loc)),
            None => (String::new(), p.unwrap_or_default(), params, None),
        }
    } else {
        match c.get("mail_location") {
            Some(s) => {
                let mut parts = s.value.split(':');
                let first = parts.next().unwrap_or("");
                let (d, p) = if first.contains('/') || first.starts_with('~') {
                    (String::new(), first.to_string())
                } else {
                    (first.to_string(), parts.next().unwrap_or("").to_string())
                };
                let params = parts
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (k.trim().to_uppercase(), v.to_string())
                    })
                    .collect();
                (d, p, params, Some(s.loc.clone()))
            }
            None => (String::new(), String::new(), Vec::new(), None),
        }
    };
    let what = if v24 { "mail_driver" } else { "mail_location" };
    match driver.as_str() {
        "maildir" if !path.is_empty() => match template(&path, home.as_deref()) {
            Ok(t) => o.maildir = t,
            Err(e) => c.note(
                loc.as_ref(),
                format!("{what}: {e}; mail.maildir left at ~/Maildir"),
            ),
        },
        "" if path.is_empty() => c.note(
            loc.as_ref(),
            format!("no {what}: Dovecot looks for the mail itself; mail.maildir left at ~/Maildir"),
        ),
        "" | "maildir" => c.note(
            loc.as_ref(),
            format!("{what}: {path:?} without the maildir driver; mail.maildir left at ~/Maildir"),
        ),
        other => c.note(
            loc.as_ref(),
            format!(
                "{what}: the mail is in {other} format, which nestbox does not serve (Maildir \
                 only); convert it first (e.g. `doveadm sync -u USER maildir:~/Maildir`); \
                 mail.maildir left at ~/Maildir"
            ),
        ),
    }
    for (k, v) in params {
        match k.as_str() {
            "LAYOUT" if v.eq_ignore_ascii_case("maildir++") => {}
            "LAYOUT" => c.note(
                loc.as_ref(),
                format!(
                    "{what}: LAYOUT={v}: nestbox reads Maildir++ folders (.Folder directories) only"
                ),
            ),
            "INBOX"
                if template(&v, home.as_deref()).ok().as_deref() == Some(o.maildir.as_str()) => {}
            "INBOX" => c.note(
                loc.as_ref(),
                format!("{what}: INBOX={v}: nestbox's INBOX is the Maildir's root"),
            ),
            "CONTROL" => c.note(
                loc.as_ref(),
                format!(
                    "{what}: CONTROL={v}: the dovecot-uidlist files are there, not in the Maildir: \
                 move them into each folder before switching, or the UIDs (and UIDLs) change"
                ),
            ),
            "INDEX" | "INDEXPVT" | "VOLATILEDIR" | "ITERINDEX" => {
                c.ignored
                    .push(format!("{what}: {k}={v} (Dovecot's own index files)"));
            }
            _ => c.note(loc.as_ref(), format!("{what}: {k}={v}")),
        }
    }
}

/// A Dovecot quota size (2.3 `quota_rule` storage: kilobytes without a unit; 2.4 sizes:
/// bytes without one) in bytes.
fn dovecot_size(v: &str, default_unit: u64) -> Option<u64> {
    let v = v.trim();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..end].parse().ok()?;
    let unit = match v[end..].trim().to_ascii_lowercase().as_str() {
        "" => default_unit,
        "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(unit)
}

fn quota(c: &mut Ctx<'_>, o: &mut Out) {
    // 2.3: plugin { quota = ... quota_rule = *:storage=1G }
    let plugins: Vec<&Section> = c.top.sections("plugin").collect();
    for p in plugins {
        for item in &p.items {
            let Item::Set(s) = item else { continue };
            c.use_(s);
            match s.key.as_str() {
                "quota" => {
                    if !s.value.starts_with("maildir") && !s.value.starts_with("count") {
                        c.note(
                            Some(&s.loc),
                            format!(
                                "quota = {}: nestbox keeps Maildir++ quota (maildirsize)",
                                s.value
                            ),
                        );
                    }
                }
                "quota_rule" => {
                    let mut rest = s.value.splitn(2, ':');
                    let who = rest.next().unwrap_or("");
                    let mut ok = who == "*";
                    for f in rest.next().unwrap_or("").split(':') {
                        match f.split_once('=') {
                            Some(("storage", v)) => match dovecot_size(v, 1 << 10) {
                                Some(n) if ok => o.quota = Some(n),
                                _ => ok = false,
                            },
                            _ => ok = false,
                        }
                    }
                    if !ok {
                        c.note(
                            Some(&s.loc),
                            format!(
                                "quota_rule = {}: only `*:storage=SIZE` is translated",
                                s.value
                            ),
                        );
                    }
                }
                k if k.starts_with("quota_warning") => c.note(
                    Some(&s.loc),
                    format!("{k}: nestbox's warnings are mail.quota_warning (percentages)"),
                ),
                k => c.note(Some(&s.loc), format!("plugin {{ {k} = {} }}", s.value)),
            }
        }
    }
    // 2.4
    if let Some(s) = c.get("quota_storage_size") {
        match dovecot_size(&s.value, 1) {
            Some(n) => o.quota = Some(n),
            None => {
                let l = s.loc.clone();
                c.note(
                    Some(&l),
                    format!("quota_storage_size = {}: not a size", s.value),
                );
            }
        }
    }
    let quotas: Vec<&Section> = c.top.sections("quota").collect();
    for (i, q) in quotas.iter().enumerate() {
        for item in &q.items {
            let Item::Set(s) = item else {
                c.note(q.loc.as_ref(), format!("quota {}: nested sections", q.name));
                continue;
            };
            c.use_(s);
            match s.key.as_str() {
                "storage_size" | "quota_storage_size" if i == 0 => {
                    match dovecot_size(&s.value, 1) {
                        Some(n) => o.quota = Some(n),
                        None => c.note(
                            Some(&s.loc),
                            format!("storage_size = {}: not a size", s.value),
                        ),
                    }
                }
                "driver" | "quota_driver" if s.value == "maildir" || s.value == "count" => {}
                _ => c.note(
                    Some(&s.loc),
                    format!("quota {}: {} = {}", q.name, s.key, s.value),
                ),
            }
        }
    }
}

fn pop3(c: &mut Ctx<'_>, o: &mut Out) {
    // Top level, then `protocol pop3 { }` over it.
    let mut settings: Vec<&Setting> = Vec::new();
    for k in ["pop3_uidl_format", "pop3_no_flag_updates"] {
        if let Some(s) = c.get(k) {
            settings.push(s);
        }
    }
    let protos: Vec<&Section> = c
        .top
        .sections("protocol")
        .filter(|p| p.name == "pop3")
        .collect();
    for p in protos {
        for item in &p.items {
            if let Item::Set(s) = item
                && matches!(s.key.as_str(), "pop3_uidl_format" | "pop3_no_flag_updates")
            {
                c.use_(s);
                settings.push(s);
            }
        }
    }
    for s in settings {
        match s.key.as_str() {
            "pop3_uidl_format" => match UidlFormat::parse(&s.value) {
                Ok(_) => o.uidl_format = Some(s.value.clone()),
                Err(e) => c.note(
                    Some(&s.loc),
                    format!(
                        "pop3_uidl_format = {}: {e}; POP3 clients will see new UIDLs and may \
                         download every message again",
                        s.value
                    ),
                ),
            },
            _ => o.retr_seen = Some(!yes(&s.value)),
        }
    }
}

fn namespaces(c: &mut Ctx<'_>, o: &mut Out) {
    let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let nss: Vec<&Section> = c.top.sections("namespace").collect();
    // Sections of one name add up (Debian sets `inbox = yes` in one file and the
    // mailboxes in another).
    let inboxes: HashSet<&str> = nss
        .iter()
        .filter(|ns| ns.get("inbox").is_some_and(|s| yes(&s.value)))
        .map(|ns| ns.name.as_str())
        .collect();
    for ns in nss {
        let inbox = inboxes.contains(ns.name.as_str());
        for item in &ns.items {
            match item {
                Item::Set(s) => {
                    c.use_(s);
                    match (s.key.as_str(), s.value.as_str()) {
                        ("inbox", _) | ("location", "") | ("prefix", "") | ("type", "private") => {}
                        ("separator", "/") => {}
                        (k, v) => c.note(Some(&s.loc), format!("namespace {}: {k} = {v}", ns.name)),
                    }
                }
                Item::Section(m) if m.kind == "mailbox" && inbox => {
                    for it in &m.items {
                        let Item::Set(s) = it else { continue };
                        c.use_(s);
                        match s.key.as_str() {
                            "special_use" => {
                                for a in s.value.split_whitespace() {
                                    uses.entry(a.trim_start_matches('\\').to_string())
                                        .or_default()
                                        .push(m.name.clone());
                                }
                            }
                            "auto" if s.value == "no" => {}
                            k => c.note(
                                Some(&s.loc),
                                format!("mailbox {}: {k} = {}", m.name, s.value),
                            ),
                        }
                    }
                }
                Item::Section(m) => c.note(
                    m.loc.as_ref(),
                    format!("namespace {}: {} {}", ns.name, m.kind, m.name),
                ),
            }
        }
    }
    for (attr, names) in uses {
        if let [one] = names.as_slice() {
            o.special_use.insert(attr, one.clone());
        } else {
            c.ignored.push(format!(
                "special_use \\{attr} on {}: nestbox gives \\{attr} by folder name",
                names.join(", ")
            ));
        }
    }
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

    #[test]
    fn templates() {
        assert_eq!(template("~/Maildir", None).unwrap(), "~/Maildir");
        assert_eq!(
            template("~/Maildir", Some("/var/vmail/%d/%n")).unwrap(),
            "/var/vmail/%d/%n/Maildir"
        );
        assert_eq!(
            template("/srv/%{user | domain}/%{user | username}", None).unwrap(),
            "/srv/%d/%n"
        );
        assert!(template("/srv/%Lu", None).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(dovecot_size("1G", 1024), Some(1 << 30));
        assert_eq!(dovecot_size("100", 1024), Some(102_400));
        assert_eq!(dovecot_size("100", 1), Some(100));
        assert_eq!(dovecot_size("5 M", 1), Some(5 << 20));
        assert_eq!(dovecot_size("5%", 1), None);
    }
}
