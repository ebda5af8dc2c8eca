//! One piece of an operator command, run as a user: the parent starts `nestbox` again with a
//! hidden subcommand, switched to the user's uid, gid and groups between fork and exec
//! (`server::credentials`, which the server's workers use too), sends it its work as JSON
//! on standard input and reads the answer as JSON from standard output.
//!
//! Why a new process and not a thread or a plain fork: the credentials of a process are
//! per thread in the kernel, and `main` has started tokio's threads before any command
//! runs, so neither `setuid` in a thread nor in the parent is sound; a forked child may only
//! make async-signal-safe calls until it execs. Re-executing ourselves is the one way to get
//! a whole program, with all its threads, running as the user. It also means the parent,
//! root, never opens a user's Maildir, so a symlink planted there can at most lead the
//! helper to what the user may read anyway (and the store's `beneath` rules keep it inside
//! the Maildir even then).
//!
//! The helper side ([`serve`]) refuses to run as root and reads nothing but its standard
//! input; its answer is all it writes to standard output. On standard error, besides its
//! error line, it may [`report`] progress, which the parent reads as it comes
//! ([`run_reporting`]: `nestbox index` draws its progress bar from it).
use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::server::identity::Identity;

/// Environment the helper keeps: its logging. Everything else is cleared (the parent may
/// run under sudo with a user's environment).
const KEPT_ENV: &[&str] = &["NESTBOX_LOG", "RUST_LOG", "NO_COLOR"];

/// Runs `nestbox <subcommand>` as `identity` with `input`, and returns its answer. The error
/// is one line for the operator: the helper could not start, failed, or answered nonsense
/// (its own error line, from its standard error, is in it).
pub fn run<I: Serialize, O: DeserializeOwned>(
    identity: &Identity,
    subcommand: &str,
    input: &I,
) -> Result<O, String> {
    run_reporting(identity, subcommand, input, |_| {})
}

/// The start of a line in which a helper reports how far it got ([`report`]), on its
/// standard error: the parent hands such lines to its `progress` callback and keeps the
/// others for its error message.
const PROGRESS: &str = "nestbox-progress\t";

/// How far a helper got: `done` of `total` units (messages) of the piece of work `what`
/// (a folder).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Progress {
    pub what: String,
    pub done: u64,
    pub total: u64,
}

/// The helper's side of [`run_reporting`]: tells the parent how far it got. One line on
/// standard error; a failure to write it is no reason to stop the work.
pub fn report(p: &Progress) {
    if let Ok(line) = serde_json::to_string(p) {
        let _ = writeln!(std::io::stderr().lock(), "{PROGRESS}{line}");
    }
}

/// [`run`], handing each [`Progress`] the helper [`report`]s to `progress` as it comes
/// (the helper's standard error is read line by line while it works).
pub fn run_reporting<I: Serialize, O: DeserializeOwned>(
    identity: &Identity,
    subcommand: &str,
    input: &I,
    mut progress: impl FnMut(Progress),
) -> Result<O, String> {
    let input = serde_json::to_vec(input).map_err(|e| format!("cannot encode the work: {e}"))?;
    let mut cmd = Command::new("/proc/self/exe");
    std::os::unix::process::CommandExt::arg0(&mut cmd, "nestbox");
    cmd.arg(subcommand)
        .env_clear()
        // The server's workers start in / too: a relative path means the same to both.
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in KEPT_ENV {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let setup = crate::server::credentials::child_setup(identity);
    // SAFETY: the closure makes raw system calls only and allocates nothing, as the child
    // between fork and exec requires (`credentials::child_setup` says how).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, setup);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start a helper as uid {}: {e}", identity.uid))?;
    // The helper reads all of its input before it writes a byte, so writing everything
    // first cannot deadlock on full pipes; then its standard output is read by a thread
    // while its standard error is read here, line by line, so neither pipe fills up.
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(&input) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot send the helper its work: {e}"));
        }
    }
    let stdout = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut answer = Vec::new();
            out.read_to_end(&mut answer).map(|_| answer)
        })
    });
    let mut why = String::new();
    if let Some(err) = child.stderr.take() {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            match line.strip_prefix(PROGRESS) {
                Some(p) => {
                    if let Ok(p) = serde_json::from_str(p) {
                        progress(p);
                    }
                }
                None if !line.trim().is_empty() => why = line,
                None => {}
            }
        }
    }
    let answer = match stdout.map(|t| t.join()) {
        Some(Ok(Ok(answer))) => answer,
        _ => Vec::new(),
    };
    let status = child
        .wait()
        .map_err(|e| format!("helper as uid {}: {e}", identity.uid))?;
    if !status.success() {
        return Err(format!(
            "helper as uid {} failed ({status}){}{}",
            identity.uid,
            if why.is_empty() { "" } else { ": " },
            why.trim()
        ));
    }
    serde_json::from_slice(&answer)
        .map_err(|e| format!("helper as uid {} answered nonsense: {e}", identity.uid))
}

/// The helper's side: reads the work from standard input, runs `work` on it, and writes
/// the answer to standard output. Refuses to run as root: the parent switched to the
/// user before exec, so root here means someone ran the hidden subcommand by hand.
pub fn serve<I: DeserializeOwned, O: Serialize>(work: impl FnOnce(I) -> O) -> Result<(), String> {
    if rustix::process::geteuid().is_root() {
        return Err(
            "this helper never runs as root (nestbox starts it as each user itself)".into(),
        );
    }
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| format!("reading the work: {e}"))?;
    let input: I = serde_json::from_slice(&input).map_err(|e| format!("the work: {e}"))?;
    let answer = serde_json::to_vec(&work(input)).map_err(|e| format!("the answer: {e}"))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&answer)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing the answer: {e}"))
}
