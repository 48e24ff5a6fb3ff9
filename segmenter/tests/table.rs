//! Decisions, counters, reloads and learn mode, from configs as a user writes them.

use std::net::{IpAddr, SocketAddr};

use augur_config::{parse, Config};
use augur_segmenter::{Counts, Decision, LogPermit, Table, DENIAL_LOG_LINES_PER_SECOND};

/// The example: office and monitoring segments, a listener allowing both, an admin
/// route narrowed to office, and a tcp listener left to the default.
const CONFIG: &str = "\
segments:
  - name: office
    sources: [127.0.0.2/32, 10.1.0.0/16, \"fd00:1::/48\"]
  - name: monitoring
    sources: [127.0.0.3]
  - name: lab
    sources: [10.1.2.0/24]
segmentation:
  default: allow
listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    allow: [office, monitoring]
    segment_mode: enforce
    routes:
      - match: { path_prefix: /admin }
        upstream: api
        allow: [office]
      - match: { path_prefix: / }
        upstream: api
  - name: db
    bind: 127.0.0.1:15432
    protocol: tcp
    upstream: api
upstreams:
  - name: api
    backends: [ { addr: 127.0.0.1:9001 } ]
";

fn config(text: &str) -> Config {
    parse(text, "augur.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `CONFIG` with `from` replaced by `to`.
fn edited(from: &str, to: &str) -> Config {
    assert!(CONFIG.contains(from), "{from}");
    config(&CONFIG.replace(from, to))
}

/// The example's table with `web` in `mode` (`audit` or `learn`), and web's index.
fn web_in(mode: &str) -> (Table, usize) {
    let config = edited("segment_mode: enforce", &format!("segment_mode: {mode}"));
    let table = Table::from_config(&config, None);
    let web = table.listener_index("web").unwrap();
    (table, web)
}

#[test]
fn tables_can_be_shared_across_threads() {
    fn shared<T: Send + Sync + std::fmt::Debug>() {}
    shared::<Table>();
}

#[test]
fn enforce_admits_allowed_segments_only() {
    let table = Table::from_config(&config(CONFIG), None);
    let web = table.listener_index("web").unwrap();
    for source in [
        "127.0.0.2",
        "127.0.0.3",
        "10.1.200.1",
        "fd00:1::9",
        "::ffff:10.1.0.1",
    ] {
        assert_eq!(table.decide(web, ip(source)), Decision::Allow, "{source}");
    }
    for source in [
        "127.0.0.4",
        "10.2.0.1",
        "fd00:2::1",
        "::1",
        "::ffff:127.0.0.4",
    ] {
        assert_eq!(table.decide(web, ip(source)), Decision::Deny, "{source}");
    }
    // No `allow` and default allow: everyone.
    let db = table.listener_index("db").unwrap();
    assert_eq!(table.decide(db, ip("192.0.2.1")), Decision::Allow);
    // A connection without a peer address is in no segment.
    assert_eq!(table.decide_peer(web, None), Decision::Deny);
    assert_eq!(table.decide_peer(db, None), Decision::Allow);
    let peer: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    assert_eq!(table.decide_peer(web, Some(&peer)), Decision::Allow);
    // An index with no listener gets the default, uncounted.
    assert_eq!(table.decide(99, ip("127.0.0.2")), Decision::Allow);
}

#[test]
fn default_deny_and_audit_and_learn() {
    let table = Table::from_config(&edited("default: allow", "default: deny"), None);
    let db = table.listener_index("db").unwrap();
    assert_eq!(table.decide(db, ip("127.0.0.2")), Decision::Deny);
    assert_eq!(table.decide(99, ip("127.0.0.2")), Decision::Deny);

    let (audit, web) = web_in("audit");
    assert_eq!(audit.decide(web, ip("127.0.0.4")), Decision::WouldDeny);
    assert_eq!(audit.decide(web, ip("127.0.0.2")), Decision::Allow);
    assert!(audit.decide(web, ip("127.0.0.4")).admits());
    assert!(
        !audit.learn(web, None, ip("127.0.0.4")),
        "only learn mode records"
    );

    let (learn, _) = web_in("learn");
    assert_eq!(learn.decide(web, ip("127.0.0.4")), Decision::Learn);
    assert_eq!(learn.decide(web, ip("127.0.0.2")), Decision::Learn);
    assert_eq!(learn.decide_route(web, 0, ip("127.0.0.3")), Decision::Learn);
}

#[test]
fn routes_narrow_per_request() {
    let table = Table::from_config(&config(CONFIG), None);
    let web = table.listener_index("web").unwrap();
    assert_eq!(table.decide_route(web, 0, ip("10.1.9.9")), Decision::Allow);
    assert_eq!(table.decide_route(web, 0, ip("127.0.0.3")), Decision::Deny);
    assert_eq!(table.decide_route(web, 1, ip("127.0.0.3")), Decision::Allow);
    assert_eq!(table.decide_route(web, 7, ip("127.0.0.3")), Decision::Allow);
    assert_eq!(table.check_route(web, 0, ip("127.0.0.3")), Decision::Deny);
    let routes: Vec<_> = table.route_counts().collect();
    assert_eq!(routes.len(), 1);
    assert_eq!((routes[0].listener, routes[0].route), ("web", 0));
    assert_eq!(
        routes[0].counts,
        Counts {
            allowed: 1,
            denied: 1,
            ..Counts::default()
        }
    );
}

#[test]
fn counts_per_listener_and_segment() {
    let table = Table::from_config(&config(CONFIG), None);
    let web = table.listener_index("web").unwrap();
    table.decide(web, ip("10.1.2.3")); // office and lab: counted under office (allowed)
    table.decide(web, ip("127.0.0.3")); // monitoring
    table.decide(web, ip("127.0.0.3"));
    table.decide(web, ip("192.0.2.1")); // in no segment: denied
    table.check(web, ip("192.0.2.1")); // checks are not counted
    let counts = |segment: Option<&str>| {
        table
            .connection_counts()
            .find(|c| c.listener == "web" && c.segment == segment)
            .unwrap()
            .counts
    };
    assert_eq!(counts(Some("office")).allowed, 1);
    assert_eq!(counts(Some("monitoring")).allowed, 2);
    assert_eq!(counts(Some("lab")), Counts::default());
    assert_eq!(counts(None).denied, 1);
    assert_eq!(
        table.listener_counts(web),
        Counts {
            allowed: 3,
            denied: 1,
            ..Counts::default()
        }
    );
    // A source of a segment the listener does not allow is counted under that segment.
    let narrow = Table::from_config(
        &edited("allow: [office, monitoring]", "allow: [monitoring]"),
        None,
    );
    narrow.decide(web, ip("10.1.2.3"));
    let denied: Vec<_> = narrow
        .connection_counts()
        .filter(|c| c.counts.denied > 0)
        .map(|c| (c.listener, c.segment))
        .collect();
    assert_eq!(denied, [("web", Some("office"))]);
    // Every listener has a row per segment and one for "no segment".
    assert_eq!(table.connection_counts().count(), 2 * 4);
}

#[test]
fn reload_keeps_counters_flows_and_log_budgets() {
    let (old, web) = web_in("learn");
    old.decide(web, ip("127.0.0.3"));
    assert!(old.learn(web, Some(1), ip("127.0.0.3")));
    for _ in 0..DENIAL_LOG_LINES_PER_SECOND + 5 {
        old.log_permit(web, 1);
    }
    // The new config drops the `lab` segment and puts `web` in audit mode.
    let moved = CONFIG
        .replace("  - name: lab\n    sources: [10.1.2.0/24]\n", "")
        .replace("segment_mode: enforce", "segment_mode: audit");
    let new = Table::from_config(&config(&moved), Some(&old));
    assert_eq!(new.listener_index("web"), Some(web));
    assert_eq!(
        new.connection_counts()
            .find(|c| c.listener == "web" && c.segment == Some("monitoring"))
            .unwrap()
            .counts
            .learned,
        1
    );
    assert_eq!(new.connection_counts().count(), 2 * 3);
    assert_eq!(new.flows().observed().len(), 1);
    assert_eq!(new.suppressed_log_lines(web), 5);
    assert_eq!(new.log_permit(web, 2), LogPermit::Log { suppressed: 5 });
    // The old table, still held by live connections, counts into the same atomics.
    old.decide(web, ip("127.0.0.3"));
    assert_eq!(new.listener_counts(web).learned, 2);
    assert!(
        !new.learn(web, None, ip("127.0.0.3")),
        "audit mode learns nothing"
    );
}

#[test]
fn learned_suggestion_applied_admits_what_was_seen_and_nothing_else() {
    let (learning, web) = web_in("learn");
    for (source, route) in [
        ("127.0.0.2", Some(0)),
        ("127.0.0.2", Some(1)),
        ("127.0.0.3", Some(1)),
        ("::1", Some(1)),
        ("::ffff:192.0.2.77", None),
    ] {
        assert_eq!(learning.decide(web, ip(source)), Decision::Learn);
        assert!(learning.learn(web, route, ip(source)));
    }
    let suggestion = learning.suggest();
    assert!(
        suggestion.contains("      - 127.0.0.0/24  "),
        "{suggestion}"
    );
    assert!(
        suggestion.contains("# 3 flows (route 0: 1, route 1: 2)"),
        "{suggestion}"
    );
    // Paste the `segments:` part over the config's, and allow the learned segment.
    let (segments, listeners) = suggestion.split_once("listeners:\n").unwrap();
    assert!(listeners.contains("allow: [learned-web]"), "{suggestion}");
    let applied = CONFIG
        .split_once("segmentation:")
        .map(|(_, rest)| format!("{segments}segmentation:{rest}"))
        .unwrap()
        .replace("allow: [office, monitoring]", "allow: [learned-web]")
        .replace("allow: [office]", "allow: [learned-web]");
    let table = Table::from_config(&config(&applied), Some(&learning));
    for seen in ["127.0.0.2", "127.0.0.3", "127.0.0.200", "::1", "192.0.2.1"] {
        assert_eq!(table.decide(web, ip(seen)), Decision::Allow, "{seen}");
    }
    for unseen in ["127.0.1.2", "::2:0:0:0:1", "10.1.0.1"] {
        assert_eq!(table.decide(web, ip(unseen)), Decision::Deny, "{unseen}");
    }
}
