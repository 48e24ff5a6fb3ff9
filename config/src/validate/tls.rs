//! `tls:` of an https listener: both files must be readable PEM of the right kind.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Checks;
use crate::issue::quoted;
use crate::model::Tls;
use crate::raw::RawTls;

/// How much of a PEM file is read to check it: far more than any certificate chain, and
/// a bound if the path names something endless like `/dev/zero`.
const MAX_PEM_BYTES: u64 = 4 << 20;

/// The two kinds of PEM file a listener needs.
#[derive(Debug, Clone, Copy)]
enum PemKind {
    Certificate,
    PrivateKey,
}

impl PemKind {
    fn noun(self) -> &'static str {
        match self {
            PemKind::Certificate => "certificate",
            PemKind::PrivateKey => "private key",
        }
    }

    /// Text that a PEM file of this kind contains.
    fn marker(self) -> &'static str {
        match self {
            PemKind::Certificate => "-----BEGIN CERTIFICATE-----",
            PemKind::PrivateKey => "PRIVATE KEY-----",
        }
    }

    /// The line we tell the user to look for.
    fn expected_line(self) -> &'static str {
        match self {
            PemKind::Certificate => "-----BEGIN CERTIFICATE-----",
            PemKind::PrivateKey => "-----BEGIN PRIVATE KEY-----",
        }
    }
}

impl Checks<'_> {
    /// `tls:` at `path`: a certificate chain and its key.
    pub(super) fn tls(&mut self, raw: RawTls, path: &str) -> Option<Tls> {
        let cert = self
            .required(raw.cert.as_deref(), path, "cert")
            .and_then(|file| self.pem_file(file, &format!("{path}.cert"), PemKind::Certificate));
        let key = self
            .required(raw.key.as_deref(), path, "key")
            .and_then(|file| self.pem_file(file, &format!("{path}.key"), PemKind::PrivateKey));
        Some(Tls {
            cert: cert?,
            key: key?,
        })
    }

    /// A readable PEM file of `kind`, resolved against the config file's directory.
    fn pem_file(&mut self, text: &str, path: &str, kind: PemKind) -> Option<PathBuf> {
        let file = resolve(self.base_dir, text);
        let shown = shown(text, &file);
        match read_head(&file) {
            Err(error) => {
                self.report(
                    path,
                    format!("cannot read {} file {shown}: {error}", kind.noun()),
                );
                None
            }
            Ok(head) if !contains(&head, kind.marker().as_bytes()) => {
                self.report(
                    path,
                    format!(
                        "{shown} is not a PEM {}: expected a \"{}\" line",
                        kind.noun(),
                        kind.expected_line()
                    ),
                );
                None
            }
            Ok(_) => Some(file),
        }
    }
}

/// `"text"` as written, followed by where it resolved to when that differs.
pub(super) fn shown(text: &str, file: &Path) -> String {
    if file.as_os_str() == text {
        quoted(text)
    } else {
        format!(
            "{} (resolved to {})",
            quoted(text),
            quoted(&file.to_string_lossy())
        )
    }
}

/// `file` if absolute, else `file` under `base_dir`.
pub fn resolve(base_dir: &Path, file: &str) -> PathBuf {
    let file = Path::new(file);
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        base_dir.join(file)
    }
}

/// The first `MAX_PEM_BYTES` of a regular file.
fn read_head(file: &Path) -> std::io::Result<Vec<u8>> {
    let opened = File::open(file)?;
    if !opened.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut head = Vec::new();
    opened.take(MAX_PEM_BYTES).read_to_end(&mut head)?;
    Ok(head)
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_resolved_against_the_base() {
        assert_eq!(
            resolve(Path::new("/etc/augur"), "certs/a.pem"),
            Path::new("/etc/augur/certs/a.pem")
        );
        assert_eq!(
            resolve(Path::new("/etc/augur"), "/x/a.pem"),
            Path::new("/x/a.pem")
        );
        assert_eq!(resolve(Path::new(""), "a.pem"), Path::new("a.pem"));
    }

    #[test]
    fn pem_markers() {
        assert!(contains(
            b"xx-----BEGIN CERTIFICATE-----\n",
            PemKind::Certificate.marker().as_bytes()
        ));
        assert!(contains(
            b"-----BEGIN EC PRIVATE KEY-----",
            PemKind::PrivateKey.marker().as_bytes()
        ));
        assert!(!contains(b"", PemKind::PrivateKey.marker().as_bytes()));
    }

    #[test]
    fn directories_and_missing_files_are_unreadable() {
        assert!(read_head(&std::env::temp_dir()).is_err());
        assert!(read_head(Path::new("/nonexistent/augur/cert.pem")).is_err());
    }
}
