//! FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY).
//!
//! Responses are rendered in chunks inside `spawn_blocking` (reading and
//! parsing message files is blocking work) and written between chunks, so a
//! `FETCH 1:*` over a large mailbox streams with bounded memory. ENVELOPE,
//! BODY and BODYSTRUCTURE come from the store's cache when present, so a
//! warm `FETCH 1:* (FLAGS ENVELOPE)` opens no message file.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::TimeZone;

use crate::flags::{Flag, FlagOp, Flags, sys};
use crate::mime::{BinaryError, Message};
use crate::proto::{FetchAttr, Section, SectionText, SequenceSet, encode};
use crate::session::{CmdResult, Session, State, Status, blocking};
use crate::store::{CacheField, Folder, MessageMeta, StoreError};

/// Messages rendered per blocking task.
const CHUNK: usize = 512;

/// `FLAGS (...)` with `\Recent` when this session holds it.
pub fn flags_string(flags: &Flags, recent: bool) -> String {
    let mut v: Vec<u8> = b"FLAGS ".to_vec();
    let mut all: Vec<Flag> = flags.iter().collect();
    if recent {
        all.push(Flag::Extension("Recent".into()));
    }
    encode::flag_list(&mut v, all);
    String::from_utf8_lossy(&v).into_owned()
}

/// One message to render.
struct Target {
    seq: u32,
    uid: u32,
    recent: bool,
    /// \Seen was just set implicitly: include FLAGS.
    add_flags: bool,
}

pub async fn fetch(
    s: &mut Session,
    uid: bool,
    set: SequenceSet,
    mut items: Vec<FetchAttr>,
) -> CmdResult {
    let rev2 = s.enabled.rev2;
    let State::Selected(_, view) = &mut s.state else {
        return Err(Status::bad("No mailbox selected."));
    };
    let pairs = view.resolve(&set, uid)?;
    if uid && !items.contains(&FetchAttr::Uid) {
        items.insert(0, FetchAttr::Uid);
    }
    let sets_seen = !view.read_only
        && items.iter().any(|i| {
            matches!(
                i,
                FetchAttr::Rfc822
                    | FetchAttr::Rfc822Text
                    | FetchAttr::BodySection { peek: false, .. }
                    | FetchAttr::Binary { peek: false, .. }
            )
        });
    let folder = view.folder.clone();
    let mut newly_seen: HashSet<u32> = HashSet::new();
    if sets_seen {
        let metas = folder.messages();
        let unseen: Vec<u32> = pairs
            .iter()
            .filter(|(_, u)| {
                metas
                    .binary_search_by_key(u, |m| m.uid)
                    .is_ok_and(|i| !metas[i].flags.has(sys::SEEN))
            })
            .map(|&(_, u)| u)
            .collect();
        if !unseen.is_empty() {
            let f = folder.clone();
            let seen = Flags::from_flags(&[Flag::Seen]);
            let (changed, _) =
                blocking(move || f.store_flags(&unseen, FlagOp::Add, &seen, None)).await??;
            for m in changed {
                view.note_own_flags(m.uid, m.modseq);
                newly_seen.insert(m.uid);
            }
        }
    }
    let targets: Vec<Target> = pairs
        .iter()
        .filter(|(_, u)| !view.is_expunged(*u))
        .map(|&(seq, u)| Target {
            seq,
            uid: u,
            recent: !rev2 && view.is_recent(u),
            add_flags: newly_seen.contains(&u),
        })
        .collect();
    let items = Arc::new(items);
    let mut iter = targets.into_iter().peekable();
    while iter.peek().is_some() {
        let chunk: Vec<Target> = iter.by_ref().take(CHUNK).collect();
        let f = folder.clone();
        let it = items.clone();
        let bytes = blocking(move || render_chunk(&f, &chunk, &it)).await??;
        s.out.extend_from_slice(&bytes);
        s.maybe_flush()
            .await
            .map_err(|_| Status::bad("Connection lost."))?;
    }
    Ok(Status::ok("FETCH completed."))
}

fn render_chunk(folder: &Folder, chunk: &[Target], items: &[FetchAttr]) -> Result<Vec<u8>, Status> {
    let metas = folder.messages();
    let mut out = Vec::with_capacity(chunk.len() * 128);
    for t in chunk {
        let Ok(i) = metas.binary_search_by_key(&t.uid, |m| m.uid) else {
            // Expunged by someone else since the view was built: nothing to
            // say about it until its EXPUNGE can be sent.
            continue;
        };
        let mark = out.len();
        match render_one(&mut out, folder, &metas[i], t, items) {
            Ok(()) => {}
            Err(RenderError::Gone) => out.truncate(mark),
            Err(RenderError::Status(st)) => return Err(st),
        }
    }
    Ok(out)
}

enum RenderError {
    /// The file vanished while we rendered: skip this message.
    Gone,
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

/// Loads and parses the message at most once per FETCH item list.
struct Lazy<'a> {
    folder: &'a Folder,
    uid: u32,
    msg: Option<Message>,
}

impl Lazy<'_> {
    fn get(&mut self) -> Result<&Message, RenderError> {
        if self.msg.is_none() {
            let raw = self.folder.read_message(self.uid)?;
            self.msg = Some(Message::parse(&raw));
        }
        // Just filled above.
        self.msg.as_ref().ok_or(RenderError::Gone)
    }
}

fn literal(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
}

fn partial_slice(data: &[u8], partial: Option<(u32, u32)>) -> &[u8] {
    match partial {
        None => data,
        Some((off, len)) => {
            let start = (off as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            &data[start..end]
        }
    }
}

fn section_spec(section: &Section) -> String {
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

fn cached_or(
    out: &mut Vec<u8>,
    lazy: &mut Lazy<'_>,
    field: CacheField,
    make: impl FnOnce(&Message) -> Vec<u8>,
) -> Result<(), RenderError> {
    if let Some(c) = lazy.folder.cached(lazy.uid, field) {
        out.extend_from_slice(&c);
        return Ok(());
    }
    let data: Arc<[u8]> = make(lazy.get()?).into();
    out.extend_from_slice(&data);
    lazy.folder.put_cache(lazy.uid, field, data);
    Ok(())
}

fn render_one(
    out: &mut Vec<u8>,
    folder: &Folder,
    meta: &MessageMeta,
    t: &Target,
    items: &[FetchAttr],
) -> Result<(), RenderError> {
    use std::io::Write;
    let _ = write!(out, "* {} FETCH (", t.seq);
    let mut lazy = Lazy {
        folder,
        uid: t.uid,
        msg: None,
    };
    let mut first = true;
    let mut wrote_flags = false;
    for item in items {
        if !first {
            out.push(b' ');
        }
        first = false;
        match item {
            FetchAttr::Uid => {
                let _ = write!(out, "UID {}", t.uid);
            }
            FetchAttr::Flags => {
                out.extend_from_slice(flags_string(&meta.flags, t.recent).as_bytes());
                wrote_flags = true;
            }
            FetchAttr::InternalDate => {
                out.extend_from_slice(b"INTERNALDATE ");
                let dt = chrono::Local
                    .timestamp_opt(meta.internal_date, 0)
                    .single()
                    .map(|d| d.fixed_offset())
                    .unwrap_or_else(|| chrono::DateTime::UNIX_EPOCH.fixed_offset());
                encode::date_time(out, &dt);
            }
            FetchAttr::Rfc822Size => {
                let size = match meta.size {
                    Some(s) => s,
                    None => folder.rfc822_size(t.uid)?,
                };
                let _ = write!(out, "RFC822.SIZE {size}");
            }
            FetchAttr::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                cached_or(out, &mut lazy, CacheField::Envelope, |m| m.envelope(false))?;
            }
            FetchAttr::BodyStructure => {
                out.extend_from_slice(b"BODYSTRUCTURE ");
                cached_or(out, &mut lazy, CacheField::BodyStructure, |m| {
                    m.body_structure(true)
                })?;
            }
            FetchAttr::Body => {
                out.extend_from_slice(b"BODY ");
                cached_or(out, &mut lazy, CacheField::Body, |m| {
                    m.body_structure(false)
                })?;
            }
            FetchAttr::Rfc822 => {
                out.extend_from_slice(b"RFC822 ");
                literal(out, lazy.get()?.bytes());
            }
            FetchAttr::Rfc822Header => {
                out.extend_from_slice(b"RFC822.HEADER ");
                let sec = Section {
                    part: vec![],
                    text: Some(SectionText::Header),
                };
                literal(out, &lazy.get()?.section(&sec));
            }
            FetchAttr::Rfc822Text => {
                out.extend_from_slice(b"RFC822.TEXT ");
                let sec = Section {
                    part: vec![],
                    text: Some(SectionText::Text),
                };
                literal(out, &lazy.get()?.section(&sec));
            }
            FetchAttr::BodySection {
                section, partial, ..
            } => {
                let _ = write!(out, "BODY[{}]", section_spec(section));
                if let Some((off, _)) = partial {
                    let _ = write!(out, "<{off}>");
                }
                out.push(b' ');
                let msg = lazy.get()?;
                if section.part.is_empty() && section.text.is_none() {
                    literal(out, partial_slice(msg.bytes(), *partial));
                } else {
                    let data = msg.section(section);
                    literal(out, partial_slice(&data, *partial));
                }
            }
            FetchAttr::Binary { part, partial, .. } => {
                let spec: Vec<String> = part.iter().map(|p| p.to_string()).collect();
                let data = binary_of(lazy.get()?, part)?;
                let data = partial_slice(&data, *partial);
                let _ = write!(out, "BINARY[{}] ", spec.join("."));
                if data.contains(&0) {
                    out.push(b'~');
                }
                literal(out, data);
            }
            FetchAttr::BinarySize { part } => {
                let spec: Vec<String> = part.iter().map(|p| p.to_string()).collect();
                let data = binary_of(lazy.get()?, part)?;
                let _ = write!(out, "BINARY.SIZE[{}] {}", spec.join("."), data.len());
            }
            FetchAttr::ModSeq => {
                let _ = write!(out, "MODSEQ ({})", meta.modseq);
            }
        }
    }
    if t.add_flags && !wrote_flags {
        out.push(b' ');
        out.extend_from_slice(flags_string(&meta.flags, t.recent).as_bytes());
    }
    out.extend_from_slice(b")\r\n");
    Ok(())
}

fn binary_of(msg: &Message, part: &[u32]) -> Result<Vec<u8>, RenderError> {
    msg.binary(part).map_err(|e| match e {
        BinaryError::UnknownCte => RenderError::Status(Status::no(
            Some("UNKNOWN-CTE"),
            "Unknown Content-Transfer-Encoding.",
        )),
        BinaryError::NoSuchPart => {
            RenderError::Status(Status::no(Some("NONEXISTENT"), "No such message part."))
        }
    })
}
