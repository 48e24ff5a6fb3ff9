//! augur's own HTTP/1 client against peers that answer in ways augur itself never does: a
//! chunked `/demand` answer is read whole, and a peer that accepts but never answers costs
//! only its deadline and shows as an error, while the other peer stays fresh.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

use crate::support::{eventually, free_port, Augur, Backend, Config, Upstream};

/// A fake peer that answers every request with `answer`, then closes.
fn peer_answering(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = conn.write_all(answer);
        }
    });
    addr
}

/// A fake peer that accepts connections and never answers on them.
fn peer_silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().flatten().collect();
        drop(held);
    });
    addr
}

#[test]
fn a_chunked_peer_is_read_and_a_silent_one_costs_only_its_deadline() {
    let chunked = peer_answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          2;ext=1\r\nu \r\n4\r\n2.5\n\r\n0\r\nX-Trailer: yes\r\n\r\n",
    );
    let silent = peer_silent();
    let a = Backend::start("a");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = Config::web(addr, Upstream::new("api", &[a.addr]))
        .predictor(&format!("{{ peers: [\"{chunked}\", \"{silent}\"] }}"));
    let augur = Augur::start("client-peers", &config);
    let peer = |st: &serde_json::Value, addr: SocketAddr| {
        st["peers"]
            .as_array()
            .and_then(|peers| peers.iter().find(|p| p["addr"] == addr.to_string()))
            .cloned()
    };
    let peers = |st: &serde_json::Value| Some((peer(st, chunked)?, peer(st, silent)?));
    let seen = eventually(
        "the chunked peer fresh and the silent one failed",
        || peers(&augur.status()),
        |seen| {
            seen.as_ref()
                .is_some_and(|(good, bad)| good["fresh"] == true && bad["error"].is_string())
        },
    );
    let (good, bad) = seen.expect("both peers in /status");
    assert!(good["error"].is_null(), "{good}");
    assert_eq!(bad["fresh"], false, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 500ms"),
        "{bad}"
    );
}
