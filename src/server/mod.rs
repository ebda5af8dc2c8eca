//! The daemon side: listeners and accept loop (`run`), TLS (`tls`: the
//! certificate, its reload on SIGHUP, the handshakes for implicit-TLS ports
//! and STARTTLS), connection limits (`limits`), the glue from the change watcher to the store (`live`),
//! and letting go of unused folders (`memory`).
pub mod channel;
pub mod handoff;
pub mod identity;
pub mod limits;
pub mod live;
pub mod memory;
pub mod pool;
pub mod relay;
pub mod run;
pub mod tls;
pub mod worker;

pub use run::run;
