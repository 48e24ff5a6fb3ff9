//! The YAML config a test gives augur, built from what the test states (its listeners,
//! upstreams, tunnels, segments); the `server:` and `admin:` sections come from the harness.
//! Option values are YAML as the README writes them (`"{ kind: tcp, interval: 200ms }"`), so
//! every key of the schema is reachable without the builder knowing it.

use std::fmt::{Display, Write};
use std::net::SocketAddr;
use std::path::Path;

/// A whole config, rendered by [`Config::render`] once the harness knows its directory.
#[derive(Debug, Clone, Default)]
pub struct Config {
    server: String,
    top: String,
    segments: Vec<String>,
    tunnels: Vec<Tunnel>,
    listeners: Vec<Listener>,
    upstreams: Vec<Upstream>,
}

impl Config {
    /// An empty config: add listeners, upstreams and the rest.
    pub fn new() -> Config {
        Config::default()
    }

    /// The most common test config: HTTP listener `web` on `bind` sending everything to
    /// `upstream`.
    pub fn web(bind: SocketAddr, upstream: Upstream) -> Config {
        let route = Route::to(&upstream.name);
        Config::new()
            .listener(Listener::http("web", bind).route(route))
            .upstream(upstream)
    }

    /// An extra `server:` key.
    pub fn server(mut self, key: &str, value: impl Display) -> Config {
        let _ = writeln!(self.server, "  {key}: {value}");
        self
    }

    /// The `predictor:` section (a YAML map).
    pub fn predictor(self, value: &str) -> Config {
        self.section(&format!("predictor: {value}\n"))
    }

    /// A segment with its sources (addresses or prefixes).
    pub fn segment(mut self, name: &str, sources: &[&str]) -> Config {
        let sources: Vec<String> = sources.iter().map(|s| format!("\"{s}\"")).collect();
        let entry = format!(
            "  - {{ name: {name}, sources: [{}] }}\n",
            sources.join(", ")
        );
        self.segments.push(entry);
        self
    }

    /// A top-level section as written (YAML the test took from augur itself, say).
    pub fn section(mut self, yaml: &str) -> Config {
        self.top.push_str(yaml);
        self
    }

    /// Another tunnel.
    pub fn tunnel(mut self, tunnel: Tunnel) -> Config {
        self.tunnels.push(tunnel);
        self
    }

    /// Another listener.
    pub fn listener(mut self, listener: Listener) -> Config {
        self.listeners.push(listener);
        self
    }

    /// Another upstream.
    pub fn upstream(mut self, upstream: Upstream) -> Config {
        self.upstreams.push(upstream);
        self
    }

    /// The listeners' addresses a client can connect to (not the wildcard ones).
    pub fn binds(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .map(|l| l.bind)
            .filter(|a| !a.ip().is_unspecified())
            .collect()
    }

    /// The file's text: `server:` (its files in `dir`) and `admin:` on `admin`, then the rest.
    pub fn render(&self, dir: &Path, admin: SocketAddr) -> String {
        let mut out = format!(
            "server:\n  grace_period: 5s\n  upgrade_sock: {}\n  pid_file: {}\n  log_level: info\n{}\
             admin:\n  bind: {admin}\n{}",
            dir.join("upgrade.sock").display(),
            dir.join("augur.pid").display(),
            self.server,
            self.top,
        );
        let blocks = |out: &mut String, name: &str, items: Vec<String>| {
            if !items.is_empty() {
                let _ = writeln!(out, "{name}:");
                out.extend(items);
            }
        };
        blocks(&mut out, "segments", self.segments.clone());
        blocks(
            &mut out,
            "tunnels",
            self.tunnels.iter().map(Tunnel::render).collect(),
        );
        blocks(
            &mut out,
            "listeners",
            self.listeners.iter().map(Listener::render).collect(),
        );
        blocks(
            &mut out,
            "upstreams",
            self.upstreams.iter().map(Upstream::render).collect(),
        );
        out
    }
}

/// One listener: its keys in order, then its routes.
#[derive(Debug, Clone)]
pub struct Listener {
    bind: SocketAddr,
    keys: String,
    routes: Vec<Route>,
}

impl Listener {
    fn new(name: &str, bind: SocketAddr, protocol: &str) -> Listener {
        Listener {
            bind,
            // Quoted: an IPv6 address starts with `[`, a flow sequence to YAML.
            keys: format!("  - name: {name}\n    bind: \"{bind}\"\n    protocol: {protocol}\n"),
            routes: Vec::new(),
        }
    }

    /// An HTTP listener (add its routes).
    pub fn http(name: &str, bind: SocketAddr) -> Listener {
        Listener::new(name, bind, "http")
    }

    /// An HTTPS listener with its certificate and key files.
    pub fn https(name: &str, bind: SocketAddr, cert: &Path, key: &Path) -> Listener {
        let tls = format!("{{ cert: {}, key: {} }}", cert.display(), key.display());
        Listener::new(name, bind, "https").with("tls", tls)
    }

    /// A TCP relay to `upstream`.
    pub fn tcp(name: &str, bind: SocketAddr, upstream: &str) -> Listener {
        Listener::new(name, bind, "tcp").with("upstream", upstream)
    }

    /// Keys as written, indented four spaces (what `augur segments suggest` prints).
    pub fn lines(mut self, yaml: &str) -> Listener {
        self.keys.push_str(yaml);
        self
    }

    /// Another key (`allow`, `segment_mode`, `idle_timeout`).
    pub fn with(self, key: &str, value: impl Display) -> Listener {
        self.lines(&format!("    {key}: {value}\n"))
    }

    /// The next route (first match wins).
    pub fn route(mut self, route: Route) -> Listener {
        self.routes.push(route);
        self
    }

    fn render(&self) -> String {
        let mut out = self.keys.clone();
        if !self.routes.is_empty() {
            out.push_str("    routes:\n");
            for route in &self.routes {
                let _ = writeln!(out, "      - {}", route.render());
            }
        }
        out
    }
}

/// One route of an HTTP listener.
#[derive(Debug, Clone)]
pub struct Route {
    matches: Vec<String>,
    keys: String,
}

impl Route {
    /// A route to `upstream`, matching everything until narrowed.
    pub fn to(upstream: &str) -> Route {
        Route {
            matches: Vec::new(),
            keys: format!("upstream: {upstream}"),
        }
    }

    /// Only requests for this host.
    pub fn host(mut self, host: &str) -> Route {
        self.matches.push(format!("host: {host}"));
        self
    }

    /// Only requests whose path starts with `prefix`.
    pub fn path(mut self, prefix: &str) -> Route {
        self.matches.push(format!("path_prefix: {prefix}"));
        self
    }

    /// Another key of the route (`allow`).
    pub fn with(mut self, key: &str, value: impl Display) -> Route {
        let _ = write!(self.keys, ", {key}: {value}");
        self
    }

    fn render(&self) -> String {
        if self.matches.is_empty() {
            format!("{{ {} }}", self.keys)
        } else {
            format!(
                "{{ match: {{ {} }}, {} }}",
                self.matches.join(", "),
                self.keys
            )
        }
    }
}

/// One upstream: its keys, then its backends.
#[derive(Debug, Clone)]
pub struct Upstream {
    name: String,
    keys: String,
    backends: Vec<String>,
}

impl Upstream {
    /// Upstream `name` with these backends (add more with [`Upstream::backend`]).
    pub fn new(name: &str, backends: &[SocketAddr]) -> Upstream {
        let upstream = Upstream {
            name: name.to_owned(),
            keys: String::new(),
            backends: Vec::new(),
        };
        backends.iter().fold(upstream, |u, b| u.backend(b, ""))
    }

    /// Another key (`policy`, `retries`, `health_check`, ...).
    pub fn with(mut self, key: &str, value: impl Display) -> Upstream {
        let _ = writeln!(self.keys, "    {key}: {value}");
        self
    }

    /// A backend at `addr` with more keys (`"capacity: 10, standby: true"`, or empty).
    pub fn backend(mut self, addr: impl Display, keys: &str) -> Upstream {
        let keys = if keys.is_empty() {
            String::new()
        } else {
            format!(", {keys}")
        };
        self.backends.push(format!("{{ addr: {addr}{keys} }}"));
        self
    }

    fn render(&self) -> String {
        let mut out = format!("  - name: {}\n{}    backends:\n", self.name, self.keys);
        for backend in &self.backends {
            let _ = writeln!(out, "      - {backend}");
        }
        out
    }
}

/// One WireGuard tunnel.
#[derive(Debug, Clone)]
pub struct Tunnel {
    keys: String,
    peer: String,
    forward: String,
}

impl Tunnel {
    /// Tunnel `name` with its key file and augur's `address` inside it, to the peer whose
    /// public key is `peer` and whose tunnel addresses are `allowed_ips`.
    pub fn new(
        name: &str,
        key_file: &Path,
        address: &str,
        peer: &str,
        allowed_ips: &str,
    ) -> Tunnel {
        Tunnel {
            keys: format!(
                "  - name: {name}\n    private_key_file: {}\n    address: {address}\n",
                key_file.display()
            ),
            peer: format!("      public_key: \"{peer}\"\n      allowed_ips: [{allowed_ips}]\n"),
            forward: String::new(),
        }
    }

    /// Another key of the tunnel (`listen_port`).
    pub fn with(mut self, key: &str, value: impl Display) -> Tunnel {
        let _ = writeln!(self.keys, "    {key}: {value}");
        self
    }

    /// Another key of the peer (`endpoint`, `persistent_keepalive`).
    pub fn peer_with(mut self, key: &str, value: impl Display) -> Tunnel {
        let _ = writeln!(self.peer, "      {key}: {value}");
        self
    }

    /// Traffic to `port` on augur's tunnel address goes on to `to` (the remote side).
    pub fn forward(mut self, port: u16, to: SocketAddr) -> Tunnel {
        let _ = writeln!(self.forward, "      - {{ port: {port}, to: {to} }}");
        self
    }

    fn render(&self) -> String {
        let forward = if self.forward.is_empty() {
            String::new()
        } else {
            format!("    forward:\n{}", self.forward)
        };
        format!("{}    peer:\n{}{forward}", self.keys, self.peer)
    }
}
