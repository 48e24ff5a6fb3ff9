//! augur-config: YAML schema, defaults, validation with `file:line:col: path: message`
//! errors, and the diff between two configs. No I/O beyond reading the file.
#![forbid(unsafe_code)]

mod model;

pub use model::*;
