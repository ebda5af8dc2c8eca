//! The command line of `nestbox`: every command, argument and help text, as clap types.
//!
//! This file is the one description of the interface. `main.rs` dispatches on it, and
//! `build.rs` compiles it too (`#[path]`) to write the man pages with `clap_mangen` (nestbox(1)
//! and one per visible subcommand), so the pages cannot drift from `--help`. It must therefore stay self-contained: only `std` and
//! `clap`, no `crate::` or `nestbox::` paths (the constants below that the library also
//! knows are checked equal by a test in `main.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// `nestbox demo`'s directory when `--dir` is left out (`nestbox::demo::DEFAULT_DIR`).
pub const DEMO_DIR: &str = "nestbox-demo";

/// The hidden command `quota` runs its per-user helpers with
/// (`nestbox::admin::quota::HELPER_COMMAND`).
pub const QUOTA_HELPER: &str = "quota-helper";

/// The hidden command `index` runs its helper with (`nestbox::admin::index::HELPER_COMMAND`).
pub const INDEX_HELPER: &str = "index-helper";

/// Where `serve` and `check-config` look without `-c`.
pub const DEFAULT_CONFIG: &str = "/etc/nestbox/nestbox.toml";

/// Maildir-backed IMAP4rev2/IMAP4rev1 and POP3 server for self-hosters.
#[derive(Parser, Debug)]
#[command(name = "nestbox", version, about, long_about = LONG_ABOUT, disable_help_subcommand = true)]
#[command(after_long_help = more_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `nestbox --help`'s description, and nestbox(1)'s.
pub const LONG_ABOUT: &str = "Maildir-backed IMAP4rev2/IMAP4rev1 and POP3 server for \
    self-hosters.\n\n\
    nestbox serves the Maildirs that an MTA such as Postfix, Exim or OpenSMTPD delivers into, \
    over IMAP (ports 143 with STARTTLS and 993 with TLS) and POP3 (ports 110 with STLS and 995 \
    with TLS; the maildrop is INBOX). The on-disk layout is Dovecot's Maildir++ \
    (maildir:~/Maildir), including dovecot-uidlist, so a Maildir moves between Dovecot and \
    nestbox without clients downloading anything again.";

/// The sections after the commands in `nestbox --help` (titled "Title:") and in nestbox(1)
/// (one `.SH TITLE` each, written by build.rs); paragraphs are separated by blank lines.
pub const MORE_HELP: &[(&str, &str)] = &[
    (
        "Environment",
        "NESTBOX_LOG: the log filter, e.g. info, debug or nestbox::auth=debug,info; it falls \
        back to RUST_LOG, then to info (warn for the operator commands quota, index, \
        client-config, who and import-dovecot, whose output is their answer). Logs go to \
        standard error, with colour only when it is a terminal. Messages of the TLS library \
        (rustls) are held to errors unless the filter names rustls (e.g. info,rustls=debug): \
        its warnings are about what clients send.\n\n\
        JOURNAL_STREAM: set by systemd when standard error is the journal; each line then \
        starts with its syslog priority (<3> error, <4> warning, <6> info, <7> debug) and \
        carries no timestamp of its own.\n\n\
        NOTIFY_SOCKET, WATCHDOG_USEC, LISTEN_FDS: set by systemd for Type=notify (READY, \
        STOPPING, WATCHDOG) and socket activation (nestbox.socket).\n\n\
        NESTBOX_FORCE_POLL=1: watch Maildirs by polling instead of inotify (for network file \
        systems, where inotify does not see other hosts' changes).\n\n\
        NO_COLOR: when set and not empty, no colour codes even on a terminal.",
    ),
    (
        "Logging",
        "Failed logins are logged as \"auth failed: user=NAME rip=ADDRESS mech=MECHANISM\" \
        (then \" session=ID\" when a trusted proxy named one), which the fail2ban filter in \
        /usr/share/doc/nestbox/contrib/fail2ban/ matches. Behind a trusted mail proxy \
        (nestbox.toml(5), [proxy]) ADDRESS is the client's, never the proxy's. Repeated \
        failures from one address (one /64 for IPv6) are answered ever more slowly.",
    ),
    (
        "Exit status",
        "0: success. 1: a runtime error (for example a port already in use, for quota a \
        user's Maildir that could not be read or written, for index check a folder with a \
        problem). 2: a usage or configuration error (for quota and index also an unknown \
        user). Each command's page says more.",
    ),
    (
        "Files",
        "/etc/nestbox/nestbox.toml: the configuration; see nestbox.toml(5).\n\n\
        /etc/nestbox/users: the passwd-file, when auth.backend = \"passwd-file\".\n\n\
        /run/nestbox/control: the root-only socket nestbox who asks (server.control_socket).",
    ),
    (
        "See also",
        "nestbox.toml(5), the page of each command (nestbox-serve(1), nestbox-quota-show(1), \
        ...), doveadm-pw(1), fail2ban(1).",
    ),
];

/// [`MORE_HELP`] as the end of `nestbox --help`.
fn more_help() -> String {
    MORE_HELP
        .iter()
        .map(|(title, text)| format!("{title}:\n{text}"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server in the foreground (systemd Type=notify; SIGHUP reloads the
    /// configuration for new connections, SIGTERM drains).
    Serve {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Create (or reuse) a self-contained demo setup in DIR and serve it on 127.0.0.1.
    Demo {
        /// Directory for the demo's config, certificate, users and Maildir.
        #[arg(long, value_name = "DIR", default_value = DEMO_DIR)]
        dir: PathBuf,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Read a password (from the terminal without echo, or one line of stdin) and print a
    /// passwd-file hash for it, like `doveadm pw`.
    Passwd {
        /// Hash scheme.
        #[arg(long, value_enum, default_value_t = PasswdScheme::Argon2id)]
        scheme: PasswdScheme,
    },
    /// Show or recalculate users' Maildir++ quota (`maildirsize`).
    ///
    /// For STORAGE (bytes) and MESSAGE (messages): use, limit and share of the limit, as a
    /// table or as JSON. Each user's Maildir is read and written as that user (when run as
    /// root, by a helper process switched to the user's uid, gid and groups; never as root).
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Read a Dovecot 2.3 or 2.4 configuration and write the equivalent nestbox.toml.
    ///
    /// Follows `!include` and `!include_try`, and translates where the mail is
    /// (`mail_location`, or `mail_driver` and `mail_path`), the users (a `pam` or
    /// `passwd-file` passdb, a static userdb's uid, gid and home, `mail_uid`/`mail_gid`), TLS
    /// (`ssl`, `ssl_cert`/`ssl_key` or `ssl_server_cert_file`/`ssl_server_key_file`), the
    /// protocols and listeners, `pop3_uidl_format` (so POP3 clients see the same UIDLs), a
    /// simple storage quota and the inbox's special-use folders. The same Maildirs are then
    /// served with the same UIDs. Everything it could not translate is listed on standard
    /// error and as comments at the top of the output; read that list before switching.
    #[command(after_long_help = IMPORT_EXIT)]
    ImportDovecot {
        /// Dovecot's configuration directory (its dovecot.conf is read) or file.
        #[arg(value_name = "PATH", default_value = "/etc/dovecot")]
        path: PathBuf,
        /// Write the configuration to FILE instead of standard output (never replacing an
        /// existing file without --force).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Check or rebuild a user's per-folder index and cache (`nestbox.index`,
    /// `nestbox.cache`) against the Maildir, never changing a UID.
    ///
    /// The `dovecot-uidlist` of each folder is the truth for UIDs; the index and the cache
    /// are caches the server rebuilds from the Maildir whenever they are lost. The user's
    /// Maildir is read and written as that user (when run as root, by a helper process
    /// switched to the user's uid, gid and groups; never as root). On a terminal a progress
    /// bar is drawn on standard error; on a pipe nothing is.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Write the files that let mail clients set themselves up: Thunderbird's autoconfig
    /// XML, an Apple .mobileconfig profile and RFC 6186 SRV records.
    ///
    /// Everything comes from the configuration (`hostname`; the ports of `imap.listen_tls`,
    /// `imap.listen` (STARTTLS), `pop3.listen_tls`, `pop3.listen` (STLS), where `[]` turns
    /// a service off; the auth backend, which decides the login name) and from the options
    /// for what the configuration does not know (the mail domain, the MTA's submission host
    /// and ports). Written under DIR:
    ///
    ///   .well-known/autoconfig/mail/config-v1.1.xml  (Thunderbird, K-9 Mail, Evolution)
    ///
    ///   mail/config-v1.1.xml  (the same, for the autoconfig.DOMAIN host)
    ///
    ///   DOMAIN.mobileconfig  (iOS, iPadOS and macOS Mail; unsigned; asks for the address,
    ///   user name and password when installed)
    ///
    ///   srv-records.zone  (_imaps, _imap, _pop3s, _pop3, _submissions, _submission; a
    ///   service turned off gets RFC 6186's "not available" record `0 0 0 .`)
    ///
    /// The SRV records are also printed.
    #[command(after_long_help = CLIENT_CONFIG_SERVING)]
    ClientConfig {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The domain of the users' addresses (default: `hostname` without its first
        /// label when it has more than two: mail.example.org gives example.org).
        #[arg(long, value_name = "DOMAIN")]
        email_domain: Option<String>,
        /// The MTA's submission server (default: `hostname`).
        #[arg(long, value_name = "HOST")]
        submission_host: Option<String>,
        /// A port of the MTA's submission service: 465 is implicit TLS (RFC 8314
        /// "submissions"), any other STARTTLS. May be given twice (465 and 587).
        #[arg(long, value_name = "PORT", default_values_t = [587u16])]
        submission_port: Vec<u16>,
        /// The account's name shown in clients (default: "DOMAIN mail").
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
        /// How users log in (default: from the auth backend: PAM users with the local part
        /// of their address; passwd-file users as the names in the file are written, the
        /// whole address if every name has an `@`).
        #[arg(long, value_enum, value_name = "FORM")]
        username: Option<UsernameForm>,
        /// Directory to write the files into (made if missing).
        #[arg(long, value_name = "DIR", default_value = "client-config")]
        out: PathBuf,
    },
    /// List the sessions logged in to the running server.
    ///
    /// One line per session: user, client address and port, protocol (IMAP or POP3),
    /// whether the connection is TLS, when the user logged in (UTC), the worker process
    /// serving it, and the folder an IMAP session has selected ("-": none). Connections
    /// that have not logged in are not listed. Asked over the server's control socket
    /// (`server.control_socket` in the configuration, /run/nestbox/control by default),
    /// which answers root only.
    #[command(after_long_help = WHO_EXIT)]
    Who {
        /// Print JSON (an array, one object per session) instead of a table.
        #[arg(long)]
        json: bool,
        /// Configuration file (for the control socket's path).
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Internal: a per-user worker process, started by the server itself (never by hand).
    #[command(hide = true)]
    Worker,
    /// Internal: the Maildir work of `quota`, started by it as each user (never by hand).
    #[command(hide = true, name = QUOTA_HELPER)]
    QuotaHelper,
    /// Internal: the Maildir work of `index`, started by it as the user (never by hand).
    #[command(hide = true, name = INDEX_HELPER)]
    IndexHelper,
    // Instead of clap's own help subcommand (`disable_help_subcommand` above): that one takes
    // only command names, so `nestbox help --help` was a usage error (exit 2).
    /// Print this message or the help of the given command.
    Help {
        /// The command to describe (nestbox itself when left out).
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuotaCommand {
    /// Show users' quota from their Maildir's `maildirsize`.
    ///
    /// Read only: nothing is written. A user without a Maildir, or whose Maildir has no
    /// `maildirsize` (no quota), is shown as such.
    #[command(after_long_help = QUOTA_EXIT)]
    Show {
        #[command(flatten)]
        target: QuotaTarget,
        /// Count the folders for the use instead of reading the totals in `maildirsize`
        /// (still nothing is written: `quota recalc` does that).
        #[arg(long)]
        recalc: bool,
    },
    /// Count users' folders and rewrite `maildirsize`, then show the result.
    ///
    /// The limits written are the ones the configuration gives each user, as a login
    /// applies them. With no limit configured, an existing `maildirsize` keeps its own, and
    /// a Maildir without one is left without quota (its use is shown, nothing is written);
    /// so does one when `mail.quota_set` lets users set their own.
    /// A user without a Maildir is shown as such; none is made.
    #[command(after_long_help = QUOTA_EXIT)]
    Recalc {
        #[command(flatten)]
        target: QuotaTarget,
    },
}

/// The end of `who --help`.
pub const WHO_EXIT: &str = "Exit status: 0 when the server answered (also with no sessions); 1 \
    when it could not be reached or refused (not root); 2 for a configuration error.";

/// The end of `quota show --help` and `quota recalc --help`.
pub const QUOTA_EXIT: &str = "Exit status: 0 when every user was shown (users without a Maildir or \
    without quota included); 1 when a user's Maildir could not be read or written (one line \
    on standard error each, the others are still shown); 2 for an unknown user or a \
    configuration error.";

/// The end of `import-dovecot --help`.
pub const IMPORT_EXIT: &str = "Exit status: 0 when the configuration was written (settings it \
    could not translate are listed, and do not change the status); 2 when the Dovecot \
    configuration is missing or cannot be parsed (the message names the file and line), or \
    the output file exists without --force; 1 when the output cannot be written.";

/// Whose quota, from which configuration, printed how: shared by `quota show` and `quota
/// recalc`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["user", "all"])))]
pub struct QuotaTarget {
    /// The user (a login name).
    #[arg(value_name = "USER")]
    pub user: Option<String>,
    /// Every user: each line of the passwd-file; with PAM, the system users with a uid from
    /// UID_MIN to UID_MAX of /etc/login.defs (1000 to 60000 by default) who have a Maildir.
    /// Run as another user than root: only the users whose mail is served as that uid.
    #[arg(long)]
    pub all: bool,
    /// Print JSON (an array, one object per user) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Configuration file.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Compare each folder's index and cache with its files and its uidlist; write nothing.
    ///
    /// Per folder: "consistent", or each problem found: messages in the index whose file is
    /// gone, files with a UID that the index does not list, flags (the file name) or size
    /// the index has wrong, a UID or UIDVALIDITY other than the uidlist's, an index that does
    /// not read (truncated, bad checksum, unknown format), a cache with a bad entry, an index
    /// whose uidlist is gone, and problems of the uidlist itself (unreadable, a UID or a file
    /// twice, UIDs out of order). Files delivered since the folder was last opened (not
    /// numbered yet) are counted, not a problem; so is a folder without `nestbox.index` (one
    /// only Dovecot has served, or never opened, also without a uidlist): a note says so, and
    /// its next open, or `rebuild`, makes what is missing. A folder the server has open may show its changes of the
    /// last seconds as differences until the server writes its index (every 2 seconds while
    /// the folder changes, and when it closes the folder).
    #[command(after_long_help = INDEX_EXIT)]
    Check {
        #[command(flatten)]
        target: IndexTarget,
    },
    /// Make each folder's index again from its files and its uidlist, then check it.
    ///
    /// The index and the cache are removed and the folder is opened and closed as the server
    /// opens a folder whose index was lost: UIDs and UIDVALIDITY come from the uidlist and
    /// never change; files not numbered yet get the next UIDs, under the uidlist's lock, as
    /// any open would number them; modification sequences restart above the clock, so
    /// CONDSTORE/QRESYNC clients resync their flags once; the cache is refilled as clients
    /// fetch. A folder whose uidlist does not read is left alone (and reported). Safe while
    /// the server runs and clients have the folder open: the server reads an index only when
    /// it opens a folder, and either keeps this one or replaces it with its own.
    #[command(after_long_help = INDEX_EXIT)]
    Rebuild {
        #[command(flatten)]
        target: IndexTarget,
    },
}

/// The end of `index check --help` and `index rebuild --help`.
pub const INDEX_EXIT: &str = "Exit status: 0 when every folder is consistent (after a rebuild: \
    was rebuilt and checks consistent; a user without a Maildir has nothing to check); 1 when \
    a folder has a problem or could not be read; 2 for an unknown user or folder or a \
    configuration error.";

/// Whose index, which folder, from which configuration.
#[derive(clap::Args, Debug)]
pub struct IndexTarget {
    /// The user (a login name).
    #[arg(value_name = "USER")]
    pub user: String,
    /// One folder (its IMAP name, `/` between levels, e.g. `Archive/2024`); every folder
    /// of the Maildir when left out.
    #[arg(value_name = "FOLDER")]
    pub folder: Option<String>,
    /// Configuration file.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// `client-config --username`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum UsernameForm {
    /// The whole address (Thunderbird's %EMAILADDRESS%).
    Address,
    /// The part before the @ (%EMAILLOCALPART%).
    LocalPart,
}

/// The end of `client-config --help`: how to serve the files (also docs/client-setup.md).
pub const CLIENT_CONFIG_SERVING: &str = "\
Serving the files (docs/client-setup.md has the details):

Thunderbird asks https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=ADDRESS, then
https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=ADDRESS. The files use
Thunderbird's placeholders (%EMAILADDRESS%, %EMAILLOCALPART%), so a static file serves every
user and the emailaddress parameter can be ignored. Serve DIR over HTTPS as the document root
of the autoconfig.DOMAIN host and of DOMAIN's site (or copy .well-known/ into that site). The
.mobileconfig must be sent as application/x-apple-aspen-config (Safari then offers to install
it). Publish srv-records.zone in DOMAIN's zone.

nginx:
  server {
      listen 443 ssl;
      server_name autoconfig.example.org example.org;
      root /var/www/client-config;
      location ~ /config-v1\\.1\\.xml$ { types { } default_type application/xml; }
      location ~ \\.mobileconfig$ { types { } default_type application/x-apple-aspen-config; }
  }

Apache:
  <VirtualHost *:443>
      ServerName autoconfig.example.org
      ServerAlias example.org
      DocumentRoot /var/www/client-config
      AddType application/xml .xml
      AddType application/x-apple-aspen-config .mobileconfig
  </VirtualHost>";

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PasswdScheme {
    Argon2id,
    #[value(name = "sha512-crypt")]
    Sha512Crypt,
}
