//! TEMPORARY: stand-ins for what the config/auth and store branches of
//! issue 17 add (`crate::auth::{Protocol, Pop3Policy, DeleAction, login}`;
//! the store's `Folder::{pop3_uidls, remove}` are merged), so the POP3
//! session builds before they are merged. Removed at the merge.
#![allow(dead_code)]

use std::net::IpAddr;

use crate::auth::{AuthError, Authenticator, FailureTracker, User};
use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Imap,
    Pop3,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pop3Policy {
    pub dele: DeleAction,
    pub retr_seen: bool,
    pub login_delay_secs: u64,
}

impl Default for Pop3Policy {
    fn default() -> Self {
        Pop3Policy {
            dele: DeleAction::Expunge,
            retr_seen: true,
            login_delay_secs: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DeleAction {
    Expunge,
    Flag,
    Move(String),
}

pub fn pop3_policy(_cfg: &Config, _user: &User) -> Pop3Policy {
    Pop3Policy::default()
}

#[derive(Debug)]
pub enum LoginError {
    Failed,
    Unavailable(String),
}

#[allow(clippy::too_many_arguments)]
pub async fn login(
    auth: &Authenticator,
    failures: &FailureTracker,
    _cfg: &Config,
    rip: IpAddr,
    user: &str,
    pass: &str,
    mech: &str,
    _proto: Protocol,
) -> Result<User, LoginError> {
    let delay = failures.delay(rip);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match auth.verify(user, pass).await {
        Ok(u) => {
            crate::auth::log_success(&u.name, rip, mech);
            failures.record_success(rip);
            Ok(u)
        }
        Err(AuthError::Failed) => {
            crate::auth::log_failure(user, rip, mech);
            failures.record_failure(rip);
            Err(LoginError::Failed)
        }
        Err(AuthError::Unavailable(w)) => Err(LoginError::Unavailable(w)),
    }
}
