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

/// The hidden command `index` runs its helper with (`nestbox::admin::index::HELPER_COMMAND`).
pub const INDEX_HELPER: &str = "index-helper";

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

#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Compare each folder's index and cache with its files and its uidlist; write nothing.
    ///
    /// Per folder: "consistent", or each problem found: messages in the index whose file is
    /// gone, files with a UID that the index does not list, flags (the file name) or size
    /// the index has wrong, a UID or UIDVALIDITY other than the uidlist's, an index that does
    /// not read (missing, truncated, bad checksum, unknown format), a cache with a bad entry,
    /// and problems of the uidlist itself (unreadable, a UID or a file twice, UIDs out of
    /// order). Files delivered since the folder was last opened (not numbered yet)
    /// are counted, not a problem. A folder the server has open may show its changes of the
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

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PasswdScheme {
    Argon2id,
    #[value(name = "sha512-crypt")]
    Sha512Crypt,
}
