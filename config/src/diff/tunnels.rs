//! Tunnel changes: which of a tunnel's settings differ. Keys are compared by value (a key
//! file that moved but holds the same key is no change) and never shown.

use super::Change;
use crate::model::{Config, Tunnel};

/// The settings of a tunnel, named for [`Change::TunnelChanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelSetting {
    /// The private key, the peer's public key or the preshared key.
    Keys,
    /// `address`.
    Address,
    /// `mtu`.
    Mtu,
    /// `listen_port`.
    ListenPort,
    /// `peer.endpoint`.
    PeerEndpoint,
    /// `peer.allowed_ips` (reordering them is no change).
    AllowedIps,
    /// `peer.persistent_keepalive`.
    Keepalive,
    /// `forward` (reordering it is no change).
    Forward,
}

impl TunnelSetting {
    /// The key as written in the file (`keys` for the three keys together).
    pub fn key(self) -> &'static str {
        match self {
            TunnelSetting::Keys => "keys",
            TunnelSetting::Address => "address",
            TunnelSetting::Mtu => "mtu",
            TunnelSetting::ListenPort => "listen_port",
            TunnelSetting::PeerEndpoint => "peer.endpoint",
            TunnelSetting::AllowedIps => "peer.allowed_ips",
            TunnelSetting::Keepalive => "peer.persistent_keepalive",
            TunnelSetting::Forward => "forward",
        }
    }
}

/// The name of tunnel `index`, if it exists.
pub(super) fn name(config: &Config, index: usize) -> Option<&str> {
    config.tunnels.get(index).map(|t| t.name.as_str())
}

/// Tunnel changes, matched by name.
pub(super) fn diff_tunnels(old: &Config, new: &Config, changes: &mut Vec<Change>) {
    super::by_name(old, new, changes, |before: &Tunnel, tunnel, changes| {
        for setting in changed_settings(before, tunnel) {
            changes.push(Change::TunnelChanged {
                tunnel: tunnel.name.clone(),
                setting,
            });
        }
    });
}

/// The settings that differ between two versions of one tunnel.
fn changed_settings(old: &Tunnel, new: &Tunnel) -> Vec<TunnelSetting> {
    let keys = |t: &Tunnel| {
        (
            t.private_key.clone(),
            t.peer.public_key,
            t.peer.preshared_key.clone(),
        )
    };
    let sorted = |t: &Tunnel| {
        let mut allowed = t.peer.allowed_ips.clone();
        allowed.sort_unstable();
        allowed.dedup();
        let mut forward: Vec<(u16, std::net::SocketAddr)> =
            t.forward.iter().map(|f| (f.port, f.to)).collect();
        forward.sort_unstable();
        (allowed, forward)
    };
    let (old_allowed, old_forward) = sorted(old);
    let (new_allowed, new_forward) = sorted(new);
    [
        (TunnelSetting::Keys, keys(old) != keys(new)),
        (TunnelSetting::Address, old.address != new.address),
        (TunnelSetting::Mtu, old.mtu != new.mtu),
        (
            TunnelSetting::ListenPort,
            old.listen_port != new.listen_port,
        ),
        (
            TunnelSetting::PeerEndpoint,
            old.peer.endpoint != new.peer.endpoint,
        ),
        (TunnelSetting::AllowedIps, old_allowed != new_allowed),
        (
            TunnelSetting::Keepalive,
            old.peer.persistent_keepalive != new.peer.persistent_keepalive,
        ),
        (TunnelSetting::Forward, old_forward != new_forward),
    ]
    .into_iter()
    .filter_map(|(setting, changed)| changed.then_some(setting))
    .collect()
}
