//! Tunnel key files: read once, at validation, so that a reload that cannot read a key
//! fails like any other invalid config instead of breaking a running tunnel. Only the
//! file's owner may read it, and nothing read from it is ever put in a message.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::tls::{resolve, shown};
use super::Checks;
use crate::key;
use crate::model::Key;

/// Largest key file read: a key is 44 characters and a newline.
const MAX_KEY_BYTES: u64 = 1024;

/// The two kinds of secret a tunnel reads from a file.
#[derive(Debug, Clone, Copy)]
pub(super) enum Secret {
    /// `private_key_file`.
    Private,
    /// `peer.preshared_key_file`.
    Preshared,
}

impl Secret {
    fn noun(self) -> &'static str {
        match self {
            Secret::Private => "private key",
            Secret::Preshared => "preshared key",
        }
    }

    /// The command that writes one.
    fn maker(self) -> &'static str {
        match self {
            Secret::Private => "wg genkey",
            Secret::Preshared => "wg genpsk",
        }
    }
}

impl Checks<'_> {
    /// A key file, resolved against the config file's directory: only its owner may read
    /// it, and it holds one key.
    pub(super) fn key_file(
        &mut self,
        text: &str,
        path: &str,
        secret: Secret,
    ) -> Option<(PathBuf, Key)> {
        let file = resolve(self.base_dir, text);
        let shown = shown(text, &file);
        let noun = secret.noun();
        let (head, mode) = match read_key_file(&file) {
            Ok(read) => read,
            Err(error) => {
                self.report(path, format!("cannot read {noun} file {shown}: {error}"));
                return None;
            }
        };
        if mode & 0o077 != 0 {
            self.report(
                path,
                format!(
                    "{noun} file {shown} is open to group or others (mode {:04o}); run \
                     `chmod 600 {}` so that only its owner can read it",
                    mode & 0o7777,
                    file.display()
                ),
            );
            return None;
        }
        let decoded = if head.len() as u64 > MAX_KEY_BYTES {
            Err(format!(
                "expected 44 base64 characters, found a file of more than {MAX_KEY_BYTES} bytes"
            ))
        } else {
            std::str::from_utf8(&head)
                .map_err(|_| {
                    "expected 44 base64 characters, found bytes that are not text".to_owned()
                })
                .and_then(|text| key::decode(text).map_err(|error| error.to_string()))
        };
        match decoded {
            Ok(bytes) => Some((file, Key::from(bytes))),
            Err(why) => {
                self.report(
                    path,
                    format!(
                        "{noun} file {shown} is not a WireGuard key: {why}; `{}` writes one",
                        secret.maker()
                    ),
                );
                None
            }
        }
    }
}

/// Up to `MAX_KEY_BYTES + 1` bytes of a regular file, and its permission bits (0 where there
/// are none to check).
fn read_key_file(file: &Path) -> std::io::Result<(Vec<u8>, u32)> {
    // Checked before opening too: opening a FIFO would wait for a writer.
    if !std::fs::metadata(file)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let opened = File::open(file)?;
    let metadata = opened.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut head = Vec::new();
    opened.take(MAX_KEY_BYTES + 1).read_to_end(&mut head)?;
    Ok((head, mode(&metadata)))
}

/// The file's permission bits.
#[cfg(unix)]
fn mode(metadata: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode()
}

/// No permission bits to check.
#[cfg(not(unix))]
fn mode(_: &std::fs::Metadata) -> u32 {
    0
}
