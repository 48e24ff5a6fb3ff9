//! Tunnels between two real augur processes over loopback UDP: one plays the remote data
//! centre (it terminates the tunnel and forwards to its local backends), the other dials
//! backends through it with `via:`.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
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
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let body = format!(
        "tunnels:
  - name: dc
    private_key_file: {dir}/remote.key
    address: 10.20.1.10
    listen_port: {udp}
    peer:
      public_key: \"{peer_public}\"
      allowed_ips: [10.20.255.1/32]
    forward:
      - {{ port: 8080, to: {http} }}
      - {{ port: 9000, to: {tcp} }}
listeners:
  - {{ name: web, bind: {listen}, protocol: http, routes: [ {{ upstream: local }} ] }}
upstreams:
  - name: local
    backends: [ {{ addr: {http} }} ]
",
        dir = dir.display()
    );
    let augur = Augur::start(&format!("{test}-remote"), &body, &[listen]);
    Remote { augur, public }
}

/// The local side: augur with tunnel `dc-east` to the remote's `udp`, an HTTP listener whose
/// upstream is `backends` (YAML list entries), and a TCP listener to 10.20.1.10:9000.
fn local(
    test: &str,
    dir: &Path,
    udp: u16,
    remote_public: &str,
    backends: &str,
) -> (Augur, SocketAddr, SocketAddr) {
    local_with(test, dir, udp, remote_public, backends, CHECKS)
}

/// [`local`] with the `api` upstream's `checks` line (YAML, or empty for none).
fn local_with(
    test: &str,
    dir: &Path,
    udp: u16,
    remote_public: &str,
    backends: &str,
    checks: &str,
) -> (Augur, SocketAddr, SocketAddr) {
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tcp = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let body = format!(
        "tunnels:
  - name: dc-east
    private_key_file: {dir}/local.key
    address: 10.20.255.1
    peer:
      public_key: \"{remote_public}\"
      endpoint: localhost:{udp}            # a host name, resolved at start
      allowed_ips: [10.20.0.0/16]
      persistent_keepalive: 5s
listeners:
  - {{ name: web, bind: {http}, protocol: http, routes: [ {{ upstream: api }} ] }}
  - {{ name: db, bind: {tcp}, protocol: tcp, upstream: pg }}
upstreams:
  - name: api
    policy: round_robin
    connect_timeout: 2s
    {checks}
    backends: {backends}
  - name: pg
    backends: [ {{ addr: 10.20.1.10:9000, via: dc-east }} ]
",
        dir = dir.display()
    );
    let augur = Augur::start_with(test, |_| String::new(), &body, &[http, tcp]);
    (augur, http, tcp)
}

#[test]
fn http_and_tcp_cross_a_tunnel_between_two_augurs() {
    let backend = Backend::start("far");
    let echo = echo_server();
    let udp = free_udp_port();
    let dir = temp_dir("tunnel-keys");
    let local_public = keypair(&dir, "local.key");
    let far = remote("tunnel", &dir, udp, &local_public, backend.addr, echo);
    let (near, http, tcp) = local(
        "tunnel",
        &dir,
        udp,
        &far.public,
        "[ { addr: 10.20.1.10:8080, via: dc-east } ]",
    );

    // Small requests, on pooled connections inside the tunnel.
    for _ in 0..20 {
        let r = get(http, "api", "/");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(backend_of(&r), "far");
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
    let got = echo_round_trip(tcp, &payload);
    assert!(
        got == payload,
        "echo through the tunnel damaged ({} of {} bytes)",
        got.len(),
        payload.len()
    );

    let status = near.status();
    let t = &status["tunnels"][0];
    assert_eq!(t["name"], "dc-east");
    assert_eq!(t["state"], "up", "{t}");
    assert!(t["handshakes"].as_u64().unwrap() >= 1, "{t}");
    assert!(t["rx"]["bytes"].as_u64().unwrap() > 10_000_000, "{t}");
    assert_eq!(t["dropped"]["source_not_allowed"], 0);
    assert_eq!(status["upstreams"][0]["backends"][0]["via"], "dc-east");
    // The far side learned our endpoint from the handshake.
    let far_status = far.augur.status();
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
    far_backend: Backend,
    _near_backend: Backend,
    echo: SocketAddr,
    udp: u16,
    dir: std::path::PathBuf,
    local_public: String,
    far: Option<Remote>,
    near: Augur,
    http: SocketAddr,
}

impl TwoSites {
    fn start(test: &str, checks: &str) -> TwoSites {
        let far_backend = Backend::start("far");
        let near_backend = Backend::start("near");
        let echo = echo_server();
        let udp = free_udp_port();
        let dir = temp_dir(&format!("{test}-keys"));
        let local_public = keypair(&dir, "local.key");
        let far = remote(test, &dir, udp, &local_public, far_backend.addr, echo);
        let backends = format!(
            "[ {{ addr: 10.20.1.10:8080, via: dc-east }}, {{ addr: {} }} ]",
            near_backend.addr
        );
        let (near, http, _) = local_with(test, &dir, udp, &far.public, &backends, checks);
        TwoSites {
            far_backend,
            _near_backend: near_backend,
            echo,
            udp,
            dir,
            local_public,
            far: Some(far),
            near,
            http,
        }
    }

    /// Of `n` requests (each must succeed), how many the far backend answered.
    fn far_answers(&self, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                let r = get(self.http, "api", "/");
                assert_eq!(r.status, 200, "{}", r.text());
                backend_of(&r) == "far"
            })
            .count()
    }

    /// The remote data centre comes back (same key, same port).
    fn restart_far(&mut self, test: &str) {
        let far = remote(
            test,
            &self.dir,
            self.udp,
            &self.local_public,
            self.far_backend.addr,
            self.echo,
        );
        self.far = Some(far);
    }

    fn tunnel_state(&self) -> serde_json::Value {
        self.near.status()["tunnels"][0]["state"].clone()
    }

    fn far_status(&self) -> serde_json::Value {
        self.near.status()["upstreams"][0]["backends"][0].clone()
    }
}

const CHECKS: &str =
    "health_check: { kind: http, path: /, interval: 500ms, timeout: 400ms, rise: 1, fall: 2 }";

#[test]
fn a_tunnel_that_goes_down_fails_over_and_comes_back() {
    let mut sites = TwoSites::start("tunnel-down", CHECKS);
    assert!(sites.far_answers(10) > 0, "the far backend takes traffic");

    // The remote data centre goes away: requests keep succeeding on the near backend, and
    // the tunnel is declared down.
    sites.far = None;
    eventually_within(Duration::from_secs(30), "tunnel down", || {
        let _ = sites.far_answers(2);
        (sites.tunnel_state() == "down").then_some(())
    });
    assert_eq!(
        sites.far_answers(10),
        0,
        "nothing is sent into a down tunnel"
    );

    // It comes back: the tunnel is up again and the far backend returns to the rotation.
    sites.restart_far("tunnel-down-again");
    eventually_within(Duration::from_secs(30), "tunnel up again", || {
        (sites.tunnel_state() == "up").then_some(())
    });
    eventually_within(Duration::from_secs(30), "far backend back", || {
        (sites.far_answers(4) > 0).then_some(())
    });
}

/// With no health checks and no request failing first, a backend behind a tunnel that is
/// declared down is out of rotation at once (no request even tries it), `/status` says why,
/// and it comes back when the tunnel does.
#[test]
fn a_down_tunnel_takes_its_backends_out_before_any_request_fails() {
    let mut sites = TwoSites::start("tunnel-path", "");
    assert!(sites.far_answers(10) > 0, "the far backend takes traffic");

    // The remote data centre goes away while no request is sent: the keepalive goes
    // unanswered and the tunnel is declared down, which takes the far backend out.
    sites.far = None;
    eventually_within(Duration::from_secs(30), "tunnel down", || {
        (sites.tunnel_state() == "down").then_some(())
    });
    let health = eventually_within(Duration::from_secs(5), "far backend down", || {
        let b = sites.far_status();
        (b["health"]["state"] == "down").then_some(b)
    });
    assert_eq!(health["health"]["reason"], "its tunnel is down", "{health}");
    let failures = health["connect_failures"].as_u64().unwrap();
    assert_eq!(sites.far_answers(10), 0);
    assert_eq!(
        sites.far_status()["connect_failures"].as_u64().unwrap(),
        failures,
        "no request tried the down tunnel"
    );

    // It comes back: so does the far backend.
    sites.restart_far("tunnel-path-again");
    let back = eventually_within(Duration::from_secs(30), "far backend back", || {
        let b = sites.far_status();
        (b["health"]["state"] == "up").then_some(b)
    });
    assert_eq!(back["health"]["reason"], "its tunnel is up again", "{back}");
    eventually_within(Duration::from_secs(30), "far backend takes traffic", || {
        (sites.far_answers(4) > 0).then_some(())
    });
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
    let udp = free_udp_port();
    let dir = temp_dir("tunnel-bp-keys");
    let local_public = keypair(&dir, "local.key");
    let far = remote(
        "tunnel-bp",
        &dir,
        udp,
        &local_public,
        backend.addr,
        sink_addr,
    );
    let (near, _, tcp) = local(
        "tunnel-bp",
        &dir,
        udp,
        &far.public,
        "[ { addr: 10.20.1.10:8080, via: dc-east } ]",
    );
    let written = Arc::new(AtomicU64::new(0));
    let conn = TcpStream::connect(tcp).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let counter = Arc::clone(&written);
    std::thread::spawn(move || {
        let chunk = vec![0x5au8; 64 * 1024];
        while writer.write_all(&chunk).is_ok() {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    // Wait for the writer to level off: no progress over a whole second.
    let plateau = eventually_within(Duration::from_secs(30), "the upload to level off", || {
        let before = written.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(1));
        let after = written.load(Ordering::Relaxed);
        (before > 0 && after == before).then_some(after)
    });
    assert!(
        plateau < 64 << 20,
        "{} MiB accepted from a client whose backend reads nothing",
        plateau >> 20
    );
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", near.pid()))
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
    let (backend_a, backend_b) = (Backend::start("dc-a"), Backend::start("dc-b"));
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
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tunnel = |name: &str, udp: u16, public: &str| {
        format!(
            "  - name: {name}
    private_key_file: {dir}/local.key
    address: 10.20.255.1
    peer:
      public_key: \"{public}\"
      endpoint: 127.0.0.1:{udp}
      allowed_ips: [10.20.0.0/16]
",
            dir = local_dir.display()
        )
    };
    let body = format!(
        "tunnels:
{}{}listeners:
  - name: web
    bind: {http}
    protocol: http
    routes:
      - {{ match: {{ host: a }}, upstream: a }}
      - {{ match: {{ host: b }}, upstream: b }}
upstreams:
  - {{ name: a, backends: [ {{ addr: 10.20.1.10:8080, via: dc-a }} ] }}
  - {{ name: b, backends: [ {{ addr: 10.20.1.10:8080, via: dc-b }} ] }}
",
        tunnel("dc-a", udp_a, &far_a.public),
        tunnel("dc-b", udp_b, &far_b.public),
    );
    let near = Augur::start("tunnel-two", &body, &[http]);
    for _ in 0..10 {
        for (host, expect) in [("a", "dc-a"), ("b", "dc-b")] {
            let r = get(http, host, "/");
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(backend_of(&r), expect);
        }
    }
    let status = near.status();
    assert_eq!(status["tunnels"][0]["state"], "up");
    assert_eq!(status["tunnels"][1]["state"], "up");
}

/// A reload that changes only the peer's endpoint is applied to the running tunnel.
#[test]
fn a_new_peer_endpoint_is_picked_up_on_reload() {
    let backend = Backend::start("far-moved");
    let echo = echo_server();
    let udp = free_udp_port();
    let dir = temp_dir("tunnel-moved-keys");
    let local_public = keypair(&dir, "local.key");
    let far = remote("tunnel-moved", &dir, udp, &local_public, backend.addr, echo);
    // First pointed at a port where nothing answers.
    let wrong = free_udp_port();
    let (near, http, _) = local(
        "tunnel-moved",
        &dir,
        wrong,
        &far.public,
        "[ { addr: 10.20.1.10:8080, via: dc-east } ]",
    );
    let r = get(http, "api", "/");
    assert_ne!(r.status, 200, "nothing answers at the first endpoint");
    let text = std::fs::read_to_string(&near.config).unwrap();
    std::fs::write(
        &near.config,
        text.replace(&format!("localhost:{wrong}"), &format!("localhost:{udp}")),
    )
    .unwrap();
    let r = near.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = eventually_within(
        Duration::from_secs(20),
        "requests through the moved peer",
        || {
            let r = get(http, "api", "/");
            (r.status == 200).then_some(r)
        },
    );
    assert_eq!(backend_of(&r), "far-moved");
}

/// `augur run --upgrade` of the side that listens on a fixed UDP port: the successor binds
/// the same port while its predecessor still runs, and the tunnel comes back through it.
#[test]
fn the_listening_side_upgrades_without_losing_the_tunnel() {
    let backend = Backend::start("far-upgraded");
    let echo = echo_server();
    let udp = free_udp_port();
    let dir = temp_dir("tunnel-upgrade-keys");
    let local_public = keypair(&dir, "local.key");
    let mut far = remote(
        "tunnel-upgrade",
        &dir,
        udp,
        &local_public,
        backend.addr,
        echo,
    );
    let (_near, http, _) = local(
        "tunnel-upgrade",
        &dir,
        udp,
        &far.public,
        "[ { addr: 10.20.1.10:8080, via: dc-east } ]",
    );
    assert_eq!(get(http, "api", "/").status, 200);
    let mut successor = Augur::spawn(&far.augur.dir, &far.augur.config, true);
    let sock = far.augur.dir.join("upgrade.sock");
    eventually_within(Duration::from_secs(30), "the successor", || {
        assert!(
            successor.try_wait().unwrap().is_none(),
            "the successor exited: {}",
            far.augur.log()
        );
        sock.exists().then_some(())
    });
    signal(far.augur.pid(), "QUIT");
    wait_exit(&mut far.augur.child, Duration::from_secs(30));
    let r = eventually_within(
        Duration::from_secs(40),
        "requests through the successor",
        || {
            let r = get(http, "api", "/");
            (r.status == 200).then_some(r)
        },
    );
    assert_eq!(backend_of(&r), "far-upgraded");
    let status = request(far.augur.admin, "GET", "/status", "x", &[], b"").json();
    assert_eq!(status["pid"], successor.id());
    let _ = successor.kill();
    let _ = successor.wait();
}
