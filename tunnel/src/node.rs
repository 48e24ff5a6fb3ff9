//! One end of a tunnel without its sockets: the WireGuard engine and the TCP/IP stack joined,
//! and whether the peer answers. Datagrams in, datagrams out; the caller owns the UDP socket
//! and the clock.

use std::net::SocketAddr;
use std::time::Duration;

use crate::engine::{Engine, EngineConfig};
use crate::liveness::{Liveness, Signals, TunnelState};
use crate::stack::{Stack, StackConfig};

/// One tunnel endpoint.
pub struct Node {
    /// The WireGuard side.
    pub engine: Engine,
    /// The TCP/IP side.
    pub stack: Stack,
    liveness: Liveness,
}

impl Node {
    /// A node at time `now` (on the caller's clock).
    pub fn new(engine: EngineConfig, stack: StackConfig, now: Duration) -> Node {
        Node {
            engine: Engine::new(engine),
            stack: Stack::new(stack, now),
            liveness: Liveness::new(now),
        }
    }

    /// A datagram arrived from `from`. Handshake replies go straight to `network`;
    /// decrypted packets wait in the stack for the next [`Node::poll`].
    pub fn receive(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        network: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        let stack = &mut self.stack;
        self.engine.receive(from, datagram, network, &mut |packet| {
            stack.push_received(packet)
        });
    }

    /// Runs the stack and encrypts what it sends.
    pub fn poll(&mut self, now: Duration, network: &mut dyn FnMut(SocketAddr, &[u8])) {
        let engine = &mut self.engine;
        self.stack
            .poll(now, &mut |packet| engine.send(packet, network));
    }

    /// Runs what is due at `now`: WireGuard's timers every [`crate::TICK`], and a handshake
    /// offered when the peer seems to have lost our session or the tunnel is down. Call at
    /// least at [`Liveness::next_tick`].
    pub fn tick(&mut self, now: Duration, network: &mut dyn FnMut(SocketAddr, &[u8])) {
        let endpoint_known = self.engine.endpoint().is_some();
        if let Some(tick) = self.liveness.tick(now, endpoint_known) {
            self.engine.tick(network);
            if tick.offer_handshake {
                self.engine.initiate(network);
            }
        }
    }

    /// Works out where the tunnel stands at `now` from what was sent and what came back;
    /// returns the new state if it changed.
    pub fn observe(&mut self, now: Duration) -> Option<TunnelState> {
        let stats = &self.engine.stats;
        self.liveness.observe(
            now,
            Signals {
                tx_packets: stats.tx_packets,
                rx_authenticated: stats.rx_authenticated,
                session_age: self.engine.handshake_age(),
            },
        )
    }

    /// Whether the peer answers, and when the node next wants a tick.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }
}
