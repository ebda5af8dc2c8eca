//! Build script: tells the tests which peer programs this machine lacks.
//!
//! Some tests drive real peers (Python's `imaplib` and `poplib`, `mbsync`, `fetchmail`, Postfix,
//! Dovecot's LDA, POP3 server and `doveadm`) and some need root. libtest has no way for a
//! running test to say "skipped": one that returns early shows as `ok`, its reason swallowed
//! by output capture.
//! So the decision is taken here, at build time: for each missing peer this emits a
//! `nestbox_missing_*` cfg, and the tests carry
//! `#[cfg_attr(nestbox_missing_X, ignore = "why")]`, so `cargo test` lists them as
//! `ignored, <why>` and counts them in its summary.
//!
//! Under CI (`CI` set) nothing is marked: every test runs, and one whose peer is missing fails
//! (`tests/common::require_tool` panics), because CI installs them all.
//!
//! The script runs again when `CI` or `PATH` changes, when a directory on `PATH` changes, and
//! when Debian's package database does (an `apt-get install` of a peer), so installing a peer
//! is enough to have its tests run at the next `cargo test`. It never affects the server's own
//! code: only test attributes read these cfgs.
use std::path::Path;

/// (cfg suffix, program name or absolute path).
const PEERS: &[(&str, &str)] = &[
    ("python3", "python3"),
    ("mbsync", "mbsync"),
    ("postfix", "postfix"),
    ("dovecot_lda", "/usr/lib/dovecot/dovecot-lda"),
    ("dovecot_pop3", "/usr/lib/dovecot/pop3"),
    ("fetchmail", "fetchmail"),
    ("runuser", "runuser"),
    ("doveadm", "doveadm"),
    ("nginx_mail", "/usr/lib/nginx/modules/ngx_mail_module.so"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let dpkg = Path::new("/var/lib/dpkg/status");
    if dpkg.is_file() {
        println!("cargo::rerun-if-changed={}", dpkg.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).filter(|d| d.is_dir()) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    for (name, _) in PEERS {
        println!("cargo::rustc-check-cfg=cfg(nestbox_missing_{name})");
    }
    println!("cargo::rustc-check-cfg=cfg(nestbox_not_root)");
    if std::env::var_os("CI").is_some() {
        return;
    }
    for (name, program) in PEERS {
        let found = if program.starts_with('/') {
            Path::new(program).is_file()
        } else {
            std::env::split_paths(&path).any(|d| d.join(program).is_file())
        };
        if !found {
            println!("cargo::rustc-cfg=nestbox_missing_{name}");
        }
    }
    if !is_root() {
        println!("cargo::rustc-cfg=nestbox_not_root");
    }
}

/// Whether the build runs as root (the tests then do too: the same user runs `cargo test`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
