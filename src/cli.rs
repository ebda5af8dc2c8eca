//! The command line of `nestbox`: every command, argument and help text, as clap types.
//!
//! This file is the one description of the interface. `main.rs` dispatches on it, and
//! `build.rs` compiles it too (`#[path]`) to write the man page with `clap_mangen`, so the
//! page cannot drift from `--help`. It must therefore stay self-contained: only `std` and
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
#[command(name = "nestbox", version, about, long_about = None, disable_help_subcommand = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PasswdScheme {
    Argon2id,
    #[value(name = "sha512-crypt")]
    Sha512Crypt,
}
