//! IDLE (RFC 2177, RFC 9051 §6.3.13): push changes until the client sends
//! DONE.
//!
//! The session waits on three things at once: the client's next line, the
//! selected folder's change signal (raised by the store whenever anyone
//! changes the folder) and a keepalive timer. Reading is cancel-safe: bytes
//! are only taken from the socket into the framer, never half-consumed.

use crate::proto::response::StatusKind;
use std::time::Duration;

use crate::session::{CmdResult, Session, State, Status};

pub async fn idle(s: &mut Session, _tag: &str) -> CmdResult {
    let mut changes = match &s.state {
        State::Selected(_, view) => Some(view.watch.clone()),
        _ => None,
    };
    s.line("+ idling");
    s.report_changes(true).await?;
    s.flush()
        .await
        .map_err(|_| Status::bad("Connection lost."))?;
    let mut shutdown = s.shared.shutdown.clone();
    let deadline = tokio::time::Instant::now() + s.shared.config.limits.idle_timeout;
    // `limits.idle_keepalive`: well under the usual NAT idle timeouts.
    let every = s.shared.config.limits.idle_keepalive;
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        let changed = async {
            match changes.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
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
            ok = changed => {
                if !ok {
                    changes = None;
                    continue;
                }
                s.report_changes(true).await?;
                s.flush().await.map_err(|_| Status::bad("Connection lost."))?;
            }
            _ = keepalive.tick() => {
                s.untagged(StatusKind::Ok, None, "Still here");
                s.flush().await.map_err(|_| Status::bad("Connection lost."))?;
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
