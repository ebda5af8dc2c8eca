//! The runtime parser against imap-codec: see
//! `nestbox::proto::fuzzing::parse_oracle` (also run by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nestbox::proto::fuzzing::parse_oracle(data));
