//! TLS (SPEC §6): the certificate chain and key from PEM files, the rustls server
//! configuration (TLS 1.2 and 1.3 with rustls' ring provider), reloading it on SIGHUP (reloading when the files change is planned, issue 15), and
//! the handshake itself for implicit-TLS ports and STARTTLS ([`TlsState`]).
//!
//! PEM parsing uses rustls-pki-types' `PemObject` (SPEC §7: rustls-pemfile is unmaintained).
//! A reload that fails keeps the previous, working configuration: a half-renewed Let's
//! Encrypt directory must never take the server off the air. New connections (and STARTTLS
//! upgrades) pick up the new config; established sessions keep the one they negotiated.
//! Only SIGHUP reloads: nothing watches the files.
//!
//! This module never reads anything but the two files it is given, and never logs key
//! material.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::session::{Io, TlsUpgrade, UpgradeFuture};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The current certificate, swappable on SIGHUP without touching sessions. The accept
/// loop's implicit-TLS ports and STARTTLS both handshake through it ([`TlsUpgrade`]), with
/// the configuration current at that moment.
pub struct TlsState {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl TlsState {
    /// Loads the pair now; failing here is a startup error.
    pub fn load(cert: &Path, key: &Path) -> io::Result<Self> {
        let cfg = load_server_config(cert, key).map_err(io::Error::other)?;
        Ok(TlsState {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            acceptor: RwLock::new(TlsAcceptor::from(cfg)),
        })
    }

    /// Re-reads the certificate files (SIGHUP) and logs the outcome; on error the old ones
    /// stay in use.
    pub fn reload(&self) {
        match self.try_reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded from {}", self.cert.display()),
            Err(e) => tracing::error!("TLS reload failed, keeping the old certificate: {e}"),
        }
    }

    /// [`TlsState::reload`] without the log line.
    fn try_reload(&self) -> Result<(), TlsError> {
        let cfg = load_server_config(&self.cert, &self.key)?;
        if let Ok(mut a) = self.acceptor.write() {
            *a = TlsAcceptor::from(cfg);
        }
        Ok(())
    }

    /// The certificate and key files this state reads.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.cert, &self.key)
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor.read().ok().map(|a| a.clone())
    }
}

impl TlsUpgrade for TlsState {
    fn upgrade(&self, io: Box<dyn Io>) -> UpgradeFuture {
        let acceptor = self.acceptor();
        Box::pin(async move {
            let acceptor = acceptor.ok_or_else(|| io::Error::other("TLS state poisoned"))?;
            let timed_out = |_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
            // TLS straight over the TCP stream (not over the box), so that the relay
            // to a worker after login sees the concrete type (server::relay).
            if io.as_any().is::<tokio::net::TcpStream>() {
                if let Ok(tcp) = io.into_any().downcast::<tokio::net::TcpStream>() {
                    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(*tcp))
                        .await
                        .map_err(timed_out)??;
                    return Ok(Box::new(tls) as Box<dyn Io>);
                }
                return Err(io::Error::other("stream changed type"));
            }
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
