//! A small HTTP backend served by augur itself: the three backends of `augur demo`, and a real
//! server process for tests (`augur backend`). It answers every request with one JSON line
//! describing what it received, after an optional delay.
//!
//! Query parameters shape a reply: `delay_ms=N` waits N ms more, `status=N` answers with that
//! status, `size=N` sends N bytes of body instead of the JSON line, `orca=P` reports P %
//! application utilisation in an ORCA `endpoint-load-metrics` header, `orca_bad=1` sends a
//! malformed one.

use std::time::Duration;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

/// One backend: a name to tell replies apart and a base delay before each reply.
pub struct DemoBackend {
    name: String,
    delay: Duration,
    degradation: Option<Degradation>,
}

/// A periodic slowdown: for `length` out of every `period`, replies take `extra` longer
/// (an antagonist sharing the machine, a batch job, a cron).
#[derive(Debug, Clone, Copy)]
pub struct Degradation {
    /// Cycle length.
    pub period: Duration,
    /// Slow part of each cycle (at its end).
    pub length: Duration,
    /// Added delay while slow.
    pub extra: Duration,
    /// Start of the first cycle.
    pub since: std::time::Instant,
}

impl Degradation {
    /// The added delay at `now`.
    pub fn extra_at(&self, now: std::time::Instant) -> Duration {
        let period = self.period.as_nanos().max(1);
        let phase = now.saturating_duration_since(self.since).as_nanos() % period;
        if phase >= period - self.length.as_nanos().min(period) {
            self.extra
        } else {
            Duration::ZERO
        }
    }
}

impl DemoBackend {
    /// A backend called `name` that waits `delay` before answering.
    pub fn new(name: impl Into<String>, delay: Duration) -> Self {
        DemoBackend {
            name: name.into(),
            delay,
            degradation: None,
        }
    }

    /// The same backend, slowing down periodically.
    pub fn degrading(mut self, degradation: Degradation) -> Self {
        self.degradation = Some(degradation);
        self
    }
}

fn query_param(query: &str, key: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

#[async_trait]
impl ServeHttp for DemoBackend {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body_bytes = 0u64;
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => body_bytes += chunk.len() as u64,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "backend could not read the request body");
                    break;
                }
            }
        }
        let req = session.req_header();
        let query = req.uri.query().unwrap_or("");
        let extra = query_param(query, "delay_ms").map_or(Duration::ZERO, Duration::from_millis);
        let status = query_param(query, "status")
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let body = match query_param(query, "size") {
            Some(size) => vec![b'x'; usize::try_from(size).unwrap_or(0)],
            None => {
                let mut line = json!({
                    "backend": self.name,
                    "method": req.method.as_str(),
                    "path": req.uri.path(),
                    "host": header("host"),
                    "x_forwarded_for": header("x-forwarded-for"),
                    "x_forwarded_proto": header("x-forwarded-proto"),
                    "body_bytes": body_bytes,
                })
                .to_string();
                line.push('\n');
                line.into_bytes()
            }
        };
        let periodic = self
            .degradation
            .map_or(Duration::ZERO, |d| d.extra_at(std::time::Instant::now()));
        let delay = self.delay + extra + periodic;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut reply = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .header("x-backend", self.name.as_str());
        if let Some(percent) = query_param(query, "orca") {
            let load = format!("TEXT application_utilization={}", percent as f64 / 100.0);
            reply = reply.header("endpoint-load-metrics", load);
        }
        if query_param(query, "orca_bad").is_some() {
            reply = reply.header("endpoint-load-metrics", "TEXT cpu_utilization=NaN");
        }
        reply.body(body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::query_param;

    #[test]
    fn degradation_is_on_at_the_end_of_each_cycle() {
        let since = std::time::Instant::now();
        let d = super::Degradation {
            period: Duration::from_secs(30),
            length: Duration::from_secs(10),
            extra: Duration::from_millis(60),
            since,
        };
        let at = |s: u64| d.extra_at(since + Duration::from_secs(s));
        assert_eq!(at(5), Duration::ZERO);
        assert_eq!(at(25), Duration::from_millis(60));
        assert_eq!(at(35), Duration::ZERO);
        assert_eq!(at(59), Duration::from_millis(60));
    }

    #[test]
    fn query_parameters_are_found_by_key() {
        assert_eq!(query_param("a=1&delay_ms=25&size=3", "delay_ms"), Some(25));
        assert_eq!(query_param("a=1", "size"), None);
        assert_eq!(query_param("size=x", "size"), None);
    }
}
