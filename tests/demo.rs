//! `nestbox demo` from the outside (issue 13): it says "ready" and prints the client settings
//! only once every listener is bound, and a port that is already taken ends it with an error
//! naming the address and a non-zero exit, with no "ready" printed before.
//!
//! The demo's ports are fixed (1143, 1993), so these tests would collide with a demo or a
//! Dovecot running on the machine, and with each other. Instead each test writes the demo's
//! `nestbox.toml` first, with ports of its own: `nestbox demo` keeps an existing config and
//! creates only the missing pieces (certificate, users, Maildir) around it.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the demo may take to prepare its directory and bind (hashing the demo password
/// and generating a key are the slow parts).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A demo directory whose config listens on these two 127.0.0.1 ports (STARTTLS, TLS).
fn demo_dir(plain: u16, tls: u16) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("nestbox-demo-test-")
        .tempdir()
        .expect("temp dir");
    let dir = fs::canonicalize(tmp.path()).expect("canonicalize");
    // Relative cert, key and users paths are taken relative to the config's directory.
    let cfg = format!(
        r#"hostname = "localhost"
[imap]
listen = ["127.0.0.1:{plain}"]
listen_tls = ["127.0.0.1:{tls}"]
[pop3]
listen = []
listen_tls = []
[tls]
cert = "cert.pem"
key = "key.pem"
[auth]
backend = "passwd-file"
passwd_file = "users"
[mail]
maildir = "{dir}/mail/%u/Maildir"
{mail_user}"#,
        dir = dir.display(),
        // As root the demo's mail belongs to nobody (src/demo.rs), who serves it.
        mail_user = if common::mail_owner().is_some() {
            "user = \"nobody\"\n"
        } else {
            ""
        },
    );
    fs::write(dir.join("nestbox.toml"), cfg).expect("write nestbox.toml");
    (tmp, dir)
}

fn demo_command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nestbox"));
    c.arg("demo")
        .arg("--dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// Stops a child we started: SIGTERM, then SIGKILL if it has not exited within a few seconds.
struct Running(Option<Child>);

impl Running {
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.0.take()?;
        // SAFETY: kill(2) on the PID of a child we spawned and have not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn busy_port_fails_without_saying_ready() {
    // Hold the TLS port for the whole test; the other one is free.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let busy = taken.local_addr().expect("local_addr").port();
    let free = common::free_port();
    let (_tmp, dir) = demo_dir(free, busy);
    let out = fs::File::create(dir.join("stdout")).expect("stdout file");
    let err = fs::File::create(dir.join("stderr")).expect("stderr file");
    let child = demo_command(&dir)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start nestbox demo");
    let mut running = Running(Some(child));
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        let child = running.0.as_mut().expect("child");
        if let Some(status) = child.try_wait().expect("try_wait") {
            running.0 = None;
            break status;
        }
        if Instant::now() > deadline {
            let stdout = fs::read_to_string(dir.join("stdout")).unwrap_or_default();
            let stderr = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
            panic!(
                "demo still running with port {busy} taken\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = fs::read_to_string(dir.join("stdout")).expect("read stdout");
    let stderr = fs::read_to_string(dir.join("stderr")).expect("read stderr");
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout.contains("ready") && !stdout.contains("Mail client settings"),
        "printed readiness although a port was taken:\n{stdout}"
    );
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{busy}")),
        "the error does not name the busy address:\n{stderr}"
    );
    drop(taken);
}

#[test]
fn ready_means_every_listener_is_bound() {
    let [plain, tls] = common::free_ports::<2>();
    let (_tmp, dir) = demo_dir(plain, tls);
    let err = fs::File::create(dir.join("stderr")).expect("stderr file");
    let mut child = demo_command(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start nestbox demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut running = Running(Some(child));

    // Lines of stdout as they come, so the wait below has a deadline.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut printed = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let ready = line.contains("ready");
                printed.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let stderr = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
                panic!("no \"ready\" line; stdout:\n{printed:?}\nstderr:\n{stderr}");
            }
        }
    }

    // The moment "ready" is printed, both ports accept connections (no retrying here: a
    // refused connection is the bug this test is for), and the STARTTLS port greets.
    let mut s = TcpStream::connect(("127.0.0.1", plain)).expect("STARTTLS port not bound");
    TcpStream::connect(("127.0.0.1", tls)).expect("TLS port not bound");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut greeting = [0u8; 4];
    s.read_exact(&mut greeting).expect("greeting");
    assert_eq!(&greeting, b"* OK");

    // The settings that follow name IMAP's ports and nothing for POP3, which this config
    // does not listen for.
    let mut rest = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        let done = line.starts_with("Config:");
        rest.push_str(&line);
        rest.push('\n');
        if done {
            break;
        }
    }
    assert!(rest.contains(&format!("port {tls}, SSL/TLS")), "{rest}");
    assert!(rest.contains(&format!("port {plain}, STARTTLS")), "{rest}");
    assert!(!rest.contains("POP3"), "{rest}");

    let status = running.stop().expect("demo did not stop on SIGTERM");
    assert!(status.success(), "{status}");
}
