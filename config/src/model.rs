//! The validated configuration: what the runtime sees. Every value here has been checked;
//! names are resolved to indices, addresses parsed, durations converted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A complete, validated augur configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Process-wide settings (threads, grace period, logging).
    pub server: Server,
    /// The admin listener, if configured.
    pub admin: Option<Admin>,
    /// Client-facing listeners, in file order.
    pub listeners: Vec<Listener>,
    /// Upstreams (backend pools), in file order; routes refer to them by index.
    pub upstreams: Vec<Upstream>,
}

/// Process-wide settings, from the optional top-level `server:` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Worker threads per listener service (default 1).
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests before exiting (default 10s).
    pub grace_period: Duration,
    /// Unix socket through which `--upgrade` receives listening sockets.
    pub upgrade_sock: PathBuf,
    /// PID file written at start (used by `augur reload` when there is no admin listener).
    pub pid_file: PathBuf,
    /// Log filter (tracing `EnvFilter` syntax), overridden by `RUST_LOG` (default "info").
    pub log_level: String,
    /// Where to write access logs; `None` disables them.
    pub access_log: Option<AccessLog>,
}

/// Access log destination and format.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    /// File path, or `-` for stdout.
    pub path: PathBuf,
    /// One JSON object per line, or a common-log-like text line.
    pub format: AccessLogFormat,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per request.
    Json,
    /// A space-separated text line.
    Text,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Address of the admin HTTP listener (loopback by default).
    pub bind: SocketAddr,
}

/// A client-facing listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Unique listener name.
    pub name: String,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// What the listener speaks and where its traffic goes.
    pub kind: ListenerKind,
}

/// Listener protocol with its protocol-specific settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerKind {
    /// Plain HTTP/1.1.
    Http {
        /// First match wins.
        routes: Vec<Route>,
    },
    /// HTTP/1.1 and HTTP/2 (ALPN) over TLS (rustls).
    Https {
        /// Certificate chain and key files.
        tls: Tls,
        /// First match wins.
        routes: Vec<Route>,
    },
    /// L4: bytes relayed both ways to a backend of `upstream`.
    Tcp {
        /// Index into `Config::upstreams`.
        upstream: usize,
    },
}

/// TLS material of an HTTPS listener. Both files were readable at validation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// An HTTP route: match conditions and the upstream that serves them.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Exact host to match (lower-cased, without port); `None` matches any host.
    pub host: Option<String>,
    /// Path prefix to match; `None` matches any path.
    pub path_prefix: Option<String>,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
}

/// A named pool of backends with its selection policy and timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Unique upstream name.
    pub name: String,
    /// Backend selection policy.
    pub policy: PolicyKind,
    /// TCP connect timeout (default 1s).
    pub connect_timeout: Duration,
    /// Timeout for each read from the backend (default 30s).
    pub read_timeout: Duration,
    /// Timeout for each write to the backend (default 30s).
    pub write_timeout: Duration,
    /// How long an idle pooled upstream connection is kept (default 60s).
    pub idle_timeout: Duration,
    /// How many times a failed connect is retried on another backend (default 2).
    pub retries: u32,
    /// The backends, in file order (at least one).
    pub backends: Vec<Backend>,
}

/// Backend selection policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConn,
}

/// One backend server.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Socket address to connect to.
    pub addr: SocketAddr,
    /// Relative weight, 1..=256 (default 1).
    pub weight: u32,
}
