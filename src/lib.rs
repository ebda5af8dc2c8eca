//! nestbox: a Maildir-backed IMAP4rev2/IMAP4rev1 server.
pub mod auth;
pub mod config;
pub mod demo;
pub mod flags;
pub mod mime;
pub mod mutf7;
pub mod proto;
pub mod server;
pub mod session;
pub mod store;
pub mod watch;
