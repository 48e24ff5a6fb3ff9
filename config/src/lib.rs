//! augur-config: YAML schema, defaults, validation with `file:line:col: path: message`
//! errors, and the diff between two configs. No I/O beyond reading the config file,
//! checking that TLS files are readable and reading tunnel key files.
//!
//! Loading is three steps, each pure and none able to panic: parse the text into raw
//! structs that mirror the file (`raw`), validate them while collecting every problem
//! (`validate`), and build the [`Config`] the runtime sees. Problems are located afterwards
//! through an index of where every value is in the text (`locate`).
#![forbid(unsafe_code)]

mod diff;
mod error;
mod issue;
pub mod key;
mod locate;
mod model;
mod parse;
mod policy;
mod prefix;
mod raw;
mod suggest;
mod validate;

use std::path::{Path, PathBuf};

pub use diff::{diff, Change, ServerSetting, TunnelSetting, UpstreamSetting};
pub use error::{ConfigError, Errors};
pub use model::*;
pub use prefix::{Prefix, PrefixError};

use issue::{Anchor, Issue};
use locate::Positions;

/// Parse and validate YAML text. `file` is only used in error messages.
///
/// Relative TLS and key paths are left relative, that is, relative to the current directory.
pub fn parse(text: &str, file: &str) -> Result<Config, Errors> {
    parse_in(text, file, Path::new(""))
}

/// Read a file and parse it; relative TLS and key paths are resolved against the file's directory.
///
/// An unreadable file is an [`Errors`] with one error at line 0, column 0.
pub fn load(path: &Path) -> Result<Config, Errors> {
    let bytes = std::fs::read(path).map_err(|error| {
        Errors::whole_file(
            &path.display().to_string(),
            format!("cannot read config file: {error}"),
        )
    })?;
    load_bytes(path, &bytes)
}

/// [`load`] of bytes already read from `path`, so that a caller can hash exactly what it parsed.
///
/// Bytes that are not UTF-8 are an [`Errors`] with one error at line 0, column 0.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Config, Errors> {
    let file = path.display().to_string();
    let text = std::str::from_utf8(bytes)
        .map_err(|error| Errors::whole_file(&file, format!("cannot read config file: {error}")))?;
    // Absolute, so that TLS and key paths stay right if the process later changes directory.
    let dir = path.parent().unwrap_or(Path::new(""));
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| PathBuf::from(dir))
    };
    parse_in(text, &file, &dir)
}

/// [`parse`] with relative TLS and key paths taken from `base_dir`.
fn parse_in(text: &str, file: &str, base_dir: &Path) -> Result<Config, Errors> {
    let issues = match parse::parse_raw(text) {
        Err(issue) => vec![issue],
        Ok(raw) => match validate::validate(raw, base_dir) {
            Ok(config) => return Ok(config),
            Err(issues) => issues,
        },
    };
    Err(locate_all(issues, text, file))
}

/// Gives each issue its line and column, in file order.
fn locate_all(issues: Vec<Issue>, text: &str, file: &str) -> Errors {
    // A syntax error already carries its position; only index text that needs it (and so
    // only text that the YAML parser accepted).
    let needs_index = issues
        .iter()
        .any(|issue| !matches!(issue.anchor, Anchor::At(_)));
    let positions = if needs_index {
        Positions::index(text)
    } else {
        Positions::default()
    };
    let mut errors: Vec<ConfigError> = issues
        .into_iter()
        .map(|issue| issue.locate(file, &positions))
        .collect();
    errors.sort_by_key(|error| (error.line, error.column));
    Errors(errors)
}
