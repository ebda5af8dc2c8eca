//! Store work off the async runtime (STYLE §11): [`blocking`] for what
//! may take long, a nowait scope for small reads that usually do not
//! wait, and the process's CPU count for work split across threads.

use std::sync::Arc;

use super::Status;

/// CPUs this process may use, asked once: `available_parallelism` reads
/// cgroup files on every call, which cost more than a small FETCH.
pub(crate) fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A nowait scope for running small store reads on this runtime thread
/// (see `store::nowait`): they run in place while the kernel's caches and
/// the folder lock let them, and whatever would wait is run through
/// `block_in_place`, which first hands this thread's other tasks to another
/// thread. Saves the two thread wake-ups of `spawn_blocking` (20-30 us on a
/// virtual machine), which are most of a one-message FETCH.
///
/// `None` on a current-thread runtime, where nothing may block in place:
/// the caller then uses [`blocking`].
pub(crate) fn nowait_scope() -> Option<crate::store::nowait::Scope> {
    fn block_here(f: &mut dyn FnMut()) {
        tokio::task::block_in_place(f)
    }
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    multi.then(|| crate::store::nowait::Scope::enter(block_here))
}

/// Sets of at most this many messages are looked up in place (in a
/// nowait scope) by [`metas_of`].
const METAS_IN_PLACE: usize = 64;

/// The metadata of `uids` (`None` for those gone), in the order given: in
/// place for a few messages, else off the runtime. Cheaper than the
/// folder's whole snapshot, which every flag change invalidates and which
/// costs milliseconds to rebuild at 100,000 messages.
pub(crate) async fn metas_of(
    folder: &Arc<crate::store::Folder>,
    uids: Vec<u32>,
) -> Result<Vec<Option<crate::store::MessageMeta>>, Status> {
    if uids.len() <= METAS_IN_PLACE
        && let Some(_scope) = nowait_scope()
    {
        return Ok(folder.metas(&uids));
    }
    let f = folder.clone();
    blocking(move || f.metas(&uids)).await
}

/// The modseq of each of `uids` (`None` for those gone), in the order
/// given, placed like [`metas_of`]: what CHANGEDSINCE filters on.
pub(crate) async fn modseqs_of(
    folder: &Arc<crate::store::Folder>,
    uids: Vec<u32>,
) -> Result<Vec<Option<u64>>, Status> {
    if uids.len() <= METAS_IN_PLACE
        && let Some(_scope) = nowait_scope()
    {
        return Ok(folder.modseqs(&uids));
    }
    let f = folder.clone();
    blocking(move || f.modseqs(&uids)).await
}

/// Runs a blocking store operation off the async runtime (STYLE §11).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::server_bug("blocking task failed", &e))
}
