//! The HTTP/1 response reader (the CLI's, peers', the demo's and the health check's) never
//! panics whatever a peer or backend sends, reads the same response however the bytes are
//! split, stays within its caps, and round-trips: a response it read, written back with a
//! Content-Length, reads as the same status and body.
#![no_main]

#[path = "../../proxy/src/client/response.rs"]
#[allow(dead_code)]
mod response;

use libfuzzer_sys::fuzz_target;
use response::{Limits, ResponseReader};

const LIMITS: Limits = Limits {
    head: 4096,
    body: 4096,
};

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the bytes are split in two reads.
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let whole = ResponseReader::new(LIMITS).advance(data, true);
    let mut reader = ResponseReader::new(LIMITS);
    let cut = usize::from(split) * data.len() / 255;
    let split = match reader.advance(&data[..cut], false) {
        Ok(None) => reader.advance(data, true),
        early => early,
    };
    // Reading in two steps may stop earlier (a cap seen sooner) but never disagrees on a
    // response both complete.
    if let (Ok(Some(a)), Ok(Some(b))) = (&whole, &split) {
        assert_eq!(a, b);
    }
    let Ok(Some(response)) = whole else {
        return;
    };
    assert!(response.len <= data.len());
    assert!(response.body.len() <= LIMITS.body);
    assert!((100..1000).contains(&response.status));
    let mut again = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\n\r\n",
        response.status,
        response.body.len()
    )
    .into_bytes();
    again.extend_from_slice(&response.body);
    let reread = ResponseReader::new(LIMITS)
        .advance(&again, true)
        .expect("a response we wrote reads")
        .expect("and is complete");
    assert_eq!(reread.status, response.status);
    // Statuses without a body (1xx, 204, 304) drop it on the way back.
    if !matches!(response.status, 100..=199 | 204 | 304) {
        assert_eq!(reread.body, response.body);
    }
});
