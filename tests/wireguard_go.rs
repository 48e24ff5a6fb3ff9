//! Interop with a WireGuard we did not write: Debian's wireguard-go (with wireguard-tools) in a
//! network namespace that the test creates, joined to the host by a veth pair, serving HTTP on
//! its tunnel address. augur dials it through its userspace tunnel. Needs root, `ip`,
//! `wireguard-go`, `wg` and `python3` (the test command installs them); without them the tests
//! fail saying which is missing.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use crate::tunnel::{free_udp_port, keypair};

/// wireguard-go in namespace `ns` on interface `iface` with tunnel address 10.20.1.10/16 and
/// an `augur backend` on 10.20.1.10:8080 inside the namespace.
pub struct WgPeer {
    ns: String,
    /// The host's end of the veth pair.
    pub host_ip: Ipv4Addr,
    /// The namespace's end (wireguard-go listens on port 51820 there).
    pub ns_ip: Ipv4Addr,
    /// wireguard-go's public key.
    pub public: String,
    children: Vec<Child>,
    pub dir: PathBuf,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}", cannot_run(args[0], &e)));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the host links on `ip`'s /24, including any left by an earlier test process that
/// was killed before its clean-up ran: their route would take this test's packets.
fn remove_links_on(ip: Ipv4Addr) {
    let [a, b, c, _] = ip.octets();
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "to", &format!("{a}.{b}.{c}.0/24")])
        .output()
        .unwrap_or_else(|e| panic!("{}", cannot_run("ip", &e)));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(dev) = line.split_whitespace().nth(1) {
            let dev = dev.split('@').next().unwrap_or(dev);
            let _ = Command::new("ip")
                .args(["link", "del", "dev", dev])
                .output();
        }
    }
}

impl WgPeer {
    /// `tag` makes names and the veth subnet unique among tests running at once.
    /// `augur_endpoint`: where wireguard-go may reach augur (so it can initiate too).
    pub fn start(tag: u8, augur_public: &str, augur_endpoint: Option<SocketAddr>) -> WgPeer {
        require_tools(&["ip", "wireguard-go", "wg", "python3"]);
        require_namespaces();
        let id = std::process::id() % 10_000;
        let ns = format!("augur-wg-{id}-{tag}");
        let iface = format!("wg{id}x{tag}");
        let veth = format!("awh{id}x{tag}");
        let host_ip = Ipv4Addr::new(10, 213, tag, 1);
        let ns_ip = Ipv4Addr::new(10, 213, tag, 2);
        let dir = temp_dir(&format!("wg-go-{tag}"));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        remove_links_on(host_ip);
        run(&["ip", "netns", "add", &ns]);
        let mut peer = WgPeer {
            ns: ns.clone(),
            host_ip,
            ns_ip,
            public: keypair(&dir, "wg.key"),
            children: Vec::new(),
            dir,
        };
        run(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        run(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &veth]);
        run(&["ip", "link", "set", &veth, "up"]);
        peer.exec(&["ip", "addr", "add", &format!("{ns_ip}/24"), "dev", "eth0"]);
        peer.exec(&["ip", "link", "set", "eth0", "up"]);
        peer.exec(&["ip", "link", "set", "lo", "up"]);
        let wg_log = peer.dir.join("wireguard-go.log");
        let log = std::fs::File::create(&wg_log).expect("wireguard-go log file");
        let mut wg = Command::new("ip")
            .args(["netns", "exec", &ns, "wireguard-go", &iface])
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}", cannot_run("ip", &e)));
        let interface = || {
            if let Some(status) = wg.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(&wg_log).unwrap_or_default();
                panic!("wireguard-go exited ({status}) before making {iface}: {log}");
            }
            let show = ["-n", &ns, "link", "show", &iface];
            Command::new("ip").args(show).output().map(|o| o.status)
        };
        let _ = eventually("wireguard-go's interface", interface, |shown| {
            shown.as_ref().is_ok_and(|s| s.success())
        });
        peer.children.push(wg);
        let key = peer.dir.join("wg.key");
        let mut set = vec![
            "wg".to_owned(),
            "set".into(),
            iface.clone(),
            "private-key".into(),
            key.display().to_string(),
            "listen-port".into(),
            "51820".into(),
            "peer".into(),
            augur_public.to_owned(),
            "allowed-ips".into(),
            "10.20.255.1/32".into(),
        ];
        if let Some(endpoint) = augur_endpoint {
            set.extend(["endpoint".into(), endpoint.to_string()]);
            set.extend(["persistent-keepalive".into(), "1".into()]);
        }
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        peer.exec(&set);
        peer.exec(&["ip", "addr", "add", "10.20.1.10/16", "dev", &iface]);
        // A second address, outside what augur allows for this peer.
        peer.exec(&["ip", "addr", "add", "10.99.0.5/32", "dev", &iface]);
        peer.exec(&["ip", "link", "set", &iface, "up"]);
        let backend = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                AUGUR,
                "backend",
                "--listen",
                "10.20.1.10:8080",
                "--name",
                "wg-go",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn backend in the namespace");
        peer.children.push(backend);
        peer
    }

    /// Runs a command inside the namespace; it must succeed.
    pub fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        run(&all);
    }

    /// wireguard-go's endpoint as augur sees it.
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::from((self.ns_ip, 51820))
    }
}

impl Drop for WgPeer {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting the namespace does not always take the veth pair with it here.
        remove_links_on(self.host_ip);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// augur with tunnel `far` to the wireguard-go peer: an HTTP listener to 10.20.1.10:8080 and a
/// TCP listener to the same port (raw HTTP through the relay). `endpoint`: whether augur
/// knows where the peer is (without it, only the peer can start the handshake).
fn augur_for(
    test: &str,
    dir: &std::path::Path,
    wg: &WgPeer,
    udp: u16,
    endpoint: bool,
) -> (Augur, SocketAddr, SocketAddr) {
    let (http, tcp) = (loopback(), loopback());
    let key = dir.join("augur.key");
    let mut tunnel = Tunnel::new("far", &key, "10.20.255.1", &wg.public, "10.20.0.0/16")
        .with("listen_port", udp);
    if endpoint {
        tunnel = tunnel.peer_with("endpoint", wg.endpoint());
    }
    let far = |name: &str| {
        Upstream::new(name, &[])
            .with("connect_timeout", "3s")
            .backend("10.20.1.10:8080", "via: far")
    };
    let config = Config::web(http, far("api"))
        .tunnel(tunnel)
        .listener(Listener::tcp("raw", tcp, "raw"))
        .upstream(far("raw"));
    let augur = Augur::start(test, &config);
    (augur, http, tcp)
}

#[test]
fn augur_reaches_wireguard_go_and_drops_sources_outside_allowed_ips() {
    let dir = temp_dir("wg-go-augur-keys");
    let augur_public = keypair(&dir, "augur.key");
    let udp = free_udp_port();
    // wireguard-go does not know where augur is: augur starts the handshake.
    let wg = WgPeer::start(1, &augur_public, None);
    let (augur, http, tcp) = augur_for("wg-go-1", &dir, &wg, udp, true);
    assert_answered_by(&get(http, "api", "/"), "wg-go");
    let r = get(http, "api", "/?size=5000000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 5_000_000);
    // Raw bytes through the TCP relay.
    let mut conn = std::io::BufReader::new(std::net::TcpStream::connect(tcp).unwrap());
    std::io::Write::write_all(
        conn.get_mut(),
        b"GET / HTTP/1.1\r\nHost: raw\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut conn).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(backend_of(&r), "wg-go");

    // A packet from 10.99.0.5, which wireguard-go will send but augur must not accept.
    wg.exec(&[
        "python3",
        "-c",
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('10.99.0.5',0));s.sendto(b'x',('10.20.255.1',9))",
    ]);
    eventually(
        "a dropped spoofed source",
        || augur.status()["tunnels"][0]["dropped"]["source_not_allowed"].clone(),
        |n| *n == 1,
    );
    let metrics = augur.metrics();
    assert!(
        metrics
            .contains("augur_tunnel_dropped_total{tunnel=\"far\",reason=\"source_not_allowed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn wireguard_go_starts_the_handshake() {
    let dir = temp_dir("wg-go-peer-keys");
    let augur_public = keypair(&dir, "augur.key");
    let udp = free_udp_port();
    // augur has no endpoint for the peer: only wireguard-go can start (keepalive every 1 s).
    let wg = WgPeer::start(
        2,
        &augur_public,
        Some(SocketAddr::from((Ipv4Addr::new(10, 213, 2, 1), udp))),
    );
    assert_eq!(wg.host_ip, Ipv4Addr::new(10, 213, 2, 1));
    let (augur, http, _) = augur_for("wg-go-2", &dir, &wg, udp, false);
    eventually_within(
        Duration::from_secs(15),
        "a handshake from wireguard-go",
        || augur.status()["tunnels"][0]["state"].clone(),
        |state| state == "up",
    );
    let status = augur.status();
    assert_eq!(
        status["tunnels"][0]["endpoint"],
        format!("{}:51820", wg.ns_ip),
        "augur learned the peer's endpoint"
    );
    // Until then the backend had no way to it (nowhere to send): it is back with the
    // health sweep that follows.
    eventually_within(
        Duration::from_secs(5),
        "the backend reachable",
        || augur.status()["upstreams"][0]["backends"][0]["health"]["state"].clone(),
        |state| state == "up",
    );
    assert_answered_by(&get(http, "api", "/"), "wg-go");
}
