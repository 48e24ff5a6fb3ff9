//! What a tunnel's driver thread and its connections share: the node behind a mutex, the
//! driver's wake-up, and the state the driver publishes.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use augur_tunnel::Node;
use tokio::sync::Notify;

/// Where a tunnel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelState {
    /// No session yet, and nothing has gone unanswered for long.
    Connecting,
    /// A session, and the peer answers.
    Up,
    /// What we sent went unanswered for [`super::driver::DOWN_AFTER`]; dials fail at once
    /// while the driver keeps offering handshakes.
    Down,
}

impl TunnelState {
    /// The label in `/status` and `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            TunnelState::Connecting => "connecting",
            TunnelState::Up => "up",
            TunnelState::Down => "down",
        }
    }

    fn from_u8(v: u8) -> TunnelState {
        match v {
            1 => TunnelState::Up,
            2 => TunnelState::Down,
            _ => TunnelState::Connecting,
        }
    }
}

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
        }
    }

    /// The node. Held briefly: a read, a write, or one round of the driver.
    pub fn lock(&self) -> MutexGuard<'_, Node> {
        self.node.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a datagram to the peer; a full socket buffer drops it (counted; TCP inside
    /// recovers).
    pub fn send(&self, to: SocketAddr, datagram: &[u8]) {
        if self.udp.send_to(datagram, to).is_err() {
            self.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs the stack now on the calling thread and sends what it emits, so that a write or
    /// a reopened window goes out without a hand-off to the driver. Wakes the driver only
    /// if the stack now needs attention sooner than the driver planned (a new retransmit
    /// timer).
    pub fn flush(&self, node: &mut Node) {
        let now = self.epoch.elapsed();
        node.poll(now, &mut |to, d| self.send(to, d));
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

    /// The published state.
    pub fn state(&self) -> TunnelState {
        TunnelState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(super) fn set_state(&self, state: TunnelState) {
        self.state.store(state as u8, Ordering::Release);
    }
}
