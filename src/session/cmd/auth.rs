//! STARTTLS, LOGIN and AUTHENTICATE (PLAIN, LOGIN; SASL-IR).
//!
//! Plaintext passwords are refused unless the connection is TLS or, when
//! the operator allows it, loopback (SPEC §3). The login itself (delay,
//! check, protocol rules, logging, failure count) is `auth::login`, the
//! sequence POP3 runs too; a user refused IMAP gets the answer of a wrong
//! password. Decoding
//! the SASL messages and the rule for credential text (UTF-8, no NUL) are
//! `auth::sasl`'s; this file only runs the exchange and maps its errors:
//! a malformed message is `BAD`, a foreign authorization identity
//! `NO [AUTHORIZATIONFAILED]`.

use crate::proto::response::Code;
use std::time::Duration;

use crate::auth::sasl::{self, SaslError};
use crate::auth::{Attempt, Credential, LoginError, Protocol};
use crate::session::{CmdResult, Role, Session, Status};

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
        Some(Code::PrivacyRequired),
        "Plaintext authentication disallowed on non-secure connections.",
    )
}

pub async fn login(s: &mut Session, username: String, password: String) -> CmdResult {
    if !s.conn.plaintext_ok(&s.shared.config) {
        return Err(plaintext_refused());
    }
    let username = text(username.into_bytes(), "user name")?;
    let password = text(password.into_bytes(), "password")?;
    authenticate_user(s, &username, &password, "LOGIN").await
}

pub async fn authenticate(
    s: &mut Session,
    mechanism: String,
    initial: Option<Vec<u8>>,
) -> CmdResult {
    let mech = mechanism.to_ascii_uppercase();
    if !sasl::MECHANISMS.contains(&mech.as_str()) {
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
            None => challenge(s, "").await?,
        };
        let (user, pass) = sasl::plain_credentials(&data).map_err(|e| match e {
            SaslError::AuthzidMismatch => Status::no(
                Some(Code::AuthorizationFailed),
                "Authorization identity differs from authentication identity.",
            ),
            _ => Status::bad("Invalid PLAIN authentication data."),
        })?;
        authenticate_user(s, &user, &pass, "PLAIN").await
    } else {
        let user = match initial {
            Some(d) => d,
            None => challenge(s, sasl::LOGIN_USERNAME_CHALLENGE).await?,
        };
        let pass = challenge(s, sasl::LOGIN_PASSWORD_CHALLENGE).await?;
        let user = text(user, "user name")?;
        let pass = text(pass, "password")?;
        authenticate_user(s, &user, &pass, "LOGIN").await
    }
}

/// A user name or password as text ([`sasl::text_field`]: UTF-8 without NUL), or `BAD`.
fn text(bytes: Vec<u8>, what: &str) -> Result<String, Status> {
    sasl::text_field(bytes)
        .map_err(|_| Status::bad(format!("Invalid {what}: not UTF-8 or contains NUL.")))
}

/// Sends one `+ base64` challenge (already encoded) and reads the decoded answer.
async fn challenge(s: &mut Session, prompt: &str) -> Result<Vec<u8>, Status> {
    s.line(format!("+ {prompt}"));
    s.flush()
        .await
        .map_err(|_| Status::bad("Connection lost."))?;
    // Within the login deadline, whichever comes first.
    let line = match s.read_line(SASL_TIMEOUT.min(s.read_timeout())).await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(Status::bad("Authentication timed out.")),
        Err(_) => {
            return Err(Status::bad(
                "Authentication response too long or connection lost.",
            ));
        }
    };
    sasl::decode_response(&line).map_err(|e| match e {
        SaslError::Cancelled => Status::bad("Authentication cancelled."),
        _ => Status::bad("Invalid base64 in authentication response."),
    })
}

async fn authenticate_user(s: &mut Session, user: &str, pass: &str, mech: &str) -> CmdResult {
    let Role::Front { auth, failures } = &s.shared.role else {
        return Err(Status::bad("Already authenticated."));
    };
    let (auth, failures) = (auth.clone(), failures.clone());
    let attempt = Attempt {
        rip: s.conn.remote.ip(),
        user,
        credential: Credential::Password(pass),
        mech,
        proto: Protocol::Imap,
        session: s.conn.session_id.as_deref(),
    };
    match crate::auth::login(&auth, &failures, attempt).await {
        Ok(user) => {
            // The session continues in the worker of the user's uid, which opens
            // the store and answers this command (`Session::resume`).
            s.logged_in_user = Some(user);
            Ok(Status::ok("Logged in."))
        }
        Err(LoginError::Failed) => Err(Status::no(
            Some(Code::AuthenticationFailed),
            "Authentication failed.",
        )),
        // TooSoon is POP3's (pop3.login_delay) and never comes back for IMAP.
        Err(LoginError::Unavailable(_) | LoginError::TooSoon { .. }) => Err(Status::no(
            Some(Code::Unavailable),
            "Authentication service unavailable, try again later.",
        )),
    }
}
