//! The IMAP session state machine (RFC 9051 §3, RFC 3501 §3).
//!
//! One [`Session`] per connection, driven over any `AsyncRead + AsyncWrite`
//! stream. It owns the connection's state ([`State`]: not authenticated,
//! authenticated, selected, logout), frames and parses commands through
//! `proto`, checks that each command is legal in the current state before
//! dispatching it to its handler under `session/cmd/`, and turns every
//! outcome into exactly one tagged response.
//!
//! The same state machine runs in both kinds of process (SPEC §4): in the
//! front, from the greeting until a successful login, which ends it with a
//! [`Handover`] (the server then moves the connection to the user's worker);
//! in a worker, from that login on ([`Session::resume`]). Which one it is
//! is [`Shared::role`]; the session knows no processes or sockets beyond it.
//!
//! What it must never do: touch the filesystem other than through
//! `store` (and only inside `spawn_blocking`), hold global state beyond the
//! user's mail store and the process-wide folder registry, or panic on
//! anything a client sends.
//!
//! Failure classes (STYLE §3) meet in one place, [`Status`]: client mistakes
//! are `BAD`, refusals are `NO` with a response code, our own faults are
//! `NO [SERVERBUG]` and logged.

pub mod caps;
pub mod cmd;
mod compress;
pub(crate) mod condstore;
mod conn;
pub mod context;
pub(crate) mod digest;
pub(crate) mod esearch;
pub(crate) mod evaluate;
pub(crate) mod forwarded;
mod input;
mod literal;
pub(crate) mod mailboxes;
pub mod names;
pub(crate) mod notify;
mod offload;
pub(crate) mod qresync;
pub mod search;
pub(crate) mod sort;
pub(crate) mod sorted;
mod state;
mod status;
pub(crate) mod thread;
pub(crate) mod unlocked;
pub mod view;

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::auth::User;
use crate::proto::frame::{Frame, FrameLimits, Framer, Limit};
use crate::proto::parse::{ParseError, parse_command_diverted};
use crate::proto::response::{self, Code, StatusKind};
use crate::proto::{Command, CommandBody};
use crate::store::{MailStore, Spool, StoreOptions};

pub use view::SelectedView;

use input::Input;

pub(crate) use conn::upgrade_in_place;
pub use conn::{ConnInfo, Handover, Io, Role, Shared, TlsUpgrade, UpgradeFuture, downcast};

/// See [`Session::count_client_with`].
pub type CountClient = Box<dyn FnMut(std::net::IpAddr) -> bool + Send>;
pub use offload::blocking;
pub(crate) use offload::{cpus, metas_of, modseqs_of, nowait_scope};
pub use state::{Authed, Enabled, State};
pub use status::{CmdResult, Status};

/// Outgoing bytes are collected here and flushed at command boundaries (or
/// when large), so a command's responses cost one write in the common case.
/// Also the bound on what a session renders ahead of its socket (issue 15):
/// a FETCH writes once `out` passes this, and while the write waits for a
/// slow client nothing more is rendered and no further command is read. 256
/// KiB: a few hundred writes for a 50 MB message, each large enough for
/// full TLS records, and 2.5 MB for ten connections that stopped reading.
const FLUSH_AT: usize = 256 * 1024;

/// An output buffer grown past this is given back when the session waits
/// for its client: an idle connection keeps a small one (SPEC §8), a burst
/// of big responses does not reallocate on every write.
const OUT_KEEP: usize = 64 * 1024;

/// Bytes read from the socket at a time. Every idle connection's task holds
/// one such buffer while it waits, so it is kept small (memory per idle
/// connection is a stated target, SPEC §8).
const READ_CHUNK: usize = 4096;

/// Before login, the largest literal and the longest command line, and the
/// cap on a whole command: a LOGIN with literal user name and password, or
/// an AUTHENTICATE initial response, needs a few hundred bytes. A stranger
/// can make the server hold no more than this per connection (issue 15: the
/// full `max_literal_bytes`, 50 MB, used to be accepted and buffered before
/// login, twice in one LOGIN). Fixed, not configured: no login needs more.
const PREAUTH_LITERAL: u64 = 8 * 1024;
const PREAUTH_LINE: usize = 8 * 1024;
const PREAUTH_COMMAND: u64 = 16 * 1024;

/// One IMAP connection.
pub struct Session {
    pub(crate) io: Option<Box<dyn Io>>,
    pub(crate) framer: Framer,
    pub(crate) out: Vec<u8>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: ConnInfo,
    pub(crate) state: State,
    pub(crate) enabled: Enabled,
    /// Set by handlers that need the stream replaced after the tagged
    /// response (STARTTLS).
    pub(crate) pending_starttls: bool,
    /// Set by COMPRESS DEFLATE: the stream becomes `compress::Deflate`
    /// right after the tagged OK is flushed (RFC 4978 §3).
    pub(crate) pending_compress: bool,
    /// The client has used a UID command: it tracks messages by UID, so
    /// unsolicited FETCH responses carry the UID too.
    pub(crate) uid_commands: bool,
    /// When a connection that has not logged in is dropped
    /// (`limits.login_timeout` after it was accepted), however it trickles.
    login_deadline: tokio::time::Instant,
    /// Set by a successful login in the front: the user, then (with the
    /// command's tag) the hand-over that ends this session here.
    pub(crate) logged_in_user: Option<User>,
    handover: Option<(String, User)>,
    /// Whatever counts this connection as not logged in (the front's
    /// `limits.max_unauthenticated` place): dropped at login. Opaque here,
    /// so the session does not depend on the server's limiter.
    preauth: Option<Box<dyn std::any::Any + Send>>,
    /// Counts the connection under the client address a trusted proxy's `ID`
    /// names (the front's `limits.max_connections_per_ip`); `false`: that
    /// address is at its limit. Used once (`cmd::misc::id`).
    pub(crate) count_client: Option<CountClient>,
    /// The spool file of the APPEND being received, holding its big
    /// messages (`session::literal`); taken by APPEND, dropped with any
    /// other end of the command.
    pub(crate) spool: Option<Spool>,
    /// What NOTIFY asked for (RFC 5465), while it is on.
    pub(crate) notify: Option<Box<notify::Notifier>>,
    /// Told the selected folder whenever it changes (`observe_selection`).
    selection: Option<(SelectionObserver, Option<String>)>,
}

/// Called with the selected folder's name (`None`: none selected) each time it changes;
/// a worker passes it on to the front for `nestbox who`.
pub type SelectionObserver = Box<dyn FnMut(Option<&str>) + Send>;

impl Session {
    pub fn new(io: Box<dyn Io>, shared: Arc<Shared>, conn: ConnInfo) -> Self {
        let limits = FrameLimits {
            max_line: shared.config.limits.max_command_bytes.min(PREAUTH_LINE),
            max_literal: PREAUTH_LITERAL,
        };
        let mut framer = Framer::new(limits);
        framer.set_max_command(PREAUTH_COMMAND);
        let login_deadline = tokio::time::Instant::now() + shared.config.limits.login_timeout;
        Session {
            io: Some(io),
            framer,
            out: Vec::with_capacity(512),
            shared,
            conn,
            state: State::NotAuthenticated,
            enabled: Enabled::default(),
            pending_starttls: false,
            pending_compress: false,
            uid_commands: false,
            login_deadline,
            logged_in_user: None,
            handover: None,
            preauth: None,
            count_client: None,
            spool: None,
            notify: None,
            selection: None,
        }
    }

    /// Has `observer` told the selected folder after every command that changes it.
    pub fn observe_selection(&mut self, observer: SelectionObserver) {
        self.selection = Some((observer, None));
    }

    /// Tells the observer, if any, when the selected folder is not the one last told.
    fn report_selection(&mut self) {
        let Some((observer, last)) = &mut self.selection else {
            return;
        };
        let now = match &self.state {
            State::Selected(_, view) => Some(view.name.as_str()),
            _ => None,
        };
        if now != last.as_deref() {
            observer(now);
            *last = now.map(str::to_owned);
        }
    }

    /// Holds `guard` until the client logs in (or the connection ends),
    /// then drops it: how the front counts connections not logged in.
    pub fn hold_until_login(&mut self, guard: Box<dyn std::any::Any + Send>) {
        self.preauth = Some(guard);
    }

    /// How to count the connection per address once a trusted proxy's `ID`
    /// names its client (the front's limiter, kept opaque here).
    pub fn count_client_with(&mut self, count: CountClient) {
        self.count_client = Some(count);
    }

    /// Lifts the framing caps to the configured ones once the client has
    /// logged in (SPEC §3 `max_command_bytes`, `max_literal_bytes`).
    pub(crate) fn logged_in(&mut self) {
        // No longer one of `limits.max_unauthenticated`.
        self.preauth = None;
        let l = &self.shared.config.limits;
        self.framer.set_limits(FrameLimits {
            max_line: l.max_command_bytes,
            max_literal: l.max_literal_bytes,
        });
        // MULTIAPPEND may carry several literals; bound the whole command too.
        self.framer
            .set_max_command(l.max_literal_bytes.saturating_mul(2));
        // Past a command line's worth, literals are held in memory only up
        // to a bound, and only for APPEND (`session::literal`).
        self.framer.set_ask_above(l.max_command_bytes as u64);
    }

    /// Serves a new connection from the greeting on, until LOGOUT, EOF,
    /// timeout or shutdown, or (in the front) until the client logs in: then
    /// the connection is returned for a worker to continue.
    pub async fn run(mut self) -> Option<Handover> {
        let caps = caps::capability_line(&self);
        let text = format!("{} nestbox ready.", self.shared.config.hostname);
        self.untagged(StatusKind::Ok, Some(Code::Capability(caps)), &text);
        if self.flush().await.is_err() {
            return None;
        }
        self.serve().await
    }

    /// Continues, in a worker, a session the front handed over right after
    /// `user` logged in with the command tagged `tag`: opens the user's
    /// store, answers that command, then serves the connection, starting
    /// with the bytes the client had already `pipelined`.
    pub async fn resume(mut self, user: User, tag: &str, pipelined: &[u8]) {
        self.framer.push(pipelined);
        self.logged_in();
        let Role::Worker { registry } = &self.shared.role else {
            return;
        };
        let registry = registry.clone();
        let root = user.maildir.clone();
        let opened = blocking(move || MailStore::open(root, registry, StoreOptions::default()))
            .await
            .map_err(|s| s.text)
            .and_then(|r| r.map_err(|e| e.to_string()));
        match opened {
            Ok(store) => {
                self.state = State::Authenticated(Authed {
                    user,
                    store: Arc::new(store),
                });
                let caps = caps::capability_line(&self);
                self.tagged(tag, &Status::ok_code(Code::Capability(caps), "Logged in."));
            }
            Err(e) => {
                tracing::error!(user = %user.name, "cannot open mail store {}: {e}", user.maildir.display());
                self.tagged(
                    tag,
                    &Status::no(Some(Code::Unavailable), "Mail store unavailable."),
                );
                self.untagged(
                    StatusKind::Bye,
                    None,
                    "Mail store unavailable, try again later.",
                );
                // The serving loop ends at once in Logout: say it before.
                let _ = self.flush().await;
                if let Some(mut io) = self.io.take() {
                    let _ = io.shutdown().await;
                }
                return;
            }
        }
        let _ = self.serve().await;
    }

    async fn serve(&mut self) -> Option<Handover> {
        loop {
            if matches!(self.state, State::Logout) {
                break;
            }
            let input = match self.read_frame().await {
                Ok(i) => i,
                Err(e) => {
                    tracing::debug!(remote = %self.conn.remote, "read error: {e}");
                    break;
                }
            };
            match input {
                Input::Eof => break,
                Input::Timeout if matches!(self.state, State::NotAuthenticated) => {
                    tracing::info!(
                        rip = %self.conn.remote.ip(),
                        "no login within limits.login_timeout ({:?}); disconnecting",
                        self.shared.config.limits.login_timeout
                    );
                    self.untagged(StatusKind::Bye, None, "Login took too long.");
                    let _ = self.flush().await;
                    break;
                }
                Input::Timeout => {
                    self.untagged(StatusKind::Bye, None, "Disconnected for inactivity.");
                    let _ = self.flush().await;
                    break;
                }
                Input::Shutdown => {
                    self.untagged(StatusKind::Bye, None, "Server shutting down.");
                    let _ = self.flush().await;
                    break;
                }
                Input::Notify(w) => {
                    if let Err(e) = self.notify_wake(w).await {
                        tracing::warn!("NOTIFY event failed: {}", e.text);
                    }
                }
                Input::Frame(Frame::NeedContinuation { .. }) => {
                    self.line("+ OK");
                }
                // Answered where it is read (`read_frame`).
                Input::Frame(Frame::BigLiteral { .. }) => {}
                Input::Frame(Frame::TooLarge { tag, text, limit }) => {
                    self.discard_spool();
                    // A too-long line is malformed input (BAD); a too-large
                    // literal or command a refusal (NO [TOOBIG], RFC 7889).
                    let (kind, code) = if limit == Limit::Line {
                        (StatusKind::Bad, None)
                    } else {
                        (StatusKind::No, Some(Code::TooBig))
                    };
                    response::status_line(
                        &mut self.out,
                        tag.as_deref(),
                        kind,
                        code.as_ref(),
                        &text,
                    );
                }
                Input::Frame(Frame::Command { bytes, diverted }) => {
                    self.handle_bytes(&bytes, &diverted).await;
                    // Whatever APPEND did not take.
                    self.discard_spool();
                }
            }
            // Responses to pipelined commands go out together: `read_frame`
            // flushes before it waits for input, so output waits here only
            // while the next command is already buffered.
            let must_flush = self.pending_starttls
                || self.pending_compress
                || self.handover.is_some()
                || matches!(self.state, State::Logout);
            let flushed = if must_flush {
                self.flush().await
            } else {
                self.maybe_flush().await
            };
            if flushed.is_err() {
                break;
            }
            if self.pending_starttls {
                self.pending_starttls = false;
                if !self.start_tls().await {
                    break;
                }
            }
            if self.pending_compress {
                self.pending_compress = false;
                self.start_compress();
            }
            if let Some((tag, user)) = self.handover.take() {
                let io = self.io.take()?;
                return Some(Handover {
                    io,
                    conn: self.conn.clone(),
                    tag,
                    user,
                    pipelined: self.framer.take_unread(),
                    protocol: crate::pop3::Protocol::Imap,
                });
            }
        }
        self.close_selected();
        self.discard_spool();
        if let Some(mut io) = self.io.take() {
            let _ = io.shutdown().await;
        }
        None
    }

    async fn handle_bytes(&mut self, bytes: &[u8], diverted: &[usize]) {
        match parse_command_diverted(bytes, diverted) {
            Ok(cmd) => self.dispatch(cmd).await,
            Err(ParseError::Bad { tag, text }) => {
                response::status_line(&mut self.out, tag.as_deref(), StatusKind::Bad, None, &text);
            }
            Err(ParseError::BadCharset { tag }) => {
                let code = Code::BadCharset(vec!["UTF-8", "US-ASCII"]);
                let st = Status::no(Some(code), "Unsupported charset.");
                self.tagged(&tag, &st);
            }
        }
    }

    /// Checks the command is legal in this state, runs it, writes the
    /// pending untagged updates the rules allow, then the tagged status.
    async fn dispatch(&mut self, cmd: Command) {
        let Command { tag, body } = cmd;
        let name = body.name();
        if let Err(status) = self.check_state(&body) {
            self.tagged(&tag, &status);
            return;
        }
        // RFC 9051 §7.5.1: no EXPUNGE during FETCH, STORE or SEARCH, nor
        // during their non-UID forms at all.
        let expunge_ok = match &body {
            CommandBody::Fetch { uid, .. } | CommandBody::Store { uid, .. } => *uid,
            CommandBody::Search(s) => s.uid,
            CommandBody::Sort(s) => s.uid,
            CommandBody::Thread(t) => t.uid,
            CommandBody::Copy { uid, .. } => *uid,
            _ => true,
        };
        self.uid_commands |= match &body {
            CommandBody::Replace { uid, .. }
            | CommandBody::Fetch { uid, .. }
            | CommandBody::Store { uid, .. }
            | CommandBody::Copy { uid, .. }
            | CommandBody::Move { uid, .. } => *uid,
            CommandBody::Search(s) => s.uid,
            CommandBody::Sort(s) => s.uid,
            CommandBody::Thread(t) => t.uid,
            CommandBody::Expunge { uids } => uids.is_some(),
            _ => false,
        };
        let tag_for_handler = tag.clone();
        let result = cmd::run(self, &tag_for_handler, body).await;
        if let Some(user) = self.logged_in_user.take() {
            // The worker answers this command (`Session::resume`).
            self.handover = Some((tag, user));
            return;
        }
        let status = match result {
            Ok(s) | Err(s) => s,
        };
        if matches!(self.state, State::Selected(..)) && status.kind != StatusKind::Bad {
            if let Err(e) = self.report_changes(expunge_ok).await {
                tracing::warn!("update after {name} failed: {}", e.text);
            }
        }
        self.tagged(&tag, &status);
        self.report_selection();
        // NOTIFY: the selected mailbox has its own events, the others are
        // watched (a SELECT, CLOSE, DELETE of the selected one...). Not
        // after COMPRESS's OK: nothing may follow it uncompressed (RFC 4978
        // §3), and it changed no selection.
        if self.notify.is_some() && !self.pending_compress {
            if let Err(e) = self.notify_selection_changed().await {
                tracing::warn!("NOTIFY after {name} failed: {}", e.text);
            }
        }
    }

    fn check_state(&self, body: &CommandBody) -> Result<(), Status> {
        use CommandBody as C;
        let ok = match body {
            C::Capability | C::Noop | C::Logout | C::Id(_) => true,
            C::StartTls | C::Authenticate { .. } | C::Login { .. } => {
                matches!(self.state, State::NotAuthenticated)
            }
            C::Enable(_)
            | C::Compress(_)
            | C::Select { .. }
            | C::Create { .. }
            | C::Delete(_)
            | C::Rename { .. }
            | C::Subscribe(_)
            | C::Unsubscribe(_)
            | C::List(_)
            | C::Lsub { .. }
            | C::Namespace
            | C::Status { .. }
            | C::Append { .. }
            | C::Idle
            | C::Notify(_)
            | C::GetQuota(_)
            | C::GetQuotaRoot(_)
            | C::SetQuota { .. } => self.state.authed().is_some(),
            C::Check
            | C::Close
            | C::Unselect
            | C::Expunge { .. }
            | C::Search(_)
            | C::Sort(_)
            | C::Thread(_)
            | C::CancelUpdate(_)
            | C::Fetch { .. }
            | C::Store { .. }
            | C::Copy { .. }
            | C::Move { .. }
            | C::Replace { .. } => matches!(self.state, State::Selected(..)),
        };
        if ok {
            return Ok(());
        }
        Err(match (&self.state, body) {
            (State::NotAuthenticated, _) => {
                Status::bad(format!("{} requires authentication.", body.name()))
            }
            (_, C::StartTls | C::Authenticate { .. } | C::Login { .. }) => {
                Status::bad("Already authenticated.")
            }
            _ => Status::bad(format!("{} requires a selected mailbox.", body.name())),
        })
    }

    /// Lends the selected mailbox's view to a Selected-state command, which
    /// gets it as a parameter instead of digging it out of the state (so
    /// it cannot be written against the wrong state). The session stays
    /// authenticated meanwhile; [`Session::restore_view`] puts it back.
    pub(crate) fn take_view(&mut self) -> Option<Box<SelectedView>> {
        match std::mem::replace(&mut self.state, State::Logout) {
            State::Selected(a, v) => {
                self.state = State::Authenticated(a);
                Some(v)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Returns the view [`Session::take_view`] lent out.
    pub(crate) fn restore_view(&mut self, view: Box<SelectedView>) {
        match std::mem::replace(&mut self.state, State::Logout) {
            State::Authenticated(a) => self.state = State::Selected(a, view),
            // No Selected-state command leaves the authenticated state;
            // if one ever did, its state stands and the view is dropped.
            other => self.state = other,
        }
    }

    /// The user's mail store (commands that need it run only once
    /// authenticated; `check_state` has made sure of that).
    pub(crate) fn store(&self) -> Result<Arc<MailStore>, Status> {
        self.state
            .authed()
            .map(|a| a.store.clone())
            .ok_or_else(|| Status::bad("Not authenticated."))
    }

    /// Queues one response line (CRLF added).
    pub(crate) fn line(&mut self, s: impl AsRef<[u8]>) {
        self.out.extend_from_slice(s.as_ref());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Queues one untagged data response.
    pub(crate) fn data(&mut self, d: &crate::proto::data::Data<'_>) {
        crate::proto::data::write(&mut self.out, d);
    }

    pub(crate) fn tagged(&mut self, tag: &str, st: &Status) {
        response::status_line(
            &mut self.out,
            Some(tag),
            st.kind,
            st.code.as_ref(),
            &st.text,
        );
    }

    /// An untagged status response (`* OK [code] text`, `* BYE text`).
    pub(crate) fn untagged(&mut self, kind: StatusKind, code: Option<Code>, text: &str) {
        response::status_line(&mut self.out, None, kind, code.as_ref(), text);
    }

    /// Writes out what is queued.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stream gone"))?;
        io.write_all(&self.out).await?;
        io.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// Flushes only when the queue is large (inside long FETCH responses).
    pub(crate) async fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await
        } else {
            Ok(())
        }
    }

    /// STARTTLS after the tagged OK went out. Returns false if the
    /// connection must close.
    async fn start_tls(&mut self) -> bool {
        let tls = self.shared.tls.clone();
        match conn::upgrade_in_place(tls, &mut self.io, &mut self.conn).await {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(remote = %self.conn.remote, "STARTTLS handshake failed: {e}");
                false
            }
        }
    }

    /// Leaves the selected state without expunging (connection end).
    fn close_selected(&mut self) {
        self.state.leave_selected();
    }

    /// Sends the untagged updates for changes made by anyone (this session
    /// included) since they were last reported.
    pub(crate) async fn report_changes(&mut self, expunge_ok: bool) -> Result<(), Status> {
        self.report_changes_with(expunge_ok, true).await
    }

    /// [`Session::report_changes`]; without `flags_ok`, flag changes wait
    /// for a later report (`SelectedView::report_changes_with`).
    pub(crate) async fn report_changes_with(
        &mut self,
        expunge_ok: bool,
        flags_ok: bool,
    ) -> Result<(), Status> {
        let enabled = self.enabled;
        let State::Selected(_, view) = &mut self.state else {
            return Ok(());
        };
        let mut lines = Vec::new();
        let valid = view
            .report_changes_with(expunge_ok, flags_ok, enabled, self.uid_commands, &mut lines)
            .await?;
        if let Some(floor) = view.unsent_floor().filter(|_| enabled.qresync) {
            crate::proto::response::status_line(
                &mut lines,
                None,
                StatusKind::Ok,
                Some(&Code::HighestModSeq(floor)),
                "Expunges not told yet.",
            );
        }
        // The update contexts' ADDTO/REMOVEFROM, after the EXISTS and
        // FETCH responses they follow from (RFC 5267 §4.3.3). What the
        // view wrote goes out even if this fails.
        let updated = if valid {
            context::update(view, &mut lines).await
        } else {
            Ok(())
        };
        self.out.extend_from_slice(&lines);
        if !valid {
            tracing::warn!(folder = %view.name, "selected folder deleted or replaced; disconnecting the session");
            self.untagged(
                StatusKind::Bye,
                None,
                "Selected mailbox was deleted or replaced (UIDVALIDITY changed), please reconnect.",
            );
            self.state.leave_selected();
            self.state = State::Logout;
        }
        updated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::StoreError;

    #[test]
    fn plaintext_ok_knows_loopback_in_every_spelling() {
        let on = Config::default();
        let mut off = Config::default();
        off.auth.plaintext_on_loopback = false;
        // (peer, tls, allowed with plaintext_on_loopback on, allowed with it off)
        for (peer, tls, want_on, want_off) in [
            ("127.0.0.1:5000", false, true, false),
            // 127.0.0.1 as the default `[::]` listener sees it.
            ("[::ffff:127.0.0.1]:5000", false, true, false),
            ("[::1]:5000", false, true, false),
            ("192.0.2.1:5000", false, false, false),
            ("[::ffff:192.0.2.1]:5000", false, false, false),
            ("[::ffff:192.0.2.1]:5000", true, true, true),
        ] {
            let conn = ConnInfo::direct(peer.parse().unwrap(), tls, None);
            assert_eq!(conn.plaintext_ok(&on), want_on, "{peer} tls={tls}");
            assert_eq!(conn.plaintext_ok(&off), want_off, "{peer} tls={tls} off");
        }
    }

    #[test]
    fn plaintext_ok_asks_about_the_peer_not_the_client_a_proxy_names() {
        let mut cfg = Config::default();
        cfg.proxy.trusted_networks = vec!["10.0.0.0/8".parse().unwrap()];
        let via = |client: &str, peer: &str| ConnInfo {
            remote: client.parse().unwrap(),
            peer: peer.parse().unwrap(),
            session_id: None,
            tls: false,
            tcp: None,
        };
        // nginx on this machine: the client is remote, the wire is loopback.
        assert!(via("203.0.113.5:1", "127.0.0.1:2").plaintext_ok(&cfg));
        // A client claiming loopback through a remote proxy is not on loopback.
        assert!(!via("127.0.0.1:1", "10.0.0.9:2").plaintext_ok(&cfg));
        // A trusted proxy elsewhere: only with proxy.trust_plaintext.
        assert!(!via("203.0.113.5:1", "10.0.0.9:2").plaintext_ok(&cfg));
        cfg.proxy.trust_plaintext = true;
        assert!(via("203.0.113.5:1", "10.0.0.9:2").plaintext_ok(&cfg));
        assert!(!via("203.0.113.5:1", "192.0.2.9:2").plaintext_ok(&cfg));
    }

    #[test]
    fn names_too_long_are_cannot_not_serverbug() {
        let enametoolong = std::io::Error::from_raw_os_error(libc::ENAMETOOLONG);
        for e in [StoreError::NameTooLong, StoreError::Io(enametoolong)] {
            let st = Status::from(e);
            assert_eq!(st.code, Some(Code::Cannot));
            assert_eq!(st.text, "Mailbox name too long.");
        }
        let other = Status::from(StoreError::Io(std::io::Error::from_raw_os_error(libc::EIO)));
        assert_eq!(other.code, Some(Code::ServerBug));
    }
}
