//! Reload: parse, validate, build new tables, swap. Refused (and the running config kept)
//! when the file is invalid or the change needs sockets that only `--upgrade` can provide.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crate::lifecycle::ReloadOutcome;
use crate::runtime::{content_hash, ConfigVersion, Runtime};
use crate::state::Shared;

/// Why a reload was refused (the running config stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The instance runs the built-in demo config.
    #[error("this instance runs the built-in demo config; there is no file to reload")]
    NoFile,
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is invalid: every problem, as `augur check` prints them.
    #[error("{0}")]
    Invalid(augur_config::Errors),
    /// The changes need listening sockets or predictor settings only a new process gets.
    #[error(
        "{}: these changes take a new process (new listening sockets or predictor \
         settings), which reload does not start; use `augur run --upgrade` instead: {}",
        path.display(),
        changes.join("; ")
    )]
    NeedsNewProcess {
        /// The config file.
        path: PathBuf,
        /// The changes that need it.
        changes: Vec<String>,
    },
    /// A tunnel peer's endpoint name does not resolve to an address the tunnel can use.
    #[error("{}: {message}", path.display())]
    Endpoint {
        /// The config file.
        path: PathBuf,
        /// Which endpoint, and why.
        message: String,
    },
    /// The reload itself failed (a panic in the task that ran it).
    #[error("reload task failed: {0}")]
    Failed(String),
}

/// Reloads the config file; returns what changed, or why the reload was refused.
pub fn reload(shared: &Shared) -> Result<Vec<String>, ReloadError> {
    let _one_at_a_time = shared
        .lifecycle
        .reload_lock
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let result = try_reload(shared);
    let outcome = match &result {
        Ok(changes) => {
            shared.lifecycle.reloads_ok.fetch_add(1, Ordering::Relaxed);
            tracing::info!(changes = changes.len(), "config reloaded");
            for change in changes {
                tracing::info!(%change, "config change");
            }
            ReloadOutcome {
                at: SystemTime::now(),
                ok: true,
                error: String::new(),
                changes: changes.clone(),
            }
        }
        Err(error) => {
            shared
                .lifecycle
                .reloads_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "reload refused; the running config stays");
            ReloadOutcome {
                at: SystemTime::now(),
                ok: false,
                error: error.to_string(),
                changes: Vec::new(),
            }
        }
    };
    shared.lifecycle.last_reload.store(Arc::new(Some(outcome)));
    result
}

fn try_reload(shared: &Shared) -> Result<Vec<String>, ReloadError> {
    let path = shared
        .lifecycle
        .config_path
        .as_deref()
        .ok_or(ReloadError::NoFile)?;
    // One read: the bytes hashed are the bytes parsed.
    let bytes = std::fs::read(path).map_err(|source| ReloadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = augur_config::load_bytes(path, &bytes).map_err(ReloadError::Invalid)?;
    let old = shared.routing.runtime.load_full();
    let changes = augur_config::diff(&old.config, &config);
    let needs_sockets: Vec<String> = changes
        .iter()
        .filter(|c| c.needs_new_process())
        .map(ToString::to_string)
        .collect();
    if !needs_sockets.is_empty() {
        return Err(ReloadError::NeedsNewProcess {
            path: path.to_owned(),
            changes: needs_sockets,
        });
    }
    // Host names of tunnel peers are looked up again; one that does not resolve refuses the
    // reload like any other error in the file.
    let endpoints = shared
        .routing
        .tunnels
        .resolve_endpoints(&config.tunnels)
        .map_err(|message| ReloadError::Endpoint {
            path: path.to_owned(),
            message,
        })?;
    let version = ConfigVersion {
        hash: content_hash(&bytes),
        loaded_at: SystemTime::now(),
        generation: old.version.generation + 1,
    };
    shared.routing.tunnels.reload(&endpoints);
    let runtime = Runtime::build(
        config,
        version,
        Some(&old),
        &shared.lifecycle.slots,
        &shared.routing.registry,
        &shared.routing.tunnels,
    );
    shared.routing.runtime.store(Arc::new(runtime));
    shared.lifecycle.reloaded.notify_waiters();
    Ok(changes.iter().map(ToString::to_string).collect())
}
