//! FETCH: the items (RFC 9051 §6.4.5, BINARY of RFC 3516, MODSEQ of
//! RFC 7162), sections and partial ranges, and the `CHANGEDSINCE`
//! modifier.
//!
//! ```text
//! fetch-att      = "ENVELOPE" / "FLAGS" / "INTERNALDATE" / "RFC822.SIZE" /
//!                  "BODY" ["STRUCTURE"] / "UID" / "MODSEQ" /
//!                  "BODY" section [partial] / "BODY.PEEK" section [partial] /
//!                  "BINARY" [".PEEK"] section-binary [partial] /
//!                  "BINARY.SIZE" section-binary
//! section        = "[" [section-spec] "]"
//! section-binary = "[" [section-part] "]"
//! partial        = "<" number "." nz-number ">"
//! ```

use super::{Fail, P, R, bad};
use crate::proto::command::*;

impl P<'_> {
    /// `fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
    /// fetch-att / "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]`.
    pub(super) fn fetch(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let items = if self.peek() == Some(b'(') {
            self.paren_list(false, Self::fetch_att)?
        } else if self.peek_kw("ALL") || self.peek_kw("FAST") || self.peek_kw("FULL") {
            use FetchAttr::*;
            let m = self.keyword()?;
            let mut items = vec![Flags, InternalDate, Rfc822Size];
            if m != "FAST" {
                items.push(Envelope);
            }
            if m == "FULL" {
                items.push(Body);
            }
            items
        } else {
            vec![self.fetch_att()?]
        };
        let (mut changed_since, mut vanished) = (None, false);
        if !self.at_end() {
            self.sp()?;
            // `chgsince-fetch-mod = "CHANGEDSINCE" SP mod-sequence-value`
            // (RFC 7162 §3.1.4) and `rexpunges-fetch-mod = "VANISHED"`
            // (§3.2.6), each at most once.
            self.paren_list(false, |p| match p.keyword()?.as_str() {
                "CHANGEDSINCE" if changed_since.is_none() => {
                    p.sp()?;
                    match p.number64()? {
                        0 => bad("CHANGEDSINCE must not be zero"),
                        v => {
                            changed_since = Some(v);
                            Ok(())
                        }
                    }
                }
                "VANISHED" if !vanished => {
                    vanished = true;
                    Ok(())
                }
                k => bad(format!("Unknown or repeated FETCH modifier {k}")),
            })?;
        }
        // §3.2.6: VANISHED only in UID FETCH, and only with CHANGEDSINCE.
        if vanished && (!uid || changed_since.is_none()) {
            return bad("VANISHED needs UID FETCH and CHANGEDSINCE");
        }
        Ok(CommandBody::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        })
    }

    /// `fetch-att` (RFC 9051 §9, RFC 3516, RFC 7162).
    pub(super) fn fetch_att(&mut self) -> R<FetchAttr> {
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
        if name.is_empty() {
            return Err(self.missing_or("Expected a FETCH item"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let has_section = self.peek() == Some(b'[');
        Ok(match (name.as_str(), has_section) {
            ("UID", false) => FetchAttr::Uid,
            ("FLAGS", false) => FetchAttr::Flags,
            ("INTERNALDATE", false) => FetchAttr::InternalDate,
            ("RFC822.SIZE", false) => FetchAttr::Rfc822Size,
            ("ENVELOPE", false) => FetchAttr::Envelope,
            ("BODY", false) => FetchAttr::Body,
            ("BODYSTRUCTURE", false) => FetchAttr::BodyStructure,
            ("RFC822", false) => FetchAttr::Rfc822,
            ("RFC822.HEADER", false) => FetchAttr::Rfc822Header,
            ("RFC822.TEXT", false) => FetchAttr::Rfc822Text,
            ("MODSEQ", false) => FetchAttr::ModSeq,
            ("EMAILID", false) => FetchAttr::EmailId,
            ("THREADID", false) => FetchAttr::ThreadId,
            ("SAVEDATE", false) => FetchAttr::SaveDate,
            ("PREVIEW", false) => FetchAttr::Preview {
                lazy: self.preview_mods()?,
            },
            ("BODY" | "BODY.PEEK", true) => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchAttr::BodySection {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            ("BINARY" | "BINARY.PEEK", true) => {
                let part = self.binary_part()?;
                let partial = self.partial()?;
                FetchAttr::Binary {
                    peek: name == "BINARY.PEEK",
                    part,
                    partial,
                }
            }
            ("BINARY.SIZE", true) => FetchAttr::BinarySize {
                part: self.binary_part()?,
            },
            _ => return bad(format!("Unknown FETCH item {name}")),
        })
    }

    /// `[SP "(" preview-mod *(SP preview-mod) ")"]` after PREVIEW (RFC
    /// 8970 §5), where the only `preview-mod` is LAZY; whether it was
    /// given. A parenthesis that does not start with LAZY is not ours (the
    /// FETCH modifiers after a lone item, e.g. `(CHANGEDSINCE 5)`), and
    /// is left alone.
    fn preview_mods(&mut self) -> R<bool> {
        let rest = self.rest();
        let ours = rest.len() >= 6
            && rest.starts_with(b" (")
            && rest[2..6].eq_ignore_ascii_case(b"LAZY")
            && matches!(rest.get(6), Some(b' ' | b')'));
        if !ours {
            return Ok(false);
        }
        self.sp()?;
        self.expect(b'(')?;
        loop {
            let m = self.atom()?;
            if !m.eq_ignore_ascii_case(b"LAZY") {
                return bad(format!(
                    "Unknown PREVIEW modifier {}",
                    String::from_utf8_lossy(m)
                ));
            }
            if self.eat(b')') {
                return Ok(true);
            }
            self.sp()?;
        }
    }

    /// `section = "[" [section-spec] "]"`.
    pub(super) fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let mut s = Section::default();
        let mut need_text = false;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            s.part.push(
                self.nz_number()
                    .map_err(|_| Fail::Bad("Invalid section part".into()))?,
            );
            need_text = false;
            if !self.eat(b'.') {
                break;
            }
            need_text = true;
        }
        if self.eat(b']') {
            if need_text {
                return bad("Invalid section");
            }
            return Ok(s);
        }
        let t = String::from_utf8_lossy(self.take_while(|b| b.is_ascii_alphabetic() || b == b'.'))
            .to_ascii_uppercase();
        s.text = Some(match t.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !s.part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                self.sp()?;
                let names = self.paren_list(false, |p| {
                    let n = p.astring()?;
                    String::from_utf8(n).map_err(|_| Fail::Bad("Invalid header field name".into()))
                })?;
                if t == "HEADER.FIELDS" {
                    SectionText::HeaderFields(names)
                } else {
                    SectionText::HeaderFieldsNot(names)
                }
            }
            _ => return bad("Invalid section"),
        });
        self.expect(b']')?;
        Ok(s)
    }

    /// `section-binary = "[" [section-part] "]"` (RFC 3516).
    pub(super) fn binary_part(&mut self) -> R<Vec<u32>> {
        self.expect(b'[')?;
        let mut part = Vec::new();
        if self.eat(b']') {
            return Ok(part);
        }
        loop {
            part.push(
                self.nz_number()
                    .map_err(|_| Fail::Bad("Invalid section part".into()))?,
            );
            if self.eat(b']') {
                return Ok(part);
            }
            if !self.eat(b'.') {
                return bad("Invalid section");
            }
        }
    }

    /// `partial = "<" number "." nz-number ">"`.
    pub(super) fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let invalid = |_| Fail::Bad("Invalid partial range".into());
        let offset = self.number().map_err(invalid)?;
        self.expect(b'.')?;
        let count = self.nz_number().map_err(invalid)?;
        self.expect(b'>')?;
        Ok(Some((offset, count)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::proto::command::*;

    #[test]
    fn good_fetch() {
        use CommandBody as C;
        use FetchAttr as F;
        good(vec![
            (b"a FETCH 1 UID\r\n", fetch(false, one(1), vec![F::Uid])),
            (b"a FETCH 1:* ALL\r\n", fetch(false, set(&[(V(1), S)]), vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope])),
            (b"a FETCH 1 fast\r\n", fetch(false, one(1), vec![F::Flags, F::InternalDate, F::Rfc822Size])),
            (
                b"a FETCH 1 FULL\r\n",
                fetch(false, one(1), vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope, F::Body]),
            ),
            (
                b"a FETCH $ (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822 RFC822.HEADER RFC822.TEXT MODSEQ UID)\r\n",
                fetch(
                    false,
                    SequenceSet::Saved,
                    vec![
                        F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope, F::Body, F::BodyStructure, F::Rfc822,
                        F::Rfc822Header, F::Rfc822Text, F::ModSeq, F::Uid,
                    ],
                ),
            ),
            (
                b"a UID FETCH 1:3 (BODY[] BODY.PEEK[HEADER] BODY[1.2.MIME] BODY[TEXT] BODY[2] BODY[3.HEADER] BODY[1.TEXT])\r\n",
                fetch(
                    true,
                    set(&[(V(1), V(3))]),
                    vec![
                        body_section(false, &[], None),
                        body_section(true, &[], Some(SectionText::Header)),
                        body_section(false, &[1, 2], Some(SectionText::Mime)),
                        body_section(false, &[], Some(SectionText::Text)),
                        body_section(false, &[2], None),
                        body_section(false, &[3], Some(SectionText::Header)),
                        body_section(false, &[1], Some(SectionText::Text)),
                    ],
                ),
            ),
            (
                b"a FETCH 2 (BODY.PEEK[HEADER.FIELDS (From \"Subject\" x-Spam)] body[header.fields.not (Received)]<0.1024>)\r\n",
                fetch(
                    false,
                    one(2),
                    vec![
                        body_section(true, &[], Some(SectionText::HeaderFields(vec!["From".into(), "Subject".into(), "x-Spam".into()]))),
                        F::BodySection {
                            peek: false,
                            section: Section { part: vec![], text: Some(SectionText::HeaderFieldsNot(vec!["Received".into()])) },
                            partial: Some((0, 1024)),
                        },
                    ],
                ),
            ),
            (
                b"a FETCH 1 (BINARY[1.2]<5.10> BINARY.PEEK[] BINARY.SIZE[3])\r\n",
                fetch(
                    false,
                    one(1),
                    vec![
                        F::Binary { peek: false, part: vec![1, 2], partial: Some((5, 10)) },
                        F::Binary { peek: true, part: vec![], partial: None },
                        F::BinarySize { part: vec![3] },
                    ],
                ),
            ),
            (
                b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
                C::Fetch { uid: true, set: set(&[(V(1), S)]), items: vec![F::Flags], changed_since: Some(12345), vanished: false },
            ),
            (
                b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
                C::Fetch { uid: true, set: set(&[(V(300), V(500))]), items: vec![F::Flags], changed_since: Some(1), vanished: true },
            ),
            (
                b"a FETCH 1 (EMAILID threadid SaveDate PREVIEW preview (lazy) PREVIEW (LAZY LAZY))\r\n",
                fetch(
                    false,
                    one(1),
                    vec![
                        F::EmailId, F::ThreadId, F::SaveDate, F::Preview { lazy: false }, F::Preview { lazy: true },
                        F::Preview { lazy: true },
                    ],
                ),
            ),
            // A lone PREVIEW, then FETCH modifiers: not preview modifiers.
            (
                b"a FETCH 1 PREVIEW (CHANGEDSINCE 7)\r\n",
                C::Fetch { uid: false, set: one(1), items: vec![F::Preview { lazy: false }], changed_since: Some(7), vanished: false },
            ),
            (b"a FETCH 1 PREVIEW (LAZY)\r\n", fetch(false, one(1), vec![F::Preview { lazy: true }])),
        ]);
    }

    #[test]
    fn bad_fetch() {
        bad(&[
            (b"a FETCH 1 FOO\r\n", Some("a"), "Unknown FETCH item FOO"),
            (b"a FETCH 1 BODY[1.]\r\n", Some("a"), "Invalid section"),
            (b"a FETCH 1 BODY[MIME]\r\n", Some("a"), "Invalid section"),
            (
                b"a FETCH 1 BODY[]<1.0>\r\n",
                Some("a"),
                "Invalid partial range",
            ),
            (b"a FETCH 1 ()\r\n", Some("a"), "Empty list"),
            (
                b"a FETCH 1 (PREVIEW (LAZY FAST))\r\n",
                Some("a"),
                "Unknown PREVIEW modifier FAST",
            ),
            (
                b"a FETCH 1 PREVIEW (LAZY\r\n",
                Some("a"),
                "Unknown or repeated FETCH modifier LAZY",
            ),
            (
                b"a FETCH 1 EMAILID[]\r\n",
                Some("a"),
                "Unknown FETCH item EMAILID",
            ),
            (
                b"a FETCH 1 UID (VANISHED)\r\n",
                Some("a"),
                "VANISHED needs UID FETCH and CHANGEDSINCE",
            ),
            (
                b"a FETCH 1 UID (CHANGEDSINCE 5 VANISHED)\r\n",
                Some("a"),
                "VANISHED needs UID FETCH and CHANGEDSINCE",
            ),
            (
                b"a UID FETCH 1 UID (VANISHED)\r\n",
                Some("a"),
                "VANISHED needs UID FETCH and CHANGEDSINCE",
            ),
            (
                b"a UID FETCH 1 UID (VANISHED VANISHED)\r\n",
                Some("a"),
                "Unknown or repeated FETCH modifier VANISHED",
            ),
        ]);
    }
}
