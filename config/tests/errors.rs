//! Every class of error names the right path, says what was expected and what was found,
//! and points at the exact line and column.

use augur_config::parse;

/// The error lines for `text`, as `augur check` prints them.
fn errors(text: &str) -> Vec<String> {
    match parse(text, "augur.yaml") {
        Ok(config) => panic!("parsed, but should not have: {config:?}"),
        Err(errors) => {
            assert!(!errors.0.is_empty());
            errors.0.iter().map(ToString::to_string).collect()
        }
    }
}

/// Asserts that `text` fails with exactly `expected`, in order.
#[track_caller]
fn check(text: &str, expected: &[&str]) {
    assert_eq!(errors(text), expected);
}

/// A valid `upstreams:` section to complete listener-only examples (lines 1-3).
const UPSTREAMS: &str = "\
upstreams:
  - name: api
    backends: [ { addr: 127.0.0.1:9001 } ]
";

#[test]
fn bad_socket_address() {
    let text = "\
listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    routes:
      - upstream: api
upstreams:
  - name: api
    backends:
      - addr: 127.0.0.1:9001
  - name: pg
    policy: least_conn
    backends:
      - addr: 10.0.0.1:80a
";
    check(
        text,
        &["augur.yaml:14:15: upstreams[1].backends[0].addr: invalid socket address \"10.0.0.1:80a\": expected IP:PORT"],
    );
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let text = format!("{UPSTREAMS}listeners:\n  - bnd: 127.0.0.1:8080\n");
    check(
        &text,
        &["augur.yaml:5:5: listeners[0].bnd: unknown key `bnd`; did you mean `bind`?"],
    );
    let text = "listeners: [ { name: web, routes: [ { match: { hst: x } } ] } ]\n";
    check(
        text,
        &["augur.yaml:1:48: listeners[0].routes[0].match.hst: unknown key `hst`; did you mean `host`?"],
    );
    check(
        "colour: blue\n",
        &["augur.yaml:1:1: colour: unknown key `colour`; expected `server`, `admin`, `listeners` or `upstreams`"],
    );
}

#[test]
fn unknown_protocol_suggests_the_nearest() {
    let text = format!("{UPSTREAMS}listeners:\n  - name: web\n    protocol: htp\n");
    check(
        &text,
        &["augur.yaml:6:15: listeners[0].protocol: unknown value `htp`; did you mean `http`?"],
    );
}

#[test]
fn unknown_upstream_suggests_the_nearest() {
    let text = format!(
        "{UPSTREAMS}listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    routes:
      - upstream: apii
  - name: db
    bind: 127.0.0.1:15432
    protocol: tcp
    upstream: zzz
"
    );
    check(
        &text,
        &[
            "augur.yaml:9:19: listeners[0].routes[0].upstream: no upstream named \"apii\"; did you mean \"api\"?",
            "augur.yaml:13:15: listeners[1].upstream: no upstream named \"zzz\"; defined upstreams are \"api\"",
        ],
    );
}
