//! Tables over real-looking messages: exact ENVELOPE / BODYSTRUCTURE
//! strings, section extraction, BINARY, and a never-panics property.
use proptest::prelude::*;

use super::*;
use crate::message::{crlf_size, to_crlf};

fn sec(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

fn s(v: Vec<u8>) -> String {
    String::from_utf8(v).expect("test output is UTF-8")
}

/// The message behind the RFC 3501 §8 example (FETCH 12): body sized so
/// that it is 3028 octets in 92 lines.
fn rfc3501_example() -> Vec<u8> {
    let mut m = concat!(
        "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n",
        "From: Terry Gray <gray@cac.washington.edu>\r\n",
        "Subject: IMAP4rev1 WG mtg summary and minutes\r\n",
        "To: imap@cac.washington.edu\r\n",
        "cc: minutes@CNRI.Reston.VA.US,\r\n",
        "        John Klensin <KLENSIN@MIT.EDU>\r\n",
        "Message-Id: <B27397-0100000@cac.washington.edu>\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n",
        "\r\n",
    )
    .as_bytes()
    .to_vec();
    for _ in 0..91 {
        m.extend_from_slice(&[b'x'; 31]);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(&[b'y'; 23]);
    m.extend_from_slice(b"\r\n");
    m
}

#[test]
fn rfc3501_envelope_and_body() {
    let m = Message::parse(&rfc3501_example());
    assert_eq!(
        s(m.envelope(false)),
        concat!(
            r#"("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" "#,
            r#"(("Terry Gray" NIL "gray" "cac.washington.edu")) "#,
            r#"(("Terry Gray" NIL "gray" "cac.washington.edu")) "#,
            r#"(("Terry Gray" NIL "gray" "cac.washington.edu")) "#,
            r#"((NIL NIL "imap" "cac.washington.edu")) "#,
            r#"((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL "#,
            r#""<B27397-0100000@cac.washington.edu>")"#
        )
    );
    assert_eq!(
        s(m.body_structure(false)),
        r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)"#
    );
    assert_eq!(
        s(m.body_structure(true)),
        r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)"#
    );
}

/// The message of Dovecot's own BODYSTRUCTURE unit test (LF-only, folded
/// boundary parameter, all extension fields, an invalid CTE, a nested
/// message/rfc822 with a multipart inside).
const DOVECOT_TESTMSG: &str = concat!(
    "From: user@domain.org\n",
    "Date: Sat, 24 Mar 2007 23:00:00 +0200\n",
    "Mime-Version: 1.0\n",
    "Content-Type: multipart/mixed; boundary=\"foo\n",
    " bar\"\n",
    "\n",
    "Root MIME prologue\n",
    "\n",
    "--foo bar\n",
    "Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\n",
    "Content-ID: <foo@example.com>\n",
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n",
    "Content-Disposition: inline; foo=bar\n",
    "Content-Description: hellodescription\n",
    "Content-Language: en, fi, se\n",
    "Content-Location: http://example.com/test.txt\n",
    "\n",
    "hello\n",
    "\n",
    "--foo bar\n",
    "Content-Type: message/rfc822\n",
    "\n",
    "From: sub@domain.org\n",
    "To: sub-to1@domain.org, sub-to2@domain.org\n",
    "Date: Sun, 12 Aug 2012 12:34:56 +0300\n",
    "Subject: submsg\n",
    "Content-Type: multipart/alternative; boundary=\"sub1\"\n",
    "\n",
    "Sub MIME prologue\n",
    "--sub1\n",
    "Content-Type: text/html\n",
    "Content-Transfer-Encoding: 8bit\n",
    "\n",
    "<p>Hello world</p>\n",
    "\n",
    "--sub1\n",
    "Content-Type: text/plain\n",
    "Content-Transfer-Encoding: ?invalid\n",
    "\n",
    "Hello another world\n",
    "\n",
    "--sub1--\n",
    "Sub MIME epilogue\n",
    "\n",
    "--foo bar--\n",
    "Root MIME epilogue\n",
);

/// Dovecot's expected output for [`DOVECOT_TESTMSG`]; we differ only in
/// the (case-insensitive) spelling of types, names and encodings.
const DOVECOT_BODYSTRUCTURE: &str = concat!(
    r#"(("text" "x-myown" ("charset" "us-ascii" "foo" "quoted\"string") "<foo@example.com>" "hellodescription" "7bit" 7 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" ("foo" "bar")) ("en" "fi" "se") "http://example.com/test.txt")"#,
    r#"("message" "rfc822" NIL NIL NIL "7bit" 412 ("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub-to1" "domain.org")(NIL NIL "sub-to2" "domain.org")) NIL NIL NIL NIL) "#,
    r#"(("text" "html" ("charset" "us-ascii") NIL NIL "8bit" 20 1 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1 NIL NIL NIL NIL) "alternative" ("boundary" "sub1") NIL NIL NIL) 21 NIL NIL NIL NIL)"#,
    r#" "mixed" ("boundary" "foo bar") NIL NIL NIL)"#
);

const DOVECOT_BODY: &str = concat!(
    r#"(("text" "x-myown" ("charset" "us-ascii" "foo" "quoted\"string") "<foo@example.com>" "hellodescription" "7bit" 7 1)"#,
    r#"("message" "rfc822" NIL NIL NIL "7bit" 412 ("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub-to1" "domain.org")(NIL NIL "sub-to2" "domain.org")) NIL NIL NIL NIL) "#,
    r#"(("text" "html" ("charset" "us-ascii") NIL NIL "8bit" 20 1)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1) "alternative") 21) "mixed")"#
);

#[test]
fn same_structure_as_dovecot() {
    let m = Message::parse(DOVECOT_TESTMSG.as_bytes());
    assert_eq!(
        s(m.body_structure(true)).to_ascii_lowercase(),
        DOVECOT_BODYSTRUCTURE.to_ascii_lowercase()
    );
    assert_eq!(
        s(m.body_structure(false)).to_ascii_lowercase(),
        DOVECOT_BODY.to_ascii_lowercase()
    );
    // The invalid CTE is shown as 7bit but BINARY still refuses it.
    assert_eq!(m.binary(&[2, 2]), Err(BinaryError::UnknownCte));
    assert_eq!(s(m.section(&sec(&[2, 1], None))), "<p>Hello world</p>\r\n");
    assert_eq!(s(m.section(&sec(&[2, 2], None))), "Hello another world\r\n");
}

const LF_ONLY: &str = "From: a@example.org\nSubject: lf\n\nline one\nline two\n";

#[test]
fn lf_only_is_served_as_crlf() {
    let raw = LF_ONLY.as_bytes();
    let m = Message::parse(raw);
    let want = "From: a@example.org\r\nSubject: lf\r\n\r\nline one\r\nline two\r\n";
    assert_eq!(m.bytes(), want.as_bytes());
    assert_eq!(crlf_size(raw), want.len() as u64);
    assert_eq!(crlf_size(want.as_bytes()), want.len() as u64);
    assert_eq!(crlf_size(b""), 0);
    assert_eq!(crlf_size(b"\n\r\n\n"), 6);
    assert_eq!(
        s(m.body_structure(false)),
        r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 20 2)"#
    );
    assert_eq!(
        s(m.section(&sec(&[], Some(SectionText::Header)))),
        "From: a@example.org\r\nSubject: lf\r\n\r\n"
    );
    assert_eq!(s(m.section(&sec(&[1], None))), "line one\r\nline two\r\n");
    assert_eq!(
        s(m.section(&sec(&[1], Some(SectionText::Mime)))),
        "From: a@example.org\r\nSubject: lf\r\n\r\n"
    );
    assert_eq!(s(m.section(&sec(&[2], None))), "");
    assert_eq!(s(m.section(&sec(&[1, 1], None))), "");
    assert_eq!(s(m.section(&sec(&[1], Some(SectionText::Header)))), "");
}

const ALTERNATIVE: &str = concat!(
    "From: \"Alice A.\" <alice@example.org>\r\n",
    "To: bob@example.net\r\n",
    "Subject: Lunch\r\n",
    "X-Folded: one\r\n",
    "  two\r\n",
    "MIME-Version: 1.0\r\n",
    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n",
    "\r\n",
    "This is the preamble.\r\n",
    "--b1\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n",
    "\r\n",
    "Caf=C3=A9 at noon?\r\n",
    "--b1\r\n",
    "Content-Type: text/html; charset=\"utf-8\"\r\n",
    "\r\n",
    "<p>Caf\u{e9} at noon?</p>\r\n",
    "--b1--\r\n",
    "epilogue\r\n",
);

#[test]
fn multipart_alternative() {
    let m = Message::parse(ALTERNATIVE.as_bytes());
    assert_eq!(
        s(m.body_structure(true)),
        concat!(
            r#"(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 18 0 NIL NIL NIL NIL)"#,
            r#"("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 21 0 NIL NIL NIL NIL)"#,
            r#" "ALTERNATIVE" ("BOUNDARY" "b1") NIL NIL NIL)"#
        )
    );
    assert_eq!(
        s(m.body_structure(false)),
        concat!(
            r#"(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 18 0)"#,
            r#"("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 21 0) "ALTERNATIVE")"#
        )
    );
    let cases: Vec<(Section, &str)> = vec![
        (sec(&[1], None), "Caf=C3=A9 at noon?"),
        (sec(&[2], None), "<p>Caf\u{e9} at noon?</p>"),
        (
            sec(&[1], Some(SectionText::Mime)),
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
        ),
        (sec(&[3], None), ""),
        (sec(&[0], None), ""),
        (
            sec(
                &[],
                Some(SectionText::HeaderFields(vec![
                    "SUBJECT".into(),
                    "x-folded".into(),
                    "Nope".into(),
                ])),
            ),
            "Subject: Lunch\r\nX-Folded: one\r\n  two\r\n\r\n",
        ),
        (
            sec(
                &[],
                Some(SectionText::HeaderFieldsNot(vec![
                    "content-type".into(),
                    "mime-version".into(),
                    "x-folded".into(),
                ])),
            ),
            "From: \"Alice A.\" <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Lunch\r\n\r\n",
        ),
        (
            sec(&[], Some(SectionText::HeaderFields(vec!["absent".into()]))),
            "\r\n",
        ),
    ];
    for (section, want) in cases {
        assert_eq!(s(m.section(&section)), want, "{section:?}");
    }
    let text = s(m.section(&sec(&[], Some(SectionText::Text))));
    assert!(text.starts_with("This is the preamble.\r\n--b1\r\n"));
    assert!(text.ends_with("--b1--\r\nepilogue\r\n"));
    assert_eq!(s(m.section(&sec(&[], None))), ALTERNATIVE);
    assert_eq!(m.binary(&[1]).unwrap(), "Caf\u{e9} at noon?".as_bytes());
    assert_eq!(m.binary_size(&[1]), Ok(14));
    // A part that does not exist is empty, as for BODY[9].
    assert_eq!(m.binary(&[9]), Ok(Vec::new()));
    assert_eq!(m.binary_size(&[9]), Ok(0));
    assert_eq!(m.binary(&[]).unwrap(), ALTERNATIVE.as_bytes());
}

const MIXED: &str = concat!(
    "From: carol@example.org\r\n",
    "Subject: report\r\n",
    "Content-Type: multipart/mixed; boundary=XyZ\r\n",
    "\r\n",
    "--XyZ\r\n",
    "\r\n",
    "See attached.\r\n",
    "--XyZ\r\n",
    "Content-Type: application/pdf; name=\"r.pdf\"\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "Content-Disposition: attachment;\r\n",
    " filename*0=\"quarterly-\";\r\n",
    " filename*1=\"report.pdf\"\r\n",
    "Content-ID: <att1@example.org>\r\n",
    "Content-Description: The report\r\n",
    "Content-Language: en, de\r\n",
    "Content-Location: http://example.org/r.pdf\r\n",
    "\r\n",
    "JVBERi0xLjQK\r\n",
    "aGVsbG8=\r\n",
    "--XyZ\r\n",
    "Content-Type: text/plain\r\n",
    "Content-Transfer-Encoding: x-uuencode\r\n",
    "\r\n",
    "begin 644 x\r\n",
    "--XyZ--\r\n",
);

#[test]
fn multipart_mixed_with_attachment() {
    let m = Message::parse(MIXED.as_bytes());
    assert_eq!(
        s(m.body_structure(true)),
        concat!(
            r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 13 0 NIL NIL NIL NIL)"#,
            r#"("APPLICATION" "PDF" ("NAME" "r.pdf") "<att1@example.org>" "The report" "BASE64" 22 NIL"#,
            r#" ("ATTACHMENT" ("FILENAME" "quarterly-report.pdf")) ("en" "de") "http://example.org/r.pdf")"#,
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "X-UUENCODE" 11 0 NIL NIL NIL NIL)"#,
            r#" "MIXED" ("BOUNDARY" "XyZ") NIL NIL NIL)"#
        )
    );
    assert_eq!(m.binary(&[2]).unwrap(), b"%PDF-1.4\nhello");
    assert_eq!(m.binary_size(&[2]), Ok(14));
    assert_eq!(m.binary(&[3]), Err(BinaryError::UnknownCte));
    assert_eq!(m.binary_size(&[3]), Err(BinaryError::UnknownCte));
    assert_eq!(m.binary(&[1]).unwrap(), b"See attached.");
    assert_eq!(s(m.section(&sec(&[1], Some(SectionText::Mime)))), "\r\n");
}

const NESTED: &str = concat!(
    "Subject: nested\r\n",
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n",
    "\r\n",
    "--outer\r\n",
    "Content-Type: multipart/alternative; boundary=\"outer-inner\"\r\n",
    "\r\n",
    "--outer-inner\r\n",
    "Content-Type: text/plain\r\n",
    "\r\n",
    "plain\r\n",
    "--outer-inner\r\n",
    "Content-Type: text/html\r\n",
    "\r\n",
    "<b>html</b>\r\n",
    "--outer-inner--\r\n",
    "--outer\r\n",
    "Content-Type: image/png\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "\r\n",
    "iVBORw0KGgo=\r\n",
    "--outer--\r\n",
);

#[test]
fn nested_multipart() {
    let m = Message::parse(NESTED.as_bytes());
    assert_eq!(
        s(m.body_structure(false)),
        concat!(
            r#"((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 0)"#,
            r#"("TEXT" "HTML" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 0) "ALTERNATIVE")"#,
            r#"("IMAGE" "PNG" NIL NIL NIL "BASE64" 12) "MIXED")"#
        )
    );
    assert_eq!(s(m.section(&sec(&[1, 1], None))), "plain");
    assert_eq!(s(m.section(&sec(&[1, 2], None))), "<b>html</b>");
    assert_eq!(
        s(m.section(&sec(&[1, 2], Some(SectionText::Mime)))),
        "Content-Type: text/html\r\n\r\n"
    );
    assert!(s(m.section(&sec(&[1], None))).starts_with("--outer-inner\r\n"));
    assert_eq!(s(m.section(&sec(&[2], None))), "iVBORw0KGgo=");
    assert_eq!(s(m.section(&sec(&[1, 3], None))), "");
    assert_eq!(m.binary(&[2]).unwrap(), b"\x89PNG\r\n\x1a\n");
}

const RFC822: &str = concat!(
    "From: dave@example.org\r\n",
    "Subject: Fwd: hello\r\n",
    "Content-Type: multipart/mixed; boundary=\"fw\"\r\n",
    "\r\n",
    "--fw\r\n",
    "Content-Type: text/plain\r\n",
    "\r\n",
    "Forwarding.\r\n",
    "--fw\r\n",
    "Content-Type: message/rfc822\r\n",
    "\r\n",
    "From: erin@example.com\r\n",
    "Subject: hello\r\n",
    "Date: Mon, 2 Jan 2023 10:00:00 +0000\r\n",
    "Message-ID: <m1@example.com>\r\n",
    "\r\n",
    "Inner body.\r\n",
    "--fw--\r\n",
);

#[test]
fn message_rfc822() {
    let m = Message::parse(RFC822.as_bytes());
    let inner_env = concat!(
        r#"("Mon, 2 Jan 2023 10:00:00 +0000" "hello" "#,
        r#"((NIL NIL "erin" "example.com")) ((NIL NIL "erin" "example.com")) ((NIL NIL "erin" "example.com")) "#,
        r#"NIL NIL NIL NIL "<m1@example.com>")"#
    );
    assert_eq!(
        s(m.body_structure(false)),
        format!(
            concat!(
                r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 0)"#,
                r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 121 {} "#,
                r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 0) 5) "MIXED")"#
            ),
            inner_env
        )
    );
    let cases: Vec<(Section, &str)> = vec![
        (
            sec(&[2], Some(SectionText::Header)),
            "From: erin@example.com\r\nSubject: hello\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\n",
        ),
        (sec(&[2], Some(SectionText::Text)), "Inner body."),
        (sec(&[2, 1], None), "Inner body."),
        (
            sec(&[2, 1], Some(SectionText::Mime)),
            "From: erin@example.com\r\nSubject: hello\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\n",
        ),
        (
            sec(
                &[2],
                Some(SectionText::HeaderFields(vec!["subject".into()])),
            ),
            "Subject: hello\r\n\r\n",
        ),
        (
            sec(&[2], Some(SectionText::Mime)),
            "Content-Type: message/rfc822\r\n\r\n",
        ),
        (sec(&[1], Some(SectionText::Text)), ""),
        (sec(&[2, 2], None), ""),
    ];
    for (section, want) in cases {
        assert_eq!(s(m.section(&section)), want, "{section:?}");
    }
    assert!(s(m.section(&sec(&[2], None))).starts_with("From: erin@example.com\r\n"));
}

#[test]
fn encoded_words_stay_raw_in_envelope() {
    let raw = concat!(
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n",
        "From: =?ISO-8859-1?Q?J=F6rg?= <joerg@example.de>\r\n",
        "\r\n",
        "x\r\n",
    );
    let m = Message::parse(raw.as_bytes());
    assert_eq!(
        s(m.envelope(false)),
        concat!(
            r#"(NIL "=?UTF-8?B?R3LDvMOfZQ==?=" (("=?ISO-8859-1?Q?J=F6rg?=" NIL "joerg" "example.de")) "#,
            r#"(("=?ISO-8859-1?Q?J=F6rg?=" NIL "joerg" "example.de")) (("=?ISO-8859-1?Q?J=F6rg?=" NIL "joerg" "example.de")) "#,
            "NIL NIL NIL NIL NIL)"
        )
    );
    // Raw 8-bit UTF-8 (RFC 6532): a literal unless UTF8=ACCEPT.
    let m = Message::parse("Subject: Grüße\r\n\r\n".as_bytes());
    assert_eq!(
        m.envelope(false),
        "(NIL {7}\r\nGrüße NIL NIL NIL NIL NIL NIL NIL NIL)".as_bytes()
    );
    assert_eq!(
        s(m.envelope(true)),
        "(NIL \"Grüße\" NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
}

/// The imaptest cases from Dovecot's ENVELOPE unit test.
#[test]
fn envelope_table() {
    let cases: &[(&str, &str)] = &[
        (
            concat!(
                "Message-ID: <msg@id>\n",
                "In-Reply-To: <reply@to.id>\n",
                "Date: Thu, 15 Feb 2007 01:02:03 +0200\n",
                "Subject: subject header\n",
                "From: From Real <fromuser@fromdomain.org>\n",
                "To: To Real <touser@todomain.org>\n",
                "Cc: Cc Real <ccuser@ccdomain.org>\n",
                "Bcc: Bcc Real <bccuser@bccdomain.org>\n",
                "Sender: Sender Real <senderuser@senderdomain.org>\n",
                "Reply-To: ReplyTo Real <replytouser@replytodomain.org>\n",
                "\n",
                "body\n",
            ),
            concat!(
                r#"("Thu, 15 Feb 2007 01:02:03 +0200" "subject header" "#,
                r#"(("From Real" NIL "fromuser" "fromdomain.org")) "#,
                r#"(("Sender Real" NIL "senderuser" "senderdomain.org")) "#,
                r#"(("ReplyTo Real" NIL "replytouser" "replytodomain.org")) "#,
                r#"(("To Real" NIL "touser" "todomain.org")) "#,
                r#"(("Cc Real" NIL "ccuser" "ccdomain.org")) "#,
                r#"(("Bcc Real" NIL "bccuser" "bccdomain.org")) "#,
                r#""<reply@to.id>" "<msg@id>")"#
            ),
        ),
        (
            "Date: Thu, 15 Feb 2007 01:02:03 +0200\nFrom: user@domain\n\nbody\n",
            concat!(
                r#"("Thu, 15 Feb 2007 01:02:03 +0200" NIL ((NIL NIL "user" "domain")) "#,
                r#"((NIL NIL "user" "domain")) ((NIL NIL "user" "domain")) NIL NIL NIL NIL NIL)"#
            ),
        ),
        (
            concat!(
                "Date: Thu, 15 Feb 2007 01:02:03 +0200\n",
                "From: user@domain (Real Name)\n",
                "To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\n",
                "Cc: group:;, group2: (foo) ;\n",
                "\n",
                "body\n",
            ),
            concat!(
                r#"("Thu, 15 Feb 2007 01:02:03 +0200" NIL "#,
                r#"(("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) "#,
                r#"(("Real Name" NIL "user" "domain")) "#,
                r#"((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)"#,
                r#"(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) "#,
                r#"((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) "#,
                "NIL NIL NIL)"
            ),
        ),
        (
            concat!(
                "Date: Thu, 15 Feb 2007 01:02:03 +0200\n",
                "From: user@domain (Real Name)\n",
                "Sender: \n",
                "Reply-To: \n",
                "\n",
                "body\n",
            ),
            concat!(
                r#"("Thu, 15 Feb 2007 01:02:03 +0200" NIL "#,
                r#"(("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) "#,
                r#"(("Real Name" NIL "user" "domain")) NIL NIL NIL NIL NIL)"#
            ),
        ),
        (
            "Date: Thu, 15 Feb 2007 01:02:03 +0200\nFrom: <@route:user@domain>\n\nbody\n",
            concat!(
                r#"("Thu, 15 Feb 2007 01:02:03 +0200" NIL ((NIL "@route" "user" "domain")) "#,
                r#"((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) NIL NIL NIL NIL NIL)"#
            ),
        ),
        // Folded subject: unfolded, inner blanks kept; empty subject.
        (
            "Subject: a\r\n  b\r\nIn-Reply-To:\r\n\r\n",
            r#"(NIL "a  b" NIL NIL NIL NIL NIL NIL "" NIL)"#,
        ),
        // Quotes and backslashes in a subject are escaped.
        (
            "Subject: say \"hi\" \\o/\r\n\r\n",
            r#"(NIL "say \"hi\" \\o/" NIL NIL NIL NIL NIL NIL NIL NIL)"#,
        ),
    ];
    for (raw, want) in cases {
        let m = Message::parse(raw.as_bytes());
        assert_eq!(s(m.envelope(false)), *want, "{raw:?}");
    }
}

#[test]
fn broken_mime_degrades() {
    let cases: &[(&str, &str)] = &[
        // No boundary parameter: text/plain.
        (
            "Content-Type: multipart/mixed\r\n\r\nbody\r\n",
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1)"#,
        ),
        // Boundary never appears: one empty part.
        (
            "Content-Type: multipart/mixed; boundary=zz\r\n\r\nbody\r\n",
            r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED")"#,
        ),
        // Missing close delimiter: the last part runs to the end.
        (
            "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\nunterminated\r\n",
            r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 1) "MIXED")"#,
        ),
        // Garbage Content-Type.
        (
            "Content-Type: ???\r\n\r\nx",
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 0)"#,
        ),
        // No header/body separator at all.
        (
            "Subject: only a header",
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)"#,
        ),
        (
            "",
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)"#,
        ),
        // Encoded message/rfc822 is opaque.
        (
            "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nQQ==\r\n",
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "BASE64" 6 1)"#,
        ),
        // Digest parts default to message/rfc822.
        (
            "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: s\r\n\r\nb\r\n--d--\r\n",
            r#"(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 15 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 0) 2) "DIGEST")"#,
        ),
    ];
    for (raw, want) in cases {
        let m = Message::parse(raw.as_bytes());
        assert_eq!(s(m.body_structure(false)), *want, "{raw:?}");
    }
    let m = Message::parse(b"Content-Transfer-Encoding: base64\r\n\r\n!!!QUJD***");
    assert_eq!(m.binary(&[1]).unwrap(), b"ABC");
}

#[test]
fn deep_nesting_is_capped() {
    let mut raw = Vec::new();
    for i in 0..2000 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"\r\nleaf\r\n");
    let m = Message::parse(&raw);
    let bs = m.body_structure(true);
    let depth = bs.iter().filter(|&&c| c == b'(').count();
    assert!(depth > 100 && depth < 1000, "{depth}");
    let mut raw = Vec::new();
    for _ in 0..2000 {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    let m = Message::parse(&raw);
    assert!(!m.body_structure(true).is_empty());
    assert!(m.section(&sec(&[1; 300], None)).is_empty());
}

#[test]
fn part_count_is_capped() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for _ in 0..20_000 {
        raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
    }
    raw.extend_from_slice(b"--b--\r\n");
    let m = Message::parse(&raw);
    let bs = s(m.body_structure(false));
    assert_eq!(bs.matches("\"TEXT\"").count(), tree::MAX_PARTS);
    // The last part holds the rest of the body.
    let last = m.section(&sec(&[tree::MAX_PARTS as u32], None));
    assert!(last.len() > 10_000 * 8, "{}", last.len());
    assert!(
        m.section(&sec(&[tree::MAX_PARTS as u32 + 1], None))
            .is_empty()
    );
}

#[test]
fn parameter_lists() {
    use crate::message::tree::params;
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "; charset=utf-8; format=flowed",
            &[("charset", "utf-8"), ("format", "flowed")],
        ),
        ("; name=\"a \\\"b\\\" c\"", &[("name", "a \"b\" c")]),
        ("; a*0=x; b=1; a*1=y", &[("a", "xy"), ("b", "1")]),
        (
            "; f*0*=utf-8''%E2%82; f*1*=%AC",
            &[("f*", "utf-8''%E2%82%AC")],
        ),
        (
            "; (comment) x=1 (c2); novalue; y = 2",
            &[("x", "1"), ("y", "2")],
        ),
        ("; broken=\"unterminated", &[("broken", "unterminated")]),
        ("", &[]),
    ];
    for (input, want) in cases {
        let got: Vec<(String, String)> = params(input.as_bytes())
            .into_iter()
            .map(|(n, v)| (s(n.into_owned()), s(v.into_owned())))
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want, "{input:?}");
    }
}

/// Byte soup biased toward MIME syntax, so the generator reaches the
/// multipart and message code rather than only the header splitter.
fn mimeish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
        Just(b"Content-Type: message/rfc822\r\n".to_vec()),
        Just(b"Content-Type: text/plain; charset*0*=x; charset*1=y\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: quoted-printable\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: binary\r\n".to_vec()),
        Just(b"Content-Type: application/octet-stream\r\n".to_vec()),
        Just(b"a\nb\r\0\n".to_vec()),
        Just(b"soft  \t=\r\nx=20 \r\n".to_vec()),
        Just(b"From: \"a\" <b@c>, g: d@e;\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"--b\r\n".to_vec()),
        Just(b"--b--\r\n".to_vec()),
        Just(b" folded\r\n".to_vec()),
        Just(b"=\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn exercise(raw: &[u8]) {
    let m = Message::parse(raw);
    assert_eq!(m.bytes().len() as u64, crlf_size(raw));
    let _ = m.envelope(false);
    let _ = m.envelope(true);
    let _ = m.body_structure(true);
    let _ = m.body_structure(false);
    let _ = m.preview();
    for part in [&[][..], &[1], &[2], &[1, 1], &[1, 2, 1], &[3, 1]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(vec!["from".into()])),
            Some(SectionText::HeaderFieldsNot(vec!["from".into()])),
        ] {
            let _ = m.section(&sec(part, text));
        }
        let _ = m.binary(part);
        let _ = m.binary_size(part);
    }
}

proptest! {
    #[test]
    fn never_panics_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&raw);
    }

    #[test]
    fn never_panics_on_mimeish(raw in mimeish()) {
        exercise(&raw);
    }

    #[test]
    fn binary_size_matches_binary(raw in mimeish()) {
        let m = Message::parse(&raw);
        for part in [&[][..], &[1], &[2], &[1, 1]] {
            if let Ok(v) = m.binary(part) {
                prop_assert_eq!(m.binary_size(part), Ok(v.len() as u64));
            }
        }
    }

    /// Every size agrees with what is served, binary parts included: the
    /// served form is `to_crlf` (a fixed point: serving it again changes
    /// nothing, so a message copied through a client keeps its sizes), its
    /// length is RFC822.SIZE, the BODYSTRUCTURE rendered from the stored
    /// bytes is the one of the served copy, every BODY[part] of a leaf is
    /// as long as its BODYSTRUCTURE size says, and a partial BINARY is the
    /// window of BINARY.SIZE it names.
    #[test]
    fn served_sizes_agree(raw in mimeish(), off in 0u32..64, len in 1u32..64) {
        let m = Message::parse(&raw);
        prop_assert_eq!(m.bytes(), &to_crlf(&raw)[..]);
        prop_assert_eq!(m.bytes().len() as u64, crlf_size(&raw));
        prop_assert_eq!(&to_crlf(m.bytes())[..], m.bytes());
        prop_assert_eq!(crlf_size(m.bytes()), crlf_size(&raw));
        prop_assert_eq!(bs_of(&raw, true), m.body_structure(true));
        for part in [&[1][..], &[2], &[1, 1], &[2, 1], &[1, 2]] {
            if let Some(p) = super::find(&m.root, part)
                && matches!(p.kind, tree::Kind::Leaf)
            {
                let mut one = Vec::new();
                super::structure::write(&mut one, m.bytes(), p, &m.kept, false);
                let body = m.section(&sec(part, None));
                let one = String::from_utf8_lossy(&one).into_owned();
                let n = body.len();
                prop_assert!(
                    one.contains(&format!(" {n} ")) || one.ends_with(&format!(" {n})")),
                    "{:?} has no size {}", one, n
                );
            }
            if let (Ok(all), Ok(size)) = (m.binary(part), m.binary_size(part)) {
                let (o, l) = (off as usize, len as usize);
                let start = o.min(all.len());
                let window = &all[start..(start + l).min(all.len())];
                prop_assert_eq!(window.len() as u64, size.saturating_sub(u64::from(off)).min(u64::from(len)));
            }
        }
    }
}

/// [`body_structure_of`] into a fresh vector.
fn bs_of(raw: &[u8], ext: bool) -> Vec<u8> {
    let mut out = Vec::new();
    body_structure_of(&mut out, raw, ext);
    out
}

/// [`envelope_of`] into a fresh vector.
fn env_of(raw: &[u8], utf8: bool) -> Vec<u8> {
    let mut out = Vec::new();
    envelope_of(&mut out, raw, utf8);
    out
}

/// MIME-ish pieces with CRLF line ends and no lone CR, including the
/// values whose parsing keeps line-break bytes (folds inside domain
/// literals, quoted pairs in comments and quoted strings, folded
/// parameters), so that their LF form can be derived by dropping every CR.
fn crlf_pieces() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"Content-Type: multipart/mixed;\r\n boundary=\"b\"\r\n".to_vec()),
        Just(b"Content-Type: multipart/digest; boundary=b\r\n".to_vec()),
        Just(b"Content-Type: message/rfc822\r\n".to_vec()),
        Just(b"Content-Type: text/plain; name*0=\"a\r\n b\"; name*1*=x\r\n".to_vec()),
        Just(b"Content-Type: application/x;\r\n\tq=\"a\\\r\n b\" (c\r\n d)\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding:\r\n 8bit\r\n".to_vec()),
        Just(b"Content-Disposition: attachment;\r\n filename=\"f\r\n x\"\r\n".to_vec()),
        Just(b"Content-Language: en,\r\n de\r\n".to_vec()),
        Just(b"Content-ID: <x\r\n @y>\r\n".to_vec()),
        Just(b"From: (A\\\r\n B) a@[1.2\r\n .3], \"q\\\r\n x\" <b@c>\r\n".to_vec()),
        Just(b"To: g: d@e,\r\n f@g;\r\n".to_vec()),
        Just(b"Subject: folded\r\n  subject\r\n".to_vec()),
        Just(b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"--b\r\n".to_vec()),
        Just(b"--b--\r\n".to_vec()),
        Just(b"--b \r\n".to_vec()),
        Just(b" folded\r\n".to_vec()),
        Just(b"line of text\r\n".to_vec()),
        proptest::collection::vec(any::<u8>().prop_filter("no CR", |c| *c != b'\r'), 0..12),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// The CRLF-free form of a message without lone CRs.
fn drop_cr(raw: &[u8]) -> Vec<u8> {
    raw.iter().copied().filter(|&c| c != b'\r').collect()
}

/// What FETCH renders from the stored bytes equals what the whole-message
/// CRLF copy gives, for every item the in-place renderers serve.
fn same_as_copy(raw: &[u8]) -> Result<(), TestCaseError> {
    let m = Message::parse(raw);
    for ext in [true, false] {
        prop_assert_eq!(bs_of(raw, ext), m.body_structure(ext));
    }
    // The header block alone, as `Folder::read_header` gives it.
    let (header, _) = tree::split_header(raw, 0..raw.len());
    for utf8 in [true, false] {
        prop_assert_eq!(env_of(raw, utf8), m.envelope(utf8));
        prop_assert_eq!(env_of(&raw[..header.end], utf8), m.envelope(utf8));
    }
    let names = ["from", "Subject", "content-type", "to"];
    for utf8 in [true, false] {
        let (mut env, mut sel) = (Vec::new(), Vec::new());
        envelope_and_fields_of(&mut env, &mut sel, raw, &names, utf8);
        prop_assert_eq!(&env, &m.envelope(utf8));
        let text = SectionText::HeaderFields(names.iter().map(|s| s.to_string()).collect());
        prop_assert_eq!(&sel, &m.section(&sec(&[], Some(text))));
    }
    for keep in [true, false] {
        let text = if keep {
            SectionText::HeaderFields(names.iter().map(|s| s.to_string()).collect())
        } else {
            SectionText::HeaderFieldsNot(names.iter().map(|s| s.to_string()).collect())
        };
        let mut got = Vec::new();
        header_fields_of(&mut got, raw, &names, keep);
        prop_assert_eq!(&got, &m.section(&sec(&[], Some(text))));
        let mut from_header = Vec::new();
        header_fields_of(&mut from_header, &raw[..header.end], &names, keep);
        prop_assert_eq!(&from_header, &got);
    }
    Ok(())
}

proptest! {
    #[test]
    fn in_place_renderers_match_the_crlf_copy(raw in mimeish()) {
        same_as_copy(&raw)?;
    }

    #[test]
    fn in_place_renderers_match_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        same_as_copy(&raw)?;
    }

    #[test]
    fn lf_and_crlf_forms_render_alike(crlf in crlf_pieces()) {
        let lf = drop_cr(&crlf);
        same_as_copy(&crlf)?;
        same_as_copy(&lf)?;
        for ext in [true, false] {
            prop_assert_eq!(bs_of(&lf, ext), bs_of(&crlf, ext));
        }
        prop_assert_eq!(env_of(&lf, false), env_of(&crlf, false));
        prop_assert_eq!(crlf_size(&lf), crlf_size(&crlf));
        prop_assert_eq!(to_crlf(&lf), to_crlf(&crlf));
    }
}

/// The in-place renderers on the table messages above, in both forms.
#[test]
fn in_place_renderers_on_tables() {
    for raw in [
        rfc3501_example(),
        DOVECOT_TESTMSG.as_bytes().to_vec(),
        ALTERNATIVE.as_bytes().to_vec(),
        LF_ONLY.as_bytes().to_vec(),
    ] {
        let lf = drop_cr(&raw);
        for r in [&raw, &lf] {
            same_as_copy(r).unwrap();
        }
        assert_eq!(bs_of(&lf, true), bs_of(&raw, true));
    }
}

/// The parameter reader as it was before values were borrowed (without
/// the continuation merge, which did not change): the oracle for
/// [`tree::params`].
fn old_params(rest: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut i = 0;
    let s = rest;
    // Real headers have a handful; the cap keeps a hostile header with
    // thousands from making the continuation merge quadratic.
    while i < s.len() && raw.len() < 128 {
        // Skip to the start of a name.
        while i < s.len() && (s[i] == b';' || s[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i < s.len() && s[i] == b'(' {
            i = old_skip_comment(s, i);
            continue;
        }
        let ns = i;
        while i < s.len() && !matches!(s[i], b'=' | b';' | b'(') && !s[i].is_ascii_whitespace() {
            i += 1;
        }
        let name = &s[ns..i];
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= s.len() || s[i] != b'=' {
            // A name without a value: skip it.
            while i < s.len() && s[i] != b';' {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if i < s.len() && s[i] == b'"' {
            i += 1;
            while i < s.len() && s[i] != b'"' {
                if s[i] == b'\\' && i + 1 < s.len() {
                    i += 1;
                }
                if s[i] != b'\r' && s[i] != b'\n' {
                    value.push(s[i]);
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < s.len() && s[i] != b';' && s[i] != b'(' && !s[i].is_ascii_whitespace() {
                value.push(s[i]);
                i += 1;
            }
        }
        if !name.is_empty() {
            raw.push((name.to_vec(), value));
        }
    }
    raw
}

fn old_skip_comment(s: &[u8], mut i: usize) -> usize {
    let mut level = 0usize;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 1,
            b'(' => level += 1,
            b')' => {
                level = level.saturating_sub(1);
                if level == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Parameter-ish text: names, values quoted or not, quoted pairs, folds.
fn paramish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b";".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r\n\t".to_vec()),
        Just(b"name".to_vec()),
        Just(b"charset".to_vec()),
        Just(b"=".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"(".to_vec()),
        Just(b")".to_vec()),
        Just(b"\"quoted value\"".to_vec()),
        Just(b"\"a\\\"b\"".to_vec()),
        Just(b"\"x\r\n y\"".to_vec()),
        Just(b"utf-8".to_vec()),
        proptest::collection::vec(any::<u8>().prop_filter("no star", |c| *c != b'*'), 0..6),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn params_same_as_the_old_reader(rest in paramish()) {
        let got: Vec<(Vec<u8>, Vec<u8>)> = tree::params(&rest)
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        prop_assert_eq!(got, old_params(&rest));
    }
}

/// Issue 16: a binary part's octets are data (served and counted as
/// stored), decoded text gets CRLF line ends, quoted-printable drops the
/// blanks that end encoded lines, a part that does not exist is empty for
/// BINARY as for BODY, and a header without a blank line gets none added.
#[test]
fn binary_parts_text_lines_and_blank_lines() {
    let raw: &[u8] = b"Subject: b\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n1\n2\r3\x004\n--x\nContent-Type: text/plain\nContent-Transfer-Encoding: binary\n\nt\nu\n--x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nbGluZTEKbGluZTIK\n--x\nContent-Transfer-Encoding: quoted-printable\n\nend  \nsp=20 \nsoft=  \nx\n--x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nAGEACgBi\n--x--\n";
    let m = Message::parse(raw);
    assert_eq!(m.binary(&[1]).unwrap(), b"1\n2\r3\x004");
    assert_eq!(m.section(&sec(&[1], None)), b"1\n2\r3\x004");
    assert_eq!(m.binary_size(&[1]), Ok(7));
    assert_eq!(m.binary(&[2]).unwrap(), b"t\r\nu");
    assert_eq!(m.binary(&[3]).unwrap(), b"line1\r\nline2\r\n");
    assert_eq!(m.binary_size(&[3]), Ok(14));
    assert_eq!(m.binary(&[4]).unwrap(), b"end\r\nsp \r\nsoftx");
    // UTF-16 text holds NULs: not line-oriented, so no CR is added.
    assert_eq!(m.binary(&[5]).unwrap(), b"\0a\0\n\0b");
    assert_eq!(m.binary(&[9]), Ok(Vec::new()));
    assert_eq!(m.binary_size(&[9]), Ok(0));
    let bs = String::from_utf8_lossy(&m.body_structure(false)).into_owned();
    assert!(
        bs.starts_with(r#"(("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BINARY" 7)"#),
        "{bs}"
    );
    assert_eq!(m.bytes().len() as u64, crlf_size(raw));
    assert_eq!(bs_of(raw, false), m.body_structure(false));

    let fields = |raw: &[u8], part: &[u32], keep: bool| {
        let names = vec!["subject".to_string()];
        let t = if keep {
            SectionText::HeaderFields(names)
        } else {
            SectionText::HeaderFieldsNot(names)
        };
        String::from_utf8(Message::parse(raw).section(&sec(part, Some(t)))).unwrap()
    };
    let no_blank: &[u8] = b"From: a@b\nSubject: s\n";
    assert_eq!(fields(no_blank, &[], true), "Subject: s\r\n");
    assert_eq!(fields(no_blank, &[], false), "From: a@b\r\n");
    assert_eq!(fields(b"Subject: s", &[], true), "Subject: s\r\n");
    assert_eq!(fields(b"", &[], true), "");
    assert_eq!(fields(b"From: a@b\n\n", &[], true), "\r\n");
    assert_eq!(
        fields(b"Subject: s\n\nbody", &[], true),
        "Subject: s\r\n\r\n"
    );
    assert_eq!(fields(b"\n", &[], false), "\r\n");
    // The same from the stored bytes and from a digest of them.
    for raw in [no_blank, b"Subject: s", b"Subject: s\n\n", b"X: y\n"] {
        for keep in [true, false] {
            let mut got = Vec::new();
            header_fields_of(&mut got, raw, &["subject"], keep);
            assert_eq!(String::from_utf8(got).unwrap(), fields(raw, &[], keep));
        }
        let mut digest = Vec::new();
        header_fields_of(&mut digest, raw, &["subject", "from", "x"], true);
        let mut got = Vec::new();
        select_header_fields(&mut got, &digest, &["subject"], true);
        assert_eq!(String::from_utf8(got).unwrap(), fields(raw, &[], true));
    }
    // A message/rfc822 part whose message has no blank line: the line
    // break before the delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    let nested: &[u8] = b"Content-Type: multipart/mixed; boundary=y\n\n--y\nContent-Type: message/rfc822\n\nFrom: c@d\nSubject: in\n--y--\n";
    assert_eq!(fields(nested, &[1], true), "Subject: in\r\n");
    assert_eq!(fields(nested, &[1], false), "From: c@d\r\n");
    let m = Message::parse(nested);
    assert_eq!(
        m.section(&sec(&[1], Some(SectionText::Header))),
        b"From: c@d\r\nSubject: in"
    );
    assert_eq!(m.section(&sec(&[1], Some(SectionText::Text))), b"");
}

/// Which sections an IMAP URL may name (CATENATE, RFC 4469 §4.1): those
/// the message has, where FETCH would answer a missing one with "".
#[test]
fn has_section_table() {
    let raw = concat!(
        "Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n",
        "--b\r\nContent-Type: text/plain\r\n\r\none\r\n",
        "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntwo\r\n",
        "--b--\r\n"
    );
    let m = Message::parse(raw.as_bytes());
    let h = || Some(SectionText::Header);
    let cases = [
        (sec(&[], None), true),
        (sec(&[], h()), true),
        (sec(&[], Some(SectionText::Text)), true),
        (
            sec(&[], Some(SectionText::HeaderFields(vec!["Subject".into()]))),
            true,
        ),
        (sec(&[], Some(SectionText::Mime)), false),
        (sec(&[1], None), true),
        (sec(&[1], Some(SectionText::Mime)), true),
        (sec(&[1], h()), false),
        (sec(&[2], h()), true),
        (sec(&[2], Some(SectionText::Text)), true),
        (sec(&[2, 1], None), true),
        (sec(&[3], None), false),
        (sec(&[1, 1], None), false),
    ];
    for (section, want) in cases {
        assert_eq!(m.has_section(&section), want, "{section:?}");
    }
}
