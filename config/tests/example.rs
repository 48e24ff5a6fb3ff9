//! The documented example file loads into the expected `Config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use augur_config::*;

mod common;
use common::*;

const EXAMPLE: &str = "\
server:                      # optional
  threads: 1
  grace_period: 10s
  upgrade_sock: /tmp/augur_upgrade.sock
  pid_file: /tmp/augur.pid
  log_level: info
  access_log: { path: /var/log/augur/access.log, format: json }
admin:
  bind: 127.0.0.1:9901
listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    routes:
      - match: { host: api.example.com, path_prefix: /v1 }
        upstream: api
      - match: { path_prefix: / }
        upstream: api
  - name: web-tls
    bind: 127.0.0.1:8443
    protocol: https
    tls: { cert: certs/server.pem, key: certs/server.key }
    routes: [ { match: { path_prefix: / }, upstream: api } ]
  - name: db
    bind: 127.0.0.1:15432
    protocol: tcp
    upstream: pg
upstreams:
  - name: api
    policy: round_robin
    connect_timeout: 1s
    read_timeout: 30s
    write_timeout: 30s
    idle_timeout: 60s
    retries: 2
    backends:
      - addr: 127.0.0.1:9001
      - addr: 127.0.0.1:9002
        weight: 2
  - name: pg
    policy: least_conn
    backends: [ { addr: 127.0.0.1:5432 } ]
";

/// A fresh directory holding `augur.yaml` and PEM-looking TLS files under `certs/`.
fn example_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("augur-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(
        dir.join("certs/server.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("certs/server.key"),
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(dir.join("augur.yaml"), EXAMPLE).unwrap();
    dir
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn expected(cert_dir: &Path) -> Config {
    Config {
        predictor: augur_config::Predictor::default(),
        events: Vec::new(),
        segments: Vec::new(),
        segmentation: Segmentation::default(),
        tunnels: Vec::new(),
        server: Server {
            threads: 1,
            grace_period: Duration::from_secs(10),
            upgrade_sock: "/tmp/augur_upgrade.sock".into(),
            pid_file: "/tmp/augur.pid".into(),
            log_level: "info".into(),
            access_log: Some(AccessLog {
                path: "/var/log/augur/access.log".into(),
                format: AccessLogFormat::Json,
            }),
        },
        admin: Some(Admin {
            bind: addr("127.0.0.1:9901"),
        }),
        listeners: vec![
            listener(
                "web",
                "127.0.0.1:8080",
                ListenerKind::Http {
                    routes: vec![
                        route(Some("api.example.com"), Some("/v1")),
                        route(None, Some("/")),
                    ],
                },
            ),
            listener(
                "web-tls",
                "127.0.0.1:8443",
                ListenerKind::Https {
                    tls: Tls {
                        cert: cert_dir.join("server.pem"),
                        key: cert_dir.join("server.key"),
                    },
                    routes: vec![route(None, Some("/"))],
                },
            ),
            listener(
                "db",
                "127.0.0.1:15432",
                ListenerKind::Tcp {
                    upstream: 1,
                    idle_timeout: std::time::Duration::from_secs(3600),
                },
            ),
        ],
        upstreams: vec![
            upstream(
                "api",
                PolicyKind::RoundRobin,
                vec![backend("127.0.0.1:9001", 1), backend("127.0.0.1:9002", 2)],
            ),
            upstream(
                "pg",
                PolicyKind::LeastConn,
                vec![backend("127.0.0.1:5432", 1)],
            ),
        ],
    }
}

/// A listener open to every source (no `allow`, segments enforced).
fn listener(name: &str, bind: &str, kind: ListenerKind) -> Listener {
    Listener {
        name: name.into(),
        bind: addr(bind),
        kind,
        allow: None,
        segment_mode: SegmentMode::Enforce,
    }
}

/// A route to upstream 0 (`api`), open to every source.
fn route(host: Option<&str>, path_prefix: Option<&str>) -> Route {
    Route {
        host: host.map(Into::into),
        path_prefix: path_prefix.map(Into::into),
        upstream: 0,
        allow: None,
    }
}

/// An upstream of the example: the timeouts and retries it sets, defaults for the rest.
fn upstream(name: &str, policy: PolicyKind, backends: Vec<Backend>) -> Upstream {
    Upstream {
        name: name.into(),
        policy,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        retries: 2,
        prefer_region: None,
        predictive: PredictiveWeights::default(),
        scale: Scale::default(),
        health_check: None,
        outlier_detection: OutlierDetection::default(),
        panic_threshold: 0.5,
        retry_budget: RetryBudget::default(),
        backends,
    }
}

#[test]
fn example_loads_with_tls_paths_resolved_against_the_config_dir() {
    let dir = example_dir("load");
    let config = load(&dir.join("augur.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, expected(&dir.join("certs")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parse_resolves_tls_paths_against_the_current_directory() {
    // The test's working directory (the crate root) has no `certs/`.
    let lines = errors(EXAMPLE);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(
        "augur.yaml:22:18: listeners[1].tls.cert: cannot read certificate file \"certs/server.pem\": "
    ));
    assert!(lines[1].starts_with(
        "augur.yaml:22:41: listeners[1].tls.key: cannot read private key file \"certs/server.key\": "
    ));
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let text = "\
listeners:
  - { name: db, bind: 127.0.0.1:15432, protocol: tcp, upstream: pg }
upstreams:
  - name: pg
    backends: [ { addr: 127.0.0.1:5432 } ]
";
    let config = config(text);
    let full = expected(Path::new(""));
    let defaults = Server {
        access_log: None,
        ..full.server
    };
    assert_eq!(config.server, defaults);
    assert_eq!(config.admin, None);
    assert_eq!(
        config.upstreams[0],
        Upstream {
            policy: PolicyKind::Predictive,
            ..full.upstreams[1].clone()
        }
    );
}

#[test]
fn hosts_are_lower_cased_and_match_is_optional() {
    let text = format!(
        "{WEB_ROUTES}      - match: {{ host: API.Example.COM }}
        upstream: api
      - upstream: api
upstreams: [ {{ name: api, backends: [ {{ addr: \"[::1]:9001\" }} ] }} ]
"
    );
    let config = config(&text);
    let ListenerKind::Http { routes } = &config.listeners[0].kind else {
        panic!("not http: {config:?}");
    };
    assert_eq!(routes[0].host.as_deref(), Some("api.example.com"));
    assert_eq!(routes[1], route(None, None));
    assert_eq!(config.upstreams[0].backends[0].addr, addr("[::1]:9001"));
}

#[test]
fn unreadable_config_file_is_an_error_at_zero() {
    let errors = load(Path::new("/nonexistent/augur.yaml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    let error = &errors.0[0];
    assert_eq!((error.line, error.column), (0, 0));
    assert!(error
        .to_string()
        .starts_with("/nonexistent/augur.yaml:0:0: cannot read config file: "));
}

#[test]
fn regions_costs_and_predictive_weights() {
    let text = format!(
        "{WEB_TO_API}    policy: predictive
    prefer_region: local
    predictive: {{ load_weight: 2, overload_threshold: 0.7 }}
    backends:
      - {{ addr: 127.0.0.1:9001, region: local }}
      - {{ addr: 10.20.1.10:8080, region: east, cost: 0.4 }}
"
    );
    let config = config(&text);
    let api = &config.upstreams[0];
    assert_eq!(api.policy, PolicyKind::Predictive);
    assert_eq!(api.prefer_region.as_deref(), Some("local"));
    assert_eq!(
        api.predictive,
        PredictiveWeights {
            load_weight: 2.0,
            cost_weight: 1.0,
            overload_threshold: 0.7
        }
    );
    assert_eq!(api.backends[1].region.as_deref(), Some("east"));
    assert_eq!(api.backends[1].cost, 0.4);
    assert_eq!(api.backends[0].cost, 0.0);

    let west = text.replace("prefer_region: local", "prefer_region: west");
    check(
        &west,
        &["augur.yaml:6:20: upstreams[0].prefer_region: no backend of this upstream is in region \"west\""],
    );
    let bad = text
        .replace("overload_threshold: 0.7", "overload_threshold: 1.0")
        .replace("cost: 0.4", "cost: -1");
    check_contains(
        &bad,
        &[
            "upstreams[0].predictive.overload_threshold: expected a number between 0 and 1, found 1",
            "upstreams[0].backends[1].cost: expected a number from 0 to 100, found -1",
        ],
    );
}

#[test]
fn predictor_settings_and_their_limits() {
    let base = format!("admin: {{ bind: 127.0.0.1:9901 }}\n{WEB_API}");
    let text = format!(
        "predictor: {{ tick: 50ms, horizon: 10s, lead: 500ms, keep_load_reports: true }}\n{base}"
    );
    let p = config(&text).predictor;
    assert_eq!(p.tick, Duration::from_millis(50));
    assert_eq!(p.horizon, Duration::from_secs(10));
    assert_eq!(p.lead, Duration::from_millis(500));
    assert_eq!(p.slow_start, Duration::from_secs(10));
    assert!(p.keep_load_reports);
    check_contains(
        &format!("predictor: {{ tick: 1ms }}\n{base}"),
        &["augur.yaml:1:20: predictor.tick: expected a duration from 10ms to 10s, found \"1ms\""],
    );
    let text = format!("predictor: {{ peers: [\"10.0.0.2:9901\", \"10.0.0.3:9901\"] }}\n{base}");
    let p = config(&text).predictor;
    assert_eq!(p.peers.len(), 2);
    for (peers, error) in [
        (
            "[10.0.0.2:9901, nowhere]",
            "augur.yaml:1:37: predictor.peers[1]: invalid socket address \"nowhere\"",
        ),
        (
            "[10.0.0.2:9901, 10.0.0.2:9901]",
            "augur.yaml:1:37: predictor.peers[1]: peer 10.0.0.2:9901 is listed twice",
        ),
        (
            "[10.0.0.2:9901, 127.0.0.1:9901]",
            "augur.yaml:1:37: predictor.peers[1]: 127.0.0.1:9901 is this instance's own admin listener",
        ),
    ] {
        let text = format!("predictor: {{ peers: {peers} }}\n{base}");
        check_contains(&text, &[error]);
    }
    check_contains(
        &format!("predictor: {{ lead: 20s }}\n{base}"),
        &["predictor: expected tick <= lead <= horizon"],
    );
}

#[test]
fn announced_events() {
    let base = WEB_API;
    let text = format!(
        "events:\n  - {{ upstream: api, start: \"2026-11-24T18:00:00Z\", end: \"2026-11-24T19:00:00Z\", multiplier: 3 }}\n{base}"
    );
    let events = config(&text).events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].multiplier, 3.0);
    assert_eq!(events[0].upstream.as_deref(), Some("api"));
    let bad = text
        .replace("19:00", "17:00")
        .replace("multiplier: 3", "multiplier: 0");
    check_contains(
        &bad,
        &[
            "events[0].end: expected an end after the start",
            "events[0].multiplier: expected a number above 0",
        ],
    );
    let bad = text.replace("2026-11-24T18:00:00Z", "tomorrow");
    check_contains(
        &bad,
        &["augur.yaml:2:29: events[0].start: expected an RFC 3339 time"],
    );
}

#[test]
fn health_checks_outlier_detection_and_retry_budget() {
    let text = format!(
        "{WEB_TO_API}    health_check:
      kind: http
      path: /healthz?deep=1
      expect: 200-299
      interval: 5s
      timeout: 500ms
      rise: 1
      fall: 10
    outlier_detection:
      consecutive_failures: 0
      base_ejection: 10s
      max_ejection: 10s
      max_ejection_percent: 100
    panic_threshold: 0
    retry_budget: {{ ratio: 0.5, min_per_second: 0 }}
    backends: [ {{ addr: 127.0.0.1:9001 }} ]
  - name: tcp
    health_check: {{}}
    outlier_detection: {{}}
    retry_budget: {{}}
    backends: [ {{ addr: 127.0.0.1:9002 }} ]
  - name: single
    health_check: {{ kind: http, expect: 204 }}
    panic_threshold: 1
    backends: [ {{ addr: 127.0.0.1:9003 }} ]
"
    );
    let config = config(&text);
    let [api, tcp, single] = &config.upstreams[..] else {
        panic!("{config:?}");
    };
    assert_eq!(
        api.health_check,
        Some(HealthCheck {
            kind: CheckKind::Http {
                path: "/healthz?deep=1".into(),
                expect: StatusRange {
                    low: 200,
                    high: 299
                },
            },
            interval: Duration::from_secs(5),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 10,
        })
    );
    assert_eq!(
        api.outlier_detection,
        OutlierDetection {
            consecutive_failures: 0,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(10),
            max_ejection_percent: 100,
        }
    );
    assert_eq!(api.panic_threshold, 0.0);
    assert_eq!(
        api.retry_budget,
        RetryBudget {
            ratio: 0.5,
            min_per_second: 0
        }
    );

    // Empty tables take every default; an empty `health_check` is a tcp check.
    assert_eq!(
        tcp.health_check,
        Some(HealthCheck {
            kind: CheckKind::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        })
    );
    assert_eq!(tcp.outlier_detection, OutlierDetection::default());
    assert_eq!(tcp.retry_budget, RetryBudget::default());
    assert_eq!(tcp.panic_threshold, 0.5);

    let Some(HealthCheck { kind, .. }) = &single.health_check else {
        panic!("{single:?}");
    };
    assert_eq!(
        kind,
        &CheckKind::Http {
            path: "/healthz".into(),
            expect: StatusRange {
                low: 204,
                high: 204
            },
        }
    );
    assert_eq!(single.panic_threshold, 1.0);
}

#[test]
fn status_ranges_are_written_as_one_status_or_two() {
    let expect = |value: &str| {
        let text = format!(
            "listeners: [ {{ name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: a }} ]
upstreams:
  - {{ name: a, health_check: {{ kind: http, expect: {value} }}, backends: [ {{ addr: 127.0.0.1:2 }} ] }}
"
        );
        let config = config(&text);
        match config.upstreams[0].health_check.as_ref().map(|h| &h.kind) {
            Some(CheckKind::Http { expect, .. }) => (expect.low, expect.high),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(expect("204"), (204, 204));
    assert_eq!(expect("'204'"), (204, 204));
    assert_eq!(expect("100-599"), (100, 599));
    assert_eq!(expect("\" 200 - 399 \""), (200, 399));
    assert_eq!(expect("301-301"), (301, 301));
    let range = StatusRange {
        low: 200,
        high: 399,
    };
    assert!(range.contains(200) && range.contains(399));
    assert!(!range.contains(199) && !range.contains(400));
}
