//! A throwaway Postfix instance for the tests that need a real MTA delivering (live sync,
//! NOTIFY, the quota warning, the installed package), and an SMTP client to hand it mail. Starting Postfix needs
//! root (CI runs as root).

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Lets Postfix's virtual(8), which runs as nobody, reach a Maildir inside `dir` (a test
/// server's temp dir).
pub fn open_to_virtual(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Deadline of each SMTP read and write.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// uid and gid of a system user.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam with a valid C string; the fields are copied out at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// A throwaway Postfix instance (its own config, queue and data directories in a temp dir,
/// smtpd on one free 127.0.0.1 port, delivering `alice@test.local` through virtual(8) into a
/// given Maildir). Stopped with `postfix -c DIR stop` on drop, then by the master's PID if it
/// is still there.
pub struct Postfix {
    dir: tempfile::TempDir,
    pub smtp_port: u16,
}

impl Postfix {
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Runs `postfix -c DIR <verb>`; Postfix reports to its log, not to a non-tty stderr.
    fn control(config_dir: &Path, verb: &str) -> Result<(), String> {
        let out = Command::new("postfix")
            .arg("-c")
            .arg(config_dir)
            .arg(verb)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run postfix {verb}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "postfix {verb} exited with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Starts an instance that delivers `alice@test.local` into `maildir` (whose parent
    /// directories must be traversable by `nobody`).
    pub fn start(maildir: &Path) -> Postfix {
        Postfix::start_with_folders(maildir, &[])
    }

    /// As [`Postfix::start`], and each `(address, folder)` of `folders` delivers into that
    /// Maildir++ folder of the same Maildir (`folder` is its directory below `maildir`, e.g.
    /// `.Lists`; it must exist with `cur/`, `new/` and `tmp/`).
    pub fn start_with_folders(maildir: &Path, folders: &[(&str, &str)]) -> Postfix {
        let dir = instance_dir();
        let d = dir.path();
        // virtual(8) refuses uid 0 (virtual_minimum_uid >= 1): deliver as nobody, which owns
        // the Maildir's tmp/ and new/; nestbox (root here) reads and renames them fine.
        let (mail_uid, mail_gid) = user_ids("nobody").expect("user nobody");
        for dir in std::iter::once(maildir.to_path_buf())
            .chain(folders.iter().map(|(_, f)| maildir.join(f)))
        {
            for sub in ["", "tmp", "new"] {
                std::os::unix::fs::chown(dir.join(sub), Some(mail_uid), Some(mail_gid))
                    .expect("chown Maildir for virtual(8)");
            }
        }
        let base = maildir.parent().expect("Maildir has a parent");
        // virtual(8)'s map: the value is a path below virtual_mailbox_base, a trailing `/`
        // meaning Maildir delivery.
        let top = maildir
            .file_name()
            .expect("Maildir has a name")
            .to_string_lossy();
        let map: Vec<String> = std::iter::once(format!("alice@test.local={top}/"))
            .chain(folders.iter().map(|(a, f)| format!("{a}={top}/{f}/")))
            .collect();
        let smtp_port = super::free_port();
        let main_cf = format!(
            "{common}local_recipient_maps =
virtual_mailbox_domains = test.local
virtual_mailbox_maps = inline:{{ {map} }}
virtual_mailbox_base = {base}
virtual_uid_maps = static:{mail_uid}
virtual_gid_maps = static:{mail_gid}
virtual_minimum_uid = 1
",
            common = main_cf_common(d),
            base = base.display(),
            map = map.join(", "),
        );
        Postfix::launch(dir, smtp_port, &main_cf)
    }

    /// Starts an instance that delivers mail for `USER@localhost` the way a Debian home server
    /// is set up (README): through local(8), as that system user, into `~/Maildir/`
    /// (`home_mailbox = Maildir/`). The users must exist in the passwd database.
    pub fn start_local() -> Postfix {
        let dir = instance_dir();
        let d = dir.path();
        let smtp_port = super::free_port();
        let main_cf = format!(
            "{common}local_recipient_maps = unix:passwd.byname
home_mailbox = Maildir/
mailbox_command =
biff = no
",
            common = main_cf_common(d),
        );
        Postfix::launch(dir, smtp_port, &main_cf)
    }

    /// Writes `main_cf` and the shared master.cf into `dir` and starts the instance.
    fn launch(dir: tempfile::TempDir, smtp_port: u16, main_cf: &str) -> Postfix {
        let d = dir.path();
        // Nothing chrooted: the queue is in a temp dir without the chroot's copies of /etc.
        let master_cf = format!(
            "127.0.0.1:{smtp_port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"
        );
        fs::write(d.join("etc/main.cf"), main_cf).expect("main.cf");
        fs::write(d.join("etc/master.cf"), master_cf).expect("master.cf");
        let pf = Postfix { dir, smtp_port };
        if let Err(e) = Postfix::control(&pf.config_dir(), "start") {
            panic!("{e}\nPostfix log:\n{}", pf.log());
        }
        // `postfix start` returns once the master runs; wait for smtpd's port.
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", smtp_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix did not listen on 127.0.0.1:{smtp_port}; log:\n{}",
                pf.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pf
    }

    pub fn master_pid(&self) -> Option<libc::pid_t> {
        fs::read_to_string(self.dir.path().join("spool/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = Postfix::control(&self.config_dir(), "stop");
        let Some(pid) = pid else { return };
        // `postfix stop` waits for the master; make sure, by its PID, that it is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: kill(pid, 0) only probes; the PID is the master this instance started.
        while unsafe { libc::kill(pid, 0) } == 0 {
            if Instant::now() > deadline {
                // SAFETY: as above; SIGKILL to our own instance's master.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends one message by SMTP to an smtpd on 127.0.0.1 and returns the moment the reply to the
/// end of DATA came: Postfix has queued it, its queue manager and virtual(8) take it from
/// there (on a busy machine they may have delivered it before this thread reads the reply).
/// Every read and write has a deadline.
pub fn smtp_send(port: u16, rcpt: &str, message: &str) -> Instant {
    use std::io::{BufRead, BufReader};
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to smtpd");
    stream.set_read_timeout(Some(COMMAND_TIMEOUT)).ok();
    stream.set_write_timeout(Some(COMMAND_TIMEOUT)).ok();
    stream.set_nodelay(true).ok();
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    // A reply may have several lines (`250-...`); the last has a space after the code.
    let mut expect = |sent: &str, code: &str| {
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(n) if n > 0 => {}
                other => panic!("smtpd: no reply to {sent:?}: {other:?}"),
            }
            assert!(
                line.starts_with(code),
                "smtpd answered {sent:?} with {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return;
            }
        }
    };
    expect("(connect)", "220");
    let mut say = |line: &str| {
        writer
            .write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("smtpd: send {line:?}: {e}"));
    };
    // One command at a time, each with its reply, as a client that does not pipeline.
    say("EHLO test.local\r\n");
    expect("EHLO", "250");
    say("MAIL FROM:<sender@example.org>\r\n");
    expect("MAIL FROM", "250");
    say(&format!("RCPT TO:<{rcpt}>\r\n"));
    expect("RCPT TO", "250");
    say("DATA\r\n");
    expect("DATA", "354");
    // Dot-stuffing (RFC 5321 §4.5.2): a line starting with a dot gets another.
    let mut data = String::new();
    for line in message.lines() {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    say(&format!("{data}.\r\n"));
    expect("end of DATA", "250");
    let queued = Instant::now();
    say("QUIT\r\n");
    expect("QUIT", "221");
    queued
}

/// A directory for one instance (queue, data, config) that the postfix user's daemons can
/// enter (they chdir into the queue below it).
fn instance_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("nestbox-postfix-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    for sub in ["etc", "spool", "data"] {
        fs::create_dir_all(d.join(sub)).expect("postfix dirs");
    }
    let (pf_uid, pf_gid) = user_ids("postfix").expect("user postfix (Debian's postfix)");
    std::os::unix::fs::chown(d.join("data"), Some(pf_uid), Some(pf_gid)).expect("chown");
    dir
}

/// The main.cf lines every instance shares: its own queue and log in `d`, loopback only, no
/// aliases, no relay; each kind of delivery adds its own lines.
fn main_cf_common(d: &Path) -> String {
    format!(
        "compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
myhostname = localhost
mydomain = localdomain
myorigin = localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = localhost
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
smtputf8_enable = no
smtpd_banner = $myhostname ESMTP
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
syslog_name = postfix-nestbox-test
",
        d = d.display()
    )
}
