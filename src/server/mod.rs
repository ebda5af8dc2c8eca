//! The daemon side: listeners and accept loop (`run`), TLS certificates
//! (`tls`), the glue from the change watcher to the store (`live`), and
//! letting go of unused folders (`memory`).
pub mod live;
pub mod memory;
pub mod run;
pub mod tls;

pub use run::run;
