//! The tunnel broker: WireGuard tunnels to other data centres, run inside the process.
//!
//! Each tunnel is an [`augur_tunnel::Node`] (boringtun + smoltcp, no sockets) driven by its own
//! thread that owns one UDP socket. A backend with `via:` is dialled with [`Tunnel::dial`],
//! which opens a TCP connection inside the tunnel; the HTTP proxy hands that to Pingora as a
//! virtual socket (so it is pooled like any other upstream connection), the TCP relay and the
//! health checker use it as a tokio stream. A tunnel with `forward:` also accepts connections
//! arriving through it and relays them to local targets (augur terminating a tunnel in the
//! remote data centre).

mod connect;
mod driver;
mod link;
mod stream;

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use augur_config::Endpoint;
use augur_tunnel::{AllowedIps, DropReason, EngineConfig, Node, StackConfig};
use serde_json::{json, Value};
use socket2::{Domain, Protocol, Socket, Type};

use crate::exposition::{families, Exposition, Family, Number};

pub use link::TunnelState;
pub use stream::TunnelStream;

use link::Link;

/// UDP buffers asked for: a burst of a few thousand full-size datagrams must not be dropped
/// by the kernel before the driver reads them.
const UDP_BUFFER: usize = 8 << 20;
/// Below this the kernel capped the buffers (net.core.rmem_max / wmem_max): worth a warning.
const UDP_BUFFER_LOW: usize = 1 << 20;

/// One running tunnel.
pub struct Tunnel {
    link: Arc<Link>,
    /// Distinguishes this tunnel's pooled upstream connections from any other's.
    pub pool_key: u64,
    /// The Unix socket on which the HTTP proxy asks for connections (CONNECT IP:PORT).
    pub connect_path: PathBuf,
}

impl Tunnel {
    /// The tunnel's name.
    pub fn name(&self) -> &str {
        &self.link.name
    }

    /// Whether backends behind the tunnel can be reached: it is not down, and it knows
    /// where its peer is (configured, or learned from the peer's handshake; a tunnel that
    /// waits for its peer has nowhere to send a connection until then).
    pub fn reachable(&self) -> bool {
        self.state() != TunnelState::Down && self.link.peer_known()
    }

    /// Where the tunnel stands.
    pub fn state(&self) -> TunnelState {
        self.link.state()
    }

    /// Opens a TCP connection to `addr` inside the tunnel. Fails at once while the tunnel is
    /// down (so a request moves on to another backend instead of waiting out `timeout`).
    pub async fn dial(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TunnelStream> {
        dial(&self.link, addr, timeout).await
    }

    /// The tunnel in `/status`.
    pub fn status(&self) -> Value {
        let link = &self.link;
        let node = link.lock();
        let stats = &node.engine.stats;
        let dropped: serde_json::Map<String, Value> = DropReason::ALL
            .iter()
            .map(|r| (r.label().to_owned(), json!(stats.dropped(*r))))
            .collect();
        json!({
            "name": link.name,
            "state": link.state().label(),
            "udp_local": link.udp_local.to_string(),
            "udp_buffers": {"receive": link.udp_buffers.0, "send": link.udp_buffers.1},
            "endpoint": node.engine.endpoint().map(|e| e.to_string()),
            "handshake_age_seconds": node.engine.handshake_age().map(|d| d.as_secs_f64()),
            "last_received_seconds_ago": self.last_rx_age().map(|d| d.as_secs_f64()),
            "rtt_ms": node.engine.rtt().map(|d| d.as_secs_f64() * 1e3),
            "handshakes": stats.handshakes,
            "connections": node.stack.connections(),
            "dials": link.dials.load(Ordering::Relaxed),
            "rx": {"datagrams": stats.rx_datagrams, "bytes": stats.rx_bytes, "packets": stats.rx_packets},
            "tx": {"datagrams": stats.tx_datagrams, "bytes": stats.tx_bytes, "packets": stats.tx_packets,
                   "offload": link.offload(), "runs": link.runs_sent.load(Ordering::Relaxed)},
            "dropped": dropped,
            "send_errors": link.send_errors.load(Ordering::Relaxed),
        })
    }

    fn last_rx_age(&self) -> Option<Duration> {
        let nanos = self.link.last_rx_nanos.load(Ordering::Relaxed);
        (nanos != 0).then(|| {
            self.link
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_nanos(nanos))
        })
    }

    /// Points the tunnel at a new peer endpoint (a reload changed it).
    pub fn set_endpoint(&self, endpoint: Option<SocketAddr>) {
        let mut node = self.link.lock();
        node.engine.set_endpoint(endpoint);
        self.link.set_peer_known(node.engine.endpoint().is_some());
        drop(node);
        self.link.kick();
    }
}

/// Every tunnel of the process, started once and kept across reloads.
#[derive(Default, Debug)]
pub struct Tunnels {
    list: Vec<Arc<Tunnel>>,
}

impl Tunnels {
    /// Binds each tunnel's UDP socket (an error names the tunnel) and starts its driver.
    pub fn start(config: &[augur_config::Tunnel]) -> anyhow::Result<Tunnels> {
        let mut list = Vec::with_capacity(config.len());
        for (i, t) in config.iter().enumerate() {
            list.push(Arc::new(
                start_one(i, t).with_context(|| format!("tunnel {}", t.name))?,
            ));
        }
        Ok(Tunnels { list })
    }

    /// The running tunnel called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Tunnel>> {
        self.list.iter().find(|t| t.name() == name)
    }

    /// Applies what a reload may change while running: peers' endpoints, as
    /// [`resolve_endpoints`] found them (host names are looked up again at each reload).
    pub fn reload(&self, endpoints: &[(String, Option<SocketAddr>)]) {
        for (name, endpoint) in endpoints {
            if let Some(tunnel) = self.get(name) {
                tunnel.set_endpoint(*endpoint);
            }
        }
    }

    /// Removes the CONNECT endpoints' sockets and their directory (at exit).
    pub fn remove_endpoints(&self) {
        for t in &self.list {
            let _ = std::fs::remove_file(&t.connect_path);
        }
        if let Some(dir) = self.list.first().and_then(|t| t.connect_path.parent()) {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Every tunnel in `/status`.
    pub fn status(&self) -> Value {
        Value::Array(self.list.iter().map(|t| t.status()).collect())
    }

    /// Writes every tunnel's families of `/metrics` (none without tunnels).
    pub fn metrics(&self, doc: &mut Exposition) {
        if self.list.is_empty() {
            return;
        }
        for (family, figure) in &FIGURES {
            doc.family(family, |s| {
                for t in &self.list {
                    s.sample([t.name()], figure(t, &t.link.lock()));
                }
            });
        }
        doc.family(&DROPPED, |s| {
            for t in &self.list {
                let node = t.link.lock();
                for r in DropReason::ALL {
                    s.sample([t.name(), r.label()], node.engine.stats.dropped(r));
                }
                let send_errors = t.link.send_errors.load(Ordering::Relaxed);
                s.sample([t.name(), "send_error"], send_errors);
            }
        });
    }
}

/// A tunnel's figure, read with its node locked.
type Figure = fn(&Tunnel, &Node) -> Number;

families! {
    /// Whether the tunnel has a session and the peer answers.
    UP: Gauge augur_tunnel_up{tunnel};
    /// Time since the current session was keyed (-1: none).
    HANDSHAKE_AGE: Gauge augur_tunnel_handshake_age_seconds{tunnel};
    /// Time since the peer last sent anything authenticated (-1: never).
    LAST_RECEIVED: Gauge augur_tunnel_last_received_seconds{tunnel};
    /// Round-trip time of the last handshake (-1: none).
    RTT: Gauge augur_tunnel_rtt_seconds{tunnel};
    /// Sessions keyed.
    HANDSHAKES: Counter augur_tunnel_handshakes_total{tunnel};
    /// TCP connections inside the tunnel.
    CONNECTIONS: Gauge augur_tunnel_connections{tunnel};
    /// Bytes of datagrams received.
    RECEIVED_BYTES: Counter augur_tunnel_received_bytes_total{tunnel};
    /// Bytes of datagrams sent.
    SENT_BYTES: Counter augur_tunnel_sent_bytes_total{tunnel};
    /// Inner packets delivered to the stack.
    RECEIVED_PACKETS: Counter augur_tunnel_received_packets_total{tunnel};
    /// Inner packets encrypted and sent.
    SENT_PACKETS: Counter augur_tunnel_sent_packets_total{tunnel};
    /// Datagrams or inner packets dropped, by reason.
    DROPPED: Counter augur_tunnel_dropped_total{tunnel, reason};
}

const FIGURES: [(Family<1>, Figure); 10] = [
    (UP, |t, _| (t.state() == TunnelState::Up).into()),
    (HANDSHAKE_AGE, |_, n| {
        seconds_or_minus_one(n.engine.handshake_age())
    }),
    (LAST_RECEIVED, |t, _| seconds_or_minus_one(t.last_rx_age())),
    (RTT, |_, n| seconds_or_minus_one(n.engine.rtt())),
    (HANDSHAKES, |_, n| n.engine.stats.handshakes.into()),
    (CONNECTIONS, |_, n| n.stack.connections().into()),
    (RECEIVED_BYTES, |_, n| n.engine.stats.rx_bytes.into()),
    (SENT_BYTES, |_, n| n.engine.stats.tx_bytes.into()),
    (RECEIVED_PACKETS, |_, n| n.engine.stats.rx_packets.into()),
    (SENT_PACKETS, |_, n| n.engine.stats.tx_packets.into()),
];

/// A duration in seconds, or -1 when there is none (so the series never disappears).
fn seconds_or_minus_one(d: Option<Duration>) -> Number {
    d.map_or(-1.0, |d| d.as_secs_f64()).into()
}

/// Opens a TCP connection to `addr` inside the tunnel of `link`.
async fn dial(link: &Arc<Link>, addr: SocketAddr, timeout: Duration) -> io::Result<TunnelStream> {
    if link.state() == TunnelState::Down {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("tunnel {} is down", link.name),
        ));
    }
    link.dials.fetch_add(1, Ordering::Relaxed);
    let conn = link.lock().stack.connect(addr).map_err(io::Error::other)?;
    // From here the stream owns the connection: dropping it on failure frees it.
    let stream = TunnelStream::new(Arc::clone(link), conn);
    link.flush(&mut link.lock());
    let established = std::future::poll_fn(|cx| link.lock().stack.poll_connected(conn, cx.waker()));
    match tokio::time::timeout(timeout, established).await {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect through tunnel {} timed out", link.name),
        )),
    }
}

/// A peer's endpoint as an address: as written, or its host name looked up now (see
/// [`pick`]). `v6`: the family of the tunnel's socket, once bound.
pub fn resolve(endpoint: Option<&Endpoint>, v6: Option<bool>) -> io::Result<Option<SocketAddr>> {
    let family = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
    match endpoint {
        None => Ok(None),
        Some(Endpoint::Addr(addr)) => match v6 {
            Some(v6) if addr.is_ipv6() != v6 => Err(io::Error::other(format!(
                "the tunnel's socket is {}; a change of address family takes `augur run --upgrade`",
                family(v6)
            ))),
            _ => Ok(Some(*addr)),
        },
        Some(Endpoint::Host { name, port }) => {
            let addrs: Vec<SocketAddr> = (name.as_str(), *port).to_socket_addrs()?.collect();
            pick(&addrs, v6).map(Some).ok_or_else(|| {
                io::Error::other(match v6 {
                    Some(v6) => format!("no {} address (the tunnel's socket's family)", family(v6)),
                    None => "no address".to_owned(),
                })
            })
        }
    }
}

/// Of the addresses a name resolved to, the one to use: one of the socket's family once it
/// is bound (`v6`), else the first IPv4 one, else the first.
fn pick(addrs: &[SocketAddr], v6: Option<bool>) -> Option<SocketAddr> {
    match v6 {
        Some(v6) => addrs.iter().find(|a| a.is_ipv6() == v6),
        None => addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()),
    }
    .copied()
}

impl Tunnels {
    /// Every tunnel's peer endpoint resolved for a reload, in the family of the tunnel's
    /// socket; the first that cannot be is the error (the reload is then refused and the
    /// running config stays).
    pub fn resolve_endpoints(
        &self,
        config: &[augur_config::Tunnel],
    ) -> Result<Vec<(String, Option<SocketAddr>)>, String> {
        config
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v6 = self.get(&t.name).map(|r| r.link.udp_local.is_ipv6());
                match resolve(t.peer.endpoint.as_ref(), v6) {
                    Ok(addr) => Ok((t.name.clone(), addr)),
                    Err(e) => Err(format!(
                        "tunnels[{i}].peer.endpoint: cannot use {}: {e}",
                        t.peer
                            .endpoint
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    )),
                }
            })
            .collect()
    }
}

/// A private directory (mode 700) for this process's CONNECT endpoints.
fn endpoint_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("augur-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

fn start_one(index: usize, t: &augur_config::Tunnel) -> anyhow::Result<Tunnel> {
    let peer_endpoint = resolve(t.peer.endpoint.as_ref(), None).with_context(|| {
        format!(
            "tunnels[{index}].peer.endpoint: cannot resolve {}",
            t.peer
                .endpoint
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        )
    })?;
    let bind_ip = match peer_endpoint {
        Some(SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let bind = SocketAddr::new(bind_ip, t.listen_port.unwrap_or(0));
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.rmem_max / wmem_max.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    if t.listen_port.is_some() {
        // `augur run --upgrade` starts the successor while this process still holds the
        // port; the successor's handshake then takes the peer over.
        socket.set_reuse_port(true)?;
    }
    socket
        .bind(&bind.into())
        .with_context(|| format!("cannot bind UDP {bind}"))?;
    socket.set_nonblocking(true)?;
    // Receive offload: runs of datagrams the kernel has not split (from a sender that used
    // segmentation offload, as augur does) arrive in one read. Best effort.
    let _ = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::UdpGroSegment, &true);
    let buffers = (socket.recv_buffer_size()?, socket.send_buffer_size()?);
    if buffers.0 < UDP_BUFFER_LOW || buffers.1 < UDP_BUFFER_LOW {
        tracing::warn!(tunnel = %t.name, receive = buffers.0, send = buffers.1,
            "UDP buffers capped by the kernel; raise net.core.rmem_max and net.core.wmem_max for full tunnel throughput");
    }
    let udp: std::net::UdpSocket = socket.into();
    let local = udp.local_addr()?;
    let udp_send = udp.try_clone()?;
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let engine = EngineConfig {
        private_key: *t.private_key.bytes(),
        peer_public_key: t.peer.public_key,
        preshared_key: t.peer.preshared_key.as_ref().map(|k| *k.bytes()),
        persistent_keepalive: t
            .peer
            .persistent_keepalive
            .map(|d| d.as_secs().min(u64::from(u16::MAX)) as u16),
        endpoint: peer_endpoint,
        allowed_ips: AllowedIps::from_prefixes(t.peer.allowed_ips.iter().cloned()),
        address: t.address,
        index: (seed >> 40) as u32,
    };
    let stack = StackConfig::new(t.address, usize::from(t.mtu), seed);
    let node = Node::new(engine, stack, Duration::ZERO);
    let link = Arc::new(Link::new(t.name.clone(), node, udp_send, local, buffers));
    link.set_peer_known(peer_endpoint.is_some());
    let connect_path = endpoint_dir()
        .context("cannot create the CONNECT endpoint directory")?
        .join(format!("tunnel-{index}.sock"));
    let _ = std::fs::remove_file(&connect_path);
    let endpoint = std::os::unix::net::UnixListener::bind(&connect_path)
        .with_context(|| format!("cannot bind {}", connect_path.display()))?;
    endpoint.set_nonblocking(true)?;
    let forward = t.forward.clone();
    let driver_link = Arc::clone(&link);
    std::thread::Builder::new()
        .name(format!("tunnel-{}", t.name))
        .spawn(move || {
            let runtime = match crate::services::runtime() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(tunnel = %driver_link.name, error = format!("{e:#}"), "tunnel driver cannot start");
                    return;
                }
            };
            runtime.block_on(async move {
                match tokio::net::UnixListener::from_std(endpoint) {
                    Ok(endpoint) => {
                        tokio::spawn(connect::serve(Arc::clone(&driver_link), endpoint));
                    }
                    Err(e) => {
                        tracing::error!(tunnel = %driver_link.name, error = %e, "CONNECT endpoint unusable")
                    }
                }
                match tokio::net::UdpSocket::from_std(udp) {
                    Ok(udp) => driver::drive(driver_link, udp, forward).await,
                    Err(e) => {
                        tracing::error!(tunnel = %driver_link.name, error = %e, "tunnel socket unusable")
                    }
                }
            });
        })?;
    tracing::info!(tunnel = %t.name, udp = %local, address = %t.address, endpoint = ?peer_endpoint, "tunnel started");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(t.name.as_bytes());
    Ok(Tunnel {
        link,
        pool_key: h.finish() | 1,
        connect_path,
    })
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("name", &self.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_as_written_or_by_name() {
        let addr: SocketAddr = "192.0.2.7:51820".parse().unwrap();
        assert_eq!(resolve(None, None).unwrap(), None);
        assert_eq!(
            resolve(Some(&Endpoint::Addr(addr)), None).unwrap(),
            Some(addr)
        );
        // `localhost` comes from the hosts file: no resolver is asked.
        let host = Endpoint::Host {
            name: "localhost".into(),
            port: 51820,
        };
        let resolved = resolve(Some(&host), None).unwrap().unwrap();
        assert!(
            resolved.ip().is_loopback() && resolved.port() == 51820,
            "{resolved}"
        );
        // A bound socket's family is kept: a literal of the other family is refused.
        let v6: SocketAddr = "[2001:db8::7]:51820".parse().unwrap();
        assert!(resolve(Some(&Endpoint::Addr(v6)), Some(false)).is_err());
        assert_eq!(
            resolve(Some(&Endpoint::Addr(v6)), Some(true)).unwrap(),
            Some(v6)
        );
    }

    #[test]
    fn a_name_resolves_to_the_sockets_family_or_ipv4_first() {
        let v4: SocketAddr = "192.0.2.7:51820".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::7]:51820".parse().unwrap();
        assert_eq!(pick(&[v6, v4], None), Some(v4), "IPv4 first before binding");
        assert_eq!(pick(&[v6], None), Some(v6));
        assert_eq!(pick(&[v6, v4], Some(true)), Some(v6));
        assert_eq!(pick(&[v4, v6], Some(false)), Some(v4));
        assert_eq!(
            pick(&[v6], Some(false)),
            None,
            "nothing the socket can send to"
        );
        assert_eq!(pick(&[], None), None);
    }
}
