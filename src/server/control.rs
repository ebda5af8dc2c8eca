//! The front's control socket, which `nestbox who` asks for the logged-in sessions, and
//! the table of those sessions it answers from.
//!
//! The socket is a Unix stream socket (`server.control_socket`, by default
//! `/run/nestbox/control`) in a directory only root may enter (created 0700 when missing;
//! the unit's `RuntimeDirectory=` makes it so under systemd), the socket itself 0600, and
//! every connection's peer is checked with `SO_PEERCRED`: only uid 0 gets an answer, so a
//! directory left open by mistake still shows no one who is reading mail from where. The
//! exchange is one request line (`who`) and one JSON reply ([`Reply`]), then the server
//! closes; [`ask`] is the client's side.
//!
//! The table ([`Sessions`]) has a row per logged-in session, added by `run` before the
//! hand-over to the worker and removed when the session ends. User, address, protocol, TLS
//! and the login time are the front's own; the selected folder is only known in the worker,
//! which reports each change (`FromWorker::Selected`, read by `pool`). Sessions that have
//! not logged in are not listed: they have no user yet.
//!
//! Never touches mail, and never answers anyone but root.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// How long a client has to send its request, and `ask` to get the reply.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One logged-in session, as `nestbox who` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SessionRow {
    pub user: String,
    /// The client's address and port.
    pub address: SocketAddr,
    /// `imap` or `pop3`.
    pub protocol: String,
    /// The selected folder of an IMAP session (`None`: none selected, or POP3).
    pub folder: Option<String>,
    /// When the client logged in (RFC 3339, UTC).
    pub since: String,
    /// Whether the connection is TLS (implicit or STARTTLS).
    pub tls: bool,
    /// The worker process serving the session (0 while it is being handed over).
    pub pid: u32,
}

/// The control socket's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Sessions(Vec<SessionRow>),
    Error(String),
}

/// The logged-in sessions of the front, by hand-off id.
#[derive(Default)]
pub struct Sessions {
    rows: Mutex<BTreeMap<u64, SessionRow>>,
}

/// A row's place in the table: dropping it removes the row.
pub struct Registration {
    table: Arc<Sessions>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.with(|rows| {
            rows.remove(&self.id);
        });
    }
}

impl Registration {
    /// The worker that took the session.
    pub fn set_pid(&self, pid: u32) {
        self.table.with(|rows| {
            if let Some(r) = rows.get_mut(&self.id) {
                r.pid = pid;
            }
        });
    }
}

impl Sessions {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<u64, SessionRow>) -> T) -> T {
        match self.rows.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Adds the session of hand-off `id`; it stays until the registration is dropped.
    pub fn add(self: &Arc<Self>, id: u64, row: SessionRow) -> Registration {
        self.with(|rows| rows.insert(id, row));
        Registration {
            table: self.clone(),
            id,
        }
    }

    /// A worker reported the selected folder of hand-off `id` (ignored once it is gone).
    pub fn selected(&self, id: u64, folder: Option<String>) {
        self.with(|rows| {
            if let Some(r) = rows.get_mut(&id) {
                r.folder = folder;
            }
        });
    }

    /// Every session, oldest login first.
    pub fn list(&self) -> Vec<SessionRow> {
        let mut all: Vec<SessionRow> = self.with(|rows| rows.values().cloned().collect());
        all.sort_by(|a, b| a.since.cmp(&b.since));
        all
    }
}

/// The current time as a row's `since`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The listening control socket; removes its file when dropped.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the control socket at `path` (an empty path: none). A failure is logged, not
/// fatal: the server serves mail without it (`nestbox who` then says it cannot connect).
/// A socket another running server answers on is left to it; a stale one is replaced.
pub fn bind(path: &Path) -> Option<Control> {
    if path.as_os_str().is_empty() {
        return None;
    }
    // A server run by hand as a user (a test, `nestbox demo`) cannot make /run/nestbox,
    // and only root could ask it anyway: no warning for the default then.
    if !rustix::process::geteuid().is_root()
        && path == Path::new(crate::config::DEFAULT_CONTROL_SOCKET)
    {
        return None;
    }
    match try_bind(path) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(
                "no control socket at {} (nestbox who will not work): {e}",
                path.display()
            );
            None
        }
    }
}

fn try_bind(path: &Path) -> io::Result<Control> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another running server answers there",
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    // Until this chmod the socket has the umask's mode; the peer check below is what
    // holds in the meantime.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Control {
        listener,
        path: path.to_path_buf(),
    })
}

/// Answers `nestbox who` on `control` until the process ends.
pub async fn serve(control: Control, sessions: Arc<Sessions>) {
    loop {
        match control.listener.accept().await {
            Ok((stream, _)) => {
                let sessions = sessions.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(TIMEOUT, answer(stream, &sessions)).await;
                });
            }
            Err(e) => {
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(stream: tokio::net::UnixStream, sessions: &Sessions) -> io::Result<()> {
    let peer = rustix::net::sockopt::socket_peercred(&stream)?;
    let (read, mut write) = stream.into_split();
    // The request is read in any case, so that a refused client gets its reply instead of
    // a broken pipe.
    let mut line = String::new();
    tokio::io::BufReader::new(read.take(256))
        .read_line(&mut line)
        .await?;
    let reply = if !peer.uid.is_root() {
        tracing::warn!(
            uid = peer.uid.as_raw(),
            pid = peer.pid.as_raw_nonzero().get(),
            "control socket: refused a client that is not root"
        );
        Reply::Error("only root may ask the server".into())
    } else {
        match line.trim() {
            "who" => Reply::Sessions(sessions.list()),
            other => Reply::Error(format!("unknown request {other:?}")),
        }
    };
    let mut text = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    text.push(b'\n');
    write.write_all(&text).await?;
    write.shutdown().await
}

/// The client's side: asks the server listening at `path` for its sessions.
pub fn ask(path: &Path) -> Result<Vec<SessionRow>, String> {
    let fail = |e: io::Error| format!("{}: {e}", path.display());
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the server's control socket {}: {e} (is nestbox running, and are you root?)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    stream.write_all(b"who\n").map_err(fail)?;
    let mut line = String::new();
    io::BufReader::new((&stream).take(64 << 20))
        .read_line(&mut line)
        .map_err(fail)?;
    match serde_json::from_str::<Reply>(&line) {
        Ok(Reply::Sessions(rows)) => Ok(rows),
        Ok(Reply::Error(e)) => Err(format!("the server refused: {e}")),
        Err(e) => Err(format!("{}: unreadable reply: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, since: &str) -> SessionRow {
        SessionRow {
            user: user.into(),
            address: "127.0.0.1:4000".parse().unwrap(),
            protocol: "imap".into(),
            folder: None,
            since: since.into(),
            tls: false,
            pid: 0,
        }
    }

    #[test]
    fn rows_live_as_long_as_their_registration() {
        let table = Arc::new(Sessions::default());
        let a = table.add(1, row("a", "2026-01-02T00:00:00Z"));
        let b = table.add(2, row("b", "2026-01-01T00:00:00Z"));
        table.selected(1, Some("INBOX".into()));
        table.selected(9, Some("gone".into()));
        a.set_pid(42);
        let all = table.list();
        assert_eq!(
            all.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(all[1].folder.as_deref(), Some("INBOX"));
        assert_eq!(all[1].pid, 42);
        drop(b);
        assert_eq!(table.list().len(), 1);
        drop(a);
        assert!(table.list().is_empty());
    }

    #[test]
    fn no_server_is_an_error_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = ask(&dir.path().join("control")).unwrap_err();
        assert!(
            e.contains("cannot reach the server's control socket"),
            "{e}"
        );
        // A stale socket file (its server gone) is replaced by the next server.
        let path = dir.path().join("stale");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(ask(&path).is_err());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let control = bind(&path).expect("a stale socket is replaced");
        drop(control);
        assert!(!path.exists(), "the socket file stays after the server");
    }

    #[tokio::test]
    async fn root_gets_the_sessions_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control");
        let control = bind(&path).expect("bind");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // A second server leaves a live socket alone.
        assert!(bind(&path).is_none());
        let table = Arc::new(Sessions::default());
        let _r = table.add(7, row("alice", "2026-01-01T00:00:00Z"));
        tokio::spawn(serve(control, table));
        let asked = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || ask(&path))
                .await
                .unwrap()
        };
        if rustix::process::geteuid().is_root() {
            assert_eq!(asked.unwrap(), vec![row("alice", "2026-01-01T00:00:00Z")]);
        } else {
            assert!(asked.unwrap_err().contains("only root"));
        }
    }
}
