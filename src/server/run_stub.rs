//! TEMPORARY: stands in for the lead's `server::run` so `main.rs` compiles; the lead deletes
//! this file when the accept loop lands.

/// Always fails: the server loop is not merged yet.
pub async fn run(_cfg: crate::config::Config) -> std::io::Result<()> {
    Err(std::io::Error::other("server not built"))
}
