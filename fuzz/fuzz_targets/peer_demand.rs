//! The body of a peer's `GET /demand` answer parses to upstream names with finite, non-negative
//! concurrencies, or to an error; whatever the bytes, it never panics.
#![no_main]

use augur_predictor::demand::{parse_peer_demand, MAX_PEER_UPSTREAMS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(upstreams) = parse_peer_demand(data) {
        assert!(upstreams.len() <= MAX_PEER_UPSTREAMS);
        for (name, concurrency) in &upstreams {
            assert!(!name.is_empty());
            assert!(concurrency.is_finite() && *concurrency >= 0.0);
        }
    }
});
