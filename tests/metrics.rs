//! `/metrics` is valid Prometheus text whatever the names in the config say: checked by the
//! Prometheus project's own `promtool check metrics`, and by reading the escaped names back.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::support::{
    eventually, free_port, get, run_with_stdin, Augur, Backend, Config, Listener, Route, Upstream,
};

/// An upstream and a listener named with a double quote and a backslash (the config allows
/// both) are escaped in every family, so the scrape still parses.
#[test]
fn metrics_escape_quotes_and_backslashes_in_names() {
    let backend = Backend::start("m1");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // Single-quoted YAML: the backslashes reach the config as written.
    let upstream_name = "'we\"ird\\name'";
    let config = Config::new()
        .listener(Listener::http("'edge \"1\" \\ x'", addr).route(Route::to(upstream_name)))
        .upstream(Upstream::new(upstream_name, &[backend.addr]));
    let augur = Augur::start("metrics-escaping", &config);
    assert_eq!(get(addr, "localhost", "/").status, 200);
    let listener =
        "augur_listener_requests_total{listener=\"edge \\\"1\\\" \\\\ x\",class=\"2xx\"} 1\n";
    let text = eventually(
        "the request counted",
        || augur.metrics(),
        |text| text.contains(listener),
    );
    let upstream = "upstream=\"we\\\"ird\\\\name\"";
    for line in [
        format!(
            "augur_backend_requests_total{{{upstream},backend=\"{}\",class=\"2xx\"}} 1\n",
            backend.addr
        ),
        format!("augur_upstream_request_duration_seconds_count{{{upstream}}} 1\n"),
        format!("augur_upstream_retries_total{{{upstream}}} 0\n"),
    ] {
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
    families_are_whole(&text);
    promtool_check(&text);
}

/// Each family's HELP and TYPE come once, first, and its samples follow without another
/// family's lines in between.
fn families_are_whole(text: &str) {
    let mut seen = HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(seen.insert(name.to_owned()), "family {name} written twice");
            current = name.to_owned();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            assert_eq!(
                words.next(),
                Some(current.as_str()),
                "TYPE apart from HELP: {line}"
            );
            let kind = words.next().unwrap_or_default();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| *f == current))
            .unwrap_or(name);
        assert_eq!(family, current, "sample outside its family: {line}");
    }
}

/// `promtool check metrics` accepts the document. Its only complaint allowed is the one
/// about the `_ms` names, which dashboards depend on and which therefore stay.
fn promtool_check(text: &str) {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output();
    assert!(
        found.is_ok(),
        "promtool not found: scripts/prereqs.sh installs it (Debian package prometheus)"
    );
    let (code, out, err) = run_with_stdin("promtool", &["check", "metrics"], text);
    let problems: Vec<&str> = out
        .lines()
        .chain(err.lines())
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !(l.split(' ').next().is_some_and(|n| n.ends_with("_ms"))
                && l.ends_with("metric names should not contain abbreviated units"))
        })
        .collect();
    // 3: lint findings only (the text parsed); anything else is a parse failure.
    assert!(
        (code == 0 || code == 3) && problems.is_empty(),
        "promtool exit {code}: {problems:?}\n{text}"
    );
}
