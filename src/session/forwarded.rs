//! The client a trusted proxy names in IMAP `ID` (RFC 2971), with the field names
//! Dovecot's proxy sends: `x-originating-ip` and `x-originating-port` (the client),
//! `x-connected-ip` (the address the client reached, the proxy's; logged only), and
//! `x-session-id` (the proxy's session, carried into the login lines).
//!
//! Only from a connection whose client address is in `proxy.trusted_networks`, and only
//! before login: the caller (`cmd::misc::id`) checks both. With a PROXY header the client
//! address is already the proxied client's, so an `ID` a client sends through a TCP proxy
//! (HAProxy in TCP mode passes it on) is never trusted. What this module reads is pure; it
//! never touches the connection.
use std::net::{IpAddr, SocketAddr};

/// What a proxy's `ID` said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address and port (`x-originating-port` or 0).
    pub client: Option<SocketAddr>,
    pub connected_ip: Option<IpAddr>,
    /// Sanitized for a log field (`auth::sanitize`).
    pub session_id: Option<String>,
}

impl Forwarded {
    /// Reads the fields from `ID`'s parameters; unparsable values are left out.
    pub fn from_params(params: &[(String, Option<String>)]) -> Forwarded {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_deref())
        };
        let ip = get("x-originating-ip").and_then(|v| v.parse::<IpAddr>().ok());
        let port = get("x-originating-port")
            .and_then(|v| v.parse::<u16>().ok())
            .unwrap_or(0);
        Forwarded {
            client: ip.map(|ip| SocketAddr::new(ip.to_canonical(), port)),
            connected_ip: get("x-connected-ip").and_then(|v| v.parse().ok()),
            session_id: get("x-session-id")
                .filter(|v| !v.is_empty())
                .map(crate::auth::sanitize),
        }
    }

    /// Whether any field was there.
    pub fn is_empty(&self) -> bool {
        *self == Forwarded::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn dovecot_fields_are_read_and_bad_ones_left_out() {
        let f = Forwarded::from_params(&params(&[
            ("name", "Dovecot"),
            ("X-Originating-IP", "203.0.113.5"),
            ("x-originating-port", "51234"),
            ("x-connected-ip", "10.0.0.1"),
            ("x-session-id", "a b\tc"),
        ]));
        assert_eq!(f.client, Some("203.0.113.5:51234".parse().unwrap()));
        assert_eq!(f.connected_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(f.session_id.as_deref(), Some("a\\x20b\\x09c"));

        let f = Forwarded::from_params(&params(&[
            ("x-originating-ip", "::ffff:192.0.2.1"),
            ("x-originating-port", "99999"),
        ]));
        assert_eq!(f.client, Some("192.0.2.1:0".parse().unwrap()));

        for bad in ["", "1.2.3", "203.0.113.5:80", "localhost"] {
            let f = Forwarded::from_params(&params(&[("x-originating-ip", bad)]));
            assert_eq!(f.client, None, "{bad}");
        }
        assert!(Forwarded::from_params(&params(&[("name", "Thunderbird")])).is_empty());
        assert!(Forwarded::from_params(&[("x-originating-ip".into(), None)]).is_empty());
    }
}
