//! Authentication outcome logging in a stable, fail2ban-friendly format, and a per-address
//! failure tracker that slows down repeated guessing (SPEC §4, §8).
//!
//! The log line format is an interface: `contrib/fail2ban/filter.d/nestbox.conf` matches
//!
//! ```text
//! auth failed: user=<name> rip=<address> mech=<mechanism>[ session=<id>]
//! ```
//!
//! (`session=`: the `x-session-id` a trusted proxy gave in `ID`, escaped like the user name.)
//!
//! A login whose password was right but whose protocol the user may not use is logged as
//!
//! ```text
//! protocol refused: user=<name> rip=<address> proto=<imap|pop3> reason=<why>
//! ```
//!
//! which the filter deliberately does not match: whoever gets that far knows the password,
//! and banning them would only lock a user out of the protocols they may use.
//!
//! The user name is client-controlled, so it is escaped: no spaces, control characters or
//! `=`-lookalikes that could forge a second `rip=` for fail2ban, and it is cut to 64 bytes.
//!
//! The tracker's memory is bounded ([`FailureTracker::MAX_ENTRIES`]), and IPv6 addresses are
//! grouped by /64, since one host usually owns a whole /64 and could otherwise rotate.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Logs a failed login: `auth failed: user=<x> rip=<ip> mech=<m>[ session=<id>]` at WARN.
/// `session`: already escaped ([`sanitize`]).
pub fn log_failure(user: &str, rip: IpAddr, mech: &str, session: Option<&str>) {
    tracing::warn!(target: "nestbox::auth", "{}", failure_line(user, rip, mech, session));
}

fn failure_line(user: &str, rip: IpAddr, mech: &str, session: Option<&str>) -> String {
    format!(
        "auth failed: user={} rip={} mech={}{}",
        sanitize(user),
        rip,
        sanitize(mech),
        session_field(session)
    )
}

/// ` session=<id>` or nothing.
fn session_field(session: Option<&str>) -> String {
    session.map(|s| format!(" session={s}")).unwrap_or_default()
}

/// Logs a login refused for its protocol after a right password:
/// `protocol refused: user=<x> rip=<ip> proto=<p> reason=<why>` at WARN.
pub fn log_refused(user: &str, rip: IpAddr, proto: super::Protocol, reason: &str) {
    tracing::warn!(target: "nestbox::auth", "{}", refused_line(user, rip, proto, reason));
}

fn refused_line(user: &str, rip: IpAddr, proto: super::Protocol, reason: &str) -> String {
    // `reason` is ours (names from the config and the users file), last on the line.
    format!(
        "protocol refused: user={} rip={} proto={} reason={}",
        sanitize(user),
        rip,
        proto.as_str(),
        reason.replace(|c: char| c.is_control(), "?")
    )
}

/// Logs a successful login: `auth ok: user=<x> rip=<ip> mech=<m>[ session=<id>]` at INFO.
pub fn log_success(user: &str, rip: IpAddr, mech: &str, session: Option<&str>) {
    tracing::info!(
        target: "nestbox::auth",
        "auth ok: user={} rip={} mech={}{}",
        sanitize(user),
        rip,
        sanitize(mech),
        session_field(session)
    );
}

/// Makes a client-supplied string safe to put in one log field: printable ASCII except
/// space and `\`, others as `\xNN`; at most 64 input bytes; empty becomes `<none>`.
pub fn sanitize(s: &str) -> String {
    if s.is_empty() {
        return "<none>".into();
    }
    let mut out = String::new();
    for &b in s.as_bytes().iter().take(64) {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if s.len() > 64 {
        out.push_str("...");
    }
    out
}

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Counts recent authentication failures per client address and says how long to wait
/// before answering the next attempt from it.
///
/// After `threshold` failures the delay is 1s, then doubles per further failure up to
/// [`FailureTracker::MAX_DELAY`]. An address is forgotten [`FailureTracker::FORGET_AFTER`]
/// after its last failure, or on a successful login.
pub struct FailureTracker {
    threshold: u32,
    map: Mutex<HashMap<IpAddr, Record>>,
}

impl FailureTracker {
    /// Longest delay ever imposed.
    pub const MAX_DELAY: Duration = Duration::from_secs(15);
    /// Quiet time after which an address starts afresh.
    pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
    /// Addresses remembered at most; beyond that the stalest are dropped.
    pub const MAX_ENTRIES: usize = 65_536;

    /// `threshold` is `limits.auth_failures_before_delay`.
    pub fn new(threshold: u32) -> Self {
        FailureTracker {
            threshold,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Records one failure from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// Forgets `ip` after a successful login.
    pub fn record_success(&self, ip: IpAddr) {
        self.lock().remove(&key(ip));
    }

    /// How long to wait before answering an attempt from `ip` (zero if none).
    pub fn delay(&self, ip: IpAddr) -> Duration {
        self.delay_at(ip, Instant::now())
    }

    /// Number of addresses currently remembered (tests: the table stays
    /// bounded).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no address is remembered (tests).
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        // A panic elsewhere while holding the lock leaves only counters behind: keep going.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_failure_at(&self, ip: IpAddr, now: Instant) {
        let mut map = self.lock();
        if map.len() >= Self::MAX_ENTRIES && !map.contains_key(&key(ip)) {
            map.retain(|_, r| now.saturating_duration_since(r.last) < Self::FORGET_AFTER);
            if map.len() >= Self::MAX_ENTRIES {
                // Still full of live entries: drop the stalest eighth in one O(n) pass rather
                // than scanning again on every new address.
                let mut ages: Vec<Instant> = map.values().map(|r| r.last).collect();
                let cut = ages.len() / 8;
                ages.select_nth_unstable(cut);
                let limit = ages[cut];
                map.retain(|_, r| r.last > limit);
            }
        }
        let r = map.entry(key(ip)).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(r.last) >= Self::FORGET_AFTER {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
    }

    fn delay_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let map = self.lock();
        let Some(r) = map.get(&key(ip)) else {
            return Duration::ZERO;
        };
        if now.saturating_duration_since(r.last) >= Self::FORGET_AFTER
            || r.failures < self.threshold
        {
            return Duration::ZERO;
        }
        let doublings = (r.failures - self.threshold).min(8);
        (Duration::from_secs(1) * (1u32 << doublings)).min(Self::MAX_DELAY)
    }
}

/// IPv4 as is; IPv6 by its /64 (IPv4-mapped IPv6 as the IPv4 address, as the accept loop
/// also has it: one client, one bucket).
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_and_caps() {
        let t = FailureTracker::new(3);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..9 {
            t.record_failure_at(ip, now);
            delays.push(t.delay_at(ip, now).as_secs());
        }
        assert_eq!(delays, [0, 0, 1, 2, 4, 8, 15, 15, 15]);
        // Others are unaffected.
        assert_eq!(
            t.delay_at("192.0.2.8".parse().unwrap(), now),
            Duration::ZERO
        );
        // Forgotten after the quiet period, and after a success.
        let later = now + FailureTracker::FORGET_AFTER;
        assert_eq!(t.delay_at(ip, later), Duration::ZERO);
        t.record_failure_at(ip, later);
        assert_eq!(t.delay_at(ip, later), Duration::ZERO);
        for _ in 0..5 {
            t.record_failure_at(ip, later);
        }
        assert!(t.delay_at(ip, later) > Duration::ZERO);
        t.record_success(ip);
        assert_eq!(t.delay_at(ip, later), Duration::ZERO);
        assert!(t.is_empty());
    }

    #[test]
    fn ipv6_grouped_by_64() {
        let t = FailureTracker::new(1);
        let now = Instant::now();
        t.record_failure_at("2001:db8:1:2::1".parse().unwrap(), now);
        t.record_failure_at("2001:db8:1:2:ffff::9".parse().unwrap(), now);
        assert_eq!(
            t.delay_at("2001:db8:1:2::77".parse().unwrap(), now),
            Duration::from_secs(2)
        );
        assert_eq!(
            t.delay_at("2001:db8:1:3::1".parse().unwrap(), now),
            Duration::ZERO
        );
        t.record_failure_at("::ffff:192.0.2.1".parse().unwrap(), now);
        assert_eq!(
            t.delay_at("192.0.2.1".parse().unwrap(), now),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn memory_is_bounded() {
        let t = FailureTracker::new(3);
        let now = Instant::now();
        for i in 0..(FailureTracker::MAX_ENTRIES as u32 + 1000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.record_failure_at(ip, now + Duration::from_millis(u64::from(i)));
        }
        assert!(t.len() <= FailureTracker::MAX_ENTRIES);
        // The newest address survived the pruning.
        let newest = IpAddr::V4(std::net::Ipv4Addr::from(
            0x0a00_0000 + FailureTracker::MAX_ENTRIES as u32 + 999,
        ));
        assert!(t.lock().contains_key(&newest));
    }

    /// The shipped fail2ban filter, run as fail2ban would (its `<ADDR>` stands for an
    /// address), bans the address of a failed login and nothing else: not a refused
    /// protocol, not a success, not an address forged inside the user name.
    #[test]
    fn fail2ban_filter_matches_failures_only() {
        let conf = include_str!("../../contrib/fail2ban/filter.d/nestbox.conf");
        let failregex = conf
            .lines()
            .find_map(|l| l.strip_prefix("failregex = "))
            .expect("failregex");
        let re =
            regex::Regex::new(&failregex.replace("<ADDR>", r"(?P<addr>[0-9A-Fa-f.:]+)")).unwrap();
        let prefix = "2026-12-03T17:00:00.000000Z  WARN nestbox::auth: ";
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let addr = |line: String| {
            re.captures(&format!("{prefix}{line}"))
                .map(|c| c["addr"].to_string())
        };
        assert_eq!(
            addr(failure_line("ann", v4, "LOGIN", None)),
            Some("192.0.2.7".into())
        );
        assert_eq!(
            addr(failure_line("", v6, "PLAIN", None)),
            Some("2001:db8::7".into())
        );
        assert_eq!(
            addr(failure_line(
                "x rip=203.0.113.9 mech=LOGIN",
                v4,
                "LOGIN",
                None
            )),
            Some("192.0.2.7".into())
        );
        // A proxy's session id after the mechanism, escaped: still the client's address.
        assert_eq!(
            addr(failure_line("ann", v4, "LOGIN", Some("Xy1+/z"))),
            Some("192.0.2.7".into())
        );
        let forged = sanitize("x rip=203.0.113.9");
        assert_eq!(
            addr(failure_line("ann", v4, "LOGIN", Some(&forged))),
            Some("192.0.2.7".into())
        );
        for proto in [super::super::Protocol::Imap, super::super::Protocol::Pop3] {
            let line = refused_line("ann", v4, proto, "not in pop3.users_group popusers");
            assert!(
                line.starts_with("protocol refused: user=ann rip=192.0.2.7 proto="),
                "{line}"
            );
            assert_eq!(addr(line), None);
            // Not even with a user name made to look like a failure.
            let line = refused_line(
                "auth failed: user=x rip=203.0.113.9 mech=LOGIN",
                v4,
                proto,
                "r",
            );
            assert_eq!(addr(line), None);
        }
        assert_eq!(addr(format!("auth ok: user=ann rip={v4} mech=LOGIN")), None);
    }

    #[test]
    fn sanitize_table() {
        let table = [
            ("ann", "ann"),
            ("", "<none>"),
            ("a b", "a\\x20b"),
            ("x rip=1.2.3.4", "x\\x20rip=1.2.3.4"),
            ("a\r\nauth failed", "a\\x0d\\x0aauth\\x20failed"),
            ("ä", "\\xc3\\xa4"),
            ("back\\slash", "back\\x5cslash"),
        ];
        for (input, want) in table {
            assert_eq!(sanitize(input), want, "{input:?}");
        }
        assert_eq!(sanitize(&"a".repeat(100)), format!("{}...", "a".repeat(64)));
    }
}
