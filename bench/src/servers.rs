//! Server runners: Dovecot and nestbox, each on its own copy of the corpus.
//!
//! Owns starting a server with a throwaway configuration in a temporary directory (its own
//! base/state directories, passwd-file user, a free high port on 127.0.0.1), waiting for it to
//! accept connections (bounded), measuring its memory from `/proc`, and stopping it by PID.
//! It never touches a system-wide configuration, never binds anything but 127.0.0.1, and never
//! signals a process it did not start.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::err;
use crate::imap::{Error, Res};

/// The benchmark user and password on every server.
pub const USER: &str = "bench";
/// Password of [`USER`].
pub const PASS: &str = "benchpass";

/// The quota of the `append_quota` rows ([`Server::set_quota`]), in both servers' syntax.
pub const QUOTA: &str = "10G";

/// Which server implementation a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Debian's dovecot-imapd.
    Dovecot,
    /// `target/release/nestbox`.
    Nestbox,
}

/// A running server with its own copy of the mail.
#[derive(Debug)]
pub struct Server {
    /// Label in reports (`dovecot`, `nestbox`, `dovecot-2`).
    pub label: String,
    /// Implementation.
    pub kind: Kind,
    /// IMAP address (cleartext, LOGIN allowed).
    pub addr: SocketAddr,
    /// POP3 address, if this server was configured for POP3 (it may still not listen there).
    pub pop3_addr: Option<SocketAddr>,
    /// Implicit-TLS IMAP address (993-style), if configured.
    pub tls_addr: Option<SocketAddr>,
    /// The server's self-signed certificate (PEM, name `localhost`), for the TLS client.
    pub tls_cert: Option<PathBuf>,
    /// The user's Maildir root (INBOX), where the harness delivers like an MTA.
    pub maildir: PathBuf,
    /// Temporary directory holding config, logs and the mail copy; removed on stop.
    pub dir: PathBuf,
    child: Option<Child>,
    /// How it was started, for [`Server::restart`].
    launch: Launch,
}

/// A server's command line and log file.
#[derive(Debug)]
struct Launch {
    bin: PathBuf,
    args: Vec<std::ffi::OsString>,
    env: Vec<(&'static str, &'static str)>,
    log: PathBuf,
}

impl Launch {
    /// Starts the server; its output goes to the end of the log.
    fn spawn(&self) -> Res<Child> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(cmd.spawn()?)
    }
}

/// A free TCP port on 127.0.0.1 (the listener is dropped, so there is a tiny reuse race;
/// the server failing to bind is reported as a start failure).
fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Copy the generated Maildir to `dir/home/bench/Maildir` with `cp -a` (keeps mtimes).
fn copy_mail(src: &Path, dir: &Path) -> Res<PathBuf> {
    let home = dir.join("home").join(USER);
    fs::create_dir_all(&home)?;
    let dst = home.join("Maildir");
    let st = Command::new("cp").arg("-a").arg(src).arg(&dst).status()?;
    if !st.success() {
        return Err(err!("cp -a {} {} failed", src.display(), dst.display()));
    }
    warm_page_cache(&dst)?;
    // Write the copy back before the server starts: otherwise the first fsync a server makes
    // (the cold SELECT's uidlist) waits for 2 GB of the copy's own writeback under ext4's
    // ordered mode, and times the disk instead of the server.
    let st = Command::new("sync").status()?;
    if !st.success() {
        return Err(err!("sync failed"));
    }
    Ok(dst)
}

/// Reads every file under `dir` once, so that each server starts with its own copy in the page
/// cache. The workloads measure parsing and protocol work from page cache (issue 4 compares with
/// `grep` over the corpus from page cache); on the shared VMs this runs on, the host reclaims
/// page cache that has not been touched for a minute or two, and without this the "first"
/// FETCHes timed disk reads of whichever copy happened to have been evicted.
fn warm_page_cache(dir: &Path) -> Res<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let mut f = fs::File::open(e.path())?;
                while std::io::Read::read(&mut f, &mut buf)? > 0 {}
            }
        }
    }
    Ok(())
}

/// A throwaway self-signed certificate for `localhost` (rcgen's default key, P-256): its
/// (cert.pem, key.pem) in `dir`. The name is a subjectAltName, which TLS clients check.
fn self_signed(dir: &Path) -> Res<(PathBuf, PathBuf)> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(|e| err!("self-signed certificate: {e}"))?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    fs::write(&cert, ck.cert.pem())?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)?
        .write_all(ck.key_pair.serialize_pem().as_bytes())?;
    Ok((cert, key))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn egid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

fn user_name(uid: u32) -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

fn user_exists(name: &str) -> bool {
    fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

/// Path of the Dovecot binary, or an explanation of how to get it.
pub fn find_dovecot() -> Result<PathBuf, String> {
    for p in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(
        "dovecot not found: install Debian's dovecot-imapd (`sudo apt-get install dovecot-imapd`; \
         `bench/run` does this itself when run as root), then stop the system instance if you \
         do not want it (`sudo systemctl disable --now dovecot`)"
            .into(),
    )
}

/// `dovecot --version`, for the results file.
pub fn dovecot_version() -> Option<String> {
    let bin = find_dovecot().ok()?;
    let out = Command::new(bin).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Server {
    /// Start Dovecot on a fresh copy of `mail` (the generated `Maildir`).
    /// `fsync`: Dovecot's `mail_fsync` (see `--dovecot-fsync`).
    pub fn start_dovecot(
        label: &str,
        mail: &Path,
        work: &Path,
        fsync: DovecotFsync,
    ) -> Res<Server> {
        let fsync = match fsync {
            DovecotFsync::Always => "always",
            DovecotFsync::Optimized => "optimized",
        };
        let bin = find_dovecot().map_err(Error)?;
        let dir = work.join(format!("srv-{label}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("run"))?;
        fs::create_dir_all(dir.join("state"))?;
        let maildir = copy_mail(mail, &dir)?;
        let (port, tls_port) = (free_port()?, free_port()?);
        let (cert, key) = self_signed(&dir)?;
        // POP3 only when Debian's dovecot-pop3d is installed: `protocols = pop3` without it
        // stops Dovecot from starting.
        let pop3_port = if Path::new("/usr/lib/dovecot/pop3").exists() {
            Some(free_port()?)
        } else {
            None
        };
        // Dovecot refuses to serve mail as root (userdb uid 0), so as root the copy is handed to
        // `nobody`; ownership does not change what is measured.
        let (mut uid, mut gid) = (euid(), egid());
        if uid == 0 {
            (uid, gid) = (65534, 65534);
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(dir.join("home"))
                .status()?;
            if !st.success() {
                return Err(err!(
                    "chown -R {uid}:{gid} {} failed",
                    dir.join("home").display()
                ));
            }
        }
        // As root, Dovecot drops privileges to its packaged users; as anyone else it runs every
        // process as that user.
        let (internal, login) = if euid() == 0 && user_exists("dovecot") && user_exists("dovenull")
        {
            ("dovecot".to_string(), "dovenull".to_string())
        } else {
            (user_name(uid), user_name(uid))
        };
        fs::write(dir.join("users"), format!("{USER}:{{PLAIN}}{PASS}::::::\n"))?;
        let conf = format!(
            r#"# Throwaway configuration written by nestbox-bench; nothing here is system-wide.
base_dir = {d}/run
state_dir = {d}/state
instance_name = nestbox-bench-{label_safe}
log_path = {d}/dovecot.log
protocols = imap{pop3_proto}
listen = 127.0.0.1
# TLS for the idle-TLS memory rows only (implicit TLS on its own port); every other
# workload uses the cleartext port.
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
login_trusted_networks = 127.0.0.0/8
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
# COMPRESS=DEFLATE (the fetch_env_bs_deflate rows) is the imap_zlib plugin, which needs zlib.
# quota.conf holds the quota plugin while the append_quota rows want it (`Server::set_quota`);
# it comes before the imap block, whose `$mail_plugins` is read where it stands.
mail_plugins = $mail_plugins zlib
!include_try {d}/quota.conf
protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
}}
# Dovecot's default, written out because NOTIFY (the notify_push_latency rows) is offered only
# with it; nothing else changes.
mailbox_list_index = yes
# Fair APPEND/COPY/MOVE: nestbox fsyncs before every tagged OK, so must Dovecot (`always`
# also fsyncs Dovecot's index log; `optimized`, its default, fsyncs the mail only).
mail_fsync = {fsync}
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = {gid}
default_internal_user = {internal}
default_login_user = {login}
mail_privileged_group =
# Room for 10,000 idle connections plus 50 parallel clients: over TLS each keeps an
# imap-login process (it relays the TLS) and an imap process (Dovecot's defaults).
default_process_limit = 5000
default_client_limit = 20000
default_vsz_limit = 1G
mail_max_userip_connections = 20000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
  process_limit = 12000
}}
service imap {{
  process_limit = 12000
}}
{pop3_services}"#,
            d = dir.display(),
            cert = cert.display(),
            key = key.display(),
            label_safe = label.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
            pop3_proto = if pop3_port.is_some() { " pop3" } else { "" },
            pop3_services = pop3_port.map_or(String::new(), |p| format!(
                "service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {p}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\nservice pop3 {{\n  process_limit = 5000\n}}\n"
            )),
        );
        let conf_path = dir.join("dovecot.conf");
        fs::write(&conf_path, conf)?;
        if euid() == 0 {
            // The login and internal users must reach the sockets under base_dir.
            let _ = Command::new("chmod")
                .arg("755")
                .arg(&dir)
                .arg(dir.join("run"))
                .status();
        }
        let launch = Launch {
            bin,
            args: vec!["-F".into(), "-c".into(), conf_path.into()],
            env: Vec::new(),
            log: dir.join("dovecot.stderr"),
        };
        let child = launch.spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut s = Server {
            label: label.into(),
            kind: Kind::Dovecot,
            addr,
            pop3_addr: pop3_port.map(|p| ([127, 0, 0, 1], p).into()),
            tls_addr: Some(([127, 0, 0, 1], tls_port).into()),
            tls_cert: Some(cert),
            maildir,
            dir,
            child: Some(child),
            launch,
        };
        s.wait_ready()?;
        Ok(s)
    }

    /// Start `nestbox serve` on a fresh copy of `mail`. Fails (so the caller can skip nestbox)
    /// when the binary is missing or does not start listening.
    pub fn start_nestbox(label: &str, bin: &Path, mail: &Path, work: &Path) -> Res<Server> {
        if !bin.exists() {
            return Err(err!(
                "{} does not exist (build it with `cargo build --release`)",
                bin.display()
            ));
        }
        let dir = work.join(format!("srv-{label}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let maildir = copy_mail(mail, &dir)?;
        let (port, tls_port, pop3_port) = (free_port()?, free_port()?, free_port()?);
        let (cert, key) = self_signed(&dir)?;
        // nestbox never serves mail as root: as root the copy is handed to `nobody`, whose
        // uid the user's worker process runs as (`mail.user`), as Dovecot's `imap` does.
        let mail_user = if euid() == 0 {
            let st = Command::new("chown")
                .arg("-R")
                .arg("65534:65534")
                .arg(dir.join("home"))
                .status()?;
            if !st.success() {
                return Err(err!(
                    "chown -R nobody {} failed",
                    dir.join("home").display()
                ));
            }
            format!("user = \"{}\"\n", user_name(65534))
        } else {
            String::new()
        };
        fs::write(dir.join("users"), format!("{USER}:{{PLAIN}}{PASS}::::::\n"))?;
        let conf = format!(
            r#"# Throwaway configuration written by nestbox-bench (SPEC §3).
hostname = "bench.localhost"
[imap]
listen = ["127.0.0.1:{port}"]
listen_tls = ["127.0.0.1:{tls_port}"]
[pop3]
listen = ["127.0.0.1:{pop3_port}"]
listen_tls = []
[tls]
cert = "{cert}"
key = "{key}"
[auth]
backend = "passwd-file"
passwd_file = "{d}/users"
plaintext_on_loopback = true
[mail]
maildir = "{d}/home/%u/Maildir"
{mail_user}[limits]
max_connections = 20000
max_connections_per_ip = 20000
max_connections_per_user = 20000
"#,
            d = dir.display(),
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = dir.join("nestbox.toml");
        fs::write(&conf_path, conf)?;
        let launch = Launch {
            bin: bin.into(),
            args: vec!["serve".into(), "-c".into(), conf_path.into()],
            env: vec![("RUST_LOG", "warn")],
            log: dir.join("nestbox.log"),
        };
        let child = launch.spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut s = Server {
            label: label.into(),
            kind: Kind::Nestbox,
            addr,
            pop3_addr: Some(([127, 0, 0, 1], pop3_port).into()),
            tls_addr: Some(([127, 0, 0, 1], tls_port).into()),
            tls_cert: Some(cert.clone()),
            maildir,
            dir,
            child: Some(child),
            launch,
        };
        s.wait_ready()?;
        Ok(s)
    }

    /// Turns the user's quota on (`QUOTA`: 10 GiB, far above what the runs store, so only
    /// its bookkeeping is measured) or off, for the next start: nestbox's `[mail] quota`,
    /// Dovecot's quota plugin with its Maildir++ backend; both then keep `maildirsize` at the
    /// Maildir root. Off also removes that file (nestbox leaves an existing one in use).
    /// Takes effect at [`Server::restart`].
    pub fn set_quota(&mut self, on: bool) -> Res<()> {
        match self.kind {
            Kind::Nestbox => {
                let path = self.dir.join("nestbox.toml");
                let conf = fs::read_to_string(&path)?;
                let line = format!("quota = \"{QUOTA}\"\n");
                let mut conf = conf.replace(&line, "");
                if on {
                    conf = conf.replace("[mail]\n", &format!("[mail]\n{line}"));
                }
                fs::write(&path, conf)?;
            }
            Kind::Dovecot => {
                let path = self.dir.join("quota.conf");
                if on {
                    fs::write(
                        &path,
                        format!(
                            "mail_plugins = $mail_plugins quota\nplugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage={QUOTA}\n}}\n"
                        ),
                    )?;
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        if !on {
            match fs::remove_file(self.maildir.join("maildirsize")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Stops the server (as [`Server::stop`]: every process gone) and starts it again on the
    /// same configuration and mail: what it keeps on disk stays, what it held in memory is gone.
    pub fn restart(&mut self) -> Res<()> {
        self.stop();
        self.child = Some(self.launch.spawn()?);
        self.wait_ready()
    }

    /// Wait (at most 15 s) until the port accepts connections; fail early if the process exits.
    fn wait_ready(&mut self) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                self.child = None;
                return Err(err!(
                    "{} exited at start ({st}); its log ends:\n{}",
                    self.label,
                    self.log_tail()
                ));
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(err!(
                    "{} did not listen on {} within 15 s",
                    self.label,
                    self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// If the server's main process has exited (crashed) since start, how.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }

    /// PID of the server's main process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time the server's live processes (all their threads) have run, in seconds, from
    /// `/proc/<pid>/task/<tid>/schedstat` (nanoseconds). Processes that already exited are not
    /// counted, so it is exact for nestbox and a lower bound for Dovecot.
    pub fn cpu_secs(&self) -> f64 {
        let Some(root) = self.pid() else {
            return 0.0;
        };
        let mut ns: u64 = 0;
        for p in process_tree(root) {
            let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
                continue;
            };
            for t in tasks.flatten() {
                ns += fs::read_to_string(t.path().join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        ns as f64 / 1e9
    }

    /// Bytes the server's live processes have read with read(2) and its kind so far (`rchar`
    /// of `/proc/<pid>/io`: files from page cache and sockets alike), summed over the process
    /// tree. Like [`Server::cpu_secs`], exact for nestbox and a lower bound for Dovecot.
    pub fn rchar(&self) -> u64 {
        let Some(root) = self.pid() else {
            return 0;
        };
        process_tree(root)
            .into_iter()
            .filter_map(|p| {
                let s = fs::read_to_string(format!("/proc/{p}/io")).ok()?;
                s.lines()
                    .find_map(|l| l.strip_prefix("rchar:"))?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// Memory of the server's whole process tree: (sum of VmRSS, sum of Pss, process count), KiB.
    pub fn memory_kib(&self) -> (u64, u64, usize) {
        let Some(root) = self.pid() else {
            return (0, 0, 0);
        };
        let pids = process_tree(root);
        let mut rss = 0;
        let mut pss = 0;
        for p in &pids {
            rss += status_field(*p, "VmRSS:").unwrap_or(0);
            pss += smaps_pss(*p).unwrap_or(0);
        }
        (rss, pss, pids.len())
    }

    /// The tail of the server's log, for error reports.
    pub fn log_tail(&self) -> String {
        let name = match self.kind {
            Kind::Dovecot => "dovecot.log",
            Kind::Nestbox => "nestbox.log",
        };
        if self.kind == Kind::Dovecot {
            // Start-up errors go to stderr before log_path is open.
            let early = fs::read_to_string(self.dir.join("dovecot.stderr")).unwrap_or_default();
            if !early.trim().is_empty() {
                return early.lines().take(15).collect::<Vec<_>>().join("\n");
            }
        }
        let s = fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL; then wait (up to 20 s more) until every process
    /// of the server's tree is gone. Dovecot's master exits before the 1,000 `imap` processes of
    /// the memory test have, and the next server must not start while they free 6.8 GB. (This
    /// was suspected of slowing nestbox's cold SELECT after Dovecot; it was not the cause: that
    /// SELECT is as slow when nestbox runs first, see bench/RESULTS.md, session 4.)
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let tree = process_tree(c.id());
            if let Ok(pid) = i32::try_from(c.id()) {
                // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
            // The rest of the tree: not our children (we cannot reap them), so watch /proc;
            // a zombie has exited (whether anything reaps it is up to PID 1). A PID reused
            // meanwhile would only make us wait for the deadline.
            let others: Vec<u32> = tree.into_iter().filter(|&p| p != c.id()).collect();
            let alive = |p: u32| {
                fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                    let state = s
                        .rfind(')')
                        .and_then(|i| s[i + 1..].split_whitespace().next());
                    state != Some("Z")
                })
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while others.iter().any(|&p| alive(p)) {
                if Instant::now() >= deadline {
                    for &p in &others {
                        if let Ok(p) = i32::try_from(p) {
                            // SAFETY: kill(2) with a plain signal; at worst the PID is gone.
                            unsafe { libc::kill(p, libc::SIGKILL) };
                        }
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stop and delete the temporary directory.
    pub fn stop_and_clean(&mut self, keep: bool) {
        self.stop();
        if !keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `root` and all its descendants, from `/proc/*/stat`.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // The command name may contain spaces and parens: fields start after the last ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent.push((pid, pp));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

fn status_field(pid: u32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn smaps_pss(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Descriptors the harness and the servers it starts want: 10,000 idle TLS connections cost
/// nestbox's front two each (the client's socket and the relay to the worker) and Dovecot's
/// `imap-login` as many.
const NOFILE_WANTED: u64 = 65536;

/// Raise RLIMIT_NOFILE to the hard limit, and as root the hard limit itself to
/// [`NOFILE_WANTED`] (within the kernel's `fs.nr_open`) when it is lower; servers started
/// afterwards inherit it. Returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(NOFILE_WANTED);
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            if euid() == 0 && rl.rlim_max < NOFILE_WANTED {
                rl.rlim_max = NOFILE_WANTED.min(nr_open);
            }
            rl.rlim_cur = rl.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                // Not allowed to raise the hard limit: the old one, all of it.
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
    }
    rl.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_tree_contains_self_and_child() {
        let mut child = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
        let me = std::process::id();
        let tree = process_tree(me);
        assert_eq!(tree[0], me);
        assert!(tree.contains(&child.id()), "{tree:?}");
        let _ = child.kill();
        let _ = child.wait();
        assert!(status_field(me, "VmRSS:").is_some_and(|k| k > 0));
    }
}

/// Dovecot's `mail_fsync` for the run (`--dovecot-fsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DovecotFsync {
    /// Message files, their directories, `dovecot-uidlist` and Dovecot's index log.
    Always,
    /// Dovecot's default: the same minus the index log.
    Optimized,
}
