//! The daemon side, in two kinds of process (SPEC §4).
//!
//! The front: listeners, accept loop, login hand-over and SIGHUP reload
//! (`run`), TLS (`tls`: the certificate, reloaded on SIGHUP and when its
//! files change, the handshakes for implicit-TLS ports and STARTTLS),
//! connection limits (`limits`), which uid serves a user (`identity`), the
//! worker processes (`pool`, started as the user by `credentials`, which
//! `nestbox quota`'s helpers share), what it tells them (`handoff`, over
//! `channel`), relaying a logged-in connection's bytes (`relay`), and the PROXY protocol
//! header a trusted mail proxy opens with (`proxy_protocol`); what systemd is told
//! (`systemd`), the control socket `nestbox who` asks (`control`), and listening sockets
//! passed by systemd (`activation`). It never opens a Maildir.
//!
//! A worker (`worker`): the logged-in sessions of one uid, sharing one
//! folder registry with live sync (the store's), and giving memory back
//! from unused folders (`memory`). It never holds a TLS key or reads the users file.
pub mod activation;
pub mod channel;
pub mod control;
pub mod credentials;
pub mod handoff;
pub mod identity;
pub mod limits;
pub mod memory;
pub mod pool;
pub mod proxy_protocol;
pub mod relay;
pub mod run;
pub mod systemd;
pub mod tls;
pub mod worker;

pub use run::run;
