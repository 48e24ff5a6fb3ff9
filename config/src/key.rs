//! WireGuard keys as `wg genkey`, `wg pubkey` and `wg genpsk` write them: 32 bytes in
//! standard base64, which is exactly 44 characters ending in one `=`. The one decoder of
//! them, for key files and `public_key` in the config and for `augur pubkey`.
//!
//! The decoder is as strict as wireguard-tools' own (`key_from_base64`): the length, the
//! padding and the unused low bits of the last character are all checked, so one key has
//! one spelling. Its errors never carry the text or any decoded byte, either of which may be
//! a secret: only lengths and positions.

use base64::engine::general_purpose::STANDARD;
use base64::{DecodeError, Engine};

/// Characters in a base64 key: 32 bytes need 43 characters and one `=` of padding.
const KEY_CHARS: usize = 44;

/// Why text is not a key. No variant carries any of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 44 characters (after surrounding whitespace is removed).
    #[error("expected 44 base64 characters, found {0}")]
    Length(usize),
    /// A character outside the standard base64 alphabet; the position counts from 1.
    #[error(
        "expected only base64 characters (A-Z, a-z, 0-9, `+`, `/`), found another at position {0}"
    )]
    Character(usize),
    /// The 44th character is not `=`.
    #[error("expected 44 base64 characters ending in `=`, found no `=` at the end")]
    Padding,
    /// The last character sets bits past the 32nd byte: not how any tool writes a key.
    #[error("expected a key as `wg` writes it, found a last character (before `=`) with bits set past the 32nd byte")]
    TrailingBits,
}

/// Decodes a key; whitespace around it (such as the newline `wg genkey` ends with) is ignored.
pub fn decode(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() != KEY_CHARS {
        return Err(KeyError::Length(text.len()));
    }
    let decoded = STANDARD.decode(text);
    // The first character outside the alphabet, `=` included unless it is the 44th (an
    // early `=` would otherwise pass as the padding of a shorter key, "...==").
    let misplaced = text.as_bytes()[..KEY_CHARS - 1]
        .iter()
        .position(|&c| c == b'=');
    let invalid = match decoded {
        Err(DecodeError::InvalidByte(at, _)) if at < KEY_CHARS - 1 => Some(at),
        _ => None,
    };
    if let Some(at) = invalid.into_iter().chain(misplaced).min() {
        return Err(KeyError::Character(at + 1));
    }
    // The decoder's own byte in its error is dropped: it may be part of a secret.
    match decoded {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Padding),
        Err(DecodeError::InvalidLastSymbol(..)) => Err(KeyError::TrailingBits),
        Err(_) => Err(KeyError::Padding),
    }
}

/// A key in base64, as `wg` writes it (without the newline).
pub fn encode(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys() {
        // RFC 7748 section 6.1, Alice's private key, as `wg` writes it.
        let alice = decode("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n").unwrap();
        assert_eq!(alice[..4], [0x77, 0x07, 0x6d, 0x0a]);
        assert_eq!(alice[28..], [0x1d, 0xb9, 0x2c, 0x2a]);
        let counting: Vec<u8> = (0..32).collect();
        assert_eq!(
            decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()[..],
            counting[..]
        );
        assert_eq!(
            decode("  //////////////////////////////////////////8=  ").unwrap(),
            [0xff; 32]
        );
    }

    #[test]
    fn round_trips() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200 {
            let mut key = [0u8; 32];
            for byte in &mut key {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            let text = encode(&key);
            assert!(text.ends_with('='));
            assert_eq!(text.len(), KEY_CHARS);
            assert_eq!(decode(&text), Ok(key), "{text}");
        }
    }

    #[test]
    fn malformed_keys_say_why() {
        let good = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
        assert_eq!(decode(""), Err(KeyError::Length(0)));
        assert_eq!(decode("AAAA"), Err(KeyError::Length(4)));
        assert_eq!(decode(&good[..43]), Err(KeyError::Length(43)));
        assert_eq!(decode(&format!("{good}=")), Err(KeyError::Length(45)));
        assert_eq!(
            decode(&good.replace('=', "A")),
            Err(KeyError::Padding),
            "no padding"
        );
        assert_eq!(
            decode(&format!("{}==", &good[..42])),
            Err(KeyError::Character(43)),
            "31 bytes with two `=`"
        );
        assert_eq!(
            decode(&good.replacen('d', "-", 1)),
            Err(KeyError::Character(1)),
            "URL-safe alphabet"
        );
        assert_eq!(
            decode(&good.replace("LCo=", "LCp=")),
            Err(KeyError::TrailingBits)
        );
        assert_eq!(decode(&"é".repeat(22)), Err(KeyError::Character(1)));
        assert_eq!(decode(&"é".repeat(23)), Err(KeyError::Length(46)));
    }

    #[test]
    fn errors_carry_neither_the_text_nor_its_bytes() {
        let good = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
        for secret in [
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC!=".to_owned(),
            good.replace('=', "A"),
            good.replace("LCo=", "LCp="),
            format!("{}==", &good[..42]),
            good[..40].to_owned(),
            format!("{good}{good}"),
        ] {
            let error = decode(&secret).unwrap_err();
            for shown in [error.to_string(), format!("{error:?}")] {
                for window in secret.as_bytes().windows(5) {
                    let window = std::str::from_utf8(window).unwrap();
                    assert!(!shown.contains(window), "{shown} quotes {window}");
                }
                // Nor the offending byte, as base64's own error names it ("Invalid symbol 33").
                assert!(!shown.contains("symbol"), "{shown}");
            }
        }
    }
}
