//! Search return options (RFC 4466 §2.6, RFC 4731, RFC 5182, RFC 5267 §5,
//! RFC 9394 §4) as SEARCH and the extended SORT share them, and
//! CANCELUPDATE (RFC 5267 §4.3.5).
//!
//! ```text
//! search-return-opts = SP "RETURN" SP "(" [search-return-opt
//!                      *(SP search-return-opt)] ")"
//! search-return-opt  = "MIN" / "MAX" / "ALL" / "COUNT" / "SAVE" /
//!                      "CONTEXT" / "UPDATE" / "PARTIAL" SP partial-range
//! partial-range      = nz-number ":" nz-number /
//!                      "-" nz-number ":" "-" nz-number      ; RFC 9394
//! command-select     =/ "CANCELUPDATE" 1*(SP quoted)
//! ```
//!
//! RFC 5267 §4.4: one command carries at most one PARTIAL or ALL, so two
//! PARTIALs, or PARTIAL with ALL, are the client's error (`BAD`), as are a
//! zero or `*` in the range. The negative form is RFC 9394's (which updates
//! RFC 5267's PARTIAL): it costs nothing to read and answer, so it is
//! accepted although the PARTIAL capability itself is not advertised
//! (that needs RFC 9394's UID FETCH modifier too). Options repeated
//! otherwise (`MIN MIN`) mean the same as once, as in Dovecot.

use super::{P, R, bad};
use crate::proto::command::*;

impl P<'_> {
    /// After `SEARCH SP` or `SORT SP`: `RETURN (...)` and the space after
    /// it, if the next atom is `RETURN`; `None` if it is not.
    pub(super) fn return_opts(&mut self) -> R<Option<Vec<SearchReturn>>> {
        if !self.peek_kw("RETURN") {
            return Ok(None);
        }
        self.i += "RETURN".len();
        self.sp()?;
        let opts = self.paren_list(true, Self::return_opt)?;
        let ranges = opts
            .iter()
            .filter(|o| matches!(o, SearchReturn::Partial(_) | SearchReturn::All))
            .count();
        if ranges > 1 {
            return bad("At most one of PARTIAL and ALL");
        }
        self.sp()?;
        Ok(Some(opts))
    }

    fn return_opt(&mut self) -> R<SearchReturn> {
        let k = self.keyword()?;
        Ok(match k.as_str() {
            "MIN" => SearchReturn::Min,
            "MAX" => SearchReturn::Max,
            "ALL" => SearchReturn::All,
            "COUNT" => SearchReturn::Count,
            "SAVE" => SearchReturn::Save,
            "CONTEXT" => SearchReturn::Context,
            "UPDATE" => SearchReturn::Update,
            "PARTIAL" => {
                self.sp()?;
                SearchReturn::Partial(self.partial_range()?)
            }
            _ => return bad(format!("Unknown return option {k}")),
        })
    }

    /// `partial-range`: both numbers plain or both negative.
    fn partial_range(&mut self) -> R<PartialRange> {
        let from_end = self.eat(b'-');
        let first = self.nz_number()?;
        self.expect(b':')?;
        if self.eat(b'-') != from_end {
            return bad("Invalid PARTIAL range");
        }
        let second = self.nz_number()?;
        Ok(PartialRange {
            from_end,
            first,
            second,
        })
    }

    /// After `CANCELUPDATE`: one or more quoted tags.
    pub(super) fn cancel_update(&mut self) -> R<CommandBody> {
        let mut tags = Vec::new();
        while !self.at_end() || tags.is_empty() {
            self.sp()?;
            if self.peek() != Some(b'"') {
                return Err(self.missing_or("Expected a quoted tag"));
            }
            tags.push(Self::utf8(self.quoted()?)?);
        }
        Ok(CommandBody::CancelUpdate(tags))
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

    fn partial(from_end: bool, first: u32, second: u32) -> SearchReturn {
        SearchReturn::Partial(PartialRange {
            from_end,
            first,
            second,
        })
    }

    fn ret_of(b: CommandBody) -> Option<Vec<SearchReturn>> {
        match b {
            CommandBody::Search(s) => s.ret,
            CommandBody::Sort(s) => s.ret,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn return_options() {
        use SearchReturn::*;
        let cases: Vec<(&str, Option<Vec<SearchReturn>>)> = vec![
            ("a SEARCH ALL\r\n", None),
            ("a SEARCH RETURN () ALL\r\n", Some(vec![])),
            (
                "a UID SEARCH RETURN (context update count) ALL\r\n",
                Some(vec![Context, Update, Count]),
            ),
            (
                "a SEARCH RETURN (PARTIAL 1:500 MIN) ALL\r\n",
                Some(vec![partial(false, 1, 500), Min]),
            ),
            (
                "a SEARCH RETURN (SAVE PARTIAL 500:400) ALL\r\n",
                Some(vec![Save, partial(false, 500, 400)]),
            ),
            (
                "a SEARCH RETURN (PARTIAL -1:-100) ALL\r\n",
                Some(vec![partial(true, 1, 100)]),
            ),
            (
                "a SEARCH RETURN (PARTIAL 4294967295:1) ALL\r\n",
                Some(vec![partial(false, 4_294_967_295, 1)]),
            ),
            ("a SORT (DATE) UTF-8 ALL\r\n", None),
            ("a SORT RETURN () (DATE) UTF-8 ALL\r\n", Some(vec![])),
            (
                "a UID SORT RETURN (MIN MAX ALL COUNT SAVE) (DATE) UTF-8 ALL\r\n",
                Some(vec![Min, Max, All, Count, Save]),
            ),
            (
                "a SORT RETURN (UPDATE PARTIAL 2:3) (REVERSE ARRIVAL) UTF-8 UNSEEN\r\n",
                Some(vec![Update, partial(false, 2, 3)]),
            ),
            // A search key named like an option is not one without RETURN.
            ("a SEARCH RETURNED\r\n", None),
        ];
        for (line, want) in cases {
            if line.contains("RETURNED") {
                assert!(parse_command(line.as_bytes()).is_err(), "{line:?}");
                continue;
            }
            assert_eq!(ret_of(body(line)), want, "{line:?}");
        }
    }

    #[test]
    fn sort_with_return_keeps_the_rest() {
        assert_eq!(
            body("a UID SORT RETURN (COUNT) (REVERSE DATE) US-ASCII SEEN\r\n"),
            CommandBody::Sort(SortCommand {
                uid: true,
                ret: Some(vec![SearchReturn::Count]),
                criteria: vec![SortCriterion {
                    reverse: true,
                    key: SortKey::Date,
                }],
                charset: "US-ASCII".into(),
                search: SearchKey::Seen,
            })
        );
    }

    #[test]
    fn cancel_update() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("a CANCELUPDATE \"B01\"\r\n", vec!["B01"]),
            ("a cancelupdate \"x\" \"y\" \"\"\r\n", vec!["x", "y", ""]),
        ];
        for (line, want) in cases {
            let want = want.into_iter().map(String::from).collect();
            assert_eq!(body(line), CommandBody::CancelUpdate(want), "{line:?}");
        }
    }

    #[test]
    fn errors() {
        let cases = [
            (
                "a SEARCH RETURN (PARTIAL 1:2 ALL) ALL\r\n",
                "At most one of PARTIAL and ALL",
            ),
            (
                "a SEARCH RETURN (ALL PARTIAL 1:2) ALL\r\n",
                "At most one of PARTIAL and ALL",
            ),
            (
                "a SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL\r\n",
                "At most one of PARTIAL and ALL",
            ),
            (
                "a SEARCH RETURN (PARTIAL 0:2) ALL\r\n",
                "Number must not be zero",
            ),
            (
                "a SEARCH RETURN (PARTIAL 1:0) ALL\r\n",
                "Number must not be zero",
            ),
            ("a SEARCH RETURN (PARTIAL 1:*) ALL\r\n", "Expected a number"),
            (
                "a SEARCH RETURN (PARTIAL -1:2) ALL\r\n",
                "Invalid PARTIAL range",
            ),
            (
                "a SEARCH RETURN (PARTIAL 1:-2) ALL\r\n",
                "Invalid PARTIAL range",
            ),
            ("a SEARCH RETURN (PARTIAL 5) ALL\r\n", "Expected ':'"),
            ("a SEARCH RETURN (PARTIAL) ALL\r\n", "Expected a space"),
            (
                "a SEARCH RETURN (PARTIAL 4294967296:1) ALL\r\n",
                "Number too large",
            ),
            ("a SEARCH RETURN (FOO) ALL\r\n", "Unknown return option FOO"),
            ("a SEARCH RETURN ALL\r\n", "Expected '('"),
            ("a SORT RETURN (MIN) UTF-8 ALL\r\n", "Expected '('"),
            ("a SORT RETURN (UPDATE)\r\n", "Missing argument"),
            (
                "a SORT RETURN (NOPE) (DATE) UTF-8 ALL\r\n",
                "Unknown return option NOPE",
            ),
            ("a CANCELUPDATE\r\n", "Missing argument"),
            ("a CANCELUPDATE B01\r\n", "Expected a quoted tag"),
            ("a CANCELUPDATE \"B01\" B02\r\n", "Expected a quoted tag"),
            ("a CANCELUPDATE \"B01\r\n", "Unterminated quoted string"),
        ];
        for (line, want) in cases {
            match parse_command(line.as_bytes()) {
                Err(ParseError::Bad { tag, text }) => {
                    assert_eq!(tag.as_deref(), Some("a"), "{line:?}");
                    assert_eq!(text, want, "{line:?}");
                }
                other => panic!("{line:?}: {other:?}"),
            }
        }
    }

    /// Every incomplete prefix of a good command is refused (none of them
    /// is a whole command) with the tag, never a panic.
    #[test]
    fn every_prefix_is_refused_with_the_tag() {
        let samples: &[&str] = &[
            "a UID SEARCH RETURN (CONTEXT UPDATE PARTIAL -1:-20 COUNT) UNSEEN\r\n",
            "a UID SORT RETURN (MIN PARTIAL 3:1 SAVE) (REVERSE DATE) UTF-8 UNSEEN\r\n",
            "a CANCELUPDATE \"B01\"\r\n",
        ];
        for wire in samples {
            assert!(parse_command(wire.as_bytes()).is_ok(), "{wire:?}");
            // Cut before the last search key's final letter at the latest:
            // `UNSEE` is no key, `"B2` no string.
            let stop = wire.len() - 3;
            for cut in 2..stop {
                let prefix = &wire.as_bytes()[..cut];
                match parse_command(prefix) {
                    Err(ParseError::Bad { tag, .. }) => {
                        assert_eq!(tag.as_deref(), Some("a"), "cut {cut} of {wire:?}")
                    }
                    other => panic!("cut {cut} of {wire:?}: {other:?}"),
                }
            }
        }
    }
}
