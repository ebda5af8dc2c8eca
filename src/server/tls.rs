//! TLS (SPEC §6): the certificate chain and key from PEM files, the rustls server
//! configuration (TLS 1.2 and 1.3 with rustls' ring provider), reloading it (on SIGHUP, and
//! when the files change), and the handshake itself for implicit-TLS ports and STARTTLS
//! ([`TlsState`]).
//!
//! PEM parsing uses rustls-pki-types' `PemObject` (SPEC §7: rustls-pemfile is unmaintained).
//! A reload that fails keeps the previous, working configuration: a half-renewed Let's
//! Encrypt directory must never take the server off the air. New connections (and STARTTLS
//! upgrades) pick up the new config; established sessions keep the one they negotiated.
//!
//! # Noticing new files ([`TlsState::watch_files`])
//! Renewals replace the files without telling us: certbot writes `archive/D/fullchain2.pem`
//! and `privkey2.pem` and re-points the `live/D/*.pem` symlinks (the configured paths) by
//! renaming new symlinks over them; other tools rewrite plain files in place. The watcher
//! *polls*: every few seconds ([`WATCH_EVERY`]) it resolves each configured path through all
//! its symlinks and takes the target's path, device, inode, size, mtime and ctime. That one
//! comparison catches a symlink swap anywhere in a chain and an in-place rewrite alike, costs
//! a handful of syscalls per tick, and has none of inotify's edge cases (watching the parent
//! of every link of a chain, links re-pointed to other directories, IN_IGNORED after a
//! directory is replaced). It misses only a rewrite of the same size within the same clock
//! tick (a few ms) as the state it last saw, which no renewal tool does.
//!
//! A change is loaded when the pair, read then, is valid: a certificate whose key is not
//! written yet (certbot renames the two links a moment apart; an in-place rewrite of two
//! files is not atomic either) does not load. Either file changing is enough (a renewal
//! with a reused key changes only the certificate). While the files do not form a usable
//! pair, the old configuration stays and the watcher tries again at every tick; that is
//! logged once, as a warning (it is normal for a moment), not at every tick. Each reload is
//! one info line. Files touched without a change of content (same bytes) are not reloaded.
//!
//! This module never reads anything but the two files it is given, and never logs key
//! material.
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::session::{Io, TlsUpgrade, UpgradeFuture};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the daemon looks at the certificate files (see the module doc).
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Why a certificate/key pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or is not valid PEM.
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{0}: no certificate found (expected a PEM file with -----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    /// The key file holds no private key block.
    #[error(
        "{0}: no private key found (expected PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoKey(PathBuf),
    /// rustls refused the pair (e.g. the key does not belong to the certificate).
    #[error("{cert} / {key}: {source}")]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    let message = match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("bad PEM: {other}"),
    };
    TlsError::Read {
        path: path.to_path_buf(),
        message,
    }
}

/// Builds a rustls server config from a PEM certificate chain (leaf first, as in Let's
/// Encrypt's `fullchain.pem`) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pair = Pair::read(cert, key)?;
    pair.config(cert, key)
}

/// The bytes of both files, read once: what is parsed is what is compared with the pair in
/// use, whatever happens to the files meanwhile.
struct Pair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Pair {
    fn read(cert: &Path, key: &Path) -> Result<Pair, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| TlsError::Read {
                path: p.to_path_buf(),
                message: e.to_string(),
            })
        };
        Ok(Pair {
            cert: read(cert)?,
            key: read(key)?,
        })
    }

    /// Tells a renewal from a touch: a hash of both files' bytes (not a secret: it only
    /// ever meets another hash of ours).
    fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.cert.hash(&mut h);
        self.key.hash(&mut h);
        h.finish()
    }

    /// The server config; `cert` and `key` only name the files in errors.
    fn config(&self, cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(cert, e))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert.to_path_buf()));
        }
        let key_der = match PrivateKeyDer::from_pem_slice(&self.key) {
            Ok(k) => k,
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsError::NoKey(key.to_path_buf()));
            }
            Err(e) => return Err(pem_error(key, e)),
        };
        let rustls_err = |source| TlsError::Rustls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(rustls_err)?
            .with_no_client_auth()
            // Also checks that the key belongs to the leaf certificate.
            .with_single_cert(chain, key_der)
            .map_err(rustls_err)?;
        Ok(Arc::new(config))
    }
}

/// What a file path leads to right now: the end of its symlink chain and that file's
/// identity and last change. `None` when it cannot be resolved (missing for a moment).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileId {
    target: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let target = std::fs::canonicalize(path).ok()?;
        let m = std::fs::metadata(&target).ok()?;
        Some(FileId {
            target,
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Both files' [`FileId`]s.
type Fingerprint = [Option<FileId>; 2];

/// What the watcher knows, shared with SIGHUP reloads.
struct Seen {
    /// The files as last looked at (taken before they were read).
    files: Fingerprint,
    /// [`Pair::digest`] of the pair in use.
    loaded: u64,
    /// The files changed into something that does not load, and that was logged; cleared
    /// by the next successful load (or by the files going back to the pair in use).
    failing: bool,
}

/// What one look at the files did ([`TlsState::check_files`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Nothing changed (or only the files' times: same bytes).
    Unchanged,
    /// A new pair is in use.
    Reloaded,
    /// The files changed but are not a usable pair yet; `logged` is true the first time.
    NotYet { logged: bool },
}

/// The current certificate, swappable on SIGHUP and when the files change, without touching
/// sessions. The accept loop's implicit-TLS ports and STARTTLS both handshake through it
/// ([`TlsUpgrade`]), with the configuration current at that moment.
pub struct TlsState {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
    seen: Mutex<Seen>,
}

impl TlsState {
    /// Loads the pair now; failing here is a startup error.
    pub fn load(cert: &Path, key: &Path) -> io::Result<Self> {
        let files = fingerprint(cert, key);
        let pair = Pair::read(cert, key).map_err(io::Error::other)?;
        let cfg = pair.config(cert, key).map_err(io::Error::other)?;
        Ok(TlsState {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            acceptor: RwLock::new(TlsAcceptor::from(cfg)),
            seen: Mutex::new(Seen {
                files,
                loaded: pair.digest(),
                failing: false,
            }),
        })
    }

    /// Re-reads the certificate files at once (SIGHUP) and logs the outcome; on error the
    /// old ones stay in use.
    pub fn reload(&self) {
        match self.try_reload() {
            Ok(()) => tracing::info!(
                "TLS certificate reloaded from {} (SIGHUP)",
                self.cert.display()
            ),
            Err(e) => tracing::error!("TLS reload failed, keeping the old certificate: {e}"),
        }
    }

    /// [`TlsState::reload`] without the log line.
    fn try_reload(&self) -> Result<(), TlsError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let files = fingerprint(&self.cert, &self.key);
        let pair = Pair::read(&self.cert, &self.key)?;
        let cfg = pair.config(&self.cert, &self.key)?;
        self.install(cfg);
        *seen = Seen {
            files,
            loaded: pair.digest(),
            failing: false,
        };
        Ok(())
    }

    /// The certificate and key files this state reads.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.cert, &self.key)
    }

    /// Starts the task that looks at the files every `every` (see the module doc); it ends
    /// when the last other holder of this state is gone. Call it on the tokio runtime.
    pub fn watch_files(self: &Arc<Self>, every: Duration) {
        let state = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate: the files were just loaded.
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(state) = state.upgrade() else { return };
                // Off the runtime: a stat on a hung network file system must not stall
                // the accept loop.
                let _ = tokio::task::spawn_blocking(move || state.check_files()).await;
            }
        });
    }

    /// One look at the files: loads them when they changed into a valid pair.
    pub fn check_files(&self) -> Check {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let files = fingerprint(&self.cert, &self.key);
        if files == seen.files && !seen.failing {
            return Check::Unchanged;
        }
        seen.files = files;
        let loaded = Pair::read(&self.cert, &self.key).and_then(|pair| {
            let digest = pair.digest();
            if digest == seen.loaded {
                return Ok(None);
            }
            Ok(Some((pair.config(&self.cert, &self.key)?, digest)))
        });
        match loaded {
            Ok(None) => {
                seen.failing = false;
                Check::Unchanged
            }
            Ok(Some((cfg, digest))) => {
                self.install(cfg);
                seen.loaded = digest;
                seen.failing = false;
                tracing::info!(
                    "TLS certificate reloaded from {}: the files changed",
                    self.cert.display()
                );
                Check::Reloaded
            }
            Err(e) => {
                let logged = !seen.failing;
                if logged {
                    tracing::warn!(
                        "TLS certificate files changed but are not a usable pair yet ({e}); \
                         keeping the current certificate, trying again every few seconds"
                    );
                }
                seen.failing = true;
                Check::NotYet { logged }
            }
        }
    }

    fn install(&self, cfg: Arc<ServerConfig>) {
        let mut a = self
            .acceptor
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *a = TlsAcceptor::from(cfg);
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor.read().ok().map(|a| a.clone())
    }
}

fn fingerprint(cert: &Path, key: &Path) -> Fingerprint {
    [FileId::of(cert), FileId::of(key)]
}

impl TlsUpgrade for TlsState {
    fn upgrade(&self, io: Box<dyn Io>) -> UpgradeFuture {
        let acceptor = self.acceptor();
        Box::pin(async move {
            let acceptor = acceptor.ok_or_else(|| io::Error::other("TLS state poisoned"))?;
            let timed_out = |_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
            // TLS straight over the TCP stream (not over the box), so that the relay
            // to a worker after login sees the concrete type (server::relay).
            let io = match crate::session::downcast::<tokio::net::TcpStream>(io) {
                Ok(tcp) => {
                    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(*tcp))
                        .await
                        .map_err(timed_out)??;
                    return Ok(Box::new(tls) as Box<dyn Io>);
                }
                Err(io) => io,
            };
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))
                .await
                .map_err(timed_out)??;
            Ok(Box::new(tls) as Box<dyn Io>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, ck.cert.pem()).unwrap();
        std::fs::write(&k, ck.key_pair.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn loads_generated_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let cfg = load_server_config(&c, &k).unwrap();
        assert!(cfg.alpn_protocols.is_empty());
    }

    #[test]
    fn errors() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let (_c2, k2) = write_pair(dir.path(), "b");
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();

        assert!(matches!(
            load_server_config(&missing, &k),
            Err(TlsError::Read { .. })
        ));
        assert!(matches!(
            load_server_config(&c, &missing),
            Err(TlsError::Read { .. })
        ));
        assert!(matches!(
            load_server_config(&empty, &k),
            Err(TlsError::NoCertificate(_))
        ));
        assert!(matches!(
            load_server_config(&c, &empty),
            Err(TlsError::NoKey(_))
        ));
        assert!(matches!(
            load_server_config(&garbage, &k),
            Err(TlsError::Read { .. })
        ));
        // A key from another pair.
        assert!(matches!(
            load_server_config(&c, &k2),
            Err(TlsError::Rustls { .. })
        ));
        // Key and certificate swapped.
        assert!(load_server_config(&k, &c).is_err());
    }

    /// The server config the next handshake would use.
    fn current(st: &TlsState) -> Arc<ServerConfig> {
        st.acceptor().unwrap().config().clone()
    }

    #[test]
    fn reload_keeps_old_config_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let st = TlsState::load(&c, &k).unwrap();
        let first = current(&st);

        // A broken key file: reload fails, the old config stays.
        std::fs::write(&k, "oops").unwrap();
        assert!(st.try_reload().is_err());
        st.reload();
        assert!(Arc::ptr_eq(&first, &current(&st)));

        // A new pair written in place: installed by the next reload.
        let (c2, k2) = write_pair(dir.path(), "b");
        std::fs::rename(&c2, &c).unwrap();
        std::fs::rename(&k2, &k).unwrap();
        st.reload();
        let second = current(&st);
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(st.try_reload().is_ok());
        assert!(!Arc::ptr_eq(&second, &current(&st)));
    }

    /// A new certificate and key, as PEM text.
    fn new_pair() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (ck.cert.pem(), ck.key_pair.serialize_pem())
    }

    /// Points `link` at `target` as certbot does: a new symlink renamed over the old one.
    fn swap_link(link: &Path, target: &str) {
        let tmp = link.with_extension("new");
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, link).unwrap();
    }

    #[test]
    fn watcher_follows_a_certbot_renewal_and_waits_for_a_whole_pair() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive/example.org");
        let live = dir.path().join("live/example.org");
        std::fs::create_dir_all(&archive).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        let (c1, k1) = new_pair();
        std::fs::write(archive.join("fullchain1.pem"), &c1).unwrap();
        std::fs::write(archive.join("privkey1.pem"), &k1).unwrap();
        let (cert, key) = (live.join("fullchain.pem"), live.join("privkey.pem"));
        swap_link(&cert, "../../archive/example.org/fullchain1.pem");
        swap_link(&key, "../../archive/example.org/privkey1.pem");
        let st = TlsState::load(&cert, &key).unwrap();
        let first = current(&st);
        assert_eq!(st.check_files(), Check::Unchanged);

        // Renewal, half done: the new certificate is linked, its key not yet. Not loaded,
        // reported once, tried again at every look.
        let (c2, k2) = new_pair();
        std::fs::write(archive.join("fullchain2.pem"), &c2).unwrap();
        std::fs::write(archive.join("privkey2.pem"), &k2).unwrap();
        swap_link(&cert, "../../archive/example.org/fullchain2.pem");
        assert_eq!(st.check_files(), Check::NotYet { logged: true });
        assert_eq!(st.check_files(), Check::NotYet { logged: false });
        assert!(Arc::ptr_eq(&first, &current(&st)));

        // The key follows: loaded at the next look, then quiet.
        swap_link(&key, "../../archive/example.org/privkey2.pem");
        assert_eq!(st.check_files(), Check::Reloaded);
        let second = current(&st);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(st.check_files(), Check::Unchanged);

        // Rewritten with the same bytes (a touch, a chmod): nothing to load.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(archive.join("fullchain2.pem"), &c2).unwrap();
        assert_eq!(st.check_files(), Check::Unchanged);
        assert!(Arc::ptr_eq(&second, &current(&st)));

        // A plain file rewritten in place (same inode), key first: the moment between the
        // two writes is a mismatch, then the new pair loads.
        let (c3, k3) = new_pair();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(archive.join("privkey2.pem"), &k3).unwrap();
        assert_eq!(st.check_files(), Check::NotYet { logged: true });
        std::fs::write(archive.join("fullchain2.pem"), &c3).unwrap();
        assert_eq!(st.check_files(), Check::Reloaded);
        assert!(!Arc::ptr_eq(&second, &current(&st)));

        // Missing files are a pair that does not load yet, not a crash.
        std::fs::remove_file(archive.join("privkey2.pem")).unwrap();
        assert_eq!(st.check_files(), Check::NotYet { logged: true });
        // Put back as they were: nothing new to load, and no longer failing.
        std::fs::write(archive.join("privkey2.pem"), &k3).unwrap();
        assert_eq!(st.check_files(), Check::Unchanged);
        assert_eq!(st.check_files(), Check::Unchanged);
    }

    #[tokio::test]
    async fn watch_files_task_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let st = Arc::new(TlsState::load(&c, &k).unwrap());
        let first = current(&st);
        st.watch_files(Duration::from_millis(20));
        let (c2, k2) = write_pair(dir.path(), "b");
        std::fs::rename(&k2, &k).unwrap();
        std::fs::rename(&c2, &c).unwrap();
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if !Arc::ptr_eq(&first, &current(&st)) {
                break;
            }
        }
        assert!(!Arc::ptr_eq(&first, &current(&st)));
    }

    #[test]
    fn load_fails_on_a_bad_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = write_pair(dir.path(), "a");
        let missing = dir.path().join("missing.pem");
        assert!(TlsState::load(&c, &missing).is_err());
    }

    #[tokio::test]
    async fn upgrade_completes_a_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let st = TlsState::load(&c, &k).unwrap();
        let (server_end, client_end) = tokio::io::duplex(64 * 1024);
        let server = st.upgrade(Box::new(server_end));

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&c).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let client = connector.connect(name, client_end);
        let (server, client) = tokio::join!(server, client);
        server.unwrap();
        client.unwrap();
    }
}
