//! FETCH rendered from the store as the command does: cold items against
//! the parsed message, inline versus pooled rendering, bodies streamed
//! from the file against the message in memory.

use super::*;
use crate::mime::Message;
use crate::proto::{Section, SectionText};
use crate::session::digest::COMMON_HEADERS;

/// A store over `dir` that does not fsync (tests only).
fn temp_store(dir: &std::path::Path) -> crate::store::MailStore {
    crate::store::MailStore::open(
        dir.to_path_buf(),
        crate::store::Registry::new(),
        crate::store::StoreOptions { fsync: false },
    )
    .unwrap()
}

/// Cost of a cold FETCH (no `nestbox.cache`) over a Maildir, rendered
/// chunk by chunk as `fetch` does, on one thread. For profiling only:
/// `FETCH_COST_MAILDIR=/tmp/x/Maildir FETCH_COST_ITEMS=bs|meta cargo test
/// --release --lib fetch_cost -- --ignored --nocapture` (the Maildir is
/// copied first, so every run is a first FETCH; with FETCH_COST_INPLACE
/// set it is used as it is, for a fresh copy made by the caller).
#[test]
#[ignore = "measurement: needs FETCH_COST_MAILDIR"]
fn fetch_cost() {
    let Ok(src) = std::env::var("FETCH_COST_MAILDIR") else {
        return;
    };
    let items = match std::env::var("FETCH_COST_ITEMS").as_deref() {
        Ok("meta") => vec![
            FetchAttr::Uid,
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
            FetchAttr::Envelope,
        ],
        _ => vec![FetchAttr::BodyStructure],
    };
    let d = tempfile::tempdir().unwrap();
    let mut root = d.path().join("Maildir");
    if std::env::var("FETCH_COST_INPLACE").is_ok() {
        // The caller made a fresh copy (and warmed the page cache).
        root = src.into();
    } else {
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&root)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let store = temp_store(&root);
    let folder = store.open_folder("INBOX").unwrap();
    let targets: Vec<Target> = folder
        .messages()
        .iter()
        .enumerate()
        .map(|(i, m)| Target {
            seq: i as u32 + 1,
            uid: m.uid,
            recent: false,
            add_flags: false,
        })
        .collect();
    let t0 = std::time::Instant::now();
    let mut bytes = 0;
    // FETCH_COST_OUT: where to write the responses, to compare builds.
    let mut all = Vec::new();
    for chunk in targets.chunks(CHUNK) {
        let r = render_chunk(&folder, chunk, &items, Mode::WHOLE, &AtomicUsize::new(0))
            .unwrap_or_else(|_| panic!())
            .unwrap();
        let (out, gone) = (r.bytes, r.gone);
        assert_eq!(gone, 0);
        bytes += out.len();
        all.extend_from_slice(&out);
    }
    if let Ok(p) = std::env::var("FETCH_COST_OUT") {
        std::fs::write(p, &all).unwrap();
    }
    let t1 = t0.elapsed();
    let lines = all.windows(3).filter(|w| w == b"\n* ").count() + 1;
    assert_eq!(lines, targets.len(), "one response per message");
    eprintln!(
        "{} messages, {bytes} bytes of response in {t1:?}",
        targets.len()
    );
}

/// The items a cold FETCH renders from the stored bytes (ENVELOPE,
/// BODYSTRUCTURE, BODY, the header digest, RFC822.SIZE read from the
/// file) equal what the parsed CRLF copy gives, in either item order,
/// for LF and CRLF files whose names carry no size.
#[test]
fn cold_items_match_the_parsed_message() {
    let d = tempfile::tempdir().unwrap();
    let store = temp_store(d.path());
    let msgs: [&[u8]; 3] = [
        b"From: A <a@x>\nTo: b@y,\n c@z\nSubject: lf\nContent-Type: multipart/mixed;\n boundary=b\n\n--b\nContent-Type: text/plain\n\none\ntwo\n--b\nContent-Type: message/rfc822\n\nFrom: c@d\nSubject: in\n\nx\n--b--\n",
        b"From: A <a@x>\r\nSubject: crlf\r\n\r\nbody\r\n",
        b"Subject: no body",
    ];
    let cur = d.path().join("cur");
    for (i, m) in msgs.iter().enumerate() {
        std::fs::write(cur.join(format!("100{i}.M1P1.host:2,")), m).unwrap();
    }
    let folder = store.open_folder("INBOX").unwrap();
    let header = Section {
        part: vec![],
        text: Some(SectionText::Header),
    };
    let section = FetchAttr::BodySection {
        peek: true,
        section: header.clone(),
        partial: None,
    };
    let orders = [
        vec![FetchAttr::Rfc822Size, FetchAttr::Envelope, section.clone()],
        vec![
            FetchAttr::Envelope,
            FetchAttr::BodyStructure,
            FetchAttr::Body,
            section,
            FetchAttr::Rfc822Size,
        ],
    ];
    for items in orders {
        for (i, raw) in msgs.iter().enumerate() {
            let uid = folder.messages()[i].uid;
            let m = Message::parse(raw);
            let mut want = format!("* {} FETCH (", i + 1).into_bytes();
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    want.push(b' ');
                }
                match item {
                    FetchAttr::Rfc822Size => want
                        .extend_from_slice(format!("RFC822.SIZE {}", m.bytes().len()).as_bytes()),
                    FetchAttr::Envelope => {
                        want.extend_from_slice(b"ENVELOPE ");
                        want.extend_from_slice(&m.envelope(false));
                    }
                    FetchAttr::BodyStructure => {
                        want.extend_from_slice(b"BODYSTRUCTURE ");
                        want.extend_from_slice(&m.body_structure(true));
                    }
                    FetchAttr::Body => {
                        want.extend_from_slice(b"BODY ");
                        want.extend_from_slice(&m.body_structure(false));
                    }
                    _ => {
                        want.extend_from_slice(b"BODY[HEADER] ");
                        crate::proto::encode::text_literal(&mut want, &m.section(&header));
                    }
                }
            }
            want.extend_from_slice(b")\r\n");
            let target = Target {
                seq: i as u32 + 1,
                uid,
                recent: false,
                add_flags: false,
            };
            // A fresh folder each round, so nothing comes from the
            // cache; rendered as the blocking pool does, then as a
            // small FETCH does on the session's thread.
            let mut last = None;
            for in_scope in [false, true] {
                let f = temp_store(d.path()).open_folder("INBOX").unwrap();
                let _ = std::fs::remove_file(d.path().join("nestbox.cache"));
                let target = Target { ..target };
                let r = if in_scope {
                    let _s = crate::store::nowait::Scope::enter(|f| f());
                    render_chunk(&f, &[target], &items, Mode::WHOLE, &AtomicUsize::new(0))
                } else {
                    render_chunk(&f, &[target], &items, Mode::WHOLE, &AtomicUsize::new(0))
                }
                .unwrap_or_else(|_| panic!())
                .unwrap();
                let (out, gone) = (r.bytes, r.gone);
                assert_eq!(gone, 0);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&want)
                );
                last = Some(f);
            }
            let f = last.unwrap();
            // The digest cached alongside ENVELOPE is the parsed header's.
            let all = Section {
                part: vec![],
                text: Some(SectionText::HeaderFields(
                    COMMON_HEADERS.iter().map(|s| s.to_string()).collect(),
                )),
            };
            assert_eq!(
                f.cached(uid, CacheField::CommonHeaders).as_deref(),
                Some(&m.section(&all)[..])
            );
        }
    }
}

/// A FETCH small enough to render on the session's thread still goes
/// to the blocking pool when a file it may read whole is big or of
/// unknown size; items that never read a whole file do not care.
#[test]
fn inline_rendering_leaves_big_or_unknown_files_to_the_pool() {
    let d = tempfile::tempdir().unwrap();
    let store = temp_store(d.path());
    let cur = d.path().join("cur");
    let body = "x".repeat(2000);
    let msg = format!("Subject: s\n\n{body}\n");
    let (lf, crlf) = (msg.len(), msg.len() + 3);
    assert_eq!(crlf, 2016);
    // Sizes in the name, and none.
    std::fs::write(cur.join(format!("1000.M1P1.host,S={lf},W={crlf}:2,")), &msg).unwrap();
    std::fs::write(cur.join("1001.M1P1.host:2,"), &msg).unwrap();
    let folder = store.open_folder("INBOX").unwrap();
    let target = |seq: u32| Target {
        seq,
        uid: folder.messages()[seq as usize - 1].uid,
        recent: false,
        add_flags: false,
    };
    let whole = [FetchAttr::Uid, FetchAttr::Rfc822Size];
    let flags = [FetchAttr::Uid, FetchAttr::Flags];
    let render = |t: Target, items: &[FetchAttr], limit: u64| {
        let _s = crate::store::nowait::Scope::enter(|f| f());
        let mode = Mode {
            size_limit: Some(limit),
            ..Mode::INLINE
        };
        render_chunk(&folder, &[t], items, mode, &AtomicUsize::new(0)).unwrap_or_else(|_| panic!())
    };
    assert!(render(target(1), &whole, 2016).is_some());
    assert!(render(target(1), &whole, 2015).is_none());
    assert!(
        render(target(2), &whole, u64::MAX).is_none(),
        "size unknown"
    );
    assert!(render(target(2), &flags, 0).is_some());
    // Once the pool has read it, its size is known.
    assert!(
        render_chunk(
            &folder,
            &[target(2)],
            &whole,
            Mode::WHOLE,
            &AtomicUsize::new(0)
        )
        .unwrap_or_else(|_| panic!())
        .is_some()
    );
    let out = render(target(2), &whole, 2016).unwrap().bytes;
    assert!(String::from_utf8_lossy(&out).contains("RFC822.SIZE 2016"));
}

/// A rendered chunk with its holes filled from the files as the session
/// does, in pieces of `piece` bytes (small, to cross every boundary).
fn filled(r: Rendered, piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for (pos, lit) in r.holes {
        out.extend_from_slice(&r.bytes[at..pos]);
        at = pos;
        let mut conv = stream::Converter::new(&lit);
        let mut buf = vec![0u8; piece];
        while conv.left > 0 {
            let n = lit.file.read_full(&mut buf, conv.off).unwrap();
            assert!(n > 0, "the file ended inside its literal");
            conv.feed(&buf[..n], &mut out);
        }
    }
    out.extend_from_slice(&r.bytes[at..]);
    out
}

/// Bodies sent from the file give exactly the bytes of the in-memory
/// rendering, for every streamed item, with and without partial ranges,
/// over messages with LF, CRLF, lone CRs, NULs, no header end, an empty
/// header, and random mixtures of those; and a message that is big in
/// a chunk stops the chunk there.
#[test]
fn bodies_from_the_file_match_the_message_in_memory() {
    let d = tempfile::tempdir().unwrap();
    let store = temp_store(d.path());
    let cur = d.path().join("cur");
    let mut msgs: Vec<Vec<u8>> = [
        &b"Subject: a\n\nline one\nline two\n"[..],
        b"Subject: a\r\n\r\nline one\r\nline two\r\n",
        b"Subject: mixed\r\nX: y\n\r\nbody\r\n\nmore\n\r\r\n\rx",
        b"no header end at all\nsecond line\n",
        b"\nstarts with a blank line\n",
        b"\r\nstarts with a CRLF blank line\n",
        b"\r\r\nodd\n\n",
        b"a\n\r",
        b"a\n",
        b"\n",
        b"\r",
        b"x",
        b"Subject: nul\n\nbin\0ary\n\0",
        // Binary parts are served as stored: rendered in memory even
        // when big, with the same bytes.
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\na\nb\r\0\n",
        b"Content-Type: multipart/mixed; boundary=z\n\n--z\nContent-Transfer-Encoding: BINARY\nContent-Type: image/png\n\n\x89PNG\n\0\n--z--\n",
    ]
    .iter()
    .map(|m| m.to_vec())
    .collect();
    // Random ones, from the bytes that matter.
    let mut seed = 0x2545_f491_u64;
    for _ in 0..150 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (seed >> 33) as usize % 200;
        let m: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                b"a:  \r\n\n\0"[(seed >> 40) as usize % 8]
            })
            .collect();
        msgs.push(m);
    }
    for (i, m) in msgs.iter().enumerate() {
        // No sizes in the names: found by the scan.
        std::fs::write(cur.join(format!("{}.M{i}P1.host:2,", 1000 + i)), m).unwrap();
    }
    let folder = store.open_folder("INBOX").unwrap();
    assert_eq!(folder.messages().len(), msgs.len());
    let sec = |text: Option<SectionText>, partial| FetchAttr::BodySection {
        peek: true,
        section: Section { part: vec![], text },
        partial,
    };
    let item_lists: Vec<Vec<FetchAttr>> = vec![
        vec![sec(None, None)],
        vec![sec(Some(SectionText::Text), None)],
        vec![
            FetchAttr::Rfc822,
            FetchAttr::Rfc822Text,
            FetchAttr::Rfc822Size,
        ],
        vec![
            FetchAttr::Binary {
                peek: true,
                part: vec![],
                partial: None,
            },
            FetchAttr::BinarySize { part: vec![] },
        ],
        vec![
            sec(None, Some((3, 10))),
            sec(Some(SectionText::Text), Some((0, 5))),
            sec(None, Some((1000, 5))),
            sec(Some(SectionText::Text), Some((2, 1))),
            FetchAttr::Binary {
                peek: true,
                part: vec![],
                partial: Some((2, 100)),
            },
        ],
        // Streamed and in-memory items of the same message together.
        vec![
            FetchAttr::Uid,
            sec(Some(SectionText::Header), None),
            sec(None, None),
            FetchAttr::BodyStructure,
            sec(Some(SectionText::Text), None),
        ],
    ];
    let streamed = Mode {
        big: 0,
        ..Mode::ALONE
    };
    for items in &item_lists {
        for (i, m) in msgs.iter().enumerate() {
            let t = Target {
                seq: i as u32 + 1,
                uid: folder.messages()[i].uid,
                recent: false,
                add_flags: false,
            };
            let want = render_chunk(&folder, &[t], items, Mode::WHOLE, &AtomicUsize::new(0))
                .unwrap_or_else(|_| panic!())
                .unwrap();
            assert!(want.holes.is_empty());
            let got = render_chunk(&folder, &[t], items, streamed, &AtomicUsize::new(0))
                .unwrap_or_else(|_| panic!())
                .unwrap();
            assert_eq!(got.done, 1);
            assert!(!m.is_empty() || got.holes.is_empty());
            if crate::message::may_have_binary(m) {
                assert!(got.holes.is_empty(), "in memory: {items:?}");
            } else if !m.is_empty() && items.iter().any(sends_body) {
                assert!(!got.holes.is_empty(), "streamed: {items:?}");
            }
            for piece in [1, 2, 3, 64 * 1024] {
                let got = render_chunk(&folder, &[t], items, streamed, &AtomicUsize::new(0))
                    .unwrap_or_else(|_| panic!())
                    .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&filled(got, piece)),
                    String::from_utf8_lossy(&want.bytes),
                    "message {m:?}, items {items:?}, pieces of {piece}"
                );
            }
        }
    }
    // In a chunk that may not stream, a big message ends the chunk.
    let chunk: Vec<Target> = (0..3)
        .map(|i| Target {
            seq: i + 1,
            uid: folder.messages()[i as usize].uid,
            recent: false,
            add_flags: false,
        })
        .collect();
    let pooled = Mode {
        big: 20,
        ..Mode::WHOLE
    };
    let r = render_chunk(
        &folder,
        &chunk,
        &item_lists[0],
        pooled,
        &AtomicUsize::new(0),
    )
    .unwrap_or_else(|_| panic!())
    .unwrap();
    // Message 1 is 31 bytes: big at 20.
    assert_eq!((r.done, r.big_next), (0, true));
    assert!(r.bytes.is_empty() && r.holes.is_empty());
    let small = Mode {
        big: 1000,
        max_out: 10,
        ..Mode::WHOLE
    };
    let r = render_chunk(&folder, &chunk, &item_lists[0], small, &AtomicUsize::new(0))
        .unwrap_or_else(|_| panic!())
        .unwrap();
    assert_eq!((r.done, r.big_next), (1, false), "stops past max_out");
    // What other chunks hold counts too, and what a chunk renders is added.
    let held = AtomicUsize::new(5_000);
    let shared = Mode {
        big: 1000,
        max_out: 5_000,
        ..Mode::WHOLE
    };
    let r = render_chunk(&folder, &chunk, &item_lists[0], shared, &held)
        .unwrap_or_else(|_| panic!())
        .unwrap();
    assert_eq!(r.done, 1, "the first message always, then no more");
    assert_eq!(held.load(Ordering::Relaxed), 5_000 + r.bytes.len());
}
