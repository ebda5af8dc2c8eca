//! Untagged data responses as types, and their one encoder (RFC 9051
//! §7.2-§7.5, with the extensions nestbox answers with).
//!
//! The session decides *what* to tell the client (which messages exist,
//! which flags changed, which mailboxes match) and says it as a [`Data`]
//! value; [`write`] owns how each one is spelt on the wire, CRLF included.
//! Status responses (`OK`/`NO`/`BAD`/`BYE` with a code) are
//! [`super::response`]'s; FETCH responses carrying message content stream
//! their literals from `session::cmd::fetch` and use [`fetch_open`],
//! [`FetchItem`] and [`fetch_close`] for everything around them.
//!
//! Never does I/O and never fails: it appends to the caller's buffer.
//! Mailbox names arrive already in their wire form (modified UTF-7 or
//! UTF-8, as the session's ENABLE state says): choosing that form is the
//! session's, quoting it is ours.

use super::encode;
use super::esearch::{self, Esearch};
use super::response::SYSTEM_FLAGS;
use crate::flags::{Flag, Flags};
use std::io::Write;

/// A mailbox attribute in a LIST or LSUB response (RFC 9051 §7.3.1,
/// RFC 5258 §3.4, RFC 6154 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListAttr {
    Noselect,
    NonExistent,
    HasChildren,
    HasNoChildren,
    Subscribed,
    /// A SPECIAL-USE attribute (`\Sent`, `\Trash`...), spelt with its
    /// backslash.
    Use(&'static str),
}

impl ListAttr {
    fn as_str(self) -> &'static str {
        match self {
            ListAttr::Noselect => "\\Noselect",
            ListAttr::NonExistent => "\\NonExistent",
            ListAttr::HasChildren => "\\HasChildren",
            ListAttr::HasNoChildren => "\\HasNoChildren",
            ListAttr::Subscribed => "\\Subscribed",
            ListAttr::Use(a) => a,
        }
    }
}

/// One `name value` pair of a STATUS response (RFC 9051 §7.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusValue {
    /// `MAILBOXID (objectid)` (RFC 8474 §4).
    MailboxId(String),
    Messages(u64),
    UidNext(u64),
    UidValidity(u64),
    Unseen(u64),
    Deleted(u64),
    Size(u64),
    Recent(u64),
    HighestModSeq(u64),
    AppendLimit(u64),
    /// RFC 9208 §4.2: KiB that an EXPUNGE would free.
    DeletedStorage(u64),
}

/// An untagged data response. Borrowed: built from the session's state
/// just before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data<'a> {
    /// `* CAPABILITY atoms`.
    Capability(&'a str),
    /// `* ENABLED [atoms]` (RFC 5161).
    Enabled(&'a [&'a str]),
    /// `* ID (...)` (RFC 2971): the server's name and version.
    Id {
        name: &'a str,
        version: &'a str,
    },
    /// `* NAMESPACE`: one personal namespace, "" with `/` (RFC 2342).
    Namespace,
    /// `* FLAGS (...)`: the system flags and these keywords.
    Flags(&'a [String]),
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    /// `* LIST (attrs) "/" name [("CHILDINFO" ("SUBSCRIBED"))]`.
    List {
        attrs: &'a [ListAttr],
        /// The wire form of the name ("" for the hierarchy root).
        name: &'a [u8],
        childinfo_subscribed: bool,
        /// RFC 5465 §5.4: the name before a RENAME, as `("OLDNAME" (old))`.
        oldname: Option<&'a [u8]>,
    },
    /// `* LSUB (attrs) "/" name`.
    Lsub {
        attrs: &'a [ListAttr],
        name: &'a [u8],
    },
    /// `* STATUS name (item value ...)`.
    Status {
        name: &'a [u8],
        values: &'a [StatusValue],
    },
    /// `* SEARCH n...` (IMAP4rev1), with `(MODSEQ n)` after the numbers
    /// when the search used MODSEQ and found something (RFC 7162 §3.1.5).
    Search(&'a [u32], Option<u64>),
    /// `* ESEARCH ...` (RFC 4731, RFC 5267): its items are
    /// [`super::esearch`]'s.
    Esearch(Esearch<'a>),
    /// `* VANISHED [(EARLIER)] uid-set` (RFC 7162 §3.2.10): UIDs as
    /// sorted, disjoint inclusive ranges; never empty.
    Vanished {
        earlier: bool,
        uids: &'a [(u32, u32)],
    },
    /// `* QUOTAROOT mailbox root...` (RFC 9208 §5.2).
    QuotaRoot {
        mailbox: &'a [u8],
        roots: &'a [&'a str],
    },
    /// `* QUOTA root (resource usage limit ...)` (RFC 9208 §5.1).
    Quota {
        root: &'a str,
        resources: &'a [(&'a str, u64, u64)],
    },
    /// `* SORT n...` (RFC 5256), in sort order.
    Sort(&'a [u32]),
    /// `* THREAD (...)...` (RFC 5256).
    Thread {
        nodes: &'a [encode::ThreadNode],
        roots: &'a [usize],
    },
    /// An unsolicited or STORE-answering `* n FETCH (...)` carrying no
    /// message content.
    Fetch {
        seq: u32,
        items: &'a [FetchItem<'a>],
    },
}

/// A FETCH data item that is not message content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem<'a> {
    Uid(u32),
    /// `FLAGS (...)`, with `\Recent` when `recent`.
    Flags {
        flags: &'a Flags,
        recent: bool,
    },
    ModSeq(u64),
    Rfc822Size(u64),
    InternalDate(chrono::DateTime<chrono::FixedOffset>),
    /// `BINARY.SIZE[part] n` (RFC 3516); an empty part is the whole
    /// message.
    BinarySize {
        part: &'a [u32],
        size: u64,
    },
    /// `EMAILID (objectid)` (RFC 8474 §5.1).
    EmailId(&'a str),
    /// `THREADID (objectid)` or `THREADID NIL` (RFC 8474 §5.2).
    ThreadId(Option<&'a str>),
    /// `SAVEDATE date-time` or `SAVEDATE NIL` (RFC 8514 §3).
    SaveDate(Option<chrono::DateTime<chrono::FixedOffset>>),
    /// `PREVIEW nstring` (RFC 8970 §3.2): NIL only for a LAZY request the
    /// server could not answer at once.
    Preview(Option<&'a str>),
}

/// Appends `d` and its CRLF to `out`.
pub fn write(out: &mut Vec<u8>, d: &Data<'_>) {
    out.extend_from_slice(b"* ");
    match d {
        Data::Capability(atoms) => {
            out.extend_from_slice(b"CAPABILITY ");
            out.extend_from_slice(atoms.as_bytes());
        }
        Data::Enabled(atoms) => {
            out.extend_from_slice(b"ENABLED");
            for a in atoms.iter() {
                out.push(b' ');
                out.extend_from_slice(a.as_bytes());
            }
        }
        Data::Id { name, version } => {
            out.extend_from_slice(b"ID (\"name\" ");
            encode::string(out, name.as_bytes(), false);
            out.extend_from_slice(b" \"version\" ");
            encode::string(out, version.as_bytes(), false);
            out.push(b')');
        }
        Data::Namespace => out.extend_from_slice(b"NAMESPACE ((\"\" \"/\")) NIL NIL"),
        Data::Flags(keywords) => {
            out.extend_from_slice(b"FLAGS (");
            out.extend_from_slice(SYSTEM_FLAGS.as_bytes());
            for k in keywords.iter() {
                out.push(b' ');
                out.extend_from_slice(k.as_bytes());
            }
            out.push(b')');
        }
        Data::Exists(n) => {
            let _ = write!(out, "{n} EXISTS");
        }
        Data::Recent(n) => {
            let _ = write!(out, "{n} RECENT");
        }
        Data::Expunge(n) => {
            let _ = write!(out, "{n} EXPUNGE");
        }
        Data::List {
            attrs,
            name,
            childinfo_subscribed,
            oldname,
        } => {
            out.extend_from_slice(b"LIST ");
            mailbox_list(out, attrs, name);
            if *childinfo_subscribed {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            if let Some(old) = oldname {
                out.extend_from_slice(b" (\"OLDNAME\" (");
                encode::astring(out, old, true);
                out.extend_from_slice(b"))");
            }
        }
        Data::Lsub { attrs, name } => {
            out.extend_from_slice(b"LSUB ");
            mailbox_list(out, attrs, name);
        }
        Data::Status { name, values } => {
            out.extend_from_slice(b"STATUS ");
            encode::astring(out, name, true);
            out.extend_from_slice(b" (");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                let (k, n) = match *v {
                    StatusValue::MailboxId(ref id) => {
                        let _ = write!(out, "MAILBOXID ({id})");
                        continue;
                    }
                    StatusValue::Messages(n) => ("MESSAGES", n),
                    StatusValue::UidNext(n) => ("UIDNEXT", n),
                    StatusValue::UidValidity(n) => ("UIDVALIDITY", n),
                    StatusValue::Unseen(n) => ("UNSEEN", n),
                    StatusValue::Deleted(n) => ("DELETED", n),
                    StatusValue::Size(n) => ("SIZE", n),
                    StatusValue::Recent(n) => ("RECENT", n),
                    StatusValue::HighestModSeq(n) => ("HIGHESTMODSEQ", n),
                    StatusValue::AppendLimit(n) => ("APPENDLIMIT", n),
                    StatusValue::DeletedStorage(n) => ("DELETED-STORAGE", n),
                };
                let _ = write!(out, "{k} {n}");
            }
            out.push(b')');
        }
        Data::Search(nums, modseq) => {
            out.extend_from_slice(b"SEARCH");
            numbers(out, nums);
            if let Some(m) = modseq {
                let _ = write!(out, " (MODSEQ {m})");
            }
        }
        Data::QuotaRoot { mailbox, roots } => {
            out.extend_from_slice(b"QUOTAROOT ");
            encode::astring(out, mailbox, true);
            for r in roots.iter() {
                out.push(b' ');
                encode::astring(out, r.as_bytes(), true);
            }
        }
        Data::Quota { root, resources } => {
            out.extend_from_slice(b"QUOTA ");
            encode::astring(out, root.as_bytes(), true);
            out.extend_from_slice(b" (");
            for (i, (name, usage, limit)) in resources.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                let _ = write!(out, "{name} {usage} {limit}");
            }
            out.push(b')');
        }
        Data::Sort(nums) => {
            out.extend_from_slice(b"SORT");
            numbers(out, nums);
        }
        Data::Esearch(e) => esearch::body(out, e),
        Data::Vanished { earlier, uids } => {
            out.extend_from_slice(if *earlier {
                b"VANISHED (EARLIER) "
            } else {
                b"VANISHED "
            });
            for (i, &(a, b)) in uids.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if a == b {
                    let _ = write!(out, "{a}");
                } else {
                    let _ = write!(out, "{a}:{b}");
                }
            }
        }
        Data::Thread { nodes, roots } => {
            // An empty result is `* THREAD` alone (RFC 5256 §5:
            // `thread-data = "THREAD" [SP 1*thread-list]`).
            out.extend_from_slice(b"THREAD");
            if !roots.is_empty() {
                out.push(b' ');
                encode::thread_lists(out, nodes, roots);
            }
        }
        Data::Fetch { seq, items } => {
            let _ = write!(out, "{seq} FETCH (");
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                fetch_item(out, it);
            }
            out.push(b')');
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `(attrs) "/" name`: the shared part of LIST and LSUB.
fn mailbox_list(out: &mut Vec<u8>, attrs: &[ListAttr], name: &[u8]) {
    out.push(b'(');
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(a.as_str().as_bytes());
    }
    out.extend_from_slice(b") \"/\" ");
    encode::astring(out, name, true);
}

fn numbers(out: &mut Vec<u8>, nums: &[u32]) {
    for n in nums {
        let _ = write!(out, " {n}");
    }
}

/// Opens a FETCH response: `* n FETCH (`. Items follow, separated by one
/// space each, then [`fetch_close`].
pub fn fetch_open(out: &mut Vec<u8>, seq: u32) {
    let _ = write!(out, "* {seq} FETCH (");
}

/// Closes what [`fetch_open`] opened.
pub fn fetch_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b")\r\n");
}

/// Appends one FETCH item (no separator).
pub fn fetch_item(out: &mut Vec<u8>, it: &FetchItem<'_>) {
    match it {
        FetchItem::Uid(u) => {
            let _ = write!(out, "UID {u}");
        }
        FetchItem::Flags { flags, recent } => {
            out.extend_from_slice(b"FLAGS ");
            let recent = recent.then(|| Flag::Extension("Recent".into()));
            encode::flag_list(out, flags.iter().chain(recent));
        }
        FetchItem::ModSeq(m) => {
            let _ = write!(out, "MODSEQ ({m})");
        }
        FetchItem::Rfc822Size(n) => {
            let _ = write!(out, "RFC822.SIZE {n}");
        }
        FetchItem::InternalDate(dt) => {
            out.extend_from_slice(b"INTERNALDATE ");
            encode::date_time(out, dt);
        }
        FetchItem::EmailId(id) => {
            let _ = write!(out, "EMAILID ({id})");
        }
        FetchItem::ThreadId(Some(id)) => {
            let _ = write!(out, "THREADID ({id})");
        }
        FetchItem::ThreadId(None) => out.extend_from_slice(b"THREADID NIL"),
        FetchItem::SaveDate(Some(dt)) => {
            out.extend_from_slice(b"SAVEDATE ");
            encode::date_time(out, dt);
        }
        FetchItem::SaveDate(None) => out.extend_from_slice(b"SAVEDATE NIL"),
        FetchItem::Preview(text) => {
            out.extend_from_slice(b"PREVIEW ");
            // Quoted when ASCII, else a literal: valid without UTF8=ACCEPT.
            encode::nstring(out, text.map(str::as_bytes), false);
        }
        FetchItem::BinarySize { part, size } => {
            out.extend_from_slice(b"BINARY.SIZE[");
            for (i, p) in part.iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                let _ = write!(out, "{p}");
            }
            let _ = write!(out, "] {size}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::esearch::Item;

    fn w(d: Data<'_>) -> String {
        let mut out = Vec::new();
        write(&mut out, &d);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_response_as_the_rfc_spells_it() {
        let flags = Flags::from_flags(&[Flag::Flagged, Flag::Seen]);
        let keywords = vec!["$Forwarded".to_string()];
        let items = [
            FetchItem::Uid(40),
            FetchItem::Flags {
                flags: &flags,
                recent: true,
            },
            FetchItem::ModSeq(12),
        ];
        let nodes = [
            encode::ThreadNode {
                number: Some(1),
                children: vec![1],
            },
            encode::ThreadNode {
                number: Some(2),
                children: vec![],
            },
        ];
        let table: Vec<(Data<'_>, &str)> = vec![
            (
                Data::Capability("IMAP4rev2 IDLE"),
                "* CAPABILITY IMAP4rev2 IDLE\r\n",
            ),
            (Data::Enabled(&[]), "* ENABLED\r\n"),
            (Data::Enabled(&["IMAP4rev2"]), "* ENABLED IMAP4rev2\r\n"),
            (
                Data::Id {
                    name: "nestbox",
                    version: "1.0",
                },
                "* ID (\"name\" \"nestbox\" \"version\" \"1.0\")\r\n",
            ),
            (Data::Namespace, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"),
            (
                Data::Flags(&keywords),
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n",
            ),
            (Data::Exists(0), "* 0 EXISTS\r\n"),
            (Data::Recent(3), "* 3 RECENT\r\n"),
            (Data::Expunge(7), "* 7 EXPUNGE\r\n"),
            (
                Data::List {
                    attrs: &[ListAttr::Noselect],
                    name: b"",
                    childinfo_subscribed: false,
                    oldname: None,
                },
                "* LIST (\\Noselect) \"/\" \"\"\r\n",
            ),
            (
                Data::List {
                    attrs: &[ListAttr::HasNoChildren, ListAttr::Use("\\Sent")],
                    name: b"Sent Items",
                    childinfo_subscribed: false,
                    oldname: None,
                },
                "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n",
            ),
            (
                Data::List {
                    attrs: &[ListAttr::NonExistent, ListAttr::HasChildren],
                    name: b"Work",
                    childinfo_subscribed: true,
                    oldname: None,
                },
                "* LIST (\\NonExistent \\HasChildren) \"/\" Work (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
            ),
            (
                Data::List {
                    attrs: &[ListAttr::HasNoChildren],
                    name: b"New Name",
                    childinfo_subscribed: false,
                    oldname: Some(b"Old"),
                },
                "* LIST (\\HasNoChildren) \"/\" \"New Name\" (\"OLDNAME\" (Old))\r\n",
            ),
            (
                Data::Lsub {
                    attrs: &[],
                    name: b"INBOX",
                },
                "* LSUB () \"/\" INBOX\r\n",
            ),
            (
                Data::Status {
                    name: b"INBOX",
                    values: &[StatusValue::Messages(2), StatusValue::AppendLimit(9)],
                },
                "* STATUS INBOX (MESSAGES 2 APPENDLIMIT 9)\r\n",
            ),
            (
                Data::Status {
                    name: b"a b",
                    values: &[],
                },
                "* STATUS \"a b\" ()\r\n",
            ),
            (Data::Search(&[], None), "* SEARCH\r\n"),
            (Data::Search(&[2, 5], None), "* SEARCH 2 5\r\n"),
            (
                Data::Search(&[2, 5], Some(917)),
                "* SEARCH 2 5 (MODSEQ 917)\r\n",
            ),
            (
                Data::Vanished {
                    earlier: true,
                    uids: &[(3, 3), (7, 9)],
                },
                "* VANISHED (EARLIER) 3,7:9\r\n",
            ),
            (
                Data::Vanished {
                    earlier: false,
                    uids: &[(1, 1)],
                },
                "* VANISHED 1\r\n",
            ),
            (Data::Sort(&[5, 2]), "* SORT 5 2\r\n"),
            (
                Data::Esearch(Esearch {
                    tag: "a1",
                    uid: true,
                    items: vec![
                        Item::Min(2),
                        Item::Max(9),
                        Item::All {
                            nums: vec![2, 3, 4, 9],
                            ordered: false,
                        },
                        Item::Count(4),
                    ],
                }),
                "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 ALL 2:4,9 COUNT 4\r\n",
            ),
            (
                Data::Esearch(Esearch {
                    tag: "t",
                    uid: false,
                    items: vec![Item::Count(0)],
                }),
                "* ESEARCH (TAG \"t\") COUNT 0\r\n",
            ),
            (
                Data::Thread {
                    nodes: &[],
                    roots: &[],
                },
                "* THREAD\r\n",
            ),
            (
                Data::Thread {
                    nodes: &nodes,
                    roots: &[0],
                },
                "* THREAD (1 2)\r\n",
            ),
            (
                Data::Fetch {
                    seq: 4,
                    items: &items,
                },
                "* 4 FETCH (UID 40 FLAGS (\\Flagged \\Seen \\Recent) MODSEQ (12))\r\n",
            ),
        ];
        for (d, want) in table {
            assert_eq!(w(d.clone()), want, "{d:?}");
        }
    }

    #[test]
    fn a_fetch_built_from_parts_reads_as_one() {
        let mut out = Vec::new();
        fetch_open(&mut out, 1);
        fetch_item(&mut out, &FetchItem::Rfc822Size(10));
        out.push(b' ');
        fetch_item(&mut out, &FetchItem::BinarySize { part: &[], size: 3 });
        out.push(b' ');
        fetch_item(
            &mut out,
            &FetchItem::BinarySize {
                part: &[1, 2],
                size: 4,
            },
        );
        out.push(b' ');
        let dt = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05+01:00").unwrap();
        fetch_item(&mut out, &FetchItem::InternalDate(dt));
        fetch_close(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 1 FETCH (RFC822.SIZE 10 BINARY.SIZE[] 3 BINARY.SIZE[1.2] 4 \
             INTERNALDATE \" 2-Jan-2024 03:04:05 +0100\")\r\n"
        );
    }
}
