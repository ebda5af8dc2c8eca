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
        back to RUST_LOG, then to info (warn for quota, whose output is its answer). Logs go \
        to standard error, with colour only when it is a terminal. Messages of the TLS library \
        (rustls) are held to errors unless the filter names rustls (e.g. info,rustls=debug): \
        its warnings are about what clients send.\n\n\
        NO_COLOR: when set and not empty, no colour codes even on a terminal.",
    ),
    (
        "Logging",
        "Failed logins are logged as \"auth failed: user=NAME rip=ADDRESS mech=MECHANISM\", \
        which the fail2ban filter in /usr/share/doc/nestbox/contrib/fail2ban/ matches. Repeated \
        failures from one address (one /64 for IPv6) are answered ever more slowly.",
    ),
    (
        "Exit status",
        "0: success. 1: a runtime error (for example a port already in use, or for quota a \
        user's Maildir that could not be read or written). 2: a usage or configuration error \
        (for quota also an unknown user).",
    ),
    (
        "Files",
        "/etc/nestbox/nestbox.toml: the configuration; see nestbox.toml(5).\n\n\
        /etc/nestbox/users: the passwd-file, when auth.backend = \"passwd-file\".",
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
    /// Internal: a per-user worker process, started by the server itself (never by hand).
    #[command(hide = true)]
    Worker,
    /// Internal: the Maildir work of `quota`, started by it as each user (never by hand).
    #[command(hide = true, name = QUOTA_HELPER)]
    QuotaHelper,
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

/// The end of `quota show --help` and `quota recalc --help`.
pub const QUOTA_EXIT: &str = "Exit status: 0 when every user was shown (users without a Maildir or \
    without quota included); 1 when a user's Maildir could not be read or written (one line \
    on standard error each, the others are still shown); 2 for an unknown user or a \
    configuration error.";

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

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PasswdScheme {
    Argon2id,
    #[value(name = "sha512-crypt")]
    Sha512Crypt,
}
