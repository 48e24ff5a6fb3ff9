//! What the config tests share: parsing a text as `augur.yaml` and reading its errors the way
//! `augur check` prints them, and the diff of a config against an edited copy of itself.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use augur_config::{diff, parse, Backend, Change, Config};

/// The smallest complete config: listener `web` routes everything to upstream `api`.
pub const WEB_API: &str = "\
listeners:
  - { name: web, bind: 127.0.0.1:8080, protocol: http, routes: [ { upstream: api } ] }
upstreams:
  - { name: api, backends: [ { addr: 127.0.0.1:9001 } ] }
";

/// A valid `upstreams:` section to complete listener-only examples (lines 1-3).
pub const UPSTREAMS: &str = "\
upstreams:
  - name: api
    backends: [ { addr: 127.0.0.1:9001 } ]
";

/// The opening of http listener `web` (lines 1-5): its routes follow, indented six spaces.
pub const WEB_ROUTES: &str = "\
listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    routes:
";

/// Listener `web` routing everything to upstream `api`, and the start of `api` (lines 1-4):
/// its keys follow, indented four spaces.
pub const WEB_TO_API: &str = "\
listeners:
  - { name: web, bind: 127.0.0.1:8080, protocol: http, routes: [ { upstream: api } ] }
upstreams:
  - name: api
";

/// `text` parsed as `augur.yaml`; panics with the errors if it is refused.
#[track_caller]
pub fn config(text: &str) -> Config {
    parse(text, "augur.yaml").unwrap_or_else(|errors| panic!("{errors}"))
}

/// The error lines for `text`, as `augur check` prints them; panics if it parses.
#[track_caller]
pub fn errors(text: &str) -> Vec<String> {
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
pub fn check(text: &str, expected: &[&str]) {
    assert_eq!(errors(text), expected);
}

/// Asserts that `text` fails, and that its errors, one a line, contain each of `wanted`.
#[track_caller]
pub fn check_contains(text: &str, wanted: &[&str]) {
    let errors = errors(text).join("\n");
    for wanted in wanted {
        assert!(errors.contains(wanted), "{wanted:?} not in:\n{errors}");
    }
}

/// The changes from `base` to a copy of it edited by `edit`.
pub fn changes_after(base: &Config, edit: impl FnOnce(&mut Config)) -> Vec<Change> {
    let mut new = base.clone();
    edit(&mut new);
    diff(base, &new)
}

/// A backend at `addr` with every optional key at its default.
pub fn backend(addr: &str, weight: u32) -> Backend {
    Backend {
        addr: addr.parse().unwrap(),
        weight,
        region: None,
        cost: 0.0,
        capacity: None,
        standby: false,
        warmup: Duration::from_secs(10),
        via: None,
    }
}
