//! APPEND and MULTIAPPEND (RFC 3502), with BINARY literal8 (RFC 3516) and
//! UTF8 APPEND (RFC 6855 §4). A message whose literal the framer diverted
//! to disk becomes [`AppendData::Diverted`] (the parent module's doc says
//! why only here).

use super::{P, R};
use crate::proto::command::*;

impl P<'_> {
    /// `append = "APPEND" SP mailbox 1*append-message` (RFC 3502),
    /// `append-message = [SP flag-list] [SP date-time] SP append-data`,
    /// `append-data = literal / literal8 / "UTF8" SP "(" literal8 ")"`.
    pub(super) fn append(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut messages = Vec::new();
        loop {
            messages.push(self.append_message()?);
            if self.at_end() {
                break;
            }
        }
        Ok(CommandBody::Append { mailbox, messages })
    }

    /// `replace = "REPLACE" SP seq-number SP mailbox append-message` (RFC
    /// 8508 §6), after `REPLACE` or `UID REPLACE`.
    pub(super) fn replace(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let number = self.seq_number()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        let message = self.append_message()?;
        Ok(CommandBody::Replace {
            uid,
            number,
            mailbox,
            message,
        })
    }

    /// `append-message = [SP flag-list] [SP date-time] SP append-data`.
    fn append_message(&mut self) -> R<AppendMessage> {
        {
            self.sp()?;
            let mut msg = AppendMessage {
                flags: Vec::new(),
                date: None,
                data: AppendData::Bytes(Vec::new()),
                binary: false,
            };
            if self.peek() == Some(b'(') {
                msg.flags = self.flag_list()?;
                self.sp()?;
            }
            if self.peek() == Some(b'"') {
                msg.date = Some(self.date_time()?);
                self.sp()?;
            }
            if self.peek_kw("CATENATE") {
                // RFC 4469: the message is built from TEXT and URL parts.
                msg.data = self.catenate()?;
            } else if self.peek_kw("UTF8") {
                // RFC 6855 §4: the message is UTF-8, carried as literal8.
                self.i += 4;
                self.sp()?;
                self.expect(b'(')?;
                msg.data = self.literal_or_diverted(true)?.0;
                self.expect(b')')?;
            } else {
                match self.peek() {
                    Some(b'{' | b'~') => (msg.data, msg.binary) = self.literal_or_diverted(true)?,
                    _ => return Err(self.missing_or("Expected a message literal")),
                }
            }
            Ok(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{ParseError, is_append, parse_command_diverted};
    use crate::flags::Flag;
    use crate::proto::command::*;

    #[test]
    fn good_append() {
        use CommandBody as C;
        use chrono::{FixedOffset, TimeZone};
        let tz = FixedOffset::west_opt(7 * 3600).unwrap();
        let dt = tz.with_ymd_and_hms(1996, 7, 17, 2, 44, 25).unwrap();
        good(vec![
            (b"a APPEND x {5}\r\nhello\r\n", C::Append { mailbox: "x".into(), messages: vec![msg(b"hello")] }),
            (
                b"a APPEND x (\\Seen $Junk) \"17-Jul-1996 02:44:25 -0700\" ~{3+}\r\n\0\r\n\r\n",
                C::Append {
                    mailbox: "x".into(),
                    messages: vec![AppendMessage {
                        flags: vec![Flag::Seen, Flag::Keyword("$Junk".into())],
                        date: Some(dt),
                        data: AppendData::Bytes(b"\0\r\n".to_vec()),
                        binary: true,
                    }],
                },
            ),
            (
                b"a APPEND x \" 7-Jul-1996 02:44:25 +0000\" {1}\r\nA (\\Draft) {1}\r\nB {0}\r\n\r\n",
                C::Append {
                    mailbox: "x".into(),
                    messages: vec![
                        AppendMessage {
                            date: Some(FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(1996, 7, 7, 2, 44, 25).unwrap()),
                            ..msg(b"A")
                        },
                        AppendMessage { flags: vec![Flag::Draft], ..msg(b"B") },
                        msg(b""),
                    ],
                },
            ),
            (
                b"a APPEND x UTF8 (~{2}\r\nhi)\r\n",
                C::Append { mailbox: "x".into(), messages: vec![msg(b"hi")] },
            ),
        ]);
    }

    #[test]
    fn bad_append() {
        bad(&[
            (b"a APPEND x\r\n", Some("a"), "Missing argument"),
            (
                b"a APPEND x (\\Seen) hello\r\n",
                Some("a"),
                "Expected a message literal",
            ),
            (
                b"a APPEND x \"17-Jul-1996 25:44:25 -0700\" {1}\r\nA\r\n",
                Some("a"),
                "Invalid date-time",
            ),
        ]);
    }

    #[test]
    fn diverted_literals() {
        use CommandBody as C;
        let wire = b"b APPEND x {100+}\r\n (\\Seen) ~{7}\r\n {2}\r\nhi\r\n";
        let got = parse_command_diverted(wire, &[19, 34]).unwrap().body;
        assert_eq!(
            got,
            C::Append {
                mailbox: "x".into(),
                messages: vec![
                    AppendMessage {
                        data: AppendData::Diverted {
                            index: 0,
                            size: 100
                        },
                        ..msg(b"")
                    },
                    AppendMessage {
                        flags: vec![Flag::Seen],
                        data: AppendData::Diverted { index: 1, size: 7 },
                        binary: true,
                        ..msg(b"")
                    },
                    msg(b"hi"),
                ],
            }
        );
        // A diverted literal where no message goes is refused, not read.
        for (wire, at) in [
            (&b"a APPEND {5}\r\n {1}\r\nx\r\n"[..], 14),
            (b"a SEARCH TEXT {5}\r\n\r\n", 19),
        ] {
            assert!(
                matches!(
                    parse_command_diverted(wire, &[at]),
                    Err(ParseError::Bad { .. })
                ),
                "{wire:?}"
            );
        }
        for (head, want) in [
            (&b"a APPEND x {9}\r\n"[..], true),
            (b"a append x (\\Seen) {9}\r\n", true),
            (b"a APPENDX x {9}\r\n", false),
            (b"a SEARCH {9}\r\n", false),
            (b"APPEND x {9}\r\n", false),
            (b"a UID APPEND {9}\r\n", false),
            (b"a REPLACE 1 Drafts {9}\r\n", true),
            (b"a uid replace 7 Drafts (\\Draft) {9}\r\n", true),
            (b"a REPLACEX 1 Drafts {9}\r\n", false),
        ] {
            assert_eq!(is_append(head), want, "{head:?}");
        }
    }

    #[test]
    fn replace() {
        use CommandBody as C;
        good(vec![
            (
                b"a REPLACE 3 Drafts {5}\r\nhello\r\n",
                C::Replace {
                    uid: false,
                    number: V(3),
                    mailbox: "Drafts".into(),
                    message: msg(b"hello"),
                },
            ),
            (
                b"a UID REPLACE * Drafts (\\Draft) UTF8 (~{2}\r\nhi)\r\n",
                C::Replace {
                    uid: true,
                    number: S,
                    mailbox: "Drafts".into(),
                    message: AppendMessage {
                        flags: vec![Flag::Draft],
                        ..msg(b"hi")
                    },
                },
            ),
        ]);
        bad(&[
            (
                b"a REPLACE Drafts {5}\r\nhello\r\n",
                Some("a"),
                "Invalid sequence set",
            ),
            (b"a REPLACE 1 Drafts\r\n", Some("a"), "Missing argument"),
            (
                b"a REPLACE 1 Drafts {1}\r\nx {1}\r\ny\r\n",
                Some("a"),
                "Unexpected extra arguments",
            ),
        ]);
    }
}
