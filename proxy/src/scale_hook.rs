//! Runs an upstream's `scale.hook` command for each standby activation or deactivation, with
//! a JSON description on stdin, on a thread of its own: a slow or failing hook is logged and
//! retried, and never holds up routing or the predictor.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use crate::services::{Service, Stop};

/// One hook run to make.
#[derive(Debug)]
pub struct HookCall {
    /// The shell command.
    pub command: String,
    /// What happened, as JSON.
    pub payload: String,
}

const ATTEMPTS: u32 = 3;

/// Where hook runs are sent.
#[derive(Debug, Clone)]
pub struct Hooks(Sender<Option<HookCall>>);

impl Hooks {
    /// Queues one hook run.
    pub fn call(&self, call: HookCall) {
        let _ = self.0.send(Some(call));
    }
}

/// Starts the supervised hook service; send it calls through the returned [`Hooks`].
pub fn spawn() -> std::io::Result<(Hooks, Service)> {
    // `None` only wakes the service to see that it is told to stop.
    let (tx, rx) = channel::<Option<HookCall>>();
    let service = Service::start("scale-hook", move |stop| {
        while let Ok(Some(call)) = rx.recv() {
            if stop.requested() {
                break;
            }
            run(&call, stop);
        }
        Ok(())
    })?;
    let wake = tx.clone();
    Ok((
        Hooks(tx),
        service.on_stop(move || {
            let _ = wake.send(None);
        }),
    ))
}

fn run(call: &HookCall, stop: &Stop) {
    for attempt in 1..=ATTEMPTS {
        match run_once(call) {
            Ok(()) => {
                tracing::info!(command = %call.command, "scale hook ran");
                return;
            }
            Err(error) => {
                tracing::warn!(command = %call.command, attempt, %error, "scale hook failed");
                // Back off before trying again (this thread only runs hooks).
                if attempt < ATTEMPTS && stop.sleep(Duration::from_secs(u64::from(attempt))) {
                    return;
                }
            }
        }
    }
    tracing::error!(command = %call.command, "scale hook gave up after {ATTEMPTS} attempts");
}

fn run_once(call: &HookCall) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&call.command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(call.payload.as_bytes())
            .map_err(|e| format!("cannot write stdin: {e}"))?;
    }
    let status = child.wait().map_err(|e| format!("cannot wait: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("exited with {status}"))
    }
}
