//! Status responses as types, and their one encoder (RFC 9051 §7.1).
//!
//! A command's outcome is a [`Status`]: OK, NO or BAD, an optional
//! [`Code`] and human text. Untagged status responses (`* OK [UIDNEXT 5]
//! ...`) are the same value without a tag. Response codes are a closed
//! enum, so a code is spelt once, here, and a typo is a compile error,
//! not a word no client knows.
//!
//! Owns the wire form of status responses and response codes. It never
//! decides which response a command gives (the session's) and does no
//! I/O: it appends to a caller's buffer.

use std::io::Write;

/// OK, NO, BAD (RFC 9051 §7.1.1-3) or, untagged only, BYE (§7.1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKind {
    Ok,
    No,
    Bad,
    Bye,
}

impl StatusKind {
    fn word(self) -> &'static str {
        match self {
            StatusKind::Ok => "OK",
            StatusKind::No => "NO",
            StatusKind::Bad => "BAD",
            StatusKind::Bye => "BYE",
        }
    }
}

/// A response code (RFC 9051 §7.1, RFC 5530, RFC 4315, RFC 7162, RFC 3516,
/// RFC 7889): the bracketed part of a status response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    AlreadyExists,
    /// RFC 4315: the UIDVALIDITY and the UIDs APPEND gave.
    AppendUid {
        uidvalidity: u32,
        uids: Vec<u32>,
    },
    AuthenticationFailed,
    AuthorizationFailed,
    /// The charsets SEARCH understands.
    BadCharset(Vec<&'static str>),
    /// RFC 4469 §4.1: the CATENATE URL that failed, as `url-resp-text`
    /// (bare, not a string: erratum 4046; see `proto::imapurl::resp_text`).
    BadUrl(String),
    Cannot,
    /// The capability list (space-separated atoms) at login.
    Capability(String),
    Closed,
    /// RFC 4978 §3: COMPRESS when compression is already on.
    CompressionActive,
    /// RFC 4315: source and destination UIDs, element by element.
    CopyUid {
        uidvalidity: u32,
        from: Vec<u32>,
        to: Vec<u32>,
    },
    ExpungeIssued,
    /// RFC 7162 §3.1.2.1: the mailbox's highest mod-sequence.
    HighestModSeq(u64),
    /// RFC 8474 §4: the mailbox's object ID (SELECT, EXAMINE, CREATE).
    MailboxId(String),
    /// RFC 5465 §3.1: the events NOTIFY supports, when asked for others.
    BadEvent(&'static [&'static str]),
    /// RFC 5465 §5.8: notifications refused or stopped.
    NotificationOverflow,
    InUse,
    /// RFC 5530: a limit of the server was reached (not of this message).
    Limit,
    /// RFC 7162 §3.1.3: the numbers STORE UNCHANGEDSINCE left alone.
    Modified(Vec<u32>),
    Nonexistent,
    NoPerm,
    /// RFC 5267 §4.3.1: the server will not keep the result of the
    /// searching command with this tag current.
    NoUpdate(String),
    OverQuota,
    /// The flags a client may set: the system flags, the keywords given,
    /// and `\*` unless `read_only` (then the list is empty).
    PermanentFlags {
        keywords: Vec<String>,
        read_only: bool,
    },
    PrivacyRequired,
    ReadOnly,
    ReadWrite,
    ServerBug,
    TooBig,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unavailable,
    UnknownCte,
    Unseen(u32),
    /// RFC 6154: a special-use attribute the server does not support.
    UseAttr,
}

/// The system flags every mailbox has, as FLAGS and PERMANENTFLAGS list
/// them.
pub const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

impl Code {
    /// Appends the code, without its brackets.
    pub fn write(&self, out: &mut Vec<u8>) {
        let word = match self {
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED",
            Code::AuthorizationFailed => "AUTHORIZATIONFAILED",
            Code::Cannot => "CANNOT",
            Code::Closed => "CLOSED",
            Code::CompressionActive => "COMPRESSIONACTIVE",
            Code::ExpungeIssued => "EXPUNGEISSUED",
            Code::InUse => "INUSE",
            Code::NotificationOverflow => "NOTIFICATIONOVERFLOW",
            Code::Limit => "LIMIT",
            Code::Nonexistent => "NONEXISTENT",
            Code::NoPerm => "NOPERM",
            Code::OverQuota => "OVERQUOTA",
            Code::PrivacyRequired => "PRIVACYREQUIRED",
            Code::ReadOnly => "READ-ONLY",
            Code::ReadWrite => "READ-WRITE",
            Code::ServerBug => "SERVERBUG",
            Code::TooBig => "TOOBIG",
            Code::TryCreate => "TRYCREATE",
            Code::Unavailable => "UNAVAILABLE",
            Code::UnknownCte => "UNKNOWN-CTE",
            Code::UseAttr => "USEATTR",
            Code::AppendUid { uidvalidity, uids } => {
                let _ = write!(out, "APPENDUID {uidvalidity} ");
                super::encode::sequence_set(out, uids);
                return;
            }
            Code::BadUrl(url) => {
                let _ = write!(out, "BADURL {url}");
                return;
            }
            Code::BadCharset(list) => {
                let _ = write!(out, "BADCHARSET ({})", list.join(" "));
                return;
            }
            Code::Capability(caps) => {
                let _ = write!(out, "CAPABILITY {caps}");
                return;
            }
            Code::CopyUid {
                uidvalidity,
                from,
                to,
            } => {
                let _ = write!(out, "COPYUID {uidvalidity} ");
                // The two sets correspond element by element.
                super::encode::sequence_in_order(out, from);
                out.push(b' ');
                super::encode::sequence_in_order(out, to);
                return;
            }
            Code::NoUpdate(tag) => {
                out.extend_from_slice(b"NOUPDATE ");
                super::encode::string(out, tag.as_bytes(), false);
                return;
            }
            Code::Modified(nums) => {
                out.extend_from_slice(b"MODIFIED ");
                super::encode::sequence_set(out, nums);
                return;
            }
            Code::PermanentFlags {
                keywords,
                read_only,
            } => {
                if *read_only {
                    out.extend_from_slice(b"PERMANENTFLAGS ()");
                } else {
                    let _ = write!(out, "PERMANENTFLAGS ({SYSTEM_FLAGS}");
                    for k in keywords {
                        let _ = write!(out, " {k}");
                    }
                    out.extend_from_slice(b" \\*)");
                }
                return;
            }
            Code::UidNext(n) => {
                let _ = write!(out, "UIDNEXT {n}");
                return;
            }
            Code::HighestModSeq(n) => {
                let _ = write!(out, "HIGHESTMODSEQ {n}");
                return;
            }
            Code::BadEvent(events) => {
                let _ = write!(out, "BADEVENT ({})", events.join(" "));
                return;
            }
            Code::MailboxId(id) => {
                let _ = write!(out, "MAILBOXID ({id})");
                return;
            }
            Code::UidValidity(n) => {
                let _ = write!(out, "UIDVALIDITY {n}");
                return;
            }
            Code::Unseen(n) => {
                let _ = write!(out, "UNSEEN {n}");
                return;
            }
        };
        out.extend_from_slice(word.as_bytes());
    }

    /// The code as a string (tests, logs).
    pub fn to_wire(&self) -> String {
        let mut v = Vec::new();
        self.write(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// Appends a status response line, CRLF included: `tag` (`None`: `*`),
/// kind, `[code]` when there is one, then the text.
pub fn status_line(
    out: &mut Vec<u8>,
    tag: Option<&str>,
    kind: StatusKind,
    code: Option<&Code>,
    text: &str,
) {
    out.extend_from_slice(tag.unwrap_or("*").as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.word().as_bytes());
    out.push(b' ');
    if let Some(c) = code {
        out.push(b'[');
        c.write(out);
        out.extend_from_slice(b"] ");
    }
    // Text is ours; a line break in it (from an error message) would end
    // the response early and leave the rest to be read as another one.
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_on_the_wire() {
        let cases: Vec<(Code, &str)> = vec![
            (Code::Cannot, "CANNOT"),
            (Code::ReadOnly, "READ-ONLY"),
            (Code::UnknownCte, "UNKNOWN-CTE"),
            (
                Code::AppendUid {
                    uidvalidity: 7,
                    uids: vec![3, 4, 5, 9],
                },
                "APPENDUID 7 3:5,9",
            ),
            (
                Code::CopyUid {
                    uidvalidity: 7,
                    from: vec![3, 4, 5, 9, 7],
                    to: vec![10, 11, 12, 13, 14],
                },
                "COPYUID 7 3:5,9,7 10:14",
            ),
            (Code::Modified(vec![1, 2, 3, 7]), "MODIFIED 1:3,7"),
            (
                Code::BadUrl("/INBOX;UIDVALIDITY=9/;UID=3".into()),
                "BADURL /INBOX;UIDVALIDITY=9/;UID=3",
            ),
            (
                Code::BadCharset(vec!["UTF-8", "US-ASCII"]),
                "BADCHARSET (UTF-8 US-ASCII)",
            ),
            (
                Code::PermanentFlags {
                    keywords: vec!["$Junk".into()],
                    read_only: false,
                },
                "PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk \\*)",
            ),
            (
                Code::PermanentFlags {
                    keywords: vec!["$Junk".into()],
                    read_only: true,
                },
                "PERMANENTFLAGS ()",
            ),
            (Code::UidNext(12), "UIDNEXT 12"),
            (
                Code::HighestModSeq(1 << 60),
                "HIGHESTMODSEQ 1152921504606846976",
            ),
            (Code::NoUpdate("B\"02".into()), "NOUPDATE \"B\\\"02\""),
        ];
        for (code, want) in cases {
            assert_eq!(code.to_wire(), want);
        }
    }

    #[test]
    fn status_lines() {
        let mut out = Vec::new();
        status_line(
            &mut out,
            Some("a1"),
            StatusKind::No,
            Some(&Code::TryCreate),
            "No\r\nsuch",
        );
        status_line(&mut out, None, StatusKind::Ok, None, "Still here");
        assert_eq!(out, b"a1 NO [TRYCREATE] No  such\r\n* OK Still here\r\n");
    }
}
