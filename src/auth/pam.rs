//! The PAM backend (SPEC §4): system users checked through `/etc/pam.d/<pam_service>`, their
//! uid, gid and home from the system user database.
//!
//! Built only with the cargo feature `nonstick` (SPEC §7 names the `nonstick` binding: no
//! bindgen/libclang, no unsound `users` crate). Linking needs `libpam0g-dev`; without the
//! feature, `backend = "pam"` fails at startup with a clear message instead of the crate
//! failing to build on machines without PAM headers.
//!
//! Every PAM call blocks (modules may sleep after a failure, talk to LDAP, ...), so the
//! caller runs [`Pam::verify`] on tokio's blocking pool. One PAM transaction per attempt,
//! ended before returning; nothing is cached. Note that as a non-root daemon `pam_unix`
//! can only check the daemon user's own password (via `unix_chkpwd`), which is why the
//! packaged service runs as root. The uid, gid and groups resolved here are what the user's
//! worker process runs as (`server::identity`).
use super::{AuthError, User};

/// A handle on the configured PAM service.
pub(super) struct Pam {
    #[cfg_attr(not(feature = "nonstick"), allow(dead_code))]
    service: String,
}

#[cfg(not(feature = "nonstick"))]
impl Pam {
    pub(super) fn new(_service: &str) -> Result<Pam, AuthError> {
        Err(AuthError::Unavailable(
            "PAM backend not built: rebuild with `--features nonstick` (needs libpam0g-dev), or use backend = \"passwd-file\""
                .into(),
        ))
    }

    pub(super) fn verify(
        &self,
        _user: &str,
        _password: &str,
        _template: &str,
    ) -> Result<User, AuthError> {
        Err(AuthError::Unavailable("PAM backend not built".into()))
    }
}

#[cfg(feature = "nonstick")]
impl Pam {
    pub(super) fn new(service: &str) -> Result<Pam, AuthError> {
        if service.is_empty() || service.contains(['\0', '/']) {
            return Err(AuthError::Unavailable(format!(
                "invalid PAM service name {service:?}"
            )));
        }
        Ok(Pam {
            service: service.to_string(),
        })
    }

    /// Authenticates and checks the account (expired, locked), then resolves the user's
    /// uid, gid and home. Blocking.
    pub(super) fn verify(
        &self,
        user: &str,
        password: &str,
        template: &str,
    ) -> Result<User, AuthError> {
        use nonstick::{
            AuthnFlags, ConversationAdapter, ErrorCode, Transaction, TransactionBuilder,
        };

        // Callers have already refused NUL and control characters in `user`; nonstick
        // would panic on an interior NUL, so make that impossible here too.
        if user.contains('\0') || password.contains('\0') {
            return Err(AuthError::Failed);
        }
        let conv = Answers {
            user: user.to_string(),
            password: password.to_string(),
        };
        let classify = |e: ErrorCode| -> AuthError {
            match e {
                ErrorCode::AuthenticationError
                | ErrorCode::UserUnknown
                | ErrorCode::MaxTries
                | ErrorCode::PermissionDenied
                | ErrorCode::AccountExpired
                | ErrorCode::NewAuthTokRequired
                | ErrorCode::AuthTokExpired
                | ErrorCode::CredentialsInsufficient => AuthError::Failed,
                other => {
                    tracing::error!("PAM service {:?}: {other}", self.service);
                    AuthError::Unavailable(format!("PAM: {other}"))
                }
            }
        };
        let mut txn = TransactionBuilder::new_with_service(&self.service)
            .username(user)
            .build(conv.into_conversation())
            .map_err(classify)?;
        txn.authenticate(AuthnFlags::DISALLOW_NULL_AUTHTOK)
            .map_err(classify)?;
        txn.account_management(AuthnFlags::DISALLOW_NULL_AUTHTOK)
            .map_err(classify)?;
        drop(txn);

        let pw = super::sysdb::passwd_entry(user)?.ok_or_else(|| {
            // PAM said yes but there is no passwd entry (e.g. a PAM-only virtual user):
            // we cannot know where the mail lives.
            AuthError::Unavailable("user authenticated by PAM has no passwd entry".into())
        })?;
        Ok(User {
            maildir: super::resolve_maildir(template, user, Some(&pw.home))?,
            name: user.to_string(),
            uid: Some(pw.uid),
            gid: Some(pw.gid),
            groups: super::sysdb::group_list(user, pw.gid)?,
        })
    }
}

/// Answers PAM's prompts: a visible prompt is for the user name, a masked one for the
/// password. Messages from modules go to the log, never to the client.
#[cfg(feature = "nonstick")]
struct Answers {
    user: String,
    password: String,
}

#[cfg(feature = "nonstick")]
impl nonstick::ConversationAdapter for Answers {
    fn prompt(
        &self,
        _request: impl AsRef<std::ffi::OsStr>,
    ) -> nonstick::Result<std::ffi::OsString> {
        Ok(self.user.clone().into())
    }

    fn masked_prompt(
        &self,
        _request: impl AsRef<std::ffi::OsStr>,
    ) -> nonstick::Result<std::ffi::OsString> {
        Ok(self.password.clone().into())
    }

    fn error_msg(&self, message: impl AsRef<std::ffi::OsStr>) {
        tracing::info!("PAM: {}", message.as_ref().to_string_lossy());
    }

    fn info_msg(&self, message: impl AsRef<std::ffi::OsStr>) {
        tracing::debug!("PAM: {}", message.as_ref().to_string_lossy());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sysdb::passwd_entry;

    #[test]
    fn passwd_lookup() {
        let root = passwd_entry("root").unwrap().unwrap();
        assert_eq!(root.uid, 0);
        assert!(root.home.is_absolute());
        assert!(passwd_entry("no-such-user-nestbox-test").unwrap().is_none());
        assert!(passwd_entry("a\0b").is_err());
    }

    #[cfg(not(feature = "nonstick"))]
    #[test]
    fn unavailable_without_feature() {
        assert!(matches!(
            Pam::new("nestbox"),
            Err(AuthError::Unavailable(_))
        ));
    }

    #[cfg(feature = "nonstick")]
    #[test]
    fn unknown_user_fails() {
        // `login`-style services exist on every Debian system; an unknown user with any
        // password must be a plain failure, not "unavailable".
        let p = Pam::new("login").unwrap();
        assert!(matches!(
            p.verify("no-such-user-nestbox-test", "x", "~/Maildir"),
            Err(AuthError::Failed)
        ));
        assert!(Pam::new("a/b").is_err());
    }

    /// Needs a real account: `NESTBOX_PAM_USER=u NESTBOX_PAM_PASSWORD=p cargo test
    /// --features nonstick -- --ignored pam_real_user` (as root, or as that user).
    #[cfg(feature = "nonstick")]
    #[test]
    #[ignore]
    fn pam_real_user() {
        let user = std::env::var("NESTBOX_PAM_USER").unwrap();
        let pass = std::env::var("NESTBOX_PAM_PASSWORD").unwrap();
        let p = Pam::new("login").unwrap();
        let u = p.verify(&user, &pass, "~/Maildir").unwrap();
        let pw = passwd_entry(&user).unwrap().unwrap();
        assert_eq!(u.uid, Some(pw.uid));
        assert_eq!(u.maildir, pw.home.join("Maildir"));
        assert!(matches!(
            p.verify(&user, &format!("{pass}x"), "~/Maildir"),
            Err(AuthError::Failed)
        ));
    }
}
