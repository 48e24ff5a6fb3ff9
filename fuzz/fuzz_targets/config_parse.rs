//! The config parser never panics, whatever the bytes; and what it accepts, it accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = augur_config::parse(text, "fuzz.yaml");
    // Every error carries a position inside the text (or 0:0 for whole-file problems).
    if let Err(errors) = &first {
        // YAML breaks lines at \n, \r\n and a lone \r; the end of input may sit one line on.
        let lines = text.matches('\n').count() + text.matches('\r').count() + 2;
        for e in &errors.0 {
            assert!(e.line <= lines, "error line {} past the end (at most {lines}): {e}", e.line);
        }
    }
    // Parsing is deterministic.
    let second = augur_config::parse(text, "fuzz.yaml");
    assert_eq!(first.is_ok(), second.is_ok());
});
