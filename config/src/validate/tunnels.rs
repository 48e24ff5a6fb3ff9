//! `tunnels:` (WireGuard tunnels, each to one peer) and the `via:` of backends dialled
//! through one.
//!
//! Key files are read by `key_files.rs`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::key_files::Secret;
use super::names::Names;
use super::Checks;
use crate::issue::quoted;
use crate::key;
use crate::model::{Endpoint, Forward, Tunnel, TunnelPeer};
use crate::prefix::Prefix;
use crate::raw::{RawForward, RawTunnel, RawTunnelPeer};

/// Default tunnel MTU, as wg-quick picks for an IPv4 or IPv6 underlay.
const MTU: u16 = 1420;
/// Smallest MTU that IPv4 guarantees.
const MIN_MTU_V4: i64 = 576;
/// Smallest MTU that IPv6 allows.
const MIN_MTU_V6: i64 = 1280;
/// Largest MTU: a jumbo frame.
const MAX_MTU: i64 = 9000;
/// WireGuard counts keepalives in whole seconds of a `u16`.
const MAX_KEEPALIVE: Duration = Duration::from_secs(65535);

/// The tunnels as built (if all were valid), and what backends need to refer to them.
pub(super) struct CheckedTunnels {
    pub built: Option<Vec<Tunnel>>,
    pub names: TunnelNames,
}

/// Tunnel names, with what of each tunnel was valid, for backends' `via` to refer to.
pub(super) type TunnelNames = Names<TunnelRef>;

/// What a backend's `via` is checked against: the parts of the tunnel that were valid.
#[derive(Default)]
pub(super) struct TunnelRef {
    /// The tunnel's own address.
    address: Option<IpAddr>,
    /// The peer's `allowed_ips`, if all were valid.
    allowed_ips: Option<Vec<Prefix>>,
}

impl Checks<'_> {
    /// `tunnels:`: optional; names unique, listen ports unique.
    pub(super) fn tunnels(&mut self, raw: Option<Vec<RawTunnel>>) -> CheckedTunnels {
        let mut names = Names::new("tunnel", "; add them under a top-level `tunnels:`");
        let mut ports: Vec<(u16, usize)> = Vec::new();
        let raw = raw.unwrap_or_default();
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (i, tunnel) in raw.into_iter().enumerate() {
            let path = format!("tunnels[{i}]");
            let name = self.required(tunnel.name.as_deref(), &path, "name");
            // Defined before the tunnel is checked, so that a duplicate is reported first.
            let first =
                name.and_then(|name| self.define(&mut names, name, i, TunnelRef::default()));
            let name = name.map(str::to_owned);
            let checked = self.tunnel(tunnel, name, i, &mut ports);
            if let Some(first) = first {
                *first = TunnelRef {
                    address: checked.address,
                    allowed_ips: checked.allowed_ips,
                };
            }
            built = built.zip(checked.built).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        CheckedTunnels { built, names }
    }

    /// `tunnels[i]`, whose name was checked by the caller; `ports` holds the listen ports
    /// of the tunnels before it.
    fn tunnel(
        &mut self,
        raw: RawTunnel,
        name: Option<String>,
        i: usize,
        ports: &mut Vec<(u16, usize)>,
    ) -> CheckedTunnel {
        let path = &format!("tunnels[{i}]");
        let at = |key: &str| format!("{path}.{key}");
        let private_key = self
            .required(raw.private_key_file.as_deref(), path, "private_key_file")
            .and_then(|text| self.key_file(text, &at("private_key_file"), Secret::Private));
        let address = self
            .required(raw.address.as_deref(), path, "address")
            .and_then(|text| self.tunnel_address(text, &at("address")));
        let ipv6 = matches!(address.map(|a| a.to_canonical()), Some(IpAddr::V6(_)));
        let mtu = match raw.mtu {
            None => Some(MTU),
            Some(n) if ipv6 && n < MIN_MTU_V6 => {
                self.report(
                    &at("mtu"),
                    format!(
                        "expected an mtu of at least {MIN_MTU_V6} for an IPv6 address, found {n}"
                    ),
                );
                None
            }
            Some(n) => self
                .number(n, MIN_MTU_V4, MAX_MTU, &at("mtu"))
                .and_then(|n| u16::try_from(n).ok()),
        };
        let listen_port = match raw.listen_port {
            None => Some(None),
            Some(n) => self
                .number(n, 1, 65535, &at("listen_port"))
                .and_then(|n| u16::try_from(n).ok())
                .map(Some),
        };
        if let Some(Some(port)) = listen_port {
            match ports.iter().find(|(p, _)| *p == port) {
                Some((_, first)) => self.report(
                    &at("listen_port"),
                    format!("duplicate listen_port {port}; tunnels[{first}] has it too"),
                ),
                None => ports.push((port, i)),
            }
        }
        let (peer, allowed_ips) = match raw.peer {
            None => {
                self.missing(
                    path,
                    "peer",
                    "a tunnel needs its peer's `public_key` and `allowed_ips`",
                );
                (None, None)
            }
            Some(peer) => self.peer(peer, &at("peer")),
        };
        let forward = self.forwards(raw.forward, path);
        let built = (|| {
            let (private_key_file, private_key) = private_key?;
            Some(Tunnel {
                name: name?,
                private_key_file,
                private_key,
                address: address?,
                mtu: mtu?,
                listen_port: listen_port?,
                peer: peer?,
                forward: forward?,
            })
        })();
        CheckedTunnel {
            built,
            address,
            allowed_ips,
        }
    }

    /// A tunnel's own `address`: one IP, no prefix length.
    fn tunnel_address(&mut self, text: &str, path: &str) -> Option<IpAddr> {
        if let Ok(ip) = text.trim().parse() {
            return Some(ip);
        }
        let expected = if text.contains('/') {
            "expected an address without a prefix length, like 10.20.255.1"
        } else {
            "expected an IPv4 or IPv6 address, like 10.20.255.1"
        };
        self.report(
            path,
            format!("invalid IP address {}: {expected}", quoted(text)),
        );
        None
    }

    /// `peer:`; also returns its `allowed_ips` when they are valid, whatever else is not.
    fn peer(
        &mut self,
        raw: RawTunnelPeer,
        path: &str,
    ) -> (Option<TunnelPeer>, Option<Vec<Prefix>>) {
        let at = |key: &str| format!("{path}.{key}");
        let public_key = self
            .required(raw.public_key.as_deref(), path, "public_key")
            .and_then(|text| match key::decode(text) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    self.report(
                        &at("public_key"),
                        format!(
                            "invalid public key {}: {error}; `wg pubkey` prints it from the \
                             peer's private key",
                            quoted(text)
                        ),
                    );
                    None
                }
            });
        let endpoint = match raw.endpoint.as_deref() {
            None => Some(None),
            Some(text) => self.endpoint(text, &at("endpoint")).map(Some),
        };
        let allowed_ips = self.prefixes(
            raw.allowed_ips,
            &format!("{path}.allowed_ips"),
            "the networks behind the peer, like 10.20.0.0/16",
        );
        let persistent_keepalive = match raw.persistent_keepalive.as_deref() {
            None => Some(None),
            Some(text) if text.trim() == "off" => Some(None),
            Some(text) => self.keepalive(text, &at("persistent_keepalive")).map(Some),
        };
        let preshared = match raw.preshared_key_file.as_deref() {
            None => Some(None),
            Some(text) => self
                .key_file(text, &at("preshared_key_file"), Secret::Preshared)
                .map(Some),
        };
        let peer = (|| {
            let (preshared_key_file, preshared_key) = preshared?.unzip();
            Some(TunnelPeer {
                public_key: public_key?,
                endpoint: endpoint?,
                allowed_ips: allowed_ips.clone()?,
                persistent_keepalive: persistent_keepalive?,
                preshared_key_file,
                preshared_key,
            })
        })();
        (peer, allowed_ips)
    }

    /// A peer's endpoint: `IP:PORT`, or `HOST:PORT` (a DNS name; resolved by the proxy, not
    /// here, so that checking a config never queries a resolver).
    fn endpoint(&mut self, text: &str, path: &str) -> Option<Endpoint> {
        let trimmed = text.trim();
        if trimmed.parse::<SocketAddr>().is_ok() {
            return self.destination(trimmed, path).map(Endpoint::Addr);
        }
        // A DNS name (a trailing dot allowed): labels of letters, digits and inner hyphens,
        // the last not all digits (so a mistyped IPv4 address is not taken for a name).
        let host_name = |h: &str| {
            let h = h.strip_suffix('.').unwrap_or(h);
            let all_digits = |l: &str| l.bytes().all(|b| b.is_ascii_digit());
            h.len() <= 253
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                })
                && !h.rsplit('.').next().is_some_and(all_digits)
        };
        let Some((name, port)) = trimmed
            .rsplit_once(':')
            .filter(|(name, port)| {
                host_name(name) && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|(name, port)| Some((name, port.parse::<u16>().ok()?)))
        else {
            self.report(
                path,
                format!(
                    "invalid endpoint {}: expected IP:PORT or HOST:PORT",
                    quoted(text)
                ),
            );
            return None;
        };
        if port == 0 {
            self.report(
                path,
                format!("expected a port from 1 to 65535, found {trimmed}"),
            );
            return None;
        }
        Some(Endpoint::Host {
            name: name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase(),
            port,
        })
    }

    /// `persistent_keepalive`: whole seconds from 1 to 65535.
    fn keepalive(&mut self, text: &str, path: &str) -> Option<Duration> {
        let duration = self.duration_within(text, path, Duration::from_secs(1), MAX_KEEPALIVE)?;
        if duration.subsec_nanos() != 0 {
            self.report(
                path,
                format!("expected a whole number of seconds, found {}", quoted(text)),
            );
            return None;
        }
        Some(duration)
    }

    /// `forward:` of the tunnel at `path`: ports unique.
    fn forwards(&mut self, raw: Option<Vec<RawForward>>, path: &str) -> Option<Vec<Forward>> {
        let raw = raw.unwrap_or_default();
        let mut ports: Vec<(u16, usize)> = Vec::new();
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (j, forward) in raw.into_iter().enumerate() {
            let forward_path = format!("{path}.forward[{j}]");
            let port = match forward.port {
                None => {
                    self.missing(&forward_path, "port", "the port on the tunnel's `address`");
                    None
                }
                Some(n) => self
                    .number(n, 1, 65535, &format!("{forward_path}.port"))
                    .and_then(|n| u16::try_from(n).ok()),
            };
            if let Some(port) = port {
                match ports.iter().find(|(p, _)| *p == port) {
                    Some((_, first)) => self.report(
                        &format!("{forward_path}.port"),
                        format!("duplicate forward port {port}; forward[{first}] has it too"),
                    ),
                    None => ports.push((port, j)),
                }
            }
            let to = self
                .required(forward.to.as_deref(), &forward_path, "to")
                .and_then(|text| self.destination(text, &format!("{forward_path}.to")));
            built = built.zip(port.zip(to)).map(|(mut all, (port, to))| {
                all.push(Forward { port, to });
                all
            });
        }
        built
    }

    /// A backend's `via` at `path`: a tunnel whose peer's networks contain `addr`.
    pub(super) fn via(
        &mut self,
        name: &str,
        addr: Option<SocketAddr>,
        path: &str,
        tunnels: &TunnelNames,
    ) -> Option<usize> {
        let path = format!("{path}.via");
        let defined = self.resolve(tunnels, name, &path)?;
        let (index, tunnel) = (defined.index, &defined.item);
        let Some(addr) = addr else {
            return Some(index);
        };
        let ip = addr.ip().to_canonical();
        if let Some(address) = tunnel.address {
            if ip.is_ipv4() != address.to_canonical().is_ipv4() {
                self.report(
                    &path,
                    format!(
                        "backend {addr} is {} but tunnel {} has the {} address {address}; \
                         expected the same family",
                        family(ip),
                        quoted(name),
                        family(address.to_canonical()),
                    ),
                );
                return None;
            }
        }
        if let Some(allowed) = &tunnel.allowed_ips {
            if !allowed.iter().any(|prefix| prefix.contains(ip)) {
                let listed: Vec<String> = allowed.iter().take(8).map(ToString::to_string).collect();
                let more = if allowed.len() > 8 { ", ..." } else { "" };
                self.report(
                    &path,
                    format!(
                        "backend {addr} is outside the allowed_ips of tunnel {} ({}{more}); \
                         the tunnel would not carry its packets",
                        quoted(name),
                        listed.join(", ")
                    ),
                );
                return None;
            }
        }
        Some(index)
    }
}

/// What [`Checks::tunnel`] found: the tunnel if all was valid, and the parts a backend's
/// `via` is checked against, whenever they were valid.
struct CheckedTunnel {
    built: Option<Tunnel>,
    address: Option<IpAddr>,
    allowed_ips: Option<Vec<Prefix>>,
}

/// "IPv4" or "IPv6".
fn family(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}
