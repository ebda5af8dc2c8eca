//! Where log lines go, and in what form: the `tracing` subscriber's output for a person at
//! a terminal, a file, or systemd's journal.
//!
//! Under systemd, standard error is a stream to journald, and systemd says so in
//! `JOURNAL_STREAM` (`DEVICE:INODE` of that stream; the documented test is comparing it
//! with `fstat` of stderr, since a child may have redirected stderr since). Then each line
//! starts with a `<N>` syslog priority (sd-daemon(3); journald's `SyslogLevelPrefix=`,
//! on by default, turns it into the entry's `PRIORITY` and strips it) and carries neither a
//! timestamp nor a level word of its own (the journal keeps both). The rest of the line is
//! what a file gets, so `MESSAGE` is the same text: the fail2ban filter matches both its
//! file and its `systemd` backend, and `journalctl -u nestbox` shows the `rip=`/`user=`
//! fields in the line. `SYSLOG_IDENTIFIER` is the unit's (`SyslogIdentifier=nestbox`).
//! Workers inherit the front's stderr and keep `JOURNAL_STREAM` (`pool`), so their lines
//! get the same treatment.
//!
//! Why not `tracing-journald` (the native protocol): it puts an event's fields in journal
//! fields of their own, not in `MESSAGE`, so `journalctl`'s default output and fail2ban's
//! journal backend would no longer see the client's address, and it needs journald's
//! socket, which the stream already reaches.
//!
//! Owns the decision and the prefix; the filter and the subscriber's setup are `main.rs`'s.
use std::ffi::OsStr;
use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The environment variable systemd sets for a service whose stderr (or stdout) is the
/// journal.
pub const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

/// Whether this process's stderr is the journal stream systemd named.
pub fn stderr_is_journal() -> bool {
    let Ok(st) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    names_stream(
        std::env::var_os(JOURNAL_STREAM).as_deref(),
        st.st_dev,
        st.st_ino,
    )
}

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`, both decimal) names the file with `dev` and
/// `ino`.
pub fn names_stream(var: Option<&OsStr>, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.and_then(OsStr::to_str).and_then(|v| v.split_once(':')) else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// The syslog priority of a level (sd-daemon(3)'s `SD_ERR` and friends).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A line format that puts `<N>` before what `F` writes.
pub struct PriorityPrefix<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for PriorityPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_this_very_stream() {
        let v = |s: &str| Some(OsStr::new(s).to_owned());
        assert!(names_stream(v("8:12345").as_deref(), 8, 12345));
        assert!(!names_stream(v("8:12346").as_deref(), 8, 12345));
        assert!(!names_stream(v("9:12345").as_deref(), 8, 12345));
        for bad in ["", "8", "8:", ":12345", "8:12345:1", "x:y", " 8:12345"] {
            assert!(!names_stream(v(bad).as_deref(), 8, 12345), "{bad:?}");
        }
        assert!(!names_stream(None, 8, 12345));
    }

    #[test]
    fn levels_become_syslog_priorities() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }

    #[test]
    fn a_line_gets_its_prefix_and_no_timestamp() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .event_format(PriorityPrefix(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false),
            ))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "nestbox::auth", "auth failed: user=x rip=192.0.2.1 mech=LOGIN");
            tracing::info!(rip = "192.0.2.1", "imap connect");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "<4>nestbox::auth: auth failed: user=x rip=192.0.2.1 mech=LOGIN",
                "<6>nestbox::logging::tests: imap connect rip=\"192.0.2.1\"",
            ]
        );
    }
}
