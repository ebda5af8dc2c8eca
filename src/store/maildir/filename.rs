//! Maildir file names: unique base names, the `,S=`/`,W=` size fields and
//! the `:2,` info suffix that carries the flags.
//!
//! Owns the mapping between a file name and [`Flags`]. It never touches the
//! file system; the keyword letters come from a [`Keywords`] table the
//! caller loaded. Letters this module does not understand (upper-case
//! letters of other programs, lower-case letters with no keyword name,
//! anything else after `:2,`) are handed back as "other" letters so the
//! caller writes them into the next name unchanged (MAILDIR.md: unknown
//! letters belong to someone else).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flags::{Flags, sys};

use super::keywords::Keywords;

/// The keyword that the Maildir `P` (passed) letter stands for (SPEC §5).
pub const FORWARDED: &str = "$Forwarded";

/// Splits a file name into its base name and, if present, the letters after
/// `:2,`. A name with some other `:` suffix (an experimental `:1,` info)
/// still has its base name before the colon, and no flags.
pub fn split(fname: &str) -> (&str, Option<&str>) {
    // `memchr` (vectorised): every table keyed by base names splits the
    // file name on each lookup, and `str::find` cost about 180
    // instructions a name here (callgrind), a fifth of a cold SELECT.
    match memchr::memchr(b':', fname.as_bytes()) {
        Some(i) => {
            let (base, rest) = fname.split_at(i);
            (base, rest.strip_prefix(":2,"))
        }
        None => (fname, None),
    }
}

/// The `,S=<size>` (physical size) and `,W=<size>` (CRLF size) fields of a
/// base name, when present and numeric.
pub fn size_fields(base: &str) -> (Option<u64>, Option<u64>) {
    // Called for every file of a cold scan. The fields are at the end of
    // the name: walk them from there, and stop once the last `S=` and the
    // last `W=` (the ones that count, as in a walk from the front) are
    // found. Text before the first comma is not a field.
    // A plain byte loop: `split_once` and `rsplit` by char cost about 700
    // instructions a name here (callgrind), this about a fifth of that.
    let b = base.as_bytes();
    let (mut s, mut w) = (None, None);
    let mut end = b.len();
    let mut i = b.len();
    while i > 0 {
        i -= 1;
        if b[i] != b',' {
            continue;
        }
        // `base[i + 1..end]` is one field; commas are ASCII, so these are
        // char boundaries.
        let field = &base[i + 1..end];
        end = i;
        if s.is_none()
            && let Some(v) = field.strip_prefix("S=")
        {
            s = Some(v.parse().ok());
        } else if w.is_none()
            && let Some(v) = field.strip_prefix("W=")
        {
            w = Some(v.parse().ok());
        }
        if s.is_some() && w.is_some() {
            break;
        }
    }
    (s.flatten(), w.flatten())
}

/// [`size_fields`] as a walk from the front: the oracle of its tests.
#[cfg(test)]
fn size_fields_forward(base: &str) -> (Option<u64>, Option<u64>) {
    let mut s = None;
    let mut w = None;
    let b = base.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b',' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = b[start..]
            .iter()
            .position(|&c| c == b',')
            .map_or(b.len(), |n| start + n);
        let field = &base[start..end];
        if let Some(v) = field.strip_prefix("S=") {
            s = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("W=") {
            w = v.parse().ok();
        }
        i = end;
    }
    (s, w)
}

/// The flags an info suffix stands for, plus the letters kept verbatim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub flags: Flags,
    /// Letters we do not interpret, sorted and de-duplicated.
    pub other: String,
}

/// Parses the letters after `:2,`.
pub fn parse_info(info: &str, kw: &Keywords) -> Info {
    let mut flags = Flags::new();
    let mut other: Vec<char> = Vec::new();
    for c in info.chars() {
        match c {
            'D' => flags.system |= sys::DRAFT,
            'F' => flags.system |= sys::FLAGGED,
            'R' => flags.system |= sys::ANSWERED,
            'S' => flags.system |= sys::SEEN,
            'T' => flags.system |= sys::DELETED,
            'P' => flags.insert_keyword(FORWARDED),
            'a'..='z' => match kw.name(c) {
                Some(name) => flags.insert_keyword(name),
                None => other.push(c),
            },
            _ => other.push(c),
        }
    }
    // Nearly always none: no string made for them.
    let other = if other.is_empty() {
        String::new()
    } else {
        other.sort_unstable();
        other.dedup();
        other.into_iter().collect()
    };
    Info { flags, other }
}

/// Renders flags (plus the preserved `other` letters) as info letters in
/// ASCII order. Keywords without a letter get one assigned in `kw` if a
/// slot is free; those that still have none are returned: they can only be
/// kept in nestbox's index.
pub fn render_info(flags: &Flags, other: &str, kw: &mut Keywords) -> (String, Vec<String>) {
    // ASCII letters (all but an odd foreign one) go into a bit set indexed
    // by the letter, which is already the order they are written in: this
    // runs for every message of a `STORE 1:*`.
    let mut ascii: u128 = 0;
    let mut foreign: Vec<char> = Vec::new();
    let mut put = |c: char| match c.is_ascii() {
        true => ascii |= 1 << (c as u32),
        false => foreign.push(c),
    };
    other.chars().for_each(&mut put);
    for (bit, c) in [
        (sys::DRAFT, 'D'),
        (sys::FLAGGED, 'F'),
        (sys::ANSWERED, 'R'),
        (sys::SEEN, 'S'),
        (sys::DELETED, 'T'),
    ] {
        if flags.has(bit) {
            put(c);
        }
    }
    let mut index_only = Vec::new();
    for k in flags.keywords() {
        if k.eq_ignore_ascii_case(FORWARDED) {
            // `P` for Maildir readers (mutt), plus a keyword letter because
            // Dovecot ignores `P` and would otherwise lose the flag.
            put('P');
        }
        match kw.letter(k).or_else(|| kw.assign(k)) {
            Some(c) => put(c),
            None => index_only.push(k.clone()),
        }
    }
    let mut info = String::with_capacity(ascii.count_ones() as usize + foreign.len() * 4);
    while ascii != 0 {
        info.push(char::from(ascii.trailing_zeros() as u8));
        ascii &= ascii - 1;
    }
    if !foreign.is_empty() {
        // Every one sorts after the ASCII letters.
        foreign.sort_unstable();
        foreign.dedup();
        info.extend(foreign);
    }
    (info, index_only)
}

/// Escapes a host name for a unique name: `/` and `:` would break the
/// file name, so they become `\057` and `\072` (the Maildir spec's rule).
fn safe_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push_str("localhost");
    }
    out
}

/// This machine's host name, escaped for file names.
pub fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| safe_host(&gethostname::gethostname().to_string_lossy()))
}

/// A base name that no other delivery can have used:
/// `<secs>.M<usecs>P<pid>Q<n>.<host>` (time, microseconds, PID, a
/// per-process counter and the host; MAILDIR.md "Unique names").
pub fn unique_base() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        host()
    )
}

/// A fresh base name that keeps the size fields of `old` (used to give a
/// duplicate or a copied file a name of its own).
pub fn fresh_base_like(old: &str) -> String {
    let mut b = unique_base();
    let (s, w) = size_fields(old);
    if let Some(s) = s {
        b.push_str(&format!(",S={s}"));
    }
    if let Some(w) = w {
        b.push_str(&format!(",W={w}"));
    }
    b
}

/// The file name in `cur/` for a base name and info letters.
pub fn cur_name(base: &str, info: &str) -> String {
    let mut s = String::with_capacity(base.len() + 3 + info.len());
    s.push_str(base);
    s.push_str(":2,");
    s.push_str(info);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::Flag;
    use proptest::prelude::*;

    fn kw() -> Keywords {
        let mut k = Keywords::default();
        k.assign("Junk");
        k.assign("$Label1");
        k
    }

    #[test]
    fn split_table() {
        for (name, base, info) in [
            ("1.M2P3Q4.h,S=5", "1.M2P3Q4.h,S=5", None),
            ("1.M2P3Q4.h,S=5:2,FS", "1.M2P3Q4.h,S=5", Some("FS")),
            ("1.M2P3Q4.h:2,", "1.M2P3Q4.h", Some("")),
            ("1.M2P3Q4.h:1,xyz", "1.M2P3Q4.h", None),
        ] {
            assert_eq!(split(name), (base, info), "{name}");
        }
    }

    #[test]
    fn size_fields_table() {
        for (base, s, w) in [
            ("1.M2P3Q4.h,S=5,W=7", Some(5), Some(7)),
            ("1.M2P3Q4.h,W=7", None, Some(7)),
            ("1.M2P3Q4.h", None, None),
            ("1.M2P3Q4.h,S=x", None, None),
            // The last of each counts, even when it is not a number.
            ("1.h,S=5,W=7,S=9", Some(9), Some(7)),
            ("1.h,S=5,S=x,W=7", None, Some(7)),
            // Text before the first comma is not a field.
            ("S=5", None, None),
            ("S=5,W=6", None, Some(6)),
        ] {
            assert_eq!(size_fields(base), (s, w), "{base}");
            assert_eq!(size_fields_forward(base), (s, w), "{base}");
        }
    }

    #[test]
    fn info_to_flags_table() {
        let k = kw();
        let cases: &[(&str, &[Flag], &str)] = &[
            ("", &[], ""),
            ("S", &[Flag::Seen], ""),
            (
                "DFRST",
                &[
                    Flag::Draft,
                    Flag::Flagged,
                    Flag::Answered,
                    Flag::Seen,
                    Flag::Deleted,
                ],
                "",
            ),
            ("P", &[Flag::Keyword("$Forwarded".into())], ""),
            ("Sa", &[Flag::Seen, Flag::Keyword("Junk".into())], ""),
            ("Sbz", &[Flag::Seen, Flag::Keyword("$Label1".into())], "z"),
            ("XS", &[Flag::Seen], "X"),
            ("ZXS", &[Flag::Seen], "XZ"),
        ];
        for (info, flags, other) in cases {
            let got = parse_info(info, &k);
            assert_eq!(got.flags, Flags::from_flags(flags.iter()), "{info}");
            assert_eq!(got.other, *other, "{info}");
        }
    }

    #[test]
    fn flags_to_info_table() {
        let cases: &[(&[Flag], &str, &str)] = &[
            (&[], "", ""),
            (&[Flag::Seen, Flag::Draft], "", "DS"),
            (&[Flag::Deleted, Flag::Answered], "X", "RTX"),
            (&[Flag::Keyword("Junk".into()), Flag::Seen], "", "Sa"),
            (&[Flag::Keyword("$Forwarded".into())], "", "Pc"),
            (&[Flag::Keyword("New".into())], "", "c"),
        ];
        for (flags, other, want) in cases {
            let mut k = kw();
            let (got, rest) = render_info(&Flags::from_flags(flags.iter()), other, &mut k);
            assert_eq!(got, *want);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn keywords_beyond_26_stay_in_index() {
        let mut k = Keywords::default();
        let mut f = Flags::new();
        for i in 0..30 {
            f.insert_keyword(&format!("k{i:02}"));
        }
        let (info, rest) = render_info(&f, "", &mut k);
        assert_eq!(info.len(), 26);
        assert_eq!(rest.len(), 4);
    }

    #[test]
    fn unique_names_differ() {
        let a = unique_base();
        let b = unique_base();
        assert_ne!(a, b);
        assert!(!a.contains(':') && !a.contains('/'));
        assert_eq!(safe_host("a/b:c"), "a\\057b\\072c");
    }

    proptest! {
        /// `split` cuts at the first colon, whatever the letters around it
        /// (multi-byte ones included).
        #[test]
        fn split_cuts_at_the_first_colon(name in "[a-z0-9.,:é€2]{0,40}") {
            let want = match name.find(':') {
                Some(i) => (&name[..i], name[i..].strip_prefix(":2,")),
                None => (name.as_str(), None),
            };
            prop_assert_eq!(split(&name), want);
        }

        /// The walk from the end answers like the walk from the front.
        #[test]
        fn size_fields_from_the_end(base in "[0-9a-z.=,SW]{0,40}") {
            prop_assert_eq!(size_fields(&base), size_fields_forward(&base));
        }

        /// flags -> info -> flags is the identity, letters come out sorted,
        /// and letters we do not know survive.
        #[test]
        fn round_trip(sysbits in 0u8..32, kws in proptest::collection::vec(0usize..4, 0..4),
                      other in "[ABCEGHIJKLMNOQUVWXYZéü€]{0,4}") {
            let names = ["Junk", "$Label1", "$Forwarded", "Work"];
            let mut f = Flags::new();
            f.system = sysbits;
            for i in kws { f.insert_keyword(names[i]); }
            let mut k = kw();
            let (info, rest) = render_info(&f, &other, &mut k);
            prop_assert!(rest.is_empty());
            let mut sorted: Vec<char> = info.chars().collect();
            sorted.sort_unstable();
            prop_assert_eq!(sorted.into_iter().collect::<String>(), info.clone());
            let back = parse_info(&info, &k);
            prop_assert_eq!(back.flags, f);
            let mut o: Vec<char> = other.chars().collect();
            o.sort_unstable();
            o.dedup();
            prop_assert_eq!(back.other, o.into_iter().collect::<String>());
        }
    }
}
