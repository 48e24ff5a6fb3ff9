//! Errors that point at the place: `augur.yaml:14:15: upstreams[1].backends[0].addr: ...`.

use std::fmt;

/// One problem in a config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {}{message}", PathPrefix(.path))]
pub struct ConfigError {
    /// The file name as given to `parse`/`load`.
    pub file: String,
    /// 1-based line of the offending value (0 when the file could not be read).
    pub line: usize,
    /// 1-based column of the offending value (0 when the file could not be read).
    pub column: usize,
    /// Path of the offending value, like `listeners[0].routes[1].upstream`; empty for the
    /// whole document.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

/// Every problem found in a config file, in file order; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(.0))]
pub struct Errors(pub Vec<ConfigError>);

/// `"{path}: "`, or nothing for the document itself.
struct PathPrefix<'a>(&'a str);

impl fmt::Display for PathPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

/// One error per line, without a trailing newline.
struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl Errors {
    /// A single error for the whole file (no position), like "cannot read file".
    pub(crate) fn whole_file(file: &str, message: String) -> Self {
        Errors(vec![ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            path: String::new(),
            message,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(path: &str) -> ConfigError {
        ConfigError {
            file: "augur.yaml".into(),
            line: 14,
            column: 15,
            path: path.into(),
            message: "invalid socket address \"x\": expected IP:PORT".into(),
        }
    }

    #[test]
    fn display_with_and_without_path() {
        assert_eq!(
            error("upstreams[1].backends[0].addr").to_string(),
            "augur.yaml:14:15: upstreams[1].backends[0].addr: invalid socket address \"x\": expected IP:PORT"
        );
        assert_eq!(
            error("").to_string(),
            "augur.yaml:14:15: invalid socket address \"x\": expected IP:PORT"
        );
    }

    #[test]
    fn errors_one_per_line() {
        let errors = Errors(vec![error("a"), error("b")]);
        let text = errors.to_string();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().next().unwrap().contains(": a: "));
        assert!(!text.ends_with('\n'));
    }
}
