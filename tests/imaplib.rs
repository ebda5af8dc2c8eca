//! Python `imaplib` (standard library only) drives the server over implicit TLS and STARTTLS:
//! `tests/python/test_imap.py`, and with COMPRESS=DEFLATE (imaplib plus `zlib`):
//! `tests/python/test_compress.py`, run with `python3 -m unittest` against a server started here
//! by the shared harness, which passes host, ports, user, password and the test CA through the
//! environment (`TestServer::client_env`).

mod common;

use common::{Options, TestServer};
use std::process::Command;

fn run_python(server: &TestServer, target: &str) {
    let dir = common::repo_root().join("tests").join("python");
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", target])
        .current_dir(&dir)
        .envs(server.client_env())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "python suite {target} failed (exit {:?}); server log:\n{}",
        out.status.code(),
        server.log()
    );
    // A suite that ran nothing must not pass silently.
    assert!(
        !stderr.contains("Ran 0 tests"),
        "python suite {target} ran no test"
    );
}

#[test]
#[cfg_attr(
    nestbox_missing_python3,
    ignore = "python3 is not installed (the imaplib client)"
)]
fn imaplib_tls_and_starttls() {
    if !common::require_tool("python3", "the imaplib suite") {
        return;
    }
    let server = TestServer::start();
    run_python(&server, "test_imap");
}

#[test]
#[cfg_attr(
    nestbox_missing_python3,
    ignore = "python3 is not installed (the imaplib client)"
)]
fn imaplib_logindisabled_without_plaintext_on_loopback() {
    if !common::require_tool("python3", "the imaplib suite") {
        return;
    }
    if common::Kind::from_env() == common::Kind::Dovecot {
        // Dovecot treats a loopback connection as secure whatever the config says.
        eprintln!("SKIPPED: LOGINDISABLED on loopback is nestbox-specific");
        return;
    }
    let server = TestServer::start_with(Options {
        plaintext_on_loopback: false,
        ..Options::default()
    });
    run_python(&server, "test_imap.LoginDisabledTests");
}

#[test]
#[cfg_attr(
    nestbox_missing_python3,
    ignore = "python3 is not installed (the imaplib client)"
)]
fn imaplib_compress_deflate() {
    if !common::require_tool("python3", "the imaplib suite") {
        return;
    }
    let server = TestServer::start();
    run_python(&server, "test_compress");
}
