//! "Do not block this thread" mode for the store's read side.
//!
//! The store's interface is synchronous and callers on the async runtime
//! normally hand each call to the blocking pool. For small requests that
//! hand-off (a wake-up of a pool thread, then one of the runtime thread:
//! 20-30 us on a virtual machine) costs more than the work: a `FETCH` of one
//! message from the page cache takes about as long. So a caller may instead
//! run store code on its own thread inside a [`Scope`]. While one is active,
//! every place in the store that could wait (a folder lock held by someone
//! else, a file or directory entry not in the kernel's caches, loading the
//! cache file) first tries the non-blocking way (`try_lock`, `openat2` with
//! `RESOLVE_CACHED`, `preadv2` with `RWF_NOWAIT`) and, only when that would
//! wait, calls the scope's escalation hook around the blocking way. The
//! session's hook is `tokio::task::block_in_place`, which moves the runtime
//! thread's other tasks to another thread first, so nothing else waits.
//!
//! Owns the thread-local scope and the non-blocking open and read. It never
//! decides whether a request is small enough: that is the caller's call.
//! Outside a scope everything here behaves like the plain blocking calls.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::beneath::Dir;

/// The escalation hook: runs the closure it is given, once, where blocking
/// is allowed.
pub type Hook = fn(&mut dyn FnMut());

thread_local! {
    static HOOK: Cell<Option<Hook>> = const { Cell::new(None) };
}

/// While alive, store calls on this thread run in nowait mode (see the
/// module doc). Scopes nest; dropping one restores the one before.
///
/// Not `Send`: a scope held across an `.await` would leak into whatever
/// task runs next on this thread, and this makes such a future fail to
/// compile where it is spawned.
pub struct Scope {
    prev: Option<Hook>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Scope {
    pub fn enter(hook: Hook) -> Scope {
        Scope {
            prev: HOOK.replace(Some(hook)),
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        HOOK.set(self.prev);
    }
}

/// Whether this thread is in a nowait scope.
pub(crate) fn active() -> bool {
    HOOK.get().is_some()
}

/// Runs `f`, which may block: directly outside a scope, through the
/// scope's hook inside one (with the scope suspended while it runs, so the
/// store calls inside block plainly instead of escalating again).
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    let Some(hook) = HOOK.get() else {
        return f();
    };
    let mut f = Some(f);
    let mut out = None;
    HOOK.set(None);
    hook(&mut || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    });
    // Not reached if `f` panicked: the `Scope`'s drop restores the hook.
    HOOK.set(Some(hook));
    match (out, f) {
        (Some(v), _) => v,
        // A hook that did not run the closure: run it here.
        (None, Some(f)) => f(),
        // Taking `f` and storing its result happen in one closure call; if
        // `f` panicked, the panic has left this function already.
        (None, None) => unreachable!("the closure ran but left no result"),
    }
}

/// Opens `name` in `dir` read-only ([`Dir::open`]: beneath it, following
/// no symlink); in a scope, first without blocking ([`Dir::open_cached`]:
/// `RESOLVE_CACHED` on top, every step in the dentry cache), escalating
/// only when that would have to wait.
pub(crate) fn open_in(dir: &Dir, name: &str) -> io::Result<File> {
    if !active() {
        return dir.open(name);
    }
    match dir.open_cached(name) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => blocking(|| dir.open(name)),
        Err(e) => Err(e),
    }
}

/// Reads at `offset` like `FileExt::read_at`; in a scope, first without
/// blocking (`RWF_NOWAIT`: only what the page cache holds), escalating
/// only when nothing could be read that way.
pub(crate) fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    if !active() || buf.is_empty() {
        return f.read_at(buf, offset);
    }
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, which outlives the call.
    let n = unsafe {
        libc::preadv2(
            std::os::fd::AsRawFd::as_raw_fd(f),
            &iov,
            1,
            offset as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Would wait for the disk; or this file system or kernel does not
        // do RWF_NOWAIT.
        Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL) => blocking(|| f.read_at(buf, offset)),
        _ => Err(e),
    }
}

/// Appends the first `len` bytes of `f` to `data`: the whole file, with
/// `len` from the `fstat` the caller made anyway (a Maildir message file
/// never changes once delivered, so its length is its length; a file that
/// turns out shorter ends the read at its end). Reads at offsets and leaves
/// the position alone (a seek per message is not free on a cold `FETCH
/// 1:*`); in a scope each read goes through [`read_at`]. No `fstat` and no
/// read past the end to see it: for a small message that is half the
/// system calls of reading it.
pub(crate) fn read_len(f: &File, data: &mut Vec<u8>, len: u64) -> io::Result<()> {
    let base = data.len();
    let len = usize::try_from(len).map_err(|_| io::Error::other("file too big"))?;
    data.resize(base + len, 0);
    let mut filled = base;
    let result = loop {
        if filled == data.len() {
            break Ok(());
        }
        let at = (filled - base) as u64;
        let r = if active() {
            read_at(f, &mut data[filled..], at)
        } else {
            f.read_at(&mut data[filled..], at)
        };
        match r {
            Ok(0) => break Ok(()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    data.truncate(filled);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    fn counting(f: &mut dyn FnMut()) {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // Inside the hook the scope is suspended.
        assert!(!active());
        f()
    }

    #[test]
    fn blocking_goes_through_the_hook_only_in_a_scope() {
        let before = CALLS.load(Ordering::SeqCst);
        assert_eq!(blocking(|| 1), 1);
        assert_eq!(CALLS.load(Ordering::SeqCst), before);
        {
            let _s = Scope::enter(counting);
            assert!(active());
            assert_eq!(blocking(|| 2), 2);
            assert!(active(), "restored after the hook");
            {
                let _inner = Scope::enter(counting);
            }
            assert!(active(), "an inner scope restores the outer one");
        }
        assert!(!active());
        assert_eq!(CALLS.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn reads_in_a_scope_give_the_same_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m");
        let dir = Dir::open_root(tmp.path()).unwrap();
        let open = |name: &str| open_in(&dir, name);
        // Larger than one read and not a multiple of the page size.
        let content: Vec<u8> = (0..300_001u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let plain = {
            let mut d = Vec::new();
            let f = open("m").unwrap();
            read_len(&f, &mut d, f.metadata().unwrap().len()).unwrap();
            d
        };
        let _s = Scope::enter(counting);
        let f = open("m").unwrap();
        let mut first = [0u8; 6];
        assert_eq!(read_at(&f, &mut first, 0).unwrap(), 6);
        let mut d = b"prefix".to_vec();
        read_len(&f, &mut d, content.len() as u64).unwrap();
        assert_eq!(&d[..6], b"prefix");
        assert_eq!(&d[6..], &content[..]);
        // A length past the end stops at the end; a shorter one is a prefix.
        let mut d = Vec::new();
        read_len(&f, &mut d, content.len() as u64 + 100).unwrap();
        assert_eq!(d, content);
        let mut d = Vec::new();
        read_len(&f, &mut d, 10).unwrap();
        assert_eq!(d, &content[..10]);
        assert_eq!(plain, content);
        // Errors are errors, not "would block".
        assert_eq!(open("missing").unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
