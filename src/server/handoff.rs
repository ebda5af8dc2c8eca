//! What the front tells a worker over their [`Channel`](super::channel::Channel):
//! first the configuration, then one message per connection it hands over.
//!
//! A hand-off carries everything the worker needs to continue the session
//! where the front left it, right after a successful login (IMAP LOGIN or
//! AUTHENTICATE; POP3 PASS, APOP or AUTH): the protocol, the IMAP tag to
//! answer, the user's POP3 settings, who logged in and where their mail is,
//! the facts about the connection (remote address, TLS), and the bytes the
//! client had already pipelined after its login command (the front read
//! them; the worker must see them first). The connection's stream itself
//! travels as the attached descriptor: the client's own TCP socket for a
//! connection without TLS ([`Handoff::direct`]; the worker then says when
//! the session has ended, [`FromWorker::Ended`]), else the worker's end of
//! a socket pair the front relays (`relay`).
//!
//! Encoded as TOML with serde (SPEC §7's serialisation crates; the messages
//! are a few hundred bytes, once per login), pipelined bytes as base64. Both
//! processes are the same executable (the front starts workers from
//! `/proc/self/exe`, which stays the running binary across a package
//! upgrade), so the format needs no versioning. This module never touches a
//! socket or a file.

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine;

use crate::pop3::{Pop3Policy, Protocol};
use serde::{Deserialize, Serialize};

/// A message from the front to a worker.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToWorker {
    /// The first message: the configuration, as `nestbox.toml` text with
    /// everything the worker must not know (TLS key and certificate, the
    /// users file) left out.
    Init { config: String },
    /// A connection whose client just logged in; its stream is attached.
    Session(Handoff),
    /// A new configuration (SIGHUP), in the form of `Init`'s, for the
    /// sessions that come next.
    Config { config: String },
}

/// A message from a worker to the front.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromWorker {
    /// The hand-off `id` arrived with its connection: the front may relay
    /// (until then it can still give the connection to another worker).
    Taken { id: u64 },
    /// The session of the direct hand-off `id` has ended and its socket is
    /// closed in the worker: the front lets go of the connection's slots.
    Ended { id: u64 },
    /// The IMAP session of hand-off `id` now has `folder` selected (`None`: none), for
    /// `nestbox who` (`control`).
    Selected {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        folder: Option<String>,
    },
}

impl FromWorker {
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode(bytes)
    }
}

/// A control message as TOML text, either way.
fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, String> {
    toml::to_string(msg)
        .map(String::into_bytes)
        .map_err(|e| format!("cannot encode control message: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("control message: {e}"))?;
    toml::from_str(text).map_err(|e| format!("control message: {e}"))
}

/// One logged-in connection, as the front hands it over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Handoff {
    /// Answered with [`FromWorker::Taken`].
    pub id: u64,
    /// The tag of the LOGIN/AUTHENTICATE command, answered by the worker
    /// once it has opened the mail store.
    pub tag: String,
    pub user: String,
    pub maildir: PathBuf,
    pub remote: SocketAddr,
    /// TLS is active on the client's connection (the front terminates it).
    pub tls: bool,
    /// Bytes after the login command, base64 (see [`Handoff::pipelined`]).
    pub pipelined: String,
    /// The protocol the connection speaks (IMAP when absent).
    #[serde(default = "imap")]
    pub protocol: Protocol,
    /// For POP3: what DELE and RETR do for this user, resolved in the
    /// front (it knows the users file; the worker does not).
    #[serde(default)]
    pub pop3: Option<Pop3Policy>,
    /// The attached descriptor is the client's TCP socket itself (no TLS
    /// on the connection), not a relayed socket pair: the worker talks to
    /// the client directly and reports [`FromWorker::Ended`].
    #[serde(default)]
    pub direct: bool,
    /// The user's quota limits, resolved in the front (it knows the users
    /// file and the config): the worker writes them into `maildirsize`.
    #[serde(default)]
    pub quota: crate::auth::QuotaLimits,
}

fn imap() -> Protocol {
    Protocol::Imap
}

impl Handoff {
    pub fn new(
        id: u64,
        tag: String,
        user: String,
        maildir: PathBuf,
        remote: SocketAddr,
        tls: bool,
        pipelined: &[u8],
    ) -> Self {
        Handoff {
            id,
            tag,
            user,
            maildir,
            remote,
            tls,
            pipelined: base64::engine::general_purpose::STANDARD.encode(pipelined),
            protocol: Protocol::Imap,
            pop3: None,
            direct: false,
            quota: crate::auth::QuotaLimits::default(),
        }
    }

    /// The user's quota limits.
    pub fn quota(mut self, limits: crate::auth::QuotaLimits) -> Self {
        self.quota = limits;
        self
    }

    /// A POP3 connection with the user's POP3 policy.
    pub fn pop3(mut self, policy: Pop3Policy) -> Self {
        self.protocol = Protocol::Pop3;
        self.pop3 = Some(policy);
        self
    }

    /// The bytes the client sent after its login command, before the hand-off.
    pub fn pipelined(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.pipelined)
            .map_err(|e| format!("bad pipelined bytes in hand-off: {e}"))
    }
}

impl ToWorker {
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode(bytes)
    }
}

/// The configuration as a worker gets it: the front's, without the TLS
/// files and the users file (a worker opens neither; leaving them out makes
/// sure it cannot).
pub fn worker_config(cfg: &crate::config::Config) -> String {
    let mut c = cfg.clone();
    c.tls = Default::default();
    c.auth.passwd_file = None;
    c.to_toml()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_survives_the_round_trip() {
        let h = Handoff::new(
            7,
            "a1".into(),
            "alice@example.org".into(),
            "/home/alice/Maildir".into(),
            "[2001:db8::1]:50000".parse().unwrap(),
            true,
            b"a2 SELECT INBOX\r\na3 NOOP\r\n\x00\xff",
        );
        let mut d = h.clone();
        d.direct = true;
        assert_eq!(
            ToWorker::decode(&ToWorker::Session(d.clone()).encode().unwrap()).unwrap(),
            ToWorker::Session(d)
        );
        let m = ToWorker::Session(h.clone());
        let back = ToWorker::decode(&m.encode().unwrap()).unwrap();
        assert_eq!(back, m);
        let p = ToWorker::Session(h.clone().pop3(crate::pop3::Pop3Policy {
            dele: crate::pop3::DeleAction::Move("Trash/Old".into()),
            retr_seen: false,
            login_delay_secs: 60,
            uidl_format: crate::pop3::uidl_format::UidlFormat::parse("%g-%08Xu").unwrap(),
        }));
        assert_eq!(ToWorker::decode(&p.encode().unwrap()).unwrap(), p);
        assert_eq!(
            h.pipelined().unwrap(),
            b"a2 SELECT INBOX\r\na3 NOOP\r\n\x00\xff"
        );
    }

    #[test]
    fn an_acknowledgement_survives_the_round_trip() {
        // TOML integers are i64: ids stay below 2^63 (a counter from 1).
        for m in [
            FromWorker::Taken { id: 1 << 62 },
            FromWorker::Ended { id: 3 },
            FromWorker::Selected {
                id: 4,
                folder: Some("Archive/2024 \"x\"".into()),
            },
            FromWorker::Selected {
                id: 5,
                folder: None,
            },
        ] {
            assert_eq!(FromWorker::decode(&m.encode().unwrap()).unwrap(), m);
        }
    }

    #[test]
    fn the_worker_config_has_no_secrets_and_parses() {
        let mut cfg = crate::config::Config::default();
        cfg.tls.cert = Some("/etc/ssl/cert.pem".into());
        cfg.tls.key = Some("/etc/ssl/private/key.pem".into());
        cfg.auth.passwd_file = Some("/etc/nestbox/users".into());
        let text = worker_config(&cfg);
        assert!(!text.contains("key.pem") && !text.contains("/etc/nestbox/users"));
        let m = ToWorker::Init {
            config: text.clone(),
        };
        let ToWorker::Init { config } = ToWorker::decode(&m.encode().unwrap()).unwrap() else {
            panic!("not init");
        };
        let parsed = crate::config::parse_from_front(&config).unwrap();
        assert_eq!(parsed.limits.max_connections, cfg.limits.max_connections);
    }
}
