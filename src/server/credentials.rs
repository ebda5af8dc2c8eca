//! Starting a `nestbox` child process as a user: what the child does between `fork` and
//! `exec` so that the program it becomes runs with that user's uid, gid and groups.
//!
//! Used for every process that touches a user's mail on behalf of a root parent: the
//! server's per-user workers (`pool`) and the helpers of `nestbox quota` (`admin`).
//!
//! Why between fork and exec, and in a new program: `setuid(2)` and friends change one
//! thread's credentials in the kernel (the C library broadcasts them to the other threads
//! with signals, which only libc's wrappers do), and a parent with a tokio runtime has many
//! threads. A forked child has exactly one thread, so the raw per-thread calls made there
//! switch the whole child, and `exec` then starts a program whose every later thread
//! inherits them. Forking and carrying on in Rust without `exec` would run arbitrary code
//! (allocation, locks held by threads that no longer exist) where only async-signal-safe
//! calls are allowed; so the child always becomes a fresh `nestbox` with a subcommand.
//!
//! Owns only that switch. Which identity a user gets is `identity`'s rule; this never
//! decides it, and never switches to uid 0 (the rule refuses it before).
use std::io;

use super::identity::Identity;

/// The closure to hand to `pre_exec` (std's or tokio's `Command`) for a child that must run
/// as `identity`. When this process is not root nothing can change and only the rest is
/// done (`identity` is then this process's own: `identity` refuses any other).
///
/// In the child it sets the supplementary groups, then the gid, then the uid (real,
/// effective and saved alike, so nothing can switch back), sets `no_new_privs` (no setuid
/// binary can give root back), and marks every descriptor above stderr close-on-exec, so
/// nothing the parent inherited (from systemd, a shell) reaches the child; the descriptors
/// the caller set up as stdin, stdout and stderr stay.
///
/// # Safety of the closure
/// It runs in the forked child where only async-signal-safe calls are allowed: it makes
/// raw system calls only (rustix, and libc's `syscall`) and allocates nothing (the group
/// list is built here, before the fork). The per-thread calls are enough because the child
/// has one thread.
pub fn child_setup(identity: &Identity) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
    let switch = rustix::process::geteuid().is_root();
    let uid = rustix::process::Uid::from_raw(identity.uid);
    let gid = rustix::process::Gid::from_raw(identity.gid);
    let groups: Vec<rustix::process::Gid> = identity
        .groups
        .iter()
        .map(|&g| rustix::process::Gid::from_raw(g))
        .collect();
    move || {
        if switch {
            rustix::thread::set_thread_groups(&groups)?;
            rustix::thread::set_thread_res_gid(gid, gid, gid)?;
            rustix::thread::set_thread_res_uid(uid, uid, uid)?;
        }
        rustix::thread::set_no_new_privs(true)?;
        // Marks instead of closing, so std's own exec-error pipe keeps working; kernels
        // before 5.11 lack the flag, and then only our own CLOEXEC applies.
        // SAFETY: close_range takes plain integers and touches only the descriptor table.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            );
        }
        Ok(())
    }
}
