//! `dovecot-keywords`: the table that names the lower-case flag letters of
//! one folder (`<n> <keyword>` lines, `a` = 0, at most 26).
//!
//! Owns reading and atomically rewriting that file. Letters are only ever
//! added, never reassigned: another program may hold file names that use
//! them. It never renames message files.

use crate::store::beneath::Dir;
use std::io;

/// The file name inside a folder directory.
pub const FILE: &str = "dovecot-keywords";

/// The keyword names of the 26 letters `a`..`z`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
}

impl Keywords {
    /// Parses the file's text; malformed lines are skipped (the file is
    /// shared with other programs, and a bad line must not hide the rest).
    pub fn parse(text: &str) -> Self {
        let mut k = Keywords::default();
        for line in text.lines() {
            let Some((n, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else {
                continue;
            };
            if n >= 26 || name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
                continue;
            }
            if k.names.len() <= n {
                k.names.resize(n + 1, None);
            }
            k.names[n] = Some(name.to_string());
        }
        k
    }

    /// Reads the folder's table; a missing file is an empty table.
    pub fn load(dir: &Dir) -> io::Result<Self> {
        match dir.read(FILE) {
            Ok(b) => Ok(Self::parse(&String::from_utf8_lossy(&b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                out.push_str(&format!("{i} {n}\n"));
            }
        }
        out
    }

    /// Writes the table atomically (temporary file, then rename).
    pub fn save(&self, dir: &Dir) -> io::Result<()> {
        dir.write_atomic(FILE, self.render().as_bytes(), super::FILE_MODE, false)
    }

    /// The keyword a letter stands for.
    /// Every defined keyword name, in letter order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().flatten().map(String::as_str)
    }

    pub fn name(&self, letter: char) -> Option<&str> {
        let i = (letter as usize).checked_sub('a' as usize)?;
        self.names.get(i)?.as_deref()
    }

    /// The letter of a keyword (keywords compare case-insensitively).
    pub fn letter(&self, name: &str) -> Option<char> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|i| char::from_u32('a' as u32 + i as u32))
    }

    /// `flags` with each keyword that has a letter spelt as this table
    /// spells it (keywords compare case-insensitively; the folder's first
    /// spelling is the one every session sees, as in Dovecot); `None` when
    /// they already are, which is nearly always.
    pub fn canonical(&self, flags: &crate::flags::Flags) -> Option<crate::flags::Flags> {
        let spelt = |k: &str| self.letter(k).and_then(|c| self.name(c));
        if flags
            .keywords()
            .iter()
            .all(|k| spelt(k).is_none_or(|n| n == k))
        {
            return None;
        }
        let mut out = crate::flags::Flags::new();
        out.system = flags.system;
        for k in flags.keywords() {
            out.insert_keyword(spelt(k).unwrap_or(k));
        }
        Some(out)
    }

    /// How many letters have names. Only [`Keywords::assign`] changes the
    /// table in memory, and only by adding, so a changed count means "save".
    pub fn assigned(&self) -> usize {
        self.names.iter().filter(|n| n.is_some()).count()
    }

    /// Gives a keyword the first free letter; `None` when all 26 are used.
    /// Names a file name could not carry (spaces, control characters) get
    /// no letter.
    pub fn assign(&mut self, name: &str) -> Option<char> {
        if let Some(c) = self.letter(name) {
            return Some(c);
        }
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let i = match self.names.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.names.len() < 26 => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => return None,
        };
        self.names[i] = Some(name.to_string());
        char::from_u32('a' as u32 + i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let k = Keywords::parse("0 Junk\n2 $Label1\nbad\n30 x\n1 NonJunk\n");
        assert_eq!(k.name('a'), Some("Junk"));
        assert_eq!(k.name('b'), Some("NonJunk"));
        assert_eq!(k.name('c'), Some("$Label1"));
        assert_eq!(k.name('d'), None);
        assert_eq!(k.name('A'), None);
        assert_eq!(k.letter("junk"), Some('a'));
        assert_eq!(Keywords::parse(&k.render()), k);
    }

    #[test]
    fn assign_fills_holes_then_stops_at_26() {
        let mut k = Keywords::parse("1 B\n");
        assert_eq!(k.assign("A"), Some('a'));
        assert_eq!(k.assign("C"), Some('c'));
        assert_eq!(k.assign("b"), Some('b'));
        for i in 3..26 {
            assert!(k.assign(&format!("k{i}")).is_some());
        }
        assert_eq!(k.assign("overflow"), None);
        assert_eq!(k.assign("has space"), None);
    }

    #[test]
    fn save_and_load() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_root(t.path()).unwrap();
        assert_eq!(Keywords::load(&d).unwrap(), Keywords::default());
        let mut k = Keywords::default();
        k.assign("$Forwarded");
        k.save(&d).unwrap();
        assert_eq!(Keywords::load(&d).unwrap(), k);
        // A keyword table that is a symlink (to a file of someone else's)
        // is not read: an error, not its content.
        std::fs::remove_file(t.path().join(FILE)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join(FILE)).unwrap();
        assert!(Keywords::load(&d).is_err());
    }
}
