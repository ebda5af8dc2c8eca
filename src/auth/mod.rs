//! Authentication: who may log in, with which password, and where their mail is
//! (SPEC §4).
//!
//! The [`Authenticator`] wraps the configured backend (a Dovecot-style passwd-file, or PAM)
//! and turns a successful check into a [`User`] with the resolved Maildir. Password hashing
//! is deliberately slow, so every check runs on tokio's blocking pool, never on the async
//! runtime. An unknown user costs about as much time as a wrong password (a hash of the
//! same kind is verified anyway), so timing does not reveal which user names exist.
//!
//! Submodules: `hash` (schemes), `passwd_file` (the file and its reloading), `sasl` (PLAIN
//! and LOGIN wire helpers), and the failure log/tracker re-exported here. This module never
//! logs a password or hash, and never decides protocol responses (the session maps
//! [`AuthError`] to `NO [AUTHENTICATIONFAILED]` / `NO [UNAVAILABLE]`).
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

mod failures;
pub mod hash;
mod pam;
pub mod passwd_file;
pub mod sasl;
pub(crate) mod sysdb;

pub use failures::{FailureTracker, log_failure, log_success, sanitize};

use hash::StoredHash;
use passwd_file::PasswdFile;

/// An authenticated user and where their mail lives.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    /// The resolved Maildir root (`mail.maildir` with `~`, `%u`, `%n`, `%d` expanded).
    pub maildir: PathBuf,
    /// System uid/gid from the passwd-file or PAM (`None`: none given); the
    /// user's worker process runs as them (`server::identity`).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Supplementary groups, primary first (PAM users: from the group
    /// database; passwd-file users: none).
    pub groups: Vec<u32>,
}

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong user or password: `NO [AUTHENTICATIONFAILED]`.
    #[error("authentication failed")]
    Failed,
    /// The backend could not answer: `NO [UNAVAILABLE]`.
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

/// Longest user name or password accepted; anything longer fails without a lookup.
const MAX_CREDENTIAL_LEN: usize = 1024;

/// The configured user database.
pub struct Authenticator {
    backend: Backend,
    maildir_template: String,
    /// Password checks running at once. An Argon2id check (the default
    /// scheme) takes ~19 MiB for its duration, and anyone can ask for one
    /// before logging in; so they queue, as many at a time as there are
    /// CPUs (more would not finish sooner), instead of filling the blocking
    /// pool's 64 threads with 1.2 GB of hashing.
    checks: tokio::sync::Semaphore,
}

enum Backend {
    PasswdFile(Arc<PasswdFile>),
    Pam(Arc<pam::Pam>),
}

impl Authenticator {
    /// Opens the backend named by `auth.backend`. Errors here are startup errors: the
    /// passwd-file is missing or unreadable, or PAM is unavailable.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self, AuthError> {
        let backend = match cfg.auth.backend.as_str() {
            "passwd-file" => {
                let path =
                    cfg.auth.passwd_file.as_deref().ok_or_else(|| {
                        AuthError::Unavailable("auth.passwd_file is not set".into())
                    })?;
                let pf = PasswdFile::open(path)
                    .map_err(|e| AuthError::Unavailable(format!("{}: {e}", path.display())))?;
                Backend::PasswdFile(Arc::new(pf))
            }
            "pam" => Backend::Pam(Arc::new(pam::Pam::new(&cfg.auth.pam_service)?)),
            other => {
                return Err(AuthError::Unavailable(format!(
                    "unknown auth backend {other:?}"
                )));
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Authenticator {
            backend,
            maildir_template: cfg.mail.maildir.clone(),
            checks: tokio::sync::Semaphore::new(cpus),
        })
    }

    /// Checks a password. Slow hashes run off the async runtime.
    pub async fn verify(&self, user: &str, password: &str) -> Result<User, AuthError> {
        if user.is_empty()
            || user.len() > MAX_CREDENTIAL_LEN
            || password.len() > MAX_CREDENTIAL_LEN
            || user.chars().any(|c| c.is_control() || c == ':')
            || password.contains('\0')
        {
            // Not a name any backend can hold, or a password that some hashes would cut or
            // repeat at the NUL (the protocols refuse it before: `sasl::text_field`); failing
            // fast reveals nothing about who exists.
            return Err(AuthError::Failed);
        }
        let _turn = self
            .checks
            .acquire()
            .await
            .map_err(|_| AuthError::Unavailable("password checks closed".into()))?;
        let user = user.to_string();
        let password = password.to_string();
        let template = self.maildir_template.clone();
        match &self.backend {
            Backend::PasswdFile(pf) => {
                let pf = pf.clone();
                blocking(move || verify_passwd_file(&pf, &user, &password, &template)).await
            }
            Backend::Pam(p) => {
                let p = p.clone();
                blocking(move || p.verify(&user, &password, &template)).await
            }
        }
    }
}

async fn blocking<F>(f: F) -> Result<User, AuthError>
where
    F: FnOnce() -> Result<User, AuthError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(AuthError::Unavailable(format!(
            "authentication task failed: {e}"
        )))
    })
}

fn verify_passwd_file(
    pf: &PasswdFile,
    user: &str,
    password: &str,
    template: &str,
) -> Result<User, AuthError> {
    // Dovecot's default `auth_username_format = %Lu` lowercases; try the exact name first
    // so a file with mixed-case names keeps working.
    let entry = pf.lookup(user).or_else(|| {
        let lower = user.to_lowercase();
        (lower != user).then(|| pf.lookup(&lower)).flatten()
    });
    let Some(entry) = entry else {
        // Spend the time a real check would take, against a hash of the same kind.
        if let Some(dummy) = pf.representative().or_else(|| fallback_dummy().cloned()) {
            std::hint::black_box(dummy.verify(password));
        }
        return Err(AuthError::Failed);
    };
    if !entry.password.verify(password) {
        return Err(AuthError::Failed);
    }
    let home = entry.home.as_deref();
    Ok(User {
        maildir: resolve_maildir(template, &entry.user, home)?,
        name: entry.user.clone(),
        uid: entry.uid,
        gid: entry.gid,
        groups: Vec::new(),
    })
}

/// Expands the Maildir template; `~` needs a home directory.
fn resolve_maildir(template: &str, user: &str, home: Option<&Path>) -> Result<PathBuf, AuthError> {
    if template.starts_with('~') && home.is_none() {
        tracing::error!(
            "user {}: mail.maildir starts with ~ but the user has no home directory",
            sanitize(user)
        );
        return Err(AuthError::Unavailable("user has no home directory".into()));
    }
    Ok(crate::config::expand_maildir(
        template,
        user,
        home.unwrap_or(Path::new("")),
    ))
}

/// An Argon2id hash of a random string, for timing parity when the file has no users.
fn fallback_dummy() -> Option<&'static StoredHash> {
    static DUMMY: OnceLock<Option<StoredHash>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            use rand::Rng;
            let random: String = rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            let field = hash::hash_password(&random, hash::Scheme::Argon2id).ok()?;
            StoredHash::parse(&field).ok()
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn authenticator(dir: &Path, users: &str) -> Authenticator {
        let p = dir.join("users");
        std::fs::write(&p, users).unwrap();
        let cfg = parse_str(&format!(
            "[imap]\nlisten=[\"127.0.0.1:1\"]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n\
             [auth]\nbackend=\"passwd-file\"\npasswd_file={p:?}\n[mail]\nmaildir=\"~/Mail/%d/%n\"\n"
        ))
        .unwrap();
        Authenticator::from_config(&cfg).unwrap()
    }

    #[tokio::test]
    async fn passwd_file_backend() {
        let dir = tempfile::tempdir().unwrap();
        let a = authenticator(
            dir.path(),
            "ann@example.org:{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA:5000:5000::/home/ann::\n\
             Bob:{PLAIN}pw::::/home/bob\n\
             nohome:{PLAIN}pw\n",
        );
        let u = a.verify("ann@example.org", "secret").await.unwrap();
        assert_eq!(u.name, "ann@example.org");
        assert_eq!(u.maildir, PathBuf::from("/home/ann/Mail/example.org/ann"));
        assert_eq!((u.uid, u.gid), (Some(5000), Some(5000)));
        assert!(matches!(
            a.verify("ann@example.org", "Secret").await,
            Err(AuthError::Failed)
        ));
        assert!(matches!(
            a.verify("nobody", "secret").await,
            Err(AuthError::Failed)
        ));
        assert!(matches!(a.verify("", "").await, Err(AuthError::Failed)));
        assert!(matches!(
            a.verify("ann\n", "secret").await,
            Err(AuthError::Failed)
        ));
        let b = a.verify("Bob", "pw").await.unwrap();
        assert_eq!(b.uid, None);
        assert_eq!(b.maildir, PathBuf::from("/home/bob/Mail//Bob"));
        // `~` without a home directory is a server-side problem, not a wrong password.
        assert!(matches!(
            a.verify("nohome", "pw").await,
            Err(AuthError::Unavailable(_))
        ));
    }

    /// bcrypt repeats the password with its terminating NUL over 72 bytes, so `pw\0pw` is
    /// the same key as `pw`: a password with a NUL must fail before any hash sees it.
    #[tokio::test]
    async fn nul_in_password_fails() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = authenticator(dir.path(), &format!("ann:{{BLF-CRYPT}}{hash}::::/h\n"));
        assert!(StoredHash::parse(&hash).unwrap().verify("pw\0pw"));
        a.verify("ann", "pw").await.unwrap();
        for bad in ["pw\0pw", "pw\0", "\0pw"] {
            assert!(
                matches!(a.verify("ann", bad).await, Err(AuthError::Failed)),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn lowercase_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let a = authenticator(dir.path(), "ann:{PLAIN}pw::::/h\n");
        assert_eq!(a.verify("ANN", "pw").await.unwrap().name, "ann");
    }

    #[tokio::test]
    async fn unknown_user_costs_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let a = authenticator(
            dir.path(),
            "ann:{SHA512-CRYPT}$6$rounds=200000$saltsalt$x::::/h\n",
        );
        // The representative hash is ann's, with 200000 rounds: an unknown user must take
        // a comparable time (well above what a lookup alone costs).
        let t = std::time::Instant::now();
        assert!(a.verify("nobody", "pw").await.is_err());
        let unknown = t.elapsed();
        let t = std::time::Instant::now();
        assert!(a.verify("ann", "pw").await.is_err());
        let known = t.elapsed();
        assert!(
            unknown * 3 > known,
            "unknown {unknown:?} vs known {known:?}"
        );
    }

    #[test]
    fn shareable_between_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Authenticator>();
        assert_send_sync::<FailureTracker>();
    }

    #[test]
    fn missing_passwd_file_is_unavailable() {
        let cfg = parse_str(
            "[imap]\nlisten=[\"127.0.0.1:1\"]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n\
             [auth]\nbackend=\"passwd-file\"\npasswd_file=\"/nonexistent/users\"\n",
        )
        .unwrap();
        assert!(matches!(
            Authenticator::from_config(&cfg),
            Err(AuthError::Unavailable(_))
        ));
    }
}
