//! The request head of augur's internal CONNECT endpoint: how the HTTP proxy (Pingora) asks a
//! tunnel for a connection to `IP:PORT`. Strict and bounded: anything else is refused.

use std::net::SocketAddr;

/// Longest request head accepted.
pub const CONNECT_HEAD_MAX: usize = 4096;

/// What reading a CONNECT head found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectHead {
    /// The head is not complete yet (no blank line within the bytes so far).
    Partial,
    /// A complete head asking for this target; the head is this many bytes long.
    Target(SocketAddr, usize),
    /// Not a CONNECT to an `IP:PORT`, or too long.
    Invalid,
}

/// Reads `CONNECT IP:PORT HTTP/1.x` followed by any header lines and a blank line.
pub fn connect_head(bytes: &[u8]) -> ConnectHead {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if bytes.len() >= CONNECT_HEAD_MAX {
            ConnectHead::Invalid
        } else {
            ConnectHead::Partial
        };
    };
    if end + 4 > CONNECT_HEAD_MAX {
        return ConnectHead::Invalid;
    }
    let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(end);
    let Ok(line) = std::str::from_utf8(&bytes[..line_end]) else {
        return ConnectHead::Invalid;
    };
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("CONNECT"), Some(target), Some("HTTP/1.1" | "HTTP/1.0"), None) => {
            match target.parse::<SocketAddr>() {
                Ok(addr) if addr.port() != 0 => ConnectHead::Target(addr, end + 4),
                _ => ConnectHead::Invalid,
            }
        }
        _ => ConnectHead::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let head = b"CONNECT 10.20.1.10:8080 HTTP/1.1\r\nHost: 10.20.1.10:8080\r\n\r\nrest";
        assert_eq!(
            connect_head(head),
            ConnectHead::Target("10.20.1.10:8080".parse().unwrap(), head.len() - 4)
        );
        assert_eq!(
            connect_head(b"CONNECT [fd00::1]:443 HTTP/1.1\r\n\r\n"),
            ConnectHead::Target("[fd00::1]:443".parse().unwrap(), 34)
        );
        assert_eq!(
            connect_head(b"CONNECT 10.20.1.10:8080 HTTP/1.1\r\n"),
            ConnectHead::Partial
        );
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"CONNECT example.com:80 HTTP/1.1\r\n\r\n",
            b"CONNECT 10.0.0.1:0 HTTP/1.1\r\n\r\n",
            b"CONNECT 10.0.0.1:80 HTTP/2\r\n\r\n",
            b"CONNECT 10.0.0.1:80  HTTP/1.1\r\n\r\n",
            b"CONNECT 10.0.0.1:80 HTTP/1.1 x\r\n\r\n",
            b"\xff\r\n\r\n",
        ] {
            assert_eq!(connect_head(bad), ConnectHead::Invalid, "{bad:?}");
        }
        assert_eq!(
            connect_head(&[b'a'; CONNECT_HEAD_MAX]),
            ConnectHead::Invalid
        );
    }
}
