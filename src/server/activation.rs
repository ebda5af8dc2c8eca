//! Socket activation (`sd_listen_fds(3)`): listening sockets systemd bound for the server
//! (packaging/nestbox.socket) and passed as descriptors 3, 4, ... with `LISTEN_FDS`,
//! `LISTEN_PID` and `LISTEN_FDNAMES`, read through the `sd-notify` crate.
//!
//! Which kind of listener (IMAP, IMAPS, POP3, POP3S) a socket is: its
//! `FileDescriptorName=` when that is `imap`, `imaps`, `pop3` or `pop3s`; else the kind
//! whose configured listeners use its port; else the kind of the well-known port (143,
//! 993, 110, 995). A kind that got at least one socket is served on the passed sockets
//! only, its configured addresses unbound; the other kinds are bound from the config as
//! usual (`run`). A passed descriptor that is not a listening TCP socket, or whose kind
//! cannot be told, is an error: the server would otherwise ignore a port the operator
//! asked for.
//!
//! The crate marks every passed descriptor close-on-exec, so workers never inherit a
//! listener (`credentials::child_setup` closes anything left above stderr anyway), and the
//! `LISTEN_*` variables never reach them (`pool` clears their environment). Owns only the
//! inherited descriptors; binding is `run`'s.
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::config::Config;
use crate::pop3::Protocol;

/// A listener's kind: its protocol and whether TLS starts at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub protocol: Protocol,
    pub implicit_tls: bool,
}

/// The four kinds, with their `FileDescriptorName=` and well-known port.
const KINDS: [(&str, Protocol, bool, u16); 4] = [
    ("imap", Protocol::Imap, false, 143),
    ("imaps", Protocol::Imap, true, 993),
    ("pop3", Protocol::Pop3, false, 110),
    ("pop3s", Protocol::Pop3, true, 995),
];

/// A listening socket systemd passed, with its kind.
pub struct Passed {
    pub listener: std::net::TcpListener,
    pub kind: Kind,
    pub addr: SocketAddr,
}

/// The sockets systemd passed to this process (none when it was not socket-activated).
pub fn take(cfg: &Config) -> io::Result<Vec<Passed>> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names(false)?.collect();
    let mut passed = Vec::new();
    for (raw, name) in fds {
        // SAFETY: systemd hands these descriptors to this process (LISTEN_PID is ours,
        // checked by the crate), and nothing else in it owns them.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        passed.push(adopt(fd, &name, cfg)?);
    }
    Ok(passed)
}

fn adopt(fd: OwnedFd, name: &str, cfg: &Config) -> io::Result<Passed> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let what = |why: &str| io::Error::other(format!("passed socket {name:?}: {why}"));
    let family = sockopt::socket_domain(&fd)?;
    if sockopt::socket_type(&fd)? != SocketType::STREAM
        || !(family == AddressFamily::INET || family == AddressFamily::INET6)
    {
        return Err(what("not a TCP socket (ListenStream= with a port)"));
    }
    if !sockopt::socket_acceptconn(&fd)? {
        return Err(what("not listening"));
    }
    let listener = std::net::TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let kind = kind_of(name, addr.port(), cfg).ok_or_else(|| {
        what(&format!(
            "cannot tell its kind: name it imap, imaps, pop3 or pop3s \
             (FileDescriptorName=), or use a port of a configured listener ({addr})"
        ))
    })?;
    Ok(Passed {
        listener,
        kind,
        addr,
    })
}

/// The kind of a passed socket named `name` on `port` (see the module doc for the order).
pub fn kind_of(name: &str, port: u16, cfg: &Config) -> Option<Kind> {
    let kind = |protocol, implicit_tls| Kind {
        protocol,
        implicit_tls,
    };
    if let Some((_, p, tls, _)) = KINDS.iter().find(|k| k.0 == name) {
        return Some(kind(*p, *tls));
    }
    let configured = [
        (&cfg.imap.listen, Protocol::Imap, false),
        (&cfg.imap.listen_tls, Protocol::Imap, true),
        (&cfg.pop3.listen, Protocol::Pop3, false),
        (&cfg.pop3.listen_tls, Protocol::Pop3, true),
    ];
    if let Some((_, p, tls)) = configured
        .iter()
        .find(|(addrs, _, _)| addrs.iter().any(|a| a.port() == port))
    {
        return Some(kind(*p, *tls));
    }
    KINDS
        .iter()
        .find(|k| k.3 == port)
        .map(|(_, p, tls, _)| kind(*p, *tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_then_the_configured_port_then_the_well_known_one() {
        let mut cfg = Config::default();
        cfg.imap.listen = vec!["127.0.0.1:1143".parse().unwrap()];
        cfg.pop3.listen_tls = vec!["[::]:143".parse().unwrap()];
        let k = |name, port| kind_of(name, port, &cfg).map(|k| (k.protocol, k.implicit_tls));
        assert_eq!(k("pop3s", 1143), Some((Protocol::Pop3, true)));
        assert_eq!(k("imaps", 1), Some((Protocol::Imap, true)));
        assert_eq!(k("unknown", 1143), Some((Protocol::Imap, false)));
        // The config's choice of port wins over the well-known one.
        assert_eq!(k("unknown", 143), Some((Protocol::Pop3, true)));
        assert_eq!(k("unknown", 993), Some((Protocol::Imap, true)));
        assert_eq!(k("unknown", 110), Some((Protocol::Pop3, false)));
        assert_eq!(k("unknown", 8080), None);
        assert_eq!(k("IMAP", 8080), None);
    }

    #[test]
    fn a_socket_that_is_not_a_tcp_listener_is_refused() {
        let cfg = Config::default();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = adopt(OwnedFd::from(a), "imap", &cfg).err().unwrap();
        assert!(err.to_string().contains("not a TCP socket"), "{err}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(adopt(OwnedFd::from(udp), "imap", &cfg).is_err());
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let p = adopt(OwnedFd::from(tcp), "pop3", &cfg).unwrap();
        assert_eq!(p.addr.port(), port);
        assert_eq!(p.kind.protocol, Protocol::Pop3);
    }
}
