//! The one way integration tests start an IMAP and POP3 server: [`TestServer`].
//!
//! Owns: a throwaway directory per server (config, test CA and server certificate made with
//! `rcgen`, Dovecot-format passwd-file, the users' Maildirs), starting the server process on
//! free 127.0.0.1 ports (IMAP and POP3, each cleartext and implicit TLS), waiting for its
//! `* OK` IMAP greeting, and stopping it by PID (SIGTERM, then SIGKILL after a bounded wait) on
//! drop; and the small blocking clients tests check a server with ([`ImapClient`],
//! [`Pop3Client`]).
//!
//! The server is the built `nestbox` binary. Setting `NESTBOX_TEST_SERVER=dovecot` starts
//! Debian's Dovecot on the same directory layout instead, which is how the suites themselves are
//! validated against a reference implementation and how the Dovecot-compatibility fixture was
//! produced. Nothing here talks to any address but 127.0.0.1; every wait has a timeout.
//!
//! Never: leave a server running after the test (Drop stops it), kill anything it did not start,
//! or read anything outside its own temp dir except `tests/fixtures/`.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod deflate;
pub mod dovecot_pop3;
mod pop3;
pub mod postfix;
#[allow(unused_imports)] // not every test binary uses every helper
pub use pop3::{Pop3Client, crlf, retr_form};

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Login name of the default test user.
pub const USER: &str = "alice";
/// Password of the default test user (stored as `{PLAIN}` in the passwd-file).
pub const PASSWORD: &str = "secret";
/// A second user, for isolation checks.
pub const USER2: &str = "bob";
/// Password of [`USER2`].
pub const PASSWORD2: &str = "hunter2";

/// How long a server may take to print its greeting after start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopped server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which implementation a [`TestServer`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The `nestbox` binary built by cargo for this test run.
    Nestbox,
    /// Debian's `dovecot` (reference implementation, for validating the suites).
    Dovecot,
}

impl Kind {
    /// The implementation selected by `NESTBOX_TEST_SERVER` (default: nestbox).
    pub fn from_env() -> Kind {
        match std::env::var("NESTBOX_TEST_SERVER").as_deref() {
            Ok("dovecot") => Kind::Dovecot,
            _ => Kind::Nestbox,
        }
    }
}

/// What a test wants from its server.
#[derive(Clone, Debug)]
pub struct Options {
    /// `auth.plaintext_on_loopback`: whether LOGIN without TLS is allowed from 127.0.0.1.
    pub plaintext_on_loopback: bool,
    /// A directory copied recursively to the default user's Maildir before the server starts.
    pub seed_maildir: Option<PathBuf>,
    /// `limits.max_literal_bytes` (nestbox only).
    pub max_literal_bytes: Option<u64>,
    /// `limits.login_timeout`, e.g. `"2s"` (nestbox only).
    pub login_timeout: Option<&'static str>,
    /// `limits.max_connections_per_user` (nestbox only).
    pub max_connections_per_user: Option<usize>,
    /// The `[auth]` and `[mail]` sections, whole, instead of the default passwd-file users
    /// (nestbox only; e.g. PAM users, or passwd-file users with uids). `{dir}` in it stands
    /// for the server's directory.
    pub auth_and_mail: Option<String>,
    /// `tls.cert` and `tls.key` to configure instead of the generated pair (e.g. certbot's
    /// `live/` symlinks made by the test); the test owns them.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// More `[limits]` lines, e.g. `"max_unauthenticated = 3\n"` (nestbox only).
    pub extra_limits: Option<&'static str>,
    /// Where the server's temp dir (config, mail) is made instead of the default temp dir,
    /// e.g. a tmpfs for tests that store hundreds of MB.
    pub temp_parent: Option<PathBuf>,
    /// More `[pop3]` lines, e.g. `"dele = \"flag\"\n"` (nestbox only).
    pub pop3_extra: Option<String>,
    /// passwd-file extra fields per user (the line's 8th field), e.g.
    /// `("bob", "nestbox_protocols=imap")`.
    pub passwd_extra: Vec<(&'static str, &'static str)>,
    /// More `[mail]` lines, e.g. `"quota = \"1M\"\n"` (nestbox only).
    pub mail_extra: Option<String>,
    /// Listen on `[::]` (IPv6 and, as IPv4-mapped addresses, IPv4 clients) instead of
    /// 127.0.0.1, on the same ports (nestbox only).
    pub dual_stack: bool,
    /// The `[proxy]` section's lines (nestbox only); `{imap}`, `{imaps}`, `{pop3}` and
    /// `{pop3s}` in it stand for the listeners' addresses. With `{imap}` in it the
    /// cleartext IMAP listener is taken to expect PROXY headers: the readiness probe then
    /// opens with one.
    pub proxy: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            plaintext_on_loopback: true,
            seed_maildir: None,
            max_literal_bytes: None,
            login_timeout: None,
            max_connections_per_user: None,
            auth_and_mail: None,
            tls_files: None,
            extra_limits: None,
            temp_parent: None,
            pop3_extra: None,
            passwd_extra: Vec::new(),
            mail_extra: None,
            dual_stack: false,
            proxy: None,
        }
    }
}

/// A running IMAP server in its own temp dir; stopped (by PID) when dropped.
pub struct TestServer {
    /// Which implementation runs.
    pub kind: Kind,
    /// The temp dir holding config, certificates, users and mail.
    pub dir: PathBuf,
    /// Cleartext (STARTTLS) IMAP port on 127.0.0.1.
    pub imap_port: u16,
    /// Implicit-TLS IMAP port on 127.0.0.1.
    pub imaps_port: u16,
    /// Cleartext (STLS) POP3 port on 127.0.0.1.
    pub pop3_port: u16,
    /// Implicit-TLS POP3 port on 127.0.0.1.
    pub pop3s_port: u16,
    /// PEM file of the CA that signed the server certificate (SANs: localhost, 127.0.0.1).
    pub ca_file: PathBuf,
    /// The config file the server was started with.
    pub config_file: PathBuf,
    options: Options,
    cert_file: PathBuf,
    key_file: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

/// How a started server came up.
enum Ready {
    Yes,
    /// It could not bind a port: between [`free_ports`] releasing it and the server binding
    /// it, another process (a parallel test, another suite on the machine) took it.
    PortTaken,
}

/// How often a server whose port was taken is started again on new ports.
const PORT_TRIES: usize = 5;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/` in the repository.
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("tests").join("fixtures")
}

/// True when a peer program is on PATH. When it is not: under CI (`CI` set) this panics so the
/// run fails; elsewhere it prints why the test is skipped and returns false.
pub fn require_tool(program: &str, why: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || Path::new(program).is_file();
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{program} is required under CI ({why}); .ci/run installs it");
    }
    eprintln!("SKIPPED: {program} not found ({why}); install it to run this test");
    false
}

/// Dovecot's master binary, if installed.
/// Whether this process runs as root, for a test that needs it (to start Postfix, to run a
/// program as another user): under `CI` it must (the assertion fails the test); elsewhere the
/// test is skipped, saying `why` it needs root.
pub fn require_root(why: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "must run as root under CI: {why}"
    );
    eprintln!("SKIPPED: {why} needs root");
    false
}

pub fn dovecot_binary() -> Option<PathBuf> {
    ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// `N` distinct free ports: all listeners are held until every port is
/// known, so the kernel cannot hand out the same port twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local_addr").port())
}

/// Copy a directory tree (files and directories only), keeping file mtimes, since Maildir
/// INTERNALDATE is the file's mtime.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = entry.metadata().expect("metadata");
        if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy file");
            let mtime = filetime::FileTime::from_last_modification_time(&meta);
            filetime::set_file_mtime(&dst, mtime).expect("set mtime");
        }
    }
}

/// Copy a fixture Maildir into place. Git keeps neither empty directories nor mtimes, so this
/// recreates `cur/ new/ tmp/` for the root and every `.Folder`, and sets each message file's
/// mtime (its INTERNALDATE) from the leading `<secs>.` of its name.
pub fn seed_maildir(fixture: &Path, maildir: &Path) {
    copy_tree(fixture, maildir);
    let mut dirs = vec![maildir.to_path_buf()];
    for e in fs::read_dir(maildir).expect("read maildir").flatten() {
        if e.file_name().to_string_lossy().starts_with('.') && e.path().is_dir() {
            dirs.push(e.path());
        }
    }
    for d in dirs {
        for sub in ["cur", "new", "tmp"] {
            let sd = d.join(sub);
            fs::create_dir_all(&sd).expect("create cur/new/tmp");
            for f in fs::read_dir(&sd).expect("read dir").flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Some(secs) = name.split('.').next().and_then(|s| s.parse::<i64>().ok()) {
                    let t = filetime::FileTime::from_unix_time(secs, 0);
                    filetime::set_file_mtime(f.path(), t).expect("set mtime");
                }
            }
        }
    }
}

/// Write a CA and a server certificate signed by it; returns (ca.pem, cert.pem, key.pem).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nestbox test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    // mbsync 1.4 matches the host only against DNS names, so 127.0.0.1 is also a DNS SAN.
    params.subject_alt_names.push(rcgen::SanType::DnsName(
        "127.0.0.1".to_string().try_into().expect("ia5 string"),
    ));
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");

    let ca_file = dir.join("ca.pem");
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    fs::write(&ca_file, ca.pem()).expect("write ca.pem");
    // The chain the server presents: leaf first, then the CA.
    fs::write(&cert_file, format!("{}{}", cert.pem(), ca.pem())).expect("write cert.pem");
    fs::write(&key_file, key.serialize_pem()).expect("write key.pem");
    (ca_file, cert_file, key_file)
}

impl TestServer {
    /// Start the server chosen by `NESTBOX_TEST_SERVER` with default options.
    pub fn start() -> TestServer {
        Self::start_with(Options::default())
    }

    /// Start the server chosen by `NESTBOX_TEST_SERVER` with these options.
    pub fn start_with(options: Options) -> TestServer {
        Self::start_kind(Kind::from_env(), options)
    }

    /// Start a given implementation.
    pub fn start_kind(kind: Kind, options: Options) -> TestServer {
        let mut builder = tempfile::Builder::new();
        builder.prefix("nestbox-test-");
        let tmp = match &options.temp_parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let (ca_file, mut cert_file, mut key_file) = make_certificates(&dir);
        if let Some((c, k)) = &options.tls_files {
            (cert_file, key_file) = (c.clone(), k.clone());
        }
        let extra = |user: &str| {
            let fields: Vec<&str> = options
                .passwd_extra
                .iter()
                .filter(|(u, _)| *u == user)
                .map(|(_, e)| *e)
                .collect();
            fields.join(" ")
        };
        fs::write(
            dir.join("users"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}::::::{}\n{USER2}:{{PLAIN}}{PASSWORD2}::::::{}\n",
                extra(USER),
                extra(USER2)
            ),
        )
        .expect("write users");
        for user in [USER, USER2] {
            let md = dir.join("mail").join(user).join("Maildir");
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(md.join(sub)).expect("create Maildir");
            }
        }
        if let Some(seed) = &options.seed_maildir {
            seed_maildir(seed, &dir.join("mail").join(USER).join("Maildir"));
        }
        if kind == Kind::Nestbox && mail_owner().is_some() {
            // As root, nestbox serves these uid-less passwd-file users as
            // `mail.user` (never as root): the mail must be that user's.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
            give_to_mail_user(&dir.join("mail"));
        }
        let mut server = TestServer {
            kind,
            config_file: dir.join("unwritten"),
            dir,
            imap_port: 0,
            imaps_port: 0,
            pop3_port: 0,
            pop3s_port: 0,
            ca_file,
            options,
            cert_file,
            key_file,
            child: None,
            _tmp: tmp,
        };
        server.new_ports();
        server.spawn();
        server
    }

    /// Picks free ports and writes the config for them.
    fn new_ports(&mut self) {
        let [imap, imaps, pop3, pop3s] = free_ports::<4>();
        (self.imap_port, self.imaps_port) = (imap, imaps);
        (self.pop3_port, self.pop3s_port) = (pop3, pop3s);
        let ports = Ports {
            imap,
            imaps,
            pop3,
            pop3s,
        };
        let (dir, cert, key, o) = (&self.dir, &self.cert_file, &self.key_file, &self.options);
        self.config_file = match self.kind {
            Kind::Nestbox => write_nestbox_config(dir, &ports, cert, key, o),
            Kind::Dovecot => write_dovecot_config(dir, &ports, cert, key, o),
        };
    }

    /// The greeting that proves the server on our port is this one and not another test's
    /// that took the port meanwhile: nestbox greets with its `hostname`, made unique per
    /// server (see `write_nestbox_config`). Dovecot's greeting is left alone.
    fn greeting_token(&self) -> Option<String> {
        (self.kind == Kind::Nestbox).then(|| unique_hostname(&self.dir))
    }

    /// nestbox's `hostname` (config), which absolute IMAP URLs must name (CATENATE).
    pub fn hostname(&self) -> String {
        unique_hostname(&self.dir)
    }

    /// The default user's Maildir root (INBOX).
    pub fn maildir(&self) -> PathBuf {
        self.dir.join("mail").join(USER).join("Maildir")
    }

    /// The server's stderr/log file, for failure messages.
    /// Waits (up to `patience`) until the server's log holds `needle`; returns the log.
    pub fn wait_log(&self, needle: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "{needle:?} not logged:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        if let Ok(d) = fs::read_to_string(self.dir.join("dovecot.log")) {
            s.push_str(&d);
        }
        s
    }

    /// Starts the server; if its port was taken in the meantime, again on new ports.
    fn spawn(&mut self) {
        for _ in 0..PORT_TRIES {
            self.spawn_once();
            match self.wait_ready() {
                Ready::Yes => return,
                Ready::PortTaken => {
                    if let Some(mut child) = self.child.take() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    self.new_ports();
                }
            }
        }
        panic!(
            "no free ports after {PORT_TRIES} tries; log:\n{}",
            self.log()
        );
    }

    fn spawn_once(&mut self) {
        let log = fs::File::create(self.dir.join("server.log")).expect("server.log");
        let log2 = log.try_clone().expect("clone log");
        let mut cmd = match self.kind {
            Kind::Nestbox => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_nestbox"));
                c.arg("serve").arg("-c").arg(&self.config_file);
                c.env("RUST_LOG", "info").env("NO_COLOR", "1");
                c
            }
            Kind::Dovecot => {
                let bin = dovecot_binary().expect("dovecot is not installed");
                let mut c = Command::new(bin);
                c.arg("-F").arg("-c").arg(&self.config_file);
                c
            }
        };
        // Dates (INTERNALDATE) are shown in the server's zone: make it the same everywhere.
        cmd.env("TZ", "UTC");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd.spawn().expect("start server");
        self.child = Some(child);
    }

    fn wait_ready(&mut self) -> Ready {
        let deadline = Instant::now() + READY_TIMEOUT;
        let token = self.greeting_token();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = self.log();
                    if log.contains("Address already in use") {
                        return Ready::PortTaken;
                    }
                    panic!("server exited early with {status}; log:\n{log}");
                }
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.imap_port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                if self.options.proxy.is_some_and(|p| p.contains("{imap}")) {
                    let _ = s.write_all(b"PROXY UNKNOWN\r\n");
                }
                let mut line = String::new();
                let mut r = BufReader::new(&mut s);
                if r.read_line(&mut line).is_ok() && line.starts_with("* OK") {
                    let _ = s.write_all(b"z LOGOUT\r\n");
                    match &token {
                        // Another server answers on our port: ours cannot bind it, and
                        // exits (seen above on the next round).
                        Some(t) if !line.contains(t.as_str()) => {}
                        _ => return Ready::Yes,
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "server did not greet on 127.0.0.1:{} within {:?}; log:\n{}",
                    self.imap_port,
                    READY_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server process's PID (for `/proc` checks), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stop the server by PID: SIGTERM, wait up to a few seconds, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the PID of a child we spawned and have not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stop and start the same server on the same directory and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A cleartext connection to the IMAP port, greeting not yet read.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.imap_port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.set_write_timeout(Some(Duration::from_secs(10))).ok();
        s
    }

    /// A cleartext connection to the POP3 port, greeting not yet read.
    pub fn connect_pop3(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.pop3_port)).expect("connect POP3");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.set_write_timeout(Some(Duration::from_secs(10))).ok();
        s
    }

    /// A rustls client config that trusts only this server's test CA.
    pub fn tls_client_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(&self.ca_file).expect("ca.pem")
        {
            roots.add(cert.expect("CA certificate")).expect("add root");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        std::sync::Arc::new(config)
    }

    /// The environment a client subprocess (Python, mbsync scripts) needs to reach this server.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("IMAP_HOST".into(), "127.0.0.1".into()),
            ("IMAP_PORT".into(), self.imap_port.to_string()),
            ("IMAPS_PORT".into(), self.imaps_port.to_string()),
            ("POP3_PORT".into(), self.pop3_port.to_string()),
            ("POP3S_PORT".into(), self.pop3s_port.to_string()),
            ("IMAP_USER".into(), USER.into()),
            ("IMAP_PASSWORD".into(), PASSWORD.into()),
            ("IMAP_USER2".into(), USER2.into()),
            ("IMAP_PASSWORD2".into(), PASSWORD2.into()),
            ("IMAP_CA_FILE".into(), self.ca_file.display().to_string()),
            ("IMAP_MAILDIR".into(), self.maildir().display().to_string()),
            (
                "IMAP_SERVER_KIND".into(),
                format!("{:?}", self.kind).to_lowercase(),
            ),
            (
                "IMAP_PLAINTEXT_ON_LOOPBACK".into(),
                if self.options.plaintext_on_loopback {
                    "1"
                } else {
                    "0"
                }
                .into(),
            ),
        ]
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A host name for the greeting that no other test server has: its temp dir's name.
fn unique_hostname(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!("{name}.test.local")
}

/// The four listening ports of a server on 127.0.0.1.
struct Ports {
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
}

fn write_nestbox_config(
    dir: &Path,
    ports: &Ports,
    cert: &Path,
    key: &Path,
    o: &Options,
) -> PathBuf {
    let mut cfg = format!(
        r#"hostname = "{host}"
[imap]
listen = ["{addr}:{imap}"]
listen_tls = ["{addr}:{imaps}"]
[pop3]
listen = ["{addr}:{pop3}"]
listen_tls = ["{addr}:{pop3s}"]
{pop3_extra}[server]
control_socket = "{dir}/run/control"
[tls]
cert = "{cert}"
key = "{key}"
[auth]
backend = "passwd-file"
passwd_file = "{dir}/users"
plaintext_on_loopback = {plain}
[mail]
maildir = "{dir}/mail/%u/Maildir"
{mail_user}{mail_extra}"#,
        host = unique_hostname(dir),
        addr = if o.dual_stack { "[::]" } else { "127.0.0.1" },
        imap = ports.imap,
        imaps = ports.imaps,
        pop3 = ports.pop3,
        pop3s = ports.pop3s,
        pop3_extra = o.pop3_extra.as_deref().unwrap_or(""),
        cert = cert.display(),
        key = key.display(),
        dir = dir.display(),
        plain = o.plaintext_on_loopback,
        mail_user = if mail_owner().is_some() {
            format!("user = \"{MAIL_OWNER}\"\n")
        } else {
            String::new()
        },
        mail_extra = o.mail_extra.as_deref().unwrap_or(""),
    );
    if let Some(sections) = &o.auth_and_mail {
        let start = cfg.find("[auth]").expect("auth section");
        cfg.truncate(start);
        cfg.push_str(&sections.replace("{dir}", &dir.display().to_string()));
        cfg.push('\n');
    }
    if o.max_literal_bytes.is_some()
        || o.login_timeout.is_some()
        || o.max_connections_per_user.is_some()
        || o.extra_limits.is_some()
    {
        cfg.push_str("[limits]\n");
    }
    if let Some(lines) = o.extra_limits {
        cfg.push_str(lines);
    }
    if let Some(n) = o.max_connections_per_user {
        cfg.push_str(&format!("max_connections_per_user = {n}\n"));
    }
    if let Some(t) = o.login_timeout {
        cfg.push_str(&format!("login_timeout = \"{t}\"\n"));
    }
    if let Some(n) = o.max_literal_bytes {
        cfg.push_str(&format!("max_literal_bytes = \"{n}\"\n"));
    }
    if let Some(lines) = o.proxy {
        let addr = if o.dual_stack { "[::]" } else { "127.0.0.1" };
        cfg.push_str("[proxy]\n");
        cfg.push_str(
            &lines
                .replace("{imaps}", &format!("{addr}:{}", ports.imaps))
                .replace("{imap}", &format!("{addr}:{}", ports.imap))
                .replace("{pop3s}", &format!("{addr}:{}", ports.pop3s))
                .replace("{pop3}", &format!("{addr}:{}", ports.pop3)),
        );
        cfg.push('\n');
    }
    let path = dir.join("nestbox.toml");
    fs::write(&path, cfg).expect("write nestbox.toml");
    path
}

/// The invoking user's name, uid and gid: Dovecot runs all its processes as this user so that
/// the same config works as root (CI) and as a developer.
fn current_user() -> (String, u32, u32) {
    // SAFETY: getuid/getgid cannot fail; getpwuid returns a pointer into static storage that we
    // copy out of immediately, in a single-threaded section of test setup.
    unsafe {
        let uid = libc::getuid();
        let gid = libc::getgid();
        let pw = libc::getpwuid(uid);
        let name = if pw.is_null() {
            "root".to_string()
        } else {
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned()
        };
        (name, uid, gid)
    }
}

/// uid and gid of a system user.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam with a valid C string; the result is copied out at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// The system user that owns the test users' mail when the tests run as root (CI): nestbox
/// never serves mail as root, so its test config sets `mail.user` to this user. `None` when
/// not root (mail then belongs to the invoking user, whom nestbox runs as).
pub fn mail_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    lookup_user(MAIL_OWNER)
}

/// The name of [`mail_owner`].
pub const MAIL_OWNER: &str = "nobody";

/// Gives a directory tree that a test made inside a Maildir (a folder, say) to the user the
/// server's worker runs as, as a mail client running as that user would have made it.
/// Does nothing when not root.
pub fn give_to_mail_user(path: &Path) {
    if let Some((uid, gid)) = mail_owner() {
        chown_tree(path, uid, gid);
    }
}

/// `pid` and all its descendants (a server's front and its workers).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised command name.
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|x| x.parse::<u32>().ok())
        {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        out.extend(children.get(&out[i]).cloned().unwrap_or_default());
        i += 1;
    }
    out
}

/// Resident memory of a server in KiB: `pid` (the front) and its workers (after login a
/// session's memory is its worker's).
pub fn tree_rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|p| {
            fs::read_to_string(format!("/proc/{p}/status"))
                .ok()
                .and_then(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or(0)
        })
        .sum()
}

/// chown -R (test directories only).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() {
        for e in fs::read_dir(path).expect("read_dir").flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// Debian's `dovecot-pop3d` installs this; without it Dovecot serves IMAP only.
const DOVECOT_POP3: &str = "/usr/lib/dovecot/pop3";

/// Whether Dovecot's POP3 server is installed (`dovecot-pop3d`).
pub fn dovecot_has_pop3() -> bool {
    Path::new(DOVECOT_POP3).is_file()
}

fn write_dovecot_config(
    dir: &Path,
    ports: &Ports,
    cert: &Path,
    key: &Path,
    o: &Options,
) -> PathBuf {
    let (me, uid, gid) = current_user();
    // Dovecot refuses to run its login and internal processes as root; as root (CI) use the
    // unprivileged users Debian's package creates, and let them traverse the temp dir.
    let (login_user, internal_user) = if uid == 0 {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        ("dovenull".to_string(), "dovecot".to_string())
    } else {
        (me.clone(), me.clone())
    };
    let user = internal_user.clone();
    // Dovecot never runs mail processes as uid 0: as root, mail belongs to the `dovecot` user.
    let (uid, gid) = if uid == 0 {
        let ids = lookup_user("dovecot").expect("user dovecot (from Debian's dovecot-core)");
        chown_tree(&dir.join("mail"), ids.0, ids.1);
        ids
    } else {
        (uid, gid)
    };
    let d = dir.display();
    for sub in ["run", "state"] {
        fs::create_dir_all(dir.join(sub)).expect("dovecot dirs");
    }
    let mut group = internal_user.clone();
    if uid != 0 {
        // SAFETY: getgrgid returns static storage copied out at once.
        unsafe {
            let gr = libc::getgrgid(gid);
            if !gr.is_null() {
                group = std::ffi::CStr::from_ptr((*gr).gr_name)
                    .to_string_lossy()
                    .into_owned();
            }
        }
    }
    let cfg = format!(
        r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap{pop3_protocol}
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = {dpa}
login_trusted_networks =
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:{d}/mail/%u/Maildir
mail_uid = {uid}
mail_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \Drafts
  }}
  mailbox Sent {{
    special_use = \Sent
  }}
  mailbox Trash {{
    special_use = \Trash
  }}
  mailbox Junk {{
    special_use = \Junk
  }}
  mailbox Archive {{
    special_use = \Archive
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
# pop3_uidl_format stays Dovecot's default (%08Xu%08Xv in 2.3): nestbox must serve the
# UIDLs a user's POP3 client already has from a default Dovecot.
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
# COMPRESS=DEFLATE (RFC 4978) is Dovecot's imap_zlib plugin, which needs zlib (Debian's
# dovecot-imapd 2.3 ships both).
mail_plugins = $mail_plugins zlib
protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
}}
service stats {{
  unix_listener stats-reader {{
    user = {user}
  }}
  unix_listener stats-writer {{
    user = {user}
  }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
        imap = ports.imap,
        imaps = ports.imaps,
        pop3 = ports.pop3,
        pop3s = ports.pop3s,
        pop3_protocol = if dovecot_has_pop3() { " pop3" } else { "" },
        dpa = if o.plaintext_on_loopback { "no" } else { "yes" },
    );
    let path = dir.join("dovecot.conf");
    fs::write(&path, cfg).expect("write dovecot.conf");
    path
}

/// A minimal blocking IMAP client for test setup and checks (cleartext loopback LOGIN).
/// Responses are "logical lines": a literal `{N}` is read with its bytes and the line goes on.
pub struct ImapClient {
    stream: TcpStream,
    buf: Vec<u8>,
    tag: u32,
    /// How long a read waits for the server (30 s unless set).
    timeout: Duration,
}

impl ImapClient {
    /// Connect to the server's cleartext port, read the greeting and log in as `user`.
    pub fn login(server: &TestServer, user: &str, password: &str) -> ImapClient {
        let mut c = ImapClient {
            stream: server.connect(),
            buf: Vec::new(),
            tag: 0,
            timeout: Duration::from_secs(30),
        };
        let greeting = c.read_line().expect("greeting");
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c.ok(&format!("LOGIN {user} {password}"));
        c
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        self.stream.set_read_timeout(Some(self.timeout)).ok();
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// One logical line without its final CRLF, or None when the server closed.
    pub fn read_line(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let i = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if !self.fill() {
                    return None;
                }
            };
            let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
            out.extend_from_slice(&line);
            let lit = std::str::from_utf8(&line)
                .ok()
                .and_then(|s| s.strip_suffix('}'))
                .and_then(|s| s.rfind('{').map(|o| s[o + 1..].to_string()))
                .and_then(|n| n.parse::<usize>().ok());
            match lit {
                Some(n) => {
                    out.extend_from_slice(b"\r\n");
                    while self.buf.len() < n {
                        if !self.fill() {
                            return None;
                        }
                    }
                    out.extend(self.buf.drain(..n));
                }
                None => return Some(String::from_utf8_lossy(&out).into_owned()),
            }
        }
    }

    /// The next logical line if the server sends one within `d` (for
    /// unsolicited responses: IDLE, NOTIFY); `None` otherwise.
    pub fn read_line_within(&mut self, d: Duration) -> Option<String> {
        let saved = self.timeout;
        self.timeout = d.max(Duration::from_millis(1));
        let line = self.read_line();
        self.timeout = saved;
        line
    }

    /// Sends bytes as they are (no tag added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Send a command; return (untagged lines, tagged status line).
    pub fn command(&mut self, cmd: &str) -> (Vec<String>, String) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.stream
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .expect("send command");
        let mut untagged = Vec::new();
        loop {
            let line = self
                .read_line()
                .unwrap_or_else(|| panic!("connection closed during {cmd}"));
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return (untagged, rest.to_string());
            }
            untagged.push(line);
        }
    }

    /// Send a command that must succeed; return its untagged lines.
    pub fn ok(&mut self, cmd: &str) -> Vec<String> {
        let (untagged, status) = self.command(cmd);
        assert!(status.starts_with("OK"), "{cmd} -> {status}");
        untagged
    }

    /// `UID FETCH 1:* (UID FLAGS)` of a selected mailbox as (uid, sorted flags) pairs.
    pub fn uids_and_flags(&mut self) -> Vec<(u32, Vec<String>)> {
        let re_uid = regex::Regex::new(r"UID (\d+)").expect("re");
        let re_flags = regex::Regex::new(r"FLAGS \(([^)]*)\)").expect("re");
        let mut out = Vec::new();
        for l in self.ok("UID FETCH 1:* (UID FLAGS)") {
            if !l.contains(" FETCH ") {
                continue;
            }
            let uid = re_uid.captures(&l).and_then(|c| c[1].parse().ok());
            let flags = re_flags.captures(&l).map(|c| {
                let mut f: Vec<String> = c[1]
                    .split_whitespace()
                    .filter(|f| *f != "\\Recent")
                    .map(str::to_string)
                    .collect();
                f.sort();
                f
            });
            if let (Some(uid), Some(flags)) = (uid, flags) {
                out.push((uid, flags));
            }
        }
        out.sort();
        out
    }

    /// APPEND as Python's `imaplib` sends it: the command line, then (after the continuation)
    /// the literal and its closing CRLF in two separate writes. With Nagle's algorithm on (the
    /// default for this socket), the 2-byte CRLF waits until the server has acknowledged the
    /// literal. Returns the tagged status without the tag.
    pub fn append_split_writes(&mut self, mailbox: &str, msg: &[u8]) -> String {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.stream
            .write_all(format!("{tag} APPEND {mailbox} {{{}}}\r\n", msg.len()).as_bytes())
            .expect("send APPEND");
        let cont = self.read_line().expect("continuation");
        assert!(cont.starts_with('+'), "no continuation: {cont}");
        self.stream.write_all(msg).expect("send literal");
        self.stream.write_all(b"\r\n").expect("send CRLF");
        loop {
            let line = self.read_line().expect("connection closed during APPEND");
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return rest.to_string();
            }
        }
    }

    /// The same APPEND with the literal and its CRLF in one write: the control for
    /// [`ImapClient::append_split_writes`] (no second write waits for an ACK).
    pub fn append_one_write(&mut self, mailbox: &str, msg: &[u8]) -> String {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.stream
            .write_all(format!("{tag} APPEND {mailbox} {{{}}}\r\n", msg.len()).as_bytes())
            .expect("send APPEND");
        let cont = self.read_line().expect("continuation");
        assert!(cont.starts_with('+'), "no continuation: {cont}");
        let mut data = msg.to_vec();
        data.extend_from_slice(b"\r\n");
        self.stream.write_all(&data).expect("send literal");
        loop {
            let line = self.read_line().expect("connection closed during APPEND");
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return rest.to_string();
            }
        }
    }

    /// `LOGOUT`, ignoring the answer.
    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }
}

/// A blocking TCP connection to `to` from the local address `from` (e.g. 127.0.0.2: Linux
/// routes all of 127.0.0.0/8 to loopback), for tests that need a client address other than
/// 127.0.0.1. Panics after a bounded wait.
pub fn connect_from(from: std::net::IpAddr, to: std::net::SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(async {
        let sock = if from.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .expect("socket");
        sock.bind(std::net::SocketAddr::new(from, 0))
            .expect("bind the client's address");
        tokio::time::timeout(Duration::from_secs(10), sock.connect(to))
            .await
            .expect("connect timed out")
            .expect("connect")
    });
    let s = s.into_std().expect("std stream");
    s.set_nonblocking(false).expect("blocking");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s
}

/// How a command run by [`run_to_end`] ended and what it printed.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` (stdin empty, stdout and stderr captured) to its end; a run longer than
/// `patience` is killed and fails the test. The outputs are read while it runs (a thread
/// waits for it), so output larger than a pipe's buffer cannot stall it.
pub fn run_to_end(cmd: &mut Command, patience: Duration) -> Finished {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(patience) {
        Ok(out) => {
            let out = out.unwrap_or_else(|e| panic!("wait for {what}: {e}"));
            Finished {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            // SAFETY: signalling our own child, which has not been reaped (the waiting
            // thread has not returned).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{what} did not exit within {patience:?}");
        }
    }
}

/// On a connected stream (read timeout set by the caller): reads the greeting, then sends
/// `lines` one at a time and takes each one's final answer (untagged IMAP lines skipped; a
/// POP3 answer is one line). Returns the greeting and the answers, line ends trimmed.
pub fn converse(s: TcpStream, lines: &[&str]) -> (String, Vec<String>) {
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut greeting = String::new();
    r.read_line(&mut greeting).expect("greeting");
    let mut answers = Vec::new();
    let mut line = String::new();
    for l in lines {
        w.write_all(format!("{l}\r\n").as_bytes()).expect("send");
        loop {
            line.clear();
            r.read_line(&mut line).expect("answer");
            if !line.starts_with("* ") {
                break;
            }
        }
        answers.push(line.trim_end().to_string());
    }
    (greeting.trim_end().to_string(), answers)
}
