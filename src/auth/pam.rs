//! PAM backend placeholder.
use super::{AuthError, User};

pub(super) struct Pam;

impl Pam {
    pub(super) fn new(_service: &str) -> Result<Pam, AuthError> {
        Err(AuthError::Unavailable("PAM backend not built yet".into()))
    }
    pub(super) fn verify(
        &self,
        _user: &str,
        _password: &str,
        _template: &str,
    ) -> Result<User, AuthError> {
        Err(AuthError::Unavailable("PAM backend not built yet".into()))
    }
}
