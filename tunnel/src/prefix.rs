//! The peer's `allowed_ips`: which inner sources it may use.

use std::net::IpAddr;

/// A list of IP prefixes. Small (a handful per peer), so a linear scan is the right shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedIps {
    prefixes: Vec<(IpAddr, u8)>,
}

impl AllowedIps {
    /// From `(network, length)` pairs. Lengths beyond the family's width are clamped.
    pub fn new(prefixes: impl IntoIterator<Item = (IpAddr, u8)>) -> AllowedIps {
        let prefixes = prefixes
            .into_iter()
            .map(|(ip, len)| match ip {
                IpAddr::V4(_) => (ip, len.min(32)),
                IpAddr::V6(_) => (ip, len.min(128)),
            })
            .collect();
        AllowedIps { prefixes }
    }

    /// Whether `ip` falls in one of the prefixes (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.prefixes.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_match_by_family_and_length() {
        let allowed = AllowedIps::new([(ip("10.20.0.0"), 16), (ip("fd00::"), 8)]);
        assert!(allowed.contains(ip("10.20.1.10")));
        assert!(allowed.contains(ip("10.20.255.255")));
        assert!(!allowed.contains(ip("10.21.0.1")));
        assert!(allowed.contains(ip("fd12::1")));
        assert!(!allowed.contains(ip("fe80::1")));
        assert!(!allowed.contains(ip("::ffff:10.20.1.10")));
    }

    #[test]
    fn zero_and_full_lengths() {
        let all = AllowedIps::new([(ip("0.0.0.0"), 0)]);
        assert!(all.contains(ip("192.0.2.1")));
        assert!(!all.contains(ip("::1")));
        let one = AllowedIps::new([(ip("192.0.2.1"), 40)]);
        assert!(one.contains(ip("192.0.2.1")));
        assert!(!one.contains(ip("192.0.2.2")));
        assert!(!AllowedIps::default().contains(ip("192.0.2.1")));
    }
}
