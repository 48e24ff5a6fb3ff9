//! A tunnel's driver: one thread with its own small runtime, owning the UDP socket and the
//! clock. It moves datagrams between the socket and the node, runs the stack when a
//! connection kicks it or a timer is due, ticks the node when its liveness asks (WireGuard's
//! timers, handshakes offered to a silent peer), publishes the state the node works out, and
//! relays connections that arrive through the tunnel to `forward` targets.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use augur_config::Forward;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::{TcpStream, UdpSocket};

use super::link::Link;
use super::stream::TunnelStream;

/// Datagrams read before the stack runs (so acknowledgements go out promptly).
const BATCH: usize = 64;

/// Runs the tunnel until the process ends.
pub async fn drive(link: Arc<Link>, udp: UdpSocket, forward: Vec<Forward>) {
    let mut buf = vec![0u8; 65_536];
    let mut control = nix::cmsg_space!(i32);
    {
        let mut node = link.lock();
        for f in &forward {
            node.stack.listen(f.port);
        }
    }
    loop {
        let mut accepted = Vec::new();
        let (wait, busy) = {
            let mut node = link.lock();
            // Datagrams are handled in rounds of about BATCH (a read may hold several), the
            // stack running after each so that acknowledgements go out promptly; what a round
            // sends leaves at its end.
            let mut received = 0;
            let mut more = true;
            while more && received < BATCH * 8 {
                let round = received + BATCH;
                link.sending(|send| {
                    while received < round {
                        match receive(&udp, &mut buf, &mut control) {
                            Ok((0, from, _)) => {
                                // Empty: dropped and counted as malformed.
                                node.receive(from, &[], send);
                                received += 1;
                            }
                            Ok((n, from, segment)) => {
                                for datagram in buf[..n].chunks(segment) {
                                    node.receive(from, datagram, send);
                                    received += 1;
                                }
                            }
                            Err(_) => {
                                // WouldBlock, or an error the next readiness will show again.
                                more = false;
                                break;
                            }
                        }
                    }
                    if received > 0 {
                        node.poll(link.epoch.elapsed(), send);
                    }
                });
            }
            let now = link.epoch.elapsed();
            link.sending(|send| {
                node.poll(now, send);
                node.tick(now, send);
            });
            publish(&link, &mut node, now);
            while let Some((conn, port)) = node.stack.accept() {
                if let Some(f) = forward.iter().find(|f| f.port == port) {
                    accepted.push((conn, f.to));
                }
            }
            let stack_wait = node.stack.poll_delay(now);
            let tick_wait = node.liveness().next_tick().saturating_sub(now);
            let wait = stack_wait.map_or(tick_wait, |d| d.min(tick_wait));
            link.set_driver_wakes_at(now + wait);
            (wait, received >= BATCH * 8)
        };
        for (conn, to) in accepted {
            let stream = TunnelStream::new(Arc::clone(&link), conn);
            tokio::spawn(relay(stream, to, link.name.clone()));
        }
        if busy {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = udp.readable() => {}
            () = link.kicked() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Reads what arrived: one datagram, or with receive offload (UDP_GRO, see
/// [`super::start_one`]) a run of them from one sender, equal in size but the last, each
/// `segment` bytes. Returns the bytes read, the sender and the segment size.
pub(super) fn receive(
    udp: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, SocketAddr, usize)> {
    udp.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            udp.as_raw_fd(),
            &mut iov,
            Some(control),
            MsgFlags::empty(),
        )?;
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            // Cut short (cannot happen with a 64 KiB buffer): an empty read, counted as a
            // malformed datagram.
            return Ok((0, from_storage(msg.address.as_ref())?, 1));
        }
        let mut segment = msg.bytes;
        // Without the control message (it cannot be cut short either) the read is taken as
        // one datagram; if it was several, authentication fails and it is counted.
        for c in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::UdpGroSegments(size) = c {
                segment = usize::try_from(size).unwrap_or(0);
            }
        }
        Ok((
            msg.bytes,
            from_storage(msg.address.as_ref())?,
            segment.max(1),
        ))
    })
}

fn from_storage(address: Option<&SockaddrStorage>) -> io::Result<SocketAddr> {
    address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::V4((*v4).into()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
        })
        .ok_or_else(|| io::Error::other("datagram without a sender address"))
}

/// Lets the node work out where the tunnel stands at `now` (time since `link.epoch`), and
/// publishes it for dials, health checks and `/status`.
fn publish(link: &Link, node: &mut augur_tunnel::Node, now: Duration) {
    link.set_peer_known(node.engine.endpoint().is_some());
    if let Some(state) = node.observe(now) {
        tracing::info!(tunnel = %link.name, from = link.state().label(), to = state.label(), "tunnel state changed");
        link.set_state(state);
    }
    if let Some(at) = node.liveness().last_received() {
        // 0 means never.
        let nanos = at.as_nanos() as u64;
        link.last_rx_nanos.store(nanos.max(1), Ordering::Relaxed);
    }
}

/// A connection that arrived through the tunnel, relayed to its local target.
async fn relay(inside: TunnelStream, to: SocketAddr, tunnel: String) {
    let mut outside = match TcpStream::connect(to).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(tunnel = %tunnel, to = %to, error = %e, "forward target refused");
            return;
        }
    };
    let _ = outside.set_nodelay(true);
    inside.relay(&mut outside).await;
}
