//! The login sequence both protocols run (IMAP LOGIN/AUTHENTICATE, POP3 USER/PASS, APOP
//! and AUTH): the per-address delay, the credential check, the protocol rules, the
//! per-user POP3 login interval, the log line and the failure count, in that order and in
//! one place, so the two protocols cannot drift apart.
//!
//! A refused protocol must look like a wrong password from outside, in text and in time:
//! the credential is checked first, at full cost, and a refusal then answers as a failure
//! and counts as one for the address's delay. Where the backend takes longer to say no
//! than yes (PAM modules sleep after a failure: `pam_faildelay`, `pam_unix`'s 2 s), the
//! refusal waits out the difference, learnt from the failures seen so far
//! ([`FailureTime`]). Only the log tells them apart: `protocol refused:` at WARN, which
//! the fail2ban filter does not match (whoever gets that far knows the password).
//!
//! Never: decide a protocol's response text (callers map [`LoginError`]), or log a
//! password.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::access::Protocol;
use super::{AuthError, Authenticator, FailureTracker, User};

/// What the client proved who it is with.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A password (LOGIN, AUTHENTICATE PLAIN/LOGIN, POP3 PASS and AUTH).
    Password(&'a str),
    /// APOP (RFC 1939 §7): the greeting's `timestamp` and the client's MD5 `digest`.
    Apop { timestamp: &'a str, digest: &'a str },
}

/// One login attempt.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// The client's address (failure delays, logs).
    pub rip: IpAddr,
    /// The user name as the client sent it.
    pub user: &'a str,
    pub credential: Credential<'a>,
    /// The mechanism for the log line (`LOGIN`, `PLAIN`, `USER`, `APOP`, ...).
    pub mech: &'a str,
    pub proto: Protocol,
    /// The proxy's session id (`x-session-id`, escaped), for the log lines.
    pub session: Option<&'a str>,
}

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong user or credential, or a protocol the user may not use (logged apart):
    /// IMAP `NO [AUTHENTICATIONFAILED]`, POP3 `-ERR [AUTH]`.
    #[error("authentication failed")]
    Failed,
    /// The backend could not answer: IMAP `NO [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`.
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
    /// POP3 only: the right credential, but sooner than `pop3.login_delay` after the
    /// user's last POP3 login (RFC 2449 §8.1.1 `-ERR [LOGIN-DELAY]`). `wait`: until when.
    #[error("logged in too recently; wait {wait:?}")]
    TooSoon { wait: Duration },
}

/// Runs one login attempt through the whole sequence (module doc) and logs its outcome.
/// What POP3 then does for the user is [`Authenticator::pop3_policy`].
pub async fn login(
    auth: &Authenticator,
    failures: &FailureTracker,
    a: Attempt<'_>,
) -> Result<User, LoginError> {
    let delay = failures.delay(a.rip);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let checked = match a.credential {
        Credential::Password(p) => auth.check_password(a.user, p).await,
        Credential::Apop { timestamp, digest } => auth.check_apop(a.user, timestamp, digest).await,
    };
    let (user, settings, took) = match checked {
        Ok(c) => c,
        Err(AuthError::Failed) => {
            super::log_failure(a.user, a.rip, a.mech, a.session);
            failures.record_failure(a.rip);
            return Err(LoginError::Failed);
        }
        Err(AuthError::Unavailable(why)) => {
            tracing::error!("authentication backend unavailable: {why}");
            return Err(LoginError::Unavailable(why));
        }
    };
    if let Err(reason) = auth.rules().access(&user, &settings, a.proto) {
        if matches!(a.credential, Credential::Password(_)) {
            // APOP is one MD5 either way: nothing to wait out.
            tokio::time::sleep(auth.failure_time.pad(took)).await;
        }
        super::log_refused(&user.name, a.rip, a.proto, &reason);
        failures.record_failure(a.rip);
        return Err(LoginError::Failed);
    }
    if a.proto == Protocol::Pop3 {
        let gap = auth.rules().pop3().login_delay;
        if let Err(wait) = auth.last_pop3_logins.admit(&user.name, gap, Instant::now()) {
            tracing::info!(
                target: "nestbox::auth",
                "login too soon: user={} rip={} proto=pop3 wait={}s",
                super::sanitize(&user.name),
                a.rip,
                wait.as_secs().max(1)
            );
            // The credential was right: not a guess, so the address is not slowed down.
            failures.record_success(a.rip);
            return Err(LoginError::TooSoon { wait });
        }
    }
    super::log_success(&user.name, a.rip, a.mech, a.session);
    failures.record_success(a.rip);
    Ok(user)
}

/// How long a failed password check usually takes, so that a refusal after a right
/// password can take as long (module doc). A moving average of the failures seen; before
/// the first one, nothing is known and nothing is added.
#[derive(Default)]
pub(super) struct FailureTime {
    average: Mutex<Option<Duration>>,
}

impl FailureTime {
    /// The most a refusal is held back: more than any PAM delay in use, less than a
    /// client's patience.
    const MAX_PAD: Duration = Duration::from_secs(10);

    /// Takes the duration of one failed check into the average (weight 1/4).
    pub(super) fn observe(&self, took: Duration) {
        let mut avg = self.average.lock().unwrap_or_else(|p| p.into_inner());
        *avg = Some(match *avg {
            None => took,
            Some(a) => (a * 3 + took) / 4,
        });
    }

    /// How much longer than `took` (a successful check) a failure would have taken.
    pub(super) fn pad(&self, took: Duration) -> Duration {
        let avg = *self.average.lock().unwrap_or_else(|p| p.into_inner());
        avg.map_or(Duration::ZERO, |a| a.saturating_sub(took))
            .min(Self::MAX_PAD)
    }
}

/// When each user last logged in with POP3, for `pop3.login_delay`. Only users who gave
/// the right credential get an entry, and entries older than the delay are dropped when
/// the table fills; if it is still full then (more users logged in within one delay than
/// it holds), it starts afresh: the delay is a courtesy to the server, not a protection,
/// and memory stays bounded.
#[derive(Default)]
pub(super) struct LastLogins {
    map: Mutex<HashMap<String, Instant>>,
}

impl LastLogins {
    /// Users remembered at most.
    const MAX_ENTRIES: usize = 65_536;

    /// Records a login of `user` at `now`, or says how long to wait when the last one was
    /// less than `gap` ago. A zero `gap` admits everyone and records nothing.
    pub(super) fn admit(&self, user: &str, gap: Duration, now: Instant) -> Result<(), Duration> {
        if gap.is_zero() {
            return Ok(());
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&last) = map.get(user) {
            let since = now.saturating_duration_since(last);
            if since < gap {
                return Err(gap - since);
            }
        }
        if map.len() >= Self::MAX_ENTRIES && !map.contains_key(user) {
            map.retain(|_, t| now.saturating_duration_since(*t) < gap);
            if map.len() >= Self::MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(user.to_string(), now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_gap() {
        let l = LastLogins::default();
        let t0 = Instant::now();
        let gap = Duration::from_secs(600);
        assert_eq!(l.admit("ann", gap, t0), Ok(()));
        assert_eq!(
            l.admit("ann", gap, t0 + Duration::from_secs(60)),
            Err(Duration::from_secs(540))
        );
        // Others are not affected; a refused attempt does not restart the clock.
        assert_eq!(l.admit("bob", gap, t0 + Duration::from_secs(60)), Ok(()));
        assert_eq!(l.admit("ann", gap, t0 + gap), Ok(()));
        assert!(
            l.admit("ann", gap, t0 + gap + Duration::from_secs(1))
                .is_err()
        );
        // Off: nothing recorded, nobody waits.
        let off = LastLogins::default();
        assert_eq!(off.admit("ann", Duration::ZERO, t0), Ok(()));
        assert_eq!(off.admit("ann", Duration::ZERO, t0), Ok(()));
        assert!(off.map.lock().unwrap().is_empty());
    }

    #[test]
    fn login_gap_memory_is_bounded() {
        let l = LastLogins::default();
        let t0 = Instant::now();
        let gap = Duration::from_secs(10);
        for i in 0..LastLogins::MAX_ENTRIES + 10 {
            // All within one gap: the table is full of live entries and starts afresh.
            l.admit(&format!("u{i}"), gap, t0).unwrap();
        }
        assert!(l.map.lock().unwrap().len() <= LastLogins::MAX_ENTRIES);
        // Stale entries go first.
        let later = t0 + gap;
        l.admit("fresh", gap, later).unwrap();
        assert!(l.map.lock().unwrap().len() <= LastLogins::MAX_ENTRIES);
    }

    #[test]
    fn failure_time_pads_the_difference() {
        let f = FailureTime::default();
        assert_eq!(f.pad(Duration::from_millis(5)), Duration::ZERO);
        f.observe(Duration::from_millis(2005));
        assert_eq!(f.pad(Duration::from_millis(5)), Duration::from_millis(2000));
        assert_eq!(f.pad(Duration::from_secs(3)), Duration::ZERO);
        f.observe(Duration::from_millis(5));
        // (2005 * 3 + 5) / 4
        assert_eq!(f.pad(Duration::from_millis(5)), Duration::from_millis(1500));
        f.observe(Duration::from_secs(3600));
        assert_eq!(f.pad(Duration::ZERO), FailureTime::MAX_PAD);
    }
}
