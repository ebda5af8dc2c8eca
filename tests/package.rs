//! The Debian package, proven (issue 20): the `.deb` passes lintian without errors, carries a
//! stripped binary, clean Depends and one sysusers call; `dpkg -i` installs it on this machine;
//! `nestbox check-config` accepts the shipped config (and warns of the snakeoil certificate);
//! the server runs as the unit runs it (root, the unit's ExecStart), a system user made here
//! gets mail from Postfix's local delivery into `~/Maildir` and reads it through PAM (the
//! shipped /etc/pam.d/nestbox) over IMAPS; `dpkg -P` then leaves no file of the package, no
//! /etc/nestbox and no nestbox group, and the user's mail as it was.
//!
//! Installs system-wide, so it runs only where asked: under CI, or with
//! `NESTBOX_TEST_PACKAGE=1` (build.rs marks it ignored elsewhere); it needs root, dpkg-deb,
//! lintian, cargo-deb and Postfix. It refuses to start where a nestbox package or a nestbox
//! group already exists (it would purge them), and its guards stop the server and Postfix,
//! purge the package and delete the user even when it fails.
//!
//! The package is `$NESTBOX_DEB` when set (`.ci/run` builds it once with `cargo deb`), else
//! built here with `cargo deb` (a release build: minutes). The server listens on free
//! 127.0.0.1 ports: its config is the shipped one with listener lines added, nothing else, so
//! the ports of the installed config (143, 993, 110, 995) are never bound.
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHIPPED_CONFIG: &str = "/etc/nestbox/nestbox.toml";
const UNIT: &str = "/usr/lib/systemd/system/nestbox.service";
const SNAKEOIL_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
const PASSWORD: &str = "Pkg-test-9";

/// Runs `cmd`, failing the test with its output unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

fn package_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "nestbox"])
        .output()
        .map(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("not-installed")
        })
        .unwrap_or(false)
}

fn group_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The package this test installed: purged on drop if still there.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if package_installed() {
            let _ = Command::new("dpkg").args(["-P", "nestbox"]).output();
        }
    }
}

/// A system user with a password and a home in `base`, deleted on drop.
struct SystemUser {
    name: String,
    home: PathBuf,
}

impl SystemUser {
    fn new(base: &Path) -> SystemUser {
        let name = format!("nbpkg{}", std::process::id() % 100_000);
        let home = base.join(&name);
        run(Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", "--user-group"])
            .arg("--home-dir")
            .arg(&home)
            .arg(&name));
        let user = SystemUser { name, home };
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        chpasswd
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{}:{PASSWORD}\n", user.name).as_bytes())
            .expect("write chpasswd");
        assert!(chpasswd.wait().expect("chpasswd").success());
        user
    }

    fn maildir(&self) -> PathBuf {
        self.home.join("Maildir")
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg("-r").arg(&self.name).output();
        let _ = fs::remove_dir_all(&self.home);
    }
}

/// The server process: SIGTERM on drop, SIGKILL if it is still there after a bounded wait.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the PID of our own child, which has not been reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The .deb to test: `$NESTBOX_DEB`, or one built now with `cargo deb`.
fn the_deb() -> PathBuf {
    if let Some(deb) = std::env::var_os("NESTBOX_DEB").filter(|v| !v.is_empty()) {
        let deb = PathBuf::from(deb);
        assert!(deb.is_file(), "NESTBOX_DEB={} is not a file", deb.display());
        return deb;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = stdout(
        Command::new(cargo)
            .arg("deb")
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    // cargo-deb prints the path of each package it wrote (the .ddeb of the symbols, the .deb).
    let deb = out
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no .deb in cargo deb's output: {out}"));
    PathBuf::from(deb)
}

/// The names in a Depends field (each alternative's, versions dropped).
fn depends_names(field: &str) -> Vec<String> {
    field
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `shipped` with the listeners put on the given 127.0.0.1 ports: lines added below `[imap]`
/// and `[pop3]` (which the shipped config leaves commented), nothing else changed.
fn on_test_ports(shipped: &str, ports: [u16; 4]) -> String {
    let [imap, imaps, pop3, pop3s] = ports;
    let mut out = String::new();
    let mut seen = 0;
    for line in shipped.lines() {
        out.push_str(line);
        out.push('\n');
        let (plain, tls) = match line.trim() {
            "[imap]" => (imap, imaps),
            "[pop3]" => (pop3, pop3s),
            _ => continue,
        };
        seen += 1;
        out.push_str(&format!(
            "listen = [\"127.0.0.1:{plain}\"]\nlisten_tls = [\"127.0.0.1:{tls}\"]\n"
        ));
    }
    assert_eq!(
        seen, 2,
        "[imap] and [pop3] in the shipped config:\n{shipped}"
    );
    out
}

/// A rustls client that trusts exactly the snakeoil certificate, for the name it was made for.
fn snakeoil_client() -> (
    Arc<rustls::ClientConfig>,
    rustls_pki_types::ServerName<'static>,
) {
    use rustls_pki_types::pem::PemObject;
    let cert = rustls_pki_types::CertificateDer::from_pem_file(SNAKEOIL_CERT).expect("snakeoil");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("snakeoil as the one root");
    // make-ssl-cert puts the host name it was made for in the subject's CN and the SAN.
    let subject = stdout(Command::new("openssl").args([
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "multiline",
        "-in",
        SNAKEOIL_CERT,
    ]));
    let name = subject
        .lines()
        .find_map(|l| l.trim().strip_prefix("commonName"))
        .and_then(|v| v.split('=').nth(1))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no CN in {subject}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name).expect("server name");
    (Arc::new(config), name)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Sends `tag command` and returns every line up to and including the tagged reply.
fn command(conn: &mut BufReader<Tls>, tag: &str, cmd: &str) -> Vec<String> {
    conn.get_mut()
        .write_all(format!("{tag} {cmd}\r\n").as_bytes())
        .expect("send");
    conn.get_mut().flush().expect("flush");
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).expect("read reply");
        assert!(n > 0, "connection closed after {cmd:?}: {lines:?}");
        let done = line.starts_with(&format!("{tag} "));
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// Files of a Maildir's new/ and cur/, with their contents.
fn messages(maildir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(dir) = fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            if let Ok(data) = fs::read(&path) {
                all.insert(path, data);
            }
        }
    }
    all
}

#[test]
#[cfg_attr(
    nestbox_package_test_off,
    ignore = "installs and purges the .deb system-wide: runs under CI or with NESTBOX_TEST_PACKAGE=1"
)]
#[cfg_attr(nestbox_not_root, ignore = "needs root (dpkg -i, useradd, Postfix)")]
#[cfg_attr(nestbox_missing_dpkg_deb, ignore = "dpkg-deb not installed")]
#[cfg_attr(nestbox_missing_lintian, ignore = "lintian not installed")]
#[cfg_attr(nestbox_missing_cargo_deb, ignore = "cargo-deb not installed")]
#[cfg_attr(nestbox_missing_postfix, ignore = "postfix not installed")]
fn deb_installs_serves_mail_and_purges_clean() {
    if !common::require_root("dpkg -i, useradd and Postfix")
        || !common::require_tool("dpkg-deb", "inspecting the .deb")
        || !common::require_tool("lintian", "checking the .deb")
        || !common::require_tool("postfix", "delivering into ~/Maildir")
    {
        return;
    }
    assert!(
        !package_installed(),
        "a nestbox package is installed on this machine: this test would replace and purge it"
    );
    assert!(
        !group_exists("nestbox"),
        "a nestbox group exists on this machine: purging the test's package would delete it"
    );
    let deb = the_deb();
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));

    // lintian: no errors (the warnings are printed for the log).
    let lintian = Command::new("lintian")
        .args(["--fail-on", "error"])
        .arg(&deb)
        .output()
        .expect("lintian");
    let report = String::from_utf8_lossy(&lintian.stdout);
    eprintln!("lintian:\n{report}");
    assert!(lintian.status.success(), "lintian: {report}");
    assert!(!report.lines().any(|l| l.starts_with("E:")), "{report}");

    // Control data: the version follows Cargo.toml (and the Debian changelog does), Depends
    // names each package once and has what the shipped files need.
    let field = |name: &str| stdout(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Version").trim(), version);
    let changelog = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/debian/changelog"),
    )
    .expect("packaging/debian/changelog");
    assert!(
        changelog
            .lines()
            .next()
            .unwrap_or("")
            .contains(&format!("({version})")),
        "packaging/debian/changelog's first entry must be {version}"
    );
    let depends = depends_names(&field("Depends"));
    let mut unique = depends.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        depends.len(),
        "duplicates in Depends: {depends:?}"
    );
    for needed in ["libpam0g", "ssl-cert", "libpam-runtime"] {
        assert!(
            depends.iter().any(|d| d == needed),
            "{needed} in {depends:?}"
        );
    }
    // One systemd-sysusers call in the maintainer scripts (cargo-deb's; postinst has none).
    let control = tempfile::tempdir().expect("temp dir");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control.path()));
    let postinst = fs::read_to_string(control.path().join("postinst")).expect("postinst");
    let calls = postinst
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("systemd-sysusers"))
        .count();
    assert_eq!(calls, 1, "systemd-sysusers calls in postinst:\n{postinst}");

    // Install.
    let base = tempfile::Builder::new()
        .prefix("nestbox-package-")
        .tempdir()
        .expect("temp dir");
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let user = SystemUser::new(base.path());
    let installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    let files: Vec<PathBuf> = stdout(Command::new("dpkg").args(["-L", "nestbox"]))
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(PathBuf::from)
        .collect();
    let was_dir: BTreeMap<PathBuf, bool> = files
        .iter()
        .map(|f| (f.clone(), f.symlink_metadata().is_ok_and(|m| m.is_dir())))
        .collect();
    for f in &files {
        assert!(
            f.symlink_metadata().is_ok(),
            "{} listed but not installed",
            f.display()
        );
    }
    // The binary is stripped (its symbols are in the -dbgsym package).
    let sections = stdout(Command::new("readelf").args(["-S", "--wide", "/usr/bin/nestbox"]));
    assert!(
        !sections.contains(".debug_info"),
        "/usr/bin/nestbox has debug info"
    );
    // Both systemd units: the service and the optional socket-activation unit.
    for unit in [UNIT, "/usr/lib/systemd/system/nestbox.socket"] {
        assert!(
            files.contains(&PathBuf::from(unit)),
            "{unit} not in the package"
        );
    }
    // A man page per page build.rs wrote, gzipped.
    let man = Path::new(env!("OUT_DIR")).join("man");
    for page in fs::read_dir(&man).expect("build.rs's man pages").flatten() {
        let mut name = page.file_name();
        name.push(".gz");
        let packaged = Path::new("/usr/share/man/man1").join(name);
        assert!(
            files.contains(&packaged),
            "{} not in the package",
            packaged.display()
        );
    }
    // postinst: /etc/nestbox root:nestbox 0750, an empty passwd-file, the group.
    assert!(group_exists("nestbox"), "postinst made no nestbox group");
    let etc = fs::metadata("/etc/nestbox").expect("/etc/nestbox");
    assert_eq!(etc.permissions().mode() & 0o7777, 0o750);
    assert!(Path::new("/etc/nestbox/users").is_file());

    // postinst is idempotent: configuring again (here: the same version installed over
    // itself, an upgrade's path) succeeds and keeps the operator's passwd-file as it is.
    let users_line = "ann:{PLAIN}x:5000:5000::/var/vmail/ann::\n";
    fs::write("/etc/nestbox/users", users_line).expect("write users");
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert_eq!(
        fs::read_to_string("/etc/nestbox/users").ok().as_deref(),
        Some(users_line)
    );
    fs::write("/etc/nestbox/users", "").expect("empty users");

    // check-config on the shipped config: OK, with the snakeoil warning.
    let check = run(Command::new("/usr/bin/nestbox").arg("check-config"));
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(said.contains("snakeoil") && said.contains("OK"), "{said}");

    // The server as the unit starts it, on the shipped config moved to free ports.
    let unit = fs::read_to_string(UNIT).expect("unit");
    let exec_start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the unit")
        .trim_start_matches(['-', '@', ':', '+', '!']);
    let ports = common::free_ports::<4>();
    let config = base.path().join("nestbox.toml");
    let shipped = fs::read_to_string(SHIPPED_CONFIG).expect("shipped config");
    fs::write(&config, on_test_ports(&shipped, ports)).expect("test config");
    let mut args: Vec<String> = exec_start.split_whitespace().map(str::to_string).collect();
    assert_eq!(
        args.first().map(String::as_str),
        Some("/usr/bin/nestbox"),
        "{exec_start}"
    );
    let at = args
        .iter()
        .position(|a| a == SHIPPED_CONFIG)
        .unwrap_or_else(|| panic!("ExecStart names no {SHIPPED_CONFIG}: {exec_start}"));
    args[at] = config.display().to_string();
    let log = base.path().join("server.log");
    let child = Command::new(&args[0])
        .args(&args[1..])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start /usr/bin/nestbox");
    let mut server = Server { child, log };
    let imaps = ports[1];
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", imaps)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("server exited with {status}:\n{}", server.log());
        }
        assert!(Instant::now() < deadline, "no listener:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("snakeoil"), "{}", server.log());

    // Postfix delivers into the user's ~/Maildir through local(8).
    let postfix = common::postfix::Postfix::start_local();
    let subject = format!("package test {}", std::process::id());
    common::postfix::smtp_send(
        postfix.smtp_port,
        &format!("{}@localhost", user.name),
        &format!(
            "From: <sender@example.org>\nTo: <{}@localhost>\nSubject: {subject}\n\nDelivered by local(8).\n",
            user.name
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while messages(&user.maildir()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no delivery into {}; Postfix log:\n{}",
            user.maildir().display(),
            postfix.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Log in through PAM over IMAPS and read it.
    let (tls, name) = snakeoil_client();
    let tcp = TcpStream::connect(("127.0.0.1", imaps)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).ok();
    tcp.set_write_timeout(Some(Duration::from_secs(20))).ok();
    let conn = rustls::ClientConnection::new(tls, name).expect("TLS");
    let mut imap = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut greeting = String::new();
    imap.read_line(&mut greeting).expect("greeting");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let login = command(
        &mut imap,
        "a1",
        &format!("LOGIN {} \"{PASSWORD}\"", user.name),
    );
    assert!(
        login.last().is_some_and(|l| l.starts_with("a1 OK")),
        "{login:?}\n{}",
        server.log()
    );
    let select = command(&mut imap, "a2", "SELECT INBOX");
    assert!(
        select.iter().any(|l| l.trim() == "* 1 EXISTS"),
        "{select:?}"
    );
    let fetch = command(&mut imap, "a3", "FETCH 1 BODY.PEEK[]");
    assert!(fetch.iter().any(|l| l.contains(&subject)), "{fetch:?}");
    assert!(
        fetch.last().is_some_and(|l| l.starts_with("a3 OK")),
        "{fetch:?}"
    );
    command(&mut imap, "a4", "LOGOUT");
    drop(imap);
    drop(postfix);
    server.stop();

    // Remove keeps the configuration (and the group); purge then takes it: nothing of the
    // package left but directories other packages own; the mail stays.
    let mail = messages(&user.maildir());
    assert_eq!(mail.len(), 1, "{mail:?}");
    run(Command::new("dpkg").args(["-r", "nestbox"]));
    assert!(
        !Path::new("/usr/bin/nestbox").exists(),
        "binary left after remove"
    );
    for kept in [SHIPPED_CONFIG, "/etc/nestbox/users", "/etc/pam.d/nestbox"] {
        assert!(
            Path::new(kept).is_file(),
            "{kept} gone after remove (not purge)"
        );
    }
    assert!(
        group_exists("nestbox"),
        "group nestbox gone after remove (not purge)"
    );
    run(Command::new("dpkg").args(["-P", "nestbox"]));
    drop(installed);
    assert!(!package_installed());
    for (path, dir) in &was_dir {
        if path.symlink_metadata().is_err() {
            continue;
        }
        assert!(*dir, "{} left after purge", path.display());
        let owned = Command::new("dpkg-query")
            .arg("-S")
            .arg(path)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(owned, "directory {} left after purge", path.display());
    }
    assert!(
        !Path::new("/etc/nestbox").exists(),
        "/etc/nestbox left after purge"
    );
    assert!(!group_exists("nestbox"), "group nestbox left after purge");
    assert_eq!(messages(&user.maildir()), mail, "the mail after purge");
}
