//! Privilege separation (issue 15 item 1, SPEC §4): system users made by the test, each
//! served by a worker process running with that user's uid, gid and groups; the front
//! process never opens a Maildir; a worker that dies takes only its own sessions.
//!
//! Needs root (useradd, and a server that changes uid); the PAM test also needs the
//! `nonstick` feature (`cargo test --features nonstick --test privsep`, as `.ci/run` does).
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ImapClient, Options, TestServer};

/// A system user (and a group of its own for the supplementary-groups check), deleted
/// again when dropped.
struct SystemUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

struct SystemGroup {
    name: String,
    gid: u32,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unique(prefix: &str) -> String {
    // System user names: at most 32 characters, lower case; pid and a counter keep
    // parallel tests and runs apart.
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl SystemGroup {
    fn new() -> SystemGroup {
        let name = unique("nbg");
        run(Command::new("groupadd").arg(&name));
        let out = Command::new("getent")
            .args(["group", &name])
            .output()
            .expect("getent");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let gid = line
            .split(':')
            .nth(2)
            .and_then(|g| g.parse().ok())
            .expect("gid");
        SystemGroup { name, gid }
    }
}

impl Drop for SystemGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

impl SystemUser {
    /// A user with a home under `base`, a Maildir in it, the password `password`, and
    /// membership in `extra`.
    fn new(base: &Path, password: &str, extra: &SystemGroup) -> SystemUser {
        let name = unique("nbu");
        let home = base.join(&name);
        run(Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", "--user-group"])
            .arg("--home-dir")
            .arg(&home)
            .args(["--groups", &extra.name])
            .arg(&name));
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("chpasswd");
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{name}:{password}\n").as_bytes())
            .expect("write chpasswd");
        assert!(chpasswd.wait().expect("chpasswd").success());
        let meta = fs::metadata(&home).expect("home");
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(home.join("Maildir").join(sub)).expect("Maildir");
        }
        common::chown_tree(&home.join("Maildir"), meta.uid(), meta.gid());
        SystemUser {
            name,
            uid: meta.uid(),
            gid: meta.gid(),
            home,
        }
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

/// `(Uid, Gid, Groups)` lines of a process, as numbers (real uid/gid first).
fn credentials(pid: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

/// The worker processes of the server `front` (its children running `nestbox worker`).
fn workers(front: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 4 (after the parenthesised command name) is the parent pid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(front) && cmdline.split(|&b| b == 0).any(|a| a == b"worker") {
            out.push(pid);
        }
    }
    out
}

/// The worker running as `uid`, waited for (it starts at the first login).
fn worker_of(front: u32, uid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = workers(front)
            .into_iter()
            .find(|&p| credentials(p).0.first() == Some(&uid))
        {
            return p;
        }
        assert!(Instant::now() < deadline, "no worker with uid {uid}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every path a process has open, through /proc/PID/fd.
fn open_paths(pid: u32) -> Vec<PathBuf> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .collect()
}

fn message(subject: &str) -> String {
    format!("From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n")
}

fn append(c: &mut ImapClient, folder: &str, subject: &str) {
    let msg = message(subject);
    let (_, status) = c.command(&format!("APPEND {folder} {{{}+}}\r\n{msg}", msg.len()));
    assert!(status.starts_with("OK"), "APPEND: {status}");
}

/// Logs in, or fails with the server's log.
fn login_or_log(server: &TestServer, user: &str, password: &str) -> ImapClient {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ImapClient::login(server, user, password)
    })) {
        Ok(c) => c,
        Err(_) => panic!("login of {user} failed; server log:\n{}", server.log()),
    }
}

/// Owners (uid) of everything under `dir`.
fn owners(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir").flatten() {
            let m = e.metadata().expect("metadata");
            out.push((e.path(), m.uid()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Two system users, logged in at once, each through its own worker with its own
/// credentials; what they write is theirs; the front holds no Maildir open; killing one
/// worker leaves the other user's session and new logins working.
/// `system_groups`: the worker also has the user's supplementary groups (PAM users, as
/// with Dovecot's system users); passwd-file users get only their gid, as in Dovecot.
fn two_users_two_workers(
    system_groups: bool,
    auth_and_mail: impl Fn(&SystemUser, &SystemUser) -> String,
) {
    let base = tempfile::Builder::new()
        .prefix("nestbox-privsep-")
        .tempdir()
        .expect("temp dir");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let extra = SystemGroup::new();
    let alice = SystemUser::new(base.path(), "alice-pw", &extra);
    let bob = SystemUser::new(base.path(), "bob-pw", &extra);
    let server = TestServer::start_with(Options {
        auth_and_mail: Some(auth_and_mail(&alice, &bob)),
        ..Options::default()
    });
    let front = server.pid().expect("server pid");

    let mut a = login_or_log(&server, &alice.name, "alice-pw");
    append(&mut a, "INBOX", "from alice");
    a.ok("CREATE Projects");
    append(&mut a, "Projects", "in a folder");
    a.ok("SELECT INBOX");
    a.ok("STORE 1 +FLAGS (\\Seen)");
    let mut b = login_or_log(&server, &bob.name, "bob-pw");
    append(&mut b, "INBOX", "from bob");

    let wa = worker_of(front, alice.uid);
    let wb = worker_of(front, bob.uid);
    assert_ne!(wa, wb, "one worker per uid");
    let (uids, gids, groups) = credentials(wa);
    assert!(
        uids.iter().all(|&u| u == alice.uid),
        "alice's worker uids {uids:?}"
    );
    assert!(
        gids.iter().all(|&g| g == alice.gid),
        "alice's worker gids {gids:?}"
    );
    let want = if system_groups {
        vec![alice.gid, extra.gid]
    } else {
        vec![alice.gid]
    };
    let mut got = groups.clone();
    got.sort_unstable();
    let mut want_sorted = want.clone();
    want_sorted.sort_unstable();
    assert_eq!(got, want_sorted, "alice's worker groups");
    assert!(credentials(wb).0.iter().all(|&u| u == bob.uid));
    let status = fs::read_to_string(format!("/proc/{wa}/status")).expect("status");
    assert!(
        status.contains("NoNewPrivs:\t1"),
        "no_new_privs on the worker"
    );

    // What the sessions wrote belongs to the user, and nothing in the Maildir is root's.
    for (path, uid) in owners(&alice.maildir()) {
        assert_eq!(uid, alice.uid, "{} is not alice's", path.display());
    }
    for (path, uid) in owners(&bob.maildir()) {
        assert_eq!(uid, bob.uid, "{} is not bob's", path.display());
    }
    // The front has no Maildir (nor anything under the homes) open; the workers do hold
    // their own (the watcher and folder files), never the other user's.
    for p in open_paths(front) {
        assert!(
            !p.starts_with(&alice.home) && !p.starts_with(&bob.home),
            "front has {} open",
            p.display()
        );
    }
    for p in open_paths(wa) {
        assert!(
            !p.starts_with(&bob.home),
            "alice's worker has {} open",
            p.display()
        );
    }

    // A worker that dies takes only its own sessions.
    run(Command::new("kill").args(["-9", &wa.to_string()]));
    let mut closed = false;
    for _ in 0..50 {
        a.send_raw(b"x NOOP\r\n");
        if a.read_line().is_none() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed, "alice's session ends with her worker");
    b.ok("NOOP");
    append(&mut b, "INBOX", "bob goes on");
    let mut a2 = login_or_log(&server, &alice.name, "alice-pw");
    let st = a2.ok("STATUS INBOX (MESSAGES)");
    assert!(st.iter().any(|l| l.contains("MESSAGES 1")), "{st:?}");
    assert_ne!(worker_of(front, alice.uid), wa, "a new worker for alice");
    assert!(
        server.log().contains("worker ended unexpectedly"),
        "the crash is logged:\n{}",
        server.log()
    );
    a2.logout();
    b.logout();
}

#[test]
#[cfg_attr(
    nestbox_not_root,
    ignore = "creating system users and changing uid needs root"
)]
fn passwd_file_users_with_uids_are_served_as_those_uids() {
    two_users_two_workers(false, |alice, bob| {
        let dir = alice.home.parent().expect("base");
        let users = dir.join("users");
        let line = |u: &SystemUser, pw: &str| {
            format!(
                "{}:{{PLAIN}}{pw}:{}:{}::{}::\n",
                u.name,
                u.uid,
                u.gid,
                u.home.display()
            )
        };
        fs::write(
            &users,
            format!("{}{}", line(alice, "alice-pw"), line(bob, "bob-pw")),
        )
        .expect("users");
        format!(
            "[auth]\nbackend = \"passwd-file\"\npasswd_file = \"{}\"\nplaintext_on_loopback = true\n[mail]\nmaildir = \"~/Maildir\"\n",
            users.display()
        )
    });
}

#[test]
#[cfg_attr(
    nestbox_not_root,
    ignore = "creating system users and changing uid needs root"
)]
#[cfg_attr(
    not(feature = "nonstick"),
    ignore = "the PAM backend is built with --features nonstick (as .ci/run does for this test)"
)]
fn pam_users_are_served_as_themselves() {
    // A PAM service of the test's own, stacked on Debian's common files like the packaged one.
    let service = unique("nestbox-test-");
    let pam_file = PathBuf::from("/etc/pam.d").join(&service);
    fs::write(&pam_file, "@include common-auth\n@include common-account\n")
        .expect("write PAM service");
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let _pam = Remove(pam_file);
    two_users_two_workers(true, |_, _| {
        format!(
            "[auth]\nbackend = \"pam\"\npam_service = \"{service}\"\nplaintext_on_loopback = true\n[mail]\nmaildir = \"~/Maildir\"\n"
        )
    });
}

/// As root, a passwd-file user without a uid is served as `mail.user`; without one they
/// cannot log in (never served as root), and the log says what to set.
#[test]
#[cfg_attr(nestbox_not_root, ignore = "changing uid needs root")]
fn uid_less_users_need_mail_user_when_root() {
    // The default test server: uid-less users, `mail.user = "nobody"` as root.
    let server = TestServer::start();
    let front = server.pid().expect("pid");
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("SELECT INBOX");
    let (nobody_uid, _) = common::mail_owner().expect("root");
    let w = worker_of(front, nobody_uid);
    assert!(credentials(w).0.iter().all(|&u| u == nobody_uid));
    c.logout();

    // Same users, but [auth] and [mail] without mail.user.
    let server = TestServer::start_with(Options {
        auth_and_mail: Some(
            "[auth]\nbackend = \"passwd-file\"\npasswd_file = \"{dir}/users\"\nplaintext_on_loopback = true\n[mail]\nmaildir = \"{dir}/mail/%u/Maildir\"\n".into(),
        ),
        ..Options::default()
    });
    let mut s = server.connect();
    use std::io::{BufRead, BufReader, Write};
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(format!("a LOGIN {} {}\r\n", common::USER, common::PASSWORD).as_bytes())
        .expect("send");
    let mut r = BufReader::new(s);
    let mut all = String::new();
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        all.push_str(&line);
        line.clear();
    }
    assert!(all.contains("a NO [UNAVAILABLE]"), "{all}");
    assert!(
        server.log().contains("refusing to serve") && server.log().contains("mail.user"),
        "{}",
        server.log()
    );
    assert!(
        workers(server.pid().expect("pid")).is_empty(),
        "no worker as root"
    );
}

/// A login whose Maildir the worker cannot open is answered (`NO [UNAVAILABLE]`, then
/// `* BYE`), not left waiting, and the reason is logged.
#[test]
fn a_maildir_that_cannot_be_opened_is_answered() {
    let server = TestServer::start();
    if server.kind != common::Kind::Nestbox {
        return;
    }
    let md = server.maildir();
    fs::remove_dir_all(&md).expect("rm Maildir");
    fs::write(&md, "not a directory").expect("a file where the Maildir should be");
    use std::io::{BufRead, BufReader, Write};
    let mut s = server.connect();
    s.write_all(format!("a LOGIN {} {}\r\n", common::USER, common::PASSWORD).as_bytes())
        .expect("send");
    let mut all = String::new();
    let mut line = String::new();
    let mut r = BufReader::new(s);
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        all.push_str(&line);
        line.clear();
    }
    assert!(all.contains("a NO [UNAVAILABLE]"), "{all}");
    assert!(all.contains("* BYE"), "{all}");
    assert!(
        server.log().contains("cannot open mail store"),
        "{}",
        server.log()
    );
}
