//! Tunnels between two real augur processes over loopback UDP: one plays the remote data
//! centre (it terminates the tunnel and forwards to its local backends), the other dials
//! backends through it with `via:`.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// A private key file (mode 600) written with `augur keygen`; returns its public key.
pub fn keypair(dir: &Path, name: &str) -> String {
    let (code, private, err) = augur_cmd(&["keygen"]);
    assert_eq!(code, 0, "{err}");
    let path = dir.join(name);
    std::fs::write(&path, &private).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, public, err) = run_with_stdin(AUGUR, &["pubkey"], &private);
    assert_eq!(code, 0, "{err}");
    public
}

/// A UDP port free on loopback just now (for a tunnel's listen port).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The remote data centre: an augur that terminates tunnel `dc` on `udp` (address
/// 10.20.1.10) and forwards port 8080 to `http_backend` and 9000 to `tcp_backend`.
struct Remote {
    augur: Augur,
    public: String,
}

fn remote(
    test: &str,
    dir: &Path,
    udp: u16,
    peer_public: &str,
    http: SocketAddr,
    tcp: SocketAddr,
) -> Remote {
    let public = match std::fs::read_to_string(dir.join("remote.key")) {
        Ok(private) => run_with_stdin(AUGUR, &["pubkey"], &private).1,
        Err(_) => keypair(dir, "remote.key"),
    };
    let key = dir.join("remote.key");
    let tunnel = Tunnel::new("dc", &key, "10.20.1.10", peer_public, "10.20.255.1/32")
        .with("listen_port", udp)
        .forward(8080, http)
        .forward(9000, tcp);
    let config = Config::web(loopback(), Upstream::new("local", &[http])).tunnel(tunnel);
    let augur = Augur::start(&format!("{test}-remote"), &config);
    Remote { augur, public }
}

/// The near side's `api` upstream: the far backend, 10.20.1.10:8080 through `dc-east`.
fn far_api() -> Upstream {
    Upstream::new("api", &[])
        .with("policy", "round_robin")
        .with("connect_timeout", "2s")
        .backend("10.20.1.10:8080", "via: dc-east")
}

/// The near side: tunnel `dc-east` to the remote's `udp` (key `local.key` in `dir`), an HTTP
/// listener `http` to upstream `api`, and a TCP listener `tcp` to 10.20.1.10:9000.
fn near_config(
    dir: &Path,
    udp: u16,
    remote_public: &str,
    api: &Upstream,
    (http, tcp): (SocketAddr, SocketAddr),
) -> Config {
    let key = dir.join("local.key");
    let tunnel = Tunnel::new(
        "dc-east",
        &key,
        "10.20.255.1",
        remote_public,
        "10.20.0.0/16",
    )
    // A host name, resolved at start.
    .peer_with("endpoint", format!("localhost:{udp}"))
    .peer_with("persistent_keepalive", "5s");
    let pg = Upstream::new("pg", &[]).backend("10.20.1.10:9000", "via: dc-east");
    Config::web(http, api.clone())
        .tunnel(tunnel)
        .listener(Listener::tcp("db", tcp, "pg"))
        .upstream(pg)
}

/// Two augurs joined by a tunnel: the remote one forwards to `far_http` and `far_tcp`, the
/// near one sends `api` (HTTP) and `pg` (TCP) through it.
struct Link {
    dir: PathBuf,
    udp: u16,
    local_public: String,
    far_http: SocketAddr,
    far_tcp: SocketAddr,
    far: Option<Remote>,
    near: Augur,
    /// The near side's HTTP and TCP listeners.
    http: SocketAddr,
    tcp: SocketAddr,
}

impl Link {
    fn start(test: &str, far_http: SocketAddr, far_tcp: SocketAddr, api: &Upstream) -> Link {
        Link::start_dialing(test, far_http, far_tcp, api, None)
    }

    /// [`Link::start`], the near side first dialing `dial` instead of the remote's port.
    fn start_dialing(
        test: &str,
        far_http: SocketAddr,
        far_tcp: SocketAddr,
        api: &Upstream,
        dial: Option<u16>,
    ) -> Link {
        let udp = free_udp_port();
        let dir = temp_dir(&format!("{test}-keys"));
        let local_public = keypair(&dir, "local.key");
        let far = remote(test, &dir, udp, &local_public, far_http, far_tcp);
        let listeners = (loopback(), loopback());
        let config = near_config(&dir, dial.unwrap_or(udp), &far.public, api, listeners);
        let near = Augur::start(test, &config);
        Link {
            dir,
            udp,
            local_public,
            far_http,
            far_tcp,
            far: Some(far),
            near,
            http: listeners.0,
            tcp: listeners.1,
        }
    }

    /// The remote data centre comes back (same key, same port).
    fn restart_far(&mut self, test: &str) {
        let far = remote(
            test,
            &self.dir,
            self.udp,
            &self.local_public,
            self.far_http,
            self.far_tcp,
        );
        self.far = Some(far);
    }

    fn far(&self) -> &Remote {
        self.far.as_ref().expect("the remote side runs")
    }
}

#[test]
fn http_and_tcp_cross_a_tunnel_between_two_augurs() {
    let backend = Backend::start("far");
    let link = Link::start("tunnel", backend.addr, echo_server(), &far_api());
    let (near, http) = (&link.near, link.http);

    // Small requests, on pooled connections inside the tunnel.
    for _ in 0..20 {
        assert_answered_by(&get(http, "api", "/"), "far");
    }
    // A large response, intact.
    let r = get(http, "api", "/?size=6000000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 6_000_000);
    assert!(r.body.iter().all(|&b| b == b'x'));

    // A large upload and download at once through the TCP relay (the far end echoes).
    let payload: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert_echoes(link.tcp, &payload);

    let status = near.status();
    let t = &status["tunnels"][0];
    assert_eq!(t["name"], "dc-east");
    assert_eq!(t["state"], "up", "{t}");
    assert!(t["handshakes"].as_u64().unwrap() >= 1, "{t}");
    assert!(t["rx"]["bytes"].as_u64().unwrap() > 10_000_000, "{t}");
    assert_eq!(t["dropped"]["source_not_allowed"], 0);
    assert_eq!(status["upstreams"][0]["backends"][0]["via"], "dc-east");
    // The far side learned our endpoint from the handshake.
    let far_status = link.far().augur.status();
    assert!(far_status["tunnels"][0]["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let metrics = near.metrics();
    assert!(
        metrics.contains("augur_tunnel_up{tunnel=\"dc-east\"} 1"),
        "{metrics}"
    );
}

/// Two data centres: a near backend, and a far one through tunnel `dc-east` to a remote
/// augur, both in upstream `api` (with `checks`, YAML or empty).
struct TwoSites {
    _far_backend: Backend,
    _near_backend: Backend,
    link: Link,
}

impl TwoSites {
    fn start(test: &str, checks: Option<&str>) -> TwoSites {
        let [far_backend, near_backend] = ["far", "near"].map(Backend::start);
        let mut api = far_api().backend(near_backend.addr, "");
        if let Some(checks) = checks {
            api = api.with("health_check", checks);
        }
        let link = Link::start(test, far_backend.addr, echo_server(), &api);
        TwoSites {
            _far_backend: far_backend,
            _near_backend: near_backend,
            link,
        }
    }

    /// Of `n` requests (each must succeed), how many the far backend answered.
    fn far_answers(&self, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                let r = get(self.link.http, "api", "/");
                assert_eq!(r.status, 200, "{}", r.text());
                backend_of(&r) == "far"
            })
            .count()
    }

    fn tunnel_state(&self) -> serde_json::Value {
        self.link.near.status()["tunnels"][0]["state"].clone()
    }

    fn far_status(&self) -> serde_json::Value {
        self.link.near.status()["upstreams"][0]["backends"][0].clone()
    }
}

const CHECKS: &str = "{ kind: http, path: /, interval: 500ms, timeout: 400ms, rise: 1, fall: 2 }";

#[test]
fn a_tunnel_that_goes_down_fails_over_and_comes_back() {
    let mut sites = TwoSites::start("tunnel-down", Some(CHECKS));
    assert!(sites.far_answers(10) > 0, "the far backend takes traffic");

    // The remote data centre goes away: requests keep succeeding on the near backend, and
    // the tunnel is declared down.
    sites.link.far = None;
    let thirty = Duration::from_secs(30);
    let state_while_serving = || {
        let _ = sites.far_answers(2);
        sites.tunnel_state()
    };
    eventually_within(thirty, "tunnel down", state_while_serving, |s| s == "down");
    assert_eq!(
        sites.far_answers(10),
        0,
        "nothing is sent into a down tunnel"
    );

    // It comes back: the tunnel is up again and the far backend returns to the rotation.
    sites.link.restart_far("tunnel-down-again");
    let state = || sites.tunnel_state();
    eventually_within(thirty, "tunnel up again", state, |s| s == "up");
    let answers = || sites.far_answers(4);
    eventually_within(thirty, "far backend back", answers, |n| *n > 0);
}

/// With no health checks and no request failing first, a backend behind a tunnel that is
/// declared down is out of rotation at once (no request even tries it), `/status` says why,
/// and it comes back when the tunnel does.
#[test]
fn a_down_tunnel_takes_its_backends_out_before_any_request_fails() {
    let mut sites = TwoSites::start("tunnel-path", None);
    assert!(sites.far_answers(10) > 0, "the far backend takes traffic");

    // The remote data centre goes away while no request is sent: the keepalive goes
    // unanswered and the tunnel is declared down, which takes the far backend out.
    sites.link.far = None;
    let thirty = Duration::from_secs(30);
    let state = || sites.tunnel_state();
    eventually_within(thirty, "tunnel down", state, |s| s == "down");
    let far = || sites.far_status();
    let health = eventually("far backend down", far, |b| b["health"]["state"] == "down");
    assert_eq!(health["health"]["reason"], "its tunnel is down", "{health}");
    let failures = health["connect_failures"].as_u64().unwrap();
    assert_eq!(sites.far_answers(10), 0);
    assert_eq!(
        sites.far_status()["connect_failures"].as_u64().unwrap(),
        failures,
        "no request tried the down tunnel"
    );

    // It comes back: so does the far backend.
    sites.link.restart_far("tunnel-path-again");
    let far = || sites.far_status();
    let back = eventually_within(thirty, "far backend back", far, |b| {
        b["health"]["state"] == "up"
    });
    assert_eq!(back["health"]["reason"], "its tunnel is up again", "{back}");
    let answers = || sites.far_answers(4);
    eventually_within(thirty, "far backend takes traffic", answers, |n| *n > 0);
}

/// A client uploading as fast as it can into a backend that never reads is slowed down, not
/// buffered: what it manages to write levels off at a few socket buffers' worth and augur's
/// memory stays flat.
#[test]
fn a_fast_upload_into_a_stalled_backend_is_held_back_not_buffered() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let backend = Backend::start("far-bp");
    // A TCP backend that accepts and never reads.
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_addr = sink.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in sink.incoming().flatten() {
            held.push(conn);
        }
    });
    let link = Link::start("tunnel-bp", backend.addr, sink_addr, &far_api());
    let written = Arc::new(AtomicU64::new(0));
    let conn = TcpStream::connect(link.tcp).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let counter = Arc::clone(&written);
    std::thread::spawn(move || {
        let chunk = vec![0x5au8; 64 * 1024];
        while writer.write_all(&chunk).is_ok() {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    // Wait for the writer to level off: no progress over a whole second.
    let progress = || {
        let before = written.load(Ordering::Relaxed);
        // The second over which progress is measured, not a wait for anything.
        std::thread::sleep(Duration::from_secs(1));
        (before, written.load(Ordering::Relaxed))
    };
    let (_, plateau) = eventually_within(
        Duration::from_secs(30),
        "the upload to level off (bytes written a second apart)",
        progress,
        |(before, after)| *before > 0 && after == before,
    );
    assert!(
        plateau < 64 << 20,
        "{} MiB accepted from a client whose backend reads nothing",
        plateau >> 20
    );
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", link.near.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kib < 150 * 1024, "augur grew to {} MiB", rss_kib / 1024);
    let _ = conn.shutdown(Shutdown::Both);
}

/// Two tunnels at once, to data centres that use the same addresses: each upstream reaches
/// its own 10.20.1.10:8080, and pooled connections never cross between them.
#[test]
fn two_tunnels_with_overlapping_subnets() {
    let [backend_a, backend_b] = ["dc-a", "dc-b"].map(Backend::start);
    let echo = echo_server();
    let (dir_a, dir_b) = (temp_dir("tunnel-two-a"), temp_dir("tunnel-two-b"));
    let local_dir = temp_dir("tunnel-two-local");
    let local_public = keypair(&local_dir, "local.key");
    let (udp_a, udp_b) = (free_udp_port(), free_udp_port());
    let far_a = remote(
        "tunnel-two-a",
        &dir_a,
        udp_a,
        &local_public,
        backend_a.addr,
        echo,
    );
    let far_b = remote(
        "tunnel-two-b",
        &dir_b,
        udp_b,
        &local_public,
        backend_b.addr,
        echo,
    );
    let http = loopback();
    let key = local_dir.join("local.key");
    let tunnel = |name: &str, udp: u16, public: &str| {
        Tunnel::new(name, &key, "10.20.255.1", public, "10.20.0.0/16")
            .peer_with("endpoint", format!("127.0.0.1:{udp}"))
    };
    let through = |name: &str, tunnel: &str| {
        Upstream::new(name, &[]).backend("10.20.1.10:8080", &format!("via: {tunnel}"))
    };
    let config = Config::new()
        .tunnel(tunnel("dc-a", udp_a, &far_a.public))
        .tunnel(tunnel("dc-b", udp_b, &far_b.public))
        .listener(
            Listener::http("web", http)
                .route(Route::to("a").host("a"))
                .route(Route::to("b").host("b")),
        )
        .upstream(through("a", "dc-a"))
        .upstream(through("b", "dc-b"));
    let near = Augur::start("tunnel-two", &config);
    for _ in 0..10 {
        for (host, expect) in [("a", "dc-a"), ("b", "dc-b")] {
            assert_answered_by(&get(http, host, "/"), expect);
        }
    }
    let status = near.status();
    assert_eq!(status["tunnels"][0]["state"], "up");
    assert_eq!(status["tunnels"][1]["state"], "up");
}

/// Requests on `http` until one is answered 200 (at most `limit`), which it returns.
fn first_ok(http: SocketAddr, limit: Duration, what: &str) -> Response {
    eventually_within(limit, what, || get(http, "api", "/"), |r| r.status == 200)
}

/// A reload that changes only the peer's endpoint is applied to the running tunnel.
#[test]
fn a_new_peer_endpoint_is_picked_up_on_reload() {
    let backend = Backend::start("far-moved");
    // First pointed at a port where nothing answers.
    let wrong = free_udp_port();
    let link = Link::start_dialing(
        "tunnel-moved",
        backend.addr,
        echo_server(),
        &far_api(),
        Some(wrong),
    );
    let r = get(link.http, "api", "/");
    assert_ne!(r.status, 200, "nothing answers at the first endpoint");
    let listeners = (link.http, link.tcp);
    let right = near_config(
        &link.dir,
        link.udp,
        &link.far().public,
        &far_api(),
        listeners,
    );
    link.near.write_config(&right);
    let r = link.near.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = first_ok(
        link.http,
        Duration::from_secs(20),
        "requests through the moved peer",
    );
    assert_eq!(backend_of(&r), "far-moved");
}

/// `augur run --upgrade` of the side that listens on a fixed UDP port: the successor binds
/// the same port while its predecessor still runs, and the tunnel comes back through it.
#[test]
fn the_listening_side_upgrades_without_losing_the_tunnel() {
    let backend = Backend::start("far-upgraded");
    let mut link = Link::start("tunnel-upgrade", backend.addr, echo_server(), &far_api());
    assert_eq!(get(link.http, "api", "/").status, 200);
    let far = &mut link.far.as_mut().expect("the remote side runs").augur;
    let mut successor = far.start_successor();
    signal(far.pid(), "QUIT");
    wait_exit(&mut far.child, Duration::from_secs(30));
    let r = first_ok(
        link.http,
        Duration::from_secs(40),
        "requests through the successor",
    );
    assert_eq!(backend_of(&r), "far-upgraded");
    let status = request(far.admin, "GET", "/status", "x", &[], b"").json();
    assert_eq!(status["pid"], successor.id());
    let _ = successor.kill();
    let _ = successor.wait();
}
