//! IDLE (RFC 2177, RFC 9051 §6.3.13): push changes until the client sends
//! DONE.
//!
//! The session waits on three things at once: the client's next line, the
//! selected folder's change signal (raised by the store whenever anyone
//! changes the folder) and a keepalive timer. Reading is cancel-safe: bytes
//! are only taken from the socket into the framer, never half-consumed.

use crate::proto::response::StatusKind;
use std::time::Duration;

use crate::session::notify::{Notifier, Wake};
use crate::session::{CmdResult, Session, State, Status};

/// With NOTIFY on, IDLE sends exactly the events NOTIFY asked for (RFC
/// 5465 §4), for the selected mailbox too; the notifier is lent out of the
/// session for the command's length (it is waited on beside the socket).
pub async fn idle(s: &mut Session, tag: &str) -> CmdResult {
    let mut notifier = s.notify.take();
    let r = idle_with(s, tag, &mut notifier).await;
    if s.notify.is_none() {
        s.notify = notifier;
    }
    r
}

/// What woke IDLE besides the client.
enum Event {
    /// The selected mailbox changed (`false`: its signal is gone).
    Selected(bool),
    Notify(Wake),
}

async fn idle_with(s: &mut Session, _tag: &str, notifier: &mut Option<Box<Notifier>>) -> CmdResult {
    let mut changes = match &s.state {
        State::Selected(_, view) => Some(view.watch.clone()),
        _ => None,
    };
    s.line("+ idling");
    s.report_changes(true).await?;
    s.flush()
        .await
        .map_err(|_| Status::bad("Connection lost."))?;
    // IDLE is a long wait: COMPRESS's deflater goes meanwhile
    // (`session::compress`), and after each push again.
    s.rest_compressor();
    let mut shutdown = s.shared.shutdown.clone();
    let deadline = tokio::time::Instant::now() + s.shared.config.limits.idle_timeout;
    // `limits.idle_keepalive`: well under the usual NAT idle timeouts.
    let every = s.shared.config.limits.idle_keepalive;
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        let changed = async {
            match (notifier.as_mut(), changes.as_mut()) {
                (Some(n), rx) => Event::Notify(n.wait(rx).await),
                (None, Some(rx)) => Event::Selected(rx.changed().await.is_ok()),
                (None, None) => std::future::pending().await,
            }
        };
        tokio::select! {
            line = s.read_line(Duration::from_secs(3600)) => {
                match line {
                    Ok(Some(l)) if l.trim_ascii().eq_ignore_ascii_case(b"DONE") => {
                        return Ok(Status::ok("IDLE terminated."));
                    }
                    Ok(Some(_)) => return Err(Status::bad("Expected DONE.")),
                    Ok(None) => {}
                    Err(_) => {
                        s.state = State::Logout;
                        return Err(Status::bad("Connection lost."));
                    }
                }
            }
            event = changed => {
                match event {
                    Event::Selected(false) => {
                        changes = None;
                        continue;
                    }
                    Event::Selected(true) => s.report_changes(true).await?,
                    Event::Notify(w) => {
                        s.notify = notifier.take();
                        let r = s.notify_wake(w).await;
                        *notifier = s.notify.take();
                        r?;
                    }
                }
                s.flush().await.map_err(|_| Status::bad("Connection lost."))?;
                s.rest_compressor();
            }
            _ = keepalive.tick() => {
                s.untagged(StatusKind::Ok, None, "Still here");
                s.flush().await.map_err(|_| Status::bad("Connection lost."))?;
                s.rest_compressor();
            }
            _ = tokio::time::sleep_until(deadline) => {
                s.untagged(StatusKind::Bye, None, "IDLE timed out.");
                s.state = State::Logout;
                return Err(Status::bad("IDLE timed out."));
            }
            _ = shutdown.changed() => {
                s.untagged(StatusKind::Bye, None, "Server shutting down.");
                s.state = State::Logout;
                return Err(Status::bad("Server shutting down."));
            }
        }
    }
}
