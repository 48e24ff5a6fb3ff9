//! HTTP and HTTPS proxying: routing, forwarding headers, retries, errors, HTTP/2.

use crate::support::*;

#[test]
fn routes_by_host_and_path_and_forwards_headers() {
    let [api, web, admin_b] = ["api", "web", "admin-b"].map(Backend::start);
    let addr = loopback();
    let augur = Augur::start(
        "routes",
        &Config::new()
            .listener(
                Listener::http("web", addr)
                    .route(Route::to("api").host("api.example.com").path("/v1"))
                    .route(Route::to("admin").path("/admin"))
                    .route(Route::to("web")),
            )
            .upstream(Upstream::new("api", &[api.addr]))
            .upstream(Upstream::new("admin", &[admin_b.addr]))
            .upstream(Upstream::new("web", &[web.addr])),
    );
    let r = get(addr, "api.example.com", "/v1/users");
    assert_eq!((r.status, backend_of(&r).as_str()), (200, "api"));
    let body = r.json();
    assert_eq!(body["host"], "api.example.com", "Host is passed through");
    assert_eq!(body["x_forwarded_for"], "127.0.0.1");
    assert_eq!(body["x_forwarded_proto"], "http");
    assert_eq!(body["path"], "/v1/users");
    // Host matching ignores case and port.
    assert_eq!(backend_of(&get(addr, "API.example.com:8080", "/v1")), "api");
    // Same path, other host: falls through to the catch-all.
    assert_eq!(
        backend_of(&get(addr, "www.example.com", "/v1/users")),
        "web"
    );
    assert_eq!(
        backend_of(&get(addr, "api.example.com", "/admin/x")),
        "admin-b"
    );
    // An existing X-Forwarded-For is appended to.
    let r = request(
        addr,
        "GET",
        "/",
        "x",
        &[("X-Forwarded-For", "203.0.113.9")],
        b"",
    );
    assert_eq!(r.json()["x_forwarded_for"], "203.0.113.9, 127.0.0.1");
    eventually(
        "api's two requests counted",
        || augur.status()["upstreams"][0]["backends"][0]["requests"].clone(),
        |n| *n == 2,
    );
}

#[test]
fn unmatched_request_gets_404() {
    let b = Backend::start("b");
    let addr = loopback();
    let augur = Augur::start(
        "unrouted",
        &Config::new()
            .listener(Listener::http("web", addr).route(Route::to("u").path("/only")))
            .upstream(Upstream::new("u", &[b.addr])),
    );
    let r = get(addr, "x", "/other");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no route"));
    let unrouted = "augur_listener_unrouted_total{listener=\"web\"} 1";
    eventually(
        "the unrouted request counted",
        || augur.metrics(),
        |m| m.contains(unrouted),
    );
}

#[test]
fn request_bodies_are_streamed_through() {
    let b = Backend::start("b");
    let addr = loopback();
    let _augur = Augur::start("body", &Config::web(addr, Upstream::new("u", &[b.addr])));
    let body = vec![b'z'; 5 * 1024 * 1024];
    let r = request(addr, "POST", "/upload", "x", &[], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], 5 * 1024 * 1024);
    // And a large response comes back whole.
    let r = get(addr, "x", "/?size=3000000");
    assert_eq!(r.body.len(), 3_000_000);
}

#[test]
fn refused_connections_are_retried_on_another_backend() {
    let live = Backend::start("live");
    let dead1 = dead_addr();
    let dead2 = dead_addr();
    let addr = loopback();
    let upstream = Upstream::new("u", &[dead1, live.addr, dead2])
        .with("policy", "round_robin")
        .with("retries", 2);
    let augur = Augur::start("retry", &Config::web(addr, upstream));
    for _ in 0..30 {
        let r = get(addr, "x", "/");
        assert_eq!((r.status, backend_of(&r).as_str()), (200, "live"));
    }
    let metrics = augur.metrics();
    let retries: u64 = metrics
        .lines()
        .find(|l| l.starts_with("augur_upstream_retries_total{upstream=\"u\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("retries metric");
    assert!(
        retries >= 20,
        "two of three backends refuse: most requests needed a retry, saw {retries}"
    );
    assert!(metrics.contains(&format!(
        "augur_backend_connect_failures_total{{upstream=\"u\",backend=\"{dead1}\"}}"
    )));
    // Retries give back every in-flight slot they took.
    let slots = || {
        let status = augur.status();
        let backends = status["upstreams"][0]["backends"]
            .as_array()
            .unwrap()
            .iter();
        let slots: Vec<u64> = backends.map(|b| b["in_flight"].as_u64().unwrap()).collect();
        (slots, status["in_flight"].clone())
    };
    eventually(
        "every in-flight slot given back",
        slots,
        |(slots, total)| slots == &[0, 0, 0] && *total == 0,
    );
}

#[test]
fn all_backends_down_gives_502_and_a_slow_backend_gives_504() {
    let slow = Backend::start_with_delay("slow", std::time::Duration::from_millis(2000));
    let addr = loopback();
    let config = Config::new()
        .listener(
            Listener::http("web", addr)
                .route(Route::to("slow").path("/slow"))
                .route(Route::to("dead")),
        )
        .upstream(Upstream::new("dead", &[dead_addr(), dead_addr()]).with("retries", 1))
        .upstream(Upstream::new("slow", &[slow.addr]).with("read_timeout", "200ms"));
    let _augur = Augur::start("down", &config);
    let r = get(addr, "x", "/");
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("no backend could be reached"),
        "{}",
        r.text()
    );
    let started = std::time::Instant::now();
    let r = get(addr, "x", "/slow");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "read_timeout is enforced"
    );
}

#[test]
fn https_with_http1_and_http2() {
    let b = Backend::start("b");
    let addr = loopback();
    let (cert, key) = tls_cert(&temp_dir("tls-certs"));
    let _augur = Augur::start(
        "https",
        &Config::new()
            .listener(Listener::https("tls", addr, &cert, &key).route(Route::to("u")))
            .upstream(Upstream::new("u", &[b.addr])),
    );
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = curl_https(&cert, addr, "/secure", &[flag]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "curl {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.ends_with(&format!("{version} 200")),
            "curl {flag}: {text}"
        );
        assert!(text.contains("\"x_forwarded_proto\":\"https\""), "{text}");
        assert!(text.contains("\"path\":\"/secure\""), "{text}");
    }
}

#[test]
fn access_log_writes_one_json_line_per_request() {
    let b = Backend::start("b");
    let addr = loopback();
    let log = temp_dir("accesslog-file").join("access.log");
    let _augur = Augur::start(
        "accesslog",
        &Config::new()
            .server(
                "access_log",
                format!("{{ path: {}, format: json }}", log.display()),
            )
            .listener(Listener::http("web", addr).route(Route::to("u").path("/api")))
            .upstream(Upstream::new("u", &[b.addr])),
    );
    assert_eq!(get(addr, "example.com", "/api/one").status, 200);
    assert_eq!(get(addr, "example.com", "/nowhere").status, 404);
    let lines = eventually(
        "both requests in the access log",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON line"));
            lines.collect::<Vec<serde_json::Value>>()
        },
        |lines| lines.len() >= 2,
    );
    let api = lines
        .iter()
        .find(|l| l["path"] == "/api/one")
        .expect("the /api request is logged");
    assert_eq!(api["status"], 200);
    assert_eq!(api["upstream"], "u");
    assert_eq!(api["backend"], b.addr.to_string());
    assert_eq!(api["host"], "example.com");
    assert_eq!(api["listener"], "web");
    let unrouted = lines
        .iter()
        .find(|l| l["path"] == "/nowhere")
        .expect("the 404 is logged");
    assert_eq!(unrouted["status"], 404);
}

/// A client that leaves mid-request is not logged as an error (Pingora's ERROR line for it
/// is demoted), and the request is still accounted for.
#[test]
fn a_client_leaving_mid_request_is_not_an_error() {
    use std::io::Write;
    let slow = Backend::start_with_delay("slow-leave", std::time::Duration::from_millis(300));
    let addr = loopback();
    let augur = Augur::start(
        "client-leaves",
        &Config::web(addr, Upstream::new("u", &[slow.addr])),
    );
    for _ in 0..3 {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        drop(conn);
    }
    eventually(
        "the abandoned requests to finish",
        || {
            let status = augur.status();
            let done = status["upstreams"][0]["backends"][0]["requests"].clone();
            (status["in_flight"].clone(), done)
        },
        |(in_flight, done)| *in_flight == 0 && done.as_u64() >= Some(3),
    );
    let log = augur.log();
    assert!(!log.contains("ERROR"), "{log}");
}
