//! The tunnel's CONNECT endpoint head reader never panics, and only ever reports a head
//! length within the bytes it was given.
#![no_main]

use augur_tunnel::{connect_head, ConnectHead, CONNECT_HEAD_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match connect_head(data) {
        ConnectHead::Target(addr, len) => {
            assert!(len <= data.len() && len <= CONNECT_HEAD_MAX);
            assert!(data.starts_with(b"CONNECT ") && addr.port() != 0);
        }
        ConnectHead::Partial => assert!(data.len() < CONNECT_HEAD_MAX),
        ConnectHead::Invalid => {}
    }
});
