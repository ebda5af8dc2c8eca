//! Arbitrary bytes through the PROXY protocol header parser
//! (`nestbox::server::proxy_protocol::parse`, also property-tested by `cargo test`): it must
//! answer, never panic, whatever a peer sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nestbox::server::proxy_protocol::parse(data);
});
