//! Message flags: the vocabulary shared by the IMAP grammar (`proto`) and the
//! mail store (`store`).
//!
//! Owns the in-memory representation of a message's flags. It knows nothing
//! about wire syntax or Maildir filenames: `proto` renders and parses the
//! IMAP form, `store::maildir` maps to and from the `:2,` info suffix.

use std::fmt;

/// One IMAP flag as a client names it (RFC 9051 §2.3.2).
///
/// `\Recent` is not a `Flag`: it is session state, never stored, and a
/// client may not set it (RFC 9051 drops it; RFC 3501 §2.3.2 makes it
/// read-only). `Extension` carries any other `\Word` so the session can
/// refuse it with a clear message instead of the parser guessing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// A keyword (atom without a leading backslash), e.g. `$Forwarded`, `Junk`.
    Keyword(String),
    /// An unknown system flag such as `\Foo` (without the backslash).
    Extension(String),
}

impl Flag {
    /// The IMAP spelling, e.g. `\Seen` or `$Forwarded`.
    pub fn as_imap(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Flag::Seen => "\\Seen".into(),
            Flag::Answered => "\\Answered".into(),
            Flag::Flagged => "\\Flagged".into(),
            Flag::Deleted => "\\Deleted".into(),
            Flag::Draft => "\\Draft".into(),
            Flag::Keyword(k) => k.as_str().into(),
            Flag::Extension(x) => format!("\\{x}").into(),
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_imap())
    }
}

/// Bit values for the five storable system flags.
pub mod sys {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
}

/// The flags of one message: system flags as bits, keywords as a sorted,
/// de-duplicated list (keywords compare case-insensitively, RFC 9051 §2.3.2
/// treats flag names as case-insensitive; the first spelling seen is kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    pub system: u8,
    keywords: Vec<String>,
}

impl Flags {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_flags<'a>(flags: impl IntoIterator<Item = &'a Flag>) -> Self {
        let mut f = Flags::new();
        for flag in flags {
            f.insert(flag);
        }
        f
    }

    fn bit(flag: &Flag) -> Option<u8> {
        match flag {
            Flag::Seen => Some(sys::SEEN),
            Flag::Answered => Some(sys::ANSWERED),
            Flag::Flagged => Some(sys::FLAGGED),
            Flag::Deleted => Some(sys::DELETED),
            Flag::Draft => Some(sys::DRAFT),
            _ => None,
        }
    }

    /// Tests only: whether the set holds `flag` (the server asks
    /// [`Flags::has`] and [`Flags::has_keyword`]).
    #[cfg(test)]
    pub fn contains(&self, flag: &Flag) -> bool {
        match flag {
            Flag::Keyword(k) => self.has_keyword(k),
            Flag::Extension(_) => false,
            other => Self::bit(other).is_some_and(|b| self.system & b != 0),
        }
    }

    pub fn has(&self, bit: u8) -> bool {
        self.system & bit != 0
    }

    pub fn has_keyword(&self, k: &str) -> bool {
        self.keywords.iter().any(|x| x.eq_ignore_ascii_case(k))
    }

    /// Adds a flag. `Extension` flags are ignored: they cannot be stored.
    pub fn insert(&mut self, flag: &Flag) {
        match flag {
            Flag::Keyword(k) => self.insert_keyword(k),
            Flag::Extension(_) => {}
            other => {
                if let Some(b) = Self::bit(other) {
                    self.system |= b;
                }
            }
        }
    }

    pub fn insert_keyword(&mut self, k: &str) {
        if !self.has_keyword(k) {
            // In place, without a lowercased copy per comparison (this runs
            // for every message with a keyword when a folder is opened).
            let at = self
                .keywords
                .partition_point(|x| cmp_ignore_ascii_case(x, k).is_lt());
            self.keywords.insert(at, k.to_string());
        }
    }

    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// Applies a STORE operation and returns whether anything changed.
    pub fn apply(&mut self, op: FlagOp, flags: &Flags) -> bool {
        if !self.changed_by(op, flags) {
            return false;
        }
        match op {
            FlagOp::Replace => *self = flags.clone(),
            FlagOp::Add => {
                self.system |= flags.system;
                for k in &flags.keywords {
                    self.insert_keyword(k);
                }
            }
            FlagOp::Remove => {
                self.system &= !flags.system;
                for k in &flags.keywords {
                    self.keywords.retain(|x| !x.eq_ignore_ascii_case(k));
                }
            }
        }
        true
    }

    /// Whether [`Flags::apply`] would change these flags; without copying
    /// them. `STORE 1:* +FLAGS (\Seen)` asks this of every message, and
    /// most already have the flag.
    pub fn changed_by(&self, op: FlagOp, flags: &Flags) -> bool {
        match op {
            FlagOp::Replace => self != flags,
            FlagOp::Add => {
                flags.system & !self.system != 0
                    || flags.keywords.iter().any(|k| !self.has_keyword(k))
            }
            FlagOp::Remove => {
                flags.system & self.system != 0
                    || flags.keywords.iter().any(|k| self.has_keyword(k))
            }
        }
    }

    /// Every flag in a stable order: system flags first, then keywords.
    pub fn iter(&self) -> impl Iterator<Item = Flag> + '_ {
        [
            (sys::ANSWERED, Flag::Answered),
            (sys::FLAGGED, Flag::Flagged),
            (sys::DELETED, Flag::Deleted),
            (sys::SEEN, Flag::Seen),
            (sys::DRAFT, Flag::Draft),
        ]
        .into_iter()
        .filter(|(b, _)| self.system & b != 0)
        .map(|(_, f)| f)
        .chain(self.keywords.iter().map(|k| Flag::Keyword(k.clone())))
    }
}

/// The order of keywords: their ASCII-lowercased bytes.
fn cmp_ignore_ascii_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// How STORE combines the given flags with the existing ones (RFC 9051 §6.4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive_and_sorted() {
        let mut f = Flags::new();
        f.insert(&Flag::Keyword("beta".into()));
        f.insert(&Flag::Keyword("Alpha".into()));
        f.insert(&Flag::Keyword("ALPHA".into()));
        assert_eq!(f.keywords(), ["Alpha", "beta"]);
        assert!(f.contains(&Flag::Keyword("alpha".into())));
    }

    #[test]
    fn apply_reports_change() {
        let mut f = Flags::new();
        let seen = Flags::from_flags(&[Flag::Seen]);
        assert!(f.apply(FlagOp::Add, &seen));
        assert!(!f.apply(FlagOp::Add, &seen));
        assert!(f.apply(FlagOp::Remove, &seen));
        assert_eq!(f, Flags::new());
    }

    fn flags_from(system: u8, kws: &[usize]) -> Flags {
        let names = ["Junk", "$label1", "$Label1", "Work"];
        let mut f = Flags::new();
        f.system = system;
        for &k in kws {
            f.insert_keyword(names[k]);
        }
        f
    }

    proptest::proptest! {
        /// Keywords stay unique (case-insensitively, the first spelling
        /// kept) and sorted by their lowercased form, however they come.
        #[test]
        fn keywords_stay_sorted_and_unique(
            ks in proptest::collection::vec("[a-cA-C$_]{1,3}", 0..8),
        ) {
            let mut f = Flags::new();
            for k in &ks {
                f.insert_keyword(k);
            }
            let mut want: Vec<String> = Vec::new();
            for k in &ks {
                if !want.iter().any(|w| w.eq_ignore_ascii_case(k)) {
                    want.push(k.clone());
                }
            }
            want.sort_by_key(|a| a.to_ascii_lowercase());
            proptest::prop_assert_eq!(f.keywords(), &want[..]);
        }

        /// `apply` reports a change exactly when the flags differ after it
        /// (a replacement by the same flags, or adding what is there, is
        /// none), and `changed_by` says so beforehand.
        #[test]
        fn apply_reports_exactly_the_changes(
            a_sys in 0u8..32, a_kw in proptest::collection::vec(0usize..4, 0..4),
            b_sys in 0u8..32, b_kw in proptest::collection::vec(0usize..4, 0..4),
            op in 0usize..3,
        ) {
            let op = [FlagOp::Add, FlagOp::Remove, FlagOp::Replace][op];
            let (a, b) = (flags_from(a_sys, &a_kw), flags_from(b_sys, &b_kw));
            // What the operation means, spelled out without `apply`.
            let mut want = a.clone();
            match op {
                FlagOp::Add => {
                    want.system |= b.system;
                    for k in b.keywords() {
                        want.insert_keyword(k);
                    }
                }
                FlagOp::Remove => {
                    want.system &= !b.system;
                    want.keywords.retain(|x| !b.has_keyword(x));
                }
                FlagOp::Replace => want = b.clone(),
            }
            let mut after = a.clone();
            let changed = after.apply(op, &b);
            proptest::prop_assert_eq!(&after, &want);
            proptest::prop_assert_eq!(changed, want != a);
            proptest::prop_assert_eq!(a.changed_by(op, &b), changed);
        }
    }
}
