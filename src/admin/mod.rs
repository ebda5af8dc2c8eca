//! Operator commands, run from a shell beside the server (`nestbox quota`, `nestbox index`,
//! `nestbox client-config`, `nestbox who`, `nestbox import-dovecot`), never inside it.
//!
//! Those that touch mail (`quota`, `index`) resolve users as a login would (`auth`), then do their Maildir work in a helper
//! process running as each user (`as_user`), as the server's workers do: run as root, an
//! operator command never opens a user's mail as root either.
//!
//! Owns the commands' logic and their output; the command line itself is `main.rs`'s. It
//! never changes what the server does, and never writes anything but what its command says
//! (a `maildirsize` for `quota recalc`; for `index rebuild`, a folder's index and what the
//! store writes whenever it opens a folder: the uidlist records of files not numbered yet,
//! and `maildirsize` when a quota counts them; the files `client-config` names, under its
//! output directory; the output file of `import-dovecot`, which reads configuration files
//! only and no mail).
pub mod as_user;
pub mod client_config;
pub mod import_dovecot;
pub mod index;
pub mod quota;
pub mod who;
