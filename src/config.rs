//! The configuration file (SPEC §3): its TOML shape, defaults, parsing of sizes and
//! durations, validation with line numbers, and printing of the effective config.
//!
//! This module owns the meaning of every key. It reads the file and nothing else: it never
//! opens certificates, password files or Maildirs (callers do, and report their own errors),
//! so `parse_str` stays a pure function that tests can drive with tables.
//!
//! The `[imap]` and `[pop3]` sections, with what each protocol lets a user do (who may use
//! it, what POP3's DELE and RETR do), are `config::protocols`'s; sizes and durations
//! (parsing, printing, serde glue) are `config::units`'.
//!
//! Relative paths for `tls.cert`, `tls.key` and `auth.passwd_file` are resolved against the
//! directory of the config file by [`load`], so a config can travel with its files.
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod protocols;
mod units;
pub use protocols::{DeleMode, ImapConfig, Pop3Config, Pop3UserConfig, check_dele_folder};
use units::{de_duration, de_size, de_size_usize, ser_duration, ser_size, ser_size_usize};
pub use units::{fmt_duration, fmt_size, parse_duration, parse_size};

/// The whole effective configuration, defaults filled in.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name shown in the greeting and logs; defaults to the machine's host name.
    pub hostname: String,
    pub imap: ImapConfig,
    pub pop3: Pop3Config,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub limits: Limits,
}

/// The self-signed certificate of Debian's `ssl-cert` package (made at its install for this
/// host name). The packaged config points at it, as Dovecot's package does, so the server
/// starts as installed; [`Config::warnings`] says so until the operator sets a real one.
pub const SNAKEOIL_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// PEM certificate chain and private key (SPEC §6).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// Where users and passwords come from (SPEC §4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `"pam"` or `"passwd-file"` (checked by validation).
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passwd_file: Option<PathBuf>,
    pub pam_service: String,
    /// Allow LOGIN/AUTHENTICATE without TLS from 127.0.0.0/8 and ::1 only.
    pub plaintext_on_loopback: bool,
}

/// Where mail lives.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Maildir template: `~` = home, `%u` user, `%n` local part, `%d` domain, `%%` a `%`.
    pub maildir: String,
    /// Default per-user quota in bytes; 0 = none. A user's passwd-file
    /// `userdb_quota_rule=*:storage=SIZE` or their entry in `user_quota`
    /// overrides it; the limit is written into the Maildir's Maildir++
    /// `maildirsize` when the user logs in (`store::MailStore::apply_quota`).
    #[serde(serialize_with = "ser_size", deserialize_with = "de_size")]
    pub quota: u64,
    /// Per-user quotas by login name (for PAM users, whose passwd-file
    /// fields there are none of): `alice = "2G"`; 0 = none for that user.
    #[serde(
        serialize_with = "units::ser_size_map",
        deserialize_with = "units::de_size_map",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub user_quota: std::collections::BTreeMap<String, u64>,
    /// Which folder has which special-use attribute (RFC 6154), by the
    /// attribute's name without its backslash: `Sent = "Sent Items"`. An
    /// attribute named here is no longer given by folder name (SPEC §6's
    /// defaults: Sent, Drafts, Trash, Junk, Archive and their usual
    /// other names); one a folder got at CREATE stays its own.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub special_use: std::collections::BTreeMap<String, String>,
    /// Let users set their own limits with SETQUOTA (RFC 9208, advertised
    /// as `QUOTASET`). Off: quotas are the operator's, SETQUOTA is refused.
    /// On: a limit a user set stays theirs; the configured one is written
    /// only into a Maildir that has no `maildirsize` yet.
    pub quota_set: bool,
    /// Shares of the quota, in percent, at whose first crossing the user
    /// gets one warning message in their INBOX; `[]`: no warnings.
    pub quota_warning: Vec<u8>,
    /// `From:` of the warning; unset: `postmaster@` the server's hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_warning_from: Option<String>,
    /// Subject and text of the warning, with `{percent}`, `{used}`,
    /// `{limit}` and `{hostname}` filled in.
    #[serde(skip_serializing_if = "is_default_warning_subject")]
    pub quota_warning_subject: String,
    #[serde(skip_serializing_if = "is_default_warning_text")]
    pub quota_warning_text: String,
    /// System user whose uid serves passwd-file users that have no uid of their own
    /// (SPEC §4, e.g. `vmail`); unset: the daemon's own user, which must not be root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group for those users; unset: `user`'s primary group (or the daemon's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Bounds on untrusted input (SPEC §8).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_connections: usize,
    /// Connections per remote address; an IPv6 /64 counts as one address.
    pub max_connections_per_ip: usize,
    /// Logged-in connections of one user at a time (all their devices and
    /// clients together); more get `NO [LIMIT]` at login.
    pub max_connections_per_user: usize,
    /// Connections not logged in yet, from all addresses together (issue 15): what
    /// strangers can hold. Sized like Dovecot's default of 100 login processes.
    pub max_unauthenticated: usize,
    #[serde(serialize_with = "ser_size_usize", deserialize_with = "de_size_usize")]
    pub max_command_bytes: usize,
    #[serde(serialize_with = "ser_size", deserialize_with = "de_size")]
    pub max_literal_bytes: u64,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Interval of `* OK Still here` during IDLE, so NAT boxes and mobile
    /// networks do not drop a quiet connection (issue 3).
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub idle_keepalive: Duration,
    pub auth_failures_before_delay: u32,
    /// How long a connection may take from the start of its session (after an implicit-TLS
    /// handshake) to a successful login, whatever it sends meanwhile (issue 15: a byte every
    /// few seconds used to hold a slot forever).
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub login_timeout: Duration,
}

/// The RFC 9051 §5.4 minimum for the autologout timer.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    // Only called with the literal defaults below, which all parse.
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: default_hostname(),
            imap: ImapConfig::default(),
            pop3: Pop3Config::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            mail: MailConfig::default(),
            limits: Limits::default(),
        }
    }
}

fn default_hostname() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|h| valid_hostname(h))
        .unwrap_or_else(|| "localhost".to_string())
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            backend: "pam".to_string(),
            passwd_file: None,
            pam_service: "nestbox".to_string(),
            plaintext_on_loopback: true,
        }
    }
}

impl AuthConfig {
    /// Whether a password may be sent on this connection: always over TLS, and without TLS
    /// only from 127.0.0.0/8 or ::1 (also as IPv4-mapped IPv6, which is how a dual-stack
    /// `[::]` listener sees 127.0.0.1) when `plaintext_on_loopback` is on (RFC 9051 §11.1 asks
    /// servers not to accept cleartext passwords otherwise). The one place this is decided:
    /// sessions ask it through `ConnInfo::plaintext_ok`.
    pub fn plaintext_allowed(&self, peer: std::net::IpAddr, tls_active: bool) -> bool {
        tls_active || (self.plaintext_on_loopback && peer.to_canonical().is_loopback())
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            maildir: "~/Maildir".to_string(),
            quota: 0,
            user_quota: std::collections::BTreeMap::new(),
            special_use: std::collections::BTreeMap::new(),
            quota_set: false,
            quota_warning: vec![90, 100],
            quota_warning_from: None,
            quota_warning_subject: crate::store::quota_warning::DEFAULT_SUBJECT.to_string(),
            quota_warning_text: crate::store::quota_warning::DEFAULT_TEXT.to_string(),
            user: None,
            group: None,
        }
    }
}

fn is_default_warning_subject(s: &str) -> bool {
    s == crate::store::quota_warning::DEFAULT_SUBJECT
}

fn is_default_warning_text(s: &str) -> bool {
    s == crate::store::quota_warning::DEFAULT_TEXT
}

impl MailConfig {
    /// The quota warning for `user` (`None`: warnings are off).
    pub fn quota_warnings(
        &self,
        user: &str,
        hostname: &str,
    ) -> Option<crate::store::quota_warning::QuotaWarnings> {
        if self.quota_warning.is_empty() {
            return None;
        }
        let mut steps = self.quota_warning.clone();
        steps.sort_unstable();
        steps.dedup();
        Some(crate::store::quota_warning::QuotaWarnings {
            steps,
            from: self
                .quota_warning_from
                .clone()
                .unwrap_or_else(|| format!("postmaster@{hostname}")),
            to: user.to_string(),
            hostname: hostname.to_string(),
            subject: self.quota_warning_subject.clone(),
            text: self.quota_warning_text.clone(),
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_ip: 50,
            max_connections_per_user: 50,
            max_unauthenticated: 100,
            max_command_bytes: 64 * 1024,
            max_literal_bytes: 50 * 1024 * 1024,
            idle_timeout: MIN_IDLE_TIMEOUT,
            login_timeout: Duration::from_secs(60),
            idle_keepalive: Duration::from_secs(120),
            auth_failures_before_delay: 3,
        }
    }
}

/// Why a config file was refused. `Display` gives `FILE:LINE: message`, which is what
/// `nestbox check-config` prints.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong shape.
    #[error("{}{message}", location(path.as_deref(), *line))]
    Parse {
        path: Option<PathBuf>,
        line: Option<usize>,
        message: String,
    },
    /// Well-formed but unusable (e.g. TLS listener without a certificate).
    #[error("{}{message}", location(path.as_deref(), *line))]
    Invalid {
        path: Option<PathBuf>,
        line: Option<usize>,
        message: String,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, when known (tests; the
    /// message itself names it).
    #[cfg(test)]
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { line, .. } | ConfigError::Invalid { line, .. } => *line,
        }
    }

    fn with_path(mut self, p: &Path) -> Self {
        match &mut self {
            ConfigError::Io { .. } => {}
            ConfigError::Parse { path, .. } | ConfigError::Invalid { path, .. } => {
                *path = Some(p.to_path_buf())
            }
        }
        self
    }
}

fn location(path: Option<&Path>, line: Option<usize>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("{}:{l}: ", p.display()),
        (Some(p), None) => format!("{}: ", p.display()),
        (None, Some(l)) => format!("line {l}: "),
        (None, None) => String::new(),
    }
}

/// Reads, parses and validates a config file. Relative paths inside it are taken relative
/// to the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut cfg = parse_unvalidated(&text).map_err(|e| e.with_path(path))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in [
        &mut cfg.tls.cert,
        &mut cfg.tls.key,
        &mut cfg.auth.passwd_file,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    cfg.validate(&text).map_err(|e| e.with_path(path))?;
    Ok(cfg)
}

/// Parses and validates config text (no file system access). Tests only:
/// the server and `check-config` read a file ([`load`]).
#[cfg(test)]
pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    let cfg = parse_unvalidated(text)?;
    cfg.validate(text)?;
    Ok(cfg)
}

/// Parses the config a worker process gets from the front
/// ([`server::handoff::worker_config`](crate::server::handoff::worker_config)):
/// the front validated it, and it lacks what a worker must not know (TLS
/// files, the users file), which validation would ask for.
pub fn parse_from_front(text: &str) -> Result<Config, ConfigError> {
    parse_unvalidated(text)
}

fn parse_unvalidated(text: &str) -> Result<Config, ConfigError> {
    toml::from_str::<Config>(text).map_err(|e| ConfigError::Parse {
        path: None,
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim_end().to_string(),
    })
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Finds the line of `key` inside `[section]` (or at top level when `section` is empty), so
/// validation errors can point at the offending line. A plain text scan: keys written as
/// dotted keys or inside inline tables are not found, and the error then has no line.
fn find_key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_string();
            continue;
        }
        if current == section {
            if let Some(rest) = line.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_graphic())
}

impl Config {
    /// Checks what the types cannot: combinations of keys, and values the server could not
    /// run with. `text` is the source, used only to attach line numbers.
    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let err = |section: &str, key: &str, message: String| ConfigError::Invalid {
            path: None,
            line: find_key_line(text, section, key).or_else(|| find_section_line(text, section)),
            message,
        };
        if !valid_hostname(&self.hostname) {
            // It goes into the greeting line: no spaces or control characters.
            return Err(err(
                "",
                "hostname",
                "hostname must be printable ASCII without spaces".into(),
            ));
        }

        // TLS: half a key pair is always a mistake.
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => {
                return Err(err(
                    "tls",
                    "cert",
                    "tls.cert is set but tls.key is missing".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "tls",
                    "key",
                    "tls.key is set but tls.cert is missing".into(),
                ));
            }
            _ => {}
        }
        for key in self.mail.special_use.keys() {
            if crate::session::names::known_special_use(&format!("\\{key}")).is_none() {
                return Err(err(
                    "mail.special_use",
                    key,
                    format!(
                        "mail.special_use.{key}: not a special-use attribute (All, Archive, Drafts, Flagged, Junk, Sent, Trash)"
                    ),
                ));
            }
        }
        if self.mail.quota_warning.contains(&0) {
            return Err(err(
                "mail",
                "quota_warning",
                "mail.quota_warning: shares are percentages from 1 up".into(),
            ));
        }
        for (key, v) in [
            (
                "quota_warning_subject",
                Some(&self.mail.quota_warning_subject),
            ),
            ("quota_warning_from", self.mail.quota_warning_from.as_ref()),
        ] {
            if v.is_some_and(|v| v.contains(['\r', '\n'])) {
                return Err(err("mail", key, format!("mail.{key} must be one line")));
            }
        }
        let have_tls = self.tls.cert.is_some();
        for (section, listen, listen_tls) in [
            ("imap", &self.imap.listen, &self.imap.listen_tls),
            ("pop3", &self.pop3.listen, &self.pop3.listen_tls),
        ] {
            if !have_tls && !listen_tls.is_empty() {
                return Err(err(
                    section,
                    "listen_tls",
                    format!(
                        "{section}.listen_tls needs [tls] cert and key (or set {section}.listen_tls = [] to disable implicit TLS)"
                    ),
                ));
            }
            // Without a certificate there is no STARTTLS, and plaintext login is refused
            // from anywhere but loopback: a public cleartext listener would let nobody in.
            if !have_tls {
                if let Some(a) = listen.iter().find(|a| !a.ip().is_loopback()) {
                    return Err(err(
                        section,
                        "listen",
                        format!(
                            "{section}.listen has {a} but [tls] cert and key are not set: clients there could never log in (no STARTTLS); set [tls] or listen on 127.0.0.1/[::1] only"
                        ),
                    ));
                }
            }
        }
        if !have_tls && !self.auth.plaintext_on_loopback {
            return Err(err(
                "auth",
                "plaintext_on_loopback",
                "without [tls] cert and key and with auth.plaintext_on_loopback = false, no client could ever log in".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (section, key, list) in [
            ("imap", "listen", &self.imap.listen),
            ("imap", "listen_tls", &self.imap.listen_tls),
            ("pop3", "listen", &self.pop3.listen),
            ("pop3", "listen_tls", &self.pop3.listen_tls),
        ] {
            for a in list {
                if !seen.insert(*a) {
                    return Err(err(section, key, format!("address {a} is listed twice")));
                }
            }
        }
        if [
            &self.imap.listen,
            &self.imap.listen_tls,
            &self.pop3.listen,
            &self.pop3.listen_tls,
        ]
        .iter()
        .all(|l| l.is_empty())
        {
            return Err(err(
                "imap",
                "listen",
                "no listener is configured (imap.listen, imap.listen_tls, pop3.listen, pop3.listen_tls are all empty)".into(),
            ));
        }
        if let Err(p) = protocols::validate(&self.imap, &self.pop3) {
            return Err(ConfigError::Invalid {
                path: None,
                line: p.line(text),
                message: p.message,
            });
        }

        match self.auth.backend.as_str() {
            "pam" => {
                if self.auth.pam_service.is_empty() {
                    return Err(err(
                        "auth",
                        "pam_service",
                        "auth.pam_service must not be empty".into(),
                    ));
                }
            }
            "passwd-file" => {
                if self.auth.passwd_file.is_none() {
                    return Err(err(
                        "auth",
                        "backend",
                        "auth.backend = \"passwd-file\" needs auth.passwd_file".into(),
                    ));
                }
            }
            other => {
                return Err(err(
                    "auth",
                    "backend",
                    format!("unknown auth.backend {other:?}: expected \"pam\" or \"passwd-file\""),
                ));
            }
        }

        if self.mail.maildir.is_empty() {
            return Err(err(
                "mail",
                "maildir",
                "mail.maildir must not be empty".into(),
            ));
        }
        if let Some(bad) = bad_template_escape(&self.mail.maildir) {
            return Err(err(
                "mail",
                "maildir",
                format!("mail.maildir: unknown escape %{bad} (use %u, %n, %d or %%)"),
            ));
        }

        let l = &self.limits;
        if l.max_connections == 0 {
            return Err(err(
                "limits",
                "max_connections",
                "limits.max_connections must be at least 1".into(),
            ));
        }
        if l.max_connections_per_ip == 0 {
            return Err(err(
                "limits",
                "max_connections_per_ip",
                "limits.max_connections_per_ip must be at least 1".into(),
            ));
        }
        if l.max_connections_per_user == 0 {
            return Err(err(
                "limits",
                "max_connections_per_user",
                "limits.max_connections_per_user must be at least 1".into(),
            ));
        }
        if l.max_unauthenticated == 0 {
            return Err(err(
                "limits",
                "max_unauthenticated",
                "limits.max_unauthenticated must be at least 1".into(),
            ));
        }
        // RFC 9051 §4 asks servers to take command lines of at least 8000 octets.
        if l.max_command_bytes < 8000 {
            return Err(err(
                "limits",
                "max_command_bytes",
                "limits.max_command_bytes must be at least 8000 (RFC 9051 §4)".into(),
            ));
        }
        if l.max_literal_bytes == 0 {
            return Err(err(
                "limits",
                "max_literal_bytes",
                "limits.max_literal_bytes must be more than 0".into(),
            ));
        }
        if l.idle_timeout < Duration::from_secs(60) {
            return Err(err(
                "limits",
                "idle_timeout",
                "limits.idle_timeout must be at least 1m (RFC 9051 §5.4 asks for 30m)".into(),
            ));
        }
        if l.login_timeout < Duration::from_secs(1) || l.login_timeout > Duration::from_secs(600) {
            return Err(err(
                "limits",
                "login_timeout",
                "limits.login_timeout must be between 1s and 10m (a client logs in within seconds)"
                    .into(),
            ));
        }
        if l.idle_keepalive < Duration::from_secs(10) {
            return Err(err(
                "limits",
                "idle_keepalive",
                "limits.idle_keepalive must be at least 10s".into(),
            ));
        }
        if l.idle_keepalive >= l.idle_timeout {
            // Two keys clash: blame the one the file sets. With only idle_timeout written,
            // pointing at idle_keepalive (and, as it has no line, at `[limits]`) named a key
            // the user never wrote.
            let mut keepalive = fmt_duration(l.idle_keepalive);
            if l.idle_keepalive == Limits::default().idle_keepalive {
                keepalive.push_str(", the default");
            }
            let timeout = fmt_duration(l.idle_timeout);
            return Err(
                if find_key_line(text, "limits", "idle_keepalive").is_some() {
                    err(
                        "limits",
                        "idle_keepalive",
                        format!(
                            "limits.idle_keepalive = {keepalive} must be shorter than limits.idle_timeout ({timeout})"
                        ),
                    )
                } else {
                    err(
                        "limits",
                        "idle_timeout",
                        format!(
                            "limits.idle_timeout = {timeout} must be longer than limits.idle_keepalive ({keepalive}); raise it or set a shorter idle_keepalive"
                        ),
                    )
                },
            );
        }
        Ok(())
    }

    /// Advice that does not stop the server; `serve` logs these and `check-config` prints them.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.limits.idle_timeout < MIN_IDLE_TIMEOUT {
            w.push(format!(
                "limits.idle_timeout = {} is below the 30m minimum of RFC 9051 §5.4; IDLE clients may be cut off",
                fmt_duration(self.limits.idle_timeout)
            ));
        }
        if self.limits.max_connections_per_ip > self.limits.max_connections {
            w.push("limits.max_connections_per_ip is larger than limits.max_connections".into());
        }
        if self.limits.max_unauthenticated > self.limits.max_connections {
            w.push("limits.max_unauthenticated is larger than limits.max_connections".into());
        }
        if self.auth.backend == "pam" && self.auth.passwd_file.is_some() {
            w.push("auth.passwd_file is ignored with auth.backend = \"pam\"".into());
        }
        if self.limits.auth_failures_before_delay == 0 {
            w.push("limits.auth_failures_before_delay = 0: every failed login is delayed".into());
        }
        if self.tls.cert.as_deref() == Some(Path::new(SNAKEOIL_CERT)) {
            w.push(format!(
                "tls.cert is {SNAKEOIL_CERT}, the self-signed snakeoil certificate of the \
                 ssl-cert package: clients will warn about it or refuse it; set [tls] cert and \
                 key to a real certificate (e.g. Let's Encrypt's fullchain.pem and privkey.pem), \
                 then `systemctl reload nestbox`"
            ));
        }
        w
    }

    /// The effective config as TOML, for `check-config`.
    pub fn to_toml(&self) -> String {
        // Serializing plain data into a string cannot fail for these types; fall back to the
        // Debug form rather than panic if a future field breaks that.
        toml::to_string(self)
            .unwrap_or_else(|e| format!("# cannot print as TOML: {e}\n{self:#?}\n"))
    }

    /// [`expand_maildir`] of `mail.maildir`. Tests only: authentication calls
    /// [`expand_maildir`] with the template it keeps.
    #[cfg(test)]
    pub fn maildir_for(&self, user: &str, home: &Path) -> PathBuf {
        expand_maildir(&self.mail.maildir, user, home)
    }
}

fn find_section_line(text: &str, section: &str) -> Option<usize> {
    if section.is_empty() {
        return None;
    }
    text.lines()
        .position(|l| {
            l.trim()
                .strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .is_some_and(|s| s.trim() == section)
        })
        .map(|i| i + 1)
}

fn bad_template_escape(t: &str) -> Option<char> {
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('u' | 'n' | 'd' | '%') => {}
                Some(other) => return Some(other),
                None => return Some(' '),
            }
        }
    }
    None
}

/// Expands a `mail.maildir` template for one user: a leading `~` is `home`, `%u` the full
/// user name, `%n` its local part (before `@`), `%d` its domain (empty without `@`), `%%` a
/// `%`. The user name has been authenticated, but it is still kept from climbing out of the
/// template: `/` and `..` in it are replaced.
pub fn expand_maildir(template: &str, user: &str, home: &Path) -> PathBuf {
    let safe = |s: &str| -> String {
        if s == ".." || s == "." {
            "_".repeat(s.len())
        } else {
            s.replace(['/', '\0'], "_")
        }
    };
    let (local, domain) = match user.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (user, ""),
    };
    let mut out = String::new();
    let rest = if let Some(r) = template.strip_prefix('~') {
        out.push_str(&home.to_string_lossy());
        r
    } else {
        template
    };
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(&safe(user)),
            Some('n') => out.push_str(&safe(local)),
            Some('d') => out.push_str(&safe(domain)),
            Some('%') => out.push('%'),
            // Validation refuses other escapes; keep them literally if one gets here.
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    PathBuf::from(out)
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS: &str = "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n";

    #[test]
    fn defaults_match_spec() {
        let c = parse_str(TLS).unwrap();
        assert_eq!(
            c.imap.listen,
            vec!["[::]:143".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            c.imap.listen_tls,
            vec!["[::]:993".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            c.pop3.listen,
            vec!["[::]:110".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            c.pop3.listen_tls,
            vec!["[::]:995".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.auth.backend, "pam");
        assert_eq!(c.auth.pam_service, "nestbox");
        assert!(c.auth.plaintext_on_loopback);
        assert_eq!(c.mail.maildir, "~/Maildir");
        assert_eq!(c.mail.quota, 0);
        assert_eq!(c.limits.max_connections, 10_000);
        assert_eq!(c.limits.max_connections_per_ip, 50);
        assert_eq!(c.limits.max_unauthenticated, 100);
        assert_eq!(c.limits.max_command_bytes, 65_536);
        assert_eq!(c.limits.max_literal_bytes, 50 << 20);
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.limits.auth_failures_before_delay, 3);
        assert!(!c.hostname.is_empty());
        // A config that sets nothing draws no warning.
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn every_key() {
        let text = r#"
hostname = "mail.example.org"
[imap]
listen = ["127.0.0.1:143", "[::1]:143"]
listen_tls = ["0.0.0.0:993"]
[pop3]
listen = []
listen_tls = ["0.0.0.0:995"]
[tls]
cert = "/etc/c.pem"
key  = "/etc/k.pem"
[auth]
backend = "passwd-file"
passwd_file = "/etc/nestbox/users"
pam_service = "imap"
plaintext_on_loopback = false
[mail]
maildir = "/var/vmail/%d/%n"
quota = "100M"
[limits]
max_connections = 20
max_connections_per_ip = 5
max_unauthenticated = 10
max_command_bytes = "128K"
max_literal_bytes = "1G"
idle_timeout = "31m"
login_timeout = "90s"
auth_failures_before_delay = 7
"#;
        let c = parse_str(text).unwrap();
        assert_eq!(c.hostname, "mail.example.org");
        assert_eq!(c.imap.listen.len(), 2);
        assert!(c.pop3.listen.is_empty());
        assert_eq!(c.tls.key.as_deref(), Some(Path::new("/etc/k.pem")));
        assert_eq!(c.auth.backend, "passwd-file");
        assert_eq!(
            c.auth.passwd_file.as_deref(),
            Some(Path::new("/etc/nestbox/users"))
        );
        assert_eq!(c.auth.pam_service, "imap");
        assert!(!c.auth.plaintext_on_loopback);
        assert_eq!(c.mail.quota, 100 << 20);
        assert_eq!(c.limits.max_connections, 20);
        assert_eq!(c.limits.max_connections_per_ip, 5);
        assert_eq!(c.limits.max_unauthenticated, 10);
        assert_eq!(c.limits.max_command_bytes, 128 << 10);
        assert_eq!(c.limits.max_literal_bytes, 1 << 30);
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(31 * 60));
        assert_eq!(c.limits.auth_failures_before_delay, 7);
        assert_eq!(c.limits.login_timeout, Duration::from_secs(90));
        // The printed config reads back to the same values.
        let again = parse_str(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
        assert_eq!(again.limits.idle_timeout, c.limits.idle_timeout);
    }

    #[test]
    fn errors_carry_line_numbers() {
        // (text, expected line, fragment of the message)
        let table: &[(&str, Option<usize>, &str)] = &[
            (
                "hostname = \"x\"\n[imap]\nlisten = []\nlisen_tls = []\n",
                Some(4),
                "unknown field",
            ),
            ("[limits]\n\nmax_command_bytes = \"12Q\"\n", Some(3), "unit"),
            (
                "[limits]\nidle_timeout = \"5 fortnights\"\n",
                Some(2),
                "duration",
            ),
            ("[limits]\nidle_timeout = \"30s\"\n", Some(2), "at least 1m"),
            ("[mail]\nquota = -1\n", Some(2), "negative"),
            (
                "[imap]\nlisten = [\"not an address\"]\n",
                Some(2),
                "address",
            ),
            (
                "[auth]\nbackend = \"ldap\"\n",
                Some(2),
                "unknown auth.backend",
            ),
            (
                "[auth]\nbackend = \"passwd-file\"\n",
                Some(2),
                "passwd_file",
            ),
            ("[bogus]\nx = 1\n", Some(1), "unknown field"),
            ("hostname = \"a b\"\n", Some(1), "hostname"),
            ("[limits]\nmax_command_bytes = 100\n", Some(2), "8000"),
            ("[limits]\nmax_connections = 0\n", Some(2), "at least 1"),
            (
                "[limits]\nmax_unauthenticated = 0\n",
                Some(2),
                "limits.max_unauthenticated must be at least 1",
            ),
            (
                "[limits]\nlogin_timeout = \"0s\"\n",
                Some(2),
                "login_timeout",
            ),
            (
                "[limits]\nlogin_timeout = \"1h\"\n",
                Some(2),
                "between 1s and 10m",
            ),
            // idle_timeout below the default idle_keepalive (2m): the key written is blamed.
            (
                "[limits]\nmax_connections = 5\nidle_timeout = \"1m\"\n",
                Some(3),
                "limits.idle_timeout = 1m must be longer than limits.idle_keepalive (2m",
            ),
            (
                "[limits]\nidle_timeout = \"2m\"\n\nidle_keepalive = \"3m\"\n",
                Some(4),
                "limits.idle_keepalive = 3m must be shorter",
            ),
            (
                "[limits]\nidle_keepalive = \"45m\"\n",
                Some(2),
                "limits.idle_keepalive = 45m must be shorter than limits.idle_timeout (30m)",
            ),
            (
                "[limits]\nidle_keepalive = \"5s\"\n",
                Some(2),
                "at least 10s",
            ),
            ("[mail]\nmaildir = \"/m/%x\"\n", Some(2), "%x"),
            ("[imap\n", Some(1), ""),
        ];
        for (text, line, frag) in table {
            let full = format!("{text}{TLS}");
            let e = parse_str(&full).expect_err(text);
            assert_eq!(e.line(), *line, "{text:?}: {e}");
            assert!(e.to_string().contains(frag), "{text:?}: {e}");
        }
    }

    #[test]
    fn tls_rules() {
        // No TLS at all: the defaults listen publicly, so this must be refused...
        let e = parse_str("").unwrap_err();
        assert!(e.to_string().contains("listen_tls"), "{e}");
        // ...but a loopback-only cleartext setup is fine.
        let local = "[imap]\nlisten=[\"127.0.0.1:1143\"]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n";
        parse_str(local).unwrap();
        let public =
            "[imap]\nlisten=[\"0.0.0.0:143\"]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n";
        let e = parse_str(public).unwrap_err();
        assert_eq!(e.line(), Some(2));
        let dup = format!("{TLS}[imap]\nlisten=[\"127.0.0.1:1\"]\nlisten_tls=[\"127.0.0.1:1\"]\n");
        assert!(parse_str(&dup).unwrap_err().to_string().contains("twice"));
        let none =
            format!("{TLS}[imap]\nlisten=[]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n");
        assert!(parse_str(&none).is_err());
        let nobody = format!("{local}[auth]\nplaintext_on_loopback = false\n");
        assert_eq!(parse_str(&nobody).unwrap_err().line(), Some(8));
        let half = parse_str("[tls]\ncert = \"/c\"\n").unwrap_err();
        assert_eq!(half.line(), Some(2));
        assert!(half.to_string().contains("tls.key"), "{half}");
    }

    #[test]
    fn plaintext_allowed_table() {
        let on = AuthConfig::default();
        let off = AuthConfig {
            plaintext_on_loopback: false,
            ..AuthConfig::default()
        };
        // (peer, tls, allowed with the default, allowed with it off)
        let table = [
            ("127.0.0.1", false, true, false),
            ("127.8.9.10", false, true, false),
            ("::1", false, true, false),
            ("::ffff:127.0.0.1", false, true, false),
            ("192.0.2.1", false, false, false),
            ("::ffff:192.0.2.1", false, false, false),
            ("2001:db8::1", false, false, false),
            ("192.0.2.1", true, true, true),
            ("127.0.0.1", true, true, true),
        ];
        for (ip, tls, want_on, want_off) in table {
            let ip = ip.parse().unwrap();
            assert_eq!(on.plaintext_allowed(ip, tls), want_on, "{ip} tls={tls}");
            assert_eq!(
                off.plaintext_allowed(ip, tls),
                want_off,
                "{ip} tls={tls} off"
            );
        }
    }

    #[test]
    fn warnings() {
        const NO_POP3: &str = "[pop3]\nlisten = []\nlisten_tls = []\n";
        let c = parse_str(&format!("{TLS}{NO_POP3}[limits]\nidle_timeout = \"5m\"\n")).unwrap();
        assert!(c.warnings()[0].contains("RFC 9051"));
        // The packaged config's certificate (Debian's snakeoil) is named, with the way out.
        let snakeoil = format!(
            "[tls]\ncert = \"{SNAKEOIL_CERT}\"\nkey = \"/etc/ssl/private/ssl-cert-snakeoil.key\"\n{NO_POP3}"
        );
        let w = parse_str(&snakeoil).unwrap().warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("snakeoil") && w[0].contains("[tls] cert"),
            "{w:?}"
        );

        // Settings that are accepted but not acted on yet each say so, once.
        let c = parse_str(&format!("{TLS}{NO_POP3}")).unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        let c = parse_str(&format!("{TLS}{NO_POP3}[mail]\nquota = \"0\"\n")).unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        // A quota is enforced (written into maildirsize at login): nothing to warn of.
        let c = parse_str(&format!(
            "{TLS}{NO_POP3}[mail]\nquota = \"100M\"\n[mail.user_quota]\nbob = \"2G\"\ncarl = 0\n"
        ))
        .unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        assert_eq!(c.mail.user_quota.get("bob"), Some(&(2 << 30)));
        assert_eq!(c.mail.user_quota.get("carl"), Some(&0));
        assert!(c.to_toml().contains("bob = \"2G\""), "{}", c.to_toml());
        assert!(
            parse_str(&format!(
                "{TLS}{NO_POP3}[mail.user_quota]\nbob = \"lots\"\n"
            ))
            .is_err()
        );
        // Special-use folders by attribute name; an unknown attribute is refused.
        let c = parse_str(&format!(
            "{TLS}{NO_POP3}[mail.special_use]\nSent = \"Sent Items\"\nall = \"All Mail\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.mail.special_use.get("Sent").map(String::as_str),
            Some("Sent Items")
        );
        let e = parse_str(&format!(
            "{TLS}{NO_POP3}[mail.special_use]\nBogus = \"x\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a special-use attribute"), "{e}");
        // POP3 listeners are served: no warning about them.
        let c = parse_str(&format!(
            "{TLS}[pop3]\nlisten = []\nlisten_tls = [\"[::]:995\"]\n"
        ))
        .unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn durations_as_integers() {
        // Integer in TOML means seconds.
        let c = parse_str(&format!("{TLS}[limits]\nidle_timeout = 3600\n")).unwrap();
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(3600));
    }

    #[test]
    fn maildir_expansion() {
        let home = Path::new("/home/ann");
        let table: &[(&str, &str, &str)] = &[
            ("~/Maildir", "ann", "/home/ann/Maildir"),
            (
                "/var/vmail/%d/%n",
                "ann@example.org",
                "/var/vmail/example.org/ann",
            ),
            (
                "/var/vmail/%u",
                "ann@example.org",
                "/var/vmail/ann@example.org",
            ),
            ("/m/%d/%n", "ann", "/m//ann"),
            ("/m/100%%/%n", "ann", "/m/100%/ann"),
            ("/m/%u", "../etc", "/m/.._etc"),
            ("/m/%u/x", "..", "/m/__/x"),
            ("~", "ann", "/home/ann"),
        ];
        for (t, u, want) in table {
            assert_eq!(expand_maildir(t, u, home), PathBuf::from(want), "{t} {u}");
        }
        let c = parse_str(TLS).unwrap();
        assert_eq!(
            c.maildir_for("bob", Path::new("/h/bob")),
            PathBuf::from("/h/bob/Maildir")
        );
    }

    #[test]
    fn every_key_is_documented() {
        let page = include_str!("../man/nestbox.toml.5");
        let mut c = parse_str(TLS).unwrap();
        c.auth.passwd_file = Some("/x".into());
        let mut sections = 0;
        for line in c.to_toml().lines() {
            if line.starts_with('[') {
                sections += 1;
            } else if let Some((key, _)) = line.split_once(" = ") {
                assert!(
                    page.contains(&format!("\n.B {key}\n")),
                    "{key} missing from nestbox.toml.5"
                );
            }
        }
        assert_eq!(sections, 6);
    }

    #[test]
    fn quota_warning_settings() {
        let c = parse_str(TLS).unwrap();
        let w = c.mail.quota_warnings("ann", "mx.example").unwrap();
        assert_eq!(w.steps, [90, 100]);
        assert_eq!(w.from, "postmaster@mx.example");
        let c = parse_str(&format!(
            "{TLS}\n[mail]\nquota_warning = [100, 80, 80]\nquota_warning_from = \"Mail <m@x>\"\n"
        ))
        .unwrap();
        let w = c.mail.quota_warnings("ann", "mx.example").unwrap();
        assert_eq!(
            (w.steps.as_slice(), w.from.as_str()),
            ([80, 100].as_slice(), "Mail <m@x>")
        );
        let c = parse_str(&format!("{TLS}\n[mail]\nquota_warning = []\n")).unwrap();
        assert!(c.mail.quota_warnings("ann", "mx").is_none());
        for bad in [
            "quota_warning = [0, 90]",
            "quota_warning = [300]",
            "quota_warning_subject = \"a\\nb\"",
        ] {
            assert!(
                parse_str(&format!("{TLS}\n[mail]\n{bad}\n")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn load_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nestbox.toml");
        std::fs::write(
            &p,
            "[tls]\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\n[auth]\nbackend = \"passwd-file\"\npasswd_file = \"users\"\n",
        )
        .unwrap();
        let c = load(&p).unwrap();
        assert_eq!(c.tls.cert, Some(dir.path().join("c.pem")));
        assert_eq!(c.tls.key.as_deref(), Some(Path::new("/abs/k.pem")));
        assert_eq!(c.auth.passwd_file, Some(dir.path().join("users")));
        std::fs::write(&p, "[limits]\nbogus = 1\n").unwrap();
        let e = load(&p).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("{}:2: ", p.display())),
            "{e}"
        );
        assert!(matches!(
            load(&dir.path().join("missing")),
            Err(ConfigError::Io { .. })
        ));
    }
}
