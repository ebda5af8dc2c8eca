//! The `[proxy]` section: which peers may speak for a client (`trusted_networks`), which
//! listeners expect the HAProxy PROXY protocol header from them (`proxy_protocol`), whether
//! they may pass plaintext logins (`trust_plaintext`), and how long a header may take
//! (`header_timeout`).
//!
//! Shaped after Dovecot's `haproxy = yes` per `inet_listener` plus
//! `haproxy_trusted_networks` and `login_trusted_networks`: a PROXY listener is the
//! proxies' own door (a peer outside `trusted_networks` is turned away there), while the
//! other listeners keep serving clients directly. An empty `trusted_networks` (the default)
//! turns the whole feature off. Owns the CIDR type and the matching; never touches sockets.
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::units::{de_duration, ser_duration};

/// `[proxy]` (nestbox.toml(5), `[proxy]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Peers that may speak for a client: a PROXY header, the `ID` fields
    /// `x-originating-ip` and friends, plaintext logins with `trust_plaintext`.
    pub trusted_networks: Vec<Network>,
    /// Listening addresses (from `imap.listen`, `imap.listen_tls`, `pop3.listen`,
    /// `pop3.listen_tls`) where a trusted peer must open with a PROXY v1 or v2 header and
    /// any other peer is refused.
    pub proxy_protocol: Vec<SocketAddr>,
    /// Passwords without TLS are accepted from a connection whose peer is a trusted proxy
    /// (nginx's mail proxy talks plaintext to its backends).
    pub trust_plaintext: bool,
    /// How long a trusted peer may take to send its PROXY header.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub header_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            trusted_networks: Vec::new(),
            proxy_protocol: Vec::new(),
            trust_plaintext: false,
            header_timeout: Duration::from_secs(5),
        }
    }
}

impl ProxyConfig {
    /// Whether `ip` is in `trusted_networks` (IPv4-mapped IPv6 counts as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_networks.iter().any(|n| n.contains(ip))
    }

    /// Whether the listener bound to `addr` expects PROXY headers.
    pub fn expects_header(&self, addr: SocketAddr) -> bool {
        self.proxy_protocol.contains(&addr)
    }

    /// The first problem with the section, as (key, message). `listeners`: every address
    /// the server listens on.
    pub(super) fn problem(&self, listeners: &[SocketAddr]) -> Option<(&'static str, String)> {
        if let Some(a) = self.proxy_protocol.iter().find(|a| !listeners.contains(a)) {
            return Some((
                "proxy_protocol",
                format!(
                    "proxy.proxy_protocol has {a}, which is not in imap.listen, imap.listen_tls, pop3.listen or pop3.listen_tls"
                ),
            ));
        }
        if self.trusted_networks.is_empty() && !self.proxy_protocol.is_empty() {
            return Some((
                "proxy_protocol",
                "proxy.proxy_protocol needs proxy.trusted_networks: no peer could send a header"
                    .into(),
            ));
        }
        if self.trusted_networks.is_empty() && self.trust_plaintext {
            return Some((
                "trust_plaintext",
                "proxy.trust_plaintext needs proxy.trusted_networks".into(),
            ));
        }
        if self.header_timeout < Duration::from_millis(100)
            || self.header_timeout > Duration::from_secs(60)
        {
            return Some((
                "header_timeout",
                "proxy.header_timeout must be between 100ms and 1m".into(),
            ));
        }
        None
    }
}

/// An address block, `10.0.0.0/8` or `::1/128`; a bare address is one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is inside the block (the block's host bits are ignored). An IPv4 block
    /// never contains an IPv6 address and the other way round: callers canonicalise
    /// IPv4-mapped addresses first.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid network {s:?}: expected an address or CIDR like \"10.0.0.0/8\" or \"::1/128\""
            )
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        // An IPv4-mapped block would never match: connections are compared canonical.
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(bad)?,
        };
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let table: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.200.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("0.0.0.0/0", "::1", false),
            ("::1/128", "::1", true),
            ("::1", "::2", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "2001:db8::1", true),
            ("::ffff:127.0.0.1", "127.0.0.1", true),
            ("127.0.0.0/8", "127.0.0.2", true),
        ];
        for (net, ip, want) in table {
            let n: Network = net.parse().unwrap();
            assert_eq!(n.contains(ip.parse().unwrap()), *want, "{net} {ip}");
        }
    }

    #[test]
    fn bad_networks_are_refused() {
        for s in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            assert!(s.parse::<Network>().is_err(), "{s}");
        }
    }

    /// The section's keys against the listeners, through the whole config's validation.
    #[test]
    fn validation_ties_the_section_to_the_listeners() {
        let base = "[imap]\nlisten = [\"10.0.0.7:143\"]\nlisten_tls = []\n[pop3]\nlisten = []\nlisten_tls = []\n";
        let tls = "[tls]\ncert = \"/c\"\nkey = \"/k\"\n";
        let parse = |extra: &str| crate::config::parse_str(&format!("{base}{extra}"));
        let ok = parse(&format!(
            "{tls}[proxy]\ntrusted_networks = [\"10.0.0.5\"]\nproxy_protocol = [\"10.0.0.7:143\"]\n"
        ))
        .unwrap();
        assert!(ok.proxy.expects_header("10.0.0.7:143".parse().unwrap()));
        assert!(ok.proxy.trusts("10.0.0.5".parse().unwrap()));
        for (extra, want) in [
            (
                format!(
                    "{tls}[proxy]\ntrusted_networks = [\"10.0.0.5\"]\nproxy_protocol = [\"10.0.0.7:993\"]\n"
                ),
                "not in imap.listen",
            ),
            (
                format!("{tls}[proxy]\nproxy_protocol = [\"10.0.0.7:143\"]\n"),
                "needs proxy.trusted_networks",
            ),
            (
                format!("{tls}[proxy]\ntrust_plaintext = true\n"),
                "needs proxy.trusted_networks",
            ),
            (
                format!("{tls}[proxy]\ntrusted_networks = [\"10.0.0.0/40\"]\n"),
                "invalid network",
            ),
            (
                format!(
                    "{tls}[proxy]\ntrusted_networks = [\"10.0.0.5\"]\nheader_timeout = \"10m\"\n"
                ),
                "header_timeout",
            ),
            // Without TLS a listener off loopback is refused...
            (String::new(), "could never log in"),
        ] {
            let e = parse(&extra).unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        // ...unless a trusted proxy may pass plaintext logins to it.
        parse("[proxy]\ntrusted_networks = [\"10.0.0.5\"]\ntrust_plaintext = true\n").unwrap();
    }

    #[test]
    fn trust_sees_mapped_addresses_as_ipv4() {
        let p = ProxyConfig {
            trusted_networks: vec!["192.0.2.0/24".parse().unwrap()],
            ..ProxyConfig::default()
        };
        assert!(p.trusts("::ffff:192.0.2.7".parse().unwrap()));
        assert!(!p.trusts("192.0.3.7".parse().unwrap()));
        assert!(!ProxyConfig::default().trusts("127.0.0.1".parse().unwrap()));
    }
}
