//! Message content for FETCH and SEARCH: parse a stored message once and
//! render ENVELOPE, BODYSTRUCTURE, body sections and BINARY parts, all in
//! the CRLF form IMAP counts in. Pure: bytes in, bytes out; no I/O, no
//! clocks, and it must never panic or loop on hostile input (every range is
//! bounds-checked, nesting is capped at `message::tree::MAX_DEPTH`).
//!
//! # What is ours and what is mailparse's
//!
//! FETCH BODY[1.2.MIME] needs the exact byte offsets of every part's header
//! and body, and BODYSTRUCTURE needs parameters in their written order with
//! their encodings intact. `mailparse::parse_mail` gives neither (it exposes
//! decoded values, sorted parameter maps, and no offsets of the header
//! block), so the part tree (`message::tree`), header-field splitting,
//! parameter lists and the ENVELOPE address parser (`envelope`) are ours.
//! mailparse is used where its decoded view is what is wanted: RFC 2047
//! decoding and unfolding of header values for SEARCH (`MailHeader::
//! get_value`). Transfer decoding (`decode`) is ours so that it is
//! lenient and writes into reused buffers.
//!
//! The tree parser accepts LF or CRLF line ends, so SEARCH parses the
//! stored bytes in place (no per-message copy), and so do the renderers a
//! cold `FETCH 1:* (ENVELOPE BODYSTRUCTURE)` runs per message
//! ([`envelope_of`], [`body_structure_of`], [`header_fields_of`]): they
//! count sizes in CRLF terms (`message::crlf`) and read the few values
//! whose parsing treats CR and LF differently in their CRLF form, so they
//! give exactly what [`Message::parse`] gives. That one first normalises the whole
//! message to CRLF, because body sections are served from it and every
//! offset it reports must be the IMAP one.
//!
//! What "CRLF form" means for a message with binary parts is the rule of
//! `message::kept`: every bare LF becomes CRLF except inside the body of a
//! non-text part whose Content-Transfer-Encoding is `binary`, which is data
//! and is served and counted as stored (RFC 2045 §2.9, RFC 3516 §4.3); see
//! that module for why. Outside BINARY a literal never carries NUL (RFC 9051
//! §4.3): FETCH sends it as 0x80 (`session::cmd::fetch::render::literal`).
//!
//! Layout: the part tree, the served (CRLF) form and RFC822.SIZE are
//! [`crate::message`]'s (`crlf`, `kept`, `tree`), a leaf the store uses
//! too (its doc says why they are not here); this module renders from
//! them: `envelope`, `structure` (BODY/BODYSTRUCTURE), `decode` (base64,
//! quoted-printable), `preview` (RFC 8970), `search_text` (the content
//! side of SEARCH, used by `session::search`), `subject` (RFC 5256 base
//! subject) and `collate` (i;unicode-casemap), which SORT and THREAD
//! compare with. Strings are encoded with
//! `proto::encode`.
use std::ops::Range;

use crate::proto::{Section, SectionText};

pub(crate) mod collate;
mod decode;
mod envelope;
mod preview;
pub(crate) mod search_text;
mod structure;
pub(crate) mod subject;

use crate::message::tree::{Cte, Kind, Part};
use crate::message::{crlf, kept, tree};

/// A parsed message. Holds the CRLF-normalised bytes and the MIME part tree
/// (offsets into those bytes).
pub struct Message {
    data: Vec<u8>,
    root: Part,
    /// The bodies of binary parts, served as stored (`kept`).
    kept: kept::Kept,
}

/// Why `BINARY[part]` cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// The part's Content-Transfer-Encoding is unknown: `NO [UNKNOWN-CTE]`.
    UnknownCte,
}

pub(crate) use envelope::first_address;

/// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT of a CRLF header block,
/// appended to `out`: the matching fields in their order, then the blank
/// line if the block has one. Works on the block as it is, so a cached
/// header digest (made by [`header_fields_of`], which keeps the blank line
/// only when the message has one) is answered without parsing a message
/// around it.
pub fn select_header_fields<S: AsRef<str>>(
    out: &mut Vec<u8>,
    block: &[u8],
    names: &[S],
    keep: bool,
) {
    write_header_fields(out, block, 0..block.len(), names, keep);
}

/// [`select_header_fields`] for the top-level header of a message, or of a
/// header block alone, in its stored form (LF or CRLF line ends). The
/// fields come out in CRLF form, exactly as from `Message::parse(raw)`.
pub fn header_fields_of<S: AsRef<str>>(out: &mut Vec<u8>, raw: &[u8], names: &[S], keep: bool) {
    let (header, _) = tree::split_header(raw, 0..raw.len());
    write_header_fields(out, raw, header, names, keep);
}

fn write_header_fields<S: AsRef<str>>(
    out: &mut Vec<u8>,
    data: &[u8],
    header: Range<usize>,
    names: &[S],
    keep: bool,
) {
    for f in tree::fields(data, header.clone()) {
        select_field(out, &f, names, keep);
    }
    end_header(out, data, header);
}

/// The blank line after selected header fields, when the header block
/// `data[header]` ends with one. RFC 9051 §6.4.5: "the blank line is
/// always included as part of the header data, except in the case of a
/// message that has no body and no blank line" (a header block without a
/// blank line ends the message, or its part before a multipart delimiter).
/// Dovecot adds it to HEADER.FIELDS even then (not to HEADER.FIELDS.NOT).
fn end_header(out: &mut Vec<u8>, data: &[u8], header: Range<usize>) {
    let h = data.get(header).unwrap_or_default();
    let blank = matches!(h, b"\n" | b"\r\n") || h.ends_with(b"\n\n") || h.ends_with(b"\n\r\n");
    if blank {
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends field `f` (in CRLF form) if it is `listed` in `names` == `keep`.
fn select_field<S: AsRef<str>>(out: &mut Vec<u8>, f: &tree::Field<'_>, names: &[S], keep: bool) {
    let listed = names.iter().any(|n| f.is(n.as_ref().as_bytes()));
    if listed == keep {
        // A field never starts with a line break, so converting it alone
        // gives its bytes in the CRLF form of the message.
        crlf::append_crlf(out, f.raw);
        if !f.raw.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// [`envelope_of`] into `env` and [`header_fields_of`] (`names`, kept) into
/// `selected`, in one pass over the message's header: what a cold FETCH
/// ENVELOPE renders (and caches) for every message.
pub fn envelope_and_fields_of<S: AsRef<str>>(
    env: &mut Vec<u8>,
    selected: &mut Vec<u8>,
    raw: &[u8],
    names: &[S],
    utf8: bool,
) {
    let (header, _) = tree::split_header(raw, 0..raw.len());
    let mut found = envelope::Found::default();
    for f in tree::fields(raw, header.clone()) {
        found.offer(&f);
        select_field(selected, &f, names, true);
    }
    end_header(selected, raw, header);
    found.write(env, utf8);
}

/// The header block of a message (up to and including the blank line that
/// ends it; all of `raw` when none does), in whatever form `raw` is.
pub fn header_block(raw: &[u8]) -> &[u8] {
    let (header, _) = tree::split_header(raw, 0..raw.len());
    raw.get(header).unwrap_or_default()
}

/// The encoded BODYSTRUCTURE (`extensible`) or BODY of a message in its
/// stored form: the same bytes as `Message::parse(raw).body_structure(..)`,
/// without the CRLF copy of the whole message (sizes are counted in CRLF
/// terms on the stored bytes). What a cold `FETCH 1:* BODYSTRUCTURE` runs
/// for every message.
/// Appends to `out`, where the response is being built.
pub fn body_structure_of(out: &mut Vec<u8>, raw: &[u8], extensible: bool) {
    let root = tree::parse_message(raw);
    let kept = kept::Kept::from_tree(&root);
    structure::write(out, raw, &root, &kept, extensible);
}

/// The encoded ENVELOPE of a message, or of its header block alone, in its
/// stored form: the same bytes as `Message::parse(raw).envelope(utf8)`
/// without a copy or a MIME parse (only the top-level header is read).
/// Appends to `out`, where the response is being built.
pub fn envelope_of(out: &mut Vec<u8>, raw: &[u8], utf8: bool) {
    let (header, _) = tree::split_header(raw, 0..raw.len());
    envelope::write(out, raw, header, utf8);
}

/// Which part a path names and where further path elements look.
enum Scope<'a> {
    /// Inside a message: part 1 of a non-multipart message is its body.
    Message(&'a Part),
    Multipart(&'a [Part]),
    Leaf,
}

impl<'a> Scope<'a> {
    fn of(p: &'a Part) -> Scope<'a> {
        match &p.kind {
            Kind::Multipart(ch) => Scope::Multipart(ch),
            Kind::Message(inner) => Scope::Message(inner),
            Kind::Leaf => Scope::Leaf,
        }
    }
}

/// The part `path` names (RFC 9051 §6.4.5 part numbering), starting from a
/// message root. An empty path names nothing here; callers treat it as the
/// whole message.
fn find<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let mut scope = Scope::Message(root);
    let mut found = None;
    for &n in path {
        let idx = usize::try_from(n).ok()?.checked_sub(1)?;
        let p = match scope {
            Scope::Message(m) => match &m.kind {
                Kind::Multipart(ch) => ch.get(idx)?,
                _ if idx == 0 => m,
                _ => return None,
            },
            Scope::Multipart(ch) => ch.get(idx)?,
            Scope::Leaf => return None,
        };
        scope = Scope::of(p);
        found = Some(p);
    }
    found
}

impl Message {
    /// Never fails: broken MIME degrades to a single text/plain part.
    pub fn parse(raw: &[u8]) -> Message {
        let data = kept::to_crlf(raw);
        let root = tree::parse_message(&data);
        // The same parts as in `raw`, at their served offsets.
        let kept = kept::Kept::from_tree(&root);
        Message { data, root, kept }
    }

    /// The whole message in served form (`BODY[]`, `RFC822`): CRLF line
    /// ends, binary parts as stored (`kept`).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The encoded ENVELOPE list. `utf8`: raw UTF-8 allowed in strings
    /// (UTF8=ACCEPT enabled); otherwise 8-bit header bytes force literals.
    /// Tests only: FETCH renders [`envelope_of`] on the stored bytes, and
    /// the tests check it against this, the parsed message's envelope.
    #[cfg(test)]
    pub fn envelope(&self, utf8: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        envelope::write(&mut out, &self.data, self.root.header.clone(), utf8);
        out
    }

    /// The encoded BODYSTRUCTURE (`extensible`) or BODY (`!extensible`).
    pub fn body_structure(&self, extensible: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        structure::write(&mut out, &self.data, &self.root, &self.kept, extensible);
        out
    }

    fn slice(&self, r: Range<usize>) -> &[u8] {
        self.data.get(r).unwrap_or_default()
    }

    /// The bytes of `BODY[section]` before any partial. A part that does not
    /// exist yields an empty vector: RFC 9051 §6.4.5 leaves this to the
    /// server, empty is what Dovecot returns, and a NO would fail a whole
    /// `FETCH 1:* BODY[2]` for one message without a second part. BINARY
    /// answers the same ([`Message::binary`]).
    pub fn section(&self, section: &Section) -> Vec<u8> {
        // The message whose header/text the specifier addresses.
        let msg: &Part = if section.part.is_empty() {
            &self.root
        } else {
            let Some(p) = find(&self.root, &section.part) else {
                return Vec::new();
            };
            match (&section.text, &p.kind) {
                (None, _) => return self.slice(p.body.clone()).to_vec(),
                (Some(SectionText::Mime), _) => return self.slice(p.header.clone()).to_vec(),
                (Some(_), Kind::Message(inner)) => inner,
                // HEADER/TEXT of a part that is not a message/rfc822.
                (Some(_), _) => return Vec::new(),
            }
        };
        match &section.text {
            None => {
                let r = msg.header.start..msg.body.end;
                self.slice(r).to_vec()
            }
            Some(SectionText::Header) => self.slice(msg.header.clone()).to_vec(),
            Some(SectionText::Text) => self.slice(msg.body.clone()).to_vec(),
            Some(SectionText::HeaderFields(names)) => self.header_fields(msg, names, true),
            Some(SectionText::HeaderFieldsNot(names)) => self.header_fields(msg, names, false),
            // `MIME` needs a part number (the grammar forbids it alone).
            Some(SectionText::Mime) => Vec::new(),
        }
    }

    /// Whether `section` names something in this message: FETCH answers a
    /// missing part with an empty string ([`Message::section`]), but an
    /// IMAP URL naming one is invalid (RFC 4469 §4.1 "invalid body part").
    /// HEADER, TEXT and their fields exist for the message itself and for
    /// a part that is a message/rfc822; MIME and the body for any part.
    pub fn has_section(&self, section: &Section) -> bool {
        if section.part.is_empty() {
            return !matches!(section.text, Some(SectionText::Mime));
        }
        match (find(&self.root, &section.part), &section.text) {
            (None, _) => false,
            (Some(_), None | Some(SectionText::Mime)) => true,
            (Some(p), Some(_)) => matches!(p.kind, Kind::Message(_)),
        }
    }

    /// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT: the matching fields in
    /// message order, then the blank line (RFC 9051 §6.4.5).
    fn header_fields(&self, msg: &Part, names: &[String], keep: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_header_fields(&mut out, &self.data, msg.header.clone(), names, keep);
        out
    }

    /// The part BINARY addresses, its encoding, and whether it is text
    /// (line-oriented: its decoded form gets CRLF line ends). The empty
    /// path is the whole message, sent as it is; a part that does not exist
    /// is empty, as for `BODY[9]` ([`Message::section`]).
    fn binary_part(&self, part: &[u32]) -> (&[u8], Cte, bool) {
        if part.is_empty() {
            return (&self.data, Cte::Binary, false);
        }
        let Some(p) = find(&self.root, part) else {
            return (&[], Cte::Binary, false);
        };
        let cte = match p.kind {
            // A multipart or message body is not itself encoded.
            Kind::Leaf => p.cte,
            _ => Cte::Binary,
        };
        (self.slice(p.body.clone()), cte, p.is_text())
    }

    /// `BINARY[part]`: the part's content with its transfer encoding undone.
    ///
    /// Identity encodings give the served bytes (a binary non-text part as
    /// stored, `kept`). Decoded text/* content gets CRLF line ends (RFC
    /// 3516 §4.3, RFC 9051 §7.5.2: textual sections MUST be sent with CRLF
    /// "regardless of the underlying storage representation"; a base64
    /// text written on Unix holds bare LFs), unless it holds a NUL: then it
    /// is not line-oriented 8-bit text (UTF-16, say) and an added CR would
    /// corrupt it. Dovecot sends decoded text as decoded.
    pub fn binary(&self, part: &[u32]) -> Result<Vec<u8>, BinaryError> {
        let (body, cte, text) = self.binary_part(part);
        let mut out = Vec::new();
        match cte {
            Cte::SevenBit | Cte::EightBit | Cte::Binary => {
                out.extend_from_slice(body);
                return Ok(out);
            }
            Cte::Base64 => decode::base64(body, &mut out),
            Cte::QuotedPrintable => decode::quoted_printable(body, &mut out),
            Cte::Unknown => return Err(BinaryError::UnknownCte),
        }
        if text && memchr::memchr(0, &out).is_none() && crlf::line_ends(&out, 0..out.len()).1 > 0 {
            out = crlf::to_crlf(&out);
        }
        Ok(out)
    }

    /// The RFC 8970 PREVIEW text (possibly empty): up to 200 characters
    /// of the first plain-text (else HTML) part, decoded to UTF-8 with
    /// white space collapsed. The caller encodes it as an `nstring`.
    /// FETCH PREVIEW renders it once per message and keeps it in the
    /// folder's cache (`session::cmd::fetch::render`).
    pub fn preview(&self) -> String {
        preview::preview(&self.data, &self.root)
    }

    /// `BINARY.SIZE[part]`: the size of what [`Message::binary`] returns.
    pub fn binary_size(&self, part: &[u32]) -> Result<u64, BinaryError> {
        let (body, cte, _) = self.binary_part(part);
        match cte {
            Cte::SevenBit | Cte::EightBit | Cte::Binary => Ok(body.len() as u64),
            Cte::Unknown => Err(BinaryError::UnknownCte),
            Cte::Base64 | Cte::QuotedPrintable => self.binary(part).map(|v| v.len() as u64),
        }
    }
}

#[cfg(test)]
mod tests;
