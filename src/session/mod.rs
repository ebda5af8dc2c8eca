//! The IMAP session state machine (written by the lead; see SESSION.md in the prompt).
pub mod search;
