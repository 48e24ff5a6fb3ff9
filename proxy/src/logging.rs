//! Process logging: `tracing` to stderr, filtered by `RUST_LOG` or the config's level, with
//! Pingora's `log` records bridged in.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is used when `RUST_LOG` is not set.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` also installs the `log` -> `tracing` bridge (tracing-log feature).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}
