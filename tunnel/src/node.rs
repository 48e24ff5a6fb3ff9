//! One end of a tunnel without its sockets: the WireGuard engine and the TCP/IP stack joined.
//! Datagrams in, datagrams out; the caller owns the UDP socket and the clock.

use std::net::SocketAddr;
use std::time::Duration;

use crate::engine::{Engine, EngineConfig};
use crate::stack::{Stack, StackConfig};

/// One tunnel endpoint.
pub struct Node {
    /// The WireGuard side.
    pub engine: Engine,
    /// The TCP/IP side.
    pub stack: Stack,
}

impl Node {
    /// A node at time `now` (on the caller's clock).
    pub fn new(engine: EngineConfig, stack: StackConfig, now: Duration) -> Node {
        Node {
            engine: Engine::new(engine),
            stack: Stack::new(stack, now),
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

    /// Runs WireGuard's timers; call about every 250 ms.
    pub fn tick(&mut self, network: &mut dyn FnMut(SocketAddr, &[u8])) {
        self.engine.tick(network);
    }
}
