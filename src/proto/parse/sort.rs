//! SORT and THREAD (RFC 5256 §5, RFC 5957 §5): the command grammar after
//! the command name. The search criteria are read by the SEARCH key
//! reader (`search`), with the strings decoded in the command's charset.
//!
//! ```text
//! sort            = ["UID" SP] "SORT" [search-return-opts]
//!                   SP sort-criteria SP search-criteria    ; RFC 5267 §5
//! sort-criteria   = "(" sort-criterion *(SP sort-criterion) ")"
//! sort-criterion  = ["REVERSE" SP] sort-key
//! sort-key        = "ARRIVAL" / "CC" / "DATE" / "FROM" / "SIZE" /
//!                   "SUBJECT" / "TO" / "DISPLAYFROM" / "DISPLAYTO"
//! thread          = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
//! thread-alg      = "ORDEREDSUBJECT" / "REFERENCES" / thread-alg-ext
//! search-criteria = charset 1*(SP search-key)
//! charset         = atom / quoted
//! ```
//!
//! The charset is mandatory. An unknown one is refused with
//! `NO [BADCHARSET]` (RFC 5256 §3), but only once there are search keys
//! after it: `SORT (DATE) ALL` lacks the charset (its `ALL` is not a
//! charset name), which is the client's syntax error, so `BAD`, as in
//! Dovecot.

use encoding_rs::Encoding;

use super::{Fail, P, R, bad};
use crate::proto::command::*;

impl P<'_> {
    /// After `SORT`.
    pub(super) fn sort(&mut self, uid: bool) -> R<SortCommand> {
        self.sp()?;
        // The extended SORT's RETURN (...) (ESORT, RFC 5267 §3): the
        // `context` submodule.
        let ret = self.return_opts()?;
        let criteria = self.paren_list(false, |p| {
            let mut k = p.keyword()?;
            let reverse = k == "REVERSE";
            if reverse {
                p.sp()?;
                k = p.keyword()?;
            }
            let key = match k.as_str() {
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                _ => return bad(format!("Unknown sort key {k}")),
            };
            Ok(SortCriterion { reverse, key })
        })?;
        self.sp()?;
        let (charset, search) = self.search_criteria()?;
        Ok(SortCommand {
            uid,
            ret,
            criteria,
            charset,
            search,
        })
    }

    /// After `THREAD`.
    pub(super) fn thread(&mut self, uid: bool) -> R<ThreadCommand> {
        self.sp()?;
        let a = self.keyword()?;
        let algorithm = match a.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            _ => return bad(format!("Unknown thread algorithm {a}")),
        };
        self.sp()?;
        let (charset, search) = self.search_criteria()?;
        Ok(ThreadCommand {
            uid,
            algorithm,
            charset,
            search,
        })
    }

    /// `search-criteria = charset 1*(SP search-key)`: the charset,
    /// upper-cased, and the keys (several ANDed).
    fn search_criteria(&mut self) -> R<(String, SearchKey)> {
        let name = match self.peek() {
            Some(b'"') => self.quoted()?,
            _ => self.atom()?.to_vec(),
        };
        let name = String::from_utf8_lossy(&name).to_ascii_uppercase();
        if self.at_end() {
            return bad("Missing charset or search criteria");
        }
        self.charset = Some(Encoding::for_label(name.as_bytes()).ok_or(Fail::Charset)?);
        let mut keys = Vec::new();
        while !self.at_end() {
            self.sp()?;
            keys.push(self.search_key()?);
        }
        let search = if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        };
        Ok((name, search))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ParseError, parse_command};
    use crate::proto::command::*;

    fn body(line: &str) -> CommandBody {
        match parse_command(line.as_bytes()) {
            Ok(c) => c.body,
            Err(e) => panic!("{line:?}: {e:?}"),
        }
    }

    fn bad_text(line: &str) -> String {
        match parse_command(line.as_bytes()) {
            Err(ParseError::Bad { tag, text }) => {
                assert_eq!(tag.as_deref(), Some("a"), "{line:?}");
                text
            }
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn crit(reverse: bool, key: SortKey) -> SortCriterion {
        SortCriterion { reverse, key }
    }

    #[test]
    fn sort_commands() {
        use SortKey::*;
        let cases: Vec<(&str, SortCommand)> = vec![
            (
                "a SORT (SUBJECT) UTF-8 ALL\r\n",
                SortCommand {
                    uid: false,
                    ret: None,
                    criteria: vec![crit(false, Subject)],
                    charset: "UTF-8".into(),
                    search: SearchKey::All,
                },
            ),
            (
                "a uid sort (reverse arrival cc DATE from SIZE to displayfrom REVERSE DISPLAYTO) \"us-ascii\" UNDELETED SUBJECT x\r\n",
                SortCommand {
                    uid: true,
                    ret: None,
                    criteria: vec![
                        crit(true, Arrival),
                        crit(false, Cc),
                        crit(false, Date),
                        crit(false, From),
                        crit(false, Size),
                        crit(false, To),
                        crit(false, DisplayFrom),
                        crit(true, DisplayTo),
                    ],
                    charset: "US-ASCII".into(),
                    search: SearchKey::And(vec![
                        SearchKey::Undeleted,
                        SearchKey::Subject("x".into()),
                    ]),
                },
            ),
        ];
        for (line, want) in cases {
            let got = match parse_command(line.as_bytes()) {
                Ok(c) => c.body,
                Err(e) => panic!("{line:?}: {e:?}"),
            };
            assert_eq!(got, CommandBody::Sort(want), "{line:?}");
        }
    }

    #[test]
    fn strings_decoded_with_the_charset() {
        let got =
            parse_command(b"a SORT (DATE) ISO-8859-1 SUBJECT {1}\r\n\xe9\r\n").map(|c| c.body);
        assert_eq!(
            got,
            Ok(CommandBody::Sort(SortCommand {
                uid: false,
                ret: None,
                criteria: vec![crit(false, SortKey::Date)],
                charset: "ISO-8859-1".into(),
                search: SearchKey::Subject("é".into()),
            }))
        );
    }

    #[test]
    fn thread_commands() {
        assert_eq!(
            body("a THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000\r\n"),
            CommandBody::Thread(ThreadCommand {
                uid: false,
                algorithm: ThreadAlgorithm::OrderedSubject,
                charset: "UTF-8".into(),
                search: SearchKey::Since(
                    chrono::NaiveDate::from_ymd_opt(2000, 3, 5).expect("date")
                ),
            })
        );
        assert_eq!(
            body("a UID THREAD references US-ASCII 1:* DELETED\r\n"),
            CommandBody::Thread(ThreadCommand {
                uid: true,
                algorithm: ThreadAlgorithm::References,
                charset: "US-ASCII".into(),
                search: SearchKey::And(vec![
                    SearchKey::SequenceSet(SequenceSet::Ranges(vec![(
                        SeqNum::Value(1),
                        SeqNum::Asterisk
                    )])),
                    SearchKey::Deleted
                ]),
            })
        );
    }

    #[test]
    fn errors() {
        let cases = [
            ("a SORT (FOO) UTF-8 ALL\r\n", "Unknown sort key FOO"),
            ("a SORT () UTF-8 ALL\r\n", "Empty list"),
            ("a SORT (REVERSE) UTF-8 ALL\r\n", "Expected a space"),
            (
                "a SORT (REVERSE REVERSE DATE) UTF-8 ALL\r\n",
                "Unknown sort key REVERSE",
            ),
            ("a SORT SUBJECT UTF-8 ALL\r\n", "Expected '('"),
            (
                "a SORT (SUBJECT) ALL\r\n",
                "Missing charset or search criteria",
            ),
            (
                "a SORT (SUBJECT) UTF-8\r\n",
                "Missing charset or search criteria",
            ),
            ("a SORT (SUBJECT)\r\n", "Missing argument"),
            (
                "a SORT (SUBJECT) UTF-8 ALL FOO\r\n",
                "Unknown search key FOO",
            ),
            (
                "a THREAD XYZZY UTF-8 ALL\r\n",
                "Unknown thread algorithm XYZZY",
            ),
            (
                "a THREAD REFERENCES ALL\r\n",
                "Missing charset or search criteria",
            ),
            ("a THREAD\r\n", "Missing argument"),
            (
                "a UID SORT (DATE) UTF-8\r\n",
                "Missing charset or search criteria",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(bad_text(line), want, "{line:?}");
        }
    }

    #[test]
    fn unknown_charset() {
        for line in [
            "a SORT (SUBJECT) X-UNKNOWN ALL\r\n",
            "a UID THREAD REFERENCES \"KLINGON\" SUBJECT x\r\n",
        ] {
            assert_eq!(
                parse_command(line.as_bytes()),
                Err(ParseError::BadCharset { tag: "a".into() }),
                "{line:?}"
            );
        }
    }

    proptest::proptest! {
        /// No input after a SORT or THREAD name panics, and every error
        /// carries the tag.
        #[test]
        fn never_panics(rest in "[ -~]{0,60}") {
            for name in ["SORT", "UID SORT", "THREAD", "UID THREAD"] {
                let line = format!("t {name} {rest}\r\n");
                match parse_command(line.as_bytes()) {
                    Ok(_) | Err(ParseError::BadCharset { .. }) => {}
                    Err(ParseError::Bad { tag, .. }) => {
                        proptest::prop_assert_eq!(tag.as_deref(), Some("t"));
                    }
                }
            }
        }
    }
}
