//! The optional access log: one line per request or TCP session, written by its own thread.
//! The request path formats the line and hands it over with `try_send`; when the writer falls
//! behind, lines are dropped and counted rather than slowing requests down. The writer is a
//! supervised service; stopping it writes and flushes every line queued before the stop.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use augur_config::AccessLogFormat;

use crate::services::{Service, Stop};

/// What one access log line says.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Client address.
    pub client: &'a str,
    /// Method (or "TCP").
    pub method: &'a str,
    /// Host header (empty for TCP).
    pub host: &'a str,
    /// Path (empty for TCP).
    pub path: &'a str,
    /// Response status (0 = none).
    pub status: u16,
    /// Upstream name (empty when unrouted).
    pub upstream: &'a str,
    /// Backend address (empty when none was reached).
    pub backend: &'a str,
    /// Duration in microseconds.
    pub micros: u64,
}

/// Handle to the access log writer.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// Lines; `None` only wakes the writer to see that it is told to stop.
    tx: SyncSender<Option<String>>,
    format: AccessLogFormat,
    /// Lines dropped because the writer was behind.
    pub dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Opens `path` (`-` = stdout) for appending and starts the writer service.
    pub fn open(path: &Path, format: AccessLogFormat) -> std::io::Result<(AccessLog, Service)> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(path)?)
        };
        let mut out = BufWriter::new(out);
        let (tx, rx) = sync_channel(8192);
        let writer = Service::start("access-log", move |stop| {
            write_lines(&rx, &mut out, stop);
            Ok(())
        })?;
        let wake = tx.clone();
        let log = AccessLog {
            tx,
            format,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        // A full queue needs no wake-up: the writer is busy and looks at the stop after it.
        let writer = writer.on_stop(move || {
            let _ = wake.try_send(None);
        });
        Ok((log, writer))
    }

    /// Queues one line; drops and counts it when the writer is behind.
    pub fn log(&self, e: &Entry<'_>) {
        let line = match self.format {
            AccessLogFormat::Json => serde_json::json!({
                "listener": e.listener, "client": e.client, "method": e.method,
                "host": e.host, "path": e.path, "status": e.status,
                "upstream": e.upstream, "backend": e.backend, "duration_us": e.micros,
            })
            .to_string(),
            AccessLogFormat::Text => format!(
                "{} {} {} {} {} {} {} {}us",
                e.client,
                e.listener,
                e.method,
                if e.path.is_empty() { "-" } else { e.path },
                e.status,
                if e.upstream.is_empty() {
                    "-"
                } else {
                    e.upstream
                },
                if e.backend.is_empty() { "-" } else { e.backend },
                e.micros
            ),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Some(line)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes lines as they come until told to stop, then what is still queued.
fn write_lines(rx: &Receiver<Option<String>>, out: &mut impl Write, stop: &Stop) {
    while let Ok(first) = rx.recv() {
        // This line and whatever else is queued, then one flush for the batch.
        let queued = std::iter::from_fn(|| rx.try_recv().ok());
        for line in std::iter::once(first).chain(queued).flatten() {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        if stop.requested() {
            return;
        }
    }
}
