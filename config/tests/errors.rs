//! Every class of error names the right path, says what was expected and what was found,
//! and points at the exact line and column.

mod common;
use common::*;

/// Listener `db` forwarding to upstream `a`, and the start of `a` (lines 1-3).
const DB_TO_A: &str = "\
listeners: [ { name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: a } ]
upstreams:
  - name: a
";

/// A config text and exactly the error lines `augur check` prints for it, in order.
struct Case {
    /// The class of error, named when the case fails.
    what: &'static str,
    text: String,
    errors: &'static [&'static str],
}

/// One case per class of error; several where a class has several forms.
fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "bad socket address",
            text: format!(
                "{WEB_ROUTES}      - upstream: api
upstreams:
  - name: api
    backends:
      - addr: 127.0.0.1:9001
  - name: pg
    policy: least_conn
    backends:
      - addr: 10.0.0.1:80a
"
            ),
            errors: &["augur.yaml:14:15: upstreams[1].backends[0].addr: invalid socket address \"10.0.0.1:80a\": expected IP:PORT"],
        },
        Case {
            what: "unknown key suggests the nearest",
            text: format!("{UPSTREAMS}listeners:\n  - bnd: 127.0.0.1:8080\n"),
            errors: &["augur.yaml:5:5: listeners[0].bnd: unknown key `bnd`; did you mean `bind`?"],
        },
        Case {
            what: "unknown key in a flow mapping suggests the nearest",
            text: "listeners: [ { name: web, routes: [ { match: { hst: x } } ] } ]\n".into(),
            errors: &["augur.yaml:1:48: listeners[0].routes[0].match.hst: unknown key `hst`; did you mean `host`?"],
        },
        Case {
            what: "unknown key without a near one lists the keys",
            text: "colour: blue\n".into(),
            errors: &["augur.yaml:1:1: colour: unknown key `colour`; expected `server`, `admin`, `predictor`, `events`, `segments`, `segmentation`, `listeners`, `upstreams` or `tunnels`"],
        },
        Case {
            what: "unknown protocol suggests the nearest",
            text: format!("{UPSTREAMS}listeners:\n  - name: web\n    protocol: htp\n"),
            errors: &["augur.yaml:6:15: listeners[0].protocol: unknown value `htp`; did you mean `http`?"],
        },
        Case {
            what: "unknown upstream suggests the nearest",
            text: format!(
                "{UPSTREAMS}{WEB_ROUTES}      - upstream: apii
  - name: db
    bind: 127.0.0.1:15432
    protocol: tcp
    upstream: zzz
"
            ),
            errors: &[
                "augur.yaml:9:19: listeners[0].routes[0].upstream: no upstream named \"apii\"; did you mean \"api\"?",
                "augur.yaml:13:15: listeners[1].upstream: no upstream named \"zzz\"; defined upstreams are \"api\"",
            ],
        },
        Case {
            what: "bad durations say what was expected",
            text: format!(
                "{UPSTREAMS}  - name: pg
    connect_timeout: 5
    read_timeout: 0s
    idle_timeout: 1 fortnight
    write_timeout: 99999999999999999999999s
    backends: [ {{ addr: 127.0.0.1:5432 }} ]
listeners: [ {{ name: db, bind: 127.0.0.1:1, protocol: tcp, upstream: pg }} ]
server: {{ grace_period: soon }}
"
            ),
            errors: &[
                "augur.yaml:5:22: upstreams[1].connect_timeout: invalid duration \"5\": expected a number and a unit, like \"1s\", \"250ms\" or \"2m\"",
                "augur.yaml:6:19: upstreams[1].read_timeout: expected a timeout greater than zero, found \"0s\"",
                "augur.yaml:7:19: upstreams[1].idle_timeout: invalid duration \"1 fortnight\": expected a number and a unit, like \"1s\", \"250ms\" or \"2m\"",
                "augur.yaml:8:20: upstreams[1].write_timeout: invalid duration \"99999999999999999999999s\": expected at most a few centuries",
                "augur.yaml:11:25: server.grace_period: invalid duration \"soon\": expected a number and a unit, like \"1s\", \"250ms\" or \"2m\"",
            ],
        },
        Case {
            what: "duplicates and conflicting addresses",
            text: format!(
                "{UPSTREAMS}  - name: api
    backends: [ {{ addr: 127.0.0.1:9001 }}, {{ addr: 127.0.0.1:9001 }} ]
admin: {{ bind: 127.0.0.1:8080 }}
listeners:
  - {{ name: a, bind: 127.0.0.1:8080, protocol: tcp, upstream: api }}
  - {{ name: a, bind: 0.0.0.0:8080, protocol: tcp, upstream: api }}
"
            ),
            errors: &[
                "augur.yaml:4:11: upstreams[1].name: duplicate upstream name \"api\"; upstreams[0] has it too",
                "augur.yaml:5:51: upstreams[1].backends[1].addr: duplicate backend 127.0.0.1:9001; backends[0] has it too",
                "augur.yaml:6:16: admin.bind: admin address 127.0.0.1:8080 conflicts with listener \"a\" on 127.0.0.1:8080",
                "augur.yaml:9:13: listeners[1].name: duplicate listener name \"a\"; listeners[0] has it too",
                "augur.yaml:9:22: listeners[1].bind: address 0.0.0.0:8080 conflicts with listener \"a\" on 127.0.0.1:8080",
            ],
        },
        Case {
            what: "each protocol needs its keys and only those",
            text: format!(
                "{UPSTREAMS}listeners:
  - name: a
    bind: 127.0.0.1:1
    protocol: http
    upstream: api
    tls: {{ cert: c, key: k }}
  - name: b
    bind: 127.0.0.1:2
    protocol: tcp
    routes: []
    tls: {{ cert: c, key: k }}
  - name: c
    bind: 127.0.0.1:3
    protocol: https
    routes: []
  - name: d
    bind: 127.0.0.1:4
"
            ),
            errors: &[
                "augur.yaml:5:5: listeners[0]: missing required key `routes`; an http listener needs at least one route",
                "augur.yaml:8:15: listeners[0].upstream: `upstream` is only for tcp listeners; http and https listeners pick an upstream in each of their `routes`",
                "augur.yaml:9:10: listeners[0].tls: `tls` is only for https listeners; did you mean `protocol: https`?",
                "augur.yaml:10:5: listeners[1]: missing required key `upstream`; a tcp listener forwards to one upstream",
                "augur.yaml:13:13: listeners[1].routes: `routes` are only for http and https listeners; a tcp listener forwards every connection to its `upstream`",
                "augur.yaml:14:10: listeners[1].tls: `tls` is only for https listeners",
                "augur.yaml:15:5: listeners[2]: missing required key `tls`; an https listener needs a `cert` and a `key`",
                "augur.yaml:18:13: listeners[2].routes: expected at least one route, found none",
                "augur.yaml:19:5: listeners[3]: missing required key `protocol`; expected `http`, `https` or `tcp`",
            ],
        },
        Case {
            what: "upstreams and backends",
            text: format!(
                "{DB_TO_A}  - name: b
    backends: []
  - name: c
    retries: 11
    policy: least_conn
    backends:
      - {{ addr: 127.0.0.1:0, weight: 0 }}
      - {{ addr: 127.0.0.1:1, weight: 257 }}
      - {{ weight: 3 }}
  - backends: [ {{ addr: localhost:80 }} ]
"
            ),
            errors: &[
                "augur.yaml:3:5: upstreams[0]: missing required key `backends`; an upstream needs at least one backend",
                "augur.yaml:5:15: upstreams[1].backends: expected at least one backend, found none",
                "augur.yaml:7:14: upstreams[2].retries: expected a number from 0 to 10, found 11",
                "augur.yaml:10:17: upstreams[2].backends[0].addr: expected a port from 1 to 65535, found 127.0.0.1:0",
                "augur.yaml:10:38: upstreams[2].backends[0].weight: expected a number from 1 to 256, found 0",
                "augur.yaml:11:38: upstreams[2].backends[1].weight: expected a number from 1 to 256, found 257",
                "augur.yaml:12:9: upstreams[2].backends[2]: missing required key `addr`",
                "augur.yaml:13:5: upstreams[3]: missing required key `name`",
                "augur.yaml:13:25: upstreams[3].backends[0].addr: invalid socket address \"localhost:80\": expected IP:PORT",
            ],
        },
        Case {
            what: "route matches",
            text: format!(
                "{UPSTREAMS}{WEB_ROUTES}      - match: {{ host: api.example.com:8080, path_prefix: v1 }}
        upstream: api
      - match: {{ host: 'http://api.example.com' }}
        upstream: api
      - match: {{ host: '' }}
        upstream: api
      - match: {{ host: '[::1]', path_prefix: / }}
        upstream: api
      - match: {{ host: '[::1]:80' }}
        upstream: api
      - match: {{}}
"
            ),
            errors: &[
                "augur.yaml:9:24: listeners[0].routes[0].match.host: expected a host name without a port (routes match any port), found \"api.example.com:8080\"",
                "augur.yaml:9:59: listeners[0].routes[0].match.path_prefix: expected a path starting with \"/\", found \"v1\"",
                "augur.yaml:11:24: listeners[0].routes[1].match.host: expected a host name without a scheme, found \"http://api.example.com\"",
                "augur.yaml:13:24: listeners[0].routes[2].match.host: expected a host name, found an empty one",
                "augur.yaml:17:24: listeners[0].routes[4].match.host: expected a host name without a port (routes match any port), found \"[::1]:80\"",
                "augur.yaml:19:9: listeners[0].routes[5]: missing required key `upstream`",
            ],
        },
        Case {
            what: "server settings",
            text: format!(
                "server:
  threads: 0
  access_log: {{ format: text }}
  log_level: ''
{UPSTREAMS}listeners: []
"
            ),
            errors: &[
                "augur.yaml:2:12: server.threads: expected a number from 1 to 64, found 0",
                "augur.yaml:3:15: server.access_log: missing required key `path`",
                "augur.yaml:4:14: server.log_level: expected a non-empty value, found an empty one",
                "augur.yaml:8:12: listeners: expected at least one listener, found none",
            ],
        },
        Case {
            what: "too many server threads",
            text: format!("server: {{ threads: 65 }}\n{UPSTREAMS}listeners: []\n"),
            errors: &[
                "augur.yaml:1:20: server.threads: expected a number from 1 to 64, found 65",
                "augur.yaml:5:12: listeners: expected at least one listener, found none",
            ],
        },
        Case {
            what: "unknown access log format",
            text: "server: { access_log: { path: '-', format: xml } }\n".into(),
            errors: &["augur.yaml:1:44: server.access_log.format: unknown value `xml`; expected `json` or `text`"],
        },
        Case {
            what: "document without its required sections",
            text: "server: { threads: 2 }\n".into(),
            errors: &[
                "augur.yaml:1:1: missing required key `upstreams`",
                "augur.yaml:1:1: missing required key `listeners`",
            ],
        },
        Case {
            what: "empty document",
            text: String::new(),
            errors: &["augur.yaml:1:1: the file is empty; expected a mapping with `listeners` and `upstreams`"],
        },
        Case {
            what: "document that is not a mapping",
            text: "- a\n- b\n".into(),
            errors: &["augur.yaml:1:1: expected a mapping with `listeners` and `upstreams`, found sequence"],
        },
        Case {
            what: "duplicate top-level key",
            text: format!("{UPSTREAMS}upstreams: []\n"),
            errors: &["augur.yaml:4:1: upstreams: duplicate key `upstreams`"],
        },
        Case {
            what: "duplicate nested key",
            text: format!("{UPSTREAMS}listeners:\n  - name: a\n    name: b\n"),
            errors: &["augur.yaml:6:5: listeners[0].name: duplicate key `name`"],
        },
        Case {
            what: "string where a sequence belongs",
            text: format!("{UPSTREAMS}listeners:\n  - name: a\n    routes: yes\n"),
            errors: &["augur.yaml:6:13: listeners[0].routes: expected a sequence, found string \"yes\""],
        },
        Case {
            what: "string where an integer belongs",
            text: "upstreams: [ { name: a, backends: [ { addr: 127.0.0.1:1, weight: two } ] } ]\n"
                .into(),
            errors: &["augur.yaml:1:66: upstreams[0].backends[0].weight: expected an integer, found string \"two\""],
        },
        Case {
            what: "YAML syntax error",
            text: "listeners:\n  - name: web\n   bad: [\n".into(),
            errors: &["augur.yaml:3:4: listeners: did not find expected '-' indicator, while parsing a block collection at line 2 column 3"],
        },
        Case {
            what: "YAML indented with tabs",
            text: "listeners:\n\t- name: web\n".into(),
            errors: &["augur.yaml:2:1: listeners: found character that cannot start any token, while scanning for the next token; YAML is indented with spaces, not tabs"],
        },
        Case {
            what: "every semantic error, in file order",
            text: "\
listeners:
  - name: web
    bind: 127.0.0.1:80a
    protocol: http
    routes: [ { upstream: apii } ]
upstreams:
  - name: api
    retries: 99
    backends: [ { addr: 10.0.0.1, weight: 0 } ]
"
            .into(),
            errors: &[
                "augur.yaml:3:11: listeners[0].bind: invalid socket address \"127.0.0.1:80a\": expected IP:PORT",
                "augur.yaml:5:27: listeners[0].routes[0].upstream: no upstream named \"apii\"; did you mean \"api\"?",
                "augur.yaml:8:14: upstreams[0].retries: expected a number from 0 to 10, found 99",
                "augur.yaml:9:25: upstreams[0].backends[0].addr: invalid socket address \"10.0.0.1\": expected IP:PORT",
                "augur.yaml:9:43: upstreams[0].backends[0].weight: expected a number from 1 to 256, found 0",
            ],
        },
        Case {
            what: "health check values",
            text: format!(
                "{DB_TO_A}    health_check:
      kind: http
      interval: 2s
      timeout: 2s
      expect: 400-200
      rise: 0
      fall: 101
    backends: [ {{ addr: 127.0.0.1:2 }} ]
  - name: b
    health_check: {{ kind: tcp, path: /healthz, expect: 200 }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
  - name: c
    health_check: {{ path: /healthz }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
  - name: d
    health_check: {{ kind: http, path: healthz, expect: 700, interval: 5ms, timeout: 0s }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
  - name: e
    health_check: {{ kind: http, path: /a b, expect: ok, interval: 2h }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
  - name: f
    health_check: {{ interval: 500ms }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
"
            ),
            errors: &[
                "augur.yaml:7:16: upstreams[0].health_check.timeout: expected a timeout shorter than `interval` (2s), found \"2s\"",
                "augur.yaml:8:15: upstreams[0].health_check.expect: expected the lower status first, like 200-399, found \"400-200\"",
                "augur.yaml:9:13: upstreams[0].health_check.rise: expected a number from 1 to 100, found 0",
                "augur.yaml:10:13: upstreams[0].health_check.fall: expected a number from 1 to 100, found 101",
                "augur.yaml:13:38: upstreams[1].health_check.path: `path` is only for http checks; did you mean `kind: http`?",
                "augur.yaml:13:56: upstreams[1].health_check.expect: `expect` is only for http checks; did you mean `kind: http`?",
                "augur.yaml:16:27: upstreams[2].health_check.path: `path` is only for http checks; add `kind: http` (the default kind is tcp)",
                "augur.yaml:19:39: upstreams[3].health_check.path: expected a path starting with \"/\", found \"healthz\"",
                "augur.yaml:19:56: upstreams[3].health_check.expect: expected statuses from 100 to 599, found \"700\"",
                "augur.yaml:19:71: upstreams[3].health_check.interval: expected a duration from 10ms to 1h, found \"5ms\"",
                "augur.yaml:19:85: upstreams[3].health_check.timeout: expected a timeout greater than zero, found \"0s\"",
                "augur.yaml:22:39: upstreams[4].health_check.path: expected a path without spaces, control or non-ASCII characters (percent-encode them), found \"/a b\"",
                "augur.yaml:22:53: upstreams[4].health_check.expect: invalid status range \"ok\": expected a status like 204 or a range like 200-399",
                "augur.yaml:22:67: upstreams[4].health_check.interval: expected a duration from 10ms to 1h, found \"2h\"",
                "augur.yaml:25:31: upstreams[5].health_check.interval: expected an interval longer than `timeout` (1s by default), found \"500ms\"; set a shorter `timeout`",
            ],
        },
        Case {
            what: "unknown key under health_check",
            text: "upstreams:\n  - name: a\n    health_check:\n      kind: http\n      intervall: 2s\n"
                .into(),
            errors: &["augur.yaml:5:7: upstreams[0].health_check.intervall: unknown key `intervall`; did you mean `interval`?"],
        },
        Case {
            what: "unknown key under outlier_detection",
            text: "upstreams: [ { name: a, outlier_detection: { max_ejections: 1m } } ]\n".into(),
            errors: &["augur.yaml:1:46: upstreams[0].outlier_detection.max_ejections: unknown key `max_ejections`; did you mean `max_ejection`?"],
        },
        Case {
            what: "unknown key under retry_budget",
            text: "upstreams: [ { name: a, retry_budget: { zzz: 1 } } ]\n".into(),
            errors: &["augur.yaml:1:41: upstreams[0].retry_budget.zzz: unknown key `zzz`; expected `ratio` or `min_per_second`"],
        },
        Case {
            what: "unknown health check kind",
            text: "upstreams: [ { name: a, health_check: { kind: icmp } } ]\n".into(),
            errors: &["augur.yaml:1:47: upstreams[0].health_check.kind: unknown value `icmp`; expected `tcp` or `http`"],
        },
        Case {
            what: "panic threshold written as a percentage",
            text: "upstreams: [ { name: a, panic_threshold: 50% } ]\n".into(),
            errors: &["augur.yaml:1:42: upstreams[0].panic_threshold: expected a number, found string \"50%\""],
        },
        Case {
            what: "outlier detection, panic threshold and retry budget values",
            text: format!(
                "{DB_TO_A}    outlier_detection:
      consecutive_failures: 1001
      base_ejection: 1m
      max_ejection: 30s
      max_ejection_percent: 101
    panic_threshold: 1.5
    retry_budget: {{ ratio: 11, min_per_second: -1 }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
  - name: b
    outlier_detection: {{ base_ejection: 0s, max_ejection: 2d }}
    panic_threshold: -0.1
    retry_budget: {{ ratio: .nan, min_per_second: 10001 }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
  - name: c
    outlier_detection: {{ base_ejection: 10m }}
    backends: [ {{ addr: 127.0.0.1:2 }} ]
"
            ),
            errors: &[
                "augur.yaml:5:29: upstreams[0].outlier_detection.consecutive_failures: expected a number from 0 to 1000, found 1001",
                "augur.yaml:7:21: upstreams[0].outlier_detection.max_ejection: expected a duration no shorter than `base_ejection` (1m), found \"30s\"",
                "augur.yaml:8:29: upstreams[0].outlier_detection.max_ejection_percent: expected a number from 0 to 100, found 101",
                "augur.yaml:9:22: upstreams[0].panic_threshold: expected a number from 0 to 1, found 1.5",
                "augur.yaml:10:28: upstreams[0].retry_budget.ratio: expected a number from 0 to 10, found 11",
                "augur.yaml:10:48: upstreams[0].retry_budget.min_per_second: expected a number from 0 to 10000, found -1",
                "augur.yaml:13:41: upstreams[1].outlier_detection.base_ejection: expected a duration from 1ms to 1h, found \"0s\"",
                "augur.yaml:13:59: upstreams[1].outlier_detection.max_ejection: expected a duration from 1ms to 1day, found \"2d\"",
                "augur.yaml:14:22: upstreams[1].panic_threshold: expected a number from 0 to 1, found -0.1",
                "augur.yaml:15:28: upstreams[1].retry_budget.ratio: expected a number from 0 to 10, found NaN",
                "augur.yaml:15:50: upstreams[1].retry_budget.min_per_second: expected a number from 0 to 10000, found 10001",
                "augur.yaml:18:41: upstreams[2].outlier_detection.base_ejection: expected a duration no longer than `max_ejection` (5m by default), found \"10m\"; set a longer `max_ejection`",
            ],
        },
        Case {
            what: "idle_timeout is for tcp listeners and within bounds",
            text: format!(
                "\
listeners:
  - {{ name: web, bind: 127.0.0.1:8080, protocol: http, idle_timeout: 5m, routes: [ {{ upstream: api }} ] }}
  - {{ name: db, bind: 127.0.0.1:5432, protocol: tcp, upstream: api, idle_timeout: 10ms }}
{UPSTREAMS}"
            ),
            errors: &[
                "augur.yaml:2:70: listeners[0].idle_timeout: `idle_timeout` is only for tcp listeners; for http ones see the upstream's `read_timeout`",
                "augur.yaml:3:83: listeners[1].idle_timeout: expected a duration from 1s to 7days, found \"10ms\"",
            ],
        },
    ]
}

#[test]
fn each_case_fails_with_exactly_its_error_lines() {
    let mut failed = Vec::new();
    for case in cases() {
        let found = errors(&case.text);
        if found != case.errors {
            failed.push(format!(
                "{}:\n  expected {:#?}\n  found {found:#?}",
                case.what, case.errors
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn tls_files_must_be_readable_pem() {
    let dir = std::env::temp_dir().join(format!("augur-config-{}-tls", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let cert = dir.join("cert.pem");
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let text = format!(
        "{UPSTREAMS}listeners:
  - name: a
    bind: 127.0.0.1:1
    protocol: https
    tls: {{ cert: {not_pem}, key: {not_pem} }}
    routes: [ {{ upstream: api }} ]
  - name: b
    bind: 127.0.0.1:2
    protocol: https
    tls: {{ cert: {cert} }}
    routes: [ {{ upstream: api }} ]
  - name: c
    bind: 127.0.0.1:3
    protocol: https
    tls: {{ cert: {dir}, key: {dir}/missing.key }}
    routes: [ {{ upstream: api }} ]
",
        not_pem = not_pem.display(),
        cert = cert.display(),
        dir = dir.display(),
    );
    let found = errors(&text);
    let not_pem = not_pem.display();
    let key_column = 18 + format!("{not_pem}, key: ").len();
    let shown_dir = dir.display();
    let missing_column = 18 + format!("{shown_dir}, key: ").len();
    assert_eq!(found.len(), 5, "{found:#?}");
    assert_eq!(
        found[0],
        format!("augur.yaml:8:18: listeners[0].tls.cert: \"{not_pem}\" is not a PEM certificate: expected a \"-----BEGIN CERTIFICATE-----\" line")
    );
    assert_eq!(
        found[1],
        format!("augur.yaml:8:{key_column}: listeners[0].tls.key: \"{not_pem}\" is not a PEM private key: expected a \"-----BEGIN PRIVATE KEY-----\" line")
    );
    assert_eq!(
        found[2],
        "augur.yaml:13:10: listeners[1].tls: missing required key `key`"
    );
    assert_eq!(
        found[3],
        format!("augur.yaml:18:18: listeners[2].tls.cert: cannot read certificate file \"{shown_dir}\": not a regular file")
    );
    assert!(
        found[4].starts_with(&format!(
            "augur.yaml:18:{missing_column}: listeners[2].tls.key: cannot read private key file \"{shown_dir}/missing.key\": "
        )),
        "{}",
        found[4]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_never_echo_the_file() {
    let long = "x".repeat(5_000);
    for text in [
        format!("listeners: [ {{ name: web, bind: \"{long}\" }} ]\nupstreams: []\n"),
        format!("listeners: \"{long}\"\n"),
        format!("{long}: 1\n"),
    ] {
        for line in errors(&text) {
            assert!(line.len() < 400, "{line}");
        }
    }
}

#[test]
fn upstream_names_are_plain_and_warmups_at_most_an_hour() {
    let text = format!(
        "{WEB_TO_API}    backends: [ {{ addr: 127.0.0.1:9001, capacity: 4, standby: true, warmup: 2h }} ]
  - name: \"tab\\tname\"
    backends: [ {{ addr: 127.0.0.1:9002 }} ]
"
    );
    let found = errors(&text);
    assert!(
        found.iter().any(|e| e.starts_with("augur.yaml:5:")
            && e.contains("upstreams[0].backends[0].warmup: expected a duration from 0s to 1h")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|e| e.starts_with("augur.yaml:6:")
            && e.contains("upstreams[1].name: upstream name")
            && e.contains("control characters")),
        "{found:?}"
    );
}

#[test]
fn an_upstream_with_standby_backends_needs_every_capacity() {
    let text = format!(
        "{WEB_TO_API}    backends:
      - {{ addr: 127.0.0.1:9001 }}
      - {{ addr: 127.0.0.1:9002, capacity: 4, standby: true }}
"
    );
    let found = errors(&text);
    assert!(
        found.iter().any(|e| e.starts_with("augur.yaml:6:")
            && e.contains("upstreams[0].backends[0]: missing required key `capacity`")),
        "{found:?}"
    );
}
