//! `nestbox index check|rebuild USER [FOLDER]`: verify a user's per-folder index and cache
//! against the Maildir and its `dovecot-uidlist`, or make them again, never changing a UID
//! (issue 20).
//!
//! Built like `nestbox quota` (`admin::quota`): the parent reads the configuration, resolves
//! the user as a login does and decides the identity their mail is served as
//! (`server::identity`: never root); one helper process running as that identity
//! (`admin::as_user`) does the Maildir work (`folder`, whose module doc says what is
//! checked and how a rebuild stays safe beside a running server), and the parent prints its
//! answer. When standard error is a terminal the parent draws a progress bar (`indicatif`)
//! from what the helper reports; on a pipe or in a file nothing is drawn and the helper
//! reports nothing.
//!
//! Never opens a Maildir in this process: the parent may be root.
pub mod folder;

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::auth::{AuthError, Authenticator};
use crate::config::Config;
use crate::server::identity::Policy;
use folder::{FolderReport, Found, Job};

/// The hidden subcommand the helper runs as (`main.rs` routes it to [`helper`]).
pub const HELPER_COMMAND: &str = "index-helper";

/// What the command prints: `output` on standard output; `failed` makes the exit status 1
/// (a folder with a problem, or a folder that could not be read).
#[derive(Debug)]
pub struct Outcome {
    pub output: String,
    pub failed: bool,
}

/// Why the command could not run at all: the configuration or the invocation (an unknown
/// user or folder): exit 2.
#[derive(Debug)]
pub struct Usage(pub String);

/// Runs `index check` (`rebuild` false) or `index rebuild` for `user`'s `folder` (every
/// folder when `None`).
pub fn run(
    cfg: &Config,
    user: &str,
    folder: Option<&str>,
    rebuild: bool,
) -> Result<Outcome, Usage> {
    let auth = Authenticator::from_config(cfg).map_err(|e| Usage(format!("auth: {e}")))?;
    let policy = Policy::from_config(cfg).map_err(Usage)?;
    let user = match auth.find_user(user) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(Usage(format!("unknown user {user:?}"))),
        Err(AuthError::Unavailable(why)) => return Err(Usage(format!("{user}: {why}"))),
        Err(AuthError::Failed) => return Err(Usage(format!("{user}: cannot be resolved"))),
    };
    let identity = policy.identity_for(&user).map_err(Usage)?;
    let bar = std::io::stderr().is_terminal().then(new_bar);
    let job = Job {
        maildir: user.maildir.clone(),
        folder: folder.map(str::to_string),
        rebuild,
        progress: bar.is_some(),
    };
    let answer = super::as_user::run_reporting(&identity, HELPER_COMMAND, &job, |p| {
        if let Some(bar) = &bar {
            // A total of 0: a step whose size is not known (the store opening a folder).
            if p.total == 0 {
                bar.unset_length();
            } else {
                bar.set_length(p.total);
            }
            bar.set_position(p.done);
            bar.set_message(p.what);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let found = answer.unwrap_or_else(Found::Failed);
    let name = &user.name;
    match found {
        Found::NoMaildir => Ok(Outcome {
            // Nothing to check or rebuild: not a problem of an index.
            output: format!("{name}: no Maildir at {}\n", user.maildir.display()),
            failed: false,
        }),
        Found::NoFolder(f) => Err(Usage(format!("{name}: no folder {f:?}"))),
        Found::Failed(why) => Ok(Outcome {
            output: format!("{name}: {why}\n"),
            failed: true,
        }),
        Found::Folders(reports) => Ok(render(&reports, rebuild)),
    }
}

fn new_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{wide_bar}] {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// One block per folder: its name and state, then one line per problem and per note.
fn render(reports: &[FolderReport], rebuild: bool) -> Outcome {
    let mut out = String::new();
    let mut failed = false;
    for r in reports {
        let state = if r.problems.is_empty() {
            "consistent"
        } else {
            failed = true;
            "PROBLEMS"
        };
        let mut counts = format!("{} messages", r.messages);
        if r.unnumbered > 0 {
            let _ = write!(
                counts,
                ", {} not numbered yet (the next open numbers them)",
                r.unnumbered
            );
        }
        if let Some(n) = r.indexed.filter(|_| rebuild) {
            let _ = write!(counts, ", index rebuilt with {n}");
        }
        let _ = writeln!(out, "{}: {state} ({counts})", r.folder);
        for p in &r.problems {
            let _ = writeln!(out, "  {p}");
        }
        for n in &r.notes {
            let _ = writeln!(out, "  note: {n}");
        }
    }
    Outcome {
        output: out,
        failed,
    }
}

/// The hidden `index-helper` subcommand: one Maildir's work, as its user (see
/// `admin::as_user`).
pub fn helper() -> Result<(), String> {
    super::as_user::serve(|job: Job| folder::run(&job))
}
