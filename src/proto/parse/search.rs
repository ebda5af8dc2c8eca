//! SEARCH: the `RETURN` options (ESEARCH, RFC 4731; `SAVE`, RFC 5182),
//! `CHARSET`, and the search keys (RFC 9051 §6.4.4, `MODSEQ` of RFC 7162,
//! `OLDER`/`YOUNGER` of RFC 5032), whose strings are decoded in the
//! command's charset. SORT and THREAD read their criteria with the same
//! key reader (`sort`).
//!
//! Nesting (parentheses, `NOT`, `OR`) is bounded by [`MAX_SEARCH_DEPTH`],
//! so hostile input cannot exhaust the stack.

use encoding_rs::Encoding;

use super::{Fail, P, R, bad};
use crate::proto::command::*;

/// Deepest nesting of search keys (parentheses, `NOT`, `OR`) accepted.
pub const MAX_SEARCH_DEPTH: usize = 100;

impl P<'_> {
    /// `search = "SEARCH" [search-return-opts] SP search-program`
    /// (RFC 9051 §9, RFC 4731, RFC 5182).
    pub(super) fn search(&mut self, uid: bool) -> R<SearchCommand> {
        self.sp()?;
        // RETURN (...): the `context` submodule.
        let ret = self.return_opts()?;
        let mut charset = None;
        if self.peek_kw("CHARSET") {
            self.i += 7;
            self.sp()?;
            let name = String::from_utf8_lossy(&self.astring()?).to_ascii_uppercase();
            self.charset = Some(Encoding::for_label(name.as_bytes()).ok_or(Fail::Charset)?);
            charset = Some(name);
            self.sp()?;
        }
        let mut keys = vec![self.search_key()?];
        while !self.at_end() {
            self.sp()?;
            keys.push(self.search_key()?);
        }
        let criteria = if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        };
        Ok(SearchCommand {
            uid,
            ret,
            charset,
            criteria,
        })
    }

    /// A search string (`astring`), decoded with the SEARCH charset.
    pub(super) fn search_string(&mut self) -> R<String> {
        let raw = self.astring()?;
        match self.charset {
            None => Self::utf8(raw),
            Some(enc) => enc
                .decode_without_bom_handling_and_without_replacement(&raw)
                .map(|s| s.into_owned())
                .ok_or_else(|| Fail::Bad("String is not valid in the given charset".into())),
        }
    }

    pub(super) fn search_key(&mut self) -> R<SearchKey> {
        if self.depth >= MAX_SEARCH_DEPTH {
            return bad("Search criteria nested too deeply");
        }
        self.depth += 1;
        let r = self.search_key_inner();
        self.depth -= 1;
        r
    }

    /// `search-key` (RFC 9051 §9 plus MODSEQ, OLDER/YOUNGER).
    pub(super) fn search_key_inner(&mut self) -> R<SearchKey> {
        use SearchKey as K;
        match self.peek() {
            Some(b'(') => {
                let mut keys = self.paren_list(false, Self::search_key)?;
                return Ok(if keys.len() == 1 {
                    keys.pop().unwrap_or(K::All)
                } else {
                    K::And(keys)
                });
            }
            Some(b'0'..=b'9' | b'*' | b'$') => return Ok(K::SequenceSet(self.seq_set()?)),
            _ => {}
        }
        let k = self.keyword()?;
        macro_rules! arg {
            ($e:expr) => {{
                self.sp()?;
                $e
            }};
        }
        Ok(match k.as_str() {
            "ALL" => K::All,
            "ANSWERED" => K::Answered,
            "DELETED" => K::Deleted,
            "DRAFT" => K::Draft,
            "FLAGGED" => K::Flagged,
            "SEEN" => K::Seen,
            "UNANSWERED" => K::Unanswered,
            "UNDELETED" => K::Undeleted,
            "UNDRAFT" => K::Undraft,
            "UNFLAGGED" => K::Unflagged,
            "UNSEEN" => K::Unseen,
            "RECENT" => K::Recent,
            "NEW" => K::New,
            "OLD" => K::Old,
            "KEYWORD" => arg!(K::Keyword(
                String::from_utf8_lossy(self.atom()?).into_owned()
            )),
            "UNKEYWORD" => arg!(K::Unkeyword(
                String::from_utf8_lossy(self.atom()?).into_owned()
            )),
            "BEFORE" => arg!(K::Before(self.date()?)),
            "ON" => arg!(K::On(self.date()?)),
            "SINCE" => arg!(K::Since(self.date()?)),
            "SENTBEFORE" => arg!(K::SentBefore(self.date()?)),
            "SENTON" => arg!(K::SentOn(self.date()?)),
            "SENTSINCE" => arg!(K::SentSince(self.date()?)),
            "LARGER" => arg!(K::Larger(self.number64()?)),
            "SMALLER" => arg!(K::Smaller(self.number64()?)),
            "BCC" => arg!(K::Bcc(self.search_string()?)),
            "CC" => arg!(K::Cc(self.search_string()?)),
            "FROM" => arg!(K::From(self.search_string()?)),
            "TO" => arg!(K::To(self.search_string()?)),
            "SUBJECT" => arg!(K::Subject(self.search_string()?)),
            "BODY" => arg!(K::Body(self.search_string()?)),
            "TEXT" => arg!(K::Text(self.search_string()?)),
            "HEADER" => {
                self.sp()?;
                let name = Self::utf8(self.astring()?)?;
                self.sp()?;
                K::Header(name, self.search_string()?)
            }
            "UID" => arg!(K::Uid(self.seq_set()?)),
            "NOT" => arg!(K::Not(Box::new(self.search_key()?))),
            "OR" => {
                self.sp()?;
                let a = self.search_key()?;
                self.sp()?;
                let b = self.search_key()?;
                K::Or(Box::new(a), Box::new(b))
            }
            "MODSEQ" => {
                // `MODSEQ [SP entry-name SP entry-type-req] SP
                // mod-sequence-valzer` (RFC 7162 §3.1.5); the entry is
                // accepted and ignored, as the per-flag modseq is not kept.
                self.sp()?;
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    let t = self.keyword()?;
                    if !matches!(t.as_str(), "PRIV" | "SHARED" | "ALL") {
                        return bad("Invalid MODSEQ entry type");
                    }
                    self.sp()?;
                }
                K::ModSeq(self.number64()?)
            }
            "SAVEDBEFORE" => arg!(K::SavedBefore(self.date()?)),
            "SAVEDON" => arg!(K::SavedOn(self.date()?)),
            "SAVEDSINCE" => arg!(K::SavedSince(self.date()?)),
            "SAVEDATESUPPORTED" => K::SaveDateSupported,
            "EMAILID" => arg!(K::EmailId(self.objectid()?)),
            "THREADID" => arg!(K::ThreadId(self.objectid()?)),
            "OLDER" => arg!(K::Older(self.nz_number()?)),
            "YOUNGER" => arg!(K::Younger(self.nz_number()?)),
            _ => return bad(format!("Unknown search key {k}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{ParseError, parse_command};
    use crate::proto::command::*;

    #[test]
    fn good_search() {
        use CommandBody as C;
        use SearchKey as K;
        good(vec![
            (b"a SEARCH ALL\r\n", search(false, K::All)),
            (b"a UID SEARCH 1:* UNSEEN\r\n", search(true, K::And(vec![K::SequenceSet(set(&[(V(1), S)])), K::Unseen]))),
            (b"a SEARCH $\r\n", search(false, K::SequenceSet(SequenceSet::Saved))),
            (b"a SEARCH UID $\r\n", search(false, K::Uid(SequenceSet::Saved))),
            (
                b"a SEARCH RETURN (MIN MAX ALL COUNT SAVE) SEEN\r\n",
                C::Search(SearchCommand {
                    uid: false,
                    ret: Some(vec![SearchReturn::Min, SearchReturn::Max, SearchReturn::All, SearchReturn::Count, SearchReturn::Save]),
                    charset: None,
                    criteria: K::Seen,
                }),
            ),
            (
                b"a SEARCH RETURN () CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa4bc\r\n",
                C::Search(SearchCommand {
                    uid: false,
                    ret: Some(vec![]),
                    charset: Some("UTF-8".into()),
                    criteria: K::Subject("äbc".into()),
                }),
            ),
            (
                b"a SEARCH CHARSET ISO-8859-1 FROM \"\xe4\"\r\n",
                C::Search(SearchCommand {
                    uid: false,
                    ret: None,
                    charset: Some("ISO-8859-1".into()),
                    criteria: K::From("ä".into()),
                }),
            ),
            (
                b"a SEARCH OR (FROM bob TO \"x y\") NOT (SUBJECT hi) HEADER X-Spam \"\"\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Or(
                            Box::new(K::And(vec![K::From("bob".into()), K::To("x y".into())])),
                            Box::new(K::Not(Box::new(K::Subject("hi".into())))),
                        ),
                        K::Header("X-Spam".into(), "".into()),
                    ]),
                ),
            ),
            (
                b"a SEARCH ANSWERED DELETED DRAFT FLAGGED SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN RECENT NEW OLD\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Answered, K::Deleted, K::Draft, K::Flagged, K::Seen, K::Unanswered, K::Undeleted,
                        K::Undraft, K::Unflagged, K::Unseen, K::Recent, K::New, K::Old,
                    ]),
                ),
            ),
            (
                b"a SEARCH KEYWORD $Junk UNKEYWORD foo BEFORE 1-Feb-2024 ON \"29-Feb-2024\" SINCE 01-jan-2000 SENTBEFORE 2-Mar-2024 SENTON 3-Mar-2024 SENTSINCE 4-Mar-2024\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Keyword("$Junk".into()),
                        K::Unkeyword("foo".into()),
                        K::Before(date(2024, 2, 1)),
                        K::On(date(2024, 2, 29)),
                        K::Since(date(2000, 1, 1)),
                        K::SentBefore(date(2024, 3, 2)),
                        K::SentOn(date(2024, 3, 3)),
                        K::SentSince(date(2024, 3, 4)),
                    ]),
                ),
            ),
            (
                b"a SEARCH LARGER 10000000000 SMALLER 5 BCC a CC b BODY c TEXT d UID 1,3:* MODSEQ 7 OLDER 60 YOUNGER 3600\r\n",
                search(
                    false,
                    K::And(vec![
                        K::Larger(10_000_000_000),
                        K::Smaller(5),
                        K::Bcc("a".into()),
                        K::Cc("b".into()),
                        K::Body("c".into()),
                        K::Text("d".into()),
                        K::Uid(set(&[(V(1), V(1)), (V(3), S)])),
                        K::ModSeq(7),
                        K::Older(60),
                        K::Younger(3600),
                    ]),
                ),
            ),
            (
                b"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
                search(false, K::ModSeq(620_162_338)),
            ),
            (b"a SEARCH (((SEEN)))\r\n", search(false, K::Seen)),
            (
                b"a SEARCH SAVEDBEFORE 1-Jan-2024 SAVEDON 2-Jan-2024 savedsince 3-Jan-2024 SAVEDATESUPPORTED EMAILID M6d-9_a THREADID T1\r\n",
                search(
                    false,
                    K::And(vec![
                        K::SavedBefore(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
                        K::SavedOn(chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()),
                        K::SavedSince(chrono::NaiveDate::from_ymd_opt(2024, 1, 3).unwrap()),
                        K::SaveDateSupported,
                        K::EmailId("M6d-9_a".into()),
                        K::ThreadId("T1".into()),
                    ]),
                ),
            ),
        ]);
    }

    #[test]
    fn bad_search() {
        bad(&[
            (b"a SEARCH FOO\r\n", Some("a"), "Unknown search key FOO"),
            (b"a SEARCH EMAILID a.b\r\n", Some("a"), "Invalid object ID"),
            (
                b"a SEARCH THREADID \"x\"\r\n",
                Some("a"),
                "Expected an atom",
            ),
            (b"a SEARCH\r\n", Some("a"), "Missing argument"),
            (
                b"a SEARCH BEFORE 30-Feb-2024\r\n",
                Some("a"),
                "Invalid date",
            ),
            (
                b"a SEARCH RETURN (FOO) ALL\r\n",
                Some("a"),
                "Unknown return option FOO",
            ),
            (
                b"a SEARCH CHARSET UTF-8 FROM \"\xff\"\r\n",
                Some("a"),
                "String is not valid in the given charset",
            ),
            (
                b"a SEARCH FROM \"\xff\"\r\n",
                Some("a"),
                "Invalid UTF-8 in string",
            ),
        ]);
    }

    #[test]
    fn unknown_charset() {
        assert_eq!(
            parse_command(b"t1 SEARCH CHARSET X-NOPE FROM x\r\n"),
            Err(ParseError::BadCharset { tag: "t1".into() })
        );
    }

    #[test]
    fn search_depth_is_bounded() {
        let ok = format!("a SEARCH {}ALL{}\r\n", "(".repeat(99), ")".repeat(99));
        assert!(parse_command(ok.as_bytes()).is_ok());
        let deep = format!("a SEARCH {}ALL{}\r\n", "(".repeat(100), ")".repeat(100));
        let too_deep = Err(ParseError::Bad {
            tag: Some("a".into()),
            text: "Search criteria nested too deeply".into(),
        });
        assert_eq!(parse_command(deep.as_bytes()), too_deep);
        let nots = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(100_000));
        assert_eq!(parse_command(nots.as_bytes()), too_deep);
        let ors = format!("a SEARCH {}ALL\r\n", "OR (".repeat(100_000));
        assert_eq!(parse_command(ors.as_bytes()), too_deep);
    }
}
