//! `nestbox import-dovecot`: Debian's shipped Dovecot 2.3 configuration (as installed on
//! this machine, copied to a temp dir) and a typical home server's 2.4 configuration
//! (`tests/fixtures/dovecot-2.4/`) become configurations `nestbox check-config` accepts,
//! with the fields expected and the list of what was not translated; a Maildir served with
//! the translated `[pop3]` gives the POP3 UIDLs Dovecot's own pop3 gives with the original
//! `pop3_uidl_format`; a missing directory, a file that does not parse and an existing
//! output file are errors that say where.
//!
//! Debian's configuration is copied at test time rather than committed: it is what
//! `dovecot-core` installs on the machine the test runs on (CI installs it), and its
//! `!include_try /usr/share/dovecot/protocols.d/*.protocol` reads the installed packages'
//! files, so a committed copy would be half of it.

mod common;

use common::{Kind, Options, PASSWORD, TestServer, USER};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nestbox(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_nestbox"))
        .args(args)
        .output()
        .expect("run nestbox")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture_24() -> PathBuf {
    common::fixtures_dir().join("dovecot-2.4")
}

/// `nestbox import-dovecot PATH --out DIR/nestbox.toml`: (the TOML as text, parsed, stderr).
fn import(path: &Path, dir: &Path) -> (String, toml::Table, String) {
    let out = dir.join("nestbox.toml");
    let o = nestbox(&[
        "import-dovecot",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "import-dovecot {}: {}",
        path.display(),
        text(&o.stderr)
    );
    let t = fs::read_to_string(&out).expect("output written");
    let table: toml::Table = t.parse().expect("output is TOML");
    (t, table, text(&o.stderr))
}

fn get<'a>(t: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut v: Option<&toml::Value> = None;
    let mut table = t;
    for part in path.split('.') {
        let x = table
            .get(part)
            .unwrap_or_else(|| panic!("{path} in {t:#?}"));
        if let Some(inner) = x.as_table() {
            table = inner;
        }
        v = Some(x);
    }
    v.expect("path")
}

fn strs(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string"))
        .collect()
}

/// A copy of Dovecot's configuration directory without `private/` (the certificate and key
/// links, which the translation names by their original paths).
fn copy_config(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if name == "private" {
            continue;
        }
        if e.path().is_dir() {
            copy_config(&e.path(), &to.join(&name));
        } else {
            fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// `doveconf -c CONF -h KEY`: Dovecot's own reading of one setting.
fn doveconf(conf: &Path, key: &str) -> String {
    let o = Command::new("timeout")
        .args(["20", "doveconf", "-c"])
        .arg(conf)
        .args(["-h", key])
        .output()
        .expect("doveconf");
    assert!(o.status.success(), "doveconf -h {key}: {}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

#[test]
fn debian_23_shipped_config() {
    if !common::require_tool("doveconf", "Debian's Dovecot 2.3 (dovecot-core)") {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let etc = d.path().join("dovecot");
    copy_config(Path::new("/etc/dovecot"), &etc);
    let conf = etc.join("dovecot.conf");
    let (t, table, stderr) = import(&etc, d.path());

    // What Dovecot itself reads in the same files.
    let location = doveconf(&conf, "mail_location");
    assert!(
        location.starts_with("mbox:"),
        "Debian's default: {location}"
    );
    let protocols = doveconf(&conf, "protocols");
    assert_eq!(
        protocols.split_whitespace().collect::<Vec<_>>(),
        ["imap", "pop3"]
    );
    let cert = doveconf(&conf, "ssl_cert");
    assert_eq!(
        format!("<{}", get(&table, "tls.cert").as_str().unwrap()),
        cert
    );
    assert_eq!(get(&table, "auth.backend").as_str(), Some("pam"));
    assert_eq!(strs(get(&table, "imap.listen")), ["[::]:143"]);
    assert_eq!(strs(get(&table, "imap.listen_tls")), ["[::]:993"]);
    assert_eq!(strs(get(&table, "pop3.listen")), ["[::]:110"]);
    assert_eq!(strs(get(&table, "pop3.listen_tls")), ["[::]:995"]);
    assert_eq!(get(&table, "mail.maildir").as_str(), Some("~/Maildir"));
    assert!(
        table["pop3"].get("uidl_format").is_none(),
        "Dovecot's default is ours"
    );

    // The mbox location cannot be carried over: said on stderr and in the file, with the
    // file and line it was set at.
    let line = fs::read_to_string(etc.join("conf.d/10-mail.conf"))
        .unwrap()
        .lines()
        .position(|l| l.starts_with("mail_location"))
        .expect("Debian sets mail_location in 10-mail.conf")
        + 1;
    let mbox = format!("10-mail.conf:{line}: mail_location: the mail is in mbox format");
    assert!(stderr.contains(&mbox), "{stderr}");
    assert!(
        t.contains(&format!("#   {}/conf.d/{mbox}", etc.display())),
        "{t}"
    );
    assert!(
        stderr.contains("passdb pam: Dovecot's PAM service"),
        "{stderr}"
    );
    assert!(
        t.contains("# Ignored (nestbox needs no equivalent):"),
        "{t}"
    );
    assert!(t.contains("ssl_dh"), "{t}");

    // check-config: the PAM backend is only built with --features nonstick; without it
    // that must be the one problem.
    let out = d.path().join("nestbox.toml");
    let o = nestbox(&["check-config", "-c", out.to_str().unwrap()]);
    let err = text(&o.stderr);
    if cfg!(feature = "nonstick") {
        assert!(o.status.success(), "check-config: {err}");
        assert!(err.contains(": OK"), "{err}");
    } else {
        let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("nestbox: ")).collect();
        assert_eq!(problems.len(), 1, "{err}");
        assert!(problems[0].contains("PAM backend not built"), "{err}");
        // Only root (and ssl-cert) may read the snakeoil key.
        let key = get(&table, "tls.key").as_str().unwrap();
        if fs::File::open(key).is_ok() {
            assert!(!err.contains("tls:"), "the certificate must load: {err}");
        }
    }
}

#[test]
fn home_server_24_config() {
    let d = tempfile::tempdir().expect("tempdir");
    let (t, table, stderr) = import(&fixture_24(), d.path());
    assert!(t.contains("(Dovecot 2.4)"), "{t}");
    assert_eq!(get(&table, "hostname").as_str(), Some("mail.example.org"));
    assert!(strs(get(&table, "imap.listen")).is_empty(), "port = 0: off");
    assert_eq!(strs(get(&table, "imap.listen_tls")), ["[::]:993"]);
    assert!(strs(get(&table, "pop3.listen")).is_empty(), "port = 0: off");
    assert_eq!(strs(get(&table, "pop3.listen_tls")), ["[::]:995"]);
    assert_eq!(get(&table, "pop3.uidl_format").as_str(), Some("%g"));
    assert_eq!(get(&table, "pop3.retr_seen").as_bool(), Some(false));
    assert_eq!(
        get(&table, "tls.cert").as_str(),
        Some("/etc/letsencrypt/live/mail.example.org/fullchain.pem")
    );
    assert_eq!(
        get(&table, "tls.key").as_str(),
        Some("/etc/letsencrypt/live/mail.example.org/privkey.pem")
    );
    assert_eq!(get(&table, "auth.backend").as_str(), Some("passwd-file"));
    assert_eq!(
        get(&table, "auth.passwd_file").as_str(),
        Some("/etc/dovecot/users")
    );
    assert_eq!(
        get(&table, "auth.plaintext_on_loopback").as_bool(),
        Some(false),
        "ssl = required"
    );
    assert_eq!(
        get(&table, "mail.maildir").as_str(),
        Some("/srv/mail/%d/%n/Maildir"),
        "the static userdb's home, then mail_path"
    );
    assert_eq!(get(&table, "mail.quota").as_str(), Some("2G"));
    assert_eq!(get(&table, "mail.user").as_str(), Some("vmail"));
    assert_eq!(get(&table, "mail.group").as_str(), Some("vmail"));
    assert_eq!(get(&table, "mail.special_use.Sent").as_str(), Some("Sent"));
    assert_eq!(
        get(&table, "mail.special_use.Trash").as_str(),
        Some("Trash")
    );
    for what in ["first_valid_uid = 500", "auto = subscribe"] {
        assert!(stderr.contains(what), "{what} not translated: {stderr}");
        assert!(t.contains(what), "{what} listed in the file: {t}");
    }

    // With the Let's Encrypt and users paths pointing at files of this test (the test
    // server's generated certificate pair and users file), check-config accepts it.
    let server = TestServer::start_kind(Kind::Nestbox, Options::default());
    let patched = t
        .replace(
            "/etc/letsencrypt/live/mail.example.org/fullchain.pem",
            server.dir.join("cert.pem").to_str().unwrap(),
        )
        .replace(
            "/etc/letsencrypt/live/mail.example.org/privkey.pem",
            server.dir.join("key.pem").to_str().unwrap(),
        )
        .replace(
            "/etc/dovecot/users",
            server.dir.join("users").to_str().unwrap(),
        );
    let path = d.path().join("patched.toml");
    fs::write(&path, patched).unwrap();
    let o = nestbox(&["check-config", "-c", path.to_str().unwrap()]);
    assert!(o.status.success(), "check-config: {}", text(&o.stderr));
}

/// The translated `[pop3]` (uidl_format = "%g", retr_seen = false) on a Dovecot Maildir:
/// the UIDLs are those Dovecot's pop3 gives with the fixture's own `pop3_uidl_format`.
#[test]
#[cfg_attr(
    nestbox_missing_dovecot_pop3,
    ignore = "Dovecot's pop3 (dovecot-pop3d) is not installed"
)]
fn served_uidls_equal_dovecots_with_the_original_setting() {
    if !common::require_tool(
        common::dovecot_pop3::PROGRAM,
        "Dovecot's POP3 (dovecot-pop3d)",
    ) {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let (t, _, _) = import(&fixture_24(), d.path());
    let original = fs::read_to_string(fixture_24().join("conf.d/20-pop3.conf")).unwrap();
    let original = original
        .lines()
        .find_map(|l| l.trim().strip_prefix("pop3_uidl_format = "))
        .expect("the fixture's pop3_uidl_format");
    // The generated [pop3] section's own lines, without the listeners (the harness has its
    // own ports).
    let pop3: String = t
        .split("[pop3]\n")
        .nth(1)
        .and_then(|r| r.split("\n\n").next())
        .expect("[pop3]")
        .lines()
        .filter(|l| !l.starts_with("listen"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(pop3.contains("uidl_format"), "{pop3}");

    let md = common::dovecot_pop3::uidl_maildir(d.path());
    let dovecot = common::dovecot_pop3::uidls(&md, original);
    let server = TestServer::start_kind(
        Kind::Nestbox,
        Options {
            seed_maildir: Some(md),
            pop3_extra: Some(pop3),
            ..Options::default()
        },
    );
    let mut pop = common::Pop3Client::login(&server, USER, PASSWORD);
    let ours = pop.uidl();
    pop.quit();
    assert_eq!(ours, dovecot, "UIDL (nestbox, Dovecot with {original})");
    assert!(
        ours.iter()
            .any(|(_, u)| u == "0123456789abcdef0123456789abcdef"),
        "a G field is the UIDL: {ours:?}"
    );
}

#[test]
fn errors_say_where() {
    let d = tempfile::tempdir().expect("tempdir");
    let missing = d.path().join("no-such-dir");
    let o = nestbox(&["import-dovecot", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no-such-dir: no such file or directory"),
        "{}",
        text(&o.stderr)
    );

    let bad = d.path().join("bad");
    fs::create_dir_all(bad.join("conf.d")).unwrap();
    fs::write(
        bad.join("dovecot.conf"),
        "protocols = imap\n!include conf.d/*.conf\n",
    )
    .unwrap();
    fs::write(
        bad.join("conf.d/10-mail.conf"),
        "mail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n\nthis is not a setting\n}\n",
    )
    .unwrap();
    let o = nestbox(&["import-dovecot", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("conf.d/10-mail.conf:5: expected"), "{err}");
    assert!(o.stdout.is_empty(), "nothing written on error");

    // An existing output is kept without --force, replaced with it.
    let out = d.path().join("nestbox.toml");
    fs::write(&out, "# mine\n").unwrap();
    let o = nestbox(&[
        "import-dovecot",
        fixture_24().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("exists (use --force"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "# mine\n");
    let o = nestbox(&[
        "import-dovecot",
        fixture_24().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        fs::read_to_string(&out)
            .unwrap()
            .contains("uidl_format = \"%g\"")
    );
}
