//! TLS server configuration (SPEC §6): certificate chain and key from PEM files, TLS 1.2
//! and 1.3 with rustls' ring provider, and reloading. The server reloads on SIGHUP only;
//! reloading when the files change is planned (issue 15).
//!
//! PEM parsing uses rustls-pki-types' `PemObject` (SPEC §7: rustls-pemfile is unmaintained).
//! A reload that fails keeps the previous, working configuration: a half-renewed Let's
//! Encrypt directory must never take the server off the air. New connections pick up the
//! new config; established sessions keep the one they negotiated.
//!
//! This module never reads anything but the two files it is given, and never logs key
//! material.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key_der = match PrivateKeyDer::from_pem_file(key) {
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

/// What identifies the current versions of the two files.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

/// The current TLS config, replaceable at run time (SIGHUP, or a file change).
pub struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
    loaded: Mutex<Stamp>,
}

impl TlsReloader {
    /// Loads the pair now; failing here is a startup error.
    pub fn new(cert: &Path, key: &Path) -> Result<TlsReloader, TlsError> {
        let loaded = stamp(cert, key);
        let config = load_server_config(cert, key)?;
        Ok(TlsReloader {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(config),
            loaded: Mutex::new(loaded),
        })
    }

    /// The config to use for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A tokio-rustls acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }

    /// Re-reads both files. On error the previous config stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let s = stamp(&self.cert, &self.key);
        let config = load_server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = s;
        Ok(())
    }

    /// Reloads only if either file's mtime changed since the last successful load (for a
    /// periodic check or a file watcher). `Ok(true)` when a new config was installed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let s = stamp(&self.cert, &self.key);
        if *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) == s {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Blocking wrapper for async callers: file reads and key parsing off the runtime.
    pub async fn reload_async(self: &Arc<Self>) -> Result<(), TlsError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.reload())
            .await
            .unwrap_or_else(|e| {
                Err(TlsError::Read {
                    path: self.cert.clone(),
                    message: format!("reload task failed: {e}"),
                })
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

    #[test]
    fn reload_keeps_old_config_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let r = TlsReloader::new(&c, &k).unwrap();
        let first = r.current();
        assert!(!r.reload_if_changed().unwrap());

        // A broken key file: reload fails, the old config stays.
        std::fs::write(&k, "oops").unwrap();
        assert!(r.reload().is_err());
        assert!(Arc::ptr_eq(&first, &r.current()));

        // A new pair written in place: noticed by mtime and installed.
        let (c2, k2) = write_pair(dir.path(), "b");
        std::fs::rename(&c2, &c).unwrap();
        std::fs::rename(&k2, &k).unwrap();
        let later = filetime::FileTime::from_unix_time(4_000_000_000, 0);
        filetime::set_file_mtime(&c, later).unwrap();
        assert!(r.reload_if_changed().unwrap());
        assert!(!Arc::ptr_eq(&first, &r.current()));
        assert!(!r.reload_if_changed().unwrap());
    }
}
