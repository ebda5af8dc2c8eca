//! FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY).
//!
//! Responses are rendered in chunks inside `spawn_blocking` (reading and
//! parsing message files is blocking work) and written between chunks, so a
//! `FETCH 1:*` over a large mailbox streams with bounded memory. ENVELOPE,
//! BODY and BODYSTRUCTURE come from the store's cache when present, so a
//! warm `FETCH 1:* (FLAGS ENVELOPE)` opens no message file.
//!
//! Memory per connection is bounded whatever the message sizes and however
//! slowly the client reads (issue 15): chunks stop rendering once their
//! output not yet sent passes `IN_FLIGHT_PER_CHUNK` per chunk in flight,
//! and a message bigger than
//! `BIG` that must be read whole is rendered by itself, one at a time,
//! with its whole or text bodies left as holes that `stream` fills
//! from the file a piece at a time as the socket takes them. Sections that
//! need the MIME structure (`BODY[1.2]`, `BINARY[1]`, a cold
//! BODYSTRUCTURE) are still rendered in memory, for that one message.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod render;
pub(super) mod stream;

use render::*;

use crate::flags::{Flag, FlagOp, Flags, sys};
use crate::proto::data::{self, Data, FetchItem};
use crate::proto::{FetchAttr, SequenceSet};
use crate::session::digest::from_common_headers;
use crate::session::view::SelectedView;
use crate::session::{CmdResult, Session, Status, blocking};
use crate::store::{CacheField, Folder, MessageMeta};
use stream::FileLiteral;

/// Messages rendered per blocking task (for items without whole bodies):
/// enough that handing a chunk to the blocking pool costs little next to
/// rendering it from the cache, few enough to stream and spread over cores.
const CHUNK: usize = 1024;

/// Messages per blocking task when whole bodies go out: few, so memory
/// stays bounded by a handful of messages.
const BODY_CHUNK: usize = 4;

/// FETCHes of at most this many messages render on the session's own
/// thread in a nowait scope (`session::nowait_scope`) instead of going
/// to the blocking pool: a client opening one message, or fetching the
/// flags of a few after an IDLE wake-up.
const INLINE_MAX: usize = 8;

/// ...as long as every message whose file must be read whole is known to
/// be at most this big: parsing or copying a 30 MB message is work for the
/// blocking pool, not for a runtime thread.
const INLINE_BYTES: u64 = BIG;

/// A message whose file is longer than this, when an item needs it whole,
/// is rendered by itself (one at a time per connection), and its whole or
/// text bodies are sent from the file in pieces (`stream`). Smaller
/// ones are read whole and rendered in chunks, several chunks at once.
/// 256 KiB: most mail is smaller (a few KiB to a few tens), so chunks keep
/// their speed, while a chunk's messages stay a few MiB at most.
const BIG: u64 = 256 * 1024;

/// Rendered output a FETCH may hold beyond the session's output buffer,
/// per chunk in flight: chunks finished while the client reads slowly wait
/// with their output, so a chunk stops before its next message once the
/// FETCH's chunks hold this much times the chunks in flight (counted
/// together, [`render_chunk`]'s `held`). A chunk of 1,024 ENVELOPEs is
/// 0.5-1 MiB: a client that keeps up never makes a chunk stop early (that
/// would cost a round through the pool for its rest), one that does not
/// read leaves 12 MiB rendered on 2 CPUs.
const IN_FLIGHT_PER_CHUNK: usize = 3 << 19;

/// How often a chunk adds what it rendered to the FETCH's count: rarely
/// enough that chunks on several threads do not contend for it, often
/// enough that the count is behind by little.
const PUBLISH_EVERY: usize = 64 * 1024;

/// Items that put a whole message or part body into the response.
fn sends_body(item: &FetchAttr) -> bool {
    match item {
        FetchAttr::Rfc822 | FetchAttr::Rfc822Text | FetchAttr::Binary { .. } => true,
        FetchAttr::BodySection { section, .. } => !header_only(section),
        _ => false,
    }
}

/// One message to render.
#[derive(Clone, Copy)]
struct Target {
    seq: u32,
    uid: u32,
    recent: bool,
    /// \Seen was just set implicitly: include FLAGS.
    add_flags: bool,
}

pub async fn fetch(
    s: &mut Session,
    view: &mut SelectedView,
    uid: bool,
    set: SequenceSet,
    mut items: Vec<FetchAttr>,
    changed_since: Option<u64>,
) -> CmdResult {
    let rev2 = s.enabled.rev2;
    let mut pairs = view.resolve(&set, uid)?;
    if uid && !items.contains(&FetchAttr::Uid) {
        items.insert(0, FetchAttr::Uid);
    }
    if let Some(since) = changed_since {
        // RFC 7162 §3.1.4.1: only messages whose modseq is above `since`
        // (messages gone meanwhile have nothing to say).
        let want: Vec<u32> = pairs.iter().map(|&(_, u)| u).collect();
        let modseqs = crate::session::modseqs_of(&view.folder, want).await?;
        pairs = pairs
            .into_iter()
            .zip(modseqs)
            .filter(|(_, m)| m.is_some_and(|m| m > since))
            .map(|(p, _)| p)
            .collect();
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
    // CONDSTORE: CHANGEDSINCE answers with MODSEQ (§3.1.4.1), and once
    // CONDSTORE is on a FETCH that sets \Seen reports the new flags with
    // UID and MODSEQ (§3.1).
    if changed_since.is_some() || (s.enabled.condstore && sets_seen) {
        if !items.contains(&FetchAttr::Uid) {
            items.insert(0, FetchAttr::Uid);
        }
        if !items.contains(&FetchAttr::ModSeq) {
            items.push(FetchAttr::ModSeq);
        }
    }
    let folder = view.folder.clone();
    let mut newly_seen: HashSet<u32> = HashSet::new();
    if sets_seen {
        let want: Vec<u32> = pairs.iter().map(|&(_, u)| u).collect();
        let unseen: Vec<u32> = crate::session::metas_of(&folder, want)
            .await?
            .into_iter()
            .flatten()
            .filter(|m| !m.flags.has(sys::SEEN))
            .map(|m| m.uid)
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
        .map(|&(seq, u)| Target {
            seq,
            uid: u,
            recent: !rev2 && view.is_recent(u),
            add_flags: newly_seen.contains(&u),
        })
        .collect();
    let chunk_len = if items.iter().any(sends_body) {
        BODY_CHUNK
    } else {
        CHUNK
    };
    let items = Arc::new(items);
    let mut gone = 0usize;
    if targets.len() <= INLINE_MAX {
        // Never held across an await (the scope is thread-local).
        let inline = match crate::session::nowait_scope() {
            Some(_scope) => render_chunk(
                &folder,
                &targets,
                &items,
                Mode::INLINE,
                &AtomicUsize::new(0),
            )?,
            None => None,
        };
        // Messages that must be read whole are small here: all rendered.
        if let Some(r) = inline.filter(|r| r.done == targets.len() && r.holes.is_empty()) {
            announce(s, view, &r.keywords);
            s.out.extend_from_slice(&r.bytes);
            return Ok(fetch_status(r.gone));
        }
    }
    // Chunks render in parallel on the blocking pool (reading and parsing
    // message files is the cost of a cold FETCH) and are written in order.
    // More chunks than CPUs: a chunk whose file is not in the page cache
    // waits for the disk, and others parse meanwhile. Cold `FETCH 1:*
    // BODYSTRUCTURE` at 100,000 messages with a page cache smaller than the
    // mail, 2 CPUs: 1.5-2.7 s with 2 chunks in flight, 1.0-1.2 s with 8; no
    // change when everything comes from nestbox's cache. Chunks that carry
    // whole bodies stay at one per CPU: each holds its messages in memory.
    let workers = if chunk_len == BODY_CHUNK {
        crate::session::cpus().clamp(1, 8)
    } else {
        (crate::session::cpus() * 4).clamp(4, 16)
    };
    let pooled = Mode {
        size_limit: None,
        alone: false,
        max_out: IN_FLIGHT_PER_CHUNK * workers,
        big: BIG,
    };
    // Output rendered by this FETCH's chunks and not yet queued for the client.
    let held = Arc::new(AtomicUsize::new(0));
    let mut pending: VecDeque<RenderTask> = VecDeque::new();
    let mut iter = targets.into_iter().peekable();
    loop {
        while pending.len() < workers && iter.peek().is_some() {
            let chunk: Vec<Target> = iter.by_ref().take(chunk_len).collect();
            pending.push_back(spawn_render(&folder, &items, chunk, pooled, &held));
        }
        let Some(task) = pending.pop_front() else {
            break;
        };
        let (r, chunk) = task
            .await
            .map_err(|e| Status::server_bug("FETCH task failed", &e))??;
        gone += r.gone;
        let (done, big_next) = (r.done, r.big_next);
        let len = r.bytes.len();
        emit(s, view, r).await?;
        held.fetch_sub(len, Ordering::Relaxed);
        let mut rest = chunk.get(done..).unwrap_or_default().to_vec();
        if big_next && !rest.is_empty() {
            // A big message: rendered by itself while the chunks after it
            // go on rendering (each a bounded amount), and sent before them.
            let one = vec![rest.remove(0)];
            let (r, _) = spawn_render(&folder, &items, one, Mode::ALONE, &Arc::default())
                .await
                .map_err(|e| Status::server_bug("FETCH task failed", &e))??;
            if r.done != 1 {
                return Err(Status::server_bug(
                    "FETCH",
                    &"a big message was not rendered",
                ));
            }
            gone += r.gone;
            emit(s, view, r).await?;
        }
        if !rest.is_empty() {
            // The rest of a chunk that stopped early comes before the
            // chunks in flight.
            pending.push_front(spawn_render(&folder, &items, rest, pooled, &held));
        }
    }
    Ok(fetch_status(gone))
}

/// `UID FETCH ... (CHANGEDSINCE n VANISHED)` (RFC 7162 §3.2.6): the UIDs of
/// the command's set that vanished since `n`, as `VANISHED (EARLIER)`,
/// before any FETCH response. Needs `ENABLE QRESYNC`.
pub fn vanished_earlier(
    s: &mut Session,
    view: &SelectedView,
    set: &SequenceSet,
    since: Option<u64>,
) -> Result<(), Status> {
    if !s.enabled.qresync {
        return Err(Status::bad("VANISHED needs ENABLE QRESYNC first."));
    }
    let Some(since) = since else {
        return Err(Status::bad("VANISHED needs CHANGEDSINCE."));
    };
    // `*` reaches to the last UID ever given out, not the last one left:
    // an expunged UID may be above every UID still here. Nothing at or
    // above UIDNEXT ever existed. `$` is the saved result.
    let uidnext = view.folder.uidnext();
    let asked = match set {
        SequenceSet::Saved => crate::session::qresync::ranges_of(view.saved.iter().copied()),
        set => set.ranges(uidnext.saturating_sub(1)),
    };
    let within = crate::session::qresync::below_uidnext(asked, uidnext);
    let gone = crate::session::qresync::vanished(&view.folder, since, &within, view.uids());
    crate::session::qresync::write(&mut s.out, true, &gone);
    Ok(())
}

/// The tagged status of a FETCH that could not render `gone` messages.
fn fetch_status(gone: usize) -> Status {
    if gone > 0 {
        // RFC 2180 §4.1.2, RFC 5530 §3: the client still numbers messages
        // another session expunged; the data sent is complete for the rest,
        // so OK, with a hint to NOOP for the EXPUNGEs (a NO makes some
        // clients treat the whole FETCH as failed).
        return Status::ok_code(
            crate::proto::response::Code::ExpungeIssued,
            "Some of the requested messages no longer exist.",
        );
    }
    Status::ok("FETCH completed.")
}

/// A chunk being rendered, and its targets (for the part it leaves).
type RenderTask = tokio::task::JoinHandle<Result<(Rendered, Vec<Target>), Status>>;

fn spawn_render(
    folder: &Arc<Folder>,
    items: &Arc<Vec<FetchAttr>>,
    chunk: Vec<Target>,
    mode: Mode,
    held: &Arc<AtomicUsize>,
) -> RenderTask {
    let f = folder.clone();
    let it = items.clone();
    let held = held.clone();
    tokio::task::spawn_blocking(move || {
        let r = render_chunk(&f, &chunk, &it, mode, &held)?
            .ok_or_else(|| Status::server_bug("FETCH", &"a chunk rendered nothing"))?;
        Ok((r, chunk))
    })
}

/// Queues a rendered chunk for the client, filling its holes from the
/// message files; writes to the socket whenever the output buffer is full.
async fn emit(s: &mut Session, view: &mut SelectedView, r: Rendered) -> Result<(), Status> {
    let lost = |_| Status::bad("Connection lost.");
    announce(s, view, &r.keywords);
    if r.holes.is_empty() {
        s.out.extend_from_slice(&r.bytes);
    } else {
        let mut at = 0;
        for (pos, lit) in r.holes {
            s.out
                .extend_from_slice(r.bytes.get(at..pos).unwrap_or_default());
            at = pos;
            s.maybe_flush().await.map_err(lost)?;
            stream::send(s, lit).await.map_err(lost)?;
        }
        s.out
            .extend_from_slice(r.bytes.get(at..).unwrap_or_default());
    }
    s.maybe_flush().await.map_err(lost)
}

/// Sends a new FLAGS response first if the flags about to be sent carry a
/// keyword the client was not told of (see
/// `SelectedView::announce_keywords`).
fn announce(s: &mut Session, view: &mut SelectedView, flags: &[crate::flags::Flags]) {
    if flags.is_empty() {
        return;
    }
    view.announce_keywords(flags, &mut s.out);
}

/// How [`render_chunk`] renders.
#[derive(Clone, Copy)]
struct Mode {
    /// Render nothing (`None`) when a file that may have to be read whole
    /// is bigger than this or of unknown size (the inline path).
    size_limit: Option<u64>,
    /// The chunk is one big message, rendered by itself: its whole and text
    /// bodies become holes, filled from the file as they are sent.
    alone: bool,
    /// Stop before the next message once the FETCH's output not yet sent
    /// (`held`, this chunk's included) is this long.
    max_out: usize,
    /// Messages bigger than this are big ([`BIG`]; smaller in tests).
    big: u64,
}

impl Mode {
    const INLINE: Mode = Mode {
        size_limit: Some(INLINE_BYTES),
        alone: false,
        max_out: usize::MAX,
        big: BIG,
    };
    const ALONE: Mode = Mode {
        size_limit: None,
        alone: true,
        max_out: usize::MAX,
        big: BIG,
    };
    /// One chunk rendered whole, as by the blocking pool (tests).
    #[cfg(test)]
    const WHOLE: Mode = Mode {
        size_limit: None,
        alone: false,
        max_out: usize::MAX,
        big: BIG,
    };
}

/// A rendered chunk (or its first part).
struct Rendered {
    bytes: Vec<u8>,
    /// Literals sent from files: where each goes in `bytes`, in order.
    holes: Vec<(usize, FileLiteral)>,
    /// Messages gone (expunged meanwhile), not rendered.
    gone: usize,
    /// Messages of the chunk dealt with; the caller renders the rest.
    done: usize,
    /// The message at `done` is big: the caller renders it alone.
    big_next: bool,
    /// The keywords among the FLAGS rendered (perhaps a few more): the
    /// session announces any new to the client before sending the bytes.
    keywords: Vec<crate::flags::Flags>,
}

/// Items whose rendering may read a message file whole.
fn reads_whole(item: &FetchAttr) -> bool {
    sends_body(item)
        || matches!(
            item,
            FetchAttr::BodyStructure
                | FetchAttr::Body
                | FetchAttr::Rfc822Size
                | FetchAttr::BinarySize { .. }
        )
}

/// Renders a chunk, or its first part (see [`Mode`] and [`Rendered`]),
/// counting the messages that could not be rendered because they are gone.
/// What it renders is added to `held`, which the caller lowers as it sends.
fn render_chunk(
    folder: &Folder,
    chunk: &[Target],
    items: &[FetchAttr],
    mode: Mode,
    held: &AtomicUsize,
) -> Result<Option<Rendered>, Status> {
    let uids: Vec<u32> = chunk.iter().map(|t| t.uid).collect();
    if let Some(limit) = mode.size_limit
        && items.iter().any(reads_whole)
    {
        let big =
            |m: &Option<MessageMeta>| m.as_ref().is_some_and(|m| m.size.is_none_or(|s| s > limit));
        if folder.metas(&uids).iter().any(big) {
            return Ok(None);
        }
    }
    if items.contains(&FetchAttr::InternalDate) {
        folder.resolve_dates(&uids)?;
    }
    // Just this chunk's metadata: the whole-folder snapshot may be rebuilt
    // whenever a size or date is learnt, which must not happen per chunk.
    let metas = folder.metas(&uids);
    // Nearly every message has no keyword: usually nothing is kept.
    let keywords: Vec<crate::flags::Flags> =
        if items.contains(&FetchAttr::Flags) || chunk.iter().any(|t| t.add_flags) {
            metas
                .iter()
                .flatten()
                .filter(|m| !m.flags.keywords().is_empty())
                .map(|m| m.flags.clone())
                .collect()
        } else {
            Vec::new()
        };
    // Cached items for the whole chunk under one lock of the folder.
    let want = |f: &dyn Fn(&FetchAttr) -> bool| items.iter().any(f);
    let lookup = |yes: bool, field: CacheField| {
        if yes {
            folder.cached_many(&uids, field)
        } else {
            vec![None; uids.len()]
        }
    };
    let mut envelope = lookup(want(&|i| *i == FetchAttr::Envelope), CacheField::Envelope);
    let mut structure = lookup(
        want(&|i| *i == FetchAttr::BodyStructure),
        CacheField::BodyStructure,
    );
    let mut body = lookup(want(&|i| *i == FetchAttr::Body), CacheField::Body);
    let mut preview = lookup(
        want(&|i| matches!(i, FetchAttr::Preview { .. })),
        CacheField::Preview,
    );
    let mut objects = if want(&|i| matches!(i, FetchAttr::EmailId | FetchAttr::SaveDate)) {
        folder.object_info(&uids)
    } else {
        vec![None; uids.len()]
    };
    // Also when an ENVELOPE must be made: it stores the digest alongside
    // unless one is cached, which is then known without a lock per message.
    let mut common = lookup(
        want(
            &|i| matches!(i, FetchAttr::BodySection { section, .. } if from_common_headers(section)),
        ) || envelope.iter().any(Option::is_none) && want(&|i| *i == FetchAttr::Envelope),
        CacheField::CommonHeaders,
    );
    // `BODY[...]` labels, the same for every message.
    let labels: Vec<String> = items
        .iter()
        .map(|i| match i {
            FetchAttr::BodySection {
                section, partial, ..
            } => match partial {
                Some((off, _)) => format!("BODY[{}]<{off}> ", section_spec(section)),
                None => format!("BODY[{}] ", section_spec(section)),
            },
            _ => String::new(),
        })
        .collect();
    let mut out = Vec::with_capacity(chunk.len() * 128);
    let mut holes = Vec::new();
    let mut gone = 0;
    let mut done = chunk.len();
    let mut big_next = false;
    // All that is known of an expunged message without its file: its UID.
    let uid_only = items.iter().all(|i| *i == FetchAttr::Uid);
    // Of `out`, how much `held` counts already.
    let mut published = 0;
    for (k, (t, meta)) in chunk.iter().zip(&metas).enumerate() {
        let mine = out.len() - published;
        if mine >= PUBLISH_EVERY {
            held.fetch_add(mine, Ordering::Relaxed);
            published = out.len();
        }
        if k > 0 && held.load(Ordering::Relaxed) + (out.len() - published) >= mode.max_out {
            done = k;
            break;
        }
        let pre = Cached {
            envelope: envelope[k].take(),
            structure: structure[k].take(),
            body: body[k].take(),
            common: common[k].take(),
            preview: preview[k].take(),
            object: objects[k].take(),
        };
        let Some(meta) = meta else {
            if uid_only {
                let items = [FetchItem::Uid(t.uid)];
                data::write(
                    &mut out,
                    &Data::Fetch {
                        seq: t.seq,
                        items: &items,
                    },
                );
            } else {
                gone += 1;
            }
            continue;
        };
        let mark = (out.len(), holes.len());
        let to = Sink {
            out: &mut out,
            holes: &mut holes,
        };
        match render_one(to, folder, meta, t, items, &labels, pre, mode) {
            Ok(()) => {}
            Err(RenderError::Gone) => {
                out.truncate(mark.0);
                holes.truncate(mark.1);
                gone += 1;
            }
            Err(RenderError::Big) => {
                out.truncate(mark.0);
                holes.truncate(mark.1);
                done = k;
                big_next = true;
                break;
            }
            Err(RenderError::Status(st)) => return Err(st),
        }
    }
    held.fetch_add(out.len() - published, Ordering::Relaxed);
    Ok(Some(Rendered {
        bytes: out,
        holes,
        gone,
        done,
        big_next,
        keywords,
    }))
}

#[cfg(test)]
mod tests;
