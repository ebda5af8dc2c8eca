//! Store calls that may find a folder's uidlist lock held by another
//! program (Dovecot's deliver, say), run without holding a blocking-pool
//! thread while they wait for it. SELECT, EXAMINE, STATUS (and
//! LIST-STATUS), APPEND and COPY/MOVE use them, so they live here rather
//! than in one of those commands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::session::{Status, blocking};
use crate::store::{MailStore, StoreError};

/// Runs `f` on the blocking pool as [`blocking`] does, but inside
/// [`MailStore::without_lock_waits`]: when `f` needs the uidlist lock of
/// folder `name` and another program holds it, `f` gives up at once, the
/// lock is waited for here on the runtime's timers and `f` runs again
/// ([`retry_unlocked`]). So sessions waiting on one user's stalled folder
/// hold no blocking-pool thread (issue 15: 70 SELECTs waiting in place on
/// a lock made another user's APPEND take seconds). `f` must be safe to
/// run again after such a failure: it opens or syncs folder `name` before
/// it does anything else (SELECT, EXAMINE, STATUS).
pub(crate) async fn blocking_unlocked<T, F>(
    store: &Arc<MailStore>,
    name: &str,
    f: F,
) -> Result<Result<T, StoreError>, Status>
where
    T: Send + 'static,
    F: Fn() -> Result<T, StoreError> + Send + Sync + 'static,
{
    retry_unlocked(store, name, move || MailStore::without_lock_waits(&f)).await
}

/// Runs `f` on the blocking pool, and again each time it fails because
/// another program holds folder `name`'s uidlist lock
/// ([`StoreError::is_lock_busy`]: a store call `f` made inside
/// [`MailStore::without_lock_waits`]), after waiting for the lock here
/// without a thread ([`MailStore::wait_unlocked`]). `f` chooses which of
/// its calls may give up so: only those before it has changed anything.
/// Past the lock's wait limit it gives `TimedOut` (`NO [INUSE]`), as a
/// wait in place does.
pub(crate) async fn retry_unlocked<T, F>(
    store: &Arc<MailStore>,
    name: &str,
    f: F,
) -> Result<Result<T, StoreError>, Status>
where
    T: Send + 'static,
    F: Fn() -> Result<T, StoreError> + Send + Sync + 'static,
{
    use crate::store::maildir::dotlock::WAIT_LIMIT;
    let f = Arc::new(f);
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut pause = Duration::from_millis(5);
    let mut again = false;
    loop {
        let g = f.clone();
        match blocking(move || g()).await? {
            Err(e) if e.is_lock_busy() => {}
            r => return Ok(r),
        }
        // Free when last looked at, yet busy again: someone takes it over
        // and over. Not straight back, then.
        let backoff = again.then_some(pause);
        if again {
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        again = true;
        let wait = async {
            if let Some(p) = backoff {
                tokio::time::sleep(p).await;
            }
            store.wait_unlocked(name).await
        };
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), wait).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Ok(Err(e)),
            Err(_) => {
                return Ok(Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the uidlist lock of {name:?} is held by another process"),
                ))));
            }
        }
    }
}
