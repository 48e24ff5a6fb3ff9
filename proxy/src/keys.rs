//! WireGuard keys as `wg genkey` and `wg pubkey` write them: 32 bytes in standard base64.
//! `augur keygen` prints a new private key; `augur pubkey` reads one and prints its public key.

use std::io::Read;

use augur_config::key;
use boringtun::x25519::{PublicKey, StaticSecret};

/// Why a key could not be read; like the decoder's, it never carries the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a WireGuard key: {0}")]
pub struct KeyError(#[from] key::KeyError);

/// A new private key from the kernel's random source, clamped as X25519 requires (as
/// `wg genkey` does), in base64.
pub fn generate() -> std::io::Result<String> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
    Ok(key::encode(&key))
}

/// The public key of a base64 private key (surrounding whitespace ignored), in base64.
pub fn public_of(private: &str) -> Result<String, KeyError> {
    let secret = StaticSecret::from(key::decode(private)?);
    Ok(key::encode(PublicKey::from(&secret).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> [u8; 32] {
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    #[test]
    fn public_keys_match_rfc_7748() {
        // RFC 7748 section 6.1: Alice's and Bob's key pairs.
        for (private, public) in [
            (
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            ),
            (
                "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            ),
        ] {
            let private = key::encode(&hex(private));
            assert_eq!(public_of(&private).unwrap(), key::encode(&hex(public)));
        }
    }

    #[test]
    fn generated_keys_are_clamped_distinct_and_have_a_public_key() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        let bytes = key::decode(&a).unwrap();
        assert_eq!(bytes[0] & 7, 0);
        assert_eq!(bytes[31] & 0xc0, 0x40);
        assert_eq!(a.len(), 44);
        assert_eq!(public_of(&format!("  {a}\n")).unwrap().len(), 44);
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        assert_eq!(
            public_of("not base64!").unwrap_err().to_string(),
            "not a WireGuard key: expected 44 base64 characters, found 11"
        );
        let error = public_of(&format!("{}!=", "A".repeat(42))).unwrap_err();
        assert_eq!(error, KeyError(key::KeyError::Character(43)));
    }
}
