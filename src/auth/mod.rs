//! Authentication: who may log in, with which password, and where their mail is
//! (SPEC §4).
//!
//! The [`Authenticator`] wraps the configured backend (a Dovecot-style passwd-file, or PAM)
//! and turns a successful check into a [`User`] with the resolved Maildir. Password hashing
//! is deliberately slow, so every check runs on tokio's blocking pool, never on the async
//! runtime. An unknown user costs about as much time as a wrong password (a hash of the
//! same kind is verified anyway), so timing does not reveal which user names exist.
//!
//! Submodules: `hash` (schemes, APOP's digest), `passwd_file` (the file and its
//! reloading), `sasl` (PLAIN and LOGIN wire helpers), `access` (which protocols a user may
//! use, what POP3 does for them), `login` (the sequence IMAP and POP3 logins both run:
//! delay, check, protocol rules, log, failure count), `directory` (users looked up by
//! operator commands, without a password), and the failure log/tracker re-exported here.
//! This module never logs a password or hash, and never decides protocol responses (the
//! sessions map [`LoginError`] to theirs).
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub mod access;
mod directory;
mod failures;
pub mod hash;
mod login;
mod pam;
pub mod passwd_file;
pub mod sasl;
pub(crate) mod sysdb;

pub use access::{DeleAction, Pop3Policy, Protocol, QuotaLimits, Rules, UserSettings};
pub use directory::Listed;
pub use failures::{FailureTracker, log_failure, log_refused, log_success, sanitize};
pub use login::{Attempt, Credential, LoginError, login};

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
    /// The protocol rules and POP3 settings of the same configuration.
    rules: Rules,
    /// `pop3.apop`.
    apop: bool,
    failure_time: login::FailureTime,
    last_pop3_logins: login::LastLogins,
}

enum Backend {
    PasswdFile(Arc<PasswdFile>),
    Pam(Arc<pam::Pam>),
}

impl Authenticator {
    /// Opens the backend named by `auth.backend` and resolves the protocol rules' group
    /// names (blocking). Errors here are startup errors: the passwd-file is missing or
    /// unreadable, PAM is unavailable, or a configured group does not exist.
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
            rules: Rules::from_config(cfg)?,
            apop: cfg.pop3.apop,
            failure_time: login::FailureTime::default(),
            last_pop3_logins: login::LastLogins::default(),
        })
    }

    /// Checks a password (no protocol rules, no logging: [`login`] adds those). Slow
    /// hashes run off the async runtime.
    pub async fn verify(&self, user: &str, password: &str) -> Result<User, AuthError> {
        self.check_password(user, password).await.map(|(u, _, _)| u)
    }

    /// Checks an APOP digest (RFC 1939 §7) against the user's `{PLAIN}` secret in the
    /// passwd-file. An unknown user, a hashed secret, PAM, or `pop3.apop = false`: `Failed`,
    /// after about the same work (one lookup, one MD5).
    pub async fn verify_apop(
        &self,
        user: &str,
        timestamp: &str,
        digest_hex: &str,
    ) -> Result<User, AuthError> {
        self.check_apop(user, timestamp, digest_hex)
            .await
            .map(|(u, _, _)| u)
    }

    /// Whether APOP can work at all, so the POP3 greeting offers it (RFC 1939 §7: a
    /// timestamp in the banner): `pop3.apop` is on, the backend is a passwd-file, and the
    /// file, as last read, holds at least one `{PLAIN}` secret. Does not block.
    pub fn apop_available(&self) -> bool {
        self.apop
            && match &self.backend {
                Backend::PasswdFile(pf) => pf.has_plaintext(),
                Backend::Pam(_) => false,
            }
    }

    /// The protocol rules and POP3 settings this authenticator applies.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// What POP3 does for `user`, who just logged in ([`Rules::pop3_policy`]): their
    /// passwd-file line as the login read it, `[pop3.user.NAME]`, `[pop3]`. Does not block.
    pub fn pop3_policy(&self, user: &User) -> Pop3Policy {
        let settings = match &self.backend {
            Backend::PasswdFile(pf) => pf
                .snapshot()
                .get(&user.name)
                .map(|e| e.settings.clone())
                .unwrap_or_default(),
            Backend::Pam(_) => UserSettings::default(),
        };
        self.rules.pop3_policy(user, &settings)
    }

    /// `user`'s quota limits ([`Rules::quota_limits`]): their passwd-file
    /// quota rule, `[mail.user_quota]`, `mail.quota`. Does not block.
    pub fn quota_limits(&self, user: &User) -> QuotaLimits {
        let settings = match &self.backend {
            Backend::PasswdFile(pf) => pf
                .snapshot()
                .get(&user.name)
                .map(|e| e.settings.clone())
                .unwrap_or_default(),
            Backend::Pam(_) => UserSettings::default(),
        };
        self.rules.quota_limits(user, &settings)
    }

    /// The password check: the user, their line's settings, and how long the backend
    /// took (the time of failures is learnt here, for [`login::FailureTime`]).
    async fn check_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<(User, UserSettings, std::time::Duration), AuthError> {
        if !plausible_user(user) || password.len() > MAX_CREDENTIAL_LEN || password.contains('\0') {
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
        let started = std::time::Instant::now();
        let result = match &self.backend {
            Backend::PasswdFile(pf) => {
                let pf = pf.clone();
                blocking(move || verify_passwd_file(&pf, &user, &password, &template)).await
            }
            Backend::Pam(p) => {
                let p = p.clone();
                blocking(move || {
                    p.verify(&user, &password, &template)
                        .map(|u| (u, UserSettings::default()))
                })
                .await
            }
        };
        let took = started.elapsed();
        if matches!(result, Err(AuthError::Failed)) {
            self.failure_time.observe(took);
        }
        result.map(|(u, s)| (u, s, took))
    }

    /// The APOP check ([`Authenticator::verify_apop`]), with the line's settings.
    async fn check_apop(
        &self,
        user: &str,
        timestamp: &str,
        digest_hex: &str,
    ) -> Result<(User, UserSettings, std::time::Duration), AuthError> {
        let Backend::PasswdFile(pf) = &self.backend else {
            return Err(AuthError::Failed);
        };
        if !self.apop
            || !plausible_user(user)
            || timestamp.len() > MAX_CREDENTIAL_LEN
            || digest_hex.len() != 32
        {
            return Err(AuthError::Failed);
        }
        let (pf, template) = (pf.clone(), self.maildir_template.clone());
        let (user, timestamp, digest) = (
            user.to_string(),
            timestamp.to_string(),
            digest_hex.to_string(),
        );
        let started = std::time::Instant::now();
        let result = blocking(move || {
            let Some(entry) = lookup(&pf, &user) else {
                std::hint::black_box(hash::apop_digest(&timestamp, "no such user"));
                return Err(AuthError::Failed);
            };
            if !entry.password.apop_matches(&timestamp, &digest) {
                return Err(AuthError::Failed);
            }
            Ok((user_of(&entry, &template)?, entry.settings.clone()))
        })
        .await;
        result.map(|(u, s)| (u, s, started.elapsed()))
    }
}

/// A user name some backend could hold: not empty, not too long, no control characters
/// or `:` (the passwd-file's separator).
fn plausible_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_CREDENTIAL_LEN
        && !user.chars().any(|c| c.is_control() || c == ':')
}

async fn blocking<T, F>(f: F) -> Result<T, AuthError>
where
    F: FnOnce() -> Result<T, AuthError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(AuthError::Unavailable(format!(
            "authentication task failed: {e}"
        )))
    })
}

/// A user's line. Dovecot's default `auth_username_format = %Lu` lowercases; the exact
/// name is tried first so a file with mixed-case names keeps working.
fn lookup(pf: &PasswdFile, user: &str) -> Option<Arc<passwd_file::Entry>> {
    pf.lookup(user).or_else(|| {
        let lower = user.to_lowercase();
        (lower != user).then(|| pf.lookup(&lower)).flatten()
    })
}

/// The [`User`] of a passwd-file line.
fn user_of(entry: &passwd_file::Entry, template: &str) -> Result<User, AuthError> {
    Ok(User {
        maildir: resolve_maildir(template, &entry.user, entry.home.as_deref())?,
        name: entry.user.clone(),
        uid: entry.uid,
        gid: entry.gid,
        groups: Vec::new(),
    })
}

fn verify_passwd_file(
    pf: &PasswdFile,
    user: &str,
    password: &str,
    template: &str,
) -> Result<(User, UserSettings), AuthError> {
    let Some(entry) = lookup(pf, user) else {
        // Spend the time a real check would take, against a hash of the same kind.
        if let Some(dummy) = pf.representative().or_else(|| fallback_dummy().cloned()) {
            std::hint::black_box(dummy.verify(password));
        }
        return Err(AuthError::Failed);
    };
    if !entry.password.verify(password) {
        return Err(AuthError::Failed);
    }
    Ok((user_of(&entry, template)?, entry.settings.clone()))
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
        authenticator_with(dir, users, "")
    }

    /// `pop3`: more lines for `[pop3]`.
    fn authenticator_with(dir: &Path, users: &str, pop3: &str) -> Authenticator {
        let p = dir.join("users");
        std::fs::write(&p, users).unwrap();
        let cfg = parse_str(&format!(
            "[imap]\nlisten=[\"127.0.0.1:1\"]\nlisten_tls=[]\n[pop3]\nlisten=[]\nlisten_tls=[]\n{pop3}\n\
             [auth]\nbackend=\"passwd-file\"\npasswd_file={p:?}\n[mail]\nmaildir=\"~/Mail/%d/%n\"\n"
        ))
        .unwrap();
        Authenticator::from_config(&cfg).unwrap()
    }

    fn attempt<'a>(user: &'a str, credential: Credential<'a>, proto: Protocol) -> Attempt<'a> {
        Attempt {
            rip: "192.0.2.1".parse().unwrap(),
            user,
            credential,
            mech: "TEST",
            proto,
            session: None,
        }
    }

    /// The login sequence: a refused protocol fails like a wrong password and counts
    /// like one; the allowed protocol logs in with the line's POP3 settings.
    #[tokio::test]
    async fn login_refuses_protocols_like_wrong_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let a = authenticator_with(
            dir.path(),
            "ann:{PLAIN}pw::::/h::nestbox_protocols=pop3 nestbox_pop3_dele=flag\n\
             bob:{PLAIN}pw::::/h\n",
            "dele = \"move\"\n",
        );
        let failures = FailureTracker::new(2);
        let rip = "192.0.2.1".parse().unwrap();
        let pw = Credential::Password("pw");
        let r = login(&a, &failures, attempt("ann", pw, Protocol::Imap)).await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
        assert_eq!(failures.delay(rip), std::time::Duration::ZERO);
        let r = login(
            &a,
            &failures,
            attempt("ann", Credential::Password("x"), Protocol::Imap),
        )
        .await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
        // Two failures: the refusal counted like the wrong password.
        assert!(failures.delay(rip) > std::time::Duration::ZERO);
        let ok = login(&a, &failures, attempt("ann", pw, Protocol::Pop3))
            .await
            .unwrap();
        assert_eq!(ok.name, "ann");
        assert_eq!(a.pop3_policy(&ok).dele, DeleAction::Flag);
        assert_eq!(failures.delay(rip), std::time::Duration::ZERO);
        let bob = login(&a, &failures, attempt("bob", pw, Protocol::Imap))
            .await
            .unwrap();
        assert_eq!(a.pop3_policy(&bob).dele, DeleAction::Move("Trash".into()));
    }

    /// The password is checked in full before the protocol rules: a refusal takes the
    /// time of a wrong password. Where the check itself is fast (here `{PLAIN}`; with PAM,
    /// a right password is fast and a wrong one sleeps), the refusal waits out the time
    /// failures took.
    #[tokio::test]
    async fn refusal_takes_as_long_as_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let params = sha_crypt::Sha512Params::new(100_000).unwrap();
        let hash = sha_crypt::sha512_simple("pw", &params).unwrap();
        let users = format!(
            "ann:{{SHA512-CRYPT}}{hash}::::/h::nestbox_protocols=pop3\n\
             bob:{{PLAIN}}pw::::/h::nestbox_protocols=pop3\n"
        );
        let a = authenticator(dir.path(), &users);
        let failures = FailureTracker::new(100);
        async fn time(
            a: &Authenticator,
            f: &FailureTracker,
            user: &str,
            pass: &str,
        ) -> std::time::Duration {
            let t = std::time::Instant::now();
            let r = login(
                a,
                f,
                attempt(user, Credential::Password(pass), Protocol::Imap),
            )
            .await;
            assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
            t.elapsed()
        }
        // Each figure is the least of three tries: a loaded machine only ever adds time
        // to a try (a descheduled thread), so the least is the work itself, and the
        // comparisons below hold however busy the machine is.
        async fn least(
            a: &Authenticator,
            f: &FailureTracker,
            user: &str,
            pass: &str,
        ) -> std::time::Duration {
            let mut best = time(a, f, user, pass).await;
            for _ in 0..2 {
                best = best.min(time(a, f, user, pass).await);
            }
            best
        }
        // Before any failure nothing is known: a {PLAIN} refusal is quick (not compared:
        // it is the noise floor, which a loaded machine can raise to anything).
        let quick = time(&a, &failures, "bob", "pw").await;
        let wrong = least(&a, &failures, "ann", "wrong").await;
        let refused = least(&a, &failures, "ann", "pw").await;
        assert!(
            refused * 3 > wrong,
            "refused {refused:?} vs wrong {wrong:?} (quick {quick:?})"
        );
        // Now failures are known to take `wrong`: the quick refusal is held back as long.
        let padded = least(&a, &failures, "bob", "pw").await;
        assert!(
            padded * 2 > wrong,
            "padded {padded:?} vs wrong {wrong:?} (quick {quick:?})"
        );
    }

    #[tokio::test]
    async fn login_delay_between_pop3_logins() {
        let dir = tempfile::tempdir().unwrap();
        let a = authenticator_with(
            dir.path(),
            "ann:{PLAIN}pw::::/h\n",
            "login_delay = \"1h\"\n",
        );
        let failures = FailureTracker::new(3);
        let pw = Credential::Password("pw");
        let first = login(&a, &failures, attempt("ann", pw, Protocol::Pop3))
            .await
            .unwrap();
        assert_eq!(a.pop3_policy(&first).login_delay_secs, 3600);
        let r = login(&a, &failures, attempt("ann", pw, Protocol::Pop3)).await;
        assert!(
            matches!(r, Err(LoginError::TooSoon { wait }) if wait > std::time::Duration::from_secs(3500)),
            "{r:?}"
        );
        // A wrong password is a failure, not "too soon": that would tell a guesser.
        let r = login(
            &a,
            &failures,
            attempt("ann", Credential::Password("x"), Protocol::Pop3),
        )
        .await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");
        // IMAP is not limited.
        login(&a, &failures, attempt("ann", pw, Protocol::Imap))
            .await
            .unwrap();
    }

    /// RFC 1939 §7's example, through the authenticator and the login sequence.
    #[tokio::test]
    async fn apop() {
        const TS: &str = "<1896.697170952@dbc.mtview.ca.us>";
        const DIGEST: &str = "c4c9334bac560ecc979e58001b3e22fb";
        let dir = tempfile::tempdir().unwrap();
        let users = "mrose:{PLAIN}tanstaaf::::/h\n\
             hashed:{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA::::/h\n\
             popless:{PLAIN}tanstaaf::::/h::nestbox_protocols=imap\n";
        let a = authenticator_with(dir.path(), users, "");
        assert!(a.apop_available());
        assert_eq!(
            a.verify_apop("mrose", TS, DIGEST).await.unwrap().name,
            "mrose"
        );
        assert_eq!(
            a.verify_apop("MRose", TS, DIGEST).await.unwrap().name,
            "mrose"
        );
        for (user, ts, digest) in [
            ("mrose", TS, "c4c9334bac560ecc979e58001b3e22fc"),
            ("mrose", "<1.2@x>", DIGEST),
            ("mrose", TS, "short"),
            ("nobody", TS, DIGEST),
            ("hashed", TS, DIGEST),
            ("", TS, DIGEST),
        ] {
            assert!(
                matches!(
                    a.verify_apop(user, ts, digest).await,
                    Err(AuthError::Failed)
                ),
                "{user} {ts} {digest}"
            );
        }
        let failures = FailureTracker::new(3);
        let apop = Credential::Apop {
            timestamp: TS,
            digest: DIGEST,
        };
        login(&a, &failures, attempt("mrose", apop, Protocol::Pop3))
            .await
            .unwrap();
        let r = login(&a, &failures, attempt("popless", apop, Protocol::Pop3)).await;
        assert!(matches!(r, Err(LoginError::Failed)), "{r:?}");

        // Not offered, and not working, when switched off or without a plaintext secret.
        let off = authenticator_with(dir.path(), users, "apop = false\n");
        assert!(!off.apop_available());
        assert!(off.verify_apop("mrose", TS, DIGEST).await.is_err());
        let hashed_only = authenticator_with(
            dir.path(),
            "hashed:{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA::::/h\n",
            "",
        );
        assert!(!hashed_only.apop_available());
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
