//! The HAProxy PROXY protocol on real listeners (issue 20): v1 and v2 headers name the client
//! in the connect line and in the login lines fail2ban reads; v2 LOCAL and v1 UNKNOWN keep the
//! socket's address; a header split over many writes is read whole and a command sent in the
//! same write as the header is not lost (the header is read byte-exact); garbage, a truncated
//! header and one that never ends (slowloris, `proxy.header_timeout`) close the connection
//! without a greeting; a peer outside `proxy.trusted_networks` is turned away from a PROXY
//! listener, header or not; on implicit TLS the header comes before the handshake; Dovecot's
//! `ID` fields rename a trusted client and are ignored from an untrusted one; the per-address
//! connection limit counts the clients named (by header or by `ID`), never the proxy.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Options, PASSWORD, TestServer, USER, converse};

const TIMEOUT: Duration = Duration::from_secs(10);

/// PROXY on cleartext IMAP and POP3 and on IMAPS; POP3S stays direct.
const PROXY: &str = r#"trusted_networks = ["127.0.0.1/32"]
proxy_protocol = ["{imap}", "{imaps}", "{pop3}"]
header_timeout = "1s"
"#;

fn server() -> Option<TestServer> {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's [proxy] section");
        return None;
    }
    Some(TestServer::start_with(Options {
        proxy: Some(PROXY),
        ..Options::default()
    }))
}

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_tcp(client: SocketAddr, server_port: u16) -> Vec<u8> {
    let mut body = Vec::new();
    match client.ip() {
        IpAddr::V4(a) => {
            body.extend_from_slice(&a.octets());
            body.extend_from_slice(&[127, 0, 0, 1]);
        }
        IpAddr::V6(a) => {
            body.extend_from_slice(&a.octets());
            body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        }
    }
    body.extend_from_slice(&client.port().to_be_bytes());
    body.extend_from_slice(&server_port.to_be_bytes());
    v2(1, if client.is_ipv4() { 0x11 } else { 0x21 }, &body)
}

/// A connection to `port` that has sent `header`.
fn proxied(port: u16, header: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), TIMEOUT)
        .expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).ok();
    s.write_all(header).expect("send header");
    s
}

/// What the server sends before closing, within the read timeout (`""`: closed at once).
fn until_closed(mut s: TcpStream) -> String {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// Waits for `needle` in the server's log.
fn wait_log(server: &TestServer, needle: &str) -> String {
    server.wait_log(needle, TIMEOUT)
}

fn wrong_login() -> String {
    format!("a LOGIN {USER} wrong-{PASSWORD}")
}

#[test]
fn headers_name_the_client_in_the_logs() {
    let Some(server) = server() else { return };
    let (imap, pop3) = (server.imap_port, server.pop3_port);

    let s = proxied(imap, b"PROXY TCP4 198.51.100.7 127.0.0.1 51000 143\r\n");
    let (g, a) = converse(s, &[&wrong_login()]);
    assert!(g.starts_with("* OK"), "{g}");
    assert!(a[0].starts_with("a NO"), "{a:?}");
    wait_log(
        &server,
        &format!("auth failed: user={USER} rip=198.51.100.7 mech=LOGIN"),
    );
    let log = wait_log(&server, "rip=198.51.100.7 rport=51000 proxy=127.0.0.1:");
    assert!(log.contains("imap connect"), "{log}");

    let s = proxied(imap, b"PROXY TCP6 2001:db8::7 ::1 51001 143\r\n");
    let (_, a) = converse(s, &[&wrong_login()]);
    assert!(a[0].starts_with("a NO"), "{a:?}");
    wait_log(
        &server,
        &format!("auth failed: user={USER} rip=2001:db8::7 mech=LOGIN"),
    );

    let s = proxied(pop3, &v2_tcp("203.0.113.9:40000".parse().unwrap(), pop3));
    let (g, a) = converse(s, &["USER mallory", "PASS guess"]);
    assert!(g.starts_with("+OK"), "{g}");
    assert!(a[1].starts_with("-ERR"), "{a:?}");
    wait_log(
        &server,
        "auth failed: user=mallory rip=203.0.113.9 mech=USER",
    );

    let s = proxied(imap, &v2_tcp("[2001:db8::9]:40001".parse().unwrap(), imap));
    let (_, a) = converse(s, &[&format!("a LOGIN {USER} {PASSWORD}")]);
    assert!(a[0].starts_with("a OK"), "{a:?}");
    wait_log(
        &server,
        &format!("auth ok: user={USER} rip=2001:db8::9 mech=LOGIN"),
    );

    // The proxy's own health checks: the socket's address stands.
    for header in [v2(0, 0x00, &[]), b"PROXY UNKNOWN\r\n".to_vec()] {
        let s = proxied(imap, &header);
        let (g, a) = converse(s, &["a LOGOUT"]);
        assert!(g.starts_with("* OK"), "{g}");
        assert!(a[0].starts_with("a OK"), "{a:?}");
    }
    let log = wait_log(&server, "rip=127.0.0.1 rport=");
    assert!(!log.contains("rip=127.0.0.1 rport=0"), "{log}");
}

#[test]
fn a_header_is_read_whole_however_it_arrives_and_nothing_after_it_is_lost() {
    let Some(server) = server() else { return };
    let imap = server.imap_port;
    // One byte at a time.
    let mut s = proxied(imap, b"");
    for b in b"PROXY TCP4 192.0.2.31 127.0.0.1 1234 143\r\n" {
        s.write_all(&[*b]).expect("send");
        std::thread::sleep(Duration::from_millis(3));
    }
    let (g, a) = converse(s, &[&wrong_login()]);
    assert!(g.starts_with("* OK"), "{g}");
    assert!(a[0].starts_with("a NO"), "{a:?}");
    wait_log(&server, "rip=192.0.2.31 mech=LOGIN");

    // Header and first command in one write, before the greeting: the command is the
    // session's, not swallowed with the header (v1 and v2).
    for (header, who) in [
        (
            b"PROXY TCP4 192.0.2.32 127.0.0.1 1234 143\r\n".to_vec(),
            "192.0.2.32",
        ),
        (
            v2_tcp("192.0.2.33:1234".parse().unwrap(), imap),
            "192.0.2.33",
        ),
    ] {
        let mut bytes = header;
        bytes.extend_from_slice(format!("{}\r\n", wrong_login()).as_bytes());
        let s = proxied(imap, &bytes);
        let mut r = BufReader::new(s);
        let mut greeting = String::new();
        r.read_line(&mut greeting).expect("greeting");
        assert!(greeting.starts_with("* OK"), "{greeting}");
        let mut answer = String::new();
        r.read_line(&mut answer).expect("answer");
        assert!(answer.starts_with("a NO"), "{answer}");
        wait_log(&server, &format!("rip={who} mech=LOGIN"));
    }
}

#[test]
fn bad_missing_or_slow_headers_close_the_connection_unanswered() {
    let Some(server) = server() else { return };
    let imap = server.imap_port;
    // A client that does not know it is behind a proxy.
    let s = proxied(imap, b"a LOGIN alice secret\r\n");
    assert_eq!(until_closed(s), "");
    wait_log(&server, "PROXY header refused: not a PROXY protocol header");
    // A malformed v1 header, a malformed v2 header.
    let s = proxied(imap, b"PROXY TCP4 192.0.2.777 127.0.0.1 1 143\r\n");
    assert_eq!(until_closed(s), "");
    wait_log(&server, "malformed PROXY v1 header");
    let s = proxied(imap, &v2(1, 0x11, &[1, 2, 3]));
    assert_eq!(until_closed(s), "");
    wait_log(&server, "malformed PROXY v2 header");
    // Closed mid-header by the peer.
    let s = proxied(imap, b"PROXY TCP4 192.0.2.1");
    s.shutdown(std::net::Shutdown::Write).ok();
    assert_eq!(until_closed(s), "");
    // Slowloris: a header that never ends is cut at proxy.header_timeout (1s).
    let start = Instant::now();
    let s = proxied(imap, b"PROXY TCP4 192.0.2.1 ");
    assert_eq!(until_closed(s), "");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    wait_log(&server, "no PROXY header within proxy.header_timeout");
    // The listener still serves.
    let (g, _) = converse(proxied(imap, b"PROXY UNKNOWN\r\n"), &["a LOGOUT"]);
    assert!(g.starts_with("* OK"), "{g}");
}

#[test]
fn untrusted_peers_are_turned_away_from_proxy_listeners_only() {
    let Some(server) = server() else { return };
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    for (port, header) in [
        (
            server.imap_port,
            b"PROXY TCP4 192.0.2.99 127.0.0.1 1 143\r\n".to_vec(),
        ),
        (server.pop3_port, Vec::new()),
    ] {
        let mut s = common::connect_from(other, SocketAddr::from(([127, 0, 0, 1], port)));
        let _ = s.write_all(&header);
        assert_eq!(until_closed(s), "", "port {port}");
    }
    let log = wait_log(&server, "peer not in proxy.trusted_networks");
    assert!(log.contains("rip=127.0.0.2"), "{log}");
    assert!(!log.contains("192.0.2.99"), "{log}");
    // On a listener without PROXY the same peer is an ordinary client (POP3S).
    let tcp = common::connect_from(other, SocketAddr::from(([127, 0, 0, 1], server.pop3s_port)));
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = rustls::ClientConnection::new(server.tls_client_config(), name).expect("client");
    let mut s = rustls::StreamOwned::new(tls, tcp);
    let mut greeting = String::new();
    BufReader::new(&mut s)
        .read_line(&mut greeting)
        .expect("greeting");
    assert!(greeting.starts_with("+OK"), "{greeting}");
}

#[test]
fn on_implicit_tls_the_header_comes_before_the_handshake() {
    let Some(server) = server() else { return };
    let tcp = proxied(
        server.imaps_port,
        b"PROXY TCP4 192.0.2.44 127.0.0.1 4444 993\r\n",
    );
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = rustls::ClientConnection::new(server.tls_client_config(), name).expect("client");
    let mut s = rustls::StreamOwned::new(tls, tcp);
    let mut r = BufReader::new(&mut s);
    let mut greeting = String::new();
    r.read_line(&mut greeting).expect("greeting");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    drop(r);
    s.write_all(format!("a LOGIN {USER} {PASSWORD}\r\n").as_bytes())
        .expect("login");
    let mut r = BufReader::new(&mut s);
    let mut answer = String::new();
    r.read_line(&mut answer).expect("answer");
    assert!(answer.starts_with("a OK"), "{answer}");
    wait_log(
        &server,
        &format!("auth ok: user={USER} rip=192.0.2.44 mech=LOGIN"),
    );
}

#[test]
fn id_fields_rename_a_trusted_client_and_are_ignored_from_others() {
    let Some(server) = server() else { return };
    let imap = server.imap_port;
    let id = r#"i ID ("name" "Dovecot" "x-originating-ip" "192.0.2.55" "x-originating-port" "4455" "x-connected-ip" "10.0.0.1" "x-session-id" "Sess+1/abc")"#;
    // The proxy names no client in its header (its own address, trusted), then in ID.
    let s = proxied(imap, b"PROXY UNKNOWN\r\n");
    let (_, a) = converse(s, &[id, &wrong_login()]);
    assert!(a[0].starts_with("i OK"), "{a:?}");
    assert!(a[1].starts_with("a NO"), "{a:?}");
    wait_log(
        &server,
        &format!("auth failed: user={USER} rip=192.0.2.55 mech=LOGIN session=Sess+1/abc"),
    );
    wait_log(&server, "client named by a trusted proxy");
    // A client behind a TCP proxy sends the same ID: it is answered, and ignored.
    let s = proxied(imap, b"PROXY TCP4 198.51.100.8 127.0.0.1 1 143\r\n");
    let forged = id.replace("192.0.2.55", "192.0.2.66");
    let (_, a) = converse(s, &[&forged, &wrong_login()]);
    assert!(a[0].starts_with("i OK"), "{a:?}");
    let log = wait_log(
        &server,
        &format!("auth failed: user={USER} rip=198.51.100.8 mech=LOGIN\n"),
    );
    assert!(!log.contains("rip=192.0.2.66"), "{log}");
}

/// `limits.max_connections_per_ip` counts the client a proxy names, not the proxy: the
/// proxy's own connections go over the cap, and a second connection of one named client is
/// refused, whether a PROXY header or an `ID` named it.
#[test]
fn the_per_address_limit_counts_named_clients_not_the_proxy() {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's [proxy] section");
        return;
    }
    let server = TestServer::start_with(Options {
        proxy: Some(PROXY),
        extra_limits: Some("max_connections_per_ip = 1\n"),
        ..Options::default()
    });
    let imap = server.imap_port;
    let greet = |s: TcpStream| {
        let mut r = BufReader::new(s);
        let mut g = String::new();
        r.read_line(&mut g).expect("greeting");
        (r, g)
    };
    // Three clients at once through the one proxy address.
    let held: Vec<_> = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .iter()
        .map(|ip| {
            let (r, g) = greet(proxied(
                imap,
                format!("PROXY TCP4 {ip} 127.0.0.1 1000 143\r\n").as_bytes(),
            ));
            assert!(g.starts_with("* OK"), "{ip}: {g}");
            r
        })
        .collect();
    // A second connection of 192.0.2.1, by header: refused like a direct one.
    let (_, g) = greet(proxied(
        imap,
        b"PROXY TCP4 192.0.2.1 127.0.0.1 1001 143\r\n",
    ));
    assert!(g.starts_with("* BYE Too many connections"), "{g}");
    // By ID: the proxy's connection is served, the ID naming 192.0.2.2 ends it.
    let s = proxied(imap, b"PROXY UNKNOWN\r\n");
    let mut w = s.try_clone().expect("clone");
    let (mut r, g) = greet(s);
    assert!(g.starts_with("* OK"), "{g}");
    w.write_all(b"i ID (\"x-originating-ip\" \"192.0.2.2\")\r\n")
        .expect("send");
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(rest.contains("* BYE Too many connections"), "{rest}");
    // An ID naming a client with room is served on.
    let s = proxied(imap, b"PROXY UNKNOWN\r\n");
    let (_, a) = converse(
        s,
        &[
            r#"i ID ("x-originating-ip" "192.0.2.9")"#,
            &format!("a LOGIN {USER} {PASSWORD}"),
        ],
    );
    assert!(a[1].starts_with("a OK"), "{a:?}");
    wait_log(&server, &format!("auth ok: user={USER} rip=192.0.2.9"));
    drop(held);
}
