//! The daemon side: listeners and accept loop (`run`), TLS certificates
//! (`tls`), and the glue from the change watcher to the store (`live`).
pub mod live;
pub mod run;
pub mod tls;

pub use run::run;
