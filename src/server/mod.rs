pub mod run;
pub mod tls;
pub use run::run;
