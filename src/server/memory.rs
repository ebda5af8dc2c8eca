//! Giving memory back: the folders nobody uses are let go of now and then,
//! and what they freed is returned to the kernel.
//!
//! Owns the periodic sweep over the store's [`Registry`]. It never decides
//! which folder goes (the registry does) and never runs the sweep on the
//! runtime's threads: closing a folder writes its index.
//!
//! Why by hand: glibc keeps freed memory in its arenas (one per runtime
//! thread), and a folder of 100,000 messages after a full sync frees about
//! 150 MB in many small pieces, which stays resident until `malloc_trim`
//! hands the free pages back. No maintained crate wraps that one call.
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::Registry;

/// How often the registry is asked to let go of unused folders.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Free heap beyond which a sweep gives memory back even when no folder
/// went: what big responses freed (a `FETCH 1:* ENVELOPE` of 100,000
/// messages is 55 MB of output) stays resident otherwise.
const TRIM_ABOVE: usize = 16 << 20;

/// Runs forever: every [`SWEEP_EVERY`], lets go of the folders unused for
/// [`crate::store::LINGER_FOR`] and gives memory back if any went or
/// malloc holds more than `TRIM_ABOVE` (16 MB) free.
pub async fn sweep_idle_folders(registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let r = registry.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let released = r.release_idle();
            let dropped = t.elapsed();
            let trim = released > 0 || free_heap().is_some_and(|f| f > TRIM_ABOVE);
            if trim {
                give_back_freed_memory();
            }
            (released, trim, dropped, t.elapsed() - dropped)
        })
        .await;
        if let Ok((released, true, dropped, trimmed)) = swept {
            tracing::debug!(
                folders = released,
                drop_ms = dropped.as_millis() as u64,
                trim_ms = trimmed.as_millis() as u64,
                "let go of unused folders and gave memory back"
            );
        }
    }
}

/// Bytes malloc holds free in its arenas, where it can tell.
fn free_heap() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads glibc's own arena statistics.
        let m = unsafe { libc::mallinfo2() };
        Some(m.fordblks)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Returns the free pages of every malloc arena to the kernel.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks;
    // it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
