//! `nestbox client-config`: the files that let mail clients set themselves up for this
//! server (issue 20, item 3): Thunderbird's autoconfig XML (`autoconfig`), an Apple
//! configuration profile for iOS and macOS Mail (`mobileconfig`) and the RFC 6186 SRV
//! records as a zone-file snippet (`srv`), all made from one [`Settings`].
//!
//! [`Settings`] come from the configuration (`hostname`, the IMAP and POP3 listeners, the
//! auth backend) and from what the configuration cannot know, given on the command line:
//! the mail domain, the submission server (the MTA, not nestbox) and its ports, a display
//! name. Nothing here opens a socket or a Maildir; it writes only the files it names, under
//! the output directory.
//!
//! Decisions:
//! - The login name clients are told to use: PAM users log in with their system name, the
//!   local part of their address (`%EMAILLOCALPART%`); passwd-file users with the name as
//!   written in the file, so the users file decides: if every name in it has an `@`, the
//!   whole address (`%EMAILADDRESS%`), if none has, the local part; a file with both kinds
//!   (or one this process cannot read) gets the whole address and a warning. `--username`
//!   overrides it.
//! - Ports come from the first address of each listener list; a list left empty (`[]`)
//!   turns the service off, which shows in every file (no server entry; an RFC 6186 "not
//!   available" SRV record).
//! - Implicit TLS is preferred to STARTTLS, and IMAP to POP3, everywhere an order exists
//!   (RFC 8314 §5.1): first in Thunderbird's list, lower SRV priority.
pub mod autoconfig;
pub mod mobileconfig;
pub mod srv;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::auth::Authenticator;
use crate::config::Config;

/// How clients log in: the whole address or its local part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Username {
    Address,
    LocalPart,
}

/// What the command line adds to the configuration.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The domain of the users' addresses (default: `hostname` without its first label,
    /// when it has more than two).
    pub email_domain: Option<String>,
    /// The MTA's submission host (default: `hostname`).
    pub submission_host: Option<String>,
    /// Submission ports: 465 is implicit TLS (RFC 8314 "submissions"), any other is
    /// STARTTLS (587). Empty: 587.
    pub submission_ports: Vec<u16>,
    pub display_name: Option<String>,
    pub username: Option<Username>,
}

/// Everything the files say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub hostname: String,
    pub domain: String,
    pub display_name: String,
    pub username: Username,
    pub imaps: Option<u16>,
    pub imap: Option<u16>,
    pub pop3s: Option<u16>,
    pub pop3: Option<u16>,
    pub submission_host: String,
    /// Implicit-TLS submission (465).
    pub submissions: Option<u16>,
    /// STARTTLS submission (587).
    pub submission: Option<u16>,
}

/// The port of implicit-TLS submission (RFC 8314 §3.3).
pub const SUBMISSIONS_PORT: u16 = 465;

impl Settings {
    /// The settings for `cfg` and `opts`; warnings for the operator go to `warnings`. An
    /// error (a name that is not a DNS name, no IMAP or POP3 listener) is a usage error.
    pub fn new(cfg: &Config, opts: &Options, warnings: &mut Vec<String>) -> Result<Self, String> {
        let hostname = cfg.hostname.trim_end_matches('.').to_ascii_lowercase();
        check_dns_name("hostname", &hostname)?;
        if !hostname.contains('.') {
            warnings.push(format!(
                "hostname {hostname:?} is not a fully qualified name: clients elsewhere cannot \
                 find it (set `hostname` in the configuration)"
            ));
        }
        let domain = match &opts.email_domain {
            Some(d) => d.trim_end_matches('.').to_ascii_lowercase(),
            None => default_domain(&hostname),
        };
        check_dns_name("email domain", &domain)?;
        let submission_host = match &opts.submission_host {
            Some(h) => h.trim_end_matches('.').to_ascii_lowercase(),
            None => hostname.clone(),
        };
        check_dns_name("submission host", &submission_host)?;
        for (what, list) in [
            ("imap.listen_tls", &cfg.imap.listen_tls),
            ("imap.listen", &cfg.imap.listen),
            ("pop3.listen_tls", &cfg.pop3.listen_tls),
            ("pop3.listen", &cfg.pop3.listen),
        ] {
            if !list.is_empty() && list.iter().all(|a| a.ip().is_loopback()) {
                warnings.push(format!(
                    "{what} listens only on the loopback address: clients on other machines \
                     cannot reach it"
                ));
            }
        }
        let port = |l: &[std::net::SocketAddr]| l.first().map(|a| a.port());
        let (imaps, imap) = (port(&cfg.imap.listen_tls), port(&cfg.imap.listen));
        let (pop3s, pop3) = (port(&cfg.pop3.listen_tls), port(&cfg.pop3.listen));
        if [imaps, imap, pop3s, pop3].iter().all(Option::is_none) {
            return Err("the configuration has no IMAP or POP3 listener".into());
        }
        let ports = if opts.submission_ports.is_empty() {
            vec![587]
        } else {
            opts.submission_ports.clone()
        };
        if ports.contains(&0) {
            return Err("submission port 0".into());
        }
        let submissions = ports.iter().copied().find(|&p| p == SUBMISSIONS_PORT);
        let submission = ports.iter().copied().find(|&p| p != SUBMISSIONS_PORT);
        let username = match opts.username {
            Some(u) => u,
            None => username_for(cfg, warnings),
        };
        let display_name = opts
            .display_name
            .clone()
            .unwrap_or_else(|| format!("{domain} mail"));
        Ok(Settings {
            hostname,
            domain,
            display_name,
            username,
            imaps,
            imap,
            pop3s,
            pop3,
            submission_host,
            submissions,
            submission,
        })
    }
}

/// `mail.example.org` -> `example.org`; a name of two labels or fewer is its own domain.
fn default_domain(hostname: &str) -> String {
    match hostname.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest.to_string(),
        _ => hostname.to_string(),
    }
}

/// A host name as DNS and the files need it: labels of letters, digits and hyphens (RFC
/// 1123), nothing a zone file or XML would have to quote.
fn check_dns_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {name:?} is not a DNS host name"))
    }
}

/// The login form the users file implies (see the module doc).
fn username_for(cfg: &Config, warnings: &mut Vec<String>) -> Username {
    if cfg.auth.backend == "pam" {
        return Username::LocalPart;
    }
    let auth = match Authenticator::from_config(cfg) {
        Ok(a) => a,
        Err(e) => {
            warnings.push(format!(
                "cannot read the users ({e}): clients are told to log in with their whole \
                 address (--username local-part to change that)"
            ));
            return Username::Address;
        }
    };
    let names: Vec<String> = auth.all_users().into_iter().map(|(n, _)| n).collect();
    let with_at = names.iter().filter(|n| n.contains('@')).count();
    if with_at == 0 && !names.is_empty() {
        Username::LocalPart
    } else {
        if with_at != names.len() {
            warnings.push(format!(
                "{} of {} users log in without a domain: clients are told to log in with \
                 their whole address (--username to choose)",
                names.len() - with_at,
                names.len()
            ));
        }
        Username::Address
    }
}

/// The files written, relative to the output directory.
pub const AUTOCONFIG_WELL_KNOWN: &str = ".well-known/autoconfig/mail/config-v1.1.xml";
pub const AUTOCONFIG_HOST: &str = "mail/config-v1.1.xml";
pub const SRV_FILE: &str = "srv-records.zone";

/// The profile's file name: `DOMAIN.mobileconfig`.
pub fn mobileconfig_file(s: &Settings) -> String {
    format!("{}.mobileconfig", s.domain)
}

/// Writes every file under `out` (made if missing) and returns what to print: the files
/// and the SRV records.
pub fn write(s: &Settings, out: &Path) -> Result<String, String> {
    let xml = autoconfig::render(s)?;
    let profile = mobileconfig::render(s)?;
    let zone = srv::render(s);
    let files: [(PathBuf, &[u8]); 4] = [
        (out.join(AUTOCONFIG_WELL_KNOWN), xml.as_bytes()),
        (out.join(AUTOCONFIG_HOST), xml.as_bytes()),
        (out.join(mobileconfig_file(s)), &profile),
        (out.join(SRV_FILE), zone.as_bytes()),
    ];
    let mut said = String::new();
    for (path, data) in files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&path, data).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = writeln!(said, "wrote {}", path.display());
    }
    let _ = write!(said, "\nSRV records for the zone of {}:\n{zone}", s.domain);
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_names() {
        assert_eq!(default_domain("mail.example.org"), "example.org");
        assert_eq!(default_domain("example.org"), "example.org");
        assert_eq!(default_domain("a.b.example.co.uk"), "b.example.co.uk");
        assert_eq!(default_domain("localhost"), "localhost");
        for good in ["mail.example.org", "xn--bcher-kva.example", "a-b.c"] {
            assert!(check_dns_name("x", good).is_ok(), "{good}");
        }
        for bad in [
            "", "a..b", "-a.b", "a-.b", "a b.c", "a<b.c", "a_b.c", "é.org",
        ] {
            assert!(check_dns_name("x", bad).is_err(), "{bad}");
        }
    }
}
