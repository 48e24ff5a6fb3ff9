//! The prefix parser never panics, whatever the bytes; what it accepts it prints in a form
//! that parses back equal; and a host-bits error's suggestion is itself a valid prefix that
//! contains the address (unless it is an IPv4-mapped one, which only the mapped block and
//! prefixes inside it contain).
#![no_main]

use augur_segmenter::{Prefix, PrefixError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Prefix::parse(text) {
        Ok(prefix) => {
            let shown = prefix.to_string();
            assert_eq!(
                Prefix::parse(&shown),
                Ok(prefix),
                "{text:?} shown as {shown:?}"
            );
            assert!(
                prefix.contains(prefix.addr()),
                "{prefix} lacks its own address"
            );
        }
        Err(PrefixError::HostBits {
            addr,
            length,
            canonical,
        }) => {
            assert_eq!(Prefix::containing(addr, length), Some(canonical));
            assert_eq!(Prefix::parse(&canonical.to_string()), Ok(canonical));
            // An IPv4-mapped address is IPv4 space, which an IPv6 prefix wider than the
            // mapped block (`::ffff:0:0/96`) does not contain, by definition (`contains`).
            let mapped_outside_block = matches!(addr, std::net::IpAddr::V6(a)
                if a.to_ipv4_mapped().is_some() && length < 96);
            assert!(
                canonical.contains(addr) || mapped_outside_block,
                "{canonical} lacks {addr}"
            );
        }
        Err(PrefixError::Address | PrefixError::Length { .. }) => {}
    }
});
