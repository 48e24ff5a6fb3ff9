//! Micro-segmentation: allow-lists enforced at accept (HTTP, HTTPS, TCP, IPv4 and IPv6),
//! per-route narrowing, audit and learn modes, revocation on reload, and a flood of denied
//! connections. Clients bind 127.0.0.2, .3, .4 (and ::1) to play hosts of different networks.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::support::*;

const OFFICE: &str = "127.0.0.2";
const MONITORING: &str = "127.0.0.3";
const STRANGER: &str = "127.0.0.4";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("valid address")
}

/// A TCP connection to `dst` from the local address `src`.
fn connect_from(src: &str, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let src = ip(src);
    let socket = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(src, 0).into())?;
    socket.connect_timeout(&dst.into(), Duration::from_secs(5))?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// Writes one keep-alive GET on `conn`.
fn send_get(conn: &mut TcpStream, path: &str, extra: &str) -> std::io::Result<()> {
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// One GET from `src` on a new connection.
fn get_from(src: &str, addr: SocketAddr, path: &str, extra: &str) -> std::io::Result<Response> {
    let mut conn = connect_from(src, addr)?;
    send_get(&mut conn, path, &format!("Connection: close\r\n{extra}"))?;
    read_response(&mut BufReader::new(conn))
}

/// Whether the server has closed `conn` without sending a byte: EOF or a reset. Panics if
/// it sent something, or if nothing happened within the read timeout.
fn closed_without_a_byte(mut conn: TcpStream, what: &str) {
    let mut buf = [0u8; 256];
    match conn.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "{what}: the server sent {n} bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) => {}
        Err(e) => panic!("{what}: expected the connection closed at accept, got {e}"),
    }
}

/// Connects from `src` and expects the connection closed before any byte, whether the client
/// stays silent or sends a request.
fn assert_refused(src: &str, addr: SocketAddr, what: &str) {
    let silent = connect_from(src, addr).expect("the kernel completes the handshake");
    closed_without_a_byte(silent, &format!("{what} (silent client)"));
    let mut talking = connect_from(src, addr).expect("the kernel completes the handshake");
    // The write may already meet the closed socket; what matters is that nothing comes back.
    let _ = send_get(&mut talking, "/", "");
    closed_without_a_byte(talking, &format!("{what} (client sending a request)"));
}

/// The value of one sample line of `/metrics`, 0 when absent.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn connections(listener: &str, segment: &str, decision: &str) -> String {
    format!(
        "augur_segment_connections_total{{listener=\"{listener}\",segment=\"{segment}\",decision=\"{decision}\"}}"
    )
}

/// Waits until a metrics sample reaches `at_least`.
fn wait_metric(augur: &Augur, series: &str, at_least: u64) -> u64 {
    let what = format!("{series} >= {at_least}");
    eventually(
        &what,
        || sample(&augur.metrics(), series),
        |v| *v >= at_least,
    )
}

/// Waits until augur's log has a line containing `text`; returns the log.
fn wait_logged(augur: &Augur, text: &str) -> String {
    let what = format!("a log line with {text:?}");
    eventually(&what, || augur.log(), |log| log.contains(text))
}

/// HTTPS GET through curl from `src`; returns (curl succeeded, stdout).
fn curl_from(src: &str, cert: &std::path::Path, addr: SocketAddr) -> (bool, String) {
    let out = curl_https(
        cert,
        addr,
        "/tls",
        &["--max-time", "10", "--interface", src],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// An echo round trip on a relayed connection.
fn echo(conn: &mut TcpStream, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    conn.write_all(payload)?;
    let mut got = vec![0u8; payload.len()];
    conn.read_exact(&mut got)?;
    Ok(got)
}

#[test]
fn segments_are_enforced_at_accept_on_http_https_tcp_and_both_families() {
    let b = Backend::start("b");
    let echo_addr = echo_server();
    let (cert_path, key_path) = tls_cert(&temp_dir("segments-tls"));
    let [web, tls, db] = [(); 3].map(|_| loopback());
    let dual = SocketAddr::new(ip("::"), free_port());
    let only_office = "[office]";
    let augur = Augur::start(
        "segments-accept",
        &Config::new()
            .segment(
                "office",
                &[&format!("{OFFICE}/32"), "::1/128", "10.1.0.0/16"],
            )
            .segment("monitoring", &[MONITORING])
            .segment("lab", &[STRANGER])
            .listener(
                Listener::http("web", web)
                    .with("allow", "[office, monitoring]")
                    .route(Route::to("u").path("/admin").with("allow", only_office))
                    .route(Route::to("u")),
            )
            .listener(
                Listener::https("tls", tls, &cert_path, &key_path)
                    .with("allow", only_office)
                    .route(Route::to("u")),
            )
            .listener(Listener::tcp("db", db, "echo").with("allow", only_office))
            .listener(
                Listener::http("dual", dual)
                    .with("allow", only_office)
                    .route(Route::to("u")),
            )
            .upstream(Upstream::new("u", &[b.addr]))
            .upstream(Upstream::new("echo", &[echo_addr])),
    );

    // HTTP: both allowed segments are served; a host in no allowed segment is closed at
    // accept, before a byte is read or written.
    for src in [OFFICE, MONITORING] {
        let r = get_from(src, web, "/hello", "").expect("allowed source served");
        assert_eq!(r.status, 200, "{src}: {}", r.text());
    }
    assert_refused(STRANGER, web, "http from a denied source");
    assert_refused("127.0.0.1", web, "http from a source in no segment");

    // Per-route narrowing: /admin is for the office only. X-Forwarded-For does not help.
    assert_eq!(get_from(OFFICE, web, "/admin/x", "").unwrap().status, 200);
    let r = get_from(MONITORING, web, "/admin/x", "").unwrap();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("403 Forbidden"), "{}", r.text());
    let r = get_from(
        MONITORING,
        web,
        "/admin/x",
        &format!("X-Forwarded-For: {OFFICE}\r\n"),
    )
    .unwrap();
    assert_eq!(r.status, 403, "X-Forwarded-For must not be trusted");

    // HTTPS: the gate runs before the handshake; a denied client never sees a TLS byte.
    let (ok, out) = curl_from(OFFICE, &cert_path, tls);
    assert!(ok && out.ends_with("200"), "office over https: {out}");
    let (ok, out) = curl_from(STRANGER, &cert_path, tls);
    assert!(!ok, "a denied source completed a TLS request: {out}");
    assert_refused(MONITORING, tls, "https from a denied source");

    // TCP: relayed for the office, closed at accept for everyone else.
    let mut conn = connect_from(OFFICE, db).unwrap();
    assert_eq!(echo(&mut conn, b"ping").unwrap(), b"ping");
    drop(conn);
    assert_refused(MONITORING, db, "tcp from a denied source");

    // Both families on one dual-stack socket: ::1 by its IPv6 rule, and 127.0.0.2 (which
    // the socket sees as ::ffff:127.0.0.2) by its IPv4 rule.
    let v6 = SocketAddr::new(ip("::1"), dual.port());
    let v4 = SocketAddr::new(ip("127.0.0.1"), dual.port());
    assert_eq!(get_from("::1", v6, "/", "").unwrap().status, 200);
    assert_eq!(get_from(OFFICE, v4, "/", "").unwrap().status, 200);
    assert_refused(STRANGER, v4, "IPv4-mapped source outside the allow list");

    // Counted per listener and segment; the route's own counter too.
    let m = augur.metrics();
    assert!(
        sample(&m, &connections("web", "office", "allow")) >= 2,
        "{m}"
    );
    assert_eq!(
        sample(&m, &connections("web", "monitoring", "allow")),
        3,
        "{m}"
    );
    assert_eq!(sample(&m, &connections("web", "lab", "deny")), 2, "{m}");
    assert!(sample(&m, &connections("web", "", "deny")) >= 2, "{m}");
    assert_eq!(
        sample(&m, &connections("tls", "monitoring", "deny")),
        2,
        "{m}"
    );
    assert_eq!(
        sample(&m, &connections("db", "monitoring", "deny")),
        2,
        "{m}"
    );
    assert_eq!(sample(&m, &connections("dual", "lab", "deny")), 2, "{m}");
    let route = "augur_segment_route_requests_total{listener=\"web\",route=\"0\"";
    assert_eq!(
        sample(&m, &format!("{route},decision=\"deny\"}}")),
        2,
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("{route},decision=\"allow\"}}")),
        1,
        "{m}"
    );
    assert!(
        !m.contains(&connections("db", "lab", "deny")),
        "all-zero rows are left out"
    );

    // /status says which listeners use which segment, and how.
    let s = augur.status();
    let seg = &s["segmentation"];
    assert_eq!(seg["segments"][0]["name"], "office");
    assert_eq!(
        seg["segments"][0]["listeners"],
        serde_json::json!(["web", "tls", "db", "dual"])
    );
    assert_eq!(seg["segments"][1]["listeners"], serde_json::json!(["web"]));
    assert_eq!(seg["listeners"][0]["mode"], "enforce");
    assert_eq!(
        seg["listeners"][0]["allow"],
        serde_json::json!(["office", "monitoring"])
    );
    assert!(seg["listeners"][0]["connections"]["denied"].as_u64() >= Some(4));

    // Denials are logged with their fields (rate-limited; a handful here).
    let log = wait_logged(&augur, "segment denial");
    assert!(log.contains(STRANGER), "{log}");
}

#[test]
fn audit_mode_lets_sources_through_and_counts_would_deny() {
    let b = Backend::start("b");
    let web = loopback();
    let augur = Augur::start(
        "segments-audit",
        &Config::new()
            .segment("office", &[OFFICE])
            .segment("lab", &[STRANGER])
            .listener(
                Listener::http("web", web)
                    .with("allow", "[office]")
                    .with("segment_mode", "audit")
                    .route(Route::to("u")),
            )
            .upstream(Upstream::new("u", &[b.addr])),
    );
    for _ in 0..3 {
        assert_eq!(get_from(STRANGER, web, "/", "").unwrap().status, 200);
    }
    assert_eq!(get_from(OFFICE, web, "/", "").unwrap().status, 200);
    let m = augur.metrics();
    assert_eq!(
        sample(&m, &connections("web", "lab", "would_deny")),
        3,
        "{m}"
    );
    assert_eq!(sample(&m, &connections("web", "lab", "deny")), 0, "{m}");
    assert_eq!(sample(&m, &connections("web", "office", "allow")), 1, "{m}");
    assert_eq!(
        augur.status()["segmentation"]["listeners"][0]["mode"],
        "audit"
    );
    wait_logged(&augur, "would_deny");
}

#[test]
fn learned_segments_pasted_and_reloaded_admit_the_observed_sources_only() {
    let b = Backend::start("b");
    let echo_addr = echo_server();
    let web = loopback();
    let db = loopback();
    // The listeners' own keys and the `segments:` block are YAML as augur suggests them.
    let config = |segments: &str, web_keys: &str, db_keys: &str| {
        Config::new()
            .section(segments)
            .listener(
                Listener::http("web", web)
                    .lines(web_keys)
                    .route(Route::to("u").path("/api"))
                    .route(Route::to("u")),
            )
            .listener(Listener::tcp("db", db, "echo").lines(db_keys))
            .upstream(Upstream::new("u", &[b.addr]))
            .upstream(Upstream::new("echo", &[echo_addr]))
    };
    let learn = "    segment_mode: learn\n";
    let augur = Augur::start("segments-learn", &config("", learn, learn));
    // Two networks use the HTTP listener, one the TCP listener; nothing is refused.
    for _ in 0..3 {
        assert_eq!(get_from(OFFICE, web, "/api/v1", "").unwrap().status, 200);
    }
    assert_eq!(get_from("127.0.2.2", web, "/", "").unwrap().status, 200);
    let mut conn = connect_from("127.0.5.5", db).unwrap();
    assert_eq!(echo(&mut conn, b"hi").unwrap(), b"hi");
    drop(conn);

    // The CLI asks the admin listener, and prints the same as GET /segments/suggest.
    let suggest = || {
        let (code, out, err) =
            augur_cmd(&["segments", "suggest", "-c", augur.config.to_str().unwrap()]);
        assert_eq!(code, 0, "augur segments suggest: {err}");
        out
    };
    let suggestion = eventually("the flows to be recorded", suggest, |out| {
        out.contains("127.0.2.0/24") && out.contains("127.0.5.0/24")
    });
    let r = get(augur.admin, "localhost", "/segments/suggest");
    assert_eq!(r.status, 200);
    assert_eq!(r.text().trim(), suggestion.trim());
    assert!(suggestion.contains("127.0.0.0/24"), "{suggestion}");
    assert!(
        suggestion.contains("route 0: 3"),
        "flows count per route: {suggestion}"
    );

    // Paste it: the `segments:` block at the top level, each listener's lines into it.
    let start = suggestion.find("segments:\n").expect("a segments block");
    let end = suggestion.find("listeners:\n").expect("a listeners block");
    let segments = &suggestion[start..end];
    let lines_of = |listener: &str| -> String {
        let lines = suggestion[end..]
            .lines()
            .skip_while(|l| *l != format!("  - name: {listener}"))
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        assert!(lines.contains("allow:"), "{listener}: {suggestion}");
        lines
    };
    augur.write_config(&config(segments, &lines_of("web"), &lines_of("db")));
    let (code, out, _) = augur_cmd(&["check", "-c", augur.config.to_str().unwrap()]);
    assert_eq!(code, 0, "the pasted suggestion is a valid config: {out}");
    let r = augur.reload();
    assert_eq!(r.status, 200, "{}", r.text());

    assert_eq!(get_from(OFFICE, web, "/api/v1", "").unwrap().status, 200);
    assert_eq!(get_from("127.0.2.2", web, "/", "").unwrap().status, 200);
    assert_refused("127.0.3.2", web, "a network learn mode never saw");
    let mut conn = connect_from("127.0.5.9", db).unwrap();
    assert_eq!(echo(&mut conn, b"hi").unwrap(), b"hi");
    drop(conn);
    assert_refused("127.0.3.2", db, "a network never seen on the TCP listener");
}

#[test]
fn reload_revokes_live_keepalive_connections_and_tcp_relays_of_dropped_networks() {
    let b = Backend::start("b");
    // Long enough for the reload to happen while a request waits on it.
    let slow = Backend::start_with_delay("slow", Duration::from_secs(2));
    let echo_addr = echo_server();
    let web = loopback();
    let db = loopback();
    let config = |allow: &str| {
        let allow = format!("[{allow}]");
        Config::new()
            .segment("office", &[OFFICE])
            .segment("monitoring", &[MONITORING])
            .listener(
                Listener::http("web", web)
                    .with("allow", &allow)
                    .route(Route::to("slow").path("/slow"))
                    .route(Route::to("u")),
            )
            .listener(Listener::tcp("db", db, "echo").with("allow", &allow))
            .upstream(Upstream::new("u", &[b.addr]))
            .upstream(Upstream::new("slow", &[slow.addr]))
            .upstream(Upstream::new("echo", &[echo_addr]))
    };
    let augur = Augur::start("segments-revoke", &config("office, monitoring"));
    // Live keep-alive HTTP connections from both networks: idle ones, and one from the
    // dropped network whose request is in flight during the reload.
    let keep_alive = |src: &str| {
        let mut conn = connect_from(src, web).unwrap();
        send_get(&mut conn, "/", "").unwrap();
        let mut reader = BufReader::new(conn);
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, 200);
        reader
    };
    let mut office_idle = keep_alive(OFFICE);
    let mut monitoring_idle = keep_alive(MONITORING);
    let mut monitoring_busy = keep_alive(MONITORING);
    send_get(monitoring_busy.get_mut(), "/slow", "").unwrap();
    // In flight at the backend: past the per-request checks, waiting for its answer.
    eventually(
        "the slow request at its backend",
        || augur.status()["upstreams"][1]["backends"][0]["in_flight"].clone(),
        |n| *n == 1,
    );
    let mut relays: Vec<TcpStream> = [OFFICE, MONITORING]
        .into_iter()
        .map(|src| {
            let mut conn = connect_from(src, db).unwrap();
            assert_eq!(echo(&mut conn, b"before").unwrap(), b"before");
            conn
        })
        .collect();

    augur.write_config(&config("office"));
    let r = augur.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let reloaded = Instant::now();

    // The monitoring relay is closed within a second or so; the office relay carries on.
    let mut buf = [0u8; 16];
    relays[1]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match relays[1].read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the revoked relay should have been closed, got {other:?}"),
    }
    let closed_after = reloaded.elapsed();
    assert!(
        closed_after < Duration::from_millis(2500),
        "revoked relay closed after {closed_after:?}"
    );
    assert_eq!(echo(&mut relays[0], b"after").unwrap(), b"after");

    // The idle monitoring keep-alive connection is closed without another request.
    let idle = monitoring_idle.get_mut();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match idle.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the idle revoked connection should have been closed, got {other:?}"),
    }
    // The one with a request in flight gets its answer, then is closed.
    let r = read_response(&mut monitoring_busy).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut rest = Vec::new();
    let _ = monitoring_busy.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing after the last answer");
    // The office connection is served as before.
    send_get(office_idle.get_mut(), "/", "").unwrap();
    assert_eq!(read_response(&mut office_idle).unwrap().status, 200);
    // New connections from the dropped network are closed at accept.
    assert_refused(MONITORING, web, "http after the reload");
    assert_refused(MONITORING, db, "tcp after the reload");
    let m = augur.metrics();
    assert_eq!(
        sample(&m, "augur_segment_revoked_total{listener=\"web\"}"),
        2,
        "{m}"
    );
    assert_eq!(
        sample(&m, "augur_segment_revoked_total{listener=\"db\"}"),
        1,
        "{m}"
    );
    for conn in &relays {
        let _ = conn.shutdown(Shutdown::Both);
    }
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `n` connects from `src`, each waiting for the server to close it, spread over threads.
fn flood(src: &'static str, addr: SocketAddr, n: usize) -> usize {
    let threads = 4;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut refused = 0;
                for _ in 0..n / threads {
                    let Ok(mut conn) = connect_from(src, addr) else {
                        continue;
                    };
                    let mut byte = [0u8; 1];
                    if matches!(conn.read(&mut byte), Ok(0) | Err(_)) {
                        refused += 1;
                    }
                    // A reset, not a FIN: no TIME_WAIT left behind on either side.
                    let _ = Socket::from(conn).set_linger(Some(Duration::ZERO));
                }
                refused
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn a_flood_of_denied_connects_neither_starves_allowed_clients_nor_grows_memory() {
    let b = Backend::start("b");
    let web = loopback();
    let augur = Augur::start(
        "segments-flood",
        &Config::new()
            .segment("office", &[OFFICE])
            .listener(
                Listener::http("web", web)
                    .with("allow", "[office]")
                    .route(Route::to("u")),
            )
            .upstream(Upstream::new("u", &[b.addr])),
    );
    let up = Instant::now();
    // Warm up (allocator arenas, worker buffers), then take the baseline.
    assert_eq!(flood(STRANGER, web, 2_000), 2_000);
    for _ in 0..50 {
        assert_eq!(get_from(OFFICE, web, "/", "").unwrap().status, 200);
    }
    let before = rss_kib(augur.pid());

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let allowed = std::thread::spawn(move || {
        let (mut ok, mut failures) = (0u64, Vec::new());
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            match get_from(OFFICE, web, "/", "") {
                Ok(r) if r.status == 200 => ok += 1,
                Ok(r) => failures.push(format!("status {}", r.status)),
                Err(e) => failures.push(e.to_string()),
            }
        }
        (ok, failures)
    });
    let started = Instant::now();
    let refused = flood(STRANGER, web, 20_000);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failures) = allowed.join().unwrap();

    assert_eq!(refused, 20_000, "every denied connect was closed");
    assert!(failures.is_empty(), "allowed client failed: {failures:?}");
    assert!(ok > 0, "the allowed client was served during the flood");
    wait_metric(&augur, &connections("web", "", "deny"), 22_000);
    let after = rss_kib(augur.pid());
    let growth = after.saturating_sub(before);
    assert!(
        growth < 20 * 1024,
        "RSS grew by {growth} KiB over 20,000 denied connects ({before} -> {after} KiB)"
    );
    // The log got at most 10 lines a second (the listener's budget), not one per denial.
    let lines = augur.log().matches("segment denial").count();
    let budget = 10 * (up.elapsed().as_secs() as usize + 2);
    assert!(
        lines <= budget,
        "{lines} denial log lines for 22,000 denials in {:?}",
        up.elapsed()
    );
    eprintln!(
        "flood: 20,000 denied connects in {took:?}; allowed client served {ok} requests; \
         RSS {before} -> {after} KiB; {lines} log lines"
    );
}
