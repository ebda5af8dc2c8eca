//! STUB: interface only; the auth helper replaces this file.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub hostname: String,
    pub imap: ListenConfig,
    pub pop3: ListenConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub limits: Limits,
}

#[derive(Clone, Debug)]
pub struct ListenConfig {
    pub listen: Vec<SocketAddr>,
    pub listen_tls: Vec<SocketAddr>,
}

#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub backend: String,
    pub passwd_file: Option<PathBuf>,
    pub pam_service: String,
    pub plaintext_on_loopback: bool,
}

#[derive(Clone, Debug)]
pub struct MailConfig {
    pub maildir: String,
    pub quota: u64,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_command_bytes: usize,
    pub max_literal_bytes: u64,
    pub idle_timeout: Duration,
    pub auth_failures_before_delay: u32,
}
