//! CATENATE (RFC 4469): builds each APPEND message given as TEXT and URL
//! parts into the command's spool, before APPEND saves anything, so a URL
//! that names nothing fails the whole command with nothing appended
//! (MULTIAPPEND included).
//!
//! Owns what a URL part contributes: the octets FETCH `BODY[section]` of
//! that message sends (RFC 4469 §3: "as if the literal returned in a FETCH
//! BODY response were put in place"), i.e. with CRLF line ends as every
//! body nestbox serves, copied otherwise unchanged: no decoding, no check
//! that the result is a valid message, and NULs kept (§3 makes the client
//! responsible for the result; FETCH's `{n}` literal alone turns NUL into
//! 0x80, for the wire). Reading sets no flag (`\Seen` stays as it was).
//!
//! Answers, in RFC 4469 §4 terms:
//! - a URL that does not resolve (`proto::imapurl`), a mailbox that does
//!   not exist, a UIDVALIDITY that differs, a UID not there, a section the
//!   message lacks: `NO [BADURL url]`, naming the first failing URL;
//! - a message larger than APPENDLIMIT (RFC 7889; TOOBIG as §4.2 allows
//!   for a server's own limit): `NO [TOOBIG]`, found from the sizes
//!   before a byte is copied;
//! - a spooled `TEXT {n}` holding a NUL: BAD, as the parser answers one
//!   that came in the command.
//!
//! Memory: the message is assembled in the spool file (an unnamed file in
//! the Maildir's `tmp/`, `store::Spool`). A whole message or its TEXT,
//! when the source is bigger than [`KEEP_IN_MEMORY`], is copied from the
//! file a piece at a time, converted to CRLF on the way (`fetch::stream`,
//! the converter FETCH sends big bodies with). A section that needs the
//! MIME structure (a part number, HEADER, HEADER.FIELDS, MIME) or a
//! smaller source is cut from the message read whole, as FETCH does for
//! the same section: that message is one the store holds, already within
//! `max_literal_bytes`, and one such message is held at a time. URLs are
//! resolved first (to find every BADURL and the size before writing) but
//! their bytes are not kept: a section is cut again when it is written,
//! and a message whose parts pass APPENDLIMIT is refused at that part.
//! So a command with many URLs holds one message at most, however many
//! it names.

//! Must never: open a folder by anything but its name through the store
//! (the URL's mailbox is a name, never a path), or save a message (APPEND
//! does, from what this leaves in the spool).

use std::sync::Arc;

use super::fetch::stream::{self, Converter, FileLiteral, PIECE};
use crate::mime::Message;
use crate::proto::Section;
use crate::proto::imapurl::{self, Base, MessageRef};
use crate::proto::response::Code;
use crate::proto::{AppendData, AppendMessage, CatPart};
use crate::session::literal::KEEP_IN_MEMORY;
use crate::session::names::canonical_inbox;
use crate::session::{Session, State, Status, blocking};
use crate::store::{Folder, MailStore, MessageFile, Spool, StoreError};

/// Where one part's bytes come from. URL parts keep where to read them,
/// not their bytes: they are read while the message is written, one part
/// at a time, so what a command holds does not grow with its URLs.
enum Source {
    /// A TEXT literal that came in the command.
    Text(Vec<u8>),
    /// A TEXT literal the session spooled: part `i` of the command's spool.
    Spooled(usize),
    /// A URL's whole message or text, converted from the file piecewise:
    /// `len` bytes of it from raw offset `start`, after `skip`.
    File {
        folder: Arc<Folder>,
        uid: u32,
        start: u64,
        skip: u64,
        len: u64,
    },
    /// A URL's section, cut from the message read whole.
    Section {
        folder: Arc<Folder>,
        uid: u32,
        section: Option<Section>,
        partial: Option<(u32, Option<u32>)>,
        len: u64,
    },
}

impl Source {
    fn len(&self, spool: Option<&Spool>) -> u64 {
        match self {
            Source::Text(b) => b.len() as u64,
            Source::Spooled(i) => spool.and_then(|s| s.part(*i)).map_or(0, |p| p.len),
            Source::File { len, .. } | Source::Section { len, .. } => *len,
        }
    }
}

/// A message built: its index in the command, its spool part, its size.
type Built = (usize, usize, u64);

/// Why a message could not be built.
enum Failure {
    /// This URL (the client's bytes) names nothing: `NO [BADURL]`.
    BadUrl(Vec<u8>, &'static str),
    Status(Status),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Status(e.into())
    }
}

/// Replaces every CATENATE message of `messages` by the spool part it was
/// built into; `spool` is the command's (holding its diverted literals),
/// made if there is none. Returns the spool APPEND then saves from.
pub(super) async fn assemble(
    s: &mut Session,
    messages: &mut [AppendMessage],
    spool: Option<Spool>,
) -> Result<Option<Spool>, Status> {
    if !messages
        .iter()
        .any(|m| matches!(m.data, AppendData::Catenate(_)))
    {
        return Ok(spool);
    }
    let store = s.store()?;
    let base_user = match s.state.authed() {
        Some(a) => a.user.name.clone(),
        None => return Err(Status::bad("Not logged in.")),
    };
    let base_mailbox = match &s.state {
        State::Selected(_, view) => Some(view.name.clone()),
        _ => None,
    };
    let host = s.shared.config.hostname.clone();
    let limit = crate::session::caps::append_limit(s);
    // Each message's parts, taken out of the command.
    let work: Vec<(usize, Vec<CatPart>)> = messages
        .iter_mut()
        .enumerate()
        .filter_map(
            |(i, m)| match std::mem::replace(&mut m.data, AppendData::Bytes(Vec::new())) {
                AppendData::Catenate(parts) => Some((i, parts)),
                other => {
                    m.data = other;
                    None
                }
            },
        )
        .collect();
    let done = blocking(move || {
        let base = Base {
            user: &base_user,
            host: &host,
            mailbox: base_mailbox.as_deref(),
        };
        build_all(&store, &base, limit, spool, work)
    })
    .await?;
    match done {
        Ok((spool, built)) => {
            for (i, part, size) in built {
                messages[i].data = AppendData::Diverted { index: part, size };
            }
            Ok(Some(spool))
        }
        Err(Failure::BadUrl(url, why)) => {
            tracing::debug!(remote = %s.conn.remote, "CATENATE: bad URL ({why})");
            Err(Status::no(
                Some(Code::BadUrl(imapurl::resp_text(&url))),
                format!("CATENATE URL names no message part here ({why})."),
            ))
        }
        Err(Failure::Status(st)) => Err(st),
    }
}

/// On the blocking pool: resolves every URL first (nothing is written
/// while one may still fail), then writes each message into the spool.
/// Returns the spool and, per message, its index in `messages`, its spool
/// part and its size.
fn build_all(
    store: &Arc<MailStore>,
    base: &Base<'_>,
    limit: u64,
    spool: Option<Spool>,
    work: Vec<(usize, Vec<CatPart>)>,
) -> Result<(Spool, Vec<Built>), Failure> {
    let mut planned = Vec::with_capacity(work.len());
    for (i, parts) in work {
        let mut sources = Vec::with_capacity(parts.len());
        for p in parts {
            sources.push(match p {
                CatPart::Text {
                    data: AppendData::Bytes(b),
                    ..
                } => Source::Text(b),
                CatPart::Text {
                    data: AppendData::Diverted { index, .. },
                    binary,
                } => {
                    let part = spool.as_ref().and_then(|s| s.part(index)).ok_or_else(|| {
                        Failure::Status(Status::server_bug("catenate", &"spooled TEXT missing"))
                    })?;
                    if part.has_nul && !binary {
                        return Err(Failure::Status(Status::bad(
                            "NUL in a TEXT literal (only literal8 may carry NUL).",
                        )));
                    }
                    Source::Spooled(index)
                }
                CatPart::Text {
                    data: AppendData::Catenate(_),
                    ..
                } => {
                    return Err(Failure::Status(Status::bad("Nested CATENATE.")));
                }
                CatPart::Url(url) => url_source(store, base, &url)?,
            });
            // Stop at the first part past the limit, before reading more.
            let total = sources
                .iter()
                .map(|s| s.len(spool.as_ref()))
                .fold(0u64, u64::saturating_add);
            if total > limit {
                return Err(too_big(total, limit));
            }
        }
        let total = sources
            .iter()
            .map(|s| s.len(spool.as_ref()))
            .fold(0u64, u64::saturating_add);
        if total > limit {
            return Err(too_big(total, limit));
        }
        if total == 0 {
            return Err(Failure::Status(Status::no(
                None,
                "Can't save a zero byte message.",
            )));
        }
        planned.push((i, sources, total));
    }
    let mut spool = match spool {
        Some(s) => s,
        None => store.spool()?,
    };
    let mut built = Vec::with_capacity(planned.len());
    for (i, sources, total) in planned {
        spool.begin(total)?;
        for src in sources {
            write_source(&mut spool, src)?;
        }
        let part = spool.end().map_err(StoreError::Io)?;
        built.push((i, part, total));
    }
    Ok((spool, built))
}

/// `NO [TOOBIG]` for a message of at least `total` bytes.
fn too_big(total: u64, limit: u64) -> Failure {
    Failure::Status(Status::no(
        Some(Code::TooBig),
        format!("Message of {total} bytes or more is larger than APPENDLIMIT {limit}."),
    ))
}

/// Where the bytes a URL part stands for are, and how many (see the
/// module doc); the URL must name something that exists.
fn url_source(store: &MailStore, base: &Base<'_>, url: &[u8]) -> Result<Source, Failure> {
    let bad = |why| Failure::BadUrl(url.to_vec(), why);
    let r: MessageRef = imapurl::resolve(url, base).map_err(bad)?;
    let name = canonical_inbox(&r.mailbox);
    let folder = match store.open_folder(&name) {
        Ok(f) => f,
        Err(StoreError::NotFound | StoreError::Cannot(_)) => return Err(bad("no such mailbox")),
        Err(e) => return Err(e.into()),
    };
    if r.uidvalidity.is_some_and(|v| v != folder.uidvalidity()) {
        return Err(bad("UIDVALIDITY differs"));
    }
    if folder.metas(&[r.uid]).first().is_none_or(|m| m.is_none()) {
        return Err(bad("no such message"));
    }
    let gone = |e: StoreError| match e {
        StoreError::Expunged | StoreError::NotFound => bad("no such message"),
        e => e.into(),
    };
    let whole_or_text = r.section.as_ref().is_none_or(|s| {
        s.part.is_empty() && matches!(s.text, Some(crate::proto::SectionText::Text))
    });
    let file = folder.open_message(r.uid).map_err(gone)?;
    let stored = file.size().map_err(StoreError::Io)?;
    if whole_or_text && stored > KEEP_IN_MEMORY {
        let scan = stream::scan(&file).map_err(StoreError::Io)?;
        // A binary part is served as stored, which the piecewise
        // conversion does not know (as for FETCH): cut from memory then.
        if !scan.maybe_binary {
            let (start, size) = match r.section {
                None => (0, scan.total),
                Some(_) => (scan.body_start, scan.text),
            };
            let (skip, len) = window(size, r.partial);
            return Ok(Source::File {
                folder,
                uid: r.uid,
                start,
                skip,
                len,
            });
        }
    }
    drop(file);
    let data = section_bytes(&folder, r.uid, r.section.as_ref(), r.partial)
        .map_err(gone)?
        .ok_or_else(|| bad("no such body part"))?;
    Ok(Source::Section {
        folder,
        uid: r.uid,
        section: r.section,
        partial: r.partial,
        len: data.len() as u64,
    })
}

/// `BODY[section]<partial>` of the message as FETCH cuts it, or `None` if
/// the message has no such section.
fn section_bytes(
    folder: &Folder,
    uid: u32,
    section: Option<&Section>,
    partial: Option<(u32, Option<u32>)>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let raw = folder.read_message(uid)?;
    let msg = Message::parse(&raw);
    drop(raw);
    let mut data = match section {
        None => msg.bytes().to_vec(),
        Some(sec) if msg.has_section(sec) => msg.section(sec),
        Some(_) => return Ok(None),
    };
    let (skip, len) = window(data.len() as u64, partial);
    data.truncate((skip + len) as usize);
    data.drain(..skip as usize);
    Ok(Some(data))
}

/// `;PARTIAL=offset[.length]` of `size` bytes as (skip, length), clamped
/// as FETCH clamps a partial range.
fn window(size: u64, partial: Option<(u32, Option<u32>)>) -> (u64, u64) {
    match partial {
        None => (0, size),
        Some((off, len)) => {
            let skip = u64::from(off).min(size);
            let left = size - skip;
            (skip, len.map_or(left, |l| u64::from(l).min(left)))
        }
    }
}

/// Copies one part's bytes into the spool part begun. The message a URL
/// names may have gone since it was looked at (expunged by another
/// session): then the command fails, nothing having been saved yet.
fn write_source(spool: &mut Spool, src: Source) -> Result<(), StoreError> {
    match src {
        Source::Text(b) => spool.write(&b)?,
        Source::Spooled(i) => spool.write_part(i)?,
        Source::File {
            folder,
            uid,
            start,
            skip,
            len,
        } => {
            let lit = FileLiteral {
                file: Arc::new(folder.open_message(uid)?),
                start,
                skip,
                len,
                string: false,
            };
            copy_converted(spool, &lit)?;
        }
        Source::Section {
            folder,
            uid,
            section,
            partial,
            len,
        } => {
            let data = section_bytes(&folder, uid, section.as_ref(), partial)?
                .filter(|d| d.len() as u64 == len)
                .ok_or_else(|| StoreError::Cannot("message changed while read".into()))?;
            spool.write(&data)?;
        }
    }
    Ok(())
}

/// A big message's bytes from its file, a piece at a time, in CRLF form.
fn copy_converted(spool: &mut Spool, lit: &FileLiteral) -> std::io::Result<()> {
    let file: &MessageFile = &lit.file;
    let mut conv = Converter::new(lit);
    let mut buf = vec![0u8; PIECE];
    let mut out = Vec::with_capacity(2 * PIECE);
    while conv.left > 0 {
        let n = file.read_full(&mut buf, conv.off)?;
        if n == 0 {
            // Shorter than scanned: changed under us (a message file never
            // is, but another program could write one in place).
            return Err(std::io::Error::other("message file changed while read"));
        }
        out.clear();
        conv.feed(&buf[..n], &mut out);
        spool.write(&out)?;
    }
    Ok(())
}
