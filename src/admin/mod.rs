//! Operator commands, run from a shell beside the server (`nestbox quota`, `nestbox
//! import-dovecot`), never inside it.
//!
//! They resolve users as a login would (`auth`), then do their Maildir work in a helper
//! process running as each user (`as_user`), as the server's workers do: run as root, an
//! operator command never opens a user's mail as root either.
//!
//! Owns the commands' logic and their output; the command line itself is `main.rs`'s. It
//! never changes what the server does, and never writes anything but what its command says
//! (a `maildirsize` for `quota recalc`, the output file of `import-dovecot`, which reads
//! configuration files only and no mail).
pub mod as_user;
pub mod import_dovecot;
pub mod quota;
