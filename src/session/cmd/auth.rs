//! STARTTLS, LOGIN and AUTHENTICATE (PLAIN, LOGIN; SASL-IR).
//!
//! Plaintext passwords are refused unless the connection is TLS or, when
//! the operator allows it, loopback (SPEC §3); failures are logged in the
//! fail2ban format by `auth` and slowed down per remote address.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::auth::{AuthError, sasl};
use crate::session::caps::capability_line;
use crate::session::{Authed, CmdResult, Session, State, Status, blocking};
use crate::store::{MailStore, StoreOptions};

/// How long a client may take to answer an AUTHENTICATE challenge.
const SASL_TIMEOUT: Duration = Duration::from_secs(60);

pub fn starttls(s: &mut Session) -> CmdResult {
    if s.conn.tls {
        return Err(Status::bad("TLS is already active."));
    }
    if s.shared.tls.is_none() {
        return Err(Status::no(None, "TLS is not configured."));
    }
    // Anything the client pipelined after STARTTLS arrived in plaintext and
    // must not be executed inside TLS (the STARTTLS command injection attack).
    if s.framer.buffered() > 0 {
        return Err(Status::bad("Data after STARTTLS; refusing to start TLS."));
    }
    s.pending_starttls = true;
    Ok(Status::ok("Begin TLS negotiation now."))
}

fn plaintext_refused() -> Status {
    Status::no(
        Some("PRIVACYREQUIRED"),
        "Plaintext authentication disallowed on non-secure connections.",
    )
}

pub async fn login(s: &mut Session, username: String, password: String) -> CmdResult {
    if !s.conn.plaintext_ok(&s.shared.config) {
        return Err(plaintext_refused());
    }
    authenticate_user(s, &username, &password, "LOGIN").await
}

pub async fn authenticate(
    s: &mut Session,
    mechanism: String,
    initial: Option<Vec<u8>>,
) -> CmdResult {
    let mech = mechanism.to_ascii_uppercase();
    if mech != "PLAIN" && mech != "LOGIN" {
        return Err(Status::no(
            None,
            format!("Unsupported authentication mechanism {mechanism}."),
        ));
    }
    if !s.conn.plaintext_ok(&s.shared.config) {
        return Err(plaintext_refused());
    }
    if mech == "PLAIN" {
        let data = match initial {
            Some(d) => d,
            None => challenge(s, b"").await?,
        };
        let Some((authz, authc, pass)) = sasl::decode_plain(&data) else {
            return Err(Status::bad("Invalid PLAIN authentication data."));
        };
        if !authz.is_empty() && authz != authc {
            return Err(Status::no(
                Some("AUTHORIZATIONFAILED"),
                "Authorization identity differs from authentication identity.",
            ));
        }
        authenticate_user(s, &authc, &pass, "PLAIN").await
    } else {
        let user = match initial {
            Some(d) => d,
            None => challenge(s, b"Username:").await?,
        };
        let pass = challenge(s, b"Password:").await?;
        let user =
            String::from_utf8(user).map_err(|_| Status::bad("Invalid user name encoding."))?;
        let pass =
            String::from_utf8(pass).map_err(|_| Status::bad("Invalid password encoding."))?;
        authenticate_user(s, &user, &pass, "LOGIN").await
    }
}

/// Sends one `+ base64` challenge and reads the decoded answer.
async fn challenge(s: &mut Session, prompt: &[u8]) -> Result<Vec<u8>, Status> {
    s.line(format!("+ {}", B64.encode(prompt)));
    s.flush()
        .await
        .map_err(|_| Status::bad("Connection lost."))?;
    let line = match s.read_line(SASL_TIMEOUT).await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(Status::bad("Authentication timed out.")),
        Err(_) => {
            return Err(Status::bad(
                "Authentication response too long or connection lost.",
            ));
        }
    };
    let text = String::from_utf8_lossy(&line);
    let text = text.trim_end();
    if text == "*" {
        return Err(Status::bad("Authentication cancelled."));
    }
    B64.decode(text.as_bytes())
        .map_err(|_| Status::bad("Invalid base64 in authentication response."))
}

async fn authenticate_user(s: &mut Session, user: &str, pass: &str, mech: &str) -> CmdResult {
    let rip = s.conn.remote.ip();
    let delay = s.shared.failures.delay(rip);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let user = match s.shared.auth.verify(user, pass).await {
        Ok(u) => u,
        Err(AuthError::Failed) => {
            crate::auth::log_failure(user, rip, mech);
            s.shared.failures.record_failure(rip);
            return Err(Status::no(
                Some("AUTHENTICATIONFAILED"),
                "Authentication failed.",
            ));
        }
        Err(AuthError::Unavailable(why)) => {
            tracing::error!("authentication backend unavailable: {why}");
            return Err(Status::no(
                Some("UNAVAILABLE"),
                "Authentication service unavailable, try again later.",
            ));
        }
    };
    let root = user.maildir.clone();
    let registry = s.shared.registry.clone();
    let store = blocking(move || MailStore::open(root, registry, StoreOptions::default())).await?;
    let store = match store {
        Ok(st) => Arc::new(st),
        Err(e) => {
            tracing::error!(user = %user.name, "cannot open mail store {}: {e}", user.maildir.display());
            return Err(Status::no(Some("UNAVAILABLE"), "Mail store unavailable."));
        }
    };
    crate::auth::log_success(&user.name, rip, mech);
    s.shared.failures.record_success(rip);
    s.state = State::Authenticated(Authed { user, store });
    let caps = capability_line(s);
    Ok(Status::ok_code(format!("CAPABILITY {caps}"), "Logged in."))
}
