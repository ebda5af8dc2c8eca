//! `nestbox quota show|recalc USER|--all`: the Maildir++ quota of users, as an operator
//! sees it from a shell (issue 19).
//!
//! The parent reads the configuration and the users (`auth`: the passwd-file or the
//! system's users, resolved as a login resolves them), decides for each user the identity
//! their mail is served as (`server::identity`, the server's own rule: never root; a
//! non-root caller only its own uid) and the limits the configuration gives them
//! (`Authenticator::quota_limits`, as at login). Then, for each identity, one helper
//! process running as it (`admin::as_user`) does the Maildir work for all of that
//! identity's users (`maildir`), and the parent prints the answers (`render`).
//!
//! Rules the output follows:
//! - a user without a Maildir, or whose Maildir has no `maildirsize` (no quota), is a row
//!   saying so, not an error;
//! - a user whose Maildir cannot be read is a row in error and a line on standard error,
//!   and the command ends with status 1 after every other user was done;
//! - `--all` with PAM lists only the users who have a Maildir (among the system's many
//!   accounts, the others are not mail users); with a passwd-file, every line;
//! - run as another user than root, `--all` covers the users whose mail is served as the
//!   caller's own uid, and a single user of another uid is an error.
//!
//! Never opens a Maildir in this process: the parent may be root.
pub mod maildir;
mod render;

use std::path::PathBuf;

use crate::auth::{AuthError, Authenticator, User};
use crate::config::Config;
use crate::server::identity::{Identity, Policy};
use maildir::{Action, Found, Job};

/// The hidden subcommand the helpers run as (`main.rs` routes it to [`helper`]).
pub const HELPER_COMMAND: &str = "quota-helper";

/// Whose quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    User(String),
    All,
}

/// What to do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Report `maildirsize`; with `count`, the use counted from the folders.
    Show { count: bool },
    /// Count the folders and rewrite `maildirsize` with the configured limits.
    Recalc,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// One user's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub user: String,
    /// `None` when it could not be resolved.
    pub maildir: Option<PathBuf>,
    pub found: Found,
}

/// What the command prints: `output` on standard output, each of `errors` as a line on
/// standard error; any error makes the exit status 1.
#[derive(Debug)]
pub struct Outcome {
    pub output: String,
    pub errors: Vec<String>,
}

/// Why the command could not run at all.
#[derive(Debug)]
pub enum Error {
    /// The configuration or the invocation (an unknown user): exit 2.
    Usage(String),
}

/// Runs the command for `which` with the loaded configuration.
pub fn run(cfg: &Config, which: &Which, mode: Mode, format: Format) -> Result<Outcome, Error> {
    let auth = Authenticator::from_config(cfg).map_err(|e| Error::Usage(format!("auth: {e}")))?;
    let policy = Policy::from_config(cfg).map_err(Error::Usage)?;
    let listed = match which {
        Which::User(name) => match auth.find_user(name) {
            Ok(Some(u)) => vec![(u.name.clone(), Ok(u))],
            Ok(None) => return Err(Error::Usage(format!("unknown user {name:?}"))),
            Err(e) => vec![(name.clone(), Err(e))],
        },
        Which::All => auth.all_users(),
    };
    let keep_existing = cfg.mail.quota_set;
    let (mut rows, batches) = plan(&auth, &policy, which, mode, keep_existing, listed);
    for batch in batches {
        for (index, found) in carry_out(batch) {
            rows[index].found = found;
        }
    }

    if *which == Which::All && auth.lists_system_users() {
        rows.retain(|r| r.found != Found::NoMaildir);
    }
    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.found {
            Found::Failed(why) => Some(format!("{}: {why}", r.user)),
            _ => None,
        })
        .collect();
    // One user in error: the error line says it all.
    let output = if matches!(which, Which::User(_)) && !errors.is_empty() {
        String::new()
    } else {
        match format {
            Format::Table => render::table(&rows),
            Format::Json => render::json(&rows),
        }
    };
    Ok(Outcome { output, errors })
}

/// The Maildir work of the users served as one identity, done by one helper.
struct Batch {
    identity: Identity,
    /// Each job with the index of the row it answers.
    jobs: Vec<(usize, Job)>,
}

/// A row for each user, in order, and the batches of work that will fill in those not
/// already settled (a user who cannot be resolved, or who would be served as root).
fn plan(
    auth: &Authenticator,
    policy: &Policy,
    which: &Which,
    mode: Mode,
    keep_existing: bool,
    listed: Vec<crate::auth::Listed>,
) -> (Vec<Row>, Vec<Batch>) {
    let privileged = rustix::process::geteuid().is_root();
    let mut rows = Vec::new();
    let mut batches: Vec<Batch> = Vec::new();
    for (name, user) in listed {
        let user = match user {
            Ok(u) => u,
            Err(e) => {
                let why = match e {
                    AuthError::Unavailable(why) => why,
                    AuthError::Failed => "cannot be resolved".into(),
                };
                rows.push(Row {
                    user: name,
                    maildir: None,
                    found: Found::Failed(why),
                });
                continue;
            }
        };
        let identity = match policy.identity_for(&user) {
            Ok(id) => id,
            // Not ours to see: `--all` as a non-root user covers only its own uid's users.
            Err(_) if *which == Which::All && !privileged => continue,
            Err(why) => {
                rows.push(row(&user, Found::Failed(why)));
                continue;
            }
        };
        let action = match mode {
            Mode::Show { count } => Action::Show { count },
            // The limits a login applies to this user.
            Mode::Recalc => Action::Recalc {
                limits: auth.quota_limits(&user),
                keep_existing,
            },
        };
        let job = Job {
            maildir: user.maildir.clone(),
            action,
        };
        let index = rows.len();
        // Replaced by the helper's answer or its failure.
        rows.push(row(&user, Found::Failed("not looked at".into())));
        match batches.iter_mut().find(|b| b.identity == identity) {
            Some(b) => b.jobs.push((index, job)),
            None => batches.push(Batch {
                identity,
                jobs: vec![(index, job)],
            }),
        }
    }
    (rows, batches)
}

/// Runs one batch in a helper as its identity: each row's answer, or the helper's failure
/// for every row of the batch.
fn carry_out(batch: Batch) -> Vec<(usize, Found)> {
    let Batch { identity, jobs } = batch;
    let work: Vec<&Job> = jobs.iter().map(|(_, j)| j).collect();
    let answers =
        super::as_user::run(&identity, HELPER_COMMAND, &work).and_then(|a: Vec<Found>| {
            if a.len() == jobs.len() {
                Ok(a)
            } else {
                Err(format!(
                    "helper as uid {} answered {} of {} users",
                    identity.uid,
                    a.len(),
                    jobs.len()
                ))
            }
        });
    match answers {
        Ok(answers) => jobs.iter().map(|(i, _)| *i).zip(answers).collect(),
        Err(why) => jobs
            .iter()
            .map(|(i, _)| (*i, Found::Failed(why.clone())))
            .collect(),
    }
}

fn row(user: &User, found: Found) -> Row {
    Row {
        user: user.name.clone(),
        maildir: Some(user.maildir.clone()),
        found,
    }
}

/// The hidden `quota-helper` subcommand: the Maildir work of one identity's users, as that
/// identity (see `admin::as_user`).
pub fn helper() -> Result<(), String> {
    super::as_user::serve(|jobs: Vec<Job>| jobs.iter().map(maildir::run).collect::<Vec<Found>>())
}
