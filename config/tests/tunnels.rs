//! `tunnels:` and backends' `via:`: the model they build, and an error at the right place
//! for every rule. Key files live in a fresh directory next to the config file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use augur_config::*;

/// RFC 7748 section 6.1: Alice's private key and Bob's public key, as `wg` writes them.
const PRIVATE_KEY: &str = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
const PUBLIC_KEY: &str = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";
/// 32 bytes of 42.
const PRESHARED_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

const BASE: &str = "\
listeners:
  - { name: web, bind: 127.0.0.1:8080, protocol: http, routes: [ { upstream: api } ] }
upstreams:
  - name: api
    backends:
      - addr: 10.20.1.10:8080
        via: dc-east
      - addr: 127.0.0.1:9001
tunnels:
  - name: dc-east
    private_key_file: keys/dc-east.key
    address: 10.20.255.1
    mtu: 1380
    listen_port: 51820
    peer:
      public_key: \"3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=\"
      endpoint: 127.0.0.1:51821
      allowed_ips: [10.20.0.0/16, fd00:20::/48]
      persistent_keepalive: 25s
      preshared_key_file: keys/dc-east.psk
    forward:
      - port: 8080
        to: 127.0.0.1:9001
  - name: dc-west
    private_key_file: keys/dc-west.key
    address: fd00:30::1
    peer:
      public_key: \"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\"
      allowed_ips: [fd00:30::/48]
";

/// A fresh directory with owner-only key files under `keys/` (as `wg genkey` writes them,
/// newline included), removed when dropped.
fn key_dir(name: &str) -> KeyDir {
    let dir = std::env::temp_dir().join(format!(
        "augur-config-tunnels-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for (file, key) in [
        ("dc-east.key", PRIVATE_KEY),
        ("dc-west.key", PRIVATE_KEY),
        ("dc-east.psk", PRESHARED_KEY),
    ] {
        write_key(&dir.join("keys").join(file), format!("{key}\n"), 0o600);
    }
    KeyDir(dir)
}

/// A directory that is removed when dropped.
struct KeyDir(PathBuf);

impl std::ops::Deref for KeyDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_key(file: &Path, content: impl AsRef<[u8]>, mode: u32) {
    std::fs::write(file, content).unwrap();
    set_mode(file, mode);
}

#[cfg(unix)]
fn set_mode(file: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

/// Loads `text` as `dir/augur.yaml`.
fn load_in(dir: &Path, text: &str) -> Result<Config, Errors> {
    let file = dir.join("augur.yaml");
    std::fs::write(&file, text).unwrap();
    load(&file)
}

/// The errors for `text` as `line:col: path: message`, with `dir` shown as `DIR`.
fn errors_in(dir: &Path, text: &str) -> Vec<String> {
    match load_in(dir, text) {
        Ok(config) => panic!("loaded, but should not have: {config:?}"),
        Err(errors) => errors
            .0
            .iter()
            .map(|e| {
                let line = format!("{}:{}: {}: {}", e.line, e.column, e.path, e.message);
                line.replace(&dir.display().to_string(), "DIR")
            })
            .collect(),
    }
}

/// Asserts that `BASE` with `from` replaced by `to` fails with exactly `expected`.
#[track_caller]
fn check_edit(name: &str, from: &str, to: &str, expected: &[&str]) {
    assert!(BASE.contains(from), "{from:?} is not in BASE");
    let dir = key_dir(name);
    assert_eq!(errors_in(&dir, &BASE.replacen(from, to, 1)), expected);
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

/// Bytes of a key written by the test.
fn bytes(text: &str) -> [u8; 32] {
    let dir = key_dir("bytes");
    let yaml = BASE.replace(PUBLIC_KEY, text);
    load_in(&dir, &yaml).unwrap().tunnels[0].peer.public_key
}

#[test]
fn the_example_builds_the_model() {
    let dir = key_dir("model");
    let config = load_in(&dir, BASE).unwrap();
    let backends = &config.upstreams[0].backends;
    assert_eq!(backends[0].via, Some(0));
    assert_eq!(backends[1].via, None);
    let private = Key::from(bytes(PRIVATE_KEY));
    assert_eq!(
        config.tunnels,
        [
            Tunnel {
                name: "dc-east".into(),
                private_key_file: dir.join("keys/dc-east.key"),
                private_key: private.clone(),
                address: ip("10.20.255.1"),
                mtu: 1380,
                listen_port: Some(51820),
                peer: TunnelPeer {
                    public_key: bytes(PUBLIC_KEY),
                    endpoint: Some(Endpoint::Addr(addr("127.0.0.1:51821"))),
                    allowed_ips: vec![prefix("10.20.0.0/16"), prefix("fd00:20::/48")],
                    persistent_keepalive: Some(Duration::from_secs(25)),
                    preshared_key_file: Some(dir.join("keys/dc-east.psk")),
                    preshared_key: Some(Key::from([42; 32])),
                },
                forward: vec![Forward {
                    port: 8080,
                    to: addr("127.0.0.1:9001"),
                }],
            },
            Tunnel {
                name: "dc-west".into(),
                private_key_file: dir.join("keys/dc-west.key"),
                private_key: private,
                address: ip("fd00:30::1"),
                mtu: 1420,
                listen_port: None,
                peer: TunnelPeer {
                    public_key: [7; 32],
                    endpoint: None,
                    allowed_ips: vec![prefix("fd00:30::/48")],
                    persistent_keepalive: None,
                    preshared_key_file: None,
                    preshared_key: None,
                },
                forward: Vec::new(),
            },
        ]
    );
    assert_eq!(config.tunnels[0].private_key.bytes()[..2], [0x77, 0x07]);
}

#[test]
fn no_tunnels_is_fine_and_keepalive_can_be_off() {
    let dir = key_dir("none");
    let text = BASE.replace("        via: dc-east\n", "");
    let text = &text[..text.find("tunnels:").unwrap()];
    assert_eq!(load_in(&dir, text).unwrap().tunnels, []);
    let off = BASE.replace("persistent_keepalive: 25s", "persistent_keepalive: off");
    let config = load_in(&dir, &off).unwrap();
    assert_eq!(config.tunnels[0].peer.persistent_keepalive, None);
}

#[test]
fn secrets_never_show_in_debug_output() {
    let dir = key_dir("debug");
    let shown = format!("{:?}", load_in(&dir, BASE).unwrap());
    assert!(shown.contains("private_key: Key(<redacted>)"), "{shown}");
    assert!(
        shown.contains("preshared_key: Some(Key(<redacted>))"),
        "{shown}"
    );
    // Alice's key starts 0x77 0x07 0x6d; the preshared key is all 42s.
    assert!(!shown.contains("119, 7, 109"), "{shown}");
    assert!(!shown.contains("42, 42"), "{shown}");
    assert!(!shown.contains(PRIVATE_KEY));
}

#[cfg(unix)]
#[test]
fn key_files_readable_by_others_are_refused() {
    let dir = key_dir("mode");
    set_mode(&dir.join("keys/dc-east.key"), 0o644);
    set_mode(&dir.join("keys/dc-east.psk"), 0o640);
    assert_eq!(
        errors_in(&dir, BASE),
        [
            "11:23: tunnels[0].private_key_file: private key file \"keys/dc-east.key\" (resolved to \"DIR/keys/dc-east.key\") is open to group or others (mode 0644); run `chmod 600 DIR/keys/dc-east.key` so that only its owner can read it",
            "20:27: tunnels[0].peer.preshared_key_file: preshared key file \"keys/dc-east.psk\" (resolved to \"DIR/keys/dc-east.psk\") is open to group or others (mode 0640); run `chmod 600 DIR/keys/dc-east.psk` so that only its owner can read it",
        ]
    );
    set_mode(&dir.join("keys/dc-east.key"), 0o600);
    set_mode(&dir.join("keys/dc-east.psk"), 0o400);
    load_in(&dir, BASE).unwrap();
}

#[test]
fn unreadable_and_malformed_key_files() {
    check_edit(
        "missing",
        "keys/dc-east.key",
        "keys/nope.key",
        &["11:23: tunnels[0].private_key_file: cannot read private key file \"keys/nope.key\" (resolved to \"DIR/keys/nope.key\"): No such file or directory (os error 2)"],
    );
    check_edit(
        "directory",
        "keys/dc-east.key",
        "keys",
        &["11:23: tunnels[0].private_key_file: cannot read private key file \"keys\" (resolved to \"DIR/keys\"): not a regular file"],
    );
    let dir = key_dir("malformed");
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
    write_key(&dir.join("keys/dc-east.key"), secret, 0o600);
    write_key(&dir.join("keys/dc-east.psk"), "A".repeat(2000), 0o600);
    let found = errors_in(&dir, BASE);
    assert_eq!(
        found,
        [
            "11:23: tunnels[0].private_key_file: private key file \"keys/dc-east.key\" (resolved to \"DIR/keys/dc-east.key\") is not a WireGuard key: expected 44 base64 characters, found 46; `wg genkey` writes one",
            "20:27: tunnels[0].peer.preshared_key_file: preshared key file \"keys/dc-east.psk\" (resolved to \"DIR/keys/dc-east.psk\") is not a WireGuard key: expected 44 base64 characters, found a file of more than 1024 bytes; `wg genpsk` writes one",
        ]
    );
    assert!(!found.concat().contains("c2Vj"));
    write_key(
        &dir.join("keys/dc-east.psk"),
        PRESHARED_KEY.replace('K', "-"),
        0o600,
    );
    write_key(&dir.join("keys/dc-east.key"), [0xfe, 0xff, b'\n'], 0o600);
    assert_eq!(
        errors_in(&dir, BASE),
        [
            "11:23: tunnels[0].private_key_file: private key file \"keys/dc-east.key\" (resolved to \"DIR/keys/dc-east.key\") is not a WireGuard key: expected 44 base64 characters, found bytes that are not text; `wg genkey` writes one",
            "20:27: tunnels[0].peer.preshared_key_file: preshared key file \"keys/dc-east.psk\" (resolved to \"DIR/keys/dc-east.psk\") is not a WireGuard key: expected only base64 characters (A-Z, a-z, 0-9, `+`, `/`), found another at position 1; `wg genpsk` writes one",
        ]
    );
}

#[test]
fn public_key() {
    check_edit(
        "public",
        PUBLIC_KEY,
        "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK0",
        &["16:19: tunnels[0].peer.public_key: invalid public key \"3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK0\": expected 44 base64 characters, found 42; `wg pubkey` prints it from the peer's private key"],
    );
    check_edit(
        "public-missing",
        "      public_key: \"3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=\"\n",
        "",
        &["16:7: tunnels[0].peer: missing required key `public_key`"],
    );
}

#[test]
fn names() {
    check_edit(
        "dup",
        "name: dc-west",
        "name: dc-east",
        &["24:11: tunnels[1].name: duplicate tunnel name \"dc-east\"; tunnels[0] has it too"],
    );
    check_edit(
        "empty",
        "name: dc-west",
        "name: ''",
        &["24:11: tunnels[1].name: expected a non-empty value, found an empty one"],
    );
}

#[test]
fn address_and_mtu() {
    check_edit(
        "address",
        "address: 10.20.255.1",
        "address: 10.20.255.1/24",
        &["12:14: tunnels[0].address: invalid IP address \"10.20.255.1/24\": expected an address without a prefix length, like 10.20.255.1"],
    );
    check_edit(
        "address-name",
        "address: 10.20.255.1",
        "address: gateway",
        &["12:14: tunnels[0].address: invalid IP address \"gateway\": expected an IPv4 or IPv6 address, like 10.20.255.1"],
    );
    check_edit(
        "mtu",
        "mtu: 1380",
        "mtu: 9001",
        &["13:10: tunnels[0].mtu: expected a number from 576 to 9000, found 9001"],
    );
    check_edit(
        "mtu-v6",
        "address: fd00:30::1\n",
        "address: fd00:30::1\n    mtu: 1000\n",
        &["27:10: tunnels[1].mtu: expected an mtu of at least 1280 for an IPv6 address, found 1000"],
    );
}

#[test]
fn listen_ports() {
    check_edit(
        "port-dup",
        "address: fd00:30::1\n",
        "address: fd00:30::1\n    listen_port: 51820\n",
        &["27:18: tunnels[1].listen_port: duplicate listen_port 51820; tunnels[0] has it too"],
    );
    check_edit(
        "port-zero",
        "listen_port: 51820",
        "listen_port: 0",
        &["14:18: tunnels[0].listen_port: expected a number from 1 to 65535, found 0"],
    );
}

#[test]
fn endpoint() {
    check_edit(
        "endpoint-garbage",
        "endpoint: 127.0.0.1:51821",
        "endpoint: vpn example:51820",
        &["17:17: tunnels[0].peer.endpoint: invalid endpoint \"vpn example:51820\": expected IP:PORT or HOST:PORT"],
    );
    check_edit(
        "endpoint-no-port",
        "endpoint: 127.0.0.1:51821",
        "endpoint: vpn.example.com",
        &["17:17: tunnels[0].peer.endpoint: invalid endpoint \"vpn.example.com\": expected IP:PORT or HOST:PORT"],
    );
    for typo in [
        "10.0.0.300:51820",
        "1.2.3:51820",
        "127.1:51820",
        "vpn:+51820",
    ] {
        check_edit(
            "endpoint-typo",
            "endpoint: 127.0.0.1:51821",
            &format!("endpoint: \"{typo}\""),
            &[&format!(
                "17:17: tunnels[0].peer.endpoint: invalid endpoint \"{typo}\": expected IP:PORT or HOST:PORT"
            )],
        );
    }
    check_edit(
        "endpoint-bare-v6",
        "endpoint: 127.0.0.1:51821",
        "endpoint: \"fd00::1:51820\"",
        &["17:17: tunnels[0].peer.endpoint: invalid endpoint \"fd00::1:51820\": expected IP:PORT or HOST:PORT"],
    );
    check_edit(
        "endpoint-host-port",
        "endpoint: 127.0.0.1:51821",
        "endpoint: vpn.example.com:0",
        &["17:17: tunnels[0].peer.endpoint: expected a port from 1 to 65535, found vpn.example.com:0"],
    );
    // A host name is kept as written (lower case) for the proxy to resolve: checking a
    // config never queries a resolver.
    let dir = key_dir("endpoint-host");
    let yaml = BASE.replace(
        "endpoint: 127.0.0.1:51821",
        "endpoint: VPN.example.com.:51820",
    );
    assert_eq!(
        load_in(&dir, &yaml).unwrap().tunnels[0].peer.endpoint,
        Some(Endpoint::Host {
            name: "vpn.example.com".into(),
            port: 51820
        })
    );
    check_edit(
        "endpoint-port",
        "endpoint: 127.0.0.1:51821",
        "endpoint: 127.0.0.1:0",
        &["17:17: tunnels[0].peer.endpoint: expected a port from 1 to 65535, found 127.0.0.1:0"],
    );
}

#[test]
fn allowed_ips() {
    check_edit(
        "allowed-bits",
        "[10.20.0.0/16, fd00:20::/48]",
        "[10.20.0.0/16, fd00:20::1/48]",
        &["18:35: tunnels[0].peer.allowed_ips[1]: fd00:20::1/48 has host bits set; did you mean fd00:20::/48?"],
    );
    check_edit(
        "allowed-empty",
        "allowed_ips: [fd00:30::/48]",
        "allowed_ips: []",
        &["29:20: tunnels[1].peer.allowed_ips: expected at least one address or prefix, found none"],
    );
    check_edit(
        "allowed-missing",
        "      allowed_ips: [fd00:30::/48]\n",
        "",
        &["28:7: tunnels[1].peer: missing required key `allowed_ips`; the networks behind the peer, like 10.20.0.0/16"],
    );
    check_edit(
        "allowed-bad",
        "[fd00:30::/48]",
        "[fd00:30::/129]",
        &["29:21: tunnels[1].peer.allowed_ips[0]: invalid prefix \"fd00:30::/129\": expected a prefix length from 0 to 128 after the `/`"],
    );
}

#[test]
fn persistent_keepalive() {
    for (to, message) in [
        ("0s", "expected a duration from 1s to 18h 12m 15s, found \"0s\""),
        ("65536s", "expected a duration from 1s to 18h 12m 15s, found \"65536s\""),
        ("1500ms", "expected a whole number of seconds, found \"1500ms\""),
        ("25", "invalid duration \"25\": expected a number and a unit, like \"1s\", \"250ms\" or \"2m\""),
    ] {
        check_edit(
            to,
            "persistent_keepalive: 25s",
            &format!("persistent_keepalive: {to}"),
            &[&format!("19:29: tunnels[0].peer.persistent_keepalive: {message}")],
        );
    }
}

#[test]
fn forwards() {
    check_edit(
        "forward-dup",
        "        to: 127.0.0.1:9001\n  - name: dc-west",
        "        to: 127.0.0.1:9001\n      - { port: 8080, to: 127.0.0.1:9002 }\n      - { port: 0, to: 127.0.0.1:0 }\n  - name: dc-west",
        &[
            "24:17: tunnels[0].forward[1].port: duplicate forward port 8080; forward[0] has it too",
            "25:17: tunnels[0].forward[2].port: expected a number from 1 to 65535, found 0",
            "25:24: tunnels[0].forward[2].to: expected a port from 1 to 65535, found 127.0.0.1:0",
        ],
    );
    check_edit(
        "forward-missing",
        "        to: 127.0.0.1:9001\n",
        "",
        &["22:9: tunnels[0].forward[0]: missing required key `to`"],
    );
}

#[test]
fn via() {
    check_edit(
        "via-unknown",
        "via: dc-east",
        "via: dc-est",
        &["7:14: upstreams[0].backends[0].via: no tunnel named \"dc-est\"; did you mean \"dc-east\"?"],
    );
    check_edit(
        "via-outside",
        "addr: 10.20.1.10:8080",
        "addr: 10.30.1.10:8080",
        &["7:14: upstreams[0].backends[0].via: backend 10.30.1.10:8080 is outside the allowed_ips of tunnel \"dc-east\" (10.20.0.0/16, fd00:20::/48); the tunnel would not carry its packets"],
    );
    check_edit(
        "via-family",
        "addr: 10.20.1.10:8080",
        "addr: \"[fd00:20::10]:8080\"",
        &["7:14: upstreams[0].backends[0].via: backend [fd00:20::10]:8080 is IPv6 but tunnel \"dc-east\" has the IPv4 address 10.20.255.1; expected the same family"],
    );
    // A tunnel with an error of its own: one error, the tunnel's.
    check_edit(
        "via-broken",
        "keys/dc-east.key",
        "keys/nope.key",
        &["11:23: tunnels[0].private_key_file: cannot read private key file \"keys/nope.key\" (resolved to \"DIR/keys/nope.key\"): No such file or directory (os error 2)"],
    );
    let dir = key_dir("via-none");
    let text = BASE.replace("via: dc-east", "via: dc-central");
    let text = &text[..text.find("tunnels:").unwrap()];
    assert_eq!(
        errors_in(&dir, text),
        ["7:14: upstreams[0].backends[0].via: no tunnel named \"dc-central\"; no tunnels are defined; add them under a top-level `tunnels:`"]
    );
}

#[test]
fn unknown_keys_suggest_the_nearest() {
    check_edit(
        "key-typo",
        "listen_port:",
        "listen_prot:",
        &["14:5: tunnels[0].listen_prot: unknown key `listen_prot`; did you mean `listen_port`?"],
    );
    check_edit(
        "peer-typo",
        "persistent_keepalive:",
        "persistent_keepalve:",
        &["19:7: tunnels[0].peer.persistent_keepalve: unknown key `persistent_keepalve`; did you mean `persistent_keepalive`?"],
    );
    check_edit(
        "via-typo",
        "via: dc-east",
        "vai: dc-east",
        &["7:9: upstreams[0].backends[0].vai: unknown key `vai`; did you mean `via`?"],
    );
}
