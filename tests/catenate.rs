//! CATENATE (RFC 4469) with parts bigger than what a session keeps in memory (256 KiB,
//! `session::literal`): URL parts of a big message (whole, its TEXT, a partial range; copied
//! from the file a piece at a time), a big TEXT literal (spooled), small ones and an absolute
//! URL naming this server, in one message. The new message must be byte for byte the
//! concatenation of the parts: TEXT as sent, each URL as FETCH BODY[section] gives it.
//! The protocol forms and errors are in tests/transcripts/050-054.

mod common;

use common::{ImapClient, PASSWORD, TestServer, USER};

/// A message of about `len` bytes with bare-LF line ends (as an MTA writes them), ASCII only,
/// each line naming itself, so a byte out of place shows.
fn lf_message(len: usize) -> Vec<u8> {
    let mut m =
        b"From: big@example.org\nSubject: source\nMessage-ID: <src@example.org>\n\n".to_vec();
    let mut n = 0u64;
    while m.len() < len {
        m.extend_from_slice(format!("line {n:08} {}\n", "0123456789".repeat(7)).as_bytes());
        n += 1;
    }
    m
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 40);
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

/// Reads until the line tagged `tag`; returns it without the tag.
fn tagged(c: &mut ImapClient, tag: &str) -> String {
    loop {
        let line = c.read_line().expect("connection closed");
        if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
            return rest.to_string();
        }
    }
}

/// Sends a command given as lines (each but the last ending in a synchronizing literal's
/// announcement) alternating with those literals' bytes, waiting for each `+`.
fn send_with_literals(c: &mut ImapClient, pieces: &[&[u8]]) {
    for (i, p) in pieces.iter().enumerate() {
        c.send_raw(p);
        if i % 2 == 0 && i + 1 < pieces.len() {
            let plus = c
                .read_line()
                .unwrap_or_else(|| panic!("no continuation after piece {i}"));
            assert!(plus.starts_with('+'), "wanted +, got {plus}");
        }
    }
}

/// The bytes of the one literal in a FETCH response line.
fn literal_of(line: &str) -> Vec<u8> {
    let open = line.find("}\r\n").expect("a literal");
    let start = open + 3;
    let size: usize = line[line[..open].rfind('{').expect("{") + 1..open]
        .parse()
        .expect("size");
    line.as_bytes()[start..start + size].to_vec()
}

fn fetch(c: &mut ImapClient, what: &str) -> Vec<u8> {
    let lines = c.ok(&format!("UID FETCH {what}"));
    assert_eq!(lines.len(), 1, "{what}: {lines:?}");
    literal_of(&lines[0])
}

#[test]
fn big_parts_are_catenated_byte_exactly() {
    let server = TestServer::start();
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    c.ok("CREATE Drafts");
    let src = lf_message(600 * 1024);
    let head = format!("t1 APPEND INBOX {{{}}}\r\n", src.len());
    c.send_raw(head.as_bytes());
    let plus = c.read_line();
    assert!(
        plus.as_deref().is_some_and(|p| p.starts_with('+')),
        "{plus:?} {}",
        server.log()
    );
    c.send_raw(&src);
    c.send_raw(b"\r\n");
    let st = tagged(&mut c, "t1");
    assert!(st.starts_with("OK [APPENDUID "), "{st}");
    let uid: u32 = st
        .split_whitespace()
        .nth(3)
        .and_then(|u| u.trim_end_matches(']').parse().ok())
        .expect("uid");

    let text1 = b"Subject: catenated\r\nX-Test: yes\r\n\r\n".to_vec();
    let text2: Vec<u8> = (0..300 * 1024)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz\r\n"[i % 28])
        .collect();
    let host = server.hostname();
    let line1 = format!("t2 APPEND Drafts CATENATE (TEXT {{{}}}\r\n", text1.len());
    let line2 = format!(
        " URL \"/INBOX/;UID={uid}/;SECTION=TEXT\" TEXT {{{}}}\r\n",
        text2.len()
    );
    let line3 = format!(
        " URL \"/INBOX;UIDVALIDITY=0/;UID={uid}\" URL \"/INBOX/;UID={uid}/;SECTION=TEXT/;PARTIAL=1000.70000\" \
         URL \"imap://{USER}@{host}/INBOX/;UID={uid}/;SECTION=HEADER\")\r\n"
    );
    // UIDVALIDITY=0 is no nz-number: BADURL, and nothing saved.
    send_with_literals(
        &mut c,
        &[
            line1.as_bytes(),
            &text1,
            line2.as_bytes(),
            &text2,
            line3.as_bytes(),
        ],
    );
    let st = tagged(&mut c, "t2");
    assert!(
        st.starts_with("NO [BADURL /INBOX;UIDVALIDITY=0/;UID="),
        "{st}"
    );
    let status = c.ok("STATUS Drafts (MESSAGES)");
    assert!(status[0].ends_with("(MESSAGES 0)"), "{status:?}");

    let status = c.ok("STATUS INBOX (UIDVALIDITY)");
    let validity = status[0]
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .expect("uidvalidity")
        .to_string();
    let line3 = line3.replace("UIDVALIDITY=0", &format!("UIDVALIDITY={validity}"));
    let line1 = line1.replace("t2 ", "t3 ");
    send_with_literals(
        &mut c,
        &[
            line1.as_bytes(),
            &text1,
            line2.as_bytes(),
            &text2,
            line3.as_bytes(),
        ],
    );
    let st = tagged(&mut c, "t3");
    assert!(st.starts_with("OK [APPENDUID "), "{st}");

    c.ok("SELECT INBOX");
    let body_text = fetch(&mut c, &format!("{uid} BODY.PEEK[TEXT]"));
    let whole = fetch(&mut c, &format!("{uid} BODY.PEEK[]"));
    let header = fetch(&mut c, &format!("{uid} BODY.PEEK[HEADER]"));
    assert_eq!(whole, crlf(&src), "FETCH BODY[] of the source");
    assert!(body_text.len() > 256 * 1024);
    let mut want = text1.clone();
    want.extend_from_slice(&body_text);
    want.extend_from_slice(&text2);
    want.extend_from_slice(&whole);
    want.extend_from_slice(&body_text[1000..71000]);
    want.extend_from_slice(&header);

    c.ok("SELECT Drafts");
    let got = fetch(&mut c, "1 BODY.PEEK[]");
    assert_eq!(got.len(), want.len(), "size");
    assert!(
        got == want,
        "the new message is not the concatenation of its parts"
    );
    let size = c.ok("UID FETCH 1 RFC822.SIZE");
    assert!(
        size[0].contains(&format!("RFC822.SIZE {})", want.len())),
        "{size:?}"
    );
    // Reading the source for CATENATE set no flag on it.
    c.ok("SELECT INBOX");
    let flags = c.ok(&format!("UID FETCH {uid} FLAGS"));
    assert!(!flags[0].contains("\\Seen"), "{flags:?}");
}

/// A TEXT literal too big to keep in memory goes to the spool; a NUL in it is still the
/// client's error unless it came as a literal8 (RFC 3516), as for one kept in the command.
#[test]
fn a_spooled_text_part_with_nul_needs_literal8() {
    let server = TestServer::start();
    let mut c = ImapClient::login(&server, USER, PASSWORD);
    let mut text = b"Subject: nul\r\n\r\n".to_vec();
    text.resize(300 * 1024, b'x');
    text[200 * 1024] = 0;
    for (tag, tilde, want) in [("t1", "", "BAD"), ("t2", "~", "OK [APPENDUID ")] {
        let line = format!(
            "{tag} APPEND INBOX CATENATE (TEXT {tilde}{{{}}}\r\n",
            text.len()
        );
        send_with_literals(&mut c, &[line.as_bytes(), &text, b")\r\n"]);
        let st = tagged(&mut c, tag);
        assert!(st.starts_with(want), "{tag}: {st}");
    }
    let status = c.ok("STATUS INBOX (MESSAGES)");
    assert!(status[0].ends_with("(MESSAGES 1)"), "{status:?}");
    c.ok("SELECT INBOX");
    let lines = c.ok("FETCH 1 BINARY.PEEK[]");
    assert!(
        lines[0].contains(&format!("~{{{}}}", text.len())),
        "a literal8 of the bytes"
    );
}
