mod run_stub;
pub mod tls;
pub use run_stub::run;
