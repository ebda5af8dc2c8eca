//! Arbitrary bytes through the framer and the parser: see
//! `nestbox::proto::fuzzing::frame_parse` (also run by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nestbox::proto::fuzzing::frame_parse(data));
