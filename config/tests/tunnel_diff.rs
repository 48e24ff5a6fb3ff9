//! `diff` on tunnels and on backends' `via`: tunnels matched by name, keys compared by value
//! and never shown.

use std::net::SocketAddr;
use std::time::Duration;

use augur_config::*;

mod common;
use common::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A tunnel as a loaded config would hold it.
fn tunnel(name: &str) -> Tunnel {
    Tunnel {
        name: name.into(),
        private_key_file: format!("/etc/augur/{name}.key").into(),
        private_key: Key::from([1; 32]),
        address: "10.20.255.1".parse().unwrap(),
        mtu: 1420,
        listen_port: Some(51820),
        peer: TunnelPeer {
            public_key: [2; 32],
            endpoint: Some(Endpoint::Addr(addr("192.0.2.1:51820"))),
            allowed_ips: vec![
                Prefix::parse("10.20.0.0/16").unwrap(),
                Prefix::parse("10.21.0.0/16").unwrap(),
            ],
            persistent_keepalive: Some(Duration::from_secs(25)),
            preshared_key_file: None,
            preshared_key: None,
        },
        forward: vec![
            Forward {
                port: 8080,
                to: addr("127.0.0.1:9001"),
            },
            Forward {
                port: 8081,
                to: addr("127.0.0.1:9002"),
            },
        ],
    }
}

/// Upstream `api` with backends 10.20.1.10:8080 and 127.0.0.1:9001, and tunnels `dc-east`
/// and `dc-west`, the first backend dialled through `dc-east`.
fn base() -> Config {
    let backends = "    backends:\n      - addr: 10.20.1.10:8080\n      - addr: 127.0.0.1:9001\n";
    let mut config = config(&format!("{WEB_TO_API}{backends}"));
    config.tunnels = vec![tunnel("dc-east"), tunnel("dc-west")];
    config.upstreams[0].backends[0].via = Some(0);
    config
}

/// The changes from `base()` to `base()` edited by `edit`.
fn changes(edit: impl FnOnce(&mut Config)) -> Vec<Change> {
    changes_after(&base(), edit)
}

fn changed(tunnel: &str, setting: TunnelSetting) -> Change {
    Change::TunnelChanged {
        tunnel: tunnel.into(),
        setting,
    }
}

#[test]
fn tunnels_added_and_removed_by_name() {
    assert_eq!(diff(&base(), &base()), []);
    let found = changes(|c| {
        c.tunnels[1].name = "dc-north".into();
        c.tunnels.push(tunnel("dc-south"));
    });
    assert_eq!(
        found,
        [
            Change::TunnelRemoved("dc-west".into()),
            Change::TunnelAdded("dc-north".into()),
            Change::TunnelAdded("dc-south".into()),
        ]
    );
    // Moving a tunnel in the file is no change, as long as backends follow it by name.
    assert_eq!(
        changes(|c| {
            c.tunnels.reverse();
            c.upstreams[0].backends[0].via = Some(1);
        }),
        []
    );
}

#[test]
fn each_setting_is_named() {
    use TunnelSetting::*;
    type Edit = fn(&mut Tunnel);
    let edits: [(TunnelSetting, Edit); 8] = [
        (Keys, |t| t.private_key = Key::from([9; 32])),
        (Address, |t| t.address = "10.20.255.2".parse().unwrap()),
        (Mtu, |t| t.mtu = 1380),
        (ListenPort, |t| t.listen_port = None),
        (PeerEndpoint, |t| t.peer.endpoint = None),
        (AllowedIps, |t| t.peer.allowed_ips.truncate(1)),
        (Keepalive, |t| t.peer.persistent_keepalive = None),
        (Forward, |t| t.forward[1].to = addr("127.0.0.1:9003")),
    ];
    for (setting, edit) in edits {
        assert_eq!(
            changes(|c| edit(&mut c.tunnels[1])),
            [changed("dc-west", setting)],
            "{setting:?}"
        );
    }
    for edit in [
        |t: &mut Tunnel| t.peer.public_key = [3; 32],
        |t: &mut Tunnel| t.peer.preshared_key = Some(Key::from([4; 32])),
    ] {
        assert_eq!(
            changes(|c| edit(&mut c.tunnels[0])),
            [changed("dc-east", TunnelSetting::Keys)]
        );
    }
}

#[test]
fn keys_compare_by_value_and_lists_by_content() {
    let same = changes(|c| {
        let t = &mut c.tunnels[0];
        // Another file holding the same key is the same key.
        t.private_key_file = "/elsewhere/dc-east.key".into();
        t.peer.allowed_ips.reverse();
        t.forward.reverse();
    });
    assert_eq!(same, []);
}

#[test]
fn backend_via_changes() {
    let found = changes(|c| {
        let backends = &mut c.upstreams[0].backends;
        backends[0].via = Some(1);
        backends[1].via = Some(0);
    });
    assert_eq!(
        found,
        [
            Change::BackendViaChanged {
                upstream: "api".into(),
                addr: addr("10.20.1.10:8080"),
                from: Some("dc-east".into()),
                to: Some("dc-west".into()),
            },
            Change::BackendViaChanged {
                upstream: "api".into(),
                addr: addr("127.0.0.1:9001"),
                from: None,
                to: Some("dc-east".into()),
            },
        ]
    );
    let direct = changes(|c| c.upstreams[0].backends[0].via = None);
    assert_eq!(
        direct,
        [Change::BackendViaChanged {
            upstream: "api".into(),
            addr: addr("10.20.1.10:8080"),
            from: Some("dc-east".into()),
            to: None,
        }]
    );
}

#[test]
fn changes_read_as_short_lines_without_keys() {
    let shown: Vec<String> = changes(|c| {
        c.tunnels[0].private_key = Key::from([9; 32]);
        c.tunnels[0].peer.persistent_keepalive = None;
        c.tunnels[1].name = "dc-north".into();
        c.upstreams[0].backends[0].via = Some(1);
        c.upstreams[0].backends[1].via = Some(0);
    })
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        shown,
        [
            "tunnel dc-west removed",
            "tunnel dc-east keys changed",
            "tunnel dc-east peer.persistent_keepalive changed",
            "tunnel dc-north added",
            "backend 10.20.1.10:8080 of upstream api via changed from tunnel dc-east to tunnel dc-north",
            "backend 127.0.0.1:9001 of upstream api via changed from direct to tunnel dc-east",
        ]
    );
    let debug = format!(
        "{:?}",
        changes(|c| c.tunnels[0].private_key = Key::from([9; 32]))
    );
    assert!(!debug.contains("9, 9"), "{debug}");
}

#[test]
fn tunnel_changes_need_a_new_process_and_via_changes_do_not() {
    let name = || "x".to_owned();
    for change in [
        Change::TunnelAdded(name()),
        Change::TunnelRemoved(name()),
        Change::TunnelChanged {
            tunnel: name(),
            setting: TunnelSetting::AllowedIps,
        },
    ] {
        assert!(change.needs_new_process(), "{change}");
    }
    let via = Change::BackendViaChanged {
        upstream: name(),
        addr: addr("127.0.0.1:1"),
        from: None,
        to: Some(name()),
    };
    assert!(!via.needs_new_process());
}
