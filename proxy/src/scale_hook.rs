//! Runs an upstream's `scale.hook` command for each standby activation or deactivation, with
//! a JSON description on stdin, on a thread of its own: a slow or failing hook is logged and
//! retried, and never holds up routing or the predictor.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

/// One hook run to make.
#[derive(Debug)]
pub struct HookCall {
    /// The shell command.
    pub command: String,
    /// What happened, as JSON.
    pub payload: String,
}

const ATTEMPTS: u32 = 3;

/// Starts the hook thread; send it calls.
pub fn spawn() -> std::io::Result<Sender<HookCall>> {
    let (tx, rx) = channel::<HookCall>();
    std::thread::Builder::new()
        .name("augur-scale-hook".into())
        .spawn(move || {
            for call in rx {
                run(&call);
            }
        })?;
    Ok(tx)
}

fn run(call: &HookCall) {
    for attempt in 1..=ATTEMPTS {
        match run_once(call) {
            Ok(()) => {
                tracing::info!(command = %call.command, "scale hook ran");
                return;
            }
            Err(error) => {
                tracing::warn!(command = %call.command, attempt, %error, "scale hook failed");
                if attempt < ATTEMPTS {
                    // Back off before trying again (this thread only runs hooks).
                    std::thread::sleep(Duration::from_secs(u64::from(attempt)));
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
