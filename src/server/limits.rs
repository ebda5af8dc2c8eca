//! Connection limits of the front: how many connections in total
//! (`limits.max_connections`), per remote address (`limits.max_connections_per_ip`,
//! an IPv6 /64 counting as one address) and not yet logged in
//! (`limits.max_unauthenticated`). A connection holds a [`Slot`] for its whole
//! life; dropping it frees its counts. The slot hands out one [`Unauthenticated`]
//! guard, which the session drops at login (or the connection at its end).
//!
//! Owns the counting, and the one log line a limit gives when it starts refusing
//! (then at most one a minute, with the count refused meanwhile: a flood of
//! refusals must not become a flood of log lines). It never decides what a
//! refused client is told: the accept loop does.
//!
//! A connection from a trusted mail proxy (`proxy.trusted_networks`) is admitted without a
//! per-address count ([`Limiter::admit_unbucketed`]): the proxy carries many clients. Once a
//! PROXY header or a proxy's `ID` names the client, [`Slot::count_address`] counts it under
//! that address.
//!
//! The caps can change while connections run (SIGHUP, [`Limiter::set_limits`]):
//! connections over a lowered cap stay, and new ones are admitted once enough
//! have ended. So the counts are plain atomics, not semaphore permits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a limit that keeps refusing is logged again.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
    Unauthenticated,
}

impl Refusal {
    fn index(self) -> usize {
        self as usize
    }

    fn key(self) -> &'static str {
        match self {
            Refusal::Total => "limits.max_connections",
            Refusal::PerAddress => "limits.max_connections_per_ip",
            Refusal::Unauthenticated => "limits.max_unauthenticated",
        }
    }
}

/// The log state of one limit: when it was last logged and how many
/// refusals went unlogged since.
#[derive(Default)]
struct Bite {
    last: Option<Instant>,
    unlogged: u64,
}

impl Bite {
    /// Counts one refusal; `Some(refused since the last line)` when a line
    /// is due now (`Some(0)` for the first), `None` when it is not.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.unlogged += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// Bounds total connections, connections per remote address and
/// connections not logged in yet.
pub struct Limiter {
    total: AtomicUsize,
    max_total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: AtomicUsize,
    unauthenticated: AtomicUsize,
    max_unauthenticated: AtomicUsize,
    bites: Mutex<[Bite; 3]>,
}

/// One place in the total count, given back on drop.
struct Counted {
    limiter: Arc<Limiter>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Releases a connection's slot when the connection ends.
pub struct Slot {
    limiter: Arc<Limiter>,
    /// `None`: not counted per address (a trusted proxy's connection).
    bucket: Option<IpAddr>,
    unauthenticated: Option<Unauthenticated>,
    _counted: Counted,
}

/// Counts its connection as not logged in until dropped: the session drops
/// it at a successful login.
pub struct Unauthenticated {
    limiter: Arc<Limiter>,
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        self.limiter.unauthenticated.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(bucket) = self.bucket else { return };
        if let Ok(mut m) = self.limiter.per_ip.lock() {
            if let Some(n) = m.get_mut(&bucket) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&bucket);
                }
            }
        }
    }
}

impl Slot {
    /// The guard that counts this connection as not logged in; once only
    /// (later calls give `None`). Whoever holds it drops it at login. If it
    /// is never taken, the connection counts as unauthenticated as long as
    /// the slot lives.
    pub fn unauthenticated(&mut self) -> Option<Unauthenticated> {
        self.unauthenticated.take()
    }

    /// Counts a slot admitted without an address ([`Limiter::admit_unbucketed`]) under
    /// `ip` from now on, or the refusal (logged like [`Limiter::admit`]'s) if that
    /// address is at its cap. A slot already counted somewhere stays there.
    pub fn count_address(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.bucket.is_some() {
            return Ok(());
        }
        let counted = self.limiter.count(ip);
        match counted {
            Ok(b) => {
                self.bucket = Some(b);
                Ok(())
            }
            Err(why) => {
                self.limiter.note_refusal(why, ip);
                Err(why)
            }
        }
    }
}

impl Limiter {
    pub fn new(max_total: usize, max_per_ip: usize, max_unauthenticated: usize) -> Self {
        Limiter {
            total: AtomicUsize::new(0),
            max_total: AtomicUsize::new(max_total),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: AtomicUsize::new(max_per_ip),
            unauthenticated: AtomicUsize::new(0),
            max_unauthenticated: AtomicUsize::new(max_unauthenticated),
            bites: Mutex::new(Default::default()),
        }
    }

    /// New caps (SIGHUP), for the connections that come next.
    pub fn set_limits(&self, max_total: usize, max_per_ip: usize, max_unauthenticated: usize) {
        self.max_total.store(max_total, Ordering::Release);
        self.max_per_ip.store(max_per_ip, Ordering::Release);
        self.max_unauthenticated
            .store(max_unauthenticated, Ordering::Release);
    }

    /// Connections holding a slot now.
    pub fn in_use(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Connections not logged in now.
    pub fn unauthenticated_now(&self) -> usize {
        self.unauthenticated.load(Ordering::Acquire)
    }

    /// A slot for a new connection from `ip`, counted as not logged in, or
    /// the limit that refuses it (logged here, once per minute at most).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let slot = self.try_admit(Some(ip));
        if let Err(why) = slot {
            self.note_refusal(why, ip);
        }
        slot
    }

    /// [`Limiter::admit`] without the per-address count, for a trusted proxy's
    /// connection (`peer`: its address, for the log line of a refusal).
    pub fn admit_unbucketed(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let slot = self.try_admit(None);
        if let Err(why) = slot {
            self.note_refusal(why, peer);
        }
        slot
    }

    /// One more connection in `ip`'s bucket, or the refusal; the bucket.
    fn count(&self, ip: IpAddr) -> Result<IpAddr, Refusal> {
        let bucket = bucket(ip);
        let mut m = self.per_ip.lock().map_err(|_| Refusal::PerAddress)?;
        let n = m.entry(bucket).or_insert(0);
        if *n >= self.max_per_ip.load(Ordering::Acquire) {
            if *n == 0 {
                m.remove(&bucket);
            }
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        Ok(bucket)
    }

    fn try_admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Refusal> {
        // Counted first, checked after: two connections racing for the last
        // place cannot both get it (the loser's guard gives it back).
        let n = self.total.fetch_add(1, Ordering::AcqRel);
        let counted = Counted {
            limiter: self.clone(),
        };
        if n >= self.max_total.load(Ordering::Acquire) {
            return Err(Refusal::Total);
        }
        let n = self.unauthenticated.fetch_add(1, Ordering::AcqRel);
        let unauthenticated = Unauthenticated {
            limiter: self.clone(),
        };
        if n >= self.max_unauthenticated.load(Ordering::Acquire) {
            return Err(Refusal::Unauthenticated);
        }
        let bucket = ip.map(|ip| self.count(ip)).transpose()?;
        Ok(Slot {
            limiter: self.clone(),
            bucket,
            unauthenticated: Some(unauthenticated),
            _counted: counted,
        })
    }

    /// Logs a refusal if this limit has not been logged within [`LOG_EVERY`].
    fn note_refusal(&self, why: Refusal, ip: IpAddr) {
        let Ok(mut bites) = self.bites.lock() else {
            return;
        };
        let bite = &mut bites[why.index()];
        let first = bite.last.is_none();
        let Some(earlier) = bite.due(Instant::now()) else {
            return;
        };
        let value = match why {
            Refusal::Total => &self.max_total,
            Refusal::PerAddress => &self.max_per_ip,
            Refusal::Unauthenticated => &self.max_unauthenticated,
        }
        .load(Ordering::Acquire);
        if first {
            tracing::warn!(
                rip = %ip,
                "connection refused: {} = {value} reached (logged at most once a minute)",
                why.key(),
            );
        } else {
            tracing::warn!(
                rip = %ip,
                "connection refused: {} = {value} reached; {earlier} more refused since the last report",
                why.key(),
            );
        }
    }
}

/// Logged-in connections per user name (`limits.max_connections_per_user`),
/// all their devices together; checked at login, when the name is known.
/// Refusals are logged like the connection limits': once, then at most once
/// a minute with a count.
pub struct UserLimiter {
    max: AtomicUsize,
    counts: Mutex<HashMap<String, usize>>,
    bite: Mutex<Bite>,
}

/// One logged-in connection's place in the [`UserLimiter`], given back on drop.
pub struct UserSlot {
    owner: Arc<UserLimiter>,
    user: String,
}

impl UserLimiter {
    pub fn new(max: usize) -> Self {
        UserLimiter {
            max: AtomicUsize::new(max),
            counts: Mutex::new(HashMap::new()),
            bite: Mutex::new(Bite::default()),
        }
    }

    /// A new cap (SIGHUP); connections over it stay, new ones wait for room.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Release);
    }

    /// A place for one more connection of `user` (from `ip`, for the log),
    /// or `None` at the cap.
    pub fn admit(self: &Arc<Self>, user: &str, ip: IpAddr) -> Option<UserSlot> {
        let max = self.max.load(Ordering::Acquire);
        {
            let mut m = self.counts.lock().ok()?;
            let n = m.entry(user.to_string()).or_insert(0);
            if *n < max {
                *n += 1;
                return Some(UserSlot {
                    owner: self.clone(),
                    user: user.to_string(),
                });
            }
        }
        let due = self
            .bite
            .lock()
            .ok()
            .and_then(|mut b| b.due(Instant::now()));
        match due {
            Some(0) => tracing::warn!(
                user,
                rip = %ip,
                "login refused: limits.max_connections_per_user = {max} reached (logged at most once a minute)"
            ),
            Some(earlier) => tracing::warn!(
                user,
                rip = %ip,
                "login refused: limits.max_connections_per_user = {max} reached; {earlier} more refused since the last report"
            ),
            None => {}
        }
        None
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.owner.counts.lock() {
            if let Some(n) = m.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.user);
                }
            }
        }
    }
}

/// `remote` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address.
pub fn canonical(remote: SocketAddr) -> SocketAddr {
    SocketAddr::new(remote.ip().to_canonical(), remote.port())
}

/// The per-address bucket of `ip`: an IPv4 address itself (also when it
/// arrives IPv4-mapped), an IPv6 address its /64. One customer of an IPv6
/// provider usually gets a whole /64 (often a /56 or /48) and can pick any
/// address in it, so counting per IPv6 address would give them 2^64
/// buckets of `max_connections_per_ip` each.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_mapped_address_shares_the_ipv4_bucket() {
        let limiter = Arc::new(Limiter::new(10, 1, 10));
        let v4 = canonical("192.0.2.7:1000".parse().unwrap());
        let mapped = canonical("[::ffff:192.0.2.7]:1001".parse().unwrap());
        assert_eq!(mapped, "192.0.2.7:1001".parse().unwrap());
        let _held = limiter.admit(v4.ip()).unwrap();
        assert_eq!(limiter.admit(mapped.ip()).err(), Some(Refusal::PerAddress));
        // Also when the mapped form reaches the limiter itself.
        assert_eq!(
            limiter.admit(ip("::ffff:192.0.2.7")).err(),
            Some(Refusal::PerAddress)
        );
        // Real IPv6 addresses are left as they are.
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        assert!(limiter.admit(v6.ip()).is_ok());
        // Other IPv4 addresses have their own buckets, however close.
        assert!(limiter.admit(ip("192.0.2.8")).is_ok());
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address() {
        let limiter = Arc::new(Limiter::new(100, 2, 100));
        let a = limiter.admit(ip("2001:db8::1")).unwrap();
        let _b = limiter.admit(ip("2001:db8::ffff:1")).unwrap();
        assert_eq!(
            limiter.admit(ip("2001:db8::ffff:ffff:ffff:ffff")).err(),
            Some(Refusal::PerAddress),
            "the same /64"
        );
        let _c = limiter.admit(ip("2001:db8:0:1::1")).unwrap();
        let _d = limiter.admit(ip("2001:db8:0:1::2")).unwrap();
        assert!(limiter.admit(ip("2001:db8:0:1::3")).is_err());
        // A freed slot is free for the whole /64.
        drop(a);
        assert!(limiter.admit(ip("2001:db8::abcd")).is_ok());
        assert_eq!(bucket(ip("2001:db8::ffff:1")), ip("2001:db8::"));
        assert_eq!(bucket(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(bucket(ip("10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn logging_in_frees_the_unauthenticated_place() {
        let limiter = Arc::new(Limiter::new(100, 100, 2));
        let mut a = limiter.admit(ip("192.0.2.1")).unwrap();
        let _b = limiter.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(limiter.unauthenticated_now(), 2);
        assert_eq!(
            limiter.admit(ip("192.0.2.3")).err(),
            Some(Refusal::Unauthenticated)
        );
        // The refused one left no count behind.
        assert_eq!(limiter.unauthenticated_now(), 2);
        assert_eq!(limiter.in_use(), 2);
        // `a` logs in: its connection stays, its unauthenticated place is free.
        let guard = a.unauthenticated().unwrap();
        assert!(a.unauthenticated().is_none(), "handed out once");
        drop(guard);
        assert_eq!(limiter.unauthenticated_now(), 1);
        let c = limiter.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(limiter.in_use(), 3);
        // A connection that ends before login frees both.
        drop(c);
        assert_eq!(limiter.unauthenticated_now(), 1);
        assert_eq!(limiter.in_use(), 2);
        drop(a);
        assert_eq!(limiter.in_use(), 1);
    }

    #[test]
    fn the_total_limit_refuses_first() {
        let limiter = Arc::new(Limiter::new(1, 10, 10));
        let _a = limiter.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(limiter.admit(ip("192.0.2.2")).err(), Some(Refusal::Total));
        assert_eq!(limiter.unauthenticated_now(), 1);
    }

    #[test]
    fn lowered_and_raised_caps_apply_to_the_next_connections() {
        let limiter = Arc::new(Limiter::new(3, 3, 10));
        let a = ip("192.0.2.1");
        let held: Vec<Slot> = (0..3).map(|_| limiter.admit(a).unwrap()).collect();
        assert_eq!(limiter.admit(a).err(), Some(Refusal::Total));
        limiter.set_limits(1, 1, 10);
        assert_eq!(limiter.in_use(), 3, "running connections stay");
        drop(held);
        let one = limiter.admit(a).unwrap();
        assert!(limiter.admit(a).is_err(), "the lowered cap holds");
        limiter.set_limits(5, 2, 10);
        let _two = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).err(), Some(Refusal::PerAddress));
        drop(one);
        assert_eq!(limiter.in_use(), 1);
    }

    #[test]
    fn a_proxys_connections_count_under_the_clients_they_name() {
        let limiter = Arc::new(Limiter::new(10, 2, 10));
        let proxy = ip("10.0.0.1");
        // More than the per-address cap from the proxy itself.
        let mut held: Vec<Slot> = (0..4)
            .map(|_| limiter.admit_unbucketed(proxy).unwrap())
            .collect();
        let client = ip("203.0.113.5");
        assert_eq!(held[0].count_address(client), Ok(()));
        assert_eq!(held[1].count_address(client), Ok(()));
        assert_eq!(held[2].count_address(client), Err(Refusal::PerAddress));
        assert_eq!(held[3].count_address(ip("203.0.113.6")), Ok(()));
        assert_eq!(limiter.admit(client).err(), Some(Refusal::PerAddress));
        held.remove(0);
        let _direct = limiter.admit(client).unwrap();
        assert_eq!(limiter.in_use(), 4);
    }

    #[test]
    fn a_users_connections_are_capped_and_freed() {
        let users = Arc::new(UserLimiter::new(2));
        let a = ip("192.0.2.1");
        let one = users.admit("alice", a).unwrap();
        let _two = users.admit("alice", a).unwrap();
        assert!(users.admit("alice", a).is_none());
        assert!(users.admit("bob", a).is_some(), "per user");
        drop(one);
        let _three = users.admit("alice", a).unwrap();
        users.set_max(5);
        assert!(users.admit("alice", a).is_some());
    }
}
