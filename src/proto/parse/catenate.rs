//! CATENATE (RFC 4469 §5): the APPEND data made of parts.
//!
//! ```text
//! append-data  =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"
//! cat-part     = text-literal / url
//! text-literal = "TEXT" SP literal
//! url          = "URL" SP astring
//! ```
//!
//! A TEXT part may also be a `literal8` (`~{n}`): RFC 4469 §5 does not list
//! it, but RFC 4466 §2.3 made `literal8` an alternative wherever APPEND
//! takes message data and RFC 3516 §4.4 lets a BINARY server take NULs in
//! APPEND; Dovecot reads `TEXT ~{n}` too. A plain `{n}` TEXT literal with a
//! NUL is the client's error (RFC 9051 §4.3: CHAR8 excludes NUL), as the
//! message literal of APPEND itself would be. A big TEXT literal may have
//! been diverted by the framer ([`AppendData::Diverted`]), like an APPEND
//! message; the session checks those for NUL once spooled.
//!
//! The URL is kept as the astring's bytes: whether it names anything is the
//! session's to find out (`proto::imapurl`), and a URL that does not is
//! answered `NO [BADURL]` (RFC 4469 §4.1), not BAD. Only an empty URL is
//! refused here: `url-resp-text` cannot echo it (it is `1*`).

use super::{P, R, bad};
use crate::proto::command::{AppendData, CatPart};

impl P<'_> {
    /// At `CATENATE` (already seen by the caller).
    pub(super) fn catenate(&mut self) -> R<AppendData> {
        self.i += "CATENATE".len();
        self.sp()?;
        let parts = self.paren_list(false, Self::cat_part)?;
        Ok(AppendData::Catenate(parts))
    }

    /// `cat-part`.
    fn cat_part(&mut self) -> R<CatPart> {
        let k = self.keyword()?;
        match k.as_str() {
            "TEXT" => {
                self.sp()?;
                if !matches!(self.peek(), Some(b'{' | b'~')) {
                    return Err(self.missing_or("Expected a literal after TEXT"));
                }
                let (data, binary) = self.literal_or_diverted(true)?;
                if let (AppendData::Bytes(b), false) = (&data, binary) {
                    if memchr::memchr(0, b).is_some() {
                        return bad("NUL in a TEXT literal (only literal8 may carry NUL)");
                    }
                }
                Ok(CatPart::Text { data, binary })
            }
            "URL" => {
                self.sp()?;
                let url = self.astring()?;
                if url.is_empty() {
                    return bad("Empty URL");
                }
                Ok(CatPart::Url(url))
            }
            _ => bad(format!("Expected TEXT or URL in CATENATE, not {k}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ParseError, parse_command, parse_command_diverted};
    use crate::flags::Flag;
    use crate::proto::command::*;

    fn text(b: &[u8]) -> CatPart {
        CatPart::Text {
            data: AppendData::Bytes(b.to_vec()),
            binary: false,
        }
    }

    fn url(u: &str) -> CatPart {
        CatPart::Url(u.as_bytes().to_vec())
    }

    fn append(messages: Vec<(Vec<Flag>, AppendData)>) -> CommandBody {
        CommandBody::Append {
            mailbox: "Drafts".into(),
            messages: messages
                .into_iter()
                .map(|(flags, data)| AppendMessage {
                    flags,
                    date: None,
                    data,
                    binary: false,
                })
                .collect(),
        }
    }

    fn good() -> Vec<(&'static [u8], CommandBody)> {
        use AppendData::Catenate as Cat;
        vec![
            (
                b"a APPEND Drafts CATENATE (URL \"/INBOX;UIDVALIDITY=9/;UID=20/;SECTION=1\")\r\n",
                append(vec![(vec![], Cat(vec![url("/INBOX;UIDVALIDITY=9/;UID=20/;SECTION=1")]))]),
            ),
            (
                b"a APPEND Drafts (\\Seen) catenate (TEXT {5}\r\nHello URL /INBOX/;UID=1 TEXT {3+}\r\nBye)\r\n",
                append(vec![(
                    vec![Flag::Seen],
                    Cat(vec![text(b"Hello"), url("/INBOX/;UID=1"), text(b"Bye")]),
                )]),
            ),
            // A literal8 TEXT may carry NUL; a URL may be a literal too.
            (
                b"a APPEND Drafts CATENATE (TEXT ~{2}\r\n\0x URL {7}\r\n;UID=10)\r\n",
                append(vec![(
                    vec![],
                    Cat(vec![
                        CatPart::Text {
                            data: AppendData::Bytes(b"\0x".to_vec()),
                            binary: true,
                        },
                        url(";UID=10"),
                    ]),
                )]),
            ),
            // MULTIAPPEND: CATENATE and plain messages mixed.
            (
                b"a APPEND Drafts CATENATE (URL /INBOX/;UID=1) {2}\r\nhi CATENATE (TEXT {1}\r\nx)\r\n",
                append(vec![
                    (vec![], Cat(vec![url("/INBOX/;UID=1")])),
                    (vec![], AppendData::Bytes(b"hi".to_vec())),
                    (vec![], Cat(vec![text(b"x")])),
                ]),
            ),
            // Whatever the URL says is the session's to judge.
            (
                b"a APPEND Drafts CATENATE (URL \"http://x/ y\")\r\n",
                append(vec![(vec![], Cat(vec![url("http://x/ y")]))]),
            ),
        ]
    }

    #[test]
    fn good_catenate() {
        for (wire, want) in good() {
            let got = parse_command(wire);
            assert_eq!(
                got.map(|c| c.body),
                Ok(want),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn every_incomplete_prefix_is_bad_with_the_tag() {
        for (wire, _) in good() {
            // Up to the final CRLF every prefix is incomplete.
            let CommandBody::Append { messages: all, .. } = parse_command(wire).unwrap().body
            else {
                unreachable!()
            };
            for cut in 2..wire.len() - 2 {
                match parse_command(&wire[..cut]) {
                    Err(ParseError::Bad { tag, .. }) => assert_eq!(tag.as_deref(), Some("a")),
                    // MULTIAPPEND: cut after a whole message, the rest is
                    // a complete command of fewer messages.
                    Ok(Command {
                        body: CommandBody::Append { messages, .. },
                        ..
                    }) if messages.len() < all.len() && all.starts_with(&messages) => {}
                    other => panic!("cut {cut} of {}: {other:?}", String::from_utf8_lossy(wire)),
                }
            }
        }
    }

    #[test]
    fn bad_catenate() {
        let cases: &[(&[u8], &str)] = &[
            (b"a APPEND x CATENATE ()\r\n", "Empty list"),
            (b"a APPEND x CATENATE\r\n", "Missing argument"),
            (b"a APPEND x CATENATE (URL)\r\n", "Expected a space"),
            (b"a APPEND x CATENATE (URL \"\")\r\n", "Empty URL"),
            (
                b"a APPEND x CATENATE (TEXT \"abc\")\r\n",
                "Expected a literal after TEXT",
            ),
            (
                b"a APPEND x CATENATE (TEXT {1}\r\n\0)\r\n",
                "NUL in a TEXT literal (only literal8 may carry NUL)",
            ),
            (
                b"a APPEND x CATENATE (FOO {1}\r\nx)\r\n",
                "Expected TEXT or URL in CATENATE, not FOO",
            ),
            (
                b"a APPEND x CATENATE (URL a  URL b)\r\n",
                "Expected an atom",
            ),
            (
                b"a APPEND x CATENATE (URL a) extra\r\n",
                "Expected a message literal",
            ),
            (b"a APPEND x CATENATE URL a\r\n", "Expected '('"),
            (
                b"a APPEND x CATENATE (TEXT {1}\r\nx\r\n",
                "Missing argument",
            ),
        ];
        let mut wrong = Vec::new();
        for (wire, text) in cases {
            match parse_command(wire) {
                Err(ParseError::Bad { tag, text: got }) if tag.as_deref() == Some("a") => {
                    if got != *text {
                        wrong.push(format!("{}: {got}", String::from_utf8_lossy(wire)));
                    }
                }
                other => wrong.push(format!("{}: {other:?}", String::from_utf8_lossy(wire))),
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn diverted_text() {
        // The framer took the 2nd and 3rd literals out (big TEXT parts).
        let wire =
            b"a APPEND x CATENATE (TEXT {300000}\r\n URL /INBOX/;UID=1 TEXT ~{400000+}\r\n)\r\n";
        let after = |n: &[u8]| {
            wire.windows(n.len())
                .position(|w| w == n)
                .map(|i| i + n.len())
                .unwrap()
        };
        let got = parse_command_diverted(wire, &[after(b"{300000}\r\n"), after(b"{400000+}\r\n")])
            .map(|c| c.body);
        assert_eq!(
            got,
            Ok(CommandBody::Append {
                mailbox: "x".into(),
                messages: vec![AppendMessage {
                    flags: vec![],
                    date: None,
                    data: AppendData::Catenate(vec![
                        CatPart::Text {
                            data: AppendData::Diverted {
                                index: 0,
                                size: 300_000
                            },
                            binary: false
                        },
                        url("/INBOX/;UID=1"),
                        CatPart::Text {
                            data: AppendData::Diverted {
                                index: 1,
                                size: 400_000
                            },
                            binary: true
                        },
                    ]),
                    binary: false,
                }],
            })
        );
    }
}
