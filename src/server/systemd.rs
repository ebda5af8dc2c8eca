//! What the front tells systemd (`sd_notify(3)`, through the `sd-notify` crate): READY=1
//! once every listener is bound, STOPPING=1 when draining starts, and WATCHDOG=1 pings
//! while the runtime is alive, when the unit has `WatchdogSec=`.
//!
//! Every call is a no-op outside systemd (no `NOTIFY_SOCKET`), and a failure to send is
//! ignored: systemd's own timeouts are what reports a server that cannot tell it anything.
//! The environment is never unset here (the crate would call `remove_var` in a process
//! with threads); workers do not see these variables anyway, since `pool` starts them with
//! a cleared environment. Owns only the messages; when to send them is `run`'s.

use std::time::Duration;

/// READY=1: every listener is bound.
pub fn ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// STOPPING=1: draining has started.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Starts the WATCHDOG=1 pings if systemd asked for them (`WATCHDOG_USEC` set, and
/// `WATCHDOG_PID` naming this process): a task on the runtime pings every half interval
/// (systemd's advice), so a runtime whose scheduler is stuck, and with it every session,
/// stops pinging and gets restarted (`Restart=on-failure`). Costs one timer wake-up per
/// half interval. Returns the ping interval, or `None` when no watchdog is set.
pub fn start_watchdog() -> Option<Duration> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return None;
    }
    let every = ping_interval(usec)?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    });
    tracing::debug!("systemd watchdog: pinging every {every:?}");
    Some(every)
}

/// Half of `WATCHDOG_USEC`; `None` for 0 (systemd's "off").
fn ping_interval(usec: u64) -> Option<Duration> {
    (usec > 0).then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_interval() {
        assert_eq!(ping_interval(0), None);
        assert_eq!(
            ping_interval(30_000_000),
            Some(Duration::from_secs(15)),
            "WatchdogSec=30"
        );
        assert_eq!(ping_interval(1), Some(Duration::from_millis(1)));
    }
}
