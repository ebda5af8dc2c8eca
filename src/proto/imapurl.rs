//! IMAP URLs (RFC 5092) as CATENATE uses them (RFC 4469 §3): a URL that
//! names one message, or one part of it, in a mailbox of the user who is
//! logged in, on this server. Pure: bytes and the base in, a
//! [`MessageRef`] or the reason it names nothing out; no I/O.
//!
//! # What resolves
//! RFC 4469 §3 takes relative URLs against the base `imap://user@server/`,
//! or `imap://user@server/mailbox` in the selected state, and no further
//! login is made for them. So:
//! - `/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]`
//!   (RFC 5092 `iabsolute-path`): a mailbox of this user;
//! - `imap://user@host[:port]/...` and `//user@host/...` (`imapurl`,
//!   `inetwork-path`): the same, when `user` is the user logged in and
//!   `host` this server's name (any port: 143 and 993 are one server).
//!   Another host, another user, or none (anonymous, RFC 5092 §3.1) names
//!   something this session cannot read without a login, which RFC 4469 §3
//!   leaves to a further extension: refused;
//! - `mailbox;.../;UID=n` without a leading `/` (`irelative-path`):
//!   resolved as RFC 3986 §5.2.3 merges paths, so against the selected
//!   mailbox `A/B` it names `A/mailbox`, and at the top level otherwise;
//! - `;UID=n[/...]` without a mailbox: the selected mailbox. RFC 3986
//!   alone would drop the base's last segment and leave no mailbox; like
//!   Dovecot, the base mailbox is taken to end in `/` here, the one reading
//!   under which this form names anything. `;SECTION=` or `;PARTIAL=`
//!   alone need a base UID, which the base never has: refused.
//!
//! Refused as well: URLAUTH (`;URLAUTH=`, `;EXPIRE=`, RFC 4467: not
//! offered), message lists (`?search`, no `;UID=`), fragments, dot
//! segments, any byte outside RFC 5092's character set, a `%` not followed
//! by two hex digits, parameters out of order or repeated, a zero or
//! overlong number, an empty mailbox, and a `;SECTION=` that is not a
//! FETCH `section-spec` (read by the FETCH grammar,
//! [`super::parse::parse_section_spec`]).
//!
//! # Mailbox names
//! `enc-mailbox` is %-encoded; RFC 5092 §9 wants the name's UTF-8 form,
//! older clients wrote the modified UTF-7 of RFC 3501 §5.1.3. The decoded
//! bytes must be UTF-8; an ASCII name that is valid modified UTF-7 with a
//! `&` shift is read as such (`Entw&APw-rfe` and `Entw%C3%BCrfe` both name
//! `Entwürfe`); anything else is taken as UTF-8. A name is a name here,
//! never a path: the session looks it up through the store, which keeps
//! every folder beneath the Maildir.
//!
//! %-decoding is these few lines rather than the `percent-encoding` crate:
//! it is all this module needs of it, and the grammar's character classes
//! have to be checked by hand anyway.

use super::command::Section;

/// The base a relative URL is resolved against (RFC 4469 §3).
#[derive(Clone, Copy, Debug)]
pub struct Base<'a> {
    /// The user logged in.
    pub user: &'a str,
    /// This server's host name (config `hostname`).
    pub host: &'a str,
    /// The selected mailbox, as the store names it, if any.
    pub mailbox: Option<&'a str>,
}

/// A message or message part, as an IMAP URL names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef {
    /// The mailbox, decoded (UTF-8; `INBOX` not yet canonical).
    pub mailbox: String,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    /// `None`: the whole message (`BODY[]`).
    pub section: Option<Section>,
    /// `;PARTIAL=offset[.length]` (RFC 5092 §5, RFC 5550).
    pub partial: Option<(u32, Option<u32>)>,
}

/// Why a URL names nothing this session may read.
pub type UrlError = &'static str;

/// Resolves `url` (an astring's bytes) against `base`.
pub fn resolve(url: &[u8], base: &Base<'_>) -> Result<MessageRef, UrlError> {
    let s = std::str::from_utf8(url).map_err(|_| "not ASCII")?;
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a character no URL may contain");
    }
    if s.contains('#') {
        return Err("a fragment");
    }
    if s.contains('?') {
        return Err("a message list, not a message");
    }
    let (scheme, rest) = split_scheme(s);
    let path = match scheme {
        Some(sc) if sc.eq_ignore_ascii_case("imap") => {
            let Some(r) = rest.strip_prefix("//") else {
                return Err("imap: without a server");
            };
            server_path(r, base)?
        }
        Some(_) => return Err("not an IMAP URL"),
        None => {
            if let Some(r) = rest.strip_prefix("//") {
                server_path(r, base)?
            } else if let Some(r) = rest.strip_prefix('/') {
                return absolute_path(r, None);
            } else {
                return relative_path(rest, base);
            }
        }
    };
    absolute_path(path, None)
}

/// The scheme, if the URL starts with one (RFC 3986 §3.1), and the rest.
fn split_scheme(s: &str) -> (Option<&str>, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .unwrap_or(s.len());
    match s[end..].strip_prefix(':') {
        Some(rest) if end > 0 && s.as_bytes()[0].is_ascii_alphabetic() => (Some(&s[..end]), rest),
        _ => (None, s),
    }
}

/// `iserver "/" ...` after `//`: checks that it names this server and user;
/// returns the path after the `/`.
fn server_path<'a>(s: &'a str, base: &Base<'_>) -> Result<&'a str, UrlError> {
    let (authority, path) = match s.find('/') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => return Err("no message"),
    };
    let Some((userinfo, hostport)) = authority.rsplit_once('@') else {
        return Err("anonymous access (no user)");
    };
    let enc_user = match userinfo.find(';') {
        Some(i) => {
            let auth = &userinfo[i..];
            let Some(mech) = strip_prefix_ci(auth, ";AUTH=") else {
                return Err("bad userinfo");
            };
            if mech.is_empty() || !mech.bytes().all(is_achar) {
                return Err("bad ;AUTH=");
            }
            &userinfo[..i]
        }
        None => userinfo,
    };
    if enc_user.is_empty() || !enc_user.bytes().all(is_achar) {
        return Err("bad user name");
    }
    if pct_decode(enc_user)? != base.user.as_bytes() {
        return Err("another user");
    }
    let host = match hostport.rsplit_once(':') {
        // `[v6]:port` or `host:port`; the `:`s inside `[v6]` are no port.
        Some((h, port)) if !h.starts_with('[') || h.ends_with(']') => {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err("bad port");
            }
            h
        }
        _ => hostport,
    };
    if host.is_empty() || !host.eq_ignore_ascii_case(base.host) {
        return Err("another server");
    }
    Ok(path)
}

/// `[enc-mailbox] [uidvalidity] iuid [isection] [ipartial]`, after the
/// leading `/`; `mailbox_prefix` is prepended to the mailbox (a relative
/// path merged with the base's directory).
fn absolute_path(path: &str, mailbox_prefix: Option<&str>) -> Result<MessageRef, UrlError> {
    let (enc_mailbox, params) = match path.find(';') {
        Some(i) => (&path[..i], &path[i..]),
        None => return Err("no ;UID="),
    };
    let params = split_params(params)?;
    let mut it = params.into_iter().peekable();
    let mut uidvalidity = None;
    // `imailbox-ref "/" iuid-only`: the `/` ends the mailbox part unless
    // UIDVALIDITY comes between.
    let enc_mailbox = match it.peek() {
        Some((name, _, _)) if name.eq_ignore_ascii_case("UIDVALIDITY") => enc_mailbox,
        _ => enc_mailbox.strip_suffix('/').ok_or("no / before ;UID=")?,
    };
    if let Some((name, value, slash)) = it.peek().copied() {
        if name.eq_ignore_ascii_case("UIDVALIDITY") {
            if !slash {
                return Err("no / before ;UID=");
            }
            uidvalidity = Some(nz_number(value)?);
            it.next();
        }
    }
    let mut mailbox = mailbox_name(enc_mailbox)?;
    if let Some(prefix) = mailbox_prefix {
        mailbox = format!("{prefix}{mailbox}");
    }
    let uid = match it.next() {
        Some((name, value, slash)) if name.eq_ignore_ascii_case("UID") => {
            (nz_number(value)?, slash)
        }
        _ => return Err("no ;UID="),
    };
    message_rest(mailbox, uidvalidity, uid, it)
}

/// What follows `;UID=n`: `[/;SECTION=..] [/;PARTIAL=..]`, nothing else.
fn message_rest<'a>(
    mailbox: String,
    uidvalidity: Option<u32>,
    (uid, mut slash): (u32, bool),
    mut it: impl Iterator<Item = (&'a str, &'a str, bool)>,
) -> Result<MessageRef, UrlError> {
    let mut section = None;
    let mut partial = None;
    let mut next = it.next();
    if let Some((name, value, s)) = next {
        if name.eq_ignore_ascii_case("SECTION") {
            if !slash {
                return Err("no / before ;SECTION=");
            }
            if value.is_empty() || !value.bytes().all(is_bchar) {
                return Err("bad ;SECTION=");
            }
            let spec = pct_decode(value)?;
            section = Some(super::parse::parse_section_spec(&spec).ok_or("bad ;SECTION=")?);
            slash = s;
            next = it.next();
        }
    }
    if let Some((name, value, s)) = next {
        if name.eq_ignore_ascii_case("PARTIAL") {
            if !slash {
                return Err("no / before ;PARTIAL=");
            }
            partial = Some(partial_range(value)?);
            slash = s;
            next = it.next();
        }
    }
    if let Some((name, _, _)) = next {
        return Err(
            if name.eq_ignore_ascii_case("URLAUTH") || name.eq_ignore_ascii_case("EXPIRE") {
                "URLAUTH (not offered)"
            } else {
                "an unknown or misplaced parameter"
            },
        );
    }
    if slash {
        return Err("a / after the last parameter");
    }
    Ok(MessageRef {
        mailbox,
        uidvalidity,
        uid,
        section,
        partial,
    })
}

/// A path without a leading `/` (RFC 5092 `irelative-path`).
fn relative_path(path: &str, base: &Base<'_>) -> Result<MessageRef, UrlError> {
    if path.starts_with(';') {
        let mut it = split_params(path)?.into_iter();
        return match it.next() {
            Some((name, value, slash)) if name.eq_ignore_ascii_case("UID") => {
                let mailbox = base.mailbox.ok_or("no mailbox selected")?.to_string();
                message_rest(mailbox, None, (nz_number(value)?, slash), it)
            }
            _ => Err("a relative part without a UID"),
        };
    }
    // RFC 3986 §5.2.3: the base path without its last segment.
    let dir = base
        .mailbox
        .and_then(|m| m.rfind('/').map(|i| &m[..=i]))
        .unwrap_or("");
    absolute_path(path, (!dir.is_empty()).then_some(dir))
}

/// `;name=value` parameters, each with whether a `/` ended it (the
/// separator before the next one).
fn split_params(s: &str) -> Result<Vec<(&str, &str, bool)>, UrlError> {
    let mut out = Vec::new();
    for p in s.split(';').skip(1) {
        let (p, slash) = match p.strip_suffix('/') {
            Some(p) => (p, true),
            None => (p, false),
        };
        let (name, value) = p.split_once('=').ok_or("a parameter without =")?;
        if value.contains('/') && !name.eq_ignore_ascii_case("SECTION") {
            return Err("a / inside a parameter");
        }
        out.push((name, value, slash));
    }
    Ok(out)
}

/// Decodes `enc-mailbox` (see the module doc).
fn mailbox_name(enc: &str) -> Result<String, UrlError> {
    if enc.is_empty() || !enc.bytes().all(is_bchar) {
        return Err("bad mailbox name");
    }
    let name = String::from_utf8(pct_decode(enc)?).map_err(|_| "mailbox name not UTF-8")?;
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("a dot segment");
    }
    if name.split('/').any(str::is_empty) {
        // `A//B`, `/A`, `A/`: no folder has an empty level.
        return Err("an empty mailbox level");
    }
    if name.is_ascii() && name.contains('&') {
        if let Ok(decoded) = crate::mutf7::decode(&name) {
            return Ok(decoded);
        }
    }
    Ok(name)
}

/// `nz-number` (RFC 9051 §9): 32-bit, not zero, no leading zero.
fn nz_number(s: &str) -> Result<u32, UrlError> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad number");
    }
    s.parse().map_err(|_| "number too large")
}

/// `partial-range = number ["." nz-number]`.
fn partial_range(s: &str) -> Result<(u32, Option<u32>), UrlError> {
    let (off, len) = match s.split_once('.') {
        Some((o, l)) => (o, Some(nz_number(l)?)),
        None => (s, None),
    };
    if off.is_empty()
        || !off.bytes().all(|b| b.is_ascii_digit())
        || (off.len() > 1 && off.starts_with('0'))
    {
        return Err("bad ;PARTIAL=");
    }
    Ok((off.parse().map_err(|_| "number too large")?, len))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// `achar` (RFC 5092 §11): unreserved, sub-delims but `;`, `&`, `=`, and
/// `%` (checked when decoding).
fn is_achar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'&'
                | b'='
                | b'%'
        )
}

/// `bchar = achar / ":" / "@" / "/"`.
fn is_bchar(b: u8) -> bool {
    is_achar(b) || matches!(b, b':' | b'@' | b'/')
}

/// `%HH` -> the byte; a `%` without two hex digits is an error.
fn pct_decode(s: &str) -> Result<Vec<u8>, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or("bad %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// `url` as `url-resp-text` (RFC 4469 §5 with erratum 2002: any TEXT-CHAR
/// but `]`) for `[BADURL ...]`: bytes it cannot hold are %-escaped, which
/// names the same URL.
pub fn resp_text(url: &[u8]) -> String {
    let mut out = String::with_capacity(url.len());
    for &b in url {
        if (b' '..=b'~').contains(&b) && b != b']' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::SectionText;

    const AUTHED: Base<'static> = Base {
        user: "alice",
        host: "mail.example.org",
        mailbox: None,
    };
    const SELECTED: Base<'static> = Base {
        user: "alice",
        host: "mail.example.org",
        mailbox: Some("Work/Projects"),
    };

    fn r(mailbox: &str, uidvalidity: Option<u32>, uid: u32) -> MessageRef {
        MessageRef {
            mailbox: mailbox.into(),
            uidvalidity,
            uid,
            section: None,
            partial: None,
        }
    }

    fn sec(part: &[u32], text: Option<SectionText>) -> Option<Section> {
        Some(Section {
            part: part.to_vec(),
            text,
        })
    }

    #[test]
    fn urls_that_resolve() {
        let cases: Vec<(&str, Base<'_>, MessageRef)> = vec![
            ("/INBOX/;UID=5", AUTHED, r("INBOX", None, 5)),
            (
                "/INBOX;UIDVALIDITY=1700000000/;UID=5",
                AUTHED,
                r("INBOX", Some(1_700_000_000), 5),
            ),
            (
                "/inbox;uidvalidity=7/;uid=5",
                AUTHED,
                r("inbox", Some(7), 5),
            ),
            ("/Work/Projects/;UID=1", AUTHED, r("Work/Projects", None, 1)),
            (
                "/INBOX/;UID=2/;SECTION=1.2",
                AUTHED,
                MessageRef {
                    section: sec(&[1, 2], None),
                    ..r("INBOX", None, 2)
                },
            ),
            (
                "/INBOX/;UID=2/;SECTION=HEADER",
                AUTHED,
                MessageRef {
                    section: sec(&[], Some(SectionText::Header)),
                    ..r("INBOX", None, 2)
                },
            ),
            (
                "/INBOX/;UID=2/;SECTION=text",
                AUTHED,
                MessageRef {
                    section: sec(&[], Some(SectionText::Text)),
                    ..r("INBOX", None, 2)
                },
            ),
            (
                "/INBOX/;UID=2/;SECTION=1.MIME",
                AUTHED,
                MessageRef {
                    section: sec(&[1], Some(SectionText::Mime)),
                    ..r("INBOX", None, 2)
                },
            ),
            (
                "/INBOX/;UID=2/;SECTION=HEADER.FIELDS%20(From%20Subject)",
                AUTHED,
                MessageRef {
                    section: sec(
                        &[],
                        Some(SectionText::HeaderFields(vec![
                            "From".into(),
                            "Subject".into(),
                        ])),
                    ),
                    ..r("INBOX", None, 2)
                },
            ),
            (
                "/INBOX/;UID=2/;SECTION=HEADER.FIELDS.NOT%20(To)",
                AUTHED,
                MessageRef {
                    section: sec(&[], Some(SectionText::HeaderFieldsNot(vec!["To".into()]))),
                    ..r("INBOX", None, 2)
                },
            ),
            (
                "/INBOX/;UID=2/;SECTION=1/;PARTIAL=10.20",
                AUTHED,
                MessageRef {
                    section: sec(&[1], None),
                    partial: Some((10, Some(20))),
                    ..r("INBOX", None, 2)
                },
            ),
            (
                "/INBOX/;UID=2/;PARTIAL=0",
                AUTHED,
                MessageRef {
                    partial: Some((0, None)),
                    ..r("INBOX", None, 2)
                },
            ),
            // %-encoded UTF-8 and modified UTF-7 name the same mailbox.
            ("/Entw%C3%BCrfe/;UID=1", AUTHED, r("Entwürfe", None, 1)),
            ("/Entw&APw-rfe/;UID=1", AUTHED, r("Entwürfe", None, 1)),
            // `&` that is no modified UTF-7 shift stays as it is.
            ("/Tom&Jerry/;UID=1", AUTHED, r("Tom&Jerry", None, 1)),
            ("/a%20b/;UID=1", AUTHED, r("a b", None, 1)),
            // Absolute and network-path forms naming this server and user.
            (
                "imap://alice@mail.example.org/INBOX/;UID=3",
                AUTHED,
                r("INBOX", None, 3),
            ),
            (
                "IMAP://alice@MAIL.example.org:993/INBOX/;UID=3",
                AUTHED,
                r("INBOX", None, 3),
            ),
            (
                "imap://alice;AUTH=*@mail.example.org/INBOX/;UID=3",
                AUTHED,
                r("INBOX", None, 3),
            ),
            (
                "imap://%61lice@mail.example.org/INBOX/;UID=3",
                AUTHED,
                r("INBOX", None, 3),
            ),
            (
                "//alice@mail.example.org/Sent;UIDVALIDITY=9/;UID=3",
                AUTHED,
                r("Sent", Some(9), 3),
            ),
            // Relative to the selected mailbox.
            ("/INBOX/;UID=4", SELECTED, r("INBOX", None, 4)),
            (";UID=4", SELECTED, r("Work/Projects", None, 4)),
            (
                ";UID=4/;SECTION=TEXT",
                SELECTED,
                MessageRef {
                    section: sec(&[], Some(SectionText::Text)),
                    ..r("Work/Projects", None, 4)
                },
            ),
            // RFC 3986 §5.2.3: beside the selected mailbox.
            ("Other/;UID=4", SELECTED, r("Work/Other", None, 4)),
            ("Other;UIDVALIDITY=3/;UID=4", AUTHED, r("Other", Some(3), 4)),
        ];
        for (url, base, want) in cases {
            assert_eq!(resolve(url.as_bytes(), &base), Ok(want), "{url}");
        }
    }

    #[test]
    fn urls_that_do_not() {
        let cases: &[(&str, Base<'_>)] = &[
            ("", AUTHED),
            ("/", AUTHED),
            ("/INBOX", AUTHED),
            ("/INBOX/", AUTHED),
            ("/INBOX;UID=5", AUTHED),
            ("/INBOX/;UID=0", AUTHED),
            ("/INBOX/;UID=05", AUTHED),
            ("/INBOX/;UID=4294967296", AUTHED),
            ("/INBOX/;UID=x", AUTHED),
            ("/INBOX/;UID=5/", AUTHED),
            ("/INBOX;UIDVALIDITY=0/;UID=5", AUTHED),
            ("/INBOX;UIDVALIDITY=1;UID=5", AUTHED),
            ("/INBOX/;UIDVALIDITY=1/;UID=5", AUTHED),
            ("/INBOX/;UID=5;SECTION=1", AUTHED),
            ("/INBOX/;UID=5/;SECTION=", AUTHED),
            ("/INBOX/;UID=5/;SECTION=1.", AUTHED),
            ("/INBOX/;UID=5/;SECTION=MIME", AUTHED),
            ("/INBOX/;UID=5/;SECTION=BOGUS", AUTHED),
            ("/INBOX/;UID=5/;SECTION=HEADER.FIELDS", AUTHED),
            ("/INBOX/;UID=5/;PARTIAL=", AUTHED),
            ("/INBOX/;UID=5/;PARTIAL=1.0", AUTHED),
            ("/INBOX/;UID=5/;PARTIAL=1/;SECTION=1", AUTHED),
            ("/INBOX/;UID=5/;SECTION=1/;SECTION=2", AUTHED),
            ("/INBOX/;UID=5/;FOO=1", AUTHED),
            (
                "/INBOX/;UID=5/;URLAUTH=anonymous:internal:0123456789abcdef0123456789abcdef",
                AUTHED,
            ),
            (
                "/INBOX/;UID=5/;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous",
                AUTHED,
            ),
            ("/INBOX?ALL", AUTHED),
            ("/INBOX/;UID=5#frag", AUTHED),
            ("/IN BOX/;UID=5", AUTHED),
            ("/IN\"BOX/;UID=5", AUTHED),
            ("/INBOX%/;UID=5", AUTHED),
            ("/INBOX%4/;UID=5", AUTHED),
            ("/INBOX%zz/;UID=5", AUTHED),
            ("/%FF/;UID=5", AUTHED),
            ("/a/../INBOX/;UID=5", AUTHED),
            ("/./;UID=5", AUTHED),
            ("/a//b/;UID=5", AUTHED),
            ("/Entwürfe/;UID=1", AUTHED),
            // Other servers, users, schemes; anonymous.
            ("imap://bob@mail.example.org/INBOX/;UID=3", AUTHED),
            ("imap://alice@other.example.org/INBOX/;UID=3", AUTHED),
            ("imap://mail.example.org/INBOX/;UID=3", AUTHED),
            ("imap://;AUTH=*@mail.example.org/INBOX/;UID=3", AUTHED),
            ("imap://alice;AUTH=@mail.example.org/INBOX/;UID=3", AUTHED),
            ("imap://alice@mail.example.org:x/INBOX/;UID=3", AUTHED),
            ("imap://alice@mail.example.org", AUTHED),
            ("imap:/INBOX/;UID=3", AUTHED),
            ("http://alice@mail.example.org/INBOX/;UID=3", AUTHED),
            ("//bob@mail.example.org/INBOX/;UID=3", AUTHED),
            // Relative forms without what they need from the base.
            (";UID=4", AUTHED),
            (";SECTION=1", SELECTED),
            (";PARTIAL=1", SELECTED),
            ("INBOX", SELECTED),
        ];
        for (url, base) in cases {
            let got = resolve(url.as_bytes(), base);
            assert!(got.is_err(), "{url:?} resolved to {got:?}");
        }
        assert!(resolve(b"/INBOX/;UID=1\xff", &AUTHED).is_err());
    }

    #[test]
    fn ip_literal_hosts() {
        let base = Base {
            host: "[::1]",
            ..AUTHED
        };
        for url in [
            "imap://alice@[::1]/INBOX/;UID=3",
            "imap://alice@[::1]:143/INBOX/;UID=3",
        ] {
            assert_eq!(
                resolve(url.as_bytes(), &base),
                Ok(r("INBOX", None, 3)),
                "{url}"
            );
        }
        assert!(resolve(b"imap://alice@[::2]/INBOX/;UID=3", &base).is_err());
    }

    proptest::proptest! {
        /// Any bytes, and URL-like strings: an answer, never a panic.
        #[test]
        fn never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            s in "(imap:|//|/|;)?[a-zA-Z0-9%@:;=/._&\\[\\]-]{0,60}",
        ) {
            let _ = resolve(&bytes, &SELECTED);
            let _ = resolve(s.as_bytes(), &SELECTED);
            let _ = resolve(s.as_bytes(), &AUTHED);
            let _ = resp_text(&bytes);
        }
    }

    #[test]
    fn badurl_text() {
        assert_eq!(resp_text(b"/INBOX/;UID=5"), "/INBOX/;UID=5");
        assert_eq!(resp_text(b"/a]b/;UID=5"), "/a%5Db/;UID=5");
        assert_eq!(resp_text(b"/a\r\nb\0"), "/a%0D%0Ab%00");
        assert_eq!(resp_text("/Entwürfe".as_bytes()), "/Entw%C3%BCrfe");
        assert_eq!(resp_text(b"a b%20"), "a b%20");
    }
}
