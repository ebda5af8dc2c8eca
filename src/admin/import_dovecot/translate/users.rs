//! Users: the first `pam` or `passwd-file` passdb, and what the userdbs and
//! `mail_uid`/`mail_gid` say about whom mail is served as.
use super::{Ctx, Item, Loc, Out, Section, Setting};

pub(super) fn auth(c: &mut Ctx<'_>, o: &mut Out) {
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

/// The userdbs (a static one's uid, gid and home) and `mail_uid`, `mail_gid`, `mail_home`.
pub(super) fn userdbs(c: &mut Ctx<'_>, o: &mut Out) {
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
    o.home = home;
}
