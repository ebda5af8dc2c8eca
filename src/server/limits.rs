//! Connection limits of the front: how many connections in total and per
//! remote address (`limits.max_connections`, `limits.max_connections_per_ip`).
//! A connection holds a [`Slot`] for its whole life; dropping it frees both
//! counts. Owns the counting only: the accept loop decides what to tell a
//! refused client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// Bounds total connections and connections per remote address.
pub struct Limiter {
    total: Arc<Semaphore>,
    max_total: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

/// Releases a connection's slot when the connection ends.
pub struct Slot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
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
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip,
        }
    }

    /// Connections holding a slot now.
    pub fn in_use(&self) -> usize {
        self.max_total - self.total.available_permits()
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let permit = self.total.clone().try_acquire_owned().ok()?;
        let mut m = self.per_ip.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(Slot {
            limiter: self.clone(),
            ip,
            _permit: permit,
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
}
