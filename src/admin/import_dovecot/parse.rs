//! Dovecot's configuration syntax (2.3 and 2.4), read into a tree of sections and settings,
//! each with the file and line it came from. Owns the syntax only: what a setting means is
//! `translate`'s. Never writes anything and never reads a file but the configuration's own
//! (`!include` targets); `key = <file` is kept as the path, not read.
//!
//! What it reads, as Dovecot's `config-parser.c` does: `#` comments (whole lines, and from a
//! `#` outside quotes to the end of a line), a `\` at the end of a line joining the next,
//! `key = value` (quotes around the value removed, with their `\` escapes), `key = <path`,
//! `section [name] {` ... `}` nested, `!include` and `!include_try` with `*`/`?` globs in the
//! file-name part, relative to the including file's directory, sorted as glob(3) does, and
//! `$key` / `$SET:key` at the start of a value replaced by that key's earlier value in the
//! same section (how Debian's `protocols = $protocols imap` adds up); any other `$`, and
//! every `%` variable, is left as written.
//!
//! Hand-written: no maintained crate reads dovecot.conf (none on crates.io at the time of
//! writing), and the grammar is line-based and small.
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// Where a setting or section was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A `key = value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// Written `key = <path`: `value` is the path (relative ones made absolute against the
    /// file's directory).
    pub from_file: bool,
    pub loc: Loc,
}

/// A `kind [name] { ... }` block, or the whole file (kind and name empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: String,
    pub loc: Option<Loc>,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Set(Setting),
    Section(Section),
}

/// Why a configuration cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{loc}: {message}")]
    Syntax { loc: Loc, message: String },
}

/// Includes nested deeper than this are a loop.
const MAX_DEPTH: usize = 20;

impl Section {
    /// The last value of `key` set directly in this section.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.items.iter().rev().find_map(|i| match i {
            Item::Set(s) if s.key == key => Some(s),
            _ => None,
        })
    }

    /// The sections of this kind directly inside this one.
    pub fn sections<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.items.iter().filter_map(move |i| match i {
            Item::Section(s) if s.kind == kind => Some(s),
            _ => None,
        })
    }
}

/// Reads `path` and everything it includes.
pub fn parse_file(path: &Path) -> Result<Section, ParseError> {
    let mut p = Parser {
        stack: vec![Section::default()],
        depth: 0,
    };
    p.file(path, false)?;
    let mut stack = p.stack;
    if stack.len() > 1 {
        let open = stack.pop().unwrap_or_default();
        return Err(ParseError::Syntax {
            loc: open.loc.unwrap_or(Loc {
                file: path.to_path_buf(),
                line: 0,
            }),
            message: format!(
                "section {} {} is never closed (missing '}}')",
                open.kind, open.name
            ),
        });
    }
    Ok(stack.pop().unwrap_or_default())
}

struct Parser {
    /// The open sections, the file's top level first.
    stack: Vec<Section>,
    depth: usize,
}

impl Parser {
    fn file(&mut self, path: &Path, try_only: bool) -> Result<(), ParseError> {
        let text = match fs::read(path) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if try_only && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ParseError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut joined = String::new();
        let mut first_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = strip_comment(raw.trim_start()).trim_end();
            if joined.is_empty() {
                first_line = n;
            }
            if let Some(head) = line.strip_suffix('\\') {
                let head = head.trim_end();
                if !head.is_empty() {
                    joined.push_str(head);
                    joined.push(' ');
                }
                continue;
            }
            joined.push_str(line);
            let whole = std::mem::take(&mut joined);
            let loc = Loc {
                file: path.to_path_buf(),
                line: first_line,
            };
            self.line(whole.trim(), loc, &dir)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str, loc: Loc, dir: &Path) -> Result<(), ParseError> {
        if line.is_empty() {
            return Ok(());
        }
        let syntax = |message: String| ParseError::Syntax {
            loc: loc.clone(),
            message,
        };
        let key_end = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let key = &line[..key_end];
        let rest = line[key_end..].trim_start();
        if key == "!include" || key == "!include_try" {
            return self.include(rest, key == "!include_try", &loc, dir);
        }
        if let Some(value) = rest.strip_prefix('=') {
            let value = value.trim_start();
            let (value, from_file) = match value.strip_prefix('<') {
                Some(p) => {
                    let p = p.trim_start();
                    let path = if Path::new(p).is_absolute() || p.is_empty() {
                        p.to_string()
                    } else {
                        dir.join(p).display().to_string()
                    };
                    (path, true)
                }
                None => (self.expand(unquote(value)), false),
            };
            self.top().items.push(Item::Set(Setting {
                key: key.to_string(),
                value,
                from_file,
                loc,
            }));
            return Ok(());
        }
        if key == "}" && rest.is_empty() {
            if self.stack.len() < 2 {
                return Err(syntax("'}' without an open section".into()));
            }
            let done = self.stack.pop().unwrap_or_default();
            self.top().items.push(Item::Section(done));
            return Ok(());
        }
        if key.is_empty() {
            return Err(syntax(format!("expected a key: {line:?}")));
        }
        // `kind [name] {`
        let (name, after) = if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| syntax("a section name without its closing '\"'".into()))?;
            (unescape(&q[..end]), q[end + 1..].trim_start())
        } else if rest.starts_with('{') {
            (String::new(), rest)
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (rest[..end].to_string(), rest[end..].trim_start())
        };
        if after != "{" {
            return Err(syntax(format!(
                "expected 'key = value', 'section {{' or '}}': {line:?}"
            )));
        }
        self.stack.push(Section {
            kind: key.to_string(),
            name,
            loc: Some(loc),
            items: Vec::new(),
        });
        Ok(())
    }

    fn include(
        &mut self,
        pattern: &str,
        try_only: bool,
        loc: &Loc,
        dir: &Path,
    ) -> Result<(), ParseError> {
        let pattern = unquote(pattern);
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::Syntax {
                loc: loc.clone(),
                message: format!("!include nested more than {MAX_DEPTH} deep (a loop?)"),
            });
        }
        let full = if Path::new(&pattern).is_absolute() {
            PathBuf::from(&pattern)
        } else {
            dir.join(&pattern)
        };
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let files = if name.contains(['*', '?']) {
            let parent = full.parent().unwrap_or(Path::new("/"));
            let mut found: Vec<PathBuf> = match fs::read_dir(parent) {
                Ok(rd) => rd
                    .flatten()
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        !n.starts_with('.') && glob_match(name.as_bytes(), n.as_bytes())
                    })
                    .map(|e| e.path())
                    .collect(),
                Err(_) => Vec::new(),
            };
            found.sort();
            // Dovecot: a pattern that matches nothing is an error for !include, not
            // for !include_try.
            if found.is_empty() && !try_only {
                return Err(ParseError::Syntax {
                    loc: loc.clone(),
                    message: format!("!include {}: no file matches", full.display()),
                });
            }
            found
        } else {
            vec![full]
        };
        self.depth += 1;
        for f in files {
            self.file(&f, try_only).map_err(|e| match e {
                ParseError::Io { path, source } => ParseError::Syntax {
                    loc: loc.clone(),
                    message: format!("!include {}: {source}", path.display()),
                },
                e => e,
            })?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn top(&mut self) -> &mut Section {
        if self.stack.is_empty() {
            self.stack.push(Section::default());
        }
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    /// `$key rest` / `$SET:key rest`: the earlier value of `key` in this section, then the
    /// rest; anything else unchanged.
    fn expand(&mut self, value: String) -> String {
        let Some(var) = value.strip_prefix('$') else {
            return value;
        };
        let var = var.strip_prefix("SET:").unwrap_or(var);
        let end = var.find(char::is_whitespace).unwrap_or(var.len());
        let (name, rest) = var.split_at(end);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return value;
        }
        let before = self
            .top()
            .get(name)
            .map(|s| s.value.clone())
            .unwrap_or_default();
        format!("{before}{rest}")
    }
}

/// The line up to a `#` outside quotes.
fn strip_comment(line: &str) -> &str {
    if line.starts_with('#') {
        return "";
    }
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// A value without its surrounding quotes (and their escapes undone).
fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        return unescape(&v[1..v.len() - 1]);
    }
    v.to_string()
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// `*` and `?` over one file name.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&p[1..], s) || (!s.is_empty() && glob_match(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob_match(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(files: &[(&str, &str)]) -> Result<Section, ParseError> {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        parse_file(&d.path().join(files[0].0))
    }

    #[test]
    fn settings_sections_includes_and_variables() {
        let top = parse(&[
            (
                "dovecot.conf",
                "# comment\nprotocols = imap\n!include conf.d/*.conf\n!include_try none.conf\n\
                 protocols = $protocols pop3 # trailing\nlisten = \"*, ::\"\n\
                 mail_location = maildir:~/Maildir:\\\n  LAYOUT=fs\n",
            ),
            (
                "conf.d/10-ssl.conf",
                "ssl_cert = <certs/a.pem\nservice imap-login {\n  inet_listener \"imap s\" {\n    port = 0\n  }\n}\n",
            ),
            ("conf.d/20-x.conf", "hostname = 'h#1'\n"),
            ("conf.d/20-x.conf.bak", "broken {{{\n"),
        ])
        .unwrap();
        assert_eq!(top.get("protocols").unwrap().value, "imap pop3");
        assert_eq!(top.get("listen").unwrap().value, "*, ::");
        assert_eq!(top.get("hostname").unwrap().value, "h#1");
        let ml = top.get("mail_location").unwrap();
        assert_eq!(ml.value, "maildir:~/Maildir: LAYOUT=fs");
        assert_eq!(ml.loc.line, 7);
        let cert = top.get("ssl_cert").unwrap();
        assert!(cert.from_file && cert.value.ends_with("conf.d/certs/a.pem"));
        let svc = top.sections("service").next().unwrap();
        assert_eq!(svc.name, "imap-login");
        let l = svc.sections("inet_listener").next().unwrap();
        assert_eq!(
            (l.name.as_str(), l.get("port").unwrap().value.as_str()),
            ("imap s", "0")
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse(&[("d.conf", "a = 1\n}\n")]).unwrap_err().to_string();
        assert!(e.ends_with("d.conf:2: '}' without an open section"), "{e}");
        let e = parse(&[("d.conf", "a = 1\nservice x {\nb = 2\n")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.conf:2: section service x is never closed"),
            "{e}"
        );
        let e = parse(&[("d.conf", "\n\njunk here\n")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.conf:3: expected"), "{e}");
        let e = parse(&[("d.conf", "!include nope.conf\n")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.conf:1: !include"), "{e}");
        let e = parse(&[("d.conf", "!include d.conf\n")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("loop"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*.conf", b"10-auth.conf"));
        assert!(!glob_match(b"*.conf", b"10-auth.conf.ext"));
        assert!(glob_match(b"?0-*", b"10-x"));
    }
}
