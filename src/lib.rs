//! nestbox: a Maildir-backed IMAP4rev2/IMAP4rev1 and POP3 server for
//! self-hosters.
//!
//! The Maildir is the only truth: folders are Maildir++ `.A.B` directories,
//! flags are the file names' `:2,` suffix, UIDs live in Dovecot's
//! `dovecot-uidlist`; everything nestbox keeps beside them (`nestbox.index`,
//! `nestbox.cache`) can be deleted and is rebuilt with the same UIDs.
//!
//! # Layout: a command's path from socket to disk
//! - [`server`]: two kinds of process. The front (`server::run`): listeners,
//!   TLS (implicit and STARTTLS), connection limits, signals, the PROXY
//!   header of a trusted mail proxy (`server::proxy_protocol`); one task per
//!   connection runs a [`session::Session`] (POP3: a [`pop3::Pop3`]) until
//!   login, then hands the connection to the worker process of the user's
//!   uid (`server::pool`, `server::handoff` over `server::channel`) and
//!   relays its bytes (`server::relay`). A worker (`server::worker`) runs the logged-in
//!   sessions of one uid, with one folder registry with live sync
//!   ([`store::Registry::live`]).
//! - [`proto`]: the IMAP grammar, pure: the framer cuts the byte stream into
//!   commands under size caps, the parser (`proto::parse`, one file per
//!   part of the grammar: tokens, values, mailbox commands, APPEND, SEARCH,
//!   SORT, FETCH, STORE) turns one into a [`proto::Command`], `encode`
//!   writes response pieces; `proto::chars` holds the character classes
//!   the framer and the parser share.
//! - [`session`]: the state machine (not authenticated, authenticated,
//!   selected, logout); `session/cmd/` has one file per command; the
//!   selected mailbox's per-session view (sequence numbers, pending
//!   expunges) is `session::view`; big APPEND literals go to disk as they
//!   arrive (`session::literal`, into a `store::Spool`); what SEARCH, SORT
//!   and THREAD mean is `session::search`, `session::sort` and
//!   `session::thread`, pure. What several commands share lives beside
//!   them, never in one of them: `session::mailboxes` (the LIST name space,
//!   LIST and STATUS lines), `session::unlocked` (store calls that wait
//!   for another program's folder lock without a thread), `session::names`
//!   (mailbox names on the wire), `session::evaluate` (a search program
//!   run over a folder: SEARCH, SORT, THREAD), `session::digest` (the
//!   cached digest of common header fields, from the cache or made and
//!   cached: FETCH, SEARCH, SORT, THREAD), `session::sorted` (the values
//!   SORT and THREAD order by), `session::esearch` and `session::context`
//!   (ESEARCH answers and live UPDATE contexts). No command file imports
//!   another; the responses they send are typed in `proto::data` and
//!   `proto::response`. The session's own parts: `session::conn` (stream,
//!   process-wide parts, handover), `session::input` (reading the client:
//!   frames, raw lines, what ends a wait), `session::compress` (the
//!   COMPRESS=DEFLATE stream layer), `session::state` (states carrying
//!   their data), `session::status` (the one error model),
//!   `session::offload` (blocking work off the runtime).
//! - [`store`]: one user's Maildir++ behind a synchronous API (callers use
//!   `spawn_blocking`, or a nowait scope): folders, UIDs, flags, sync with
//!   the disk, saving; the registry of open folders, which owns their
//!   lifetime and their live sync (`store::live`, fed by [`watch`]); a
//!   session reads a folder's changes with one call that never blocks
//!   ([`store::Folder::changes`]).
//! - [`message`]: one stored message as bytes, the leaf under both the
//!   store and `mime`: its MIME part tree, which bytes are served as
//!   stored (binary parts), the CRLF form IMAP serves and its size
//!   ([`message::crlf_size`], RFC822.SIZE: the store's `,W=` and FETCH's
//!   number are this one function).
//! - [`mime`]: message content for FETCH, SEARCH and SORT (ENVELOPE,
//!   BODYSTRUCTURE, sections, BINARY, text search, base subjects, the
//!   i;unicode-casemap collation), rendered from `message`.
//! - [`watch`]: the process's one inotify watcher (polling fallback).
//! - [`pop3`]: POP3 beside IMAP, in the same two processes: its grammar
//!   and replies (pure), the AUTHORIZATION state run in the front until
//!   login, then TRANSACTION and UPDATE in the user's worker over a
//!   maildrop (`pop3::maildrop`: INBOX fixed at login) that works through
//!   the same folder registry as the user's IMAP sessions.
//! - [`auth`]: passwd-file and PAM users, SASL, failure throttling, and
//!   the one login sequence both protocols go through (`auth::login`:
//!   delay, check, per-user protocol rules, LOGIN-DELAY, logging).
//! - [`admin`]: operator commands beside the server (`nestbox quota`,
//!   doing each user's Maildir work in a helper process running as that
//!   user; `nestbox import-dovecot`, which reads configuration only).
//! - [`config`], [`demo`], [`flags`] (shared flag vocabulary), [`mutf7`], [`logging`]
//!   (log lines for a terminal, a file or the journal).
//!
//! Outside tests, nothing here calls `unwrap` or `expect`: a client's bytes
//! or a file on disk can never reach a panic that way (enforced below).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
pub mod admin;
pub mod auth;
pub mod config;
pub mod demo;
pub mod flags;
pub mod logging;
pub mod message;
pub mod mime;
pub mod mutf7;
pub mod pop3;
pub mod proto;
pub mod server;
pub mod session;
pub mod store;
pub mod watch;
