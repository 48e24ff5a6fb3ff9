//! `segments:`, `segmentation:`, and the `allow:` and `segment_mode:` keys of listeners and
//! routes: what they load into, every error with its line and column, and their diff.

use augur_config::*;

mod common;
use common::*;

/// The example, completed with an upstream.
const EXAMPLE: &str = "\
segments:
  - name: office
    sources: [127.0.0.2/32, 10.1.0.0/16, \"fd00:1::/48\"]
  - name: monitoring
    sources: [127.0.0.3]
segmentation:
  default: deny
listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    allow: [office, monitoring]
    segment_mode: audit
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
    allow: [monitoring]
upstreams:
  - name: api
    backends: [ { addr: 127.0.0.1:9001 } ]
";

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

#[test]
fn the_example_loads() {
    let config = parse(EXAMPLE, "augur.yaml").unwrap();
    assert_eq!(
        config.segments,
        [
            Segment {
                name: "office".into(),
                sources: vec![
                    prefix("127.0.0.2/32"),
                    prefix("10.1.0.0/16"),
                    prefix("fd00:1::/48")
                ],
            },
            Segment {
                name: "monitoring".into(),
                sources: vec![prefix("127.0.0.3/32")],
            },
        ]
    );
    assert_eq!(config.segmentation.default, SegmentDefault::Deny);
    let web = &config.listeners[0];
    assert_eq!(web.allow, Some(vec![0, 1]));
    assert_eq!(web.segment_mode, SegmentMode::Audit);
    let ListenerKind::Http { routes } = &web.kind else {
        panic!("not http: {web:?}");
    };
    assert_eq!(routes[0].allow, Some(vec![0]));
    assert_eq!(routes[1].allow, None);
    let db = &config.listeners[1];
    assert_eq!(db.allow, Some(vec![1]));
    assert_eq!(db.segment_mode, SegmentMode::Enforce);
}

#[test]
fn everything_is_optional() {
    let text = format!(
        "{UPSTREAMS}listeners: [ {{ name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: api }} ]\n"
    );
    let config = parse(&text, "augur.yaml").unwrap();
    assert_eq!(config.segments, []);
    assert_eq!(config.segmentation.default, SegmentDefault::Allow);
    assert_eq!(config.listeners[0].allow, None);
    assert_eq!(config.listeners[0].segment_mode, SegmentMode::Enforce);
    let text = format!("segments: []\nsegmentation: {{}}\n{text}");
    assert_eq!(parse(&text, "augur.yaml").unwrap().segments, []);
}

#[test]
fn bad_sources_point_at_the_source() {
    let text = format!(
        "segments:
  - name: office
    sources:
      - 10.1.2.0/16
      - fd00:1::1/48
      - 10.1.2
      - 10.0.0.0/33
      - \"fe80::1%eth0\"
      - ' 10.9.0.0/16 '
  - name: empty
    sources: []
  - name: missing
  - sources: [127.0.0.1]
{UPSTREAMS}listeners: [ {{ name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: api }} ]
"
    );
    check(
        &text,
        &[
            "augur.yaml:4:9: segments[0].sources[0]: 10.1.2.0/16 has host bits set; did you mean 10.1.0.0/16?",
            "augur.yaml:5:9: segments[0].sources[1]: fd00:1::1/48 has host bits set; did you mean fd00:1::/48?",
            "augur.yaml:6:9: segments[0].sources[2]: invalid prefix \"10.1.2\": expected an IP address or a prefix like 10.1.0.0/16 or fd00:1::/48",
            "augur.yaml:7:9: segments[0].sources[3]: invalid prefix \"10.0.0.0/33\": expected a prefix length from 0 to 32 after the `/`",
            "augur.yaml:8:9: segments[0].sources[4]: invalid prefix \"fe80::1%eth0\": expected an IP address or a prefix like 10.1.0.0/16 or fd00:1::/48",
            "augur.yaml:11:14: segments[1].sources: expected at least one address or prefix, found none",
            "augur.yaml:12:5: segments[2]: missing required key `sources`; a segment needs at least one address or prefix, like 10.1.0.0/16",
            "augur.yaml:13:5: segments[3]: missing required key `name`",
        ],
    );
}

#[test]
fn duplicate_segment_names() {
    let text = format!(
        "segments:
  - {{ name: office, sources: [10.0.0.0/8] }}
  - {{ name: office, sources: [10.1.0.0/16] }}
{UPSTREAMS}listeners: [ {{ name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: api }} ]
"
    );
    check(
        &text,
        &["augur.yaml:3:13: segments[1].name: duplicate segment name \"office\"; segments[0] has it too"],
    );
}

#[test]
fn unknown_segment_names_suggest_the_nearest() {
    let text = format!(
        "segments:
  - {{ name: office, sources: [10.0.0.0/8] }}
  - {{ name: monitoring, sources: [127.0.0.3] }}
{UPSTREAMS}listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    allow: [offce, zzz]
    routes:
      - upstream: api
        allow: [monitorin]
  - name: db
    bind: 127.0.0.1:1
    protocol: tcp
    upstream: api
    allow: []
"
    );
    check(
        &text,
        &[
            "augur.yaml:11:13: listeners[0].allow[0]: no segment named \"offce\"; did you mean \"office\"?",
            "augur.yaml:11:20: listeners[0].allow[1]: no segment named \"zzz\"; defined segments are \"office\", \"monitoring\"",
            "augur.yaml:14:17: listeners[0].routes[0].allow[0]: no segment named \"monitorin\"; did you mean \"monitoring\"?",
            "augur.yaml:19:12: listeners[1].allow: expected at least one segment name, found none; leave `allow` out to admit what `segmentation.default` says",
        ],
    );
    let text = format!(
        "{UPSTREAMS}listeners: [ {{ name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: api, allow: [office] }} ]\n"
    );
    check(
        &text,
        &["augur.yaml:4:83: listeners[0].allow[0]: no segment named \"office\"; no segments are defined; add them under a top-level `segments:`"],
    );
}

#[test]
fn modes_defaults_and_keys_are_checked_by_name() {
    let listener = "listeners: [ { name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: api";
    check(
        &format!("{UPSTREAMS}{listener}, segment_mode: lern }} ]\n"),
        &["augur.yaml:4:89: listeners[0].segment_mode: unknown value `lern`; did you mean `learn`?"],
    );
    check(
        &format!("{UPSTREAMS}segmentation: {{ default: block }}\n{listener} }} ]\n"),
        &["augur.yaml:4:26: segmentation.default: unknown value `block`; expected `allow` or `deny`"],
    );
    check(
        &format!("{UPSTREAMS}segments: [ {{ name: a, source: [10.0.0.0/8] }} ]\n{listener} }} ]\n"),
        &["augur.yaml:4:24: segments[0].source: unknown key `source`; did you mean `sources`?"],
    );
    check(
        &format!("{UPSTREAMS}segment: []\n{listener} }} ]\n"),
        &["augur.yaml:4:1: segment: unknown key `segment`; did you mean `segments`?"],
    );
}

/// `EXAMPLE`, edited.
fn example() -> Config {
    parse(EXAMPLE, "augur.yaml").unwrap()
}

fn changes(edit: impl FnOnce(&mut Config)) -> Vec<Change> {
    changes_after(&example(), edit)
}

#[test]
fn segment_changes_are_reloadable() {
    let found = changes(|c| {
        c.segments[0].sources.push(prefix("10.2.0.0/16"));
        c.segments.push(Segment {
            name: "lab".into(),
            sources: vec![prefix("10.3.0.0/16")],
        });
        c.segmentation.default = SegmentDefault::Allow;
        c.listeners[0].allow = Some(vec![0]);
        c.listeners[0].segment_mode = SegmentMode::Enforce;
        if let ListenerKind::Http { routes } = &mut c.listeners[0].kind {
            routes[1].allow = Some(vec![2]);
        }
    });
    assert_eq!(
        found,
        [
            Change::SegmentSourcesChanged("office".into()),
            Change::SegmentAdded("lab".into()),
            Change::SegmentationDefaultChanged {
                from: SegmentDefault::Deny,
                to: SegmentDefault::Allow
            },
            Change::ListenerAllowChanged {
                listener: "web".into()
            },
            Change::SegmentModeChanged {
                listener: "web".into(),
                from: SegmentMode::Audit,
                to: SegmentMode::Enforce
            },
            Change::RoutesChanged {
                listener: "web".into()
            },
        ]
    );
    assert!(found.iter().all(|c| !c.needs_new_process()));
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "segment office sources changed",
            "segment lab added",
            "segmentation default changed from deny to allow",
            "listener web allowed segments changed",
            "listener web segment mode changed from audit to enforce",
            "listener web routes changed",
        ]
    );
    let removed = changes(|c| {
        c.segments.remove(0);
        c.listeners[0].allow = Some(vec![0]);
        c.listeners[1].allow = Some(vec![0]);
        if let ListenerKind::Http { routes } = &mut c.listeners[0].kind {
            routes[0].allow = None;
        }
    });
    assert_eq!(
        removed,
        [
            Change::SegmentRemoved("office".into()),
            Change::ListenerAllowChanged {
                listener: "web".into()
            },
            Change::RoutesChanged {
                listener: "web".into()
            },
        ]
    );
    assert!(!Change::SegmentRemoved("x".into()).needs_new_process());
}

#[test]
fn reordering_is_no_change() {
    // Segments and sources in another order, allow lists in another order: segments are
    // compared by name, sources and allow lists as sets.
    let reordered = EXAMPLE
        .replace(
            "  - name: office\n    sources: [127.0.0.2/32, 10.1.0.0/16, \"fd00:1::/48\"]\n  - name: monitoring\n    sources: [127.0.0.3]\n",
            "  - name: monitoring\n    sources: [127.0.0.3]\n  - name: office\n    sources: [\"fd00:1::/48\", 10.1.0.0/16, 127.0.0.2/32, 127.0.0.2]\n",
        )
        .replace("allow: [office, monitoring]", "allow: [monitoring, office]");
    let new = parse(&reordered, "augur.yaml").unwrap();
    assert_ne!(new, example());
    assert_eq!(diff(&example(), &new), []);
}
