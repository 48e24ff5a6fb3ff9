//! What a tunnel's driver thread and its connections share: the node behind a mutex, the
//! driver's wake-up, and the state the driver publishes.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use augur_tunnel::Node;
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
use tokio::sync::Notify;

/// Most datagrams sent in one system call (the kernel's UDP_MAX_SEGMENTS is 64 or more).
const GSO_SEGMENTS: usize = 64;
/// Most bytes sent in one system call (a UDP payload is at most 65,507 bytes over IPv4).
const GSO_BYTES: usize = 65_000;

/// Where a tunnel stands, as its node works it out (dials fail at once while it is down).
pub use augur_tunnel::TunnelState;

/// Shared between the driver thread and every [`super::TunnelStream`].
pub struct Link {
    /// The tunnel's name.
    pub name: String,
    node: Mutex<Node>,
    kick: Notify,
    /// The node's clock starts here.
    pub epoch: Instant,
    state: AtomicU8,
    /// Nanoseconds after `epoch` of the last datagram proved to come from the peer (0: never).
    pub last_rx_nanos: AtomicU64,
    /// Datagrams the UDP socket would not take.
    pub send_errors: AtomicU64,
    /// Connections opened through the tunnel.
    pub dials: AtomicU64,
    /// The UDP socket's address.
    pub udp_local: SocketAddr,
    /// The tunnel's UDP socket, for sending from any thread (the driver reads a duplicate).
    udp: UdpSocket,
    /// When the driver will next wake by itself (nanoseconds after `epoch`).
    driver_wakes_at: AtomicU64,
    /// The UDP socket's receive and send buffer sizes, as the kernel granted them.
    pub udp_buffers: (usize, usize),
    /// Datagrams gathered for one send. Only taken with the node held, so never contended.
    outbox: Mutex<Outbox>,
    /// Whether the kernel takes a run of datagrams in one call (UDP segmentation offload);
    /// cleared for good the first time it refuses.
    gso: AtomicBool,
    /// Runs sent in one call each.
    pub runs_sent: AtomicU64,
    /// Whether the node has an endpoint for its peer (published by the driver).
    peer_known: AtomicBool,
}

/// A run of equal-size datagrams to one address, back to back (the last may be shorter):
/// what one `sendmsg` with `UDP_SEGMENT` sends as that many datagrams.
struct Outbox {
    to: Option<SocketAddr>,
    bytes: Vec<u8>,
    segment: usize,
    count: usize,
}

impl Link {
    pub(super) fn new(
        name: String,
        node: Node,
        udp: UdpSocket,
        udp_local: SocketAddr,
        udp_buffers: (usize, usize),
    ) -> Link {
        Link {
            name,
            node: Mutex::new(node),
            kick: Notify::new(),
            epoch: Instant::now(),
            state: AtomicU8::new(0),
            last_rx_nanos: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            dials: AtomicU64::new(0),
            udp_local,
            udp,
            driver_wakes_at: AtomicU64::new(0),
            udp_buffers,
            outbox: Mutex::new(Outbox {
                to: None,
                bytes: Vec::with_capacity(GSO_BYTES),
                segment: 0,
                count: 0,
            }),
            gso: AtomicBool::new(true),
            runs_sent: AtomicU64::new(0),
            peer_known: AtomicBool::new(false),
        }
    }

    /// The node. Held briefly: a read, a write, or one round of the driver.
    pub fn lock(&self) -> MutexGuard<'_, Node> {
        self.node.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with a function that sends datagrams to the peer, and sends whatever it
    /// gathered before returning. Runs of equal-size datagrams (a window of full segments)
    /// leave in one system call each. A full socket buffer drops datagrams (counted; TCP
    /// inside recovers). Call with the node held (`f` is given the node's output).
    pub fn sending<R>(&self, f: impl FnOnce(&mut dyn FnMut(SocketAddr, &[u8])) -> R) -> R {
        let mut out = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let result = f(&mut |to, datagram| self.push(&mut out, to, datagram));
        self.send_out(&mut out);
        result
    }

    /// Whether runs of datagrams still leave in one system call each.
    pub fn offload(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    fn push(&self, out: &mut Outbox, to: SocketAddr, datagram: &[u8]) {
        if !self.gso.load(Ordering::Relaxed) {
            self.send_one(to, datagram);
            return;
        }
        if out.count > 0
            && (out.to != Some(to)
                || datagram.len() > out.segment
                || out.count == GSO_SEGMENTS
                || out.bytes.len() + datagram.len() > GSO_BYTES)
        {
            self.send_out(out);
            if !self.gso.load(Ordering::Relaxed) {
                // That send found offload unavailable: keep the order, one at a time.
                self.send_one(to, datagram);
                return;
            }
        }
        if out.count == 0 {
            out.to = Some(to);
            out.segment = datagram.len();
        }
        out.bytes.extend_from_slice(datagram);
        out.count += 1;
        // A shorter datagram can only end a run.
        if datagram.len() < out.segment {
            self.send_out(out);
        }
    }

    fn send_out(&self, out: &mut Outbox) {
        let Some(to) = out.to.take() else {
            return;
        };
        if out.count == 1 {
            self.send_one(to, &out.bytes);
        } else {
            match self.send_segments(to, &out.bytes, out.segment) {
                Ok(()) => {
                    self.runs_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(Errno::EIO | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT) => {
                    // No offload on this path (EIO: the device cannot checksum a segmented
                    // send): one at a time from now on.
                    tracing::warn!(tunnel = %self.name, "UDP segmentation offload refused; sending datagrams one at a time");
                    self.gso.store(false, Ordering::Relaxed);
                    self.send_each(to, out);
                }
                Err(Errno::EMSGSIZE | Errno::EINVAL) => {
                    // The route's MTU is below the segment size (a plain send may fragment)
                    // or the run is beyond this kernel's limits: this run one at a time.
                    self.send_each(to, out);
                }
                Err(_) => {
                    // A full buffer, no route, a firewall: as one at a time would have fared.
                    self.send_errors
                        .fetch_add(out.count as u64, Ordering::Relaxed);
                }
            }
        }
        out.bytes.clear();
        out.count = 0;
    }

    fn send_each(&self, to: SocketAddr, out: &Outbox) {
        for datagram in out.bytes.chunks(out.segment) {
            self.send_one(to, datagram);
        }
    }

    fn send_one(&self, to: SocketAddr, datagram: &[u8]) {
        if self.udp.send_to(datagram, to).is_err() {
            self.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn send_segments(&self, to: SocketAddr, bytes: &[u8], segment: usize) -> Result<(), Errno> {
        let segment = u16::try_from(segment).map_err(|_| Errno::EMSGSIZE)?;
        // A datagram socket sends all of it or nothing.
        sendmsg(
            self.udp.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &[ControlMessage::UdpGsoSegments(&segment)],
            MsgFlags::empty(),
            Some(&SockaddrStorage::from(to)),
        )
        .map(|_| ())
    }

    /// Runs the stack now on the calling thread and sends what it emits, so that a write or
    /// a reopened window goes out without a hand-off to the driver. Wakes the driver only
    /// if the stack now needs attention sooner than the driver planned (a new retransmit
    /// timer).
    pub fn flush(&self, node: &mut Node) {
        let now = self.epoch.elapsed();
        self.sending(|send| node.poll(now, send));
        if let Some(delay) = node.stack.poll_delay(now) {
            let due = (now + delay).as_nanos() as u64;
            if due < self.driver_wakes_at.load(Ordering::Relaxed) {
                self.kick();
            }
        }
    }

    /// The driver records when it will wake by itself.
    pub(super) fn set_driver_wakes_at(&self, at: Duration) {
        self.driver_wakes_at
            .store(at.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Wakes the driver (data to send, or a window to reopen).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Resolves when someone kicked the driver.
    pub async fn kicked(&self) {
        self.kick.notified().await;
    }

    /// Whether the node knows where its peer is, as last published.
    pub fn peer_known(&self) -> bool {
        self.peer_known.load(Ordering::Relaxed)
    }

    pub(super) fn set_peer_known(&self, known: bool) {
        self.peer_known.store(known, Ordering::Relaxed);
    }

    /// The published state.
    pub fn state(&self) -> TunnelState {
        match self.state.load(Ordering::Acquire) {
            1 => TunnelState::Up,
            2 => TunnelState::Down,
            _ => TunnelState::Connecting,
        }
    }

    pub(super) fn set_state(&self, state: TunnelState) {
        let v = match state {
            TunnelState::Connecting => 0,
            TunnelState::Up => 1,
            TunnelState::Down => 2,
        };
        self.state.store(v, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_tunnel::{AllowedIps, EngineConfig, StackConfig};
    use std::net::{IpAddr, Ipv4Addr};

    fn link(udp: UdpSocket) -> Link {
        let address = IpAddr::V4(Ipv4Addr::new(10, 20, 255, 1));
        let node = Node::new(
            EngineConfig {
                private_key: [7; 32],
                peer_public_key: [9; 32],
                preshared_key: None,
                persistent_keepalive: None,
                endpoint: None,
                allowed_ips: AllowedIps::new([(IpAddr::V4(Ipv4Addr::new(10, 20, 0, 0)), 16)]),
                address,
                index: 1,
            },
            StackConfig::new(address, 1420, 1),
            Duration::ZERO,
        );
        let local = udp.local_addr().unwrap();
        Link::new("t".into(), node, udp, local, (0, 0))
    }

    /// Runs of equal sizes, a shorter one ending a run, one longer than the run, a run longer
    /// than one system call takes, and a second destination: each datagram arrives as sent,
    /// in order, whether the kernel segments the runs or they go one by one.
    #[test]
    fn gathered_datagrams_arrive_one_by_one_as_sent() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let link = link(sender);
        let mut sent_a = Vec::new();
        let mut sent_b = Vec::new();
        let mut n = 0u8;
        let mut datagram = |len: usize| {
            n = n.wrapping_add(1);
            vec![n; len]
        };
        link.sending(|send| {
            let mut out = |to: SocketAddr, d: Vec<u8>| {
                send(to, &d);
                if to == to_a {
                    sent_a.push(d)
                } else {
                    sent_b.push(d)
                }
            };
            for _ in 0..3 {
                out(to_a, datagram(1452));
            }
            out(to_a, datagram(92));
            out(to_a, datagram(92));
            out(to_a, datagram(1452));
            // More than GSO_SEGMENTS: two system calls. (Small, so that the receiver's
            // default buffer holds them all.)
            for _ in 0..70 {
                out(to_a, datagram(300));
            }
            out(to_b, datagram(300));
            out(to_a, datagram(300));
            out(to_a, datagram(60));
        });
        for (socket, sent) in [(&a, &sent_a), (&b, &sent_b)] {
            let mut buf = [0u8; 65_536];
            for (i, want) in sent.iter().enumerate() {
                let n = socket.recv(&mut buf).expect("datagram");
                assert_eq!(&buf[..n], &want[..], "datagram {i}");
            }
        }
        assert_eq!(link.send_errors.load(Ordering::Relaxed), 0);
        assert!(
            link.gso.load(Ordering::Relaxed),
            "loopback takes segmented sends"
        );
        // Runs: 3 x 1452 ended by a 92; 1452 ended by a 300; 64 x 300; 5 x 300 (ended by the
        // change of address); 300 ended by the 60. The second 92 and the 300 to `b` go alone.
        assert_eq!(link.runs_sent.load(Ordering::Relaxed), 5);
    }

    /// With receive offload a run sent in one call is read in one, and the driver's read
    /// splits it back into the datagrams sent.
    #[tokio::test]
    async fn a_run_is_read_at_once_and_split_as_sent() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        nix::sys::socket::setsockopt(&receiver, nix::sys::socket::sockopt::UdpGroSegment, &true)
            .unwrap();
        receiver.set_nonblocking(true).unwrap();
        let to = receiver.local_addr().unwrap();
        let receiver = tokio::net::UdpSocket::from_std(receiver).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = sender.local_addr().unwrap();
        let link = link(sender);
        let sent: Vec<Vec<u8>> = (0..10u8)
            .map(|i| vec![i; 1452])
            .chain([vec![99; 100]])
            .collect();
        link.sending(|send| sent.iter().for_each(|d| send(to, d)));
        let (mut buf, mut control) = (vec![0u8; 65_536], nix::cmsg_space!(i32));
        let mut got = Vec::new();
        let mut reads = 0;
        while got.len() < sent.len() {
            receiver.readable().await.unwrap();
            match super::super::driver::receive(&receiver, &mut buf, &mut control) {
                Ok((n, sender, segment)) => {
                    assert_eq!(sender, from);
                    got.extend(buf[..n].chunks(segment).map(<[u8]>::to_vec));
                    reads += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, sent);
        assert_eq!(reads, 1, "one read for the whole run");
    }
}
