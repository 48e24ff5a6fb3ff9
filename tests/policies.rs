//! Selection policies on a real proxy: latency-aware ones steer away from a slow backend.

use std::time::Duration;

use crate::support::*;

fn share_of_fast(policy: &str) -> (usize, usize) {
    let fast = Backend::start("fast");
    let slow = Backend::start_with_delay("slow", Duration::from_millis(40));
    let addr = loopback();
    let upstream = Upstream::new("u", &[fast.addr, slow.addr]).with("policy", policy);
    let _augur = Augur::start(&format!("policy-{policy}"), &Config::web(addr, upstream));
    let total = 60;
    let fast_hits = (0..total)
        .filter(|_| {
            let r = get(addr, "x", "/");
            assert_eq!(r.status, 200);
            backend_of(&r) == "fast"
        })
        .count();
    (fast_hits, total)
}

#[test]
fn latency_aware_policies_prefer_the_fast_backend_and_round_robin_does_not() {
    for policy in ["p2c_peak_ewma", "predictive"] {
        let (fast, total) = share_of_fast(policy);
        assert!(
            fast * 10 >= total * 9,
            "{policy}: {fast} of {total} to the fast backend"
        );
    }
    let (fast, total) = share_of_fast("round_robin");
    assert_eq!(fast * 2, total, "round_robin alternates");
}
