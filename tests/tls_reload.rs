//! The certificate is reloaded when its files change, without a signal (issue 15 item 6):
//! a server configured with certbot's `live/` symlinks into `archive/` serves the renewed
//! certificate to new connections (implicit TLS and STARTTLS) once certbot has written the
//! new files and swapped the links, keeps the old one while the pair is half renewed, also
//! follows plain files rewritten in place, still reloads at once on SIGHUP, and a session
//! opened before all of it keeps working.
//!
//! The certificates are signed by a CA of the test's own, which the client trusts, and each
//! connection reports the leaf certificate the server presented (its DER), which is what
//! is compared.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Kind, Options, PASSWORD, TestServer, USER};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// How long a change may take to be served: the daemon looks every 5 s.
const RELOAD_BOUND: Duration = Duration::from_secs(20);

/// The test's CA: signs every server certificate, trusted by the client.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.distinguished_name
            .push(DnType::CommonName, "tls_reload CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).expect("CA cert");
        Ca { cert, key }
    }

    /// A new server certificate: (fullchain PEM, key PEM, leaf DER).
    fn issue(&self, serial: u64) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        p.distinguished_name
            .push(DnType::CommonName, format!("localhost {serial}"));
        p.serial_number = Some(serial.into());
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("cert");
        (
            format!("{}{}", cert.pem(), self.cert.pem()),
            key.serialize_pem(),
            cert.der().to_vec(),
        )
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// certbot's layout: `archive/example.org/{fullchainN,privkeyN}.pem` and the configured
/// `live/example.org/{fullchain,privkey}.pem` symlinks to them.
struct Certbot {
    archive: PathBuf,
    live: PathBuf,
}

impl Certbot {
    fn new(root: &Path) -> Certbot {
        let c = Certbot {
            archive: root.join("archive/example.org"),
            live: root.join("live/example.org"),
        };
        fs::create_dir_all(&c.archive).expect("archive");
        fs::create_dir_all(&c.live).expect("live");
        c
    }

    fn cert(&self) -> PathBuf {
        self.live.join("fullchain.pem")
    }

    fn key(&self) -> PathBuf {
        self.live.join("privkey.pem")
    }

    /// Writes generation `n`'s files into `archive/` (new files, as certbot does).
    fn write(&self, n: u32, chain: &str, key: &str) {
        fs::write(self.archive.join(format!("fullchain{n}.pem")), chain).expect("write cert");
        fs::write(self.archive.join(format!("privkey{n}.pem")), key).expect("write key");
    }

    /// Re-points a `live/` link at generation `n`: a new symlink renamed over the old one.
    fn link(&self, which: &str, n: u32) {
        let link = self.live.join(format!("{which}.pem"));
        let tmp = self.live.join(format!("{which}.pem.new"));
        std::os::unix::fs::symlink(format!("../../archive/example.org/{which}{n}.pem"), &tmp)
            .expect("symlink");
        fs::rename(&tmp, &link).expect("rename symlink");
    }
}

type Stream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A small IMAP client over TLS (implicit, or after STARTTLS).
struct Client {
    s: Stream,
    buf: Vec<u8>,
    tag: u32,
}

fn handshake(tcp: TcpStream, config: &Arc<rustls::ClientConfig>) -> (Stream, Vec<u8>) {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .expect("TLS handshake (is the certificate signed by the test CA?)");
    }
    let leaf = s
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server certificate")
        .to_vec();
    (s, leaf)
}

fn tcp(port: u16) -> TcpStream {
    let t = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(10))).ok();
    t
}

impl Client {
    /// Implicit TLS: returns the client (greeting read) and the leaf certificate.
    fn implicit(port: u16, config: &Arc<rustls::ClientConfig>) -> (Client, Vec<u8>) {
        let (s, leaf) = handshake(tcp(port), config);
        let mut c = Client {
            s,
            buf: Vec::new(),
            tag: 0,
        };
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        (c, leaf)
    }

    /// STARTTLS on the cleartext port: the leaf certificate it presents.
    fn starttls_leaf(port: u16, config: &Arc<rustls::ClientConfig>) -> Vec<u8> {
        let mut t = tcp(port);
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        // The greeting, then the tagged OK: read byte by byte so nothing of the TLS
        // stream that follows is swallowed.
        let mut read_line = |t: &mut TcpStream| {
            got.clear();
            while !got.ends_with(b"\r\n") {
                assert_eq!(t.read(&mut byte).expect("read"), 1, "closed");
                got.push(byte[0]);
            }
            String::from_utf8_lossy(&got).into_owned()
        };
        assert!(read_line(&mut t).starts_with("* OK"));
        t.write_all(b"s1 STARTTLS\r\n").expect("send");
        loop {
            let l = read_line(&mut t);
            if l.starts_with("s1 ") {
                assert!(l.starts_with("s1 OK"), "{l}");
                break;
            }
        }
        handshake(t, config).1
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return String::from_utf8_lossy(&l).into_owned();
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command; returns (untagged lines, tagged status).
    fn command(&mut self, cmd: &str) -> (Vec<String>, String) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.s
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .expect("send");
        self.s.flush().expect("flush");
        let mut untagged = Vec::new();
        loop {
            let l = self.line();
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                return (untagged, rest.to_string());
            }
            untagged.push(l);
        }
    }

    fn ok(&mut self, cmd: &str) -> Vec<String> {
        let (u, st) = self.command(cmd);
        assert!(st.starts_with("OK"), "{cmd} -> {st}");
        u
    }
}

/// The leaf a new implicit-TLS connection gets.
fn served(server: &TestServer, config: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    Client::implicit(server.imaps_port, config).1
}

/// Waits until new connections get `want`, within [`RELOAD_BOUND`].
fn wait_for(server: &TestServer, config: &Arc<rustls::ClientConfig>, want: &[u8], what: &str) {
    let deadline = Instant::now() + RELOAD_BOUND;
    while served(server, config) != want {
        assert!(
            Instant::now() < deadline,
            "{what}: still the old certificate after {RELOAD_BOUND:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the server log contains `text` `n` times, within [`RELOAD_BOUND`].
fn wait_log(server: &TestServer, text: &str, n: usize) {
    let deadline = Instant::now() + RELOAD_BOUND;
    while server.log().matches(text).count() < n {
        assert!(
            Instant::now() < deadline,
            "no {text:?} (x{n}) in the log within {RELOAD_BOUND:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const NOT_YET: &str = "not a usable pair yet";

#[test]
fn certificate_files_are_reloaded_without_a_signal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new();
    let client = ca.client_config();
    let certbot = Certbot::new(tmp.path());
    let (chain1, key1, leaf1) = ca.issue(1);
    certbot.write(1, &chain1, &key1);
    certbot.link("fullchain", 1);
    certbot.link("privkey", 1);
    let server = TestServer::start_kind(
        Kind::Nestbox,
        Options {
            tls_files: Some((certbot.cert(), certbot.key())),
            ..Options::default()
        },
    );

    // A session opened on the first certificate, with a message to FETCH later.
    let (mut old, leaf) = Client::implicit(server.imaps_port, &client);
    assert_eq!(leaf, leaf1);
    old.ok(&format!("LOGIN {USER} {PASSWORD}"));
    let msg = "Subject: kept\r\n\r\nstill here\r\n";
    {
        old.tag += 1;
        let line = format!("t{} APPEND INBOX {{{}+}}\r\n{msg}\r\n", old.tag, msg.len());
        old.s.write_all(line.as_bytes()).expect("append");
        let tag = format!("t{} OK", old.tag);
        while !old.line().starts_with(&tag) {}
    }
    old.ok("SELECT INBOX");

    // certbot, half way: new files, the certificate link swapped, the key link not yet.
    // The mismatching pair is not loaded and is reported once, however many looks pass.
    let (chain2, key2, leaf2) = ca.issue(2);
    certbot.write(2, &chain2, &key2);
    certbot.link("fullchain", 2);
    wait_log(&server, NOT_YET, 1);
    std::thread::sleep(Duration::from_secs(6)); // at least one more look at the files
    assert_eq!(served(&server, &client), leaf1, "half-renewed pair served");
    assert_eq!(server.log().matches(NOT_YET).count(), 1, "{}", server.log());

    // The key link follows: new connections get certificate 2, implicit TLS and STARTTLS.
    certbot.link("privkey", 2);
    wait_for(&server, &client, &leaf2, "certbot renewal");
    assert_eq!(Client::starttls_leaf(server.imap_port, &client), leaf2);
    assert!(
        server.log().contains("TLS certificate reloaded"),
        "{}",
        server.log()
    );

    // Plain files rewritten in place (same inodes), key first.
    let (chain3, key3, leaf3) = ca.issue(3);
    fs::write(certbot.archive.join("privkey2.pem"), &key3).expect("rewrite key");
    fs::write(certbot.archive.join("fullchain2.pem"), &chain3).expect("rewrite cert");
    wait_for(&server, &client, &leaf3, "in-place rewrite");

    // SIGHUP still reloads at once.
    let (chain4, key4, leaf4) = ca.issue(4);
    fs::write(certbot.archive.join("privkey2.pem"), &key4).expect("rewrite key");
    fs::write(certbot.archive.join("fullchain2.pem"), &chain4).expect("rewrite cert");
    let pid = server.pid().expect("pid") as libc::pid_t;
    // SAFETY: kill(2) with SIGHUP on the server process this test started.
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    wait_log(&server, "(SIGHUP)", 1);
    assert_eq!(served(&server, &client), leaf4);
    assert_eq!(Client::starttls_leaf(server.imap_port, &client), leaf4);

    // The session from before every reload still works.
    old.ok("NOOP");
    let fetched = old.ok("FETCH 1 BODY[TEXT]");
    assert!(
        fetched.iter().any(|l| l.contains("BODY[TEXT] {12}")),
        "{fetched:?}"
    );
    assert!(fetched.iter().any(|l| l == "still here"), "{fetched:?}");
    let (_, st) = old.command("LOGOUT");
    assert!(st.starts_with("OK"), "{st}");
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}
