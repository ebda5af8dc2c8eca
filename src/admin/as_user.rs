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
//! input; its answer is all it writes to standard output.
use std::io::{Read, Write};
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
    // first cannot deadlock on full pipes; the output is then read by `wait_with_output`,
    // both pipes at once.
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(&input) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot send the helper its work: {e}"));
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("helper as uid {}: {e}", identity.uid))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "helper as uid {} failed ({}){}{}",
            identity.uid,
            out.status,
            if why.is_empty() { "" } else { ": " },
            why.trim()
        ));
    }
    serde_json::from_slice(&out.stdout)
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
