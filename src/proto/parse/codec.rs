//! imap-codec as the oracle for [`super::parse_command`] (never run on a
//! client's bytes; the parent module's doc says why): decodes a framed
//! command with `imap_codec::CommandCodec` and converts the `imap_types`
//! value into our AST, so that tests and the `parse_oracle` fuzz target can
//! compare the two readers.
//!
//! Only the commands listed in [`routed`] are compared (for the others
//! imap-codec's value loses what our AST keeps, e.g. a mailbox's
//! spelling). Anything imap-codec rejects, or accepts where RFC 7162 does
//! not (FETCH `VANISHED` outside UID FETCH or without CHANGEDSINCE), yields
//! `None`.

use std::num::NonZeroU32;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{CommandBody as CB, FetchModifier, StoreModifier};
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section as CSection,
};
use imap_codec::imap_types::flag::{Flag as CFlag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet as CSet};

use super::super::command::*;
use crate::flags::{Flag, FlagOp};

/// Whether a command (upper-cased name; `uid_sub` is the word after `UID`)
/// is one imap-codec reads fully enough to compare.
pub fn routed(name: &str, uid_sub: Option<&str>) -> bool {
    match name {
        "CAPABILITY" | "NOOP" | "LOGOUT" | "STARTTLS" | "ID" | "LOGIN" | "AUTHENTICATE"
        | "ENABLE" | "NAMESPACE" | "IDLE" | "CHECK" | "CLOSE" | "UNSELECT" | "EXPUNGE"
        | "FETCH" | "STORE" => true,
        "UID" => matches!(uid_sub, Some("FETCH" | "STORE" | "EXPUNGE")),
        _ => false,
    }
}

/// Decodes `bytes` with imap-codec; `None` if it rejects them, leaves
/// bytes over, or yields something our AST has no room for.
pub fn decode(bytes: &[u8]) -> Option<Command> {
    let (rest, cmd) = CommandCodec::default().decode(bytes).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(Command {
        tag: cmd.tag.as_ref().to_string(),
        body: body(cmd.body)?,
    })
}

fn body(b: CB<'_>) -> Option<CommandBody> {
    Some(match b {
        CB::Capability => CommandBody::Capability,
        CB::Noop => CommandBody::Noop,
        CB::Logout => CommandBody::Logout,
        CB::StartTLS => CommandBody::StartTls,
        CB::Namespace => CommandBody::Namespace,
        CB::Idle => CommandBody::Idle,
        CB::Check => CommandBody::Check,
        CB::Close => CommandBody::Close,
        CB::Unselect => CommandBody::Unselect,
        CB::Expunge => CommandBody::Expunge { uids: None },
        CB::ExpungeUid { sequence_set } => CommandBody::Expunge {
            uids: Some(set(&sequence_set)),
        },
        CB::Id { parameters } => CommandBody::Id(parameters.map(|ps| {
            ps.iter()
                .map(|(k, v)| (lossy(k.as_ref()), v.0.as_ref().map(|v| lossy(v.as_ref()))))
                .collect()
        })),
        CB::Login { username, password } => CommandBody::Login {
            username: utf8(&username)?,
            password: utf8(password.declassify())?,
        },
        CB::Authenticate {
            mechanism,
            initial_response,
        } => CommandBody::Authenticate {
            mechanism: mechanism.as_ref().to_ascii_uppercase(),
            initial_response: initial_response.map(|r| r.declassify().to_vec()),
        },
        CB::Enable { capabilities } => CommandBody::Enable(
            capabilities
                .as_ref()
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
        CB::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            modifiers,
        } => {
            let items = match macro_or_item_names {
                MacroOrMessageDataItemNames::Macro(m) => {
                    let mut items = vec![
                        FetchAttr::Flags,
                        FetchAttr::InternalDate,
                        FetchAttr::Rfc822Size,
                    ];
                    match m {
                        Macro::Fast => {}
                        Macro::All => items.push(FetchAttr::Envelope),
                        Macro::Full => items.extend([FetchAttr::Envelope, FetchAttr::Body]),
                        // `Macro` is non-exhaustive; a new macro is ours to parse.
                        _ => return None,
                    }
                    items
                }
                // RFC 9051 §9 needs at least one item; imap-codec takes `()`.
                MacroOrMessageDataItemNames::MessageDataItemNames(names) if names.is_empty() => {
                    return None;
                }
                MacroOrMessageDataItemNames::MessageDataItemNames(names) => names
                    .into_iter()
                    .map(fetch_attr)
                    .collect::<Option<Vec<_>>>()?,
            };
            let (mut changed_since, mut vanished) = (None, false);
            for m in modifiers {
                match m {
                    FetchModifier::ChangedSince(n) => changed_since = Some(n.get()),
                    FetchModifier::Vanished => vanished = true,
                }
            }
            // imap-codec takes VANISHED anywhere; RFC 7162 §7 allows it only
            // in UID FETCH, and §3.2.6 only with CHANGEDSINCE.
            if vanished && (!uid || changed_since.is_none()) {
                return None;
            }
            CommandBody::Fetch {
                uid,
                set: set(&sequence_set),
                items,
                changed_since,
                vanished,
            }
        }
        CB::Store {
            sequence_set,
            kind,
            response,
            flags,
            uid,
            modifiers,
        } => {
            let mut unchanged_since = None;
            for StoreModifier::UnchangedSince(n) in modifiers {
                unchanged_since = Some(n);
            }
            CommandBody::Store {
                uid,
                set: set(&sequence_set),
                op: match kind {
                    StoreType::Replace => FlagOp::Replace,
                    StoreType::Add => FlagOp::Add,
                    StoreType::Remove => FlagOp::Remove,
                },
                silent: matches!(response, StoreResponse::Silent),
                flags: flags.iter().map(flag).collect(),
                unchanged_since,
            }
        }
        _ => return None,
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn utf8(a: &AString<'_>) -> Option<String> {
    String::from_utf8(a.as_ref().to_vec()).ok()
}

fn set(s: &CSet) -> SequenceSet {
    let n = |x: &SeqOrUid| match x {
        SeqOrUid::Value(v) => SeqNum::Value(v.get()),
        SeqOrUid::Asterisk => SeqNum::Asterisk,
    };
    SequenceSet::Ranges(
        s.0.as_ref()
            .iter()
            .map(|seq| match seq {
                Sequence::Single(a) => (n(a), n(a)),
                Sequence::Range(a, b) => (n(a), n(b)),
            })
            .collect(),
    )
}

fn flag(f: &CFlag<'_>) -> Flag {
    match f {
        CFlag::Answered => Flag::Answered,
        CFlag::Deleted => Flag::Deleted,
        CFlag::Draft => Flag::Draft,
        CFlag::Flagged => Flag::Flagged,
        CFlag::Seen => Flag::Seen,
        // Display renders `\Name`.
        CFlag::Extension(_) => Flag::Extension(f.to_string().trim_start_matches('\\').into()),
        CFlag::Keyword(k) => Flag::Keyword(k.as_ref().to_string()),
    }
}

fn part(p: &Part) -> Vec<u32> {
    p.0.as_ref().iter().map(|n| n.get()).collect()
}

fn nz(v: &[NonZeroU32]) -> Vec<u32> {
    v.iter().map(|n| n.get()).collect()
}

fn header_names(names: &[AString<'_>]) -> Option<Vec<String>> {
    names.iter().map(utf8).collect()
}

fn section(s: Option<CSection<'_>>) -> Option<Section> {
    let opt = |p: &Option<Part>| p.as_ref().map(part).unwrap_or_default();
    Some(match s {
        None => Section::default(),
        Some(CSection::Part(p)) => Section {
            part: part(&p),
            text: None,
        },
        Some(CSection::Header(p)) => Section {
            part: opt(&p),
            text: Some(SectionText::Header),
        },
        Some(CSection::HeaderFields(p, names)) => Section {
            part: opt(&p),
            text: Some(SectionText::HeaderFields(header_names(names.as_ref())?)),
        },
        Some(CSection::HeaderFieldsNot(p, names)) => Section {
            part: opt(&p),
            text: Some(SectionText::HeaderFieldsNot(header_names(names.as_ref())?)),
        },
        Some(CSection::Text(p)) => Section {
            part: opt(&p),
            text: Some(SectionText::Text),
        },
        Some(CSection::Mime(p)) => Section {
            part: part(&p),
            text: Some(SectionText::Mime),
        },
    })
}

fn fetch_attr(n: MessageDataItemName<'_>) -> Option<FetchAttr> {
    use MessageDataItemName as N;
    Some(match n {
        N::Body => FetchAttr::Body,
        N::BodyExt {
            section: s,
            partial,
            peek,
        } => FetchAttr::BodySection {
            peek,
            section: section(s)?,
            partial: partial.map(|(o, c)| (o, c.get())),
        },
        N::BodyStructure => FetchAttr::BodyStructure,
        N::Envelope => FetchAttr::Envelope,
        N::Flags => FetchAttr::Flags,
        N::InternalDate => FetchAttr::InternalDate,
        N::Rfc822 => FetchAttr::Rfc822,
        N::Rfc822Header => FetchAttr::Rfc822Header,
        N::Rfc822Size => FetchAttr::Rfc822Size,
        N::Rfc822Text => FetchAttr::Rfc822Text,
        N::Uid => FetchAttr::Uid,
        N::Binary {
            section,
            partial,
            peek,
        } => FetchAttr::Binary {
            peek,
            part: nz(&section),
            partial: partial.map(|(o, c)| (o, c.get())),
        },
        N::BinarySize { section } => FetchAttr::BinarySize { part: nz(&section) },
        N::ModSeq => FetchAttr::ModSeq,
    })
}

/// `c` with what the two readers may say differently but equivalently made
/// the same: sequence sets as sets (imap-codec normalises them), ENABLE's
/// capability names upper-cased.
pub fn normalise(mut c: Command) -> Command {
    let norm = |s: &mut SequenceSet| {
        if let SequenceSet::Ranges(_) = s {
            let rs = s.ranges(u32::MAX);
            *s = SequenceSet::Ranges(
                rs.into_iter()
                    .map(|(a, b)| (SeqNum::Value(a), SeqNum::Value(b)))
                    .collect(),
            );
        }
    };
    match &mut c.body {
        CommandBody::Fetch { set, .. } | CommandBody::Store { set, .. } => norm(set),
        CommandBody::Expunge { uids: Some(set) } => norm(set),
        CommandBody::Enable(caps) => caps.iter_mut().for_each(|c| c.make_ascii_uppercase()),
        _ => {}
    }
    c
}

/// The name of a command as [`routed`] takes it: its upper-cased word
/// after the tag, and for `UID` the word after that.
pub fn names(bytes: &[u8]) -> Option<(String, Option<String>)> {
    let mut words = bytes
        .split(|&c| c == b' ' || c == b'\r' || c == b'\n')
        .filter(|w| !w.is_empty());
    let _tag = words.next()?;
    let name = String::from_utf8_lossy(words.next()?).to_ascii_uppercase();
    let sub = (name == "UID")
        .then(|| {
            words
                .next()
                .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase())
        })
        .flatten();
    Some((name, sub))
}

#[cfg(test)]
mod tests {
    use super::super::parse_command;
    use super::{decode, normalise};
    use proptest::prelude::*;

    /// Wherever imap-codec decodes a command it covers, our parser reads it
    /// the same way (imap-codec is the oracle, see the module doc).
    #[test]
    fn agrees_with_imap_codec() {
        let wires: &[&[u8]] = &[
            b"a CAPABILITY\r\n",
            b"a noop\r\n",
            b"a LOGOUT\r\n",
            b"a STARTTLS\r\n",
            b"a NAMESPACE\r\n",
            b"a IDLE\r\n",
            b"a CHECK\r\n",
            b"a CLOSE\r\n",
            b"a UNSELECT\r\n",
            b"a EXPUNGE\r\n",
            b"a UID EXPUNGE 3:1,7,*\r\n",
            b"a ID NIL\r\n",
            b"a ID ()\r\n",
            b"a ID (\"name\" \"x\" \"os\" NIL)\r\n",
            b"a LOGIN bob secret\r\n",
            b"a LOGIN \"bob\" {3}\r\np\"w\r\n",
            b"a LOGIN \"j\xc3\xb6rg\" \"p w\"\r\n",
            b"a AUTHENTICATE plain\r\n",
            b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
            b"a AUTHENTICATE EXTERNAL =\r\n",
            b"a ENABLE CONDSTORE utf8=accept X-FOO\r\n",
            b"a FETCH 1:* ALL\r\n",
            b"a FETCH 1 FAST\r\n",
            b"a FETCH 1 FULL\r\n",
            b"a FETCH 1,3:5 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE MODSEQ)\r\n",
            b"a FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT)\r\n",
            b"a UID FETCH 5:3 (BODY[] BODY.PEEK[HEADER] BODY[1.2.MIME] BODY[TEXT] BODY[2] BODY[3.HEADER] BODY[1.TEXT])\r\n",
            b"a FETCH 2 (BODY.PEEK[HEADER.FIELDS (From \"Subject\")] BODY[1.HEADER.FIELDS.NOT (Received)]<0.1024>)\r\n",
            b"a FETCH 1 (BINARY[1.2]<5.10> BINARY.PEEK[] BINARY.SIZE[3])\r\n",
            b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
            b"a STORE 1 +FLAGS (\\Seen)\r\n",
            b"a UID STORE 1:2 -FLAGS.SILENT \\Deleted $Junk\r\n",
            b"a STORE 1 (UNCHANGEDSINCE 9) FLAGS.SILENT ()\r\n",
            b"a STORE 1 FLAGS (\\Answered \\Flagged \\Draft \\Foo kw)\r\n",
        ];
        for wire in wires {
            let name = String::from_utf8_lossy(wire);
            let codec = decode(wire).unwrap_or_else(|| panic!("imap-codec rejects {name}"));
            let ours = parse_command(wire).unwrap_or_else(|e| panic!("we reject {name}: {e:?}"));
            assert_eq!(normalise(codec), normalise(ours), "{name}");
        }
        // What imap-codec rejects and ours must read.
        let fallbacks: &[&[u8]] = &[
            b"a FETCH $ UID\r\n",
            b"a UID STORE $ +FLAGS x\r\n",
            b"a LOGIN b\xc3\xb6b x\r\n",
        ];
        for wire in fallbacks {
            let name = String::from_utf8_lossy(wire);
            assert!(decode(wire).is_none(), "{name}");
            assert!(parse_command(wire).is_ok(), "{name}");
        }
    }

    /// Token soup for the differential property test: pieces of routed
    /// commands that combine into valid and invalid forms.
    const PIECES: &[&str] = &[
        "1",
        "1:*",
        "3:2,5",
        "$",
        "*",
        "(",
        ")",
        "()",
        "BODY[",
        "BODY.PEEK[",
        "]",
        "1.2",
        "1.",
        "HEADER",
        "HEADER.FIELDS",
        "HEADER.FIELDS.NOT",
        "(From \"To\")",
        "TEXT",
        "MIME",
        "<0.5>",
        "<1.0>",
        "FLAGS",
        "+FLAGS",
        "-FLAGS.SILENT",
        "FLAGS.SILENT",
        "\\Seen",
        "\\Recent",
        "kw",
        "\"q\"",
        "{2}\r\nab",
        "NIL",
        "(UNCHANGEDSINCE 5)",
        "(CHANGEDSINCE 3)",
        "(CHANGEDSINCE 0)",
        "BINARY[1]",
        "BINARY.SIZE[]",
        "ALL",
        "FAST",
        "UID",
        "ENVELOPE",
        "RFC822.SIZE",
        "MODSEQ",
        "=",
        "AGJvYgBzZWNyZXQ=",
        "PLAIN",
        "CONDSTORE",
        "b\u{f6}b",
    ];

    proptest! {
        /// Whenever imap-codec accepts a routed command, our parser reads
        /// the same value (so the fallback is never a change of meaning).
        #[test]
        fn codec_and_own_agree(
            cmd in prop::sample::select(vec![
                "FETCH", "UID FETCH", "STORE", "UID STORE", "UID EXPUNGE", "LOGIN", "ID",
                "ENABLE", "AUTHENTICATE",
            ]),
            parts in prop::collection::vec((prop::sample::select(PIECES), prop::bool::ANY), 1..7),
        ) {
            let mut wire = format!("a {cmd} ");
            for (piece, space) in parts {
                wire.push_str(piece);
                if space {
                    wire.push(' ');
                }
            }
            let wire = format!("{}\r\n", wire.trim_end());
            if let Some(codec) = decode(wire.as_bytes()) {
                let ours = parse_command(wire.as_bytes());
                prop_assert!(ours.is_ok(), "{wire:?}: codec {codec:?}, ours {ours:?}");
                prop_assert_eq!(normalise(codec), normalise(ours.unwrap()), "{:?}", wire);
            }
        }

        /// The same for FETCH and STORE built from mostly valid parts.
        #[test]
        fn codec_and_own_agree_on_fetch_store(
            uid in prop::bool::ANY,
            set in prop::sample::select(vec!["1", "1:*", "*:4,7", "4294967295", "0", "$"]),
            atts in prop::collection::vec(prop::sample::select(vec![
                "UID", "FLAGS", "BODY[]", "BODY.PEEK[1.2.HEADER]", "BODY[HEADER.FIELDS (A b)]<3.4>",
                "BINARY[1]<0.1>", "BINARY.SIZE[2.3]", "BODY[1.MIME]", "RFC822", "RFC822.TEXT",
                "MODSEQ", "BODY[0]", "BODY[1.0]", "BODY[]<0.0>", "BINARY[]", "BODY[HEADER.FIELDS ()]",
                "BODY[TEXT]<4294967295.1>", "BODY[1.TEXT]", "BODY[MIME]", "body.peek[header]",
                "BODY[HEADER.FIELDS.NOT ({3}\r\nX-y \"Z\")]", "ENVELOPE", "BODYSTRUCTURE", "BODY",
            ]), 1..5),
            modifier in prop::sample::select(vec!["", " (CHANGEDSINCE 7)", " (CHANGEDSINCE 0)", " (VANISHED)"]),
            store in prop::sample::select(vec![
                "FLAGS ()", "+FLAGS (\\Seen kw)", "-FLAGS.SILENT \\Deleted", "(UNCHANGEDSINCE 0) FLAGS x",
                "FLAGS (\\Recent \\X $y)", "+FLAGS", "FLAGS.SILENT (\\Seen) extra",
            ]),
        ) {
            let uid = if uid { "UID " } else { "" };
            let fetch = format!("a {uid}FETCH {set} ({}){modifier}\r\n", atts.join(" "));
            let single = format!("a {uid}FETCH {set} {}{modifier}\r\n", atts[0]);
            let store = format!("a {uid}STORE {set} {store}\r\n");
            for wire in [fetch, single, store] {
                if let Some(codec) = decode(wire.as_bytes()) {
                    let ours = parse_command(wire.as_bytes());
                    prop_assert!(ours.is_ok(), "{wire:?}: codec {codec:?}, ours {ours:?}");
                    prop_assert_eq!(normalise(codec), normalise(ours.unwrap()), "{:?}", wire);
                }
            }
        }

    }
}
