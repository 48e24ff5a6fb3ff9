//! augur-tunnel: the core of augur's WireGuard tunnels, free of sockets and clocks.
//!
//! A tunnel reaches backends in another data centre without privileges, a TUN device or a
//! kernel module: boringtun's noise state machine encrypts and decrypts, and a userspace
//! TCP/IP stack (smoltcp) carries the connections inside. Because each tunnel has its own
//! stack, overlapping subnets in different data centres do not clash.
//!
//! - [`Engine`]: one WireGuard peer. It learns the peer's endpoint from authenticated
//!   messages, checks every decrypted packet's source against the peer's `allowed_ips` and
//!   its destination against our tunnel address (boringtun does neither), drains boringtun's
//!   queue after every reply, and counts every drop by [`DropReason`].
//! - [`Stack`]: the TCP/IP stack. Congestion control (CUBIC) is on for every connection,
//!   Nagle is off, buffers are bounded (a full send buffer makes writes wait, so a fast
//!   uploader is slowed down rather than buffered without limit).
//! - [`Liveness`]: whether the peer answers (up, connecting, down) and when to offer it a
//!   handshake, worked out from the engine's counters on the caller's clock.
//! - [`Node`]: all three joined; the caller feeds it datagrams and a clock and sends what it
//!   emits. augur's proxy runs one per tunnel on its own thread.
#![forbid(unsafe_code)]

mod connect;
mod engine;
mod liveness;
mod node;
mod prefix;
mod stack;

pub use connect::{connect_head, ConnectHead, CONNECT_HEAD_MAX};
pub use engine::{destination, DropReason, Engine, EngineConfig, EngineStats};
pub use liveness::{
    Liveness, Signals, Tick, TunnelState, DOWN_AFTER, PROBE_AFTER, PROBE_EVERY, SESSION_LIFETIME,
    TICK,
};
pub use node::Node;
pub use prefix::AllowedIps;
pub use stack::{Conn, ConnectError, Stack, StackConfig};

#[cfg(test)]
mod tests;

/// The X25519 public key of a private key.
pub fn public_key(private: [u8; 32]) -> [u8; 32] {
    let secret = boringtun::x25519::StaticSecret::from(private);
    *boringtun::x25519::PublicKey::from(&secret).as_bytes()
}
