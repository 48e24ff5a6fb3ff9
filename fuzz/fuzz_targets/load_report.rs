//! The ORCA load report parser never panics, whatever a backend sends; and every report it
//! accepts, written back as TEXT, reads back equal.
#![no_main]

use augur_predictor::load_report::{parse, to_text, MAX_HEADER_LEN, MAX_NAMED};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = parse(data) else {
        return;
    };
    let figures = [
        report.cpu_utilization,
        report.mem_utilization,
        report.application_utilization,
        report.rps_fractional,
        report.eps,
    ];
    let named = report.named_metrics.iter().map(|(_, v)| Some(*v));
    for value in figures.into_iter().chain(named).flatten() {
        assert!(value.is_finite() && value >= 0.0, "accepted {value}");
    }
    assert!(report.named_metrics.len() <= MAX_NAMED);
    let text = to_text(&report);
    // Any accepted report fits in a header again, so the round trip is never cut short.
    assert!(
        text.len() <= MAX_HEADER_LEN,
        "to_text wrote {} bytes",
        text.len()
    );
    assert_eq!(parse(text.as_bytes()), Ok(report), "{text}");
});
