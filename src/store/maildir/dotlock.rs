//! The dotlock `dovecot-uidlist.lock` of a folder: taking it, waiting for
//! it, and breaking it when its owner is gone.
//!
//! Owns the lock file, the temporary files it is made from, the in-process
//! record of which locks this process holds, and the judgement of whether a
//! lock found in place is stale. It never reads or writes the uidlist
//! itself (`uidlist.rs` does, with this lock held) and knows nothing of
//! sessions or sockets.
//!
//! **Taking it.** As Dovecot's dotlocks do (`src/lib/file-dotlock.c`), the
//! owner's identity is written to a uniquely named temporary file in the
//! folder directory, which is then `link`ed to `dovecot-uidlist.lock`
//! (`EEXIST`: someone holds it) and unlinked. So the lock file never
//! exists without its owner inside: a kill, `ENOSPC` or `EIO` at any step
//! leaves at most the temporary file, which is harmless and removed later
//! (see `cleanup_temps`). No fsync: a lock does not need to survive a
//! crash of the machine, and after a reboot every owner is stale anyway.
//!
//! **Who owns it.** The content is exactly Dovecot's `<pid>:<host>`, so
//! Dovecot's tools still check our PIDs and we check theirs. What tells one
//! incarnation of a PID from another is not written into the file (Dovecot
//! compares everything after the colon with its host name, so any addition
//! would make it stop checking our PIDs): it is the lock's mtime, set when
//! the owner wrote the content, compared with the named process's start
//! time (`/proc/PID/stat` field 22, ticks since boot). A process cannot own
//! a lock made before it started. Rules, for a lock naming a PID of this
//! host:
//! - our own PID: ours if this process holds exactly that lock file (by
//!   device, inode and mtime, recorded in `held`); otherwise left by an earlier
//!   run that had our PID (a restarted container's PID 1) and stale at once;
//! - a PID that is not running: stale at once;
//! - a running PID whose process started more than [`REUSE_SLACK`] after
//!   the lock was written: the PID was reused, stale at once;
//! - otherwise a live owner, waited for; but a lock untouched (mtime) for
//!   longer than [`HOLD_BOUND`] is broken whoever it names. Dovecot treats
//!   its own uidlist lock as stale after the same 2 minutes and touches
//!   locks it holds longer; nestbox holds it for milliseconds (a full
//!   rewrite of 100,000 records takes well under a second), and a holder
//!   that ever needs longer must call [`DotLock::touch`].
//!
//! A lock with no owner inside (empty: Dovecot's after `kill -9`, or an
//! older nestbox's, which created the file before writing to it), or one
//! naming another host, is broken once its mtime is `stale_after` old (10 s
//! in production, SPEC §5), with a warning in the log.
//!
//! **Breaking it** is race-free as far as the file system allows: the lock
//! is renamed to a unique name first, and only removed if what was moved is
//! the very file judged stale (same device and inode); if someone broke it
//! and took a fresh lock in between, that lock is renamed back
//! (`RENAME_NOREPLACE`). Releasing checks the same way, so an owner whose
//! lock was broken never removes its successor's.
//!
//! **Waiting.** Writers in one process never contend for the file: every
//! caller holds the folder's state mutex across it, and the one `Folder`
//! per directory serialises them. The file is contended only by other
//! processes (Dovecot's tools, a crashed run's leftover), and then a waiter
//! must not hold a thread: a blocking-pool thread per waiting session let
//! 70 sessions waiting on one user's lock stall every other user's APPEND
//! (issue 15). So there are two ways in:
//! - [`wait_free`] (async) is what a session awaits before it enters the
//!   blocking section of a command that will take the lock. It only looks
//!   (an `lstat`, and a read of a few bytes when a lock is there), breaks a
//!   stale lock, and sleeps on the runtime's timer while a live one is
//!   held; waiters on one directory queue on one in-process async mutex, so
//!   at most one task per folder polls the file. It returns when the lock
//!   is free (or ours), without taking it: the blocking section then takes
//!   it at once in the common case.
//! - [`lock`] (blocking) takes it, and waits in place (a thread sleeping)
//!   only in what is left: another process taking it in the instant
//!   between [`wait_free`] and [`lock`], and callers that have no async
//!   context (live sync). Both give up after [`WAIT_LIMIT`] with
//!   `TimedOut`, which the session reports as `NO [INUSE]`.
//! - Inside [`without_waiting`], [`lock`] does not wait in place for
//!   another process at all: it fails at once with an error [`is_busy`]
//!   tells apart, and the caller awaits [`wait_free`] and runs its blocking
//!   section again. That is for sections that open or sync a folder
//!   (SELECT, EXAMINE, STATUS, the first look at a folder an APPEND saves
//!   into): a sync may need the lock only to number new files, and
//!   nothing it did before is lost by running it again, so they can try
//!   first and wait only when they must, instead of waiting for every
//!   foreign lock as [`wait_free`] before them would, and without the
//!   thread that [`lock`] would hold.
//!
//! For what commits messages under the lock, "busy, retry later" was
//! rejected: commands such as a MULTIAPPEND take the lock once per
//! message, and retrying after the first had been committed would store it
//! twice. They await [`wait_free`] before their blocking section instead.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::filename;

/// The dotlock Dovecot's tools use too.
pub const LOCK: &str = "dovecot-uidlist.lock";

/// A lock of a live owner untouched for this long is broken anyway (see
/// the module doc).
pub const HOLD_BOUND: Duration = Duration::from_secs(120);

/// How long a writer waits for a lock held by a live owner before giving
/// up (`TimedOut`).
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// A running process counts as the lock's owner unless it started more than
/// this after the lock was written. The lock's age is read from an mtime
/// set by the file system's clock (a network file system's server's), the
/// process's age from this kernel's: the slack covers skew between them,
/// which must not make a live owner's fresh lock look older than its
/// process. A PID is rarely reused this soon after its owner died; if it
/// is, [`HOLD_BOUND`] still applies.
pub const REUSE_SLACK: Duration = Duration::from_secs(10);

/// Pauses between looks at a held lock: short first (Dovecot's holds are
/// milliseconds), then at most this.
const PAUSE_MIN: Duration = Duration::from_millis(5);
const PAUSE_MAX: Duration = Duration::from_millis(100);

/// Temporary files are named `<LOCK>.<pid>.<n>.<host>` plus this: the
/// content-bearing file about to be linked into place...
const TEMP_SUFFIX: &str = ".tmp";
/// ...and a lock renamed aside while being broken.
const ASIDE_SUFFIX: &str = ".broken";

/// A directory, independent of the path that reached it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct DirId {
    dev: u64,
    ino: u64,
}

impl DirId {
    fn of(m: &Metadata) -> DirId {
        DirId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// One lock file. Its mtime is part of it: inode numbers are reused at
/// once (a lock removed and another made often get the same one), while
/// its mtime is when its owner wrote it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Ident {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
}

impl Ident {
    fn of(m: &Metadata) -> Ident {
        Ident {
            dev: m.dev(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// The lock files this process holds: folder directory -> lock file.
/// Keyed by identity, not path, so that two spellings of one directory
/// agree. Recorded before the `link`, removed after the unlink, so a lock
/// naming our PID is ours exactly when it is in here.
fn held() -> MutexGuard<'static, HashMap<DirId, Ident>> {
    static HELD: OnceLock<Mutex<HashMap<DirId, Ident>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Owner string written into our locks: Dovecot's format.
fn me() -> String {
    format!("{}:{}", std::process::id(), filename::host())
}

/// A unique name in `dir` for a temporary or set-aside lock file.
fn side_name(dir: &Path, suffix: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{LOCK}.{}.{n}.{}{suffix}",
        std::process::id(),
        filename::host()
    ))
}

/// The held dotlock; dropping it releases the lock file if it is still
/// ours.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
    dir: DirId,
    file: Ident,
}

impl DotLock {
    /// Marks the lock as still in use (its mtime), for a holder that keeps
    /// it longer than [`HOLD_BOUND`] would allow.
    pub fn touch(&mut self) -> io::Result<()> {
        filetime::set_file_mtime(&self.path, filetime::FileTime::now())?;
        let now = Ident::of(&fs::symlink_metadata(&self.path)?);
        let mut h = held();
        if h.get(&self.dir) == Some(&self.file) {
            h.insert(self.dir, now);
        }
        self.file = now;
        Ok(())
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        // Ours if it is the same file (inode and mtime) with our name in
        // it: an inode number alone is reused at once.
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| {
            Ident::of(&m) == self.file
                && read_small(&self.path, &m).is_ok_and(|c| c.is_some_and(|c| c == me().as_bytes()))
        });
        match ours {
            true => {
                let _ = fs::remove_file(&self.path);
            }
            false => {
                tracing::warn!(lock = %shown(&self.path).display(), "our uidlist lock was broken by someone else while we held it");
            }
        }
        let mut h = held();
        if h.get(&self.dir) == Some(&self.file) {
            h.remove(&self.dir);
        }
    }
}

/// Our temporary file, removed when dropped unless it became the lock.
struct Temp {
    path: PathBuf,
    id: Ident,
    written: Instant,
}

impl Temp {
    fn create(dir: &Path) -> io::Result<Temp> {
        let path = side_name(dir, TEMP_SUFFIX);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        let mut t = Temp {
            id: Ident::of(&f.metadata()?),
            path,
            written: Instant::now(),
        };
        // On failure `t` is dropped: the half-made file goes, and no lock
        // was ever visible.
        f.write_all(me().as_bytes())?;
        t.id = Ident::of(&f.metadata()?);
        Ok(t)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

enum Attempt {
    Got(DotLock),
    /// The lock file exists.
    Exists,
    /// Another thread of this process holds (or is taking) it.
    OursElsewhere,
}

/// One try at linking our temporary file into place. `temp` is made on
/// the first try and kept for the next ones.
fn attempt(dir: &Path, dir_id: DirId, temp: &mut Option<Temp>) -> io::Result<Attempt> {
    if held().contains_key(&dir_id) {
        return Ok(Attempt::OursElsewhere);
    }
    let mut t = match temp.take() {
        Some(t) => t,
        None => Temp::create(dir)?,
    };
    // The lock's mtime tells others when it was taken (the module doc):
    // after a long wait, refresh it, as Dovecot does.
    if t.written.elapsed() > Duration::from_secs(1) {
        filetime::set_file_mtime(&t.path, filetime::FileTime::now())?;
        t.id = Ident::of(&fs::symlink_metadata(&t.path)?);
        t.written = Instant::now();
    }
    {
        let mut h = held();
        if h.contains_key(&dir_id) {
            *temp = Some(t);
            return Ok(Attempt::OursElsewhere);
        }
        h.insert(dir_id, t.id);
    }
    let path = dir.join(LOCK);
    match fs::hard_link(&t.path, &path) {
        // The lock is the temporary file's inode under a second name;
        // dropping `t` removes the first name.
        Ok(()) => Ok(Attempt::Got(DotLock {
            path,
            dir: dir_id,
            file: t.id,
        })),
        Err(e) => {
            held().remove(&dir_id);
            if e.kind() == io::ErrorKind::AlreadyExists {
                *temp = Some(t);
                Ok(Attempt::Exists)
            } else {
                Err(e)
            }
        }
    }
}

/// What [`probe`] found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// No lock (none was there, or a stale one was just broken).
    Free,
    /// This process holds it.
    Ours,
    /// Someone else holds it and it is not stale (yet).
    Held,
}

/// Why a lock is stale, for the log; `true` when the break is routine
/// (the owner is gone, as after any crash) and logged at info only.
type Stale = (&'static str, bool);

/// Looks at the lock in `dir` without taking it, breaking it if stale.
fn probe(dir: &Path, stale_after: Duration) -> io::Result<Probe> {
    let path = dir.join(LOCK);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Probe::Free),
        Err(e) => return Err(e),
    };
    let content = if meta.is_file() {
        match read_small(&path, &meta) {
            Ok(Some(c)) => c,
            // Replaced or removed while we looked: look again next time.
            Ok(None) => return Ok(Probe::Held),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Probe::Free),
            Err(e) => return Err(e),
        }
    } else {
        // Not a regular file (a symlink, a directory): nobody's lock.
        Vec::new()
    };
    match judge(&content, &meta, stale_after) {
        Ok(true) => Ok(Probe::Ours),
        Ok(false) => Ok(Probe::Held),
        Err(why) => {
            break_lock(dir, Ident::of(&meta), &content, why)?;
            Ok(Probe::Free)
        }
    }
}

/// The first bytes of the lock file, if it is still the file `meta`
/// describes (checked on the open descriptor).
fn read_small(path: &Path, meta: &Metadata) -> io::Result<Option<Vec<u8>>> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if Ident::of(&f.metadata()?) != Ident::of(meta) {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(64);
    // Dovecot reads at most 511 bytes too.
    (&f).take(511).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// `Ok(true)`: ours; `Ok(false)`: a live owner's, wait; `Err(why)`: stale.
fn judge(content: &[u8], meta: &Metadata, stale_after: Duration) -> Result<bool, Stale> {
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    let Some(pid) = local_pid(content) else {
        return if age >= stale_after {
            Err(("it names no owner on this host and has not changed", false))
        } else {
            Ok(false)
        };
    };
    if pid == std::process::id() as i32 {
        return if held().values().any(|f| *f == Ident::of(meta)) {
            Ok(true)
        } else {
            Err((
                "it names this process, which does not hold it: an earlier run with the same PID left it",
                true,
            ))
        };
    }
    if !alive(pid) {
        return Err(("its owner is not running", true));
    }
    if process_age(pid).is_some_and(|p| p + REUSE_SLACK < age) {
        return Err((
            "its PID belongs to a process started after the lock was made",
            true,
        ));
    }
    if age > HOLD_BOUND {
        return Err((
            "it has not been touched for longer than any legitimate hold",
            false,
        ));
    }
    Ok(false)
}

/// The PID of a `<pid>:<host>` naming this host, as Dovecot reads it (one
/// trailing newline allowed).
fn local_pid(content: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(content).ok()?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let (pid, host) = text.split_once(':')?;
    let pid = pid.parse::<i32>().ok()?;
    (pid > 0 && host == filename::host()).then_some(pid)
}

/// `path` as an operator knows it. The store works on directories it has
/// opened (`beneath`), naming them `/proc/self/fd/N/...` so that the kernel
/// resolves nothing again; a log line names the folder instead.
fn shown(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("/proc/self/fd") else {
        return path.to_path_buf();
    };
    let mut parts = rest.components();
    let Some(fd) = parts.next() else {
        return path.to_path_buf();
    };
    match fs::read_link(Path::new("/proc/self/fd").join(fd)) {
        Ok(dir) => dir.join(parts.as_path()),
        Err(_) => path.to_path_buf(),
    }
}

/// Renames without replacing what is at `to` (`AlreadyExists` then), where
/// the system supports it; else a plain rename. Putting back a lock judged
/// stale must never destroy a lock someone took meanwhile.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // Not supported by this kernel or file system: plain rename.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            fs::rename(from, to)
        }
        Err(e) => Err(e.into()),
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for the process; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    let exists = r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !zombie(pid)
}

/// A process that has ended but is not reaped yet (state `Z`): it holds
/// nothing any more, but signal 0 still finds it. A worker killed together
/// with its front is reparented to PID 1, which in a container may never
/// reap it; its locks must not wait for that.
fn zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.get(stat.rfind(')')? + 1..)?;
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// How long ago `pid` started: now since boot (`/proc/uptime`) minus its
/// start since boot (`/proc/PID/stat` field 22). `None` when `/proc` does
/// not tell (not mounted, `hidepid`, the process just exited).
fn process_age(pid: i32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'. Fields after it start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    let started = Duration::from_millis(ticks.saturating_mul(1000) / hz);
    let up = fs::read_to_string("/proc/uptime").ok()?;
    let up: f64 = up.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(up).ok()?.checked_sub(started)
}

/// Removes the stale lock `seen` of `dir`, unless what is there now is
/// another lock (see the module doc). Then tidies temporary files left by
/// owners that died mid-way.
fn break_lock(dir: &Path, seen: Ident, content: &[u8], (why, routine): Stale) -> io::Result<()> {
    let path = dir.join(LOCK);
    let aside = side_name(dir, ASIDE_SUFFIX);
    match fs::rename(&path, &aside) {
        Ok(()) => {}
        // Released or broken by someone else meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let same = fs::symlink_metadata(&aside).is_ok_and(|m| {
        Ident::of(&m) == seen
            && (!m.is_file()
                || read_small(&aside, &m).is_ok_and(|c| c.is_some_and(|c| c == content)))
    });
    if same {
        let _ = fs::remove_file(&aside);
        if routine {
            tracing::info!(lock = %shown(&path).display(), reason = why, "breaking stale uidlist lock");
        } else {
            tracing::warn!(lock = %shown(&path).display(), reason = why, "breaking stale uidlist lock");
        }
    } else if let Err(e) = rename_noreplace(&aside, &path) {
        // A third writer took the lock too: the one we moved has lost it.
        // Its owner's release sees that and leaves the new lock alone.
        tracing::warn!(lock = %shown(&path).display(), error = %e, "a uidlist lock taken while a stale one was broken could not be put back");
        let _ = fs::remove_file(&aside);
    }
    cleanup_temps(dir);
    Ok(())
}

/// Removes temporary and set-aside lock files of this host whose process
/// is gone, and any older than [`HOLD_BOUND`]. Run after breaking a lock,
/// as their presence means a writer died mid-way.
fn cleanup_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{LOCK}.");
    let me = std::process::id() as i32;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(rest) = rest
            .strip_suffix(TEMP_SUFFIX)
            .or_else(|| rest.strip_suffix(ASIDE_SUFFIX))
        else {
            continue;
        };
        let mut parts = rest.splitn(3, '.');
        let (Some(pid), Some(_n), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        let dead = host == filename::host() && pid != me && pid > 0 && !alive(pid);
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|a| a > HOLD_BOUND);
        if dead || old {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Takes the dotlock of the folder at `dir`, waiting in place for a live
/// owner (see the module doc for who counts as one) for at most
/// [`WAIT_LIMIT`], or not at all inside [`without_waiting`]. `stale_after` is how old a lock without owner must be to
/// be broken (10 s in production; tests pass less).
pub fn lock(dir: &Path, stale_after: Duration) -> io::Result<DotLock> {
    let dir_id = DirId::of(&fs::metadata(dir)?);
    let start = Instant::now();
    let mut temp = None;
    let mut pause = PAUSE_MIN;
    loop {
        match attempt(dir, dir_id, &mut temp)? {
            Attempt::Got(l) => return Ok(l),
            Attempt::OursElsewhere => {}
            Attempt::Exists => match probe(dir, stale_after)? {
                // Released, or broken just now: try again at once.
                Probe::Free => continue,
                // Another process's, live: not waited for here.
                Probe::Held if NO_WAIT.get() => return Err(busy(dir)),
                _ => {}
            },
        }
        if start.elapsed() >= WAIT_LIMIT {
            return Err(timed_out(dir));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(PAUSE_MAX);
    }
}

thread_local! {
    /// Set while this thread runs inside [`without_waiting`].
    static NO_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with [`lock`] never waiting in place for another process: where
/// it would wait for a live owner's lock, it fails at once with an error
/// for which [`is_busy`] is true (see the module doc). Locks that other
/// threads of this process hold (for milliseconds) are still waited for.
/// Scopes nest; the setting is this thread's only.
pub fn without_waiting<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the setting before, even if `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_WAIT.set(self.0);
        }
    }
    let _restore = Restore(NO_WAIT.replace(true));
    f()
}

/// The error [`lock`] gives inside [`without_waiting`] (kind `WouldBlock`,
/// with this inside, so that no other `EAGAIN` is taken for it).
#[derive(Debug)]
struct Busy(String);

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Busy {}

/// Whether `e` is [`lock`] declining to wait inside [`without_waiting`].
pub fn is_busy(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock && e.get_ref().is_some_and(|i| i.is::<Busy>())
}

fn busy(dir: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        Busy(format!(
            "{} is held by another process",
            shown(&dir.join(LOCK)).display()
        )),
    )
}

fn timed_out(dir: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "{} is held by another process",
            shown(&dir.join(LOCK)).display()
        ),
    )
}

/// Waits, without holding a thread, until the dotlock of `dir` is free or
/// held by this process, breaking it if stale; does not take it. Fails
/// with `TimedOut` after [`WAIT_LIMIT`]. See the module doc for why.
pub async fn wait_free(dir: &Path, stale_after: Duration) -> io::Result<()> {
    // The common case, no lock there: one lstat, no queue.
    if probe(dir, stale_after)? != Probe::Held {
        return Ok(());
    }
    let gate = gate(DirId::of(&fs::metadata(dir)?));
    let _turn = gate.lock().await;
    let start = Instant::now();
    let mut pause = PAUSE_MIN;
    loop {
        if probe(dir, stale_after)? != Probe::Held {
            return Ok(());
        }
        if start.elapsed() >= WAIT_LIMIT {
            return Err(timed_out(dir));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(PAUSE_MAX);
    }
}

/// The in-process queue of [`wait_free`] callers for one directory.
fn gate(dir: DirId) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: OnceLock<Mutex<HashMap<DirId, Weak<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut g = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(a) = g.get(&dir).and_then(Weak::upgrade) {
        return a;
    }
    // Only directories someone is waiting on are in here: few.
    g.retain(|_, w| w.strong_count() > 0);
    let a = Arc::new(tokio::sync::Mutex::new(()));
    g.insert(dir, Arc::downgrade(&a));
    a
}

#[cfg(test)]
mod tests;
