//! The HAProxy PROXY protocol, versions 1 and 2, on the listeners named in
//! `proxy.proxy_protocol`: reading the header a trusted proxy sends before anything else
//! (before the TLS handshake on implicit-TLS listeners) and turning it into the client's
//! address.
//!
//! Reading is ours and byte-exact, parsing is the `ppp` crate's (v1 and v2, the address
//! families, the v2 length rules). The header is read without reading past it, since the
//! bytes after it belong to the session (a client's TLS ClientHello, or a pipelined
//! command): first the 6 bytes that tell the versions apart (`PROXY ` or the start of v2's
//! `\r\n\r\n\0\r\nQUIT\n` signature); then, for v1, one byte at a time up to its CRLF (at
//! most 107 bytes, the spec's bound), for v2 the rest of its 16-byte fixed part and then
//! exactly the length it announces (at most [`MAX_V2_BODY`]). A peer that sends less than
//! a header is cut off by the caller's `proxy.header_timeout`; a peer sending anything else
//! gets an error at the first byte that rules a header out. One small read per v1 byte is
//! a few dozen system calls once per connection, from a trusted proxy only.
//!
//! What a header means (spec §2.1 and §2.2): v1 `TCP4`/`TCP6` and v2 `PROXY` over
//! IPv4/IPv6 give the client's address; v1 `UNKNOWN`, v2 `LOCAL` (a health check by the
//! proxy itself) and v2 `UNSPEC`/Unix families keep the socket's address. TLVs are ignored.
//!
//! Never: decide who may send a header (the accept loop asks `proxy.trusted_networks`
//! first), or read a byte of the session.
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Length of the v2 signature plus version, family and length fields.
const V2_FIXED: usize = 16;
/// The v2 signature (spec §2.2).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included (spec §2.1).
pub const MAX_V1: usize = 107;
/// The most bytes after the fixed part of a v2 header we take: addresses (at most 216 for
/// Unix sockets) and TLVs (HAProxy's SSL ones with a client certificate's CN are the
/// largest in use). The spec allows 65,535; what is not a proxy's header is refused
/// before it is buffered.
pub const MAX_V2_BODY: usize = 2048;

/// What a header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// The client's address and port, as the proxy saw them.
    Client(SocketAddr),
    /// No client address: the proxy's own connection (v2 LOCAL), or one it cannot
    /// describe (v1 UNKNOWN, v2 UNSPEC or Unix sockets). The socket's address stands.
    Local,
}

impl Header {
    /// The client's address, or `socket`'s when the header names none.
    pub fn client_or(self, socket: SocketAddr) -> SocketAddr {
        match self {
            Header::Client(a) => SocketAddr::new(a.ip().to_canonical(), a.port()),
            Header::Local => socket,
        }
    }
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("not a PROXY protocol header")]
    NotAHeader,
    #[error("PROXY v1 header longer than {MAX_V1} bytes")]
    TooLongV1,
    #[error("PROXY v2 header announces {0} bytes, more than {MAX_V2_BODY}")]
    TooLongV2(usize),
    #[error("malformed PROXY v{0} header: {1}")]
    Malformed(u8, String),
    #[error("PROXY v2 header for a datagram connection")]
    Datagram,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// The log of connections refused on a PROXY listener because their peer is not trusted:
/// the first one, then at most one line a minute with the count meanwhile (like the
/// connection limits': a scan of the port must not flood the log).
#[derive(Default)]
pub struct Untrusted {
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Untrusted {
    /// Notes one refused peer, logging it if a line is due.
    pub fn refused(&self, peer: SocketAddr, listener: SocketAddr) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        if st
            .0
            .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(60))
        {
            st.1 += 1;
            return;
        }
        let earlier = std::mem::take(&mut st.1);
        let first = st.0.is_none();
        st.0 = Some(now);
        let since = if first {
            " (logged at most once a minute)".to_string()
        } else {
            format!("; {earlier} more refused since the last report")
        };
        tracing::warn!(
            rip = %peer.ip(),
            "connection refused on PROXY listener {listener}: peer not in proxy.trusted_networks{since}"
        );
    }
}

/// Reads one header from `r`, byte-exact (module doc), and parses it.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Header, HeaderError> {
    let mut buf = Vec::with_capacity(V2_FIXED);
    buf.resize(6, 0);
    r.read_exact(&mut buf).await?;
    if buf.as_slice() == b"PROXY " {
        loop {
            if buf.len() >= MAX_V1 {
                return Err(HeaderError::TooLongV1);
            }
            let b = r.read_u8().await?;
            buf.push(b);
            if buf.ends_with(b"\r\n") {
                return parse(&buf);
            }
            // A bare LF or any control byte cannot be in a v1 header: refuse it now.
            if b != b'\r' && (b.is_ascii_control() || !b.is_ascii()) {
                return Err(HeaderError::Malformed(1, "control byte".into()));
            }
        }
    }
    if !V2_SIGNATURE.starts_with(&buf) {
        return Err(HeaderError::NotAHeader);
    }
    buf.resize(V2_FIXED, 0);
    r.read_exact(&mut buf[6..]).await?;
    if &buf[..12] != V2_SIGNATURE {
        return Err(HeaderError::NotAHeader);
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if body > MAX_V2_BODY {
        return Err(HeaderError::TooLongV2(body));
    }
    buf.resize(V2_FIXED + body, 0);
    r.read_exact(&mut buf[V2_FIXED..]).await?;
    parse(&buf)
}

/// Parses exactly one whole header (`bytes` holds nothing else). Pure: the unit tests and
/// the property test drive it with tables and random bytes.
pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.starts_with(b"PROXY ") {
        use ppp::v1::{Addresses, Header as V1};
        let h = V1::try_from(bytes).map_err(|e| HeaderError::Malformed(1, e.to_string()))?;
        if h.header.len() != bytes.len() {
            return Err(HeaderError::Malformed(1, "bytes after the CRLF".into()));
        }
        return Ok(match h.addresses {
            Addresses::Tcp4(a) => {
                Header::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            Addresses::Tcp6(a) => {
                Header::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            Addresses::Unknown => Header::Local,
        });
    }
    if bytes.starts_with(V2_SIGNATURE) {
        use ppp::v2::{Addresses, Command, Header as V2, Protocol};
        let h = V2::try_from(bytes).map_err(|e| HeaderError::Malformed(2, e.to_string()))?;
        if h.len() != bytes.len() {
            return Err(HeaderError::Malformed(2, "length mismatch".into()));
        }
        if h.command == Command::Local {
            return Ok(Header::Local);
        }
        if h.protocol == Protocol::Datagram {
            return Err(HeaderError::Datagram);
        }
        return Ok(match h.addresses {
            Addresses::IPv4(a) => {
                Header::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            Addresses::IPv6(a) => {
                Header::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            Addresses::Unspecified | Addresses::Unix(_) => Header::Local,
        });
    }
    Err(HeaderError::NotAHeader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn v2_ipv4(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut body = src.to_vec();
        body.extend_from_slice(&[10, 0, 0, 5]);
        body.extend_from_slice(&sport.to_be_bytes());
        body.extend_from_slice(&143u16.to_be_bytes());
        body.extend_from_slice(tlvs);
        v2(1, 0x11, &body)
    }

    fn v2_ipv6(src: &str, sport: u16) -> Vec<u8> {
        let src: std::net::Ipv6Addr = src.parse().unwrap();
        let mut body = src.octets().to_vec();
        body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&sport.to_be_bytes());
        body.extend_from_slice(&993u16.to_be_bytes());
        v2(1, 0x21, &body)
    }

    fn client(s: &str) -> Header {
        Header::Client(s.parse().unwrap())
    }

    /// (wire bytes, what they mean); each is also read through [`read`] whole and split.
    fn good() -> Vec<(Vec<u8>, Header)> {
        vec![
            (
                b"PROXY TCP4 192.0.2.7 10.0.0.5 51000 143\r\n".to_vec(),
                client("192.0.2.7:51000"),
            ),
            (
                b"PROXY TCP6 2001:db8::7 ::1 51000 993\r\n".to_vec(),
                client("[2001:db8::7]:51000"),
            ),
            (
                b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n".to_vec(),
                client("255.255.255.255:65535"),
            ),
            (
                b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n".to_vec(),
                client("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), Header::Local),
            (
                b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec(),
                Header::Local,
            ),
            (v2_ipv4([198, 51, 100, 9], 40000, &[]), client("198.51.100.9:40000")),
            // A NOOP TLV and an unknown one (0xE0, custom range) are skipped.
            (
                v2_ipv4([198, 51, 100, 9], 40000, &[0x04, 0, 1, 42, 0xE0, 0, 2, 1, 2]),
                client("198.51.100.9:40000"),
            ),
            (v2_ipv6("2001:db8::9", 40001), client("[2001:db8::9]:40001")),
            (v2(0, 0x00, &[]), Header::Local),
            // LOCAL with addresses: the addresses are the proxy's, not a client's.
            (
                {
                    let mut h = v2_ipv4([198, 51, 100, 9], 40000, &[]);
                    h[12] = 0x20;
                    h
                },
                Header::Local,
            ),
            (v2(1, 0x00, &[]), Header::Local),
            (v2(1, 0x31, &[0u8; 216]), Header::Local),
        ]
    }

    #[test]
    fn headers_mean_what_the_spec_says() {
        for (wire, want) in good() {
            assert_eq!(
                parse(&wire).unwrap(),
                want,
                "{:?}",
                String::from_utf8_lossy(&wire)
            );
        }
    }

    #[test]
    fn ipv4_mapped_client_addresses_become_ipv4() {
        let h = parse(b"PROXY TCP6 ::ffff:192.0.2.1 ::1 5 6\r\n").unwrap();
        let socket: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(h.client_or(socket), "192.0.2.1:5".parse().unwrap());
        assert_eq!(Header::Local.client_or(socket), socket);
    }

    #[test]
    fn bad_headers_are_refused() {
        let bad: Vec<Vec<u8>> = vec![
            b"PROXY TCP4 192.0.2.7 10.0.0.5 51000\r\n".to_vec(),
            b"PROXY TCP4 192.0.2.777 10.0.0.5 51000 143\r\n".to_vec(),
            b"PROXY TCP4 2001:db8::1 10.0.0.5 51000 143\r\n".to_vec(),
            b"PROXY TCP5 192.0.2.7 10.0.0.5 51000 143\r\n".to_vec(),
            b"PROXY TCP4 192.0.2.7 10.0.0.5 70000 143\r\n".to_vec(),
            b"PROXY TCP4 192.0.2.7 10.0.0.5 51000 143\n".to_vec(),
            b"PROXY TCP4 192.0.2.7 10.0.0.5 51000 143\r\nA1 LOGIN".to_vec(),
            b"A1 LOGIN user pass\r\n".to_vec(),
            b"".to_vec(),
            // v2: version 1 in the version nibble, an unknown command, an address block
            // shorter than its family needs, a datagram connection.
            {
                let mut h = v2_ipv4([1, 2, 3, 4], 1, &[]);
                h[12] = 0x11;
                h
            },
            {
                let mut h = v2_ipv4([1, 2, 3, 4], 1, &[]);
                h[12] = 0x2F;
                h
            },
            v2(1, 0x11, &[1, 2, 3, 4]),
            v2(1, 0x12, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]),
        ];
        for wire in bad {
            assert!(
                parse(&wire).is_err(),
                "{:?} was taken",
                String::from_utf8_lossy(&wire)
            );
        }
    }

    /// Feeds `wire` then `after` through a pipe in pieces of `step` bytes and reads one
    /// header; returns it and what is left unread.
    async fn read_split(
        wire: &[u8],
        after: &[u8],
        step: usize,
    ) -> (Result<Header, String>, Vec<u8>) {
        let (mut w, mut r) = tokio::io::duplex(64);
        let mut all = wire.to_vec();
        all.extend_from_slice(after);
        let writer = tokio::spawn(async move {
            for piece in all.chunks(step.max(1)) {
                if w.write_all(piece).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        let got = read(&mut r).await.map_err(|e| e.to_string());
        // Drained before the writer is awaited: it may be blocked on a full pipe.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            r.read_to_end(&mut rest),
        )
        .await;
        writer.abort();
        (got, rest)
    }

    #[tokio::test]
    async fn reading_stops_at_the_header_however_it_is_split() {
        for (wire, want) in good() {
            for step in [1, 2, 5, 13, 16, 1000] {
                let (got, rest) = read_split(&wire, b"A1 CAPABILITY\r\n", step).await;
                assert_eq!(
                    got,
                    Ok(want),
                    "step {step}: {:?}",
                    String::from_utf8_lossy(&wire)
                );
                assert_eq!(rest, b"A1 CAPABILITY\r\n", "step {step}");
            }
        }
    }

    #[tokio::test]
    async fn reading_refuses_early_and_within_bounds() {
        // Not a header: refused after the first 6 bytes, before the rest is waited for.
        let (got, _) = read_split(b"A1 LOGIN user pass\r\n", b"", 100).await;
        assert!(got.unwrap_err().contains("not a PROXY"));
        // A v1 line without an end: refused at 107 bytes.
        let long = format!("PROXY TCP4 {}", "1".repeat(200));
        let (got, _) = read_split(long.as_bytes(), b"", 7).await;
        assert!(got.unwrap_err().contains("longer than 107"));
        // A v2 header announcing more than we take: refused before its body is read.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        let (got, _) = read_split(&h, b"", 100).await;
        assert!(got.unwrap_err().contains("65535"));
        // A bare LF in a v1 header.
        let (got, _) = read_split(b"PROXY TCP4 1.2.3.4\n", b"", 100).await;
        assert!(got.is_err());
        // The peer closes mid-header.
        let (got, _) = read_split(b"PROXY TCP4 1.2.3.4 5.6.7.8", b"", 100).await;
        assert!(got.is_err());
    }

    #[tokio::test]
    async fn a_header_that_never_ends_is_left_to_the_timeout() {
        let (mut w, mut r) = tokio::io::duplex(64);
        w.write_all(b"PROXY TCP4 1.2.3.4 ").await.unwrap();
        let t = tokio::time::timeout(std::time::Duration::from_millis(100), read(&mut r)).await;
        assert!(t.is_err(), "read returned before the header was complete");
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Nothing panics, whatever the bytes: random, or a real header with bytes
            /// changed.
            #[test]
            fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let _ = parse(&bytes);
                let mut v1 = b"PROXY ".to_vec();
                v1.extend_from_slice(&bytes);
                let _ = parse(&v1);
                let mut v2 = V2_SIGNATURE.to_vec();
                v2.extend_from_slice(&bytes);
                let _ = parse(&v2);
            }

            #[test]
            fn mutated_headers_never_panic(i in 0usize..60, b in any::<u8>()) {
                for wire in [
                    b"PROXY TCP6 2001:db8::7 ::1 51000 993\r\n".to_vec(),
                    super::v2_ipv6("2001:db8::9", 40001),
                ] {
                    let mut w = wire.clone();
                    let i = i % w.len();
                    w[i] = b;
                    let _ = parse(&w);
                    let _ = parse(&w[..i]);
                }
            }
        }
    }
}
