//! LOGIN-DELAY (RFC 2449 §6.8): the minimum time between two POP3 logins
//! of one user, when the operator sets one (`pop3.login_delay`, or per
//! user). Kept in the front process, which sees every login; a restart
//! forgets it, which errs on the side of letting a user in.
//!
//! Memory is bounded by the users who logged in within the longest delay
//! asked for: entries older than that are dropped as new ones come in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Last POP3 login per user, and the longest delay seen (for pruning).
#[derive(Default)]
struct Logins {
    last: HashMap<String, Instant>,
    longest: Duration,
}

static LOGINS: Mutex<Option<Logins>> = Mutex::new(None);

/// Whether `user` may log in now with a delay of `secs` seconds between
/// logins: `None` (and the login is recorded) if so, else how long is left.
pub fn check(user: &str, secs: u64) -> Option<Duration> {
    if secs == 0 {
        return None;
    }
    let delay = Duration::from_secs(secs);
    let now = Instant::now();
    let mut guard = match LOGINS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let logins = guard.get_or_insert_with(Logins::default);
    logins.longest = logins.longest.max(delay);
    if let Some(&at) = logins.last.get(user) {
        let since = now.saturating_duration_since(at);
        if since < delay {
            return Some(delay - since);
        }
    }
    if logins.last.len() >= 1024 && logins.last.len().is_power_of_two() {
        let longest = logins.longest;
        logins
            .last
            .retain(|_, at| now.saturating_duration_since(*at) < longest);
    }
    logins.last.insert(user.to_string(), now);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_login_within_the_delay_is_refused() {
        assert_eq!(check("delay-test-a", 0), None);
        assert_eq!(check("delay-test-a", 0), None);
        assert_eq!(check("delay-test-b", 300), None);
        let left = check("delay-test-b", 300).expect("too soon");
        assert!(left > Duration::from_secs(290) && left <= Duration::from_secs(300));
        // Another user is not affected.
        assert_eq!(check("delay-test-c", 300), None);
    }
}
