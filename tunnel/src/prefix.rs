//! The peer's `allowed_ips`: which inner sources it may use. Each entry is the config's
//! [`Prefix`], so a tunnel matches sources exactly as a segment does, the IPv4-mapped block
//! included (see `augur_config::Prefix::contains`).

use std::net::IpAddr;

use augur_config::Prefix;

/// A list of IP prefixes. Small (a handful per peer), so a linear scan is the right shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedIps {
    prefixes: Vec<Prefix>,
}

impl AllowedIps {
    /// From `(network, length)` pairs. Lengths beyond the family's width are clamped (a
    /// single host); host bits past the length are ignored.
    pub fn new(prefixes: impl IntoIterator<Item = (IpAddr, u8)>) -> AllowedIps {
        let prefixes = prefixes
            .into_iter()
            .map(|(ip, len)| Prefix::containing(ip, len).unwrap_or_else(|| Prefix::host(ip)))
            .collect();
        AllowedIps { prefixes }
    }

    /// From the config's prefixes (the one CIDR type), as they are.
    pub fn from_prefixes(prefixes: impl IntoIterator<Item = Prefix>) -> AllowedIps {
        AllowedIps {
            prefixes: prefixes.into_iter().collect(),
        }
    }

    /// Whether `ip` falls in one of the prefixes.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.prefixes.iter().any(|prefix| prefix.contains(ip))
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
        let host_bits = AllowedIps::new([(ip("10.20.3.4"), 16)]);
        assert!(host_bits.contains(ip("10.20.200.1")));
    }

    #[test]
    fn an_ipv4_mapped_source_is_the_ipv4_host_it_carries() {
        // An IPv6 packet from `::ffff:10.20.1.10` claims to be 10.20.1.10: allowed where that
        // host is, as a segment would admit it.
        let v4 = AllowedIps::new([(ip("10.0.0.0"), 8)]);
        assert!(v4.contains(ip("::ffff:10.0.0.1")));
        assert!(!v4.contains(ip("::ffff:11.0.0.1")));
        assert!(
            !v4.contains(ip("::10.0.0.1")),
            "IPv4-compatible is not mapped"
        );
        // A peer allowed only IPv6 cannot claim an IPv4 source by writing it mapped.
        let v6 = AllowedIps::new([(ip("::"), 0)]);
        assert!(v6.contains(ip("fd00::1")));
        assert!(!v6.contains(ip("::ffff:10.0.0.1")));
        let wide = AllowedIps::new([(ip("::"), 2)]);
        assert!(!wide.contains(ip("::ffff:f:f")));
        // The mapped block written as IPv6 is IPv4 space too.
        let block = AllowedIps::new([(ip("::ffff:10.20.0.0"), 112)]);
        assert!(block.contains(ip("10.20.7.7")));
        assert!(block.contains(ip("::ffff:10.20.7.7")));
        assert!(!block.contains(ip("10.21.0.1")));
    }
}
