//! Dovecot's own POP3 server (`/usr/lib/dovecot/pop3`, from `dovecot-pop3d`) run once,
//! preauthenticated on stdin and stdout as Dovecot's tests do, on a copy of a Maildir: the
//! reference for the UIDLs nestbox must give (`pop3.uidl_format`, `import-dovecot`).
//!
//! Never runs Dovecot as root (as root, the copy is given to the `dovecot` user and the
//! program runs as it), and never touches the Maildir it is given: Dovecot writes its
//! indexes (and may rewrite `dovecot-uidlist`) in its own copy.
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian's `dovecot-pop3d` puts the program.
pub const PROGRAM: &str = "/usr/lib/dovecot/pop3";

/// The `UIDL` listing (message number, UIDL) Dovecot gives for a copy of `maildir` (its
/// INBOX) with `pop3_uidl_format = format`. Panics with Dovecot's output on failure.
pub fn uidls(maildir: &Path, format: &str) -> Vec<(u32, String)> {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path().join("Maildir");
    super::copy_tree(maildir, &root);
    fs::create_dir_all(d.path().join("run")).expect("run dir");
    let conf = d.path().join("dovecot.conf");
    fs::write(
        &conf,
        format!(
            "mail_location = maildir:{}\nbase_dir = {}/run\nssl = no\npop3_uidl_format = {format}\n",
            root.display(),
            d.path().display()
        ),
    )
    .expect("write dovecot.conf");
    let mut cmd = Command::new("timeout");
    cmd.arg("20");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let chown = Command::new("chown")
            .args(["-R", "dovecot:dovecot"])
            .arg(d.path())
            .status()
            .expect("chown");
        assert!(chown.success());
        cmd.args([
            "setpriv",
            "--reuid=dovecot",
            "--regid=dovecot",
            "--clear-groups",
        ]);
    }
    let out = cmd
        .arg(PROGRAM)
        .arg("-c")
        .arg(&conf)
        .env_clear()
        .env("USER", "nestbox-test")
        .env("HOME", d.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"UIDL\r\nQUIT\r\n")?;
            drop(stdin);
            child.wait_with_output()
        })
        .expect("run Dovecot's pop3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("+OK") && text.contains("\r\n.\r\n"),
        "Dovecot's pop3 with pop3_uidl_format = {format}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = text.split("\r\n.\r\n").next().unwrap_or("");
    body.lines()
        .filter_map(|l| {
            let (n, uidl) = l.trim_end().split_once(' ')?;
            Some((n.parse().ok()?, uidl.to_string()))
        })
        .collect()
}

/// The fixture's INBOX (without its subfolder) in `dir`, its uidlist given a `G` (GUID)
/// field on one record and a `P` (kept POP3 UIDL) field on another, as a migrated Dovecot
/// maildrop can have.
pub fn uidl_maildir(dir: &Path) -> PathBuf {
    let fixture = super::fixtures_dir().join("maildirs").join("dovecot");
    let md = dir.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(md.join(sub)).expect("maildir");
    }
    for e in fs::read_dir(fixture.join("cur"))
        .expect("fixture cur")
        .flatten()
    {
        fs::copy(e.path(), md.join("cur").join(e.file_name())).expect("copy");
    }
    fs::copy(
        fixture.join("dovecot-keywords"),
        md.join("dovecot-keywords"),
    )
    .expect("keywords");
    let uidlist = fs::read_to_string(fixture.join("dovecot-uidlist")).expect("uidlist");
    let uidlist = uidlist
        .replace("\n58 :", "\n58 G0123456789abcdef0123456789abcdef :")
        .replace("\n69 :", "\n69 Pkept-by-a-migration :");
    assert!(uidlist.contains(" G0123") && uidlist.contains(" Pkept"));
    fs::write(md.join("dovecot-uidlist"), uidlist).expect("uidlist");
    md
}
