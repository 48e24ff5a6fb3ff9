//! `diff` finds each kind of change, and knows which ones a reload cannot apply.

use std::time::Duration;

use augur_config::*;

mod common;
use common::*;

const BASE: &str = "\
admin: { bind: 127.0.0.1:9901 }
listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    routes:
      - match: { path_prefix: /v1 }
        upstream: api
      - upstream: api
  - name: db
    bind: 127.0.0.1:15432
    protocol: tcp
    upstream: pg
upstreams:
  - name: api
    backends:
      - addr: 127.0.0.1:9001
      - addr: 127.0.0.1:9002
        weight: 2
  - name: pg
    backends: [ { addr: 127.0.0.1:5432 } ]
";

fn base() -> Config {
    parse(BASE, "augur.yaml").unwrap()
}

/// The changes from `base()` to `base()` edited by `edit`.
fn changes(edit: impl FnOnce(&mut Config)) -> Vec<Change> {
    changes_after(&base(), edit)
}

fn addr(text: &str) -> std::net::SocketAddr {
    text.parse().unwrap()
}

fn routes(config: &mut Config, listener: usize) -> &mut Vec<Route> {
    match &mut config.listeners[listener].kind {
        ListenerKind::Http { routes } | ListenerKind::Https { routes, .. } => routes,
        ListenerKind::Tcp { .. } => panic!("tcp listener has no routes"),
    }
}

#[test]
fn identical_configs_have_no_changes() {
    assert_eq!(diff(&base(), &base()), []);
}

#[test]
fn upstream_changes() {
    let added = changes(|c| {
        let mut cache = c.upstreams[1].clone();
        cache.name = "cache".into();
        c.upstreams.push(cache);
    });
    assert_eq!(added, [Change::UpstreamAdded("cache".into())]);

    // Removing an upstream shifts indices; routes are compared by upstream name, so only
    // the listener that really lost its upstream changes.
    let removed = changes(|c| {
        c.upstreams.remove(0);
        *routes(c, 0) = vec![Route {
            host: None,
            path_prefix: None,
            upstream: 0,
            allow: None,
        }];
        c.listeners[1].kind = ListenerKind::Tcp {
            upstream: 0,
            idle_timeout: Duration::from_secs(3600),
        };
    });
    assert_eq!(
        removed,
        [
            Change::RoutesChanged {
                listener: "web".into()
            },
            Change::UpstreamRemoved("api".into()),
        ]
    );

    let edited = changes(|c| {
        let api = &mut c.upstreams[0];
        api.policy = PolicyKind::LeastConn;
        api.read_timeout = Duration::from_secs(5);
        api.retries = 0;
    });
    assert_eq!(
        edited,
        [
            Change::PolicyChanged {
                upstream: "api".into(),
                from: PolicyKind::Predictive,
                to: PolicyKind::LeastConn
            },
            Change::TimeoutsChanged {
                upstream: "api".into()
            },
            Change::RetriesChanged {
                upstream: "api".into(),
                from: 2,
                to: 0
            },
        ]
    );
}

#[test]
fn health_and_retry_budget_changes() {
    let check = HealthCheck {
        kind: CheckKind::Tcp,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
    };
    let found = changes(|c| {
        let api = &mut c.upstreams[0];
        api.health_check = Some(check.clone());
        api.outlier_detection.consecutive_failures = 0;
        api.panic_threshold = 0.0;
        api.retry_budget.ratio = 1.0;
    });
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "upstream api health_check changed",
            "upstream api outlier_detection changed",
            "upstream api panic_threshold changed",
            "upstream api retry_budget changed",
        ]
    );
    assert_eq!(
        found[0],
        Change::UpstreamSettingChanged {
            upstream: "api".into(),
            setting: UpstreamSetting::HealthCheck
        }
    );
    assert!(found.iter().all(|c| !c.needs_new_process()));

    // Editing a check is a change too, and only the edited upstream is named.
    let mut old = base();
    old.upstreams[1].health_check = Some(check.clone());
    let mut new = base();
    new.upstreams[1].health_check = Some(HealthCheck { fall: 5, ..check });
    assert_eq!(
        diff(&old, &new),
        [Change::UpstreamSettingChanged {
            upstream: "pg".into(),
            setting: UpstreamSetting::HealthCheck
        }]
    );
}

#[test]
fn health_settings_parsed_the_same_are_no_change() {
    // Defaults written out equal defaults left out.
    let explicit = BASE.replace(
        "  - name: pg\n",
        "  - name: pg\n    outlier_detection: { consecutive_failures: 5, max_ejection: 5m }\n    panic_threshold: 0.5\n    retry_budget: { ratio: 0.2 }\n",
    );
    assert_ne!(explicit, BASE);
    assert_eq!(diff(&base(), &parse(&explicit, "augur.yaml").unwrap()), []);
}

#[test]
fn backend_changes() {
    let found = changes(|c| {
        let backends = &mut c.upstreams[0].backends;
        backends.remove(0);
        backends[0].weight = 3;
        backends.push(backend("127.0.0.1:9003", 1));
    });
    assert_eq!(
        found,
        [
            Change::BackendRemoved {
                upstream: "api".into(),
                addr: addr("127.0.0.1:9001")
            },
            Change::BackendWeightChanged {
                upstream: "api".into(),
                addr: addr("127.0.0.1:9002"),
                from: 2,
                to: 3
            },
            Change::BackendAdded {
                upstream: "api".into(),
                addr: addr("127.0.0.1:9003")
            },
        ]
    );
    // Reordering backends changes nothing.
    assert_eq!(changes(|c| c.upstreams[0].backends.reverse()), []);
}

#[test]
fn listener_changes() {
    let found = changes(|c| {
        c.listeners[0].bind = addr("127.0.0.1:8081");
        routes(c, 0).pop();
        c.listeners[1].name = "postgres".into();
        c.listeners.push(Listener {
            name: "admin-ish".into(),
            bind: addr("127.0.0.1:7000"),
            kind: ListenerKind::Tcp {
                upstream: 0,
                idle_timeout: Duration::from_secs(3600),
            },
            allow: None,
            segment_mode: SegmentMode::Enforce,
        });
    });
    assert_eq!(
        found,
        [
            Change::ListenerRemoved("db".into()),
            Change::ListenerRebound {
                name: "web".into(),
                from: addr("127.0.0.1:8080"),
                to: addr("127.0.0.1:8081")
            },
            Change::RoutesChanged {
                listener: "web".into()
            },
            Change::ListenerAdded("postgres".into()),
            Change::ListenerAdded("admin-ish".into()),
        ]
    );
    let tcp_target = changes(|c| {
        c.listeners[1].kind = ListenerKind::Tcp {
            upstream: 0,
            idle_timeout: Duration::from_secs(3600),
        }
    });
    assert_eq!(
        tcp_target,
        [Change::RoutesChanged {
            listener: "db".into()
        }]
    );
    let idle = changes(|c| {
        if let ListenerKind::Tcp { idle_timeout, .. } = &mut c.listeners[1].kind {
            *idle_timeout = Duration::from_secs(5);
        }
    });
    assert_eq!(
        idle,
        [Change::IdleTimeoutChanged {
            listener: "db".into()
        }]
    );
    assert!(!idle[0].needs_new_process());
}

#[test]
fn protocol_and_tls_changes() {
    let tls = |cert: &str| Tls {
        cert: cert.into(),
        key: "server.key".into(),
    };
    let to_https = |c: &mut Config, cert: &str| {
        let routes = routes(c, 0).clone();
        c.listeners[0].kind = ListenerKind::Https {
            tls: tls(cert),
            routes,
        };
    };
    assert_eq!(
        changes(|c| to_https(c, "a.pem")),
        [Change::ListenerProtocolChanged { name: "web".into() }]
    );
    let mut old = base();
    to_https(&mut old, "a.pem");
    let mut new = base();
    to_https(&mut new, "b.pem");
    routes(&mut new, 0)[0].host = Some("example.com".into());
    assert_eq!(
        diff(&old, &new),
        [
            Change::TlsChanged {
                listener: "web".into()
            },
            Change::RoutesChanged {
                listener: "web".into()
            },
        ]
    );
}

#[test]
fn server_and_admin_changes() {
    let found = changes(|c| {
        c.server.threads = 4;
        c.server.grace_period = Duration::from_secs(1);
        c.server.upgrade_sock = "/run/augur.sock".into();
        c.server.pid_file = "/run/augur.pid".into();
        c.server.log_level = "debug".into();
        c.server.access_log = Some(AccessLog {
            path: "-".into(),
            format: AccessLogFormat::Text,
        });
        c.admin = None;
    });
    let settings = [
        ServerSetting::Threads,
        ServerSetting::GracePeriod,
        ServerSetting::UpgradeSock,
        ServerSetting::PidFile,
        ServerSetting::LogLevel,
        ServerSetting::AccessLog,
    ];
    let mut expected: Vec<Change> = settings
        .into_iter()
        .map(Change::ServerSettingChanged)
        .collect();
    expected.push(Change::AdminChanged {
        from: Some(addr("127.0.0.1:9901")),
        to: None,
    });
    assert_eq!(found, expected);
}

#[test]
fn predictor_peers_change_live_and_other_predictor_settings_do_not() {
    let found = changes(|c| c.predictor.peers = vec![addr("10.0.0.2:9901")]);
    assert_eq!(found, vec![Change::PeersChanged]);
    assert!(!found[0].needs_new_process());
    let found = changes(|c| c.predictor.horizon = Duration::from_secs(9));
    assert_eq!(found, vec![Change::PredictorChanged]);
    assert!(found[0].needs_new_process());
}

#[test]
fn only_socket_changes_need_an_upgrade() {
    let name = || "x".to_owned();
    let a = addr("127.0.0.1:1");
    let b = addr("127.0.0.1:2");
    let needs_upgrade = [
        Change::ServerSettingChanged(ServerSetting::Threads),
        Change::ServerSettingChanged(ServerSetting::UpgradeSock),
        Change::AdminChanged {
            from: Some(a),
            to: Some(b),
        },
        Change::AdminChanged {
            from: None,
            to: Some(b),
        },
        Change::ListenerAdded(name()),
        Change::ListenerRemoved(name()),
        Change::ListenerRebound {
            name: name(),
            from: a,
            to: b,
        },
        Change::ListenerProtocolChanged { name: name() },
        Change::TlsChanged { listener: name() },
    ];
    let reloadable = [
        Change::ServerSettingChanged(ServerSetting::GracePeriod),
        Change::ServerSettingChanged(ServerSetting::PidFile),
        Change::ServerSettingChanged(ServerSetting::LogLevel),
        Change::ServerSettingChanged(ServerSetting::AccessLog),
        Change::RoutesChanged { listener: name() },
        Change::UpstreamAdded(name()),
        Change::UpstreamRemoved(name()),
        Change::PolicyChanged {
            upstream: name(),
            from: PolicyKind::RoundRobin,
            to: PolicyKind::LeastConn,
        },
        Change::TimeoutsChanged { upstream: name() },
        Change::RetriesChanged {
            upstream: name(),
            from: 1,
            to: 2,
        },
        Change::UpstreamSettingChanged {
            upstream: name(),
            setting: UpstreamSetting::HealthCheck,
        },
        Change::UpstreamSettingChanged {
            upstream: name(),
            setting: UpstreamSetting::OutlierDetection,
        },
        Change::UpstreamSettingChanged {
            upstream: name(),
            setting: UpstreamSetting::PanicThreshold,
        },
        Change::UpstreamSettingChanged {
            upstream: name(),
            setting: UpstreamSetting::RetryBudget,
        },
        Change::BackendAdded {
            upstream: name(),
            addr: a,
        },
        Change::BackendRemoved {
            upstream: name(),
            addr: a,
        },
        Change::BackendWeightChanged {
            upstream: name(),
            addr: a,
            from: 1,
            to: 2,
        },
    ];
    for change in &needs_upgrade {
        assert!(change.needs_new_process(), "{change}");
    }
    for change in &reloadable {
        assert!(!change.needs_new_process(), "{change}");
    }
}

#[test]
fn changes_read_as_short_lines() {
    let shown: Vec<String> = changes(|c| {
        c.upstreams[0].policy = PolicyKind::LeastConn;
        c.upstreams[0].backends[1].weight = 5;
        c.listeners[0].bind = addr("127.0.0.1:8081");
        c.server.threads = 2;
    })
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        shown,
        [
            "server.threads changed",
            "listener web moved from 127.0.0.1:8080 to 127.0.0.1:8081",
            "upstream api policy changed from predictive to least_conn",
            "backend 127.0.0.1:9002 of upstream api weight changed from 2 to 5",
        ]
    );
}
