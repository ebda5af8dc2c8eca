//! Build script: writes the man pages from the command line's definition, and tells the
//! tests which peer programs this machine lacks.
//!
//! ## Man pages
//!
//! `src/cli.rs` is compiled here too (it depends on `std` and `clap` only, for this reason),
//! and `clap_mangen` renders `nestbox.1` plus one page per visible subcommand
//! (`nestbox-serve.1`, `nestbox-quota-show.1`, ...; hidden internal commands get none) into
//! `$OUT_DIR/man/`, so the pages are `--help` in roff and cannot drift from it; a subcommand
//! added to `src/cli.rs` gets its page at the next build. They are copied to
//! `target/<profile>/man/` as well (the profile directory is `OUT_DIR`'s third ancestor,
//! `target/<profile>/build/nestbox-*/out`), gzipped as Debian policy wants (without name or
//! time stamp, so reproducible; cargo-deb compresses only assets it did not see built), which
//! is where the Debian package's assets name them (`target/release/man/*.1.gz`: cargo-deb maps
//! `target/release/` to the real target directory). Both directories are emptied of pages
//! first, so a removed subcommand leaves no stale page behind. `man/nestbox.toml.5`, about the config file, is written by hand.
//!
//! ## Peer programs
//!
//! Some tests drive real peers (Python's `imaplib` and `poplib`, `mbsync`, `fetchmail`, Postfix,
//! Dovecot's LDA, POP3 server and `doveadm`) and some need root. libtest has no way for a
//! running test to say "skipped": one that returns early shows as `ok`, its reason swallowed
//! by output capture.
//! So the decision is taken here, at build time: for each missing peer this emits a
//! `nestbox_missing_*` cfg, and the tests carry
//! `#[cfg_attr(nestbox_missing_X, ignore = "why")]`, so `cargo test` lists them as
//! `ignored, <why>` and counts them in its summary.
//!
//! Under CI (`CI` set) nothing is marked: every test runs, and one whose peer is missing fails
//! (`tests/common::require_tool` panics), because CI installs them all.
//!
//! The script runs again when `CI` or `PATH` changes, when a directory on `PATH` changes, and
//! when Debian's package database does (an `apt-get install` of a peer), so installing a peer
//! is enough to have its tests run at the next `cargo test`. It never affects the server's own
//! code: only test attributes read these cfgs.
use std::path::{Path, PathBuf};

#[allow(dead_code)] // Only the clap types are used here; main.rs uses the rest.
#[path = "src/cli.rs"]
mod cli;

/// (cfg suffix, program name or absolute path).
const PEERS: &[(&str, &str)] = &[
    ("python3", "python3"),
    ("mbsync", "mbsync"),
    ("postfix", "postfix"),
    ("dovecot_lda", "/usr/lib/dovecot/dovecot-lda"),
    ("dovecot_pop3", "/usr/lib/dovecot/pop3"),
    ("fetchmail", "fetchmail"),
    ("runuser", "runuser"),
    ("doveadm", "doveadm"),
    ("dpkg_deb", "dpkg-deb"),
    ("lintian", "lintian"),
    ("cargo_deb", "cargo-deb"),
];

fn main() -> std::io::Result<()> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/cli.rs");
    // An error fails the build, with this message.
    man_pages().map_err(|e| std::io::Error::other(format!("writing the man pages: {e}")))?;
    peers();
    Ok(())
}

/// Renders `nestbox.1` and one page per visible subcommand into `$OUT_DIR/man/` and gzipped
/// copies into `target/<profile>/man/` (the module doc says why).
fn man_pages() -> std::io::Result<()> {
    use clap::CommandFactory;
    let out = PathBuf::from(
        std::env::var_os("OUT_DIR").ok_or_else(|| std::io::Error::other("OUT_DIR not set"))?,
    );
    let generated = out.join("man");
    let mut dirs = vec![generated.clone()];
    if let Some(profile_dir) = out.ancestors().nth(3) {
        dirs.push(profile_dir.join("man"));
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(".1") || name.ends_with(".1.gz") {
                std::fs::remove_file(path)?;
            }
        }
    }
    // As clap_mangen::generate_to does, with every page's footer naming nestbox and its
    // version (subcommands have no version of their own), and nestbox(1) given cli::MORE_HELP
    // as sections of their own (clap_mangen puts `after_long_help` under one "EXTRA").
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_pages(&cmd, &generated, true)?;
    for dir in &dirs[1..] {
        for entry in std::fs::read_dir(&generated)? {
            let entry = entry?;
            let mut name = entry.file_name();
            name.push(".gz");
            let page = std::fs::read(entry.path())?;
            let file = std::fs::File::create(dir.join(name))?;
            let mut gz = flate2::GzBuilder::new().write(file, flate2::Compression::best());
            std::io::Write::write_all(&mut gz, &page)?;
            gz.finish()?;
        }
    }
    Ok(())
}

/// The page of `cmd` (a built command, so its display name is its path, `nestbox-quota-show`)
/// and, recursively, of its subcommands not marked hidden.
fn write_pages(cmd: &clap::Command, dir: &Path, top: bool) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, false)?;
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("nestbox {}", env!("CARGO_PKG_VERSION")))
        .manual("nestbox manual");
    let mut page = Vec::new();
    man.render(&mut page)?;
    if top {
        let text = String::from_utf8_lossy(&page);
        page = with_sections(&text, cli::MORE_HELP).into_bytes();
    }
    std::fs::write(dir.join(man.get_filename()), page)
}

/// `page` with its `.SH EXTRA` section (up to the next `.SH`) replaced by one section per
/// `(title, text)`, or with those added before the last section if it has none.
fn with_sections(page: &str, sections: &[(&str, &str)]) -> String {
    let mut roff = String::new();
    for (title, text) in sections {
        roff.push_str(&format!(".SH \"{}\"\n", title.to_uppercase()));
        for (i, paragraph) in text.split("\n\n").enumerate() {
            if i > 0 {
                roff.push_str(".PP\n");
            }
            roff.push_str(&roff_text(paragraph));
            roff.push('\n');
        }
    }
    let (start, end) = match page.find(".SH EXTRA\n") {
        Some(start) => {
            let rest = start + ".SH EXTRA\n".len();
            let end = page[rest..].find(".SH ").map_or(page.len(), |e| rest + e);
            (start, end)
        }
        None => {
            let at = page.rfind(".SH ").unwrap_or(page.len());
            (at, at)
        }
    };
    format!("{}{roff}{}", &page[..start], &page[end..])
}

/// Plain text as roff: backslashes and hyphens escaped, no line starting with a control
/// character.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Marks the peer programs this machine lacks (the module doc says how).
fn peers() {
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let dpkg = Path::new("/var/lib/dpkg/status");
    if dpkg.is_file() {
        println!("cargo::rerun-if-changed={}", dpkg.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).filter(|d| d.is_dir()) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    for (name, _) in PEERS {
        println!("cargo::rustc-check-cfg=cfg(nestbox_missing_{name})");
    }
    println!("cargo::rustc-check-cfg=cfg(nestbox_not_root)");
    // tests/package.rs installs and purges the .deb system-wide: only where asked to (CI, or
    // NESTBOX_TEST_PACKAGE=1 on a machine of one's own), never silently on a developer's.
    println!("cargo::rerun-if-env-changed=NESTBOX_TEST_PACKAGE");
    println!("cargo::rustc-check-cfg=cfg(nestbox_package_test_off)");
    let package_test = std::env::var_os("NESTBOX_TEST_PACKAGE").is_some_and(|v| v == "1");
    if std::env::var_os("CI").is_some() {
        return;
    }
    if !package_test {
        println!("cargo::rustc-cfg=nestbox_package_test_off");
    }
    for (name, program) in PEERS {
        let found = if program.starts_with('/') {
            Path::new(program).is_file()
        } else {
            std::env::split_paths(&path).any(|d| d.join(program).is_file())
        };
        if !found {
            println!("cargo::rustc-cfg=nestbox_missing_{name}");
        }
    }
    if !is_root() {
        println!("cargo::rustc-cfg=nestbox_not_root");
    }
}

/// Whether the build runs as root (the tests then do too: the same user runs `cargo test`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
