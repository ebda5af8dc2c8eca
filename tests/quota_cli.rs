//! `nestbox quota show|recalc` (issue 19, item 4) as an operator runs it: the built binary
//! with a passwd-file configuration, its table and its JSON checked against the files in
//! the Maildirs; users without a Maildir or a quota; an unknown user; planted symlinks;
//! run as root, that every file is read and written as the user (never as root); and
//! Dovecot's own quota code (`doveadm quota recalc` / `quota get`, Debian's Dovecot with
//! `quota = maildir:User quota`) as the reference for what `maildirsize` must say.
//!
//! Without root the tests run as the invoking user (users without a uid are served as it);
//! as root (CI) the test Maildirs belong to `nobody` (`mail.user`), or to uids of their own
//! in the root-only tests. Every run of the binary has a timeout.
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_nestbox");
/// How long one run of the binary may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// What a run printed and how it ended.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// The error lines nestbox printed (logs of other levels are not expected with the
    /// default filter, but are left out anyway).
    fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("nestbox: "))
            .collect()
    }
}

/// Runs `cmd` to its end within [`PATIENCE`].
fn finish(cmd: &mut Command) -> Out {
    let f = common::run_to_end(cmd, PATIENCE);
    Out {
        code: f.code,
        stdout: f.stdout,
        stderr: f.stderr,
    }
}

/// Every test user's password field: a hash (a `{PLAIN}` one would be warned about).
const PW: &str = "{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";

/// One passwd-file user of a [`Site`].
struct TestUser<'a> {
    name: &'a str,
    /// uid and gid fields (`None`: empty, served as `mail.user` or the caller).
    ids: Option<(u32, u32)>,
    /// Extra fields, e.g. `userdb_quota_rule=*:storage=10K`.
    extra: &'a str,
}

/// A configuration, a passwd-file and the users' homes in a temp dir.
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    fn new(users: &[TestUser<'_>]) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        // Helpers running as the users must get through to their homes.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let d = dir.path();
        let mut lines = String::new();
        for u in users {
            let (uid, gid) = u.ids.map_or((String::new(), String::new()), |(u, g)| {
                (u.to_string(), g.to_string())
            });
            lines.push_str(&format!(
                "{}:{PW}:{uid}:{gid}::{}::{}\n",
                u.name,
                d.join("home").join(u.name).display(),
                u.extra
            ));
        }
        fs::write(d.join("users"), lines).expect("users");
        let mail_user = if common::mail_owner().is_some() {
            format!("user = \"{}\"\n", common::MAIL_OWNER)
        } else {
            String::new()
        };
        let config = d.join("nestbox.toml");
        fs::write(
            &config,
            format!(
                "[imap]\nlisten = [\"127.0.0.1:1\"]\nlisten_tls = []\n[pop3]\nlisten = []\n\
                 listen_tls = []\n[auth]\nbackend = \"passwd-file\"\npasswd_file = \"{}\"\n\
                 [mail]\nmaildir = \"~/Maildir\"\n{mail_user}",
                d.join("users").display()
            ),
        )
        .expect("config");
        Site { dir, config }
    }

    fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.home(user).join("Maildir")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("quota")
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .env_remove("NESTBOX_LOG")
            .env_remove("RUST_LOG");
        cmd
    }

    fn quota(&self, args: &[&str]) -> Out {
        finish(&mut self.command(args))
    }

    /// `quota ARGS --json`, which must succeed; the parsed array.
    fn json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.quota(&all);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }
}

/// Makes `cur/ new/ tmp/` of the Maildir root and of each `.Folder` in `folders`.
fn make_maildir(root: &Path, folders: &[&str]) {
    for f in std::iter::once("").chain(folders.iter().copied()) {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(f).join(sub)).expect("maildir dirs");
        }
    }
}

/// Writes a message of `len` bytes into `dir` (`cur` names get `:2,S`); with `size_field`
/// its name carries `,S=<len>` as Dovecot and nestbox write it. Returns the path.
fn put(dir: &Path, n: u32, len: usize, size_field: bool) -> PathBuf {
    let mut body = format!("Subject: message {n}\n\n").into_bytes();
    body.resize(len, b'x');
    let mut name = format!("{}.M{n}P{}.test", 1_700_000_000 + n, std::process::id());
    if size_field {
        name.push_str(&format!(",S={len}"));
    }
    if dir.ends_with("cur") {
        name.push_str(":2,S");
    }
    let path = dir.join(name);
    fs::write(&path, body).expect("write message");
    path
}

/// The real sizes of the messages under `root`: (bytes, messages) of every file in `cur/`
/// and `new/` of the root and of each `.Folder` (not `tmp/`, not names starting with a dot,
/// not through symlinks), from the file system, not from names.
fn on_disk(root: &Path) -> (u64, u64) {
    let mut folders = vec![root.to_path_buf()];
    for e in fs::read_dir(root).expect("read Maildir").flatten() {
        let is_folder = e.file_name().to_string_lossy().starts_with('.')
            && e.file_type().expect("type").is_dir();
        if is_folder {
            folders.push(e.path());
        }
    }
    let (mut bytes, mut count) = (0, 0);
    for f in folders {
        for sub in ["cur", "new"] {
            for e in fs::read_dir(f.join(sub)).into_iter().flatten().flatten() {
                let meta = fs::symlink_metadata(e.path()).expect("meta");
                if meta.is_file() && !e.file_name().to_string_lossy().starts_with('.') {
                    bytes += meta.len();
                    count += 1;
                }
            }
        }
    }
    (bytes, count)
}

/// The Maildir of the reference test: INBOX, Sent and a nested folder; messages
/// with and without `,S=`, in `new/` and in `cur/`; a file in `tmp/` that must not count.
fn reference_maildir(root: &Path) {
    make_maildir(root, &[".Sent", ".Archive.2024"]);
    put(&root.join("cur"), 1, 1500, true);
    put(&root.join("cur"), 2, 700, false);
    put(&root.join("new"), 3, 1200, false);
    put(&root.join("new"), 4, 333, true);
    put(&root.join(".Sent/cur"), 5, 900, false);
    put(&root.join(".Archive.2024/cur"), 6, 2048, true);
    put(&root.join(".Archive.2024/new"), 7, 10, false);
    put(&root.join("tmp"), 8, 5000, false);
}

/// As root (CI) the users' mail belongs to `mail.user`; a no-op otherwise.
fn give(site: &Site, user: &str) {
    if site.home(user).exists() {
        common::give_to_mail_user(&site.home(user));
    }
}

fn limit_rule() -> &'static str {
    "userdb_quota_rule=*:storage=10K:messages=8"
}

#[test]
fn show_and_recalc_of_a_passwd_file_user() {
    let site = Site::new(&[TestUser {
        name: "ann",
        ids: None,
        extra: limit_rule(),
    }]);
    let md = site.maildir("ann");
    reference_maildir(&md);
    give(&site, "ann");
    let file = md.join("maildirsize");

    // No maildirsize yet: no quota, which is not an error.
    let out = site.quota(&["show", "ann"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ann "))
        .expect("a row");
    assert!(row.ends_with("no quota"), "{}", out.stdout);
    let j = site.json(&["show", "ann"]);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["state"], "no-quota");
    assert!(j[0]["storage"].is_null() && j[0]["message"].is_null());
    assert!(!file.exists(), "show never writes");

    // recalc: the configured limits, the use counted from the folders.
    let (bytes, count) = on_disk(&md);
    assert_eq!(
        (bytes, count),
        (1500 + 700 + 1200 + 333 + 900 + 2048 + 10, 7)
    );
    let j = site.json(&["recalc", "ann"]);
    let a = &j[0];
    assert_eq!(a["user"], "ann");
    assert_eq!(a["maildir"], md.display().to_string());
    assert_eq!(a["state"], "quota");
    assert_eq!((&a["counted"], &a["written"]), (&true.into(), &true.into()));
    assert_eq!(a["storage"]["usage"], bytes);
    assert_eq!(a["storage"]["limit"], 10240);
    assert_eq!(a["storage"]["percent"], bytes * 100 / 10240);
    assert_eq!(a["message"]["usage"], count);
    assert_eq!(a["message"]["limit"], 8);
    assert_eq!(a["message"]["percent"], count * 100 / 8);
    assert_eq!(
        fs::read_to_string(&file).expect("maildirsize"),
        format!("10240S,8C\n{bytes} {count}\n")
    );

    // A delivery nestbox did not see: `show` reports the file, `show --recalc` the folders,
    // and neither writes.
    let extra = put(&md.join("new"), 9, 4000, false);
    common::give_to_mail_user(&extra);
    let j = site.json(&["show", "ann"]);
    assert_eq!(j[0]["storage"]["usage"], bytes);
    assert_eq!(j[0]["counted"], false);
    let j = site.json(&["show", "--recalc", "ann"]);
    assert_eq!(j[0]["storage"]["usage"], bytes + 4000);
    assert_eq!(j[0]["message"]["usage"], count + 1);
    assert_eq!(j[0]["message"]["percent"], 100);
    assert_eq!(
        (&j[0]["counted"], &j[0]["written"]),
        (&true.into(), &false.into())
    );
    assert_eq!(
        fs::read_to_string(&file).expect("maildirsize"),
        format!("10240S,8C\n{bytes} {count}\n")
    );

    // The table: sizes for people, shares, what was done.
    let out = site.quota(&["recalc", "ann"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "USER", "STORAGE", "LIMIT", "USE%", "MESSAGES", "LIMIT", "USE%", "NOTE"
        ]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    // 10691 bytes in 8 messages, of 10 KiB and 8.
    assert_eq!(bytes + 4000, 10691);
    assert_eq!(
        cells,
        [
            "ann",
            "10.4",
            "KiB",
            "10",
            "KiB",
            "104%",
            "8",
            "8",
            "100%",
            "recalculated"
        ],
        "{}",
        out.stdout
    );
    assert!(out.stderr.is_empty(), "nothing logged: {}", out.stderr);
}

#[test]
fn users_without_a_maildir_or_a_quota_are_shown_as_such() {
    let site = Site::new(&[
        TestUser {
            name: "ann",
            ids: None,
            extra: "",
        },
        TestUser {
            name: "bob",
            ids: None,
            extra: "",
        },
        TestUser {
            name: "carl",
            ids: None,
            extra: limit_rule(),
        },
    ]);
    // ann: a Maildir without maildirsize, and no limit configured; bob: no Maildir at all.
    make_maildir(&site.maildir("ann"), &[".Sent"]);
    put(&site.maildir("ann").join("cur"), 1, 100, true);
    make_maildir(&site.maildir("carl"), &[]);
    put(&site.maildir("carl").join("new"), 2, 50, false);
    give(&site, "ann");
    give(&site, "carl");

    let j = site.json(&["show", "--all"]);
    let states: Vec<(&str, &str)> = j
        .iter()
        .map(|r| (r["user"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("ann", "no-quota"),
            ("bob", "no-maildir"),
            ("carl", "no-quota")
        ]
    );

    let out = site.quota(&["recalc", "--all"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("no Maildir"), "{}", out.stdout);
    let j = site.json(&["recalc", "--all"]);
    // ann: counted, but no limit anywhere: no maildirsize is made.
    assert_eq!(j[0]["state"], "no-quota");
    assert_eq!(j[0]["storage"]["usage"], 100);
    assert!(j[0]["storage"]["limit"].is_null());
    assert!(!site.maildir("ann").join("maildirsize").exists());
    // bob: still none, and none was made for him.
    assert_eq!(j[1]["state"], "no-maildir");
    assert!(!site.home("bob").exists());
    // carl: the configured limits.
    assert_eq!(j[2]["state"], "quota");
    assert_eq!(j[2]["storage"]["usage"], 50);
    assert_eq!(
        fs::read_to_string(site.maildir("carl").join("maildirsize")).expect("carl's file"),
        "10240S,8C\n50 1\n"
    );

    // A maildirsize another program wrote, with no limit configured: recalc keeps its
    // limits and only recounts.
    fs::write(site.maildir("ann").join("maildirsize"), "5000S\n1 1\n7 7\n").expect("write");
    common::give_to_mail_user(&site.maildir("ann").join("maildirsize"));
    let j = site.json(&["recalc", "ann"]);
    assert_eq!(j[0]["storage"]["limit"], 5000);
    assert!(j[0]["message"]["limit"].is_null());
    assert_eq!(
        fs::read_to_string(site.maildir("ann").join("maildirsize")).expect("ann's file"),
        "5000S\n100 1\n"
    );
}

#[test]
fn an_unknown_user_is_a_one_line_error() {
    let site = Site::new(&[TestUser {
        name: "ann",
        ids: None,
        extra: "",
    }]);
    for args in [
        &["show", "zed"][..],
        &["recalc", "zed"],
        &["show", "--json", "zed"],
    ] {
        let out = site.quota(args);
        assert_eq!(out.code, Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert_eq!(
            out.stderr.lines().collect::<Vec<_>>(),
            ["nestbox: unknown user \"zed\""],
            "{args:?}"
        );
    }
    // A configuration that does not load is a usage error too.
    let out =
        finish(Command::new(BIN).args(["quota", "show", "--all", "-c", "/nonexistent/n.toml"]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    // The helper is nestbox's own: it refuses to be run as root by hand.
    if common::mail_owner().is_some() {
        let out = finish(Command::new(BIN).arg("quota-helper"));
        assert_eq!(out.code, Some(1));
        assert!(out.stderr.contains("never runs as root"), "{}", out.stderr);
    }
}

#[test]
fn planted_symlinks_are_not_followed() {
    let site = Site::new(&[TestUser {
        name: "ann",
        ids: None,
        extra: limit_rule(),
    }]);
    let md = site.maildir("ann");
    make_maildir(&md, &[".Sent"]);
    put(&md.join("cur"), 1, 300, true);
    put(&md.join(".Sent/new"), 2, 200, false);
    // Outside the Maildir: someone else's maildirsize and a folder full of mail.
    let outside = site.dir.path().join("outside");
    make_maildir(&outside.join("Folder"), &[]);
    put(&outside.join("Folder/cur"), 3, 5000, true);
    put(&outside.join("Folder/new"), 4, 6000, false);
    let theirs = outside.join("maildirsize");
    fs::write(&theirs, "1S\n4242 42\n").expect("theirs");
    std::os::unix::fs::symlink(&theirs, md.join("maildirsize")).expect("symlink file");
    std::os::unix::fs::symlink(outside.join("Folder"), md.join(".Evil")).expect("symlink dir");
    give(&site, "ann");
    // Writable by the user as well, so only the rule, not a permission, can keep it out.
    common::give_to_mail_user(&outside);

    // show: the planted maildirsize is an error, never read through.
    let out = site.quota(&["show", "ann"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains("ann:") && errors[0].contains("symlink"),
        "{}",
        errors[0]
    );
    assert!(!out.stderr.contains("4242"), "{}", out.stderr);

    // recalc: the folder behind the link counts nothing, the link is replaced by a file
    // of the user's, and what it pointed at is untouched.
    let j = site.json(&["recalc", "ann"]);
    assert_eq!(j[0]["storage"]["usage"], 500);
    assert_eq!(j[0]["message"]["usage"], 2);
    let meta = fs::symlink_metadata(md.join("maildirsize")).expect("maildirsize");
    assert!(meta.is_file(), "a file, not a link");
    assert_eq!(
        fs::read_to_string(md.join("maildirsize")).expect("read"),
        "10240S,8C\n500 2\n"
    );
    assert_eq!(
        fs::read_to_string(&theirs).expect("theirs"),
        "1S\n4242 42\n"
    );
    assert!(
        fs::symlink_metadata(md.join(".Evil"))
            .expect("link")
            .is_symlink()
    );
    assert_eq!(
        fs::read_dir(outside.join("Folder/cur"))
            .expect("dir")
            .count(),
        1
    );
}

/// uids for the root-only tests' users: not in any passwd database, which the kernel does
/// not mind (the passwd-file gives them).
const ANN_ID: u32 = 64_801;
const BOB_ID: u32 = 64_802;

/// A Maildir made by root and handed to `uid`, closed to everyone else.
fn own_maildir(site: &Site, user: &str, uid: u32) -> PathBuf {
    let md = site.maildir(user);
    make_maildir(&md, &[".Sent"]);
    put(&md.join("cur"), 1, 1000, true);
    put(&md.join(".Sent/cur"), 2, 400, false);
    common::chown_tree(&site.home(user), uid, uid);
    fs::set_permissions(&md, fs::Permissions::from_mode(0o700)).expect("chmod");
    md
}

#[test]
#[cfg_attr(nestbox_not_root, ignore = "changing uid needs root")]
fn as_root_each_maildir_is_read_and_written_as_its_user() {
    let site = Site::new(&[
        TestUser {
            name: "ann",
            ids: Some((ANN_ID, ANN_ID)),
            extra: limit_rule(),
        },
        TestUser {
            name: "bob",
            ids: Some((BOB_ID, BOB_ID)),
            extra: "userdb_quota_rule=*:storage=1M",
        },
        TestUser {
            name: "toor",
            ids: Some((0, 0)),
            extra: limit_rule(),
        },
    ]);
    let ann = own_maildir(&site, "ann", ANN_ID);
    let bob = own_maildir(&site, "bob", BOB_ID);
    // A folder in ann's Maildir that only root can read: counted by root, it would add
    // 7777 bytes; counted as ann, it cannot be opened and adds nothing.
    let private = ann.join(".Private");
    make_maildir(&private, &[]);
    put(&private.join("cur"), 3, 7777, true);
    common::chown_tree(&private, 0, 0);
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod");
    // toor, served as uid 0, is refused: its Maildir must stay untouched.
    make_maildir(&site.maildir("toor"), &[]);

    let out = site.quota(&["recalc", "--all", "--json"]);
    assert_eq!(out.code, Some(1), "toor is an error: {}", out.stderr);
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].starts_with("nestbox: toor: refusing"),
        "{}",
        errors[0]
    );
    let j: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
    let by = |name: &str| j.iter().find(|r| r["user"] == name).expect("row").clone();
    assert_eq!(
        by("ann")["storage"]["usage"],
        1400,
        "the private folder is ann's to read"
    );
    assert_eq!(by("bob")["storage"]["limit"], 1 << 20);
    assert_eq!(by("toor")["state"], "error");
    assert!(!site.maildir("toor").join("maildirsize").exists());

    // Every file each recalc wrote is its user's, not root's.
    for (md, uid) in [(&ann, ANN_ID), (&bob, BOB_ID)] {
        let meta = fs::metadata(md.join("maildirsize")).expect("maildirsize");
        assert_eq!((meta.uid(), meta.gid()), (uid, uid), "{}", md.display());
        for e in fs::read_dir(md).expect("read").flatten() {
            if e.file_name() == ".Private" {
                continue;
            }
            assert_eq!(e.metadata().expect("meta").uid(), uid, "{:?}", e.path());
        }
    }

    // Run as ann herself (not root): only ann is hers to see or recount.
    let as_ann = |args: &[&str]| {
        let mut cmd = site.command(args);
        std::os::unix::process::CommandExt::uid(&mut cmd, ANN_ID);
        std::os::unix::process::CommandExt::gid(&mut cmd, ANN_ID);
        finish(&mut cmd)
    };
    let out = as_ann(&["show", "ann"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("ann "), "{}", out.stdout);
    let out = as_ann(&["recalc", "ann"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = as_ann(&["show", "bob"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.is_empty());
    assert!(
        out.errors()[0].contains(&format!("uid {BOB_ID}")),
        "{}",
        out.stderr
    );
    let out = as_ann(&["show", "--all", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let j: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
    let users: Vec<&str> = j.iter().map(|r| r["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["ann"]);
}

/// Dovecot's `maildir` quota backend on the same Maildir, through `doveadm`, as the
/// reference: both must write the same `maildirsize` and report the same STORAGE and
/// MESSAGE. Then the two places where they differ on purpose (why: the module doc of
/// `admin::quota::maildir`, and nestbox(1)): a file whose name starts with a dot and a
/// folder that is a symlink, which Dovecot counts and nestbox does not.
///
/// `doveadm` runs for `$USER` with `$HOME`, without `-u`: with `-u` it asks a running
/// Dovecot's auth server for the user, and there is none here; the home and
/// `mail_location = maildir:~/Maildir` say what a passwd-file userdb line would.
#[test]
#[cfg_attr(
    nestbox_missing_doveadm,
    ignore = "doveadm is not installed (Debian package dovecot-core)"
)]
fn maildirsize_agrees_with_dovecots_quota_code() {
    if !common::require_tool("doveadm", "the reference for maildirsize") {
        return;
    }
    let site = Site::new(&[TestUser {
        name: "ann",
        ids: None,
        extra: limit_rule(),
    }]);
    let md = site.maildir("ann");
    reference_maildir(&md);
    give(&site, "ann");
    let dovecot_conf = dovecot_config(&site);
    let doveadm = |args: &[&str]| {
        let mut cmd = Command::new("doveadm");
        cmd.arg("-c")
            .arg(&dovecot_conf)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("USER", "ann")
            .env("HOME", site.home("ann"));
        let out = finish(&mut cmd);
        assert_eq!(out.code, Some(0), "doveadm {args:?}: {}", out.stderr);
        out.stdout
    };
    let file = md.join("maildirsize");

    let check = |bytes: u64, count: u64| {
        // nestbox first, then Dovecot over the same Maildir: the same file.
        let ours = site.json(&["recalc", "ann"]);
        assert_eq!(ours[0]["storage"]["usage"], bytes);
        assert_eq!(ours[0]["message"]["usage"], count);
        let written = fs::read_to_string(&file).expect("nestbox's maildirsize");
        assert_eq!(written, format!("10240S,8C\n{bytes} {count}\n"));
        doveadm(&["quota", "recalc"]);
        let theirs = fs::read_to_string(&file).expect("Dovecot's maildirsize");
        (written, theirs, ours)
    };

    // The Maildir: exactly the same.
    let (bytes, count) = on_disk(&md);
    let (written, theirs, ours) = check(bytes, count);
    assert_eq!(theirs, written, "Dovecot's maildirsize");
    // Dovecot's report: STORAGE in KiB rounded up, and its share of that.
    let get: serde_json::Value =
        serde_json::from_str(&doveadm(&["-f", "json", "quota", "get"])).expect("doveadm json");
    let field = |kind: &str, key: &str| -> u64 {
        let row = get
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["type"] == kind))
            .unwrap_or_else(|| panic!("no {kind} in {get}"));
        row[key]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("a number")
    };
    assert_eq!(field("STORAGE", "value"), bytes.div_ceil(1024));
    assert_eq!(field("STORAGE", "limit"), 10);
    assert_eq!(field("MESSAGE", "value"), count);
    assert_eq!(field("MESSAGE", "limit"), 8);
    assert_eq!(field("MESSAGE", "percent"), ours[0]["message"]["percent"]);
    // Dovecot's share is of the rounded-up KiB (7 of 10 here: 70 %), nestbox's of the
    // bytes (65 %): the same use, said with more precision.
    assert_eq!(field("STORAGE", "percent"), bytes.div_ceil(1024) * 100 / 10);
    assert_eq!(ours[0]["storage"]["percent"], bytes * 100 / 10240);
    // And nestbox reads Dovecot's file as its own.
    let shown = site.json(&["show", "ann"]);
    assert_eq!(shown[0]["storage"]["usage"], bytes);
    assert_eq!(shown[0]["message"]["usage"], count);

    // The differences: a dot file in cur/ (not a message to Dovecot's own mail store
    // either: maildir-sync skips it) and a folder that is a symlink (nestbox never follows
    // one). Dovecot counts both; nestbox neither.
    let dot = md.join("cur").join(".hidden");
    fs::write(&dot, vec![b'x'; 64]).expect("dot file");
    let outside = site.dir.path().join("elsewhere");
    make_maildir(&outside, &[]);
    put(&outside.join("cur"), 20, 128, false);
    std::os::unix::fs::symlink(&outside, md.join(".Linked")).expect("symlink");
    common::give_to_mail_user(&dot);
    common::give_to_mail_user(&outside);
    let (_, theirs, _) = check(bytes, count);
    assert_eq!(
        theirs,
        format!("10240S,8C\n{} {}\n", bytes + 64 + 128, count + 2),
        "Dovecot counts the dot file and follows the symlink"
    );
}

/// A `dovecot.conf` for `doveadm` alone: the quota plugin with the same limits as the
/// passwd-file line, the Maildir under `$HOME`, mail processes as the Maildir's owner.
fn dovecot_config(site: &Site) -> PathBuf {
    let d = site.dir.path();
    for sub in ["run", "state"] {
        fs::create_dir_all(d.join(sub)).expect("dovecot dirs");
    }
    // As root (CI) the Maildir is `nobody`'s; else the invoking user's. Dovecot's internal
    // user must be one that exists: Debian's `dovecot` as root, else the invoking user.
    let meta = fs::metadata(site.maildir("ann")).expect("Maildir");
    let (uid, gid) = (meta.uid(), meta.gid());
    let internal = if common::mail_owner().is_some() {
        "dovecot".to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| whoami())
    };
    let conf = d.join("dovecot.conf");
    fs::write(
        &conf,
        format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols =\nssl = no\n\
             default_internal_user = {internal}\ndefault_internal_group = {group}\n\
             default_login_user = {internal}\n\
             first_valid_uid = {uid}\nlast_valid_uid = 0\nfirst_valid_gid = 0\n\
             mail_uid = {uid}\nmail_gid = {gid}\n\
             mail_location = maildir:~/Maildir\nmail_plugins = quota\n\
             plugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage=10K:messages=8\n}}\n",
            d = d.display(),
            group = group_of(&internal),
        ),
    )
    .expect("dovecot.conf");
    conf
}

/// The invoking user's name, when `$USER` is not set.
fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The primary group name of `user`.
fn group_of(user: &str) -> String {
    let out = Command::new("id")
        .args(["-gn", user])
        .output()
        .expect("id -gn");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
