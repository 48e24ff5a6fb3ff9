//! HTTP and HTTPS proxying: routing, forwarding headers, retries, errors, HTTP/2.

use std::net::SocketAddr;
use std::process::Command;

use crate::support::*;

fn listener_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn routes_by_host_and_path_and_forwards_headers() {
    let api = Backend::start("api");
    let web = Backend::start("web");
    let admin_b = Backend::start("admin-b");
    let addr = listener_addr();
    let augur = Augur::start(
        "routes",
        &format!(
            "listeners:
  - name: web
    bind: {addr}
    protocol: http
    routes:
      - match: {{ host: api.example.com, path_prefix: /v1 }}
        upstream: api
      - match: {{ path_prefix: /admin }}
        upstream: admin
      - upstream: web
upstreams:
  - name: api
    backends: [ {{ addr: {} }} ]
  - name: admin
    backends: [ {{ addr: {} }} ]
  - name: web
    backends: [ {{ addr: {} }} ]
",
            api.addr, admin_b.addr, web.addr
        ),
        &[addr],
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
    eventually("api's two requests counted", || {
        (augur.status()["upstreams"][0]["backends"][0]["requests"] == 2).then_some(())
    });
}

#[test]
fn unmatched_request_gets_404() {
    let b = Backend::start("b");
    let addr = listener_addr();
    let augur = Augur::start(
        "unrouted",
        &format!(
            "listeners:
  - name: web
    bind: {addr}
    protocol: http
    routes: [ {{ match: {{ path_prefix: /only }}, upstream: u }} ]
upstreams:
  - name: u
    backends: [ {{ addr: {} }} ]
",
            b.addr
        ),
        &[addr],
    );
    let r = get(addr, "x", "/other");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no route"));
    eventually("the unrouted request counted", || {
        augur
            .metrics()
            .contains("augur_listener_unrouted_total{listener=\"web\"} 1")
            .then_some(())
    });
}

#[test]
fn request_bodies_are_streamed_through() {
    let b = Backend::start("b");
    let addr = listener_addr();
    let _augur = Augur::start("body", &one_upstream(addr, "", &[b.addr]), &[addr]);
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
    let addr = listener_addr();
    let augur = Augur::start(
        "retry",
        &one_upstream(
            addr,
            "policy: round_robin, retries: 2, ",
            &[dead1, live.addr, dead2],
        ),
        &[addr],
    );
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = augur.status();
        let slots: Vec<u64> = status["upstreams"][0]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["in_flight"].as_u64().unwrap())
            .collect();
        if slots == [0, 0, 0] && status["in_flight"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "in-flight slots leaked: {slots:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn all_backends_down_gives_502_and_a_slow_backend_gives_504() {
    let slow = Backend::start_with_delay("slow", std::time::Duration::from_millis(2000));
    let addr = listener_addr();
    let _augur = Augur::start(
        "down",
        &format!(
            "listeners:
  - name: web
    bind: {addr}
    protocol: http
    routes:
      - {{ match: {{ path_prefix: /slow }}, upstream: slow }}
      - {{ upstream: dead }}
upstreams:
  - name: dead
    retries: 1
    backends: [ {{ addr: {} }}, {{ addr: {} }} ]
  - name: slow
    read_timeout: 200ms
    backends: [ {{ addr: {} }} ]
",
            dead_addr(),
            dead_addr(),
            slow.addr
        ),
        &[addr],
    );
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
    let addr = listener_addr();
    let dir = temp_dir("tls-certs");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::write(dir.join("server.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), cert.key_pair.serialize_pem()).unwrap();
    let _augur = Augur::start(
        "https",
        &format!(
            "listeners:
  - name: tls
    bind: {addr}
    protocol: https
    tls: {{ cert: {}, key: {} }}
    routes: [ {{ upstream: u }} ]
upstreams:
  - {{ name: u, backends: [ {{ addr: {} }} ] }}
",
            dir.join("server.pem").display(),
            dir.join("server.key").display(),
            b.addr
        ),
        &[addr],
    );
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(dir.join("server.pem"))
            .args([
                flag,
                "--resolve",
                &format!("localhost:{}:127.0.0.1", addr.port()),
            ])
            .args(["-w", "\n%{http_version} %{http_code}"])
            .arg(format!("https://localhost:{}/secure", addr.port()))
            .output()
            .expect("curl");
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
    let addr = listener_addr();
    let augur = Augur::start_with(
        "accesslog",
        |dir| format!("  access_log: {{ path: {}, format: json }}\n", dir.join("access.log").display()),
        &format!(
            "listeners:
  - {{ name: web, bind: {addr}, protocol: http, routes: [ {{ match: {{ path_prefix: /api }}, upstream: u }} ] }}
upstreams:
  - {{ name: u, backends: [ {{ addr: {} }} ] }}
",
            b.addr
        ),
        &[addr],
    );
    assert_eq!(get(addr, "example.com", "/api/one").status, 200);
    assert_eq!(get(addr, "example.com", "/nowhere").status, 404);
    let path = augur.dir.join("access.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "access log has {} lines",
            lines.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
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
    let addr = listener_addr();
    let augur = Augur::start(
        "client-leaves",
        &one_upstream(addr, "", &[slow.addr]),
        &[addr],
    );
    for _ in 0..3 {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        drop(conn);
    }
    eventually("the abandoned requests to finish", || {
        let status = augur.status();
        let done = status["upstreams"][0]["backends"][0]["requests"].as_u64();
        (status["in_flight"] == 0 && done >= Some(3)).then_some(())
    });
    let log = augur.log();
    assert!(!log.contains("ERROR"), "{log}");
}
