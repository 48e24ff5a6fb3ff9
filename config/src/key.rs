//! WireGuard keys as `wg genkey`, `wg pubkey` and `wg genpsk` write them: 32 bytes in
//! standard base64, which is exactly 44 characters ending in one `=`.
//!
//! The decoder is as strict as wireguard-tools' own (`key_from_base64`): the length, the
//! padding and the unused low bits of the last character are all checked, so one key has
//! one spelling. Its errors never quote the text, which may be a secret.

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
    let text = text.trim().as_bytes();
    if text.len() != KEY_CHARS {
        return Err(KeyError::Length(text.len()));
    }
    let mut sextets = [0u8; KEY_CHARS - 1];
    for (i, (sextet, &c)) in sextets.iter_mut().zip(text).enumerate() {
        *sextet = sextet_of(c).ok_or(KeyError::Character(i + 1))?;
    }
    if text[KEY_CHARS - 1] != b'=' {
        return Err(KeyError::Padding);
    }
    // 43 sextets are 258 bits; the last sextet's two low bits are past the 256th.
    if sextets[KEY_CHARS - 2] & 0b11 != 0 {
        return Err(KeyError::TrailingBits);
    }
    let mut key = [0u8; 32];
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut out = 0;
    for sextet in sextets {
        bits = (bits << 6) | u32::from(sextet);
        held += 6;
        if held >= 8 {
            held -= 8;
            if let Some(byte) = key.get_mut(out) {
                *byte = (bits >> held) as u8;
            }
            out += 1;
            bits &= (1 << held) - 1;
        }
    }
    Ok(key)
}

/// The value of one character of the standard base64 alphabet.
fn sextet_of(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard base64 with padding, to check the decoder against.
    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

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
    fn errors_do_not_quote_the_text() {
        let secret = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC!=";
        let message = decode(secret).unwrap_err().to_string();
        assert!(!message.contains("dwdt"), "{message}");
    }
}
