//! TLS and listeners: `ssl`, the certificate and key, cleartext passwords, `protocols`,
//! `listen` and the `inet_listener`s of the login services.
use super::{Ctx, Item, Out, yes};

pub(super) fn tls(c: &mut Ctx<'_>, o: &mut Out) {
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

pub(super) fn listeners(c: &mut Ctx<'_>, o: &mut Out) {
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
