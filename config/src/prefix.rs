//! Source networks as segments and tunnels name them: `10.1.0.0/16`, `fd00:1::/48`, or one
//! address. The one CIDR type of augur, on `ipnet`: segments match it against the source of a
//! connection at accept, tunnels against the inner source of every decrypted packet
//! (`allowed_ips`), and the config checks a tunnelled backend's address against it.
//!
//! A prefix is kept canonical (no bit set past its length), so two ways of writing the same
//! network cannot both exist: `10.1.2.0/16` is refused with the canonical form suggested.
//!
//! The IPv4-mapped block (`::ffff:0:0/96`) is IPv4 space, for every user alike:
//! `::ffff:10.1.2.3`, which is how a dual-stack socket reports an IPv4 client and how a
//! tunnelled stack may name an IPv4 host, is the host 10.1.2.3, so `10.0.0.0/8` contains it
//! and `::/0` does not. An IPv6 prefix wider than the block never lets a mapped address
//! through: a peer allowed only IPv6 sources cannot claim an IPv4 one by writing it mapped.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// An IP network in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(IpNet);

/// Why text is not a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The part before any `/` is not an IPv4 or IPv6 address.
    #[error("expected an IP address or a prefix like 10.1.0.0/16 or fd00:1::/48")]
    Address,
    /// The part after `/` is not a length the address family allows.
    #[error("expected a prefix length from 0 to {max} after the `/`")]
    Length {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits are set past the prefix length.
    #[error("{addr}/{length} has host bits set; did you mean {canonical}?")]
    HostBits {
        /// The address as written (parsed).
        addr: IpAddr,
        /// The length as written.
        length: u8,
        /// The network that contains `addr`, with the host bits cleared.
        canonical: Prefix,
    },
}

impl Prefix {
    /// The network `addr/length`; `addr` must have no bit set past `length`.
    pub fn new(addr: IpAddr, length: u8) -> Result<Prefix, PrefixError> {
        let canonical = Prefix::containing(addr, length).ok_or(PrefixError::Length {
            max: max_length(addr),
        })?;
        if canonical.addr() == addr {
            Ok(canonical)
        } else {
            Err(PrefixError::HostBits {
                addr,
                length,
                canonical,
            })
        }
    }

    /// The network of length `length` that contains `addr` (host bits cleared); `None` when
    /// `length` is longer than the address.
    pub fn containing(addr: IpAddr, length: u8) -> Option<Prefix> {
        IpNet::new(addr, length).ok().map(|net| Prefix(net.trunc()))
    }

    /// A single host: `/32` or `/128`.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix(IpNet::from(addr))
    }

    /// Parses `10.1.0.0/16`, `fd00:1::/48`, or a bare address (a single host). No spaces,
    /// no zone (`%eth0`); the length is decimal digits only.
    pub fn parse(text: &str) -> Result<Prefix, PrefixError> {
        let (addr_text, length_text) = match text.split_once('/') {
            Some((addr, length)) => (addr, Some(length)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| PrefixError::Address)?;
        let Some(length_text) = length_text else {
            return Ok(Prefix::host(addr));
        };
        let max = max_length(addr);
        let digits_only = !length_text.is_empty()
            && length_text.len() <= 3
            && length_text.bytes().all(|b| b.is_ascii_digit());
        let length = digits_only
            .then(|| length_text.parse::<u8>().ok())
            .flatten()
            .filter(|length| *length <= max)
            .ok_or(PrefixError::Length { max })?;
        Prefix::new(addr, length)
    }

    /// The network address (host bits all zero).
    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    /// The prefix length in bits.
    pub fn length(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is in this network. The IPv4-mapped block `::ffff:0:0/96` is IPv4
    /// space: a mapped address is the IPv4 host it carries and a prefix inside the block is
    /// the IPv4 prefix it maps, so `10.0.0.0/8` contains `::ffff:10.1.2.3` and
    /// `::ffff:10.0.0.0/104` contains `10.1.2.3`. Wider IPv6 prefixes (`::/0`, `::/64`)
    /// contain IPv6 hosts only.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // `IpNet::contains` is false across families, which is what leaves the mapped block
        // out of the wider IPv6 prefixes.
        self.unmapped().contains(&ip.to_canonical())
    }

    /// The network, with a prefix inside `::ffff:0:0/96` as the IPv4 prefix it maps (a
    /// shorter IPv6 prefix stays IPv6).
    pub fn unmapped(&self) -> IpNet {
        match self.0 {
            IpNet::V6(net) if net.prefix_len() >= 96 => match net.addr().to_ipv4_mapped() {
                Some(a) => IpNet::new(IpAddr::V4(a), net.prefix_len() - 96).unwrap_or(self.0),
                None => self.0,
            },
            _ => self.0,
        }
    }
}

/// 32 or 128.
fn max_length(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.length())
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Prefix::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Prefix {
        Prefix::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_prefixes() {
        assert_eq!(p("10.1.2.3"), Prefix::host(ip("10.1.2.3")));
        assert_eq!(p("10.1.2.3").length(), 32);
        assert_eq!(p("::1").length(), 128);
        assert_eq!(p("10.1.0.0/16").to_string(), "10.1.0.0/16");
        assert_eq!(p("fd00:1::/48").to_string(), "fd00:1::/48");
        assert_eq!(p("FD00:1::/48"), p("fd00:1::/48"));
        assert_eq!(p("0.0.0.0/0").length(), 0);
        assert_eq!(p("::/0").length(), 0);
        assert_eq!(p("10.0.0.0/008").length(), 8);
        assert_eq!(p("::ffff:10.0.0.0/104").to_string(), "::ffff:10.0.0.0/104");
    }

    #[test]
    fn host_bits_suggest_the_canonical_prefix() {
        let error = Prefix::parse("10.1.2.0/16").unwrap_err();
        assert_eq!(
            error.to_string(),
            "10.1.2.0/16 has host bits set; did you mean 10.1.0.0/16?"
        );
        assert_eq!(
            Prefix::parse("fd00:1::1/48").unwrap_err().to_string(),
            "fd00:1::1/48 has host bits set; did you mean fd00:1::/48?"
        );
        assert!(matches!(
            Prefix::parse("10.0.0.1/0"),
            Err(PrefixError::HostBits { .. })
        ));
    }

    #[test]
    fn malformed_text() {
        for text in [
            "",
            "/",
            "10.1.2",
            "10.1.2.3.4",
            "10.01.2.3",
            " 10.0.0.0/8",
            "fe80::1%eth0",
            "localhost",
            "10.0.0.0 /8",
        ] {
            assert_eq!(Prefix::parse(text), Err(PrefixError::Address), "{text:?}");
        }
        for text in [
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/0008",
            "10.0.0.0/8/8",
        ] {
            assert_eq!(
                Prefix::parse(text),
                Err(PrefixError::Length { max: 32 }),
                "{text:?}"
            );
        }
        assert_eq!(
            Prefix::parse("::/129"),
            Err(PrefixError::Length { max: 128 })
        );
        assert_eq!(
            Prefix::parse("::/256"),
            Err(PrefixError::Length { max: 128 })
        );
    }

    #[test]
    fn containing_clears_host_bits() {
        assert_eq!(
            Prefix::containing(ip("10.1.2.3"), 24),
            Some(p("10.1.2.0/24"))
        );
        assert_eq!(
            Prefix::containing(ip("fd00:1:2:3:4::5"), 64),
            Some(p("fd00:1:2:3::/64"))
        );
        assert_eq!(Prefix::containing(ip("10.1.2.3"), 0), Some(p("0.0.0.0/0")));
        assert_eq!(Prefix::containing(ip("10.1.2.3"), 33), None);
        assert_eq!(Prefix::containing(ip("::1"), 129), None);
    }

    #[test]
    fn the_mapped_block_is_ipv4_space() {
        assert!(p("10.0.0.0/8").contains(ip("10.1.2.3")));
        assert!(p("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!p("10.0.0.0/8").contains(ip("11.0.0.0")));
        assert!(!p("10.0.0.0/8").contains(ip("::10.1.2.3")));
        assert!(p("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
        assert!(p("::ffff:0:0/96").contains(ip("1.2.3.4")));
        assert!(p("::ffff:0:0/96").contains(ip("::ffff:1.2.3.4")));
        assert!(!p("::ffff:0:0/96").contains(ip("::1")));
        assert!(!p("::/0").contains(ip("1.2.3.4")));
        assert!(!p("::/0").contains(ip("::ffff:1.2.3.4")));
        assert!(!p("::/64").contains(ip("1.2.3.4")));
        assert!(p("::/0").contains(ip("::1")));
        assert!(p("0.0.0.0/0").contains(ip("::ffff:1.2.3.4")));
        assert!(!p("0.0.0.0/0").contains(ip("::1")));
        assert!(!p("fd00::/8").contains(ip("1.2.3.4")));
        assert!(p("fd00:1::/48").contains(ip("fd00:1::7")));
        assert!(p("::1").contains(ip("::1")));
        assert!(p("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn a_canonical_suggestion_wider_than_the_mapped_block_leaves_mapped_hosts_out() {
        // Found by the segment_prefix fuzz target: `::ffff:f:f/2` suggests `::/2`, an IPv6
        // prefix that, being wider than `::ffff:0:0/96`, does not contain 0.15.0.15.
        let Err(PrefixError::HostBits {
            addr, canonical, ..
        }) = Prefix::parse("::ffff:f:f/2")
        else {
            panic!("expected a host-bits error");
        };
        assert_eq!(canonical, p("::/2"));
        assert!(!canonical.contains(addr));
        assert!(p("0.0.0.0/0").contains(addr));
        assert!(p("0.15.0.0/16").contains(addr));
    }

    #[test]
    fn unmapped_is_the_ipv4_prefix_a_mapped_one_stands_for() {
        assert_eq!(
            p("::ffff:10.0.0.0/104").unmapped(),
            "10.0.0.0/8".parse().unwrap()
        );
        assert_eq!(p("::ffff:0:0/96").unmapped(), "0.0.0.0/0".parse().unwrap());
        assert_eq!(p("::/64").unmapped(), "::/64".parse().unwrap());
        assert_eq!(p("10.0.0.0/8").unmapped(), "10.0.0.0/8".parse().unwrap());
    }
}
