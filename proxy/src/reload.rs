//! Reload: parse, validate, build new tables, swap. Refused (and the running config kept)
//! when the file is invalid or the change needs sockets that only `--upgrade` can provide.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crate::runtime::{content_hash, ConfigVersion, Runtime};
use crate::state::{ReloadOutcome, Shared};

/// Reloads the config file; returns what changed, or why the reload was refused.
pub fn reload(shared: &Shared) -> Result<Vec<String>, String> {
    let _one_at_a_time = shared
        .reload_lock
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let result = try_reload(shared);
    let outcome = match &result {
        Ok(changes) => {
            shared.reloads_ok.fetch_add(1, Ordering::Relaxed);
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
            shared.reloads_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "reload refused; the running config stays");
            ReloadOutcome {
                at: SystemTime::now(),
                ok: false,
                error: error.clone(),
                changes: Vec::new(),
            }
        }
    };
    shared.last_reload.store(Arc::new(Some(outcome)));
    result
}

fn try_reload(shared: &Shared) -> Result<Vec<String>, String> {
    let path = shared.config_path.as_deref().ok_or_else(|| {
        "this instance runs the built-in demo config; there is no file to reload".to_owned()
    })?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let config = augur_config::load(path).map_err(|e| e.to_string())?;
    let old = shared.runtime.load_full();
    let changes = augur_config::diff(&old.config, &config);
    let needs_sockets: Vec<String> = changes
        .iter()
        .filter(|c| c.needs_new_process())
        .map(ToString::to_string)
        .collect();
    if !needs_sockets.is_empty() {
        return Err(format!(
            "{}: these changes take a new process (new listening sockets or predictor \
             settings), which reload does not start; use `augur run --upgrade` instead: {}",
            path.display(),
            needs_sockets.join("; ")
        ));
    }
    // Host names of tunnel peers are looked up again; one that does not resolve refuses the
    // reload like any other error in the file.
    let endpoints = shared
        .tunnels
        .resolve_endpoints(&config.tunnels)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let version = ConfigVersion {
        hash: content_hash(&bytes),
        loaded_at: SystemTime::now(),
        generation: old.version.generation + 1,
    };
    shared.tunnels.reload(&endpoints);
    let runtime = Runtime::build(
        config,
        version,
        Some(&old),
        &shared.slots,
        &shared.registry,
        &shared.tunnels,
    );
    shared.runtime.store(Arc::new(runtime));
    shared.reloaded.notify_waiters();
    Ok(changes.iter().map(ToString::to_string).collect())
}
