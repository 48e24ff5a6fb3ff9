//! The active check's status-line reader never panics, whatever a backend answers, and only
//! ever reports a three-digit status (or 0 for "not HTTP/1.x").
#![no_main]

use augur_predictor::health::check_status;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match check_status(data) {
        None => assert!(data.len() < 12),
        Some(status) => assert!(status == 0 || (data.starts_with(b"HTTP/1.") && status < 1000)),
    }
});
