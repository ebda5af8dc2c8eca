//! The `i;unicode-casemap` collation (RFC 5051), which SORT and THREAD
//! compare strings with (RFC 5256 §3 allows any collation of RFC 5255's
//! I18NLEVEL; Dovecot uses this one for every sort key, and clients that
//! sort on their side expect the same order).
//!
//! A string's key is its "titlecased canonicalized UTF-8" form: every
//! character replaced by its titlecase mapping, then by its decomposition
//! mapping (canonical and compatibility, as UnicodeData.txt lists them),
//! repeated until nothing changes. Keys compare as octet strings, so two
//! strings are equal under the collation exactly when their keys are.
//!
//! Titlecase: Rust has simple upper-case mappings only through
//! `char::to_uppercase`, which gives full (SpecialCasing) mappings; a
//! character whose upper case is several characters (`ß`) is left as it
//! is, as UnicodeData's simple titlecase mapping does. The characters
//! whose titlecase differs from their upper case (the Latin digraphs
//! `Ǆ ǅ ǆ`, Georgian Mkhedruli) are handled here.
use unicode_normalization::UnicodeNormalization;

/// The collation key of `s`.
pub(crate) fn casemap_key(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    let mut cur: String = s.chars().map(titlecase).collect();
    // Decomposition can yield characters with their own titlecase mapping
    // (`ǅ` -> `D` `ž` -> `D` `z` U+030C): map again until stable. Each
    // round only shrinks the set of mappable characters; four rounds is
    // more than Unicode ever needs.
    for _ in 0..4 {
        let next: String = cur.nfkd().map(titlecase).collect();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// The simple titlecase mapping of `c` (see the module doc).
fn titlecase(c: char) -> char {
    match c {
        'a'..='z' => c.to_ascii_uppercase(),
        '\0'..='\x7f' => c,
        // DŽ Dž dž, LJ Lj lj, NJ Nj nj: titlecase is the middle form.
        '\u{1c4}'..='\u{1cc}' => char::from_u32(0x1c5 + 3 * ((c as u32 - 0x1c4) / 3)).unwrap_or(c),
        // DZ Dz dz.
        '\u{1f1}'..='\u{1f3}' => '\u{1f2}',
        // Georgian Mkhedruli letters are their own titlecase.
        '\u{10d0}'..='\u{10fa}' | '\u{10fd}'..='\u{10ff}' => c,
        _ => {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let cases = [
            ("abc", "ABC"),
            ("Re: x", "RE: X"),
            ("Ärger", "A\u{308}RGER"),
            ("ärger", "A\u{308}RGER"),
            ("A\u{308}rger", "A\u{308}RGER"),
            ("straße", "STRAßE"),
            ("ǆ", "DZ\u{30c}"),
            ("ǅ", "DZ\u{30c}"),
            ("Ǆ", "DZ\u{30c}"),
            ("ﬁle", "FILE"),
            ("ｆｕｌｌ", "FULL"),
            ("ελληνικά", "ΕΛΛΗΝΙΚΑ\u{301}"),
            ("", ""),
        ];
        for (s, want) in cases {
            assert_eq!(casemap_key(s), want, "{s:?}");
        }
    }

    #[test]
    fn accents_sort_with_their_letter() {
        let mut v = ["Zebra", "Ärger", "Apfel", "Birne"];
        v.sort_by_key(|s| casemap_key(s));
        assert_eq!(v, ["Apfel", "Ärger", "Birne", "Zebra"]);
    }

    proptest::proptest! {
        /// The key of a key is itself (the mapping is closed), and case
        /// never matters for ASCII.
        #[test]
        fn idempotent(s in "\\PC{0,12}") {
            let k = casemap_key(&s);
            proptest::prop_assert_eq!(casemap_key(&k), k.clone());
            if s.is_ascii() {
                proptest::prop_assert_eq!(casemap_key(&s.to_ascii_lowercase()), k);
            }
        }
    }
}
