//! The `nestbox` binary as an operator meets it: its command line, what its logs look like
//! on a pipe, and how a default (dual-stack `[::]`) listener treats a client on 127.0.0.1.
//!
//! Every server here is the built binary, started on free ports and stopped by its PID when
//! the test ends; every wait has a timeout.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASSWORD, TestServer, USER};

const BIN: &str = env!("CARGO_BIN_EXE_nestbox");
/// How long a spawned nestbox may take to do what a test waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// Waits for `child` to exit, killing it after [`PATIENCE`]; returns its exit code.
fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nestbox did not exit within {PATIENCE:?}");
            }
        }
    }
}

/// Runs the binary with `args` (no stdin), returning (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nestbox");
    // Help texts are a few KB: they fit the pipes, so reading after the exit cannot block.
    let code = wait_exit(&mut child);
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    (code, out, err)
}

#[test]
fn every_way_of_asking_for_help_succeeds() {
    for args in [
        &["help", "--help"][..],
        &["help", "-h"],
        &["help", "serve"],
        &["help"],
        &["--help"],
        &["serve", "--help"],
        &["check-config", "--help"],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "nestbox {args:?}: {err}");
        assert!(out.contains("Usage: nestbox"), "nestbox {args:?}: {out}");
    }
    // The help of a command is the one `COMMAND --help` gives.
    assert_eq!(run(&["help", "serve"]).1, run(&["serve", "--help"]).1);
    // An unknown command is still a usage error.
    let (code, _, err) = run(&["help", "bogus"]);
    assert_eq!(code, Some(2), "{err}");
}

/// A config for a server on 127.0.0.1 without TLS, in `dir`.
fn loopback_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("nestbox.toml");
    fs::write(
        &path,
        format!(
            "[imap]\nlisten = [\"127.0.0.1:{port}\"]\nlisten_tls = []\n[pop3]\nlisten = []\n\
             listen_tls = []\n[auth]\nbackend = \"passwd-file\"\npasswd_file = \"users\"\n{extra}"
        ),
    )
    .expect("write config");
    fs::write(
        dir.join("users"),
        format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
    )
    .expect("users");
    path
}

#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The port is held here, so the server logs its config warning, fails to listen and exits.
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let cfg = loopback_config(dir.path(), port, "[limits]\nidle_timeout = \"5m\"\n");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("-c")
        .arg(&cfg)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env("NESTBOX_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nestbox");
    let code = wait_exit(&mut child);
    let mut err = String::new();
    child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("WARN") && err.contains("idle_timeout"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "escape codes on a pipe: {err:?}");
}

/// A TLS 1.3 ClientHello whose SNI names `host` as a host name, as clients that connect by
/// IP address often send it (RFC 6066 §3 forbids it; rustls cannot be made to send it).
fn client_hello(host: &str) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, typ: u16, body: &[u8]) {
        out.extend_from_slice(&typ.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut exts = Vec::new();
    // server_name: list length, type host_name (0), name length, name.
    let mut sni = Vec::new();
    sni.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sni.extend_from_slice(host.as_bytes());
    ext(&mut exts, 0x0000, &sni);
    // supported_groups: x25519.
    ext(&mut exts, 0x000a, &[0, 2, 0x00, 0x1d]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, ed25519.
    ext(
        &mut exts,
        0x000d,
        &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x08, 0x07],
    );
    // supported_versions: TLS 1.3.
    ext(&mut exts, 0x002b, &[2, 0x03, 0x04]);
    // key_share: one x25519 share (any 32 bytes will do for the server to answer).
    let mut share = vec![0, 36, 0x00, 0x1d, 0, 32];
    share.extend((1..=32u8).map(|b| b.wrapping_mul(7)));
    ext(&mut exts, 0x0033, &share);

    let mut body = vec![0x03, 0x03];
    body.extend((0..32u8).map(|b| b.wrapping_mul(13)));
    body.push(0); // no legacy session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);

    let mut hs = vec![0x01]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Polls the server's log until it contains `needle`.
fn wait_for_log(server: &TestServer, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = server.log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log within {PATIENCE:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_ip_address_as_sni_is_not_a_warning() {
    let server = TestServer::start_kind(common::Kind::Nestbox, common::Options::default());
    let mut s = TcpStream::connect(("127.0.0.1", server.imaps_port)).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).ok();
    s.write_all(&client_hello("127.0.0.1"))
        .expect("send ClientHello");
    // The server parsed the hello (and with it the SNI) and answers with its ServerHello.
    let mut first = [0u8; 1];
    s.read_exact(&mut first).expect("the server's answer");
    assert_eq!(first[0], 0x16, "expected a handshake record (ServerHello)");
    drop(s);
    // Logged after anything the handshake logged: from here on the log is complete.
    let log = wait_for_log(&server, "TLS handshake failed");
    assert!(!log.contains("Illegal SNI"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("rustls")),
        "{log}"
    );
}

/// Stops a spawned server by its PID when dropped.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn plaintext_login_from_127_0_0_1_on_a_dual_stack_listener() {
    // `[::]` takes IPv4 clients too unless the host says otherwise (bindv6only, no IPv6).
    let Ok(probe) = TcpListener::bind("[::]:0") else {
        eprintln!("SKIPPED: cannot listen on [::] (no IPv6 on this host)");
        return;
    };
    let port = probe.local_addr().expect("addr").port();
    if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_err() {
        eprintln!("SKIPPED: [::] does not accept IPv4 clients here (net.ipv6.bindv6only)");
        return;
    }
    drop(probe);

    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    // A listener on anything but loopback needs a certificate (STARTTLS), though it is
    // not used: the point is that 127.0.0.1 needs none.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    fs::write(d.join("cert.pem"), cert.cert.pem()).expect("cert.pem");
    fs::write(d.join("key.pem"), cert.key_pair.serialize_pem()).expect("key.pem");
    let md = d.join("mail").join(USER).join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(md.join(sub)).expect("Maildir");
    }
    // As root, the mail is served as `mail.user` (never as root): see tests/common.
    let mail_user = if common::mail_owner().is_some() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        common::give_to_mail_user(&d.join("mail"));
        format!("user = \"{}\"\n", common::MAIL_OWNER)
    } else {
        String::new()
    };
    fs::write(
        d.join("users"),
        format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
    )
    .expect("users");
    let log = d.join("server.log");
    // The greeting names this server, so a connection to anything else that holds the port
    // for a moment (another suite's server or port probe) is not taken for it.
    let host = format!("dualstack-{}.test", std::process::id());
    // Between dropping the probe and the server's bind another process may take the port:
    // then the server exits with "Address already in use" and we try a new one.
    let mut port = port;
    let mut attempt = 0;
    let (server, mut conn, mut reader) = loop {
        attempt += 1;
        let cfg = d.join("nestbox.toml");
        fs::write(
            &cfg,
            format!(
                "hostname = \"{host}\"\n[imap]\nlisten = [\"[::]:{port}\"]\nlisten_tls = []\n\
                 [pop3]\nlisten = []\nlisten_tls = []\n[tls]\ncert = \"cert.pem\"\n\
                 key = \"key.pem\"\n[auth]\nbackend = \"passwd-file\"\npasswd_file = \"users\"\n\
                 plaintext_on_loopback = true\n[mail]\nmaildir = \"{}/mail/%u/Maildir\"\n{mail_user}",
                d.display()
            ),
        )
        .expect("write config");
        let out = fs::File::create(&log).expect("log");
        let mut server = Spawned(
            Command::new(BIN)
                .arg("serve")
                .arg("-c")
                .arg(&cfg)
                .env("NESTBOX_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("log")))
                .stderr(Stdio::from(out))
                .spawn()
                .expect("start nestbox"),
        );
        let deadline = Instant::now() + PATIENCE;
        let found = loop {
            if let Ok(Some(_)) = server.0.try_wait() {
                let text = fs::read_to_string(&log).unwrap_or_default();
                assert!(
                    text.contains("Address already in use") && attempt < 5,
                    "server exited: {text}"
                );
                break None;
            }
            if let Ok(conn) = TcpStream::connect(("127.0.0.1", port)) {
                // Short: whatever else holds the port may never greet.
                conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_ok() && line.contains(&host) {
                    assert!(line.starts_with("* OK"), "{line}");
                    conn.set_read_timeout(Some(PATIENCE)).ok();
                    break Some((conn, reader));
                }
            }
            assert!(
                Instant::now() < deadline,
                "no greeting from our server on port {port}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        match found {
            Some((conn, reader)) => break (server, conn, reader),
            None => {
                let probe = TcpListener::bind("[::]:0").expect("bind [::]:0");
                port = probe.local_addr().expect("addr").port();
            }
        }
    };
    let mut line = String::new();
    conn.write_all(format!("a LOGIN {USER} {PASSWORD}\r\n").as_bytes())
        .expect("send LOGIN");
    let status = loop {
        line.clear();
        reader.read_line(&mut line).expect("LOGIN answer");
        assert!(!line.is_empty(), "connection closed");
        if line.starts_with("a ") {
            break line.clone();
        }
    };
    drop(server);
    assert!(
        status.starts_with("a OK"),
        "{status}{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    // The log names the client by its IPv4 address, as fail2ban must ban it.
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("rip=127.0.0.1"), "{text}");
    assert!(!text.contains("::ffff:"), "{text}");
}
