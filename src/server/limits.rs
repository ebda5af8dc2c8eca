//! Connection limits of the front: how many connections in total and per
//! remote address (`limits.max_connections`, `limits.max_connections_per_ip`).
//! A connection holds a [`Slot`] for its whole life; dropping it frees both
//! counts. Owns the counting only: the accept loop decides what to tell a
//! refused client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bounds total connections and connections per remote address. The caps
/// can change while connections run (SIGHUP): connections over a lowered
/// cap stay, and new ones are admitted once enough have ended.
pub struct Limiter {
    total: AtomicUsize,
    max_total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: AtomicUsize,
}

/// Releases a connection's slot when the connection ends.
pub struct Slot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut m) = self.limiter.per_ip.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

impl Limiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Limiter {
            total: AtomicUsize::new(0),
            max_total: AtomicUsize::new(max_total),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: AtomicUsize::new(max_per_ip),
        }
    }

    /// Connections holding a slot now.
    pub fn in_use(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// New caps (SIGHUP), for the connections that come next.
    pub fn set_limits(&self, max_total: usize, max_per_ip: usize) {
        self.max_total.store(max_total, Ordering::Release);
        self.max_per_ip.store(max_per_ip, Ordering::Release);
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut m = self.per_ip.lock().ok()?;
        if self.total.load(Ordering::Acquire) >= self.max_total.load(Ordering::Acquire) {
            return None;
        }
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_per_ip.load(Ordering::Acquire) {
            return None;
        }
        *n += 1;
        // Counted under the lock, so two admissions cannot both take the last place.
        self.total.fetch_add(1, Ordering::AcqRel);
        Some(Slot {
            limiter: self.clone(),
            ip,
        })
    }
}

/// `remote` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address.
pub fn canonical(remote: SocketAddr) -> SocketAddr {
    SocketAddr::new(remote.ip().to_canonical(), remote.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_address_shares_the_ipv4_bucket() {
        let limiter = Arc::new(Limiter::new(10, 1));
        let v4 = canonical("192.0.2.7:1000".parse().unwrap());
        let mapped = canonical("[::ffff:192.0.2.7]:1001".parse().unwrap());
        assert_eq!(mapped, "192.0.2.7:1001".parse().unwrap());
        let _held = limiter.admit(v4.ip()).unwrap();
        assert!(limiter.admit(mapped.ip()).is_none());
        // Real IPv6 addresses are left as they are.
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        assert!(limiter.admit(v6.ip()).is_some());
    }

    #[test]
    fn lowered_and_raised_caps_apply_to_the_next_connections() {
        let limiter = Arc::new(Limiter::new(3, 3));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<Slot> = (0..3).map(|_| limiter.admit(ip).unwrap()).collect();
        assert!(limiter.admit(ip).is_none());
        limiter.set_limits(1, 1);
        assert_eq!(limiter.in_use(), 3, "running connections stay");
        drop(held);
        let one = limiter.admit(ip).unwrap();
        assert!(limiter.admit(ip).is_none(), "the lowered cap holds");
        limiter.set_limits(5, 2);
        let _two = limiter.admit(ip).unwrap();
        assert!(limiter.admit(ip).is_none(), "per address: 2");
        drop(one);
        assert_eq!(limiter.in_use(), 1);
    }
}
