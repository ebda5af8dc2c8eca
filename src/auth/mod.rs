//! STUB: interface only; the auth helper replaces this file.
use std::path::PathBuf;

/// An authenticated user and where their mail lives.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    /// The resolved Maildir root (`mail.maildir` with `~`, `%u`, `%n`, `%d` expanded).
    pub maildir: PathBuf,
    /// System uid/gid to run as (`None`: the daemon's own).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong user or password: `NO [AUTHENTICATIONFAILED]`.
    #[error("authentication failed")]
    Failed,
    /// The backend could not answer: `NO [UNAVAILABLE]`.
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

/// The configured user database.
pub struct Authenticator {}

impl Authenticator {
    pub fn from_config(_cfg: &crate::config::Config) -> Result<Self, AuthError> {
        unimplemented!()
    }
    /// Checks a password. Slow hashes run off the async runtime.
    pub async fn verify(&self, _user: &str, _password: &str) -> Result<User, AuthError> {
        unimplemented!()
    }
}

/// SASL helpers (RFC 4616 PLAIN; the LOGIN mechanism's two prompts).
pub mod sasl {
    /// Splits a PLAIN message `authzid NUL authcid NUL passwd`.
    pub fn decode_plain(_data: &[u8]) -> Option<(String, String, String)> {
        unimplemented!()
    }
}

/// STUB (auth helper provides the real one).
pub struct FailureTracker {}
impl FailureTracker {
    pub fn delay(&self, _ip: std::net::IpAddr) -> std::time::Duration {
        unimplemented!()
    }
    pub fn record_failure(&self, _ip: std::net::IpAddr) {}
    pub fn record_success(&self, _ip: std::net::IpAddr) {}
}
pub fn log_failure(_user: &str, _rip: std::net::IpAddr, _mech: &str) {}
pub fn log_success(_user: &str, _rip: std::net::IpAddr, _mech: &str) {}
impl FailureTracker {
    pub fn new(_n: u32) -> Self {
        FailureTracker {}
    }
}
