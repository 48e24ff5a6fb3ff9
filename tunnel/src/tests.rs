//! Two nodes joined by an in-memory wire: the whole tunnel without a socket.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::{
    public_key, AllowedIps, Conn, DropReason, EngineConfig, Node, Stack, StackConfig, TunnelState,
};

const A_UDP: &str = "127.0.0.1:40001";
const B_UDP: &str = "127.0.0.1:40002";
const A_IP: &str = "10.20.255.1";
const B_IP: &str = "10.20.1.10";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One end of the wire at time zero; `index` (1 or 2) tells the ends' sessions and stack
/// seeds apart.
fn end(
    private_key: [u8; 32],
    peer_private_key: [u8; 32],
    endpoint: Option<SocketAddr>,
    allowed_ips: AllowedIps,
    address: &str,
    index: u32,
) -> Node {
    Node::new(
        EngineConfig {
            private_key,
            peer_public_key: public_key(peer_private_key),
            preshared_key: Some([3; 32]),
            persistent_keepalive: None,
            endpoint,
            allowed_ips,
            address: ip(address),
            index,
        },
        StackConfig::new(ip(address), 1420, 10 + u64::from(index)),
        Duration::ZERO,
    )
}

/// A decides whether each datagram crosses the wire (and may damage it).
type Fate = Box<dyn FnMut(u64, &mut Vec<u8>) -> bool>;

struct Wire {
    a: Node,
    b: Node,
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    now: Duration,
    sent: u64,
    fate: Fate,
}

impl Wire {
    /// A (10.20.255.1) knows B's endpoint; B learns A's. B accepts A's whole /16.
    fn new(b_allows: AllowedIps) -> Wire {
        let (ka, kb) = ([7u8; 32], [9u8; 32]);
        let a_allows = AllowedIps::new([(ip("10.20.0.0"), 16)]);
        Wire {
            a: end(ka, kb, Some(addr(B_UDP)), a_allows, A_IP, 1),
            b: end(kb, ka, None, b_allows, B_IP, 2),
            queue: VecDeque::new(),
            now: Duration::ZERO,
            sent: 0,
            fate: Box::new(|_, _| true),
        }
    }

    /// One millisecond: both nodes run, then everything in flight arrives (or not), then
    /// both work out where their tunnel stands.
    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        // boringtun's clock follows the wire's (with the mock-instant feature).
        #[cfg(feature = "mock-instant")]
        mock_instant::MockClock::advance(Duration::from_millis(1));
        let mut out = Vec::new();
        self.a
            .poll(self.now, &mut |to, d| out.push((to, d.to_vec(), A_UDP)));
        self.b
            .poll(self.now, &mut |to, d| out.push((to, d.to_vec(), B_UDP)));
        self.a
            .tick(self.now, &mut |to, d| out.push((to, d.to_vec(), A_UDP)));
        self.b
            .tick(self.now, &mut |to, d| out.push((to, d.to_vec(), B_UDP)));
        for (to, d, from) in out {
            self.queue
                .push_back((to, [from.as_bytes(), b"|", &d].concat()));
        }
        while let Some((to, framed)) = self.queue.pop_front() {
            let split = framed.iter().position(|&b| b == b'|').unwrap();
            let from = addr(std::str::from_utf8(&framed[..split]).unwrap());
            let mut datagram = framed[split + 1..].to_vec();
            self.sent += 1;
            if !(self.fate)(self.sent, &mut datagram) {
                continue;
            }
            let mut replies = Vec::new();
            let node = if to == addr(B_UDP) {
                &mut self.b
            } else {
                &mut self.a
            };
            node.receive(from, &datagram, &mut |to, d| replies.push((to, d.to_vec())));
            let me = if to == addr(B_UDP) { B_UDP } else { A_UDP };
            for (to, d) in replies {
                self.queue
                    .push_back((to, [me.as_bytes(), b"|", &d].concat()));
            }
        }
        self.a.observe(self.now);
        self.b.observe(self.now);
    }

    /// A connects to B:8080; returns (A's end, B's end).
    fn connect(&mut self) -> (Conn, Conn) {
        self.b.stack.listen(8080);
        let a_end = self.a.stack.connect(addr(&format!("{B_IP}:8080"))).unwrap();
        for _ in 0..5_000 {
            self.step();
            if let Poll::Ready(r) = self.a.stack.poll_connected(a_end, Waker::noop()) {
                r.unwrap();
                if let Some((b_end, port)) = self.b.stack.accept() {
                    assert_eq!(port, 8080);
                    return (a_end, b_end);
                }
            }
        }
        panic!("no connection after 5 virtual seconds");
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// One end of a transfer: what it has to send, how far it got, and what it has read.
struct Flow<'a> {
    conn: Conn,
    out: &'a [u8],
    at: usize,
    shut: bool,
    got: Vec<u8>,
}

impl<'a> Flow<'a> {
    fn new(conn: Conn, out: &'a [u8]) -> Self {
        Flow {
            conn,
            out,
            at: 0,
            shut: false,
            got: Vec::new(),
        }
    }

    /// Writes what it can of the rest (shutting its end once all is written), then reads
    /// all that has arrived; true once the other end has shut.
    fn pump(&mut self, stack: &mut Stack, buf: &mut [u8]) -> bool {
        if self.at < self.out.len() {
            if let Poll::Ready(n) = stack.write(self.conn, &self.out[self.at..], Waker::noop()) {
                self.at += n.unwrap();
            }
        } else if !self.shut {
            stack.shutdown(self.conn);
            self.shut = true;
        }
        while let Poll::Ready(n) = stack.read(self.conn, buf, Waker::noop()) {
            let n = n.unwrap();
            if n == 0 {
                return true;
            }
            self.got.extend_from_slice(&buf[..n]);
        }
        false
    }
}

/// Moves `down` from B to A and `up` from A to B at once; returns what each side read.
fn transfer(
    wire: &mut Wire,
    a_end: Conn,
    b_end: Conn,
    up: &[u8],
    down: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (mut a, mut b) = (Flow::new(a_end, up), Flow::new(b_end, down));
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..2_000_000 {
        let a_done = a.pump(&mut wire.a.stack, &mut buf);
        let b_done = b.pump(&mut wire.b.stack, &mut buf);
        if a_done && b_done {
            return (a.got, b.got);
        }
        wire.step();
    }
    panic!(
        "transfer stalled: A read {} of {}, B read {} of {}",
        a.got.len(),
        down.len(),
        b.got.len(),
        up.len()
    );
}

#[test]
fn megabytes_cross_both_ways_intact() {
    let mut wire = Wire::new(AllowedIps::new([(ip("10.20.0.0"), 16)]));
    let (a_end, b_end) = wire.connect();
    let down = pattern(6 << 20, 1);
    let up = pattern(2 << 20, 2);
    let (got_a, got_b) = transfer(&mut wire, a_end, b_end, &up, &down);
    assert!(got_a == down, "download damaged ({} bytes)", got_a.len());
    assert!(got_b == up, "upload damaged ({} bytes)", got_b.len());
    assert_eq!(
        wire.b.engine.endpoint(),
        Some(addr(A_UDP)),
        "B learned A's endpoint"
    );
    assert!(wire.a.engine.stats.handshakes >= 1);
    assert_eq!(wire.a.engine.stats.dropped, [0; DropReason::ALL.len()]);
    assert_eq!(wire.b.engine.stats.dropped, [0; DropReason::ALL.len()]);
    // Released connections are freed once closed.
    wire.a.stack.release(a_end);
    wire.b.stack.release(b_end);
    for _ in 0..100 {
        wire.step();
    }
    assert_eq!(wire.a.stack.connections(), 0);
}

#[test]
fn a_lossy_and_corrupting_wire_recovers() {
    let mut wire = Wire::new(AllowedIps::new([(ip("10.20.0.0"), 16)]));
    let (a_end, b_end) = wire.connect();
    // From now on: every 17th datagram is lost, every 23rd has a byte flipped.
    wire.fate = Box::new(|n, d| {
        if n.is_multiple_of(23) {
            let i = d.len() / 2;
            d[i] ^= 0x5a;
        }
        !n.is_multiple_of(17)
    });
    let down = pattern(1 << 20, 3);
    let up = pattern(256 << 10, 4);
    let (got_a, got_b) = transfer(&mut wire, a_end, b_end, &up, &down);
    assert!(got_a == down, "download damaged ({} bytes)", got_a.len());
    assert!(got_b == up, "upload damaged ({} bytes)", got_b.len());
    let damaged = |node: &Node| {
        node.engine.stats.dropped(DropReason::Unauthenticated)
            + node.engine.stats.dropped(DropReason::Malformed)
    };
    assert!(
        damaged(&wire.a) + damaged(&wire.b) > 0,
        "corruption was counted"
    );
}

/// The driver's liveness on real engines: up once connected; a peer that goes silent while
/// data is in flight makes the tunnel down [`crate::DOWN_AFTER`] after the first unanswered
/// packet, handshakes are offered meanwhile, and the tunnel is up again once the peer answers.
#[test]
fn a_silent_peer_is_down_after_10_s_and_up_when_it_answers_again() {
    let mut wire = Wire::new(AllowedIps::new([(ip("10.20.0.0"), 16)]));
    let (a_end, _b_end) = wire.connect();
    // A's last ACK of the connect goes unanswered: after 2 s A offers a handshake, B's reply
    // answers it, and nothing is awaited any more.
    let handshakes = wire.a.engine.stats.handshakes;
    for _ in 0..3_000 {
        wire.step();
    }
    assert_eq!(wire.a.engine.stats.handshakes, handshakes + 1);
    assert_eq!(wire.a.liveness().state(), TunnelState::Up);
    assert_eq!(wire.b.liveness().state(), TunnelState::Up);
    let silent = Rc::new(Cell::new(true));
    let initiations = Rc::new(Cell::new(0u32));
    wire.fate = Box::new({
        let (silent, initiations) = (Rc::clone(&silent), Rc::clone(&initiations));
        move |_, d| {
            if silent.get() && d.first() == Some(&1) {
                initiations.set(initiations.get() + 1);
            }
            !silent.get()
        }
    });
    let written = wire.a.stack.write(a_end, b"anyone there?", Waker::noop());
    assert!(matches!(written, Poll::Ready(Ok(13))), "{written:?}");
    wire.step();
    let sent_at = wire.now;
    while wire.a.liveness().state() == TunnelState::Up {
        assert!(wire.now - sent_at < crate::DOWN_AFTER * 2, "never down");
        wire.step();
    }
    assert_eq!(wire.a.liveness().state(), TunnelState::Down);
    assert_eq!(wire.now - sent_at, crate::DOWN_AFTER);
    assert!(initiations.get() >= 1, "no handshake offered while silent");
    silent.set(false);
    let back_at = wire.now;
    while wire.a.liveness().state() != TunnelState::Up {
        assert!(
            wire.now - back_at < Duration::from_secs(30),
            "never up again"
        );
        wire.step();
    }
    assert_eq!(wire.a.liveness().last_received(), Some(wire.now));
}

#[test]
fn inner_sources_outside_allowed_ips_are_dropped_and_counted() {
    // B admits only 10.20.255.1/32; A then sends a packet claiming to come from 10.20.7.7.
    let mut wire = Wire::new(AllowedIps::new([(ip(A_IP), 32)]));
    let (_a_end, _b_end) = wire.connect();
    let before = wire.b.engine.stats.rx_packets;
    let mut spoofed = ipv4_packet(ip("10.20.7.7"), ip(B_IP));
    let mut out = Vec::new();
    wire.a
        .engine
        .send(&spoofed, &mut |to, d| out.push((to, d.to_vec())));
    // And one for an address that is not B's.
    spoofed = ipv4_packet(ip(A_IP), ip("10.20.1.11"));
    wire.a
        .engine
        .send(&spoofed, &mut |to, d| out.push((to, d.to_vec())));
    for (_, d) in out {
        wire.b.receive(addr(A_UDP), &d, &mut |_, _| {});
    }
    assert_eq!(wire.b.engine.stats.dropped(DropReason::SourceNotAllowed), 1);
    assert_eq!(wire.b.engine.stats.dropped(DropReason::NotForUs), 1);
    assert_eq!(wire.b.engine.stats.rx_packets, before);
}

#[test]
fn garbage_datagrams_are_counted_not_fatal() {
    let mut wire = Wire::new(AllowedIps::new([(ip("10.20.0.0"), 16)]));
    let (a_end, b_end) = wire.connect();
    let mut noise = 0x1234_5678u32;
    for len in [0usize, 1, 4, 31, 32, 33, 92, 148, 149, 1500] {
        for kind in 0..6u8 {
            let mut d: Vec<u8> = (0..len)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 17;
                    noise ^= noise << 5;
                    noise as u8
                })
                .collect();
            if let Some(first) = d.first_mut() {
                *first = kind;
            }
            wire.b.receive(addr("127.0.0.9:9"), &d, &mut |_, _| {});
        }
    }
    assert_eq!(
        wire.b.engine.endpoint(),
        Some(addr(A_UDP)),
        "garbage did not move the endpoint"
    );
    let (got_a, _) = transfer(&mut wire, a_end, b_end, b"ping", b"pong");
    assert_eq!(got_a, b"pong");
}

/// A minimal IPv4/UDP packet from `src` to `dst`.
fn ipv4_packet(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        unreachable!()
    };
    let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, 9, 0, 9, 0, 8, 0, 0]);
    p
}

/// WireGuard rekeys a session after 120 s; traffic must carry on across it without a stall.
/// Needs boringtun's mock clock: `cargo test -p augur-tunnel --features mock-instant`.
#[cfg(feature = "mock-instant")]
#[test]
fn a_rekey_after_120_seconds_does_not_stall_traffic() {
    let mut wire = Wire::new(AllowedIps::new([(ip("10.20.0.0"), 16)]));
    let (a_end, b_end) = wire.connect();
    let chunk = pattern(4096, 5);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sent, mut received) = (0usize, 0usize);
    let mut last_progress = wire.now;
    let mut longest_gap = Duration::ZERO;
    let start = wire.now;
    // 130 virtual seconds of a steady trickle (4 KiB every 10 ms) from A to B.
    while wire.now - start < Duration::from_secs(130) {
        if wire.now.as_millis().is_multiple_of(10) {
            if let Poll::Ready(n) = wire.a.stack.write(a_end, &chunk, Waker::noop()) {
                sent += n.unwrap();
            }
        }
        while let Poll::Ready(n) = wire.b.stack.read(b_end, &mut buf, Waker::noop()) {
            let n = n.unwrap();
            assert!(n > 0, "B's end closed");
            received += n;
            longest_gap = longest_gap.max(wire.now - last_progress);
            last_progress = wire.now;
        }
        wire.step();
    }
    assert!(
        wire.a.engine.stats.handshakes >= 2,
        "a rekeyed ({} handshakes)",
        wire.a.engine.stats.handshakes
    );
    assert!(
        received + 64 * 1024 >= sent,
        "received {received} of {sent}"
    );
    assert!(
        longest_gap < Duration::from_millis(500),
        "traffic stalled for {longest_gap:?} around the rekey"
    );
    assert_eq!(wire.a.engine.stats.dropped, [0; DropReason::ALL.len()]);
    assert_eq!(wire.b.engine.stats.dropped, [0; DropReason::ALL.len()]);
}
