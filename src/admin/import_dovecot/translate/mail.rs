//! Mail: where it is (`mail_location`, or 2.4's `mail_driver` and `mail_path`), the quota,
//! POP3's UIDLs and `\Seen`, and the inbox namespace's special-use folders.
use std::collections::{BTreeMap, HashSet};

use super::{Ctx, Item, Loc, Out, Section, Setting, yes};
use crate::pop3::uidl_format::UidlFormat;

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

/// `mail.maildir` from the location settings, with `~` the userdb's home if one was
/// given (`Out::home`).
pub(super) fn location(c: &mut Ctx<'_>, o: &mut Out, v24: bool) {
    let home = o.home.clone();
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

pub(super) fn quota(c: &mut Ctx<'_>, o: &mut Out) {
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

pub(super) fn pop3(c: &mut Ctx<'_>, o: &mut Out) {
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

pub(super) fn namespaces(c: &mut Ctx<'_>, o: &mut Out) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
