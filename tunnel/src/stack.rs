//! The userspace TCP/IP stack (smoltcp) for the connections carried inside a tunnel. Inner
//! packets come in through [`Stack::push_received`] and go out through the closure given to
//! [`Stack::poll`]; connections are read and written with `std::task` wakers, so any async
//! runtime can drive them. No sockets, no clock: `now` is an argument.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::{Poll, Waker};
use std::time::Duration;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, CongestionControl, RecvError, SendError, State};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

/// Inner packets waiting for the stack; beyond this, new ones are dropped (TCP recovers).
const RX_BACKLOG: usize = 4096;
/// Listening sockets kept ready per forwarded port (smoltcp needs one per handshake).
const LISTEN_BACKLOG: usize = 32;
/// Spare packet buffers kept for reuse.
const SPARE_BUFFERS: usize = 1024;
/// A connection its owner dropped is aborted if it has not closed by then.
const LINGER: Duration = Duration::from_secs(30);
/// Ephemeral ports for outgoing connections.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49_152..=65_535;

/// Sizes and behaviour of the stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Our address inside the tunnel.
    pub address: IpAddr,
    /// Largest inner packet (the tunnel MTU).
    pub mtu: usize,
    /// Receive buffer per connection (its advertised window).
    pub rx_buffer: usize,
    /// Send buffer per connection (how much unacknowledged data it holds before writes wait).
    pub tx_buffer: usize,
    /// Seed for initial sequence numbers and ports.
    pub seed: u64,
}

impl StackConfig {
    /// Defaults for `address` and `mtu`: 256 KiB buffers each way.
    pub fn new(address: IpAddr, mtu: usize, seed: u64) -> StackConfig {
        StackConfig {
            address,
            mtu,
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            seed,
        }
    }
}

/// A connection inside the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conn(SocketHandle);

/// Why a connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The destination's family differs from the tunnel address's.
    WrongFamily,
    /// Every ephemeral port is in use.
    NoPorts,
    /// smoltcp refused the endpoint.
    Unaddressable,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectError::WrongFamily => "destination family differs from the tunnel address",
            ConnectError::NoPorts => "no free ephemeral port in the tunnel",
            ConnectError::Unaddressable => "destination not addressable",
        })
    }
}

impl std::error::Error for ConnectError {}

struct Listener {
    port: u16,
    sockets: Vec<SocketHandle>,
}

/// The stack: an interface, its sockets and the packet queues between it and the engine.
pub struct Stack {
    iface: Interface,
    device: Queues,
    sockets: SocketSet<'static>,
    config: StackConfig,
    ports: HashSet<u16>,
    port_of: std::collections::HashMap<SocketHandle, u16>,
    next_port: u16,
    orphans: Vec<(SocketHandle, Duration)>,
    listeners: Vec<Listener>,
    accepted: VecDeque<(Conn, u16)>,
    now: Duration,
}

impl Stack {
    /// An interface with `config.address`, at time `now`.
    pub fn new(config: StackConfig, now: Duration) -> Stack {
        let mut device = Queues::new(config.mtu);
        let mut iface_config = Config::new(HardwareAddress::Ip);
        iface_config.random_seed = config.seed;
        let mut iface = Interface::new(iface_config, &mut device, instant(now));
        let (cidr, route) = match config.address {
            IpAddr::V4(a) => (IpCidr::new(IpAddress::Ipv4(a), 32), a.into()),
            IpAddr::V6(a) => (IpCidr::new(IpAddress::Ipv6(a), 128), a.into()),
        };
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(cidr);
        });
        // Every destination is reached through the tunnel: route everything via ourselves
        // (a point-to-point interface has no next hop to resolve).
        let _ = match route {
            IpAddress::Ipv4(a) => iface.routes_mut().add_default_ipv4_route(a).map(|_| ()),
            IpAddress::Ipv6(a) => iface.routes_mut().add_default_ipv6_route(a).map(|_| ()),
        };
        let span = u64::from(EPHEMERAL.end() - EPHEMERAL.start());
        let next_port = EPHEMERAL.start() + (config.seed % span) as u16;
        Stack {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            config,
            ports: HashSet::new(),
            port_of: std::collections::HashMap::new(),
            next_port,
            orphans: Vec::new(),
            listeners: Vec::new(),
            accepted: VecDeque::new(),
            now,
        }
    }

    /// Queues a decrypted inner packet for the stack. False if the queue is full.
    pub fn push_received(&mut self, packet: &[u8]) -> bool {
        if self.device.rx.len() >= RX_BACKLOG {
            return false;
        }
        let mut buffer = self.device.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(packet);
        self.device.rx.push_back(buffer);
        true
    }

    /// Runs the stack at `now`: takes in queued packets, lets every connection send what it
    /// may, and hands each outgoing inner packet to `emit`.
    pub fn poll(&mut self, now: Duration, emit: &mut dyn FnMut(&[u8])) {
        self.now = now;
        self.iface
            .poll(instant(now), &mut self.device, &mut self.sockets);
        while let Some(packet) = self.device.tx.pop_front() {
            emit(&packet);
            self.device.recycle(packet);
        }
        self.device.recycle_received();
        self.sweep(now);
    }

    /// How long until the stack needs polling again if nothing happens (retransmits, delayed
    /// acknowledgements). `None`: not until something happens.
    pub fn poll_delay(&mut self, now: Duration) -> Option<Duration> {
        self.iface
            .poll_delay(instant(now), &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }

    /// Opens a connection to `remote` (the handshake happens on later polls).
    pub fn connect(&mut self, remote: SocketAddr) -> Result<Conn, ConnectError> {
        if remote.is_ipv4() != self.config.address.is_ipv4() {
            return Err(ConnectError::WrongFamily);
        }
        let port = self.free_port().ok_or(ConnectError::NoPorts)?;
        let mut socket = self.new_socket();
        socket
            .connect(self.iface.context(), remote, port)
            .map_err(|_| ConnectError::Unaddressable)?;
        let handle = self.sockets.add(socket);
        self.ports.insert(port);
        self.port_of.insert(handle, port);
        Ok(Conn(handle))
    }

    /// Accepts connections arriving for our address on `port`.
    pub fn listen(&mut self, port: u16) {
        if self.listeners.iter().all(|l| l.port != port) {
            self.listeners.push(Listener {
                port,
                sockets: Vec::new(),
            });
            self.replenish();
        }
    }

    /// A connection that arrived on a listened port, and the port.
    pub fn accept(&mut self) -> Option<(Conn, u16)> {
        self.accepted.pop_front()
    }

    /// Ready once the connection is established; an error if it was refused or timed out.
    pub fn poll_connected(&mut self, conn: Conn, waker: &Waker) -> Poll<io::Result<()>> {
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.0);
        match socket.state() {
            State::SynSent | State::SynReceived => {
                socket.register_send_waker(waker);
                Poll::Pending
            }
            State::Closed | State::TimeWait | State::Listen => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "connection refused or reset inside the tunnel",
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Reads into `buf`: `Ok(0)` at the end of the stream; pending (waker registered) when
    /// nothing is buffered yet.
    pub fn read(&mut self, conn: Conn, buf: &mut [u8], waker: &Waker) -> Poll<io::Result<usize>> {
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.0);
        let read = match socket.recv_slice(buf) {
            Err(RecvError::Finished) => return Poll::Ready(Ok(0)),
            Err(RecvError::InvalidState) => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset inside the tunnel",
            )),
            Ok(n) => Ok(n),
        };
        ready_or_wait(read, buf.len(), || socket.register_recv_waker(waker))
    }

    /// Writes from `buf` into the send buffer; pending (waker registered) when it is full.
    pub fn write(&mut self, conn: Conn, buf: &[u8], waker: &Waker) -> Poll<io::Result<usize>> {
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.0);
        let written = socket.send_slice(buf).map_err(|SendError::InvalidState| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection closed inside the tunnel",
            )
        });
        ready_or_wait(written, buf.len(), || socket.register_send_waker(waker))
    }

    /// Bytes received and not yet read.
    pub fn readable(&mut self, conn: Conn) -> usize {
        self.sockets.get_mut::<tcp::Socket>(conn.0).recv_queue()
    }

    /// Whether less than half the receive window is open (reading then reopens it, which the
    /// other end may be waiting to hear).
    pub fn window_low(&mut self, conn: Conn) -> bool {
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.0);
        socket.recv_queue() * 2 >= socket.recv_capacity()
    }

    /// Sends FIN after the buffered data.
    pub fn shutdown(&mut self, conn: Conn) {
        self.sockets.get_mut::<tcp::Socket>(conn.0).close();
    }

    /// The owner is done with `conn`: it closes gracefully in the background and is freed
    /// once closed (or aborted after a linger time).
    pub fn release(&mut self, conn: Conn) {
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.0);
        if socket.recv_queue() > 0 {
            // Unread data: tell the other end at once, as a kernel socket would.
            socket.abort();
        } else {
            socket.close();
        }
        self.orphans.push((conn.0, self.now));
    }

    /// Connections open (including those closing in the background).
    pub fn connections(&self) -> usize {
        self.sockets.iter().count()
    }

    fn new_socket(&self) -> tcp::Socket<'static> {
        let rx = tcp::SocketBuffer::new(vec![0; self.config.rx_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0; self.config.tx_buffer]);
        let mut socket = tcp::Socket::new(rx, tx);
        // Without congestion control smoltcp floods the path and throughput collapses.
        socket.set_congestion_control(CongestionControl::Cubic);
        socket.set_nagle_enabled(false);
        socket.set_timeout(Some(Duration::from_secs(60).into()));
        socket
    }

    fn free_port(&mut self) -> Option<u16> {
        let span = usize::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port == *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                port + 1
            };
            if !self.ports.contains(&port) {
                return Some(port);
            }
        }
        None
    }

    /// Frees closed orphans, hands established connections of listeners to `accept`, and
    /// keeps each listener's sockets ready.
    fn sweep(&mut self, now: Duration) {
        let mut i = 0;
        while i < self.orphans.len() {
            let (handle, since) = self.orphans[i];
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            let done = matches!(socket.state(), State::Closed | State::TimeWait);
            if done || now.saturating_sub(since) > LINGER {
                self.sockets.remove(handle);
                if let Some(port) = self.port_of.remove(&handle) {
                    self.ports.remove(&port);
                }
                self.orphans.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if !self.listeners.is_empty() {
            self.replenish();
        }
    }

    fn replenish(&mut self) {
        for l in 0..self.listeners.len() {
            let port = self.listeners[l].port;
            let mut ready = 0;
            let mut kept = Vec::with_capacity(self.listeners[l].sockets.len());
            for &handle in &self.listeners[l].sockets {
                let socket = self.sockets.get_mut::<tcp::Socket>(handle);
                match socket.state() {
                    State::Listen => {
                        ready += 1;
                        kept.push(handle);
                    }
                    State::SynReceived => kept.push(handle),
                    State::Closed => {
                        // A handshake that failed: listen again.
                        if socket.listen(port).is_ok() {
                            ready += 1;
                            kept.push(handle);
                        } else {
                            self.sockets.remove(handle);
                        }
                    }
                    _ => self.accepted.push_back((Conn(handle), port)),
                }
            }
            while ready < LISTEN_BACKLOG {
                let mut socket = self.new_socket();
                if socket.listen(port).is_err() {
                    break;
                }
                kept.push(self.sockets.add(socket));
                ready += 1;
            }
            self.listeners[l].sockets = kept;
        }
    }
}

/// What a read or write of a `len`-byte buffer moved, ready; but nothing moved of a non-empty
/// buffer means "not yet": pending, once `register_waker` has asked to be woken.
fn ready_or_wait(
    moved: io::Result<usize>,
    len: usize,
    register_waker: impl FnOnce(),
) -> Poll<io::Result<usize>> {
    match moved {
        Ok(0) if len > 0 => {
            register_waker();
            Poll::Pending
        }
        moved => Poll::Ready(moved),
    }
}

fn instant(now: Duration) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.as_micros() as i64)
}

/// The stack's device: two packet queues and a pool of buffers.
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    consumed: Vec<Vec<u8>>,
    mtu: usize,
}

impl Queues {
    fn new(mtu: usize) -> Queues {
        Queues {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            spare: Vec::new(),
            consumed: Vec::new(),
            mtu,
        }
    }

    fn recycle(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buffer);
        }
    }

    fn recycle_received(&mut self) {
        while let Some(buffer) = self.consumed.pop() {
            self.recycle(buffer);
        }
    }
}

impl phy::Device for Queues {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((
            RxToken {
                packet,
                consumed: &mut self.consumed,
            },
            TxToken {
                tx: &mut self.tx,
                spare: &mut self.spare,
            },
        ))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken {
            tx: &mut self.tx,
            spare: &mut self.spare,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        // WireGuard's AEAD already proved every received packet intact: verifying checksums
        // again would only cost time. Outgoing ones are computed (the peer's kernel checks).
        let mut checksum = ChecksumCapabilities::default();
        checksum.ipv4 = Checksum::Tx;
        checksum.tcp = Checksum::Tx;
        checksum.udp = Checksum::Tx;
        checksum.icmpv4 = Checksum::Tx;
        checksum.icmpv6 = Checksum::Tx;
        caps.checksum = checksum;
        caps
    }
}

struct RxToken<'a> {
    packet: Vec<u8>,
    consumed: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let result = f(&self.packet);
        self.consumed.push(self.packet);
        result
    }
}

struct TxToken<'a> {
    tx: &'a mut VecDeque<Vec<u8>>,
    spare: &'a mut Vec<Vec<u8>>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.resize(len, 0);
        let result = f(&mut buffer);
        self.tx.push_back(buffer);
        result
    }
}
