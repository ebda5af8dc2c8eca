//! One message's FETCH response: each item rendered from the store's
//! cache, the header block, or the message file read once (`Lazy`); for a
//! big message rendered alone, whole and text bodies (and a header too
//! long to read whole) left as holes for `stream` to fill from the file.
//! The digest of common header fields kept in the cache is
//! `session::digest`'s.
//!
//! Owns the bytes of each item; never decides which messages go in which
//! chunk or how much is rendered ahead (the parent module does).

use crate::proto::response::Code;
use std::sync::Arc;

use chrono::TimeZone;

use super::stream::{self, FileLiteral, Scan};
use super::{Mode, Target, sends_body};
use crate::mime::{BinaryError, Message};
use crate::proto::data::{self, FetchItem};
use crate::proto::{FetchAttr, Section, SectionText, encode};
use crate::session::Status;
use crate::session::digest::{COMMON_HEADERS, common_digest, digest_of, from_common_headers};
use crate::store::{
    CacheField, Folder, HeaderBlock, MessageFile, MessageMeta, ObjectInfo, StoreError,
};

/// Where [`render_one`] renders to: the chunk's bytes, and the literals
/// left to be sent from files.
pub(super) struct Sink<'a> {
    pub(super) out: &'a mut Vec<u8>,
    pub(super) holes: &'a mut Vec<(usize, FileLiteral)>,
}

/// `{n}\r\n` for a literal sent from a file, and a hole where it goes.
pub(super) fn file_literal(
    out: &mut Vec<u8>,
    holes: &mut Vec<(usize, FileLiteral)>,
    lit: FileLiteral,
) {
    encode::literal_prefix(out, lit.len, false);
    holes.push((out.len(), lit));
}

/// The literal of `size` bytes of the file from `start`, cut as
/// [`partial_slice`] cuts.
pub(super) fn window(
    file: &Arc<MessageFile>,
    start: u64,
    size: u64,
    partial: Option<(u32, u32)>,
) -> FileLiteral {
    let (skip, len) = match partial {
        None => (0, size),
        Some((off, len)) => {
            let skip = u64::from(off).min(size);
            (skip, u64::from(len).min(size - skip))
        }
    };
    FileLiteral {
        file: file.clone(),
        start,
        skip,
        len,
        string: true,
    }
}

/// What the cache held for one message, looked up for the whole chunk.
pub(super) struct Cached {
    pub(super) envelope: Option<Arc<[u8]>>,
    pub(super) structure: Option<Arc<[u8]>>,
    pub(super) body: Option<Arc<[u8]>>,
    pub(super) common: Option<Arc<[u8]>>,
    pub(super) preview: Option<Arc<[u8]>>,
    /// EMAILID and save date, when asked for.
    pub(super) object: Option<ObjectInfo>,
}

/// How much of a big message (one sent from its file) PREVIEW reads: its
/// first text part starts well within this, and the preview needs only
/// the start of that part (`mime::preview` decodes at most 16 KiB).
const PREVIEW_READ: usize = 64 * 1024;

/// The PREVIEW text of a message: from the message already read whole,
/// else from the first [`PREVIEW_READ`] bytes of a big one's file; cached.
fn preview_of(lazy: &mut Lazy<'_>) -> Result<Arc<[u8]>, RenderError> {
    let text = if lazy.stream && lazy.msg.is_none() {
        let (f, _) = lazy.scanned()?;
        let mut buf = vec![0; PREVIEW_READ];
        let n = f.read_full(&mut buf, 0).map_err(StoreError::Io)?;
        buf.truncate(n);
        Message::parse(&buf).preview()
    } else {
        lazy.get()?.preview()
    };
    let data: Arc<[u8]> = Arc::from(text.as_bytes());
    lazy.folder
        .put_cache(lazy.uid, CacheField::Preview, data.clone());
    Ok(data)
}

pub(super) enum RenderError {
    /// The file vanished while we rendered: skip this message.
    Gone,
    /// The message must be read whole and is too big to be, here: the
    /// caller renders it alone.
    Big,
    Status(Status),
}

impl From<StoreError> for RenderError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Expunged | StoreError::NotFound => RenderError::Gone,
            e => RenderError::Status(e.into()),
        }
    }
}

/// Loads and parses the message at most once per FETCH item list; items
/// that need only the header block (ENVELOPE, `BODY[HEADER...]`) read only
/// that much of the file, unless the whole file is read for this message
/// anyway (`whole`), and then it is read once for all items.
pub(super) struct Lazy<'a> {
    folder: &'a Folder,
    uid: u32,
    /// Read the whole file even for header items: another item needs it.
    whole: bool,
    /// The file as stored, and its RFC822.SIZE.
    raw: Option<(Arc<Vec<u8>>, u64)>,
    /// The header block as stored (when the whole file was not read), or
    /// only its start when the store cut it (see `Folder::read_header`).
    head: Option<HeaderBlock>,
    /// The CRLF copy with its part tree, for body sections.
    msg: Option<Message>,
    /// Parsed from the header block alone (no body).
    header: Option<Message>,
    /// A big message rendered alone: whole and text bodies are sent from
    /// the file, never read whole.
    stream: bool,
    /// Its file, open, and what a pass over it told.
    file: Option<(Arc<MessageFile>, Scan)>,
}

impl Lazy<'_> {
    /// The open file of a big message and its sizes, found once.
    fn scanned(&mut self) -> Result<(Arc<MessageFile>, Scan), RenderError> {
        if let Some((f, scan)) = &self.file {
            return Ok((f.clone(), *scan));
        }
        let f = Arc::new(self.folder.open_message(self.uid)?);
        let scan = stream::scan(&f).map_err(StoreError::Io)?;
        self.file = Some((f.clone(), scan));
        Ok((f, scan))
    }

    /// The message file as stored, read once.
    fn raw(&mut self) -> Result<&[u8], RenderError> {
        if self.raw.is_none() {
            self.raw = Some(self.folder.read_message_sized(self.uid)?);
        }
        Ok(self.raw.as_ref().map_or(&[][..], |(r, _)| &r[..]))
    }

    /// RFC822.SIZE, from reading the file when the store does not know it.
    fn size(&mut self) -> Result<u64, RenderError> {
        self.raw()?;
        Ok(self.raw.as_ref().map_or(0, |r| r.1))
    }

    fn get(&mut self) -> Result<&Message, RenderError> {
        if self.msg.is_none() {
            self.msg = Some(Message::parse(self.raw()?));
        }
        // Just filled above.
        self.msg.as_ref().ok_or(RenderError::Gone)
    }

    /// Bytes that start with the message's header block, as stored or in
    /// CRLF form: what ENVELOPE and the header digest are rendered from.
    fn head(&mut self) -> Result<&[u8], RenderError> {
        if self.whole && self.raw.is_none() && self.msg.is_none() {
            self.raw()?;
        }
        if let Some((raw, _)) = &self.raw {
            return Ok(raw);
        }
        if let Some(m) = &self.msg {
            return Ok(m.bytes());
        }
        if self.head.is_none() {
            self.head = Some(self.folder.read_header(self.uid)?);
        }
        Ok(self.head.as_ref().map_or(&[][..], |h| &h.bytes[..]))
    }

    /// Whether [`Lazy::head`] and [`Lazy::header`] hold only the start of
    /// a header too long to read whole: then its exact bytes are sent from
    /// the file ([`header_literal`]).
    fn header_cut(&mut self) -> Result<bool, RenderError> {
        self.head()?;
        Ok(self.head.as_ref().is_some_and(|h| h.cut))
    }

    /// A message parsed from the header block only: everything about its
    /// top-level header is the same as for the whole message.
    fn header(&mut self) -> Result<&Message, RenderError> {
        if self.msg.is_some() {
            return self.get();
        }
        if self.header.is_none() {
            let m = Message::parse(crate::mime::header_block(self.head()?));
            self.header = Some(m);
        }
        self.header.as_ref().ok_or(RenderError::Gone)
    }
}

/// The digest of common header fields: as looked up for the chunk, else
/// from the header already parsed for another item, else from the store.
pub(super) fn common_headers(
    lazy: &mut Lazy<'_>,
    cached: Option<Arc<[u8]>>,
) -> Result<Arc<[u8]>, RenderError> {
    if let Some(c) = cached {
        return Ok(c);
    }
    if lazy.header.is_none() && lazy.head.is_none() && lazy.raw.is_none() && lazy.msg.is_none() {
        return Ok(common_digest(lazy.folder, lazy.uid)?);
    }
    let digest = digest_of(lazy.head()?);
    lazy.folder
        .put_cache(lazy.uid, CacheField::CommonHeaders, digest.clone());
    Ok(digest)
}

/// The whole message in CRLF form, without parsing its MIME structure
/// unless that was done already for another item.
pub(super) fn whole_message<'a>(
    lazy: &'a mut Lazy<'_>,
) -> Result<std::borrow::Cow<'a, [u8]>, RenderError> {
    if lazy.msg.is_some() {
        return Ok(std::borrow::Cow::Borrowed(lazy.get()?.bytes()));
    }
    Ok(std::borrow::Cow::Owned(crate::message::to_crlf(
        lazy.raw()?,
    )))
}

/// The top-level header (`BODY[HEADER]`, `RFC822.HEADER`) of a message
/// whose header the store cut (see `Folder::read_header`): its exact bytes
/// are sent from the file as a hole, as a big body is, never held whole.
/// False when the header was read whole (the caller renders it); `Big`
/// when it must be but the message is not rendered alone.
fn header_literal(
    out: &mut Vec<u8>,
    holes: &mut Vec<(usize, FileLiteral)>,
    lazy: &mut Lazy<'_>,
    mode: Mode,
    partial: Option<(u32, u32)>,
) -> Result<bool, RenderError> {
    if !lazy.header_cut()? {
        return Ok(false);
    }
    if !mode.alone {
        return Err(RenderError::Big);
    }
    let (f, scan) = lazy.scanned()?;
    file_literal(out, holes, window(&f, 0, scan.total - scan.text, partial));
    Ok(true)
}

/// True if the section is the top-level header (or some of its fields).
pub(super) fn header_only(section: &Section) -> bool {
    section.part.is_empty()
        && matches!(
            section.text,
            Some(
                SectionText::Header
                    | SectionText::HeaderFields(_)
                    | SectionText::HeaderFieldsNot(_)
            )
        )
}

pub(super) fn partial_slice(data: &[u8], partial: Option<(u32, u32)>) -> &[u8] {
    match partial {
        None => data,
        Some((off, len)) => {
            let start = (off as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            &data[start..end]
        }
    }
}

pub(super) fn section_spec(section: &Section) -> String {
    let mut s: Vec<String> = section.part.iter().map(|p| p.to_string()).collect();
    let text = match &section.text {
        None => None,
        Some(SectionText::Header) => Some("HEADER".to_string()),
        Some(SectionText::Text) => Some("TEXT".to_string()),
        Some(SectionText::Mime) => Some("MIME".to_string()),
        Some(SectionText::HeaderFields(f)) => Some(format!("HEADER.FIELDS ({})", f.join(" "))),
        Some(SectionText::HeaderFieldsNot(f)) => {
            Some(format!("HEADER.FIELDS.NOT ({})", f.join(" ")))
        }
    };
    if let Some(t) = text {
        s.push(t);
    }
    s.join(".")
}

/// BODYSTRUCTURE (`extensible`) or BODY, from the cache or rendered (and
/// cached): from the stored bytes, unless the CRLF copy exists already.
pub(super) fn structure_of(
    out: &mut Vec<u8>,
    lazy: &mut Lazy<'_>,
    cached: Option<Arc<[u8]>>,
    extensible: bool,
) -> Result<(), RenderError> {
    if let Some(c) = cached {
        out.extend_from_slice(&c);
        return Ok(());
    }
    // Rendered into the response and copied from there into the cache.
    let mark = out.len();
    match &lazy.msg {
        Some(m) => out.extend_from_slice(&m.body_structure(extensible)),
        None => crate::mime::body_structure_of(out, lazy.raw()?, extensible),
    }
    let data: Arc<[u8]> = out[mark..].into();
    let field = if extensible {
        CacheField::BodyStructure
    } else {
        CacheField::Body
    };
    lazy.folder.put_cache(lazy.uid, field, data);
    Ok(())
}

/// Renders one message's response. A message that must be read whole and
/// is bigger than [`BIG`] gives [`RenderError::Big`] unless rendered alone;
/// alone, its whole and text bodies become holes in `to`.
#[allow(clippy::too_many_arguments)]
pub(super) fn render_one(
    to: Sink<'_>,
    folder: &Folder,
    meta: &MessageMeta,
    t: &Target,
    items: &[FetchAttr],
    labels: &[String],
    mut pre: Cached,
    mode: Mode,
) -> Result<(), RenderError> {
    use std::io::Write;
    let Sink { out, holes } = to;
    // Must the file be read whole, and is it too big for that?
    let needs_whole = items.iter().any(|i| match i {
        FetchAttr::Rfc822Size => meta.size.is_none(),
        FetchAttr::BodyStructure => pre.structure.is_none(),
        FetchAttr::Body => pre.body.is_none(),
        FetchAttr::BinarySize { .. } => true,
        FetchAttr::Preview { lazy: false } => pre.preview.is_none(),
        i => sends_body(i),
    });
    let mut raw = None;
    let mut stream = false;
    if needs_whole {
        match meta.size {
            Some(size) => stream = size > mode.big,
            // One open: read whole when small, else not at all.
            None => match folder.read_message_within(t.uid, mode.big)? {
                Some(r) => raw = Some(r),
                None => stream = true,
            },
        }
    }
    if stream && !mode.alone {
        return Err(RenderError::Big);
    }
    data::fetch_open(out, t.seq);
    // Whether some item reads the whole file anyway: then header items
    // take their header from it rather than reading the file twice.
    let whole = items.iter().any(|i| match i {
        FetchAttr::Rfc822Size => meta.size.is_none() && !stream,
        FetchAttr::BodyStructure => pre.structure.is_none(),
        FetchAttr::Body => pre.body.is_none(),
        FetchAttr::Preview { lazy: false } => pre.preview.is_none() && !stream,
        _ => false,
    });
    let mut lazy = Lazy {
        folder,
        uid: t.uid,
        whole,
        raw,
        head: None,
        msg: None,
        header: None,
        stream,
        file: None,
    };
    if lazy.stream && lazy.scanned()?.1.maybe_binary {
        // A binary part is served as stored, which the piecewise
        // conversion does not know: this message (one at a time, alone)
        // is read whole, as sections that need its MIME structure are.
        lazy.stream = false;
    }
    let mut first = true;
    let mut wrote_flags = false;
    for (item, label) in items.iter().zip(labels) {
        if !first {
            out.push(b' ');
        }
        first = false;
        match item {
            FetchAttr::Uid => data::fetch_item(out, &FetchItem::Uid(t.uid)),
            FetchAttr::Flags => {
                data::fetch_item(out, &flags_item(meta, t));
                wrote_flags = true;
            }
            FetchAttr::InternalDate => {
                let dt = chrono::Local
                    .timestamp_opt(meta.internal_date, 0)
                    .single()
                    .map(|d| d.fixed_offset())
                    .unwrap_or_else(|| chrono::DateTime::UNIX_EPOCH.fixed_offset());
                data::fetch_item(out, &FetchItem::InternalDate(dt));
            }
            FetchAttr::Rfc822Size => {
                let size = match meta.size {
                    Some(s) => s,
                    None if lazy.stream => lazy.scanned()?.1.total,
                    None => lazy.size()?,
                };
                data::fetch_item(out, &FetchItem::Rfc822Size(size));
            }
            FetchAttr::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                if let Some(c) = pre.envelope.take() {
                    out.extend_from_slice(&c);
                } else {
                    // The header is read now: keep the fields clients list
                    // mailboxes with too, as Dovecot's cache does, so the
                    // usual next request (HEADER.FIELDS) reads no file.
                    let digest = pre.common.is_none();
                    let head = lazy.head()?;
                    let mark = out.len();
                    let mut fields = Vec::new();
                    if digest {
                        fields.reserve(512);
                        crate::mime::envelope_and_fields_of(
                            out,
                            &mut fields,
                            head,
                            COMMON_HEADERS,
                            false,
                        );
                    } else {
                        crate::mime::envelope_of(out, head, false);
                    }
                    let data: Arc<[u8]> = out[mark..].into();
                    folder.put_cache(t.uid, CacheField::Envelope, data);
                    if digest {
                        folder.put_cache(t.uid, CacheField::CommonHeaders, fields.into());
                    }
                }
            }
            FetchAttr::BodyStructure => {
                out.extend_from_slice(b"BODYSTRUCTURE ");
                structure_of(out, &mut lazy, pre.structure.take(), true)?;
            }
            FetchAttr::Body => {
                out.extend_from_slice(b"BODY ");
                structure_of(out, &mut lazy, pre.body.take(), false)?;
            }
            FetchAttr::Rfc822 => {
                out.extend_from_slice(b"RFC822 ");
                if lazy.stream {
                    let (f, scan) = lazy.scanned()?;
                    file_literal(out, holes, window(&f, 0, scan.total, None));
                } else {
                    encode::text_literal(out, &whole_message(&mut lazy)?);
                }
            }
            FetchAttr::Rfc822Header => {
                out.extend_from_slice(b"RFC822.HEADER ");
                if header_literal(out, holes, &mut lazy, mode, None)? {
                    continue;
                }
                let sec = Section {
                    part: vec![],
                    text: Some(SectionText::Header),
                };
                encode::text_literal(out, &lazy.header()?.section(&sec));
            }
            FetchAttr::Rfc822Text if lazy.stream => {
                out.extend_from_slice(b"RFC822.TEXT ");
                let (f, scan) = lazy.scanned()?;
                file_literal(out, holes, window(&f, scan.body_start, scan.text, None));
            }
            FetchAttr::Rfc822Text => {
                out.extend_from_slice(b"RFC822.TEXT ");
                let sec = Section {
                    part: vec![],
                    text: Some(SectionText::Text),
                };
                encode::text_literal(out, &lazy.get()?.section(&sec));
            }
            FetchAttr::BodySection {
                section, partial, ..
            } => {
                out.extend_from_slice(label.as_bytes());
                if lazy.stream
                    && section.part.is_empty()
                    && matches!(section.text, None | Some(SectionText::Text))
                {
                    let (f, scan) = lazy.scanned()?;
                    let lit = match section.text {
                        None => window(&f, 0, scan.total, *partial),
                        _ => window(&f, scan.body_start, scan.text, *partial),
                    };
                    file_literal(out, holes, lit);
                    continue;
                }
                if section.part.is_empty() && section.text.is_none() && lazy.msg.is_none() {
                    // The whole message needs no MIME parse, only CRLF.
                    let data = whole_message(&mut lazy)?;
                    encode::text_literal(out, partial_slice(&data, *partial));
                    continue;
                }
                if let (true, None, Some(SectionText::HeaderFields(names))) =
                    (from_common_headers(section), &lazy.msg, &section.text)
                {
                    let digest = common_headers(&mut lazy, pre.common.clone())?;
                    let mut fields = Vec::with_capacity(digest.len());
                    crate::mime::select_header_fields(&mut fields, &digest, names, true);
                    encode::text_literal(out, partial_slice(&fields, *partial));
                    continue;
                }
                if section.part.is_empty()
                    && section.text == Some(SectionText::Header)
                    && header_literal(out, holes, &mut lazy, mode, *partial)?
                {
                    continue;
                }
                let msg = if header_only(section) {
                    lazy.header()?
                } else {
                    lazy.get()?
                };
                if section.part.is_empty() && section.text.is_none() {
                    encode::text_literal(out, partial_slice(msg.bytes(), *partial));
                } else {
                    let data = msg.section(section);
                    encode::text_literal(out, partial_slice(&data, *partial));
                }
            }
            FetchAttr::Binary { part, partial, .. } if lazy.stream && part.is_empty() => {
                let (f, scan) = lazy.scanned()?;
                let mut lit = window(&f, 0, scan.total, *partial);
                lit.string = false;
                out.extend_from_slice(b"BINARY[]");
                if let Some((off, _)) = partial {
                    let _ = write!(out, "<{off}>");
                }
                out.push(b' ');
                let nul = scan.has_nul
                    && (partial.is_none()
                        || stream::window_has_nul(&lit).map_err(StoreError::Io)?);
                if nul {
                    out.push(b'~');
                }
                file_literal(out, holes, lit);
            }
            FetchAttr::Binary { part, partial, .. } => {
                let spec: Vec<String> = part.iter().map(|p| p.to_string()).collect();
                let data = binary_of(lazy.get()?, part)?;
                let data = partial_slice(&data, *partial);
                // RFC 3516 §4.2: a partial BINARY response names its origin.
                let _ = write!(out, "BINARY[{}]", spec.join("."));
                if let Some((off, _)) = partial {
                    let _ = write!(out, "<{off}>");
                }
                out.push(b' ');
                encode::binary_literal(out, data);
            }
            FetchAttr::BinarySize { part } if lazy.stream && part.is_empty() => {
                let size = lazy.scanned()?.1.total;
                data::fetch_item(out, &FetchItem::BinarySize { part: &[], size });
            }
            FetchAttr::BinarySize { part } => {
                // Counted without a decoded copy where the encoding is the identity.
                let size = lazy.get()?.binary_size(part).map_err(binary_error)?;
                data::fetch_item(out, &FetchItem::BinarySize { part, size });
            }
            FetchAttr::ModSeq => data::fetch_item(out, &FetchItem::ModSeq(meta.modseq)),
            FetchAttr::EmailId => {
                let o = pre.object.as_ref().ok_or(RenderError::Gone)?;
                data::fetch_item(out, &FetchItem::EmailId(&o.email_id));
            }
            FetchAttr::ThreadId => data::fetch_item(out, &FetchItem::ThreadId(None)),
            FetchAttr::SaveDate => {
                let o = pre.object.as_ref().ok_or(RenderError::Gone)?;
                let dt = o.save_date.and_then(|secs| {
                    chrono::Local
                        .timestamp_opt(secs, 0)
                        .single()
                        .map(|d| d.fixed_offset())
                });
                data::fetch_item(out, &FetchItem::SaveDate(dt));
            }
            FetchAttr::Preview { lazy: lazy_only } => {
                let text = match pre.preview.take() {
                    Some(t) => Some(t),
                    // RFC 8970 §4: LAZY answers only from what is at hand.
                    None if *lazy_only => None,
                    None => Some(preview_of(&mut lazy)?),
                };
                let text = text.as_deref().map(String::from_utf8_lossy);
                data::fetch_item(out, &FetchItem::Preview(text.as_deref()));
            }
        }
    }
    if t.add_flags && !wrote_flags {
        out.push(b' ');
        data::fetch_item(out, &flags_item(meta, t));
    }
    data::fetch_close(out);
    Ok(())
}

fn flags_item<'a>(meta: &'a MessageMeta, t: &Target) -> FetchItem<'a> {
    FetchItem::Flags {
        flags: &meta.flags,
        recent: t.recent,
    }
}

pub(super) fn binary_of(msg: &Message, part: &[u32]) -> Result<Vec<u8>, RenderError> {
    msg.binary(part).map_err(binary_error)
}

/// What BINARY and BINARY.SIZE answer for a part they cannot decode.
pub(super) fn binary_error(e: BinaryError) -> RenderError {
    match e {
        BinaryError::UnknownCte => RenderError::Status(Status::no(
            Some(Code::UnknownCte),
            "Unknown Content-Transfer-Encoding.",
        )),
    }
}
