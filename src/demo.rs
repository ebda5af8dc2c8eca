//! `nestbox demo` (SPEC §2): a complete, self-contained setup in one directory, so a new
//! user can point a mail client at nestbox within a minute.
//!
//! [`prepare`] creates, in DIR: `nestbox.toml` (IMAP on loopback, ports 1143 and 1993; POP3
//! on loopback, ports 1110 and 1995),
//! a self-signed certificate for `localhost`/`127.0.0.1` (`cert.pem`, `key.pem`), a
//! passwd-file `users` with `demo`/`demo`, and a Maildir++ under `mail/demo/Maildir` with
//! sample messages in INBOX, Sent, Drafts, Trash, Junk and Archive.
//!
//! Re-running reuses DIR: every file that exists is kept as it is (the user may have edited
//! the config or read and moved mail), and only missing pieces are created. The Maildir is
//! built under a temporary name and renamed into place, so an interrupted first run never
//! leaves a half-seeded mailbox that later runs would take as complete.
//!
//! This module writes only inside DIR and never starts the server itself.
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::config::Config;

/// Where `nestbox demo` works when `--dir` is not given.
pub const DEFAULT_DIR: &str = "nestbox-demo";
/// The demo account.
pub const DEMO_USER: &str = "demo";
/// The demo account's password.
pub const DEMO_PASSWORD: &str = "demo";

/// Why the demo directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or directory could not be created or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The self-signed certificate could not be generated.
    #[error("cannot generate the demo certificate: {0}")]
    Cert(String),
    /// The demo password could not be hashed.
    #[error(transparent)]
    Hash(#[from] crate::auth::hash::HashError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates (or completes) the demo directory and returns the path of its config file.
pub fn prepare(dir: &Path) -> Result<PathBuf, DemoError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    let dir = fs::canonicalize(dir).map_err(io_err(dir))?;

    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if !(cert.exists() && key.exists()) {
        write_certificate(&cert, &key)?;
    }

    let users = dir.join("users");
    if !users.exists() {
        let field =
            crate::auth::hash::hash_password(DEMO_PASSWORD, crate::auth::hash::Scheme::Argon2id)?;
        let text = format!(
            "# nestbox passwd-file (Dovecot format): user:{{SCHEME}}hash:uid:gid:gecos:home:shell:extra\n\
             # Add a user: echo \"ann:$(nestbox passwd)::::::\" >> users\n\
             {DEMO_USER}:{field}::::::\n"
        );
        write_new(&users, text.as_bytes(), 0o600)?;
    }

    let mail_root = dir.join("mail");
    let maildir = mail_root.join(DEMO_USER).join("Maildir");
    if !maildir.exists() {
        seed_maildir(&maildir)?;
    }
    let as_root = rustix::process::geteuid().is_root();
    if as_root {
        give_mail_to(&dir, &mail_root, ROOT_DEMO_MAIL_USER)?;
    }

    let config = dir.join("nestbox.toml");
    if !config.exists() {
        write_new(
            &config,
            config_text(&dir, &cert, &key, &users, &mail_root, as_root).as_bytes(),
            0o644,
        )?;
    }
    Ok(config)
}

fn toml_str(p: &Path) -> String {
    toml::Value::String(p.to_string_lossy().into_owned()).to_string()
}

/// The user whose uid serves the demo's mail when the demo runs as root: nestbox never
/// serves mail as root (`server::identity`), and `nobody` exists on every system.
const ROOT_DEMO_MAIL_USER: &str = "nobody";

/// Run as root: the mail goes to `user` (as a `mail.user` such as `vmail` owns its
/// users' mail), and DIR becomes traversable (0711) so that user reaches it; the users
/// file and the key stay readable by root only.
fn give_mail_to(dir: &Path, mail_root: &Path, user: &str) -> Result<(), DemoError> {
    use std::os::unix::fs::PermissionsExt;
    let pw = crate::auth::sysdb::passwd_entry(user)
        .ok()
        .flatten()
        .ok_or_else(|| DemoError::Io {
            path: mail_root.to_path_buf(),
            source: std::io::Error::other(format!("no system user {user:?} to own the demo mail")),
        })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).map_err(io_err(dir))?;
    chown_tree(mail_root, pw.uid, pw.gid)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), DemoError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err(path))?;
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        for e in fs::read_dir(path).map_err(io_err(path))? {
            chown_tree(&e.map_err(io_err(path))?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn config_text(
    dir: &Path,
    cert: &Path,
    key: &Path,
    users: &Path,
    mail_root: &Path,
    as_root: bool,
) -> String {
    let maildir = mail_root.join("%u").join("Maildir");
    let mail_user = if as_root {
        format!(
            "# Started as root: the demo's mail belongs to {ROOT_DEMO_MAIL_USER:?} and is served\n\
             # as that user (nestbox never touches mail as root).\n\
             user = {ROOT_DEMO_MAIL_USER:?}\n"
        )
    } else {
        String::new()
    };
    format!(
        "# nestbox demo configuration, written by `nestbox demo --dir {dir}`.\n\
         # Edit freely: re-running the demo keeps this file. See nestbox.toml(5).\n\
         hostname = \"localhost\"\n\
         \n\
         [imap]\n\
         listen = [\"127.0.0.1:1143\"]       # cleartext + STARTTLS\n\
         listen_tls = [\"127.0.0.1:1993\"]   # implicit TLS\n\
         \n\
         [pop3]\n\
         listen = [\"127.0.0.1:1110\"]       # cleartext + STLS\n\
         listen_tls = [\"127.0.0.1:1995\"]   # implicit TLS\n\
         \n\
         [tls]\n\
         cert = {cert}\n\
         key = {key}\n\
         \n\
         [auth]\n\
         backend = \"passwd-file\"\n\
         passwd_file = {users}\n\
         plaintext_on_loopback = true\n\
         \n\
         [mail]\n\
         maildir = {maildir}\n\
         {mail_user}\
         \n\
         [limits]\n\
         max_connections = 100\n\
         max_connections_per_ip = 50\n",
        dir = dir.display(),
        cert = toml_str(cert),
        key = toml_str(key),
        users = toml_str(users),
        maildir = toml_str(&maildir),
    )
}

/// Writes a file that must not exist yet (never clobbers what the user has).
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), DemoError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn write_certificate(cert: &Path, key: &Path) -> Result<(), DemoError> {
    let cert_err = |e: rcgen::Error| DemoError::Cert(e.to_string());
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(cert_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nestbox demo (localhost)");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    // Apple clients refuse server certificates valid for more than 825 days.
    let ymd = |t: DateTime<Utc>| {
        let d = t.date_naive();
        use chrono::Datelike;
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let now = Utc::now();
    params.not_before = ymd(now - ChronoDuration::days(1));
    params.not_after = ymd(now + ChronoDuration::days(800));
    let key_pair = rcgen::KeyPair::generate().map_err(cert_err)?;
    let c = params.self_signed(&key_pair).map_err(cert_err)?;
    // Either file may be a leftover of an interrupted run; both are replaced together.
    for p in [cert, key] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(p)(e)),
        }
    }
    write_new(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, c.pem().as_bytes(), 0o644)
}

/// One sample message: folder ("" = INBOX), flags (None = still in `new/`), age, text.
struct Sample {
    folder: &'static str,
    flags: Option<&'static str>,
    hours_ago: i64,
    text: String,
}

/// The Maildir++ folders created besides INBOX, with their SPECIAL-USE meaning.
pub const FOLDERS: &[&str] = &["Sent", "Drafts", "Trash", "Junk", "Archive"];

fn seed_maildir(maildir: &Path) -> Result<(), DemoError> {
    let parent = maildir.parent().unwrap_or(Path::new("."));
    let builder = {
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b
    };
    builder.create(parent).map_err(io_err(parent))?;
    let staging = parent.join(format!(".Maildir.tmp-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    for folder in std::iter::once("").chain(FOLDERS.iter().copied()) {
        let fdir = folder_dir(&staging, folder);
        for sub in ["cur", "new", "tmp"] {
            let p = fdir.join(sub);
            builder.create(&p).map_err(io_err(&p))?;
        }
        if !folder.is_empty() {
            write_new(&fdir.join("maildirfolder"), b"", 0o600)?;
        }
    }
    // Dovecot's subscriptions format, version 2 (SPEC §5).
    let mut subs = String::from("V\t2\n\n");
    for f in FOLDERS {
        subs.push_str(f);
        subs.push('\n');
    }
    write_new(&staging.join("subscriptions"), subs.as_bytes(), 0o600)?;

    let host = maildir_host();
    let now = Utc::now();
    for (q, s) in samples(now).iter().enumerate() {
        let when = now - ChronoDuration::hours(s.hours_ago);
        deliver(&folder_dir(&staging, s.folder), s, when, q, &host)?;
    }
    fs::rename(&staging, maildir).map_err(io_err(maildir))
}

fn folder_dir(root: &Path, folder: &str) -> PathBuf {
    if folder.is_empty() {
        root.to_path_buf()
    } else {
        root.join(format!(".{folder}"))
    }
}

/// The host part of a unique name: `/` and `:` would break the name, so they are written
/// as `\057` and `\072` (Maildir specification).
fn maildir_host() -> String {
    let h = gethostname::gethostname().to_string_lossy().into_owned();
    let h = if h.is_empty() {
        "localhost".to_string()
    } else {
        h
    };
    h.replace('/', "\\057").replace(':', "\\072")
}

/// Writes one message the way an MTA does: into `tmp/`, fsync, set the mtime (which is the
/// IMAP INTERNALDATE), then rename into `new/` or `cur/`.
fn deliver(
    folder: &Path,
    s: &Sample,
    when: DateTime<Utc>,
    q: usize,
    host: &str,
) -> Result<(), DemoError> {
    let bytes = s.text.as_bytes();
    let size = bytes.len();
    // W= is the size with CRLF line endings, what IMAP's RFC822.SIZE reports.
    let vsize = size + bytes.iter().filter(|&&b| b == b'\n').count();
    let unique = format!(
        "{}.M{}P{}Q{}.{host},S={size},W={vsize}",
        when.timestamp(),
        when.timestamp_subsec_micros(),
        std::process::id(),
        q + 1,
    );
    let tmp = folder.join("tmp").join(&unique);
    write_new(&tmp, bytes, 0o600)?;
    let mtime = filetime::FileTime::from_unix_time(when.timestamp(), 0);
    filetime::set_file_mtime(&tmp, mtime).map_err(io_err(&tmp))?;
    let dest = match s.flags {
        None => folder.join("new").join(&unique),
        Some(flags) => folder.join("cur").join(format!("{unique}:2,{flags}")),
    };
    fs::rename(&tmp, &dest).map_err(io_err(&dest))
}

/// RFC 2047 encoded-word for a UTF-8 header value.
fn encoded_word(s: &str) -> String {
    use base64::Engine;
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(s)
    )
}

fn samples(now: DateTime<Utc>) -> Vec<Sample> {
    let date = |hours: i64| (now - ChronoDuration::hours(hours)).to_rfc2822();
    let mid = |n: u32| format!("<demo-{n}.{}@nestbox.localhost>", now.timestamp());
    // A 1x1 transparent PNG, as a realistic small attachment.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
    let subject_utf8 = encoded_word("Grüße aus München – Käsespätzle-Rezept 🧀");
    let from_utf8 = encoded_word("Jürgen Müller");
    vec![
        Sample {
            folder: "",
            flags: Some("S"),
            hours_ago: 72,
            text: format!(
                "Return-Path: <postmaster@nestbox.localhost>\n\
                 From: nestbox <postmaster@nestbox.localhost>\n\
                 To: Demo User <demo@nestbox.localhost>\n\
                 Subject: Welcome to nestbox\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 MIME-Version: 1.0\n\
                 Content-Type: text/plain; charset=utf-8\n\
                 Content-Transfer-Encoding: 7bit\n\
                 \n\
                 Hello!\n\
                 \n\
                 This mailbox is served by nestbox from an ordinary Maildir. Everything you\n\
                 do here - reading, flagging, moving, deleting - is a rename or an unlink\n\
                 in that directory, so mutt, Dovecot or a shell script see the same state.\n\
                 \n\
                 Try flagging this message on one device and watch it change on another.\n\
                 \n\
                 -- \n\
                 nestbox\n",
                date(72),
                mid(1)
            ),
        },
        Sample {
            folder: "",
            flags: Some("FS"),
            hours_ago: 50,
            text: format!(
                "From: Alice Example <alice@example.org>\n\
                 To: demo@nestbox.localhost\n\
                 Subject: Photos from the weekend\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 MIME-Version: 1.0\n\
                 Content-Type: multipart/mixed; boundary=\"=-b1-nestbox\"\n\
                 \n\
                 This is a multi-part message in MIME format.\n\
                 \n\
                 --=-b1-nestbox\n\
                 Content-Type: text/plain; charset=utf-8\n\
                 Content-Transfer-Encoding: 7bit\n\
                 \n\
                 Hi,\n\
                 \n\
                 here is the (very small) picture I promised. The others follow later.\n\
                 \n\
                 Alice\n\
                 \n\
                 --=-b1-nestbox\n\
                 Content-Type: image/png; name=\"pixel.png\"\n\
                 Content-Disposition: attachment; filename=\"pixel.png\"\n\
                 Content-Transfer-Encoding: base64\n\
                 \n\
                 {png}\n\
                 \n\
                 --=-b1-nestbox--\n",
                date(50),
                mid(2)
            ),
        },
        Sample {
            folder: "",
            flags: Some("RS"),
            hours_ago: 30,
            text: format!(
                "From: {from_utf8} <juergen@example.de>\n\
                 To: demo@nestbox.localhost\n\
                 Subject: {subject_utf8}\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 MIME-Version: 1.0\n\
                 Content-Type: text/plain; charset=utf-8\n\
                 Content-Transfer-Encoding: quoted-printable\n\
                 \n\
                 Hallo!\n\
                 \n\
                 Anbei das Rezept f=C3=BCr K=C3=A4sesp=C3=A4tzle: 500 g Mehl, 5 Eier, 200 g\n\
                 Bergk=C3=A4se, R=C3=B6stzwiebeln. Gr=C3=BC=C3=9Fe aus M=C3=BCnchen!\n\
                 \n\
                 J=C3=BCrgen\n",
                date(30),
                mid(3)
            ),
        },
        Sample {
            folder: "",
            flags: None,
            hours_ago: 5,
            text: format!(
                "From: Bob Builder <bob@example.net>\n\
                 To: demo@nestbox.localhost\n\
                 Cc: alice@example.org\n\
                 Subject: Re: Welcome to nestbox\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 In-Reply-To: {}\n\
                 References: {}\n\
                 MIME-Version: 1.0\n\
                 Content-Type: multipart/alternative; boundary=\"alt-7f3a\"\n\
                 \n\
                 --alt-7f3a\n\
                 Content-Type: text/plain; charset=us-ascii\n\
                 \n\
                 Nice to see this running. Does IDLE push work on your phone too?\n\
                 \n\
                 Bob\n\
                 --alt-7f3a\n\
                 Content-Type: text/html; charset=us-ascii\n\
                 \n\
                 <html><body><p>Nice to see this running. Does <b>IDLE</b> push work on\n\
                 your phone too?</p><p>Bob</p></body></html>\n\
                 --alt-7f3a--\n",
                date(5),
                mid(4),
                mid(1),
                mid(1)
            ),
        },
        Sample {
            folder: "",
            flags: None,
            hours_ago: 1,
            text: format!(
                "From: Calendar <calendar@example.org>\n\
                 To: demo@nestbox.localhost\n\
                 Subject: Reminder: backup the mail server\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 \n\
                 Reminder: Maildirs are plain files. rsync -a ~/Maildir somewhere safe.\n",
                date(1),
                mid(5)
            ),
        },
        Sample {
            folder: "Sent",
            flags: Some("S"),
            hours_ago: 29,
            text: format!(
                "From: Demo User <demo@nestbox.localhost>\n\
                 To: {from_utf8} <juergen@example.de>\n\
                 Subject: Re: {subject_utf8}\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 In-Reply-To: {}\n\
                 MIME-Version: 1.0\n\
                 Content-Type: text/plain; charset=utf-8\n\
                 Content-Transfer-Encoding: 8bit\n\
                 \n\
                 Danke, Jürgen! Ich probiere es am Wochenende aus.\n",
                date(29),
                mid(6),
                mid(3)
            ),
        },
        Sample {
            folder: "Drafts",
            flags: Some("DS"),
            hours_ago: 3,
            text: format!(
                "From: Demo User <demo@nestbox.localhost>\n\
                 To: bob@example.net\n\
                 Subject: Re: Re: Welcome to nestbox\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 MIME-Version: 1.0\n\
                 Content-Type: text/plain; charset=us-ascii\n\
                 \n\
                 Yes, new mail shows up at once. Still have to try\n",
                date(3),
                mid(7)
            ),
        },
        Sample {
            folder: "Trash",
            flags: Some("S"),
            hours_ago: 120,
            text: format!(
                "From: Newsletter <news@shop.example.com>\n\
                 To: demo@nestbox.localhost\n\
                 Subject: Your weekly deals\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 List-Unsubscribe: <mailto:unsubscribe@shop.example.com>\n\
                 \n\
                 This week: 20% off everything you do not need.\n",
                date(120),
                mid(8)
            ),
        },
        Sample {
            folder: "Junk",
            flags: Some(""),
            hours_ago: 10,
            text: format!(
                "From: \"Prize Department\" <winner@lottery.example>\n\
                 To: undisclosed-recipients:;\n\
                 Subject: You have WON 1,000,000 EUR!!!\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 X-Spam-Flag: YES\n\
                 \n\
                 Send us your bank details to claim your prize.\n",
                date(10),
                mid(9)
            ),
        },
        Sample {
            folder: "Archive",
            flags: Some("S"),
            hours_ago: 24 * 400,
            text: format!(
                "From: Alice Example <alice@example.org>\n\
                 To: demo@nestbox.localhost\n\
                 Subject: Flat contract (keep this)\n\
                 Date: {}\n\
                 Message-ID: {}\n\
                 \n\
                 The signed contract is in the shared folder. Keep this mail for reference.\n",
                date(24 * 400),
                mid(10)
            ),
        },
    ]
}

/// What to paste into a mail client, for the listeners in `cfg` (the demo account).
pub fn client_settings(cfg: &Config) -> String {
    let ports = |v: &[std::net::SocketAddr]| {
        v.iter()
            .map(|a| a.port().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let host = cfg
        .imap
        .listen_tls
        .iter()
        .chain(&cfg.imap.listen)
        .map(|a| a.ip())
        .next()
        .map(|ip| {
            if ip.is_unspecified() {
                "localhost".to_string()
            } else {
                ip.to_string()
            }
        })
        .unwrap_or_else(|| "localhost".to_string());
    let mut s = String::new();
    s.push_str("nestbox demo is ready. Mail client settings:\n\n");
    s.push_str(&format!("  Server:    {host}\n"));
    s.push_str(&format!("  Username:  {DEMO_USER}\n"));
    s.push_str(&format!("  Password:  {DEMO_PASSWORD}\n"));
    let line = |s: &mut String,
                proto: &str,
                tls: &[std::net::SocketAddr],
                plain: &[std::net::SocketAddr],
                st: &str| {
        if !tls.is_empty() {
            s.push_str(&format!("  {proto}:      port {}, SSL/TLS\n", ports(tls)));
        }
        if !plain.is_empty() {
            s.push_str(&format!("  {proto}:      port {}, {st}\n", ports(plain)));
        }
    };
    line(
        &mut s,
        "IMAP",
        &cfg.imap.listen_tls,
        &cfg.imap.listen,
        "STARTTLS",
    );
    line(
        &mut s,
        "POP3",
        &cfg.pop3.listen_tls,
        &cfg.pop3.listen,
        "STLS",
    );
    s.push_str("  Auth:      normal password (PLAIN/LOGIN)\n");
    s.push_str("  SMTP:      not part of nestbox; sending needs your own MTA\n");
    if let Some(cert) = &cfg.tls.cert {
        s.push_str(&format!(
            "\nThe certificate is self-signed ({}); accept it once in your client.\n",
            cert.display()
        ));
    }
    if let Some(a) = cfg.imap.listen_tls.first() {
        s.push_str(&format!(
            "\nTry it from a shell:\n  curl -k -u {DEMO_USER}:{DEMO_PASSWORD} imaps://{host}:{}/INBOX -X 'FETCH 1:* (FLAGS)'\n",
            a.port()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn prepare_twice_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let cfg_path = prepare(&dir).unwrap();
        let cfg = crate::config::load(&cfg_path).unwrap();
        assert_eq!(cfg.auth.backend, "passwd-file");
        assert_eq!(cfg.imap.listen[0].to_string(), "127.0.0.1:1143");
        assert_eq!(cfg.imap.listen_tls[0].to_string(), "127.0.0.1:1993");
        assert_eq!(cfg.pop3.listen[0].to_string(), "127.0.0.1:1110");
        assert_eq!(cfg.pop3.listen_tls[0].to_string(), "127.0.0.1:1995");
        let settings = client_settings(&cfg);
        assert!(settings.contains("port 1993, SSL/TLS"), "{settings}");
        assert!(settings.contains("port 1143, STARTTLS"), "{settings}");
        assert!(
            settings.contains("POP3:      port 1995, SSL/TLS"),
            "{settings}"
        );
        assert!(
            settings.contains("POP3:      port 1110, STLS"),
            "{settings}"
        );
        crate::server::tls::load_server_config(
            cfg.tls.cert.as_ref().unwrap(),
            cfg.tls.key.as_ref().unwrap(),
        )
        .unwrap();

        let root = fs::canonicalize(&dir).unwrap().join("mail/demo/Maildir");
        assert_eq!(cfg.maildir_for("demo", Path::new("/nonexistent")), root);
        let inbox_cur = list(&root.join("cur"));
        let inbox_new = list(&root.join("new"));
        assert_eq!((inbox_cur.len(), inbox_new.len()), (3, 2));
        assert!(inbox_new.iter().all(|n| !n.contains(":2,")));
        for name in inbox_cur.iter().chain(&inbox_new) {
            // <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<vsize>[:2,<flags>]
            let base = name.split(":2,").next().unwrap();
            let size: u64 = base
                .split(",S=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let path = if name.contains(":2,") {
                root.join("cur").join(name)
            } else {
                root.join("new").join(name)
            };
            assert_eq!(fs::metadata(&path).unwrap().len(), size, "{name}");
            assert!(base.split('.').nth(1).unwrap().starts_with('M'), "{name}");
        }
        assert!(inbox_cur.iter().any(|n| n.ends_with(":2,FS")));
        for f in FOLDERS {
            let fdir = root.join(format!(".{f}"));
            assert!(fdir.join("maildirfolder").exists(), "{f}");
            assert!(fdir.join("tmp").is_dir());
            assert_eq!(list(&fdir.join("cur")).len(), 1, "{f}");
        }
        assert!(list(&root.join(".Drafts/cur"))[0].ends_with(":2,DS"));
        assert!(list(&root.join("tmp")).is_empty());
        let subs = fs::read_to_string(root.join("subscriptions")).unwrap();
        assert!(subs.starts_with("V\t2\n\n") && subs.contains("\nArchive\n"));
        // Every message parses as MIME, and the non-ASCII subject decodes.
        let mut subjects = Vec::new();
        for name in &inbox_cur {
            let raw = fs::read(root.join("cur").join(name)).unwrap();
            let m = mailparse::parse_mail(&raw).unwrap();
            subjects.push(
                m.headers
                    .iter()
                    .find(|h| h.get_key() == "Subject")
                    .unwrap()
                    .get_value(),
            );
        }
        assert!(
            subjects.iter().any(|s| s.contains("Grüße aus München")),
            "{subjects:?}"
        );

        // The password works.
        let users = fs::read_to_string(fs::canonicalize(&dir).unwrap().join("users")).unwrap();
        let line = users.lines().find(|l| l.starts_with("demo:")).unwrap();
        let h = crate::auth::hash::StoredHash::parse(line.split(':').nth(1).unwrap()).unwrap();
        assert!(h.verify("demo"));

        // Second run: nothing changes, edits survive.
        fs::write(
            &cfg_path,
            fs::read_to_string(&cfg_path).unwrap() + "# edited\n",
        )
        .unwrap();
        let cert_before = fs::read(cfg.tls.cert.as_ref().unwrap()).unwrap();
        fs::rename(
            root.join("new").join(&inbox_new[0]),
            root.join("cur").join(format!("{}:2,S", inbox_new[0])),
        )
        .unwrap();
        let again = prepare(&dir).unwrap();
        assert_eq!(again, cfg_path);
        assert!(
            fs::read_to_string(&cfg_path)
                .unwrap()
                .ends_with("# edited\n")
        );
        assert_eq!(
            fs::read(cfg.tls.cert.as_ref().unwrap()).unwrap(),
            cert_before
        );
        assert_eq!(list(&root.join("cur")).len(), 4);
        assert_eq!(list(&root.join("new")).len(), 1);
        assert_eq!(list(root.parent().unwrap()), ["Maildir"]);

        let text = client_settings(&cfg);
        assert!(text.contains("port 1993, SSL/TLS"), "{text}");
        assert!(text.contains("port 1143, STARTTLS"), "{text}");
        assert!(text.contains("Password:  demo"), "{text}");
    }
}
