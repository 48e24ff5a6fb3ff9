//! The WireGuard side of a tunnel: boringtun's noise state machine, the peer's endpoint, and
//! the checks boringtun leaves to its caller (the inner source against `allowed_ips`, the
//! inner destination against our own address). No sockets: datagrams and inner packets go in
//! and out through the caller's closures.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};

use crate::prefix::AllowedIps;

/// Largest datagram or inner packet handled, plus WireGuard's overhead.
const SCRATCH: usize = 65_536 + 64;

/// Why a datagram or an inner packet was dropped. Counted per tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not a WireGuard message, or one of the wrong length or type.
    Malformed,
    /// Failed authentication: wrong key, bad MAC or AEAD tag, unknown session index.
    Unauthenticated,
    /// A replayed or too-old counter.
    Replay,
    /// Data for a session we no longer (or never) had.
    NoSession,
    /// Handshakes refused while under load (a cookie was sent instead).
    UnderLoad,
    /// Decrypted, but its inner source is outside the peer's `allowed_ips`.
    SourceNotAllowed,
    /// Decrypted, but not addressed to our tunnel address, or not an IP packet.
    NotForUs,
    /// An inner packet to send, but no peer endpoint is known yet.
    NoEndpoint,
    /// The stack's receive queue was full.
    Backlog,
}

impl DropReason {
    /// Every reason, in the order of [`DropReason::index`].
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::Unauthenticated,
        DropReason::Replay,
        DropReason::NoSession,
        DropReason::UnderLoad,
        DropReason::SourceNotAllowed,
        DropReason::NotForUs,
        DropReason::NoEndpoint,
        DropReason::Backlog,
    ];

    /// Position in [`DropReason::ALL`] (for counter arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The label used in `/status` and `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Unauthenticated => "unauthenticated",
            DropReason::Replay => "replay",
            DropReason::NoSession => "no_session",
            DropReason::UnderLoad => "under_load",
            DropReason::SourceNotAllowed => "source_not_allowed",
            DropReason::NotForUs => "not_for_us",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::Backlog => "backlog",
        }
    }

    fn of(error: &WireGuardError) -> Option<DropReason> {
        use WireGuardError::*;
        Some(match error {
            IncorrectPacketLength
            | WrongPacketType
            | UnexpectedPacket
            | InvalidPacket
            | DestinationBufferTooSmall => DropReason::Malformed,
            WrongIndex
            | WrongKey
            | InvalidMac
            | InvalidAeadTag
            | InvalidTai64nTimestamp
            | WrongTai64nTimestamp => DropReason::Unauthenticated,
            InvalidCounter | DuplicateCounter => DropReason::Replay,
            NoCurrentSession | ConnectionExpired => DropReason::NoSession,
            UnderLoad => DropReason::UnderLoad,
            // Internal to boringtun's device mode, which we do not use.
            LockFailed => return None,
        })
    }
}

/// Counters of one tunnel's WireGuard side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Datagrams received from the network.
    pub rx_datagrams: u64,
    /// Bytes of those datagrams.
    pub rx_bytes: u64,
    /// Datagrams sent to the network.
    pub tx_datagrams: u64,
    /// Bytes of those datagrams.
    pub tx_bytes: u64,
    /// Inner packets delivered to the stack.
    pub rx_packets: u64,
    /// Inner packets encrypted and sent.
    pub tx_packets: u64,
    /// Handshakes completed (a new session keyed).
    pub handshakes: u64,
    /// Datagrams that proved to come from the peer (handshakes, data, keepalives).
    pub rx_authenticated: u64,
    /// Drops, indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::ALL.len()],
}

impl EngineStats {
    /// Counts one drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.dropped[reason.index()] += 1;
    }

    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }
}

/// What the engine needs to know about the tunnel.
#[derive(Clone)]
pub struct EngineConfig {
    /// Our static private key.
    pub private_key: [u8; 32],
    /// The peer's static public key.
    pub peer_public_key: [u8; 32],
    /// Optional preshared key.
    pub preshared_key: Option<[u8; 32]>,
    /// Keepalive interval in seconds, if any.
    pub persistent_keepalive: Option<u16>,
    /// The peer's endpoint, if known in advance.
    pub endpoint: Option<SocketAddr>,
    /// Inner sources the peer may use.
    pub allowed_ips: AllowedIps,
    /// Our own address inside the tunnel.
    pub address: IpAddr,
    /// Session index base (distinct per tunnel, so indices do not collide in logs).
    pub index: u32,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("endpoint", &self.endpoint)
            .field("allowed_ips", &self.allowed_ips)
            .field("address", &self.address)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .finish_non_exhaustive()
    }
}

/// One WireGuard peer: the noise state machine and everything around it.
pub struct Engine {
    tunn: Tunn,
    endpoint: Option<SocketAddr>,
    allowed_ips: AllowedIps,
    address: IpAddr,
    scratch: Box<[u8]>,
    last_handshake: Option<Duration>,
    /// Counters.
    pub stats: EngineStats,
}

impl Engine {
    /// A peer that has not yet shaken hands.
    pub fn new(config: EngineConfig) -> Engine {
        let tunn = Tunn::new(
            StaticSecret::from(config.private_key),
            PublicKey::from(config.peer_public_key),
            config.preshared_key,
            config.persistent_keepalive,
            config.index,
            None,
        );
        Engine {
            tunn,
            endpoint: config.endpoint,
            allowed_ips: config.allowed_ips,
            address: config.address,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            last_handshake: None,
            stats: EngineStats::default(),
        }
    }

    /// Where datagrams go: configured, or learned from the peer's last authenticated message.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint
    }

    /// Points at a new endpoint (a reload changed it).
    pub fn set_endpoint(&mut self, endpoint: Option<SocketAddr>) {
        if endpoint.is_some() {
            self.endpoint = endpoint;
        }
    }

    /// Time since the current session was keyed, if there is one.
    pub fn handshake_age(&self) -> Option<Duration> {
        self.tunn.time_since_last_handshake()
    }

    /// Round-trip time of the last handshake.
    pub fn rtt(&self) -> Option<Duration> {
        self.tunn
            .stats()
            .4
            .map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// A datagram arrived from `from`. Replies go to `network`; decrypted inner packets that
    /// pass the checks go to `inner` (which says whether it took the packet).
    pub fn receive(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        network: &mut dyn FnMut(SocketAddr, &[u8]),
        inner: &mut dyn FnMut(&[u8]) -> bool,
    ) {
        self.stats.rx_datagrams += 1;
        self.stats.rx_bytes += datagram.len() as u64;
        let kind = datagram.first().copied();
        match self
            .tunn
            .decapsulate(Some(from.ip()), datagram, &mut self.scratch)
        {
            TunnResult::Done => {
                // A keepalive, or a handshake response that completed a session.
                if kind == Some(2) || (kind == Some(4) && datagram.len() == 32) {
                    self.endpoint = Some(from);
                    self.stats.rx_authenticated += 1;
                }
            }
            TunnResult::Err(e) => {
                if let Some(reason) = DropReason::of(&e) {
                    self.stats.drop(reason);
                }
            }
            TunnResult::WriteToNetwork(reply) => {
                // A cookie reply (type 3) is sent before the sender is authenticated: answer
                // it where it came from, but do not move the endpoint there.
                let authenticated = reply.first() != Some(&3);
                if authenticated {
                    self.endpoint = Some(from);
                    self.stats.rx_authenticated += 1;
                }
                let to = if authenticated {
                    from
                } else {
                    self.endpoint.unwrap_or(from)
                };
                let len = reply.len();
                self.stats.tx_datagrams += 1;
                self.stats.tx_bytes += len as u64;
                network(to, &self.scratch[..len]);
                self.drain(network);
            }
            TunnResult::WriteToTunnelV4(packet, source) => {
                self.endpoint = Some(from);
                self.stats.rx_authenticated += 1;
                let len = packet.len();
                self.deliver(IpAddr::V4(source), len, inner);
            }
            TunnResult::WriteToTunnelV6(packet, source) => {
                self.endpoint = Some(from);
                self.stats.rx_authenticated += 1;
                let len = packet.len();
                self.deliver(IpAddr::V6(source), len, inner);
            }
        }
        self.note_handshake();
    }

    /// Encrypts an inner packet and sends it to the peer (or queues it in boringtun and
    /// starts a handshake when there is no session yet).
    pub fn send(&mut self, packet: &[u8], network: &mut dyn FnMut(SocketAddr, &[u8])) {
        let Some(endpoint) = self.endpoint else {
            self.stats.drop(DropReason::NoEndpoint);
            return;
        };
        self.stats.tx_packets += 1;
        match self.tunn.encapsulate(packet, &mut self.scratch) {
            TunnResult::WriteToNetwork(datagram) => {
                let len = datagram.len();
                self.stats.tx_datagrams += 1;
                self.stats.tx_bytes += len as u64;
                network(endpoint, &self.scratch[..len]);
            }
            TunnResult::Err(e) => {
                if let Some(reason) = DropReason::of(&e) {
                    self.stats.drop(reason);
                }
            }
            _ => {}
        }
    }

    /// Runs boringtun's timers (handshake retries, keepalives, rekeys, expiry). Call about
    /// every 250 ms.
    pub fn tick(&mut self, network: &mut dyn FnMut(SocketAddr, &[u8])) {
        match self.tunn.update_timers(&mut self.scratch) {
            TunnResult::WriteToNetwork(datagram) => {
                let len = datagram.len();
                if let Some(endpoint) = self.endpoint {
                    self.stats.tx_datagrams += 1;
                    self.stats.tx_bytes += len as u64;
                    network(endpoint, &self.scratch[..len]);
                }
            }
            TunnResult::Err(WireGuardError::ConnectionExpired) => {
                // The session expired (no handshake for 3 minutes); boringtun clears it and
                // starts again on the next packet to send.
            }
            _ => {}
        }
        self.note_handshake();
    }

    /// Starts a handshake now unless one is in progress (to find out whether a silent peer
    /// is back).
    pub fn initiate(&mut self, network: &mut dyn FnMut(SocketAddr, &[u8])) {
        let Some(endpoint) = self.endpoint else {
            return;
        };
        if let TunnResult::WriteToNetwork(datagram) = self
            .tunn
            .format_handshake_initiation(&mut self.scratch, false)
        {
            let len = datagram.len();
            self.stats.tx_datagrams += 1;
            self.stats.tx_bytes += len as u64;
            network(endpoint, &self.scratch[..len]);
        }
    }

    /// After a reply went out: boringtun may hold packets queued while it had no session.
    fn drain(&mut self, network: &mut dyn FnMut(SocketAddr, &[u8])) {
        while let TunnResult::WriteToNetwork(datagram) =
            self.tunn.decapsulate(None, &[], &mut self.scratch)
        {
            let len = datagram.len();
            if let Some(endpoint) = self.endpoint {
                self.stats.tx_datagrams += 1;
                self.stats.tx_bytes += len as u64;
                network(endpoint, &self.scratch[..len]);
            }
        }
    }

    /// Checks a decrypted packet (in `scratch[..len]`) before the stack sees it.
    fn deliver(&mut self, source: IpAddr, len: usize, inner: &mut dyn FnMut(&[u8]) -> bool) {
        let packet = &self.scratch[..len];
        if !self.allowed_ips.contains(source) {
            self.stats.drop(DropReason::SourceNotAllowed);
            return;
        }
        if destination(packet) != Some(self.address) {
            self.stats.drop(DropReason::NotForUs);
            return;
        }
        if inner(packet) {
            self.stats.rx_packets += 1;
        } else {
            self.stats.drop(DropReason::Backlog);
        }
    }

    fn note_handshake(&mut self) {
        let age = self.tunn.time_since_last_handshake();
        if let Some(age) = age {
            // A fresh session shows as an age lower than the last one seen.
            if self.last_handshake.is_none_or(|last| age < last) {
                self.stats.handshakes += 1;
            }
        }
        self.last_handshake = age;
    }
}

/// The destination of an IPv4 or IPv6 packet, if it is one.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let b: [u8; 4] = packet[16..20].try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 if packet.len() >= 40 => {
            let b: [u8; 16] = packet[24..40].try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}
