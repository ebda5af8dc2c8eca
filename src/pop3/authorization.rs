//! The AUTHORIZATION state (RFC 1939 §4), run in the front: the greeting,
//! CAPA, STLS (RFC 2595), USER/PASS, APOP (RFC 1939 §7) and AUTH (RFC
//! 5034: PLAIN and LOGIN, with or without an initial response), QUIT.
//!
//! The rules are IMAP's (`session::cmd::auth`): plaintext credentials
//! only over TLS or, when the operator allows it, from loopback; every
//! check goes through the one login sequence in `auth` (failure delay,
//! logging in fail2ban's format, the per-user protocol choice, answered
//! like a wrong password); a login that succeeds ends this state, and the
//! user's worker answers it once the maildrop is open. LOGIN-DELAY (RFC
//! 2449 §6.8), when configured, refuses a login that comes too soon after
//! the user's last one, with `-ERR [LOGIN-DELAY]`.

use std::time::Duration;

use super::command::{self, Command, ParseError};
use super::lines::Line;
use super::reply::RespCode;
use super::session::{Input, Pop3};
use crate::auth::sasl::{self, SaslError};
use crate::auth::{Attempt, Credential, LoginError, Protocol, User};
use crate::session::Role;

/// How long a client may take to answer an AUTH challenge.
const SASL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one command in AUTHORIZATION led to.
enum Next {
    Stay,
    LoggedIn(User),
    /// QUIT, or a fault that ends the connection.
    Close,
    /// STLS accepted: start TLS, then stay.
    StartTls,
}

impl Pop3 {
    /// Greets, then serves AUTHORIZATION until a login succeeds (the user)
    /// or the connection ends (`None`, the reply to QUIT written).
    pub(super) async fn authorization(&mut self) -> Option<User> {
        self.greet();
        let mut user_arg: Option<String> = None;
        loop {
            while let Some(line) = self.lines.next_line() {
                let next = match line {
                    Line::TooLong => {
                        self.err(None, "Line too long.");
                        Next::Stay
                    }
                    Line::Complete(l) => self.authorization_command(&l, &mut user_arg).await,
                };
                match next {
                    Next::Stay => {}
                    Next::LoggedIn(u) => {
                        // Replies to commands pipelined before the login
                        // (USER's +OK) go out now: the worker answers the
                        // login itself, after them.
                        if self.flush().await.is_err() {
                            return None;
                        }
                        return Some(u);
                    }
                    Next::Close => return None,
                    Next::StartTls => {
                        if self.flush().await.is_err() || !self.start_tls().await {
                            return None;
                        }
                        // RFC 2595 §4: what was said before TLS is forgotten.
                        user_arg = None;
                    }
                }
            }
            if self.flush().await.is_err() {
                return None;
            }
            let left = self
                .login_deadline
                .saturating_duration_since(tokio::time::Instant::now());
            match self.read_more(left).await {
                Input::Data => {}
                Input::Eof => return None,
                Input::Timeout => {
                    tracing::info!(
                        rip = %self.conn.remote.ip(),
                        "no login within limits.login_timeout ({:?}); disconnecting",
                        self.shared.config.limits.login_timeout
                    );
                    self.err(None, "Disconnected: login took too long.");
                    return None;
                }
                Input::Shutdown => {
                    self.err(Some(RespCode::SysTemp), "Server shutting down.");
                    return None;
                }
            }
        }
    }

    fn greet(&mut self) {
        let host = self.shared.config.hostname.clone();
        if self.apop_offered() {
            let ts = format!(
                "<{}.{:x}.{:x}@{host}>",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
                rand::random::<u64>()
            );
            self.ok(&format!("{host} nestbox ready. {ts}"));
            self.apop_timestamp = Some(ts);
        } else {
            self.ok(&format!("{host} nestbox ready."));
        }
    }

    fn apop_offered(&self) -> bool {
        match &self.shared.role {
            Role::Front { auth, .. } => auth.apop_available(),
            Role::Worker { .. } => false,
        }
    }

    async fn authorization_command(&mut self, line: &[u8], user_arg: &mut Option<String>) -> Next {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(ParseError::Unknown) => {
                self.err(None, "Unknown command.");
                return Next::Stay;
            }
            Err(ParseError::Syntax(t)) => {
                self.err(None, t);
                return Next::Stay;
            }
        };
        // USER is only followed by PASS (RFC 1939 §7).
        let pending_user = match &cmd {
            Command::Pass(_) => user_arg.take(),
            _ => {
                *user_arg = None;
                None
            }
        };
        match cmd {
            Command::Capa => {
                let delay = crate::pop3::server_login_delay(&self.shared.config);
                self.capa(false, delay);
                Next::Stay
            }
            Command::Noop => {
                // Not in RFC 1939's AUTHORIZATION; harmless, and some
                // clients probe with it.
                self.ok("");
                Next::Stay
            }
            Command::Quit => {
                self.ok("Logging out.");
                Next::Close
            }
            Command::Stls => self.stls(),
            Command::User(name) => {
                if !self.conn.plaintext_ok(&self.shared.config) {
                    self.plaintext_refused();
                    return Next::Stay;
                }
                *user_arg = Some(name);
                self.ok("");
                Next::Stay
            }
            Command::Pass(pass) => {
                let Some(name) = pending_user else {
                    self.err(None, "No user name given: USER first.");
                    return Next::Stay;
                };
                if !self.conn.plaintext_ok(&self.shared.config) {
                    self.plaintext_refused();
                    return Next::Stay;
                }
                self.login(&name, Credential::Password(&pass), "USER").await
            }
            Command::Apop { name, digest } => match self.apop_timestamp.clone() {
                Some(ts) => {
                    self.login(
                        &name,
                        Credential::Apop {
                            timestamp: &ts,
                            digest: &digest,
                        },
                        "APOP",
                    )
                    .await
                }
                None => {
                    self.err(None, "APOP is not offered.");
                    Next::Stay
                }
            },
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial).await,
            Command::Stat
            | Command::List(_)
            | Command::Retr(_)
            | Command::Dele(_)
            | Command::Rset
            | Command::Top(..)
            | Command::Uidl(_) => {
                self.err(None, "Not logged in.");
                Next::Stay
            }
        }
    }

    fn plaintext_refused(&mut self) {
        self.err(
            Some(RespCode::Auth),
            "Plaintext authentication disallowed on non-secure connections.",
        );
    }

    fn stls(&mut self) -> Next {
        if self.conn.tls {
            self.err(None, "TLS is already active.");
            return Next::Stay;
        }
        if self.shared.tls.is_none() {
            self.err(None, "TLS is not configured.");
            return Next::Stay;
        }
        // Bytes pipelined after STLS arrived in plaintext: they must not
        // run inside TLS (the STARTTLS command injection attack).
        if self.lines.buffered() > 0 {
            self.err(None, "Data after STLS; refusing to start TLS.");
            return Next::Stay;
        }
        self.ok("Begin TLS negotiation now.");
        Next::StartTls
    }

    /// Replaces the stream with TLS over it; false if the handshake failed.
    async fn start_tls(&mut self) -> bool {
        let tls = self.shared.tls.clone();
        match crate::session::upgrade_in_place(tls, &mut self.io, &mut self.conn).await {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(rip = %self.conn.remote.ip(), "STLS handshake failed: {e}");
                false
            }
        }
    }

    async fn auth(&mut self, mechanism: Option<String>, initial: Option<String>) -> Next {
        let Some(mechanism) = mechanism else {
            // The list form (draft-myers-sasl-pop3, before RFC 5034).
            self.ok("");
            for m in sasl::MECHANISMS {
                super::reply::line(&mut self.out, m);
            }
            super::reply::end(&mut self.out);
            return Next::Stay;
        };
        let mech = mechanism.to_ascii_uppercase();
        if !sasl::MECHANISMS.contains(&mech.as_str()) {
            self.err(None, "Unsupported authentication mechanism.");
            return Next::Stay;
        }
        if !self.conn.plaintext_ok(&self.shared.config) {
            self.plaintext_refused();
            return Next::Stay;
        }
        // RFC 5034 §4: `=` is an empty initial response.
        let initial = match initial.as_deref() {
            None => None,
            Some("=") => Some(Vec::new()),
            Some(b64) => match sasl::decode_response(b64.as_bytes()) {
                Ok(d) => Some(d),
                Err(_) => {
                    self.err(None, "Invalid base64 in the initial response.");
                    return Next::Stay;
                }
            },
        };
        let creds = if mech == "PLAIN" {
            let data = match initial {
                Some(d) => Ok(d),
                None => self.challenge("").await,
            };
            data.and_then(|d| {
                sasl::plain_credentials(&d).map_err(|e| match e {
                    SaslError::AuthzidMismatch => {
                        "Authorization identity differs from authentication identity."
                    }
                    _ => "Invalid PLAIN authentication data.",
                })
            })
        } else {
            let user = match initial {
                Some(d) => Ok(d),
                None => self.challenge(sasl::LOGIN_USERNAME_CHALLENGE).await,
            };
            match user {
                Ok(u) => match self.challenge(sasl::LOGIN_PASSWORD_CHALLENGE).await {
                    Ok(p) => match (sasl::text_field(u), sasl::text_field(p)) {
                        (Ok(u), Ok(p)) => Ok((u, p)),
                        _ => Err("Invalid user name or password: not UTF-8 or contains NUL."),
                    },
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        };
        match creds {
            Ok((user, pass)) => self.login(&user, Credential::Password(&pass), &mech).await,
            Err(text) => {
                // RFC 5034 §4: a cancelled or malformed exchange is `-ERR`.
                self.err(None, text);
                Next::Stay
            }
        }
    }

    /// Sends `+ prompt` and reads the decoded answer.
    async fn challenge(&mut self, prompt: &str) -> Result<Vec<u8>, &'static str> {
        self.out.extend_from_slice(b"+ ");
        self.out.extend_from_slice(prompt.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        if self.flush().await.is_err() {
            return Err("Connection lost.");
        }
        let left = self
            .login_deadline
            .saturating_duration_since(tokio::time::Instant::now());
        let Some(line) = self.read_line(SASL_TIMEOUT.min(left)).await else {
            return Err("Authentication timed out or response too long.");
        };
        sasl::decode_response(&line).map_err(|e| match e {
            SaslError::Cancelled => "Authentication cancelled.",
            _ => "Invalid base64 in authentication response.",
        })
    }

    /// The one login sequence (`auth::login`: delay, check, protocol rules,
    /// LOGIN-DELAY, logging).
    async fn login(&mut self, name: &str, credential: Credential<'_>, mech: &str) -> Next {
        let Role::Front { auth, failures } = &self.shared.role else {
            self.err(None, "Already logged in.");
            return Next::Stay;
        };
        let (auth, failures) = (auth.clone(), failures.clone());
        let attempt = Attempt {
            rip: self.conn.remote.ip(),
            user: name,
            credential,
            mech,
            proto: Protocol::Pop3,
            session: self.conn.session_id.as_deref(),
        };
        match crate::auth::login(&auth, &failures, attempt).await {
            Ok(user) => {
                // No longer one of `limits.max_unauthenticated`.
                self.preauth = None;
                Next::LoggedIn(user)
            }
            Err(LoginError::Failed) => {
                self.err(Some(RespCode::Auth), "Authentication failed.");
                Next::Stay
            }
            Err(LoginError::TooSoon { wait }) => {
                let every = auth.rules().pop3().login_delay.as_secs();
                self.err(
                    Some(RespCode::LoginDelay),
                    &format!(
                        "Logins are allowed every {every} seconds; try again in {} seconds.",
                        wait.as_secs().max(1)
                    ),
                );
                Next::Stay
            }
            Err(LoginError::Unavailable(_)) => {
                self.err(
                    Some(RespCode::SysTemp),
                    "Authentication service unavailable, try again later.",
                );
                Next::Stay
            }
        }
    }
}
