//! `nestbox import-dovecot`: reads a Dovecot 2.3 or 2.4 configuration and writes the
//! `nestbox.toml` that serves the same users, the same Maildirs (with the same UIDs: both
//! read `dovecot-uidlist`) and the same POP3 UIDLs (`pop3.uidl_format`), and lists what it
//! could not carry over, on standard error and as comments at the top of the output.
//!
//! - `parse`: Dovecot's syntax (includes, sections, variables) into a tree; hand-written,
//!   its module doc says why.
//! - `translate`: what each setting means for nestbox.
//!
//! Never writes anything but the output it is asked for, and never replaces an existing
//! file without `--force`; reads no mail, no password file and no certificate (paths are
//! carried over as written: `nestbox check-config` checks what they point at).
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub mod parse;
pub mod translate;

pub use translate::Translation;

/// Why the import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: no such file or directory", .0.display())]
    Missing(PathBuf),
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    #[error("{}: exists (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The configuration file for `path`: `path/dovecot.conf` for a directory, else `path`.
pub fn config_file(path: &Path) -> Result<PathBuf, ImportError> {
    let file = if path.is_dir() {
        path.join("dovecot.conf")
    } else {
        path.to_path_buf()
    };
    if !file.is_file() {
        return Err(ImportError::Missing(file));
    }
    Ok(file)
}

/// Reads and translates the configuration at `path` (a directory or a file); the TOML
/// comes with the header naming its source and both lists.
pub fn import(path: &Path) -> Result<Translation, ImportError> {
    let file = config_file(path)?;
    let top = parse::parse_file(&file)?;
    let mut t = translate::translate(&top);
    let mut head = format!(
        "# nestbox.toml written by `nestbox import-dovecot` from {} (Dovecot {}).\n\
         # See nestbox.toml(5); `nestbox check-config -c FILE` checks it.\n",
        file.display(),
        t.version
    );
    for (title, list) in [
        ("Not translated (check each)", &t.untranslated),
        ("Ignored (nestbox needs no equivalent)", &t.ignored),
    ] {
        if list.is_empty() {
            continue;
        }
        head.push_str(&format!("#\n# {title}:\n"));
        for l in list {
            head.push_str(&format!("#   {}\n", l.replace('\n', " ")));
        }
    }
    t.toml = format!("{head}\n{}", t.toml);
    Ok(t)
}

/// Writes `text` to `out` (created; replaced only with `force`), or to stdout.
pub fn write_output(text: &str, out: Option<&Path>, force: bool) -> Result<(), ImportError> {
    let Some(out) = out else {
        let mut so = std::io::stdout().lock();
        return so
            .write_all(text.as_bytes())
            .and_then(|()| so.flush())
            .map_err(|e| ImportError::Write {
                path: PathBuf::from("<stdout>"),
                source: e,
            });
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ImportError::Exists(out.to_path_buf())
        } else {
            ImportError::Write {
                path: out.to_path_buf(),
                source: e,
            }
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| ImportError::Write {
            path: out.to_path_buf(),
            source: e,
        })
}
