//! Mailbox names between the wire and the store, and LIST pattern matching.
//!
//! The store speaks UTF-8 names with `/` as the separator and `INBOX` in
//! upper case. On the wire an IMAP4rev1 client uses modified UTF-7 (RFC 3501
//! §5.1.3); after `ENABLE IMAP4rev2` or `UTF8=ACCEPT` names are UTF-8 (RFC
//! 9051 §5.1). `INBOX` is case-insensitive, also as the first level of a
//! longer name.

use crate::mutf7;
use crate::proto::response::Code;

use super::{Enabled, Status};

/// The hierarchy separator (SPEC §5).
pub const SEP: char = '/';

/// Wire name -> store name.
pub fn from_wire(name: &str, enabled: Enabled) -> Result<String, Status> {
    let decoded = if enabled.rev2 || enabled.utf8 {
        name.to_string()
    } else {
        if !name.is_ascii() {
            return Err(Status::bad(
                "Mailbox name must be modified UTF-7 (RFC 3501 §5.1.3).",
            ));
        }
        mutf7::decode(name).map_err(|_| {
            Status::no(
                Some(Code::Cannot),
                "Invalid modified UTF-7 in mailbox name.",
            )
        })?
    };
    Ok(canonical_inbox(&decoded))
}

/// Store name -> wire name.
pub fn to_wire(name: &str, enabled: Enabled) -> String {
    if enabled.rev2 || enabled.utf8 {
        name.to_string()
    } else {
        mutf7::encode(name)
    }
}

/// Upper-cases `INBOX` as a whole name or as the first level.
pub fn canonical_inbox(name: &str) -> String {
    let first = name.split(SEP).next().unwrap_or("");
    if first.eq_ignore_ascii_case("INBOX") {
        format!("INBOX{}", &name[first.len()..])
    } else {
        name.to_string()
    }
}

/// RFC 9051 §6.3.9 pattern match: `*` matches anything, `%` anything but the
/// separator. Names are compared with INBOX canonicalised (done by callers).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    // Dynamic programming over (pattern suffix, name suffix): O(|p|·|n|),
    // so hostile patterns like `%*%*%*...` cannot explode.
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let mut next = vec![false; n.len() + 1];
    next[n.len()] = true;
    for &pc in p.iter().rev() {
        let mut cur = vec![false; n.len() + 1];
        for j in (0..=n.len()).rev() {
            cur[j] = match pc {
                '*' => next[j] || (j < n.len() && cur[j + 1]),
                '%' => next[j] || (j < n.len() && n[j] != SEP && cur[j + 1]),
                c => j < n.len() && n[j] == c && next[j + 1],
            };
        }
        next = cur;
    }
    next[0]
}

/// Combines LIST's reference and pattern (RFC 9051 §6.3.9): the reference
/// is prefixed unless the pattern is absolute; INBOX is canonicalised.
pub fn combine(reference: &str, pattern: &str) -> String {
    if reference.is_empty() || pattern.starts_with(SEP) {
        return canonical_inbox(pattern);
    }
    // The reference is a prefix concatenated as given (RFC 9051 §6.3.9).
    let mut s = reference.to_string();
    s.push_str(pattern);
    canonical_inbox(&s)
}

/// The special-use attribute a folder gets from its name (SPEC §6).
pub fn special_use(name: &str) -> Option<&'static str> {
    match name {
        "Sent" | "Sent Messages" | "Sent Items" => Some("\\Sent"),
        "Drafts" => Some("\\Drafts"),
        "Trash" | "Deleted Messages" | "Deleted Items" => Some("\\Trash"),
        "Junk" | "Spam" => Some("\\Junk"),
        "Archive" | "Archives" => Some("\\Archive"),
        _ => None,
    }
}

/// The special-use attributes of RFC 6154 §2, as CREATE-SPECIAL-USE takes
/// them and `[mail.special_use]` names them (without the backslash).
pub const SPECIAL_USES: &[&str] = &[
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

/// The attribute as spelt in [`SPECIAL_USES`], any case given.
pub fn known_special_use(attr: &str) -> Option<&'static str> {
    SPECIAL_USES
        .iter()
        .copied()
        .find(|a| a.eq_ignore_ascii_case(attr))
}

/// Which special-use attributes each folder has: those stored at CREATE
/// (`store::special_use`), else those `[mail.special_use]` gives its name,
/// else the one its name gives by default ([`special_use`]) unless the
/// configuration moved that attribute to another folder.
#[derive(Clone, Debug, Default)]
pub struct SpecialUses {
    stored: std::collections::BTreeMap<String, Vec<&'static str>>,
    /// `[mail.special_use]`: attribute (with backslash) -> folder name.
    configured: Vec<(&'static str, String)>,
}

impl SpecialUses {
    pub fn new(
        stored: Vec<(String, Vec<String>)>,
        configured: &std::collections::BTreeMap<String, String>,
    ) -> SpecialUses {
        SpecialUses {
            stored: stored
                .into_iter()
                .map(|(n, v)| (n, v.iter().filter_map(|a| known_special_use(a)).collect()))
                .collect(),
            configured: configured
                .iter()
                .filter_map(|(k, v)| Some((known_special_use(&format!("\\{k}"))?, v.clone())))
                .collect(),
        }
    }

    /// The attributes of folder `name`.
    pub fn of(&self, name: &str) -> Vec<&'static str> {
        if let Some(v) = self.stored.get(name).filter(|v| !v.is_empty()) {
            return v.clone();
        }
        let mut v: Vec<&'static str> = self
            .configured
            .iter()
            .filter(|(_, f)| f == name)
            .map(|(a, _)| *a)
            .collect();
        if let Some(a) = special_use(name) {
            if !self.configured.iter().any(|(c, _)| *c == a) && !v.contains(&a) {
                v.push(a);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let table = [
            ("*", "INBOX", true),
            ("*", "a/b/c", true),
            ("%", "a", true),
            ("%", "a/b", false),
            ("a/%", "a/b", true),
            ("a/%", "a/b/c", false),
            ("a/*", "a/b/c", true),
            ("a*c", "abc", true),
            ("a%c", "a/c", false),
            ("INBOX", "INBOX", true),
            ("", "INBOX", false),
            (
                "**********************************************b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (p, n, want) in table {
            assert_eq!(pattern_matches(p, n), want, "{p} vs {n}");
        }
    }

    /// Whatever a client sends, in either wire form (modified UTF-7 can
    /// spell `.` and `/` in base64, `&AC4ALg-` for `..`), the name the store
    /// gets maps to one plain entry of the Maildir root or is refused: the
    /// session passes names on as they are, and the store's rule
    /// (`store::maildir::names`) is the one wall, checked here from the wire.
    #[test]
    fn no_wire_name_leads_outside_the_maildir() {
        use crate::store::maildir::names::to_dir;
        let modes = [
            Enabled {
                rev2: false,
                ..Enabled::default()
            },
            Enabled {
                rev2: true,
                ..Enabled::default()
            },
        ];
        let wires = [
            "..",
            "../x",
            "/etc",
            "A/../..",
            ".hidden",
            "A/.B",
            "&AC4ALg-",
            "&AC8-etc",
            "A&AC8ALgAu-",
            "&AC4-x",
            "&AAA-",
            "x&AAo-y",
            "INBOX/..",
            "inbox/../x",
            "&ACYALgAu-",
        ];
        for enabled in modes {
            for w in wires {
                let Ok(name) = from_wire(w, enabled) else {
                    continue;
                };
                if name == "INBOX" {
                    continue;
                }
                if let Ok(dir) = to_dir(&name) {
                    assert!(
                        crate::store::beneath::plain(&dir).is_ok()
                            && dir.starts_with('.')
                            && !dir.contains(".."),
                        "{w:?} -> {name:?} -> {dir:?}"
                    );
                }
            }
            // In UTF-8 mode `&AC4ALg-` is just a name (its directory is
            // `.&-AC4ALg-`); only the modified UTF-7 form spells `..`.
            let encoded: &[&str] = if enabled.rev2 {
                &[]
            } else {
                &["&AC4ALg-", "&AC8-etc", "&AAA-"]
            };
            for w in ["..", "../x", "/etc", "A/../.."].iter().chain(encoded) {
                let refused = from_wire(w, enabled).map_or(true, |n| to_dir(&n).is_err());
                assert!(refused, "{w:?} accepted");
            }
        }
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert_eq!(canonical_inbox("inbox"), "INBOX");
        assert_eq!(canonical_inbox("Inbox/Sub"), "INBOX/Sub");
        assert_eq!(canonical_inbox("Inboxes"), "Inboxes");
    }
}
