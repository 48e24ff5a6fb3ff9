//! A problem found by parsing or validation, before it is given a line and column.

use crate::error::ConfigError;
use crate::locate::{Position, Positions};

/// What in the file a problem should point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The value at the path (or its nearest existing ancestor).
    Value,
    /// The key of the mapping entry at the path (unknown and duplicate keys).
    Key,
    /// A position already known (from the YAML parser).
    At(Position),
}

/// A problem, its path and what to point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Path in `serde_path_to_error` format, empty for the whole document.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
    /// Where to point.
    pub anchor: Anchor,
}

impl Issue {
    /// A problem with the value at `path`.
    pub fn at_value(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
            anchor: Anchor::Value,
        }
    }

    /// Gives the problem its line and column.
    pub fn locate(self, file: &str, positions: &Positions) -> ConfigError {
        let position = match self.anchor {
            Anchor::At(position) => position,
            Anchor::Key => positions
                .key(&self.path)
                .unwrap_or_else(|| positions.nearest(&self.path)),
            Anchor::Value => positions.nearest(&self.path),
        };
        ConfigError {
            file: file.to_owned(),
            line: position.line,
            column: position.column,
            // A key can be any length; the path names it, but must not echo a whole file.
            path: shorten(&self.path, MAX_PATH),
            message: self.message,
        }
    }
}

/// Longest path shown, in characters (a key can be arbitrarily long).
const MAX_PATH: usize = 200;

/// Longest user-supplied text echoed back in a message, in characters.
const MAX_ECHO: usize = 64;

/// `"text"`, shortened if long: an error about one value must not echo a whole file.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", shorten(text, MAX_ECHO))
}

/// `text` cut to at most `max` characters, marked with `...` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_shortened() {
        assert_eq!(quoted("api"), "\"api\"");
        let long = "é".repeat(100);
        let shown = quoted(&long);
        assert_eq!(shown.chars().count(), MAX_ECHO + 5);
        assert!(shown.ends_with("...\""));
    }
}
