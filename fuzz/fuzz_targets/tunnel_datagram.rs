//! A tunnel's receive path never panics, whatever arrives: raw datagrams from anyone, and
//! (past a real handshake) any inner packet an authenticated peer might send into the stack.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use augur_tunnel::{public_key, AllowedIps, EngineConfig, Node, StackConfig};
use libfuzzer_sys::fuzz_target;

const A_KEY: [u8; 32] = [7; 32];
const B_KEY: [u8; 32] = [9; 32];

fn node(me: [u8; 32], peer: [u8; 32], address: &str, endpoint: Option<SocketAddr>) -> Node {
    let address: IpAddr = address.parse().unwrap();
    Node::new(
        EngineConfig {
            private_key: me,
            peer_public_key: public_key(peer),
            preshared_key: None,
            persistent_keepalive: None,
            endpoint,
            allowed_ips: AllowedIps::new([("10.20.0.0".parse().unwrap(), 16)]),
            address,
            index: 1,
        },
        StackConfig::new(address, 1420, 1),
        Duration::ZERO,
    )
}

/// Chunks of `data`, each preceded by a two-byte length.
fn chunks(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.len() < 2 {
            return None;
        }
        let len = (usize::from(data[0]) << 8 | usize::from(data[1])).min(data.len() - 2);
        let (chunk, rest) = data[2..].split_at(len);
        data = rest;
        Some(chunk)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let a_udp: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b_udp: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let mut b = node(B_KEY, A_KEY, "10.20.1.10", None);
    b.stack.listen(8080);
    let mut now = Duration::ZERO;
    if mode % 2 == 0 {
        for chunk in chunks(data) {
            b.receive(a_udp, chunk, &mut |_, _| {});
            now += Duration::from_millis(1);
            b.poll(now, &mut |_, _| {});
        }
        return;
    }
    // Shake hands for real, then let A encrypt whatever the input says.
    let mut a = node(A_KEY, B_KEY, "10.20.255.1", Some(b_udp));
    let mut to_b = Vec::new();
    a.engine.send(&[0x45; 20], &mut |_, d| to_b.push(d.to_vec()));
    let mut to_a = Vec::new();
    for d in to_b.drain(..) {
        b.receive(a_udp, &d, &mut |_, r| to_a.push(r.to_vec()));
    }
    for d in to_a {
        a.receive(b_udp, &d, &mut |_, r| to_b.push(r.to_vec()));
    }
    for chunk in chunks(data) {
        a.engine.send(chunk, &mut |_, d| to_b.push(d.to_vec()));
        for d in to_b.drain(..) {
            b.receive(a_udp, &d, &mut |_, _| {});
        }
        now += Duration::from_millis(1);
        b.poll(now, &mut |_, _| {});
    }
});
